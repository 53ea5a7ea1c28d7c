// SPDX-License-Identifier: MIT
// coord_journal: the durable alert/action journal in SQLite with group commit.
//
// One writer thread owns the write connection. Every write (asynchronous
// alert submissions and the blocking writes) is an `op` on one FIFO queue;
// the writer takes everything queued (bounded by max_batch alerts), runs
// it in ONE transaction, then completes each op in order. A failed
// transaction is rolled back whole and every op of it gets the error.
// (A batch that finds the writer idle may run on the thread that submits
// it instead: coord_journal_batch_submit.)
//
// With sync_full on a file, the fsync leaves the writer: the connection
// runs with synchronous=NORMAL (COMMIT writes the WAL without syncing it)
// and a syncer thread fdatasync()s the WAL file, then completes the
// batches' ops in commit order. Meanwhile the writer goes on committing,
// and one fdatasync covers every batch committed before it, so intake is
// set by the SQL work, not by the fsync. No op is completed (no 2xx, no
// callback) before the fdatasync that covers its COMMIT returned; SQLite
// itself still syncs the WAL header when it restarts the log and the WAL
// and database around every checkpoint.
#include "coord_journal.h"
#include "coord_textmemo.h"
#include "cm_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "cm_log.h"
#include "cm_time.h"
#include "cm_thread.h"

// PRAGMA user_version of the schema below. A later build that changes the
// schema migrates from each older version in create_schema().
#define SCHEMA_VERSION 4 // 2: meta table; 3: outcomes apart from alerts;
			 // 4: alert texts stored once (alert_texts)

#define DEFAULT_MAX_BATCH 512
#define DEFAULT_MAX_QUEUE 8192
#define DEFAULT_RETENTION_INTERVAL_MS 60000
#define MAX_OPS_PER_BATCH 1024	// queued ops (of any kind) per batch
#define RETENTION_ROWS 1000	// rows per table per retention pass
#define BUSY_TIMEOUT_MS 5000
#define READ_PAGE 128		// rows read per lock hold (replay, scan)
#define QUERY_DEFAULT_LIMIT 100
#define QUERY_MAX_LIMIT 1000
// Checkpoints (file journals): a checkpointer thread with its own
// connection copies the WAL into the database once CKPT_PAGES frames
// are not yet copied, so the writer never waits for a checkpoint's
// writes and fsyncs. CKPT_BACKSTOP: should the checkpointer fall behind,
// the writer checkpoints itself (what SQLite's autocheckpoint did at
// 1,000 pages) once the WAL holds that many frames.
#define CKPT_PAGES 1000
// A checkpoint's writes and its fsync of the database delay an fdatasync
// of the WAL that meets them (an alert's way to its command): from
// CKPT_PAGES on, the checkpointer waits for a moment when no commit is
// under way or waiting to be synced, unless CKPT_FORCE frames wait.
#define CKPT_FORCE 2000
// After each checkpoint the database's pages are dropped from the page
// cache but for the last cache_tail bytes of the file (CACHE_TAIL unless
// set), where rows are added and recent ones read. The journal is written
// once and read rarely: left alone, every row would stay in memory until
// the kernel needs it, crowding the node's page cache, and a file that
// keeps growing takes a never-used page of memory for every page written,
// which costs a virtual machine a fault to its host each (about 12 us per
// 4 KiB page on the benchmark machine against 1-2 us for a reused one).
#define CACHE_TAIL (32 << 20)
// Committed batches that may wait for the syncer at once.
#define SYNC_QUEUE 16
// How long the syncer waits at most for the writes promised by holds
// (coord_journal_early_fn) before it syncs what it has, unless set.
#define SYNC_LINGER_US 1000
#define STALE_LINGERS 3
// Action ids listed at most in the unsent file (see sync_failed).
#define UNSENT_MAX 4096
#define CKPT_BACKSTOP 16384
// Retention marks texts (see retain_texts) at most this often, or once a
// retention when that is shorter; each mark empties the writer's memo of
// texts, so a longer time lets more alerts find theirs (Alertmanager sends
// a group again every group_interval, 5m by default), and costs only a
// text kept that much longer after its last alert. OP_RETAIN (an
// operator's purge) marks every time.
#define TEXT_MARK_MS (60 * 60 * 1000)
// Outcomes in a row go up to OUTCOME_GROUP to an INSERT (j->wo[k], k rows
// of W_OUTCOME_PENDING).
#define OUTCOME_GROUP 8
// A webhook's alerts go up to ALERT_GROUP to an INSERT (j->wa[k], k rows):
// ALERT_OWN_COLS parameters per row, then the three text columns the rows
// with a text_id leave empty, bound once per statement.
#define ALERT_GROUP 4
#define ALERT_COLS 11
#define ALERT_OWN_COLS 8
// The decided-through mark (see "pending alerts" below) is saved at most
// this often, inside a batch's transaction.
#define MARK_SAVE_MS 1000
#define MARK_KEY "alerts_decided_through"

