#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile input against a running reflex-coordinator and reflex-agent, on
127.0.0.1 only, with bounded waits.

The agent supervises one instance of tests/lib/agent_test_svc.py and
registers with the coordinator. Then, with a fixed random seed (printed;
REFLEX_HOSTILE_SEED changes it, REFLEX_HOSTILE_N the count):

  - N random and mutated frames to the agent's command socket,
  - N random and mutated frames to the coordinator's agent socket,
  - N random and mutated HTTP requests to the webhook (malformed JSON,
    limit breakers, wrong lengths, huge headers, binary garbage, odd
    request lines),
  - slowloris-style partial requests held open for a bounded time.

The frames travel as nng does it: the SP protocol over TCP (an 8-byte
greeting "\\0SP\\0" + protocol id, then messages with an 8-byte big-endian
length and, for req/rep, a 4-byte request id), spoken here in Python. The
seeds are built so that no mutation can name a real service or node:
commands target "ghost" services, registrations use node names nobody
else uses and ipc:// addresses inside the lab directory, webhook alerts
match no rule.

Checked afterwards: both processes are up; every frame within the size
limit got a well-formed reply and every error reply was counted by the
receiver; the coordinator answers every oversize frame with a "too_large"
error (its nng receive limit is twice the frame limit, so cm_msg_decode
sees them), while the agent's nng still drops them; valid requests are
still answered properly; nothing was executed (no action journaled, no
restart counted by the agent); the resident memory (VmRSS) grew by less
than a fixed slack between the warm-up point and the end; and, last, a
valid alert still restarts the instance through the whole path.
"""

import hashlib
import hmac
import json
import os
import random
import socket
import sqlite3
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, reflex_binary, scaled, valgrind_enabled,
                       wait_until)

N = int(os.environ.get("REFLEX_HOSTILE_N", "10000"))
SEED = int(os.environ.get("REFLEX_HOSTILE_SEED", "20261204"))
MAX_FRAME = 256 * 1024          # CM_MSG_MAX_FRAME
# NNG_OPT_RECVMAXSZ, which counts the 4-byte req/rep header: both the
# coordinator and the agent set CM_MSG_RECV_MAX (2 x the frame limit), so
# cm_msg_decode sees an oversize frame and answers too_large.
COORD_RECV_MAX = 2 * MAX_FRAME
AGENT_RECV_MAX = 2 * MAX_FRAME
WARMUP = min(1000, N // 10)     # frames/requests before the RSS baseline
# Resident memory may grow this much between the warm-up point and the
# end (allocator arenas, SQLite page cache, nng's pipe caches); a leak of
# about 700 bytes per frame or request (9000 after the warm-up) exceeds
# it. Smaller leaks are for LeakSanitizer (build-asan) and valgrind.
RSS_SLACK_KB = 6 * 1024
SVC = os.path.join(SRC, "tests", "lib", "agent_test_svc.py")
# Bounds of one exchange (tests/valgrind.sh raises them; stretched under
# valgrind, see tests/lib/reflexlab.py).
SP_WAIT = scaled(5.0)
HTTP_WAIT = scaled(2.0)


# ---------------------------------------------------------------------------
# msgpack, just enough to build frames and read replies

def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        for lo, hi, tag, fmt in ((0, 1 << 8, 0xcc, ">B"),
                                 (0, 1 << 16, 0xcd, ">H"),
                                 (0, 1 << 32, 0xce, ">I"),
                                 (0, 1 << 64, 0xcf, ">Q"),
                                 (-(1 << 7), 0, 0xd0, ">b"),
                                 (-(1 << 15), 0, 0xd1, ">h"),
                                 (-(1 << 31), 0, 0xd2, ">i"),
                                 (-(1 << 63), 0, 0xd3, ">q")):
            if lo <= v < hi:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
        n = len(v)
        if n < 32:
            return bytes([0xa0 | n]) + v
        if n < 1 << 8:
            return b"\xd9" + bytes([n]) + v
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + v
        return b"\xdb" + struct.pack(">I", n) + v
    if isinstance(v, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(v)) + bytes(v)
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdd" + struct.pack(">I", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xdf" + struct.pack(">I", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


class Unpacker:
    def __init__(self, b):
        self.b = b
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated")
        s = self.b[self.i:self.i + n]
        self.i += n
        return s

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def obj(self):
        t = self.take(1)[0]
        if t < 0x80:
            return t
        if t >= 0xe0:
            return t - 0x100
        if 0x80 <= t <= 0x8f:
            return self.map(t & 0x0f)
        if 0x90 <= t <= 0x9f:
            return [self.obj() for _ in range(t & 0x0f)]
        if 0xa0 <= t <= 0xbf:
            return self.take(t & 0x1f).decode()
        simple = {0xc0: None, 0xc2: False, 0xc3: True}
        if t in simple:
            return simple[t]
        ints = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q",
                0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q",
                0xca: ">f", 0xcb: ">d"}
        if t in ints:
            return self.u(ints[t])
        strs = {0xd9: ">B", 0xda: ">H", 0xdb: ">I"}
        if t in strs:
            return self.take(self.u(strs[t])).decode()
        bins = {0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}
        if t in bins:
            return self.take(self.u(bins[t]))
        if t in (0xdc, 0xdd):
            return [self.obj() for _ in range(self.u(">H" if t == 0xdc
                                                     else ">I"))]
        if t in (0xde, 0xdf):
            return self.map(self.u(">H" if t == 0xde else ">I"))
        raise ValueError(f"msgpack type 0x{t:02x}")

    def map(self, n):
        return {self.obj(): self.obj() for _ in range(n)}


def unpack(b):
    u = Unpacker(b)
    v = u.obj()
    if u.i != len(b):
        raise ValueError("trailing bytes")
    return v


def frame(type_, body, id_=1, v=1):
    return mp({"v": v, "type": type_, "id": id_, "body": body})


# ---------------------------------------------------------------------------
# nng's SP protocol over TCP, the REQ side

class SPClosed(Exception):
    pass


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise SPClosed("peer closed")
        out += chunk
    return bytes(out)


class SPReq:
    PROTO_REQ, PROTO_REP = 0x30, 0x31

    def __init__(self, port, timeout=None):
        self.port = port
        self.timeout = timeout or SP_WAIT
        self.sock = None
        self.rid = random.randrange(1 << 30)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        s.settimeout(self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"\x00SP\x00" + struct.pack(">HH", self.PROTO_REQ, 0))
        hdr = recv_exact(s, 8)
        if hdr[:4] != b"\x00SP\x00" or \
                struct.unpack(">H", hdr[4:6])[0] != self.PROTO_REP:
            s.close()
            raise SPClosed(f"unexpected SP greeting {hdr.hex()}")
        self.sock = s

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, payload):
        """Sends one request; returns the reply's payload. Raises
        SPClosed (or socket.timeout) when the peer drops the connection
        or does not answer; the next call reconnects."""
        if self.sock is None:
            self.connect()
        self.rid = (self.rid + 1) & 0x7fffffff
        rid = 0x80000000 | self.rid
        msg = struct.pack(">I", rid) + payload
        try:
            self.sock.sendall(struct.pack(">Q", len(msg)) + msg)
            while True:
                n = struct.unpack(">Q", recv_exact(self.sock, 8))[0]
                if n < 4 or n > 2 * MAX_FRAME:
                    raise SPClosed(f"reply length {n}")
                body = recv_exact(self.sock, n)
                if struct.unpack(">I", body[:4])[0] == rid:
                    return body[4:]
        except (OSError, SPClosed):
            self.close()
            raise


def sp_garbage(port, rng):
    """One connection that breaks the SP layer itself: a wrong greeting,
    a wrong protocol, an absurd or oversized length prefix. Returns True
    when the peer dropped it (or never answered) within the bound."""
    kind = rng.randrange(5)
    try:
        with socket.create_connection(("127.0.0.1", port), SP_WAIT) as s:
            s.settimeout(SP_WAIT)
            if kind == 0:
                s.sendall(bytes(rng.randrange(256) for _ in range(8)))
            elif kind == 1:  # speaks pair0, not req0
                s.sendall(b"\x00SP\x00\x00\x10\x00\x00")
            else:
                s.sendall(b"\x00SP\x00" + struct.pack(">HH", 0x30, 0))
                recv_exact(s, 8)
                if kind == 2:
                    s.sendall(struct.pack(">Q", (1 << 63) + 5))
                elif kind == 3:  # announced, over the receive limit
                    s.sendall(struct.pack(">Q", MAX_FRAME * 4) + b"\0" * 64)
                else:  # shorter than a request id
                    s.sendall(struct.pack(">Q", 2) + b"\x80\x00")
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
        return True
    except OSError:
        return True


# ---------------------------------------------------------------------------
# mutations

INTERESTING = [0x00, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc2, 0xc3, 0xd9, 0xda,
               0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x9f, 0x8f, 0xbf, 0xcf, 0xd3]
BOMBS = [b"\xdb\xff\xff\xff\xf0", b"\xdd\xff\xff\xff\xff",
         b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xc1",
         b"\xda\xff\xff", b"\xdc\xff\xff", b"\xde\xff\xff", b"\xcb",
         b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00"]


def mutate(rng, data, seeds, bombs=BOMBS, interesting=INTERESTING):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:            # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:          # an interesting byte
            b[rng.randrange(len(b))] = rng.choice(interesting)
        elif op == 2:                # insert random bytes
            b[pos:pos] = bytes(rng.randrange(256)
                               for _ in range(rng.randint(1, 16)))
        elif op == 3 and b:          # delete a range
            del b[pos:pos + rng.randint(1, 16)]
        elif op == 4:                # truncate
            del b[pos:]
        elif op == 5 and b:          # duplicate a range
            j = rng.randrange(len(b))
            b[pos:pos] = b[j:j + rng.randint(1, 64)]
        elif op == 6:                # splice another seed
            o = rng.choice(seeds)
            j = rng.randrange(len(o) + 1)
            b = b[:pos] + o[j:]
        elif op == 7:                # a length bomb or forbidden byte
            b[pos:pos] = rng.choice(bombs)
        else:                        # overwrite with a random byte
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def rand_text(rng, n):
    alphabet = "ab-._Z09 \t\n\"\\/{}\u00e9\u2603\x00\x7f"
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_value(rng, depth=0):
    k = rng.randrange(9 if depth < 3 else 6)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([0, -1, 1, 127, 128, 255, 65536, -4096, -4095,
                           (1 << 32) - 1, 1 << 32, (1 << 63) - 1, -(1 << 63),
                           (1 << 64) - 1])
    if k == 3:
        return rng.random() * 1e6
    if k == 4:
        return rand_text(rng, rng.choice([0, 1, 5, 63, 64, 65, 300, 1100]))
    if k == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
    if k == 6:
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rand_text(rng, rng.randrange(1, 8)): rand_value(rng, depth + 1)
            for _ in range(rng.randrange(5))}


# ---------------------------------------------------------------------------
# frames for the agent's command socket and the coordinator's agent socket

def ghost_name(rng):
    return rng.choice(["ghost", "ghost-a", "ghost.b", "ghost_c-1"])


def agent_seeds(rng):
    reason = "hostile test \u00e9"
    out = []
    for action in ("restart", "clear_cache", "reload_config", "dance"):
        out.append(frame("command", {
            "action_id": rng.randrange(1 << 40), "action": action,
            "service": ghost_name(rng), "instance": "ghost-0",
            "reason": reason, "timeout_ms": 5000}, rng.randrange(1 << 32)))
    out.append(frame("command", {"action_id": 1, "action": "restart",
                                 "service": "ghost", "instance": "",
                                 "reason": "", "timeout_ms": 1}))
    out.append(frame("status", {}))
    out.append(frame("reply", {"ok": True, "code": 0, "message": "x"}))
    return out


def coord_seeds(rng, ipc_dir):
    out = []
    for i in range(3):
        node = f"ghost-node-{i}"
        out.append(frame("register", {
            "node": node, "addr": f"ipc://{ipc_dir}/{node}.ipc",
            "runtime": "process", "workloads": [
                {"service": "ghost-svc", "instance": f"ghost-svc-{j}",
                 "addr": f"127.0.0.1:{9 + j}", "healthy": j == 0}
                for j in range(i + 1)]}))
    out.append(frame("heartbeat", {"node": "ghost-hb", "seq": 5,
                                   "unhealthy": 0}))
    out.append(frame("heartbeat", {"node": "node-h", "seq": 1 << 40,
                                   "unhealthy": 3}))
    out.append(frame("permit", {"node": "ghost-permit",
                                "service": "ghost-svc",
                                "instance": "ghost-svc-0",
                                "reason": "probe failed"}))
    out.append(frame("command", {"action_id": 1, "action": "restart",
                                 "service": "ghost", "instance": "",
                                 "reason": "", "timeout_ms": 1}))
    return out


def structured_frame(rng, seeds):
    """A well-formed msgpack map with the reflex envelope and random or
    wrongly typed fields, or the envelope itself broken."""
    base = unpack(rng.choice(seeds))
    body = base["body"]
    k = rng.randrange(8)
    if k == 0 and body:
        body[rng.choice(list(body))] = rand_value(rng)
    elif k == 1 and body:
        del body[rng.choice(list(body))]
    elif k == 2:
        body[rand_text(rng, rng.randrange(1, 10))] = rand_value(rng)
    elif k == 3:
        base[rng.choice(["v", "type", "id", "body"])] = rand_value(rng)
    elif k == 4:
        base["type"] = rng.choice(["register", "heartbeat", "command",
                                   "reply", "error", "status", "permit",
                                   "", "REGISTER", "x" * 70])
    elif k == 5 and body:
        # long strings where names and texts go
        key = rng.choice(list(body))
        body[key] = "g" * rng.choice([63, 64, 255, 256, 1023, 1024, 5000])
    elif k == 6:
        base["v"] = rng.choice([0, 2, -1, 1 << 40, "1", 1.0])
    else:
        # nesting just below and above CM_MSG_MAX_DEPTH, and far above
        d = rng.choice([14, 15, 16, 17, 100, 5000])
        return b"\x81\xa4body" + b"\x91" * d + b"\xc0"
    return mp(base)


def hostile_frame(rng, seeds):
    r = rng.random()
    if r < 0.55:
        return mutate(rng, rng.choice(seeds), seeds)
    if r < 0.85:
        return structured_frame(rng, seeds)
    if r < 0.95:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if r < 0.999:
        # large but within the frame limit: a long reason or json
        n = rng.choice([4096, 65536, MAX_FRAME - 64])
        return frame("reply", {"ok": False, "code": -1,
                               "message": "m", "json": "x" * n})[:MAX_FRAME]
    return b"\x00" * (MAX_FRAME + 1 + rng.randrange(65536))  # over


class FrameStats:
    def __init__(self):
        self.sent = 0
        self.errors = 0       # "error" replies (undecodable frame)
        self.refused = 0      # "reply" with ok false
        self.accepted = 0     # "reply" with ok true
        self.dropped = 0      # connection dropped, as expected (too big)
        self.oversize = 0     # frames over MAX_FRAME sent
        self.too_large = 0    # "too_large" error replies
        self.unanswered = []  # frames within the limit without a reply
        self.malformed = []   # replies that do not decode
        self.sp_garbage = 0

    def line(self):
        return (f"{self.sent} frames: {self.errors} error replies "
                f"({self.too_large} too_large for {self.oversize} frames "
                f"over {MAX_FRAME} bytes), "
                f"{self.refused} refused, {self.accepted} accepted, "
                f"{self.dropped} dropped by nng, "
                f"{len(self.unanswered)} unanswered, {len(self.malformed)} "
                f"malformed replies, {self.sp_garbage} SP-level garbage "
                "connections")


def storm_frames(rng, port, seeds, n, on_warm, recv_max):
    """n hostile frames to a req/rep endpoint whose nng receive limit is
    recv_max: a frame that fits it must get a well-formed reply."""
    st = FrameStats()
    conn = SPReq(port)
    for i in range(n):
        if i == WARMUP:
            on_warm()
        if rng.random() < 0.01:
            sp_garbage(port, rng)
            st.sp_garbage += 1
        f = hostile_frame(rng, seeds)
        st.sent += 1
        st.oversize += len(f) > MAX_FRAME
        try:
            rep = conn.request(f)
        except (OSError, SPClosed) as e:
            if len(f) + 4 > recv_max:
                st.dropped += 1
            else:
                st.unanswered.append((f[:32].hex(), len(f), repr(e)))
            continue
        try:
            m = unpack(rep)
            t = m["type"]
            if t == "error":
                st.errors += 1
                st.too_large += m["body"]["code"] == "too_large"
            elif t == "reply" and m["body"]["ok"] is False:
                st.refused += 1
            elif t == "reply" and m["body"]["ok"] is True:
                st.accepted += 1
            else:
                raise ValueError(f"type {t!r}")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            st.malformed.append((rep[:32].hex(), repr(e)))
    conn.close()
    return st


# ---------------------------------------------------------------------------
# HTTP

def http_raw(port, data, timeout=None, half_close=True):
    """Sends raw bytes; returns (status or None, seconds). None: closed
    without a status line; "timeout": no answer within `timeout`."""
    t0 = time.monotonic()
    timeout = timeout or HTTP_WAIT
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.settimeout(timeout)
            try:
                s.sendall(data)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may close while we still send
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    return "timeout", time.monotonic() - t0
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                if len(buf) > 1 << 20:
                    break
    except OSError:
        return None, time.monotonic() - t0
    if buf.startswith(b"HTTP/1.") and len(buf) >= 12:
        try:
            return int(buf[9:12]), time.monotonic() - t0
        except ValueError:
            pass
    return None, time.monotonic() - t0


def alert(labels, status="firing", annotations=None):
    return {"status": status, "labels": labels,
            "annotations": annotations or {},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing"
            else "2026-12-04T10:05:00Z",
            "generatorURL": "http://127.0.0.1:9/graph", "fingerprint":
            "00000000deadbeef"}


def notification(alerts, status="firing"):
    return {"version": "4", "receiver": "reflex", "status": status,
            "groupKey": "{}:{}", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9",
            "truncatedAlerts": 0, "alerts": alerts}


def webhook_seeds():
    out = []
    for i in range(4):
        out.append(json.dumps(notification([
            alert({"alertname": "HostileSeed", "service": "ghost",
                   "instance": f"ghost-{j}", "i": str(i)},
                  "firing" if j % 2 == 0 else "resolved",
                  {"summary": "hostile \u00e9 \"q\""})
            for j in range(i + 1)])).encode())
    return out


def post(path, body, extra=b"", length=None):
    if length is None:
        length = str(len(body)).encode()
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + length +
            b"\r\n" + extra + b"Connection: close\r\n\r\n" + body)


def rand_json(rng, depth=0):
    k = rng.randrange(8 if depth < 4 else 5)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False, 0, -1, 1e308, 2 ** 70, 4])
    if k in (2, 3, 4):
        return rand_text(rng, rng.choice([0, 1, 7, 200]))
    if k == 5:
        return [rand_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["version", "alerts", "labels", "annotations", "status",
            "startsAt", "endsAt", "alertname", "receiver", "groupKey",
            "truncatedAlerts", "x"]
    return {rng.choice(keys): rand_json(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def limit_breaker(rng):
    """A body that is valid JSON but over one of the test config's
    limits (max_body 64 KiB, 20 alerts, 16 labels, values 256 bytes,
    annotations 1 KiB, names 128 bytes)."""
    k = rng.randrange(6)
    labels = {"alertname": "HostileSeed"}
    ann = {}
    n = 1
    if k == 0:
        n = 21
    elif k == 1:
        labels.update({f"l{i}": "v" for i in range(16)})
    elif k == 2:
        labels["v"] = "x" * 257
    elif k == 3:
        ann["a"] = "x" * 1025
    elif k == 4:
        labels["n" * 129] = "v"
    else:
        ann["pad"] = "x" * (70 * 1024)
    return json.dumps(notification([alert(dict(labels, i=str(i)),
                                          annotations=ann)
                                    for i in range(n)])).encode()


def hostile_request(rng, seeds):
    path = rng.choice([b"/api/v1/alerts", b"/webhook/alert"])
    r = rng.random()
    if r < 0.40:
        body = mutate(rng, rng.choice(seeds), seeds,
                      bombs=[b"\\u0000", b"\x00", b"\xff\xfe", b"\\ud800",
                             b"[" * 64, b"{\"a\":", b"1e99999", b"\"\\",
                             b"\xed\xa0\x80", b"\xc0\xaf"],
                      interesting=[0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d,
                                   0x3a, 0x2c, 0x0a, 0x80, 0xff, 0xc3])
        return post(path, body)
    if r < 0.52:
        return post(path, json.dumps(rand_json(rng)).encode())
    if r < 0.55:
        d = rng.choice([100, 1000, 20000])
        return post(path, b"[" * d + b"]" * d)
    if r < 0.63:
        return post(path, limit_breaker(rng))
    if r < 0.73:
        body = rng.choice(seeds)
        k = rng.randrange(6)
        length = {0: str(len(body) // 2), 1: str(len(body) + 500),
                  2: "-1", 3: "99999999999999999999999", 4: "abc",
                  5: f"{len(body)}, {len(body) + 1}"}[k].encode()
        return post(path, body, length=length)
    if r < 0.76:
        size = rng.choice([8 << 10, 64 << 10, 200 << 10])
        if rng.random() < 0.5:
            extra = b"X-Big: " + b"a" * size + b"\r\n"
        else:
            extra = b"".join(b"X-H%d: v\r\n" % i
                             for i in range(size // 16))
        return post(path, rng.choice(seeds), extra=extra)
    if r < 0.86:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(4096)))
    k = rng.randrange(10)
    body = rng.choice(seeds)
    if k == 0:
        return b"PUT /api/v1/alerts HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    if k == 1:
        return b"GET /" + b"a" * rng.choice([100, 8000, 70000]) + \
            b" HTTP/1.1\r\n\r\n"
    if k == 2:
        return b"POST /api/v1/alerts\r\n\r\n"  # HTTP/0.9 style
    if k == 3:
        return b"POST /api/v1/alerts HTTP/2.0\r\nContent-Length: 2\r\n\r\n{}"
    if k == 4:
        return (b"POST /api/v1/alerts HTTP/1.1\r\nTransfer-Encoding: "
                b"chunked\r\n\r\n" + b"%x\r\n" % len(body) + body +
                rng.choice([b"\r\n0\r\n\r\n", b"\r\nffffffffffffffff\r\n",
                            b"\r\n-5\r\n"]))
    if k == 5:
        return post(path, body, extra=b"Expect: 100-continue\r\n")
    if k == 6:
        return post(b"/api/v1/alerts?" + b"q=" * 5000, body)
    if k == 7:
        return post(path, body, extra=b"Content-Length: 3\r\n")
    if k == 8:
        return b"POST http://127.0.0.1/api/v1/alerts HTTP/1.1\r\n" \
            b"Content-Length: 2\r\n\r\n{}"
    return b"\r\n" * 100 + post(path, body)


def storm_http(rng, port, seeds, n, on_warm):
    codes = {}
    timeouts = []
    for i in range(n):
        if i == WARMUP:
            on_warm()
        req = hostile_request(rng, seeds)
        code, _ = http_raw(port, req)
        if code == "timeout":
            timeouts.append(req[:60])
            if len(timeouts) > 20:
                break
        codes[code] = codes.get(code, 0) + 1
    return codes, timeouts


# ---------------------------------------------------------------------------
# the lab

COORD_CONF = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
log_level: info
agent_lost_after: 30s
journal_sync_full: false
limits:
  max_body: 64KiB
  max_alerts: 20
  max_labels: 16
  max_value_len: 256
  max_annotation_len: 1024
http:  # short, so that the slowloris check below sees them fire
  header_timeout: 2s
  body_timeout: 2s
safety:
  blast_radius_percent: 100
  storm_min_targets: 1000
  # Permits granted to ghost registrations count against these (see the
  # diagnostics): high enough that they cannot block the final restart.
  global_max_actions: 10000
  service_max_actions: 10000
rules:
  - name: restart-me
    matchers: ['alertname = "RestartMe"']
    cooldown: 1s
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: "{{{{ service }}}}"
        instance: "{{{{ instance }}}}"
        timeout: 20s
"""

