# SPDX-License-Identifier: MIT
"""The resource types the fake API server serves, and discovery documents.

One ResourceType per (group, plural); it may be served in several versions
(VirtualService: networking.istio.io v1 and v1beta1) and is stored once.
"""

import hashlib

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch",
             "update", "watch"]
VERBS_RO = ["get", "list"]
VERBS_SUB = ["get", "patch", "update"]


class Subresource:
    def __init__(self, name, kind, verbs, group=None, version=None):
        self.name = name
        self.kind = kind
        self.verbs = verbs
        self.group = group      # None: same group/version as the parent
        self.version = version


class ResourceType:
    """One kind of object.

    builtin: strategic merge patch allowed (custom resources: 415).
    has_generation: metadata.generation is kept and bumped on spec changes.
    has_status: a /status subresource; main-resource writes keep the old
    status (and /status writes keep the old spec).
    unconditional_update: PUT without resourceVersion allowed (custom
    resources refuse it with 422)."""

    def __init__(self, group, versions, plural, kind, namespaced=True,
                 singular=None, short_names=(), categories=(),
                 verbs=None, subresources=(), builtin=True,
                 has_generation=False, has_status=False,
                 unconditional_update=True, list_kind=None,
                 field_labels=None, field_error="default"):
        self.group = group
        self.versions = list(versions)
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.verbs = list(verbs if verbs is not None else VERBS_ALL)
        self.subresources = {s.name: s for s in subresources}
        self.builtin = builtin
        self.has_generation = has_generation
        self.has_status = has_status
        self.unconditional_update = unconditional_update
        self.list_kind = list_kind or kind + "List"
        # Field selector labels the resource accepts (beyond the two
        # metadata ones every resource has), and which error form an
        # unknown label gets: "pods" style ("field label not supported:
        # X") or the default conversion's ("X" is not a known field
        # selector: only "metadata.name", "metadata.namespace").
        self.field_labels = list(field_labels or [])
        self.field_error = field_error

    @property
    def key(self):
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self):
        """`deployments.apps`, `pods` (what error messages call it)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self):
        """`Deployment.apps`, `Pod` (what Invalid messages call it)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version=None):
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v

    def storage_hash(self):
        h = hashlib.sha256(self.key.encode()).digest()
        import base64
        return base64.b64encode(h[:8]).decode()


def _status_sub(kind):
    return Subresource("status", kind, VERBS_SUB)


POD_FIELDS = ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
              "status.podIP", "status.podIPs", "status.nominatedNodeName"]
EVENT_FIELDS = ["involvedObject.kind", "involvedObject.namespace",
                "involvedObject.name", "involvedObject.uid",
                "involvedObject.apiVersion", "involvedObject.resourceVersion",
                "involvedObject.fieldPath", "reason", "reportingComponent",
                "source", "type"]

SCALE = ("autoscaling", "v1", "Scale")


def _scale_sub():
    return Subresource("scale", "Scale", VERBS_SUB, group="autoscaling",
                       version="v1")


RESOURCES = [
    # core/v1
    ResourceType("", ["v1"], "namespaces", "Namespace", namespaced=False,
                 short_names=["ns"],
                 verbs=["create", "delete", "get", "list", "patch", "update",
                        "watch"],
                 subresources=[_status_sub("Namespace")], has_status=True,
                 field_labels=["status.phase"], field_error="pods"),
    ResourceType("", ["v1"], "pods", "Pod", short_names=["po"],
                 categories=["all"],
                 subresources=[
                     Subresource("eviction", "Eviction", ["create"],
                                 group="policy", version="v1"),
                     Subresource("log", "Pod", ["get"]),
                     _status_sub("Pod")],
                 has_status=True, field_labels=POD_FIELDS,
                 field_error="pods"),
    ResourceType("", ["v1"], "nodes", "Node", namespaced=False,
                 short_names=["no"], subresources=[_status_sub("Node")],
                 has_status=True, field_labels=["spec.unschedulable"],
                 field_error="pods"),
    ResourceType("", ["v1"], "configmaps", "ConfigMap", short_names=["cm"]),
    ResourceType("", ["v1"], "events", "Event", short_names=["ev"],
                 field_labels=EVENT_FIELDS, field_error="pods"),
    # apps/v1
    ResourceType("apps", ["v1"], "deployments", "Deployment",
                 short_names=["deploy"], categories=["all"],
                 subresources=[_scale_sub(), _status_sub("Deployment")],
                 has_generation=True, has_status=True),
    ResourceType("apps", ["v1"], "replicasets", "ReplicaSet",
                 short_names=["rs"], categories=["all"],
                 subresources=[_scale_sub(), _status_sub("ReplicaSet")],
                 has_generation=True, has_status=True,
                 field_labels=["status.replicas"], field_error="pods"),
    ResourceType("apps", ["v1"], "statefulsets", "StatefulSet",
                 short_names=["sts"], categories=["all"],
                 subresources=[_scale_sub(), _status_sub("StatefulSet")],
                 has_generation=True, has_status=True),
    ResourceType("apps", ["v1"], "daemonsets", "DaemonSet",
                 short_names=["ds"], categories=["all"],
                 subresources=[_status_sub("DaemonSet")],
                 has_generation=True, has_status=True),
    ResourceType("apps", ["v1"], "controllerrevisions", "ControllerRevision"),
    # others
    ResourceType("autoscaling", ["v2"], "horizontalpodautoscalers",
                 "HorizontalPodAutoscaler", short_names=["hpa"],
                 categories=["all"],
                 subresources=[_status_sub("HorizontalPodAutoscaler")],
                 has_generation=True, has_status=True),
    ResourceType("policy", ["v1"], "poddisruptionbudgets",
                 "PodDisruptionBudget", short_names=["pdb"],
                 subresources=[_status_sub("PodDisruptionBudget")],
                 has_generation=True, has_status=True),
    ResourceType("batch", ["v1"], "jobs", "Job", categories=["all"],
                 subresources=[_status_sub("Job")],
                 has_generation=True, has_status=True,
                 field_labels=["status.successful"], field_error="pods"),
    ResourceType("coordination.k8s.io", ["v1"], "leases", "Lease"),
    ResourceType("events.k8s.io", ["v1"], "events", "Event",
                 short_names=["ev"], field_labels=EVENT_FIELDS,
                 field_error="pods"),
    # custom resources (no strategic merge patch; CR items carry kind)
    ResourceType("networking.istio.io", ["v1", "v1beta1"], "virtualservices",
                 "VirtualService", short_names=["vs"],
                 categories=["istio-io", "networking-istio-io"],
                 subresources=[_status_sub("VirtualService")],
                 builtin=False, has_generation=True, has_status=True,
                 unconditional_update=False),
    ResourceType("gateway.networking.k8s.io", ["v1", "v1beta1"], "httproutes",
                 "HTTPRoute", categories=["gateway-api"],
                 subresources=[_status_sub("HTTPRoute")],
                 builtin=False, has_generation=True, has_status=True,
                 unconditional_update=False),
    # metrics.k8s.io (aggregated API: read-only)
    ResourceType("metrics.k8s.io", ["v1beta1"], "nodes", "NodeMetrics",
                 namespaced=False, verbs=VERBS_RO),
    ResourceType("metrics.k8s.io", ["v1beta1"], "pods", "PodMetrics",
                 verbs=VERBS_RO),
]

