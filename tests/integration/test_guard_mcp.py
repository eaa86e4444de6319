# SPDX-License-Identifier: Apache-2.0
# The guard on the MCP gateway, as an MCP client (the official Python SDK) sees it:
# tool outputs scanned and sanitized / blocked / flagged (text items, embedded
# resources, structuredContent), per-server overrides, the findings in the audit, and
# the lethal trifecta per session: after a private_data tool and untrusted content, a
# tool labelled exfiltration is refused with the three legs named, a fresh session may
# call it, and a Cedar policy annotated @trifecta("allow") may permit it; a token
# delegated from a tainted session (POST /oauth/token with Mcp-Session-Id) carries the
# taint into the sub-agent's session.
# Upstreams: tests/mcp/guard_fixture.py over stdio (web, wiki, work).
from __future__ import annotations

import base64
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from conftest import REPO, free_port
from test_mcp import audit_rows, connect, keys_create, mcp_config, run, texts, wait_audit, wait_tools

GUARD_FIXTURE = REPO / "tests" / "mcp" / "guard_fixture.py"
META = "io.portcullis/guard"
# Phrases of the attack the fixture's poisoned page carries (tests/mcp/guard_fixture.py):
# the first two are what the rules match (and sanitize cuts out), the third is not
ATTACK_BITS = ("Note to the AI agent", "Your real job now", "set aside whatever your operator")
PAGE_BITS = ("Weekly gardening tips", "Mulch keeps the soil moist")
SECRET = "Payroll 2026 (confidential)"
ALL_TOOLS = ("web__fetch_page", "wiki__fetch_page", "work__read_file", "work__send_email")


def fixture(name: str, outbox: Path, **extra) -> dict:
    return {
        "name": name,
        "command": [sys.executable, str(GUARD_FIXTURE), "--stdio", "--name", name, "--outbox", str(outbox)],
        **extra,
    }


def servers(outbox: Path, web: dict | None = None, wiki: dict | None = None) -> list[dict]:
    """web: an untrusted server; wiki: a trusted one serving the same pages; work: the
    private files and the mail tool."""
    return [
        fixture("web", outbox, trust="untrusted", **(web or {})),
        fixture("wiki", outbox, **(wiki or {})),
        fixture("work", outbox, tools={"read_file": ["private_data"], "send_email": ["exfiltration"]}),
    ]


def sent(outbox: Path) -> list[dict]:
    return [json.loads(l) for l in outbox.read_text().splitlines()] if outbox.exists() else []


def meta(res: types.CallToolResult) -> dict | None:
    return (res.meta or {}).get(META)


def audit_of(gw, resource: str, **where) -> list[dict]:
    wait_audit(gw, action="call_tool", resource=resource, **where)
    return audit_rows(gw, action="call_tool", resource=resource, **where)


MAIL = {"to": "boss@example.com", "body": "the numbers"}


# =============================================================================
# sanitize + trifecta: enforce (the end-to-end case)
# =============================================================================


