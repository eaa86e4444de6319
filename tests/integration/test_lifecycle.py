# SPDX-License-Identifier: Apache-2.0
# The gateway as an operator runs it: `portcullis check`, SIGTERM drain, SIGHUP
# reload, request ids, JSON logs, /metrics and TLS termination.
import json
import re
import signal
import ssl
import subprocess
import threading
import time

import httpx
import openai
import pytest

from conftest import (
    BIN,
    REPO,
    base_config,
    free_port,
    mock_provider,
    model,
    openai_provider,
    require_binary,
    target,
)
from fake_openai import DEFAULT_CONTENT
from rawhttp import Conn, request

MSGS = [{"role": "user", "content": "hello"}]


def run_check(path):
    require_binary()
    return subprocess.run(
        [str(BIN), "check", str(path)], capture_output=True, text=True, timeout=30
    )


# ---- portcullis check ------------------------------------------------------------


def test_check_valid_config_exits_0(tmp_path):
    import yaml

    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump(base_config(8080)))
    r = run_check(cfg)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_quickstart_example_is_valid():
    r = run_check(REPO / "examples" / "quickstart.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


INVALID = """\
listen: 127.0.0.1:8080
workers: 1
limits:
  max_body_bytes: 8 parsecs
providers:
  - name: mock
    kind: mock
  - name: up
    kind: openai-ish
    base_url: http://127.0.0.1:1/v1
models:
  - name: m
    targets:
      - provider: nope
"""


def error_lines(output: str, name: str) -> dict[int, str]:
    """{line: message} for each 'file:line: message' line about `name`."""
    found = {}
    for line in output.splitlines():
        m = re.match(r"^(\S*?)([^/\s:]+):(\d+): (.+)$", line)
        if m and m.group(2) == name:
            found[int(m.group(3))] = m.group(4)
    return found


def test_check_invalid_config_prints_file_line_message(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(INVALID)
    r = run_check(cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    errs = error_lines(out, "bad.yaml")
    # every error is reported (collected, not stopped at), each on its own line
    assert {4, 9, 14} <= set(errs), out
    assert "parsecs" in errs[4] or "max_body_bytes" in errs[4], errs[4]
    assert "openai-ish" in errs[9] or "kind" in errs[9], errs[9]
    assert "nope" in errs[14], errs[14]


def test_check_yaml_syntax_error_has_its_line(tmp_path):
    cfg = tmp_path / "syntax.yaml"
    cfg.write_text("listen: 127.0.0.1:8080\nproviders:\n  - name: m\n\tkind: mock\n")
    r = run_check(cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert 4 in error_lines(out, "syntax.yaml"), out


def test_check_missing_file_fails(tmp_path):
    r = run_check(tmp_path / "absent.yaml")
    assert r.returncode != 0
    assert "absent.yaml" in r.stdout + r.stderr


def test_serve_refuses_invalid_config(start_gateway, tmp_path):
    gw = start_gateway(base_config(free_port()), start=False)
    gw.write_config(INVALID)
    proc = subprocess.run(
        [str(require_binary()), "serve", "-c", str(gw.config_path)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert "portcullis.yaml:9" in proc.stdout + proc.stderr


# ---- SIGTERM ----------------------------------------------------------------------


def stream_in_thread(gw, model_name):
    """Starts a streamed completion in a thread; returns (first_words_event, result dict)."""
    first = threading.Event()
    result = {"text": "", "error": None, "finish": None}

    def run():
        try:
            stream = gw.client().chat.completions.create(
                model=model_name, messages=MSGS, stream=True
            )
            for chunk in stream:
                if chunk.choices:
                    result["text"] += chunk.choices[0].delta.content or ""
                    result["finish"] = chunk.choices[0].finish_reason or result["finish"]
                if result["text"]:
                    first.set()
        except Exception as e:  # reported by the test
            result["error"] = repr(e)
        finally:
            first.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    result["thread"] = t
    return first, result


def upstream_config(fake, **kw):
    return base_config(
        free_port(),
        providers=[mock_provider(), openai_provider("up", fake.base_url)],
        models=[model("mock-1", target("mock")), model("chat", target("up", "gpt-up"))],
        **kw,
    )


def test_sigterm_drains_in_flight_stream_and_exits_0(start_gateway, fake):
    fake.set(hold_after=2)
    gw = start_gateway(upstream_config(fake))
    first, result = stream_in_thread(gw, "chat")
    assert first.wait(10) and result["error"] is None, result
    gw.signal(signal.SIGTERM)
    time.sleep(0.5)  # the gateway is draining; the stream is still held upstream
    assert gw.alive(), "gateway exited with a request in flight"
    fake.release.set()
    result["thread"].join(15)
    assert result["error"] is None, result
    assert result["text"] == DEFAULT_CONTENT and result["finish"] == "stop"
    assert gw.wait_exit(15) == 0


def test_sigterm_with_idle_connections_exits_0(gateway):
    with Conn(gateway.port) as c:
        c.send(request("GET", "/v1/models"))
        assert c.read_response().status == 200
        gateway.signal(signal.SIGTERM)
        assert gateway.wait_exit(10) == 0
        assert c.wait_closed(5) is not None


def test_sigterm_drain_has_a_deadline(start_gateway, fake):
    fake.set(hold_after=1, hold_timeout_s=60)
    gw = start_gateway(upstream_config(fake, limits={"drain_timeout": "1s"}))
    first, result = stream_in_thread(gw, "chat")
    assert first.wait(10)
    gw.signal(signal.SIGTERM)
    try:
        gw.wait_exit(10)
    except subprocess.TimeoutExpired:
        pytest.fail("gateway still running 10s after SIGTERM with drain_timeout: 1s")


# ---- SIGHUP -----------------------------------------------------------------------


def wait_until(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def model_status(gw, name):
    with gw.http() as h:
        return h.post("/v1/chat/completions", json={"model": name, "messages": MSGS}).status_code


def test_sighup_reload_new_requests_see_new_config_in_flight_finishes(start_gateway, fake):
    fake.set(hold_after=2)
    cfg = upstream_config(fake)
    gw = start_gateway(cfg)
    keep = Conn(gw.port)  # a keep-alive connection opened before the reload
    keep.send(request("GET", "/v1/models"))
    assert keep.read_response().status == 200

    first, result = stream_in_thread(gw, "chat")
    assert first.wait(10) and result["error"] is None, result
    assert model_status(gw, "mock-2") == 404

    cfg["models"].append(model("mock-2", target("mock")))
    gw.reload(cfg)
    wait_until(lambda: model_status(gw, "mock-2") == 200, what="the reloaded model")
    assert model_status(gw, "mock-1") == 200

    keep.send(request("GET", "/v1/models"))  # the old connection survived the reload
    r = keep.read_response()
    assert r.status == 200 and "mock-2" in {m["id"] for m in r.json()["data"]}
    keep.close()

    fake.release.set()
    result["thread"].join(15)
    assert result["error"] is None, result
    assert result["text"] == DEFAULT_CONTENT and result["finish"] == "stop"
    assert gw.alive()


def test_sighup_invalid_config_keeps_old_and_logs_error(start_gateway):
    cfg = base_config(free_port())
    gw = start_gateway(cfg)
    assert model_status(gw, "mock-1") == 200
    before = len(gw.log_records())
    gw.reload(INVALID)
    rec = gw.wait_for_log(
        lambda r: str(r.get("level", "")).lower() in ("error", "err", "warn", "warning")
        and ("config" in json.dumps(r).lower() or "reload" in json.dumps(r).lower()),
        since=before,
    )
    assert gw.alive()
    assert model_status(gw, "mock-1") == 200  # the old snapshot is still in force
    assert model_status(gw, "m") == 404
    # and a later valid config is picked up
    cfg["models"].append(model("mock-3", target("mock")))
    gw.reload(cfg)
    wait_until(lambda: model_status(gw, "mock-3") == 200, what="the valid reload after a bad one")
    assert rec


# ---- request ids ------------------------------------------------------------------

RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def test_every_response_has_a_request_id(gateway):
    ids = []
    with gateway.http() as h:
        for resp in [
            h.get("/v1/models"),
            h.get("/no/such/path"),
            h.post("/v1/chat/completions", content=b"{oops"),
            h.post("/v1/chat/completions", json={"model": "nope", "messages": MSGS}),
            h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS}),
            h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS, "stream": True}),
            h.get("/metrics"),
        ]:
            rid = resp.headers.get("x-request-id")
            assert rid and RID_OK.match(rid), (resp.request.url, resp.status_code, rid)
            ids.append(rid)
    with Conn(gateway.port) as c:  # rejected at the HTTP layer, too
        c.send(b"GET /v1/models HTTP/1.1\r\nHost : x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.header("x-request-id"), r.headers
        ids.append(r.header("x-request-id"))
    assert len(set(ids) - {None}) == len(ids), "generated request ids repeat"
    # generated ids start with the time in ms: they sort in the order they were made
    # (the audit store's request-id index then grows at its end)
    stamps = [i[:12] for i in ids]
    assert stamps == sorted(stamps), ids
    first_ms = int(ids[0][:12], 16)
    assert abs(first_ms / 1000 - time.time()) < 60, ids[0]


def test_well_formed_request_id_is_echoed(gateway):
    rid = "client-req_42.a:b"
    with gateway.http() as h:
        r = h.get("/v1/models", headers={"x-request-id": rid})
        assert r.headers["x-request-id"] == rid
        r = h.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": MSGS},
            headers={"x-request-id": rid},
        )
        assert r.status_code == 404 and r.headers["x-request-id"] == rid


@pytest.mark.parametrize(
    "bad",
    ["x" * 300, "has space", 'quote"d', "semi;colon", "<script>", "tab\there"],
    ids=["too-long", "space", "quote", "semicolon", "angle", "tab"],
)
def test_malformed_request_id_is_replaced(gateway, bad):
    with Conn(gateway.port) as c:
        c.send(request("GET", "/v1/models", headers={"X-Request-Id": bad}))
        r = c.read_response()
    assert r.status == 200
    rid = r.header("x-request-id")
    assert rid and rid != bad and RID_OK.match(rid), rid


# ---- logs -------------------------------------------------------------------------


def test_logs_are_json_lines_with_request_id(gateway):
    with gateway.http() as h:
        h.post(
            "/v1/chat/completions",
            json={"model": "mock-1", "messages": MSGS},
            headers={"x-request-id": "log-test-ok-1"},
        )
        h.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": MSGS},
            headers={"x-request-id": "log-test-404-1"},
        )
    for rid in ("log-test-ok-1", "log-test-404-1"):
        gateway.wait_for_log(lambda r, rid=rid: r.get("request_id") == rid)
    gateway.stop()
    bad = []
    for line in gateway.log_lines():
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    assert not bad, "log lines that are not JSON objects:\n" + "\n".join(bad[:20])


# ---- metrics ----------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)( \d+)?$")


def parse_metrics(text):
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return samples


def test_metrics_after_requests(gateway):
    client = gateway.client()
    for _ in range(3):
        client.chat.completions.create(model="mock-1", messages=MSGS)
    list(client.chat.completions.create(model="mock-1", messages=MSGS, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MSGS)
    with gateway.http() as h:
        r = h.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    samples = parse_metrics(text)
    names = {s[0] for s in samples}

    reqs = [s for s in samples if s[0] == "portcullis_requests_total"]
    assert reqs, text
    ok_mock = sum(
        v for _, labels, v in reqs
        if 'model="mock-1"' in labels and re.search(r'"(200|2xx)"', labels)
    )
    assert ok_mock >= 4, reqs
    assert any(re.search(r'"(404|4xx)"', labels) for _, labels, _ in reqs), reqs

    assert "# TYPE portcullis_request_duration_seconds histogram" in text
    assert "portcullis_request_duration_seconds_bucket" in names
    assert "portcullis_request_duration_seconds_count" in names
    assert any("in_flight" in n for n in names), names
    tokens = [s for s in samples if s[0].startswith("portcullis_tokens")]
    assert tokens and sum(v for *_, v in tokens) > 0, tokens


# ---- TLS --------------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return crt, key


def test_tls_termination(start_gateway, cert):
    crt, key = cert
    gw = start_gateway(base_config(free_port(), tls={"cert": str(crt), "key": str(key)}))
    ctx = ssl.create_default_context(cafile=str(crt))
    with httpx.Client(base_url=gw.url, verify=ctx, timeout=20) as h:
        r = h.get("/v1/models")
        assert r.status_code == 200 and r.json()["object"] == "list"
        assert r.headers.get("x-request-id")

    import httpx2  # the transport the openai SDK is built on

    client = openai.OpenAI(
        base_url=gw.base_url, api_key="sk-client", max_retries=0,
        http_client=httpx2.Client(verify=ctx, timeout=20),
    )
    r = client.chat.completions.create(model="mock-1", messages=MSGS)
    assert r.choices[0].message.content
    chunks = list(client.chat.completions.create(model="mock-1", messages=MSGS, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with pytest.raises(httpx.ConnectError):  # an untrusted client refuses the cert
        httpx.get(gw.url + "/v1/models", timeout=5)

    with Conn(gw.port) as c:  # plaintext on the TLS port must not hurt the gateway
        c.send(request("GET", "/v1/models"))
        c.wait_closed(5)
    assert gw.alive()
    with httpx.Client(base_url=gw.url, verify=ctx, timeout=20) as h:
        assert h.get("/v1/models").status_code == 200


def test_reload_storm_under_load_drops_nothing(start_gateway, fake):
    cfg = upstream_config(fake)
    gw = start_gateway(cfg)
    stop = threading.Event()
    failures, done = [], [0]

    def load():
        client = gw.client()
        while not stop.is_set():
            try:
                if done[0] % 3:
                    r = client.chat.completions.create(model="chat", messages=MSGS)
                    assert r.choices[0].message.content == DEFAULT_CONTENT
                else:
                    chunks = list(client.chat.completions.create(model="mock-1", messages=MSGS, stream=True))
                    assert chunks
                done[0] += 1
            except Exception as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            cfg["models"] = [m for m in cfg["models"] if not m["name"].startswith("extra-")]
            cfg["models"].append(model(f"extra-{i}", target("mock")))
            gw.reload(cfg)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:5]
    assert done[0] > 0 and gw.alive()
    wait_until(lambda: model_status(gw, "extra-19") == 200, what="the last reload")
    assert model_status(gw, "extra-18") == 404


def test_metrics_count_upstream_calls_and_tokens(start_gateway, fake):
    gw = start_gateway(upstream_config(fake))
    client = gw.client()
    client.chat.completions.create(model="chat", messages=MSGS)
    list(client.chat.completions.create(model="chat", messages=MSGS, stream=True))
    with gw.http() as h:
        text = h.get("/metrics").text
    samples = parse_metrics(text)
    count = sum(v for n, labels, v in samples if n == "portcullis_upstream_duration_seconds_count")
    assert count >= 2, text
    words = len(DEFAULT_CONTENT.split())
    out = sum(
        v for n, labels, v in samples
        if n == "portcullis_tokens_total" and "out" in labels and 'model="chat"' in labels
    )
    assert out == 2 * words, [s for s in samples if s[0] == "portcullis_tokens_total"]
    inflight = [v for n, _, v in samples if n == "portcullis_requests_in_flight"]
    assert inflight and sum(inflight) <= 1  # only the /metrics request itself
