// SPDX-License-Identifier: MIT
// coord_k8s: Kubernetes config, rollout state, verification, other
// controllers and Events for the coordinator (see coord_k8s.h).
#include "coord_k8s.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "cm_log.h"
#include "cm_time.h"

// ---------------------------------------------------------------------
// Config

const char *const coord_k8s_default_markers[] = {
	"kustomize.toolkit.fluxcd.io/name",
	"helm.toolkit.fluxcd.io/name",
	"argocd.argoproj.io/tracking-id",
	"argocd.argoproj.io/instance",
};
const size_t coord_k8s_n_default_markers =
    sizeof(coord_k8s_default_markers) / sizeof(coord_k8s_default_markers[0]);

static const char *const default_resources[] = { "configmaps" };

static const char *const gitops_policies[] = { "warn", "refuse", NULL };
static const char *const bounds_policies[] = { "refuse", "clamp", NULL };
static const char *const hpa_policies[] = { "refuse", "adjust", NULL };

#define OFF(m) offsetof(struct coord_k8s_conf, m)

const struct cm_conf_field coord_k8s_fields[] = {
	{ .key = "client", .type = CM_CONF_STRUCT, .off = OFF(client),
	  .sub = cm_k8s_fields, .help = "API server, credentials, rate limit, "
	  "retries" },
	{ .key = "gitops_detect", .type = CM_CONF_BOOL, .off = OFF(gitops_detect),
	  .def = "true", .help = "look for GitOps ownership markers" },
	{ .key = "gitops_markers", .type = CM_CONF_STRLIST,
	  .off = OFF(gitops_markers), .help = "label/annotation keys meaning "
	  "\"a GitOps tool owns this\"; empty = Flux and Argo CD defaults" },
	{ .key = "gitops_restart", .type = CM_CONF_ENUM,
	  .off = OFF(gitops_restart), .def = "warn", .choices = gitops_policies,
	  .help = "restart of a GitOps-managed target: warn or refuse" },
	{ .key = "gitops_change", .type = CM_CONF_ENUM,
	  .off = OFF(gitops_change), .def = "refuse", .choices = gitops_policies,
	  .help = "rollback/scale/traffic/config of a GitOps-managed target" },
	{ .key = "scale_min", .type = CM_CONF_INT, .off = OFF(scale_min),
	  .def = "1", .min = 0, .max = 100000, .help = "lowest replica count" },
	{ .key = "scale_max", .type = CM_CONF_INT, .off = OFF(scale_max),
	  .def = "10", .min = 0, .max = 100000, .help = "highest replica count" },
	{ .key = "scale_bounds", .type = CM_CONF_ENUM, .off = OFF(scale_bounds),
	  .def = "refuse", .choices = bounds_policies,
	  .help = "a target outside the bounds: refuse or clamp" },
	{ .key = "hpa", .type = CM_CONF_ENUM, .off = OFF(hpa), .def = "adjust",
	  .choices = hpa_policies,
	  .help = "scaling an HPA target: refuse, or adjust the HPA's bounds" },
	{ .key = "hpa_raise_max", .type = CM_CONF_BOOL, .off = OFF(hpa_raise_max),
	  .def = "false", .help = "allow raising an HPA's maxReplicas" },
	{ .key = "hpa_max_replicas", .type = CM_CONF_INT,
	  .off = OFF(hpa_max_replicas), .def = "20", .min = 1, .max = 100000,
	  .help = "ceiling for a raised maxReplicas" },
	{ .key = "config_resources", .type = CM_CONF_STRLIST,
	  .off = OFF(config_resources), .help = "resources adjust_config may "
	  "patch (plurals); empty = configmaps" },
	{ .key = "job_template", .type = CM_CONF_STR, .off = OFF(job_template),
	  .def = "", .help = "Job template file (JSON or YAML) for run_job" },
	{ .key = "job_timeout", .type = CM_CONF_DURATION,
	  .off = OFF(job_timeout_ms), .def = "10m", .min = 1000,
	  .max = 86400000, .help = "how long run_job waits for the Job" },
	{ .key = "job_poll", .type = CM_CONF_DURATION, .off = OFF(job_poll_ms),
	  .def = "1s", .min = 10, .max = 600000, .help = "first Job poll "
	  "interval (grows x1.5)" },
	{ .key = "job_poll_max", .type = CM_CONF_DURATION,
	  .off = OFF(job_poll_max_ms), .def = "10s", .min = 10, .max = 600000,
	  .help = "longest Job poll interval" },
	{ .key = "conflict_tries", .type = CM_CONF_INT, .off = OFF(conflict_tries),
	  .def = "3", .min = 1, .max = 20,
	  .help = "re-read and re-apply rounds when a write races" },
	{ .key = "event_component", .type = CM_CONF_STR,
	  .off = OFF(event_component), .def = "reflex",
	  .help = "source.component of the Events reflex creates" },
	{ .key = NULL },
};

static const struct {
	const char *plural;
	const char *api;
} resources[] = {
	{ "configmaps", "v1" },
	{ "services", "v1" },
	{ "deployments", "apps/v1" },
	{ "statefulsets", "apps/v1" },
	{ "daemonsets", "apps/v1" },
	{ "horizontalpodautoscalers", "autoscaling/v2" },
	{ "poddisruptionbudgets", "policy/v1" },
	{ "ingresses", "networking.k8s.io/v1" },
	{ "cronjobs", "batch/v1" },
};

