// SPDX-License-Identifier: MIT
// cm_log: the one logging helper of reflex. One line per event on stderr:
//
//   2026-12-04T10:00:00.123Z level=info comp=coordinator event=webhook.accept alerts=3
//
// The caller gives a stable event id ("module.what") and printf-style
// key=value fields. Values that may hold spaces, quotes or control
// characters go through cm_q() first. All functions are thread-safe; a line
// is written with one write(2) so concurrent lines never interleave.
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum cm_log_level {
	CM_LOG_ERR = 0,
	CM_LOG_WARN,
	CM_LOG_NOTICE,
	CM_LOG_INFO,
	CM_LOG_DEBUG,
};

// Receives each formatted line (without the trailing newline). Called on
// the logging thread; must not log itself.
typedef void (*cm_log_sink_fn)(int level, const char *line, void *arg);

// Sets the component name printed as comp=NAME. Borrows `comp`: it must
// outlive all logging (use a string literal).
void cm_log_set_component(const char *comp);
void cm_log_set_level(int level);
int cm_log_get_level(void);

// Parses "err|warn|notice|info|debug". Returns 0, or -EINVAL.
int cm_log_level_parse(const char *s, int *ret);
const char *cm_log_level_name(int level);

// Replaces the sink (NULL restores stderr). Tests use this to capture.
void cm_log_set_sink(cm_log_sink_fn fn, void *arg);

bool cm_log_enabled(int level);

// Formats and emits one line if `level` is enabled. `fields` is a
// printf format for the key=value part; pass "" for none.
void cm_log(int level, const char *event, const char *fields, ...)
	__attribute__((format(printf, 3, 4)));

// Logs like cm_log and returns `rv` unchanged, for "log and return":
//   return cm_log_ret(-EINVAL, CM_LOG_WARN, "conf.bad", "key=%s", k);
int cm_log_ret(int rv, int level, const char *event, const char *fields, ...)
	__attribute__((format(printf, 4, 5)));

// Gathers the calling thread's lines while held (calls nest) and writes
// them with as few write(2) calls as fit, each of whole lines and at most
// CM_LOG_HOLD_MAX bytes (PIPE_BUF: a pipe keeps such a write whole), when
// the last hold is released or the gathered lines would pass that size.
// warn and err lines are never held back: what was gathered goes first,
// then they. For a thread that logs many lines in a burst (the engine's
// decisions in a storm); a crash loses at most the held lines, which the
// journal records anyway. A sink (tests) gets every line at once.
#define CM_LOG_HOLD_MAX 4096
void cm_log_hold(void);
void cm_log_release(void);

// The level is checked before the arguments are evaluated, so a debug
// line on a hot path costs no cm_q() quoting when debug is off.
#define CM_LOG_AT(lvl, ev, ...)                                             \
	do {                                                                \
		if (cm_log_enabled(lvl))                                    \
			cm_log((lvl), ev, __VA_ARGS__);                     \
	} while (0)
#define cm_err(ev, ...) CM_LOG_AT(CM_LOG_ERR, ev, __VA_ARGS__)
#define cm_warn(ev, ...) CM_LOG_AT(CM_LOG_WARN, ev, __VA_ARGS__)
#define cm_notice(ev, ...) CM_LOG_AT(CM_LOG_NOTICE, ev, __VA_ARGS__)
#define cm_info(ev, ...) CM_LOG_AT(CM_LOG_INFO, ev, __VA_ARGS__)
#define cm_debug(ev, ...) CM_LOG_AT(CM_LOG_DEBUG, ev, __VA_ARGS__)

// Quotes `s` for use as a field value: wraps it in double quotes when it
// holds anything but [A-Za-z0-9._:/@+-], escapes quotes, backslashes and
// control characters, and truncates to fit `n` (ending in "..."). Writes
// into `buf` and returns it. NULL prints as "-".
#define CM_Q_MAX 160
char *cm_q_buf(char *buf, size_t n, const char *s);
#define cm_q(s) cm_q_buf((char[CM_Q_MAX]){0}, CM_Q_MAX, (s))

#endif
