#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""cpu_scheduling: with the default (batch) the coordinator's bulk threads
(http, journal-writer, journal-ckpt, engine) run as SCHED_BATCH and every
other thread, the journal's syncer first, keeps the default class; with
`normal` none is moved; any other value is a config error naming the file,
the line and the key; refused by the system (the fault shim), it is
logged once and every thread keeps the default class. The class is read
from /proc (policy field of each thread's stat)."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_post, lab_main,  # noqa: E402
                       reflex_binary, wait_until)

SCHED_OTHER, SCHED_BATCH = 0, 3
BULK = {"http", "journal-writer", "journal-ckpt", "engine"}

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
{extra}rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    actions: [ {{ type: restart, service: web }} ]
"""


def threads(pid):
    """{thread name: [policy, ...]} of the process's threads."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/stat") as f:
                stat = f.read()
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # the thread ended meanwhile
        # Fields after the name (which may hold spaces): field 3 on;
        # policy is field 41.
        rest = stat[stat.rindex(")") + 2:].split()
        out.setdefault(name, []).append(int(rest[41 - 3]))
    return out


def named_threads(pid):
    """threads() once every bulk thread has named itself: each names
    itself when it first runs, which may come after /readyz answers
    (seen in the sanitized build under load)."""
    return wait_until(lambda: (lambda t: t if BULK <= set(t) else None)(
        threads(pid)), 15, what="the bulk threads' names")


def start(lab, name, extra, env=None):
    http, agents = free_port(), free_port()
    cfg = lab.write_file(f"{name}.yaml", CONFIG.format(
        http=http, agents=agents, journal=lab.path(f"{name}.db"),
        extra=extra))
    coord = lab.start(name, [reflex_binary("reflex-coordinator"), "-c", cfg],
                      env=env, ready_url=f"http://127.0.0.1:{http}/readyz",
                      ready_timeout=30)
    coord.url = f"http://127.0.0.1:{http}"
    return coord


def logged_start(coord):
    """The log once it has the start line: /readyz answers as soon as
    the HTTP server runs, a moment before the line is written (seen
    under valgrind)."""
    return wait_until(lambda: (lambda t: t if "event=coordinator.started "
                               in t else None)(coord.log_text()), 15,
                      what="the start line")


def webhook_status(url):
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "WebDown"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]}).encode()
    return http_post(url + "/api/v1/alerts", body,
                     {"Content-Type": "application/json"}, timeout=30).status


def run(tap, lab):
    coord = start(lab, "batch", "")
    got = named_threads(coord.pid)
    tap.ok(BULK <= set(got), "the bulk threads are there by name",
           sorted(got))
    tap.ok(all(p == SCHED_BATCH for n in BULK for p in got.get(n, [None])),
           "by default http, journal-writer, journal-ckpt and engine run "
           "as SCHED_BATCH", got)
    others = {n: p for n, p in got.items() if n not in BULK}
    tap.ok("journal-sync" in others and
           all(p == SCHED_OTHER for ps in others.values() for p in ps),
           "the journal's syncer and every other thread keep the default "
           "class", others)
    tap.ok("cpu_scheduling=batch" in logged_start(coord),
           "the start line says cpu_scheduling=batch",
           coord.log_text(tail=5))
    coord.stop()

    coord = start(lab, "normal", 'cpu_scheduling: "normal"\n')
    got = named_threads(coord.pid)
    tap.ok(BULK <= set(got) and
           all(p == SCHED_OTHER for ps in got.values() for p in ps),
           "with cpu_scheduling: normal no thread is moved", got)
    tap.ok("cpu_scheduling=normal" in logged_start(coord),
           "the start line says cpu_scheduling=normal",
           coord.log_text(tail=5))
    coord.stop()

    # Refused by the system (the fault shim's pthread_setschedparam):
    # one warning, every thread in the default class, and it works.
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
    else:
        trigger = lab.write_file("refuse-sched", "")
        asan = os.environ.get("ASAN_OPTIONS", "")
        coord = start(lab, "refused", "", env={
            "LD_PRELOAD": shim, "REFLEX_FAIL_SCHED": trigger,
            "ASAN_OPTIONS": (asan + ":" if asan else "") +
            "verify_asan_link_order=0"})
        got = named_threads(coord.pid)
        tap.ok(BULK <= set(got) and
               all(p == SCHED_OTHER for ps in got.values() for p in ps),
               "refused by the system, every thread keeps the default class",
               got)
        log = logged_start(coord)
        tap.ok(log.count("event=thread.sched ") == 1 and
               "Operation not permitted" in log,
               "the refusal is logged once, with the error",
               coord.log_text(tail=6))
        tap.ok("cpu_scheduling=normal" in log and
               log.index("event=thread.sched ") <
               log.index("event=coordinator.started "),
               "the refusal is known before the start line, which says "
               "cpu_scheduling=normal", coord.log_text(tail=6))
        tap.ok(webhook_status(coord.url) == 200,
               "and the coordinator takes alerts as before")
        coord.stop()

    cfg = lab.write_file("bad.yaml", CONFIG.format(
        http=free_port(), agents=free_port(), journal=lab.path("bad.db"),
        extra='cpu_scheduling: "realtime"\n'))
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg,
                        "--check-config"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    tap.ok(r.returncode != 0 and "cpu_scheduling" in r.stderr and
           "bad.yaml:4" in r.stderr,
           "another value is a config error with file, line and key",
           f"rc={r.returncode} {r.stderr.strip()}")


if __name__ == "__main__":
    lab_main(run, "reflex-sched-")
