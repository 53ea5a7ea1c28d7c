// SPDX-License-Identifier: MIT
// fault-shim: an LD_PRELOAD library for fault tests, never installed.
// Each fault is switched on by a file existing, so a test turns it on and
// off while the process runs:
//
//   REFLEX_FAIL_FSYNC=PATH    while PATH exists, fdatasync() and fsync()
//                             fail with EIO (a disk that lost a write).
//   REFLEX_FAIL_FSYNC_DELAY_MS=N  such a failing call first waits N ms
//                             (0..60000): a disk that takes its time to
//                             report the loss, while the other threads
//                             go on.
//   REFLEX_STALL_QUERY=PATH   while PATH exists (at most 60 s), SQLite
//                             statements that begin with
//                             $REFLEX_STALL_SQL (default "SELECT act.id",
//                             the journal's action query) wait in
//                             sqlite3_step(): a read held up by a lock or
//                             a slow disk.
//   REFLEX_CLOCK_SKIP=PATH    while PATH exists, CLOCK_MONOTONIC reads
//                             the number of seconds written in it
//                             (0..1e6) ahead: hours pass at once for
//                             what keys on elapsed time (pruning,
//                             expiries). Waits that an absolute time
//                             bounds then end only when woken.
//   REFLEX_FAIL_SCHED=PATH    while PATH exists, pthread_setschedparam()
//                             fails with EPERM (a seccomp profile or a
//                             policy that refuses scheduling changes).
//   REFLEX_HANG_NNG_CLOSE=PATH  while PATH exists, nng_close() never
//                             returns (libnng 1.5.2's hang when an abort
//                             is lost as a peer sends).
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
on(const char *var)
{
	const char *path = getenv(var);

	return path != NULL && *path != '\0' && access(path, F_OK) == 0;
}

typedef int (*sync_fn)(int);

static int
sync_call(const char *name, int fd)
{
	sync_fn next;

	if (on("REFLEX_FAIL_FSYNC")) {
		const char *d = getenv("REFLEX_FAIL_FSYNC_DELAY_MS");
		long ms = d != NULL ? strtol(d, NULL, 10) : 0;

		if (ms > 0 && ms <= 60000) {
			struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		errno = EIO;
		return -1;
	}
	next = (sync_fn)dlsym(RTLD_NEXT, name);
	if (next == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return next(fd);
}

int
fdatasync(int fd)
{
	return sync_call("fdatasync", fd);
}

int
fsync(int fd)
{
	return sync_call("fsync", fd);
}

// SQLite's statement handle, opaque here.
struct sqlite3_stmt;
typedef int (*step_fn)(struct sqlite3_stmt *);
typedef const char *(*sql_fn)(struct sqlite3_stmt *);

int sqlite3_step(struct sqlite3_stmt *st);

int
sqlite3_step(struct sqlite3_stmt *st)
{
	step_fn next = (step_fn)dlsym(RTLD_NEXT, "sqlite3_step");
	sql_fn sql = (sql_fn)dlsym(RTLD_NEXT, "sqlite3_sql");
	const char *want = getenv("REFLEX_STALL_SQL");
	const char *text;

	if (next == NULL)
		return 1; // SQLITE_ERROR
	if (sql != NULL && on("REFLEX_STALL_QUERY")) {
		if (want == NULL || *want == '\0')
			want = "SELECT act.id";
		text = sql(st);
		if (text != NULL && strncmp(text, want, strlen(want)) == 0) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			for (int i = 0; i < 6000 && on("REFLEX_STALL_QUERY"); i++)
				nanosleep(&ts, NULL);
		}
	}
	return next(st);
}

typedef int (*clock_fn)(clockid_t, struct timespec *);

// The skip in seconds while the file exists, else 0.
static long long
clock_skip(void)
{
	const char *path = getenv("REFLEX_CLOCK_SKIP");
	long long sec = 0;
	FILE *f;

	if (path == NULL || *path == '\0' || (f = fopen(path, "re")) == NULL)
		return 0;
	if (fscanf(f, "%lld", &sec) != 1 || sec < 0 || sec > 1000000)
		sec = 0;
	fclose(f);
	return sec;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	static clock_fn next;
	int rv;

	if (next == NULL)
		next = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
	if (next == NULL) {
		errno = ENOSYS;
		return -1;
	}
	rv = next(id, ts);
	if (rv == 0 && id == CLOCK_MONOTONIC)
		ts->tv_sec += clock_skip();
	return rv;
}

typedef int (*sched_fn)(pthread_t, int, const struct sched_param *);

int
pthread_setschedparam(pthread_t th, int policy, const struct sched_param *p)
{
	sched_fn next;

	if (on("REFLEX_FAIL_SCHED"))
		return EPERM;
	next = (sched_fn)dlsym(RTLD_NEXT, "pthread_setschedparam");
	return next != NULL ? next(th, policy, p) : ENOSYS;
}

// nng_socket as libnng passes it (by value: one 32-bit id); the shim
// links no libnng of its own.
struct shim_nng_socket {
	unsigned id;
};

typedef int (*close_fn)(struct shim_nng_socket);

int nng_close(struct shim_nng_socket s);

int
nng_close(struct shim_nng_socket s)
{
	close_fn next;

	if (on("REFLEX_HANG_NNG_CLOSE"))
		for (;;)
			pause();
	next = (close_fn)dlsym(RTLD_NEXT, "nng_close");
	return next != NULL ? next(s) : ENOSYS;
}
