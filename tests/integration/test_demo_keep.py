#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The demo's --keep wait (deploy/demo/run-demo.py keep_running), as the
READMEs promise it: Ctrl-C stops it, and the work directory (journal,
configs, logs) is kept. The runner is started the way a script's
`./deploy/demo.sh --keep &` starts it, with SIGINT ignored (a shell
without job control does that to its background jobs); before the fix
SIGINT then did nothing, and a Ctrl-C that did stop it removed the work
directory. No Prometheus or reflex daemon is needed: only the wait runs."""

import os
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import LabTimeout, lab_main, wait_until  # noqa: E402

# The child: a lab of its own, then the --keep wait.
CHILD = """
import importlib.util, os, sys
src = sys.argv[1]
sys.path.insert(0, os.path.join(src, "tests", "lib"))
spec = importlib.util.spec_from_file_location(
    "run_demo", os.path.join(src, "deploy", "demo", "run-demo.py"))
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)
from reflexlab import Lab
with Lab() as lab:
    print(lab.workdir, flush=True)
    demo.keep_running(lab)
print("stopped", flush=True)
"""


def sig_mask(pid, field):
    """The signal set `field` (SigIgn, SigCgt) of pid, as an int."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


def catches_sigint(pid):
    bit = 1 << (signal.SIGINT - 1)
    return sig_mask(pid, "SigCgt") & bit and not sig_mask(pid, "SigIgn") & bit


def run(tap):
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, SRC], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    workdir = p.stdout.readline().strip()
    try:
        tap.ok(os.path.isdir(workdir), "the child's lab has a work directory",
               f"first line: {workdir!r}")
        try:
            wait_until(lambda: catches_sigint(p.pid), 20,
                       what="the --keep wait to catch SIGINT")
            caught = True
        except LabTimeout as e:
            caught = False
            tap.diag(str(e))
        tap.ok(caught, "--keep takes SIGINT back when it was started with "
               "SIGINT ignored")
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            tap.ok(False, "Ctrl-C (SIGINT) stops --keep",
                   "still running 30 s after SIGINT")
        else:
            tap.ok(p.returncode == 0 and "stopped" in out,
                   "Ctrl-C (SIGINT) stops --keep, exit 0",
                   f"rc={p.returncode} out={out!r} err={err[-800:]!r}")
        tap.ok(os.path.isdir(workdir) and
               "work directory kept" in err,
               "the work directory is kept (and said so) after Ctrl-C",
               f"exists={os.path.isdir(workdir)} err={err[-800:]!r}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if workdir.startswith("/") and os.path.isdir(workdir):
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    # The lab is unused: the child makes its own, as the demo does.
    lab_main(lambda tap, lab: run(tap), "reflex-demo_keep-")
