#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The real reflex-agent on a sealed coordinator channel (issue 6).

On 127.0.0.1 only, through tests/lib/reflexlab.py. The real
reflex-coordinator runs with agent_secret_file; real reflex-agents run
with coordinator_secret_file (the same secret, a wrong one, or none),
supervising tests/lib/agent_test_svc.py. Checked:
  - the agent with the secret registers; an alert posted to the
    coordinator's webhook restarts the instance through a sealed
    command, and the coordinator's sealed "check" verifies it;
  - agents with a wrong secret or none are not registered, and say why;
  - commands sent to the agent without a MAC, with a wrong one, replayed
    or stale are refused ("unauthenticated" / "replayed", the error
    itself sealed), logged and counted, and restart nothing;
  - the status socket stays unsealed (reflex-agent status works);
  - --check-config refuses a secret file others can read.
Prints TAP; every process started here is stopped at the end.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, repo_root, wait_until)

WAIT = 20.0  # bound on each wait (seconds)

COORD = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
agent_secret_file: {secret}
journal: {journal}
safety: {{ blast_radius_percent: 100 }}
rules:
  - name: restart-down
    matchers: ['alertname = "Down"']
    verify: {{ health: true, resolved: false, interval: 300ms,
              timeout: 15s }}
    actions: [ {{ type: restart, service: web,
                 instance: "{{{{ instance }}}}" }} ]
"""

AGENT = """\
node: {node}
coordinator: tcp://127.0.0.1:{agents}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
{secret_line}{metrics_line}services:
  - name: web
    command: ["{py}", "{svc}", "--port", "{{port}}", "--name",
              "{{instance}}"]
    base_port: {port}
    stop_grace: 2s
    probe: {{ path: /healthz, period: 300ms, timeout: 250ms,
             initial_delay: 300ms }}
