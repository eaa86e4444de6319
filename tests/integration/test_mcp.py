# SPDX-License-Identifier: Apache-2.0
# The MCP gateway as MCP clients see it: the official MCP Python SDK client
# (mcp.client.streamable_http) against portcullis' /mcp endpoint, with real
# upstreams behind it: @modelcontextprotocol/server-everything spawned over
# stdio and tests/mcp/fixture_server.py (Python SDK) over Streamable HTTP or
# stdio. Federation (prefixed names, resources, prompts), progress,
# cancellation, list_changed, Cedar policy per identity with audit, session
# binding, Host/Origin checks, JSON-RPC errors, a stdio server killed
# mid-call and an HTTP upstream that goes down.
from __future__ import annotations

import json
import os
import re
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


# How the federation tests reach the Python fixture: "http" (its Streamable
# HTTP port, so server-everything over stdio and the fixture over HTTP share
# the endpoint) or "stdio" (a child of the gateway, to run them on stdio alone).
FIXTURE_OVER = "http"


@pytest.fixture
def upstream(http_fixture):
    """upstream(name) -> the mcp.servers entry of a fixture server named name."""

    def make(name: str) -> dict:
        if FIXTURE_OVER == "http":
            return {"name": name, "url": http_fixture(name).url}
        return stdio_fixture(name)

    return make


# ---- the SDK client --------------------------------------------------------


