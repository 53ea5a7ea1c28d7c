#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The demo's path as a test: a real Prometheus and Alertmanager fire
HighErrorRate at the coordinator, which has the right agent restart the
right instance. Asserts exactly one restart of exactly that instance, the
other instances untouched, and that the resolved notification starts
nothing."""

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
        cproc = demo.start_coordinator(lab, None, cfg["coordinator"], coord)
        for node in demo.NODES:
            demo.start_agent(lab, None, node, cfg[node],
                             [i for i in insts if i.node == node])
        wait_until(lambda: len(http_json(f"http://{coord}/api/v1/agents"))
                   == 2, 15, what="both agents registered")
        am = lab.start_alertmanager(f"http://{coord}/api/v1/alerts",
                                    group_by=("alertname", "service",
                                              "instance"))
        prom = lab.start_prometheus(
            scrape=[{"job": "demo", "targets": [i.addr for i in insts
                                                if i.service == svc],
                     "labels": {"service": svc}} for svc in demo.SERVICES],
            rule_files=[demo.RULES], alertmanager=am)
        wait_until(lambda: len(prom.query('rate(demo_requests_total[5s])'))
                   >= 2 * len(insts), 40, what="request rates of all")
        starts = {i.name: demo.start_time_of(i) for i in insts}

        r = http_post(f"{target.url}/fault/errors?rate=0.5")
        tap.ok(r.status == 200, "fault injected into demo-a-1")
        t0 = time.monotonic()

        def restarts():
            return [a for a in http_json(f"http://{coord}/api/v1/actions")
                    if a["type"] == "restart"]

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
        tap.ok("result=resolved" in log and log.count("result=acted") == 1,
               "the resolved notification was recorded and started nothing")
        text = http_get(f"http://{coord}/metrics").text
        import re
        m = re.search(r'reflex_alerts_received_total\{status="resolved"\} (\d+)',
                      text)
        tap.ok(m and int(m.group(1)) >= 1 and
               'reflex_actions_total{action="restart",outcome="succeeded"} 1'
               in text, "metrics: resolved alerts received, one restart")


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
