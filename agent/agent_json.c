// SPDX-License-Identifier: MIT
// agent_json: builds the status JSON document with cJSON.
#include "agent_json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cm_time.h"

// Collects allocation failures so the builders stay linear.
struct jb {
	bool oom;
};

static cJSON *
chk(struct jb *b, cJSON *item)
{
	if (item == NULL)
		b->oom = true;
	return item;
}

static void
add_str(struct jb *b, cJSON *o, const char *k, const char *v)
{
	chk(b, v ? cJSON_AddStringToObject(o, k, v) :
	    cJSON_AddNullToObject(o, k));
}

static void
add_num(struct jb *b, cJSON *o, const char *k, double v)
{
	chk(b, cJSON_AddNumberToObject(o, k, v));
}

static void
add_bool(struct jb *b, cJSON *o, const char *k, bool v)
{
	chk(b, cJSON_AddBoolToObject(o, k, v));
}

static void
add_time(struct jb *b, cJSON *o, const char *k, int64_t wall_ms)
{
	char buf[40];

	add_str(b, o, k, wall_ms > 0 ? cm_time_format(wall_ms, buf,
	    sizeof(buf)) : NULL);
}

static void
add_probe(struct jb *b, cJSON *o, const struct agent_inst *in)
{
	const struct agent_probe_state *ps = &in->probe;
	cJSON *j;

	if (in->svc->conf->probe.line == 0) {
		chk(b, cJSON_AddNullToObject(o, "probe"));
		return;
	}
	j = chk(b, cJSON_AddObjectToObject(o, "probe"));
	if (j == NULL)
		return;
	add_bool(b, j, "ok", ps->ok);
	add_num(b, j, "consecutive_failures", ps->consecutive_failures);
	add_str(b, j, "last_error", ps->last_error[0] ? ps->last_error : NULL);
	if (ps->ran)
		add_num(b, j, "last_ms", (double)ps->last_ms);
	else
		chk(b, cJSON_AddNullToObject(j, "last_ms"));
}

static void
add_output(struct jb *b, cJSON *o, const struct agent_outring *r,
    unsigned tail)
{
	cJSON *a = chk(b, cJSON_AddArrayToObject(o, "output"));
	unsigned n = r->n < tail ? r->n : tail;

	for (unsigned i = r->n - n; a != NULL && i < r->n; i++) {
		cJSON *s = chk(b, cJSON_CreateString(agent_outring_line(r, i)));

		if (s != NULL)
			cJSON_AddItemToArray(a, s);
	}
}

static void
add_permit_of(struct jb *b, cJSON *o, const struct agent_permit *pm,
    int64_t now)
{
	cJSON *j;

	if (pm->phase == AGENT_PERMIT_NONE) {
		chk(b, cJSON_AddNullToObject(o, "permit"));
		return;
	}
	j = chk(b, cJSON_AddObjectToObject(o, "permit"));
	if (j == NULL)
		return;
	add_str(b, j, "phase", agent_permit_phase_name(pm->phase));
	add_str(b, j, "kind", agent_restart_kind_name(pm->kind));
	add_str(b, j, "reason", pm->reason);
	add_str(b, j, "held", pm->held[0] ? pm->held : NULL);
	add_str(b, j, "last_verdict", pm->decided ?
	    agent_verdict_name(pm->last_verdict) : NULL);
	if (pm->phase == AGENT_PERMIT_HELD)
		add_num(b, j, "next_ask_in_ms", (double)(pm->retry_ms > now ?
		    pm->retry_ms - now : 0));
	else
		chk(b, cJSON_AddNullToObject(j, "next_ask_in_ms"));
}

static void
add_permit(struct jb *b, cJSON *o, const struct agent_inst *in, int64_t now)
{
	add_permit_of(b, o, &in->permit, now);
}

