# SPDX-License-Identifier: MIT
"""reflexlab: a lab on 127.0.0.1 for reflex's integration tests and demo.

Python 3 standard library only. A Lab runs a real Alertmanager and a real
Prometheus (Debian's packages), reflex's own binaries and a fake webhook
receiver, each with its own config and data under a temporary work
directory, every one of them bound to 127.0.0.1, and stops all of them
again: on leaving the `with` block, on an exception, at interpreter exit
and on SIGTERM/SIGINT/SIGHUP of the script. Children also get
PR_SET_PDEATHSIG (through setpriv) so a SIGKILLed script leaves nothing
behind either.

    with Lab() as lab:
        hook = lab.start_webhook_receiver()
        am = lab.start_alertmanager(hook.url)
        svc = lab.start("demo-a0", [demo_bin, "--port", str(p)],
                        ready_url=f"http://127.0.0.1:{p}/healthz")
        prom = lab.start_prometheus(
            scrape=[{"job": "demo", "targets": [f"127.0.0.1:{p}"],
                     "labels": {"service": "demo-a"}}],
            rule_files=[rules_path], alertmanager=am)
        wait_until(lambda: prom.query("up == 1"), 10, what="scrape")

Every HTTP request this module makes goes to a loopback address, never
through a proxy; anything else raises LabError. The Tap class prints TAP
for test scripts.

Under valgrind (issue 6): with REFLEX_VALGRIND set (not "" or "0"),
reflex's own daemons (reflex-coordinator, reflex-agent; nothing else)
started through Lab.start or reflex_popen run under valgrind's memcheck,
each with its own log (in $REFLEX_VALGRIND when that is a directory path,
else <build>/meson-logs/valgrind). Tap.done() then stops whatever is
still running and adds a "not ok" naming the log for every process whose
valgrind found an error or a definite/indirect leak. Every timeout here
(wait_until, HTTP, readiness, stop grace) is multiplied by
$REFLEX_TIME_FACTOR (default 1; 20 under valgrind); scripts scale their
own with scaled().
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"
STOP_GRACE = 5.0          # seconds between SIGTERM and SIGKILL (scaled)
HOOK_BODY_MAX = 1 << 20   # fake receiver: largest body accepted
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY")


class LabError(Exception):
    """A lab step failed; the message says which and why."""


class LabTimeout(LabError):
    """wait_until() ran out of time."""


class LabAbort(LabError):
    """Raised by a wait_until() predicate to stop waiting at once (e.g.
    the process being waited for has exited)."""


# ---------------------------------------------------------------------------
# loopback HTTP

# No ProxyHandler settings from the environment: requests go straight to
# the loopback address named in the URL.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def is_loopback_host(host):
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host is None:
        return False
    host = host.strip("[]")
    if host in ("localhost", "::1"):
        return True
    return re.fullmatch(r"127(\.\d{1,3}){3}", host) is not None


def check_loopback_url(url):
    """Raises LabError unless `url` is http(s) to a loopback address."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not is_loopback_host(u.hostname):
        raise LabError(f"refusing non-loopback URL {url!r}")
    return url


def check_loopback_addr(addr):
    """Raises LabError unless `addr` is HOST:PORT on a loopback address."""
    host, _, port = addr.rpartition(":")
    if not is_loopback_host(host) or not port.isdigit():
        raise LabError(f"refusing non-loopback address {addr!r}")
    return addr


class HttpReply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def http_request(method, url, body=None, headers=None, timeout=5.0):
    """One HTTP request to a loopback URL. Returns an HttpReply for any
    status (4xx/5xx included); raises OSError/URLError when there is no
    answer (refused, timed out). `timeout` is scaled (see scaled())."""
    check_loopback_url(url)
    timeout = scaled(timeout)
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return HttpReply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        data = e.read() if e.fp else b""
        return HttpReply(e.code, dict(e.headers or {}), data)


def http_get(url, timeout=5.0):
    return http_request("GET", url, timeout=timeout)


def http_post(url, body=b"", headers=None, timeout=5.0):
    return http_request("POST", url, body=body, headers=headers,
                        timeout=timeout)


def http_json(url, timeout=5.0):
    """GETs `url` and returns the decoded JSON; LabError on non-2xx."""
    r = http_get(url, timeout=timeout)
    if not 200 <= r.status < 300:
        raise LabError(f"GET {url}: HTTP {r.status}: {r.text[:200]}")
    return r.json()


def http_ok(url, timeout=1.0):
    """True when `url` answers 2xx within `timeout`."""
    try:
        return 200 <= http_get(url, timeout=timeout).status < 300
    except (OSError, urllib.error.URLError):
        return False


# ---------------------------------------------------------------------------
# waiting, ports, binaries

def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Calls pred() until it returns something truthy and returns that.
    Exceptions from pred count as "not yet", except LabAbort, which is
    passed on at once. Raises LabTimeout naming
    `what` (and the last exception) after `timeout` seconds (scaled, see
    scaled())."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (LabAbort, LabTimeout, KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - "not yet", remembered
            last = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last!r})" if last else ""
            raise LabTimeout(f"timed out after {timeout:g}s waiting for "
                             f"{what}{extra}")
        time.sleep(interval)


