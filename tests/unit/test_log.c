// SPDX-License-Identifier: MIT
// Unit tests for cm_log: the line format (timestamp, level, comp, event,
// fields) byte for byte against what snprintf makes of the same format,
// the vsnprintf fallback for conversions the logger does not format
// itself, truncation of long lines, levels, the stderr path, and cm_q's
// quoting against the reference quoting rules.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"
#include "tt.h"

#define LINE_MAX_TEXT 2046 // longest line, without its newline

static char got[4096];
static int got_level;
static int got_count;

static void
capture(int level, const char *line, void *arg)
{
	(void)arg;
	snprintf(got, sizeof(got), "%s", line);
	got_level = level;
	got_count++;
}

// Checks that the captured line is "<time> level=LVL comp=COMP event=EV"
// followed by `rest`, and that <time> is a UTC timestamp with
// milliseconds between `t0` and `t1` (whole seconds).
static void
check_line(const char *lvl, const char *ev, const char *rest, time_t t0,
    time_t t1)
{
	char want[8192], stamp[32];
	struct tm tm = { 0 };
	time_t t;
	int ms = -1, used = 0;

	CHECK(strlen(got) > 24);
	memcpy(stamp, got, 19);
	stamp[19] = '\0';
	CHECK(strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm) != NULL);
	t = timegm(&tm);
	CHECK(t >= t0 && t <= t1);
	CHECK(sscanf(got + 19, ".%3dZ%n", &ms, &used) == 1 && used == 5);
	CHECK(ms >= 0 && ms <= 999);
	snprintf(want, sizeof(want), " level=%s comp=test event=%s%s", lvl, ev,
	    rest);
	want[LINE_MAX_TEXT - 24] = '\0'; // the timestamp takes 24 bytes
	CHECK_STR(got + 24, want);
}

// Logs `fmt` and its arguments at info and checks that the fields are
// exactly what snprintf makes of them.
#define SAME(...)                                                           \
	do {                                                                \
		char sm_want[8192] = " ";                                   \
		time_t sm_t0 = time(NULL);                                  \
		snprintf(sm_want + 1, sizeof(sm_want) - 1, __VA_ARGS__);    \
		got[0] = '\0';                                              \
		cm_log(CM_LOG_INFO, "test.same", __VA_ARGS__);              \
		check_line("info", "test.same", sm_want, sm_t0, time(NULL));\
	} while (0)

// An empty field list, as a variable: gcc rejects a literal "" format.
static const char *no_fields = "";

static void
setup(void)
{
	cm_log_set_component("test");
	cm_log_set_level(CM_LOG_INFO);
	cm_log_set_sink(capture, NULL);
	got_count = 0;
}

static void
test_header_and_no_fields(void)
{
	time_t t0;

	setup();
	t0 = time(NULL);
	cm_log(CM_LOG_INFO, "test.plain", no_fields);
	check_line("info", "test.plain", "", t0, time(NULL));
	CHECK_INT(got_level, CM_LOG_INFO);
	CHECK_INT(got_count, 1);
	t0 = time(NULL);
	cm_log(CM_LOG_WARN, "test.warn", "a=%d", 1);
	check_line("warn", "test.warn", " a=1", t0, time(NULL));
	t0 = time(NULL);
	cm_log(CM_LOG_ERR, "test.err", "no conversions");
	check_line("err", "test.err", " no conversions", t0, time(NULL));
}

// The seconds part of the timestamp is kept between lines: a line in the
// next second carries that second, not the one cached.
static void
test_timestamp_moves_on(void)
{
	time_t t0, t1;

	setup();
	t0 = time(NULL);
	cm_log(CM_LOG_INFO, "test.tick", "n=%d", 1);
	check_line("info", "test.tick", " n=1", t0, time(NULL));
	while ((t1 = time(NULL)) == t0)
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	cm_log(CM_LOG_INFO, "test.tick", "n=%d", 2);
	check_line("info", "test.tick", " n=2", t1, time(NULL));
}

