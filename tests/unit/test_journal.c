// SPDX-License-Identifier: MIT
// Unit tests of coord_journal: storage, replay, group commit, back-pressure,
// failed commits, retention, queries, and durability across kill -9.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "cm_time.h"
#include "coord_journal.h"
#include "coord_textmemo.h"
#include "cm_hash.h"
#include "tt.h"

#define HOUR_MS (3600 * 1000LL)

// ---- helpers -----------------------------------------------------------

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		abort();
	return p;
}

static void
kvs_set(struct coord_kvs *kvs, size_t n, const char *const *kv)
{
	size_t i;

	kvs->n = n;
	kvs->v = n > 0 ? xcalloc(n, sizeof(*kvs->v)) : NULL;
	for (i = 0; i < n; i++) {
		kvs->v[i].key = xstrdup(kv[2 * i]);
		kvs->v[i].val = xstrdup(kv[2 * i + 1]);
	}
}

// A new alert (free with coord_alert_free): labels alertname, seq and
// service (sorted), one annotation, fingerprint "fp-<seq>".
static struct coord_alert *
mk_alert(const char *name, int seq, const char *summary)
{
	struct coord_alert *a = xcalloc(1, sizeof(*a));
	char sbuf[32], fp[40];
	const char *labels[] = {
		"alertname", name, "seq", sbuf, "service", "checkout",
	};
	const char *ann[] = { "summary", summary };

	snprintf(sbuf, sizeof(sbuf), "%d", seq);
	snprintf(fp, sizeof(fp), "fp-%d", seq);
	a->firing = true;
	kvs_set(&a->labels, 3, labels);
	kvs_set(&a->annotations, 1, ann);
	a->starts_ms = 1700000000000LL + seq;
	a->ends_ms = CM_TIME_NONE;
	a->generator_url = xstrdup("http://127.0.0.1:9090/graph");
	a->fingerprint = xstrdup(fp);
	return a;
}

static void
rec_init(struct coord_alert_rec *r, struct coord_alert *a, int64_t recv)
{
	memset(r, 0, sizeof(*r));
	r->received_ms = recv;
	r->identity = 0xfedcba9876543210ULL ^ (uint64_t)recv;
	r->alert = a;
	r->receiver = "reflex";
	r->group_key = "{}:{alertname=\"X\"}";
}

// Counts callbacks and remembers the last result.
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int rv;
	int failures;
};

#define WAITER_INIT \
	{ PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 }

static void
waiter_cb(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct waiter *w = arg;

	(void)recs;
	(void)n;
	pthread_mutex_lock(&w->mu);
	w->calls++;
	w->rv = rv;
	if (rv < 0)
		w->failures++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void
waiter_wait(struct waiter *w, int calls)
{
	pthread_mutex_lock(&w->mu);
	while (w->calls < calls)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

// Submits recs[0..n) as one group and waits for its callback. Returns the
// callback's rv (or the submit error).
static int
submit_wait(struct coord_journal *j, struct coord_alert_rec *recs, size_t n)
{
	struct waiter w = WAITER_INIT;
	int rv;

	rv = coord_journal_submit_alerts(j, recs, n, waiter_cb, &w);
	if (rv < 0)
		return rv;
	waiter_wait(&w, 1);
	return w.rv;
}

// A gate: the first submission's callback blocks the thread that completes
// batches until released, so that everything submitted meanwhile waits in
// the queue (with sync_full on a file, the writer commits up to two more
// batches first: one waiting for the blocked syncer, one waiting for the
// slot).
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool entered, released;
};

#define GATE_INIT \
	{ PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false }

static void
gate_cb(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct gate *g = arg;

	(void)rv;
	(void)recs;
	(void)n;
	pthread_mutex_lock(&g->mu);
	g->entered = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->released)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void
gate_wait_entered(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->entered)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void
gate_release(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->released = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

// Replayed alerts collected in order.
struct replayed {
	size_t n, cap;
	int64_t *ids;
	uint64_t *identities;
	int64_t *received;
	struct coord_alert **alerts;
};

static void
replay_cb(int64_t id, uint64_t identity, int64_t received_ms,
    struct coord_alert *alert, void *arg)
{
	struct replayed *r = arg;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->ids = realloc(r->ids, r->cap * sizeof(*r->ids));
		r->identities = realloc(r->identities,
		    r->cap * sizeof(*r->identities));
		r->received = realloc(r->received,
		    r->cap * sizeof(*r->received));
		r->alerts = realloc(r->alerts, r->cap * sizeof(*r->alerts));
		if (!r->ids || !r->identities || !r->received || !r->alerts)
			abort();
	}
	r->ids[r->n] = id;
	r->identities[r->n] = identity;
	r->received[r->n] = received_ms;
	r->alerts[r->n] = alert;
	r->n++;
}

static void
replayed_free(struct replayed *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		coord_alert_free(r->alerts[i]);
	free(r->ids);
	free(r->identities);
	free(r->received);
	free(r->alerts);
	memset(r, 0, sizeof(*r));
}

static const char *
label(const struct coord_alert *a, const char *key)
{
	size_t i;

	for (i = 0; i < a->labels.n; i++)
		if (strcmp(a->labels.v[i].key, key) == 0)
			return a->labels.v[i].val;
	return NULL;
}

// A fresh temporary directory; paths of the journal inside it.
struct tmp {
	char dir[64];
	char db[96];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/reflex-journal-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		abort();
	snprintf(t->db, sizeof(t->db), "%s/journal.db", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char p[128];
	size_t i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", t->db, sfx[i]);
		(void)unlink(p);
	}
	(void)rmdir(t->dir);
}

static struct coord_journal *
open_ok(const char *path, const struct coord_journal_opts *o)
{
	struct coord_journal *j = NULL;
	char err[256];
	int rv;

	rv = coord_journal_open(&j, path, o, err, sizeof(err));
	if (rv != 0)
		printf("# open %s: %d %s\n", path, rv, err);
	CHECK_INT(rv, 0);
	return j;
}

// ---- cases -------------------------------------------------------------

static void
test_open_missing_dir(void)
{
	struct coord_journal *j = (void *)1;
	char err[256] = "";
	int rv;

	rv = coord_journal_open(&j, "/nonexistent-reflex-dir/j.db", NULL, err,
	    sizeof(err));
	CHECK_INT(rv, -ENOENT);
	CHECK(j == NULL);
	CHECK_HAS(err, "/nonexistent-reflex-dir/j.db");
	rv = coord_journal_open(&j, NULL, NULL, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
}

static void
test_open_refuses_newer_schema_and_garbage(void)
{
	struct coord_journal *j = NULL;
	char err[256] = "";
	struct tmp t;
	sqlite3 *db;
	FILE *f;
	int rv;

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	rv = coord_journal_open(&j, t.db, NULL, err, sizeof(err));
	CHECK_INT(rv, -ENOTSUP);
	CHECK_HAS(err, "schema version 99");
	CHECK(j == NULL);
	tmp_remove(&t);

	tmp_make(&t);
	f = fopen(t.db, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		for (rv = 0; rv < 200; rv++)
			fputs("this is not an SQLite database file\n", f);
		fclose(f);
	}
	err[0] = '\0';
	rv = coord_journal_open(&j, t.db, NULL, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "not a database");
	tmp_remove(&t);
}

static void
test_store_and_replay(void)
{
	struct coord_alert *a[3];
	struct coord_alert_rec recs[3];
	struct coord_journal_stats st;
	struct replayed r = { 0 };
	struct coord_journal *j;
	const struct coord_alert *b;
	int i;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	for (i = 0; i < 3; i++) {
		a[i] = mk_alert(i == 1 ? "DiskFull" : "HighLatency", i,
		    "p99 \"over\" 2s\n");
		rec_init(&recs[i], a[i], 1000 + i);
	}
	// The second alert is resolved with an end time and no start.
	a[1]->firing = false;
	a[1]->starts_ms = CM_TIME_NONE;
	a[1]->ends_ms = 1700000009999LL;
	CHECK_INT(submit_wait(j, recs, 2), 0);
	CHECK_INT(submit_wait(j, recs + 2, 1), 0);
	CHECK(recs[0].id > 0);
	CHECK(recs[1].id > recs[0].id);
	CHECK(recs[2].id > recs[1].id);

	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 3);
	for (i = 0; i < 3 && (size_t)i < r.n; i++) {
		b = r.alerts[i];
		CHECK_INT(r.ids[i], recs[i].id);
		CHECK(r.identities[i] == recs[i].identity);
		CHECK_INT(r.received[i], 1000 + i);
		CHECK_INT(b->firing, a[i]->firing);
		CHECK_INT(b->starts_ms, a[i]->starts_ms);
		CHECK_INT(b->ends_ms, a[i]->ends_ms);
		CHECK_STR(b->fingerprint, a[i]->fingerprint);
		CHECK_STR(b->generator_url, a[i]->generator_url);
		CHECK_INT(b->labels.n, 3);
		if (b->labels.n == 3) {
			CHECK_STR(b->labels.v[0].key, "alertname");
			CHECK_STR(b->labels.v[0].val,
			    a[i]->labels.v[0].val);
			CHECK_STR(b->labels.v[1].key, "seq");
			CHECK_STR(b->labels.v[2].key, "service");
			CHECK_STR(b->labels.v[2].val, "checkout");
		}
		CHECK_INT(b->annotations.n, 1);
		if (b->annotations.n == 1)
			CHECK_STR(b->annotations.v[0].val,
			    "p99 \"over\" 2s\n");
	}
	replayed_free(&r);

	// Processed alerts leave the pending set; order stays by id.
	CHECK_INT(coord_journal_alert_done(j, recs[1].id, "acted", "restart"),
	    0);
	CHECK_INT(coord_journal_alert_done(j, 999999, "acted", NULL),
	    -ENOENT);
	CHECK_INT(coord_journal_alert_done(j, recs[0].id, NULL, NULL),
	    -EINVAL);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 2);
	if (r.n == 2) {
		CHECK_INT(r.ids[0], recs[0].id);
		CHECK_INT(r.ids[1], recs[2].id);
	}
	replayed_free(&r);

	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 3);
	CHECK_INT(st.commits, 4);
	CHECK_INT(st.commit_errors, 0);
	CHECK(st.bytes > 0);
	coord_journal_close(j);
	for (i = 0; i < 3; i++)
		coord_alert_free(a[i]);
}

// The first column of the first row of sql on the file, as text ("" when
// there is no row).
static void
db_text(const char *path, const char *sql, char *buf, size_t n)
{
	sqlite3_stmt *q = NULL;
	sqlite3 *db = NULL;

	buf[0] = '\0';
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		printf("# %s: %s\n", sql, sqlite3_errmsg(db));
	else if (sqlite3_step(q) == SQLITE_ROW &&
	    sqlite3_column_text(q, 0) != NULL)
		snprintf(buf, n, "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	sqlite3_close(db);
}

// The tables and indexes of schema version 2, without rows.
static const char v2_schema[] =
    "CREATE TABLE alerts(id INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL, identity INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, status TEXT NOT NULL"
    " CHECK(status IN ('firing', 'resolved')), starts_ms INTEGER,"
    " ends_ms INTEGER, alertname TEXT, labels TEXT NOT NULL,"
    " annotations TEXT NOT NULL, generator_url TEXT NOT NULL,"
    " receiver TEXT, group_key TEXT,"
    " outcome TEXT NOT NULL DEFAULT 'pending', detail TEXT,"
    " done_ms INTEGER);"
    "CREATE INDEX alerts_pending ON alerts(id)"
    " WHERE outcome = 'pending';"
    "CREATE INDEX alerts_received ON alerts(received_ms);"
    "CREATE TABLE actions(id INTEGER PRIMARY KEY,"
    " alert_id INTEGER NOT NULL, identity INTEGER NOT NULL,"
    " incident_start_ms INTEGER NOT NULL, rule TEXT NOT NULL,"
    " type TEXT NOT NULL, service TEXT NOT NULL,"
    " instance TEXT NOT NULL, node TEXT, state TEXT NOT NULL,"
    " detail TEXT, attempt INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX actions_state ON actions(state, created_ms);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);";

// A journal written by schema version 2 (the outcome in the alert's row)
// opens as version 3: decided alerts keep their outcome, pending ones
// replay, and the `alerts` view reads as the old table did.
static void
test_schema_migrates_from_v2(void)
{
	static const char v2_rows[] =
	    "INSERT INTO alerts(id, received_ms, identity, fingerprint,"
	    " status, alertname, labels, annotations, generator_url,"
	    " outcome, detail, done_ms) VALUES"
	    " (1, 10, 7, 'fp-1', 'firing', 'Old', '{\"alertname\":\"Old\"}',"
	    "  '{}', '', 'acted', 'restart', 11),"
	    " (2, 20, 8, 'fp-2', 'firing', 'Left', '{\"alertname\":\"Left\"}',"
	    "  '{}', '', 'pending', NULL, NULL);"
	    "PRAGMA user_version=2;";
	struct coord_journal_stats st;
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[128];
	struct tmp t;
	sqlite3 *db;

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, v2_schema, NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, v2_rows, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	j = open_ok(t.db, NULL);
	if (j == NULL) {
		tmp_remove(&t);
		return;
	}
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 2);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1) {
		CHECK_INT(r.ids[0], 2);
		CHECK_STR(label(r.alerts[0], "alertname"), "Left");
	}
	replayed_free(&r);
	CHECK_INT(coord_journal_alert_done(j, 2, "no-agent", "nobody"), 0);
	coord_journal_close(j);

	db_text(t.db, "PRAGMA user_version", buf, sizeof(buf));
	CHECK_STR(buf, "4");
	db_text(t.db, "SELECT group_concat(id || ':' || outcome || ':' ||"
	    " coalesce(detail, '-'), ' ') FROM (SELECT * FROM alerts"
	    " ORDER BY id)", buf, sizeof(buf));
	CHECK_STR(buf, "1:acted:restart 2:no-agent:nobody");
	db_text(t.db, "SELECT count(*) FROM sqlite_master WHERE name IN"
	    " ('alerts_pending', 'alerts_received', 'actions_state')", buf,
	    sizeof(buf));
	CHECK_STR(buf, "0");
	tmp_remove(&t);
}


// A version 2 journal at its size cap (max_bytes: the file's size, as a
// journal that filled up leaves it) still opens after the upgrade: the
// migration rewrites the alerts and needs room beyond the cap, which
// applies from then on.
static void
test_schema_migrates_at_size_cap(void)
{
	struct coord_journal_opts o = { 0 };
	struct coord_journal_stats st;
	struct coord_journal *j = NULL;
	char err[256], buf[64];
	struct stat sb;
	struct tmp t;
	sqlite3 *db;
	int rv;

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, v2_schema, NULL, NULL, NULL), SQLITE_OK);
	// 4,000 decided alerts with a detail, one pending.
	CHECK_INT(sqlite3_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION"
	    " ALL SELECT i + 1 FROM n WHERE i < 4001) INSERT INTO alerts(id,"
	    " received_ms, identity, fingerprint, status, alertname, labels,"
	    " annotations, generator_url, outcome, detail, done_ms) SELECT i,"
	    " i, i, 'fp-' || i, 'firing', 'Full', '{\"alertname\":\"Full\"}',"
	    " '{}', '', CASE WHEN i = 4001 THEN 'pending' ELSE 'acted' END,"
	    " CASE WHEN i = 4001 THEN NULL ELSE 'restart checkout instance"
	    " checkout-7d9f8b on node-' || i END, i FROM n;"
	    "PRAGMA user_version=2;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	CHECK_INT(stat(t.db, &sb), 0);
	o.max_bytes = (int64_t)sb.st_size;
	rv = coord_journal_open(&j, t.db, &o, err, sizeof(err));
	if (rv != 0)
		printf("# open %s: %d %s\n", t.db, rv, err);
	CHECK_INT(rv, 0);
	if (j != NULL) {
		coord_journal_stats(j, &st);
		CHECK_INT(st.alerts, 4001);
		coord_journal_close(j);
	}
	db_text(t.db, "PRAGMA user_version", buf, sizeof(buf));
	CHECK_STR(buf, "4");
	db_text(t.db, "SELECT count(*) FROM alert_outcomes", buf, sizeof(buf));
	CHECK_STR(buf, "4000");
	tmp_remove(&t);
}

