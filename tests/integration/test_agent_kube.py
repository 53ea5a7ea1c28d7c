#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex-agent's kubernetes runtime against the fake API server.

On 127.0.0.1 only. tests/fakek8s serves case C14 over TLS (PDB svc-a
allows 0 disruptions; pods aaaaa on node-a, bbbbb on node-b, ccccc on
node-c, ccccc crash-looping and not Ready). Every pod gets status.podIP
127.0.0.1 and a distinct reflex.io/probe-port where this script serves
its health, so nothing is ever sent to another address. reflex-send
plays the coordinator (it prints every request and grants permits). The
agent runs as node-c (from $NODE_NAME) with a workload for app=svc-a and
annotation probing on. Checked:
  - discovery by node (fieldSelector spec.nodeName=node-c): only node-c's
    pods are managed, probed and registered (service from the owner
    Deployment, addr = podIP:port, advertise from ${VAR});
  - HTTP probe failures -> permit -> eviction -> 429 from the PDB:
    reported as "blocked by PDB svc-a (0 disruptions allowed ...)",
    the pod untouched, the restart held;
  - "check" reads readiness from the API (not Ready: CrashLoopBackOff);
  - a restart command evicts the pod (current eviction semantics): the
    API gets a policy/v1 Eviction and the pod a deletionTimestamp;
  - "check" of the evicted pod is ok once a Ready replacement exists;
  - a pod of no workload with only reflex.io/probe-port gets a TCP
    probe, and is evicted when the port stops answering;
  - a whole-service restart and unknown pods are refused, and so is
    clear_cache on a workload without clear_cache:;
  - clear_cache configured as an HTTP call (workloads[].clear_cache):
    one call per Ready pod of the service at podIP:port, ok only when
    every pod answered 2xx, a per-pod "pod: status" message; a failing
    pod is named; a not-Ready pod is left alone; the named-pod form
    calls that pod only; a service without it is refused;
  - `reflex-agent status` shows the pods, probe state and actions, and
    /metrics counts evictions by result;
  - end to end with the real reflex-coordinator (case C14-current): an
    alert restarts the crash-looping pod through the agent (eviction),
    and the coordinator's verification ("check") passes once the
    ReplicaSet's replacement is Ready;
  - the agent.yaml shipped in deploy/kubernetes/20-config.yaml passes
    --check-config with the DaemonSet's environment, and 40-agent.yaml
    mounts it where the agent reads it.
Prints TAP; every process and server started here is stopped at the end.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, ".."))
from reflexlab import (Tap, find_binary, free_port, http_get,  # noqa: E402
                       http_json, http_post, reflex_popen, scaled)
from fakek8s import FakeAPIServer  # noqa: E402

BUILD = os.environ.get("REFLEX_BUILD") or os.path.join(HERE, "..", "..",
                                                       "build")
AGENT = os.path.join(BUILD, "agent", "reflex-agent")
SEND = os.path.join(BUILD, "tests", "reflex-send")
WAIT = scaled(15.0)  # bound on each wait (seconds; valgrind: stretched)
NS = "ns-a"
POD_A, POD_B, POD_C = ("svc-a-7b6d9-aaaaa", "svc-a-7b6d9-bbbbb",
                       "svc-a-7b6d9-ccccc")


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


