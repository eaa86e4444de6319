# SPDX-License-Identifier: Apache-2.0
# Rate limits and breakers on MCP tools/call, through the official MCP Python
# SDK client: an agent's tool_calls_per_minute counts the calls of the agent
# and its descendants, an MCP server's calls_per_minute the calls routed to it
# from every caller; a refusal is a JSON-RPC error (-32029) naming the limit,
# with the wait, audited and counted in /metrics, and takes nothing from the
# other limits. A server's breaker opens after N failed calls in a row (here
# timeouts), refuses its tools/call (-32030) for the pause, and the probe
# after it closes it again.
from __future__ import annotations

import re
import time

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from conftest import free_port
from test_mcp import (  # noqa: F401 (http_fixture is a fixture)
    audit_rows, connect, http_fixture, keys_create, mcp_config, run, texts, wait_audit,
    wait_tools)


@pytest.fixture
def gw(start_gateway, http_fixture):
    cfg = mcp_config(
        free_port(),
        [{"name": "a", "url": http_fixture("a").url, "rate_limit": {"calls_per_minute": 3}},
         {"name": "b", "url": http_fixture("b").url}],
        identity={"required": True},
        agents=[{"id": "team", "rate_limit": {"tool_calls_per_minute": 4},
                 "children": [{"id": "alice"}, {"id": "bob"}]}],
    )
    g = start_gateway(cfg, start=False)
    g.keys = {a: keys_create(g, a) for a in ("alice", "bob")}
    return g.start()


def metric(gw, labels: str) -> int | None:
    with gw.http() as h:
        text = h.get("/metrics").text
    m = re.search(rf"^portcullis_rate_limited_total\{{{re.escape(labels)}\}} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def test_tool_calls_per_agent_and_per_server(gw):
    async def body():
        async with connect(gw, gw.keys["alice"]) as a:
            await wait_tools(a, "a__echo", "b__echo")
            for i in range(3):
                assert texts(await a.call_tool("a__echo", {"text": f"x{i}"})) == f"a: x{i}"
            # server a takes 3 a minute from everyone
            with pytest.raises(MCPError) as exc:
                await a.call_tool("a__echo", {"text": "x3"})
            e = exc.value
            assert e.code == -32029, (e.code, e.message)
            assert "MCP server 'a'" in e.message and "limit 3" in e.message, e.message
            assert e.data["type"] == "rate_limit_exceeded" and e.data["mcp_server"] == "a"
            assert 15000 <= e.data["retry_after_ms"] <= 20000, e.data  # one call per 20 s
            # the refused call took nothing from team (4 a minute): one more fits
            assert texts(await a.call_tool("b__echo", {"text": "y"})) == "b: y"
        async with connect(gw, gw.keys["bob"]) as b:
            # bob is team's child too: team's 4 are used up, even on server b
            with pytest.raises(MCPError) as exc:
                await b.call_tool("b__echo", {"text": "z"})
            e = exc.value
            assert e.code == -32029
            assert "agent 'team'" in e.message and "tool calls per minute" in e.message, e.message
            assert e.data["agent"] == "team" and e.data["limit"] == 4, e.data
            # other requests are not rate-limited
            assert "b__echo" in {t.name for t in (await b.list_tools()).tools}

    run(body)
    assert metric(gw, 'mcp_server="a"') == 1
    assert metric(gw, 'agent="team"') == 1
    denied = wait_audit(gw, action="call_tool", decision="deny")
    deadline = time.monotonic() + 10
    while len(denied) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        denied = audit_rows(gw, action="call_tool", decision="deny")
    got = sorted((r["agent"], r["resource"], r["reason"]) for r in denied)
    assert got == [("alice", "a/echo", "rate_limit_exceeded: a mcp_server"),
                   ("bob", "b/echo", "rate_limit_exceeded: team tool_calls")], got
    allowed = audit_rows(gw, action="call_tool", decision="allow")
    assert len(allowed) == 4, allowed


def test_a_failing_server_trips_its_breaker_and_the_probe_closes_it(start_gateway, http_fixture):
    a, b = http_fixture("a"), http_fixture("b")
    cfg = mcp_config(free_port(), [
        {"name": "a", "url": a.url, "timeout": "500ms",
         "breaker": {"consecutive_errors": 2, "pause": "2s"}},
        {"name": "b", "url": b.url}])
    gw = start_gateway(cfg)

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, "a__sleep", "a__echo", "b__echo")
            assert texts(await s.call_tool("a__echo", {"text": "up"})) == "a: up"
            # two calls that time out: two errors in a row open the breaker
            for _ in range(2):
                with pytest.raises(MCPError) as exc:
                    await s.call_tool("a__sleep", {"seconds": 3})
                assert "MCP server 'a'" in exc.value.message, exc.value.message
                assert exc.value.code == -32603, exc.value.message
            # now every tools/call to a is refused by the gateway, even a fast one
            with pytest.raises(MCPError) as exc:
                await s.call_tool("a__echo", {"text": "refused"})
            e = exc.value
            assert e.code == -32030, (e.code, e.message)
            assert "circuit breaker 'mcp:a' is open after 2 consecutive errors" in e.message
            assert e.data["type"] == "circuit_breaker_open" and e.data["breaker"] == "mcp:a"
            assert 0 < e.data["retry_after_ms"] <= 2000, e.data
            # the other server is not affected
            assert texts(await s.call_tool("b__echo", {"text": "fine"})) == "b: fine"
            # after the pause one probe goes through; its success closes the breaker
            await anyio.sleep(2.2)
            assert texts(await s.call_tool("a__echo", {"text": "back"})) == "a: back"
            assert texts(await s.call_tool("a__echo", {"text": "again"})) == "a: again"

    run(body)
    with gw.http() as h:
        m = h.get("/metrics").text
    assert 'portcullis_breaker_state{breaker="mcp:a"} 0' in m, m
    assert 'portcullis_breaker_trips_total{breaker="mcp:a"} 1' in m
    assert 'portcullis_breaker_refused_total{breaker="mcp:a"} 1' in m
    denied = wait_audit(gw, action="call_tool", decision="deny")
    assert [(r["resource"], r["reason"]) for r in denied] == \
        [("a/echo", "circuit_breaker_open: mcp:a")], denied
