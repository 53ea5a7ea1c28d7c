// SPDX-License-Identifier: MIT
// coord_k8s_actions: restart, rollback, scale, traffic switch, Job,
// config patch and revert against the Kubernetes API (see the header).
#include "coord_k8s_actions.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_log.h"
#include "cm_time.h"

#define REVISION_ANN "deployment.kubernetes.io/revision"
#define HASH_LABEL "pod-template-hash"
#define RESTARTED_AT "kubectl.kubernetes.io/restartedAt"

// ---------------------------------------------------------------------
// Results

void
coord_k8s_result_clear(struct coord_k8s_result *r)
{
	if (r == NULL)
		return;
	free(r->revert);
	memset(r, 0, sizeof(*r));
}

const char *
coord_k8s_outcome_name(enum coord_k8s_outcome o)
{
	switch (o) {
	case COORD_K8S_OK: return "ok";
	case COORD_K8S_REFUSED: return "refused";
	default: return "failed";
	}
}

static void
res_init(struct coord_k8s_result *r)
{
	memset(r, 0, sizeof(*r));
	r->outcome = COORD_K8S_FAILED;
	r->err = -EIO;
}

static void
vset(struct coord_k8s_result *r, const char *code, const char *fmt,
    va_list ap)
{
	snprintf(r->code, sizeof(r->code), "%s", code);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
}

static int __attribute__((format(printf, 3, 4)))
done(struct coord_k8s_result *r, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(r, code, fmt, ap);
	va_end(ap);
	r->outcome = COORD_K8S_OK;
	r->err = 0;
	return 0;
}

static int __attribute__((format(printf, 3, 4)))
refuse(struct coord_k8s_result *r, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(r, code, fmt, ap);
	va_end(ap);
	r->outcome = COORD_K8S_REFUSED;
	r->err = -ECANCELED;
	return -ECANCELED;
}

static int __attribute__((format(printf, 4, 5)))
fail(struct coord_k8s_result *r, int err, const char *code, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(r, code, fmt, ap);
	va_end(ap);
	r->outcome = COORD_K8S_FAILED;
	r->err = err < 0 ? err : -EIO;
	return r->err;
}

// Takes `rec` (a revert record) into the result as JSON text.
static void
set_revert(struct coord_k8s_result *r, cJSON *rec)
{
	free(r->revert);
	r->revert = rec != NULL ? cJSON_PrintUnformatted(rec) : NULL;
	cJSON_Delete(rec);
}

static const char *
s_or(const char *s, const char *def)
{
	return s != NULL ? s : def;
}

static void
set_uid(struct coord_k8s_result *r, const cJSON *obj)
{
	snprintf(r->uid, sizeof(r->uid), "%s",
	    s_or(cm_k8s_str(obj, "metadata", "uid", NULL), ""));
}

// ---------------------------------------------------------------------
// JSON helpers

static bool
empty_value(const cJSON *v)
{
	return v == NULL || cJSON_IsNull(v) ||
	    ((cJSON_IsObject(v) || cJSON_IsArray(v)) && v->child == NULL);
}

// Semantic equality as apimachinery's equality.Semantic sees two objects
// of one schema: nil, missing, {} and [] are alike.
static bool
sem_equal(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if (empty_value(a) || empty_value(b))
		return empty_value(a) && empty_value(b);
	if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
		cJSON_ArrayForEach(x, a)
			if (!sem_equal(x, cJSON_GetObjectItemCaseSensitive(b,
			    x->string)))
				return false;
		cJSON_ArrayForEach(y, b)
			if (cJSON_GetObjectItemCaseSensitive(a, y->string) ==
			    NULL && !empty_value(y))
				return false;
		return true;
	}
	if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
		if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
			return false;
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
			if (!sem_equal(x, y))
				return false;
		return true;
	}
	return cJSON_Compare(a, b, true);
}

// A copy of a pod template without the pod-template-hash label.
static cJSON *
template_unhashed(const cJSON *tmpl)
{
	cJSON *t = cJSON_Duplicate(tmpl, true), *labels;

	if (t == NULL)
		return NULL;
	labels = (cJSON *)cm_k8s_at(t, "metadata", "labels", NULL);
	if (labels != NULL) {
		cJSON_DeleteItemFromObjectCaseSensitive(labels, HASH_LABEL);
		if (labels->child == NULL)
			cJSON_DeleteItemFromObjectCaseSensitive(
			    (cJSON *)cm_k8s_at(t, "metadata", NULL), "labels");
	}
	return t;
}

static bool
templates_equal(const cJSON *a, const cJSON *b)
{
	cJSON *x = template_unhashed(a), *y = template_unhashed(b);
	bool eq = x != NULL && y != NULL && sem_equal(x, y);

	cJSON_Delete(x);
	cJSON_Delete(y);
	return eq;
}

// "img1,img2" of a pod template's containers.
static void
images(const cJSON *tmpl, char *buf, size_t n)
{
	const cJSON *c;
	size_t o = 0;

	buf[0] = '\0';
	cJSON_ArrayForEach(c, cm_k8s_at(tmpl, "spec", "containers", NULL))
		if (o < n)
			o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "," : "",
			    s_or(cm_k8s_str(c, "image", NULL), "?"));
}

