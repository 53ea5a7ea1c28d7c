#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The agent channel authenticated with a shared secret: an agent that
proves it registers and gets sealed commands; one without the secret or
with the wrong one is refused; a replayed frame is refused; a secret file
others can read is refused at startup."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from reflexlab import (Lab, Tap, free_port, http_json, http_post,  # noqa: E402
                       reflex_binary, wait_until)

CONFIG = """\
listen: 127.0.0.1:{http}
agent_listen: tcp://127.0.0.1:{agents}
agent_secret_file: {secret}
journal: {journal}
safety: {{ blast_radius_percent: 100 }}
rules:
  - name: restart
    matchers: ['alertname = "Down"']
    verify: {{ health: false, resolved: false }}
    actions: [ {{ type: restart, service: web, instance: "{{{{ instance }}}}" }} ]
"""


def secret_file(lab, name, value, mode=0o600):
    p = lab.write_file(name, value)
    os.chmod(p, mode)
    return p


def run(tap, lab):
    good = secret_file(lab, "secret", "correct horse battery staple\n")
    wrong = secret_file(lab, "wrong", "incorrect mule cell paperclip\n")
    http, agents = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    cfg = lab.write_file("c.yml", CONFIG.format(
        http=http, agents=agents, secret=good, journal=lab.path("j.db")))
    coord = lab.start("coordinator", [reflex_binary("reflex-coordinator"),
                                      "-c", cfg], ready_url=url + "/readyz")

    def agent(name, *extra):
        return lab.start(name, [
            reflex_binary("fake-agents"), "--coordinator",
            f"tcp://127.0.0.1:{agents}", "--port", "0", "--node-prefix",
            f"{name}-", "--heartbeat-ms", "200", "--workload",
            f"web:{name}-web:127.0.0.1:1{len(name)}00"] + list(extra))

    ok = agent("good", "--secret", good)
    try:
        wait_until(lambda: len(http_json(url + "/api/v1/agents")) == 1, 10,
                   what="the agent with the secret")
    except Exception:  # noqa: BLE001 - reported below
        pass
    nodes = [a["node"] for a in http_json(url + "/api/v1/agents")]
    tap.ok(nodes == ["good-0"], "an agent with the secret registers", nodes)
    agent("plain")
    agent("forger", "--secret", wrong)
    time.sleep(1.5)
    nodes = [a["node"] for a in http_json(url + "/api/v1/agents")]
    tap.ok(nodes == ["good-0"], "agents without the secret, or with a wrong "
           "one, are not registered", nodes)
    log = coord.log_text()
    tap.ok("message authentication failed" in log,
           "the refusals are logged with the reason")

    rp = agent("replayer", "--secret", good, "--replay")
    wait_until(lambda: rp.log_text().count('"replay"') == 2, 10,
               what="both copies answered")
    res = [json.loads(l)["result"] for l in rp.log_text().splitlines()
           if l.startswith('{"replay"')]
    tap.ok(res == ["accepted", "refused"],
           "the same sealed frame sent twice: the copy is refused as a "
           "replay", res)

    http_post(url + "/api/v1/alerts", json.dumps({
        "version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "Down",
                                           "instance": "good-web"},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"}]}))
    wait_until(lambda: any(a["state"] == "succeeded" for a in
                           http_json(url + "/api/v1/actions")), 10,
               what="the sealed command")
    tap.ok('"action":"restart"' in ok.log_text(),
           "commands and replies are sealed end to end: the restart ran")

    loose = secret_file(lab, "loose", "correct horse battery staple\n", 0o644)
    cfg2 = lab.write_file("c2.yml", CONFIG.format(
        http=free_port(), agents=free_port(), secret=loose,
        journal=lab.path("j2.db")))
    r = subprocess.run([reflex_binary("reflex-coordinator"), "-c", cfg2],
                       capture_output=True, text=True, timeout=20)
    tap.ok(r.returncode != 0 and "readable only by its owner" in r.stderr,
           "a secret file others can read is refused at startup", r.stderr)


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-auth-") as lab:
            run(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
