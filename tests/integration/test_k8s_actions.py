#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reflex's Kubernetes actions against the fake API server (tests/fakek8s).

Each check starts a FakeAPIServer with a fixture, writes a kubeconfig and a
"kubernetes:" config, runs one action through test-k8s-cli (which prints
the action's result as JSON) and checks the result, the objects afterwards
and the requests the server recorded ("read-only calls only", "no DELETE",
"the HPA was patched, never /scale"). Cases C10-C15 of shared/cases, plus
restart/scale/traffic/job/config/revert/events on the "basic" fixture,
kubeconfig and in-cluster credentials over TLS, and injected faults.
Where kubectl is installed, rollback and restart bodies are compared with
the ones kubectl sends for the same fixture.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, ".."))
from reflexlab import Tap  # noqa: E402
from fakek8s import FakeAPIServer  # noqa: E402

BUILD = os.environ.get("REFLEX_BUILD") or os.path.join(HERE, "..", "..",
                                                       "build")
CLI = os.path.join(BUILD, "tests", "test-k8s-cli")
KUBECTL = os.environ.get("REFLEX_KUBECTL") or shutil.which("kubectl")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
C15_NOW = "2026-12-04T16:30:00Z"
BAD_EXITS = []  # test-k8s-cli runs that did not exit 0 (sanitizers, crashes)


def settle(srv):
    """The fake records a request after answering it: wait until its log
    has been quiet for 50 ms (at most 3 s) before counting requests."""
    n, quiet, deadline = -1, 0, time.monotonic() + 3
    while quiet < 2 and time.monotonic() < deadline:
        m = len(srv.requests)
        quiet = quiet + 1 if m == n else 0
        n = m
        time.sleep(0.025)


class Case:
    """A fake API server with a fixture plus a config for test-k8s-cli."""

    def __init__(self, work, fixture, conf="", tls=False, kc_kw=None,
                 srv_kw=None):
        self.work = work
        self.srv = FakeAPIServer(fixture=fixture, tls=tls, **(srv_kw or {}))
        self.conf_extra = conf
        self.kc_kw = kc_kw or {}
        self.conf = os.path.join(work, f"reflex-{fixture}.yaml")

    def __enter__(self):
        self.srv.start()
        kc = self.srv.write_kubeconfig(os.path.join(self.work, "kubeconfig"),
                                       **self.kc_kw)
        self.write_conf(f"  client:\n    source: kubeconfig\n"
                        f"    kubeconfig: {kc}\n    qps: 200\n"
                        f"    burst: 200\n    backoff: 5ms\n"
                        f"    backoff_max: 20ms\n" + self.conf_extra)
        return self

    def write_conf(self, body):
        with open(self.conf, "w") as f:
            f.write("kubernetes:\n" + body)

    def __exit__(self, *exc):
        self.srv.stop()
        return False

    def cli(self, *args, env=None, timeout=120):
        p = subprocess.run([CLI, self.conf, *[str(a) for a in args]],
                           capture_output=True, text=True, timeout=timeout,
                           env=env)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = {"exit": p.returncode, "stdout": p.stdout,
                   "stderr": p.stderr[-2000:]}
        out["_stderr"] = p.stderr[-1500:]
        self.settle()
        if p.returncode != 0:
            BAD_EXITS.append((args, p.returncode, p.stderr[-1500:]))
        return out

    def settle(self):
        settle(self.srv)

    def writes(self):
        return [r for r in self.srv.requests if r.method in WRITES]

    def reqs(self, method=None, path=None):
        return self.srv.requests_matching(method, path)

    def get(self, res, ns, name):
        return self.srv.get(res, ns, name)


def brief(res):
    return json.dumps({k: v for k, v in res.items() if k != "revert_text"},
                      indent=None)[:1500]


def body(rec):
    return json.loads(rec.body) if rec.body else None


def image(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]["image"]


# ---------------------------------------------------------------------------
# C10: rollback with nothing (or something) to roll back to

