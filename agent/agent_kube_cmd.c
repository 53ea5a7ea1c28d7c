// SPDX-License-Identifier: MIT
// agent_kube_cmd: the kubernetes runtime's API calls (pod lists,
// evictions, readiness checks) on worker threads, the clear_cache and
// reload_config HTTP calls on the pods (agent_http), and the
// coordinator's commands (see agent_kube.h).
#include "agent_kube_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cm_log.h"
#include "cm_time.h"

#define CMD_DEFAULT_TIMEOUT_MS 60000
#define PATH_MAX_LEN 1024

static void
copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}

// ---- pending commands ---------------------------------------------------

static struct kube_cmd *
cmd_add(struct agent_kube *k, struct agent_cmd_ctx *ctx, int64_t now)
{
	const struct cm_msg_command *c = &agent_cmd_request(ctx)->u.cmd;
	struct kube_cmd *kc = calloc(1, sizeof(*kc));

	if (kc == NULL)
		return NULL;
	kc->id = k->next_cmd_id++;
	kc->ctx = ctx;
	copy(kc->action, sizeof(kc->action), c->action);
	copy(kc->service, sizeof(kc->service), c->service);
	copy(kc->instance, sizeof(kc->instance), c->instance);
	kc->action_id = c->action_id;
	kc->deadline_ms = now + (c->timeout_ms ? (int64_t)c->timeout_ms :
	    CMD_DEFAULT_TIMEOUT_MS);
	kc->next = k->cmds;
	k->cmds = kc;
	return kc;
}

// Unlinks and returns the pending command `id`, or NULL (answered by
// its timeout already).
static struct kube_cmd *
cmd_take(struct agent_kube *k, uint64_t id)
{
	for (struct kube_cmd **pp = &k->cmds; *pp != NULL;
	    pp = &(*pp)->next) {
		struct kube_cmd *c = *pp;

		if (c->id != id)
			continue;
		*pp = c->next;
		return c;
	}
	return NULL;
}

// Sends the answer (json may be NULL; taken) and frees c.
static void
cmd_answer(struct kube_cmd *c, bool ok, int code, const char *text,
    char *json)
{
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_REPLY;
	m.u.reply.ok = ok;
	m.u.reply.code = code;
	agent_copy_text(m.u.reply.message, sizeof(m.u.reply.message), text);
	m.u.reply.json = json;
	agent_cmd_reply(c->ctx, &m);
	cJSON_free(json);
	for (size_t i = 0; i < c->n_calls; i++)
		agent_http_req_fini(&c->calls[i].req);
	free(c->calls);
	free(c);
}

static void calls_answer(struct kube_cmd *c);

int64_t
kube_cmds_tick(struct agent_kube *k, int64_t now)
{
	int64_t next = INT64_MAX;
	struct kube_cmd **pp = &k->cmds;

	while (*pp != NULL) {
		struct kube_cmd *c = *pp;

		if (c->n_calls > 0 && (c->calls_left == 0 ||
		    now >= c->deadline_ms)) {
			*pp = c->next;
			calls_answer(c);
			continue;
		}
		if (now < c->deadline_ms) {
			if (c->deadline_ms < next)
				next = c->deadline_ms;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		cmd_answer(c, false, -ETIMEDOUT, strcmp(c->action, "restart")
		    == 0 ? "no answer from the API server within the "
		    "command's timeout; the eviction goes on" : "no answer "
		    "from the API server within the command's timeout", NULL);
	}
	return next;
}

void
kube_cmds_abort(struct agent_kube *k, int code, const char *why)
{
	while (k->cmds != NULL) {
		struct kube_cmd *c = k->cmds;

		k->cmds = c->next;
		cmd_answer(c, false, code, why, NULL);
	}
}

// ---- evicted pods ----------------------------------------------------------

void
kube_gone_add(struct agent_kube *k, const struct agent_pod *p,
    kube_uid **sib, size_t n_sib, bool sib_known)
{
	struct kube_gone *g = &k->gone[k->gone_head];

	free(g->sib);
	copy(g->ns, sizeof(g->ns), p->ns);
	copy(g->name, sizeof(g->name), p->name);
	copy(g->uid, sizeof(g->uid), p->uid);
	copy(g->service, sizeof(g->service), p->service);
	copy(g->owner_uid, sizeof(g->owner_uid), p->owner_uid);
	copy(g->selector, sizeof(g->selector), p->selector);
	g->sib = *sib;
	g->n_sib = n_sib;
	g->sib_known = sib_known;
	*sib = NULL;
	k->gone_head = (k->gone_head + 1) % KUBE_GONE_MAX;
	if (k->gone_n < KUBE_GONE_MAX)
		k->gone_n++;
}

void
kube_gone_clear(struct agent_kube *k)
{
	for (unsigned i = 0; i < KUBE_GONE_MAX; i++) {
		free(k->gone[i].sib);
		k->gone[i].sib = NULL;
	}
	k->gone_n = 0;
}

// The latest evicted pod (service, name) remembered, or NULL; with uid
// not NULL only that very pod.
static const struct kube_gone *
gone_find(const struct agent_kube *k, const char *service, const char *name,
    const char *uid)
{
	for (unsigned i = 1; i <= k->gone_n; i++) {
		const struct kube_gone *g = &k->gone[(k->gone_head +
		    KUBE_GONE_MAX - i) % KUBE_GONE_MAX];

		if (strcmp(g->service, service) == 0 &&
		    strcmp(g->name, name) == 0 &&
		    (uid == NULL || strcmp(g->uid, uid) == 0))
			return g;
	}
	return NULL;
}

// The uids of the pods in ns (matching selector, if any) whose
// controller is owner_uid, at most KUBE_SIBLINGS_MAX. Blocks (worker
// thread). 0 with *ret (free()) or a negative errno.
static int
list_siblings(struct cm_k8s *k8s, const char *ns, const char *selector,
    const char *owner_uid, kube_uid **ret, size_t *ret_n)
{
	struct cm_k8s_resp r;
	const cJSON *it;
	char path[PATH_MAX_LEN];
	kube_uid *v;
	size_t n = 0;
	int rv;

	rv = cm_k8s_path(path, sizeof(path), "v1", ns, "pods", NULL, NULL);
	if (rv == 0 && selector[0] != '\0')
		rv = cm_k8s_query_add(path, sizeof(path), "labelSelector",
		    selector);
	if (rv < 0)
		return rv;
	rv = cm_k8s_get(k8s, path, &r);
	v = rv == 0 ? calloc(KUBE_SIBLINGS_MAX, sizeof(*v)) : NULL;
	if (rv == 0 && v == NULL)
		rv = -ENOMEM;
	if (rv < 0) {
		cm_k8s_resp_clear(&r);
		return rv;
	}
	cJSON_ArrayForEach(it, cm_k8s_at(r.body, "items", NULL)) {
		const char *uid = cm_k8s_str(it, "metadata", "uid", NULL);
		const char *owner = cm_k8s_str(cm_k8s_controller_ref(it),
		    "uid", NULL);

		if (uid != NULL && owner != NULL && n < KUBE_SIBLINGS_MAX &&
		    strcmp(owner, owner_uid) == 0)
			copy(v[n++], KUBE_UID_MAX, uid);
	}
	cm_k8s_resp_clear(&r);
	*ret = v;
	*ret_n = n;
	return 0;
}

static bool
uid_in(const kube_uid *v, size_t n, const char *uid)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], uid) == 0)
			return true;
	return false;
}

