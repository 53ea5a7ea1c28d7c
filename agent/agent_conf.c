// SPDX-License-Identifier: MIT
// agent_conf: configuration tables, whole-file checks, argv/env templates.
#include "agent_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_msg.h"

#define ERRF(...) cm_conf_errf(err, errlen, name, __VA_ARGS__)

static const char *const runtimes[] = { "process", "kubernetes", NULL };

// Indexed like enum cm_log_level.
static const char *const levels[] = { "err", "warn", "notice", "info",
	"debug", NULL };

static const struct cm_conf_field probe_fields[] = {
	{ .key = "path", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_probe_conf, path), .def = "/healthz",
	  .help = "HTTP path probed on 127.0.0.1:<port>" },
	{ .key = "period", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_probe_conf, period_ms), .def = "2s",
	  .min = 100, .max = 3600000, .help = "time between probe starts" },
	{ .key = "timeout", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_probe_conf, timeout_ms), .def = "1s",
	  .min = 10, .max = 3600000, .help = "whole request, at most period" },
	{ .key = "failure_threshold", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_probe_conf, failure_threshold),
	  .def = "3", .min = 1, .max = 100,
	  .help = "consecutive failures that make the agent restart it" },
	{ .key = "initial_delay", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_probe_conf, initial_delay_ms),
	  .def = "1s", .min = 0, .max = 3600000,
	  .help = "wait after start before the first probe" },
	{ 0 },
};

static const struct cm_conf_field backoff_fields[] = {
	{ .key = "initial", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_backoff_conf, initial_ms), .def = "1s",
	  .min = 10, .max = 3600000, .help = "delay before the first restart" },
	{ .key = "max", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_backoff_conf, max_ms), .def = "60s",
	  .min = 10, .max = 86400000, .help = "the delay doubles up to this" },
	{ .key = "reset_after", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_backoff_conf, reset_after_ms),
	  .def = "30s", .min = 1000, .max = 86400000,
	  .help = "healthy this long -> the next restart waits initial again" },
	{ 0 },
};

static const struct cm_conf_field partition_fields[] = {
	{ .key = "max_restarts", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_partition_conf, max_restarts),
	  .def = "1", .min = 0, .max = AGENT_PARTITION_MAX,
	  .help = "own restarts of the service allowed within window while "
		  "the coordinator cannot be asked (0: none)" },
	{ .key = "window", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_partition_conf, window_ms),
	  .def = "10m", .min = 1000, .max = 7 * 86400000LL,
	  .help = "the window; every own restart of the service counts" },
	{ 0 },
};

static const struct cm_conf_field svc_fields[] = {
	{ .key = "name", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_svc_conf, name), .required = true,
	  .help = "service name; instances are <name>-<i>" },
	{ .key = "command", .type = CM_CONF_STRLIST,
	  .off = offsetof(struct agent_svc_conf, command), .required = true,
	  .help = "argv, executed without a shell; {port} {instance} "
		  "{service} {node} are substituted" },
	{ .key = "instances", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_svc_conf, instances), .def = "1",
	  .min = 1, .max = AGENT_MAX_INSTANCES, .help = "how many to run" },
	{ .key = "base_port", .type = CM_CONF_INT,
	  .off = offsetof(struct agent_svc_conf, base_port), .required = true,
	  .min = 1, .max = 65535, .help = "instance i listens on base_port+i" },
	{ .key = "env", .type = CM_CONF_STRMAP,
	  .off = offsetof(struct agent_svc_conf, env),
	  .help = "added to the environment (values substituted too)" },
	{ .key = "stop_grace", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_svc_conf, stop_grace_ms), .def = "5s",
	  .min = 0, .max = 600000, .help = "SIGTERM, wait this, then SIGKILL" },
	{ .key = "probe", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_svc_conf, probe), .sub = probe_fields,
	  .line_off = CM_CONF_LINE(struct agent_probe_conf, line),
	  .help = "HTTP probe; without it healthy = process alive" },
	{ .key = "restart_backoff", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_svc_conf, restart_backoff),
	  .sub = backoff_fields,
	  .line_off = CM_CONF_LINE(struct agent_backoff_conf, line),
	  .help = "delays between unplanned restarts" },
	{ .key = "partition_policy", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_svc_conf, partition_policy),
	  .sub = partition_fields,
	  .line_off = CM_CONF_LINE(struct agent_partition_conf, line),
	  .help = "own restarts while the coordinator cannot be asked" },
	{ 0 },
};

