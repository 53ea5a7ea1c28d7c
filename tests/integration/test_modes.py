#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trust grows in stages: per-service automation (off, shadow, approval,
live), the deterministic rollout by a hash of the service name, the ramp
that raises it on its own (and is kept across restarts), and approval
mode with approve, reject and expiry (also across restarts, and of a plan
whose target has no agent any more)."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)


def bucket(name):
    h = 1469598103934665603
    for b in name.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % 100


def pick(pred):
    for i in range(1000):
        name = f"svc-{i}"
        if pred(bucket(name)):
            return name
    raise AssertionError("no service name found")


IN = pick(lambda b: b < 50)
OUT = pick(lambda b: b >= 50)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
approval_timeout: {approval}
auth: {{ operator_token_file: {tok} }}
rollout: {rollout}
services:
  - {{ name: off-svc, automation: "off" }}
  - {{ name: shadow-svc, automation: shadow }}
  - {{ name: approve-svc, automation: approval }}
  - {{ name: live-svc, automation: live }}
safety: {{ blast_radius_percent: 100, service_max_actions: 100,
          storm_min_targets: 50 }}
rules:
  - name: restart
    matchers: ['alertname = "Down"']
    cooldown: 0s
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: "{{{{ service }}}}"
        instance: "{{{{ instance }}}}"
