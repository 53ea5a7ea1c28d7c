#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SIGHUP reloads the coordinator's rules: an alert no rule matched is
acted on once a rule for it was added and the coordinator got SIGHUP; a
file that does not load is refused with its file and line, the rules in
force stay and the coordinator keeps running; a change of runtime is
refused; a SIGHUP that finds the file unchanged keeps the rules in force
without loading another copy; SIGTERM still stops it cleanly."""

import json
import os
import signal
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_post, lab_main, reflex_binary,  # noqa: E402
                       wait_until)

HEAD = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
safety:
  global_max_actions: 100
  service_max_actions: 100
  blast_radius_percent: 100
rules:
"""
RULE = """\
  - name: {name}
    matchers: ['alertname = "{alert}"']
    cooldown: 0s
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}",
                  retries: 0 }} ]
"""


def alert(name, n):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": name,
                                       "instance": "web-0", "n": str(n)},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]}).encode()


class Env:
    def __init__(self, lab):
        self.lab = lab
        self.http, self.agents = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.journal = lab.path("journal.db")
        self.cfg = lab.path("coordinator.yaml")
        self.write(["Foo"])
        self.coord = lab.start("coordinator", [
            reflex_binary("reflex-coordinator"), "-c", self.cfg],
            ready_url=self.url + "/readyz")
        self.fake = lab.start("fake-agents", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{self.agents}", "--port", "0",
            "--heartbeat-ms", "200", "--workload",
            "web:web-0:127.0.0.1:20000"])
        wait_until(lambda: self.commands() is not None and
                   "event=agents.registered" in self.coord.log_text(), 30,
                   what="the fake agent registered")

    def write(self, alerts, extra=""):
        text = HEAD.format(http=self.http, agents=self.agents,
                           journal=self.journal)
        text += "".join(RULE.format(name=f"rule-{a}", alert=a)
                        for a in alerts) + extra
        with open(self.cfg, "w") as f:
            f.write(text)

    def commands(self):
        return [json.loads(line) for line in self.fake.log_text().splitlines()
                if line.startswith("{") and '"action"' in line]

    def post(self, name, n):
        return http_post(self.url + "/api/v1/alerts", alert(name, n),
                         {"Content-Type": "application/json"}).status

    def outcome(self, name, n):
        c = sqlite3.connect(self.journal)
        try:
            rows = c.execute(
                "SELECT outcome FROM alerts WHERE alertname = ? AND"
                " json_extract(labels, '$.n') = ?", (name, str(n)))
            out = [r[0] for r in rows]
        finally:
            c.close()
        return out[0] if out and out[0] != "pending" else None

    def hup(self, event):
        seen = self.coord.log_text().count(event)
        self.coord.signal(signal.SIGHUP)
        wait_until(lambda: self.coord.log_text().count(event) > seen, 30,
                   what=event)
        return [line for line in self.coord.log_text().splitlines()
                if event in line][-1]  # other lines may follow it


def run(tap, lab):
    env = Env(lab)
    tap.ok(env.post("Bar", 1) == 200, "an alert no rule matches is taken")
    out = wait_until(lambda: env.outcome("Bar", 1), 30, what="decided")
    tap.ok(out == "no-rule" and env.commands() == [],
           "it is decided no-rule, nothing is sent", (out, env.commands()))

    env.write(["Foo", "Bar"])
    line = env.hup("event=coordinator.reloaded")
    tap.ok("rules=2" in line and "was=1" in line,
           "SIGHUP loads the file again: 2 rules instead of 1", line)
    reloaded = env.coord.log_text().count("event=coordinator.reloaded")
    line = env.hup("event=coordinator.reload_unchanged")
    tap.ok("rules=2" in line and env.coord.log_text().count(
        "event=coordinator.reloaded") == reloaded,
           "a SIGHUP that finds the same file keeps the rules in force "
           "(no copy of them is loaded and kept)", line)
    tap.ok(env.post("Bar", 2) == 200, "the same alert is taken again")
    cmds = wait_until(lambda: [c for c in env.commands()
                               if c["action"] == "restart"], 30,
                      what="a restart command")
    tap.ok(len(cmds) == 1 and cmds[0]["instance"] == "web-0",
           "after the reload it restarts web-0", cmds)

    env.write(["Foo"], extra="  - name: broken\n    matchers: [unclosed\n")
    line = env.hup("event=coordinator.reload_failed")
    tap.ok("coordinator.yaml:" in line and "rules=2" in line,
           "a file that does not load is refused, naming file and line; "
           "the 2 rules stay", line)
    env.write(["Foo"], extra="runtime: kubernetes\n")
    line = env.hup("event=coordinator.reload_failed")
    tap.ok("runtime" in line, "a change of runtime is refused", line)
    tap.ok(env.coord.alive(), "the coordinator is still running")
    tap.ok(env.post("Bar", 3) == 200, "an alert is taken after the refusals")
    def restarts():
        return [c for c in env.commands() if c["action"] == "restart"]
    try:  # decided, and its command reached the agent
        wait_until(lambda: env.outcome("Bar", 3) and len(restarts()) >= 2,
                   30, what="the second restart")
    except Exception:  # noqa: BLE001 - reported below
        pass
    out = env.outcome("Bar", 3)
    restarts = restarts()
    tap.ok(out == "acted" and len(restarts) == 2,
           "the rules loaded before the refusals still act",
           (out, restarts))
    rc = env.lab.stop(env.coord)
    tap.ok(rc == 0, "SIGTERM still stops it cleanly", rc)


if __name__ == "__main__":
    lab_main(run, "reflex-reload-")
