#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Counts TAP cases in meson's testlog.json files and prints the summary.

A test program that failed (or timed out) without reporting a failing TAP
case counts as one failure of its own, so a crash never passes silently.
"""
import json
import re
import sys

OK = re.compile(r"^ok\b")
NOT_OK = re.compile(r"^not ok\b")


DIAG_LINES = 80


def print_diag(rest):
    """Prints the diagnostic lines ('#' comments) that follow a failed
    case, at most DIAG_LINES of them: what the test knew when it failed."""
    n = 0
    for l in rest:
        if not l.startswith("#"):
            break
        if n == DIAG_LINES:
            print("    ... (more in the test log)")
            break
        print(f"    {l}")
        n += 1


def count(path):
    passed = failed = 0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        print(f"tapsum: {path}: {e}")
        return 0, 1
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        out = (t.get("stdout") or "").splitlines()
        p = sum(1 for l in out if OK.match(l))
        f = sum(1 for l in out if NOT_OK.match(l))
        result = t.get("result", "")
        if result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
            f = 1
            print(f"tapsum: {t.get('name')}: {result} without a failing case")
        for i, l in enumerate(out):
            if NOT_OK.match(l):
                print(f"FAILED {t.get('name')}: {l}")
                print_diag(out[i + 1:])
        passed += p
        failed += f
    return passed, failed


def main():
    passed = failed = 0
    for path in sys.argv[1:]:
        p, f = count(path)
        print(f"{path}: {p} passed, {f} failed")
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
