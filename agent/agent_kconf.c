// SPDX-License-Identifier: MIT
// agent_kconf: the configuration of the kubernetes runtime: the
// "kubernetes:" section, "workloads:", and their whole-file checks.
#include "agent_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_msg.h"

#define ERRF(line, key, ...) \
	cm_conf_errf(err, errlen, name, (line), (key), __VA_ARGS__)

static const char *const probe_types[] = { "http", "tcp", NULL };

#define PROBE_TIMING                                                        \
	{ .key = "period", .type = CM_CONF_DURATION,                        \
	  .off = offsetof(struct agent_kprobe_conf, period_ms), .def = "5s", \
	  .min = 100, .max = 3600000, .help = "time between probe starts" }, \
	{ .key = "timeout", .type = CM_CONF_DURATION,                       \
	  .off = offsetof(struct agent_kprobe_conf, timeout_ms),            \
	  .def = "1s", .min = 10, .max = 3600000,                           \
	  .help = "whole probe, at most period" },                          \
	{ .key = "failure_threshold", .type = CM_CONF_INT,                  \
	  .off = offsetof(struct agent_kprobe_conf, failure_threshold),     \
	  .def = "3", .min = 1, .max = 100,                                 \
	  .help = "consecutive failures that make the agent evict the pod " \
		  "(with the coordinator's permission)" },                  \
	{ .key = "initial_delay", .type = CM_CONF_DURATION,                 \
	  .off = offsetof(struct agent_kprobe_conf, initial_delay_ms),      \
	  .def = "5s", .min = 0, .max = 3600000,                            \
	  .help = "wait after the pod is first seen Running" }

static const struct cm_conf_field kprobe_fields[] = {
	{ .key = "type", .type = CM_CONF_ENUM,
	  .off = offsetof(struct agent_kprobe_conf, type), .def = "http",
	  .choices = probe_types,
	  .help = "http (GET, 2xx/3xx = ok) or tcp (a connection opens)" },
	{ .key = "path", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_kprobe_conf, path), .def = "/healthz",
	  .help = "HTTP path (a pod's reflex.io/probe-path wins)" },
	{ .key = "port", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_kprobe_conf, port), .def = "0",
	  .min = 0, .max = 65535,
	  .help = "port on the pod IP; 0 = the pod's reflex.io/probe-port "
		  "(which also wins over a number here)" },
	PROBE_TIMING,
	{ 0 },
};

static const struct cm_conf_field kannot_probe_fields[] = {
	PROBE_TIMING,
	{ 0 },
};

// The process runtime's keys and bounds, less reset_after (a pod is not
// restarted in place: there is no restart streak to reset).
static const struct cm_conf_field kbackoff_fields[] = {
	{ .key = "initial", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_backoff_conf, initial_ms), .def = "10s",
	  .min = 10, .max = 3600000,
	  .help = "wait before asking again after a refusal or a failed "
		  "eviction" },
	{ .key = "max", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_backoff_conf, max_ms), .def = "5m",
	  .min = 10, .max = 86400000, .help = "the wait doubles up to this" },
	{ 0 },
};

static const struct cm_conf_field kpartition_fields[] = {
	{ .key = "max_restarts", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_partition_conf, max_restarts),
	  .def = "1", .min = 0, .max = AGENT_PARTITION_MAX,
	  .help = "evictions of the service's pods allowed within window "
		  "while the coordinator cannot be asked (0: none)" },
	{ .key = "window", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_partition_conf, window_ms),
	  .def = "10m", .min = 1000, .max = 7 * 86400000LL,
	  .help = "the window; every own eviction of the service counts" },
	{ 0 },
};

static const char *const kcall_methods[] = { "POST", "PUT", "GET", NULL };

const char *
agent_kcall_method_name(int method)
{
	return method >= 0 && method <= AGENT_KCALL_GET ?
	    kcall_methods[method] : "?";
}

static const struct cm_conf_field kcall_fields[] = {
	{ .key = "method", .type = CM_CONF_ENUM,
	  .off = offsetof(struct agent_kcall_conf, method), .def = "POST",
	  .choices = kcall_methods,
	  .help = "POST, PUT or GET (with an empty body)" },
	{ .key = "path", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_kcall_conf, path),
	  .help = "HTTP path, required: starts with /, printable ASCII "
		  "without spaces, at most 256 bytes" },
	{ .key = "port", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_kcall_conf, port), .def = "0",
	  .min = 0, .max = 65535,
	  .help = "port on the pod IP, required (1..65535)" },
	{ .key = "timeout", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_kcall_conf, timeout_ms), .def = "2s",
	  .min = 10, .max = 60000, .help = "per pod, whole request" },
	{ .key = "signal", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_kcall_conf, signal),
	  .help = "refused in the kubernetes runtime: the API server "
		  "cannot send a signal to a container; configure an HTTP "
		  "call (path and port) instead" },
	{ 0 },
};

