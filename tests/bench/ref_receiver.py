# SPDX-License-Identifier: MIT
"""ref_receiver: the reference webhook receiver in Python's standard library.

It stands in for the script-based receivers people usually put behind
Alertmanager, tuned as far as the standard library goes: a threading
server, listen backlog 128, HTTP/1.1 keep-alive, TCP_NODELAY, no request
logging. Each POST is read whole, parsed as JSON, checked for an
"alerts" list and answered 200 with a small JSON body (400 otherwise).
Nothing is stored.

usage: python3 ref_receiver.py --port PORT   (binds 127.0.0.1 only)
"""

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 4 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            self._answer(413 if n > MAX_BODY else 400,
                         {"status": "error", "error": "bad Content-Length"})
            return
        raw = self.rfile.read(n)
        try:
            doc = json.loads(raw)
            alerts = doc["alerts"]
            if not isinstance(alerts, list):
                raise ValueError("alerts is not a list")
        except (ValueError, KeyError, TypeError) as e:
            self._answer(400, {"status": "error", "error": str(e)})
            return
        self._answer(200, {"status": "accepted", "alerts": len(alerts)})

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients dropping keep-alive connections at the end of a run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
