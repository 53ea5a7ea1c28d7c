// SPDX-License-Identifier: MIT
// coord_conf: coordinator configuration tables and validation.
#include "coord_conf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "coord_jdepth.h"

#define F(k, t, m, ...) { .key = k, .type = t, \
	.off = offsetof(struct coord_conf, m), __VA_ARGS__ }
#define L(k, m, d, lo, hi, h) { .key = k, .type = CM_CONF_INT, \
	.off = offsetof(struct coord_limits_conf, m), .def = d, .min = lo, \
	.max = hi, .help = h }

static const char *const modes[] = { "live", "shadow", NULL };
static const char *const runtimes[] = { "process", "kubernetes", NULL };
static const char *const scheds[] = { "batch", "normal", NULL };

static const char *const automations[] = { "rule", "live", "shadow",
	"approval", "off", NULL };

static const struct cm_conf_field service_fields[] = {
	{ .key = "name", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_service_conf, name) },
	{ .key = "automation", .type = CM_CONF_ENUM, .required = true,
	  .off = offsetof(struct coord_service_conf, automation),
	  .choices = automations,
	  .help = "rule (as the rule says), live, shadow, approval or off" },
	{ 0 },
};

#define R(k, t, m, d, lo, hi, h) { .key = k, .type = t, \
	.off = offsetof(struct coord_rollout_conf, m), .def = d, .min = lo, \
	.max = hi, .help = h }

static const struct cm_conf_field rollout_fields[] = {
	R("percent", CM_CONF_INT, percent, "100", 0, 100,
	    "share of services automated (by a hash of the name)"),
	R("step", CM_CONF_INT, step, "0", 0, 100, "ramp step (0: no ramp)"),
	R("interval", CM_CONF_DURATION, interval_ms, "1h", 1000, 604800000,
	    "time between ramp steps"),
	R("max", CM_CONF_INT, max, "100", 0, 100, "where the ramp stops"),
	R("min_success_percent", CM_CONF_INT, min_success_percent, "95", 0,
	    100, "ramp holds, and steps back, below this success rate"),
	{ 0 },
};

static const struct cm_conf_field tls_fields[] = {
	{ .key = "cert_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_tls_conf, cert_file),
	  .help = "server certificate (PEM); enables HTTPS" },
	{ .key = "key_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_tls_conf, key_file),
	  .help = "its private key (PEM)" },
	{ .key = "client_ca_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_tls_conf, client_ca_file),
	  .help = "CA for client certificates; makes them mandatory" },
	{ 0 },
};

#define H(k, t, m, d, lo, hi, h) { .key = k, .type = t, \
	.off = offsetof(struct coord_http_conf, m), .def = d, .min = lo, \
	.max = hi, .help = h }

static const struct cm_conf_field http_fields[] = {
	H("header_timeout", CM_CONF_DURATION, header_timeout_ms, "10s", 100,
	    600000, "request line and headers must arrive within this (408)"),
	H("body_timeout", CM_CONF_DURATION, body_timeout_ms, "30s", 100,
	    600000, "a body must arrive within this; a reply must be taken at 64 KiB "
	    "per this at least"),
	H("idle_timeout", CM_CONF_DURATION, idle_timeout_ms, "60s", 100,
	    3600000, "an idle keep-alive connection is closed after this"),
	H("max_connections", CM_CONF_INT, max_connections, "512", 1, 65536,
	    "open connections at most: the oldest idle one is closed for a "
	    "new one, or the new one gets 503"),
	H("max_header_bytes", CM_CONF_SIZE, max_header_bytes, "16KiB", 1024,
	    1048576, "request line and headers at most (431 above)"),
	H("max_reply_memory", CM_CONF_SIZE, max_reply_memory, "128MiB",
	    1048576, 17179869184LL, "replies held for slow clients at most; "
	    "a reply over 64 KiB that would pass it gets 503"),
	{ 0 },
};

static const struct cm_conf_field limits_fields[] = {
	{ .key = "max_body", .type = CM_CONF_SIZE,
	  .off = offsetof(struct coord_limits_conf, max_body), .def = "1MiB",
	  .min = 1024, .max = 64 * 1024 * 1024,
	  .help = "largest webhook body accepted (413 above)" },
	L("max_alerts", max_alerts, "1000", 1, 100000, "alerts per webhook (413 above)"),
	L("max_labels", max_labels, "64", 1, 1024, "labels or annotations per alert"),
	L("max_name_len", max_name_len, "128", 16, 1024,
	    "label or annotation name bytes (413 above)"),
	L("max_value_len", max_value_len, "1024", 16, 65536, "label value bytes"),
	L("max_annotation_len", max_annotation_len, "8192", 16, 1048576,
	    "annotation value bytes"),
	L("max_json_depth", max_json_depth, "1000", 4, COORD_JSON_DEPTH_MAX,
	    "nested arrays and objects in a webhook body (400 above; "
	    "4..1000)"),
	L("queue", queue, "20000", 16, 1000000,
	    "alerts accepted but not yet decided (503 above)"),
	{ 0 },
};