class Health:
    """An HTTP health endpoint on 127.0.0.1 that answers 200 or 500 and
    counts its requests."""

    def __init__(self):
        self.healthy = True
        self.hits = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.hits += 1
                body = b"ok\n" if outer.healthy else b"broken\n"
                self.send_response(200 if outer.healthy else 500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class CacheEndpoint:
    """An action endpoint on 127.0.0.1 (one per pod): records each
    request (method, path) and answers `code`."""

    def __init__(self, code=200):
        self.code = code
        self.calls = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.calls.append((self.command, self.path))
                body = b"done\n"
                self.send_response(outer.code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")  # stop() closes
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_POST = do_PUT = do_GET = _answer

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Listener:
    """A bare TCP port on 127.0.0.1 that accepts (for TCP probes)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = True
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while self.open:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()

    def close(self):
        self.open = False
        self.sock.close()


def local_pod(srv, name, port, path=None):
    """Points the pod at this host: podIP 127.0.0.1 and the probe port."""
    def fn(o):
        o["status"]["podIP"] = "127.0.0.1"
        o["status"]["podIPs"] = [{"ip": "127.0.0.1"}]
        ann = o["metadata"].setdefault("annotations", {})
        ann["reflex.io/probe-port"] = str(port)
        if path:
            ann["reflex.io/probe-path"] = path
    srv.update_object("pods", NS, name, fn)


def bare_pod(name, ns, node, port):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"role": "tcp-only"},
                     "annotations": {"reflex.io/probe-port": str(port)}},
        "spec": {"nodeName": node, "containers": [
            {"name": "main", "image": "registry.example.com/tcp:1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "podIPs": [{"ip": "127.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def cache_pod(name, slot, ready=True):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns-b",
                     "labels": {"app": "cache", "slot": slot}},
        "spec": {"nodeName": "node-c", "containers": [
            {"name": "main", "image": "registry.example.com/cache:1"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "podIPs": [{"ip": "127.0.0.1"}],
                   "conditions": [{"type": "Ready", "status":
                                   "True" if ready else "False"}]},
    }


# Every pod's IP is 127.0.0.1, so each cache pod gets its own workloads
# entry (same service name) with its own port: a distinct endpoint per
# pod.
CACHE_CONF = """\
coordinator: tcp://127.0.0.1:{coord}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: {kc}, qps: 100, burst: 100,
            backoff: 20ms, backoff_max: 100ms, timeout: 5s }}
  discovery_interval: 300ms
  annotations: {{ enabled: false }}
workloads:
  - name: cache
    namespace: ns-b
    selector: {{ app: cache, slot: a }}
    clear_cache: {{ method: POST, path: /cache/clear, port: {pa},
                   timeout: 2s }}
  - name: cache
    namespace: ns-b
    selector: {{ app: cache, slot: b }}
    clear_cache: {{ method: POST, path: /cache/clear, port: {pb},
                   timeout: 2s }}
  - name: cache
    namespace: ns-b
    selector: {{ app: cache, slot: c }}
    clear_cache: {{ method: POST, path: /cache/clear, port: {pc} }}
  - name: plain
    namespace: ns-b
    selector: {{ app: plain }}
"""


AGENT_CONF = """\
coordinator: tcp://127.0.0.1:{coord}
listen: tcp://127.0.0.1:{listen}
advertise: tcp://${{TEST_AGENT_IP}}:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
permit_timeout: 2s
metrics_listen: 127.0.0.1:{metrics}
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: {kc}, qps: 100, burst: 100,
            backoff: 20ms, backoff_max: 100ms, timeout: 5s }}
  discovery_interval: 500ms
  evict: {{ max_tries: 2, backoff: 100ms, budget: 2s }}
  annotations:
    probe: {{ period: {period}, timeout: {ptimeout}, failure_threshold: 2,
             initial_delay: 0s }}
    restart_backoff: {{ initial: 30s, max: 60s }}
workloads:
  - namespace: ns-a
    selector: {{ app: svc-a }}
    probe: {{ type: http, path: /healthz, period: {period},
             timeout: {ptimeout}, failure_threshold: 2, initial_delay: 0s }}
    restart_backoff: {{ initial: 30s, max: 60s }}
