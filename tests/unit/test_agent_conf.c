// SPDX-License-Identifier: MIT
// Tests for agent_conf: loading, errors with file:line, argv/env
// templates and the restart backoff.
#include <errno.h>
#include <stdlib.h>

#include "agent_conf.h"
#include "cm_msg.h"
#include "tt.h"

#define GOOD                                              \
	"node: node-a\n"                                  \
	"coordinator: tcp://127.0.0.1:9871\n"             \
	"listen: tcp://127.0.0.1:9881\n"                  \
	"status_socket: /tmp/reflex/agent-a.sock\n"       \
	"runtime: process\n"                              \
	"log_level: info\n"                               \
	"heartbeat_interval: 2s\n"                        \
	"services:\n"                                     \
	"  - name: demo-a\n"                              \
	"    command: [\"/bin/svc\", \"--port\", \"{port}\", \"--name\", " \
	"\"{instance}\"]\n"                               \
	"    instances: 2\n"                              \
	"    base_port: 18081\n"                          \
	"    env: { KEY: value, WHO: \"{service}@{node}\" }\n" \
	"    stop_grace: 5s\n"                            \
	"    probe:\n"                                    \
	"      path: /healthz\n"                          \
	"      period: 2s\n"                              \
	"      timeout: 1s\n"                             \
	"      failure_threshold: 3\n"                    \
	"      initial_delay: 1s\n"                       \
	"    restart_backoff: { initial: 1s, max: 60s }\n"

// Loads text and returns the error message ("" on success).
static const char *
load_err(const char *text)
{
	static char err[512];
	struct agent_conf c;

	err[0] = '\0';
	if (agent_conf_load_mem(&c, "t.yaml", text, err, sizeof(err)) == 0)
		agent_conf_free(&c);
	return err;
}

// GOOD with the first `from` replaced by `to`.
static const char *
good_with(const char *from, const char *to)
{
	static char text[4096];
	const char *at = strstr(GOOD, from);
	size_t pre = at ? (size_t)(at - GOOD) : 0;

	if (at == NULL)
		return "";
	snprintf(text, sizeof(text), "%.*s%s%s", (int)pre, GOOD, to,
	    at + strlen(from));
	return text;
}