def t_c10(tap, work):
    for variant in ("A", "B"):
        with Case(work, f"C10-{variant}") as c:
            r = c.cli("rollback", "ns-a", "svc-a")
            tap.ok(r.get("outcome") == "refused" and
                   r.get("code") == "no-history" and
                   r["reason"].startswith("rollback impossible: no earlier "
                                          "ReplicaSet"),
                   f"C10-{variant}: rollback impossible: no earlier "
                   "ReplicaSet", diag=brief(r))
            paths = [(q.method, q.path) for q in c.srv.requests]
            tap.ok(paths == [
                ("GET", "/apis/apps/v1/namespaces/ns-a/deployments/svc-a"),
                ("GET", "/apis/apps/v1/namespaces/ns-a/replicasets")] and
                c.srv.requests[1].query.get("labelSelector") == "app=svc-a",
                f"C10-{variant}: read-only calls only (deployment, RS list "
                "by selector)", diag=paths)

    with Case(work, "C10-C") as c:
        r = c.cli("rollback", "ns-a", "svc-a")
        d = c.get("deployments", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "ok" and r["code"] == "rolled-back" and
               image(d) == "registry.example.com/svc-a:2.0.9",
               "C10-C: rolled back to revision 6 (image 2.0.9)",
               diag=brief(r))
        tap.ok(d["spec"]["replicas"] == 10 and
               "replicas unchanged at 10" in r["reason"],
               "C10-C: replicas stay 10 and the report says so",
               diag=r.get("reason"))
        p = c.reqs("PATCH")
        ops = body(p[0]) if len(p) == 1 else []
        tap.ok(len(p) == 1 and p[0].content_type.startswith(
            "application/json-patch+json") and
            [o["op"] for o in ops] == ["test", "replace", "replace"] and
            ops[0]["path"] == "/metadata/resourceVersion" and
            ops[1]["path"] == "/spec/template" and
            ops[2]["path"] == "/metadata/annotations" and
            ops[1]["value"]["metadata"].get("creationTimestamp", 1) is None
            and "pod-template-hash" not in
            ops[1]["value"]["metadata"]["labels"],
            "C10-C: one JSON patch (RV test, template, annotations), "
            "pod-template-hash stripped", diag=ops)
        tap.ok(r.get("revert") == {"op": "rollback", "ns": "ns-a",
                                   "name": "svc-a", "to_revision": 7},
               "C10-C: revert record rolls back to revision 7",
               diag=r.get("revert"))
        c.srv.converge()
        d = c.get("deployments", "ns-a", "svc-a")
        tap.ok(d["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"] == "8",
            "C10-C: the controller gives the restored template revision 8",
            diag=d["metadata"].get("annotations"))
        rv = c.cli("revert", r["revert_text"])
        d = c.get("deployments", "ns-a", "svc-a")
        tap.ok(rv.get("outcome") == "ok" and rv["code"] == "reverted" and
               image(d) == "registry.example.com/svc-a:2.1.0",
               "C10-C: revert restores 2.1.0", diag=brief(rv))
        c.srv.converge()
        r2 = c.cli("rollback", "ns-a", "svc-a", "9")
        tap.ok(r2.get("outcome") == "ok" and r2["code"] == "skipped" and
               "current template already matches revision 9" in
               r2["reason"] and r2["changed"] is False,
               "rollback to the current template is skipped",
               diag=brief(r2))
        n = len(c.writes())
        r3 = c.cli("rollback", "ns-a", "svc-a", "3")
        tap.ok(r3.get("code") == "no-revision" and
               "unable to find specified revision 3" in r3["reason"] and
               len(c.writes()) == n,
               "rollback to a missing revision is refused, nothing written",
               diag=brief(r3))


def kubectl_patch_of(work, fixture, argv):
    """Runs kubectl against a fresh fake and returns its PATCH requests."""
    with FakeAPIServer(fixture=fixture, tls=True) as srv:
        kc = srv.write_kubeconfig(os.path.join(work, "kc-kubectl"))
        p = subprocess.run([KUBECTL, "--kubeconfig", kc, "--cache-dir",
                            os.path.join(work, "kcache"), *argv],
                           capture_output=True, text=True, timeout=60)
        settle(srv)
        return p, srv.requests_matching("PATCH")


def t_kubectl_parity(tap, work):
    if KUBECTL is None:
        tap.skip("rollback body equals kubectl rollout undo's",
                 "kubectl not installed")
        tap.skip("restart body equals kubectl rollout restart's",
                 "kubectl not installed")
        return
    p, kp = kubectl_patch_of(work, "C10-C", ["-n", "ns-a", "rollout", "undo",
                                             "deployment/svc-a"])
    with Case(work, "C10-C") as c:
        c.cli("rollback", "ns-a", "svc-a")
        rp = c.reqs("PATCH")
    ours = body(rp[0])[1:] if rp else None
    theirs = body(kp[0]) if kp else None
    tap.ok(p.returncode == 0 and ours is not None and ours == theirs,
           "C10-C: rollback sends kubectl rollout undo's replace ops "
           "exactly (after reflex's resourceVersion test)",
           diag=f"{p.stderr}\nours={ours}\nkubectl={theirs}")

    p, kp = kubectl_patch_of(work, "basic", ["-n", "demo", "rollout",
                                             "restart", "deployment/web"])
    with Case(work, "basic") as c:
        c.cli("restart", "deploy", "demo", "web")
        rp = c.reqs("PATCH")

    def shape(rec):
        b = body(rec)
        ann = b["spec"]["template"]["metadata"]["annotations"]
        return (rec.content_type.split(";")[0], list(ann),
                len(ann.get("kubectl.kubernetes.io/restartedAt", "")) >= 20)
    tap.ok(p.returncode == 0 and len(kp) == 1 and len(rp) == 1 and
           shape(kp[0]) == shape(rp[0]) and
           list(body(kp[0])) == list(body(rp[0])),
           "restart sends kubectl rollout restart's strategic merge patch",
           diag=f"{p.stderr}\n{kp and body(kp[0])}\n{rp and body(rp[0])}")


