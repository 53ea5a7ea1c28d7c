# SPDX-License-Identifier: MIT
"""Object helpers: time formats, defaulting, pod-template hashing,
validation and the error objects (Status) the server answers with."""

import calendar
import copy
import json
import re
import time

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ---------------------------------------------------------------------------
# time

def rfc3339(t):
    """metav1.Time: whole seconds, UTC, `Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def micro(t):
    """metav1.MicroTime: exactly six fractional digits."""
    us = int(round((t - int(t)) * 1e6))
    sec = int(t)
    if us >= 1000000:
        sec, us = sec + 1, us - 1000000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + \
        f".{us:06d}Z"


_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})"
                      r"(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def parse_time(s):
    """RFC 3339 (any fraction, any offset) -> epoch float. ValueError."""
    m = _TIME_RE.fullmatch(s or "")
    if not m:
        raise ValueError(f"bad time {s!r}")
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    t = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) + frac
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t


_MICRO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}"
                       r"(Z|[+-]\d{2}:\d{2})")


def check_micro(s):
    """None if `s` parses as metav1.MicroTime (layout
    2006-01-02T15:04:05.000000Z07:00), else Go's parse error text."""
    if s is None:
        return None
    if not isinstance(s, str):
        return f"json: cannot unmarshal {type(s).__name__} into Go value " \
               "of type string"
    if _MICRO_RE.fullmatch(s):
        return None
    m = re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", s)
    layout = "2006-01-02T15:04:05.000000Z07:00"
    if not m:
        return f'parsing time "{s}" as "{layout}": cannot parse "{s}" as ' \
               '"2006"'
    rest = s[m.end():]
    if not rest.startswith("."):
        return f'parsing time "{s}" as "{layout}": cannot parse "{rest}" ' \
               'as ".000000"'
    return f'parsing time "{s}" as "{layout}": cannot parse "{rest[7:]}" ' \
           'as "Z07:00"'


class Clock:
    """Wall clock with an offset, so a fixture can say what "now" is."""

    def __init__(self, now=None):
        self.offset = 0.0
        if now is not None:
            self.set(now)

    def set(self, now):
        t = parse_time(now) if isinstance(now, str) else float(now)
        self.offset = t - time.time()

    def now(self):
        return time.time() + self.offset


# ---------------------------------------------------------------------------
# ordering helpers (output looks like the Go structs' field order)

META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid",
              "resourceVersion", "generation", "creationTimestamp",
              "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
              "annotations", "ownerReferences", "finalizers",
              "managedFields"]
CONTAINER_ORDER = ["name", "image", "command", "args", "workingDir", "ports",
                   "envFrom", "env", "resources", "resizePolicy",
                   "restartPolicy", "volumeMounts", "volumeDevices",
                   "livenessProbe", "readinessProbe", "startupProbe",
                   "lifecycle", "terminationMessagePath",
                   "terminationMessagePolicy", "imagePullPolicy",
                   "securityContext", "stdin", "stdinOnce", "tty"]
POD_SPEC_ORDER = ["volumes", "initContainers", "containers",
                  "ephemeralContainers", "restartPolicy",
                  "terminationGracePeriodSeconds", "activeDeadlineSeconds",
                  "dnsPolicy", "nodeSelector", "serviceAccountName",
                  "serviceAccount", "automountServiceAccountToken",
                  "nodeName", "hostNetwork", "hostPID", "hostIPC",
                  "shareProcessNamespace", "securityContext",
                  "imagePullSecrets", "hostname", "subdomain", "affinity",
                  "schedulerName", "tolerations", "hostAliases",
                  "priorityClassName", "priority", "dnsConfig",
                  "readinessGates", "runtimeClassName", "enableServiceLinks",
                  "preemptionPolicy", "overhead",
                  "topologySpreadConstraints"]
TOP_ORDER = ["kind", "apiVersion", "metadata", "spec", "status"]


