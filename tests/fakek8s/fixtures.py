# SPDX-License-Identifier: MIT
"""Loadable cluster states. A fixture is a dict:

    {"name": ..., "description": ..., "now": RFC 3339 or None,
     "knobs": {...simulator/server knobs...}, "converge": bool,
     "objects": [full Kubernetes objects, owner references by kind+name]}

load(NAME) returns a fresh copy; names() lists them. The C* fixtures
reproduce /work/shared/cases exactly (README.md beside this file lists
what each adds to make the state consistent). load() also takes a path
to a JSON file holding such a dict.
"""

import copy
import hashlib
import json
import os

IMG = "registry.example.com/svc-a"


# ---------------------------------------------------------------------------
# builders

def _ip(seed, prefix="10.244"):
    h = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return f"{prefix}.{h % 250 + 1}.{(h >> 8) % 250 + 2}"


def node(name, ready=True, allocatable=None, capacity=None, heartbeat=None,
         since=None, taints=None, ip=None, unschedulable=False):
    alloc = allocatable or {"cpu": "3800m", "memory": "15613336Ki",
                            "pods": "110",
                            "ephemeral-storage": "47233297124",
                            "hugepages-2Mi": "0"}
    cap = capacity or dict(alloc)
    hb = heartbeat or "2026-12-04T09:59:50Z"
    cond = {"type": "Ready", "status": "True" if ready else "Unknown",
            "lastHeartbeatTime": hb,
            "lastTransitionTime": since or "2026-12-01T08:00:00Z",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status" if ready else
            "Kubelet stopped posting node status."}
    spec = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "creationTimestamp": "2026-12-01T08:00:00Z",
                         "labels": {"kubernetes.io/hostname": name,
                                    "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64"}},
            "spec": spec,
            "status": {"capacity": cap, "allocatable": alloc,
                       "conditions": [cond],
                       "addresses": [{"type": "InternalIP",
                                      "address": ip or _ip(name, "10.0")},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.32.4",
                                    "containerRuntimeVersion":
                                        "containerd://1.7.27",
                                    "operatingSystem": "linux",
                                    "architecture": "amd64"}}}


def template(app, image, extra_labels=None, annotations=None):
    labels = {"app": app}
    labels.update(extra_labels or {})
    md = {"labels": labels}
    if annotations:
        md["annotations"] = annotations
    return {"metadata": md,
            "spec": {"containers": [{"name": "app", "image": image}]}}


def deployment(ns, name, image, replicas, revision, generation=1,
               paused=False, labels=None, annotations=None, status=None,
               history_limit=None, created="2026-12-01T09:00:00Z"):
    ann = {"deployment.kubernetes.io/revision": str(revision)}
    ann.update(annotations or {})
    md = {"name": name, "namespace": ns, "generation": generation,
          "creationTimestamp": created, "annotations": ann}
    if labels:
        md["labels"] = labels
    spec = {"replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, image)}
    if history_limit is not None:
        spec["revisionHistoryLimit"] = history_limit
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md,
            "spec": spec, "status": status or {}}