static cJSON *
inst_json(struct jb *b, const struct agent_inst *in, unsigned tail,
    int64_t now)
{
	cJSON *o = chk(b, cJSON_CreateObject());
	char ready[AGENT_REASON_MAX + 128];
	bool ok;

	if (o == NULL)
		return NULL;
	add_str(b, o, "name", in->name);
	add_str(b, o, "addr", in->addr);
	if (in->pid > 0)
		add_num(b, o, "pid", in->pid);
	else
		chk(b, cJSON_AddNullToObject(o, "pid"));
	add_str(b, o, "state", agent_state_name(in->state));
	ok = agent_proc_ready(in, now, ready, sizeof(ready));
	add_bool(b, o, "ready", ok);
	add_str(b, o, "ready_detail", ready);
	add_probe(b, o, in);
	add_num(b, o, "restarts", in->restarts);
	add_str(b, o, "last_restart_reason", in->last_restart_reason[0] ?
	    in->last_restart_reason : NULL);
	add_time(b, o, "last_restart_time", in->last_restart_wall_ms);
	add_str(b, o, "last_exit", in->last_exit[0] ? in->last_exit : NULL);
	add_str(b, o, "start_error", in->spawn_error[0] ? in->spawn_error :
	    NULL);
	add_num(b, o, "backoff_failures", in->backoff_failures);
	add_permit(b, o, in, now);
	add_output(b, o, &in->out, tail);
	return o;
}

static cJSON *
svc_json(struct jb *b, const struct agent_svc *s, unsigned tail, int64_t now)
{
	const struct agent_partition_conf *pc = &s->conf->partition_policy;
	cJSON *o = chk(b, cJSON_CreateObject()), *a, *pp;

	if (o == NULL)
		return NULL;
	add_str(b, o, "name", s->conf->name);
	add_str(b, o, "probe_path", s->conf->probe.line ? s->conf->probe.path :
	    NULL);
	pp = chk(b, cJSON_AddObjectToObject(o, "partition_policy"));
	if (pp != NULL) {
		add_num(b, pp, "max_restarts", (double)pc->max_restarts);
		add_num(b, pp, "window_ms", (double)pc->window_ms);
	}
	a = chk(b, cJSON_AddArrayToObject(o, "instances"));
	for (size_t i = 0; a != NULL && i < s->n; i++) {
		cJSON *in = inst_json(b, &s->inst[i], tail, now);

		if (in != NULL)
			cJSON_AddItemToArray(a, in);
	}
	return o;
}

static void
add_link(struct jb *b, cJSON *root, const struct agent_link_view *lv)
{
	cJSON *o = chk(b, cJSON_AddObjectToObject(root, "coordinator"));

	if (o == NULL)
		return;
	add_str(b, o, "url", lv->url);
	add_bool(b, o, "connected", lv->connected);
	add_bool(b, o, "registered", lv->registered);
	add_time(b, o, "last_ok", lv->last_ok_wall_ms);
	add_str(b, o, "last_error", lv->last_error && lv->last_error[0] ?
	    lv->last_error : NULL);
	add_num(b, o, "exchanges", (double)lv->exchanges);
	add_num(b, o, "failures", (double)lv->failures);
}

static void
add_stats(struct jb *b, cJSON *root, const struct agent_stats *st)
{
	cJSON *o = chk(b, cJSON_AddObjectToObject(root, "stats")), *pm;

	if (o == NULL)
		return;
	add_num(b, o, "uptime_ms", (double)st->uptime_ms);
	add_num(b, o, "loop_wakeups", (double)st->loop_wakeups);
	add_num(b, o, "bad_frames", (double)st->bad_frames);
	add_num(b, o, "refused", (double)st->refused);
	add_num(b, o, "unauthenticated", (double)st->unauthenticated);
	add_bool(b, o, "sealed", st->sealed);
	pm = chk(b, cJSON_AddObjectToObject(o, "permits"));
	for (int k = 0; pm != NULL && k < AGENT_VERDICTS; k++)
		add_num(b, pm, agent_verdict_name(k), st->permits ?
		    (double)st->permits[k] : 0);
}