static const struct cm_conf_field top_fields[] = {
	{ .key = "node", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, node),
	  .help = "this node's name (required; runtime kubernetes: default "
		  "$NODE_NAME, from the downward API)" },
	{ .key = "coordinator", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, coordinator), .required = true,
	  .help = "coordinator's agent endpoint (nng URL)" },
	{ .key = "listen", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, listen), .required = true,
	  .help = "command endpoint (nng URL), announced to the coordinator" },
	{ .key = "advertise", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, advertise),
	  .help = "command URL announced to the coordinator when listen is "
		  "not reachable as such (tcp://0.0.0.0:...); ${VAR} is "
		  "replaced by the environment variable, e.g. "
		  "tcp://${POD_IP}:9881 (default: listen)" },
	{ .key = "status_socket", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, status_socket),
	  .def = "/run/reflex/agent.sock",
	  .help = "unix socket path for 'reflex-agent status' (mode 0600)" },
	{ .key = "runtime", .type = CM_CONF_ENUM,
	  .off = offsetof(struct agent_conf, runtime), .choices = runtimes,
	  .def = "process", .help = "process (supervise services:) or "
		  "kubernetes (the node's pods: kubernetes:, workloads:)" },
	{ .key = "log_level", .type = CM_CONF_ENUM,
	  .off = offsetof(struct agent_conf, log_level), .choices = levels,
	  .def = "info", .help = "err, warn, notice, info or debug" },
	{ .key = "heartbeat_interval", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_conf, heartbeat_interval_ms),
	  .def = "10s", .min = 100, .max = 3600000,
	  .help = "time between heartbeats to the coordinator (keep it "
		  "well below the coordinator's agent_lost_after, 30s by "
		  "default)" },
	{ .key = "permit_timeout", .type = CM_CONF_DURATION,
	  .off = offsetof(struct agent_conf, permit_timeout_ms),
	  .def = "3s", .min = 100, .max = 60000,
	  .help = "wait this long for the coordinator's answer to a permit "
		  "request, then apply the partition policy" },
	{ .key = "metrics_listen", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, metrics_listen),
	  .help = "host:port for the HTTP /metrics and /healthz endpoint "
		  "(off when absent)" },
	{ .key = "coordinator_secret_file", .type = CM_CONF_STR,
	  .off = offsetof(struct agent_conf, coordinator_secret_file),
	  .help = "file with the secret shared with the coordinator's "
		  "agent_secret_file (mode 0600/0400, 16..4095 bytes): every "
		  "message to and from the coordinator is sealed with it "
		  "(off when absent)" },
	{ .key = "services", .type = CM_CONF_LIST,
	  .off = offsetof(struct agent_conf, services),
	  .sub = svc_fields, .elem_size = sizeof(struct agent_svc_conf),
	  .line_off = CM_CONF_LINE(struct agent_svc_conf, line),
	  .help = "supervised services (runtime process; required there)" },
	{ .key = "kubernetes", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_conf, kubernetes),
	  .sub = agent_kube_fields,
	  .line_off = CM_CONF_LINE(struct agent_kube_conf, line),
	  .help = "runtime kubernetes: API client, discovery, eviction, "
		  "annotated pods" },
	{ .key = "workloads", .type = CM_CONF_LIST,
	  .off = offsetof(struct agent_conf, workloads),
	  .sub = agent_kwl_fields, .elem_size = sizeof(struct agent_kwl_conf),
	  .line_off = CM_CONF_LINE(struct agent_kwl_conf, line),
	  .help = "runtime kubernetes: the pods to probe and restart" },
	{ .key = "wire_limits", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct agent_conf, wire_limits),
	  .sub = cm_msg_limits_fields,
	  .help = "msgpack frames it receives (commands, status requests, "
		  "the coordinator's replies); each at most, and by default, "
		  "the compiled-in limit" },
	{ 0 },
};

