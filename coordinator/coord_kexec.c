// SPDX-License-Identifier: MIT
// coord_kexec: plans run against the Kubernetes API on worker threads.
#include "coord_kexec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_time.h"
#include "coord_fetch.h"
#include "coord_k8s_actions.h"

static const char *const load_sources[] = { "prometheus", "metrics-api",
	"off", NULL };

const struct cm_conf_field coord_load_fields[] = {
	{ .key = "source", .type = CM_CONF_ENUM, .def = "prometheus",
	  .off = offsetof(struct coord_load_conf, source),
	  .choices = load_sources,
	  .help = "where cluster CPU and memory use come from" },
	{ .key = "cpu_promql", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_load_conf, cpu_promql),
	  .def = "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])) / "
		 "sum(machine_cpu_cores)",
	  .help = "used share of the cluster's CPU, 0..1" },
	{ .key = "memory_promql", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_load_conf, memory_promql),
	  .def = "1 - sum(node_memory_MemAvailable_bytes) / "
		 "sum(node_memory_MemTotal_bytes)",
	  .help = "used share of the cluster's memory, 0..1" },
	{ .key = "max_percent", .type = CM_CONF_INT, .def = "90", .min = 1,
	  .max = 100, .off = offsetof(struct coord_load_conf, max_percent),
	  .help = "scale-up is refused above this use" },
	{ .key = "allow_unavailable", .type = CM_CONF_BOOL, .def = "false",
	  .off = offsetof(struct coord_load_conf, allow_unavailable),
	  .help = "scale up when the source cannot answer (default: block)" },
	{ 0 },
};

struct coord_kexec {
	struct cm_k8s *k;
	const struct coord_k8s_conf *kc;
	const struct coord_load_conf *load;
	const char *prom_url;
	int64_t prom_timeout_ms;
	struct coord_worker *w;	    // actions
	struct coord_worker *polls; // verifications' health reads
};

// One job: everything copied, so the engine may free its plan.
struct kjob {
	struct coord_kexec *x;
	enum coord_action_type type;
	bool verify;
	char service[CM_NAME_MAX * 4];
	char instance[CM_NAME_MAX * 4];
	char rule[128];
	struct cm_strmap params; // owned copies
	struct coord_kvs labels; // owned copies (run_job env)
	char *patch;		 // adjust_config, owned copy
	int64_t timeout_ms;
	int64_t deadline_mono;	 // verify: asked only before this
	coord_agents_done_fn done;
	void *arg;
};

bool
coord_kexec_handles(enum coord_action_type t)
{
	switch (t) {
	case COORD_ACT_RESTART:
	case COORD_ACT_SCALE_UP:
	case COORD_ACT_SCALE_DOWN:
	case COORD_ACT_SWITCH_TRAFFIC:
	case COORD_ACT_ROLLBACK:
	case COORD_ACT_RUN_JOB:
	case COORD_ACT_ADJUST_CONFIG:
		return true;
	default:
		return false;
	}
}

int
coord_kexec_new(struct coord_kexec **ret, struct cm_k8s *k,
    const struct coord_k8s_conf *kc, const struct coord_load_conf *load,
    const char *prom_url, int64_t prom_timeout_ms, struct coord_worker *w,
    struct coord_worker *polls)
{
	struct coord_kexec *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -ENOMEM;
	*x = (struct coord_kexec){ .k = k, .kc = kc, .load = load,
		.prom_url = prom_url, .prom_timeout_ms = prom_timeout_ms, .w = w,
		.polls = polls };
	*ret = x;
	return 0;
}

void
coord_kexec_free(struct coord_kexec *x)
{
	free(x);
}

static void
kjob_free(struct kjob *j)
{
	for (size_t i = 0; i < j->params.n; i++) {
		free(j->params.keys[i]);
		free(j->params.vals[i]);
	}
	free(j->params.keys);
	free(j->params.vals);
	for (size_t i = 0; i < j->labels.n; i++) {
		free(j->labels.v[i].key);
		free(j->labels.v[i].val);
	}
	free(j->labels.v);
	free(j->patch);
	free(j);
}

static const char *
param(const struct kjob *j, const char *key, const char *def)
{
	const char *v = cm_strmap_get(&j->params, key);

	return v != NULL && v[0] != '\0' ? v : def;
}

