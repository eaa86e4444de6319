# SPDX-License-Identifier: Apache-2.0
# Circuit breakers with real processes: a fake OpenAI upstream that starts
# failing trips its provider's breaker after N errors, calls are then refused
# at once without reaching it, and the probe after the pause closes it again
# once it recovers. Open targets fall back; agent breakers refuse the agent's
# calls; latency backoff sheds load to the fallback; an error-rate alert is
# POSTed to a webhook receiver the test runs.
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from conftest import (assert_openai_error, base_config, free_port, model, openai_provider,
                      target)
from test_identity import create_key

MSGS = [{"role": "user", "content": "hello"}]


def chat(gw, key: str | None = None, model_name: str = "gpt-4o-mini") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with gw.http() as h:
        return h.post("/v1/chat/completions", json={"model": model_name, "messages": MSGS},
                      headers=headers)


def timed(h: httpx.Client) -> tuple[httpx.Response, float]:
    """One call on an open connection, and how long it took."""
    t = time.monotonic()
    r = h.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS})
    return r, time.monotonic() - t


def metric(gw, name: str, labels: str) -> float | None:
    with gw.http() as h:
        text = h.get("/metrics").text
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def provider_config(fake, breaker: dict, fallback=None, **extra) -> dict:
    providers = [openai_provider("up", fake.base_url, breaker=breaker)]
    targets = [target("up")]
    if fallback is not None:
        providers.append(openai_provider("backup", fallback.base_url))
        targets.append(target("backup"))
    return base_config(free_port(), providers=providers,
                       models=[model("gpt-4o-mini", *targets)], **extra)


def test_failing_upstream_trips_after_n_errors_fails_fast_and_the_probe_closes_it(
        start_gateway, fake):
    gw = start_gateway(provider_config(fake, {"consecutive_errors": 3, "pause": "3s"}))
    h = gw.http()
    timed(h)  # warm the connection
    ok, t_ok = timed(h)
    assert ok.status_code == 200, ok.text
    assert metric(gw, "portcullis_breaker_state", 'breaker="provider:up"') == 0

    n = len(fake.requests)
    fake.set(status=500, latency_ms=200)
    for _ in range(3):
        r = chat(gw)
        assert r.status_code == 500, r.text
    assert len(fake.requests) == n + 3
    assert metric(gw, "portcullis_breaker_state", 'breaker="provider:up"') == 1

    # open: refused at once, the upstream sees nothing
    refused = [timed(h) for _ in range(5)]
    h.close()
    for r, _ in refused:
        err = assert_openai_error(r, 503)
        assert err["code"] == "circuit_breaker_open", err
        assert "'provider:up'" in err["message"], err
        assert int(r.headers["retry-after"]) >= 1
    assert len(fake.requests) == n + 3
    t_refused = max(t for _, t in refused)
    print(f"\nnormal call {t_ok * 1000:.1f} ms; refused while open (max of 5) "
          f"{t_refused * 1000:.1f} ms; failing upstream answers after 200 ms")

    # after the pause, still failing: the one probe fails and reopens it
    time.sleep(3.1)
    r = chat(gw)
    assert r.status_code == 500, r.text
    assert len(fake.requests) == n + 4
    r = chat(gw)
    assert assert_openai_error(r, 503)["code"] == "circuit_breaker_open"
    assert len(fake.requests) == n + 4

    # the upstream recovers: after the pause the probe succeeds and closes it
    fake.set()
    time.sleep(3.1)
    assert metric(gw, "portcullis_breaker_state", 'breaker="provider:up"') == 2
    r = chat(gw)
    assert r.status_code == 200, r.text
    assert len(fake.requests) == n + 5
    assert metric(gw, "portcullis_breaker_state", 'breaker="provider:up"') == 0
    for _ in range(3):
        assert chat(gw).status_code == 200
    assert len(fake.requests) == n + 8
    assert metric(gw, "portcullis_breaker_trips_total", 'breaker="provider:up"') == 2
    rec = gw.wait_for_log(lambda r: r.get("msg") == "circuit breaker opened")
    assert rec["breaker"] == "provider:up"
    gw.wait_for_log(lambda r: r.get("msg") == "circuit breaker closed")


