# SPDX-License-Identifier: Apache-2.0
# The MCP gateway as MCP clients see it: the official MCP Python SDK client
# (mcp.client.streamable_http) against portcullis' /mcp endpoint, with real
# upstreams behind it: @modelcontextprotocol/server-everything spawned over
# stdio and tests/mcp/fixture_server.py (Python SDK) over Streamable HTTP or
# stdio. Here: the endpoint itself (JSON-RPC errors, Host/Origin checks, 401
# for a missing credential, a session bound to the identity that opened it).
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from conftest import BIN, REPO, base_config, dead_port, free_port, require_binary

NODE_DIR = REPO / ".node" / "node_modules"
NODE22 = NODE_DIR / ".bin" / "node"
EVERYTHING = NODE_DIR / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
FIXTURE = REPO / "tests" / "mcp" / "fixture_server.py"
PROTOCOL = "2025-11-25"
WAIT = 20.0  # readiness waits (upstreams initialising), never a speed assertion


def everything_server(name: str = "everything") -> dict:
    if not NODE22.exists() or not EVERYTHING.exists():
        pytest.fail(f"{EVERYTHING} missing: run scripts/bootstrap", pytrace=False)
    return {"name": name, "command": [str(NODE22), str(EVERYTHING), "stdio"]}


def stdio_fixture(name: str) -> dict:
    return {"name": name, "command": [sys.executable, str(FIXTURE), "--stdio", "--name", name]}


def mcp_config(port: int, servers: list[dict], **extra) -> dict:
    mcp = {"servers": servers}
    for k in ("separator", "allowed_hosts", "allowed_origins", "session_idle"):
        if k in extra:
            mcp[k] = extra.pop(k)
    return base_config(port, mcp=mcp, **extra)


class HttpFixture:
    """tests/mcp/fixture_server.py serving Streamable HTTP on 127.0.0.1."""

    def __init__(self, tmp: Path, name: str):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = tmp / f"fixture-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "HttpFixture":
        self.proc = subprocess.Popen(
            [sys.executable, str(FIXTURE), "--port", str(self.port), "--name", self.name],
            stdin=subprocess.DEVNULL,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + WAIT
        while True:
            assert self.proc.poll() is None, f"fixture {self.name} exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, f"fixture {self.name} did not listen"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def http_fixture(request, tmp_path):
    """http_fixture(name) -> a running HttpFixture, stopped at teardown."""
    started: list[HttpFixture] = []

    def start(name: str = "fixture") -> HttpFixture:
        fx = HttpFixture(tmp_path, name).start()
        started.append(fx)
        return fx

    yield start
    for fx in started:
        fx.stop()


# ---- the SDK client --------------------------------------------------------


@asynccontextmanager
async def connect(gw, key: str | None = None, **session_kw):
    """An initialized ClientSession on the gateway's /mcp endpoint."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    session_kw.setdefault("read_timeout_seconds", 30)
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(gw.url + "/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write, **session_kw) as session:
                await session.initialize()
                yield session


async def tool_names(session: ClientSession) -> set[str]:
    names: set[str] = set()
    cursor = None
    while True:
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        names |= {t.name for t in page.tools}
        cursor = page.next_cursor
        if not cursor:
            return names


async def wait_tools(session: ClientSession, *wanted: str) -> set[str]:
    """tools/list until every wanted name is there (upstreams start in the background)."""
    deadline = time.monotonic() + WAIT
    while True:
        names = await tool_names(session)
        if set(wanted) <= names or time.monotonic() > deadline:
            assert set(wanted) <= names, f"missing {set(wanted) - names} in {sorted(names)}"
            return names
        await anyio.sleep(0.1)


def texts(res: types.CallToolResult) -> str:
    return "\n".join(c.text for c in res.content if isinstance(c, types.TextContent))


def run(fn, *args):
    """Runs an async test body; a hang fails on pytest's timeout, not here."""
    return anyio.run(fn, *args)


# ---- raw JSON-RPC over HTTP (for what the SDK will not send) ---------------


def rpc_messages(resp: httpx.Response) -> list[dict]:
    """The JSON-RPC messages in an answer, JSON or SSE."""
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        out = []
        for block in resp.text.split("\n\n"):
            data = "\n".join(l[5:].lstrip() for l in block.splitlines() if l.startswith("data:"))
            if data.strip():
                out.append(json.loads(data))
        return out
    body = resp.json()
    return body if isinstance(body, list) else [body]


def rpc_error(resp: httpx.Response) -> dict:
    msgs = [m for m in rpc_messages(resp) if "error" in m]
    assert msgs, f"no JSON-RPC error in {resp.status_code} {resp.text!r}"
    err = msgs[0]["error"]
    assert isinstance(err.get("code"), int) and isinstance(err.get("message"), str), err
    return err


class RawSession:
    """Hand-made Streamable HTTP requests to /mcp (httpx), after a real initialize."""

    def __init__(self, gw, key: str | None = None, headers: dict | None = None):
        self.gw = gw
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.headers.update(headers or {})
        self.http = gw.http()
        self.session_id: str | None = None

    def post(self, body, headers: dict | None = None) -> httpx.Response:
        h = dict(self.headers)
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
            h["MCP-Protocol-Version"] = PROTOCOL
        h.update(headers or {})
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.http.post("/mcp", content=content, headers=h)

    def initialize(self) -> dict:
        r = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "1"},
                },
            }
        )
        assert r.status_code == 200, f"{r.status_code} {r.text}"
        self.session_id = r.headers.get("mcp-session-id")
        result = [m for m in rpc_messages(r) if m.get("id") == 0][0]["result"]
        n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert n.status_code == 202, f"{n.status_code} {n.text}"
        return result

    def close(self) -> None:
        self.http.close()