_ports_given = set()


def _below_ephemeral():
    """(lo, hi): ports below the kernel's ephemeral range. A port from it
    is never the source port of an outgoing connection, so a poll of a
    server that does not listen yet cannot connect to itself (TCP
    self-connect: source port == destination port) and hold the port the
    server is about to bind; the slower the server starts (valgrind), the
    likelier that was."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return (10000, low - 1) if low > 12000 else (1024, 1024)


_port_rng = random.Random(os.getpid() ^ time.time_ns())

# Ports handed out are also claimed on the machine: one file per port in
# _PORT_DIR, made with O_EXCL and holding the claiming test's pid. Tests
# run in parallel (meson), each picking at random in the same range, and
# a server under valgrind binds seconds after its port was picked; without
# the claim two tests could pick the same port in that window and one
# server would die with "address already in use". A claim is dropped at
# exit, and ignored once its pid is gone or it is an hour old.
_PORT_DIR = os.path.join(tempfile.gettempdir(),
                         f"reflex-test-ports-{os.getuid()}")
_claims = []


def _claim_stale(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return True
    if age > 3600:
        return True
    if not text.isdigit():
        return age > 60  # being written, or junk
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _claim(port):
    """True if this process now holds the machine-wide claim on `port`."""
    try:
        os.makedirs(_PORT_DIR, mode=0o700, exist_ok=True)
    except OSError:
        return True  # no shared directory: fall back to the bind check
    path = os.path.join(_PORT_DIR, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            if not _claim_stale(path):
                return False
            try:
                os.unlink(path)
            except OSError:
                pass
            continue
        except OSError:
            return True
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _claims.append(path)
        return True
    return False


@atexit.register
def _drop_claims():
    for path in _claims:
        try:
            os.unlink(path)
        except OSError:
            pass
    _claims.clear()


def _bind_ok(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def free_ports(n=1):
    """The first of `n` consecutive TCP ports on 127.0.0.1 that were free
    a moment ago, that no other test on this machine has claimed and that
    this process has not handed out before, below the ephemeral range
    where there is one (see _below_ephemeral). A program outside the tests
    may still take one before it is used; Lab._start_server retries on
    "address already in use"."""
    lo, hi = _below_ephemeral()
    for _ in range(300):
        base = _port_rng.randint(lo, hi - n + 1) if hi - n + 1 > lo else None
        if base is None:
            break
        want = range(base, base + n)
        if any(p in _ports_given for p in want):
            continue
        if not all(_bind_ok(p) for p in want):
            continue
        if all(_claim(p) for p in want):
            _ports_given.update(want)
            return base
    if n == 1:  # no range below the ephemeral one: let the kernel choose
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _ports_given and _claim(port):
                _ports_given.add(port)
                return port
    raise LabError(f"no {n} free loopback port(s) found")


def free_port():
    """One port from free_ports()."""
    return free_ports(1)


# Names Debian's packages install (see `dpkg -L prometheus
# prometheus-alertmanager`): Alertmanager is prometheus-alertmanager.
_BINARIES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "promtool": ("promtool",),
    "amtool": ("amtool",),
}


def find_binary(name):
    """Path of a monitoring tool: $REFLEX_<NAME> (e.g. REFLEX_PROMETHEUS)
    if set, else the first of its known names on PATH, else None."""
    env = os.environ.get("REFLEX_" + name.upper())
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in _BINARIES.get(name, (name,)):
        p = shutil.which(cand)
        if p:
            return p
    return None


def missing_monitoring_tools():
    """Names of the monitoring tools that are not installed ([] if all)."""
    return [n for n in _BINARIES if find_binary(n) is None]


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def build_dir(arg=None):
    """The reflex build directory: `arg`, else $REFLEX_BUILD, else
    <repo>/build. Raises LabError if it does not exist."""
    d = arg or os.environ.get("REFLEX_BUILD") or os.path.join(repo_root(),
                                                              "build")
    if not os.path.isdir(d):
        raise LabError(f"reflex build directory {d!r} not found (set "
                       "REFLEX_BUILD or pass it)")
    return os.path.abspath(d)


def reflex_binary(name, build=None):
    """Path of a reflex executable (reflex-coordinator, reflex-agent,
    reflex-demo-svc, ...) in the build dir. Raises LabError if absent."""
    d = build_dir(build)
    for sub in ("", "coordinator", "agent", "deploy/demo", "tests",
                "tests/tools", "tools"):
        p = os.path.join(d, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise LabError(f"{name} not found in build directory {d} (build it "
                   f"first: ninja -C {d} {name})")


def pids_listening(port):
    """Pids of processes with a TCP socket listening on `port` (any
    address), found through /proc. Needs permission to read their fds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    col = line.split()
                    local, state, inode = col[1], col[3], col[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1],
                                             16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    pids = []
    if not inodes:
        return pids
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(f"{fd_dir}/{fd}") in inodes:
                    pids.append(int(pid))
                    break
        except OSError:
            continue
    return pids


