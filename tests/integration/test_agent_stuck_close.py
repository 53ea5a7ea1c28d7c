#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The agent's stop when libnng cannot close a socket (libnng 1.5.2 can
block in nng_close for ever when a peer's message arrives as the socket
closes; the coordinator's side is test_stuck_close.py). The fault shim
makes every nng_close block while a file exists. With the agent
registered, its status socket answered and a coordinator's restart of an
instance that ignores SIGTERM in flight, a SIGTERM still ends the agent
with status 0: the restart is answered ("agent is shutting down"), the
instances are stopped, the command server's close is left behind after
2 s (cmd.close_stuck), the status server's and the coordinator link's are
not tried, and the next start (same status socket, same command address)
registers again and stops cleanly.

The close can also hang while the agent runs: its link takes a new
socket when an answer comes too late. With the coordinator frozen
(SIGSTOP) that close is left behind (link.close_stuck); the agent goes
on, and once a new coordinator takes the address, it registers there.
(With libnng's real hang a dropped connection is never dialed again, so
the agent then takes a fresh socket at each failed exchange; the shim
does not stop nng's redialing, so this run passes either way.)"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_get, http_json,  # noqa: E402
                       lab_main, reflex_binary, scaled, wait_until)

COORD = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
rules: []
"""

AGENT = """\
node: node-stuck
coordinator: tcp://127.0.0.1:{agents}
heartbeat_interval: 1s
listen: tcp://127.0.0.1:{cmd}
status_socket: {sock}
metrics_listen: 127.0.0.1:{metrics}
services:
  - name: web
    command: ["{svc}", "--port", "{{port}}", "--name", "{{instance}}"]
    instances: 1
    base_port: {web}
    stop_grace: 3s
    probe: {{ path: /healthz, period: 1s, timeout: 1s }}
  - name: stub
    command: ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
    instances: 1
    base_port: {stub}
    stop_grace: 1s
"""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def status(cfg):
    r = subprocess.run([reflex_binary("reflex-agent"), "status", "-c", cfg,
                        "--json"], capture_output=True, text=True,
                       timeout=scaled(10))
    return json.loads(r.stdout) if r.returncode == 0 else None


def pids(st):
    return [i["pid"] for s in (st or {}).get("services", [])
            for i in s["instances"] if i.get("pid")]


def registered(url):
    return [a for a in http_json(url + "/api/v1/agents")
            if a["node"] == "node-stuck" and a["state"] == "ready"]


def run(tap, lab):
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
        return
    http, agents, cmd = free_port(), free_port(), free_port()
    metrics = free_port()
    url = f"http://127.0.0.1:{http}"
    ccfg = lab.write_file("coordinator.yaml", COORD.format(
        http=http, agents=agents, journal=lab.path("journal.db")))
    acfg = lab.write_file("agent.yaml", AGENT.format(
        agents=agents, cmd=cmd, sock=lab.path("agent.sock"),
        metrics=metrics,
        svc=reflex_binary("reflex-demo-svc"), web=free_port(),
        stub=free_port()))
    hang = lab.path("hang-nng-close")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim, "REFLEX_HANG_NNG_CLOSE": hang,
           "ASAN_OPTIONS": (asan + ":" if asan else "") +
           "verify_asan_link_order=0"}
    cargv = [reflex_binary("reflex-coordinator"), "-c", ccfg]
    coord = lab.start("coordinator", cargv, ready_url=url + "/readyz",
                      ready_timeout=30)
    argv = [reflex_binary("reflex-agent"), "-c", acfg, "-v"]
    agent = lab.start("agent", argv, env=env)
    wait_until(lambda: registered(url), scaled(20), what="the agent")
    st = wait_until(lambda: len(pids(status(acfg))) == 2 and status(acfg),
                    scaled(20), what="both instances running")
    before = pids(st)
    tap.ok(len(before) == 2, "the agent answers on its status socket, "
           "with both instances running", before)

    # A restart the coordinator's side is waiting for: the instance
    # ignores SIGTERM, so it is in flight for its stop grace.
    send = subprocess.Popen(
        [reflex_binary("reflex-send"), f"tcp://127.0.0.1:{cmd}", "command",
         "restart", "stub", "stub-0", "--timeout-ms", "30000", "--wait",
         str(int(scaled(30) * 1000))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: "event=proc.restart instance=stub-0"
                   in agent.log_text(), scaled(20), what="the restart")
        open(hang, "w").close()
        agent.signal(signal.SIGTERM)
        rc = agent.wait(scaled(15))
        out = send.communicate(timeout=scaled(30))[0]
    finally:
        if send.poll() is None:
            send.kill()
            send.wait()
    log = agent.log_text()
    tap.ok(rc == 0, "with nng_close hanging, SIGTERM still ends the agent "
           "with status 0", (rc, log[-2000:]))
    tap.ok('"agent is shutting down"' in out and '"ok":false' in out,
           "the restart in flight is answered (the agent is shutting down)",
           out)
    tap.ok(not any(alive(p) for p in before), "its instances were stopped",
           before)
    tap.ok("event=cmd.close_stuck server=command" in log,
           "the command server's close is left behind, with a warning")
    tap.ok("event=cmd.close_stuck server=status" in log and
           "event=link.close_stuck" in log,
           "the status server's and the link's closes are not tried "
           "(left open, with a warning)")
    tap.ok("event=agent.stopped clean=true" in log and
           "ERROR: AddressSanitizer" not in log and
           "runtime error:" not in log,
           "the agent says it stopped cleanly (no sanitizer report)",
           log[-2000:])
    os.unlink(hang)
    if rc is None:
        lab.stop(agent)

    # The next start takes the same status socket and command address.
    again = lab.start("agent-again", argv, env=env)
    wait_until(lambda: registered(url) and status(acfg), scaled(20),
               what="the agent again")
    tap.ok(status(acfg) is not None, "the next start registers and answers "
           "on the same status socket")

    # Mid-run: the coordinator freezes, a heartbeat gets no answer, the
    # link's new socket replaces the old one, whose close hangs.
    coord.signal(signal.SIGSTOP)
    open(hang, "w").close()
    wait_until(lambda: "event=link.close_stuck" in again.log_text(),
               scaled(30), what="the link's close left behind")
    r = http_get(f"http://127.0.0.1:{metrics}/healthz")
    tap.ok(r.status == 503 and "nng" in r.text, "the agent's /healthz then "
           "answers 503 with the reason (a stuck libnng never cleans up or "
           "redials a dropped connection: a liveness probe restarts it)",
           (r.status, r.text))
    os.unlink(hang)
    coord.signal(signal.SIGKILL)
    coord.wait(scaled(10))
    lab.stop(coord)
    lab.start("coordinator-new", cargv, ready_url=url + "/readyz",
              ready_timeout=30)
    tap.ok(wait_until(lambda: registered(url), scaled(30),
                      what="the agent at the new coordinator"),
           "with its link's close left behind mid-run, the agent registers "
           "at a new coordinator")
    tap.ok(again.alive() and status(acfg) is not None,
           "and still answers on its status socket")
    tap.ok(lab.stop(again) == 0, "and stops cleanly")


if __name__ == "__main__":
    lab_main(run, "reflex-agent-stuck-close-")