static void
test_good_config_loads(void)
{
	struct agent_conf c;
	const struct agent_svc_conf *s;
	char err[512] = "";
	int rv;

	rv = agent_conf_load_mem(&c, "t.yaml", GOOD, err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_STR(err, "");
	if (rv != 0)
		return;
	CHECK_STR(c.node, "node-a");
	CHECK_STR(c.listen, "tcp://127.0.0.1:9881");
	CHECK_INT(c.heartbeat_interval_ms, 2000);
	CHECK_INT(c.services.n, 1);
	s = agent_conf_svc(&c, 0);
	CHECK_STR(s->name, "demo-a");
	CHECK_INT(s->instances, 2);
	CHECK_INT(s->base_port, 18081);
	CHECK_INT(s->command.n, 5);
	CHECK_INT(s->stop_grace_ms, 5000);
	CHECK(s->probe.line > 0);
	CHECK_STR(s->probe.path, "/healthz");
	CHECK_INT(s->probe.failure_threshold, 3);
	CHECK_INT(s->restart_backoff.initial_ms, 1000);
	CHECK_INT(s->restart_backoff.max_ms, 60000);
	CHECK_INT(s->restart_backoff.reset_after_ms, 30000);
	agent_conf_free(&c);
	agent_conf_free(&c); // second free is harmless
}

static void
test_defaults_and_no_probe(void)
{
	struct agent_conf c;
	char err[512] = "";
	int rv;

	rv = agent_conf_load_mem(&c, "t.yaml",
	    "node: n1\ncoordinator: tcp://127.0.0.1:1\n"
	    "listen: ipc:///tmp/x.ipc\nservices:\n"
	    "  - name: s\n    command: [prog]\n    base_port: 100\n",
	    err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_STR(err, "");
	if (rv != 0)
		return;
	CHECK_STR(c.status_socket, "/run/reflex/agent.sock");
	// 10 s: three heartbeats fit in the coordinator's default
	// agent_lost_after (30 s) before it calls the agent lost.
	CHECK_INT(c.heartbeat_interval_ms, 10000);
	CHECK_INT(agent_conf_svc(&c, 0)->probe.line, 0);
	CHECK_INT(agent_conf_svc(&c, 0)->instances, 1);
	agent_conf_free(&c);
}

static void
test_unknown_key_has_line(void)
{
	CHECK_HAS(load_err(GOOD "    colour: blue\n"),
	    "t.yaml:22: services[0].colour: unknown key");
	CHECK_HAS(load_err("nodes: x\n" GOOD), "t.yaml:1: nodes: unknown key");
}

#define KUBE                                                       \
	"coordinator: tcp://127.0.0.1:9871\n"                     \
	"listen: tcp://0.0.0.0:9881\n"                            \
	"runtime: kubernetes\n"                                   \
	"kubernetes:\n"                                           \
	"  client: { source: in-cluster }\n"                      \
	"  evict: { max_tries: 2, delete_unready: true }\n"       \
	"workloads:\n"                                            \
	"  - namespace: ns-a\n"                                   \
	"    selector: { app: svc-a }\n"                          \
	"    probe: { type: tcp, port: 8080, period: 1s }\n"

static void
test_kubernetes_runtime(void)
{
	const struct agent_kwl_conf *w;
	struct agent_conf c;
	char err[512] = "";
	int rv;

	setenv("NODE_NAME", "node-k", 1);
	setenv("TEST_POD_IP", "10.1.2.3", 1);
	rv = agent_conf_load_mem(&c, "t.yaml", "advertise: "
	    "tcp://${TEST_POD_IP}:9881\n" KUBE, err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_STR(err, "");
	if (rv == 0) {
		CHECK_INT(c.runtime, AGENT_RUNTIME_KUBERNETES);
		CHECK_STR(c.node, "node-k"); // from NODE_NAME
		CHECK_STR(agent_conf_advertised(&c), "tcp://10.1.2.3:9881");
		CHECK_INT(c.kubernetes.client.source, CM_K8S_SRC_IN_CLUSTER);
		CHECK_INT(c.kubernetes.discovery_interval_ms, 10000);
		CHECK_INT(c.kubernetes.evict.max_tries, 2);
		CHECK(c.kubernetes.evict.delete_unready);
		CHECK_INT(c.kubernetes.evict.grace_seconds, -1);
		CHECK(c.kubernetes.annotations.enabled);
		CHECK_INT(c.workloads.n, 1);
		w = agent_conf_kwl(&c, 0);
		CHECK_STR(w->ns, "ns-a");
		CHECK(w->name == NULL);
		CHECK_INT(w->selector.n, 1);
		CHECK_INT(w->probe.type, AGENT_KPROBE_TCP);
		CHECK_INT(w->probe.port, 8080);
		CHECK_INT(w->probe.failure_threshold, 3);
		CHECK_INT(w->partition_policy.max_restarts, 1);
		agent_conf_free(&c);
	}
	// node in the file wins over NODE_NAME; without either: an error.
	rv = agent_conf_load_mem(&c, "t.yaml", "node: node-f\n" KUBE, err,
	    sizeof(err));
	CHECK_INT(rv, 0);
	if (rv == 0) {
		CHECK_STR(c.node, "node-f");
		CHECK(c.advertise == NULL);
		CHECK_STR(agent_conf_advertised(&c), "tcp://0.0.0.0:9881");
		agent_conf_free(&c);
	}
	unsetenv("NODE_NAME");
	CHECK_HAS(load_err(KUBE), "t.yaml: node: missing, and NODE_NAME "
	    "is not set");
	setenv("NODE_NAME", "node-k", 1);
	CHECK_HAS(load_err("advertise: tcp://${NO_SUCH_VAR_X}:1\n" KUBE),
	    "t.yaml:1: advertise: \"tcp://${NO_SUCH_VAR_X}:1\": environment "
	    "variable NO_SUCH_VAR_X is not set");
	CHECK_HAS(load_err("advertise: tcp://${bad}:1\n" KUBE),
	    "${ must be followed by an environment variable name");
	CHECK_HAS(load_err("advertise: http://x\n" KUBE),
	    "t.yaml:1: advertise: \"http://x\": expected tcp://host:port");
	unsetenv("TEST_POD_IP");
}

static void
test_runtimes_refuse_each_others_keys(void)
{
	setenv("NODE_NAME", "node-k", 1);
	CHECK_HAS(load_err(KUBE "services:\n  - name: s\n    command: [p]\n"
	    "    base_port: 100\n"), "t.yaml:12: services: only for runtime: "
	    "process");
	CHECK_HAS(load_err(GOOD "workloads:\n  - selector: { app: x }\n"),
	    "t.yaml:23: workloads: only for runtime: kubernetes");
	CHECK_HAS(load_err("kubernetes: { discovery_interval: 1s }\n" GOOD),
	    "t.yaml:1: kubernetes: only for runtime: kubernetes");
	CHECK_HAS(load_err("node: n\ncoordinator: tcp://127.0.0.1:1\n"
	    "listen: tcp://127.0.0.1:2\nruntime: docker\n"), "t.yaml:4: "
	    "runtime:");
	CHECK_HAS(load_err("node: n\ncoordinator: tcp://127.0.0.1:1\n"
	    "listen: tcp://127.0.0.1:2\n"), "at least one service is needed");
	CHECK_HAS(load_err("coordinator: tcp://127.0.0.1:1\nlisten: "
	    "tcp://127.0.0.1:2\nruntime: kubernetes\nkubernetes:\n"
	    "  annotations: { enabled: false }\n"), "nothing to watch");
	unsetenv("NODE_NAME");
}

static void
test_workloads_checked(void)
{
	setenv("NODE_NAME", "node-k", 1);
	CHECK_HAS(load_err(KUBE "  - selector: {}\n"),
	    "t.yaml:11: workloads[1].selector: needs at least one label");
	CHECK_HAS(load_err(KUBE "  - namespace: 0\n"),
	    "workloads[1].selector: required key is missing");
	CHECK_HAS(load_err(KUBE "  - selector: { \"a b\": x }\n"),
	    "workloads[1].selector: \"a b\" is not a label key");
	CHECK_HAS(load_err(KUBE "  - selector: { app: \"-x\" }\n"),
	    "workloads[1].selector: app: \"-x\" is not a label value");
	CHECK_HAS(load_err(KUBE "  - { namespace: Bad_NS, selector: "
	    "{ a: b } }\n"), "workloads[1].namespace: \"Bad_NS\" is not a "
	    "namespace name");
	CHECK_HAS(load_err(KUBE "  - { name: \"a/b\", selector: { a: b } }\n"),
	    "workloads[1].name: \"a/b\" is not a valid name");
	CHECK_HAS(load_err(KUBE "  - selector: { a: b }\n"
	    "    probe: { period: 1s, timeout: 2s }\n"),
	    "workloads[1].probe: timeout (2000 ms) is longer than period");
	CHECK_HAS(load_err(KUBE "  - selector: { a: b }\n"
	    "    probe: { path: healthz }\n"),
	    "workloads[1].probe: path must start with /");
	CHECK_HAS(load_err(KUBE "  - selector: { a: b }\n"
	    "    probe: { type: udp }\n"), "workloads[1].probe.type");
	CHECK_HAS(load_err(KUBE "  - selector: { a: b }\n"
	    "    probe: { port: 70000 }\n"), "workloads[1].probe.port: 70000 "
	    "is out of range");
	CHECK_HAS(load_err(KUBE "  - selector: { a: b }\n"
	    "    restart_backoff: { initial: 10s, max: 1s }\n"),
	    "workloads[1].restart_backoff.max: is shorter than initial");
	CHECK_HAS(load_err("kubernetes: { evict: { grace_seconds: -2 } }\n"
	    "runtime: kubernetes\ncoordinator: tcp://127.0.0.1:1\nlisten: "
	    "tcp://127.0.0.1:2\nworkloads: [ { selector: { a: b } } ]\n"),
	    "kubernetes.evict.grace_seconds: -2 is out of range");
	unsetenv("NODE_NAME");
}

static void
test_workload_calls(void)
{
	const struct agent_kwl_conf *w;
	struct agent_conf c;
	char err[512] = "", path[300];
	int rv;

	setenv("NODE_NAME", "node-k", 1);
	rv = agent_conf_load_mem(&c, "t.yaml", KUBE
	    "    clear_cache: { path: /cache/clear, port: 8080 }\n"
	    "    reload_config: { method: PUT, path: /-/reload, port: 9090, "
	    "timeout: 500ms }\n", err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_STR(err, "");
	if (rv == 0) {
		w = agent_conf_kwl(&c, 0);
		CHECK_INT(w->clear_cache.line, 11);
		CHECK_INT(w->clear_cache.method, AGENT_KCALL_POST);
		CHECK_STR(w->clear_cache.path, "/cache/clear");
		CHECK_INT(w->clear_cache.port, 8080);
		CHECK_INT(w->clear_cache.timeout_ms, 2000);
		CHECK_INT(w->reload_config.line, 12);
		CHECK_STR(agent_kcall_method_name(w->reload_config.method),
		    "PUT");
		CHECK_INT(w->reload_config.timeout_ms, 500);
		agent_conf_free(&c);
	}
	// Not configured: line 0 (the command is refused).
	rv = agent_conf_load_mem(&c, "t.yaml", KUBE, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv == 0) {
		CHECK_INT(agent_conf_kwl(&c, 0)->clear_cache.line, 0);
		CHECK_INT(agent_conf_kwl(&c, 0)->reload_config.line, 0);
		agent_conf_free(&c);
	}
	CHECK_HAS(load_err(KUBE "    reload_config: { signal: HUP }\n"),
	    "t.yaml:11: workloads[0].reload_config: signal: cannot be used "
	    "in the kubernetes runtime");
	CHECK_HAS(load_err(KUBE "    clear_cache: { port: 80 }\n"),
	    "t.yaml:11: workloads[0].clear_cache: needs path");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: /c }\n"),
	    "t.yaml:11: workloads[0].clear_cache: needs port (1..65535");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: /c, port: 0 }\n"),
	    "t.yaml:11: workloads[0].clear_cache: needs port");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: /c, port: 65536 }"
	    "\n"), "t.yaml:11: workloads[0].clear_cache.port: 65536 is out "
	    "of range");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: c, port: 1 }\n"),
	    "t.yaml:11: workloads[0].clear_cache: path must start with /");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: \"/a b\", port: 1 "
	    "}\n"), "workloads[0].clear_cache: path holds a space");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: \"/a\\tb\", port: "
	    "1 }\n"), "workloads[0].clear_cache: path holds a space or a "
	    "character that is not printable ASCII");
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[AGENT_KCALL_PATH_MAX] = '\0'; // 256 bytes: fits
	{
		char text[1024];

		snprintf(text, sizeof(text), KUBE "    clear_cache: { path: "
		    "%s, port: 1 }\n", path);
		rv = agent_conf_load_mem(&c, "t.yaml", text, err,
		    sizeof(err));
		CHECK_INT(rv, 0);
		if (rv == 0)
			agent_conf_free(&c);
		path[AGENT_KCALL_PATH_MAX] = 'a'; // 257 bytes
		path[AGENT_KCALL_PATH_MAX + 1] = '\0';
		snprintf(text, sizeof(text), KUBE "    clear_cache: { path: "
		    "%s, port: 1 }\n", path);
		CHECK_HAS(load_err(text), "t.yaml:11: workloads[0]."
		    "clear_cache: path must start with / and be at most 256 "
		    "bytes");
	}
	CHECK_HAS(load_err(KUBE "    clear_cache: { method: DELETE, path: /c, "
	    "port: 1 }\n"), "workloads[0].clear_cache.method");
	CHECK_HAS(load_err(KUBE "    clear_cache: { path: /c, port: 1, "
	    "timeout: 5m }\n"), "workloads[0].clear_cache.timeout");
	unsetenv("NODE_NAME");
}

