# SPDX-License-Identifier: Apache-2.0
# Spend survives restarts (embedded backend): settled calls are written to the
# SQLite state file by the budget store's thread, loaded at start, and after a
# kill -9 during load the ledger holds exactly what clients were charged,
# except the settlements still waiting in the store's write queue.
from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
import uuid

import httpx

from conftest import free_port
from test_budget import MSGS, PRICE, budget_config
from test_budget_admin import TOKEN, admin_get
from test_identity import cli, create_key

# How long before the kill a charged call may finish and still be missing
# from the ledger: the store writes a batch as soon as the previous one has
# committed, so only calls settled during the last commit can be lost. The
# bound is generous for a loaded 2-core machine; the test reports the count.
LOSS_WINDOW_S = 1.0


def charge(usage: dict) -> int:
    """What a client was charged, in micro-dollars: usage x the model's price,
    each part rounded up to a micro-dollar (README: Budgets)."""
    return (-(-usage["prompt_tokens"] * int(PRICE["input_per_mtok"]) // 1)
            + usage["completion_tokens"] * int(PRICE["output_per_mtok"]))


def ledger(db: str) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
    with sqlite3.connect(db) as c:
        rows = dict(c.execute("SELECT request_id, micro_usd FROM budget_ledger"))
        totals = {(n, p): s for n, p, s in c.execute(
            "SELECT node, period, spent FROM budget_totals WHERE period = 2")}
    return rows, totals


def persist_config(cap_total: float = 1000.0) -> tuple[dict, int]:
    port = free_port()
    cfg = budget_config([{"id": "org", "budget": {"usd_total": cap_total},
                          "children": [{"id": "bot"}]}])
    cfg["providers"][0]["mock"] = {"latency": "2ms"}
    cfg["admin"] = {"listen": f"127.0.0.1:{port}"}
    return cfg, port


class Load:
    """N client threads calling as fast as they can, each call with its own
    x-request-id; records what each client was charged and when."""

    def __init__(self, gw, key: str, threads: int = 8):
        self.gw, self.key = gw, key
        self.charged: dict[str, tuple[int, float]] = {}  # rid -> (micro-dollars, finished at)
        self.sent: set[str] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, i: int) -> None:
        with httpx.Client(base_url=self.gw.url, timeout=10) as h:
            n = 0
            while not self.stop.is_set():
                rid = uuid.uuid4().hex
                stream = (n + i) % 3 == 0
                n += 1
                body = {"model": "mock-1", "messages": MSGS, "max_tokens": 20}
                if stream:
                    body |= {"stream": True, "stream_options": {"include_usage": True}}
                with self.lock:
                    self.sent.add(rid)
                try:
                    r = h.post("/v1/chat/completions", json=body, headers={
                        "Authorization": f"Bearer {self.key}", "x-request-id": rid})
                except httpx.HTTPError:
                    return  # the gateway is gone
                if r.status_code != 200:
                    continue
                usage = None
                if stream:
                    for line in r.text.splitlines():
                        if line.startswith("data: {"):
                            usage = json.loads(line[6:]).get("usage") or usage
                    if usage is None or "data: [DONE]" not in r.text:
                        continue  # cut off: not an answer the client was charged for
                else:
                    usage = r.json()["usage"]
                with self.lock:
                    self.charged[rid] = (charge(usage), time.monotonic())

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_kill_9_during_load_loses_only_the_write_queue(start_gateway):
    cfg, aport = persist_config()
    gw = start_gateway(cfg, env={"PORTCULLIS_ADMIN_TOKEN": TOKEN})
    key = create_key(gw, "bot")
    db = str(gw.dir / "portcullis.db")
    with Load(gw, key) as load:
        time.sleep(2.0)
        gw.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        gw.wait_exit(10)
    assert len(load.charged) > 50, "too little load to mean anything"
    rows, totals = ledger(db)
    # the ledger and the totals are written in one transaction: they agree
    assert totals[("org", 2)] == totals[("bot", 2)] == sum(rows.values()), (totals, sum(rows.values()))
    # every ledger row is a call a client made, charged exactly what its client computed
    assert set(rows) <= load.sent
    for rid, micro in rows.items():
        if rid in load.charged:
            assert micro == load.charged[rid][0], (rid, micro, load.charged[rid])
    # rows without a whole answer at the client: calls in flight at the kill
    in_flight = set(rows) - set(load.charged)
    assert len(in_flight) <= len(load.threads), in_flight
    # charged calls missing from the ledger: only those settled in the last
    # moments, while the store's previous batch was committing
    lost = {rid: t for rid, (_, t) in load.charged.items() if rid not in rows}
    late = {rid: killed_at - t for rid, t in lost.items() if killed_at - t > LOSS_WINDOW_S}
    assert not late, f"{len(late)} calls charged more than {LOSS_WINDOW_S}s before the kill are not in the ledger"
    print(f"\ncharged {len(load.charged)} calls; ledger {len(rows)} rows; lost {len(lost)}; "
          f"in flight {len(in_flight)}")

    # restart: the spend is loaded back and the admin API shows it
    gw.start()
    nodes = {n["id"]: n for n in admin_get(aport, "/admin/budgets").json()["nodes"]}
    assert nodes["org"]["periods"]["total"]["spent_micro_usd"] == sum(rows.values())
    assert nodes["org"]["periods"]["total"]["reserved_micro_usd"] == 0  # none stuck


def test_sigterm_after_load_keeps_every_settlement(start_gateway):
    cfg, _ = persist_config()
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    db = str(gw.dir / "portcullis.db")
    with Load(gw, key, threads=4) as load:
        time.sleep(1.0)
    assert gw.stop() == 0
    rows, totals = ledger(db)
    assert {rid: m for rid, (m, _) in load.charged.items()} == rows
    assert totals[("org", 2)] == sum(rows.values())


def test_a_spent_cap_stays_spent_across_a_restart(start_gateway):
    cfg, _ = persist_config(cap_total=0.05)
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    with gw.http() as h:
        statuses = [h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS},
                           headers={"Authorization": f"Bearer {key}"}).status_code
                    for _ in range(5)]
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    gw.stop()
    gw.start()
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 429 and "'org'" in r.json()["error"]["message"], r.text
    gw.stop()
    # `portcullis budget show` reads the same numbers from the state file
    rows, totals = ledger(str(gw.dir / "portcullis.db"))
    shown = json.loads(cli(gw, "budget", "show", "--json").stdout)
    nodes = {n["id"]: n for n in shown["nodes"]}
    assert nodes["org"]["periods"]["total"]["spent_micro_usd"] == sum(rows.values()) > 0
    assert nodes["org"]["periods"]["total"]["cap_micro_usd"] == 50_000
    text = cli(gw, "budget", "show", "bot").stdout
    assert "bot" in text and "org" not in text, text
    p = cli(gw, "budget", "show", "nobody", check=False)
    assert p.returncode != 0 and "nobody" in p.stderr
