# SPDX-License-Identifier: Apache-2.0
# Self-tests of the fake upstreams (no gateway): the real SDKs talk to them
# directly, so the wire format they speak is the providers' own.
import json
import socket
import threading

import anthropic
import httpx
import openai
import pytest

from fake_openai import DEFAULT_CONTENT, FakeUpstream, embedding_for


@pytest.fixture
def up():
    with FakeUpstream() as fake:
        yield fake


def sdk(up, **kw):
    return openai.OpenAI(base_url=up.base_url, api_key="sk-fake-direct", max_retries=0, **kw)


def test_chat_completion_parses_with_the_sdk(up):
    r = sdk(up).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say hi"}]
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == DEFAULT_CONTENT
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    rec = up.requests[0]
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer sk-fake-direct"


def test_stream_without_include_usage_has_no_usage_field(up):
    chunks = list(
        sdk(up).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_CONTENT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_raw_bytes_match_openai_framing(up):
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", up.base_url + "/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(r.iter_raw())
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    payloads = [json.loads(e[len(b"data: ") :]) for e in events[:-2]]
    assert all(e.startswith(b"data: {") for e in events[:-2])
    assert all("usage" in p and p["usage"] is None for p in payloads[:-1])
    last = payloads[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0


def test_stream_with_include_usage_ends_with_usage_chunk(up):
    chunks = list(
        sdk(up).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert up.requests[0].json["stream_options"] == {"include_usage": True}


def test_hold_keeps_the_stream_open_until_released(up):
    up.set(hold_after=2)
    stream = sdk(up).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    it = iter(stream)
    first = [next(it) for _ in range(3)]  # role chunk + 2 content chunks
    rec = up.requests[0]
    assert rec.held.wait(5) and not rec.finished.is_set()
    assert [c.choices[0].delta.content for c in first[1:]] == ["Hello ", "from "]
    up.release.set()
    rest = list(it)
    assert rest[-1].choices[0].finish_reason == "stop"
    assert rec.finished.wait(5) and not rec.hold_timed_out


@pytest.mark.parametrize(
    "status,exc",
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_statuses_are_openai_shaped(up, status, exc):
    up.push(status=status, retry_after="1")
    with pytest.raises(exc) as ei:
        sdk(up).chat.completions.create(model="m", messages=[])
    assert ei.value.status_code == status
    assert set(ei.value.body) == {"message", "type", "param", "code"}
    # one-shot: the next request answers normally
    assert sdk(up).chat.completions.create(model="m", messages=[]).choices


def test_hang_times_out_and_close_drops(up):
    up.push(hang=True)
    with pytest.raises(openai.APITimeoutError):
        sdk(up, timeout=0.3).chat.completions.create(model="m", messages=[])
    up.push(close=True)
    with pytest.raises(openai.APIConnectionError):
        sdk(up).chat.completions.create(model="m", messages=[])


def test_close_after_cuts_a_stream(up):
    up.push(close_after=2)
    got = []
    with pytest.raises((openai.APIError, httpx.HTTPError, Exception)):
        for c in sdk(up).chat.completions.create(model="m", messages=[], stream=True):
            got.append(c)
    assert 1 <= len(got) <= 3


def test_embeddings_base64_and_float(up):
    client = sdk(up)
    r = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert up.requests[-1].json["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in r.data] == [embedding_for("a"), embedding_for("b")]
    r = client.embeddings.create(model="e", input="a", encoding_format="float", dimensions=5)
    assert r.data[0].embedding == embedding_for("a", 5)
    assert r.usage.prompt_tokens == 1


def test_models_list(up):
    assert [m.id for m in sdk(up).models.list()] == up.models


def test_anthropic_messages_json_and_stream(up):
    client = anthropic.Anthropic(base_url=up.url, api_key="sk-ant-direct", max_retries=0)
    msg = client.messages.create(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].text == DEFAULT_CONTENT and msg.stop_reason == "end_turn"
    assert up.requests[0].path == "/v1/messages"
    h = up.requests[0].headers
    assert "sk-ant-direct" in (h.get("x-api-key"), h.get("authorization", "")[len("Bearer ") :])
    assert "anthropic-version" in up.requests[0].headers

    with client.messages.stream(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == DEFAULT_CONTENT and final.usage.output_tokens > 0


def test_anthropic_event_sequence(up):
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", up.url + "/v1/messages", json=dict(body, stream=True)) as r:
        raw = b"".join(r.iter_raw()).decode()
    names = [line[len("event: ") :] for line in raw.splitlines() if line.startswith("event: ")]
    n = len(DEFAULT_CONTENT.split())
    assert names == (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * n
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    up.push(status=429)
    r = httpx.post(up.url + "/v1/messages", json=body)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"


def test_keep_alive_and_concurrent_requests(up):
    up.set(hold_after=1)
    results = []

    def held():
        results.append(
            httpx.post(up.base_url + "/chat/completions", json={"model": "m", "messages": [], "stream": True}).text
        )

    t = threading.Thread(target=held)
    t.start()
    up.wait_for_requests(1)
    up.requests[0].held.wait(5)
    up.push()  # a normal answer while the stream is held
    with httpx.Client() as c:
        for _ in range(3):
            assert c.get(up.base_url + "/models").status_code == 200
    up.release.set()
    t.join(10)
    assert results and results[0].endswith("data: [DONE]\n\n")


def test_stop_ends_hanging_requests():
    fake = FakeUpstream(hang=True).start()
    s = socket.create_connection(("127.0.0.1", fake.port))
    s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    fake.wait_for_requests(1)
    fake.stop()
    s.settimeout(5)
    assert s.recv(100) == b""


@pytest.mark.parametrize(
    "framing",
    [{"write_size": 7}, {"coalesce": True}, {"sse_newline": "\r\n"}],
    ids=["split-7-bytes", "one-write", "crlf"],
)
def test_stream_framing_variants_still_parse(up, framing):
    up.set(**framing)
    chunks = list(
        sdk(up).chat.completions.create(
            model="m", messages=[], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_CONTENT
    assert chunks[-1].usage is not None


def test_raw_body_and_ignore_include_usage(up):
    up.push(raw_body=b'{"id": "x", "object": "chat.comp')
    r = httpx.post(up.base_url + "/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 200 and r.content == b'{"id": "x", "object": "chat.comp'
    up.set(ignore_include_usage=True)
    chunks = list(
        sdk(up).chat.completions.create(
            model="m", messages=[], stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.choices for c in chunks)