const struct cm_conf_field coord_conf_fields[] = {
	F("listen", CM_CONF_STR, listen, .def = "127.0.0.1:9870",
	    .help = "HTTP address: webhook, API, /metrics, /health"),
	F("agent_listen", CM_CONF_STR, agent_listen,
	    .def = "tcp://127.0.0.1:9871",
	    .help = "nng URL where agents register and heartbeat"),
	F("agent_secret_file", CM_CONF_STR, agent_secret_file,
	    .help = "shared secret (mode 0600 file) that authenticates every "
	    "message with the agents; unset: the channel is open"),
	F("journal", CM_CONF_STR, journal,
	    .def = "/var/lib/reflex/journal.db", .help = "SQLite journal path"),
	F("log_level", CM_CONF_STR, log_level, .def = "info",
	    .help = "err, warn, notice, info or debug"),
	F("journal_sync_full", CM_CONF_BOOL, journal_sync_full, .def = "true",
	    .help = "fsync every group commit (false: only at checkpoints)"),
	F("cpu_scheduling", CM_CONF_ENUM, cpu_scheduling, .choices = scheds,
	    .def = "batch",
	    .help = "batch: the HTTP, journal writer, checkpointer and engine "
	    "threads run as SCHED_BATCH (more work per wake-up under load, "
	    "no preempting the node's workloads); normal: the default class"),
	F("retention", CM_CONF_DURATION, retention_ms, .def = "720h",
	    .help = "journal rows older than this are deleted (0 keeps all)"),
	F("agent_lost_after", CM_CONF_DURATION, agent_lost_after_ms,
	    .def = "30s", .min = 1000, .max = 86400000,
	    .help = "an agent silent this long is marked lost"),
	F("max_agents", CM_CONF_INT, max_agents, .def = "5000", .min = 1,
	    .max = 1000000,
	    .help = "registered agents at most: a new node beyond it takes "
	    "the slot of the agent lost the longest, or is refused (\"agent "
	    "limit reached\") when none is lost"),
	F("max_workloads", CM_CONF_INT, max_workloads, .def = "150000",
	    .min = 0, .max = 5120000,
	    .help = "workloads registered at most over all agents (default: "
	    "Kubernetes' limit of 150,000 pods in a 5,000-node cluster): a "
	    "registration that would pass it is refused (\"workload limit "
	    "reached\")"),
	F("replica_labels", CM_CONF_STRLIST, replica_labels,
	    .help = "labels ignored when recognising duplicate alerts "
	    "(default: prometheus_replica, replica)"),
	F("limits", CM_CONF_STRUCT, limits, .sub = limits_fields,
	    .help = "webhook limits"),
	F("wire_limits", CM_CONF_STRUCT, wire_limits,
	    .sub = cm_msg_limits_fields,
	    .help = "msgpack frames from agents (the agent channel); each "
	    "at most, and by default, the compiled-in limit"),
	F("safety", CM_CONF_STRUCT, safety, .sub = coord_safety_fields,
	    .help = "checks every action passes; the circuit breaker"),
	F("prometheus_url", CM_CONF_STR, prometheus_url, .def = "",
	    .help = "Prometheus for verify.promql, e.g. http://127.0.0.1:9090"),
	F("prometheus_timeout", CM_CONF_DURATION, prometheus_timeout_ms,
	    .def = "5s", .min = 100, .max = 60000),
	{ .key = "notify", .type = CM_CONF_LIST,
	  .off = offsetof(struct coord_conf, notify), .sub = coord_notifier_fields,
	  .elem_size = sizeof(struct coord_notifier_conf),
	  .line_off = CM_CONF_LINE(struct coord_notifier_conf, line),
	  .help = "webhooks told about escalations and failed repairs" },
	F("auth", CM_CONF_STRUCT, auth, .sub = coord_auth_fields,
	    .help = "credentials for the webhook and for operator calls"),
	F("rollout", CM_CONF_STRUCT, rollout, .sub = rollout_fields,
	    .help = "gradual rollout of automation across services"),
	{ .key = "services", .type = CM_CONF_LIST,
	  .off = offsetof(struct coord_conf, services), .sub = service_fields,
	  .elem_size = sizeof(struct coord_service_conf),
	  .line_off = CM_CONF_LINE(struct coord_service_conf, line),
	  .help = "per-service automation overrides" },
	F("approval_timeout", CM_CONF_DURATION, approval_timeout_ms,
	    .def = "15m", .min = 1000, .max = 86400000,
	    .help = "a plan waiting for approval expires after this"),
	F("runtime", CM_CONF_ENUM, runtime, .choices = runtimes,
	    .def = "process", .help = "process (agents run local processes) "
	    "or kubernetes (workload actions through the API server)"),
	F("kubernetes", CM_CONF_STRUCT, kubernetes, .sub = coord_k8s_fields,
	    .help = "the API client and the Kubernetes actions' policies"),
	F("cluster_load", CM_CONF_STRUCT, cluster_load, .sub = coord_load_fields,
	    .help = "scale-up is refused when the cluster is this busy"),
	F("health_min_success_percent", CM_CONF_INT, health_min_success_percent,
	    .def = "90", .min = 0, .max = 100,
	    .help = "/health is degraded below this action success rate"),
	F("health_max_alerts_per_minute", CM_CONF_INT,
	    health_max_alerts_per_minute, .def = "1000", .min = 1, .max = 10000000,
	    .help = "/health is degraded above this alert rate"),
	F("tls", CM_CONF_STRUCT, tls, .sub = tls_fields,
	    .help = "HTTPS for the webhook and API"),
	F("http", CM_CONF_STRUCT, http, .sub = http_fields,
	    .help = "timeouts and size limits for every HTTP client"),
	F("mode", CM_CONF_ENUM, mode, .choices = modes, .def = "live",
	    .help = "shadow: decide and record everything, execute nothing"),
	{ .key = "rules", .type = CM_CONF_LIST,
	  .off = offsetof(struct coord_conf, rules), .sub = coord_rule_fields,
	  .elem_size = sizeof(struct coord_rule_conf),
	  .line_off = CM_CONF_LINE(struct coord_rule_conf, line),
	  .help = "remediation rules, matched in order" },
	{ 0 },
};

