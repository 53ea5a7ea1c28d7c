#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The words of the engine's decisions that need no agent (issue 7 made
their path cheaper, not different): an alert whose target no agent runs
is journaled 'no-agent' with "no registered agent runs service S
instance I" (or "(all)" without an instance) and logged at info as
`event=engine.decision alert_id=N result=no-agent detail="..."`; an alert
a rule's template cannot render is 'template-error' with the template's
reason; an alert no rule matches is 'no-rule' (logged at debug only).
Every text is compared whole."""

import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_post, lab_main,  # noqa: E402
                       reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    actions: [ {{ type: restart, service: web,
                  instance: "{{{{ instance }}}}" }} ]
  - name: whole
    matchers: ['alertname = "AllDown"']
    actions: [ {{ type: restart, service: "svc-{{{{ team }}}}" }} ]
"""


def alert(name, **labels):
    return {"status": "firing", "labels": dict(labels, alertname=name),
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}


def run(tap, lab):
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    journal = lab.path("journal.db")
    cfg = lab.write_file("coordinator.yml", CONFIG.format(
        http=http, agents=agents, journal=journal))
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")
    alerts = [alert("WebDown", instance="127.0.0.1:18081"),
              alert("WebDown"),
              alert("AllDown", team="blue"),
              alert("AllDown"),
              alert("Unmatched", instance="x")]
    r = http_post(url + "/api/v1/alerts", json.dumps({
        "version": "4", "status": "firing", "alerts": alerts}).encode())
    tap.ok(r.status == 200, "the webhook is accepted", r.status)

    def decided():
        c = sqlite3.connect(journal)
        try:
            return c.execute("select alertname, outcome, detail from alerts"
                             " order by id").fetchall()
        finally:
            c.close()

    rows = wait_until(lambda: (lambda v: v if len(v) == len(alerts) and
                               all(o != "pending" for _, o, _ in v)
                               else None)(decided()), 15,
                      what="every alert decided")
    want = [
        ("WebDown", "no-agent",
         "no registered agent runs service web instance 127.0.0.1:18081"),
        ("WebDown", "template-error",
         'actions[0].instance: the alert has no label "instance"'),
        ("AllDown", "no-agent",
         "no registered agent runs service svc-blue instance (all)"),
        ("AllDown", "template-error",
         'actions[0].service: the alert has no label "team"'),
        ("Unmatched", "no-rule", "no rule matched"),
    ]
    for got, w in zip(rows, want):
        tap.ok(got == w, f"{w[0]}: journaled {w[1]} with its whole reason",
               got)

    def decision_lines():
        return [line for line in coord.log_text().splitlines()
                if "event=engine.decision " in line]

    # The engine writes a turn's log lines at the end of the turn, after
    # its journal commit: they may come a moment after the rows (seen
    # under valgrind).
    deadline = time.monotonic() + 15
    lines = decision_lines()
    while len(lines) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = decision_lines()
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info "
                     r"comp=coordinator event=engine\.decision "
                     r"alert_id=(\d+) result=(\S+) detail=(.*)$")
    got = [pat.match(line) for line in lines]
    tap.ok(len(lines) == 4 and all(got),
           "four decisions logged at info in the one line format (no-rule "
           "is debug)", lines)
    quoted = [(m.group(2), m.group(3)) for m in got if m]
    tap.ok(quoted == [
        ("no-agent", '"no registered agent runs service web instance '
         '127.0.0.1:18081"'),
        ("template-error", '"actions[0].instance: the alert has no label '
         '\\"instance\\""'),
        ("no-agent", '"no registered agent runs service svc-blue instance '
         '(all)"'),
        ("template-error", '"actions[0].service: the alert has no label '
         '\\"team\\""'),
    ], "each line carries the result and the reason quoted whole", quoted)
    ids = [int(m.group(1)) for m in got if m]
    tap.ok(ids == sorted(ids) and len(set(ids)) == 4,
           "each line names its alert's journal id", ids)


if __name__ == "__main__":
    lab_main(run, "reflex-decision-text-")
