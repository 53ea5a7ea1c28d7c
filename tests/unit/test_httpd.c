// SPDX-License-Identifier: MIT
// coord_httpd's threading contract: replies posted later from another
// thread, pipelined requests answered in order, a late reply for a
// client that reset its connection dropped, and stop waiting for the
// replies still owed. Runs a server on 127.0.0.1 (port chosen by the OS).
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "coord_httpd.h"
#include "tt.h"

static const struct coord_httpd_limits lim = {
	.header_timeout_ms = 5000, .body_timeout_ms = 5000,
	.idle_timeout_ms = 5000, .max_connections = 16,
	.max_header_bytes = 4096, .max_body = 4096,
};

// The one reply owed by the /async route, posted by its own thread.
struct owed {
	struct coord_httpd_req *rq;
	int delay_ms;
	pthread_t thread;
	atomic_bool called, replied;
};

static struct owed owed;

static void *
late_reply(void *arg)
{
	struct owed *o = arg;

	usleep((useconds_t)o->delay_ms * 1000);
	// Set before posting: stop may return as soon as the reply is queued,
	// before coord_httpd_reply itself returns.
	atomic_store(&o->replied, true);
	coord_httpd_reply(o->rq, 200, "text/plain", "late", 4, NULL);
	return NULL;
}

static void
async_cb(struct coord_httpd_req *rq, void *arg)
{
	struct owed *o = arg;

	o->rq = rq;
	atomic_store(&o->replied, false);
	if (pthread_create(&o->thread, NULL, late_reply, o) != 0)
		coord_httpd_reply(rq, 500, "text/plain", "thread", 6, NULL);
	atomic_store(&o->called, true);
}

// Answers with the query string, at once.
static void
echo_cb(struct coord_httpd_req *rq, void *arg)
{
	const char *q = coord_httpd_query(rq);

	(void)arg;
	coord_httpd_reply(rq, 200, "text/plain", q, strlen(q), NULL);
}

// A status without a name of its own, with an extra header line.
static void
odd_cb(struct coord_httpd_req *rq, void *arg)
{
	(void)arg;
	coord_httpd_reply(rq, 299, "application/json", "{}", 2,
	    "WWW-Authenticate: Bearer realm=\"t\"");
}

// Answers with the value of the request's X-Test header, "-" without.
static void
hdr_cb(struct coord_httpd_req *rq, void *arg)
{
	const char *v = coord_httpd_header(rq, "X-Test");

	(void)arg;
	if (v == NULL)
		v = "-";
	coord_httpd_reply(rq, 200, "text/plain", v, strlen(v), NULL);
}

// Answers with the request's body.
static void
body_cb(struct coord_httpd_req *rq, void *arg)
{
	size_t n;
	const void *b = coord_httpd_body(rq, &n);

	(void)arg;
	coord_httpd_reply(rq, 200, "text/plain", b, n, NULL);
}

// Replies posted from threads of their own, at once: counted when
// coord_httpd_reply has returned.
static atomic_int thread_replies;

static void *
thread_reply(void *arg)
{
	coord_httpd_reply(arg, 200, "text/plain", "t", 1, NULL);
	atomic_fetch_add(&thread_replies, 1);
	return NULL;
}

static void
thread_cb(struct coord_httpd_req *rq, void *arg)
{
	pthread_t t;

	(void)arg;
	if (pthread_create(&t, NULL, thread_reply, rq) != 0) {
		coord_httpd_reply(rq, 500, "text/plain", "thread", 6, NULL);
		atomic_fetch_add(&thread_replies, 1);
		return;
	}
	pthread_detach(t);
}

static const struct coord_httpd_route routes[] = {
	{ "/async", "GET", async_cb },
	{ "/echo", "GET", echo_cb },
	{ "/odd", "GET", odd_cb },
	{ "/hdr", "GET", hdr_cb },
	{ "/body", "POST", body_cb },
	{ "/thread", "GET", thread_cb },
};

static struct coord_httpd *
start(int delay_ms)
{
	struct coord_httpd *s = NULL;
	char err[256];

	memset(&owed, 0, sizeof(owed));
	owed.delay_ms = delay_ms;
	if (coord_httpd_start(&s, "127.0.0.1:0", &lim, NULL, routes,
	    sizeof(routes) / sizeof(routes[0]), &owed,
	    err, sizeof(err)) != 0) {
		printf("# start: %s\n", err);
		return NULL;
	}
	return s;
}