static void
finish(struct kjob *j, bool ok, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
finish_unknown(struct kjob *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
vfinish(struct kjob *j, int rv, bool ok, int code, const char *fmt,
    va_list ap)
{
	struct cm_msg_reply r = { .ok = ok, .code = code };

	vsnprintf(r.message, sizeof(r.message), fmt, ap);
	j->done(rv, &r, j->arg);
	kjob_free(j);
}

// The job's answer: done, ok or not.
static void
finish(struct kjob *j, bool ok, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfinish(j, 0, ok, code, fmt, ap);
	va_end(ap);
}

// No answer (code < 0): a verification poll that learnt nothing leaves
// the health unknown, not failing.
static void
finish_unknown(struct kjob *j, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfinish(j, code, false, code, fmt, ap);
	va_end(ap);
}

// The largest sample of an instant query, as a number.
static int
prom_value(struct coord_kexec *x, const char *expr, double *ret, char *why,
    size_t n)
{
	struct coord_fetch_reply r;
	char *q = coord_fetch_escape(expr), url[4096];
	cJSON *doc, *res, *s;
	int rv = -ENODATA;

	if (q == NULL)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s/api/v1/query?query=%s", x->prom_url, q);
	free(q);
	if (coord_fetch("GET", url, NULL, NULL, 0, x->prom_timeout_ms, &r) < 0) {
		snprintf(why, n, "Prometheus unreachable: %s", r.error);
		return -EIO;
	}
	doc = cJSON_ParseWithLength(r.body, r.len);
	free(r.body);
	res = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(doc, "data"), "result");
	if (!cJSON_IsArray(res))
		res = NULL;
	cJSON_ArrayForEach(s, res) {
		const cJSON *v = cJSON_GetArrayItem(
		    cJSON_GetObjectItemCaseSensitive(s, "value"), 1);
		char *end;
		double d;

		if (!cJSON_IsString(v))
			continue;
		d = strtod(v->valuestring, &end);
		if (*end != '\0' || d != d)
			continue;
		if (rv < 0 || d > *ret)
			*ret = d;
		rv = 0;
	}
	if (rv < 0)
		snprintf(why, n, "no data for %s", expr);
	cJSON_Delete(doc);
	return rv;
}

// Cluster CPU and memory use from metrics.k8s.io against the nodes'
// allocatable resources, with Kubernetes quantities parsed exactly.
static int
metrics_api_load(struct coord_kexec *x, double *cpu, double *mem, char *why,
    size_t n)
{
	struct cm_k8s_resp nodes = { 0 }, usage = { 0 };
	int64_t alloc_cpu = 0, alloc_mem = 0, used_cpu = 0, used_mem = 0;
	const cJSON *it;
	int rv;

	rv = cm_k8s_get(x->k, "/api/v1/nodes", &nodes);
	if (rv == 0)
		rv = cm_k8s_get(x->k, "/apis/metrics.k8s.io/v1beta1/nodes", &usage);
	if (rv < 0) {
		snprintf(why, n, "metrics API: %s", nodes.err[0] ? nodes.err :
		    usage.err);
		goto out;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(nodes.body,
	    "items")) {
		int64_t c = 0, m = 0;

		if (cm_k8s_quantity(cm_k8s_at(it, "status", "allocatable", "cpu",
		    NULL), -3, &c) == 0)
			alloc_cpu += c;
		if (cm_k8s_quantity(cm_k8s_at(it, "status", "allocatable",
		    "memory", NULL), 0, &m) == 0)
			alloc_mem += m;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(usage.body,
	    "items")) {
		int64_t c = 0, m = 0;

		if (cm_k8s_quantity(cm_k8s_at(it, "usage", "cpu", NULL), -3,
		    &c) == 0)
			used_cpu += c;
		if (cm_k8s_quantity(cm_k8s_at(it, "usage", "memory", NULL), 0,
		    &m) == 0)
			used_mem += m;
	}
	if (alloc_cpu <= 0 || alloc_mem <= 0) {
		snprintf(why, n, "metrics API: no allocatable resources");
		rv = -ENODATA;
		goto out;
	}
	*cpu = (double)used_cpu / (double)alloc_cpu;
	*mem = (double)used_mem / (double)alloc_mem;
out:
	cm_k8s_resp_clear(&nodes);
	cm_k8s_resp_clear(&usage);
	return rv;
}

// Before a scale-up: refused when the cluster is too busy, or when the
// source cannot tell and the config says that blocks. Returns true (and
// has answered) when refused.
static bool
load_refused(struct kjob *j)
{
	const struct coord_load_conf *l = j->x->load;
	double cpu = 0, mem = 0;
	char why[384] = "";
	int rv;

	if (l->source == 2)
		return false;
	if (l->source == 0 && j->x->prom_url[0] == '\0') {
		snprintf(why, sizeof(why), "no prometheus_url configured");
		rv = -ENODATA;
	} else if (l->source == 0) {
		rv = prom_value(j->x, l->cpu_promql, &cpu, why, sizeof(why));
		if (rv == 0)
			rv = prom_value(j->x, l->memory_promql, &mem, why,
			    sizeof(why));
	} else {
		rv = metrics_api_load(j->x, &cpu, &mem, why, sizeof(why));
	}
	if (rv < 0) {
		if (l->allow_unavailable)
			return false;
		finish(j, false, -ECANCELED, "refused:cluster_load: load "
		    "unknown (%s) and allow_unavailable is false", why);
		return true;
	}
	if (cpu * 100 > (double)l->max_percent ||
	    mem * 100 > (double)l->max_percent) {
		finish(j, false, -ECANCELED, "refused:cluster_load: cluster CPU "
		    "%.1f%%, memory %.1f%%, limit %" PRId64 "%%", cpu * 100,
		    mem * 100, l->max_percent);
		return true;
	}
	return false;
}

static void
event_on(struct kjob *j, const struct coord_k8s_obj *o,
    const struct coord_k8s_result *res)
{
	char reason[64], msg[1024];

	snprintf(reason, sizeof(reason), "Reflex%s",
	    res->outcome == COORD_K8S_OK ? "Action" :
	    res->outcome == COORD_K8S_REFUSED ? "Refused" : "Failed");
	snprintf(msg, sizeof(msg), "reflex %s (rule %s): %s: %s%s%s",
	    coord_action_name(j->type), j->rule, res->code, res->reason,
	    res->warning[0] ? "; warning: " : "", res->warning);
	if (coord_k8s_event(j->x->k, j->x->kc, o,
	    res->outcome != COORD_K8S_OK, reason, msg) < 0)
		cm_warn("kexec.event_failed", "kind=%s target=%s/%s", o->kind,
		    cm_q(o->ns), cm_q(o->name));
}

static void
event(struct kjob *j, const struct coord_k8s_ref *t, const char *uid,
    const struct coord_k8s_result *res)
{
	struct coord_k8s_obj o = coord_k8s_ref_obj(t, uid);

	event_on(j, &o, res);
}

// The kind of an adjust_config resource plural, for its Event.
static const char *
kind_of_plural(const char *plural)
{
	static const char *const map[][2] = {
		{ "configmaps", "ConfigMap" }, { "services", "Service" },
		{ "deployments", "Deployment" }, { "statefulsets", "StatefulSet" },
		{ "daemonsets", "DaemonSet" }, { "ingresses", "Ingress" },
		{ "horizontalpodautoscalers", "HorizontalPodAutoscaler" },
		{ "poddisruptionbudgets", "PodDisruptionBudget" },
		{ "cronjobs", "CronJob" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i][0], plural) == 0)
			return map[i][1];
	return NULL;
}

