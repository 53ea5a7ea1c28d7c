#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The demo's path as a test: a real Prometheus and Alertmanager fire
HighErrorRate at the coordinator, which has the right agent restart the
right instance. Asserts exactly one restart of exactly that instance, the
other instances untouched, the repair verified, and that the resolved
notification starts nothing. A third service is broken in a way a restart
does not fix: its repair fails verification (PromQL), the next escalation
step runs, and then a local receiver is notified."""

import importlib.util
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import (Lab, Tap, http_get, http_json, http_post,  # noqa: E402
                       missing_monitoring_tools, reflex_binary, wait_until)

spec = importlib.util.spec_from_file_location(
    "run_demo", os.path.join(SRC, "deploy", "demo", "run-demo.py"))
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

FAULTY = "demo-a-1"

BROKEN_RULE = """\
  - name: demo-c-broken-build
    matchers: ['alertname = "HighErrorRate"', 'service = "demo-c"']
    cooldown: 1m
    verify:
      interval: 1s
      timeout: 8s
      resolved: false
      promql: 'sum(rate(demo_requests_total{{code="500",instance="{{{{ instance }}}}"}}[5s])) > 0'
    actions:
      - {{ type: restart, service: demo-c, instance: "{{{{ instance }}}}" }}
    escalation:
      - {{ type: restart, service: demo-c, instance: "{{{{ instance }}}}" }}
"""

AGENT3 = """\
node: node-3
coordinator: {coord_nng}
listen: tcp://127.0.0.1:{port}
status_socket: {workdir}/agent-3.sock
services:
  - name: demo-c
    command: ["{svc}", "--port", "{{port}}", "--name", "{{instance}}",
              "--errors", "0.5"]
    instances: 1
    base_port: {base}
    stop_grace: 3s
    probe: {{ path: /healthz, period: 1s, timeout: 1s }}