static const char *const default_replica_labels[] = {
	"prometheus_replica", "replica",
};

// Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*
static bool
is_label_name(const char *s)
{
	if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static int
validate(struct coord_conf *c, char *err, size_t errlen)
{
	int level;

	if (cm_log_level_parse(c->log_level, &level) < 0)
		return cm_conf_errf(err, errlen, c->path, 0, "log_level",
		    "unknown level \"%s\"", c->log_level);
	// SQLite would read "file:..." as a URI (its own options, and a
	// file it creates even when it refuses them): a path is wanted.
	if (strncmp(c->journal, "file:", 5) == 0)
		return cm_conf_errf(err, errlen, c->path, 0, "journal",
		    "expected a file path, got the SQLite URI \"%.200s\" (for "
		    "a file of that name, write ./%.200s)", c->journal,
		    c->journal);
	if (strncmp(c->agent_listen, "tcp://", 6) != 0 &&
	    strncmp(c->agent_listen, "ipc://", 6) != 0)
		return cm_conf_errf(err, errlen, c->path, 0, "agent_listen",
		    "expected a tcp:// or ipc:// URL, got \"%s\"", c->agent_listen);
	{
		const char *colon = strrchr(c->listen, ':');
		char *end = NULL;
		long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;

		if (strchr(c->listen, '/') != NULL || colon == NULL ||
		    colon == c->listen || end == colon + 1 || *end != '\0' ||
		    port < 1 || port > 65535)
			return cm_conf_errf(err, errlen, c->path, 0, "listen",
			    "expected host:port with a port in 1..65535, got "
			    "\"%s\"", c->listen);
	}
	for (size_t i = 0; c->runtime == COORD_RUNTIME_PROCESS &&
	    i < c->rules.n; i++) {
		const struct coord_rule_conf *rc =
		    (const struct coord_rule_conf *)c->rules.v + i;
		const struct cm_list *lists[] = { &rc->actions, &rc->escalation };

		for (size_t l = 0; l < 2; l++) {
			for (size_t k = 0; k < lists[l]->n; k++) {
				const struct coord_action_conf *a =
				    (const struct coord_action_conf *)lists[l]->v + k;

				if (!coord_kexec_handles(a->type) ||
				    a->type == COORD_ACT_RESTART)
					continue;
				return cm_conf_errf(err, errlen, c->path, a->line,
				    "rules", "%s (rule %s) needs runtime: "
				    "kubernetes", coord_action_name(a->type),
				    rc->name);
			}
		}
	}
	// What a rule needs from the rest of the file, checked here rather
	// than found missing at run time.
	for (size_t i = 0; i < c->rules.n; i++) {
		const struct coord_rule_conf *rc =
		    (const struct coord_rule_conf *)c->rules.v + i;
		const struct cm_list *lists[] = { &rc->actions, &rc->escalation };

		if (rc->verify.promql != NULL && rc->verify.promql[0] != '\0' &&
		    c->prometheus_url[0] == '\0')
			return cm_conf_errf(err, errlen, c->path, rc->line,
			    "rules", "rule %s: verify.promql needs prometheus_url",
			    rc->name);
		for (size_t l = 0; l < 2; l++) {
			for (size_t k = 0; k < lists[l]->n; k++) {
				const struct coord_action_conf *a =
				    (const struct coord_action_conf *)lists[l]->v + k;

				if (a->type == COORD_ACT_RUN_JOB &&
				    (c->kubernetes.job_template == NULL ||
				    c->kubernetes.job_template[0] == '\0'))
					return cm_conf_errf(err, errlen, c->path,
					    a->line, "rules", "run_job (rule %s) "
					    "needs kubernetes.job_template",
					    rc->name);
			}
		}
	}
	if ((c->tls.cert_file != NULL) != (c->tls.key_file != NULL))
		return cm_conf_errf(err, errlen, c->path, 0, "tls",
		    "cert_file and key_file go together");
	if (c->tls.client_ca_file != NULL && c->tls.cert_file == NULL)
		return cm_conf_errf(err, errlen, c->path, 0, "tls.client_ca_file",
		    "needs cert_file and key_file");
	for (size_t i = 0; i < c->notify.n; i++) {
		const struct coord_notifier_conf *n =
		    (const struct coord_notifier_conf *)c->notify.v + i;
		char why[256];

		if (coord_notifier_validate(n, why, sizeof(why)) < 0)
			return cm_conf_errf(err, errlen, c->path, n->line,
			    "notify", "%s", why);
	}
	if (c->prometheus_url[0] != '\0' &&
	    strncmp(c->prometheus_url, "http://", 7) != 0 &&
	    strncmp(c->prometheus_url, "https://", 8) != 0)
		return cm_conf_errf(err, errlen, c->path, 0, "prometheus_url",
		    "expected an http(s) URL, got \"%s\"", c->prometheus_url);
	for (size_t i = 0; i < c->replica_labels.n; i++)
		if (!is_label_name(c->replica_labels.v[i]))
			return cm_conf_errf(err, errlen, c->path, 0,
			    "replica_labels", "\"%s\" is not a label name",
			    c->replica_labels.v[i]);
	return 0;
}

int
coord_conf_load(struct coord_conf *c, const char *path, char *err,
    size_t errlen)
{
	int rv;

	memset(c, 0, sizeof(*c));
	rv = cm_conf_load(c, coord_conf_fields, path, err, errlen);
	if (rv < 0)
		return rv;
	c->path = strdup(path);
	if (c->path == NULL) {
		coord_conf_free(c);
		return -ENOMEM;
	}
	rv = validate(c, err, errlen);
	if (rv == 0 && c->runtime == COORD_RUNTIME_KUBERNETES)
		rv = coord_k8s_conf_finish(&c->kubernetes, path, err, errlen);
	if (rv == 0)
		rv = coord_rules_compile(&c->compiled, &c->rules, path, err,
		    errlen);
	if (rv < 0) {
		coord_conf_free(c);
		return rv;
	}
	c->wl = (struct coord_webhook_limits){
		.max_body = (size_t)c->limits.max_body,
		.max_alerts = (size_t)c->limits.max_alerts,
		.max_labels = (size_t)c->limits.max_labels,
		.max_name_len = (size_t)c->limits.max_name_len,
		.max_value_len = (size_t)c->limits.max_value_len,
		.max_annotation_len = (size_t)c->limits.max_annotation_len,
		.max_depth = (size_t)c->limits.max_json_depth,
	};
	if (c->replica_labels.n > 0) {
		c->ignore_labels = (const char **)c->replica_labels.v;
		c->n_ignore_labels = c->replica_labels.n;
	} else {
		c->ignore_labels = (const char **)default_replica_labels;
		c->n_ignore_labels = 2;
	}
	return 0;
}

int
coord_conf_automation(const struct coord_conf *c, const char *service)
{
	for (size_t i = 0; i < c->services.n; i++) {
		const struct coord_service_conf *sc =
		    (const struct coord_service_conf *)c->services.v + i;

		if (strcmp(sc->name, service) == 0)
			return sc->automation;
	}
	return COORD_AUTO_RULE;
}

int
coord_rollout_bucket(const char *service)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = service; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	return (int)(h % 100);
}

void
coord_conf_free(struct coord_conf *c)
{
	if (c == NULL)
		return;
	coord_rules_clear(&c->compiled);
	free(c->path);
	cm_conf_free(c, coord_conf_fields);
	memset(c, 0, sizeof(*c));
}