static void
now_rfc3339(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
get_obj(struct cm_k8s *k, const char *path, cJSON **ret, char *err,
    size_t errlen, const char *what)
{
	struct cm_k8s_resp r;
	int rv;

	*ret = NULL;
	rv = cm_k8s_get(k, path, &r);
	if (rv == -ENOENT)
		snprintf(err, errlen, "%s not found", what);
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

static int
get_workload(struct cm_k8s *k, const struct coord_k8s_ref *t, cJSON **ret,
    char *err, size_t errlen)
{
	char path[512], what[320];

	if (coord_k8s_ref_path(t, NULL, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "invalid namespace or name");
		return -EINVAL;
	}
	snprintf(what, sizeof(what), "%s %s/%s", coord_k8s_kind_name(t->kind),
	    t->ns, t->name);
	return get_obj(k, path, ret, err, errlen, what);
}

static int
fail_get(struct coord_k8s_result *r, int rv, const char *err)
{
	return fail(r, rv, rv == -ENOENT ? "not-found" : rv == -EINVAL ?
	    "invalid" : "api", "%s", err);
}

// The GitOps check shared by the actions that change desired state.
// With policy warn the warning says `what` may be undone or repeated.
static bool
gitops_blocks(const struct coord_k8s_conf *c, const cJSON *obj, int policy,
    struct coord_k8s_result *r, const char *what)
{
	struct coord_k8s_gitops g;

	coord_k8s_gitops_detect(c, obj, &g);
	if (!g.managed)
		return false;
	if (policy == COORD_K8S_GITOPS_REFUSE) {
		refuse(r, "gitops", "GitOps-managed (%s: %s): change would be "
		    "reverted; %s left to the GitOps tool", g.tool, g.marker,
		    what);
		return true;
	}
	snprintf(r->warning, sizeof(r->warning), "GitOps-managed (%s: %s): "
	    "the next reconcile may undo or repeat this %s", g.tool, g.marker,
	    what);
	return false;
}

// ---------------------------------------------------------------------
// ReplicaSets of a Deployment

// The ReplicaSets selected by the Deployment's selector and controlled
// by its UID, as a new array (cJSON_Delete).
static int
owned_replicasets(struct cm_k8s *k, const cJSON *dep, cJSON **ret, char *err,
    size_t errlen)
{
	struct cm_k8s_resp r;
	const char *uid = cm_k8s_str(dep, "metadata", "uid", NULL);
	const char *ns = cm_k8s_str(dep, "metadata", "namespace", NULL);
	char sel[1024], path[1536];
	cJSON *out, *it, *next;
	int rv;

	*ret = NULL;
	if (uid == NULL || ns == NULL) {
		snprintf(err, errlen, "deployment has no uid or namespace");
		return -EINVAL;
	}
	rv = cm_k8s_selector_string(cm_k8s_at(dep, "spec", "selector", NULL),
	    sel, sizeof(sel));
	if (rv < 0 || sel[0] == '\0') {
		snprintf(err, errlen, "deployment selector is unusable");
		return -EINVAL;
	}
	if (cm_k8s_path(path, sizeof(path), "apps/v1", ns, "replicasets", NULL,
	    NULL) < 0 || cm_k8s_query_add(path, sizeof(path), "labelSelector",
	    sel) < 0) {
		snprintf(err, errlen, "selector too long");
		return -EINVAL;
	}
	rv = cm_k8s_get(k, path, &r);
	if (rv < 0) {
		snprintf(err, errlen, "%s", r.err);
		cm_k8s_resp_clear(&r);
		return rv;
	}
	out = cJSON_DetachItemFromObjectCaseSensitive(r.body, "items");
	cm_k8s_resp_clear(&r);
	if (out == NULL)
		out = cJSON_CreateArray();
	if (out == NULL || !cJSON_IsArray(out)) {
		cJSON_Delete(out);
		snprintf(err, errlen, "replicaset list without items");
		return -EBADMSG;
	}
	for (it = out->child; it != NULL; it = next) {
		const cJSON *ref = cm_k8s_controller_ref(it);
		const char *ruid = cm_k8s_str(ref, "uid", NULL);

		next = it->next;
		if (ruid == NULL || strcmp(ruid, uid) != 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(out, it));
	}
	*ret = out;
	return 0;
}

// Revision of a ReplicaSet: missing 0, unparsable -> -EINVAL (skipped).
static int
rs_revision(const cJSON *rs, int64_t *ret)
{
	const char *v = cm_k8s_str(rs, "metadata", "annotations", REVISION_ANN,
	    NULL);
	char *end;
	long long n;

	if (v == NULL) {
		*ret = 0;
		return 0;
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	if (v[0] == '\0' || *end != '\0' || errno != 0)
		return -EINVAL;
	*ret = n;
	return 0;
}

// kubectl's deploymentRevision(): the RS of `to` (> 0), or the second
// newest revision. NULL when there is none.
static const cJSON *
pick_revision(const cJSON *rss, int64_t to, int64_t *ret_rev)
{
	const cJSON *rs, *latest = NULL, *prev = NULL;
	int64_t latest_rev = -1, prev_rev = -1, v;

	cJSON_ArrayForEach(rs, rss) {
		if (rs_revision(rs, &v) < 0)
			continue;
		if (to > 0) {
			if (v == to) {
				*ret_rev = v;
				return rs;
			}
			continue;
		}
		if (latest_rev < v) {
			prev_rev = latest_rev;
			prev = latest;
			latest_rev = v;
			latest = rs;
		} else if (prev_rev < v) {
			prev_rev = v;
			prev = rs;
		}
	}
	*ret_rev = prev_rev;
	return to > 0 ? NULL : prev;
}

// For a paused Deployment: does its template differ from what runs? The
// running ReplicaSet is the one with the most pods among those whose
// template is not the Deployment's.
static void
drift_report(struct cm_k8s *k, const cJSON *dep, char *buf, size_t n)
{
	const cJSON *tmpl = cm_k8s_at(dep, "spec", "template", NULL), *rs;
	const cJSON *match = NULL, *running = NULL;
	cJSON *rss = NULL;
	char err[256], want[256], have[256];
	int64_t rev = 0, most = 0;

	buf[0] = '\0';
	if (owned_replicasets(k, dep, &rss, err, sizeof(err)) < 0) {
		snprintf(buf, n, "; template drift unknown: %s", err);
		return;
	}
	cJSON_ArrayForEach(rs, rss) {
		int64_t reps = 0;

		(void)cm_k8s_int(rs, &reps, "status", "replicas", NULL);
		if (templates_equal(cm_k8s_at(rs, "spec", "template", NULL),
		    tmpl)) {
			match = rs;
			continue;
		}
		if (reps > most) {
			most = reps;
			running = rs;
		}
	}
	images(tmpl, want, sizeof(want));
	if (running != NULL) {
		images(cm_k8s_at(running, "spec", "template", NULL), have,
		    sizeof(have));
		(void)rs_revision(running, &rev);
		snprintf(buf, n, "; pending template drift: template %s, "
		    "running ReplicaSet %s (revision %lld, %lld pods) %s; "
		    "resuming would start an unreviewed rollout, not resuming",
		    want, s_or(cm_k8s_str(running, "metadata", "name", NULL),
		    "?"), (long long)rev, (long long)most, have);
	} else if (match == NULL) {
		snprintf(buf, n, "; template %s has no ReplicaSet yet", want);
	}
	cJSON_Delete(rss);
}

// ---------------------------------------------------------------------
// restart

int
coord_k8s_restart(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	char path[512], err[512], now[32], drift[512];
	const char *kind = coord_k8s_kind_name(t->kind), *strat;
	cJSON *o = NULL, *patch = NULL, *ann;
	int64_t gen = 0;
	int rv;

	res_init(ret);
	rv = get_workload(k, t, &o, err, sizeof(err));
	if (rv < 0)
		return fail_get(ret, rv, err);
	set_uid(ret, o);
	if (gitops_blocks(c, o, c->gitops_restart, ret, "restart")) {
		snprintf(ret->reason + strlen(ret->reason),
		    sizeof(ret->reason) - strlen(ret->reason), " (a restart "
		    "would be followed by a second rollout when the reconcile "
		    "removes restartedAt)");
		rv = ret->err;
		goto out;
	}
	if (ret->warning[0] != '\0') {
		struct coord_k8s_gitops g;

		coord_k8s_gitops_detect(c, o, &g);
		snprintf(ret->warning, sizeof(ret->warning), "GitOps-managed "
		    "(%s: %s): the next reconcile may remove restartedAt and "
		    "roll the pods a second time; alerts from that rollout are "
		    "expected", g.tool, g.marker);
	}
	if (t->kind == COORD_K8S_DEPLOYMENT &&
	    cm_k8s_bool(o, false, "spec", "paused", NULL)) {
		drift_report(k, o, drift, sizeof(drift));
		rv = refuse(ret, "paused", "paused: can't restart paused "
		    "deployment %s/%s (run rollout resume first)%s", t->ns,
		    t->name, drift);
		goto out;
	}
	strat = cm_k8s_str(o, "spec", "updateStrategy", "type", NULL);
	if (t->kind != COORD_K8S_DEPLOYMENT && strat != NULL &&
	    strcmp(strat, "OnDelete") == 0) {
		rv = refuse(ret, "on-delete", "%s %s/%s uses updateStrategy "
		    "OnDelete: a template change restarts no pod", kind, t->ns,
		    t->name);
		goto out;
	}
	now_rfc3339(now, sizeof(now));
	patch = cJSON_CreateObject();
	ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(
	    cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "spec"),
	    "template"), "metadata"), "annotations");
	if (ann == NULL || cJSON_AddStringToObject(ann, RESTARTED_AT, now) ==
	    NULL) {
		rv = fail(ret, -ENOMEM, "api", "out of memory");
		goto out;
	}
	if (coord_k8s_ref_path(t, NULL, path, sizeof(path)) < 0) {
		rv = fail(ret, -EINVAL, "invalid", "invalid target");
		goto out;
	}
	rv = cm_k8s_patch(k, path, CM_K8S_BODY_STRATEGIC_PATCH, patch, &r);
	if (rv < 0) {
		rv = fail(ret, rv, rv == -ENOENT ? "not-found" : "api", "%s",
		    r.err);
		goto out;
	}
	ret->changed = true;
	(void)cm_k8s_int(r.body, &gen, "metadata", "generation", NULL);
	rv = done(ret, "restarted", "restarted %s %s/%s (restartedAt %s, "
	    "generation %lld)", kind, t->ns, t->name, now, (long long)gen);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(patch);
	cJSON_Delete(o);
	return rv;
}

// ---------------------------------------------------------------------
// rollback

static const char *const skip_annotations[] = {
	"kubectl.kubernetes.io/last-applied-configuration",
	"deployment.kubernetes.io/revision",
	"deployment.kubernetes.io/revision-history",
	"deployment.kubernetes.io/desired-replicas",
	"deployment.kubernetes.io/max-replicas",
	"deprecated.deployment.rollback.to",
};

static bool
skipped_annotation(const char *k)
{
	size_t i;

	for (i = 0; i < sizeof(skip_annotations) / sizeof(skip_annotations[0]);
	    i++)
		if (strcmp(k, skip_annotations[i]) == 0)
			return true;
	return false;
}

// The JSON patch of `kubectl rollout undo`, led by a resourceVersion test.
static cJSON *
rollback_patch(const cJSON *dep, const cJSON *rs)
{
	cJSON *ops = cJSON_CreateArray(), *op, *tmpl, *ann, *md;
	const cJSON *a;
	const char *rv = cm_k8s_str(dep, "metadata", "resourceVersion", NULL);
	size_t i;

	tmpl = template_unhashed(cm_k8s_at(rs, "spec", "template", NULL));
	ann = cJSON_CreateObject();
	if (ops == NULL || tmpl == NULL || ann == NULL || rv == NULL)
		goto fail;
	md = cJSON_GetObjectItemCaseSensitive(tmpl, "metadata");
	if (md == NULL)
		md = cJSON_AddObjectToObject(tmpl, "metadata");
	// The Go struct marshals a zero creationTimestamp as null.
	if (md == NULL || (cJSON_GetObjectItemCaseSensitive(md,
	    "creationTimestamp") == NULL &&
	    cJSON_AddNullToObject(md, "creationTimestamp") == NULL))
		goto fail;
	for (i = 0; i < sizeof(skip_annotations) / sizeof(skip_annotations[0]);
	    i++) {
		const char *v = cm_k8s_str(dep, "metadata", "annotations",
		    skip_annotations[i], NULL);

		if (v != NULL)
			cJSON_AddStringToObject(ann, skip_annotations[i], v);
	}
	cJSON_ArrayForEach(a, cm_k8s_at(rs, "metadata", "annotations", NULL))
		if (cJSON_IsString(a) && !skipped_annotation(a->string))
			cJSON_AddStringToObject(ann, a->string, a->valuestring);

	op = cJSON_CreateObject();
	cJSON_AddItemToArray(ops, op);
	cJSON_AddStringToObject(op, "op", "test");
	cJSON_AddStringToObject(op, "path", "/metadata/resourceVersion");
	cJSON_AddStringToObject(op, "value", rv);
	op = cJSON_CreateObject();
	cJSON_AddItemToArray(ops, op);
	cJSON_AddStringToObject(op, "op", "replace");
	cJSON_AddStringToObject(op, "path", "/spec/template");
	cJSON_AddItemToObject(op, "value", tmpl);
	tmpl = NULL;
	op = cJSON_CreateObject();
	cJSON_AddItemToArray(ops, op);
	cJSON_AddStringToObject(op, "op", "replace");
	cJSON_AddStringToObject(op, "path", "/metadata/annotations");
	cJSON_AddItemToObject(op, "value", ann);
	return ops;
fail:
	cJSON_Delete(ops);
	cJSON_Delete(tmpl);
	cJSON_Delete(ann);
	return NULL;
}

