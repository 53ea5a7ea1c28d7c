// SPDX-License-Identifier: MIT
// agent_kube: the kubernetes runtime's pod table: discovery, probes,
// own restarts and their permits, status (see agent_kube.h).
#include "agent_kube_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_time.h"

// Labels controllers add to tell a pod's revision or identity apart:
// left out when looking for a pod's replacement.
static const char *const hash_labels[] = {
	"pod-template-hash",
	"controller-revision-hash",
	"pod-template-generation",
	"statefulset.kubernetes.io/pod-name",
	"apps.kubernetes.io/pod-index",
	"controller-uid",
	"job-name",
	"batch.kubernetes.io/controller-uid",
	"batch.kubernetes.io/job-name",
	"batch.kubernetes.io/job-completion-index",
};

static const char *const pod_state_names[] = {
	[AGENT_POD_PENDING] = "pending",
	[AGENT_POD_STARTING] = "starting",
	[AGENT_POD_RUNNING] = "running",
	[AGENT_POD_UNHEALTHY] = "unhealthy",
	[AGENT_POD_EVICTING] = "evicting",
	[AGENT_POD_TERMINATING] = "terminating",
	[AGENT_POD_COMPLETED] = "completed",
};

const char *
agent_pod_state_name(enum agent_pod_state s)
{
	return (unsigned)s < sizeof(pod_state_names) /
	    sizeof(pod_state_names[0]) ? pod_state_names[s] : "unknown";
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

// ---- pure helpers ------------------------------------------------------

int
agent_kube_port_parse(const char *s)
{
	long v = 0;

	if (s == NULL || s[0] == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c < '0' || *c > '9')
			return -EINVAL;
		v = v * 10 + (*c - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : -EINVAL;
}

bool
agent_kube_path_valid(const char *s)
{
	if (s == NULL || s[0] != '/' || strlen(s) > AGENT_PROBE_PATH_MAX)
		return false;
	for (const char *c = s; *c != '\0'; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return false;
	return true;
}

// A Deployment's ReplicaSet is named <deployment>-<pod-template-hash>.
static const char *
deployment_of(const char *rs, const char *hash, char *buf, size_t n)
{
	size_t rl = strlen(rs), hl = hash ? strlen(hash) : 0;

	if (hl == 0 || rl <= hl + 1 || rs[rl - hl - 1] != '-' ||
	    strcmp(rs + rl - hl, hash) != 0 || rl - hl - 1 >= n)
		return NULL;
	memcpy(buf, rs, rl - hl - 1);
	buf[rl - hl - 1] = '\0';
	return buf;
}

const char *
agent_kube_service_of(const cJSON *pod, char *buf, size_t n)
{
	const cJSON *ref = cm_k8s_controller_ref(pod);
	const char *kind = cm_k8s_str(ref, "kind", NULL);
	const char *owner = cm_k8s_str(ref, "name", NULL);
	const char *v;

	if (kind != NULL && owner != NULL) {
		if (strcmp(kind, "ReplicaSet") == 0) {
			v = deployment_of(owner, cm_k8s_str(pod, "metadata",
			    "labels", "pod-template-hash", NULL), buf, n);
			return v != NULL ? v : owner;
		}
		return owner;
	}
	v = cm_k8s_str(pod, "metadata", "labels", "app", NULL);
	if (v == NULL)
		v = cm_k8s_str(pod, "metadata", "labels",
		    "app.kubernetes.io/name", NULL);
	if (v == NULL)
		v = cm_k8s_str(pod, "metadata", "name", NULL);
	return v;
}

// An IP literal as the API gives it (v4 or v6), nothing else.
static bool
ip_valid(const char *s, bool *v6)
{
	unsigned char a[16];

	*v6 = false;
	if (s == NULL || strlen(s) >= 48)
		return false;
	if (inet_pton(AF_INET, s, a) == 1)
		return true;
	*v6 = inet_pton(AF_INET6, s, a) == 1;
	return *v6;
}

static void
copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}

// The pod's labels without the controllers' hash labels, as a selector
// string ("" when there are none or it would not fit).
static void
own_selector(const cJSON *pod, char *buf, size_t n)
{
	const cJSON *labels = cm_k8s_at(pod, "metadata", "labels", NULL), *l;
	cJSON *sel = cJSON_CreateObject(), *ml;

	buf[0] = '\0';
	ml = sel != NULL ? cJSON_AddObjectToObject(sel, "matchLabels") : NULL;
	if (ml == NULL || !cJSON_IsObject(labels)) {
		cJSON_Delete(sel);
		return;
	}
	cJSON_ArrayForEach(l, labels) {
		bool skip = !cJSON_IsString(l);

		for (size_t i = 0; !skip && i < sizeof(hash_labels) /
		    sizeof(hash_labels[0]); i++)
			skip = strcmp(l->string, hash_labels[i]) == 0;
		if (!skip)
			cJSON_AddStringToObject(ml, l->string, l->valuestring);
	}
	if (cJSON_GetArraySize(ml) == 0 ||
	    cm_k8s_selector_string(sel, buf, n) < 0)
		buf[0] = '\0';
	cJSON_Delete(sel);
}

// ---- pod table -------------------------------------------------------------

struct agent_pod *
kube_pod_find(struct agent_kube *k, const char *ns, const char *name)
{
	for (struct agent_pod *p = k->pods; p != NULL; p = p->next)
		if (strcmp(p->ns, ns) == 0 && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static int
pod_cmp(const struct agent_pod *p, const char *ns, const char *name)
{
	int c = strcmp(p->ns, ns);

	return c != 0 ? c : strcmp(p->name, name);
}

static struct agent_pod *
pod_new(struct agent_kube *k, const char *ns, const char *name)
{
	struct agent_pod *p = calloc(1, sizeof(*p)), **pp = &k->pods;

	if (p == NULL)
		return NULL;
	copy(p->ns, sizeof(p->ns), ns);
	copy(p->name, sizeof(p->name), name);
	while (*pp != NULL && pod_cmp(*pp, ns, name) < 0)
		pp = &(*pp)->next;
	p->next = *pp;
	*pp = p;
	k->n_pods++;
	return p;
}

static void
pod_free(struct agent_pod *p)
{
	agent_http_req_fini(&p->probe.req);
	free(p);
}

static void
pod_remove(struct agent_kube *k, struct agent_pod *p)
{
	for (struct agent_pod **pp = &k->pods; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp != p)
			continue;
		*pp = p->next;
		k->n_pods--;
		pod_free(p);
		return;
	}
}

// ---- own evictions per service ------------------------------------------

static struct kube_svc *
svc_get(struct agent_kube *k, const char *name, size_t cap)
{
	struct kube_svc *s;

	for (s = k->svcs; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cap = cap > 0 ? cap : 1;
	s->ring = calloc(s->cap, sizeof(*s->ring));
	if (s->ring == NULL) {
		free(s);
		return NULL;
	}
	copy(s->name, sizeof(s->name), name);
	s->next = k->svcs;
	k->svcs = s;
	return s;
}

void
kube_own_add(struct agent_kube *k, const char *service, int64_t now)
{
	struct kube_svc *s = svc_get(k, service, AGENT_PARTITION_MAX);

	if (s == NULL)
		return;
	s->ring[s->head] = now;
	s->head = (s->head + 1) % s->cap;
	if (s->n < s->cap)
		s->n++;
}

unsigned
agent_kube_own_since(const struct agent_kube *k, const char *service,
    int64_t since)
{
	unsigned n = 0;

	for (const struct kube_svc *s = k->svcs; s != NULL; s = s->next) {
		if (strcmp(s->name, service) != 0)
			continue;
		for (size_t i = 0; i < s->n; i++)
			n += s->ring[i] >= since;
	}
	return n;
}

// ---- permits ----------------------------------------------------------------

void
kube_permit_drop(struct agent_pod *p, const char *why)
{
	struct agent_permit *pm = &p->permit;

	if (pm->phase == AGENT_PERMIT_NONE)
		return;
	cm_info("permit.dropped", "pod=%s/%s kind=%s phase=%s why=%s", p->ns,
	    p->name, agent_restart_kind_name(pm->kind),
	    agent_permit_phase_name(pm->phase), cm_q(why));
	agent_permit_reset(pm);
}

static void
permit_want(struct agent_pod *p, const char *reason, int64_t now)
{
	kube_permit_drop(p, "replaced by a newer restart need");
	agent_permit_want(&p->permit, AGENT_RESTART_PROBE, reason, now);
	cm_info("permit.wanted", "pod=%s/%s kind=probe reason=%s", p->ns,
	    p->name, cm_q(reason));
}

// Holds the pod's own restart: asked again after the backoff.
void
kube_permit_hold(struct agent_kube *k, struct agent_pod *p, const char *why,
    int64_t now)
{
	struct agent_permit *pm = &p->permit;

	(void)k;
	pm->phase = AGENT_PERMIT_HELD;
	pm->holds++;
	pm->retry_ms = now + agent_backoff_delay(p->backoff, pm->holds);
	agent_copy_text(pm->held, sizeof(pm->held), why);
}

struct agent_pod *
agent_kube_next_wanted(struct agent_kube *k)
{
	struct agent_pod *best = NULL;

	for (struct agent_pod *p = k->pods; p != NULL; p = p->next)
		if (p->managed && p->permit.phase == AGENT_PERMIT_WANTED &&
		    (best == NULL ||
		    p->permit.wanted_ms < best->permit.wanted_ms))
			best = p;
	return best;
}

struct agent_pod *
agent_kube_find(struct agent_kube *k, const char *service,
    const char *instance)
{
	for (struct agent_pod *p = k->pods; p != NULL; p = p->next)
		if (p->managed && strcmp(p->name, instance) == 0 &&
		    strcmp(p->service, service) == 0)
			return p;
	return NULL;
}

void
agent_kube_permit_decided(struct agent_kube *k, struct agent_pod *p,
    enum agent_verdict v, const char *why, int64_t now)
{
	struct agent_permit *pm = &p->permit;

	if (pm->phase != AGENT_PERMIT_ASKING &&
	    pm->phase != AGENT_PERMIT_WANTED)
		return;
	pm->decided = true;
	pm->last_verdict = v;
	if (v == AGENT_VERDICT_REFUSED || v == AGENT_VERDICT_PARTITION_HELD) {
		kube_permit_hold(k, p, why, now);
		return;
	}
	if (p->evicting || p->terminating || k->stopping) {
		kube_permit_drop(p, p->evicting ? "an eviction is already in "
		    "progress" : p->terminating ? "the pod is terminating" :
		    "agent shutdown");
		return;
	}
	// Every eviction the agent decides on counts for the partition
	// policy, whatever the API then says (a conservative count).
	kube_own_add(k, p->service, now);
	pm->phase = AGENT_PERMIT_NONE;
	pm->gen++;
	pm->reasked = false;
	pm->held[0] = '\0';
	kube_evict_submit(k, p, true, 0);
}

// A held permit is asked again when its delay is over.
static int64_t
tick_permit(struct agent_pod *p, int64_t now)
{
	int64_t next;

	if (agent_permit_rearm(&p->permit, now, &next))
		cm_debug("permit.ask_again", "pod=%s/%s holds=%u", p->ns,
		    p->name, p->permit.holds);
	return next;
}

// ---- probes -------------------------------------------------------------

static bool
probing(const struct agent_pod *p)
{
	return p->managed && p->has_probe && !p->terminating &&
	    !p->evicting && strcmp(p->phase, "Running") == 0 &&
	    p->ip[0] != '\0';
}

void
kube_probe_stop(struct agent_pod *p)
{
	agent_http_req_cancel(&p->probe.req);
	p->running_since_ms = 0;
}

static void
probe_ok(struct agent_pod *p)
{
	bool recovered = p->probe_ever_ok && p->probe.consecutive_failures > 0;

	p->count.probes_ok++;
	p->probe.ok = true;
	p->probe.consecutive_failures = 0;
	p->probe.last_error[0] = '\0';
	if (p->permit.phase != AGENT_PERMIT_NONE)
		kube_permit_drop(p, "the probe passed again");
	if (!p->probe_ever_ok)
		cm_info("probe.healthy", "pod=%s/%s", p->ns, p->name);
	else if (recovered)
		cm_notice("probe.recovered", "pod=%s/%s", p->ns, p->name);
	p->probe_ever_ok = true;
}

static void
probe_failed(struct agent_pod *p, const char *reason, int64_t now)
{
	unsigned limit = (unsigned)p->timing->failure_threshold;
	char why[AGENT_REASON_MAX];

	p->count.probes_failed++;
	p->probe.ok = false;
	p->probe.consecutive_failures++;
	copy(p->probe.last_error, sizeof(p->probe.last_error), reason);
	cm_log(p->probe_ever_ok ? CM_LOG_WARN : CM_LOG_INFO, "probe.failed",
	    "pod=%s/%s failures=%u threshold=%u error=%s", p->ns, p->name,
	    p->probe.consecutive_failures, limit, cm_q(reason));
	if (p->probe.consecutive_failures < limit ||
	    p->permit.phase != AGENT_PERMIT_NONE || p->evicting)
		return;
	snprintf(why, sizeof(why), "probe failed %u times: %s",
	    p->probe.consecutive_failures, reason);
	permit_want(p, why, now);
}

static void
on_probe_done(struct agent_http_req *r, bool ok, long status,
    const char *reason, int64_t elapsed_ms, void *arg)
{
	struct agent_pod *p = arg;
	int64_t now = r->start_ms + elapsed_ms;

	(void)status;
	if (!probing(p) || p->running_since_ms == 0)
		return; // the pod left the probing states meanwhile
	p->probe.ran = true;
	p->probe.last_ms = elapsed_ms;
	if (ok)
		probe_ok(p);
	else
		probe_failed(p, reason, now);
}

static int
probe_setup(struct agent_kube *k, struct agent_pod *p)
{
	char url[128 + AGENT_PROBE_PATH_MAX];
	bool v6 = strchr(p->ip, ':') != NULL;
	int rv;

	agent_http_req_fini(&p->probe.req);
	snprintf(url, sizeof(url), "http://%s%s%s:%d%s", v6 ? "[" : "", p->ip,
	    v6 ? "]" : "", p->port, p->probe_type == AGENT_KPROBE_HTTP ?
	    p->path : "/");
	if (p->probe_type == AGENT_KPROBE_TCP)
		rv = agent_http_req_init_connect(k->http, &p->probe.req, url,
		    p->timing->timeout_ms, on_probe_done, p);
	else
		rv = agent_http_req_init(k->http, &p->probe.req, url, false,
		    p->timing->timeout_ms, on_probe_done, p);
	p->probe_ready = rv == 0;
	return rv;
}

// Starts the pod's probe if due; returns when it is due next.
static int64_t
probe_due(struct agent_kube *k, struct agent_pod *p, int64_t now)
{
	if (!probing(p)) {
		if (p->running_since_ms != 0)
			kube_probe_stop(p);
		return INT64_MAX;
	}
	if (p->running_since_ms == 0) {
		p->running_since_ms = now;
		p->probe.next_ms = now + p->timing->initial_delay_ms;
	}
	if (p->probe.req.active)
		return INT64_MAX; // curl's timer covers it
	if (now < p->probe.next_ms)
		return p->probe.next_ms;
	p->probe.next_ms = now + p->timing->period_ms;
	if ((!p->probe_ready && probe_setup(k, p) < 0) ||
	    agent_http_req_start(&p->probe.req, now) < 0)
		probe_failed(p, "could not start the probe request", now);
	return p->probe.req.active ? INT64_MAX : p->probe.next_ms;
}

// ---- discovery -------------------------------------------------------------

static const struct agent_kwl_conf *
covering(struct agent_kube *k, const char *ns, const cJSON *labels,
    size_t *ret_i)
{
	for (size_t i = 0; i < k->conf->workloads.n; i++) {
		const struct agent_kwl_conf *w = agent_conf_kwl(k->conf, i);

		if (w->ns != NULL && strcmp(w->ns, ns) != 0)
			continue;
		if (labels != NULL &&
		    cm_k8s_selector_matches(k->selectors[i], labels)) {
			*ret_i = i;
			return w;
		}
	}
	return NULL;
}

// Facts read straight off the pod object; `listed_ms` is when the list
// was started (an older list does not undo a later eviction).
static void
read_status(struct agent_pod *p, const cJSON *o, int64_t listed_ms)
{
	const cJSON *cs, *c, *ref = cm_k8s_controller_ref(o);
	bool v6;
	const char *ip = cm_k8s_str(o, "status", "podIP", NULL);

	copy(p->phase, sizeof(p->phase), cm_k8s_str(o, "status", "phase",
	    NULL));
	copy(p->ip, sizeof(p->ip), ip_valid(ip, &v6) ? ip : NULL);
	p->api_ready = cm_k8s_pod_ready(o);
	p->terminating = cm_k8s_terminating(o) || (p->evicted_ms != 0 &&
	    listed_ms <= p->evicted_ms);
	p->container_restarts = 0;
	p->waiting[0] = '\0';
	cs = cm_k8s_at(o, "status", "containerStatuses", NULL);
	cJSON_ArrayForEach(c, (cJSON_IsArray(cs) ? cs : NULL)) {
		int64_t n = 0;
		const char *w = cm_k8s_str(c, "state", "waiting", "reason",
		    NULL);

		if (cm_k8s_int(c, &n, "restartCount", NULL) == 0 && n > 0 &&
		    n < INT32_MAX)
			p->container_restarts += n;
		if (w != NULL && p->waiting[0] == '\0')
			copy(p->waiting, sizeof(p->waiting), w);
	}
	copy(p->owner_kind, sizeof(p->owner_kind), cm_k8s_str(ref, "kind",
	    NULL));
	copy(p->owner_name, sizeof(p->owner_name), cm_k8s_str(ref, "name",
	    NULL));
	copy(p->owner_uid, sizeof(p->owner_uid), cm_k8s_str(ref, "uid",
	    NULL));
	own_selector(o, p->selector, sizeof(p->selector));
}

// What the agent does with the pod: managed or not, its service, its
// probe. Returns true when the probe target changed.
static bool
classify(struct agent_kube *k, struct agent_pod *p, const cJSON *o)
{
	const struct agent_kannot_conf *an = &k->conf->kubernetes.annotations;
	const cJSON *labels = cm_k8s_at(o, "metadata", "labels", NULL);
	const char *aport = cm_k8s_str(o, "metadata", "annotations",
	    AGENT_KUBE_ANN_PORT, NULL);
	const char *apath = cm_k8s_str(o, "metadata", "annotations",
	    AGENT_KUBE_ANN_PATH, NULL);
	const struct agent_kwl_conf *w;
	const char *svc;
	char buf[CM_NAME_MAX + 8];
	int port = aport != NULL ? agent_kube_port_parse(aport) : 0, type;
	size_t wi = 0;
	char path[AGENT_PROBE_PATH_MAX + 1] = "";
	bool had = p->has_probe, changed;

	w = covering(k, p->ns, cJSON_IsObject(labels) ? labels : NULL, &wi);
	p->wl = w;
	p->managed = false;
	p->why_unmanaged[0] = '\0';
	if (aport != NULL && port < 0)
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "bad %s annotation", AGENT_KUBE_ANN_PORT);
	if (apath != NULL && !agent_kube_path_valid(apath))
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "bad %s annotation", AGENT_KUBE_ANN_PATH);
	if (w == NULL && (port <= 0 || !an->enabled) &&
	    p->why_unmanaged[0] == '\0')
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "no workload covers it%s", an->enabled ? " and it has no "
		    AGENT_KUBE_ANN_PORT " annotation" : "");
	svc = w != NULL && w->name != NULL ? w->name :
	    agent_kube_service_of(o, buf, sizeof(buf));
	if (p->why_unmanaged[0] == '\0' && !cm_name_valid(p->name))
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "pod name not usable as an instance name (%d bytes at "
		    "most)", CM_NAME_MAX - 1);
	if (p->why_unmanaged[0] == '\0' && (svc == NULL ||
	    !cm_name_valid(svc)) && w != NULL)
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "no usable service name (set workloads[%zu].name)", wi);
	else if (p->why_unmanaged[0] == '\0' && (svc == NULL ||
	    !cm_name_valid(svc)))
		snprintf(p->why_unmanaged, sizeof(p->why_unmanaged),
		    "its owner's name or app label is not a usable service "
		    "name (%d bytes at most)", CM_NAME_MAX - 1);
	p->managed = p->why_unmanaged[0] == '\0';
	copy(p->service, sizeof(p->service), p->managed ? svc : NULL);
	// The probe: annotations win over the entry.
	type = apath != NULL ? AGENT_KPROBE_HTTP : w != NULL &&
	    w->probe.line > 0 ? w->probe.type : AGENT_KPROBE_TCP;
	if (apath != NULL)
		copy(path, sizeof(path), apath);
	else if (w != NULL && w->probe.line > 0)
		copy(path, sizeof(path), w->probe.path);
	if (port <= 0 && w != NULL && w->probe.line > 0)
		port = (int)w->probe.port;
	p->timing = w != NULL && w->probe.line > 0 ? &w->probe :
	    &an->probe;
	p->backoff = w != NULL ? &w->restart_backoff : &an->restart_backoff;
	p->policy = w != NULL ? &w->partition_policy : &an->partition_policy;
	p->has_probe = p->managed && port > 0;
	changed = had != p->has_probe || port != p->port ||
	    type != p->probe_type || strcmp(path, p->path) != 0;
	p->port = port > 0 ? port : 0;
	p->probe_type = type;
	copy(p->path, sizeof(p->path), path);
	return changed;
}

