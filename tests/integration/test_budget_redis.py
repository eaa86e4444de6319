# SPDX-License-Identifier: Apache-2.0
# The Redis budget backend: three gateway instances share one redis-server
# (started by this test on 127.0.0.1). Reserve and settle are Lua scripts over
# the whole chain, so parallel load through all three never passes the cap,
# and lets through the ideal number of calls give or take one reservation.
from __future__ import annotations

import calendar
import json
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import free_port
from test_budget import MSGS, budget_config, cost_of
from test_budget_admin import TOKEN, admin_get
from test_identity import create_key, wait_key_known


@pytest.fixture
def redis_server(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (scripts/bootstrap installs it)", pytrace=False)
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def call(gw, key: str, stream: bool) -> tuple[int, dict | None]:
    body = {"model": "mock-1", "messages": MSGS, "max_tokens": 20}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    if r.status_code != 200:
        assert r.status_code == 429 and r.json()["error"]["type"] == "budget_exceeded", r.text
        return r.status_code, None
    if not stream:
        return 200, r.json()["usage"]
    usage = [json.loads(l[6:]).get("usage") for l in r.text.splitlines() if l.startswith("data: {")]
    return 200, [u for u in usage if u][-1]


def test_three_gateways_sharing_redis_never_pass_the_cap(start_gateway, redis_server, tmp_path):
    cap = 0.5
    cfg = budget_config([{"id": "org", "budget": {"usd_total": cap},
                          "children": [{"id": "bot"}]}])
    cfg["state"] = {"redis": f"redis://127.0.0.1:{redis_server}"}
    cfg["state_path"] = str(tmp_path / "shared.db")  # one key store for the three
    aport = free_port()
    gws = []
    for i in range(3):
        c = dict(cfg, listen=f"127.0.0.1:{free_port()}")
        if i == 0:
            c["admin"] = {"listen": f"127.0.0.1:{aport}"}
        gws.append(start_gateway(c, env={"PORTCULLIS_ADMIN_TOKEN": TOKEN}))
    key = create_key(gws[0], "bot")
    for g in gws[1:]:
        wait_key_known(g, key)
    jobs = [(gws[i % 3], i % 2 == 0) for i in range(150)]
    with ThreadPoolExecutor(max_workers=45) as pool:
        results = list(pool.map(lambda j: call(j[0], key, j[1]), jobs))
    ok = [u for s, u in results if s == 200]
    per_gw = [sum(1 for (g, _), (s, _) in zip(jobs, results) if g is gw and s == 200) for gw in gws]
    spent = sum(cost_of(u) for u in ok)
    assert spent <= cap + 1e-9, spent
    ideal = int(cap // cost_of(ok[0]))
    assert ideal - 1 <= len(ok) <= ideal, (len(ok), ideal, per_gw)
    assert sum(1 for n in per_gw if n > 0) >= 2, per_gw  # the instances really shared the cap
    # Redis holds exactly what the clients were charged, and no reservation
    micro = round(spent * 1e6)
    assert int(redis_cli(redis_server, "HGET", "pc:b:org:2:0", "spent")) == micro
    assert int(redis_cli(redis_server, "HGET", "pc:b:org:2:0", "reserved")) == 0
    # only capped periods carry reservations; spend is counted in every period,
    # and day and month keys expire (a day after their period ends), the total never
    day, now = int(time.time()) // 86400, time.time()
    assert redis_cli(redis_server, "ZCARD", "pc:bz") == "0"  # no reservation left
    assert redis_cli(redis_server, "HGET", f"pc:b:bot:0:{day}", "reserved") == ""
    assert int(redis_cli(redis_server, "HGET", f"pc:b:bot:0:{day}", "spent")) == micro
    assert int(redis_cli(redis_server, "HGET", f"pc:b:org:0:{day}", "spent")) == micro
    ttl = int(redis_cli(redis_server, "TTL", f"pc:b:bot:0:{day}"))
    day_end = (day + 1) * 86400
    assert day_end - now + 86400 < ttl <= day_end - now + 86400 + 1800 + 5, ttl
    assert int(redis_cli(redis_server, "TTL", "pc:b:org:2:0")) == -1
    t = time.gmtime(now)
    month_end = calendar.timegm((t.tm_year + t.tm_mon // 12, t.tm_mon % 12 + 1, 1, 0, 0, 0))
    month_key = (t.tm_year - 1970) * 12 + t.tm_mon - 1
    ttl = int(redis_cli(redis_server, "TTL", f"pc:b:org:1:{month_key}"))
    assert month_end - now + 86400 < ttl <= month_end - now + 86400 + 1800 + 5, ttl
    # /metrics of every instance shows the shared spend (read from Redis each
    # second), not the share this instance settled
    for gw in gws:
        deadline = time.monotonic() + 5
        want = f'portcullis_budget_spent_usd{{node="org",period="total"}} {spent:.6f}'
        while want not in (m := metrics_text(gw)):
            assert time.monotonic() < deadline, [l for l in m.splitlines() if "spent_usd" in l]
            time.sleep(0.1)
    # the admin API of any instance reads the shared numbers
    nodes = {n["id"]: n for n in admin_get(aport, "/admin/budgets").json()["nodes"]}
    assert nodes["org"]["periods"]["total"]["spent_micro_usd"] == micro
    # a fourth instance started now refuses at once: the spend is not per process
    late = start_gateway(dict(cfg, listen=f"127.0.0.1:{free_port()}"))
    assert call(late, key, False)[0] == 429


def test_a_reservation_of_a_dead_instance_expires(start_gateway, redis_server, tmp_path):
    cfg = budget_config([{"id": "org", "budget": {"usd_total": 0.03},
                          "children": [{"id": "bot"}]}])
    cfg["providers"][0]["mock"] = {"latency": "20s"}  # the call is still running at the kill
    cfg["state"] = {"redis": f"redis://127.0.0.1:{redis_server}"}
    cfg["state_path"] = str(tmp_path / "shared.db")
    cfg["budget"] = {"reservation_ttl": "2s"}
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(lambda: httpx.post(
            f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "mock-1", "messages": MSGS, "max_tokens": 20}, timeout=30))
        deadline = time.monotonic() + 5
        while int(redis_cli(redis_server, "HGET", "pc:b:org:2:0", "reserved") or 0) == 0:
            assert time.monotonic() < deadline, "no reservation in Redis"
            time.sleep(0.05)
        gw.proc.kill()
        gw.wait_exit(10)
        with pytest.raises(Exception):
            fut.result()
    # held by a dead instance: a second gateway is refused until the TTL passes
    cfg2 = dict(cfg, listen=f"127.0.0.1:{free_port()}")
    cfg2["providers"] = [{"name": "mock", "kind": "mock"}]
    gw2 = start_gateway(cfg2)
    assert call(gw2, key, False)[0] == 429
    time.sleep(2.5)
    assert call(gw2, key, False)[0] == 200
    assert int(redis_cli(redis_server, "HGET", "pc:b:org:2:0", "reserved")) == 0


def test_without_redis_calls_fail_closed_and_recover_when_it_is_back(start_gateway, tmp_path):
    port = free_port()
    cfg = budget_config([{"id": "org", "budget": {"usd_total": 1}, "children": [{"id": "bot"}]}])
    cfg["state"] = {"redis": f"redis://127.0.0.1:{port}"}
    cfg["state_path"] = str(tmp_path / "shared.db")
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "budget_store_unavailable", r.text
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while call_status(gw, key) != 200:
            assert time.monotonic() < deadline, "the gateway did not reconnect to Redis"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)


def metrics_text(gw) -> str:
    with gw.http() as h:
        return h.get("/metrics").text


def call_status(gw, key: str) -> int:
    with gw.http() as h:
        return h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS},
                      headers={"Authorization": f"Bearer {key}"}).status_code