int
coord_k8s_rollback(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, int64_t to_revision,
    struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	char path[512], err[512], drift[512], from_img[256], to_img[256];
	cJSON *dep = NULL, *rss = NULL, *patch = NULL, *rec;
	const cJSON *rs;
	int64_t rev = 0, cur_rev = -1, replicas;
	int rv = -EIO, round;

	res_init(ret);
	if (t->kind != COORD_K8S_DEPLOYMENT)
		return refuse(ret, "unsupported", "rollback supports "
		    "Deployments only (not %s)", coord_k8s_kind_name(t->kind));
	if (coord_k8s_ref_path(t, NULL, path, sizeof(path)) < 0)
		return fail(ret, -EINVAL, "invalid", "invalid namespace or name");
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(dep);
		cJSON_Delete(rss);
		cJSON_Delete(patch);
		dep = rss = patch = NULL;
		cm_k8s_resp_clear(&r);
		rv = get_workload(k, t, &dep, err, sizeof(err));
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		set_uid(ret, dep);
		if (gitops_blocks(c, dep, c->gitops_change, ret, "rollback")) {
			rv = ret->err;
			goto out;
		}
		if (cm_k8s_bool(dep, false, "spec", "paused", NULL)) {
			drift_report(k, dep, drift, sizeof(drift));
			rv = refuse(ret, "paused", "paused: you cannot rollback a "
			    "paused deployment %s/%s; resume it first%s", t->ns,
			    t->name, drift);
			goto out;
		}
		rv = owned_replicasets(k, dep, &rss, err, sizeof(err));
		if (rv < 0) {
			rv = fail(ret, rv, "api", "%s", err);
			goto out;
		}
		rs = pick_revision(rss, to_revision, &rev);
		if (rs == NULL && to_revision > 0) {
			rv = refuse(ret, "no-revision", "rollback impossible: "
			    "unable to find specified revision %lld in history "
			    "of deployment %s/%s", (long long)to_revision, t->ns,
			    t->name);
			goto out;
		}
		if (rs == NULL) {
			int64_t lim = -1;

			(void)cm_k8s_int(dep, &lim, "spec",
			    "revisionHistoryLimit", NULL);
			rv = refuse(ret, "no-history", "rollback impossible: no "
			    "earlier ReplicaSet (revision history empty or "
			    "limit 0): no rollout history found for deployment "
			    "\"%s\" (%d owned ReplicaSet%s, revisionHistoryLimit "
			    "%lld)", t->name, cJSON_GetArraySize(rss),
			    cJSON_GetArraySize(rss) == 1 ? "" : "s",
			    (long long)lim);
			goto out;
		}
		{
			const char *cr = cm_k8s_str(dep, "metadata",
			    "annotations", REVISION_ANN, NULL);

			cur_rev = cr != NULL ? strtoll(cr, NULL, 10) : -1;
		}
		replicas = 1;
		(void)cm_k8s_int(dep, &replicas, "spec", "replicas", NULL);
		images(cm_k8s_at(dep, "spec", "template", NULL), from_img,
		    sizeof(from_img));
		images(cm_k8s_at(rs, "spec", "template", NULL), to_img,
		    sizeof(to_img));
		if (templates_equal(cm_k8s_at(rs, "spec", "template", NULL),
		    cm_k8s_at(dep, "spec", "template", NULL))) {
			rv = done(ret, "skipped", "skipped rollback (current "
			    "template already matches revision %lld)",
			    (long long)rev);
			goto out;
		}
		patch = rollback_patch(dep, rs);
		if (patch == NULL) {
			rv = fail(ret, -ENOMEM, "api", "cannot build the patch "
			    "(no resourceVersion?)");
			goto out;
		}
		rv = cm_k8s_patch(k, path, CM_K8S_BODY_JSON_PATCH, patch, &r);
		if (rv == 0)
			break;
		// A failed test (422) or a conflict: the Deployment changed
		// since it was read. Read it again and decide again.
		if (rv != -EINVAL && rv != -ESTALE) {
			rv = fail(ret, rv, rv == -ENOENT ? "not-found" : "api",
			    "%s", r.err);
			goto out;
		}
		cm_info("k8s.rollback.race", "target=%s/%s round=%d err=%s",
		    t->ns, t->name, round + 1, cm_q(r.err));
	}
	if (rv < 0) {
		rv = fail(ret, rv, "api", "deployment kept changing: %s", r.err);
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "rolled-back", "rolled back deployment %s/%s from "
	    "revision %lld to revision %lld (%s -> %s); replicas unchanged at "
	    "%lld: a rollback restores the pod template only", t->ns, t->name,
	    (long long)cur_rev, (long long)rev, from_img, to_img,
	    (long long)replicas);
	if (cur_rev > 0) {
		rec = cJSON_CreateObject();
		cJSON_AddStringToObject(rec, "op", "rollback");
		cJSON_AddStringToObject(rec, "ns", t->ns);
		cJSON_AddStringToObject(rec, "name", t->name);
		cJSON_AddNumberToObject(rec, "to_revision", (double)cur_rev);
		set_revert(ret, rec);
	}
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(patch);
	cJSON_Delete(rss);
	cJSON_Delete(dep);
	return rv;
}

// ---------------------------------------------------------------------
// scale

// Merge-patch body {"metadata":{"resourceVersion":rv},"spec":{...}}.
static cJSON *
guarded_merge(const char *rv, cJSON **ret_spec)
{
	cJSON *b = cJSON_CreateObject(), *md;

	md = cJSON_AddObjectToObject(b, "metadata");
	*ret_spec = cJSON_AddObjectToObject(b, "spec");
	if (md == NULL || *ret_spec == NULL || rv == NULL ||
	    cJSON_AddStringToObject(md, "resourceVersion", rv) == NULL) {
		cJSON_Delete(b);
		return NULL;
	}
	return b;
}

static int
scale_hpa(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, const struct coord_k8s_hpa *h, int64_t cur,
    int64_t target, const char *note, struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	const char *kind = coord_k8s_kind_name(t->kind);
	int64_t new_min = h->min, new_max = h->max;
	char path[512];
	cJSON *body, *spec, *rec;
	int rv;

	if (target <= 0)
		return refuse(ret, "hpa-zero", "HPA-managed: scaling %s %s/%s "
		    "to 0 would switch HPA %s off (ScalingActive=False) and it "
		    "would not come back on its own", kind, t->ns, t->name,
		    h->name);
	if (c->hpa == COORD_K8S_HPA_REFUSE)
		return refuse(ret, "hpa", "HPA-managed: HPA %s (%lld..%lld, now "
		    "%lld) would overwrite a manual scale of %s %s/%s to %lld "
		    "at its next sync; policy hpa=refuse", h->name,
		    (long long)h->min, (long long)h->max, (long long)h->current,
		    kind, t->ns, t->name, (long long)target);
	if (target > h->max) {
		if (!c->hpa_raise_max)
			return refuse(ret, "hpa-max", "HPA-managed, at "
			    "maxReplicas %lld: HPA %s keeps %s %s/%s within "
			    "%lld..%lld (now %lld); %lld wanted and raising "
			    "maxReplicas is off by policy", (long long)h->max,
			    h->name, kind, t->ns, t->name, (long long)h->min,
			    (long long)h->max, (long long)h->current,
			    (long long)target);
		if (target > c->hpa_max_replicas)
			return refuse(ret, "hpa-max", "HPA-managed, at "
			    "maxReplicas %lld: %lld wanted is above the policy "
			    "ceiling hpa_max_replicas %lld", (long long)h->max,
			    (long long)target, (long long)c->hpa_max_replicas);
		new_max = target;
		// An HPA held back by its ceiling scales up by itself once
		// the ceiling moves; one that is not needs the floor raised.
		if (!h->at_max && target > new_min)
			new_min = target;
	} else if (target > cur) {
		if (target > new_min)
			new_min = target;
	} else if (target < h->min) {
		new_min = target;
	}
	if (new_min == h->min && new_max == h->max)
		return done(ret, "noop", "HPA-managed: HPA %s (%lld..%lld, now "
		    "%lld) already decides %s %s/%s at %lld replicas; nothing to "
		    "change for %lld%s", h->name, (long long)h->min,
		    (long long)h->max, (long long)h->current, kind, t->ns,
		    t->name, (long long)cur, (long long)target, note);
	if (cm_k8s_path(path, sizeof(path), h->api, t->ns,
	    "horizontalpodautoscalers", h->name, NULL) < 0)
		return fail(ret, -EINVAL, "invalid", "HPA name %s unusable",
		    h->name);
	body = guarded_merge(h->rv, &spec);
	if (body == NULL)
		return fail(ret, -ENOMEM, "api", "out of memory");
	if (new_min != h->min)
		cJSON_AddNumberToObject(spec, "minReplicas", (double)new_min);
	if (new_max != h->max)
		cJSON_AddNumberToObject(spec, "maxReplicas", (double)new_max);
	rv = cm_k8s_patch(k, path, CM_K8S_BODY_MERGE_PATCH, body, &r);
	cJSON_Delete(body);
	if (rv < 0) {
		rv = rv == -ESTALE ? -ESTALE : fail(ret, rv, "api", "%s", r.err);
		cm_k8s_resp_clear(&r);
		return rv;
	}
	cm_k8s_resp_clear(&r);
	ret->changed = true;
	rv = done(ret, "hpa-adjusted", "HPA-managed: adjusted HPA %s of %s "
	    "%s/%s instead of its replicas: minReplicas %lld -> %lld, "
	    "maxReplicas %lld -> %lld (now %lld replicas, %lld wanted); the HPA "
	    "moves the replicas%s", h->name, kind, t->ns, t->name,
	    (long long)h->min, (long long)new_min, (long long)h->max,
	    (long long)new_max, (long long)cur, (long long)target, note);
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "op", "hpa");
	cJSON_AddStringToObject(rec, "api", h->api);
	cJSON_AddStringToObject(rec, "ns", t->ns);
	cJSON_AddStringToObject(rec, "name", h->name);
	cJSON_AddNumberToObject(rec, "min", (double)h->min);
	cJSON_AddNumberToObject(rec, "max", (double)h->max);
	cJSON_AddNumberToObject(rec, "set_min", (double)new_min);
	cJSON_AddNumberToObject(rec, "set_max", (double)new_max);
	set_revert(ret, rec);
	return rv;
}

