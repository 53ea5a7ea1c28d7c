#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The engine's plan memo seen from outside (issue 7: an alert that comes
again is not planned again, with the same decisions). An alert seen
three times while no agent runs its target is decided 'no-agent' each
time, the last from the memo; once an agent hosts the target the same
alert, answered from the memo, acts: the run takes its own copy of the
plans and the restart reaches the agent with the rendered target. An
alert no rule wanted, seen as often, is planned under the new rules
after a reload (SIGHUP) that adds a rule for it: a reload is never
answered from the memo."""

import json
import os
import signal
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)

RULES_1 = """\
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    cooldown: 10m
    actions:
      - type: restart
        service: "{{ service }}"
        instance: "{{ instance }}"
        timeout: 30s
"""

RULES_2 = RULES_1 + """\
  - name: api
    matchers: ['alertname = "ApiDown"']
    actions:
      - type: restart
        service: "api-{{ service }}"
        timeout: 30s
"""

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
agent_lost_after: 60s
"""


def body(name, **labels):
    return json.dumps({
        "version": "4", "receiver": "reflex", "status": "firing",
        "alerts": [{"status": "firing",
                    "labels": dict(labels, alertname=name),
                    "startsAt": "2026-12-04T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z"}]})


def run(tap):
    with Lab(prefix="reflex-planmemo-") as lab:
        http, agents = free_port(), free_port()
        url = f"http://127.0.0.1:{http}"
        journal = lab.path("journal.db")
        head = CONFIG.format(http=http, agents=agents, journal=journal)
        config = lab.write_file("coordinator.yaml", head + RULES_1)
        coord = lab.start("coordinator", [
            reflex_binary("reflex-coordinator"), "-c", config],
            ready_url=url + "/readyz")

        def decisions(name):
            c = sqlite3.connect(journal)
            try:
                return c.execute("select outcome, detail from alerts where "
                                 "alertname = ? order by id",
                                 (name,)).fetchall()
            finally:
                c.close()

        def post_decided(name, n, **labels):
            r = http_post(url + "/api/v1/alerts", body(name, **labels),
                          {"Content-Type": "application/json"})
            tap.ok(r.status == 200, f"{name} #{n} accepted", r.text)
            return wait_until(
                lambda: (lambda v: v if len(v) == n and
                         v[-1][0] != "pending" else None)(decisions(name)),
                15, what=f"{name} #{n} decided")

        web = {"service": "web", "instance": "web-0",
               "prometheus_replica": "a"}
        for i in range(1, 4):
            rows = post_decided("WebDown", i, **web)
        want = ("no-agent", "no registered agent runs service web "
                "instance web-0")
        tap.ok(rows == [want] * 3, "three times no-agent, the same text",
               rows)
        for i in range(1, 4):
            rows = post_decided("ApiDown", i, service="pay")
        tap.ok([o for o, _ in rows] == ["no-rule"] * 3,
               "an alert no rule wants: no-rule each time", rows)

        fake = lab.start("fake-agents", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0", "--count", "1",
            "--heartbeat-ms", "2000",
            "--workload", "web:web-{i}:127.0.0.1:7000",
            "--workload", "api-pay:pay-{i}:127.0.0.1:7001"])
        wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 1,
                   30, what="the fake agent registered")

        # The other replica's copy: the same identity (the replica label
        # is ignored) and the same labels the rule reads, so the same
        # plans, lent by the memo.
        web["prometheus_replica"] = "b"
        rows = post_decided("WebDown", 4, **web)
        tap.ok(rows[-1][0] == "acted", "the fourth alert acts", rows[-1])

        def restarts():
            return [a for a in http_json(url + "/api/v1/actions?limit=100")
                    if a["type"] == "restart"]
        acts = wait_until(lambda: (lambda v: v if v and v[0]["state"] ==
                                   "succeeded" else None)(restarts()),
                          30, what="the restart succeeded")
        tap.ok(len(acts) == 1 and acts[0]["service"] == "web" and
               acts[0]["instance"] == "web-0" and acts[0]["rule"] == "web",
               "one restart of web/web-0 by rule web", acts)
        cmds = [json.loads(ln) for ln in fake.log_text().splitlines()
                if ln.startswith("{") and '"action":"restart"' in ln]
        tap.ok(len(cmds) == 1 and cmds[0]["action_id"] == acts[0]["id"],
               "the agent got that restart", cmds)

        lab.write_file("coordinator.yaml", head + RULES_2)
        coord.signal(signal.SIGHUP)
        wait_until(lambda: "event=coordinator.reloaded" in coord.log_text(),
                   15, what="the reload")
        rows = post_decided("ApiDown", 4, service="pay")
        tap.ok(rows[-1][0] == "acted",
               "after the reload the alert no rule wanted acts under the "
               "new rule", rows[-1])
        acts = wait_until(lambda: (lambda v: v if any(
            a["service"] == "api-pay" for a in v) else None)(restarts()),
            30, what="the api-pay restart")
        tap.ok([a["rule"] for a in acts if a["service"] == "api-pay"] ==
               ["api"], "its restart comes from the new rule", acts)


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
