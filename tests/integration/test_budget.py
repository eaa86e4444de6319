# SPDX-License-Identifier: Apache-2.0
# Budgets that roll up through the agent tree (embedded backend): children
# spending in parallel through the mock provider never push their parent past
# its cap, and a refusal is a 429 budget_exceeded naming the node and period.
from __future__ import annotations

import json
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import yaml

from conftest import assert_openai_error, base_config, free_port, mock_provider, model, target
from test_identity import cli, create_key

# $1 per million input tokens, $1000 per million output tokens: a mock answer
# of 16 completion tokens costs about $0.016; asking for max_tokens 20 reserves
# about $0.020.
PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 1000.0}
PARENT_CAP = 0.2
CHILDREN = [f"child{i}" for i in range(5)]
MSGS = [{"role": "user", "content": "hello"}]


def budget_config(agents: list[dict]) -> dict:
    return base_config(
        free_port(),
        providers=[mock_provider(latency="30ms")],
        models=[model("mock-1", target("mock"), price=PRICE)],
        identity={"required": True},
        agents=agents,
    )


def cost_of(usage: dict) -> float:
    return (usage["prompt_tokens"] * PRICE["input_per_mtok"]
            + usage["completion_tokens"] * PRICE["output_per_mtok"]) / 1e6


def call(gw, key: str, stream: bool) -> tuple[int, dict, dict]:
    """(status, usage or error, headers) for one chat call."""
    body = {"model": "mock-1", "messages": MSGS, "max_tokens": 20}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    if r.status_code != 200:
        return r.status_code, r, r.headers
    if not stream:
        return 200, r.json()["usage"], r.headers
    usage = None
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            ev = json.loads(line[6:])
            usage = ev.get("usage") or usage
    assert usage, r.text
    return 200, usage, r.headers


def test_children_spending_in_parallel_never_push_the_parent_past_its_cap(start_gateway):
    agents = [{
        "id": "parent",
        "budget": {"usd_total": PARENT_CAP},
        "children": [{"id": c, "budget": {"usd_total": PARENT_CAP}} for c in CHILDREN],
    }]
    gw = start_gateway(budget_config(agents))
    keys = {c: create_key(gw, c) for c in CHILDREN}
    jobs = [(keys[c], i % 2 == 0) for i in range(8) for c in CHILDREN]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda j: call(gw, *j), jobs))
    ok = [u for s, u, _ in results if s == 200]
    refused = [r for s, r, _ in results if s != 200]
    spent = sum(cost_of(u) for u in ok)
    assert spent <= PARENT_CAP + 1e-9, (spent, len(ok))
    # every call reserves at most ~$0.0201; the parent fits at least 9 of them
    assert len(ok) >= 9, len(ok)
    assert refused, "40 calls of ~$0.016 cannot all fit under $0.20"
    for r in refused:
        err = assert_openai_error(r, 429)
        assert err["type"] == "budget_exceeded" and err["code"] == "budget_exceeded", err
        assert "'parent'" in err["message"] and "total" in err["message"], err
        assert "retry-after" not in r.headers  # a total cap has no boundary
    # the cap stays spent: the next call is refused at once
    s, r, _ = call(gw, keys["child0"], False)
    assert s == 429 and "'parent'" in r.json()["error"]["message"]


def test_a_day_cap_refuses_with_retry_after_at_utc_midnight(start_gateway):
    agents = [{"id": "org", "children": [{"id": "tiny", "budget": {"usd_per_day": 0.01}}]}]
    gw = start_gateway(budget_config(agents))
    key = create_key(gw, "tiny")
    s, r, headers = call(gw, key, False)
    err = assert_openai_error(r, 429)
    assert err["type"] == "budget_exceeded", err
    assert "'tiny'" in err["message"] and "per-day" in err["message"], err
    left = 86400 - int(time.time()) % 86400
    assert abs(int(headers["retry-after"]) - left) <= 5, headers
    # a sibling without a cap of its own is not charged to tiny
    other = create_key(gw, "org")
    s, usage, _ = call(gw, other, True)
    assert s == 200 and usage["completion_tokens"] == 16


def test_unknown_budget_keys_are_config_errors(start_gateway):
    gw = start_gateway(budget_config([{"id": "a", "budget": {"usd_per_week": 1}}]), start=False)
    gw.write_config(gw.config)
    p = cli(gw, "check", check=False)
    assert p.returncode != 0
    assert "usd_per_week" in p.stdout + p.stderr, p.stdout + p.stderr


def test_spend_survives_a_config_reload(start_gateway):
    agents = [{"id": "parent", "budget": {"usd_total": 0.05}, "children": [{"id": "kid"}]}]
    cfg = budget_config(agents)
    gw = start_gateway(cfg)
    key = create_key(gw, "kid")
    statuses = [call(gw, key, False)[0] for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses
    # a reload that raises nothing keeps the spend: still refused
    cfg["agents"][0]["description"] = "reloaded"
    gw.reload(cfg)
    time.sleep(1.0)
    s, r, _ = call(gw, key, True)
    assert s == 429 and "'parent'" in r.json()["error"]["message"], s
    # raising the cap lets exactly the difference through
    cfg["agents"][0]["budget"]["usd_total"] = 0.1
    gw.reload(cfg)

    def allowed():
        return call(gw, key, False)[0] == 200

    deadline = time.monotonic() + 5
    while not allowed():
        assert time.monotonic() < deadline, "the raised cap never took effect"
        time.sleep(0.1)


def test_example_budget_config_is_used_up_by_about_ten_calls(start_gateway):
    """examples/budget.yaml as shipped: "parent" runs out after about ten plain mock calls."""
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "budget.yaml").read_text())
    cfg["listen"] = f"127.0.0.1:{free_port()}"
    cfg["workers"] = 1
    gw = start_gateway(cfg)
    key = create_key(gw, "parent")
    n = 0
    with gw.http() as h:
        while n < 50:
            r = h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS},
                       headers={"Authorization": f"Bearer {key}"})
            if r.status_code != 200:
                break
            n += 1
    assert 10 <= n <= 13, n
    err = assert_openai_error(r, 429)
    assert err["type"] == "budget_exceeded" and "'parent'" in err["message"], err


def test_200_parallel_streams_against_a_small_cap_let_through_the_ideal_count(start_gateway):
    cap = 0.5
    agents = [{"id": "org", "budget": {"usd_per_day": cap}, "children": [{"id": "bot"}]}]
    gw = start_gateway(budget_config(agents))
    key = create_key(gw, "bot")
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: call(gw, key, True), range(200)))
    ok = [u for s, u, _ in results if s == 200]
    assert all(s in (200, 429) for s, _, _ in results), {s for s, _, _ in results}
    spent = sum(cost_of(u) for u in ok)
    assert spent <= cap + 1e-9, spent
    ideal = int(cap // cost_of(ok[0]))
    assert ideal - 1 <= len(ok) <= ideal, (len(ok), ideal)