# ---------------------------------------------------------------------------
# YAML (enough for Prometheus and Alertmanager configs)

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _yaml_inline(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, (list, tuple)):
        return "[]"
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted one


def _yaml_simple(v):
    return not isinstance(v, (dict, list, tuple)) or len(v) == 0


def _yaml_lines(obj, ind):
    pad = " " * ind
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            k = str(k)
            key = k if _PLAIN_KEY.fullmatch(k) else json.dumps(k)
            if _yaml_simple(v):
                out.append(f"{pad}{key}: {_yaml_inline(v)}")
            else:
                out.append(f"{pad}{key}:")
                out.extend(_yaml_lines(v, ind + 2))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            if _yaml_simple(v):
                out.append(f"{pad}- {_yaml_inline(v)}")
            else:
                sub = _yaml_lines(v, ind + 2)
                sub[0] = f"{pad}- {sub[0][ind + 2:]}"
                out.extend(sub)
    else:
        out.append(pad + _yaml_inline(obj))
    return out


def yaml_dump(obj):
    """Block-style YAML for dicts, lists, strings, numbers, bools."""
    if _yaml_simple(obj):
        return _yaml_inline(obj) + "\n"
    return "\n".join(_yaml_lines(obj, 0)) + "\n"


# ---------------------------------------------------------------------------
# valgrind and time scaling (issue 6)

VALGRIND_DAEMONS = ("reflex-coordinator", "reflex-agent")
VALGRIND_EXIT = 99        # --error-exitcode: an error or leak was found
VALGRIND_FACTOR = 20.0    # default time factor under valgrind


def valgrind_enabled():
    """True when $REFLEX_VALGRIND asks for reflex's daemons under
    valgrind."""
    return os.environ.get("REFLEX_VALGRIND", "") not in ("", "0")


def time_factor():
    """$REFLEX_TIME_FACTOR (a number >= 1), else 20 under valgrind, else
    1. Bad values raise LabError."""
    env = os.environ.get("REFLEX_TIME_FACTOR", "")
    if env == "":
        return VALGRIND_FACTOR if valgrind_enabled() else 1.0
    try:
        f = float(env)
    except ValueError:
        f = 0.0
    if not 1.0 <= f <= 1000.0:
        raise LabError(f"REFLEX_TIME_FACTOR={env!r}: want a number from 1 "
                       "to 1000")
    return f


def scaled(seconds):
    """`seconds` stretched by time_factor(): for timeouts and waits that
    reflex's own processes must meet (valgrind runs them 20-50x slower)."""
    return seconds * time_factor()


