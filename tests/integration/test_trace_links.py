# SPDX-License-Identifier: Apache-2.0
# The call graph across a tool boundary: an agent calls an MCP tool through the
# gateway; the tool server, while serving it, calls a model through the same
# gateway with the traceparent it was sent. The model call is recorded as the
# tool call's child (parent and root request ids), and `portcullis trace`
# prints the tool call with the model call under it.
from __future__ import annotations

import json
import re
import subprocess

from conftest import BIN, free_port, require_binary
from test_mcp import (  # noqa: F401  (http_fixture is a fixture)
    connect,
    http_fixture,
    keys_create,
    mcp_config,
    run,
    texts,
    wait_audit,
    wait_tools,
)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def test_a_tools_callback_to_the_gateway_is_the_tool_calls_child(start_gateway, http_fixture):
    web = http_fixture("web")
    cfg = mcp_config(
        free_port(),
        [{"name": "web", "url": web.url}],
        identity={"required": True},
        agents=[{"id": "orchestrator"}, {"id": "web-tool"}],
    )
    gw = start_gateway(cfg, start=False)
    agent_key, tool_key = keys_create(gw, "orchestrator"), keys_create(gw, "web-tool")
    gw.start()

    async def call_trace_tool():
        async with connect(gw, key=agent_key) as s:
            await wait_tools(s, "trace")
            return json.loads(texts(await s.call_tool("trace", {})))

    seen = run(call_trace_tool)
    tp = seen["header"]
    m = TRACEPARENT.match(tp or "")
    assert m, seen

    # The tool server calls a model through the gateway, passing the trace on.
    with gw.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {tool_key}", "traceparent": tp},
            json={"model": "mock-1", "messages": [{"role": "user", "content": "summarise"}]},
        )
    assert r.status_code == 200, r.text
    chat_rid = r.headers["x-request-id"]

    call = [row for row in wait_audit(gw, agent="orchestrator") if "trace" in (row["resource"] or "")]
    assert len(call) == 1, call
    child = wait_audit(gw, request_id=chat_rid)
    assert len(child) == 1
    assert child[0]["parent_request_id"] == call[0]["request_id"], (child, call)
    assert child[0]["root_request_id"] == call[0]["root_request_id"]
    assert child[0]["trace_id"] == call[0]["trace_id"] == m.group(1)

    require_binary()
    out = subprocess.run(
        [str(BIN), "trace", "-c", str(gw.config_path), chat_rid],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if "request " in l and not l.startswith("trace of")]
    i_call = next(i for i, l in enumerate(lines) if call[0]["request_id"] in l)
    i_chat = next(i for i, l in enumerate(lines) if chat_rid in l)
    assert i_call < i_chat, out.stdout
    assert "orchestrator" in lines[i_call] and "web-tool: chat → model mock-1" in lines[i_chat]
    assert lines[i_chat].index("request") > lines[i_call].index("request"), out.stdout

    # A traceparent the gateway never sent links nothing.
    with gw.http() as h:
        r = h.post(
            "/v1/chat/completions",
            headers={
                "Authorization": f"Bearer {tool_key}",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
            json={"model": "mock-1", "messages": [{"role": "user", "content": "x"}]},
        )
    other = wait_audit(gw, request_id=r.headers["x-request-id"])
    assert other[0]["parent_request_id"] is None
    assert other[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
