// SPDX-License-Identifier: MIT
// reflex-demo-svc: a tiny HTTP service with injectable faults, for demos
// and integration tests.
//
// One thread, one poll(2) loop, plain sockets, loopback only. Endpoints:
//
//   GET  /healthz            200 "ok"; 500 when "unhealthy" is set; never
//                            answered while "hang" is set
//   GET  /metrics            Prometheus text format 0.0.4
//   POST /fault/hang         /healthz stops answering
//   POST /fault/unhealthy    /healthz answers 500
//   POST /fault/crash        answers, then exit(1)
//   POST /fault/errors?rate=R  fraction R (0..1) of the simulated
//                            requests count as code="500"
//   POST /fault/clear        all faults off; parked /healthz calls answered
//
// The service simulates its own traffic: a timer adds 20 requests per
// second to demo_requests_total, a fraction `rate` of them with code 500.
// An error-rate fault is therefore visible only through the metrics, while
// /healthz keeps saying "ok". Faults live in memory: a restarted process
// starts clean, which is how reflex heals it. SIGTERM/SIGINT exit 0.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"

#define MAX_CONNS 64	     // open connections; the oldest is evicted
#define HEAD_MAX 8192	     // request line + headers
#define BODY_MAX 4096	     // request body (read and ignored)
#define OUT_MAX 8192	     // one response
#define IO_TIMEOUT_MS 10000  // whole request read / response write
#define TICK_MS 50	     // one simulated request per tick: 20/s
#define MAX_CATCHUP 200	     // simulated requests per loop at most
#define RATE_ONE 1000000u    // error rate in parts per million
#define NAME_MAX_LEN 63

enum conn_state {
	CONN_FREE = 0,
	CONN_READ,  // reading the request
	CONN_WRITE, // writing the response
	CONN_HUNG,  // /healthz under the hang fault: parked, no answer
};

struct conn {
	int fd;
	enum conn_state st;
	int64_t accepted_ms;
	int64_t deadline_ms; // 0 = none (hung)
	size_t in_len;
	size_t need;	     // head + body bytes to read, once known
	char in[HEAD_MAX + BODY_MAX + 1];
	size_t out_len;
	size_t out_off;
	char out[OUT_MAX];
	bool exit_after;     // crash fault: exit(1) once the answer is out
};

struct svc {
	char name[NAME_MAX_LEN + 1];
	int lfd;
	int sfd;
	struct conn *conns;
	// faults
	bool hang;
	bool unhealthy;
	uint32_t err_ppm;
	// simulated traffic
	uint32_t err_acc;
	uint64_t n200;
	uint64_t n500;
	int64_t t0_ms;
	int64_t ticks;
	double start_time;
};

/* ---------------------------------------------------------------- */
/* small helpers */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return false;
	}
	return true;
}

// Parses a rate in [0, 1] ("0.5", "1", "0") into parts per million.
static int
rate_parse(const char *s, size_t len, uint32_t *ret)
{
	char buf[32];
	char *end;
	double r;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	// plain decimal only: no sign, spaces, "inf", "nan" or hex
	if (buf[0] != '.' && (buf[0] < '0' || buf[0] > '9'))
		return -EINVAL;
	if (strspn(buf, "0123456789.eE+-") != len)
		return -EINVAL;
	errno = 0;
	r = strtod(buf, &end);
	if (errno != 0 || *end != '\0' || !isfinite(r) || r < 0.0 || r > 1.0)
		return -EINVAL;
	*ret = (uint32_t)lround(r * RATE_ONE);
	return 0;
}

// Finds `key` in a query string "a=1&b=2"; sets *val/*len to its value.
static bool
query_get(const char *q, const char *key, const char **val, size_t *len)
{
	size_t klen = strlen(key);

	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t plen = amp ? (size_t)(amp - q) : strlen(q);

		if (plen > klen && strncmp(q, key, klen) == 0 &&
		    q[klen] == '=') {
			*val = q + klen + 1;
			*len = plen - klen - 1;
			return true;
		}
		q = amp ? amp + 1 : NULL;
	}
	return false;
}