#define KCALL_HELP(what, path)                                            \
	"the " what " command as an HTTP call on each Ready pod of the "    \
	"service on this node (or on the named pod) at its pod IP, e.g. "  \
	"{ method: POST, path: " path ", port: 8080, timeout: 2s }; ok "   \
	"when every pod answers 2xx. Signals cannot be sent to "           \
	"containers through the API, so signal: is refused. Without it "   \
	"the command is refused"

#define RESTART_POLICY(T)                                                \
	{ .key = "restart_backoff", .type = CM_CONF_STRUCT,                 \
	  .off = offsetof(T, restart_backoff), .sub = kbackoff_fields,   \
	  .line_off = CM_CONF_LINE(struct agent_backoff_conf, line),        \
	  .help = "waits before a held own eviction is asked again" },      \
	{ .key = "partition_policy", .type = CM_CONF_STRUCT,                \
	  .off = offsetof(T, partition_policy), .sub = kpartition_fields, \
	  .line_off = CM_CONF_LINE(struct agent_partition_conf, line),      \
	  .help = "own evictions while the coordinator cannot be asked" }

const struct cm_conf_field agent_kwl_fields[] = {
	{ .key = "name", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_kwl_conf, name),
	  .help = "service name of these pods; default: the owner workload "
		  "(Deployment, StatefulSet, ...), else the app label" },
	{ .key = "namespace", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_kwl_conf, ns),
	  .help = "only pods of this namespace (default: every namespace)" },
	{ .key = "selector", .type = CM_CONF_STRMAP,
	  .off = offsetof(struct agent_kwl_conf, selector), .required = true,
	  .help = "labels the pods carry (matchLabels), e.g. { app: web }" },
	{ .key = "probe", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kwl_conf, probe), .sub = kprobe_fields,
	  .line_off = CM_CONF_LINE(struct agent_kprobe_conf, line),
	  .help = "HTTP or TCP probe of each pod at its IP; without it (and "
		  "without reflex.io/probe-port) pods are not probed" },
	RESTART_POLICY(struct agent_kwl_conf),
	{ .key = "clear_cache", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kwl_conf, clear_cache),
	  .sub = kcall_fields,
	  .line_off = CM_CONF_LINE(struct agent_kcall_conf, line),
	  .help = KCALL_HELP("clear_cache", "/cache/clear") },
	{ .key = "reload_config", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kwl_conf, reload_config),
	  .sub = kcall_fields,
	  .line_off = CM_CONF_LINE(struct agent_kcall_conf, line),
	  .help = KCALL_HELP("reload_config", "/-/reload") },
	{ 0 },
};

static const struct cm_conf_field kevict_fields[] = {
	{ .key = "max_tries", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_kevict_conf, max_tries), .def = "3",
	  .min = 1, .max = 10,
	  .help = "eviction attempts while a PodDisruptionBudget answers 429" },
	{ .key = "backoff", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_kevict_conf, backoff_ms), .def = "5s",
	  .min = 10, .max = 600000,
	  .help = "wait between 429s without Retry-After (doubles)" },
	{ .key = "budget", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_kevict_conf, budget_ms), .def = "60s",
	  .min = 0, .max = 600000,
	  .help = "total time one eviction may wait for the budget" },
	{ .key = "grace_seconds", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_kevict_conf, grace_seconds),
	  .def = "-1", .min = -1, .max = 86400,
	  .help = "deleteOptions.gracePeriodSeconds; -1 = the pod's own" },
	{ .key = "delete_unready", .type = CM_CONF_BOOL,
	  .off = offsetof(struct agent_kevict_conf, delete_unready),
	  .def = "false",
	  .help = "when a PDB blocks, delete the pod instead if it is not "
		  "Ready and a controller will recreate it (case C14)" },
	{ 0 },
};

static const struct cm_conf_field kannot_fields[] = {
	{ .key = "enabled", .type = CM_CONF_BOOL,
	  .off = offsetof(struct agent_kannot_conf, enabled), .def = "true",
	  .help = "probe pods of no workload that carry reflex.io/probe-port "
		  "(HTTP when reflex.io/probe-path is set, else TCP)" },
	{ .key = "probe", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kannot_conf, probe),
	  .sub = kannot_probe_fields,
	  .line_off = CM_CONF_LINE(struct agent_kprobe_conf, line),
	  .help = "timing of those probes" },
	RESTART_POLICY(struct agent_kannot_conf),
	{ 0 },
};

