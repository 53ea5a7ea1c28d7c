#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""run-demo: reflex healing a demo service, end to end, on 127.0.0.1.

Starts the coordinator, two agents (node-1, node-2) that supervise two
services (demo-a, demo-b) of two reflex-demo-svc instances each,
Alertmanager (webhook to the coordinator) and Prometheus (scraping the
four instances, rules from prometheus-rules.yml); then injects the
error-rate fault into one instance and prints a timeline:

    fault injected -> alert firing (Alertmanager API) -> action planned /
    dispatched / succeeded (coordinator GET /api/v1/actions) -> instance
    restarted (its demo_start_time_seconds) -> healthy again (Prometheus:
    its 500 rate back to 0) -> alert resolved (Alertmanager API)

and stops everything (exit 0), or keeps it running with --keep.

--no-reflex runs the same scenario without reflex: the runner starts the
four instances itself, Alertmanager posts to a fake receiver, and the
runner restarts the faulty instance when the webhook arrives (a labelled
stand-in for what reflex does). Everything binds to 127.0.0.1 only.

Config templates: coordinator.yml, agent-1.yml and agent-2.yml beside
this script are rendered with ${TOKEN} substitution (see README.md and
`--list-tokens`) into the work directory, then passed as -c FILE.
"""

import argparse
import os
import signal
import string
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
from reflexlab import (LOOPBACK, Lab, LabAbort, LabError,  # noqa: E402
                       build_dir, free_port, http_get, http_json, http_ok, http_post,
                       missing_monitoring_tools, pids_listening,
                       reflex_binary, wait_until)

RULES = os.path.join(HERE, "prometheus-rules.yml")
# The coordinator's Alertmanager webhook path on its HTTP listener.
COORD_WEBHOOK_PATH = "/api/v1/alerts"
COORD_ACTIONS_PATH = "/api/v1/actions"
COORD_READY_PATH = "/readyz"
# service -> instance count; node -> [(service, index)]
SERVICES = {"demo-a": 2, "demo-b": 2}
# Each agent supervises one service of two instances; an agent gives
# instance i of a service the port base_port + i, so a service's ports
# are consecutive.
NODES = {"node-1": [("demo-a", 0), ("demo-a", 1)],
         "node-2": [("demo-b", 0), ("demo-b", 1)]}
TEMPLATES = {"coordinator": "coordinator.yml",
             "node-1": "agent-1.yml", "node-2": "agent-2.yml"}
FINAL_STATES = ("succeeded", "failed")


# ---------------------------------------------------------------------------
# topology and config rendering

class Instance:
    def __init__(self, service, index, node, port):
        self.service = service
        self.index = index
        self.node = node
        self.port = port
        self.name = f"{service}-{index}"
        self.addr = f"{LOOPBACK}:{port}"   # Prometheus' instance label
        self.url = f"http://{self.addr}"
        self.proc = None                   # set in --no-reflex mode


def free_port_pair():
    """A port p such that p and p + 1 are both free on 127.0.0.1."""
    import socket
    for _ in range(200):
        p = free_port()
        if p >= 65535:
            continue
        s = socket.socket()
        try:
            s.bind((LOOPBACK, p + 1))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise LabError("no two consecutive free ports on 127.0.0.1")


def make_topology():
    insts = []
    for node, members in NODES.items():
        base = free_port_pair()
        for service, index in members:
            insts.append(Instance(service, index, node, base + index))
    insts.sort(key=lambda i: (i.service, i.index))
    return insts


def make_tokens(lab, insts, demo_bin, build):
    """Values substituted for ${TOKEN} in the config templates."""
    t = {
        "WORKDIR": lab.workdir,
        "BUILD": build or "",
        "DEMO_SVC": demo_bin,
        "COORD_HTTP_PORT": str(free_port()),
        "COORD_NNG_URL": f"tcp://{LOOPBACK}:{free_port()}",
        "COORD_JOURNAL": lab.path("coordinator.db"),
        "COORD_WEBHOOK_PATH": COORD_WEBHOOK_PATH,
    }
    t["COORD_HTTP_ADDR"] = f"{LOOPBACK}:{t['COORD_HTTP_PORT']}"
    # The operator's token, so that pause, resume and approvals can be
    # tried on the running demo (a throw-away secret, mode 0600).
    token = lab.path("operator.token")
    if os.path.isdir(lab.workdir):
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
    t["OPERATOR_TOKEN_FILE"] = token
    for n, node in enumerate(NODES, 1):
        t[f"AGENT_{n}_NODE"] = node
        t[f"AGENT_{n}_NNG_URL"] = f"tcp://{LOOPBACK}:{free_port()}"
        t[f"AGENT_{n}_METRICS_ADDR"] = f"{LOOPBACK}:{free_port()}"
    for i in insts:
        key = f"{i.service}_{i.index}".upper().replace("-", "_")
        t[f"{key}_PORT"] = str(i.port)
        t[f"{key}_ADDR"] = i.addr
    return t


def render(lab, template, out_name, tokens):
    """Writes the template with ${TOKEN}s substituted into the work dir
    ("$$" is a literal "$"). An unknown token is an error."""
    with open(template) as f:
        text = f.read()
    try:
        out = string.Template(text).substitute(tokens)
    except (KeyError, ValueError) as e:
        raise LabError(f"{template}: unknown or malformed token {e}; known: "
                       f"{', '.join(sorted(tokens))}") from None
    return lab.write_file(out_name, out)


# ---------------------------------------------------------------------------
# reflex processes: the only places that know how they are started

def start_coordinator(lab, build, config_path, http_addr):
    """reflex-coordinator -c FILE; ready once /readyz answers 2xx."""
    binary = reflex_binary("reflex-coordinator", build)
    return lab.start("coordinator", [binary, "-c", config_path],
                     ready_url=f"http://{http_addr}{COORD_READY_PATH}",
                     ready_timeout=20.0)


def start_agent(lab, build, node, config_path, insts):
    """reflex-agent -c FILE; ready once every instance it supervises
    answers /healthz (the agent starts them)."""
    binary = reflex_binary("reflex-agent", build)
    p = lab.start(f"agent-{node}", [binary, "-c", config_path])

    def ready():
        if not p.alive():
            raise LabAbort(f"agent {node} exited with status {p.returncode};"
                           f" log {p.log_path}:\n{p.log_text(tail=15)}")
        return all(http_ok(i.url + "/healthz") for i in insts)
    wait_until(ready, 20.0, what=f"agent {node}'s instances to answer")
    return p


def start_instance_directly(lab, demo_bin, inst):
    """--no-reflex: the runner supervises the instance itself."""
    inst.proc = lab.start(f"{inst.name}", [demo_bin, "--port", inst.port,
                                           "--name", inst.name],
                          port=inst.port, ready_url=inst.url + "/healthz")
    return inst.proc


def reap_orphans(insts, demo_bin):
    """After the agents stopped: any demo instance still listening was
    left behind by its agent. Reports and kills it (only if it is
    reflex-demo-svc)."""
    left = []
    for i in insts:
        for pid in pids_listening(i.port):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if os.path.samefile(exe, demo_bin):
                left.append((i, pid))
                os.kill(pid, 9)
    for i, pid in left:
        print(f"warning: {i.name} (pid {pid}) outlived its agent; killed",
              file=sys.stderr)
    return left


# ---------------------------------------------------------------------------
# the timeline

class Timeline:
    def __init__(self):
        self.t0 = None
        self.events = []

    def start(self):
        self.t0 = time.monotonic()

    def add(self, what, detail="", at=None):
        """Prints an event as it is observed; `at` (epoch seconds) when it
        happened earlier than now, e.g. a timestamp read back from the
        coordinator (so a line can carry a time a few ms before the line
        above it: the sources are polled one after another)."""
        now = time.time()
        rel = time.monotonic() - self.t0 if self.t0 else 0.0
        if at is not None and at <= now:
            rel -= now - at
            now = at
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + \
            f".{int(now * 1000) % 1000:03d}"
        line = f"{stamp}  +{rel:6.2f}s  {what:<26} {detail}"
        self.events.append((rel, what, detail))
        print(line, flush=True)


def epoch(rfc3339):
    """'2026-12-04T16:01:01.787Z' -> epoch seconds (None if unparsable)."""
    import datetime
    try:
        return datetime.datetime.strptime(
            rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def am_firing(am, alertname, addr):
    return [a for a in am.alerts(alertname=alertname, instance=addr)
            if (a.get("status") or {}).get("state") == "active"]


def coord_actions(http_addr):
    doc = http_json(f"http://{http_addr}{COORD_ACTIONS_PATH}")
    if isinstance(doc, dict):
        doc = doc.get("actions", [])
    return doc if isinstance(doc, list) else []


def start_time_of(inst):
    for line in http_get(inst.url + "/metrics", timeout=1.0).text.splitlines():
        if line.startswith("demo_start_time_seconds "):
            return float(line.split()[1])
    return None


def follow(tl, args, am, prom, target, coord_addr, hook, lab, demo_bin):
    """Polls every source until the alert is resolved (and, with reflex,
    its action reached a final state). Returns True when healed."""
    alertname = "HighErrorRate"
    seen = set()
    fired = restarted = healthy = resolved = False
    final = args.no_reflex
    started_at = start_time_of(target)
    err_expr = (f'sum(rate(demo_requests_total{{code="500",'
                f'instance="{target.addr}"}}[5s]))')
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not fired and am_firing(am, alertname, target.addr):
            fired = True
            tl.add("alert firing", f"{alertname} {target.service} "
                   f"{target.addr} (Alertmanager API)")
        if hook is not None:
            for d, a in hook.alerts(alertname=alertname,
                                    instance=target.addr):
                key = ("hook", a.get("status"), a.get("fingerprint"))
                if key not in seen:
                    seen.add(key)
                    tl.add("webhook received", f"{a.get('status')} "
                           f"{alertname} {target.addr} (fake receiver)")
                    if a.get("status") == "firing" and target.proc:
                        # Stand-in for reflex: restart the process.
                        tl.add("restart (stand-in)", f"{target.name}: the "
                               "runner restarts it, as an agent would")
                        lab.stop(target.proc)
                        start_instance_directly(lab, demo_bin, target)
        if coord_addr is not None:
            try:
                actions = coord_actions(coord_addr)
            except (OSError, LabError, ValueError):
                actions = []
            actions = [a for a in actions if isinstance(a, dict)]
            actions.sort(key=lambda a: (a.get("created") or "",
                                        a.get("id") or 0))
            for a in actions:
                inst = a.get("instance") or ""
                if inst not in (target.addr, target.name) and not (
                        inst == "" and a.get("service") == target.service):
                    continue
                key = ("action", a.get("id"), a.get("state"),
                       a.get("attempt"))
                if key in seen:
                    continue
                seen.add(key)
                if ("received", a.get("alert_id")) not in seen:
                    seen.add(("received", a.get("alert_id")))
                    tl.add("webhook received", f"alert #{a.get('alert_id')}"
                           f" {a.get('alertname')} (coordinator journal)",
                           at=epoch(a.get("alert_received")))
                kind = a.get("type")
                where = (f"{a.get('service')}/{a.get('instance') or '(all)'}"
                         f" on {a.get('node') or '?'}")
                detail = (a.get("detail") or "").strip()
                if kind == "evidence":
                    # The evidence itself (log tail, exit status) is long;
                    # show its size here, the text is in the journal.
                    n = detail.count("\n") + 1 if detail else 0
                    tl.add(f"evidence {a.get('state')}",
                           f"#{a.get('id')} {where}: {n} line(s) of log "
                           "and exit status kept in the journal",
                           at=epoch(a.get("updated")))
                    continue
                if kind != "verify" and \
                        ("dispatched", a.get("id")) not in seen:
                    seen.add(("dispatched", a.get("id")))
                    tl.add("action dispatched", f"#{a.get('id')} {kind} "
                           f"{where} (rule {a.get('rule')})",
                           at=epoch(a.get("created")))
                if kind != "verify" and a.get("state") == "dispatched":
                    continue  # the "action dispatched" line above says it
                label = ("verification" if kind == "verify"
                         else "action") + f" {a.get('state')}"
                tl.add(label, at=epoch(a.get("updated")),
                       detail=f"#{a.get('id')} {kind} {where}"
                       f" attempt={a.get('attempt')} "
                       f"{detail.splitlines()[0] if detail else ''}"
                       .rstrip())
                if a.get("state") in FINAL_STATES:
                    final = True
        if not restarted:
            try:
                st = start_time_of(target)
            except (OSError, LabError):
                st = None
            if st is not None and started_at is not None and st != started_at:
                restarted = True
                tl.add("instance restarted", f"{target.name} "
                       f"{target.addr} (new demo_start_time_seconds)")
        if fired and not healthy:
            try:
                v = prom.value(err_expr)
            except (OSError, LabError):
                v = None
            if v == 0.0:
                healthy = True
                tl.add("healthy again", f"{target.addr}: 500 rate 0 "
                       "(Prometheus)")
        if fired and not resolved and not am_firing(am, alertname,
                                                    target.addr):
            resolved = True
            tl.add("alert resolved", f"{alertname} {target.addr} "
                   "(Alertmanager API)")
        if resolved and healthy and final and (hook is None or ("hook", "resolved")
                                   in {k[:2] for k in seen}):
            return True
        time.sleep(0.1)
    print(f"timed out after {args.timeout:g}s: fired={fired} "
          f"restarted={restarted} healthy={healthy} resolved={resolved} "
          f"action_final={final}", file=sys.stderr)
    return False


# ---------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="reflex build dir (default "
                    "$REFLEX_BUILD, else <repo>/build)")
    ap.add_argument("--keep", action="store_true",
                    help="keep everything running after the timeline "
                    "until Ctrl-C")
    ap.add_argument("--no-reflex", action="store_true",
                    help="no coordinator/agents: fake webhook receiver, "
                    "the runner restarts the instance itself")
    ap.add_argument("--fault-instance", default="demo-a-1",
                    help="instance to break (default demo-a-1)")
    ap.add_argument("--rate", default="0.5",
                    help="error share injected (default 0.5)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for healing (default 120)")
    ap.add_argument("--config-dir", default=HERE,
                    help="where coordinator.yml, agent-1.yml, agent-2.yml "
                    "are (default: beside this script)")
    ap.add_argument("--workdir", help="work directory (default: a new "
                    "temporary one, removed on success)")
    ap.add_argument("--list-tokens", action="store_true",
                    help="print the template tokens and exit")
    return ap.parse_args()


def preflight(args):
    missing = missing_monitoring_tools()
    if missing:
        sys.exit(f"run-demo: not installed: {', '.join(missing)} "
                 "(apt-get install prometheus prometheus-alertmanager)")
    demo_bin = reflex_binary("reflex-demo-svc", args.build)
    if args.no_reflex:
        return demo_bin
    problems = []
    for name in ("reflex-coordinator", "reflex-agent"):
        try:
            reflex_binary(name, args.build)
        except LabError as e:
            problems.append(str(e))
    for tmpl in TEMPLATES.values():
        p = os.path.join(args.config_dir, tmpl)
        if not os.path.isfile(p):
            problems.append(f"config template {p} missing")
    if problems:
        sys.exit("run-demo: cannot run with reflex:\n  " +
                 "\n  ".join(problems) + "\n(--no-reflex runs the demo "
                 "with a fake webhook receiver instead)")
    return demo_bin


def keep_running(lab):
    """--keep: waits for Ctrl-C, then keeps the work directory (journal,
    configs, logs: what the operator was looking at). A shell started
    without job control (a script's `demo.sh --keep &`) hands its
    background jobs SIGINT ignored, and Python then never raises
    KeyboardInterrupt: the documented way to stop would do nothing, so
    SIGINT is taken back here."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    lab.keep = True


def run(args, lab, demo_bin):
    insts = make_topology()
    target = next((i for i in insts if i.name == args.fault_instance), None)
    if target is None:
        sys.exit(f"run-demo: no instance {args.fault_instance!r}; have "
                 f"{', '.join(i.name for i in insts)}")
    tl = Timeline()
    hook = coord_addr = agent_metrics = None
    agents = []

    if args.no_reflex:
        hook = lab.start_webhook_receiver()
        webhook_url = hook.url
        for i in insts:
            start_instance_directly(lab, demo_bin, i)
    else:
        tokens = make_tokens(lab, insts, demo_bin, build_dir(args.build))
        coord_addr = tokens["COORD_HTTP_ADDR"]
        agent_metrics = tokens["AGENT_1_METRICS_ADDR"]
        webhook_url = f"http://{coord_addr}{COORD_WEBHOOK_PATH}"
        cfg = {who: render(lab, os.path.join(args.config_dir, tmpl),
                           f"{who}.yml", tokens)
               for who, tmpl in TEMPLATES.items()}
        start_coordinator(lab, args.build, cfg["coordinator"], coord_addr)
        for node in NODES:
            agents.append(start_agent(lab, args.build, node, cfg[node],
                                      [i for i in insts if i.node == node]))
    am = lab.start_alertmanager(webhook_url,
                                group_by=("alertname", "service", "instance"))
    prom = lab.start_prometheus(
        scrape=[{"job": "demo", "targets": [i.addr for i in insts
                                            if i.service == svc],
                 "labels": {"service": svc}} for svc in SERVICES],
        rule_files=[RULES], alertmanager=am)
    wait_until(lambda: len(prom.query('up{job="demo"} == 1')) == len(insts),
               30, what="Prometheus to scrape every instance")
    wait_until(lambda: len(prom.query('rate(demo_requests_total[5s])')) >=
               2 * len(insts), 30, what="request rates of every instance")

    print(f"work dir     {lab.workdir}")
    print(f"Prometheus   {prom.url}    Alertmanager {am.url}")
    if coord_addr:
        print(f"coordinator  http://{coord_addr}{COORD_ACTIONS_PATH}")
    for i in insts:
        print(f"{i.name:<12} {i.url}  node {i.node}")
    print()

    tl.start()
    r = http_post(f"{target.url}/fault/errors?rate={args.rate}")
    if r.status != 200:
        raise LabError(f"fault injection failed: HTTP {r.status} {r.text}")
    tl.add("fault injected", f"{target.name} {target.addr}: "
           f"{args.rate} of requests fail; /healthz still ok")
    healed = follow(tl, args, am, prom, target, coord_addr, hook, lab,
                    demo_bin)
    print()
    print("healed" if healed else "NOT healed", flush=True)

    if args.keep:
        bindir = os.path.dirname(reflex_binary("reflex-coordinator",
                                               args.build))
        print("--keep: everything keeps running; Ctrl-C (SIGINT) or SIGTERM "
              "stops it. Try:", flush=True)
        if coord_addr:
            c = f"{bindir}/reflex-coordinator -c {lab.workdir}/coordinator.yml"
            a = os.path.join(os.path.dirname(bindir), "agent",
                             "reflex-agent")
            for line in (f"{c} status", f"{c} history", f"{c} alerts",
                         f"{c} agents",
                         f"{c} pause    # and: resume",
                         f"{a} status -c {lab.workdir}/node-1.yml",
                         f"curl -s http://{coord_addr}/metrics",
                         f"curl -s http://{coord_addr}/health",
                         f"curl -s http://{agent_metrics}/metrics"
                         "    # reflex-agent of node-1"):
                print(f"  {line}", flush=True)
        keep_running(lab)
    for a in agents:
        lab.stop(a)
    if agents:
        reap_orphans(insts, demo_bin)
    return healed


def main():
    args = parse_args()
    if args.list_tokens:
        class Fake:
            workdir = "<workdir>"

            @staticmethod
            def path(n):
                return f"<workdir>/{n}"
        for k, v in sorted(make_tokens(Fake, make_topology(), "<demo-svc>",
                                       args.build).items()):
            print(f"${{{k}}}  e.g. {v}")
        return 0
    demo_bin = preflight(args)
    with Lab(workdir=args.workdir) as lab:
        try:
            healed = run(args, lab, demo_bin)
        except BaseException:
            lab.mark_failed()
            raise
        if not healed:
            lab.mark_failed()
    print("stopped everything it started", flush=True)
    return 0 if healed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as e:
        sys.exit(f"run-demo: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
