#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lab_prometheus: the lab harness end to end, without reflex.

Two reflex-demo-svc instances of service demo-a, a real Alertmanager whose
webhook receiver is the lab's fake one, a real Prometheus with the demo's
rule file (deploy/demo/prometheus-rules.yml). The error-rate fault is
injected into one instance: a firing HighErrorRate notification must
arrive for exactly that instance (instance=127.0.0.1:PORT,
service=demo-a, severity=critical); after the fault is cleared a resolved
notification for the same alert must follow. The demo service's /metrics
must pass `promtool check metrics`. Prints TAP; skips when Prometheus or
Alertmanager is not installed. Timings are printed as TAP comments.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from reflexlab import (Lab, Tap, http_get, http_post,  # noqa: E402
                       missing_monitoring_tools, reflex_binary, repo_root,
                       wait_until)

RULES = os.path.join(repo_root(), "deploy", "demo", "prometheus-rules.yml")
SERVICE = "demo-a"
ZERO_TIME = "0001-01-01T00:00:00Z"
WAIT = 45.0  # bound on each wait; the expected latencies are ~5-10 s


def start_demo(lab, demo, name):
    from reflexlab import free_port
    port = free_port()
    return lab.start(name, [demo, "--port", port, "--name", name],
                     port=port, ready_url=f"http://127.0.0.1:{port}/healthz")


def check_metrics(tap, lab, svc):
    r = http_get(svc.url + "/metrics")
    ctype = r.headers.get("Content-Type", "")
    tap.ok(r.status == 200 and ctype.startswith("text/plain; version=0.0.4"),
           "demo /metrics answers 200 with the 0.0.4 text Content-Type",
           diag=f"status {r.status}, Content-Type {ctype!r}")
    rc, out = lab.check_metrics(r.text)
    tap.ok(rc == 0, "promtool check metrics accepts the demo's /metrics",
           diag=f"exit {rc}:\n{out}\n--- input ---\n{r.text}")


def run(tap, lab, demo):
    t0 = time.monotonic()
    hook = lab.start_webhook_receiver()
    am = lab.start_alertmanager(hook.url)
    t_am = time.monotonic()
    tap.ok(am.proc.alive(), f"Alertmanager ready on {am.addr}")

    svcs = [start_demo(lab, demo, f"{SERVICE}-{i}") for i in range(2)]
    good, bad = svcs
    good_addr = f"127.0.0.1:{good.port}"
    bad_addr = f"127.0.0.1:{bad.port}"
    check_metrics(tap, lab, good)

    t_prom0 = time.monotonic()
    prom = lab.start_prometheus(
        scrape=[{"job": "demo", "targets": [good_addr, bad_addr],
                 "labels": {"service": SERVICE}}],
        rule_files=[RULES], alertmanager=am)
    t_prom = time.monotonic()
    tap.ok(prom.proc.alive(), f"Prometheus ready on {prom.addr} and has "
           "discovered Alertmanager")

    up = wait_until(lambda: len(prom.query('up{job="demo"} == 1')) == 2,
                    WAIT, what="both demo targets up")
    tap.ok(up, "Prometheus scrapes both demo instances")
    t_up = time.monotonic()

    r = http_post(bad.url + "/fault/errors?rate=0.5")
    tap.ok(r.status == 200, f"error fault (rate 0.5) injected into {bad_addr}",
           diag=f"HTTP {r.status}: {r.text}")
    t_inject = time.monotonic()

    d, alert = hook.wait_for_alert(WAIT, "firing", alertname="HighErrorRate",
                                   instance=bad_addr)
    t_fire = time.monotonic()
    labels = alert.get("labels", {})
    tap.ok(labels.get("service") == SERVICE and
           labels.get("severity") == "critical",
           f"firing HighErrorRate webhook for {bad_addr} with "
           f"service={SERVICE} severity=critical", diag=str(alert))
    body = d.json or {}
    tap.ok(body.get("version") == "4" and body.get("receiver") == "reflex"
           and alert.get("endsAt") == ZERO_TIME and alert.get("fingerprint"),
           "webhook body: version 4, receiver reflex, zero endsAt, "
           "fingerprint set", diag=str(body))

    am_alerts = am.alerts(alertname="HighErrorRate")
    tap.ok(len(am_alerts) == 1 and
           am_alerts[0]["labels"].get("instance") == bad_addr,
           "Alertmanager API lists exactly that one HighErrorRate alert",
           diag=str(am_alerts))
    healthz = http_get(bad.url + "/healthz")
    tap.ok(healthz.status == 200 and healthz.text.strip() == "ok",
           "the faulty instance's /healthz still says ok",
           diag=f"HTTP {healthz.status}: {healthz.text!r}")

    r = http_post(bad.url + "/fault/clear")
    tap.ok(r.status == 200, f"fault cleared on {bad_addr}",
           diag=f"HTTP {r.status}: {r.text}")
    t_clear = time.monotonic()
    _, resolved = hook.wait_for_alert(WAIT, "resolved",
                                      alertname="HighErrorRate",
                                      instance=bad_addr)
    t_resolved = time.monotonic()
    tap.ok(resolved.get("fingerprint") == alert.get("fingerprint") and
           resolved.get("startsAt") == alert.get("startsAt") and
           resolved.get("endsAt") != ZERO_TIME,
           "resolved webhook for the same alert (fingerprint, startsAt) "
           "with a real endsAt", diag=f"{alert}\n{resolved}")

    others = [a for _, a in hook.alerts()
              if a.get("labels", {}).get("instance") != bad_addr]
    tap.ok(not others, f"no notification about any other instance "
           f"({good_addr} stayed quiet)", diag=str(others))
    ratio = prom.value('sum by (instance) (rate(demo_requests_total'
                       '{code="500"}[5s]))', instance=good_addr)
    tap.ok(ratio == 0.0, f"Prometheus sees no errors on {good_addr}",
           diag=f"rate = {ratio}")
    tap.ok(good.alive() and bad.alive(), "both demo instances still run")

    tap.diag(f"timings: alertmanager ready {t_am - t0:.2f}s, "
             f"prometheus ready {t_prom - t_prom0:.2f}s, "
             f"targets up {t_up - t_prom:.2f}s after ready")
    tap.diag(f"timings: fault -> firing webhook {t_fire - t_inject:.2f}s, "
             f"clear -> resolved webhook {t_resolved - t_clear:.2f}s, "
             f"webhooks received {len(hook.snapshot())}")


def main(tap):
    missing = missing_monitoring_tools()
    if missing:
        Tap.skip_all(f"not installed: {', '.join(missing)} (apt-get install "
                     "prometheus prometheus-alertmanager)")
    t0 = time.monotonic()
    demo = reflex_binary("reflex-demo-svc")
    with Lab() as lab:
        try:
            run(tap, lab, demo)
        finally:
            if tap.failed:
                lab.mark_failed()
    tap.diag(f"total {time.monotonic() - t0:.2f}s including shutdown")


if __name__ == "__main__":
    Tap.main(main)
