#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A verification is not decided while one of its health checks is still
out: the resolved notification arrives while the agent takes 1.5 s to
answer a check (fake-agents --delay-ms), and the verification ends
`verified` only after that answer, with the coordinator still serving.
(The engine used to decide at once and free the verification, and the
late answer's callback then used it: a crash on an nng thread, seen in
test_e2e, and a heap-use-after-free under AddressSanitizer.)"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_get, http_json, http_post,  # noqa: E402
                       lab_main, reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    verify: {{ interval: 2s, timeout: 60s, health: true, resolved: true }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}",
                  retries: 0 }} ]
"""

DELAY_MS = 1500


def body(status):
    return json.dumps({"version": "4", "status": status, "alerts": [{
        "status": status, "labels": {"alertname": "WebDown",
                                     "instance": "web-0"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": ("0001-01-01T00:00:00Z" if status == "firing"
                   else "2026-12-04T10:05:00Z")}]}).encode()


def run(tap, lab):
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cfg = lab.write_file("coordinator.yaml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("journal.db")))
    coord = lab.start("coordinator", [
        reflex_binary("reflex-coordinator"), "-c", cfg],
        ready_url=url + "/readyz")
    fake = lab.start("fake-agents", [
        reflex_binary("fake-agents"), "--coordinator",
        f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms", "200",
        "--delay-ms", str(DELAY_MS), "--workload",
        "web:web-0:127.0.0.1:20000"])
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 1, 30,
               what="the fake agent registered")

    def checks():
        return [json.loads(line) for line in fake.log_text().splitlines()
                if line.startswith("{") and '"action":"check"' in line]

    r = http_post(url + "/api/v1/alerts", body("firing"),
                  {"Content-Type": "application/json"})
    tap.ok(r.status == 200, "the firing alert is taken")
    # The first check answered healthy; the second is out (its answer
    # takes 1.5 s) when the resolved notification comes.
    wait_until(lambda: len(checks()) >= 2, 60, what="a second check sent")
    r = http_post(url + "/api/v1/alerts", body("resolved"),
                  {"Content-Type": "application/json"})
    tap.ok(r.status == 200, "the resolved notification is taken while a "
           "check is out")
    log = wait_until(lambda: (lambda t: t if "result=verified" in t
                              else None)(coord.log_text()), 60,
                     what="the verification decided")
    lines = log.splitlines()
    verified = next(i for i, x in enumerate(lines) if "result=verified" in x)
    resolved = next((i for i, x in enumerate(lines)
                     if "event=engine.decision" in x and "result=resolved"
                     in x), None)
    tap.ok(resolved is not None and resolved < verified,
           "it is verified after the resolved notification",
           (resolved, verified))
    # The late answer came 1.5 s after its check left; by now its
    # callback has run, and the coordinator must be alive and serving.
    time.sleep(DELAY_MS / 1000 + 1.0)
    tap.ok(coord.alive() and http_get(url + "/healthz").status == 200,
           "the coordinator keeps serving after every answer came back")


if __name__ == "__main__":
    lab_main(run, "reflex-verify-pending-")
