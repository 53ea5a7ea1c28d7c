#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs reflex-coordinator and reflex-agent under valgrind (memcheck)
# through a short scenario on 127.0.0.1 and fails on any valgrind error
# or definite leak:
#
#   start both; the agent registers and starts its instance; a few
#   hundred malformed frames and webhook requests (the error paths, with
#   the generators of tests/integration/test_hostile.py); a webhook that
#   makes the coordinator restart the instance through the agent; a
#   valid command to the agent; SIGTERM to both.
#
# Prints TAP; "1..0 # SKIP" when valgrind or the binaries are missing, or
# when the build uses a sanitizer (valgrind cannot run those).
# Usage: tests/valgrind.sh [BUILD_DIR]   (default $REFLEX_BUILD or build)
# Environment: REFLEX_VALGRIND_N hostile inputs per target (default 200).
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${REFLEX_BUILD:-$src/build}}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "1..0 # SKIP valgrind not installed"
	exit 0
fi
for b in coordinator/reflex-coordinator agent/reflex-agent; do
	if [ ! -x "$build/$b" ]; then
		echo "1..0 # SKIP $build/$b not built"
		exit 0
	fi
	if grep -q "__asan_init\|__ubsan_handle" "$build/$b" 2>/dev/null; then
		echo "1..0 # SKIP $b is built with a sanitizer"
		exit 0
	fi
done

REFLEX_BUILD=$build REFLEX_SRC=$src exec python3 - <<'PY'
import json
import os
import re
import sys
import time

SRC = os.environ["REFLEX_SRC"]
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from reflexlab import Lab, Tap, free_port, http_json, reflex_binary, \
    wait_until  # noqa: E402
import test_hostile as h  # noqa: E402

N = int(os.environ.get("REFLEX_VALGRIND_N", "200"))
SLOW = 60  # valgrind runs 20-50 times slower: generous, still bounded
h.SP_WAIT = 30.0
h.HTTP_WAIT = 30.0


def valgrind(log):
    return ["valgrind", "--quiet", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--error-exitcode=99",
            "--num-callers=30", "--trace-children=no",
            f"--suppressions={SRC}/tests/valgrind.supp",
            f"--log-file={log}"]


def summary(path):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return "(no valgrind log)"
    return text[-3000:]