AGENT_CONF = """\
node: node-h
coordinator: tcp://127.0.0.1:{agents}
listen: tcp://127.0.0.1:{cmd}
status_socket: {sock}
runtime: process
log_level: info
heartbeat_interval: 500ms
services:
  - name: demo-a
    command: ["{py}", "{svc}", "--port", "{{port}}", "--name", "{{instance}}"]
    base_port: {port}
    stop_grace: 2s
    probe:
      path: /healthz
      period: 500ms
      timeout: 400ms
      failure_threshold: 3
      initial_delay: 500ms
"""


# ---------------------------------------------------------------------------
# Each limit of issue 6: at the limit accepted, one past it refused with a
# reason naming it; what is refused is neither executed nor stored, what
# is accepted is not lost. The refused inputs would restart demo-a-0 if
# they got through.

LIMIT_CASES = [
    # name, builder(over) -> body, expected status and reason when over
    ("body size", "body_size", 413,
     "exceeds the limit of 65536 bytes (limits.max_body)"),
    ("alerts per payload", "alerts", 413,
     "more than 20 alerts (limits.max_alerts)"),
    ("labels per alert", "labels", 413,
     "labels: more than 16 entries (limits.max_labels)"),
    ("label name length", "name_len", 413,
     "over the limit of 128 (limits.max_name_len)"),
    ("label value length", "value_len", 413,
     "exceed the limit of 256 (limits.max_value_len)"),
    ("annotation length", "annotation_len", 413,
     "exceed the limit of 1024 (limits.max_annotation_len)"),
    ("JSON nesting depth", "json_depth", 400,
     "JSON nests deeper than 1000 levels"),
]