static void
test_bad_names_and_urls(void)
{
	CHECK_HAS(load_err(good_with("node: node-a", "node: -bad-")),
	    "t.yaml:1: node: \"-bad-\" is not a valid");
	CHECK_HAS(load_err(good_with("listen: tcp", "listen: udp")),
	    "t.yaml:3: listen: expected tcp://");
	CHECK_HAS(load_err(good_with("name: demo-a", "name: demo a")),
	    "t.yaml:9: services[0].name:");
	CHECK_HAS(load_err(good_with("status_socket: /", "status_socket: x")),
	    "t.yaml:4: status_socket: expected an "
	    "absolute path");
}

static void
test_ranges_have_lines(void)
{
	CHECK_HAS(load_err(good_with("instances: 2", "instances: 0")),
	    "t.yaml:11: services[0].instances: 0 is "
	    "out of range [1, 64]");
	CHECK_HAS(load_err(good_with("failure_threshold: 3",
	    "failure_threshold: x")),
	    "t.yaml:19: services[0].probe."
	    "failure_threshold: expected an integer");
	CHECK_HAS(load_err(good_with("timeout: 1s", "timeout: 9s")),
	    "t.yaml:16: services[0].probe: timeout "
	    "(9000 ms) is longer than period");
	CHECK_HAS(load_err(GOOD "  - name: demo-b\n    command: [x]\n"
	    "    base_port: 18082\n"), "t.yaml:22: services[1].base_port: "
	    "ports overlap with service \"demo-a\"");
	CHECK_HAS(load_err(GOOD "  - name: demo-a\n    command: [x]\n"
	    "    base_port: 30000\n"), "t.yaml:22: services[1].name: "
	    "duplicate service");
	CHECK_HAS(load_err(GOOD "  - name: big\n    command: [x]\n"
	    "    base_port: 65535\n    instances: 2\n"),
	    "services[1].base_port: base_port + instances - 1 exceeds 65535");
}