# ---------------------------------------------------------------------------
# C11: paused Deployment

def t_c11(tap, work):
    with Case(work, "C11") as c:
        r = c.cli("restart", "deploy", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "refused" and r["code"] == "paused" and
               "3.0.0-rc1" in r["reason"] and "2.4.1" in r["reason"] and
               "not resuming" in r["reason"],
               "C11: restart refused (paused), template drift 3.0.0-rc1 vs "
               "running 2.4.1 reported", diag=brief(r))
        r = c.cli("rollback", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "refused" and r["code"] == "paused" and
               "drift" in r["reason"],
               "C11: rollback refused (paused)", diag=brief(r))
        v = c.cli("verify", "deploy", "ns-a", "svc-a", C15_NOW)
        tap.ok(v.get("rv") == 0 and v["paused"] and not v["ok"],
               "C11: verification says paused (do not wait for progress)",
               diag=v)
        d = c.get("deployments", "ns-a", "svc-a")
        tap.ok(not c.writes() and d["spec"].get("paused") is True,
               "C11: nothing written, never resumed",
               diag=[(q.method, q.path) for q in c.writes()])


# ---------------------------------------------------------------------------
# C12: HPA-managed scaling

def t_c12(tap, work):
    with Case(work, "C12") as c:
        r = c.cli("scale", "deploy", "ns-a", "svc-a", "by", 2)
        tap.ok(r.get("outcome") == "refused" and r["code"] == "hpa-max" and
               "HPA-managed, at maxReplicas 6" in r["reason"] and
               not c.writes(),
               "C12 scale-up: refused 'HPA-managed, at maxReplicas 6' "
               "(raising max off by policy), nothing written", diag=brief(r))
        r = c.cli("scale", "deploy", "ns-a", "svc-a", "to", 0)
        tap.ok(r.get("outcome") == "refused" and r["code"] == "hpa-zero" and
               not c.writes(),
               "C12 scale to 0: refused (would switch the HPA off)",
               diag=brief(r))
        o = c.cli("owners", "deploy", "ns-a", "svc-a")
        tap.ok(o.get("hpa") and o["hpa_name"] == "svc-a" and
               o["hpa_min"] == 2 and o["hpa_max"] == 6 and o["hpa_at_max"],
               "C12: owners finds HPA svc-a 2..6 at its maximum", diag=o)

    with Case(work, "C12", conf="  hpa_raise_max: true\n"
              "  hpa_max_replicas: 20\n  scale_max: 20\n") as c:
        r = c.cli("scale", "deploy", "ns-a", "svc-a", "by", 2)
        h = c.get("horizontalpodautoscalers", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "ok" and r["code"] == "hpa-adjusted" and
               h["spec"]["maxReplicas"] == 8 and h["spec"]["minReplicas"] == 2,
               "C12 scale-up with policy: HPA maxReplicas 6 -> 8, "
               "minReplicas stays 2", diag=brief(r))
        tap.ok([q.path for q in c.writes()] ==
               ["/apis/autoscaling/v2/namespaces/ns-a/"
                "horizontalpodautoscalers/svc-a"] and
               body(c.writes()[0])["metadata"].get("resourceVersion"),
               "C12: only the HPA is patched (RV-guarded), never "
               "spec.replicas or /scale",
               diag=[(q.method, q.path) for q in c.writes()])
        c.srv.tick(3)
        d = c.get("deployments", "ns-a", "svc-a")
        tap.ok(d["spec"]["replicas"] == 8,
               "C12: after HPA syncs the Deployment is at 8",
               diag=d["spec"].get("replicas"))
        rv = c.cli("revert", r["revert_text"])
        h = c.get("horizontalpodautoscalers", "ns-a", "svc-a")
        tap.ok(rv.get("code") == "reverted" and h["spec"]["maxReplicas"] == 6
               and h["spec"]["minReplicas"] == 2,
               "C12: revert restores the HPA's 2..6", diag=brief(rv))

    with Case(work, "C12", conf="  hpa: refuse\n") as c:
        r = c.cli("scale", "deploy", "ns-a", "svc-a", "by", 2)
        tap.ok(r.get("code") == "hpa" and "HPA-managed" in r["reason"] and
               not c.writes(), "C12 with policy hpa=refuse: refused",
               diag=brief(r))

    with Case(work, "C12-max10") as c:
        r = c.cli("scale", "deploy", "ns-a", "svc-a", "by", 2)
        h = c.get("horizontalpodautoscalers", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "ok" and r["code"] == "hpa-adjusted" and
               h["spec"]["minReplicas"] == 8 and
               h["spec"]["maxReplicas"] == 10,
               "C12 (max 10): minReplicas raised to 8", diag=brief(r))
        r2 = c.cli("scale", "deploy", "ns-a", "svc-a", "to", 5)
        tap.ok(r2.get("code") == "hpa-adjusted" and
               c.get("horizontalpodautoscalers", "ns-a",
                     "svc-a")["spec"]["minReplicas"] == 5,
               "C12 (max 10): scale down below the HPA floor lowers "
               "minReplicas", diag=brief(r2))