def limit_body(kind, over, tag):
    """A webhook body at a limit of the test config (over=False) or one
    past it. Accepted bodies carry alertname LimitOK-<tag> and match no
    rule; refused ones are RestartMe alerts for demo-a-0."""
    name = f"LimitOK-{tag}" if not over else "RestartMe"
    base = {"alertname": name, "service": "demo-a", "instance": "demo-a-0"}
    alerts = [alert(dict(base))]
    extra = ""
    if kind == "alerts":
        alerts = [alert(dict(base, i=str(i))) for i in range(20 + over)]
    elif kind == "labels":
        alerts[0]["labels"].update({f"l{i}": "v" for i in range(13 + over)})
    elif kind == "name_len":
        alerts[0]["labels"]["n" * (128 + over)] = "v"
    elif kind == "value_len":
        alerts[0]["labels"]["v"] = "x" * (256 + over)
    elif kind == "annotation_len":
        alerts[0]["annotations"]["a"] = "x" * (1024 + over)
    elif kind == "json_depth":
        d = 1500 if over else 900  # cJSON's limit is 1000
        extra = ',"x":' + "[" * d + "]" * d
    body = json.dumps(notification(alerts))
    body = body[:-1] + extra + "}"
    if kind == "body_size":
        pad = 64 * 1024 + over - len(body)
        body = body[:-1] + " " * pad + "}"
    return body.encode()


