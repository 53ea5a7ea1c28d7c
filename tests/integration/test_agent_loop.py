#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex-agent's main loop sleeps until its next deadline or event.

The loop has no periodic tick: it sleeps until the next deadline (probe,
backoff, heartbeat, exchange, command) or until an event wakes it
(signal, child output, nng completion, curl). A missed wake-up shows as
something that never happens. So every agent here but one runs with a
heartbeat of one hour, and no probe unless probes are the subject: the
event under test is the only thing that can wake its loop, and the test
does not ask the agent anything (a status request would wake it) before
the thing waited for has happened. Waits are bounded by WAIT; nothing is
timed.

  quiet agent: output of a child is read (a child writing 300 KB only
    gets past its writes if the agent drains the pipe); a crash is seen
    (the fake coordinator gets the permit request) and the instance
    restarted after its backoff; commands (one answered at once, one
    after an HTTP request, logged in one info line) and SIGHUP are
    handled; the idle loop wakes only for the status request that asks
    (loop_wakeups), not to publish metrics, and /healthz says ok; SIGTERM
    stops it.
  probing agent: probes run at their period (the service counts them).
  ten probed instances: each instance's probes all come on one kept-alive
    connection (curl's default cache keeps 4 per transfer in progress: it
    closed one whenever a probe ended with fewer than two others running).
  silent coordinator: an exchange that gets no answer fails at its
    deadline (link.down "no answer in time").
  heartbeat agent: heartbeats go out at their interval.
  direct agent: reload_config, check and refusals are answered on the
    nng thread that decoded them while the loop sleeps (loop_wakeups
    grows only by the status requests that read it), each with its one
    cmd.done line and its action-log entry.
  in-flight agent: 64 commands are in flight on one agent at once (64
    clear_cache requests reach the service before any is answered).
  late coordinator: the first answer comes after the exchange's deadline
    (a proxy holds it 7 s): the exchange fails (no answer in time), the
    agent dials a new connection, registers there, and its loop does not
    spin on the late answer.

Uses reflex-send as the coordinator and tests/lib/agent_test_svc.py as
the probed service. Prints TAP.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import (Lab, LabTimeout, Tap, free_port,  # noqa
                       free_ports, http_get, http_json, reflex_binary,
                       wait_until)

SVC = os.path.join(SRC, "tests", "lib", "agent_test_svc.py")
WAIT = 20.0
HOUR = "1h"


def agent_conf(lab, name, coord_port, services, heartbeat=HOUR, extra=""):
    text = (f"node: {name}\n"
            f"coordinator: tcp://127.0.0.1:{coord_port}\n"
            f"listen: tcp://127.0.0.1:{free_port()}\n"
            f"status_socket: {lab.path(name + '.sock')}\n"
            f"log_level: debug\n"
            f"heartbeat_interval: {heartbeat}\n"
            f"{extra}"
            f"services:\n{services}")
    return lab.write_file(f"{name}.yaml", text)