def ordered(d, order):
    if not isinstance(d, dict):
        return d
    out = {k: d[k] for k in order if k in d}
    for k, v in d.items():
        if k not in out:
            out[k] = v
    return out


def order_object(obj):
    obj = ordered(obj, TOP_ORDER)
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"] = ordered(obj["metadata"], META_ORDER)
    return obj


# ---------------------------------------------------------------------------
# defaulting (what the real API server fills in on create/update)

def _default_container(c):
    if not isinstance(c, dict):
        return c
    img = c.get("image", "")
    if "imagePullPolicy" not in c:
        last = img.rsplit("/", 1)[-1]
        tagged = ":" in last and not last.endswith(":latest")
        c["imagePullPolicy"] = ("IfNotPresent" if tagged or "@" in img
                                else "Always")
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    return ordered(c, CONTAINER_ORDER)


def default_pod_spec(spec, template=True):
    if not isinstance(spec, dict):
        return spec
    for key in ("containers", "initContainers"):
        if isinstance(spec.get(key), list):
            spec[key] = [_default_container(c) for c in spec[key]]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if not template:
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("tolerations", [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300}])
        spec.setdefault("priority", 0)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    return ordered(spec, POD_SPEC_ORDER)


def default_template(tmpl):
    if not isinstance(tmpl, dict):
        return tmpl
    md = tmpl.setdefault("metadata", {})
    if isinstance(md, dict):
        md.setdefault("creationTimestamp", None)
        tmpl["metadata"] = ordered(md, ["name", "namespace",
                                        "creationTimestamp", "labels",
                                        "annotations"])
    if isinstance(tmpl.get("spec"), dict):
        tmpl["spec"] = default_pod_spec(tmpl["spec"], template=True)
    return ordered(tmpl, ["metadata", "spec"])


# int32 status fields that are `omitempty` in the Go types: a zero never
# appears on the wire.
_OMIT_ZERO = {
    "apps/deployments": ("observedGeneration", "replicas", "updatedReplicas",
                         "readyReplicas", "availableReplicas",
                         "unavailableReplicas", "terminatingReplicas",
                         "collisionCount"),
    "apps/replicasets": ("fullyLabeledReplicas", "readyReplicas",
                         "availableReplicas", "observedGeneration",
                         "terminatingReplicas"),
    "apps/statefulsets": ("observedGeneration", "readyReplicas",
                          "currentReplicas", "updatedReplicas"),
    "autoscaling/horizontalpodautoscalers": ("observedGeneration",
                                             "currentReplicas"),
    "batch/jobs": ("active", "succeeded", "failed"),
}


def wire_normalize(res_key, obj):
    """Drops what Go's JSON encoding would omit (zero omitempty ints)."""
    st = obj.get("status")
    if isinstance(st, dict):
        for f in _OMIT_ZERO.get(res_key, ()):
            if st.get(f) == 0:
                del st[f]
    return obj


