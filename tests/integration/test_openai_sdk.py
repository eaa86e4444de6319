# SPDX-License-Identifier: Apache-2.0
# The LLM proxy as an agent sees it: the real OpenAI (and Anthropic) Python SDKs
# pointed at the gateway, which routes to its built-in mock provider or to fake
# upstreams that speak the providers' wire formats.
import json

import httpx
import openai
import pytest

from conftest import (
    CLIENT_KEY,
    anthropic_provider,
    assert_openai_error,
    base_config,
    dead_port,
    free_port,
    mock_provider,
    model,
    openai_provider,
    target,
)
from fake_openai import DEFAULT_CONTENT, embedding_for, split_content

HEALTHY = "The healthy upstream answers this."
MSGS = [{"role": "user", "content": "Say something nice."}]


def llm_config(fake, fake2, **extra):
    """Every route the tests use, in one config:
    fake = a healthy OpenAI-compatible upstream, fake2 = one the test makes misbehave."""
    providers = [
        mock_provider(),
        openai_provider("up", fake.base_url),
        openai_provider("bad", fake2.base_url),
        openai_provider("dead", f"http://127.0.0.1:{dead_port()}/v1", connect_timeout="1s"),
        openai_provider("slow", fake2.base_url, timeout="500ms"),
        anthropic_provider("claude", fake.url),  # like api.anthropic.com: no /v1
    ]
    models = [
        model("mock-1", target("mock")),
        model("mock-embed", target("mock")),
        model("chat", target("up", "gpt-upstream-x")),
        model("embed", target("up", "text-embedding-upstream")),
        model("fallback", target("bad", "gpt-bad"), target("up", "gpt-good")),
        model("dead-fallback", target("dead", "gpt-dead"), target("up", "gpt-good")),
        model("unreachable", target("dead", "gpt-dead")),
        model("slow", target("slow", "gpt-slow")),
        model("weighted", target("bad", "gpt-never", weight=0), target("up", "gpt-always", weight=1)),
        model("claude-x", target("claude", "claude-upstream")),
    ]
    return base_config(free_port(), providers=providers, models=models, **extra)


@pytest.fixture
def gw(start_gateway, fake, fake2):
    return start_gateway(llm_config(fake, fake2))


def content_of(chunks) -> str:
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


# ---- plain completions ---------------------------------------------------------


def test_plain_completion_through_mock_provider(gw):
    r = gw.client().chat.completions.create(model="mock-1", messages=MSGS)
    assert r.object == "chat.completion"
    assert r.id
    assert len(r.choices) == 1
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str) and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_plain_completion_raw_json_is_openai_shaped(gw):
    with gw.http() as h:
        r = h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["choices"][0]["index"] == 0
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_completion_through_upstream_rewrites_model_and_sends_provider_key(gw, fake, upstream_key):
    r = gw.client().chat.completions.create(model="chat", messages=MSGS, temperature=0.2)
    assert r.choices[0].message.content == DEFAULT_CONTENT
    assert r.usage.completion_tokens == len(split_content(DEFAULT_CONTENT))
    (rec,) = fake.requests
    assert rec.path.endswith("/chat/completions")
    assert rec.json["model"] == "gpt-upstream-x"
    assert rec.json["messages"] == MSGS
    assert rec.json["temperature"] == 0.2
    assert rec.headers.get("authorization") == f"Bearer {upstream_key}"
    assert CLIENT_KEY not in json.dumps(rec.headers)


# ---- streaming ------------------------------------------------------------------


def test_stream_chunks_reach_client_before_upstream_finishes(gw, fake):
    fake.set(hold_after=2)  # role chunk + 2 content chunks, then wait for release
    stream = gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True)
    it = iter(stream)
    got = []
    while content_of(got) != "Hello from ":
        got.append(next(it))
        assert len(got) <= 5, [c.model_dump() for c in got]
    rec = fake.requests[0]
    # The client holds the first words while the upstream is still held open.
    # (the fake marks itself held just after writing, so allow it a moment)
    assert rec.held.wait(5) and not rec.finished.is_set() and not rec.hold_timed_out
    fake.release.set()
    got.extend(it)
    assert content_of(got) == DEFAULT_CONTENT
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    assert not rec.hold_timed_out


def test_stream_usage_not_requested_is_asked_upstream_and_hidden(gw, fake):
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MSGS, stream=True))
    upstream_body = fake.requests[0].json
    assert upstream_body["stream"] is True
    assert (upstream_body.get("stream_options") or {}).get("include_usage") is True
    assert content_of(chunks) == DEFAULT_CONTENT
    assert all(c.choices for c in chunks), "client got a usage-only chunk it did not ask for"
    assert all(c.usage is None for c in chunks)