// ---- listing the node's pods ----------------------------------------------

struct kjob_list {
	struct kjob h;
	char path[PATH_MAX_LEN];
	int64_t started_ms;
	int rv;
	cJSON *body;
	char err[512];
};

static void
list_run(struct agent_kjob *b)
{
	struct kjob_list *j = (struct kjob_list *)b;
	struct cm_k8s_resp r;

	j->rv = cm_k8s_get(j->h.k8s, j->path, &r);
	if (j->rv == 0) {
		j->body = r.body;
		r.body = NULL;
	} else {
		copy(j->err, sizeof(j->err), r.err);
	}
	cm_k8s_resp_clear(&r);
}

static void
list_dispose(struct agent_kjob *b)
{
	struct kjob_list *j = (struct kjob_list *)b;

	cJSON_Delete(j->body);
	free(j);
}

void
kube_list_submit(struct agent_kube *k)
{
	struct kjob_list *j = calloc(1, sizeof(*j));
	char sel[128];
	int rv;

	if (j == NULL) {
		k->list_due_ms = cm_mono_ms() + 1000;
		return;
	}
	snprintf(sel, sizeof(sel), "spec.nodeName=%s", k->conf->node);
	rv = cm_k8s_path(j->path, sizeof(j->path), "v1", NULL, "pods", NULL,
	    NULL);
	if (rv == 0)
		rv = cm_k8s_query_add(j->path, sizeof(j->path),
		    "fieldSelector", sel);
	if (rv < 0) { // cannot happen: the node name is a valid name
		free(j);
		k->list_due_ms = cm_mono_ms() + k->conf->kubernetes.
		    discovery_interval_ms;
		return;
	}
	j->h = (struct kjob){ .base = { .run = list_run,
		.dispose = list_dispose }, .kind = KJ_LIST, .k8s = k->k8s };
	j->started_ms = cm_mono_ms();
	k->listing = true;
	agent_kwork_submit(k->work, &j->h.base);
}

static void
list_apply(struct agent_kube *k, struct kjob_list *j, int64_t now)
{
	const cJSON *items = cm_k8s_at(j->body, "items", NULL);

	k->listing = false;
	k->list_due_ms = now + k->conf->kubernetes.discovery_interval_ms;
	if (j->rv == 0 && !cJSON_IsArray(items)) {
		j->rv = -EBADMSG;
		copy(j->err, sizeof(j->err), "the pod list has no items");
	}
	if (j->rv < 0) {
		k->list_failures++;
		copy(k->list_error, sizeof(k->list_error), j->err);
		if (!k->list_error_logged)
			cm_warn("kube.list_failed", "node=%s error=%s "
			    "note=%s", k->conf->node, cm_q(j->err),
			    cm_q("keeping the pods seen last"));
		k->list_error_logged = true;
		return;
	}
	if (k->list_error_logged)
		cm_notice("kube.list_ok", "node=%s", k->conf->node);
	k->list_error_logged = false;
	k->list_error[0] = '\0';
	k->lists++;
	k->last_list_wall_ms = cm_now_ms();
	kube_apply_items(k, items, j->started_ms);
}