def apply_defaults(res_key, obj):
    """Fills in the defaults the API server adds for `res_key` kinds."""
    wire_normalize(res_key, obj)
    spec = obj.get("spec")
    if res_key == "/pods" and isinstance(spec, dict):
        obj["spec"] = default_pod_spec(spec, template=False)
        st = obj.setdefault("status", {})
        if isinstance(st, dict):
            st.setdefault("phase", "Pending")
            st.setdefault("qosClass", "BestEffort")
    if not isinstance(spec, dict):
        return obj
    if isinstance(spec.get("template"), dict):
        spec["template"] = default_template(spec["template"])
    if res_key == "apps/deployments":
        spec.setdefault("replicas", 1)
        st = spec.setdefault("strategy", {})
        if isinstance(st, dict):
            st.setdefault("type", "RollingUpdate")
            if st["type"] == "RollingUpdate":
                ru = st.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        obj["spec"] = ordered(spec, ["replicas", "selector", "template",
                                     "strategy", "minReadySeconds",
                                     "revisionHistoryLimit", "paused",
                                     "progressDeadlineSeconds"])
    elif res_key == "apps/replicasets":
        spec.setdefault("replicas", 1)
        obj["spec"] = ordered(spec, ["replicas", "minReadySeconds",
                                     "selector", "template"])
    elif res_key == "apps/statefulsets":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {})
        if isinstance(us, dict):
            us.setdefault("type", "RollingUpdate")
            if us["type"] == "RollingUpdate":
                us.setdefault("rollingUpdate", {"partition": 0})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
        spec.setdefault("serviceName", "")
    elif res_key == "apps/daemonsets":
        us = spec.setdefault("updateStrategy", {})
        if isinstance(us, dict):
            us.setdefault("type", "RollingUpdate")
            if us["type"] == "RollingUpdate":
                us.setdefault("rollingUpdate", {"maxUnavailable": 1,
                                                "maxSurge": 0})
        spec.setdefault("revisionHistoryLimit", 10)
    elif res_key == "batch/jobs":
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    elif res_key == "autoscaling/horizontalpodautoscalers":
        spec.setdefault("minReplicas", 1)
    elif res_key == "gateway.networking.k8s.io/httproutes":
        for pr in spec.get("parentRefs") or []:
            if isinstance(pr, dict):
                pr.setdefault("group", "gateway.networking.k8s.io")
                pr.setdefault("kind", "Gateway")
        for rule in spec.get("rules") or []:
            if not isinstance(rule, dict):
                continue
            rule.setdefault("matches", [{"path": {"type": "PathPrefix",
                                                  "value": "/"}}])
            for br in rule.get("backendRefs") or []:
                if isinstance(br, dict):
                    br.setdefault("group", "")
                    br.setdefault("kind", "Service")
                    br.setdefault("weight", 1)
    return obj


def _containers_of(spec):
    for key in ("containers", "initContainers"):
        for c in (spec or {}).get(key) or []:
            if isinstance(c, dict):
                yield c


def canonicalize_quantities(res_key, obj):
    """Rewrites quantities the way the API server re-serializes them.
    Raises quantity.QuantityError for one that does not parse."""
    from .quantity import canonical_map
    specs = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    if res_key == "/pods":
        specs.append(spec)
    elif spec is not None and isinstance(spec.get("template"), dict):
        specs.append(spec["template"].get("spec"))
    for ps in specs:
        for c in _containers_of(ps):
            res = c.get("resources")
            if isinstance(res, dict):
                for k in ("requests", "limits"):
                    if isinstance(res.get(k), dict):
                        canonical_map(res[k])
    if res_key == "/nodes" and isinstance(obj.get("status"), dict):
        for k in ("capacity", "allocatable"):
            if isinstance(obj["status"].get(k), dict):
                canonical_map(obj["status"][k])
    if res_key == "metrics.k8s.io/nodes" and isinstance(obj.get("usage"),
                                                        dict):
        canonical_map(obj["usage"])
    if res_key == "metrics.k8s.io/pods":
        for c in obj.get("containers") or []:
            if isinstance(c.get("usage"), dict):
                canonical_map(c["usage"])
    return obj


# ---------------------------------------------------------------------------
# pod template hash (pkg/controller: fnv32a -> decimal -> safe alphabet)

def _fnv32a(data):
    h = 0x811c9dc5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xffffffff
    return h


def template_hash(template, collision_count=0):
    canon = json.dumps(strip_hash(template), sort_keys=True,
                       separators=(",", ":")).encode()
    h = _fnv32a(canon + (str(collision_count).encode()
                         if collision_count else b""))
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)]
                   for ch in str(h))


def strip_hash(template):
    """A copy of `template` without the pod-template-hash label."""
    t = copy.deepcopy(template) if template is not None else {}
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop("pod-template-hash", None)
    return t


