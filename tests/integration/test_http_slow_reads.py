#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Slow reads do not hold the coordinator's HTTP server: GET
/api/v1/actions, /api/v1/agents, /metrics and /health run on their own
small pool (coord_http.c). The journal's action query is held up (an
LD_PRELOAD shim, tests/tools/fault_shim.c, stalls it while a file exists,
as a lock or a slow disk would): meanwhile a probe, a webhook and metrics
are answered; with both pool threads held, reads beyond the pool's queue
(64) get a 503 with Retry-After at once; once the stall ends, every
waiting read is answered 200. Nothing here asserts a duration."""

import http.client
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, lab_main, reflex_binary, scaled,  # noqa: E402
                       wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}"
               }} ]
"""

ACTIONS = "/api/v1/actions?limit=1"
BODY = json.dumps({"version": "4", "status": "firing", "alerts": [{
    "status": "firing", "labels": {"alertname": "Other", "instance": "x"},
    "startsAt": "2026-12-04T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z"}]}).encode()
QUEUE = 64  # SLOW_QUEUE in coord_http.c


def request(port, method, path, body=None, timeout=30.0):
    """(status, headers): one request on its own connection."""
    c = http.client.HTTPConnection("127.0.0.1", port,
                                   timeout=scaled(timeout))
    try:
        c.request(method, path, body=body, headers={
            "Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        r.read()
        return r.status, dict(r.getheaders())
    finally:
        c.close()


class Background:
    """Requests sent on their own threads; results collected."""

    def __init__(self, port):
        self.port = port
        self.results = []
        self.threads = []
        self.lock = threading.Lock()

    def send(self, path, n=1):
        for _ in range(n):
            t = threading.Thread(target=self._one, args=(path,))
            t.start()
            self.threads.append(t)

    def _one(self, path):
        try:
            res = request(self.port, "GET", path, timeout=120)
        except Exception as e:  # noqa: BLE001 - counted as a failure
            res = (repr(e), {})
        with self.lock:
            self.results.append(res)

    def done(self):
        with self.lock:
            return len(self.results)

    def join(self):
        for t in self.threads:
            t.join(scaled(120))


def stalled(log_path, n):
    """True once n action queries have been taken by the pool (the
    coordinator logs each request it routes at debug)."""
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return text.count("/api/v1/actions") >= n


def run(tap, lab):
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
        return
    port, agents = free_port(), free_port()
    stall = lab.path("stall-queries")
    cfg = lab.write_file("coordinator.yaml", CONFIG.format(
        http=port, agents=agents, journal=lab.path("journal.db")))
    asan = os.environ.get("ASAN_OPTIONS", "")
    coord = lab.start("coordinator", [
        reflex_binary("reflex-coordinator"), "-c", cfg], env={
        "LD_PRELOAD": shim, "REFLEX_STALL_QUERY": stall,
        "ASAN_OPTIONS": (asan + ":" if asan else "") +
        "verify_asan_link_order=0"},
        ready_url=f"http://127.0.0.1:{port}/readyz", ready_timeout=30)
    tap.ok(request(port, "GET", ACTIONS)[0] == 200,
           "the action query answers while nothing stalls it")

    open(stall, "w").close()
    slow = Background(port)
    slow.send(ACTIONS)
    probe = request(port, "GET", "/healthz")
    hook = request(port, "POST", "/api/v1/alerts", BODY)
    metrics = request(port, "GET", "/metrics")
    tap.ok(probe[0] == 200 and hook[0] == 200 and metrics[0] == 200,
           "with the action query stalled, a probe, a webhook and metrics "
           "are answered 200", (probe[0], hook[0], metrics[0]))
    tap.ok(slow.done() == 0, "... while the action query still waits")

    # Both pool threads held by stalled queries, the queue filled: the
    # rest are refused at once.
    slow.send(ACTIONS)
    wait_until(lambda: coord.alive() and stalled(coord.log_path, 3), 30,
               what="three action queries routed")
    more = Background(port)
    more.send("/metrics", QUEUE + 20)
    wait_until(lambda: more.done() >= 20, 60, what="20 answers at once")
    early = list(more.results)
    tap.ok(len(early) >= 20 and all(r[0] == 503 and
                                    r[1].get("Retry-After") == "1"
                                    for r in early),
           "reads beyond the pool's queue get 503 with Retry-After at once",
           [r[0] for r in early])
    os.unlink(stall)
    slow.join()
    more.join()
    codes = [r[0] for r in more.results]
    tap.ok(len(slow.results) == 2 and all(r[0] == 200 for r in
                                          slow.results),
           "once the stall ends, the stalled queries are answered 200",
           [r[0] for r in slow.results])
    tap.ok(len(codes) == QUEUE + 20 and codes.count(200) >= QUEUE and
           all(c in (200, 503) for c in codes),
           f"every read is answered: the {QUEUE} queued ones 200",
           sorted(map(str, codes)))
    tap.ok(request(port, "GET", "/health")[0] == 200,
           "health is served afterwards")


if __name__ == "__main__":
    lab_main(run, "reflex-http-slow-")