const char *
coord_k8s_resource_api(const char *plural)
{
	size_t i;

	for (i = 0; plural != NULL && i < sizeof(resources) /
	    sizeof(resources[0]); i++)
		if (strcmp(resources[i].plural, plural) == 0)
			return resources[i].api;
	return NULL;
}

int
coord_k8s_conf_finish(struct coord_k8s_conf *c, const char *name, char *err,
    size_t errlen)
{
	size_t i;

	if (c->gitops_markers.n > 0) {
		c->markers = (const char *const *)c->gitops_markers.v;
		c->n_markers = c->gitops_markers.n;
	} else {
		c->markers = coord_k8s_default_markers;
		c->n_markers = coord_k8s_n_default_markers;
	}
	for (i = 0; i < c->n_markers; i++)
		if (!cm_k8s_qualified_name_valid(c->markers[i]))
			return cm_conf_errf(err, errlen, name, 0,
			    "kubernetes.gitops_markers", "\"%s\" is not a "
			    "label or annotation key", c->markers[i]);
	if (c->config_resources.n > 0) {
		c->resources = (const char *const *)c->config_resources.v;
		c->n_resources = c->config_resources.n;
	} else {
		c->resources = default_resources;
		c->n_resources = 1;
	}
	for (i = 0; i < c->n_resources; i++)
		if (coord_k8s_resource_api(c->resources[i]) == NULL)
			return cm_conf_errf(err, errlen, name, 0,
			    "kubernetes.config_resources", "\"%s\" is not a "
			    "resource adjust_config knows", c->resources[i]);
	if (c->scale_min > c->scale_max)
		return cm_conf_errf(err, errlen, name, 0, "kubernetes.scale_min",
		    "%lld is above scale_max %lld", (long long)c->scale_min,
		    (long long)c->scale_max);
	if (c->job_poll_ms > c->job_poll_max_ms)
		return cm_conf_errf(err, errlen, name, 0, "kubernetes.job_poll",
		    "above job_poll_max");
	if (c->event_component == NULL || c->event_component[0] == '\0' ||
	    strlen(c->event_component) > 128)
		return cm_conf_errf(err, errlen, name, 0,
		    "kubernetes.event_component", "must be 1..128 bytes");
	if (c->job_template != NULL && c->job_template[0] != '\0') {
		char why[384];
		cJSON *j = NULL;

		if (coord_k8s_load_object(c->job_template, &j, why,
		    sizeof(why)) < 0)
			return cm_conf_errf(err, errlen, name, 0,
			    "kubernetes.job_template", "%s", why);
		if (cm_k8s_at(j, "spec", "template", "spec", "containers",
		    NULL) == NULL) {
			cJSON_Delete(j);
			return cm_conf_errf(err, errlen, name, 0,
			    "kubernetes.job_template", "%s: not a Job (no "
			    "spec.template.spec.containers)", c->job_template);
		}
		cJSON_Delete(j);
	}
	return 0;
}

void
coord_k8s_conf_default(struct coord_k8s_conf *c)
{
	char err[256];

	memset(c, 0, sizeof(*c));
	cm_k8s_settings_default(&c->client);
	c->gitops_detect = true;
	c->gitops_restart = COORD_K8S_GITOPS_WARN;
	c->gitops_change = COORD_K8S_GITOPS_REFUSE;
	c->scale_min = 1;
	c->scale_max = 10;
	c->scale_bounds = COORD_K8S_BOUNDS_REFUSE;
	c->hpa = COORD_K8S_HPA_ADJUST;
	c->hpa_raise_max = false;
	c->hpa_max_replicas = 20;
	c->job_template = (char *)"";
	c->job_timeout_ms = 600000;
	c->job_poll_ms = 1000;
	c->job_poll_max_ms = 10000;
	c->conflict_tries = 3;
	c->event_component = (char *)"reflex";
	// The defaults always pass the checks.
	if (coord_k8s_conf_finish(c, "defaults", err, sizeof(err)) < 0)
		cm_err("k8s.conf", "err=%s", cm_q(err));
}

// ---------------------------------------------------------------------
// Objects from files (JSON or YAML)

#define YAML_VISITS_MAX 100000
#define YAML_DEPTH_MAX 64

struct y2j {
	yaml_document_t *doc;
	long visits;
	const char *path;
	char *err;
	size_t errlen;
};

static bool
plain_number(const char *s, bool *ret_int)
{
	char *end;

	if (s[0] == '\0')
		return false;
	errno = 0;
	(void)strtod(s, &end);
	if (*end != '\0' || errno != 0 || strpbrk(s, "xXnNiI") != NULL)
		return false;
	*ret_int = strpbrk(s, ".eE") == NULL;
	return true;
}