class ValgrindRun:
    """One reflex daemon started under valgrind: its name, log and
    process (a subprocess.Popen, set once started)."""

    def __init__(self, name, log_path):
        self.name = name
        self.log_path = log_path
        self.popen = None
        self.forced = False     # the harness had to SIGKILL it
        self.own_tail = ""      # then: the last lines of its own log
        self.reported = False

    def verdict(self):
        """(clean, what): clean is False when valgrind reported an error
        or a definite/indirect leak, or the process hung at exit."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError as e:
            return False, f"no valgrind log ({e})"
        rc = self.popen.poll() if self.popen else None
        sums = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
        if sums:
            n = int(sums[-1])
            if n or rc == VALGRIND_EXIT:
                return False, f"{n} valgrind errors (exit {rc})"
            if self.forced:
                return False, "ignored SIGTERM (killed by the harness)"
            return True, "clean"
        if rc == VALGRIND_EXIT or re.search(r"==\d+==\s+(at|by) 0x", text):
            return False, f"valgrind reported errors (exit {rc})"
        if self.forced:
            return False, "ignored SIGTERM (killed by the harness)"
        if rc == -signal.SIGKILL:
            # SIGKILLed on purpose by the test: valgrind could not check
            # the exit, and had found nothing before.
            return True, "killed (SIGKILL), exit not checked"
        return False, f"no valgrind summary (exit {rc})"

    def tail(self, n=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""


_VG_RUNS = []
_vg_seq = [0]


def valgrind_log_dir():
    """Where the valgrind logs go: $REFLEX_VALGRIND when it is a path,
    else <build>/meson-logs/valgrind. Created if missing."""
    env = os.environ.get("REFLEX_VALGRIND", "")
    d = env if os.sep in env else os.path.join(build_dir(), "meson-logs",
                                               "valgrind")
    os.makedirs(d, exist_ok=True)
    return d


def valgrind_argv(argv, name, daemons=VALGRIND_DAEMONS):
    """(argv, run): argv prefixed with valgrind and a ValgrindRun to
    record, when valgrind is on and argv[0]'s name is in `daemons`; else
    (argv, None). The caller sets run.popen once started."""
    argv = [str(a) for a in argv]
    if not valgrind_enabled() or os.path.basename(argv[0]) not in daemons:
        return argv, None
    vg = shutil.which("valgrind")
    if not vg:
        raise LabError("REFLEX_VALGRIND is set but valgrind is not installed")
    _vg_seq[0] += 1
    test = os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    log = os.path.join(valgrind_log_dir(),
                       f"{test}-{_vg_seq[0]:03d}-{safe}.log")
    supp = os.path.join(repo_root(), "tests", "valgrind.supp")
    pre = [vg, f"--error-exitcode={VALGRIND_EXIT}", "--leak-check=full",
           "--show-leak-kinds=definite,indirect",
           "--errors-for-leak-kinds=definite,indirect",
           "--num-callers=30", "--trace-children=no",
           # Not glibc's __libc_freeres at exit: it takes locks that a
           # thread killed by the exit may hold (seen: libnng's resolver
           # thread inside getaddrinfo while the stuck-libnng test stopped
           # the coordinator; exit() then waited for ever on check_pf's
           # lock). Only glibc's own "still reachable" blocks go uncounted,
           # and those count for nothing here.
           "--run-libc-freeres=no",
           "--child-silent-after-fork=yes", f"--log-file={log}"]
    if os.path.isfile(supp):
        pre.append(f"--suppressions={supp}")
    run = ValgrindRun(name, log)
    _VG_RUNS.append(run)
    return pre + argv, run


def reflex_popen(name, argv, daemons=VALGRIND_DAEMONS, **kwargs):
    """subprocess.Popen(argv, **kwargs), under valgrind when that is on
    and argv[0] is reflex-coordinator or reflex-agent (see
    valgrind_argv); `name` names its valgrind log. Stop it with SIGTERM
    and give it scaled() time: the report comes from Tap.done()."""
    argv, run = valgrind_argv(argv, name, daemons)
    p = subprocess.Popen(argv, **kwargs)
    if run:
        run.popen = p
    return p


def valgrind_report(tap):
    """Stops every daemon still running under valgrind (SIGTERM, scaled
    grace) and adds to `tap` a "not ok" naming the log of each one with
    an error, a definite/indirect leak or a hang at exit, and one "ok"
    when every one was clean. Nothing when none ran under valgrind."""
    runs = [r for r in _VG_RUNS if not r.reported]
    if not runs:
        return
    for r in runs:
        p = r.popen
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(scaled(STOP_GRACE))
            except subprocess.TimeoutExpired:
                r.forced = True
                p.kill()
                p.wait()
    bad = 0
    for r in runs:
        r.reported = True
        clean, what = r.verdict()
        if not clean:
            bad += 1
            tap.ok(False, f"valgrind: {r.name}: {what}; log {r.log_path}",
                   r.tail() + ("\n-- its own log, last lines --\n" +
                               r.own_tail if r.own_tail else ""))
        elif what != "clean":
            tap.diag(f"valgrind: {r.name}: {what} ({r.log_path})")
    if not bad:
        tap.ok(True, f"valgrind: {len(runs)} reflex processes, no errors "
               f"and no definite or indirect leaks (logs in "
               f"{os.path.dirname(runs[0].log_path)})")


# ---------------------------------------------------------------------------
# processes

class Proc:
    """A process started by a Lab: its own session/process group, output
    (stdout and stderr) in `log_path`."""

    def __init__(self, name, argv, popen, log_path):
        self.name = name
        self.argv = argv
        self.popen = popen
        self.log_path = log_path
        self.started = time.monotonic()
        self.port = None
        self.url = None
        self.valgrind = None    # a ValgrindRun when under valgrind

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def wait(self, timeout):
        """Exit status, or None if still running after `timeout`."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_text(self, tail=None):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def _group_alive(self):
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self, grace=STOP_GRACE):
        """SIGTERM to the process group, SIGKILL after `grace` seconds
        (scaled); then kills whatever else is left in the group. Returns
        the exit status (negative = killed by that signal)."""
        grace = scaled(grace)
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                _note(f"{self.name} (pid {self.pid}) ignored SIGTERM for "
                      f"{grace:g}s; sending SIGKILL")
                stacks = thread_stacks(self.pid, bool(self.valgrind))
                if self.valgrind:
                    self.valgrind.forced = True
                    # What it said last, for the failure report: under
                    # valgrind the kill leaves its log without a summary.
                    self.valgrind.own_tail = self.log_text(tail=25) + \
                        ("\n-- its threads --\n" + stacks if stacks else "")
                elif stacks:
                    _note(f"{self.name}: its threads:\n{stacks}")
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait()
        if self._group_alive():
            _note(f"{self.name} left processes in its group {self.pid}; "
                  "killing them")
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.popen.returncode

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid}>"


