# SPDX-License-Identifier: Apache-2.0
"""A fake OpenAI (and Anthropic) upstream for the integration tests and the bench.

It speaks the providers' wire formats on 127.0.0.1: OpenAI's POST /v1/chat/completions
(JSON and SSE, `stream_options.include_usage` honoured like OpenAI does), POST
/v1/embeddings (float and base64), GET /v1/models, and Anthropic's POST /v1/messages
(JSON and the native event stream). Any path prefix is accepted (`/v1/chat/completions`,
`/openai/deployments/x/chat/completions`, ...), so base URLs with or without `/v1` work.

Tests steer it with Behaviours: an error status, a hang, a dropped connection, delays
between stream chunks, or a hold after N chunks until the test sets an Event (to prove
that chunks reach the client while the upstream is still streaming). Every request it
receives is recorded (method, path, headers, body).

    with FakeUpstream() as up:
        up.set(chunk_delay_ms=10)          # default behaviour for every request
        up.push(status=429)                # one-shot: the next request only
        ... up.requests[-1].json["model"] ...

Run alone (for the bench or by hand): python fake_openai.py --port 9999
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_CONTENT = "Hello from the fake upstream, one word per chunk."

# HTTP status -> (OpenAI error type, OpenAI error code)
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}
# HTTP status -> Anthropic error type
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclasses.dataclass
class Behaviour:
    """How the fake answers one request. The defaults answer normally at once."""

    status: int | None = None  # answer with this error status and a provider-shaped body
    hang: bool = False  # read the request, then answer nothing (until released/stopped)
    close: bool = False  # read the request, then close the connection without answering
    latency_ms: int = 0  # sleep before the response headers
    chunk_delay_ms: int = 0  # sleep between streamed chunks
    hold_after: int | None = None  # streams: after this many content chunks, wait for release
    close_after: int | None = None  # streams: after this many content chunks, drop the connection
    content: str = DEFAULT_CONTENT  # the answer text; streams send one word per chunk
    retry_after: str | None = None  # Retry-After header on error answers
    hold_timeout_s: float = 20.0  # a hold or hang gives up after this long
    raw_body: bytes | None = None  # answer 200 with exactly these bytes (e.g. broken JSON)
    ignore_include_usage: bool = False  # streams: never send the usage chunk (like some servers)
    # stream framing: events re-cut into HTTP chunks of write_size bytes (split
    # anywhere, even inside an event), or all sent in one write at the end, and
    # the SSE line terminator ("\r\n" is allowed by the SSE spec)
    write_size: int | None = None
    coalesce: bool = False
    sse_newline: str = "\n"


class RecordedRequest:
    """One request as the fake received it. Stream progress is observable through
    the events, so tests can tell whether the upstream had finished."""

    def __init__(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):
        self.method = method
        self.path = path
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json: Any = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.held = threading.Event()  # set when a stream starts waiting for release
        self.finished = threading.Event()  # set once the whole answer has been written
        self.hold_timed_out = False
        self.client_gone = False  # the gateway closed the connection before the end

    def __repr__(self) -> str:
        return f"<RecordedRequest {self.method} {self.path} {self.body[:80]!r}>"


def float32(values: list[float]) -> list[float]:
    """Rounds to float32, as the base64 embedding encoding carries them."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def embedding_for(text: str, dimensions: int = 8) -> list[float]:
    """The deterministic embedding the fake returns for `text` (float32 values)."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            (n,) = struct.unpack("<I", digest[i : i + 4])
            out.append(n / 0xFFFFFFFF * 2.0 - 1.0)
        counter += 1
    return float32(out[:dimensions])


def count_tokens(value: Any) -> int:
    """A crude, deterministic token count: words in every string of the value."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    if isinstance(value, dict):
        return sum(count_tokens(v) for v in value.values())
    return 0