static void
report(struct kjob *j, const struct coord_k8s_ref *t,
    struct coord_k8s_result *res)
{
	if (t != NULL)
		event(j, t, res->uid, res);
	finish(j, res->outcome == COORD_K8S_OK, res->outcome ==
	    COORD_K8S_REFUSED ? -ECANCELED : res->err, "%s: %s%s%s%s%s",
	    res->code, res->reason, res->warning[0] ? "; warning: " : "",
	    res->warning, res->revert != NULL ? "; revert: " : "",
	    res->revert != NULL ? res->revert : "");
	coord_k8s_result_clear(res);
}

static void
run_traffic(struct kjob *j, const char *ns)
{
	struct coord_k8s_result res = { 0 };
	struct coord_k8s_traffic t = {
		.ns = ns,
		.name = param(j, "route", j->service),
		.canary = param(j, "canary", "canary"),
		.stable = param(j, "stable", NULL),
		.weight = strtoll(param(j, "weight", "0"), NULL, 10),
	};

	t.kind = strcmp(param(j, "route_kind", "virtualservice"),
	    "httproute") == 0 ? COORD_K8S_HTTPROUTE : COORD_K8S_VIRTUALSERVICE;
	(void)coord_k8s_switch_traffic(j->x->k, j->x->kc, &t, &res);
	if (res.uid[0] != '\0') {
		struct coord_k8s_obj o = {
			.api_version = t.kind == COORD_K8S_HTTPROUTE ?
			    "gateway.networking.k8s.io/v1" : "networking.istio.io/v1",
			.kind = t.kind == COORD_K8S_HTTPROUTE ? "HTTPRoute" :
			    "VirtualService",
			.ns = ns, .name = t.name, .uid = res.uid,
		};

		event_on(j, &o, &res);
	}
	report(j, NULL, &res);
}

