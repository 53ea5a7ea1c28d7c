// SPDX-License-Identifier: MIT
// coord_engine: the decision loop (see coord_engine.h).
#include "coord_engine.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cm_log.h"
#include "cm_hash.h"
#include "cm_heap.h"
#include "cm_time.h"
#include "cm_thread.h"
#include "coord_metrics.h"
#include "coord_k8s_actions.h"
#include "coord_kexec.h"
#include "coord_notify.h"
#include "coord_planmemo.h"
#include "coord_prom.h"
#include "coord_worker.h"

#define HASH_BUCKETS 4096
#define TARGETS_MAX 10000 // agents one step may fan out to
#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS 30000
#define REBUILD_WINDOW_MS (24LL * 3600 * 1000)
#define INCIDENT_KEEP_CLOSED_MS (3600LL * 1000)
#define INCIDENT_KEEP_IDLE_MS (24LL * 3600 * 1000)
#define GITOPS_QUIET_MS (30LL * 60 * 1000) // a reconcile interval and more
#define CHUNK_EVENTS 256 // events decided between flushes and stop checks
#define DRAIN_ROUNDS 8	 // at stop: rounds of sending what committed

// An incident: one alert identity from its first firing to its resolve.
struct incident {
	struct incident *next; // hash chain
	uint64_t identity;
	int64_t start_ms;      // startsAt of the alert that opened it
	int64_t last_action_id;
	int64_t last_action_mono; // 0 = never acted
	int64_t closed_mono;
	int64_t touched_mono;
	int attempts;	       // runs started for this incident
	bool open;
	// Runs, verifications and plans awaiting approval that point to it
	// (each takes one hold and gives it back when it ends or hands it
	// on): "in progress" while > 0, and never freed (prune) before 0.
	// A closed incident may be reopened while an earlier holder is still
	// out, so this counts rather than flags.
	int holds;
	bool escalated;
	char service[CM_NAME_MAX]; // of its first action, for safety
	char history[CM_TEXT_MAX]; // what was tried and how it went
};

// Appends "; <what>" to the incident's history (truncated when full).
static void __attribute__((format(printf, 2, 3)))
history_add(struct incident *inc, const char *fmt, ...)
{
	size_t o = strlen(inc->history);
	va_list ap;

	if (o + 4 >= sizeof(inc->history))
		return;
	if (o > 0) {
		memcpy(inc->history + o, "; ", 2);
		o += 2;
	}
	va_start(ap, fmt);
	vsnprintf(inc->history + o, sizeof(inc->history) - o, fmt, ap);
	va_end(ap);
}

// Last use of one action on one target ("rule|type|service|instance").
struct cooldown {
	struct cooldown *next;
	uint64_t hash;
	char *key;
	int64_t until_mono;
	int64_t action_id;
};

// One target of a run's current step: an agent (or the API server, or
// the notifiers) with its journal row and its current try.
struct run_target {
	struct coord_target t;
	struct run *run;
	int64_t action_id;
	int attempt;		   // current try, 1-based; 0 = not started
	int64_t started_mono;	   // of the current try
	int64_t retry_at_mono;	   // 0 = not waiting for a retry
	int64_t deadline_mono;	   // the current try's timeout
	bool waiting;		   // a command is out
	bool timed_out;		   // recorded as timeout; a late answer
				   // is still recorded when it comes
	bool done;		   // its outcome is final
};

// The execution of one rule's actions for one alert, step by step. A
// step's targets run side by side, as many at once as the safety
// section's max_concurrent allows; the step is over when every target
// started is done.
struct run {
	struct run *next;
	struct coord_engine *e;
	struct incident *inc;
	struct coord_alert *alert; // owned
	int64_t alert_id;
	int64_t received_mono;
	struct coord_plan *plans;  // owned
	size_t n_plans, step;
	struct run_target *tg;	   // owned, n_targets used of cap_targets
	size_t n_targets, cap_targets;
	size_t next_t;		   // first target not started yet
	size_t lo;		   // first target not done yet
	size_t n_active;	   // started and not done
	bool failed;		   // a target failed: start no more
	const struct run_target *fail_rt; // the first that failed
	bool pump_due;		   // state changed: see run_pump
	bool first_ack_seen;
	size_t esc_next;	   // escalation step to run if this fails
	char why[CM_TEXT_MAX];	   // what the run did, for notifications
	char fail_why[CM_TEXT_MAX + 256]; // the first failure's detail
	bool k8s;		   // the current step runs on the API server
	bool pod_agent;		   // ... or is a pod restart on its agent
	char route[CM_NAME_MAX + 64]; // how a pod restart went, for rows
};

// Verification of a finished run: polls the agent's view of the target
// and a PromQL condition, and waits for the resolved notification.
struct verify {
	struct cm_heap_node due;   // in e->verifies, at its next time
	struct coord_engine *e;
	struct incident *inc;
	struct coord_alert *alert; // owned
	const struct coord_rule *rule;
	int64_t alert_id;
	int64_t received_mono;
	int64_t row_id;		   // the "verify" action row
	char node[CM_NAME_MAX], service[CM_NAME_MAX], instance[CM_NAME_MAX];
	char *promql;		   // rendered, owned; NULL = none
	bool need_health;
	struct coord_plan *kplan;  // kubernetes: the run's plans (owned)
	size_t kplan_n, kplan_last;
	int64_t started_mono, deadline_mono, next_poll_mono;
	int health, promql_state;  // -1 unknown, 0 broken, 1 healthy
	bool health_pending, promql_pending;
	struct ev *check_ev;	   // the health check's answer event, made
				   // before the check leaves (its callback
				   // cannot fail); owned until then
	char health_detail[256], promql_detail[256];
	size_t esc_next;
	char tried[CM_TEXT_MAX];
};

enum ev_kind { EV_ALERT, EV_DONE, EV_PAUSE, EV_RESUME, EV_VCHECK,
	EV_VQUERY, EV_APPROVE, EV_REJECT, EV_PERMIT, EV_COMMIT };

struct notify_job;

// The engine's writes since its last flush: one journal batch (decisions,
// outcome rows, write-ahead action rows, updates), the targets whose
// commands leave once that batch committed, and the notes to people
// (escalations, storm reports) that leave then too. Owned by the engine
// thread until submitted; then by its EV_COMMIT event (`ev`, allocated up
// front so the commit callback never fails).
struct ebatch {
	struct coord_engine *e;
	struct coord_journal_batch *jb;
	struct run_target **sends;
	size_t n_sends, cap_sends;
	struct notify_job *notes, **notes_tail; // owned, in order
	struct ev *ev;
	int rv;
};

// A change to undo after a while (rule param revert_after): the record
// the Kubernetes action returned, applied by coord_k8s_revert.
struct revert {
	struct revert *next;
	int64_t at_mono;
	int64_t row_id;
	char *record; // owned JSON
};

// An agent's permit request waiting for the engine's verdict. Shared by
// the waiting agent-server thread and the engine: freed by whichever lets
// go last (the waiter gives up after a timeout).
struct permit_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	struct cm_msg_permit req;
	struct cm_msg_reply reply;
};

static void
permit_unref(struct permit_wait *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (last) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

// A plan held for an operator's decision (rule or service in approval).
struct approval {
	struct approval *next;
	int64_t id;		   // its journal row
	struct incident *inc;
	struct coord_alert *alert; // owned
	int64_t alert_id, received_mono;
	struct coord_plan *plans;  // owned
	size_t n_plans;
	int64_t expires_mono;
};

#define DEC_NAME_MAX 64
#define DEFER_RETRY_MS 10000
// An alert taken up at a start (pending, or of an unsent action) whose
// target no agent has announced waits this long after the start for
// the agents to register again, looked at again every AGENTS_RETRY_MS.
#define AGENTS_WAIT_MS 15000
#define AGENTS_RETRY_MS 500
#define DEFER_MAX_MS (10 * 60000)

struct ev {
	struct ev *next;
	enum ev_kind kind;
	struct coord_alert *alert; // EV_ALERT, owned: alert_in, or on the
				   // heap (replayed alerts); ev_take_alert
	struct coord_alert alert_in; // a webhook's alert, moved in
	int64_t alert_id;
	uint64_t identity;
	int64_t received_mono;
	bool hold;		   // EV_ALERT: a journal hold to keep (see
				   // coord_engine_push_early)
	bool taken_up;		   // EV_ALERT: from the journal at a start
	struct run_target *target; // EV_DONE
	int rv;
	bool has_reply;
	// EV_DONE, EV_VCHECK: the reply, in the event's own block (ev_new
	// with room), so that the alerts' events do not carry its ~1 KB;
	// reply->json owned by the event. NULL in every other event.
	struct cm_msg_reply *reply;
	char who[CM_NAME_MAX];	   // EV_PAUSE
	struct verify *verify;	   // EV_VCHECK, EV_VQUERY
	int64_t approval_id;	   // EV_APPROVE, EV_REJECT
	struct permit_wait *permit; // EV_PERMIT (owned by the waiter)
	int verdict;		   // EV_VQUERY: enum coord_prom_verdict
	char detail[256];
	int64_t retry_at_mono;	   // deferred alerts (dependency: wait)
	int64_t defer_until_mono;
	struct ebatch *commit;	   // EV_COMMIT, owned
	// EV_ALERT: the plans count_demand made (owned), so that handle_alert
	// does not plan the same alert twice in one turn.
	bool planned;
	int plan_rv;		   // plan_for's result; its reason in detail
	struct coord_plan *plans;
	size_t n_plans;
	struct coord_planmemo_slot *lease; // non-NULL: plans lent by the memo
};

// A zeroed event; with_reply: with room for a reply in the same block
// (ev->reply points there). Free with ev_free. NULL when out of memory.
static struct ev *
ev_new(bool with_reply)
{
	struct ev *ev = calloc(1, sizeof(*ev) + (with_reply ?
	    sizeof(struct cm_msg_reply) : 0));

	if (ev != NULL && with_reply)
		ev->reply = (struct cm_msg_reply *)(void *)(ev + 1);
	return ev;
}

struct coord_engine {
	struct coord_engine_deps d;
	_Atomic(const struct coord_rules *) rules; // d.conf's, or reloaded
	pthread_t thread;
	pthread_mutex_t mu; // guards the queue and the counters below
	pthread_cond_t cv;
	struct ev *head, *tail;
	int64_t queued;
	int64_t in_flight;	// commands out or waiting for their commit
	int64_t outstanding;	// batches submitted, callback not yet run
	bool stopping;
	bool started;
	struct coord_breaker_state br; // snapshot for other threads
	int64_t rollout_pub;	       // snapshot of rollout_percent

	// Owned by the engine thread only:
	struct incident *incidents[HASH_BUCKETS];
	struct cooldown *cooldowns[HASH_BUCKETS];
	size_t n_cooldowns;	// entries in cooldowns; with none, lookups
				// skip building their keys
	struct run *runs;
	struct ev *deferred;	// alerts waiting for a dependency
	// Open verifications by the time each is due next (its next poll
	// or its deadline): a storm leaves hundreds open, and a walk of all
	// of them at each one's poll was most of the engine's time.
	struct cm_heap verifies;
	struct approval *approvals;
	struct revert *reverts;	// kubernetes changes to undo later
	int64_t rollout_percent;
	int64_t rollout_changed_mono;
	struct coord_safety *safety;
	// Jobs that block: notifications, kubernetes actions and reverts on
	// `worker`; verification polls (PromQL queries, kubernetes health
	// reads) on `polls`, so that a storm's polls against a slow
	// Prometheus or API server never hold back a repair or a page.
	struct coord_worker *worker;
	struct coord_worker *polls;
	struct coord_kexec *kexec; // kubernetes runtime, else NULL
	int64_t last_prune_mono;
	struct ebatch *cur;	// writes not yet submitted (engine_flush)
	unsigned jholds;	// journal holds of this turn's alerts
	struct coord_planmemo *memo; // plans of label sets that come again
	int64_t started_mono;	// coord_engine_start
	char dec_names[COORD_DEC__COUNT][DEC_NAME_MAX]; // dashed_name of each
};

// FNV-1a from this (non-standard) start: the rollout's picks of services
// depend on it, so it stays.
static uint64_t
fnv1a(const char *s)
{
	return cm_fnv1a(1469598103934665603ULL, s);
}

// ---- queue ---------------------------------------------------------------

static void
enqueue(struct coord_engine *e, struct ev *ev)
{
	pthread_mutex_lock(&e->mu);
	if (e->tail != NULL)
		e->tail->next = ev;
	else
		e->head = ev;
	e->tail = ev;
	if (ev->kind == EV_ALERT)
		e->queued++;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static void ebatch_free(struct ebatch *eb);

static void
ev_free(struct ev *ev)
{
	if (ev == NULL)
		return;
	ebatch_free(ev->commit);
	if (ev->kind == EV_PERMIT && ev->permit != NULL)
		permit_unref(ev->permit);
	if (ev->has_reply)
		free(ev->reply->json);
	if (ev->lease != NULL)
		coord_planmemo_release(ev->lease);
	else
		coord_plans_free(ev->plans, ev->n_plans);
	if (ev->alert == &ev->alert_in)
		coord_alert_clear(ev->alert);
	else
		coord_alert_free(ev->alert);
	free(ev);
}

// Takes ev's alert for what keeps it beyond the event (a run, an
// approval): on the heap. NULL when out of memory; ev keeps it then.
static struct coord_alert *
ev_take_alert(struct ev *ev)
{
	struct coord_alert *a = ev->alert;

	if (a == &ev->alert_in) {
		a = malloc(sizeof(*a));
		if (a == NULL)
			return NULL;
		*a = ev->alert_in; // moved: `mem` goes with it
		memset(&ev->alert_in, 0, sizeof(ev->alert_in));
	}
	ev->alert = NULL;
	return a;
}

void
coord_engine_set_rules(struct coord_engine *e, const struct coord_rules *rules)
{
	atomic_store(&e->rules, rules);
}

bool
coord_engine_full(struct coord_engine *e)
{
	bool full;

	pthread_mutex_lock(&e->mu);
	full = e->queued >= e->d.conf->limits.queue;
	pthread_mutex_unlock(&e->mu);
	return full;
}

void
coord_engine_counts(struct coord_engine *e, int64_t *queued, int64_t *in_flight)
{
	pthread_mutex_lock(&e->mu);
	*queued = e->queued;
	*in_flight = e->in_flight;
	pthread_mutex_unlock(&e->mu);
}

static int
push_alert(struct coord_engine *e, struct coord_alert *a, int64_t id,
    uint64_t identity, int64_t received_mono)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return -ENOMEM;
	ev->kind = EV_ALERT;
	ev->alert = a;
	ev->alert_id = id;
	ev->identity = identity;
	ev->received_mono = received_mono;
	ev->taken_up = true;
	enqueue(e, ev);
	return 0;
}

// Queues n's alerts; with try_hold, takes a journal hold for them when
// nothing else is queued (*held).
static int
push_notification(struct coord_engine *e, struct coord_notification *n,
    const int64_t *ids, const uint64_t *identities, int64_t received_mono,
    bool try_hold, bool *held)
{
	struct ev *head = NULL, **tail = &head;
	size_t count = 0;

	*held = false;
	// The alerts of one notification enter the queue together, so the
	// engine counts them as one batch (storm detection sees them all).
	for (size_t i = 0; i < n->n_alerts; i++) {
		struct ev *ev = calloc(1, sizeof(*ev));

		if (ev == NULL) {
			// Stored as pending in the journal: the next start
			// replays it. Nothing is lost, only delayed.
			cm_err("engine.enqueue_failed", "alert_id=%" PRId64, ids[i]);
			continue;
		}
		// Moved into the event, not copied: the notification keeps an
		// empty alert that frees nothing.
		ev->alert_in = n->alerts[i];
		ev->alert = &ev->alert_in;
		memset(&n->alerts[i], 0, sizeof(n->alerts[i]));
		ev->kind = EV_ALERT;
		ev->alert_id = ids[i];
		ev->identity = identities[i];
		ev->received_mono = received_mono;
		*tail = ev;
		tail = &ev->next;
		count++;
	}
	if (head == NULL)
		return n->n_alerts > 0 ? -ENOMEM : 0;
	pthread_mutex_lock(&e->mu);
	// Only an engine with nothing queued decides these alerts at once
	// (after the turn it may be in): one with a backlog would keep the
	// journal's syncer waiting for all of it.
	if (try_hold && e->head == NULL)
		*held = head->hold = true;
	if (e->tail != NULL)
		e->tail->next = head;
	else
		e->head = head;
	for (e->tail = head; e->tail->next != NULL; e->tail = e->tail->next)
		;
	e->queued += (int64_t)count;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return count == n->n_alerts ? 0 : -ENOMEM;
}

int
coord_engine_push(struct coord_engine *e, struct coord_notification *n,
    const int64_t *ids, const uint64_t *identities, int64_t received_mono)
{
	bool held;

	return push_notification(e, n, ids, identities, received_mono, false,
	    &held);
}

unsigned
coord_engine_push_early(struct coord_engine *e, struct coord_notification *n,
    const int64_t *ids, const uint64_t *identities, int64_t received_mono,
    bool quiet)
{
	bool held;

	(void)push_notification(e, n, ids, identities, received_mono, quiet,
	    &held);
	return held ? 1 : 0;
}

// ---- incidents and cooldowns ---------------------------------------------

static struct incident *
incident_find(struct coord_engine *e, uint64_t identity)
{
	struct incident *i = e->incidents[identity % HASH_BUCKETS];

	while (i != NULL && i->identity != identity)
		i = i->next;
	return i;
}

static struct incident *
incident_get(struct coord_engine *e, uint64_t identity)
{
	struct incident *i = incident_find(e, identity);

	if (i != NULL)
		return i;
	i = calloc(1, sizeof(*i));
	if (i == NULL)
		return NULL;
	i->identity = identity;
	i->next = e->incidents[identity % HASH_BUCKETS];
	e->incidents[identity % HASH_BUCKETS] = i;
	return i;
}

static struct cooldown *
cooldown_find(struct coord_engine *e, const char *key)
{
	uint64_t h = fnv1a(key);
	struct cooldown *c = e->cooldowns[h % HASH_BUCKETS];

	while (c != NULL && (c->hash != h || strcmp(c->key, key) != 0))
		c = c->next;
	return c;
}

static void
cooldown_set(struct coord_engine *e, const char *key, int64_t until_mono,
    int64_t action_id)
{
	struct cooldown *c = cooldown_find(e, key);

	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL || (c->key = strdup(key)) == NULL) {
			free(c);
			return; // worst case: a later duplicate is not held back
		}
		c->hash = fnv1a(key);
		c->next = e->cooldowns[c->hash % HASH_BUCKETS];
		e->cooldowns[c->hash % HASH_BUCKETS] = c;
		e->n_cooldowns++;
	}
	if (until_mono > c->until_mono) {
		c->until_mono = until_mono;
		c->action_id = action_id;
	}
}