// The decided-through mark: saved at close, it bounds what a restart
// reads, and an alert left pending behind decided ones still replays.
static void
test_decided_mark_bounds_replay(void)
{
	struct coord_alert *a[5];
	struct coord_alert_rec recs[5];
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[96], want[64];
	struct tmp t;
	sqlite3 *db;
	int i;

	tmp_make(&t);
	j = open_ok(t.db, NULL);
	if (j == NULL) {
		tmp_remove(&t);
		return;
	}
	for (i = 0; i < 5; i++) {
		a[i] = mk_alert("Mark", i, "s");
		rec_init(&recs[i], a[i], 1000 + i);
	}
	CHECK_INT(submit_wait(j, recs, 5), 0);
	for (i = 0; i < 5; i++)
		if (i != 2)
			CHECK_INT(coord_journal_alert_done(j, recs[i].id,
			    "no-agent", NULL), 0);
	coord_journal_close(j);
	// Everything up to the one left pending is decided.
	db_text(t.db, "SELECT value FROM meta WHERE key ="
	    " 'alerts_decided_through'", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%" PRId64, recs[2].id - 1);
	CHECK_STR(buf, want);

	j = open_ok(t.db, NULL);
	if (j == NULL) {
		tmp_remove(&t);
		goto out;
	}
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1)
		CHECK_INT(r.ids[0], recs[2].id);
	replayed_free(&r);
	CHECK_INT(coord_journal_alert_done(j, recs[2].id, "acted", NULL), 0);
	coord_journal_close(j);
	db_text(t.db, "SELECT value FROM meta WHERE key ="
	    " 'alerts_decided_through'", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%" PRId64, recs[4].id);
	CHECK_STR(buf, want);
	db_text(t.db, "SELECT count(*) FROM alerts WHERE outcome = 'pending'",
	    buf, sizeof(buf));
	CHECK_STR(buf, "0");

	// A mark beyond every alert (not this journal's) is ignored: the
	// whole journal is read, and the alert whose outcome went is found.
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	snprintf(buf, sizeof(buf), "DELETE FROM alert_outcomes WHERE"
	    " alert_id = %" PRId64 ";", recs[0].id);
	CHECK_INT(sqlite3_exec(db, buf, NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "UPDATE meta SET value = '999999' WHERE"
	    " key = 'alerts_decided_through'", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	j = open_ok(t.db, NULL);
	if (j != NULL) {
		CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
		CHECK_INT(r.n, 1);
		if (r.n == 1)
			CHECK_INT(r.ids[0], recs[0].id);
		replayed_free(&r);
		coord_journal_close(j);
	}
	tmp_remove(&t);
out:
	for (i = 0; i < 5; i++)
		coord_alert_free(a[i]);
}

// An alert whose stored labels cannot be read back is given up on by
// replay, with an outcome, so it is not read again at every start (and
// does not hold the decided-through mark back).
static void
test_replay_gives_up_on_unreadable(void)
{
	struct coord_alert *a[2];
	struct coord_alert_rec recs[2];
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[96], want[32];
	struct tmp t;
	sqlite3 *db;
	int i;

	tmp_make(&t);
	for (i = 0; i < 2; i++) {
		a[i] = mk_alert("Bad", i, "s");
		rec_init(&recs[i], a[i], 100 + i);
	}
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(submit_wait(j, recs, 2), 0);
	coord_journal_close(j);
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	snprintf(buf, sizeof(buf), "UPDATE alert_texts SET labels ="
	    " '{\"a\":' WHERE id = (SELECT text_id FROM alerts_in"
	    " WHERE id = %" PRId64 ")", recs[0].id);
	CHECK_INT(sqlite3_exec(db, buf, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1)
		CHECK_INT(r.ids[0], recs[1].id);
	replayed_free(&r);
	coord_journal_close(j);
	snprintf(want, sizeof(want), "%" PRId64, recs[0].id);
	snprintf(buf, sizeof(buf), "SELECT outcome FROM alerts WHERE id = %s",
	    want);
	db_text(t.db, buf, want, sizeof(want));
	CHECK_STR(want, "unreadable");
	db_text(t.db, "SELECT value FROM meta WHERE key ="
	    " 'alerts_decided_through'", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%" PRId64, recs[0].id);
	CHECK_STR(buf, want); // up to the bad one; the next still pending
out:
	for (i = 0; i < 2; i++)
		coord_alert_free(a[i]);
	tmp_remove(&t);
}

// Replay calls back with no lock held: the callback may write (here on
// the shared in-memory connection, the case most prone to deadlock).
struct done_ctx {
	struct coord_journal *j;
	int calls, failures;
};

static void
replay_and_done_cb(int64_t id, uint64_t identity, int64_t received_ms,
    struct coord_alert *alert, void *arg)
{
	struct done_ctx *c = arg;
	struct coord_journal_stats st;
	char *json = NULL;

	(void)identity;
	(void)received_ms;
	coord_alert_free(alert);
	c->calls++;
	if (coord_journal_alert_done(c->j, id, "no-rule", NULL) != 0)
		c->failures++;
	if (coord_journal_query_actions(c->j, NULL, &json) != 0)
		c->failures++;
	free(json);
	coord_journal_stats(c->j, &st);
}

static void
test_replay_callback_may_write(void)
{
	struct coord_alert_rec recs[300];
	struct coord_alert *a[300];
	struct replayed r = { 0 };
	struct done_ctx c = { 0 };
	int i;

	c.j = open_ok(":memory:", NULL);
	if (c.j == NULL)
		return;
	// More than one read page (128 rows).
	for (i = 0; i < 300; i++) {
		a[i] = mk_alert("A", i, "s");
		rec_init(&recs[i], a[i], i);
	}
	CHECK_INT(submit_wait(c.j, recs, 300), 0);
	CHECK_INT(coord_journal_replay_pending(c.j, replay_and_done_cb, &c),
	    0);
	CHECK_INT(c.calls, 300);
	CHECK_INT(c.failures, 0);
	CHECK_INT(coord_journal_replay_pending(c.j, replay_cb, &r), 0);
	CHECK_INT(r.n, 0);
	replayed_free(&r);
	coord_journal_close(c.j);
	for (i = 0; i < 300; i++)
		coord_alert_free(a[i]);
}

static void
test_persists_across_reopen(void)
{
	struct coord_journal_opts o = { .sync_full = false };
	struct coord_alert_rec recs[2];
	struct coord_alert *a[2];
	struct coord_journal_stats st;
	struct replayed r = { 0 };
	struct coord_journal *j;
	struct coord_action_rec act = {
		.alert_id = 1, .identity = UINT64_MAX, .incident_start_ms = 5,
		.rule = "r", .type = "restart", .service = "s",
		.instance = "i", .state = "planned", .attempt = 1,
		.created_ms = 10,
	};
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		return;
	a[0] = mk_alert("A", 1, "x");
	a[1] = mk_alert("B", 2, "y");
	rec_init(&recs[0], a[0], 111);
	rec_init(&recs[1], a[1], 222);
	recs[1].identity = 0x8000000000000001ULL; // high bit: int64 bits
	CHECK_INT(submit_wait(j, recs, 2), 0);
	CHECK_INT(coord_journal_action_insert(j, &act), 0);
	coord_journal_close(j);

	j = open_ok(t.db, NULL);
	if (j == NULL)
		return;
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 2);
	CHECK_INT(st.actions, 1);
	CHECK_INT(st.commits, 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 2);
	if (r.n == 2) {
		CHECK_INT(r.ids[0], recs[0].id);
		CHECK_INT(r.ids[1], recs[1].id);
		CHECK(r.identities[1] == 0x8000000000000001ULL);
		CHECK_INT(r.received[1], 222);
		CHECK_STR(label(r.alerts[1], "alertname"), "B");
	}
	replayed_free(&r);
	coord_journal_close(j);
	coord_alert_free(a[0]);
	coord_alert_free(a[1]);
	tmp_remove(&t);
}

// Scanned actions, copied.
struct scanned {
	int n;
	int64_t ids[16];
	uint64_t identity[16];
	char state[16][32];
	char detail[16][32];
	char node[16][32];
	int64_t updated[16];
	int attempt[16];
};

static void
scan_cb(const struct coord_action_rec *rec, int64_t updated_ms, void *arg)
{
	struct scanned *s = arg;

	if (s->n >= 16)
		return;
	s->ids[s->n] = rec->id;
	s->identity[s->n] = rec->identity;
	snprintf(s->state[s->n], 32, "%s", rec->state);
	snprintf(s->detail[s->n], 32, "%s", rec->detail ? rec->detail : "-");
	snprintf(s->node[s->n], 32, "%s", rec->node ? rec->node : "-");
	s->updated[s->n] = updated_ms;
	s->attempt[s->n] = rec->attempt;
	s->n++;
}

static void
test_actions_insert_update_scan(void)
{
	struct coord_action_rec a = {
		.alert_id = 7, .identity = 0xffffffff00000001ULL,
		.incident_start_ms = 100, .rule = "restart-checkout",
		.type = "restart", .service = "checkout", .instance = "c-1",
		.node = "node-a", .state = "planned", .detail = NULL,
		.attempt = 1, .created_ms = 1000,
	};
	struct coord_action_rec b = a;
	struct coord_journal_stats st;
	struct scanned s = { 0 };
	struct coord_journal *j;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	CHECK_INT(coord_journal_action_insert(j, &a), 0);
	CHECK(a.id > 0);
	b.node = NULL;
	b.attempt = 2;
	b.created_ms = 2000;
	CHECK_INT(coord_journal_action_insert(j, &b), 0);
	CHECK(b.id > a.id);
	CHECK_INT(coord_journal_action_update(j, a.id, "dispatched", "sent",
	    1500), 0);
	CHECK_INT(coord_journal_action_update(j, a.id, "succeeded", NULL,
	    1600), 0);
	CHECK_INT(coord_journal_action_update(j, 424242, "failed", NULL, 1),
	    -ENOENT);
	CHECK_INT(coord_journal_action_update(j, a.id, NULL, NULL, 1),
	    -EINVAL);
	b.rule = NULL;
	CHECK_INT(coord_journal_action_insert(j, &b), -EINVAL);

	CHECK_INT(coord_journal_scan_actions(j, 0, scan_cb, &s), 0);
	CHECK_INT(s.n, 2);
	CHECK_INT(s.ids[0], a.id);
	CHECK(s.identity[0] == 0xffffffff00000001ULL);
	CHECK_STR(s.state[0], "succeeded");
	CHECK_STR(s.detail[0], "sent");	// NULL detail kept the old one
	CHECK_STR(s.node[0], "node-a");
	CHECK_INT(s.updated[0], 1600);
	CHECK_INT(s.attempt[0], 1);
	CHECK_INT(s.ids[1], b.id);
	CHECK_STR(s.state[1], "planned");
	CHECK_STR(s.node[1], "-");
	CHECK_INT(s.updated[1], 2000);	// starts as created_ms
	CHECK_INT(s.attempt[1], 2);

	memset(&s, 0, sizeof(s));
	CHECK_INT(coord_journal_scan_actions(j, 1001, scan_cb, &s), 0);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.ids[0], b.id);

	coord_journal_stats(j, &st);
	CHECK_INT(st.actions, 2);
	coord_journal_close(j);
}

// A fan-out's rows: one commit for all of them, ids in order; a bad
// record refuses the whole call and stores nothing.
static void
test_actions_insert_many(void)
{
	struct coord_action_rec recs[300];
	struct coord_journal_stats st;
	struct scanned s = { 0 };
	struct coord_journal *j;
	int64_t commits;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	for (size_t i = 0; i < 300; i++)
		recs[i] = (struct coord_action_rec){
			.alert_id = 9, .rule = "restart-all", .type = "restart",
			.service = "svc", .instance = "", .node = "node-x",
			.state = "dispatched", .attempt = 1, .created_ms = 1000,
		};
	coord_journal_stats(j, &st);
	commits = st.commits;
	CHECK_INT(coord_journal_action_insert_many(j, recs, 300), 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.commits - commits, 1);
	CHECK_INT(st.actions, 300);
	CHECK(recs[0].id > 0);
	for (size_t i = 1; i < 300; i++)
		CHECK_INT(recs[i].id, recs[i - 1].id + 1);
	CHECK_INT(coord_journal_scan_actions(j, 0, scan_cb, &s), 0);
	CHECK_INT(s.n, 16); // scan_cb keeps the first 16
	CHECK_STR(s.state[0], "dispatched");

	recs[7].state = NULL;
	CHECK_INT(coord_journal_action_insert_many(j, recs, 10), -EINVAL);
	CHECK_INT(coord_journal_action_insert_many(j, recs, 0), -EINVAL);
	CHECK_INT(coord_journal_action_insert_many(j, NULL, 1), -EINVAL);
	coord_journal_stats(j, &st);
	CHECK_INT(st.actions, 300);
	coord_journal_close(j);
}

// Labels and annotations are stored as JSON text written by the journal
// itself: quotes, backslashes, control characters and UTF-8 come back
// from a replay exactly as they went in.
static void
test_label_json_round_trip(void)
{
	static const char odd[] = "q\"b\\t\tn\nr\rc\x01\x1f \xc3\xa9/\xe2\x82\xac";
	struct coord_alert *a = mk_alert("Odd", 1, odd);
	struct coord_alert_rec rec;
	struct replayed r = { 0 };
	struct coord_journal *j;

	free(a->labels.v[1].val); // "seq"
	a->labels.v[1].val = xstrdup(odd);
	j = open_ok(":memory:", NULL);
	if (j == NULL)
		goto out;
	rec_init(&rec, a, 1);
	CHECK_INT(submit_wait(j, &rec, 1), 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1) {
		CHECK_STR(coord_kvs_get(&r.alerts[0]->labels, "seq"), odd);
		CHECK_STR(coord_kvs_get(&r.alerts[0]->labels, "alertname"),
		    "Odd");
		CHECK_STR(coord_kvs_get(&r.alerts[0]->annotations, "summary"),
		    odd);
	}
	replayed_free(&r);
	coord_journal_close(j);
out:
	coord_alert_free(a);
}

// The same for 400 random values: plain runs of every length around the
// 8-byte words json_str scans by, with quotes, backslashes, control bytes,
// DEL and UTF-8 at every offset.
static void
test_label_json_random(void)
{
	static const char *const pieces[] = { "\"", "\\", "\n", "\x01",
		"\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", " ", "/" };
	enum { N = 400 };
	struct coord_alert *a[N];
	struct coord_alert_rec recs[N];
	struct replayed r = { 0 };
	struct coord_journal *j;
	int bad = 0;

	(void)tt_seed();
	for (int i = 0; i < N; i++) {
		char v[128];
		size_t o = 0;

		while (o < 80) {
			int k = rand() % 12;
			size_t plain = (size_t)(rand() % 20);

			for (size_t p = 0; p < plain; p++, o++)
				v[o] = (char)('a' + (int)(o % 26));
			if (k < 10) {
				size_t len = strlen(pieces[k]);

				memcpy(v + o, pieces[k], len);
				o += len;
			} else if (k == 10) {
				break;
			}
		}
		v[o] = '\0';
		a[i] = mk_alert("Rand", i, v);
		free(a[i]->labels.v[1].val); // "seq"
		a[i]->labels.v[1].val = xstrdup(v);
		rec_init(&recs[i], a[i], i + 1);
	}
	j = open_ok(":memory:", NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(submit_wait(j, recs, N), 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, N);
	for (size_t i = 0; i < r.n && i < N; i++) {
		const char *want = a[i]->labels.v[1].val;
		const char *l = coord_kvs_get(&r.alerts[i]->labels, "seq");
		const char *s = coord_kvs_get(&r.alerts[i]->annotations,
		    "summary");

		if (l == NULL || s == NULL || strcmp(l, want) != 0 ||
		    strcmp(s, want) != 0) {
			if (bad++ == 0)
				printf("# value %zu differs\n", i);
		}
	}
	CHECK_INT(bad, 0);
	replayed_free(&r);
	coord_journal_close(j);
out:
	for (int i = 0; i < N; i++)
		coord_alert_free(a[i]);
}

// Labels and annotations the alert brings as JSON text (labels_json,
// annotations_json: the parser's, when the body held the journal's own
// text) are stored as they are; the same alerts parsed from a body whose
// text the journal encodes instead (space, keys out of order, an escape)
// are stored byte for byte the same.
static void
test_label_json_own(void)
{
	static const char as_sent[] = "{\"version\":\"4\",\"alerts\":["
	    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\","
	    "\"instance\":\"h:1\",\"job\":\"a b\xc3\xa9\"},\"annotations\":"
	    "{\"d\":\"x/y\",\"s\":\"5%\"}}]}";
	static const char reworded[] = "{\"version\":\"4\",\"alerts\":["
	    "{\"status\":\"firing\",\"labels\":{\"job\":\"a b\\u00e9\", "
	    "\"alertname\":\"A\",\"instance\":\"h:1\"},\"annotations\":"
	    "{\"d\":\"x\\/y\",\n\"s\":\"5%\"}}]}";
	struct coord_notification *n[2] = { NULL, NULL };
	struct coord_alert_rec recs[3];
	struct coord_alert *own = mk_alert("Own", 1, "s");
	struct coord_journal *j;
	char err[256], buf[2][512];
	struct tmp t;

	CHECK_INT(coord_webhook_parse(&n[0], as_sent, strlen(as_sent), NULL,
	    err, sizeof(err)), 0);
	CHECK_INT(coord_webhook_parse(&n[1], reworded, strlen(reworded),
	    NULL, err, sizeof(err)), 0);
	if (n[0] == NULL || n[1] == NULL)
		goto out;
	CHECK(n[0]->alerts[0].labels_json != NULL);
	CHECK(n[0]->alerts[0].annotations_json != NULL);
	CHECK(n[1]->alerts[0].labels_json == NULL);
	CHECK(n[1]->alerts[0].annotations_json == NULL);
	// Stored as given, even where it says other than the sets (which
	// the journal would write as {"alertname":"Own",...}).
	own->labels_json = "{\"given\":\"as is\"}";
	own->labels_json_len = strlen(own->labels_json);
	own->annotations_json = "{\"also\":\"x\"}...";
	own->annotations_json_len = strlen("{\"also\":\"x\"}");
	tmp_make(&t);
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out_tmp;
	rec_init(&recs[0], &n[0]->alerts[0], 1);
	rec_init(&recs[1], &n[1]->alerts[0], 2);
	rec_init(&recs[2], own, 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(submit_wait(j, &recs[i], 1), 0);
	coord_journal_close(j);
	for (int c = 0; c < 2; c++) {
		const char *col = c == 0 ? "labels" : "annotations";
		char sql[128];

		for (int i = 0; i < 2; i++) {
			snprintf(sql, sizeof(sql), "SELECT %s FROM alerts"
			    " WHERE id = %" PRId64, col, recs[i].id);
			db_text(t.db, sql, buf[i], sizeof(buf[i]));
		}
		CHECK_STR(buf[0], buf[1]);
		CHECK_STR(buf[0], c == 0 ? "{\"alertname\":\"A\",\"instance\":"
		    "\"h:1\",\"job\":\"a b\xc3\xa9\"}" :
		    "{\"d\":\"x/y\",\"s\":\"5%\"}");
		snprintf(sql, sizeof(sql), "SELECT %s FROM alerts WHERE id = %"
		    PRId64, col, recs[2].id);
		db_text(t.db, sql, buf[0], sizeof(buf[0]));
		CHECK_STR(buf[0], c == 0 ? "{\"given\":\"as is\"}" :
		    "{\"also\":\"x\"}");
	}
out_tmp:
	tmp_remove(&t);
out:
	coord_notification_free(n[0]);
	coord_notification_free(n[1]);
	own->labels_json = own->annotations_json = NULL;
	coord_alert_free(own);
}

// Waits for a batch's callback.
struct bwait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rv;
};

static void
bwait_cb(int rv, void *arg)
{
	struct bwait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->done = true;
	w->rv = rv;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int
batch_wait(struct coord_journal_batch *b)
{
	struct bwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
		false, 0 };
	int rv = coord_journal_batch_submit(b, bwait_cb, &w);

	if (rv < 0)
		return rv;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	return w.rv;
}

// The engine's writes of a turn: an alert's outcome, action rows (ids
// known before the commit) and updates go in ONE commit, in order; an
// update of a missing row is skipped; a batch that cannot be stored
// stores nothing and its ids are never handed out again.
static void
test_batch_one_commit(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.max_bytes = 96 * 1024 };
	struct coord_alert *a = mk_alert("Batch", 1, "s");
	struct coord_action_rec recs[3], late;
	struct coord_journal_batch *b;
	struct coord_journal_stats st;
	struct coord_alert_rec ar;
	struct replayed r = { 0 };
	struct scanned s = { 0 };
	struct coord_journal *j;
	int64_t commits;
	char *huge;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&ar, a, 1);
	CHECK_INT(submit_wait(j, &ar, 1), 0);
	b = coord_journal_batch_new(j);
	CHECK(b != NULL);
	CHECK_INT(coord_journal_batch_alert_done(b, ar.id, "acted", "rule x"),
	    0);
	for (int i = 0; i < 3; i++) {
		recs[i] = (struct coord_action_rec){
			.alert_id = ar.id, .rule = "r", .type = "restart",
			.service = "svc", .instance = "", .node = "node-x",
			.state = "dispatched", .attempt = 1, .created_ms = 1000,
		};
		CHECK_INT(coord_journal_batch_action_insert(b, &recs[i]), 0);
		CHECK(recs[i].id > 0);
		if (i > 0)
			CHECK_INT(recs[i].id, recs[i - 1].id + 1);
	}
	CHECK_INT(coord_journal_batch_action_update(b, recs[1].id,
	    "succeeded", "ok", 2000), 0);
	CHECK_INT(coord_journal_batch_action_update(b, 999999, "failed", NULL,
	    2000), 0);
	recs[2].rule = NULL;
	CHECK_INT(coord_journal_batch_action_insert(b, &recs[2]), -EINVAL);
	CHECK_INT(recs[2].id, 0);
	CHECK_INT(coord_journal_batch_alert_done(b, 1, NULL, NULL), -EINVAL);
	CHECK_INT(coord_journal_batch_len(b), 6);
	coord_journal_stats(j, &st);
	commits = st.commits;
	CHECK_INT(batch_wait(b), 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.commits - commits, 1);
	CHECK_INT(st.actions, 3);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 0); // the outcome is stored
	replayed_free(&r);
	CHECK_INT(coord_journal_scan_actions(j, 0, scan_cb, &s), 0);
	CHECK_INT(s.n, 3);
	CHECK_INT(s.ids[0], recs[0].id);
	CHECK_STR(s.state[0], "dispatched");
	CHECK_STR(s.state[1], "succeeded");
	CHECK_STR(s.detail[1], "ok");

	// Too big for the cap: nothing of it is stored.
	huge = xcalloc(1, 200 * 1024);
	memset(huge, 'x', 200 * 1024 - 1);
	b = coord_journal_batch_new(j);
	recs[0].detail = huge;
	CHECK_INT(coord_journal_batch_action_update(b, recs[0].id, "failed",
	    "gone", 3000), 0);
	CHECK_INT(coord_journal_batch_action_insert(b, &recs[0]), 0);
	late = recs[0];
	CHECK_INT(batch_wait(b), -ENOSPC);
	free(huge);
	coord_journal_stats(j, &st);
	CHECK_INT(st.actions, 3);
	memset(&s, 0, sizeof(s));
	CHECK_INT(coord_journal_scan_actions(j, 0, scan_cb, &s), 0);
	CHECK_STR(s.state[0], "dispatched"); // the update rolled back too
	recs[1].detail = NULL;
	CHECK_INT(coord_journal_action_insert(j, &recs[1]), 0);
	CHECK(recs[1].id > late.id);
	coord_journal_batch_free(NULL);
	CHECK_INT(coord_journal_batch_submit(NULL, bwait_cb, NULL), -EINVAL);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// A webhook's alerts go up to four to an INSERT: 1 to 9 alerts per
// submission, each rec gets the id of its own row (labels, received time
// and fingerprint read back by id), ids in order. Receiver and group key
// are bound once per statement: each submission has its own, and some
// alerts (the 4th of 7 and 8, the 2nd of 9) another or none, so a
// statement takes only alerts that share them; each row's pair is read
// back.
static void
test_alert_groups_ids(void)
{
	enum { N = 45 }; // 1 + 2 + ... + 9
	struct coord_alert *a[N];
	struct coord_alert_rec recs[N];
	char rcv[N][16], gk[N][16];
	struct coord_journal *j;
	sqlite3_stmt *st;
	sqlite3 *db;
	int bad = 0, at = 0, rows = 0;
	char want[16];
	struct tmp t;

	tmp_make(&t);
	for (int n = 1, i = 0; n <= 9; n++)
		for (int k = 0; k < n; k++, i++) {
			a[i] = mk_alert("Ids", i, "s");
			rec_init(&recs[i], a[i], 5000 + i);
			snprintf(rcv[i], sizeof(rcv[i]), "rcv-%d%s", n,
			    (n == 7 || n == 8) && k == 3 ? "x" : "");
			snprintf(gk[i], sizeof(gk[i]), "gk-%d", n);
			recs[i].receiver = rcv[i];
			recs[i].group_key = n == 9 && k == 1 ? NULL : gk[i];
		}
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	for (int n = 1; n <= 9; at += n, n++)
		CHECK_INT(submit_wait(j, recs + at, (size_t)n), 0);
	for (int i = 0; i < N; i++) {
		struct coord_alert *got = NULL;
		int64_t recv = 0;

		snprintf(want, sizeof(want), "%d", i);
		if (coord_journal_read_alert(j, recs[i].id, &got, &recv) != 0 ||
		    got == NULL || recv != 5000 + i ||
		    strcmp(coord_kvs_get(&got->labels, "seq"), want) != 0 ||
		    (i > 0 && recs[i].id != recs[i - 1].id + 1))
			if (bad++ == 0)
				printf("# alert %d: id %lld\n", i,
				    (long long)recs[i].id);
		coord_alert_free(got);
	}
	CHECK_INT(bad, 0);
	coord_journal_close(j);

	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_prepare_v2(db, "SELECT id, receiver, group_key"
	    " FROM alerts ORDER BY id", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int i = rows++;
		const char *r = (const char *)sqlite3_column_text(st, 1);
		const char *g = (const char *)sqlite3_column_text(st, 2);

		if (i >= N || sqlite3_column_int64(st, 0) != recs[i].id ||
		    r == NULL || strcmp(r, recs[i].receiver) != 0 ||
		    (recs[i].group_key == NULL ? g != NULL : g == NULL ||
		    strcmp(g, recs[i].group_key) != 0))
			if (bad++ == 0)
				printf("# row %d: %s %s\n", i, r ? r : "(null)",
				    g ? g : "(null)");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	CHECK_INT(rows, N);
	CHECK_INT(bad, 0);
out:
	for (int i = 0; i < N; i++)
		coord_alert_free(a[i]);
	tmp_remove(&t);
}

// Outcomes of pending alerts go up to eight to a statement, any number
// from two: batches of 1 to 17 outcomes (every group size and remainder),
// each row read back with its own outcome, detail and time; ids of
// another batch left alone.
static void
test_batch_outcome_runs(void)
{
	enum { N = 153 }; // 1 + 2 + ... + 17
	struct coord_alert *a[N];
	struct coord_alert_rec recs[N];
	struct coord_journal *j;
	sqlite3_stmt *st;
	sqlite3 *db;
	char want[32];
	int bad = 0, rows = 0;
	struct tmp t;

	tmp_make(&t);
	for (int i = 0; i < N; i++) {
		a[i] = mk_alert("Runs", i, "s");
		rec_init(&recs[i], a[i], i + 1);
	}
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(submit_wait(j, recs, N), 0);
	for (int n = 1, i = 0; n <= 17; n++) {
		struct coord_journal_batch *b = coord_journal_batch_new(j);

		for (int k = 0; k < n; k++, i++) {
			snprintf(want, sizeof(want), "o-%d-%d", n, k);
			CHECK_INT(coord_journal_batch_alert_done(b, recs[i].id,
			    want, k % 2 == 0 ? want + 2 : NULL), 0);
		}
		CHECK_INT(batch_wait(b), 0);
	}
	coord_journal_close(j);

	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_prepare_v2(db, "SELECT alert_id, outcome, detail,"
	    " done_ms FROM alert_outcomes ORDER BY alert_id", -1, &st, NULL),
	    SQLITE_OK);
	for (int n = 1, i = 0; n <= 17; n++)
		for (int k = 0; k < n; k++, i++) {
			const char *o, *d;

			if (sqlite3_step(st) != SQLITE_ROW)
				break;
			rows++;
			o = (const char *)sqlite3_column_text(st, 1);
			d = (const char *)sqlite3_column_text(st, 2);
			snprintf(want, sizeof(want), "o-%d-%d", n, k);
			if (sqlite3_column_int64(st, 0) != recs[i].id ||
			    o == NULL || strcmp(o, want) != 0 ||
			    (k % 2 == 0 ? d == NULL || strcmp(d, want + 2) :
			    d != NULL) || sqlite3_column_int64(st, 3) <= 0)
				if (bad++ == 0)
					printf("# batch %d row %d: %s %s\n", n,
					    k, o ? o : "(null)",
					    d ? d : "(null)");
		}
	CHECK(sqlite3_step(st) == SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	CHECK_INT(rows, N);
	CHECK_INT(bad, 0);
out:
	for (int i = 0; i < N; i++)
		coord_alert_free(a[i]);
	tmp_remove(&t);
}

// A batch's outcomes of pending alerts go eight to a statement: every
// row as if written one by one, in order (the second outcome of one alert
// wins), an outcome for an alert not stored (no row) and the other rows
// between them as before.
static void
test_batch_outcome_groups(void)
{
	enum { N = 30 };
	struct coord_alert *a[N];
	struct coord_alert_rec recs[N];
	struct coord_action_rec act;
	struct coord_journal_batch *b;
	struct replayed r = { 0 };
	struct coord_journal *j;
	sqlite3_stmt *st;
	sqlite3 *db;
	char want[32], detail[32];
	int rows = 0, bad = 0;
	struct tmp t;

	tmp_make(&t);
	for (int i = 0; i < N; i++) {
		a[i] = mk_alert("Group", i, "s");
		rec_init(&recs[i], a[i], i + 1);
	}
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(submit_wait(j, recs, N), 0);
	b = coord_journal_batch_new(j);
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "outcome-%d", i);
		snprintf(detail, sizeof(detail), "detail %d", i);
		if (i == 10) // not stored: no row, and no failure
			CHECK_INT(coord_journal_batch_alert_done(b, 999999,
			    "acted", "x"), 0);
		if (i == 12) // decided twice in the batch: the last wins
			CHECK_INT(coord_journal_batch_alert_done(b,
			    recs[i].id, "deferred", NULL), 0);
		if (i == 20) {
			act = (struct coord_action_rec){
				.alert_id = recs[i].id, .rule = "r",
				.type = "restart", .service = "svc",
				.instance = "", .node = "n", .state = "dispatched",
				.attempt = 1, .created_ms = 1000,
			};
			CHECK_INT(coord_journal_batch_action_insert(b, &act),
			    0);
		}
		CHECK_INT(coord_journal_batch_alert_done(b, recs[i].id, want,
		    i % 3 == 0 ? NULL : detail), 0);
	}
	CHECK_INT(batch_wait(b), 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 0);
	replayed_free(&r);
	coord_journal_close(j);

	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_prepare_v2(db, "SELECT alert_id, outcome, detail"
	    " FROM alert_outcomes ORDER BY alert_id", -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int i = rows++;
		const char *o = (const char *)sqlite3_column_text(st, 1);
		const char *d = (const char *)sqlite3_column_text(st, 2);

		snprintf(want, sizeof(want), "outcome-%d", i);
		snprintf(detail, sizeof(detail), "detail %d", i);
		if (i >= N || sqlite3_column_int64(st, 0) != recs[i].id ||
		    o == NULL || strcmp(o, want) != 0 ||
		    (i % 3 == 0 ? d != NULL : d == NULL || strcmp(d, detail)))
			if (bad++ == 0)
				printf("# row %d: %lld %s %s\n", i,
				    (long long)sqlite3_column_int64(st, 0),
				    o ? o : "(null)", d ? d : "(null)");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	CHECK_INT(rows, N);
	CHECK_INT(bad, 0);
out:
	for (int i = 0; i < N; i++)
		coord_alert_free(a[i]);
	tmp_remove(&t);
}

// Inserts one alert named `name` and returns its id.
static int64_t
insert_named_alert(struct coord_journal *j, const char *name, int seq)
{
	struct coord_alert_rec rec;
	struct coord_alert *a = mk_alert(name, seq, "s");
	int rv;

	rec_init(&rec, a, seq);
	rv = submit_wait(j, &rec, 1);
	CHECK_INT(rv, 0);
	coord_alert_free(a);
	return rec.id;
}

// The array a query function (actions or alerts) answers.
static cJSON *
query_with(int (*fn)(struct coord_journal *,
    const struct coord_journal_filter *, char **), struct coord_journal *j,
    const struct coord_journal_filter *f)
{
	char *text = NULL;
	cJSON *arr;

	CHECK_INT(fn(j, f, &text), 0);
	arr = text != NULL ? cJSON_Parse(text) : NULL;
	CHECK(cJSON_IsArray(arr));
	free(text);
	return arr;
}

static cJSON *
query(struct coord_journal *j, const struct coord_journal_filter *f)
{
	return query_with(coord_journal_query_actions, j, f);
}

static int64_t
num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static const char *
str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsNull(v))
		return "null";
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static cJSON *
query_alerts(struct coord_journal *j, const struct coord_journal_filter *f)
{
	return query_with(coord_journal_query_alerts, j, f);
}

// Checks that arr holds the alerts of ids[0..n) in that order, and frees
// it.
static void
check_ids(cJSON *arr, const int64_t *ids, int n)
{
	CHECK_INT(cJSON_GetArraySize(arr), n);
	for (int i = 0; i < n && i < cJSON_GetArraySize(arr); i++)
		CHECK_INT(num(cJSON_GetArrayItem(arr, i), "id"), ids[i]);
	cJSON_Delete(arr);
}

// GET /api/v1/alerts and `reflex-coordinator alerts`: alerts with what
// was decided for them, newest first, filtered by the service label,
// alertname, outcome (a bare word also matches its "word:..." forms, and
// only those) and arrival time.
static void
test_query_alerts(void)
{
	struct coord_journal_filter f;
	struct coord_journal *j;
	int64_t id[4];
	const cJSON *o;
	cJSON *arr;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	id[0] = insert_named_alert(j, "HighLatency", 1);
	id[1] = insert_named_alert(j, "DiskFull", 2);
	id[2] = insert_named_alert(j, "HighLatency", 3);
	id[3] = insert_named_alert(j, "HighLatency", 4); // left pending
	CHECK_INT(coord_journal_alert_done(j, id[0], "acted", NULL), 0);
	CHECK_INT(coord_journal_alert_done(j, id[1], "refused:blast_radius",
	    "2 of 2 instances"), 0);
	CHECK_INT(coord_journal_alert_done(j, id[2], "refusedness", NULL), 0);

	arr = query_alerts(j, NULL);
	o = cJSON_GetArrayItem(arr, 3);
	CHECK_STR(str(o, "alertname"), "HighLatency");
	CHECK_STR(str(o, "outcome"), "acted");
	CHECK_STR(str(o, "service"), "checkout");
	CHECK_STR(str(o, "instance"), "null");
	CHECK_STR(str(o, "status"), "firing");
	CHECK_STR(str(o, "fingerprint"), "fp-1");
	CHECK(str(o, "decided")[0] >= '1' && str(o, "decided")[0] <= '9');
	CHECK_STR(str(cJSON_GetObjectItemCaseSensitive(o, "labels"), "seq"),
	    "1");
	o = cJSON_GetArrayItem(arr, 0);
	CHECK_STR(str(o, "outcome"), "pending");
	CHECK_STR(str(o, "decided"), "null");
	CHECK_STR(str(cJSON_GetArrayItem(arr, 2), "detail"),
	    "2 of 2 instances");
	check_ids(arr, (int64_t[]){ id[3], id[2], id[1], id[0] }, 4);

	memset(&f, 0, sizeof(f));
	f.state = "refused"; // not "refusedness"
	check_ids(query_alerts(j, &f), (int64_t[]){ id[1] }, 1);
	f.state = "refused:blast_radius";
	check_ids(query_alerts(j, &f), (int64_t[]){ id[1] }, 1);
	f.state = "refuse";
	check_ids(query_alerts(j, &f), NULL, 0);
	f.state = "pending";
	check_ids(query_alerts(j, &f), (int64_t[]){ id[3] }, 1);

	memset(&f, 0, sizeof(f));
	f.alertname = "HighLatency";
	f.limit = 2;
	check_ids(query_alerts(j, &f), (int64_t[]){ id[3], id[2] }, 2);
	memset(&f, 0, sizeof(f));
	f.service = "cart";
	check_ids(query_alerts(j, &f), NULL, 0);
	f.service = "checkout";
	f.since_ms = 3; // received_ms is the seq here
	check_ids(query_alerts(j, &f), (int64_t[]){ id[3], id[2] }, 2);
	coord_journal_close(j);
}

static void
test_query_filters_and_limit(void)
{
	static const char *const services[] = { "checkout", "cart" };
	static const char *const states[] = { "succeeded", "failed" };
	struct coord_journal_filter f;
	struct coord_action_rec a;
	struct coord_journal *j;
	int64_t alert_ids[2], ids[8];
	const cJSON *o;
	cJSON *arr;
	int i;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	alert_ids[0] = insert_named_alert(j, "HighLatency", 1);
	alert_ids[1] = insert_named_alert(j, "DiskFull", 2);
	// 8 actions: service alternates, alert every 2, state every 4;
	// created times not in id order for the last one.
	for (i = 0; i < 8; i++) {
		memset(&a, 0, sizeof(a));
		a.alert_id = alert_ids[(i / 2) % 2];
		a.rule = "rule";
		a.type = "restart";
		a.service = services[i % 2];
		a.instance = "inst";
		a.node = i == 0 ? "node-a" : NULL;
		a.state = states[i / 4];
		a.detail = i == 0 ? "exit \"1\"" : NULL;
		a.attempt = i + 1;
		a.created_ms = i == 7 ? 1700000000500LL :
		    1700000000000LL + (i + 1) * 1000;
		CHECK_INT(coord_journal_action_insert(j, &a), 0);
		ids[i] = a.id;
	}
	CHECK_INT(coord_journal_action_update(j, ids[0], "succeeded", NULL,
	    1700000100000LL), 0);

	// No filter: newest created first; #7 was created first of all.
	arr = query(j, NULL);
	CHECK_INT(cJSON_GetArraySize(arr), 8);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 0), "id"), ids[6]);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 6), "id"), ids[0]);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 7), "id"), ids[7]);
	o = cJSON_GetArrayItem(arr, 6);
	CHECK_INT(num(o, "alert_id"), alert_ids[0]);
	CHECK_STR(str(o, "alertname"), "HighLatency");
	CHECK_STR(str(o, "rule"), "rule");
	CHECK_STR(str(o, "type"), "restart");
	CHECK_STR(str(o, "service"), "checkout");
	CHECK_STR(str(o, "instance"), "inst");
	CHECK_STR(str(o, "node"), "node-a");
	CHECK_STR(str(o, "state"), "succeeded");
	CHECK_STR(str(o, "detail"), "exit \"1\"");
	CHECK_INT(num(o, "attempt"), 1);
	CHECK_STR(str(o, "created"), "2023-11-14T22:13:21.000Z");
	CHECK_STR(str(o, "updated"), "2023-11-14T22:15:00.000Z");
	CHECK_STR(str(cJSON_GetArrayItem(arr, 0), "node"), "null");
	CHECK_STR(str(cJSON_GetArrayItem(arr, 0), "detail"), "null");
	cJSON_Delete(arr);

	memset(&f, 0, sizeof(f));
	f.service = "cart";
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 4);
	for (i = 0; i < cJSON_GetArraySize(arr); i++)
		CHECK_STR(str(cJSON_GetArrayItem(arr, i), "service"), "cart");
	cJSON_Delete(arr);

	memset(&f, 0, sizeof(f));
	f.alertname = "DiskFull";
	f.state = "failed";
	arr = query(j, &f);
	// Actions 6 and 7: alert index (i/2)%2 == 1 and i >= 4.
	CHECK_INT(cJSON_GetArraySize(arr), 2);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 0), "id"), ids[6]);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 1), "id"), ids[7]);
	cJSON_Delete(arr);

	memset(&f, 0, sizeof(f));
	f.since_ms = 1700000000000LL + 3000;
	f.limit = 2;
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 2);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 0), "id"), ids[6]);
	CHECK_INT(num(cJSON_GetArrayItem(arr, 1), "id"), ids[5]);
	cJSON_Delete(arr);

	memset(&f, 0, sizeof(f));
	f.since_ms = 1700000000000LL + 3000;
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 5);	// #2..#6
	cJSON_Delete(arr);

	memset(&f, 0, sizeof(f));
	f.service = "no-such-service";
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);

	// A filter value is data, never SQL.
	memset(&f, 0, sizeof(f));
	f.service = "x' OR '1'='1";
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);
	coord_journal_close(j);
}