// The pod's evidence before it goes: the tail of its log and how its
// containers last ended, bounded, as the agents report theirs.
static char *
pod_evidence(struct kjob *j, const char *ns)
{
	struct cm_k8s_req req = { .method = "GET", .flags = CM_K8S_F_TEXT |
		CM_K8S_F_NO_RETRY };
	struct cm_k8s_resp log = { 0 }, pod = { 0 };
	char path[600], text[4096];
	const cJSON *cs;
	size_t o = 0;

	text[0] = '\0';
	if (cm_k8s_path(path, sizeof(path), "v1", ns, "pods", j->instance,
	    "log") == 0 && cm_k8s_query_add(path, sizeof(path), "tailLines",
	    "40") == 0 && cm_k8s_query_add(path, sizeof(path), "limitBytes",
	    "3072") == 0) {
		req.path = path;
		if (cm_k8s_do(j->x->k, &req, &log) == 0 &&
		    cJSON_IsString(log.body))
			o += (size_t)snprintf(text, sizeof(text), "%s",
			    log.body->valuestring);
	}
	if (cm_k8s_path(path, sizeof(path), "v1", ns, "pods", j->instance,
	    NULL) == 0 && cm_k8s_get(j->x->k, path, &pod) == 0) {
		cJSON_ArrayForEach(cs, cm_k8s_at(pod.body, "status",
		    "containerStatuses", NULL)) {
			const cJSON *t = cm_k8s_at(cs, "lastState", "terminated",
			    NULL);
			int64_t code = -1, restarts = 0;

			(void)cm_k8s_int(t, &code, "exitCode", NULL);
			(void)cm_k8s_int(cs, &restarts, "restartCount", NULL);
			if (o < sizeof(text))
				o += (size_t)snprintf(text + o, sizeof(text) - o,
				    "%s[container %s: %lld restarts; last ended: "
				    "%s, exit code %lld]", o ? "\n" : "",
				    cm_k8s_str(cs, "name", NULL) ?
				    cm_k8s_str(cs, "name", NULL) : "?",
				    (long long)restarts, cm_k8s_str(t, "reason",
				    NULL) ? cm_k8s_str(t, "reason", NULL) : "-",
				    (long long)code);
		}
	}
	cm_k8s_resp_clear(&log);
	cm_k8s_resp_clear(&pod);
	return text[0] != '\0' ? strdup(text) : NULL;
}

static void
run_pod_restart(struct kjob *j, const char *ns)
{
	struct cm_k8s_evict_result er;
	struct cm_msg_reply r = { 0 };
	cJSON *doc, *res, *one;
	char *evidence;
	int rv;

	if (!cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, j->instance)) {
		finish(j, false, -EINVAL, "bad-name: pod \"%s\" is not a "
		    "Kubernetes name", j->instance);
		return;
	}
	evidence = pod_evidence(j, ns);
	rv = cm_k8s_evict_pod(j->x->k, ns, j->instance, NULL, &er);
	r.ok = rv == 0;
	r.code = rv == -EBUSY ? -ECANCELED : rv;
	snprintf(r.message, sizeof(r.message), "%s: %s", rv == 0 ? "evicted" :
	    rv == -EBUSY ? "blocked-by-pdb" : rv == -ENOENT ? "not-found" :
	    "api", er.reason);
	// The same shape as an agent's restart reply, so the engine
	// journals the evidence the same way.
	doc = cJSON_CreateObject();
	res = cJSON_AddArrayToObject(doc, "results");
	one = cJSON_CreateObject();
	if (res != NULL && one != NULL && cJSON_AddItemToArray(res, one)) {
		cJSON_AddStringToObject(one, "instance", j->instance);
		cJSON_AddStringToObject(one, "evidence", evidence ? evidence : "");
	}
	r.json = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	free(evidence);
	j->done(0, &r, j->arg);
	free(r.json);
	kjob_free(j);
}