static cJSON *
y2j_node(struct y2j *y, yaml_node_t *n, int depth)
{
	cJSON *out = NULL;

	if (n == NULL || ++y->visits > YAML_VISITS_MAX || depth > YAML_DEPTH_MAX) {
		snprintf(y->err, y->errlen, "%s:%zu: too large or too deep",
		    y->path, n != NULL ? n->start_mark.line + 1 : 0);
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *s = (const char *)n->data.scalar.value;
		bool is_int;

		if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			return cJSON_CreateString(s);
		if (s[0] == '\0' || strcmp(s, "~") == 0 ||
		    strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
		    strcmp(s, "NULL") == 0)
			return cJSON_CreateNull();
		if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
		    strcmp(s, "TRUE") == 0)
			return cJSON_CreateTrue();
		if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
		    strcmp(s, "FALSE") == 0)
			return cJSON_CreateFalse();
		if (plain_number(s, &is_int))
			return cJSON_CreateNumber(strtod(s, NULL));
		return cJSON_CreateString(s);
	}
	case YAML_SEQUENCE_NODE: {
		yaml_node_item_t *it;

		out = cJSON_CreateArray();
		for (it = n->data.sequence.items.start;
		    out != NULL && it < n->data.sequence.items.top; it++) {
			cJSON *e = y2j_node(y, yaml_document_get_node(y->doc,
			    *it), depth + 1);

			if (e == NULL) {
				cJSON_Delete(out);
				return NULL;
			}
			cJSON_AddItemToArray(out, e);
		}
		return out;
	}
	case YAML_MAPPING_NODE: {
		yaml_node_pair_t *p;

		out = cJSON_CreateObject();
		for (p = n->data.mapping.pairs.start;
		    out != NULL && p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
			const char *key;
			cJSON *v;

			if (kn == NULL || kn->type != YAML_SCALAR_NODE) {
				snprintf(y->err, y->errlen, "%s:%zu: map keys "
				    "must be strings", y->path,
				    n->start_mark.line + 1);
				cJSON_Delete(out);
				return NULL;
			}
			key = (const char *)kn->data.scalar.value;
			if (cJSON_GetObjectItemCaseSensitive(out, key) != NULL) {
				snprintf(y->err, y->errlen, "%s:%zu: key \"%.64s\" "
				    "given twice", y->path,
				    kn->start_mark.line + 1, key);
				cJSON_Delete(out);
				return NULL;
			}
			v = y2j_node(y, yaml_document_get_node(y->doc, p->value),
			    depth + 1);
			if (v == NULL) {
				cJSON_Delete(out);
				return NULL;
			}
			cJSON_AddItemToObject(out, key, v);
		}
		return out;
	}
	default:
		snprintf(y->err, y->errlen, "%s: empty document", y->path);
		return NULL;
	}
}

int
coord_k8s_load_object(const char *path, cJSON **ret, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct stat st;
	char *text = NULL, why[96];
	size_t len, i, line = 0;
	FILE *f;
	int rv = -EINVAL;

	*ret = NULL;
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -ENOENT;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size > 1024 * 1024) {
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		fclose(f);
		return -EINVAL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(text, 1, (size_t)st.st_size, f);
	fclose(f);
	text[len] = '\0';
	for (i = 0; i < len && strchr(" \t\r\n", text[i]) != NULL; i++)
		;
	if (i < len && text[i] == '{') {
		const char *end = NULL;

		*ret = cJSON_ParseWithLengthOpts(text, len, &end, 0);
		if (*ret == NULL) {
			const char *p;

			line = 1;
			for (p = text; end != NULL && p < end; p++)
				line += *p == '\n';
			snprintf(err, errlen, "%s:%zu: not valid JSON", path,
			    line);
		} else {
			rv = 0;
		}
		free(text);
		return rv;
	}
	rv = cm_yaml_precheck(text, len, YAML_DEPTH_MAX, &line, why,
	    sizeof(why));
	if (rv == -EINVAL || rv == -E2BIG)
		snprintf(err, errlen, "%s:%zu: %s", path, line, why);
	if (rv < 0 || !yaml_parser_initialize(&parser)) {
		free(text);
		return rv < 0 ? rv : -ENOMEM;
	}
	rv = -EINVAL;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu: YAML: %s", path,
		    parser.problem_mark.line + 1,
		    parser.problem ? parser.problem : "syntax error");
	} else {
		struct y2j y = { .doc = &doc, .path = path, .err = err,
			.errlen = errlen };
		yaml_node_t *root = yaml_document_get_root_node(&doc);

		if (root == NULL || root->type != YAML_MAPPING_NODE)
			snprintf(err, errlen, "%s: expected an object", path);
		else
			*ret = y2j_node(&y, root, 0);
		if (*ret != NULL)
			rv = 0;
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	free(text);
	return rv;
}

// ---------------------------------------------------------------------
// Workloads

static const struct {
	const char *names[5];
	const char *kind;
	const char *plural;
} kinds[] = {
	[COORD_K8S_DEPLOYMENT] = { { "Deployment", "deployment", "deployments",
		"deploy", NULL }, "Deployment", "deployments" },
	[COORD_K8S_STATEFULSET] = { { "StatefulSet", "statefulset",
		"statefulsets", "sts", NULL }, "StatefulSet", "statefulsets" },
	[COORD_K8S_DAEMONSET] = { { "DaemonSet", "daemonset", "daemonsets",
		"ds", NULL }, "DaemonSet", "daemonsets" },
};

