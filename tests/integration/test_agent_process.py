#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex-agent with the process runtime, end to end, on 127.0.0.1 only.

The agent supervises tests/lib/agent_test_svc.py (two instances of
"demo-a" with an HTTP probe, one "stubborn" instance that ignores SIGTERM
and has no probe). reflex-send plays the coordinator and sends commands
and malformed frames. Prints TAP. Every process started here is killed at
the end, also when a check fails or the script is interrupted.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
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

# Never through a proxy: every request here goes to 127.0.0.1.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import Tap, free_ports, reflex_popen, scaled  # noqa: E402

WAIT = scaled(WAIT)  # stretched under valgrind (REFLEX_TIME_FACTOR)

T = Tap()
PROCS = []       # Popen objects to kill at the end
PIDS = set()     # instance and grandchild pids seen, to check and kill


def wait_for(pred, timeout=WAIT, step=0.1):
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:  # the thing waited for is not there yet
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


def info(port):
    return json.loads(http("GET", port, "/info")[1])


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def zombie_children(ppid):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[1]) == ppid and rest[0] == "Z":
            found.append(int(d))
    return found


def run(args, timeout=30):
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout)


def send(url, *args):
    r = run([SEND, url] + list(args))
    if r.returncode != 0:
        return {"transport_error": r.stderr.strip(), "rc": r.returncode}
    return json.loads(r.stdout)


class Agent:
    def __init__(self, work, conf, log="agent.log"):
        self.conf = conf
        self.log = open(os.path.join(work, log), "w+")
        self.p = reflex_popen("agent", [AGENT, "-c", conf, "-v"],
                              stdout=self.log, stderr=self.log)
        PROCS.append(self.p)

    def status(self):
        r = run([AGENT, "status", "-c", self.conf, "--json"])
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()


def inst(st, name):
    for s in st["services"]:
        for i in s["instances"]:
            if i["name"] == name:
                return i
    return None


class FakeCoordinator:
    def __init__(self, url):
        self.lines = []
        self.p = subprocess.Popen([SEND, url, "serve", "--forget", "2"],
                                  stdout=subprocess.PIPE, text=True)
        PROCS.append(self.p)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(json.loads(line))

    def of_type(self, t):
        return [m for m in list(self.lines) if m.get("type") == t]


