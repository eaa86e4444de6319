# SPDX-License-Identifier: Apache-2.0
# A deliberately small HTTP/1.1 client over a raw socket, for tests that must
# send exact bytes (malformed requests, pipelining) and see exactly what comes
# back, including whether the server closed the connection.
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    interim: list[int] = field(default_factory=list)  # 1xx statuses seen before this one

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


class Closed(Exception):
    """The server closed the connection before a complete response."""


class Conn:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise Closed(f"connection closed; unparsed bytes: {self.buf[:200]!r}")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request: bool = False) -> Response:
        interim = []
        while True:
            while b"\r\n\r\n" not in self.buf:
                self._fill()
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            version, status, *reason = lines[0].split(" ", 2)
            assert version.startswith("HTTP/1."), lines[0]
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k, v.strip()))
            resp = Response(int(status), reason[0] if reason else "", headers, b"", interim)
            if 100 <= resp.status < 200:
                interim.append(resp.status)
                continue
            break
        if head_request or resp.status in (204, 304):
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if "chunked" in te:
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                parts.append(self._exactly(size))
                self._line()
            resp.body = b"".join(parts)
        elif cl is not None:
            resp.body = self._exactly(int(cl))
        else:  # delimited by close
            while True:
                try:
                    self._fill()
                except Closed:
                    break
            resp.body, self.buf = self.buf, b""
        return resp

    def wait_closed(self, timeout: float = 5.0) -> bytes | None:
        """Waits for the server to close. Returns the bytes received before the
        close (b"" if none), or None if the connection was still open at timeout."""
        deadline = time.monotonic() + timeout
        got = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                return got
            finally:
                self.sock.settimeout(self.timeout)
            if not data:
                return got
            got += data


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    host: str = "gateway.test",
) -> bytes:
    """A well-formed HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def chat_body(content: str = "hi", model: str = "mock-1") -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": content}]}
    ).encode()