def padded_command(action, service, instance, size=None, depth=0,
                   reason="limits", id_=1):
    """A command frame, optionally padded (unknown top-level key) to
    exactly `size` bytes, or with `depth` nested arrays in that key."""
    m = {"v": 1, "type": "command", "id": id_, "body": {
        "action_id": 9, "action": action, "service": service,
        "instance": instance, "reason": reason, "timeout_ms": 20000}}
    if depth:
        m["pad"] = b""  # placeholder, replaced below
        f = mp(m)
        return f[:-len(mp(b""))] + b"\x91" * depth + b"\xc0"
    if size is None:
        return mp(m)
    return padded(m, size)


def padded(m, size):
    """The message map m encoded with an unknown top-level key "pad"
    making it exactly `size` bytes."""
    m = dict(m)
    m["pad"] = ""
    n = size - len(mp(m))
    for _ in range(3):  # the str header grows with its length
        m["pad"] = "p" * n
        n += size - len(mp(m))
    f = mp(m)
    assert len(f) == size, (len(f), size)
    return f


def check_limits(tap, env, lab):
    before = env.instance()
    # -- webhook ------------------------------------------------------------
    for title, kind, status, reason in LIMIT_CASES:
        ok_body = limit_body(kind, False, kind)
        bad_body = limit_body(kind, True, kind)
        r1 = http_post(env.url + "/api/v1/alerts", ok_body,
                       {"Content-Type": "application/json"})
        r2 = http_post(env.url + "/api/v1/alerts", bad_body,
                       {"Content-Type": "application/json"})
        want = json.loads(ok_body)["alerts"]
        stored = env.alerts_stored(f"LimitOK-{kind}")
        tap.ok(r1.status == 200 and stored == len(want) and
               r2.status == status and reason in r2.text,
               f"limit {title}: at the limit 200 and stored "
               f"({stored}/{len(want)}), one past it {status} naming it",
               (r1.status, r1.text, stored, r2.status, r2.text))
    r = http_raw(env.http, post(b"/api/v1/alerts", b" " * (300 * 1024)))[0]
    tap.ok(r == 413, "a body far over max_body (300 KiB): 413, answered "
           "before the body is read", r)
    # -- agent command socket --------------------------------------------
    conn = SPReq(env.cmd)
    bad0 = env.status()["stats"]["bad_frames"]

    def ask(f):
        try:
            return unpack(conn.request(f))
        except (OSError, SPClosed) as e:
            return repr(e)

    at = ask(padded_command("restart", "ghost", "", size=MAX_FRAME))
    over = ask(padded_command("restart", "demo-a", "demo-a-0",
                              size=MAX_FRAME + 1))
    after = ask(padded_command("restart", "ghost", ""))
    tap.ok(isinstance(at, dict) and at["body"]["code"] == -2 and
           isinstance(over, dict) and over.get("type") == "error" and
           over["body"]["code"] == "too_large" and
           isinstance(after, dict) and after["body"]["code"] == -2,
           "limit msgpack frame size: a frame of exactly 256 KiB is "
           "decoded; one byte more is answered too_large and not run; the "
           "next frame is served", (str(at)[:200], str(over)[:200], after))
    at = ask(padded_command("clear_cache", "demo-a", "", depth=15))
    over = ask(padded_command("restart", "demo-a", "demo-a-0", depth=16))
    tap.ok(at.get("type") == "reply" and at["body"]["ok"] is True and
           over.get("type") == "error" and
           "nests deeper than 16 levels" in over["body"]["message"],
           "limit msgpack nesting depth: 16 levels decoded, 17 refused "
           "with a reason", (at, over))
    at = ask(padded_command("clear_cache", "demo-a", "", reason="r" * 1023))
    over = ask(padded_command("restart", "demo-a", "demo-a-0",
                              reason="r" * 1024))
    long_name = ask(padded_command("restart", "d" * 64, ""))
    tap.ok(at.get("type") == "reply" and at["body"]["ok"] is True and
           over.get("type") == "error" and
           "body.reason: 1024 bytes, limit 1023" in over["body"]["message"]
           and long_name.get("type") == "error" and
           "body.service" in long_name["body"]["message"],
           "limit string lengths: a 1023-byte reason is accepted, 1024 "
           "bytes and a 64-byte name are refused with a reason",
           (at, over, long_name))
    conn.close()
    bad = env.status()["stats"]["bad_frames"] - bad0
    tap.ok(bad == 4, f"the four refused frames are counted ({bad}), the "
           "oversize one included")
    # -- coordinator agent socket: frame size ------------------------------
    # Its nng limit is twice the frame limit: a frame of exactly the limit
    # is decoded (nng would drop it if the limit were the frame's: the SP
    # header counts), one byte more gets a too_large error, and the
    # connection serves the next frame.
    conn = SPReq(env.agents)
    cbad0 = env.metric("reflex_agent_bad_frames_total") or 0
    hb = {"v": 1, "type": "heartbeat", "id": 7,
          "body": {"node": "ghost-size", "seq": 1, "unhealthy": 0}}

    def cask(f):
        try:
            return unpack(conn.request(f))
        except (OSError, SPClosed) as e:
            return repr(e)

    at = cask(padded(hb, MAX_FRAME))
    over = cask(padded(hb, MAX_FRAME + 1))
    after = cask(mp(hb))
    cbad = (env.metric("reflex_agent_bad_frames_total") or 0) - cbad0
    tap.ok(isinstance(at, dict) and at["type"] == "reply" and
           at["body"]["code"] == -2 and
           isinstance(over, dict) and over["type"] == "error" and
           over["body"]["code"] == "too_large" and
           f"exceeds the limit of {MAX_FRAME}" in over["body"]["message"] and
           isinstance(after, dict) and after["type"] == "reply" and
           after["body"]["code"] == -2 and cbad == 1,
           "limit frame size at the coordinator: a frame of exactly 256 "
           "KiB is decoded, one byte more is answered with a counted "
           "too_large error, the next frame is served",
           (str(at)[:200], str(over)[:200], str(after)[:200], cbad))
    # -- coordinator agent socket: registration limits -------------------
    ws = [{"service": "ghost-svc", "instance": f"g-{i}",
           "addr": "127.0.0.1:9", "healthy": True} for i in range(1025)]
    over = unpack(conn.request(frame("register", {
        "node": "limit-node", "addr": f"ipc://{lab.path('limit.ipc')}",
        "runtime": "process", "workloads": ws})))
    conn.close()
    nodes = [a["node"] for a in http_json(env.url + "/api/v1/agents")]
    tap.ok(over["type"] == "error" and "limit-node" not in nodes,
           "limit workloads per registration: 1025 refused, not registered",
           (over, nodes))
    # -- nothing executed, nothing stored that was refused ----------------
    inst = env.instance()
    tap.ok(inst["restarts"] == before["restarts"] and
           inst["pid"] == before["pid"] and env.actions() == [] and
           env.alerts_stored("RestartMe") == 0,
           "no refused input was executed or stored (no restart, no "
           "action, no RestartMe alert in the journal)",
           (before, inst, env.actions()[:3]))
    # -- config file size ---------------------------------------------------
    for who, conf in (("coordinator", env.cconf), ("agent", env.aconf)):
        with open(conf) as f:
            text = f.read()
        binary = reflex_binary(f"reflex-{who}")
        results = []
        for size in (1024 * 1024, 1024 * 1024 + 1):
            p = lab.write_file(f"{who}-{size}.yaml", text + "#" +
                               "x" * (size - len(text.encode()) - 2) + "\n")
            r = subprocess.run([binary, "--check-config", "-c", p],
                               capture_output=True, text=True, timeout=30)
            results.append((r.returncode, (r.stdout + r.stderr).strip()))
        tap.ok(results[0][0] == 0 and results[1][0] == 1 and
               "1048576 bytes" in results[1][1],
               f"limit config file size ({who}): 1 MiB accepted, one byte "
               "more refused with the reason", results)


