# SPDX-License-Identifier: Apache-2.0
# HTTP/1.1 limits and malformed input, as raw bytes over sockets. After every
# test the gateway must still be alive and answer a normal request.
import time

import pytest

from conftest import base_config, free_port
from rawhttp import Closed, Conn, chat_body, request

GOOD = request("GET", "/v1/models")


@pytest.fixture
def make_gw(start_gateway):
    """make_gw(**limits) -> a gateway on the mock provider with these limits.
    At teardown each one must be alive and answer GET /v1/models."""
    made = []

    def make(**limits):
        gw = start_gateway(base_config(free_port(), limits=limits or None))
        made.append(gw)
        return gw

    yield make

    for gw in made:
        if gw.stopped_by_test:
            continue
        assert gw.alive(), f"gateway died (exit {gw.proc.returncode})"
        with Conn(gw.port) as c:
            c.send(GOOD)
            r = c.read_response()
        assert r.status == 200, f"gateway no longer answers a normal request: {r.status} {r.body!r}"


@pytest.fixture
def gw(make_gw):
    return make_gw(max_body_bytes="1KiB")


def exchange(gw, data: bytes) -> tuple:
    """Sends data on a new connection; returns (first response, bytes after it
    or None if the connection stayed open)."""
    with Conn(gw.port) as c:
        c.send(data)
        r = c.read_response()
        return r, c.wait_closed(5)


def assert_rejected_and_closed(gw, data: bytes, status: int = 400):
    r, after = exchange(gw, data)
    assert r.status == status, f"expected {status}, got {r.status}: {r.body!r}"
    assert after is not None, "connection left open after a request that must close it"
    assert after == b"", f"server answered bytes after the rejected request: {after[:200]!r}"
    return r


# ---- size limits -------------------------------------------------------------


def test_headers_over_16k_is_431(gw):
    big = request("GET", "/v1/models", headers={"X-Big": "a" * 17000})
    r, _ = exchange(gw, big)
    assert r.status == 431


def test_many_headers_adding_up_over_16k_is_431(gw):
    headers = {f"X-H{i}": "v" * 200 for i in range(90)}  # ~19 KiB in 90 headers
    r, _ = exchange(gw, request("GET", "/v1/models", headers=headers))
    assert r.status == 431


def test_request_line_over_16k_is_431(gw):
    r, _ = exchange(gw, request("GET", "/v1/models?q=" + "a" * 17000))
    assert r.status in (431, 414)


def test_headers_under_the_limit_are_fine(gw):
    r, _ = exchange(gw, request("GET", "/v1/models", headers={"X-Big": "a" * 12000}))
    assert r.status == 200


def test_too_many_headers_is_431(gw):
    headers = {f"X-H{i}": "v" for i in range(150)}  # default max_headers: 100
    r, _ = exchange(gw, request("GET", "/v1/models", headers=headers))
    assert r.status == 431


def test_body_over_limit_is_413(gw):
    body = chat_body("x" * 2000)  # limit: 1 KiB
    r, _ = exchange(gw, request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}))
    assert r.status == 413
    err = r.json()["error"]
    assert {"message", "type", "code", "param"} <= set(err)


def test_chunked_body_over_limit_is_413(gw):
    body = chat_body("x" * 2000)
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    for i in range(0, len(body), 500):
        part = body[i : i + 500]
        data += b"%x\r\n%s\r\n" % (len(part), part)
    data += b"0\r\n\r\n"
    r, _ = exchange(gw, data)
    assert r.status == 413


