# SPDX-License-Identifier: Apache-2.0
# The seed scenario of issue 8: an agent with a $20 cap spawns five
# sub-agents with $20 caps each, all spending in parallel through the mock
# provider. The exposure is $20, not $120: the total charged to the parent
# never exceeds its cap, and the ledger says the same as the clients.
from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from conftest import base_config, free_port, mock_provider, model, target
from test_identity import create_key

# 16 completion tokens at $30000 per million: about $0.48 a call; asking for
# max_tokens 20 reserves about $0.60.
PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 30000.0}
KIDS = [f"sub{i}" for i in range(5)]


def charge(usage: dict) -> int:
    return usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 30000


def one_call(gw, key: str, stream: bool) -> tuple[int, int]:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": "work"}], "max_tokens": 20}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    if r.status_code != 200:
        assert r.status_code == 429 and r.json()["error"]["type"] == "budget_exceeded", r.text
        return 429, 0
    if not stream:
        return 200, charge(r.json()["usage"])
    usage = [json.loads(l[6:])["usage"] for l in r.text.splitlines()
             if l.startswith("data: {") and json.loads(l[6:]).get("usage")]
    return 200, charge(usage[-1])


def test_five_sub_agents_with_20_dollar_caps_cannot_spend_more_than_the_parents_20(start_gateway):
    cfg = base_config(
        free_port(),
        providers=[mock_provider(latency="10ms")],
        models=[model("mock-1", target("mock"), price=PRICE)],
        identity={"required": True},
        agents=[{"id": "parent", "budget": {"usd_per_day": 20},
                 "children": [{"id": k, "budget": {"usd_per_day": 20}} for k in KIDS]}],
    )
    gw = start_gateway(cfg)
    keys = [create_key(gw, k) for k in KIDS]
    jobs = [(keys[i % 5], i % 2 == 0) for i in range(5 * 20)]  # 100 calls, ~$48 asked for
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda j: one_call(gw, *j), jobs))
    charged = sum(c for s, c in results if s == 200)
    ok = sum(1 for s, _ in results if s == 200)
    assert charged <= 20_000_000, f"parent charged ${charged / 1e6:.6f} > $20"
    # within one reservation (~$0.60) of the ideal: no call was refused that fit
    assert charged > 20_000_000 - 620_000, f"only ${charged / 1e6:.6f} let through"
    assert any(s == 429 for s, _ in results)
    gw.stop()
    with sqlite3.connect(gw.dir / "portcullis.db") as db:
        (ledger,) = db.execute("SELECT sum(micro_usd) FROM budget_ledger").fetchone()
        (total,) = db.execute(
            "SELECT spent FROM budget_totals WHERE node = 'parent' AND period = 0").fetchone()
    assert ledger == total == charged, (ledger, total, charged)
    print(f"\n{ok} calls let through, parent charged ${charged / 1e6:.6f} of $20")
