# SPDX-License-Identifier: MIT
"""meta.k8s.io/v1 Table output (what `kubectl get` asks for) for the
fake's resources: the real columns for pods, deployments, nodes, HPAs,
PDBs and replica sets, Name + Age for the rest."""

from . import k8sobj

_NAME = {"name": "Name", "type": "string", "format": "name",
         "description": "Name must be unique within a namespace.",
         "priority": 0}
_AGE = {"name": "Age", "type": "string", "format": "",
        "description": "CreationTimestamp is a timestamp representing the "
                       "server time when this object was created.",
        "priority": 0}


def _col(name, typ="string", priority=0, desc=""):
    return {"name": name, "type": typ, "format": "", "description": desc,
            "priority": priority}


def human_duration(secs):
    s = int(max(0, secs))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y"


def _age(fake, o):
    ts = o.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    return human_duration(fake.clock.now() - k8sobj.parse_time(ts))


def _pod_cells(fake, p):
    st = p.get("status") or {}
    css = st.get("containerStatuses") or []
    ctrs = (p.get("spec") or {}).get("containers") or []
    ready = sum(1 for c in css if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in css)
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for c in css:
        w = (c.get("state") or {}).get("waiting")
        t = (c.get("state") or {}).get("terminated")
        if w and w.get("reason"):
            reason = w["reason"]
        elif t and t.get("reason"):
            reason = t["reason"]
    if p["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [p["metadata"]["name"], f"{ready}/{len(ctrs)}", reason, restarts,
            _age(fake, p), st.get("podIP") or "<none>",
            (p.get("spec") or {}).get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", "<none>"]


def _deploy_cells(fake, d):
    st = d.get("status") or {}
    spec = d.get("spec") or {}
    ctrs = ((spec.get("template") or {}).get("spec") or {}).get(
        "containers") or []
    from .sel import selector_string
    return [d["metadata"]["name"],
            f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0),
            _age(fake, d), ",".join(c.get("name", "") for c in ctrs),
            ",".join(c.get("image", "") for c in ctrs),
            selector_string(spec.get("selector"))]


COLUMNS = {
    "/pods": ([_NAME, _col("Ready"), _col("Status"),
               _col("Restarts", "string"), _AGE, _col("IP", priority=1),
               _col("Node", priority=1), _col("Nominated Node", priority=1),
               _col("Readiness Gates", priority=1)], _pod_cells),
    "apps/deployments": ([_NAME, _col("Ready"), _col("Up-to-date",
                                                     "integer"),
                          _col("Available", "integer"), _AGE,
                          _col("Containers", priority=1),
                          _col("Images", priority=1),
                          _col("Selector", priority=1)], _deploy_cells),
}


def to_table(fake, res, obj, query):
    items = obj["items"] if "items" in obj else [obj]
    cols, cells = COLUMNS.get(res.key, ([_NAME, _AGE], None))
    rows = []
    include = query.get("includeObject", "Metadata")
    for it in items:
        c = cells(fake, it) if cells else [it["metadata"]["name"],
                                           _age(fake, it)]
        row = {"cells": c}
        if include == "Object":
            o = dict(it)
            if "kind" not in o:
                o = {"kind": res.kind, "apiVersion": res.api_version(), **o}
            row["object"] = o
        elif include == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": "meta.k8s.io/v1",
                             "metadata": it["metadata"]}
        rows.append(row)
    meta = {"resourceVersion": (obj.get("metadata") or {}).get(
        "resourceVersion", "")}
    if "items" in obj and (obj.get("metadata") or {}).get("continue"):
        meta["continue"] = obj["metadata"]["continue"]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": meta, "columnDefinitions": cols, "rows": rows}
