# SPDX-License-Identifier: Apache-2.0
# Soft limits: when a node's spend crosses a fraction of a cap, one alert per
# node and period: a log line, a metric, and a JSON POST to the webhook (a
# tiny HTTP receiver in this test). Not again in the same period, not even
# after a restart.
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port
from test_budget import call, cost_of, budget_config
from test_identity import create_key


class Receiver:
    """Collects the JSON bodies POSTed to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                outer.bodies.append({"path": self.path, "type": self.headers.get("content-type"),
                                     "body": json.loads(self.rfile.read(n))})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/budget"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies


def test_a_soft_limit_fires_once_per_node_and_period(start_gateway, request):
    rx = Receiver()
    request.addfinalizer(rx.server.shutdown)
    cfg = budget_config([{"id": "org", "budget": {"usd_total": 0.2},
                          "children": [{"id": "bot"}]}])
    cfg["budget"] = {"soft_limit": 0.5, "webhook": rx.url}
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    spent = 0.0
    while spent < 0.1:
        assert not rx.bodies, f"alert before 50% (${spent:.4f} of $0.2)"
        s, usage, _ = call(gw, key, False)
        assert s == 200
        spent += cost_of(usage)
    bodies = rx.wait(1)
    assert len(bodies) == 1, bodies
    hook = bodies[0]
    assert hook["path"] == "/hooks/budget" and hook["type"] == "application/json"
    b = hook["body"]
    assert b["event"] == "budget.soft_limit" and b["node"] == "org" and b["period"] == "total"
    assert b["cap_micro_usd"] == 200_000 and b["soft_limit"] == 0.5
    assert 0.5 <= b["fraction"] < 1 and abs(b["spent_usd"] - spent) < 1e-9, (b, spent)
    gw.wait_for_log(lambda r: "budget soft limit" in r.get("msg", "") and "'org'" in r["msg"])
    # more spend in the same period: no second alert
    for _ in range(2):
        assert call(gw, key, True)[0] == 200
    with gw.http() as h:
        metrics = h.get("/metrics").text
    assert 'portcullis_budget_soft_limit_alerts_total{node="org",period="total"} 1' in metrics
    gw.stop()
    gw.start()
    assert call(gw, key, False)[0] == 200
    time.sleep(0.5)
    assert len(rx.bodies) == 1, rx.bodies  # the alert is remembered in the state file


def test_soft_limit_zero_is_off_and_a_dead_webhook_changes_nothing(start_gateway):
    cfg = budget_config([{"id": "org", "budget": {"usd_total": 0.03},
                          "children": [{"id": "bot", "budget": {"usd_per_day": 0.02}}]}])
    cfg["budget"] = {"webhook": f"http://127.0.0.1:{free_port()}/nobody-listens"}
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    assert call(gw, key, False)[0] == 200  # $0.016 of bot's $0.02/day: 80%
    gw.wait_for_log(lambda r: "budget soft limit" in r.get("msg", "") and "'bot'" in r["msg"]
                    and "per-day" in r["msg"])
    gw.wait_for_log(lambda r: "webhook" in r.get("msg", ""))
    s, r, _ = call(gw, key, False)
    assert s == 429  # the cap still holds; the failed webhook did not matter
