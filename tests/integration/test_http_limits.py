#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The coordinator's HTTP server bounds every client (issue 6, coord_httpd):
slowloris connections closed at http.header_timeout while others are
served, 413 before reading a body over max_body, 431/414 for big heads,
411/400/505 for what it does not take, the connection cap (oldest idle
closed, else 503), keep-alive, pipelining, HTTP/1.0, Expect:
100-continue, late replies to departed clients, and HTTPS with and
without client certificates. Waits are generous upper bounds; nothing
asserts a duration."""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get,  # noqa: E402
                       reflex_binary, time_factor)

WAIT = 15.0  # upper bound for anything the server does at a 1 s timeout

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: debug
limits:
  max_body: 64KiB
http:
  header_timeout: {header_timeout}
  body_timeout: {body_timeout}
  idle_timeout: 1s
  max_connections: {maxconn}
  max_header_bytes: 16KiB
  max_reply_memory: {reply_memory}
{tls}rules:
  - name: restart-down
    matchers: ['alertname = "ServiceDown"']
    actions:
      - type: restart
        service: web
"""

BODY = json.dumps({"version": "4", "status": "firing", "alerts": [{
    "status": "firing", "labels": {"alertname": "ServiceDown",
                                   "instance": "web-0"},
    "startsAt": "2026-12-04T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z"}]}).encode()


def coordinator(lab, name, maxconn=200, tls="", body_timeout="1s",
                header_timeout="1s", reply_memory="128MiB"):
    http, agents = free_port(), free_port()
    cfg = lab.write_file(f"{name}.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path(f"{name}.db"),
        maxconn=maxconn, tls=tls, body_timeout=body_timeout,
        header_timeout=header_timeout, reply_memory=reply_memory))
    scheme = "https" if tls else "http"
    lab.start(name, [reflex_binary("reflex-coordinator"), "-c", cfg],
              ready_url=None if tls else f"{scheme}://127.0.0.1:{http}/healthz")
    if tls:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", http), 1).close()
                break
            except OSError:
                time.sleep(0.1)
    return http


def connect(port, timeout=WAIT):
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.settimeout(timeout)
    return s


def read_reply(s, buf=b""):
    """Reads one reply's head from s: (status, headers dict, the bytes
    after the head, b""), or (None, {}, b"", b"") when the connection
    closed first."""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = s.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return None, {}, b"", b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest, b""


def reply(s, head_only=False, buf=b""):
    status, hdrs, rest, _ = read_reply(s, buf)
    if status is None or status == 100:
        return status, hdrs, rest
    n = 0 if head_only else int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, hdrs, rest


def pipelined(s, n):
    """Statuses of the next n replies on s, which may share packets."""
    out, buf = [], b""
    for _ in range(n):
        status, hdrs, rest, _ = read_reply(s, buf)
        if status is None:
            return out + [None]
        size = int(hdrs.get("content-length", "0"))
        while len(rest) < size:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        out.append(status)
        buf = rest[size:]
    return out


def closed(s):
    """True when the server closes s (EOF or reset) within WAIT."""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def exchange(port, data, head_only=False):
    with connect(port) as s:
        s.sendall(data)
        return reply(s, head_only)


def get(path, extra=b"", version=b"HTTP/1.1"):
    return (b"GET " + path + b" " + version + b"\r\nHost: 127.0.0.1\r\n" +
            extra + b"\r\n")


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def refused(port):
    text = http_get(f"http://127.0.0.1:{port}/metrics").text
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'reflex_http_refused_total\{reason="([a-z_]+)"\} (\d+)', text)}


