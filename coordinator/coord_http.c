// SPDX-License-Identifier: MIT
// coord_http: webhook intake, API, metrics and health over coord_httpd.
#include "coord_http.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_k8s.h"
#include "cm_log.h"
#include "cm_wire.h"
#include "cm_time.h"
#include "coord_httpd.h"
#include "coord_metrics.h"
#include "coord_worker.h"

// Reads that can take long (a journal query waiting for a lock held by
// another process, a page of thousands of agents built under the
// registry lock, metrics and health reading every component) run on
// their own small pool, never on the server's thread, so webhooks and
// probes are served meanwhile. At most SLOW_QUEUE wait; beyond that 503.
#define SLOW_THREADS 2
#define SLOW_QUEUE 64

struct coord_http {
	struct coord_http_deps d;
	struct coord_httpd *srv;
	struct coord_worker *slow;
	atomic_int pending; // webhook requests waiting for the journal
	// The HTTP thread's (webhook_cb) identities and decoded label and
	// annotation sets of alerts met before; NULL (out of memory at
	// start): none.
	struct coord_idmemo *idmemo;
	struct coord_setmemo *setmemo;
};

// A read handler run on the slow pool: the request's query string is
// copied, since coord_httpd's accessors are valid only during the route
// callback; the handler must answer rq exactly once.
typedef void (*slow_fn)(struct coord_httpd_req *rq, struct coord_http *h,
    const char *query);

struct slow_job {
	struct coord_httpd_req *rq;
	struct coord_http *h;
	slow_fn fn;
	char query[]; // NUL-terminated
};

// One webhook request between journal submit and its commit.
struct intake {
	struct coord_http *h;
	struct coord_httpd_req *rq;
	struct coord_notification *n;
	struct coord_alert_rec *recs;
	uint64_t *identities;
	int64_t *ids;
	int64_t received_mono;
	bool pushed;	// handed to the engine by intake_committed
};

static void
reply(struct coord_httpd_req *rq, int status, const char *type,
    const char *body, size_t len)
{
	coord_httpd_reply(rq, status, type, body, len, NULL);
}

static void
reply_json(struct coord_httpd_req *rq, int status, const char *json)
{
	reply(rq, status, "application/json", json, strlen(json));
}

// {"status":"error","error":"<reason>"} with the reason JSON-escaped, and
// an optional extra header line ("Name: value").
static void
reply_error_with(struct coord_httpd_req *rq, int status, const char *reason,
    const char *extra)
{
	static const char oom[] = "{\"status\":\"error\",\"error\":"
	    "\"out of memory\"}";
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	if (o != NULL) {
		cJSON_AddStringToObject(o, "status", "error");
		cJSON_AddStringToObject(o, "error", reason);
		s = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
	}
	coord_httpd_reply(rq, status, "application/json", s != NULL ? s : oom,
	    strlen(s != NULL ? s : oom), extra);
	free(s);
}

static void
reply_error(struct coord_httpd_req *rq, int status, const char *reason)
{
	reply_error_with(rq, status, reason, NULL);
}

static void
reply_unauthorized(struct coord_httpd_req *rq, const char *reason)
{
	reply_error_with(rq, 401, reason,
	    "WWW-Authenticate: Bearer realm=\"reflex\"");
}

// An intake for n alerts, its three arrays in the same block (one
// allocation per webhook rather than four). All members are 8-byte
// aligned, so each array starts aligned after the one before.
static struct intake *
intake_new(size_t n)
{
	struct intake *in = calloc(1, sizeof(*in) + n * (sizeof(*in->recs) +
	    sizeof(*in->identities) + sizeof(*in->ids)));

	if (in == NULL)
		return NULL;
	in->recs = (struct coord_alert_rec *)(void *)(in + 1);
	in->identities = (uint64_t *)(void *)(in->recs + n);
	in->ids = (int64_t *)(void *)(in->identities + n);
	return in;
}

static void
intake_free(struct intake *in)
{
	coord_notification_free(in->n);
	free(in);
}