def test_soft_limit_alert_fires_once_across_instances(start_gateway, redis_server, tmp_path,
                                                      request):
    from test_budget_alerts import Receiver
    rx = Receiver()
    request.addfinalizer(rx.server.shutdown)
    # org: a total cap; team: a day cap; bot: none. The settle script reports each
    # crossing once, whichever instance gets there
    cfg = budget_config([{"id": "org", "budget": {"usd_total": 0.2}, "children": [
        {"id": "team", "budget": {"usd_per_day": 0.2}, "children": [{"id": "bot"}]}]}])
    cfg["state"] = {"redis": f"redis://127.0.0.1:{redis_server}"}
    cfg["state_path"] = str(tmp_path / "shared.db")
    cfg["budget"] = {"soft_limit": 0.5, "webhook": rx.url}
    gws = [start_gateway(dict(cfg, listen=f"127.0.0.1:{free_port()}")) for _ in range(2)]
    key = create_key(gws[0], "bot")
    for g in gws[1:]:
        wait_key_known(g, key)
    spent, i = 0.0, 0
    while spent < 0.12:
        s, usage = call(gws[i % 2], key, False)
        assert s == 200
        spent += cost_of(usage)
        i += 1
    bodies = sorted((b["body"]["node"], b["body"]["period"]) for b in rx.wait(2))
    assert bodies == [("org", "total"), ("team", "day")], bodies
    time.sleep(0.3)
    assert len(rx.bodies) == 2, rx.bodies


def test_a_chain_without_caps_needs_no_reservation_but_counts_spend(start_gateway, redis_server,
                                                                     tmp_path):
    # budgets are on (another subtree has a cap), but org and bot have none
    cfg = budget_config([{"id": "org", "children": [{"id": "bot"}]},
                         {"id": "capped", "budget": {"usd_total": 1}}])
    cfg["state"] = {"redis": f"redis://127.0.0.1:{redis_server}"}
    cfg["state_path"] = str(tmp_path / "shared.db")
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    redis_cli(redis_server, "CONFIG", "RESETSTAT")
    s, usage = call(gw, key, False)
    assert s == 200
    micro = round(cost_of(usage) * 1e6)
    deadline = time.monotonic() + 5
    while redis_cli(redis_server, "HGET", "pc:b:org:2:0", "spent") != str(micro):
        assert time.monotonic() < deadline, "the spend never reached Redis"
        time.sleep(0.05)
    assert redis_cli(redis_server, "HGET", "pc:b:bot:2:0", "spent") == str(micro)
    # one script ran (the settlement), not two
    stats = redis_cli(redis_server, "INFO", "commandstats")
    evals = sum(int(l.split("calls=")[1].split(",")[0]) for l in stats.splitlines()
                if l.startswith(("cmdstat_evalsha:", "cmdstat_eval:")))
    assert evals == 1, stats