@asynccontextmanager
async def connect(gw, key: str | None = None, http_headers: dict | None = None, **session_kw):
    """An initialized ClientSession on the gateway's /mcp endpoint."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(http_headers or {})
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

    def __init__(self, gw, key: str | None = None, headers: dict | None = None, version: str = PROTOCOL):
        self.gw = gw
        self.version = version
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
            h["MCP-Protocol-Version"] = self.version
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
                    "protocolVersion": self.version,
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
# federation: server-everything over stdio + the Python fixture over HTTP
# =============================================================================


@pytest.fixture
def fed(start_gateway, upstream):
    return start_gateway(mcp_config(free_port(), [everything_server(), upstream("fixture")]))


def test_initialize_and_prefixed_tools_from_both_upstreams(fed):
    async def body():
        async with connect(fed) as s:
            names = await wait_tools(s, "everything__echo", "everything__get-sum", "fixture__echo", "fixture__add")
            # every tool carries its server's prefix, nothing unprefixed leaks through
            assert all(n.startswith(("everything__", "fixture__")) for n in names), sorted(names)
            assert "echo" not in names

            r = await s.call_tool("everything__echo", {"message": "hello from stdio"})
            assert not r.is_error and texts(r) == "Echo: hello from stdio"
            r = await s.call_tool("fixture__echo", {"text": "hello over http"})
            assert not r.is_error and texts(r) == "fixture: hello over http"
            r = await s.call_tool("everything__get-sum", {"a": 2, "b": 40})
            assert "42" in texts(r)
            r = await s.call_tool("fixture__add", {"a": 2.5, "b": 4})
            assert texts(r) == "6.5"
            # a tool the server does not have: an error naming it
            with pytest.raises(MCPError) as unknown:
                await s.call_tool("fixture__nope", {})
            assert "fixture__nope" in str(unknown.value), str(unknown.value)

    run(body)


def test_tool_content_types_pass_through(fed):
    async def body():
        async with connect(fed) as s:
            await wait_tools(s, "fixture__test_image_content")
            r = await s.call_tool("fixture__test_image_content", {})
            img = r.content[0]
            assert isinstance(img, types.ImageContent) and img.mime_type == "image/png" and img.data
            r = await s.call_tool("fixture__test_error_handling", {})
            assert r.is_error and "intentionally returns an error" in texts(r)
            r = await s.call_tool("fixture__test_embedded_resource", {})
            res = r.content[0]
            assert isinstance(res, types.EmbeddedResource)
            assert res.resource.text == "This is an embedded resource content."

    run(body)


def test_resources_list_read_and_templates_from_both_upstreams(fed):
    async def body():
        async with connect(fed) as s:
            await wait_tools(s, "everything__echo", "fixture__echo")
            listed = (await s.list_resources()).resources
            uris = [str(r.uri) for r in listed]
            fx_text = [u for u in uris if "static-text" in u]
            ev_docs = [u for u in uris if "demo://resource/static/document" in u or "architecture.md" in u]
            assert fx_text and ev_docs, uris

            got = await s.read_resource(fx_text[0])
            assert got.contents[0].text == "This is the content of the static text resource."
            got = await s.read_resource(ev_docs[0])
            assert got.contents and getattr(got.contents[0], "text", None), got

            templates = [t.uri_template for t in (await s.list_resource_templates()).resource_templates]
            fx_tpl = [t for t in templates if "template/{id}/data" in t]
            ev_tpl = [t for t in templates if "dynamic/text/{resourceId}" in t]
            assert fx_tpl and ev_tpl, templates
            got = await s.read_resource(fx_tpl[0].replace("{id}", "123"))
            assert json.loads(got.contents[0].text) == {"id": "123", "templateTest": True, "data": "Data for ID: 123"}

    run(body)


def test_prompts_list_and_get_from_both_upstreams(fed):
    async def body():
        async with connect(fed) as s:
            await wait_tools(s, "everything__echo", "fixture__echo")
            names = [p.name for p in (await s.list_prompts()).prompts]
            fx = [n for n in names if n.endswith("test_prompt_with_arguments")]
            ev = [n for n in names if n.endswith("simple-prompt")]
            assert fx and ev, names
            assert fx[0] != "test_prompt_with_arguments", "prompts are prefixed like tools with two upstreams"
            got = await s.get_prompt(fx[0], {"arg1": "hello", "arg2": "world"})
            assert got.messages[0].content.text == "Prompt with arguments: arg1='hello', arg2='world'"
            got = await s.get_prompt(ev[0], {})
            assert got.messages and got.messages[0].role == "user"

    run(body)


def test_progress_notifications_reach_the_client(fed):
    async def body():
        async with connect(fed) as s:
            await wait_tools(s, "fixture__sleep", "everything__trigger-long-running-operation")
            seen: list[tuple[float, float | None]] = []

            async def on_progress(progress, total, message):
                seen.append((progress, total))

            r = await s.call_tool("fixture__sleep", {"seconds": 0.5}, progress_callback=on_progress)
            assert texts(r) == "fixture: slept 0.5s"
            assert len(seen) >= 3 and seen[-1] == (5, 5), seen
            assert [p for p, _ in seen] == sorted(p for p, _ in seen), seen

            seen.clear()
            r = await s.call_tool(
                "everything__trigger-long-running-operation",
                {"duration": 1, "steps": 4},
                progress_callback=on_progress,
            )
            assert not r.is_error, r
            assert len(seen) == 4 and seen[-1][0] == 4, seen

    run(body)


def test_cancellation_reaches_the_upstream(fed):
    async def body():
        async with connect(fed) as s:
            await wait_tools(s, "fixture__sleep", "fixture__cancelled")
            started = anyio.Event()

            async def on_progress(progress, total, message):
                started.set()

            call = anyio.CancelScope()

            async def long_call():
                with call:
                    await s.call_tool("fixture__sleep", {"seconds": 30, "tag": "cancel-me"}, progress_callback=on_progress)

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_call)
                with anyio.fail_after(WAIT):
                    await started.wait()
                call.cancel()  # the SDK abandons the call and sends notifications/cancelled

            # the upstream saw the cancellation: its handler was interrupted
            deadline = time.monotonic() + WAIT
            while True:
                r = await s.call_tool("fixture__cancelled", {})
                if "cancel-me" in json.loads(texts(r)) or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.1)
            assert json.loads(texts(r)) == ["cancel-me"], texts(r)
            # and the session still works
            r = await s.call_tool("fixture__echo", {"text": "after cancel"})
            assert texts(r) == "fixture: after cancel"

    run(body)


def test_tools_list_changed_reaches_the_client(fed):
    async def body():
        changed = anyio.Event()

        async def on_message(msg):
            if isinstance(msg, types.ToolListChangedNotification):
                changed.set()

        async with connect(fed, message_handler=on_message) as s:
            names = await wait_tools(s, "fixture__add_tool")
            # A list_changed sent before the GET streams (gateway -> fixture and
            # client -> gateway) are open has nowhere to go and may be dropped, as
            # the spec allows; so add tools until a notification arrives.
            added = []
            for i in range(10):
                name = f"brand_new_{i}"
                assert f"fixture__{name}" not in names
                r = await s.call_tool("fixture__add_tool", {"name": name})
                assert texts(r) == f"added {name}"
                added.append(name)
                with anyio.move_on_after(3):
                    await changed.wait()
                if changed.is_set():
                    break
            assert changed.is_set(), "no notifications/tools/list_changed reached the client"
            names = await tool_names(s)
            assert {f"fixture__{n}" for n in added} <= names, sorted(names)
            r = await s.call_tool(f"fixture__{added[-1]}", {})
            assert texts(r) == f"fixture: {added[-1]} called"

    run(body)


# =============================================================================
# single upstream, names, errors on the wire
# =============================================================================


def test_single_upstream_names_are_not_prefixed(start_gateway, upstream):
    gw = start_gateway(mcp_config(free_port(), [upstream("solo")]))

    async def body():
        async with connect(gw) as s:
            names = await wait_tools(s, "echo", "test_simple_text")
            assert not any("__" in n for n in names), sorted(names)
            r = await s.call_tool("echo", {"text": "plain"})
            assert texts(r) == "solo: plain"
            prompts = [p.name for p in (await s.list_prompts()).prompts]
            assert "test_simple_prompt" in prompts, prompts

    run(body)


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


def test_configured_separator_names_the_tools(start_gateway, upstream):
    gw = start_gateway(mcp_config(free_port(), [upstream("fixture"), everything_server()], separator="."))

    async def body():
        async with connect(gw) as s:
            names = await wait_tools(s, "fixture.echo", "everything.echo")
            assert not any("__" in n for n in names), sorted(names)
            r = await s.call_tool("fixture.echo", {"text": "dot"})
            assert texts(r) == "fixture: dot"

    run(body)


def test_delete_ends_the_session_and_idle_sessions_expire(start_gateway, upstream):
    gw = start_gateway(mcp_config(free_port(), [upstream("fixture")], session_idle="1s"))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    ended = RawSession(gw)
    idle = RawSession(gw)
    try:
        ended.initialize()
        assert [m for m in rpc_messages(ended.post(ping)) if m.get("result") == {}]
        with gw.http() as h:
            r = h.delete("/mcp", headers={"Mcp-Session-Id": ended.session_id, "MCP-Protocol-Version": PROTOCOL})
        assert r.status_code in (200, 202, 204), f"{r.status_code} {r.text}"
        r = ended.post(ping)
        assert r.status_code == 404, f"{r.status_code} {r.text}"

        idle.initialize()
        assert [m for m in rpc_messages(idle.post(ping)) if m.get("result") == {}]
        time.sleep(3.5)  # > session_idle plus the 1 s sweep; the session has no open stream
        r = idle.post(ping)
        assert r.status_code == 404, f"{r.status_code} {r.text}"
        assert any("expired" in json.dumps(rec) for rec in gw.log_records()), gw.log_text()

        fresh = RawSession(gw)  # a new session works
        try:
            fresh.initialize()
            assert [m for m in rpc_messages(fresh.post(ping)) if m.get("result") == {}]
        finally:
            fresh.close()
    finally:
        ended.close()
        idle.close()


def test_hostile_input_breaks_neither_the_gateway_nor_another_session(start_gateway, upstream):
    gw = start_gateway(mcp_config(free_port(), [upstream("fixture"), everything_server()]))
    nasty: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{" * 5000 + b"}" * 5000,
        b'{"jsonrpc": "2.0", "id": {"nested": [1, 2]}, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": 1e400, "method": "ping"}',
        b'{"jsonrpc": "2.0", "id": 99999999999999999999999999, "method": "tools/list"}',
        b'{"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": {"name": null}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fixture__echo", "arguments": {"text": "\\ud800"}}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "' + b"a" * 100000 + b'"}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "../../../../etc/passwd"}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "fixture__x", "arguments": [1]}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "\\u0000garbage"}}',
        b'{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "not-mine"}}',
        b'{"jsonrpc": "2.0", "id": 2, "result": {"content": []}}',
        b"\xff\xfe\x00garbage",
    ]

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "fixture__echo", "everything__echo")
            raw = RawSession(gw)
            try:
                raw.initialize()
                for payload in nasty:
                    r = raw.post(payload)
                    assert r.status_code < 500, f"{payload[:60]!r} -> {r.status_code} {r.text[:200]}"
                    # and without a session, and with a session id that does not exist
                    saved, raw.session_id = raw.session_id, None
                    assert raw.post(payload).status_code < 500
                    raw.session_id = "0" * 32
                    assert raw.post(payload).status_code < 500
                    raw.session_id = saved
                    # the well-behaved session next door is unaffected
                    r2 = await s.call_tool("fixture__echo", {"text": "still fine"})
                    assert texts(r2) == "fixture: still fine"
            finally:
                raw.close()
            r = await s.call_tool("everything__echo", {"message": "end"})
            assert texts(r) == "Echo: end"

    run(body)
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
def idgw(start_gateway, upstream):
    cfg = mcp_config(
        free_port(),
        [
            everything_server(),
            {**upstream("fixture"), "tools": {"sleep": ["exfiltration"]}},
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


def test_two_identities_see_different_tools_and_the_forbidden_call_is_refused_and_audited(idgw):
    alice, bob = idgw.keys["alice"], idgw.keys["bob"]

    async def body():
        async with connect(idgw, alice) as a:
            alice_tools = await wait_tools(a, "everything__echo", "fixture__echo")
            assert "fixture__sleep" in alice_tools  # listed: only call_tool is forbidden by label
            r = await a.call_tool("everything__echo", {"message": "alice"})
            assert texts(r) == "Echo: alice"
            with pytest.raises(MCPError) as labelled:
                await a.call_tool("fixture__sleep", {"seconds": 0.1})
            assert "fixture__sleep" in str(labelled.value), str(labelled.value)

        async with connect(idgw, bob) as b:
            bob_tools = await wait_tools(b, "fixture__echo")
            assert not any(n.startswith("everything__") for n in bob_tools), sorted(bob_tools)
            assert bob_tools < alice_tools
            r = await b.call_tool("fixture__echo", {"text": "bob"})
            assert texts(r) == "fixture: bob"
            with pytest.raises(MCPError) as denied:
                await b.call_tool("everything__echo", {"message": "bob"})
            assert "everything__echo" in str(denied.value), str(denied.value)

    run(body)

    denied = wait_audit(idgw, action="call_tool", decision="deny", agent="bob")
    assert [r["resource"] for r in denied] == ["everything/echo"], denied
    allowed = audit_rows(idgw, action="call_tool", decision="allow")
    assert {(r["agent"], r["resource"]) for r in allowed} >= {("alice", "everything/echo"), ("bob", "fixture/echo")}
    labelled = audit_rows(idgw, action="call_tool", decision="deny", agent="alice")
    assert [r["resource"] for r in labelled] == ["fixture/sleep"], labelled
    assert "no-exfiltration" in (labelled[0].get("reason") or ""), labelled


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


# =============================================================================
# upstream failures
# =============================================================================


def started_pids(gw, server: str) -> list[int]:
    return [
        int(r["pid"])
        for r in gw.log_records()
        if r.get("msg") == "mcp server started" and r.get("server") == server and "pid" in r
    ]


def test_stdio_server_killed_mid_call_is_restarted(start_gateway, upstream):
    gw = start_gateway(mcp_config(free_port(), [stdio_fixture("local"), upstream("remote")]))

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "local__sleep", "local__pid", "remote__echo")
            pids = started_pids(gw, "local")
            assert len(pids) == 1, gw.log_text()
            r = await s.call_tool("local__pid", {})
            assert int(texts(r)) == pids[0]

            started = anyio.Event()
            outcome: dict = {}

            async def on_progress(progress, total, message):
                started.set()

            async def in_flight():
                try:
                    outcome["result"] = await s.call_tool(
                        "local__sleep", {"seconds": 30}, progress_callback=on_progress
                    )
                except MCPError as e:
                    outcome["error"] = e

            async with anyio.create_task_group() as tg:
                tg.start_soon(in_flight)
                with anyio.fail_after(WAIT):
                    await started.wait()
                os.kill(pids[0], signal.SIGKILL)

            # the in-flight call got an error (or an error result), not a hang or a success
            if "result" in outcome:
                assert outcome["result"].is_error, outcome
                msg = texts(outcome["result"])
            else:
                msg = str(outcome["error"])
            assert "local" in msg, msg

            # the other upstream did not notice
            r = await s.call_tool("remote__echo", {"text": "still here"})
            assert texts(r) == "remote: still here"

            # restarted: a new process, and the next call succeeds on it
            deadline = time.monotonic() + WAIT
            while len(started_pids(gw, "local")) < 2:
                assert time.monotonic() < deadline, gw.log_text()
                await anyio.sleep(0.1)
            new_pid = started_pids(gw, "local")[-1]
            assert new_pid != pids[0]
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    r = await s.call_tool("local__pid", {})
                    if not r.is_error:
                        break
                except MCPError:
                    pass
                assert time.monotonic() < deadline, "local never answered after the restart"
                await anyio.sleep(0.2)
            assert int(texts(r)) == new_pid
            r = await s.call_tool("local__echo", {"text": "back"})
            assert texts(r) == "local: back"

    run(body)


def test_stdio_server_stderr_lands_in_the_gateway_log(start_gateway):
    gw = start_gateway(mcp_config(free_port(), [everything_server("ev")]))

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "echo")

    run(body)
    # server-everything prints "Starting default (STDIO) server..." on stderr
    gw.wait_for_log(lambda r: r.get("server") == "ev" and "Starting" in json.dumps(r), timeout=WAIT)


def test_http_upstream_down_fails_its_tools_and_the_other_keeps_working(start_gateway, http_fixture):
    alpha, beta = http_fixture("alpha"), http_fixture("beta")
    gw = start_gateway(
        mcp_config(free_port(), [{"name": "alpha", "url": alpha.url}, {"name": "beta", "url": beta.url}])
    )

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "alpha__echo", "beta__echo")
            r = await s.call_tool("beta__echo", {"text": "up"})
            assert texts(r) == "beta: up"

            beta.stop()

            try:
                r = await s.call_tool("beta__echo", {"text": "down"})
                assert r.is_error, r
                msg = texts(r)
            except MCPError as e:
                msg = str(e)
            assert "beta" in msg and msg != "beta: down", msg

            r = await s.call_tool("alpha__echo", {"text": "fine"})
            assert texts(r) == "alpha: fine"
            names = await tool_names(s)
            assert "alpha__echo" in names, sorted(names)

    run(body)


def test_http_upstream_never_up_does_not_block_the_others(start_gateway, http_fixture):
    alpha = http_fixture("alpha")
    gw = start_gateway(
        mcp_config(
            free_port(),
            [{"name": "alpha", "url": alpha.url}, {"name": "ghost", "url": f"http://127.0.0.1:{dead_port()}/mcp"}],
        )
    )

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "alpha__echo")
            r = await s.call_tool("alpha__echo", {"text": "hi"})
            assert texts(r) == "alpha: hi"
            try:
                r = await s.call_tool("ghost__echo", {"text": "boo"})
                assert r.is_error, r
                msg = texts(r)
            except MCPError as e:
                msg = str(e)
            assert "ghost" in msg, msg

    run(body)


def test_http_upstream_gets_its_headers_and_a_signed_identity_token_not_the_client_key(start_gateway, http_fixture):
    import jwt  # PyJWT (pinned, with cryptography): verifies the gateway's ES256 token

    fx = http_fixture("fixture")
    cfg = mcp_config(
        free_port(),
        [
            {
                "name": "fixture",
                "url": fx.url,
                "headers": {"X-Api-Key": "fixture-secret"},
                "identity_header": "X-Portcullis-Identity",
            }
        ],
        identity={"required": True},
        agents=[{"id": "alice"}],
    )
    gw = start_gateway(cfg, start=False)
    key = keys_create(gw, "alice")
    gw.start()

    async def body():
        async with connect(gw, key) as s:
            await wait_tools(s, "headers")
            r = await s.call_tool("headers", {})
            return json.loads(texts(r))

    seen = run(body)
    assert seen.get("x-api-key") == "fixture-secret", seen
    assert key not in json.dumps(seen), "the client's API key must not reach the upstream"
    token = seen.get("x-portcullis-identity")
    assert token, seen
    with gw.http() as h:
        jwks = h.get("/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(token).get("kid")
    jwk = next(k for k in jwks["keys"] if kid is None or k.get("kid") == kid)
    claims = jwt.decode(
        token, key=jwt.PyJWK(jwk).key, algorithms=["ES256"], options={"verify_aud": False}
    )
    assert claims["sub"] == "alice", claims


# =============================================================================
# server-to-client requests during calls: each reaches the calling client only
# =============================================================================


def asking_client(who: str, others_asked: dict[str, anyio.Event], seen: dict[str, list]) -> dict:
    """ClientSession callbacks for `who` that record each server request and
    hold its answer until the other client has been asked too (so both calls
    are in flight at once), then answer with who's own data."""

    async def hold():
        others_asked[who].set()
        other = next(k for k in others_asked if k != who)
        with anyio.move_on_after(10):  # a misrouted request must not hang the test
            await others_asked[other].wait()

    async def elicit(ctx, params):
        seen[who].append(params.message)
        await hold()
        return types.ElicitResult(action="accept", content={"username": who, "email": f"{who}@example.com"})

    async def sample(ctx, params):
        seen[who].append(params.messages[0].content.text)
        await hold()
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"answer for {who}"), model="m"
        )

    return {"elicitation_callback": elicit, "sampling_callback": sample}