def test_stream_usage_requested_is_passed_to_client(gw, fake):
    chunks = list(
        gw.client().chat.completions.create(
            model="chat", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert content_of(chunks) == DEFAULT_CONTENT
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == len(split_content(DEFAULT_CONTENT))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_stream_raw_sse_framing(gw, fake):
    body = {"model": "chat", "messages": MSGS, "stream": True}
    with gw.http() as h, h.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(r.iter_bytes()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]", raw[-200:]
    for e in events[:-2]:
        assert e.startswith("data: "), e
        chunk = json.loads(e[len("data: ") :])
        assert chunk["object"] == "chat.completion.chunk"


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_through_mock_provider(gw, include_usage):
    kw = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        gw.client().chat.completions.create(model="mock-1", messages=MSGS, stream=True, **kw)
    )
    assert content_of(chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    usage_chunks = [c for c in chunks if not c.choices]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0].usage.completion_tokens > 0
        assert chunks[-1] is usage_chunks[0]
    else:
        assert usage_chunks == [] and all(c.usage is None for c in chunks)


# ---- fallback -------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"status": 429}, {"status": 503}, {"close": True}],
    ids=["500", "429", "503", "connection-closed"],
)
def test_fallback_to_healthy_target(gw, fake, fake2, failure):
    fake2.set(**failure)
    fake.set(content=HEALTHY)
    r = gw.client().chat.completions.create(model="fallback", messages=MSGS)
    assert r.choices[0].message.content == HEALTHY
    assert len(fake2.requests) >= 1 and fake2.requests[0].json["model"] == "gpt-bad"
    assert fake.requests[-1].json["model"] == "gpt-good"


def test_fallback_from_connection_refused(gw, fake):
    fake.set(content=HEALTHY)
    r = gw.client().chat.completions.create(model="dead-fallback", messages=MSGS)
    assert r.choices[0].message.content == HEALTHY
    assert fake.requests[-1].json["model"] == "gpt-good"


def test_fallback_for_streamed_request(gw, fake, fake2):
    fake2.set(status=500)
    fake.set(content=HEALTHY)
    chunks = list(gw.client().chat.completions.create(model="fallback", messages=MSGS, stream=True))
    assert content_of(chunks) == HEALTHY


def test_no_retry_after_first_byte_reached_client(gw, fake, fake2):
    fake2.set(hold_after=2, close_after=2)  # two words, then the upstream dies
    fake.set(content=HEALTHY)
    stream = gw.client().chat.completions.create(model="fallback", messages=MSGS, stream=True)
    it = iter(stream)
    got = []
    while content_of(got) != "Hello from ":
        got.append(next(it))
        assert len(got) <= 5
    fake2.release.set()
    try:
        got.extend(it)
    except (openai.APIError, httpx.HTTPError):
        pass  # a cut stream may surface as an error; either way no retry
    assert HEALTHY.split()[0] not in content_of(got)
    assert fake.requests == [], "gateway retried after bytes had gone to the client"


def test_weight_zero_target_is_never_picked_first(gw, fake, fake2):
    client = gw.client()
    for _ in range(6):
        client.chat.completions.create(model="weighted", messages=MSGS)
    assert fake2.requests == []
    assert {r.json["model"] for r in fake.requests} == {"gpt-always"}


# ---- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"model": "mock-1", "messages": [', b"not json at all", b"[1, 2, 3]", b""],
    ids=["truncated", "garbage", "not-an-object", "empty"],
)
def test_invalid_json_is_400(gw, body):
    with gw.http() as h:
        r = h.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    err = assert_openai_error(r, 400)
    assert err["type"] == "invalid_request_error"


def test_unknown_model_is_404(gw):
    with pytest.raises(openai.NotFoundError) as ei:
        gw.client().chat.completions.create(model="no-such-model", messages=MSGS)
    assert ei.value.status_code == 404
    assert {"message", "type", "code", "param"} <= set(ei.value.body)
    assert "no-such-model" in ei.value.body["message"]
    with gw.http() as h:
        assert_openai_error(
            h.post("/v1/chat/completions", json={"model": "no-such-model", "messages": MSGS}), 404
        )


def test_upstream_unreachable_is_502(gw):
    with pytest.raises(openai.InternalServerError) as ei:
        gw.client().chat.completions.create(model="unreachable", messages=MSGS)
    assert ei.value.status_code == 502
    with gw.http() as h:
        assert_openai_error(
            h.post("/v1/chat/completions", json={"model": "unreachable", "messages": MSGS}), 502
        )


def test_upstream_timeout_is_504(gw, fake2):
    fake2.set(hang=True)
    with pytest.raises(openai.InternalServerError) as ei:
        gw.client().chat.completions.create(model="slow", messages=MSGS)
    assert ei.value.status_code == 504
    assert {"message", "type", "code", "param"} <= set(ei.value.body)
    assert fake2.requests and fake2.requests[0].json["model"] == "gpt-slow"


def test_streamed_request_to_unreachable_upstream_is_502(gw):
    with pytest.raises(openai.InternalServerError) as ei:
        list(gw.client().chat.completions.create(model="unreachable", messages=MSGS, stream=True))
    assert ei.value.status_code == 502


