#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A failed fsync of the journal is fatal: the coordinator (durable
journal, fdatasync on its syncer thread) gets EIO from fdatasync through
an LD_PRELOAD shim (tests/tools/fault_shim.c) while a trigger file exists.
The webhook of that commit is never answered 2xx, the coordinator exits
with status 74 and says why, and after a restart every alert answered 2xx
before is still there and the unanswered one is taken when resent.

The engine decides an alert as soon as it is committed, while its sync
runs: a simulated agent hosts the instances, and the alert whose sync
failed must not have sent its restart (its action row was never synced).
That row, committed, is in the file at the restart: it is recorded as
never sent, so the resent alert repairs (an in-flight row would count as
a run that may have happened and hold the alert back for its cooldown).
Nor may anything else those alerts cause leave before their sync: the
report of a storm they start is sent only once the sync covering them
(and its own row) returned, so a failed one leaves nothing sent
(test_notes_wait_for_sync)."""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (free_port, http_json, http_post,  # noqa: E402
                       labs_main, reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
safety: {{ blast_radius_percent: 100 }}
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


def action_rows(journal):
    c = sqlite3.connect(journal)
    try:
        return [tuple(r) for r in
                c.execute("SELECT instance, state FROM actions")]
    finally:
        c.close()


def outcomes(journal, instance):
    """(id, outcome, done_ms) of the alerts about `instance`, by id."""
    c = sqlite3.connect(journal)
    try:
        return [tuple(r[:3]) for r in c.execute(
            "SELECT a.id, o.outcome, o.done_ms, coalesce(t.labels, a.labels)"
            " FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id"
            " LEFT JOIN alert_outcomes o ON o.alert_id = a.id ORDER BY a.id")
            if json.loads(r[3]).get("instance") == instance]
    finally:
        c.close()


def stored(journal):
    c = sqlite3.connect(journal)
    try:
        return sorted(json.loads(r[0]).get("instance", "") for r in
                      c.execute("SELECT labels FROM alerts"))
    finally:
        c.close()


def test_sync_failed(tap, lab):
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
    # The failing sync reports EIO after 0.5 s: the engine has decided
    # web-1 and committed its action row by then.
    env = {"LD_PRELOAD": shim, "REFLEX_FAIL_FSYNC": trigger,
           "REFLEX_FAIL_FSYNC_DELAY_MS": "500",
           # the sanitizer runtime need not come first in the list
           "ASAN_OPTIONS": (asan + ":" if asan else "") +
           "verify_asan_link_order=0"}
    coord = lab.start("coordinator", argv, env=env,
                      ready_url=url + "/readyz", ready_timeout=30)
    fake = lab.start("agents", [
        reflex_binary("fake-agents"), "--coordinator",
        f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms", "200",
        "--workload", "web:web-0:127.0.0.1:20001",
        "--workload", "web:web-1:127.0.0.1:20002"])
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) >= 1, 30,
               what="the simulated agent")

    def restarted():
        return sorted(c["instance"] for c in
                      (json.loads(line) for line in
                       fake.log_text().splitlines()
                       if line.startswith("{") and '"action"' in line)
                      if c.get("action") == "restart")

    tap.ok(post(url, "web-0") == 200, "an alert is taken while fsync works")
    got = wait_until(lambda: (lambda r: r if "web-0" in r else None)(
        restarted()), 30, what="web-0's restart")
    tap.ok(got == ["web-0"], "its restart reaches the agent", got)
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
    tap.ok(restarted() == ["web-0"], "no restart left for the alert whose "
           "sync failed", restarted())
    # The engine decided web-1 while the sync ran: its action row was
    # committed after the alert, in the WAL the failed sync covered.
    rows = action_rows(journal)
    tap.ok(("web-1", "dispatched") in rows, "web-1's action row was "
           "committed, never sent", rows)
    lab.stop(coord)
    os.unlink(trigger)

    have = stored(journal)
    tap.ok("web-0" in have, "the alert answered 2xx before is in the journal",
           have)
    decided = outcomes(journal, "web-1")
    coord = lab.start("coordinator-2", argv, ready_url=url + "/readyz",
                      ready_timeout=30)
    rows = action_rows(journal)
    tap.ok(("web-1", "unsent") in rows and "unsent_actions=1" in
           coord.log_text(), "the restart records it as never sent (not "
           "interrupted, which would hold its cooldown)", rows)
    # Its alert was decided (acted) but not acted on: it is decided
    # again, as a pending alert is at a start; taken up from the journal,
    # it waits for the agents to register again (up to 15 s) rather than
    # being decided "no-agent" before they had the time.
    again = wait_until(lambda: (lambda o: o if o != decided else None)(
        outcomes(journal, "web-1")), 30, what="web-1 decided again")
    tap.ok(len(decided) == 1 and again[0][0] == decided[0][0] and
           again[0][2] != decided[0][2] and again[0][1] == "acted",
           "the alert of the unsent action is decided again at the start, "
           "once its agent is back: acted", (decided, again))
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) >= 1, 30,
               what="the simulated agent, again")
    got = wait_until(lambda: (lambda r: r if "web-1" in r else None)(
        restarted()), 30, what="web-1's restart, taken up")
    tap.ok(got == ["web-0", "web-1"], "web-1 is repaired without waiting "
           "for Alertmanager to send it again", got)
    tap.ok(post(url, "web-1") == 200, "after a restart, the resent alert is "
           "taken")
    have = wait_until(lambda: (lambda s: s if "web-1" in s else None)(
        stored(journal)), 30, what="web-1 stored")
    tap.ok("web-0" in have and "web-1" in have, "both alerts are stored",
           have)
    got = wait_until(lambda: (lambda r: r if "web-1" in r else None)(
        restarted()), 30, what="web-1's restart after the restart")
    tap.ok(got == ["web-0", "web-1"], "web-1, never repaired, is repaired "
           "now", got)


NOTES_CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
notify: [ {{ name: oncall, url: "{hook}" }} ]
safety: {{ blast_radius_percent: 100, storm_min_targets: 3 }}
rules:
  - name: web
    matchers: ['alertname = "WebDown"']
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}"
               }} ]
"""