@pytest.mark.parametrize(
    "tool,arg,answer",
    [
        ("test_elicitation", "message", 'User response: action=accept, content={{"username": "{who}", "email": "{who}@example.com"}}'),
        ("test_sampling", "prompt", "LLM response: answer for {who}"),
    ],
)
def test_server_requests_during_concurrent_calls_reach_only_the_calling_client(start_gateway, http_fixture, tool, arg, answer):
    fx = http_fixture("fixture")
    gw = start_gateway(mcp_config(free_port(), [{"name": "fixture", "url": fx.url}]))
    clients = ("alice", "bob")
    asked = {who: anyio.Event() for who in clients}
    seen: dict[str, list] = {who: [] for who in clients}
    results: dict[str, str] = {}

    async def client(who: str):
        async with connect(gw, **asking_client(who, asked, seen)) as s:
            await wait_tools(s, tool)
            r = await s.call_tool(tool, {arg: f"question from {who}"})
            results[who] = texts(r)

    async def body():
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for who in clients:
                    tg.start_soon(client, who)

    run(body)
    for who in clients:
        assert seen[who] == [f"question from {who}"], seen
        assert results[who] == answer.format(who=who), results


def test_server_request_that_cannot_be_attributed_is_refused_not_guessed(start_gateway):
    """Over stdio nothing says which call a server's request belongs to: with
    two sessions calling the server at once, the gateway refuses it."""
    gw = start_gateway(mcp_config(free_port(), [stdio_fixture("fixture")]))
    asked_alice = anyio.Event()
    bob_done = anyio.Event()
    seen: dict[str, list] = {"alice": [], "bob": []}
    results: dict[str, object] = {}

    def callbacks(who: str, hold: bool) -> dict:
        async def elicit(ctx, params):
            seen[who].append(params.message)
            if hold:
                asked_alice.set()
                with anyio.move_on_after(20):
                    await bob_done.wait()
            return types.ElicitResult(action="accept", content={"username": who, "email": "x@example.com"})

        return {"elicitation_callback": elicit}

    async def alice():
        async with connect(gw, **callbacks("alice", True)) as s:
            await wait_tools(s, "test_elicitation")
            results["alice"] = await s.call_tool("test_elicitation", {"message": "question from alice"})

    async def bob():
        async with connect(gw, **callbacks("bob", False)) as s:
            await wait_tools(s, "test_elicitation")
            with anyio.fail_after(WAIT):
                await asked_alice.wait()  # alice's call is in flight, her request answered by nobody yet
            try:
                results["bob"] = await s.call_tool("test_elicitation", {"message": "question from bob"})
            except MCPError as e:  # the fixture passes the refusal on as the call's error
                results["bob"] = e
            finally:
                bob_done.set()

    async def body():
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(alice)
                tg.start_soon(bob)

    run(body)
    assert seen == {"alice": ["question from alice"], "bob": []}, seen
    assert '"username": "alice"' in texts(results["alice"]), results["alice"]
    bob = results["bob"]
    refusal = str(bob) if isinstance(bob, MCPError) else texts(bob)
    assert isinstance(bob, MCPError) or bob.is_error, bob
    assert "several client sessions have calls in flight" in refusal, refusal


