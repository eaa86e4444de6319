# SPDX-License-Identifier: Apache-2.0
# Rate limits per agent-tree node, through the real gateway: requests and
# tokens per minute charged to the caller and every ancestor, one exact total
# across workers, a 429 rate_limit_exceeded naming the node with Retry-After,
# and the x-ratelimit-* headers OpenAI clients read on every answer.
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from conftest import assert_openai_error, base_config, free_port, mock_provider, model, target
from test_identity import create_key

MSGS = [{"role": "user", "content": "hello"}]


def rl_config(agents: list[dict], workers: int = 2, **mock) -> dict:
    cfg = base_config(
        free_port(),
        providers=[mock_provider(**mock)],
        models=[model("mock-1", target("mock"))],
        identity={"required": True},
        agents=agents,
    )
    cfg["workers"] = workers
    return cfg


def chat(gw, key: str, **body) -> httpx.Response:
    with gw.http() as h:
        return h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS, **body},
                      headers={"Authorization": f"Bearer {key}"})


def test_requests_per_minute_429_names_the_node_with_headers(start_gateway):
    gw = start_gateway(rl_config([{"id": "bot", "rate_limit": {"requests_per_minute": 3}}]))
    key = create_key(gw, "bot")
    for remaining in (2, 1, 0):
        r = chat(gw, key)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert re.fullmatch(r"\d+(\.\d+)?m?s|\d+m\d+(\.\d+)?s", r.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in r.headers
    r = chat(gw, key)
    err = assert_openai_error(r, 429)
    assert err["type"] == "rate_limit_exceeded" and err["code"] == "rate_limit_exceeded", err
    assert "'bot'" in err["message"] and "requests per minute" in err["message"], err
    # 3 per minute: the next request fits in about 20 s
    assert 15 <= int(r.headers["retry-after"]) <= 21, r.headers
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    # the SDK raises RateLimitError and exposes the same headers
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="mock-1", messages=MSGS)
    assert exc.value.response.headers["x-ratelimit-limit-requests"] == "3"
    assert exc.value.body["type"] == "rate_limit_exceeded"


def test_an_ancestors_limit_holds_for_all_its_descendants(start_gateway):
    agents = [{"id": "team", "rate_limit": {"requests_per_minute": 4},
               "children": [{"id": "a", "rate_limit": {"requests_per_minute": 100}},
                            {"id": "b"}]}]
    gw = start_gateway(rl_config(agents))
    ka, kb = create_key(gw, "a"), create_key(gw, "b")
    assert [chat(gw, ka).status_code for _ in range(2)] == [200, 200]
    r = chat(gw, ka)
    # the most constrained node's numbers: team has 1 left after this one
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "1"
    assert r.headers["x-ratelimit-limit-requests"] == "4"
    assert chat(gw, kb).status_code == 200
    r = chat(gw, kb)
    err = assert_openai_error(r, 429)
    assert "'team'" in err["message"], err
    assert "'team'" in assert_openai_error(chat(gw, ka), 429)["message"]


def test_parallel_calls_over_workers_share_one_exact_total(start_gateway):
    gw = start_gateway(rl_config([{"id": "bot", "rate_limit": {"requests_per_minute": 10}}],
                                 workers=2, latency="20ms"))
    key = create_key(gw, "bot")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: chat(gw, key).status_code, range(40)))
    refilled = int((time.monotonic() - t0) * 10 / 60)  # one more every 6 s
    assert 10 <= statuses.count(200) <= 10 + refilled, (statuses, refilled)
    assert statuses.count(200) + statuses.count(429) == 40, statuses