def _prune_empty(v):
    """nil and empty are equal for the semantic template comparison."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _prune_empty(x)
            if x in (None, {}, [], "", False) and k != "replicas":
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_prune_empty(x) for x in v]
    return v


def templates_equal(a, b):
    """EqualIgnoreHash: pod templates equal ignoring pod-template-hash."""
    return json.dumps(_prune_empty(strip_hash(a)), sort_keys=True) == \
        json.dumps(_prune_empty(strip_hash(b)), sort_keys=True)


# ---------------------------------------------------------------------------
# errors

class ApiError(Exception):
    """Raised anywhere in request handling; becomes a Status reply."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
              "status": "Failure"}
        if self.message:
            st["message"] = self.message
        if self.reason:
            st["reason"] = self.reason
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(res, name):
    d = {}
    if name:
        d["name"] = name
    if res is not None and res.group:
        d["group"] = res.group
    if res is not None:
        d["kind"] = res.plural
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found',
                    _details(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    _details(res, name))


def conflict(res, name, why=None):
    why = why or ("the object has been modified; please apply your changes "
                  "to the latest version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} '
                    f'"{name}": {why}', _details(res, name))


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def internal_error(msg):
    return ApiError(500, "InternalError", f"Internal error occurred: {msg}",
                    {"causes": [{"message": msg}]})


def unsupported_media_type(accepted):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    "accepted media types include: " + ", ".join(accepted))


def too_many_requests(msg, retry_after, causes=None):
    d = {}
    if causes:
        d["causes"] = causes
    if retry_after:
        d["retryAfterSeconds"] = retry_after
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return ApiError(429, "TooManyRequests", msg, d, headers)


def forbidden(res_qualified, group, resource, name, reason_text):
    if name:
        msg = f'{res_qualified} "{name}" is forbidden: {reason_text}'
    elif res_qualified:
        msg = f"{res_qualified} is forbidden: {reason_text}"
    else:
        msg = f"forbidden: {reason_text}"
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if resource:
        d["kind"] = resource
    return ApiError(403, "Forbidden", msg, d)


class RawGo(str):
    """A value rendered verbatim in a field error (e.g. 0x0)."""


def go_repr(v):
    """The %v-like rendering field.Invalid uses for a value."""
    if isinstance(v, RawGo):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        if all(isinstance(x, str) for x in v.values()):
            inner = ", ".join(f"{json.dumps(k)}:{json.dumps(x)}"
                              for k, x in sorted(v.items()))
            return "map[string]string{" + inner + "}"
        return json.dumps(v, separators=(",", ":"))
    return json.dumps(v, separators=(",", ":"))


class FieldError:
    """One field.Error: type FieldValueInvalid/Required/Forbidden/
    NotSupported/Duplicate."""

    def __init__(self, etype, field, value=None, detail=""):
        self.type = etype
        self.field = field
        self.value = value
        self.detail = detail

    def body(self):
        if self.type == "FieldValueInvalid":
            s = f"Invalid value: {go_repr(self.value)}"
            return s + (f": {self.detail}" if self.detail else "")
        if self.type == "FieldValueRequired":
            return "Required value" + (f": {self.detail}"
                                       if self.detail else "")
        if self.type == "FieldValueForbidden":
            return "Forbidden" + (f": {self.detail}" if self.detail else "")
        if self.type == "FieldValueDuplicate":
            return f"Duplicate value: {go_repr(self.value)}"
        if self.type == "FieldValueTooLong":
            return "Too long: " + self.detail
        if self.type == "FieldValueTooMany":
            return f"Too many: {go_repr(self.value)}: {self.detail}"
        if self.type == "FieldValueNotSupported":
            return (f"Unsupported value: {go_repr(self.value)}: supported "
                    f"values: {self.detail}")
        return self.detail

    def text(self):
        return f"{self.field}: {self.body()}"


def invalid(qualified_kind, group, kind, name, errors):
    """422 Invalid with causes, in NewInvalid's message form."""
    causes = [{"reason": e.type, "message": e.body(), "field": e.field}
              for e in errors]
    if len(errors) == 1:
        agg = errors[0].text()
    else:
        agg = "[" + ", ".join(e.text() for e in errors) + "]"
    msg = f'{qualified_kind} "{name}" is invalid: {agg}'
    d = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = kind
    d["causes"] = causes
    return ApiError(422, "Invalid", msg, d)