def rollout_status(replicas, ready=None, updated=None, generation=1,
                   rs_name="", t="2026-12-01T09:01:00Z"):
    ready = replicas if ready is None else ready
    updated = replicas if updated is None else updated
    max_unavail = int(replicas * 25 // 100)
    avail_ok = ready >= replicas - max_unavail
    st = {"observedGeneration": generation, "replicas": replicas,
          "updatedReplicas": updated, "readyReplicas": ready,
          "availableReplicas": ready,
          "unavailableReplicas": max(0, replicas - ready),
          "conditions": [
              {"type": "Available", "status": "True" if avail_ok else "False",
               "lastUpdateTime": t, "lastTransitionTime": t,
               "reason": "MinimumReplicasAvailable" if avail_ok else
               "MinimumReplicasUnavailable",
               "message": "Deployment has minimum availability." if avail_ok
               else "Deployment does not have minimum availability."},
              {"type": "Progressing", "status": "True",
               "lastUpdateTime": t, "lastTransitionTime": t,
               "reason": "NewReplicaSetAvailable",
               "message": f'ReplicaSet "{rs_name}" has successfully '
                          "progressed."}]}
    return st


def replicaset(ns, dname, h, image, replicas, revision, ready=None,
               created="2026-12-01T09:00:00Z", desired=None):
    ready = replicas if ready is None else ready
    tmpl = template(dname, image, {"pod-template-hash": h})
    desired = replicas if desired is None else desired
    surge = -(-desired * 25 // 100)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{dname}-{h}", "namespace": ns,
                         "generation": 1, "creationTimestamp": created,
                         "labels": {"app": dname, "pod-template-hash": h},
                         "annotations": {
                             "deployment.kubernetes.io/desired-replicas":
                                 str(desired),
                             "deployment.kubernetes.io/max-replicas":
                                 str(desired + surge),
                             "deployment.kubernetes.io/revision":
                                 str(revision)},
                         "ownerReferences": [{"kind": "Deployment",
                                              "name": dname}]},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": dname,
                                                  "pod-template-hash": h}},
                     "template": tmpl},
            "status": {"replicas": replicas, "fullyLabeledReplicas": replicas,
                       "readyReplicas": ready, "availableReplicas": ready,
                       "observedGeneration": 1}}


def pod(ns, name, labels, owner_kind, owner_name, image, node_name,
        ready=True, phase="Running", created="2026-12-01T09:00:05Z",
        deletion=None, grace=None, restarts=0, waiting=None,
        t="2026-12-01T09:00:10Z", ready_since=None):
    owner_api = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1",
                 "DaemonSet": "apps/v1", "Job": "batch/v1"}[owner_kind]
    md = {"name": name, "namespace": ns, "creationTimestamp": created,
          "labels": labels,
          "ownerReferences": [{"apiVersion": owner_api, "kind": owner_kind,
                               "name": owner_name}]}
    if deletion:
        md["deletionTimestamp"] = deletion
        md["deletionGracePeriodSeconds"] = grace if grace is not None else 30
    cstate = {"running": {"startedAt": t}}
    last = {}
    if waiting:
        cstate = {"waiting": {"reason": waiting,
                              "message": f"back-off 5m0s restarting failed "
                                         f"container=app pod={name}_{ns}"}}
        last = {"terminated": {"exitCode": 1, "reason": "Error",
                               "startedAt": t, "finishedAt": t}}
    rt = ready_since or t
    conds = []
    for ct in ("PodReadyToStartContainers", "Initialized", "Ready",
               "ContainersReady", "PodScheduled"):
        ok = ready or ct not in ("Ready", "ContainersReady")
        c = {"type": ct, "status": "True" if ok else "False",
             "lastProbeTime": None,
             "lastTransitionTime": rt if ct in ("Ready", "ContainersReady")
             else t}
        if not ok:
            c["reason"] = "ContainersNotReady"
            c["message"] = "containers with unready status: [app]"
        conds.append(c)
    hip = _ip(node_name, "10.0")
    pip = _ip(name)
    full = image
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "app", "image": image}],
                     "nodeName": node_name},
            "status": {"phase": phase, "conditions": conds, "hostIP": hip,
                       "hostIPs": [{"ip": hip}], "podIP": pip,
                       "podIPs": [{"ip": pip}], "startTime": t,
                       "containerStatuses": [{
                           "containerID": "containerd://" + hashlib.sha256(
                               name.encode()).hexdigest(),
                           "image": full,
                           "imageID": full.split(":")[0] + "@sha256:" +
                           hashlib.sha256(full.encode()).hexdigest(),
                           "lastState": last, "name": "app",
                           "ready": ready, "restartCount": restarts,
                           "started": ready or not waiting,
                           "state": cstate}],
                       "qosClass": "BestEffort"}}


