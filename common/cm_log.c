// SPDX-License-Identifier: MIT
// cm_log: key=value line logging to stderr (see cm_log.h).
#include "cm_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
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

// A line as it is built: `b` holds at most LINE_TEXT_MAX bytes, and what
// does not fit is dropped, so a long line keeps its first LINE_TEXT_MAX
// bytes (as the vsnprintf-based formatting before it did).
#define LINE_BUF 2048
#define LINE_TEXT_MAX (LINE_BUF - 2) // room for the newline and a NUL

struct line {
	char b[LINE_BUF];
	size_t n;
};

static void
line_put(struct line *l, const char *s, size_t k)
{
	size_t room = LINE_TEXT_MAX - l->n;

	if (k > room)
		k = room;
	memcpy(l->b + l->n, s, k);
	l->n += k;
}

static void
line_str(struct line *l, const char *s)
{
	line_put(l, s, strlen(s));
}

static void
line_num(struct line *l, unsigned long long v, bool neg)
{
	char d[24];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	if (neg)
		d[--i] = '-';
	line_put(l, d + i, sizeof(d) - i);
}

static void
line_signed(struct line *l, long long v)
{
	// Negated as unsigned, so LLONG_MIN prints too.
	line_num(l, v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v, v < 0);
}

// The timestamp, "2026-12-04T10:00:00.123Z". The part before the dot is
// kept per thread: formatted once a second rather than once a line.
static void
line_time(struct line *l)
{
	static _Thread_local time_t cached_sec;
	static _Thread_local char cached[64];
	static _Thread_local size_t cached_n; // 0: nothing cached yet
	struct timespec ts;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (cached_n == 0 || ts.tv_sec != cached_sec) {
		struct tm tm;

		gmtime_r(&ts.tv_sec, &tm);
		cached_n = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S",
		    &tm);
		cached_sec = ts.tv_sec;
	}
	line_put(l, cached, cached_n);
	ms = ts.tv_nsec / 1000000;
	line_put(l, (char[5]){ '.', (char)('0' + ms / 100),
	    (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z' }, 5);
}

// Formats the printf-style `f` with the conversions log lines use: %s,
// %d, %i and %u with no length or l, ll, z or j, and %%. Returns false
// at anything else (flags, widths, precisions, other conversions), for
// the caller to format all of `f` with vsnprintf instead.
static bool
line_fields(struct line *l, const char *f, va_list *ap)
{
	const char *pct, *s;

	while ((pct = strchr(f, '%')) != NULL) {
		enum { L_INT, L_LONG, L_LLONG, L_SIZE, L_MAX } len = L_INT;

		line_put(l, f, (size_t)(pct - f));
		f = pct + 1;
		if (f[0] == 'l' && f[1] == 'l') {
			len = L_LLONG;
			f += 2;
		} else if (*f == 'l' || *f == 'z' || *f == 'j') {
			len = *f == 'l' ? L_LONG : *f == 'z' ? L_SIZE : L_MAX;
			f++;
		}
		switch (*f) {
		case '%':
			if (len != L_INT)
				return false;
			line_put(l, "%", 1);
			break;
		case 's':
			if (len != L_INT)
				return false;
			s = va_arg(*ap, const char *);
			line_str(l, s != NULL ? s : "(null)"); // as glibc
			break;
		case 'd':
		case 'i':
			line_signed(l,
			    len == L_INT ? va_arg(*ap, int) :
			    len == L_LONG ? va_arg(*ap, long) :
			    len == L_LLONG ? va_arg(*ap, long long) :
			    len == L_SIZE ? (long long)va_arg(*ap, ssize_t) :
			    (long long)va_arg(*ap, intmax_t));
			break;
		case 'u':
			line_num(l,
			    len == L_INT ? va_arg(*ap, unsigned) :
			    len == L_LONG ? va_arg(*ap, unsigned long) :
			    len == L_LLONG ? va_arg(*ap, unsigned long long) :
			    len == L_SIZE ? va_arg(*ap, size_t) :
			    (unsigned long long)va_arg(*ap, uintmax_t), false);
			break;
		default:
			return false;
		}
		f++;
	}
	line_str(l, f);
	return true;
}

// The calling thread's held lines (cm_log_hold); whole lines, at most
// CM_LOG_HOLD_MAX bytes (a line is at most LINE_BUF).
static _Thread_local struct {
	int depth;
	size_t n;
	char b[CM_LOG_HOLD_MAX];
} hold;

static void
hold_flush(void)
{
	if (hold.n > 0)
		(void)!write(STDERR_FILENO, hold.b, hold.n);
	hold.n = 0;
}

void
cm_log_hold(void)
{
	hold.depth++;
}

void
cm_log_release(void)
{
	if (hold.depth > 0 && --hold.depth == 0)
		hold_flush();
}

static void
log_emit(int level, const char *event, const char *fields, va_list ap)
{
	struct line l;
	va_list fast;

	l.n = 0;
	line_time(&l);
	line_str(&l, " level=");
	line_str(&l, cm_log_level_name(level));
	line_str(&l, " comp=");
	line_str(&l, log_comp);
	line_str(&l, " event=");
	line_str(&l, event);
	if (fields[0] != '\0') {
		size_t start;
		bool done;

		line_put(&l, " ", 1);
		start = l.n;
		va_copy(fast, ap);
		done = line_fields(&l, fields, &fast);
		va_end(fast);
		if (!done) {
			int rv = vsnprintf(l.b + start, sizeof(l.b) - start,
			    fields, ap);

			l.n = rv > 0 ? start + (size_t)rv : start;
			if (l.n > LINE_TEXT_MAX)
				l.n = LINE_TEXT_MAX;
		}
	}
	l.b[l.n] = '\0';

	if (log_sink != NULL) {
		log_sink(level, l.b, log_sink_arg);
		return;
	}
	l.b[l.n++] = '\n';
	if (hold.depth > 0 && level > CM_LOG_WARN) {
		if (hold.n + l.n > sizeof(hold.b))
			hold_flush();
		memcpy(hold.b + hold.n, l.b, l.n);
		hold.n += l.n;
		return;
	}
	hold_flush();
	// One write keeps concurrent lines whole; a short write to stderr is
	// not worth retrying in a logger.
	(void)!write(STDERR_FILENO, l.b, l.n);
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
	switch (c) {
	case '.': case '_': case ':': case '/': case '@': case '+': case '-':
		return true;
	default:
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
	}
}

// Bytes a quoted value spells with a backslash.
static bool
needs_escape(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
}

// True if one of the 8 bytes at p needs an escape. Word-at-a-time: a
// byte below 0x20, or equal to '"', '\\' or 0x7f (each found as a zero
// byte of the word xor'ed with it) sets a high bit of the result; the
// tests are exact for "any byte", which is all that is asked.
static bool
word_needs_escape(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
	uint64_t x, q, b, d;

	memcpy(&x, p, sizeof(x));
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	d = x ^ (ones * 0x7f);
	return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
	    ((b - ones) & ~b) | ((d - ones) & ~d)) & high;
}

// Bytes from p up to the first that needs an escape, or to end (its NUL).
static size_t
clean_run(const unsigned char *p, const unsigned char *end)
{
	size_t run = 0, left = (size_t)(end - p);

	while (left - run >= 8 && !word_needs_escape(p + run))
		run += 8;
	while (run < left && !needs_escape(p[run]))
		run++;
	return run;
}

char *
cm_q_buf(char *buf, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end;
	size_t o = 0, len;

	if (n < 8) {
		if (n > 0)
			buf[0] = '\0';
		return buf;
	}
	if (s == NULL) {
		memcpy(buf, "-", 2);
		return buf;
	}
	for (len = 0; is_plain((unsigned char)s[len]); len++)
		;
	if (s[len] == '\0' && len > 0 && len < n) { // plain: as it is
		memcpy(buf, s, len + 1);
		return buf;
	}
	// Quoted. `fit`: the bytes that may still go in while leaving room
	// for `..."` and the NUL (5); a run or escape that does not fit ends
	// the value in "...". Runs without escapes are copied whole.
	end = p + len + strlen(s + len);
	buf[o++] = '"';
	while (*p != '\0') {
		size_t run, fit = n - 5 - o, k = 2;
		char esc[4] = { '\\', (char)*p };

		run = clean_run(p, end); // stops at the NUL too
		if (run > 0) { // copied as it is, as much as fits
			if (run > fit)
				run = fit;
			memcpy(buf + o, p, run);
			o += run;
			p += run;
			if (run == fit && *p != '\0')
				goto cut;
			continue;
		}
		if (*p == '\n') {
			esc[1] = 'n';
		} else if (*p < 0x20 || *p == 0x7f) {
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 0xf];
			k = 4;
		}
		if (k > fit)
			goto cut;
		memcpy(buf + o, esc, k);
		o += k;
		p++;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
cut:
	memcpy(buf + o, "...\"", 5);
	return buf;
}