// An alert is written once, as it arrived (alerts_in), and its outcome
// once, as a narrow row of its own (alert_outcomes): rewriting the wide
// row to set three columns, and keeping an index of pending rows in step,
// cost more than the insert itself. `alerts` is the view people and tests
// query: each alert with its outcome, 'pending' until it has one.
// An alert's texts (labels, annotations, generator URL, receiver, group
// key: most of its row's bytes) are stored once for all the alerts that
// repeat them, as a row of alert_texts (Alertmanager sends a group's
// alerts again with every notification); the alert's row then holds ''
// and NULL in those columns and text_id, the view joins them back. Rows
// from before schema version 4 keep their texts (text_id NULL).
// alerts_in has no index but its id: retention walks it in id order.
// actions has no index on state, which changes with every update of the
// row: a history filtered by state reads the newest rows back until it
// has its page.
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS alerts_in("
	" id INTEGER PRIMARY KEY,"
	" received_ms INTEGER NOT NULL,"
	" identity INTEGER NOT NULL,"	// uint64 stored as its int64 bits
	" fingerprint TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK(status IN ('firing', 'resolved')),"
	" starts_ms INTEGER,"		// NULL = unknown
	" ends_ms INTEGER,"		// NULL = no end known
	" alertname TEXT,"
	" labels TEXT NOT NULL,"	// JSON object
	" annotations TEXT NOT NULL,"	// JSON object
	" generator_url TEXT NOT NULL,"
	" receiver TEXT,"
	" group_key TEXT,"
	" text_id INTEGER);"		// alert_texts.id, NULL: texts above
	"CREATE TABLE IF NOT EXISTS alert_texts("
	" id INTEGER PRIMARY KEY AUTOINCREMENT," // never reused: see retain_texts
	" labels TEXT NOT NULL,"
	" annotations TEXT NOT NULL,"
	" generator_url TEXT NOT NULL,"
	" receiver TEXT,"
	" group_key TEXT);"
	"CREATE TABLE IF NOT EXISTS alert_text_marks("
	" alert_id INTEGER PRIMARY KEY,"
	" text_id INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS alert_outcomes("
	" alert_id INTEGER PRIMARY KEY,"
	" outcome TEXT NOT NULL,"
	" detail TEXT,"
	" done_ms INTEGER);"
	"CREATE VIEW IF NOT EXISTS alerts AS SELECT a.id AS id,"
	" a.received_ms AS received_ms, a.identity AS identity,"
	" a.fingerprint AS fingerprint, a.status AS status,"
	" a.starts_ms AS starts_ms, a.ends_ms AS ends_ms,"
	" a.alertname AS alertname,"
	" coalesce(t.labels, a.labels) AS labels,"
	" coalesce(t.annotations, a.annotations) AS annotations,"
	" coalesce(t.generator_url, a.generator_url) AS generator_url,"
	" coalesce(t.receiver, a.receiver) AS receiver,"
	" coalesce(t.group_key, a.group_key) AS group_key,"
	" coalesce(o.outcome, 'pending') AS outcome, o.detail AS detail,"
	" o.done_ms AS done_ms"
	" FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id"
	" LEFT JOIN alert_outcomes o ON o.alert_id = a.id;"
	"CREATE TABLE IF NOT EXISTS actions("
	" id INTEGER PRIMARY KEY,"
	" alert_id INTEGER NOT NULL,"
	" identity INTEGER NOT NULL,"
	" incident_start_ms INTEGER NOT NULL,"
	" rule TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" instance TEXT NOT NULL,"
	" node TEXT,"
	" state TEXT NOT NULL,"
	" detail TEXT,"
	" attempt INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS actions_created ON actions(created_ms);"
	"CREATE INDEX IF NOT EXISTS actions_service"
	" ON actions(service, created_ms);"
	"CREATE TABLE IF NOT EXISTS meta("
	" key TEXT PRIMARY KEY,"
	" value TEXT NOT NULL);";

// Versions 1 and 2 kept the outcome in the alert's row (with an index of
// the pending ones and one on received_ms). Run before schema_sql, in the
// same transaction.
static const char migrate_to_3_sql[] =
	"ALTER TABLE alerts RENAME TO alerts_in;"
	"DROP INDEX IF EXISTS alerts_pending;"
	"DROP INDEX IF EXISTS alerts_received;"
	"CREATE TABLE alert_outcomes("
	" alert_id INTEGER PRIMARY KEY,"
	" outcome TEXT NOT NULL,"
	" detail TEXT,"
	" done_ms INTEGER);"
	"INSERT INTO alert_outcomes(alert_id, outcome, detail, done_ms)"
	" SELECT id, outcome, detail, done_ms FROM alerts_in"
	" WHERE outcome <> 'pending';"
	"ALTER TABLE alerts_in DROP COLUMN outcome;"
	"ALTER TABLE alerts_in DROP COLUMN detail;"
	"ALTER TABLE alerts_in DROP COLUMN done_ms;"
	"DROP INDEX IF EXISTS actions_state;";

// Version 3 kept each alert's texts in its row. Its rows stay as they
// are (text_id NULL); the view is made again by schema_sql.
static const char migrate_to_4_sql[] =
	"ALTER TABLE alerts_in ADD COLUMN text_id INTEGER;"
	"DROP VIEW IF EXISTS alerts;";

// Statements of the write connection, prepared once.
enum {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_ALERT_INSERT,
	W_ALERT_DONE,
	W_OUTCOME_PENDING,
	W_ACTION_INSERT,
	W_ACTION_UPDATE,
	W_RETAIN_LAST,
	W_RETAIN_OUTCOMES,
	W_RETAIN_ALERTS,
	W_RETAIN_ACTIONS,
	W_META_SET,
	W_TEXT_INSERT,
	W_TEXT_MARK,
	W_TEXT_FLOOR,
	W_TEXT_UNSHARE,
	W_TEXT_SHARED,
	W_RETAIN_TEXTS,
	W_RETAIN_MARKS,
	W_COUNT,
};

static const char *const wsql[W_COUNT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	// OR FAIL: a violated constraint fails the statement without undoing
	// its earlier rows (OR ABORT would), which the batch's rollback does
	// anyway; so SQLite keeps no statement journal for the rows of a
	// multi-row INSERT (a copy of every page they touch that the
	// transaction had already changed).
	[W_ALERT_INSERT] = "INSERT OR FAIL INTO alerts_in(received_ms,"
	    " identity, fingerprint, status, starts_ms, ends_ms, alertname,"
	    " text_id, labels, annotations, generator_url)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	// Nothing when the alert's row is gone (update_row: -ENOENT).
	[W_ALERT_DONE] = "INSERT OR REPLACE INTO alert_outcomes(alert_id,"
	    " outcome, detail, done_ms) SELECT ?1, ?2, ?3, ?4"
	    " WHERE EXISTS(SELECT 1 FROM alerts_in WHERE id = ?1)",
	// The same for an alert the writer knows is stored and pending.
	[W_OUTCOME_PENDING] = "INSERT OR REPLACE INTO alert_outcomes(alert_id,"
	    " outcome, detail, done_ms) VALUES(?1, ?2, ?3, ?4)",
	// j->wo[k]: k rows of W_OUTCOME_PENDING in one statement (the
	// per-statement work, step, reset, the program's start and end, once
	// for all of them), made by prepare_rows.
	[W_ACTION_INSERT] = "INSERT INTO actions(alert_id, identity,"
	    " incident_start_ms, rule, type, service, instance, node, state,"
	    " detail, attempt, created_ms, updated_ms, id)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12,"
	    " ?13)",
	[W_ACTION_UPDATE] = "UPDATE actions SET state = ?2,"
	    " detail = COALESCE(?3, detail), updated_ms = ?4 WHERE id = ?1",
	// Retention looks at a window of ?2 alerts by id, after id ?3 (no
	// index on received_ms to keep in step): outcomes first, then the
	// alerts; W_RETAIN_LAST is the window's last row when it is full.
	[W_RETAIN_LAST] = "SELECT id, received_ms FROM alerts_in WHERE id > ?3"
	    " ORDER BY id LIMIT 1 OFFSET ?2 - 1",
	[W_RETAIN_OUTCOMES] = "DELETE FROM alert_outcomes WHERE alert_id IN"
	    " (SELECT id FROM alerts_in WHERE id IN (SELECT id FROM alerts_in"
	    " WHERE id > ?3 ORDER BY id LIMIT ?2) AND received_ms < ?1)",
	[W_RETAIN_ALERTS] = "DELETE FROM alerts_in WHERE id IN (SELECT id"
	    " FROM alerts_in WHERE id > ?3 ORDER BY id LIMIT ?2)"
	    " AND received_ms < ?1",
	[W_RETAIN_ACTIONS] = "DELETE FROM actions WHERE id IN (SELECT id FROM"
	    " actions WHERE created_ms < ?1 LIMIT ?2)",
	[W_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
	    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[W_TEXT_INSERT] = "INSERT INTO alert_texts(labels, annotations,"
	    " generator_url, receiver, group_key) VALUES(?1, ?2, ?3, ?4, ?5)",
	// Texts and their marks: see retain_texts.
	[W_TEXT_MARK] = "INSERT OR REPLACE INTO alert_text_marks(alert_id,"
	    " text_id) SELECT (SELECT coalesce(max(id), 0) FROM alerts_in),"
	    " (SELECT coalesce(max(id), 0) FROM alert_texts)",
	// The first alert not received after ?1 (now), in id order.
	[W_TEXT_FLOOR] = "SELECT coalesce((SELECT id FROM alerts_in WHERE"
	    " received_ms <= ?1 ORDER BY id LIMIT 1), 9223372036854775807)",
	// Up to ?2 alerts before ?1 (the floor) take their texts back (one
	// whose text is gone keeps what it has: what the view shows).
	[W_TEXT_UNSHARE] = "UPDATE alerts_in SET (labels, annotations,"
	    " generator_url, receiver, group_key, text_id) = (SELECT"
	    " coalesce(t.labels, alerts_in.labels), coalesce(t.annotations,"
	    " alerts_in.annotations), coalesce(t.generator_url,"
	    " alerts_in.generator_url), coalesce(t.receiver,"
	    " alerts_in.receiver), coalesce(t.group_key, alerts_in.group_key),"
	    " NULL FROM (SELECT 1) LEFT JOIN alert_texts t"
	    " ON t.id = alerts_in.text_id) WHERE id IN (SELECT id FROM"
	    " alerts_in WHERE id < ?1 AND text_id IS NOT NULL ORDER BY id"
	    " LIMIT ?2)",
	// The first alert before ?1 that still refers to a text, else ?1.
	[W_TEXT_SHARED] = "SELECT coalesce((SELECT id FROM alerts_in WHERE"
	    " id < ?1 AND text_id IS NOT NULL ORDER BY id LIMIT 1), ?1)",
	[W_RETAIN_TEXTS] = "DELETE FROM alert_texts WHERE id IN (SELECT id"
	    " FROM alert_texts WHERE id <= (SELECT coalesce(max(text_id), 0)"
	    " FROM alert_text_marks WHERE alert_id < ?2) ORDER BY id"
	    " LIMIT ?1)",
	[W_RETAIN_MARKS] = "DELETE FROM alert_text_marks WHERE text_id <"
	    " (SELECT coalesce(min(id), 9223372036854775807) FROM alert_texts)",
};

// An alert's labels, annotations and generator URL, from its text row or
// its own (FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id).
#define LABELS "coalesce(t.labels, a.labels)"
#define ALERT_TEXT_COLS LABELS "," \
	" coalesce(t.annotations, a.annotations)," \
	" coalesce(t.generator_url, a.generator_url)"

// Statements of the read connection, prepared once, used under rlock.
enum {
	R_PENDING,
	R_ACTIONS,
	R_ALERT,
	R_ACTION_STATE,
	R_COUNT,
};

static const char *const rsql[R_COUNT] = {
	[R_PENDING] = "SELECT a.id, a.identity, a.received_ms, a.fingerprint,"
	    " a.status, a.starts_ms, a.ends_ms, " ALERT_TEXT_COLS
	    " FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id"
	    " WHERE a.id > ?1 AND NOT EXISTS(SELECT 1 FROM alert_outcomes o"
	    " WHERE o.alert_id = a.id) ORDER BY a.id LIMIT ?2",
	[R_ACTIONS] = "SELECT id, alert_id, identity, incident_start_ms,"
	    " rule, type, service, instance, node, state, detail, attempt,"
	    " created_ms, updated_ms FROM actions"
	    " WHERE created_ms >= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
	// The columns of R_PENDING, for row_to_alert.
	[R_ALERT] = "SELECT a.id, a.identity, a.received_ms, a.fingerprint,"
	    " a.status, a.starts_ms, a.ends_ms, " ALERT_TEXT_COLS
	    " FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id"
	    " WHERE a.id = ?1",
	[R_ACTION_STATE] = "SELECT state FROM actions WHERE id = ?1",
};

enum op_kind {
	OP_ALERTS,		// asynchronous: callback on completion
	OP_ALERT_DONE,		// the rest block their caller
	OP_ACTION_INSERT,
	OP_ACTION_UPDATE,
	OP_META_SET,
	OP_RETAIN,		// always runs alone
	OP_BATCH,		// asynchronous: coord_journal_batch
};

// One row write of a batch. Strings are offsets into the batch's text
// (NO_STR: NULL), so the text may grow while entries are added.
enum bent_kind { BE_ALERT_DONE, BE_INSERT, BE_UPDATE };
#define NO_STR SIZE_MAX
struct bent {
	enum bent_kind kind;
	int64_t id;		// alert id (done), action id (insert, update)
	int64_t alert_id, incident_start_ms, ms;
	uint64_t identity;
	int attempt;
	size_t s[7];		// insert: rule type service instance node
				// state detail; done: outcome detail;
				// update: state detail
};

struct coord_journal_batch {
	struct coord_journal *j;
	struct bent *v;
	size_t n, cap;
	size_t n_actions;	// BE_INSERT and BE_UPDATE entries
	char *text;
	size_t len, tcap;
	unsigned releases;	// holds released once committed
	coord_journal_batch_fn fn;
	void *arg;
};

struct op {
	struct op *next;
	enum op_kind kind;
	int rv;
	bool done;		// blocking ops: set under j->lock
	union {
		struct {
			struct coord_alert_rec *recs;
			size_t n;
			coord_journal_done_fn fn;
			coord_journal_early_fn early; // may be NULL
			void *arg;
		} alerts;
		struct {
			int64_t id;
			const char *outcome;
			const char *detail;
			int64_t now_ms;
		} alert_done;
		struct {
			struct coord_action_rec *recs;
			size_t n;
		} actions;
		struct {
			int64_t id;
			const char *state;
			const char *detail;
			int64_t now_ms;
		} update;
		int64_t deleted;	// OP_RETAIN result
		struct {
			const char *key;
			const char *value;
		} meta;
		struct coord_journal_batch *batch; // OP_BATCH, owned
	} u;
};

struct coord_journal {
	char *path;
	char *wal_path;		// NULL for an in-memory journal
	bool shared;		// one connection: reads share the writer's
	size_t max_batch;
	size_t max_queue;
	int64_t retention_ms;
	int64_t retention_interval_ms;

	sqlite3 *wdb;		// writer thread only (after open)
	sqlite3_stmt *w[W_COUNT];
	sqlite3_stmt *wa[ALERT_GROUP + 1]; // [k]: k alerts' rows, k >= 2
	sqlite3_stmt *wo[OUTCOME_GROUP + 1]; // [k]: k outcomes, k >= 2
	// Writer thread only: the largest alert id it knows. SQLite gives
	// the rows of one INSERT consecutive ids (one above the table's
	// largest) unless that reached INT64_MAX; near it, alerts go one by
	// one.
	int64_t alert_top;
	int64_t last_retain_mono; // writer thread only
	char *wbuf;		// writer thread only: JSON of one alert's sets
	size_t wbuf_cap;
	// Writer thread only: the texts stored lately (see retain_texts),
	// texts stored since the last mark, and the running batch's texts
	// stored and found (see commit_batch).
	struct coord_textmemo *texts;
	int64_t texts_since_mark;
	int64_t text_mark_mono;	// when the last mark was written (or open)
	int64_t batch_texts_new, batch_texts_found;
	bool retain_more;	  // writer thread only
	int64_t retain_after;	  // writer thread only: the window's start

	pthread_mutex_t rlock;	// guards rdb and r[]
	sqlite3 *rdb;		// == wdb when shared
	sqlite3_stmt *r[R_COUNT];

	pthread_mutex_t lock;	// guards everything below
	pthread_cond_t wake;	// writer: work queued or stop
	pthread_cond_t opdone;	// blocked callers: an op completed
	struct op *head, *tail;
	size_t queued;		// alerts in the queue
	bool busy;		// a batch runs (writer, or inline: see below)
	bool stop;
	bool started;
	pthread_t writer;
	// The syncer (own_sync only): committed batches wait for it in a
	// ring, in commit order, and one fdatasync covers all it takes; the
	// writer goes on committing meanwhile and waits (sync_free) only
	// while the ring is full.
	bool own_sync;		// set before the threads start
	int wal_fd;		// the WAL file, for fdatasync; -1 if not
	pthread_cond_t sync_wake; // syncer: a batch in the ring or stop
	pthread_cond_t sync_free; // writer: room in the ring
	struct committed {
		struct op *batch;
		int rv;
		int64_t added[4];	// see commit_batch
		size_t nops;
		char why[256];
	} syncq[SYNC_QUEUE];
	size_t sync_head, sync_n; // the ring's oldest entry, its length
	// Writes promised by early callbacks and not committed yet: while
	// there are any, the syncer lingers (up to linger_ns) so that one
	// fdatasync covers them with the alerts that caused them. Counted
	// before the callback that may take one runs (run_batch), so a
	// release never comes before its hold.
	unsigned holds;
	int64_t holds_released; // releases so far
	int64_t linger_ns;	// sync_linger_us; 0: no lingering
	int stale_lingers;	// linger timeouts in a row without a release
	int64_t syncs;		// fdatasyncs of the WAL by the syncer
	int64_t linger_timeouts; // waits of linger() that ran out
	bool syncing;		// the syncer has batches out of the ring
	bool sync_stop;
	bool syncer_started;
	pthread_t syncer;
	// The checkpointer (file journals): its own connection, woken by the
	// writer's WAL hook.
	sqlite3 *cdb;
	pthread_cond_t ckpt_wake;
	int wal_frames;		// frames in the WAL after the last commit
	bool ckpt_waiting;	// for a quiet moment (see CKPT_FORCE)
	int64_t ckpt_waits;	// checkpoints that waited for one
	int ckpt_done;		// of those, copied by the last checkpoint
	int db_fd;		// the database file, for posix_fadvise; -1
	int64_t cache_tail;	// see CACHE_TAIL; < 0: no drops
	int64_t cache_trims;
	bool ckpt_stop;
	bool ckpt_started;
	pthread_t ckpter;
	// Pending alerts (see "pending alerts" below); writer thread only
	// once it runs.
	struct pend {
		int64_t *v;	// ids, ascending; decided ones negated
		size_t head;	// v[head] is the first entry not known dead
		size_t len, cap;
		size_t live;	// positive entries
	} pend;
	int64_t max_alert_id;	// highest alert id stored
	int64_t mark_saved;	// the decided-through mark in meta
	int64_t mark_saving;	// the mark the running batch writes, or -1
	int64_t mark_saved_mono;
	int64_t replay_from;	// the mark at open (replay reads past it)
	int64_t n_alerts, n_actions;
	int64_t next_action_id;	// handed out by reserve_action_ids()
	// Read at open from <path>-unsent (see sync_failed): action rows
	// whose commands never left the previous process.
	struct unsent {
		int64_t id, created_ms;
	} *unsent;
	size_t n_unsent;
	char *unsent_path;	// NULL for a shared (memory) journal
	int64_t commits, commit_errors;
	int64_t texts_new, texts_found;
	int64_t checkpoints, backstop_checkpoints; // under lock
	int64_t failing;	// consecutive failed commits
};

// The journal whose batch this thread is running, if any: a blocking
// write from a completion callback would wait for itself.
static _Thread_local const struct coord_journal *tl_running;

// SQLite result code -> negative errno.
static int
sql_errno(sqlite3 *db, int rc)
{
	int e;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_NOTADB:
		return -EINVAL;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CANTOPEN:
		e = db != NULL ? sqlite3_system_errno(db) : 0;
		return e > 0 ? -e : -EIO;
	default:
		return -EIO;
	}
}

static int64_t
u64_to_i64(uint64_t u)
{
	int64_t i;

	memcpy(&i, &u, sizeof(i));
	return i;
}

static uint64_t
i64_to_u64(int64_t i)
{
	uint64_t u;

	memcpy(&u, &i, sizeof(u));
	return u;
}

static void
bind_time(sqlite3_stmt *st, int idx, int64_t ms)
{
	if (ms == CM_TIME_NONE)
		sqlite3_bind_null(st, idx);
	else
		sqlite3_bind_int64(st, idx, ms);
}

// Binds a borrowed string (NULL binds SQL NULL). Callers reset and clear
// the bindings before the string goes away.
static void
bind_str(sqlite3_stmt *st, int idx, const char *s)
{
	sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

// The same for the n bytes at s (not NUL-terminated, or known length:
// SQLite need not measure it).
static void
bind_strn(sqlite3_stmt *st, int idx, const char *s, size_t n)
{
	sqlite3_bind_text64(st, idx, s, n, SQLITE_STATIC, SQLITE_UTF8);
}

// Steps a statement that returns no row; resets it and clears bindings.
// Returns 0 or a negative errno.
static int
step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return sql_errno(db, rc);
}

// step_done for a statement that has no parameter, or whose every
// parameter its caller binds before each step: its bindings are left as
// they are (clearing them walks every parameter, ~500 instructions for
// an alert INSERT's 36). Borrowed strings may outlive the binding: SQLite
// reads a binding only while stepping, and none is stepped unbound.
static int
step_rebound(sqlite3 *db, sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return sql_errno(db, rc);
}

// Runs a PRAGMA (or any one-row query) and copies its first column.
static int
query_text(sqlite3 *db, const char *sql, char *buf, size_t n)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int rc;

	buf[0] = '\0';
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_errno(db, rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		snprintf(buf, n, "%s", t != NULL ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return sql_errno(db, rc);
}

static int
query_int(sqlite3 *db, const char *sql, int64_t *ret)
{
	char buf[32];
	int rv;

	rv = query_text(db, sql, buf, sizeof(buf));
	if (rv == 0)
		*ret = strtoll(buf, NULL, 10);
	return rv;
}

// ---- opening -----------------------------------------------------------

static int
fail_open(struct coord_journal *j, sqlite3 *db, int rv, const char *what,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s", j->path, what,
	    db != NULL ? sqlite3_errmsg(db) : strerror(-rv));
	return rv;
}

// Before SQLite's first use: no memory statistics (a global mutex taken
// on every allocation). Refused, harmlessly, when SQLite already runs.
static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

// Each connection is used by one thread at a time (the writer's by the
// writer, or by whoever holds rlock on a shared one; the read connection
// under rlock; the checkpointer's by its thread), so SQLite's own
// per-call mutex is not needed.
static int
open_conn(struct coord_journal *j, sqlite3 **ret, bool create, char *err,
    size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int rc, rv;

	pthread_once(&once, sqlite_setup);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(j->shared ? ":memory:" : j->path, ret, flags,
	    NULL);
	if (rc != SQLITE_OK) {
		rv = sql_errno(*ret, rc);
		if (rv == 0)
			rv = -EIO;
		fail_open(j, *ret, rv, "cannot open", err, errlen);
		sqlite3_close(*ret);
		*ret = NULL;
		return rv;
	}
	sqlite3_extended_result_codes(*ret, 1);
	sqlite3_busy_timeout(*ret, BUSY_TIMEOUT_MS);
	return 0;
}

static int
set_pragmas(struct coord_journal *j, const struct coord_journal_opts *o,
    char *err, size_t errlen)
{
	char mode[16], sql[64];
	int rv;

	rv = query_text(j->wdb, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
	if (rv < 0)
		return fail_open(j, j->wdb, rv, "journal_mode", err, errlen);
	if (!j->shared && strcmp(mode, "wal") != 0)
		cm_warn("journal.no_wal", "path=%s mode=%s", cm_q(j->path),
		    cm_q(mode));
	snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s",
	    o->sync_full ? "FULL" : "NORMAL");
	rv = sqlite3_exec(j->wdb, sql, NULL, NULL, NULL);
	if (rv != SQLITE_OK)
		return fail_open(j, j->wdb, sql_errno(j->wdb, rv),
		    "synchronous", err, errlen);
	return 0;
}

// The size cap (max_page_count), set once the schema is current: a
// migration rewrites the alerts and may need a third more pages than the
// file holds, and a journal near its cap must still open after an
// upgrade. SQLite keeps the cap at the current size if that is larger.
static int
set_max_bytes(struct coord_journal *j, const struct coord_journal_opts *o,
    char *err, size_t errlen)
{
	char mode[16], sql[64];
	int64_t page_size = 0;
	int rv;

	if (o->max_bytes <= 0)
		return 0;
	rv = query_int(j->wdb, "PRAGMA page_size", &page_size);
	if (rv < 0 || page_size <= 0)
		return fail_open(j, j->wdb, rv < 0 ? rv : -EIO, "page_size",
		    err, errlen);
	// SQLite keeps the limit at the current size if that is larger.
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld",
	    (long long)(o->max_bytes / page_size > 1 ?
	    o->max_bytes / page_size : 1));
	rv = query_text(j->wdb, sql, mode, sizeof(mode));
	if (rv < 0)
		return fail_open(j, j->wdb, rv, "max_page_count", err,
		    errlen);
	return 0;
}

static int
create_schema(struct coord_journal *j, char *err, size_t errlen)
{
	int64_t version = 0;
	char sql[64];
	int rc, rv;

	rv = query_int(j->wdb, "PRAGMA user_version", &version);
	if (rv < 0)
		return fail_open(j, j->wdb, rv, "read schema version", err,
		    errlen);
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than "
		    "this build's (%d)", j->path, (long long)version,
		    SCHEMA_VERSION);
		return -ENOTSUP;
	}
	if (version == SCHEMA_VERSION)
		return 0;
	// Version 0: a new file. Older versions migrate here, step by step;
	// schema_sql then adds what they lack.
	rc = sqlite3_exec(j->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK && version >= 1)
		cm_notice("journal.migrate", "path=%s from=%lld to=%d",
		    cm_q(j->path), (long long)version, SCHEMA_VERSION);
	if (rc == SQLITE_OK && version >= 1 && version < 3)
		rc = sqlite3_exec(j->wdb, migrate_to_3_sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK && version >= 1 && version < 4)
		rc = sqlite3_exec(j->wdb, migrate_to_4_sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(j->wdb, schema_sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d",
		    SCHEMA_VERSION);
		rc = sqlite3_exec(j->wdb, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(j->wdb, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rv = fail_open(j, j->wdb, sql_errno(j->wdb, rc),
		    "create schema", err, errlen);
		if (!sqlite3_get_autocommit(j->wdb))
			(void)sqlite3_exec(j->wdb, "ROLLBACK", NULL, NULL,
			    NULL);
		return rv;
	}
	return 0;
}

// Prepares wsql[one] (an INSERT ... VALUES of one row of `cols` values)
// with `rows` lists of values instead of one. The first `own` values of
// each list are its own parameters (row r's c-th is ?(r * own + c + 1));
// the cols - own after them are shared by all rows, bound once after the
// rows' own (?(rows * own + 1) on). With rows == 1 that is wsql[one]'s
// own numbering.
static int
prepare_rows(struct coord_journal *j, int one, int rows, int cols, int own,
    sqlite3_stmt **st, char *err, size_t errlen)
{
	const char *head = wsql[one];
	char sql[2048];
	size_t o;
	int rc;

	o = (size_t)snprintf(sql, sizeof(sql), "%.*s",
	    (int)(strstr(head, " VALUES") - head), head);
	for (int r = 0; r < rows; r++) {
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s(",
		    r == 0 ? " VALUES" : ",");
		for (int c = 0; c < cols; c++)
			o += (size_t)snprintf(sql + o, sizeof(sql) - o,
			    "%s?%d", c == 0 ? "" : ", ", c < own ?
			    r * own + c + 1 : rows * own + (c - own) + 1);
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, ")");
	}
	if (o >= sizeof(sql))
		return fail_open(j, j->wdb, -E2BIG, "prepare", err, errlen);
	rc = sqlite3_prepare_v3(j->wdb, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    st, NULL);
	if (rc != SQLITE_OK)
		return fail_open(j, j->wdb, sql_errno(j->wdb, rc), "prepare",
		    err, errlen);
	return 0;
}