# ---------------------------------------------------------------------------
# The authenticated agent channel (agent_secret_file): every frame that
# does not prove the secret is refused, whatever it holds.

MAC_LEN = 32


def seal(key, msg):
    return msg + hmac.new(key, msg, hashlib.sha256).digest()


def stamped(type_, body, id_=1, ts=None, nonce=None, rng=random):
    return mp({"v": 1, "ts": int(time.time() * 1000) if ts is None else ts,
               "nonce": rng.randrange(1, 1 << 64) if nonce is None
               else nonce, "type": type_, "id": id_, "body": body})


def sealed_storm(rng, port, key, n, make, seeds):
    """n frames that do not prove `key` (unsealed, a made-up MAC, another
    key, altered, replayed, stale, truncated) to a sealed endpoint.
    make(i, **kw) builds a sealed frame (kw: k=key, ts=...). Returns
    (kinds sent, answers by kind of answer)."""
    wrong = bytes(reversed(key))
    replay = make(-1)
    now = int(time.time() * 1000)
    kinds = {}
    answers = {"error": 0, "ok": 0, "refused": 0, "unsealed": 0,
               "none": 0}
    conn = SPReq(port)
    for i in range(n):
        k = rng.randrange(8)
        if k <= 1:
            f = hostile_frame(rng, seeds)             # no MAC at all
        elif k == 2:                                  # a made-up MAC
            f = hostile_frame(rng, seeds) + bytes(
                rng.randrange(256) for _ in range(MAC_LEN))
        elif k == 3:
            f = make(i, k=wrong)                      # another key
        elif k == 4:                                  # altered in flight
            f = bytearray(make(i))
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
            f = bytes(f)
        elif k == 5:                                  # a replay
            f = replay
        elif k == 6:                                  # stale or far future
            f = make(i, ts=rng.choice([now - 600000, now + 600000, 1,
                                       1 << 63, (1 << 64) - 1]))
        else:                                         # seal then truncate
            f = make(i)[:-rng.randint(1, MAC_LEN)]
        kinds[k] = kinds.get(k, 0) + 1
        try:
            rep = conn.request(f)
        except (OSError, SPClosed):
            answers["none"] += 1
            continue
        body, mac = rep[:-MAC_LEN], rep[-MAC_LEN:]
        if len(rep) <= MAC_LEN or not hmac.compare_digest(
                mac, hmac.new(key, body, hashlib.sha256).digest()):
            answers["unsealed"] += 1
            continue
        m = unpack(body)
        if m["type"] == "error":
            answers["error"] += 1
        elif m["body"]["ok"]:
            answers["ok"] += 1
        else:
            answers["refused"] += 1
    conn.close()
    return kinds, answers


