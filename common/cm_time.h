// SPDX-License-Identifier: MIT
// cm_time: clocks and RFC 3339 timestamps.
#ifndef CM_TIME_H
#define CM_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

// Go's zero time.Time ("0001-01-01T00:00:00Z"), which Alertmanager sends as
// endsAt of every firing alert, parses to this value: "no time known".
#define CM_TIME_NONE INT64_MIN

// Milliseconds since the Unix epoch (wall clock) / since an arbitrary
// point (monotonic, for timeouts and rates).
int64_t cm_now_ms(void);
int64_t cm_mono_ms(void);

// CLOCK_MONOTONIC's now plus ns (>= 0), as the absolute time that
// pthread_cond_timedwait (on a condition variable set to that clock) and
// pthread_mutex_clocklock take.
struct timespec cm_mono_after_ns(int64_t ns);

// Parses RFC 3339 ("2026-12-04T17:47:17.113904445+08:00", 1-9 fraction
// digits, "Z" or +hh:mm offset) into epoch milliseconds, fraction
// truncated. Years 1..9999; the Go zero time gives CM_TIME_NONE. Returns
// 0 or -EINVAL. Lowercase "t"/"z" are accepted (RFC 3339 5.6); see
// cm_time.c for the exact grammar. Pure; any thread.
int cm_time_parse(const char *s, int64_t *ret_ms);

// Formats epoch ms as "2026-12-04T10:00:00.123Z" into buf (>= 32 bytes).
// CM_TIME_NONE formats as "", and so does any instant outside years
// 1..9999 UTC. Returns buf. Pure; any thread.
char *cm_time_format(int64_t ms, char *buf, size_t n);

#endif
