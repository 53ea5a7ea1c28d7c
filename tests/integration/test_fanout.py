#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One alert whose rule restarts a whole service reaches every agent that
hosts it: 300 simulated agents, one restart row each, all succeeded, with
the commands out side by side (at most the safety section's
max_concurrent at once) instead of one after another."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, wait_until)

AGENTS = 300
WINDOW = 32       # safety.max_concurrent below
DELAY_MS = 50     # each simulated agent answers after this long

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
agent_lost_after: 60s
safety:
  max_concurrent: {window}
  blast_radius_percent: 100
  global_max_actions: 10000
  service_max_actions: 10000
  storm_min_targets: 100000
limits:
  max_alerts: 100
rules:
  - name: restart-fleet
    matchers: ['alertname = "FleetConfigDrift"']
    cooldown: 10m
    verify: {{ interval: 500ms, timeout: 5s, resolved: false }}
    actions:
      - type: restart
        service: fleet
        timeout: 30s
"""


def body():
    return json.dumps({
        "version": "4", "receiver": "reflex", "status": "firing",
        "groupKey": "{}:{}", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am.invalid",
        "truncatedAlerts": 0,
        "alerts": [{"status": "firing",
                    "labels": {"alertname": "FleetConfigDrift",
                               "service": "fleet"},
                    "annotations": {}, "startsAt": "2026-12-04T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z"}]})


def max_in_flight(log):
    """Most restart commands out at once, from the coordinator's
    engine.dispatch and engine.action_done lines (in log order)."""
    out = peak = 0
    for line in log.splitlines():
        if "event=engine.dispatch" in line and "type=restart" in line:
            out += 1
            peak = max(peak, out)
        elif "event=engine.action_done" in line:
            out -= 1
    return peak


def run(tap):
    with Lab(prefix="reflex-fanout-") as lab:
        http, agents = free_port(), free_port()
        url = f"http://127.0.0.1:{http}"
        config = lab.write_file("coordinator.yaml", CONFIG.format(
            http=http, agents=agents, journal=lab.path("journal.db"),
            window=WINDOW))
        coord = lab.start("coordinator", [
            reflex_binary("reflex-coordinator"), "-c", config],
            ready_url=url + "/readyz")
        fake = lab.start("fake-agents", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0", "--count",
            str(AGENTS), "--heartbeat-ms", "2000", "--delay-ms",
            str(DELAY_MS), "--workload", "fleet:fleet-{i}:127.0.0.1:7000"])
        wait_until(lambda: len(http_json(url + "/api/v1/agents")) == AGENTS,
                   60, what=f"{AGENTS} fake agents registered")

        def restarts():
            return [a for a in http_json(url + "/api/v1/actions?limit=1000")
                    if a["type"] == "restart"]

        t0 = time.monotonic()
        r = http_post(url + "/api/v1/alerts", body(),
                      {"Content-Type": "application/json"})
        tap.ok(r.status == 200, "the webhook is accepted", r.text)
        wait_until(lambda: sum(a["state"] == "succeeded"
                               for a in restarts()) >= AGENTS,
                   60, interval=0.05, what="every restart succeeded")
        took = time.monotonic() - t0
        tap.diag(f"fan-out to {AGENTS} agents ({DELAY_MS} ms each, window "
                 f"{WINDOW}): {took:.2f} s until all succeeded")

        acts = restarts()
        nodes = sorted(a["node"] for a in acts)
        tap.ok(len(acts) == AGENTS and len(set(nodes)) == AGENTS,
               f"one restart row per agent ({AGENTS}), no agent twice",
               (len(acts), len(set(nodes))))
        tap.ok(all(a["state"] == "succeeded" and a["service"] == "fleet"
                   and a["attempt"] == 1 for a in acts),
               "every row succeeded at the first attempt",
               [a for a in acts if a["state"] != "succeeded"][:5])
        cmds = [json.loads(ln) for ln in fake.log_text().splitlines()
                if ln.startswith("{") and '"action":"restart"' in ln]
        tap.ok(len(cmds) == AGENTS and
               len({c["node"] for c in cmds}) == AGENTS,
               "every simulated agent got exactly one restart",
               len(cmds))
        ids = {a["id"] for a in acts}
        tap.ok(all(c["action_id"] in ids for c in cmds),
               "each command carries its journal row's id")
        # One after another would take AGENTS x DELAY_MS (15 s) at least.
        tap.ok(took < AGENTS * DELAY_MS / 1000 / 3,
               "the commands went out side by side", f"{took:.2f} s")
        log = coord.log_text()
        peak = max_in_flight(log)
        tap.ok(1 < peak <= WINDOW,
               f"never more than max_concurrent ({WINDOW}) out at once",
               peak)
        tap.ok(log.count("event=engine.action_done") >= AGENTS,
               "the log has an action_done line per target")
        wait_until(lambda: "event=engine.run_done" in coord.log_text(), 10,
                   what="run done")
        tap.ok("ok=1" in [ln for ln in coord.log_text().splitlines()
                          if "event=engine.run_done" in ln][0],
               "the run finished ok after the last target")

        text = http_get(url + "/metrics").text
        tap.ok(f'reflex_actions_total{{action="restart",outcome='
               f'"succeeded"}} {AGENTS}' in text,
               f"metrics count {AGENTS} succeeded restarts")

        def verify_rows():
            return [a for a in http_json(url + "/api/v1/actions?limit=1000")
                    if a["type"] == "verify"]
        wait_until(lambda: verify_rows(), 10, what="verification row")
        v = verify_rows()
        tap.ok(len(v) == 1 and v[0]["id"] > max(ids),
               "verification starts once, after every restart", v)


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
