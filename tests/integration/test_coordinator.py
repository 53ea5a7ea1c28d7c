#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Coordinator end to end with simulated agents (tests/tools/fake_agents.c):
webhook replies (C02), HA duplicates (C01), group re-sends with mixed
status and attempt budgets (C05), resolved alerts, no-rule, unsafe
templates, limits, metrics and the journal surviving kill -9."""

import copy
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)

SRC = os.environ.get("REFLEX_SRC", os.path.join(os.path.dirname(__file__),
                                                "..", ".."))
# Copies of ../shared/cases/ (the real-world inputs reflex must handle).
CASES = os.path.join(SRC, "tests", "data", "cases")

COOLDOWN_S = 3


def case(name):
    with open(os.path.join(CASES, name), encoding="utf-8") as f:
        return json.load(f)


CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
agent_lost_after: 10s
safety:
  blast_radius_percent: 67   # C05 restarts 2 of the 3 pods on purpose
  storm_min_targets: 50      # a fleet of 3: many alerts here are no storm
limits:
  max_body: 64KiB
  max_alerts: 100
rules:
  - name: restart-unavailable-deployment
    matchers: ['alertname = "DeploymentReplicasUnavailable"']
    actions:
      - type: restart
        service: "{{{{ deployment }}}}"
  - name: restart-not-ready-pod
    matchers: ['alertname = "PodNotReady"', 'namespace =~ "ns-.*"']
    cooldown: {cooldown}s
    max_attempts: 2
    verify: {{ interval: 500ms, timeout: 2s }}  # never resolves here
    actions:
      - type: restart
        service: svc-a
        instance: "{{{{ pod }}}}"
  - name: restart-by-address
    matchers: ['alertname = "AddrDown"']
    cooldown: 1m
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: svc-a
        instance: "{{{{ instance }}}}"
  - name: restart-crashlooping-pod
    matchers: ['alertname = "PodCrashLooping"']
    actions:
      - type: restart
        service: svc-a
        instance: "{{{{ pod }}}}"
"""