// {"status":"accepted","alerts":<n>}, without an snprintf per webhook.
static void
reply_accepted(struct coord_httpd_req *rq, size_t n)
{
	static const char head[] = "{\"status\":\"accepted\",\"alerts\":";
	char body[sizeof(head) + 21], d[20];
	size_t k = sizeof(d);

	do {
		d[--k] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	memcpy(body, head, sizeof(head) - 1);
	memcpy(body + sizeof(head) - 1, d + k, sizeof(d) - k);
	body[sizeof(head) - 1 + sizeof(d) - k] = '}';
	reply(rq, 200, "application/json", body,
	    sizeof(head) + sizeof(d) - k);
}

// Journal writer thread (durable journal only): the alerts are committed,
// not yet synced. The engine decides them meanwhile; what it sends
// leaves only after its own rows are synced, which comes after these.
static unsigned
intake_committed(struct coord_alert_rec *recs, size_t n, bool quiet,
    void *arg)
{
	struct intake *in = arg;

	for (size_t i = 0; i < n; i++)
		in->ids[i] = recs[i].id;
	in->pushed = true;
	return coord_engine_push_early(in->h->d.engine, in->n, in->ids,
	    in->identities, in->received_mono, quiet);
}

// Journal completion thread: the alerts are durable (or not) now.
static void
intake_done(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct intake *in = arg;
	struct coord_http *h = in->h;

	if (rv < 0) {
		cm_err("webhook.journal_failed", "alerts=%zu rv=%d", n, rv);
		coord_metrics_webhook(503);
		reply_error(in->rq, 503, "journal unavailable: alerts not stored");
	} else {
		// Committed: from here on a lost hand-over only delays the
		// alert until the next start replays it as pending.
		if (!in->pushed) {
			for (size_t i = 0; i < n; i++)
				in->ids[i] = recs[i].id;
			(void)coord_engine_push(h->d.engine, in->n, in->ids,
			    in->identities, in->received_mono);
		}
		coord_metrics_webhook(200);
		reply_accepted(in->rq, n);
	}
	intake_free(in);
	atomic_fetch_sub(&h->pending, 1);
}

static void
webhook_cb(struct coord_httpd_req *rq, void *arg)
{
	struct coord_http *h = arg;
	const struct coord_conf *c = h->d.conf;
	struct coord_notification *n = NULL;
	struct intake *in;
	char err[512];
	const void *body;
	int64_t now_ms;
	size_t len;
	int rv;

	if (!coord_auth_webhook_ok(h->d.auth,
	    coord_httpd_header(rq, "Authorization"))) {
		cm_warn("webhook.rejected", "status=401 reason=bad_credentials");
		coord_metrics_webhook(401);
		reply_unauthorized(rq, "valid webhook credentials required");
		return;
	}
	body = coord_httpd_body(rq, &len);
	if (len > c->wl.max_body) {
		snprintf(err, sizeof(err), "body of %zu bytes exceeds the limit "
		    "of %zu bytes (limits.max_body)", len, c->wl.max_body);
		cm_warn("webhook.rejected", "status=413 reason=%s", cm_q(err));
		coord_metrics_webhook(413);
		reply_error(rq, 413, err);
		return;
	}
	// The nesting limit (limits.max_json_depth) is c->wl.max_depth.
	rv = coord_webhook_parse_memo(&n, body, len, &c->wl, h->setmemo, err,
	    sizeof(err));
	if (rv < 0) {
		char head[33];
		size_t k = len < 32 ? len : 32;

		if (k > 0) // an empty body comes as NULL
			memcpy(head, body, k);
		head[k] = '\0';
		cm_warn("webhook.rejected", "status=%d bytes=%zu head=%s reason=%s",
		    rv == -E2BIG ? 413 : 400, len, cm_q(head), cm_q(err));
		coord_metrics_webhook(rv == -E2BIG ? 413 : 400);
		reply_error(rq, rv == -E2BIG ? 413 : 400, err);
		return;
	}
	if (n->n_alerts == 0) {
		coord_notification_free(n);
		coord_metrics_webhook(200);
		reply_json(rq, 200, "{\"status\":\"accepted\",\"alerts\":0}");
		return;
	}
	if (coord_engine_full(h->d.engine)) {
		coord_notification_free(n);
		cm_warn("webhook.rejected", "status=503 reason=queue_full");
		coord_metrics_webhook(503);
		reply_error(rq, 503, "alert queue full: retry later");
		return;
	}

	in = intake_new(n->n_alerts);
	if (in == NULL) {
		coord_notification_free(n);
		coord_metrics_webhook(503);
		reply_error(rq, 503, "out of memory");
		return;
	}
	in->h = h;
	in->rq = rq;
	in->n = n;
	in->received_mono = cm_mono_ms();
	now_ms = cm_now_ms();
	for (size_t i = 0; i < n->n_alerts; i++) {
		in->identities[i] = coord_idmemo_identity(h->idmemo,
		    &n->alerts[i], c->ignore_labels, c->n_ignore_labels);
		in->recs[i] = (struct coord_alert_rec){
			.received_ms = now_ms,
			.identity = in->identities[i],
			.alert = &n->alerts[i],
			.receiver = n->receiver,
			.group_key = n->group_key,
		};
	}
	atomic_fetch_add(&h->pending, 1);
	rv = coord_journal_submit_alerts_early(h->d.journal, in->recs,
	    n->n_alerts, intake_committed, intake_done, in);
	if (rv < 0) {
		atomic_fetch_sub(&h->pending, 1);
		intake_free(in);
		cm_warn("webhook.rejected", "status=503 reason=journal_busy rv=%d", rv);
		coord_metrics_webhook(503);
		reply_error(rq, 503, "journal queue full: retry later");
	}
}

// Decodes %XX and '+' in place; returns false on a malformed escape.
static bool
url_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '+') {
			*o++ = ' ';
		} else if (*s == '%') {
			unsigned v;

			if (sscanf(s + 1, "%2x", &v) != 1 || v == 0 ||
			    s[1] == '\0' || s[2] == '\0')
				return false;
			*o++ = (char)v;
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return true;
}