static void
set_addr(struct agent_pod *p)
{
	bool v6 = strchr(p->ip, ':') != NULL;

	if (p->ip[0] == '\0')
		p->addr[0] = '\0';
	else if (p->port > 0)
		snprintf(p->addr, sizeof(p->addr), "%s%s%s:%d", v6 ? "[" : "",
		    p->ip, v6 ? "]" : "", p->port);
	else
		copy(p->addr, sizeof(p->addr), p->ip);
}

static void
pod_update(struct agent_kube *k, const cJSON *o, int64_t listed_ms)
{
	const char *ns = cm_k8s_str(o, "metadata", "namespace", NULL);
	const char *name = cm_k8s_str(o, "metadata", "name", NULL);
	const char *uid = cm_k8s_str(o, "metadata", "uid", NULL);
	struct agent_pod *p;
	char old_ip[sizeof(p->ip)];
	bool changed;

	if (!cm_k8s_name_valid(CM_K8S_NAME_LABEL, ns) ||
	    !cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, name) || uid == NULL ||
	    strlen(uid) >= sizeof(p->uid))
		return;
	p = kube_pod_find(k, ns, name);
	if (p != NULL && strcmp(p->uid, uid) != 0) {
		cm_info("kube.pod_replaced", "pod=%s/%s", ns, name);
		pod_remove(k, p);
		p = NULL;
	}
	if (p == NULL) {
		if (k->n_pods >= AGENT_KUBE_MAX_PODS) {
			if (!k->full_logged)
				cm_warn("kube.too_many_pods", "max=%d",
				    AGENT_KUBE_MAX_PODS);
			k->full_logged = true;
			return;
		}
		p = pod_new(k, ns, name);
		if (p == NULL)
			return;
		copy(p->uid, sizeof(p->uid), uid);
	}
	p->seen = k->gen;
	copy(old_ip, sizeof(old_ip), p->ip);
	read_status(p, o, listed_ms);
	changed = classify(k, p, o) || strcmp(old_ip, p->ip) != 0;
	set_addr(p);
	if (changed) {
		kube_probe_stop(p);
		agent_http_req_fini(&p->probe.req);
		p->probe_ready = false;
		p->probe = (struct agent_probe_state){ 0 };
		p->probe_ever_ok = false;
	}
	if (!p->managed)
		kube_permit_drop(p, "the pod is not managed");
}