static void
kjob_run(void *arg)
{
	struct kjob *j = arg;
	struct coord_k8s_result res = { 0 };
	struct coord_k8s_owners own;
	struct coord_k8s_ref t;
	const char *ns = param(j, "namespace", NULL), *kind;
	int rv;

	if (ns == NULL) {
		finish(j, false, -EINVAL, "bad-params: the rule gives no "
		    "params.namespace");
		return;
	}
	kind = param(j, "kind", "deployment");
	t.ns = ns;
	t.name = j->service;
	if (coord_k8s_kind_parse(kind, &t.kind) < 0 ||
	    coord_k8s_ref_check(&t) < 0) {
		finish(j, false, -EINVAL, "bad-target: %s %s/%s is not a valid "
		    "workload", kind, ns, j->service);
		return;
	}
	if (j->verify) {
		struct coord_k8s_verify v;

		// Stopping: the answer would be dropped, and the stop would
		// wait for each queued poll against a slow API server.
		if (coord_worker_stopping(j->x->polls)) {
			finish_unknown(j, -ECANCELED, "not asked: the "
			    "coordinator is stopping");
			return;
		}
		// Queued behind others (an API server slow to answer) until
		// the verification's time was up: decided without this poll,
		// its health unknown (rv < 0), not failing.
		if (cm_mono_ms() >= j->deadline_mono) {
			finish_unknown(j, -ETIMEDOUT, "not asked: its turn came "
			    "after the verification's timeout");
			return;
		}
		v.reason[0] = '\0';
		rv = coord_k8s_verify(j->x->k, &t, cm_now_ms(), &v);
		// The API server did not tell (other than "gone"): unknown.
		if (rv < 0 && rv != -ENOENT) {
			finish_unknown(j, rv, "API server: %s", v.reason[0] !=
			    '\0' ? v.reason : strerror(-rv));
			return;
		}
		finish(j, rv == 0 && v.ok, rv, "%s", v.reason);
		return;
	}
	if (j->type == COORD_ACT_SWITCH_TRAFFIC) {
		run_traffic(j, ns);
		return;
	}
	if (j->type == COORD_ACT_RUN_JOB) {
		(void)coord_k8s_run_job(j->x->k, j->x->kc, ns, &j->labels,
		    j->timeout_ms, &res);
		report(j, NULL, &res);
		return;
	}
	if (j->type == COORD_ACT_ADJUST_CONFIG) {
		const char *resource;
		cJSON *patch = cJSON_Parse(j->patch != NULL ? j->patch : "");

		if (!cJSON_IsObject(patch)) {
			cJSON_Delete(patch);
			finish(j, false, -EINVAL, "bad-patch: params.patch is not "
			    "a JSON object");
			return;
		}
		resource = param(j, "resource", "configmaps");
		(void)coord_k8s_adjust_config(j->x->k, j->x->kc, resource, ns,
		    param(j, "name", j->service), patch, &res);
		cJSON_Delete(patch);
		if (res.uid[0] != '\0' && kind_of_plural(resource) != NULL) {
			struct coord_k8s_obj o = {
				.api_version = coord_k8s_resource_api(resource),
				.kind = kind_of_plural(resource),
				.ns = ns, .name = param(j, "name", j->service),
				.uid = res.uid,
			};

			event_on(j, &o, &res);
		}
		report(j, NULL, &res);
		return;
	}
	// Other controllers: a rollout already under way is left to its
	// controller, except for the rollback of that very rollout.
	if (coord_k8s_owners(j->x->k, j->x->kc, &t, &own) == 0 && own.busy &&
	    j->type != COORD_ACT_ROLLBACK) {
		finish(j, false, -ECANCELED, "refused:controller: deferred to "
		    "the %s controller: %s", coord_k8s_kind_name(t.kind),
		    own.reason);
		return;
	}
	switch (j->type) {
	case COORD_ACT_RESTART:
		if (j->instance[0] != '\0') {
			run_pod_restart(j, ns);
			return;
		}
		(void)coord_k8s_restart(j->x->k, j->x->kc, &t, &res);
		break;
	case COORD_ACT_ROLLBACK:
		(void)coord_k8s_rollback(j->x->k, j->x->kc, &t,
		    strtoll(param(j, "to_revision", "0"), NULL, 10), &res);
		break;
	case COORD_ACT_SCALE_UP:
	case COORD_ACT_SCALE_DOWN: {
		const char *to = param(j, "replicas", NULL);
		int64_t by = strtoll(param(j, "by", "1"), NULL, 10);

		if (j->type == COORD_ACT_SCALE_UP && load_refused(j))
			return;
		if (to != NULL)
			(void)coord_k8s_scale(j->x->k, j->x->kc, &t,
			    COORD_K8S_SCALE_TO, strtoll(to, NULL, 10), &res);
		else
			(void)coord_k8s_scale(j->x->k, j->x->kc, &t,
			    COORD_K8S_SCALE_BY, j->type == COORD_ACT_SCALE_UP ?
			    by : -by, &res);
		break;
	}
	default:
		finish(j, false, -EINVAL, "unsupported: %s",
		    coord_action_name(j->type));
		return;
	}
	report(j, &t, &res);
}