def split_content(content: str) -> list[str]:
    return re.findall(r"\S+\s*", content) or [content]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    block_on_close = False

    def __init__(self, addr, handler, upstream: "FakeUpstream"):
        self.upstream = upstream
        super().__init__(addr, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"
    timeout = 120  # an idle keep-alive connection is dropped after this
    server: _Server

    def log_message(self, fmt, *args):  # quiet; requests are recorded instead
        pass

    def setup(self):
        super().setup()
        self.server.upstream._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.upstream._track(self.connection, False)

    # ---- request plumbing -------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        up = self.server.upstream
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        rec = RecordedRequest(self.command, self.path, list(self.headers.items()), body)
        behaviour = up._take_behaviour()
        self._behaviour = behaviour
        self._pending = b""
        up._record(rec)
        anthropic = path.endswith("/messages")

        if behaviour.latency_ms:
            time.sleep(behaviour.latency_ms / 1000)
        if behaviour.close:
            self._drop()
            rec.finished.set()
            return
        if behaviour.hang:
            self._wait(behaviour, rec)
            self._drop()
            rec.finished.set()
            return
        if behaviour.status:
            self._error(behaviour.status, behaviour, anthropic)
            rec.finished.set()
            return
        if behaviour.raw_body is not None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(behaviour.raw_body)))
            self.end_headers()
            self.wfile.write(behaviour.raw_body)
            rec.finished.set()
            return

        try:
            if self.command == "POST" and path.endswith("/chat/completions"):
                self._chat(rec, behaviour)
            elif self.command == "POST" and path.endswith("/embeddings"):
                self._embeddings(rec)
            elif self.command == "GET" and path.endswith("/models"):
                self._models()
            elif self.command == "POST" and anthropic:
                self._messages(rec, behaviour)
            else:
                self._send_json(404, _openai_error(404, f"Unknown path {self.command} {path}"))
        except (BrokenPipeError, ConnectionResetError):
            rec.client_gone = True
            self.close_connection = True
        finally:
            rec.finished.set()

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _wait(self, behaviour: Behaviour, rec: RecordedRequest) -> None:
        """Blocks until the test releases the upstream (or it stops, or time runs out)."""
        up = self.server.upstream
        rec.held.set()
        deadline = time.monotonic() + behaviour.hold_timeout_s
        while not up.release.is_set() and not up._stopping.is_set():
            if time.monotonic() > deadline:
                rec.hold_timed_out = True
                return
            up.release.wait(0.02)

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.send_header("openai-processing-ms", "1")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, behaviour: Behaviour, anthropic: bool):
        extra = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
        if anthropic:
            body = {
                "type": "error",
                "error": {
                    "type": _ANTHROPIC_ERRORS.get(status, "api_error"),
                    "message": f"fake upstream error {status}",
                },
            }
        else:
            body = _openai_error(status, f"fake upstream error {status}")
        self._send_json(status, body, extra)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.end_headers()

    def _chunk(self, data: bytes):
        b = self._behaviour
        if b.sse_newline != "\n":
            data = data.replace(b"\n", b.sse_newline.encode())
        if b.coalesce:
            self._pending += data
            return
        step = b.write_size or len(data)
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if b.write_size:
                time.sleep(0.002)  # separate TCP segments, separate reads upstream

    def _end_stream(self):
        if self._pending:
            data, self._pending = self._pending, b""
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream_pieces(self, rec, behaviour, pieces, emit) -> bool:
        """Sends one event per piece with the behaviour's pacing; False if the
        stream was cut on purpose (close_after)."""
        for i, piece in enumerate(pieces):
            if i and behaviour.chunk_delay_ms:
                time.sleep(behaviour.chunk_delay_ms / 1000)
            if behaviour.hold_after is not None and i == behaviour.hold_after:
                self._wait(behaviour, rec)
            if behaviour.close_after is not None and i == behaviour.close_after:
                self._drop()
                return False
            if behaviour.hold_after is not None and i == behaviour.hold_after - 1:
                rec.held.set()  # before the client can see the last chunk ahead of the hold
            emit(piece)
        return True

    # ---- OpenAI -----------------------------------------------------------

    def _chat(self, rec: RecordedRequest, behaviour: Behaviour):
        req = rec.json
        if not isinstance(req, dict) or "model" not in req or "messages" not in req:
            self._send_json(400, _openai_error(400, "model and messages are required"))
            return
        model = req["model"]
        pieces = split_content(behaviour.content)
        prompt_tokens = count_tokens(req.get("messages"))
        completion_tokens = len(pieces)
        usage = _openai_usage(prompt_tokens, completion_tokens)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        fingerprint = "fp_fake0001"

        if not req.get("stream"):
            self._send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": behaviour.content,
                                "refusal": None,
                                "annotations": [],
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": fingerprint,
                },
            )
            return

        opts = req.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage")) and not behaviour.ignore_include_usage

        def event(choices, with_usage=None):
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = with_usage
            data = json.dumps(chunk, separators=(",", ":"))
            self._chunk(b"data: " + data.encode() + b"\n\n")

        def choice(delta, finish=None):
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        self._start_stream()
        event(choice({"role": "assistant", "content": "", "refusal": None}))
        if not self._stream_pieces(rec, behaviour, pieces, lambda p: event(choice({"content": p}))):
            return
        event(choice({}, "stop"))
        if include_usage:
            event([], usage)
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _embeddings(self, rec: RecordedRequest):
        req = rec.json
        if not isinstance(req, dict) or "input" not in req or "model" not in req:
            self._send_json(400, _openai_error(400, "model and input are required"))
            return
        inputs = req["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = int(req.get("dimensions") or 8)
        data = []
        for i, text in enumerate(inputs):
            vec = embedding_for(text if isinstance(text, str) else json.dumps(text), dims)
            if req.get("encoding_format") == "base64":
                emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            else:
                emb = vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = count_tokens(inputs)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": req["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _models(self):
        up = self.server.upstream
        self._send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
                    for m in up.models
                ],
            },
        )

    # ---- Anthropic --------------------------------------------------------

    def _messages(self, rec: RecordedRequest, behaviour: Behaviour):
        req = rec.json
        if not isinstance(req, dict) or "model" not in req or "messages" not in req:
            body = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "model: Field required"},
            }
            self._send_json(400, body)
            return
        model = req["model"]
        pieces = split_content(behaviour.content)
        input_tokens = count_tokens(req.get("messages")) + count_tokens(req.get("system"))
        mid = "msg_" + uuid.uuid4().hex[:24]
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": len(pieces),
            "service_tier": "standard",
        }
        if not req.get("stream"):
            self._send_json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": behaviour.content}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                },
                {"request-id": "req_" + uuid.uuid4().hex},
            )
            return

        def event(name: str, obj: dict):
            data = json.dumps(obj, separators=(",", ":"))
            self._chunk(f"event: {name}\ndata: {data}\n\n".encode())

        self._start_stream()
        start_usage = dict(usage, output_tokens=1)
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        event("ping", {"type": "ping"})

        def delta(piece):
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )

        if not self._stream_pieces(rec, behaviour, pieces, delta):
            return
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        )
        event("message_stop", {"type": "message_stop"})
        self._end_stream()