static void
test_query_limit_bounds(void)
{
	struct coord_journal_filter f = { .limit = 5000 };
	struct coord_action_rec a;
	struct coord_journal *j;
	cJSON *arr;
	int i;

	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	for (i = 0; i < 1100; i++) {
		memset(&a, 0, sizeof(a));
		a.rule = "r";
		a.type = "restart";
		a.service = "s";
		a.instance = "i";
		a.state = "planned";
		a.created_ms = i;
		CHECK_INT(coord_journal_action_insert(j, &a), 0);
	}
	arr = query(j, NULL);
	CHECK_INT(cJSON_GetArraySize(arr), 100);	// default
	cJSON_Delete(arr);
	arr = query(j, &f);
	CHECK_INT(cJSON_GetArraySize(arr), 1000);	// maximum
	CHECK_STR(str(cJSON_GetArrayItem(arr, 0), "alertname"), "null");
	cJSON_Delete(arr);
	coord_journal_close(j);
}

// Group commit: while the writer is held in the first callback, four
// threads queue 1000 single-alert submissions; they must then be
// committed in exactly ceil(1000 / max_batch) transactions, each
// thread's submissions in its own order.
#define GC_THREADS 4
#define GC_PER 250

struct gc_thread {
	struct coord_journal *j;
	struct coord_alert *alert;
	struct coord_alert_rec recs[GC_PER];
	struct waiter w;
	int submit_errors;
};