static void
test_fields_match_snprintf(void)
{
	const char *volatile null_s = NULL;
	ssize_t neg = -7;

	setup();
	SAME("alert_id=%" PRId64 " result=%s detail=%s", INT64_C(42),
	    "no-agent", "\"quoted value\"");
	SAME("a=%d b=%i c=%u", -1, INT_MIN, UINT_MAX);
	SAME("a=%d b=%d", INT_MAX, 0);
	SAME("l=%ld ul=%lu", LONG_MIN, ULONG_MAX);
	SAME("ll=%lld ull=%llu", LLONG_MIN, ULLONG_MAX);
	SAME("ll=%lld ll=%lld", LLONG_MAX, -1LL);
	SAME("z=%zu zd=%zd", (size_t)SIZE_MAX, neg);
	SAME("j=%jd ju=%ju", INTMAX_MIN, UINTMAX_MAX);
	SAME("i64=%" PRId64 " u64=%" PRIu64, INT64_MIN, UINT64_MAX);
	SAME("pct=100%% s=%s%%", "x");
	SAME("s=%s empty=%s.", "with space", "");
	SAME("null=%s", null_s);
	SAME("%s%s%d", "a", "b", 3);
	SAME("trailing=%s literal tail", "v");
	SAME("%d", 0);
}

// Conversions the logger leaves to vsnprintf, also after a field it
// formatted itself (the arguments are read again from the start).
static void
test_fallback_conversions(void)
{
	setup();
	SAME("hex=%04x", 0xbeef);
	SAME("a=%s b=%d c=%04x d=%s", "first", 12, 0xab, "last");
	SAME("w=%5d|%-5s|", 42, "ab");
	SAME("p=%.3s", "abcdef");
	SAME("c=%c x=%x X=%X o=%o", 'q', 255u, 255u, 8u);
	SAME("f=%.2f", 3.14159);
	SAME("star=%*d", 6, 7);
	SAME("hh=%hhd h=%hd", 300, 70000);
	SAME("+%+d sp=% d", 5, 5);
	SAME("ld=%ld then=%#x", 9L, 16u);
}

static void
test_truncates_long_lines(void)
{
	char big[5000];
	time_t t0;

	setup();
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	// Through the logger's own formatting and through vsnprintf.
	SAME("k=%s", big);
	SAME("k=%s tail=%04x", big, 1);
	// Every length around the limit.
	for (size_t n = LINE_MAX_TEXT - 60; n < LINE_MAX_TEXT - 10; n++) {
		big[n] = '\0';
		SAME("k=%s n=%zu", big, n);
		SAME("k=%s n=%zx", big, n);
		big[n] = 'v';
	}
	// A number cut in the middle.
	big[LINE_MAX_TEXT - 24 - 40] = '\0';
	SAME("k=%s n=%lld", big, LLONG_MIN);
	big[LINE_MAX_TEXT - 24 - 40] = 'v';
	// An event longer than a line: the fields are dropped.
	big[3000] = '\0';
	t0 = time(NULL);
	cm_log(CM_LOG_INFO, big, "a=%d", 1);
	check_line("info", big, " a=1", t0, time(NULL));
	CHECK_INT(strlen(got), LINE_MAX_TEXT);
}

static void
test_levels(void)
{
	int lv = -1;

	setup();
	cm_log_set_level(CM_LOG_WARN);
	CHECK(!cm_log_enabled(CM_LOG_INFO));
	CHECK(cm_log_enabled(CM_LOG_WARN));
	cm_info("test.hidden", "a=%d", 1);
	cm_debug("test.hidden", "a=%d", 1);
	cm_log(CM_LOG_NOTICE, "test.hidden", "a=%d", 1);
	CHECK_INT(got_count, 0);
	cm_warn("test.shown", "a=%d", 2);
	CHECK_INT(got_count, 1);
	CHECK_INT(got_level, CM_LOG_WARN);
	CHECK_HAS(got, " level=warn comp=test event=test.shown a=2");
	CHECK_INT(cm_log_ret(-EINVAL, CM_LOG_ERR, "test.ret", "k=%s", "v"),
	    -EINVAL);
	CHECK_HAS(got, " level=err comp=test event=test.ret k=v");
	CHECK_INT(cm_log_ret(7, CM_LOG_INFO, "test.ret", "k=%s", "v"), 7);
	CHECK_INT(got_count, 2);
	cm_log_set_level(CM_LOG_DEBUG);
	cm_debug("test.debug", no_fields);
	CHECK_HAS(got, " level=debug comp=test event=test.debug");
	cm_notice("test.notice", "x=%s", "y");
	CHECK_HAS(got, " level=notice comp=test event=test.notice x=y");
	cm_log_set_level(99);
	CHECK_INT(cm_log_get_level(), CM_LOG_DEBUG);
	cm_log_set_level(-5);
	CHECK_INT(cm_log_get_level(), CM_LOG_ERR);
	CHECK_INT(cm_log_level_parse("notice", &lv), 0);
	CHECK_INT(lv, CM_LOG_NOTICE);
	CHECK_INT(cm_log_level_parse("warning", &lv), 0);
	CHECK_INT(lv, CM_LOG_WARN);
	CHECK_INT(cm_log_level_parse("loud", &lv), -EINVAL);
	CHECK_STR(cm_log_level_name(CM_LOG_INFO), "info");
	CHECK_STR(cm_log_level_name(42), "?");
	cm_log_set_level(CM_LOG_INFO);
}

