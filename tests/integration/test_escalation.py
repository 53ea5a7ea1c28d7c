#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Verification, escalation and notification, with simulated agents, a
fake Prometheus query API and local notification receivers: a repair that
holds is verified; one that does not runs the next escalation step
(through the safety checks) and then tells people exactly once; a
notifier that keeps failing is retried, then counted as failed."""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
prometheus_url: http://127.0.0.1:{prom}
notify:
  - name: oncall
    url: {hook}
  - name: chat
    url: {slack}
    format: slack
  - name: broken
    url: {broken}
    retries: 2
    timeout: 1s
safety:
  blast_radius_percent: 100
  critical_services: [db]
rules:
  - name: holds
    matchers: ['alertname = "Holds"']
    verify: {{ interval: 200ms, timeout: 5s, resolved: false,
              promql: 'errors{{instance="{{{{ instance }}}}"}} > 0' }}
    actions:
      - type: restart
        service: good
        instance: "{{{{ instance }}}}"
  - name: does-not-hold
    matchers: ['alertname = "DoesNotHold"']
    max_attempts: 2
    verify: {{ interval: 200ms, timeout: 1s, resolved: false }}
    actions:
      - type: restart
        service: bad
        instance: bad-0
    escalation:
      - type: restart
        service: bad
        instance: bad-0
      - type: restart
        service: db
        instance: db-0
"""


class FakePrometheus:
    """/api/v1/query answering per the instance named in the query: a
    non-empty vector for instances in `firing`, else an empty one."""

    def __init__(self):
        self.firing = set()
        self.queries = []
        fp = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                from urllib.parse import parse_qs, urlparse
                q = parse_qs(urlparse(self.path).query).get("query", [""])[0]
                fp.queries.append(q)
                result = [{"metric": {}, "value": [time.time(), "3"]}] \
                    if any(i in q for i in fp.firing) else []
                body = json.dumps({"status": "success", "data": {
                    "resultType": "vector", "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def alert(name, **labels):
    labels = dict(labels, alertname=name)
    return json.dumps({"version": "4", "receiver": "reflex",
                       "status": "firing", "groupKey": "{}:{}",
                       "alerts": [{"status": "firing", "labels": labels,
                                   "annotations": {},
                                   "startsAt": "2026-12-04T10:00:00Z",
                                   "endsAt": "0001-01-01T00:00:00Z"}]})


def run(tap, lab):
    prom = FakePrometheus()
    hook = lab.start_webhook_receiver()
    slack = lab.start_webhook_receiver()
    broken = lab.start_webhook_receiver(status=503)
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cfg = lab.write_file("c.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("j.db"), prom=prom.port,
        hook=hook.url, slack=slack.url, broken=broken.url))
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")
    for name, extra in (("good", []), ("bad", ["--unhealthy"])):
        lab.start(f"agent-{name}", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0",
            "--node-prefix", f"{name}-node-", "--heartbeat-ms", "200",
            "--workload", f"{name}:{name}-0:127.0.0.1:1{len(name)}000",
            "--workload", f"{name}:{name}-1:127.0.0.1:1{len(name)}001"]
            + extra)
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 2, 10,
               what="agents registered")

    def rows(rule):
        return sorted((a for a in http_json(url + "/api/v1/actions?limit=1000")
                       if a["rule"] == rule), key=lambda a: a["id"])

    # -- a repair that holds: health ok and the PromQL condition clear ----
    prom.firing.add("good-1")
    http_post(url + "/api/v1/alerts", alert("Holds", instance="good-1"))
    wait_until(lambda: any(a["type"] == "verify" and a["state"] != "verifying"
                           for a in rows("holds")), 10, what="verification")
    v = [a for a in rows("holds") if a["type"] == "verify"][0]
    tap.ok(v["state"] == "failed" and "promql failing" in v["detail"],
           "PromQL still firing at the deadline: verification failed",
           v)
    tap.ok(any('instance=\\"good-1\\"' in q or 'instance="good-1"' in q
               for q in prom.queries),
           "the PromQL condition is templated with the alert's instance",
           prom.queries[-3:])

    prom.firing.clear()
    http_post(url + "/api/v1/alerts", alert("Holds", instance="good-0"))
    wait_until(lambda: len([a for a in rows("holds") if a["type"] == "verify"
                            and a["state"] != "verifying"]) == 2, 10,
               what="second verification")
    v = [a for a in rows("holds") if a["type"] == "verify"][-1]
    tap.ok(v["state"] == "verified" and "recovered" in v["detail"],
           "health ok and PromQL clear: verified, with the recovery time", v)
    text = http_get(url + "/metrics").text
    tap.ok('reflex_verifications_total{result="verified"} 1' in text and
           "reflex_time_to_recovery_seconds_count 1" in text,
           "verified recoveries and time to recovery are on /metrics")

    # -- a repair that does not hold: escalation chain, then people -------
    http_post(url + "/api/v1/alerts", alert("DoesNotHold", instance="x"))
    wait_until(lambda: any(a["type"] == "escalate" for a in
                           rows("does-not-hold")), 20, what="escalation")
    wait_until(lambda: len(hook.snapshot()) >= 1 and len(slack.snapshot())
               >= 1, 10, what="notifications")
    seq = [(a["type"], a["state"]) for a in rows("does-not-hold")]
    tap.ok(seq[:4] == [("restart", "succeeded"), ("verify", "failed"),
                       ("restart", "succeeded"), ("verify", "failed")],
           "restart, verify failed, escalation restart, verify failed", seq)
    tap.ok(("restart", "refused") in seq and any(
        a["type"] == "restart" and a["state"] == "refused" and a["service"]
        == "db" and "critical" in (a["detail"] or "")
        for a in rows("does-not-hold")),
           "the next step passes the checks again: restarting the critical "
           "service db is refused", seq)
    tap.ok(("escalate", "escalated") in seq, "then escalated to people", seq)
    body = hook.snapshot()[0].json or {}
    tap.ok(body.get("alertname") == "DoesNotHold" and "health failing"
           in body.get("tried", "") and "critical" in body.get("tried", "")
           and body.get("outcome"),
           "the generic notification carries the alert, what was tried and "
           "the outcome", body)
    sbody = slack.snapshot()[0].json or {}
    tap.ok(isinstance(sbody.get("text"), str) and "DoesNotHold" in
           sbody["text"], "the Slack notification is a text message", sbody)
    wait_until(lambda: any(a["type"] == "notify" and a["service"] == "broken"
                           and a["state"] == "failed"
                           for a in rows("does-not-hold")), 15,
               what="the broken notifier to give up")
    tap.ok(len(broken.snapshot()) == 3,
           "a failing notifier is tried 1 + retries times",
           len(broken.snapshot()))
    text = http_get(url + "/metrics").text
    tap.ok('reflex_notifications_total{result="failed"} 1' in text and
           'reflex_notifications_total{result="sent"} 2' in text,
           "notifications sent and failed are counted")

    # -- the escalated incident stays quiet --------------------------------
    n = len(rows("does-not-hold"))
    for _ in range(3):
        http_post(url + "/api/v1/alerts", alert("DoesNotHold", instance="x"))
    time.sleep(1.5)
    tap.ok(len(rows("does-not-hold")) == n and len(hook.snapshot()) == 1,
           "repeats of an escalated incident start nothing, notify nobody")
    log = coord.log_text()
    tap.ok(log.count("event=engine.escalate ") == 1,
           "escalated exactly once")
    prom.stop()


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-escalation-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