static void *
gc_main(void *arg)
{
	struct gc_thread *t = arg;
	int i;

	for (i = 0; i < GC_PER; i++) {
		rec_init(&t->recs[i], t->alert, i);
		if (coord_journal_submit_alerts(t->j, &t->recs[i], 1,
		    waiter_cb, &t->w) != 0)
			t->submit_errors++;
	}
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_group_commit(void)
{
	struct coord_journal_opts o = { .sync_full = true, .max_batch = 100 };
	struct gc_thread *th;
	pthread_t tid[GC_THREADS];
	struct coord_alert *ga = mk_alert("Gate", 0, "g");
	struct coord_alert_rec grec;
	struct coord_journal_stats st;
	struct gate g = GATE_INIT;
	struct coord_journal *j;
	int64_t *all;
	int i, k, n = 0;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	th = xcalloc(GC_THREADS, sizeof(*th));
	all = xcalloc(GC_THREADS * GC_PER, sizeof(*all));
	if (j == NULL)
		goto out;
	rec_init(&grec, ga, 0);
	CHECK_INT(coord_journal_submit_alerts(j, &grec, 1, gate_cb, &g), 0);
	gate_wait_entered(&g);
	for (i = 0; i < GC_THREADS; i++) {
		th[i].j = j;
		th[i].alert = mk_alert("Load", i, "l");
		pthread_mutex_init(&th[i].w.mu, NULL);
		pthread_cond_init(&th[i].w.cv, NULL);
		CHECK_INT(pthread_create(&tid[i], NULL, gc_main, &th[i]), 0);
	}
	for (i = 0; i < GC_THREADS; i++)
		pthread_join(tid[i], NULL);
	gate_release(&g);
	for (i = 0; i < GC_THREADS; i++) {
		waiter_wait(&th[i].w, GC_PER);
		CHECK_INT(th[i].submit_errors, 0);
		CHECK_INT(th[i].w.failures, 0);
		for (k = 0; k < GC_PER; k++) {
			CHECK(th[i].recs[k].id > 0);
			if (k > 0)
				CHECK(th[i].recs[k].id >
				    th[i].recs[k - 1].id);
			all[n++] = th[i].recs[k].id;
		}
	}
	qsort(all, (size_t)n, sizeof(*all), cmp_i64);
	for (i = 1; i < n; i++)
		CHECK(all[i] != all[i - 1]);
	coord_journal_stats(j, &st);
	printf("# %d submissions, %lld commits\n", GC_THREADS * GC_PER + 1,
	    (long long)st.commits);
	// The gate's batch; while the syncer was blocked, at most as many
	// partial batches as its ring holds (SYNC_QUEUE, 16) and one more
	// waiting for room; then full batches of 100.
	CHECK(st.commits >= 1 + GC_THREADS * GC_PER / 100);
	CHECK(st.commits <= 2 + 16 + GC_THREADS * GC_PER / 100);
	CHECK_INT(st.alerts, GC_THREADS * GC_PER + 1);
	CHECK_INT(st.commit_errors, 0);
	coord_journal_close(j);
	for (i = 0; i < GC_THREADS; i++)
		coord_alert_free(th[i].alert);
out:
	free(all);
	free(th);
	coord_alert_free(ga);
	tmp_remove(&t);
}

static void
beside_count_cb(int64_t id, uint64_t identity, int64_t received_ms,
    struct coord_alert *alert, void *arg)
{
	(void)id;
	(void)identity;
	(void)received_ms;
	coord_alert_free(alert);
	(*(int *)arg)++;
}

// sync_full on a file: the fsync and the callbacks run beside the writer,
// so the next batch commits while a callback still runs; its own callback
// comes only after the earlier one returned (completion order).
static void
test_commit_beside_sync(void)
{
	struct coord_journal_opts o = { .sync_full = true };
	struct coord_alert *a = mk_alert("P", 1, "p");
	struct coord_alert *b = mk_alert("P", 2, "p");
	struct coord_alert_rec grec, rec;
	struct waiter w = WAITER_INIT;
	struct gate g = GATE_INIT;
	struct coord_journal *j;
	int pending = 0, tries;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&grec, a, 0);
	rec_init(&rec, b, 1);
	CHECK_INT(coord_journal_submit_alerts(j, &grec, 1, gate_cb, &g), 0);
	gate_wait_entered(&g);
	CHECK_INT(coord_journal_submit_alerts(j, &rec, 1, waiter_cb, &w), 0);
	// Both rows become visible although the first callback still blocks
	// (waits up to ~10 s on a loaded machine; no time is asserted).
	for (tries = 0; tries < 1000 && pending < 2; tries++) {
		pending = 0;
		CHECK_INT(coord_journal_replay_pending(j, beside_count_cb,
		    &pending), 0);
		if (pending < 2)
			usleep(10000);
	}
	CHECK_INT(pending, 2);
	pthread_mutex_lock(&w.mu);
	CHECK_INT(w.calls, 0);
	pthread_mutex_unlock(&w.mu);
	gate_release(&g);
	waiter_wait(&w, 1);
	CHECK_INT(w.failures, 0);
	CHECK(rec.id > grec.id);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	coord_alert_free(b);
	tmp_remove(&t);
}

// An early callback (coord_journal_early_fn): counts its calls, notes
// the first alert's id, whether the commit was quiet and whether the
// submission's done had run yet, and takes a hold when `hold` and
// quiet. With `block`, it waits (on the writer thread) until released.
// The submission's arg for both callbacks: its done is waiter_cb on the
// first member.
struct early {
	struct waiter w;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int64_t id;
	bool before_done;
	bool quiet;
	bool hold;
	bool block;
};

#define EARLY_INIT(h) { WAITER_INIT, PTHREAD_MUTEX_INITIALIZER, \
	PTHREAD_COND_INITIALIZER, 0, 0, false, false, (h), false }

static unsigned
early_cb(struct coord_alert_rec *recs, size_t n, bool quiet, void *arg)
{
	struct early *e = arg;
	bool none_done;

	pthread_mutex_lock(&e->w.mu);
	none_done = e->w.calls == 0;
	pthread_mutex_unlock(&e->w.mu);
	pthread_mutex_lock(&e->mu);
	e->calls++;
	e->id = n > 0 ? recs[0].id : 0;
	e->before_done = none_done;
	e->quiet = quiet;
	pthread_cond_broadcast(&e->cv);
	while (e->block)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
	return e->hold && quiet ? 1 : 0;
}

static void
early_wait_called(struct early *e)
{
	pthread_mutex_lock(&e->mu);
	while (e->calls == 0)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
}

// Submits one alert with early_cb (done: waiter_cb) and waits until its
// early callback ran.
static void
submit_early_called(struct coord_journal *j, struct coord_alert_rec *rec,
    struct early *e)
{
	CHECK_INT(coord_journal_submit_alerts_early(j, rec, 1, early_cb,
	    waiter_cb, e), 0);
	early_wait_called(e);
}

// Submits one alert with early_cb and waits for its done; returns its rv.
static int
submit_early_wait(struct coord_journal *j, struct coord_alert_rec *rec,
    bool hold, int *early_calls)
{
	struct early e = EARLY_INIT(hold);
	int rv;

	rv = coord_journal_submit_alerts_early(j, rec, 1, early_cb, waiter_cb,
	    &e);
	if (rv < 0)
		return rv;
	waiter_wait(&e.w, 1);
	*early_calls += e.calls;
	return e.w.rv;
}

// The early callback gets the alerts once committed, before their sync,
// and, the commit being quiet, may hold that sync for the writes it
// causes: the alerts' done waits (here: the linger is 60 s, so it cannot
// run out) until the promised batch committed, then one fdatasync covers
// both, and the alerts' done comes before the batch's. A hold is also
// kept by a batch with no rows, or at once by coord_journal_release.
static void
test_early_shares_sync(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.sync_linger_us = 60 * 1000000LL };
	struct coord_alert *a = mk_alert("Early", 1, "e");
	struct coord_action_rec act = { .rule = "r", .type = "restart",
		.service = "svc", .instance = "i-1", .node = "n",
		.state = "dispatched", .attempt = 1, .created_ms = 1000 };
	struct early e = EARLY_INIT(true);
	struct coord_journal_stats st0, st;
	struct coord_journal_batch *b;
	struct coord_alert_rec rec;
	struct coord_journal *j;
	char state[32];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&rec, a, 1);
	coord_journal_stats(j, &st0);
	submit_early_called(j, &rec, &e);
	CHECK(e.id > 0);
	CHECK(e.before_done);
	CHECK(e.quiet);
	usleep(50 * 1000);
	pthread_mutex_lock(&e.w.mu);
	CHECK_INT(e.w.calls, 0); // the syncer waits for the promised write
	pthread_mutex_unlock(&e.w.mu);

	b = coord_journal_batch_new(j);
	CHECK_INT(coord_journal_batch_alert_done(b, e.id, "acted", NULL), 0);
	act.alert_id = e.id;
	CHECK_INT(coord_journal_batch_action_insert(b, &act), 0);
	coord_journal_batch_release(b, 1);
	CHECK_INT(batch_wait(b), 0);
	pthread_mutex_lock(&e.w.mu);
	CHECK_INT(e.w.calls, 1); // the alerts' done came first
	CHECK_INT(e.w.rv, 0);
	pthread_mutex_unlock(&e.w.mu);
	coord_journal_stats(j, &st);
	CHECK_INT(st.syncs - st0.syncs, 1);
	CHECK_INT(st.commits - st0.commits, 2);
	CHECK_INT(st.linger_timeouts, 0);
	CHECK_INT(e.calls, 1);
	CHECK_INT(coord_journal_action_state(j, act.id, state, sizeof(state)),
	    0);
	CHECK_STR(state, "dispatched");

	// A batch with no rows keeps a hold as well.
	e = (struct early)EARLY_INIT(true);
	rec_init(&rec, a, 2);
	submit_early_called(j, &rec, &e);
	b = coord_journal_batch_new(j);
	coord_journal_batch_release(b, 1);
	CHECK_INT(batch_wait(b), 0);
	waiter_wait(&e.w, 1);
	CHECK_INT(e.w.rv, 0);

	// So does a release on its own, for a turn with nothing to wait for.
	e = (struct early)EARLY_INIT(true);
	rec_init(&rec, a, 3);
	submit_early_called(j, &rec, &e);
	usleep(20 * 1000);
	pthread_mutex_lock(&e.w.mu);
	CHECK_INT(e.w.calls, 0);
	pthread_mutex_unlock(&e.w.mu);
	coord_journal_release(j, 1);
	waiter_wait(&e.w, 1);
	CHECK_INT(e.w.rv, 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 0);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// Only a commit of one submission's alerts alone is quiet: submissions
// that queued behind a busy writer share a commit, and their callbacks
// are told it is not (a hold there would keep every one of them waiting).
static void
test_early_quiet_alone(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.sync_linger_us = 60 * 1000000LL };
	struct coord_alert *a = mk_alert("Quiet", 1, "q");
	struct early first = EARLY_INIT(false), e2 = EARLY_INIT(true),
	    e3 = EARLY_INIT(true);
	struct coord_alert_rec r1, r2, r3;
	struct coord_journal_stats st;
	struct coord_journal *j;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&r1, a, 1);
	rec_init(&r2, a, 2);
	rec_init(&r3, a, 3);
	first.block = true; // holds the writer in the first callback
	submit_early_called(j, &r1, &first);
	CHECK(first.quiet);
	CHECK_INT(coord_journal_submit_alerts_early(j, &r2, 1, early_cb,
	    waiter_cb, &e2), 0);
	CHECK_INT(coord_journal_submit_alerts_early(j, &r3, 1, early_cb,
	    waiter_cb, &e3), 0);
	pthread_mutex_lock(&first.mu);
	first.block = false;
	pthread_cond_broadcast(&first.cv);
	pthread_mutex_unlock(&first.mu);
	// Not quiet: no hold taken, so nothing waits for the 60 s linger.
	waiter_wait(&first.w, 1);
	waiter_wait(&e2.w, 1);
	waiter_wait(&e3.w, 1);
	CHECK_INT(e2.calls, 1);
	CHECK_INT(e3.calls, 1);
	CHECK(!e2.quiet);
	CHECK(!e3.quiet);
	CHECK(r3.id > r2.id && r2.id > r1.id);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 0);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// A hold nobody keeps delays its alerts' done by one linger (1 ms), and
// each sync after it lingers too until three waits in a row saw no
// release: then it is dropped, and syncs go on without waiting.
static void
test_early_unkept_hold(void)
{
	struct coord_journal_opts o = { .sync_full = true };
	struct coord_alert *a = mk_alert("Unkept", 1, "u");
	struct coord_journal_stats st;
	struct coord_alert_rec rec;
	struct coord_journal *j;
	int calls = 0;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&rec, a, 1);
	CHECK_INT(submit_early_wait(j, &rec, true, &calls), 0);
	CHECK(rec.id > 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 1);
	for (int i = 0; i < 6; i++) {
		rec_init(&rec, a, 2 + i);
		CHECK_INT(submit_early_wait(j, &rec, false, &calls), 0);
	}
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 3);
	CHECK_INT(calls, 7);
	// A release with nothing held counts as nothing: the next hold is
	// waited for again (and, unkept, times out once more).
	coord_journal_release(j, 5);
	rec_init(&rec, a, 20);
	CHECK_INT(submit_early_wait(j, &rec, true, &calls), 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 4);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// An early callback that takes no hold and keeps one: it waits 20 ms on
// the writer (the syncer is lingering by then) and releases.
struct keeper {
	struct waiter w;
	struct coord_journal *j;
};

static unsigned
keeper_cb(struct coord_alert_rec *recs, size_t n, bool quiet, void *arg)
{
	struct keeper *k = arg;

	(void)recs;
	(void)n;
	(void)quiet;
	usleep(20 * 1000);
	coord_journal_release(k->j, 1);
	return 0;
}

// A hold nobody keeps is dropped after three lingers even while other
// holds are kept during each of them: the webhooks that follow a lost
// hold take and keep holds of their own, and were the kept ones taken
// for progress on the lost one, every sync after it would wait its full
// linger (here 500 ms; 1 ms by default) for good.
static void
test_early_unkept_beside_kept(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.sync_linger_us = 500 * 1000 };
	struct coord_alert *a = mk_alert("Beside", 1, "b");
	struct coord_alert_rec lost, ra, rb;
	struct coord_journal_stats st;
	struct coord_journal *j;
	int calls = 0;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&lost, a, 1);
	CHECK_INT(submit_early_wait(j, &lost, true, &calls), 0);
	for (int i = 0; i < 8; i++) {
		struct early e = EARLY_INIT(true);
		struct keeper k = { WAITER_INIT, j };

		// A takes a hold (quiet: the writer is idle); B, committed
		// while the syncer lingers for A, keeps it.
		rec_init(&ra, a, 10 + 2 * i);
		rec_init(&rb, a, 11 + 2 * i);
		submit_early_called(j, &ra, &e);
		CHECK(e.quiet);
		CHECK_INT(coord_journal_submit_alerts_early(j, &rb, 1,
		    keeper_cb, waiter_cb, &k), 0);
		waiter_wait(&e.w, 1);
		waiter_wait(&k.w, 1);
		CHECK_INT(e.w.rv, 0);
		CHECK_INT(k.w.rv, 0);
	}
	// The lost hold costs three lingers (its own and two more), then is
	// dropped: the later rounds end their lingers as B keeps A's hold.
	// (Up to two more may run out on a machine slow to run B within
	// 500 ms; without the drop there are nine, one per round.)
	coord_journal_stats(j, &st);
	printf("# linger timeouts: %lld\n", (long long)st.linger_timeouts);
	CHECK(st.linger_timeouts >= 3);
	CHECK(st.linger_timeouts <= 5);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// A quiet commit's hold is counted before its callback runs and given
// back when the callback does not take it. Should the syncer drop the
// holds in between (three stale lingers), the count must not go below
// zero: it would wrap to a count no release ever brings down, and every
// sync after it would linger until the next drop.
static void
test_early_drop_while_counted(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.sync_linger_us = 1000 * 1000 };
	struct coord_alert *a = mk_alert("Counted", 1, "c");
	struct early p2 = EARLY_INIT(false), x = EARLY_INIT(false);
	struct coord_alert_rec rec, r2, rx;
	struct coord_journal_stats st;
	struct coord_journal *j;
	int calls = 0, tries;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	// A lost hold, and two lingers that run out for it.
	rec_init(&rec, a, 1);
	CHECK_INT(submit_early_wait(j, &rec, true, &calls), 0);
	rec_init(&rec, a, 2);
	CHECK_INT(submit_early_wait(j, &rec, false, &calls), 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 2);
	// The third (1 s) runs while X's hold is counted, its callback
	// held on the writer: the lost hold is dropped then.
	rec_init(&r2, a, 3);
	rec_init(&rx, a, 4);
	x.block = true;
	submit_early_called(j, &r2, &p2);
	submit_early_called(j, &rx, &x);
	CHECK(x.quiet);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 2); // not yet: X was counted first
	for (tries = 0; tries < 2000 && st.linger_timeouts < 3; tries++) {
		usleep(10 * 1000);
		coord_journal_stats(j, &st);
	}
	CHECK_INT(st.linger_timeouts, 3);
	pthread_mutex_lock(&x.mu);
	x.block = false; // X takes no hold: its count is given back
	pthread_cond_broadcast(&x.cv);
	pthread_mutex_unlock(&x.mu);
	waiter_wait(&p2.w, 1);
	waiter_wait(&x.w, 1);
	CHECK_INT(x.w.rv, 0);
	// Nothing is held now: neither X's sync nor the next lingers.
	rec_init(&rec, a, 5);
	CHECK_INT(submit_early_wait(j, &rec, false, &calls), 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.linger_timeouts, 3);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// The early callback runs only where a sync follows the commit (full
// sync on a file), and never for a commit that failed.
static void
test_early_only_committed_synced(void)
{
	struct coord_journal_opts normal = { .sync_full = false };
	struct coord_journal_opts capped = { .sync_full = true,
		.max_bytes = 96 * 1024 };
	struct coord_alert *a = mk_alert("Plain", 1, "p");
	struct coord_alert *big;
	struct coord_alert_rec rec;
	struct coord_journal *j;
	int calls = 0, stored = 0, rv = 0;
	char *huge;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &normal);
	if (j != NULL) {
		rec_init(&rec, a, 1);
		CHECK_INT(submit_early_wait(j, &rec, true, &calls), 0);
		CHECK(rec.id > 0);
		CHECK_INT(calls, 0);
		coord_journal_close(j);
	}
	tmp_remove(&t);

	huge = xcalloc(1, 4096);
	memset(huge, 'x', 4095);
	big = mk_alert("Big", 2, huge);
	tmp_make(&t);
	j = open_ok(t.db, &capped);
	if (j != NULL) {
		// Each with labels, so a text, of its own.
		for (int i = 0; i < 200; i++) {
			coord_alert_free(big);
			big = mk_alert("Big", 2 + i, huge);
			rec_init(&rec, big, 100 + i);
			rv = submit_early_wait(j, &rec, false, &calls);
			if (rv < 0)
				break;
			stored++;
		}
		CHECK_INT(rv, -ENOSPC);
		CHECK(stored > 0);
		CHECK_INT(calls, stored);
		coord_journal_close(j);
	}
	tmp_remove(&t);
	coord_alert_free(big);
	coord_alert_free(a);
	free(huge);
}

// Stores 1,200 alerts named `name` whose summary is 4,000 bytes of
// `fill`, received at 0..99 twelve times over: well over the 1,000 WAL
// frames that wake the checkpointer. Each has labels of its own, so each
// has a text of its own (the same texts would be stored once).
static void
submit_big_rows(struct coord_journal *j, const char *name, char fill)
{
	struct coord_alert_rec recs[100];
	struct coord_alert *a[100];
	char *big = xcalloc(1, 4001);

	memset(big, fill, 4000);
	for (int r = 0; r < 12; r++) {
		for (int i = 0; i < 100; i++) {
			a[i] = mk_alert(name, r * 100 + i, big);
			rec_init(&recs[i], a[i], i);
		}
		CHECK_INT(submit_wait(j, recs, 100), 0);
		for (int i = 0; i < 100; i++)
			coord_alert_free(a[i]);
	}
	free(big);
}

