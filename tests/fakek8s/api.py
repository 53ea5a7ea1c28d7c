# SPDX-License-Identifier: MIT
"""Request semantics of the fake API server, independent of HTTP:
create/get/list/update/patch/delete, /scale, /status, eviction, pod logs,
the Lease and Event rules, admission-like checks. Every method raises
ApiError for a failure, which the HTTP layer turns into a Status reply.
"""

import copy
import json
import uuid

from . import k8sobj
from .k8sobj import ApiError, FieldError
from .patch import (PatchConflict, PatchMalformed, apply_json_patch,
                    apply_merge_patch, apply_strategic_merge_patch,
                    decode_json_patch, MAX_JSON_PATCH_OPS)
from .sel import (SelectorError, match_fields, match_requirements,
                        parse_field_selector, parse_label_selector,
                        selector_matches, selector_string)

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_SMP = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"

# Annotations the deployment controller manages itself (not copied from a
# Deployment to its ReplicaSets; kept from the Deployment on rollback).
DEPLOY_OWN_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)

SCALABLE = ("apps/deployments", "apps/replicasets", "apps/statefulsets")


def _events_to_v1(ev):
    """events.k8s.io/v1 Event -> core v1 Event (storage form)."""
    out = {"metadata": copy.deepcopy(ev.get("metadata") or {})}
    mapping = [("regarding", "involvedObject"), ("reason", "reason"),
               ("note", "message"), ("deprecatedSource", "source"),
               ("deprecatedFirstTimestamp", "firstTimestamp"),
               ("deprecatedLastTimestamp", "lastTimestamp"),
               ("deprecatedCount", "count"), ("type", "type"),
               ("eventTime", "eventTime"), ("series", "series"),
               ("action", "action"), ("related", "related"),
               ("reportingController", "reportingComponent"),
               ("reportingInstance", "reportingInstance")]
    for a, b in mapping:
        if a in ev:
            out[b] = copy.deepcopy(ev[a])
    out.setdefault("involvedObject", {})
    return out


def _events_from_v1(ev):
    """core v1 Event (storage form) -> events.k8s.io/v1 Event."""
    out = {"metadata": copy.deepcopy(ev.get("metadata") or {})}
    mapping = [("eventTime", "eventTime"), ("series", "series"),
               ("reportingComponent", "reportingController"),
               ("reportingInstance", "reportingInstance"),
               ("action", "action"), ("reason", "reason"),
               ("involvedObject", "regarding"), ("related", "related"),
               ("message", "note"), ("type", "type"),
               ("source", "deprecatedSource"),
               ("firstTimestamp", "deprecatedFirstTimestamp"),
               ("lastTimestamp", "deprecatedLastTimestamp"),
               ("count", "deprecatedCount")]
    for a, b in mapping:
        if a in ev:
            out[b] = copy.deepcopy(ev[a])
    out.setdefault("eventTime", None)
    return out