# ---------------------------------------------------------------------------
# validation (the parts clients trip over)

_DNS1123_SUB = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                          r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_SUB_MSG = ("a lowercase RFC 1123 subdomain must consist of lower "
                    "case alphanumeric characters, '-' or '.', and must "
                    "start and end with an alphanumeric character (e.g. "
                    "'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
                    "[a-z0-9])?)*')")


def validate_name(name):
    errs = []
    if not _DNS1123_SUB.fullmatch(name) or len(name) > 253:
        errs.append(FieldError("FieldValueInvalid", "metadata.name", name,
                               _DNS1123_SUB_MSG))
    return errs


def _label_selector_matches(sel, labels):
    from .sel import selector_matches
    return selector_matches(sel, labels)


def _validate_containers(containers, base, errs):
    if not containers:
        errs.append(FieldError("FieldValueRequired", base))
        return
    seen = set()
    for i, c in enumerate(containers):
        p = f"{base}[{i}]"
        if not isinstance(c, dict):
            errs.append(FieldError("FieldValueInvalid", p, c, "not an "
                                   "object"))
            continue
        if not c.get("name"):
            errs.append(FieldError("FieldValueRequired", p + ".name"))
        elif c["name"] in seen:
            errs.append(FieldError("FieldValueDuplicate", p + ".name",
                                   c["name"]))
        seen.add(c.get("name"))
        if not c.get("image"):
            errs.append(FieldError("FieldValueRequired", p + ".image"))


def _validate_template(spec, errs, need_selector=True):
    tmpl = spec.get("template")
    sel = spec.get("selector")
    if need_selector:
        if not isinstance(sel, dict) or not (sel.get("matchLabels") or
                                             sel.get("matchExpressions")):
            errs.append(FieldError("FieldValueRequired", "spec.selector"))
        elif isinstance(tmpl, dict):
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            if not _label_selector_matches(sel, labels):
                errs.append(FieldError(
                    "FieldValueInvalid", "spec.template.metadata.labels",
                    labels, "`selector` does not match template `labels`"))
    if not isinstance(tmpl, dict):
        errs.append(FieldError("FieldValueRequired", "spec.template"))
        return
    _validate_containers((tmpl.get("spec") or {}).get("containers"),
                         "spec.template.spec.containers", errs)


def _nonneg(spec, key, errs, path=None):
    v = spec.get(key)
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or
                          v < 0):
        errs.append(FieldError("FieldValueInvalid", path or f"spec.{key}",
                               v, "must be greater than or equal to 0"))


