#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The open agent channel (no agent_secret_file) under limits, on 127.0.0.1
only: max_agents caps registration ("agent limit reached", logged and
counted) while a known node still registers again at the cap; a permit
for a service the node did not register is refused ("node X does not host
service Y") before the safety checks, so a rogue node cannot use up the
rate budget: with global and per-service budgets of one action, a real
alert afterwards still acts.

fake-agents plays three nodes hosting web; the intruder and the extra
permits are sent as raw SP/nng frames (the helpers of test_hostile.py).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)
from test_hostile import SPReq, frame, unpack  # noqa: E402

EUSERS, EPERM = 87, 1

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
max_agents: 3
safety:
  global_max_actions: 1
  service_max_actions: 1
  blast_radius_percent: 100
rules:
  - name: restart-down
    matchers: ['alertname = "ServiceDown"']
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: web
        instance: "{{{{ instance }}}}"
"""


def alert(instance):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "ServiceDown",
                                       "instance": instance},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]})


def metric(url, name):
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def ask(port, type_, body, id_):
    conn = SPReq(port)
    try:
        return unpack(conn.request(frame(type_, body, id_)))
    finally:
        conn.close()


def fake_lines(proc):
    out = []
    for line in proc.log_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def run(tap, lab):
    http, agents = free_port(), free_port()
    cfg = lab.write_file("c.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("j.db")))
    url = f"http://127.0.0.1:{http}"
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")
    fake = lab.start("agents", [
        reflex_binary("fake-agents"), "--coordinator",
        f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms", "200",
        "--workload", "web:web-{i}:127.0.0.1:1900{i}", "--count", "3",
        "--permit", "db:db-0"])
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 3, 10,
               what="three agents")

    # -- permits for services the node does not host ----------------------
    got = wait_until(lambda: [m for m in fake_lines(fake)
                              if m.get("permit") == "db/db-0"], 10,
                     what="fake-agents' permit answer")
    p = got[0]
    # (fake-agents prints the reply's code, not its message)
    tap.ok(p["ok"] is False and p["code"] == -EPERM,
           "fake-agents' permit for a service node-0 did not register is "
           "refused (-EPERM)", p)
    reps = [ask(agents, "permit", {"node": "node-1", "service": svc,
                                   "instance": svc + "-0",
                                   "reason": "probe failed"}, 10 + i)
            for i, svc in enumerate(["db", "web-x", "cache", "db", "db"])]
    tap.ok(all(r["type"] == "reply" and r["body"]["ok"] is False and
               r["body"]["code"] == -EPERM for r in reps) and
           reps[1]["body"]["message"] ==
           "node node-1 does not host service web-x",
           "five more unhosted permits from another node: all refused, "
           "'node node-1 does not host service web-x'",
           [r["body"] for r in reps])
    tap.ok(metric(url, "reflex_permits_not_hosted_total") == 6,
           "each is counted in reflex_permits_not_hosted_total",
           metric(url, "reflex_permits_not_hosted_total"))
    acts = http_json(url + "/api/v1/actions")
    tap.ok(acts == [], "none was journaled as an action", acts[:3])

    # -- the cap -------------------------------------------------------------
    rep = ask(agents, "register", {
        "node": "intruder", "addr": "tcp://127.0.0.1:9",
        "runtime": "process", "workloads": [
            {"service": "web", "instance": "web-9",
             "addr": "127.0.0.1:19009", "healthy": True}]}, 20)
    b = rep["body"]
    tap.ok(rep["type"] == "reply" and b["ok"] is False and
           b["code"] == -EUSERS and "agent limit reached" in b["message"],
           "a fourth node at max_agents: 3 is refused, 'agent limit "
           "reached'", rep)
    nodes = sorted(a["node"] for a in http_json(url + "/api/v1/agents"))
    tap.ok(nodes == ["node-0", "node-1", "node-2"],
           "the registry still holds the three nodes", nodes)
    tap.ok(metric(url, "reflex_agent_registrations_refused_total") == 1,
           "the refusal is counted in /metrics",
           metric(url, "reflex_agent_registrations_refused_total"))
    tap.ok("agents.register_refused" in coord.log_text() and
           "intruder" in coord.log_text(),
           "and logged (agents.register_refused node=intruder)")

    node1 = [a for a in http_json(url + "/api/v1/agents")
             if a["node"] == "node-1"][0]
    rep = ask(agents, "register", {
        "node": "node-1", "addr": node1["addr"], "runtime": "process",
        "workloads": [{"service": "web", "instance": "web-1",
                       "addr": "127.0.0.1:19001", "healthy": True}]}, 21)
    tap.ok(rep["type"] == "reply" and rep["body"]["ok"] is True,
           "a known node registers again at the cap", rep)
    tap.ok(len(http_json(url + "/api/v1/agents")) == 3,
           "still three agents")

    # -- the rate budget is intact ---------------------------------------------
    r = http_post(url + "/api/v1/alerts", alert("web-1"),
                  {"Content-Type": "application/json"})
    done = wait_until(lambda: [a for a in http_json(url + "/api/v1/actions")
                               if a["state"] == "succeeded"], 15,
                      what="the restart succeeded")
    cmds = [m for m in fake_lines(fake) if m.get("action") == "restart"]
    tap.ok(r.status == 200 and len(done) == 1 and
           done[0]["service"] == "web" and
           [(c["node"], c["instance"]) for c in cmds] ==
           [("node-1", "web-1")],
           "with budgets of one action, a real alert afterwards still "
           "restarts web-1 on node-1", (r.status, done, cmds))
    # The budget is real: a hosted permit now meets the spent budget.
    rep = ask(agents, "permit", {"node": "node-0", "service": "web",
                                 "instance": "web-0",
                                 "reason": "probe failed"}, 30)
    tap.ok(rep["body"]["ok"] is False and
           "does not host" not in rep["body"]["message"],
           "a hosted permit is decided by the safety checks (budget spent)",
           rep["body"])
    tap.ok(coord.alive(), "the coordinator is still running")


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-agent-limits-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
