// SPDX-License-Identifier: MIT
// cm_log: key=value line logging to stderr (see cm_log.h).
#include "cm_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_comp = "reflex";
static atomic_int log_level = CM_LOG_INFO;
static cm_log_sink_fn log_sink;
static void *log_sink_arg;

static const char *const level_names[] = {
	[CM_LOG_ERR] = "err",
	[CM_LOG_WARN] = "warn",
	[CM_LOG_NOTICE] = "notice",
	[CM_LOG_INFO] = "info",
	[CM_LOG_DEBUG] = "debug",
};

void
cm_log_set_component(const char *comp)
{
	log_comp = comp;
}

void
cm_log_set_level(int level)
{
	if (level < CM_LOG_ERR)
		level = CM_LOG_ERR;
	if (level > CM_LOG_DEBUG)
		level = CM_LOG_DEBUG;
	atomic_store(&log_level, level);
}

int
cm_log_get_level(void)
{
	return atomic_load(&log_level);
}

int
cm_log_level_parse(const char *s, int *ret)
{
	for (int i = CM_LOG_ERR; i <= CM_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret = i;
			return 0;
		}
	}
	if (strcmp(s, "error") == 0 || strcmp(s, "warning") == 0) {
		*ret = s[0] == 'e' ? CM_LOG_ERR : CM_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *
cm_log_level_name(int level)
{
	if (level < CM_LOG_ERR || level > CM_LOG_DEBUG)
		return "?";
	return level_names[level];
}

void
cm_log_set_sink(cm_log_sink_fn fn, void *arg)
{
	log_sink = fn;
	log_sink_arg = arg;
}

bool
cm_log_enabled(int level)
{
	return level <= atomic_load(&log_level);
}

static void
log_emit(int level, const char *event, const char *fields, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int rv;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	rv = snprintf(line + n, sizeof(line) - n,
	    ".%03ldZ level=%s comp=%s event=%s", ts.tv_nsec / 1000000,
	    level_names[level], log_comp, event);
	if (rv > 0)
		n += (size_t)rv;
	if (fields[0] != '\0' && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		rv = vsnprintf(line + n, sizeof(line) - n, fields, ap);
		if (rv > 0)
			n += (size_t)rv;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2; // truncated: keep the newline
	line[n] = '\0';

	if (log_sink != NULL) {
		log_sink(level, line, log_sink_arg);
		return;
	}
	line[n++] = '\n';
	// One write keeps concurrent lines whole; a short write to stderr is
	// not worth retrying in a logger.
	(void)!write(STDERR_FILENO, line, n);
}

void
cm_log(int level, const char *event, const char *fields, ...)
{
	va_list ap;

	if (!cm_log_enabled(level))
		return;
	va_start(ap, fields);
	log_emit(level, event, fields, ap);
	va_end(ap);
}

int
cm_log_ret(int rv, int level, const char *event, const char *fields, ...)
{
	va_list ap;

	if (!cm_log_enabled(level))
		return rv;
	va_start(ap, fields);
	log_emit(level, event, fields, ap);
	va_end(ap);
	return rv;
}

static bool
is_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("._:/@+-", c) != NULL;
}

char *
cm_q_buf(char *buf, size_t n, const char *s)
{
	size_t o = 0;
	bool plain = true;

	if (n < 8) {
		if (n > 0)
			buf[0] = '\0';
		return buf;
	}
	if (s == NULL) {
		snprintf(buf, n, "-");
		return buf;
	}
	for (const char *p = s; *p != '\0'; p++)
		if (!is_plain((unsigned char)*p))
			plain = false;
	if (plain && s[0] != '\0' && strlen(s) < n) {
		memcpy(buf, s, strlen(s) + 1);
		return buf;
	}
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		size_t k;

		if (*p == '"' || *p == '\\')
			k = (size_t)snprintf(esc, sizeof(esc), "\\%c", *p);
		else if (*p == '\n')
			k = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (*p < 0x20 || *p == 0x7f)
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
		else {
			esc[0] = (char)*p;
			k = 1;
		}
		if (o + k + 5 > n) { // room for ...", NUL
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, k);
		o += k;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}