"""


class Run:
    def __init__(self, tap, work):
        self.tap = tap
        self.work = work
        self.procs = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.work, name + ".log"), "wb")
        e = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "all_proxy", "ALL_PROXY"):
            e.pop(k, None)
        e.update(env or {})
        p = reflex_popen(name, argv, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=e,
                         start_new_session=True)
        p.log_path = log.name
        self.procs.append(p)
        return p

    def log(self, p):
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


def status(sock):
    r = subprocess.run([AGENT, "status", "-s", sock, "--json"],
                       capture_output=True, text=True, timeout=20)
    return json.loads(r.stdout) if r.returncode == 0 else None


def pod_of(st, name):
    for p in st["pods"]:
        if p["name"] == name:
            return p
    return None


def send(url, *args):
    r = subprocess.run([SEND, url] + list(args) + ["--wait", "10000"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return {"transport_error": r.stderr.strip()}
    return json.loads(r.stdout.splitlines()[-1])


def coord_requests(run, coord, kind):
    out = []
    for line in run.log(coord).splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("type") == kind:
            out.append(o)
    return out


def main_checks(t, run, srv, work):
    ha, hb, hc = Health(), Health(), Health()
    tcp = Listener()
    local_pod(srv, POD_A, ha.port, "/healthz")
    local_pod(srv, POD_B, hb.port, "/healthz")
    local_pod(srv, POD_C, hc.port)  # path from the workload's probe
    srv.put_object(bare_pod("tcp-only", "ns-b", "node-c", tcp.port))
    kc = srv.write_kubeconfig(os.path.join(work, "kubeconfig"),
                              namespace=NS)
    coord, listen, metrics = free_port(), free_port(), free_port()
    sock = os.path.join(work, "agent.sock")
    conf = os.path.join(work, "agent.yaml")
    with open(conf, "w") as f:
        # A probe's answer must come within its timeout even when the
        # agent runs under valgrind (an HTTP 500 read late is a timeout).
        f.write(AGENT_CONF.format(coord=coord, listen=listen, sock=sock,
                                  metrics=metrics, kc=kc,
                                  period=f"{int(scaled(0.2) * 1000)}ms",
                                  ptimeout=f"{int(scaled(0.15) * 1000)}ms"))
    c = run.start("coordinator", [SEND, f"tcp://127.0.0.1:{coord}",
                                  "serve"])
    r = subprocess.run([AGENT, "-c", conf, "--check-config"],
                       capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, NODE_NAME="node-c",
                                TEST_AGENT_IP="127.0.0.1"))
    t.ok(r.returncode == 0, "the kubernetes config passes --check-config",
         r.stdout + r.stderr)
    ag = run.start("agent", [AGENT, "-c", conf, "-v"],
                   env={"NODE_NAME": "node-c",
                        "TEST_AGENT_IP": "127.0.0.1"})
    cmd_url = f"tcp://127.0.0.1:{listen}"

    # Discovery by node.
    st = wait_for(lambda: (lambda s: s if s and pod_of(s, POD_C) and
                           pod_of(s, "tcp-only") else None)(status(sock)))
    t.ok(st is not None and st["node"] == "node-c" and
         st["runtime"] == "kubernetes",
         "the agent takes its node from NODE_NAME and lists its pods",
         st if st else run.log(ag)[-3000:])
    if st is None:
        return
    names = sorted(p["name"] for p in st["pods"])
    t.ok(names == [POD_C, "tcp-only"],
         "only the pods of node-c are seen", names)
    lists = srv.requests_matching("GET", r"^/api/v1/pods$")
    t.ok(lists and all(r.query.get("fieldSelector") ==
                       "spec.nodeName=node-c" for r in lists),
         "pods are listed with fieldSelector spec.nodeName=node-c",
         [(r.path, r.query) for r in lists[:3]])
    regs = wait_for(lambda: [r for r in coord_requests(run, c, "register")
                             if len(r["body"]["workloads"]) == 2])
    wl = sorted((w["service"], w["instance"], w["addr"])
                for w in regs[-1]["body"]["workloads"]) if regs else []
    t.ok(wl == [("svc-a", POD_C, f"127.0.0.1:{hc.port}"),
                ("tcp-only", "tcp-only", f"127.0.0.1:{tcp.port}")] and
         regs[-1]["body"]["runtime"] == "kubernetes" and
         regs[-1]["body"]["addr"] == cmd_url,
         "the managed pods are registered as (owner workload or app "
         "label, pod name, podIP:port), runtime kubernetes, advertised "
         "URL expanded", regs[-1]["body"] if regs else run.log(c)[-2000:])
    st = wait_for(lambda: (lambda s: s if s and pod_of(s, "tcp-only")[
        "probe"] and pod_of(s, "tcp-only")["probe"]["ok"] and
        pod_of(s, POD_C)["probe"]["ok"] else None)(status(sock)))
    pc, pt = (pod_of(st, POD_C), pod_of(st, "tcp-only")) if st else ({}, {})
    t.ok(st is not None and pc["probe"]["type"] == "http" and
         pc["probe"]["target"] == f":{hc.port}/healthz" and
         pc["state"] == "running" and pt["probe"]["type"] == "tcp" and
         tcp.accepted > 0,
         "node-c's pods are probed: HTTP (port from the annotation, path "
         "from the workload) and TCP (annotation only)",
         json.dumps([pc, pt])[:1500])
    t.ok(ha.hits == 0 and hb.hits == 0 and hc.hits > 0,
         "pods of other nodes are never probed",
         {"a": ha.hits, "b": hb.hits, "c": hc.hits})

    # check reads readiness from the API.
    a = send(cmd_url, "command", "check", "svc-a", POD_C)
    t.ok(a.get("ok") is False and "CrashLoopBackOff" in a.get("message", "")
         and a["json"]["results"][0]["state"] == "not_ready",
         "check: the pod's readiness comes from the API (not Ready: "
         "CrashLoopBackOff)", a)

    # Probe failures -> permit -> eviction blocked by the PDB (C14).
    hc.healthy = False
    permits = wait_for(lambda: [r for r in coord_requests(run, c, "permit")
                                if r["body"]["instance"] == POD_C])
    t.ok(permits and permits[0]["body"]["service"] == "svc-a" and
         "probe failed 2 times: HTTP 500" in permits[0]["body"]["reason"],
         "failing probes make the agent ask the coordinator first",
         permits[:1] if permits else run.log(ag)[-2000:])
    st = wait_for(lambda: (lambda s: s if s and any(
        x["kind"] == "own_evict" and x["result"] == "blocked"
        for x in s["actions"]) else None)(status(sock)))
    act = [x for x in (st or {}).get("actions", [])
           if x["kind"] == "own_evict" and x["result"] == "blocked"]
    t.ok(act and "blocked by PDB svc-a (0 disruptions allowed" in
         act[0]["detail"],
         "the granted eviction is refused by the PDB and reported as "
         "blocked by PDB svc-a (0 disruptions allowed)",
         act or (st or {}).get("actions"))
    ev = srv.requests_matching("POST", r"/pods/%s/eviction$" % POD_C)
    pod = srv.get("pods", NS, POD_C)
    t.ok(ev and all(r.status == 429 for r in ev) and len(ev) == 2 and
         "deletionTimestamp" not in pod["metadata"],
         "two tries, both 429, and the pod is untouched",
         [(r.method, r.path, r.status) for r in ev])
    pc = pod_of(st, POD_C) if st else None
    t.ok(pc and pc["permit"] and pc["permit"]["phase"] == "held" and
         "eviction blocked" in (pc["permit"]["held"] or ""),
         "the restart is held and asked again later (restart_backoff)",
         pc)
    m = http_get(f"http://127.0.0.1:{metrics}/metrics").text
    t.ok('reflex_agent_evictions_total{result="blocked"} 1' in m and
         'reflex_agent_probes_total{service="svc-a",instance="%s",'
         'result="failure"}' % POD_C in m,
         "/metrics counts the blocked eviction and the probes",
         [x for x in m.splitlines() if "evictions" in x or POD_C in x])

    # Refusals.
    a = send(cmd_url, "command", "restart", "svc-a")
    t.ok(a.get("ok") is False and a.get("code") == -22,
         "a restart of a whole service is refused (one named pod at a "
         "time)", a)
    a = send(cmd_url, "command", "restart", "svc-a", "no-such-pod")
    b = send(cmd_url, "command", "clear_cache", "svc-a", POD_C)
    t.ok(a.get("code") == -2 and b.get("code") == -95 and
         "clear_cache is not configured for service svc-a" in
         b.get("message", ""),
         "an unknown pod and an unconfigured clear_cache are refused",
         [a, b])

    # A restart command under current eviction semantics: evicted.
    srv.knobs["unready_eviction"] = "current"
    srv.clear_requests()
    a = send(cmd_url, "command", "restart", "svc-a", POD_C, "--reason",
             "test", "--action-id", "41")
    res = (a.get("json") or {}).get("results", [{}])[0]
    t.ok(a.get("ok") is True and res.get("outcome") == "evicted",
         "a restart command evicts the pod", a)
    ev = srv.requests_matching("POST", r"/pods/%s/eviction$" % POD_C)
    body = json.loads(ev[0].body) if ev else {}
    pod = srv.get("pods", NS, POD_C)
    t.ok(ev and ev[0].status == 201 and body.get("kind") == "Eviction" and
         body.get("apiVersion") == "policy/v1" and
         body["metadata"]["name"] == POD_C and pod is not None and
         pod["metadata"].get("deletionTimestamp"),
         "the API got a policy/v1 Eviction and the pod has a "
         "deletionTimestamp", [(r.path, r.status, r.body[:200])
                               for r in ev])
    st = wait_for(lambda: (lambda s: s if s and pod_of(s, POD_C) and
                           pod_of(s, POD_C)["state"] == "terminating"
                           else None)(status(sock)))
    t.ok(st is not None and hc.hits > 0,
         "the agent sees the pod terminating and stops probing it",
         pod_of(status(sock) or {"pods": []}, POD_C))
    a = send(cmd_url, "command", "check", "svc-a", POD_C)
    t.ok(a.get("ok") is False and a.get("code") == -11,
         "check right after the eviction: no Ready replacement yet", a)
    srv.tick(4)
    a = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
        send(cmd_url, "command", "check", "svc-a", POD_C)), timeout=10)
    t.ok(a and "replaced by svc-a-7b6d9-" in a.get("message", ""),
         "check of the evicted pod is ok once a Ready replacement of the "
         "same ReplicaSet exists", a)

    # TCP probe failure -> permit -> eviction of a bare pod.
    tcp.close()
    st = wait_for(lambda: (lambda s: s if s and any(
        x["kind"] == "own_evict" and x["instance"] == "tcp-only" and
        x["result"] == "evicted" for x in s["actions"]) else None)(
        status(sock)))
    gone = srv.get("pods", "ns-b", "tcp-only")
    t.ok(st is not None and (gone is None or
                             gone["metadata"].get("deletionTimestamp")),
         "a pod whose TCP port closed is evicted after the permit",
         (st or {}).get("actions"))
    r = subprocess.run([AGENT, "status", "-s", sock], capture_output=True,
                       text=True, timeout=20)
    t.ok(r.returncode == 0 and "pods (managed)" in r.stdout and
         "blocked" in r.stdout and "own_evict" in r.stdout and
         "kubernetes" in r.stdout,
         "reflex-agent status shows the pods, probe state and recent "
         "actions", r.stdout + r.stderr)
    m = http_get(f"http://127.0.0.1:{metrics}/metrics").text
    t.ok('reflex_agent_evictions_total{result="evicted"} 2' in m,
         "/metrics counts both evictions",
         [x for x in m.splitlines() if "evictions_total{" in x])
    promtool = find_binary("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=m,
                           capture_output=True, text=True, timeout=30)
        t.ok(r.returncode == 0, "promtool check metrics accepts the "
             "kubernetes runtime's /metrics", r.stdout + r.stderr)
    else:
        t.skip("promtool check metrics", "promtool not installed")
    ag.terminate()
    rc = ag.wait(20)
    t.ok(rc == 0 and "Sanitizer" not in run.log(ag),
         "the agent stops cleanly", run.log(ag)[-1500:])
    for h in (ha, hb, hc):
        h.stop()


def cache_calls(t, run, srv, work):
    """clear_cache as an HTTP call on the service's pods."""
    ea, eb, ec = CacheEndpoint(), CacheEndpoint(), CacheEndpoint()
    srv.put_object(cache_pod("cache-a", "a"))
    srv.put_object(cache_pod("cache-b", "b"))
    srv.put_object(cache_pod("cache-c", "c", ready=False))
    plain = cache_pod("plain-x", "x")
    plain["metadata"]["labels"] = {"app": "plain"}
    srv.put_object(plain)
    kc = srv.write_kubeconfig(os.path.join(work, "kubeconfig-cache"),
                              namespace="ns-b")
    coord, listen = free_port(), free_port()
    sock = os.path.join(work, "agent-cache.sock")
    conf = os.path.join(work, "agent-cache.yaml")
    with open(conf, "w") as f:
        f.write(CACHE_CONF.format(coord=coord, listen=listen, sock=sock,
                                  kc=kc, pa=ea.port, pb=eb.port,
                                  pc=ec.port))
    run.start("coordinator-cache", [SEND, f"tcp://127.0.0.1:{coord}",
                                    "serve"])
    ag = run.start("agent-cache", [AGENT, "-c", conf, "-v"],
                   env={"NODE_NAME": "node-c"})
    url = f"tcp://127.0.0.1:{listen}"
    st = wait_for(lambda: (lambda s: s if s and all(
        pod_of(s, n) for n in ("cache-a", "cache-b", "cache-c",
                               "plain-x")) else None)(status(sock)))
    t.ok(st is not None, "the cache pods are discovered",
         st if st else run.log(ag)[-3000:])
    if st is None:
        return

    a = send(url, "command", "clear_cache", "cache")
    res = sorted((r["instance"], r["ok"], r["status"])
                 for r in (a.get("json") or {}).get("results", []))
    t.ok(a.get("ok") is True and a.get("code") == 0 and
         ea.calls == [("POST", "/cache/clear")] and
         eb.calls == [("POST", "/cache/clear")] and ec.calls == [] and
         res == [("cache-a", True, 200), ("cache-b", True, 200)] and
         "cache-a: 200" in a.get("message", "") and
         "cache-b: 200" in a.get("message", ""),
         "clear_cache calls each Ready pod of the service once "
         "(POST podIP:port/cache/clear) and replies ok with one line per "
         "pod; the not-Ready pod is left alone",
         {"reply": a, "a": ea.calls, "b": eb.calls, "c": ec.calls})

    eb.code = 500
    a = send(url, "command", "clear_cache", "cache")
    msg = a.get("message", "")
    t.ok(a.get("ok") is False and a.get("code") != 0 and
         msg.startswith("cache-b: HTTP 500") and "cache-a: 200" in msg and
         len(ea.calls) == 2 and len(eb.calls) == 2,
         "one pod answering 500 makes the reply ok=false, naming that pod",
         a)

    eb.stop()
    a = send(url, "command", "clear_cache", "cache")
    bad = [r for r in (a.get("json") or {}).get("results", [])
           if not r["ok"]]
    t.ok(a.get("ok") is False and len(bad) == 1 and
         bad[0]["instance"] == "cache-b" and bad[0]["status"] == 0 and
         a.get("message", "").startswith("cache-b: "),
         "a pod that refuses the connection is named with the reason", a)

    a = send(url, "command", "clear_cache", "cache", "cache-a")
    res = [r["instance"] for r in (a.get("json") or {}).get("results", [])]
    t.ok(a.get("ok") is True and res == ["cache-a"] and
         len(ea.calls) == 4 and ec.calls == [],
         "the named-pod form calls only that pod",
         {"reply": a, "a": ea.calls})

    a = send(url, "command", "clear_cache", "plain")
    b = send(url, "command", "reload_config", "cache")
    c = send(url, "command", "clear_cache", "cache", "no-such-pod")
    t.ok(a.get("ok") is False and a.get("code") == -95 and
         "clear_cache is not configured for service plain" in
         a.get("message", "") and b.get("code") == -95 and
         "reload_config is not configured" in b.get("message", "") and
         c.get("code") == -2,
         "a service (or action) without a configured call is refused, "
         "and so is an unknown pod", [a, b, c])
    t.ok(len(ea.calls) == 4 and ec.calls == [],
         "refused commands call nothing", {"a": ea.calls, "c": ec.calls})
    ag.terminate()
    rc = ag.wait(20)
    t.ok(rc == 0 and "Sanitizer" not in run.log(ag),
         "the agent stops cleanly", run.log(ag)[-1500:])
    for e in (ea, ec):
        e.stop()


