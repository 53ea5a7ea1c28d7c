#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tests/lib/tapsum.py on odd testlog.json content: each failed case's
diagnostics, whichever side of its result line the test printed them on
(the C tests before it, the Python ones after), lines of any length or
bytes, records cut short or without output. TAP on stdout."""
import json
import os
import subprocess
import sys
import tempfile

TAPSUM = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "..", "lib", "tapsum.py")

n = failed = 0


def ok(cond, desc, diag=""):
    global n, failed
    n += 1
    print(f"{'ok' if cond else 'not ok'} {n} - {desc}")
    if not cond:
        failed += 1
        for line in str(diag).splitlines()[-40:]:
            print(f"# {line[:300]}")


def run(records, raw=b"", encoding="utf-8"):
    """Runs tapsum on a testlog of `records` (dicts) followed by `raw`
    bytes; returns (exit status, output, stderr)."""
    with tempfile.TemporaryDirectory(prefix="reflex-tapsum-") as d:
        path = os.path.join(d, "testlog.json")
        with open(path, "wb") as f:
            for r in records:
                f.write(json.dumps(r).encode() + b"\n")
            f.write(raw)
        env = dict(os.environ, PYTHONIOENCODING=encoding)
        p = subprocess.run([sys.executable, TAPSUM, path], env=env,
                           capture_output=True, timeout=60)
        return (p.returncode, p.stdout.decode(encoding, "replace"),
                p.stderr.decode("utf-8", "replace"))


def rec(name, stdout, result="FAIL"):
    r = {"name": name, "result": result}
    if stdout is not None:
        r["stdout"] = stdout
    return r


# A C case (tt.h): its checks print before "not ok"; the next case's
# lines follow it.
c_out = ("1..2\n#   x == 1, expected 2\n#   t.c:9: check failed: x == 2\n"
         "not ok 1 - the first\n# seed=7 (REFLEX_TEST_SEED)\nok 2 - next\n")
rc, out, err = run([rec("c", c_out)])
ok(rc == 1 and "check failed: x == 2" in out and "expected 2" in out,
   "a C case's diagnostics, printed before its result, are shown",
   out + err)
ok(0 <= out.find("expected 2") < out.find("check failed"),
   "in the order printed", out)

# A Python case (Tap.ok): its diagnostics follow "not ok".
py_out = ("ok 1 - a\nnot ok 2 - b to the end: boom\n# Traceback\n"
          "# --- coordinator.log (last 2 lines)\n# level=err x\nok 3 - c\n"
          "1..3\n")
rc, out, err = run([rec("py", py_out)])
ok(rc == 1 and "Traceback" in out and "level=err x" in out and
   "1 failed" in out, "a Python case's diagnostics, after it, are shown",
   out + err)

# A huge diagnostic line is cut; many lines are capped.
huge = "not ok 1 - big\n# " + "x" * 300000 + "\n" + \
    "".join(f"# line {i}\n" for i in range(500)) + "1..1\n"
rc, out, err = run([rec("huge", huge)])
ok(rc == 1 and max(len(l) for l in out.splitlines()) < 1000 and
   "more characters" in out and "more in the test log" in out and
   "line 38" in out and "line 400" not in out,
   "long and many diagnostic lines are bounded", out[:2000] + err)

# Bytes no terminal encoding holds, printed to an ASCII stdout.
rc, out, err = run([rec("bytes", "not ok 1 - caf\u00e9 \ufffd\n"
                        "# \u00ff\u2603 \udc80\n1..1\n")],
                   encoding="ascii")
ok(rc == 1 and "Traceback" not in err and "0 passed, 1 failed" in out,
   "non-ASCII and lone surrogates do not stop the summary", out + err)

# Non-UTF-8 bytes in the file itself.
raw = (b'{"name": "raw", "result": "FAIL", "stdout": "not ok 1 - \xff\xfe'
       b'\\n# \xc3\\n"}\n')
rc, out, err = run([], raw)
ok(rc == 1 and "Traceback" not in err and "0 passed, 1 failed" in out,
   "a testlog with bytes that are not UTF-8 is read", out + err)

# A record cut short (the run was killed while writing), and JSON that
# is not a record: each counted as a failure, the rest still summed.
rc, out, err = run([rec("good", "ok 1 - a\n1..1\n", "OK")],
                   b'{"name": "cut", "result": "OK", "stdo\n[1, 2]\n')
ok(rc == 1 and "Traceback" not in err and "1 passed, 2 failed" in out,
   "records cut short or not objects count as failures", out + err)

# No stdout at all, or stdout not a string.
rc, out, err = run([rec("nostdout", None, "TIMEOUT"),
                    {"name": "odd", "result": "OK", "stdout": ["ok 1"]},
                    rec("fine", None, "OK")])
ok(rc == 1 and "Traceback" not in err and "0 passed, 1 failed" in out and
   "nostdout: TIMEOUT without a failing case" in out,
   "records without output are summed", out + err)

# All passing: status 0.
rc, out, err = run([rec("good", "ok 1 - a\nok 2 - b\n1..2\n", "OK")])
ok(rc == 0 and "2 passed, 0 failed" in out, "a passing log passes",
   out + err)

print(f"1..{n}")
sys.exit(1 if failed else 0)