def _rs_pods(ns, dname, h, image, names_nodes, **kw):
    return [pod(ns, f"{dname}-{h}-{sfx}", {"app": dname,
                                           "pod-template-hash": h},
                "ReplicaSet", f"{dname}-{h}", image, nd, **kw)
            for sfx, nd in names_nodes]


NODES3 = ["node-a", "node-b", "node-c"]
SFX = ["bq7xk", "dmp4r", "k9wzt", "f8lcv", "h2nsx", "j6tqd", "l4vbm",
       "m5xrz", "n7kcp", "p9dwg"]


def _spread(n):
    return [(SFX[i], NODES3[i % 3]) for i in range(n)]


def _nodes():
    return [node("node-a"),
            node("node-b", allocatable={"cpu": "4", "memory": "16Gi",
                                        "pods": "110",
                                        "ephemeral-storage": "100Gi",
                                        "hugepages-2Mi": "0"}),
            node("node-c", allocatable={"cpu": "3.5", "memory": "1.6e10",
                                        "pods": "110",
                                        "ephemeral-storage": "47233297124",
                                        "hugepages-2Mi": "0"})]


def _deploy_set(ns, name, h, image, replicas, revision, generation=1,
                **dkw):
    """A settled Deployment with its ReplicaSet and pods."""
    rs_name = f"{name}-{h}"
    d = deployment(ns, name, image, replicas, revision,
                   generation=generation,
                   status=rollout_status(replicas, generation=generation,
                                         rs_name=rs_name), **dkw)
    return [d, replicaset(ns, name, h, image, replicas, revision)] + \
        _rs_pods(ns, name, h, image, _spread(replicas))


# ---------------------------------------------------------------------------
# fixtures

def _basic():
    ns = "demo"
    objs = [*_nodes()]
    objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": ns,
                              "labels": {"app": "web"}},
                 "spec": {"replicas": 3,
                          "selector": {"matchLabels": {"app": "web"}},
                          "template": {
                              "metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{
                                  "name": "nginx",
                                  "image": "nginx:1.25.3",
                                  "ports": [{"containerPort": 80}],
                                  "resources": {"requests": {
                                      "cpu": "0.1", "memory": "64Mi"}}}]}}}})
    objs.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": {"name": "db", "namespace": ns},
                 "spec": {"replicas": 2, "serviceName": "db",
                          "selector": {"matchLabels": {"app": "db"}},
                          "template": {
                              "metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{
                                  "name": "db", "image": "postgres:16.4"}]}}}})
    objs.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "node-agent", "namespace": ns},
                 "spec": {"selector": {"matchLabels": {"app": "node-agent"}},
                          "template": {
                              "metadata": {"labels": {"app": "node-agent"}},
                              "spec": {"containers": [{
                                  "name": "agent",
                                  "image": "registry.example.com/reflex-agent:"
                                           "0.1.0"}]}}}})
    objs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "web", "namespace": ns},
                 "spec": {"minAvailable": 2,
                          "selector": {"matchLabels": {"app": "web"}}}})
    objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "web-config", "namespace": ns},
                 "data": {"LOG_LEVEL": "info"}})
    objs.append({"apiVersion": "networking.istio.io/v1",
                 "kind": "VirtualService",
                 "metadata": {"name": "web", "namespace": ns},
                 "spec": {"hosts": ["web.demo.svc.cluster.local"],
                          "http": [{"route": [
                              {"destination": {"host": "web", "subset":
                                               "stable"}, "weight": 90},
                              {"destination": {"host": "web", "subset":
                                               "canary"}, "weight": 10}]}]}})
    objs.append({"apiVersion": "gateway.networking.k8s.io/v1",
                 "kind": "HTTPRoute",
                 "metadata": {"name": "web", "namespace": ns},
                 "spec": {"parentRefs": [{"name": "gw"}],
                          "rules": [{"backendRefs": [
                              {"name": "web-stable", "port": 80,
                               "weight": 90},
                              {"name": "web-canary", "port": 80,
                               "weight": 10}]}]}})
    objs.append({"apiVersion": "metrics.k8s.io/v1beta1",
                 "kind": "NodeMetrics",
                 "metadata": {"name": "node-a"},
                 "timestamp": "2026-12-04T10:00:00Z", "window": "10.5s",
                 "usage": {"cpu": "123456789n", "memory": "2048576Ki"}})
    return {"name": "basic",
            "description": "Namespace demo: Deployment web (3 replicas, "
                           "PDB minAvailable 2, VirtualService and HTTPRoute "
                           "90/10), StatefulSet db (2), DaemonSet node-agent;"
                           " nodes node-a/b/c with allocatable in varied "
                           "quantity forms; settled by the simulator.",
            "now": None, "knobs": {}, "converge": True, "objects": objs}