# ---- identities, policy and audit -----------------------------------------


def keys_create(gw, agent: str) -> str:
    require_binary()
    p = subprocess.run(
        [str(BIN), "keys", "create", "-c", str(gw.config_path), "--agent", agent],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("pcl_"), key
    return key


def audit_rows(gw, **where) -> list[dict]:
    db = sqlite3.connect(gw.dir / "portcullis.db", timeout=10)
    db.row_factory = sqlite3.Row
    q = "SELECT * FROM audit"
    if where:
        q += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    rows = [dict(r) for r in db.execute(q + " ORDER BY id", tuple(where.values()))]
    db.close()
    return rows


def wait_audit(gw, **where) -> list[dict]:
    deadline = time.monotonic() + WAIT
    while True:
        rows = audit_rows(gw, **where)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


TOOL_POLICIES = """\
// alice may list and call every tool.
@id("alice-tools")
permit (principal == Agent::"alice", action == Action::"list_tool", resource);
@id("alice-calls")
permit (principal == Agent::"alice", action == Action::"call_tool", resource);

// bob only sees and calls the fixture server's tools.
@id("bob-fixture-list")
permit (principal == Agent::"bob", action == Action::"list_tool", resource)
  when { resource.server == "fixture" };
@id("bob-fixture-call")
permit (principal == Agent::"bob", action == Action::"call_tool", resource)
  when { resource.server == "fixture" };

// nobody calls a tool labelled exfiltration.
@id("no-exfiltration")
forbid (principal, action == Action::"call_tool", resource)
  when { resource.labels.contains("exfiltration") };
"""


# =============================================================================
# errors on the wire
# =============================================================================


def test_jsonrpc_errors_for_bad_input(start_gateway, http_fixture):
    fx = http_fixture("fixture")
    gw = start_gateway(mcp_config(free_port(), [{"name": "fixture", "url": fx.url}, everything_server()]))
    raw = RawSession(gw)
    try:
        raw.initialize()
        assert rpc_error(raw.post(b'{"jsonrpc": "2.0", "id": 2, "method": "tools/li'))["code"] == -32700
        assert rpc_error(raw.post(b"[1, 2"))["code"] == -32700
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 3}))["code"] == -32600
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 4, "method": 17}))["code"] == -32600
        assert rpc_error(raw.post({"jsonrpc": "1.0", "id": 5, "method": "ping"}))["code"] == -32600
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 6, "method": "tools/frobnicate"}))["code"] == -32601
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": "x"}))["code"] == -32602
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {}}))["code"] == -32602
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": 5}}))["code"] == -32602
        bad_args = {"name": "fixture__echo", "arguments": "not an object"}
        assert rpc_error(raw.post({"jsonrpc": "2.0", "id": 91, "method": "tools/call", "params": bad_args}))["code"] == -32602

        err = rpc_error(
            raw.post({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "nobody__echo", "arguments": {}}})
        )
        assert "nobody__echo" in err["message"], err

        # the session survived all of it
        r = raw.post({"jsonrpc": "2.0", "id": 12, "method": "ping"})
        assert [m for m in rpc_messages(r) if m.get("id") == 12 and m.get("result") == {}], r.text
    finally:
        raw.close()
    assert gw.alive()