static void
relist_soon(struct agent_kube *k, int64_t now)
{
	if (!k->listing && k->list_due_ms > now + AGENT_KUBE_RELIST_MS)
		k->list_due_ms = now + AGENT_KUBE_RELIST_MS;
}

// ---- evictions ------------------------------------------------------------

struct kjob_evict {
	struct kjob h;
	char ns[64], name[254], uid[KUBE_UID_MAX];
	char service[CM_NAME_MAX];
	char owner_uid[KUBE_UID_MAX];
	char selector[KUBE_SELECTOR_MAX];
	bool own;
	uint64_t cmd_id; // 0 = none
	struct cm_k8s_evict_opts opts;
	int rv;
	struct cm_k8s_evict_result res;
	kube_uid *sib; // the controller's pods right before the eviction
	size_t n_sib;
	bool sib_known;
};

static void
evict_run(struct agent_kjob *b)
{
	struct kjob_evict *j = (struct kjob_evict *)b;

	// Before the eviction, so that no replacement can be among them.
	if (j->owner_uid[0] != '\0')
		j->sib_known = list_siblings(j->h.k8s, j->ns, j->selector,
		    j->owner_uid, &j->sib, &j->n_sib) == 0;
	j->rv = cm_k8s_evict_pod(j->h.k8s, j->ns, j->name, &j->opts, &j->res);
}

static void
evict_dispose(struct agent_kjob *b)
{
	struct kjob_evict *j = (struct kjob_evict *)b;

	free(j->sib);
	free(j);
}


void
kube_evict_submit(struct agent_kube *k, struct agent_pod *p, bool own,
    uint64_t cmd_id)
{
	const struct agent_kevict_conf *ec = &k->conf->kubernetes.evict;
	struct kjob_evict *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		if (own)
			kube_permit_hold(k, p, "out of memory", cm_mono_ms());
		return;
	}
	j->h = (struct kjob){ .base = { .run = evict_run,
		.dispose = evict_dispose }, .kind = KJ_EVICT, .k8s = k->k8s };
	copy(j->ns, sizeof(j->ns), p->ns);
	copy(j->name, sizeof(j->name), p->name);
	copy(j->uid, sizeof(j->uid), p->uid);
	copy(j->service, sizeof(j->service), p->service);
	copy(j->owner_uid, sizeof(j->owner_uid), p->owner_uid);
	copy(j->selector, sizeof(j->selector), p->selector);
	j->own = own;
	j->cmd_id = cmd_id;
	cm_k8s_evict_opts_default(&j->opts);
	j->opts.max_tries = (int)ec->max_tries;
	j->opts.backoff_ms = ec->backoff_ms;
	j->opts.budget_ms = ec->budget_ms;
	j->opts.grace_seconds = ec->grace_seconds;
	j->opts.delete_unready = ec->delete_unready;
	p->evicting = true;
	kube_probe_stop(p);
	cm_notice("kube.evict", "pod=%s/%s service=%s by=%s", p->ns, p->name,
	    p->service, own ? "agent" : "coordinator");
	agent_kwork_submit(k->work, &j->h.base);
}

static enum agent_evict_result
evict_result(const struct kjob_evict *j)
{
	switch (j->res.outcome) {
	case CM_K8S_EVICTED:
		return AGENT_EVICT_EVICTED;
	case CM_K8S_EVICT_DELETED:
		return AGENT_EVICT_DELETED;
	case CM_K8S_EVICT_BLOCKED:
		return AGENT_EVICT_BLOCKED;
	case CM_K8S_EVICT_GONE:
		return AGENT_EVICT_GONE;
	default:
		return AGENT_EVICT_FAILED;
	}
}

static char *
restart_json(const struct kjob_evict *j, enum agent_evict_result r)
{
	cJSON *doc = cJSON_CreateObject(), *res, *o;
	char *text;

	res = doc != NULL ? cJSON_AddArrayToObject(doc, "results") : NULL;
	o = res != NULL ? cJSON_CreateObject() : NULL;
	if (o == NULL) {
		cJSON_Delete(doc);
		return NULL;
	}
	cJSON_AddItemToArray(res, o);
	cJSON_AddStringToObject(doc, "action", "restart");
	cJSON_AddStringToObject(doc, "service", j->service);
	cJSON_AddStringToObject(doc, "runtime", "kubernetes");
	cJSON_AddStringToObject(o, "instance", j->name);
	cJSON_AddStringToObject(o, "namespace", j->ns);
	cJSON_AddBoolToObject(o, "ok", r == AGENT_EVICT_EVICTED ||
	    r == AGENT_EVICT_DELETED);
	cJSON_AddStringToObject(o, "outcome", agent_evict_result_name(r));
	cJSON_AddNumberToObject(o, "tries", j->res.tries);
	if (j->res.pdb[0] != '\0')
		cJSON_AddStringToObject(o, "pdb", j->res.pdb);
	else
		cJSON_AddNullToObject(o, "pdb");
	if (j->res.disruptions_allowed >= 0)
		cJSON_AddNumberToObject(o, "disruptions_allowed",
		    (double)j->res.disruptions_allowed);
	else
		cJSON_AddNullToObject(o, "disruptions_allowed");
	cJSON_AddStringToObject(o, "detail", j->res.reason);
	text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text;
}

