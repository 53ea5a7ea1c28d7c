#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The valgrind hook of tests/lib/reflexlab.py (issue 6), shown on
tests/tools/vg_faulty.c, a program with one known fault per mode: a
definite leak, an invalid read and a process that ignores SIGTERM each
give a "not ok" naming the process's valgrind log; a clean exit and an
exit on SIGTERM give one "ok"; a program that is not one of reflex's
daemons is not wrapped, and time_factor() reads REFLEX_TIME_FACTOR.
Prints TAP; SKIPs when valgrind is not installed."""

import io
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import reflexlab as rl  # noqa: E402
from reflexlab import LabError, Tap, reflex_binary  # noqa: E402


def report():
    """valgrind_report into a Tap of its own: (its output, failures)."""
    out = io.StringIO()
    inner = Tap(out=out)
    rl.valgrind_report(inner)
    return out.getvalue(), inner.failed


def start(name, mode):
    return rl.reflex_popen(name, [reflex_binary("vg-faulty"), mode],
                           daemons=("vg-faulty",), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)


def run(tap, logs):
    os.environ["REFLEX_VALGRIND"] = logs
    os.environ["REFLEX_TIME_FACTOR"] = "1"
    rl.STOP_GRACE = 2.0
    argv, vg = rl.valgrind_argv(["/bin/true"], "true")
    tap.ok(vg is None and argv == ["/bin/true"],
           "a program that is not one of reflex's daemons is not wrapped")
    argv, vg = rl.valgrind_argv(["/x/reflex-agent", "-c", "a.yaml"], "ag")
    rl._VG_RUNS.remove(vg)
    tap.ok(os.path.basename(argv[0]) == "valgrind" and
           argv[-3:] == ["/x/reflex-agent", "-c", "a.yaml"] and
           "--errors-for-leak-kinds=definite,indirect" in argv and
           f"--error-exitcode={rl.VALGRIND_EXIT}" in argv and
           f"--log-file={vg.log_path}" in argv and
           vg.log_path.startswith(logs + os.sep),
           "reflex-agent runs under valgrind with its own log", argv)

    for mode, what in (("leak", "a definite leak"),
                       ("read", "an invalid read")):
        p = start(f"faulty-{mode}", mode)
        rc = p.wait(120)
        text, failed = report()
        tap.ok(rc == rl.VALGRIND_EXIT and failed == 1 and
               text.startswith("not ok 1 - valgrind: faulty-" + mode) and
               f"faulty-{mode}.log" in text.splitlines()[0],
               f"{what} is a \"not ok\" naming the process's log", text)

    p = start("faulty-hang", "hang")
    p.stdout.readline()  # "waiting": SIGTERM is ignored from now on
    text, failed = report()
    tap.ok(failed == 1 and "ignored SIGTERM" in text and p.returncode == -9,
           "a process that ignores SIGTERM is SIGKILLed and a \"not ok\"",
           text)

    # A lab process (Proc.stop) that ignores SIGTERM: the report also
    # carries the last lines of its own output.
    argv, vg = rl.valgrind_argv([reflex_binary("vg-faulty"), "hang"],
                                "faulty-hang-own", daemons=("vg-faulty",))
    out_path = os.path.join(logs, "faulty-hang-own.out")
    with open(out_path, "ab") as out:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=True)
    vg.popen = popen
    proc = rl.Proc("faulty-hang-own", argv, popen, out_path)
    proc.valgrind = vg
    rl.wait_until(lambda: "waiting" in proc.log_text(), 120,
                  what="vg-faulty waiting")
    proc.stop()
    text, failed = report()
    tap.ok(failed == 1 and "ignored SIGTERM" in text and
           "its own log, last lines" in text and "waiting" in
           text.split("its own log")[-1],
           "it also shows the last lines of the process's own output", text)

    a = start("clean", "clean")
    b = start("waiting", "wait")
    a.wait(120)
    b.stdout.readline()  # "waiting"
    text, failed = report()
    tap.ok(failed == 0 and text.startswith("ok 1 - valgrind: 2 reflex "
                                           "processes, no errors") and
           b.returncode == -15,
           "a clean exit and an exit on SIGTERM: one \"ok\"", text)
    text, failed = report()
    tap.ok(text == "" and failed == 0, "each process is reported once")

    os.environ["REFLEX_TIME_FACTOR"] = "2.5"
    f = rl.time_factor()
    os.environ["REFLEX_TIME_FACTOR"] = "0.1"
    try:
        rl.time_factor()
        bad = False
    except LabError:
        bad = True
    del os.environ["REFLEX_TIME_FACTOR"]
    tap.ok(f == 2.5 and rl.scaled(2) == 2 * rl.VALGRIND_FACTOR and bad,
           "REFLEX_TIME_FACTOR scales waits (20 under valgrind by "
           "default; below 1 is an error)")


def main():
    if not shutil.which("valgrind"):
        Tap.skip_all("valgrind not installed")
    tap = Tap()
    logs = tempfile.mkdtemp(prefix="reflex-vghook-")
    try:
        run(tap, logs)
    except Exception as e:  # noqa: BLE001 - reported as TAP
        tap.ok(False, f"no unexpected exception ({e!r})")
    os.environ.pop("REFLEX_VALGRIND", None)
    code = tap.done()
    if code == 0:
        shutil.rmtree(logs, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
