# SPDX-License-Identifier: MIT
"""callgrind.py: instruction-level profiles behind BENCHMARKS.md.

Runs one reflex process under valgrind --tool=callgrind in a benchmark
scenario, dumps the profile while the load is on, and writes the
inclusive per-function summary with call counts next to it. Slow (the
profiled process runs ~50x slower), so the figures of these runs mean
nothing; only the shares and instructions per call do.

usage: python3 tests/bench/callgrind.py SCENARIO  (after tests/bench/run.sh
       built everything)
  ingest      the coordinator (durable journal) under wrk -c4 for 10 s
  heartbeats  the coordinator with 1,000 simulated agents heartbeating
              every 2 s, for 20 s
  probes      reflex-agent probing 110 targets (keep-alive) for 12 s
Output: <build-bench>/bench-results/callgrind/SCENARIO.{cg,txt}
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import reflexlab as rl  # noqa: E402


class Args:
    def __init__(self, build, out):
        self.build = build
        self.tools = os.path.join(build, "bench-tools")
        self.out = out
        self.profile = False


class CgSuite(bench.Suite):
    """Starts processes whose name begins with `target` under callgrind
    and dumps their profile instead of just stopping them."""

    def __init__(self, args, target, cg_file):
        super().__init__(args)
        self.target = target
        self.cg_file = cg_file

    def start(self, name, argv, **kw):
        if not name.startswith(self.target):
            return super().start(name, argv, **kw)
        argv = ["valgrind", "--tool=callgrind", "--dump-instr=no",
                f"--callgrind-out-file={self.cg_file}"] + list(argv)
        ready = kw.pop("ready_url", None)
        p = super().start(name, argv, **kw)
        if ready:
            rl.wait_until(lambda: rl.http_ok(ready), 60, interval=0.3,
                          what=f"{name} under callgrind")
        return p

    def stop(self, p):
        if p is not None and p.name.startswith(self.target):
            # Dump now: a slowed-down process may not exit within the
            # stop grace, and what happens at exit is not the point.
            subprocess.run(["callgrind_control", "-d", str(p.pid)],
                           capture_output=True)
            time.sleep(2)
        super().stop(p)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("ingest", "heartbeats",
                                                 "probes"):
        sys.exit(__doc__)
    what = sys.argv[1]
    build = os.environ.get("REFLEX_BENCH_BUILD",
                           os.path.join(bench.SRC, "build-bench"))
    out = os.path.join(build, "bench-results", "callgrind")
    os.makedirs(out, exist_ok=True)
    cg = os.path.join(out, what + ".cg")
    for f in os.listdir(out):
        if f.startswith(what + ".cg"):
            os.remove(os.path.join(out, f))
    target = {"ingest": "coord-cg", "heartbeats": "coord-cg",
              "probes": "agent-probes"}[what]
    s = CgSuite(Args(build, os.path.join(out, "run")), target, cg)
    try:
        if what == "ingest":
            c = s.coordinator("coord-cg")
            w = s.wrk(c.url + "/api/v1/alerts", 10, conns=4, threads=1)
            print(f"wrk: {w['requests']} requests, {w['non_2xx']} non-2xx")
            s.stop(c)
        elif what == "heartbeats":
            c = s.coordinator("coord-cg")
            base = bench.port_block(1000)
            fa = s._fake_agents("fake-agents", c.nng, 1000, base, 2000)
            s.wait_agents(c, 1000, 180)
            time.sleep(20)
            s.stop(c)
            s.stop(fa)
        else:
            c = s.coordinator("coord-plain")
            r = s._probe_agent(bench.port_block(110), 110, False, c.nng)
            print(f"probes: {r['probes']}")
            s.stop(c)
    finally:
        s.lab.close()
    dumps = sorted(os.path.join(out, f) for f in os.listdir(out)
                   if f.startswith(what + ".cg.") or f == what + ".cg")
    dumps = [d for d in dumps if os.path.getsize(d) > 0]
    if not dumps:
        sys.exit("callgrind.py: no profile was written")
    txt = os.path.join(out, what + ".txt")
    with open(txt, "w") as f:
        subprocess.run(["callgrind_annotate", "--inclusive=yes",
                        "--tree=caller", dumps[-1]], stdout=f,
                       stderr=subprocess.DEVNULL)
    print(f"profile: {dumps[-1]}\nsummary: {txt}")


if __name__ == "__main__":
    main()