// Without a sink: one line on stderr, ending in a newline.
static void
test_stderr_line(void)
{
	char path[] = "/tmp/test_log.XXXXXX", buf[4096];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	CHECK(fd >= 0 && saved >= 0);
	if (fd < 0 || saved < 0)
		return;
	cm_log_set_component("test");
	cm_log_set_sink(NULL, NULL);
	dup2(fd, STDERR_FILENO);
	cm_info("test.stderr", "a=%s b=%d", "x y", 5);
	cm_info("test.stderr", "second=%s", "line");
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	CHECK(n > 0);
	if (n <= 0)
		return;
	buf[n] = '\0';
	CHECK(buf[23] == 'Z');
	CHECK_HAS(buf, "Z level=info comp=test event=test.stderr a=x y b=5\n");
	CHECK_HAS(buf, "Z level=info comp=test event=test.stderr second=line\n");
	CHECK(buf[n - 1] == '\n');
}

// Held lines (cm_log_hold): written a few KB at a time, each write whole
// lines of at most CM_LOG_HOLD_MAX bytes, in order; a warning goes at
// once, after what was held; nested holds write at the last release.
// stderr is a SOCK_SEQPACKET socket here, so each write is one message.
static int
next_msg(int fd, char *buf, size_t n)
{
	ssize_t k = recv(fd, buf, n - 1, MSG_DONTWAIT);

	if (k < 0)
		return -1;
	buf[k] = '\0';
	return (int)k;
}

static void
test_held_lines(void)
{
	static char buf[2 * CM_LOG_HOLD_MAX];
	int sv[2], saved = dup(STDERR_FILENO), k, msgs = 0, seq = 0;
	char want[64];
	bool whole = true, ordered = true, warn_seen = false;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0 && saved >= 0);
	cm_log_set_component("test");
	cm_log_set_sink(NULL, NULL);
	dup2(sv[1], STDERR_FILENO);
	cm_log_hold();
	cm_log_hold();
	cm_info("test.held", "seq=%d pad=%s", 0, "x");
	cm_log_release(); // still held once
	CHECK_INT(next_msg(sv[0], buf, sizeof(buf)), -1);
	for (int i = 1; i < 100; i++)
		cm_info("test.held", "seq=%d pad=%s", i,
		    "........................................................."
		    ".............................");
	cm_warn("test.warned", "after=%d", 99);
	for (int i = 100; i < 110; i++)
		cm_info("test.held", "seq=%d pad=%s", i, "y");
	CHECK(next_msg(sv[0], buf, sizeof(buf)) > 0); // written already
	msgs++;
	cm_log_release();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(sv[1]);
	// Read every message (the first one again from the start).
	seq = 0;
	do {
		char *line = buf, *nl;

		if (buf[0] == '\0')
			continue;
		whole = whole && strlen(buf) <= CM_LOG_HOLD_MAX &&
		    buf[strlen(buf) - 1] == '\n';
		for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
			*nl = '\0';
			if (strstr(line, "event=test.warned") != NULL) {
				warn_seen = true;
				ordered = ordered && seq == 100;
				continue;
			}
			snprintf(want, sizeof(want), " seq=%d ", seq);
			ordered = ordered && strstr(line, want) != NULL;
			seq++;
		}
	} while ((k = next_msg(sv[0], buf, sizeof(buf))) > 0 && ++msgs);
	close(sv[0]);
	printf("# %d writes for 111 lines\n", msgs);
	CHECK(whole);
	CHECK(ordered);
	CHECK(warn_seen);
	CHECK_INT(seq, 110);
	CHECK(msgs >= 4 && msgs <= 8); // ~12 KB: a few writes, not 111
}