class FakeCoordinator:
    """reflex-send serve: prints every request, answers ok (permits:
    granted)."""

    def __init__(self, lab, name):
        self.port = free_port()
        self.lines = []
        self.p = subprocess.Popen(
            [reflex_binary("reflex-send"), f"tcp://127.0.0.1:{self.port}",
             "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def of_type(self, t):
        return [m for m in list(self.lines) if m.get("type") == t]

    def stop(self):
        self.p.kill()
        self.p.wait()


class SilentCoordinator:
    """Accepts the agent's connection and completes the SP handshake as a
    rep socket, then reads requests and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._conn, args=(c,),
                             daemon=True).start()

    def _conn(self, c):
        try:
            c.recv(8)                                # the req's header
            c.sendall(b"\x00SP\x00\x00\x31\x00\x00")  # rep0 (0x31)
            while True:
                data = c.recv(65536)
                if not data:
                    return
                self.requests += 1
        except OSError:
            return

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def status(conf):
    r = subprocess.run([reflex_binary("reflex-agent"), "status", "-c", conf,
                        "--json"], capture_output=True, text=True, timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 else None


def send(port, *args):
    r = subprocess.run([reflex_binary("reflex-send"),
                        f"tcp://127.0.0.1:{port}"] + list(args),
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {"rc": r.returncode}


def children(pid):
    """{child pid: argv} of pid, from /proc (asks the agent nothing)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                out[int(d)] = f.read().split(b"\0")[:-1]
        except (OSError, ValueError, IndexError):
            continue
    return out


def sleepers(pid, arg):
    return [c for c, argv in children(pid).items()
            if argv[:1] == [b"/bin/sleep"] and argv[1:2] == [arg]]


def wakeups_metric(url):
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith("reflex_agent_loop_wakeups_total "):
            return float(line.split()[1])
    return None


def waits(tap, pred, desc, diag=None):
    try:
        v = wait_until(pred, WAIT, what=desc)
    except LabTimeout as e:
        tap.ok(False, desc, f"{e}; {diag() if diag else ''}")
        return None
    tap.ok(True, desc)
    return v


def check_quiet(tap, lab):
    coord = FakeCoordinator(lab, "coord-quiet")
    # 300 KB, far more than a pipe holds, then it becomes a sleep.
    chatty = lab.write_file("chatty.sh", "head -c 300000 /dev/zero | "
                            "tr '\\000' x\necho\nexec /bin/sleep 1000002\n")
    svcs = ('  - name: quiet\n'
            '    command: ["/bin/sleep", "1000001"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n'
            '    restart_backoff: { initial: 300ms, max: 1s }\n'
            '  - name: chatty\n'
            f'    command: ["/bin/sh", "{chatty}"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n')
    mport = free_port()
    conf = agent_conf(lab, "loop-quiet", coord.port, svcs,
                      extra=f"metrics_listen: 127.0.0.1:{mport}\n")
    listen = int(open(conf).read().split("listen: tcp://127.0.0.1:")[1]
                 .split()[0])
    agent = lab.start("agent-quiet", [reflex_binary("reflex-agent"), "-c",
                                      conf])
    try:
        waits(tap, lambda: coord.of_type("register"),
              "the agent registers with the fake coordinator")
        waits(tap, lambda: sleepers(agent.pid, b"1000002"),
              "a child's 300 KB of output is drained: it gets past its "
              "writes (the output pipe wakes the loop)",
              lambda: children(agent.pid))
        old = waits(tap, lambda: sleepers(agent.pid, b"1000001"),
                    "the quiet instance runs")
        if old:
            os.kill(old[0], signal.SIGKILL)
            waits(tap, lambda: coord.of_type("permit"),
                  "its crash is seen at once (SIGCHLD wakes the loop): the "
                  "coordinator gets the permit request")
            waits(tap, lambda: [p for p in sleepers(agent.pid, b"1000001")
                                if p != old[0]],
                  "the granted restart starts after the backoff delay (the "
                  "permit answer and the backoff deadline wake the loop)")
        else:
            tap.ok(False, "crash seen: no instance to kill")
            tap.ok(False, "restart: no instance to kill")
        r = send(listen, "command", "check", "quiet")
        tap.ok(r.get("ok") is True, "a command is answered (the command "
               "server wakes the loop)", json.dumps(r))
        r = send(listen, "command", "clear_cache", "quiet", "--action-id",
                 "4242")
        lines = [ln for ln in agent.log_text().splitlines()
                 if "level=info" in ln and "action_id=4242" in ln]
        tap.ok(r.get("ok") is False and len(lines) == 1 and
               "event=cmd.done" in lines[0] and "service=quiet" in lines[0]
               and "ok=false" in lines[0],
               "a command gets one info line, cmd.done, with the request "
               "and the outcome (its HTTP request's completion wakes the "
               "loop)", json.dumps({"reply": r, "lines": lines}))
        agent.signal(signal.SIGHUP)
        waits(tap, lambda: "event=agent.sighup" in agent.log_text(),
              "SIGHUP is handled (the signalfd wakes the loop)")
        s0 = status(conf)
        time.sleep(3)
        s1 = status(conf)
        w0 = s0["stats"]["loop_wakeups"] if s0 else None
        w1 = s1["stats"]["loop_wakeups"] if s1 else None
        tap.ok(w0 is not None and w1 is not None and w1 - w0 <= 2,
               "idle with nothing due: the loop woke only for the status "
               "request, not every second", f"loop_wakeups {w0} -> {w1} in "
               "3 s")
        # /metrics is served from the loop's last snapshot without waking
        # the loop: an idle loop publishes nothing new.
        murl = f"http://127.0.0.1:{mport}"
        m0 = wakeups_metric(murl)
        time.sleep(2)
        m1 = wakeups_metric(murl)
        hz = http_get(murl + "/healthz")
        tap.ok(m0 is not None and m0 == m1 and hz.status == 200,
               "idle, the loop does not wake to publish metrics, and "
               "/healthz still says ok (the loop's next deadline is an hour "
               "away)", f"loop_wakeups_total {m0} -> {m1}; /healthz "
               f"{hz.status} {hz.text!r}")
        n = len(coord.of_type("heartbeat"))
        tap.ok(n == 0, "no heartbeat within the hour's interval",
               f"{n} heartbeats")
        agent.signal(signal.SIGTERM)
        try:
            rc = agent.wait(WAIT)
        except Exception as e:  # noqa: BLE001
            rc = repr(e)
        tap.ok(rc == 0 and "event=agent.stopped" in agent.log_text(),
               "SIGTERM stops the agent cleanly", f"rc {rc}")
    finally:
        coord.stop()


def check_probes(tap, lab):
    coord = FakeCoordinator(lab, "coord-probes")
    port = free_port()
    svcs = ('  - name: probed\n'
            f'    command: ["{sys.executable}", "{SVC}", "--port", '
            '"{port}", "--name", "{instance}"]\n'
            f'    base_port: {port}\n'
            '    stop_grace: 1s\n'
            '    probe: { path: /healthz, period: 300ms, timeout: 250ms, '
            'initial_delay: 300ms }\n')
    conf = agent_conf(lab, "loop-probes", coord.port, svcs)
    lab.start("agent-probes", [reflex_binary("reflex-agent"), "-c", conf])
    url = f"http://127.0.0.1:{port}/info"
    try:
        first = waits(tap, lambda: http_json(url).get("healthz", 0) >= 1,
                      "the probed service gets its first probe")
        h0 = http_json(url)["healthz"] if first else 0
        waits(tap, lambda: first and http_json(url)["healthz"] >= h0 + 4,
              "probes go on at their period with nothing else to wake "
              "the loop (probe deadlines and curl wake it)")
    finally:
        coord.stop()


def check_probe_conns(tap, lab):
    coord = FakeCoordinator(lab, "coord-conns")
    n = 10
    port = free_ports(n)
    ports = [port + i for i in range(n)]
    # Two groups half a period apart: a probe often ends with one or two
    # others in progress, when curl's default cache holds only 4 or 8.
    svcs = "".join(
        f'  - name: kept{k}\n'
        f'    command: ["{sys.executable}", "{SVC}", "--port", '
        '"{port}", "--name", "{instance}"]\n'
        f'    instances: {n // 2}\n'
        f'    base_port: {port + k * (n // 2)}\n'
        '    stop_grace: 1s\n'
        '    probe: { path: /healthz, period: 1s, timeout: 1s, '
        f'initial_delay: {200 + 500 * k}ms }}\n' for k in (0, 1))
    conf = agent_conf(lab, "loop-conns", coord.port, svcs)
    lab.start("agent-conns", [reflex_binary("reflex-agent"), "-c", conf])

    def infos():
        return [http_json(f"http://127.0.0.1:{p}/info") for p in ports]

    def probed(k):
        try:
            return all(i.get("healthz", 0) >= k for i in infos())
        except Exception:
            return False

    try:
        if waits(tap, lambda: probed(4), f"each of {n} instances is probed "
                 "4 times"):
            got = [i.get("healthz_conns") for i in infos()]
            tap.ok(got == [1] * n, "each instance's probes come on one "
                   "connection", f"connections per instance: {got}")
        else:
            tap.ok(False, "each instance's probes come on one connection",
                   "no probes to count")
    finally:
        coord.stop()


def check_silent(tap, lab):
    coord = SilentCoordinator()
    svcs = ('  - name: quiet\n'
            '    command: ["/bin/sleep", "1000003"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n')
    conf = agent_conf(lab, "loop-silent", coord.port, svcs)
    agent = lab.start("agent-silent", [reflex_binary("reflex-agent"), "-c",
                                       conf])
    try:
        waits(tap, lambda: coord.requests >= 1,
              "the agent sends its register to a coordinator that never "
              "answers")
        waits(tap, lambda: "event=link.down" in agent.log_text() and
              "no answer in time" in agent.log_text(),
              "the exchange fails at its deadline: link.down, no answer in "
              "time (the exchange deadline wakes the loop)",
              lambda: agent.log_text(tail=5))
        st = status(conf)
        c = (st or {}).get("coordinator", {})
        tap.ok(c.get("connected") is False and c.get("registered") is False
               and "no answer in time" in (c.get("last_error") or ""),
               "status: not connected, not registered, the reason",
               json.dumps(c))
    finally:
        coord.stop()


def check_heartbeats(tap, lab):
    coord = FakeCoordinator(lab, "coord-hb")
    svcs = ('  - name: quiet\n'
            '    command: ["/bin/sleep", "1000004"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n')
    conf = agent_conf(lab, "loop-hb", coord.port, svcs, heartbeat="400ms")
    lab.start("agent-hb", [reflex_binary("reflex-agent"), "-c", conf])
    try:
        waits(tap, lambda: len(coord.of_type("heartbeat")) >= 3,
              "heartbeats go out at their interval (the heartbeat deadline "
              "wakes the loop)")
    finally:
        coord.stop()


def check_direct(tap, lab):
    coord = FakeCoordinator(lab, "coord-direct")
    svcs = ('  - name: quiet\n'
            '    command: ["/usr/bin/nohup", "/bin/sleep", "1000005"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n')
    conf = agent_conf(lab, "loop-direct", coord.port, svcs)
    listen = int(open(conf).read().split("listen: tcp://127.0.0.1:")[1]
                 .split()[0])
    agent = lab.start("agent-direct", [reflex_binary("reflex-agent"), "-c",
                                       conf])
    n = 20
    try:
        waits(tap, lambda: coord.of_type("register") and
              sleepers(agent.pid, b"1000005"),
              "the direct agent registers and runs its instance")
        s0 = status(conf)
        replies = [send(listen, "command", "reload_config" if i % 2 else
                        "check", "quiet", "--action-id", str(5000 + i))
                   for i in range(n)]
        refused = send(listen, "command", "check", "nosuch")
        s1 = status(conf)
        w0 = s0["stats"]["loop_wakeups"] if s0 else None
        w1 = s1["stats"]["loop_wakeups"] if s1 else None
        tap.ok(all(r.get("ok") is True for r in replies) and
               refused.get("ok") is False and refused.get("code") == -2,
               f"{n} reload_config/check commands answered ok, one for an "
               "unknown service refused (-ENOENT)",
               json.dumps(replies[:2] + [refused]))
        tap.ok(w0 is not None and w1 is not None and w1 - w0 <= 2,
               f"the {n + 1} commands are answered without waking the loop "
               "(only the status request does)",
               f"loop_wakeups {w0} -> {w1}")
        text = agent.log_text()
        lines = [ln for ln in text.splitlines() if "level=info" in ln and
                 "event=cmd.done" in ln and "action=reload_config" in ln]
        ids = sorted(int(ln.split("action_id=")[1].split()[0])
                     for ln in lines)
        tap.ok(ids == [5000 + i for i in range(1, n, 2)],
               "each reload_config answered directly has its one info "
               "line, cmd.done", f"action_ids {ids}")
        acts = (s1 or {}).get("actions", [])
        tap.ok(len([a for a in acts if a.get("kind") == "reload_config"
                    and a.get("result") == "ok"]) == n // 2,
               "each reload_config is in the action log",
               json.dumps(acts[:2]))
    finally:
        coord.stop()


class HoldServer:
    """Answers POST /cache/clear only once `want` of them are open at the
    same time (then all with 200), or 503 to all after `limit` s."""

    def __init__(self, port, want, limit):
        import http.server
        self.want = want
        self.open = 0
        self.most = 0
        self.cv = threading.Condition()
        self.released = False
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                with outer.cv:
                    outer.open += 1
                    outer.most = max(outer.most, outer.open)
                    if outer.open >= outer.want:
                        outer.released = True
                        outer.cv.notify_all()
                    outer.cv.wait_for(lambda: outer.released, limit)
                    ok = outer.released
                    outer.open -= 1
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def check_in_flight(tap, lab):
    coord = FakeCoordinator(lab, "coord-flight")
    port = free_port()
    svcs = ('  - name: held\n'
            '    command: ["/bin/sleep", "1000006"]\n'
            f'    base_port: {port}\n'
            '    stop_grace: 1s\n')
    conf = agent_conf(lab, "loop-flight", coord.port, svcs)
    listen = int(open(conf).read().split("listen: tcp://127.0.0.1:")[1]
                 .split()[0])
    n = 64
    # The agent's own limit on one POST is 5 s (AGENT_CACHE_TIMEOUT_MS).
    held = HoldServer(port, n, 4.5)
    agent = lab.start("agent-flight", [reflex_binary("reflex-agent"), "-c",
                                       conf])
    try:
        waits(tap, lambda: coord.of_type("register") and
              sleepers(agent.pid, b"1000006"),
              "the in-flight agent registers and runs its instance")
        procs = [subprocess.Popen(
            [reflex_binary("reflex-send"), f"tcp://127.0.0.1:{listen}",
             "command", "clear_cache", "held"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            try:
                outs.append(json.loads(out))
            except ValueError:
                outs.append({"rc": p.returncode})
        ok = [r for r in outs if r.get("ok") is True]
        bad = [r for r in outs if r.get("ok") is not True][:2]
        tap.ok(len(ok) == n and held.most >= n,
               f"{n} commands are in flight on one agent at once: all "
               f"{n} POSTs reach the service before any is answered",
               f"{len(ok)} ok; at most {held.most} open at once; "
               f"{json.dumps(bad)}")
    finally:
        held.stop()
        coord.stop()


class LateProxy:
    """TCP proxy to a real coordinator (reflex-send serve) that holds the
    first answer on the first connection for `delay` s; later ones and
    other connections pass at once."""

    def __init__(self, upstream, delay):
        self.upstream = upstream
        self.delay = delay
        self.conns = 0
        self.held = threading.Event()  # the late answer was delivered
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(c, u, 0),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, self.conns),
                             daemon=True).start()

    def _pipe(self, src, dst, down):
        # down: the connection's number on the way to the agent, else 0.
        # The SP handshake is 8 bytes; the answer frames follow.
        seen = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if down == 1 and seen >= 8 and not self.held.is_set():
                    time.sleep(self.delay)
                    self.held.set()
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.sock.close()


def check_late(tap, lab):
    coord = FakeCoordinator(lab, "coord-late")
    proxy = LateProxy(coord.port, 7.0)
    svcs = ('  - name: quiet\n'
            '    command: ["/bin/sleep", "1000007"]\n'
            f'    base_port: {free_port()}\n'
            '    stop_grace: 1s\n')
    conf = agent_conf(lab, "loop-late", proxy.port, svcs, heartbeat="2s")
    agent = lab.start("agent-late", [reflex_binary("reflex-agent"), "-c",
                                     conf])
    try:
        waits(tap, lambda: "no answer in time" in agent.log_text(),
              "an answer later than the deadline fails the exchange (no "
              "answer in time)", lambda: agent.log_text(tail=5))
        waits(tap, lambda: proxy.conns >= 2 and
              "event=link.registered" in agent.log_text(),
              "the agent dials a new connection and registers there",
              lambda: f"{proxy.conns} connections; "
              f"{agent.log_text(tail=5)}")
        waits(tap, lambda: proxy.held.is_set(),
              "the proxy has let the late answer go (to the old "
              "connection)")
        s0 = status(conf)
        time.sleep(1)
        s1 = status(conf)
        w0 = s0["stats"]["loop_wakeups"] if s0 else None
        w1 = s1["stats"]["loop_wakeups"] if s1 else None
        c = (s1 or {}).get("coordinator", {})
        # 1 s: the status request and at most one heartbeat wake it.
        tap.ok(w0 is not None and w1 is not None and w1 - w0 <= 5 and
               c.get("registered") is True,
               "then the loop sleeps (it does not spin on the late answer) "
               "and the agent stays registered",
               f"loop_wakeups {w0} -> {w1}; {json.dumps(c)}")
    finally:
        proxy.stop()
        coord.stop()


def main():
    tap = Tap()
    with Lab(prefix="reflex-agent-loop-") as lab:
        try:
            check_quiet(tap, lab)
            check_probes(tap, lab)
            check_probe_conns(tap, lab)
            check_silent(tap, lab)
            check_heartbeats(tap, lab)
            check_direct(tap, lab)
            check_in_flight(tap, lab)
            check_late(tap, lab)
        except Exception:
            lab.mark_failed()
            raise
        if tap.failed:
            lab.mark_failed()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