def thread_stacks(pid, under_valgrind=False):
    """Every thread's backtrace of a live process, as gdb prints it (for
    a process that ignored SIGTERM: where it hangs), or "" without gdb.
    Under valgrind, gdb reaches the program through vgdb. Bounded: at
    most 60 s."""
    gdb = shutil.which("gdb")
    if not gdb or (under_valgrind and not shutil.which("vgdb")):
        return ""
    target = (["-ex", f"target remote | vgdb --pid={pid}"] if under_valgrind
              else ["-p", str(pid)])
    try:
        r = subprocess.run([gdb, "-nx", "-batch", "-ex", "set pagination off"]
                           + target + ["-ex", "thread apply all bt 20"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(gdb: {e})"
    lines = [ln for ln in r.stdout.splitlines()
             if ln.startswith(("#", "Thread"))]
    return "\n".join(lines[:400])


def _note(msg):
    sys.stderr.write(f"reflexlab: {msg}\n")
    sys.stderr.flush()


_SETPRIV = shutil.which("setpriv")


def _child_env(extra=None):
    env = dict(os.environ)
    for k in PROXY_VARS:
        env.pop(k, None)
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost,::1"
    if extra:
        env.update(extra)
    return env


# Labs alive in this process, for atexit and signal handlers.
_LABS = []
_handlers_installed = False


def _stop_all_labs():
    for lab in list(_LABS):
        lab.close()


def _on_signal(signum, frame):
    # Unwind through `with Lab()` blocks (which stop everything); atexit
    # is the backstop. Further signals are blocked while stopping.
    raise SystemExit(128 + signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all_labs)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)
    # SIGINT keeps Python's default: KeyboardInterrupt also unwinds.


# ---------------------------------------------------------------------------
# fake webhook receiver

class Delivery:
    """One POST the fake receiver got."""

    def __init__(self, path, headers, body):
        self.time = time.time()
        self.mono = time.monotonic()
        self.path = path
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    @property
    def alerts(self):
        if isinstance(self.json, dict) and isinstance(
                self.json.get("alerts"), list):
            return self.json["alerts"]
        return []


def labels_match(labels, want):
    return all(labels.get(k) == v for k, v in want.items())


class WebhookReceiver:
    """Alertmanager webhook stand-in on 127.0.0.1: records every POST and
    answers `status` (200 unless changed)."""

    def __init__(self, port=0, status=200):
        self.status = status
        self.deliveries = []
        self._cond = threading.Condition()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    n = -1
                if n < 0 or n > HOOK_BODY_MAX:
                    self._answer(413)
                    return
                body = self.rfile.read(n)
                rec._record(Delivery(self.path, dict(self.headers), body))
                self._answer(rec.status)

            def do_GET(self):
                self._answer(404)

            def _answer(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="webhook-receiver", daemon=True)
        self._thread.start()

    def _record(self, d):
        with self._cond:
            self.deliveries.append(d)
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.deliveries)

    def alerts(self, status=None, **labels):
        """Every (delivery, alert) so far whose alert has `status`
        ("firing"/"resolved", None = any) and carries `labels`."""
        out = []
        for d in self.snapshot():
            for a in d.alerts:
                if status and a.get("status") != status:
                    continue
                if labels_match(a.get("labels") or {}, labels):
                    out.append((d, a))
        return out

    def wait_for_alert(self, timeout, status="firing", **labels):
        """First (delivery, alert) matching, waiting up to `timeout`
        seconds for it. Raises LabTimeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for d in self.deliveries:
                    for a in d.alerts:
                        if (a.get("status") == status and labels_match(
                                a.get("labels") or {}, labels)):
                            return d, a
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabTimeout(
                        f"no {status} alert {labels} within {timeout:g}s "
                        f"({len(self.deliveries)} deliveries)")
                self._cond.wait(left)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------------------
# Prometheus and Alertmanager handles

class Alertmanager:
    def __init__(self, proc, port, config_path):
        self.proc = proc
        self.port = port
        self.addr = f"{LOOPBACK}:{port}"
        self.url = f"http://{self.addr}"
        self.config_path = config_path

    def alerts(self, active=True, silenced=False, inhibited=False,
               unprocessed=False, **labels):
        """/api/v2/alerts, filtered here by exact label values."""
        q = urllib.parse.urlencode({
            "active": str(active).lower(), "silenced": str(silenced).lower(),
            "inhibited": str(inhibited).lower(),
            "unprocessed": str(unprocessed).lower()})
        out = http_json(f"{self.url}/api/v2/alerts?{q}")
        return [a for a in out if labels_match(a.get("labels") or {}, labels)]


class Prometheus:
    def __init__(self, proc, port, config_path):
        self.proc = proc
        self.port = port
        self.addr = f"{LOOPBACK}:{port}"
        self.url = f"http://{self.addr}"
        self.config_path = config_path

    def _api(self, path, params=None):
        q = "?" + urllib.parse.urlencode(params) if params else ""
        r = http_get(f"{self.url}/api/v1/{path}{q}")
        try:
            doc = r.json()
        except ValueError:
            raise LabError(f"Prometheus /api/v1/{path}: HTTP {r.status}, "
                           f"not JSON: {r.text[:200]}") from None
        if doc.get("status") != "success":
            raise LabError(f"Prometheus /api/v1/{path}: {doc.get('errorType')}"
                           f": {doc.get('error')}")
        return doc["data"]

    def query(self, expr):
        """Instant query; returns the result list (for a vector:
        [{"metric": {...}, "value": [t, "v"]}, ...]; [] = no data)."""
        return self._api("query", {"query": expr})["result"]

    def value(self, expr, **labels):
        """The float value of the first series of `expr` whose labels
        include `labels`, or None when there is none."""
        for s in self.query(expr):
            if labels_match(s.get("metric", {}), labels):
                return float(s["value"][1])
        return None

    def targets(self):
        return self._api("targets")["activeTargets"]

    def alerts(self):
        """Prometheus' own view: pending and firing alerts."""
        return self._api("alerts")["alerts"]

    def alertmanagers(self):
        return self._api("alertmanagers")["activeAlertmanagers"]