// The query string of GET /api/v1/actions and /api/v1/alerts into *f
// (its strings point into q, which holds the decoded copy): service,
// alertname, `state_key` (state, or outcome), since, limit. Replies 400
// with the reason and returns false on anything else.
static bool
filter_parse(struct coord_httpd_req *rq, const char *qs, char *q, size_t qn,
    const char *state_key, struct coord_journal_filter *f)
{
	char *save = NULL, msg[160];

	if (strlen(qs) >= qn) {
		reply_error(rq, 400, "query string too long");
		return false;
	}
	snprintf(q, qn, "%s", qs);
	for (char *kv = strtok_r(q, "&", &save); kv != NULL;
	    kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');

		if (v == NULL || !url_decode(v + 1)) {
			reply_error(rq, 400, "malformed query parameter");
			return false;
		}
		*v++ = '\0';
		if (strcmp(kv, "service") == 0)
			f->service = v;
		else if (strcmp(kv, "alertname") == 0)
			f->alertname = v;
		else if (strcmp(kv, state_key) == 0)
			f->state = v;
		else if (strcmp(kv, "since") == 0) {
			if (cm_time_parse(v, &f->since_ms) < 0 ||
			    f->since_ms == CM_TIME_NONE) {
				reply_error(rq, 400, "since: expected an RFC 3339 time");
				return false;
			}
		} else if (strcmp(kv, "limit") == 0) {
			char *end;
			long l = strtol(v, &end, 10);

			if (*v == '\0' || *end != '\0' || l < 1 || l > 1000) {
				reply_error(rq, 400, "limit: expected 1..1000");
				return false;
			}
			f->limit = (int)l;
		} else {
			snprintf(msg, sizeof(msg), "unknown query parameter \"%.40s\" "
			    "(service, alertname, %s, since, limit)", kv,
			    state_key);
			reply_error(rq, 400, msg);
			return false;
		}
	}
	return true;
}

