// SPDX-License-Identifier: MIT
// coord_journal: the coordinator's durable record, in SQLite (WAL mode).
//
// Every alert is committed before the webhook answers 2xx; every decision,
// action attempt and outcome is recorded with timestamps, so a restarted
// coordinator resumes: unprocessed alerts are processed, cooldowns and
// attempt counts come back, and an action that completed is never run
// again.
//
// Threads: one writer thread owns the write connection. Writes are queued
// and committed in groups (many webhook requests share one transaction and
// one fsync). coord_journal_submit_alerts() is asynchronous (the callback
// runs on the writer thread after the commit); the other write calls block
// the caller until their transaction committed. Reads use a separate
// connection guarded by a mutex and may be called from any thread.
#ifndef COORD_JOURNAL_H
#define COORD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord_alert.h"

struct coord_journal;

struct coord_journal_opts {
	bool sync_full;	     // synchronous=FULL (default) vs NORMAL
	int64_t retention_ms; // rows older than this are deleted (0 = keep)
	size_t max_batch;     // alerts per group commit (default 512)
};

// Opens or creates the journal at `path` (":memory:" for tests), creates
// the schema, and starts the writer thread. Returns 0 or a negative errno
// with a reason in err.
int coord_journal_open(struct coord_journal **ret, const char *path,
    const struct coord_journal_opts *opts, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Stops the writer after draining its queue, then closes. NULL-safe.
void coord_journal_close(struct coord_journal *j);

// One received alert as stored. The journal copies what it needs.
struct coord_alert_rec {
	int64_t id;		  // set by the journal (ROWID)
	int64_t received_ms;
	uint64_t identity;	  // coord_alert_identity()
	const struct coord_alert *alert; // borrowed until the callback
	const char *receiver;
	const char *group_key;
};

// Called once on the writer thread after the batch committed (rv == 0,
// recs[i].id set) or failed (rv < 0: nothing was stored; answer 503).
typedef void (*coord_journal_done_fn)(int rv, struct coord_alert_rec *recs,
    size_t n, void *arg);

// Queues `n` alerts for the next group commit. Borrows recs (and the
// alerts they point to) until `done` has been called. Returns 0, or
// -EAGAIN when the queue is full / the journal is failing (answer 503),
// in which case done is not called. Never blocks.
int coord_journal_submit_alerts(struct coord_journal *j,
    struct coord_alert_rec *recs, size_t n, coord_journal_done_fn done,
    void *arg) __attribute__((warn_unused_result));

// Alert processing outcome: "pending" (as stored), then one of
// "acted", "no-rule", "duplicate", "resolved", "refused:<check>",
// "template-error", "shadow" ... `detail` is free text (may be NULL).
int coord_journal_alert_done(struct coord_journal *j, int64_t alert_id,
    const char *outcome, const char *detail);

// Action states: "planned" -> "dispatched" -> "succeeded" | "failed" |
// "timeout"; or "suppressed" / "refused" without running.
struct coord_action_rec {
	int64_t id;		// set by insert
	int64_t alert_id;
	uint64_t identity;	// alert identity (incident)
	int64_t incident_start_ms;
	const char *rule;
	const char *type;	// "restart", ...
	const char *service;
	const char *instance;
	const char *node;	// agent chosen, may be NULL
	const char *state;
	const char *detail;
	int attempt;		// 1-based try within the action
	int64_t created_ms;
};

int coord_journal_action_insert(struct coord_journal *j,
    struct coord_action_rec *rec);
int coord_journal_action_update(struct coord_journal *j, int64_t id,
    const char *state, const char *detail, int64_t now_ms);

// Replays unprocessed alerts (outcome "pending"), oldest first, calling
// fn for each with a freshly allocated alert (the callee owns it: free
// with coord_alert_free). Used at startup.
typedef void (*coord_journal_alert_fn)(int64_t id, uint64_t identity,
    int64_t received_ms, struct coord_alert *alert, void *arg);
int coord_journal_replay_pending(struct coord_journal *j,
    coord_journal_alert_fn fn, void *arg);

// Actions recorded since `since_ms` in id order, for rebuilding cooldown,
// attempt and in-flight state at startup. The rec's strings are borrowed
// for the duration of the call.
typedef void (*coord_journal_action_fn)(const struct coord_action_rec *rec,
    int64_t updated_ms, void *arg);
int coord_journal_scan_actions(struct coord_journal *j, int64_t since_ms,
    coord_journal_action_fn fn, void *arg);

// History for the API and CLI as a JSON array text (free()): newest
// first, at most `limit` rows, filtered by any non-NULL field.
struct coord_journal_filter {
	const char *service;
	const char *alertname;
	const char *state;
	int64_t since_ms; // 0 = no bound
	int limit;	  // default 100, max 1000
};
int coord_journal_query_actions(struct coord_journal *j,
    const struct coord_journal_filter *f, char **ret_json);

// Counts for /metrics and /health.
struct coord_journal_stats {
	int64_t alerts;
	int64_t actions;
	int64_t bytes;	       // database file size
	int64_t commits;       // group commits done
	int64_t commit_errors;
};
void coord_journal_stats(struct coord_journal *j, struct coord_journal_stats *s);

#endif