# Group order in /apis follows a real server's priority order.
GROUP_ORDER = ["apps", "events.k8s.io", "autoscaling", "batch", "policy",
               "coordination.k8s.io", "metrics.k8s.io",
               "gateway.networking.k8s.io", "networking.istio.io"]


class Registry:
    def __init__(self, resources=None):
        self.resources = list(resources or RESOURCES)
        self.by_gvr = {}
        for r in self.resources:
            for v in r.versions:
                self.by_gvr[(r.group, v, r.plural)] = r

    def lookup(self, group, version, plural):
        return self.by_gvr.get((group, version, plural))

    def by_key(self, key):
        for r in self.resources:
            if r.key == key:
                return r
        return None

    def by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        for r in self.resources:
            if r.group == group and version in r.versions and r.kind == kind:
                return r
        return None

    def group_versions(self):
        """[(group, [versions])] for /apis, in priority order."""
        groups = {}
        for r in self.resources:
            if not r.group:
                continue
            vs = groups.setdefault(r.group, [])
            for v in r.versions:
                if v not in vs:
                    vs.append(v)
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        return sorted(groups.items(), key=lambda kv: (order.get(kv[0], 99),
                                                      kv[0]))

    # -- legacy discovery ----------------------------------------------

    def _api_resources(self, group, version):
        out = []
        for r in self.resources:
            if r.group != group or version not in r.versions:
                continue
            e = {"name": r.plural, "singularName": r.singular,
                 "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": list(r.verbs)}
            if r.short_names:
                e["shortNames"] = list(r.short_names)
            if r.categories:
                e["categories"] = list(r.categories)
            e["storageVersionHash"] = r.storage_hash()
            out.append(e)
            for s in r.subresources.values():
                se = {"name": f"{r.plural}/{s.name}", "singularName": "",
                      "namespaced": r.namespaced}
                if s.group is not None:
                    se["group"] = s.group
                    se["version"] = s.version
                se["kind"] = s.kind
                se["verbs"] = list(s.verbs)
                out.append(se)
        return out

    def api_resource_list(self, group, version):
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": gv,
                "resources": self._api_resources(group, version)}

    def api_group(self, group, versions):
        vs = [{"groupVersion": f"{group}/{v}", "version": v}
              for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    def api_group_list(self):
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self.api_group(g, vs)
                           for g, vs in self.group_versions()]}

    def has_group(self, group):
        return any(r.group == group for r in self.resources if group)

    # -- aggregated discovery (apidiscovery.k8s.io/v2) --------------------

    def _agg_version(self, group, version):
        res = []
        for r in self.resources:
            if r.group != group or version not in r.versions:
                continue
            e = {"resource": r.plural,
                 "responseKind": {"group": group, "version": version,
                                  "kind": r.kind},
                 "scope": "Namespaced" if r.namespaced else "Cluster",
                 "singularResource": r.singular,
                 "verbs": list(r.verbs)}
            if r.short_names:
                e["shortNames"] = list(r.short_names)
            if r.categories:
                e["categories"] = list(r.categories)
            subs = []
            for s in r.subresources.values():
                subs.append({"subresource": s.name,
                             "responseKind": {
                                 "group": group if s.group is None
                                 else s.group,
                                 "version": version if s.version is None
                                 else s.version,
                                 "kind": s.kind},
                             "verbs": list(s.verbs)})
            if subs:
                e["subresources"] = subs
            res.append(e)
        return {"version": version, "resources": res, "freshness": "Current"}

    def aggregated(self, legacy):
        if legacy:
            items = [{"metadata": {"creationTimestamp": None},
                      "versions": [self._agg_version("", "v1")]}]
        else:
            items = [{"metadata": {"name": g, "creationTimestamp": None},
                      "versions": [self._agg_version(g, v) for v in vs]}
                     for g, vs in self.group_versions()]
        return {"kind": "APIGroupDiscoveryList",
                "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
                "items": items}