static int
prepare_all(struct coord_journal *j, char *err, size_t errlen)
{
	int i, rc;

	for (i = 0; i < W_COUNT; i++) {
		if (wsql[i] == NULL) // made below
			continue;
		rc = sqlite3_prepare_v3(j->wdb, wsql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &j->w[i], NULL);
		if (rc != SQLITE_OK)
			return fail_open(j, j->wdb, sql_errno(j->wdb, rc),
			    "prepare", err, errlen);
	}
	rc = 0;
	for (i = 2; i <= OUTCOME_GROUP && rc == 0; i++)
		rc = prepare_rows(j, W_OUTCOME_PENDING, i, 4, 4, &j->wo[i],
		    err, errlen);
	for (i = 2; i <= ALERT_GROUP && rc == 0; i++)
		rc = prepare_rows(j, W_ALERT_INSERT, i, ALERT_COLS,
		    ALERT_OWN_COLS, &j->wa[i], err, errlen);
	if (rc < 0)
		return rc;
	for (i = 0; i < R_COUNT; i++) {
		rc = sqlite3_prepare_v3(j->rdb, rsql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &j->r[i], NULL);
		if (rc != SQLITE_OK)
			return fail_open(j, j->rdb, sql_errno(j->rdb, rc),
			    "prepare", err, errlen);
	}
	return 0;
}

static void *writer_main(void *arg);
static void *syncer_main(void *arg);
static int pend_load(struct coord_journal *j);
static int64_t pend_mark(const struct coord_journal *j);
static int mark_write(struct coord_journal *j, int64_t mark);
static void *ckpt_main(void *arg);
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames);

// sync_full on a file: open the WAL for fdatasync and let COMMIT skip its
// own sync (see the top of the file). On any failure the connection stays
// at synchronous=FULL and the writer completes batches itself.
static void
start_own_sync(struct coord_journal *j)
{
	struct stat st;

	if (j->wal_path == NULL)
		return;
	j->wal_fd = open(j->wal_path, O_RDONLY | O_CLOEXEC);
	if (j->wal_fd < 0 || fstat(j->wal_fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) ||
	    sqlite3_exec(j->wdb, "PRAGMA synchronous=NORMAL", NULL, NULL,
	    NULL) != SQLITE_OK) {
		cm_warn("journal.own_sync_off", "path=%s err=%s",
		    cm_q(j->wal_path), cm_q(strerror(errno)));
		if (j->wal_fd >= 0)
			close(j->wal_fd);
		j->wal_fd = -1;
		return;
	}
	j->own_sync = true;
}

// Reads the rows sync_failed() listed, "id created_ms" each (at most
// UNSENT_MAX; anything else in the file ends the list). Without the
// file, or memory, none.
static void
unsent_load(struct coord_journal *j)
{
	long long id, ms;
	FILE *f;

	if (j->unsent_path == NULL || (f = fopen(j->unsent_path, "re")) == NULL)
		return;
	j->unsent = calloc(UNSENT_MAX, sizeof(*j->unsent));
	while (j->unsent != NULL && j->n_unsent < UNSENT_MAX &&
	    fscanf(f, "%lld %lld", &id, &ms) == 2 && id > 0)
		j->unsent[j->n_unsent++] = (struct unsent){ id, ms };
	fclose(f);
	cm_notice("journal.unsent", "path=%s actions=%zu detail=\"rows "
	    "committed by the previous process whose sync failed: their "
	    "commands never left\"", cm_q(j->unsent_path), j->n_unsent);
}

static int
init_journal(struct coord_journal *j, const char *path,
    const struct coord_journal_opts *o)
{
	j->path = strdup(path);
	if (j->path == NULL)
		return -ENOMEM;
	j->shared = strcmp(path, ":memory:") == 0 || path[0] == '\0';
	if (!j->shared && asprintf(&j->wal_path, "%s-wal", path) < 0) {
		j->wal_path = NULL;
		return -ENOMEM;
	}
	if (!j->shared &&
	    asprintf(&j->unsent_path, "%s-unsent", path) < 0) {
		j->unsent_path = NULL;
		return -ENOMEM;
	}
	unsent_load(j);
	j->max_batch = o->max_batch > 0 ? o->max_batch : DEFAULT_MAX_BATCH;
	j->max_queue = o->max_queue > 0 ? o->max_queue : DEFAULT_MAX_QUEUE;
	j->retention_ms = o->retention_ms > 0 ? o->retention_ms : 0;
	j->retention_interval_ms = o->retention_interval_ms > 0 ?
	    o->retention_interval_ms : DEFAULT_RETENTION_INTERVAL_MS;
	// The first automatic pass comes one interval after opening, so a
	// restart does not add a large delete to the first webhook's commit.
	j->last_retain_mono = cm_mono_ms();
	j->texts = coord_textmemo_new();
	if (j->texts == NULL)
		return -ENOMEM;
	// The previous process may have stored texts after its last mark.
	j->texts_since_mark = 1;
	j->text_mark_mono = cm_mono_ms();
	return 0;
}

int
coord_journal_open(struct coord_journal **ret, const char *path,
    const struct coord_journal_opts *opts, char *err, size_t errlen)
{
	static const struct coord_journal_opts defaults = {
		.sync_full = true,
	};
	struct coord_journal *j;
	pthread_condattr_t ca;
	int64_t dummy;
	int rv;

	if (errlen > 0)
		err[0] = '\0';
	if (ret == NULL || path == NULL) {
		snprintf(err, errlen, "no path");
		return -EINVAL;
	}
	*ret = NULL;
	if (opts == NULL)
		opts = &defaults;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	pthread_mutex_init(&j->rlock, NULL);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_cond_init(&j->opdone, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->sync_wake, &ca); // timed: the syncer's linger
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&j->sync_free, NULL);
	pthread_cond_init(&j->ckpt_wake, NULL);
	j->wal_fd = -1;
	j->db_fd = -1;

	rv = init_journal(j, path, opts);
	if (rv < 0) {
		snprintf(err, errlen, "%s", strerror(-rv));
		goto fail;
	}
	rv = open_conn(j, &j->wdb, true, err, errlen);
	if (rv < 0)
		goto fail;
	rv = set_pragmas(j, opts, err, errlen);
	if (rv < 0)
		goto fail;
	rv = create_schema(j, err, errlen);
	if (rv < 0)
		goto fail;
	rv = set_max_bytes(j, opts, err, errlen);
	if (rv < 0)
		goto fail;
	if (j->shared) {
		j->rdb = j->wdb;
	} else {
		rv = open_conn(j, &j->rdb, false, err, errlen);
		if (rv < 0)
			goto fail;
		(void)sqlite3_exec(j->rdb, "PRAGMA query_only=1", NULL, NULL,
		    NULL);
	}
	rv = prepare_all(j, err, errlen);
	if (rv < 0)
		goto fail;
	// Counting the narrow outcome rows is much cheaper than the alerts'.
	rv = pend_load(j);
	if (rv == 0)
		rv = query_int(j->wdb, "SELECT coalesce(max(id), 0) FROM"
		    " alerts_in", &j->alert_top);
	if (rv == 0)
		rv = query_int(j->wdb, "SELECT count(*) FROM alert_outcomes",
		    &j->n_alerts);
	if (rv == 0)
		j->n_alerts += (int64_t)j->pend.live;
	if (rv == 0)
		rv = query_int(j->wdb, "SELECT count(*) FROM actions",
		    &j->n_actions);
	if (rv == 0)
		rv = query_int(j->wdb, "SELECT coalesce(max(id), 0) + 1"
		    " FROM actions", &j->next_action_id);
	if (rv < 0) {
		fail_open(j, j->wdb, rv, "count rows", err, errlen);
		goto fail;
	}
	if (opts->sync_full && !j->shared)
		start_own_sync(j);
	if (!j->shared) {
		rv = open_conn(j, &j->cdb, false, err, errlen);
		// A read makes the connection open the WAL; until then a
		// checkpoint on it does nothing.
		if (rv == 0) {
			rv = query_int(j->cdb, "PRAGMA user_version", &dummy);
			if (rv < 0)
				fail_open(j, j->cdb, rv, "checkpoint connection",
				    err, errlen);
		}
		if (rv < 0)
			goto fail;
		j->cache_tail = opts->cache_tail != 0 ? opts->cache_tail :
		    CACHE_TAIL;
		j->linger_ns = opts->sync_linger_us < 0 ? 0 : 1000 *
		    (opts->sync_linger_us > 0 ? opts->sync_linger_us :
		    SYNC_LINGER_US);
		// Without it the pages stay cached, as they always did.
		if (j->cache_tail >= 0)
			j->db_fd = open(j->path, O_RDONLY | O_CLOEXEC);
		rv = -pthread_create(&j->ckpter, NULL, ckpt_main, j);
		if (rv < 0) {
			snprintf(err, errlen, "checkpoint thread: %s",
			    strerror(-rv));
			goto fail;
		}
		j->ckpt_started = true;
		sqlite3_wal_hook(j->wdb, wal_hook, j);
	}
	if (j->own_sync) {
		rv = -pthread_create(&j->syncer, NULL, syncer_main, j);
		if (rv < 0) {
			snprintf(err, errlen, "syncer thread: %s",
			    strerror(-rv));
			goto fail;
		}
		j->syncer_started = true;
	}
	rv = -pthread_create(&j->writer, NULL, writer_main, j);
	if (rv < 0) {
		snprintf(err, errlen, "writer thread: %s", strerror(-rv));
		goto fail;
	}
	j->started = true;
	cm_info("journal.open", "path=%s alerts=%lld actions=%lld sync=%s",
	    cm_q(path), (long long)j->n_alerts, (long long)j->n_actions,
	    opts->sync_full ? "full" : "normal");
	*ret = j;
	return 0;
fail:
	coord_journal_close(j);
	return rv;
}

// Sets one of the journal's threads' stop flag under the lock, wakes it
// and waits for it to end.
static void
stop_thread(struct coord_journal *j, bool *stop, pthread_cond_t *wake,
    pthread_t th)
{
	pthread_mutex_lock(&j->lock);
	*stop = true;
	pthread_cond_signal(wake);
	pthread_mutex_unlock(&j->lock);
	pthread_join(th, NULL);
}

void
coord_journal_close(struct coord_journal *j)
{
	int i;

	if (j == NULL)
		return;
	if (j->started)
		stop_thread(j, &j->stop, &j->wake, j->writer);
	// After the writer: its last batch is in the syncer's ring or done.
	if (j->syncer_started)
		stop_thread(j, &j->sync_stop, &j->sync_wake, j->syncer);
	if (j->ckpt_started)
		stop_thread(j, &j->ckpt_stop, &j->ckpt_wake, j->ckpter);
	// The last mark, so the next start reads from here (no thread
	// runs any more). Not fatal when it fails: it only reads more.
	if (j->started && j->w[W_META_SET] != NULL &&
	    pend_mark(j) != j->mark_saved)
		(void)mark_write(j, pend_mark(j));
	if (j->wal_fd >= 0)
		close(j->wal_fd);
	if (j->db_fd >= 0)
		close(j->db_fd);
	for (i = 0; i < W_COUNT; i++)
		sqlite3_finalize(j->w[i]);
	for (i = 0; i <= ALERT_GROUP; i++)
		sqlite3_finalize(j->wa[i]);
	for (i = 0; i <= OUTCOME_GROUP; i++)
		sqlite3_finalize(j->wo[i]);
	for (i = 0; i < R_COUNT; i++)
		sqlite3_finalize(j->r[i]);
	if (j->rdb != NULL && j->rdb != j->wdb)
		sqlite3_close(j->rdb);
	sqlite3_close(j->cdb);
	sqlite3_close(j->wdb);
	pthread_cond_destroy(&j->opdone);
	pthread_cond_destroy(&j->sync_free);
	pthread_cond_destroy(&j->sync_wake);
	pthread_cond_destroy(&j->ckpt_wake);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->rlock);
	free(j->pend.v);
	free(j->unsent);
	free(j->unsent_path);
	free(j->wbuf);
	coord_textmemo_free(j->texts);
	free(j->wal_path);
	free(j->path);
	free(j);
}

// ---- the writer --------------------------------------------------------

static const char *
kvs_find(const struct coord_kvs *kvs, const char *key)
{
	size_t i;

	for (i = 0; i < kvs->n; i++)
		if (strcmp(kvs->v[i].key, key) == 0)
			return kvs->v[i].val;
	return NULL;
}

