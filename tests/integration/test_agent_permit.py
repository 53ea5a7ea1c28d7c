#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex-agent asks the coordinator before its own restarts.

On 127.0.0.1 only. reflex-send plays the coordinator; a permit file tells
it how to answer permit requests (grant, refuse, silent, undecided,
unknown-once). The agent supervises tests/lib/agent_test_svc.py:

  web   2 instances, partition policy 5 restarts / 10 min
  part  1 instance, partition policy 1 restart / 10 min
  slow  1 instance whose probe never passes (for the check command)

Checked: a crash restart and a probe restart ask first (with reason and
output tail); a refusal holds the restart (a probe-failing process keeps
running, a crashed one stays down), is shown in status and in the check
command, is logged once and asked again after the backoff; "unknown
node" makes the agent register again and ask again; an undecided or
silent coordinator, or none at all, leaves the decision to the partition
policy (first restart allowed, the next one held); /metrics counts the
verdicts and restarts. Prints TAP; every process started here is killed
at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get("REFLEX_BUILD", os.path.join(SRC, "build"))
AGENT = os.path.join(BUILD, "agent", "reflex-agent")
SEND = os.path.join(BUILD, "tests", "reflex-send")
SVC = os.path.join(SRC, "tests", "lib", "agent_test_svc.py")
WAIT = 20.0  # upper bound for anything we wait for (seconds)

HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import Tap, free_ports, reflex_popen, scaled  # noqa: E402

WAIT = scaled(WAIT)  # stretched under valgrind (REFLEX_TIME_FACTOR)

T = Tap()
PROCS = []
PIDS = set()


def wait_for(pred, timeout=WAIT, step=0.1):
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:  # not there yet
            v = None
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def http(method, port, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method, data=b"" if method == "POST"
                                 else None)
    with HTTP.open(req, timeout=5) as r:
        return r.status, r.read().decode()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def run(args, timeout=30):
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout)


def send(url, *args):
    r = run([SEND, url] + list(args))
    if r.returncode != 0:
        return {"transport_error": r.stderr.strip(), "rc": r.returncode}
    return json.loads(r.stdout)


class Agent:
    def __init__(self, work, conf):
        self.conf = conf
        self.log = open(os.path.join(work, "agent.log"), "w+")
        self.p = reflex_popen("agent", [AGENT, "-c", conf, "-v"],
                              stdout=self.log, stderr=self.log)
        PROCS.append(self.p)

    def status(self):
        r = run([AGENT, "status", "-c", self.conf, "--json"])
        if r.returncode != 0:
            return None
        st = json.loads(r.stdout)
        for s in st["services"]:
            for i in s["instances"]:
                if i["pid"]:
                    PIDS.add(i["pid"])
        return st

    def inst(self, name):
        st = self.status()
        for s in st["services"]:
            for i in s["instances"]:
                if i["name"] == name:
                    return i
        return None

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()


class FakeCoordinator:
    def __init__(self, url, permit_file):
        self.lines = []
        self.permit_file = permit_file
        self.answer("grant")
        self.p = subprocess.Popen([SEND, url, "serve", "--permit-file",
                                   permit_file], stdout=subprocess.PIPE,
                                  text=True)
        PROCS.append(self.p)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(json.loads(line))

    def answer(self, mode):
        with open(self.permit_file + ".new", "w") as f:
            f.write(mode + "\n")
        os.replace(self.permit_file + ".new", self.permit_file)

    def permits(self, instance):
        return [m for m in list(self.lines) if m.get("type") == "permit"
                and m["body"]["instance"] == instance]

    def stop(self):
        self.p.kill()
        self.p.wait()