int
coord_k8s_scale(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, enum coord_k8s_scale_mode mode, int64_t n,
    struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	struct coord_k8s_hpa hpa = { 0 };
	const char *kind = coord_k8s_kind_name(t->kind), *srv;
	char path[512], err[512], note[160];
	cJSON *o = NULL, *sc = NULL, *body, *spec, *rec;
	int64_t cur = 0, target = 0, want;
	int rv = -EIO, round;

	res_init(ret);
	if (t->kind == COORD_K8S_DAEMONSET)
		return refuse(ret, "no-scale", "DaemonSet %s/%s has no /scale: "
		    "it runs one pod per node", t->ns, t->name);
	if (coord_k8s_ref_path(t, "scale", path, sizeof(path)) < 0)
		return fail(ret, -EINVAL, "invalid", "invalid namespace or name");
	if (n < -1000000 || n > 1000000)
		return refuse(ret, "bounds", "replica count %lld out of range",
		    (long long)n);
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(o);
		cJSON_Delete(sc);
		o = sc = NULL;
		note[0] = '\0';
		cm_k8s_resp_clear(&r);
		rv = get_workload(k, t, &o, err, sizeof(err));
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		set_uid(ret, o);
		if (gitops_blocks(c, o, c->gitops_change, ret, "scale")) {
			rv = ret->err;
			goto out;
		}
		rv = get_obj(k, path, &sc, err, sizeof(err), "scale");
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		// spec.replicas is omitempty: absent means 0.
		cur = 0;
		(void)cm_k8s_int(sc, &cur, "spec", "replicas", NULL);
		want = target = mode == COORD_K8S_SCALE_TO ? n : cur + n;
		rv = coord_k8s_find_hpa(k, t, &hpa);
		if (rv < 0 && rv != -ENOENT) {
			rv = fail(ret, rv, "api", "cannot list HPAs: %s",
			    strerror(-rv));
			goto out;
		}
		if (hpa.found && want <= 0) {
			rv = scale_hpa(k, c, t, &hpa, cur, 0, "", ret);
			goto out;
		}
		if (target < c->scale_min || target > c->scale_max) {
			if (c->scale_bounds == COORD_K8S_BOUNDS_REFUSE) {
				rv = refuse(ret, "bounds", "%s %s/%s: %lld "
				    "replicas wanted (now %lld) is outside the "
				    "policy bounds %lld..%lld", kind, t->ns,
				    t->name, (long long)target, (long long)cur,
				    (long long)c->scale_min,
				    (long long)c->scale_max);
				goto out;
			}
			target = target < c->scale_min ? c->scale_min :
			    c->scale_max;
			snprintf(note, sizeof(note), " (clamped from %lld to "
			    "the policy bound %lld)", (long long)want,
			    (long long)target);
		}
		if (hpa.found) {
			rv = scale_hpa(k, c, t, &hpa, cur, target, note, ret);
			if (rv == -ESTALE)
				continue;
			goto out;
		}
		if (target == cur) {
			rv = done(ret, "noop", "%s %s/%s already has %lld "
			    "replicas%s", kind, t->ns, t->name, (long long)cur,
			    note);
			goto out;
		}
		srv = cm_k8s_str(sc, "metadata", "resourceVersion", NULL);
		body = guarded_merge(srv, &spec);
		if (body == NULL) {
			rv = fail(ret, -EBADMSG, "api", "scale without "
			    "resourceVersion");
			goto out;
		}
		cJSON_AddNumberToObject(spec, "replicas", (double)target);
		rv = cm_k8s_patch(k, path, CM_K8S_BODY_MERGE_PATCH, body, &r);
		cJSON_Delete(body);
		if (rv != -ESTALE)
			break;
	}
	if (rv < 0) {
		rv = fail(ret, rv, rv == -ENOENT ? "not-found" : "api", "%s",
		    r.err[0] ? r.err : "the object kept changing");
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "scaled", "scaled %s %s/%s from %lld to %lld "
	    "replicas%s", kind, t->ns, t->name, (long long)cur,
	    (long long)target, note);
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "op", "scale");
	cJSON_AddStringToObject(rec, "kind", kind);
	cJSON_AddStringToObject(rec, "ns", t->ns);
	cJSON_AddStringToObject(rec, "name", t->name);
	cJSON_AddNumberToObject(rec, "replicas", (double)cur);
	cJSON_AddNumberToObject(rec, "set", (double)target);
	set_revert(ret, rec);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(sc);
	cJSON_Delete(o);
	return rv;
}

// ---------------------------------------------------------------------
// switch_traffic

struct route_api {
	const char *api[2];
	const char *plural;
	const char *list;  // "http" / "rules"
	const char *dests; // "route" / "backendRefs"
	const char *kind;
	int64_t max_weight;
};

static const struct route_api route_apis[] = {
	[COORD_K8S_VIRTUALSERVICE] = { { "networking.istio.io/v1",
		"networking.istio.io/v1beta1" }, "virtualservices", "http",
		"route", "VirtualService", 100 },
	[COORD_K8S_HTTPROUTE] = { { "gateway.networking.k8s.io/v1",
		"gateway.networking.k8s.io/v1beta1" }, "httproutes", "rules",
		"backendRefs", "HTTPRoute", 1000000 },
};

// Identity of destination d: the JSON-pointer suffix and its value.
static const char *
dest_id(enum coord_k8s_route_kind kind, const cJSON *d, const char **ret_sub)
{
	const char *s;

	if (kind == COORD_K8S_HTTPROUTE) {
		*ret_sub = "name";
		return cm_k8s_str(d, "name", NULL);
	}
	s = cm_k8s_str(d, "destination", "subset", NULL);
	if (s != NULL && s[0] != '\0') {
		*ret_sub = "destination/subset";
		return s;
	}
	*ret_sub = "destination/host";
	return cm_k8s_str(d, "destination", "host", NULL);
}

static int64_t
dest_weight(enum coord_k8s_route_kind kind, const cJSON *d, int n_dests,
    bool *ret_has)
{
	int64_t w;

	*ret_has = cm_k8s_int(d, &w, "weight", NULL) == 0;
	if (*ret_has)
		return w;
	if (kind == COORD_K8S_HTTPROUTE)
		return 1;
	return n_dests == 1 ? 100 : 0;
}

static void
add_op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "op", op);
	cJSON_AddStringToObject(o, "path", path);
	if (value != NULL)
		cJSON_AddItemToObject(o, "value", value);
	cJSON_AddItemToArray(ops, o);
}

// Plans the weight changes of one route list into ops (a JSON patch) and
// rec (revert entries); text describes them. Returns 1 if the canary is
// in some route, 0 if in none, -ECANCELED (refused, ret filled).
static int
plan_traffic(const struct coord_k8s_traffic *t, const cJSON *obj, cJSON *ops,
    cJSON *rec, char *text, size_t tn, struct coord_k8s_result *ret)
{
	const struct route_api *ra = &route_apis[t->kind];
	const cJSON *routes = cm_k8s_at(obj, "spec", ra->list, NULL), *rt;
	size_t to = 0;
	int i = -1, found = 0;

	text[0] = '\0';
	cJSON_ArrayForEach(rt, routes) {
		const cJSON *dests = cm_k8s_at(rt, ra->dests, NULL), *d;
		int j = -1, ci = -1, si = -1, nd = cJSON_GetArraySize(dests);
		int64_t oc, os, nc, ns;
		bool hc, hs;
		const char *sub;
		char p[256];
		const cJSON *cd = NULL, *sd = NULL;

		i++;
		cJSON_ArrayForEach(d, dests) {
			const char *id = dest_id(t->kind, d, &sub);

			j++;
			if (id != NULL && strcmp(id, t->canary) == 0 && ci < 0) {
				ci = j;
				cd = d;
			} else if (id != NULL && t->stable != NULL &&
			    strcmp(id, t->stable) == 0 && si < 0) {
				si = j;
				sd = d;
			}
		}
		if (ci < 0)
			continue;
		found = 1;
		if (nd == 1)
			return refuse(ret, "single-destination", "%s %s/%s: "
			    "%s[%d] sends all its traffic to the canary %s; "
			    "there is nothing to switch to", ra->kind, t->ns,
			    t->name, ra->list, i, t->canary);
		if (t->stable != NULL && si < 0)
			return refuse(ret, "no-stable", "%s %s/%s: %s[%d] has "
			    "no destination %s", ra->kind, t->ns, t->name,
			    ra->list, i, t->stable);
		if (t->stable == NULL) {
			if (nd != 2)
				return refuse(ret, "ambiguous", "%s %s/%s: "
				    "%s[%d] has %d other destinations; name the "
				    "stable one", ra->kind, t->ns, t->name,
				    ra->list, i, nd - 1);
			si = ci == 0 ? 1 : 0;
			sd = cJSON_GetArrayItem(dests, si);
		}
		oc = dest_weight(t->kind, cd, nd, &hc);
		os = dest_weight(t->kind, sd, nd, &hs);
		nc = t->weight;
		ns = os + oc - nc;
		if (nc == oc)
			continue;
		if (ns < 0 || ns > ra->max_weight)
			return refuse(ret, "bad-weight", "%s %s/%s: %s[%d] "
			    "canary weight %lld -> %lld would leave the stable "
			    "destination %lld", ra->kind, t->ns, t->name,
			    ra->list, i, (long long)oc, (long long)nc,
			    (long long)ns);
		// Guard: each destination is still what was read, and so is
		// each weight that exists.
		{
			const char *cid = dest_id(t->kind, cd, &sub);
			char idp[256];
			cJSON *e;

			snprintf(idp, sizeof(idp), "/spec/%s/%d/%s/%d/%s",
			    ra->list, i, ra->dests, ci, sub);
			add_op(ops, "test", idp, cJSON_CreateString(cid));
			snprintf(p, sizeof(p), "/spec/%s/%d/%s/%d/weight",
			    ra->list, i, ra->dests, ci);
			if (hc)
				add_op(ops, "test", p, cJSON_CreateNumber(
				    (double)oc));
			add_op(ops, hc ? "replace" : "add", p,
			    cJSON_CreateNumber((double)nc));
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "id_path", idp);
			cJSON_AddStringToObject(e, "id", cid);
			cJSON_AddStringToObject(e, "path", p);
			cJSON_AddNumberToObject(e, "old", (double)oc);
			cJSON_AddBoolToObject(e, "had", hc);
			cJSON_AddNumberToObject(e, "new", (double)nc);
			cJSON_AddItemToArray(rec, e);

			cid = dest_id(t->kind, sd, &sub);
			snprintf(idp, sizeof(idp), "/spec/%s/%d/%s/%d/%s",
			    ra->list, i, ra->dests, si, sub);
			add_op(ops, "test", idp, cJSON_CreateString(s_or(cid,
			    "")));
			snprintf(p, sizeof(p), "/spec/%s/%d/%s/%d/weight",
			    ra->list, i, ra->dests, si);
			if (hs)
				add_op(ops, "test", p, cJSON_CreateNumber(
				    (double)os));
			add_op(ops, hs ? "replace" : "add", p,
			    cJSON_CreateNumber((double)ns));
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "id_path", idp);
			cJSON_AddStringToObject(e, "id", s_or(cid, ""));
			cJSON_AddStringToObject(e, "path", p);
			cJSON_AddNumberToObject(e, "old", (double)os);
			cJSON_AddBoolToObject(e, "had", hs);
			cJSON_AddNumberToObject(e, "new", (double)ns);
			cJSON_AddItemToArray(rec, e);
			if (to < tn)
				to += (size_t)snprintf(text + to, tn - to,
				    "%s%s[%d]: canary %s %lld -> %lld, stable "
				    "%s %lld -> %lld", to ? "; " : "",
				    ra->list, i, t->canary, (long long)oc,
				    (long long)nc, s_or(cid, "?"),
				    (long long)os, (long long)ns);
		}
	}
	return found;
}