def run(tap):
    import random
    rng = random.Random(h.SEED)
    with Lab(prefix="reflex-valgrind-") as lab:
        http, agents, cmd, svc = (free_port() for _ in range(4))
        url = f"http://127.0.0.1:{http}"
        cconf = lab.write_file("coordinator.yaml", h.COORD_CONF.format(
            http=http, agents=agents, journal=lab.path("journal.db")))
        aconf = lab.write_file("agent.yaml", h.AGENT_CONF.format(
            agents=agents, cmd=cmd, sock=lab.path("agent.sock"),
            py=sys.executable, svc=h.SVC, port=svc))
        clog, alog = lab.path("coordinator.vg"), lab.path("agent.vg")
        coord = lab.start("coordinator", valgrind(clog) + [
            reflex_binary("reflex-coordinator"), "-c", cconf],
            ready_url=url + "/readyz", ready_timeout=SLOW)
        agent = lab.start("agent", valgrind(alog) + [
            reflex_binary("reflex-agent"), "-c", aconf])

        def status():
            import subprocess
            r = subprocess.run([reflex_binary("reflex-agent"), "status",
                                "-c", aconf, "--json"], capture_output=True,
                               text=True, timeout=30)
            return json.loads(r.stdout) if r.returncode == 0 else None

        def inst():
            st = status()
            return st["services"][0]["instances"][0] if st else None

        wait_until(lambda: [a for a in http_json(url + "/api/v1/agents")
                            if a["node"] == "node-h"], SLOW,
                   what="agent registered")
        wait_until(lambda: (inst() or {}).get("state") == "running" and
                   inst()["probe"]["ok"], SLOW, what="instance healthy")
        tap.ok(True, "coordinator and agent start under valgrind; the "
               "agent registers and its instance is healthy")
        before = inst()

        st = h.storm_frames(rng, cmd, h.agent_seeds(rng), N, lambda: None,
                            h.AGENT_RECV_MAX)
        tap.ok(not st.unanswered and not st.malformed,
               f"agent command socket: {st.line()}")
        st = h.storm_frames(rng, agents, h.coord_seeds(
            rng, lab.path()), N, lambda: None, h.COORD_RECV_MAX)
        tap.ok(not st.unanswered and not st.malformed,
               f"coordinator agent socket: {st.line()}")
        codes, timeouts = h.storm_http(rng, http, h.webhook_seeds(), N,
                                       lambda: None)
        tap.ok(not timeouts and coord.alive(),
               f"webhook: {N} hostile requests, codes "
               + json.dumps({str(k): v for k, v in codes.items()}))

        r = h.http_post(url + "/api/v1/alerts", json.dumps(h.notification([
            h.alert({"alertname": "RestartMe", "service": "demo-a",
                     "instance": "demo-a-0"})])),
            {"Content-Type": "application/json"}, timeout=SLOW)
        done = wait_until(lambda: [a for a in http_json(
            url + "/api/v1/actions", timeout=SLOW)
            if a["rule"] == "restart-me" and a["state"] == "succeeded"],
            SLOW, what="restart succeeded")
        after = inst()
        tap.ok(r.status == 200 and len(done) == 1 and
               after["restarts"] == before["restarts"] + 1,
               "a webhook restarts the instance through the agent",
               (r.status, done, after))
        # The restarted instance answers its cache endpoint only once it
        # is up again (slow under valgrind): ask until it does.
        deadline = time.monotonic() + SLOW
        while True:
            conn = h.SPReq(cmd, timeout=SLOW)
            rep = h.unpack(conn.request(h.frame("command", {
                "action_id": 5, "action": "clear_cache", "service": "demo-a",
                "instance": "", "reason": "valgrind", "timeout_ms": 20000})))
            conn.close()
            if rep["body"].get("ok") is True or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        tap.ok(rep["type"] == "reply" and rep["body"]["ok"] is True,
               "a valid command gets its reply", rep)

        # The one-shot commands an operator runs, each under valgrind.
        import subprocess
        body = lab.write_file("body.json", json.dumps(h.notification([
            h.alert({"alertname": "RestartMe", "service": "demo-a",
                     "instance": "demo-a-0"})])))
        cli = {
            "agent status": ["reflex-agent", "status", "-c", aconf,
                             "--json"],
            "check-config": ["reflex-coordinator", "--check-config", "-c",
                             cconf],
            "simulate": ["reflex-coordinator", "-c", cconf, "simulate",
                         "--json", body],
            "history": ["reflex-coordinator", "-c", cconf, "history",
                        "--json", "--url", url],
            "status": ["reflex-coordinator", "-c", cconf, "status",
                       "--json", "--url", url],
            "agents": ["reflex-coordinator", "-c", cconf, "agents",
                       "--json", "--url", url],
        }
        for i, (name, argv) in enumerate(cli.items()):
            log = lab.path(f"cli-{i}.vg")
            r = subprocess.run(valgrind(log) + [reflex_binary(argv[0])]
                               + argv[1:], capture_output=True, text=True,
                               timeout=SLOW)
            text = summary(log)
            errors = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
            tap.ok(r.returncode == 0 and (not errors or errors[-1] == "0"),
                   f"{name}: exits 0 under valgrind, no errors, no definite "
                   "leaks", None if r.returncode == 0 else
                   (r.returncode, r.stderr[-800:], text))

        for p, log in ((agent, alog), (coord, clog)):
            rc = lab.stop(p, grace=SLOW)
            text = summary(log)
            errors = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
            tap.ok(rc == 0 and (not errors or errors[-1] == "0"),
                   f"{p.name}: clean SIGTERM exit under valgrind, no "
                   f"errors, no definite leaks (exit {rc})",
                   None if rc == 0 else text)


Tap.main(run)
PY