// Bytes json_str must escape: control characters (and the terminating
// NUL), '"' and '\\'.
static const bool json_special[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

// Writes s as a JSON string (quotes included) at o; returns the new end.
// Room: 6 bytes per input byte + 2. Escapes what JSON requires (", \\ and
// control characters); UTF-8 goes through as it is (the parser checked it).
// Runs of plain bytes are copied whole.
static char *
json_str(char *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run;
	unsigned char c;

	*o++ = '"';
	for (;;) {
		for (run = s; !json_special[(unsigned char)*s]; s++)
			;
		memcpy(o, run, (size_t)(s - run));
		o += s - run;
		c = (unsigned char)*s++;
		if (c == '\0')
			break;
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	return o;
}

// Room kvs_write needs for the set (worst case: every byte escaped).
static size_t
kvs_room(const struct coord_kvs *kvs)
{
	size_t room = 3;

	for (size_t i = 0; i < kvs->n; i++)
		room += 6 * (strlen(kvs->v[i].key) + strlen(kvs->v[i].val)) + 6;
	return room;
}

// Writes the set as a JSON object text, keys in their (sorted) order,
// NUL-terminated, at o; returns the byte after the NUL. This is the text
// coord_alert.h describes for labels_json and annotations_json.
static char *
kvs_write(char *o, const struct coord_kvs *kvs)
{
	*o++ = '{';
	for (size_t i = 0; i < kvs->n; i++) {
		if (i > 0)
			*o++ = ',';
		o = json_str(o, kvs->v[i].key);
		*o++ = ':';
		o = json_str(o, kvs->v[i].val);
	}
	*o++ = '}';
	*o++ = '\0';
	return o;
}

// The JSON text of a set: the alert's own (see coord_alert.h) when it has
// it, else written by kvs_write at *o (which moves past it).
static void
set_json(const char *own, size_t own_len, const struct coord_kvs *kvs,
    char **o, const char **ret, size_t *ret_len)
{
	if (own != NULL) {
		*ret = own;
		*ret_len = own_len;
		return;
	}
	*ret = *o;
	*o = kvs_write(*o, kvs);
	*ret_len = (size_t)(*o - *ret) - 1;
}

// The part of t at i: the string p, or SQL NULL for p NULL.
static void
text_part(struct coord_text *t, int i, const char *p)
{
	t->part[i] = p;
	t->len[i] = p != NULL ? strlen(p) : 0;
}

// Sets *id to the alert_texts row that holds the alert's texts: one the
// memo knows holds them, else a new one. Labels and annotations are the
// alert's own JSON text when the parser found it in the body (what
// Alertmanager sends); else they are encoded as JSON into the writer's
// scratch buffer (kept between alerts: no allocation once it is large
// enough).
static int
alert_text(struct coord_journal *j, const struct coord_alert_rec *rec,
    int64_t *id)
{
	const struct coord_alert *a = rec->alert;
	sqlite3_stmt *st = j->w[W_TEXT_INSERT];
	struct coord_text t;
	size_t room = 0;
	uint64_t key;
	char *o;
	int rv;

	if (a->labels_json == NULL)
		room += kvs_room(&a->labels);
	if (a->annotations_json == NULL)
		room += kvs_room(&a->annotations);
	if (room > j->wbuf_cap) {
		o = realloc(j->wbuf, room);
		if (o == NULL)
			return -ENOMEM;
		j->wbuf = o;
		j->wbuf_cap = room;
	}
	o = j->wbuf;
	set_json(a->labels_json, a->labels_json_len, &a->labels, &o,
	    &t.part[0], &t.len[0]);
	set_json(a->annotations_json, a->annotations_json_len,
	    &a->annotations, &o, &t.part[1], &t.len[1]);
	text_part(&t, 2, a->generator_url != NULL ? a->generator_url : "");
	text_part(&t, 3, rec->receiver);
	text_part(&t, 4, rec->group_key);
	// The slot: Alertmanager's fingerprint is a hash of the whole label
	// set (the identity leaves out the labels it is told to ignore); an
	// alert routed to two receivers (continue: true) comes in two groups.
	key = a->fingerprint != NULL && a->fingerprint[0] != '\0' ?
	    cm_fnv1a(CM_FNV_OFFSET, a->fingerprint) : rec->identity;
	key = cm_fnv1a(key, rec->receiver != NULL ? rec->receiver : "");
	key = cm_fnv1a(key, rec->group_key != NULL ? rec->group_key : "");
	*id = coord_textmemo_find(j->texts, key, &t);
	if (*id > 0) {
		j->batch_texts_found++;
		return 0;
	}
	for (int i = 0; i < COORD_TEXT_PARTS; i++)
		bind_strn(st, i + 1, t.part[i], t.len[i]);
	rv = step_rebound(j->wdb, st);
	if (rv < 0)
		return rv;
	*id = sqlite3_last_insert_rowid(j->wdb);
	coord_textmemo_put(j->texts, key, &t, *id);
	j->texts_since_mark++;
	j->batch_texts_new++;
	return 0;
}

// Inserts the k alerts' rows (1 <= k <= ALERT_GROUP) with one statement
// and sets their ids.
static int
insert_alerts(struct coord_journal *j, struct coord_alert_rec *recs,
    size_t k)
{
	sqlite3_stmt *st = k == 1 ? j->w[W_ALERT_INSERT] : j->wa[k];
	int64_t last, text;
	int rv;

	for (size_t i = 0; i < k; i++) {
		const struct coord_alert_rec *rec = &recs[i];
		const struct coord_alert *a = rec->alert;
		int c = (int)i * ALERT_OWN_COLS;

		rv = alert_text(j, rec, &text);
		if (rv < 0)
			return rv;
		sqlite3_bind_int64(st, c + 1, rec->received_ms);
		sqlite3_bind_int64(st, c + 2, u64_to_i64(rec->identity));
		bind_str(st, c + 3, a->fingerprint != NULL ? a->fingerprint :
		    "");
		if (a->firing)
			bind_strn(st, c + 4, "firing", 6);
		else
			bind_strn(st, c + 4, "resolved", 8);
		bind_time(st, c + 5, a->starts_ms);
		bind_time(st, c + 6, a->ends_ms);
		bind_str(st, c + 7, kvs_find(&a->labels, "alertname"));
		sqlite3_bind_int64(st, c + 8, text);
	}
	// The row's own labels, annotations and generator URL: empty.
	for (int c = ALERT_OWN_COLS; c < ALERT_COLS; c++)
		bind_strn(st, (int)k * ALERT_OWN_COLS + (c - ALERT_OWN_COLS) +
		    1, "", 0);
	rv = step_rebound(j->wdb, st);
	if (rv < 0)
		return rv;
	last = sqlite3_last_insert_rowid(j->wdb);
	for (size_t i = 0; i < k; i++)
		recs[i].id = last - (int64_t)(k - 1 - i);
	if (last > j->alert_top)
		j->alert_top = last;
	return 0;
}

// A webhook's n alerts, up to ALERT_GROUP to a statement (one by one
// when the ids come near INT64_MAX: see alert_top).
static int
insert_alert_set(struct coord_journal *j, struct coord_alert_rec *recs,
    size_t n)
{
	size_t i = 0, k;
	int rv = 0;

	while (i < n && rv == 0) {
		k = n - i < ALERT_GROUP ? n - i : ALERT_GROUP;
		if (j->alert_top >= INT64_MAX - 2 * ALERT_GROUP)
			k = 1;
		rv = insert_alerts(j, recs + i, k);
		i += k;
	}
	return rv;
}

static int
insert_action(struct coord_journal *j, struct coord_action_rec *r)
{
	sqlite3_stmt *st = j->w[W_ACTION_INSERT];

	sqlite3_bind_int64(st, 1, r->alert_id);
	sqlite3_bind_int64(st, 2, u64_to_i64(r->identity));
	sqlite3_bind_int64(st, 3, r->incident_start_ms);
	bind_str(st, 4, r->rule);
	bind_str(st, 5, r->type);
	bind_str(st, 6, r->service);
	bind_str(st, 7, r->instance);
	bind_str(st, 8, r->node);
	bind_str(st, 9, r->state);
	bind_str(st, 10, r->detail);
	sqlite3_bind_int(st, 11, r->attempt);
	sqlite3_bind_int64(st, 12, r->created_ms);
	sqlite3_bind_int64(st, 13, r->id); // reserved when queued
	return step_rebound(j->wdb, st);
}

static const char *
bstr(const struct coord_journal_batch *b, size_t off)
{
	return off == NO_STR ? NULL : b->text + off;
}

// ---- pending alerts ----------------------------------------------------
//
// The writer keeps the ids of the alerts stored without an outcome yet, in
// id order, and from them the decided-through mark: every alert with an id
// up to it has its outcome (or was deleted by retention). The mark goes to
// meta inside a batch now and then (MARK_SAVE_MS) and at close; a restart
// loads the set from the alerts after the saved mark, and replay reads
// only those, so neither grows with the journal's history. A saved mark
// is never ahead of the truth: it is computed before the batch that
// writes it.

static int
pend_add(struct pend *p, int64_t id)
{
	int64_t *v;
	size_t cap;

	if (p->len == p->cap) {
		cap = p->cap > 0 ? p->cap * 2 : 256;
		v = realloc(p->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	// Ids grow, so this is an append; kept sorted whatever comes.
	size_t i = p->len;

	while (i > p->head && (p->v[i - 1] < 0 ? -p->v[i - 1] :
	    p->v[i - 1]) > id) {
		p->v[i] = p->v[i - 1];
		i--;
	}
	p->v[i] = id;
	p->len++;
	p->live++;
	return 0;
}

// Drops every dead entry.
static void
pend_compact(struct pend *p)
{
	size_t i, n = 0;

	for (i = p->head; i < p->len; i++)
		if (p->v[i] > 0)
			p->v[n++] = p->v[i];
	p->head = 0;
	p->len = n;
}

// Drops the dead entries: from the front as soon as they lead, all of
// them once they outnumber the live ones (a long-pending alert keeps
// later decided ones behind it).
static void
pend_tidy(struct pend *p)
{
	while (p->head < p->len && p->v[p->head] < 0)
		p->head++;
	if (p->head == p->len) {
		p->head = p->len = 0;
		return;
	}
	if (p->len - p->head - p->live <= p->live + 64 && p->head < 4096)
		return;
	pend_compact(p);
}

// The entry of id (live or dead), or NULL.
static int64_t *
pend_find(const struct pend *p, int64_t id)
{
	size_t lo = p->head, hi = p->len, mid;
	int64_t x;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		x = p->v[mid] < 0 ? -p->v[mid] : p->v[mid];
		if (x == id)
			return &p->v[mid];
		if (x < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool
pend_has(const struct pend *p, int64_t id)
{
	const int64_t *e = pend_find(p, id);

	return e != NULL && *e > 0;
}

// Marks id decided (nothing when it is not pending).
static void
pend_del(struct pend *p, int64_t id)
{
	int64_t *e = pend_find(p, id);

	if (e != NULL && *e > 0) {
		*e = -id;
		p->live--;
		pend_tidy(p);
	}
}

// Forgets every entry (their rows were deleted).
static void
pend_clear(struct pend *p)
{
	p->head = p->len = p->live = 0;
}

static int64_t
pend_mark(const struct coord_journal *j)
{
	return j->pend.live == 0 ? j->max_alert_id :
	    j->pend.v[j->pend.head] - 1;
}

// After a committed batch (writer): stored alerts join the set, decided
// ones leave it. An id the set cannot take (ENOMEM) only makes the mark
// run ahead of that one alert: it is logged, and replay after a restart
// may then miss it.
static void
pend_apply(struct coord_journal *j, const struct op *batch)
{
	const struct op *o;
	size_t i;

	for (o = batch; o != NULL; o = o->next) {
		switch (o->kind) {
		case OP_ALERTS:
			for (i = 0; i < o->u.alerts.n; i++) {
				int64_t id = o->u.alerts.recs[i].id;

				if (pend_add(&j->pend, id) < 0)
					cm_err("journal.pending_nomem", "id=%lld",
					    (long long)id);
				if (id > j->max_alert_id)
					j->max_alert_id = id;
			}
			break;
		case OP_ALERT_DONE:
			pend_del(&j->pend, o->u.alert_done.id);
			break;
		case OP_BATCH:
			for (i = 0; i < o->u.batch->n; i++)
				if (o->u.batch->v[i].kind == BE_ALERT_DONE)
					pend_del(&j->pend, o->u.batch->v[i].id);
			break;
		default:
			break;
		}
	}
}

// Inside a batch's transaction: writes the mark when it moved and the
// last write is old enough. Returns 0 or the database failure.
static int
mark_write(struct coord_journal *j, int64_t mark)
{
	sqlite3_stmt *st = j->w[W_META_SET];
	char val[24];

	snprintf(val, sizeof(val), "%lld", (long long)mark);
	bind_str(st, 1, MARK_KEY);
	bind_str(st, 2, val);
	return step_done(j->wdb, st);
}

static int
mark_maybe_save(struct coord_journal *j)
{
	int64_t mark = pend_mark(j);

	j->mark_saving = -1;
	if (mark == j->mark_saved ||
	    cm_mono_ms() - j->mark_saved_mono < MARK_SAVE_MS)
		return 0;
	j->mark_saving = mark;
	return mark_write(j, mark);
}

// At open (no thread runs yet): the saved mark, the pending alerts after
// it, the highest id.
static int
pend_load(struct coord_journal *j)
{
	sqlite3_stmt *st = NULL;
	int rc, rv;

	rv = query_int(j->wdb, "SELECT coalesce((SELECT value FROM meta"
	    " WHERE key = '" MARK_KEY "'), 0)", &j->mark_saved);
	if (rv == 0)
		rv = query_int(j->wdb, "SELECT coalesce(max(id), 0)"
		    " FROM alerts_in", &j->max_alert_id);
	if (rv < 0)
		return rv;
	if (j->mark_saved < 0 || j->mark_saved > j->max_alert_id)
		j->mark_saved = 0;	// not ours: read everything
	j->replay_from = j->mark_saved;
	rc = sqlite3_prepare_v2(j->wdb, "SELECT id FROM alerts_in a"
	    " WHERE id > ?1 AND NOT EXISTS(SELECT 1 FROM alert_outcomes o"
	    " WHERE o.alert_id = a.id) ORDER BY id", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_errno(j->wdb, rc);
	sqlite3_bind_int64(st, 1, j->mark_saved);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && rv == 0)
		rv = pend_add(&j->pend, sqlite3_column_int64(st, 0));
	if (rv == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		rv = sql_errno(j->wdb, rc);
	sqlite3_finalize(st);
	j->mark_saved_mono = cm_mono_ms();
	return rv;
}

// One row's outcome/state update: W_ALERT_DONE or W_ACTION_UPDATE with
// (id, text, detail, now). Returns 0, -ENOENT when no row has that id, or
// the database failure.
static int
update_row(struct coord_journal *j, int stmt, int64_t id, const char *text,
    const char *detail, int64_t now_ms)
{
	sqlite3_stmt *st = j->w[stmt];
	int rv;

	sqlite3_bind_int64(st, 1, id);
	bind_str(st, 2, text);
	bind_str(st, 3, detail);
	sqlite3_bind_int64(st, 4, now_ms);
	rv = step_rebound(j->wdb, st);
	if (rv == 0 && sqlite3_changes(j->wdb) == 0)
		return -ENOENT;
	return rv;
}

// How many entries of b from i on (up to OUTCOME_GROUP) are outcomes of
// alerts known to be stored and pending (W_OUTCOME_PENDING's rows).
static size_t
outcome_run(const struct coord_journal *j,
    const struct coord_journal_batch *b, size_t i)
{
	size_t k = i;

	while (k < b->n && k - i < OUTCOME_GROUP &&
	    b->v[k].kind == BE_ALERT_DONE && pend_has(&j->pend, b->v[k].id))
		k++;
	return k - i;
}

// Writes those n outcomes (2 <= n <= OUTCOME_GROUP) with one statement
// (rows of one id go in order: the last one stays, as one by one).
// Returns 0 or the database failure.
static int
outcome_group(struct coord_journal *j, const struct coord_journal_batch *b,
    size_t i, size_t n)
{
	sqlite3_stmt *st = j->wo[n];

	for (int k = 0; k < (int)n; k++) {
		const struct bent *be = &b->v[i + (size_t)k];

		sqlite3_bind_int64(st, 4 * k + 1, be->id);
		bind_str(st, 4 * k + 2, bstr(b, be->s[0]));
		bind_str(st, 4 * k + 3, bstr(b, be->s[1]));
		sqlite3_bind_int64(st, 4 * k + 4, be->ms);
	}
	return step_rebound(j->wdb, st);
}

// The rows of one OP_BATCH, in order. Returns 0 or the database failure
// that dooms the transaction; counts inserted actions into *added.
static int
exec_batch(struct coord_journal *j, const struct coord_journal_batch *b,
    int64_t *added)
{
	int rv = 0;

	for (size_t i = 0; i < b->n && rv == 0; i++) {
		const struct bent *be = &b->v[i];
		struct coord_action_rec r;
		size_t run = outcome_run(j, b, i);

		if (run >= 2) {
			rv = outcome_group(j, b, i, run);
			i += run - 1;
			continue;
		}
		switch (be->kind) {
		case BE_ALERT_DONE: // a row gone meanwhile (-ENOENT) is fine
			rv = update_row(j, pend_has(&j->pend, be->id) ?
			    W_OUTCOME_PENDING : W_ALERT_DONE, be->id,
			    bstr(b, be->s[0]), bstr(b, be->s[1]), be->ms);
			if (rv == -ENOENT)
				rv = 0;
			break;
		case BE_INSERT:
			r = (struct coord_action_rec){
				.id = be->id,
				.alert_id = be->alert_id,
				.identity = be->identity,
				.incident_start_ms = be->incident_start_ms,
				.rule = bstr(b, be->s[0]),
				.type = bstr(b, be->s[1]),
				.service = bstr(b, be->s[2]),
				.instance = bstr(b, be->s[3]),
				.node = bstr(b, be->s[4]),
				.state = bstr(b, be->s[5]),
				.detail = bstr(b, be->s[6]),
				.attempt = be->attempt,
				.created_ms = be->ms,
			};
			rv = insert_action(j, &r);
			if (rv == 0)
				(*added)++;
			break;
		case BE_UPDATE:
			rv = update_row(j, W_ACTION_UPDATE, be->id,
			    bstr(b, be->s[0]), bstr(b, be->s[1]), be->ms);
			if (rv == -ENOENT)
				rv = 0;
			break;
		}
	}
	return rv;
}

// Runs one op inside the batch transaction. A negative return is a
// database failure that dooms the whole batch; an op's own result (e.g.
// -ENOENT) goes to op->rv. Counts inserted rows into *added.
static int
exec_op(struct coord_journal *j, struct op *op, int64_t added[2])
{
	sqlite3_stmt *st;
	size_t i;
	int rv = 0;

	op->rv = 0;
	switch (op->kind) {
	case OP_ALERTS:
		rv = insert_alert_set(j, op->u.alerts.recs, op->u.alerts.n);
		if (rv == 0)
			added[0] += (int64_t)op->u.alerts.n;
		break;
	case OP_ALERT_DONE:
		rv = update_row(j, pend_has(&j->pend, op->u.alert_done.id) ?
		    W_OUTCOME_PENDING : W_ALERT_DONE, op->u.alert_done.id,
		    op->u.alert_done.outcome, op->u.alert_done.detail,
		    op->u.alert_done.now_ms);
		if (rv == -ENOENT) { // the op's own result
			op->rv = rv;
			rv = 0;
		}
		break;
	case OP_ACTION_INSERT:
		for (i = 0; i < op->u.actions.n && rv == 0; i++)
			rv = insert_action(j, &op->u.actions.recs[i]);
		if (rv == 0)
			added[1] += (int64_t)op->u.actions.n;
		break;
	case OP_ACTION_UPDATE:
		rv = update_row(j, W_ACTION_UPDATE, op->u.update.id,
		    op->u.update.state, op->u.update.detail,
		    op->u.update.now_ms);
		if (rv == -ENOENT) { // the op's own result
			op->rv = rv;
			rv = 0;
		}
		break;
	case OP_META_SET:
		st = j->w[W_META_SET];
		bind_str(st, 1, op->u.meta.key);
		bind_str(st, 2, op->u.meta.value);
		rv = step_done(j->wdb, st);
		break;
	case OP_RETAIN:
		break;	// never batched (see take_batch)
	case OP_BATCH:
		rv = exec_batch(j, op->u.batch, &added[1]);
		break;
	}
	return rv;
}

// Takes the next batch off the queue (j->lock held): everything queued up
// to max_batch alerts and MAX_OPS_PER_BATCH ops, at least one op. A
// retention op always forms a batch of its own.
static struct op *
take_batch(struct coord_journal *j)
{
	struct op *first = j->head, *last = NULL, *o;
	size_t alerts = 0, nops = 0, na;

	for (o = j->head; o != NULL; o = o->next) {
		na = o->kind == OP_ALERTS ? o->u.alerts.n : 0;
		if (nops > 0 && (o->kind == OP_RETAIN ||
		    alerts + na > j->max_batch || nops >= MAX_OPS_PER_BATCH))
			break;
		alerts += na;
		nops++;
		last = o;
		if (o->kind == OP_RETAIN)
			break;
	}
	j->head = last->next;
	if (j->head == NULL)
		j->tail = NULL;
	last->next = NULL;
	j->queued -= alerts;
	return first;
}

// Runs the transaction of one batch. Returns 0 or the negative errno of
// the first failure (the transaction is then rolled back); `why` gets
// SQLite's message. Adds to added[] the alerts and actions stored, and
// sets added[2] and added[3] to the alert texts stored and found.
static int
commit_batch(struct coord_journal *j, struct op *batch, int64_t added[4],
    char *why, size_t whylen)
{
	struct op *o;
	int rv;

	j->batch_texts_new = j->batch_texts_found = 0;
	rv = step_rebound(j->wdb, j->w[W_BEGIN]);
	for (o = batch; o != NULL && rv == 0; o = o->next)
		rv = exec_op(j, o, added);
	if (rv == 0)
		rv = mark_maybe_save(j);
	if (rv == 0)
		rv = step_rebound(j->wdb, j->w[W_COMMIT]);
	if (rv == 0) {
		added[2] = j->batch_texts_new;
		added[3] = j->batch_texts_found;
		pend_apply(j, batch);
		if (j->mark_saving >= 0) {
			j->mark_saved = j->mark_saving;
			j->mark_saved_mono = cm_mono_ms();
		}
		return 0;
	}
	snprintf(why, whylen, "%s", sqlite3_errmsg(j->wdb));
	// The text rows this batch stored go with it.
	coord_textmemo_clear(j->texts);
	if (!sqlite3_get_autocommit(j->wdb) &&
	    step_done(j->wdb, j->w[W_ROLLBACK]) < 0)
		cm_err("journal.rollback_failed", "err=%s",
		    cm_q(sqlite3_errmsg(j->wdb)));
	return rv;
}

static void
note_result(struct coord_journal *j, int rv, const int64_t added[4],
    size_t nops, const char *why)
{
	int64_t failing;

	pthread_mutex_lock(&j->lock);
	if (rv == 0) {
		j->commits++;
		j->n_alerts += added[0];
		j->n_actions += added[1];
		j->texts_new += added[2];
		j->texts_found += added[3];
	} else {
		j->commit_errors++;
	}
	failing = j->failing;
	j->failing = rv == 0 ? 0 : failing + 1;
	pthread_mutex_unlock(&j->lock);

	if (rv == 0 && failing > 0) {
		cm_notice("journal.recovered", "failed_commits=%lld",
		    (long long)failing);
	} else if (rv < 0 && (failing & (failing + 1)) == 0) {
		// Logged on the 1st, 2nd, 4th, 8th ... consecutive failure.
		cm_err("journal.commit_failed", "err=%s errno=%d ops=%zu "
		    "consecutive=%lld", cm_q(why), -rv, nops,
		    (long long)failing + 1);
	}
}

// Completes each op in queue order: callbacks for submissions, a wakeup
// for blocked callers. A blocked caller's op lives on its stack: once
// `done` is set under the lock it may be gone.
static void
complete_batch(struct coord_journal *j, struct op *batch, int rv)
{
	struct op *o, *next;
	size_t i;

	for (o = batch; o != NULL; o = next) {
		next = o->next;
		if (rv < 0) {
			o->rv = rv;
			if (o->kind == OP_ALERTS)
				for (i = 0; i < o->u.alerts.n; i++)
					o->u.alerts.recs[i].id = 0;
			else if (o->kind == OP_ACTION_INSERT)
				for (i = 0; i < o->u.actions.n; i++)
					o->u.actions.recs[i].id = 0;
		}
		if (o->kind == OP_ALERTS) {
			o->u.alerts.fn(o->rv, o->u.alerts.recs, o->u.alerts.n,
			    o->u.alerts.arg);
			free(o);
			continue;
		}
		if (o->kind == OP_BATCH) {
			o->u.batch->fn(o->rv, o->u.batch->arg);
			coord_journal_batch_free(o->u.batch);
			free(o);
			continue;
		}
		pthread_mutex_lock(&j->lock);
		o->done = true;
		pthread_cond_broadcast(&j->opdone);
		pthread_mutex_unlock(&j->lock);
	}
}

// Keeps n holds (j->lock held); more than are held count as nothing.
static void
holds_release(struct coord_journal *j, unsigned n)
{
	if (n == 0)
		return;
	j->holds -= n < j->holds ? n : j->holds;
	j->holds_released += n;
	pthread_cond_signal(&j->sync_wake);
}

static void
run_batch(struct coord_journal *j, struct op *batch)
{
	int64_t added[4] = { 0, 0, 0, 0 };
	unsigned releases = 0;
	struct committed *c;
	bool quiet, taken = false;
	char why[256] = "";
	size_t nops = 0;
	struct op *o;
	int rv;

	for (o = batch; o != NULL; o = o->next) {
		nops++;
		if (o->kind == OP_BATCH)
			releases += o->u.batch->releases;
	}
	if (j->shared)
		pthread_mutex_lock(&j->rlock);
	rv = commit_batch(j, batch, added, why, sizeof(why));
	if (j->shared)
		pthread_mutex_unlock(&j->rlock);
	if (!j->own_sync) {
		note_result(j, rv, added, nops, why);
		complete_batch(j, batch, rv);
		return;
	}
	// Committed, not yet synced: the early callbacks may act on the
	// alerts now (nothing they cause leaves the process before the
	// fdatasync that covers these alerts has returned). A batch of one
	// op is quiet: its callback may take a hold, counted before it runs
	// (so that a release never comes first) and given back if not taken.
	quiet = rv == 0 && nops == 1 && batch->kind == OP_ALERTS &&
	    batch->u.alerts.early != NULL && j->linger_ns > 0;
	if (quiet) {
		pthread_mutex_lock(&j->lock);
		j->holds++;
		pthread_mutex_unlock(&j->lock);
	}
	for (o = batch; rv == 0 && o != NULL; o = o->next)
		if (o->kind == OP_ALERTS && o->u.alerts.early != NULL)
			taken = o->u.alerts.early(o->u.alerts.recs,
			    o->u.alerts.n, quiet, o->u.alerts.arg) > 0;
	// Hand the batch (failed ones too, to keep completions in order) to
	// the syncer; wait only while the ring is full.
	pthread_mutex_lock(&j->lock);
	// A hold not taken is given back, unless the syncer dropped the
	// holds meanwhile (then it is gone: holds are counted only here).
	if (quiet && !taken && j->holds > 0)
		j->holds--;
	holds_release(j, releases);
	while (j->sync_n == SYNC_QUEUE)
		pthread_cond_wait(&j->sync_free, &j->lock);
	c = &j->syncq[(j->sync_head + j->sync_n) % SYNC_QUEUE];
	j->sync_n++;
	c->batch = batch;
	c->rv = rv;
	memcpy(c->added, added, sizeof(c->added));
	c->nops = nops;
	snprintf(c->why, sizeof(c->why), "%s", why);
	pthread_cond_signal(&j->sync_wake);
	pthread_mutex_unlock(&j->lock);
}

// A failed fdatasync after COMMIT is fatal. The batch is committed in
// the file but not known to be on the disk, and the kernel may already
// have dropped the dirty pages and cleared the error, so a later
// fdatasync can succeed without them: no answer given from now on could
// be trusted. Nothing of the batch has been answered yet (no 2xx, no
// command sent), so the process exits at once, without completing any
// op or running exit handlers; senders see the connection drop and
// resend, and the next start reads whatever the file really holds.
static void
unsent_note(int fd, int64_t id, int64_t created_ms, size_t *count)
{
	char buf[48];
	int k;

	if (*count >= UNSENT_MAX || id <= 0)
		return;
	k = snprintf(buf, sizeof(buf), "%lld %lld\n", (long long)id,
	    (long long)created_ms);
	if (write(fd, buf, (size_t)k) == k)
		(*count)++;
}

// The action rows a committed batch inserted.
static void
unsent_batch(int fd, const struct op *batch, size_t *count)
{
	for (const struct op *o = batch; o != NULL; o = o->next) {
		if (o->kind == OP_BATCH) {
			const struct coord_journal_batch *b = o->u.batch;

			for (size_t i = 0; i < b->n; i++)
				if (b->v[i].kind == BE_INSERT)
					unsent_note(fd, b->v[i].id,
					    b->v[i].ms, count);
		} else if (o->kind == OP_ACTION_INSERT) {
			for (size_t i = 0; i < o->u.actions.n; i++)
				unsent_note(fd, o->u.actions.recs[i].id,
				    o->u.actions.recs[i].created_ms, count);
		}
	}
}

static _Noreturn void
sync_failed(struct coord_journal *j, int e, const struct committed *c,
    size_t n)
{
	size_t count = 0;
	int fd;

	// The rows of the batches committed and not synced (these, and any
	// queued behind them) may well be in the file at the next start,
	// but none of their commands left: the next start must not take
	// them for actions that may have run (interrupted, in cooldown),
	// or a resent alert would wait out a cooldown for a repair that
	// never happened. Listed for it in <path>-unsent, best effort (not
	// synced: the disk just failed; without the list those rows count
	// as interrupted, as any in-flight action does).
	fd = open(j->unsent_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd >= 0) {
		for (size_t i = 0; i < n; i++)
			if (c[i].rv == 0)
				unsent_batch(fd, c[i].batch, &count);
		pthread_mutex_lock(&j->lock);
		for (size_t i = 0; i < j->sync_n; i++) {
			const struct committed *q =
			    &j->syncq[(j->sync_head + i) % SYNC_QUEUE];

			if (q->rv == 0)
				unsent_batch(fd, q->batch, &count);
		}
		pthread_mutex_unlock(&j->lock);
		close(fd);
	}
	cm_err("journal.sync_failed",
	    "path=%s error=%s exit=%d unsent_actions=%zu action=\"exiting "
	    "without answering the batch; the journal is read again at the "
	    "next start\"", cm_q(j->wal_path), cm_q(strerror(e)),
	    COORD_JOURNAL_EXIT_SYNC, count);
	_exit(COORD_JOURNAL_EXIT_SYNC);
}

// (j->lock held) No commit under way, queued, waiting for the syncer or
// promised by a hold: a checkpoint started now meets no fdatasync.
static bool
quiet(const struct coord_journal *j)
{
	return !j->busy && j->head == NULL && j->sync_n == 0 && !j->syncing &&
	    j->holds == 0;
}

// (j->lock held) Wakes a checkpointer waiting for a quiet moment, if this
// is one.
static void
quiet_note(struct coord_journal *j)
{
	if (j->ckpt_waiting && quiet(j))
		pthread_cond_signal(&j->ckpt_wake);
}

// The syncer (j->lock held), with committed batches in its ring: while
// holds promise more writes soon, waits for them (bounded), so that the
// coming fdatasync covers them too. A promise not kept in time stays
// (its writes come later, with a sync of their own); when STALE_LINGERS
// waits in a row run out having seen fewer releases than the holds they
// began with, the holds are dropped, so that a promise never kept cannot
// slow every sync after it. (Fewer, not none: the webhooks after a lost
// hold take and keep holds of their own during each wait, which says
// nothing of the lost one.)
static void
linger(struct coord_journal *j)
{
	int64_t released = j->holds_released;
	unsigned held = j->holds;
	struct timespec ts;

	if (j->holds == 0 || j->linger_ns == 0)
		return;
	ts = cm_mono_after_ns(j->linger_ns);
	while (j->holds > 0 && !j->sync_stop && j->sync_n < SYNC_QUEUE) {
		if (pthread_cond_timedwait(&j->sync_wake, &j->lock, &ts) !=
		    ETIMEDOUT)
			continue;
		j->linger_timeouts++;
		j->stale_lingers = j->holds_released - released < held ?
		    j->stale_lingers + 1 : 0;
		if (j->stale_lingers >= STALE_LINGERS) {
			cm_warn("journal.holds_dropped", "holds=%u "
			    "reason=\"no write came for them\"", j->holds);
			j->holds = 0;
			j->stale_lingers = 0;
		}
		break;
	}
}

// The syncer thread (own_sync): takes the committed batch, makes the WAL
// durable, then completes its ops. Any transactions committed before the
// fdatasync are covered by it.
static void *
syncer_main(void *arg)
{
	struct coord_journal *j = arg;
	struct committed c[SYNC_QUEUE];
	size_t n, i;
	bool any;

	cm_thread_start("journal-sync", CM_THREAD_LATENCY);
	for (;;) {
		pthread_mutex_lock(&j->lock);
		while (j->sync_n == 0 && !j->sync_stop)
			pthread_cond_wait(&j->sync_wake, &j->lock);
		if (j->sync_n == 0) {
			pthread_mutex_unlock(&j->lock);
			break;
		}
		linger(j);
		n = j->sync_n;
		for (i = 0; i < n; i++)
			c[i] = j->syncq[(j->sync_head + i) % SYNC_QUEUE];
		j->sync_head = (j->sync_head + n) % SYNC_QUEUE;
		j->sync_n = 0;
		j->syncing = true;
		pthread_cond_signal(&j->sync_free);
		pthread_mutex_unlock(&j->lock);
		// Every batch taken was committed (written to the WAL) before
		// it was queued: one fdatasync covers them all.
		for (i = 0, any = false; i < n; i++)
			any = any || c[i].rv == 0;
		if (any && fdatasync(j->wal_fd) < 0)
			sync_failed(j, errno, c, n);
		if (any) {
			pthread_mutex_lock(&j->lock);
			j->syncs++;
			pthread_mutex_unlock(&j->lock);
		}
		for (i = 0; i < n; i++) {
			note_result(j, c[i].rv, c[i].added, c[i].nops, c[i].why);
			complete_batch(j, c[i].batch, c[i].rv);
		}
		pthread_mutex_lock(&j->lock);
		j->syncing = false;
		quiet_note(j);
		pthread_mutex_unlock(&j->lock);
	}
	return NULL;
}

// Inside retention's transaction, after it deleted alerts: the highest
// id left (*top). SQLite hands out the ids above it again, so a saved
// mark above it would skip alerts stored from now on: it is lowered to
// *top in the same transaction (still behind every pending alert, since
// the old mark was). Returns 0 or the database failure.
static int
retain_mark(struct coord_journal *j, int64_t *top)
{
	int rv = query_int(j->wdb, "SELECT coalesce(max(id), 0)"
	    " FROM alerts_in", top);

	if (rv == 0 && *top < j->mark_saved)
		rv = mark_write(j, *top);
	return rv;
}

// After retention deleted alerts (committed; top: the highest id left):
// pending ones among them are forgotten (the set is small: alerts not
// decided yet), the mark follows retain_mark, and ids go on from top
// (from 1 with no alert left).
static void
pend_after_retention(struct coord_journal *j, int64_t top)
{
	struct pend *p = &j->pend;
	sqlite3_stmt *st = NULL;
	size_t i;

	if (top < j->mark_saved) {
		j->mark_saved = top;
		j->mark_saved_mono = cm_mono_ms();
	}
	j->max_alert_id = top;
	if (top == 0) {
		pend_clear(p);
		return;
	}
	if (sqlite3_prepare_v2(j->wdb, "SELECT 1 FROM alerts_in WHERE id = ?1",
	    -1, &st, NULL) != SQLITE_OK)
		return;
	for (i = p->head; i < p->len; i++) {
		if (p->v[i] <= 0)
			continue;
		sqlite3_bind_int64(st, 1, p->v[i]);
		if (sqlite3_step(st) == SQLITE_DONE) {
			p->v[i] = -p->v[i];
			p->live--;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	// Every dead entry goes: the ids above top come back for new
	// alerts, and a dead entry with a new alert's id would shadow its
	// live one (pend_find may land on either).
	pend_compact(p);
}

// Steps j->w[w], a query of one row of one integer, with arg bound to
// ?1; sets *ret to the integer. Returns 0 or a negative errno.
static int
step_int(struct coord_journal *j, int w, int64_t arg, int64_t *ret)
{
	sqlite3_stmt *st = j->w[w];
	int rc, rv = 0;

	sqlite3_bind_int64(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		rv = rc == SQLITE_DONE ? -EIO : sql_errno(j->wdb, rc);
	sqlite3_reset(st);
	return rv;
}

// Texts no alert refers to any more go with the alerts, in the same
// transaction. A mark (alert_id A, text_id T) in alert_text_marks says
// that every alert after A refers to a text after T (or to none): it is
// written with the memo emptied, A and T the highest ids then, and text
// ids are never reused (AUTOINCREMENT). So once no alert up to A refers
// to a text, the texts up to T have no alert and go (RETENTION_ROWS a
// pass), and a mark whose texts are all gone goes too. Then a new mark,
// when texts were stored since the last one and `mark` (see TEXT_MARK_MS;
// the memo is emptied whether or not the transaction commits: it only
// costs texts stored again).
// Alerts before the first one not received after now (the floor) were
// stored while the clock was ahead; retention keeps them until their
// time, which may be far off, and past them deletes the alerts behind:
// they take their texts back into their own rows (as before schema
// version 4; RETENTION_ROWS a pass), so as not to keep every text stored
// meanwhile, and the marks apply up to the first that still refers to a
// text. In time order (no clock ahead) the floor is the first alert and
// none moves. At the size cap the rows may not grow: the texts then stay
// until space is freed, and the alerts still go.
static int
retain_texts(struct coord_journal *j, int64_t now, bool mark,
    int64_t *deleted)
{
	int64_t floor = INT64_MAX;
	int rv;

	*deleted = 0;
	rv = step_int(j, W_TEXT_FLOOR, now, &floor);
	if (rv == 0) {
		sqlite3_bind_int64(j->w[W_TEXT_UNSHARE], 1, floor);
		sqlite3_bind_int(j->w[W_TEXT_UNSHARE], 2, RETENTION_ROWS);
		rv = step_done(j->wdb, j->w[W_TEXT_UNSHARE]);
		// A failed statement is undone; if SQLite undid the whole
		// transaction instead, the pass fails.
		if (rv == -ENOSPC && !sqlite3_get_autocommit(j->wdb)) {
			cm_warn("journal.texts_unshare_failed", "err=%s",
			    cm_q(sqlite3_errmsg(j->wdb)));
			rv = 0;
		}
	}
	if (rv == 0)
		rv = step_int(j, W_TEXT_SHARED, floor, &floor);
	if (rv < 0)
		return rv;
	sqlite3_bind_int(j->w[W_RETAIN_TEXTS], 1, RETENTION_ROWS);
	sqlite3_bind_int64(j->w[W_RETAIN_TEXTS], 2, floor);
	rv = step_done(j->wdb, j->w[W_RETAIN_TEXTS]);
	if (rv == 0) {
		*deleted = sqlite3_changes(j->wdb);
		rv = step_done(j->wdb, j->w[W_RETAIN_MARKS]);
	}
	if (rv == 0 && mark && j->texts_since_mark > 0) {
		coord_textmemo_clear(j->texts);
		rv = step_done(j->wdb, j->w[W_TEXT_MARK]);
		if (rv == 0)
			j->text_mark_mono = cm_mono_ms();
	}
	return rv;
}

// One retention transaction: deletes at most RETENTION_ROWS alerts and as
// many actions older than the retention, and the texts they leave. Returns rows deleted or -errno;
// *more tells whether a table may hold more old rows.
static int64_t
retain_pass(struct coord_journal *j, bool mark, bool *more)
{
	int64_t now = cm_now_ms(), cutoff = now - j->retention_ms;
	int64_t na = 0, nb = 0, nt = 0, top = 0, last_id = 0, last_ms = 0;
	bool full = false, further = false;
	sqlite3_stmt *st;
	int rc, rv;

	*more = false;
	if (j->shared)
		pthread_mutex_lock(&j->rlock);
	rv = step_done(j->wdb, j->w[W_BEGIN]);
	if (rv == 0) { // the window's last row, before anything goes
		st = j->w[W_RETAIN_LAST];
		sqlite3_bind_int(st, 2, RETENTION_ROWS);
		sqlite3_bind_int64(st, 3, j->retain_after);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			full = true;
			last_id = sqlite3_column_int64(st, 0);
			last_ms = sqlite3_column_int64(st, 1);
		} else if (rc != SQLITE_DONE) {
			rv = sql_errno(j->wdb, rc);
		}
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	if (rv == 0) {
		sqlite3_bind_int64(j->w[W_RETAIN_OUTCOMES], 1, cutoff);
		sqlite3_bind_int(j->w[W_RETAIN_OUTCOMES], 2, RETENTION_ROWS);
		sqlite3_bind_int64(j->w[W_RETAIN_OUTCOMES], 3, j->retain_after);
		rv = step_done(j->wdb, j->w[W_RETAIN_OUTCOMES]);
	}
	if (rv == 0) {
		sqlite3_bind_int64(j->w[W_RETAIN_ALERTS], 1, cutoff);
		sqlite3_bind_int(j->w[W_RETAIN_ALERTS], 2, RETENTION_ROWS);
		sqlite3_bind_int64(j->w[W_RETAIN_ALERTS], 3, j->retain_after);
		rv = step_done(j->wdb, j->w[W_RETAIN_ALERTS]);
		na = sqlite3_changes(j->wdb);
	}
	if (rv == 0) {
		sqlite3_bind_int64(j->w[W_RETAIN_ACTIONS], 1, cutoff);
		sqlite3_bind_int(j->w[W_RETAIN_ACTIONS], 2, RETENTION_ROWS);
		rv = step_done(j->wdb, j->w[W_RETAIN_ACTIONS]);
		nb = sqlite3_changes(j->wdb);
	}
	if (rv == 0)
		rv = retain_texts(j, now, mark, &nt);
	if (rv == 0 && na > 0)
		rv = retain_mark(j, &top);
	if (rv == 0)
		rv = step_done(j->wdb, j->w[W_COMMIT]);
	if (rv < 0) {
		cm_warn("journal.retention_failed", "err=%s",
		    cm_q(sqlite3_errmsg(j->wdb)));
		if (!sqlite3_get_autocommit(j->wdb))
			(void)step_done(j->wdb, j->w[W_ROLLBACK]);
		coord_textmemo_clear(j->texts);	// its texts may be gone
	} else {
		if (mark)
			j->texts_since_mark = 0; // a mark is written
		if (na > 0)
			pend_after_retention(j, top);
	}
	if (j->shared)
		pthread_mutex_unlock(&j->rlock);
	if (rv < 0)
		return rv;
	pthread_mutex_lock(&j->lock);
	j->n_alerts -= na;
	j->n_actions -= nb;
	pthread_mutex_unlock(&j->lock);
	// Alerts come in id order, which is time order but for a clock that
	// stepped: the window moves on past its last row while that row is
	// old (more old rows may follow) or received in the future (rows a
	// clock ahead left, which would otherwise fill the window for good);
	// at a young row or the end, the next pass starts from the oldest.
	further = full && (last_ms < cutoff || last_ms > now);
	j->retain_after = further ? last_id : 0;
	*more = further || nb == RETENTION_ROWS || nt == RETENTION_ROWS;
	if (na + nb + nt > 0)
		cm_debug("journal.retention", "alerts=%lld actions=%lld "
		    "texts=%lld", (long long)na, (long long)nb, (long long)nt);
	return na + nb;
}

// After a batch (or when idle with a backlog): one bounded pass when the
// interval has passed since the last one.
static void
maybe_retain(struct coord_journal *j)
{
	int64_t now = cm_mono_ms();
	bool mark;

	if (j->retention_ms <= 0)
		return;
	if (!j->retain_more &&
	    now - j->last_retain_mono < j->retention_interval_ms)
		return;
	j->last_retain_mono = now;
	mark = now - j->text_mark_mono >= (j->retention_ms < TEXT_MARK_MS ?
	    j->retention_ms : TEXT_MARK_MS);
	if (retain_pass(j, mark, &j->retain_more) < 0)
		j->retain_more = false;
}

// OP_RETAIN: passes until nothing old is left.
static void
run_retain_op(struct coord_journal *j, struct op *op)
{
	int64_t n, total = 0;
	bool more = j->retention_ms > 0;

	op->rv = 0;
	while (more) {
		n = retain_pass(j, true, &more);
		if (n < 0) {
			op->rv = (int)n;
			break;
		}
		total += n;
	}
	j->retain_more = false;
	op->u.deleted = total;
	complete_batch(j, op, 0);
}

// The writer's WAL hook (replaces SQLite's autocheckpoint): after each
// commit, wake the checkpointer when enough frames wait to be copied.
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct coord_journal *j = arg;

	(void)name;
	pthread_mutex_lock(&j->lock);
	if (frames < j->ckpt_done)	// the log restarted
		j->ckpt_done = 0;
	j->wal_frames = frames;
	if (frames - j->ckpt_done >= (j->ckpt_waiting ? CKPT_FORCE :
	    CKPT_PAGES))
		pthread_cond_signal(&j->ckpt_wake);
	pthread_mutex_unlock(&j->lock);
	if (frames >= CKPT_BACKSTOP) {
		(void)sqlite3_wal_checkpoint_v2(db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&j->lock);
		j->backstop_checkpoints++;
		pthread_mutex_unlock(&j->lock);
	}
	return SQLITE_OK;
}

// Drops the pages a checkpoint wrote from the page cache, all but the
// file's last cache_tail bytes. A checkpoint that ran beside the writer
// leaves its pages dirty (SQLite syncs the database only after one that
// copied the whole log), and dirty pages cannot be dropped: they are
// written out first, here, as the kernel would have done later. That is
// not a sync (the log still holds every frame until a complete
// checkpoint has synced the database). Advice only: a failure changes
// nothing that matters. Returns whether the advice was taken (counted
// with the checkpoint, so that stats never show one without the other).
static bool
cache_trim(struct coord_journal *j)
{
	struct stat st;
	off_t len;

	if (j->db_fd < 0 || fstat(j->db_fd, &st) < 0 ||
	    st.st_size <= j->cache_tail)
		return false;
	len = st.st_size - j->cache_tail;
	return sync_file_range(j->db_fd, 0, len, SYNC_FILE_RANGE_WAIT_BEFORE |
	    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0 &&
	    posix_fadvise(j->db_fd, 0, len, POSIX_FADV_DONTNEED) == 0;
}

// The checkpointer thread: PASSIVE checkpoints on its own connection (they
// never block the writer, and the writer restarts the log after one that
// copied everything).
static void *
ckpt_main(void *arg)
{
	struct coord_journal *j = arg;
	int rc, nlog, nckpt;
	bool trimmed;

	cm_thread_start("journal-ckpt", CM_THREAD_BULK);
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->ckpt_stop &&
		    j->wal_frames - j->ckpt_done < CKPT_PAGES)
			pthread_cond_wait(&j->ckpt_wake, &j->lock);
		if (j->ckpt_stop)
			break;
		if (!quiet(j) && j->wal_frames - j->ckpt_done < CKPT_FORCE) {
			// Woken again at the next quiet moment (quiet_note)
			// or by the WAL hook at CKPT_FORCE frames.
			if (!j->ckpt_waiting)
				j->ckpt_waits++;
			j->ckpt_waiting = true;
			pthread_cond_wait(&j->ckpt_wake, &j->lock);
			continue;
		}
		j->ckpt_waiting = false;
		pthread_mutex_unlock(&j->lock);
		nlog = nckpt = 0;
		rc = sqlite3_wal_checkpoint_v2(j->cdb, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			cm_warn("journal.checkpoint_failed", "err=%s",
			    cm_q(sqlite3_errmsg(j->cdb)));
		trimmed = rc == SQLITE_OK && cache_trim(j);
		pthread_mutex_lock(&j->lock);
		if (rc == SQLITE_OK)
			j->checkpoints++;
		if (trimmed)
			j->cache_trims++;
		if (rc == SQLITE_OK && nckpt >= 0 && nlog >= nckpt &&
		    nlog <= j->wal_frames)
			j->ckpt_done = nckpt;
		else	// failed, or the log restarted meanwhile: wait for
			j->ckpt_done = j->wal_frames; // CKPT_PAGES more
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static void *
writer_main(void *arg)
{
	struct coord_journal *j = arg;
	struct op *batch;

	cm_thread_start("journal-writer", CM_THREAD_BULK);
	tl_running = j;
	for (;;) {
		pthread_mutex_lock(&j->lock);
		while (j->busy || (j->head == NULL && !j->stop &&
		    !j->retain_more))
			pthread_cond_wait(&j->wake, &j->lock);
		if (j->head == NULL && j->stop) {
			pthread_mutex_unlock(&j->lock);
			break;
		}
		batch = j->head != NULL ? take_batch(j) : NULL;
		j->busy = true;
		pthread_mutex_unlock(&j->lock);
		if (batch != NULL && batch->kind == OP_RETAIN)
			run_retain_op(j, batch);
		else if (batch != NULL)
			run_batch(j, batch);
		maybe_retain(j);
		pthread_mutex_lock(&j->lock);
		j->busy = false;
		quiet_note(j);
		pthread_mutex_unlock(&j->lock);
	}
	return NULL;
}

static void
enqueue(struct coord_journal *j, struct op *op)
{
	op->next = NULL;
	if (j->tail != NULL)
		j->tail->next = op;
	else
		j->head = op;
	j->tail = op;
	pthread_cond_signal(&j->wake);
}

// Queues a blocking op and waits until the writer completed it.
static int
run_blocking(struct coord_journal *j, struct op *op)
{
	int rv;

	pthread_mutex_lock(&j->lock);
	if (tl_running == j ||
	    (j->syncer_started && pthread_equal(pthread_self(), j->syncer))) {
		rv = -EDEADLK;
	} else if (j->stop) {
		rv = -ESHUTDOWN;
	} else {
		enqueue(j, op);
		while (!op->done)
			pthread_cond_wait(&j->opdone, &j->lock);
		rv = op->rv;
	}
	pthread_mutex_unlock(&j->lock);
	return rv;
}

// ---- the write API -----------------------------------------------------

int
coord_journal_submit_alerts(struct coord_journal *j,
    struct coord_alert_rec *recs, size_t n, coord_journal_done_fn done,
    void *arg)
{
	return coord_journal_submit_alerts_early(j, recs, n, NULL, done, arg);
}

int
coord_journal_submit_alerts_early(struct coord_journal *j,
    struct coord_alert_rec *recs, size_t n, coord_journal_early_fn early,
    coord_journal_done_fn done, void *arg)
{
	struct op *op;
	size_t i;
	int rv = 0;

	if (j == NULL || done == NULL || (n > 0 && recs == NULL))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (recs[i].alert == NULL)
			return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	op->kind = OP_ALERTS;
	op->u.alerts.recs = recs;
	op->u.alerts.n = n;
	op->u.alerts.fn = done;
	op->u.alerts.early = early;
	op->u.alerts.arg = arg;

	pthread_mutex_lock(&j->lock);
	if (j->stop || n > j->max_queue - j->queued) {
		rv = -EAGAIN;
	} else {
		j->queued += n;
		enqueue(j, op);
	}
	pthread_mutex_unlock(&j->lock);
	if (rv < 0) {
		free(op);
	}
	return rv;
}

int
coord_journal_alert_done(struct coord_journal *j, int64_t alert_id,
    const char *outcome, const char *detail)
{
	struct op op = { .kind = OP_ALERT_DONE };

	if (j == NULL || outcome == NULL)
		return -EINVAL;
	op.u.alert_done.id = alert_id;
	op.u.alert_done.outcome = outcome;
	op.u.alert_done.detail = detail;
	op.u.alert_done.now_ms = cm_now_ms();
	return run_blocking(j, &op);
}

int
coord_journal_action_insert(struct coord_journal *j,
    struct coord_action_rec *rec)
{
	return coord_journal_action_insert_many(j, rec, rec != NULL ? 1 : 0);
}

int
coord_journal_action_insert_many(struct coord_journal *j,
    struct coord_action_rec *recs, size_t n)
{
	struct op op = { .kind = OP_ACTION_INSERT };
	int rv;

	if (j == NULL || recs == NULL || n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct coord_action_rec *rec = &recs[i];

		if (rec->rule == NULL || rec->type == NULL ||
		    rec->service == NULL || rec->instance == NULL ||
		    rec->state == NULL)
			return -EINVAL;
	}
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < n; i++)
		recs[i].id = j->next_action_id++;
	pthread_mutex_unlock(&j->lock);
	op.u.actions.recs = recs;
	op.u.actions.n = n;
	rv = run_blocking(j, &op);
	if (rv < 0) // also when it never ran (-EDEADLK, -ESHUTDOWN)
		for (size_t i = 0; i < n; i++)
			recs[i].id = 0;
	return rv;
}

int
coord_journal_action_update(struct coord_journal *j, int64_t id,
    const char *state, const char *detail, int64_t now_ms)
{
	struct op op = { .kind = OP_ACTION_UPDATE };

	if (j == NULL || state == NULL)
		return -EINVAL;
	op.u.update.id = id;
	op.u.update.state = state;
	op.u.update.detail = detail;
	op.u.update.now_ms = now_ms;
	return run_blocking(j, &op);
}

// ---- batches -----------------------------------------------------------

struct coord_journal_batch *
coord_journal_batch_new(struct coord_journal *j)
{
	struct coord_journal_batch *b;

	if (j == NULL)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b != NULL)
		b->j = j;
	return b;
}

void
coord_journal_batch_free(struct coord_journal_batch *b)
{
	if (b == NULL)
		return;
	free(b->v);
	free(b->text);
	free(b);
}

size_t
coord_journal_batch_len(const struct coord_journal_batch *b)
{
	return b != NULL ? b->n : 0;
}

// Makes room for one more entry and `more` bytes of text.
static int
batch_grow(struct coord_journal_batch *b, size_t more)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 32;
		struct bent *v = realloc(b->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	if (b->len + more > b->tcap) {
		size_t cap = b->tcap ? 2 * b->tcap : 4096;
		char *t;

		while (cap < b->len + more)
			cap *= 2;
		t = realloc(b->text, cap);
		if (t == NULL)
			return -ENOMEM;
		b->text = t;
		b->tcap = cap;
	}
	return 0;
}

static size_t
slen(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

// Copies s into the text (room made by batch_grow); returns its offset.
static size_t
batch_str(struct coord_journal_batch *b, const char *s)
{
	size_t off = b->len, n;

	if (s == NULL)
		return NO_STR;
	n = strlen(s) + 1;
	memcpy(b->text + off, s, n);
	b->len += n;
	return off;
}

int
coord_journal_batch_alert_done(struct coord_journal_batch *b,
    int64_t alert_id, const char *outcome, const char *detail)
{
	struct bent *be;

	if (b == NULL || outcome == NULL)
		return -EINVAL;
	if (batch_grow(b, slen(outcome) + slen(detail)) < 0)
		return -ENOMEM;
	be = &b->v[b->n++];
	*be = (struct bent){ .kind = BE_ALERT_DONE, .id = alert_id,
		.ms = cm_now_ms() };
	be->s[0] = batch_str(b, outcome);
	be->s[1] = batch_str(b, detail);
	return 0;
}

int
coord_journal_batch_action_insert(struct coord_journal_batch *b,
    struct coord_action_rec *r)
{
	const char *s[7];
	size_t need = 0;
	struct bent *be;

	if (r != NULL)
		r->id = 0;
	if (b == NULL || r == NULL || r->rule == NULL || r->type == NULL ||
	    r->service == NULL || r->instance == NULL || r->state == NULL)
		return -EINVAL;
	s[0] = r->rule;
	s[1] = r->type;
	s[2] = r->service;
	s[3] = r->instance;
	s[4] = r->node;
	s[5] = r->state;
	s[6] = r->detail;
	for (int i = 0; i < 7; i++)
		need += slen(s[i]);
	if (batch_grow(b, need) < 0)
		return -ENOMEM;
	be = &b->v[b->n++];
	*be = (struct bent){ .kind = BE_INSERT, .alert_id = r->alert_id,
		.identity = r->identity,
		.incident_start_ms = r->incident_start_ms,
		.attempt = r->attempt, .ms = r->created_ms };
	for (int i = 0; i < 7; i++)
		be->s[i] = batch_str(b, s[i]);
	b->n_actions++;
	pthread_mutex_lock(&b->j->lock);
	be->id = b->j->next_action_id++;
	pthread_mutex_unlock(&b->j->lock);
	r->id = be->id;
	return 0;
}

int
coord_journal_batch_action_update(struct coord_journal_batch *b, int64_t id,
    const char *state, const char *detail, int64_t now_ms)
{
	struct bent *be;

	if (b == NULL || state == NULL)
		return -EINVAL;
	if (batch_grow(b, slen(state) + slen(detail)) < 0)
		return -ENOMEM;
	be = &b->v[b->n++];
	*be = (struct bent){ .kind = BE_UPDATE, .id = id, .ms = now_ms };
	be->s[0] = batch_str(b, state);
	be->s[1] = batch_str(b, detail);
	b->n_actions++;
	return 0;
}

void
coord_journal_batch_release(struct coord_journal_batch *b, unsigned n)
{
	if (b != NULL)
		b->releases += n;
}

void
coord_journal_release(struct coord_journal *j, unsigned n)
{
	if (j == NULL || n == 0)
		return;
	pthread_mutex_lock(&j->lock);
	holds_release(j, n);
	pthread_mutex_unlock(&j->lock);
}

bool
coord_journal_unsent(struct coord_journal *j, int64_t action_id,
    int64_t created_ms)
{
	if (j == NULL)
		return false;
	for (size_t i = 0; i < j->n_unsent; i++)
		if (j->unsent[i].id == action_id &&
		    j->unsent[i].created_ms == created_ms)
			return true;
	return false;
}

void
coord_journal_unsent_clear(struct coord_journal *j)
{
	if (j == NULL || j->unsent_path == NULL)
		return;
	if (unlink(j->unsent_path) < 0 && errno != ENOENT)
		cm_warn("journal.unsent_kept", "path=%s err=%s",
		    cm_q(j->unsent_path), cm_q(strerror(errno)));
	free(j->unsent);
	j->unsent = NULL;
	j->n_unsent = 0;
}

int
coord_journal_batch_submit(struct coord_journal_batch *b,
    coord_journal_batch_fn fn, void *arg)
{
	struct coord_journal *j;
	struct op *op;
	int rv = 0;

	if (b == NULL || fn == NULL) {
		coord_journal_batch_free(b);
		return -EINVAL;
	}
	j = b->j;
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		coord_journal_batch_free(b);
		return -ENOMEM;
	}
	b->fn = fn;
	b->arg = arg;
	op->kind = OP_BATCH;
	op->u.batch = b;
	pthread_mutex_lock(&j->lock);
	if (j->stop) {
		rv = -ESHUTDOWN;
	} else if ((b->n_actions > 0 || b->releases > 0) && j->started &&
	    !j->busy && j->head == NULL && tl_running == NULL) {
		// A batch of action rows (or one the syncer waits for) finds
		// the writer idle: it runs here, saving the caller the
		// hand-off to the writer on its way to a command, and without
		// full sync also the one back. Outcomes alone wait for
		// nothing: queued, they share the writer's next transaction
		// with the webhooks' alerts instead of holding those back for
		// one of their own.
		j->busy = true;
		pthread_mutex_unlock(&j->lock);
		tl_running = j;
		run_batch(j, op); // without full sync, fn runs on this thread
		tl_running = NULL;
		pthread_mutex_lock(&j->lock);
		j->busy = false;
		if (j->head != NULL || j->retain_more || j->stop)
			pthread_cond_signal(&j->wake);
		quiet_note(j);
		pthread_mutex_unlock(&j->lock);
		return 0;
	} else {
		enqueue(j, op);
	}
	pthread_mutex_unlock(&j->lock);
	if (rv < 0) {
		free(op);
		coord_journal_batch_free(b);
	}
	return rv;
}

int
coord_journal_meta_set(struct coord_journal *j, const char *key,
    const char *value)
{
	struct op op = { .kind = OP_META_SET };

	if (j == NULL || key == NULL || value == NULL)
		return -EINVAL;
	op.u.meta.key = key;
	op.u.meta.value = value;
	return run_blocking(j, &op);
}

int
coord_journal_meta_get(struct coord_journal *j, const char *key, char *buf,
    size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc, rv = -ENOENT;

	if (j == NULL || key == NULL || n == 0)
		return -EINVAL;
	pthread_mutex_lock(&j->rlock);
	rc = sqlite3_prepare_v2(j->rdb, "SELECT value FROM meta WHERE key = ?1",
	    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st,
			    0));
			rv = 0;
		} else if (rc != SQLITE_DONE) {
			rv = -EIO;
		}
	} else {
		rv = -EIO;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rv;
}

int
coord_journal_retain_now(struct coord_journal *j, int64_t *ret_deleted)
{
	struct op op = { .kind = OP_RETAIN };
	int rv;

	if (ret_deleted != NULL)
		*ret_deleted = 0;
	if (j == NULL)
		return -EINVAL;
	rv = run_blocking(j, &op);
	if (rv == 0 && ret_deleted != NULL)
		*ret_deleted = op.u.deleted;
	return rv;
}

// ---- reads -------------------------------------------------------------

// Returns a new copy of a text column, "" for NULL when `empty`, else
// NULL. *nomem is set when the copy failed.
static char *
col_dup(sqlite3_stmt *st, int col, bool empty, bool *nomem)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	char *s;

	if (t == NULL && !empty)
		return NULL;
	s = strdup(t != NULL ? (const char *)t : "");
	if (s == NULL)
		*nomem = true;
	return s;
}

static int64_t
col_time(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return CM_TIME_NONE;
	return sqlite3_column_int64(st, col);
}

static int
kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct coord_kv *)a)->key,
	    ((const struct coord_kv *)b)->key);
}

static void
kvs_clear(struct coord_kvs *kvs)
{
	size_t i;

	for (i = 0; i < kvs->n; i++) {
		free(kvs->v[i].key);
		free(kvs->v[i].val);
	}
	free(kvs->v);
	kvs->v = NULL;
	kvs->n = 0;
}

// Decodes a stored JSON object of strings into a sorted kvs. Returns 0,
// -EINVAL (not such an object, duplicate keys) or -ENOMEM.
static int
kvs_from_json(const char *text, struct coord_kvs *out)
{
	const cJSON *it;
	cJSON *o;
	size_t n = 0, i;
	int rv = 0;

	out->v = NULL;
	out->n = 0;
	o = text != NULL ? cJSON_Parse(text) : NULL;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, o)
		n++;
	if (n > 0) {
		out->v = calloc(n, sizeof(*out->v));
		if (out->v == NULL)
			rv = -ENOMEM;
	}
	cJSON_ArrayForEach(it, o) {
		if (rv < 0)
			break;
		if (!cJSON_IsString(it) || it->string == NULL) {
			rv = -EINVAL;
			break;
		}
		out->v[out->n].key = strdup(it->string);
		out->v[out->n].val = strdup(it->valuestring);
		out->n++;
		if (out->v[out->n - 1].key == NULL ||
		    out->v[out->n - 1].val == NULL)
			rv = -ENOMEM;
	}
	cJSON_Delete(o);
	if (rv == 0 && out->n > 1) {
		qsort(out->v, out->n, sizeof(*out->v), kv_cmp);
		for (i = 1; i < out->n && rv == 0; i++)
			if (strcmp(out->v[i - 1].key, out->v[i].key) == 0)
				rv = -EINVAL;
	}
	if (rv < 0)
		kvs_clear(out);
	return rv;
}

// Builds a new alert from an R_PENDING row, laid out field by field
// (every string and both kv arrays malloc'd, mem NULL: see coord_alert.h)
// so coord_alert_free releases it. Returns 0, -EINVAL (row cannot be decoded) or -ENOMEM.
static int
row_to_alert(sqlite3_stmt *st, struct coord_alert **ret)
{
	struct coord_alert *a;
	bool nomem = false;
	const char *status;
	int rv;

	*ret = NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->fingerprint = col_dup(st, 3, true, &nomem);
	status = (const char *)sqlite3_column_text(st, 4);
	a->firing = status != NULL && strcmp(status, "firing") == 0;
	a->starts_ms = col_time(st, 5);
	a->ends_ms = col_time(st, 6);
	a->generator_url = col_dup(st, 9, true, &nomem);
	rv = nomem ? -ENOMEM : 0;
	if (rv == 0)
		rv = kvs_from_json((const char *)sqlite3_column_text(st, 7),
		    &a->labels);
	if (rv == 0)
		rv = kvs_from_json((const char *)sqlite3_column_text(st, 8),
		    &a->annotations);
	if (rv < 0) {
		coord_alert_free(a);
		return rv;
	}
	*ret = a;
	return 0;
}

struct pending_row {
	int64_t id;
	uint64_t identity;
	int64_t received_ms;
	struct coord_alert *alert;
};

// Reads up to READ_PAGE pending alerts with id > after (rlock held).
// Undecodable rows are logged and skipped (their id still advances
// *last) and their ids put in bad[*n_bad]. Returns rows read or -errno.
static int
read_pending_page(struct coord_journal *j, int64_t after,
    struct pending_row *rows, int64_t *last, int64_t *bad, int *n_bad)
{
	sqlite3_stmt *st = j->r[R_PENDING];
	struct pending_row *r;
	int n = 0, rc, rv = 0;

	sqlite3_bind_int64(st, 1, after > j->replay_from ? after :
	    j->replay_from);
	sqlite3_bind_int(st, 2, READ_PAGE);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = &rows[n];
		r->id = sqlite3_column_int64(st, 0);
		r->identity = i64_to_u64(sqlite3_column_int64(st, 1));
		r->received_ms = sqlite3_column_int64(st, 2);
		*last = r->id;
		rv = row_to_alert(st, &r->alert);
		if (rv == -EINVAL) {
			cm_warn("journal.replay_skip", "id=%lld reason=%s",
			    (long long)r->id, "undecodable labels");
			bad[(*n_bad)++] = r->id;
			rv = 0;
			continue;
		}
		if (rv < 0)
			break;
		n++;
	}
	if (rv == 0 && rc != SQLITE_DONE)
		rv = sql_errno(j->rdb, rc);
	sqlite3_reset(st);
	if (rv < 0) {
		while (n > 0)
			coord_alert_free(rows[--n].alert);
		return rv;
	}
	return n;
}