def write_config(work, ports):
    sock = os.path.join(work, "run", "agent.sock")
    text = """node: node-t
coordinator: tcp://127.0.0.1:{coord}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
runtime: process
log_level: info
heartbeat_interval: 300ms
services:
  - name: demo-a
    command: ["{py}", "{svc}", "--port", "{{port}}", "--name", "{{instance}}",
              "--grandchild"]
    instances: 2
    base_port: {base}
    env: {{ TEST_WHO: "{{service}}@{{node}}" }}
    stop_grace: 3s
    probe:
      path: /healthz
      period: 300ms
      timeout: 250ms
      failure_threshold: 3
      initial_delay: 1500ms
    restart_backoff: {{ initial: 200ms, max: 2s, reset_after: 1s }}
  - name: stubborn
    command: ["{py}", "{svc}", "--port", "{{port}}", "--name", "{{instance}}",
              "--ignore-term", "--no-cache"]
    base_port: {stub}
    stop_grace: 500ms
  - name: broken
    command: ["/nonexistent/reflex-test-program", "{{port}}"]
    base_port: {broken}
    restart_backoff: {{ initial: 100ms, max: 400ms }}
""".format(coord=ports["coord"], listen=ports["listen"], sock=sock,
           py=sys.executable, svc=SVC, base=ports["base"],
           stub=ports["stub"], broken=ports["broken"])
    path = os.path.join(work, "agent.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, sock


# ---- the checks -----------------------------------------------------------

def check_cli(work, conf):
    r = run([AGENT, "-c", conf, "--check-config"])
    T.ok(r.returncode == 0 and "ok (node node-t, 3 services, 4 instances)"
         in r.stdout, "--check-config accepts the test config and counts "
         "what it runs", r.stdout + r.stderr)
    one = os.path.join(work, "one.yaml")
    with open(conf) as f, open(one, "w") as g:
        g.write(f.read().split("  - name: stubborn")[0])
    r1 = run([AGENT, "-c", one, "--check-config"])
    T.ok(r1.returncode == 0 and "(node node-t, 1 service, 2 instances)"
         in r1.stdout, "--check-config: one service, singular",
         r1.stdout + r1.stderr)
    bad = os.path.join(work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("node: n\ncoordinator: tcp://127.0.0.1:1\ncolour: red\n")
    r = run([AGENT, "-c", bad, "--check-config"])
    T.ok(r.returncode == 1 and
         "reflex-agent: " + bad + ":3: colour: unknown key" in r.stderr,
         "--check-config reports file:line: key: reason, after the "
         "program's name as the coordinator does", r.stderr)
    r = run([AGENT, "--bogus"])
    T.ok(r.returncode == 2 and "usage:" in r.stderr,
         "unknown option: usage and exit 2", r.stderr)
    coord = os.path.join(BUILD, "coordinator", "reflex-coordinator")
    with open(os.path.join(os.path.dirname(__file__), "..", "..",
                           "meson.build")) as f:
        version = re.search(r"version : '([^']+)'", f.read()).group(1)
    for binary in (AGENT, coord):
        name = os.path.basename(binary)
        r = run([binary, "--version"])
        T.ok(r.returncode == 0 and r.stdout == f"{name} {version}\n",
             f"{name} --version prints its name and the project's version "
             f"({version})", r.stdout + r.stderr)
    r = run([AGENT, "status", "-s", os.path.join(work, "nothing.sock")])
    T.ok(r.returncode == 1 and "cannot connect" in r.stderr,
         "status without an agent fails clearly", r.stderr)
    if not os.path.exists("/etc/reflex/agent.yaml"):
        r = run([AGENT, "status"])
        T.ok(r.returncode == 1 and "/etc/reflex/agent.yaml" in r.stderr and
             "give -c FILE or -s SOCKET" in r.stderr,
             "status without -c, the default file missing, names the file "
             "and says how to name the config or the socket", r.stderr)


def check_startup(agent, ports, sock):
    def all_running():
        st = agent.status()
        names = ["demo-a-0", "demo-a-1", "stubborn-0"]
        if st and all(inst(st, n)["state"] == "running" for n in names):
            return st
        return None
    st = wait_for(all_running)
    T.ok(st is not None, "all instances come up and are reported running",
         json.dumps(agent.status()))
    if st is None:
        return None
    a0 = inst(st, "demo-a-0")
    T.ok(a0["probe"]["ok"] and a0["pid"] > 0 and
         a0["addr"] == "127.0.0.1:%d" % ports["base"],
         "probe ok, pid and addr reported", json.dumps(a0))
    T.ok(inst(st, "stubborn-0")["probe"] is None,
         "a service without probe has probe null")
    T.ok(any("agent_test_svc demo-a-0 listening" in l
             for l in a0["output"]), "child output is kept in the status",
         json.dumps(a0["output"]))
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    T.ok(stat.S_ISSOCK(os.stat(sock).st_mode) and mode == 0o600,
         "status socket is a socket with mode 0600", oct(mode))
    r = run([AGENT, "status", "-s", sock])
    T.ok(r.returncode == 0 and "node         node-t" in r.stdout and
         "demo-a-1" in r.stdout and "running" in r.stdout,
         "status prints for a person", r.stdout + r.stderr)
    r2 = run([AGENT, "-c", agent.conf, "status"])
    T.ok(r2.returncode == 0 and "node         node-t" in r2.stdout,
         "-c FILE may come before the word status", r2.stdout + r2.stderr)
    # -c is -c whatever the path, the default one too: with -s the
    # status client refuses it as it refuses any other -c.
    r5 = run([AGENT, "-c", "/etc/reflex/agent.yaml", "status", "-s", sock])
    r6 = run([AGENT, "-c", agent.conf, "status", "-s", sock])
    T.ok(r5.returncode == 2 and r6.returncode == 2 and
         "usage: reflex-agent status" in r5.stderr,
         "-c with the default path before status counts as given",
         r5.stdout + r5.stderr + r6.stderr)
    r3 = run([AGENT, "-v", "status"])
    r4 = run([AGENT, "-c", agent.conf, "stats"])
    T.ok(r3.returncode == 2 and "status takes -c or -s" in r3.stderr and
         r4.returncode == 2 and 'unexpected argument "stats"' in r4.stderr,
         "other options before status, and a misspelt command, are "
         "refused with a reason", r3.stderr + r4.stderr)
    i = info(ports["base"])
    PIDS.update([i["pid"], i["grandchild"]])
    T.ok(i["env"].get("REFLEX_INSTANCE") == "demo-a-0" and
         i["env"].get("TEST_WHO") == "demo-a@node-t" and
         i["env"].get("REFLEX_PORT") == str(ports["base"]),
         "placeholders and env reach the child", json.dumps(i["env"]))
    T.ok(i["pgid"] == i["pid"], "the child leads its own process group")
    extra = [fd for fd in i["fds_at_start"] if fd > 2]
    T.ok(len(extra) <= 1, "no agent fd leaks into the child (only the "
         "child's own listdir fd above 2)", json.dumps(i["fds_at_start"]))
    return st


def check_coordinator(agent, coord, ports):
    regs = wait_for(lambda: coord.of_type("register"))
    T.ok(bool(regs), "agent registers once the coordinator appears")
    if not regs:
        return
    b = regs[0]["body"]
    names = sorted(w["instance"] for w in b["workloads"])
    T.ok(b["node"] == "node-t" and b["runtime"] == "process" and
         b["addr"] == "tcp://127.0.0.1:%d" % ports["listen"] and
         names == ["broken-0", "demo-a-0", "demo-a-1", "stubborn-0"],
         "register carries node, listen addr, runtime and workloads",
         json.dumps(b))
    w0 = [w for w in b["workloads"] if w["instance"] == "demo-a-0"][0]
    T.ok(w0["addr"] == "127.0.0.1:%d" % ports["base"] and
         w0["service"] == "demo-a", "workload addr is 127.0.0.1:<port>")
    # --forget 2: the 2nd heartbeat is answered "unknown node".
    again = wait_for(lambda: len(coord.of_type("register")) >= 2)
    hbs = coord.of_type("heartbeat")
    seqs = [h["body"]["seq"] for h in hbs]
    T.ok(bool(again) and len(seqs) >= 2 and seqs[0] == 1 and
         all(a < b for a, b in zip(seqs, seqs[1:])),
         "heartbeats count up; -ENOENT makes the agent register again",
         json.dumps(coord.lines[:6]))
    # Registered once the reply to the new register reaches the agent.
    st = wait_for(lambda: (lambda s: s if s["coordinator"]["registered"]
                           else None)(agent.status())) or agent.status()
    T.ok(st["coordinator"]["connected"] and st["coordinator"]["registered"],
         "status shows the coordinator connected",
         json.dumps(st["coordinator"]))


def check_crash(agent, ports, coord):
    old = info(ports["base"])
    before = inst(agent.status(), "demo-a-0")["restarts"]
    os.kill(old["pid"], signal.SIGKILL)
    st = wait_for(lambda: (lambda s: s if inst(s, "demo-a-0")["pid"] not in
                           (None, old["pid"]) and
                           inst(s, "demo-a-0")["state"] == "running"
                           else None)(agent.status()))
    i = inst(st, "demo-a-0") if st else {}
    T.ok(i.get("restarts") == before + 1 and "signal 9" in
         (i.get("last_restart_reason") or ""),
         "kill -9: restarted, restart count +1, reason says signal 9",
         json.dumps(i))
    T.ok(wait_for(lambda: not alive(old["grandchild"]), 5),
         "the crashed instance's leftover group member is killed")
    permits = [m["body"] for m in coord.of_type("permit")
               if m["body"]["instance"] == "demo-a-0"]
    reason = permits[0]["reason"] if permits else ""
    T.ok(len(permits) == 1 and permits[0]["service"] == "demo-a" and
         permits[0]["node"] == "node-t" and
         reason.startswith("crash restart: process killed by signal 9") and
         "\nlast output:\n" in reason and
         "agent_test_svc demo-a-0 listening" in reason and
         len(reason.encode()) < 1024,
         "the crash restart asked the coordinator first, with a short "
         "output tail", json.dumps(permits))
    acts = [a for a in agent.status()["actions"]
            if a["kind"] == "own_restart" and a["instance"] == "demo-a-0"]
    T.ok(len(acts) == 1 and acts[0]["result"] == "granted" and
         "granted by coordinator" in acts[0]["detail"],
         "the permitted own restart is in the recent actions",
         json.dumps(acts))
    PIDS.add(i.get("pid") or 0)
    T.ok((i.get("backoff_failures") or 0) >= 1 and
         wait_for(lambda: inst(agent.status(), "demo-a-0")
                  ["backoff_failures"] == 0) and
         "event=proc.stable instance=demo-a-0" in agent.logtext(),
         "the backoff starts over after reset_after healthy",
         json.dumps(inst(agent.status(), "demo-a-0")))


def check_broken(agent, url):
    def backing_off():
        b = inst(agent.status(), "broken-0")
        return b if b["backoff_failures"] >= 3 else None
    b = wait_for(backing_off) or inst(agent.status(), "broken-0")
    T.ok(b["state"] == "backoff" and b["pid"] is None and
         "No such file" in (b["start_error"] or "") and b["restarts"] == 0,
         "a program that cannot start waits in backoff with the error",
         json.dumps(b))
    r = send(url, "command", "restart", "broken", "broken-0")
    T.ok(r.get("ok") is False and r.get("code") == -5 and
         "start failed" in r.get("message", ""),
         "restarting it reports the start failure", json.dumps(r))


def check_probe_failure(agent, ports):
    port = ports["base"] + 1
    old = info(port)
    PIDS.update([old["pid"], old["grandchild"]])
    before = inst(agent.status(), "demo-a-1")["restarts"]
    http("POST", port, "/fault/unhealthy")
    st = wait_for(lambda: (lambda s: s if inst(s, "demo-a-1")["pid"] not in
                           (None, old["pid"]) and
                           inst(s, "demo-a-1")["state"] == "running"
                           else None)(agent.status()))
    i = inst(st, "demo-a-1") if st else {}
    T.ok(i.get("restarts") == before + 1 and
         (i.get("last_restart_reason") or "")
         .startswith("probe failed 3 times: HTTP 500"),
         "failing /healthz: the agent restarts it after the threshold",
         json.dumps(i))
    T.ok(wait_for(lambda: not alive(old["pid"]), 5),
         "the unhealthy process is gone")
    PIDS.add(i.get("pid") or 0)


def check_probe_timeout(agent, ports):
    old = inst(agent.status(), "demo-a-0")
    http("POST", ports["base"], "/fault/hang")
    st = wait_for(lambda: (lambda s: s if inst(s, "demo-a-0")["restarts"] >
                           old["restarts"] else None)(agent.status()))
    i = inst(st, "demo-a-0") if st else {}
    T.ok("probe failed 3 times: timed out after" in
         (i.get("last_restart_reason") or ""),
         "a hanging /healthz: probe timeouts make the agent restart it",
         json.dumps(i))
    T.ok(wait_for(lambda: inst(agent.status(), "demo-a-0")["state"] ==
                  "running"), "and the new process is healthy")
    PIDS.add(inst(agent.status(), "demo-a-0")["pid"] or 0)


def evidence_of(r, name):
    for x in (r.get("json") or {}).get("results", []):
        if x.get("instance") == name:
            return x
    return {}


def check_restart_commands(agent, ports, url):
    before = inst(agent.status(), "demo-a-0")
    r = send(url, "command", "restart", "demo-a", "demo-a-0", "--reason",
             "integration test", "--action-id", "42")
    new = inst(agent.status(), "demo-a-0")
    T.ok(r.get("ok") is True and r.get("message") ==
         "demo-a-0: pid %d -> %d" % (before["pid"], new["pid"]) and
         new["pid"] != before["pid"],
         "restart command: reply after the new process started, with "
         "old/new pid", json.dumps(r) + "\n" + json.dumps(new))
    x = evidence_of(r, "demo-a-0")
    ev = x.get("evidence") or ""
    T.ok(sorted(x) == ["detail", "evidence", "instance", "new_pid", "ok",
                       "old_exit", "old_pid"] and
         r["json"].get("action") == "restart" and
         r["json"].get("service") == "demo-a" and
         before["output"][-1] in ev.splitlines() and
         ev.endswith("\n[pid %d killed by signal 15 (SIGTERM)]" %
                     before["pid"]) and
         x.get("old_exit") == "killed by signal 15 (SIGTERM)",
         "the restart reply carries the old process's output and how it "
         "ended as evidence", json.dumps(x))
    T.ok(new["restarts"] == before["restarts"] + 1 and "action 42" in
         new["last_restart_reason"] and "integration test" in
         new["last_restart_reason"], "the command's reason is recorded",
         json.dumps(new))
    T.ok(not alive(before["pid"]), "old process reaped before the reply")
    PIDS.add(new["pid"])

    stub = inst(agent.status(), "stubborn-0")
    r = send(url, "command", "restart", "stubborn", "stubborn-0")
    new = inst(agent.status(), "stubborn-0")
    T.ok(r.get("ok") is True and new["pid"] != stub["pid"] and
         not alive(stub["pid"]) and "event=proc.kill instance=stubborn-0"
         in agent.logtext(),
         "a process ignoring SIGTERM gets SIGKILL after stop_grace",
         json.dumps(r))
    T.ok(evidence_of(r, "stubborn-0").get("old_exit") ==
         "killed by signal 9 (SIGKILL)", "its evidence says SIGKILL",
         json.dumps(r))
    PIDS.add(new["pid"])

    # Long output lines: the evidence stays within 40 lines and 4 KiB.
    wait_for(lambda: inst(agent.status(), "demo-a-1")["state"] ==
             "running")
    for i in range(50):
        try:
            http("GET", ports["base"] + 1, "/info?%03d%s" % (i, "x" * 300))
        except urllib.error.HTTPError:
            pass  # 404, and a log line of the request
    r = send(url, "command", "restart", "demo-a", "demo-a-1")
    ev = evidence_of(r, "demo-a-1").get("evidence") or ""
    lines = ev.splitlines()
    T.ok(r.get("ok") is True and len(ev.encode()) <= 4096 and
         10 < len(lines) <= 41 and lines[-2].startswith(
             'request "GET /info?049xxx') and lines[-1].startswith("[pid "),
         "evidence is bounded: newest lines first kept, at most 40 lines "
         "and 4 KiB", "%d bytes, %d lines\n%s" % (len(ev.encode()),
                                                  len(lines), ev[-600:]))
    PIDS.add(evidence_of(r, "demo-a-1").get("new_pid") or 0)

    st = agent.status()
    olds = [inst(st, n)["pid"] for n in ("demo-a-0", "demo-a-1")]
    r = send(url, "command", "restart", "demo-a", "--timeout-ms", "15000")
    res = (r.get("json") or {}).get("results", [])
    T.ok(r.get("ok") is True and [x["instance"] for x in res] ==
         ["demo-a-0", "demo-a-1"] and [x["old_pid"] for x in res] == olds
         and all(x["new_pid"] != x["old_pid"] for x in res) and
         all(x["evidence"].endswith("[pid %d killed by signal 15 "
                                    "(SIGTERM)]" % x["old_pid"])
             for x in res),
         "restart with instance \"\" restarts every instance in turn, "
         "each with its evidence", json.dumps(r))
    PIDS.update(x["new_pid"] for x in res)


def check_check(agent, ports, url):
    wait_for(lambda: all(inst(agent.status(), n)["state"] == "running"
                         for n in ("demo-a-0", "demo-a-1")))
    st = agent.status()
    r = send(url, "command", "check", "demo-a", "--timeout-ms", "200")
    res = (r.get("json") or {}).get("results", [])
    T.ok(r.get("ok") is True and r.get("code") == 0 and
         r.get("message", "").startswith(
             "demo-a-0: running (pid %d, probe ok" %
             inst(st, "demo-a-0")["pid"]) and
         "; demo-a-1: running (pid" in r.get("message", "") and
         [(x["instance"], x["ok"], x["state"]) for x in res] ==
         [("demo-a-0", True, "running"), ("demo-a-1", True, "running")],
         "check: every instance running with a passing probe -> ok",
         json.dumps(r))
    r = send(url, "command", "check", "demo-a", "demo-a-1")
    T.ok(r.get("ok") is True and
         r.get("message", "").startswith("demo-a-1: running") and
         "demo-a-0" not in r.get("message", ""),
         "check of one instance", json.dumps(r))
    r = send(url, "command", "check", "broken", "broken-0")
    T.ok(r.get("ok") is False and r.get("code") == -11 and
         r.get("message", "").startswith("broken-0: backoff after ") and
         "start failed: No such file" in r.get("message", ""),
         "check of an instance that cannot start -> ok=false with its "
         "state", json.dumps(r))
    r = send(url, "command", "check", "stubborn")
    T.ok(r.get("ok") is True and "no probe" in r.get("message", ""),
         "check of a service without probe: running is ready",
         json.dumps(r))
    for args, what in ((("nope",), "unknown service"),
                       (("demo-a", "demo-a-7"), "unknown instance")):
        r = send(url, "command", "check", *args)
        T.ok(r.get("ok") is False and r.get("code") == -2 and
             what in r.get("message", ""), "check: %s -> -ENOENT" % what,
             json.dumps(r))
    acts = agent.status()["actions"]
    T.ok(not any(a["kind"] == "check" for a in acts) and
         "level=info comp=agent event=cmd.command action=check" not in
         agent.logtext() and "event=cmd.command action=check" in
         agent.logtext(),
         "checks are neither recent actions nor logged at info",
         json.dumps(acts[:3]))


def check_recent_actions(agent, sock):
    st = agent.status()
    acts = st["actions"]
    kinds = [a["kind"] for a in acts]
    T.ok(len(acts) <= 20 and "restart" in kinds and "clear_cache" in kinds
         and "reload_config" in kinds and "own_restart" in kinds and
         all(a["time"].endswith("Z") for a in acts) and
         acts[0]["kind"] == "clear_cache" and
         acts[0]["instance"] == "stubborn-0" and
         acts[0]["result"] == "failed",
         "status --json lists the recent actions, newest first",
         json.dumps(acts, indent=1))
    r = run([AGENT, "status", "-s", sock])
    T.ok(r.returncode == 0 and "recent actions (newest first, UTC)" in
         r.stdout and " reload_config " in r.stdout and
         " own_restart " in r.stdout and " granted " in r.stdout,
         "status prints the recent actions for a person",
         r.stdout[-2500:])


def check_other_commands(agent, ports, url, sock):
    cases = [
        (("command", "restart", "nope"), -2, "unknown service"),
        (("command", "restart", "demo-a", "demo-a-9"), -2,
         "unknown instance"),
        (("command", "dance", "demo-a"), -22, "unknown action"),
        (("status",), -71, "accepts only command"),
    ]
    for args, code, text in cases:
        r = send(url, *args)
        T.ok(r.get("ok") is False and r.get("code") == code and
             text in r.get("message", ""), "%s -> code %d" % (text, code),
             json.dumps(r))
    r = send("ipc://" + sock, "command", "restart", "demo-a")
    T.ok(r.get("ok") is False and r.get("code") == -71 and
         "read-only" in r.get("message", ""),
         "the status socket refuses commands", json.dumps(r))

    wait_for(lambda: inst(agent.status(), "demo-a-0")["state"] == "running")
    r = send(url, "command", "reload_config", "demo-a", "demo-a-0")
    T.ok(r.get("ok") is True and "sent SIGHUP" in r.get("message", "") and
         wait_for(lambda: info(ports["base"])["sighup"] == 1, 5),
         "reload_config sends SIGHUP to the instance", json.dumps(r))
    wait_for(lambda: inst(agent.status(), "demo-a-1")["state"] == "running")
    r = send(url, "command", "clear_cache", "demo-a")
    T.ok(r.get("ok") is True and info(ports["base"])["cache_clears"] == 1
         and info(ports["base"] + 1)["cache_clears"] == 1,
         "clear_cache POSTs /cache/clear to every instance", json.dumps(r))
    r = send(url, "command", "clear_cache", "stubborn")
    T.ok(r.get("ok") is False and r.get("code") == -95 and
         "not supported" in r.get("message", ""),
         "clear_cache on a service without it: -EOPNOTSUPP", json.dumps(r))


def check_bad_frames(agent, url):
    frames = ["c1", "83a474797065a570726f6265a3706f64a77376632d61", "",
              "81a3706f64dbfffffff07376", "91" * 2000 + "c0"]
    before = agent.status()["stats"]["bad_frames"]
    answers = [send(url, "raw", h) for h in frames]
    T.ok(all(a.get("type") == "error" and a.get("code") for a in answers),
         "malformed frames get an error reply", json.dumps(answers))
    r = send(url, "command", "restart", "nope")
    st = agent.status()
    T.ok(r.get("code") == -2 and st["stats"]["bad_frames"] - before ==
         len(frames), "the agent keeps serving and counts the bad frames",
         json.dumps(st["stats"]))
    T.ok("event=cmd.bad_frame server=command size=1 head=c1" in
         agent.logtext(), "a bad frame is logged with size and head")
    port = int(url.rsplit(":", 1)[1])
    for junk in (b"", b"\x00SP", b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), 5) as c:
            c.sendall(junk)
    r = send(url, "command", "restart", "nope")
    T.ok(r.get("code") == -2, "raw TCP peers that drop mid-handshake do "
         "not stop the command server", json.dumps(r))


def check_shutdown(agent, sock):
    st = agent.status()
    pids = set(PIDS)
    for s in st["services"]:
        for i in s["instances"]:
            pids.add(i["pid"])
    # A child that has just exited is a zombie until the agent's SIGCHLD
    # handling reaps it (a moment; longer under valgrind): none may stay.
    T.ok(wait_for(lambda: not zombie_children(agent.p.pid), scaled(5)),
         "no zombie children (none left unreaped)",
         json.dumps(zombie_children(agent.p.pid)))
    agent.p.send_signal(signal.SIGTERM)
    try:
        rc = agent.p.wait(WAIT)
    except subprocess.TimeoutExpired:
        rc = None
    T.ok(rc == 0, "SIGTERM: the agent exits 0", "rc=%s" % rc)
    left = [p for p in pids if p and alive(p)]
    T.ok(not left, "no child or grandchild is left behind", str(left))
    T.ok(not os.path.exists(sock), "the status socket file is removed")
    T.ok("event=agent.stopped" in agent.logtext(), "clean stop is logged")
    reports = [l for l in agent.logtext().splitlines()
               if "runtime error:" in l or "Sanitizer" in l]
    T.ok(not reports, "no sanitizer report in the agent's log",
         "\n".join(reports[:20]))


def all_pids(st):
    return [i["pid"] for s in st["services"] for i in s["instances"]
            if i["pid"]]


def check_agent_killed(work, conf, sock):
    """SIGKILL of the agent: children die with it (PDEATHSIG); the next
    agent removes the stale socket; a second one on the same config
    fails without breaking the first."""
    a2 = Agent(work, conf, "agent2.log")
    st = wait_for(lambda: (lambda s: s if s and len(all_pids(s)) == 3
                           else None)(a2.status()))
    pids = all_pids(st) if st else []
    PIDS.update(pids)
    a2.p.kill()
    a2.p.wait()
    T.ok(bool(pids) and wait_for(lambda: not any(alive(p) for p in pids),
                                 5),
         "SIGKILLed agent: its children die with it", str(pids))
    T.ok(os.path.exists(sock), "a stale status socket file is left")
    a3 = Agent(work, conf, "agent3.log")
    st = wait_for(lambda: (lambda s: s if s and len(all_pids(s)) == 3
                           else None)(a3.status()))
    T.ok(st is not None and "event=cmd.stale_socket_removed" in
         a3.logtext(), "the next agent removes the stale socket and serves")
    if st:
        PIDS.update(all_pids(st))
    r = run([AGENT, "-c", conf], timeout=WAIT)
    T.ok(r.returncode == 1 and "agent.start_failed" in r.stderr and
         a3.status() is not None,
         "a second agent on the same config fails and leaves the first "
         "alone", r.stderr[-500:])
    # Its command endpoint is an ipc path of its own: no TCP port that
    # another program could take first, so only the status socket can
    # make it fail.
    conf2 = os.path.join(work, "agent-same-socket.yaml")
    with open(conf) as f, open(conf2, "w") as g:
        text = f.read()
        listen = text.split("\nlisten: ")[1].split("\n")[0]
        g.write(text.replace("\nlisten: " + listen, "\nlisten: ipc://" +
                             os.path.join(work, "cmd2.sock")))
    r = run([AGENT, "-c", conf2], timeout=WAIT)
    T.ok(r.returncode == 1 and "in use by a running agent" in r.stderr
         and os.path.exists(sock) and a3.status() is not None,
         "an agent whose status socket is taken refuses to start",
         r.stderr[-500:])
    a3.p.send_signal(signal.SIGTERM)
    T.ok(a3.p.wait(WAIT) == 0, "and that one stops cleanly")


def main():
    for path in (AGENT, SEND):
        if not os.access(path, os.X_OK):
            print("1..0 # SKIP %s not built" % path)
            return 0
    work = tempfile.mkdtemp(prefix="reflex-agent-test-")
    ports = {"base": free_ports(2), "stub": free_ports(1),
             "broken": free_ports(1),
             "listen": free_ports(1), "coord": free_ports(1)}
    conf, sock = write_config(work, ports)
    url = "tcp://127.0.0.1:%d" % ports["listen"]
    agent = None
    try:
        check_cli(work, conf)
        agent = Agent(work, conf)  # no coordinator yet: must not matter
        if check_startup(agent, ports, sock) is None:
            return T.done()
        for i in info(ports["base"] + 1), info(ports["stub"]):
            PIDS.update([i["pid"], i["grandchild"] or 0])
        coord = FakeCoordinator("tcp://127.0.0.1:%d" % ports["coord"])
        check_coordinator(agent, coord, ports)
        check_crash(agent, ports, coord)
        check_probe_failure(agent, ports)
        check_probe_timeout(agent, ports)
        check_broken(agent, url)
        check_restart_commands(agent, ports, url)
        check_check(agent, ports, url)
        check_other_commands(agent, ports, url, sock)
        check_recent_actions(agent, sock)
        check_bad_frames(agent, url)
        check_shutdown(agent, sock)
        check_agent_killed(work, conf, sock)
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