static const char *const placeholders[] = { "port", "instance", "service",
	"node", NULL };

const struct agent_svc_conf *
agent_conf_svc(const struct agent_conf *c, size_t i)
{
	return &((const struct agent_svc_conf *)c->services.v)[i];
}

const char *
agent_conf_advertised(const struct agent_conf *c)
{
	return c->advertise != NULL ? c->advertise : c->listen;
}

// Length of a "{word}" placeholder at p (0 if p does not start one) and
// the word's length in *wlen.
static size_t
placeholder_at(const char *p, size_t *wlen)
{
	size_t n = 0;

	if (p[0] != '{')
		return 0;
	while (p[1 + n] >= 'a' && p[1 + n] <= 'z')
		n++;
	if (n == 0 || p[1 + n] != '}')
		return 0;
	*wlen = n;
	return n + 2;
}

static int
placeholder_index(const char *word, size_t wlen)
{
	for (int i = 0; placeholders[i] != NULL; i++)
		if (strlen(placeholders[i]) == wlen &&
		    memcmp(placeholders[i], word, wlen) == 0)
			return i;
	return -1;
}

int
agent_subst_check(const char *tmpl, char *why, size_t whylen)
{
	for (const char *p = tmpl; *p != '\0'; p++) {
		size_t wlen, len = placeholder_at(p, &wlen);

		if (len == 0)
			continue;
		if (placeholder_index(p + 1, wlen) < 0) {
			snprintf(why, whylen, "unknown placeholder {%.*s} "
			    "(known: {port} {instance} {service} {node})",
			    (int)(wlen > 32 ? 32 : wlen), p + 1);
			return -EINVAL;
		}
		p += len - 1;
	}
	return 0;
}

static int
append(char *buf, size_t n, size_t *o, const char *s, size_t len)
{
	if (len >= n - *o)
		return -ENAMETOOLONG;
	memcpy(buf + *o, s, len);
	*o += len;
	buf[*o] = '\0';
	return 0;
}

int
agent_subst_expand(const char *tmpl, const struct agent_subst *s, char *buf,
    size_t n)
{
	size_t o = 0;
	int rv = 0;

	if (n == 0)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	for (const char *p = tmpl; *p != '\0' && rv == 0;) {
		size_t wlen = 0, len = placeholder_at(p, &wlen);
		int idx = len ? placeholder_index(p + 1, wlen) : -1;
		char port[16];
		const char *v;

		if (idx < 0) {
			rv = append(buf, n, &o, p, 1);
			p++;
			continue;
		}
		snprintf(port, sizeof(port), "%d", s->port);
		v = idx == 0 ? port : idx == 1 ? s->instance :
		    idx == 2 ? s->service : s->node;
		rv = append(buf, n, &o, v, strlen(v));
		p += len;
	}
	return rv < 0 ? rv : (int)o;
}

void
agent_argv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

// Expands tmpl into a new string (optionally "prefix" + expansion).
static int
expand_dup(const char *prefix, const char *tmpl, const struct agent_subst *s,
    char **ret)
{
	char *buf = malloc(AGENT_ARG_MAX);
	size_t plen = prefix ? strlen(prefix) : 0;
	int rv;

	if (buf == NULL)
		return -ENOMEM;
	if (plen >= AGENT_ARG_MAX) {
		free(buf);
		return -ENAMETOOLONG;
	}
	memcpy(buf, prefix ? prefix : "", plen);
	rv = agent_subst_expand(tmpl, s, buf + plen, AGENT_ARG_MAX - plen);
	if (rv < 0) {
		free(buf);
		return rv;
	}
	*ret = buf;
	return 0;
}

int
agent_argv_build(const struct cm_strlist *tmpl, const struct agent_subst *s,
    char ***ret)
{
	char **v = calloc(tmpl->n + 1, sizeof(char *));
	int rv = 0;

	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < tmpl->n && rv == 0; i++)
		rv = expand_dup(NULL, tmpl->v[i], s, &v[i]);
	if (rv < 0) {
		agent_argv_free(v);
		return rv;
	}
	*ret = v;
	return 0;
}