int
coord_k8s_kind_parse(const char *s, enum coord_k8s_kind *ret)
{
	size_t i, j;

	for (i = 0; s != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		for (j = 0; kinds[i].names[j] != NULL; j++)
			if (strcmp(s, kinds[i].names[j]) == 0) {
				*ret = (enum coord_k8s_kind)i;
				return 0;
			}
	return -EINVAL;
}

const char *
coord_k8s_kind_name(enum coord_k8s_kind k)
{
	return (unsigned)k < 3 ? kinds[k].kind : "?";
}

const char *
coord_k8s_kind_plural(enum coord_k8s_kind k)
{
	return (unsigned)k < 3 ? kinds[k].plural : "?";
}

int
coord_k8s_ref_check(const struct coord_k8s_ref *t)
{
	if (t == NULL || (unsigned)t->kind > COORD_K8S_DAEMONSET ||
	    !cm_k8s_name_valid(CM_K8S_NAME_LABEL, t->ns) ||
	    !cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, t->name))
		return -EINVAL;
	return 0;
}

int
coord_k8s_ref_path(const struct coord_k8s_ref *t, const char *sub, char *buf,
    size_t n)
{
	if (coord_k8s_ref_check(t) < 0)
		return -EINVAL;
	return cm_k8s_path(buf, n, "apps/v1", t->ns, kinds[t->kind].plural,
	    t->name, sub);
}

struct coord_k8s_obj
coord_k8s_ref_obj(const struct coord_k8s_ref *t, const char *uid)
{
	return (struct coord_k8s_obj){ .api_version = "apps/v1",
		.kind = coord_k8s_kind_name(t->kind), .ns = t->ns,
		.name = t->name, .uid = uid };
}

// ---------------------------------------------------------------------
// Rollout state

static const char *
s_or(const char *s, const char *def)
{
	return s != NULL ? s : def;
}

static int64_t
num(const cJSON *o, int64_t def, const char *a, const char *b)
{
	int64_t v;

	return cm_k8s_int(o, &v, a, b, NULL) == 0 ? v : def;
}

static bool
condition(const cJSON *obj, const char *type, const char **ret_status,
    const char **ret_reason)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cm_k8s_at(obj, "status", "conditions", NULL)) {
		const char *t = cm_k8s_str(c, "type", NULL);

		if (t != NULL && strcmp(t, type) == 0) {
			*ret_status = cm_k8s_str(c, "status", NULL);
			*ret_reason = cm_k8s_str(c, "reason", NULL);
			return true;
		}
	}
	return false;
}

static void
rollout_deployment(const cJSON *o, struct coord_k8s_rollout *r)
{
	const char *st = NULL, *why = NULL;

	r->desired = num(o, 1, "spec", "replicas");
	r->current = num(o, 0, "status", "replicas");
	r->updated = num(o, 0, "status", "updatedReplicas");
	r->ready = num(o, 0, "status", "readyReplicas");
	r->available = num(o, 0, "status", "availableReplicas");
	r->paused = cm_k8s_bool(o, false, "spec", "paused", NULL);
	if (condition(o, "Progressing", &st, &why) && why != NULL &&
	    strcmp(why, "ProgressDeadlineExceeded") == 0)
		r->failed = true;
	if (r->generation > r->observed)
		snprintf(r->reason, sizeof(r->reason), "waiting for the "
		    "deployment spec update to be observed (generation %lld, "
		    "observed %lld)", (long long)r->generation,
		    (long long)r->observed);
	else if (r->failed)
		snprintf(r->reason, sizeof(r->reason), "deployment exceeded "
		    "its progress deadline");
	else if (r->updated < r->desired)
		snprintf(r->reason, sizeof(r->reason), "%lld out of %lld new "
		    "replicas have been updated", (long long)r->updated,
		    (long long)r->desired);
	else if (r->current > r->updated)
		snprintf(r->reason, sizeof(r->reason), "%lld old replicas are "
		    "pending termination", (long long)(r->current - r->updated));
	else if (r->available < r->updated)
		snprintf(r->reason, sizeof(r->reason), "%lld of %lld updated "
		    "replicas are available", (long long)r->available,
		    (long long)r->updated);
	else
		r->done = true;
	if (r->done)
		snprintf(r->reason, sizeof(r->reason), "rollout complete: "
		    "%lld of %lld updated replicas available",
		    (long long)r->available, (long long)r->desired);
}

static void
rollout_statefulset(const cJSON *o, struct coord_k8s_rollout *r)
{
	const char *strat = cm_k8s_str(o, "spec", "updateStrategy", "type", NULL);
	const char *cur = cm_k8s_str(o, "status", "currentRevision", NULL);
	const char *upd = cm_k8s_str(o, "status", "updateRevision", NULL);
	int64_t part = 0;
	bool rolling = strat == NULL || strcmp(strat, "RollingUpdate") == 0;

	r->desired = num(o, 1, "spec", "replicas");
	r->current = num(o, 0, "status", "replicas");
	r->updated = num(o, 0, "status", "updatedReplicas");
	r->ready = num(o, 0, "status", "readyReplicas");
	r->available = num(o, r->ready, "status", "availableReplicas");
	(void)cm_k8s_int(o, &part, "spec", "updateStrategy", "rollingUpdate",
	    "partition", NULL);
	if (r->generation > r->observed)
		snprintf(r->reason, sizeof(r->reason), "waiting for the "
		    "statefulset spec update to be observed");
	else if (r->ready < r->desired)
		snprintf(r->reason, sizeof(r->reason), "waiting for %lld pods "
		    "to be ready", (long long)(r->desired - r->ready));
	else if (rolling && part > 0 && r->updated < r->desired - part)
		snprintf(r->reason, sizeof(r->reason), "waiting for partitioned "
		    "roll out to finish: %lld out of %lld new pods have been "
		    "updated", (long long)r->updated,
		    (long long)(r->desired - part));
	else if (rolling && part <= 0 && cur != NULL && upd != NULL &&
	    strcmp(cur, upd) != 0)
		snprintf(r->reason, sizeof(r->reason), "waiting for statefulset "
		    "rolling update to complete %lld pods at revision %s",
		    (long long)r->updated, upd);
	else
		r->done = true;
	if (r->done)
		snprintf(r->reason, sizeof(r->reason), "rollout complete: %lld "
		    "of %lld pods ready%s", (long long)r->ready,
		    (long long)r->desired, rolling ? "" :
		    " (updateStrategy OnDelete: pods change only when deleted)");
}