// FNV-1a over what a register announces.
static uint64_t
managed_sig(const struct agent_kube *k, size_t *ret_n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t n = 0;

	for (const struct agent_pod *p = k->pods; p != NULL; p = p->next) {
		const char *parts[] = { p->service, p->name, p->addr };

		if (!p->managed)
			continue;
		n++;
		for (size_t i = 0; i < 3; i++)
			for (const char *c = parts[i]; ; c++) {
				h = (h ^ (unsigned char)*c) * 1099511628211ULL;
				if (*c == '\0')
					break;
			}
	}
	*ret_n = n;
	return h;
}

void
kube_apply_items(struct agent_kube *k, const cJSON *items, int64_t listed_ms)
{
	const cJSON *it;
	struct agent_pod **pp = &k->pods;
	uint64_t sig;
	size_t n;

	k->gen++;
	cJSON_ArrayForEach(it, items)
		pod_update(k, it, listed_ms);
	while (*pp != NULL) {
		struct agent_pod *p = *pp;

		if (p->seen == k->gen) {
			pp = &p->next;
			continue;
		}
		cm_info("kube.pod_gone", "pod=%s/%s", p->ns, p->name);
		*pp = p->next;
		k->n_pods--;
		pod_free(p);
	}
	sig = managed_sig(k, &n);
	if (!k->have_sig || sig != k->sig) {
		k->changed = k->have_sig;
		cm_info("kube.pods", "pods=%zu managed=%zu", k->n_pods, n);
	}
	k->n_managed = n;
	k->sig = sig;
	k->have_sig = true;
}