# ---------------------------------------------------------------------------
# C13: GitOps-managed targets

def t_c13(tap, work):
    with Case(work, "C13-flux") as c:
        r = c.cli("restart", "deploy", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "ok" and "GitOps-managed" in
               r["warning"] and "second" in r["warning"],
               "C13 flux: restart allowed with a double-rollout warning",
               diag=brief(r))
        n = len(c.writes())
        r = c.cli("rollback", "ns-a", "svc-a")
        tap.ok(r.get("outcome") == "refused" and r["code"] == "gitops" and
               "GitOps-managed (flux: label kustomize.toolkit.fluxcd.io/"
               "name=apps): change would be reverted" in r["reason"],
               "C13 flux: rollback refused 'GitOps-managed: change would be "
               "reverted'", diag=brief(r))
        r2 = c.cli("scale", "deploy", "ns-a", "svc-a", "to", 4)
        tap.ok(r2.get("code") == "gitops" and len(c.writes()) == n,
               "C13 flux: scale refused, nothing written", diag=brief(r2))
        o = c.cli("owners", "deploy", "ns-a", "svc-a")
        tap.ok(o.get("gitops") and o["gitops_tool"] == "flux" and o["busy"],
               "C13: owners reports GitOps and the restart rollout in "
               "progress", diag=o)

    with Case(work, "C13-argo", conf="  gitops_restart: refuse\n") as c:
        r = c.cli("restart", "deploy", "ns-a", "svc-a")
        tap.ok(r.get("code") == "gitops" and "argocd" in r["reason"] and
               not c.writes(),
               "C13 argo: restart refused by policy (tracking-id "
               "annotation)", diag=brief(r))

    with Case(work, "C13-argo", conf="  gitops_detect: false\n") as c:
        r = c.cli("rollback", "ns-a", "svc-a")
        tap.ok(r.get("code") == "rolled-back",
               "GitOps detection can be switched off", diag=brief(r))


# ---------------------------------------------------------------------------
# C14: PDB-aware eviction (the agent's call)

def t_c14(tap, work):
    with Case(work, "C14") as c:
        r = c.cli("evict", "ns-a", "svc-a-7b6d9-ccccc", "-", 3, 10)
        posts = c.reqs("POST", "/eviction$")
        tap.ok(r.get("rv") == -16 and r["outcome"] == 3 and
               r["reason"].startswith("blocked by PDB svc-a (0 disruptions "
                                      "allowed") and len(posts) == 3 and
               not c.reqs("DELETE"),
               "C14: 3 bounded tries, 'blocked by PDB svc-a (0 disruptions "
               "allowed)', no delete", diag=brief(r))
        b = body(posts[0])
        tap.ok(b == {"apiVersion": "policy/v1", "kind": "Eviction",
                     "metadata": {"name": "svc-a-7b6d9-ccccc",
                                  "namespace": "ns-a"}},
               "C14: the eviction body of the case", diag=b)
        r = c.cli("evict", "ns-a", "svc-a-7b6d9-aaaaa", "delete-unready", 2,
                  10)
        tap.ok(r.get("rv") == -16 and "pod is Ready" in r["reason"] and
               not c.reqs("DELETE") and
               c.get("pods", "ns-a", "svc-a-7b6d9-aaaaa") is not None,
               "C14: a Ready pod is never deleted instead", diag=brief(r))
        r = c.cli("evict", "ns-a", "svc-a-7b6d9-ccccc", "delete-unready", 2,
                  10)
        dels = c.reqs("DELETE")
        tap.ok(r.get("rv") == 0 and r["outcome"] == 1 and len(dels) == 1 and
               dels[0].path.endswith("/pods/svc-a-7b6d9-ccccc") and
               body(dels[0])["preconditions"]["uid"],
               "C14 with policy: the not-Ready pod is deleted (UID "
               "precondition)", diag=brief(r))

    with Case(work, "C14-current") as c:
        r = c.cli("evict", "ns-a", "svc-a-7b6d9-ccccc")
        tap.ok(r.get("rv") == 0 and r["outcome"] == 0 and r["tries"] == 1,
               "C14 (current API server): the unready pod is evicted at once",
               diag=brief(r))


# ---------------------------------------------------------------------------
# C15: stuck Terminating pods on a lost node