static void
rollout_daemonset(const cJSON *o, struct coord_k8s_rollout *r)
{
	r->desired = num(o, 0, "status", "desiredNumberScheduled");
	r->current = num(o, 0, "status", "currentNumberScheduled");
	r->updated = num(o, 0, "status", "updatedNumberScheduled");
	r->ready = num(o, 0, "status", "numberReady");
	r->available = num(o, 0, "status", "numberAvailable");
	if (r->generation > r->observed)
		snprintf(r->reason, sizeof(r->reason), "waiting for the "
		    "daemon set spec update to be observed");
	else if (r->updated < r->desired)
		snprintf(r->reason, sizeof(r->reason), "%lld out of %lld new pods "
		    "have been updated", (long long)r->updated,
		    (long long)r->desired);
	else if (r->available < r->desired)
		snprintf(r->reason, sizeof(r->reason), "%lld of %lld updated pods "
		    "are available", (long long)r->available,
		    (long long)r->desired);
	else
		r->done = true;
	if (r->done)
		snprintf(r->reason, sizeof(r->reason), "rollout complete: %lld "
		    "of %lld pods available", (long long)r->available,
		    (long long)r->desired);
}

void
coord_k8s_rollout_of(enum coord_k8s_kind kind, const cJSON *obj,
    struct coord_k8s_rollout *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->generation = num(obj, 0, "metadata", "generation");
	ret->observed = num(obj, 0, "status", "observedGeneration");
	switch (kind) {
	case COORD_K8S_DEPLOYMENT:
		rollout_deployment(obj, ret);
		break;
	case COORD_K8S_STATEFULSET:
		rollout_statefulset(obj, ret);
		break;
	default:
		rollout_daemonset(obj, ret);
		break;
	}
	if (ret->paused && !ret->done) {
		char tmp[sizeof(ret->reason)];

		snprintf(tmp, sizeof(tmp), "paused: the rollout cannot progress "
		    "until resumed (%s)", ret->reason);
		memcpy(ret->reason, tmp, sizeof(tmp));
	}
	ret->in_progress = !ret->done && !ret->paused && !ret->failed;
}

static int
get_workload(struct cm_k8s *k, const struct coord_k8s_ref *t, cJSON **ret,
    char *err, size_t errlen)
{
	struct cm_k8s_resp r;
	char path[512];
	int rv;

	*ret = NULL;
	if (coord_k8s_ref_path(t, NULL, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "invalid namespace or name");
		return -EINVAL;
	}
	rv = cm_k8s_get(k, path, &r);
	if (rv == -ENOENT)
		snprintf(err, errlen, "%s %s/%s not found",
		    coord_k8s_kind_name(t->kind), t->ns, t->name);
	else if (rv < 0)
		snprintf(err, errlen, "%s", r.err);
	else if (!cJSON_IsObject(r.body)) {
		snprintf(err, errlen, "GET %s: empty reply", path);
		rv = -EBADMSG;
	} else {
		*ret = r.body;
		r.body = NULL;
	}
	cm_k8s_resp_clear(&r);
	return rv;
}

int
coord_k8s_rollout_status(struct cm_k8s *k, const struct coord_k8s_ref *t,
    struct coord_k8s_rollout *ret)
{
	cJSON *o;
	int rv;

	memset(ret, 0, sizeof(*ret));
	rv = get_workload(k, t, &o, ret->reason, sizeof(ret->reason));
	if (rv < 0)
		return rv;
	coord_k8s_rollout_of(t->kind, o, ret);
	cJSON_Delete(o);
	return 0;
}

// ---------------------------------------------------------------------
// Verification

static void
hhmmss(int64_t ms, char *buf, size_t n)
{
	char full[40];

	cm_time_format(ms, full, sizeof(full));
	// "2026-12-04T16:09:30.000Z" -> "16:09:30"
	snprintf(buf, n, "%.8s", strlen(full) >= 19 ? full + 11 : "?");
}

