// SPDX-License-Identifier: MIT
// coord_http: webhook intake, API, metrics and health over nng's HTTP.
#include "coord_http.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_time.h"
#include "coord_jdepth.h"
#include "coord_metrics.h"

// nng refuses bodies above its collect limit with its own 400; we let
// it collect up to this multiple of max_body so that bodies a little over
// the limit get our 413 with a reason.
#define COLLECT_FACTOR 4

struct coord_http {
	struct coord_http_deps d;
	nng_http_server *srv;
	atomic_int pending; // webhook requests waiting for the journal
};

// One webhook request between journal submit and its commit.
struct intake {
	struct coord_http *h;
	nng_aio *aio;
	struct coord_notification *n;
	struct coord_alert_rec *recs;
	uint64_t *identities;
	int64_t *ids;
	int64_t received_mono;
};

// Answers with `body`; `extra` is one more header ("Name", "value") or
// NULL.
static void
reply_with(nng_aio *aio, uint16_t status, const char *type, const char *body,
    size_t len, const char *const *extra)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", type);
	nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (extra != NULL)
		nng_http_res_set_header(res, extra[0], extra[1]);
	if (nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
reply(nng_aio *aio, uint16_t status, const char *type, const char *body,
    size_t len)
{
	reply_with(aio, status, type, body, len, NULL);
}

static void
reply_json(nng_aio *aio, uint16_t status, const char *json)
{
	reply(aio, status, "application/json", json, strlen(json));
}

// {"status":"error","error":"<reason>"} with the reason JSON-escaped, and
// an optional extra header.
static void
reply_error_with(nng_aio *aio, uint16_t status, const char *reason,
    const char *const *extra)
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
	reply_with(aio, status, "application/json", s != NULL ? s : oom,
	    strlen(s != NULL ? s : oom), extra);
	free(s);
}

static void
reply_error(nng_aio *aio, uint16_t status, const char *reason)
{
	reply_error_with(aio, status, reason, NULL);
}

static void
reply_unauthorized(nng_aio *aio, const char *reason)
{
	static const char *const challenge[] = { "WWW-Authenticate",
		"Bearer realm=\"reflex\"" };

	reply_error_with(aio, 401, reason, challenge);
}

static struct coord_http *
server_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
intake_free(struct intake *in)
{
	coord_notification_free(in->n);
	free(in->recs);
	free(in->identities);
	free(in->ids);
	free(in);
}

// Journal writer thread: the alerts are durable (or not) now.
static void
intake_done(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct intake *in = arg;
	struct coord_http *h = in->h;
	char body[96];

	if (rv < 0) {
		cm_err("webhook.journal_failed", "alerts=%zu rv=%d", n, rv);
		coord_metrics_webhook(503);
		reply_error(in->aio, 503, "journal unavailable: alerts not stored");
	} else {
		for (size_t i = 0; i < n; i++)
			in->ids[i] = recs[i].id;
		// Committed: from here on a lost hand-over only delays the
		// alert until the next start replays it as pending.
		(void)coord_engine_push(h->d.engine, in->n, in->ids,
		    in->identities, in->received_mono);
		snprintf(body, sizeof(body),
		    "{\"status\":\"accepted\",\"alerts\":%zu}", n);
		coord_metrics_webhook(200);
		reply_json(in->aio, 200, body);
	}
	intake_free(in);
	atomic_fetch_sub(&h->pending, 1);
}

