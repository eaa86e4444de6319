# SPDX-License-Identifier: Apache-2.0
# Containment across agents, A2A -> MCP: an MCP session (the official Python SDK) reads
# private data; the same caller then sends an A2A message (the a2a-sdk client) through the
# gateway naming that session in Mcp-Session-Id, and the reply reads as a prompt
# injection (sanitized, or flagged) or comes from a `trust: untrusted` agent. The session
# now counts as having read untrusted content, so its send_email (exfiltration) is
# refused with the lethal trifecta naming the A2A agent. The same A2A call without the
# header, or naming a session of another identity, leaves the session able to send.
# Upstreams: tests/mcp/guard_fixture.py (stdio) and tests/integration/a2a_agents.py.
from __future__ import annotations

import asyncio

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from mcp.shared.exceptions import MCPError

from conftest import base_config, free_port
from test_a2a import POLICIES, agents, texts_of, user_message, wait_audit  # noqa: F401 (agents: fixture)
from test_guard_mcp import ALL_TOOLS, MAIL, SessionRecorder, connect_recorded, sent, servers
from test_mcp import keys_create, texts, wait_tools

TOOLS_POLICY = """
@id("tools")
permit (principal, action in [Action::"list_tool", Action::"call_tool"], resource);
"""


def gateway(start_gateway, agents, tmp_path, action: str):
    outbox = tmp_path / "outbox.jsonl"

    def cfg(guard: bool) -> dict:
        c = base_config(
            port,
            mcp={"servers": servers(outbox)},
            a2a={
                "agents": [
                    {"name": "echo", "url": agents["echo"] + "/"},
                    {"name": "poison", "url": agents["poison"] + "/"},
                    # the echo agent again, marked untrusted: clean replies still count
                    {"name": "outside", "url": agents["echo"] + "/", "trust": "untrusted"},
                ]
            },
            identity={"required": True},
            agents=[{"id": "alice"}, {"id": "bob"}],
            policy={"files": ["policies/*.cedar"], "default": "deny"},
        )
        if guard:
            c["guard"] = {"scan": ["tool_outputs", "a2a_replies"], "action": action, "trifecta": "enforce"}
        return c

    port = free_port()
    gw = start_gateway(cfg(False), start=False)  # keys made without compiling the rule pack
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "all.cedar").write_text(POLICIES + TOOLS_POLICY)
    gw.keys = {a: keys_create(gw, a) for a in ("alice", "bob")}
    gw.write_config(cfg(True))
    gw.start(timeout=120)
    gw.outbox = outbox
    return gw


async def a2a_send(gw, agent: str, key: str, session: str | None, text: str = "summarise"):
    """One message/send with the a2a-sdk client; returns (texts, x-portcullis-guard)."""
    guard: list[str] = []

    async def keep(resp: httpx.Response):
        if resp.request.method == "POST":
            guard.append(resp.headers.get("x-portcullis-guard", ""))

    headers = {"Authorization": f"Bearer {key}"}
    if session:
        headers["Mcp-Session-Id"] = session
    async with httpx.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [keep]}) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create_from_url(
            f"{gw.url}/a2a/{agent}"
        )
        got = [t async for ev in client.send_message(user_message(text)) for t in texts_of(ev)]
    return got, guard[-1] if guard else ""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


@pytest.mark.parametrize("action", ["sanitize", "flag"])
def test_a_poisoned_a2a_reply_taints_the_callers_mcp_session_named_in_the_header(
    start_gateway, agents, tmp_path, action
):
    gw = gateway(start_gateway, agents, tmp_path, action)
    alice, bob = gw.keys["alice"], gw.keys["bob"]

    async def body():
        rec = SessionRecorder(alice)
        async with connect_recorded(gw, rec) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            assert rec.session

            # the poisoned reply without naming the session, and naming it as bob
            # (not his session): alice's session is untouched and may still send
            got, g = await a2a_send(gw, "poison", alice, None)
            assert g.startswith("sanitized" if action == "sanitize" else "flagged"), g
            got, g = await a2a_send(gw, "poison", bob, rec.session)
            assert g.startswith("sanitized" if action == "sanitize" else "flagged"), g
            ok = await s.call_tool("work__send_email", MAIL)
            assert texts(ok).startswith("sent") and not ok.is_error

            # now alice names her own session: the next send is the lethal trifecta
            got, g = await a2a_send(gw, "poison", alice, rec.session)
            assert g.startswith("sanitized" if action == "sanitize" else "flagged"), g
            if action == "sanitize":
                assert any("removed by guard" in t for t in got), got
            else:
                assert any("IGNORE ALL PREVIOUS INSTRUCTIONS" in t for t in got), got
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            why = str(refused.value)
            assert "lethal trifecta" in why, why
            assert "work/read_file" in why and "a2a:poison" in why, why
            assert refused.value.error.data["reason"] == "lethal_trifecta", refused.value.error
            # it stays refused: the hub's own later publishes merge, they do not replace
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            with pytest.raises(MCPError):
                await s.call_tool("work__send_email", MAIL)

    run(body())
    assert len(sent(gw.outbox)) == 1  # only the send before the session was named
    # the audit is written behind the answers: wait for both refusals
    denied = wait_audit(gw, 2, action="call_tool", resource="work/send_email", decision="deny")
    assert len(denied) == 2 and all("a2a:poison" in r["reason"] for r in denied), denied


def test_a_clean_reply_from_an_untrusted_agent_taints_too_a_trusted_one_does_not(
    start_gateway, agents, tmp_path
):
    gw = gateway(start_gateway, agents, tmp_path, "sanitize")
    alice = gw.keys["alice"]

    async def body():
        rec = SessionRecorder(alice)
        async with connect_recorded(gw, rec) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            got, g = await a2a_send(gw, "echo", alice, rec.session, "fine")
            assert got == ["echo: fine"] and g == "", (got, g)
            ok = await s.call_tool("work__send_email", MAIL)
            assert texts(ok).startswith("sent") and not ok.is_error

            got, g = await a2a_send(gw, "outside", alice, rec.session, "fine")
            assert got == ["echo: fine"] and g == "", (got, g)  # the reply itself is untouched
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            why = str(refused.value)
            assert "lethal trifecta" in why and "a2a:outside (untrusted agent)" in why, why

        # a session that was never tainted, named on an untrusted reply, is refused too
        # once it reads private data (the flag was recorded before the hub knew it)
        rec2 = SessionRecorder(alice)
        async with connect_recorded(gw, rec2) as s:
            await wait_tools(s, *ALL_TOOLS)
            await a2a_send(gw, "outside", alice, rec2.session, "fine")
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            assert "a2a:outside" in str(refused.value), refused.value

    run(body())
    assert len(sent(gw.outbox)) == 1