// GETs a route object trying each served version; *ret_api says which.
static int
get_route(struct cm_k8s *k, enum coord_k8s_route_kind kind, const char *ns,
    const char *name, cJSON **ret, const char **ret_api, char *path,
    size_t pn, char *err, size_t errlen)
{
	const struct route_api *ra = &route_apis[kind];
	char what[320];
	int rv = -ENOENT, i;

	snprintf(what, sizeof(what), "%s %s/%s", ra->kind, ns, name);
	for (i = 0; i < 2 && rv == -ENOENT; i++) {
		if (cm_k8s_path(path, pn, ra->api[i], ns, ra->plural, name,
		    NULL) < 0) {
			snprintf(err, errlen, "invalid namespace or name");
			return -EINVAL;
		}
		rv = get_obj(k, path, ret, err, errlen, what);
		*ret_api = ra->api[i];
	}
	return rv;
}

static bool
id_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 253)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int
coord_k8s_switch_traffic(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_traffic *t, struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	const struct route_api *ra;
	char path[512], err[512], text[512];
	const char *api = NULL, *rv_s;
	cJSON *o = NULL, *ops = NULL, *ents = NULL, *rec;
	int rv = -EIO, round, found;

	res_init(ret);
	if (t == NULL || (unsigned)t->kind > COORD_K8S_HTTPROUTE ||
	    !id_ok(t->canary) || (t->stable != NULL && !id_ok(t->stable)))
		return fail(ret, -EINVAL, "invalid", "invalid traffic target");
	ra = &route_apis[t->kind];
	if (t->weight < 0 || t->weight > ra->max_weight)
		return refuse(ret, "bad-weight", "canary weight %lld is outside "
		    "0..%lld", (long long)t->weight, (long long)ra->max_weight);
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(o);
		cJSON_Delete(ops);
		cJSON_Delete(ents);
		o = NULL;
		ops = cJSON_CreateArray();
		ents = cJSON_CreateArray();
		cm_k8s_resp_clear(&r);
		rv = get_route(k, t->kind, t->ns, t->name, &o, &api, path,
		    sizeof(path), err, sizeof(err));
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		set_uid(ret, o);
		if (gitops_blocks(c, o, c->gitops_change, ret,
		    "traffic switch")) {
			rv = ret->err;
			goto out;
		}
		rv_s = cm_k8s_str(o, "metadata", "resourceVersion", NULL);
		if (rv_s == NULL || ops == NULL || ents == NULL) {
			rv = fail(ret, -EBADMSG, "api", "%s has no "
			    "resourceVersion", ra->kind);
			goto out;
		}
		add_op(ops, "test", "/metadata/resourceVersion",
		    cJSON_CreateString(rv_s));
		found = plan_traffic(t, o, ops, ents, text, sizeof(text), ret);
		if (found < 0) {
			rv = found;
			goto out;
		}
		if (found == 0) {
			rv = refuse(ret, "no-canary", "%s %s/%s has no route "
			    "to %s", ra->kind, t->ns, t->name, t->canary);
			goto out;
		}
		if (cJSON_GetArraySize(ents) == 0) {
			rv = done(ret, "noop", "%s %s/%s already gives the "
			    "canary %s weight %lld", ra->kind, t->ns, t->name,
			    t->canary, (long long)t->weight);
			goto out;
		}
		rv = cm_k8s_patch(k, path, CM_K8S_BODY_JSON_PATCH, ops, &r);
		if (rv == 0 || (rv != -EINVAL && rv != -ESTALE))
			break;
		cm_info("k8s.traffic.race", "route=%s/%s round=%d err=%s",
		    t->ns, t->name, round + 1, cm_q(r.err));
	}
	if (rv < 0) {
		rv = fail(ret, rv, rv == -ENOENT ? "not-found" : "api", "%s",
		    r.err);
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "switched", "switched %s %s/%s: %s", ra->kind, t->ns,
	    t->name, text);
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "op", "traffic");
	cJSON_AddNumberToObject(rec, "kind", (double)t->kind);
	cJSON_AddStringToObject(rec, "api", api);
	cJSON_AddStringToObject(rec, "ns", t->ns);
	cJSON_AddStringToObject(rec, "name", t->name);
	cJSON_AddItemToObject(rec, "changes", ents);
	ents = NULL;
	set_revert(ret, rec);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(ops);
	cJSON_Delete(ents);
	cJSON_Delete(o);
	return rv;
}

// ---------------------------------------------------------------------
// run_job

#define JOB_ENV_MAX 64

static void
env_name(const char *label, char *buf, size_t n)
{
	size_t o, i;

	o = (size_t)snprintf(buf, n, "ALERT_");
	for (i = 0; label[i] != '\0' && o + 1 < n; i++) {
		char ch = label[i];

		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
			ch = '_';
		buf[o++] = ch;
	}
	buf[o] = '\0';
}

// Adds the labels as env to every container, replacing same names.
static int
add_env(cJSON *job, const struct coord_kvs *labels, char *warn, size_t wn)
{
	cJSON *cs = (cJSON *)cm_k8s_at(job, "spec", "template", "spec",
	    "containers", NULL), *ctr;
	char names[JOB_ENV_MAX][96];
	size_t n = 0, i, j;

	warn[0] = '\0';
	for (i = 0; labels != NULL && i < labels->n; i++) {
		char nm[96];
		bool dup = false;

		env_name(labels->v[i].key, nm, sizeof(nm));
		for (j = 0; j < n; j++)
			dup = dup || strcmp(names[j], nm) == 0;
		if (dup || n == JOB_ENV_MAX) {
			snprintf(warn, wn, "label %.64s not passed (%s)",
			    labels->v[i].key, dup ? "same env name as another"
			    : "too many labels");
			continue;
		}
		memcpy(names[n++], nm, sizeof(nm));
	}
	cJSON_ArrayForEach(ctr, cs) {
		cJSON *env = cJSON_GetObjectItemCaseSensitive(ctr, "env"), *e,
		    *next;

		if (env == NULL)
			env = cJSON_AddArrayToObject(ctr, "env");
		if (env == NULL || !cJSON_IsArray(env))
			return -EINVAL;
		for (e = env->child; e != NULL; e = next) {
			const char *en = cm_k8s_str(e, "name", NULL);

			next = e->next;
			for (j = 0; en != NULL && j < n; j++)
				if (strcmp(en, names[j]) == 0) {
					cJSON_Delete(cJSON_DetachItemViaPointer(
					    env, e));
					break;
				}
		}
		for (i = 0, j = 0; labels != NULL && i < labels->n && j < n;
		    i++) {
			char nm[96];

			env_name(labels->v[i].key, nm, sizeof(nm));
			if (strcmp(nm, names[j]) != 0)
				continue;
			e = cJSON_CreateObject();
			if (e == NULL ||
			    cJSON_AddStringToObject(e, "name", nm) == NULL ||
			    cJSON_AddStringToObject(e, "value",
			    labels->v[i].val) == NULL) {
				cJSON_Delete(e);
				return -ENOMEM;
			}
			cJSON_AddItemToArray(env, e);
			j++;
		}
	}
	return 0;
}