/* ---------------------------------------------------------------- */
/* simulated traffic and metrics */

// Adds the simulated requests that are due by `now`. Integer arithmetic
// keeps the 500 share exact: every RATE_ONE accumulated ppm is one error.
static void
traffic_tick(struct svc *s, int64_t now)
{
	int64_t due = (now - s->t0_ms) / TICK_MS;
	int n = 0;

	while (s->ticks < due && n < MAX_CATCHUP) {
		s->err_acc += s->err_ppm;
		if (s->err_acc >= RATE_ONE) {
			s->err_acc -= RATE_ONE;
			s->n500++;
		} else {
			s->n200++;
		}
		s->ticks++;
		n++;
	}
	if (s->ticks < due)
		s->ticks = due; // stalled for long: skip, do not burst
}

static int
metrics_render(const struct svc *s, char *buf, size_t size)
{
	int n = snprintf(buf, size,
	    "# HELP demo_requests_total Requests handled by the demo service "
	    "(its simulated traffic), by HTTP status code.\n"
	    "# TYPE demo_requests_total counter\n"
	    "demo_requests_total{code=\"200\"} %" PRIu64 "\n"
	    "demo_requests_total{code=\"500\"} %" PRIu64 "\n"
	    "# HELP demo_up Whether the demo service is running.\n"
	    "# TYPE demo_up gauge\n"
	    "demo_up 1\n"
	    "# HELP demo_start_time_seconds Unix time at which the process "
	    "started.\n"
	    "# TYPE demo_start_time_seconds gauge\n"
	    "demo_start_time_seconds %.3f\n"
	    "# HELP demo_fault_active Whether an injected fault is active.\n"
	    "# TYPE demo_fault_active gauge\n"
	    "demo_fault_active{fault=\"hang\"} %d\n"
	    "demo_fault_active{fault=\"unhealthy\"} %d\n"
	    "demo_fault_active{fault=\"errors\"} %d\n"
	    "# HELP demo_fault_error_ratio Configured share of simulated "
	    "requests answered with code 500.\n"
	    "# TYPE demo_fault_error_ratio gauge\n"
	    "demo_fault_error_ratio %.6f\n"
	    "# HELP demo_info Name of the demo service instance.\n"
	    "# TYPE demo_info gauge\n"
	    "demo_info{name=\"%s\"} 1\n",
	    s->n200, s->n500, s->start_time, s->hang ? 1 : 0,
	    s->unhealthy ? 1 : 0, s->err_ppm > 0 ? 1 : 0,
	    (double)s->err_ppm / RATE_ONE, s->name);

	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return n;
}

/* ---------------------------------------------------------------- */
/* connections */

static void
conn_close(struct conn *c)
{
	if (c->st == CONN_FREE)
		return;
	close(c->fd);
	c->fd = -1;
	c->st = CONN_FREE;
}

static const char *
status_text(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	default: return "Error";
	}
}

// Tries to send what is left of the response. Returns true when the
// connection is finished with (fully written or failed) and was closed.
static bool
conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off,
		    c->out_len - c->out_off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (w <= 0)
			break;
		c->out_off += (size_t)w;
	}
	if (c->exit_after) {
		cm_notice("demo.crash", "reason=%s", "fault");
		exit(1);
	}
	conn_close(c);
	return true;
}

static void
conn_reply(struct conn *c, int code, const char *ctype, const char *extra,
    const char *body, size_t blen)
{
	int n = snprintf(c->out, sizeof(c->out),
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
	    code, status_text(code), ctype, blen, extra ? extra : "");

	if (n < 0 || (size_t)n + blen > sizeof(c->out)) {
		conn_close(c);
		return;
	}
	memcpy(c->out + n, body, blen);
	c->out_len = (size_t)n + blen;
	c->out_off = 0;
	c->st = CONN_WRITE;
	c->deadline_ms = mono_ms() + IO_TIMEOUT_MS;
	conn_flush(c);
}

static void
conn_text(struct conn *c, int code, const char *text)
{
	conn_reply(c, code, "text/plain; charset=utf-8", NULL, text,
	    strlen(text));
}

