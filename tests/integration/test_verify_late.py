#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A verification whose poll still waits for a worker when its time is up
is decided without that poll, not after the polls ahead of it.

Six verifications (timeout 1 s, scaled under valgrind) with a PromQL condition poll a Prometheus
that takes every query and never answers (prometheus_timeout 2 s): the
coordinator's two worker threads each wait on one query, the four other
queries wait in the queue. When the first two time out (2 s after they
left, past every verification's 1 s), the four queued come up: they must
not be sent ("not asked"), and all six verifications end `timeout`.
Before, each queued query went out in its turn and held its verification
`verifying` for another prometheus_timeout (a storm's hundreds of them
against a Prometheus that hangs: minutes past their timeout).

The same with the kubernetes runtime: six deployments restarted, their
verifications' polls list pods from an API server (tests/fakek8s) that
holds those lists longer than the client's timeout; the four polls
queued behind the two held are not sent, their verifications end
`timeout` with their health unknown (not failing)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflexlab import (http_json, labs_main, scaled,  # noqa: E402
                       wait_until)
from fakek8s import FakeAPIServer  # noqa: E402
from test_verify_stop import (CONFIG, K8S_CONFIG,  # noqa: E402
                              HangingPrometheus, body, k8s_body,
                              k8s_objects, post, start_coordinator,
                              start_fakes, verify_rows)

N = 6


def decided(url, n, timeout):
    """The n verify rows, once none is verifying any more."""
    wait_until(lambda: len(verify_rows(url)) == n and
               not verify_rows(url, "verifying"), timeout,
               what=f"{n} verification(s) decided")
    return verify_rows(url)



def prometheus(tap, lab):
    prom = HangingPrometheus()
    try:
        scenario(tap, lab, prom)
    finally:
        prom.close()


def scenario(tap, lab, prom):
    coord, url, agents = start_coordinator(
        lab, CONFIG, prom=prom.port,
        prom_timeout=f"{min(int(scaled(2.0) * 1000), 60000)}ms",
        vtimeout=f"{int(scaled(1.0) * 1000)}ms")
    start_fakes(lab, url, agents, N, "web:web-{i}:127.0.0.1:20000")
    r = post(url, body(N))
    tap.ok(r.status == 200, "the six firing alerts are taken")
    got = decided(url, N, scaled(60))
    tap.ok(all(a.get("state") == "timeout" for a in got),
           "all six timed out", got)
    skipped = [a for a in got if "not asked" in (a.get("detail") or "")]
    tap.ok(len(skipped) == N - 2, "the four whose query still waited for "
           "a worker at their timeout were decided without it",
           [a.get("detail") for a in got])
    tap.ok(prom.count() == 2, "Prometheus got the two queries that left "
           "before the timeout only", prom.count())
    tap.ok(coord.alive(), "the coordinator keeps running")




def kubernetes(tap, lab):
    objs = k8s_objects(N)
    # A poll lists its deployment's pods after reading it; the API
    # server holds those lists longer than the client's timeout (which
    # tries a GET 4 times): the two polls in flight take 4 timeouts,
    # well past the verifications' 1 s.
    timeout_ms = min(int(scaled(1.0) * 1000), 600000)
    with FakeAPIServer(objects=objs, tls=True) as srv:
        hold = srv.inject(r"/namespaces/ns-v/pods$", method="GET",
                          count=None, delay=timeout_ms / 1000 + 5)
        asked = []
        matches = hold.matches

        def noting(method, target):
            m = matches(method, target)
            if m:
                asked.append(target)
            return m
        hold.matches = noting
        kc = srv.write_kubeconfig(lab.path("kc"), namespace="ns-v")
        coord, url, _ = start_coordinator(
            lab, K8S_CONFIG, kc=kc, timeout_ms=timeout_ms,
            vtimeout=f"{int(scaled(1.0) * 1000)}ms")
        r = post(url, k8s_body(N))
        tap.ok(r.status == 200, "six firing alerts are taken")
        got = decided(url, N, scaled(120))
        skipped = [a for a in got if "not asked" in (a.get("detail") or "")]
        tap.ok(len(skipped) == N - 2, "the four whose poll still waited "
               "for a worker at their timeout were decided without it",
               [a.get("detail") for a in got])
        # (The two polled in time see a rollout that no controller moves
        # on here: failing.)
        tap.ok(len(skipped) == N - 2 and all(a.get("state") == "timeout" and
                   (a.get("detail") or "").startswith("health unknown")
                   for a in skipped), "those four timed out, their health "
               "unknown (not failing)", skipped)
        tap.ok(len(set(asked)) == 2, "the API server was asked for the "
               "pods of the two deployments polled in time only", asked)
        coord.stop()


PAGE_CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
prometheus_url: http://127.0.0.1:{prom}
prometheus_timeout: 60s
notify: [ {{ name: oncall, url: "{hook}" }} ]
safety: {{ max_concurrent: 100, global_max_actions: 100,
          service_max_actions: 100, blast_radius_percent: 100,
          storm_percent: 100, storm_min_targets: 1000 }}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    verify: {{ interval: 100ms, timeout: 300s, health: false,
              resolved: true,
              promql: 'up{{instance="{{{{ instance }}}}"}} == 0' }}
    actions: [ {{ type: restart, service: web,
                  instance: "{{{{ instance }}}}", retries: 0 }} ]
  - name: other
    matchers: ['alertname = "OtherDown"']
    max_attempts: 1
    verify: {{ timeout: {vtimeout_ms}ms, health: false, resolved: true }}
    actions: [ {{ type: restart, service: other, instance: other-0,
                  retries: 0 }} ]
"""


def pages(tap, lab):
    """Verification polls have worker threads of their own: with both
    busy on PromQL queries that a Prometheus never answers (they time out
    after 60 s), another repair that does not hold still pages its people
    at once. Before, polls, pages and kubernetes actions shared two
    threads: the page waited for a query's 60 s timeout."""
    prom = HangingPrometheus()
    hook = lab.start_webhook_receiver()
    try:
        _, url, agents = start_coordinator(
            lab, PAGE_CONFIG, prom=prom.port, hook=hook.url,
            vtimeout_ms=int(scaled(1.0) * 1000))
        start_fakes(lab, url, agents, 1, "web:web-0:127.0.0.1:20000",
                    "web:web-1:127.0.0.1:20001",
                    "other:other-0:127.0.0.1:20002")
        r = post(url, body(2))
        wait_until(lambda: prom.count() >= 2, scaled(20),
                   what="both poll threads waiting on Prometheus")
        other = json.dumps({"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "OtherDown"},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]}).encode()
        r2 = post(url, other)
        tap.ok(r.status == 200 and r2.status == 200, "the alerts are taken")
        # Well inside the queries' 60 s (the other repair's verification
        # times out after 1 s, 20 s under valgrind).
        try:
            wait_until(lambda: any(b"other" in d.body
                                   for d in hook.snapshot()), 45,
                       what="the page for the repair that did not hold")
        except Exception:  # noqa: BLE001 - reported below
            pass
        got = [d.json for d in hook.snapshot()]
        tap.ok(any(b"other" in d.body for d in hook.snapshot()) and
               prom.count() == 2 and not prom.released,
               "the page leaves while both poll threads still wait on "
               "Prometheus", (prom.count(), got))
    finally:
        prom.close()


def api_errors(tap, lab):
    """A kubernetes verification poll that gets an error from the API
    server (here 500 for every read of the deployment, once it was
    restarted) learns nothing about the workload: its health stays
    unknown and the verification ends `timeout`, not `failed` (which
    says the repair did not hold)."""
    objs = k8s_objects(1)
    with FakeAPIServer(objects=objs, tls=True) as srv:
        kc = srv.write_kubeconfig(lab.path("kc"), namespace="ns-v")
        coord, url, _ = start_coordinator(
            lab, K8S_CONFIG, kc=kc, timeout_ms=int(scaled(2.0) * 1000),
            vtimeout=f"{int(scaled(1.0) * 1000)}ms")
        r = post(url, k8s_body(1))
        wait_until(lambda: any(a.get("type") == "restart" and
                               a.get("state") == "succeeded"
                               for a in http_json(url + "/api/v1/actions")),
                   scaled(20), what="the restart")
        srv.inject(r"/namespaces/ns-v/deployments/app0$", method="GET",
                   status=500, count=None)

        v = decided(url, 1, scaled(60))[0]
        tap.ok(r.status == 200 and v.get("state") == "timeout" and
               (v.get("detail") or "").startswith("health unknown") and
               "API server" in (v.get("detail") or ""),
               "API errors leave the health unknown: timeout, not failed",
               v)
        coord.stop()


if __name__ == "__main__":
    labs_main([prometheus, kubernetes, pages, api_errors])