static void
evict_apply(struct agent_kube *k, struct kjob_evict *j, int64_t now)
{
	enum agent_evict_result r = evict_result(j);
	bool done = r == AGENT_EVICT_EVICTED || r == AGENT_EVICT_DELETED;
	struct agent_pod *p = kube_pod_find(k, j->ns, j->name);
	struct kube_cmd *c = j->cmd_id ? cmd_take(k, j->cmd_id) : NULL;
	char why[AGENT_REASON_MAX], text[CM_TEXT_MAX];

	k->evictions[r]++;
	if (p != NULL && strcmp(p->uid, j->uid) != 0)
		p = NULL; // a new pod of the same name took its place
	cm_log(done ? CM_LOG_NOTICE : r == AGENT_EVICT_BLOCKED ?
	    CM_LOG_NOTICE : CM_LOG_WARN, "kube.evict_done", "pod=%s/%s by=%s "
	    "result=%s tries=%d reason=%s", j->ns, j->name, j->own ? "agent" :
	    "coordinator", agent_evict_result_name(r), j->res.tries,
	    cm_q(j->res.reason));
	agent_actlog_add(k->log, cm_now_ms(), j->own ? "own_evict" : "evict",
	    j->service, j->name, agent_evict_result_name(r), "%s",
	    j->res.reason);
	if (p != NULL) {
		p->evicting = false;
		agent_copy_text(p->last_action, sizeof(p->last_action),
		    j->res.reason);
		p->last_action_wall_ms = cm_now_ms();
		if (done) {
			p->terminating = true;
			p->evicted_ms = now;
			p->evictions++;
			p->count.restarts[j->own ? AGENT_RESTART_PROBE :
			    AGENT_RESTART_COMMAND]++;
			kube_gone_add(k, p, &j->sib, j->n_sib, j->sib_known);
		} else if (j->own && r != AGENT_EVICT_GONE && !k->stopping) {
			snprintf(why, sizeof(why), "eviction %s: %s", r ==
			    AGENT_EVICT_BLOCKED ? "blocked" : "failed",
			    j->res.reason);
			kube_permit_hold(k, p, why, now);
		}
	}
	if (done || r == AGENT_EVICT_GONE)
		relist_soon(k, now);
	if (c == NULL)
		return;
	snprintf(text, sizeof(text), "%s: %s", j->name, j->res.reason);
	cmd_answer(c, done, done ? 0 : r == AGENT_EVICT_BLOCKED ? -EBUSY :
	    r == AGENT_EVICT_GONE ? -ENOENT : j->rv < 0 ? j->rv : -EIO, text,
	    restart_json(j, r));
}

// ---- readiness checks -------------------------------------------------------

struct kcheck_t {
	char ns[64], name[254], uid[KUBE_UID_MAX];
	char owner_uid[KUBE_UID_MAX]; // "": no replacement is looked for
	char selector[KUBE_SELECTOR_MAX];
	kube_uid *sib;		      // owned copy of kube_gone's
	size_t n_sib;
	bool sib_known;
	bool ok;
	int code;
	char state[24];
	char detail[512];
};

struct kjob_check {
	struct kjob h;
	uint64_t cmd_id;
	char service[CM_NAME_MAX];
	size_t n;
	struct kcheck_t t[KUBE_CHECK_MAX];
};