def check_keepalive(tap, port):
    with connect(port) as s:
        got = []
        for _ in range(3):
            s.sendall(get(b"/healthz"))
            got.append(reply(s)[0])
        s.sendall(get(b"/healthz") + get(b"/readyz") + get(b"/nope"))
        got += pipelined(s, 3)
        s.sendall(post(b"/api/v1/alerts", BODY))
        st, _, body = reply(s)
        got.append(st)
    tap.ok(got == [200, 200, 200, 200, 200, 404, 200],
           "keep-alive: one connection serves three requests, then three "
           "pipelined ones in order, then a webhook", got)
    st, hdrs, body = exchange(port, get(b"/healthz", version=b"HTTP/1.0"))
    with connect(port) as s:
        s.sendall(get(b"/healthz", b"Connection: close\r\n"))
        st2, hdrs2, _ = reply(s)
        gone = closed(s)
    tap.ok(st == 200 and hdrs.get("connection") == "close" and st2 == 200
           and hdrs2.get("connection") == "close" and gone,
           "HTTP/1.0 and Connection: close are answered and closed",
           (st, hdrs, st2, hdrs2, gone))
    st, hdrs, body = exchange(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                              head_only=True)
    tap.ok(st == 200 and hdrs.get("content-length") == "3" and body == b"",
           "HEAD: the GET route's headers without the body", (st, hdrs, body))
    st, hdrs, body = exchange(port, post(b"/healthz", b""))
    st2, _, body2 = exchange(port, get(b"/webhook/alert"))
    st3, hdrs3, _ = exchange(port, b"DELETE /api/v1/alerts HTTP/1.1\r\n"
                             b"Host: x\r\nContent-Length: 0\r\n\r\n")
    tap.ok(st == 405 and hdrs.get("allow") == "GET" and st2 == 405 and
           b"method not allowed" in body2 and st3 == 405 and
           hdrs3.get("allow") == "POST, GET",
           "wrong method: 405 with Allow (every method of the path) and a "
           "reason", (st, hdrs, st2, st3, hdrs3))
    with connect(port) as s:
        s.sendall(get(b"/healthz"))
        first = reply(s)[0]
        gone = closed(s)
    tap.ok(first == 200 and gone,
           "an idle keep-alive connection is closed at http.idle_timeout",
           (first, gone))


