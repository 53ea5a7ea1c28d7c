#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stop does not run the verification polls still queued.

Six verifications with a PromQL condition poll a Prometheus that takes
every query and never answers: the coordinator's two worker threads each
wait on one, the four other queries wait in the queue. The coordinator is
sent SIGTERM; once its engine has stopped (its log says the agents
stopped, which comes after), the two held queries are let go (their
connections closed). The queued queries must not be sent then: their
answers would be dropped, and each would hold the stop up for up to
prometheus_timeout (a storm's hundreds of open verifications against a
Prometheus that hangs kept a SIGTERM waiting for minutes).

The same with the kubernetes runtime: six deployments restarted, their
verifications poll the API server (tests/fakek8s), whose GETs of those
deployments then take longer than the client's timeout; once the engine
stopped, no queued poll reaches the API server."""

import json
import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from reflexlab import (free_port, http_json, http_post,  # noqa: E402
                       labs_main, reflex_binary, scaled, wait_until)
from fakek8s import FakeAPIServer, fixtures  # noqa: E402

N = 6

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
prometheus_url: http://127.0.0.1:{prom}
prometheus_timeout: {prom_timeout}
safety: {{ max_concurrent: 100, global_max_actions: 100,
          service_max_actions: 100, blast_radius_percent: 100,
          storm_percent: 100, storm_min_targets: 1000 }}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    verify: {{ interval: 100ms, timeout: {vtimeout}, health: false,
              resolved: true,
              promql: 'up{{instance="{{{{ instance }}}}"}} == 0' }}
    actions: [ {{ type: restart, service: web,
                  instance: "{{{{ instance }}}}", retries: 0 }} ]
"""


class HangingPrometheus:
    """Takes each query and answers none: its connection is held until
    release(), then closed. Counts the queries it got before and after."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.mu = threading.Lock()
        self.held = []
        self.before = 0
        self.after = 0
        self.released = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,),
                             daemon=True).start()

    def _one(self, c):
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if not data.startswith(b"GET /api/v1/query"):
            c.close()
            return
        with self.mu:
            if self.released:
                self.after += 1
                c.close()
                return
            self.before += 1
            self.held.append(c)

    def count(self):
        with self.mu:
            return self.before

    def release(self):
        with self.mu:
            self.released = True
            held, self.held = self.held, []
        for c in held:
            c.close()

    def close(self):
        self.release()
        self.sock.close()


def start_coordinator(lab, template, **fmt):
    """Writes coordinator.yaml from `template` (its {http}, {agents} and
    {journal} filled in here, the rest from fmt) and starts the
    coordinator. Returns (process, API URL, agent port)."""
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cfg = lab.write_file("coordinator.yaml", template.format(
        http=http, agents=agents, journal=lab.path("journal.db"), **fmt))
    coord = lab.start("coordinator", [
        reflex_binary("reflex-coordinator"), "-c", cfg],
        ready_url=url + "/readyz")
    return coord, url, agents


def start_fakes(lab, url, agents, count, *workloads):
    """fake-agents: `count` agents hosting each of `workloads`
    (S:I:ADDR, {i} the agent's index), registered before it returns."""
    argv = [reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0", "--count",
            str(count), "--heartbeat-ms", "200"]
    for w in workloads:
        argv += ["--workload", w]
    lab.start("fake-agents", argv)
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == count, 60,
               what="the fake agents registered")


def post(url, data):
    return http_post(url + "/api/v1/alerts", data,
                     {"Content-Type": "application/json"})


def verify_rows(url, state=None):
    """The verify rows of the history (those in `state`, if given)."""
    return [a for a in http_json(url + "/api/v1/actions")
            if a.get("type") == "verify" and
            (state is None or a.get("state") == state)]


def body(n):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "WebDown",
                                       "instance": f"web-{i}"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"} for i in range(n)]}).encode()


def prometheus(tap, lab):
    prom = HangingPrometheus()
    try:
        scenario(tap, lab, prom)
    finally:
        prom.close()


