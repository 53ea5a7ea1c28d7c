#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex-agent's own /metrics, scraped by a real Prometheus.

On 127.0.0.1 only, through tests/lib/reflexlab.py. One agent with
metrics_listen supervises two instances of tests/lib/agent_test_svc.py;
reflex-send plays a coordinator that grants permits. Checked: /metrics
answers with the 0.0.4 text Content-Type and passes `promtool check
metrics`; Prometheus scrapes it; after one instance is killed and the
agent restarted it, a PromQL query returns restart count 1 for exactly
that instance (reason="crash"; Prometheus calls the exposed instance
label exported_instance) and 0 for the other one; /healthz answers ok.
Prints TAP; skips when Prometheus is not installed.
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from reflexlab import (Lab, Tap, free_ports, http_get,  # noqa: E402
                       missing_monitoring_tools, reflex_binary, repo_root,
                       wait_until)

WAIT = 30.0  # bound on each wait


def agent_status(agent, sock):
    r = subprocess.run([agent, "status", "-s", sock, "--json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def inst(st, name):
    for s in st["services"]:
        for i in s["instances"]:
            if i["name"] == name:
                return i
    return None


def write_config(lab, ports, sock):
    svc = os.path.join(repo_root(), "tests", "lib", "agent_test_svc.py")
    return lab.write_file("agent.yaml", f"""node: node-m
coordinator: tcp://127.0.0.1:{ports['coord']}
listen: tcp://127.0.0.1:{ports['listen']}
status_socket: {sock}
heartbeat_interval: 500ms
metrics_listen: 127.0.0.1:{ports['metrics']}
services:
  - name: demo-a
    command: ["{sys.executable}", "{svc}", "--port", "{{port}}",
              "--name", "{{instance}}"]
    instances: 2
    base_port: {ports['base']}
    stop_grace: 2s
    probe: {{ path: /healthz, period: 300ms, timeout: 250ms,
             initial_delay: 2s }}
    restart_backoff: {{ initial: 200ms, max: 1s }}
""")


def run(tap, lab):
    agent = reflex_binary("reflex-agent")
    send = reflex_binary("reflex-send")
    sock = lab.path("run", "agent.sock")
    ports = {"coord": free_ports(1), "listen": free_ports(1),
             "metrics": free_ports(1), "base": free_ports(2)}
    conf = write_config(lab, ports, sock)
    murl = f"http://127.0.0.1:{ports['metrics']}"
    lab.start("coordinator", [send, f"tcp://127.0.0.1:{ports['coord']}",
                              "serve"])
    a = lab.start("agent", [agent, "-c", conf, "-v"],
                  ready_url=murl + "/healthz")
    tap.ok(a.alive(), "the agent serves /healthz on metrics_listen")

    up = wait_until(lambda: (lambda s: s and all(
        inst(s, n)["state"] == "running" for n in ("demo-a-0", "demo-a-1"))
        and s["coordinator"]["registered"])(agent_status(agent, sock)),
        WAIT, what="instances running and registered")
    tap.ok(up, "both instances run and the agent is registered")

    r = http_get(murl + "/metrics")
    ctype = r.headers.get("Content-Type", "")
    tap.ok(r.status == 200 and ctype.startswith("text/plain; version=0.0.4"),
           "/metrics answers 200 with the 0.0.4 text Content-Type",
           diag=f"status {r.status}, Content-Type {ctype!r}")
    rc, out = lab.check_metrics(r.text)
    tap.ok(rc == 0, "promtool check metrics accepts the agent's /metrics",
           diag=f"exit {rc}:\n{out}\n--- input ---\n{r.text}")

    prom = lab.start_prometheus(scrape=[{
        "job": "reflex-agent", "targets": [f"127.0.0.1:{ports['metrics']}"],
        "labels": {"node": "node-m"}}])
    scraped = wait_until(lambda: prom.value(
        'reflex_agent_instance_up{job="reflex-agent"}',
        exported_instance="demo-a-1") == 1.0, WAIT,
        what="Prometheus to scrape the agent")
    tap.ok(scraped, "Prometheus scrapes the agent (instance_up 1)")

    old = inst(agent_status(agent, sock), "demo-a-0")["pid"]
    os.kill(old, signal.SIGKILL)
    back = wait_until(lambda: (lambda i: i["state"] == "running" and
                               i["pid"] not in (None, old))(
        inst(agent_status(agent, sock), "demo-a-0")), WAIT,
        what="the agent to restart demo-a-0")
    tap.ok(back, "the agent restarts the killed instance")

    q = 'reflex_agent_restarts_total{job="reflex-agent",reason="crash"}'
    seen = wait_until(lambda: prom.value(q, exported_instance="demo-a-0")
                      == 1.0, WAIT, what="the restart in Prometheus")
    tap.ok(seen, "PromQL: restarts_total{reason=\"crash\"} is 1 for the "
           "killed instance", diag=json.dumps(prom.query(q)))
    tap.ok(prom.value(q, exported_instance="demo-a-1") == 0.0,
           "and 0 for the other one", diag=json.dumps(prom.query(q)))
    # Every own restart (crash, or probe should a slow start have failed
    # its probes) was granted by the coordinator, and counted.
    q = ('sum(reflex_agent_permits_total{result="granted"}) - '
         'sum(reflex_agent_restarts_total{reason=~"probe|crash"})')
    d = prom.value(q)
    g = prom.value('reflex_agent_permits_total{result="granted"}')
    tap.ok(d == 0.0 and g is not None and g >= 1.0,
           "PromQL: each own restart has its granted permit counted",
           diag=f"granted {g}, granted - own restarts {d}")
    r = http_get(murl + "/healthz")
    tap.ok(r.status == 200 and r.text == "ok\n", "/healthz says ok",
           diag=f"HTTP {r.status}: {r.text!r}")
    r = http_get(murl + "/nothing")
    tap.ok(r.status == 404, "other paths: 404", diag=f"HTTP {r.status}")

    rc = lab.stop(a)
    tap.ok(rc == 0, "SIGTERM: the agent exits 0", diag=f"rc={rc}")
    reports = [l for l in a.log_text().splitlines()
               if "runtime error:" in l or "Sanitizer" in l]
    tap.ok(not reports, "no sanitizer report in the agent's log",
           diag="\n".join(reports[:20]))


def main(tap):
    missing = missing_monitoring_tools()
    if missing:
        Tap.skip_all(f"not installed: {', '.join(missing)} (apt-get install "
                     "prometheus prometheus-alertmanager)")
    with Lab(prefix="reflex-agent-metrics-") as lab:
        try:
            run(tap, lab)
        finally:
            if tap.failed:
                lab.mark_failed()


if __name__ == "__main__":
    Tap.main(main)