def check_expect(tap, port):
    with connect(port) as s:
        head = post(b"/api/v1/alerts", BODY, b"Expect: 100-continue\r\n")
        s.sendall(head[:-len(BODY)])  # the body only after the 100
        first = reply(s)[0]
        s.sendall(BODY)
        second, _, body = reply(s)
    tap.ok(first == 100 and second == 200 and b"accepted" in body,
           "Expect: 100-continue: 100, then the webhook's 200",
           (first, second, body))
    # RFC 9110, 10.1.1: an HTTP/1.0 request's expectation is ignored (a
    # 1.0 client does not know 1xx and would take the 100 as the answer).
    with connect(port) as s:
        s.sendall(b"POST /api/v1/alerts HTTP/1.0\r\nExpect: 100-continue"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
        first, _, body = reply(s)
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\nExpect: magic\r\n\r\n")
        second = reply(s)[0]
    tap.ok(first == 200 and b"accepted" in body and second == 200,
           "HTTP/1.0: Expect is ignored (no 100 before the webhook's 200, "
           "no 417 for an unknown expectation)", (first, body, second))


def check_sizes(tap, port):
    before = refused(port)
    with connect(port) as s:
        s.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 10000000\r\n\r\n")
        st, hdrs, body = reply(s)
        gone = closed(s)
    tap.ok(st == 413 and b"body of 10000000 bytes exceeds the limit of "
           b"65536 bytes" in body and gone,
           "Content-Length over max_body: 413 naming the limit at once "
           "(the body is never sent, so a server waiting for it would "
           "answer 408), then closed", (st, body, gone))
    with connect(port) as s:
        s.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 70000\r\n\r\n")
        st, _, body = reply(s)
    tap.ok(st == 413, "Expect: 100-continue with a body over max_body: "
           "413, no 100", (st, body))
    big = b"X-Big: " + b"a" * (17 * 1024) + b"\r\n"
    st, _, body = exchange(port, get(b"/healthz", big))
    many = b"".join(b"X-%d: v\r\n" % i for i in range(65))
    st2, _, body2 = exchange(port, get(b"/healthz", many))
    st3, _, body3 = exchange(port, get(b"/" + b"a" * 9000))
    tap.ok(st == 431 and b"exceed the size limit" in body and st2 == 431
           and b"64 header fields" in body2 and st3 == 414,
           "headers over max_header_bytes: 431; 65 fields: 431; a 9000-byte "
           "target: 414", (st, body, st2, body2, st3, body3))
    cases = [
        (b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n"
         b"\r\n5\r\nhello\r\n0\r\n\r\n", 411, b"Content-Length"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505, b"HTTP/1.1"),
        (b"GET /healthz\r\n\r\n", 400, b"request line"),
        (b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", 400, b"NUL"),
        (b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"path"),
        (b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Content-Length: 6\r\n\r\nhello!", 400, b"conflicting"),
        (b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: -5\r\n\r\n",
         400, b"Content-Length"),
        (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400,
         b"header line"),
        (b"GET /healthz HTTP/1.1\r\n folded: x\r\n\r\n", 400, b"header"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417,
         b"Expect"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, b"Host"),
        (b"VERYLONGMETHODNAMEXYZ / HTTP/1.1\r\n\r\n", 400, b"method"),
    ]
    bad = []
    for data, want, why in cases:
        st, _, body = exchange(port, data)
        if st != want or why not in body:
            bad.append((data[:40], st, body))
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.shutdown(socket.SHUT_WR)
        st, _, body = reply(s)
    if st != 400 or b"before the request was complete" not in body:
        bad.append(("half-closed", st, body))
    tap.ok(not bad, f"{len(cases) + 1} malformed requests (one half-closed "
           "in its head): each its 4xx/5xx with a reason", bad)
    after = refused(port)
    tap.ok(after.get("body_size", 0) - before.get("body_size", 0) == 2 and
           after.get("header_size", 0) - before.get("header_size", 0) == 3
           and after.get("malformed", 0) - before.get("malformed", 0) ==
           len(cases) + 1,
           "refusals are counted on /metrics by reason", (before, after))


def trickle(socks, stop):
    """Sends one more header byte to every socket every 100 ms."""
    while not stop.is_set():
        for s in socks:
            try:
                s.send(b"a")
            except OSError:
                pass
        time.sleep(0.1)


def check_slowloris(tap, port):
    before = refused(port)
    slow = [connect(port) for _ in range(64)]
    for s in slow[:32]:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    for s in slow[32:48]:
        s.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                  b"\r\n\r\n0123456789")  # body never completed
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(slow[:32], stop), daemon=True)
    t.start()
    try:
        served = [exchange(port, get(b"/healthz"))[0] for _ in range(5)]
        statuses = []
        for s in slow:
            st, _, body = reply(s)
            statuses.append((st, closed(s)))
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    tap.ok(served == [200] * 5, "valid requests are served while 64 "
           "slowloris connections are open", served)
    tap.ok(all(st == 408 and gone for st, gone in statuses[:32]),
           "32 connections trickling header bytes forever: 408 and closed "
           "(the header timeout is not reset by each byte)", statuses[:32])
    tap.ok(all(st == 408 and gone for st, gone in statuses[32:48]),
           "16 connections that never finish their body: 408 and closed",
           statuses[32:48])
    tap.ok(all(st is None and gone for st, gone in statuses[48:]),
           "16 connections that never send a byte: closed", statuses[48:])
    after = refused(port)
    tap.ok(after["header_timeout"] - before.get("header_timeout", 0) >= 48
           and after["body_timeout"] - before.get("body_timeout", 0) >= 16,
           "the timeouts are counted on /metrics", (before, after))


def check_cap(tap, lab):
    port = coordinator(lab, "capped", maxconn=3)
    idle = connect(port)
    idle.sendall(get(b"/healthz"))
    first = reply(idle)[0]
    busy = [connect(port) for _ in range(2)]
    for s in busy:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # not finished
    time.sleep(0.3)  # let the server accept them before the next one
    newest = connect(port)
    newest.sendall(get(b"/healthz"))
    st = reply(newest)[0]
    evicted = closed(idle)
    tap.ok(first == 200 and st == 200 and evicted,
           "at max_connections a new client is served and the idle "
           "keep-alive connection is closed for it", (first, st, evicted))
    newest.sendall(b"GET /healthz HTTP/1.1\r\n")  # all three busy now
    time.sleep(0.3)
    with connect(port) as s:
        st, _, body = reply(s)
    tap.ok(st == 503 and b"too many connections" in body,
           "at max_connections with none idle: 503 with a reason", (st, body))
    for s in busy + [newest, idle]:
        s.close()
    text, deadline = {}, time.monotonic() + WAIT
    while not text and time.monotonic() < deadline:
        time.sleep(0.2)  # until the server has seen the closes
        text = refused(port)
    tap.ok(text.get("connections", 0) >= 1 and text.get("idle_evicted", 0)
           >= 1, "refused and evicted connections are counted", text)


def check_departed(tap, port):
    # The webhook answers after its journal commit, on another thread:
    # clients that leave first must not crash the server.
    # Half of them reset the connection, so that the server sees them go
    # while the journal still holds their request.
    for i in range(50):
        s = connect(port)
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        s.sendall(post(b"/api/v1/alerts", BODY))
        s.close()
    st = exchange(port, get(b"/healthz"))[0]
    tap.ok(st == 200, "50 clients gone before their webhook reply: the "
           "server still serves", st)
    with connect(port) as s:
        s.sendall(get(b"/healthz", b"Connection: keep-alive\r\n",
                      version=b"HTTP/1.0"))
        st, hdrs, _ = reply(s)
        s.sendall(get(b"/healthz", version=b"HTTP/1.0"))
        st2, hdrs2, _ = reply(s)
    tap.ok(st == 200 and hdrs.get("connection") == "keep-alive" and
           st2 == 200 and hdrs2.get("connection") == "close",
           "HTTP/1.0 with Connection: keep-alive stays open, and says so",
           (hdrs, hdrs2))


def check_fd_limit(tap, lab):
    """max_connections above what the open-file limit allows: the cap is
    lowered at start (with a warning), so the server evicts idle
    connections for new ones instead of failing accept() with EMFILE."""
    http, agents = free_port(), free_port()
    cfg = lab.write_file("fdlim.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("fdlim.db"),
        maxconn=1000, tls="", body_timeout="1s", header_timeout="1s",
        reply_memory="128MiB"))
    p = lab.start("fdlim", ["sh", "-c", 'ulimit -n 256 && exec "$0" "$@"',
                            reflex_binary("reflex-coordinator"), "-c", cfg],
                  ready_url=f"http://127.0.0.1:{http}/healthz")
    before = refused(http)
    held = []
    try:
        for _ in range(300):
            held.append(connect(http))
        with connect(http) as s:
            s.sendall(get(b"/healthz"))
            st = reply(s)[0]
    finally:
        for s in held:
            s.close()
    after = refused(http)
    log = p.log_text()
    tap.ok(st == 200 and "http.max_connections_lowered" in log and
           "open_file_limit=256" in log and "accept_failed" not in log and
           after.get("idle_evicted", 0) > before.get("idle_evicted", 0),
           "max_connections 1000 under an open-file limit of 256: lowered "
           "at start with a warning; 300 idle clients are evicted for new "
           "ones, accept() never runs out of descriptors",
           (st, after, [l for l in log.splitlines()
                        if "max_connections" in l or "accept" in l][:3]))