def scenario(tap, lab, prom):
    coord, url, agents = start_coordinator(lab, CONFIG, prom=prom.port,
                                           prom_timeout="60s",
                                           vtimeout="10m")
    start_fakes(lab, url, agents, N, "web:web-{i}:127.0.0.1:20000")
    r = post(url, body(N))
    tap.ok(r.status == 200, "the six firing alerts are taken")
    wait_until(lambda: len(verify_rows(url, "verifying")) == N, 60,
               what="six verifications open")
    # Both worker threads wait on a query; the other four are queued
    # (each verification has one query out at most).
    wait_until(lambda: prom.count() >= 2, 60, what="two queries held")
    tap.ok(prom.count() == 2, "two queries are held, the others queued",
           prom.count())
    coord.signal(signal.SIGTERM)
    wait_until(lambda: "event=agents.stopped" in coord.log_text(), 120,
               what="the engine and the agents' channel stopped")
    prom.release()
    rc = coord.wait(180)
    tap.ok(rc == 0, "the coordinator exits cleanly", rc)
    tap.ok(prom.after == 0, "no queued query is sent once the engine "
           "stopped", prom.after)


K8S_CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: "{kc}", qps: 1000,
            burst: 1000, timeout: {timeout_ms}ms }}
safety: {{ max_concurrent: 100, global_max_actions: 100,
          service_max_actions: 100, blast_radius_percent: 100,
          storm_percent: 100, storm_min_targets: 1000 }}
rules:
  - name: app
    matchers: ['alertname = "AppDown"']
    verify: {{ interval: 100ms, timeout: {vtimeout}, health: true,
              resolved: false }}
    actions: [ {{ type: restart, service: "{{{{ service }}}}",
                  params: {{ namespace: ns-v }} }} ]
"""


def k8s_body(n):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "AppDown",
                                       "service": f"app{i}"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"} for i in range(n)]}).encode()


def k8s_objects(n):
    """A node and n one-replica deployments app0.. in namespace ns-v."""
    objs = [fixtures.node("node-a")]
    for i in range(n):
        objs += fixtures._deploy_set("ns-v", f"app{i}", f"h{i}", "app:1", 1,
                                     1)
    return objs


def kubernetes(tap, lab):
    objs = k8s_objects(N)
    # The client's timeout (it tries a GET 4 times) bounds the two polls
    # in flight at the stop; the API server holds each GET longer.
    timeout_ms = min(int(scaled(1.0) * 1000), 600000)
    with FakeAPIServer(objects=objs, tls=True) as srv:
        kc = srv.write_kubeconfig(lab.path("kc"), namespace="ns-v")
        coord, url, _ = start_coordinator(lab, K8S_CONFIG, kc=kc,
                                          timeout_ms=timeout_ms,
                                          vtimeout="10m")
        r = post(url, k8s_body(N))
        tap.ok(r.status == 200, "six firing alerts are taken")
        wait_until(lambda: len(verify_rows(url, "verifying")) == N,
                   scaled(60), what="six verifications open")
        hold = srv.inject(r"/deployments/app[0-9]+$", method="GET",
                          count=None, delay=timeout_ms / 1000 + 5)
        # The deployments whose GET was held, in order (the client tries
        # a GET that timed out again: the same deployment).
        asked = []
        matches = hold.matches

        def noting(method, target):
            m = matches(method, target)
            if m:
                asked.append(target.split("?", 1)[0].rsplit("/", 1)[-1])
            return m
        hold.matches = noting
        wait_until(lambda: len(asked) >= 2, scaled(60),
                   what="two polls held")
        coord.signal(signal.SIGTERM)
        wait_until(lambda: "event=agents.stopped" in coord.log_text(),
                   scaled(120), what="the engine stopped")
        before = set(asked)
        rc = coord.wait(scaled(180))
        tap.ok(rc == 0, "the coordinator exits cleanly", rc)
        tap.ok(len(before) == 2 and set(asked) == before, "no queued poll "
               "reaches the API server once the engine stopped: only the "
               "two deployments held at the stop were asked for",
               (sorted(before), asked))


if __name__ == "__main__":
    labs_main([prometheus, kubernetes])
