#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the committed seed corpora of tests/fuzz/corpus/<target>/ from
the project's real inputs (run it again after a source changes; the
files are committed, CI does not run this):

  webhook     tests/data/webhook/ (Alertmanager 0.25 captures and the
              C01 C03 C05 C07 case bodies), plus a few edge bodies
  msg, auth  the C18 frames (../shared/cases/C18-...json, copied into
              the list below so the repository has them) and one valid
              frame of every reflex message type
  coord_conf  deploy/demo/coordinator.yml with its tokens filled in, the
              config of tests/integration/test_coordinator.py, and one
              that sets every section
  agent_conf  deploy/demo/agent-*.yml with tokens filled in, and the
              config of tests/integration/test_agent_process.py
  quantity    the quantities of API-FACTS 2.13 and the edge forms
  prom        Prometheus instant-query answers (vector, scalar, error)
  k8s         Kubernetes Status replies (C14 eviction 429, 409, 404,
              422 with causes) and objects (Deployment, Pod, Node, lists)

Regression inputs (crash-*, oom-*) found by fuzzing are added by hand and never
touched here. Standard library only."""

import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


# ---- a minimal msgpack encoder (str, int, bool, None, list, dict, bytes)

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
        if 0 <= v < 1 << 8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 1 << 16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 1 << 64:
            return b"\xcf" + struct.pack(">Q", v)
        if -(1 << 7) <= v:
            return b"\xd0" + struct.pack(">b", v)
        if -(1 << 15) <= v:
            return b"\xd1" + struct.pack(">h", v)
        if -(1 << 31) <= v:
            return b"\xd2" + struct.pack(">i", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            return bytes([0xa0 | n]) + b
        if n < 1 << 8:
            return b"\xd9" + bytes([n]) + b
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


def frame(type_, body, id_=7, ts=None, nonce=1):
    m = {"v": 1}
    if ts is not None:  # a stamped frame of the authenticated channel
        m.update({"ts": ts, "nonce": nonce})
    m.update({"type": type_, "id": id_, "body": body})
    return mp(m)


MSG_FRAMES = {
    "register": frame("register", {
        "node": "node-1", "addr": "tcp://127.0.0.1:9872",
        "runtime": "process", "workloads": [
            {"service": "demo-a", "instance": "demo-a-0",
             "addr": "127.0.0.1:18081", "healthy": True},
            {"service": "demo-a", "instance": "demo-a-1",
             "addr": "127.0.0.1:18082", "healthy": False}]}),
    "heartbeat": frame("heartbeat", {"node": "node-1", "seq": 300,
                                     "unhealthy": 1}, 1 << 40),
    "command": frame("command", {
        "action_id": 42, "action": "restart", "service": "demo-a",
        "instance": "demo-a-1", "reason": "HighErrorRate \u00e9",
        "timeout_ms": 30000}),
    "command-all": frame("command", {
        "action_id": 43, "action": "clear_cache", "service": "demo-a",
        "instance": "", "reason": "", "timeout_ms": 5000, "extra": [1]}),
    "permit": frame("permit", {"node": "node-1", "service": "demo-a",
                               "instance": "demo-a-0",
                               "reason": "probe failed 3 times"}),
    "reply": frame("reply", {"ok": True, "code": 0,
                             "message": "demo-a-0: pid 10 -> 11"}),
    "reply-json": frame("reply", {"ok": False, "code": -22,
                                  "message": "bad", "json":
                                  '{"results":[{"instance":"a"}]}'}),
    "error": frame("error", {"code": "bad_frame",
                             "message": "truncated str"}),
    "status": frame("status", {}),
}

# ../shared/cases/C18-msgpack-malformed-frames.json, frames_hex
C18 = {
    "c18-valid": "83a474797065a570726f6265a3706f64a77376632d612d30a26f6bc2",
    "c18-truncated_str": "83a474797065a570726f6265a3706f64a77376632d61",
    "c18-str32_huge": "81a3706f64dbfffffff07376",
    "c18-array32_huge": "81a3706f64ddffffffff",
    "c18-trailing_bytes": "83a474797065a570726f6265a3706f64a77376632d612d3"
                          "0a26f6bc2be",
    "c18-wrong_type": "83a474797065a570726f6265a3706f64a77376632d612d30a26"
                      "f6ba566616c7365",
    "c18-bad_utf8_name": "83a474797065a570726f6265a3706f64a3fffefda26f6bc3",
    "c18-deep_nesting": "91" * 40 + "c0",  # generator shortened
    "c18-empty": "",
}


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def webhook():
    wdir = os.path.join(SRC, "tests", "data", "webhook")
    for name in ("am025-full.json", "am025-truncated.json"):
        with open(os.path.join(wdir, name), "rb") as f:
            write("webhook", name, f.read())

    def load(name):
        with open(os.path.join(wdir, name), encoding="utf-8") as f:
            return json.load(f)
    write("webhook", "c03.json", json.dumps(load(
        "C03-zero-endsat-timestamps.json")["body"]))
    for i, d in enumerate(load("C01-ha-duplicate-delivery.json")
                          ["deliveries"][:2]):
        write("webhook", f"c01-{i}.json", json.dumps(d["body"]))
    for i, n in enumerate(load("C05-group-resends-mixed-status.json")
                          ["notifications"][:3]):
        write("webhook", f"c05-{i}.json", json.dumps(n["body"]))
    body = load("C07-fleet-wide-storm.json")["deliveries"][0]["body"]
    body["alerts"] = body["alerts"][:4]
    write("webhook", "c07-4.json", json.dumps(body, indent=1))
    write("webhook", "minimal.json", '{"version":"4","alerts":[]}')
    write("webhook", "escapes.json", json.dumps({
        "version": "4", "status": "firing", "receiver": "r",
        "alerts": [{"status": "firing", "labels": {
            "alertname": "X\u00e9\U0001F600", "service": "demo-a",
            "instance": "127.0.0.1:1", "pod": "p", "namespace": "n"},
            "annotations": {"s p a c e": "\t\"\\/"},
            "startsAt": "2026-12-04T10:00:00.5-07:30",
            "endsAt": "0001-01-01T00:00:00Z"}]}, ensure_ascii=True))


def fill_tokens(text, values):
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values.get(
        m.group(1), "x"), text)


TOKENS = {
    "COORD_HTTP_ADDR": "127.0.0.1:19870",
    "COORD_NNG_URL": "tcp://127.0.0.1:19871",
    "COORD_JOURNAL": "/tmp/reflex-fuzz-journal.db",
    "AGENT_1_NODE": "node-1", "AGENT_2_NODE": "node-2",
    "AGENT_1_NNG_URL": "tcp://127.0.0.1:19872",
    "AGENT_2_NNG_URL": "tcp://127.0.0.1:19873",
    "WORKDIR": "/tmp/reflex-fuzz", "DEMO_SVC": "/usr/bin/true",
    "DEMO_A_0_PORT": "18081", "DEMO_B_0_PORT": "18091",
}

COORD_FULL = """\
listen: 127.0.0.1:19870
agent_listen: ipc:///tmp/reflex-fuzz.ipc
journal: /tmp/reflex-fuzz.db
log_level: debug
journal_sync_full: false
retention: 1h30m
replica_labels: [prometheus_replica, replica, cluster_replica]
limits: { max_body: 64KiB, max_alerts: 100, max_labels: 32,
          max_value_len: 512, max_annotation_len: 4096, queue: 1000 }