/* ---------------------------------------------------------------- */
/* request handling */

static void
fault_clear(struct svc *s)
{
	s->hang = false;
	s->unhealthy = false;
	s->err_ppm = 0;
	s->err_acc = 0;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (s->conns[i].st == CONN_HUNG)
			conn_text(&s->conns[i], 200, "ok\n");
	}
}

static void
handle_fault(struct svc *s, struct conn *c, const char *what,
    const char *query)
{
	char msg[96];

	if (strcmp(what, "hang") == 0) {
		s->hang = true;
	} else if (strcmp(what, "unhealthy") == 0) {
		s->unhealthy = true;
	} else if (strcmp(what, "crash") == 0) {
		c->exit_after = true;
	} else if (strcmp(what, "errors") == 0) {
		const char *v;
		size_t vlen;
		uint32_t ppm;

		if (!query_get(query, "rate", &v, &vlen) ||
		    rate_parse(v, vlen, &ppm) < 0) {
			conn_text(c, 400, "rate must be a number in 0..1, "
			    "e.g. /fault/errors?rate=0.5\n");
			return;
		}
		s->err_ppm = ppm;
	} else if (strcmp(what, "clear") == 0) {
		fault_clear(s);
	} else {
		conn_text(c, 404, "unknown fault\n");
		return;
	}
	cm_notice("demo.fault", "name=%s fault=%s error_rate=%.6f", s->name,
	    what, (double)s->err_ppm / RATE_ONE);
	snprintf(msg, sizeof(msg), "fault %s: error_rate=%.6f\n", what,
	    (double)s->err_ppm / RATE_ONE);
	conn_text(c, 200, msg);
}

static void
handle_healthz(struct svc *s, struct conn *c)
{
	if (s->hang) {
		c->st = CONN_HUNG; // answered by /fault/clear, if ever
		c->deadline_ms = 0;
		return;
	}
	if (s->unhealthy)
		conn_text(c, 500, "unhealthy\n");
	else
		conn_text(c, 200, "ok\n");
}

static void
handle_metrics(struct svc *s, struct conn *c)
{
	char body[OUT_MAX - 512];
	int n = metrics_render(s, body, sizeof(body));

	if (n < 0) {
		conn_text(c, 500, "metrics too large\n");
		return;
	}
	conn_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
	    body, (size_t)n);
}

static void
dispatch(struct svc *s, struct conn *c, const char *method, char *target)
{
	char *query = strchr(target, '?');
	bool get = strcmp(method, "GET") == 0;
	bool post = strcmp(method, "POST") == 0;

	if (query)
		*query++ = '\0';
	cm_debug("demo.request", "method=%s path=%s", cm_q(method),
	    cm_q(target));
	if (strcmp(target, "/healthz") == 0 || strcmp(target, "/metrics") == 0 ||
	    strcmp(target, "/") == 0) {
		if (!get) {
			conn_reply(c, 405, "text/plain; charset=utf-8",
			    "Allow: GET\r\n", "use GET\n", 8);
			return;
		}
		if (target[1] == 'h')
			handle_healthz(s, c);
		else if (target[1] == 'm')
			handle_metrics(s, c);
		else
			conn_text(c, 200, "reflex-demo-svc: GET /healthz, "
			    "GET /metrics, POST /fault/{hang,unhealthy,crash,"
			    "errors?rate=R,clear}\n");
		return;
	}
	if (strncmp(target, "/fault/", 7) == 0) {
		if (!post) {
			conn_reply(c, 405, "text/plain; charset=utf-8",
			    "Allow: POST\r\n", "use POST\n", 9);
			return;
		}
		handle_fault(s, c, target + 7, query);
		return;
	}
	conn_text(c, 404, "not found\n");
}