"""


def secret_file(lab, name, value, mode=0o600):
    p = lab.write_file(name, value)
    os.chmod(p, mode)
    return p


def status(sock):
    r = subprocess.run([reflex_binary("reflex-agent"), "status", "-s", sock,
                        "--json"], capture_output=True, text=True,
                       timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def inst(st, name):
    for s in st["services"]:
        for i in s["instances"]:
            if i["name"] == name:
                return i
    return None


def send(url, *args):
    r = subprocess.run([reflex_binary("reflex-send"), url] + list(args) +
                       ["--wait", "5000"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        return [{"transport_error": r.stderr.strip(), "rc": r.returncode}]
    return [json.loads(line) for line in r.stdout.splitlines() if line]


def start_agent(lab, node, agents, secret=None, metrics=None):
    listen, port = free_port(), free_port()
    sock = lab.path(f"{node}.sock")
    cfg = lab.write_file(f"{node}.yaml", AGENT.format(
        node=node, agents=agents, listen=listen, sock=sock,
        secret_line=f"coordinator_secret_file: {secret}\n" if secret
        else "", metrics_line=f"metrics_listen: 127.0.0.1:{metrics}\n"
        if metrics else "", py=sys.executable,
        svc=os.path.join(repo_root(), "tests", "lib", "agent_test_svc.py"),
        port=port))
    p = lab.start(node, [reflex_binary("reflex-agent"), "-c", cfg])
    return p, f"tcp://127.0.0.1:{listen}", sock, cfg


def agents_of(url):
    return sorted(a["node"] for a in http_json(url + "/api/v1/agents"))


def run(tap, lab):
    good = secret_file(lab, "secret", "correct horse battery staple\n")
    wrong = secret_file(lab, "wrong", "incorrect mule cell paperclip\n")
    http, agents, metrics = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cfg = lab.write_file("coord.yaml", COORD.format(
        http=http, agents=agents, secret=good, journal=lab.path("j.db")))
    lab.start("coordinator", [reflex_binary("reflex-coordinator"), "-c",
                              cfg], ready_url=url + "/readyz")

    ag, cmd_url, sock, _ = start_agent(lab, "node-a", agents, good, metrics)
    wait_until(lambda: agents_of(url) == ["node-a"], WAIT,
               what="node-a registered")
    # The coordinator lists the agent when it handles the registration;
    # the agent counts itself registered when the reply reaches it, later
    # (seconds later under valgrind).
    st = wait_until(lambda: (lambda s: s if s and inst(s, "web-0")["ready"]
                             and s["coordinator"]["registered"]
                             else None)(status(sock)), WAIT,
                    what="web-0 ready and the agent registered")
    tap.ok(st["coordinator"]["registered"] and st["stats"]["sealed"],
           "the agent with the secret registers over the sealed channel "
           "(its status socket stays unsealed)", st["coordinator"])
    wl = http_json(url + "/api/v1/agents")[0].get("workloads", [])
    tap.ok(any(w.get("instance") == "web-0" for w in wl),
           "the coordinator knows its workloads", wl)
    pid0 = inst(st, "web-0")["pid"]

    # A restart from an alert: sealed command, sealed reply, sealed check.
    r = http_post(url + "/api/v1/alerts", json.dumps({
        "version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "Down",
                                           "instance": "web-0"},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]}).encode(),
        headers={"Content-Type": "application/json"})
    tap.ok(r.status == 200, "the webhook takes the alert", r.status)
    acts = wait_until(lambda: [a for a in http_json(url + "/api/v1/actions")
                               if a.get("state") in ("verified", "failed",
                                                     "timeout")], WAIT,
                      what="the restart and its verification")
    st = status(sock)
    pid1 = inst(st, "web-0")["pid"]
    tap.ok(acts[0]["state"] == "verified" and pid1 and pid1 != pid0,
           "an alert restarts the instance through the sealed channel and "
           "the sealed check verifies it", {"action": acts[0],
                                           "pids": [pid0, pid1]})
    restarts = inst(st, "web-0")["restarts"]

    # Forged, replayed and stale commands.
    a = send(cmd_url, "command", "restart", "web", "web-0")[0]
    tap.ok(a.get("type") == "error" and a.get("code") == "unauthenticated"
           and a.get("mac") == "unchecked",
           "a command without a MAC is refused as unauthenticated, with a "
           "sealed error", a)
    a = send(cmd_url, "command", "restart", "web", "web-0", "--secret",
             wrong)[0]
    tap.ok(a.get("type") == "error" and a.get("code") == "unauthenticated"
           and a.get("mac") == "bad",
           "a command sealed with a wrong secret is refused (and its "
           "answer does not verify under that secret)", a)
    two = send(cmd_url, "command", "check", "web", "web-0", "--secret",
               good, "--twice")
    tap.ok(len(two) == 2 and two[0].get("type") == "reply" and
           two[0].get("mac") == "ok" and two[1].get("type") == "error" and
           two[1].get("code") == "replayed" and two[1].get("mac") == "ok",
           "the same sealed frame twice: the first is answered (sealed), "
           "the copy is refused as replayed", two)
    a = send(cmd_url, "command", "restart", "web", "web-0", "--secret",
             good, "--skew-ms", "120000")[0]
    tap.ok(a.get("type") == "error" and a.get("code") == "replayed" and
           "stale" in a.get("message", ""),
           "a sealed command stamped two minutes ago is refused as stale",
           a)
    time.sleep(1.0)
    st = status(sock)
    i = inst(st, "web-0")
    tap.ok(i["pid"] == pid1 and i["restarts"] == restarts,
           "none of the refused commands restarted anything",
           {"pid": [pid1, i["pid"]], "restarts": [restarts,
                                                  i["restarts"]]})
    tap.ok(st["stats"]["unauthenticated"] == 4 and
           st["stats"]["bad_frames"] == 0,
           "the refusals are counted apart from bad frames", st["stats"])
    m = http_get(f"http://127.0.0.1:{metrics}/metrics").text
    tap.ok("reflex_agent_unauthenticated_total 4" in m,
           "and exposed in /metrics",
           [l for l in m.splitlines() if "unauth" in l])
    log = ag.log_text()
    tap.ok(log.count("cmd.unauthenticated") == 4 and
           "message authentication failed" in log and "replayed message"
           in log and "stale message" in log,
           "each refusal is logged with its reason",
           [l for l in log.splitlines() if "unauth" in l])
    a = send(cmd_url, "command", "check", "web", "web-0", "--secret",
             good)[0]
    tap.ok(a.get("type") == "reply" and a.get("ok") is True and
           a.get("mac") == "ok",
           "a properly sealed command is still obeyed", a)

    # Agents without the secret.
    bad, _, bsock, _ = start_agent(lab, "node-b", agents, wrong)
    plain, _, psock, _ = start_agent(lab, "node-c", agents)
    wait_until(lambda: all(status(s) for s in (bsock, psock)), WAIT,
               what="node-b and node-c answer status")
    time.sleep(2.0)
    tap.ok(agents_of(url) == ["node-a"],
           "agents with a wrong secret or none are not registered",
           agents_of(url))
    sb, sp = status(bsock), status(psock)
    tap.ok(not sb["coordinator"]["registered"] and "authentication" in
           (sb["coordinator"]["last_error"] or ""),
           "the agent with the wrong secret says why", sb["coordinator"])
    tap.ok(not sp["coordinator"]["registered"] and
           sp["coordinator"]["last_error"],
           "the agent without a secret is not registered either",
           sp["coordinator"])
    tap.ok("message authentication failed" in
           lab.procs[0].log_text(), "the coordinator logs the refusals")

    loose = secret_file(lab, "loose", "correct horse battery staple\n",
                        0o644)
    _, _, _, lcfg = start_agent(lab, "node-d", agents, loose)
    r = subprocess.run([reflex_binary("reflex-agent"), "-c", lcfg,
                        "--check-config"], capture_output=True, text=True,
                       timeout=20)
    tap.ok(r.returncode == 1 and "readable only by its owner" in r.stderr,
           "--check-config refuses a secret file others can read",
           r.stderr)
    ld = lab.procs[-1]
    rc = ld.wait(10)
    tap.ok(rc == 1 and "readable only by its owner" in ld.log_text(),
           "and the agent does not start with it", ld.log_text(tail=5))
    rc = lab.stop(ag)
    tap.ok(rc == 0 and "Sanitizer" not in ag.log_text(),
           "the sealed agent stops cleanly", ag.log_text(tail=10))


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-agent-auth-") as lab:
            try:
                run(tap, lab)
            except Exception:
                lab.mark_failed()
                raise
    except Exception as e:  # noqa: BLE001 - one failed test point
        import traceback
        tap.ok(False, f"ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
