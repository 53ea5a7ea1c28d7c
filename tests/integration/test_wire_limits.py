#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Configured (non-default) limits of issue 6, on 127.0.0.1 only: a real
coordinator and agent run with wire_limits: below the compiled-in ones
(each side its own values), the coordinator with limits.max_name_len and
limits.max_json_depth set, and both binaries with --config-max-size /
REFLEX_CONFIG_MAX_SIZE.

For each limit a frame or body exactly at the configured limit is decoded
(and answered as such), one byte, level or entry past it is answered with
an error that names the limit and its config key, is counted
(reflex_agent_bad_frames_total on either side's /metrics, the webhook's
4xx count) and is not executed: every refused input would restart
demo-a-0, and afterwards it has the same pid and restart count, no action
is journaled and no refused registration is listed. Last, a valid alert
still restarts demo-a-0 through the whole path under these limits.

Frames travel as raw SP/nng over TCP (the helpers of test_hostile.py).
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from reflexlab import (Lab, LabTimeout, Tap, free_port,  # noqa: E402
                       http_get, http_json, http_post, reflex_binary,
                       wait_until)
from test_hostile import (SVC, SPClosed, SPReq, alert, frame,  # noqa: E402
                          mp, notification, padded, unpack)

COORD_CONF = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
agent_lost_after: 30s
journal_sync_full: false
limits:
  max_name_len: 40
  max_json_depth: 12
wire_limits:
  max_frame: 4KiB
  max_depth: 6
  max_workloads: 3
  max_name_len: 40
  max_addr_len: 60
  max_text_len: 300
safety:
  blast_radius_percent: 100
rules:
  - name: restart-me
    matchers: ['alertname = "RestartMe"']
    cooldown: 1s
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: "{{{{ service }}}}"
        instance: "{{{{ instance }}}}"
        timeout: 20s
"""

AGENT_CONF = """\
node: node-w
coordinator: tcp://127.0.0.1:{agents}
listen: tcp://127.0.0.1:{cmd}
status_socket: {sock}
metrics_listen: 127.0.0.1:{metrics}
runtime: process
heartbeat_interval: 500ms
wire_limits:
  max_frame: 3KiB
  max_depth: 5
  max_name_len: 36
  max_text_len: 400
services:
  - name: demo-a
    command: ["{py}", "{svc}", "--port", "{{port}}", "--name", "{{instance}}"]
    base_port: {port}
    stop_grace: 2s
    probe:
      path: /healthz
      period: 500ms
      timeout: 400ms
      failure_threshold: 3
      initial_delay: 500ms
"""


class Env:
    def __init__(self, lab):
        self.lab = lab
        self.http, self.agents = free_port(), free_port()
        self.cmd, self.metrics = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.journal = lab.path("journal.db")
        self.cconf = lab.write_file("coordinator.yaml", COORD_CONF.format(
            http=self.http, agents=self.agents, journal=self.journal))
        self.aconf = lab.write_file("agent.yaml", AGENT_CONF.format(
            agents=self.agents, cmd=self.cmd, sock=lab.path("agent.sock"),
            metrics=self.metrics, py=sys.executable, svc=SVC,
            port=free_port()))
        self.coord = lab.start("coordinator", [
            reflex_binary("reflex-coordinator"), "-c", self.cconf],
            ready_url=self.url + "/readyz")
        self.agent = lab.start("agent", [reflex_binary("reflex-agent"),
                                         "-c", self.aconf])
        wait_until(lambda: "node-w" in self.nodes(), 15,
                   what="agent registered")
        wait_until(lambda: self.instance()["state"] == "running" and
                   self.instance()["probe"]["ok"], 20,
                   what="demo-a-0 running and healthy")

    def nodes(self):
        return [a["node"] for a in http_json(self.url + "/api/v1/agents")]

    def instance(self):
        r = subprocess.run([reflex_binary("reflex-agent"), "status", "-c",
                            self.aconf, "--json"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        for s in json.loads(r.stdout)["services"]:
            for i in s["instances"]:
                if i["name"] == "demo-a-0":
                    return i
        raise KeyError("demo-a-0")

    def actions(self):
        return http_json(self.url + "/api/v1/actions?limit=1000")


def metric(url, name):
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def ask(port, payload):
    """One request on a fresh connection; the decoded reply, or the
    exception's repr when the peer dropped it."""
    conn = SPReq(port)
    try:
        return unpack(conn.request(payload))
    except (OSError, SPClosed) as e:
        return repr(e)
    finally:
        conn.close()