static int
dial(struct coord_httpd *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)coord_httpd_port(s)),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
say(int fd, const char *req)
{
	size_t n = strlen(req);

	CHECK(write(fd, req, n) == (ssize_t)n);
}

// Reads replies into buf until it holds `n` complete ones; returns the
// bytes read. Bodies are found after each "\r\n\r\n".
static size_t
hear(int fd, char *buf, size_t cap, int n)
{
	size_t len = 0;

	for (;;) {
		int got = 0;
		const char *p = buf;

		buf[len] = '\0';
		while (got < n) {
			const char *cl = strstr(p, "Content-Length: ");
			const char *end = strstr(p, "\r\n\r\n");

			if (cl == NULL || end == NULL ||
			    end + 4 + atoi(cl + 16) > buf + len)
				break;
			p = end + 4 + atoi(cl + 16);
			got++;
		}
		if (got == n || len + 1 >= cap)
			return len;
		ssize_t r = read(fd, buf + len, cap - 1 - len);

		if (r <= 0)
			return len;
		len += (size_t)r;
	}
}

static void
test_async_then_keepalive(void)
{
	struct coord_httpd *s = start(50);
	char buf[2048];
	int fd;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	fd = dial(s);
	say(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	hear(fd, buf, sizeof(buf), 1);
	CHECK_HAS(buf, "HTTP/1.1 200 OK");
	CHECK_HAS(buf, "\r\n\r\nlate");
	pthread_join(owed.thread, NULL);
	say(fd, "GET /echo?again HTTP/1.1\r\nHost: x\r\n\r\n");
	hear(fd, buf, sizeof(buf), 1);
	CHECK_HAS(buf, "\r\n\r\nagain");
	close(fd);
	coord_httpd_stop(s);
}

static void
test_pipelined_in_order(void)
{
	struct coord_httpd *s = start(50);
	char buf[4096];
	const char *a, *l, *b;
	int fd;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	fd = dial(s);
	say(fd, "GET /echo?first HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /echo?third HTTP/1.1\r\nHost: x\r\n\r\n");
	hear(fd, buf, sizeof(buf), 3);
	a = strstr(buf, "first");
	l = strstr(buf, "late");
	b = strstr(buf, "third");
	CHECK(a != NULL && l != NULL && b != NULL && a < l && l < b);
	pthread_join(owed.thread, NULL);
	close(fd);
	coord_httpd_stop(s);
}

static void
test_reset_client_reply_dropped(void)
{
	struct coord_httpd *s = start(200);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[2048];
	int fd;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	fd = dial(s);
	say(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	while (!atomic_load(&owed.called))
		usleep(1000);
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd); // a reset while the reply is owed
	pthread_join(owed.thread, NULL);
	fd = dial(s);
	say(fd, "GET /echo?alive HTTP/1.1\r\nHost: x\r\n\r\n");
	hear(fd, buf, sizeof(buf), 1);
	CHECK_HAS(buf, "\r\n\r\nalive");
	close(fd);
	coord_httpd_stop(s);
}

static void
test_stop_waits_for_owed_reply(void)
{
	struct coord_httpd *s = start(300);
	int fd;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	fd = dial(s);
	say(fd, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
	while (!atomic_load(&owed.called))
		usleep(1000);
	coord_httpd_stop(s); // must not return before the reply is posted
	CHECK(atomic_load(&owed.replied));
	pthread_join(owed.thread, NULL);
	close(fd);
}

// The header of a reply, byte for byte: status line, type, no-store,
// length, the Connection line when the client needs one, an extra line.
static void
test_reply_head_exact(void)
{
	static const struct {
		const char *req, *want;
	} cases[] = {
		{ "GET /echo?abc HTTP/1.1\r\nHost: x\r\n\r\n",
		  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		  "Cache-Control: no-store\r\nContent-Length: 3\r\n\r\nabc" },
		{ "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		  "Cache-Control: no-store\r\nContent-Length: 0\r\n"
		  "Connection: keep-alive\r\n\r\n" },
		{ "GET /odd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		  "HTTP/1.1 299 Status\r\nContent-Type: application/json\r\n"
		  "Cache-Control: no-store\r\nContent-Length: 2\r\n"
		  "Connection: close\r\n"
		  "WWW-Authenticate: Bearer realm=\"t\"\r\n\r\n{}" },
	};
	struct coord_httpd *s = start(0);
	char buf[2048];

	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = dial(s);

		say(fd, cases[i].req);
		hear(fd, buf, sizeof(buf), 1);
		CHECK_STR(buf, cases[i].want);
		close(fd);
	}
	coord_httpd_stop(s);
}

// Request heads, each on a connection of its own, and what the reply
// holds: header names matched without case and only in full (names as
// long as a known one but not it are ignored), every byte class of names
// and values, and the request target's.
static void
test_head_fields(void)
{
	static const struct {
		const char *req, *want;
	} cases[] = {
		{ "POST /body HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\n"
		  "\r\nabc", "Content-Length: 3\r\n\r\nabc" },
		{ "POST /body HTTP/1.1\r\nHost: x\r\nCONTENT-LENGTH: 3\r\n"
		  "Content-Lengtx: 9\r\n\r\nabc",
		  "Content-Length: 3\r\n\r\nabc" },
		{ "GET /echo?q HTTP/1.1\r\nHOST: x\r\n\r\n",
		  "200 OK\r\nContent-Type: text/plain\r\n" },
		{ "GET /echo?q HTTP/1.1\r\nHosu: x\r\n\r\n",
		  "HTTP/1.1 request without a Host header" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: "
		  "chunked\r\n\r\n", "HTTP/1.1 411 Length Required" },
		{ "GET /echo?q HTTP/1.1\r\nHost: x\r\nTransfer-Encodinx: "
		  "chunked\r\n\r\n", "Content-Length: 1\r\n\r\nq" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nexpect: 200-ok\r\n\r\n",
		  "HTTP/1.1 417 Expectation Failed" },
		{ "GET /echo?q HTTP/1.1\r\nHost: x\r\nExpecu: 200-ok\r\n\r\n",
		  "Content-Length: 1\r\n\r\nq" },
		{ "GET /echo?q HTTP/1.1\r\nHost: x\r\nconnection: CLOSE\r\n"
		  "\r\n", "Connection: close\r\n\r\nq" },
		{ "GET /echo?q HTTP/1.1\r\nHost: x\r\nConnectioo: close\r\n"
		  "\r\n", "Content-Length: 1\r\n\r\nq" },
		{ "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Tesu: no\r\nx-TEST: yes"
		  "\r\n\r\n", "\r\n\r\nyes" },
		{ "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test-: no\r\nX-Tes: no"
		  "\r\n\r\n", "\r\n\r\n-" },
		{ "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: \t b\tc \t\r\n\r\n",
		  "Content-Length: 3\r\n\r\nb\tc" },
		{ "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Test: \xc3\xa9~\x7f\r\n"
		  "\r\n", "\r\n\r\n\xc3\xa9~\x7f" },
		{ "GET /hdr HTTP/1.1\r\nHost: x\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n"
		  "\r\n", "\r\n\r\n-" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n",
		  "control character in a header value" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: b\nc\r\n\r\n",
		  "control character in a header value" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: b\x1f\r\n\r\n",
		  "control character in a header value" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n",
		  "malformed header line" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\n\rX\r\n\r\n",
		  "malformed header line" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX(A: b\r\n\r\n",
		  "malformed header name" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX\x80: b\r\n\r\n",
		  "malformed header name" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-A\x7f: b\r\n\r\n",
		  "malformed header name" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
		  "malformed header name" },
		{ "GET /ec\x01ho HTTP/1.1\r\nHost: x\r\n\r\n",
		  "malformed request target" },
		{ "GET /echo?\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
		  "malformed request target" },
		{ "G(T /echo HTTP/1.1\r\nHost: x\r\n\r\n", "malformed method" },
		{ "GET /echo?\x80\xff HTTP/1.1\r\nHost: x\r\n\r\n",
		  "Content-Length: 2\r\n\r\n\x80\xff" },
	};
	struct coord_httpd *s = start(0);
	char buf[2048];

	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = dial(s);

		say(fd, cases[i].req);
		hear(fd, buf, sizeof(buf), 1);
		if (strstr(buf, cases[i].want) == NULL)
			printf("# case %zu: %s\n", i, buf);
		CHECK_HAS(buf, cases[i].want);
		close(fd);
	}
	coord_httpd_stop(s);
}

// A head that arrives in two parts, split at every byte: the end of the
// head (CRLF CRLF) is found wherever the parts meet, and a CR that does
// not start it is passed over.
static void
test_head_split_anywhere(void)
{
	static const char req[] = "GET /echo?split HTTP/1.1\r\nHost: x\r\n"
	    "X-A: \r\n\r\n";
	struct coord_httpd *s = start(0);
	char buf[2048];
	int one = 1;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (size_t k = 1; k < sizeof(req) - 1; k++) {
		int fd = dial(s);

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		CHECK(write(fd, req, k) == (ssize_t)k);
		usleep(2000);
		say(fd, req + k);
		hear(fd, buf, sizeof(buf), 1);
		CHECK_HAS(buf, "Content-Length: 5\r\n\r\nsplit");
		close(fd);
	}
	coord_httpd_stop(s);
}

// Replies posted at once from other threads, many connections at a time:
// each wakes the server thread when it waits and is picked up without a
// wake-up when it is busy; none is left behind.
static void
test_replies_from_threads(void)
{
	enum { CONNS = 8, ROUNDS = 40 };
	struct coord_httpd *s = start(0);
	char buf[2048];
	int fds[CONNS], answered = 0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	atomic_store(&thread_replies, 0);
	for (int i = 0; i < CONNS; i++)
		fds[i] = dial(s);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < CONNS; i++)
			say(fds[i], "GET /thread HTTP/1.1\r\nHost: x\r\n\r\n");
		for (int i = 0; i < CONNS; i++) {
			hear(fds[i], buf, sizeof(buf), 1);
			answered += strstr(buf, "\r\n\r\nt") != NULL;
		}
	}
	CHECK_INT(answered, CONNS * ROUNDS);
	while (atomic_load(&thread_replies) < CONNS * ROUNDS)
		usleep(1000);
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
	coord_httpd_stop(s);
}

