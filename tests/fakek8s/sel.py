# SPDX-License-Identifier: MIT
"""Label and field selectors: the query-string forms and metav1.LabelSelector.
"""

import re


class SelectorError(ValueError):
    """A selector that does not parse; the message is the server's."""


_KEY = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _check_key(k, whole):
    if not _KEY.fullmatch(k) or len(k.rpartition("/")[2]) > 63:
        raise SelectorError(
            f"unable to parse requirement: values[0][{k}]: Invalid value: "
            f"\"{k}\": name part must consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric "
            "character" if k else
            f"unable to parse requirement: found '', expected: identifier")


def _check_value(v):
    if len(v) > 63 or not _VALUE.fullmatch(v):
        raise SelectorError(
            f"unable to parse requirement: values[0][]: Invalid value: "
            f"\"{v}\": a valid label must be an empty string or consist of "
            "alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character")


def _split_top(s):
    """Splits on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(notin|in)\s*"
                     r"\(([^()]*)\)\s*)?$")
_CMP_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|=|!=|<|>)\s*([^\s,()]*)\s*$")


def parse_label_selector(s):
    """Parses a labelSelector query value into requirements
    [(key, op, [values])], op one of = != in notin exists !. Raises
    SelectorError."""
    reqs = []
    if s is None or s.strip() == "":
        return reqs
    for part in _split_top(s):
        if part.strip() == "":
            raise SelectorError("unable to parse requirement: found '', "
                                "expected: identifier")
        m = _CMP_RE.match(part)
        if m:
            key, op, val = m.groups()
            _check_key(key, s)
            if op in ("<", ">"):
                try:
                    int(val)
                except ValueError:
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' "
                        f"operators, the value must be an integer") from None
                reqs.append((key, "gt" if op == ">" else "lt", [val]))
                continue
            _check_value(val)
            reqs.append((key, "!=" if op == "!=" else "=", [val]))
            continue
        m = _SET_RE.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: found "
                                f"'{part.strip()}', expected: in, notin, "
                                "=, ==, !=, gt, lt")
        neg, key, op, vals = m.groups()
        _check_key(key, s)
        if op:
            if neg:
                raise SelectorError("unable to parse requirement: found "
                                    f"'{op}', expected: ',' or 'end of "
                                    "string'")
            values = [v.strip() for v in vals.split(",")]
            if values == [""]:
                values = [""]
            for v in values:
                _check_value(v)
            reqs.append((key, op, sorted(set(values))))
        else:
            reqs.append((key, "!" if neg else "exists", []))
    return reqs


def match_requirements(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and not (has and v == vals[0]):
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and not (has and v in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op in ("gt", "lt"):
            try:
                n = int(v)
            except (TypeError, ValueError):
                return False
            if op == "gt" and not n > int(vals[0]):
                return False
            if op == "lt" and not n < int(vals[0]):
                return False
    return True


def label_selector_requirements(sel):
    """metav1.LabelSelector (dict) -> requirements. None -> None (matches
    nothing in the places that care); {} -> [] (matches everything)."""
    if sel is None:
        return None
    reqs = []
    for k, v in sorted((sel.get("matchLabels") or {}).items()):
        reqs.append((k, "=", [v]))
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists",
              "DoesNotExist": "!"}.get(e.get("operator"))
        if op is None:
            raise SelectorError(f"{e.get('operator')!r} is not a valid "
                                "label selector operator")
        reqs.append((e.get("key", ""), op, sorted(e.get("values") or [])))
    return reqs


def selector_matches(sel, labels):
    """True when metav1.LabelSelector `sel` matches `labels`."""
    reqs = label_selector_requirements(sel)
    if reqs is None:
        return False
    return match_requirements(reqs, labels)


def selector_string(sel):
    """metav1.LabelSelector -> its string form (as in Scale.status.selector
    and kubectl's --selector): requirements sorted by key."""
    reqs = label_selector_requirements(sel) or []
    out = []
    for key, op, vals in sorted(reqs, key=lambda r: r[0]):
        if op == "=":
            out.append(f"{key}={vals[0]}")
        elif op == "in":
            out.append(f"{key} in ({','.join(vals)})")
        elif op == "notin":
            out.append(f"{key} notin ({','.join(vals)})")
        elif op == "exists":
            out.append(key)
        elif op == "!":
            out.append(f"!{key}")
    return ",".join(out)


# ---------------------------------------------------------------------------
# field selectors

def parse_field_selector(s):
    """[(field, op, value)], op '=' or '!='. Raises SelectorError."""
    out = []
    if s is None or s.strip() == "":
        return out
    for part in s.split(","):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not m:
            raise SelectorError(f"invalid selector: '{s}'; can't understand "
                                f"'{part}'")
        f, op, v = m.groups()
        out.append((f, "!=" if op == "!=" else "=", v))
    return out


def field_value(obj, field):
    """The string a field selector compares for `field` of `obj`."""
    if field == "metadata.name":
        return obj.get("metadata", {}).get("name", "")
    if field == "metadata.namespace":
        return obj.get("metadata", {}).get("namespace", "")
    if field == "status.podIPs":
        ips = (obj.get("status") or {}).get("podIPs") or []
        return ips[0].get("ip", "") if ips else ""
    if field == "source":
        return ((obj.get("source") or {}).get("component") or
                obj.get("reportingComponent") or "")
    if field == "status.successful":
        return str((obj.get("status") or {}).get("succeeded", 0))
    cur = obj
    for p in field.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        if field in ("spec.hostNetwork", "spec.unschedulable"):
            return "false"
        if field == "status.replicas":
            return "0"
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs, obj):
    for f, op, v in reqs:
        have = field_value(obj, f)
        if op == "=" and have != v:
            return False
        if op == "!=" and have == v:
            return False
    return True
