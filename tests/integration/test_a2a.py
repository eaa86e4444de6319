# SPDX-License-Identifier: Apache-2.0
# The A2A proxy as A2A clients see it: the a2a-sdk client (A2A 1.0 JSON-RPC,
# plus raw 0.3 calls) against portcullis' /a2a/<name>, with real a2a-sdk agents
# behind it (tests/integration/a2a_agents.py: echo, a streaming agent the test
# releases step by step, and one whose reply is a prompt injection). Agent
# card rewrite, send, stream, tasks/get, Cedar allow/deny per identity with
# audit, the identity token and traceparent the agent receives, guard on
# replies, an agent that is down, and hostile bodies.
from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import (
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
)

from conftest import BIN, base_config, dead_port, free_port, require_binary

AGENTS = Path(__file__).resolve().parent / "a2a_agents.py"
WAIT = 20.0  # readiness waits, never a speed assertion

POLICIES = """\
// alice, and the sub-agents she delegates to, may talk to every A2A agent.
@id("alice-agents")
permit (principal in Agent::"alice", action == Action::"send_message", resource);

// alice may hand work to her helper.
@id("alice-delegates")
permit (principal == Agent::"alice", action == Action::"delegate", resource == Agent::"helper");

// bob may talk to the echo and poison agents only.
@id("bob-echo")
permit (principal == Agent::"bob", action == Action::"send_message", resource == Agent::"echo");
@id("bob-poison")
permit (principal == Agent::"bob", action == Action::"send_message", resource == Agent::"poison");

// nobody asks the echo agent to shout.
@id("no-shouting")
forbid (principal, action == Action::"send_message", resource == Agent::"echo")
  when { context has skill && context.skill == "shout" };
"""


# ---- fixtures ---------------------------------------------------------------


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"a2a agents exited: {proc.stderr.read()}", pytrace=False)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("a2a agents did not start", pytrace=False)


@pytest.fixture(scope="module")
def agents():
    """The three a2a-sdk agents, one port each: {"echo": url, "stream": url, "poison": url}."""
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [sys.executable, str(AGENTS), *map(str, ports)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for p in ports:
        wait_port(p, proc)
    yield {n: f"http://127.0.0.1:{p}" for n, p in zip(("echo", "stream", "poison"), ports)}
    proc.terminate()
    proc.wait(timeout=10)


def keys_create(gw, agent: str) -> str:
    require_binary()
    p = subprocess.run(
        [str(BIN), "keys", "create", "-c", str(gw.config_path), "--agent", agent],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def audit_rows(gw, **where) -> list[dict]:
    db = sqlite3.connect(gw.dir / "portcullis.db", timeout=10)
    db.row_factory = sqlite3.Row
    q = "SELECT * FROM audit"
    if where:
        q += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    rows = [dict(r) for r in db.execute(q + " ORDER BY id", tuple(where.values()))]
    db.close()
    return rows


def wait_audit(gw, count: int = 1, **where) -> list[dict]:
    deadline = time.monotonic() + WAIT
    while True:
        rows = audit_rows(gw, **where)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def seen(agent_url: str, path: str = "/") -> list[dict]:
    """Headers of the requests the agent received on path ("/" = JSON-RPC)."""
    return [h for h in httpx.get(agent_url + "/_seen", timeout=10).json() if h[":path"] == path]


def a2a_config(port: int, agents: dict, guard: dict | None = None, **extra) -> dict:
    agent_list = [
        {"name": "echo", "url": agents["echo"] + "/"},
        {"name": "stream", "url": agents["stream"] + "/", "trust": "untrusted"},
        {"name": "poison", "url": agents["poison"] + "/", "identity_header": "X-Caller-Identity"},
        {"name": "down", "url": f"http://127.0.0.1:{dead_port()}/"},
    ]
    cfg = base_config(
        port,
        a2a={"agents": agent_list},
        identity={"required": True},
        agents=[{"id": "alice", "children": [{"id": "helper"}]}, {"id": "bob"}],
        policy={"files": ["policies/*.cedar"], "default": "deny"},
        **extra,
    )
    if guard:
        cfg["guard"] = guard
    return cfg


def start(start_gateway, agents, guard=None):
    port = free_port()
    # keys are created on the config without guard: (compiling the rule pack
    # for a CLI run is slow under ASan), then the whole config is written
    gw = start_gateway(a2a_config(port, agents), start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "a2a.cedar").write_text(POLICIES)
    gw.keys = {a: keys_create(gw, a) for a in ("alice", "bob")}
    if guard:
        gw.write_config(a2a_config(port, agents, guard))
    return gw.start(timeout=120)


@pytest.fixture
def gw(start_gateway, agents):
    return start(start_gateway, agents)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def client_for(gw, agent: str, key: str, streaming: bool = True):
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    cfg = ClientConfig(httpx_client=http, streaming=streaming)
    client = await ClientFactory(cfg).create_from_url(f"{gw.url}/a2a/{agent}")
    return client, http


def user_message(text: str, **metadata) -> SendMessageRequest:
    msg = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    if metadata:
        msg.metadata.update(metadata)
    return SendMessageRequest(message=msg)


def texts_of(ev) -> list[str]:
    out = []
    if ev.HasField("message"):
        out += [p.text for p in ev.message.parts]
    if ev.HasField("status_update") and ev.status_update.status.HasField("message"):
        out += [p.text for p in ev.status_update.status.message.parts]
    if ev.HasField("artifact_update"):
        out += [p.text for p in ev.artifact_update.artifact.parts]
    return out


def rpc(gw, agent: str, body, key: str | None, headers: dict | None = None) -> httpx.Response:
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{gw.url}/a2a/{agent}", content=data, headers=h, timeout=30)


def send_v03(text: str, rid=1) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": str(uuid.uuid4()),
                "role": "user",
                "parts": [{"kind": "text", "text": text}],
            }
        },
    }