def command(action, service, instance, reason="limits"):
    return {"v": 1, "type": "command", "id": 5, "body": {
        "action_id": 9, "action": action, "service": service,
        "instance": instance, "reason": reason, "timeout_ms": 20000}}


def nested(m, depth):
    """m encoded with an unknown top-level key holding `depth` nested
    arrays: the frame nests 1 + depth levels."""
    m = dict(m)
    m["pad"] = None
    f = mp(m)
    return f[:-1] + b"\x91" * depth + b"\xc0"


def error_is(r, code, text):
    return (isinstance(r, dict) and r.get("type") == "error" and
            r["body"]["code"] == code and text in r["body"]["message"])


def replied(r):
    return isinstance(r, dict) and r.get("type") == "reply"


def check_agent(tap, env):
    murl = f"http://127.0.0.1:{env.metrics}"
    bad0 = metric(murl, "reflex_agent_bad_frames_total")
    restart = command("restart", "demo-a", "demo-a-0", "over a limit")
    clear = command("clear_cache", "demo-a", "")
    cases = []
    # frame size: 3 KiB
    at = ask(env.cmd, padded(clear, 3072))
    over = ask(env.cmd, padded(restart, 3073))
    cases.append(("frame size 3KiB", replied(at) and at["body"]["ok"],
                  error_is(over, "too_large", "frame of 3073 bytes exceeds "
                           "the limit of 3072 (wire_limits.max_frame)"),
                  at, over))
    # nesting depth: 5
    at = ask(env.cmd, nested(clear, 4))
    over = ask(env.cmd, nested(restart, 5))
    cases.append(("nesting depth 5", replied(at) and at["body"]["ok"],
                  error_is(over, "bad_frame", "nests deeper than 5 levels "
                           "(wire_limits.max_depth)"), at, over))
    # text: 400 bytes
    at = ask(env.cmd, mp(command("clear_cache", "demo-a", "", "r" * 400)))
    over = ask(env.cmd, mp(command("restart", "demo-a", "demo-a-0",
                                   "r" * 401)))
    cases.append(("text length 400", replied(at) and at["body"]["ok"],
                  error_is(over, "bad_field", "body.reason: 401 bytes, "
                           "limit 400 (wire_limits.max_text_len)"),
                  at, over))
    # name: 36 bytes (no service has such a name: -ENOENT once decoded)
    at = ask(env.cmd, mp(command("restart", "d" * 36, "")))
    over = ask(env.cmd, mp(command("restart", "d" * 37, "")))
    cases.append(("name length 36", replied(at) and
                  at["body"]["code"] == -2,
                  error_is(over, "bad_field", "body.service: 37 bytes, "
                           "limit 36 (wire_limits.max_name_len)"),
                  at, over))
    for title, at_ok, over_ok, at, over in cases:
        tap.ok(at_ok and over_ok, f"agent {title}: at the limit decoded "
               "and answered, one past it refused with an error naming the "
               "limit", (str(at)[:300], str(over)[:300]))
    # The agent publishes /metrics once per main-loop turn (at least
    # every probe period): wait for the count, then check it exactly.
    try:
        wait_until(lambda: metric(murl, "reflex_agent_bad_frames_total") -
                   bad0 >= len(cases), 10, what="the refusals counted")
    except LabTimeout:
        pass
    bad = metric(murl, "reflex_agent_bad_frames_total") - bad0
    tap.ok(bad == len(cases), f"the agent counted {bad:.0f} bad frames on "
           f"/metrics, one per refusal ({len(cases)})")


def register(node, addr, workloads):
    return frame("register", {"node": node, "addr": addr,
                              "runtime": "process", "workloads": workloads})


def wls(n, addr="127.0.0.1:9"):
    return [{"service": "ghost-svc", "instance": f"g-{i}", "addr": addr,
             "healthy": True} for i in range(n)]