def storm_body(n):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "WebDown",
                                       "instance": f"web-{i}"},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"} for i in range(n)]}).encode()


def post_body(url, data):
    try:
        return http_post(url + "/api/v1/alerts", data,
                         {"Content-Type": "application/json"},
                         timeout=30).status
    except Exception as e:  # noqa: BLE001 - the process may die mid-reply
        return repr(e)


def test_notes_wait_for_sync(tap, lab):
    """A note to people (here a storm's report) caused by alerts the
    engine decided before their sync leaves after it. The failing sync
    waits 1.5 s before it reports EIO, so a note sent too early has long
    reached the receiver when the coordinator exits."""
    shim = os.environ.get("REFLEX_FAULTS_LIB", "")
    if not os.path.isfile(shim):
        tap.ok(False, "the fault shim is built (REFLEX_FAULTS_LIB)", shim)
        return
    hook = lab.start_webhook_receiver()
    trigger = lab.path("fail-fsync-now")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim, "REFLEX_FAIL_FSYNC": trigger,
           "REFLEX_FAIL_FSYNC_DELAY_MS": "1500",
           "ASAN_OPTIONS": (asan + ":" if asan else "") +
           "verify_asan_link_order=0"}

    def start(name):
        http, agents = free_port(), free_port()
        url = f"http://127.0.0.1:{http}"
        cfg = lab.write_file(f"{name}.yaml", NOTES_CONFIG.format(
            http=http, agents=agents, journal=lab.path(f"{name}.db"),
            hook=hook.url))
        coord = lab.start(name, [reflex_binary("reflex-coordinator"), "-c",
                                 cfg], env=env, ready_url=url + "/readyz",
                          ready_timeout=30)
        lab.start(f"{name}-agents", [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms",
            "200"] + sum((["--workload", f"web:web-{i}:127.0.0.1:2100{i}"]
                          for i in range(8)), []))
        wait_until(lambda: len(http_json(url + "/api/v1/agents")) >= 1, 30,
                   what="the simulated agent")
        return coord, url

    def headlines():
        return [(d.json or {}).get("headline", "") for d in hook.snapshot()]

    # While fsync works, the report goes out: what the next part must not
    # see is really sent by this setup.
    coord, url = start("coord-ok")
    tap.ok(post_body(url, storm_body(6)) == 200, "a storm is taken")
    got = wait_until(lambda: (lambda h: h if any(
        "circuit breaker open" in x for x in h) else None)(headlines()), 30,
        what="the storm's report")
    tap.ok(any("circuit breaker open" in x for x in got),
           "its report reaches people", got)
    lab.stop(coord)

    before = len(hook.snapshot())
    coord, url = start("coord-failing")
    with open(trigger, "w"):
        pass
    answer = post_body(url, storm_body(6))
    tap.ok(answer != 200, "a storm whose sync fails is not answered 2xx",
           answer)
    rc = coord.wait(60)
    tap.ok(rc == EXIT_SYNC, f"the coordinator exits with status {EXIT_SYNC}",
           f"exit {rc}; log tail:\n{coord.log_text(tail=8)}")
    sent = [d.json for d in hook.snapshot()[before:]]
    tap.ok(sent == [], "no report of that storm left before its sync failed",
           sent)
    lab.stop(coord)
    os.unlink(trigger)

    # The breaker's opening was committed with the storm and is restored
    # open at the next start, so no later storm reports it: the report
    # that never left goes then.
    coord, url = start("coord-failing")
    got = wait_until(lambda: (lambda h: h if any(
        "circuit breaker open" in x for x in h) else None)(
        [(d.json or {}).get("headline", "") for d in
         hook.snapshot()[before:]]), 30, what="the report, at the restart")
    tap.ok(any("circuit breaker open" in x for x in got), "the restart "
           "sends the report that the failed sync held back", got)
    lab.stop(coord)


if __name__ == "__main__":
    labs_main([test_sync_failed, test_notes_wait_for_sync])