const struct cm_conf_field agent_kube_fields[] = {
	{ .key = "client", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kube_conf, client), .sub = cm_k8s_fields,
	  .help = "API server, credentials, rate limit, retries" },
	{ .key = "discovery_interval", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_kube_conf, discovery_interval_ms),
	  .def = "10s", .min = 100, .max = 3600000,
	  .help = "how often the node's pods are listed "
		  "(fieldSelector spec.nodeName)" },
	{ .key = "workers", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_kube_conf, workers), .def = "2",
	  .min = 1, .max = 8,
	  .help = "threads for API calls (lists, evictions, checks block)" },
	{ .key = "evict", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kube_conf, evict), .sub = kevict_fields,
	  .line_off = CM_CONF_LINE(struct agent_kevict_conf, line),
	  .help = "how pods are evicted (PDB-aware)" },
	{ .key = "annotations", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_kube_conf, annotations),
	  .sub = kannot_fields,
	  .line_off = CM_CONF_LINE(struct agent_kannot_conf, line),
	  .help = "pods probed by their reflex.io/probe-port annotation" },
	{ 0 },
};

const struct agent_kwl_conf *
agent_conf_kwl(const struct agent_conf *c, size_t i)
{
	return &((const struct agent_kwl_conf *)c->workloads.v)[i];
}

// ---- checks ------------------------------------------------------------

