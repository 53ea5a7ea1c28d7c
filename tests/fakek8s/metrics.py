# SPDX-License-Identifier: MIT
"""metrics.k8s.io/v1beta1 NodeMetrics and PodMetrics: those loaded from a
fixture, plus (knob synthesize_metrics, default on) figures for running
pods and nodes that have none, derived from their names so they are
stable."""

import hashlib

from . import k8sobj


def _h(s, mod):
    return int(hashlib.sha256(s.encode()).hexdigest(), 16) % mod


def metrics_items(fake, res, ns):
    key = res.key
    stored, _ = fake.store.list(key, ns if res.namespaced else None)
    now = k8sobj.rfc3339(fake.clock.now())
    out = []
    for o in stored:
        md = o["metadata"]
        clean = {"name": md["name"]}
        if md.get("namespace"):
            clean["namespace"] = md["namespace"]
        clean["creationTimestamp"] = now
        if md.get("labels"):
            clean["labels"] = md["labels"]
        o = {"metadata": clean, **{k: v for k, v in o.items()
                                   if k != "metadata"}}
        o.setdefault("timestamp", now)
        o.setdefault("window", "20.035s")
        out.append(o)
    have = {(o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in out}
    if not fake.knobs.get("synthesize_metrics", True):
        return out
    if res.plural == "nodes":
        for n, _ in [(x, 0) for x in fake.store.list("/nodes")[0]]:
            name = n["metadata"]["name"]
            if ("", name) in have or fake.sim.node_lost(name):
                continue
            out.append({"metadata": {"name": name, "creationTimestamp":
                                     now, "labels": n["metadata"].get(
                                         "labels", {})},
                        "timestamp": now, "window": "20.035s",
                        "usage": {"cpu": f"{_h(name, 900000000) + 100000000}n",
                                  "memory": f"{_h(name, 4000000) + 1000000}Ki"
                                  }})
    else:
        pods, _ = fake.store.list("/pods", ns)
        for p in pods:
            md = p["metadata"]
            if (md["namespace"], md["name"]) in have or \
                    (p.get("status") or {}).get("phase") != "Running":
                continue
            ctrs = []
            for c in (p.get("spec") or {}).get("containers") or []:
                seed = md["name"] + c.get("name", "")
                ctrs.append({"name": c.get("name"),
                             "usage": {"cpu": f"{_h(seed, 50000000) + 1000}n",
                                       "memory": f"{_h(seed, 200000) + 4096}"
                                                 "Ki"}})
            out.append({"metadata": {"name": md["name"],
                                     "namespace": md["namespace"],
                                     "creationTimestamp": now,
                                     "labels": md.get("labels", {})},
                        "timestamp": now, "window": "18.888s",
                        "containers": ctrs})
    out.sort(key=lambda o: (o["metadata"].get("namespace", ""),
                            o["metadata"]["name"]))
    return out