// ---- life cycle ---------------------------------------------------------

static int
build_selectors(struct agent_kube *k)
{
	size_t n = k->conf->workloads.n;

	k->selectors = calloc(n ? n : 1, sizeof(*k->selectors));
	if (k->selectors == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct agent_kwl_conf *w = agent_conf_kwl(k->conf, i);
		cJSON *s = cJSON_CreateObject(), *ml;

		k->selectors[i] = s;
		ml = s != NULL ? cJSON_AddObjectToObject(s, "matchLabels") :
		    NULL;
		if (ml == NULL)
			return -ENOMEM;
		for (size_t j = 0; j < w->selector.n; j++)
			if (cJSON_AddStringToObject(ml, w->selector.keys[j],
			    w->selector.vals[j]) == NULL)
				return -ENOMEM;
	}
	return 0;
}

int
agent_kube_new(const struct agent_conf *conf, struct agent_http *http,
    struct agent_actlog *log, void (*wake)(void *), void *wake_arg,
    struct agent_kube **ret, char *err, size_t errlen)
{
	struct agent_kube *k = calloc(1, sizeof(*k));
	int rv;

	if (k == NULL)
		return -ENOMEM;
	k->conf = conf;
	k->http = http;
	k->log = log;
	k->next_cmd_id = 1;
	rv = build_selectors(k);
	if (rv == 0)
		rv = cm_k8s_new(&k->k8s, &conf->kubernetes.client, err, errlen);
	if (rv == 0) {
		rv = agent_kwork_new((unsigned)conf->kubernetes.workers, wake,
		    wake_arg, &k->work);
		if (rv < 0)
			snprintf(err, errlen, "kubernetes workers: %s",
			    strerror(-rv));
	}
	if (rv < 0) {
		agent_kube_free(k);
		return rv;
	}
	// What the first register announces: nothing yet.
	k->sig = managed_sig(k, &k->n_managed);
	k->have_sig = true;
	cm_info("kube.start", "node=%s server=%s workloads=%zu",
	    conf->node, cm_q(cm_k8s_server(k->k8s)), conf->workloads.n);
	*ret = k;
	return 0;
}