// Parses the head once it is complete. Returns 1 when the request is
// complete and was dispatched or answered, 0 when more bytes are needed.
static int
request_parse(struct svc *s, struct conn *c)
{
	char *end = strstr(c->in, "\r\n\r\n");
	char *line, *sp1, *sp2, *h;
	size_t head_len;
	unsigned long long clen = 0;

	if (!end) {
		if (strlen(c->in) != c->in_len) {
			conn_text(c, 400, "NUL byte in request head\n");
			return 1;
		}
		if (c->in_len >= HEAD_MAX) {
			conn_text(c, 431, "request head too large\n");
			return 1;
		}
		return 0;
	}
	head_len = (size_t)(end - c->in) + 4;
	if (head_len > HEAD_MAX) {
		conn_text(c, 431, "request head too large\n");
		return 1;
	}
	if (c->need == 0) {
		// headers: only Content-Length and Transfer-Encoding matter
		for (h = strstr(c->in, "\r\n"); h && h < end;
		    h = strstr(h + 2, "\r\n")) {
			const char *v = h + 2;

			if (strncasecmp(v, "Content-Length:", 15) == 0) {
				char *e;

				v += 15;
				while (*v == ' ' || *v == '\t')
					v++;
				errno = 0;
				clen = strtoull(v, &e, 10);
				if (e == v || errno != 0 ||
				    (*e != '\r' && *e != ' ')) {
					conn_text(c, 400, "bad Content-Length\n");
					return 1;
				}
			} else if (strncasecmp(v, "Transfer-Encoding:", 18) ==
			    0) {
				conn_text(c, 501, "chunked bodies are not "
				    "supported\n");
				return 1;
			}
		}
		if (clen > BODY_MAX) {
			conn_text(c, 413, "body too large\n");
			return 1;
		}
		c->need = head_len + (size_t)clen;
	}
	if (c->in_len < c->need)
		return 0;

	// request line: METHOD SP TARGET SP HTTP/1.x
	line = c->in;
	*strstr(line, "\r\n") = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    sp1[1] != '/') {
		conn_text(c, 400, "bad request line\n");
		return 1;
	}
	*sp1 = '\0';
	*sp2 = '\0';
	dispatch(s, c, line, sp1 + 1);
	return 1;
}

static void
conn_readable(struct svc *s, struct conn *c)
{
	for (;;) {
		size_t room = sizeof(c->in) - 1 - c->in_len;
		ssize_t r;

		if (room == 0) {
			conn_text(c, 413, "request too large\n");
			return;
		}
		r = recv(c->fd, c->in + c->in_len, room, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->in_len += (size_t)r;
		c->in[c->in_len] = '\0';
		if (request_parse(s, c))
			return;
	}
}

// A hung client may close; anything it sends meanwhile is dropped.
static void
conn_hung_readable(struct conn *c)
{
	char junk[512];
	ssize_t r = recv(c->fd, junk, sizeof(junk), 0);

	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR))
		conn_close(c);
}

static struct conn *
conn_slot(struct svc *s)
{
	struct conn *oldest = NULL;

	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		if (c->st == CONN_FREE)
			return c;
		// prefer evicting parked /healthz calls, then the oldest
		if (!oldest || (c->st == CONN_HUNG && oldest->st != CONN_HUNG) ||
		    ((c->st == CONN_HUNG) == (oldest->st == CONN_HUNG) &&
		    c->accepted_ms < oldest->accepted_ms))
			oldest = c;
	}
	cm_warn("demo.evict", "name=%s reason=%s", s->name, "too many "
	    "connections");
	conn_close(oldest);
	return oldest;
}

static void
accept_all(struct svc *s)
{
	for (int i = 0; i < 16; i++) {
		int fd = accept4(s->lfd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				cm_warn("demo.accept", "error=%s",
				    strerror(errno));
			return;
		}
		c = conn_slot(s);
		memset(c, 0, offsetof(struct conn, in));
		c->fd = fd;
		c->st = CONN_READ;
		c->accepted_ms = mono_ms();
		c->deadline_ms = c->accepted_ms + IO_TIMEOUT_MS;
		c->in[0] = '\0';
	}
}

/* ---------------------------------------------------------------- */
/* setup and main loop */