def test_provider_key_never_in_responses_or_logs(start_gateway, fake, fake2, upstream_key):
    gw = start_gateway(llm_config(fake, fake2, log_level="debug"))
    seen = []
    with gw.http() as h:

        def call(path, body=None):
            r = h.post(path, json=body) if body is not None else h.get(path)
            seen.append(f"{r.status_code} {dict(r.headers)} {r.text}")
            return r

        assert call("/v1/chat/completions", {"model": "chat", "messages": MSGS}).status_code == 200
        call("/v1/chat/completions", {"model": "chat", "messages": MSGS, "stream": True})
        call("/v1/embeddings", {"model": "embed", "input": "x"})
        call("/v1/messages", {"model": "claude-x", "max_tokens": 5, "messages": MSGS})
        assert call("/v1/chat/completions", {"model": "unreachable", "messages": MSGS}).status_code == 502
        fake2.set(status=401)
        call("/v1/chat/completions", {"model": "fallback", "messages": MSGS})
        fake2.set(hang=True)
        assert call("/v1/chat/completions", {"model": "slow", "messages": MSGS}).status_code == 504
        call("/v1/models")
        call("/metrics")
    for text in seen:
        assert upstream_key not in text
    gw.stop()
    assert upstream_key not in gw.log_text()
    assert fake.requests[0].headers["authorization"] == f"Bearer {upstream_key}"


# ---- embeddings and models ------------------------------------------------------


def test_embeddings_through_mock(gw):
    client = gw.client()
    r = client.embeddings.create(model="mock-embed", input="hello world")
    assert len(r.data) == 1 and r.data[0].index == 0
    vec = r.data[0].embedding
    assert len(vec) > 0 and all(isinstance(x, float) for x in vec)
    r = client.embeddings.create(model="mock-embed", input=["a", "b", "c"], encoding_format="float")
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len({len(d.embedding) for d in r.data}) == 1


def test_embeddings_through_upstream(gw, fake, upstream_key):
    client = gw.client()
    r = client.embeddings.create(model="embed", input=["hello", "world"])
    assert [d.embedding for d in r.data] == [embedding_for("hello"), embedding_for("world")]
    rec = fake.requests[-1]
    assert rec.path.endswith("/embeddings")
    assert rec.json["model"] == "text-embedding-upstream"
    assert rec.json["encoding_format"] == "base64"
    assert rec.headers["authorization"] == f"Bearer {upstream_key}"
    r = client.embeddings.create(model="embed", input="hello", encoding_format="float", dimensions=4)
    assert r.data[0].embedding == embedding_for("hello", 4)
    assert r.usage.prompt_tokens == 1


def test_models_lists_configured_models(gw):
    ids = [m.id for m in gw.client().models.list()]
    assert set(ids) >= {"mock-1", "chat", "fallback", "unreachable", "claude-x"}
    assert len(ids) == len(set(ids))
    with gw.http() as h:
        body = h.get("/v1/models").json()
    assert body["object"] == "list"
    assert all(m["object"] == "model" for m in body["data"])


# ---- Anthropic passthrough ------------------------------------------------------


def _anthropic_auth(rec):
    h = rec.headers
    return h.get("x-api-key") or h.get("authorization", "").removeprefix("Bearer ")


def test_anthropic_messages_passthrough_json(gw, fake, upstream_key):
    body = {"model": "claude-x", "max_tokens": 64, "messages": MSGS}
    with gw.http() as h:
        r = h.post(
            "/v1/messages",
            json=body,
            headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        )
    assert r.status_code == 200, r.text
    msg = r.json()
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["content"] == [{"type": "text", "text": DEFAULT_CONTENT}]
    assert msg["usage"]["output_tokens"] > 0
    (rec,) = fake.requests
    assert rec.path.endswith("/messages")
    assert rec.json["model"] == "claude-upstream"
    assert rec.json["messages"] == MSGS
    assert _anthropic_auth(rec) == upstream_key
    assert "anthropic-version" in rec.headers


def test_anthropic_messages_passthrough_stream(gw, fake):
    body = {"model": "claude-x", "max_tokens": 64, "messages": MSGS, "stream": True}
    with gw.http() as h, h.stream(
        "POST", "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(r.iter_bytes()).decode()
    names = [l[len("event: ") :] for l in raw.splitlines() if l.startswith("event: ")]
    n = len(split_content(DEFAULT_CONTENT))
    assert names == (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * n
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    text = "".join(
        json.loads(l[len("data: ") :])["delta"]["text"]
        for l in raw.splitlines()
        if l.startswith("data: ") and '"content_block_delta"' in l
    )
    assert text == DEFAULT_CONTENT


def test_anthropic_sdk(gw, fake, upstream_key):
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    msg = client.messages.create(model="claude-x", max_tokens=64, messages=MSGS)
    assert msg.content[0].text == DEFAULT_CONTENT
    with client.messages.stream(model="claude-x", max_tokens=64, messages=MSGS) as s:
        assert "".join(s.text_stream) == DEFAULT_CONTENT
        assert s.get_final_message().stop_reason == "end_turn"
    assert all(_anthropic_auth(r) == upstream_key for r in fake.requests)