// True if the "NAME=value" entry e is overridden by the service's env or
// uses the reserved REFLEX_ prefix.
static bool
env_overridden(const char *e, const struct cm_strmap *env)
{
	size_t klen = strcspn(e, "=");

	if (strncmp(e, "REFLEX_", 7) == 0)
		return true;
	for (size_t i = 0; i < env->n; i++)
		if (strlen(env->keys[i]) == klen &&
		    memcmp(env->keys[i], e, klen) == 0)
			return true;
	return false;
}

int
agent_envp_build(char *const *base, const struct cm_strmap *env,
    const struct agent_subst *s, char ***ret)
{
	size_t nb = 0, o = 0;
	char **v, port[16];
	int rv = 0;

	while (base != NULL && base[nb] != NULL)
		nb++;
	v = calloc(nb + env->n + 5, sizeof(char *));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nb && rv == 0; i++) {
		if (env_overridden(base[i], env))
			continue;
		v[o] = strdup(base[i]);
		rv = v[o++] == NULL ? -ENOMEM : 0;
	}
	for (size_t i = 0; i < env->n && rv == 0; i++) {
		char prefix[256];

		snprintf(prefix, sizeof(prefix), "%s=", env->keys[i]);
		rv = expand_dup(prefix, env->vals[i], s, &v[o++]);
	}
	snprintf(port, sizeof(port), "%d", s->port);
	if (rv == 0)
		rv = expand_dup("REFLEX_NODE=", s->node, NULL, &v[o++]);
	if (rv == 0)
		rv = expand_dup("REFLEX_SERVICE=", s->service, NULL, &v[o++]);
	if (rv == 0)
		rv = expand_dup("REFLEX_INSTANCE=", s->instance, NULL, &v[o++]);
	if (rv == 0)
		rv = expand_dup("REFLEX_PORT=", port, NULL, &v[o++]);
	if (rv < 0) {
		agent_argv_free(v);
		return rv;
	}
	*ret = v;
	return 0;
}

int64_t
agent_backoff_delay(const struct agent_backoff_conf *b, unsigned failures)
{
	int64_t d = b->initial_ms;

	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && d < b->max_ms; i++)
		d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
	return d < b->max_ms ? d : b->max_ms;
}

int
agent_instance_name(const char *service, unsigned i, char *buf, size_t n)
{
	int len = snprintf(buf, n, "%s-%u", service, i);

	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

// An nng URL we can dial or listen on: tcp:// or ipc://, printable.
static bool
url_valid(const char *u)
{
	size_t len = strlen(u);

	if (len >= CM_ADDR_MAX || len <= 6)
		return false;
	if (strncmp(u, "tcp://", 6) != 0 && strncmp(u, "ipc://", 6) != 0)
		return false;
	for (const char *p = u; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return true;
}

int
agent_hostport_check(const char *s, char *why, size_t whylen)
{
	const char *colon = strrchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : 0;
	long port = 0;

	if (colon == NULL || hlen == 0 || hlen > 253) {
		snprintf(why, whylen, "expected host:port (host 1..253 bytes)");
		return -EINVAL;
	}
	if (s[0] == '[') {
		if (s[hlen - 1] != ']' || hlen < 3) {
			snprintf(why, whylen, "unterminated [IPv6] host");
			return -EINVAL;
		}
		for (size_t i = 1; i + 1 < hlen; i++)
			if (strchr("0123456789abcdefABCDEF:.", s[i]) == NULL) {
				snprintf(why, whylen, "bad character in [IPv6] "
				    "host");
				return -EINVAL;
			}
	} else {
		for (size_t i = 0; i < hlen; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
			    s[i]) == NULL) {
				snprintf(why, whylen, "bad character in host "
				    "(allowed: [A-Za-z0-9.-] or [IPv6])");
				return -EINVAL;
			}
	}
	for (const char *p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || port > 65535) {
			port = -1;
			break;
		}
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535) {
		snprintf(why, whylen, "port must be 1..65535");
		return -EINVAL;
	}
	return 0;
}

