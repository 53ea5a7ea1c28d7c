// SPDX-License-Identifier: MIT
// agent_metrics: /metrics and /healthz of reflex-agent over nng's HTTP
// server, answered from a snapshot the main loop publishes.
#include "agent_metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>

#include "cm_log.h"
#include "cm_wire.h"
#include "cm_time.h"

#define RELEASE_WAIT_MS 2000 // for nng to drop its handlers at close

// What the main loop and the HTTP handlers share. Reference counted: the
// agent holds one reference and every handler registered with nng holds
// one (dropped by nng through the handler's destructor once it no longer
// uses the handler), so a request that is still running when the agent
// stops never sees freed memory.
struct shared {
	pthread_mutex_t mu; // guards snap and due_ms
	struct agent_metrics_snap snap;
	int64_t due_ms; // cm_mono_ms() by which the loop publishes again
	atomic_int refs;
};

struct agent_metrics {
	struct shared *sh;
	size_t cap; // rows allocated in sh->snap.inst (main thread)
	nng_http_server *srv;
};

// ---- rendering --------------------------------------------------------------

const char *
agent_evict_result_name(unsigned i)
{
	static const char *const names[AGENT_EVICT_RESULTS] = { "evicted",
		"deleted", "blocked", "gone", "failed" };

	return i < AGENT_EVICT_RESULTS ? names[i] : "unknown";
}

