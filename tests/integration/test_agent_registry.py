#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The agent registry's bounds on the open channel, on 127.0.0.1 only:
max_workloads caps the workloads held over all agents (a registration
that would pass it is refused, "workload limit reached ... (max_workloads)",
counted in reflex_agent_workloads_refused_total and logged, while the
agents already registered keep working); GET /api/v1/agents answers in
pages (?limit=N&after=NODE, a Link rel="next" header while more follow, at
most 10,000 workloads a page) that hold every agent exactly once; the
CLI's `agents` lists every agent across the pages.

Registrations and heartbeats are raw SP/nng frames (test_hostile.py).
"""

import os
import re
import subprocess
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get,  # noqa: E402
                       reflex_binary)
from test_hostile import SPReq, frame, unpack  # noqa: E402

ENOSPC = 28
BIG, PER_BIG = 11, 1000   # 11 nodes of 1,000 workloads: two pages' worth
SMALL = 30                # nodes without workloads
ODD = "z.odd_name-1"      # node names are [A-Za-z0-9._-]

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
max_workloads: {maxw}
"""


def metric(url, name):
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Channel:
    def __init__(self, port):
        self.conn = SPReq(port)
        self.id = 0

    def ask(self, type_, body):
        self.id += 1
        return unpack(self.conn.request(frame(type_, body, self.id)))

    def register(self, node, n, tag="w"):
        return self.ask("register", {
            "node": node, "addr": f"tcp://127.0.0.1:{DEAD_PORT}",
            "runtime": "process", "workloads": [
                {"service": f"svc-{i % 7}", "instance": f"{tag}-{node}-{i}",
                 "addr": f"127.0.0.1:{20000 + i}", "healthy": True}
                for i in range(n)]})


def get(url):
    r = http_get(url)
    import json
    return r.status, r.headers, json.loads(r.text) if r.status == 200 \
        else r.text


def next_link(headers):
    for k, v in headers.items():
        if k.lower() == "link":
            m = re.match(r'<([^>]*)>; rel="next"$', v)
            return m.group(1) if m else "malformed: " + v
    return None


def follow(url, first):
    """Every page from `first`: (nodes in order, pages, workloads/page)."""
    nodes, sizes, path = [], [], first
    while path is not None:
        st, hdr, doc = get(url + path)
        if st != 200 or len(sizes) > 100:
            return None, sizes, (st, doc)
        nodes += [a["node"] for a in doc]
        sizes.append(sum(len(a["workloads"]) for a in doc))
        path = next_link(hdr)
    return nodes, sizes, None