// Line of the top-level key `key` in text (1-based), 0 if not found: the
// loader keeps no line per scalar, so top-level checks look it up here.
static int
top_line(const char *text, const char *key)
{
	size_t klen = strlen(key);
	int line = 1;

	for (const char *p = text; *p != '\0'; line++) {
		if (strncmp(p, key, klen) == 0 && (p[klen] == ':' ||
		    p[klen] == ' '))
			return line;
		p = strchrnul(p, '\n');
		if (*p == '\n')
			p++;
	}
	return 0;
}

#define TOPERR(key, ...) ERRF(top_line(text, key), key, __VA_ARGS__)

static int
check_top(const struct agent_conf *c, const char *text, const char *name,
    char *err, size_t errlen)
{
	size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path);
	const char *sp = c->status_socket;
	char why[96];

	if (c->node == NULL)
		return TOPERR("node", "%s", c->runtime ==
		    AGENT_RUNTIME_KUBERNETES ? "missing, and NODE_NAME is not "
		    "set in the environment" : "required key is missing");
	if (!cm_name_valid(c->node))
		return TOPERR("node", "\"%s\" is not a valid name "
		    "([A-Za-z0-9._-], alphanumeric at both ends, < %d bytes)",
		    c->node, CM_NAME_MAX);
	if (!url_valid(c->coordinator))
		return TOPERR("coordinator", "expected tcp://host:port or "
		    "ipc:///path (< %d bytes)", CM_ADDR_MAX);
	if (!url_valid(c->listen))
		return TOPERR("listen", "expected tcp://host:port or "
		    "ipc:///path (< %d bytes)", CM_ADDR_MAX);
	if (c->advertise != NULL && !url_valid(c->advertise))
		return TOPERR("advertise", "\"%s\": expected tcp://host:port "
		    "or ipc:///path (< %d bytes)", c->advertise, CM_ADDR_MAX);
	if (sp[0] != '/' || strlen(sp) >= sun_max)
		return TOPERR("status_socket", "expected an absolute path "
		    "shorter than %zu bytes", sun_max);
	for (const char *p = sp; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return TOPERR("status_socket", "control characters or "
			    "spaces in path");
	if (c->metrics_listen != NULL && agent_hostport_check(c->metrics_listen,
	    why, sizeof(why)) < 0)
		return TOPERR("metrics_listen", "\"%s\": %s", c->metrics_listen,
		    why);
	if (c->coordinator_secret_file != NULL &&
	    c->coordinator_secret_file[0] == '\0')
		return TOPERR("coordinator_secret_file", "is empty (leave the "
		    "key out for an unauthenticated channel)");
	if (c->runtime == AGENT_RUNTIME_PROCESS && c->services.n == 0)
		return TOPERR("services", "at least one service is needed");
	if (c->services.n > AGENT_MAX_SERVICES)
		return TOPERR("services", "at most %d services",
		    AGENT_MAX_SERVICES);
	return 0;
}

static int
check_command(const struct agent_svc_conf *s, const char *name,
    const char *key, char *err, size_t errlen)
{
	char why[160];

	if (s->command.n == 0 || s->command.v[0][0] == '\0')
		return ERRF(s->line, key, "needs at least the program");
	if (s->command.n > AGENT_MAX_ARGS)
		return ERRF(s->line, key, "at most %d arguments",
		    AGENT_MAX_ARGS);
	for (size_t i = 0; i < s->command.n; i++) {
		if (strlen(s->command.v[i]) >= AGENT_ARG_MAX)
			return ERRF(s->line, key, "argument %zu is longer than "
			    "%d bytes", i, AGENT_ARG_MAX - 1);
		if (agent_subst_check(s->command.v[i], why, sizeof(why)) < 0)
			return ERRF(s->line, key, "argument %zu: %s", i, why);
	}
	return 0;
}