def _c10(variant):
    ns = "ns-a"
    objs = [*_nodes()]
    if variant == "A":
        objs += _deploy_set(ns, "svc-a", "6f9c8d7b5", f"{IMG}:2.0.0", 3, 1,
                            history_limit=10)
        desc = "C10 variant A: svc-a at revision 1, one ReplicaSet."
    elif variant == "B":
        objs += _deploy_set(ns, "svc-a", "84b7c6d5f", f"{IMG}:2.1.0", 3, 7,
                            generation=7, history_limit=0)
        desc = ("C10 variant B: svc-a at revision 7 with "
                "revisionHistoryLimit 0: only the current ReplicaSet.")
    else:
        objs += _deploy_set(ns, "svc-a", "84b7c6d5f", f"{IMG}:2.1.0", 10, 7,
                            generation=8, history_limit=10)
        objs.append(replicaset(ns, "svc-a", "5d8f7c9b4", f"{IMG}:2.0.9", 0,
                               6, created="2026-11-20T09:00:00Z",
                               desired=3))
        desc = ("C10 variant C: svc-a at revision 7 (2.1.0, 10 replicas, "
                "scaled after revision 6); revision 6 (2.0.9) kept.")
    return {"name": f"C10-{variant}", "description": desc, "now": None,
            "knobs": {}, "objects": objs}


def _c11():
    ns = "ns-a"
    h = "6d5c9f8b7"
    objs = [*_nodes()]
    t = "2026-12-04T09:30:00Z"
    d = deployment(ns, "svc-a", f"{IMG}:3.0.0-rc1", 3, 4, generation=5,
                   paused=True)
    d["status"] = {"observedGeneration": 5, "replicas": 3,
                   "updatedReplicas": 0, "readyReplicas": 1,
                   "availableReplicas": 1, "unavailableReplicas": 2,
                   "conditions": [
                       {"type": "Progressing", "status": "Unknown",
                        "lastUpdateTime": t, "lastTransitionTime": t,
                        "reason": "DeploymentPaused",
                        "message": "Deployment is paused"},
                       {"type": "Available", "status": "False",
                        "lastUpdateTime": t, "lastTransitionTime": t,
                        "reason": "MinimumReplicasUnavailable",
                        "message": "Deployment does not have minimum "
                                   "availability."}]}
    objs.append(d)
    objs.append(replicaset(ns, "svc-a", h, f"{IMG}:2.4.1", 3, 4, ready=1))
    objs.append(replicaset(ns, "svc-a", "58c7b9d64", f"{IMG}:2.4.0", 0, 3,
                           created="2026-11-28T09:00:00Z"))
    pods = _rs_pods(ns, "svc-a", h, f"{IMG}:2.4.1", _spread(1))
    pods += _rs_pods(ns, "svc-a", h, f"{IMG}:2.4.1",
                     [(SFX[1], "node-b"), (SFX[2], "node-c")], ready=False)
    objs += pods
    return {"name": "C11",
            "description": "C11: svc-a paused at revision 4; template holds "
                           "3.0.0-rc1, the running ReplicaSet 2.4.1 (1 of 3 "
                           "Ready); revision 3 (2.4.0) kept.",
            "now": None,
            "knobs": {"frozen_pods": [f"{ns}/{p['metadata']['name']}"
                                      for p in pods]},
            "objects": objs}