# =============================================================================
# trace context: every request to an upstream carries the client's trace
# =============================================================================

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def test_upstream_requests_carry_the_clients_trace_context(start_gateway, http_fixture):
    """HTTP servers get a traceparent header and, like stdio servers,
    params._meta.traceparent (SEP-414): the client's trace id when it sent one,
    a valid fresh one otherwise, with the gateway's own span id as parent."""
    web = http_fixture("web")
    gw = start_gateway(mcp_config(free_port(), [{"name": "web", "url": web.url}, stdio_fixture("local")]))
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    async def seen(http_headers: dict) -> dict:
        async with connect(gw, http_headers=http_headers) as s:
            await wait_tools(s, "web__trace", "local__trace")
            return {
                srv: json.loads(texts(await s.call_tool(f"{srv}__trace", {}))) for srv in ("web", "local")
            }

    traced = run(seen, {"traceparent": f"00-{client_trace}-{client_span}-01"})
    assert traced["web"]["header"] == traced["web"]["meta"], traced
    assert traced["local"]["header"] is None, traced  # stdio: no HTTP, _meta only
    for srv in ("web", "local"):
        m = TRACEPARENT.match(traced[srv]["meta"] or "")
        assert m, traced
        assert m.group(1) == client_trace, traced
        assert m.group(2) != client_span, traced  # the gateway's span is the parent now

    untraced = run(seen, {})
    for srv in ("web", "local"):
        m = TRACEPARENT.match(untraced[srv]["meta"] or "")
        assert m and set(m.group(1)) != {"0"} and set(m.group(2)) != {"0"}, untraced
        assert m.group(1) != client_trace, untraced
    assert untraced["web"]["header"] == untraced["web"]["meta"], untraced


