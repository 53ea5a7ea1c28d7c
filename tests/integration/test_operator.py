#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Operator surface and who may talk to the coordinator: webhook bearer and
basic credentials (401 stores nothing), the operator token for pause and
resume, HTTPS with a certificate made by openssl, and the CLI: history,
alerts, pause, resume and simulate."""

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_get, http_json,  # noqa: E402
                       http_post, http_request, reflex_binary, scaled,
                       wait_until)

SRC = os.environ.get("REFLEX_SRC", os.path.join(os.path.dirname(__file__),
                                                "..", ".."))
CASES = os.path.join(SRC, "tests", "data", "webhook")

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
journal: {journal}
auth:
  webhook_token_file: {dir}/webhook.token
  webhook_username: alertmanager
  webhook_password_file: {dir}/webhook.password
  operator_token_file: {dir}/operator.token
{tls}safety: {{ blast_radius_percent: 100 }}
rules:
  - name: restart-down
    matchers: ['alertname = "ServiceDown"']
    verify: {{ health: false, resolved: false }}
    actions:
      - type: restart
        service: web
        instance: "{{{{ instance }}}}"
"""


def body(instance, name="ServiceDown"):
    return json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": name,
                                       "instance": instance},
        "startsAt": "2026-12-04T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z"}]})


def coordinator(lab, tls=""):
    http, agents = free_port(), free_port()
    cfg = lab.write_file(f"c{http}.yml", CONFIG.format(
        http=http, agents=agents, journal=lab.path(f"j{http}.db"),
        dir=lab.workdir, tls=tls))
    return cfg, http, agents


def cli(cfg, *args):
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg]
                       + list(args), capture_output=True, text=True,
                       timeout=20)
    return r.returncode, r.stdout, r.stderr