void
agent_kube_free(struct agent_kube *k)
{
	if (k == NULL)
		return;
	agent_kwork_free(k->work); // waits for API calls in flight
	kube_gone_clear(k);
	while (k->pods != NULL) {
		struct agent_pod *p = k->pods;

		k->pods = p->next;
		pod_free(p);
	}
	while (k->svcs != NULL) {
		struct kube_svc *s = k->svcs;

		k->svcs = s->next;
		free(s->ring);
		free(s);
	}
	for (size_t i = 0; k->selectors != NULL &&
	    i < k->conf->workloads.n; i++)
		cJSON_Delete(k->selectors[i]);
	free(k->selectors);
	cm_k8s_free(k->k8s);
	free(k);
}

int64_t
agent_kube_tick(struct agent_kube *k, int64_t now)
{
	struct agent_kjob *j;
	int64_t next = INT64_MAX;

	while ((j = agent_kwork_take(k->work)) != NULL) {
		kube_job_apply(k, (struct kjob *)j, now);
		j->dispose(j);
	}
	if (!k->stopping && !k->listing && now >= k->list_due_ms)
		kube_list_submit(k);
	if (!k->listing)
		next = k->list_due_ms;
	for (struct agent_pod *p = k->pods; p != NULL; p = p->next) {
		if (!p->managed)
			continue;
		next = min64(next, tick_permit(p, now));
		if (!k->stopping)
			next = min64(next, probe_due(k, p, now));
	}
	return min64(next, kube_cmds_tick(k, now));
}

