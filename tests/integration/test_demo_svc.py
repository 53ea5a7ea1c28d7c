#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""demo_svc: reflex-demo-svc on its own, on 127.0.0.1.

Endpoints and faults (hang, unhealthy, errors, crash, clear), the exact
error share of the simulated traffic, malformed and oversized requests,
connection floods, argument checking (loopback only), SIGTERM -> exit 0,
crash -> exit 1 and a clean state after a restart. Prints TAP. The
promtool lint point is skipped when promtool is not installed.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from reflexlab import (Lab, Tap, find_binary, free_port,  # noqa: E402
                       http_get, http_post, reflex_binary, wait_until)


def metrics(svc):
    """{(name, labels-string): float} from the service's /metrics."""
    out = {}
    for line in http_get(svc.url + "/metrics").text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(\{[^}]*\})? (\S+)", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def raw(port, data, timeout=5.0):
    """Sends raw bytes, returns everything the server sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def status_of(reply):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
    return int(m.group(1)) if m else None


def start(lab, demo, name):
    port = free_port()
    return lab.start(name, [demo, "--port", port, "--name", name], port=port,
                     ready_url=f"http://127.0.0.1:{port}/healthz")


def test_args(tap, demo):
    def run(*args):
        return subprocess.run([demo, *args], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
    r = run("--help")
    tap.ok(r.returncode == 0 and "--port" in r.stdout, "--help exits 0")
    for args, why in ((["--port", "abc"], "non-numeric port"),
                      (["--port", "70000"], "port out of range"),
                      ([], "no port"),
                      (["--port", "1", "--name", "bad name"], "bad name"),
                      (["--listen", "10.1.2.3:8080"], "non-loopback address"),
                      (["--listen", "0.0.0.0", "--port", "1"],
                       "wildcard address"),
                      (["--port", "1", "--log-level", "loud"], "bad level"),
                      (["--port", "1", "extra"], "extra argument")):
        r = run(*args)
        tap.ok(r.returncode == 2, f"refuses {why} with exit 2",
               diag=f"exit {r.returncode}: {r.stderr}")


def test_basics(tap, lab, svc):
    r = http_get(svc.url + "/healthz")
    tap.ok(r.status == 200 and r.text == "ok\n", "GET /healthz: 200 ok",
           diag=f"{r.status} {r.text!r}")
    r = http_get(svc.url + "/metrics")
    tap.ok(r.headers.get("Content-Type") ==
           "text/plain; version=0.0.4; charset=utf-8",
           "/metrics Content-Type is the 0.0.4 text format",
           diag=str(r.headers))
    if find_binary("promtool"):
        rc, out = lab.check_metrics(r.text)
        tap.ok(rc == 0, "promtool check metrics: clean", diag=out + r.text)
    else:
        tap.skip("promtool check metrics: clean", "promtool not installed")
    m = metrics(svc)
    tap.ok(m.get(("demo_up", "")) == 1.0 and
           ('demo_info', '{name="demo-x"}') in m and
           abs(m.get(("demo_start_time_seconds", ""), 0) - time.time()) < 600,
           "demo_up 1, demo_info carries the name, start time is now",
           diag=str(m))
    for method, path, want in (("GET", "/fault/clear", 405),
                               ("POST", "/metrics", 405),
                               ("POST", "/healthz", 405),
                               ("GET", "/nope", 404),
                               ("POST", "/fault/nope", 404)):
        r = (http_get if method == "GET" else http_post)(svc.url + path)
        tap.ok(r.status == want, f"{method} {path}: {want}",
               diag=f"got {r.status}")


def test_error_share(tap, svc):
    for bad in ("2", "-0.1", "nan", "inf", "", "0x0.8", "0.5abc", " 0.5"):
        r = http_post(svc.url + "/fault/errors?rate=" + bad.replace(" ",
                                                                    "%20"))
        tap.ok(r.status == 400, f"rate={bad!r} refused with 400",
               diag=f"got {r.status}")
    r = http_post(svc.url + "/fault/errors")
    tap.ok(r.status == 400, "missing rate refused with 400")

    r = http_post(svc.url + "/fault/errors?x=1&rate=0.25")
    tap.ok(r.status == 200, "rate=0.25 accepted")
    m1 = metrics(svc)
    wait_until(lambda: metrics(svc)[("demo_requests_total",
                                     '{code="200"}')] >=
               m1[("demo_requests_total", '{code="200"}')] + 40, 30,
               what="40 more simulated requests")
    m2 = metrics(svc)
    d500 = m2[("demo_requests_total", '{code="500"}')] - \
        m1[("demo_requests_total", '{code="500"}')]
    d200 = m2[("demo_requests_total", '{code="200"}')] - \
        m1[("demo_requests_total", '{code="200"}')]
    tap.ok(abs(d500 - 0.25 * (d500 + d200)) <= 1.0,
           "a quarter of the simulated requests are code 500",
           diag=f"500: {d500}, 200: {d200}")
    tap.ok(m2[("demo_fault_active", '{fault="errors"}')] == 1.0 and
           m2[("demo_fault_error_ratio", "")] == 0.25,
           "demo_fault_active{fault=errors} 1, ratio 0.25", diag=str(m2))
    r = http_get(svc.url + "/healthz")
    tap.ok(r.status == 200, "/healthz still ok under the error fault")
    http_post(svc.url + "/fault/clear")
    m3 = metrics(svc)
    wait_until(lambda: metrics(svc)[("demo_requests_total",
                                     '{code="200"}')] >=
               m3[("demo_requests_total", '{code="200"}')] + 20, 30,
               what="20 more simulated requests")
    tap.ok(metrics(svc)[("demo_requests_total", '{code="500"}')] ==
           m3[("demo_requests_total", '{code="500"}')],
           "no code 500 after /fault/clear")


def test_unhealthy_and_hang(tap, svc):
    http_post(svc.url + "/fault/unhealthy")
    r = http_get(svc.url + "/healthz")
    tap.ok(r.status == 500, "unhealthy: /healthz answers 500",
           diag=f"got {r.status}")
    http_post(svc.url + "/fault/clear")
    tap.ok(http_get(svc.url + "/healthz").status == 200,
           "clear: /healthz 200 again")

    http_post(svc.url + "/fault/hang")
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = None
        tap.ok(early is None, "hang: /healthz gets no answer",
               diag=repr(early))
        m = metrics(svc)
        tap.ok(m.get(("demo_fault_active", '{fault="hang"}')) == 1.0,
               "hang: /metrics still answers, fault gauge 1")
        http_post(svc.url + "/fault/clear")
        s.settimeout(5)
        late = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            late += b
        tap.ok(status_of(late) == 200 and late.endswith(b"ok\n"),
               "clear answers the parked /healthz with 200 ok",
               diag=repr(late))
    finally:
        s.close()


def test_bad_requests(tap, svc):
    p = svc.port
    cases = (
        (b"garbage\r\n\r\n", 400, "request line without target"),
        (b"GET /healthz FTP/1.0\r\n\r\n", 400, "not HTTP/1.x"),
        (b"GET /he\x00althz HTTP/1.1\r\n\r\n", 400, "NUL byte"),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431,
         "9000-byte header"),
        (b"POST /fault/clear HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
         413, "body over the limit"),
        (b"POST /fault/clear HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400,
         "bad Content-Length"),
        (b"POST /fault/clear HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\n", 501, "chunked body"),
        (b"POST /fault/errors?rate=0 HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
         b"hello", 200, "small body read and ignored"),
    )
    for data, want, why in cases:
        got = status_of(raw(p, data))
        tap.ok(got == want, f"{why}: {want}", diag=f"got {got}")

    # A connection flood: 100 idle connections, then a normal request.
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(("127.0.0.1", p),
                                                  timeout=5))
        r = http_get(svc.url + "/healthz")
        tap.ok(r.status == 200, "answers after 100 idle connections")
    finally:
        for s in socks:
            s.close()
    tap.ok(svc.alive(), "still running after the bad requests")


def test_exits(tap, lab, demo):
    a = start(lab, demo, "demo-term")
    a.signal(signal.SIGTERM)
    rc = a.wait(10)
    tap.ok(rc == 0, "SIGTERM: exit 0", diag=f"exit {rc}")

    b = start(lab, demo, "demo-crash")
    http_post(b.url + "/fault/errors?rate=1")
    r = http_post(b.url + "/fault/crash")
    tap.ok(r.status == 200, "crash: the request is answered first",
           diag=f"got {r.status}")
    rc = b.wait(10)
    tap.ok(rc == 1, "crash: exit 1", diag=f"exit {rc}")

    port = b.port
    c = lab.start("demo-restarted", [demo, "--port", port, "--name",
                                     "demo-crash"], port=port,
                  ready_url=f"http://127.0.0.1:{port}/healthz")
    m = metrics(c)
    tap.ok(all(v == 0 for (n, _), v in m.items()
               if n in ("demo_fault_active", "demo_fault_error_ratio")),
           "a restarted process starts with no fault", diag=str(m))
    r = subprocess.run([demo, "--port", str(port)], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    tap.ok(r.returncode == 1 and "address already in use" in r.stderr.lower(),
           "a taken port: exit 1 with the reason logged",
           diag=f"exit {r.returncode}: {r.stderr}")


def main(tap):
    demo = reflex_binary("reflex-demo-svc")
    test_args(tap, demo)
    with Lab() as lab:
        try:
            svc = start(lab, demo, "demo-x")
            test_basics(tap, lab, svc)
            test_error_share(tap, svc)
            test_unhealthy_and_hang(tap, svc)
            test_bad_requests(tap, svc)
            test_exits(tap, lab, demo)
        finally:
            if tap.failed:
                lab.mark_failed()


if __name__ == "__main__":
    Tap.main(main)
