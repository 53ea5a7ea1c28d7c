#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What deploy/ ships is checked by the tools that will read it: the
coordinator config in the ConfigMap by reflex-coordinator --check-config,
the alert rules by promtool, the Alertmanager receiver by amtool, and the
manifests for the hardening they promise (non-root, read-only root
filesystem, no capabilities, least-privilege RBAC). There is no cluster
here: the manifests are not applied anywhere."""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("REFLEX_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from reflexlab import Lab, Tap, find_binary, reflex_binary  # noqa: E402

K8S = os.path.join(SRC, "deploy", "kubernetes")


def read(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return f.read()


def block(text, key):
    """The literal block scalar under `key: |` (indentation removed)."""
    m = re.search(rf"^(\s*){re.escape(key)}: \|\n", text, re.M)
    lines, ind = [], None
    for line in text[m.end():].splitlines():
        if line.strip() and ind is None:
            ind = len(line) - len(line.lstrip())
        if line.strip() and len(line) - len(line.lstrip()) < ind:
            break
        lines.append(line[ind:] if ind else line)
    return "\n".join(lines) + "\n"


def run(tap, lab):
    # The secrets the Deployment mounts, made here (mode 0600).
    secrets = lab.path("secrets")
    os.makedirs(secrets, exist_ok=True)
    for name in ("webhook-token", "operator-token"):
        with open(os.path.join(secrets, name), "w") as f:
            f.write("a-secret-of-32-bytes-for-testing\n")
        os.chmod(os.path.join(secrets, name), 0o600)
    conf = lab.write_file("coordinator.yaml", block(
        read("20-config.yaml"), "coordinator.yaml").replace(
            "/etc/reflex/secrets", secrets))
    r = subprocess.run([reflex_binary("reflex-coordinator"),
                        "--check-config", "-c", conf], capture_output=True,
                       text=True, timeout=20)
    tap.ok(r.returncode == 0 and "4 rules" in r.stdout,
           "the ConfigMap's coordinator config checks, with its 4 rules",
           r.stdout + r.stderr)
    tap.ok("runtime: kubernetes" in read("20-config.yaml") and
           "mode: shadow" in read("20-config.yaml"),
           "the shipped config starts in shadow mode on the kubernetes "
           "runtime")

    rules = lab.write_file("rules.yml",
                           block(read("50-monitoring.yaml"), "reflex-rules.yml"))
    promtool = find_binary("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "rules", rules],
                           capture_output=True, text=True, timeout=30)
        tap.ok(r.returncode == 0 and "4 rules found" in r.stdout,
               "promtool accepts the four alert rules", r.stdout + r.stderr)
    else:
        tap.skip("promtool check rules", "promtool not installed")
    names = re.findall(r"alert: (\w+)", read("50-monitoring.yaml"))
    tap.ok(names == ["ServiceDown", "HighCPUUsage", "LowCPUUsage",
                     "HighErrorRate"], "the rules are the design's four "
           "scenarios", names)

    # The commented receiver and route, made into a whole config.
    snippet = "\n".join(l[4:] for l in read("50-monitoring.yaml").splitlines()
                        if l.startswith("#   "))
    recv, route = snippet.split("\nroute:\n")
    recv = recv.split("receivers:\n", 1)[1]
    routes = route.split("  routes:\n", 1)[1]
    token = lab.write_file("token", "x")
    am_text = ("route:\n  receiver: default\n  routes:\n" + routes +
               "\nreceivers:\n  - name: default\n" + recv + "\n").replace(
        "/etc/alertmanager/secrets/reflex-webhook-token", token)
    am = lab.write_file("am.yml", am_text)
    amtool = find_binary("amtool")
    if amtool:
        r = subprocess.run([amtool, "check-config", am],
                           capture_output=True, text=True, timeout=30)
        tap.ok(r.returncode == 0, "amtool accepts the receiver and route",
               r.stdout + r.stderr + am_text)
    else:
        tap.skip("amtool check-config", "amtool not installed")

    for name in ("30-coordinator.yaml", "40-agent.yaml"):
        t = read(name)
        tap.ok(all(s in t for s in (
            "runAsNonRoot: true", "readOnlyRootFilesystem: true",
            'drop: ["ALL"]', "allowPrivilegeEscalation: false",
            "seccompProfile: { type: RuntimeDefault }")),
            f"{name}: non-root, read-only root, no capabilities, seccomp")
        tap.ok(re.search(r"limits: \{ cpu:", t) is not None,
               f"{name}: resource limits set")
    rbac = read("10-rbac.yaml")
    agent_rules = rbac.split("name: reflex-agent\nrules:")[1].split("---")[0]
    tap.ok('"pods/eviction"' in agent_rules and '"create"' in agent_rules
           and "deployments" not in agent_rules and "patch" not in
           agent_rules and "delete" not in agent_rules,
           "the agent's role: pods, logs, evictions and reading PDBs only")
    tap.ok('"*"' not in rbac, "no wildcard verbs or resources in RBAC")
    tap.ok("operator: Exists" in read("40-agent.yaml") and
           "spec.nodeName" in read("40-agent.yaml"),
           "the DaemonSet tolerates every node and learns its node name")


def check_readme_examples(tap, lab):
    """The main README's YAML examples (a coordinator rule, then a
    process-runtime agent) are what a new user copies first: they must
    load as they are."""
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    tap.ok(len(blocks) >= 2, "the README has its two YAML examples",
           str(len(blocks)))
    if len(blocks) < 2:
        return
    for name, binary, text, want in (
            ("coordinator", "reflex-coordinator", blocks[0], "ok (1 rule)"),
            ("agent", "reflex-agent", blocks[1],
             "ok (node node-1, 1 service, 2 instances)")):
        path = lab.write_file(f"readme-{name}.yaml", text)
        r = subprocess.run([reflex_binary(binary), "--check-config", "-c",
                            path], capture_output=True, text=True,
                           timeout=20)
        tap.ok(r.returncode == 0 and want in r.stdout,
               f"the README's {name} example passes --check-config "
               f"({want})", r.stdout + r.stderr)


def main():
    tap = Tap()
    try:
        with Lab(prefix="reflex-deploy-") as lab:
            run(tap, lab)
            check_readme_examples(tap, lab)
    except Exception as e:
        import traceback
        tap.ok(False, f"ran to the end: {e}", traceback.format_exc())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
