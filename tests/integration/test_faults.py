#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Faults and storms: an action that times out (and its late answer), kill
-9 of the coordinator while an action is in flight and while webhooks
stream in, an alert storm of 500 alerts for 50 instances, and case C07
(everything "down" at once)."""

import json
import os
import signal
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_get, http_json,  # noqa: E402
                       http_post, labs_main, reflex_binary, wait_until)

SRC = os.environ.get("REFLEX_SRC", os.path.join(os.path.dirname(__file__),
                                                "..", ".."))

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
agent_lost_after: {lost_after}
notify: [ {{ name: oncall, url: "{hook}" }} ]
safety:
  critical_services: [coredns, ingress-a, svc-db]
  global_max_actions: {global_max}
  storm_min_targets: {storm_min}
limits: {{ max_alerts: 1000 }}
rules:
  - name: slow
    matchers: ['alertname = "Slow"']
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: slow, instance: slow-0,
                  timeout: {slow_timeout}, retries: 0 }} ]
  - name: web
    matchers: ['alertname = "WebDown"']
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}" }} ]
  - name: target-down
    matchers: ['alertname = "TargetDown"']
    actions: [ {{ type: restart, service: "{{{{ job }}}}",
                  instance: "{{{{ pod }}}}" }} ]
"""


def alert(name, status="firing", **labels):
    return {"status": status, "labels": dict(labels, alertname=name),
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}


def body(alerts):
    return json.dumps({"version": "4", "status": "firing", "alerts": alerts})