def t_c15(tap, work):
    with Case(work, "C15") as c:
        v = c.cli("verify", "deploy", "ns-a", "svc-a", C15_NOW)
        tap.ok(v.get("ok") and v["ready"] == 1 and v["desired"] == 1 and
               v["terminating"] == 1 and v["stuck"] == 1 and
               "svc-a-5c4b3-zzzzz on node-c since 16:09:30" in v["reason"],
               "C15: Deployment verified on the Ready replacement; the "
               "stuck pod is reported, not counted", diag=v)
        s = c.cli("verify", "sts", "ns-a", "svc-db", C15_NOW)
        tap.ok(s.get("rv") == 0 and not s["ok"] and s["stuck"] == 1 and
               "svc-db-1 on node-c" in s["reason"],
               "C15: StatefulSet not verified (1 of 2), stuck svc-db-1 "
               "reported", diag=s)
        tap.ok(not c.writes(),
               "C15: verification writes nothing (no force delete)",
               diag=[(q.method, q.path) for q in c.writes()])


# ---------------------------------------------------------------------------
# basic: restart, scale, traffic, config, job, events

def t_restart_scale(tap, work):
    with Case(work, "basic") as c:
        for kind, name in (("deploy", "web"), ("sts", "db"),
                           ("ds", "node-agent")):
            r = c.cli("restart", kind, "demo", name)
            tap.ok(r.get("code") == "restarted" and r["uid"],
                   f"restart {kind}/{name}", diag=brief(r))
        o = c.cli("rollout", "deploy", "demo", "web")
        tap.ok(o.get("in_progress") and not o["done"],
               "rollout in progress right after the restart", diag=o)
        c.srv.converge()
        o = c.cli("rollout", "deploy", "demo", "web")
        v = c.cli("verify", "deploy", "demo", "web", C15_NOW)
        tap.ok(o.get("done") and v.get("ok") and v["ready"] == 3,
               "rollout complete and verified after the controllers ran",
               diag=(o, v))

        r = c.cli("scale", "deploy", "demo", "web", "to", 5)
        p = c.reqs("PATCH", "/scale$")
        tap.ok(r.get("code") == "scaled" and
               c.get("deployments", "demo", "web")["spec"]["replicas"] == 5
               and len(p) == 1 and body(p[0])["spec"] == {"replicas": 5} and
               body(p[0])["metadata"]["resourceVersion"] and
               p[0].content_type.startswith("application/merge-patch+json"),
               "scale to 5 through /scale (merge patch, RV-guarded)",
               diag=brief(r))
        rv = c.cli("revert", r["revert_text"])
        tap.ok(rv.get("code") == "reverted" and
               c.get("deployments", "demo", "web")["spec"]["replicas"] == 3,
               "revert of scale restores 3", diag=brief(rv))
        n = len(c.writes())
        r = c.cli("scale", "deploy", "demo", "web", "to", 12)
        tap.ok(r.get("code") == "bounds" and "1..10" in r["reason"] and
               len(c.writes()) == n, "scale above max refused",
               diag=brief(r))
        r = c.cli("scale", "deploy", "demo", "web", "by", -3)
        tap.ok(r.get("code") == "bounds", "scale below min refused",
               diag=brief(r))
        r = c.cli("scale", "ds", "demo", "node-agent", "to", 2)
        tap.ok(r.get("code") == "no-scale", "DaemonSet scale refused",
               diag=brief(r))
        r = c.cli("scale", "sts", "demo", "db", "by", 1)
        tap.ok(r.get("code") == "scaled" and
               c.get("statefulsets", "demo", "db")["spec"]["replicas"] == 3,
               "StatefulSet scaled 2 -> 3", diag=brief(r))
        r = c.cli("scale", "deploy", "demo", "missing", "to", 2)
        tap.ok(r.get("code") == "not-found" and r["outcome"] == "failed",
               "scale of a missing Deployment fails 'not-found'",
               diag=brief(r))

    with Case(work, "basic", conf="  scale_bounds: clamp\n") as c:
        r = c.cli("scale", "deploy", "demo", "web", "to", 12)
        tap.ok(r.get("code") == "scaled" and "clamped from 12" in
               r["reason"] and
               c.get("deployments", "demo", "web")["spec"]["replicas"] == 10,
               "scale clamped to max 10 when policy says clamp",
               diag=brief(r))


