#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A failed fsync of the journal is fatal: the coordinator (durable
journal, fdatasync on its syncer thread) gets EIO from fdatasync through
an LD_PRELOAD shim (tests/tools/fault_shim.c) while a trigger file exists.
The webhook of that commit is never answered 2xx, the coordinator exits
with status 74 and says why, and after a restart every alert answered 2xx
before is still there and the unanswered one is taken when resent."""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_post, lab_main, reflex_binary,  # noqa: E402
                       wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}"
               }} ]
"""

EXIT_SYNC = 74  # COORD_JOURNAL_EXIT_SYNC


def body(instance):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "WebDown",
                                       "instance": instance},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]}).encode()


def post(url, instance):
    """HTTP status, or the error the connection ended with."""
    try:
        return http_post(url + "/api/v1/alerts", body(instance),
                         {"Content-Type": "application/json"},
                         timeout=30).status
    except Exception as e:  # noqa: BLE001 - the process may die mid-reply
        return repr(e)


def stored(journal):
    c = sqlite3.connect(journal)
    try:
        return sorted(json.loads(r[0]).get("instance", "") for r in
                      c.execute("SELECT labels FROM alerts"))
    finally:
        c.close()


def run(tap, lab):
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)",
               shim)
        return
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    journal = lab.path("journal.db")
    trigger = lab.path("fail-fsync-now")
    cfg = lab.write_file("coordinator.yaml", CONFIG.format(
        http=http, agents=agents, journal=journal))
    argv = [reflex_binary("reflex-coordinator"), "-c", cfg]
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim, "REFLEX_FAIL_FSYNC": trigger,
           # the sanitizer runtime need not come first in the list
           "ASAN_OPTIONS": (asan + ":" if asan else "") +
           "verify_asan_link_order=0"}
    coord = lab.start("coordinator", argv, env=env,
                      ready_url=url + "/readyz", ready_timeout=30)

    tap.ok(post(url, "web-0") == 200, "an alert is taken while fsync works")
    with open(trigger, "w"):
        pass
    answer = post(url, "web-1")
    tap.ok(answer != 200, "the webhook whose commit could not be synced is "
           "not answered 2xx", answer)
    rc = coord.wait(60)
    log = coord.log_text()
    tap.ok(rc == EXIT_SYNC, f"the coordinator exits with status {EXIT_SYNC}",
           f"exit {rc}; log tail:\n{coord.log_text(tail=8)}")
    tap.ok("event=journal.sync_failed" in log and "Input/output error" in log,
           "it logs journal.sync_failed with the error",
           coord.log_text(tail=5))
    lab.stop(coord)
    os.unlink(trigger)

    have = stored(journal)
    tap.ok("web-0" in have, "the alert answered 2xx before is in the journal",
           have)
    lab.start("coordinator-2", argv, ready_url=url + "/readyz",
              ready_timeout=30)
    tap.ok(post(url, "web-1") == 200, "after a restart, the resent alert is "
           "taken")
    have = wait_until(lambda: (lambda s: s if "web-1" in s else None)(
        stored(journal)), 30, what="web-1 stored")
    tap.ok("web-0" in have and "web-1" in have, "both alerts are stored",
           have)


if __name__ == "__main__":
    lab_main(run, "reflex-journal-sync-")