def write_config(work, ports):
    sock = os.path.join(work, "run", "agent.sock")
    svc = ('["{py}", "{svc}", "--port", "{{port}}", "--name", '
           '"{{instance}}"]').format(py=sys.executable, svc=SVC)
    text = """node: node-p
coordinator: tcp://127.0.0.1:{coord}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
permit_timeout: 1s
metrics_listen: 127.0.0.1:{metrics}
services:
  - name: web
    command: {cmd}
    instances: 2
    base_port: {web}
    stop_grace: 2s
    probe: {{ path: /healthz, period: 200ms, timeout: 150ms,
             failure_threshold: 3, initial_delay: 2s }}
    restart_backoff: {{ initial: 300ms, max: 600ms, reset_after: 1s }}
    partition_policy: {{ max_restarts: 5, window: 10m }}
  - name: part
    command: {cmd}
    base_port: {part}
    stop_grace: 2s
    probe: {{ path: /healthz, period: 200ms, timeout: 150ms,
             initial_delay: 2s }}
    restart_backoff: {{ initial: 200ms, max: 400ms }}
    partition_policy: {{ max_restarts: 1, window: 10m }}
  - name: slow
    command: {cmd}
    base_port: {slow}
    probe: {{ path: /not-here, period: 1s, timeout: 250ms,
             failure_threshold: 100, initial_delay: 100ms }}
""".format(coord=ports["coord"], listen=ports["listen"], sock=sock,
           metrics=ports["metrics"], cmd=svc, web=ports["web"],
           part=ports["part"], slow=ports["slow"])
    path = os.path.join(work, "agent.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def running(agent, name, not_pid=None):
    def pred():
        i = agent.inst(name)
        if i["state"] == "running" and i["pid"] and i["pid"] != not_pid \
                and i["permit"] is None:
            return i
        return None
    return wait_for(pred)


def kill(agent, name):
    i = agent.inst(name)
    os.kill(i["pid"], signal.SIGKILL)
    return i["pid"]


def held(agent, name, prefix):
    def pred():
        i = agent.inst(name)
        p = i["permit"]
        if p and p["phase"] == "held" and p["held"].startswith(prefix):
            return i
        return None
    return wait_for(pred)


# The first probe waits 2 s after a start: a service that starts slowly
# on a loaded machine must not look like a failing one.


def actions(agent, name, result):
    return [a for a in agent.status()["actions"] if a["instance"] == name
            and a["kind"] == "own_restart" and a["result"] == result]


# ---- the checks -------------------------------------------------------------

def check_start(agent, coord, url):
    ok = all(running(agent, n) for n in ("web-0", "web-1", "part-0"))
    T.ok(ok and wait_for(lambda: agent.status()["coordinator"]
                         ["registered"]),
         "instances run and the agent is registered",
         json.dumps(agent.status()))
    r = send(url, "command", "check", "slow")
    T.ok(r.get("ok") is False and r.get("code") == -11 and
         r.get("message", "").startswith(
             "slow-0: starting (probe not passed yet") and
         r["json"]["results"][0]["state"] == "starting",
         "check: a probe that never passed -> ok=false, starting",
         json.dumps(r))
    r = send(url, "command", "check", "web")
    T.ok(r.get("ok") is True and all(x["ok"] for x in
                                      r["json"]["results"]),
         "check: the running web instances are ready", json.dumps(r))


def check_granted_crash(agent, coord):
    before = len(coord.permits("web-0"))
    granted = len(actions(agent, "web-0", "granted"))
    old = kill(agent, "web-0")
    i = running(agent, "web-0", old)
    p = coord.permits("web-0")[before:]
    reason = p[0]["body"]["reason"] if p else ""
    T.ok(i is not None and len(p) == 1 and
         p[0]["body"]["service"] == "web" and
         p[0]["body"]["node"] == "node-p" and
         reason.startswith("crash restart: process killed by signal 9") and
         "agent_test_svc web-0 listening on" in reason,
         "granted crash restart: asked first, then restarted",
         json.dumps(p) + "\n" + json.dumps(i))
    T.ok(len(actions(agent, "web-0", "granted")) == granted + 1,
         "the grant is a recent action")


def check_refused_probe(agent, coord, url, ports):
    coord.answer("refuse")
    old = agent.inst("web-1")["pid"]
    before = len(coord.permits("web-1"))
    granted = len(actions(agent, "web-1", "granted"))
    http("POST", ports["web"] + 1, "/fault/unhealthy")
    i = held(agent, "web-1", "refused by coordinator: agent's own restart "
             "refused:rate_service")
    T.ok(i is not None and i["pid"] == old and alive(old) and
         i["state"] == "unhealthy" and i["permit"]["kind"] == "probe" and
         i["permit"]["reason"].startswith("probe failed 3 times: HTTP 500"),
         "refused probe restart: the process keeps running and the refusal "
         "is in its status", json.dumps(i))
    T.ok(i is not None and "\n" not in i["permit"]["held"] and
         "last output" not in i["permit"]["held"],
         "the recorded refusal is the coordinator's first line",
         json.dumps(i and i["permit"]))
    r = send(url, "command", "check", "web", "web-1")
    T.ok(r.get("ok") is False and r.get("message", "").startswith(
        "web-1: unhealthy (probe failed ") and
        "; probe restart held: refused by coordinator: " in
        r.get("message", ""),
        "check names the held restart", json.dumps(r))
    again = wait_for(lambda: len(coord.permits("web-1")) >= before + 3)
    i = agent.inst("web-1")
    T.ok(again and i["pid"] == old and alive(old),
         "asked again after the backoff; still not restarted while refused",
         "%d permits; %s" % (len(coord.permits("web-1")) - before,
                             json.dumps(i)))
    logged = [l for l in agent.logtext().splitlines()
              if "event=permit.decision service=web instance=web-1 "
              "kind=probe verdict=refused" in l]
    T.ok(len([l for l in logged if "level=notice" in l]) == 1 and
         len(logged) >= 3 and len(actions(agent, "web-1", "refused")) == 1,
         "the refusal is logged (and listed) once, repeats at debug only",
         "\n".join(logged))
    r = run([AGENT, "status", "-c", agent.conf])
    T.ok("probe restart held: refused by coordinator: agent's own restart "
         "refused:rate_service" in r.stdout,
         "status shows the held restart to a person", r.stdout)
    coord.answer("grant")
    i = running(agent, "web-1", old)
    T.ok(i is not None and (i["last_restart_reason"] or "").startswith(
        "probe failed") and not alive(old) and
        len(actions(agent, "web-1", "granted")) == granted + 1,
        "granted later: the failing process is restarted", json.dumps(i))


def check_refused_crash(agent, coord, url):
    coord.answer("refuse")
    before = len(coord.permits("web-0"))
    kill(agent, "web-0")
    i = held(agent, "web-0", "refused by coordinator:")
    T.ok(i is not None and i["pid"] is None and i["state"] == "backoff" and
         i["ready"] is False and i["permit"]["kind"] == "crash",
         "refused crash restart: the instance stays stopped",
         json.dumps(i))
    r = send(url, "command", "check", "web", "web-0")
    T.ok(r.get("ok") is False and r.get("message", "").startswith(
        "web-0: backoff after ") and
        "crash restart held: refused by coordinator" in r.get("message", ""),
        "check reports the stopped, held instance", json.dumps(r))
    again = wait_for(lambda: len(coord.permits("web-0")) >= before + 3)
    T.ok(again and agent.inst("web-0")["pid"] is None,
         "asked again and again, never started while refused")
    coord.answer("grant")
    T.ok(running(agent, "web-0") is not None,
         "granted later: the crashed instance starts")


def check_unknown_node(agent, coord):
    coord.answer("unknown-once")
    before = len(coord.lines)
    old = kill(agent, "web-0")
    i = running(agent, "web-0", old)
    seq = [(m["type"], m["body"].get("instance")) for m in
           coord.lines[before:] if m["type"] in ("permit", "register")]
    T.ok(i is not None and len(seq) >= 3 and seq[0] == ("permit", "web-0")
         and seq[1][0] == "register" and ("permit", "web-0") in seq[2:] and
         "event=permit.unknown_node instance=web-0" in agent.logtext(),
         "unknown node: the agent registers again and asks again",
         json.dumps(seq))
    coord.answer("grant")


def check_partition(agent, coord, url):
    coord.answer("undecided")
    old = kill(agent, "part-0")
    i = running(agent, "part-0", old)
    a = actions(agent, "part-0", "partition_allowed")
    T.ok(i is not None and len(a) == 1 and
         "coordinator could not decide: -110" in a[0]["detail"] and
         "partition policy: restart 1 of at most 1 of part" in
         a[0]["detail"],
         "undecided coordinator: the partition policy allows the first "
         "restart", json.dumps(a))
    coord.answer("silent")
    kill(agent, "part-0")
    want = "partition policy: 1 restart of part within 600 s already"
    i = held(agent, "part-0", want)
    T.ok(i is not None and i["pid"] is None and
         "(coordinator: no answer within 1000 ms)" in i["permit"]["held"],
         "silent coordinator: after permit_timeout the policy holds the "
         "second restart", json.dumps(i))
    r = send(url, "command", "check", "part")
    T.ok(r.get("ok") is False and want in r.get("message", ""),
         "check reports the partition hold", json.dumps(r))


def check_coordinator_gone(agent, coord):
    coord.stop()
    down = wait_for(lambda: not agent.status()["coordinator"]["connected"])
    T.ok(bool(down), "the agent sees the coordinator gone")
    old = kill(agent, "web-1")
    i = running(agent, "web-1", old)
    a = actions(agent, "web-1", "partition_allowed")
    T.ok(i is not None and len(a) == 1 and
         "coordinator unreachable" in a[0]["detail"],
         "no coordinator: the partition policy decides at once",
         json.dumps(a))
    T.ok(agent.inst("part-0")["pid"] is None,
         "and keeps holding what it held")


def metric(text, line_start):
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def check_metrics(agent, ports):
    st, text = http("GET", ports["metrics"], "/metrics")
    perm = {k: metric(text, 'reflex_agent_permits_total{result="%s"}' % k)
            for k in ("granted", "refused", "partition_allowed",
                      "partition_held")}
    ok = (perm["granted"] >= 4 and perm["refused"] >= 6 and
          perm["partition_allowed"] == 2 and perm["partition_held"] >= 1)
    T.ok(st == 200 and ok, "permits_total counts every verdict",
         json.dumps(perm))
    lab = 'service="web",instance="web-0"'
    T.ok(metric(text, 'reflex_agent_restarts_total{%s,reason="crash"}'
                % lab) == 3 and
         metric(text, 'reflex_agent_restarts_total{service="web",'
                'instance="web-1",reason="probe"}') == 1 and
         metric(text, 'reflex_agent_instance_up{service="part",'
                'instance="part-0"}') == 0 and
         metric(text, 'reflex_agent_instance_up{%s}' % lab) == 1 and
         metric(text, "reflex_agent_coordinator_connected") == 0,
         "restarts_total, instance_up and coordinator_connected", text)
    st, body = http("GET", ports["metrics"], "/healthz")
    T.ok(st == 200 and body == "ok\n", "/healthz answers ok")
    # part-0 is still being held (asked again and again): that count
    # may have grown since the scrape; the others are settled.
    js = agent.status()["stats"]["permits"]
    T.ok(all(js[k] == perm[k] for k in ("granted", "refused",
                                        "partition_allowed")) and
         js["partition_held"] >= perm["partition_held"],
         "status --json has the same permit counts",
         json.dumps(js) + "\n" + json.dumps(perm))


def check_stop(agent):
    agent.p.send_signal(signal.SIGTERM)
    try:
        rc = agent.p.wait(WAIT)
    except subprocess.TimeoutExpired:
        rc = None
    T.ok(rc == 0, "SIGTERM: the agent exits 0", "rc=%s" % rc)
    left = [p for p in PIDS if p and alive(p)]
    T.ok(not left, "no instance is left behind", str(left))
    reports = [l for l in agent.logtext().splitlines()
               if "runtime error:" in l or "Sanitizer" in l]
    T.ok(not reports, "no sanitizer report in the agent's log",
         "\n".join(reports[:20]))


def main():
    for path in (AGENT, SEND):
        if not os.access(path, os.X_OK):
            print("1..0 # SKIP %s not built" % path)
            return 0
    work = tempfile.mkdtemp(prefix="reflex-agent-permit-")
    ports = {"web": free_ports(2), "part": free_ports(1),
             "slow": free_ports(1), "listen": free_ports(1),
             "coord": free_ports(1), "metrics": free_ports(1)}
    conf = write_config(work, ports)
    url = "tcp://127.0.0.1:%d" % ports["listen"]
    agent = None
    try:
        coord = FakeCoordinator("tcp://127.0.0.1:%d" % ports["coord"],
                                os.path.join(work, "permit"))
        agent = Agent(work, conf)
        check_start(agent, coord, url)
        check_granted_crash(agent, coord)
        check_refused_probe(agent, coord, url, ports)
        check_refused_crash(agent, coord, url)
        check_unknown_node(agent, coord)
        check_partition(agent, coord, url)
        check_coordinator_gone(agent, coord)
        check_metrics(agent, ports)
        check_stop(agent)
    except Exception as e:  # report, then clean up below
        T.ok(False, "test script error", repr(e))
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        for pid in PIDS:
            if pid and alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if agent is not None:
            if T.failed:
                T.diag("agent log: " + agent.log.name)
                for line in agent.logtext().splitlines()[-40:]:
                    T.diag(line)
            agent.log.close()
        if T.failed:
            T.diag("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