def shipped_config(t, work):
    """deploy/kubernetes: the ConfigMap's agent.yaml and its mount."""
    src = os.environ.get("REFLEX_SRC") or os.path.join(HERE, "..", "..")
    k8s = os.path.join(src, "deploy", "kubernetes")
    with open(os.path.join(k8s, "20-config.yaml")) as f:
        text = f.read()
    lines, body = text.split("\n  agent.yaml: |\n", 1)[1].splitlines(), []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        body.append(line[4:])
    path = os.path.join(work, "shipped-agent.yaml")
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")
    r = subprocess.run([AGENT, "-c", path, "--check-config"],
                       capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, NODE_NAME="node-a",
                                POD_IP="10.244.0.7"))
    t.ok(r.returncode == 0 and "runtime kubernetes" in r.stdout,
         "the shipped agent.yaml passes --check-config with NODE_NAME and "
         "POD_IP set", r.stdout + r.stderr)
    r2 = subprocess.run([AGENT, "-c", path, "--check-config"],
                        capture_output=True, text=True, timeout=20,
                        env={"PATH": os.environ.get("PATH", ""),
                             "POD_IP": "10.244.0.7"})
    t.ok(r2.returncode == 1 and "NODE_NAME" in r2.stderr,
         "without the downward API's NODE_NAME it says what is missing",
         r2.stderr)
    # The commented clear_cache / reload_config example, uncommented.
    calls = [b.replace("# ", "", 1) for b in body
             if b.lstrip().startswith(("# clear_cache:",
                                       "# reload_config:"))]
    with open(path, "w") as f:
        f.write("\n".join(body + calls) + "\n")
    r3 = subprocess.run([AGENT, "-c", path, "--check-config"],
                        capture_output=True, text=True, timeout=20,
                        env=dict(os.environ, NODE_NAME="node-a",
                                 POD_IP="10.244.0.7"))
    t.ok(len(calls) == 2 and r3.returncode == 0,
         "the shipped agent.yaml's commented clear_cache/reload_config "
         "example passes --check-config once uncommented",
         [calls, r3.stdout + r3.stderr])
    with open(os.path.join(k8s, "40-agent.yaml")) as f:
        ds = f.read()
    t.ok('"/etc/reflex/agent.yaml"' in ds and "mountPath: "
         "/etc/reflex/agent.yaml, subPath: agent.yaml" in ds and
         "key: agent.yaml" in ds and "fieldPath: status.podIP" in ds,
         "the DaemonSet mounts agent.yaml where it reads it and sets "
         "POD_IP")