def _c12(max_replicas=6):
    ns = "ns-a"
    objs = [*_nodes()]
    objs += _deploy_set(ns, "svc-a", "7c9d8b6f5", f"{IMG}:2.0.0", 6, 1)
    t = "2026-12-04T09:50:00Z"
    limited = max_replicas <= 6
    conds = [{"type": "AbleToScale", "status": "True",
              "lastTransitionTime": t, "reason": "ReadyForNewScale",
              "message": "recommended size matches current size"},
             {"type": "ScalingActive", "status": "True",
              "lastTransitionTime": t, "reason": "ValidMetricFound",
              "message": "the HPA was able to successfully calculate a "
                         "replica count from cpu resource utilization "
                         "(percentage of request)"}]
    if limited:
        conds.append({"type": "ScalingLimited", "status": "True",
                      "lastTransitionTime": t, "reason": "TooManyReplicas",
                      "message": "the desired replica count is more than "
                                 "the maximum replica count"})
    else:
        conds.append({"type": "ScalingLimited", "status": "False",
                      "lastTransitionTime": t,
                      "reason": "DesiredWithinRange",
                      "message": "the desired count is within the "
                                 "acceptable range"})
    objs.append({"apiVersion": "autoscaling/v2",
                 "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "svc-a", "namespace": ns,
                              "generation": 1},
                 "spec": {"scaleTargetRef": {"apiVersion": "apps/v1",
                                             "kind": "Deployment",
                                             "name": "svc-a"},
                          "minReplicas": 2, "maxReplicas": max_replicas,
                          "metrics": [{"type": "Resource", "resource": {
                              "name": "cpu", "target": {
                                  "type": "Utilization",
                                  "averageUtilization": 70}}}]},
                 "status": {"observedGeneration": 1,
                            "lastScaleTime": "2026-12-04T09:40:00Z",
                            "currentReplicas": 6, "desiredReplicas": 6,
                            "currentMetrics": [{"type": "Resource",
                                                "resource": {
                                                    "name": "cpu",
                                                    "current": {
                                                        "averageUtilization":
                                                            88 if limited
                                                            else 70,
                                                        "averageValue":
                                                            "440m"}}}],
                            "conditions": conds}})
    return {"name": "C12" if limited else "C12-max10",
            "description": f"C12: svc-a at 6 replicas owned by HPA 2-"
                           f"{max_replicas}" + (" (ScalingLimited, load wants"
                                                " 8)" if limited else
                                                " (load wants 6)"),
            "now": None,
            "knobs": {"hpa_recommendations": {f"{ns}/svc-a":
                                              8 if limited else 6}},
            "objects": objs}