def test_tokens_per_minute_reserve_an_estimate_and_settle_real_usage(start_gateway):
    # the mock answers 16 completion tokens; a call reserves a token per 4 body bytes
    # (about 20 here) plus max_tokens, and is charged its real usage when it ends
    gw = start_gateway(rl_config([{"id": "bot", "rate_limit": {"tokens_per_minute": 100}}],
                                 workers=1))
    key = create_key(gw, "bot")
    r = chat(gw, key, max_tokens=50)
    assert r.status_code == 200, r.text
    used = r.json()["usage"]["total_tokens"]
    assert r.headers["x-ratelimit-limit-tokens"] == "100"
    # at admission the call reserved at least prompt + max_tokens
    assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 100 - 50
    # the next answer shows what the first really used, not its estimate: with the
    # estimate kept, at most 100 - 70 - 20 would be left
    r = chat(gw, key, max_tokens=1)
    assert r.status_code == 200
    used2 = r.json()["usage"]["total_tokens"]
    remaining = int(r.headers["x-ratelimit-remaining-tokens"])
    assert 100 - used - 40 <= remaining < 100 - used, (used, remaining)
    # a call asking for 90 more than what is left is refused
    r = chat(gw, key, max_tokens=90)
    err = assert_openai_error(r, 429)
    assert "tokens per minute" in err["message"] and "'bot'" in err["message"], err
    assert int(r.headers["retry-after"]) >= 1
    assert used2 > 0


def test_streamed_calls_are_limited_and_settled_too(start_gateway):
    gw = start_gateway(rl_config([{"id": "bot", "rate_limit": {"requests_per_minute": 2,
                                                               "tokens_per_minute": 1000}}]))
    key = create_key(gw, "bot")
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="mock-1", messages=MSGS, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    usage = None
    for chunk in raw.parse():
        usage = chunk.usage or usage
    assert usage is not None and usage.total_tokens > 0
    raw = client.chat.completions.with_raw_response.create(model="mock-1", messages=MSGS)
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    left = int(raw.headers["x-ratelimit-remaining-tokens"])
    # the streamed call was settled at its real usage (the second reserves ~35)
    assert left >= 1000 - usage.total_tokens - 60, (left, usage)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="mock-1", messages=MSGS)


def test_unlimited_agents_get_no_headers_and_are_never_refused(start_gateway):
    agents = [{"id": "org", "children": [{"id": "free"}, {"id": "capped",
                                                        "rate_limit": {"requests_per_minute": 1}}]}]
    gw = start_gateway(rl_config(agents))
    key = create_key(gw, "free")
    for _ in range(5):
        r = chat(gw, key)
        assert r.status_code == 200
        assert not any(h.startswith("x-ratelimit") for h in r.headers)
    with gw.http() as h:
        text = h.get("/metrics").text
    assert 'portcullis_rate_limited_total{agent="capped"} 0' in text
    capped = create_key(gw, "capped")
    assert chat(gw, capped).status_code == 200
    assert chat(gw, capped).status_code == 429
    with gw.http() as h:
        text = h.get("/metrics").text
    assert 'portcullis_rate_limited_total{agent="capped"} 1' in text


def test_example_breakers_config_as_the_readme_walks_through_it(start_gateway):
    """examples/breakers.yaml as shipped: 5 calls for "bot", the 6th a 429 naming it; the
    failing first target's breaker opens after 3 calls and later calls skip it."""
    path = Path(__file__).resolve().parents[2] / "examples" / "breakers.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["listen"] = f"127.0.0.1:{free_port()}"
    cfg["admin"] = f"127.0.0.1:{free_port()}"
    cfg["workers"] = 1
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    statuses = [chat(gw, key).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429], statuses
    with gw.http() as h:
        text = h.get("/metrics").text
    assert 'portcullis_breaker_state{breaker="provider:flaky"} 1' in text
    assert 'portcullis_breaker_refused_total{breaker="provider:flaky"} 2' in text
    assert 'portcullis_rate_limited_total{agent="bot"} 1' in text


def test_a_reload_keeps_what_was_used(start_gateway):
    cfg = rl_config([{"id": "bot", "rate_limit": {"requests_per_minute": 3}}])
    gw = start_gateway(cfg)
    key = create_key(gw, "bot")
    assert [chat(gw, key).status_code for _ in range(3)] == [200] * 3
    cfg["agents"].append({"id": "other"})
    gw.reload(cfg)
    gw.wait_for_log(lambda r: "config reloaded" in r.get("msg", ""))
    r = chat(gw, key)
    assert assert_openai_error(r, 429)["code"] == "rate_limit_exceeded"
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
