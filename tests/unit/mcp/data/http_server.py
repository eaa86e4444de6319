# SPDX-License-Identifier: Apache-2.0
# A scripted Streamable HTTP MCP server for test_transport_http.c (standard
# library only). Usage: http_server.py PORTFILE LOGFILE [--no-get] [--port=N].
# Listens on 127.0.0.1 (N, or an ephemeral port; written to PORTFILE) and appends one JSON line per
# request it sees to LOGFILE. The JSON-RPC method picks the behaviour.
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE = sys.argv[1], sys.argv[2]
NO_GET = "--no-get" in sys.argv
PORT = int(next((a[7:] for a in sys.argv if a.startswith("--port=")), "0"))
sessions = set()
counter = [0]
gets = [0]
resumable = {}  # last event id -> the response a resuming GET gets
lock = threading.Lock()


def log(entry):
    with lock, open(LOGFILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def resp(i, result):
    return {"jsonrpc": "2.0", "id": i, "result": result}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def hdr(self, name):
        return self.headers.get(name)

    def seen(self, rpc_method=None):
        entry = {"http": self.command, "rpc": rpc_method}
        for h in ("Mcp-Session-Id", "MCP-Protocol-Version", "X-Api-Key", "X-Per-Msg",
                  "Last-Event-ID", "Accept", "Content-Type"):
            entry[h.lower()] = self.hdr(h)
        log(entry)
        return entry

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_empty(self, status, ctype=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, text):
        self.wfile.write(text.encode())
        self.wfile.flush()

    def session_ok(self):
        return self.hdr("Mcp-Session-Id") in sessions

    def do_POST(self):
        body = self.rfile.read(int(self.hdr("Content-Length") or 0))
        msg = json.loads(body)
        m, i = msg.get("method"), msg.get("id")
        lost = m != "initialize" and self.hdr("Mcp-Session-Id") and not self.session_ok()
        entry = self.seen(m)  # after the session check: a logged request passed it
        if lost:
            return self.send_empty(404)
        if m == "initialize":
            with lock:
                counter[0] += 1
                sid = "sess-%d" % counter[0]
                sessions.add(sid)
            return self.send_json(200, resp(i, {"protocolVersion": "2025-06-18", "seen": entry}),
                                  {"Mcp-Session-Id": sid})
        if i is None:  # notifications and responses
            return self.send_empty(202)
        if m == "debug/headers":
            return self.send_json(200, resp(i, entry))
        if m == "batch":
            return self.send_json(200, [{"jsonrpc": "2.0", "method": "notifications/a"},
                                        resp(i, {"batch": True})])
        if m == "sse":
            self.start_sse()
            self.event(": comment\n\nid: p1\ndata:\n\n")
            self.event("event: message\ndata: {\"jsonrpc\":\"2.0\",\n"
                       "data:  \"method\":\"notifications/progress\"}\n\n")
            time.sleep(0.05)
            self.event("data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"ping\"}\r\n\r\n")
            self.event("data: " + json.dumps(resp(i, {"sse": True})) + "\n\n")
            return
        if m == "noanswer":
            self.start_sse()
            self.event("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\n")
            return
        if m == "reconnect":  # closes its stream before the response
            resumable["r1"] = resp(i, {"resumed": True})
            self.start_sse()
            self.event("id: r1\nretry: 50\ndata:\n\n")
            return
        if m == "http500":
            body = b"internal trouble"
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if m == "jsonerror":
            return self.send_json(400, {"jsonrpc": "2.0", "id": i,
                                        "error": {"code": -32602, "message": "bad params"}})
        if m == "slow":
            time.sleep(3)
            return self.send_json(200, resp(i, {}))
        if m == "expire":
            sessions.discard(self.hdr("Mcp-Session-Id"))
            return self.send_json(200, resp(i, {}))
        return self.send_json(200, {"jsonrpc": "2.0", "id": i,
                                    "error": {"code": -32601, "message": "unknown"}})

    def do_GET(self):
        self.seen()
        if NO_GET:
            return self.send_empty(405)
        if not self.session_ok():
            return self.send_empty(404 if self.hdr("Mcp-Session-Id") else 400)
        if self.hdr("Last-Event-ID") in resumable:
            self.start_sse()
            answer = resumable.pop(self.hdr("Last-Event-ID"))
            self.event("id: r2\ndata: " + json.dumps(answer) + "\n\n")
            return
        with lock:
            gets[0] += 1
            n = gets[0]
        self.start_sse()
        if n == 1:
            self.event("id: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/from_get\"}\n\n")
            return  # drops the stream: the client reconnects
        self.event("id: e2\ndata: " + json.dumps({"jsonrpc": "2.0", "method": "notifications/resumed",
                   "params": {"last": self.hdr("Last-Event-ID")}}) + "\n\n")
        try:
            for _ in range(600):
                time.sleep(0.05)
                self.event(": keepalive\n\n")
        except OSError:
            pass

    def do_DELETE(self):
        self.seen()
        sessions.discard(self.hdr("Mcp-Session-Id"))
        self.send_empty(200)


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