bool
agent_kube_take_changed(struct agent_kube *k)
{
	bool c = k->changed;

	k->changed = false;
	return c;
}

int
agent_kube_workloads(const struct agent_kube *k, struct cm_workload **ret,
    size_t *ret_n)
{
	struct cm_workload *v = calloc(k->n_managed ? k->n_managed : 1,
	    sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		return -ENOMEM;
	for (const struct agent_pod *p = k->pods; p != NULL &&
	    n < k->n_managed && n < CM_MSG_MAX_WORKLOADS; p = p->next) {
		if (!p->managed)
			continue;
		copy(v[n].service, sizeof(v[n].service), p->service);
		copy(v[n].instance, sizeof(v[n].instance), p->name);
		copy(v[n].addr, sizeof(v[n].addr), p->addr);
		v[n++].healthy = agent_pod_state(p) == AGENT_POD_RUNNING;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

unsigned
agent_kube_unhealthy(const struct agent_kube *k)
{
	unsigned n = 0;

	for (const struct agent_pod *p = k->pods; p != NULL; p = p->next)
		n += p->managed && agent_pod_state(p) != AGENT_POD_RUNNING;
	return n;
}

void
agent_kube_shutdown(struct agent_kube *k)
{
	if (k->stopping)
		return;
	k->stopping = true;
	for (struct agent_pod *p = k->pods; p != NULL; p = p->next) {
		kube_permit_drop(p, "agent shutdown");
		kube_probe_stop(p);
	}
	kube_cmds_abort(k, -ESHUTDOWN, "agent is shutting down");
}

bool
agent_kube_busy(const struct agent_kube *k)
{
	return k->cmds != NULL;
}

// ---- status --------------------------------------------------------------

const struct agent_pod *
agent_kube_pods(const struct agent_kube *k)
{
	return k->pods;
}

void
agent_kube_view(const struct agent_kube *k, struct agent_kube_view *v)
{
	v->server = cm_k8s_server(k->k8s);
	v->last_list_wall_ms = k->last_list_wall_ms;
	v->last_error = k->list_error;
	v->lists = k->lists;
	v->list_failures = k->list_failures;
	v->pods = k->n_pods;
	v->managed = k->n_managed;
	v->jobs = agent_kwork_busy(k->work);
	v->evictions = k->evictions;
}

enum agent_pod_state
agent_pod_state(const struct agent_pod *p)
{
	if (p->evicting)
		return AGENT_POD_EVICTING;
	if (p->terminating)
		return AGENT_POD_TERMINATING;
	if (strcmp(p->phase, "Succeeded") == 0 ||
	    strcmp(p->phase, "Failed") == 0)
		return AGENT_POD_COMPLETED;
	if (strcmp(p->phase, "Running") != 0 || p->ip[0] == '\0')
		return AGENT_POD_PENDING;
	if (!p->has_probe)
		return p->api_ready ? AGENT_POD_RUNNING : AGENT_POD_STARTING;
	if (p->probe.ran && p->probe.ok)
		return AGENT_POD_RUNNING;
	return p->probe_ever_ok ? AGENT_POD_UNHEALTHY : AGENT_POD_STARTING;
}

static void
permit_note(const struct agent_pod *p, char *buf, size_t n)
{
	const struct agent_permit *pm = &p->permit;
	size_t o = strlen(buf);

	if (pm->phase == AGENT_PERMIT_NONE || o + 1 >= n)
		return;
	if (pm->held[0] != '\0')
		snprintf(buf + o, n - o, "; eviction held: %s%s", pm->held,
		    pm->phase == AGENT_PERMIT_HELD ? "" : " (asking again)");
	else
		snprintf(buf + o, n - o, "; eviction waiting for the "
		    "coordinator's permission");
}

bool
agent_pod_ready(const struct agent_pod *p, int64_t now, char *buf, size_t n)
{
	enum agent_pod_state st = agent_pod_state(p);
	const struct agent_probe_state *ps = &p->probe;

	(void)now;
	if (buf == NULL)
		return st == AGENT_POD_RUNNING;
	switch (st) {
	case AGENT_POD_RUNNING:
		snprintf(buf, n, p->has_probe ? "running (probe ok)" :
		    "running (Ready per the API; no probe)");
		break;
	case AGENT_POD_STARTING:
		if (!p->has_probe)
			snprintf(buf, n, "starting (not Ready per the API%s%s)",
			    p->waiting[0] ? ": " : "", p->waiting);
		else if (ps->consecutive_failures > 0)
			snprintf(buf, n, "starting (probe not passed yet; "
			    "failed %u times: %s)", ps->consecutive_failures,
			    ps->last_error);
		else
			snprintf(buf, n, "starting (probe not passed yet)");
		break;
	case AGENT_POD_UNHEALTHY:
		snprintf(buf, n, "unhealthy (probe failed %u times, evict at "
		    "%lld: %s)", ps->consecutive_failures,
		    (long long)p->timing->failure_threshold, ps->last_error);
		break;
	case AGENT_POD_PENDING:
		snprintf(buf, n, "pending (phase %s%s)", p->phase[0] ?
		    p->phase : "unknown", p->ip[0] ? "" : ", no IP");
		break;
	default:
		snprintf(buf, n, "%s", agent_pod_state_name(st));
		break;
	}
	permit_note(p, buf, n);
	agent_copy_text(buf, n, buf);
	return st == AGENT_POD_RUNNING;
}

size_t
agent_kube_metrics_rows(const struct agent_kube *k,
    struct agent_metrics_inst *rows, size_t max, int64_t now)
{
	size_t n = 0;

	for (const struct agent_pod *p = k->pods; p != NULL && n < max;
	    p = p->next) {
		if (!p->managed)
			continue;
		copy(rows[n].service, sizeof(rows[n].service), p->service);
		copy(rows[n].instance, sizeof(rows[n].instance), p->name);
		rows[n].c = p->count;
		rows[n++].up = agent_pod_ready(p, now, NULL, 0);
	}
	return n;
}