// Parses "127.0.0.1", "127.0.0.1:8080", "::1" or "[::1]:8080". Only
// loopback addresses are accepted: this service is for local demos.
static int
listen_addr_parse(const char *arg, struct sockaddr_storage *ss,
    socklen_t *len, int *port)
{
	char host[64];
	const char *p = NULL;
	size_t hlen;

	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');

		if (!rb)
			return -EINVAL;
		hlen = (size_t)(rb - arg - 1);
		arg++;
		if (rb[1] == ':')
			p = rb + 2;
		else if (rb[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strrchr(arg, ':');

		if (colon && strchr(arg, ':') == colon)
			p = colon + 1; // exactly one ':' = IPv4:port
		hlen = p ? (size_t)(colon - arg) : strlen(arg);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, arg, hlen);
	host[hlen] = '\0';
	if (p) {
		char *e;
		long v = strtol(p, &e, 10);

		if (*p == '\0' || *e != '\0' || v < 0 || v > 65535)
			return -EINVAL;
		*port = (int)v;
	}
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			return -EADDRNOTAVAIL;
		s4->sin_family = AF_INET;
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return -EADDRNOTAVAIL;
		s6->sin6_family = AF_INET6;
		*len = sizeof(*s6);
		return 0;
	}
	return -EINVAL;
}

static int
listen_open(struct sockaddr_storage *ss, socklen_t len, int port,
    char *ret_addr, size_t addrlen)
{
	int one = 1;
	int fd;
	char host[INET6_ADDRSTRLEN];
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		s4->sin_port = htons((uint16_t)port);
	else
		s6->sin6_port = htons((uint16_t)port);
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, &len) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(ret_addr, addrlen, "%s:%u", host, ntohs(s4->sin_port));
	} else {
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(ret_addr, addrlen, "[%s]:%u", host,
		    ntohs(s6->sin6_port));
	}
	return fd;
}

