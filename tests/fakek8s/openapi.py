# SPDX-License-Identifier: MIT
"""A minimal OpenAPI v3 surface: the /openapi/v3 index and one document per
group-version that declares, for each resource, the operations with their
x-kubernetes-group-version-kind and the fieldValidation query parameter.
That is what kubectl 1.2x+ reads to learn that the server validates fields
itself (so `kubectl apply/create -f` send ?fieldValidation=Strict instead
of validating client-side). Schemas are not served (components empty)."""

import hashlib
import json


def _gv_path(group, version):
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _hash(group, version, fake_version):
    return hashlib.sha512(f"{group}/{version}/{fake_version}".encode()) \
        .hexdigest()[:128].upper()


def index(registry, fake_version):
    paths = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.group_versions()
                          for v in vs]
    for g, v in gvs:
        p = _gv_path(g, v)
        paths[p] = {"serverRelativeURL":
                    f"/openapi/v3/{p}?hash={_hash(g, v, fake_version)}"}
    return {"paths": paths}


def _params(names):
    return [{"name": n, "in": "query", "schema": {"type": "string",
                                                   "uniqueItems": True}}
            for n in names]


def document(registry, group, version, fake_version):
    """The OpenAPI v3 document of one group-version, or None."""
    paths = {}
    found = False
    for r in registry.resources:
        if r.group != group or version not in r.versions:
            continue
        found = True
        gvk = {"group": group, "version": version, "kind": r.kind}
        base = "/" + _gv_path(group, version)
        if r.namespaced:
            coll = f"{base}/namespaces/{{namespace}}/{r.plural}"
        else:
            coll = f"{base}/{r.plural}"
        item = coll + "/{name}"
        write = _params(["dryRun", "fieldManager", "fieldValidation"])
        ok = {"200": {"description": "OK"}}
        coll_ops = {"get": {"operationId": f"list{r.kind}",
                            "x-kubernetes-action": "list",
                            "x-kubernetes-group-version-kind": gvk,
                            "responses": ok}}
        item_ops = {"get": {"operationId": f"read{r.kind}",
                            "x-kubernetes-action": "get",
                            "x-kubernetes-group-version-kind": gvk,
                            "responses": ok}}
        if "create" in r.verbs:
            coll_ops["post"] = {"operationId": f"create{r.kind}",
                                "x-kubernetes-action": "post",
                                "x-kubernetes-group-version-kind": gvk,
                                "parameters": write, "responses": ok}
        if "update" in r.verbs:
            item_ops["put"] = {"operationId": f"replace{r.kind}",
                               "x-kubernetes-action": "put",
                               "x-kubernetes-group-version-kind": gvk,
                               "parameters": write, "responses": ok}
        if "patch" in r.verbs:
            item_ops["patch"] = {"operationId": f"patch{r.kind}",
                                 "x-kubernetes-action": "patch",
                                 "x-kubernetes-group-version-kind": gvk,
                                 "parameters": write + _params(["force"]),
                                 "responses": ok}
        if "delete" in r.verbs:
            item_ops["delete"] = {"operationId": f"delete{r.kind}",
                                  "x-kubernetes-action": "delete",
                                  "x-kubernetes-group-version-kind": gvk,
                                  "responses": ok}
        paths[coll] = coll_ops
        paths[item] = item_ops
    if not found:
        return None
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": fake_version},
            "paths": paths, "components": {"schemas": {}}}


def dumps(doc):
    return json.dumps(doc, separators=(",", ":"))