# ---- agent card ---------------------------------------------------------------


def test_agent_card_is_fetched_and_points_at_the_gateway(gw, agents):
    key = gw.keys["alice"]
    r = httpx.get(
        f"{gw.url}/a2a/echo/.well-known/agent-card.json",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["name"] == "echo"
    assert [s["id"] for s in card["skills"]] == ["echo", "shout"]
    urls = [i["url"] for i in card["supportedInterfaces"]]
    assert urls == [f"{gw.url}/a2a/echo"], urls
    assert agents["echo"] not in r.text
    # fetched once with a gateway token, then served from the cache (card_ttl)
    fetches = seen(agents["echo"], "/.well-known/agent-card.json")
    assert len(fetches) == 1 and key not in json.dumps(fetches)
    assert fetches[0]["authorization"].startswith("Bearer ey")
    for host in ("gw.example:8443", "evil.example\"/x"):
        r = httpx.get(
            f"{gw.url}/a2a/echo/.well-known/agent-card.json",
            headers={"Authorization": f"Bearer {key}", "Host": host},
            timeout=30,
        )
        assert r.status_code == 200
        urls = [i["url"] for i in r.json()["supportedInterfaces"]]
        # a well-formed Host is reflected; anything else falls back to the listen address
        expect = "http://gw.example:8443/a2a/echo" if host == "gw.example:8443" else f"{gw.url}/a2a/echo"
        assert urls == [expect], (host, urls)
    assert len(seen(agents["echo"], "/.well-known/agent-card.json")) == 1
    # without an identity: 401 as a JSON-RPC error, nothing fetched
    r = httpx.get(f"{gw.url}/a2a/echo/.well-known/agent-card.json", timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] < 0
    # an agent that is not configured
    r = httpx.get(
        f"{gw.url}/a2a/nope/.well-known/agent-card.json",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 404
    assert "nope" in r.json()["error"]["message"]


# ---- send, stream, tasks ------------------------------------------------------


def test_sdk_client_sends_a_message_through_the_gateway(gw, agents):
    async def body():
        client, http = await client_for(gw, "echo", gw.keys["alice"])
        try:
            events = [ev async for ev in client.send_message(user_message("hello"))]
        finally:
            await http.aclose()
        return events

    events = run(body())
    assert [t for ev in events for t in texts_of(ev)] == ["echo: hello"]
    rows = wait_audit(gw, protocol="a2a", action="SendMessage")
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["agent"] == "alice"
    assert json.loads(row["chain"]) == ["alice"]
    assert row["resource"] == 'Agent::"echo"'
    assert row["decision"] == "allow"
    assert row["status"] == 200
    # /metrics counts A2A calls by agent
    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    assert any('route="a2a"' in l and 'model="echo"' in l and l.startswith("portcullis_requests")
               for l in metrics.splitlines()), metrics[:2000]


def test_streaming_events_arrive_one_by_one_and_tasks_get_works(gw, agents):
    async def body():
        client, http = await client_for(gw, "stream", gw.keys["alice"])
        got = []
        try:
            stream = client.send_message(user_message("go"))
            # the agent holds its second step until released: the first events
            # can only be here if the gateway forwarded them as they came
            async for ev in stream:
                got.append(ev)
                if any("working on it" in t for t in texts_of(ev)):
                    break
            httpx.post(agents["stream"] + "/_release", timeout=10)
            async for ev in stream:
                got.append(ev)
            task_id = got[0].task.id
            task = await client.get_task(GetTaskRequest(id=task_id))
        finally:
            await http.aclose()
        return got, task

    got, task = run(body())
    texts = [t for ev in got for t in texts_of(ev)]
    assert texts == ["working on it", "part one, ", "part two", "done"], texts
    assert task.status.state == 3  # TASK_STATE_COMPLETED
    assert "".join(p.text for a in task.artifacts for p in a.parts) == "part one, part two"
    stream_rows = wait_audit(gw, action="SendStreamingMessage")
    assert stream_rows and stream_rows[0]["decision"] == "allow"
    assert wait_audit(gw, action="GetTask")


def test_a2a_03_methods_pass_through(gw):
    r = rpc(gw, "echo", send_v03("old dialect"), gw.keys["alice"])
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["parts"][0]["text"] == "echo: old dialect"


# ---- identity token and traceparent ---------------------------------------------


def test_agent_receives_a_verifiable_identity_token_and_traceparent_never_the_key(gw, agents):
    key = gw.keys["bob"]
    before = len(seen(agents["echo"]))
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = rpc(gw, "echo", send_v03("who am i"), key, {"traceparent": tp})
    assert r.status_code == 200 and "result" in r.json(), r.text
    h = seen(agents["echo"])[before]
    assert key not in json.dumps(h)
    auth = h["authorization"]
    assert auth.startswith("Bearer ")
    token = auth[len("Bearer ") :]
    jwks = httpx.get(f"{gw.url}/.well-known/jwks.json", timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience="echo",
        issuer="portcullis",
    )
    assert claims["sub"] == "bob"
    # the trace continues: same trace id, the gateway's own span
    assert h["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert h["traceparent"] != tp
    # a configured identity_header carries the raw token instead
    before = len(seen(agents["poison"]))
    r = rpc(gw, "poison", send_v03("hi"), gw.keys["alice"])
    assert r.status_code == 200, r.text
    h = seen(agents["poison"])[before]
    assert "authorization" not in h
    claims = jwt.decode(h["x-caller-identity"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["aud"] == "poison"


# ---- policy ---------------------------------------------------------------------


def test_policy_allows_and_denies_per_identity_and_the_denial_is_audited(gw, agents):
    before = len(seen(agents["stream"]))
    # bob may not use the stream agent: JSON-RPC error naming the permission
    r = rpc(gw, "stream", send_v03("let me in", rid="b-1"), gw.keys["bob"])
    assert r.status_code == 200
    err = r.json()["error"]
    assert r.json()["id"] == "b-1"
    assert 'Action::"send_message"' in err["message"] and 'Agent::"stream"' in err["message"]
    assert len(seen(agents["stream"])) == before  # never forwarded
    # a forbid on the skill the message names
    msg = send_v03("loud", rid=7)
    msg["params"]["message"]["metadata"] = {"skill": "shout"}
    r = rpc(gw, "echo", msg, gw.keys["alice"])
    err = r.json()["error"]
    assert "no-shouting" in err["message"], err
    # the same through the SDK client: the error reaches the caller
    async def body():
        client, http = await client_for(gw, "echo", gw.keys["bob"])
        try:
            return [t async for ev in client.send_message(user_message("x", skill="shout"))
                    for t in texts_of(ev)]
        finally:
            await http.aclose()

    with pytest.raises(Exception) as denied:
        run(body())
    assert "no-shouting" in str(denied.value)
    rows = wait_audit(gw, 3, decision="deny")
    assert len(rows) >= 3, rows
    bob = [r for r in rows if r["agent"] == "bob" and r["resource"] == 'Agent::"stream"']
    assert bob and "policy_denied" in bob[0]["reason"]
    shout = [r for r in rows if "no-shouting" in (r["reason"] or "")]
    assert shout, rows


# ---- guard ----------------------------------------------------------------------


def test_guard_sanitizes_a_poisoned_reply_and_audits_it(start_gateway, agents):
    gw = start(start_gateway, agents, guard={"scan": ["a2a_replies"], "action": "sanitize"})
    r = rpc(gw, "poison", send_v03("summarise"), gw.keys["alice"])
    assert r.status_code == 200, r.text
    text = r.json()["result"]["parts"][0]["text"]
    assert "untrusted-data" in text and "removed by guard" in text
    assert "sanitized" in r.headers["x-portcullis-guard"]
    # a clean reply is untouched
    r = rpc(gw, "echo", send_v03("fine"), gw.keys["alice"])
    assert r.json()["result"]["parts"][0]["text"] == "echo: fine"
    rows = wait_audit(gw, resource='Agent::"poison"')
    findings = json.loads(rows[0]["guard"])
    assert findings and findings[0]["action"] == "sanitize"


def test_guard_blocks_a_poisoned_reply(start_gateway, agents):
    gw = start(start_gateway, agents, guard={"scan": ["a2a_replies"], "action": "block"})

    async def body():
        client, http = await client_for(gw, "poison", gw.keys["alice"])
        try:
            return [ev async for ev in client.send_message(user_message("summarise"))]
        finally:
            await http.aclose()

    with pytest.raises(Exception) as blocked:
        run(body())
    assert "withheld" in str(blocked.value)
    rows = wait_audit(gw, resource='Agent::"poison"', decision="deny")
    assert rows and "guard" in rows[0]["reason"], rows
    assert json.loads(rows[0]["guard"])[0]["action"] == "block"


# ---- failures and hostile input ---------------------------------------------------


def test_agent_down_is_a_clear_jsonrpc_error(gw):
    r = rpc(gw, "down", send_v03("anyone?", rid=42), gw.keys["alice"])
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == 42
    assert "'down' is unavailable" in body["error"]["message"]
    rows = wait_audit(gw, resource='Agent::"down"')
    assert rows[0]["decision"] == "error"


def test_bad_bodies_get_jsonrpc_errors_and_never_a_5xx(gw, agents):
    key = gw.keys["alice"]
    cases = [
        (b"{not json", -32700),
        (b"", -32700),
        (b"[]", -32600),
        (b'{"jsonrpc":"2.0","id":1}', -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"message/send","params":{}}', -32600),
        (b'{"jsonrpc":"2.0","method":"message/send","params":{}}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"message/send","params":[]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"a","method":"message/send","params":{}}', -32600),
        (b'{"jsonrpc":"2.0","id":{"x":1},"method":"message/send"}', -32600),
        (b"\xff\xfe\x00garbage", -32700),
        (b"[" * 5000, -32700),
    ]
    for raw, code in cases:
        r = rpc(gw, "echo", raw, key)
        assert r.status_code == 200, (raw, r.status_code, r.text)
        assert r.json()["error"]["code"] == code, (raw, r.text)
    # wrong verbs and paths
    r = httpx.get(f"{gw.url}/a2a/echo", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 405
    r = httpx.post(f"{gw.url}/a2a/echo/extra", headers={"Authorization": f"Bearer {key}"},
                   content=b"{}", timeout=10)
    assert r.status_code == 404
    # an unknown method goes to the agent, which answers for itself
    r = rpc(gw, "echo", {"jsonrpc": "2.0", "id": 3, "method": "no/such"}, key)
    assert r.status_code == 200 and r.json()["error"]["code"] == -32601
    # no credential
    r = rpc(gw, "echo", send_v03("x"), None)
    assert r.status_code == 401
    # the gateway still works
    r = rpc(gw, "echo", send_v03("still here"), key)
    assert r.json()["result"]["parts"][0]["text"] == "echo: still here"


# ---- streams: resubscribe, guard per event ---------------------------------------


def sse_events(resp: httpx.Response) -> list[tuple[str, dict]]:
    """(event name, data as JSON) of each event of a streamed answer."""
    out = []
    for block in resp.text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


def stream_v10(gw, agent: str, text: str, key: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": "s-1",
        "method": "SendStreamingMessage",
        "params": {"message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                               "parts": [{"text": text}]}},
    }
    return httpx.post(
        f"{gw.url}/a2a/{agent}",
        json=body,
        headers={"Authorization": f"Bearer {key}", "A2A-Version": "1.0",
                 "Accept": "text/event-stream"},
        timeout=30,
    )


def test_a_client_that_leaves_a_stream_can_resubscribe_to_the_task(gw, agents):
    async def body():
        client, http = await client_for(gw, "stream", gw.keys["alice"])
        try:
            stream = client.send_message(user_message("go"))
            task_id = None
            async for ev in stream:
                if ev.HasField("task"):
                    task_id = ev.task.id
                if any("working on it" in t for t in texts_of(ev)):
                    break
            await stream.aclose()  # the client goes away mid-stream
            got = []
            sub = client.subscribe(SubscribeToTaskRequest(id=task_id))
            async for ev in sub:
                got.append(ev)
                if len(got) == 1:
                    httpx.post(agents["stream"] + "/_release", timeout=10)
                if ev.HasField("status_update") and ev.status_update.status.state == 3:
                    break
            await sub.aclose()
        finally:
            await http.aclose()
        return got

    got = run(body())
    texts = [t for ev in got for t in texts_of(ev)]
    assert texts[-3:] == ["part one, ", "part two", "done"], texts
    rows = wait_audit(gw, action="SubscribeToTask")
    assert rows and rows[0]["decision"] == "allow"
    # the gateway is fine after the first stream was dropped
    r = rpc(gw, "echo", send_v03("after"), gw.keys["alice"])
    assert r.json()["result"]["parts"][0]["text"] == "echo: after"


def test_guard_sanitizes_the_poisoned_event_of_a_stream(start_gateway, agents):
    gw = start(start_gateway, agents, guard={"scan": ["a2a_replies"], "action": "sanitize"})
    r = stream_v10(gw, "poison", "task", gw.keys["alice"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r)
    results = [d["result"] for _, d in events]
    kinds = [next(iter(x)) for x in results]
    assert kinds[0] == "task" and "artifactUpdate" in kinds and kinds[-1] == "statusUpdate"
    status_texts = [p["text"] for x in results if "statusUpdate" in x
                    for p in x["statusUpdate"]["status"].get("message", {}).get("parts", [])]
    assert "reading the page" in status_texts  # clean events pass unchanged
    art = next(x["artifactUpdate"] for x in results if "artifactUpdate" in x)
    text = art["artifact"]["parts"][0]["text"]
    assert "untrusted-data" in text and "IGNORE ALL PREVIOUS" not in text
    rows = wait_audit(gw, action="SendStreamingMessage")
    assert json.loads(rows[0]["guard"])[0]["action"] == "sanitize"


def test_guard_cuts_a_stream_at_the_poisoned_event(start_gateway, agents):
    gw = start(start_gateway, agents, guard={"scan": ["a2a_replies"], "action": "block"})
    r = stream_v10(gw, "poison", "task", gw.keys["alice"])
    assert r.status_code == 200
    events = sse_events(r)
    names = [n for n, _ in events]
    assert names[-1] == "error" and names.count("error") == 1, names
    err = events[-1][1]
    assert err["id"] == "s-1" and err["error"]["code"] == -32053
    assert "withheld" in err["error"]["message"]
    assert "IGNORE ALL PREVIOUS" not in r.text
    assert any("reading the page" in json.dumps(d) for _, d in events[:-1])
    rows = wait_audit(gw, action="SendStreamingMessage")
    assert rows[0]["decision"] == "deny" and "guard" in rows[0]["reason"]


# ---- delegation -------------------------------------------------------------------


def test_a_delegated_sub_agent_is_seen_by_the_agent_with_its_whole_chain(gw, agents):
    r = httpx.post(
        f"{gw.url}/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": gw.keys["alice"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "audience": "helper",
            "scope": "agent:echo",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    helper = r.json()["access_token"]
    before = len(seen(agents["echo"]))
    r = rpc(gw, "echo", send_v03("from the helper"), helper)
    assert r.json()["result"]["parts"][0]["text"] == "echo: from the helper", r.text
    h = seen(agents["echo"])[before]
    sent = h["authorization"][len("Bearer "):]
    assert sent != helper
    claims = jwt.decode(sent, options={"verify_signature": False})
    assert claims["sub"] == "helper" and claims["act"]["sub"] == "alice", claims
    rows = wait_audit(gw, agent="helper")
    assert json.loads(rows[0]["chain"]) == ["alice", "helper"]
    # its scope names the echo agent only
    before = len(seen(agents["poison"]))
    r = rpc(gw, "poison", send_v03("x"), helper)
    err = r.json()["error"]
    assert err["code"] == -32050 and "scope" in err["message"], err
    assert len(seen(agents["poison"])) == before


# ---- an agent that misbehaves -------------------------------------------------------


class BadAgent(http.server.BaseHTTPRequestHandler):
    """Answers by path: not JSON, HTML 500, too slow, an event too large, a
    stream that breaks, a reply too large, a card that is not JSON."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, ctype, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        self.send(200, "application/json", b"<html>not a card</html>")

    def do_POST(self):
        try:
            self.answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up first (slow), as it should

    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        p = self.path
        if p == "/notjson":
            self.send(200, "application/json", b"hello, not json")
        elif p == "/html500":
            self.send(500, "text/html", b"<html>oops</html>")
        elif p == "/slow":
            time.sleep(3)
            self.send(200, "application/json", b'{"jsonrpc":"2.0","id":1,"result":{}}')
        elif p == "/huge":
            self.send(200, "application/json",
                      b'{"jsonrpc":"2.0","id":1,"result":{"x":"' + b"a" * (17 << 20) + b'"}}')
        elif p in ("/bigevent", "/broken"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b'data: {"jsonrpc":"2.0","id":1,"result":{"statusUpdate":{}}}\n\n')
            if p == "/bigevent":
                for _ in range(5):
                    self.chunk(b"data: " + b"x" * (1 << 20))
                self.chunk(b"\n\n")
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True  # /broken: no last chunk


@pytest.fixture
def bad_agent():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadAgent)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_an_agent_that_misbehaves_gets_a_clear_error_and_never_a_5xx(start_gateway, bad_agent):
    names = ["notjson", "html500", "slow", "huge", "bigevent", "broken"]
    cfg = base_config(
        free_port(),
        identity={"required": True},
        agents=[{"id": "alice"}],
        a2a={"agents": [{"name": n, "url": f"{bad_agent}/{n}", "timeout": "1s"} for n in names]},
    )
    gw = start_gateway(cfg, start=False)
    key = keys_create(gw, "alice")
    gw.start()
    expect = {
        "notjson": (-32006, "without a JSON-RPC response"),
        "html500": (-32006, "HTTP 500"),
        "slow": (-32052, "unavailable"),
        "huge": (-32051, "larger than the gateway accepts"),
    }
    for name, (code, words) in expect.items():
        r = rpc(gw, name, send_v03("x", rid=name), key)
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
        err = r.json()["error"]
        assert err["code"] == code and words in err["message"], (name, err)
        assert r.json()["id"] == name
    for name, code, words in (("bigevent", -32006, "larger than"), ("broken", -32051, "broke")):
        r = stream_v10(gw, name, "x", key)
        assert r.status_code == 200, (name, r.text[:200])
        events = sse_events(r)
        assert [n for n, _ in events] == ["message", "error"], (name, events)
        err = events[-1][1]["error"]
        assert err["code"] == code and words in err["message"], (name, err)
    r = httpx.get(f"{gw.url}/a2a/notjson/.well-known/agent-card.json",
                  headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 502 and "agent card" in r.json()["error"]["message"]
    rows = wait_audit(gw, 7, protocol="a2a")
    assert len(rows) == 7 and all(r["decision"] == "error" for r in rows), rows


def test_a2a_03_stream_and_resubscribe_come_back_as_sse_event_by_event(gw, agents):
    key = gw.keys["alice"]
    h = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    msg = send_v03("go")
    msg["method"] = "message/stream"

    def events(resp, until):
        """Reads events as they come until one matching until()."""
        got, buf = [], ""
        for chunk in resp.iter_text():
            buf = (buf + chunk).replace("\r\n", "\n")  # sse-starlette ends lines with CRLF
            while "\n\n" in buf:
                block, buf = buf.split("\n\n", 1)
                data = "\n".join(l[5:].lstrip() for l in block.splitlines() if l.startswith("data:"))
                if data:
                    got.append(json.loads(data))
                    if until(got[-1]):
                        return got
        return got

    def state(ev):
        return ev.get("result", {}).get("status", {}).get("state")

    with httpx.Client(timeout=30) as c:
        with c.stream("POST", f"{gw.url}/a2a/stream", json=msg, headers=h) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            first = events(r, lambda e: state(e) == "working")
        task_id = first[0]["result"]["id"]
        assert first[0]["result"]["kind"] == "task"
        # the client left; it picks the task up again with tasks/resubscribe
        sub = {"jsonrpc": "2.0", "id": 2, "method": "tasks/resubscribe",
               "params": {"id": task_id}}
        with c.stream("POST", f"{gw.url}/a2a/stream", json=sub, headers=h) as r:
            assert r.status_code == 200
            # the agent only goes on once released: what arrives next is new
            httpx.post(agents["stream"] + "/_release", timeout=10)
            rest = events(r, lambda e: state(e) == "completed")
    assert state(rest[-1]) == "completed", rest
    arts = [p["text"] for e in rest if e.get("result", {}).get("kind") == "artifact-update"
            for p in e["result"]["artifact"]["parts"]]
    assert arts == ["part one, ", "part two"], rest
    assert wait_audit(gw, action="tasks/resubscribe")


def test_guard_flag_passes_the_reply_with_a_header_and_public_url_names_the_gateway(
    start_gateway, agents
):
    port = free_port()
    cfg = a2a_config(port, agents, {"scan": ["a2a_replies"], "action": "flag"})
    cfg["a2a"]["public_url"] = "https://agents.example.com/"
    gw = start_gateway(cfg, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "a2a.cedar").write_text(POLICIES)
    key = keys_create(gw, "alice")
    gw.start(timeout=120)
    r = rpc(gw, "poison", send_v03("summarise"), key)
    text = r.json()["result"]["parts"][0]["text"]
    assert text.startswith("Here is the summary") and "IGNORE ALL PREVIOUS" in text  # untouched
    assert r.headers["x-portcullis-guard"].startswith("flagged; rules=")
    rows = wait_audit(gw, resource='Agent::"poison"')
    assert rows[0]["decision"] == "allow"
    assert json.loads(rows[0]["guard"])[0]["action"] == "flag"
    r = httpx.get(f"{gw.url}/a2a/poison/.well-known/agent-card.json",
                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert [i["url"] for i in r.json()["supportedInterfaces"]] == [
        "https://agents.example.com/a2a/poison"
    ]


def test_the_extended_card_is_pointed_at_the_gateway_too(gw, agents):
    async def body():
        client, http = await client_for(gw, "echo", gw.keys["alice"])
        try:
            return await client.get_extended_agent_card(GetExtendedAgentCardRequest())
        finally:
            await http.aclose()

    card = run(body())
    assert "whisper" in [s.id for s in card.skills]  # the extended one
    assert [i.url for i in card.supported_interfaces] == [f"{gw.url}/a2a/echo"]
    # the raw answer holds no upstream address anywhere
    r = rpc(gw, "echo", {"jsonrpc": "2.0", "id": 9, "method": "GetExtendedAgentCard",
                         "params": {}}, gw.keys["alice"], {"A2A-Version": "1.0"})
    assert "result" in r.json(), r.text
    assert agents["echo"] not in r.text and "127.0.0.1:" + agents["echo"].rsplit(":", 1)[1] not in r.text


def test_the_shipped_example_config_and_policy_work(start_gateway, agents):
    """examples/a2a.yaml and a2a.cedar as shipped, with the agents' ports swapped in."""
    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples"
    p = subprocess.run([str(BIN), "check", "-c", str(examples / "a2a.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load((examples / "a2a.yaml").read_text())
    cfg["listen"] = f"127.0.0.1:{free_port()}"
    cfg["workers"] = 2
    for a in cfg["a2a"]["agents"]:
        a["url"] = agents[a["name"]] + "/"
    gw = start_gateway(cfg, start=False)
    (gw.dir / "a2a.cedar").write_text((examples / "a2a.cedar").read_text())
    researcher, intern = keys_create(gw, "researcher"), keys_create(gw, "intern")
    gw.start(timeout=120)
    ok = rpc(gw, "poison", send_v03("summarise"), researcher).json()
    assert "untrusted-data" in ok["result"]["parts"][0]["text"]  # sanitized, as configured
    assert rpc(gw, "echo", send_v03("hi"), intern).json()["result"]["parts"][0]["text"] == "echo: hi"
    denied = rpc(gw, "poison", send_v03("x"), intern).json()["error"]
    assert denied["code"] == -32050 and "no policy permits" in denied["message"]
    loud = send_v03("x")
    loud["params"]["message"]["metadata"] = {"skill": "shout"}
    assert "intern-no-shouting" in rpc(gw, "echo", loud, intern).json()["error"]["message"]


def test_an_agent_cannot_read_or_steer_another_agents_task(gw, agents):
    alice, bob = gw.keys["alice"], gw.keys["bob"]
    r = rpc(gw, "poison", send_v03("task", rid="a-1"), alice)
    task = r.json()["result"]
    assert task["kind"] == "task", r.text
    get = {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}}
    mine = rpc(gw, "poison", get, alice).json()
    assert mine["result"]["id"] == task["id"]
    # bob shares the agent but not the task: "not found", as the agent would say
    before = len(seen(agents["poison"]))
    for body in (get, {"jsonrpc": "2.0", "id": "c", "method": "tasks/cancel",
                       "params": {"id": task["id"]}}):
        err = rpc(gw, "poison", body, bob).json()["error"]
        assert err["code"] == -32001 and err["message"] == "task not found", err
        assert "alice" not in json.dumps(err)
    cont = send_v03("more", rid="b-2")
    cont["params"]["message"]["taskId"] = task["id"]
    assert rpc(gw, "poison", cont, bob).json()["error"]["code"] == -32001
    assert len(seen(agents["poison"])) == before  # none of it reached the agent
    rows = wait_audit(gw, 3, agent="bob", decision="deny")
    assert len(rows) == 3 and all('Agent::"alice"' in r["reason"] for r in rows), rows
    # a task the gateway never saw start is the agent's to judge
    other = {"jsonrpc": "2.0", "id": "o", "method": "tasks/get", "params": {"id": "no-such-task"}}
    assert rpc(gw, "poison", other, bob).json()["error"]["code"] == -32001
    assert len(seen(agents["poison"])) == before + 1