def run(tap, lab):
    global DEAD_PORT
    DEAD_PORT = free_port()  # nobody listens: commands would fail, fine
    http, agents = free_port(), free_port()
    maxw = BIG * PER_BIG
    cfg = lab.write_file("c.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path("j.db"), maxw=maxw))
    url = f"http://127.0.0.1:{http}"
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")
    ch = Channel(agents)

    # -- max_workloads ---------------------------------------------------------
    big = [f"big-{i:02d}" for i in range(BIG)]
    reps = [ch.register(n, PER_BIG) for n in big]
    tap.ok(all(r["type"] == "reply" and r["body"]["ok"] for r in reps),
           f"{BIG} nodes of {PER_BIG} workloads fill max_workloads: {maxw}",
           [r["body"] for r in reps if not r["body"].get("ok")][:2])
    rep = ch.register("late", 1)
    b = rep["body"]
    tap.ok(rep["type"] == "reply" and b["ok"] is False and
           b["code"] == -ENOSPC and "workload limit reached" in b["message"]
           and "max_workloads" in b["message"],
           "one more workload from a new node is refused, naming "
           "max_workloads", b)
    rep = ch.register("big-00", PER_BIG + 1)
    tap.ok(rep["body"]["ok"] is False and rep["body"]["code"] == -ENOSPC,
           "a known node growing past the cap is refused too", rep["body"])
    tap.ok(metric(url, "reflex_agent_workloads_refused_total") == 2,
           "both refusals are counted in /metrics",
           metric(url, "reflex_agent_workloads_refused_total"))
    log = coord.log_text()
    tap.ok("agents.register_refused" in log and "late" in log and
           "max_workloads=11000" in log,
           "and logged (agents.register_refused ... max_workloads=11000)")
    rep = ch.register("big-00", PER_BIG, tag="again")
    tap.ok(rep["body"]["ok"] is True,
           "a known node registers again with as many workloads (its old "
           "ones are replaced, not added)", rep["body"])
    hb = ch.ask("heartbeat", {"node": "big-05", "seq": 1, "unhealthy": 0})
    tap.ok(hb["type"] == "reply" and hb["body"]["ok"] is True,
           "existing agents keep heartbeating", hb)
    small = [f"n-{i:03d}" for i in range(SMALL)] + [ODD]
    reps = [ch.register(n, 0) for n in small]
    tap.ok(all(r["body"]["ok"] for r in reps),
           "nodes without workloads still register at the cap",
           [r["body"] for r in reps if not r["body"]["ok"]][:2])
    everyone = sorted(big + small)
    b00 = [a for a in get(url + "/api/v1/agents?limit=1")[2]]
    tap.ok(len(b00) == 1 and b00[0]["node"] == "big-00" and
           b00[0]["workloads"][0]["instance"] == "again-big-00-0" and
           set(b00[0]) >= {"node", "addr", "runtime", "state", "registered",
                           "last_seen_ms_ago", "heartbeats", "unhealthy",
                           "workloads"},
           "an agent keeps its fields and its new workloads",
           b00[0] if b00 else None)

    # -- paging ------------------------------------------------------------
    st, hdr, doc = get(url + "/api/v1/agents")
    tap.ok(st == 200 and [a["node"] for a in doc] == big[:10] and
           next_link(hdr) == "/api/v1/agents?limit=500&after=big-09",
           "the default page stops at 10,000 workloads, and its Link "
           "header names the next page",
           (st, [a["node"] for a in doc] if st == 200 else doc,
            next_link(hdr)))
    nodes, sizes, err = follow(url, "/api/v1/agents")
    tap.ok(nodes == everyone and max(sizes) <= 10000,
           f"following Link from the first page gives all {len(everyone)} "
           "agents once each, in node order", (sizes, err, nodes))
    nodes, sizes, err = follow(url, "/api/v1/agents?limit=7")
    tap.ok(nodes == everyone and len(sizes) == 6,
           "so does ?limit=7, over six pages", (sizes, err))
    enc = urllib.parse.quote(ODD, safe="")  # (nothing to encode)
    st, hdr, doc = get(url + "/api/v1/agents?limit=1&after=n-029")
    tap.ok(st == 200 and [a["node"] for a in doc] == [ODD] and
           next_link(hdr) is None,
           "the last page has no Link", (st, doc, hdr))
    st, hdr, doc = get(url + "/api/v1/agents?limit=2&after=n-028")
    tap.ok(st == 200 and next_link(hdr) is None and len(doc) == 2,
           "an exactly full last page has no Link either", (st, hdr))
    st, hdr, doc = get(url + "/api/v1/agents?limit=1&after=" + enc)
    tap.ok(st == 200 and doc == [],
           "after the last node: an empty page", (st, doc))
    bad = {q: get(url + "/api/v1/agents?" + q)[0]
           for q in ["limit=0", "limit=1001", "limit=x", "page=2",
                     "after"]}
    tap.ok(all(s == 400 for s in bad.values()),
           "limit outside 1..1000, unknown or malformed parameters: 400",
           bad)
    tap.ok(get(url + "/api/v1/agents?limit=1000")[0] == 200,
           "limit=1000 is allowed")

    # -- the CLI follows the pages ---------------------------------------------
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg,
                        "agents"], capture_output=True, text=True,
                       timeout=30)
    rows = [ln.split()[0] for ln in r.stdout.splitlines()[1:] if ln]
    tap.ok(r.returncode == 0 and rows == everyone,
           f"`reflex-coordinator agents` lists all {len(everyone)} agents "
           "once, across pages", (r.returncode, r.stderr, len(rows)))
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg,
                        "agents", "--json"], capture_output=True, text=True,
                       timeout=30)
    import json
    doc = json.loads(r.stdout) if r.returncode == 0 else []
    tap.ok([a["node"] for a in doc] == everyone and
           sum(len(a["workloads"]) for a in doc) == BIG * PER_BIG,
           "`agents --json` prints them as one array with their workloads",
           (r.returncode, r.stderr))
    tap.ok(coord.alive(), "the coordinator is still running")


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-agent-registry-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
