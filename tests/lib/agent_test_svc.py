#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny HTTP service for the agent's integration tests (stdlib only).

    agent_test_svc.py --port N --name NAME [--ignore-term] [--grandchild]
                      [--no-cache]

Listens on 127.0.0.1:N only. Endpoints:
  GET  /healthz          200 "ok", or 500 after POST /fault/unhealthy
  POST /fault/unhealthy  make /healthz fail
  POST /fault/hang       make /healthz answer only after 30 s
  POST /fault/clear      make /healthz succeed again
  POST /cache/clear      200, counts the calls
  GET  /info             JSON: pid, pgid, name, port, the REFLEX_* and
                         TEST_* environment, SIGHUP count, cache clears,
                         fds open at start, grandchild pid, /healthz
                         requests so far and the connections they came on
--no-cache answers 404 to /cache/clear; --ignore-term ignores SIGTERM
(to test the SIGKILL after stop_grace); --grandchild starts a `sleep`
child in the same process group (to test that no orphan survives the
instance).
"""

import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import time

# Before anything else is opened: what did the agent let us inherit?
FDS_AT_START = sorted(int(f) for f in os.listdir("/proc/self/fd"))

state = {"unhealthy": False, "hang": False, "sighup": 0, "cache_clears": 0,
         "grandchild": None, "healthz": 0}
healthz_conns = set()  # the client ports /healthz requests came from


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the agent's probes use

    def reply(self, code, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        if not self.path.startswith("/healthz"):
            sys.stderr.write("request %s\n" % (fmt % args))
            sys.stderr.flush()

    def do_GET(self):
        if self.path == "/healthz":
            state["healthz"] += 1
            healthz_conns.add(self.client_address[1])
            if state["hang"]:
                time.sleep(30)
            if state["unhealthy"]:
                self.reply(500, "unhealthy\n")
            else:
                self.reply(200, "ok\n")
        elif self.path == "/info":
            env = {k: v for k, v in os.environ.items()
                   if k.startswith(("REFLEX_", "TEST_"))}
            info = {"pid": os.getpid(), "pgid": os.getpgid(0),
                    "name": ARGS.name, "port": ARGS.port, "env": env,
                    "sighup": state["sighup"],
                    "cache_clears": state["cache_clears"],
                    "fds_at_start": FDS_AT_START,
                    "grandchild": state["grandchild"],
                    "healthz": state["healthz"],
                    "healthz_conns": len(healthz_conns)}
            self.reply(200, json.dumps(info), "application/json")
        else:
            self.reply(404, "not found\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 4096))
        if self.path == "/fault/unhealthy":
            state["unhealthy"] = True
            self.reply(200, "unhealthy now\n")
        elif self.path == "/fault/hang":
            state["hang"] = True
            self.reply(200, "hanging now\n")
        elif self.path == "/fault/clear":
            state["unhealthy"] = False
            state["hang"] = False
            self.reply(200, "cleared\n")
        elif self.path == "/cache/clear" and not ARGS.no_cache:
            state["cache_clears"] += 1
            self.reply(200, "cache cleared\n")
        else:
            self.reply(404, "not found\n")


def on_hup(signum, frame):
    state["sighup"] += 1
    print("got SIGHUP", flush=True)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gives up and closes (a probe past its timeout, as
        # under valgrind) is no error of this service: a traceback here
        # would fill the output tail the agent sends with a permit.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--grandchild", action="store_true")
    p.add_argument("--no-cache", action="store_true")
    ARGS = p.parse_args()
    signal.signal(signal.SIGHUP, on_hup)
    if ARGS.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if ARGS.grandchild:
        child = subprocess.Popen(["sleep", "600"])
        state["grandchild"] = child.pid
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    print("agent_test_svc %s listening on 127.0.0.1:%d" %
          (ARGS.name, ARGS.port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
