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


DIAG_LINES = 40    # each side of a failed case's result line
DIAG_WIDTH = 500   # characters of one diagnostic line


def clip(line):
    """One line of a test's output, at most DIAG_WIDTH characters."""
    if len(line) <= DIAG_WIDTH:
        return line
    return f"{line[:DIAG_WIDTH]}... ({len(line) - DIAG_WIDTH} more characters)"


def print_diag(out, i):
    """Prints the diagnostic lines ('#' comments) around the failed case's
    result line out[i]: what the test knew when it failed. The C tests
    (tests/unit/tt.h) print a case's diagnostics before its result line,
    the Python ones (Tap.ok) after it, so both sides are shown, each up to
    the next other line and at most DIAG_LINES long, in their order."""
    start = i
    while start > 0 and out[start - 1].startswith("#"):
        start -= 1
    end = i + 1
    while end < len(out) and out[end].startswith("#"):
        end += 1
    if i - start > DIAG_LINES:
        print(f"    ... ({i - start - DIAG_LINES} lines before)")
        start = i - DIAG_LINES
    for l in out[start:i]:
        print(f"    {clip(l)}")
    if end > i + 1:
        print(f"    {clip(out[i])}")
    for l in out[i + 1:min(end, i + 1 + DIAG_LINES)]:
        print(f"    {clip(l)}")
    if end > i + 1 + DIAG_LINES:
        print("    ... (more in the test log)")


def count(path):
    passed = failed = 0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        print(f"tapsum: {path}: {e}")
        return 0, 1
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            t = json.loads(line)
            why = f"a JSON {type(t).__name__}"
        except ValueError as e:
            t, why = None, e
        if not isinstance(t, dict):
            # e.g. a log cut short: counted, not a crash of the summary
            print(f"tapsum: {path}:{k}: not a test's record: {why}")
            failed += 1
            continue
        out = t.get("stdout")
        out = out.splitlines() if isinstance(out, str) else []
        p = sum(1 for l in out if OK.match(l))
        f = sum(1 for l in out if NOT_OK.match(l))
        result = t.get("result", "")
        if result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
            f = 1
            print(f"tapsum: {t.get('name')}: {result} without a failing case")
        for i, l in enumerate(out):
            if NOT_OK.match(l):
                print(f"FAILED {t.get('name')}: {clip(l)}")
                print_diag(out, i)
        passed += p
        failed += f
    return passed, failed


def main():
    # Whatever a test printed (log tails, bytes a terminal cannot show)
    # must not stop the summary.
    sys.stdout.reconfigure(errors="backslashreplace")
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