static int
check_kprobe(const struct agent_kprobe_conf *p, int deflt, const char *name,
    const char *key, char *err, size_t errlen)
{
	int line = p->line ? p->line : deflt;

	if (p->path != NULL && (p->path[0] != '/' ||
	    strlen(p->path) > AGENT_PROBE_PATH_MAX))
		return ERRF(line, key, "path must start with / and be at most "
		    "%d bytes", AGENT_PROBE_PATH_MAX);
	for (const char *c = p->path; c != NULL && *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return ERRF(line, key, "path holds a space or a "
			    "character that is not printable ASCII");
	if (p->timeout_ms > p->period_ms)
		return ERRF(line, key, "timeout (%lld ms) is longer than "
		    "period (%lld ms)", (long long)p->timeout_ms,
		    (long long)p->period_ms);
	return 0;
}

static int
check_kcall(const struct agent_kcall_conf *a, const char *name,
    const char *key, char *err, size_t errlen)
{
	if (a->line == 0)
		return 0;
	if (a->signal != NULL)
		return ERRF(a->line, key, "signal: cannot be used in the "
		    "kubernetes runtime (the API server cannot send a signal "
		    "to a container); configure an HTTP call (path, port)");
	if (a->path == NULL)
		return ERRF(a->line, key, "needs path (the HTTP path to call "
		    "on each pod)");
	if (a->path[0] != '/' || strlen(a->path) > AGENT_KCALL_PATH_MAX)
		return ERRF(a->line, key, "path must start with / and be at "
		    "most %d bytes", AGENT_KCALL_PATH_MAX);
	for (const char *c = a->path; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return ERRF(a->line, key, "path holds a space or a "
			    "character that is not printable ASCII");
	if (a->port < 1 || a->port > 65535)
		return ERRF(a->line, key, "needs port (1..65535 on the pod "
		    "IP)");
	return 0;
}

static int
check_selector(const struct agent_kwl_conf *w, const char *name,
    const char *key, char *err, size_t errlen)
{
	if (w->selector.n == 0)
		return ERRF(w->line, key, "needs at least one label (a "
		    "workload never covers every pod of the node)");
	for (size_t i = 0; i < w->selector.n; i++) {
		if (!cm_k8s_qualified_name_valid(w->selector.keys[i]))
			return ERRF(w->line, key, "\"%s\" is not a label key",
			    w->selector.keys[i]);
		if (!cm_k8s_label_value_valid(w->selector.vals[i]))
			return ERRF(w->line, key, "%s: \"%s\" is not a label "
			    "value", w->selector.keys[i], w->selector.vals[i]);
	}
	return 0;
}

static int
check_backoff(const struct agent_backoff_conf *b, int deflt, const char *name,
    const char *key, char *err, size_t errlen)
{
	if (b->max_ms < b->initial_ms)
		return ERRF(b->line ? b->line : deflt, key,
		    "is shorter than initial");
	return 0;
}

static int
check_kwl(const struct agent_conf *c, size_t i, const char *name, char *err,
    size_t errlen)
{
	const struct agent_kwl_conf *w = agent_conf_kwl(c, i);
	char key[96];
	int rv;

	snprintf(key, sizeof(key), "workloads[%zu].name", i);
	if (w->name != NULL && !cm_name_valid(w->name))
		return ERRF(w->line, key, "\"%s\" is not a valid name "
		    "([A-Za-z0-9._-], alphanumeric at both ends, < %d bytes)",
		    w->name, CM_NAME_MAX);
	snprintf(key, sizeof(key), "workloads[%zu].namespace", i);
	if (w->ns != NULL && !cm_k8s_name_valid(CM_K8S_NAME_LABEL, w->ns))
		return ERRF(w->line, key, "\"%s\" is not a namespace name",
		    w->ns);
	snprintf(key, sizeof(key), "workloads[%zu].selector", i);
	rv = check_selector(w, name, key, err, errlen);
	snprintf(key, sizeof(key), "workloads[%zu].probe", i);
	if (rv == 0 && w->probe.line > 0)
		rv = check_kprobe(&w->probe, w->line, name, key, err, errlen);
	snprintf(key, sizeof(key), "workloads[%zu].restart_backoff.max", i);
	if (rv == 0)
		rv = check_backoff(&w->restart_backoff, w->line, name, key, err,
		    errlen);
	snprintf(key, sizeof(key), "workloads[%zu].clear_cache", i);
	if (rv == 0)
		rv = check_kcall(&w->clear_cache, name, key, err, errlen);
	snprintf(key, sizeof(key), "workloads[%zu].reload_config", i);
	if (rv == 0)
		rv = check_kcall(&w->reload_config, name, key, err, errlen);
	return rv;
}

int
agent_kconf_check(const struct agent_conf *c, const char *name, char *err,
    size_t errlen)
{
	const struct agent_kube_conf *k = &c->kubernetes;
	int rv = 0;

	if (c->runtime != AGENT_RUNTIME_KUBERNETES) {
		if (k->line > 0)
			return ERRF(k->line, "kubernetes", "only for runtime: "
			    "kubernetes");
		if (c->workloads.n > 0)
			return ERRF(agent_conf_kwl(c, 0)->line, "workloads",
			    "only for runtime: kubernetes");
		return 0;
	}
	if (c->services.n > 0)
		return ERRF(agent_conf_svc(c, 0)->line, "services", "only for "
		    "runtime: process (the kubernetes runtime finds the "
		    "node's pods itself)");
	if (c->workloads.n > AGENT_MAX_WORKLOADS)
		return ERRF(agent_conf_kwl(c, 0)->line, "workloads", "at most "
		    "%d entries", AGENT_MAX_WORKLOADS);
	if (c->workloads.n == 0 && !k->annotations.enabled)
		return ERRF(k->line, "workloads", "no workloads and "
		    "kubernetes.annotations.enabled is false: nothing to "
		    "watch");
	for (size_t i = 0; rv == 0 && i < c->workloads.n; i++)
		rv = check_kwl(c, i, name, err, errlen);
	if (rv == 0)
		rv = check_kprobe(&k->annotations.probe, k->line, name,
		    "kubernetes.annotations.probe", err, errlen);
	if (rv == 0)
		rv = check_backoff(&k->annotations.restart_backoff, k->line,
		    name, "kubernetes.annotations.restart_backoff.max", err,
		    errlen);
	return rv;
}

// ---- ${VAR} -----------------------------------------------------------

// Appends len bytes of v to buf (size CM_ADDR_MAX) at *o.
static int
expand_append(char *buf, size_t *o, const char *v, size_t len, char *why,
    size_t whylen)
{
	if (*o + len >= CM_ADDR_MAX) {
		snprintf(why, whylen, "longer than %d bytes once expanded",
		    CM_ADDR_MAX - 1);
		return -ENAMETOOLONG;
	}
	memcpy(buf + *o, v, len);
	*o += len;
	return 0;
}

int
agent_conf_expand_env(const char *tmpl, char **ret, char *why, size_t whylen)
{
	char buf[CM_ADDR_MAX], var[64];
	size_t o = 0;
	int rv = 0;

	for (const char *p = tmpl; *p != '\0' && rv == 0;) {
		const char *v;
		size_t n = 0;

		if (p[0] != '$' || p[1] != '{') {
			rv = expand_append(buf, &o, p++, 1, why, whylen);
			continue;
		}
		while (n < sizeof(var) - 1 && ((p[2 + n] >= 'A' &&
		    p[2 + n] <= 'Z') || (p[2 + n] >= '0' && p[2 + n] <= '9') ||
		    p[2 + n] == '_'))
			n++;
		if (n == 0 || p[2 + n] != '}') {
			snprintf(why, whylen, "${ must be followed by an "
			    "environment variable name [A-Z0-9_] and }");
			return -EINVAL;
		}
		memcpy(var, p + 2, n);
		var[n] = '\0';
		v = getenv(var);
		if (v == NULL || v[0] == '\0') {
			snprintf(why, whylen, "environment variable %s is not "
			    "set", var);
			return -ENOENT;
		}
		rv = expand_append(buf, &o, v, strlen(v), why, whylen);
		p += n + 3;
	}
	if (rv < 0)
		return rv;
	buf[o] = '\0';
	*ret = strdup(buf);
	return *ret == NULL ? -ENOMEM : 0;
}