"""


def agent_status(cfg):
    out = subprocess.run([reflex_binary("reflex-agent"), "status", "-c", cfg,
                          "--json"], capture_output=True, text=True,
                         timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else None


def restarts_of(status, name):
    for svc in (status or {}).get("services", []):
        for inst in svc.get("instances", []):
            if inst.get("name") == name:
                return inst.get("restarts")
    return None


def run(tap):
    with Lab(prefix="reflex-e2e-") as lab:
        insts = demo.make_topology()
        target = next(i for i in insts if i.name == FAULTY)
        tokens = demo.make_tokens(lab, insts, reflex_binary("reflex-demo-svc"),
                                  None)
        coord = tokens["COORD_HTTP_ADDR"]
        cfg = {who: demo.render(lab, os.path.join(SRC, "deploy", "demo", t),
                                f"{who}.yml", tokens)
               for who, t in demo.TEMPLATES.items()}
        rc = subprocess.run([reflex_binary("reflex-coordinator"),
                             "--check-config", "-c", cfg["coordinator"]],
                            capture_output=True, text=True, timeout=10)
        tap.ok(rc.returncode == 0, "the demo coordinator config checks",
               rc.stderr)
        broken = demo.Instance("demo-c", 0, "node-3", demo.free_port_pair())
        hook = lab.start_webhook_receiver()
        am = lab.start_alertmanager(f"http://{coord}/api/v1/alerts",
                                    group_by=("alertname", "service",
                                              "instance"))
        # Prometheus starts once the instances answer (below): started
        # first, it would see them down while the agents (slow under
        # valgrind) start them, and ServiceDown would restart one.
        prom_port = int(demo.free_port())
        prom_url = f"http://127.0.0.1:{prom_port}"
        # The demo's coordinator config, plus Prometheus for PromQL
        # verification, a notifier, and a rule for the broken service.
        text = open(cfg["coordinator"]).read()
        text = text.replace("rules:\n", "rules:\n" + BROKEN_RULE.format(), 1)
        text += (f"prometheus_url: {prom_url}\n"
                 f"notify: [ {{ name: oncall, url: \"{hook.url}\" }} ]\n")
        cfg["coordinator"] = lab.write_file("coordinator-e2e.yml", text)
        cproc = demo.start_coordinator(lab, None, cfg["coordinator"], coord)
        for node in demo.NODES:
            demo.start_agent(lab, None, node, cfg[node],
                             [i for i in insts if i.node == node])
        cfg["node-3"] = lab.write_file("node-3.yml", AGENT3.format(
            coord_nng=tokens["COORD_NNG_URL"], port=demo.free_port(),
            workdir=lab.workdir, svc=reflex_binary("reflex-demo-svc"),
            base=broken.port))
        demo.start_agent(lab, None, "node-3", cfg["node-3"], [broken])
        wait_until(lambda: len(http_json(f"http://{coord}/api/v1/agents"))
                   == 3, 15, what="three agents registered")
        prom = lab.start_prometheus(
            scrape=[{"job": "demo", "targets": [i.addr for i in insts
                                                if i.service == svc],
                     "labels": {"service": svc}} for svc in demo.SERVICES]
            + [{"job": "demo", "targets": [broken.addr],
                "labels": {"service": "demo-c"}},
               {"job": "reflex-coordinator", "targets": [coord]}],
            rule_files=[demo.RULES], alertmanager=am,
            port=prom_port)
        wait_until(lambda: len(prom.query('rate(demo_requests_total[5s])'))
                   >= 2 * len(insts), 40, what="request rates of all")
        starts = {i.name: demo.start_time_of(i) for i in insts}

        r = http_post(f"{target.url}/fault/errors?rate=0.5")
        tap.ok(r.status == 200, "fault injected into demo-a-1")
        t0 = time.monotonic()

        def rows(service):
            return [a for a in http_json(f"http://{coord}/api/v1/actions"
                                         "?limit=1000")
                    if a["service"] == service]

        def restarts():
            # The coordinator's restarts: an agent's own restart of a
            # crashed instance (a permit, rule "local") is not one; on a
            # busy machine a demo instance can lose its port at start.
            return [a for a in rows("demo-a") if a["type"] == "restart"
                    and a["rule"] != "local"]

        def done():
            acts = restarts()
            return acts and all(a["state"] in ("succeeded", "failed")
                                for a in acts)
        wait_until(done, 60, what="the action to finish")
        tap.diag(f"alert to healed action in {time.monotonic() - t0:.1f} s")

        def resolved():
            return "result=resolved" in cproc.log_text()
        wait_until(lambda: not demo.am_firing(am, "HighErrorRate",
                                              target.addr)
                   and resolved(), 60, what="the alert to resolve")
        time.sleep(2)  # room for a wrong second action to show up

        acts = restarts()
        tap.ok(len(acts) == 1, "exactly one restart", acts)
        a = acts[0] if acts else {}
        tap.ok(a.get("type") == "restart" and a.get("service") == "demo-a"
               and a.get("instance") == FAULTY and a.get("node") == "node-1"
               and a.get("state") == "succeeded",
               "it restarted demo-a-1 on node-1, successfully", a)
        after = {i.name: demo.start_time_of(i) for i in insts}
        tap.ok(after[FAULTY] != starts[FAULTY],
               "demo-a-1 is a new process")
        tap.ok(all(after[n] == starts[n] for n in starts if n != FAULTY),
               "no other instance was restarted", (starts, after))
        st = agent_status(cfg["node-1"])
        tap.ok(restarts_of(st, FAULTY) == 1 and restarts_of(st, "demo-a-0")
               == 0, "reflex-agent status: demo-a-1 restarted once, "
               "demo-a-0 never", st)
        v = prom.value('sum(rate(demo_requests_total{code="500",'
                       f'instance="{target.addr}"}}[5s]))')
        tap.ok(v == 0.0, "Prometheus sees the error rate back at 0", v)
        log = cproc.log_text()
        acted = [l for l in log.splitlines() if "result=acted" in l
                 and "demo-a" in l]
        tap.ok("result=resolved" in log and len(acted) == 1,
               "the resolved notification was recorded and started nothing")
        wait_until(lambda: any(a["type"] == "verify" and a["state"] !=
                               "verifying" for a in rows("demo-a")), 30,
                   what="the verification of demo-a-1")
        v = [a for a in rows("demo-a") if a["type"] == "verify"][0]
        tap.ok(v["state"] == "verified" and "recovered" in v["detail"],
               "the repair of demo-a-1 is verified (probes pass, alert "
               "resolved), with the time to recovery", v)

        # -- the broken build: restart, verify fails, escalate, notify --
        wait_until(lambda: hook.snapshot(), 90,
                   what="the notification about demo-c")
        seq = [(a["type"], a["state"]) for a in
               sorted(rows("demo-c"), key=lambda a: a["id"])
               if a["type"] != "evidence"]
        ev = [a for a in rows("demo-c") if a["type"] == "evidence"]
        tap.ok(len(ev) == 2 and all(a["detail"] for a in ev),
               "before each restart the agent's evidence (the instance's "
               "last output) is journaled", ev)
        out = subprocess.run([reflex_binary("reflex-coordinator"), "-c",
                              cfg["coordinator"], "history", "--service",
                              "demo-c"], capture_output=True, text=True,
                             timeout=10)
        evl = [ln for ln in out.stdout.splitlines() if " evidence " in ln]
        tap.ok(out.returncode == 0 and len(evl) == 2 and
               len(out.stdout.splitlines()) == len(rows("demo-c")) + 1 and
               all("lines, --json shows them)" in ln for ln in evl) and
               "\x1b" not in out.stdout,
               "history keeps one row per action: evidence shows its first "
               "line and how many more", out.stdout + out.stderr)
        tap.ok(seq[:5] == [("restart", "succeeded"), ("verify", "failed"),
                           ("restart", "succeeded"), ("verify", "failed"),
                           ("escalate", "escalated")],
               "demo-c: restart, verification fails (PromQL), the "
               "escalation step restarts again, fails again, escalated",
               seq)
        note = hook.snapshot()[0].json or {}
        tap.ok(note.get("labels", {}).get("service") == "demo-c" and
               "promql failing" in note.get("tried", ""),
               "the local receiver is told what was tried and how it went",
               note)
        wait_until(lambda: prom.query('reflex_verifications_total'
                                      '{result="verified"} > 0'), 20,
                   what="Prometheus to scrape the coordinator")
        tap.ok(prom.value('up{job="reflex-coordinator"}') == 1.0,
               "a real Prometheus scrapes the coordinator's /metrics")
        text = http_get(f"http://{coord}/metrics").text
        import re
        m = re.search(r'reflex_alerts_received_total\{status="resolved"\} (\d+)',
                      text)
        tap.ok(m and int(m.group(1)) >= 1 and
               'reflex_verifications_total{result="verified"} 1' in text and
               'reflex_verifications_total{result="failed"} 2' in text,
               "metrics: resolved alerts, one verified and two failed "
               "verifications")


def main():
    missing = missing_monitoring_tools()
    if missing:
        Tap.skip_all(f"not installed: {', '.join(missing)}")
    tap = Tap()
    try:
        run(tap)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
