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
// one fsync). coord_journal_submit_alerts() and coord_journal_batch_submit()
// are asynchronous (the callback runs on the journal's completion thread
// after the commit: with sync_full on a file that is a syncer thread,
// which fdatasync()s the WAL while the writer already runs the next
// transaction; otherwise the writer, or the submitting thread for a batch
// run inline: see coord_journal_batch_submit); the other write calls
// block the caller until their transaction committed (and was synced). A
// checkpointer thread with its own connection copies the WAL into the
// database file. Action ids are handed out by the journal when a row is
// queued (never reused, even after a failed commit). Reads use a separate
// connection guarded by a mutex and may be called from any thread.
#ifndef COORD_JOURNAL_H
#define COORD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord_alert.h"

struct coord_journal;

// Zero-initialize (designated initializers): every field's 0 means its
// default, except sync_full (false = NORMAL; pass opts NULL for all
// defaults including FULL).
struct coord_journal_opts {
	bool sync_full;	     // synchronous=FULL (default) vs NORMAL
	int64_t retention_ms; // rows older than this are deleted (0 = keep):
			      // alerts by received_ms whatever their
			      // outcome, actions by created_ms
	size_t max_batch;     // alerts per group commit (default 512)
	// Added after the first draft; 0 = default for each:
	size_t max_queue;     // alerts queued at most (default 8192)
	int64_t max_bytes;    // database size cap; beyond it commits fail
			      // with -ENOSPC (0 = none)
	int64_t retention_interval_ms; // time between automatic
			      // retention passes (default 60000)
	int64_t cache_tail;   // bytes at the end of a file journal that stay
			      // in the page cache after a checkpoint
			      // (default 32 MiB; < 0: keep every page)
	int64_t sync_linger_us; // longest wait of the syncer for promised
			      // writes (coord_journal_early_fn; default
			      // 1000; < 0: no wait)
};