int
coord_journal_replay_pending(struct coord_journal *j,
    coord_journal_alert_fn fn, void *arg)
{
	struct pending_row rows[READ_PAGE];
	int64_t after = 0, last, bad[READ_PAGE];
	int n, i, n_bad;

	if (j == NULL || fn == NULL)
		return -EINVAL;
	for (;;) {
		last = after;
		n_bad = 0;
		pthread_mutex_lock(&j->rlock);
		n = read_pending_page(j, after, rows, &last, bad, &n_bad);
		pthread_mutex_unlock(&j->rlock);
		if (n < 0)
			return n;
		// An alert no replay can rebuild is given up on, with its
		// reason, rather than left pending for good (it would hold
		// the decided-through mark back, and every start would read
		// it again). Not fatal when it fails: read again next time.
		for (i = 0; i < n_bad; i++)
			(void)coord_journal_alert_done(j, bad[i], "unreadable",
			    "stored labels or annotations are not valid JSON; "
			    "the alert cannot be rebuilt");
		for (i = 0; i < n; i++)
			fn(rows[i].id, rows[i].identity, rows[i].received_ms,
			    rows[i].alert, arg);
		if (last == after)
			return 0;
		after = last;
	}
}

int
coord_journal_read_alert(struct coord_journal *j, int64_t id,
    struct coord_alert **ret, int64_t *received_ms)
{
	sqlite3_stmt *st;
	int rc, rv;

