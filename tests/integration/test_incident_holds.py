#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An incident is not freed while a plan awaiting approval still points to
it. A plan waits (approval_timeout 2h), the alert resolves and fires
again, so the reopened incident holds a second plan; that one is
rejected, the alert resolves again. Three hours later (CLOCK_MONOTONIC
skipped ahead by the fault shim, tests/tools/fault_shim.c) the engine's
tick prunes incidents closed for an hour and expires the first plan.
(The incident's single `busy` flag was cleared by the rejection while the
first plan still held it, so it was pruned and the expiry wrote to freed
memory: a heap-use-after-free under AddressSanitizer.)"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_get, http_json, http_post,  # noqa: E402
                       lab_main, reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
approval_timeout: 2h
auth: {{ operator_token_file: {tok} }}
services:
  - {{ name: web, automation: approval }}
safety: {{ blast_radius_percent: 100, service_max_actions: 100 }}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    cooldown: 0s
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}"
                }} ]
"""

SKIP_S = 3 * 3600  # past the hour a closed incident is kept, and the 2h


def body(name, status):
    return json.dumps({"version": "4", "status": status, "alerts": [{
        "status": status, "labels": {"alertname": name,
                                     "instance": "web-0"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": ("0001-01-01T00:00:00Z" if status == "firing"
                   else "2026-12-04T10:05:00Z")}]}).encode()


def run(tap, lab):
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
        return
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    skip = lab.path("clock-skip")
    tok = lab.write_file("op.token", "tok")
    cfg = lab.write_file("coordinator.yaml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("journal.db"), tok=tok))
    asan = os.environ.get("ASAN_OPTIONS", "")
    coord = lab.start("coordinator", [
        reflex_binary("reflex-coordinator"), "-c", cfg], env={
        "LD_PRELOAD": shim, "REFLEX_CLOCK_SKIP": skip,
        "ASAN_OPTIONS": (asan + ":" if asan else "") +
        "verify_asan_link_order=0"},
        ready_url=url + "/readyz", ready_timeout=30)
    lab.start("fake-agents", [
        reflex_binary("fake-agents"), "--coordinator",
        f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms", "200",
        "--workload", "web:web-0:127.0.0.1:20000"])
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 1, 30,
               what="the fake agent registered")
    json_hdr = {"Content-Type": "application/json"}
    op_hdr = {"Content-Type": "application/json",
              "Authorization": "Bearer tok"}

    def rows(state):
        return sorted((a for a in http_json(url + "/api/v1/actions?limit=100")
                       if a["state"] == state), key=lambda a: a["id"])

    def decisions(result):
        return sum(1 for x in coord.log_text().splitlines()
                   if "event=engine.decision" in x and
                   f"result={result}" in x)

    def post(status, name="WebDown"):
        return http_post(url + "/api/v1/alerts", body(name, status),
                         json_hdr).status

    ok = post("firing") == 200
    plans = wait_until(lambda: rows("awaiting-approval"), 30,
                       what="the first plan")
    first = plans[0]["id"]
    ok = post("resolved") == 200 and ok
    wait_until(lambda: decisions("resolved") >= 1, 30, what="resolved")
    ok = post("firing") == 200 and ok
    plans = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
        rows("awaiting-approval")), 30, what="a second plan")
    tap.ok(ok and plans[0]["id"] == first,
           "a plan waits; after a resolve and a new firing, the reopened "
           "incident holds a second one", plans)
    second = plans[1]["id"]
    r = http_post(url + "/api/v1/reject",
                  json.dumps({"id": second}).encode(), op_hdr)
    wait_until(lambda: [a for a in rows("rejected") if a["id"] == second],
               30, what="the second plan rejected")
    tap.ok(r.status == 202 and post("resolved") == 200,
           "the second plan is rejected and the alert resolves again")
    wait_until(lambda: decisions("resolved") >= 2, 30, what="resolved")

    # Hours pass: a new event wakes the engine, whose tick then prunes
    # the incidents closed for an hour and expires the first plan.
    with open(skip, "w") as f:
        f.write(str(SKIP_S))
    tap.ok(post("firing", name="Unrelated") == 200,
           "an unrelated alert wakes the engine three hours later")
    wait_until(lambda: decisions("no-rule") >= 1, 30, what="its decision")
    expired = wait_until(
        lambda: [a for a in rows("expired") if a["id"] == first], 30,
        what="the first plan expired")
    tap.ok(expired[0]["id"] == first,
           "the first plan expires: its incident was kept for it", expired)
    tap.ok(coord.alive() and http_get(url + "/healthz").status == 200,
           "the coordinator keeps serving")
    os.unlink(skip)


if __name__ == "__main__":
    lab_main(run, "reflex-incident-holds-")