// The writer's commits leave the WAL; the checkpointer thread (not the
// writer's own autocheckpoint, which the WAL hook replaces) copies it into
// the database file once CKPT_PAGES (1,000) frames wait, long before the
// writer's backstop (16,384).
static void
test_checkpoint_beside_writer(void)
{
	struct coord_journal_opts o = { .sync_full = true };
	struct coord_journal_stats js;
	struct coord_journal *j;
	struct stat st;
	int tries;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	submit_big_rows(j, "Big", 'x');
	// The file grows while a checkpoint runs; it is counted when done.
	for (tries = 0; tries < 1000; tries++) {
		coord_journal_stats(j, &js);
		if (stat(t.db, &st) == 0 && st.st_size >= 2 * 1024 * 1024 &&
		    js.checkpoints >= 1)
			break;
		usleep(10000);
	}
	CHECK(stat(t.db, &st) == 0 && st.st_size >= 2 * 1024 * 1024);
	printf("# database file %lld bytes after %d polls\n",
	    (long long)st.st_size, tries);
	// By the checkpointer thread, not the writer's backstop.
	CHECK(js.checkpoints >= 1);
	CHECK_INT(js.backstop_checkpoints, 0);
	coord_journal_close(j);
out:
	tmp_remove(&t);
}

// `times` groups of 100 alerts of 4,000 bytes each (about 100 WAL frames
// a group: each alert has labels, so a text, of its own), submitted
// without waiting: the records and alerts stay until big_free, after
// their callbacks (counted in w).
struct big {
	struct coord_alert **a;
	struct coord_alert_rec *recs;
	int n;
};

static void
big_submit(struct big *b, struct coord_journal *j, int times,
    struct waiter *w)
{
	char *text = xcalloc(1, 4001);

	memset(text, 'q', 4000);
	b->n = times * 100;
	b->a = xcalloc((size_t)b->n, sizeof(*b->a));
	b->recs = xcalloc((size_t)b->n, sizeof(*b->recs));
	static int seq;	// alerts of every call apart

	for (int i = 0; i < b->n; i++) {
		b->a[i] = mk_alert("Busy", seq++, text);
		rec_init(&b->recs[i], b->a[i], i % 100);
	}
	free(text);
	for (int i = 0; i < times; i++)
		CHECK_INT(coord_journal_submit_alerts(j, &b->recs[i * 100], 100,
		    waiter_cb, w), 0);
}

static void
big_free(struct big *b)
{
	for (int i = 0; i < b->n; i++)
		coord_alert_free(b->a[i]);
	free(b->a);
	free(b->recs);
}

// Polls the journal's stats (up to 10 s) until checkpoints reach `cp` and
// checkpoint_waits `waits`; returns the last stats.
static struct coord_journal_stats
stats_until(struct coord_journal *j, int64_t cp, int64_t waits)
{
	struct coord_journal_stats js;

	for (int i = 0; i < 1000; i++) {
		coord_journal_stats(j, &js);
		if (js.checkpoints >= cp && js.checkpoint_waits >= waits)
			break;
		usleep(10000);
	}
	return js;
}

// A checkpoint's writes and its fsync of the database would delay the
// fdatasync of a commit they meet: past 1,000 frames the checkpointer
// waits for a moment without commits under way, queued, unsynced or
// promised. Here an early callback's hold (linger 60 s) keeps the
// journal busy while about 1,200 frames come: the checkpoint waits. Then,
// with `force`, 1,200 more: at 2,000 it runs with the hold still out,
// long before the writer's own backstop (16,384); without, it still
// waits a while later. Once the hold is kept and the commits behind it
// synced, the checkpoint it waited for runs.
static void
checkpoint_with_hold(bool force)
{
	struct coord_journal_opts o = { .sync_full = true,
		.sync_linger_us = 60 * 1000000LL };
	struct coord_alert *a = mk_alert("Held", 1, "h");
	struct early e = EARLY_INIT(true);
	struct waiter w = WAITER_INIT;
	struct big big = { 0 }, big2 = { 0 };
	struct coord_journal_stats js;
	struct coord_alert_rec rec;
	struct coord_journal *j;
	struct tmp t;
	int groups = 12;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&rec, a, 1);
	submit_early_called(j, &rec, &e); // takes the hold
	big_submit(&big, j, 12, &w);
	js = stats_until(j, 0, 1);
	CHECK_INT(js.checkpoint_waits, 1);
	CHECK_INT(js.checkpoints, 0);
	if (force) {
		big_submit(&big2, j, 12, &w);
		groups += 12;
		js = stats_until(j, 1, 1);
		CHECK(js.checkpoints >= 1);
	} else {
		usleep(300 * 1000);
		coord_journal_stats(j, &js);
		CHECK_INT(js.checkpoints, 0);
	}
	pthread_mutex_lock(&w.mu);
	CHECK_INT(w.calls, 0); // nothing synced: the hold is still out
	pthread_mutex_unlock(&w.mu);

	coord_journal_release(j, 1);
	waiter_wait(&w, groups);
	CHECK_INT(w.failures, 0);
	js = stats_until(j, 1, 1);
	CHECK(js.checkpoints >= 1);
	CHECK_INT(js.checkpoint_waits, 1);
	CHECK_INT(js.backstop_checkpoints, 0);
	waiter_wait(&e.w, 1);
	CHECK_INT(e.w.rv, 0);
	coord_journal_close(j);
	big_free(&big);
	big_free(&big2);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

static void
test_checkpoint_waits_for_quiet(void)
{
	checkpoint_with_hold(false);
}

static void
test_checkpoint_forced_when_busy(void)
{
	checkpoint_with_hold(true);
}

// Pages of the file's first `len` bytes in the page cache, or -1.
static long
resident_pages(const char *path, off_t len)
{
	long page = sysconf(_SC_PAGESIZE), n = 0;
	size_t pages = (size_t)((len + page - 1) / page);
	unsigned char *vec;
	void *map;
	int fd;

	if (len <= 0 || (fd = open(path, O_RDONLY)) < 0)
		return -1;
	map = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -1;
	vec = xcalloc(pages, 1);
	if (mincore(map, (size_t)len, vec) == 0)
		for (size_t i = 0; i < pages; i++)
			n += vec[i] & 1;
	else
		n = -1;
	free(vec);
	munmap(map, (size_t)len);
	return n;
}

// Fills a file journal past a checkpoint with cache_tail `tail`; returns
// the share (0..1) of the database's pages before its last `keep` bytes
// that are in the page cache, or -1 when it cannot tell.
static double
cached_share_after_checkpoint(int64_t tail, int64_t keep)
{
	struct coord_journal_opts o = { .sync_full = true, .cache_tail = tail };
	struct coord_journal_stats js;
	struct coord_journal *j;
	struct stat st;
	char *big = xcalloc(1, 4001); // each row's summary, to compare
	double share = -1;
	long cached;
	int tries;
	struct tmp t;

	memset(big, 'c', 4000);
	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	submit_big_rows(j, "Cache", 'c');
	for (tries = 0; tries < 1000; tries++) {
		coord_journal_stats(j, &js);
		if (js.checkpoints >= 1 &&
		    (tail < 0 || js.cache_trims >= js.checkpoints))
			break;
		usleep(10000);
	}
	CHECK(js.checkpoints >= 1);
	CHECK_INT(js.cache_trims, tail < 0 ? 0 : js.checkpoints);
	if (stat(t.db, &st) == 0 && st.st_size > keep + 1024 * 1024) {
		cached = resident_pages(t.db, st.st_size - keep);
		if (cached >= 0)
			share = (double)cached * (double)sysconf(_SC_PAGESIZE) /
			    (double)(st.st_size - keep);
		printf("# tail %lld: %ld of the first %lld bytes' pages "
		    "cached\n", (long long)tail, cached,
		    (long long)(st.st_size - keep));
	}
	coord_journal_close(j);
	// Dropped pages come back from the disk: every row reads whole.
	j = open_ok(t.db, NULL);
	if (j != NULL) {
		struct replayed r = { 0 };
		size_t whole = 0;
		const char *sum;

		CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
		for (size_t k = 0; k < r.n; k++) {
			sum = r.alerts[k]->annotations.n == 1 ?
			    r.alerts[k]->annotations.v[0].val : NULL;
			whole += sum != NULL && strcmp(sum, big) == 0 &&
			    r.received[k] == (int64_t)(k % 100);
		}
		CHECK_INT(r.n, 1200);
		CHECK_INT(whole, 1200);
		replayed_free(&r);
		coord_journal_close(j);
	}
out:
	free(big);
	tmp_remove(&t);
	return share;
}

// After a checkpoint the database's pages leave the page cache, all but
// the file's last cache_tail bytes; with a negative cache_tail they stay
// (the control: the same rows, written the same way, are cached).
static void
test_checkpoint_drops_cached_pages(void)
{
	struct statfs fs;
	double kept, trimmed;

	if (statfs("/tmp", &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
		printf("# /tmp is a tmpfs: its pages cannot be dropped; "
		    "nothing to check\n");
		return;
	}
	kept = cached_share_after_checkpoint(-1, 64 * 1024);
	trimmed = cached_share_after_checkpoint(64 * 1024, 64 * 1024);
	printf("# cached share: %.2f kept, %.2f trimmed\n", kept, trimmed);
	CHECK(kept > 0.5);
	CHECK(trimmed >= 0 && trimmed < 0.1);
}

// With cache_tail 1 every checkpoint drops nearly all of the database's
// pages from the page cache, while retention frees the pages of old rows
// and their texts and new rows reuse them (SQLite reads such a page back
// from the disk): over six rounds of old alerts (each with a text of its
// own) and retention, then new alerts and outcomes, the file passes
// SQLite's integrity check and every row left reads back whole. (New
// alerts kept from the first round would keep every later text: see
// retain_texts.)
#define CHURN_ROUNDS 6
#define CHURN_OLD 1500
#define CHURN_NEW 100

static void
test_trim_beside_retention(void)
{
	struct coord_journal_opts o = { .sync_full = false, .cache_tail = 1,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_alert_rec recs[100];
	struct coord_journal_stats js;
	struct coord_alert *olda[100], *fresh[CHURN_ROUNDS];
	struct coord_journal *j;
	struct replayed r = { 0 };
	char body[CHURN_ROUNDS][2501], buf[64];
	int64_t now = cm_now_ms(), deleted, total = 0;
	size_t whole = 0, decided = 0;
	int64_t ckpts;
	struct tmp t;
	int k, i, tries;

	memset(body, 0, sizeof(body));
	for (k = 0; k < CHURN_ROUNDS; k++) {
		memset(body[k], 'a' + k, 2500);
		fresh[k] = mk_alert("Fresh", k, body[k]);
	}
	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	for (k = 0; k < CHURN_ROUNDS; k++) {
		for (i = 0; i < CHURN_OLD; i += 100) {
			for (int m = 0; m < 100; m++) {
				olda[m] = mk_alert("Old", 1000 + k * CHURN_OLD +
				    i + m, body[CHURN_ROUNDS - 1]);
				rec_init(&recs[m], olda[m],
				    now - 2 * HOUR_MS - m);
			}
			CHECK_INT(submit_wait(j, recs, 100), 0);
			for (int m = 0; m < 100; m++)
				coord_alert_free(olda[m]);
		}
		deleted = -1;
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		CHECK_INT(deleted, CHURN_OLD);
		// Let the checkpointer catch up between rounds (on a busy
		// machine it would otherwise copy several rounds at once, and
		// the rounds would see fewer trims); it runs once 1,000 frames
		// wait, so a round that wrote fewer may see none: not waited
		// for beyond 2 s.
		coord_journal_stats(j, &js);
		for (tries = 0, ckpts = js.checkpoints; tries < 200 &&
		    js.checkpoints == ckpts; tries++) {
			usleep(10000);
			coord_journal_stats(j, &js);
		}
	}
	db_text(t.db, "SELECT count(*) FROM alert_texts", buf, sizeof(buf));
	CHECK_STR(buf, "0");	// each round's by its second pass (a mark)
	for (k = 0; k < CHURN_ROUNDS; k++) {
		for (i = 0; i < CHURN_NEW; i += 100) {
			for (int m = 0; m < 100; m++)
				rec_init(&recs[m], fresh[k], now + k);
			CHECK_INT(submit_wait(j, recs, 100), 0);
			// Every fourth new alert decided: not replayed.
			for (int m = 0; m < 100; m += 4) {
				CHECK_INT(coord_journal_alert_done(j, recs[m].id,
				    "noted", NULL), 0);
				decided++;
			}
		}
		total += CHURN_NEW;
	}
	for (tries = 0; tries < 1000; tries++) {
		coord_journal_stats(j, &js);
		if (js.cache_trims >= 3)
			break;
		usleep(10000);
	}
	printf("# %lld checkpoints, %lld of them trimmed the cache\n",
	    (long long)js.checkpoints, (long long)js.cache_trims);
	CHECK(js.cache_trims >= 3);
	coord_journal_close(j);
	db_text(t.db, "PRAGMA integrity_check", buf, sizeof(buf));
	CHECK_STR(buf, "ok");
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, total - (int64_t)decided);
	for (size_t n = 0; n < r.n; n++) {
		const char *seq = label(r.alerts[n], "seq");
		int64_t round = r.received[n] - now;

		whole += seq != NULL && round >= 0 && round < CHURN_ROUNDS &&
		    atoi(seq) == round && r.alerts[n]->annotations.n == 1 &&
		    strcmp(r.alerts[n]->annotations.v[0].val,
		    body[round]) == 0;
	}
	CHECK_INT(whole, r.n);
	replayed_free(&r);
	coord_journal_close(j);
out:
	for (k = 0; k < CHURN_ROUNDS; k++)
		coord_alert_free(fresh[k]);
	tmp_remove(&t);
}

static void
test_full_queue_eagain(void)
{
	struct coord_journal_opts o = { .sync_full = true, .max_queue = 16 };
	struct coord_alert *a = mk_alert("Q", 1, "q");
	struct coord_alert_rec grec, recs[20];
	struct waiter w = WAITER_INIT;
	struct gate g = GATE_INIT;
	struct coord_journal *j;
	int i;

	j = open_ok(":memory:", &o);
	if (j == NULL)
		goto out;
	rec_init(&grec, a, 0);
	for (i = 0; i < 20; i++)
		rec_init(&recs[i], a, i);
	CHECK_INT(coord_journal_submit_alerts(j, &grec, 1, gate_cb, &g), 0);
	gate_wait_entered(&g);
	CHECK_INT(coord_journal_submit_alerts(j, recs, 10, waiter_cb, &w), 0);
	for (i = 10; i < 16; i++)
		CHECK_INT(coord_journal_submit_alerts(j, &recs[i], 1,
		    waiter_cb, &w), 0);
	CHECK_INT(coord_journal_submit_alerts(j, &recs[16], 1, waiter_cb,
	    &w), -EAGAIN);
	CHECK_INT(coord_journal_submit_alerts(j, &recs[16], 4, waiter_cb,
	    &w), -EAGAIN);
	gate_release(&g);
	waiter_wait(&w, 7);
	CHECK_INT(w.calls, 7);	// rejected submissions: no callback
	CHECK_INT(w.failures, 0);
	// Larger than the whole queue: can never fit.
	CHECK_INT(coord_journal_submit_alerts(j, recs, 17, waiter_cb, &w),
	    -EAGAIN);
	CHECK_INT(coord_journal_submit_alerts(j, recs, 16, waiter_cb, &w), 0);
	waiter_wait(&w, 8);
	CHECK_INT(coord_journal_submit_alerts(j, NULL, 1, waiter_cb, &w),
	    -EINVAL);
	CHECK_INT(coord_journal_submit_alerts(j, recs, 1, NULL, &w), -EINVAL);
	coord_journal_close(j);
out:
	coord_alert_free(a);
}

// A blocking write from a submission callback (the writer thread) would
// wait for itself.
struct deadlock_ctx {
	struct coord_journal *j;
	int rv, rv2;
	int64_t id2;
	struct waiter w;
};

static void
deadlock_cb(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct deadlock_ctx *c = arg;
	struct coord_action_rec ar = {
		.rule = "r", .type = "restart", .service = "s", .instance = "",
		.state = "dispatched", .attempt = 1,
	};

	c->rv = coord_journal_alert_done(c->j, recs[0].id, "acted", NULL);
	c->rv2 = coord_journal_action_insert(c->j, &ar);
	c->id2 = ar.id; // 0: nothing was stored
	waiter_cb(rv, recs, n, &c->w);
}

static void
test_blocking_write_from_callback_refused(void)
{
	struct deadlock_ctx c = { .w = WAITER_INIT };
	struct coord_alert *a = mk_alert("D", 1, "d");
	struct coord_alert_rec rec;

	c.j = open_ok(":memory:", NULL);
	if (c.j != NULL) {
		rec_init(&rec, a, 1);
		CHECK_INT(coord_journal_submit_alerts(c.j, &rec, 1,
		    deadlock_cb, &c), 0);
		waiter_wait(&c.w, 1);
		CHECK_INT(c.rv, -EDEADLK);
		CHECK_INT(c.rv2, -EDEADLK);
		CHECK_INT(c.id2, 0);
		coord_journal_close(c.j);
	}
	coord_alert_free(a);
}

// Without full sync, a batch that finds the writer idle runs on the
// submitting thread: its callback has run when submit returns, on that
// thread, and a blocking write from it is refused as from the writer's.
// With full sync it is queued: the callback runs on the syncer.
struct inline_ctx {
	struct coord_journal *j;
	pthread_t caller;
	_Atomic bool called;
	bool same_thread;
	int rv, blocking_rv;
	int64_t alert_id;
};

static void
inline_cb(int rv, void *arg)
{
	struct inline_ctx *c = arg;

	c->rv = rv;
	c->same_thread = pthread_equal(pthread_self(), c->caller);
	c->blocking_rv = coord_journal_alert_done(c->j, c->alert_id, "late",
	    NULL);
	atomic_store(&c->called, true);
}

static void
test_batch_inline_when_idle(void)
{
	struct coord_journal_opts normal = { .sync_full = false };
	struct coord_alert *a = mk_alert("Inline", 1, "s");
	struct coord_journal_batch *b;
	struct coord_alert_rec ar;
	struct replayed r = { 0 };
	struct inline_ctx c;
	char buf[64];
	struct tmp t;

	tmp_make(&t);
	memset(&c, 0, sizeof(c));
	c.j = open_ok(t.db, &normal);
	if (c.j == NULL)
		goto out;
	rec_init(&ar, a, 1);
	CHECK_INT(submit_wait(c.j, &ar, 1), 0);
	c.alert_id = ar.id;
	c.caller = pthread_self();
	// Outcomes alone are queued even for an idle writer: they run on
	// its thread (and share its next transaction with whatever came).
	for (int k = 0; k < 20; k++) {
		atomic_store(&c.called, false);
		b = coord_journal_batch_new(c.j);
		CHECK_INT(coord_journal_batch_alert_done(b, ar.id, "noted",
		    NULL), 0);
		CHECK_INT(coord_journal_batch_submit(b, inline_cb, &c), 0);
		while (!atomic_load(&c.called))
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		CHECK(!c.same_thread);
		CHECK_INT(c.rv, 0);
	}
	// A batch with an action row runs here when the writer is idle. The
	// writer may still be finishing the alerts' batch: then the
	// batch is queued; try again once its callback ran (bounded).
	for (int tries = 0; tries < 1000; tries++) {
		struct coord_action_rec act = { .alert_id = ar.id,
			.rule = "r", .type = "restart", .service = "s",
			.instance = "i", .state = "dispatched", .attempt = 1,
			.created_ms = 1000 };

		atomic_store(&c.called, false);
		b = coord_journal_batch_new(c.j);
		CHECK_INT(coord_journal_batch_alert_done(b, ar.id, "acted",
		    NULL), 0);
		CHECK_INT(coord_journal_batch_action_insert(b, &act), 0);
		CHECK_INT(coord_journal_batch_submit(b, inline_cb, &c), 0);
		if (atomic_load(&c.called))
			break;
		while (!atomic_load(&c.called))
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	CHECK(c.same_thread);
	CHECK_INT(c.rv, 0);
	CHECK_INT(c.blocking_rv, -EDEADLK);
	CHECK_INT(coord_journal_replay_pending(c.j, replay_cb, &r), 0);
	CHECK_INT(r.n, 0);
	replayed_free(&r);
	// The journal goes on: a blocking write from here works.
	CHECK_INT(coord_journal_alert_done(c.j, ar.id, "acted", "again"), 0);
	coord_journal_close(c.j);
	db_text(t.db, "SELECT detail FROM alerts", buf, sizeof(buf));
	CHECK_STR(buf, "again");
	tmp_remove(&t);

	// Full sync: queued, completed by the syncer after its fdatasync.
	tmp_make(&t);
	memset(&c, 0, sizeof(c));
	c.j = open_ok(t.db, NULL);
	if (c.j == NULL)
		goto out;
	rec_init(&ar, a, 2);
	CHECK_INT(submit_wait(c.j, &ar, 1), 0);
	c.alert_id = ar.id;
	c.caller = pthread_self();
	b = coord_journal_batch_new(c.j);
	CHECK_INT(coord_journal_batch_alert_done(b, ar.id, "acted", NULL), 0);
	CHECK_INT(batch_wait(b), 0);
	coord_journal_close(c.j);
	db_text(t.db, "SELECT outcome FROM alerts", buf, sizeof(buf));
	CHECK_STR(buf, "acted");
out:
	tmp_remove(&t);
	coord_alert_free(a);
}

// With the database capped (PRAGMA max_page_count), a batch that does not
// fit fails whole: none of its alerts is stored, every callback gets
// -ENOSPC, the failure is counted, and later batches still commit.
static void
test_commit_failure_rolls_back(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.max_bytes = 96 * 1024 };
	struct coord_alert *small = mk_alert("Small", 1, "s");
	struct coord_alert *big;
	struct coord_alert_rec recs[3], one;
	struct coord_journal_stats st;
	struct replayed r = { 0 };
	struct coord_journal *j;
	char *huge;
	int i, rv = 0, stored = 1;
	struct tmp t;

	huge = xcalloc(1, 300 * 1024);
	memset(huge, 'x', 300 * 1024 - 1);
	big = mk_alert("Big", 2, huge);
	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&recs[0], small, 1);
	rec_init(&recs[1], small, 2);
	rec_init(&recs[2], big, 3);
	CHECK_INT(submit_wait(j, recs, 3), -ENOSPC);
	for (i = 0; i < 3; i++)
		CHECK_INT(recs[i].id, 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.commit_errors, 1);
	CHECK_INT(st.commits, 0);
	CHECK_INT(st.alerts, 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 0);
	replayed_free(&r);

	// The journal goes on: a batch that fits commits.
	rec_init(&one, small, 4);
	CHECK_INT(submit_wait(j, &one, 1), 0);
	CHECK(one.id > 0);

	// Fill the cap with 2 KiB alerts until a commit fails.
	coord_alert_free(big);
	huge[2048] = '\0';
	big = NULL;
	for (i = 0; i < 500; i++) {
		coord_alert_free(big);	// each with a text of its own
		big = mk_alert("Mid", 3 + i, huge);
		rec_init(&recs[0], big, 100 + i);
		rv = submit_wait(j, recs, 1);
		if (rv < 0)
			break;
		stored++;
	}
	CHECK_INT(rv, -ENOSPC);
	coord_journal_stats(j, &st);
	CHECK_INT(st.commit_errors, 2);
	CHECK_INT(st.alerts, stored);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, stored);
	replayed_free(&r);
	// Updating a stored row in place still works while full.
	CHECK_INT(coord_journal_alert_done(j, one.id, "acted", NULL), 0);
	coord_journal_close(j);