static void
verdict(struct kcheck_t *t, bool ok, int code, const char *state,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
verdict(struct kcheck_t *t, bool ok, int code, const char *state,
    const char *fmt, ...)
{
	va_list ap;

	t->ok = ok;
	t->code = ok ? 0 : code;
	copy(t->state, sizeof(t->state), state);
	va_start(ap, fmt);
	vsnprintf(t->detail, sizeof(t->detail), fmt, ap);
	va_end(ap);
	agent_copy_text(t->detail, sizeof(t->detail), t->detail);
}

// Why a pod is not Ready, in a few words.
static const char *
unready_why(const cJSON *pod)
{
	const cJSON *cs = cm_k8s_at(pod, "status", "containerStatuses", NULL);
	const cJSON *c;

	cJSON_ArrayForEach(c, (cJSON_IsArray(cs) ? cs : NULL)) {
		const char *w = cm_k8s_str(c, "state", "waiting", "reason",
		    NULL);

		if (w != NULL)
			return w;
	}
	return cm_k8s_str(pod, "status", "phase", NULL) ?: "unknown phase";
}

// The pod evicted as t: is there a Ready pod of the same controller?
static void
find_replacement(struct cm_k8s *k8s, struct kcheck_t *t)
{
	struct cm_k8s_resp r;
	const cJSON *it;
	char path[PATH_MAX_LEN];
	unsigned starting = 0;
	int rv;

	if (!t->sib_known) {
		verdict(t, false, -EAGAIN, "replacing", "evicted; its "
		    "controller's pods could not be read before the eviction, "
		    "so a replacement cannot be told apart");
		return;
	}
	rv = cm_k8s_path(path, sizeof(path), "v1", t->ns, "pods", NULL, NULL);
	if (rv == 0 && t->selector[0] != '\0')
		rv = cm_k8s_query_add(path, sizeof(path), "labelSelector",
		    t->selector);
	if (rv < 0) {
		verdict(t, false, -EINVAL, "unknown", "cannot build the pod "
		    "list request");
		return;
	}
	rv = cm_k8s_get(k8s, path, &r);
	if (rv < 0) {
		verdict(t, false, rv, "unknown", "evicted; listing its "
		    "replacements failed: %s", r.err);
		cm_k8s_resp_clear(&r);
		return;
	}
	cJSON_ArrayForEach(it, cm_k8s_at(r.body, "items", NULL)) {
		const char *uid = cm_k8s_str(it, "metadata", "uid", NULL);
		const char *owner = cm_k8s_str(cm_k8s_controller_ref(it),
		    "uid", NULL);

		if (uid == NULL || owner == NULL || strcmp(uid, t->uid) == 0 ||
		    strcmp(owner, t->owner_uid) != 0 ||
		    cm_k8s_terminating(it) || uid_in(t->sib, t->n_sib, uid))
			continue;
		if (!cm_k8s_pod_ready(it)) {
			starting++;
			continue;
		}
		verdict(t, true, 0, "replaced", "evicted; replaced by %s "
		    "(Ready on %s)", cm_k8s_str(it, "metadata", "name", NULL),
		    cm_k8s_str(it, "spec", "nodeName", NULL) ?: "?");
		cm_k8s_resp_clear(&r);
		return;
	}
	verdict(t, false, -EAGAIN, "replacing", "evicted; no Ready "
	    "replacement yet (%u starting)", starting);
	cm_k8s_resp_clear(&r);
}

static void
check_one(struct cm_k8s *k8s, struct kcheck_t *t)
{
	struct cm_k8s_resp r;
	char path[PATH_MAX_LEN];
	const char *uid;
	bool ready, term;
	int rv;

	if (cm_k8s_path(path, sizeof(path), "v1", t->ns, "pods", t->name,
	    NULL) < 0) {
		verdict(t, false, -EINVAL, "unknown", "invalid pod name");
		return;
	}
	rv = cm_k8s_get(k8s, path, &r);
	if (rv == -ENOENT && t->owner_uid[0] != '\0') {
		cm_k8s_resp_clear(&r);
		find_replacement(k8s, t);
		return;
	}
	if (rv < 0) {
		verdict(t, false, rv, rv == -ENOENT ? "gone" : "unknown",
		    "%s", rv == -ENOENT ? "the pod no longer exists" : r.err);
		cm_k8s_resp_clear(&r);
		return;
	}
	uid = cm_k8s_str(r.body, "metadata", "uid", NULL);
	ready = cm_k8s_pod_ready(r.body);
	term = cm_k8s_terminating(r.body);
	if (uid != NULL && t->uid[0] != '\0' && strcmp(uid, t->uid) != 0)
		verdict(t, ready && !term, -EAGAIN, ready && !term ? "ready" :
		    "replacing", "replaced by a new pod of the same name (%s)",
		    term ? "terminating" : ready ? "Ready" : "not Ready yet");
	else if (term && t->owner_uid[0] != '\0')
		find_replacement(k8s, t);
	else if (term)
		verdict(t, false, -EAGAIN, "terminating", "terminating");
	else if (ready)
		verdict(t, true, 0, "ready", "Ready");
	else
		verdict(t, false, -EAGAIN, "not_ready", "not Ready (%s)",
		    unready_why(r.body));
	cm_k8s_resp_clear(&r);
}

static void
check_run(struct agent_kjob *b)
{
	struct kjob_check *j = (struct kjob_check *)b;

	for (size_t i = 0; i < j->n; i++)
		check_one(j->h.k8s, &j->t[i]);
}

static void
check_dispose(struct agent_kjob *b)
{
	struct kjob_check *j = (struct kjob_check *)b;

	for (size_t i = 0; i < j->n; i++)
		free(j->t[i].sib);
	free(j);
}

static void
target_of_gone(struct kcheck_t *t, const struct kube_gone *g)
{
	copy(t->ns, sizeof(t->ns), g->ns);
	copy(t->name, sizeof(t->name), g->name);
	copy(t->uid, sizeof(t->uid), g->uid);
	copy(t->owner_uid, sizeof(t->owner_uid), g->owner_uid);
	copy(t->selector, sizeof(t->selector), g->selector);
	t->sib_known = g->sib_known;
	if (g->n_sib == 0)
		return;
	t->sib = calloc(g->n_sib, sizeof(*t->sib));
	if (t->sib == NULL) {
		t->sib_known = false;
		return;
	}
	memcpy(t->sib, g->sib, g->n_sib * sizeof(*t->sib));
	t->n_sib = g->n_sib;
}

// A pod of the table: only one this agent evicted is looked for among
// replacements.
static void
target_of_pod(const struct agent_kube *k, struct kcheck_t *t,
    const struct agent_pod *p)
{
	const struct kube_gone *g = gone_find(k, p->service, p->name, p->uid);

	if (g != NULL) {
		target_of_gone(t, g);
		return;
	}
	copy(t->ns, sizeof(t->ns), p->ns);
	copy(t->name, sizeof(t->name), p->name);
	copy(t->uid, sizeof(t->uid), p->uid);
	copy(t->selector, sizeof(t->selector), p->selector);
}

static void
check_apply(struct agent_kube *k, struct kjob_check *j)
{
	struct kube_cmd *c = cmd_take(k, j->cmd_id);
	cJSON *doc, *res;
	char text[CM_TEXT_MAX] = "";
	unsigned bad = 0;
	size_t o = 0;
	int code = 0;

	if (c == NULL)
		return;
	for (size_t i = 0; i < j->n; i++) {
		if (!j->t[i].ok && code == 0)
			code = j->t[i].code;
		bad += !j->t[i].ok;
	}
	doc = cJSON_CreateObject();
	res = doc != NULL ? cJSON_AddArrayToObject(doc, "results") : NULL;
	for (size_t i = 0; i < j->n; i++) {
		const struct kcheck_t *t = &j->t[i];
		cJSON *r = res != NULL ? cJSON_CreateObject() : NULL;

		if (r != NULL) {
			cJSON_AddStringToObject(r, "instance", t->name);
			cJSON_AddStringToObject(r, "namespace", t->ns);
			cJSON_AddBoolToObject(r, "ok", t->ok);
			cJSON_AddStringToObject(r, "state", t->state);
			cJSON_AddStringToObject(r, "detail", t->detail);
			cJSON_AddItemToArray(res, r);
		}
		// The message names what is not ready (or all).
		if ((bad > 0 && t->ok) || o + 4 >= sizeof(text))
			continue;
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s: %s",
		    o ? "; " : "", t->name, t->detail);
	}
	if (o >= sizeof(text))
		memcpy(text + sizeof(text) - 4, "...", 4);
	if (doc != NULL) {
		cJSON_AddStringToObject(doc, "action", "check");
		cJSON_AddStringToObject(doc, "service", j->service);
		cJSON_AddStringToObject(doc, "runtime", "kubernetes");
	}
	cmd_answer(c, bad == 0, code, text, doc != NULL ?
	    cJSON_PrintUnformatted(doc) : NULL);
	cJSON_Delete(doc);
}