"""


def alert(service, instance):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "Down",
                                       "service": service,
                                       "instance": instance},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]})


class Env:
    def __init__(self, lab, rollout, approval="3s"):
        self.lab = lab
        self.http, self.agents = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        tok = lab.write_file("op.token", "tok")
        self.cfg = lab.write_file(f"c{self.http}.yml", CONFIG.format(
            http=self.http, agents=self.agents, tok=tok, rollout=rollout,
            approval=approval, journal=lab.path(f"j{self.http}.db")))
        self.start()
        wl = []
        for svc in ("off-svc", "shadow-svc", "approve-svc", "live-svc", IN,
                    OUT):
            for i in range(3):
                wl += ["--workload", f"{svc}:{svc}-{i}:127.0.0.1:1{i}{len(wl)}"]
        self.fake = lab.start(f"agents{self.http}", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{self.agents}", "--port", "0",
            "--heartbeat-ms", "200"] + wl)
        wait_until(lambda: len(http_json(self.url + "/api/v1/agents")) == 1,
                   10, what="agent")

    def start(self):
        # A sanitized build stops at undefined behaviour (harmless
        # elsewhere): the test sees it as the coordinator gone.
        ubsan = os.environ.get("UBSAN_OPTIONS", "")
        self.coord = self.lab.start(f"coord{self.http}", [
            reflex_binary("reflex-coordinator"), "-c", self.cfg],
            env={"UBSAN_OPTIONS": (ubsan + ":" if ubsan else "") +
                 "halt_on_error=1"},
            ready_url=self.url + "/readyz")

    def post(self, service, instance):
        return http_post(self.url + "/api/v1/alerts", alert(service, instance))

    def rows(self, service):
        return [a for a in http_json(self.url + "/api/v1/actions?limit=1000")
                if a["service"] == service]

    def commands(self, service):
        return [json.loads(l) for l in self.fake.log_text().splitlines()
                if l.startswith("{") and json.loads(l)["service"] == service]

    def cli(self, *args):
        r = subprocess.run([reflex_binary("reflex-coordinator"), "-c",
                            self.cfg] + list(args), capture_output=True,
                           text=True, timeout=20)
        return r.returncode, r.stdout + r.stderr


def run(tap, lab):
    env = Env(lab, "{ percent: 50 }")
    for svc in ("off-svc", "shadow-svc", "live-svc", IN, OUT):
        env.post(svc, f"{svc}-0")
    wait_until(lambda: all("alert_id" in a for a in env.rows("live-svc"))
               and env.commands(IN), 10, what="decisions")
    time.sleep(0.5)
    log = env.coord.log_text()
    tap.ok("result=refused:disabled" in log and not env.commands("off-svc")
           and not env.rows("off-svc"),
           "automation off: refused:disabled, nothing planned")
    sh = env.rows("shadow-svc")
    tap.ok(len(sh) == 1 and sh[0]["state"] == "shadow" and
           not env.commands("shadow-svc"),
           "shadow service: the plan is recorded as shadow, not executed", sh)
    tap.ok(env.commands("live-svc"), "live service acts (outside the "
           "rollout bucket or not)", (bucket("live-svc"),))
    tap.ok(env.commands(IN) and not env.commands(OUT),
           f"rollout 50%: {IN} (bucket {bucket(IN)}) acts, {OUT} (bucket "
           f"{bucket(OUT)}) does not")
    out = env.rows(OUT)
    tap.ok(len(out) == 1 and out[0]["state"] == "shadow" and
           "outside the rollout" in out[0]["detail"],
           "a service outside the rollout runs in shadow, and says why", out)
    h = http_json(env.url + "/health")
    tap.ok(h.get("rollout_percent") == 50, "health shows the rollout", h)
    tap.ok("reflex_rollout_percent 50" in http_get(env.url + "/metrics").text,
           "metrics show the rollout")
    rc, out = env.cli("status")
    tap.ok(rc == 0 and "rollout:     50% of services live" in out,
           "reflex-coordinator status shows the rollout stage", out)

    # -- approval --------------------------------------------------------
    env.post("approve-svc", "approve-svc-0")
    wait_until(lambda: env.rows("approve-svc"), 5, what="plan")
    plan = env.rows("approve-svc")[0]
    tap.ok(plan["state"] == "awaiting-approval" and
           not env.commands("approve-svc"),
           "approval: the plan waits, nothing runs", plan)
    rc, out = env.cli("approve", str(plan["id"]))
    tap.ok(rc == 0, "reflex-coordinator approve ID", out)
    wait_until(lambda: env.commands("approve-svc"), 5, what="approved run")
    tap.ok([c["instance"] for c in env.commands("approve-svc")] ==
           ["approve-svc-0"], "after approval the restart runs")
    rc, out = env.cli("approve", "999999")
    tap.ok(rc == 1 and out.strip() == "reflex-coordinator: approve: no plan "
           "999999 (HTTP 404)",
           "approving a plan that does not exist: its error, 404, exit 1",
           (rc, out))
    # The id may come before the options too.
    rc2, out2 = env.cli("approve", "999999", "--url", env.url)
    rc3, out3 = env.cli("approve", "--url", env.url, "1", "2")
    tap.ok(rc2 == 1 and out2 == out and rc3 == 2 and
           "approve needs one plan id" in out3 and "usage:" not in out3,
           "approve ID --url URL works; two ids are a usage error",
           (rc2, out2, rc3, out3))
    rc, out = env.cli("approve", str(plan["id"]))
    tap.ok(rc == 1 and "409" in out and "not awaiting approval" in out,
           "approving a plan already decided: 409, exit 1", (rc, out))
    env.post("approve-svc", "approve-svc-1")
    wait_until(lambda: any(a["state"] == "awaiting-approval" and
                           a["instance"] == "approve-svc-1"
                           for a in env.rows("approve-svc")), 5, what="plan 2")
    p2 = [a for a in env.rows("approve-svc")
          if a["instance"] == "approve-svc-1"][0]
    rc, out = env.cli("reject", str(p2["id"]))
    wait_until(lambda: any(a["id"] == p2["id"] and a["state"] == "rejected"
                           for a in env.rows("approve-svc")), 5,
               what="rejection")
    tap.ok(rc == 0 and len(env.commands("approve-svc")) == 1,
           "a rejected plan never runs", out)
    env.post("approve-svc", "approve-svc-2")
    wait_until(lambda: any(a["instance"] == "approve-svc-2" and
                           a["state"] == "expired"
                           for a in env.rows("approve-svc")), 8,
               what="expiry")
    tap.ok(len(env.commands("approve-svc")) == 1,
           "an unanswered plan expires after approval_timeout, unrun")
    r = http_post(env.url + "/api/v1/approve", json.dumps({"id": "x"}),
                  {"Authorization": "Bearer tok"})
    tap.ok(r.status == 400, "approve with a malformed id: 400", r.status)
    r = http_post(env.url + "/api/v1/approve", json.dumps({"id": 1}))
    tap.ok(r.status == 401, "approve without the operator token: 401")

    # -- approvals across a restart ----------------------------------------
    env3 = Env(lab, "{ percent: 100 }", approval="1h")

    def waiting(e, inst):
        return [a for a in e.rows("approve-svc") if a["instance"] == inst
                and a["state"] == "awaiting-approval"]
    env3.post("approve-svc", "approve-svc-0")
    plan = wait_until(lambda: waiting(env3, "approve-svc-0"), 10,
                      what="plan")[0]
    env3.lab.stop(env3.coord)
    env3.start()
    tap.ok("approvals_waiting=1" in env3.coord.log_text() and
           waiting(env3, "approve-svc-0"),
           "a plan awaiting approval waits again after a restart",
           env3.coord.log_text(tail=3))
    wait_until(lambda: len(http_json(env3.url + "/api/v1/agents")) == 1, 10,
               what="agent back")
    rc, out = env3.cli("approve", str(plan["id"]))
    wait_until(lambda: env3.commands("approve-svc"), 10,
               what="approved run after the restart")
    tap.ok(rc == 0 and [c["instance"] for c in env3.commands("approve-svc")]
           == ["approve-svc-0"], "approved after the restart, it runs", out)
    env4 = Env(lab, "{ percent: 100 }", approval="5s")
    env4.post("approve-svc", "approve-svc-1")
    plan = wait_until(lambda: waiting(env4, "approve-svc-1"), 10,
                      what="plan")[0]
    env4.lab.stop(env4.coord)
    time.sleep(5.5)
    env4.start()
    row = wait_until(lambda: [a for a in env4.rows("approve-svc")
                              if a["id"] == plan["id"] and
                              a["state"] != "awaiting-approval"], 10,
                     what="the plan's end")[0]
    tap.ok(row["state"] == "expired" and not env4.commands("approve-svc"),
           "a plan whose approval time ran out while the coordinator was "
           "down is expired at start, unrun", row)

    # A plan approved after a restart while no agent hosts its target any
    # more: its run finds no target (the run's first step resolves none;
    # memset on its NULL target array was undefined, UBSan stopped here).
    env5 = Env(lab, "{ percent: 100 }", approval="1h")
    env5.post("approve-svc", "approve-svc-2")
    plan = wait_until(lambda: waiting(env5, "approve-svc-2"), 10,
                      what="plan")[0]
    env5.lab.stop(env5.coord)
    env5.lab.stop(env5.fake)
    env5.start()
    rc, out = env5.cli("approve", str(plan["id"]))
    row = wait_until(lambda: [a for a in env5.rows("approve-svc")
                              if a["instance"] == "approve-svc-2" and
                              a["state"] == "failed"], 10,
                     what="the approved plan's failed run")[0]
    tap.ok(rc == 0 and row["state"] == "failed" and
           "no registered agent" in (row.get("detail") or "") and
           env5.coord.alive(), "a plan approved when no agent hosts its "
           "target any more fails with the reason, the coordinator runs on",
           (out, row))

    # -- the ramp ----------------------------------------------------------
    env2 = Env(lab, "{ percent: 0, step: 50, interval: 2s, max: 100 }")
    tap.ok(http_json(env2.url + "/health")["rollout_percent"] == 0,
           "the ramp starts at its first stage")
    wait_until(lambda: http_json(env2.url + "/health")["rollout_percent"]
               == 50, 6, what="first ramp step")
    pct = wait_until(lambda: (lambda p: p if p == 100 else None)(
        http_json(env2.url + "/health")["rollout_percent"]), 6,
        what="second ramp step")
    time.sleep(2.5)  # one more interval: it stays at its max
    pct = http_json(env2.url + "/health")["rollout_percent"]
    tap.ok(pct == 100, "it ramps by its step every interval up to its max",
           pct)
    env2.lab.stop(env2.coord)
    env2.start()
    tap.ok(http_json(env2.url + "/health")["rollout_percent"] == 100,
           "after a restart the ramp resumes where it was")


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-modes-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