def _openai_usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_error(status: int, message: str) -> dict:
    etype, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


class FakeUpstream:
    """A fake provider on 127.0.0.1 served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **default):
        self.host = host
        self.port = port
        self.default = Behaviour(**default)
        self.models = ["gpt-4o-mini", "text-embedding-3-small"]
        self.release = threading.Event()  # set by the test to end holds and hangs
        self.requests: list[RecordedRequest] = []
        self._queue: list[Behaviour] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----

    def start(self) -> "FakeUpstream":
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    # ---- steering ----

    def set(self, **kw) -> None:
        """Sets the behaviour for every request without a pushed one."""
        with self._lock:
            self.default = Behaviour(**kw)

    def push(self, **kw) -> None:
        """Queues a one-shot behaviour for the next request."""
        with self._lock:
            self._queue.append(Behaviour(**kw))

    def reset(self) -> None:
        with self._lock:
            self.default = Behaviour()
            self._queue.clear()
            self.requests.clear()
            self.release.clear()

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(
                    f"fake upstream got {len(self.requests)} requests, expected {n}"
                )
            return list(self.requests)

    # ---- internals ----

    def _take_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default

    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def main() -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI/Anthropic upstream")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--chunk-delay-ms", type=int, default=0)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--content", default=DEFAULT_CONTENT)
    args = ap.parse_args()
    up = FakeUpstream(
        args.host,
        args.port,
        chunk_delay_ms=args.chunk_delay_ms,
        latency_ms=args.latency_ms,
        content=args.content,
    ).start()
    print(f"fake upstream listening on {up.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()


if __name__ == "__main__":
    main()