// Turns the template into the Job to create in `ns`.
static int
job_from_template(cJSON *job, const char *ns, int64_t timeout_ms,
    const struct coord_kvs *labels, char *warn, size_t wn, char *err,
    size_t errlen)
{
	const char *kind = cm_k8s_str(job, "kind", NULL);
	cJSON *md, *lb, *spec;
	const char *name, *gen;
	char gname[300];
	int64_t ads = 0, tsec = (timeout_ms + 999) / 1000;

	if (kind != NULL && strcmp(kind, "Job") != 0) {
		snprintf(err, errlen, "template kind is %s, not Job", kind);
		return -EINVAL;
	}
	spec = cJSON_GetObjectItemCaseSensitive(job, "spec");
	if (cm_k8s_at(spec, "template", "spec", "containers", NULL) == NULL) {
		snprintf(err, errlen, "template has no "
		    "spec.template.spec.containers");
		return -EINVAL;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(job, "apiVersion");
	cJSON_DeleteItemFromObjectCaseSensitive(job, "kind");
	cJSON_DeleteItemFromObjectCaseSensitive(job, "status");
	cJSON_AddStringToObject(job, "apiVersion", "batch/v1");
	cJSON_AddStringToObject(job, "kind", "Job");
	md = cJSON_GetObjectItemCaseSensitive(job, "metadata");
	if (md == NULL)
		md = cJSON_AddObjectToObject(job, "metadata");
	if (!cJSON_IsObject(md)) {
		snprintf(err, errlen, "template metadata is not an object");
		return -EINVAL;
	}
	name = cm_k8s_str(md, "name", NULL);
	gen = cm_k8s_str(md, "generateName", NULL);
	snprintf(gname, sizeof(gname), "%s", gen != NULL ? gen :
	    name != NULL ? name : "reflex-job");
	if (gen == NULL && strlen(gname) < 200)
		strcat(gname, "-");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "name");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "generateName");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "namespace");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "resourceVersion");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "uid");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "creationTimestamp");
	cJSON_AddStringToObject(md, "generateName", gname);
	cJSON_AddStringToObject(md, "namespace", ns);
	lb = cJSON_GetObjectItemCaseSensitive(md, "labels");
	if (lb == NULL)
		lb = cJSON_AddObjectToObject(md, "labels");
	if (!cJSON_IsObject(lb)) {
		snprintf(err, errlen, "template labels are not an object");
		return -EINVAL;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(lb, "app.kubernetes.io/managed-by");
	cJSON_AddStringToObject(lb, "app.kubernetes.io/managed-by", "reflex");
	if (cm_k8s_int(spec, &ads, "activeDeadlineSeconds", NULL) != 0 ||
	    ads <= 0 || ads > tsec) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec,
		    "activeDeadlineSeconds");
		cJSON_AddNumberToObject(spec, "activeDeadlineSeconds",
		    (double)tsec);
	}
	if (add_env(job, labels, warn, wn) < 0) {
		snprintf(err, errlen, "a container's env is not a list");
		return -EINVAL;
	}
	return 0;
}

static void
nap_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
		.tv_nsec = (ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

// 1 complete, -1 failed (reason in why), 0 still running.
static int
job_state(const cJSON *job, char *why, size_t wn)
{
	const cJSON *cnd;

	cJSON_ArrayForEach(cnd, cm_k8s_at(job, "status", "conditions", NULL)) {
		const char *ty = cm_k8s_str(cnd, "type", NULL);
		const char *st = cm_k8s_str(cnd, "status", NULL);

		if (ty == NULL || st == NULL || strcmp(st, "True") != 0)
			continue;
		if (strcmp(ty, "Complete") == 0)
			return 1;
		if (strcmp(ty, "Failed") == 0) {
			snprintf(why, wn, "%s: %s", s_or(cm_k8s_str(cnd,
			    "reason", NULL), "Failed"), s_or(cm_k8s_str(cnd,
			    "message", NULL), ""));
			return -1;
		}
	}
	return 0;
}

int
coord_k8s_run_job(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *ns, const struct coord_kvs *labels, int64_t timeout_ms,
    struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	char path[512], jpath[600], err[512], warn[256], why[512];
	const char *name;
	cJSON *job = NULL, *cur = NULL;
	int64_t start = cm_mono_ms(), deadline, poll;
	int rv, st = 0;

	res_init(ret);
	if (c->job_template == NULL || c->job_template[0] == '\0')
		return refuse(ret, "no-template", "no job_template configured");
	if (cm_k8s_path(path, sizeof(path), "batch/v1", ns, "jobs", NULL,
	    NULL) < 0)
		return fail(ret, -EINVAL, "invalid", "invalid namespace");
	if (timeout_ms <= 0)
		timeout_ms = c->job_timeout_ms;
	deadline = start + timeout_ms;
	rv = coord_k8s_load_object(c->job_template, &job, err, sizeof(err));
	if (rv == 0)
		rv = job_from_template(job, ns, timeout_ms, labels, warn,
		    sizeof(warn), err, sizeof(err));
	if (rv < 0) {
		rv = refuse(ret, "no-template", "job template: %s", err);
		goto out;
	}
	snprintf(ret->warning, sizeof(ret->warning), "%s", warn);
	rv = cm_k8s_post(k, path, job, &r);
	if (rv < 0) {
		rv = fail(ret, rv, "api", "%s", r.err);
		goto out;
	}
	ret->changed = true;
	name = cm_k8s_str(r.body, "metadata", "name", NULL);
	set_uid(ret, r.body);
	if (name == NULL || cm_k8s_path(jpath, sizeof(jpath), "batch/v1", ns,
	    "jobs", name, NULL) < 0) {
		rv = fail(ret, -EBADMSG, "api", "created Job has no usable name");
		goto out;
	}
	cm_info("k8s.job", "job=%s/%s event=created", ns, name);
	poll = c->job_poll_ms;
	why[0] = '\0';
	for (;;) {
		int64_t left = deadline - cm_mono_ms();
		struct cm_k8s_resp g;

		if (left <= 0)
			break;
		nap_ms(poll < left ? poll : left);
		poll = poll * 3 / 2 > c->job_poll_max_ms ? c->job_poll_max_ms :
		    poll * 3 / 2;
		rv = cm_k8s_get(k, jpath, &g);
		if (rv == -ENOENT) {
			cm_k8s_resp_clear(&g);
			rv = fail(ret, rv, "failed", "job %s/%s disappeared "
			    "before it finished", ns, name);
			goto out;
		}
		if (rv < 0) {
			cm_warn("k8s.job.poll", "job=%s/%s err=%s", ns, name,
			    cm_q(g.err));
			cm_k8s_resp_clear(&g);
			continue;
		}
		cJSON_Delete(cur);
		cur = g.body;
		g.body = NULL;
		cm_k8s_resp_clear(&g);
		st = job_state(cur, why, sizeof(why));
		if (st != 0)
			break;
	}
	if (st > 0) {
		rv = done(ret, "succeeded", "job %s/%s succeeded after %llds",
		    ns, name, (long long)((cm_mono_ms() - start) / 1000));
	} else if (st < 0) {
		rv = fail(ret, -EIO, "failed", "job %s/%s failed: %s", ns, name,
		    why);
	} else {
		cJSON *del = cJSON_CreateObject();
		struct cm_k8s_resp d;
		int drv;

		cJSON_AddStringToObject(del, "kind", "DeleteOptions");
		cJSON_AddStringToObject(del, "apiVersion", "v1");
		cJSON_AddStringToObject(del, "propagationPolicy", "Background");
		drv = cm_k8s_delete(k, jpath, del, &d);
		cJSON_Delete(del);
		rv = fail(ret, -ETIMEDOUT, "timeout", "job %s/%s did not finish "
		    "within %llds; %s", ns, name,
		    (long long)(timeout_ms / 1000), drv == 0 || drv == -ENOENT ?
		    "deleted it" : d.err);
		cm_k8s_resp_clear(&d);
	}
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(cur);
	cJSON_Delete(job);
	return rv;
}

// ---------------------------------------------------------------------
// adjust_config

// The merge patch that undoes `patch` on `cur` (RFC 7386): NULL on
// ENOMEM; an empty object when the patch changes nothing.
static cJSON *
merge_inverse(const cJSON *cur, const cJSON *patch)
{
	cJSON *inv = cJSON_CreateObject();
	const cJSON *pv;

	if (inv == NULL)
		return NULL;
	cJSON_ArrayForEach(pv, patch) {
		const cJSON *cv = cJSON_IsObject(cur) ?
		    cJSON_GetObjectItemCaseSensitive(cur, pv->string) : NULL;
		cJSON *x = NULL;

		if (cJSON_IsObject(pv) && cJSON_IsObject(cv)) {
			x = merge_inverse(cv, pv);
			if (x != NULL && x->child == NULL) {
				cJSON_Delete(x);
				continue;
			}
		} else if (cv == NULL) {
			if (cJSON_IsNull(pv))
				continue;
			x = cJSON_CreateNull();
		} else {
			if (cJSON_Compare(cv, pv, true))
				continue;
			x = cJSON_Duplicate(cv, true);
		}
		if (x == NULL) {
			cJSON_Delete(inv);
			return NULL;
		}
		cJSON_AddItemToObject(inv, pv->string, x);
	}
	return inv;
}

// Does `cur` still show every value `patch` set (null = absent)?
static bool
merge_holds(const cJSON *cur, const cJSON *patch)
{
	const cJSON *pv;

	cJSON_ArrayForEach(pv, patch) {
		const cJSON *cv = cJSON_IsObject(cur) ?
		    cJSON_GetObjectItemCaseSensitive(cur, pv->string) : NULL;

		if (cJSON_IsNull(pv)) {
			if (cv != NULL)
				return false;
		} else if (cJSON_IsObject(pv)) {
			if (!cJSON_IsObject(cv) || !merge_holds(cv, pv))
				return false;
		} else if (cv == NULL || !cJSON_Compare(cv, pv, true)) {
			return false;
		}
	}
	return true;
}

// Only data, spec-like content, labels and annotations may be patched.
static bool
patch_allowed(const cJSON *patch, char *why, size_t wn)
{
	const cJSON *e, *m;

	if (!cJSON_IsObject(patch) || patch->child == NULL) {
		snprintf(why, wn, "patch must be a non-empty JSON object");
		return false;
	}
	cJSON_ArrayForEach(e, patch) {
		if (strcmp(e->string, "status") == 0 ||
		    strcmp(e->string, "apiVersion") == 0 ||
		    strcmp(e->string, "kind") == 0) {
			snprintf(why, wn, "patch may not change %s", e->string);
			return false;
		}
		if (strcmp(e->string, "metadata") != 0)
			continue;
		if (!cJSON_IsObject(e)) {
			snprintf(why, wn, "metadata must be an object");
			return false;
		}
		cJSON_ArrayForEach(m, e)
			if ((strcmp(m->string, "labels") != 0 &&
			    strcmp(m->string, "annotations") != 0) ||
			    !(cJSON_IsObject(m) || cJSON_IsNull(m))) {
				snprintf(why, wn, "patch may change only labels "
				    "and annotations in metadata, not %.64s",
				    m->string);
				return false;
			}
	}
	return true;
}

// Names the top-level paths of a patch: "data.a, data.b".
static void
patch_keys(const cJSON *p, const char *prefix, char *buf, size_t n,
    size_t *o, int depth)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, p) {
		char key[200];

		snprintf(key, sizeof(key), "%s%s%.96s", prefix, prefix[0] ? "." :
		    "", e->string);
		if (cJSON_IsObject(e) && e->child != NULL && depth < 3) {
			patch_keys(e, key, buf, n, o, depth + 1);
		} else if (*o < n) {
			*o += (size_t)snprintf(buf + *o, n - *o, "%s%s",
			    *o ? ", " : "", key);
		}
	}
}

