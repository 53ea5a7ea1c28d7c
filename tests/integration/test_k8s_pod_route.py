#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A pod restart in the coordinator's kubernetes runtime goes to the
pod's agent when one has it, else to the API server.

On 127.0.0.1 only: tests/fakek8s serves case C14-current over TLS (pods
aaaaa on node-a, bbbbb on node-b, ccccc on node-c crash-looping; a PDB
that lets the unready ccccc go). The coordinator runs with `runtime:
kubernetes`; one agent (kubernetes runtime) runs as node-c with its own
API token, so the fake server tells whose eviction it saw. Checked:
  - a Ready pod on node-c whose PDB allows 0 disruptions: the alert
    naming it is refused through the agent (the API's 429), a "refused"
    row via agent node-c, the pod neither evicted nor deleted;
  - an alert naming ccccc (node-c, agent there): the agent evicts it
    (its token on the Eviction, its log), the restart row says "via
    agent node-c", and the agent's check of the replacement verifies it;
  - an alert naming a pod on node-a (no agent there): the coordinator
    evicts it itself (its token), the row says "via API (no agent for
    pod)".
Prints TAP; every process and server started here is stopped at the end.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, ".."))
from reflexlab import (Tap, free_port, http_json, http_post,  # noqa: E402
                       reflex_popen, scaled)
from fakek8s import FakeAPIServer  # noqa: E402

BUILD = os.environ.get("REFLEX_BUILD") or os.path.join(HERE, "..", "..",
                                                       "build")
AGENT = os.path.join(BUILD, "agent", "reflex-agent")
COORD = os.path.join(BUILD, "coordinator", "reflex-coordinator")
WAIT = scaled(30.0)  # stretched under valgrind
NS = "ns-a"
POD_C = "svc-a-7b6d9-ccccc"
LONE = "lone-0"
GUARD = "guard-0"
AGENT_USER = "system:serviceaccount:reflex:agent-node-c"

COORD_CONF = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: "{kc}", qps: 100,
            burst: 100 }}
safety: {{ blast_radius_percent: 100 }}
rules:
  - name: pod-crashlooping
    matchers: ['alertname = "PodCrashLooping"']
    verify: {{ health: true, resolved: false, interval: 300ms,
              timeout: 20s }}
    actions: [ {{ type: restart, service: "{{{{ service }}}}",
                 instance: "{{{{ pod }}}}",
                 params: {{ namespace: "{{{{ namespace }}}}" }} }} ]
  - name: pod-stuck
    matchers: ['alertname = "PodStuck"']
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: "{{{{ service }}}}",
                 instance: "{{{{ pod }}}}",
                 params: {{ namespace: "{{{{ namespace }}}}" }} }} ]
"""

AGENT_CONF = """\
node: node-c
coordinator: tcp://127.0.0.1:{agents}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: {kc}, qps: 100, burst: 100 }}
  discovery_interval: 300ms
  evict: {{ max_tries: 2, backoff: 100ms, budget: 2s }}
  annotations: {{ enabled: false }}
workloads:
  - namespace: ns-a
    selector: {{ app: svc-a }}
  - name: guard
    namespace: ns-a
    selector: {{ app: guard }}