// GET of a journal list: the query string (filter_parse, `state_key`)
// through `query` into a JSON array.
static void
list_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs,
    const char *state_key, int (*query)(struct coord_journal *,
    const struct coord_journal_filter *, char **))
{
	struct coord_journal_filter f = { .limit = 100 };
	char q[1024], *json = NULL;

	if (!filter_parse(rq, qs, q, sizeof(q), state_key, &f))
		return;
	if (query(h->d.journal, &f, &json) < 0) {
		reply_error(rq, 503, "journal query failed");
		return;
	}
	reply_json(rq, 200, json);
	free(json);
}

// GET /api/v1/actions: the action history.
static void
actions_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs)
{
	list_run(rq, h, qs, "state", coord_journal_query_actions);
}

// GET /api/v1/alerts: alerts and what was decided for them, refusals
// included.
static void
alerts_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs)
{
	list_run(rq, h, qs, "outcome", coord_journal_query_alerts);
}

// GET /api/v1/agents[?limit=N&after=NODE]: one page of agents in node
// order (see coord_agents_json); when more follow, a Link header names
// the next page (rel="next"), so no request builds the whole fleet.
static void
agents_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs)
{
	const char *after = NULL;
	size_t limit = COORD_AGENTS_PAGE_DEFAULT;
	char q[512], *save = NULL, *json, next[CM_NAME_MAX];
	char enc[CM_NAME_MAX * 3 + 64], link[CM_NAME_MAX * 3 + 96];

	if (strlen(qs) >= sizeof(q)) {
		reply_error(rq, 400, "query string too long");
		return;
	}
	snprintf(q, sizeof(q), "%s", qs);
	for (char *kv = strtok_r(q, "&", &save); kv != NULL;
	    kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '='), *end, msg[120];
		long l;

		if (v == NULL || !url_decode(v + 1)) {
			reply_error(rq, 400, "malformed query parameter");
			return;
		}
		*v++ = '\0';
		if (strcmp(kv, "after") == 0) {
			after = v;
		} else if (strcmp(kv, "limit") == 0) {
			l = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || l < 1 ||
			    l > COORD_AGENTS_PAGE_MAX) {
				snprintf(msg, sizeof(msg), "limit: expected "
				    "1..%d", COORD_AGENTS_PAGE_MAX);
				reply_error(rq, 400, msg);
				return;
			}
			limit = (size_t)l;
		} else {
			snprintf(msg, sizeof(msg), "unknown query parameter "
			    "\"%.40s\" (limit, after)", kv);
			reply_error(rq, 400, msg);
			return;
		}
	}
	json = coord_agents_json(h->d.agents, after,
	    limit, next, sizeof(next));
	if (json == NULL) {
		reply_error(rq, 503, "out of memory");
		return;
	}
	if (next[0] != '\0') {
		// Node names are at most 63 bytes: the query fits.
		snprintf(enc, sizeof(enc), "/api/v1/agents?limit=%zu", limit);
		if (cm_k8s_query_add(enc, sizeof(enc), "after", next) < 0)
			enc[0] = '\0';
		snprintf(link, sizeof(link), "Link: <%s>; rel=\"next\"", enc);
		coord_httpd_reply(rq, 200, "application/json", json,
		    strlen(json), link);
	} else {
		reply_json(rq, 200, json);
	}
	free(json);
}

static void
gauges(struct coord_http *h, struct coord_gauges *g,
    struct coord_journal_stats *js)
{
	memset(g, 0, sizeof(*g));
	coord_agents_counts(h->d.agents, &g->agents_registered, &g->agents_lost);
	g->agent_channel_stuck = cm_wire_wedged() ? 1 : 0;
	coord_engine_counts(h->d.engine, &g->queue_depth, &g->actions_in_flight);
	coord_journal_stats(h->d.journal, js);
	g->journal_bytes = js->bytes;
	g->journal_commits = js->commits;
	g->journal_commit_errors = js->commit_errors;
	g->journal_checkpoints = js->checkpoints;
	g->journal_backstop_checkpoints = js->backstop_checkpoints;
	g->journal_checkpoint_waits = js->checkpoint_waits;
	g->journal_syncs = js->syncs;
	g->journal_linger_timeouts = js->linger_timeouts;
	g->journal_texts_new = js->texts_new;
	g->journal_texts_found = js->texts_found;
	{
		struct coord_breaker_state b;

		coord_engine_breaker(h->d.engine, &b);
		g->breaker_open = b.open;
		g->rollout_percent = coord_engine_rollout(h->d.engine);
	}
}