	*ret = NULL;
	if (j == NULL)
		return -EINVAL;
	pthread_mutex_lock(&j->rlock);
	st = j->r[R_ALERT];
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (received_ms != NULL)
			*received_ms = sqlite3_column_int64(st, 2);
		rv = row_to_alert(st, ret);
	} else {
		rv = rc == SQLITE_DONE ? -ENOENT : sql_errno(j->rdb, rc);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->rlock);
	return rv;
}

int
coord_journal_action_state(struct coord_journal *j, int64_t id, char *buf,
    size_t n)
{
	sqlite3_stmt *st;
	int rc, rv = 0;

	if (j == NULL || n == 0)
		return -EINVAL;
	pthread_mutex_lock(&j->rlock);
	st = j->r[R_ACTION_STATE];
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);

		snprintf(buf, n, "%s", state != NULL ? state : "");
	} else {
		rv = rc == SQLITE_DONE ? -ENOENT : sql_errno(j->rdb, rc);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->rlock);
	return rv;
}

#define ACTION_STRS 7

struct action_row {
	struct coord_action_rec rec;
	int64_t updated_ms;
	// rule, type, service, instance, node, state, detail:
	char *s[ACTION_STRS];
};

static void
action_row_clear(struct action_row *r)
{
	int i;

	for (i = 0; i < ACTION_STRS; i++)
		free(r->s[i]);
}

