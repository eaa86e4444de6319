# SPDX-License-Identifier: Apache-2.0
# Rate limits in Redis (state: {redis: URL}): three gateway instances share one
# redis-server started by this test, so a requests-per-minute limit holds
# across all of them; every bucket is one Redis key that expires; while Redis
# is down calls on rate-limited agents fail closed with 503
# rate_limit_store_unavailable, and they pass again once it is back.
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import assert_openai_error, free_port
from test_identity import create_key, wait_key_known
from test_ratelimit import chat, rl_config


class Redis:
    """A redis-server on 127.0.0.1 that the test can kill and start again."""

    def __init__(self, tmp_path):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.fail("redis-server is not installed (scripts/bootstrap installs it)",
                        pytrace=False)
        self.port = free_port()
        self.dir = tmp_path
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    "redis-server did not start"
                time.sleep(0.05)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path)
    r.start()
    yield r
    if r.proc is not None:
        r.proc.terminate()
        r.proc.wait(10)


def shared_config(agents: list[dict], redis: Redis, tmp_path, workers: int = 2) -> dict:
    cfg = rl_config(agents, workers=workers)
    cfg["state"] = {"redis": f"redis://127.0.0.1:{redis.port}"}
    cfg["state_path"] = str(tmp_path / "shared.db")  # one key store for every instance
    return cfg


def test_three_gateways_share_one_requests_per_minute_limit(start_gateway, redis, tmp_path):
    limit = 10  # one more every 6 s
    agents = [{"id": "team", "rate_limit": {"requests_per_minute": limit},
               "children": [{"id": "bot"}]}]
    cfg = shared_config(agents, redis, tmp_path)
    gws = [start_gateway(dict(cfg, listen=f"127.0.0.1:{free_port()}")) for _ in range(3)]
    key = create_key(gws[0], "bot")
    for g in gws[1:]:
        wait_key_known(g, key)
    jobs = [gws[i % 3] for i in range(45)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda gw: chat(gw, key), jobs))
    refilled = int((time.monotonic() - t0) * limit / 60)
    statuses = [r.status_code for r in answers]
    ok = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == len(jobs), statuses
    # exactly the limit across the three instances (plus what refilled while
    # the burst ran: 0 unless it took more than 6 s)
    assert limit <= ok <= limit + refilled, (ok, refilled)
    per_gw = [sum(1 for gw, r in zip(jobs, answers) if gw is g and r.status_code == 200)
              for g in gws]
    assert sum(1 for n in per_gw if n > 0) >= 2, per_gw  # the instances really shared it
    for r in answers:
        assert r.headers["x-ratelimit-limit-requests"] == str(limit), r.headers
        assert "x-ratelimit-remaining-requests" in r.headers
        assert "x-ratelimit-reset-requests" in r.headers
        if r.status_code == 429:
            err = assert_openai_error(r, 429)
            assert err["type"] == "rate_limit_exceeded", err
            assert "'team'" in err["message"] and "requests per minute" in err["message"], err
            assert 1 <= int(r.headers["retry-after"]) <= 7, r.headers
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in answers
                       if r.status_code == 200)
    assert remaining[0] == 0 and remaining[-1] <= limit - 1, remaining
    # the bucket is one key holding a time, and it expires (about a minute
    # from now, when the bucket is full again)
    assert int(redis.cli("GET", "pc:rl:team:req")) > 0
    assert 50000 <= int(redis.cli("PTTL", "pc:rl:team:req")) <= 62000
    assert redis.cli("EXISTS", "pc:rl:bot:req") == "0"  # bot has no limit of its own
    # a fourth instance started now refuses at once: the count is not per process
    late = start_gateway(dict(cfg, listen=f"127.0.0.1:{free_port()}"))
    assert assert_openai_error(chat(late, key), 429)["type"] == "rate_limit_exceeded"


def test_tokens_per_minute_in_redis_settle_real_usage(start_gateway, redis, tmp_path):
    # as in test_ratelimit: a call reserves its estimate and is charged its usage
    cfg = shared_config([{"id": "bot", "rate_limit": {"tokens_per_minute": 100}}], redis,
                        tmp_path, workers=1)
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    r = chat(gw, key, max_tokens=50)
    assert r.status_code == 200, r.text
    used = r.json()["usage"]["total_tokens"]
    assert r.headers["x-ratelimit-limit-tokens"] == "100"
    assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 100 - 50
    r = chat(gw, key, max_tokens=1)
    assert r.status_code == 200, r.text
    remaining = int(r.headers["x-ratelimit-remaining-tokens"])
    assert 100 - used - 40 <= remaining < 100 - used, (used, remaining)
    err = assert_openai_error(chat(gw, key, max_tokens=90), 429)
    assert "tokens per minute" in err["message"] and "'bot'" in err["message"], err
    # a second instance sees the same bucket
    gw2 = start_gateway(dict(cfg, listen=f"127.0.0.1:{free_port()}"))
    assert assert_openai_error(chat(gw2, key, max_tokens=90), 429)["type"] == \
        "rate_limit_exceeded"


def test_redis_down_fails_closed_and_recovers(start_gateway, redis, tmp_path):
    agents = [{"id": "bot", "rate_limit": {"requests_per_minute": 1000}},
              {"id": "free"}]
    gw = start_gateway(shared_config(agents, redis, tmp_path))
    key, free = create_key(gw, "bot"), create_key(gw, "free")
    assert chat(gw, key).status_code == 200
    redis.kill()
    r = chat(gw, key)
    err = assert_openai_error(r, 503)
    assert err["code"] == "rate_limit_store_unavailable" and "Redis" in err["message"], err
    # an agent without a rate limit does not need Redis
    assert chat(gw, free).status_code == 200
    redis.start()  # empty: the scripts are loaded again on first use (NOSCRIPT -> EVAL)
    deadline = time.monotonic() + 15
    while (r := chat(gw, key)).status_code != 200:
        assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, "the gateway did not reconnect to Redis"
        time.sleep(0.2)
    assert r.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(redis.cli("GET", "pc:rl:bot:req")) > 0