int
agent_metrics_escape(const char *v, char *buf, size_t n)
{
	size_t o = 0;

	for (; *v != '\0'; v++) {
		const char *rep = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" :
		    *v == '\n' ? "\\n" : NULL;
		size_t len = rep ? 2 : 1;

		if (o + len + 1 > n) {
			buf[o] = '\0';
			return -ENOSPC;
		}
		if (rep != NULL)
			memcpy(buf + o, rep, 2);
		else
			buf[o] = *v;
		o += len;
	}
	buf[o] = '\0';
	return 0;
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

// The {service="..",instance=".." labels of row i (no closing brace).
static void
inst_labels(const struct agent_metrics_inst *r, char *buf, size_t n)
{
	char svc[2 * CM_NAME_MAX], inst[2 * CM_NAME_MAX];

	(void)agent_metrics_escape(r->service, svc, sizeof(svc));
	(void)agent_metrics_escape(r->instance, inst, sizeof(inst));
	snprintf(buf, n, "{service=\"%s\",instance=\"%s\"", svc, inst);
}

static void
render_instances(FILE *f, const struct agent_metrics_snap *s)
{
	static const char *const results[] = { "success", "failure" };
	char l[5 * CM_NAME_MAX];

	family(f, "reflex_agent_probes_total", "counter",
	    "Health probes of an instance that finished, by result.");
	for (size_t i = 0; i < s->n; i++) {
		const struct agent_inst_counters *c = &s->inst[i].c;

		inst_labels(&s->inst[i], l, sizeof(l));
		for (int k = 0; k < 2; k++)
			fprintf(f, "reflex_agent_probes_total%s,result=\"%s\"} "
			    "%llu\n", l, results[k], (unsigned long long)
			    (k == 0 ? c->probes_ok : c->probes_failed));
	}
	family(f, "reflex_agent_restarts_total", "counter",
	    "Restarts of an instance, by reason: probe and crash are the "
	    "agent's own, command was ordered by the coordinator.");
	for (size_t i = 0; i < s->n; i++) {
		inst_labels(&s->inst[i], l, sizeof(l));
		for (int k = 0; k < AGENT_RESTART_KINDS; k++)
			fprintf(f, "reflex_agent_restarts_total%s,"
			    "reason=\"%s\"} %llu\n", l,
			    agent_restart_kind_name(k),
			    (unsigned long long)s->inst[i].c.restarts[k]);
	}
	family(f, "reflex_agent_instance_up", "gauge",
	    "1 when the instance runs and its probe, if it has one, passes.");
	for (size_t i = 0; i < s->n; i++) {
		inst_labels(&s->inst[i], l, sizeof(l));
		fprintf(f, "reflex_agent_instance_up%s} %d\n", l,
		    s->inst[i].up ? 1 : 0);
	}
}

int
agent_metrics_render(const struct agent_metrics_snap *s, char **ret,
    size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return -ENOMEM;
	render_instances(f, s);
	family(f, "reflex_agent_permits_total", "counter",
	    "Verdicts on the agent's own restarts: by the coordinator "
	    "(granted, refused) or, when it could not be asked, by the "
	    "partition policy.");
	for (int k = 0; k < AGENT_VERDICTS; k++)
		fprintf(f, "reflex_agent_permits_total{result=\"%s\"} %llu\n",
		    agent_verdict_name(k), (unsigned long long)s->permits[k]);
	if (s->kubernetes) {
		family(f, "reflex_agent_evictions_total", "counter",
		    "Pod evictions by the agent (own and commanded), by "
		    "result: evicted, deleted (PDB blocked, not-Ready pod "
		    "deleted by policy), blocked (by a PodDisruptionBudget), "
		    "gone (no such pod), failed.");
		for (unsigned k = 0; k < AGENT_EVICT_RESULTS; k++)
			fprintf(f, "reflex_agent_evictions_total"
			    "{result=\"%s\"} %llu\n",
			    agent_evict_result_name(k),
			    (unsigned long long)s->evictions[k]);
	}
	family(f, "reflex_agent_bad_frames_total", "counter",
	    "Frames on the command and status sockets that could not be "
	    "decoded.");
	fprintf(f, "reflex_agent_bad_frames_total %llu\n",
	    (unsigned long long)s->bad_frames);
	family(f, "reflex_agent_unauthenticated_total", "counter",
	    "Commands refused because their frame failed the channel "
	    "authentication (no or wrong MAC, stale or replayed).");
	fprintf(f, "reflex_agent_unauthenticated_total %llu\n",
	    (unsigned long long)s->unauthenticated);
	family(f, "reflex_agent_coordinator_connected", "gauge",
	    "1 when the last exchange with the coordinator succeeded.");
	fprintf(f, "reflex_agent_coordinator_connected %d\n",
	    s->connected ? 1 : 0);
	family(f, "reflex_agent_loop_wakeups_total", "counter",
	    "Wakeups of the agent's main loop.");
	fprintf(f, "reflex_agent_loop_wakeups_total %llu\n",
	    (unsigned long long)s->wakeups);
	if (fclose(f) != 0 || text == NULL) {
		free(text);
		return -ENOMEM;
	}
	*ret = text;
	*ret_len = len;
	return 0;
}

// ---- HTTP (nng threads) ----------------------------------------------

static void
shared_unref(void *arg)
{
	struct shared *sh = arg;

	if (atomic_fetch_sub(&sh->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&sh->mu);
	free(sh->snap.inst);
	free(sh);
}

static void
reply(nng_aio *aio, uint16_t status, const char *type, const char *body,
    size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", type);
	nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static struct shared *
shared_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
metrics_cb(nng_aio *aio)
{
	struct shared *sh = shared_of(aio);
	char *text = NULL;
	size_t len = 0;
	int rv;

	pthread_mutex_lock(&sh->mu);
	rv = agent_metrics_render(&sh->snap, &text, &len);
	pthread_mutex_unlock(&sh->mu);
	if (rv < 0) {
		reply(aio, 503, "text/plain", "out of memory\n", 14);
		return;
	}
	reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

static void
healthz_cb(nng_aio *aio)
{
	struct shared *sh = shared_of(aio);
	int64_t late, due;
	char body[128];
	int n;

	pthread_mutex_lock(&sh->mu);
	due = sh->due_ms;
	pthread_mutex_unlock(&sh->mu);
	late = due == INT64_MAX ? 0 : cm_mono_ms() - due;
	if (cm_wire_wedged()) {
		// A dropped link or command connection is never cleaned up or
		// dialed again by a stuck libnng: only a restart mends it.
		n = snprintf(body, sizeof(body), "nng stuck: libnng's nng_close "
		    "hung (close_stuck); restart the agent\n");
		reply(aio, 503, "text/plain", body, (size_t)n);
		return;
	}
	if (late <= AGENT_METRICS_STALL_MS) {
		reply(aio, 200, "text/plain", "ok\n", 3);
		return;
	}
	n = snprintf(body, sizeof(body), "main loop stalled: %lld ms past "
	    "its deadline\n", (long long)late);
	reply(aio, 503, "text/plain", body, (size_t)n);
}

// ---- main thread -----------------------------------------------------

static const struct {
	const char *path;
	void (*fn)(nng_aio *);
} routes[] = {
	{ "/metrics", metrics_cb },
	{ "/healthz", healthz_cb },
};

static int
add_routes(struct agent_metrics *m)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		nng_http_handler *h;
		int rv = nng_http_handler_alloc(&h, routes[i].path,
		    routes[i].fn);

		if (rv != 0)
			return rv;
		atomic_fetch_add(&m->sh->refs, 1);
		(void)nng_http_handler_set_data(h, m->sh, shared_unref);
		rv = nng_http_handler_set_method(h, "GET");
		if (rv == 0)
			rv = nng_http_handler_collect_body(h, false, 0);
		if (rv == 0)
			rv = nng_http_server_add_handler(m->srv, h);
		if (rv != 0) {
			nng_http_handler_free(h); // drops its reference
			return rv;
		}
	}
	return 0;
}

static int
shared_new(struct shared **ret)
{
	struct shared *sh = calloc(1, sizeof(*sh));

	if (sh == NULL)
		return -ENOMEM;
	pthread_mutex_init(&sh->mu, NULL);
	sh->due_ms = cm_mono_ms();
	atomic_init(&sh->refs, 1);
	*ret = sh;
	return 0;
}

int
agent_metrics_open(const char *hostport, struct agent_metrics **ret,
    char *err, size_t errlen)
{
	struct agent_metrics *m = calloc(1, sizeof(*m));
	char url[300];
	nng_url *u = NULL;
	int rv;

	if (m == NULL || shared_new(&m->sh) < 0) {
		free(m);
		snprintf(err, errlen, "metrics: out of memory");
		return -ENOMEM;
	}
	snprintf(url, sizeof(url), "http://%s", hostport);
	rv = nng_url_parse(&u, url);
	if (rv == 0)
		rv = nng_http_server_hold(&m->srv, u);
	nng_url_free(u);
	if (rv == 0)
		rv = add_routes(m);
	if (rv == 0)
		rv = nng_http_server_start(m->srv);
	if (rv != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", hostport,
		    nng_strerror(rv));
		agent_metrics_close(m);
		return rv == NNG_EADDRINUSE ? -EADDRINUSE : rv == NNG_ENOMEM ?
		    -ENOMEM : -EINVAL;
	}
	cm_info("metrics.listen", "url=%s", cm_q(url));
	*ret = m;
	return 0;
}

// Room for n rows (keeps the old array on failure). Mutex held.
static bool
rows_reserve(struct agent_metrics_snap *s, size_t *cap, size_t n)
{
	struct agent_metrics_inst *v;
	size_t ncap = *cap ? *cap : 16;

	if (n <= *cap)
		return true;
	while (ncap < n)
		ncap *= 2;
	v = realloc(s->inst, ncap * sizeof(*v));
	if (v == NULL)
		return false;
	s->inst = v;
	*cap = ncap;
	return true;
}

void
agent_metrics_publish(struct agent_metrics *m,
    const struct agent_metrics_inst *rows, size_t n,
    const struct agent_metrics_globals *g, int64_t now)
{
	struct agent_metrics_snap *s;

	if (m == NULL)
		return;
	s = &m->sh->snap;
	pthread_mutex_lock(&m->sh->mu);
	if (rows_reserve(s, &m->cap, n)) {
		if (n > 0)
			memcpy(s->inst, rows, n * sizeof(*rows));
		s->n = n;
	}
	memcpy(s->permits, g->permits, sizeof(s->permits));
	s->kubernetes = g->evictions != NULL;
	if (g->evictions != NULL)
		memcpy(s->evictions, g->evictions, sizeof(s->evictions));
	s->bad_frames = g->bad_frames;
	s->unauthenticated = g->unauthenticated;
	s->wakeups = g->wakeups;
	s->connected = g->connected;
	m->sh->due_ms = g->next_ms > now ? g->next_ms : now;
	pthread_mutex_unlock(&m->sh->mu);
}

void
agent_metrics_close(struct agent_metrics *m)
{
	struct shared *sh;

	if (m == NULL)
		return;
	sh = m->sh;
	if (m->srv != NULL) {
		nng_http_server_stop(m->srv);
		nng_http_server_release(m->srv);
	}
	// nng drops its handlers (and their references) from its reaper
	// thread; give it a moment so that a normal exit leaves nothing
	// behind, but never wait long.
	for (int i = 0; i < RELEASE_WAIT_MS / 10 &&
	    atomic_load(&sh->refs) > 1; i++)
		nng_msleep(10);
	shared_unref(sh);
	free(m);
}