// Appends s to the string of length o in buf (size n), cut to fit.
// Returns the new length.
static size_t
str_put(char *buf, size_t n, size_t o, const char *s)
{
	size_t k = strlen(s);

	if (k > n - 1 - o)
		k = n - 1 - o;
	memcpy(buf + o, s, k);
	buf[o + k] = '\0';
	return o + k;
}

// Joins the strings that follow `sep` (up to a NULL) with `sep` between
// them into buf (n > 0), cut to n - 1 bytes as snprintf would cut them.
// The decision path builds its keys and texts with it: per alert,
// snprintf cost more than the rest of the decision.
static void __attribute__((sentinel))
str_join(char *buf, size_t n, const char *sep, ...)
{
	const char *s;
	size_t o = 0;
	va_list ap;

	buf[0] = '\0';
	va_start(ap, sep);
	for (bool first = true; (s = va_arg(ap, const char *)) != NULL;
	    first = false) {
		if (!first && sep[0] != '\0') // "" adds nothing: not put
			o = str_put(buf, n, o, sep);
		o = str_put(buf, n, o, s);
	}
	va_end(ap);
}

static void
action_key(char *buf, size_t n, const char *rule, const char *type,
    const char *service, const char *instance)
{
	str_join(buf, n, "|", rule, type, service, instance, (char *)NULL);
}

// The cooldown key of the quiet window after a GitOps-managed restart.
static void
gitops_key(char *buf, size_t n, const char *service)
{
	str_join(buf, n, "|", "gitops", service, (char *)NULL);
}

// Frees incidents closed an hour ago or idle for a day, and expired
// cooldowns, so memory stays bounded under any alert volume.
static void
prune(struct coord_engine *e, int64_t now)
{
	if (now - e->last_prune_mono < 60000)
		return;
	e->last_prune_mono = now;
	for (size_t b = 0; b < HASH_BUCKETS; b++) {
		struct incident **ip = &e->incidents[b];
		struct cooldown **cp = &e->cooldowns[b];

		while (*ip != NULL) {
			struct incident *i = *ip;

			if (i->holds == 0 && ((!i->open &&
			    now - i->closed_mono > INCIDENT_KEEP_CLOSED_MS) ||
			    now - i->touched_mono > INCIDENT_KEEP_IDLE_MS)) {
				*ip = i->next;
				free(i);
			} else {
				ip = &i->next;
			}
		}
		while (*cp != NULL) {
			struct cooldown *c = *cp;

			if (c->until_mono < now) {
				*cp = c->next;
				free(c->key);
				free(c);
				e->n_cooldowns--;
			} else {
				cp = &c->next;
			}
		}
	}
}

// ---- journal writes ------------------------------------------------------
//
// Every write of the engine thread goes into the current batch (e->cur)
// and is committed with the others when the batch is flushed: after each
// chunk of events and at the end of each loop turn. Nothing waits for a
// commit. Action ids are known at once (the journal hands them out). The
// write-ahead rule holds through `sends`: a target's command leaves only
// when the batch holding its row committed (handle_commit).

static void notes_free(struct notify_job *list);
static void notes_launch(struct coord_engine *e, struct notify_job *list);

static void
ebatch_free(struct ebatch *eb)
{
	if (eb == NULL)
		return;
	notes_free(eb->notes);
	coord_journal_batch_free(eb->jb);
	free(eb->sends);
	free(eb->ev);
	free(eb);
}

// The current batch, made on first use; NULL when out of memory.
static struct ebatch *
cur_batch(struct coord_engine *e)
{
	struct ebatch *eb = e->cur;

	if (eb != NULL)
		return eb;
	eb = calloc(1, sizeof(*eb));
	if (eb == NULL)
		return NULL;
	eb->e = e;
	eb->jb = coord_journal_batch_new(e->d.journal);
	eb->ev = calloc(1, sizeof(*eb->ev));
	if (eb->jb == NULL || eb->ev == NULL) {
		ebatch_free(eb);
		return NULL;
	}
	eb->ev->kind = EV_COMMIT;
	eb->notes_tail = &eb->notes;
	e->cur = eb;
	return eb;
}