out:
	coord_alert_free(small);
	coord_alert_free(big);
	free(huge);
	tmp_remove(&t);
}

// Several submitters, each sending outcome-only batches (always queued)
// and action batches (inline when the writer is idle) in a random mix,
// without waiting: a submitter's batches commit and complete in the order
// it submitted them, whichever ran inline and whichever was queued (an
// action batch running here past an outcome batch still queued would
// commit first, and its command could leave before the earlier outcome is
// stored). Each batch writes "<thread>:<seq>" over its thread's alert
// outcome or action row; completions count in order and the file ends
// with each thread's last of each.
#define ORDER_THREADS 4
#define ORDER_BATCHES 400

struct order_sub {
	struct coord_journal *j;
	int t;
	unsigned int seed;
	int64_t alert_id, action_id;
	pthread_t self;
	_Atomic int next;	// the seq whose completion comes next
	_Atomic int done, inline_runs, out_of_order;
	int last_outcome, last_action; // seqs, -1: none
};

struct order_op {
	struct order_sub *s;
	int seq;
};

static void
order_cb(int rv, void *arg)
{
	struct order_op *op = arg;
	struct order_sub *s = op->s;

	if (rv != 0 || atomic_load(&s->next) != op->seq)
		atomic_fetch_add(&s->out_of_order, 1);
	atomic_store(&s->next, op->seq + 1);
	if (pthread_equal(pthread_self(), s->self))
		atomic_fetch_add(&s->inline_runs, 1);
	atomic_fetch_add(&s->done, 1);
	free(op);
}

static void *
order_main(void *arg)
{
	struct order_sub *s = arg;
	struct coord_journal_batch *b;
	struct order_op *op;
	char text[32];

	s->self = pthread_self();
	for (int i = 0; i < ORDER_BATCHES; i++) {
		bool action = rand_r(&s->seed) % 2 == 0;

		snprintf(text, sizeof(text), "%d:%d", s->t, i);
		b = coord_journal_batch_new(s->j);
		if (b == NULL)
			break;
		if (action) {
			(void)coord_journal_batch_action_update(b, s->action_id,
			    "running", text, 1000 + i);
			s->last_action = i;
		} else {
			(void)coord_journal_batch_alert_done(b, s->alert_id,
			    "noted", text);
			s->last_outcome = i;
		}
		op = xcalloc(1, sizeof(*op));
		op->s = s;
		op->seq = i;
		if (coord_journal_batch_submit(b, order_cb, op) != 0) {
			free(op);
			atomic_fetch_add(&s->out_of_order, 1);
			break;
		}
		switch (rand_r(&s->seed) % 16) {
		case 0: // now and then, its batches all done (bounded): the
			// writer may be idle for the next one, which then
			// runs inline if it has an action row
			for (int w = 0; w < 1000 &&
			    atomic_load(&s->done) <= i; w++)
				usleep(100);
			break;
		case 1:
		case 2:
			sched_yield();
			break;
		default:
			break;
		}
	}
	return NULL;
}

static void
order_run(bool sync_full, unsigned int seed)
{
	struct coord_journal_opts o = { .sync_full = sync_full };
	struct order_sub subs[ORDER_THREADS];
	struct coord_alert *a = mk_alert("Order", 1, "o");
	struct coord_alert_rec ar;
	struct coord_journal *j;
	char sql[160], buf[64], want[32];
	int inl = 0, tries;
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	memset(subs, 0, sizeof(subs));
	for (int i = 0; i < ORDER_THREADS; i++) {
		struct coord_action_rec act = { .rule = "r", .type = "restart",
			.service = "s", .instance = "i", .state = "dispatched",
			.attempt = 1, .created_ms = 1000 };

		rec_init(&ar, a, 1);
		CHECK_INT(submit_wait(j, &ar, 1), 0);
		act.alert_id = ar.id;
		CHECK_INT(coord_journal_action_insert(j, &act), 0);
		subs[i] = (struct order_sub){ .j = j, .t = i,
			.seed = seed + (unsigned int)i, .alert_id = ar.id,
			.action_id = act.id, .last_outcome = -1,
			.last_action = -1 };
	}
	for (int i = 0; i < ORDER_THREADS; i++)
		CHECK_INT(pthread_create(&subs[i].self, NULL, order_main,
		    &subs[i]), 0);
	for (int i = 0; i < ORDER_THREADS; i++)
		pthread_join(subs[i].self, NULL);
	for (int i = 0; i < ORDER_THREADS; i++) {
		for (tries = 0; tries < 3000 &&
		    atomic_load(&subs[i].done) < ORDER_BATCHES; tries++)
			usleep(10000);
		CHECK_INT(atomic_load(&subs[i].done), ORDER_BATCHES);
		CHECK_INT(atomic_load(&subs[i].out_of_order), 0);
		inl += atomic_load(&subs[i].inline_runs);
	}
	printf("# sync_full %d: %d of %d batches ran inline\n", sync_full, inl,
	    ORDER_THREADS * ORDER_BATCHES);
	if (sync_full)
		CHECK_INT(inl, 0);
	coord_journal_close(j);
	for (int i = 0; i < ORDER_THREADS; i++) {
		snprintf(sql, sizeof(sql), "SELECT detail FROM alert_outcomes"
		    " WHERE alert_id = %" PRId64, subs[i].alert_id);
		db_text(t.db, sql, buf, sizeof(buf));
		snprintf(want, sizeof(want), "%d:%d", i, subs[i].last_outcome);
		CHECK_STR(buf, want);
		snprintf(sql, sizeof(sql), "SELECT detail FROM actions"
		    " WHERE id = %" PRId64, subs[i].action_id);
		db_text(t.db, sql, buf, sizeof(buf));
		snprintf(want, sizeof(want), "%d:%d", i, subs[i].last_action);
		CHECK_STR(buf, want);
	}
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

static void
test_batch_order_per_submitter(void)
{
	unsigned int seed = tt_seed();

	order_run(false, seed);
	order_run(true, seed);
}

// Stores n alerts received at received_ms; returns the last one's id.
static int64_t
submit_aged(struct coord_journal *j, int n, int64_t received_ms)
{
	struct coord_alert_rec *recs = xcalloc((size_t)n, sizeof(*recs));
	struct coord_alert *a = mk_alert("Aged", 1, "a");
	int64_t id;
	int i;

	for (i = 0; i < n; i++)
		rec_init(&recs[i], a, received_ms);
	CHECK_INT(submit_wait(j, recs, (size_t)n), 0);
	id = recs[n - 1].id;
	coord_alert_free(a);
	free(recs);
	return id;
}

static void
insert_aged_actions(struct coord_journal *j, int n, int64_t created_ms)
{
	struct coord_action_rec a;
	int i;

	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		a.rule = "r";
		a.type = "restart";
		a.service = "s";
		a.instance = "i";
		a.state = "succeeded";
		a.created_ms = created_ms;
		CHECK_INT(coord_journal_action_insert(j, &a), 0);
	}
}

static void
test_retention_deletes_old_rows(void)
{
	// An interval far away: only retain_now deletes here.
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_journal_stats st;
	struct replayed r = { 0 };
	struct coord_journal *j;
	int64_t now = cm_now_ms(), deleted = -1;

	j = open_ok(":memory:", &o);
	if (j == NULL)
		return;
	submit_aged(j, 2500, now - 2 * HOUR_MS);  // over 2 passes' worth
	submit_aged(j, 3, now);
	insert_aged_actions(j, 5, now - 2 * HOUR_MS);
	insert_aged_actions(j, 2, now - 10);
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 2503);
	CHECK_INT(st.actions, 7);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 2505);
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 3);
	CHECK_INT(st.actions, 2);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 3);
	replayed_free(&r);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 0);
	coord_journal_close(j);

	// retention_ms 0 keeps everything.
	j = open_ok(":memory:", NULL);
	if (j == NULL)
		return;
	submit_aged(j, 2, 1);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 0);
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 2);
	coord_journal_close(j);
}

// Ids that retention freed come back (SQLite reuses the top ones): the
// writer's set of pending alerts must not keep entries of the deleted
// alerts, or a decision of the new alert with the same id finds the old
// entry and the new one stays "pending" in the set, holding the mark
// back. Here everything is decided, so the mark saved at close is the
// highest id.
static void
test_mark_follows_reused_ids(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_journal *j;
	int64_t now = cm_now_ms(), young, last, deleted = -1, id;
	struct tmp t;
	char buf[64];

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL) {
		tmp_remove(&t);
		return;
	}
	young = submit_aged(j, 1, now);			// 1, stays
	last = submit_aged(j, 2, now - 2 * HOUR_MS);	// 2 and 3, old
	for (id = young + 1; id <= last; id++)
		CHECK_INT(coord_journal_alert_done(j, id, "no-rule", NULL), 0);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 2);
	last = submit_aged(j, 3, now);			// 2, 3 and 4
	CHECK_INT(last, young + 3);
	for (id = young + 1; id <= last; id++)
		CHECK_INT(coord_journal_alert_done(j, id, "no-rule", NULL), 0);
	CHECK_INT(coord_journal_alert_done(j, young, "no-rule", NULL), 0);
	coord_journal_close(j);
	db_text(t.db, "SELECT value FROM meta WHERE key ="
	    " 'alerts_decided_through'", buf, sizeof(buf));
	CHECK_STR(buf, "4");
	tmp_remove(&t);
}

// Retention walks the alerts in id order, a window at a time. An alert
// whose received time lies ahead (stored while the clock was ahead) stays
// and leads every window; retain_now still deletes every old alert
// behind it, not only those of the first window.
static void
test_retention_past_a_young_alert(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_journal_stats st;
	struct coord_journal *j;
	int64_t now = cm_now_ms(), deleted = -1;

	j = open_ok(":memory:", &o);
	if (j == NULL)
		return;
	submit_aged(j, 1, now + 24 * HOUR_MS);
	submit_aged(j, 2500, now - 2 * HOUR_MS);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 2500);
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 1);
	coord_journal_close(j);

	// More such alerts than one pass looks at: retention walks past
	// them to the old ones behind, and keeps what is young.
	j = open_ok(":memory:", &o);
	if (j == NULL)
		return;
	submit_aged(j, 1500, now + 24 * HOUR_MS);
	submit_aged(j, 700, now - 2 * HOUR_MS);
	submit_aged(j, 300, now - 60 * 1000);
	submit_aged(j, 400, now - 2 * HOUR_MS); // a clock that was behind
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 1100);
	coord_journal_stats(j, &st);
	CHECK_INT(st.alerts, 1800);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 0);
	coord_journal_close(j);
}

// Pending alerts deleted by retention no longer hold the decided-through
// mark back; a decision for one of them is -ENOENT.
static void
test_retention_of_pending_alerts(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_journal *j;
	int64_t now = cm_now_ms(), old, fresh, deleted = -1;
	char buf[64], want[64];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL) {
		tmp_remove(&t);
		return;
	}
	old = submit_aged(j, 2, now - 2 * HOUR_MS);
	fresh = submit_aged(j, 1, now);
	CHECK_INT(coord_journal_alert_done(j, fresh, "no-rule", NULL), 0);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 2);
	CHECK_INT(coord_journal_alert_done(j, old, "no-rule", NULL), -ENOENT);
	coord_journal_close(j);
	db_text(t.db, "SELECT value FROM meta WHERE key ="
	    " 'alerts_decided_through'", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%" PRId64, fresh);
	CHECK_STR(buf, want);
	db_text(t.db, "SELECT count(*) FROM alert_outcomes", buf, sizeof(buf));
	CHECK_STR(buf, "1");
	tmp_remove(&t);
}

// Retention that deletes the newest alerts (here every one) lets SQLite
// hand out their ids again, below the decided-through mark saved in meta.
// Alerts stored after that and never decided must still replay after a
// crash (the child exits without closing, well within the mark's save
// interval): the saved mark may never stay above a stored pending alert.
static void
test_mark_after_retention_reuses_ids(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_journal *j;
	struct replayed r = { 0 };
	int64_t now = cm_now_ms(), id, last;
	struct tmp t;
	pid_t pid;
	int status = -1;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL) {
		tmp_remove(&t);
		return;
	}
	last = submit_aged(j, 3, now - 2 * HOUR_MS);
	for (id = 1; id <= last; id++)
		CHECK_INT(coord_journal_alert_done(j, id, "no-rule", NULL), 0);
	coord_journal_close(j); // the mark: 3
	pid = fork();
	if (pid == 0) {
		struct coord_alert_rec recs[6];
		struct coord_alert *a = mk_alert("Reused", 1, "r");
		int64_t deleted = -1;
		char err[256];
		int i;

		j = NULL;
		if (coord_journal_open(&j, t.db, &o, err, sizeof(err)) != 0)
			_exit(2);
		if (coord_journal_retain_now(j, &deleted) != 0 || deleted != 3)
			_exit(3);
		for (i = 0; i < 6; i++)
			rec_init(&recs[i], a, now);
		if (submit_wait(j, recs, 6) != 0 || recs[5].id != 6)
			_exit(4); // ids 1..6 again
		_exit(0); // a crash: no close, no mark written at close
	}
	CHECK(pid > 0);
	if (pid > 0)
		waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	j = open_ok(t.db, &o);
	if (j != NULL) {
		CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
		CHECK_INT(r.n, 6);
		replayed_free(&r);
		coord_journal_close(j);
	}
	tmp_remove(&t);
}

// The automatic pass runs on the writer after batches once the interval
// passed; drive batches until it has happened (bounded, no time checks).
static void
test_retention_runs_automatically(void)
{
	struct coord_journal_opts o = { .sync_full = true,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1 };
	struct timespec ms1 = { 0, 1000 * 1000 };
	struct coord_journal_stats st;
	struct coord_journal *j;
	int64_t now = cm_now_ms(), fresh;
	int i;

	j = open_ok(":memory:", &o);
	if (j == NULL)
		return;
	submit_aged(j, 1500, now - 2 * HOUR_MS);
	fresh = submit_aged(j, 1, now);
	insert_aged_actions(j, 3, now - 2 * HOUR_MS);
	for (i = 0; i < 10000; i++) {
		coord_journal_stats(j, &st);
		if (st.alerts == 1 && st.actions == 0)
			break;
		CHECK_INT(coord_journal_alert_done(j, fresh, "acted", NULL),
		    0);
		nanosleep(&ms1, NULL);
	}
	CHECK_INT(st.alerts, 1);
	CHECK_INT(st.actions, 0);
	coord_journal_close(j);
}

// Readers on other threads while the writer commits: every read
// succeeds and sees only whole batches (alerts come in pairs here).
struct reader_ctx {
	struct coord_journal *j;
	pthread_mutex_t mu;	// guards the rest
	bool stop;
	int reads, failures, odd;
};

static void
count_cb(int64_t id, uint64_t identity, int64_t received_ms,
    struct coord_alert *alert, void *arg)
{
	(void)id;
	(void)identity;
	(void)received_ms;
	coord_alert_free(alert);
	(*(int *)arg)++;
}