def _c13(tool):
    ns = "ns-a"
    objs = [*_nodes()]
    objs += _deploy_set(ns, "svc-a", "84b7c6d5f", f"{IMG}:2.1.0", 3, 7,
                        generation=7)
    objs.append(replicaset(ns, "svc-a", "5d8f7c9b4", f"{IMG}:2.0.9", 0, 6,
                           created="2026-11-20T09:00:00Z", desired=3))
    d = objs[3]
    if tool == "flux":
        d["metadata"]["labels"] = {
            "app": "svc-a", "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    else:
        d["metadata"]["labels"] = {"app.kubernetes.io/instance": "app-a"}
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = \
            "app-a:apps/Deployment:ns-a/svc-a"
    return {"name": f"C13-{tool}",
            "description": f"C13: svc-a managed by {tool} (markers as in the "
                           "case); the GitOps reverter restores the spec "
                           "(template, replicas, paused) 3 ticks after any "
                           "drift. Revision 6 (2.0.9) is kept for a rollback.",
            "now": None,
            "knobs": {"gitops": {f"{ns}/svc-a": {"delay_ticks": 3}}},
            "objects": objs}


def _c14(mode):
    ns = "ns-a"
    h = "7b6d9"
    img = f"{IMG}:1.8.2"
    objs = [*_nodes()]
    d = deployment(ns, "svc-a", img, 3, 1,
                   status=rollout_status(3, ready=2, rs_name=f"svc-a-{h}"))
    objs.append(d)
    objs.append(replicaset(ns, "svc-a", h, img, 3, 1, ready=2))
    labels = {"app": "svc-a", "pod-template-hash": h}
    objs.append(pod(ns, "svc-a-7b6d9-aaaaa", labels, "ReplicaSet",
                    f"svc-a-{h}", img, "node-a"))
    objs.append(pod(ns, "svc-a-7b6d9-bbbbb", labels, "ReplicaSet",
                    f"svc-a-{h}", img, "node-b"))
    objs.append(pod(ns, "svc-a-7b6d9-ccccc", labels, "ReplicaSet",
                    f"svc-a-{h}", img, "node-c", ready=False, restarts=41,
                    waiting="CrashLoopBackOff"))
    objs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "svc-a", "namespace": ns,
                              "generation": 1},
                 "spec": {"minAvailable": 2,
                          "selector": {"matchLabels": {"app": "svc-a"}}},
                 "status": {"observedGeneration": 1,
                            "disruptionsAllowed": 0, "currentHealthy": 2,
                            "desiredHealthy": 2, "expectedPods": 3,
                            "conditions": [{
                                "type": "DisruptionAllowed",
                                "status": "False", "observedGeneration": 1,
                                "lastTransitionTime": "2026-12-04T09:58:00Z",
                                "reason": "InsufficientPods",
                                "message": ""}]}})
    knobs = {"frozen_pods": [f"{ns}/svc-a-7b6d9-ccccc"]}
    if mode == "legacy":
        knobs["unready_eviction"] = "legacy"
    return {"name": "C14" if mode == "legacy" else "C14-current",
            "description": "C14: PDB svc-a minAvailable 2 with 2 of 3 pods "
                           "Ready (ccccc crash-looping, 41 restarts). " +
                           ("Eviction of any svc-a pod gets the 429 of the "
                            "case (unready pods are PDB-checked, as API "
                            "servers did before the unready-pod rule)."
                            if mode == "legacy" else
                            "Current API-server semantics: evicting the "
                            "unready ccccc succeeds (currentHealthy >= "
                            "desiredHealthy), evicting a Ready pod gets "
                            "the 429."),
            "now": None, "knobs": knobs, "objects": objs}