// Appends what is known about the nodes of stuck pods ("node-c Ready
// Unknown since 16:03:50, last heartbeat 16:03:10"), each node once.
static void
node_report(struct cm_k8s *k, char nodes[][254], size_t n, char *buf,
    size_t bn)
{
	size_t i, o = strlen(buf);

	for (i = 0; i < n && o < bn; i++) {
		struct cm_k8s_resp r;
		const cJSON *c;
		char path[512];

		if (cm_k8s_path(path, sizeof(path), "v1", NULL, "nodes",
		    nodes[i], NULL) < 0)
			continue;
		if (cm_k8s_get(k, path, &r) == -ENOENT) {
			o += (size_t)snprintf(buf + o, bn - o, "; node %s is gone",
			    nodes[i]);
		} else {
			cJSON_ArrayForEach(c, cm_k8s_at(r.body, "status",
			    "conditions", NULL)) {
				const char *ty = cm_k8s_str(c, "type", NULL);
				const char *st = cm_k8s_str(c, "status", NULL);
				const char *since = cm_k8s_str(c,
				    "lastTransitionTime", NULL);
				const char *hb = cm_k8s_str(c,
				    "lastHeartbeatTime", NULL);
				char a[16] = "?", b[16] = "?";
				int64_t ms;

				if (ty == NULL || strcmp(ty, "Ready") != 0 ||
				    st == NULL || strcmp(st, "True") == 0)
					continue;
				if (since != NULL && cm_time_parse(since, &ms) == 0)
					hhmmss(ms, a, sizeof(a));
				if (hb != NULL && cm_time_parse(hb, &ms) == 0)
					hhmmss(ms, b, sizeof(b));
				o += (size_t)snprintf(buf + o, bn - o, "; node %s "
				    "Ready %s since %s, last heartbeat %s",
				    nodes[i], st, a, b);
				break;
			}
		}
		cm_k8s_resp_clear(&r);
	}
}

int
coord_k8s_verify(struct cm_k8s *k, const struct coord_k8s_ref *t,
    int64_t now_ms, struct coord_k8s_verify *ret)
{
	struct coord_k8s_rollout ro;
	struct cm_k8s_resp r = { 0 };
	const cJSON *p;
	char path[1024], sel[512], stuck[600] = "", nodes[4][254];
	size_t so = 0, nn = 0, i;
	cJSON *o = NULL;
	int64_t ready = 0;
	int rv;

	memset(ret, 0, sizeof(*ret));
	rv = get_workload(k, t, &o, ret->reason, sizeof(ret->reason));
	if (rv < 0)
		return rv;
	coord_k8s_rollout_of(t->kind, o, &ro);
	ret->desired = ro.desired;
	ret->paused = ro.paused;
	ret->failed = ro.failed;
	ret->ready = ro.ready;
	if (cm_k8s_selector_string(cm_k8s_at(o, "spec", "selector", NULL), sel,
	    sizeof(sel)) == 0 && sel[0] != '\0' &&
	    cm_k8s_path(path, sizeof(path), "v1", t->ns, "pods", NULL,
	    NULL) == 0 && cm_k8s_query_add(path, sizeof(path),
	    "labelSelector", sel) == 0 && cm_k8s_get(k, path, &r) == 0) {
		cJSON_ArrayForEach(p, cm_k8s_at(r.body, "items", NULL)) {
			const char *dts = cm_k8s_str(p, "metadata",
			    "deletionTimestamp", NULL);
			int64_t dt;

			if (dts == NULL) {
				ready += cm_k8s_pod_ready(p);
				continue;
			}
			ret->terminating++;
			if (cm_time_parse(dts, &dt) == 0 && dt < now_ms) {
				char when[16];
				const char *node = cm_k8s_str(p, "spec",
				    "nodeName", NULL);

				ret->stuck++;
				hhmmss(dt, when, sizeof(when));
				for (i = 0; node != NULL && i < nn; i++)
					if (strcmp(nodes[i], node) == 0)
						break;
				if (node != NULL && i == nn && nn < 4)
					snprintf(nodes[nn++], sizeof(nodes[0]),
					    "%s", node);
				if (so < sizeof(stuck))
					so += (size_t)snprintf(stuck + so,
					    sizeof(stuck) - so, "%s%s on %s "
					    "since %s", so ? ", " : "",
					    s_or(cm_k8s_str(p, "metadata",
					    "name", NULL), "?"), node ? node :
					    "?", when);
			}
		}
		// Ready pods that are not going away; the controller's own
		// count already leaves terminating pods out, so take the
		// smaller of the two.
		if (ready < ret->ready)
			ret->ready = ready;
	}
	cm_k8s_resp_clear(&r);
	node_report(k, nodes, nn, stuck, sizeof(stuck));
	ret->ok = ro.done && ret->ready >= ret->desired;
	snprintf(ret->reason, sizeof(ret->reason), "%s: %s; %lld of %lld "
	    "ready%s%s%s", ret->ok ? "verified" : ro.paused ? "paused" :
	    ro.failed ? "failed" : "not yet", ro.reason, (long long)ret->ready,
	    (long long)ret->desired, ret->stuck ? "; pods stuck Terminating: " :
	    "", stuck, ret->terminating > ret->stuck ?
	    "; terminating pods not counted" : "");
	cJSON_Delete(o);
	return 0;
}

// ---------------------------------------------------------------------
// HPA, GitOps, owners

static bool
targets(const cJSON *hpa, const struct coord_k8s_ref *t)
{
	const char *kind = cm_k8s_str(hpa, "spec", "scaleTargetRef", "kind",
	    NULL);
	const char *name = cm_k8s_str(hpa, "spec", "scaleTargetRef", "name",
	    NULL);
	const char *api = cm_k8s_str(hpa, "spec", "scaleTargetRef",
	    "apiVersion", NULL);

	if (kind == NULL || name == NULL ||
	    strcmp(kind, coord_k8s_kind_name(t->kind)) != 0 ||
	    strcmp(name, t->name) != 0)
		return false;
	return api == NULL || strncmp(api, "apps/", 5) == 0 ||
	    strncmp(api, "extensions/", 11) == 0;
}