def sealed_request(port, key, frame_bytes):
    conn = SPReq(port)
    try:
        rep = conn.request(frame_bytes)
    finally:
        conn.close()
    return unpack(rep[:-MAC_LEN])


def auth_storm(tap, lab, rng, n):
    """A coordinator with agent_secret_file and an agent with
    coordinator_secret_file (the same secret), each sent n frames that do
    not prove the secret."""
    key = b"hostile test secret, 32 bytes.."
    secret = lab.write_file("secret", key.decode() + "\n")
    os.chmod(secret, 0o600)
    http, agents, cmd, port = (free_port() for _ in range(4))
    url = f"http://127.0.0.1:{http}"
    conf = lab.write_file("coordinator-auth.yaml", COORD_CONF.format(
        http=http, agents=agents, journal=lab.path("journal-auth.db")) +
        f"agent_secret_file: {secret}\n")
    coord = lab.start("coordinator-auth", [
        reflex_binary("reflex-coordinator"), "-c", conf], env=child_env(),
        ready_url=url + "/readyz")
    aconf = lab.write_file("agent-auth.yaml", AGENT_CONF.format(
        agents=agents, cmd=cmd, sock=lab.path("agent-auth.sock"),
        py=sys.executable, svc=SVC, port=port).replace(
            "node: node-h", "node: node-s") +
        f"coordinator_secret_file: {secret}\n")
    agent = lab.start("agent-auth", [reflex_binary("reflex-agent"), "-c",
                                     aconf], env=child_env())
    ipc = lab.path("ghosts")
    os.makedirs(ipc, exist_ok=True)

    def status():
        r = subprocess.run([reflex_binary("reflex-agent"), "status", "-c",
                            aconf, "--json"], capture_output=True,
                           text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def inst():
        return status()["services"][0]["instances"][0]

    wait_until(lambda: [a for a in http_json(url + "/api/v1/agents")
                        if a["node"] == "node-s"], 15,
               what="the sealed agent registered")
    wait_until(lambda: inst()["state"] == "running", 20,
               what="its instance running")
    before = inst()

    # -- the coordinator's agent socket ------------------------------------
    def register(i, k=key, **kw):
        node = f"auth-{i}" if i >= 0 else "auth-replayed"
        return seal(k, stamped("register", {
            "node": node, "addr": f"ipc://{ipc}/{node}.ipc",
            "runtime": "process", "workloads": []}, rng=rng, **kw))

    kinds, answers = sealed_storm(rng, agents, key, n, register,
                                  coord_seeds(rng, ipc))
    nodes = sorted(a["node"] for a in http_json(url + "/api/v1/agents"))
    tap.diag(f"sealed coordinator: {n} frames {kinds}, answers {answers}, "
             f"registered {nodes}")
    tap.ok(coord.alive() and answers["ok"] <= 1 and
           set(nodes) <= {"auth-replayed", "node-s"} and
           not answers["unsealed"],
           "agent_secret_file: no frame without the secret registers "
           "anything (only the first copy of the one valid frame does), "
           "every answer is sealed", (answers, nodes))
    rep = sealed_request(agents, key, register(10 ** 6))
    tap.ok(rep["body"]["ok"] is True,
           "after the storm a properly sealed registration is accepted", rep)

    # -- the agent's command socket ----------------------------------------
    def command(i, k=key, **kw):
        # Every valid one would restart the instance, but the replayed
        # frame (i < 0), which only clears its cache, once.
        action = "clear_cache" if i < 0 else "restart"
        return seal(k, stamped("command", {
            "action_id": abs(i), "action": action, "service": "demo-a",
            "instance": "demo-a-0", "reason": "hostile",
            "timeout_ms": 20000}, rng=rng, **kw))

    kinds, answers = sealed_storm(rng, cmd, key, n, command,
                                  agent_seeds(rng))
    after = inst()
    tap.diag(f"sealed agent: {n} frames {kinds}, answers {answers}")
    tap.ok(agent.alive() and answers["ok"] <= 1 and
           not answers["unsealed"] and
           after["restarts"] == before["restarts"] and
           after["pid"] == before["pid"],
           "coordinator_secret_file: no command without the secret is "
           "executed (no restart), every answer is sealed",
           (answers, before, after))
    rep = sealed_request(cmd, key, seal(key, stamped("command", {
        "action_id": 1, "action": "clear_cache", "service": "demo-a",
        "instance": "", "reason": "after", "timeout_ms": 20000}, rng=rng)))
    tap.ok(rep["type"] == "reply" and rep["body"]["ok"] is True,
           "after the storm a properly sealed command is carried out", rep)

    for p in (agent, coord):
        rc = lab.stop(p, grace=15)
        reports = [line for line in p.log_text().splitlines()
                   if "runtime error:" in line or "Sanitizer" in line]
        tap.ok(rc == 0 and not reports, f"{p.name} stops cleanly, no "
               "sanitizer report", (rc, reports[:10]))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def child_env():
    # Smaller ASan quarantine (when the binaries have ASan) so that RSS
    # reflects live memory rather than recently freed chunks.
    a = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (a + ":" if a else "") +
            "quarantine_size_mb=8:thread_local_quarantine_size_kb=256"}