class Api:
    """The semantic layer. `server` gives clock, knobs, store, rng."""

    def __init__(self, server):
        self.srv = server
        self.store = server.store
        self.registry = server.registry
        self.clock = server.clock

    # -- small helpers ---------------------------------------------------

    def now(self):
        return self.clock.now()

    def uid(self):
        return str(uuid.UUID(int=self.srv.rng.getrandbits(128), version=4))

    def rand_suffix(self, n=5):
        return "".join(self.srv.rng.choice(k8sobj.SAFE_ALPHABET)
                       for _ in range(n))

    def storage_key(self, res):
        if res.key == "events.k8s.io/events":
            return "/events"
        return res.key

    def to_storage(self, res, obj):
        if res.key == "events.k8s.io/events":
            return _events_to_v1(obj)
        return obj

    def from_storage(self, res, obj):
        if res.key == "events.k8s.io/events":
            return _events_from_v1(obj)
        return obj

    def external(self, res, obj, version=None, with_kind=True):
        """The object as served at `version` (adds kind/apiVersion)."""
        o = self.from_storage(res, copy.deepcopy(obj))
        o.pop("kind", None)
        o.pop("apiVersion", None)
        if with_kind:
            o = {"kind": res.kind, "apiVersion": res.api_version(version),
                 **o}
        if res.key == "coordination.k8s.io/leases":
            spec = o.get("spec") or {}
            for f in ("acquireTime", "renewTime"):
                if spec.get(f):
                    spec[f] = k8sobj.micro(k8sobj.parse_time(spec[f]))
        return k8sobj.order_object(o)

    def get_obj(self, res, ns, name):
        return self.store.get(self.storage_key(res), ns if res.namespaced
                              else "", name)

    def require(self, res, ns, name):
        o = self.get_obj(res, ns, name)
        if o is None:
            raise k8sobj.not_found(res, name)
        return o

    def invalid(self, res, name, errs):
        return k8sobj.invalid(res.qualified_kind, res.group, res.kind, name,
                              errs)

    def ensure_namespace(self, ns):
        if not ns:
            return
        nsres = self.registry.lookup("", "v1", "namespaces")
        if self.store.get("/namespaces", "", ns) is not None:
            return
        if self.srv.strict_namespaces:
            raise k8sobj.not_found(nsres, ns)
        self.store.put("/namespaces", self.new_namespace(ns))

    def new_namespace(self, name):
        return {"metadata": {"name": name, "uid": self.uid(),
                             "creationTimestamp": k8sobj.rfc3339(self.now()),
                             "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}}

    # -- decoding bodies ---------------------------------------------------

    def decode(self, res, raw, version, what=None):
        kind = what or res.kind
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError) as e:
            raise k8sobj.bad_request(
                f"{kind} in version \"{version}\" cannot be handled as a "
                f"{kind}: {e}") from None
        if not isinstance(body, dict):
            raise k8sobj.bad_request(
                f"{kind} in version \"{version}\" cannot be handled as a "
                f"{kind}: json: cannot unmarshal {type(body).__name__} into "
                f"Go value of type struct")
        return body

    def check_kind(self, res, body, version, kind=None):
        kind = kind or res.kind
        av = body.get("apiVersion")
        expected = res.api_version(version)
        if av is not None and av != expected:
            if res.key == "events.k8s.io/events" or kind != res.kind:
                pass
            else:
                raise k8sobj.bad_request(
                    f"the API version in the data ({av}) does not match "
                    f"the expected API version ({expected})")
        k = body.get("kind")
        if k is not None and k != kind:
            raise k8sobj.bad_request(
                f"the object provided is unrecognized (must be of type "
                f"{kind}): couldn't get version/kind; json parse error")
        body.pop("kind", None)
        body.pop("apiVersion", None)

    # Fields whose JSON type a Go decoder would enforce (400 on mismatch).
    _TYPED = [("metadata", dict, "ObjectMeta", "v1.ObjectMeta"),
              ("metadata.name", str, "ObjectMeta", "string"),
              ("metadata.namespace", str, "ObjectMeta", "string"),
              ("metadata.generateName", str, "ObjectMeta", "string"),
              ("metadata.resourceVersion", str, "ObjectMeta", "string"),
              ("metadata.uid", str, "ObjectMeta", "types.UID"),
              ("metadata.labels", dict, "ObjectMeta",
               "map[string]string"),
              ("metadata.annotations", dict, "ObjectMeta",
               "map[string]string"),
              ("spec", dict, None, None),
              ("spec.replicas", int, None, "int32"),
              ("spec.paused", bool, None, "bool"),
              ("spec.minReplicas", int, None, "int32"),
              ("spec.maxReplicas", int, None, "int32"),
              ("spec.leaseDurationSeconds", int, None, "int32"),
              ("spec.leaseTransitions", int, None, "int32"),
              ("spec.holderIdentity", str, None, "string"),
              ("spec.template", dict, None, "v1.PodTemplateSpec"),
              ("spec.containers", list, None, "[]v1.Container"),
              ("spec.selector", dict, None, "v1.LabelSelector"),
              ("data", dict, None, "map[string]string")]

    @staticmethod
    def _json_kind(v):
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, (int, float)):
            return "number"
        if isinstance(v, str):
            return "string"
        if isinstance(v, list):
            return "array"
        return "object"

    def check_types(self, res, body, version):
        """Decode-time checks (400 in the real server): JSON types of the
        common fields, string maps, MicroTime fields."""
        def fail(path, v, gotype, owner=None):
            owner = owner or res.kind
            raise k8sobj.bad_request(
                f'{res.kind} in version "{version}" cannot be handled as a '
                f'{res.kind}: json: cannot unmarshal {self._json_kind(v)} '
                f'into Go struct field {owner}.{path} of type {gotype}')
        for path, typ, owner, gotype in self._TYPED:
            cur = body
            for part in path.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            if cur is None:
                continue
            if typ is int and (isinstance(cur, bool) or
                               not isinstance(cur, int)):
                fail(path, cur, gotype, owner)
            if typ is not int and not isinstance(cur, typ):
                fail(path, cur, gotype or typ.__name__, owner)
            if gotype == "map[string]string":
                for k, v in cur.items():
                    if not isinstance(v, str):
                        fail(path, v, "string", owner)
        if res.key == "coordination.k8s.io/leases":
            spec = body.get("spec") or {}
            for f in ("acquireTime", "renewTime"):
                err = k8sobj.check_micro(spec.get(f))
                if err:
                    raise k8sobj.bad_request(
                        f'Lease in version "{version}" cannot be handled '
                        f'as a Lease: {err}')
        if res.key == "/configmaps":
            for f in ("data", "binaryData"):
                for k, v in (body.get(f) or {}).items():
                    if not isinstance(v, str):
                        t = {bool: "bool", int: "number", float: "number",
                             dict: "object", list: "array"}.get(
                                 type(v), type(v).__name__)
                        if v is None:
                            continue
                        raise k8sobj.bad_request(
                            f'ConfigMap in version "{version}" cannot be '
                            f'handled as a ConfigMap: json: cannot '
                            f'unmarshal {t} into Go struct field '
                            f'ConfigMap.{f} of type string')
        if res.key in ("events.k8s.io/events", "/events"):
            err = k8sobj.check_micro(body.get("eventTime"))
            if err:
                raise k8sobj.bad_request(
                    f'Event in version "{version}" cannot be handled as '
                    f'an Event: {err}')

    # -- admission ---------------------------------------------------------

    def admit(self, res, obj, old=None):
        """Validation (422) and webhook-like checks for a write."""
        name = obj["metadata"].get("name", "")
        errs = [] if res.key == "events.k8s.io/events" else \
            k8sobj.validate(res.key, obj, old)
        if old is None and name:
            errs = k8sobj.validate_name(name) + errs
        if res.key == "/events":
            io = obj.get("involvedObject") or {}
            ns = obj["metadata"].get("namespace")
            if io.get("namespace") and io["namespace"] != ns:
                errs.append(FieldError("FieldValueInvalid",
                                       "involvedObject.namespace",
                                       io["namespace"],
                                       "does not match event.namespace"))
        if errs:
            raise self.invalid(res, name, errs)
        if res.key == "networking.istio.io/virtualservices":
            self.istio_check(obj)

    def istio_check(self, obj):
        mode = self.srv.knobs.get("istio_validation", "none")
        if mode == "none":
            return
        problems = []
        for route in (obj.get("spec") or {}).get("http") or []:
            dests = route.get("route") or []
            weights = [d.get("weight", 0) or 0 for d in dests]
            for w in weights:
                if w < 0:
                    problems.append(f"weight {w} < 0")
            total = sum(weights)
            if mode == "legacy" and len(dests) > 1 and total != 100:
                problems.append(f"total destination weight {total} != 100")
            if mode == "modern" and len(dests) > 1 and total == 0:
                problems.append("total destination weight = 0")
        if problems:
            raise ApiError(400, "", 'admission webhook "validation.istio.io"'
                           ' denied the request: configuration is invalid: '
                           + "; ".join(problems))

    # -- create ----------------------------------------------------------

    def create(self, res, ns, body, version, dry_run=False):
        self.check_kind(res, body, version)
        self.check_types(res, body, version)
        md = body.get("metadata")
        if md is None:
            md = body["metadata"] = {}
        if not isinstance(md, dict):
            raise k8sobj.bad_request("metadata must be an object")
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise k8sobj.bad_request(
                    "the namespace of the provided object does not match "
                    "the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + self.rand_suffix()
            else:
                raise self.invalid(res, "", [FieldError(
                    "FieldValueRequired", "metadata.name", None,
                    "name or generateName is required")])
        if md.get("resourceVersion"):
            raise k8sobj.internal_error(
                "resourceVersion should not be set on objects to be created")
        if res.key == "events.k8s.io/events":
            errs = k8sobj.validate(res.key, body)
            if errs:
                raise self.invalid(res, md["name"], errs)
        obj = self.to_storage(res, body)
        if res.namespaced:
            self.ensure_namespace(ns)
        if self.get_obj(res, ns, md["name"]) is not None:
            raise k8sobj.already_exists(res, md["name"])
        obj = self.prepare_create(res, obj)
        self.admit(res, obj)
        if dry_run:
            return self.external(res, obj, version)
        stored = self.store.put(self.storage_key(res), obj)
        return self.external(res, stored, version)

    def prepare_create(self, res, obj, keep_status=False):
        md = obj["metadata"]
        md["uid"] = md.get("uid") if keep_status and md.get("uid") \
            else self.uid()
        if not (keep_status and md.get("creationTimestamp")):
            md["creationTimestamp"] = k8sobj.rfc3339(self.now())
        if not keep_status:
            md.pop("deletionTimestamp", None)
            md.pop("deletionGracePeriodSeconds", None)
        if res.has_generation:
            if not (keep_status and md.get("generation")):
                md["generation"] = 1
        else:
            md.pop("generation", None)
        if res.has_status and not keep_status and res.key != "/pods":
            obj.pop("status", None)
        if res.key == "/pods" and not keep_status:
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        if res.key == "/namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
            md.setdefault("labels", {})[
                "kubernetes.io/metadata.name"] = md["name"]
        obj = k8sobj.apply_defaults(res.key, obj)
        self.quantities(res, obj)
        if res.key == "batch/jobs":
            self._job_selector(obj)
        return k8sobj.order_object(obj)

    def quantities(self, res, obj):
        from .quantity import QuantityError
        try:
            k8sobj.canonicalize_quantities(res.key, obj)
        except QuantityError as e:
            raise k8sobj.bad_request(
                f'{res.kind} in version "{res.versions[0]}" cannot be '
                f'handled as a {res.kind}: {e}') from None

    def _job_selector(self, obj):
        uid = obj["metadata"]["uid"]
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not isinstance(
                spec.get("template"), dict):
            return
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {
                "batch.kubernetes.io/controller-uid": uid}}
            labels = spec["template"].setdefault("metadata", {}) \
                .setdefault("labels", {})
            name = obj["metadata"]["name"]
            labels.update({"batch.kubernetes.io/controller-uid": uid,
                           "batch.kubernetes.io/job-name": name,
                           "controller-uid": uid, "job-name": name})

    # -- read ------------------------------------------------------------

    def get(self, res, ns, name, version):
        return self.external(res, self.require(res, ns, name), version)

    def list(self, res, ns, version, query):
        label_reqs, field_reqs = self.selectors(res, query)
        items, rv = self.store.list(self.storage_key(res),
                                    ns if res.namespaced else None)
        out = []
        for o in items:
            if not match_requirements(label_reqs,
                                      o["metadata"].get("labels")):
                continue
            if not match_fields(field_reqs, self.from_storage(res, o)):
                continue
            out.append(self.external(res, o, version,
                                     with_kind=not res.builtin))
        meta = {"resourceVersion": rv}
        limit = query.get("limit")
        cont = query.get("continue")
        start = 0
        if cont:
            try:
                tok = json.loads(bytes.fromhex(cont).decode())
                start = int(tok["start"])
                meta["resourceVersion"] = tok["rv"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest",
                               "continue key is not valid: incorrect "
                               "encoded start resourceVersion (version "
                               "meta.k8s.io/v1)") from None
        if limit:
            try:
                n = int(limit)
            except ValueError:
                n = 0
            if n > 0 and len(out) - start > n:
                meta["continue"] = json.dumps(
                    {"rv": meta["resourceVersion"],
                     "start": start + n}).encode().hex()
                meta["remainingItemCount"] = len(out) - start - n
                out = out[start:start + n]
            else:
                out = out[start:]
        else:
            out = out[start:]
        return {"kind": res.list_kind, "apiVersion": res.api_version(version),
                "metadata": meta, "items": out}

    def selectors(self, res, query):
        try:
            label_reqs = parse_label_selector(query.get("labelSelector"))
        except SelectorError as e:
            raise k8sobj.bad_request(str(e)) from None
        try:
            field_reqs = parse_field_selector(query.get("fieldSelector"))
        except SelectorError as e:
            raise k8sobj.bad_request(str(e)) from None
        allowed = {"metadata.name", "metadata.namespace"} | \
            set(res.field_labels)
        for f, _, _ in field_reqs:
            if f == "spec.host" and res.key == "/pods":
                continue
            if f not in allowed:
                if res.field_error == "pods":
                    raise k8sobj.bad_request(
                        f"field label not supported: {f}")
                raise k8sobj.bad_request(
                    f'"{f}" is not a known field selector: only '
                    '"metadata.name", "metadata.namespace"')
        field_reqs = [("spec.nodeName" if f == "spec.host" else f, op, v)
                      for f, op, v in field_reqs]
        return label_reqs, field_reqs

    # -- update ------------------------------------------------------------

    def update(self, res, ns, name, body, version, sub=None, dry_run=False,
               check_kind=True, internal=False):
        """PUT semantics. `sub` is None or "status"."""
        if check_kind:
            self.check_kind(res, body, version)
            self.check_types(res, body, version)
        md = body.get("metadata")
        if not isinstance(md, dict):
            md = body["metadata"] = {}
        if md.get("name") and md["name"] != name:
            raise k8sobj.bad_request(
                f"the name of the object ({md['name']}) does not match the "
                f"name on the URL ({name})")
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise k8sobj.bad_request(
                    "the namespace of the provided object does not match "
                    "the namespace sent on the request")
            md["namespace"] = ns
        md["name"] = name
        cur = self.get_obj(res, ns, name)
        if cur is None:
            raise k8sobj.not_found(res, name)
        body = self.to_storage(res, body)
        md = body["metadata"]
        rv = md.get("resourceVersion")
        if not rv:
            if not res.unconditional_update and not internal:
                raise self.invalid(res, name, [FieldError(
                    "FieldValueInvalid", "metadata.resourceVersion",
                    k8sobj.RawGo("0x0"), "must be specified for an update")])
        elif rv != cur["metadata"]["resourceVersion"]:
            raise k8sobj.conflict(res, name)
        new = self.merge_update(res, cur, body, sub)
        if sub is None:
            self.admit(res, new, cur)
        if self.same(cur, new):
            return self.external(res, cur, version)
        if dry_run:
            return self.external(res, new, version)
        stored = self.store.put(self.storage_key(res), new)
        self.after_write(res, stored, cur)
        return self.external(res, stored, version)

    @staticmethod
    def same(a, b):
        a = copy.deepcopy(a)
        b = copy.deepcopy(b)
        a["metadata"].pop("resourceVersion", None)
        b["metadata"].pop("resourceVersion", None)
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    def merge_update(self, res, cur, body, sub):
        """The object a write of `body` over `cur` stores."""
        cmd = cur["metadata"]
        if sub == "status":
            new = copy.deepcopy(cur)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
            k8sobj.wire_normalize(res.key, new)
            self.quantities(res, new)
            return k8sobj.order_object(new)
        new = copy.deepcopy(body)
        md = new["metadata"]
        for f in ("uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if f in cmd:
                md[f] = cmd[f]
            else:
                md.pop(f, None)
        md["resourceVersion"] = cmd["resourceVersion"]
        if res.has_status:
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            else:
                new.pop("status", None)
        if res.key == "/pods":
            new["status"] = copy.deepcopy(cur.get("status", {}))
        new = k8sobj.apply_defaults(res.key, new)
        self.quantities(res, new)
        if res.has_generation:
            bump = False
            if res.builtin:
                bump = new.get("spec") != cur.get("spec")
                if res.key == "apps/deployments" and \
                        md.get("annotations") != cmd.get("annotations"):
                    bump = True
            else:
                strip = [{k: v for k, v in o.items()
                          if k not in ("metadata", "status")}
                         for o in (new, cur)]
                bump = strip[0] != strip[1]
            if bump:
                md["generation"] = cmd.get("generation", 1) + 1
        return k8sobj.order_object(new)

    def after_write(self, res, new, old):
        """Completes deletions held by finalizers."""
        md = new["metadata"]
        if md.get("deletionTimestamp") and not md.get("finalizers") and \
                res.key != "/pods":
            self.store.remove(self.storage_key(res), md.get("namespace", ""),
                              md["name"])

    # -- patch -----------------------------------------------------------

    def patch_types(self, res):
        if res.builtin:
            return [PATCH_JSON, PATCH_MERGE, PATCH_SMP, PATCH_APPLY]
        return [PATCH_JSON, PATCH_MERGE, PATCH_APPLY]

    def patch(self, res, ns, name, ctype, raw, version, query, sub=None,
              dry_run=False):
        """PATCH semantics; returns (code, object)."""
        ptype = (ctype or "").split(";")[0].strip().lower()
        accepted = self.patch_types(res)
        if ptype not in accepted:
            raise k8sobj.unsupported_media_type(accepted)
        if ptype == PATCH_APPLY and not query.get("fieldManager"):
            raise k8sobj.invalid("PatchOptions.meta.k8s.io", "meta.k8s.io",
                                 "PatchOptions", "", [FieldError(
                                     "FieldValueRequired", "fieldManager",
                                     None, "is required for apply patch")])
        if "force" in query and ptype != PATCH_APPLY:
            raise k8sobj.invalid("PatchOptions.meta.k8s.io", "meta.k8s.io",
                                 "PatchOptions", "", [FieldError(
                                     "FieldValueForbidden", "force", None,
                                     "may not be specified for non-apply "
                                     "patch")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise k8sobj.bad_request("invalid UTF-8 in patch") from None
        cur = self.get_obj(res, ns, name)
        if sub == "scale":
            if cur is None:
                raise k8sobj.not_found(res, name)
            scale = self.scale_of(res, cur)
            patched = self._apply_patch(res, ptype, text, scale, name,
                                        builtin=True)
            return 200, self.update_scale(res, ns, name, patched,
                                          check_kind=False, dry_run=dry_run)
        if cur is None:
            if ptype == PATCH_APPLY:
                obj = self._parse_apply(text)
                self.check_types(res, obj, version)
                obj.setdefault("metadata", {})
                if obj["metadata"] is None:
                    obj["metadata"] = {}
                obj["metadata"]["name"] = name
                return 201, self.create(res, ns, obj, version,
                                        dry_run=dry_run)
            raise k8sobj.not_found(res, name)
        doc = self.external(res, cur, version)
        patched = self._apply_patch(res, ptype, text, doc, name,
                                    builtin=res.builtin)
        if not isinstance(patched, dict):
            raise k8sobj.bad_request("patched object is not an object")
        pmd = patched.get("metadata")
        if not isinstance(pmd, dict):
            pmd = patched["metadata"] = {}
        if not pmd.get("resourceVersion"):
            pmd["resourceVersion"] = cur["metadata"]["resourceVersion"]
        patched["kind"] = res.kind
        patched["apiVersion"] = res.api_version(version)
        self.check_kind(res, patched, version)
        self.check_types(res, patched, version)
        return 200, self.update(res, ns, name, patched, version, sub=sub,
                                dry_run=dry_run, check_kind=False,
                                internal=True)

    def _parse_apply(self, text):
        try:
            obj = json.loads(text)
        except ValueError:
            from .miniyaml import load as yaml_load, YamlError
            try:
                obj = yaml_load(text)
            except YamlError as e:
                raise k8sobj.bad_request(
                    f"error decoding YAML: {e}") from None
        if not isinstance(obj, dict):
            raise k8sobj.bad_request("apply patch must be an object")
        return obj

    def _apply_patch(self, res, ptype, text, doc, name, builtin):
        try:
            if ptype == PATCH_JSON:
                ops = decode_json_patch(text)
                if len(ops) > MAX_JSON_PATCH_OPS:
                    raise ApiError(
                        413, "RequestEntityTooLarge",
                        "Request entity too large: The allowed maximum "
                        f"operations in a JSON patch is {MAX_JSON_PATCH_OPS}"
                        f", got {len(ops)}")
                return apply_json_patch(doc, ops)
            try:
                patch = json.loads(text)
            except ValueError as e:
                if ptype == PATCH_APPLY:
                    patch = self._parse_apply(text)
                else:
                    raise PatchMalformed(str(e)) from None
            if ptype == PATCH_MERGE:
                if not isinstance(patch, dict):
                    raise PatchMalformed("Invalid JSON Patch")
                return apply_merge_patch(doc, patch)
            if ptype == PATCH_SMP:
                return apply_strategic_merge_patch(doc, patch)
            # server-side apply: field ownership is not modelled; the
            # applied configuration is merged into the live object.
            if not isinstance(patch, dict):
                raise PatchMalformed("apply patch must be an object")
            patch.pop("status", None)
            return apply_merge_patch(doc, patch)
        except PatchConflict:
            raise ApiError(422, "Invalid", "the server rejected our request "
                           "due to an error in our request", {}) from None
        except PatchMalformed as e:
            raise k8sobj.bad_request(str(e)) from None

    # -- delete ------------------------------------------------------------

    def delete(self, res, ns, name, opts, version, dry_run=False):
        """DELETE semantics; returns the reply object."""
        cur = self.require(res, ns, name)
        md = cur["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise k8sobj.conflict(
                res, name, f"Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {md.get('uid')}")
        if pre.get("resourceVersion") and \
                pre["resourceVersion"] != md.get("resourceVersion"):
            raise k8sobj.conflict(
                res, name, "Precondition failed: ResourceVersion in "
                f"precondition: {pre['resourceVersion']}, ResourceVersion "
                f"in object meta: {md.get('resourceVersion')}")
        key = self.storage_key(res)
        if res.key == "/pods":
            return self.delete_pod(res, cur, opts, version, dry_run)
        policy = opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True:
            policy = "Orphan"
        if md.get("finalizers"):
            if not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = k8sobj.rfc3339(self.now())
                md["deletionGracePeriodSeconds"] = 0
                if not dry_run:
                    cur = self.store.put(key, cur)
            return self.external(res, cur, version)
        if not dry_run:
            if policy == "Orphan":
                self.orphan_dependents(md.get("uid"))
            self.store.remove(key, ns if res.namespaced else "", name)
        d = {"name": name}
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
        d["uid"] = md.get("uid")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "details": d}

    def orphan_dependents(self, uid):
        for key in self.store.keys():
            items, _ = self.store.list(key)
            for o in items:
                refs = o["metadata"].get("ownerReferences") or []
                keep = [r for r in refs if r.get("uid") != uid]
                if len(keep) != len(refs):
                    if keep:
                        o["metadata"]["ownerReferences"] = keep
                    else:
                        o["metadata"].pop("ownerReferences")
                    self.store.put(key, o)

    def delete_pod(self, res, pod, opts, version, dry_run=False):
        md = pod["metadata"]
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        now = self.now()
        if grace <= 0 and not md.get("finalizers"):
            md.setdefault("deletionTimestamp", k8sobj.rfc3339(now))
            md["deletionGracePeriodSeconds"] = 0
            if dry_run:
                return self.external(res, pod, version)
            gone = self.store.remove("/pods", md["namespace"], md["name"])
            gone["metadata"]["deletionTimestamp"] = md["deletionTimestamp"]
            gone["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.external(res, gone, version)
        if md.get("deletionTimestamp"):
            left = k8sobj.parse_time(md["deletionTimestamp"]) - now
            if grace < left:
                md["deletionTimestamp"] = k8sobj.rfc3339(now + grace)
                md["deletionGracePeriodSeconds"] = grace
                if not dry_run:
                    pod = self.store.put("/pods", pod)
            return self.external(res, pod, version)
        md["deletionTimestamp"] = k8sobj.rfc3339(now + grace)
        md["deletionGracePeriodSeconds"] = grace
        if dry_run:
            return self.external(res, pod, version)
        stored = self.store.put("/pods", k8sobj.order_object(pod))
        self.srv.note_pod_terminating(stored)
        return self.external(res, stored, version)

    def delete_collection(self, res, ns, query, opts, version, dry_run):
        label_reqs, field_reqs = self.selectors(res, query)
        items, rv = self.store.list(self.storage_key(res),
                                    ns if res.namespaced else None)
        out = []
        for o in items:
            if not match_requirements(label_reqs,
                                      o["metadata"].get("labels")):
                continue
            if not match_fields(field_reqs, o):
                continue
            r = self.delete(res, o["metadata"].get("namespace", ""),
                            o["metadata"]["name"], opts, version, dry_run)
            if r.get("kind") != "Status":
                r.pop("kind", None)
                r.pop("apiVersion", None)
                out.append(r)
            else:
                out.append(self.external(res, o, version, with_kind=False))
        return {"kind": res.list_kind, "apiVersion": res.api_version(version),
                "metadata": {"resourceVersion": self.store.current_rv()},
                "items": out}

    # -- scale subresource -------------------------------------------------

    def scale_of(self, res, obj):
        md = obj["metadata"]
        spec = obj.get("spec") or {}
        replicas = spec.get("replicas", 1)
        status = obj.get("status") or {}
        s = {"kind": "Scale", "apiVersion": "autoscaling/v1",
             "metadata": {"name": md["name"], "namespace": md["namespace"],
                          "uid": md["uid"],
                          "resourceVersion": md["resourceVersion"],
                          "creationTimestamp": md["creationTimestamp"]},
             "spec": {"replicas": replicas} if replicas else {},
             "status": {"replicas": status.get("replicas", 0)}}
        sel = selector_string(spec.get("selector"))
        if sel:
            s["status"]["selector"] = sel
        return s

    def get_scale(self, res, ns, name):
        return self.scale_of(res, self.require(res, ns, name))

    def update_scale(self, res, ns, name, body, check_kind=True,
                     dry_run=False):
        if check_kind:
            if body.get("kind") not in (None, "Scale"):
                raise k8sobj.bad_request(
                    "the object provided is unrecognized (must be of type "
                    "Scale)")
        cur = self.require(res, ns, name)
        md = body.get("metadata") or {}
        if md.get("name") and md["name"] != name:
            raise k8sobj.bad_request(
                f"the name of the object ({md['name']}) does not match the "
                f"name on the URL ({name})")
        rv = md.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise k8sobj.conflict(res, name)
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise k8sobj.bad_request("Scale in version \"v1\" cannot be "
                                     "handled as a Scale: spec.replicas: "
                                     "expected int32")
        if replicas < 0:
            raise k8sobj.invalid("Scale.autoscaling", "autoscaling", "Scale",
                                 name, [FieldError(
                                     "FieldValueInvalid", "spec.replicas",
                                     replicas, "must be greater than or "
                                     "equal to 0")])
        new = copy.deepcopy(cur)
        new["spec"]["replicas"] = replicas
        if new["spec"] != cur["spec"]:
            new["metadata"]["generation"] = \
                cur["metadata"].get("generation", 1) + 1
            if not dry_run:
                new = self.store.put(res.key, new)
        return self.scale_of(res, new)

    # -- eviction ----------------------------------------------------------

    def evict(self, ns, name, body, version, query):
        podres = self.registry.lookup("", "v1", "pods")
        if body.get("kind") not in (None, "Eviction") or \
                body.get("apiVersion") not in (None, "policy/v1",
                                               "policy/v1beta1"):
            raise k8sobj.bad_request(
                f"the API version in the data ({body.get('apiVersion')}) "
                "does not match the expected API version (policy/v1)")
        if (body.get("metadata") or {}).get("name") != name:
            raise k8sobj.bad_request("name in URL does not match name in "
                                     "Eviction object")
        opts = body.get("deleteOptions") or {}
        dry = "All" in (opts.get("dryRun") or []) or \
            query.get("dryRun") == "All"
        pod = self.require(podres, ns, name)
        phase = (pod.get("status") or {}).get("phase")
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        ok = {"kind": "Status", "apiVersion": "v1", "metadata": {},
              "status": "Success", "code": 201}
        if phase in ("Pending", "Succeeded", "Failed") or terminating:
            self.delete(podres, ns, name, opts, version, dry_run=dry)
            return ok
        pdbs = []
        items, _ = self.store.list("policy/poddisruptionbudgets", ns)
        for pdb in items:
            sel = (pdb.get("spec") or {}).get("selector")
            if not sel or not (sel.get("matchLabels") or
                               sel.get("matchExpressions")):
                continue
            if selector_matches(sel, pod["metadata"].get("labels")):
                pdbs.append(pdb)
        if len(pdbs) > 1:
            raise ApiError(500, "", "This pod has more than one "
                           "PodDisruptionBudget, which the eviction "
                           "subresource does not support.")
        if pdbs:
            pdb = pdbs[0]
            st = pdb.get("status") or {}
            pname = pdb["metadata"]["name"]
            ready = self.srv.pod_ready(pod)
            legacy = self.srv.knobs.get("unready_eviction") == "legacy"
            policy = (pdb.get("spec") or {}).get(
                "unhealthyPodEvictionPolicy")
            skip = False
            if not ready and not legacy:
                if policy == "AlwaysAllow":
                    skip = True
                elif st.get("currentHealthy", 0) >= \
                        st.get("desiredHealthy", 0) and \
                        st.get("desiredHealthy", 0) > 0:
                    skip = True
            if not skip:
                if st.get("observedGeneration", 0) < \
                        pdb["metadata"].get("generation", 1):
                    raise k8sobj.too_many_requests(
                        "Cannot evict pod as it would violate the pod's "
                        "disruption budget.", 10,
                        [{"reason": "DisruptionBudget",
                          "message": f"The disruption budget {pname} is "
                                     "still being processed by the "
                                     "server."}])
                allowed = st.get("disruptionsAllowed", 0)
                if allowed < 0:
                    raise k8sobj.forbidden(
                        "poddisruptionbudget.policy", "policy",
                        "poddisruptionbudget", pname,
                        "pdb disruptions allowed is negative")
                if allowed == 0:
                    raise k8sobj.too_many_requests(
                        "Cannot evict pod as it would violate the pod's "
                        "disruption budget.", 0,
                        [{"reason": "DisruptionBudget",
                          "message": f"The disruption budget {pname} needs "
                                     f"{st.get('desiredHealthy', 0)} "
                                     "healthy pods and has "
                                     f"{st.get('currentHealthy', 0)} "
                                     "currently"}])
                if not dry:
                    st["disruptionsAllowed"] = allowed - 1
                    st.setdefault("disruptedPods", {})[name] = \
                        k8sobj.rfc3339(self.now())
                    if st["disruptionsAllowed"] == 0:
                        self.srv.set_condition(
                            st, "DisruptionAllowed", "False",
                            "InsufficientPods", "",
                            observed=pdb["metadata"].get("generation"))
                    pdb["status"] = st
                    self.store.put("policy/poddisruptionbudgets", pdb)
        self.delete(podres, ns, name, opts, version, dry_run=dry)
        return ok

    # -- pod log -----------------------------------------------------------

    def pod_log(self, ns, name, query):
        podres = self.registry.lookup("", "v1", "pods")
        pod = self.require(podres, ns, name)
        containers = [c.get("name") for c in
                      (pod.get("spec") or {}).get("containers") or []]
        c = query.get("container")
        if not c:
            if len(containers) != 1:
                raise k8sobj.bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]")
            c = containers[0]
        elif c not in containers:
            raise k8sobj.bad_request(
                f"container {c} is not valid for pod {name}")
        if query.get("previous") in ("true", "1"):
            restarts = 0
            for cs in (pod.get("status") or {}).get("containerStatuses") \
                    or []:
                if cs.get("name") == c:
                    restarts = cs.get("restartCount", 0)
            if not restarts:
                raise k8sobj.bad_request(
                    f'previous terminated container "{c}" in pod "{name}" '
                    "not found")
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Pending":
            raise k8sobj.bad_request(
                f'container "{c}" in pod "{name}" is waiting to start: '
                "ContainerCreating")
        logs = self.srv.knobs.get("pod_logs", {})
        text = logs.get(f"{ns}/{name}/{c}")
        if text is None:
            text = logs.get(f"{ns}/{name}")
        if text is None:
            text = "".join(f"fake log line {i} from {ns}/{name}/{c}\n"
                           for i in range(1, 11))
        lines = text.splitlines(keepends=True)
        tail = query.get("tailLines")
        if tail is not None:
            try:
                n = int(tail)
                lines = lines[-n:] if n > 0 else []
            except ValueError:
                raise k8sobj.bad_request("tailLines must be an integer") \
                    from None
        out = "".join(lines)
        lb = query.get("limitBytes")
        if lb is not None:
            try:
                out = out.encode()[:int(lb)].decode("utf-8", "ignore")
            except ValueError:
                pass
        return out