// ---- clear_cache and reload_config: HTTP calls on the pods ---------------

static void
on_call_done(struct agent_http_req *r, bool ok, long status,
    const char *reason, int64_t elapsed_ms, void *arg)
{
	struct kube_call *call = arg;

	(void)r;
	(void)ok;
	(void)elapsed_ms;
	if (call->done)
		return;
	call->done = true;
	call->status = status;
	call->ok = status >= 200 && status < 300; // 3xx is not done
	if (status > 0)
		snprintf(call->why, sizeof(call->why), "HTTP %ld", status);
	else
		snprintf(call->why, sizeof(call->why), "%s", reason);
	call->cmd->calls_left--;
}

// Appends "; " and one formatted item to text (size n) at *o; ends in
// "..." once full.
static void
text_add(char *text, size_t n, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*o + 4 >= n)
		return;
	if (*o > 0)
		*o += (size_t)snprintf(text + *o, n - *o, "; ");
	va_start(ap, fmt);
	k = vsnprintf(text + *o, n - *o, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	*o += (size_t)k;
	if (*o >= n) {
		memcpy(text + n - 4, "...", 4);
		*o = n;
	}
}

// Answers a call command (and frees it): ok only when every pod
// answered 2xx; the message holds one "pod: status" item per pod,
// failures first. Pods still waiting are reported as timed out.
static void
calls_answer(struct kube_cmd *c)
{
	cJSON *doc = cJSON_CreateObject(), *res;
	char text[CM_TEXT_MAX] = "";
	size_t o = 0, bad = 0;
	int code = 0;

	res = doc != NULL ? cJSON_AddArrayToObject(doc, "results") : NULL;
	for (size_t i = 0; i < c->n_calls; i++) {
		struct kube_call *k = &c->calls[i];
		cJSON *r = res != NULL ? cJSON_CreateObject() : NULL;

		if (!k->done)
			snprintf(k->why, sizeof(k->why), "no answer within "
			    "the command's timeout");
		if (!k->ok) {
			bad++;
			if (code == 0)
				code = k->done ? -EIO : -ETIMEDOUT;
		}
		if (r == NULL)
			continue;
		cJSON_AddStringToObject(r, "instance", k->name);
		cJSON_AddStringToObject(r, "namespace", k->ns);
		cJSON_AddBoolToObject(r, "ok", k->ok);
		cJSON_AddNumberToObject(r, "status", (double)k->status);
		cJSON_AddStringToObject(r, "detail", k->ok ? "" : k->why);
		cJSON_AddItemToArray(res, r);
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < c->n_calls; i++) {
			const struct kube_call *k = &c->calls[i];

			if (k->ok != (pass == 1))
				continue;
			if (k->ok)
				text_add(text, sizeof(text), &o, "%s: %ld",
				    k->name, k->status);
			else
				text_add(text, sizeof(text), &o, "%s: %s",
				    k->name, k->why);
		}
	if (c->skipped > 0) {
		bad++;
		code = code != 0 ? code : -E2BIG;
		text_add(text, sizeof(text), &o, "%zu more Ready pods not "
		    "called (at most %d per command)", c->skipped,
		    KUBE_CALL_MAX);
	}
	if (doc != NULL) {
		cJSON_AddStringToObject(doc, "action", c->action);
		cJSON_AddStringToObject(doc, "service", c->service);
		cJSON_AddStringToObject(doc, "runtime", "kubernetes");
		cJSON_AddNumberToObject(doc, "skipped", (double)c->skipped);
	}
	cmd_answer(c, bad == 0, code, text, doc != NULL ?
	    cJSON_PrintUnformatted(doc) : NULL);
	cJSON_Delete(doc);
}