def t_traffic(tap, work):
    with Case(work, "basic") as c:
        r = c.cli("traffic", "vs", "demo", "web", "canary")
        vs = c.get("virtualservices", "demo", "web")
        w = [d["weight"] for d in vs["spec"]["http"][0]["route"]]
        p = c.reqs("PATCH")
        ops = body(p[0]) if p else []
        tap.ok(r.get("code") == "switched" and w == [100, 0],
               "VirtualService: canary 10 -> 0, stable 90 -> 100",
               diag=brief(r))
        tap.ok(ops and ops[0] == {"op": "test",
                                  "path": "/metadata/resourceVersion",
                                  "value": ops[0]["value"]} and
               {"op": "test", "path": "/spec/http/0/route/1/destination/"
                "subset", "value": "canary"} in ops and
               {"op": "replace", "path": "/spec/http/0/route/1/weight",
                "value": 0} in ops and
               p[0].content_type.startswith("application/json-patch+json"),
               "VirtualService: guarded JSON patch (RV, identity, weights)",
               diag=ops)
        r2 = c.cli("traffic", "vs", "demo", "web", "canary")
        tap.ok(r2.get("code") == "noop" and len(c.reqs("PATCH")) == 1,
               "switching again is a no-op", diag=brief(r2))
        rv = c.cli("revert", r["revert_text"])
        vs = c.get("virtualservices", "demo", "web")
        tap.ok(rv.get("code") == "reverted" and
               [d["weight"] for d in vs["spec"]["http"][0]["route"]] ==
               [90, 10], "VirtualService revert restores 90/10",
               diag=brief(rv))
        r = c.cli("traffic", "vs", "demo", "web", "canary")

        def bump(o):
            o["spec"]["http"][0]["route"][0]["weight"] = 70
            o["spec"]["http"][0]["route"][1]["weight"] = 30
        c.srv.update_object("virtualservices", "demo", "web", bump)
        rv = c.cli("revert", r["revert_text"])
        vs = c.get("virtualservices", "demo", "web")
        tap.ok(rv.get("code") == "changed-since" and
               [d["weight"] for d in vs["spec"]["http"][0]["route"]] ==
               [70, 30],
               "revert leaves weights someone changed since alone",
               diag=brief(rv))

        r = c.cli("traffic", "httproute", "demo", "web", "web-canary")
        hr = c.get("httproutes", "demo", "web")
        w = [b["weight"] for b in hr["spec"]["rules"][0]["backendRefs"]]
        tap.ok(r.get("code") == "switched" and w == [100, 0],
               "HTTPRoute: canary 10 -> 0, stable keeps the sum (100)",
               diag=brief(r))
        r = c.cli("traffic", "httproute", "demo", "web", "nope")
        tap.ok(r.get("code") == "no-canary", "unknown canary refused",
               diag=brief(r))

        def third(o):
            o["spec"]["http"][0]["route"].append(
                {"destination": {"host": "web", "subset": "blue"},
                 "weight": 0})
        c.srv.update_object("virtualservices", "demo", "web", third)
        r = c.cli("traffic", "vs", "demo", "web", "canary")
        tap.ok(r.get("code") == "ambiguous", "three destinations and no "
               "stable named: refused", diag=brief(r))
        r = c.cli("traffic", "vs", "demo", "web", "canary", "stable", 0)
        tap.ok(r.get("code") == "switched" and
               [d["weight"] for d in c.get("virtualservices", "demo", "web")
                ["spec"]["http"][0]["route"]] == [100, 0, 0],
               "with the stable destination named it switches",
               diag=brief(r))

        def only_canary(o):
            o["spec"]["http"] = [{"route": [{"destination": {
                "host": "web", "subset": "canary"}}]}]
        c.srv.update_object("virtualservices", "demo", "web", only_canary)
        r = c.cli("traffic", "vs", "demo", "web", "canary")
        tap.ok(r.get("code") == "single-destination",
               "a route with only the canary is refused", diag=brief(r))

    with Case(work, "basic") as c:
        c.srv.inject(r"/virtualservices/web$", method="PATCH", status=409,
                     count=1)
        r = c.cli("traffic", "vs", "demo", "web", "canary")
        tap.ok(r.get("code") == "switched" and len(c.reqs("PATCH")) == 2,
               "a conflict on the patch is re-read and re-applied",
               diag=brief(r))


def t_config(tap, work):
    with Case(work, "basic") as c:
        r = c.cli("config", "configmaps", "demo", "web-config",
                  '{"data":{"LOG_LEVEL":"debug","NEW":"1"}}')
        cm = c.get("configmaps", "demo", "web-config")
        tap.ok(r.get("code") == "patched" and cm["data"] ==
               {"LOG_LEVEL": "debug", "NEW": "1"},
               "config: ConfigMap merge-patched", diag=brief(r))
        tap.ok(r.get("revert", {}).get("inverse") ==
               {"data": {"LOG_LEVEL": "info", "NEW": None}},
               "config: inverse patch recorded (old value, null for new)",
               diag=r.get("revert"))
        rv = c.cli("revert", r["revert_text"])
        cm = c.get("configmaps", "demo", "web-config")
        tap.ok(rv.get("code") == "reverted" and cm["data"] ==
               {"LOG_LEVEL": "info"}, "config: revert restores the data",
               diag=brief(rv))
        for args, code, what in (
                (("secrets", "demo", "x", '{"data":{}}'), "allowlist",
                 "a resource outside the allowlist"),
                (("configmaps", "demo", "web-config", '{"status":{}}'),
                 "bad-patch", "a patch of status"),
                (("configmaps", "demo", "web-config",
                  '{"metadata":{"name":"x"}}'), "bad-patch",
                 "a patch of metadata.name")):
            r = c.cli("config", *args)
            tap.ok(r.get("code") == code, f"config: {what} is refused",
                   diag=brief(r))