static void
add_actions(struct jb *b, cJSON *root, const struct agent_actlog *log)
{
	cJSON *a = chk(b, cJSON_AddArrayToObject(root, "actions"));

	for (unsigned i = 0; a != NULL && log != NULL && i < log->n; i++) {
		const struct agent_actlog_entry *e = agent_actlog_get(log, i);
		cJSON *o = chk(b, cJSON_CreateObject());

		if (o == NULL)
			return;
		cJSON_AddItemToArray(a, o);
		add_time(b, o, "time", e->wall_ms);
		add_str(b, o, "kind", e->kind);
		add_str(b, o, "service", e->service);
		add_str(b, o, "instance", e->instance);
		add_str(b, o, "result", e->result);
		add_str(b, o, "detail", e->detail);
	}
}

// ---- kubernetes -----------------------------------------------------------

static void
add_kprobe(struct jb *b, cJSON *o, const struct agent_pod *p)
{
	const struct agent_probe_state *ps = &p->probe;
	char target[64 + AGENT_PROBE_PATH_MAX];
	cJSON *j;

	if (!p->has_probe) {
		chk(b, cJSON_AddNullToObject(o, "probe"));
		return;
	}
	j = chk(b, cJSON_AddObjectToObject(o, "probe"));
	if (j == NULL)
		return;
	add_str(b, j, "type", p->probe_type == AGENT_KPROBE_TCP ? "tcp" :
	    "http");
	snprintf(target, sizeof(target), ":%d%s", p->port,
	    p->probe_type == AGENT_KPROBE_TCP ? "" : p->path);
	add_str(b, j, "target", target);
	add_bool(b, j, "ok", ps->ok);
	add_num(b, j, "consecutive_failures", ps->consecutive_failures);
	add_str(b, j, "last_error", ps->last_error[0] ? ps->last_error : NULL);
	if (ps->ran)
		add_num(b, j, "last_ms", (double)ps->last_ms);
	else
		chk(b, cJSON_AddNullToObject(j, "last_ms"));
}

static cJSON *
pod_json(struct jb *b, const struct agent_pod *p, bool compact, int64_t now)
{
	cJSON *o = chk(b, cJSON_CreateObject());
	char ready[AGENT_REASON_MAX + 128], owner[300];
	bool ok;

	if (o == NULL)
		return NULL;
	add_str(b, o, "namespace", p->ns);
	add_str(b, o, "name", p->name);
	add_bool(b, o, "managed", p->managed);
	add_str(b, o, "phase", p->phase[0] ? p->phase : NULL);
	add_str(b, o, "ip", p->ip[0] ? p->ip : NULL);
	add_str(b, o, "state", agent_pod_state_name(agent_pod_state(p)));
	if (!p->managed) {
		add_str(b, o, "unmanaged_reason", p->why_unmanaged);
		return o;
	}
	chk(b, cJSON_AddNullToObject(o, "unmanaged_reason"));
	add_str(b, o, "service", p->service);
	add_str(b, o, "addr", p->addr[0] ? p->addr : NULL);
	if (compact)
		return o;
	add_bool(b, o, "api_ready", p->api_ready);
	add_num(b, o, "container_restarts", (double)p->container_restarts);
	add_str(b, o, "waiting", p->waiting[0] ? p->waiting : NULL);
	snprintf(owner, sizeof(owner), "%s/%s", p->owner_kind, p->owner_name);
	add_str(b, o, "owner", p->owner_kind[0] ? owner : NULL);
	ok = agent_pod_ready(p, now, ready, sizeof(ready));
	add_bool(b, o, "ready", ok);
	add_str(b, o, "ready_detail", ready);
	add_kprobe(b, o, p);
	add_permit_of(b, o, &p->permit, now);
	add_num(b, o, "evictions", p->evictions);
	add_str(b, o, "last_action", p->last_action[0] ? p->last_action :
	    NULL);
	add_time(b, o, "last_action_time", p->last_action_wall_ms);
	return o;
}