def _c15():
    ns = "ns-a"
    objs = [node("node-a", heartbeat="2026-12-04T16:29:50Z"),
            node("node-b", heartbeat="2026-12-04T16:29:50Z"),
            node("node-c", ready=False, heartbeat="2026-12-04T16:03:10Z",
                 since="2026-12-04T16:03:50Z",
                 taints=[{"key": "node.kubernetes.io/unreachable",
                          "effect": "NoExecute",
                          "timeAdded": "2026-12-04T16:04:00Z"}])]
    h = "5c4b3"
    img = f"{IMG}:2.3.0"
    objs.append(deployment(ns, "svc-a", img, 1, 2, generation=2,
                           status=rollout_status(1, generation=2,
                                                 rs_name=f"svc-a-{h}",
                                                 t="2026-12-04T16:09:40Z")))
    rs = replicaset(ns, "svc-a", h, img, 1, 2)
    objs.append(rs)
    labels = {"app": "svc-a", "pod-template-hash": h}
    objs.append(pod(ns, "svc-a-5c4b3-zzzzz", labels, "ReplicaSet",
                    f"svc-a-{h}", img, "node-c", ready=False,
                    created="2026-12-04T12:00:00Z",
                    t="2026-12-04T12:00:05Z",
                    ready_since="2026-12-04T16:03:50Z",
                    deletion="2026-12-04T16:09:30Z", grace=30))
    objs.append(pod(ns, "svc-a-5c4b3-yyyyy", labels, "ReplicaSet",
                    f"svc-a-{h}", img, "node-a",
                    created="2026-12-04T16:09:31Z",
                    t="2026-12-04T16:09:35Z"))
    dbimg = "registry.example.com/svc-db:5.1.0"
    objs.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": {"name": "svc-db", "namespace": ns,
                              "generation": 1,
                              "creationTimestamp": "2026-12-01T09:00:00Z"},
                 "spec": {"replicas": 2, "serviceName": "svc-db",
                          "selector": {"matchLabels": {"app": "svc-db"}},
                          "template": template("svc-db", dbimg)},
                 "status": {"observedGeneration": 1, "replicas": 2,
                            "readyReplicas": 1, "currentReplicas": 2,
                            "updatedReplicas": 2,
                            "currentRevision": "svc-db-6b8c5d4f9",
                            "updateRevision": "svc-db-6b8c5d4f9",
                            "collisionCount": 0, "availableReplicas": 1}})
    rev_labels = {"app": "svc-db",
                  "controller-revision-hash": "svc-db-6b8c5d4f9"}
    tmpl = template("svc-db", dbimg)
    tmpl["$patch"] = "replace"
    objs.append({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                 "metadata": {"name": "svc-db-6b8c5d4f9", "namespace": ns,
                              "labels": rev_labels,
                              "ownerReferences": [{"kind": "StatefulSet",
                                                   "name": "svc-db"}]},
                 "data": {"spec": {"template": tmpl}}, "revision": 1})
    for i, (nd, kw) in enumerate([
            ("node-b", {}),
            ("node-c", {"ready": False, "deletion": "2026-12-04T16:10:00Z",
                        "grace": 30, "ready_since": "2026-12-04T16:03:50Z"})]):
        name = f"svc-db-{i}"
        objs.append(pod(ns, name, {"app": "svc-db",
                                   "controller-revision-hash":
                                       "svc-db-6b8c5d4f9",
                                   "statefulset.kubernetes.io/pod-name":
                                       name,
                                   "apps.kubernetes.io/pod-index": str(i)},
                        "StatefulSet", "svc-db", dbimg, nd,
                        created="2026-12-01T09:00:05Z", **kw))
    return {"name": "C15",
            "description": "C15: node-c unreachable since 16:03 (Ready "
                           "Unknown, unreachable taint); svc-a-5c4b3-zzzzz "
                           "and svc-db-1 stuck Terminating on it; "
                           "replacement svc-a-5c4b3-yyyyy Ready on node-a; "
                           "the kubelet of node-c never finishes a deletion."
                           " Clock starts at 2026-12-04T16:30:00Z.",
            "now": "2026-12-04T16:30:00Z",
            "knobs": {"lost_nodes": ["node-c"]}, "objects": objs}


_BUILDERS = {
    "basic": _basic,
    "C10": lambda: _c10("A"),
    "C10-A": lambda: _c10("A"),
    "C10-B": lambda: _c10("B"),
    "C10-C": lambda: _c10("C"),
    "C11": _c11,
    "C12": lambda: _c12(6),
    "C12-max10": lambda: _c12(10),
    "C13": lambda: _c13("flux"),
    "C13-flux": lambda: _c13("flux"),
    "C13-argo": lambda: _c13("argo"),
    "C14": lambda: _c14("legacy"),
    "C14-current": lambda: _c14("current"),
    "C15": _c15,
}


def names():
    return list(_BUILDERS)


def load(name):
    """A fresh copy of fixture `name`, or of the JSON file at that path."""
    if name in _BUILDERS:
        fx = _BUILDERS[name]()
        return copy.deepcopy(fx)
    if os.path.isfile(name):
        with open(name) as f:
            fx = json.load(f)
        if isinstance(fx, list):
            fx = {"name": os.path.basename(name), "objects": fx}
        return fx
    raise KeyError(f"unknown fixture {name!r} (known: "
                   f"{', '.join(names())})")
