# SPDX-License-Identifier: Apache-2.0
"""Audit backpressure: with a tiny audit queue and clients that pipeline
hundreds of requests per connection (so the worker produces records far faster
than the writer commits them), every request is answered and every one has its
audit record: none dropped, none waiting on a full queue being lost."""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time

from conftest import base_config, free_port
from rawhttp import Conn

CONNS, PER_CONN = 4, 400


def request(port: int, i: int) -> bytes:
    body = json.dumps(
        {"model": "mock-1", "messages": [{"role": "user", "content": f"hello {i}"}]}
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def metric(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    assert m, text
    return int(m.group(1))


def test_a_tiny_queue_holds_requests_instead_of_dropping_records(start_gateway):
    port = free_port()
    g = start_gateway(base_config(port, workers=1, audit={"buffer": 16}))
    ids: list[list[str]] = [[] for _ in range(CONNS)]
    errors: list[str] = []

    def client(k: int) -> None:
        try:
            with Conn(port, timeout=30) as c:
                c.send(b"".join(request(port, k * PER_CONN + i) for i in range(PER_CONN)))
                for _ in range(PER_CONN):
                    r = c.read_response()
                    if r.status != 200:
                        errors.append(f"status {r.status}: {r.body[:200]!r}")
                        return
                    ids[k].append(r.header("x-request-id"))
        except Exception as e:  # reported below, with the thread's index
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    sent = [i for per in ids for i in per]
    assert len(sent) == CONNS * PER_CONN and len(set(sent)) == len(sent)

    # the writer catches up; the counters then say nothing was lost
    deadline = time.monotonic() + 15
    while True:
        with g.http() as h:
            m = h.get("/metrics").text
        written = metric(m, r'portcullis_audit_records_total\{outcome="written"\} (\d+)')
        if written >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert metric(m, r'portcullis_audit_records_total\{outcome="dropped"\} (\d+)') == 0, m
    assert written >= len(sent), m
    db = sqlite3.connect(g.dir / "portcullis.db", timeout=10)
    got = {r[0] for r in db.execute("SELECT request_id FROM audit")}
    db.close()
    missing = set(sent) - got
    assert not missing, f"{len(missing)} of {len(sent)} requests have no audit record"