class Env:
    def __init__(self, lab, name, **kw):
        self.lab = lab
        self.name = name
        self.http, self.agents = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.hook = lab.start_webhook_receiver()
        self.journal = lab.path(f"{name}.db")
        params = dict(global_max=20, storm_min=5, slow_timeout="1s",
                      lost_after="30s")
        params.update(kw)
        self.cfg = lab.write_file(f"{name}.yml", CONFIG.format(
            http=self.http, agents=self.agents, journal=self.journal,
            hook=self.hook.url, **params))
        self.start()
        self.fakes = []

    def start(self):
        self.coord = self.lab.start(f"coord-{self.name}", [
            reflex_binary("reflex-coordinator"), "-c", self.cfg],
            ready_url=self.url + "/readyz")

    def agents_up(self, n, *args):
        p = self.lab.start(f"agents-{self.name}-{len(self.fakes)}", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{self.agents}", "--port", "0",
            "--node-prefix", f"{self.name}-{len(self.fakes)}-",
            "--heartbeat-ms", "300"] + list(args))
        self.fakes.append(p)
        wait_until(lambda: len(http_json(self.url + "/api/v1/agents")) >= n,
                   15, what=f"{n} agents")
        return p

    def commands(self):
        out = []
        for p in self.fakes:
            out += [json.loads(l) for l in p.log_text().splitlines()
                    if l.startswith("{")]
        return [c for c in out if c["action"] == "restart"]

    def rows(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return http_json(f"{self.url}/api/v1/actions?limit=1000&{qs}")

    def db(self, sql):
        c = sqlite3.connect(self.journal)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()


def test_timeout_and_late_answer(tap, lab):
    env = Env(lab, "late")
    env.agents_up(1, "--delay-ms", "1600", "--workload",
                  "slow:slow-0:127.0.0.1:19999")
    http_post(env.url + "/api/v1/alerts", body([alert("Slow")]))
    wait_until(lambda: any(a["state"] == "timeout" for a in
                           env.rows(service="slow")), 5, what="timeout")
    a = env.rows(service="slow")[0]
    tap.ok("no answer within 1 s" in a["detail"],
           "the action is recorded as timed out at its deadline", a)
    wait_until(lambda: "late answer after" in
               env.rows(service="slow")[0]["detail"], 5, what="late answer")
    a = env.rows(service="slow")[0]
    tap.ok(a["state"] == "timeout" and "succeeded" in a["detail"],
           "its late completion is still recorded", a)


def test_kill_in_flight(tap, lab):
    env = Env(lab, "inflight", slow_timeout="20s")
    env.agents_up(1, "--delay-ms", "3000", "--workload",
                  "slow:slow-0:127.0.0.1:19998")
    http_post(env.url + "/api/v1/alerts", body([alert("Slow")]))
    wait_until(lambda: any(a["state"] == "dispatched" for a in
                           env.rows(service="slow")), 5, what="dispatch")
    # In flight: the agent has the command (the row may be readable a
    # moment before its commit's fsync returned and the command left).
    wait_until(lambda: len(env.commands()) == 1, 5, what="the command")
    env.coord.signal(signal.SIGKILL)
    env.coord.wait(5)
    lab.stop(env.coord)
    env.start()
    wait_until(lambda: len(env.commands()) == 1, 5, what="the agent's run")
    a = env.rows(service="slow")[0]
    tap.ok(a["state"] == "interrupted",
           "after kill -9 the in-flight action is marked interrupted", a)
    http_post(env.url + "/api/v1/alerts", body([alert("Slow")]))
    time.sleep(1.5)
    tap.ok(len(env.commands()) == 1 and len(env.rows(service="slow")) == 1,
           "the same alert again does not run the action twice",
           env.commands())


def test_kill_during_intake(tap, lab):
    env = Env(lab, "intake")
    acked, stop = [], threading.Event()

    def send():
        i = 0
        while not stop.is_set() and i < 2000:
            try:
                r = http_post(env.url + "/api/v1/alerts", body(
                    [alert("Unmatched", seq=str(i))]), timeout=2)
                if r.status == 200:
                    acked.append(i)
            except OSError:
                pass
            i += 1

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 200, 20, what="200 acknowledged")
    env.coord.signal(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    env.coord.wait(5)
    lab.stop(env.coord)
    stored = {int(json.loads(l)["seq"]) for (l,) in env.db(
        "select labels from alerts where alertname = 'Unmatched'")}
    # Several senders share the seq space; what matters is every
    # acknowledged count is stored: compare multisets by count.
    n_stored = env.db("select count(*) from alerts")[0][0]
    tap.ok(n_stored >= len(acked) and len(acked) > 0,
           f"kill -9 during intake: all {len(acked)} acknowledged alerts "
           f"are stored ({n_stored} rows)")
    env.start()
    wait_until(lambda: env.db("select count(*) from alerts where outcome ="
                              " 'pending'")[0][0] == 0, 10,
               what="pending alerts to be processed after restart")
    tap.ok(bool(stored), "alerts left pending by the kill are decided after "
           "the restart")


def test_storm(tap, lab):
    env = Env(lab, "storm")
    env.agents_up(1, *sum((["--workload", f"web:web-{i}:127.0.0.1:2{i:04d}"]
                           for i in range(50)), []))
    bodies = [body([alert("WebDown", instance=f"web-{(k * 10 + j) % 50}",
                          replica=str(k))
                    for j in range(10)]) for k in range(50)]
    t0 = time.monotonic()
    codes = []
    ths = [threading.Thread(target=lambda b=b: codes.append(http_post(
        env.url + "/api/v1/alerts", b).status)) for b in bodies]
    for t in ths:
        t.start()
    for t in ths:
        t.join(10)
    sent_in = time.monotonic() - t0
    tap.diag(f"500 alerts posted in {sent_in:.2f} s")
    tap.ok(codes.count(200) == 50, "all 50 webhooks (500 alerts) answered "
           "200", codes)
    wait_until(lambda: env.db("select count(*) from alerts where outcome = "
                              "'pending'")[0][0] == 0, 15, what="decisions")
    total = env.db("select count(*) from alerts")[0][0]
    outcomes = dict(env.db("select outcome, count(*) from alerts group by "
                           "outcome"))
    tap.ok(total == 500 and sum(outcomes.values()) == 500,
           "every alert is accounted for in the journal", outcomes)
    time.sleep(1)
    restarts = env.commands()
    tap.ok(len(restarts) <= 5, "per-service rate limit (5) and blast radius "
           f"(25% of 50 = 12) hold: {len(restarts)} restarts", outcomes)
    tap.ok(any(k.startswith("refused:") or k == "duplicate" for k in
               outcomes), "the rest are refused or duplicates, by name",
           outcomes)


def test_c07_fleet_storm(tap, lab):
    case = json.load(open(os.path.join(SRC, "tests", "data", "webhook",
                                       "C07-fleet-wide-storm.json")))
    env = Env(lab, "c07", global_max=5)   # the case's max_actions_per_10m
    # 240 targets on 8 nodes: the 48 pods of the case and 192 others.
    wls = []
    for ns in "abcdefghijkl":
        for p in range(4):
            wls.append(f"svc-{ns}:svc-{ns}-{p}:127.0.0.1:3{len(wls):04d}")
    while len(wls) < 240:
        wls.append(f"other:other-{len(wls)}:127.0.0.1:3{len(wls):04d}")
    for n in range(8):
        env.agents_up(n + 1, *sum((["--workload", w]
                                   for w in wls[n * 30:(n + 1) * 30]), []))
    for d in case["deliveries"]:
        r = http_post(env.url + "/api/v1/alerts", json.dumps(d["body"]))
        tap.ok(r.status == 200, f"C07 delivery at {d['t']}: 200", r.status)
    wait_until(lambda: env.db("select count(*) from alerts where outcome = "
                              "'pending'")[0][0] == 0, 10, what="decisions")
    time.sleep(1)
    tap.ok(env.commands() == [], "C07: zero restarts", env.commands())
    h = json.loads(http_get(env.url + "/health").text)
    tap.ok(h["breaker_open"] and "storm" in " ".join(h["reasons"]),
           "C07: the circuit breaker is open, and health says why", h)
    wait_until(lambda: env.hook.snapshot(), 5, what="the report")
    report = env.hook.snapshot()[0].json or {}
    tap.ok("circuit breaker open" in report.get("headline", "") and
           "svc-a-0" in report.get("outcome", ""),
           "C07: one report to people lists the suppressed targets",
           report)
    rows = [a for a in env.rows() if a["type"] == "breaker"]
    tap.ok(len(rows) == 1 and "alert storm" in rows[0]["detail"],
           "the report is in the journal too", rows)


def test_agent_permits(tap, lab):
    env = Env(lab, "permit")
    p = env.agents_up(1, *sum((["--workload", f"web:web-{i}:127.0.0.1:2{i:04d}"]
                              for i in range(4)), []),
                      "--permit", "web:web-0", "--permit", "web:web-1",
                      "--permit", "nosuch:x-0")
    wait_until(lambda: p.log_text().count('"permit"') == 3, 10,
               what="three permit answers")
    answers = [json.loads(l) for l in p.log_text().splitlines()
               if l.startswith('{"permit"')]
    tap.ok(answers[0]["ok"] and answers[0]["permit"] == "web/web-0",
           "an agent's own restart is permitted when the checks pass",
           answers)
    tap.ok(not answers[1]["ok"] and answers[1]["code"] == -1,
           "a second instance of the same service within the window is "
           "refused (blast radius 25% of 4)", answers)
    rows = env.rows(service="web")
    tap.ok(sorted(a["state"] for a in rows) == ["permitted", "refused"] and
           any("refused:blast_radius" in a["detail"] for a in rows),
           "both decisions are journaled with the check that refused", rows)
    lab.stop(env.coord)
    env.start()
    q = env.agents_up(2, "--permit", "web:web-2")
    wait_until(lambda: '"permit"' in q.log_text(), 10, what="permit answer")
    ans = [json.loads(l) for l in q.log_text().splitlines()
           if l.startswith('{"permit"')]
    tap.ok(ans and not ans[0]["ok"],
           "after a coordinator restart the blast-radius window still "
           "holds the earlier restart", ans)


def test_lost_agent(tap, lab):
    env = Env(lab, "lost", lost_after="1s")
    p = env.agents_up(1, "--workload", "web:web-0:127.0.0.1:19997")
    p.signal(signal.SIGKILL)
    p.wait(5)
    wait_until(lambda: json.loads(http_get(env.url + "/health").text)
               ["agents_lost"] == 1, 10, what="the agent to be marked lost")
    h = json.loads(http_get(env.url + "/health").text)
    tap.ok(h["status"] == "degraded" and "1 of 1 agents lost" in
           " ".join(h["reasons"]), "health: degraded, one agent lost", h)
    tap.ok("reflex_agents_lost 1" in http_get(env.url + "/metrics").text,
           "metrics: reflex_agents_lost 1")
    t0 = time.monotonic()
    http_post(env.url + "/api/v1/alerts", body([alert("WebDown",
                                                      instance="web-0")]))
    wait_until(lambda: env.rows(service="web") and
               env.rows(service="web")[0]["state"] in ("failed", "refused"),
               10, what="the command to fail")
    a = env.rows(service="web")[0]
    tap.ok("lost" in a["detail"] and time.monotonic() - t0 < 3,
           "a command for a lost agent's node fails fast, saying why", a)


if __name__ == "__main__":
    labs_main((test_timeout_and_late_answer, test_kill_in_flight,
               test_kill_during_intake, test_storm, test_c07_fleet_storm,
               test_agent_permits, test_lost_agent))
