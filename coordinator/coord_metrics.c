// SPDX-License-Identifier: MIT
// coord_metrics: counters and histograms, rendered as Prometheus text.
#include "coord_metrics.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 12
static const double bucket_le[N_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

struct histogram {
	atomic_uint_fast64_t buckets[N_BUCKETS]; // cumulative at render
	atomic_uint_fast64_t count;
	_Atomic double sum;
};

static atomic_uint_fast64_t alerts[2];
static atomic_uint_fast64_t webhooks[6]; // by status class 0..5 (x100)
static atomic_uint_fast64_t decisions[COORD_DEC__COUNT];
static atomic_uint_fast64_t actions[COORD_ACT__COUNT][COORD_OUT__COUNT];
static atomic_uint_fast64_t bad_frames;
static atomic_uint_fast64_t agents_refused, agents_evicted, workloads_refused;
static atomic_uint_fast64_t permits_not_hosted;

static const char *const check_names[] = {
	"breaker", "critical", "dependency", "flapping", "concurrency",
	"rate_global", "rate_service", "blast_radius",
};
#define N_CHECKS (sizeof(check_names) / sizeof(check_names[0]))
static atomic_uint_fast64_t safety_blocks[N_CHECKS];
static struct histogram alert_to_action, action_duration, recovery;
static atomic_uint_fast64_t verifications[COORD_VER__COUNT];
static atomic_uint_fast64_t notifications[2];
static const char *const verified_names[] = { "verified", "failed", "timeout" };

static const char *const decision_names[] = {
	[COORD_DEC_ACTED] = "acted",
	[COORD_DEC_NO_RULE] = "no_rule",
	[COORD_DEC_DUPLICATE] = "duplicate",
	[COORD_DEC_RESOLVED] = "resolved",
	[COORD_DEC_COOLDOWN] = "cooldown",
	[COORD_DEC_REFUSED] = "refused",
	[COORD_DEC_TEMPLATE_ERROR] = "template_error",
	[COORD_DEC_NO_AGENT] = "no_agent",
	[COORD_DEC_ESCALATED] = "escalated",
};

static const char *const outcome_names[] = {
	[COORD_OUT_SUCCEEDED] = "succeeded",
	[COORD_OUT_FAILED] = "failed",
	[COORD_OUT_TIMEOUT] = "timeout",
	[COORD_OUT_REFUSED] = "refused",
};

const char *
coord_decision_name(enum coord_decision d)
{
	return d < COORD_DEC__COUNT ? decision_names[d] : "unknown";
}

const char *
coord_outcome_name(enum coord_outcome o)
{
	return o < COORD_OUT__COUNT ? outcome_names[o] : "unknown";
}

// Alerts per second over the last minute: slot = second % 60, reset when
// a new second reuses it.
static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t rate_sec[60], rate_count[60];

void
coord_metrics_alert(int firing)
{
	int64_t sec = (int64_t)time(NULL);
	int slot = (int)(sec % 60);

	atomic_fetch_add(&alerts[firing ? 1 : 0], 1);
	pthread_mutex_lock(&rate_mu);
	if (rate_sec[slot] != sec) {
		rate_sec[slot] = sec;
		rate_count[slot] = 0;
	}
	rate_count[slot]++;
	pthread_mutex_unlock(&rate_mu);
}

int64_t
coord_metrics_alerts_last_minute(void)
{
	int64_t sec = (int64_t)time(NULL), n = 0;

	pthread_mutex_lock(&rate_mu);
	for (int i = 0; i < 60; i++)
		if (sec - rate_sec[i] < 60)
			n += rate_count[i];
	pthread_mutex_unlock(&rate_mu);
	return n;
}

void
coord_metrics_webhook(int http_status)
{
	int c = http_status / 100;

	atomic_fetch_add(&webhooks[c >= 1 && c <= 5 ? c : 0], 1);
}

void
coord_metrics_decision(enum coord_decision d)
{
	if (d < COORD_DEC__COUNT)
		atomic_fetch_add(&decisions[d], 1);
}

void
coord_metrics_action(enum coord_action_type t, enum coord_outcome o)
{
	if (t < COORD_ACT__COUNT && o < COORD_OUT__COUNT)
		atomic_fetch_add(&actions[t][o], 1);
}

void
coord_metrics_bad_frame(void)
{
	atomic_fetch_add(&bad_frames, 1);
}

void
coord_metrics_agent_refused(void)
{
	atomic_fetch_add(&agents_refused, 1);
}

void
coord_metrics_workloads_refused(void)
{
	atomic_fetch_add(&workloads_refused, 1);
}

void
coord_metrics_agent_evicted(void)
{
	atomic_fetch_add(&agents_evicted, 1);
}

void
coord_metrics_permit_not_hosted(void)
{
	atomic_fetch_add(&permits_not_hosted, 1);
}

void
coord_metrics_safety_block(const char *check)
{
	for (size_t i = 0; i < N_CHECKS; i++)
		if (strcmp(check, check_names[i]) == 0)
			atomic_fetch_add(&safety_blocks[i], 1);
}

static void
observe(struct histogram *h, double v)
{
	double old;

	for (int i = 0; i < N_BUCKETS; i++) {
		if (v <= bucket_le[i]) {
			atomic_fetch_add(&h->buckets[i], 1);
			break;
		}
	}
	atomic_fetch_add(&h->count, 1);
	old = atomic_load(&h->sum);
	while (!atomic_compare_exchange_weak(&h->sum, &old, old + v))
		;
}

void
coord_metrics_alert_to_action(double seconds)
{
	observe(&alert_to_action, seconds);
}

void
coord_metrics_action_duration(double seconds)
{
	observe(&action_duration, seconds);
}

void
coord_metrics_verification(enum coord_verified v, double seconds)
{
	if (v >= COORD_VER__COUNT)
		return;
	atomic_fetch_add(&verifications[v], 1);
	if (v == COORD_VER_VERIFIED)
		observe(&recovery, seconds);
}

void
coord_metrics_notification(int ok)
{
	atomic_fetch_add(&notifications[ok ? 1 : 0], 1);
}

// A growable text buffer for rendering.
struct out {
	char *buf;
	size_t len, cap;
	int err;
};

static void __attribute__((format(printf, 2, 3)))
outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->err = -EINVAL;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = (o->cap + (size_t)n) * 2;
		char *nb = realloc(o->buf, ncap);

		if (nb == NULL) {
			o->err = -ENOMEM;
			return;
		}
		o->buf = nb;
		o->cap = ncap;
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
render_histogram(struct out *o, const char *name, const char *help,
    struct histogram *h)
{
	uint64_t cum = 0;

	family(o, name, "histogram", help);
	for (int i = 0; i < N_BUCKETS; i++) {
		cum += atomic_load(&h->buckets[i]);
		outf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i],
		    (unsigned long long)cum);
	}
	outf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)atomic_load(&h->count));
	outf(o, "%s_sum %.6f\n", name, atomic_load(&h->sum));
	outf(o, "%s_count %llu\n", name,
	    (unsigned long long)atomic_load(&h->count));
}