static void
webhook_cb(nng_aio *aio)
{
	struct coord_http *h = server_of(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const struct coord_conf *c = h->d.conf;
	struct coord_notification *n = NULL;
	struct intake *in;
	char err[512];
	void *body;
	size_t len;
	int rv;

	if (!coord_auth_webhook_ok(h->d.auth,
	    nng_http_req_get_header(req, "Authorization"))) {
		cm_warn("webhook.rejected", "status=401 reason=bad_credentials");
		coord_metrics_webhook(401);
		reply_unauthorized(aio, "valid webhook credentials required");
		return;
	}
	nng_http_req_get_data(req, &body, &len);
	if (len > c->wl.max_body) {
		snprintf(err, sizeof(err), "body of %zu bytes exceeds the limit "
		    "of %zu bytes", len, c->wl.max_body);
		cm_warn("webhook.rejected", "status=413 reason=%s", cm_q(err));
		coord_metrics_webhook(413);
		reply_error(aio, 413, err);
		return;
	}
	rv = coord_jdepth_check(body, len, (size_t)c->limits.max_json_depth,
	    err, sizeof(err));
	if (rv == 0)
		rv = coord_webhook_parse(&n, body, len, &c->wl, err,
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
		reply_error(aio, rv == -E2BIG ? 413 : 400, err);
		return;
	}
	if (n->n_alerts == 0) {
		coord_notification_free(n);
		coord_metrics_webhook(200);
		reply_json(aio, 200, "{\"status\":\"accepted\",\"alerts\":0}");
		return;
	}
	if (coord_engine_full(h->d.engine)) {
		coord_notification_free(n);
		cm_warn("webhook.rejected", "status=503 reason=queue_full");
		coord_metrics_webhook(503);
		reply_error(aio, 503, "alert queue full: retry later");
		return;
	}

	in = calloc(1, sizeof(*in));
	if (in != NULL) {
		in->recs = calloc(n->n_alerts, sizeof(*in->recs));
		in->identities = calloc(n->n_alerts, sizeof(*in->identities));
		in->ids = calloc(n->n_alerts, sizeof(*in->ids));
	}
	if (in == NULL || in->recs == NULL || in->identities == NULL ||
	    in->ids == NULL) {
		if (in != NULL)
			in->n = n;
		else
			coord_notification_free(n);
		if (in != NULL)
			intake_free(in);
		coord_metrics_webhook(503);
		reply_error(aio, 503, "out of memory");
		return;
	}
	in->h = h;
	in->aio = aio;
	in->n = n;
	in->received_mono = cm_mono_ms();
	for (size_t i = 0; i < n->n_alerts; i++) {
		in->identities[i] = coord_alert_identity(&n->alerts[i],
		    c->ignore_labels, c->n_ignore_labels);
		in->recs[i] = (struct coord_alert_rec){
			.received_ms = cm_now_ms(),
			.identity = in->identities[i],
			.alert = &n->alerts[i],
			.receiver = n->receiver,
			.group_key = n->group_key,
		};
	}
	atomic_fetch_add(&h->pending, 1);
	rv = coord_journal_submit_alerts(h->d.journal, in->recs, n->n_alerts,
	    intake_done, in);
	if (rv < 0) {
		atomic_fetch_sub(&h->pending, 1);
		intake_free(in);
		cm_warn("webhook.rejected", "status=503 reason=journal_busy rv=%d", rv);
		coord_metrics_webhook(503);
		reply_error(aio, 503, "journal queue full: retry later");
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

static void
actions_cb(nng_aio *aio)
{
	struct coord_http *h = server_of(aio);
	const char *uri = nng_http_req_get_uri(nng_aio_get_input(aio, 0));
	struct coord_journal_filter f = { .limit = 100 };
	char q[1024], *save = NULL, *json = NULL;
	const char *qs = strchr(uri, '?');
	int rv;

	q[0] = '\0';
	if (qs != NULL && strlen(qs + 1) >= sizeof(q)) {
		reply_error(aio, 400, "query string too long");
		return;
	}
	if (qs != NULL)
		snprintf(q, sizeof(q), "%s", qs + 1);
	for (char *kv = strtok_r(q, "&", &save); kv != NULL;
	    kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');
		char msg[160];

		if (v == NULL || !url_decode(v + 1)) {
			snprintf(msg, sizeof(msg), "malformed query parameter");
			reply_error(aio, 400, msg);
			return;
		}
		*v++ = '\0';
		if (strcmp(kv, "service") == 0)
			f.service = v;
		else if (strcmp(kv, "alertname") == 0)
			f.alertname = v;
		else if (strcmp(kv, "state") == 0)
			f.state = v;
		else if (strcmp(kv, "since") == 0) {
			if (cm_time_parse(v, &f.since_ms) < 0 ||
			    f.since_ms == CM_TIME_NONE) {
				reply_error(aio, 400, "since: expected an RFC 3339 time");
				return;
			}
		} else if (strcmp(kv, "limit") == 0) {
			char *end;
			long l = strtol(v, &end, 10);

			if (*v == '\0' || *end != '\0' || l < 1 || l > 1000) {
				reply_error(aio, 400, "limit: expected 1..1000");
				return;
			}
			f.limit = (int)l;
		} else {
			snprintf(msg, sizeof(msg), "unknown query parameter \"%.40s\" "
			    "(service, alertname, state, since, limit)", kv);
			reply_error(aio, 400, msg);
			return;
		}
	}
	rv = coord_journal_query_actions(h->d.journal, &f, &json);
	if (rv < 0) {
		reply_error(aio, 503, "journal query failed");
		return;
	}
	reply_json(aio, 200, json);
	free(json);
}

static void
agents_cb(nng_aio *aio)
{
	char *json = coord_agents_json(server_of(aio)->d.agents);

	if (json == NULL) {
		reply_error(aio, 503, "out of memory");
		return;
	}
	reply_json(aio, 200, json);
	free(json);
}

static void
gauges(struct coord_http *h, struct coord_gauges *g,
    struct coord_journal_stats *js)
{
	memset(g, 0, sizeof(*g));
	coord_agents_counts(h->d.agents, &g->agents_registered, &g->agents_lost);
	coord_engine_counts(h->d.engine, &g->queue_depth, &g->actions_in_flight);
	coord_journal_stats(h->d.journal, js);
	g->journal_bytes = js->bytes;
	g->journal_commits = js->commits;
	g->journal_commit_errors = js->commit_errors;
	{
		struct coord_breaker_state b;

		coord_engine_breaker(h->d.engine, &b);
		g->breaker_open = b.open;
		g->rollout_percent = coord_engine_rollout(h->d.engine);
	}
}

static void
metrics_cb(nng_aio *aio)
{
	struct coord_http *h = server_of(aio);
	struct coord_journal_stats js;
	struct coord_gauges g;
	char *text;
	size_t len;

	gauges(h, &g, &js);
	if (coord_metrics_render(&g, &text, &len) < 0) {
		reply_error(aio, 503, "out of memory");
		return;
	}
	reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
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
health_cb(nng_aio *aio)
{
	static const char *const names[] = { "healthy", "degraded",
		"unhealthy" };
	struct coord_http *h = server_of(aio);
	const struct coord_conf *c = h->d.conf;
	struct coord_journal_stats js;
	struct coord_breaker_state b;
	struct coord_gauges g;
	cJSON *o = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
	enum health level = HEALTHY;
	int64_t rate = coord_metrics_alerts_last_minute();
	char buf[COORD_REASON_MAX + 32], *s;

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
		reply_error(aio, 503, "out of memory");
		return;
	}
	reply_json(aio, level == UNHEALTHY ? 503 : 200, s);
	free(s);
}

static void
control(nng_aio *aio, bool pause)
{
	struct coord_http *h = server_of(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	char who[64] = "operator";
	const char *ua;
	int rv;

	if (h->d.auth->operator_token == NULL) {
		reply_error(aio, 403, "no operator credential is configured "
		    "(auth.operator_token_file): mutating calls are disabled");
		return;
	}
	if (!coord_auth_operator_ok(h->d.auth,
	    nng_http_req_get_header(req, "Authorization"))) {
		cm_warn("api.rejected", "status=401 call=%s",
		    pause ? "pause" : "resume");
		reply_unauthorized(aio, "operator credential required");
		return;
	}
	ua = nng_http_req_get_header(req, "X-Reflex-Operator");
	if (ua != NULL && cm_name_valid(ua))
		snprintf(who, sizeof(who), "%s", ua);
	rv = pause ? coord_engine_pause(h->d.engine, who) :
	    coord_engine_resume(h->d.engine);
	if (rv < 0) {
		reply_error(aio, 503, "out of memory");
		return;
	}
	cm_notice(pause ? "api.pause" : "api.resume", "who=%s", cm_q(who));
	reply_json(aio, 202, pause ? "{\"status\":\"pausing\"}" :
	    "{\"status\":\"resuming\"}");
}

// Operator calls share the credential check; returns false (and has
// answered) when the caller is not the operator.
static bool
operator_only(nng_aio *aio, const char *call, char *who, size_t n)
{
	struct coord_http *h = server_of(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const char *hdr;

	if (h->d.auth->operator_token == NULL) {
		reply_error(aio, 403, "no operator credential is configured "
		    "(auth.operator_token_file): mutating calls are disabled");
		return false;
	}
	if (!coord_auth_operator_ok(h->d.auth,
	    nng_http_req_get_header(req, "Authorization"))) {
		cm_warn("api.rejected", "status=401 call=%s", call);
		reply_unauthorized(aio, "operator credential required");
		return false;
	}
	hdr = nng_http_req_get_header(req, "X-Reflex-Operator");
	snprintf(who, n, "%s", hdr != NULL && cm_name_valid(hdr) ? hdr :
	    "operator");
	return true;
}

// POST /api/v1/approve|reject {"id": N}
static void
decide_cb(nng_aio *aio, bool approve)
{
	struct coord_http *h = server_of(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	char who[64];
	const cJSON *id;
	cJSON *doc;
	void *body;
	size_t len;
	int64_t v;

	if (!operator_only(aio, approve ? "approve" : "reject", who, sizeof(who)))
		return;
	nng_http_req_get_data(req, &body, &len);
	doc = len > 0 && len < 4096 ? cJSON_ParseWithLength(body, len) : NULL;
	id = cJSON_GetObjectItemCaseSensitive(doc, "id");
	if (!cJSON_IsNumber(id) || id->valuedouble < 1 ||
	    id->valuedouble > 9e15 || id->valuedouble != (double)(int64_t)
	    id->valuedouble) {
		cJSON_Delete(doc);
		reply_error(aio, 400, "expected a body {\"id\": <plan id>}");
		return;
	}
	v = (int64_t)id->valuedouble;
	cJSON_Delete(doc);
	if (coord_engine_approval(h->d.engine, v, approve, who) < 0) {
		reply_error(aio, 503, "out of memory");
		return;
	}
	cm_notice(approve ? "api.approve" : "api.reject", "id=%lld who=%s",
	    (long long)v, cm_q(who));
	reply_json(aio, 202, approve ? "{\"status\":\"approving\"}" :
	    "{\"status\":\"rejecting\"}");
}

static void
approve_cb(nng_aio *aio)
{
	decide_cb(aio, true);
}

static void
reject_cb(nng_aio *aio)
{
	decide_cb(aio, false);
}

static void
pause_cb(nng_aio *aio)
{
	control(aio, true);
}

static void
resume_cb(nng_aio *aio)
{
	control(aio, false);
}

static void
healthz_cb(nng_aio *aio)
{
	reply(aio, 200, "text/plain", "ok\n", 3);
}

// Ready to take alerts: the journal commits and the queue has room.
static void
readyz_cb(nng_aio *aio)
{
	struct coord_http *h = server_of(aio);
	struct coord_journal_stats js;
	struct coord_gauges g;

	gauges(h, &g, &js);
	if (g.queue_depth >= h->d.conf->limits.queue)
		reply(aio, 503, "text/plain", "alert queue full\n", 17);
	else if (js.commit_errors > 0 && js.commits == 0)
		reply(aio, 503, "text/plain", "journal not writable\n", 21);
	else
		reply(aio, 200, "text/plain", "ready\n", 6);
}

struct route {
	const char *path;
	const char *method;
	void (*fn)(nng_aio *);
	bool body;
};

static const struct route routes[] = {
	{ "/api/v1/alerts", "POST", webhook_cb, true },
	{ "/webhook/alert", "POST", webhook_cb, true },
	{ "/api/v1/actions", "GET", actions_cb, false },
	{ "/api/v1/agents", "GET", agents_cb, false },
	{ "/metrics", "GET", metrics_cb, false },
	{ "/health", "GET", health_cb, false },
	{ "/healthz", "GET", healthz_cb, false },
	{ "/readyz", "GET", readyz_cb, false },
	{ "/api/v1/pause", "POST", pause_cb, true },
	{ "/api/v1/resume", "POST", resume_cb, true },
	{ "/api/v1/approve", "POST", approve_cb, true },
	{ "/api/v1/reject", "POST", reject_cb, true },
};

static char *
slurp(const char *path, size_t max)
{
	FILE *f = fopen(path, "rbe");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf != NULL) {
		n = fread(buf, 1, max + 1, f);
		if (n > max) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static int
tls_setup(nng_http_server *srv, const struct coord_tls_conf *t, char *err,
    size_t errlen)
{
	nng_tls_config *cfg = NULL;
	char *cert = slurp(t->cert_file, 1 << 20), *key = slurp(t->key_file,
	    1 << 20);
	int rv;

	if (cert == NULL || key == NULL) {
		snprintf(err, errlen, "tls: cannot read %s", cert == NULL ?
		    t->cert_file : t->key_file);
		rv = NNG_EINVAL;
		goto out;
	}
	rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
	if (rv == 0)
		rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
	if (rv == 0 && t->client_ca_file != NULL) {
		rv = nng_tls_config_ca_file(cfg, t->client_ca_file);
		if (rv == 0)
			rv = nng_tls_config_auth_mode(cfg,
			    NNG_TLS_AUTH_MODE_REQUIRED);
	}
	if (rv == 0)
		rv = nng_http_server_set_tls(srv, cfg);
	if (rv != 0)
		snprintf(err, errlen, "tls: %s", nng_strerror(rv));
out:
	if (key != NULL)
		memset(key, 0, strlen(key));
	free(cert);
	free(key);
	if (cfg != NULL)
		nng_tls_config_free(cfg); // the server holds its own reference
	return rv;
}

int
coord_http_start(struct coord_http **ret, const struct coord_http_deps *d,
    char *err, size_t errlen)
{
	struct coord_http *h = calloc(1, sizeof(*h));
	char url[300];
	nng_url *u = NULL;
	int rv;

	if (h == NULL)
		return -ENOMEM;
	h->d = *d;
	snprintf(url, sizeof(url), "%s://%s", d->conf->tls.cert_file != NULL ?
	    "https" : "http", d->conf->listen);
	rv = nng_url_parse(&u, url);
	if (rv == 0)
		rv = nng_http_server_hold(&h->srv, u);
	nng_url_free(u);
	if (rv == 0 && d->conf->tls.cert_file != NULL) {
		rv = tls_setup(h->srv, &d->conf->tls, err, errlen);
		if (rv != 0) {
			nng_http_server_release(h->srv);
			free(h);
			return -EINVAL;
		}
	}
	for (size_t i = 0; rv == 0 && i < sizeof(routes) / sizeof(routes[0]); i++) {
		nng_http_handler *hd;
		size_t max = d->conf->wl.max_body * COLLECT_FACTOR;

		rv = nng_http_handler_alloc(&hd, routes[i].path, routes[i].fn);
		if (rv != 0)
			break;
		nng_http_handler_set_method(hd, routes[i].method);
		nng_http_handler_set_data(hd, h, NULL);
		nng_http_handler_collect_body(hd, routes[i].body,
		    routes[i].body ? max : 0);
		rv = nng_http_server_add_handler(h->srv, hd);
		if (rv != 0)
			nng_http_handler_free(hd);
	}
	if (rv == 0)
		rv = nng_http_server_start(h->srv);
	if (rv != 0) {
		snprintf(err, errlen, "listen %s: %s", d->conf->listen,
		    nng_strerror(rv));
		if (h->srv != NULL)
			nng_http_server_release(h->srv);
		free(h);
		return -EADDRINUSE;
	}
	*ret = h;
	return 0;
}

void
coord_http_stop(struct coord_http *h)
{
	if (h == NULL)
		return;
	nng_http_server_stop(h->srv);
	// Requests already handed to the journal finish through their
	// callback; wait so that none outlives the server.
	while (atomic_load(&h->pending) > 0)
		nng_msleep(5);
	nng_http_server_release(h->srv);
	free(h);
}