def run(tap, lab):
    lab.write_file("webhook.token", "s3cret-token\n")
    lab.write_file("webhook.password", "pa55word")
    lab.write_file("operator.token", "op-token")
    cfg, http, agents = coordinator(lab)
    url = f"http://127.0.0.1:{http}"
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")
    lab.start("agent", [reflex_binary("fake-agents"), "--coordinator",
                        f"tcp://127.0.0.1:{agents}", "--port", "0", "--heartbeat-ms", "200",
                        "--workload", "web:web-{i}:127.0.0.1:1800{i}",
                        "--count", "4"])
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 4, 10,
               what="agents")
    db = lab.path(f"j{http}.db")

    def stored():
        c = sqlite3.connect(db)
        n = c.execute("select count(*) from alerts").fetchone()[0]
        c.close()
        return n

    # -- webhook credentials -----------------------------------------------
    hooks = url + "/api/v1/alerts"
    cases = [
        ("no credentials", {}, 401),
        ("wrong bearer token", {"Authorization": "Bearer nope"}, 401),
        ("bearer token with a suffix",
         {"Authorization": "Bearer s3cret-token-x"}, 401),
        ("wrong basic password", {"Authorization": "Basic " +
         base64.b64encode(b"alertmanager:nope").decode()}, 401),
        ("malformed basic", {"Authorization": "Basic ***"}, 401),
        ("other scheme", {"Authorization": "Token s3cret-token"}, 401),
    ]
    for what, hdrs, want in cases:
        r = http_post(hooks, body("web-0"), hdrs)
        tap.ok(r.status == want, f"webhook, {what}: {want}", r.status)
    tap.ok(stored() == 0, "no rejected alert was stored", stored())
    tap.ok("WWW-Authenticate" in r.headers or "Www-Authenticate" in r.headers,
           "401 names the scheme (WWW-Authenticate)", r.headers)
    r = http_post(hooks, body("web-0"),
                  {"Authorization": "Bearer s3cret-token"})
    tap.ok(r.status == 200, "webhook with the bearer token: 200", r.status)
    r = http_post(hooks, body("web-1"), {"Authorization": "Basic " +
                  base64.b64encode(b"alertmanager:pa55word").decode()})
    tap.ok(r.status == 200, "webhook with basic credentials: 200", r.status)
    wait_until(lambda: len([a for a in http_json(url + "/api/v1/actions")
                            if a["type"] == "restart"]) == 2, 10,
               what="two restarts")

    # -- pause and resume ----------------------------------------------------
    r = http_post(url + "/api/v1/pause", "{}")
    tap.ok(r.status == 401, "pause without the operator token: 401")
    r = http_post(url + "/api/v1/pause", "{}",
                  {"Authorization": "Bearer s3cret-token"})
    tap.ok(r.status == 401, "the webhook token is not an operator token")
    rc, out, err = cli(cfg, "pause")
    tap.ok(rc == 0 and out.startswith("pause: accepted, pausing (HTTP 202)"),
           "reflex-coordinator pause", out + err)
    wait_until(lambda: http_json(url + "/health")["status"] == "degraded",
               5, what="health to show the pause")
    h = http_json(url + "/health")
    tap.ok(h["breaker_open"] and any("paused by" in x for x in h["reasons"]),
           "health says automation is paused, and by whom", h)
    tap.ok("reflex_breaker_open 1" in http_get(url + "/metrics").text,
           "metrics show the breaker open")
    lab.stop(coord)
    coord = lab.start("coordinator2", [reflex_binary("reflex-coordinator"),
                                       "-c", cfg], ready_url=url + "/readyz")
    wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 4, 10,
               what="agents again")
    h = http_json(url + "/health")
    tap.ok(h["breaker_open"] and any("paused by" in x for x in h["reasons"]),
           "the pause survives a restart of the coordinator", h)
    http_post(hooks, body("web-2"), {"Authorization": "Bearer s3cret-token"})
    wait_until(lambda: "result=refused:breaker" in coord.log_text(), 5,
               what="refusal")
    tap.ok(len([a for a in http_json(url + "/api/v1/actions")
                if a["type"] == "restart"]) == 2,
           "while paused an alert is refused:breaker, nothing runs")
    rc, out, err = cli(cfg, "resume")
    tap.ok(rc == 0, "reflex-coordinator resume", out + err)
    wait_until(lambda: http_json(url + "/health")["status"] == "healthy", 5,
               what="health after resume")
    http_post(hooks, body("web-3"), {"Authorization": "Bearer s3cret-token"})
    def restarts():
        return [a for a in http_json(url + "/api/v1/actions")
                if a["type"] == "restart"]
    try:
        wait_until(lambda: len(restarts()) == 3, 10,
                   what="restart after resume")
    except Exception:  # noqa: BLE001 - reported below
        pass
    tap.ok(len(restarts()) == 3 and any(a["instance"] == "web-3"
                                        for a in restarts()),
           "after resume the next alert acts", restarts())

    # -- history CLI --------------------------------------------------------
    rc, out, err = cli(cfg, "history", "--limit", "2")
    lines = out.strip().splitlines()
    tap.ok(rc == 0 and len(lines) == 3 and "restart" in lines[1] and
           "web/web-3" in lines[1], "history prints the newest actions",
           out + err)
    rc, out, err = cli(cfg, "history", "--json", "--state", "succeeded",
                       "--service", "web")
    acts = json.loads(out) if rc == 0 else []
    tap.ok(len(acts) == 3 and all(a["state"] == "succeeded" for a in acts),
           "history --json with filters", out + err)
    rc, out, err = cli(cfg, "history", "--json", "--since", "1h",
                       "--service", "web")
    acts = json.loads(out) if rc == 0 else []
    tap.ok(len([a for a in acts if a["type"] == "restart"]) == 3,
           "history --since 1h (a duration back from now)", out + err)
    rc, out, err = cli(cfg, "history", "--json", "--since",
                       "2999-01-01T00:00:00Z")
    tap.ok(rc == 0 and json.loads(out) == [],
           "history --since a future RFC 3339 time: nothing", out + err)
    rc, out, err = cli(cfg, "history", "--since", "yesterday")
    tap.ok(rc == 2 and "duration" in err and "usage:" not in err and
           err.rstrip().endswith("--help lists the commands and their "
                                 "options"), "history --since bogus: usage "
           "error naming both forms, then where the usage is", err)
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c",
                        lab.path("missing.yaml"), "history"],
                       capture_output=True, text=True, timeout=20)
    tap.ok(r.returncode == 1 and "missing.yaml: cannot open" in r.stderr and
           "--help" not in r.stderr,
           "a config that does not load is exit 1, not a usage error",
           r.stderr)
    rc, out, err = cli(cfg, "history", "--help")
    rc2, out2, err2 = cli(cfg, "alerts", "-h")
    tap.ok(rc == 0 and rc2 == 0 and err == "" and err2 == "" and
           "history [--service S]" in out and out2 == out,
           "a command's --help or -h prints the usage, exit 0", err + err2)
    r = subprocess.run([reflex_binary("reflex-coordinator"), "--help-config"],
                       capture_output=True, text=True, timeout=20)
    ref = r.stdout.splitlines()
    at = next((i for i, l in enumerate(ref) if l.startswith("journal ")), -1)
    tap.ok(r.returncode == 0 and at >= 0 and
           ref[at].rstrip().endswith("/var/lib/reflex/journal.db") and
           ref[at + 1] == " " * 50 + "SQLite journal path" and
           any(l.startswith("prometheus_url ") and l.split()[2] == "-"
               for l in ref),
           "--help-config: a default wider than its column puts the help "
           "under it, in the help column; an empty default shows as -",
           "\n".join(ref[max(at, 0):at + 2]))
    rc, out, err = cli(cfg, "history", "--limit", "0")
    tap.ok(rc == 1 and "limit" in err, "a bad filter is reported", err)

    # -- alerts CLI: what was decided, refusals too -------------------------
    # (a refusal makes no action row: history does not list web-2's alert)
    rc, out, err = cli(cfg, "alerts", "--outcome", "refused")
    lines = out.strip().splitlines()
    tap.ok(rc == 0 and len(lines) == 2 and "refused:breaker" in lines[1] and
           "-/web-2" in lines[1] and "ServiceDown" in lines[1],
           "alerts --outcome refused lists the alert refused while paused, "
           "with its check", out + err)
    rc, out, err = cli(cfg, "alerts", "--json", "--alertname", "ServiceDown")
    got = json.loads(out) if rc == 0 else []
    tap.ok([a["labels"]["instance"] for a in got] ==
           ["web-3", "web-2", "web-1", "web-0"] and
           [a["outcome"].split(":")[0] for a in got] ==
           ["acted", "refused", "acted", "acted"] and
           all(a["received"] and a["decided"] for a in got),
           "alerts --json: newest first, each with its labels, outcome and "
           "times", out + err)
    rc, out, err = cli(cfg, "alerts", "--json", "--outcome", "acted",
                       "--limit", "1", "--since", "1h")
    got = json.loads(out) if rc == 0 else []
    tap.ok(len(got) == 1 and got[0]["instance"] == "web-3",
           "alerts --outcome acted --limit 1 --since 1h", out + err)
    r = http_get(url + "/api/v1/alerts?state=acted")
    r2 = http_request("PUT", url + "/api/v1/alerts", b"{}")
    tap.ok(r.status == 400 and "outcome" in r.text and r2.status == 405 and
           r2.headers.get("Allow") == "POST, GET",
           "GET /api/v1/alerts refuses an unknown parameter naming the "
           "known ones; PUT is 405 naming both methods",
           (r.status, r.text, r2.status, dict(r2.headers)))

    rc, out, err = cli(cfg, "agents")
    tap.ok(rc == 0 and len(out.strip().splitlines()) == 5 and "node-0" in out,
           "reflex-coordinator agents lists the registry", out + err)
    # -c may follow the command too (as with reflex-agent status).
    exe = reflex_binary("reflex-coordinator")
    after = [subprocess.run([exe] + args, capture_output=True, text=True,
                            timeout=20)
             for args in (["agents", "-c", cfg], ["agents", f"--config={cfg}"],
                          ["-c", "/nonexistent.yaml", "agents", "-c", cfg])]
    tap.ok(all(r.returncode == 0 and r.stdout == out for r in after),
           "agents -c FILE, --config=FILE after the command, and a later -c "
           "over an earlier one", [(r.returncode, r.stderr) for r in after])
    r = subprocess.run([exe, "agents", "-c"], capture_output=True, text=True,
                       timeout=20)
    tap.ok(r.returncode == 2 and "-c needs a file" in r.stderr,
           "a trailing -c without its file is a usage error", r.stderr)

    # -- simulate -----------------------------------------------------------
    sim = lab.write_file("sim.json", body("web-9"))
    rc, out, err = cli(cfg, "simulate", "--json", sim)
    d = json.loads(out) if rc == 0 else []
    tap.ok(len(d) == 1 and d[0]["decision"] == "act" and "restart web/web-9"
           in d[0]["detail"], "simulate prints the plan", out + err)
    tap.ok(len([a for a in http_json(url + "/api/v1/actions")
                if a["type"] == "restart"]) == 3, "simulate acts on nothing")
    bad = lab.write_file("bad.json", '{"version": "4", "alerts": [')
    rc, out, err = cli(cfg, "simulate", bad)
    tap.ok(rc == 1 and "400" in err, "simulate on a malformed body says the "
           "coordinator would answer 400", err)
    evil = lab.write_file("evil.json", body("../../etc"))
    rc, out, err = cli(cfg, "simulate", evil)
    tap.ok(rc == 0 and "template-error" in out, "simulate shows a template "
           "error for an unsafe label", out)
    rc, out, err = cli(cfg, "frobnicate")
    tap.ok(rc == 2 and "unknown command" in err, "unknown command: usage, 2")

    # -- HTTPS ----------------------------------------------------------------
    openssl = shutil.which("openssl")
    if openssl is None:
        tap.skip("HTTPS webhook", "openssl not installed")
        return
    crt, key = lab.path("tls.crt"), lab.path("tls.key")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    cfg2, http2, _ = coordinator(lab, tls=f"tls:\n  cert_file: {crt}\n"
                                          f"  key_file: {key}\n")
    lab.start("coordinator-tls", [reflex_binary("reflex-coordinator"), "-c",
                                  cfg2])
    import socket
    # Listening (no plain /readyz on a TLS port); slow under valgrind.
    wait_until(lambda: socket.create_connection(("127.0.0.1", http2),
                                                1).close() or True, 10,
               what="the TLS port to listen")
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=crt)
    req = urllib.request.Request(f"https://127.0.0.1:{http2}/api/v1/alerts",
                                 data=body("web-0").encode(), method="POST",
                                 headers={"Authorization":
                                          "Bearer s3cret-token"})
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=scaled(5)) as resp:
            status = resp.status
    except Exception as e:  # noqa: BLE001
        status = str(e)
    tap.ok(status == 200, "HTTPS webhook with a verified certificate: 200",
           status)
    try:
        r = http_get(f"http://127.0.0.1:{http2}/healthz", timeout=2)
        plain = r.status
    except OSError:
        plain = "refused"
    tap.ok(plain != 200, "plain HTTP is not served on the TLS port", plain)


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-operator-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"lab ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