JOB_TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: cache-flush
  labels:
    team: sre
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: flush
          image: registry.example.com/tools:1.0
          args: ["flush", "--all"]
          env:
            - name: ALERT_SEVERITY
              value: from-template
"""


def t_job(tap, work):
    tpl = os.path.join(work, "job.yaml")
    with open(tpl, "w") as f:
        f.write(JOB_TEMPLATE)
    conf = (f"  job_template: {tpl}\n  job_poll: 50ms\n"
            f"  job_poll_max: 200ms\n")
    with Case(work, "basic", conf=conf) as c:
        c.srv.start_ticker(0.05)
        r = c.cli("job", "demo", "alertname=HighLatency", "severity=page",
                  "service=web; rm -rf /")
        jobs = c.srv.list("jobs", "demo")
        env = jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"] \
            if jobs else []
        tap.ok(r.get("code") == "succeeded" and r["outcome"] == "ok",
               "job: succeeded", diag=brief(r))
        tap.ok(jobs and jobs[0]["metadata"]["name"].startswith(
            "cache-flush-") and
            {"name": "ALERT_SEVERITY", "value": "page"} in env and
            {"name": "ALERT_SERVICE", "value": "web; rm -rf /"} in env and
            {"name": "ALERT_ALERTNAME", "value": "HighLatency"} in env and
            sum(1 for e in env if e["name"] == "ALERT_SEVERITY") == 1 and
            jobs[0]["spec"]["activeDeadlineSeconds"] <= 600,
            "job: labels as env data (template value replaced), generated "
            "name, deadline set", diag=env)

    with Case(work, "basic", conf=conf) as c:
        c.srv.start_ticker(0.05)
        stop = threading.Event()

        def fail_it():
            while not stop.is_set():
                for j in c.srv.list("jobs", "demo"):
                    c.srv.knobs.setdefault("job_outcomes", {})[
                        "demo/" + j["metadata"]["name"]] = "Failed"
                time.sleep(0.01)
        th = threading.Thread(target=fail_it, daemon=True)
        th.start()
        r = c.cli("job", "demo", "alertname=X")
        stop.set()
        th.join()
        tap.ok(r.get("code") == "failed" and r["outcome"] == "failed",
               "job: a failed Job is reported failed", diag=brief(r))

    conf_t = (f"  job_template: {tpl}\n  job_timeout: 1s\n"
              f"  job_poll: 50ms\n  job_poll_max: 100ms\n")
    with Case(work, "basic", conf=conf_t,
              srv_kw={"knobs": {"job_run_ticks": 100000}}) as c:
        c.srv.start_ticker(0.05)
        r = c.cli("job", "demo", "alertname=X")
        tap.ok(r.get("code") == "timeout" and
               c.reqs("DELETE", "/jobs/cache-flush-"),
               "job: timeout reported and the Job deleted", diag=brief(r))


def t_events(tap, work):
    with Case(work, "basic") as c:
        r = c.cli("event", "deploy", "demo", "web", "Warning",
                  "ReflexRestart", "restarted by reflex: rule demo-high")
        evs = c.srv.list("events", "demo")
        dep = c.get("deployments", "demo", "web")
        ev = evs[-1] if evs else {}
        tap.ok(r.get("rv") == 0 and ev.get("reason") == "ReflexRestart" and
               ev.get("type") == "Warning" and ev.get("count") == 1 and
               ev.get("source", {}).get("component") == "reflex" and
               ev.get("involvedObject", {}).get("uid") ==
               dep["metadata"]["uid"] and
               ev["involvedObject"].get("kind") == "Deployment" and
               ev.get("firstTimestamp") and ev.get("lastTimestamp"),
               "event: core v1 Event on the Deployment (uid, source, count)",
               diag=ev)
        r = c.cli("event", "deploy", "demo", "web", "Normal", "bad reason!",
                  "x")
        tap.ok(r.get("rv") == -22, "event: an invalid reason is refused",
               diag=r)


# ---------------------------------------------------------------------------
# credentials and faults

def t_credentials(tap, work):
    path = "/apis/apps/v1/namespaces/demo/deployments/web"
    for what, kw in (("CA file", {}), ("embedded CA data",
                                        {"embed_ca": True}),
                     ("insecure-skip-tls-verify", {"insecure": True})):
        with Case(work, "basic", tls=True, kc_kw=kw) as c:
            r = c.cli("get", path)
            tap.ok(r.get("rv") == 0 and r["code"] == 200,
                   f"TLS with {what}", diag=brief(r))
    with Case(work, "basic", tls=True, kc_kw={"use_client_cert": True},
              srv_kw={"client_cert": True}) as c:
        r = c.cli("get", path)
        tap.ok(r.get("rv") == 0 and c.srv.requests[-1].user,
               "TLS with a client certificate", diag=brief(r))
    # tls-server-name: SNI and certificate check against that name while
    # connecting to the server's address (CURLOPT_CONNECT_TO).
    for name, want in (("localhost", 0), ("wrong.invalid", -71)):
        with Case(work, "basic", tls=True) as c:
            kc = c.srv.kubeconfig()
            kc["clusters"][0]["cluster"]["tls-server-name"] = name
            kpath = os.path.join(work, "kc-sni")
            with open(kpath, "w") as f:
                json.dump(kc, f)  # JSON is YAML
            c.write_conf(f"  client:\n    source: kubeconfig\n"
                         f"    kubeconfig: {kpath}\n    max_tries: 1\n")
            r = c.cli("get", path)
            tap.ok(r.get("rv") == want,
                   f"tls-server-name {name}: rv {want}", diag=brief(r))
    with Case(work, "basic", tls=True, kc_kw={"token": "wrong"}) as c:
        r = c.cli("get", path)
        tap.ok(r.get("rv") == -13 and "401" in r["err"],
               "a wrong token is -EACCES (401 Unauthorized)", diag=brief(r))
    with Case(work, "basic", tls=True) as c:
        sa = os.path.join(work, "sa")
        env = dict(os.environ)
        env.update(c.srv.write_incluster(sa, namespace="demo"))
        c.write_conf(f"  client:\n    source: in-cluster\n"
                     f"    incluster_dir: {sa}\n")
        r = c.cli("get", path, env=env)
        tap.ok(r.get("rv") == 0 and r["code"] == 200,
               "in-cluster service account (token, ca.crt, namespace)",
               diag=brief(r))


def t_faults(tap, work):
    with Case(work, "basic") as c:
        c.srv.inject(r"/deployments/web$", method="GET", status=429,
                     retry_after=1, count=1)
        t0 = time.monotonic()
        r = c.cli("rollout", "deploy", "demo", "web")
        took = time.monotonic() - t0
        n = len(c.reqs("GET", "/deployments/web$"))
        tap.ok(r.get("rv") == 0 and n == 2 and took >= 0.95,
               "429 with Retry-After 1: waited and retried once",
               diag=(brief(r), n, took))
        c.srv.clear_requests()
        c.srv.inject(r"/deployments/web$", method="GET", status=503,
                     count=2)
        r = c.cli("rollout", "deploy", "demo", "web")
        tap.ok(r.get("rv") == 0 and
               len(c.reqs("GET", "/deployments/web$")) == 3,
               "two 503s then success", diag=brief(r))
        c.srv.clear_requests()
        c.srv.inject(r"/deployments/web$", method="GET", drop=True, count=1)
        r = c.cli("rollout", "deploy", "demo", "web")
        tap.ok(r.get("rv") == 0, "a dropped connection is retried",
               diag=brief(r))
        c.srv.clear_requests()
        c.srv.inject(r"/deployments/web$", method="GET", status=500,
                     count=None)
        r = c.cli("rollout", "deploy", "demo", "web")
        tap.ok(r.get("rv") == -5 and
               len(c.reqs("GET", "/deployments/web$")) == 4,
               "persistent 500: bounded (4 tries), -EIO", diag=brief(r))
        c.srv.clear_faults()
        c.srv.deny(verb="patch", resource="deployments")
        r = c.cli("restart", "deploy", "demo", "web")
        tap.ok(r.get("outcome") == "failed" and r["err"] == -1 and
               "forbidden" in r["reason"],
               "RBAC 403 on the patch: failed with the server's message",
               diag=brief(r))


def main(tap):
    if not os.path.exists(CLI):
        tap.bail_out(f"{CLI} not built")
    work = tempfile.mkdtemp(prefix="reflex-k8s-")
    try:
        t_c10(tap, work)
        t_kubectl_parity(tap, work)
        t_c11(tap, work)
        t_c12(tap, work)
        t_c13(tap, work)
        t_c14(tap, work)
        t_c15(tap, work)
        t_restart_scale(tap, work)
        t_traffic(tap, work)
        t_config(tap, work)
        t_job(tap, work)
        t_events(tap, work)
        t_credentials(tap, work)
        t_faults(tap, work)
        tap.ok(not BAD_EXITS, "every test-k8s-cli run exited 0 (no crash, "
               "no sanitizer report)", diag=BAD_EXITS[:3])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    Tap.main(main)