// The quoting rules cm_q follows, spelled out plainly (the logger's own
// code is faster; both must agree byte for byte).
static char *
ref_q(char *buf, size_t n, const char *s)
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
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._:/@+-", *p) == NULL)
			plain = false;
	if (plain && s[0] != '\0' && strlen(s) < n) {
		snprintf(buf, n, "%s", s);
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
		else
			k = (size_t)snprintf(esc, sizeof(esc), "%c", *p);
		if (o + k + 5 > n) {
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

static void
check_q(const char *s)
{
	for (size_t n = 0; n <= 40; n++) {
		char a[64], b[64];

		memset(a, 'A', sizeof(a));
		memset(b, 'A', sizeof(b));
		cm_q_buf(a, n, s);
		ref_q(b, n, s);
		if (n > 0)
			CHECK_STR(a, b);
		CHECK(memcmp(a + n, b + n, sizeof(a) - n) == 0); // no overrun
	}
	CHECK_STR(cm_q(s), ref_q((char[CM_Q_MAX]){ 0 }, CM_Q_MAX, s));
}

static void
test_q_examples(void)
{
	CHECK_STR(cm_q("plain-v1.2_x:y/z@a+b"), "plain-v1.2_x:y/z@a+b");
	CHECK_STR(cm_q("with space"), "\"with space\"");
	CHECK_STR(cm_q("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
	CHECK_STR(cm_q("a\nb\tc\x7f\x01"), "\"a\\nb\\x09c\\x7f\\x01\"");
	CHECK_STR(cm_q(""), "\"\"");
	CHECK_STR(cm_q(NULL), "-");
	CHECK_STR(cm_q("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
	CHECK_STR(cm_q_buf((char[12]){ 0 }, 12, "0123456789abc"),
	    "\"012345...\"");
	CHECK_STR(cm_q_buf((char[12]){ 0 }, 12, "0123456789a"), "0123456789a");
}

static void
test_q_matches_reference(void)
{
	static const char *const fixed[] = {
		"", "x", "plain", "two words", "\"", "\\", "\n", "\x1f", "\x7f",
		"\x80\xff", "no registered agent runs service api instance (all)",
		"tab\there", "ends with quote\"", "0123456789", "01234567890123",
		"\"\"\"\"\"\"\"\"\"\"\"\"", "\n\n\n\n\n\n\n\n\n\n\n\n\n",
		"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b",
	};
	char s[300];
	unsigned seed = 12345;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_q(fixed[i]);
	// Random strings of every byte value and lengths around the limits.
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % 200);

		for (size_t j = 0; j < len; j++) {
			int r = rand_r(&seed) % 4;

			s[j] = r == 0 ? (char)(1 + rand_r(&seed) % 255) :
			    r == 1 ? "\"\\\n\x7f"[rand_r(&seed) % 4] :
			    (char)('a' + rand_r(&seed) % 26);
		}
		s[len] = '\0';
		check_q(s);
	}
	// Long clean runs with an escape now and then, at every place in a
	// word: cm_q looks at 8 bytes at a time there.
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % 200);

		for (size_t j = 0; j < len; j++)
			s[j] = rand_r(&seed) % 23 == 0 ?
			    "\"\\\n\x7f\x1f\x01"[rand_r(&seed) % 6] :
			    rand_r(&seed) % 9 == 0 ? (char)(0x80 +
			    rand_r(&seed) % 128) : rand_r(&seed) % 7 == 0 ?
			    ' ' : (char)('a' + rand_r(&seed) % 26);
		s[len] = '\0';
		check_q(s);
	}
}

static const struct tt_case cases[] = {
	{ "header and no fields", test_header_and_no_fields },
	{ "timestamp moves on", test_timestamp_moves_on },
	{ "fields match snprintf", test_fields_match_snprintf },
	{ "fallback conversions", test_fallback_conversions },
	{ "truncates long lines", test_truncates_long_lines },
	{ "levels", test_levels },
	{ "stderr line", test_stderr_line },
	{ "held lines", test_held_lines },
	{ "q examples", test_q_examples },
	{ "q matches reference", test_q_matches_reference },
	{ NULL, NULL },
};

TT_MAIN(cases)