def check_coordinator(tap, env, lab):
    bad0 = metric(env.url, "reflex_agent_bad_frames_total") or 0
    # Dialed by the coordinator for registrations, never listened on.
    ipc = "ipc://" + lab.path("g.ipc")
    if len(ipc) > 60:
        ipc = "ipc://reflex-wire-none.ipc"  # relative: still nobody there
    hb = {"v": 1, "type": "heartbeat", "id": 7,
          "body": {"node": "ghost-size", "seq": 1, "unhealthy": 0}}
    cases = []
    # frame size: 4 KiB (an unknown node's heartbeat: -ENOENT)
    at = ask(env.agents, padded(hb, 4096))
    over = ask(env.agents, padded(hb, 4097))
    cases.append(("frame size 4KiB", replied(at) and
                  at["body"]["code"] == -2,
                  error_is(over, "too_large", "frame of 4097 bytes exceeds "
                           "the limit of 4096 (wire_limits.max_frame)"),
                  at, over, None))
    # nesting depth: 6
    at = ask(env.agents, nested(hb, 5))
    over = ask(env.agents, nested(hb, 6))
    cases.append(("nesting depth 6", replied(at),
                  error_is(over, "bad_frame", "nests deeper than 6 levels "
                           "(wire_limits.max_depth)"), at, over, None))
    # workloads per registration: 3
    at = ask(env.agents, register("lim-wl-3", ipc, wls(3)))
    over = ask(env.agents, register("lim-wl-4", ipc, wls(4)))
    cases.append(("workloads 3", replied(at) and at["body"]["ok"],
                  error_is(over, "bad_field", "body.workloads: 4 entries, "
                           "limit 3 (wire_limits.max_workloads)"),
                  at, over, "lim-wl-4"))
    # names: 40 bytes
    at = ask(env.agents, register("n" * 40, ipc, wls(1)))
    over = ask(env.agents, register("m" * 41, ipc, wls(1)))
    cases.append(("name length 40", replied(at) and at["body"]["ok"],
                  error_is(over, "bad_field", "body.node: 41 bytes, limit "
                           "40 (wire_limits.max_name_len)"),
                  at, over, "m" * 41))
    # addresses: 60 bytes (a workload's addr is only a label: never dialed)
    a60 = "127.0.0.1:9/" + "a" * 48
    at = ask(env.agents, register("lim-addr-ok", ipc, wls(1, a60)))
    over = ask(env.agents, register("lim-addr-over", ipc, wls(1, a60 + "a")))
    cases.append(("address length 60", replied(at) and at["body"]["ok"],
                  error_is(over, "bad_field", "body.workloads[0].addr: 61 "
                           "bytes, limit 60 (wire_limits.max_addr_len)"),
                  at, over, "lim-addr-over"))
    # text: 300 bytes, in a permit. At the limit from a ghost node
    # (refused as a permit, but decoded); over it the real node asks to
    # restart demo-a-0.
    permit = {"node": "ghost-permit", "service": "demo-a",
              "instance": "demo-a-0", "reason": "p" * 300}
    at = ask(env.agents, frame("permit", permit))
    over = ask(env.agents, frame("permit", dict(permit, node="node-w",
                                                reason="p" * 301)))
    cases.append(("text length 300", replied(at),
                  error_is(over, "bad_field", "body.reason: 301 bytes, "
                           "limit 300 (wire_limits.max_text_len)"),
                  at, over, None))
    nodes = env.nodes()
    for title, at_ok, over_ok, at, over, node in cases:
        tap.ok(at_ok and over_ok and (node is None or node not in nodes),
               f"coordinator {title}: at the limit decoded and answered, "
               "one past it refused with an error naming the limit" +
               (" and not registered" if node else ""),
               (str(at)[:300], str(over)[:300], nodes))
    tap.ok("lim-wl-3" in nodes and "n" * 40 in nodes and
           "lim-addr-ok" in nodes, "the registrations at the limits are "
           "listed", nodes)
    bad = (metric(env.url, "reflex_agent_bad_frames_total") or 0) - bad0
    tap.ok(bad == len(cases), f"the coordinator counted {bad:.0f} bad frames "
           f"on /metrics, one per refusal ({len(cases)})")