static const struct agent_kcall_conf *
call_conf(const struct agent_pod *p, const char *action)
{
	const struct agent_kcall_conf *a;

	if (p->wl == NULL)
		return NULL;
	a = strcmp(action, "clear_cache") == 0 ? &p->wl->clear_cache :
	    &p->wl->reload_config;
	return a->line > 0 ? a : NULL;
}

// A pod a call may go to: Running with an IP and not terminating; when
// the whole service is asked, also Ready per the API.
static bool
call_target(const struct agent_pod *p, bool named, char *why, size_t n)
{
	if (p->terminating)
		snprintf(why, n, "terminating");
	else if (strcmp(p->phase, "Running") != 0 || p->ip[0] == '\0')
		snprintf(why, n, "not running (phase %s%s)", p->phase[0] ?
		    p->phase : "unknown", p->ip[0] ? "" : ", no IP");
	else if (!named && !p->api_ready)
		snprintf(why, n, "not Ready");
	else
		return true;
	return false;
}

static int
call_start(struct agent_kube *k, struct kube_call *call,
    const struct agent_pod *p, const struct agent_kcall_conf *a,
    int64_t now)
{
	bool v6 = strchr(p->ip, ':') != NULL;
	int64_t left = call->cmd->deadline_ms - now;
	char url[128 + AGENT_KCALL_PATH_MAX];
	int rv;

	copy(call->ns, sizeof(call->ns), p->ns);
	copy(call->name, sizeof(call->name), p->name);
	snprintf(url, sizeof(url), "http://%s%s%s:%d%s", v6 ? "[" : "", p->ip,
	    v6 ? "]" : "", (int)a->port, a->path);
	rv = agent_http_req_init_method(k->http, &call->req, url,
	    agent_kcall_method_name(a->method), left < a->timeout_ms ? left :
	    a->timeout_ms, on_call_done, call);
	if (rv == 0)
		rv = agent_http_req_start(&call->req, now);
	cm_log(CM_LOG_DEBUG, "cmd.call", "action=%s pod=%s/%s url=%s rv=%d",
	    call->cmd->action, p->ns, p->name, cm_q(url), rv);
	return rv;
}

