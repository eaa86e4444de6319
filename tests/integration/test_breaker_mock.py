# SPDX-License-Identifier: Apache-2.0
# Latency backoff judges a provider by its time to first byte, as it would a
# real one: a mock stream that starts at once and then trickles out slowly is
# fast, a mock whose first byte is late is slow. Read from the breaker's own
# counters on the admin listener.
from __future__ import annotations

import httpx

from conftest import base_config, free_port, mock_provider, model, target

MSGS = [{"role": "user", "content": "hello"}]
TOKEN = "adm-" + "7" * 24


def start(start_gateway, **mock):
    admin = free_port()
    p = mock_provider(**mock)
    p["breaker"] = {"consecutive_errors": 0, "error_rate": 0, "latency_p90": "150ms",
                    "window": "60s", "min_calls": 3}
    cfg = base_config(free_port(), providers=[p], models=[model("mock-1", target("mock"))])
    cfg["admin"] = {"listen": f"127.0.0.1:{admin}", "token_env": "PORTCULLIS_ADMIN_TOKEN"}
    gw = start_gateway(cfg, env={"PORTCULLIS_ADMIN_TOKEN": TOKEN})
    return gw, httpx.Client(base_url=f"http://127.0.0.1:{admin}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})


def stream(gw) -> str:
    with gw.http() as h:
        r = h.post("/v1/chat/completions",
                   json={"model": "mock-1", "messages": MSGS, "stream": True})
    assert r.status_code == 200, r.text
    assert r.text.rstrip().endswith("data: [DONE]")
    return r.text


def test_a_slow_stream_with_a_fast_first_byte_is_not_slow(start_gateway):
    # 8 chunks 60 ms apart: each stream takes about half a second, its first
    # byte comes at once
    gw, admin = start(start_gateway, tokens=8, chunk_delay="60ms")
    for _ in range(4):
        stream(gw)
    b = admin.get("/admin/breakers/provider:mock").json()
    assert b["latency"]["measured"] == 4 and b["latency"]["slow"] == 0, b
    assert b["concurrency_limit"] == 0 and b["state"] == "closed", b


def test_a_late_first_byte_is_slow_and_backs_off(start_gateway):
    gw, admin = start(start_gateway, tokens=2, latency="250ms")
    for _ in range(4):
        stream(gw)
    b = admin.get("/admin/breakers/provider:mock").json()
    assert b["latency"]["measured"] == 4 and b["latency"]["slow"] == 4, b
    assert b["concurrency_limit"] >= 1, b  # backing off
    gw.wait_for_log(lambda r: r.get("msg") == "circuit breaker backing off on latency")