static void
hpa_fill(const cJSON *h, const char *api, struct coord_k8s_hpa *ret)
{
	const char *st = NULL, *why = NULL;

	ret->found = true;
	snprintf(ret->name, sizeof(ret->name), "%s",
	    s_or(cm_k8s_str(h, "metadata", "name", NULL), ""));
	snprintf(ret->api, sizeof(ret->api), "%s", api);
	snprintf(ret->rv, sizeof(ret->rv), "%s",
	    cm_k8s_str(h, "metadata", "resourceVersion", NULL) ?
	    cm_k8s_str(h, "metadata", "resourceVersion", NULL) : "");
	ret->min = num(h, 1, "spec", "minReplicas");
	ret->max = num(h, 0, "spec", "maxReplicas");
	ret->current = num(h, 0, "status", "currentReplicas");
	ret->desired = num(h, 0, "status", "desiredReplicas");
	ret->at_max = ret->max > 0 && ret->current >= ret->max;
	if (condition(h, "ScalingLimited", &st, &why) && st != NULL &&
	    strcmp(st, "True") == 0 && why != NULL &&
	    strcmp(why, "TooManyReplicas") == 0)
		ret->at_max = true;
	if (condition(h, "ScalingActive", &st, &why) && st != NULL &&
	    strcmp(st, "False") == 0)
		ret->disabled = true;
}

int
coord_k8s_find_hpa(struct cm_k8s *k, const struct coord_k8s_ref *t,
    struct coord_k8s_hpa *ret)
{
	static const char *const apis[] = { "autoscaling/v2", "autoscaling/v1" };
	struct cm_k8s_resp r;
	const cJSON *h;
	char path[512];
	size_t i;
	int rv = -ENOENT;

	memset(ret, 0, sizeof(*ret));
	if (coord_k8s_ref_check(t) < 0)
		return -EINVAL;
	for (i = 0; i < 2 && rv == -ENOENT; i++) {
		if (cm_k8s_path(path, sizeof(path), apis[i], t->ns,
		    "horizontalpodautoscalers", NULL, NULL) < 0)
			return -EINVAL;
		rv = cm_k8s_get(k, path, &r);
		if (rv == 0) {
			cJSON_ArrayForEach(h, cm_k8s_at(r.body, "items", NULL))
				if (targets(h, t)) {
					hpa_fill(h, apis[i], ret);
					break;
				}
		} else if (rv != -ENOENT) {
			cm_warn("k8s.hpa", "target=%s/%s err=%s", t->ns, t->name,
			    cm_q(r.err));
		}
		cm_k8s_resp_clear(&r);
	}
	return rv;
}

void
coord_k8s_gitops_detect(const struct coord_k8s_conf *c, const cJSON *obj,
    struct coord_k8s_gitops *ret)
{
	static const char *const where[] = { "labels", "annotations" };
	size_t i, w;

	memset(ret, 0, sizeof(*ret));
	if (c == NULL || !c->gitops_detect)
		return;
	for (i = 0; i < c->n_markers && !ret->managed; i++) {
		for (w = 0; w < 2; w++) {
			const char *v = cm_k8s_str(obj, "metadata", where[w],
			    c->markers[i], NULL);

			if (v == NULL)
				continue;
			ret->managed = true;
			snprintf(ret->tool, sizeof(ret->tool), "%s",
			    strstr(c->markers[i], "fluxcd.io") ? "flux" :
			    strstr(c->markers[i], "argoproj.io") ? "argocd" :
			    "gitops");
			snprintf(ret->marker, sizeof(ret->marker), "%s %s=%.200s",
			    w == 0 ? "label" : "annotation", c->markers[i], v);
			break;
		}
	}
}

int
coord_k8s_owners(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, struct coord_k8s_owners *ret)
{
	cJSON *o;
	size_t n = 0;
	int rv;

	memset(ret, 0, sizeof(*ret));
	rv = get_workload(k, t, &o, ret->reason, sizeof(ret->reason));
	if (rv < 0)
		return rv;
	snprintf(ret->uid, sizeof(ret->uid), "%s",
	    cm_k8s_str(o, "metadata", "uid", NULL) ?
	    cm_k8s_str(o, "metadata", "uid", NULL) : "");
	coord_k8s_rollout_of(t->kind, o, &ret->rollout);
	coord_k8s_gitops_detect(c, o, &ret->gitops);
	cJSON_Delete(o);
	if (t->kind != COORD_K8S_DAEMONSET) {
		rv = coord_k8s_find_hpa(k, t, &ret->hpa);
		if (rv < 0 && rv != -ENOENT) {
			snprintf(ret->reason, sizeof(ret->reason), "cannot list "
			    "HPAs: %s", strerror(-rv));
			return rv;
		}
	}
	ret->busy = ret->rollout.in_progress;
	ret->reason[0] = '\0';
	if (ret->rollout.in_progress || ret->rollout.paused)
		n += (size_t)snprintf(ret->reason + n, sizeof(ret->reason) - n,
		    "%s%s", ret->rollout.paused ? "" : "rollout in progress: ",
		    ret->rollout.reason);
	if (ret->hpa.found && n < sizeof(ret->reason))
		n += (size_t)snprintf(ret->reason + n, sizeof(ret->reason) - n,
		    "%sHPA %s manages replicas (%lld..%lld, now %lld)",
		    n ? "; " : "", ret->hpa.name, (long long)ret->hpa.min,
		    (long long)ret->hpa.max, (long long)ret->hpa.current);
	if (ret->gitops.managed && n < sizeof(ret->reason))
		snprintf(ret->reason + n, sizeof(ret->reason) - n,
		    "%sGitOps-managed (%s: %s)", n ? "; " : "", ret->gitops.tool,
		    ret->gitops.marker);
	return 0;
}