// clear_cache, reload_config: the configured HTTP call on every Ready
// pod of the service on this node, or on the named pod.
static void
do_call(struct agent_kube *k, struct agent_cmd_ctx *ctx,
    const struct cm_msg_command *c, int64_t now)
{
	const struct agent_pod *named = NULL;
	struct kube_cmd *kc;
	size_t n = 0, cfg = 0, pods = 0;
	char why[128];

	for (const struct agent_pod *p = agent_kube_pods(k); p != NULL;
	    p = p->next) {
		if (!p->managed || strcmp(p->service, c->service) != 0 ||
		    (c->instance[0] != '\0' &&
		    strcmp(p->name, c->instance) != 0))
			continue;
		pods++;
		named = p;
		if (call_conf(p, c->action) == NULL)
			continue;
		cfg++;
		n += call_target(p, c->instance[0] != '\0', why, sizeof(why));
	}
	if (pods == 0) {
		agent_cmd_replyf(ctx, false, -ENOENT, "no managed pod %s%s of "
		    "service %s on node %s", c->instance, c->instance[0] ?
		    "" : "(any)", c->service, k->conf->node);
		return;
	}
	if (cfg == 0) {
		agent_cmd_replyf(ctx, false, -EOPNOTSUPP, "%s is not "
		    "configured for service %s on node %s (set %s: { path, "
		    "port } in its workloads entry)", c->action, c->service,
		    k->conf->node, c->action);
		return;
	}
	if (n == 0) {
		if (c->instance[0] == '\0') {
			agent_cmd_replyf(ctx, false, -EAGAIN, "no Ready pod of "
			    "service %s on node %s", c->service,
			    k->conf->node);
			return;
		}
		(void)call_target(named, true, why, sizeof(why));
		agent_cmd_replyf(ctx, false, -EAGAIN, "%s: %s", c->instance,
		    why);
		return;
	}
	kc = cmd_add(k, ctx, now);
	if (kc != NULL)
		kc->calls = calloc(n < KUBE_CALL_MAX ? n : KUBE_CALL_MAX,
		    sizeof(*kc->calls));
	if (kc == NULL || kc->calls == NULL) {
		if (kc != NULL)
			cmd_answer(cmd_take(k, kc->id), false, -ENOMEM,
			    "out of memory", NULL);
		else
			agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	for (const struct agent_pod *p = agent_kube_pods(k); p != NULL;
	    p = p->next) {
		const struct agent_kcall_conf *a;
		struct kube_call *call;

		if (!p->managed || strcmp(p->service, c->service) != 0 ||
		    (c->instance[0] != '\0' &&
		    strcmp(p->name, c->instance) != 0))
			continue;
		a = call_conf(p, c->action);
		if (a == NULL || !call_target(p, c->instance[0] != '\0', why,
		    sizeof(why)))
			continue;
		if (kc->n_calls == KUBE_CALL_MAX) {
			kc->skipped++;
			continue;
		}
		call = &kc->calls[kc->n_calls++];
		call->cmd = kc;
		kc->calls_left++;
		if (call_start(k, call, p, a, now) < 0) {
			call->done = true;
			kc->calls_left--;
			snprintf(call->why, sizeof(call->why),
			    "could not start the HTTP request");
		}
	}
}

// ---- commands ------------------------------------------------------------

void
kube_job_apply(struct agent_kube *k, struct kjob *j, int64_t now)
{
	switch (j->kind) {
	case KJ_LIST:
		list_apply(k, (struct kjob_list *)j, now);
		break;
	case KJ_EVICT:
		evict_apply(k, (struct kjob_evict *)j, now);
		break;
	case KJ_CHECK:
		check_apply(k, (struct kjob_check *)j);
		break;
	}
}

static void
do_restart(struct agent_kube *k, struct agent_cmd_ctx *ctx,
    const struct cm_msg_command *c, int64_t now)
{
	struct agent_pod *p;
	struct kube_cmd *kc;

	if (c->instance[0] == '\0') {
		agent_cmd_replyf(ctx, false, -EINVAL, "restart needs the pod "
		    "(instance): the agent evicts one named pod at a time, "
		    "never a whole service");
		return;
	}
	p = agent_kube_find(k, c->service, c->instance);
	if (p == NULL) {
		agent_cmd_replyf(ctx, false, -ENOENT, "no managed pod %s of "
		    "service %s on node %s%s", c->instance, c->service,
		    k->conf->node, gone_find(k, c->service, c->instance,
		    NULL) ?
		    " (it was evicted)" : "");
		return;
	}
	if (p->evicting) {
		agent_cmd_replyf(ctx, false, -EBUSY, "%s/%s: an eviction of "
		    "this pod is in progress", p->ns, p->name);
		return;
	}
	if (p->terminating) {
		agent_cmd_replyf(ctx, false, -EALREADY, "%s/%s is already "
		    "terminating", p->ns, p->name);
		return;
	}
	kc = cmd_add(k, ctx, now);
	if (kc == NULL) {
		agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	kube_permit_drop(p, "restart command");
	kube_evict_submit(k, p, false, kc->id);
	if (!p->evicting) { // the job could not be made
		kc = cmd_take(k, kc->id);
		cmd_answer(kc, false, -ENOMEM, "out of memory", NULL);
	}
}

static void
do_check(struct agent_kube *k, struct agent_cmd_ctx *ctx,
    const struct cm_msg_command *c, int64_t now)
{
	struct kjob_check *j = calloc(1, sizeof(*j));
	const struct kube_gone *g;
	struct kube_cmd *kc;

	if (j == NULL) {
		agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	for (const struct agent_pod *p = agent_kube_pods(k); p != NULL &&
	    j->n < KUBE_CHECK_MAX; p = p->next)
		if (p->managed && strcmp(p->service, c->service) == 0 &&
		    (c->instance[0] == '\0' ||
		    strcmp(p->name, c->instance) == 0))
			target_of_pod(k, &j->t[j->n++], p);
	g = c->instance[0] != '\0' && j->n == 0 ?
	    gone_find(k, c->service, c->instance, NULL) : NULL;
	if (g != NULL)
		target_of_gone(&j->t[j->n++], g);
	if (j->n == 0) {
		check_dispose(&j->h.base);
		agent_cmd_replyf(ctx, false, -ENOENT, "no managed pod %s%s of "
		    "service %s on node %s", c->instance, c->instance[0] ?
		    "" : "(any)", c->service, k->conf->node);
		return;
	}
	kc = cmd_add(k, ctx, now);
	if (kc == NULL) {
		check_dispose(&j->h.base);
		agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	j->h = (struct kjob){ .base = { .run = check_run,
		.dispose = check_dispose }, .kind = KJ_CHECK, .k8s = k->k8s };
	j->cmd_id = kc->id;
	copy(j->service, sizeof(j->service), c->service);
	agent_kwork_submit(k->work, &j->h.base);
}

void
agent_kube_command(struct agent_kube *k, struct agent_cmd_ctx *ctx,
    int64_t now)
{
	const struct cm_msg_command *c = &agent_cmd_request(ctx)->u.cmd;

	// The answer logs the command's one info line (agent_cmd_reply).
	cm_debug("cmd.command", "action=%s action_id=%llu service=%s "
	    "instance=%s reason=%s", cm_q(c->action),
	    (unsigned long long)c->action_id, cm_q(c->service),
	    cm_q(c->instance), cm_q(c->reason));
	if (k->stopping)
		agent_cmd_replyf(ctx, false, -ESHUTDOWN,
		    "agent is shutting down");
	else if (strcmp(c->action, "restart") == 0)
		do_restart(k, ctx, c, now);
	else if (strcmp(c->action, "check") == 0)
		do_check(k, ctx, c, now);
	else if (strcmp(c->action, "clear_cache") == 0 ||
	    strcmp(c->action, "reload_config") == 0)
		do_call(k, ctx, c, now);
	else
		agent_cmd_replyf(ctx, false, -EINVAL, "unknown action \"%s\" "
		    "(known in the kubernetes runtime: restart, check, "
		    "clear_cache, reload_config)", c->action);
}