def check_webhook(tap, env):
    def send(labels, depth=0):
        body = json.dumps(notification([alert(labels)]))
        if depth:
            body = body[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
        return http_post(env.url + "/api/v1/alerts", body.encode(),
                         {"Content-Type": "application/json"})

    def four_xx():
        for line in http_get(env.url + "/metrics").text.splitlines():
            if line.startswith('reflex_webhook_requests_total{code="4xx"}'):
                return float(line.split()[1])
        return 0

    target = {"alertname": "RestartMe", "service": "demo-a",
              "instance": "demo-a-0"}
    ok_labels = {"alertname": "LimitOK", "service": "ghost"}
    n0 = four_xx()
    at = send(dict(ok_labels, **{"n" * 40: "v"}))
    over = send(dict(target, **{"n" * 41: "v"}))
    tap.ok(at.status == 200 and over.status == 413 and
           "alerts[0].labels: name" in over.text and
           "is 41 bytes, over the limit of 40" in over.text,
           "webhook label name length 40 (limits.max_name_len): 40 bytes "
           "accepted, 41 refused with 413 naming the label and the limit",
           (at.status, at.text, over.status, over.text))
    # The envelope object is level 1: "x" holds depth - 1 more.
    at = send(ok_labels, depth=11)
    over = send(target, depth=12)
    tap.ok(at.status == 200 and over.status == 400 and
           "JSON nests deeper than 12 levels" in over.text and
           "limits.max_json_depth" in over.text,
           "webhook JSON nesting depth 12 (limits.max_json_depth): 12 "
           "levels accepted, 13 refused with 400 saying so",
           (at.status, over.status, over.text))
    n = four_xx() - n0
    tap.ok(n == 2, f"both refusals counted as 4xx on /metrics ({n:.0f})")
    # simulate judges a saved body like the server.
    out = []
    for depth in (11, 12):
        body = json.dumps(notification([alert(ok_labels)]))
        body = body[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
        p = env.lab.write_file(f"deep-{depth}.json", body)
        r = subprocess.run([reflex_binary("reflex-coordinator"), "-c",
                            env.cconf, "simulate", p], capture_output=True,
                           text=True, timeout=30)
        out.append((r.returncode, r.stderr.strip()[-200:]))
    tap.ok(out[0][0] == 0 and out[1][0] == 1 and
           "JSON nests deeper than 12 levels" in out[1][1] and
           "would answer 400" in out[1][1],
           "simulate: the same depth limit and reason as the webhook", out)


def check_config_size(tap, lab, env):
    for who, conf in (("coordinator", env.cconf), ("agent", env.aconf)):
        with open(conf) as f:
            text = f.read()
        binary = reflex_binary(f"reflex-{who}")
        results = []
        for how in ("option", "environment"):
            for size in (8192, 8193):
                p = lab.write_file(f"{who}-{size}.yaml", text + "#" +
                                   "x" * (size - len(text.encode()) - 2) +
                                   "\n")
                argv, extra = [binary, "--check-config", "-c", p], {}
                if how == "option":
                    argv[1:1] = ["--config-max-size", "8KiB"]
                else:
                    extra = {"REFLEX_CONFIG_MAX_SIZE": "8KiB"}
                r = subprocess.run(argv, capture_output=True, text=True,
                                   timeout=30, env=dict(os.environ, **extra))
                results.append((r.returncode,
                                (r.stdout + r.stderr).strip()[-200:]))
        r = subprocess.run([binary, "--config-max-size", "1KiB",
                            "--check-config", "-c", conf],
                           capture_output=True, text=True, timeout=30)
        tap.ok([x[0] for x in results] == [0, 1, 0, 1] and
               all("8193 bytes is larger than 8192 bytes" in x[1] for x in
                   results[1::2]) and
               r.returncode == 2 and "is outside 4096..16777216" in r.stderr,
               f"config file size ({who}): with --config-max-size 8KiB or "
               "REFLEX_CONFIG_MAX_SIZE=8KiB a file of 8192 bytes loads, "
               "8193 is refused naming the limit; 1KiB is out of bounds",
               (results, r.returncode, r.stderr))


def run(tap):
    with Lab(prefix="reflex-wire-") as lab:
        env = Env(lab)
        before = env.instance()
        check_agent(tap, env)
        check_coordinator(tap, env, lab)
        check_webhook(tap, env)
        inst = env.instance()
        tap.ok(inst["restarts"] == before["restarts"] and
               inst["pid"] == before["pid"] and env.actions() == [] and
               env.coord.alive() and env.agent.alive(),
               "nothing refused was executed: demo-a-0 has the same pid "
               "and restart count, no action is journaled",
               (before, inst, env.actions()[:3]))
        check_config_size(tap, lab, env)
        r = http_post(env.url + "/api/v1/alerts", json.dumps(notification([
            alert({"alertname": "RestartMe", "service": "demo-a",
                   "instance": "demo-a-0"})])),
            {"Content-Type": "application/json"})
        done = wait_until(lambda: [a for a in env.actions()
                                   if a["state"] == "succeeded"], 30,
                          what="the restart succeeded")
        inst = env.instance()
        tap.ok(r.status == 200 and len(done) == 1 and
               inst["restarts"] == before["restarts"] + 1,
               "under these limits a valid alert restarts demo-a-0 through "
               "the coordinator and the agent", (r.status, done, inst))
        for p in (env.agent, env.coord):
            rc = lab.stop(p, grace=15)
            reports = [line for line in p.log_text().splitlines()
                       if "runtime error:" in line or "Sanitizer" in line]
            tap.ok(rc == 0 and not reports, f"{p.name} stops cleanly, no "
                   "sanitizer report", (rc, reports[:10]))


if __name__ == "__main__":
    Tap.main(run)