class Env:
    def __init__(self, lab):
        self.lab = lab
        self.http = free_port()
        self.agents = free_port()
        self.agent_port = free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.journal = lab.path("journal.db")
        self.config = lab.write_file("coordinator.yaml", CONFIG.format(
            http=self.http, agents=self.agents, journal=self.journal,
            cooldown=COOLDOWN_S))
        self.coord = None
        self.fake = None

    def start_coordinator(self):
        self.coord = self.lab.start(
            "coordinator", [reflex_binary("reflex-coordinator"), "-c",
                            self.config], ready_url=self.url + "/readyz")

    def start_fake_agents(self):
        self.fake = self.lab.start("fake-agents", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{self.agents}", "--port", "0",
            "--heartbeat-ms", "200",
            "--workload", "svc-a:svc-a-0:127.0.0.1:19000",
            "--workload", "svc-a:svc-a-1:127.0.0.1:19001",
            "--workload", f"svc-a:svc-a-7b6d9-ccccc:127.0.0.1:19002"])
        wait_until(lambda: len(http_json(self.url + "/api/v1/agents")) == 1,
                   10, what="fake agent registered")

    def commands(self, action="restart"):
        """Commands the simulated agent received (verification checks
        are left out unless asked for)."""
        out = []
        for line in self.fake.log_text().splitlines():
            if line.startswith("{"):
                c = json.loads(line)
                if action is None or c["action"] == action:
                    out.append(c)
        return out

    def post(self, body, path="/api/v1/alerts"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return http_post(self.url + path, body,
                         {"Content-Type": "application/json"})

    def actions(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return http_json(self.url + "/api/v1/actions" + ("?" + qs if qs else ""))

    def settle(self, n_commands, timeout=10):
        """Waits until the fake agent saw n commands and no action is in
        flight; then a little longer so that an extra command would show."""
        wait_until(lambda: len(self.commands()) >= n_commands, timeout,
                   what=f"{n_commands} commands")
        wait_until(lambda: not [a for a in self.actions()
                                if a["state"] in ("dispatched", "retrying")],
                   timeout, what="no action in flight")
        time.sleep(0.5)


def alert_body(alerts, status="firing"):
    return {"version": "4", "receiver": "reflex", "status": status,
            "groupKey": "{}:{}", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am.invalid",
            "truncatedAlerts": 0, "alerts": alerts}


def run(tap):
    with Lab(prefix="reflex-coord-") as lab:
        env = Env(lab)
        env.start_coordinator()
        env.start_fake_agents()

        # -- C02: what the reply tells Alertmanager ----------------------
        c02 = case("C02-slow-ack-sequence.json")
        bad = next(s for s in c02["scenarios"] if s["id"] == "D")
        body = bad["input"].split("'")[1]
        r = env.post(body)
        tap.ok(r.status == 400 and "error" in r.json(),
               "C02-D: unparsable body gets 400 with a reason",
               f"{r.status} {r.text}")
        r = env.post({"version": "3", "alerts": []})
        tap.ok(r.status == 400 and "version" in r.text,
               "wrong webhook version gets 400 naming the field", r.text)
        r = env.post(b"x" * (70 * 1024))
        tap.ok(r.status == 413, "body over max_body gets 413", r.status)
        many = alert_body([{"status": "firing",
                            "labels": {"alertname": "X", "i": str(i)},
                            "annotations": {}, "startsAt":
                            "2026-12-04T10:00:00Z", "endsAt":
                            "0001-01-01T00:00:00Z"} for i in range(101)])
        r = env.post(many)
        tap.ok(r.status == 413 and "alerts" in r.text,
               "more alerts than max_alerts gets 413", r.text)
        r = http_get(env.url + "/webhook/alert")
        tap.ok(r.status == 405, "GET on the webhook is 405", r.status)

        t0 = time.monotonic()
        r = env.post(alert_body([{
            "status": "firing", "labels": {"alertname": "NothingMatches"},
            "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]))
        tap.ok(r.status == 200 and r.json().get("alerts") == 1,
               "C02-E: no rule matches: 200 (accepted)", r.text)
        tap.ok(time.monotonic() - t0 < 1.0, "the reply comes within 1 s")
        r = env.post(alert_body([{
            "status": "firing",
            "labels": {"alertname": "NothingMatches", "n": str(i)},
            "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"} for i in range(12)]))
        tap.ok(r.status == 200 and
               r.text == '{"status":"accepted","alerts":12}',
               "the reply counts the alerts stored, exactly", r.text)

        # -- C01: HA pair duplicates -------------------------------------
        c01 = case("C01-ha-duplicate-delivery.json")
        codes = []
        for d in c01["deliveries"]:
            if d.get("receiver_reply") == 503:
                continue  # Alertmanager got 503 then: never delivered
            codes.append(env.post(d["body"]).status)
        tap.ok(codes == [200, 200, 200], "C01: every copy gets 200", codes)
        env.settle(1)
        cmds = [c for c in env.commands() if c["service"] == "svc-a"
                and c["instance"] == ""]
        tap.ok(len(cmds) == 1,
               "C01: exactly one restart of svc-a for five deliveries",
               env.commands())
        acts = [a for a in env.actions(alertname="DeploymentReplicasUnavailable")
                if a["type"] == "restart"]
        tap.ok(len(acts) == 1 and acts[0]["state"] == "succeeded",
               "C01: one restart journaled, succeeded", acts)

        # -- C05: group re-sends with mixed per-alert status -------------
        c05 = case("C05-group-resends-mixed-status.json")
        notes = c05["notifications"]
        base = len(env.commands())

        def pod_cmds():
            return [c["instance"] for c in env.commands()[base:]]

        env.post(notes[0]["body"])
        env.settle(base + 1)
        tap.ok(pod_cmds() == ["svc-a-0"], "C05 10:00: restart svc-a-0",
               pod_cmds())
        env.post(notes[1]["body"])
        env.settle(base + 2)
        tap.ok(pod_cmds() == ["svc-a-0", "svc-a-1"],
               "C05 10:05: restart svc-a-1 only", pod_cmds())
        env.post(notes[2]["body"])
        time.sleep(1)
        tap.ok(len(pod_cmds()) == 2,
               "C05 10:10: top-level firing with svc-a-1 resolved: nothing",
               pod_cmds())
        time.sleep(COOLDOWN_S + 0.5)
        env.post(notes[3]["body"])
        env.settle(base + 3)
        tap.ok(pod_cmds() == ["svc-a-0", "svc-a-1", "svc-a-0"],
               "C05 11:10: still firing after the cooldown: second attempt",
               pod_cmds())
        env.post(notes[4]["body"])
        time.sleep(1)
        tap.ok(len(pod_cmds()) == 3,
               "C05 11:15: repeated resolved entry starts nothing",
               pod_cmds())
        time.sleep(COOLDOWN_S + 0.5)
        env.post(notes[5]["body"])
        env.post(notes[5]["body"])
        time.sleep(1)
        tap.ok(len(pod_cmds()) == 3,
               "C05 12:10: attempts spent: no third restart", pod_cmds())
        log = env.coord.log_text()
        tap.ok(log.count("event=engine.escalate") == 1,
               "C05 12:10: escalated exactly once, then quiet")

        # -- resolved alerts never act -----------------------------------
        before = len(env.commands())
        env.post(alert_body([{
            "status": "resolved", "labels": {"alertname": "PodNotReady",
                                             "namespace": "ns-z",
                                             "pod": "svc-a-1"},
            "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "2026-12-04T10:01:00Z"}], status="resolved"))
        time.sleep(1)
        tap.ok(len(env.commands()) == before,
               "a resolved alert without an open incident starts nothing")

        # -- label values are validated before they become a target -------
        for evil in ("../../etc/passwd", "svc;reboot", "$(id)", "-rf"):
            env.post(alert_body([{
                "status": "firing", "labels": {
                    "alertname": "PodCrashLooping", "pod": evil},
                "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z"}]))
        time.sleep(1)
        tap.ok(len(env.commands()) == before,
               "unsafe label values never reach an agent",
               env.commands()[before:])
        tap.ok(env.coord.log_text().count("result=template-error") == 4,
               "each unsafe alert is recorded as template-error")

        # -- the cooldown holds whether the instance is named or addressed --
        before = len(env.commands())

        def addr_alert(status, starts):
            return alert_body([{
                "status": status, "labels": {"alertname": "AddrDown",
                                             "instance": "127.0.0.1:19001"},
                "annotations": {}, "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing"
                else "2026-12-04T10:05:00Z"}])
        env.post(addr_alert("firing", "2026-12-04T10:00:00Z"))
        env.settle(before + 1)
        env.post(addr_alert("resolved", "2026-12-04T10:00:00Z"))
        env.post(addr_alert("firing", "2026-12-04T10:06:00Z"))
        time.sleep(1)
        cmds = env.commands()[before:]
        tap.ok([c["instance"] for c in cmds] == ["svc-a-1"],
               "an alert naming the instance by host:port restarts it once; "
               "a new incident within the cooldown starts nothing", cmds)

        # -- metrics -------------------------------------------------------
        text = http_get(env.url + "/metrics").text
        tap.ok('reflex_actions_total{action="restart",outcome="succeeded"} 5'
               in text, "metrics count the five restarts (C01 1, C05 3, "
               "by address 1)")
        rc, out = lab.check_metrics(text)
        tap.ok(rc == 0, "promtool check metrics accepts /metrics", out)
        h = json.loads(http_get(env.url + "/health").text)
        tap.ok(h["status"] == "healthy", "health is healthy", h)

        # -- durability: kill -9 right after the 200 ----------------------
        def restarts():
            return [(a["id"], a["state"]) for a in env.actions()
                    if a["type"] == "restart"]
        history = restarts()
        r = env.post(alert_body([{
            "status": "firing", "labels": {"alertname": "DurableCheck",
                                           "x": "1"},
            "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]))
        env.coord.signal(signal.SIGKILL)
        env.coord.wait(5)
        lab.stop(env.coord)
        import sqlite3
        db = sqlite3.connect(env.journal)
        n = db.execute("select count(*) from alerts where alertname = "
                       "'DurableCheck'").fetchone()[0]
        db.close()
        tap.ok(r.status == 200 and n == 1,
               "an alert answered 200 is in the journal after kill -9",
               (r.status, n))
        env.start_coordinator()
        acts = restarts()
        tap.ok(acts == history and len(acts) == 5,
               "the restart history survives the restart unchanged",
               (acts, history))
        before = len(env.commands())
        env.post(notes[0]["body"])  # C05 svc-a-0 again, same incident
        time.sleep(1.5)
        tap.ok(len(env.commands()) == before,
               "after restart, the spent incident still starts nothing",
               env.commands()[before:])


def main():
    tap = Tap()
    try:
        run(tap)
    except Exception as e:  # a broken lab is a failed test, with the cause
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