"""


def lone_pod():
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": LONE, "namespace": NS,
                     "labels": {"app": "lone"}},
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "main", "image": "registry.example.com/lone:1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "podIPs": [{"ip": "127.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def guard_objects():
    pod = lone_pod()
    pod["metadata"].update(name=GUARD, labels={"app": "guard"})
    pod["spec"]["nodeName"] = "node-c"
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "guard", "namespace": NS, "generation": 1},
           "spec": {"minAvailable": 1,
                    "selector": {"matchLabels": {"app": "guard"}}},
           "status": {"observedGeneration": 1, "disruptionsAllowed": 0,
                      "currentHealthy": 1, "desiredHealthy": 1,
                      "expectedPods": 1}}
    return [pod, pdb]


def wait_for(pred, timeout=WAIT, step=0.1):
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:  # noqa: BLE001 - not there yet
            v = None
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class Procs:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv):
        log = open(os.path.join(self.work, name + ".log"), "wb")
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "all_proxy", "ALL_PROXY"):
            env.pop(k, None)
        p = reflex_popen(name, argv, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
        p.log_path = log.name
        self.procs.append(p)
        return p

    @staticmethod
    def log(p):
        with open(p.log_path, errors="replace") as f:
            return f.read()

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(scaled(10))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def alert(url, name, service, pod):
    return http_post(url + "/api/v1/alerts", json.dumps({
        "version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {
                "alertname": name, "namespace": NS, "service": service,
                "pod": pod},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]}).encode(),
        headers={"Content-Type": "application/json"})


def rows(url, type_, instance, states):
    return [a for a in http_json(url + "/api/v1/actions")
            if a.get("type") == type_ and a.get("instance") == instance and
            a.get("state") in states]


def evictions(srv, pod):
    return srv.requests_matching(
        "POST", rf"/namespaces/{NS}/pods/{pod}/eviction$")


def checks(t, procs, srv, work):
    ckc = srv.write_kubeconfig(os.path.join(work, "kc-coord"), namespace=NS)
    srv.add_token("agent-node-c-token", AGENT_USER)
    akc = srv.write_kubeconfig(os.path.join(work, "kc-agent"), namespace=NS,
                               token="agent-node-c-token")
    srv.put_object(lone_pod())
    for o in guard_objects():
        srv.put_object(o)
    http, agents, listen = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cconf = os.path.join(work, "coordinator.yaml")
    with open(cconf, "w") as f:
        f.write(COORD_CONF.format(http=http, agents=agents, kc=ckc,
                                  journal=os.path.join(work, "j.db")))
    aconf = os.path.join(work, "agent.yaml")
    with open(aconf, "w") as f:
        f.write(AGENT_CONF.format(agents=agents, listen=listen, kc=akc,
                                  sock=os.path.join(work, "agent.sock")))
    coord = procs.start("coordinator", [COORD, "-c", cconf])
    ag = procs.start("agent", [AGENT, "-c", aconf])
    reg = wait_for(lambda: [a for a in http_json(url + "/api/v1/agents")
                            if {POD_C, GUARD} <= {w.get("instance") for w in
                                                  a.get("workloads", [])}])
    t.ok(reg, "the node-c agent registered pods ccccc and guard-0",
         procs.log(ag)[-1500:] + procs.log(coord)[-1500:])

    r = alert(url, "PodStuck", "guard", GUARD)
    rst = wait_for(lambda: rows(url, "restart", GUARD,
                                ("succeeded", "failed", "refused")))
    gp = srv.get("pods", NS, GUARD)
    ev = evictions(srv, GUARD)
    t.ok(r.status == 200 and rst and rst[0]["state"] == "refused" and
         "via agent node-c" in rst[0].get("detail", "") and
         "blocked by PDB guard" in rst[0].get("detail", "") and
         ev and all(e.user == AGENT_USER and e.status == 429
                    for e in ev) and
         gp is not None and not gp["metadata"].get("deletionTimestamp") and
         not srv.requests_matching("DELETE", rf"/pods/{GUARD}$"),
         "a PDB's refusal at the agent is reported as refused, not forced",
         {"rows": rst, "evictions": [(e.user, e.status) for e in ev],
          "log": procs.log(ag)[-1500:]})

    srv.start_ticker(0.2)
    r = alert(url, "PodCrashLooping", "svc-a", POD_C)
    ver = wait_for(lambda: rows(url, "verify", POD_C,
                                ("verified", "failed", "timeout")))
    rst = rows(url, "restart", POD_C, ("succeeded", "failed", "refused"))
    ev = evictions(srv, POD_C)
    t.ok(r.status == 200 and rst and rst[0]["state"] == "succeeded" and
         "via agent node-c" in rst[0].get("detail", "") and
         rst[0].get("node") == "node-c",
         "the restart of a pod on node-c ran via its agent",
         {"rows": http_json(url + "/api/v1/actions")})
    t.ok(ev and all(e.user == AGENT_USER for e in ev) and
         "kube.evict_done" in procs.log(ag) and POD_C in procs.log(ag),
         "the agent evicted it (its token on the Eviction, its log)",
         {"evictions": [(e.user, e.status) for e in ev],
          "log": procs.log(ag)[-2000:]})
    t.ok(ver and ver[0]["state"] == "verified" and
         ver[0].get("node") == "node-c",
         "the agent's check of the replacement verified it",
         {"verify": ver, "log": procs.log(ag)[-1500:]})
    srv.stop_ticker()

    r = alert(url, "PodStuck", "lone", LONE)
    rst = wait_for(lambda: rows(url, "restart", LONE,
                                ("succeeded", "failed", "refused")))
    ev = evictions(srv, LONE)
    t.ok(r.status == 200 and rst and rst[0]["state"] == "succeeded" and
         "via API (no agent for pod)" in rst[0].get("detail", ""),
         "a pod on node-a (no agent) is restarted via the API",
         {"rows": rst, "log": procs.log(coord)[-2000:]})
    t.ok(ev and all(e.user != AGENT_USER for e in ev) and
         "engine.pod_route" in procs.log(coord),
         "the coordinator evicted it itself",
         [(e.user, e.status) for e in ev])


def main():
    t = Tap()
    work = tempfile.mkdtemp(prefix="reflex-k8s-pod-route-")
    procs = Procs(work)
    ok = False
    try:
        with FakeAPIServer(fixture="C14-current", tls=True) as srv:
            checks(t, procs, srv, work)
        ok = t.failed == 0
    except Exception as e:  # noqa: BLE001 - one failed test point
        import traceback
        t.ok(False, f"ran to the end: {e}", traceback.format_exc())
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            t.diag(f"logs kept in {work}")
    sys.exit(t.done())


if __name__ == "__main__":
    main()