// Reads up to READ_PAGE actions (rlock held). Returns rows or -errno.
static int
read_actions_page(struct coord_journal *j, int64_t since, int64_t after,
    struct action_row *rows)
{
	sqlite3_stmt *st = j->r[R_ACTIONS];
	struct action_row *r;
	bool nomem = false;
	int n = 0, rc, i, rv = 0;

	sqlite3_bind_int64(st, 1, since);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, READ_PAGE);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = &rows[n++];
		memset(r, 0, sizeof(*r));
		r->rec.id = sqlite3_column_int64(st, 0);
		r->rec.alert_id = sqlite3_column_int64(st, 1);
		r->rec.identity = i64_to_u64(sqlite3_column_int64(st, 2));
		r->rec.incident_start_ms = sqlite3_column_int64(st, 3);
		for (i = 0; i < ACTION_STRS; i++)
			r->s[i] = col_dup(st, 4 + i, false, &nomem);
		r->rec.rule = r->s[0];
		r->rec.type = r->s[1];
		r->rec.service = r->s[2];
		r->rec.instance = r->s[3];
		r->rec.node = r->s[4];
		r->rec.state = r->s[5];
		r->rec.detail = r->s[6];
		r->rec.attempt = sqlite3_column_int(st, 11);
		r->rec.created_ms = sqlite3_column_int64(st, 12);
		r->updated_ms = sqlite3_column_int64(st, 13);
		if (nomem) {
			rv = -ENOMEM;
			break;
		}
	}
	if (rv == 0 && rc != SQLITE_DONE)
		rv = sql_errno(j->rdb, rc);
	sqlite3_reset(st);
	if (rv < 0) {
		while (n > 0)
			action_row_clear(&rows[--n]);
		return rv;
	}
	return n;
}