static int
signals_open(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int
poll_timeout(const struct svc *s, int64_t now)
{
	int64_t next = s->t0_ms + (s->ticks + 1) * TICK_MS;

	for (int i = 0; i < MAX_CONNS; i++) {
		const struct conn *c = &s->conns[i];

		if (c->st != CONN_FREE && c->deadline_ms &&
		    c->deadline_ms < next)
			next = c->deadline_ms;
	}
	return next <= now ? 0 : (int)(next - now);
}

// Serves until SIGTERM/SIGINT. Returns the exit status.
static int
serve(struct svc *s)
{
	struct pollfd pfd[MAX_CONNS + 2];
	int map[MAX_CONNS + 2];

	for (;;) {
		int64_t now = mono_ms();
		int n = 0;
		int r;

		pfd[n] = (struct pollfd){ .fd = s->sfd, .events = POLLIN };
		map[n++] = -1;
		pfd[n] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		map[n++] = -1;
		for (int i = 0; i < MAX_CONNS; i++) {
			const struct conn *c = &s->conns[i];

			if (c->st == CONN_FREE)
				continue;
			pfd[n] = (struct pollfd){ .fd = c->fd,
				.events = c->st == CONN_WRITE ? POLLOUT :
				    POLLIN };
			map[n++] = i;
		}
		r = poll(pfd, (nfds_t)n, poll_timeout(s, now));
		if (r < 0 && errno != EINTR) {
			cm_err("demo.poll", "error=%s", strerror(errno));
			return 1;
		}
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
				cm_notice("demo.stop", "name=%s signal=%u",
				    s->name, si.ssi_signo);
				return 0;
			}
		}
		now = mono_ms();
		traffic_tick(s, now);
		for (int k = 2; r > 0 && k < n; k++) {
			struct conn *c = &s->conns[map[k]];

			if (!pfd[k].revents || c->st == CONN_FREE ||
			    c->fd != pfd[k].fd)
				continue;
			if (c->st == CONN_WRITE)
				conn_flush(c);
			else if (c->st == CONN_HUNG)
				conn_hung_readable(c);
			else
				conn_readable(s, c);
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &s->conns[i];

			if (c->st != CONN_FREE && c->deadline_ms &&
			    c->deadline_ms <= now)
				conn_close(c);
		}
		if (r > 0 && (pfd[1].revents & POLLIN))
			accept_all(s);
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: reflex-demo-svc --port N [--name NAME] [--listen ADDR]\n"
	    "                       [--log-level LEVEL]\n"
	    "  --port N         TCP port (0 = any free port, logged)\n"
	    "  --name NAME      instance name in logs and demo_info "
	    "(default demo)\n"
	    "  --listen ADDR    loopback address, optionally with :PORT "
	    "(default 127.0.0.1)\n"
	    "  --log-level L    err|warn|notice|info|debug (default info)\n"
	    "  --errors R       start with the error fault set to R (0..1): a\n"
	    "                   broken build that a restart does not heal\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "errors", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct svc svc;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct timespec rt;
	char addr[INET6_ADDRSTRLEN + 8];
	const char *listen_arg = "127.0.0.1";
	int port = -1, lport = -1;
	int opt, rv, level;

	cm_log_set_component("demo-svc");
	snprintf(svc.name, sizeof(svc.name), "demo");
	while ((opt = getopt_long(argc, argv, "p:n:l:L:e:h", opts, NULL)) !=
	    -1) {
		char *e;
		long v;

		switch (opt) {
		case 'p':
			v = strtol(optarg, &e, 10);
			if (*optarg == '\0' || *e != '\0' || v < 0 ||
			    v > 65535) {
				fprintf(stderr, "reflex-demo-svc: bad --port "
				    "'%s'\n", optarg);
				return 2;
			}
			port = (int)v;
			break;
		case 'n':
			if (!name_valid(optarg)) {
				fprintf(stderr, "reflex-demo-svc: --name must "
				    "be 1..63 of [A-Za-z0-9._-]\n");
				return 2;
			}
			snprintf(svc.name, sizeof(svc.name), "%s", optarg);
			break;
		case 'l':
			listen_arg = optarg;
			break;
		case 'L':
			if (cm_log_level_parse(optarg, &level) < 0) {
				fprintf(stderr, "reflex-demo-svc: bad "
				    "--log-level '%s'\n", optarg);
				return 2;
			}
			cm_log_set_level(level);
			break;
		case 'e':
			if (rate_parse(optarg, strlen(optarg), &svc.err_ppm) < 0) {
				fprintf(stderr, "reflex-demo-svc: --errors must be "
				    "a number in 0..1\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	rv = listen_addr_parse(listen_arg, &ss, &sslen, &lport);
	if (rv < 0) {
		fprintf(stderr, "reflex-demo-svc: --listen '%s': %s\n",
		    listen_arg, rv == -EADDRNOTAVAIL ? "not a loopback "
		    "address" : "expected ADDR or ADDR:PORT");
		return 2;
	}
	if (port >= 0 && lport >= 0 && port != lport) {
		fprintf(stderr, "reflex-demo-svc: --port and --listen name "
		    "different ports\n");
		return 2;
	}
	if (port < 0)
		port = lport;
	if (port < 0) {
		fprintf(stderr, "reflex-demo-svc: --port is required\n");
		return 2;
	}

	svc.conns = calloc(MAX_CONNS, sizeof(*svc.conns));
	if (!svc.conns) {
		cm_err("demo.start", "error=%s", strerror(ENOMEM));
		return 1;
	}
	svc.sfd = signals_open();
	if (svc.sfd < 0) {
		cm_err("demo.start", "what=signalfd error=%s",
		    strerror(-svc.sfd));
		return 1;
	}
	svc.lfd = listen_open(&ss, sslen, port, addr, sizeof(addr));
	if (svc.lfd < 0) {
		cm_err("demo.start", "what=listen port=%d error=%s", port,
		    cm_q(strerror(-svc.lfd)));
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &rt);
	svc.start_time = (double)rt.tv_sec + rt.tv_nsec / 1e9;
	svc.t0_ms = mono_ms();
	cm_notice("demo.listen", "name=%s addr=%s pid=%d", svc.name, addr,
	    (int)getpid());
	rv = serve(&svc);
	for (int i = 0; i < MAX_CONNS; i++)
		conn_close(&svc.conns[i]);
	free(svc.conns);
	close(svc.lfd);
	close(svc.sfd);
	return rv;
}
