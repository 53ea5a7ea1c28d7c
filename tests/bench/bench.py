# SPDX-License-Identifier: MIT
"""bench.py: reflex's benchmark suite (issue 7), started by tests/bench/run.sh.

Every figure is measured against a floor taken in the same run on the same
machine, everything on 127.0.0.1. The result is a table (figure, reflex,
floor, ratio, goal, holds?) on stdout, and results.json / results.md in
the output directory. Figures only: nothing here is a test, nothing fails
because a goal is missed.

usage: bench.py --build DIR --tools DIR --out DIR [--only a,b] [--profile]
       [--keep]
Benchmarks: ingest latency command fanout agents5k idle probes k8s
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

import reflexlab as rl  # noqa: E402

BENCHES = ("ingest", "latency", "command", "fanout", "agents5k", "idle",
           "probes", "k8s")
BODY_3 = os.path.join(HERE, "data", "webhook-3-alerts.json")
BODY_LAT = os.path.join(HERE, "data", "webhook-latency.json")
WRK_LUA = os.path.join(HERE, "post.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Durations (seconds), chosen so a full run stays under ~10 minutes.
WRK_WARM = 1
WRK_RUN = 8
# Six intervals of the agent's default 10 s heartbeat: where the window
# falls against the heartbeats moves its count by one exchange in six (in
# 20 s it was two exchanges or three, 0.85/s or 1.05/s from one run to
# the next with nothing else different).
IDLE_WINDOW = 60
PROBE_WINDOW = 20
HB_WINDOW = 30
K8S_TARGETS = 40
K8S_WINDOW = 20


# ---------------------------------------------------------------------------
# measuring processes through /proc

def proc_snapshot(pid):
    """CPU time (ns, /proc/PID/task/*/schedstat) and wake-ups (voluntary
    context switches: each is a sleep that something ended), summed over
    the threads of pid and per thread, and RSS."""
    snap = {"t": time.monotonic(), "cpu_ns": 0, "slices": 0, "threads": {}}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                cpu = int(f.read().split()[0])
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"{base}/{tid}/status") as f:
                slices = next(int(ln.split()[1]) for ln in f
                              if ln.startswith("voluntary_ctxt_switches"))
        except (OSError, ValueError, StopIteration):
            continue
        snap["cpu_ns"] += cpu
        snap["slices"] += slices
        snap["threads"][tid] = (comm, cpu, slices)
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                snap[k] = int(v.split()[0])  # kB
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
        snap["utime"], snap["stime"] = int(fields[11]), int(fields[12])
        snap["ticks"] = snap["utime"] + snap["stime"]
    return snap


def proc_delta(a, b):
    """Rates between two snapshots of one process."""
    dt = b["t"] - a["t"]
    threads = {}
    for tid, (comm, cpu, sl) in b["threads"].items():
        c0, s0 = (a["threads"][tid][1:] if tid in a["threads"] else (0, 0))
        t = threads.setdefault(comm, [0, 0, 0])
        t[0] += 1
        t[1] += (cpu - c0) / dt / 1e3          # us CPU per s
        t[2] += (sl - s0) / dt                 # wake-ups per s
    return {
        "seconds": dt,
        "cpu_us_per_s": (b["cpu_ns"] - a["cpu_ns"]) / dt / 1e3,
        "cpu_pct": (b["cpu_ns"] - a["cpu_ns"]) / dt / 1e9 * 100,
        "wakeups_per_s": (b["slices"] - a["slices"]) / dt,
        "ticks": b["ticks"] - a["ticks"],
        "user_share": ((b["utime"] - a["utime"]) / (b["ticks"] - a["ticks"])
                       if b["ticks"] > a["ticks"] else None),
        "rss_kb": b["VmRSS"], "hwm_kb": b["VmHWM"],
        "threads": {k: {"n": v[0], "cpu_us_per_s": round(v[1], 1),
                        "wakeups_per_s": round(v[2], 2)}
                    for k, v in sorted(threads.items())},
    }


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------
# small helpers

def ports_free(base, n):
    """True if every port in [base, base+n) can be listened on now, the
    way nng and the test servers listen (SO_REUSEADDR: connections of an
    earlier benchmark in TIME_WAIT do not count)."""
    for p in range(base, base + n):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def port_block(n):
    """A run of n free loopback ports below the ephemeral range."""
    for base in range(21000, 10000, -1000):
        if ports_free(base, n):
            return base
    for base in range(22000, 32768 - n, 1000):
        if ports_free(base, n):
            return base
    raise rl.LabError(f"no block of {n} free ports found")


def run_json(argv, timeout):
    """Runs a tool that prints one JSON object; returns it."""
    r = subprocess.run([str(a) for a in argv], capture_output=True,
                       text=True, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise rl.LabError(f"{os.path.basename(argv[0])} failed "
                          f"(exit {r.returncode}): {r.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def metrics(url):
    """Prometheus text of /metrics as {name{labels}: value}."""
    out = {}
    for line in rl.http_get(url + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def msum(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    s = (f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else
         f"{v:.2f}" if a >= 0.1 else f"{v:.3f}")
    return s + (" " + unit if unit else "")


# ---------------------------------------------------------------------------
# the suite

class Suite:
    def __init__(self, args):
        self.build = os.path.abspath(args.build)
        self.tools = os.path.abspath(args.tools)
        self.out = os.path.abspath(args.out)
        self.profile = args.profile
        self.rows = []
        self.details = {}
        self.profiles = {}
        os.makedirs(self.out, exist_ok=True)
        work = os.path.join(self.out, "work")
        shutil.rmtree(work, ignore_errors=True)
        self.lab = rl.Lab(workdir=work, keep=True)
        # Alertmanager authenticates to reflex with a bearer token, as in
        # production; every client sends it (the floors ignore it).
        self.token = "bench-" + os.urandom(12).hex()
        self.token_file = self.lab.write_file("webhook.token",
                                              self.token + "\n")
        os.chmod(self.token_file, 0o600)
        self.auth = {"Authorization": "Bearer " + self.token,
                     "Content-Type": "application/json"}

    # -- plumbing -----------------------------------------------------------

    def tool(self, name):
        p = os.path.join(self.tools, name)
        if not os.access(p, os.X_OK):
            raise rl.LabError(f"bench tool {p} missing (run run.sh)")
        return p

    def binary(self, name):
        return rl.reflex_binary(name, self.build)

    def row(self, figure, reflex, floor, ratio, goal, holds, unit="",
            note=""):
        r = {"figure": figure, "reflex": reflex, "floor": floor,
             "ratio": ratio, "goal": goal, "holds": holds, "unit": unit,
             "note": note}
        self.rows.append(r)
        h = {True: "yes", False: "NO", None: "n/a"}.get(holds, holds)
        print(f"  {figure}: reflex {fmt(reflex, unit)}, floor "
              f"{fmt(floor, unit)}, ratio {fmt(ratio)}, goal {goal}: {h}",
              flush=True)

    def start(self, name, argv, **kw):
        return self.lab.start(name, argv, **kw)

    def stop(self, p):
        if p is not None:
            self.lab.stop(p)

    def perf(self, pid, name, seconds):
        """With --profile: samples pid for `seconds` in the background;
        the flat profile lands in <out>/profiles/<name>.txt."""
        if not self.profile or shutil.which("perf") is None:
            return None
        d = os.path.join(self.out, "profiles")
        os.makedirs(d, exist_ok=True)
        data = os.path.join(d, name + ".data")

        def run():
            subprocess.run(["perf", "record", "-q", "-F", "997", "-g",
                            "-p", str(pid), "-o", data, "--", "sleep",
                            str(seconds)], capture_output=True)
            rep = subprocess.run(
                ["perf", "report", "-i", data, "--stdio", "--no-children",
                 "--sort", "dso,symbol", "--percent-limit", "0.7", "-g",
                 "none"], capture_output=True, text=True)
            with open(os.path.join(d, name + ".txt"), "w") as f:
                f.write(rep.stdout)
            self.profiles[name] = os.path.join(d, name + ".txt")

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def coordinator(self, name, mode="live", sync_full=True, rules=None,
                    safety=None, extra=None):
        http_port, nng_port = rl.free_port(), rl.free_port()
        conf = {
            "listen": f"127.0.0.1:{http_port}",
            "agent_listen": f"tcp://127.0.0.1:{nng_port}",
            "journal": self.lab.path(f"{name}-journal.db"),
            "log_level": "info",
            "journal_sync_full": sync_full,
            "mode": mode,
            "agent_lost_after": "1h",
            "auth": {"webhook_token_file": self.token_file},
            "safety": safety or {
                "max_concurrent": 10000, "global_max_actions": 10000,
                "service_max_actions": 10000, "blast_radius_percent": 100,
                "storm_percent": 100, "storm_min_targets": 100000,
            },
            "rules": rules or [{
                "name": "restart-on-high-error-rate",
                "matchers": ['alertname = "HighErrorRate"'],
                "cooldown": "2m",
                "actions": [{"type": "restart", "service": "{{ service }}",
                             "instance": "{{ instance }}",
                             "timeout": "30s"}],
            }],
        }
        # A/B runs of the bulk threads' class (README: cpu_scheduling);
        # unset: the coordinator's default.
        sched = os.environ.get("REFLEX_BENCH_CPU_SCHEDULING")
        if sched:
            conf["cpu_scheduling"] = sched
        conf.update(extra or {})
        path = self.lab.write_file(f"{name}.yml", rl.yaml_dump(conf))
        url = f"http://127.0.0.1:{http_port}"
        p = self.start(name, [self.binary("reflex-coordinator"), "-c", path],
                       ready_url=url + "/healthz", port=http_port)
        p.nng = conf["agent_listen"]
        return p

    def agent(self, name, coord_nng, services, heartbeat=None):
        nng_port = rl.free_port()
        conf = {
            "node": name,
            "coordinator": coord_nng,
            "listen": f"tcp://127.0.0.1:{nng_port}",
            "status_socket": self.lab.path(f"{name}.sock"),
            "log_level": "info",
            "services": services,
        }
        if heartbeat:
            conf["heartbeat_interval"] = heartbeat
        path = self.lab.write_file(f"{name}.yml", rl.yaml_dump(conf))
        p = self.start(name, [self.binary("reflex-agent"), "-c", path])
        p.nng = conf["listen"]
        return p

    def wait_agents(self, coord, n, timeout):
        def ok():
            if not coord.alive():
                raise rl.LabAbort("coordinator exited")
            m = metrics(coord.url)
            return m.get("reflex_agents_registered", 0) >= n
        rl.wait_until(ok, timeout, interval=0.2,
                      what=f"{n} agents registered")

    def wrk(self, url, seconds, body=BODY_3, conns=32, threads=2):
        r = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s",
             "--timeout", "5s", "-s", WRK_LUA, url, "--", body,
             self.token],
            capture_output=True, text=True, timeout=seconds + 30)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise rl.LabError(f"wrk gave no summary: {r.stdout[-500:]} "
                              f"{r.stderr[-500:]}")
        d = json.loads(lines[-1])
        d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
        d["ok_rps"] = (d["requests"] - d["non_2xx"]) / (d["duration_us"] /
                                                         1e6)
        return d

    # -- 1. webhook ingest ----------------------------------------------------

    def bench_ingest(self):
        print("ingest: wrk, 32 connections, 3-alert body "
              f"({os.path.getsize(BODY_3)} bytes), {WRK_RUN} s each",
              flush=True)
        port = rl.free_port()
        fl = self.start("floor-http", [self.tool("floor-http"), "--listen",
                                       f"127.0.0.1:{port}"])
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        rl.wait_until(lambda: self._tcp_open(port), 5, what="floor-http")
        self.wrk(url, WRK_WARM)
        floor = self.wrk(url, WRK_RUN)
        self.stop(fl)

        port = rl.free_port()
        py = self.start("ref-receiver", [sys.executable,
                                         os.path.join(HERE, "ref_receiver.py"),
                                         "--port", str(port)])
        rl.wait_until(lambda: self._tcp_open(port), 10, what="ref receiver")
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        self.wrk(url, WRK_WARM)
        pyref = self.wrk(url, WRK_RUN)
        self.stop(py)

        dur = self._ingest_reflex("coord-durable", "live", True)
        sh = self._ingest_reflex("coord-shadow", "shadow", False)
        self.details["ingest"] = {"floor_http": floor, "python_ref": pyref,
                                  "durable": dur, "shadow": sh}

        fr, pr = floor["ok_rps"], pyref["ok_rps"]
        d, s = dur["wrk"]["ok_rps"], sh["wrk"]["ok_rps"]
        note = (f"{dur['wrk']['rps']:,.0f} answers/s of which "
                f"{dur['wrk']['non_2xx']:,} non-2xx (503: alert queue "
                f"full); engine decided {dur['decisions_per_s']:,.0f} "
                f"alerts/s, backlog {dur['backlog_end']:.0f} at the end")
        self.row("webhook ingest, durable (req/s) vs bare nng HTTP", d, fr,
                 d / fr, ">= 0.30", d / fr >= 0.30, "req/s", note)
        self.row("webhook ingest, durable (req/s) vs Python reference", d,
                 pr, d / pr, ">= 5x", d / pr >= 5, "req/s")
        # 32 requests are in flight: grouped commits share one fsync
        # among several of them; about 1 means one fsync per request.
        self.row("durable: 2xx webhook requests per journal commit",
                 dur["req_per_commit"], None, None,
                 ">= 4 (grouped; 32 in flight)", dur["req_per_commit"] >= 4,
                 "", f"{dur['commits_per_s']:.0f} commits/s for "
                 f"{d:.0f} accepted webhooks/s")
        self.row("webhook ingest, shadow (req/s) vs bare nng HTTP", s, fr,
                 s / fr, ">= 0.50", s / fr >= 0.50, "req/s",
                 f"{sh['wrk']['rps']:,.0f} answers/s of which "
                 f"{sh['wrk']['non_2xx']:,} non-2xx; engine decided "
                 f"{sh['decisions_per_s']:,.0f} alerts/s")

    def _tcp_open(self, port):
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _ingest_reflex(self, name, mode, sync_full):
        # The run before this one may have left ~1 GB of journal for the
        # kernel to write back; measured beside that writeback, CPU per
        # webhook moved by a third between identical runs. Flushed first.
        os.sync()
        c = self.coordinator(name, mode=mode, sync_full=sync_full)
        url = c.url + "/api/v1/alerts"
        self.wrk(url, WRK_WARM)
        self._drain(c, 30)
        m0 = metrics(c.url)
        s0 = proc_snapshot(c.pid)
        prof = self.perf(c.pid, f"ingest-{mode}", WRK_RUN - 1)
        w = self.wrk(url, WRK_RUN)
        s1 = proc_snapshot(c.pid)
        m1 = metrics(c.url)
        if prof:
            prof.join()
        backlog = m1.get("reflex_alert_queue_depth", 0)
        t0 = time.monotonic()
        self._drain(c, 60)
        drain = time.monotonic() - t0
        m2 = metrics(c.url)
        ok = (m1.get('reflex_webhook_requests_total{code="2xx"}', 0) -
              m0.get('reflex_webhook_requests_total{code="2xx"}', 0))
        commits = (m1.get("reflex_journal_commits_total", 0) -
                   m0.get("reflex_journal_commits_total", 0))
        dec = (msum(m2, "reflex_decisions_total") -
               msum(m0, "reflex_decisions_total"))
        res = {"wrk": w, "cpu": proc_delta(s0, s1),
               "requests_2xx": ok, "commits": commits,
               "req_per_commit": ok / commits if commits else 0,
               "commits_per_s": commits / (w["duration_us"] / 1e6),
               "backlog_end": backlog, "drain_s": drain,
               "decisions": dec,
               "decisions_per_s": dec / (w["duration_us"] / 1e6 + drain),
               "journal_bytes": m2.get("reflex_journal_size_bytes", 0)}
        self.stop(c)
        return res

    def _drain(self, c, timeout):
        def empty():
            m = metrics(c.url)
            return (m.get("reflex_alert_queue_depth", 0) == 0 and
                    m.get("reflex_actions_in_flight", 0) == 0)
        try:
            rl.wait_until(empty, timeout, interval=0.1,
                          what="engine queue drained")
        except rl.LabTimeout:
            pass

    # -- 2. alert -> ack latency ----------------------------------------------

    def bench_latency(self):
        print("latency: one webhook at a time, simulated agent acks at once",
              flush=True)
        port = rl.free_port()
        fl = self.start("floor-http-lat", [self.tool("floor-http"),
                                           "--listen", f"127.0.0.1:{port}"])
        rl.wait_until(lambda: self._tcp_open(port), 5, what="floor-http")
        fh = run_json([self.tool("lat-gen"), "http", "--url",
                       f"http://127.0.0.1:{port}/api/v1/alerts", "--body",
                       BODY_LAT, "--count", 2000, "--bearer", self.token],
                      60)
        self.stop(fl)
        fn = self._nng_floor("rtt", ["--count", 2000])
        f50 = fh["latency"]["p50_us"] + fn["rtt"]["p50_us"]
        f99 = fh["latency"]["p99_us"] + fn["rtt"]["p99_us"]
        fs = self._fdatasync_cost(1000)

        res = {}
        for sync in (True, False):
            c = self.coordinator(f"coord-lat-{'full' if sync else 'normal'}",
                                 sync_full=sync)
            prof = self.perf(c.pid, f"latency-sync-{sync}", 4) \
                if sync else None
            r = run_json([self.tool("lat-gen"), "alert", "--url",
                          c.url + "/api/v1/alerts", "--body", BODY_LAT,
                          "--coordinator", c.nng, "--listen",
                          f"tcp://127.0.0.1:{rl.free_port()}", "--count",
                          1000, "--gap-ms", 5, "--bearer", self.token],
                         180)
            if prof:
                prof.join()
            self.stop(c)
            res[sync] = r
        self.details["latency"] = {"floor_http": fh, "floor_nng": fn,
                                   "fdatasync": fs,
                                   "durable": res[True],
                                   "sync_normal": res[False]}
        for sync, label in ((True, "durable journal"),
                            (False, "journal_sync_full: false")):
            r = res[sync]
            a = r["alert_to_ack"]
            note = (f"{r['acked']}/{r['webhooks']} acked, webhook answer "
                    f"p50 {r['webhook_response']['p50_us']:.0f} us")
            if sync:
                note += (f"; not in the floor: one fdatasync of 4 KiB "
                         f"in the journal's directory takes "
                         f"p50 {fs['p50_us']:.0f} us, p99 "
                         f"{fs['p99_us']:.0f} us, and the durable path "
                         f"has one")
            self.row(f"alert -> agent ack p50 ({label})", a["p50_us"], f50,
                     a["p50_us"] / f50, "<= 2x", a["p50_us"] <= 2 * f50,
                     "us", note)
            self.row(f"alert -> agent ack p99 ({label})", a["p99_us"], f99,
                     a["p99_us"] / f99, "<= 3x", a["p99_us"] <= 3 * f99,
                     "us")

    def _fdatasync_cost(self, count):
        """fdatasync of a rewritten 4 KiB page in the work directory (where
        the journals are), as SQLite's WAL is rewritten in place."""
        path = os.path.join(self.lab.workdir, "fdatasync-probe")
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
        page = b"\x5a" * 4096
        times = []
        try:
            os.pwrite(fd, page * 16, 0)
            os.fsync(fd)
            for i in range(count):
                os.pwrite(fd, page, (i % 16) * 4096)
                t0 = time.perf_counter()
                os.fdatasync(fd)
                times.append((time.perf_counter() - t0) * 1e6)
        finally:
            os.close(fd)
            os.unlink(path)
        times.sort()
        return {"n": count, "p50_us": times[count // 2],
                "p99_us": times[min(count - 1, count * 99 // 100)]}

    def _nng_floor(self, mode, extra):
        url = f"tcp://127.0.0.1:{rl.free_port()}"
        srv = self.start("floor-nng", [self.tool("floor-nng"), "serve",
                                       url, "--contexts", 64])
        time.sleep(0.2)
        try:
            return run_json([self.tool("floor-nng"), mode, url] + extra, 60)
        finally:
            self.stop(srv)

    # -- 3. command round trip ------------------------------------------------

    def bench_command(self):
        rounds = 3
        print("command: coordinator command channel -> reflex-agent "
              f"(reload_config), {rounds} rounds alternating with the nng "
              "floor", flush=True)
        furl = f"tcp://127.0.0.1:{rl.free_port()}"
        fsrv = self.start("floor-nng", [self.tool("floor-nng"), "serve",
                                        furl, "--contexts", 64])
        listen = f"tcp://127.0.0.1:{rl.free_port()}"
        agent = self.agent("agent-cmd", listen, [{
            "name": "bench",
            "command": ["/usr/bin/nohup", "/bin/sleep", "1000000"],
            "instances": 1, "base_port": rl.free_port(),
            "stop_grace": "1s"}], heartbeat="2s")
        repl = subprocess.Popen(
            [self.tool("cmd-rtt"), "repl", "--listen", listen, "--node",
             "agent-cmd", "--service", "bench", "--instance", "bench-0",
             "--action", "reload_config", "--contexts", "64", "--wait-s",
             "20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        res = {"floor_rtt": [], "floor_load": [], "rtt": [], "load": []}

        def ask(line):
            repl.stdin.write(line + "\n")
            repl.stdin.flush()
            out = repl.stdout.readline()
            if not out.startswith("{"):
                raise rl.LabError("cmd-rtt stopped: " +
                                  repl.stderr.read()[-500:])
            return json.loads(out)
        try:
            if not repl.stdout.readline().startswith("{"):
                raise rl.LabError("cmd-rtt: agent did not register: " +
                                  repl.stderr.read()[-500:])
            prof = None
            for k in range(rounds):
                res["floor_rtt"].append(run_json(
                    [self.tool("floor-nng"), "rtt", furl, "--count", 1000],
                    60))
                res["rtt"].append(ask("rtt 1000"))
                res["floor_load"].append(run_json(
                    [self.tool("floor-nng"), "load", furl, "--contexts", 64,
                     "--seconds", 1], 60))
                if k == 0:
                    prof = self.perf(agent.pid, "command-load-agent", 1)
                res["load"].append(ask("load 1"))
                if prof:
                    prof.join()
                    prof = None
        finally:
            repl.stdin.close()
            try:
                repl.wait(timeout=10)
            except subprocess.TimeoutExpired:
                repl.kill()
            self.stop(agent)
            self.stop(fsrv)
        self.details["command"] = res

        def med(v):
            v = sorted(v)
            return v[len(v) // 2]
        r99 = med([r["rtt"]["p99_us"] for r in res["rtt"]])
        f99 = med([r["rtt"]["p99_us"] for r in res["floor_rtt"]])
        r50 = med([r["rtt"]["p50_us"] for r in res["rtt"]])
        f50 = med([r["rtt"]["p50_us"] for r in res["floor_rtt"]])
        fails = sum(r["failures"] for r in res["rtt"] + res["load"])
        self.row("command round trip p99 (coordinator -> agent)", r99, f99,
                 r99 / f99, "<= 2x", r99 <= 2 * f99, "us",
                 f"median of {rounds} rounds of 1,000; p50 {r50:.0f} us vs "
                 f"floor {f50:.0f} us; failures {fails}")
        rates = [r["rate"] for r in res["load"]]
        frates = [r["rate"] for r in res["floor_load"]]
        rr, ff = med(rates), med(frates)
        self.row("commands/s, 64 in flight", rr, ff, rr / ff, ">= 0.50",
                 rr / ff >= 0.5, "cmd/s",
                 f"median of {rounds} rounds of 1 s; reflex "
                 f"{', '.join(f'{x:,.0f}' for x in rates)}; floor "
                 f"{', '.join(f'{x:,.0f}' for x in frates)}")

    # -- 4. fan-out to 1,000 agents -------------------------------------------

    def _fake_agents(self, name, coord_nng, n, base, hb_ms, extra=()):
        argv = [self.binary("fake-agents"), "--coordinator", coord_nng,
                "--port", base, "--count", n, "--heartbeat-ms", hb_ms,
                "--workload", "fleet:fleet-{i}:127.0.0.1:7000",
                "--workload", "web:web-{i}:127.0.0.1:8080",
                "--workload", "api:api-{i}:127.0.0.1:8081",
                "--workload", "cache:cache-{i}:127.0.0.1:6379"]
        return self.start(name, argv + list(extra))

    def bench_fanout(self):
        n = 1000
        print(f"fanout: one command to {n} simulated agents", flush=True)
        rules = [{
            "name": "fleet-restart",
            "matchers": ['alertname = "FleetConfigDrift"'],
            "cooldown": "1m",
            "actions": [{"type": "restart", "service": "{{ service }}",
                         "timeout": "30s"}],
        }]
        c = self.coordinator("coord-fanout", rules=rules)
        # The block is picked once the coordinator's ports are bound, so
        # it cannot include them (both come from the same range).
        base = port_block(n)
        time.sleep(1.0)
        rss0 = rss_kb(c.pid)
        fa = self._fake_agents("fake-agents-1k", c.nng, n, base, 5000)
        t_reg = time.monotonic()
        self.wait_agents(c, n, 60)
        reg_s = time.monotonic() - t_reg
        time.sleep(2.0)
        rss1 = rss_kb(c.pid)
        per_agent = (rss1 - rss0) / n

        body = json.dumps({
            "receiver": "reflex", "status": "firing", "version": "4",
            "groupKey": "{}:{alertname=\"FleetConfigDrift\"}",
            "alerts": [{"status": "firing",
                        "labels": {"alertname": "FleetConfigDrift",
                                   "service": "fleet", "severity": "warning"},
                        "annotations": {"summary": "config drift"},
                        "startsAt": "2026-12-04T15:40:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": "f1ee7000f1ee7000"}]})
        log = fa.log_path
        pos = os.path.getsize(log)
        t0 = time.monotonic()
        r = rl.http_post(c.url + "/api/v1/alerts", body, self.auth)
        got = self._count_commands(log, pos, n, t0, 3.0)
        time.sleep(0.5)
        acts = rl.http_json(c.url + "/api/v1/actions?limit=1000")
        succeeded = sum(1 for a in acts if a.get("state") == "succeeded")
        within = sum(1 for t in got if t <= 0.250)
        self.stop(fa)
        self.stop(c)

        # The same fan-out through the coordinator's command channel
        # alone (coord_agents.c), without the engine.
        listen = f"tcp://127.0.0.1:{rl.free_port()}"
        fa = None
        cmd = subprocess.Popen(
            [self.tool("cmd-rtt"), "fanout", "--listen", listen, "--nodes",
             str(n), "--service", "fleet", "--action", "restart",
             "--wait-s", "60"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            fa = self._fake_agents("fake-agents-1k-ch", listen, n, base,
                                   5000)
            out, err = cmd.communicate(timeout=120)
        finally:
            if cmd.poll() is None:
                cmd.kill()
            self.stop(fa)
        ch = json.loads([ln for ln in out.splitlines()
                         if ln.startswith("{")][-1])

        self.details["fanout"] = {
            "webhook_status": r.status, "commands_seen": len(got),
            "seen_within_250ms": within,
            "last_seen_ms": max(got) * 1e3 if got else None,
            "actions_succeeded": succeeded, "register_s": reg_s,
            "rss_before_kb": rss0, "rss_after_kb": rss1,
            "channel": ch}
        last = max(got) * 1e3 if got else None
        self.row(f"fan-out: one alert's command to {n} agents, all acked",
                 last if len(got) == n else f"{len(got)}/{n} reached",
                 None, None, "all in <= 250 ms",
                 len(got) == n and last <= 250, "ms",
                 f"{len(got)} agents got it ({within} within 250 ms, last "
                 f"at {fmt(last)} ms); {succeeded} actions succeeded")
        chmax = ch["ack_at"]["max_us"] / 1e3
        self.row(f"fan-out via the command channel alone ({n} agents)",
                 chmax, None, None, "all in <= 250 ms (reference)",
                 ch["acked"] == n and chmax <= 250, "ms",
                 f"{ch['acked']}/{n} acked, p50 "
                 f"{ch['ack_at']['p50_us'] / 1e3:.0f} ms, failures "
                 f"{ch['failures']}")
        self.row(f"coordinator RSS growth per agent ({n} agents, 4 "
                 "workloads each)", per_agent, None, None, "<= 20 KB",
                 per_agent <= 20, "KB",
                 f"{rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB")

    def _count_commands(self, log, pos, n, t0, timeout):
        """Times (s after t0) at which fake-agents printed each restart
        command (other commands, e.g. verification checks, are not the
        fan-out)."""
        got = []
        buf = b""
        with open(log, "rb") as f:
            f.seek(pos)
            while len(got) < n and time.monotonic() - t0 < timeout:
                chunk = f.read()
                if not chunk:
                    time.sleep(0.0005)
                    continue
                now = time.monotonic() - t0
                buf += chunk
                *lines, buf = buf.split(b"\n")
                got += [now for ln in lines if b'"action":"restart"' in ln]
        return got

    # -- 5. 5,000 heartbeating agents -----------------------------------------

    def bench_agents5k(self):
        n = 5000
        print(f"agents5k: {n} simulated agents heartbeating every 10 s",
              flush=True)
        c = self.coordinator("coord-5k")
        base = port_block(n)  # after the coordinator bound its ports
        time.sleep(1.0)
        rss0 = rss_kb(c.pid)
        fa = self._fake_agents("fake-agents-5k", c.nng, n, base, 10000)
        t0 = time.monotonic()
        self.wait_agents(c, n, 120)
        reg_s = time.monotonic() - t0
        time.sleep(12)  # one full heartbeat round after registering
        s0 = proc_snapshot(c.pid)
        m0 = metrics(c.url)
        prof = self.perf(c.pid, "agents5k", HB_WINDOW)
        time.sleep(HB_WINDOW)
        s1 = proc_snapshot(c.pid)
        m1 = metrics(c.url)
        if prof:
            prof.join()
        d = proc_delta(s0, s1)
        lost = m1.get("reflex_agents_lost", 0)
        self.stop(fa)
        self.stop(c)
        self.details["agents5k"] = {"register_s": reg_s, "rss_before_kb":
                                    rss0, "cpu": d, "lost": lost,
                                    "registered": m1.get(
                                        "reflex_agents_registered")}
        rss_mib = s1["VmRSS"] / 1024
        self.row(f"coordinator RSS, {n} agents registered", rss_mib, None,
                 None, "<= 128 MiB", rss_mib <= 128, "MiB",
                 f"{rss0 / 1024:.1f} MiB before; registration took "
                 f"{reg_s:.1f} s")
        self.row(f"coordinator CPU, {n} agents heartbeating every 10 s",
                 d["cpu_pct"], None, None, "<= 5 % of a core",
                 d["cpu_pct"] <= 5, "% core",
                 f"{n / 10:.0f} heartbeats/s; {lost:.0f} agents lost")

    # -- 6. agent idle --------------------------------------------------------

    def bench_idle(self):
        print(f"idle: reflex-agent vs floor-idle for {IDLE_WINDOW} s",
              flush=True)
        c = self.coordinator("coord-idle")
        agent = self.agent("agent-idle", c.nng, [{
            "name": "idle", "command": ["/bin/sleep", "1000000"],
            "instances": 1, "base_port": rl.free_port(),
            "stop_grace": "1s"}])
        fl = self.start("floor-idle", [self.tool("floor-idle"), "--listen",
                                       f"tcp://127.0.0.1:{rl.free_port()}"])
        self.wait_agents(c, 1, 20)
        time.sleep(3)
        a0, f0 = proc_snapshot(agent.pid), proc_snapshot(fl.pid)
        time.sleep(IDLE_WINDOW)
        a1, f1 = proc_snapshot(agent.pid), proc_snapshot(fl.pid)
        da, df = proc_delta(a0, a1), proc_delta(f0, f1)
        self.stop(fl)
        self.stop(agent)
        self.stop(c)
        self.details["idle"] = {"agent": da, "floor": df}
        ra, rf = da["rss_kb"] / 1024, df["rss_kb"] / 1024
        self.row("agent idle RSS", ra, rf, ra / rf, "<= 1.5x",
                 ra <= 1.5 * rf, "MiB")
        wa, wf = da["wakeups_per_s"], df["wakeups_per_s"]
        top = sorted(da["threads"].items(),
                     key=lambda kv: -kv[1]["wakeups_per_s"])[:3]
        self.row("agent idle wake-ups per second (all threads)", wa, wf,
                 wa / wf if wf else None, "<= 1 /s", wa <= 1, "/s",
                 "; ".join(f"{k} x{v['n']}: {v['wakeups_per_s']}/s"
                           for k, v in top))
        pa = da["cpu_pct"]
        self.row("agent idle CPU", pa, df["cpu_pct"],
                 pa / df["cpu_pct"] if df["cpu_pct"] else None,
                 "not measurable (< 0.05 %)", pa < 0.05, "% core",
                 f"{da['cpu_us_per_s']:.0f} us/s; {da['ticks']} clock "
                 f"ticks in {IDLE_WINDOW} s")

    # -- 7. probing 110 targets -----------------------------------------------

    def bench_probes(self):
        n = 110
        print(f"probes: {n} targets, 1 s period, keep-alive and new "
              "connections", flush=True)
        c = self.coordinator("coord-probes")
        base = port_block(n)  # after the coordinator bound its ports
        out = {}
        for close in (False, True):
            kind = "new-conn" if close else "keep-alive"
            fl = self._probe_floor(base, n, close)
            ag = self._probe_agent(base, n, close, c.nng)
            out[kind] = {"floor": fl, "agent": ag}
        self.stop(c)
        self.details["probes"] = out
        for kind, cpu_goal in (("keep-alive", 30), ("new-conn", 100)):
            fl, ag = out[kind]["floor"], out[kind]["agent"]
            s_a, s_f = ag["server_sweep"]["p99_ms"], \
                fl["server_sweep"]["p99_ms"]
            s_a_50, s_f_50 = ag["server_sweep"]["p50_ms"], \
                fl["server_sweep"]["p50_ms"]
            self.row(f"probe sweep p99, {n} targets ({kind})", s_a, s_f,
                     s_a / s_f, "<= 2x", s_a <= 2 * s_f, "ms",
                     f"{ag['server_sweep']['n']} agent sweeps (smallest "
                     f"{ag['server_sweep']['sizes_min']} probes), "
                     f"{fl['server_sweep']['n']} floor sweeps; p50 "
                     f"{s_a_50:.2f} ms vs floor {s_f_50:.2f} ms")
            cp_a, cp_f = ag["cpu_per_probe_us"], fl["cpu_per_probe_us"]
            self.row(f"agent CPU per probe ({kind})", cp_a, cp_f,
                     cp_a / cp_f, f"<= {cpu_goal} us", cp_a <= cpu_goal,
                     "us")

    def _probe_target(self, name, base, n, close):
        rec = self.lab.path(f"{name}.rec")
        argv = [self.tool("probe-target"), "--base-port", base, "--count",
                n, "--record", rec] + (["--close"] if close else [])
        p = self.start(name, argv)
        rl.wait_until(lambda: self._tcp_open(base + n - 1), 5,
                      what="probe-target")
        return p, rec

    def _sweeps(self, rec, t0_ns, t1_ns):
        rows = []
        with open(rec) as f:
            for line in f:
                a, d, _p = line.split()
                a, d = int(a), int(d)
                if t0_ns <= a <= t1_ns:
                    rows.append((a, d))
        rows.sort()
        sweeps, cur = [], []
        for a, d in rows:
            if cur and a - cur[-1][0] > 300_000_000:
                sweeps.append(cur)
                cur = []
            cur.append((a, d))
        if cur:
            sweeps.append(cur)
        durs = sorted((max(d for _, d in s) - s[0][0]) / 1e6 for s in sweeps)
        sizes = [len(s) for s in sweeps]
        k = max(1, int(0.99 * len(durs) + 0.999999)) if durs else 0
        return rows, {
            "n": len(durs), "sizes_min": min(sizes) if sizes else 0,
            "p50_ms": durs[(len(durs) - 1) // 2] if durs else 0,
            "p99_ms": durs[k - 1] if durs else 0,
            "max_ms": durs[-1] if durs else 0}

    def _probe_floor(self, base, n, close):
        name = "probe-target-floor-" + ("close" if close else "ka")
        p, rec = self._probe_target(name, base, n, close)
        t0 = time.monotonic_ns()
        r = run_json([self.tool("floor-curl"), "sweep", "--base-port", base,
                      "--targets", n, "--period-ms", 1000, "--sweeps",
                      PROBE_WINDOW], PROBE_WINDOW + 30)
        t1 = time.monotonic_ns()
        self.stop(p)
        rows, sw = self._sweeps(rec, t0 + 500_000_000, t1)
        r["server_sweep"] = sw
        return r

    def _probe_agent(self, base, n, close, coord_nng):
        name = "probe-target-agent-" + ("close" if close else "ka")
        p, rec = self._probe_target(name, base, n, close)
        half = n // 2
        svcs = [{"name": f"probe{k}",
                 "command": ["/bin/sleep", "1000000"],
                 "instances": cnt, "base_port": base + off,
                 "stop_grace": "1s",
                 "probe": {"path": "/healthz", "period": "1s",
                           "timeout": "1s", "failure_threshold": 3,
                           "initial_delay": "1s"}}
                for k, (off, cnt) in enumerate(((0, half),
                                                (half, n - half)))]
        ag = self.agent("agent-probes-" + ("close" if close else "ka"),
                        coord_nng, svcs)
        time.sleep(4)
        t0 = time.monotonic_ns()
        s0 = proc_snapshot(ag.pid)
        prof = self.perf(ag.pid, "probes-" + ("close" if close else "ka"),
                         PROBE_WINDOW - 1)
        time.sleep(PROBE_WINDOW)
        s1 = proc_snapshot(ag.pid)
        t1 = time.monotonic_ns()
        if prof:
            prof.join()
        self.stop(ag)
        self.stop(p)
        rows, sw = self._sweeps(rec, t0, t1)
        d = proc_delta(s0, s1)
        probes = len(rows)
        return {"probes": probes, "cpu": d, "server_sweep": sw,
                "cpu_per_probe_us": (d["cpu_us_per_s"] * d["seconds"] /
                                     probes) if probes else None}

    # -- 8. Kubernetes API rate -----------------------------------------------

    def bench_k8s(self):
        n, window = K8S_TARGETS, K8S_WINDOW
        print(f"k8s: storm of {n} ServiceDown alerts on the kubernetes "
              f"runtime, API calls counted at the fake API server for "
              f"{window} s", flush=True)
        try:
            sys.path.insert(0, os.path.join(SRC, "tests"))
            from fakek8s import FakeAPIServer
        except ImportError as e:
            self.row("Kubernetes API calls during a storm",
                     "not measured yet", None, None, "<= 5 QPS, burst 10",
                     None, "", f"the fake API server cannot be loaded: {e}")
            return
        if shutil.which("openssl") is None:
            self.row("Kubernetes API calls during a storm",
                     "not measured yet", None, None, "<= 5 QPS, burst 10",
                     None, "", "openssl is missing (the fake API server "
                     "needs it for TLS)")
            return
        qps, burst = 5, 10  # reflex's defaults (kubernetes.client)
        times = []

        class Arrivals(list):
            """The fake server walks its fault list once per request,
            right after reading it: that walk timestamps the arrival."""
            def __iter__(self):
                times.append(time.monotonic())
                return super().__iter__()

        with FakeAPIServer(fixture="basic", tls=True) as srv:
            srv.faults = Arrivals(srv.faults)
            srv.load([self._k8s_deployment(i) for i in range(n)])
            srv.converge()
            kc = srv.write_kubeconfig(self.lab.path("kubeconfig"),
                                      namespace="demo")
            rules = [{
                "name": "service-down",
                "matchers": ['alertname = "ServiceDown"'],
                "cooldown": "10m",
                "actions": [{"type": "restart",
                             "service": "{{ deployment }}",
                             "params": {"namespace": "{{ namespace }}"}}],
            }]
            c = self.coordinator("coord-k8s", rules=rules, extra={
                "runtime": "kubernetes",
                "kubernetes": {"client": {"source": "kubeconfig",
                                          "kubeconfig": kc}}})
            srv.start_ticker(interval=0.5)
            time.sleep(1.0)
            del times[:]
            alerts = [{"status": "firing",
                       "labels": {"alertname": "ServiceDown",
                                  "namespace": "demo",
                                  "deployment": f"svc-{i}",
                                  "severity": "critical"},
                       "annotations": {"summary": f"svc-{i} is down"},
                       "startsAt": "2026-12-04T15:40:00Z",
                       "endsAt": "0001-01-01T00:00:00Z",
                       "fingerprint": f"{0xabc000 + i:016x}"}
                      for i in range(n)]
            t0 = time.monotonic()
            r = rl.http_post(c.url + "/api/v1/alerts", json.dumps({
                "version": "4", "status": "firing", "receiver": "reflex",
                "groupKey": "{}:{alertname=\"ServiceDown\"}",
                "alerts": alerts}), self.auth)
            time.sleep(window)
            ts = [t - t0 for t in times if t >= t0]
            acts = rl.http_json(c.url + "/api/v1/actions?limit=1000")
            srv.stop_ticker()
            self.stop(c)
        restarts = [a for a in acts if a.get("type") == "restart"]
        done = sum(1 for a in restarts if a.get("state") == "succeeded")
        # The largest burst the client took: max over request pairs of
        # requests in [t_i, t_j] minus what qps refills in that time.
        eff_burst = 0.0
        for i in range(len(ts)):
            for j in range(i, len(ts)):
                eff_burst = max(eff_burst, (j - i + 1) - qps * (ts[j] -
                                                               ts[i]))
        per_s = [sum(1 for t in ts if k <= t < k + 1)
                 for k in range(int(window))]
        max_1s = max((sum(1 for u in ts if t <= u < t + 1.0) for t in ts),
                     default=0)
        # A token bucket lets at most burst + qps * T requests through in
        # any T seconds: over the whole window that is the rate limit.
        allowed = burst + qps * window
        self.details["k8s"] = {"webhook_status": r.status, "requests": len(ts),
                               "per_second": per_s, "max_in_1s": max_1s,
                               "effective_burst": eff_burst,
                               "restarts": len(restarts),
                               "restarts_succeeded": done}
        # 0.25: what timestamping in a Python thread can blur.
        self.row("Kubernetes API calls during a storm: largest burst "
                 "(token bucket)", eff_burst, None, None,
                 f"<= {burst} (burst)", eff_burst <= burst + 0.25, "req",
                 f"{n} ServiceDown alerts in one webhook "
                 f"(HTTP {r.status}); {len(ts)} API requests in {window} s; "
                 f"most in any 1 s: {max_1s}; per second: {per_s}")
        self.row(f"Kubernetes API calls during a storm: requests in "
                 f"{window} s", len(ts), None, None,
                 f"<= {allowed} ({burst} + {qps}/s x {window} s)",
                 len(ts) <= allowed,
                 "req", f"{len(ts) / window:.2f} req/s on average; "
                 f"{len(restarts)} restarts planned, {done} succeeded "
                 "within the window")

    @staticmethod
    def _k8s_deployment(i):
        name = f"svc-{i}"
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "demo",
                             "labels": {"app": name}},
                "spec": {"replicas": 1,
                         "selector": {"matchLabels": {"app": name}},
                         "template": {
                             "metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{
                                 "name": "app",
                                 "image": "nginx:1.25.3"}]}}}}

    # -- report ---------------------------------------------------------------

    def report(self, started):
        head = ("figure", "reflex", "floor", "ratio", "goal", "holds?")
        lines = []
        for r in self.rows:
            h = {True: "yes", False: "NO", None: "n/a"}.get(r["holds"],
                                                            r["holds"])
            lines.append((r["figure"], fmt(r["reflex"], r["unit"]),
                          fmt(r["floor"], r["unit"]) if r["floor"] is not None
                          else "-",
                          fmt(r["ratio"]) if r["ratio"] is not None else "-",
                          r["goal"], h))
        w = [max(len(x[i]) for x in lines + [head]) for i in range(6)]
        out = []
        sep = "  "
        out.append(sep.join(h.ljust(w[i]) for i, h in enumerate(head)))
        out.append(sep.join("-" * w[i] for i in range(6)))
        for x in lines:
            out.append(sep.join(v.ljust(w[i]) for i, v in enumerate(x)))
        text = "\n".join(out)
        held = sum(1 for r in self.rows if r["holds"] is True)
        missed = sum(1 for r in self.rows if r["holds"] is False)
        print()
        print(text)
        print(f"\n{held} goals hold, {missed} do not, "
              f"{len(self.rows) - held - missed} not applicable; "
              f"{time.monotonic() - started:.0f} s")
        notes = [f"- {r['figure']}: {r['note']}" for r in self.rows
                 if r["note"]]
        if notes:
            print("\nnotes:\n" + "\n".join(notes))
        m = machine()
        md = [f"reflex {m['source']}; {m['cpu']} x{m['cpus']} "
              f"({m['hypervisor'] or 'bare metal'}), kernel {m['kernel']}, "
              f"Python {m['python']}", "",
              "| figure | reflex | floor | ratio | goal | holds? |",
              "|---|---|---|---|---|---|"]
        md += ["| " + " | ".join(x) + " |" for x in lines]
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write("\n".join(md) + "\n\n" + "\n".join(notes) + "\n")
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump({"rows": self.rows, "details": self.details,
                       "profiles": self.profiles, "machine": m}, f,
                      indent=1, default=str)
        print(f"\nresults: {self.out}/results.md, results.json"
              + (f", profiles in {self.out}/profiles" if self.profiles
                 else ""))


def busy_cpus(seconds=1.0):
    """CPUs' worth of work done by others (nothing of ours runs between
    benchmarks) over `seconds`, from /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


def machine():
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    lscpu = {}
    for line in cmd(["lscpu"]).splitlines():
        k, _, v = line.partition(":")
        lscpu[k.strip()] = v.strip()
    pk = cmd(["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
              "libnng1", "libcurl4", "libsqlite3-0", "libmsgpackc2",
              "libcjson1", "libyaml-0-2", "libmbedcrypto7", "wrk", "gcc",
              "linux-perf", "valgrind"])
    rev = cmd(["git", "-C", SRC, "rev-parse", "--short", "HEAD"])
    dirty = cmd(["git", "-C", SRC, "status", "--porcelain", "-uno", "--",
                 "common", "coordinator", "agent"])
    source = (rev + (" + uncommitted changes in reflex's sources"
                     if dirty else "")) if rev else "not a git tree"
    return {"source": os.environ.get("REFLEX_BENCH_REV", source),
            "cpu": lscpu.get("Model name"), "cpus": lscpu.get("CPU(s)"),
            "hypervisor": lscpu.get("Hypervisor vendor"),
            "kernel": platform.release(), "python": platform.python_version(),
            "packages": pk.splitlines()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="",
                    help="comma-separated subset of: " + " ".join(BENCHES))
    ap.add_argument("--profile", action="store_true",
                    help="perf-record reflex during the runs (perturbs the "
                    "figures a little)")
    args = ap.parse_args()
    only = [b for b in args.only.split(",") if b] or list(BENCHES)
    bad = [b for b in only if b not in BENCHES]
    if bad:
        ap.error(f"unknown benchmark(s): {', '.join(bad)}")
    if shutil.which("wrk") is None and "ingest" in only:
        ap.error("wrk is not installed (Debian package wrk)")
    started = time.monotonic()
    s = Suite(args)
    m = machine()
    print(f"reflex benchmarks ({m['source']}) on {m['cpu']} x{m['cpus']}, "
          f"kernel {m['kernel']}; output in {s.out}", flush=True)
    try:
        for b in BENCHES:
            if b not in only:
                continue
            t = time.monotonic()
            busy = busy_cpus()
            if busy > 0.25:
                print(f"  note: {busy:.2f} CPUs busy with other work before "
                      f"{b}: the figures may be skewed", flush=True)
            try:
                getattr(s, "bench_" + b)()
            except (rl.LabError, OSError, subprocess.SubprocessError,
                    KeyError, ValueError) as e:
                print(f"  {b}: FAILED: {e}", flush=True)
                s.row(f"{b}: benchmark failed", "error", None, None, "-",
                      None, "", str(e)[:300])
                s.lab.mark_failed()
            s.details.setdefault("busy_cpus_before", {})[b] = round(busy, 2)
            print(f"  ({b}: {time.monotonic() - t:.0f} s)", flush=True)
    finally:
        s.lab.close()
    s.report(started)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