int
coord_journal_scan_actions(struct coord_journal *j, int64_t since_ms,
    coord_journal_action_fn fn, void *arg)
{
	struct action_row *rows;
	int64_t after = 0;
	int n, i, rv = 0;

	if (j == NULL || fn == NULL)
		return -EINVAL;
	rows = calloc(READ_PAGE, sizeof(*rows));
	if (rows == NULL)
		return -ENOMEM;
	for (;;) {
		pthread_mutex_lock(&j->rlock);
		n = read_actions_page(j, since_ms, after, rows);
		pthread_mutex_unlock(&j->rlock);
		if (n < 0) {
			rv = n;
			break;
		}
		for (i = 0; i < n; i++) {
			fn(&rows[i].rec, rows[i].updated_ms, arg);
			after = rows[i].rec.id;
			action_row_clear(&rows[i]);
		}
		if (n < READ_PAGE)
			break;
	}
	free(rows);
	return rv;
}

static bool
json_add_text(cJSON *o, const char *key, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	if (t == NULL)
		return cJSON_AddNullToObject(o, key) != NULL;
	return cJSON_AddStringToObject(o, key, (const char *)t) != NULL;
}

static bool
json_add_time(cJSON *o, const char *key, int64_t ms)
{
	char buf[40];

	return cJSON_AddStringToObject(o, key,
	    cm_time_format(ms, buf, sizeof(buf))) != NULL;
}

// A new object for the current row, appended to arr, with "id" from the
// row's first column. NULL when out of memory.
static cJSON *
row_object(cJSON *arr, sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	if (cJSON_AddNumberToObject(o, "id",
	    (double)sqlite3_column_int64(st, 0)) == NULL)
		return NULL;
	return o;
}

// Appends the current query_actions row to arr. Returns false on ENOMEM.
static bool
json_add_action(cJSON *arr, sqlite3_stmt *st)
{
	static const char *const text_cols[] = {
		NULL, NULL, "alertname", "rule", "type", "service",
		"instance", "node", "state", "detail",
	};
	cJSON *o = row_object(arr, st);
	bool ok = o != NULL;
	int i;

	ok = ok && cJSON_AddNumberToObject(o, "alert_id",
	    (double)sqlite3_column_int64(st, 1)) != NULL;
	for (i = 2; i < 10 && ok; i++)
		ok = json_add_text(o, text_cols[i], st, i);
	ok = ok && cJSON_AddNumberToObject(o, "attempt",
	    sqlite3_column_int(st, 10)) != NULL;
	ok = ok && json_add_time(o, "created", sqlite3_column_int64(st, 11));
	ok = ok && json_add_time(o, "updated", sqlite3_column_int64(st, 12));
	// When the webhook carrying the alert arrived (the alert's row).
	ok = ok && json_add_time(o, "alert_received",
	    sqlite3_column_int64(st, 13));
	return ok;
}

// Builds the filtered query. Parameters are numbered so every one can be
// bound whether or not its clause is present (?5, the limit, always is).
static void
build_query(const struct coord_journal_filter *f, char *sql, size_t n)
{
	snprintf(sql, n, "SELECT act.id, act.alert_id, al.alertname,"
	    " act.rule, act.type, act.service, act.instance, act.node,"
	    " act.state, act.detail, act.attempt, act.created_ms,"
	    " act.updated_ms, al.received_ms FROM actions act"
	    " LEFT JOIN alerts_in al ON al.id = act.alert_id WHERE 1%s%s%s%s"
	    " ORDER BY act.created_ms DESC, act.id DESC LIMIT ?5",
	    f->service != NULL ? " AND act.service = ?1" : "",
	    f->alertname != NULL ? " AND al.alertname = ?2" : "",
	    f->state != NULL ? " AND act.state = ?3" : "",
	    f->since_ms > 0 ? " AND act.created_ms >= ?4" : "");
}

// Runs a query of the filter's parameters (?1 service, ?2 alertname, ?3
// state, ?4 since, ?5 limit: every one bound, clause or not), appending
// each row to arr with `add`.
static int
run_filtered(struct coord_journal *j, const struct coord_journal_filter *f,
    const char *sql, bool (*add)(cJSON *, sqlite3_stmt *), cJSON *arr)
{
	sqlite3_stmt *st = NULL;
	int limit = f->limit, rc, rv = 0;

	if (limit <= 0)
		limit = QUERY_DEFAULT_LIMIT;
	if (limit > QUERY_MAX_LIMIT)
		limit = QUERY_MAX_LIMIT;
	rc = sqlite3_prepare_v2(j->rdb, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_errno(j->rdb, rc);
	bind_str(st, 1, f->service);
	bind_str(st, 2, f->alertname);
	bind_str(st, 3, f->state);
	sqlite3_bind_int64(st, 4, f->since_ms);
	sqlite3_bind_int(st, 5, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!add(arr, st)) {
			rv = -ENOMEM;
			break;
		}
	}
	if (rv == 0 && rc != SQLITE_DONE)
		rv = sql_errno(j->rdb, rc);
	sqlite3_finalize(st);
	return rv;
}

static int
run_query(struct coord_journal *j, const struct coord_journal_filter *f,
    cJSON *arr)
{
	char sql[640];

	build_query(f, sql, sizeof(sql));
	return run_filtered(j, f, sql, json_add_action, arr);
}

// Appends the current alerts query row to arr. Returns false on ENOMEM.
static bool
json_add_alert(cJSON *arr, sqlite3_stmt *st)
{
	static const char *const text_cols[] = {
		NULL, NULL, "alertname", "status", "fingerprint", "service",
		"instance", "outcome", "detail",
	};
	const char *labels = (const char *)sqlite3_column_text(st, 10);
	cJSON *o = row_object(arr, st), *l;
	bool ok = o != NULL;

	ok = ok && json_add_time(o, "received", sqlite3_column_int64(st, 1));
	for (int i = 2; i < 9 && ok; i++)
		ok = json_add_text(o, text_cols[i], st, i);
	if (ok && sqlite3_column_type(st, 9) == SQLITE_NULL)
		ok = cJSON_AddNullToObject(o, "decided") != NULL;
	else if (ok)
		ok = json_add_time(o, "decided", sqlite3_column_int64(st, 9));
	// Stored as Alertmanager sent it, checked when it came; a row that
	// does not parse (edited by hand) shows null rather than failing.
	l = labels != NULL ? cJSON_Parse(labels) : NULL;
	if (ok && !cJSON_AddItemToObject(o, "labels", l != NULL ? l :
	    cJSON_CreateNull())) {
		cJSON_Delete(l);
		ok = false;
	}
	return ok;
}

// The alerts query (see run_filtered; ?3 is the outcome). The newest
// COORD_JOURNAL_ALERTS_SCAN alerts only: ids grow with arrival, so that
// bound is a range of the table's key.
static int
run_alerts_query(struct coord_journal *j, const struct coord_journal_filter *f,
    cJSON *arr)
{
	char sql[1024];

	snprintf(sql, sizeof(sql), "SELECT a.id, a.received_ms, a.alertname,"
	    " a.status, a.fingerprint, json_extract(" LABELS ", '$.service'),"
	    " json_extract(" LABELS ", '$.instance'),"
	    " coalesce(o.outcome, 'pending'), o.detail, o.done_ms, " LABELS
	    " FROM alerts_in a LEFT JOIN alert_texts t ON t.id = a.text_id"
	    " LEFT JOIN alert_outcomes o ON o.alert_id = a.id"
	    " WHERE a.id > (SELECT coalesce(max(id), 0) FROM alerts_in) - %d"
	    "%s%s%s%s ORDER BY a.id DESC LIMIT ?5", COORD_JOURNAL_ALERTS_SCAN,
	    f->service != NULL ?
	    " AND json_extract(" LABELS ", '$.service') = ?1" : "",
	    f->alertname != NULL ? " AND a.alertname = ?2" : "",
	    f->state != NULL ? " AND (coalesce(o.outcome, 'pending') = ?3"
	    " OR substr(o.outcome, 1, length(?3) + 1) = ?3 || ':')" : "",
	    f->since_ms > 0 ? " AND a.received_ms >= ?4" : "");
	return run_filtered(j, f, sql, json_add_alert, arr);
}

// The body of both queries: runs `run` under the read lock and prints
// its array.
static int
query_json(struct coord_journal *j, const struct coord_journal_filter *f,
    int (*run)(struct coord_journal *, const struct coord_journal_filter *,
    cJSON *), char **ret_json)
{
	static const struct coord_journal_filter none = { .limit = 0 };
	cJSON *arr;
	char *text;
	int rv;

	if (ret_json == NULL)
		return -EINVAL;
	*ret_json = NULL;
	if (j == NULL)
		return -EINVAL;
	if (f == NULL)
		f = &none;
	arr = cJSON_CreateArray();
	if (arr == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&j->rlock);
	rv = run(j, f, arr);
	pthread_mutex_unlock(&j->rlock);
	if (rv == 0) {
		// Copied so the caller frees with plain free() whatever
		// allocator cJSON was given.
		text = cJSON_PrintUnformatted(arr);
		*ret_json = text != NULL ? strdup(text) : NULL;
		cJSON_free(text);
		if (*ret_json == NULL)
			rv = -ENOMEM;
	}
	cJSON_Delete(arr);
	return rv;
}

int
coord_journal_query_actions(struct coord_journal *j,
    const struct coord_journal_filter *f, char **ret_json)
{
	return query_json(j, f, run_query, ret_json);
}

int
coord_journal_query_alerts(struct coord_journal *j,
    const struct coord_journal_filter *f, char **ret_json)
{
	return query_json(j, f, run_alerts_query, ret_json);
}

static int64_t
file_size(const char *path)
{
	struct stat sb;

	if (path == NULL || stat(path, &sb) != 0)
		return 0;
	return (int64_t)sb.st_size;
}

void
coord_journal_stats(struct coord_journal *j, struct coord_journal_stats *s)
{
	int64_t pages = 0, page_size = 0;

	if (s == NULL)
		return;
	memset(s, 0, sizeof(*s));
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->lock);
	s->alerts = j->n_alerts;
	s->actions = j->n_actions;
	s->commits = j->commits;
	s->checkpoints = j->checkpoints;
	s->backstop_checkpoints = j->backstop_checkpoints;
	s->checkpoint_waits = j->ckpt_waits;
	s->cache_trims = j->cache_trims;
	s->syncs = j->syncs;
	s->linger_timeouts = j->linger_timeouts;
	s->commit_errors = j->commit_errors;
	s->texts_new = j->texts_new;
	s->texts_found = j->texts_found;
	pthread_mutex_unlock(&j->lock);
	if (!j->shared) {
		s->bytes = file_size(j->path) + file_size(j->wal_path);
		return;
	}
	pthread_mutex_lock(&j->rlock);
	if (query_int(j->rdb, "PRAGMA page_count", &pages) == 0 &&
	    query_int(j->rdb, "PRAGMA page_size", &page_size) == 0)
		s->bytes = pages * page_size;
	pthread_mutex_unlock(&j->rlock);
}