static int
patch_guarded(struct cm_k8s *k, const char *path, const cJSON *patch,
    const char *rv_s, struct cm_k8s_resp *r)
{
	cJSON *body = cJSON_Duplicate(patch, true), *md;
	int rv;

	if (body == NULL)
		return -ENOMEM;
	md = cJSON_GetObjectItemCaseSensitive(body, "metadata");
	if (md == NULL)
		md = cJSON_AddObjectToObject(body, "metadata");
	if (md == NULL || rv_s == NULL) {
		cJSON_Delete(body);
		return -EINVAL;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(md, "resourceVersion");
	cJSON_AddStringToObject(md, "resourceVersion", rv_s);
	rv = cm_k8s_patch(k, path, CM_K8S_BODY_MERGE_PATCH, body, r);
	cJSON_Delete(body);
	return rv;
}

static bool
allowlisted(const struct coord_k8s_conf *c, const char *res)
{
	size_t i;

	for (i = 0; res != NULL && i < c->n_resources; i++)
		if (strcmp(c->resources[i], res) == 0)
			return true;
	return false;
}

int
coord_k8s_adjust_config(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *resource, const char *ns, const char *name,
    const cJSON *patch, struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	const char *api = coord_k8s_resource_api(resource);
	char path[512], err[512], what[320], keys[384] = "";
	cJSON *o = NULL, *inv = NULL, *rec;
	size_t ko = 0;
	int rv = -EIO, round;

	res_init(ret);
	if (!allowlisted(c, resource) || api == NULL)
		return refuse(ret, "allowlist", "%s is not in the "
		    "config_resources allowlist", s_or(resource, "(none)"));
	if (!patch_allowed(patch, err, sizeof(err)))
		return refuse(ret, "bad-patch", "%s", err);
	if (cm_k8s_path(path, sizeof(path), api, ns, resource, name, NULL) < 0)
		return fail(ret, -EINVAL, "invalid", "invalid namespace or name");
	snprintf(what, sizeof(what), "%s %s/%s", resource, ns, name);
	patch_keys(patch, "", keys, sizeof(keys), &ko, 0);
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(o);
		cJSON_Delete(inv);
		inv = NULL;
		cm_k8s_resp_clear(&r);
		rv = get_obj(k, path, &o, err, sizeof(err), what);
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		set_uid(ret, o);
		if (gitops_blocks(c, o, c->gitops_change, ret, "config change")) {
			rv = ret->err;
			goto out;
		}
		inv = merge_inverse(o, patch);
		if (inv == NULL) {
			rv = fail(ret, -ENOMEM, "api", "out of memory");
			goto out;
		}
		if (inv->child == NULL) {
			rv = done(ret, "noop", "%s already has %s as asked", what,
			    keys);
			goto out;
		}
		rv = patch_guarded(k, path, patch, cm_k8s_str(o, "metadata",
		    "resourceVersion", NULL), &r);
		if (rv != -ESTALE)
			break;
	}
	if (rv < 0) {
		rv = fail(ret, rv, rv == -ENOENT ? "not-found" : "api", "%s",
		    r.err[0] ? r.err : "patch failed");
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "patched", "patched %s: %s (previous values kept for "
	    "revert)", what, keys);
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "op", "patch");
	cJSON_AddStringToObject(rec, "resource", resource);
	cJSON_AddStringToObject(rec, "ns", ns);
	cJSON_AddStringToObject(rec, "name", name);
	cJSON_AddItemToObject(rec, "inverse", inv);
	inv = NULL;
	cJSON_AddItemToObject(rec, "applied", cJSON_Duplicate(patch, true));
	set_revert(ret, rec);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(inv);
	cJSON_Delete(o);
	return rv;
}

// ---------------------------------------------------------------------
// revert

// One guarded revert: read the object at `path`, leave it alone when it
// changed since reflex set it (`check` says so through refuse()), else
// merge-patch the fields `apply` writes into spec, guarded by the
// resourceVersion just read; a 409 re-reads and tries again, up to
// conflict_tries. `what` names the object in failures ("scale", "HPA").
struct revert_guard {
	const char *what;
	const void *arg;
	int (*check)(const cJSON *obj, const void *arg,
	    struct coord_k8s_result *ret);
	void (*apply)(cJSON *spec, const void *arg);
};

// Returns 1 when patched; < 0 when check refused or a call failed, with
// ret filled either way.
static int
guarded_revert(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *path, const struct revert_guard *g,
    struct coord_k8s_result *ret)
{
	struct cm_k8s_resp r = { 0 };
	char err[512];
	cJSON *obj = NULL, *body, *spec;
	int rv = -EIO, round;

	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(obj);
		obj = NULL;
		cm_k8s_resp_clear(&r);
		rv = get_obj(k, path, &obj, err, sizeof(err), g->what);
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		rv = g->check(obj, g->arg, ret);
		if (rv < 0)
			goto out;
		body = guarded_merge(cm_k8s_str(obj, "metadata",
		    "resourceVersion", NULL), &spec);
		if (body == NULL) {
			rv = fail(ret, -EBADMSG, "api", "%s without "
			    "resourceVersion", g->what);
			goto out;
		}
		g->apply(spec, g->arg);
		rv = cm_k8s_patch(k, path, CM_K8S_BODY_MERGE_PATCH, body, &r);
		cJSON_Delete(body);
		if (rv != -ESTALE)
			break;
	}
	if (rv < 0) {
		rv = fail(ret, rv, "api", "%s", r.err);
		goto out;
	}
	ret->changed = true;
	rv = 1;
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(obj);
	return rv;
}

struct scale_revert {
	struct coord_k8s_ref t;
	int64_t old, set;
};

static int
scale_unchanged(const cJSON *sc, const void *arg, struct coord_k8s_result *ret)
{
	const struct scale_revert *s = arg;
	int64_t cur = 0;

	(void)cm_k8s_int(sc, &cur, "spec", "replicas", NULL);
	if (cur == s->set)
		return 0;
	return refuse(ret, "changed-since", "%s %s/%s has %lld replicas, not "
	    "the %lld reflex set: left alone", coord_k8s_kind_name(s->t.kind),
	    s->t.ns, s->t.name, (long long)cur, (long long)s->set);
}

static void
scale_apply(cJSON *spec, const void *arg)
{
	const struct scale_revert *s = arg;

	cJSON_AddNumberToObject(spec, "replicas", (double)s->old);
}

static int
revert_scale(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const cJSON *rec, struct coord_k8s_result *ret)
{
	struct scale_revert s;
	struct revert_guard g = { "scale", &s, scale_unchanged, scale_apply };
	char path[512];
	int rv;

	s.t.ns = cm_k8s_str(rec, "ns", NULL);
	s.t.name = cm_k8s_str(rec, "name", NULL);
	if (coord_k8s_kind_parse(cm_k8s_str(rec, "kind", NULL), &s.t.kind) < 0 ||
	    cm_k8s_int(rec, &s.old, "replicas", NULL) < 0 ||
	    cm_k8s_int(rec, &s.set, "set", NULL) < 0 ||
	    coord_k8s_ref_path(&s.t, "scale", path, sizeof(path)) < 0)
		return refuse(ret, "bad-record", "scale revert record is "
		    "incomplete");
	rv = guarded_revert(k, c, path, &g, ret);
	if (rv < 0)
		return rv;
	return done(ret, "reverted", "reverted %s %s/%s from %lld to %lld "
	    "replicas", coord_k8s_kind_name(s.t.kind), s.t.ns, s.t.name,
	    (long long)s.set, (long long)s.old);
}

struct hpa_revert {
	const char *ns, *name;
	int64_t min, max, smin, smax;
};

static int
hpa_unchanged(const cJSON *h, const void *arg, struct coord_k8s_result *ret)
{
	const struct hpa_revert *s = arg;
	int64_t cmin = 1, cmax = 0;

	(void)cm_k8s_int(h, &cmin, "spec", "minReplicas", NULL);
	(void)cm_k8s_int(h, &cmax, "spec", "maxReplicas", NULL);
	if (cmin == s->smin && cmax == s->smax)
		return 0;
	return refuse(ret, "changed-since", "HPA %s/%s is at %lld..%lld, not "
	    "the %lld..%lld reflex set: left alone", s->ns, s->name,
	    (long long)cmin, (long long)cmax, (long long)s->smin,
	    (long long)s->smax);
}

