# SPDX-License-Identifier: MIT
"""A stepwise controller simulator: each tick() runs every enabled
controller once (scheduler, kubelet, garbage collector, deployment,
replicaset, statefulset, daemonset, job, HPA, PDB, GitOps reverter),
writing straight to the store like the real controllers do through their
own clients. Deterministic: the same fixture, seed and ticks give the
same objects.
"""

import copy
import hashlib
import math

from . import k8sobj
from .sel import selector_matches

CONTROLLERS = ("scheduler", "kubelet", "gc", "deployment", "replicaset",
               "statefulset", "daemonset", "job", "hpa", "pdb", "gitops")

REV = "deployment.kubernetes.io/revision"


def _resolve(value, total, round_up):
    """intstr (3 or "25%") against `total`."""
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1])
        x = pct * total / 100.0
        return int(math.ceil(x)) if round_up else int(math.floor(x))
    return int(value)


def _owner_ref(kind, api_version, obj):
    return {"apiVersion": api_version, "kind": kind,
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _controller_uid(obj):
    for r in obj["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            return r.get("uid")
    return None


def _strip_zero(d, keep=()):
    return {k: v for k, v in d.items() if v not in (0, None) or k in keep}


def _rev(o):
    try:
        return int(((o["metadata"].get("annotations") or {}).get(REV)) or 0)
    except ValueError:
        return 0


class Simulator:
    def __init__(self, server):
        self.srv = server
        self.store = server.store
        self.api = server.api
        self.ticks = 0
        self.enabled = set(CONTROLLERS)
        self._terminating_since = {}   # pod uid -> tick marked
        self._progress = {}            # deployment uid -> last progress tick
        self._gitops_since = {}        # ns/name -> tick drift first seen
        self._gitops_spec = {}         # ns/name -> spec to restore
        self._start_ticks = {}         # pod uid -> tick it started

    @property
    def knobs(self):
        return self.srv.knobs

    def now(self):
        return k8sobj.rfc3339(self.srv.clock.now())

    # -- driver ------------------------------------------------------------

    def tick(self):
        with self.store.lock:
            self.ticks += 1
            for name in CONTROLLERS:
                if name in self.enabled:
                    getattr(self, "_" + name)()

    def mark_terminating(self, pod):
        self._terminating_since.setdefault(pod["metadata"]["uid"],
                                           self.ticks)

    # -- helpers -------------------------------------------------------------

    def _list(self, key, ns=None):
        return self.store.list(key, ns)[0]

    def _put_if_changed(self, key, old, new):
        if not self.api.same(old, new):
            return self.store.put(key, k8sobj.order_object(new))
        return old

    def _owned(self, key, ns, uid):
        return [o for o in self._list(key, ns) if _controller_uid(o) == uid]

    def node_lost(self, name):
        if name in (self.knobs.get("lost_nodes") or ()):
            return True
        node = self.store.get("/nodes", "", name)
        if node is None:
            return False
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return c.get("status") != "True"
        return False

    def _frozen(self, pod):
        md = pod["metadata"]
        return f"{md['namespace']}/{md['name']}" in \
            (self.knobs.get("frozen_pods") or ())

    def _broken(self, pod):
        broken = set(self.knobs.get("broken_images") or ())
        return any(c.get("image") in broken
                   for c in (pod.get("spec") or {}).get("containers") or [])

    def _node_ip(self, name):
        node = self.store.get("/nodes", "", name)
        for a in ((node or {}).get("status") or {}).get("addresses") or []:
            if a.get("type") == "InternalIP":
                return a.get("address")
        n = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 2
        return f"10.0.0.{n}"

    def _pod_ip(self, pod):
        h = int(hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest(),
                16)
        return f"10.244.{h % 250 + 1}.{(h >> 8) % 250 + 2}"

    def new_pod(self, owner, owner_kind, owner_api, template, name,
                extra_labels=None):
        md = owner["metadata"]
        tmd = template.get("metadata") or {}
        labels = dict(tmd.get("labels") or {})
        labels.update(extra_labels or {})
        pmd = {"name": name, "namespace": md["namespace"], "labels": labels}
        if tmd.get("annotations"):
            pmd["annotations"] = dict(tmd["annotations"])
        pmd["ownerReferences"] = [_owner_ref(owner_kind, owner_api, owner)]
        pod = {"metadata": pmd, "spec": copy.deepcopy(template.get("spec"))}
        podres = self.srv.registry.lookup("", "v1", "pods")
        pod = self.api.prepare_create(podres, pod)
        return self.store.put("/pods", pod)

    def _pod_ready(self, p):
        return self.srv.pod_ready(p)

    def _active(self, pods):
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in
                ("Succeeded", "Failed")]

    def _delete_pod(self, pod):
        podres = self.srv.registry.lookup("", "v1", "pods")
        self.api.delete_pod(podres, pod, {}, "v1")

    # -- scheduler ------------------------------------------------------------

    def _scheduler(self):
        nodes = [n for n in self._list("/nodes")
                 if not (n.get("spec") or {}).get("unschedulable")
                 and not self.node_lost(n["metadata"]["name"])]
        names = [n["metadata"]["name"] for n in nodes] or ["fake-node"]
        for pod in self._list("/pods"):
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or pod["metadata"].get(
                    "deletionTimestamp"):
                continue
            counts = {n: 0 for n in names}
            for p in self._list("/pods"):
                nn = (p.get("spec") or {}).get("nodeName")
                if nn in counts:
                    counts[nn] += 1
            target = min(names, key=lambda n: (counts[n], n))
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = target
            st = new.setdefault("status", {})
            st["conditions"] = [{"type": "PodScheduled", "status": "True",
                                 "lastProbeTime": None,
                                 "lastTransitionTime": self.now()}]
            self._put_if_changed("/pods", pod, new)

    # -- kubelet -------------------------------------------------------------

    def _kubelet(self):
        term_ticks = self.knobs.get("pod_termination_ticks", 1)
        job_ticks = self.knobs.get("job_run_ticks", 1)
        for pod in self._list("/pods"):
            md = pod["metadata"]
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or self.node_lost(node):
                continue
            if md.get("deletionTimestamp"):
                since = self._terminating_since.setdefault(md["uid"],
                                                           self.ticks)
                if self.ticks - since >= term_ticks:
                    self.store.remove("/pods", md["namespace"], md["name"])
                    self._terminating_since.pop(md["uid"], None)
                continue
            if self._frozen(pod):
                continue
            st = pod.get("status") or {}
            phase = st.get("phase", "Pending")
            new = copy.deepcopy(pod)
            if phase == "Pending":
                new["status"] = self._running_status(new, node)
            elif phase == "Running":
                if self._job_pod(pod):
                    age = self.ticks - self._started_tick(pod)
                    if age >= job_ticks:
                        new["status"] = self._finished_status(new)
                elif self._broken(pod):
                    new["status"] = self._running_status(new, node, old=st)
            self._put_if_changed("/pods", pod, new)

    def _started_tick(self, pod):
        return self._start_ticks.setdefault(pod["metadata"]["uid"],
                                            self.ticks)

    def _job_pod(self, pod):
        for r in pod["metadata"].get("ownerReferences") or []:
            if r.get("kind") == "Job" and r.get("controller"):
                return r
        return None

    def _running_status(self, pod, node, old=None):
        now = self.now()
        broken = self._broken(pod)
        ready = not broken
        self._started_tick(pod)
        conds = []
        for t in ("PodReadyToStartContainers", "Initialized", "Ready",
                  "ContainersReady", "PodScheduled"):
            s = "True" if (ready or t not in ("Ready", "ContainersReady")) \
                else "False"
            c = {"type": t, "status": s, "lastProbeTime": None,
                 "lastTransitionTime": now}
            if s == "False":
                c["reason"] = "ContainersNotReady"
                c["message"] = ("containers with unready status: [" +
                                " ".join(x.get("name", "") for x in
                                         pod["spec"].get("containers", [])) +
                                "]")
            conds.append(c)
        if old and old.get("conditions"):
            conds = old["conditions"]
        css = []
        old_cs = {c.get("name"): c for c in
                  ((old or {}).get("containerStatuses") or [])}
        for c in pod["spec"].get("containers") or []:
            img = c.get("image", "")
            cid = hashlib.sha256((pod["metadata"]["uid"] + c.get("name", ""))
                                 .encode()).hexdigest()
            full = img if "/" in img.split(":")[0] else "docker.io/library/" \
                + img
            cs = {"containerID": f"containerd://{cid}",
                  "image": full,
                  "imageID": full.split(":")[0] + "@sha256:" +
                  hashlib.sha256(img.encode()).hexdigest(),
                  "lastState": {}, "name": c.get("name"),
                  "ready": ready,
                  "restartCount": 0, "started": ready,
                  "state": {"running": {"startedAt": now}}}
            if broken:
                prev = old_cs.get(c.get("name"), {})
                n = prev.get("restartCount", -1) + 1
                cs["restartCount"] = n
                cs["started"] = False
                cs["state"] = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 10s restarting failed container="
                               f"{c.get('name')} pod={pod['metadata']['name']}"
                               f"_{pod['metadata']['namespace']}"
                               f"({pod['metadata']['uid']})"}}
                cs["lastState"] = {"terminated": {
                    "exitCode": 1, "reason": "Error", "startedAt": now,
                    "finishedAt": now, "containerID": f"containerd://{cid}"}}
            css.append(cs)
        ip = self._pod_ip(pod)
        hip = self._node_ip(node)
        return {"phase": "Running", "conditions": conds, "hostIP": hip,
                "hostIPs": [{"ip": hip}], "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": (old or {}).get("startTime", now),
                "containerStatuses": css, "qosClass": "BestEffort"}

    def _finished_status(self, pod):
        ref = self._job_pod(pod)
        key = f"{pod['metadata']['namespace']}/{ref['name']}"
        outcome = (self.knobs.get("job_outcomes") or {}).get(key, "Complete")
        ok = outcome not in ("Failed", "fail", "failed")
        st = copy.deepcopy(pod["status"])
        st["phase"] = "Succeeded" if ok else "Failed"
        now = self.now()
        for c in st.get("conditions") or []:
            if c["type"] in ("Ready", "ContainersReady"):
                c["status"] = "False"
                c["reason"] = "PodCompleted"
                c["lastTransitionTime"] = now
        for cs in st.get("containerStatuses") or []:
            started = (cs.get("state") or {}).get("running", {}).get(
                "startedAt", now)
            cs["ready"] = False
            cs["started"] = False
            cs["state"] = {"terminated": {
                "exitCode": 0 if ok else 1,
                "reason": "Completed" if ok else "Error",
                "startedAt": started, "finishedAt": now,
                "containerID": cs.get("containerID")}}
        return st

    # -- garbage collector ----------------------------------------------------

    def _gc(self):
        uids = set()
        for key in self.store.keys():
            for o in self._list(key):
                uids.add(o["metadata"].get("uid"))
        for key in self.store.keys():
            for o in self._list(key):
                refs = o["metadata"].get("ownerReferences") or []
                if not refs or any(r.get("uid") in uids for r in refs):
                    continue
                if key == "/pods":
                    if not o["metadata"].get("deletionTimestamp"):
                        self._delete_pod(o)
                else:
                    self.store.remove(key, o["metadata"].get("namespace", ""),
                                      o["metadata"]["name"])

    # -- deployment -----------------------------------------------------------

    def _deployment(self):
        for d in self._list("apps/deployments"):
            if d["metadata"].get("deletionTimestamp"):
                continue
            self._sync_deployment(d)

    def _sync_deployment(self, d):
        md = d["metadata"]
        ns = md["namespace"]
        spec = d["spec"]
        rses = sorted(self._owned("apps/replicasets", ns, md["uid"]),
                      key=lambda r: (_rev(r), r["metadata"]["name"]))
        new_rs = next((r for r in rses if k8sobj.templates_equal(
            r["spec"].get("template"), spec.get("template"))), None)
        paused = bool(spec.get("paused"))
        created = False
        max_rev = max([_rev(r) for r in rses] or [0])
        desired = spec.get("replicas", 1)
        strat = spec.get("strategy") or {}
        ru = strat.get("rollingUpdate") or {}
        surge = _resolve(ru.get("maxSurge", "25%"), desired, True)
        unavail = _resolve(ru.get("maxUnavailable", "25%"), desired, False)
        if strat.get("type") == "Recreate":
            surge, unavail = 0, desired
        if surge == 0 and unavail == 0:
            unavail = 1
        if not paused:
            if new_rs is None:
                new_rs = self._create_rs(d, max_rev + 1, desired, rses,
                                         surge)
                created = True
                rses.append(new_rs)
            elif _rev(new_rs) < max_rev or (_rev(new_rs) == 0):
                new_rs = self._set_rs_revision(new_rs, max_rev + 1)
            new_rs = self._sync_rs_annotations(d, new_rs, desired, surge)
            self._rollout(d, new_rs, [r for r in rses if r["metadata"]["uid"]
                                      != new_rs["metadata"]["uid"]],
                          desired, surge, unavail)
        else:
            target = new_rs or (max(rses, key=_rev) if rses else None)
            if target is not None:
                active = [r for r in rses if r["spec"].get("replicas", 0)]
                if not active or active == [target] or new_rs is not None:
                    self._scale_rs(target, desired if
                                   (not active or active == [target]) else
                                   target["spec"].get("replicas", 0))
        rses = sorted(self._owned("apps/replicasets", ns, md["uid"]),
                      key=lambda r: (_rev(r), r["metadata"]["name"]))
        if new_rs is not None:
            new_rs = next(r for r in rses if r["metadata"]["uid"] ==
                          new_rs["metadata"]["uid"])
        self._cleanup_history(d, rses, new_rs)
        self._deployment_status(d, rses, new_rs, paused, created, unavail,
                                desired)

    def _create_rs(self, d, revision, desired, rses, surge):
        md = d["metadata"]
        tmpl = copy.deepcopy(d["spec"]["template"])
        h = k8sobj.template_hash(tmpl)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[
            "pod-template-hash"] = h
        tmpl = k8sobj.default_template(tmpl)
        sel = copy.deepcopy(d["spec"]["selector"])
        sel.setdefault("matchLabels", {})["pod-template-hash"] = h
        ann = {k: v for k, v in (md.get("annotations") or {}).items()
               if k not in ("kubectl.kubernetes.io/last-applied-"
                            "configuration",
                            "deployment.kubernetes.io/revision-history")}
        ann.update({"deployment.kubernetes.io/desired-replicas":
                    str(desired),
                    "deployment.kubernetes.io/max-replicas":
                    str(desired + surge), REV: str(revision)})
        others = sum(r["spec"].get("replicas", 0) for r in rses)
        start = desired if not others else 0
        if (d["spec"].get("strategy") or {}).get("type") != "Recreate" and \
                others:
            start = max(0, min(desired, desired + surge - others))
        rs = {"metadata": {"name": f"{md['name']}-{h}",
                           "namespace": md["namespace"],
                           "labels": dict(tmpl["metadata"]["labels"]),
                           "annotations": ann,
                           "ownerReferences": [_owner_ref(
                               "Deployment", "apps/v1", d)]},
              "spec": {"replicas": start, "selector": sel,
                       "template": tmpl}}
        if d["spec"].get("minReadySeconds"):
            rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
        rsres = self.srv.registry.lookup("apps", "v1", "replicasets")
        rs = self.api.prepare_create(rsres, rs)
        rs["status"] = {"replicas": 0}
        self._progress[md["uid"]] = self.ticks
        return self.store.put("apps/replicasets", rs)

    def _set_rs_revision(self, rs, revision):
        new = copy.deepcopy(rs)
        ann = new["metadata"].setdefault("annotations", {})
        old = ann.get(REV)
        if old:
            hist = [h for h in (ann.get("deployment.kubernetes.io/"
                                        "revision-history") or "").split(",")
                    if h]
            hist.append(old)
            ann["deployment.kubernetes.io/revision-history"] = ",".join(hist)
        ann[REV] = str(revision)
        return self._put_if_changed("apps/replicasets", rs, new)

    def _sync_rs_annotations(self, d, rs, desired, surge):
        new = copy.deepcopy(rs)
        ann = new["metadata"].setdefault("annotations", {})
        for k, v in (d["metadata"].get("annotations") or {}).items():
            if k not in (REV, "kubectl.kubernetes.io/last-applied-"
                         "configuration",
                         "deployment.kubernetes.io/revision-history",
                         "deployment.kubernetes.io/desired-replicas",
                         "deployment.kubernetes.io/max-replicas",
                         "deprecated.deployment.rollback.to"):
                ann[k] = v
        ann["deployment.kubernetes.io/desired-replicas"] = str(desired)
        ann["deployment.kubernetes.io/max-replicas"] = str(desired + surge)
        return self._put_if_changed("apps/replicasets", rs, new)

    def _scale_rs(self, rs, n):
        if rs["spec"].get("replicas", 0) == n:
            return rs
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = n
        new["metadata"]["generation"] = rs["metadata"].get("generation",
                                                           1) + 1
        return self.store.put("apps/replicasets", new)

    def _rollout(self, d, new_rs, olds, desired, surge, unavail):
        uid = d["metadata"]["uid"]
        recreate = (d["spec"].get("strategy") or {}).get("type") == \
            "Recreate"
        old_active = [r for r in olds if r["spec"].get("replicas", 0)]
        if recreate:
            for r in old_active:
                self._scale_rs(r, 0)
            still = [p for r in olds for p in
                     self._owned("/pods", r["metadata"]["namespace"],
                                 r["metadata"]["uid"])]
            if not still and new_rs["spec"].get("replicas", 0) != desired:
                self._scale_rs(new_rs, desired)
                self._progress[uid] = self.ticks
            return
        cur_new = new_rs["spec"].get("replicas", 0)
        if not old_active:
            if cur_new != desired:
                self._scale_rs(new_rs, desired)
                self._progress[uid] = self.ticks
            return
        total = cur_new + sum(r["spec"].get("replicas", 0)
                              for r in old_active)
        if cur_new > desired:
            new_rs = self._scale_rs(new_rs, desired)
        elif cur_new < desired:
            up = min(desired + surge - total, desired - cur_new)
            if up > 0:
                new_rs = self._scale_rs(new_rs, cur_new + up)
                self._progress[uid] = self.ticks
        # scale old replica sets down, keeping minAvailable
        all_rs = [new_rs] + old_active
        total = sum(r["spec"].get("replicas", 0) for r in all_rs)
        min_avail = desired - unavail
        new_unavail = new_rs["spec"].get("replicas", 0) - \
            (new_rs.get("status") or {}).get("availableReplicas", 0)
        budget = total - min_avail - new_unavail
        if budget <= 0:
            return
        for r in sorted(old_active, key=_rev):
            if budget <= 0:
                break
            spec_n = r["spec"].get("replicas", 0)
            bad = spec_n - (r.get("status") or {}).get("availableReplicas", 0)
            cut = min(max(bad, 0), budget)
            if cut > 0:
                self._scale_rs(r, spec_n - cut)
                budget -= cut
                self._progress[uid] = self.ticks
        old_active = [self.store.get("apps/replicasets",
                                     r["metadata"]["namespace"],
                                     r["metadata"]["name"])
                      for r in old_active]
        old_active = [r for r in old_active if r and r["spec"].get(
            "replicas", 0)]
        avail = sum((r.get("status") or {}).get("availableReplicas", 0)
                    for r in [new_rs] + old_active)
        down = avail - min_avail
        for r in sorted(old_active, key=_rev):
            if down <= 0:
                break
            n = r["spec"].get("replicas", 0)
            cut = min(n, down)
            self._scale_rs(r, n - cut)
            down -= cut
            self._progress[uid] = self.ticks

    def _cleanup_history(self, d, rses, new_rs):
        limit = d["spec"].get("revisionHistoryLimit", 10)
        old = [r for r in rses if new_rs is None or r["metadata"]["uid"] !=
               new_rs["metadata"]["uid"]]
        dead = [r for r in old if not r["spec"].get("replicas", 0) and
                not (r.get("status") or {}).get("replicas", 0) and
                not r["metadata"].get("deletionTimestamp")]
        excess = len(dead) - limit
        for r in sorted(dead, key=_rev)[:max(excess, 0)]:
            self.store.remove("apps/replicasets", r["metadata"]["namespace"],
                              r["metadata"]["name"])

    def _deployment_status(self, d, rses, new_rs, paused, created, unavail,
                           desired):
        rses = [r for r in rses if self.store.get(
            "apps/replicasets", r["metadata"]["namespace"],
            r["metadata"]["name"]) is not None]
        old_d = d
        d = copy.deepcopy(d)
        md = d["metadata"]
        if new_rs is not None and not paused:
            md.setdefault("annotations", {})[REV] = str(_rev(new_rs))

        def s(r, f):
            return (r.get("status") or {}).get(f, 0)
        total_spec = sum(r["spec"].get("replicas", 0) for r in rses)
        avail = sum(s(r, "availableReplicas") for r in rses)
        st = {"observedGeneration": md.get("generation", 1),
              "replicas": sum(s(r, "replicas") for r in rses),
              "updatedReplicas": s(new_rs, "replicas") if new_rs else 0,
              "readyReplicas": sum(s(r, "readyReplicas") for r in rses),
              "availableReplicas": avail,
              "unavailableReplicas": max(0, total_spec - avail)}
        old_st = d.get("status") or {}
        conds = copy.deepcopy(old_st.get("conditions") or [])
        now = self.now()
        if avail >= desired - unavail:
            self.srv.set_condition_list(conds, "Available", "True",
                                        "MinimumReplicasAvailable",
                                        "Deployment has minimum "
                                        "availability.", now)
        else:
            self.srv.set_condition_list(conds, "Available", "False",
                                        "MinimumReplicasUnavailable",
                                        "Deployment does not have minimum "
                                        "availability.", now)
        uid = md["uid"]
        complete = (new_rs is not None and
                    st["updatedReplicas"] == desired and
                    st["replicas"] == desired and avail == desired and
                    not paused)
        prog = next((c for c in conds if c["type"] == "Progressing"), None)
        rsname = new_rs["metadata"]["name"] if new_rs else ""
        if paused:
            self.srv.set_condition_list(conds, "Progressing", "Unknown",
                                        "DeploymentPaused",
                                        "Deployment is paused", now)
        elif prog is not None and prog.get("reason") == "DeploymentPaused":
            self.srv.set_condition_list(conds, "Progressing", "Unknown",
                                        "DeploymentResumed",
                                        "Deployment is resumed", now)
            self._progress[uid] = self.ticks
        elif complete:
            self.srv.set_condition_list(conds, "Progressing", "True",
                                        "NewReplicaSetAvailable",
                                        f'ReplicaSet "{rsname}" has '
                                        "successfully progressed.", now)
        elif created:
            self.srv.set_condition_list(conds, "Progressing", "True",
                                        "NewReplicaSetCreated",
                                        f'Created new replica set '
                                        f'"{rsname}"', now)
        else:
            last = self._progress.setdefault(uid, self.ticks)
            changed = any(old_st.get(k, 0) != st[k] for k in
                          ("replicas", "updatedReplicas", "readyReplicas",
                           "availableReplicas"))
            if changed:
                self._progress[uid] = last = self.ticks
            limit = self.knobs.get("progress_deadline_ticks", 20)
            if prog is not None and prog.get("reason") == \
                    "ProgressDeadlineExceeded":
                pass
            elif self.ticks - last >= limit:
                self.srv.set_condition_list(
                    conds, "Progressing", "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rsname}" has timed out progressing.', now)
            elif changed or prog is None or \
                    prog.get("reason") == "NewReplicaSetAvailable":
                self.srv.set_condition_list(conds, "Progressing", "True",
                                            "ReplicaSetUpdated",
                                            f'ReplicaSet "{rsname}" is '
                                            "progressing.", now)
        order = {"Available": 0, "Progressing": 1, "ReplicaFailure": 2}
        conds.sort(key=lambda c: order.get(c["type"], 9))
        st = _strip_zero(st)
        st["conditions"] = conds
        if old_st.get("collisionCount"):
            st["collisionCount"] = old_st["collisionCount"]
        d["status"] = st
        self._put_if_changed("apps/deployments", old_d, d)

    # -- replicaset -----------------------------------------------------------

    def _replicaset(self):
        for rs in self._list("apps/replicasets"):
            if rs["metadata"].get("deletionTimestamp"):
                continue
            md = rs["metadata"]
            pods = self._owned("/pods", md["namespace"], md["uid"])
            active = self._active(pods)
            want = rs["spec"].get("replicas", 1)
            if len(active) < want:
                for _ in range(want - len(active)):
                    name = f"{md['name']}-{self.api.rand_suffix()}"
                    active.append(self.new_pod(rs, "ReplicaSet", "apps/v1",
                                               rs["spec"]["template"], name))
            elif len(active) > want:
                def rank(p):
                    st = p.get("status") or {}
                    cls = (0 if not (p.get("spec") or {}).get("nodeName")
                           else 1 if st.get("phase") == "Pending"
                           else 2 if not self._pod_ready(p) else 3)
                    born = p["metadata"].get("creationTimestamp")
                    t = k8sobj.parse_time(born) if born else 0
                    return (cls, -t, p["metadata"]["name"])
                victims = sorted(active, key=rank)[:len(active) - want]
                for p in victims:
                    self._delete_pod(p)
                gone = {p["metadata"]["uid"] for p in victims}
                active = [p for p in active if p["metadata"]["uid"]
                          not in gone]
            ready = sum(1 for p in active if self._pod_ready(p))
            st = _strip_zero({"replicas": len(active),
                              "fullyLabeledReplicas": len(active),
                              "readyReplicas": ready,
                              "availableReplicas": ready,
                              "observedGeneration": md.get("generation", 1)},
                             keep=("replicas",))
            new = copy.deepcopy(rs)
            new["status"] = st
            self._put_if_changed("apps/replicasets", rs, new)

    # -- controller revisions (statefulset, daemonset) ------------------------

    def _revision(self, owner, kind):
        md = owner["metadata"]
        tmpl = owner["spec"]["template"]
        h = k8sobj.template_hash(tmpl)
        name = f"{md['name']}-{h}"
        revs = self._owned("apps/controllerrevisions", md["namespace"],
                           md["uid"])
        cur = next((r for r in revs if r["metadata"]["name"] == name), None)
        top = max([r.get("revision", 0) for r in revs] or [0])
        if cur is None:
            data_tmpl = copy.deepcopy(tmpl)
            data_tmpl["$patch"] = "replace"
            labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
            labels["controller-revision-hash"] = h
            rev = {"metadata": {"name": name, "namespace": md["namespace"],
                                "labels": labels,
                                "ownerReferences": [_owner_ref(
                                    kind, "apps/v1", owner)]},
                   "data": {"spec": {"template": data_tmpl}},
                   "revision": top + 1}
            crres = self.srv.registry.lookup("apps", "v1",
                                             "controllerrevisions")
            rev = self.api.prepare_create(crres, rev)
            cur = self.store.put("apps/controllerrevisions", rev)
        elif cur.get("revision", 0) < top:
            new = copy.deepcopy(cur)
            new["revision"] = top + 1
            cur = self.store.put("apps/controllerrevisions", new)
        limit = owner["spec"].get("revisionHistoryLimit", 10)
        old = sorted([r for r in revs if r["metadata"]["name"] != name],
                     key=lambda r: r.get("revision", 0))
        pods = self._owned("/pods", md["namespace"], md["uid"])
        used = {(p["metadata"].get("labels") or {}).get(
            "controller-revision-hash") for p in pods}
        removable = [r for r in old if r["metadata"]["labels"].get(
            "controller-revision-hash") not in used]
        for r in removable[:max(0, len(old) - limit)]:
            self.store.remove("apps/controllerrevisions", md["namespace"],
                              r["metadata"]["name"])
        return name, h

    # -- statefulset ----------------------------------------------------------

    def _statefulset(self):
        for sts in self._list("apps/statefulsets"):
            if sts["metadata"].get("deletionTimestamp"):
                continue
            self._sync_sts(sts)

    def _sync_sts(self, sts):
        md = sts["metadata"]
        ns = md["namespace"]
        upd_name, upd_hash = self._revision(sts, "StatefulSet")
        want = sts["spec"].get("replicas", 1)
        pods = {p["metadata"]["name"]: p for p in
                self._owned("/pods", ns, md["uid"])}
        ordered_ready = sts["spec"].get("podManagementPolicy",
                                        "OrderedReady") == "OrderedReady"
        for i in range(want):
            name = f"{md['name']}-{i}"
            if name in pods:
                p = pods[name]
                if ordered_ready and not p["metadata"].get(
                        "deletionTimestamp") and not self._pod_ready(p):
                    break
                if p["metadata"].get("deletionTimestamp") and ordered_ready:
                    break
                continue
            pods[name] = self.new_pod(
                sts, "StatefulSet", "apps/v1", sts["spec"]["template"], name,
                {"controller-revision-hash": upd_name,
                 "statefulset.kubernetes.io/pod-name": name,
                 "apps.kubernetes.io/pod-index": str(i)})
            if ordered_ready:
                break
        # scale down: highest ordinal first
        for name, p in sorted(pods.items(), key=lambda kv: -self._ordinal(
                kv[0])):
            if self._ordinal(name) >= want and not p["metadata"].get(
                    "deletionTimestamp"):
                self._delete_pod(p)
                break
        # rolling update
        us = sts["spec"].get("updateStrategy") or {}
        live = [p for p in pods.values() if not p["metadata"].get(
            "deletionTimestamp")]
        if us.get("type", "RollingUpdate") == "RollingUpdate" and \
                len(live) == want and all(self._pod_ready(p) for p in live):
            part = (us.get("rollingUpdate") or {}).get("partition", 0)
            stale = [p for p in live if
                     (p["metadata"].get("labels") or {}).get(
                         "controller-revision-hash") != upd_name and
                     self._ordinal(p["metadata"]["name"]) >= part]
            if stale:
                self._delete_pod(max(stale, key=lambda p: self._ordinal(
                    p["metadata"]["name"])))
        pods = self._owned("/pods", ns, md["uid"])
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        created = [p for p in pods if 0 <= self._ordinal(
            p["metadata"]["name"]) < want]
        old_st = sts.get("status") or {}
        cur_rev = old_st.get("currentRevision") or upd_name

        def at(p, rev):
            return (p["metadata"].get("labels") or {}).get(
                "controller-revision-hash") == rev
        updated = sum(1 for p in created if at(p, upd_name))
        current = sum(1 for p in created if at(p, cur_rev))
        ready = sum(1 for p in live if self._pod_ready(p))
        if updated == want and len(live) == want:
            cur_rev = upd_name
            current = updated
        st = {"observedGeneration": md.get("generation", 1),
              "replicas": len(created), "readyReplicas": ready,
              "currentReplicas": current, "updatedReplicas": updated,
              "currentRevision": cur_rev, "updateRevision": upd_name,
              "collisionCount": 0, "availableReplicas": ready}
        st = _strip_zero(st, keep=("replicas", "collisionCount",
                                   "availableReplicas"))
        new = copy.deepcopy(sts)
        new["status"] = st
        self._put_if_changed("apps/statefulsets", sts, new)

    @staticmethod
    def _ordinal(name):
        tail = name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    # -- daemonset ------------------------------------------------------------

    def _daemonset(self):
        nodes = [n["metadata"]["name"] for n in self._list("/nodes")
                 if not (n.get("spec") or {}).get("unschedulable")]
        for ds in self._list("apps/daemonsets"):
            if ds["metadata"].get("deletionTimestamp"):
                continue
            md = ds["metadata"]
            ns = md["namespace"]
            upd_name, _ = self._revision(ds, "DaemonSet")
            pods = self._owned("/pods", ns, md["uid"])
            by_node = {}
            for p in pods:
                by_node.setdefault((p.get("spec") or {}).get("nodeName"),
                                   []).append(p)
            for node in nodes:
                live = [p for p in by_node.get(node, [])
                        if not p["metadata"].get("deletionTimestamp")]
                if not live and not self.node_lost(node):
                    tmpl = copy.deepcopy(ds["spec"]["template"])
                    tmpl["spec"]["nodeName"] = node
                    p = self.new_pod(ds, "DaemonSet", "apps/v1", tmpl,
                                     f"{md['name']}-"
                                     f"{self.api.rand_suffix()}",
                                     {"controller-revision-hash": upd_name,
                                      "pod-template-generation": str(
                                          md.get("generation", 1))})
                    by_node.setdefault(node, []).append(p)
            us = ds["spec"].get("updateStrategy") or {}
            all_live = [p for p in self._owned("/pods", ns, md["uid"])
                        if not p["metadata"].get("deletionTimestamp")]
            if us.get("type", "RollingUpdate") == "RollingUpdate" and \
                    all(self._pod_ready(p) for p in all_live):
                stale = [p for p in all_live
                         if (p["metadata"].get("labels") or {}).get(
                             "controller-revision-hash") != upd_name]
                n = _resolve((us.get("rollingUpdate") or {}).get(
                    "maxUnavailable", 1), len(nodes), True) or 1
                for p in sorted(stale, key=lambda p: p["metadata"]["name"])[
                        :n]:
                    self._delete_pod(p)
            pods = self._owned("/pods", ns, md["uid"])
            live = [p for p in pods if not p["metadata"].get(
                "deletionTimestamp")]
            ready = sum(1 for p in live if self._pod_ready(p))
            updated = sum(1 for p in live if (p["metadata"].get("labels")
                                              or {}).get(
                "controller-revision-hash") == upd_name)
            st = {"currentNumberScheduled": len(live),
                  "numberMisscheduled": 0,
                  "desiredNumberScheduled": len(nodes),
                  "numberReady": ready,
                  "observedGeneration": md.get("generation", 1),
                  "updatedNumberScheduled": updated,
                  "numberAvailable": ready,
                  "numberUnavailable": max(0, len(nodes) - ready)}
            st = _strip_zero(st, keep=("currentNumberScheduled",
                                       "numberMisscheduled",
                                       "desiredNumberScheduled",
                                       "numberReady"))
            new = copy.deepcopy(ds)
            new["status"] = st
            self._put_if_changed("apps/daemonsets", ds, new)

    # -- job ------------------------------------------------------------------

    def _job(self):
        for job in self._list("batch/jobs"):
            md = job["metadata"]
            ns = md["namespace"]
            spec = job["spec"]
            st = copy.deepcopy(job.get("status") or {})
            if any(c.get("type") in ("Complete", "Failed") and
                   c.get("status") == "True"
                   for c in st.get("conditions") or []):
                continue
            if spec.get("suspend"):
                continue
            now = self.now()
            st.setdefault("startTime", now)
            pods = self._owned("/pods", ns, md["uid"])
            succeeded = sum(1 for p in pods if p["status"].get("phase") ==
                            "Succeeded")
            failed = sum(1 for p in pods if p["status"].get("phase") ==
                         "Failed")
            active = [p for p in pods if p["status"].get("phase") not in
                      ("Succeeded", "Failed") and
                      not p["metadata"].get("deletionTimestamp")]
            conds = st.get("conditions") or []
            completions = spec.get("completions", 1)
            if failed > spec.get("backoffLimit", 6):
                for p in active:
                    self._delete_pod(p)
                active = []
                conds = [{"type": "FailureTarget", "status": "True",
                          "lastProbeTime": now, "lastTransitionTime": now,
                          "reason": "BackoffLimitExceeded",
                          "message": "Job has reached the specified backoff "
                                     "limit"},
                         {"type": "Failed", "status": "True",
                          "lastProbeTime": now, "lastTransitionTime": now,
                          "reason": "BackoffLimitExceeded",
                          "message": "Job has reached the specified backoff "
                                     "limit"}]
            elif succeeded >= completions:
                conds = [{"type": "SuccessCriteriaMet", "status": "True",
                          "lastProbeTime": now, "lastTransitionTime": now,
                          "reason": "CompletionsReached",
                          "message": "Reached expected number of "
                                     "succeeded pods"},
                         {"type": "Complete", "status": "True",
                          "lastProbeTime": now, "lastTransitionTime": now,
                          "reason": "CompletionsReached",
                          "message": "Reached expected number of "
                                     "succeeded pods"}]
                st["completionTime"] = now
            else:
                want = min(spec.get("parallelism", 1),
                           completions - succeeded)
                for _ in range(want - len(active)):
                    tmpl = job["spec"]["template"]
                    active.append(self.new_pod(
                        job, "Job", "batch/v1", tmpl,
                        f"{md['name']}-{self.api.rand_suffix()}"))
            st["active"] = len(active)
            st["succeeded"] = succeeded
            st["failed"] = failed
            st["ready"] = sum(1 for p in active if self._pod_ready(p))
            st["terminating"] = sum(1 for p in pods if p["metadata"].get(
                "deletionTimestamp"))
            st["uncountedTerminatedPods"] = {}
            if conds:
                st["conditions"] = conds
            st = _strip_zero(st, keep=("ready", "terminating",
                                       "uncountedTerminatedPods"))
            order = ["conditions", "startTime", "completionTime", "active",
                     "succeeded", "failed", "terminating",
                     "uncountedTerminatedPods", "ready"]
            new = copy.deepcopy(job)
            new["status"] = k8sobj.ordered(st, order)
            self._put_if_changed("batch/jobs", job, new)

    # -- HPA ------------------------------------------------------------------

    def _hpa(self):
        every = self.knobs.get("hpa_sync_ticks", 1)
        if self.ticks % every:
            return
        for hpa in self._list("autoscaling/horizontalpodautoscalers"):
            self._sync_hpa(hpa)

    def _sync_hpa(self, hpa):
        md = hpa["metadata"]
        ns = md["namespace"]
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        key = {"Deployment": "apps/deployments",
               "StatefulSet": "apps/statefulsets",
               "ReplicaSet": "apps/replicasets"}.get(ref.get("kind"))
        now = self.now()
        new = copy.deepcopy(hpa)
        st = new.setdefault("status", {})
        conds = copy.deepcopy(st.get("conditions") or [])
        target = self.store.get(key, ns, ref.get("name", "")) if key else None
        if target is None:
            self.srv.set_condition_list(
                conds, "AbleToScale", "False", "FailedGetScale",
                f'the HPA controller was unable to get the target\'s current '
                f'scale: {key.split("/")[1] if key else "unknown"}.'
                f'{key.split("/")[0] if key else ""} "{ref.get("name")}" '
                'not found', now)
            st["conditions"] = conds
            self._put_if_changed("autoscaling/horizontalpodautoscalers", hpa,
                                 new)
            return
        mn = spec.get("minReplicas", 1)
        mx = spec.get("maxReplicas", 1)
        current = target["spec"].get("replicas", 1)
        st["currentReplicas"] = (target.get("status") or {}).get(
            "replicas", 0)
        if current == 0 and mn > 0:
            st["desiredReplicas"] = 0
            self.srv.set_condition_list(
                conds, "ScalingActive", "False", "ScalingDisabled",
                "scaling is disabled since the replica count of the target "
                "is zero", now)
        else:
            recs = self.knobs.get("hpa_recommendations") or {}
            raw = recs.get(f"{ns}/{md['name']}", current)
            desired = max(mn, min(mx, raw))
            self.srv.set_condition_list(
                conds, "AbleToScale", "True",
                "SucceededRescale" if desired != current
                else "ReadyForNewScale",
                f"the HPA controller was able to update the target scale to "
                f"{desired}" if desired != current
                else "recommended size matches current size", now)
            self.srv.set_condition_list(
                conds, "ScalingActive", "True", "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count "
                "from cpu resource utilization (percentage of request)", now)
            if raw > mx:
                self.srv.set_condition_list(
                    conds, "ScalingLimited", "True", "TooManyReplicas",
                    "the desired replica count is more than the maximum "
                    "replica count", now)
            elif raw < mn:
                self.srv.set_condition_list(
                    conds, "ScalingLimited", "True", "TooFewReplicas",
                    "the desired replica count is less than the minimum "
                    "replica count", now)
            else:
                self.srv.set_condition_list(
                    conds, "ScalingLimited", "False", "DesiredWithinRange",
                    "the desired count is within the acceptable range", now)
            st["desiredReplicas"] = desired
            if desired != current:
                t = copy.deepcopy(target)
                t["spec"]["replicas"] = desired
                t["metadata"]["generation"] = \
                    target["metadata"].get("generation", 1) + 1
                self.store.put(key, t)
                st["lastScaleTime"] = now
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        conds.sort(key=lambda c: order.get(c["type"], 9))
        st["conditions"] = conds
        st["observedGeneration"] = md.get("generation", 1)
        new["status"] = k8sobj.ordered(
            st, ["observedGeneration", "lastScaleTime", "currentReplicas",
                 "desiredReplicas", "currentMetrics", "conditions"])
        self._put_if_changed("autoscaling/horizontalpodautoscalers", hpa,
                             new)

    # -- PDB ------------------------------------------------------------------

    def _pdb(self):
        for pdb in self._list("policy/poddisruptionbudgets"):
            md = pdb["metadata"]
            spec = pdb.get("spec") or {}
            sel = spec.get("selector")
            pods = [p for p in self._list("/pods", md["namespace"])
                    if sel and selector_matches(sel, p["metadata"].get(
                        "labels"))]
            live = [p for p in pods if not p["metadata"].get(
                "deletionTimestamp")]
            st = copy.deepcopy(pdb.get("status") or {})
            disrupted = {k: v for k, v in (st.get("disruptedPods") or
                                           {}).items()
                         if any(p["metadata"]["name"] == k for p in live)}
            expected = len(live)
            healthy = sum(1 for p in live if self._pod_ready(p) and
                          p["metadata"]["name"] not in disrupted)
            if "minAvailable" in spec:
                want = _resolve(spec["minAvailable"], expected, True)
            elif "maxUnavailable" in spec:
                want = max(0, expected - _resolve(spec["maxUnavailable"],
                                                  expected, True))
            else:
                want = expected
            allowed = max(0, healthy - want)
            st.update({"observedGeneration": md.get("generation", 1),
                       "disruptionsAllowed": allowed,
                       "currentHealthy": healthy, "desiredHealthy": want,
                       "expectedPods": expected})
            if disrupted:
                st["disruptedPods"] = disrupted
            else:
                st.pop("disruptedPods", None)
            self.srv.set_condition(
                st, "DisruptionAllowed", "True" if allowed else "False",
                "SufficientPods" if allowed else "InsufficientPods", "",
                observed=md.get("generation", 1))
            new = copy.deepcopy(pdb)
            new["status"] = k8sobj.ordered(
                st, ["observedGeneration", "disruptedPods",
                     "disruptionsAllowed", "currentHealthy",
                     "desiredHealthy", "expectedPods", "conditions"])
            self._put_if_changed("policy/poddisruptionbudgets", pdb, new)

    # -- GitOps reverter ------------------------------------------------------

    def remember_gitops(self):
        for key, conf in (self.knobs.get("gitops") or {}).items():
            ns, name = key.split("/", 1)
            d = self.store.get("apps/deployments", ns, name)
            if d is not None and key not in self._gitops_spec:
                self._gitops_spec[key] = copy.deepcopy(d["spec"])

    def _gitops(self):
        self.remember_gitops()
        for key, conf in (self.knobs.get("gitops") or {}).items():
            ns, name = key.split("/", 1)
            d = self.store.get("apps/deployments", ns, name)
            want = self._gitops_spec.get(key)
            if d is None or want is None:
                continue
            fields = conf.get("fields", ["template", "replicas", "paused"])
            drift = any(d["spec"].get(f) != want.get(f) for f in fields)
            if not drift:
                self._gitops_since.pop(key, None)
                continue
            since = self._gitops_since.setdefault(key, self.ticks)
            if self.ticks - since < conf.get("delay_ticks", 3):
                continue
            new = copy.deepcopy(d)
            for f in fields:
                if f in want:
                    new["spec"][f] = copy.deepcopy(want[f])
                else:
                    new["spec"].pop(f, None)
            new["metadata"]["generation"] = \
                d["metadata"].get("generation", 1) + 1
            self.store.put("apps/deployments", new)
            self._gitops_since.pop(key, None)
