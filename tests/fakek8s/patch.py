# SPDX-License-Identifier: MIT
"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes'
strategic merge patch for the built-in kinds the fake serves.

Errors: PatchConflict (the patch does not apply to this document: the
server answers 422) and PatchMalformed (the patch itself is bad: 400).
"""

import copy
import json

MAX_JSON_PATCH_OPS = 10000


class PatchMalformed(ValueError):
    pass


class PatchConflict(ValueError):
    pass


# ---------------------------------------------------------------------------
# RFC 6901 pointers and RFC 6902 operations

def _pointer(path):
    if path == "":
        return []
    if not isinstance(path, str) or not path.startswith("/"):
        raise PatchConflict(f"JSON pointer {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~")
            for p in path[1:].split("/")]


def _index(container, tok, allow_end):
    if tok == "-" and allow_end:
        return len(container)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise PatchConflict(f"invalid array index {tok!r}")
    i = int(tok)
    limit = len(container) + (1 if allow_end else 0)
    if i >= limit:
        raise PatchConflict(f"array index {i} out of bounds")
    return i


def _parent(doc, toks, op):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchConflict(f"{op} operation does not apply: doc is "
                                    "missing path")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, False)]
        else:
            raise PatchConflict(f"{op} operation does not apply: doc is "
                                "missing path")
    return cur


def _get(doc, path, op):
    toks = _pointer(path)
    if not toks:
        return doc
    parent = _parent(doc, toks, op)
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"{op} operation does not apply: doc is "
                                "missing key")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchConflict(f"{op} operation does not apply: doc is missing path")


def _add(doc, path, value):
    toks = _pointer(path)
    if not toks:
        return value
    parent = _parent(doc, toks, "add")
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchConflict("add operation does not apply: doc is missing "
                            "path")
    return doc


def _remove(doc, path, op="remove"):
    toks = _pointer(path)
    if not toks:
        raise PatchConflict(f"{op} operation does not apply: root")
    parent = _parent(doc, toks, op)
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"{op} operation does not apply: doc is "
                                "missing key")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise PatchConflict(f"{op} operation does not apply: doc is missing path")


def _json_equal(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def decode_json_patch(raw):
    try:
        ops = json.loads(raw)
    except ValueError as e:
        raise PatchMalformed(str(e)) from None
    if not isinstance(ops, list):
        raise PatchMalformed("json: cannot unmarshal object into Go value of "
                             "type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise PatchMalformed("json: cannot unmarshal into Go value of "
                                 "type jsonpatch.Operation")
    return ops


def apply_json_patch(doc, ops):
    """Applies decoded RFC 6902 operations to a deep copy of `doc`."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        path = op.get("path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchConflict(f"{kind} operation has no value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            toks = _pointer(path)
            if not toks:
                doc = copy.deepcopy(op["value"])
                continue
            parent = _parent(doc, toks, "replace")
            last = toks[-1]
            if isinstance(parent, dict):
                if last not in parent:
                    raise PatchConflict("replace operation does not apply: "
                                        "doc is missing key: " + path)
                parent[last] = copy.deepcopy(op["value"])
            elif isinstance(parent, list):
                parent[_index(parent, last, False)] = \
                    copy.deepcopy(op["value"])
            else:
                raise PatchConflict("replace operation does not apply: doc "
                                    "is missing path: " + path)
        elif kind == "move":
            frm = op.get("from")
            if frm is None:
                raise PatchConflict("move operation has no from")
            val = _remove(doc, frm, "move")
            doc = _add(doc, path, val)
        elif kind == "copy":
            frm = op.get("from")
            if frm is None:
                raise PatchConflict("copy operation has no from")
            doc = _add(doc, path, copy.deepcopy(_get(doc, frm, "copy")))
        elif kind == "test":
            try:
                have = _get(doc, path, "test")
            except PatchConflict:
                if op["value"] is None:
                    continue
                raise PatchConflict(f"testing value {path} failed: test "
                                    "failed") from None
            if not _json_equal(have, op["value"]):
                raise PatchConflict(f"testing value {path} failed: test "
                                    "failed")
        else:
            raise PatchConflict(f"Unexpected kind: {kind}")
    return doc


# ---------------------------------------------------------------------------
# RFC 7386 merge patch

def apply_merge_patch(doc, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = apply_merge_patch(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------
# strategic merge patch

# List fields of the built-in kinds with patchStrategy "merge" and their
# patchMergeKey (None: a list of scalars merged as a set). Field names are
# unique enough across the kinds served that the name alone decides.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "finalizers": None,
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "podIPs": "ip",
    "addresses": "type",
}


def _directive_key(k):
    return k.startswith("$")


def _smp_map(orig, patch):
    if not isinstance(patch, dict):
        raise PatchMalformed("strategic merge patch: patch is not an object")
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items()
                if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchMalformed(f"Unknown patch type: {directive}")
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if _directive_key(k):
            raise PatchMalformed(f"unknown directive {k}")
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp_map(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list) and k in MERGE_KEYS:
            out[k] = _smp_list(out.get(k), v, MERGE_KEYS[k])
        else:
            out[k] = copy.deepcopy(v)
    for field, order in orders.items():
        if isinstance(out.get(field), list) and isinstance(order, list):
            out[field] = _reorder(out[field], order, MERGE_KEYS.get(field))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _reorder(items, order, key):
    def ident(x):
        return x.get(key) if (key and isinstance(x, dict)) else x
    pos = {json.dumps(ident(o) if isinstance(o, dict) else o,
                      sort_keys=True): i for i, o in enumerate(order)}
    ranked = []
    for n, it in enumerate(items):
        r = pos.get(json.dumps(ident(it), sort_keys=True))
        ranked.append((0 if r is not None else 1, r if r is not None else n,
                       it))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in ranked]


def _smp_list(orig, patch, key):
    orig = copy.deepcopy(orig) if isinstance(orig, list) else []
    for it in patch:
        if isinstance(it, dict) and it.get("$patch") == "replace":
            return [copy.deepcopy(x) for x in patch
                    if not (isinstance(x, dict) and "$patch" in x)]
    if key is None:  # list of scalars merged as a set
        for it in patch:
            if it not in orig:
                orig.append(copy.deepcopy(it))
        return orig
    for it in patch:
        if not isinstance(it, dict):
            orig.append(copy.deepcopy(it))
            continue
        if key not in it:
            raise PatchMalformed(f"map: {it} does not contain declared "
                                 f"merge key: {key}")
        idx = next((i for i, o in enumerate(orig)
                    if isinstance(o, dict) and o.get(key) == it[key]), None)
        if it.get("$patch") == "delete":
            if idx is not None:
                orig.pop(idx)
            continue
        if idx is None:
            merged = _smp_map({}, it)
            if merged is not None:
                orig.append(merged)
        else:
            merged = _smp_map(orig[idx], it)
            if merged is None:
                orig.pop(idx)
            else:
                orig[idx] = merged
    return orig


def apply_strategic_merge_patch(doc, patch):
    if not isinstance(patch, dict):
        raise PatchMalformed("strategic merge patch: patch is not an object")
    out = _smp_map(doc, patch)
    return out if out is not None else {}