# ---------------------------------------------------------------------------
# the lab

class Lab:
    """Owns a work directory and every process and server started through
    it. Use as a context manager; close() is idempotent."""

    def __init__(self, workdir=None, keep=None, prefix="reflexlab-"):
        if workdir:
            os.makedirs(workdir, exist_ok=True)
            self.workdir = os.path.abspath(workdir)
            self._own_dir = False
        else:
            self.workdir = tempfile.mkdtemp(prefix=prefix)
            self._own_dir = True
        if keep is None:
            keep = os.environ.get("REFLEXLAB_KEEP", "") not in ("", "0")
        self.keep = keep
        self.procs = []
        self._receivers = []
        self._closed = False
        self._failed = False
        _install_handlers()
        _LABS.append(self)

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if etype is not None:
            self._failed = True
        self.close()
        return False

    # -- files ---------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def write_file(self, name, text):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def mark_failed(self):
        """Keeps the work directory (logs) when the lab closes."""
        self._failed = True

    # -- processes -----------------------------------------------------

    def start(self, name, argv, env=None, cwd=None, ready_url=None,
              ready_timeout=10.0, port=None):
        """Starts argv[0] with its output in <workdir>/<name>.log, in its
        own process group, killed with SIGKILL should this script die.
        With `ready_url`, waits (bounded) until it answers 2xx; raises
        LabError with the log's tail if the process exits first or the
        wait times out."""
        if self._closed:
            raise LabError("lab is closed")
        log_path = self.path(f"{name}.log")
        argv = [str(a) for a in argv]
        full, vg = valgrind_argv(argv, name)
        if _SETPRIV:
            full = [_SETPRIV, "--pdeathsig", "KILL", "--"] + full
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=cwd or self.workdir,
                env=_child_env(env), start_new_session=True,
                close_fds=True)
        p = Proc(name, argv, popen, log_path)
        if vg:
            vg.popen = popen
            p.valgrind = vg
        p.port = port
        p.url = f"http://{LOOPBACK}:{port}" if port else None
        self.procs.append(p)
        if ready_url:
            check_loopback_url(ready_url)
            self.wait_ready(p, ready_url, ready_timeout)
        return p

    def wait_ready(self, p, url, timeout):
        def ready():
            if not p.alive():
                raise LabAbort(
                    f"{p.name} exited with status {p.returncode} before it "
                    f"was ready; log {p.log_path}:\n{p.log_text(tail=15)}")
            return http_ok(url, timeout=1.0)
        try:
            wait_until(ready, timeout, interval=0.05, what=f"{p.name} ready")
        except LabTimeout:
            raise LabError(f"{p.name} not ready at {url} after {timeout:g}s;"
                           f" log {p.log_path}:\n{p.log_text(tail=15)}") \
                from None

    def stop(self, p, grace=STOP_GRACE):
        """Stops one process (see Proc.stop) and forgets it."""
        rc = p.stop(grace)
        if p in self.procs:
            self.procs.remove(p)
        return rc

    def close(self):
        """Stops every receiver and process (newest first), then removes
        the work directory unless something failed or keep is set."""
        if self._closed:
            return
        self._closed = True
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for p in reversed(self.procs):
                try:
                    p.stop()
                except Exception as e:  # noqa: BLE001 - keep stopping
                    _note(f"stopping {p.name}: {e!r}")
            self.procs.clear()
            for r in self._receivers:
                r.stop()
            self._receivers.clear()
        finally:
            if self in _LABS:
                _LABS.remove(self)
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if self._failed or self.keep or not self._own_dir:
            _note(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- fake receiver -------------------------------------------------

    def start_webhook_receiver(self, port=0, status=200):
        r = WebhookReceiver(port=port, status=status)
        self._receivers.append(r)
        return r

    # -- monitoring ----------------------------------------------------

    def _tool(self, name):
        p = find_binary(name)
        if not p:
            raise LabError(f"{name} not installed (Debian: apt-get install "
                           "prometheus prometheus-alertmanager)")
        return p

    def _check(self, argv, what):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60,
                           env=_child_env())
        if r.returncode != 0:
            raise LabError(f"{what} failed ({' '.join(argv)}):\n"
                           f"{r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def check_rules(self, path):
        return self._check([self._tool("promtool"), "check", "rules", path],
                           "promtool check rules")

    def check_metrics(self, text):
        """Runs `promtool check metrics` on exposition text. Returns
        (exit status, output): 0 clean, 3 lint problems, 1 parse error."""
        r = subprocess.run([self._tool("promtool"), "check", "metrics"],
                           input=text, capture_output=True, text=True,
                           timeout=60, env=_child_env())
        return r.returncode, r.stdout + r.stderr

    def _start_server(self, name, make_argv, ready_path, timeout, port=None):
        # Picks a port, starts, and retries with another port if this one
        # was taken between free_port() and the bind; a port given is
        # tried once.
        fixed = port
        for attempt in range(1 if fixed else 3):
            port = fixed or free_port()
            try:
                p = self.start(name if attempt == 0 else f"{name}-{attempt}",
                               make_argv(port), port=port,
                               ready_url=f"http://{LOOPBACK}:{port}"
                                         f"{ready_path}",
                               ready_timeout=timeout)
                return p, port
            except LabError as e:
                if "address already in use" not in str(e).lower():
                    raise
                _note(f"{name}: port {port} taken, retrying")
        raise LabError(f"{name}: could not find a free port")

    def start_alertmanager(self, webhook_url, name="alertmanager",
                           receiver="reflex",
                           group_by=("alertname", "service", "instance"),
                           group_wait="1s", group_interval="1s",
                           repeat_interval="1h", timeout=20.0):
        """Validates (amtool check-config) and starts Alertmanager with
        one route to one webhook receiver (send_resolved: true),
        clustering off, storage in the work dir. Waits for /-/ready."""
        check_loopback_url(webhook_url)
        binary = self._tool("alertmanager")
        cfg = {
            "route": {
                "receiver": receiver,
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{
                "name": receiver,
                "webhook_configs": [{"url": webhook_url,
                                     "send_resolved": True}],
            }],
        }
        cfg_path = self.write_file(f"{name}/alertmanager.yml",
                                   yaml_dump(cfg))
        self._check([self._tool("amtool"), "check-config", cfg_path],
                    "amtool check-config")
        storage = self.path(name, "data")
        os.makedirs(storage, exist_ok=True)

        def argv(port):
            return [binary, f"--config.file={cfg_path}",
                    f"--storage.path={storage}",
                    f"--web.listen-address={LOOPBACK}:{port}",
                    f"--web.external-url=http://{LOOPBACK}:{port}/",
                    "--cluster.listen-address=", "--log.level=info"]
        p, port = self._start_server(name, argv, "/-/ready", timeout)
        return Alertmanager(p, port, cfg_path)

    def start_prometheus(self, scrape, rule_files=(), alertmanager=None,
                         name="prometheus", scrape_interval="1s",
                         evaluation_interval="1s", resend_delay="2s",
                         timeout=30.0, port=None):
        """Validates (promtool check rules/config) and starts Prometheus.

        scrape: list of {"job": NAME, "targets": ["127.0.0.1:PORT", ...],
        "labels": {...}} (entries of one job are merged; labels are added
        to that entry's targets). rule_files: paths. alertmanager: an
        Alertmanager from start_alertmanager (started first, so no alert
        is dropped), or None. Waits for /-/ready and, with an
        Alertmanager, until Prometheus has discovered it. port: listen
        there (e.g. one a config already names) instead of a free one."""
        binary = self._tool("prometheus")
        jobs = {}
        for entry in scrape:
            targets = [check_loopback_addr(t) for t in entry["targets"]]
            sc = {"targets": targets}
            if entry.get("labels"):
                sc["labels"] = dict(entry["labels"])
            jobs.setdefault(entry["job"], []).append(sc)
        rules = [os.path.abspath(r) for r in rule_files]
        for r in rules:
            self.check_rules(r)
        cfg = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "rule_files": rules,
            "scrape_configs": [{"job_name": job, "static_configs": scs}
                               for job, scs in jobs.items()],
        }
        if alertmanager is not None:
            cfg["alerting"] = {"alertmanagers": [{
                "timeout": "2s",
                "static_configs": [{"targets": [alertmanager.addr]}],
            }]}
        cfg_path = self.write_file(f"{name}/prometheus.yml", yaml_dump(cfg))
        self._check([self._tool("promtool"), "check", "config", cfg_path],
                    "promtool check config")
        tsdb = self.path(name, "data")
        os.makedirs(tsdb, exist_ok=True)

        def argv(port):
            return [binary, f"--config.file={cfg_path}",
                    f"--storage.tsdb.path={tsdb}",
                    f"--web.listen-address={LOOPBACK}:{port}",
                    f"--web.external-url=http://{LOOPBACK}:{port}/",
                    f"--rules.alert.resend-delay={resend_delay}",
                    "--log.level=info"]
        p, port = self._start_server(name, argv, "/-/ready", timeout, port)
        prom = Prometheus(p, port, cfg_path)
        if alertmanager is not None:
            wait_until(lambda: prom.alertmanagers(), timeout, interval=0.1,
                       what="Prometheus to discover Alertmanager")
        return prom