def test_body_at_the_limit_is_accepted(gw):
    body = chat_body("")
    body = chat_body("y" * (1024 - len(body)))
    assert len(body) == 1024
    r, _ = exchange(gw, request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"}))
    assert r.status == 200, r.body
    assert r.json()["object"] == "chat.completion"


# ---- request smuggling shapes and malformed framing ----------------------------

SMUGGLED = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"

MALFORMED = {
    "content-length-and-transfer-encoding": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "two-different-content-lengths": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Content-Length: 40\r\n\r\n{}" + SMUGGLED
    ),
    "bad-chunk-size": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    ),
    "bare-lf-line-endings": b"GET /v1/models HTTP/1.1\nHost: x\n\n",
    "bare-lf-in-one-header": b"GET /v1/models HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare-cr-in-header": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n",
    "obs-fold": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
    "whitespace-before-colon": b"GET /v1/models HTTP/1.1\r\nHost : x\r\n\r\n",
    "garbage-request-line": b"HELLO THERE\r\n\r\n",
    "negative-content-length": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    ),
    "plus-signed-content-length": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}"
    ),
    "two-transfer-encoding-headers": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "chunk-size-overflow": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"10000000000000000000001\r\n"
    ),
    "chunk-longer-than-its-size": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}XX\r\n0\r\n\r\n"
    ),
    "bare-lf-after-chunk-size": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\n{}\r\n0\r\n\r\n"
    ),
    "nul-in-header-value": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "header-without-colon": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "empty-header-name": b"GET /v1/models HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "missing-host-http11": b"GET /v1/models HTTP/1.1\r\n\r\n",
    "two-host-headers": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "space-in-request-target": b"GET /v1/mo dels HTTP/1.1\r\nHost: x\r\n\r\n",
}

# Shapes where more than one status is right, but the connection must close.
REFUSED = {
    "transfer-encoding-gzip-chunked": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
        b"\r\n0\r\n\r\n" + SMUGGLED,
        (400, 501),
    ),
    "chunked-not-last": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n"
        b"\r\n0\r\n\r\n" + SMUGGLED,
        (400, 501),
    ),
    "http-2.0-request-line": (b"GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n", (400, 505)),
    "content-length-huge": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 99999999999999999999999\r\n\r\n{}",
        (400, 413),
    ),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_400_and_closed(gw, data):
    assert_rejected_and_closed(gw, data, 400)


@pytest.mark.parametrize("data,statuses", REFUSED.values(), ids=REFUSED.keys())
def test_refused_framing_is_answered_and_closed(gw, data, statuses):
    r, after = exchange(gw, data)
    assert r.status in statuses, (r.status, r.body)
    assert after == b"", f"connection open or more bytes after the refusal: {after!r}"


def test_chunk_extensions_and_trailers_are_accepted(gw):
    body = chat_body("ext")
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x;name=value\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(body), body)
    )
    with Conn(gw.port) as c:
        c.send(data + GOOD)
        assert c.read_response().status == 200
        assert c.read_response().status == 200  # framing stayed in step