def validate(res_key, obj, old=None):
    """field errors for `obj` of `res_key` ([] when valid)."""
    errs = []
    spec = obj.get("spec")
    if res_key in ("apps/deployments", "apps/replicasets",
                   "apps/statefulsets", "apps/daemonsets"):
        if not isinstance(spec, dict):
            return [FieldError("FieldValueRequired", "spec")]
        _nonneg(spec, "replicas", errs)
        _validate_template(spec, errs)
        if old is not None and isinstance(old.get("spec"), dict) and \
                old["spec"].get("selector") != spec.get("selector"):
            errs.append(FieldError("FieldValueInvalid", "spec.selector",
                                   spec.get("selector"),
                                   "field is immutable"))
        if res_key == "apps/deployments":
            st = (spec.get("strategy") or {}).get("type")
            if st not in (None, "RollingUpdate", "Recreate"):
                errs.append(FieldError("FieldValueNotSupported",
                                       "spec.strategy.type", st,
                                       '"Recreate", "RollingUpdate"'))
    elif res_key == "/pods":
        if not isinstance(spec, dict):
            return [FieldError("FieldValueRequired", "spec")]
        _validate_containers(spec.get("containers"), "spec.containers",
                             errs)
    elif res_key == "batch/jobs":
        if not isinstance(spec, dict):
            return [FieldError("FieldValueRequired", "spec")]
        _validate_template(spec, errs, need_selector=False)
        rp = ((spec.get("template") or {}).get("spec") or {}).get(
            "restartPolicy")
        if rp not in ("Never", "OnFailure"):
            errs.append(FieldError("FieldValueNotSupported",
                                   "spec.template.spec.restartPolicy", rp,
                                   '"OnFailure", "Never"'))
    elif res_key == "autoscaling/horizontalpodautoscalers":
        if not isinstance(spec, dict):
            return [FieldError("FieldValueRequired", "spec")]
        ref = spec.get("scaleTargetRef") or {}
        if not ref.get("kind"):
            errs.append(FieldError("FieldValueRequired",
                                   "spec.scaleTargetRef.kind"))
        if not ref.get("name"):
            errs.append(FieldError("FieldValueRequired",
                                   "spec.scaleTargetRef.name"))
        mn = spec.get("minReplicas")
        mx = spec.get("maxReplicas")
        if mn is not None and (not isinstance(mn, int) or mn < 1):
            errs.append(FieldError("FieldValueInvalid", "spec.minReplicas",
                                   mn, "must be greater than or equal to 1"))
        if not isinstance(mx, int) or mx < 1:
            errs.append(FieldError("FieldValueInvalid", "spec.maxReplicas",
                                   mx, "must be greater than 0"))
        elif isinstance(mn, int) and mx < mn:
            errs.append(FieldError("FieldValueInvalid", "spec.maxReplicas",
                                   mx, "must be greater than or equal to "
                                   "`minReplicas`"))
    elif res_key == "policy/poddisruptionbudgets":
        if isinstance(spec, dict) and "minAvailable" in spec and \
                "maxUnavailable" in spec:
            errs.append(FieldError("FieldValueInvalid", "spec",
                                   None, "minAvailable and maxUnavailable "
                                   "cannot be both set"))
    elif res_key == "coordination.k8s.io/leases":
        if isinstance(spec, dict):
            d = spec.get("leaseDurationSeconds")
            if d is not None and (not isinstance(d, int) or d <= 0):
                errs.append(FieldError("FieldValueInvalid",
                                       "spec.leaseDurationSeconds", d,
                                       "must be greater than 0"))
            t = spec.get("leaseTransitions")
            if t is not None and (not isinstance(t, int) or t < 0):
                errs.append(FieldError("FieldValueInvalid",
                                       "spec.leaseTransitions", t,
                                       "must be greater than or equal to 0"))
    elif res_key == "events.k8s.io/events":
        for f in ("eventTime",):
            if not obj.get(f):
                errs.append(FieldError("FieldValueRequired", f))
        for f in ("reportingController", "reportingInstance", "action",
                  "reason"):
            if not obj.get(f):
                errs.append(FieldError("FieldValueRequired", f))
        if len(obj.get("note") or "") > 1024:
            errs.append(FieldError("FieldValueTooLong", "note", None,
                                   "must have at most 1024 bytes"))
    elif res_key == "gateway.networking.k8s.io/httproutes":
        for i, rule in enumerate((spec or {}).get("rules") or []):
            refs = rule.get("backendRefs") or []
            if len(refs) > 16:
                errs.append(FieldError(
                    "FieldValueTooMany", f"spec.rules[{i}].backendRefs",
                    None, f"must have at most 16 items"))
            for j, br in enumerate(refs):
                w = br.get("weight")
                p = f"spec.rules[{i}].backendRefs[{j}].weight"
                if isinstance(w, int) and w > 1000000:
                    errs.append(FieldError(
                        "FieldValueInvalid", p, w,
                        f"{p} in body should be less than or equal to "
                        "1000000"))
                elif isinstance(w, int) and w < 0:
                    errs.append(FieldError(
                        "FieldValueInvalid", p, w,
                        f"{p} in body should be greater than or equal to 0"))
    return errs