safety:
  critical_services: [db]
  dependencies:
    - { service: web, depends_on: [db, cache] }
  dependency_policy: wait
  max_concurrent: 3
  blast_radius_percent: 50
  breaker_cool_off: 0s
prometheus_url: http://127.0.0.1:19090
notify:
  - { name: ops, url: "http://127.0.0.1:19999/hook", format: slack }
rollout: { percent: 50, step: 10, interval: 10m, max: 90 }
services:
  - { name: web, automation: approval }
  - { name: db, automation: off }
mode: shadow
rules:
  - name: web-errors
    matchers: ['alertname = "HighErrorRate"', 'service !~ "db|cache"',
               'severity != info', 'job=~"demo-.+"']
    cooldown: 90s
    max_attempts: 3
    force: true
    mode: approval
    continue: true
    verify: { interval: 5s, timeout: 1m, health: false,
              promql: 'rate(errors{instance="{{ instance }}"}[1m]) > 0' }
    actions:
      - type: restart
        service: "{{ service }}"
        instance: "{{ instance }}"
        timeout: 30s
        retries: 0
      - type: scale_up
        service: "{{service}}"
        params: { replicas: "3", by: "{{ job }}" }
    escalation:
      - { type: rollback, service: "{{ service }}" }
      - { type: notify, service: ops }