// Appends the HTTP server's own refusals to the exposition text.
static int
refusals_append(struct coord_http *h, char **text, size_t *len)
{
	static const char head[] = "# HELP reflex_http_refused_total HTTP "
	    "requests or connections the server refused or closed, by reason.\n"
	    "# TYPE reflex_http_refused_total counter\n";
	uint64_t v[COORD_HTTPD_REF__COUNT];
	size_t cap = *len + sizeof(head) + COORD_HTTPD_REF__COUNT * 80;
	char *t = realloc(*text, cap);

	if (t == NULL)
		return -ENOMEM;
	*text = t;
	coord_httpd_refusals(h->srv, v);
	memcpy(t + *len, head, sizeof(head) - 1);
	*len += sizeof(head) - 1;
	for (int i = 0; i < COORD_HTTPD_REF__COUNT; i++)
		*len += (size_t)snprintf(t + *len, cap - *len,
		    "reflex_http_refused_total{reason=\"%s\"} %llu\n",
		    coord_httpd_refusal_name((enum coord_httpd_refusal)i),
		    (unsigned long long)v[i]);
	return 0;
}

static void
metrics_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs)
{
	struct coord_journal_stats js;
	struct coord_gauges g;
	char *text;
	size_t len;

	(void)qs;
	gauges(h, &g, &js);
	if (coord_metrics_render(&g, &text, &len) < 0 ||
	    refusals_append(h, &text, &len) < 0) {
		free(text);
		reply_error(rq, 503, "out of memory");
		return;
	}
	reply(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

enum health { HEALTHY, DEGRADED, UNHEALTHY };

// Adds a reason and raises the level to at least `level`.
static void
health_reason(enum health *h, enum health level, cJSON *reasons,
    const char *why)
{
	if (level > *h)
		*h = level;
	cJSON_AddItemToArray(reasons, cJSON_CreateString(why));
}

static void
health_run(struct coord_httpd_req *rq, struct coord_http *h, const char *qs)
{
	static const char *const names[] = { "healthy", "degraded",
		"unhealthy" };
	const struct coord_conf *c = h->d.conf;
	struct coord_journal_stats js;
	struct coord_breaker_state b;
	struct coord_gauges g;
	cJSON *o = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
	enum health level = HEALTHY;
	int64_t rate = coord_metrics_alerts_last_minute();
	char buf[COORD_REASON_MAX + 32], *s;

	(void)qs;
	gauges(h, &g, &js);
	coord_engine_breaker(h->d.engine, &b);
	if (g.agents_lost > 0) {
		snprintf(buf, sizeof(buf), "%lld of %lld agents lost",
		    (long long)g.agents_lost, (long long)g.agents_registered);
		health_reason(&level, DEGRADED, reasons, buf);
	}
	if (g.queue_depth >= c->limits.queue)
		health_reason(&level, DEGRADED, reasons, "alert queue full");
	if (b.open) {
		// An operator's pause is deliberate: degraded, not down.
		snprintf(buf, sizeof(buf), "automation paused: %s", b.reason);
		health_reason(&level, b.paused_by_operator ? DEGRADED : UNHEALTHY,
		    reasons, buf);
	}
	if (b.window_actions > 0 && b.window_ok * 100 <
	    c->health_min_success_percent * b.window_actions) {
		snprintf(buf, sizeof(buf), "action success rate %lld%% (%lld of "
		    "%lld) below %lld%%",
		    (long long)(b.window_ok * 100 / b.window_actions),
		    (long long)b.window_ok, (long long)b.window_actions,
		    (long long)c->health_min_success_percent);
		health_reason(&level, DEGRADED, reasons, buf);
	}
	if (rate > c->health_max_alerts_per_minute) {
		snprintf(buf, sizeof(buf), "%lld alerts in the last minute, above "
		    "%lld", (long long)rate,
		    (long long)c->health_max_alerts_per_minute);
		health_reason(&level, DEGRADED, reasons, buf);
	}
	if (js.commit_errors > 0 && js.commits == 0)
		health_reason(&level, UNHEALTHY, reasons, "journal not writable");
	cJSON_AddStringToObject(o, "status", names[level]);
	cJSON_AddItemToObject(o, "reasons", reasons);
	cJSON_AddBoolToObject(o, "breaker_open", b.open);
	cJSON_AddNumberToObject(o, "alerts_last_minute", (double)rate);
	cJSON_AddNumberToObject(o, "agents", (double)g.agents_registered);
	cJSON_AddNumberToObject(o, "agents_lost", (double)g.agents_lost);
	cJSON_AddNumberToObject(o, "queue", (double)g.queue_depth);
	cJSON_AddNumberToObject(o, "in_flight", (double)g.actions_in_flight);
	cJSON_AddNumberToObject(o, "rollout_percent",
	    (double)coord_engine_rollout(h->d.engine));
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s == NULL) {
		reply_error(rq, 503, "out of memory");
		return;
	}
	reply_json(rq, level == UNHEALTHY ? 503 : 200, s);
	free(s);
}

static void
control(struct coord_httpd_req *rq, struct coord_http *h, bool pause)
{
	char who[64] = "operator";
	const char *ua;
	int rv;

	if (h->d.auth->operator_token == NULL) {
		reply_error(rq, 403, "no operator credential is configured "
		    "(auth.operator_token_file): mutating calls are disabled");
		return;
	}
	if (!coord_auth_operator_ok(h->d.auth,
	    coord_httpd_header(rq, "Authorization"))) {
		cm_warn("api.rejected", "status=401 call=%s",
		    pause ? "pause" : "resume");
		reply_unauthorized(rq, "operator credential required");
		return;
	}
	ua = coord_httpd_header(rq, "X-Reflex-Operator");
	if (ua != NULL && cm_name_valid(ua))
		snprintf(who, sizeof(who), "%s", ua);
	rv = pause ? coord_engine_pause(h->d.engine, who) :
	    coord_engine_resume(h->d.engine);
	if (rv < 0) {
		reply_error(rq, 503, "out of memory");
		return;
	}
	cm_notice(pause ? "api.pause" : "api.resume", "who=%s", cm_q(who));
	reply_json(rq, 202, pause ? "{\"status\":\"pausing\"}" :
	    "{\"status\":\"resuming\"}");
}

// Operator calls share the credential check; returns false (and has
// answered) when the caller is not the operator.
static bool
operator_only(struct coord_httpd_req *rq, struct coord_http *h,
    const char *call, char *who, size_t n)
{
	const char *hdr;

	if (h->d.auth->operator_token == NULL) {
		reply_error(rq, 403, "no operator credential is configured "
		    "(auth.operator_token_file): mutating calls are disabled");
		return false;
	}
	if (!coord_auth_operator_ok(h->d.auth,
	    coord_httpd_header(rq, "Authorization"))) {
		cm_warn("api.rejected", "status=401 call=%s", call);
		reply_unauthorized(rq, "operator credential required");
		return false;
	}
	hdr = coord_httpd_header(rq, "X-Reflex-Operator");
	snprintf(who, n, "%s", hdr != NULL && cm_name_valid(hdr) ? hdr :
	    "operator");
	return true;
}

// POST /api/v1/approve|reject {"id": N}
static void
decide_cb(struct coord_httpd_req *rq, struct coord_http *h, bool approve)
{
	char who[64], state[64], msg[160];
	const cJSON *id;
	cJSON *doc;
	const void *body;
	size_t len;
	int64_t v;
	int rv;

	if (!operator_only(rq, h, approve ? "approve" : "reject", who, sizeof(who)))
		return;
	body = coord_httpd_body(rq, &len);
	doc = len > 0 && len < 4096 ? cJSON_ParseWithLength(body, len) : NULL;
	id = cJSON_GetObjectItemCaseSensitive(doc, "id");
	if (!cJSON_IsNumber(id) || id->valuedouble < 1 ||
	    id->valuedouble > 9e15 || id->valuedouble != (double)(int64_t)
	    id->valuedouble) {
		cJSON_Delete(doc);
		reply_error(rq, 400, "expected a body {\"id\": <plan id>}");
		return;
	}
	v = (int64_t)id->valuedouble;
	cJSON_Delete(doc);
	// Said now rather than only logged by the engine: an operator must
	// learn that the id was wrong or the plan already decided.
	rv = coord_journal_action_state(h->d.journal, v, state, sizeof(state));
	if (rv == -ENOENT) {
		snprintf(msg, sizeof(msg), "no plan %lld", (long long)v);
		reply_error(rq, 404, msg);
		return;
	}
	if (rv == 0 && strcmp(state, "awaiting-approval") != 0) {
		snprintf(msg, sizeof(msg), "plan %lld is %s, not awaiting "
		    "approval", (long long)v, state);
		reply_error(rq, 409, msg);
		return;
	}
	if (coord_engine_approval(h->d.engine, v, approve, who) < 0) {
		reply_error(rq, 503, "out of memory");
		return;
	}
	cm_notice(approve ? "api.approve" : "api.reject", "id=%lld who=%s",
	    (long long)v, cm_q(who));
	reply_json(rq, 202, approve ? "{\"status\":\"approving\"}" :
	    "{\"status\":\"rejecting\"}");
}

static void
approve_cb(struct coord_httpd_req *rq, void *arg)
{
	decide_cb(rq, arg, true);
}

static void
reject_cb(struct coord_httpd_req *rq, void *arg)
{
	decide_cb(rq, arg, false);
}

static void
pause_cb(struct coord_httpd_req *rq, void *arg)
{
	control(rq, arg, true);
}

static void
resume_cb(struct coord_httpd_req *rq, void *arg)
{
	control(rq, arg, false);
}

// Alive, unless libnng is stuck (cm_wire_close left a close behind):
// then a dropped agent connection is never cleaned up or dialed again,
// and only a restart mends it, which a liveness probe on this asks for.
static void
healthz_cb(struct coord_httpd_req *rq, void *arg)
{
	static const char stuck[] = "agent channel stuck: libnng's nng_close "
	    "hung (agents.close_stuck); restart the coordinator\n";

	(void)arg;
	if (cm_wire_wedged())
		reply(rq, 503, "text/plain", stuck, sizeof(stuck) - 1);
	else
		reply(rq, 200, "text/plain", "ok\n", 3);
}

// Ready to take alerts: the journal commits and the queue has room.
static void
readyz_cb(struct coord_httpd_req *rq, void *arg)
{
	struct coord_http *h = arg;
	struct coord_journal_stats js;
	struct coord_gauges g;

	gauges(h, &g, &js);
	if (g.queue_depth >= h->d.conf->limits.queue)
		reply(rq, 503, "text/plain", "alert queue full\n", 17);
	else if (js.commit_errors > 0 && js.commits == 0)
		reply(rq, 503, "text/plain", "journal not writable\n", 21);
	else
		reply(rq, 200, "text/plain", "ready\n", 6);
}

static void
slow_job_run(void *arg)
{
	struct slow_job *j = arg;

	j->fn(j->rq, j->h, j->query);
	free(j);
}

static const struct {
	const char *path;
	slow_fn fn;
} slow_routes[] = {
	{ "/api/v1/actions", actions_run },
	{ "/api/v1/alerts", alerts_run },
	{ "/api/v1/agents", agents_run },
	{ "/metrics", metrics_run },
	{ "/health", health_run },
};

// The route of every slow read: hands the request to the slow pool (see
// SLOW_THREADS) with the handler its path names in slow_routes.
static void
slow_cb(struct coord_httpd_req *rq, void *arg)
{
	const char *path = coord_httpd_path(rq), *q = coord_httpd_query(rq);
	size_t qlen = strlen(q), i;
	struct slow_job *j;

	for (i = 0; i < sizeof(slow_routes) / sizeof(slow_routes[0]); i++)
		if (strcmp(slow_routes[i].path, path) == 0)
			break;
	j = malloc(sizeof(*j) + qlen + 1);
	if (i == sizeof(slow_routes) / sizeof(slow_routes[0]) || j == NULL) {
		free(j);
		reply_error(rq, 503, "out of memory");
		return;
	}
	j->rq = rq;
	j->h = arg;
	j->fn = slow_routes[i].fn;
	memcpy(j->query, q, qlen + 1);
	cm_debug("http.read_queued", "path=%s", cm_q(path));
	if (coord_worker_submit(j->h->slow, slow_job_run, j) < 0) {
		free(j);
		cm_info("http.busy", "path=%s queued=%d", cm_q(path),
		    SLOW_QUEUE);
		reply_error_with(rq, 503, "busy: too many slow requests "
		    "waiting", "Retry-After: 1");
	}
}

static const struct coord_httpd_route routes[] = {
	{ "/api/v1/alerts", "POST", webhook_cb },
	{ "/webhook/alert", "POST", webhook_cb },
	{ "/api/v1/actions", "GET", slow_cb },
	{ "/api/v1/alerts", "GET", slow_cb },
	{ "/api/v1/agents", "GET", slow_cb },
	{ "/metrics", "GET", slow_cb },
	{ "/health", "GET", slow_cb },
	{ "/healthz", "GET", healthz_cb },
	{ "/readyz", "GET", readyz_cb },
	{ "/api/v1/pause", "POST", pause_cb },
	{ "/api/v1/resume", "POST", resume_cb },
	{ "/api/v1/approve", "POST", approve_cb },
	{ "/api/v1/reject", "POST", reject_cb },
};

int
coord_http_start(struct coord_http **ret, const struct coord_http_deps *d,
    char *err, size_t errlen)
{
	const struct coord_conf *c = d->conf;
	struct coord_http *h = calloc(1, sizeof(*h));
	struct coord_httpd_limits lim = {
		.header_timeout_ms = c->http.header_timeout_ms,
		.body_timeout_ms = c->http.body_timeout_ms,
		.idle_timeout_ms = c->http.idle_timeout_ms,
		.max_connections = c->http.max_connections,
		.max_header_bytes = c->http.max_header_bytes,
		.max_reply_memory = c->http.max_reply_memory,
		.max_body = c->limits.max_body,
	};
	struct coord_httpd_tls tls = {
		.cert_file = c->tls.cert_file,
		.key_file = c->tls.key_file,
		.ca_file = c->tls.client_ca_file,
	};
	int rv;

	if (h == NULL)
		return -ENOMEM;
	h->d = *d;
	h->idmemo = coord_idmemo_new();
	h->setmemo = coord_setmemo_new();
	rv = coord_worker_start(&h->slow, SLOW_THREADS, SLOW_QUEUE);
	if (rv < 0) {
		snprintf(err, errlen, "HTTP read threads: %s", strerror(-rv));
		coord_idmemo_free(h->idmemo);
		coord_setmemo_free(h->setmemo);
		free(h);
		return rv;
	}
	rv = coord_httpd_start(&h->srv, c->listen, &lim,
	    c->tls.cert_file != NULL ? &tls : NULL, routes,
	    sizeof(routes) / sizeof(routes[0]), h, err, errlen);
	if (rv < 0) {
		coord_worker_stop(h->slow);
		coord_idmemo_free(h->idmemo);
		coord_setmemo_free(h->setmemo);
		free(h);
		return rv;
	}
	*ret = h;
	return 0;
}

void
coord_http_stop(struct coord_http *h)
{
	if (h == NULL)
		return;
	// Waits for every reply owed, the webhook's journal commits and the
	// slow pool's reads included; then the pool has nothing left to run.
	coord_httpd_stop(h->srv);
	coord_worker_stop(h->slow);
	// intake_done still touches h after its reply: wait for it to leave.
	while (atomic_load(&h->pending) > 0)
		usleep(1000);
	coord_idmemo_free(h->idmemo);
	coord_setmemo_free(h->setmemo);
	free(h);
}
