# SPDX-License-Identifier: MIT
"""resource.Quantity: parsing and the canonical form the API server
re-serializes every quantity in (e.g. "1.5" -> "1500m", "1.5Gi" ->
"1536Mi", "1.6e10" -> "16e9", "0.1" -> "100m")."""

import re
from fractions import Fraction

QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
REGEX_MSG = ("quantities must match the regular expression "
             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_BIN = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
        "P": 15, "E": 18}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}
_BIN_SUFFIX = {v: k for k, v in _BIN.items()}
MAX = 2 ** 63 - 1


class QuantityError(ValueError):
    pass


def parse(s):
    """-> (Fraction value, format) with format BinarySI, DecimalSI or
    DecimalExponent. Raises QuantityError."""
    if isinstance(s, bool):
        raise QuantityError(REGEX_MSG)
    if isinstance(s, (int, float)):
        s = repr(s) if isinstance(s, float) else str(s)
    if not isinstance(s, str):
        raise QuantityError(REGEX_MSG)
    m = QUANTITY_RE.match(s.strip())
    if not m:
        raise QuantityError(REGEX_MSG)
    num, suf = m.groups()
    if num.count(".") > 1 or num in (".", "+.", "-.", "+", "-"):
        raise QuantityError(REGEX_MSG)
    sign = -1 if num.startswith("-") else 1
    num = num.lstrip("+-")
    try:
        val = Fraction(num if not num.endswith(".") else num[:-1] or "0")
    except ValueError:
        raise QuantityError(REGEX_MSG) from None
    val *= sign
    if suf in _BIN:
        return val * (2 ** _BIN[suf]), "BinarySI"
    if suf in _DEC:
        return val * Fraction(10) ** _DEC[suf], "DecimalSI"
    m = re.fullmatch(r"[eE]([-+]?[0-9]+)", suf)
    if m:
        return val * Fraction(10) ** int(m.group(1)), "DecimalExponent"
    raise QuantityError("unable to parse quantity's suffix")


def _ceil_nano(v):
    n = v * 10 ** 9
    i = -((-n.numerator) // n.denominator)
    return i  # value in nano-units, rounded up


def canonical(s):
    """The canonical string of quantity `s`."""
    v, fmt = parse(s)
    nanos = _ceil_nano(v)
    if abs(nanos) > MAX * 10 ** 9:
        nanos = MAX * 10 ** 9 if nanos > 0 else -MAX * 10 ** 9
    if nanos == 0:
        return "0"
    if fmt == "BinarySI":
        whole = nanos % 10 ** 9 == 0
        if -1024 < v < 1024 or not whole:
            fmt = "DecimalSI"
        else:
            n = nanos // 10 ** 9
            exp = 0
            while exp < 60 and n % 1024 == 0:
                n //= 1024
                exp += 10
            return f"{n}{_BIN_SUFFIX.get(exp, '')}"
    mant, exp = nanos, -9
    while mant % 1000 == 0 and exp < 18:
        mant //= 1000
        exp += 3
    if fmt == "DecimalExponent":
        return f"{mant}" + (f"e{exp}" if exp else "")
    return f"{mant}{_DEC_SUFFIX[exp]}"


def canonical_map(m):
    """Canonicalizes every value of a ResourceList in place; returns it."""
    if isinstance(m, dict):
        for k, v in list(m.items()):
            m[k] = canonical(v)
    return m