// Room for n more sends in the current batch. Returns it or NULL.
static struct ebatch *
sends_reserve(struct coord_engine *e, size_t n)
{
	struct ebatch *eb = cur_batch(e);

	if (eb == NULL)
		return NULL;
	if (eb->n_sends + n > eb->cap_sends) {
		size_t cap = eb->cap_sends ? eb->cap_sends : 16;
		struct run_target **v;

		while (cap < eb->n_sends + n)
			cap *= 2;
		v = realloc(eb->sends, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		eb->sends = v;
		eb->cap_sends = cap;
	}
	return eb;
}

static void
j_alert_done(struct coord_engine *e, int64_t alert_id, const char *outcome,
    const char *detail)
{
	struct ebatch *eb = cur_batch(e);
	int rv = -ENOMEM;

	if (eb != NULL)
		rv = coord_journal_batch_alert_done(eb->jb, alert_id, outcome,
		    detail);
	if (rv == -ENOMEM) // written on its own, waiting for the commit
		rv = coord_journal_alert_done(e->d.journal, alert_id, outcome,
		    detail);
	if (rv < 0)
		cm_err("engine.journal_failed", "alert_id=%" PRId64 " rv=%d",
		    alert_id, rv);
}

// Queues rec and sets rec->id. Returns the id, or 0 when it could not
// be queued.
static int64_t
j_insert(struct coord_engine *e, struct coord_action_rec *rec)
{
	struct ebatch *eb = cur_batch(e);
	int rv = -ENOMEM;

	if (eb != NULL)
		rv = coord_journal_batch_action_insert(eb->jb, rec);
	if (rv == -ENOMEM)
		rv = coord_journal_action_insert(e->d.journal, rec);
	if (rv < 0) {
		cm_err("engine.journal_failed", "what=action_insert rv=%d", rv);
		rec->id = 0;
	}
	return rec->id;
}

static void
j_update(struct coord_engine *e, int64_t id, const char *state,
    const char *detail, int64_t now_ms)
{
	struct ebatch *eb = cur_batch(e);
	int rv = -ENOMEM;

	if (eb != NULL)
		rv = coord_journal_batch_action_update(eb->jb, id, state, detail,
		    now_ms);
	if (rv == -ENOMEM)
		rv = coord_journal_action_update(e->d.journal, id, state, detail,
		    now_ms);
	if (rv < 0 && rv != -ENOENT)
		cm_err("engine.journal_failed", "action_id=%" PRId64 " rv=%d",
		    id, rv);
}

// The journal's completion thread (its syncer, or its writer when that
// syncs itself): the batch is durable (or failed). The engine
// thread takes it from here (handle_commit), unless it sends nothing:
// then there is nothing to do but free it, done here without waking the
// engine (in a storm most batches are outcomes only).
static void
batch_done(int rv, void *arg)
{
	struct ebatch *eb = arg;
	struct coord_engine *e = eb->e;
	struct ev *ev = eb->ev;

	if (eb->n_sends == 0 && eb->notes == NULL) {
		if (rv < 0)
			cm_err("engine.journal_failed", "what=batch rv=%d "
			    "targets=0", rv);
		ebatch_free(eb);
		pthread_mutex_lock(&e->mu);
		e->outstanding--;
		if (e->stopping) // drain_commits or stop may wait for it
			pthread_cond_broadcast(&e->cv);
		pthread_mutex_unlock(&e->mu);
		return;
	}
	eb->rv = rv;
	eb->ev = NULL;
	ev->commit = eb;
	pthread_mutex_lock(&e->mu);
	e->outstanding--;
	ev->next = NULL;
	if (e->tail != NULL)
		e->tail->next = ev;
	else
		e->head = ev;
	e->tail = ev;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static void handle_commit(struct coord_engine *e, struct ebatch *eb);

// Submits the current batch, if it holds anything. Never waits.
static void
engine_flush(struct coord_engine *e)
{
	struct ebatch *eb = e->cur;
	struct coord_journal_batch *jb;
	unsigned holds;
	int rv;

	// The turn's journal holds: a batch that sends commands or notes
	// keeps them (the journal's syncer waits for its rows); with nothing
	// to send nothing needs to wait, and they are kept at once.
	holds = e->jholds;
	e->jholds = 0;
	if (holds > 0 && (eb == NULL || (eb->n_sends == 0 &&
	    eb->notes == NULL))) {
		coord_journal_release(e->d.journal, holds);
		holds = 0;
	}
	if (eb == NULL)
		return;
	e->cur = NULL;
	// (Notes wait for the batch even without rows of their own: its
	// completion comes after the sync of the alerts that caused them.)
	if (coord_journal_batch_len(eb->jb) == 0 && eb->n_sends == 0 &&
	    eb->notes == NULL) {
		ebatch_free(eb);
		return;
	}
	jb = eb->jb;
	eb->jb = NULL;
	coord_journal_batch_release(jb, holds);
	pthread_mutex_lock(&e->mu);
	e->outstanding++;
	pthread_mutex_unlock(&e->mu);
	rv = coord_journal_batch_submit(jb, batch_done, eb);
	if (rv < 0) {
		coord_journal_release(e->d.journal, holds);
		pthread_mutex_lock(&e->mu);
		e->outstanding--;
		pthread_mutex_unlock(&e->mu);
		eb->rv = rv;
		handle_commit(e, eb);
	}
}

static bool
stopping_now(struct coord_engine *e)
{
	bool stop;

	pthread_mutex_lock(&e->mu);
	stop = e->stopping;
	pthread_mutex_unlock(&e->mu);
	return stop;
}

// ---- decisions -----------------------------------------------------------

// The journal spells decision names with dashes ("no-rule").
static void
dashed_name(char buf[DEC_NAME_MAX], enum coord_decision d)
{
	const char *name = coord_decision_name(d);
	size_t i;

	for (i = 0; name[i] != '\0' && i < DEC_NAME_MAX - 1; i++)
		buf[i] = name[i] == '_' ? '-' : name[i];
	buf[i] = '\0';
}

static void
decide_as(struct coord_engine *e, int64_t alert_id, enum coord_decision d,
    const char *outcome, const char *detail)
{
	char buf[DEC_NAME_MAX];

	coord_metrics_decision(d);
	if (outcome == NULL && (unsigned)d < COORD_DEC__COUNT) {
		outcome = e->dec_names[d]; // spelled at the start
	} else if (outcome == NULL) {
		dashed_name(buf, d);
		outcome = buf;
	}
	j_alert_done(e, alert_id, outcome, detail);
	// Re-notifications of a firing alert (duplicate) and alerts no rule
	// wants are most of a storm: journaled and counted, logged at debug.
	CM_LOG_AT(d == COORD_DEC_DUPLICATE || d == COORD_DEC_NO_RULE ?
	    CM_LOG_DEBUG : CM_LOG_INFO, "engine.decision", "alert_id=%" PRId64
	    " result=%s detail=%s", alert_id, outcome, cm_q(detail));
}

static void
decide(struct coord_engine *e, int64_t alert_id, enum coord_decision d,
    const char *detail)
{
	decide_as(e, alert_id, d, NULL, detail);
}

static bool
agent_action(enum coord_action_type t)
{
	return t == COORD_ACT_RESTART || t == COORD_ACT_CLEAR_CACHE ||
	    t == COORD_ACT_RELOAD_CONFIG;
}

// Runs on the API server (kubernetes runtime) rather than on an agent.
static bool
on_k8s(const struct coord_engine *e, enum coord_action_type t)
{
	return e->kexec != NULL && coord_kexec_handles(t);
}

static bool
dispatchable_in(const struct coord_engine *e, enum coord_action_type t)
{
	return on_k8s(e, t) || agent_action(t);
}

// The plans of the first matching rule, and of later ones while the
// matched rules say "continue" (coord_rules_plan). Returns 0 with
// *ret_n == 0 when no rule matched; -EINVAL on a template error (reason
// in err). With *lease non-NULL the plans are the memo's, lent (see
// plans_drop, plans_own); else the caller's.
static int
plan_for(struct coord_engine *e, const struct coord_alert *a,
    uint64_t identity, struct coord_plan **ret, size_t *ret_n,
    struct coord_planmemo_slot **lease, char *err, size_t errlen)
{
	const struct coord_rules *rules = atomic_load(&e->rules);

	if (e->memo == NULL) {
		*lease = NULL;
		return coord_rules_plan(rules, a, ret, ret_n, err, errlen);
	}
	return coord_planmemo_plan(e->memo, rules, a, identity, ret, ret_n,
	    lease, err, errlen);
}

// Lets go of plans from plan_for: gives lent ones back, frees own ones.
static void
plans_drop(struct coord_plan *plans, size_t n,
    struct coord_planmemo_slot *lease)
{
	if (lease != NULL)
		coord_planmemo_release(lease);
	else
		coord_plans_free(plans, n);
}

// Makes plans from plan_for the caller's own (a copy of lent ones), for
// what keeps them (a run, an approval). False when out of memory: then
// they are let go of.
static bool
plans_own(struct coord_plan **plans, size_t n,
    struct coord_planmemo_slot **lease)
{
	struct coord_plan *copy;

	if (*lease == NULL)
		return true;
	copy = coord_plans_dup(*plans, n);
	coord_planmemo_release(*lease);
	*lease = NULL;
	*plans = copy;
	return copy != NULL;
}

static void run_step(struct run *r);
static void run_pump(struct run *r);
static void dispatch_retry(struct run_target *rt);
static void safety_req(struct coord_engine *e, const struct coord_plan *p,
    uint64_t identity, struct coord_safety_req *ret);

static void
run_free(struct run *r)
{
	coord_plans_free(r->plans, r->n_plans);
	coord_alert_free(r->alert);
	free(r->tg);
	free(r);
}

static void
run_unlink(struct coord_engine *e, struct run *r)
{
	for (struct run **p = &e->runs; *p != NULL; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			return;
		}
	}
}

static void verify_start(struct run *r);
static void escalate_next(struct coord_engine *e, struct incident *inc,
    struct coord_alert *a, const struct coord_rule *rule, int64_t alert_id,
    int64_t received_mono, size_t step, const char *tried,
    const char *outcome);

static void
run_finish(struct run *r, bool ok, const char *why)
{
	struct coord_engine *e = r->e;
	char tried[CM_TEXT_MAX];

	cm_log(ok ? CM_LOG_INFO : CM_LOG_WARN, "engine.run_done",
	    "alert_id=%" PRId64 " rule=%s ok=%d attempt=%d detail=%s",
	    r->alert_id, cm_q(r->plans[0].rule->conf->name), ok,
	    r->inc->attempts, cm_q(why));
	run_unlink(e, r);
	if (ok) {
		verify_start(r); // takes r->alert and the run's hold
	} else {
		history_add(r->inc, "%s: %s", r->why, why);
		snprintf(tried, sizeof(tried), "%s", r->inc->history);
		r->inc->holds--;
		escalate_next(e, r->inc, r->alert, r->plans[0].rule, r->alert_id,
		    r->received_mono, r->esc_next, tried, why);
		r->alert = NULL;
	}
	run_free(r);
}

static const char *
alertname(const struct coord_alert *a)
{
	const char *n = coord_kvs_get(&a->labels, "alertname");

	return n != NULL ? n : "";
}

// Records a step that cannot run (unsupported, nobody hosts it) as a
// refused/failed action row, so the journal shows what was skipped.
static void
record_unrunnable(struct run *r, const struct coord_plan *p, const char *state,
    enum coord_outcome o, const char *detail)
{
	struct coord_action_rec rec = {
		.alert_id = r->alert_id,
		.identity = r->inc->identity,
		.incident_start_ms = r->inc->start_ms,
		.rule = p->rule->conf->name,
		.type = coord_action_name(p->type),
		.service = p->service,
		.instance = p->instance,
		.state = state,
		.detail = detail,
		.attempt = 1,
		.created_ms = cm_now_ms(),
	};

	(void)j_insert(r->e, &rec);
	coord_metrics_action(p->type, o);
}

static void notify_step(struct run *r, const struct coord_plan *p);

// Makes room for `n` targets of the current step and resets them all.
// Returns 0 or -ENOMEM.
static int
targets_reset(struct run *r, size_t n)
{
	if (n > r->cap_targets) {
		struct run_target *tg = realloc(r->tg, n * sizeof(*tg));

		if (tg == NULL)
			return -ENOMEM;
		r->tg = tg;
		r->cap_targets = n;
	}
	if (n > 0) // r->tg is still NULL when a run's first step has none
		memset(r->tg, 0, n * sizeof(*r->tg));
	for (size_t i = 0; i < n; i++)
		r->tg[i].run = r;
	r->n_targets = n;
	r->next_t = r->lo = r->n_active = 0;
	r->failed = false;
	r->fail_rt = NULL;
	r->fail_why[0] = '\0';
	return 0;
}

// The agents hosting the step's target, at most TARGETS_MAX + 1 (more
// than TARGETS_MAX means too many). Returns the count, 0 when nobody
// hosts it, or -ENOMEM.
static ssize_t
resolve_targets(struct run *r, const struct coord_plan *p)
{
	struct coord_agents *ag = r->e->d.agents;
	// One instance is on one agent, rarely a few; a whole service on up
	// to one agent per instance. (The targets are filled, not zeroed:
	// a 1,000-instance service's room was 200 KB cleared per restart.)
	int64_t hint = p->instance[0] != '\0' ? 0 :
	    coord_agents_count_instances(ag, p->service);
	size_t cap = hint <= 0 ? 16 : hint < TARGETS_MAX ?
	    (size_t)hint + 16 : TARGETS_MAX + 1, n;
	struct coord_target *tmp;

	for (;;) {
		if (cap > TARGETS_MAX + 1)
			cap = TARGETS_MAX + 1;
		tmp = malloc(cap * sizeof(*tmp));
		if (tmp == NULL)
			return -ENOMEM;
		n = coord_agents_resolve(ag, p->service, p->instance, tmp, cap);
		// Full: agents registered since the count; look again.
		if (n < cap || cap == TARGETS_MAX + 1)
			break;
		free(tmp);
		cap *= 2;
	}
	if (n <= TARGETS_MAX && targets_reset(r, n) < 0) {
		free(tmp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && i < r->n_targets; i++)
		r->tg[i].t = tmp[i];
	free(tmp);
	return (ssize_t)n;
}

// A one-target step: the workload (or pod) on the API server.
static int
k8s_target(struct run *r, const struct coord_plan *p)
{
	struct coord_target *t;

	if (targets_reset(r, 1) < 0)
		return -ENOMEM;
	t = &r->tg[0].t;
	snprintf(t->node, sizeof(t->node), "kubernetes");
	snprintf(t->service, sizeof(t->service), "%s", p->service);
	snprintf(t->instance, sizeof(t->instance), "%s", p->instance);
	return 0;
}

// A restart of one named pod (kubernetes runtime) goes to the agent that
// registered the pod, which evicts it (PodDisruptionBudgets honoured)
// and checks its replacement; without a live agent for it, the API
// server is asked directly (k8s_target). Sets r->route either way.
static int
pod_target(struct run *r, const struct coord_plan *p)
{
	struct coord_target t;
	int rv = coord_agents_find_pod(r->e->d.agents, p->service,
	    p->instance, &t);

	if (rv == 1) {
		if (targets_reset(r, 1) < 0)
			return -ENOMEM;
		r->tg[0].t = t;
		r->k8s = false;
		r->pod_agent = true;
		snprintf(r->route, sizeof(r->route), "via agent %s", t.node);
	} else {
		if (k8s_target(r, p) < 0)
			return -ENOMEM;
		snprintf(r->route, sizeof(r->route), "via API (%s)", rv < 0 ?
		    "several agents have a pod of that name" :
		    "no agent for pod");
	}
	cm_info("engine.pod_route", "alert_id=%" PRId64 " service=%s pod=%s "
	    "route=%s", r->alert_id, cm_q(p->service), cm_q(p->instance),
	    cm_q(r->route));
	return 0;
}

static void
run_step(struct run *r)
{
	const struct coord_plan *p;
	char detail[512];
	ssize_t n;

	if (r->step >= r->n_plans) {
		run_finish(r, true, "all steps succeeded");
		return;
	}
	p = &r->plans[r->step];
	if (p->type == COORD_ACT_NOTIFY) {
		notify_step(r, p);
		return;
	}
	if (!dispatchable_in(r->e, p->type)) {
		snprintf(detail, sizeof(detail),
		    "%s is not available in the process runtime",
		    coord_action_name(p->type));
		record_unrunnable(r, p, "refused", COORD_OUT_REFUSED, detail);
		run_finish(r, false, detail);
		return;
	}
	if (r->step > 0) {
		struct coord_safety_req sr;
		struct coord_verdict v;

		safety_req(r->e, p, r->inc->identity, &sr);
		coord_safety_check(r->e->safety, &sr, cm_now_ms(), &v);
		if (!v.allow) {
			coord_metrics_safety_block(v.check);
			snprintf(detail, sizeof(detail), "refused:%s: %s",
			    v.check, v.reason);
			record_unrunnable(r, p, "refused", COORD_OUT_REFUSED,
			    detail);
			run_finish(r, false, detail);
			return;
		}
	}
	r->k8s = on_k8s(r->e, p->type);
	r->pod_agent = false;
	r->route[0] = '\0';
	if (r->k8s && p->type == COORD_ACT_RESTART && p->instance[0] != '\0')
		n = pod_target(r, p) < 0 ? -ENOMEM : 1;
	else
		n = r->k8s ? (k8s_target(r, p) < 0 ? -ENOMEM : 1) :
		    resolve_targets(r, p);
	if (n < 0) {
		cm_err("engine.run_failed", "alert_id=%" PRId64
		    " reason=out_of_memory", r->alert_id);
		run_finish(r, false, "out of memory: action not sent");
		return;
	}
	if (n == 0 || n > TARGETS_MAX) {
		if (n == 0)
			snprintf(detail, sizeof(detail),
			    "no registered agent runs service %s instance %s",
			    p->service, p->instance[0] ? p->instance : "(all)");
		else
			snprintf(detail, sizeof(detail), "more than %d agents "
			    "run service %s; one step reaches at most %d "
			    "(split the rule by instance)", TARGETS_MAX,
			    p->service, TARGETS_MAX);
		record_unrunnable(r, p, n == 0 ? "failed" : "refused",
		    n == 0 ? COORD_OUT_FAILED : COORD_OUT_REFUSED, detail);
		run_finish(r, false, detail);
		return;
	}
	run_pump(r);
}

static void handle_done(struct coord_engine *e, struct run_target *rt,
    int rv, const struct cm_msg_reply *reply);

static void
command_done(int rv, const struct cm_msg_reply *reply, void *arg)
{
	struct run_target *rt = arg;
	struct ev *ev = ev_new(true);

	if (ev == NULL) {
		// Without memory we cannot hand the result over; the run stays
		// busy and the in-flight row tells the operator.
		cm_err("engine.done_lost", "action_id=%" PRId64, rt->action_id);
		return;
	}
	ev->kind = EV_DONE;
	ev->target = rt;
	ev->rv = rv;
	if (reply != NULL) {
		ev->has_reply = true;
		*ev->reply = *reply;
		// The sender frees its copy; the evidence in it is kept.
		ev->reply->json = reply->json != NULL ? strdup(reply->json) :
		    NULL;
	}
	enqueue(rt->run->e, ev);
}

static int64_t
action_timeout_ms(const struct coord_plan *p)
{
	return p->act->timeout_ms > 0 ? p->act->timeout_ms :
	    coord_action_default_timeout_ms(p->type);
}

// Sends the current try of `rt`, whose journal row is committed.
static void
send_target(struct run_target *rt)
{
	struct run *r = rt->run;
	struct coord_engine *e = r->e;
	const struct coord_plan *p = &r->plans[r->step];
	const struct coord_target *t = &rt->t;
	struct cm_msg_command cmd = { 0 };
	int rv;

	cmd.action_id = (uint64_t)rt->action_id;
	snprintf(cmd.action, sizeof(cmd.action), "%s", coord_action_name(p->type));
	// A pod's agent knows it under its own service name.
	snprintf(cmd.service, sizeof(cmd.service), "%s", r->pod_agent ?
	    t->service : p->service);
	snprintf(cmd.instance, sizeof(cmd.instance), "%s", t->instance);
	snprintf(cmd.reason, sizeof(cmd.reason), "alert %s (journal alert %"
	    PRId64 "), rule %s", alertname(r->alert), r->alert_id,
	    p->rule->conf->name);
	cmd.timeout_ms = (uint32_t)action_timeout_ms(p);
	rt->started_mono = cm_mono_ms();

	// e->in_flight counts it already (start_targets, dispatch_retry).
	cm_info("engine.dispatch", "action_id=%" PRId64 " type=%s node=%s "
	    "service=%s instance=%s attempt=%d", rt->action_id, cmd.action,
	    cm_q(t->node), cm_q(cmd.service), cm_q(cmd.instance), rt->attempt);
	rt->deadline_mono = rt->started_mono + action_timeout_ms(p);
	rt->timed_out = false;
	rt->waiting = true;
	if (r->k8s)
		rv = coord_kexec_submit(e->kexec, p, &r->alert->labels,
		    p->rule->conf->name, action_timeout_ms(p), command_done, rt);
	else if (t->lost)
		rv = -EHOSTDOWN;
	else // the channel waits twice as long, to record a late answer
		rv = coord_agents_command(e->d.agents, t->node, &cmd,
		    2 * action_timeout_ms(p), command_done, rt);
	if (rv < 0)
		handle_done(e, rt, rv, NULL);
}

// Targets the run may start now: the safety section's max_concurrent
// bounds the commands out at once, fleet-wide and within this run, and
// a run with nothing in flight may always start one (its step passed
// the concurrency check).
static size_t
window_free(struct run *r)
{
	struct coord_engine *e = r->e;
	int64_t max = e->d.conf->safety.max_concurrent, busy;

	pthread_mutex_lock(&e->mu);
	busy = e->in_flight;
	pthread_mutex_unlock(&e->mu);
	if ((int64_t)r->n_active > busy)
		busy = (int64_t)r->n_active;
	if (busy < max)
		return (size_t)(max - busy);
	return r->n_active == 0 ? 1 : 0;
}

// Starts targets next_t .. next_t + n - 1: their journal rows go into
// the current batch and their commands leave when it committed
// (write-ahead: a row exists before its command leaves, so a crash can
// never hide an action that ran; handle_commit). Returns 0 or -ENOMEM
// (nothing was started).
static int
start_targets(struct run *r, size_t n)
{
	struct coord_engine *e = r->e;
	const struct coord_plan *p = &r->plans[r->step];
	struct ebatch *eb = sends_reserve(e, n);
	size_t first = r->next_t;
	int64_t now_ms = cm_now_ms();
	char key[512], sent[sizeof(r->route) + 8];

	if (eb == NULL)
		return -ENOMEM;
	snprintf(sent, sizeof(sent), "sent %s", r->route[0] ? r->route :
	    "to agent");
	for (size_t i = 0; i < n; i++) {
		struct run_target *rt = &r->tg[first + i];
		const struct coord_target *t = &rt->t;
		struct coord_action_rec rec = {
			.alert_id = r->alert_id,
			.identity = r->inc->identity,
			.incident_start_ms = r->inc->start_ms,
			.rule = p->rule->conf->name,
			.type = coord_action_name(p->type),
			.service = p->service,
			.instance = t->instance[0] ? t->instance : p->instance,
			.node = t->node,
			.state = "dispatched",
			.detail = sent,
			.attempt = 1,
			.created_ms = now_ms,
		};
		struct coord_safety_req sr;

		if (coord_journal_batch_action_insert(eb->jb, &rec) < 0) {
			if (i == 0)
				return -ENOMEM;
			n = i; // the first i go; the rest wait for the next pump
			break;
		}
		rt->action_id = rec.id;
		rt->attempt = 1;
		r->inc->last_action_id = rec.id;
		safety_req(e, p, r->inc->identity, &sr);
		sr.instance = rec.instance;
		coord_safety_started(e->safety, &sr, now_ms);
		action_key(key, sizeof(key), p->rule->conf->name,
		    coord_action_name(p->type), p->service, rec.instance);
		cooldown_set(e, key, cm_mono_ms() + p->rule->conf->cooldown_ms,
		    rec.id);
		eb->sends[eb->n_sends++] = rt;
	}
	r->next_t += n;
	r->n_active += n;
	pthread_mutex_lock(&e->mu);
	e->in_flight += (int64_t)n;
	pthread_mutex_unlock(&e->mu);
	return 0;
}

// Moves the run on: starts as many targets as the window allows, and
// when every started target is done, finishes the run (a target failed)
// or goes to the next step. May free r.
static void
run_pump(struct run *r)
{
	size_t n;
	int rv;

	r->pump_due = false;
	while (r->lo < r->n_targets && r->tg[r->lo].done)
		r->lo++;
	if (!r->failed && r->next_t < r->n_targets) {
		n = window_free(r);
		if (n > r->n_targets - r->next_t)
			n = r->n_targets - r->next_t;
		if (n > 0) {
			rv = start_targets(r, n);
			if (rv < 0) {
				cm_err("engine.run_failed", "alert_id=%"
				    PRId64 " rv=%d", r->alert_id, rv);
				r->failed = true;
				snprintf(r->fail_why, sizeof(r->fail_why),
				    "out of memory: action not sent");
			}
		}
	}
	if (r->n_active > 0 || (!r->failed && r->next_t < r->n_targets))
		return;
	if (r->failed) {
		run_finish(r, false, r->fail_why);
		return;
	}
	r->step++;
	run_step(r);
}

// A retry of a target whose earlier try failed: same row, next attempt.
static void
dispatch_retry(struct run_target *rt)
{
	char d[64];

	struct coord_engine *e = rt->run->e;

	snprintf(d, sizeof(d), "attempt %d sent to agent", rt->attempt);
	// The row exists (committed before the first try): the retry need
	// not wait for this update.
	j_update(e, rt->action_id, "dispatched", d, cm_now_ms());
	pthread_mutex_lock(&e->mu);
	e->in_flight++;
	pthread_mutex_unlock(&e->mu);
	send_target(rt);
}

static int64_t
backoff_ms(int attempt)
{
	int64_t ms = RETRY_BASE_MS;

	for (int i = 2; i < attempt && ms < RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

static int64_t row_insert(struct coord_engine *e, int64_t alert_id,
    struct incident *inc, const char *rule, const char *type,
    const char *service, const char *instance, const char *node,
    const char *state, const char *detail);

// The agent's evidence from before a restart (its last output lines and
// how the old process ended), one journal row per instance, so the cause
// can still be found after the fix. Bounded: 4 KiB per instance.
static void
record_evidence(struct coord_engine *e, const struct run_target *rt,
    const char *json)
{
	const struct run *r = rt->run;
	cJSON *doc = cJSON_Parse(json), *results, *it;
	const struct coord_plan *p = &r->plans[r->step];

	results = cJSON_GetObjectItemCaseSensitive(doc, "results");
	if (!cJSON_IsArray(results))
		results = NULL;
	cJSON_ArrayForEach(it, results) {
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(it, "evidence");
		const cJSON *inst = cJSON_GetObjectItemCaseSensitive(it, "instance");
		char text[4096];

		if (!cJSON_IsString(ev) || ev->valuestring[0] == '\0')
			continue;
		snprintf(text, sizeof(text), "%s", ev->valuestring);
		row_insert(e, r->alert_id, r->inc, p->rule->conf->name, "evidence",
		    p->service, cJSON_IsString(inst) &&
		    cm_name_valid(inst->valuestring) ? inst->valuestring : "",
		    rt->t.node, "recorded", text);
	}
	cJSON_Delete(doc);
}

struct revert_job {
	struct coord_engine *e;
	int64_t row_id;
	char *record;
};

static void
revert_job_run(void *arg)
{
	struct revert_job *j = arg;
	struct coord_k8s_result res = { 0 };
	char detail[COORD_K8S_REASON_MAX + 64];

	(void)coord_k8s_revert(j->e->d.k8s, &j->e->d.conf->kubernetes,
	    j->record, &res);
	snprintf(detail, sizeof(detail), "%s: %s", res.code, res.reason);
	(void)coord_journal_action_update(j->e->d.journal, j->row_id,
	    res.outcome == COORD_K8S_OK ? "succeeded" :
	    res.outcome == COORD_K8S_REFUSED ? "refused" : "failed", detail,
	    cm_now_ms());
	cm_notice("engine.reverted", "row=%" PRId64 " outcome=%s detail=%s",
	    j->row_id, coord_k8s_outcome_name(res.outcome), cm_q(detail));
	coord_k8s_result_clear(&res);
	free(j->record);
	free(j);
}

// A Kubernetes change whose rule says `revert_after: <duration>` is undone
// when that time has passed (only if nobody changed the same fields since:
// coord_k8s_revert checks).
static void
schedule_revert(struct coord_engine *e, struct run *r,
    const struct coord_plan *p, const char *message)
{
	const char *after = cm_strmap_get(&p->params, "revert_after");
	const char *rec = strstr(message, "; revert: ");
	struct revert *rv;
	int64_t ms;
	char d[96];

	if (after == NULL || rec == NULL)
		return;
	if (cm_duration_parse(after, &ms) < 0 || ms <= 0) {
		cm_warn("engine.revert_after_bad", "value=%s", cm_q(after));
		return;
	}
	rv = calloc(1, sizeof(*rv));
	if (rv == NULL || (rv->record = strdup(rec + 10)) == NULL) {
		free(rv);
		return;
	}
	rv->at_mono = cm_mono_ms() + ms;
	snprintf(d, sizeof(d), "revert scheduled in %lld s",
	    (long long)(ms / 1000));
	rv->row_id = row_insert(e, r->alert_id, r->inc, p->rule->conf->name,
	    "revert", p->service, p->instance, "kubernetes", "scheduled", d);
	rv->next = e->reverts;
	e->reverts = rv;
}

static void
fire_reverts(struct coord_engine *e, int64_t now)
{
	struct revert **pp = &e->reverts;

	while (*pp != NULL) {
		struct revert *rv = *pp;
		struct revert_job *j;

		if (rv->at_mono > now) {
			pp = &rv->next;
			continue;
		}
		*pp = rv->next;
		engine_flush(e); // the row goes before the job's update
		j = calloc(1, sizeof(*j));
		if (j != NULL) {
			*j = (struct revert_job){ .e = e, .row_id = rv->row_id,
				.record = rv->record };
			rv->record = NULL;
			if (coord_worker_submit(e->worker, revert_job_run, j) < 0) {
				free(j->record);
				free(j);
			}
		}
		free(rv->record);
		free(rv);
	}
}

// Retries of a failed action: the rule's, but none for a critical
// service (one try: a person should look before it is hit again).
static int64_t
retries_for(struct coord_engine *e, const struct coord_plan *p)
{
	const struct cm_strlist *crit = &e->d.conf->safety.critical_services;

	for (size_t i = 0; i < crit->n; i++)
		if (strcmp(crit->v[i], p->service) == 0)
			return 0;
	return p->act->retries;
}

// Marks the run failed (it starts no more targets; those out still
// finish and are recorded). The first failure names why, unless the same
// target has more to say (a late answer after its timeout).
static void
run_fail(struct run_target *rt, const char *why)
{
	struct run *r = rt->run;

	if (!r->failed || r->fail_rt == rt)
		snprintf(r->fail_why, sizeof(r->fail_why), "%s", why);
	if (!r->failed)
		r->fail_rt = rt;
	r->failed = true;
}

// A target's outcome is final: it leaves the window. The engine loop
// moves the run on (run_pump) once the events at hand are handled, so
// the targets that follow start together.
static void
target_finished(struct run_target *rt, bool ok, const char *why)
{
	rt->done = true;
	rt->run->n_active--;
	rt->run->pump_due = true;
	if (!ok)
		run_fail(rt, why);
}

static void
handle_done(struct coord_engine *e, struct run_target *rt, int rv,
    const struct cm_msg_reply *reply)
{
	struct run *r = rt->run;
	const struct coord_plan *p = &r->plans[r->step];
	int64_t now = cm_mono_ms();
	bool ok = rv == 0 && reply != NULL && reply->ok;
	char detail[CM_TEXT_MAX + 128];

	pthread_mutex_lock(&e->mu);
	e->in_flight--;
	pthread_mutex_unlock(&e->mu);
	rt->waiting = false;
	coord_metrics_action_duration(
	    (double)(now - rt->started_mono) / 1000.0);
	if (rt->timed_out) {
		char late[CM_TEXT_MAX + 96];

		// Already recorded (and counted) as a timeout at its deadline.
		if (rv == -ETIMEDOUT)
			snprintf(late, sizeof(late), "timed out after %lld s; "
			    "no late answer within %lld s either",
			    (long long)(action_timeout_ms(p) / 1000),
			    (long long)((now - rt->started_mono) / 1000));
		else
			snprintf(late, sizeof(late), "timed out after %lld s; late "
			    "answer after %lld s: %s: %s",
			    (long long)(action_timeout_ms(p) / 1000),
			    (long long)((now - rt->started_mono) / 1000),
			    ok ? "succeeded" : "failed", reply != NULL ?
			    reply->message : strerror(-rv));
		j_update(e, rt->action_id,
		    "timeout", late, cm_now_ms());
		cm_warn("engine.late_answer", "action_id=%" PRId64 " detail=%s",
		    rt->action_id, cm_q(late));
		target_finished(rt, false, late);
		return;
	}

	if (reply != NULL)
		snprintf(detail, sizeof(detail), "%s", reply->message);
	else if (rv == -EHOSTDOWN)
		snprintf(detail, sizeof(detail), "agent on node %s is lost "
		    "(no heartbeat)", rt->t.node);
	else
		snprintf(detail, sizeof(detail), "%s", strerror(-rv));
	if (r->route[0] != '\0') {
		size_t o = strlen(detail);

		snprintf(detail + o, sizeof(detail) - o, "; %s", r->route);
	}

	if (reply != NULL && reply->json != NULL)
		record_evidence(e, rt, reply->json);
	if (ok && r->k8s && reply != NULL) {
		schedule_revert(e, r, p, reply->message);
		if (p->type == COORD_ACT_RESTART &&
		    strstr(reply->message, "GitOps") != NULL) {
			char key[CM_NAME_MAX * 2];

			// The GitOps tool will roll the target once more at its
			// next reconcile; alerts from that rollout are not new
			// incidents (C13).
			gitops_key(key, sizeof(key), p->service);
			cooldown_set(e, key, cm_mono_ms() + GITOPS_QUIET_MS,
			    rt->action_id);
		}
	}
	if (ok) {
		if (!r->first_ack_seen) {
			r->first_ack_seen = true;
			coord_metrics_alert_to_action(
			    (double)(now - r->received_mono) / 1000.0);
		}
		j_update(e, rt->action_id,
		    "succeeded", detail, cm_now_ms());
		coord_safety_finished(e->safety, p->service, true,
		    now - rt->started_mono, cm_now_ms());
		coord_metrics_action(p->type, COORD_OUT_SUCCEEDED);
		cm_info("engine.action_done", "action_id=%" PRId64
		    " outcome=succeeded detail=%s", rt->action_id, cm_q(detail));
		target_finished(rt, true, NULL);
		return;
	}

	// Refused by a check that needs the API (a rollout in progress,
	// cluster load, paused, GitOps, PDB): no retry. A pod's agent
	// reports a PodDisruptionBudget's refusal (or an eviction already
	// under way) as -EBUSY.
	if (reply != NULL && (reply->code == -ECANCELED ||
	    (r->pod_agent && reply->code == -EBUSY))) {
		j_update(e, rt->action_id,
		    "refused", detail, cm_now_ms());
		coord_metrics_action(p->type, COORD_OUT_REFUSED);
		coord_safety_finished(e->safety, p->service, false,
		    now - rt->started_mono, cm_now_ms());
		target_finished(rt, false, detail);
		return;
	}
	if (rt->attempt <= retries_for(e, p) && rv != -ECANCELED &&
	    rv != -EHOSTDOWN && // a lost agent fails fast, no retries
	    p->type != COORD_ACT_NOTIFY) { // notifiers retry on their own
		int64_t wait = backoff_ms(rt->attempt + 1);
		char d[CM_TEXT_MAX + 160];

		snprintf(d, sizeof(d), "attempt %d failed: %s; retrying in %lld ms",
		    rt->attempt, detail, (long long)wait);
		j_update(e, rt->action_id,
		    "retrying", d, cm_now_ms());
		cm_warn("engine.action_retry", "action_id=%" PRId64 " detail=%s",
		    rt->action_id, cm_q(d));
		rt->attempt++;
		rt->retry_at_mono = now + wait;
		return;
	}
	{
		bool timed_out = rv == -ETIMEDOUT;
		const char *state = timed_out ? "timeout" : "failed";

		j_update(e, rt->action_id,
		    state, detail, cm_now_ms());
		coord_safety_finished(e->safety, p->service, false,
		    now - rt->started_mono, cm_now_ms());
		coord_metrics_action(p->type, timed_out ? COORD_OUT_TIMEOUT :
		    COORD_OUT_FAILED);
		cm_warn("engine.action_done", "action_id=%" PRId64
		    " outcome=%s detail=%s", rt->action_id, state, cm_q(detail));
		target_finished(rt, false, detail);
	}
}

// Starts a run for `inc` and takes `a` and `plans`. `esc_next` is the
// escalation step that follows if it fails. Returns false (and frees
// what it took) when out of memory.
static bool
run_begin(struct coord_engine *e, struct incident *inc, struct coord_alert *a,
    int64_t alert_id, int64_t received_mono, struct coord_plan *plans,
    size_t n_plans, size_t esc_next)
{
	struct run *r = a != NULL ? calloc(1, sizeof(*r)) : NULL;

	if (r == NULL) { // out of memory (a NULL alert included)
		coord_plans_free(plans, n_plans);
		coord_alert_free(a);
		return false;
	}
	r->e = e;
	r->inc = inc;
	r->alert = a;
	r->alert_id = alert_id;
	r->received_mono = received_mono;
	r->plans = plans;
	r->n_plans = n_plans;
	r->esc_next = esc_next;
	r->next = e->runs;
	e->runs = r;
	inc->holds++;
	inc->attempts++;
	inc->last_action_mono = cm_mono_ms();
	snprintf(r->why, sizeof(r->why), "rule %s, attempt %d: %s %s/%s%s",
	    plans[0].rule->conf->name, inc->attempts,
	    coord_action_name(plans[0].type), plans[0].service,
	    plans[0].instance[0] ? plans[0].instance : "*",
	    n_plans > 1 ? " (+more steps)" : "");
	run_step(r);
	return true;
}

static void
start_run(struct coord_engine *e, struct incident *inc, struct coord_alert *a,
    int64_t alert_id, int64_t received_mono, struct coord_plan *plans,
    size_t n_plans)
{
	char detail[512];

	snprintf(detail, sizeof(detail), "rule %s, attempt %d: %s %s/%s%s",
	    plans[0].rule->conf->name, inc->attempts + 1,
	    coord_action_name(plans[0].type), plans[0].service,
	    plans[0].instance[0] ? plans[0].instance : "*",
	    n_plans > 1 ? " (+more steps)" : "");
	decide(e, alert_id, COORD_DEC_ACTED, detail);
	if (!run_begin(e, inc, a, alert_id, received_mono, plans, n_plans, 0))
		cm_err("engine.run_failed", "alert_id=%" PRId64
		    " reason=out_of_memory", alert_id);
}

// First step's targets must exist before an attempt is spent on them.
// When not, says why in `detail` unless that is NULL.
static bool
first_step_hosted(struct coord_engine *e, const struct coord_plan *p,
    char *detail, size_t n)
{
	struct coord_target t[1];

	if (!agent_action(p->type) || on_k8s(e, p->type))
		return true; // not an agent's, or refused by run_step
	if (coord_agents_resolve(e->d.agents, p->service, p->instance, t, 1) > 0)
		return true;
	if (detail != NULL)
		str_join(detail, n, "", "no registered agent runs service ",
		    p->service, " instance ", p->instance[0] ? p->instance :
		    "(all)", (char *)NULL);
	return false;
}

// The instance as the actions that ran are recorded: an instance named by
// its address (Prometheus' instance label) is resolved to the agent's
// name for it, so that both spellings are one instance.
static const char *
resolved_instance(struct coord_engine *e, const struct coord_plan *p,
    char *buf, size_t n)
{
	struct coord_target t;

	if (p->instance[0] == '\0' || on_k8s(e, p->type) ||
	    coord_agents_resolve(e->d.agents, p->service, p->instance, &t,
	    1) != 1 || t.instance[0] == '\0')
		return p->instance;
	snprintf(buf, n, "%s", t.instance);
	return buf;
}

static bool
in_cooldown(struct coord_engine *e, const struct coord_plan *plans,
    size_t n, char *detail, size_t dn)
{
	int64_t now = cm_mono_ms();

	if (e->n_cooldowns == 0)
		return false; // nothing to find: no keys to build
	for (size_t i = 0; i < n; i++) {
		char key[512], name[CM_NAME_MAX];
		struct cooldown *c;

		action_key(key, sizeof(key), plans[i].rule->conf->name,
		    coord_action_name(plans[i].type), plans[i].service,
		    resolved_instance(e, &plans[i], name, sizeof(name)));
		c = cooldown_find(e, key);
		if (c != NULL && c->until_mono > now) {
			snprintf(detail, dn, "%s on %s/%s already done by action %"
			    PRId64 " within the cooldown (%lld s left)",
			    coord_action_name(plans[i].type), plans[i].service,
			    plans[i].instance[0] ? plans[i].instance : "*",
			    c->action_id, (long long)((c->until_mono - now) / 1000));
			return true;
		}
	}
	return false;
}

static void verify_resolved(struct coord_engine *e, struct incident *inc);
static void notify_report(struct coord_engine *e, int64_t row,
    const char *headline, const char *text);
static int64_t row_insert(struct coord_engine *e, int64_t alert_id,
    struct incident *inc, const char *rule, const char *type,
    const char *service, const char *instance, const char *node,
    const char *state, const char *detail);
static bool run_begin(struct coord_engine *e, struct incident *inc,
    struct coord_alert *a, int64_t alert_id, int64_t received_mono,
    struct coord_plan *plans, size_t n_plans, size_t esc_next);

// A GitOps-managed target reflex restarted: new alerts about it during
// the quiet window come from the reconcile rollout, not a new fault.
static bool
gitops_quiet(struct coord_engine *e, const struct coord_plan *p, char *detail,
    size_t n)
{
	char key[CM_NAME_MAX * 2];
	struct cooldown *c;

	if (p->type != COORD_ACT_RESTART)
		return false; // other actions are judged (and refused) as such
	if (e->n_cooldowns == 0)
		return false; // nothing to find: no key to build
	gitops_key(key, sizeof(key), p->service);
	c = cooldown_find(e, key);
	if (c == NULL || c->until_mono <= cm_mono_ms())
		return false;
	snprintf(detail, n, "GitOps-managed %s was restarted by action %"
	    PRId64 "; its reconcile rollout is expected (%lld s left): not a "
	    "new incident", p->service, c->action_id,
	    (long long)((c->until_mono - cm_mono_ms()) / 1000));
	return true;
}

static void
handle_resolved(struct coord_engine *e, struct ev *ev)
{
	struct incident *inc = incident_find(e, ev->identity);
	char detail[256];

	if (inc != NULL && inc->open) {
		inc->open = false;
		inc->closed_mono = cm_mono_ms();
		coord_safety_alerting(e->safety, inc->service, inc->identity,
		    false, inc->attempts > 0, cm_now_ms());
		snprintf(detail, sizeof(detail), "closed the incident after %d "
		    "attempt(s); last action %" PRId64, inc->attempts,
		    inc->last_action_id);
		verify_resolved(e, inc);
	} else {
		snprintf(detail, sizeof(detail), "no open incident");
	}
	decide(e, ev->alert_id, COORD_DEC_RESOLVED, detail);
}

static void
safety_req(struct coord_engine *e, const struct coord_plan *p,
    uint64_t identity, struct coord_safety_req *ret)
{
	*ret = (struct coord_safety_req){
		.type = p->type,
		.service = p->service,
		.identity = identity,
		.force = p->rule->conf->force,
		.service_instances = coord_agents_count_instances(e->d.agents,
		    p->service),
	};
	// Counted by the agent's name for it, as the actions that ran are.
	ret->instance = resolved_instance(e, p, ret->name_buf,
	    sizeof(ret->name_buf));
}

static void
escalate(struct coord_engine *e, struct incident *inc, struct ev *ev,
    const char *why)
{
	if (inc->escalated) {
		decide(e, ev->alert_id, COORD_DEC_DUPLICATE, "already escalated");
		return;
	}
	inc->escalated = true;
	cm_warn("engine.escalate", "alert_id=%" PRId64 " alertname=%s detail=%s",
	    ev->alert_id, cm_q(alertname(ev->alert)), cm_q(why));
	decide(e, ev->alert_id, COORD_DEC_ESCALATED, why);
}

// Keeps an alert for a later look (dependency policy "wait"). Takes ev.
static void defer(struct coord_engine *e, struct ev *ev, int64_t now);

// An alert taken up at a start finds no agent for its target: the agents
// may not have registered again yet (they do at their next heartbeat).
// It waits for them, up to AGENTS_WAIT_MS after the start; true when it
// was deferred for that. New webhooks never wait: "no-agent" at once.
static bool
await_agents(struct coord_engine *e, struct ev *ev, int64_t now)
{
	if (!ev->taken_up || now >= e->started_mono + AGENTS_WAIT_MS)
		return false;
	defer(e, ev, now);
	ev->retry_at_mono = now + AGENTS_RETRY_MS;
	return true;
}

static void
defer(struct coord_engine *e, struct ev *ev, int64_t now)
{
	if (ev->defer_until_mono == 0)
		ev->defer_until_mono = now + DEFER_MAX_MS;
	ev->retry_at_mono = now + DEFER_RETRY_MS;
	ev->next = e->deferred;
	e->deferred = ev;
}

// Shadow mode: the plan is recorded exactly as it would run, nothing
// is executed.
static void
record_shadow(struct coord_engine *e, struct incident *inc, struct ev *ev,
    struct coord_plan *plans, size_t n_plans, const char *why)
{
	char detail[512], row[320];

	snprintf(row, sizeof(row), "shadow (%s): would run, did not", why);

	for (size_t i = 0; i < n_plans; i++) {
		struct coord_action_rec rec = {
			.alert_id = ev->alert_id,
			.identity = inc->identity,
			.incident_start_ms = inc->start_ms,
			.rule = plans[i].rule->conf->name,
			.type = coord_action_name(plans[i].type),
			.service = plans[i].service,
			.instance = plans[i].instance,
			.state = "shadow",
			.detail = row,
			.attempt = 1,
			.created_ms = cm_now_ms(),
		};

		(void)j_insert(e, &rec);
	}
	inc->attempts++;
	inc->last_action_mono = cm_mono_ms();
	snprintf(detail, sizeof(detail), "shadow (%s): would %s %s/%s (rule %s)",
	    why, coord_action_name(plans[0].type), plans[0].service,
	    plans[0].instance[0] ? plans[0].instance : "*",
	    plans[0].rule->conf->name);
	decide_as(e, ev->alert_id, COORD_DEC_ACTED, "shadow", detail);
	coord_plans_free(plans, n_plans);
}

// The checks for an alert that wants to act. Returns true (and records
// the decision, or defers the event) when the action must not start.
// May take `ev` (deferred): then sets *taken.
static bool
refused(struct coord_engine *e, struct incident *inc, struct ev *ev,
    const struct coord_plan *p, bool *taken)
{
	struct coord_safety_req sr;
	struct coord_verdict v;
	char outcome[64], detail[COORD_REASON_MAX + 64];
	int64_t now = cm_mono_ms();

	safety_req(e, p, ev->identity, &sr);
	coord_safety_check(e->safety, &sr, cm_now_ms(), &v);
	if (v.allow)
		return false;
	coord_metrics_safety_block(v.check);
	cm_notice("engine.refused", "alert_id=%" PRId64 " check=%s reason=%s",
	    ev->alert_id, v.check, cm_q(v.reason));
	if (strcmp(v.check, "flapping") == 0 && inc != NULL) {
		escalate(e, inc, ev, v.reason);
		return true;
	}
	if (v.wait && (ev->defer_until_mono == 0 ||
	    now < ev->defer_until_mono)) {
		defer(e, ev, now);
		*taken = true;
		return true;
	}
	snprintf(outcome, sizeof(outcome), "refused:%s", v.check);
	snprintf(detail, sizeof(detail), "%s", v.reason);
	decide_as(e, ev->alert_id, COORD_DEC_REFUSED, outcome, detail);
	return true;
}

static void
approval_free(struct approval *a)
{
	coord_plans_free(a->plans, a->n_plans);
	coord_alert_free(a->alert);
	free(a);
}

// Holds the plans for an operator. Takes plans and ev->alert.
static void
hold_for_approval(struct coord_engine *e, struct incident *inc, struct ev *ev,
    struct coord_plan *plans, size_t n_plans, const char *why)
{
	struct approval *a = calloc(1, sizeof(*a));
	struct coord_alert *alert = a != NULL ? ev_take_alert(ev) : NULL;
	char detail[512];

	if (alert == NULL) {
		free(a);
		coord_plans_free(plans, n_plans);
		decide(e, ev->alert_id, COORD_DEC_REFUSED, "out of memory");
		return;
	}
	snprintf(detail, sizeof(detail), "waiting for an operator (%s); "
	    "expires in %lld s", why,
	    (long long)(e->d.conf->approval_timeout_ms / 1000));
	a->id = row_insert(e, ev->alert_id, inc, plans[0].rule->conf->name,
	    coord_action_name(plans[0].type), plans[0].service,
	    plans[0].instance, NULL, "awaiting-approval", detail);
	a->inc = inc;
	a->alert = alert;
	a->alert_id = ev->alert_id;
	a->received_mono = ev->received_mono;
	a->plans = plans;
	a->n_plans = n_plans;
	a->expires_mono = cm_mono_ms() + e->d.conf->approval_timeout_ms;
	a->next = e->approvals;
	e->approvals = a;
	inc->holds++;
	snprintf(detail, sizeof(detail), "plan %" PRId64 " awaits approval: %s "
	    "%s/%s", a->id, coord_action_name(plans[0].type), plans[0].service,
	    plans[0].instance[0] ? plans[0].instance : "*");
	decide_as(e, ev->alert_id, COORD_DEC_ACTED, "awaiting-approval", detail);
}

// How this plan may run: the global mode, the service's override, the
// rollout, then the rule. `why` says which decided.
static int
effective_mode(struct coord_engine *e, const struct coord_plan *p, char *why,
    size_t n)
{
	const struct coord_conf *c = e->d.conf;
	int bucket;

	if (c->mode == COORD_MODE_SHADOW) {
		snprintf(why, n, "global shadow mode");
		return COORD_AUTO_SHADOW;
	}
	switch (coord_conf_automation(c, p->service)) {
	case COORD_AUTO_LIVE:
		snprintf(why, n, "service %s is live", p->service);
		return COORD_AUTO_LIVE;
	case COORD_AUTO_SHADOW:
		snprintf(why, n, "service %s is in shadow", p->service);
		return COORD_AUTO_SHADOW;
	case COORD_AUTO_APPROVAL:
		snprintf(why, n, "service %s needs approval", p->service);
		return COORD_AUTO_APPROVAL;
	case COORD_AUTO_OFF:
		snprintf(why, n, "automation is off for service %s", p->service);
		return COORD_AUTO_OFF;
	default:
		break;
	}
	bucket = coord_rollout_bucket(p->service);
	if (bucket >= e->rollout_percent) {
		snprintf(why, n, "service %s is outside the rollout (bucket %d, "
		    "rollout at %lld%%)", p->service, bucket,
		    (long long)e->rollout_percent);
		return COORD_AUTO_SHADOW;
	}
	snprintf(why, n, "rule %s", p->rule->conf->name);
	switch (p->rule->conf->mode) {
	case COORD_RULE_SHADOW:
		return COORD_AUTO_SHADOW;
	case COORD_RULE_APPROVAL:
		return COORD_AUTO_APPROVAL;
	default:
		return COORD_AUTO_LIVE;
	}
}

// Opens (or reuses) the incident and starts, shadows or holds the plans.
// Takes plans; takes ev->alert when a run starts or a plan is held.
static void
act(struct coord_engine *e, struct incident *inc, struct ev *ev,
    struct coord_plan *plans, size_t n_plans)
{
	char why[256];
	int mode = effective_mode(e, &plans[0], why, sizeof(why));

	if (mode == COORD_AUTO_OFF) {
		decide_as(e, ev->alert_id, COORD_DEC_REFUSED, "refused:disabled",
		    why);
		coord_plans_free(plans, n_plans);
		return;
	}
	if (!inc->open) {
		inc->open = true;
		inc->attempts = 0;
		inc->escalated = false;
		inc->history[0] = '\0';
		inc->start_ms = ev->alert->starts_ms;
		snprintf(inc->service, sizeof(inc->service), "%s",
		    plans[0].service);
		coord_safety_alerting(e->safety, inc->service, inc->identity,
		    true, false, cm_now_ms());
	}
	inc->touched_mono = cm_mono_ms();
	if (mode == COORD_AUTO_SHADOW) {
		record_shadow(e, inc, ev, plans, n_plans, why);
		return;
	}
	if (mode == COORD_AUTO_APPROVAL) {
		hold_for_approval(e, inc, ev, plans, n_plans, why);
		return;
	}
	// NULL when out of memory: run_begin then fails as without a run.
	start_run(e, inc, ev_take_alert(ev), ev->alert_id, ev->received_mono,
	    plans, n_plans);
}

static void
handle_approval(struct coord_engine *e, struct ev *ev, bool approve)
{
	struct approval **pp = &e->approvals, *a;
	struct coord_safety_req sr;
	struct coord_verdict v;
	char detail[COORD_REASON_MAX + 64];

	while (*pp != NULL && (*pp)->id != ev->approval_id)
		pp = &(*pp)->next;
	a = *pp;
	if (a == NULL) {
		cm_warn("engine.approval_unknown", "id=%" PRId64, ev->approval_id);
		return;
	}
	*pp = a->next;
	a->inc->holds--; // run_begin takes its own
	if (!approve) {
		snprintf(detail, sizeof(detail), "rejected by %s", ev->who);
		j_update(e, a->id, "rejected",
		    detail, cm_now_ms());
		cm_notice("engine.rejected", "id=%" PRId64 " who=%s", a->id,
		    cm_q(ev->who));
		approval_free(a);
		return;
	}
	// Time has passed since the plan was made: check again.
	safety_req(e, &a->plans[0], a->inc->identity, &sr);
	coord_safety_check(e->safety, &sr, cm_now_ms(), &v);
	if (!v.allow) {
		coord_metrics_safety_block(v.check);
		snprintf(detail, sizeof(detail), "approved by %s, then "
		    "refused:%s: %s", ev->who, v.check, v.reason);
		j_update(e, a->id, "refused",
		    detail, cm_now_ms());
		approval_free(a);
		return;
	}
	snprintf(detail, sizeof(detail), "approved by %s", ev->who);
	j_update(e, a->id, "approved",
	    detail, cm_now_ms());
	cm_notice("engine.approved", "id=%" PRId64 " who=%s", a->id,
	    cm_q(ev->who));
	(void)run_begin(e, a->inc, a->alert, a->alert_id, a->received_mono,
	    a->plans, a->n_plans, 0);
	free(a); // alert and plans went to the run
}

static void
expire_approvals(struct coord_engine *e, int64_t now)
{
	struct approval **pp = &e->approvals;

	while (*pp != NULL) {
		struct approval *a = *pp;

		if (a->expires_mono > now) {
			pp = &a->next;
			continue;
		}
		*pp = a->next;
		a->inc->holds--;
		j_update(e, a->id, "expired",
		    "no operator decision within the approval timeout",
		    cm_now_ms());
		cm_notice("engine.approval_expired", "id=%" PRId64, a->id);
		approval_free(a);
	}
}

// Ramps the rollout one step per interval while the success rate holds;
// steps back while it does not. The stage is kept in the journal.
static void
rollout_tick(struct coord_engine *e, int64_t now)
{
	const struct coord_rollout_conf *rc = &e->d.conf->rollout;
	struct coord_breaker_state b;
	int64_t next = e->rollout_percent;
	char buf[64];

	if (rc->step == 0 || now - e->rollout_changed_mono < rc->interval_ms)
		return;
	coord_safety_breaker(e->safety, cm_now_ms(), &b);
	if (b.window_actions > 0 &&
	    b.window_ok * 100 < rc->min_success_percent * b.window_actions)
		next = e->rollout_percent - rc->step < rc->percent ?
		    rc->percent : e->rollout_percent - rc->step;
	else if (!b.open)
		next = e->rollout_percent + rc->step > rc->max ? rc->max :
		    e->rollout_percent + rc->step;
	e->rollout_changed_mono = now;
	if (next == e->rollout_percent)
		return;
	cm_notice("engine.rollout", "from=%lld to=%lld success=%lld/%lld",
	    (long long)e->rollout_percent, (long long)next,
	    (long long)b.window_ok, (long long)b.window_actions);
	e->rollout_percent = next;
	snprintf(buf, sizeof(buf), "%lld %lld", (long long)next,
	    (long long)cm_now_ms());
	(void)coord_journal_meta_set(e->d.journal, "rollout", buf);
}

// Decides one firing or resolved alert. Returns true if it kept `ev`.
static bool
handle_alert(struct coord_engine *e, struct ev *ev)
{
	struct incident *inc = incident_find(e, ev->identity);
	struct coord_plan *plans = NULL;
	struct coord_planmemo_slot *lease = NULL;
	size_t n_plans = 0;
	int64_t now = cm_mono_ms();
	bool taken = false;
	char detail[512];
	int rv;

	if (ev->defer_until_mono == 0)
		coord_metrics_alert(ev->alert->firing);
	if (!ev->alert->firing) {
		handle_resolved(e, ev);
		return false;
	}
	if (inc != NULL && inc->open) {
		inc->touched_mono = now;
		if (inc->holds > 0) {
			snprintf(detail, sizeof(detail), "incident in progress "
			    "(action %" PRId64 ")", inc->last_action_id);
			decide(e, ev->alert_id, COORD_DEC_DUPLICATE, detail);
			return false;
		}
	}

	if (ev->planned) { // by count_demand, this turn
		rv = ev->plan_rv;
		plans = ev->plans;
		n_plans = ev->n_plans;
		lease = ev->lease;
		if (rv < 0) // the only use of the reason
			snprintf(detail, sizeof(detail), "%s", ev->detail);
		ev->planned = false;
		ev->plans = NULL;
		ev->n_plans = 0;
		ev->lease = NULL;
	} else {
		rv = plan_for(e, ev->alert, ev->identity, &plans, &n_plans,
		    &lease, detail, sizeof(detail));
	}
	if (rv < 0) {
		decide(e, ev->alert_id, COORD_DEC_TEMPLATE_ERROR, detail);
		return false;
	}
	if (n_plans == 0) {
		decide(e, ev->alert_id, COORD_DEC_NO_RULE, "no rule matched");
		return false;
	}

	if (inc != NULL && inc->open) {
		const struct coord_rule_conf *rc = plans[0].rule->conf;

		if (now - inc->last_action_mono < rc->cooldown_ms) {
			snprintf(detail, sizeof(detail), "repeat of an incident "
			    "handled by action %" PRId64 " (cooldown %lld s left)",
			    inc->last_action_id, (long long)((rc->cooldown_ms -
			    (now - inc->last_action_mono)) / 1000));
			decide(e, ev->alert_id, COORD_DEC_DUPLICATE, detail);
		} else if (inc->attempts >= rc->max_attempts) {
			snprintf(detail, sizeof(detail), "still firing after %d "
			    "attempt(s) (last action %" PRId64 "): needs a person",
			    inc->attempts, inc->last_action_id);
			escalate(e, inc, ev, detail);
		} else if (!first_step_hosted(e, &plans[0], detail,
		    sizeof(detail))) {
			if (await_agents(e, ev, now))
				taken = true;
			else
				decide(e, ev->alert_id, COORD_DEC_NO_AGENT,
				    detail);
		} else if (!refused(e, inc, ev, &plans[0], &taken)) {
			if (!plans_own(&plans, n_plans, &lease)) {
				decide(e, ev->alert_id, COORD_DEC_REFUSED,
				    "out of memory");
				return false;
			}
			act(e, inc, ev, plans, n_plans);
			return false;
		}
		plans_drop(plans, n_plans, lease);
		return taken;
	}

	if (gitops_quiet(e, &plans[0], detail, sizeof(detail))) {
		decide(e, ev->alert_id, COORD_DEC_COOLDOWN, detail);
	} else if (in_cooldown(e, plans, n_plans, detail, sizeof(detail))) {
		decide(e, ev->alert_id, COORD_DEC_COOLDOWN, detail);
	} else if (!first_step_hosted(e, &plans[0], detail, sizeof(detail))) {
		if (await_agents(e, ev, now))
			taken = true;
		else
			decide(e, ev->alert_id, COORD_DEC_NO_AGENT, detail);
	} else if (!refused(e, inc, ev, &plans[0], &taken)) {
		inc = incident_get(e, ev->identity);
		if (inc == NULL || !plans_own(&plans, n_plans, &lease)) {
			decide(e, ev->alert_id, COORD_DEC_REFUSED, "out of memory");
			plans_drop(plans, n_plans, lease);
			return false;
		}
		act(e, inc, ev, plans, n_plans);
		return false;
	}
	plans_drop(plans, n_plans, lease);
	return taken;
}

// The breaker just opened while counting `batch`: one report, to the
// journal and to people, listing the targets whose alerts are held back.
static void
storm_report(struct coord_engine *e, struct ev *batch, const char *reason)
{
	char list[CM_TEXT_MAX], detail[CM_TEXT_MAX + COORD_REASON_MAX];
	size_t o = 0, n = 0, shown = 0;
	struct coord_action_rec rec = { 0 };

	list[0] = '\0';
	for (struct ev *ev = batch; ev != NULL; ev = ev->next) {
		const char *inst, *svc;

		if (ev->kind != EV_ALERT || !ev->alert->firing)
			continue;
		n++;
		svc = coord_kvs_get(&ev->alert->labels, "namespace");
		if (svc == NULL)
			svc = coord_kvs_get(&ev->alert->labels, "service");
		inst = coord_kvs_get(&ev->alert->labels, "pod");
		if (inst == NULL)
			inst = coord_kvs_get(&ev->alert->labels, "instance");
		if (o + 80 < sizeof(list)) {
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s/%s",
			    shown ? ", " : "", svc ? svc : "-", inst ? inst : "-");
			shown++;
		}
	}
	snprintf(detail, sizeof(detail), "%s; %zu alert(s) held back in this "
	    "batch: %s%s", reason, n, list, shown < n ? ", ..." : "");
	rec.rule = "";
	rec.type = "breaker";
	rec.service = "";
	rec.instance = "";
	rec.state = "open";
	rec.detail = detail;
	rec.attempt = 1;
	rec.created_ms = cm_now_ms();
	(void)j_insert(e, &rec);
	cm_warn("engine.storm", "detail=%s", cm_q(detail));
	notify_report(e, rec.id, "circuit breaker open: automation paused",
	    detail);
}

// Counts the firing alerts of a batch that a rule wants to act on, before
// any of them is decided, so that a storm opens the breaker first (C07).
static void
count_demand(struct coord_engine *e, struct ev *batch)
{
	struct coord_breaker_state before, after;
	int64_t fleet = -1;

	size_t seen = 0;

	coord_safety_breaker(e->safety, cm_now_ms(), &before);
	for (struct ev *ev = batch; ev != NULL; ev = ev->next) {
		if (++seen % CHUNK_EVENTS == 0 && stopping_now(e))
			return; // nothing of the batch is decided then
		if (ev->kind != EV_ALERT || !ev->alert->firing ||
		    ev->defer_until_mono != 0)
			continue;
		// Kept in ev for handle_alert, later in this turn (or in the
		// next, should this one stop early).
		if (!ev->planned) {
			ev->planned = true;
			ev->plan_rv = plan_for(e, ev->alert, ev->identity,
			    &ev->plans, &ev->n_plans, &ev->lease, ev->detail,
			    sizeof(ev->detail));
		}
		// Counted only when a rule wants it and its target exists:
		// alerts about things reflex does not run are no storm of ours.
		if (ev->plan_rv < 0 || ev->n_plans == 0 ||
		    !first_step_hosted(e, &ev->plans[0], NULL, 0))
			continue;
		if (fleet < 0)
			fleet = coord_agents_count_instances(e->d.agents, NULL);
		coord_safety_demand(e->safety, ev->identity, fleet, cm_now_ms());
	}
	coord_safety_breaker(e->safety, cm_now_ms(), &after);
	if (after.open && !before.open)
		storm_report(e, batch, after.reason);
}

// ---- verification, escalation, notification ------------------------------

static void
verify_free(struct verify *v)
{
	coord_plans_free(v->kplan, v->kplan_n);
	coord_alert_free(v->alert);
	free(v->promql);
	free(v->check_ev); // NULL unless a check never left
	free(v);
}

static struct verify *
verify_of(struct cm_heap_node *nd)
{
	return (struct verify *)(void *)((char *)nd -
	    offsetof(struct verify, due));
}

static int64_t
row_insert(struct coord_engine *e, int64_t alert_id, struct incident *inc,
    const char *rule, const char *type, const char *service,
    const char *instance, const char *node, const char *state,
    const char *detail)
{
	struct coord_action_rec rec = {
		.alert_id = alert_id,
		.identity = inc->identity,
		.incident_start_ms = inc->start_ms,
		.rule = rule,
		.type = type,
		.service = service,
		.instance = instance,
		.node = node,
		.state = state,
		.detail = detail,
		.attempt = 1,
		.created_ms = cm_now_ms(),
	};

	return j_insert(e, &rec);
}

struct notify_job {
	struct notify_job *next; // in its ebatch's notes
	struct coord_engine *e;
	const struct coord_notifier_conf *n;
	char *body;
	int64_t row_id;
	struct run_target *target; // set when the notification is a rule's
				   // action step
	size_t left;	 // run: notifiers in this job list (last one reports)
	bool *all_ok;	 // run: shared result
};

static void
notify_job_run(void *arg)
{
	struct notify_job *j = arg;
	char err[256] = "";
	int rv;

	rv = coord_notify_send(j->n, j->body, err, sizeof(err));
	coord_metrics_notification(rv == 0);
	if (rv < 0)
		cm_warn("engine.notify_failed", "notifier=%s reason=%s",
		    cm_q(j->n->name), cm_q(err));
	else
		cm_info("engine.notified", "notifier=%s", cm_q(j->n->name));
	if (j->row_id > 0)
		(void)coord_journal_action_update(j->e->d.journal, j->row_id,
		    rv == 0 ? "succeeded" : "failed",
		    rv == 0 ? "sent" : err, cm_now_ms());
	free(j->body);
	free(j);
}

// A note to people goes to a worker (engine thread); when it cannot, its
// row (if any) says so.
static void
note_launch(struct coord_engine *e, struct notify_job *j)
{
	if (j->body != NULL &&
	    coord_worker_submit(e->worker, notify_job_run, j) == 0)
		return;
	if (j->row_id > 0)
		j_update(e, j->row_id, "failed",
		    "could not queue the notification", cm_now_ms());
	coord_metrics_notification(0);
	free(j->body);
	free(j);
}

static void
notes_launch(struct coord_engine *e, struct notify_job *list)
{
	while (list != NULL) {
		struct notify_job *j = list;

		list = j->next;
		j->next = NULL;
		note_launch(e, j);
	}
}

static void
notes_free(struct notify_job *list)
{
	while (list != NULL) {
		struct notify_job *j = list;

		list = j->next;
		free(j->body);
		free(j);
	}
}

// A note leaves like a command: once the current batch, which holds its
// row, is durable. That batch also comes after the sync of the alerts
// the engine decided before it (coord_engine_push_early), which may be
// the ones this note is about: no note about alerts or a row that a
// failed sync loses ever leaves. (Its job's own update of the row comes
// after it.) Without a batch (out of memory) its row was written on its
// own, waiting for the sync: it leaves at once.
static void
note_queue(struct coord_engine *e, struct notify_job *j)
{
	struct ebatch *eb = j->body != NULL ? cur_batch(e) : NULL;

	if (eb == NULL) {
		note_launch(e, j);
		return;
	}
	*eb->notes_tail = j;
	eb->notes_tail = &j->next;
}

// Tells every configured notifier, one journal row each.
static void
notify_people(struct coord_engine *e, struct incident *inc,
    const struct coord_alert *a, int64_t alert_id, const char *rule,
    const char *headline, const char *tried, const char *outcome)
{
	const struct cm_list *ns = &e->d.conf->notify;

	for (size_t i = 0; i < ns->n; i++) {
		const struct coord_notifier_conf *n =
		    (const struct coord_notifier_conf *)ns->v + i;
		struct notify_job *j = calloc(1, sizeof(*j));

		if (j == NULL)
			continue;
		j->e = e;
		j->n = n;
		j->body = coord_notify_body(n->format, a, headline, tried, outcome);
		j->row_id = row_insert(e, alert_id, inc, rule, "notify", n->name,
		    "", NULL, "dispatched", headline);
		note_queue(e, j);
	}
}

// A fleet-wide report (no single alert) to every notifier.
static void
notify_report(struct coord_engine *e, int64_t row, const char *headline,
    const char *text)
{
	const struct cm_list *ns = &e->d.conf->notify;

	(void)row;
	for (size_t i = 0; i < ns->n; i++) {
		const struct coord_notifier_conf *n =
		    (const struct coord_notifier_conf *)ns->v + i;
		struct notify_job *j = calloc(1, sizeof(*j));

		if (j == NULL)
			continue;
		j->e = e;
		j->n = n;
		j->body = coord_notify_body(n->format, NULL, headline, "nothing: "
		    "automation paused before acting", text);
		note_queue(e, j);
	}
}

// The next step after a failed repair: the rule's next escalation action
// (through the safety checks again), or, when the chain is spent, the
// people. Takes `a`.
static void
escalate_next(struct coord_engine *e, struct incident *inc,
    struct coord_alert *a, const struct coord_rule *rule, int64_t alert_id,
    int64_t received_mono, size_t step, const char *tried,
    const char *outcome)
{
	struct coord_plan *plan = NULL;
	struct coord_safety_req sr;
	struct coord_verdict v;
	char err[COORD_REASON_MAX + 64];
	int rv;

	rv = coord_rule_plan_escalation(rule, a, step, &plan, err, sizeof(err));
	if (rv == 0) {
		safety_req(e, plan, inc->identity, &sr);
		coord_safety_check(e->safety, &sr, cm_now_ms(), &v);
		if (v.allow) {
			cm_notice("engine.escalation_step", "alert_id=%" PRId64
			    " step=%zu type=%s after=%s", alert_id, step,
			    coord_action_name(plan->type), cm_q(outcome));
			(void)run_begin(e, inc, a, alert_id, received_mono, plan,
			    1, step + 1);
			return;
		}
		coord_metrics_safety_block(v.check);
		snprintf(err, sizeof(err), "escalation step %zu (%s) refused:%s: "
		    "%s", step, coord_action_name(plan->type), v.check, v.reason);
		row_insert(e, alert_id, inc, rule->conf->name,
		    coord_action_name(plan->type), plan->service, plan->instance,
		    NULL, "refused", err);
		coord_plans_free(plan, 1);
	} else if (rv != -ENOENT) {
		snprintf(err + strlen(err), sizeof(err) - strlen(err),
		    " (escalation step %zu)", step);
	} else if (inc->attempts < rule->conf->max_attempts) {
		// No chain (left): the incident gets its next attempt when the
		// alert is still firing after the cooldown.
		cm_notice("engine.repair_failed", "alert_id=%" PRId64 " attempt=%d "
		    "of=%lld outcome=%s next=retry_after_cooldown", alert_id,
		    inc->attempts, (long long)rule->conf->max_attempts,
		    cm_q(outcome));
		coord_alert_free(a);
		return;
	} else {
		snprintf(err, sizeof(err), "%s", step == 0 ? "attempts spent, no "
		    "escalation steps configured" :
		    "every escalation step was tried");
	}
	if (inc->escalated) {
		coord_alert_free(a);
		return;
	}
	inc->escalated = true;
	coord_metrics_decision(COORD_DEC_ESCALATED);
	cm_warn("engine.escalate", "alert_id=%" PRId64 " alertname=%s "
	    "outcome=%s detail=%s", alert_id, cm_q(alertname(a)),
	    cm_q(outcome), cm_q(err));
	row_insert(e, alert_id, inc, rule->conf->name, "escalate",
	    inc->service, "", NULL, "escalated", outcome);
	{
		// People are told what was tried and why the chain stopped
		// (a step the safety checks refused, or nothing left).
		size_t n = strlen(tried) + strlen(err) + 3;
		char *all = malloc(n);

		if (all != NULL)
			snprintf(all, n, "%s%s%s", tried, tried[0] ? "; " : "",
			    err);
		notify_people(e, inc, a, alert_id, rule->conf->name,
		    "automatic repair failed; a person is needed",
		    all != NULL ? all : tried, outcome);
		free(all);
	}
	coord_alert_free(a);
}

// A rule's own notify action: every notifier, then the run goes on.
static void
notify_run_job(void *arg)
{
	struct notify_job *j = arg;
	struct cm_msg_reply reply = { .ok = true };
	const struct cm_list *ns = &j->e->d.conf->notify;
	size_t sent = 0;

	for (size_t i = 0; i < ns->n; i++) {
		const struct coord_notifier_conf *n =
		    (const struct coord_notifier_conf *)ns->v + i;
		char err[256];

		free(j->body);
		j->body = coord_notify_body(n->format, j->target->run->alert,
		    "reflex notification", j->target->run->why, "in progress");
		if (j->body != NULL &&
		    coord_notify_send(n, j->body, err, sizeof(err)) == 0) {
			sent++;
			coord_metrics_notification(1);
		} else {
			coord_metrics_notification(0);
			reply.ok = false;
			snprintf(reply.message, sizeof(reply.message), "%s",
			    j->body != NULL ? err : "out of memory");
		}
	}
	if (reply.ok)
		snprintf(reply.message, sizeof(reply.message),
		    "notified %zu webhook(s)", sent);
	command_done(0, &reply, j->target);
	free(j->body);
	free(j);
}

static void
notify_step(struct run *r, const struct coord_plan *p)
{
	struct coord_engine *e = r->e;
	struct run_target *rt;
	struct ebatch *eb;

	if (targets_reset(r, 1) < 0) {
		run_finish(r, false, "out of memory: notification not sent");
		return;
	}
	rt = &r->tg[0];
	rt->attempt = 1;
	r->next_t = r->n_active = 1;
	rt->started_mono = cm_mono_ms();
	pthread_mutex_lock(&e->mu);
	e->in_flight++;
	pthread_mutex_unlock(&e->mu);
	eb = sends_reserve(e, 1);
	if (eb == NULL) {
		handle_done(e, rt, -ENOMEM, NULL);
		return;
	}
	// Sent like an agent's command: once its row committed.
	rt->action_id = row_insert(e, r->alert_id, r->inc, p->rule->conf->name,
	    "notify", p->service, p->instance, NULL, "dispatched",
	    "sending to every notifier");
	if (rt->action_id == 0) { // no row: nothing leaves (write-ahead)
		handle_done(e, rt, -EIO, NULL);
		return;
	}
	eb->sends[eb->n_sends++] = rt;
}

// The notify step's target, its row committed: every notifier, on a
// worker.
static void
notify_launch(struct run_target *rt)
{
	struct coord_engine *e = rt->run->e;
	struct notify_job *j = calloc(1, sizeof(*j));

	if (e->d.conf->notify.n == 0 || j == NULL) {
		struct cm_msg_reply reply = { .ok = false, .code = -ENOENT };

		free(j);
		snprintf(reply.message, sizeof(reply.message),
		    "no notifier is configured (notify:)");
		handle_done(e, rt, 0, &reply);
		return;
	}
	j->e = e;
	j->target = rt;
	if (coord_worker_submit(e->worker, notify_run_job, j) < 0) {
		free(j);
		handle_done(e, rt, -EAGAIN, NULL);
	}
}

// A batch committed (rv 0) or failed: the commands of its targets leave,
// or their runs fail without sending anything.
static void
handle_commit(struct coord_engine *e, struct ebatch *eb)
{
	if (eb->rv < 0)
		cm_err("engine.journal_failed", "what=batch rv=%d targets=%zu",
		    eb->rv, eb->n_sends);
	for (size_t i = 0; i < eb->n_sends; i++) {
		struct run_target *rt = eb->sends[i];
		const struct run *r = rt->run;

		if (eb->rv == 0) {
			if (r->plans[r->step].type == COORD_ACT_NOTIFY)
				notify_launch(rt);
			else
				send_target(rt);
			continue;
		}
		pthread_mutex_lock(&e->mu);
		e->in_flight--;
		pthread_mutex_unlock(&e->mu);
		target_finished(rt, false, "journal not writable: action not "
		    "sent");
	}
	// People are told even when the journal could not keep the row.
	notes_launch(e, eb->notes);
	eb->notes = NULL;
	ebatch_free(eb);
}

static void
verify_check_done(int rv, const struct cm_msg_reply *reply, void *arg)
{
	struct verify *v = arg;
	struct ev *ev = v->check_ev;

	v->check_ev = NULL;
	ev->kind = EV_VCHECK;
	ev->verify = v;
	ev->rv = rv;
	ev->has_reply = reply != NULL;
	if (reply != NULL) {
		*ev->reply = *reply;
		ev->reply->json = NULL;
	}
	enqueue(v->e, ev);
}

struct query_job {
	struct verify *v;
	char *url;
	char *expr;
	int64_t timeout_ms;
	int64_t deadline_mono; // the verification's
	struct ev *ev; // its answer, made before it is queued
};

static void
query_job_run(void *arg)
{
	struct query_job *q = arg;
	struct ev *ev = q->ev;

	ev->kind = EV_VQUERY;
	ev->verify = q->v;
	// Stopping: nobody waits for the answer any more, and a stop must
	// not wait for every queued query to time out against a Prometheus
	// that does not answer.
	if (coord_worker_stopping(q->v->e->polls)) {
		ev->verdict = COORD_PROM_ERROR;
		snprintf(ev->detail, sizeof(ev->detail), "not asked: the "
		    "coordinator is stopping");
	} else if (cm_mono_ms() >= q->deadline_mono) {
		// Queued behind others (a Prometheus slow to answer) until
		// the verification's time was up: it is decided without this
		// answer, at once, rather than a query timeout later.
		ev->verdict = COORD_PROM_ERROR;
		snprintf(ev->detail, sizeof(ev->detail), "not asked: its turn "
		    "came after the verification's timeout");
	} else {
		ev->verdict = coord_prom_check(q->url, q->expr, q->timeout_ms,
		    ev->detail, sizeof(ev->detail));
	}
	enqueue(q->v->e, ev);
	free(q->url);
	free(q->expr);
	free(q);
}

// Moves v (in e->verifies) to its next time: its next poll or its
// deadline, whichever comes first.
static void
verify_reschedule(struct coord_engine *e, struct verify *v)
{
	cm_heap_update(&e->verifies, &v->due, v->next_poll_mono <
	    v->deadline_mono ? v->next_poll_mono : v->deadline_mono);
}

static void
verify_poll(struct verify *v, int64_t now)
{
	struct coord_engine *e = v->e;
	const struct coord_verify_conf *vc = &v->rule->conf->verify;

	v->next_poll_mono = now + vc->interval_ms;
	verify_reschedule(e, v);
	if (v->need_health && !v->health_pending) {
		struct cm_msg_command cmd = { .action_id = (uint64_t)v->row_id };
		int64_t timeout = vc->interval_ms < 10000 ? vc->interval_ms : 10000;
		int rv;

		snprintf(cmd.action, sizeof(cmd.action), "check");
		snprintf(cmd.service, sizeof(cmd.service), "%s", v->service);
		snprintf(cmd.instance, sizeof(cmd.instance), "%s", v->instance);
		snprintf(cmd.reason, sizeof(cmd.reason), "verify action %" PRId64,
		    v->row_id);
		cmd.timeout_ms = (uint32_t)timeout;
		v->check_ev = ev_new(true);
		if (v->check_ev == NULL)
			rv = -ENOMEM; // tried again at the next poll
		else if (v->kplan != NULL)
			rv = coord_kexec_verify(e->kexec, &v->kplan[v->kplan_last],
			    v->deadline_mono, verify_check_done, v);
		else
			rv = coord_agents_command(e->d.agents, v->node, &cmd,
			    timeout, verify_check_done, v);
		if (rv == 0) {
			v->health_pending = true;
		} else {
			free(v->check_ev); // done is not called
			v->check_ev = NULL;
			v->health = -1;
			snprintf(v->health_detail, sizeof(v->health_detail),
			    "agent %s unreachable: %s", v->node, strerror(-rv));
		}
	}
	if (v->promql != NULL && !v->promql_pending) {
		struct query_job *q = calloc(1, sizeof(*q));

		if (q != NULL) {
			q->v = v;
			q->url = strdup(e->d.conf->prometheus_url);
			q->expr = strdup(v->promql);
			q->timeout_ms = e->d.conf->prometheus_timeout_ms;
			q->deadline_mono = v->deadline_mono;
			q->ev = calloc(1, sizeof(*q->ev));
		}
		if (q != NULL && q->url != NULL && q->expr != NULL &&
		    q->ev != NULL &&
		    coord_worker_submit(e->polls, query_job_run, q) == 0) {
			v->promql_pending = true;
		} else if (q != NULL) { // tried again at the next poll
			free(q->url);
			free(q->expr);
			free(q->ev);
			free(q);
		}
	}
}

static const char *
tri(int state)
{
	return state > 0 ? "ok" : state == 0 ? "failing" : "unknown";
}

static void
verify_finish(struct verify *v, enum coord_verified outcome, const char *why)
{
	static const char *const states[] = { "verified", "failed", "timeout" };
	struct coord_engine *e = v->e;
	double secs = (double)(cm_mono_ms() - v->received_mono) / 1000.0;

	j_update(e, v->row_id,
	    states[outcome], why, cm_now_ms());
	coord_metrics_verification(outcome, secs);
	cm_log(outcome == COORD_VER_VERIFIED ? CM_LOG_INFO : CM_LOG_WARN,
	    "engine.verification", "alert_id=%" PRId64 " result=%s detail=%s",
	    v->alert_id, states[outcome], cm_q(why));
	cm_heap_remove(&e->verifies, &v->due);
	v->inc->holds--;
	history_add(v->inc, "%s: verification %s (%s)", v->tried,
	    states[outcome], why);
	if (outcome != COORD_VER_VERIFIED) {
		escalate_next(e, v->inc, v->alert, v->rule, v->alert_id,
		    v->received_mono, v->esc_next, v->inc->history, why);
		v->alert = NULL;
	}
	verify_free(v);
}

// Decides a verification once its conditions are all known to hold, or
// its time is up (never while a check is still out: its answer is owed).
static void
verify_evaluate(struct verify *v, int64_t now)
{
	const struct coord_verify_conf *vc = &v->rule->conf->verify;
	bool health_ok = !v->need_health || v->health > 0;
	bool prom_ok = v->promql == NULL || v->promql_state > 0;
	bool resolved_ok = !vc->resolved || !v->inc->open;
	char why[CM_TEXT_MAX];

	// A check or query still out holds a pointer to v in its callback:
	// decide when its answer (or its timeout) came back, never before.
	if (v->health_pending || v->promql_pending)
		return;

	snprintf(why, sizeof(why), "health %s%s%s%s; promql %s%s%s%s; "
	    "resolved %s", v->need_health ? tri(v->health) : "not checked",
	    v->health_detail[0] ? " (" : "", v->health_detail,
	    v->health_detail[0] ? ")" : "",
	    v->promql ? tri(v->promql_state) : "not configured",
	    v->promql_detail[0] ? " (" : "", v->promql_detail,
	    v->promql_detail[0] ? ")" : "",
	    !vc->resolved ? "not required" : v->inc->open ? "not yet" : "yes");
	if (health_ok && prom_ok && resolved_ok) {
		char done[CM_TEXT_MAX + 64];

		snprintf(done, sizeof(done), "recovered %.1f s after the alert: %s",
		    (double)(now - v->received_mono) / 1000.0, why);
		verify_finish(v, COORD_VER_VERIFIED, done);
		return;
	}
	if (now < v->deadline_mono)
		return;
	verify_finish(v, (v->need_health && v->health == 0) ||
	    (v->promql != NULL && v->promql_state == 0) ? COORD_VER_FAILED :
	    COORD_VER_TIMEOUT, why);
}

static void
verify_start(struct run *r)
{
	struct coord_engine *e = r->e;
	const struct coord_rule *rule = r->plans[0].rule;
	const struct coord_verify_conf *vc = &rule->conf->verify;
	const struct coord_plan *last = &r->plans[r->n_plans - 1];
	struct verify *v = calloc(1, sizeof(*v));
	char err[256], detail[256];
	int64_t now = cm_mono_ms();

	if (v == NULL) {
		r->inc->holds--;
		return;
	}
	v->e = e;
	// In the heap from here (its time set below), so that nothing after
	// the row can fail for want of memory.
	if (cm_heap_push(&e->verifies, &v->due, INT64_MAX) < 0) {
		free(v);
		r->inc->holds--;
		return;
	}
	v->inc = r->inc;
	v->rule = rule;
	v->alert_id = r->alert_id;
	v->received_mono = r->received_mono;
	v->esc_next = r->esc_next;
	v->health = v->promql_state = -1;
	snprintf(v->tried, sizeof(v->tried), "%s", r->why);
	v->need_health = vc->health && dispatchable_in(e, last->type) &&
	    r->n_targets > 0 && last->type != COORD_ACT_RUN_JOB &&
	    last->type != COORD_ACT_ADJUST_CONFIG &&
	    last->type != COORD_ACT_SWITCH_TRAFFIC;
	if (v->need_health && r->k8s) {
		// The workload's rollout and Ready pods, from the API server.
		v->kplan = r->plans;
		r->plans = NULL;
		v->kplan_n = r->n_plans;
		v->kplan_last = r->n_plans - 1;
		r->n_plans = 0;
	}
	if (v->need_health) {
		const struct coord_target *t = &r->tg[r->n_targets - 1].t;

		snprintf(v->node, sizeof(v->node), "%s", t->node);
		snprintf(v->service, sizeof(v->service), "%s", t->service);
		snprintf(v->instance, sizeof(v->instance), "%s", t->instance);
	}
	if (coord_rule_render_promql(rule, r->alert, &v->promql, err,
	    sizeof(err)) < 0) {
		v->promql_state = 0;
		snprintf(v->promql_detail, sizeof(v->promql_detail), "%s", err);
	} else if (v->promql != NULL && e->d.conf->prometheus_url[0] == '\0') {
		cm_warn("engine.verify_promql_skipped", "rule=%s reason=%s",
		    cm_q(rule->conf->name), cm_q("no prometheus_url configured"));
		free(v->promql);
		v->promql = NULL;
	}
	if (!v->need_health && v->promql == NULL && !vc->resolved &&
	    v->promql_state != 0) {
		r->inc->holds--;
		cm_heap_remove(&e->verifies, &v->due);
		verify_free(v);
		return;
	}
	v->alert = r->alert;
	r->alert = NULL;
	snprintf(detail, sizeof(detail), "waiting for:%s%s%s",
	    v->need_health ? " health" : "", v->promql ? " promql" : "",
	    vc->resolved ? " resolved" : "");
	v->row_id = row_insert(e, v->alert_id, v->inc, rule->conf->name,
	    "verify", last->service, v->need_health ? v->instance :
	    last->instance, v->need_health ? v->node : NULL, "verifying",
	    detail);
	v->started_mono = now;
	v->deadline_mono = now + vc->timeout_ms;
	v->next_poll_mono = now + (vc->interval_ms < 1000 ? vc->interval_ms :
	    1000);
	verify_reschedule(e, v);
}

static void
handle_vcheck(struct coord_engine *e, struct ev *ev)
{
	struct verify *v = ev->verify;

	(void)e;
	v->health_pending = false;
	if (ev->rv < 0)
		v->health = -1;
	else
		v->health = ev->has_reply && ev->reply->ok ? 1 : 0;
	snprintf(v->health_detail, sizeof(v->health_detail), "%s",
	    ev->has_reply ? ev->reply->message : strerror(-ev->rv));
	verify_evaluate(v, cm_mono_ms());
}

static void
handle_vquery(struct coord_engine *e, struct ev *ev)
{
	struct verify *v = ev->verify;

	(void)e;
	v->promql_pending = false;
	v->promql_state = ev->verdict == COORD_PROM_NORMAL ? 1 :
	    ev->verdict == COORD_PROM_FIRING ? 0 : -1;
	snprintf(v->promql_detail, sizeof(v->promql_detail), "%s", ev->detail);
	verify_evaluate(v, cm_mono_ms());
}

// The alert of `inc` resolved: a verification waiting for it may end.
static void
verify_resolved(struct coord_engine *e, struct incident *inc)
{
	for (size_t i = 0; i < e->verifies.n; i++) {
		struct verify *v = verify_of(e->verifies.v[i]);

		if (v->inc == inc) {
			verify_evaluate(v, cm_mono_ms());
			return; // evaluate may free v
		}
	}
}

// ---- loop ----------------------------------------------------------------

static int64_t
next_deadline(struct coord_engine *e, int64_t now)
{
	int64_t d = now + 1000; // agent liveness tick

	for (struct run *r = e->runs; r != NULL; r = r->next) {
		// Targets before lo are done, from next_t on not started.
		for (size_t i = r->lo; i < r->next_t; i++) {
			const struct run_target *rt = &r->tg[i];

			if (rt->retry_at_mono > 0 && rt->retry_at_mono < d)
				d = rt->retry_at_mono;
			if (rt->waiting && !rt->timed_out &&
			    rt->deadline_mono < d)
				d = rt->deadline_mono;
		}
	}
	for (struct revert *rv = e->reverts; rv != NULL; rv = rv->next)
		if (rv->at_mono < d)
			d = rv->at_mono;
	if (cm_heap_top(&e->verifies) != NULL &&
	    cm_heap_top(&e->verifies)->key < d)
		d = cm_heap_top(&e->verifies)->key;
	return d;
}

// The current try passed its timeout: recorded as such now, and the run
// starts no more targets; the command stays out for a late answer, which
// is recorded when it comes.
static void
target_timeout(struct coord_engine *e, struct run_target *rt)
{
	const struct coord_plan *p = &rt->run->plans[rt->run->step];
	char d[160];

	rt->timed_out = true;
	snprintf(d, sizeof(d), "no answer within %lld s (a late answer is "
	    "still recorded)", (long long)(action_timeout_ms(p) / 1000));
	j_update(e, rt->action_id,
	    "timeout", d, cm_now_ms());
	coord_metrics_action(p->type, COORD_OUT_TIMEOUT);
	coord_safety_finished(e->safety, p->service, false,
	    cm_mono_ms() - rt->started_mono, cm_now_ms());
	cm_warn("engine.action_timeout", "action_id=%" PRId64 " detail=%s",
	    rt->action_id, cm_q(d));
	run_fail(rt, d);
}

static void
fire_timers(struct coord_engine *e, int64_t now)
{
	// Neither a retry nor a timeout finishes a run here (run_pump does).
	for (struct run *r = e->runs; r != NULL; r = r->next) {
		for (size_t i = r->lo; i < r->next_t; i++) {
			struct run_target *rt = &r->tg[i];

			if (rt->retry_at_mono > 0 && rt->retry_at_mono <= now) {
				rt->retry_at_mono = 0;
				dispatch_retry(rt);
			} else if (rt->waiting && !rt->timed_out &&
			    rt->deadline_mono <= now) {
				target_timeout(e, rt);
			}
		}
	}
	for (struct cm_heap_node *top; (top = cm_heap_top(&e->verifies)) !=
	    NULL && top->key <= now;) {
		struct verify *v = verify_of(top);

		if (now < v->deadline_mono) {
			verify_poll(v, now); // due again an interval later
			continue;
		}
		// Past its deadline: decided now, or (a check or query still
		// out) when that answer comes; due no more until then.
		cm_heap_update(&e->verifies, &v->due, INT64_MAX);
		verify_evaluate(v, now); // may finish and free v
	}
}

// The agent's own restart goes through the checks as a restart of that
// instance, is counted against the limits, and is journaled.
static void
handle_permit(struct coord_engine *e, struct permit_wait *w)
{
	const struct cm_msg_permit *p = &w->req;
	struct coord_safety_req sr = { .type = COORD_ACT_RESTART,
		.service = p->service, .instance = p->instance };
	struct coord_action_rec rec = { 0 };
	struct coord_verdict v;
	char key[3 * CM_NAME_MAX + 8], detail[COORD_REASON_MAX + CM_TEXT_MAX];
	int64_t now = cm_now_ms();

	snprintf(key, sizeof(key), "local|%s|%s|%s", p->node, p->service,
	    p->instance);
	sr.identity = fnv1a(key);
	sr.service_instances = coord_agents_count_instances(e->d.agents,
	    p->service);
	coord_safety_check(e->safety, &sr, now, &v);
	if (v.allow) {
		coord_safety_started(e->safety, &sr, now);
		coord_safety_finished(e->safety, p->service, true, 0, now);
		snprintf(detail, sizeof(detail), "agent's own restart permitted: "
		    "%s", p->reason);
	} else {
		coord_metrics_safety_block(v.check);
		snprintf(detail, sizeof(detail), "agent's own restart refused:%s: "
		    "%s (agent said: %s)", v.check, v.reason, p->reason);
	}
	rec.rule = "local";
	rec.type = "restart";
	rec.service = p->service;
	rec.instance = p->instance;
	rec.node = p->node;
	rec.state = v.allow ? "permitted" : "refused";
	rec.detail = detail;
	rec.attempt = 1;
	rec.created_ms = now;
	rec.identity = sr.identity;
	(void)coord_journal_action_insert(e->d.journal, &rec);
	cm_log(v.allow ? CM_LOG_INFO : CM_LOG_NOTICE, "engine.permit",
	    "node=%s service=%s instance=%s allow=%d detail=%s", cm_q(p->node),
	    cm_q(p->service), cm_q(p->instance), v.allow, cm_q(detail));
	pthread_mutex_lock(&w->mu);
	w->reply.ok = v.allow;
	w->reply.code = v.allow ? 0 : -EPERM;
	snprintf(w->reply.message, sizeof(w->reply.message), "%s", detail);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void
coord_engine_permit(const struct cm_msg_permit *req, struct cm_msg_reply *reply,
    void *arg)
{
	struct coord_engine *e = arg;
	struct permit_wait *w = calloc(1, sizeof(*w));
	struct ev *ev = calloc(1, sizeof(*ev));
	pthread_condattr_t ca;
	struct timespec ts;

	reply->ok = false;
	reply->code = -ETIMEDOUT;
	snprintf(reply->message, sizeof(reply->message),
	    "the coordinator could not decide in time");
	if (w == NULL || ev == NULL) {
		free(w);
		free(ev);
		return;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	w->refs = 2; // this thread and the event
	w->req = *req;
	ev->kind = EV_PERMIT;
	ev->permit = w;
	enqueue(e, ev);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
			break;
	if (w->done)
		*reply = w->reply;
	pthread_mutex_unlock(&w->mu);
	permit_unref(w);
}

static void
handle_event(struct coord_engine *e, struct ev *ev)
{
	bool kept = false;

	switch (ev->kind) {
	case EV_ALERT:
		kept = handle_alert(e, ev);
		break;
	case EV_DONE:
		handle_done(e, ev->target, ev->rv,
		    ev->has_reply ? ev->reply : NULL);
		break;
	case EV_PAUSE:
		coord_safety_pause(e->safety, ev->who, cm_now_ms());
		break;
	case EV_RESUME:
		coord_safety_resume(e->safety, cm_now_ms());
		break;
	case EV_VCHECK:
		handle_vcheck(e, ev);
		break;
	case EV_VQUERY:
		handle_vquery(e, ev);
		break;
	case EV_APPROVE:
	case EV_REJECT:
		handle_approval(e, ev, ev->kind == EV_APPROVE);
		break;
	case EV_PERMIT:
		handle_permit(e, ev->permit);
		break;
	case EV_COMMIT:
		handle_commit(e, ev->commit);
		ev->commit = NULL;
		break;
	}
	if (!kept)
		ev_free(ev);
}

// Deferred alerts whose retry time came: looked at again, in order.
static void
retry_deferred(struct coord_engine *e, int64_t now)
{
	struct ev *due = NULL, **p = &e->deferred;

	while (*p != NULL) {
		struct ev *ev = *p;

		if (ev->retry_at_mono <= now) {
			*p = ev->next;
			ev->next = due;
			due = ev;
		} else {
			p = &ev->next;
		}
	}
	while (due != NULL) {
		struct ev *ev = due;

		due = ev->next;
		ev->next = NULL;
		handle_event(e, ev);
	}
}

// Keeps the breaker in the journal, so a restart does not quietly resume
// automation that was paused (by an operator or by the breaker).
static void
persist_breaker(struct coord_engine *e, const struct coord_breaker_state *b)
{
	char buf[COORD_REASON_MAX + 64];

	snprintf(buf, sizeof(buf), "%d %d %lld %lld %s", b->open,
	    b->paused_by_operator, (long long)b->opened_ms,
	    (long long)b->until_ms, b->reason);
	if (coord_journal_meta_set(e->d.journal, "breaker", buf) < 0)
		cm_err("engine.journal_failed", "what=breaker");
}

static void
restore_breaker(struct coord_engine *e)
{
	struct coord_breaker_state b = { 0 };
	char buf[COORD_REASON_MAX + 64];
	int open, paused, n = 0;
	long long opened, until;

	if (coord_journal_meta_get(e->d.journal, "breaker", buf,
	    sizeof(buf)) != 0)
		return;
	if (sscanf(buf, "%d %d %lld %lld %n", &open, &paused, &opened, &until,
	    &n) < 4 || !open)
		return;
	b.open = true;
	b.paused_by_operator = paused != 0;
	b.opened_ms = opened;
	b.until_ms = until;
	snprintf(b.reason, sizeof(b.reason), "%s", buf + n);
	coord_safety_restore_breaker(e->safety, &b);
	cm_notice("engine.breaker_restored", "reason=%s until_ms=%lld",
	    cm_q(b.reason), until);
}

static void
publish_breaker(struct coord_engine *e)
{
	struct coord_breaker_state b;

	coord_safety_breaker(e->safety, cm_now_ms(), &b);
	if (b.open != e->br.open || b.paused_by_operator !=
	    e->br.paused_by_operator)
		persist_breaker(e, &b);
	pthread_mutex_lock(&e->mu);
	e->br = b;
	e->rollout_pub = e->rollout_percent;
	pthread_mutex_unlock(&e->mu);
}

// Moves on every run whose targets changed since: after a batch of
// events, so the targets that follow a batch of answers start together
// (one journal commit for their rows). A run may finish (freed) or start
// another through escalation, so the list is walked again after each.
static void
pump_runs(struct coord_engine *e)
{
	struct run *r = e->runs;

	while (r != NULL) {
		if (!r->pump_due) {
			r = r->next;
			continue;
		}
		run_pump(r);
		r = e->runs;
	}
}

// Puts events back at the head of the queue, in their order (at stop:
// freed with the engine; their alerts are pending in the journal).
static void
requeue(struct coord_engine *e, struct ev *list)
{
	struct ev *last = list;

	if (list == NULL)
		return;
	pthread_mutex_lock(&e->mu);
	for (;;) {
		if (last->kind == EV_ALERT)
			e->queued++;
		if (last->next == NULL)
			break;
		last = last->next;
	}
	last->next = e->head;
	e->head = list;
	if (e->tail == NULL)
		e->tail = last;
	pthread_mutex_unlock(&e->mu);
}

// At stop: every batch submitted is waited for, and the commands whose
// rows committed are sent (as a blocking write used to send them right
// after its commit), so no committed "dispatched" row is left unsent.
// Other events stay queued. Bounded: a send that fails at once writes
// again, at most DRAIN_ROUNDS times.
static void
drain_commits(struct coord_engine *e)
{
	for (int round = 0; round < DRAIN_ROUNDS; round++) {
		struct ev *q, *keep = NULL, **kt = &keep;
		size_t handled = 0;

		engine_flush(e);
		pthread_mutex_lock(&e->mu);
		while (e->outstanding > 0)
			pthread_cond_wait(&e->cv, &e->mu);
		q = e->head;
		e->head = e->tail = NULL;
		for (struct ev *ev = q; ev != NULL; ev = ev->next)
			if (ev->kind == EV_ALERT)
				e->queued--;
		pthread_mutex_unlock(&e->mu);
		while (q != NULL) {
			struct ev *ev = q;

			q = ev->next;
			ev->next = NULL;
			if (ev->kind == EV_COMMIT) {
				handle_event(e, ev);
				handled++;
			} else {
				*kt = ev;
				kt = &ev->next;
			}
		}
		requeue(e, keep);
		if (handled == 0 && e->cur == NULL)
			return;
	}
	engine_flush(e);
}

static void *
engine_main(void *arg)
{
	struct coord_engine *e = arg;
	int64_t last_tick = 0;

	cm_thread_start("engine", CM_THREAD_BULK);
	for (;;) {
		struct ev *batch;
		int64_t now = cm_mono_ms(), deadline = next_deadline(e, now);
		struct timespec ts;

		for (struct ev *d = e->deferred; d != NULL; d = d->next)
			if (d->retry_at_mono < deadline)
				deadline = d->retry_at_mono;
		pthread_mutex_lock(&e->mu);
		while (e->head == NULL && !e->stopping && cm_mono_ms() < deadline) {
			ts = cm_mono_after_ns((deadline - cm_mono_ms()) *
			    1000000);
			pthread_cond_timedwait(&e->cv, &e->mu, &ts);
		}
		if (e->stopping) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		// Everything queued is taken at once: a batch is counted for
		// storm detection before any alert of it is decided.
		batch = e->head;
		e->head = e->tail = NULL;
		for (struct ev *ev = batch; ev != NULL; ev = ev->next)
			if (ev->kind == EV_ALERT)
				e->queued--;
		pthread_mutex_unlock(&e->mu);
		// A storm's decisions are many lines: written a few KB at a
		// time, not one write(2) each (warnings still go at once).
		cm_log_hold();

		count_demand(e, batch);
		for (size_t n = 1; batch != NULL; n++) {
			struct ev *ev = batch;

			batch = ev->next;
			ev->next = NULL;
			if (ev->hold) {
				ev->hold = false;
				e->jholds++;
			}
			handle_event(e, ev);
			// Bounded chunks: their rows go to the journal while
			// the next are decided, and a stop is seen in time.
			if (n % CHUNK_EVENTS == 0) {
				engine_flush(e);
				if (stopping_now(e)) {
					requeue(e, batch);
					batch = NULL;
				}
			}
		}
		if (stopping_now(e)) {
			cm_log_release();
			break;
		}
		pump_runs(e);

		now = cm_mono_ms();
		fire_timers(e, now);
		fire_reverts(e, now);
		retry_deferred(e, now);
		if (now - last_tick >= 1000) {
			last_tick = now;
			coord_agents_tick(e->d.agents);
			prune(e, now);
			expire_approvals(e, now);
			rollout_tick(e, now);
		}
		pump_runs(e);
		// One batch for everything this turn decided (the breaker's
		// own blocking write follows it); it keeps the turn's holds.
		engine_flush(e);
		publish_breaker(e);
		cm_log_release();
	}
	drain_commits(e);
	return NULL;
}

static int
push_control(struct coord_engine *e, enum ev_kind kind, const char *who)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return -ENOMEM;
	ev->kind = kind;
	snprintf(ev->who, sizeof(ev->who), "%s", who != NULL ? who : "operator");
	enqueue(e, ev);
	return 0;
}

int
coord_engine_approval(struct coord_engine *e, int64_t id, bool approve,
    const char *who)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return -ENOMEM;
	ev->kind = approve ? EV_APPROVE : EV_REJECT;
	ev->approval_id = id;
	snprintf(ev->who, sizeof(ev->who), "%s", who != NULL ? who : "operator");
	enqueue(e, ev);
	return 0;
}

int64_t
coord_engine_rollout(struct coord_engine *e)
{
	int64_t v;

	pthread_mutex_lock(&e->mu);
	v = e->rollout_pub;
	pthread_mutex_unlock(&e->mu);
	return v;
}

int
coord_engine_pause(struct coord_engine *e, const char *who)
{
	return push_control(e, EV_PAUSE, who);
}

int
coord_engine_resume(struct coord_engine *e)
{
	return push_control(e, EV_RESUME, NULL);
}

void
coord_engine_breaker(struct coord_engine *e, struct coord_breaker_state *ret)
{
	pthread_mutex_lock(&e->mu);
	*ret = e->br;
	pthread_mutex_unlock(&e->mu);
}

// ---- startup -------------------------------------------------------------

struct rebuild {
	struct coord_engine *e;
	int64_t now_ms, now_mono;
	int interrupted, restored, unsent;
	int64_t last_alert_id_seen; // to count runs per incident
	int64_t unsent_alert;	    // the last alert replayed for unsent rows
	bool storm_unsent;	    // a breaker opening whose report never left
	char storm_detail[CM_TEXT_MAX + COORD_REASON_MAX];
};

// A plan that waited for an operator when the previous process ended
// waits again, with the time it had left, when its alert still plans the
// same action under the rules now loaded; otherwise its row says why it
// will not run. The alert is read back from the journal and planned
// anew (plans point into the loaded rules).
static void
restore_approval(struct rebuild *rb, const struct coord_action_rec *rec,
    struct incident *inc)
{
	struct coord_engine *e = rb->e;
	int64_t left = rec->created_ms + e->d.conf->approval_timeout_ms -
	    rb->now_ms, received_ms = rb->now_ms;
	struct coord_alert *alert = NULL;
	struct coord_plan *plans = NULL;
	struct approval *a = NULL;
	size_t n = 0;
	char err[256];

	if (left <= 0) {
		(void)coord_journal_action_update(e->d.journal, rec->id,
		    "expired", "no operator decision within the approval "
		    "timeout (it ran out while the coordinator was down)",
		    rb->now_ms);
		return;
	}
	if (coord_journal_read_alert(e->d.journal, rec->alert_id, &alert,
	    &received_ms) < 0 ||
	    coord_rules_plan(atomic_load(&e->rules), alert, &plans, &n, err,
	    sizeof(err)) < 0 || n == 0 ||
	    strcmp(plans[0].rule->conf->name, rec->rule) != 0 ||
	    strcmp(coord_action_name(plans[0].type), rec->type) != 0 ||
	    strcmp(plans[0].service, rec->service) != 0 ||
	    strcmp(plans[0].instance, rec->instance) != 0 ||
	    (a = calloc(1, sizeof(*a))) == NULL) {
		coord_plans_free(plans, n);
		coord_alert_free(alert);
		(void)coord_journal_action_update(e->d.journal, rec->id,
		    "interrupted", "coordinator restarted; its alert no longer "
		    "plans this action under the rules loaded, or could not be "
		    "read back", rb->now_ms);
		rb->interrupted++;
		return;
	}
	a->id = rec->id;
	a->inc = inc;
	a->alert = alert;
	a->alert_id = rec->alert_id;
	a->received_mono = rb->now_mono - (rb->now_ms - received_ms);
	a->plans = plans;
	a->n_plans = n;
	a->expires_mono = rb->now_mono + left;
	a->next = e->approvals;
	e->approvals = a;
	inc->open = true;
	inc->holds++; // released when the plan is decided or expires
	inc->start_ms = rec->incident_start_ms;
	inc->touched_mono = rb->now_mono;
	rb->restored++;
	cm_notice("engine.approval_restored", "id=%" PRId64 " rule=%s "
	    "service=%s instance=%s expires_in_s=%lld", rec->id,
	    cm_q(rec->rule), cm_q(rec->service), cm_q(rec->instance),
	    (long long)(left / 1000));
}

static void
rebuild_action(const struct coord_action_rec *rec, int64_t updated_ms,
    void *arg)
{
	struct rebuild *rb = arg;
	struct coord_engine *e = rb->e;
	int64_t mono = rb->now_mono - (rb->now_ms - rec->created_ms);
	const struct coord_rule_conf *rc = NULL;
	struct incident *inc;
	char key[512];

	(void)updated_ms;
	// An action whose row the previous process committed but could not
	// sync never left (coord_journal_unsent): no attempt, no window, no
	// cooldown, so the alert, resent, acts again.
	if (strcmp(rec->state, "unsent") == 0)
		return;
	if (strcmp(rec->type, "breaker") == 0 &&
	    strcmp(rec->state, "open") == 0 &&
	    coord_journal_unsent(e->d.journal, rec->id, rec->created_ms)) {
		// The breaker opened (and is restored open) but its report to
		// people went with the failed sync: it goes at the start.
		rb->storm_unsent = true;
		snprintf(rb->storm_detail, sizeof(rb->storm_detail), "%s",
		    rec->detail != NULL ? rec->detail : "");
		return;
	}
	if (strcmp(rec->state, "dispatched") == 0 &&
	    coord_journal_unsent(e->d.journal, rec->id, rec->created_ms)) {
		(void)coord_journal_action_update(e->d.journal, rec->id,
		    "unsent", "never sent: the journal's sync failed before "
		    "it could leave", rb->now_ms);
		rb->unsent++;
		// Its alert was decided, not acted on: decided again, as a
		// pending one would be (once for the rows of one run).
		if (rec->alert_id > 0 && rec->alert_id != rb->unsent_alert) {
			struct coord_alert *a = NULL;
			int64_t received_ms;

			rb->unsent_alert = rec->alert_id;
			if (coord_journal_read_alert(e->d.journal,
			    rec->alert_id, &a, &received_ms) == 0 &&
			    push_alert(e, a, rec->alert_id, rec->identity,
			    rb->now_mono) < 0)
				coord_alert_free(a);
		}
		return;
	}
	inc = incident_get(e, rec->identity);
	if (inc == NULL)
		return;
	// Rate-limit and blast-radius windows come back with the actions
	// that ran (and the agents' permitted restarts).
	if (strcmp(rec->state, "shadow") != 0 &&
	    strcmp(rec->state, "refused") != 0 &&
	    strcmp(rec->state, "awaiting-approval") != 0 &&
	    strcmp(rec->state, "rejected") != 0 &&
	    strcmp(rec->state, "expired") != 0 &&
	    coord_action_parse(rec->type) >= 0 &&
	    strcmp(rec->type, "notify") != 0) {
		struct coord_safety_req sr = {
			.type = (enum coord_action_type)coord_action_parse(rec->type),
			.service = rec->service,
			.instance = rec->instance,
			.identity = rec->identity,
		};

		coord_safety_started(e->safety, &sr, rec->created_ms);
		coord_safety_finished(e->safety, rec->service,
		    strcmp(rec->state, "failed") != 0 &&
		    strcmp(rec->state, "timeout") != 0, 0, rec->created_ms);
	}
	if (strcmp(rec->rule, "local") == 0)
		return; // an agent's own restart is no incident of ours
	if (strcmp(rec->state, "awaiting-approval") == 0) {
		restore_approval(rb, rec, inc);
		return;
	}
	// A run spans several rows (one per target and step), all created
	// for the same triggering alert: count runs by alert.
	if (inc->last_action_id == 0 || rec->alert_id != rb->last_alert_id_seen)
		inc->attempts++;
	rb->last_alert_id_seen = rec->alert_id;
	inc->open = true;
	inc->start_ms = rec->incident_start_ms;
	inc->last_action_id = rec->id;
	inc->last_action_mono = mono;
	inc->touched_mono = rb->now_mono;
	for (size_t i = 0; i < e->d.conf->compiled.n; i++) // at start
		if (strcmp(e->d.conf->compiled.v[i].conf->name, rec->rule) == 0)
			rc = e->d.conf->compiled.v[i].conf;
	if (rc != NULL) {
		action_key(key, sizeof(key), rec->rule, rec->type, rec->service,
		    rec->instance);
		cooldown_set(e, key, mono + rc->cooldown_ms, rec->id);
	}
	if (strcmp(rec->state, "dispatched") == 0 ||
	    strcmp(rec->state, "retrying") == 0 ||
	    strcmp(rec->state, "verifying") == 0) {
		// The outcome was lost with the previous process. The agent
		// may or may not have acted; the cooldown above keeps us from
		// acting twice, and a still-firing alert retries after it.
		(void)coord_journal_action_update(e->d.journal, rec->id,
		    "interrupted", "coordinator restarted while the action was "
		    "in flight; outcome unknown", rb->now_ms);
		rb->interrupted++;
	}
}

static void
replay_alert(int64_t id, uint64_t identity, int64_t received_ms,
    struct coord_alert *alert, void *arg)
{
	struct coord_engine *e = arg;

	(void)received_ms;
	if (push_alert(e, alert, id, identity, cm_mono_ms()) < 0)
		coord_alert_free(alert);
}

int
coord_engine_start(struct coord_engine **ret,
    const struct coord_engine_deps *deps)
{
	struct coord_engine *e = calloc(1, sizeof(*e));
	struct rebuild rb;
	pthread_condattr_t ca;
	int rv;

	if (e == NULL)
		return -ENOMEM;
	e->d = *deps;
	cm_heap_init(&e->verifies);
	e->started_mono = cm_mono_ms();
	atomic_init(&e->rules, &deps->conf->compiled);
	for (int d = 0; d < COORD_DEC__COUNT; d++)
		dashed_name(e->dec_names[d], (enum coord_decision)d);
	e->safety = coord_safety_new(&deps->conf->safety);
	e->memo = coord_planmemo_new();
	if (e->safety == NULL || e->memo == NULL ||
	    coord_worker_start(&e->worker, 2, 1024) < 0 ||
	    coord_worker_start(&e->polls, 2, 1024) < 0) {
		coord_worker_stop(e->worker);
		coord_safety_free(e->safety);
		coord_planmemo_free(e->memo);
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cv, &ca);
	pthread_condattr_destroy(&ca);

	if (deps->k8s != NULL &&
	    coord_kexec_new(&e->kexec, deps->k8s, &deps->conf->kubernetes,
	    &deps->conf->cluster_load, deps->conf->prometheus_url,
	    deps->conf->prometheus_timeout_ms, e->worker, e->polls) < 0) {
		coord_engine_free(e);
		return -ENOMEM;
	}
	e->rollout_percent = deps->conf->rollout.percent;
	e->rollout_changed_mono = cm_mono_ms();
	if (deps->conf->rollout.step > 0) {
		char buf[64];
		long long pct, at;

		// A ramp in progress resumes where it was, and when.
		if (coord_journal_meta_get(deps->journal, "rollout", buf,
		    sizeof(buf)) == 0 && sscanf(buf, "%lld %lld", &pct, &at) == 2 &&
		    pct >= 0 && pct <= 100) {
			e->rollout_percent = pct;
			e->rollout_changed_mono -= cm_now_ms() - at;
		}
	}
	e->rollout_pub = e->rollout_percent;
	rb = (struct rebuild){ .e = e, .now_ms = cm_now_ms(),
		.now_mono = cm_mono_ms() };
	restore_breaker(e);
	coord_safety_breaker(e->safety, cm_now_ms(), &e->br);
	rv = coord_journal_scan_actions(e->d.journal,
	    rb.now_ms - REBUILD_WINDOW_MS, rebuild_action, &rb);
	if (rv == 0) // recorded as unsent (synced): the list can go
		coord_journal_unsent_clear(e->d.journal);
	if (rv == 0 && rb.storm_unsent && e->br.open)
		notify_report(e, 0, "circuit breaker open: automation paused",
		    rb.storm_detail); // leaves with the first turn's batch
	if (rv == 0)
		rv = coord_journal_replay_pending(e->d.journal, replay_alert, e);
	if (rv < 0) {
		coord_engine_free(e);
		return rv;
	}
	cm_info("engine.resumed", "queued=%lld interrupted_actions=%d "
	    "unsent_actions=%d approvals_waiting=%d", (long long)e->queued,
	    rb.interrupted, rb.unsent, rb.restored);
	if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
		coord_engine_free(e);
		return -EAGAIN;
	}
	e->started = true;
	*ret = e;
	return 0;
}

void
coord_engine_stop(struct coord_engine *e)
{
	if (e == NULL || !e->started)
		return;
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	// Verification polls still queued are answered without a call.
	coord_worker_winding_down(e->polls);
	pthread_join(e->thread, NULL);
	e->started = false;
	// drain_commits waited for every batch; this only guards against
	// a callback still on its way (it touches e).
	pthread_mutex_lock(&e->mu);
	while (e->outstanding > 0)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
}

void
coord_engine_free(struct coord_engine *e)
{
	if (e == NULL)
		return;
	coord_engine_stop(e);
	// Queued jobs finish and post their events into the stopped queue.
	coord_worker_stop(e->polls);
	coord_worker_stop(e->worker);
	while (e->head != NULL) {
		struct ev *ev = e->head;

		e->head = ev->next;
		ev_free(ev);
	}
	while (e->reverts != NULL) {
		struct revert *rv = e->reverts;

		e->reverts = rv->next;
		free(rv->record);
		free(rv);
	}
	while (e->approvals != NULL) {
		struct approval *a = e->approvals;

		e->approvals = a->next;
		approval_free(a);
	}
	for (struct cm_heap_node *top; (top = cm_heap_top(&e->verifies)) !=
	    NULL;) {
		cm_heap_remove(&e->verifies, top);
		verify_free(verify_of(top));
	}
	cm_heap_fini(&e->verifies);
	while (e->deferred != NULL) {
		struct ev *ev = e->deferred;

		e->deferred = ev->next;
		ev_free(ev);
	}
	while (e->runs != NULL) {
		struct run *r = e->runs;

		e->runs = r->next;
		run_free(r);
	}
	for (size_t b = 0; b < HASH_BUCKETS; b++) {
		while (e->incidents[b] != NULL) {
			struct incident *i = e->incidents[b];

			e->incidents[b] = i->next;
			free(i);
		}
		while (e->cooldowns[b] != NULL) {
			struct cooldown *c = e->cooldowns[b];

			e->cooldowns[b] = c->next;
			free(c->key);
			free(c);
		}
	}
	ebatch_free(e->cur);
	coord_planmemo_free(e->memo); // after every event that may hold a lease
	coord_safety_free(e->safety);
	coord_kexec_free(e->kexec);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