static void *
reader_main(void *arg)
{
	struct reader_ctx *c = arg;
	struct coord_journal_stats st;
	int n, reads = 0, failures = 0, odd = 0;
	bool stop = false;
	char *json;

	while (!stop) {
		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		n = 0;
		if (coord_journal_replay_pending(c->j, count_cb, &n) != 0)
			failures++;
		if (n % 2 != 0)
			odd++;
		json = NULL;
		if (coord_journal_query_actions(c->j, NULL, &json) != 0)
			failures++;
		free(json);
		coord_journal_stats(c->j, &st);
		if (st.alerts % 2 != 0)
			odd++;
		reads++;
	}
	pthread_mutex_lock(&c->mu);
	c->reads += reads;
	c->failures += failures;
	c->odd += odd;
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void
reads_beside_commits(const char *path)
{
	struct reader_ctx c = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct coord_alert *a = mk_alert("R", 1, "r");
	struct coord_alert_rec recs[2];
	struct coord_action_rec act;
	pthread_t tid[2];
	int i;

	c.j = open_ok(path, NULL);
	if (c.j == NULL)
		goto out;
	for (i = 0; i < 2; i++)
		CHECK_INT(pthread_create(&tid[i], NULL, reader_main, &c), 0);
	for (i = 0; i < 150; i++) {
		rec_init(&recs[0], a, i);
		rec_init(&recs[1], a, i);
		CHECK_INT(submit_wait(c.j, recs, 2), 0);
		memset(&act, 0, sizeof(act));
		act.alert_id = recs[0].id;
		act.rule = "r";
		act.type = "restart";
		act.service = "s";
		act.instance = "i";
		act.state = "planned";
		act.created_ms = i;
		CHECK_INT(coord_journal_action_insert(c.j, &act), 0);
	}
	pthread_mutex_lock(&c.mu);
	c.stop = true;
	pthread_mutex_unlock(&c.mu);
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	CHECK(c.reads > 0);
	CHECK_INT(c.failures, 0);
	CHECK_INT(c.odd, 0);
	coord_journal_close(c.j);
out:
	coord_alert_free(a);
}

static void
test_reads_beside_commits(void)
{
	struct tmp t;

	reads_beside_commits(":memory:");
	tmp_make(&t);
	reads_beside_commits(t.db);
	tmp_remove(&t);
}

static void
test_stats_file_size_and_wal(void)
{
	struct coord_journal_stats st;
	struct coord_journal *j;
	char mode[16] = "";
	sqlite3_stmt *q;
	struct tmp t;
	sqlite3 *db;

	coord_journal_stats(NULL, &st);
	CHECK_INT(st.alerts, 0);
	CHECK_INT(st.bytes, 0);
	tmp_make(&t);
	j = open_ok(t.db, NULL);
	if (j == NULL)
		return;
	submit_aged(j, 50, 1);
	coord_journal_stats(j, &st);
	CHECK(st.bytes >= 4096);
	CHECK_INT(st.alerts, 50);
	// The mode is persistent: another connection sees it.
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			snprintf(mode, sizeof(mode), "%s",
			    (const char *)sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
	}
	sqlite3_close(db);
	CHECK_STR(mode, "wal");
	coord_journal_close(j);
	coord_journal_close(NULL);
	tmp_remove(&t);
}

// ---- durability across kill -9 ------------------------------------------

// What the child reports per committed alert.
struct ack {
	int64_t id;
	int64_t seq;
};

struct child_sub {
	int fd;
	size_t n;
	struct coord_alert *alerts[4];
	struct coord_alert_rec recs[4];
};

static void
child_done(int rv, struct coord_alert_rec *recs, size_t n, void *arg)
{
	struct child_sub *s = arg;
	struct ack acks[4];
	size_t i;

	if (rv == 0) {
		for (i = 0; i < n; i++) {
			acks[i].id = recs[i].id;
			acks[i].seq = recs[i].received_ms;
		}
		// At most 64 bytes: one atomic pipe write.
		if (write(s->fd, acks, n * sizeof(acks[0])) < 0)
			_exit(3);
	}
	for (i = 0; i < s->n; i++)
		coord_alert_free(s->alerts[i]);
	free(s);
}

static void
child_main(const char *path, int fd, int64_t base)
{
	struct timespec pause = { 0, 200 * 1000 };
	struct coord_journal *j = NULL;
	struct child_sub *s;
	int64_t seq = base;
	char err[256];
	size_t i;
	int k, rv;

	if (coord_journal_open(&j, path, NULL, err, sizeof(err)) != 0)
		_exit(2);
	for (k = 0; k < 1500; k++) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->n = 1 + (size_t)k % 4;
		for (i = 0; i < s->n; i++, seq++) {
			s->alerts[i] = mk_alert("Durable", (int)seq, "d");
			rec_init(&s->recs[i], s->alerts[i], seq);
		}
		while ((rv = coord_journal_submit_alerts(j, s->recs, s->n,
		    child_done, s)) == -EAGAIN)
			nanosleep(&pause, NULL);
		if (rv != 0)
			_exit(4);
	}
	coord_journal_close(j);
	_exit(0);
}

// Reads whole acks from fd into *acks until `want` more arrived or EOF.
static void
read_acks(int fd, struct ack **acks, size_t *n, size_t *cap, size_t want)
{
	size_t got = 0;
	ssize_t r;

	while (got < want) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			*acks = realloc(*acks, *cap * sizeof(**acks));
			if (*acks == NULL)
				abort();
		}
		r = read(fd, &(*acks)[*n], sizeof(**acks));
		if (r == 0)
			return;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (r != (ssize_t)sizeof(**acks)) {
			printf("# short ack read %zd\n", r);
			tt_fail(__FILE__, __LINE__, "whole ack records");
			return;
		}
		(*n)++;
		got++;
	}
}

static int
cmp_ack(const void *a, const void *b)
{
	return cmp_i64(&((const struct ack *)a)->id,
	    &((const struct ack *)b)->id);
}

// Every acknowledged alert is in the reopened journal with its data.
static void
check_acks(const char *path, struct ack *acks, size_t n)
{
	struct replayed r = { 0 };
	struct coord_journal *j;
	char fp[40], sq[32];
	size_t i, k = 0, missing = 0, wrong = 0;

	j = open_ok(path, NULL);
	if (j == NULL)
		return;
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	coord_journal_close(j);
	qsort(acks, n, sizeof(*acks), cmp_ack);
	for (i = 0; i < n; i++) {
		while (k < r.n && r.ids[k] < acks[i].id)
			k++;
		if (k == r.n || r.ids[k] != acks[i].id) {
			missing++;
			continue;
		}
		snprintf(fp, sizeof(fp), "fp-%" PRId64, acks[i].seq);
		snprintf(sq, sizeof(sq), "%" PRId64, acks[i].seq);
		if (r.received[k] != acks[i].seq ||
		    strcmp(r.alerts[k]->fingerprint, fp) != 0 ||
		    label(r.alerts[k], "seq") == NULL ||
		    strcmp(label(r.alerts[k], "seq"), sq) != 0 ||
		    label(r.alerts[k], "alertname") == NULL ||
		    strcmp(label(r.alerts[k], "alertname"), "Durable") != 0)
			wrong++;
	}
	CHECK_INT(missing, 0);
	CHECK_INT(wrong, 0);
	replayed_free(&r);
}

static void
test_acknowledged_alerts_survive_kill9(void)
{
	struct ack *acks = NULL;
	size_t n = 0, cap = 0, before;
	struct tmp t;
	int fds[2], it, status, iters = 30;
	pid_t pid;

	(void)tt_seed();
	tmp_make(&t);
	for (it = 0; it < iters; it++) {
		if (pipe(fds) != 0) {
			CHECK(0);
			break;
		}
		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			CHECK(0);
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			child_main(t.db, fds[1], (int64_t)(it + 1) * 1000000);
		}
		close(fds[1]);
		before = n;
		// Let it acknowledge 0..399 alerts, then wait 0..2 ms more.
		read_acks(fds[0], &acks, &n, &cap, (size_t)(rand() % 400));
		usleep((useconds_t)(rand() % 2000));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status) || (WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0));
		// Acks written before the kill are still in the pipe.
		read_acks(fds[0], &acks, &n, &cap, SIZE_MAX);
		close(fds[0]);
		printf("# run %d: %zu acknowledged%s\n", it, n - before,
		    WIFSIGNALED(status) ? ", killed" : "");
		check_acks(t.db, acks, n);
		if (tt_case_failed)
			break;
	}
	CHECK(n > 0);
	free(acks);
	tmp_remove(&t);
}


// ---- alert texts stored once ---------------------------------------------

// The memo itself: a hit needs every part byte for byte, NULL is not "",
// a text over COORD_TEXTMEMO_MAX is not kept, clear forgets all.
static void
test_textmemo(void)
{
	struct coord_textmemo *m = coord_textmemo_new();
	struct coord_text a = { { "{\"a\":\"1\"}", "{}", "u", "r", NULL },
		{ 9, 2, 1, 1, 0 } };
	struct coord_text b = a, c = a;
	char *big = xcalloc(1, COORD_TEXTMEMO_MAX + 1);

	CHECK(m != NULL);
	if (m == NULL) {
		free(big);
		return;
	}
	CHECK_INT(coord_textmemo_find(m, 7, &a), 0);
	coord_textmemo_put(m, 7, &a, 41);
	CHECK_INT(coord_textmemo_find(m, 7, &a), 41);
	CHECK_INT(coord_textmemo_find(m, 8, &a), 0);	// another key
	b.part[4] = "";					// "" is not NULL
	CHECK_INT(coord_textmemo_find(m, 7, &b), 0);
	c.part[0] = "{\"a\":\"2\"}";			// same length
	CHECK_INT(coord_textmemo_find(m, 7, &c), 0);
	coord_textmemo_put(m, 7, &c, 42);		// the set's other way
	CHECK_INT(coord_textmemo_find(m, 7, &c), 42);
	CHECK_INT(coord_textmemo_find(m, 7, &a), 41);	// used last now
	b = a;
	b.part[3] = "s";				// a third: c goes
	coord_textmemo_put(m, 7, &b, 44);
	CHECK_INT(coord_textmemo_find(m, 7, &b), 44);
	CHECK_INT(coord_textmemo_find(m, 7, &a), 41);
	CHECK_INT(coord_textmemo_find(m, 7, &c), 0);
	memset(big, 'x', COORD_TEXTMEMO_MAX);
	b = a;
	b.part[1] = big;
	b.len[1] = COORD_TEXTMEMO_MAX;
	coord_textmemo_put(m, 9, &b, 43);
	CHECK_INT(coord_textmemo_find(m, 9, &b), 0);	// too long to keep
	coord_textmemo_clear(m);
	CHECK_INT(coord_textmemo_find(m, 7, &a), 0);
	// 500 texts in 4,096 sets of two: nearly all are kept (a set takes
	// a third key about once; one slot a key, as many slots would lose
	// about 30 to another key's text).
	{
		char lab[500][24];
		int kept = 0;

		for (int i = 0; i < 500; i++) {
			b = a;
			snprintf(lab[i], sizeof(lab[i]), "{\"i\":\"%d\"}", i);
			b.part[0] = lab[i];
			b.len[0] = strlen(lab[i]);
			coord_textmemo_put(m, cm_fnv1a(CM_FNV_OFFSET, lab[i]), &b,
			    100 + i);
		}
		for (int i = 0; i < 500; i++) {
			b = a;
			b.part[0] = lab[i];
			b.len[0] = strlen(lab[i]);
			kept += coord_textmemo_find(m, cm_fnv1a(CM_FNV_OFFSET,
			    lab[i]), &b) == 100 + i;
		}
		printf("# %d of 500 kept\n", kept);
		CHECK(kept >= 495);
	}
	coord_textmemo_free(m);
	free(big);
}

// An alert sent again with the same texts refers to the text row stored
// the first time (labels, annotations, URL, receiver and group key all
// alike); a changed annotation, receiver or group key is a text of its
// own; every alert reads back whole through the view and replay.
static void
test_texts_stored_once(void)
{
	struct coord_alert *a = mk_alert("Same", 1, "s"),
	    *b = mk_alert("Same", 1, "changed"), *c = mk_alert("Other", 2, "o");
	struct coord_alert_rec recs[4];
	struct coord_journal_stats js;
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[256];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	for (int round = 0; round < 3; round++) {
		rec_init(&recs[0], a, 10 + round);
		rec_init(&recs[1], c, 10 + round);
		CHECK_INT(submit_wait(j, recs, 2), 0);
	}
	rec_init(&recs[0], a, 20);
	recs[0].group_key = "{}:{team=\"b\"}";	// another group
	rec_init(&recs[1], a, 21);
	recs[1].receiver = "pager";		// another receiver
	rec_init(&recs[2], a, 22);		// as before
	rec_init(&recs[3], b, 23);		// annotation changed
	CHECK_INT(submit_wait(j, recs, 4), 0);
	coord_journal_stats(j, &js);
	CHECK_INT(js.texts_new, 5);
	CHECK_INT(js.texts_found, 5);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 10);
	for (size_t i = 0; i < r.n; i++) {
		const char *want = i == 9 ? "changed" :
		    strcmp(label(r.alerts[i], "alertname"), "Other") == 0 ?
		    "o" : "s";

		CHECK(r.alerts[i]->annotations.n == 1 &&
		    strcmp(r.alerts[i]->annotations.v[0].val, want) == 0);
		CHECK(r.alerts[i]->generator_url != NULL && strcmp(
		    r.alerts[i]->generator_url,
		    "http://127.0.0.1:9090/graph") == 0);
	}
	replayed_free(&r);
	coord_journal_close(j);
	db_text(t.db, "SELECT count(*) FROM alert_texts", buf, sizeof(buf));
	CHECK_STR(buf, "5");
	db_text(t.db, "SELECT count(*) FROM alerts_in WHERE labels = '' AND"
	    " annotations = '' AND generator_url = '' AND receiver IS NULL"
	    " AND group_key IS NULL AND text_id IS NOT NULL", buf, sizeof(buf));
	CHECK_STR(buf, "10");
	db_text(t.db, "SELECT group_concat(receiver || ' ' || coalesce("
	    "group_key, '-') || ' ' || json_extract(labels, '$.alertname'),"
	    " ', ') FROM (SELECT * FROM alerts WHERE id >= 7 ORDER BY id)",
	    buf, sizeof(buf));
	CHECK_STR(buf, "reflex {}:{team=\"b\"} Same,"
	    " pager {}:{alertname=\"X\"} Same, reflex {}:{alertname=\"X\"} Same,"
	    " reflex {}:{alertname=\"X\"} Same");
out:
	coord_alert_free(a);
	coord_alert_free(b);
	coord_alert_free(c);
	tmp_remove(&t);
}

// Retention keeps a text while an alert refers to it and deletes it once
// none can: an old alert and a young one share a text; the old one goes,
// the text stays and the young one reads back whole; once the young one
// is old and gone too, the text goes with it (the first pass marked it).
static void
test_texts_retention(void)
{
	struct coord_journal_opts o = { .retention_ms = HOUR_MS,
		.retention_interval_ms = 1LL << 50 };
	struct coord_alert *a = mk_alert("Kept", 1, "k");
	int64_t now = cm_now_ms(), deleted;
	struct coord_alert_rec recs[2];
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[64];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&recs[0], a, now - 2 * HOUR_MS);
	rec_init(&recs[1], a, now);
	CHECK_INT(submit_wait(j, recs, 2), 0);
	for (int pass = 0; pass < 3; pass++) {
		deleted = -1;
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		CHECK_INT(deleted, pass == 0 ? 1 : 0);
	}
	db_text(t.db, "SELECT count(*) FROM alert_texts", buf, sizeof(buf));
	CHECK_STR(buf, "1");
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1)
		CHECK(r.alerts[0]->annotations.n == 1 &&
		    strcmp(r.alerts[0]->annotations.v[0].val, "k") == 0 &&
		    strcmp(label(r.alerts[0], "alertname"), "Kept") == 0);
	replayed_free(&r);
	coord_journal_close(j);

	// Now every alert is old (a retention of a minute, the young one
	// over a minute old by its received time): both passes run.
	o.retention_ms = 1;
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	usleep(5000);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 1);
	// The mark of the first pass above covers it.
	db_text(t.db, "SELECT count(*) FROM alert_texts", buf, sizeof(buf));
	CHECK_STR(buf, "0");
	// The previous process may have stored texts after its last mark:
	// the first pass marks again, and the next drops that mark.
	db_text(t.db, "SELECT count(*) FROM alert_text_marks", buf,
	    sizeof(buf));
	CHECK_STR(buf, "1");
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	db_text(t.db, "SELECT count(*) FROM alert_text_marks", buf,
	    sizeof(buf));
	CHECK_STR(buf, "0");
	coord_journal_close(j);
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// Automatic retention passes (here after every batch) mark texts at most
// once an hour (TEXT_MARK_MS): the memo outlives them, so an alert sent
// again minutes later (Alertmanager's group_interval) still finds its
// text. An operator's purge (retain_now) marks at once.
static void
test_texts_outlive_passes(void)
{
	struct coord_journal_opts o = { .retention_ms = HOUR_MS,
		.retention_interval_ms = 1 };
	struct coord_alert *a = mk_alert("Again", 1, "a"),
	    *b = mk_alert("Other", 2, "b");
	struct coord_journal_stats js;
	struct coord_alert_rec rec;
	struct coord_journal *j;
	int64_t deleted;
	char buf[64];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	for (int i = 0; i < 4; i++) {
		rec_init(&rec, i % 2 == 0 ? a : b, cm_now_ms());
		CHECK_INT(submit_wait(j, &rec, 1), 0);
		usleep(5000);	// past the interval: a pass after each batch
	}
	coord_journal_stats(j, &js);
	CHECK_INT(js.texts_new, 2);
	CHECK_INT(js.texts_found, 2);
	db_text(t.db, "SELECT count(*) FROM alert_text_marks", buf,
	    sizeof(buf));
	CHECK_STR(buf, "0");
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	db_text(t.db, "SELECT count(*) FROM alert_text_marks", buf,
	    sizeof(buf));
	CHECK_STR(buf, "1");
	rec_init(&rec, a, cm_now_ms());	// the memo was emptied by the mark
	CHECK_INT(submit_wait(j, &rec, 1), 0);
	coord_journal_stats(j, &js);
	CHECK_INT(js.texts_new, 3);
	coord_journal_close(j);
out:
	coord_alert_free(a);
	coord_alert_free(b);
	tmp_remove(&t);
}

// A version 3 journal (texts in each alert's row) opens as version 4:
// its rows keep their texts and read back through the view and replay;
// new rows refer to text rows.
static void
test_schema_migrates_from_v3(void)
{
	static const char v3[] =
	    "CREATE TABLE alerts_in(id INTEGER PRIMARY KEY,"
	    " received_ms INTEGER NOT NULL, identity INTEGER NOT NULL,"
	    " fingerprint TEXT NOT NULL, status TEXT NOT NULL"
	    " CHECK(status IN ('firing', 'resolved')), starts_ms INTEGER,"
	    " ends_ms INTEGER, alertname TEXT, labels TEXT NOT NULL,"
	    " annotations TEXT NOT NULL, generator_url TEXT NOT NULL,"
	    " receiver TEXT, group_key TEXT);"
	    "CREATE TABLE alert_outcomes(alert_id INTEGER PRIMARY KEY,"
	    " outcome TEXT NOT NULL, detail TEXT, done_ms INTEGER);"
	    "CREATE VIEW alerts AS SELECT a.*, coalesce(o.outcome,"
	    " 'pending') AS outcome, o.detail AS detail, o.done_ms AS done_ms"
	    " FROM alerts_in a LEFT JOIN alert_outcomes o"
	    " ON o.alert_id = a.id;"
	    "CREATE TABLE actions(id INTEGER PRIMARY KEY,"
	    " alert_id INTEGER NOT NULL, identity INTEGER NOT NULL,"
	    " incident_start_ms INTEGER NOT NULL, rule TEXT NOT NULL,"
	    " type TEXT NOT NULL, service TEXT NOT NULL,"
	    " instance TEXT NOT NULL, node TEXT, state TEXT NOT NULL,"
	    " detail TEXT, attempt INTEGER NOT NULL,"
	    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	    "CREATE INDEX actions_created ON actions(created_ms);"
	    "CREATE INDEX actions_service ON actions(service, created_ms);"
	    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	    "INSERT INTO alerts_in VALUES(1, 10, 7, 'fp-1', 'firing', 1, NULL,"
	    " 'Old', '{\"alertname\":\"Old\",\"service\":\"legacy\"}',"
	    " '{\"summary\":\"was\"}', 'http://127.0.0.1/old', 'reflex',"
	    " '{}:{}');"
	    "PRAGMA user_version=3;";
	struct coord_alert *a = mk_alert("New", 2, "n");
	struct coord_alert_rec rec;
	struct replayed r = { 0 };
	struct coord_journal *j;
	char buf[256];
	struct tmp t;
	sqlite3 *db;

	tmp_make(&t);
	CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, v3, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	j = open_ok(t.db, NULL);
	if (j == NULL)
		goto out;
	rec_init(&rec, a, 20);
	CHECK_INT(submit_wait(j, &rec, 1), 0);
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 2);
	if (r.n == 2) {
		CHECK_STR(label(r.alerts[0], "alertname"), "Old");
		CHECK_STR(r.alerts[0]->annotations.v[0].val, "was");
		CHECK_STR(r.alerts[0]->generator_url, "http://127.0.0.1/old");
		CHECK_STR(label(r.alerts[1], "alertname"), "New");
		CHECK_STR(r.alerts[1]->annotations.v[0].val, "n");
	}
	replayed_free(&r);
	// The alerts query (GET /api/v1/alerts, `reflex-coordinator
	// alerts`) filters both kinds of row by their service label.
	{
		struct coord_journal_filter f = { .service = "legacy" };
		cJSON *arr = query_alerts(j, &f);
		const cJSON *o = cJSON_GetArrayItem(arr, 0);

		CHECK_STR(str(cJSON_GetObjectItemCaseSensitive(o, "labels"),
		    "alertname"), "Old");
		check_ids(arr, (int64_t[]){ 1 }, 1);
		f.service = "checkout";
		arr = query_alerts(j, &f);
		o = cJSON_GetArrayItem(arr, 0);
		CHECK_STR(str(cJSON_GetObjectItemCaseSensitive(o, "labels"),
		    "alertname"), "New");
		CHECK_STR(str(o, "service"), "checkout");
		check_ids(arr, (int64_t[]){ 2 }, 1);
		check_ids(query_alerts(j, NULL), (int64_t[]){ 2, 1 }, 2);
	}
	coord_journal_close(j);
	db_text(t.db, "PRAGMA user_version", buf, sizeof(buf));
	CHECK_STR(buf, "4");
	db_text(t.db, "SELECT group_concat(id || ' ' || receiver || ' ' ||"
	    " group_key || ' ' || json_extract(annotations, '$.summary') || ' '"
	    " || outcome || ' ' || coalesce(text_id, '-'), ', ')"
	    " FROM (SELECT a.*, i.text_id FROM alerts a JOIN alerts_in i"
	    " ON i.id = a.id ORDER BY a.id)", buf, sizeof(buf));
	CHECK_STR(buf, "1 reflex {}:{} was pending -, "
	    "2 reflex {}:{alertname=\"X\"} n pending 1");
