# SPDX-License-Identifier: Apache-2.0
# What the upstream receives when the gateway has to change the client's body:
# the model renamed to the target's upstream name and, for streams, usage
# reporting switched on. Every other byte of the body is the client's own.
import json

import pytest

from conftest import base_config, free_port, model, openai_provider, target

MSGS = [{"role": "user", "content": "Say something nice."}]


@pytest.fixture
def gw(start_gateway, fake):
    providers = [openai_provider("up", fake.base_url)]
    models = [
        model("same", target("up")),  # upstream name == client's name: no rewrite
        model("renamed", target("up", "gpt-upstream-\"quoted\"-é")),
    ]
    return start_gateway(base_config(free_port(), providers=providers, models=models))


def post_raw(gw, raw: str):
    with gw.http() as h:
        return h.post("/v1/chat/completions", content=raw.encode(),
                      headers={"content-type": "application/json"})


def test_body_forwarded_byte_for_byte_when_nothing_changes(gw, fake):
    raw = '{ "messages" : [{"role":"user","content":"x"}],\n "model":"same", "temperature": 0.50 }'
    r = post_raw(gw, raw)
    assert r.status_code == 200, r.text
    assert fake.requests[0].body == raw.encode()


def test_model_renamed_and_the_rest_untouched(gw, fake):
    raw = '{"model":"renamed","messages":[{"role":"user","content":"x"}],"temperature":0.50}'
    r = post_raw(gw, raw)
    assert r.status_code == 200, r.text
    sent = fake.requests[0].body.decode()
    assert json.loads(sent)["model"] == "gpt-upstream-\"quoted\"-é"
    assert '"temperature":0.50' in sent  # the number kept as the client wrote it


@pytest.mark.parametrize(
    "stream_options",
    [None, {}, {"include_usage": False}, {"include_usage": None}, {"other": 1}, "null"],
    ids=["absent", "empty", "false", "null-value", "other-member", "null"],
)
def test_stream_usage_switched_on_whatever_the_client_sent(gw, fake, stream_options):
    body = {"model": "renamed", "messages": MSGS, "stream": True}
    if stream_options == "null":
        body["stream_options"] = None
    elif stream_options is not None:
        body["stream_options"] = stream_options
    with gw.http() as h, h.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = [l for l in r.iter_lines() if l.startswith("data: ")]
    sent = json.loads(fake.requests[0].body)
    assert sent["stream_options"]["include_usage"] is True
    if isinstance(stream_options, dict) and "other" in stream_options:
        assert sent["stream_options"]["other"] == 1
    assert sent["model"] == "gpt-upstream-\"quoted\"-é"
    chunks = [json.loads(e[6:]) for e in events if e != "data: [DONE]"]
    assert chunks and all(c["choices"] for c in chunks), "usage-only chunk leaked to the client"


@pytest.mark.parametrize(
    "raw,code",
    [
        ('{"model":"same","model":"renamed","messages":[]}', "duplicate_key"),
        ('{"mod\\u0065l":"same","model":"renamed","messages":[]}', "duplicate_key"),
        ('{"model":"same","messages":[],"stream":true,"stream_options":'
         '{"include_usage":true,"include_usage":false}}', "duplicate_key"),
        ('{"model":"same","messages":[]', "invalid_json"),
        ('{"model":"same","messages":"nope"}', "invalid_messages"),
        ('{"model":"","messages":[]}', "missing_model"),
        ('{"model":7,"messages":[]}', "missing_model"),
        ('["model","same"]', "invalid_json"),
    ],
    ids=["dup-model", "dup-escaped-model", "dup-include-usage", "truncated", "messages-type",
         "empty-model", "model-type", "not-object"],
)
def test_ambiguous_or_malformed_bodies_are_refused_not_guessed(gw, fake, raw, code):
    r = post_raw(gw, raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert fake.requests == []  # nothing reached the upstream


def test_azure_style_provider_path_query_and_key_header(start_gateway, fake, upstream_key):
    """An Azure OpenAI deployment: the deployment in the base URL path, the API
    version as a query string, the key in an `api-key` header, not a bearer token."""
    providers = [
        openai_provider(
            "azure",
            fake.url + "/openai/deployments/my-gpt",
            query="api-version=2024-10-21",
            auth_header="api-key",
        )
    ]
    gw = start_gateway(
        base_config(free_port(), providers=providers, models=[model("gpt-4o", target("azure"))])
    )
    reply = gw.client().chat.completions.create(model="gpt-4o", messages=MSGS)
    assert reply.choices[0].message.content
    rec = fake.requests[0]
    assert rec.path == "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert rec.headers["api-key"] == upstream_key
    assert "authorization" not in rec.headers