static void
test_partition_policy_and_metrics_keys(void)
{
	struct agent_conf c;
	const struct agent_svc_conf *s;
	char err[512] = "";

	// Defaults: one own restart per service per 10 minutes without the
	// coordinator, 3 s to answer a permit, no metrics endpoint.
	if (agent_conf_load_mem(&c, "t.yaml", GOOD, err, sizeof(err)) == 0) {
		s = agent_conf_svc(&c, 0);
		CHECK_INT(s->partition_policy.max_restarts, 1);
		CHECK_INT(s->partition_policy.window_ms, 600000);
		CHECK_INT(c.permit_timeout_ms, 3000);
		CHECK(c.metrics_listen == NULL);
		agent_conf_free(&c);
	} else {
		CHECK_STR(err, "");
	}
	if (agent_conf_load_mem(&c, "t.yaml", "metrics_listen: "
	    "127.0.0.1:9101\npermit_timeout: 500ms\n" GOOD
	    "    partition_policy: { max_restarts: 0, window: 1h }\n", err,
	    sizeof(err)) == 0) {
		s = agent_conf_svc(&c, 0);
		CHECK_INT(s->partition_policy.max_restarts, 0);
		CHECK_INT(s->partition_policy.window_ms, 3600000);
		CHECK_INT(c.permit_timeout_ms, 500);
		CHECK_STR(c.metrics_listen, "127.0.0.1:9101");
		agent_conf_free(&c);
	} else {
		CHECK_STR(err, "");
	}
	CHECK_HAS(load_err(GOOD "    partition_policy: { max_restarts: -1 }\n"),
	    "t.yaml:22: services[0].partition_policy.max_restarts: -1 is out "
	    "of range [0, 1000]");
	CHECK_HAS(load_err(GOOD "    partition_policy: { window: 10ms }\n"),
	    "services[0].partition_policy.window: 10 is out of range");
	CHECK_HAS(load_err(GOOD "    partition_policy: { colour: red }\n"),
	    "t.yaml:22: services[0].partition_policy.colour: unknown key");
	CHECK_HAS(load_err("metrics_listen: 127.0.0.1\n" GOOD),
	    "t.yaml:1: metrics_listen: \"127.0.0.1\": expected host:port");
	CHECK_HAS(load_err("metrics_listen: \"127.0.0.1:99999\"\n" GOOD),
	    "t.yaml:1: metrics_listen: \"127.0.0.1:99999\": port must be "
	    "1..65535");
	CHECK_HAS(load_err("metrics_listen: \"a b:80\"\n" GOOD),
	    "bad character in host");
	CHECK_HAS(load_err("permit_timeout: 10ms\n" GOOD),
	    "permit_timeout: 10 is out of range");
}