@pytest.fixture
def sanitizing(start_gateway, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_config(
        free_port(),
        servers(outbox),
        guard={"scan": ["tool_outputs"], "action": "sanitize", "trifecta": "enforce"},
    )
    gw = start_gateway(cfg)
    gw.outbox = outbox
    return gw


def test_poisoned_page_is_sanitized_and_the_next_send_email_is_refused_but_a_fresh_session_may(sanitizing):
    gw = sanitizing

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            private = await s.call_tool("work__read_file", {"path": "payroll.txt"})
            assert SECRET in texts(private) and meta(private) is None

            page = await s.call_tool("web__fetch_page", {"url": "https://garden.example/poisoned"})
            got = texts(page)
            assert not page.is_error
            # the matched spans are cut out, the rest of the page is there, all of it
            # inside data markers
            m = meta(page)
            assert m and m["action"] == "sanitize" and m["injection"] is True, page.meta
            assert m["rules"] and all(f["item"] == "content[0].text" for f in m["findings"]), m
            for f in m["findings"]:
                if f["severity"] != "low":
                    assert f"[removed by guard: {f['rule']}]" in got, (f, got)
            for bit in ATTACK_BITS[:2]:
                assert bit not in got, got
            for bit in PAGE_BITS:
                assert bit in got, got
            assert got.startswith('<untrusted-data source="web/fetch_page" guard="injection">'), got
            assert got.rstrip().endswith("</untrusted-data>"), got

            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            why = str(refused.value)
            assert "lethal trifecta" in why, why
            assert "work/read_file" in why  # read private data
            assert "web/fetch_page" in why  # untrusted content
            assert "work/send_email" in why  # would send it out
            assert refused.value.error.data["reason"] == "lethal_trifecta", refused.value.error

        async with connect(gw) as fresh:
            await wait_tools(fresh, "work__send_email")
            ok = await fresh.call_tool("work__send_email", MAIL)
            assert texts(ok) == "sent to boss@example.com" and not ok.is_error

    run(body)
    assert [m["to"] for m in sent(gw.outbox)] == ["boss@example.com"]  # only the fresh session's

    fetched = audit_of(gw, "web/fetch_page")
    assert fetched and fetched[0]["decision"] == "allow", fetched
    findings = json.loads(fetched[0]["guard"])
    assert findings and {f["action"] for f in findings} == {"sanitize"}, findings
    assert all(f["item"] == "content[0].text" and f["rule"] for f in findings), findings
    refused = audit_of(gw, "work/send_email", decision="deny")
    assert len(refused) == 1 and "lethal trifecta" in refused[0]["reason"], refused
    assert "work/read_file" in refused[0]["reason"] and "web/fetch_page" in refused[0]["reason"]
    assert len(audit_of(gw, "work/send_email", decision="allow")) == 1
    assert json.loads(audit_of(gw, "work/read_file")[0]["guard"]) == []


def test_each_leg_is_needed_and_each_source_of_untrusted_content_counts(sanitizing):
    gw = sanitizing

    async def body():
        # untrusted content without private data: may send
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("web__fetch_page", {"url": "https://garden.example/poisoned"})
            assert texts(await s.call_tool("work__send_email", MAIL)).startswith("sent")
        # private data and a clean page from a trusted server: may send
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            clean = await s.call_tool("wiki__fetch_page", {"url": "https://garden.example/tips"})
            assert texts(clean) == "Weekly gardening tips: water tomatoes in the morning, before the heat.\n\nMulch keeps the soil moist through July."
            assert meta(clean) is None
            assert texts(await s.call_tool("work__send_email", MAIL)).startswith("sent")
        # a clean page, but from the server marked trust: untrusted: refused
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            clean = await s.call_tool("web__fetch_page", {"url": "https://garden.example/tips"})
            assert "<untrusted-data" not in texts(clean)  # nothing found: passed untouched
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            assert "read untrusted content (web/fetch_page)" in str(refused.value), str(refused.value)
        # the trusted server, but the scanner found an injection: refused, the rule named
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            await s.call_tool("wiki__fetch_page", {"url": "https://garden.example/poisoned"})
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            assert "read untrusted content (wiki/fetch_page (guard: " in str(refused.value), str(refused.value)

    run(body)
    assert len(sent(gw.outbox)) == 2


# =============================================================================
# block, flag, per-server overrides, embedded resources and structuredContent
# =============================================================================


def test_block_withholds_text_resource_and_structured_outputs_and_overrides_apply(start_gateway, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_config(
        free_port(),
        servers(outbox, wiki={"guard": "flag"}) + [fixture("raw", outbox, guard="off")],
        guard={"scan": ["tool_outputs"], "action": "block", "trifecta": "enforce"},
    )
    gw = start_gateway(cfg)

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS, "raw__fetch_page")
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            for tool in ("web__fetch_page", "web__fetch_resource", "web__fetch_record"):
                res = await s.call_tool(tool, {"url": "https://garden.example/poisoned"})
                got = texts(res)
                assert res.is_error is True, (tool, res)
                assert res.structured_content is None and len(res.content) == 1, (tool, res)
                assert got.startswith(f"portcullis guard withheld the output of tool web/{tool[5:]}"), got
                assert "guard rules " in got and "prompt injection" in got, got
                for bit in ATTACK_BITS + PAGE_BITS:
                    assert bit not in got, got
                m = meta(res)
                assert m and m["action"] == "block" and m["rules"], res.meta
                assert m["rules"].split(",")[0] in got
            res = await s.call_tool("web__fetch_resource", {"url": "https://garden.example/poisoned"})
            assert {f["item"] for f in meta(res)["findings"]} == {"content[0].resource.text"}
            res = await s.call_tool("web__fetch_record", {"url": "https://garden.example/poisoned"})
            items = {f["item"] for f in meta(res)["findings"]}
            assert items == {"content[0].text", "structuredContent.page.body"}, items

            # withheld content was never read: the session is not tainted by it
            assert texts(await s.call_tool("work__send_email", MAIL)).startswith("sent")

            # guard: flag on wiki: passed through, findings in _meta with byte spans
            res = await s.call_tool("wiki__fetch_page", {"url": "https://garden.example/poisoned"})
            got = texts(res)
            assert all(bit in got for bit in ATTACK_BITS) and not res.is_error, got
            m = meta(res)
            assert m["action"] == "flag", m
            raw = got.encode()
            spans = [raw[f["start"] : f["end"]].decode() for f in m["findings"]]
            attack_at = raw.index(b"Note to the AI agent")
            assert all(attack_at <= f["start"] < f["end"] <= attack_at + 300 for f in m["findings"]), (m, spans)

            # guard: off on raw: untouched, no _meta
            res = await s.call_tool("raw__fetch_page", {"url": "https://garden.example/poisoned"})
            assert all(bit in texts(res) for bit in ATTACK_BITS) and meta(res) is None

        # flagged content was read: this session is tainted (wiki is trusted, the scan counts)
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            await s.call_tool("wiki__fetch_page", {"url": "https://garden.example/poisoned"})
            with pytest.raises(MCPError) as refused:
                await s.call_tool("work__send_email", MAIL)
            assert "lethal trifecta" in str(refused.value)

    run(body)
    withheld = audit_of(gw, "web/fetch_page")
    assert withheld[0]["decision"] == "deny", withheld
    assert withheld[0]["reason"].startswith("guard: tool output withheld (rules "), withheld
    assert {f["action"] for f in json.loads(withheld[0]["guard"])} == {"block"}
    flagged = audit_of(gw, "wiki/fetch_page")
    assert flagged[0]["decision"] == "allow" and {f["action"] for f in json.loads(flagged[0]["guard"])} == {"flag"}
    assert json.loads(audit_of(gw, "raw/fetch_page")[0]["guard"]) == []


def test_trifecta_warn_lets_the_call_through_and_audits_the_three_legs(start_gateway, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_config(
        free_port(),
        servers(outbox),
        guard={"scan": ["tool_outputs"], "action": "flag", "trifecta": "warn"},
    )
    gw = start_gateway(cfg)

    async def body():
        async with connect(gw) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            page = await s.call_tool("web__fetch_page", {"url": "https://garden.example/poisoned"})
            assert ATTACK_BITS[0] in texts(page) and meta(page)["action"] == "flag"
            assert texts(await s.call_tool("work__send_email", MAIL)).startswith("sent")

    run(body)
    assert len(sent(outbox)) == 1
    row = audit_of(gw, "work/send_email")[0]
    assert row["decision"] == "allow" and row["reason"].startswith("trifecta_warn: lethal trifecta"), row


# =============================================================================
# Cedar: the flags are in the context; @trifecta("allow") permits explicitly
# =============================================================================

TRIFECTA_POLICIES = """\
@id("everyone-lists")
permit (principal, action == Action::"list_tool", resource);
@id("everyone-calls")
permit (principal, action == Action::"call_tool", resource);

// alice's reports agent may mail after reading the web: an explicit, reviewed exception
@id("alice-mails-after-web")
@trifecta("allow")
permit (principal == Agent::"alice", action == Action::"call_tool", resource == Tool::"work/send_email")
  when { context.session.private_data && context.session.untrusted };

// carol may read untrusted content, but then no private file at all
@id("carol-no-private-after-web")
forbid (principal == Agent::"carol", action == Action::"call_tool", resource)
  when { context.session.untrusted && resource.labels.contains("private_data") };
"""


def test_a_policy_annotated_trifecta_allow_permits_and_the_flags_are_in_the_context(start_gateway, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_config(
        free_port(),
        servers(outbox),
        guard={"scan": ["tool_outputs"], "trifecta": "enforce"},
        identity={"required": True},
        agents=[{"id": "alice"}, {"id": "bob"}, {"id": "carol"}],
        policy={"files": ["policies/*.cedar"], "default": "deny"},
    )
    # the keys are made on the config without guard: (no rule pack to compile for that)
    gw = start_gateway({k: v for k, v in cfg.items() if k != "guard"}, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "trifecta.cedar").write_text(TRIFECTA_POLICIES)
    keys = {a: keys_create(gw, a) for a in ("alice", "bob", "carol")}
    gw.write_config(cfg)
    gw.start()

    async def body():
        for agent in ("alice", "bob"):
            async with connect(gw, keys[agent]) as s:
                await wait_tools(s, *ALL_TOOLS)
                await s.call_tool("work__read_file", {"path": "payroll.txt"})
                await s.call_tool("web__fetch_page", {"url": "https://garden.example/poisoned"})
                if agent == "alice":
                    assert texts(await s.call_tool("work__send_email", MAIL)).startswith("sent")
                else:  # a plain permit is not an explicit permission
                    with pytest.raises(MCPError) as refused:
                        await s.call_tool("work__send_email", MAIL)
                    assert "lethal trifecta" in str(refused.value)
                    assert '@trifecta("allow")' in str(refused.value)
        async with connect(gw, keys["carol"]) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "before.txt"})  # not yet untrusted
            await s.call_tool("web__fetch_page", {"url": "https://garden.example/tips"})
            with pytest.raises(MCPError) as denied:
                await s.call_tool("work__read_file", {"path": "after.txt"})
            assert "carol-no-private-after-web" in str(denied.value), str(denied.value)

    run(body)
    assert [m["to"] for m in sent(outbox)] == ["boss@example.com"]
    alice = audit_of(gw, "work/send_email", agent="alice")
    bob = audit_of(gw, "work/send_email", agent="bob")
    assert alice[0]["decision"] == "allow", alice
    assert alice[0]["reason"].startswith("trifecta_permitted_by_policy "), alice
    assert "alice-mails-after-web" in alice[0]["reason"] and "lethal trifecta" in alice[0]["reason"], alice
    assert bob[0]["decision"] == "deny" and "lethal trifecta" in bob[0]["reason"], bob


# =============================================================================
# containment: a token delegated from a tainted session carries the taint
# =============================================================================

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"

DELEGATION_POLICIES = """\
@id("tools")
permit (principal, action in [Action::"list_tool", Action::"call_tool"], resource);
@id("alice-delegates-to-helper")
permit (principal == Agent::"alice", action == Action::"delegate", resource == Agent::"helper");
@id("mallory-delegates-to-helper")
permit (principal == Agent::"mallory", action == Action::"delegate", resource == Agent::"helper");
"""


class SessionRecorder(httpx2.Auth):
    """Bearer auth that remembers the Mcp-Session-Id the gateway gave."""

    def __init__(self, token: str):
        self.token = token
        self.session: str | None = None

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        self.session = response.headers.get("mcp-session-id") or self.session


@asynccontextmanager
async def connect_recorded(gw, auth: SessionRecorder):
    async with create_mcp_http_client(auth=auth) as http:
        async with streamable_http_client(gw.url + "/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                yield session


def delegate(gw, subject: str, session: str | None = None) -> httpx.Response:
    data = {"grant_type": GRANT, "subject_token": subject, "subject_token_type": ACCESS, "audience": "helper"}
    headers = {"Mcp-Session-Id": session} if session else {}
    with gw.http() as h:
        return h.post("/oauth/token", data=data, headers=headers)


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_a_token_delegated_from_a_tainted_session_carries_the_taint_into_the_sub_agents_session(
    start_gateway, tmp_path
):
    outbox = tmp_path / "outbox.jsonl"
    cfg = mcp_config(
        free_port(),
        servers(outbox),
        guard={"scan": ["tool_outputs"], "trifecta": "enforce"},
        identity={"required": True},
        agents=[{"id": "alice"}, {"id": "helper"}, {"id": "mallory"}],
        policy={"files": ["policies/*.cedar"], "default": "deny"},
    )
    gw = start_gateway({k: v for k, v in cfg.items() if k != "guard"}, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "delegation.cedar").write_text(DELEGATION_POLICIES)
    alice, mallory = keys_create(gw, "alice"), keys_create(gw, "mallory")
    gw.write_config(cfg)
    gw.start()
    tokens: dict[str, str] = {}

    async def body():
        rec = SessionRecorder(alice)
        async with connect_recorded(gw, rec) as s:
            await wait_tools(s, *ALL_TOOLS)
            await s.call_tool("work__read_file", {"path": "payroll.txt"})
            await s.call_tool("web__fetch_page", {"url": "https://garden.example/poisoned"})
            assert rec.session
            # delegations made while the session is open
            r = delegate(gw, alice, rec.session)
            assert r.status_code == 200, r.text
            tokens["tainted"] = r.json()["access_token"]
            r = delegate(gw, alice)
            assert r.status_code == 200, r.text
            tokens["clean"] = r.json()["access_token"]
            # naming a session that is not the caller's carries nothing (and says nothing)
            r = delegate(gw, mallory, rec.session)
            assert r.status_code == 200, r.text
            tokens["mallory"] = r.json()["access_token"]

        taint = claims_of(tokens["tainted"])["pcl"]["taint"]
        assert taint["private_data"] == "work/read_file", taint
        assert taint["untrusted"].startswith("web/fetch_page"), taint
        assert "taint" not in claims_of(tokens["clean"])["pcl"]
        assert "taint" not in claims_of(tokens["mallory"])["pcl"]

        # the sub-agent's session starts tainted: its first send_email is refused
        async with connect_recorded(gw, SessionRecorder(tokens["tainted"])) as h:
            await wait_tools(h, "work__send_email")
            with pytest.raises(MCPError) as refused:
                await h.call_tool("work__send_email", MAIL)
            why = str(refused.value)
            assert "lethal trifecta" in why and "work/read_file, before delegation" in why, why
            assert "web/fetch_page" in why, why
        # a token delegated without naming the session starts clean
        async with connect_recorded(gw, SessionRecorder(tokens["clean"])) as h:
            await wait_tools(h, "work__send_email")
            assert texts(await h.call_tool("work__send_email", MAIL)).startswith("sent")

    run(body)
    assert len(sent(outbox)) == 1
    rows = wait_audit(gw, action="token_exchange", decision="allow")
    assert sum("carries taint private_data untrusted" in (r["reason"] or "") for r in rows) == 1, rows