out:
	coord_alert_free(a);
	tmp_remove(&t);
}

// An alert received while the clock was a day ahead stays a day (see
// test_retention_past_a_young_alert), the first alert of all. It must not
// keep the texts of the alerts stored after it, which retention deletes
// meanwhile: they go (the alert keeps its own texts and reads back whole),
// or a day of texts would fill the journal up to its size cap.
static void
test_texts_past_a_future_alert(void)
{
	struct coord_journal_opts o = { .sync_full = false,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50 };
	struct coord_alert *ahead = mk_alert("Ahead", 0, "ahead");
	struct coord_alert_rec recs[100];
	struct coord_alert *olda[100];
	struct replayed r = { 0 };
	struct coord_journal *j;
	int64_t now = cm_now_ms(), deleted;
	char buf[256];
	struct tmp t;

	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	rec_init(&recs[0], ahead, now + 24 * HOUR_MS);
	CHECK_INT(submit_wait(j, recs, 1), 0);
	for (int round = 0; round < 4; round++) {
		for (int m = 0; m < 100; m++) {	// each with a text of its own
			olda[m] = mk_alert("Old", 1 + round * 100 + m, "o");
			rec_init(&recs[m], olda[m], now - 2 * HOUR_MS);
		}
		CHECK_INT(submit_wait(j, recs, 100), 0);
		for (int m = 0; m < 100; m++)
			coord_alert_free(olda[m]);
		// The second pass: the texts stored since the first one's
		// mark.
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		CHECK_INT(deleted, 100);
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		db_text(t.db, "SELECT count(*) FROM alert_texts", buf,
		    sizeof(buf));
		CHECK_STR(buf, "0");
	}
	db_text(t.db, "SELECT alertname || ' ' || json_extract(labels,"
	    " '$.seq') || ' ' || json_extract(annotations, '$.summary') ||"
	    " ' ' || receiver || ' ' || group_key || ' ' || (SELECT count(*)"
	    " FROM alerts) FROM alerts", buf, sizeof(buf));
	CHECK_STR(buf, "Ahead 0 ahead reflex {}:{alertname=\"X\"} 1");
	CHECK_INT(coord_journal_replay_pending(j, replay_cb, &r), 0);
	CHECK_INT(r.n, 1);
	if (r.n == 1)
		CHECK(strcmp(label(r.alerts[0], "alertname"), "Ahead") == 0 &&
		    r.alerts[0]->annotations.n == 1 &&
		    strcmp(r.alerts[0]->annotations.v[0].val, "ahead") == 0);
	replayed_free(&r);
	coord_journal_close(j);
out:
	coord_alert_free(ahead);
	tmp_remove(&t);
}

// Alerts received a day ahead that share a long text take it back into
// their rows (see retain_texts), which needs room: at the size cap they
// keep sharing it and retention still deletes the old alerts (else no
// pass would ever free space); with room, the next pass moves the texts.
static void
test_texts_ahead_at_size_cap(void)
{
	struct coord_journal_opts o = { .sync_full = false,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50,
		.max_bytes = 256 * 1024 };
	char *longs = xcalloc(1, 6001);
	struct coord_alert *ahead, *more[40];
	struct coord_alert_rec recs[40];
	struct coord_journal *j;
	int64_t now = cm_now_ms(), deleted = -1;
	char buf[64];
	struct tmp t;
	int seq = 1, rv = 0, k;

	memset(longs, 'L', 6000);
	ahead = mk_alert("Ahead", 0, longs);
	tmp_make(&t);
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	for (int m = 0; m < 20; m++) {
		more[m] = mk_alert("Old", seq++, "o");
		rec_init(&recs[m], more[m], now - 2 * HOUR_MS);
	}
	CHECK_INT(submit_wait(j, recs, 20), 0);
	for (int m = 0; m < 20; m++)
		coord_alert_free(more[m]);
	for (k = 0; k < 40; k++)	// one text for all 40
		rec_init(&recs[k], ahead, now + 24 * HOUR_MS + k);
	CHECK_INT(submit_wait(j, recs, 40), 0);
	for (k = 0; rv == 0 && k < 1000; k++) {	// young ones up to the cap
		for (int m = 0; m < 20; m++) {
			more[m] = mk_alert("Young", seq++, "y");
			rec_init(&recs[m], more[m], now);
		}
		rv = submit_wait(j, recs, 20);
		for (int m = 0; m < 20; m++)
			coord_alert_free(more[m]);
	}
	CHECK_INT(rv, -ENOSPC);
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	CHECK_INT(deleted, 20);
	db_text(t.db, "SELECT count(*) FROM alerts_in WHERE alertname ="
	    " 'Ahead' AND text_id IS NOT NULL", buf, sizeof(buf));
	CHECK_STR(buf, "40");
	coord_journal_close(j);
	o.max_bytes = 0;
	j = open_ok(t.db, &o);
	if (j == NULL)
		goto out;
	CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
	coord_journal_close(j);
	db_text(t.db, "SELECT count(*) FROM alerts WHERE alertname = 'Ahead'"
	    " AND length(json_extract(annotations, '$.summary')) = 6000 AND"
	    " receiver = 'reflex' AND id IN (SELECT id FROM alerts_in WHERE"
	    " text_id IS NULL)", buf, sizeof(buf));
	CHECK_STR(buf, "40");
out:
	coord_alert_free(ahead);
	free(longs);
	tmp_remove(&t);
}

// A random model of texts and retention: alerts (sent again or changed,
// receiver and group key NULL, "" or set, summaries that are prefixes of
// each other, texts over COORD_TEXTMEMO_MAX) received long ago, now or
// in the future, retention passes, reopens, in random order. After every
// step no alert refers to a text that is gone, and every alert reads back
// through the view with the texts it was sent with (a wrong hit of the
// memo would show another alert's). At the end, with every alert aged
// and deleted, no text is left.
#define MODEL_STEPS 400
#define MODEL_IDS 4096

struct model_row {
	int seq, sum;		// -1: no alert with this id
	int recv, group;	// index into model_strs, 0: NULL
};

static const char *const model_strs[] = { NULL, "", "r", "rr" };

static void
model_summary(int sum, char *buf, size_t n)
{
	// "", "a", "aa", ... and one long text (not kept by the memo).
	size_t len = sum < 5 ? (size_t)sum : COORD_TEXTMEMO_MAX + 100;

	if (len >= n)
		len = n - 1;
	memset(buf, 'a', len);
	buf[len] = '\0';
}

static void
model_check(const char *path, const struct model_row *rows, int step)
{
	static char want[COORD_TEXTMEMO_MAX + 200];
	sqlite3_stmt *q = NULL;
	sqlite3 *db = NULL;
	char buf[32];
	int bad = 0, n = 0;

	db_text(path, "SELECT count(*) FROM alerts_in a WHERE a.text_id IS"
	    " NOT NULL AND NOT EXISTS (SELECT 1 FROM alert_texts t WHERE"
	    " t.id = a.text_id)", buf, sizeof(buf));
	if (strcmp(buf, "0") != 0)
		printf("# step %d: %s alerts refer to texts gone\n", step, buf);
	CHECK_STR(buf, "0");
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_prepare_v2(db, "SELECT id,"
	    " json_extract(labels, '$.seq'),"
	    " json_extract(annotations, '$.summary'), receiver, group_key"
	    " FROM alerts", -1, &q, NULL), SQLITE_OK);
	while (q != NULL && sqlite3_step(q) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		const struct model_row *m = id > 0 && id < MODEL_IDS ?
		    &rows[id] : NULL;
		const char *seq = (const char *)sqlite3_column_text(q, 1);
		const char *sum = (const char *)sqlite3_column_text(q, 2);
		const char *rc = (const char *)sqlite3_column_text(q, 3);
		const char *gk = (const char *)sqlite3_column_text(q, 4);
		const char *wr, *wg;

		n++;
		if (m == NULL || m->seq < 0) {
			bad++;
			continue;
		}
		snprintf(buf, sizeof(buf), "%d", m->seq);
		model_summary(m->sum, want, sizeof(want));
		wr = model_strs[m->recv];
		wg = model_strs[m->group];
		if (seq == NULL || strcmp(seq, buf) != 0 || sum == NULL ||
		    strcmp(sum, want) != 0 || (rc == NULL) != (wr == NULL) ||
		    (rc != NULL && strcmp(rc, wr) != 0) ||
		    (gk == NULL) != (wg == NULL) ||
		    (gk != NULL && strcmp(gk, wg) != 0)) {
			if (bad++ < 3)
				printf("# step %d: alert %lld reads seq=%s"
				    " receiver=%s group_key=%s\n", step,
				    (long long)id, seq ? seq : "NULL",
				    rc ? rc : "NULL", gk ? gk : "NULL");
		}
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	CHECK_INT(bad, 0);
}

static void
test_texts_model(void)
{
	// A size cap that some webhooks of long texts hit: their batch
	// rolls back after storing texts (and the memo kept them).
	struct coord_journal_opts o = { .sync_full = false,
		.retention_ms = HOUR_MS, .retention_interval_ms = 1LL << 50,
		.max_bytes = 1024 * 1024 };
	static struct model_row rows[MODEL_IDS];
	static char sums[6][COORD_TEXTMEMO_MAX + 200];
	struct coord_alert *pool[4][6];
	struct coord_alert_rec recs[8];
	struct coord_journal *j;
	int64_t now = cm_now_ms(), deleted;
	unsigned seed = tt_seed();
	char buf[32];
	struct tmp t;
	int step, full = 0, stored = 0;

	for (int s = 0; s < 6; s++)
		model_summary(s, sums[s], sizeof(sums[s]));
	for (int q = 0; q < 4; q++)
		for (int s = 0; s < 6; s++)
			pool[q][s] = mk_alert("Model", q, sums[s]);
	for (int i = 0; i < MODEL_IDS; i++)
		rows[i].seq = -1;
	tmp_make(&t);
	j = open_ok(t.db, &o);
	for (step = 0; step < MODEL_STEPS && j != NULL; step++) {
		int op = rand_r(&seed) % 10;

		if (op < 7) {		// a webhook of 1..8 alerts
			int n = 1 + rand_r(&seed) % 8, when = rand_r(&seed) % 3;
			int rv;
			int recv = rand_r(&seed) % 4, group = rand_r(&seed) % 4;
			int64_t at = when == 0 ? now - 2 * HOUR_MS - step :
			    when == 1 ? now : now + 2 * HOUR_MS;
			int seq[8], sum[8];

			for (int i = 0; i < n; i++) {
				seq[i] = rand_r(&seed) % 4;
				sum[i] = rand_r(&seed) % 6;
				rec_init(&recs[i], pool[seq[i]][sum[i]], at);
				recs[i].receiver = model_strs[recv];
				recs[i].group_key = model_strs[group];
			}
			// Every other 50 steps only old alerts: all of them
			// go, and ids are handed out again.
			if (step / 50 % 2 == 1)
				at = now - 2 * HOUR_MS - step;
			rv = submit_wait(j, recs, (size_t)n);
			full += rv == -ENOSPC;
			if (rv != -ENOSPC)
				CHECK_INT(rv, 0);
			for (int i = 0; rv == 0 && i < n; i++) {
				CHECK(recs[i].id > 0 && recs[i].id < MODEL_IDS);
				if (recs[i].id <= 0 || recs[i].id >= MODEL_IDS)
					continue;
				rows[recs[i].id] = (struct model_row){ seq[i],
					sum[i], recv, group };
				stored++;
			}
		} else if (op < 9) {
			CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		} else {
			coord_journal_close(j);
			j = open_ok(t.db, &o);
		}
		model_check(t.db, rows, step);
	}
	printf("# %d alerts stored, %d webhooks refused (size cap)\n", stored,
	    full);
	CHECK(full > 0);
	if (j != NULL)
		coord_journal_close(j);
	// Every alert old now: all of them and all texts go.
	{
		sqlite3 *db = NULL;

		CHECK_INT(sqlite3_open(t.db, &db), SQLITE_OK);
		CHECK_INT(sqlite3_exec(db, "UPDATE alerts_in SET"
		    " received_ms = 1", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	j = open_ok(t.db, &o);
	if (j != NULL) {
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		CHECK_INT(coord_journal_retain_now(j, &deleted), 0);
		coord_journal_close(j);
	}
	db_text(t.db, "SELECT count(*) FROM alerts_in", buf, sizeof(buf));
	CHECK_STR(buf, "0");
	db_text(t.db, "SELECT count(*) FROM alert_texts", buf, sizeof(buf));
	CHECK_STR(buf, "0");
	for (int q = 0; q < 4; q++)
		for (int s = 0; s < 6; s++)
			coord_alert_free(pool[q][s]);
	tmp_remove(&t);
}

static const struct tt_case cases[] = {
	{ "open reports a missing directory", test_open_missing_dir },
	{ "schema version 2 migrates to 4", test_schema_migrates_from_v2 },
	{ "schema version 3 migrates to 4: its rows keep their texts",
	    test_schema_migrates_from_v3 },
	{ "the text memo compares every part", test_textmemo },
	{ "an alert's texts are stored once for the alerts that repeat them",
	    test_texts_stored_once },
	{ "retention keeps a text while an alert refers to it, then drops it",
	    test_texts_retention },
	{ "automatic retention passes leave the texts' memo alone for an hour",
	    test_texts_outlive_passes },
	{ "an alert received in the future keeps no other alert's texts",
	    test_texts_past_a_future_alert },
	{ "alerts ahead at the size cap keep their shared text; old ones go",
	    test_texts_ahead_at_size_cap },
	{ "texts stay whole and go with their alerts over random steps",
	    test_texts_model },
	{ "a version 2 journal at its size cap migrates",
	    test_schema_migrates_at_size_cap },
	{ "retention of pending alerts moves the mark",
	    test_retention_of_pending_alerts },
	{ "replay gives up on an unreadable alert",
	    test_replay_gives_up_on_unreadable },
	{ "the decided-through mark bounds replay",
	    test_decided_mark_bounds_replay },
	{ "open refuses a newer schema and a non-database",
	    test_open_refuses_newer_schema_and_garbage },
	{ "alerts are stored and replayed in order", test_store_and_replay },
	{ "replay callback may write", test_replay_callback_may_write },
	{ "alerts and actions persist across reopen",
	    test_persists_across_reopen },
	{ "actions insert, update and scan", test_actions_insert_update_scan },
	{ "a fan-out's rows go in one commit", test_actions_insert_many },
	{ "a batch of outcomes, rows and updates is one commit",
	    test_batch_one_commit },
	{ "a batch's outcomes go 2 to 8 to a statement, each row its own",
	  test_batch_outcome_runs },
	{ "a webhook's alerts go four to a statement, each with its id",
	  test_alert_groups_ids },
	{ "a batch's outcomes go eight to a statement",
	  test_batch_outcome_groups },
	{ "label JSON survives quotes, control bytes and UTF-8",
	    test_label_json_round_trip },
	{ "label JSON survives 400 random values", test_label_json_random },
	{ "label JSON the alert brings is stored as it is",
	    test_label_json_own },
	{ "query filters, orders and limits", test_query_filters_and_limit },
	{ "alerts with their outcomes, filtered", test_query_alerts },
	{ "query limit default and maximum", test_query_limit_bounds },
	{ "concurrent submitters share group commits", test_group_commit },
	{ "a full queue answers EAGAIN", test_full_queue_eagain },
	{ "WAL frames reach the database file by the checkpointer",
	    test_checkpoint_beside_writer },
	{ "checkpoint_waits_for_quiet", test_checkpoint_waits_for_quiet },
	{ "checkpoint_forced_when_busy", test_checkpoint_forced_when_busy },
	{ "a checkpoint's pages leave the page cache but the file's tail",
	    test_checkpoint_drops_cached_pages },
	{ "pages dropped after checkpoints read back whole beside retention",
	    test_trim_beside_retention },
	{ "sync_full: the next batch commits beside the sync",
	    test_commit_beside_sync },
	{ "early callback: the promised batch shares the alerts' sync",
	    test_early_shares_sync },
	{ "early callback: quiet only for a commit of its alerts alone",
	    test_early_quiet_alone },
	{ "early callback: an unkept hold lingers, then is dropped",
	    test_early_unkept_hold },
	{ "early callback: a lost hold is dropped while others are kept",
	    test_early_unkept_beside_kept },
	{ "early callback: holds dropped while one is counted stay at 0",
	    test_early_drop_while_counted },
	{ "early callback: only after a commit that a sync follows",
	    test_early_only_committed_synced },
	{ "a batch of action rows runs inline when the writer is idle "
	    "(no full sync); outcomes alone are queued",
	    test_batch_inline_when_idle },
	{ "a submitter's batches commit in order, inline or queued",
	    test_batch_order_per_submitter },
	{ "blocking write from a callback is refused",
	    test_blocking_write_from_callback_refused },
	{ "a failed commit stores nothing and the journal goes on",
	    test_commit_failure_rolls_back },
	{ "retention deletes old rows", test_retention_deletes_old_rows },
	{ "retention goes past an alert received in the future",
	    test_retention_past_a_young_alert },
	{ "the mark follows alerts whose ids retention freed",
	    test_mark_follows_reused_ids },
	{ "retention runs automatically", test_retention_runs_automatically },
	{ "ids reused after retention replay after a crash",
	    test_mark_after_retention_reuses_ids },
	{ "reads run beside commits", test_reads_beside_commits },
	{ "stats report file size and WAL mode",
	    test_stats_file_size_and_wal },
	{ "acknowledged alerts survive kill -9",
	    test_acknowledged_alerts_survive_kill9 },
	{ NULL, NULL },
};

TT_MAIN(cases)