// ---------------------------------------------------------------------
// Events

static bool
reason_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 128)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

// Copies at most n-1 bytes of s, cut at a UTF-8 character boundary.
static void
utf8_cut(char *dst, size_t n, const char *s)
{
	size_t len = strlen(s);

	if (len >= n) {
		len = n - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

static void
time_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
coord_k8s_event(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_obj *o, bool warning, const char *reason,
    const char *message)
{
	struct cm_k8s_resp r;
	struct timespec ts;
	char path[512], name[300], now[32], msg[1025], uid[64] = "";
	cJSON *ev = NULL, *md, *io, *src;
	enum coord_k8s_kind kind;
	int rv = -ENOMEM;

	if (o == NULL || o->api_version == NULL || o->kind == NULL ||
	    !cm_k8s_name_valid(CM_K8S_NAME_LABEL, o->ns) ||
	    !cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, o->name) ||
	    !reason_ok(reason) || message == NULL)
		return -EINVAL;
	if (o->uid != NULL && o->uid[0] != '\0') {
		snprintf(uid, sizeof(uid), "%s", o->uid);
	} else if (strcmp(o->api_version, "apps/v1") == 0 &&
	    coord_k8s_kind_parse(o->kind, &kind) == 0) {
		struct coord_k8s_ref t = { kind, o->ns, o->name };
		char err[64];
		cJSON *w;

		if (get_workload(k, &t, &w, err, sizeof(err)) == 0) {
			snprintf(uid, sizeof(uid), "%s",
			    cm_k8s_str(w, "metadata", "uid", NULL) ?
			    cm_k8s_str(w, "metadata", "uid", NULL) : "");
			cJSON_Delete(w);
		}
	}
	// client-go's recorder names events "<object>.<unix nanos in hex>".
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof(name), "%.200s.%llx", o->name,
	    (unsigned long long)ts.tv_sec * 1000000000ULL +
	    (unsigned long long)ts.tv_nsec);
	// A cut at 200 bytes may end in '.' or '-': keep the name valid.
	if (!cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, name))
		snprintf(name, sizeof(name), "reflex.%llx",
		    (unsigned long long)ts.tv_sec * 1000000000ULL +
		    (unsigned long long)ts.tv_nsec);
	time_now(now, sizeof(now));
	utf8_cut(msg, sizeof(msg), message);
	if (cm_k8s_path(path, sizeof(path), "v1", o->ns, "events", NULL,
	    NULL) < 0)
		return -EINVAL;
	ev = cJSON_CreateObject();
	if (ev == NULL)
		return -ENOMEM;
	cJSON_AddStringToObject(ev, "apiVersion", "v1");
	cJSON_AddStringToObject(ev, "kind", "Event");
	md = cJSON_AddObjectToObject(ev, "metadata");
	io = cJSON_AddObjectToObject(ev, "involvedObject");
	src = cJSON_AddObjectToObject(ev, "source");
	if (md == NULL || io == NULL || src == NULL)
		goto out;
	cJSON_AddStringToObject(md, "name", name);
	cJSON_AddStringToObject(md, "namespace", o->ns);
	cJSON_AddStringToObject(io, "apiVersion", o->api_version);
	cJSON_AddStringToObject(io, "kind", o->kind);
	cJSON_AddStringToObject(io, "name", o->name);
	cJSON_AddStringToObject(io, "namespace", o->ns);
	if (uid[0] != '\0')
		cJSON_AddStringToObject(io, "uid", uid);
	cJSON_AddStringToObject(ev, "reason", reason);
	cJSON_AddStringToObject(ev, "message", msg);
	cJSON_AddStringToObject(ev, "type", warning ? "Warning" : "Normal");
	cJSON_AddStringToObject(src, "component", c != NULL &&
	    c->event_component != NULL ? c->event_component : "reflex");
	cJSON_AddStringToObject(ev, "firstTimestamp", now);
	cJSON_AddStringToObject(ev, "lastTimestamp", now);
	cJSON_AddNumberToObject(ev, "count", 1);
	cJSON_AddStringToObject(ev, "reportingComponent", c != NULL &&
	    c->event_component != NULL ? c->event_component : "reflex");
	rv = cm_k8s_post(k, path, ev, &r);
	if (rv < 0)
		cm_warn("k8s.event", "object=%s/%s err=%s", o->ns, o->name,
		    cm_q(r.err));
	cm_k8s_resp_clear(&r);
out:
	cJSON_Delete(ev);
	return rv;
}