def test_chunked_request_body_is_accepted(gw):
    body = chat_body("chunked hello")
    parts = [body[:10], body[10:25], body[25:]]
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    for p in parts:
        data += b"%x\r\n%s\r\n" % (len(p), p)
    data += b"0\r\n\r\n"
    with Conn(gw.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200, r.body
        assert r.json()["object"] == "chat.completion"
        c.send(GOOD)  # the connection is still good for the next request
        assert c.read_response().status == 200


def test_chunked_body_sent_slowly_in_pieces(gw):
    body = chat_body("slow pieces")
    with Conn(gw.port) as c:
        c.send(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(0, len(body), 7):
            p = body[i : i + 7]
            c.send(b"%x\r\n%s\r\n" % (len(p), p))
            time.sleep(0.01)
        c.send(b"0\r\n\r\n")
        assert c.read_response().status == 200


# ---- keep-alive and pipelining -------------------------------------------------


def test_keep_alive_two_requests_on_one_connection(gw):
    with Conn(gw.port) as c:
        c.send(GOOD)
        r1 = c.read_response()
        c.send(request("POST", "/v1/chat/completions", chat_body(), {"Content-Type": "application/json"}))
        r2 = c.read_response()
    assert r1.status == 200 and r1.json()["object"] == "list"
    assert r2.status == 200 and r2.json()["object"] == "chat.completion"


def test_pipelined_requests_are_answered_in_order(gw):
    data = (
        GOOD
        + request("POST", "/v1/chat/completions", chat_body(model="nope"))
        + request("POST", "/v1/chat/completions", chat_body())
        + request("GET", "/v1/models")
    )
    with Conn(gw.port) as c:
        c.send(data)
        rs = [c.read_response() for _ in range(4)]
    assert [r.status for r in rs] == [200, 404, 200, 200]
    assert rs[0].json()["object"] == "list"
    assert "error" in rs[1].json()
    assert rs[2].json()["object"] == "chat.completion"
    assert rs[3].json()["object"] == "list"


def test_http10_request_is_answered_and_closed(gw):
    with Conn(gw.port) as c:
        c.send(b"GET /v1/models HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert c.wait_closed(5) == b""


def test_connection_close_is_honoured(gw):
    with Conn(gw.port) as c:
        c.send(request("GET", "/v1/models", headers={"Connection": "close"}))
        assert c.read_response().status == 200
        assert c.wait_closed(5) == b""


def test_expect_100_continue(gw):
    body = chat_body("expect")
    with Conn(gw.port) as c:
        c.send(
            request("POST", "/v1/chat/completions", None, {"Expect": "100-continue",
                                                          "Content-Length": str(len(body))})
        )
        c.send(body)
        r = c.read_response()
    assert r.status == 200, r.body


def test_unknown_path_is_404_and_connection_survives(gw):
    with Conn(gw.port) as c:
        c.send(request("GET", "/nope"))
        assert c.read_response().status == 404
        c.send(GOOD)
        assert c.read_response().status == 200


# ---- timeouts ------------------------------------------------------------------


def test_slow_headers_connection_is_closed(make_gw):
    gw = make_gw(header_timeout="300ms")
    with Conn(gw.port) as c:
        c.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        after = c.wait_closed(5)
    assert after is not None, "connection still open well past header_timeout"
    assert after == b"" or after.startswith(b"HTTP/1.1 408")


def test_silent_connection_is_closed(make_gw):
    gw = make_gw(header_timeout="300ms", idle_timeout="300ms")
    with Conn(gw.port) as c:
        after = c.wait_closed(5)
    assert after is not None, "a connection that never sent a byte is still open"


def test_slow_body_connection_is_closed(make_gw):
    gw = make_gw(body_timeout="300ms")
    with Conn(gw.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        after = c.wait_closed(5)
    assert after is not None, "connection still open well past body_timeout"
    assert after == b"" or after.startswith(b"HTTP/1.1 408")


def test_idle_keep_alive_connection_is_closed(make_gw):
    gw = make_gw(idle_timeout="500ms")
    with Conn(gw.port) as c:
        c.send(GOOD)
        assert c.read_response().status == 200
        after = c.wait_closed(5)
    assert after == b"", "idle keep-alive connection still open well past idle_timeout"


# ---- connection limit ----------------------------------------------------------


def test_max_connections_sheds_with_503(make_gw):
    gw = make_gw(max_connections=5)
    held = []
    try:
        for _ in range(5):
            c = Conn(gw.port)
            c.send(GOOD)  # a full answer proves the gateway accepted and counts it
            assert c.read_response().status == 200
            held.append(c)
        with Conn(gw.port) as sixth:
            try:
                sixth.send(GOOD)
                r = sixth.read_response()
                status = r.status
            except (Closed, ConnectionResetError, BrokenPipeError):
                status = None
            assert status == 503, "6th connection over max_connections=5 was not shed with 503"
            assert sixth.wait_closed(5) is not None
        # the held connections still work
        held[0].send(GOOD)
        assert held[0].read_response().status == 200
    finally:
        for c in held:
            c.close()
    # once they are gone, new connections are served again
    deadline = time.monotonic() + 5
    while True:
        with Conn(gw.port) as c:
            c.send(GOOD)
            try:
                if c.read_response().status == 200:
                    break
            except Closed:
                pass
        assert time.monotonic() < deadline, "gateway still shedding after connections closed"
        time.sleep(0.05)


# ---- the process survives a burst of abuse --------------------------------------


def test_burst_of_malformed_requests_does_not_hurt(gw):
    for _ in range(3):
        for data in MALFORMED.values():
            with Conn(gw.port) as c:
                c.send(data)
                try:
                    c.read_response()
                except Closed:
                    pass
    for i in range(1, 60):  # truncated requests, cut at every length
        with Conn(gw.port) as c:
            c.send(GOOD[:i] if i < len(GOOD) else GOOD)
    assert gw.alive()
    with Conn(gw.port) as c:
        c.send(GOOD)
        assert c.read_response().status == 200