static void
hpa_apply(cJSON *spec, const void *arg)
{
	const struct hpa_revert *s = arg;

	cJSON_AddNumberToObject(spec, "minReplicas", (double)s->min);
	cJSON_AddNumberToObject(spec, "maxReplicas", (double)s->max);
}

static int
revert_hpa(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const cJSON *rec, struct coord_k8s_result *ret)
{
	const char *api = cm_k8s_str(rec, "api", NULL);
	struct hpa_revert s;
	struct revert_guard g = { "HPA", &s, hpa_unchanged, hpa_apply };
	char path[512];
	int rv;

	s.ns = cm_k8s_str(rec, "ns", NULL);
	s.name = cm_k8s_str(rec, "name", NULL);
	if (api == NULL || (strcmp(api, "autoscaling/v2") != 0 &&
	    strcmp(api, "autoscaling/v1") != 0) ||
	    cm_k8s_int(rec, &s.min, "min", NULL) < 0 ||
	    cm_k8s_int(rec, &s.max, "max", NULL) < 0 ||
	    cm_k8s_int(rec, &s.smin, "set_min", NULL) < 0 ||
	    cm_k8s_int(rec, &s.smax, "set_max", NULL) < 0 ||
	    cm_k8s_path(path, sizeof(path), api, s.ns,
	    "horizontalpodautoscalers", s.name, NULL) < 0)
		return refuse(ret, "bad-record", "HPA revert record is "
		    "incomplete");
	rv = guarded_revert(k, c, path, &g, ret);
	if (rv < 0)
		return rv;
	return done(ret, "reverted", "reverted HPA %s/%s to %lld..%lld",
	    s.ns, s.name, (long long)s.min, (long long)s.max);
}

// The value at a JSON pointer made of /spec/<list>/<i>/<dests>/<j>/...
static const cJSON *
at_pointer(const cJSON *o, const char *ptr)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", ptr);
	for (tok = strtok_r(buf, "/", &save); tok != NULL && o != NULL;
	    tok = strtok_r(NULL, "/", &save)) {
		if (cJSON_IsArray(o)) {
			char *end;
			long i = strtol(tok, &end, 10);

			o = *end == '\0' && i >= 0 ? cJSON_GetArrayItem(o,
			    (int)i) : NULL;
		} else {
			o = cJSON_IsObject(o) ?
			    cJSON_GetObjectItemCaseSensitive(o, tok) : NULL;
		}
	}
	return o;
}

static int
revert_traffic(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const cJSON *rec, struct coord_k8s_result *ret)
{
	const char *ns = cm_k8s_str(rec, "ns", NULL);
	const char *name = cm_k8s_str(rec, "name", NULL);
	const char *api = NULL, *rv_s;
	const cJSON *e, *changes = cm_k8s_at(rec, "changes", NULL);
	struct cm_k8s_resp r = { 0 };
	int64_t kind = -1;
	char path[512], err[512];
	cJSON *o = NULL, *ops = NULL;
	int rv = -EIO, round;

	(void)cm_k8s_int(rec, &kind, "kind", NULL);
	if (ns == NULL || name == NULL || kind < 0 ||
	    kind > COORD_K8S_HTTPROUTE || !cJSON_IsArray(changes))
		return refuse(ret, "bad-record", "traffic revert record is "
		    "incomplete");
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(o);
		cJSON_Delete(ops);
		cm_k8s_resp_clear(&r);
		o = NULL;
		ops = cJSON_CreateArray();
		rv = get_route(k, (enum coord_k8s_route_kind)kind, ns, name, &o,
		    &api, path, sizeof(path), err, sizeof(err));
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		rv_s = cm_k8s_str(o, "metadata", "resourceVersion", NULL);
		if (rv_s == NULL || ops == NULL) {
			rv = fail(ret, -EBADMSG, "api", "route without "
			    "resourceVersion");
			goto out;
		}
		add_op(ops, "test", "/metadata/resourceVersion",
		    cJSON_CreateString(rv_s));
		cJSON_ArrayForEach(e, changes) {
			const char *idp = cm_k8s_str(e, "id_path", NULL);
			const char *id = cm_k8s_str(e, "id", NULL);
			const char *p = cm_k8s_str(e, "path", NULL);
			const cJSON *curid, *curw;
			int64_t old, nw, cw = -1;
			bool had = cm_k8s_bool(e, true, "had", NULL);

			if (idp == NULL || id == NULL || p == NULL ||
			    strncmp(p, "/spec/", 6) != 0 ||
			    strncmp(idp, "/spec/", 6) != 0 ||
			    cm_k8s_int(e, &old, "old", NULL) < 0 ||
			    cm_k8s_int(e, &nw, "new", NULL) < 0) {
				rv = refuse(ret, "bad-record", "traffic revert "
				    "entry is incomplete");
				goto out;
			}
			curid = at_pointer(o, idp);
			curw = at_pointer(o, p);
			if (curw != NULL && cJSON_IsNumber(curw))
				cw = (int64_t)curw->valuedouble;
			if (!cJSON_IsString(curid) ||
			    strcmp(curid->valuestring, id) != 0 || cw != nw) {
				rv = refuse(ret, "changed-since", "%s/%s: %s is "
				    "no longer %lld for %s: left alone", ns,
				    name, p, (long long)nw, id);
				goto out;
			}
			add_op(ops, "test", idp, cJSON_CreateString(id));
			add_op(ops, "test", p, cJSON_CreateNumber((double)nw));
			if (had)
				add_op(ops, "replace", p, cJSON_CreateNumber(
				    (double)old));
			else
				add_op(ops, "remove", p, NULL);
		}
		rv = cm_k8s_patch(k, path, CM_K8S_BODY_JSON_PATCH, ops, &r);
		if (rv == 0 || (rv != -EINVAL && rv != -ESTALE))
			break;
	}
	if (rv < 0) {
		rv = fail(ret, rv, "api", "%s", r.err);
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "reverted", "restored the previous weights of %s/%s",
	    ns, name);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(ops);
	cJSON_Delete(o);
	return rv;
}

static int
revert_patch(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const cJSON *rec, struct coord_k8s_result *ret)
{
	const char *res = cm_k8s_str(rec, "resource", NULL);
	const char *ns = cm_k8s_str(rec, "ns", NULL);
	const char *name = cm_k8s_str(rec, "name", NULL);
	const cJSON *inv = cm_k8s_at(rec, "inverse", NULL);
	const cJSON *applied = cm_k8s_at(rec, "applied", NULL);
	const char *api = coord_k8s_resource_api(res);
	struct cm_k8s_resp r = { 0 };
	char path[512], err[512], what[320];
	cJSON *o = NULL;
	int rv = -EIO, round;

	if (api == NULL || !cJSON_IsObject(inv) || !cJSON_IsObject(applied) ||
	    cm_k8s_path(path, sizeof(path), api, ns, res, name, NULL) < 0)
		return refuse(ret, "bad-record", "patch revert record is "
		    "incomplete");
	snprintf(what, sizeof(what), "%s %s/%s", res, ns, name);
	for (round = 0; round < c->conflict_tries; round++) {
		cJSON_Delete(o);
		cm_k8s_resp_clear(&r);
		rv = get_obj(k, path, &o, err, sizeof(err), what);
		if (rv < 0) {
			rv = fail_get(ret, rv, err);
			goto out;
		}
		if (!merge_holds(o, applied)) {
			rv = refuse(ret, "changed-since", "%s was changed since "
			    "reflex patched it: left alone", what);
			goto out;
		}
		rv = patch_guarded(k, path, inv, cm_k8s_str(o, "metadata",
		    "resourceVersion", NULL), &r);
		if (rv != -ESTALE)
			break;
	}
	if (rv < 0) {
		rv = fail(ret, rv, "api", "%s", r.err);
		goto out;
	}
	ret->changed = true;
	rv = done(ret, "reverted", "restored the previous values of %s", what);
out:
	cm_k8s_resp_clear(&r);
	cJSON_Delete(o);
	return rv;
}

int
coord_k8s_revert(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *record, struct coord_k8s_result *ret)
{
	cJSON *rec = record != NULL ? cJSON_Parse(record) : NULL;
	const char *op = cm_k8s_str(rec, "op", NULL);
	int rv;

	res_init(ret);
	if (op == NULL) {
		rv = refuse(ret, "bad-record", "revert record is not valid");
	} else if (strcmp(op, "rollback") == 0) {
		struct coord_k8s_ref t = { COORD_K8S_DEPLOYMENT,
			cm_k8s_str(rec, "ns", NULL),
			cm_k8s_str(rec, "name", NULL) };
		int64_t to = 0;

		if (cm_k8s_int(rec, &to, "to_revision", NULL) < 0 || to <= 0 ||
		    coord_k8s_ref_check(&t) < 0) {
			rv = refuse(ret, "bad-record", "rollback revert record "
			    "is incomplete");
		} else {
			rv = coord_k8s_rollback(k, c, &t, to, ret);
			if (rv == 0 && ret->changed)
				snprintf(ret->code, sizeof(ret->code),
				    "reverted");
		}
	} else if (strcmp(op, "scale") == 0) {
		rv = revert_scale(k, c, rec, ret);
	} else if (strcmp(op, "hpa") == 0) {
		rv = revert_hpa(k, c, rec, ret);
	} else if (strcmp(op, "traffic") == 0) {
		rv = revert_traffic(k, c, rec, ret);
	} else if (strcmp(op, "patch") == 0) {
		rv = revert_patch(k, c, rec, ret);
	} else {
		rv = refuse(ret, "bad-record", "unknown revert op %.32s", op);
	}
	cJSON_Delete(rec);
	return rv;
}