static void
gauge(struct out *o, const char *name, const char *help, int64_t v)
{
	family(o, name, "gauge", help);
	outf(o, "%s %lld\n", name, (long long)v);
}

// A counter without labels.
static void
counter(struct out *o, const char *name, const char *help, int64_t v)
{
	family(o, name, "counter", help);
	outf(o, "%s %lld\n", name, (long long)v);
}

int
coord_metrics_render(const struct coord_gauges *g, char **ret, size_t *ret_len)
{
	struct out o = { .cap = 8192 };

	o.buf = malloc(o.cap);
	if (o.buf == NULL)
		return -ENOMEM;
	o.buf[0] = '\0';
	family(&o, "reflex_alerts_received_total", "counter",
	    "Alerts received in webhooks, by the alert's own status.");
	outf(&o, "reflex_alerts_received_total{status=\"resolved\"} %llu\n",
	    (unsigned long long)atomic_load(&alerts[0]));
	outf(&o, "reflex_alerts_received_total{status=\"firing\"} %llu\n",
	    (unsigned long long)atomic_load(&alerts[1]));
	family(&o, "reflex_webhook_requests_total", "counter",
	    "Webhook requests answered, by HTTP status class.");
	for (int c = 2; c <= 5; c++)
		outf(&o, "reflex_webhook_requests_total{code=\"%dxx\"} %llu\n",
		    c, (unsigned long long)atomic_load(&webhooks[c]));
	family(&o, "reflex_decisions_total", "counter",
	    "Decisions taken on firing and resolved alerts, by result.");
	for (int d = 0; d < COORD_DEC__COUNT; d++)
		outf(&o, "reflex_decisions_total{result=\"%s\"} %llu\n",
		    decision_names[d],
		    (unsigned long long)atomic_load(&decisions[d]));
	family(&o, "reflex_actions_total", "counter",
	    "Remediation actions finished, by type and outcome.");
	for (int t = 0; t < COORD_ACT__COUNT; t++)
		for (int r = 0; r < COORD_OUT__COUNT; r++)
			outf(&o, "reflex_actions_total{action=\"%s\",outcome=\"%s\"} %llu\n",
			    coord_action_name((enum coord_action_type)t),
			    outcome_names[r],
			    (unsigned long long)atomic_load(&actions[t][r]));
	family(&o, "reflex_agent_bad_frames_total", "counter",
	    "Agent messages that could not be decoded.");
	outf(&o, "reflex_agent_bad_frames_total %llu\n",
	    (unsigned long long)atomic_load(&bad_frames));
	family(&o, "reflex_agent_registrations_refused_total", "counter",
	    "Registrations of new nodes refused at max_agents.");
	outf(&o, "reflex_agent_registrations_refused_total %llu\n",
	    (unsigned long long)atomic_load(&agents_refused));
	family(&o, "reflex_agent_workloads_refused_total", "counter",
	    "Registrations refused at max_workloads.");
	outf(&o, "reflex_agent_workloads_refused_total %llu\n",
	    (unsigned long long)atomic_load(&workloads_refused));
	family(&o, "reflex_agents_evicted_total", "counter",
	    "Lost agents forgotten to make room for a new one at max_agents.");
	outf(&o, "reflex_agents_evicted_total %llu\n",
	    (unsigned long long)atomic_load(&agents_evicted));
	family(&o, "reflex_permits_not_hosted_total", "counter",
	    "Permit requests refused: the node does not host the service.");
	outf(&o, "reflex_permits_not_hosted_total %llu\n",
	    (unsigned long long)atomic_load(&permits_not_hosted));
	family(&o, "reflex_safety_blocks_total", "counter",
	    "Actions a safety check refused, by check.");
	for (size_t i = 0; i < N_CHECKS; i++)
		outf(&o, "reflex_safety_blocks_total{check=\"%s\"} %llu\n",
		    check_names[i],
		    (unsigned long long)atomic_load(&safety_blocks[i]));
	gauge(&o, "reflex_breaker_open",
	    "1 while automation is paused by the circuit breaker or an operator.",
	    g->breaker_open);
	gauge(&o, "reflex_rollout_percent",
	    "Share of services whose automation is live (the rest in shadow).",
	    g->rollout_percent);
	render_histogram(&o, "reflex_alert_to_action_seconds",
	    "Time from receiving an alert to its action being acknowledged.",
	    &alert_to_action);
	render_histogram(&o, "reflex_action_duration_seconds",
	    "Time from dispatching an action to its outcome.", &action_duration);
	render_histogram(&o, "reflex_time_to_recovery_seconds",
	    "Time from an alert to the verified recovery of its target.",
	    &recovery);
	family(&o, "reflex_verifications_total", "counter",
	    "Verifications after actions, by result (verified = an incident "
	    "closed without a person).");
	for (int v = 0; v < COORD_VER__COUNT; v++)
		outf(&o, "reflex_verifications_total{result=\"%s\"} %llu\n",
		    verified_names[v],
		    (unsigned long long)atomic_load(&verifications[v]));
	family(&o, "reflex_notifications_total", "counter",
	    "Notifications sent to webhooks, by result.");
	outf(&o, "reflex_notifications_total{result=\"sent\"} %llu\n",
	    (unsigned long long)atomic_load(&notifications[1]));
	outf(&o, "reflex_notifications_total{result=\"failed\"} %llu\n",
	    (unsigned long long)atomic_load(&notifications[0]));
	gauge(&o, "reflex_agents_registered", "Agents known to the coordinator.",
	    g->agents_registered);
	gauge(&o, "reflex_agents_lost", "Agents whose heartbeats stopped.",
	    g->agents_lost);
	gauge(&o, "reflex_agent_channel_stuck", "1 once libnng's nng_close "
	    "hung (agents.close_stuck): /healthz fails, restart needed.",
	    g->agent_channel_stuck);
	gauge(&o, "reflex_alert_queue_depth",
	    "Alerts accepted and waiting for a decision.", g->queue_depth);
	gauge(&o, "reflex_actions_in_flight", "Actions dispatched, not finished.",
	    g->actions_in_flight);
	gauge(&o, "reflex_journal_size_bytes", "Size of the journal on disk.",
	    g->journal_bytes);
	counter(&o, "reflex_journal_commits_total",
	    "Group commits written to the journal.",
	    g->journal_commits);
	counter(&o, "reflex_journal_commit_errors_total",
	    "Journal commits that failed.",
	    g->journal_commit_errors);
	family(&o, "reflex_journal_checkpoints_total", "counter",
	    "WAL checkpoints into the database file, by who ran them (the "
	    "writer only when the checkpointer fell behind).");
	outf(&o, "reflex_journal_checkpoints_total{by=\"checkpointer\"} %lld\n"
	    "reflex_journal_checkpoints_total{by=\"writer\"} %lld\n",
	    (long long)g->journal_checkpoints,
	    (long long)g->journal_backstop_checkpoints);
	counter(&o, "reflex_journal_checkpoint_waits_total",
	    "Checkpoints that waited for a moment without commits, so that "
	    "their writes would not delay a commit's fdatasync.",
	    g->journal_checkpoint_waits);
	counter(&o, "reflex_journal_syncs_total",
	    "fdatasyncs of the journal's WAL (journal_sync_full on a file); "
	    "each covers every commit before it.",
	    g->journal_syncs);
	counter(&o, "reflex_journal_linger_timeouts_total",
	    "Times the journal's syncer stopped waiting for the engine's rows "
	    "of just-committed alerts (1 ms) and synced without them.",
	    g->journal_linger_timeouts);
	family(&o, "reflex_journal_alert_texts_total", "counter",
	    "Alerts by whether their texts (labels, annotations, generator "
	    "URL, receiver, group key) were stored anew or found stored.");
	outf(&o, "reflex_journal_alert_texts_total{result=\"stored\"} %lld\n"
	    "reflex_journal_alert_texts_total{result=\"found\"} %lld\n",
	    (long long)g->journal_texts_new, (long long)g->journal_texts_found);
	if (o.err) {
		free(o.buf);
		return o.err;
	}
	*ret = o.buf;
	*ret_len = o.len;
	return 0;
}