"""

AGENT_TEST = """\
node: node-t
coordinator: tcp://127.0.0.1:19871
listen: tcp://127.0.0.1:19872
status_socket: /tmp/reflex-fuzz/agent.sock
runtime: process
log_level: info
heartbeat_interval: 300ms
services:
  - name: demo-a
    command: ["/usr/bin/python3", "svc.py", "--port", "{port}", "--name",
              "{instance}", "--grandchild"]
    instances: 2
    base_port: 20000
    env: { TEST_WHO: "{service}@{node}" }
    stop_grace: 3s
    probe:
      path: /healthz
      period: 300ms
      timeout: 250ms
      failure_threshold: 3
      initial_delay: 1500ms
    restart_backoff: { initial: 200ms, max: 2s, reset_after: 1s }
  - name: stubborn
    command: ["/usr/bin/python3", "svc.py", "--port", "{port}"]
    base_port: 20010
    stop_grace: 500ms
"""


def configs():
    demo = os.path.join(SRC, "deploy", "demo")
    with open(os.path.join(demo, "coordinator.yml")) as f:
        write("coord_conf", "demo.yml", fill_tokens(f.read(), TOKENS))
    write("coord_conf", "full.yml", COORD_FULL)
    write("coord_conf", "minimal.yml", "rules: []\n")
    with open(os.path.join(SRC, "tests", "integration",
                           "test_coordinator.py")) as f:
        text = f.read()
    conf = text.split('CONFIG = """\\\n', 1)[1].split('"""', 1)[0]
    conf = conf.format(http=19870, agents=19871, journal="/tmp/j.db",
                       cooldown=3)
    write("coord_conf", "test_coordinator.yml", conf)
    for name in sorted(os.listdir(demo)):
        if name.startswith("agent-") and name.endswith(".yml"):
            with open(os.path.join(demo, name)) as f:
                write("agent_conf", name, fill_tokens(f.read(), TOKENS))
    write("agent_conf", "test_agent_process.yml", AGENT_TEST)


def quantities():
    for i, q in enumerate([
            "3800m", "15613336Ki", "110", "47233297124", "0", "1.5Gi",
            "1536Mi", "1500m", ".5", "5.", "2e3", "1E-3", "5e+2", "1E",
            "2E3", "123456789n", "-1.5", "+7Ti", "999u", "9223372036854775807",
            "8Ei", "1e-9999999999", "0.000000001"]):
        write("quantity", f"q{i:02d}", q)


def prom():
    vec = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"instance": "127.0.0.1:18081"},
         "value": [1764842400.123, "0.25"]},
        {"metric": {}, "value": [1764842400.123, "NaN"]}]}}
    write("prom", "vector.json", json.dumps(vec))
    vec["data"]["result"] = []
    write("prom", "empty.json", json.dumps(vec))
    write("prom", "scalar.json", json.dumps({
        "status": "success", "data": {"resultType": "scalar",
                                      "result": [1764842400, "0"]}}))
    write("prom", "error.json", b"\x01" + json.dumps({
        "status": "error", "errorType": "bad_data",
        "error": "parse error at char 5"}).encode())
    write("prom", "matrix.json", json.dumps({
        "status": "success", "data": {"resultType": "matrix", "result": []},
        "warnings": ["w"]}))


def k8s():
    def status(code, reason, message, details=None):
        o = {"kind": "Status", "apiVersion": "v1", "metadata": {},
             "status": "Failure", "message": message, "reason": reason,
             "code": code}
        if details:
            o["details"] = details
        return json.dumps(o)
    # A leading byte < 0x20 picks the HTTP code (see fuzz_k8s.c):
    # 0 -> 409, 1 -> 404, 2 -> 422, 3 -> 429.
    write("k8s", "409-conflict", b"\x00" + status(
        409, "Conflict", "Operation cannot be fulfilled on deployments.apps"
        " \"web\": the object has been modified", {
            "name": "web", "group": "apps", "kind": "deployments"}).encode())
    write("k8s", "404", b"\x01" + status(
        404, "NotFound", 'deployments.apps "web" not found',
        {"name": "web", "kind": "deployments"}).encode())
    write("k8s", "422-causes", b"\x02" + status(
        422, "Invalid", "Deployment.apps \"web\" is invalid", {
            "causes": [{"reason": "FieldValueInvalid", "message":
                        "Invalid value: -1", "field": "spec.replicas"}]
        }).encode())
    write("k8s", "429-pdb", b"\x03" + status(
        429, "TooManyRequests", "Cannot evict pod as it would violate the "
        "pod's disruption budget.", {"causes": [{
            "reason": "DisruptionBudget", "message": "The disruption budget"
            " web-pdb needs 2 healthy pods and has 2 currently"}],
            "retryAfterSeconds": 5}).encode() + b"\xff10")
    write("k8s", "502-html", b"\x04<html><body>Bad gateway</body></html>")
    write("k8s", "deployment.json", json.dumps({
        "kind": "Deployment", "metadata": {
            "name": "web", "namespace": "ns-a", "generation": 4,
            "resourceVersion": "1234", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "paused": False, "selector": {
            "matchLabels": {"app": "web"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}]}}}))
    write("k8s", "pods.json", json.dumps({
        "kind": "PodList", "items": [{
            "metadata": {"name": "web-1", "labels": {"app": "web"},
                         "deletionTimestamp": "2026-12-04T10:00:00Z",
                         "ownerReferences": [{"kind": "ReplicaSet",
                                              "name": "web-7b", "uid": "u",
                                              "controller": True}]},
            "status": {"conditions": [{"type": "Ready",
                                       "status": "True"}]}}]}))
    write("k8s", "node.json", json.dumps({
        "kind": "Node", "metadata": {"name": "n1"}, "status": {
            "allocatable": {"cpu": "3800m", "memory": "15613336Ki",
                            "pods": "110", "ephemeral-storage": 47233297124,
                            "hugepages-2Mi": "0"}}}))


def main():
    webhook()
    for name, data in MSG_FRAMES.items():
        write("msg", name, data)
    for name, h in C18.items():
        write("msg", name, bytes.fromhex(h))
    # auth: the same frames (fuzz_auth seals them itself) and stamped
    # ones, with clocks from the past, the present era and the far end.
    for name, data in MSG_FRAMES.items():
        write("auth", name, data)
    for i, ts in enumerate((1, 1764842400000, (1 << 63) - 1, 1 << 63,
                            (1 << 64) - 1)):
        write("auth", f"stamped-{i}", frame("heartbeat", {
            "node": "node-1", "seq": 1, "unhealthy": 0}, ts=ts,
            nonce=i + 1))
    configs()
    quantities()
    prom()
    k8s()


if __name__ == "__main__":
    main()
