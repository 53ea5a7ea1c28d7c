# SPDX-License-Identifier: MIT
"""A small YAML subset reader for apply patches sent as YAML: block maps
and lists, flow [] and {}, plain/quoted scalars, comments. Enough for
hand-written manifests; anchors, tags and multi-line scalars are
rejected with YamlError."""

import json
import re


class YamlError(ValueError):
    pass


def _scalar(t):
    t = t.strip()
    if t == "" or t in ("~", "null", "Null", "NULL"):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if t[0] in "\"'":
        if t[0] == '"':
            return json.loads(t)
        if not t.endswith("'"):
            raise YamlError(f"unterminated string {t!r}")
        return t[1:-1].replace("''", "'")
    if t[0] in "[{":
        return _flow(t)
    if t[0] in "&*!|>":
        raise YamlError(f"unsupported YAML construct {t!r}")
    if re.fullmatch(r"[-+]?\d+", t):
        return int(t)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", t):
        return float(t)
    return t


def _flow(t):
    quoted = re.sub(r"(?<=[\[{,:])\s*([A-Za-z_][\w./-]*)\s*(?=[,:\]}])",
                    lambda m: json.dumps(m.group(1)), t)
    try:
        return json.loads(quoted)
    except ValueError:
        raise YamlError(f"unsupported flow collection {t!r}") from None


def _strip_comment(line):
    out, q = [], None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def load(text):
    lines = []
    for raw in text.splitlines():
        if raw.strip() in ("---", "..."):
            continue
        line = _strip_comment(raw)
        if line.strip():
            if "\t" in line[:len(line) - len(line.lstrip())]:
                raise YamlError("tabs in indentation")
            lines.append((len(line) - len(line.lstrip()), line.strip()))
    if not lines:
        return None
    val, n = _block(lines, 0, lines[0][0])
    if n != len(lines):
        raise YamlError(f"unexpected content: {lines[n][1]!r}")
    return val


def _split_key(s):
    m = re.match(r'^("(?:[^"\\]|\\.)*"|\'[^\']*\'|[^:]+?)\s*:(\s+|$)(.*)$',
                 s)
    if not m:
        return None
    k = m.group(1)
    if k[0] in "\"'":
        k = _scalar(k)
    return k, m.group(3)


def _block(lines, i, ind):
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        out = []
        while i < len(lines) and lines[i][0] == ind and (
                lines[i][1].startswith("- ") or lines[i][1] == "-"):
            rest = lines[i][1][1:].strip()
            if rest == "":
                v, i = _block(lines, i + 1, lines[i + 1][0])
                out.append(v)
                continue
            if _split_key(rest) and rest[0] not in "[{\"'":
                sub = [(ind + 2, rest)]
                j = i + 1
                while j < len(lines) and lines[j][0] > ind:
                    sub.append(lines[j])
                    j += 1
                v, _ = _block(sub, 0, ind + 2)
                out.append(v)
                i = j
                continue
            out.append(_scalar(rest))
            i += 1
        return out, i
    out = {}
    while i < len(lines) and lines[i][0] == ind:
        kv = _split_key(lines[i][1])
        if kv is None:
            raise YamlError(f"expected a mapping: {lines[i][1]!r}")
        k, rest = kv
        if rest.strip() == "":
            if i + 1 < len(lines) and (lines[i + 1][0] > ind or (
                    lines[i + 1][0] == ind and
                    lines[i + 1][1].startswith("-"))):
                v, i = _block(lines, i + 1, lines[i + 1][0])
            else:
                v, i = None, i + 1
        else:
            v, i = _scalar(rest), i + 1
        out[k] = v
    if i < len(lines) and lines[i][0] > ind:
        raise YamlError(f"bad indentation at {lines[i][1]!r}")
    return out, i