def tls_files(lab, openssl):
    def run(*args):
        subprocess.run([openssl] + list(args), check=True,
                       capture_output=True, timeout=60)
    p = lab.path
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
        p("ca.key"), "-out", p("ca.crt"), "-days", "1", "-subj", "/CN=test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
            p(f"{name}.key"), "-out", p(f"{name}.csr"), "-subj",
            f"/CN={name}")
        lab.write_file(f"{name}.ext", ext + "\n")
        run("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.crt"),
            "-CAkey", p("ca.key"), "-CAcreateserial", "-out",
            p(f"{name}.crt"), "-days", "1", "-extfile", p(f"{name}.ext"))


def tls_request(port, ctx, data, count=1):
    with socket.create_connection(("127.0.0.1", port), WAIT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.settimeout(WAIT)
            out = []
            for _ in range(count):
                s.sendall(data)
                out.append(reply(s))
            return out


def check_tls(tap, lab):
    openssl = shutil.which("openssl")
    if openssl is None:
        tap.skip("HTTPS with client certificates", "openssl not installed")
        return
    tls_files(lab, openssl)
    p = lab.path
    # A handshake's key operations take seconds under valgrind on a busy
    # machine: a longer header_timeout there (the stalled-handshake check
    # below still waits for it, within WAIT).
    port = coordinator(lab, "mtls", tls=(
        f"tls:\n  cert_file: {p('server.crt')}\n  key_file: "
        f"{p('server.key')}\n  client_ca_file: {p('ca.crt')}\n"),
        header_timeout="5s" if time_factor() > 1 else "1s")
    ctx = ssl.create_default_context(cafile=p("ca.crt"))
    ctx.load_cert_chain(p("client.crt"), p("client.key"))
    got = tls_request(port, ctx, post(b"/api/v1/alerts", BODY), count=3)
    tap.ok([g[0] for g in got] == [200, 200, 200],
           "mutual TLS: a client certificate from the CA is served, three "
           "webhooks on one kept-alive connection", [g[:2] for g in got])
    bare = ssl.create_default_context(cafile=p("ca.crt"))
    try:
        res = tls_request(port, bare, get(b"/healthz"))[0][0]
    except (ssl.SSLError, OSError) as e:
        res = type(e).__name__
    tap.ok(res != 200, "mutual TLS: a client without a certificate is "
           "refused", res)
    with connect(port) as s:
        s.sendall(b"\x16\x03\x01")  # a handshake that never finishes
        gone = closed(s)
    tap.ok(gone, "a TLS handshake that never finishes is closed at "
           "http.header_timeout", gone)
    with connect(port) as s:
        s.sendall(get(b"/healthz"))
        st, _, _ = reply(s)
    tap.ok(st is None, "plain HTTP on the TLS port gets no HTTP answer", st)
    big = (b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 99999999\r\n\r\n")
    st = tls_request(port, ctx, big)[0]
    tap.ok(st[0] == 413 and b"exceeds the limit" in st[2],
           "over TLS too: a body over max_body gets 413 unread", st)
    # A client that writes its whole body before reading (as curl does):
    # the server must drain it after the 413, not reset the connection.
    body = b"x" * (2 * 1024 * 1024)
    got = []
    for _ in range(5):
        try:
            got.append(tls_request(port, ctx, b"POST /api/v1/alerts HTTP/1.1"
                                   b"\r\nHost: x\r\nContent-Length: %d\r\n"
                                   b"\r\n" % len(body) + body)[0][0])
        except (ssl.SSLError, OSError) as e:
            got.append(type(e).__name__)
    tap.ok(got == [413] * 5, "over TLS: five clients sending a 2 MiB body "
           "before reading all get the 413 (the server drains before "
           "closing)", got)


def check_config(tap, lab):
    bad = []
    for key, value in (("header_timeout", "10ms"), ("max_connections", "0"),
                       ("max_header_bytes", "100"), ("idle_timeout", "2h")):
        cfg = lab.write_file(f"bad-{key}.yml", "http:\n  %s: %s\n" %
                             (key, value))
        r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg,
                            "--check-config"], capture_output=True,
                           text=True, timeout=20)
        if r.returncode == 0 or f"http.{key}" not in r.stderr:
            bad.append((key, r.returncode, r.stderr))
    tap.ok(not bad, "http.* values out of range are refused naming the "
           "key", bad)