def test_host_and_origin_not_allowed_are_refused(start_gateway, http_fixture):
    fx = http_fixture("fixture")
    gw = start_gateway(mcp_config(free_port(), [{"name": "fixture", "url": fx.url}]))
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with gw.http() as h:
        ok = h.post("/mcp", json=init, headers=base)
        assert ok.status_code == 200, ok.text
        ok = h.post("/mcp", json=init, headers={**base, "Host": f"localhost:{gw.port}", "Origin": f"http://localhost:{gw.port}"})
        assert ok.status_code == 200, ok.text

        bad_host = h.post("/mcp", json=init, headers={**base, "Host": "evil.example.com"})
        assert 400 <= bad_host.status_code < 500, bad_host.text
        assert not bad_host.headers.get("mcp-session-id")
        bad_origin = h.post("/mcp", json=init, headers={**base, "Origin": "http://evil.example.com"})
        assert 400 <= bad_origin.status_code < 500, bad_origin.text
        assert not bad_origin.headers.get("mcp-session-id")


# =============================================================================
# identities: policy per caller, audit, session binding
# =============================================================================


@pytest.fixture
def idgw(start_gateway, http_fixture):
    fx = http_fixture("fixture")
    cfg = mcp_config(
        free_port(),
        [
            everything_server(),
            {"name": "fixture", "url": fx.url, "tools": {"sleep": ["exfiltration"]}},
        ],
        identity={"required": True},
        agents=[{"id": "alice"}, {"id": "bob"}],
        policy={"files": ["policies/*.cedar"], "default": "deny"},
    )
    gw = start_gateway(cfg, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "tools.cedar").write_text(TOOL_POLICIES)
    gw.keys = {a: keys_create(gw, a) for a in ("alice", "bob")}
    return gw.start()


def test_mcp_without_credentials_is_a_jsonrpc_401(idgw):
    raw = RawSession(idgw)
    try:
        r = raw.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            }
        )
        assert r.status_code == 401, r.text
        assert rpc_error(r)["message"]
    finally:
        raw.close()


def refused(r: httpx.Response) -> None:
    """An HTTP 4xx, or a JSON-RPC error; never a result."""
    msgs = rpc_messages(r) if r.content else []
    assert not any("result" in m for m in msgs), r.text
    assert 400 <= r.status_code < 500 or any("error" in m for m in msgs), f"{r.status_code} {r.text}"


def test_session_id_of_another_identity_is_refused(idgw):
    alice = RawSession(idgw, idgw.keys["alice"])
    bob = RawSession(idgw, idgw.keys["bob"])
    try:
        alice.initialize()
        assert alice.session_id and len(alice.session_id) >= 16, alice.session_id
        r = alice.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert [m for m in rpc_messages(r) if "result" in m], r.text

        bob.session_id = alice.session_id  # bob presents alice's session
        r = bob.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        refused(r)
        r = bob.post(
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "fixture__echo", "arguments": {"text": "x"}}}
        )
        refused(r)

        # alice's session is unharmed
        r = alice.post({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
        assert [m for m in rpc_messages(r) if "result" in m], r.text
    finally:
        alice.close()
        bob.close()