static void
add_kube(struct jb *b, cJSON *root, const struct agent_kube_view *v,
    size_t omitted)
{
	cJSON *o = chk(b, cJSON_AddObjectToObject(root, "kubernetes")), *e;

	if (o == NULL)
		return;
	add_str(b, o, "server", v->server);
	add_time(b, o, "last_list", v->last_list_wall_ms);
	add_str(b, o, "last_error", v->last_error[0] ? v->last_error : NULL);
	add_num(b, o, "lists", (double)v->lists);
	add_num(b, o, "list_failures", (double)v->list_failures);
	add_num(b, o, "pods", (double)v->pods);
	add_num(b, o, "managed", (double)v->managed);
	add_num(b, o, "pods_omitted", (double)omitted);
	add_num(b, o, "api_calls", (double)v->jobs);
	e = chk(b, cJSON_AddObjectToObject(o, "evictions"));
	for (unsigned i = 0; e != NULL && i < AGENT_EVICT_RESULTS; i++)
		add_num(b, e, agent_evict_result_name(i),
		    (double)v->evictions[i]);
}

static cJSON *
build_kube(struct jb *b, const struct agent_kube *k, const char *node,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, bool unmanaged,
    bool compact)
{
	cJSON *root = chk(b, cJSON_CreateObject()), *a;
	struct agent_kube_view v;
	size_t omitted = 0;

	if (root == NULL)
		return NULL;
	agent_kube_view(k, &v);
	add_str(b, root, "node", node);
	add_str(b, root, "runtime", "kubernetes");
	add_link(b, root, lv);
	a = chk(b, cJSON_AddArrayToObject(root, "pods"));
	for (const struct agent_pod *p = agent_kube_pods(k); a != NULL &&
	    p != NULL; p = p->next) {
		cJSON *o;

		if (!p->managed && !unmanaged) {
			omitted++;
			continue;
		}
		o = pod_json(b, p, compact, now);
		if (o != NULL)
			cJSON_AddItemToArray(a, o);
	}
	add_kube(b, root, &v, omitted);
	add_actions(b, root, log);
	add_stats(b, root, st);
	return root;
}

int
agent_json_kube_status(const struct agent_kube *k, const char *node,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, size_t max, char **ret)
{
	// Shorter and shorter: everything, the managed pods only, then
	// only their names, services, addresses and states.
	for (int tier = 0; tier < 3; tier++) {
		struct jb b = { .oom = false };
		cJSON *doc = build_kube(&b, k, node, lv, st, log, now,
		    tier == 0, tier == 2);
		char *text = b.oom ? NULL : cJSON_PrintUnformatted(doc);

		cJSON_Delete(doc);
		if (text == NULL)
			return -ENOMEM;
		if (strlen(text) < max) {
			*ret = text;
			return 0;
		}
		cJSON_free(text);
	}
	return -E2BIG;
}

// ---- the document -----------------------------------------------------------

static cJSON *
build(struct jb *b, const struct agent_proc *p,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, unsigned tail)
{
	cJSON *root = chk(b, cJSON_CreateObject()), *a;

	if (root == NULL)
		return NULL;
	add_str(b, root, "node", p->conf->node);
	add_str(b, root, "runtime", "process");
	add_link(b, root, lv);
	a = chk(b, cJSON_AddArrayToObject(root, "services"));
	for (size_t i = 0; a != NULL && i < p->n_svc; i++) {
		cJSON *s = svc_json(b, &p->svc[i], tail, now);

		if (s != NULL)
			cJSON_AddItemToArray(a, s);
	}
	add_actions(b, root, log);
	add_stats(b, root, st);
	return root;
}

int
agent_json_status(const struct agent_proc *p,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, size_t max, char **ret)
{
	static const unsigned tails[] = { AGENT_OUT_LINES, 8, 0 };

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		struct jb b = { .oom = false };
		cJSON *doc = build(&b, p, lv, st, log, now, tails[i]);
		char *text = b.oom ? NULL : cJSON_PrintUnformatted(doc);

		cJSON_Delete(doc);
		if (text == NULL)
			return -ENOMEM;
		if (strlen(text) < max) {
			*ret = text;
			return 0;
		}
		cJSON_free(text);
	}
	return -E2BIG;
}
