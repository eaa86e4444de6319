# SPDX-License-Identifier: Apache-2.0
# The LLM proxy off the happy path: how upstreams really frame their streams,
# clients that go away, big and unusual payloads, the retry budget, upstream
# errors that are the client's fault, and concurrency.
import json
import threading
import time

import httpx
import openai
import pytest

from conftest import (
    base_config,
    dead_port,
    free_port,
    mock_provider,
    model,
    openai_provider,
    target,
)
from fake_openai import DEFAULT_CONTENT, split_content
from rawhttp import Conn, request

MSGS = [{"role": "user", "content": "hello"}]


def config(fake, fake2, limits=None, mock=None):
    providers = [
        mock_provider(**(mock or {})),
        openai_provider("up", fake.base_url),
        openai_provider("bad", fake2.base_url),
        openai_provider("dead", f"http://127.0.0.1:{dead_port()}/v1"),
    ]
    models = [
        model("mock-1", target("mock")),
        model("chat", target("up", "gpt-up")),
        model("fallback", target("bad", "gpt-bad"), target("up", "gpt-good")),
        model(
            "long-chain",
            target("bad", "b1"),
            target("bad", "b2"),
            target("bad", "b3"),
            target("bad", "b4"),
            target("bad", "b5"),
        ),
    ]
    return base_config(free_port(), providers=providers, models=models, limits=limits)


@pytest.fixture
def gw(start_gateway, fake, fake2):
    return start_gateway(config(fake, fake2))


def text_of(chunks):
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


# ---- stream framing as real upstreams do it ------------------------------------

FRAMINGS = {
    "events-split-every-7-bytes": {"write_size": 7},
    "whole-stream-in-one-write": {"coalesce": True},
    "crlf-line-endings": {"sse_newline": "\r\n"},
    "crlf-split-every-5-bytes": {"sse_newline": "\r\n", "write_size": 5},
}


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
@pytest.mark.parametrize("client_usage", [False, True], ids=["usage-hidden", "usage-asked"])
def test_stream_framing_variants(gw, fake, framing, client_usage):
    fake.set(**framing)
    kw = {"stream_options": {"include_usage": True}} if client_usage else {}
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True, **kw))
    assert text_of(chunks) == DEFAULT_CONTENT
    usage_chunks = [c for c in chunks if not c.choices]
    if client_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0].usage.completion_tokens == len(
            split_content(DEFAULT_CONTENT)
        )
    else:
        assert usage_chunks == []


def test_upstream_that_ignores_include_usage_still_streams(gw, fake):
    fake.set(ignore_include_usage=True)
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True))
    assert text_of(chunks) == DEFAULT_CONTENT


def test_unicode_content_round_trips(gw, fake):
    content = 'Grüße, 你好, emoji 🎉, quotes "x" and \\backslash\\ and\nnewline'
    fake.set(content=content)
    r = gw.client().chat.completions.create(model="chat", messages=MSGS)
    assert r.choices[0].message.content == content
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True))
    assert text_of(chunks) == content


def test_big_streamed_answer_arrives_whole(gw, fake):
    content = " ".join(f"word{i}" for i in range(5000))
    fake.set(content=content)
    with gw.http() as h, h.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": MSGS, "stream": True}
    ) as r:
        got = []
        for i, line in enumerate(r.iter_lines()):
            if i % 500 == 0:
                time.sleep(0.05)  # a slow reader: the gateway must not drop or reorder
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"]:
                    got.append(chunk["choices"][0]["delta"].get("content") or "")
    assert "".join(got) == content


# ---- the request body reaches the upstream intact --------------------------------


def test_request_fields_pass_through_unchanged(gw, fake):
    body = {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris? ünïcödé"},
        ],
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "max_tokens": 100,
        "user": "agent-7",
        "response_format": {"type": "json_object"},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "x_vendor_extension": {"nested": [1, 2.5, None, True]},
    }
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert fake.requests[0].json == dict(body, model="gpt-up")


def test_large_request_body_reaches_upstream(gw, fake):
    big = "x" * (2 * 1024 * 1024)  # 2 MiB: over libcurl's Expect: 100-continue threshold
    r = gw.client().chat.completions.create(model="chat", messages=[{"role": "user", "content": big}])
    assert r.choices[0].message.content == DEFAULT_CONTENT
    assert fake.requests[0].json["messages"][0]["content"] == big


# ---- client goes away --------------------------------------------------------------


def test_client_disconnect_mid_stream_cancels_upstream(gw, fake):
    fake.set(content=" ".join(["word"] * 3000), chunk_delay_ms=5)  # ~15 s if not cancelled
    with Conn(gw.port) as c:
        body = json.dumps({"model": "chat", "messages": MSGS, "stream": True}).encode()
        c.send(request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}))
        while b"word" not in c.buf:
            c._fill()
    rec = fake.wait_for_requests(1)[0]
    deadline = time.monotonic() + 8
    while not rec.client_gone and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rec.client_gone, "upstream stream kept running after the client went away"
    assert gw.alive()
    assert gw.client().chat.completions.create(model="mock-1", messages=MSGS).choices