# ---------------------------------------------------------------------------
# TAP

class Tap:
    """TAP output for Python test scripts:

        tap = Tap()
        tap.ok(x == 1, "x is one")
        sys.exit(tap.done())        # trailing plan and a summary

    or Tap.main(fn) to run fn(tap) and turn an exception into a failed
    test point. Tap.skip_all(reason) prints "1..0 # SKIP reason" and
    exits 0."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.n = 0
        self.failed = 0
        self.skipped = 0
        self.planned = None

    def _emit(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def plan(self, n):
        self.planned = n
        self._emit(f"1..{n}")

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            self._emit(f"# {line}")

    def ok(self, cond, desc, diag=None):
        self.n += 1
        desc = str(desc).replace("#", "\\#").replace("\n", " ")
        if cond:
            self._emit(f"ok {self.n} - {desc}")
        else:
            self.failed += 1
            self._emit(f"not ok {self.n} - {desc}")
            if diag is not None:
                self.diag(diag)
        return bool(cond)

    def skip(self, desc, reason):
        self.n += 1
        self.skipped += 1
        self._emit(f"ok {self.n} - {desc} # SKIP {reason}")

    @staticmethod
    def skip_all(reason, out=None):
        out = out or sys.stdout
        out.write(f"1..0 # SKIP {reason}\n")
        out.flush()
        sys.exit(0)

    def bail_out(self, reason):
        self._emit(f"Bail out! {reason}")
        sys.exit(1)

    def done(self):
        """Prints the trailing plan (if none was given) and a summary;
        returns the exit status (1 if anything failed or the count is off).
        Under valgrind, first adds the valgrind verdicts (valgrind_report)."""
        valgrind_report(self)
        if self.planned is None:
            self._emit(f"1..{self.n}")
        elif self.planned != self.n:
            self.diag(f"planned {self.planned} tests but ran {self.n}")
            self.failed += abs(self.planned - self.n)
        passed = self.n - self.failed - self.skipped
        self.diag(f"{passed} passed, {self.failed} failed, "
                  f"{self.skipped} skipped")
        return 1 if self.failed else 0

    @classmethod
    def main(cls, fn):
        """Runs fn(tap); an exception becomes a "not ok" with its
        traceback; exits with tap.done()."""
        tap = cls()
        try:
            fn(tap)
        except SystemExit as e:
            if e.code in (0, None) or tap.n == 0:
                raise
            # a signal (see _on_signal) or an explicit exit mid-run
            tap.ok(False, f"ran to the end (stopped with exit {e.code})")
            tap.done()
            raise
        except BaseException as e:  # noqa: BLE001 - reported as TAP
            tap.ok(False, f"no unexpected exception ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})",
                   diag=traceback.format_exc())
        sys.exit(tap.done())


__all__ = [
    "LOOPBACK", "LabError", "LabTimeout", "LabAbort", "HttpReply", "http_request",
    "http_get", "http_post", "http_json", "http_ok", "wait_until",
    "free_port", "find_binary", "missing_monitoring_tools", "repo_root",
    "build_dir", "reflex_binary", "pids_listening", "yaml_dump", "Proc",
    "Delivery", "WebhookReceiver", "Alertmanager", "Prometheus", "Lab",
    "Tap", "labels_match", "is_loopback_host", "check_loopback_url",
    "check_loopback_addr", "valgrind_enabled", "time_factor", "scaled",
    "valgrind_argv", "reflex_popen", "valgrind_report",
]


def log_tails(workdir, lines=25):
    """The last `lines` lines of every *.log in workdir, each headed by its
    name: what a failed case prints, since CI keeps no work directory."""
    out = []
    try:
        names = sorted(n for n in os.listdir(workdir) if n.endswith(".log"))
    except OSError:
        return ""
    for name in names:
        path = os.path.join(workdir, name)
        try:
            # Regular files only: opening a FIFO would wait for a writer.
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                tail = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        out.append(f"--- {name} (last {min(lines, len(tail))} lines)")
        out.extend(tail[-lines:])
    return "\n".join(out)


def _run_in_lab(tap, run, prefix, what):
    lab = None
    try:
        with Lab(prefix=prefix, keep=bool(os.environ.get("REFLEX_KEEP"))) \
                as lab:
            run(tap, lab)
    except Exception as e:  # noqa: BLE001 - report, do not crash
        tails = log_tails(lab.workdir) if lab is not None else ""
        tap.ok(False, f"{what} to the end: {e}",
               traceback.format_exc() + tails)


def lab_main(run, prefix):
    """The main() of a test script that needs one lab: run(tap, lab) in
    a Lab under <tmp>/<prefix>* (kept when $REFLEX_KEEP is set or
    something failed), an exception reported as a failing case with its
    traceback, then the exit status of Tap.done()."""
    tap = Tap()
    _run_in_lab(tap, run, prefix, "ran")
    sys.exit(tap.done())


def labs_main(tests):
    """lab_main for a script of several test functions, each t(tap, lab)
    in a lab of its own (prefix reflex-<name>-); $REFLEX_ONLY runs those
    whose name holds it."""
    tap = Tap()
    only = os.environ.get("REFLEX_ONLY")
    for t in tests:
        if not only or only in t.__name__:
            _run_in_lab(tap, t, f"reflex-{t.__name__}-",
                        f"{t.__name__} ran")
    sys.exit(tap.done())

