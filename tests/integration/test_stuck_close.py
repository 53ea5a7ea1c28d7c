#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stop that libnng cannot finish: libnng 1.5.2 can block in nng_close
for ever when an agent's message arrives as the socket closes (seen about
one stop in ten with agents heartbeating; tests/unit/test_agents_stop.c
meets the real one). Here the fault shim makes every nng_close block
while a file exists. With an agent heartbeating and an alert acknowledged,
a SIGTERM still ends the coordinator with status 0 within its grace: the
agent socket's close is left behind after 2 s (agents.close_stuck), the
agent's command socket is not tried (left_open=1), the journal is closed
as usual (no write-ahead log left) and holds the alert, and the next
start works. The same hang while the coordinator runs (an agent moving to
a new address): /healthz then answers 503 and
reflex_agent_channel_stuck is 1, since a stuck libnng never cleans up
or redials a dropped connection and only a restart mends that."""

import json
import os
import signal
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_get, http_json,  # noqa: E402
                       http_post, labs_main, reflex_binary, scaled,
                       wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}" }} ]
"""

BODY = json.dumps({"version": "4", "status": "firing", "alerts": [{
    "status": "firing",
    "labels": {"alertname": "Unrelated", "instance": "web-0"},
    "startsAt": "2026-12-04T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z"}]}).encode()


def setup(tap, lab):
    """The coordinator under the fault shim and one simulated agent
    (node n-0) registered: (coord, url, argv, env, hang file, journal,
    agents' address, the agent's process), or None without the shim."""
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
        return None
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    journal = lab.path("journal.db")
    hang = lab.path("hang-nng-close")
    cfg = lab.write_file("coordinator.yaml", CONFIG.format(
        http=http, agents=agents, journal=journal))
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim, "REFLEX_HANG_NNG_CLOSE": hang,
           "ASAN_OPTIONS": (asan + ":" if asan else "") +
           "verify_asan_link_order=0"}
    argv = [reflex_binary("reflex-coordinator"), "-c", cfg]
    coord = lab.start("coordinator", argv, env=env, ready_url=url + "/readyz",
                      ready_timeout=30)
    agents_url = f"tcp://127.0.0.1:{agents}"
    first = start_agents(lab, "agents", agents_url)
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) >= 1,
               scaled(15), what="the agent")
    return coord, url, argv, env, hang, journal, agents_url, first


def start_agents(lab, name, agents_url):
    """A simulated agent, node n-0, on a port of its own."""
    return lab.start(name, [
        reflex_binary("fake-agents"), "--coordinator", agents_url,
        "--port", "0", "--node-prefix", "n-", "--heartbeat-ms", "100",
        "--workload", "web:web-0:127.0.0.1:20000"])


def metric(url, name):
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_stop_with_close_hanging(tap, lab):
    got = setup(tap, lab)
    if got is None:
        return
    coord, url, argv, env, hang, journal, _, _ = got
    status = http_post(url + "/api/v1/alerts", BODY,
                       {"Content-Type": "application/json"}, timeout=30).status
    tap.ok(status == 200, "the alert is acknowledged", status)

    open(hang, "w").close()
    coord.signal(signal.SIGTERM)
    rc = coord.wait(scaled(4))
    log = coord.log_text()
    tap.ok(rc == 0, "with nng_close hanging, SIGTERM still ends the "
           "coordinator with status 0 within its grace", rc)
    tap.ok("event=agents.close_stuck socket=agents" in log,
           "the agent socket's close is left behind, with a warning",
           log[-2000:])
    tap.ok("event=agents.stopped agents=1 " in log and "left_open=1" in log,
           "the agent's command socket is not tried once libnng is stuck "
           "(agents.stopped left_open=1)")
    os.unlink(hang)
    if rc is None:
        lab.stop(coord)
    # SQLite removes the write-ahead log when its last connection closes.
    tap.ok(not os.path.exists(journal + "-wal"), "the journal was closed "
           "(no write-ahead log left)")
    c = sqlite3.connect(journal)
    try:
        rows = c.execute("select count(*) from alerts_in where alertname ="
                         " 'Unrelated'").fetchone()[0]
        check = c.execute("pragma integrity_check").fetchone()[0]
    finally:
        c.close()
    tap.ok(rows == 1 and check == "ok", "the journal holds the acknowledged "
           "alert and passes its integrity check", (rows, check))
    coord = lab.start("coordinator-again", argv, env=env,
                      ready_url=url + "/readyz", ready_timeout=30)
    tap.ok(lab.stop(coord) == 0, "the next start works and stops cleanly")


def test_stuck_while_running(tap, lab):
    """The hang while the coordinator runs: the agent moves (registers at
    a new address), the old command socket's close hangs on the worker.
    After 2 s it is left behind; from then on /healthz answers 503 (a
    liveness probe restarts the process: a stuck libnng never cleans up
    or redials a dropped connection) and reflex_agent_channel_stuck is
    1; the agent stays registered, and SIGTERM still exits 0."""
    got = setup(tap, lab)
    if got is None:
        return
    coord, url, _, _, hang, _, agents_url, first = got
    tap.ok(http_get(url + "/healthz").status == 200 and
           metric(url, "reflex_agent_channel_stuck") == 0,
           "alive, channel not stuck, before the hang")
    open(hang, "w").close()
    lab.stop(first)
    moved = start_agents(lab, "agents-moved", agents_url)
    found = wait_until(lambda: "event=agents.close_stuck socket=command"
                       in coord.log_text(), scaled(15),
                       what="the moved agent's old socket left behind")
    tap.ok(found, "the old command socket's close is left behind, with a "
           "warning")
    r = http_get(url + "/healthz")
    tap.ok(r.status == 503 and "libnng" in r.text,
           "/healthz then answers 503 with the reason", (r.status, r.text))
    tap.ok(metric(url, "reflex_agent_channel_stuck") == 1,
           "reflex_agent_channel_stuck is 1")
    tap.ok(len(http_json(url + "/api/v1/agents")) == 1,
           "the agent stays registered")
    lab.stop(moved)
    coord.signal(signal.SIGTERM)
    rc = coord.wait(scaled(4))
    tap.ok(rc == 0, "SIGTERM still ends the coordinator with status 0", rc)
    os.unlink(hang)


if __name__ == "__main__":
    labs_main((test_stop_with_close_hanging, test_stuck_while_running))