static struct kjob *
kjob_new(struct coord_kexec *x, const struct coord_plan *p,
    coord_agents_done_fn done, void *arg)
{
	struct kjob *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->x = x;
	j->type = p->type;
	j->done = done;
	j->arg = arg;
	snprintf(j->service, sizeof(j->service), "%s", p->service);
	snprintf(j->instance, sizeof(j->instance), "%s", p->instance);
	snprintf(j->rule, sizeof(j->rule), "%s", p->rule->conf->name);
	if (p->act->patch != NULL && (j->patch = strdup(p->act->patch)) == NULL) {
		kjob_free(j);
		return NULL;
	}
	j->params.keys = calloc(p->params.n + 1, sizeof(char *));
	j->params.vals = calloc(p->params.n + 1, sizeof(char *));
	if (j->params.keys == NULL || j->params.vals == NULL) {
		kjob_free(j);
		return NULL;
	}
	for (size_t i = 0; i < p->params.n; i++) {
		j->params.keys[i] = strdup(p->params.keys[i]);
		j->params.vals[i] = strdup(p->params.vals[i]);
		j->params.n++;
		if (j->params.keys[i] == NULL || j->params.vals[i] == NULL) {
			kjob_free(j);
			return NULL;
		}
	}
	return j;
}

int
coord_kexec_submit(struct coord_kexec *x, const struct coord_plan *p,
    const struct coord_kvs *labels, const char *rule, int64_t timeout_ms,
    coord_agents_done_fn done, void *arg)
{
	struct kjob *j = kjob_new(x, p, done, arg);

	(void)rule;
	if (j == NULL)
		return -ENOMEM;
	j->timeout_ms = timeout_ms;
	j->labels.v = calloc(labels->n + 1, sizeof(*j->labels.v));
	if (j->labels.v == NULL) {
		kjob_free(j);
		return -ENOMEM;
	}
	for (size_t i = 0; i < labels->n; i++) {
		j->labels.v[i].key = strdup(labels->v[i].key);
		j->labels.v[i].val = strdup(labels->v[i].val);
		j->labels.n++;
		if (j->labels.v[i].key == NULL || j->labels.v[i].val == NULL) {
			kjob_free(j);
			return -ENOMEM;
		}
	}
	if (coord_worker_submit(x->w, kjob_run, j) < 0) {
		kjob_free(j);
		return -EAGAIN;
	}
	return 0;
}

int
coord_kexec_verify(struct coord_kexec *x, const struct coord_plan *p,
    int64_t deadline_mono, coord_agents_done_fn done, void *arg)
{
	struct kjob *j = kjob_new(x, p, done, arg);

	if (j == NULL)
		return -ENOMEM;
	j->verify = true;
	j->deadline_mono = deadline_mono;
	if (coord_worker_submit(x->polls, kjob_run, j) < 0) {
		kjob_free(j);
		return -EAGAIN;
	}
	return 0;
}