class Env:
    def __init__(self, lab):
        self.lab = lab
        self.http = free_port()
        self.agents = free_port()
        self.cmd = free_port()
        self.svc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.journal = lab.path("journal.db")
        self.sock = lab.path("agent.sock")
        self.cconf = lab.write_file("coordinator.yaml", COORD_CONF.format(
            http=self.http, agents=self.agents, journal=self.journal))
        self.aconf = lab.write_file("agent.yaml", AGENT_CONF.format(
            agents=self.agents, cmd=self.cmd, sock=self.sock,
            py=sys.executable, svc=SVC, port=self.svc_port))
        self.coord = lab.start("coordinator", [
            reflex_binary("reflex-coordinator"), "-c", self.cconf],
            env=child_env(), ready_url=self.url + "/readyz")
        self.agent = lab.start("agent", [reflex_binary("reflex-agent"),
                                         "-c", self.aconf], env=child_env())
        wait_until(lambda: [a for a in http_json(self.url + "/api/v1/agents")
                            if a["node"] == "node-h"], 15,
                   what="agent registered")
        wait_until(lambda: self.instance()["state"] == "running" and
                   self.instance()["probe"]["ok"], 20,
                   what="demo-a-0 running and healthy")

    def status(self):
        r = subprocess.run([reflex_binary("reflex-agent"), "status", "-c",
                            self.aconf, "--json"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return json.loads(r.stdout)

    def instance(self):
        for s in self.status()["services"]:
            for i in s["instances"]:
                if i["name"] == "demo-a-0":
                    return i
        raise KeyError("demo-a-0")

    def actions(self):
        return http_json(self.url + "/api/v1/actions?limit=1000")

    def metric(self, name):
        for line in http_get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def alerts_stored(self, alertname):
        db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True,
                             timeout=5)
        try:
            return db.execute("select count(*) from alerts where "
                              "alertname = ?", (alertname,)).fetchone()[0]
        finally:
            db.close()


def asan_slack_kb(pid):
    """Extra slack for a binary built with ASan: its quarantine (8 MiB,
    see child_env) holds freed memory that still counts as resident."""
    with open(f"/proc/{pid}/maps") as f:
        return 8 * 1024 if "libasan" in f.read() else 0


def rss_check(tap, name, warm, end, start, extra):
    slack = RSS_SLACK_KB + extra
    if valgrind_enabled():
        # valgrind's own shadow memory is in the RSS; valgrind itself
        # reports leaks (tests/lib/reflexlab.py).
        tap.skip(f"{name}: VmRSS growth {end - warm} kB",
                 "under valgrind, which checks leaks itself")
        return
    tap.ok(end - warm <= slack,
           f"{name}: VmRSS {start} kB at start, {warm} kB after warm-up, "
           f"{end} kB at the end (growth {end - warm} kB <= {slack} kB)")


def run(tap):
    rng = random.Random(SEED)
    tap.diag(f"seed {SEED}, {N} frames/requests per target "
             "(REFLEX_HOSTILE_SEED / REFLEX_HOSTILE_N)")
    with Lab(prefix="reflex-hostile-") as lab:
        env = Env(lab)
        cpid, apid = env.coord.pid, env.agent.pid
        restarts0 = env.instance()["restarts"]
        pid0 = env.instance()["pid"]
        tap.ok(env.actions() == [], "no action journaled before the storm")
        # Regression (found by this test under UBSan): an empty body
        # reached memcpy(head, NULL, 0) in the webhook's error path.
        codes = [http_raw(env.http, post(b"/api/v1/alerts", b""))[0],
                 http_raw(env.http, b"POST /webhook/alert HTTP/1.1\r\n"
                          b"Host: x\r\n\r\n")[0]]
        tap.ok(codes == [400, 400] and env.coord.alive(),
               "an empty webhook body gets 400 and the coordinator stays up",
               codes)
        check_limits(tap, env, lab)
        bad0 = env.status()["stats"]["bad_frames"]
        cbad0 = env.metric("reflex_agent_bad_frames_total") or 0
        rss = {"coord": [rss_kb(cpid)], "agent": [rss_kb(apid)]}

        def warm(which):
            return lambda: rss[which].append(rss_kb(
                cpid if which == "coord" else apid))

        # -- the agent's command socket ------------------------------------
        t0 = time.monotonic()
        st = storm_frames(rng, env.cmd, agent_seeds(rng), N, warm("agent"),
                          AGENT_RECV_MAX)
        tap.diag(f"agent command socket ({time.monotonic() - t0:.1f} s): "
                 + st.line())
        tap.ok(env.agent.alive(), "the agent survives the frame storm")
        tap.ok(not st.unanswered and not st.malformed,
               "every frame within the size limit got a well-formed reply",
               st.unanswered[:5] + st.malformed[:5])
        tap.ok(st.errors > N // 4 and st.refused > 0,
               "undecodable frames get error replies, others refusals",
               st.line())
        tap.ok(st.accepted == 0, "no frame was accepted as a valid command "
               "on a real service", st.line())
        tap.ok(st.oversize > 0 and st.too_large == st.oversize and
               st.dropped == 0, "every frame over the limit got a too_large "
               "error reply from the agent, none was dropped", st.line())
        bad = env.status()["stats"]["bad_frames"] - bad0
        tap.ok(bad == st.errors, f"the agent counted {bad} bad frames, "
               f"one per error reply ({st.errors})")
        ast = st

        # -- the coordinator's agent socket -------------------------------
        t0 = time.monotonic()
        ipc_dir = lab.path("ghosts")
        os.makedirs(ipc_dir, exist_ok=True)
        st = storm_frames(rng, env.agents, coord_seeds(rng, ipc_dir), N,
                          warm("coord"), COORD_RECV_MAX)
        tap.diag(f"coordinator agent socket ({time.monotonic() - t0:.1f} "
                 "s): " + st.line())
        tap.ok(env.coord.alive(), "the coordinator survives the frame storm")
        tap.ok(not st.unanswered and not st.malformed,
               "every frame within the size limit got a well-formed reply",
               st.unanswered[:5] + st.malformed[:5])
        tap.ok(st.oversize > 0 and st.too_large == st.oversize and
               st.dropped == 0,
               "every frame over the limit got a too_large error reply, "
               "none was dropped", st.line())
        cbad = (env.metric("reflex_agent_bad_frames_total") or 0) - cbad0
        tap.ok(cbad == st.errors, f"the coordinator counted {cbad:.0f} bad "
               f"frames, one per error reply ({st.errors})")
        ghosts = [a["node"] for a in http_json(env.url + "/api/v1/agents")
                  if a["node"] != "node-h"]
        tap.diag(f"ghost registrations accepted: {len(ghosts)} "
                 "(this coordinator runs without agent_secret_file)")
        cst = st

        # -- the webhook ---------------------------------------------------
        t0 = time.monotonic()
        rss["coord"].append(rss_kb(cpid))  # baseline for the HTTP storm
        seeds = webhook_seeds()
        codes, timeouts = storm_http(rng, env.http, seeds, N,
                                     warm("coord"))
        tap.diag(f"webhook ({time.monotonic() - t0:.1f} s): {N} requests, "
                 "status codes " + json.dumps(
                     {str(k): v for k, v in sorted(codes.items(),
                                                   key=str)}))
        tap.ok(env.coord.alive(), "the coordinator survives the HTTP storm")
        tap.ok(not timeouts, "every hostile request was answered or closed "
               f"within {HTTP_WAIT:g} s of the client's end of input",
               timeouts[:5])
        tap.ok(codes.get(400, 0) > 0 and codes.get(413, 0) > 0 and
               codes.get(200, 0) > 0 and not codes.get(500, 0) and
               not codes.get(503, 0),
               "malformed bodies get 400, limit breakers 413, no 5xx",
               codes)

        # -- slowloris -----------------------------------------------------
        slow = []
        for i in range(64):
            s = socket.create_connection(("127.0.0.1", env.http), 5)
            part = [b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n",
                    b"POST /api/v1/alerts HTTP/1.1\r\nContent-Length: "
                    b"1000\r\n\r\n{\"version\":", b"G"][i % 3]
            s.sendall(part)
            slow.append(s)
        t0 = time.monotonic()
        r = http_post(env.url + "/api/v1/alerts", json.dumps(notification([
            alert({"alertname": "AfterSlowloris", "x": "1"})])),
            {"Content-Type": "application/json"}, timeout=5)
        tap.ok(r.status == 200 and time.monotonic() - t0 < 5,
               "with 64 partial requests held open, a valid webhook is "
               "answered 200", r.status)
        closed = 0
        deadline = time.monotonic() + 20  # generous bound for 2 s timeouts
        for s in slow:
            try:
                while True:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    if s.recv(4096) == b"":  # a 408 may come first
                        closed += 1
                        break
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        for s in slow:
            s.close()
        tap.ok(closed == 64, f"slowloris: {closed} of 64 partial requests "
               "closed by the server (http.header_timeout/body_timeout 2s)")

        # -- afterwards: alive, answering, nothing executed, memory -------
        time.sleep(1.0)  # let the last requests finish
        rss["coord"].append(rss_kb(cpid))
        rss["agent"].append(rss_kb(apid))
        tap.ok(env.coord.alive() and env.agent.alive(),
               "both processes are still running")
        conn = SPReq(env.cmd)
        rep = unpack(conn.request(frame("command", {
            "action_id": 77, "action": "restart", "service": "ghost",
            "instance": "", "reason": "probe", "timeout_ms": 1000}, 4242)))
        tap.ok(rep["type"] == "reply" and rep["id"] == 4242 and
               rep["body"]["ok"] is False and rep["body"]["code"] == -2,
               "a valid command for an unknown service: reply -ENOENT",
               rep)
        rep = unpack(conn.request(frame("command", {
            "action_id": 78, "action": "clear_cache", "service": "demo-a",
            "instance": "demo-a-0", "reason": "probe", "timeout_ms": 5000},
            4243)))
        conn.close()
        tap.ok(rep["type"] == "reply" and rep["body"]["ok"] is True,
               "a valid clear_cache command is carried out and answered ok",
               rep)
        conn = SPReq(env.agents)
        rep = unpack(conn.request(frame("heartbeat", {
            "node": "node-h", "seq": 1, "unhealthy": 0}, 99)))
        conn.close()
        tap.ok(rep["type"] == "reply" and rep["body"]["ok"] is True,
               "the coordinator answers a valid heartbeat", rep)
        r = http_post(env.url + "/api/v1/alerts", json.dumps(notification([
            alert({"alertname": "AfterStorm", "service": "ghost"})])),
            {"Content-Type": "application/json"})
        tap.ok(r.status == 200 and env.alerts_stored("AfterStorm") == 1,
               "a valid webhook gets 200 and is in the journal", r.status)
        inst = env.instance()
        tap.ok(inst["restarts"] == restarts0 and inst["pid"] == pid0,
               "nothing was executed: no restart counted, same pid",
               (restarts0, pid0, inst["restarts"], inst["pid"]))
        acts = env.actions()
        permits = [a for a in acts if a["rule"] == "local"]
        tap.ok(not [a for a in acts if a["rule"] != "local"],
               "nothing was executed: no action journaled from a rule",
               acts[:5])
        tap.ok(not [a for a in permits if a["node"] == "node-h" or
                    a["service"] == "demo-a"],
               "no permit journaled for the real node or service",
               permits[:5])
        tap.diag(f"permits answered for ghost nodes: {len(permits)} "
                 f"({sum(a['state'] == 'permitted' for a in permits)} "
                 "granted; each counts against the safety rate limits)")
        rss_check(tap, "agent", rss["agent"][1], rss["agent"][-1],
                  rss["agent"][0], asan_slack_kb(apid))
        rss_check(tap, "coordinator (frames)", rss["coord"][1],
                  rss["coord"][2], rss["coord"][0], asan_slack_kb(cpid))
        rss_check(tap, "coordinator (HTTP)", rss["coord"][3],
                  rss["coord"][-1], rss["coord"][2], asan_slack_kb(cpid))
        tap.diag("RSS kB: agent " + " -> ".join(map(str, rss["agent"])) +
                 "; coordinator " + " -> ".join(map(str, rss["coord"])))

        # -- and the real path still works ---------------------------------
        r = http_post(env.url + "/api/v1/alerts", json.dumps(notification([
            alert({"alertname": "RestartMe", "service": "demo-a",
                   "instance": "demo-a-0"})])),
            {"Content-Type": "application/json"})
        done = wait_until(lambda: [a for a in env.actions()
                                   if a["state"] == "succeeded"], 30,
                          what="the restart succeeded")
        inst = env.instance()
        tap.ok(r.status == 200 and len(done) == 1 and
               inst["restarts"] == restarts0 + 1 and inst["pid"] != pid0,
               "after the storm, a valid alert restarts demo-a-0 once",
               (r.status, done, inst))

        # -- the authenticated channel --------------------------------------
        auth_storm(tap, lab, rng, N)

        # -- clean stop ----------------------------------------------------
        for p in (env.agent, env.coord):
            rc = lab.stop(p, grace=15)
            tap.ok(rc == 0, f"{p.name} stops cleanly on SIGTERM", rc)
            reports = [line for line in p.log_text().splitlines()
                       if "runtime error:" in line or "Sanitizer" in line]
            tap.ok(not reports, f"no sanitizer report in the {p.name} log",
                   "\n".join(reports[:20]))
        tap.diag(f"agent: {ast.line()}")
        tap.diag(f"coordinator: {cst.line()}")


if __name__ == "__main__":
    Tap.main(run)