// Opens or creates the journal at `path` (":memory:" for tests), creates
// the schema, and starts the writer thread. Returns 0 or a negative errno
// with a reason in err: the OS error when the file cannot be opened (e.g.
// -ENOENT for a missing directory), -ENOTSUP when the file's schema is
// newer than this build, -EINVAL when it is not a database.
//
// ":memory:" (and "") use ONE connection for writes and reads: the writer
// holds the read mutex for the length of each transaction, so readers
// never see uncommitted rows. A file path gets a second, query-only
// connection, so reads run beside commits (WAL).
//
// With sync_full on a file, a failed fdatasync of the WAL after a COMMIT
// ends the process with status COORD_JOURNAL_EXIT_SYNC (logged as
// journal.sync_failed) before any op of that batch is answered: after a
// failed fsync the kernel may report later ones as good, so nothing could
// be promised any more. Whatever reached the disk is read at the next start.
#define COORD_JOURNAL_EXIT_SYNC 74 // EX_IOERR
int coord_journal_open(struct coord_journal **ret, const char *path,
    const struct coord_journal_opts *opts, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Stops the writer after draining its queue (every queued callback is
// called, every blocked caller answered), then closes. NULL-safe. Call it
// once, when no other thread uses the journal any more; not from a
// callback.
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

// Called once on the completion thread (see above) after the batch
// committed with the configured sync (rv == 0, recs[i].id set) or failed
// (rv < 0: nothing was stored, or after a failed fdatasync nothing is
// known to be on the disk, though the rows may survive and be replayed;
// ids are 0; answer 503). It must not call the blocking write functions below (they
// would return -EDEADLK) and should return quickly: the next group commit
// waits for it.
typedef void (*coord_journal_done_fn)(int rv, struct coord_alert_rec *recs,
    size_t n, void *arg);

// Queues `n` alerts for the next group commit. Borrows recs (and the
// alerts they point to) until `done` has been called. Returns 0, or
// -EAGAIN when the queue is full / the journal is closing (answer 503),
// -EINVAL for NULL arguments, -ENOMEM; in those cases done is not called.
// A submission larger than max_queue can never fit: -EAGAIN. A batch
// never splits a submission (one may exceed max_batch alone). After a
// failed commit later submissions are still accepted and tried (the disk
// may recover); their callbacks report each outcome. Never blocks; any
// thread.
int coord_journal_submit_alerts(struct coord_journal *j,
    struct coord_alert_rec *recs, size_t n, coord_journal_done_fn done,
    void *arg) __attribute__((warn_unused_result));

// For a caller that acts on alerts as soon as they are committed, before
// they are durable (it must let nothing out of the process that depends
// on them before `done`). Called on the writer thread right after the
// COMMIT that stored recs (ids set), never after a failed one, and only
// with sync_full on a file: then `done` comes after the fdatasync, and
// meanwhile the caller may decide on the alerts and queue the writes
// that follow from them.
//
// `quiet`: the commit held these alerts and nothing else (the journal
// had no other work). Only then may the callback take a hold (return 1;
// otherwise it returns 0): a promise of such writes, kept by
// coord_journal_batch_release() on the batch that holds them, or by
// coord_journal_release() as soon as it knows none are needed. While a
// hold is outstanding the syncer waits for it (at most sync_linger_us;
// each time it gives up counts in linger_timeouts, and holds are
// dropped after three such waits in a row that each saw fewer releases
// than the holds it began with), so that one
// fdatasync covers the alerts and the writes they caused, and their
// completions come together. Must not block or call the journal's
// blocking writes.
typedef unsigned (*coord_journal_early_fn)(struct coord_alert_rec *recs,
    size_t n, bool quiet, void *arg);

// coord_journal_submit_alerts() with an early callback (may be NULL:
// then the same call). `early` runs at most once, before `done`.
int coord_journal_submit_alerts_early(struct coord_journal *j,
    struct coord_alert_rec *recs, size_t n, coord_journal_early_fn early,
    coord_journal_done_fn done, void *arg)
    __attribute__((warn_unused_result));

// Alert processing outcome: "pending" (as stored), then one of
// "acted", "no-rule", "duplicate", "resolved", "refused:<check>",
// "template-error", "shadow" ... `detail` is free text (may be NULL).
//
// The blocking writes below (alert_done, action_insert, action_update)
// are queued behind earlier submissions and share their group commit;
// they return once their transaction committed: 0, -ENOENT (no such
// id; nothing changed), -EINVAL (NULL required argument), a negative
// errno of the failed commit (-ENOSPC, -EIO, ...), -ESHUTDOWN when the
// journal is closing, -EDEADLK when called from a done callback. Strings
// are borrowed for the call. Any thread.
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

// Inserts rec (rule, type, service, instance and state required) and sets
// rec->id; its updated time starts as created_ms.
int coord_journal_action_insert(struct coord_journal *j,
    struct coord_action_rec *rec);
// Inserts the n recs (n >= 1) in one transaction, all or none, and sets
// each rec's id (0 for all on failure). Blocking and thread-safe like
// action_insert; -EINVAL when any rec lacks a required field (nothing
// is queued then).
int coord_journal_action_insert_many(struct coord_journal *j,
    struct coord_action_rec *recs, size_t n);
// Sets state and updated time; a NULL detail keeps the previous detail.
int coord_journal_action_update(struct coord_journal *j, int64_t id,
    const char *state, const char *detail, int64_t now_ms);

// ---- asynchronous write batches ------------------------------------------
//
// A batch collects alert outcomes, action inserts and action updates and
// commits them as ONE queued op, in the order they were added, all or
// none, without blocking the caller: the engine decides everything it has
// at hand and writes it with one commit instead of one commit per
// decision. Strings are copied into the batch (the caller's may go at
// once). An action insert gets its id when it is added (the journal hands
// out action ids itself), so the caller can use it before the commit; ids
// of a failed batch are never used again. Updates of rows that do not
// exist (-ENOENT) are skipped without failing the batch.
//
// Ownership: batch_new returns a batch owned by the caller until
// batch_submit, which always takes it (also when it fails); free an
// unsubmitted batch with batch_free. A batch is used by one thread.
struct coord_journal_batch;

// NULL on ENOMEM (or j NULL).
struct coord_journal_batch *coord_journal_batch_new(struct coord_journal *j);
void coord_journal_batch_free(struct coord_journal_batch *b);

// Each returns 0, -EINVAL (NULL required argument: rec's rule, type,
// service, instance and state, or outcome/state) or -ENOMEM; on error
// nothing was added (and rec->id is 0).
int coord_journal_batch_alert_done(struct coord_journal_batch *b,
    int64_t alert_id, const char *outcome, const char *detail);
int coord_journal_batch_action_insert(struct coord_journal_batch *b,
    struct coord_action_rec *rec);
int coord_journal_batch_action_update(struct coord_journal_batch *b,
    int64_t id, const char *state, const char *detail, int64_t now_ms);

// Keeps n holds (see coord_journal_early_fn) once the batch committed:
// the syncer, which waited for them, syncs it with the alerts that took
// them. NULL-safe.
void coord_journal_batch_release(struct coord_journal_batch *b, unsigned n);
// Keeps n holds at once: for a caller that has no write to wait for, or
// cannot submit its batch. NULL-safe; any thread.
void coord_journal_release(struct coord_journal *j, unsigned n);

// After a failed fdatasync (exit COORD_JOURNAL_EXIT_SYNC) the rows of the
// batches it did not cover may still be in the file, but their commands
// never left: the exiting process lists their action ids (best effort)
// for the next open, with their created_ms (a list left behind by
// mistake cannot match a later row that took the same id). True when
// the row is one of them; clear once they are recorded as such (it
// removes the list). Not thread-safe: for the start, before anything is
// sent.
bool coord_journal_unsent(struct coord_journal *j, int64_t action_id,
    int64_t created_ms);
void coord_journal_unsent_clear(struct coord_journal *j);

// Rows written by the batch so far.
size_t coord_journal_batch_len(const struct coord_journal_batch *b);

// Called once on the completion thread after the batch's transaction
// committed with the configured sync (rv 0) or failed (rv < 0: none of its rows were written). The
// same rules as coord_journal_done_fn: no blocking journal call, return
// quickly.
typedef void (*coord_journal_batch_fn)(int rv, void *arg);

// Queues the batch behind everything queued before it (FIFO with every
// other write) and takes it. Returns 0 (fn will be called), or -EINVAL,
// -ESHUTDOWN (the journal is closing): fn is not called then. Any thread;
// not bounded by max_queue (the caller's own rows). Never waits for other
// work (but, with full sync, for room in the syncer's ring of 16 batches
// when it runs here): when the writer is idle, a batch with action rows
// or releases runs its transaction on the calling thread, which saves a
// thread hand-off on its way to a command (without full sync also the
// hand-off back: fn is called before this returns; with it, fn comes from
// the syncer); otherwise it is queued.
int coord_journal_batch_submit(struct coord_journal_batch *b,
    coord_journal_batch_fn fn, void *arg)
    __attribute__((warn_unused_result));

// Runs retention passes now until no row older than retention_ms is left
// (the writer otherwise runs one bounded pass per retention interval of
// activity). Blocking, like the writes above. Returns 0 (also when
// retention_ms is 0: nothing to do) and the number of rows deleted in
// *ret_deleted (may be NULL), or a negative errno.
int coord_journal_retain_now(struct coord_journal *j, int64_t *ret_deleted);

// Replays unprocessed alerts (outcome "pending"), oldest first, calling
// fn for each with a freshly allocated alert (the callee owns it: free
// with coord_alert_free). Used at startup.
typedef void (*coord_journal_alert_fn)(int64_t id, uint64_t identity,
    int64_t received_ms, struct coord_alert *alert, void *arg);
//
// Rows are read in pages and no lock is held while fn runs, so fn may
// call any journal function (e.g. alert_done). A row whose stored labels
// cannot be decoded is logged and skipped. Returns 0 or a negative errno
// (-ENOMEM, -EIO). Blocks on the read connection; any thread.
int coord_journal_replay_pending(struct coord_journal *j,
    coord_journal_alert_fn fn, void *arg);

// The stored alert `id` (a fresh alert the caller frees with
// coord_alert_free) and when it was received. Returns 0, -ENOENT (no such
// row), -EINVAL (labels not decodable), -ENOMEM or -EIO. Any thread.
int coord_journal_read_alert(struct coord_journal *j, int64_t id,
    struct coord_alert **ret, int64_t *received_ms)
    __attribute__((warn_unused_result));

// The state of action row `id` ("awaiting-approval", "succeeded", ...)
// into buf. Returns 0, -ENOENT (no such row) or -EIO. Any thread.
int coord_journal_action_state(struct coord_journal *j, int64_t id, char *buf,
    size_t n) __attribute__((warn_unused_result));

// Actions recorded since `since_ms` in id order, for rebuilding cooldown,
// attempt and in-flight state at startup. The rec's strings are borrowed
// for the duration of the call. "Since" means created_ms >= since_ms.
// Paged like replay (fn may call the journal). Returns 0 or -errno.
typedef void (*coord_journal_action_fn)(const struct coord_action_rec *rec,
    int64_t updated_ms, void *arg);
int coord_journal_scan_actions(struct coord_journal *j, int64_t since_ms,
    coord_journal_action_fn fn, void *arg);

// History for the API and CLI as a JSON array text (free()): newest
// first (created, then id), at most `limit` rows, filtered by any non-NULL
// field (all must match; since_ms bounds created_ms). Each element:
// {"id", "alert_id", "alertname", "rule", "type", "service", "instance",
// "node", "state", "detail", "attempt", "created", "updated"} with times
// in RFC 3339 and JSON null for absent values. f may be NULL (no filter).
// Returns 0 or -ENOMEM / -EIO. Any thread.
struct coord_journal_filter {
	const char *service;
	const char *alertname;
	const char *state;
	int64_t since_ms; // 0 = no bound
	int limit;	  // default 100, max 1000
};
int coord_journal_query_actions(struct coord_journal *j,
    const struct coord_journal_filter *f, char **ret_json);

// Alerts with what was decided for them, for the API and CLI ("why did
// reflex not act?"): a JSON array text (free()), newest first, at most
// `limit` rows, from the newest COORD_JOURNAL_ALERTS_SCAN alerts only (a
// filter that matches none of them costs a bounded scan, not the whole
// journal). The filter's fields mean: service, the alert's `service`
// label; alertname; state, the outcome (`pending` until decided; a bare
// word also matches its `word:<detail>` forms: `refused` matches
// `refused:blast_radius`); since_ms, the time the webhook arrived. Each
// element: {"id", "received", "alertname", "status", "fingerprint",
// "service", "instance", "outcome", "detail", "decided", "labels"} with
// times in RFC 3339, labels the alert's label object, JSON null for
// absent values. Returns 0, -EINVAL or -ENOMEM / -EIO. Any thread.
#define COORD_JOURNAL_ALERTS_SCAN 100000
int coord_journal_query_alerts(struct coord_journal *j,
    const struct coord_journal_filter *f, char **ret_json);

// Small persistent settings (e.g. the rollout stage): set blocks until
// committed; get copies the value into buf (-ENOENT when unset).
int coord_journal_meta_set(struct coord_journal *j, const char *key,
    const char *value);
int coord_journal_meta_get(struct coord_journal *j, const char *key,
    char *buf, size_t n);

// Counts for /metrics and /health: rows in the journal (kept by the
// writer, no table scan), main file + WAL size in bytes, group commits
// that succeeded and failed. Cheap; any thread. j NULL gives zeros.
struct coord_journal_stats {
	int64_t alerts;
	int64_t actions;
	int64_t bytes;	       // database file size
	int64_t commits;       // group commits done
	int64_t commit_errors;
	int64_t checkpoints;   // by the checkpointer thread
	int64_t backstop_checkpoints; // by the writer (checkpointer behind)
	int64_t checkpoint_waits; // checkpoints that waited for a moment
				  // without commits (see CKPT_FORCE)
	int64_t cache_trims;   // page cache drops after checkpoints
	int64_t syncs;	       // fdatasyncs of the WAL (sync_full file)
	int64_t linger_timeouts; // syncer waits for holds that ran out
				 // (see coord_journal_early_fn)
	int64_t texts_new;     // alert texts stored (alert_texts rows)
	int64_t texts_found;   // alerts whose texts were stored already
};
void coord_journal_stats(struct coord_journal *j, struct coord_journal_stats *s);

#endif