def test_client_disconnect_while_upstream_is_silent(gw, fake):
    fake.set(hang=True)
    with Conn(gw.port) as c:
        body = json.dumps({"model": "chat", "messages": MSGS}).encode()
        c.send(request("POST", "/v1/chat/completions", body))
        fake.wait_for_requests(1)
    time.sleep(0.2)
    assert gw.alive()
    assert gw.client().chat.completions.create(model="mock-1", messages=MSGS).choices


# ---- upstream misbehaviour ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"id": "chatcmpl-1", "object": "chat.comp', b"", b"<html>oops</html>"],
    ids=["truncated-json", "empty", "html"],
)
def test_upstream_garbage_is_502(gw, fake, raw):
    fake.set(raw_body=raw)
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json={"model": "chat", "messages": MSGS})
    assert r.status_code == 502, r.text
    assert set(r.json()["error"]) >= {"message", "type", "code", "param"}


def test_upstream_client_error_passes_through_without_retry(gw, fake):
    fake.set(status=400)
    with pytest.raises(openai.BadRequestError) as ei:
        gw.client().chat.completions.create(model="chat", messages=MSGS)
    assert ei.value.status_code == 400
    assert len(fake.requests) == 1, "a 400 from the upstream was retried"


def test_upstream_429_on_the_only_target_reaches_client_as_429(gw, fake):
    fake.set(status=429, retry_after="7")
    with pytest.raises(openai.RateLimitError) as ei:
        gw.client().chat.completions.create(model="chat", messages=MSGS)
    assert ei.value.status_code == 429


def test_upstream_dies_mid_stream_client_sees_the_end(gw, fake):
    fake.set(close_after=3)
    got = []
    try:
        for c in gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True):
            got.append(c)
    except (openai.APIError, httpx.HTTPError):
        pass  # a cut stream may end quietly or raise: both are honest
    # whatever the client saw is a prefix of the answer, never made-up content
    assert DEFAULT_CONTENT.startswith(text_of(got))
    assert gw.alive()


# ---- retry budget --------------------------------------------------------------------


def test_retry_budget_bounds_attempts(start_gateway, fake, fake2):
    gw = start_gateway(config(fake, fake2, limits={"max_retries": 2}))
    fake2.set(status=500)
    with pytest.raises(openai.APIStatusError) as ei:
        gw.client().chat.completions.create(model="long-chain", messages=MSGS)
    assert ei.value.status_code >= 500
    assert len(fake2.requests) == 3, [r.json["model"] for r in fake2.requests]
    assert [r.json["model"] for r in fake2.requests] == ["b1", "b2", "b3"]


def test_zero_retries_means_no_fallback(start_gateway, fake, fake2):
    gw = start_gateway(config(fake, fake2, limits={"max_retries": 0}))
    fake2.set(status=500)
    with pytest.raises(openai.APIStatusError):
        gw.client().chat.completions.create(model="fallback", messages=MSGS)
    assert len(fake2.requests) == 1 and fake.requests == []


# ---- the mock provider's knobs -------------------------------------------------------


def test_mock_tokens_and_failure_rate(start_gateway, fake, fake2):
    gw = start_gateway(config(fake, fake2, mock={"tokens": 7}))
    r = gw.client().chat.completions.create(model="mock-1", messages=MSGS)
    assert r.usage.completion_tokens == 7
    chunks = list(
        gw.client().chat.completions.create(
            model="mock-1", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage.completion_tokens == 7

    failing = config(fake, fake2, mock={"failure_rate": 1})
    failing["models"].append(model("mock-then-up", target("mock"), target("up", "gpt-up")))
    gw2 = start_gateway(failing)
    with pytest.raises(openai.InternalServerError) as ei:
        gw2.client().chat.completions.create(model="mock-1", messages=MSGS)
    assert ei.value.status_code >= 500
    r = gw2.client().chat.completions.create(model="mock-then-up", messages=MSGS)
    assert r.choices[0].message.content == DEFAULT_CONTENT


# ---- concurrency ---------------------------------------------------------------------


def test_concurrent_requests_all_answered(gw, fake):
    fake.set(chunk_delay_ms=2)
    errors, texts = [], []

    def worker(i):
        try:
            client = gw.client()
            for j in range(5):
                if (i + j) % 2:
                    r = client.chat.completions.create(model="chat", messages=MSGS)
                    texts.append(r.choices[0].message.content)
                else:
                    texts.append(
                        text_of(client.chat.completions.create(model="chat", messages=MSGS, stream=True))
                    )
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert texts == [DEFAULT_CONTENT] * 80


def test_stream_then_pipelined_request_on_one_connection(gw, fake):
    body = json.dumps({"model": "chat", "messages": MSGS, "stream": True}).encode()
    with Conn(gw.port) as c:
        c.send(request("POST", "/v1/chat/completions", body) + request("GET", "/v1/models"))
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200 and r1.body.endswith(b"data: [DONE]\n\n")
    assert r2.status == 200 and r2.json()["object"] == "list"