def test_half_open_lets_exactly_one_probe_through(start_gateway, fake):
    gw = start_gateway(provider_config(fake, {"consecutive_errors": 1, "pause": "500ms"}))
    fake.set(status=503)
    assert chat(gw).status_code == 503
    time.sleep(0.6)
    # the probe is held at the upstream; every other call meanwhile is refused
    fake.set(hang=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(chat, gw)
        fake.wait_for_requests(2)
        others = [chat(gw) for _ in range(4)]
        for r in others:
            err = assert_openai_error(r, 503)
            assert err["code"] == "circuit_breaker_open" and "half-open" in err["message"], err
        assert len(fake.requests) == 2
        fake.release.set()  # the held probe fails: open again
        assert probe.result(timeout=30).status_code == 502
    fake.reset()
    assert assert_openai_error(chat(gw), 503)["code"] == "circuit_breaker_open"
    time.sleep(0.6)
    assert chat(gw).status_code == 200  # the next probe succeeds and closes it
    assert chat(gw).status_code == 200


def test_an_open_target_is_skipped_for_the_fallback(start_gateway, fake, fake2):
    gw = start_gateway(provider_config(fake, {"consecutive_errors": 2, "pause": "1m"},
                                       fallback=fake2))
    fake.set(status=500)
    for _ in range(2):
        r = chat(gw)
        assert r.status_code == 200, r.text  # answered by the fallback
    assert len(fake.requests) == 2 and len(fake2.requests) == 2
    for _ in range(5):
        assert chat(gw).status_code == 200
    assert len(fake.requests) == 2, "an open target must not be tried"
    assert len(fake2.requests) == 7
    # with the fallback gone too, the answer names the breaker
    fake2.set(status=500)
    r = chat(gw)
    assert r.status_code == 500  # the fallback's own error: it was tried
    # a model whose only target is open: 503 naming the breaker
    cfg = provider_config(fake, {"consecutive_errors": 2, "pause": "1m"}, fallback=fake2)
    cfg["models"].append(model("only-up", target("up")))
    gw.reload(cfg)
    time.sleep(0.5)
    r = chat(gw, None, "only-up")
    err = assert_openai_error(r, 503)
    assert err["code"] == "circuit_breaker_open" and "'provider:up'" in err["message"], err
    assert "no fallback target" in err["message"]
    assert len(fake.requests) == 2  # the breaker's state survived the reload


def test_an_agent_breaker_stops_that_agent_and_not_its_sibling(start_gateway, fake):
    cfg = base_config(
        free_port(),
        providers=[openai_provider("up", fake.base_url)],
        models=[model("gpt-4o-mini", target("up"))],
        identity={"required": True},
        agents=[{"id": "team", "children": [
            {"id": "runaway", "breaker": {"consecutive_errors": 3, "pause": "1m"}},
            {"id": "steady"},
        ]}],
    )
    gw = start_gateway(cfg)
    runaway = create_key(gw, "runaway")
    steady = create_key(gw, "steady")
    fake.set(status=500)
    for _ in range(3):
        assert chat(gw, runaway).status_code == 500
    assert len(fake.requests) == 3
    r = chat(gw, runaway)
    err = assert_openai_error(r, 503)
    assert err["type"] == "circuit_breaker_open" and "'agent:runaway'" in err["message"], err
    assert "3 consecutive errors" in err["message"]
    assert int(r.headers["retry-after"]) > 50
    assert len(fake.requests) == 3
    # a sibling is not stopped by it
    fake.set()
    assert chat(gw, steady).status_code == 200
    assert chat(gw, runaway).status_code == 503
    assert len(fake.requests) == 4
    # the SDK sees a 503 it can act on
    client = openai.OpenAI(base_url=gw.base_url, api_key=runaway, max_retries=0)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert exc.value.status_code == 503


class Receiver:
    """A webhook receiver on 127.0.0.1 that records JSON POST bodies."""

    def __init__(self):
        self.posts: list[dict] = []
        self.cond = threading.Condition()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                with outer.cond:
                    outer.posts.append({"body": body, "ctype": self.headers["Content-Type"]})
                    outer.cond.notify_all()
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 10) -> list[dict]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.posts) >= n, timeout), self.posts
            return list(self.posts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_error_rate_alert_fires_once_per_shortened_window(start_gateway, fake, receiver):
    breaker = {"consecutive_errors": 0, "error_rate": 0.5, "alert_window": "6s",
               "min_calls": 4, "webhook": receiver.url}
    gw = start_gateway(provider_config(fake, breaker))
    for _ in range(4):
        assert chat(gw).status_code == 200
    # 3 errors after 4 successes: 3/7 is under the threshold
    fake.set(status=500)
    for _ in range(3):
        assert chat(gw).status_code == 500
    time.sleep(0.3)
    assert receiver.posts == []
    # the 5th error: 5/9 is above it
    for _ in range(2):
        assert chat(gw).status_code == 500
    posts = receiver.wait(1)
    body = posts[0]["body"]
    assert posts[0]["ctype"] == "application/json"
    assert body["event"] == "breaker_error_rate" and body["breaker"] == "provider:up", body
    assert body["threshold"] == 0.5 and body["errors"] == 5 and body["calls"] == 9, body
    assert body["window_ms"] == 6000
    # once per window: more errors now do not alert again
    for _ in range(5):
        assert chat(gw).status_code == 500
    time.sleep(0.3)
    assert len(receiver.posts) == 1
    rec = gw.wait_for_log(lambda r: r.get("msg") == "breaker error-rate alert")
    assert rec["breaker"] == "provider:up" and rec["level"] == "error"
    assert metric(gw, "portcullis_breaker_alerts_total", 'breaker="provider:up"') == 1
    # the next window, still failing: a second alert
    time.sleep(6.1)
    for _ in range(4):
        assert chat(gw).status_code == 500
    receiver.wait(2)
    assert metric(gw, "portcullis_breaker_alerts_total", 'breaker="provider:up"') == 2


def test_slow_upstream_backs_off_and_sheds_to_the_fallback(start_gateway, fake, fake2):
    breaker = {"consecutive_errors": 0, "error_rate": 0, "latency_p90": "150ms",
               "window": "20s", "min_calls": 6}
    gw = start_gateway(provider_config(fake, breaker, fallback=fake2))
    fake.set(latency_ms=800)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(lambda _: chat(gw), range(8)))
    assert all(r.status_code == 200 for r in first)
    assert len(fake2.requests) == 0
    limit = metric(gw, "portcullis_breaker_concurrency_limit", 'breaker="provider:up"')
    assert limit is not None and 1 <= limit <= 4, limit
    gw.wait_for_log(lambda r: r.get("msg") == "circuit breaker backing off on latency")
    # 8 at once again, the slow target now holding its calls: only `limit` go to it,
    # the rest to the fallback at once
    before = len(fake.requests)
    fake.set(hang=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(chat, gw) for _ in range(8)]
        deadline = time.monotonic() + 60
        while (len(fake.requests) - before + len(fake2.requests) < 8
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert len(fake.requests) - before <= limit, (len(fake.requests) - before, limit)
        assert len(fake2.requests) >= 8 - limit, (len(fake2.requests), limit)
        fake.release.set()  # held calls are dropped and fall back too
        second = [f.result(timeout=30) for f in futures]
    assert all(r.status_code == 200 for r in second), [r.status_code for r in second]


ADMIN_TOKEN = "adm-" + "5" * 24


def test_admin_lists_breakers_and_reset_closes_one(start_gateway, fake):
    admin_port = free_port()
    cfg = provider_config(fake, {"consecutive_errors": 2, "pause": "10m"})
    cfg["admin"] = {"listen": f"127.0.0.1:{admin_port}", "token_env": "PORTCULLIS_ADMIN_TOKEN"}
    gw = start_gateway(cfg, env={"PORTCULLIS_ADMIN_TOKEN": ADMIN_TOKEN})
    admin = httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=10,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    fake.set(status=500)
    for _ in range(2):
        assert chat(gw).status_code == 500
    assert chat(gw).status_code == 503
    r = admin.get("/admin/breakers")
    assert r.status_code == 200, r.text
    (b,) = r.json()["breakers"]
    assert b["id"] == "provider:up" and b["state"] == "open" and b["state_code"] == 1, b
    assert b["trips"] == 1 and b["refused"] == 1 and b["retry_after_ms"] > 500000, b
    assert b["config"]["consecutive_errors"] == 2 and b["config"]["pause_ms"] == 600000, b
    assert httpx.get(f"http://127.0.0.1:{admin_port}/admin/breakers").status_code == 401
    one = admin.get("/admin/breakers/provider:up").json()
    assert one["id"] == "provider:up" and one["state"] == "open" and one["trips"] == 1, one
    assert admin.get("/admin/breakers/agent:nobody").status_code == 404
    r = admin.post("/admin/breakers/provider:nope/reset")
    assert r.status_code == 404 and "provider:nope" in r.json()["error"]["message"]
    # a reset closes it at once: the next call reaches the (recovered) upstream
    fake.set()
    r = admin.post("/admin/breakers/provider:up/reset")
    assert r.status_code == 200 and r.json() == {"id": "provider:up", "state": "closed"}
    n = len(fake.requests)
    assert chat(gw).status_code == 200
    assert len(fake.requests) == n + 1
    assert admin.get("/admin/breakers").json()["breakers"][0]["state"] == "closed"
    admin.close()


def test_no_target_left_names_the_breaker_and_the_target_that_failed(start_gateway, fake, fake2):
    cfg = base_config(
        free_port(),
        providers=[openai_provider("a", fake.base_url),
                   openai_provider("b", fake2.base_url,
                                   breaker={"consecutive_errors": 1, "pause": "1m"})],
        models=[model("only-b", target("b")), model("a-then-b", target("a"), target("b"))],
    )
    gw = start_gateway(cfg)
    fake2.set(status=502)
    assert chat(gw, None, "only-b").status_code == 502  # b's breaker opens
    fake.set(status=500)
    r = chat(gw, None, "a-then-b")
    err = assert_openai_error(r, 503)
    assert err["code"] == "circuit_breaker_open" and err["param"] == "model", err
    assert "'provider:b'" in err["message"] and "provider 'a' was tried" in err["message"], err
    assert len(fake.requests) == 1 and len(fake2.requests) == 1


def test_twenty_parallel_calls_at_half_open_send_exactly_one_probe(start_gateway, fake):
    # two workers share the breaker: of 20 calls racing in when the pause ends, one
    # reaches the upstream (held there until the other 19 are answered, so a loaded
    # machine cannot let the probe finish first) and every other is refused
    gw = start_gateway(provider_config(fake, {"consecutive_errors": 1, "pause": "700ms"}))
    fake.set(status=500)
    assert chat(gw).status_code == 500
    time.sleep(0.8)
    fake.set(hang=True)
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(chat, gw) for _ in range(20)]
        deadline = time.monotonic() + 60
        while sum(f.done() for f in futures) < 19 and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = [f for f in futures if f.done()]
        done = [f.result() for f in finished]
        assert len(done) == 19 and all(r.status_code == 503 for r in done), \
            [r.status_code for r in done]
        assert len(fake.requests) == 2
        fake.release.set()  # the held probe now fails (connection dropped): 502
        (probe,) = [f.result(timeout=30) for f in futures if f not in finished]
    assert probe.status_code == 502, probe.text
    # libcurl may resend the dropped probe once on a fresh connection: still one call
    ids = {r.headers["x-request-id"] for r in fake.requests[1:]}
    assert len(ids) == 1, ids


def test_a_stream_cut_by_the_upstream_counts_as_an_error(start_gateway, fake):
    gw = start_gateway(provider_config(fake, {"consecutive_errors": 2, "pause": "1m"}))
    client = gw.client()
    fake.set(close_after=2)
    for _ in range(2):
        with pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS,
                                                    stream=True):
                pass
    assert metric(gw, "portcullis_breaker_state", 'breaker="provider:up"') == 1
    fake.set()
    r = chat(gw)
    assert assert_openai_error(r, 503)["code"] == "circuit_breaker_open"
    assert len(fake.requests) == 2