def fill_actions(journal, n, detail_len):
    """n finished action rows with long details, straight into the
    journal (the coordinator's read connection sees them)."""
    import sqlite3
    now = int(time.time() * 1000)
    c = sqlite3.connect(journal, timeout=30)
    try:
        c.executemany(
            "INSERT INTO actions(alert_id, identity, incident_start_ms, rule,"
            " type, service, instance, node, state, detail, attempt,"
            " created_ms, updated_ms) VALUES (0, 1, ?, 'r', 'restart', 'web',"
            " ?, 'n', 'succeeded', ?, 1, ?, ?)",
            ((now, f"web-{i}", "d" * detail_len, now - 3600_000 + i,
              now - 3600_000 + i) for i in range(n)))
        c.commit()
    finally:
        c.close()


def slow_read(port, path, pause, first_pause=0.0):
    """Reads a GET reply through a 64 KiB receive window, whatever has
    arrived every `pause` seconds, after stalling `first_pause` seconds
    once its first bytes came. Returns (body bytes received,
    Content-Length or None)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(WAIT)
    s.connect(("127.0.0.1", port))
    data, want = b"", None
    try:
        s.sendall(get(path))
        while True:
            try:
                b = s.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            if not data:  # the reply has begun: now stall, if asked
                time.sleep(first_pause)
            data += b
            head, sep, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"Content-Length: (\d+)", head) if sep else None
            want = int(m.group(1)) if m else None
            if want is not None and len(body) >= want:
                break
            time.sleep(pause)
    finally:
        s.close()
    return len(data.partition(b"\r\n\r\n")[2]), want


def check_slow_reader(tap, lab):
    # A reply of ~8 MiB, more than the socket buffers hold, from a
    # coordinator that wants a reply taken within 200 ms.
    port = coordinator(lab, "slowread", body_timeout="200ms")
    fill_actions(lab.path("slowread.db"), 1000, 8000)
    path = b"/api/v1/actions?limit=1000"
    got, want = slow_read(port, path, 0.05)
    tap.ok(want is not None and want > 8_000_000 and got == want,
           "an 8 MB reply read in steps for many times body_timeout "
           "(200 ms) arrives whole: each 64 KiB taken moves the deadline",
           (got, want))
    got, want = slow_read(port, path, 0.05, first_pause=2.0)
    tap.ok(want is not None and got < want,
           "a client that takes nothing for 2 s once the reply began gets "
           "only what the socket buffers held: dropped at body_timeout",
           (got, want))
    # http.max_reply_memory (1 MiB here): while one client holds an 8 MB
    # reply, another big reply gets 503; small ones are still served.
    # (body_timeout 30 s: the held reply must outlast building the next.)
    port = coordinator(lab, "replymem", body_timeout="30s",
                       reply_memory="1MiB")
    fill_actions(lab.path("replymem.db"), 1000, 8000)
    with socket.socket() as held:
        # A small window (set before connecting): the kernel's buffers
        # cannot take the whole reply, so the server keeps the rest.
        held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        held.settimeout(WAIT)
        held.connect(("127.0.0.1", port))
        held.sendall(get(path))
        first = held.recv(4096)  # the reply began: the server holds it
        st, _, body = exchange(port, get(path))
        ok = exchange(port, get(b"/healthz"))[0]
    tap.ok(first.startswith(b"HTTP/1.1 200") and st == 503 and
           b"max_reply_memory" in body and ok == 200,
           "with an 8 MB reply held for a slow client, another big reply "
           "gets 503 naming http.max_reply_memory; /healthz is served",
           (first[:12], st, body[:120], ok))


def run(tap, lab):
    check_config(tap, lab)
    port = coordinator(lab, "coord")
    check_keepalive(tap, port)
    check_expect(tap, port)
    check_sizes(tap, port)
    check_slowloris(tap, port)
    check_departed(tap, port)
    check_slow_reader(tap, lab)
    check_cap(tap, lab)
    check_fd_limit(tap, lab)
    check_tls(tap, lab)


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-http-limits-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