static void
test_coordinator_secret_file(void)
{
	struct agent_conf c;
	char err[512] = "";

	if (agent_conf_load_mem(&c, "t.yaml", GOOD, err, sizeof(err)) == 0) {
		CHECK(c.coordinator_secret_file == NULL); // off by default
		agent_conf_free(&c);
	}
	if (agent_conf_load_mem(&c, "t.yaml", "coordinator_secret_file: "
	    "/etc/reflex/secrets/agent\n" GOOD, err, sizeof(err)) == 0) {
		CHECK_STR(c.coordinator_secret_file,
		    "/etc/reflex/secrets/agent");
		agent_conf_free(&c);
	} else {
		CHECK_STR(err, "");
	}
	CHECK_HAS(load_err("coordinator_secret_file: \"\"\n" GOOD),
	    "t.yaml:1: coordinator_secret_file: is empty");
	CHECK_HAS(load_err("coordinator_secret_file: [a]\n" GOOD),
	    "t.yaml:1: coordinator_secret_file:");
}

static void
test_hostport_check(void)
{
	char why[96];

	CHECK_INT(agent_hostport_check("127.0.0.1:9101", why, sizeof(why)), 0);
	CHECK_INT(agent_hostport_check("localhost:1", why, sizeof(why)), 0);
	CHECK_INT(agent_hostport_check("[::1]:65535", why, sizeof(why)), 0);
	CHECK_INT(agent_hostport_check(":9101", why, sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("::1:9101", why, sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("[::1:9101", why, sizeof(why)),
	    -EINVAL);
	CHECK_INT(agent_hostport_check("h:0", why, sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("h:", why, sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("h:12a", why, sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("h:99999999999999999999", why,
	    sizeof(why)), -EINVAL);
	CHECK_INT(agent_hostport_check("h/x:80", why, sizeof(why)), -EINVAL);
}

static void
test_command_and_env_checked(void)
{
	CHECK_HAS(load_err(good_with("{port}", "{prot}")),
	    "t.yaml:9: services[0].command: argument 2: "
	    "unknown placeholder {prot}");
	CHECK_HAS(load_err(good_with("KEY: value", "1EY: value")),
	    "services[0].env: \"1EY\" is not a valid "
	    "variable name");
	CHECK_HAS(load_err(good_with("KEY: value", "REFLEX_X: one")),
	    "REFLEX_X: names starting with REFLEX_");
	CHECK_HAS(load_err("node: a\ncoordinator: tcp://127.0.0.1:1\n"
	    "listen: tcp://127.0.0.1:2\nservices:\n  - name: s\n"
	    "    command: []\n    base_port: 1\n"),
	    "t.yaml:5: services[0].command: needs at least the program");
}

static void
test_missing_required_and_yaml_errors(void)
{
	CHECK_HAS(load_err("node: a\nlisten: tcp://127.0.0.1:2\n"
	    "services: []\n"),
	    "coordinator: required key is missing");
	CHECK_HAS(load_err("node: a\ncoordinator: tcp://127.0.0.1:1\n"
	    "listen: tcp://127.0.0.1:2\nservices: []\n"),
	    "t.yaml:4: services: at least one service");
	CHECK_HAS(load_err("node: [a\n"), "t.yaml:");
	CHECK_HAS(load_err(GOOD "node: again\n"), "t.yaml:22: node: duplicate "
	    "key");
}

static void
test_load_file_errors(void)
{
	struct agent_conf c;
	char err[512] = "";

	CHECK_INT(agent_conf_load(&c, "/nonexistent/agent.yaml", err,
	    sizeof(err)), -ENOENT);
	CHECK_HAS(err, "/nonexistent/agent.yaml: cannot open");
	CHECK(agent_conf_load(&c, "/", err, sizeof(err)) < 0);
	CHECK_HAS(err, "not a regular file");
}

static void
test_subst_expands_placeholders(void)
{
	struct agent_subst s = { .node = "node-a", .service = "demo-a",
		.instance = "demo-a-1", .port = 18082 };
	char buf[64];

	CHECK_INT(agent_subst_expand("{port}", &s, buf, sizeof(buf)), 5);
	CHECK_STR(buf, "18082");
	CHECK(agent_subst_expand("--name={instance}@{node}/{service}", &s, buf,
	    sizeof(buf)) > 0);
	CHECK_STR(buf, "--name=demo-a-1@node-a/demo-a");
	// Not placeholders: kept as they are.
	CHECK(agent_subst_expand("{} {PORT} {port {x-y}", &s, buf,
	    sizeof(buf)) > 0);
	CHECK_STR(buf, "{} {PORT} {port {x-y}");
	CHECK_INT(agent_subst_expand("{instance}{instance}{instance}", &s, buf,
	    20), -ENAMETOOLONG);
	CHECK_INT(agent_subst_check("a{port}b{node}", buf, sizeof(buf)), 0);
	CHECK_INT(agent_subst_check("{pid}", buf, sizeof(buf)), -EINVAL);
	CHECK_HAS(buf, "unknown placeholder {pid}");
}

static void
test_argv_and_envp_build(void)
{
	char *args[] = { "/bin/svc", "--port", "{port}", "{instance}", NULL };
	struct cm_strlist tmpl = { .v = args, .n = 4 };
	char *keys[] = { "HOME", "WHO" }, *vals[] = { "/h", "{service}" };
	struct cm_strmap env = { .keys = keys, .vals = vals, .n = 2 };
	char *base[] = { "HOME=/root", "PATH=/bin", "REFLEX_NODE=old", NULL };
	struct agent_subst s = { .node = "n", .service = "svc",
		.instance = "svc-0", .port = 7 };
	char **argv = NULL, **envp = NULL;

	CHECK_INT(agent_argv_build(&tmpl, &s, &argv), 0);
	if (argv != NULL) {
		CHECK_STR(argv[0], "/bin/svc");
		CHECK_STR(argv[2], "7");
		CHECK_STR(argv[3], "svc-0");
		CHECK(argv[4] == NULL);
	}
	CHECK_INT(agent_envp_build(base, &env, &s, &envp), 0);
	if (envp != NULL) {
		CHECK_STR(envp[0], "PATH=/bin");
		CHECK_STR(envp[1], "HOME=/h");
		CHECK_STR(envp[2], "WHO=svc");
		CHECK_STR(envp[3], "REFLEX_NODE=n");
		CHECK_STR(envp[4], "REFLEX_SERVICE=svc");
		CHECK_STR(envp[5], "REFLEX_INSTANCE=svc-0");
		CHECK_STR(envp[6], "REFLEX_PORT=7");
		CHECK(envp[7] == NULL);
	}
	agent_argv_free(argv);
	agent_argv_free(envp);
	agent_argv_free(NULL);
}

static void
test_backoff_doubles_and_caps(void)
{
	struct agent_backoff_conf b = { .initial_ms = 1000, .max_ms = 60000 };

	CHECK_INT(agent_backoff_delay(&b, 0), 0);
	CHECK_INT(agent_backoff_delay(&b, 1), 1000);
	CHECK_INT(agent_backoff_delay(&b, 2), 2000);
	CHECK_INT(agent_backoff_delay(&b, 3), 4000);
	CHECK_INT(agent_backoff_delay(&b, 6), 32000);
	CHECK_INT(agent_backoff_delay(&b, 7), 60000);
	CHECK_INT(agent_backoff_delay(&b, 4000000000u), 60000);
	b = (struct agent_backoff_conf){ .initial_ms = 10,
		.max_ms = INT64_MAX };
	CHECK_INT(agent_backoff_delay(&b, 200), INT64_MAX);
	b = (struct agent_backoff_conf){ .initial_ms = 500, .max_ms = 500 };
	CHECK_INT(agent_backoff_delay(&b, 5), 500);
}

static void
test_instance_names(void)
{
	char buf[CM_NAME_MAX];

	CHECK_INT(agent_instance_name("demo-a", 0, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "demo-a-0");
	CHECK_INT(agent_instance_name("x", 63, buf, 4), -ENAMETOOLONG);
}

// wire_limits: the frames the agent accepts (cm_msg.h), within bounds.
static void
test_wire_limits(void)
{
	static char text[8192];
	struct agent_conf c;
	char err[512] = "";

	CHECK_INT(agent_conf_load_mem(&c, "t.yaml", GOOD, err, sizeof(err)),
	    0);
	CHECK(memcmp(&c.wire_limits, &cm_msg_default_limits,
	    sizeof(c.wire_limits)) == 0);
	agent_conf_free(&c);
	snprintf(text, sizeof(text), "%swire_limits: { max_frame: 2KiB, "
	    "max_depth: 6, max_workloads: 2, max_name_len: 40, "
	    "max_addr_len: 50, max_text_len: 300 }\n", GOOD);
	CHECK_INT(agent_conf_load_mem(&c, "t.yaml", text, err, sizeof(err)),
	    0);
	CHECK_INT(c.wire_limits.max_frame, 2048);
	CHECK_INT(c.wire_limits.max_depth, 6);
	CHECK_INT(c.wire_limits.max_workloads, 2);
	CHECK_INT(c.wire_limits.max_name_len, 40);
	CHECK_INT(c.wire_limits.max_addr_len, 50);
	CHECK_INT(c.wire_limits.max_text_len, 300);
	agent_conf_free(&c);
	snprintf(text, sizeof(text), "%swire_limits: { max_depth: 2 }\n",
	    GOOD);
	CHECK_HAS(load_err(text), "wire_limits.max_depth: 2 is out of range "
	    "[4, 16]");
	snprintf(text, sizeof(text), "%swire_limits: { max_frame: 1MiB }\n",
	    GOOD);
	CHECK_HAS(load_err(text), "wire_limits.max_frame: 1048576 is out of "
	    "range [1024, 262144]");
}

static const struct tt_case cases[] = {
	{ "wire_limits", test_wire_limits },
	{ "good config loads", test_good_config_loads },
	{ "defaults apply and probe is optional", test_defaults_and_no_probe },
	{ "unknown key has file:line", test_unknown_key_has_line },
	{ "kubernetes runtime", test_kubernetes_runtime },
	{ "runtimes refuse each other's keys",
	  test_runtimes_refuse_each_others_keys },
	{ "workloads are checked", test_workloads_checked },
	{ "workload clear_cache/reload_config calls", test_workload_calls },
	{ "bad names and URLs have file:line", test_bad_names_and_urls },
	{ "out-of-range values have file:line", test_ranges_have_lines },
	{ "command and env are checked", test_command_and_env_checked },
	{ "partition_policy, permit_timeout and metrics_listen",
	  test_partition_policy_and_metrics_keys },
	{ "coordinator_secret_file", test_coordinator_secret_file },
	{ "host:port check", test_hostport_check },
	{ "missing keys and YAML errors",
	  test_missing_required_and_yaml_errors },
	{ "file errors", test_load_file_errors },
	{ "placeholders expand", test_subst_expands_placeholders },
	{ "argv and envp build", test_argv_and_envp_build },
	{ "backoff doubles and caps", test_backoff_doubles_and_caps },
	{ "instance names", test_instance_names },
	{ NULL, NULL },
};

TT_MAIN(cases)