static bool
env_name_valid(const char *k)
{
	if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') ||
	    k[0] == '_') || strlen(k) > 128)
		return false;
	for (const char *p = k; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static int
check_env(const struct agent_svc_conf *s, const char *name, const char *key,
    char *err, size_t errlen)
{
	char why[160];

	if (s->env.n > AGENT_MAX_ENV)
		return ERRF(s->line, key, "at most %d entries", AGENT_MAX_ENV);
	for (size_t i = 0; i < s->env.n; i++) {
		const char *k = s->env.keys[i];

		if (!env_name_valid(k))
			return ERRF(s->line, key, "\"%s\" is not a valid "
			    "variable name", k);
		if (strncmp(k, "REFLEX_", 7) == 0)
			return ERRF(s->line, key, "%s: names starting with "
			    "REFLEX_ are set by the agent", k);
		if (strlen(s->env.vals[i]) >= AGENT_ARG_MAX)
			return ERRF(s->line, key, "%s: value longer than %d "
			    "bytes", k, AGENT_ARG_MAX - 1);
		if (agent_subst_check(s->env.vals[i], why, sizeof(why)) < 0)
			return ERRF(s->line, key, "%s: %s", k, why);
	}
	return 0;
}

static int
check_probe(const struct agent_probe_conf *p, const char *name,
    const char *key, char *err, size_t errlen)
{
	if (p->line == 0)
		return 0;
	if (p->path[0] != '/' || strlen(p->path) > AGENT_PROBE_PATH_MAX)
		return ERRF(p->line, key, "path must start with / and be at "
		    "most %d bytes", AGENT_PROBE_PATH_MAX);
	for (const char *c = p->path; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return ERRF(p->line, key, "path holds a space or a "
			    "character that is not printable ASCII");
	if (p->timeout_ms > p->period_ms)
		return ERRF(p->line, key, "timeout (%lld ms) is longer than "
		    "period (%lld ms)", (long long)p->timeout_ms,
		    (long long)p->period_ms);
	return 0;
}

static int
check_svc(const struct agent_conf *c, size_t i, const char *name, char *err,
    size_t errlen)
{
	const struct agent_svc_conf *s = agent_conf_svc(c, i);
	const struct agent_backoff_conf *b;
	char key[96], inst[CM_NAME_MAX];
	int rv;

	snprintf(key, sizeof(key), "services[%zu].name", i);
	if (!cm_name_valid(s->name))
		return ERRF(s->line, key, "\"%s\" is not a valid name",
		    s->name);
	if (agent_instance_name(s->name, (unsigned)s->instances - 1, inst,
	    sizeof(inst)) < 0 || !cm_name_valid(inst))
		return ERRF(s->line, key, "too long for instance names "
		    "(<name>-<i> must stay under %d bytes)", CM_NAME_MAX);
	for (size_t j = 0; j < i; j++)
		if (strcmp(agent_conf_svc(c, j)->name, s->name) == 0)
			return ERRF(s->line, key, "duplicate service \"%s\"",
			    s->name);
	snprintf(key, sizeof(key), "services[%zu].base_port", i);
	if (s->base_port + s->instances - 1 > 65535)
		return ERRF(s->line, key, "base_port + instances - 1 exceeds "
		    "65535");
	for (size_t j = 0; j < i; j++) {
		const struct agent_svc_conf *o = agent_conf_svc(c, j);

		if (s->base_port < o->base_port + o->instances &&
		    o->base_port < s->base_port + s->instances)
			return ERRF(s->line, key, "ports overlap with "
			    "service \"%s\"", o->name);
	}
	snprintf(key, sizeof(key), "services[%zu].command", i);
	rv = check_command(s, name, key, err, errlen);
	snprintf(key, sizeof(key), "services[%zu].env", i);
	if (rv == 0)
		rv = check_env(s, name, key, err, errlen);
	snprintf(key, sizeof(key), "services[%zu].probe", i);
	if (rv == 0)
		rv = check_probe(&s->probe, name, key, err, errlen);
	snprintf(key, sizeof(key), "services[%zu].restart_backoff.max", i);
	b = &s->restart_backoff;
	if (rv == 0 && b->max_ms < b->initial_ms)
		rv = ERRF(b->line ? b->line : s->line, key,
		    "is shorter than initial");
	return rv;
}

static int
check_all(const struct agent_conf *c, const char *text, const char *name,
    char *err, size_t errlen)
{
	int rv = check_top(c, text, name, err, errlen);
	int64_t total = 0;

	for (size_t i = 0; rv == 0 && i < c->services.n; i++) {
		rv = check_svc(c, i, name, err, errlen);
		total += agent_conf_svc(c, i)->instances;
	}
	if (rv == 0 && total > CM_MSG_MAX_WORKLOADS)
		rv = TOPERR("services", "%lld instances in all; at most %d fit "
		    "in a register message", (long long)total,
		    CM_MSG_MAX_WORKLOADS);
	if (rv == 0)
		rv = agent_kconf_check(c, name, err, errlen);
	return rv;
}

// Values that come from the environment: node from NODE_NAME (runtime
// kubernetes) and ${VAR} in advertise.
static int
from_env(struct agent_conf *c, const char *text, const char *name,
    char *err, size_t errlen)
{
	const char *env = getenv("NODE_NAME");
	char why[128], *v = NULL;
	int rv;

	if (c->node == NULL && c->runtime == AGENT_RUNTIME_KUBERNETES &&
	    env != NULL && env[0] != '\0') {
		c->node = strdup(env);
		if (c->node == NULL)
			return -ENOMEM;
	}
	if (c->advertise == NULL)
		return 0;
	rv = agent_conf_expand_env(c->advertise, &v, why, sizeof(why));
	if (rv < 0)
		return TOPERR("advertise", "\"%s\": %s", c->advertise, why);
	free(c->advertise);
	c->advertise = v;
	return 0;
}

int
agent_conf_load_mem(struct agent_conf *ret, const char *name,
    const char *text, char *err, size_t errlen)
{
	int rv;

	memset(ret, 0, sizeof(*ret));
	rv = cm_conf_load_mem(ret, top_fields, name, text, strlen(text), err,
	    errlen);
	if (rv < 0) {
		memset(ret, 0, sizeof(*ret));
		return rv;
	}
	rv = from_env(ret, text, name, err, errlen);
	if (rv == 0)
		rv = check_all(ret, text, name, err, errlen);
	if (rv == 0) {
		ret->path = strdup(name);
		if (ret->path == NULL)
			rv = -ENOMEM;
	}
	if (rv < 0)
		agent_conf_free(ret);
	return rv;
}

// Reads a whole regular file of at most cm_conf_max_file() bytes into a new
// NUL-terminated buffer (free with free()).
static int
read_file(const char *path, char **ret, size_t *ret_len, char *err,
    size_t errlen)
{
	char *text = NULL;
	size_t size = 0;
	ssize_t n = 0;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return rv;
	}
	rv = cm_conf_check_file(fd, path, &size, err, errlen);
	if (rv == 0) {
		text = malloc(size + 1);
		rv = text == NULL ? -ENOMEM : 0;
	}
	if (rv == 0) {
		n = read(fd, text, size);
		if (n < 0)
			rv = cm_conf_errf(err, errlen, path, 0, NULL,
			    "read: %s", strerror(errno));
	}
	close(fd);
	if (rv < 0) {
		free(text);
		return rv;
	}
	text[n] = '\0';
	*ret = text;
	*ret_len = (size_t)n;
	return 0;
}

int
agent_conf_load(struct agent_conf *ret, const char *path, char *err,
    size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rv;

	memset(ret, 0, sizeof(*ret));
	rv = read_file(path, &text, &len, err, errlen);
	if (rv < 0)
		return rv;
	if (strlen(text) != len)
		rv = cm_conf_errf(err, errlen, path, 0, NULL,
		    "holds a NUL byte");
	else
		rv = agent_conf_load_mem(ret, path, text, err, errlen);
	free(text);
	return rv;
}

void
agent_conf_free(struct agent_conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	cm_conf_free(c, top_fields);
	memset(c, 0, sizeof(*c));
}

void
agent_conf_print_reference(void)
{
	cm_conf_print_reference(top_fields, 0);
}