// Header values of 2..42 bytes with a byte at every position: a control
// byte refused (in and out of the 16-byte blocks the check reads), a tab,
// DEL or a byte >= 0x80 kept as sent.
static void
test_header_value_bytes(void)
{
	static const struct {
		char c;
		bool ok;
	} kinds[] = {
		{ '\x01', false }, { '\x1f', false }, { '\n', false },
		{ '\t', true }, { '\x7f', true }, { '\xff', true },
	};
	struct coord_httpd *s = start(0);
	char req[256], val[64], want[128], buf[2048];
	int bad = 0, fd = -1;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
	for (size_t len = 0; len <= 40; len++)
	for (size_t at = 0; at < len; at++) {
		const char *got;

		val[0] = 'a';
		for (size_t i = 0; i < len; i++)
			val[1 + i] = i == at ? kinds[k].c : (char)('b' + i % 20);
		val[len + 1] = 'z';
		val[len + 2] = '\0';
		snprintf(req, sizeof(req), "GET /hdr HTTP/1.1\r\nHost: x\r\n"
		    "X-Test: %s\r\n\r\n", val);
		if (fd < 0)
			fd = dial(s);
		say(fd, req);
		hear(fd, buf, sizeof(buf), 1);
		if (kinds[k].ok) {
			snprintf(want, sizeof(want), "\r\n\r\n%s", val);
			got = strstr(buf, want);
			if (got == NULL || got[strlen(want)] != '\0')
				bad++;
		} else {
			if (strstr(buf, "control character in a header value") ==
			    NULL)
				bad++;
			close(fd); // refused: the server closes
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	CHECK_INT(bad, 0);
	coord_httpd_stop(s);
}

static void
test_start_errors_name_the_cause(void)
{
	struct coord_httpd *s = NULL;
	struct coord_httpd_tls tls = { .cert_file = "/nonexistent/c.pem",
		.key_file = "/nonexistent/k.pem" };
	char err[256] = "";

	CHECK(coord_httpd_start(&s, "no-port", &lim, NULL, routes, 2, NULL,
	    err, sizeof(err)) == -EINVAL);
	CHECK_HAS(err, "expected host:port");
	CHECK(coord_httpd_start(&s, "127.0.0.1:0", &lim, &tls, routes, 2, NULL,
	    err, sizeof(err)) == -EINVAL);
	CHECK_HAS(err, "/nonexistent/c.pem");
	CHECK(s == NULL);
}

static const struct tt_case cases[] = {
	{ "async reply, then keep-alive", test_async_then_keepalive },
	{ "pipelined requests answered in order", test_pipelined_in_order },
	{ "late reply to a reset client is dropped",
	  test_reset_client_reply_dropped },
	{ "stop waits for the reply owed", test_stop_waits_for_owed_reply },
	{ "start errors name the cause", test_start_errors_name_the_cause },
	{ "reply header bytes exactly", test_reply_head_exact },
	{ "head fields: names, values, target", test_head_fields },
	{ "head split at every byte", test_head_split_anywhere },
	{ "replies from other threads", test_replies_from_threads },
	{ "header value bytes at every position", test_header_value_bytes },
	{ NULL, NULL },
};

TT_MAIN(cases)