# =============================================================================
# JSON-RPC batches (protocol 2025-03-26 only)
# =============================================================================


@pytest.fixture
def batch_gw(start_gateway, http_fixture):
    fx = http_fixture("fixture")
    return start_gateway(mcp_config(free_port(), [{"name": "fixture", "url": fx.url}]))


def raw_session(gw, version: str) -> RawSession:
    raw = RawSession(gw, version=version)
    assert raw.initialize()["protocolVersion"] == version
    deadline = time.monotonic() + WAIT
    while True:  # the upstream starts in the background
        r = raw.post({"jsonrpc": "2.0", "id": "l", "method": "tools/list"})
        tools = rpc_messages(r)[0].get("result", {}).get("tools", [])
        if any(t["name"] == "echo" for t in tools) or time.monotonic() > deadline:
            return raw
        time.sleep(0.1)


def by_id(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    msgs = []
    for m in rpc_messages(resp):  # on an SSE stream the array is one event
        msgs += m if isinstance(m, list) else [m]
    return {m.get("id"): m for m in msgs if "method" not in m}


def test_batch_on_a_2025_03_26_session_answers_every_request_in_one_array(batch_gw):
    raw = raw_session(batch_gw, "2025-03-26")
    r = raw.post(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
            {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "in a batch"}}},
            {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"},
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "second"}}},
            {"jsonrpc": "2.0", "id": 6, "method": "initialize", "params": {}},
            42,
        ]
    )
    got = by_id(r)
    assert set(got) == {1, "two", 3, 4, 5, 6, None}, got
    assert got[1]["result"] == {}
    assert "echo" in {t["name"] for t in got["two"]["result"]["tools"]}
    assert got[3]["result"]["content"][0]["text"] == "fixture: in a batch"
    assert got[4]["error"]["code"] == -32601
    assert got[5]["error"]["code"] == -32600 and "one tools/call per batch" in got[5]["error"]["message"]
    assert got[6]["error"]["code"] == -32600 and "initialize" in got[6]["error"]["message"]
    assert got[None]["error"]["code"] == -32600  # 42 is not a message
    # the call in the batch was decided and audited like any other
    rows = wait_audit(batch_gw, action="call_tool", resource="fixture/echo")
    assert [row["decision"] for row in rows] == ["allow"], rows
    # a call that streams progress: the batch's answer becomes an SSE stream
    r = raw.post(
        [
            {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
             "params": {"name": "sleep", "arguments": {"seconds": 0.3}, "_meta": {"progressToken": "pt"}}},
            {"jsonrpc": "2.0", "id": 8, "method": "ping"},
        ]
    )
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    progress = [m for m in rpc_messages(r) if isinstance(m, dict) and m.get("method") == "notifications/progress"]
    assert progress and all(p["params"]["progressToken"] == "pt" for p in progress), rpc_messages(r)
    got = by_id(r)
    assert set(got) == {7, 8} and got[7]["result"]["content"][0]["text"] == "fixture: slept 0.3s", got
    # a batch of notifications only: 202, nothing to answer
    r = raw.post([{"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}])
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    raw.close()


def test_bad_batches_are_refused_with_32600(batch_gw):
    raw = raw_session(batch_gw, "2025-03-26")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for body, says in [
        ([], "empty batch"),
        ([dict(ping, id=i) for i in range(101)], "at most 100"),
        ([[ping]], "batch inside a batch"),
    ]:
        r = raw.post(body)
        if says == "batch inside a batch":  # one element, itself refused
            err = by_id(r)[None]["error"]
        else:
            assert r.status_code == 400, f"{r.status_code} {r.text}"
            err = rpc_error(r)
        assert err["code"] == -32600 and says in err["message"], err
    # 100 is fine
    assert len(by_id(raw.post([dict(ping, id=i) for i in range(100)]))) == 100
    # unparseable
    r = raw.post(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"},')
    assert r.status_code == 400 and rpc_error(r)["code"] == -32700
    raw.close()

    # later protocol versions removed batching
    raw = raw_session(batch_gw, "2025-06-18")
    r = raw.post([ping])
    assert r.status_code == 400, f"{r.status_code} {r.text}"
    err = rpc_error(r)
    assert err["code"] == -32600 and "removed after protocol version 2025-03-26" in err["message"], err
    raw.close()


# =============================================================================
# Last-Event-ID: the gateway's own SSE streams can be resumed
# =============================================================================


def sse_events(lines) -> "Iterator[tuple[str | None, dict]]":
    """(id, message) of each SSE event as lines arrive."""
    eid, data = None, []
    for line in lines:
        if line.startswith("id:"):
            eid = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            yield eid, json.loads("\n".join(data))
            eid, data = None, []


def test_post_answer_stream_is_resumed_with_last_event_id(batch_gw):
    raw = raw_session(batch_gw, PROTOCOL)
    h = dict(raw.headers, **{"Mcp-Session-Id": raw.session_id, "MCP-Protocol-Version": PROTOCOL})
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"seconds": 1.5}, "_meta": {"progressToken": "p"}}}
    with raw.http.stream("POST", "/mcp", content=json.dumps(call), headers=h) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first_id, first = next(sse_events(r.iter_lines()))
    # the client went away after one progress event
    assert first["method"] == "notifications/progress" and first_id, first
    stream, seq = first_id.split("-")
    g = dict(h, **{"Accept": "text/event-stream", "Last-Event-ID": first_id})
    seen = []
    with raw.http.stream("GET", "/mcp", headers=g, timeout=30) as r:
        assert r.status_code == 200, r.read()
        for eid, msg in sse_events(r.iter_lines()):
            seen.append((eid, msg))
    ids = [eid for eid, _ in seen]
    assert all(i.split("-")[0] == stream for i in ids), ids  # the same stream, nothing else
    seqs = [int(i.split("-")[1]) for i in ids]
    assert seqs == sorted(seqs) and seqs[0] > int(seq), ids  # what followed, in order, no repeat
    assert all(m.get("method") == "notifications/progress" for _, m in seen[:-1]), seen
    assert seen[-1][1]["id"] == 9 and "slept 1.5s" in seen[-1][1]["result"]["content"][0]["text"], seen[-1]
    # and the same id again replays the same events (the call is over: the stream ends)
    with raw.http.stream("GET", "/mcp", headers=g, timeout=30) as r:
        again = list(sse_events(r.iter_lines()))
    assert [eid for eid, _ in again] == ids
    raw.close()


def test_get_stream_is_resumed_and_bad_last_event_ids_are_refused(batch_gw):
    raw = raw_session(batch_gw, PROTOCOL)
    h = dict(raw.headers, **{"Mcp-Session-Id": raw.session_id, "MCP-Protocol-Version": PROTOCOL})
    g = dict(h, Accept="text/event-stream")

    def add_tool(name: str):
        r = raw.post({"jsonrpc": "2.0", "id": name, "method": "tools/call",
                      "params": {"name": "add_tool", "arguments": {"name": name}}})
        assert r.status_code == 200, r.text

    with raw.http.stream("GET", "/mcp", headers=g, timeout=30) as r:
        assert r.status_code == 200
        add_tool("one")
        first_id, first = next(sse_events(r.iter_lines()))
    assert first["method"] == "notifications/tools/list_changed" and first_id.startswith("0-"), (first_id, first)
    add_tool("two")  # while no GET stream is open
    time.sleep(0.5)  # the refetch of the list and its notification, on the gateway
    with raw.http.stream("GET", "/mcp", headers=dict(g, **{"Last-Event-ID": first_id}), timeout=5) as r:
        assert r.status_code == 200
        eid, msg = next(sse_events(r.iter_lines()))
    assert msg["method"] == "notifications/tools/list_changed", msg
    assert eid.startswith("0-") and int(eid.split("-")[1]) > int(first_id.split("-")[1]), (eid, first_id)

    for bad in ["nonsense", "0-", "-1", "99-1", "0-99999999"]:
        r = raw.http.get("/mcp", headers=dict(g, **{"Last-Event-ID": bad}))
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert rpc_error(r)["code"] == -32600
    raw.close()