COORD_CONF = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
safety: {{ blast_radius_percent: 100 }}
rules:
  - name: pod-crashlooping
    matchers: ['alertname = "PodCrashLooping"']
    verify: {{ health: true, resolved: false, interval: 300ms,
              timeout: 20s }}
    actions: [ {{ type: restart, service: "{{{{ service }}}}",
                 instance: "{{{{ pod }}}}" }} ]
"""

E2E_AGENT = """\
node: node-c
coordinator: tcp://127.0.0.1:{agents}
listen: tcp://127.0.0.1:{listen}
status_socket: {sock}
heartbeat_interval: 300ms
runtime: kubernetes
kubernetes:
  client: {{ source: kubeconfig, kubeconfig: {kc}, qps: 100, burst: 100 }}
  discovery_interval: 300ms
  annotations: {{ enabled: false }}
workloads:
  - namespace: ns-a
    selector: {{ app: svc-a }}
"""


def end_to_end(t, run, srv, work):
    """The real coordinator drives the agent: restart -> eviction ->
    verified by check once a replacement is Ready."""
    kc = srv.write_kubeconfig(os.path.join(work, "kubeconfig-e2e"),
                              namespace=NS)
    http, agents, listen = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cconf = os.path.join(work, "coordinator.yaml")
    with open(cconf, "w") as f:
        f.write(COORD_CONF.format(http=http, agents=agents,
                                  journal=os.path.join(work, "j.db")))
    aconf = os.path.join(work, "agent-e2e.yaml")
    sock = os.path.join(work, "agent-e2e.sock")
    with open(aconf, "w") as f:
        f.write(E2E_AGENT.format(agents=agents, listen=listen, sock=sock,
                                 kc=kc))
    coord = run.start("coordinator-e2e", [os.path.join(
        BUILD, "coordinator", "reflex-coordinator"), "-c", cconf])
    ag = run.start("agent-e2e", [AGENT, "-c", aconf])
    reg = wait_for(lambda: [a for a in http_json(url + "/api/v1/agents")
                            if any(w.get("instance") == POD_C for w in
                                   a.get("workloads", []))])
    t.ok(reg, "the coordinator knows the pod from the agent's register",
         run.log(ag)[-1500:] + run.log(coord)[-1500:])
    srv.start_ticker(0.2)
    r = http_post(url + "/api/v1/alerts", json.dumps({
        "version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {
                "alertname": "PodCrashLooping", "namespace": NS,
                "service": "svc-a", "pod": POD_C},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]}).encode(),
        headers={"Content-Type": "application/json"})
    acts = wait_for(lambda: [a for a in http_json(url + "/api/v1/actions")
                             if a.get("state") in ("verified", "failed",
                                                   "timeout")], timeout=30)
    pod = srv.get("pods", NS, POD_C)
    t.ok(r.status == 200 and acts and acts[0]["state"] == "verified" and
         (pod is None or pod["metadata"].get("deletionTimestamp")),
         "an alert evicts the pod through the agent and the check of the "
         "replacement verifies it", {"actions": acts, "log": run.log(
             ag)[-2000:]})
    srv.stop_ticker()


def main():
    t = Tap()
    work = tempfile.mkdtemp(prefix="reflex-agent-kube-")
    run = Run(t, work)
    ok = False
    try:
        shipped_config(t, work)
        with FakeAPIServer(fixture="C14", tls=True) as srv:
            main_checks(t, run, srv, work)
        with FakeAPIServer(fixture="C14", tls=True) as srv:
            cache_calls(t, run, srv, work)
        with FakeAPIServer(fixture="C14-current", tls=True) as srv:
            end_to_end(t, run, srv, work)
        ok = t.failed == 0
    except Exception as e:  # noqa: BLE001 - one failed test point
        import traceback
        t.ok(False, f"ran to the end: {e}", traceback.format_exc())
    finally:
        run.stop_all()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            t.diag(f"logs kept in {work}")
    sys.exit(t.done())


if __name__ == "__main__":
    main()
