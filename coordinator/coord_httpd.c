// SPDX-License-Identifier: MIT
// coord_httpd: bounded HTTP/1.1 server on one epoll thread, TLS by mbedtls.
//
// Threads: everything below runs on the server thread except
// coord_httpd_reply (any thread) and coord_httpd_stop. A reply is queued
// on `done` under `mu`; the server thread drains the queue after every
// event and before it waits (woken through an eventfd when a reply from
// elsewhere comes while it waits). Only the server thread
// reads or writes a request's `conn`, so a connection closed while its
// request is with a handler just clears that pointer and the late reply
// is dropped.
#include "coord_httpd.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cm_log.h"
#include "cm_time.h"
#include "cm_thread.h"

#define MAX_HDRS 64
#define MAX_METHOD 16
#define MAX_TARGET 8192
#define BUF_MIN 4096
#define SWEEP_MS 100
#define LINGER_MS 1000
#define LINGER_BYTES (4 * 1024 * 1024)
// A reply must move this many bytes per http.body_timeout (~2 KiB/s at
// the default 30 s), else the connection is closed.
#define WRITE_PROGRESS (64 * 1024)
// Replies up to this size are sent whatever http.max_reply_memory says
// (probes, webhook answers, errors).
#define REPLY_SMALL (64 * 1024)
// Descriptors kept for the rest of the process (journal, agent sockets,
// outgoing HTTP) when max_connections meets the open-file limit.
#define FD_RESERVE 64

enum state {
	ST_TLS,		// TLS handshake
	ST_HEAD,	// reading the request line and headers
	ST_BODY,	// reading a Content-Length body
	ST_WAIT,	// request with its handler: read nothing
	ST_WRITE,	// sending the reply
	ST_LINGER,	// reply sent before close: drain what the client sends
};

struct hdr {
	const char *name;
	const char *value;
	size_t name_len;		// strlen(name)
};

struct conn {
	struct coord_httpd *s;
	struct conn *prev, *next;	// all connections, oldest first
	int fd;
	mbedtls_ssl_context *ssl;	// NULL: plain
	enum state st;
	uint32_t events;		// epoll interest now
	int64_t deadline;		// 0: none (handler running)
	int64_t idle_since;		// for eviction: last reply or accept
	unsigned served;		// requests answered
	char *buf;			// input: cap bytes, len used
	size_t len, cap;
	size_t head_len, body_len;	// the request being read
	size_t lingered;
	char *out;			// output: out_len bytes, out_off sent
	size_t out_len, out_off;
	int64_t out_mark;		// reply bytes the client had not taken
					// when the deadline was last set
	size_t tls_retry;		// TLS: a write that wanted to be retried
	bool close_after;
	bool closed;			// freed at the end of the loop turn
	bool keepalive, head, expect;
	bool http11, host;
	size_t scanned;			// head bytes searched for its end
	char why[128];			// a refusal's formatted reason
	struct coord_httpd_req *rq;	// with a handler
	const char *method, *target;
	struct hdr hdrs[MAX_HDRS];
	size_t nhdrs;
};

struct coord_httpd_req {
	struct coord_httpd *s;
	struct conn *conn;		// server thread only; NULL: gone
	struct coord_httpd_req *next;	// in s->done
	const char *method, *path, *query;
	const struct hdr *hdrs;
	size_t nhdrs;
	const char *body;
	size_t body_len;
	bool head, keepalive, http10;
	char *out;
	size_t out_len;
};

struct tls {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt cert, ca;
	mbedtls_pk_context key;
};

struct coord_httpd {
	struct coord_httpd_limits lim;
	const struct coord_httpd_route *routes;
	size_t n_routes;
	void *arg;
	struct tls *tls;
	int lfd, efd, epfd;
	bool accept_paused;
	int64_t accept_resume;
	pthread_t thread;
	atomic_bool stop;
	struct conn *first, *last;
	struct conn *dead;		// closed, to free (linked by next)
	size_t n_conns;
	size_t outstanding;		// requests with handlers
	int64_t out_bytes;		// reply buffers held by connections
	int64_t next_sweep;
	pthread_mutex_t mu;
	struct coord_httpd_req *done, **done_tail; // replies to send
	// Under mu: the server thread found `done` empty and is about to
	// wait in epoll_wait (or waits there); the next reply from another
	// thread writes the eventfd and clears it. While the thread is busy
	// (false), replies are queued without a write: it drains the queue
	// after every event and before it waits.
	bool sleeping;
	atomic_uint_fast64_t refused[COORD_HTTPD_REF__COUNT];
};

static const char *const refusal_names[] = {
	[COORD_HTTPD_REF_HEADER_TIMEOUT] = "header_timeout",
	[COORD_HTTPD_REF_BODY_TIMEOUT] = "body_timeout",
	[COORD_HTTPD_REF_HEADER_SIZE] = "header_size",
	[COORD_HTTPD_REF_BODY_SIZE] = "body_size",
	[COORD_HTTPD_REF_MALFORMED] = "malformed",
	[COORD_HTTPD_REF_CONNECTIONS] = "connections",
	[COORD_HTTPD_REF_EVICTED] = "idle_evicted",
	[COORD_HTTPD_REF_TLS] = "tls",
	[COORD_HTTPD_REF_REPLY_MEMORY] = "reply_memory",
};

const char *
coord_httpd_refusal_name(enum coord_httpd_refusal r)
{
	return r < COORD_HTTPD_REF__COUNT ? refusal_names[r] : "unknown";
}

static void
refuse(struct coord_httpd *s, enum coord_httpd_refusal r)
{
	atomic_fetch_add(&s->refused[r], 1);
}

static const char *
status_text(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

// ---- connection I/O ------------------------------------------------------

static int
bio_send(void *ctx, const unsigned char *b, size_t n)
{
	ssize_t r = send(*(int *)ctx, b, n, MSG_NOSIGNAL);

	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return errno == EPIPE || errno == ECONNRESET ?
	    MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int
bio_recv(void *ctx, unsigned char *b, size_t n)
{
	ssize_t r = recv(*(int *)ctx, b, n, 0);

	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET :
	    MBEDTLS_ERR_NET_RECV_FAILED;
}

// Reads into b: >0 bytes, 0 at end of stream, -EAGAIN (try again on
// EPOLLIN), -EPIPE (closed or broken).
static ssize_t
conn_recv(struct conn *c, char *b, size_t n)
{
	ssize_t r;

	// Lingering drains the socket: TLS records are discarded unread.
	if (c->ssl == NULL || c->st == ST_LINGER) {
		r = recv(c->fd, b, n, 0);
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR ? -EAGAIN : -EPIPE;
	}
	r = mbedtls_ssl_read(c->ssl, (unsigned char *)b, n);
	if (r > 0)
		return r;
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	return r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? 0 : -EPIPE;
}

static ssize_t
conn_send(struct conn *c, const char *b, size_t n)
{
	ssize_t r;

	if (c->ssl == NULL) {
		r = send(c->fd, b, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR ? -EAGAIN : -EPIPE;
	}
	// mbedtls wants a write that returned WANT_* repeated with the same
	// length: its record is already built, and the retry only flushes it
	// but reports the length it was given as written. More output may
	// have been queued meanwhile (a reply behind a 100 Continue), so cap
	// the retry to the record's length.
	if (c->tls_retry > 0 && n > c->tls_retry)
		n = c->tls_retry;
	r = mbedtls_ssl_write(c->ssl, (const unsigned char *)b, n);
	if (r >= 0) {
		c->tls_retry = 0;
		return r;
	}
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
		c->tls_retry = n;
		return -EAGAIN;
	}
	return -EPIPE;
}

static void
conn_interest(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	// A closed connection's fd number may belong to a new one already.
	if (events == c->events || c->closed)
		return;
	if (epoll_ctl(c->s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = events;
}

static void
conn_close(struct conn *c)
{
	struct coord_httpd *s = c->s;

	if (c->closed)
		return;
	c->closed = true;
	if (c->rq != NULL)
		c->rq->conn = NULL; // the handler's late reply is dropped
	if (c->ssl != NULL) {
		if (c->st != ST_TLS && c->st != ST_LINGER)
			(void)mbedtls_ssl_close_notify(c->ssl); // best effort
		mbedtls_ssl_free(c->ssl);
		free(c->ssl);
	}
	(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->first = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		s->last = c->prev;
	s->n_conns--;
	// Callers up the stack may still look at c->closed: free later.
	c->next = s->dead;
	s->dead = c;
}

static void
free_dead(struct coord_httpd *s)
{
	while (s->dead != NULL) {
		struct conn *c = s->dead;

		s->dead = c->next;
		free(c->buf);
		s->out_bytes -= (int64_t)c->out_len;
		free(c->out);
		free(c);
	}
}

// Waits for the next request: deadline and eviction clock restart.
static void
conn_await_request(struct conn *c)
{
	int64_t now = cm_mono_ms();

	c->st = ST_HEAD;
	c->idle_since = now;
	c->deadline = now + (c->len > 0 || c->served == 0 ?
	    c->s->lim.header_timeout_ms : c->s->lim.idle_timeout_ms);
}

static void conn_process(struct conn *c);
static void conn_readable(struct conn *c);

// The reply is out: close, linger, or go on with the next request.
static void
conn_sent(struct conn *c)
{
	c->s->out_bytes -= (int64_t)c->out_len;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->st != ST_WRITE) { // a 100 Continue: back to the body
		conn_interest(c, EPOLLIN);
		return;
	}
	if (c->close_after) {
		// Closing with unread input would reset the connection and
		// could destroy the reply in flight: drain a little first
		// (over TLS too: a client still sending the body refused
		// with 413 would otherwise never read the 413).
		if (c->ssl != NULL)
			(void)mbedtls_ssl_close_notify(c->ssl); // best effort
		(void)shutdown(c->fd, SHUT_WR);
		c->st = ST_LINGER;
		c->len = 0;
		c->lingered = 0;
		c->deadline = cm_mono_ms() + LINGER_MS;
		conn_interest(c, EPOLLIN);
		return;
	}
	conn_await_request(c);
	conn_interest(c, EPOLLIN);
	conn_process(c);
	// TLS may hold decrypted input the socket will not signal again.
	if (!c->closed && c->ssl != NULL && c->st == ST_HEAD &&
	    mbedtls_ssl_get_bytes_avail(c->ssl) > 0)
		conn_readable(c);
}

static void
conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t r = conn_send(c, c->out + c->out_off,
		    c->out_len - c->out_off);

		if (r == -EAGAIN) {
			conn_interest(c, EPOLLOUT | (c->st == ST_BODY ? EPOLLIN :
			    0));
			return;
		}
		if (r < 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)r;
	}
	conn_sent(c);
}

// Queues `b` for sending (taking it) and sends what the socket takes.
static void
conn_write(struct conn *c, char *b, size_t n)
{
	if (c->out != NULL) { // only a 100 Continue can be pending
		char *m = realloc(c->out, c->out_len + n);

		if (m == NULL) {
			free(b);
			conn_close(c);
			return;
		}
		memcpy(m + c->out_len, b, n);
		free(b);
		c->out = m;
		c->out_len += n;
		c->s->out_bytes += (int64_t)n;
	} else {
		c->out = b;
		c->out_len = n;
		c->out_off = 0;
		c->s->out_bytes += (int64_t)n;
	}
	c->out_mark = (int64_t)(c->out_len - c->out_off);
	conn_flush(c);
}

// A reply's header being built: at most sizeof(b) - 1 bytes, as when it
// was one snprintf into a 512-byte buffer; `over` once something did not
// fit.
struct head_buf {
	char b[512];
	size_t n;
	bool over;
};

static void
head_put(struct head_buf *h, const char *s, size_t n)
{
	if (n > sizeof(h->b) - 1 - h->n) {
		h->over = true;
		return;
	}
	memcpy(h->b + h->n, s, n);
	h->n += n;
}

static void
head_str(struct head_buf *h, const char *s)
{
	head_put(h, s, strlen(s));
}

static void
head_uint(struct head_buf *h, uint64_t v)
{
	char d[20];
	size_t k = sizeof(d);

	do {
		d[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	head_put(h, d + k, sizeof(d) - k);
}

// Formats a whole response into a new buffer.
// `conn` is the Connection header's value, or NULL for none.
// Appends rather than snprintf: this runs once per request, and the
// snprintf of seven fields cost about 2,900 instructions.
static char *
format_reply(int status, const char *type, const void *body, size_t len,
    const char *extra, bool head, const char *conn, size_t *ret_len)
{
	struct head_buf h = { .n = 0 };
	size_t blen = head ? 0 : len;
	char *out;

	head_str(&h, status < 0 ? "HTTP/1.1 -" : "HTTP/1.1 ");
	head_uint(&h, status < 0 ? 0 - (uint64_t)status : (uint64_t)status);
	head_str(&h, " ");
	head_str(&h, status_text(status));
	head_str(&h, "\r\nContent-Type: ");
	head_str(&h, type);
	head_str(&h, "\r\nCache-Control: no-store\r\nContent-Length: ");
	head_uint(&h, len);
	head_str(&h, "\r\n");
	if (conn != NULL) {
		head_str(&h, "Connection: ");
		head_str(&h, conn);
		head_str(&h, "\r\n");
	}
	if (extra != NULL) {
		head_str(&h, extra);
		head_str(&h, "\r\n");
	}
	head_str(&h, "\r\n");
	if (h.over)
		return NULL;
	out = malloc(h.n + blen + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, h.b, h.n);
	if (blen > 0)
		memcpy(out + h.n, body, blen);
	*ret_len = h.n + blen;
	return out;
}

// The server's own answer to a request it refuses: JSON reason, then
// close (the rest of the input is not read).
static void
conn_fail(struct conn *c, int status, enum coord_httpd_refusal r,
    const char *reason)
{
	char body[384];
	size_t len;
	char *out;

	refuse(c->s, r);
	cm_info("http.refused", "status=%d reason=%s", status, cm_q(reason));
	snprintf(body, sizeof(body), "{\"status\":\"error\",\"error\":\"%s\"}",
	    reason); // reasons are ours: no quotes or backslashes
	out = format_reply(status, "application/json", body, strlen(body),
	    NULL, false, "close", &len);
	if (out == NULL) {
		conn_close(c);
		return;
	}
	c->st = ST_WRITE;
	c->close_after = true;
	c->deadline = cm_mono_ms() + c->s->lim.body_timeout_ms;
	conn_interest(c, 0);
	conn_write(c, out, len);
}

// ---- request parsing -----------------------------------------------------

// What a byte may be in a request head, one bit each, looked up in
// ch_class instead of tested byte by byte with calls (the head of every
// request goes through these loops): CH_TCHAR, a token byte (RFC 9110
// tchar: method, header field names); CH_CTL, a byte refused in a
// header value (a control byte other than tab, NUL included).
#define CH_TCHAR 1
#define CH_CTL 2
#define CH_IS_TCHAR(c) (((c) >= 'a' && (c) <= 'z') || \
	((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9') || \
	(c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || \
	(c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || \
	(c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
	(c) == '`' || (c) == '|' || (c) == '~')
#define CH(c) ((CH_IS_TCHAR(c) ? CH_TCHAR : 0) | \
	((c) < ' ' && (c) != '\t' ? CH_CTL : 0))
#define CH4(c) CH(c), CH((c) + 1), CH((c) + 2), CH((c) + 3)
#define CH16(c) CH4(c), CH4((c) + 4), CH4((c) + 8), CH4((c) + 12)
#define CH64(c) CH16(c), CH16((c) + 16), CH16((c) + 32), CH16((c) + 48)
static const unsigned char ch_class[256] = {
	CH64(0), CH64(64), CH64(128), CH64(192),
};
#undef CH64
#undef CH16
#undef CH4
#undef CH
#undef CH_IS_TCHAR

static inline bool
is_tchar(unsigned char ch)
{
	return (ch_class[ch] & CH_TCHAR) != 0;
}

static bool
has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, tok, n) == 0 && (v[n] == '\0' ||
		    v[n] == ',' || v[n] == ' ' || v[n] == '\t'))
			return true;
		while (*v != '\0' && *v != ',')
			v++;
	}
	return false;
}

// Splits "METHOD SP target SP HTTP/1.x" in place. Returns 0 or the
// status to refuse with, and sets *why.
static int
parse_request_line(struct conn *c, char *line, const char **why)
{
	char *sp1 = strchr(line, ' '), *sp2;

	if (sp1 == NULL || sp1 == line) {
		*why = "malformed request line";
		return 400;
	}
	if (sp1 - line > MAX_METHOD) {
		*why = "method longer than 16 bytes";
		return 400;
	}
	*sp1 = '\0';
	for (char *p = line; *p; p++)
		if (!is_tchar((unsigned char)*p)) {
			*why = "malformed method";
			return 400;
		}
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || sp2[1] == '\0') {
		*why = "malformed request line";
		return 400;
	}
	*sp2 = '\0';
	if (sp2 - (sp1 + 1) > MAX_TARGET) {
		*why = "request target longer than 8192 bytes";
		return 414;
	}
	if (sp1[1] != '/') {
		*why = "request target must be a path";
		return 400;
	}
	for (char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f) {
			*why = "malformed request target";
			return 400;
		}
	if (strcmp(sp2 + 1, "HTTP/1.1") == 0) {
		c->keepalive = c->http11 = true;
	} else if (strcmp(sp2 + 1, "HTTP/1.0") == 0) {
		c->keepalive = c->http11 = false;
	} else {
		*why = strncmp(sp2 + 1, "HTTP/", 5) == 0 ? "only HTTP/1.0 and "
		    "HTTP/1.1 are served" : "malformed request line";
		return strncmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
	}
	c->method = line;
	c->target = sp1 + 1;
	c->head = strcmp(line, "HEAD") == 0;
	return 0;
}

// A header field name (name_len bytes) is `known` (a string constant),
// compared without case. The length first: most names are none of the
// known ones, and a strcasecmp call for each known name cost a fifth of
// the head's parsing.
#define NAME_IS(name, name_len, known) \
	((name_len) == sizeof(known) - 1 && strcasecmp((name), (known)) == 0)

// Applies one header field to the request; returns 0 or a status.
static int
header_apply(struct conn *c, const char *name, size_t name_len,
    const char *value, bool *have_len, const char **why)
{
	const struct coord_httpd_limits *lim = &c->s->lim;

	if (NAME_IS(name, name_len, "Content-Length")) {
		unsigned long long v = 0;
		const char *p = value;

		if (*p == '\0' || strlen(p) > 18) {
			*why = "malformed Content-Length";
			return 400;
		}
		for (; *p; p++) {
			if (*p < '0' || *p > '9') {
				*why = "malformed Content-Length";
				return 400;
			}
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (*have_len && v != c->body_len) {
			*why = "conflicting Content-Length headers";
			return 400;
		}
		*have_len = true;
		c->body_len = (size_t)v;
		if (v > (unsigned long long)lim->max_body) {
			// The coordinator sets max_body from limits.max_body.
			snprintf(c->why, sizeof(c->why), "body of %llu bytes "
			    "exceeds the limit of %lld bytes (limits.max_body)",
			    v, (long long)lim->max_body);
			*why = c->why;
			return 413;
		}
	} else if (NAME_IS(name, name_len, "Transfer-Encoding")) {
		*why = "Transfer-Encoding is not accepted: send the body "
		    "with Content-Length";
		return 411;
	} else if (NAME_IS(name, name_len, "Connection")) {
		if (has_token(value, "close"))
			c->keepalive = false;
		else if (has_token(value, "keep-alive"))
			c->keepalive = true;
	} else if (NAME_IS(name, name_len, "Host")) {
		c->host = true;
	} else if (NAME_IS(name, name_len, "Expect") && c->http11) {
		// HTTP/1.0 expectations are ignored (RFC 9110, 10.1.1).
		if (strcasecmp(value, "100-continue") != 0) {
			*why = "only Expect: 100-continue is understood";
			return 417;
		}
		c->expect = true;
	}
	return 0;
}

// True when [v, end) holds no byte refused in a header value (CH_CTL):
// sixteen bytes a test with SSE2, the rest by the table.
static bool
value_clean(const char *v, const char *end)
{
#if defined(__SSE2__)
	const __m128i max_ctl = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8('\t');

	for (; end - v >= 16; v += 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)v);
		// c <= 0x1f (unsigned) exactly when min(c, 0x1f) == c.
		__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(w, max_ctl), w);

		if (_mm_movemask_epi8(_mm_andnot_si128(_mm_cmpeq_epi8(w, tab),
		    ctl)) != 0)
			return false;
	}
#endif
	for (; v < end; v++)
		if (ch_class[(unsigned char)*v] & CH_CTL)
			return false;
	return true;
}

// Parses head_len bytes of headers in place (NUL-terminating names and
// values). Returns 0 or the status to refuse with.
static int
parse_head(struct conn *c, const char **why)
{
	char *p = c->buf, *end = c->buf + c->head_len - 2, *eol;
	bool have_len = false;
	int rv;

	c->nhdrs = 0;
	c->body_len = 0;
	c->expect = c->host = false;
	eol = memchr(p, '\r', (size_t)(end - p));
	if (eol == NULL || eol[1] != '\n') {
		*why = "malformed request line";
		return 400;
	}
	*eol = '\0';
	if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
		*why = "NUL in request line";
		return 400;
	}
	rv = parse_request_line(c, p, why);
	if (rv != 0)
		return rv;
	for (p = eol + 2; p < end; p = eol + 2) {
		char *colon, *v, *t;

		eol = memchr(p, '\r', (size_t)(end - p) + 1);
		if (eol == NULL || eol[1] != '\n' || *p == ' ' || *p == '\t') {
			*why = "malformed header line";
			return 400;
		}
		*eol = '\0';
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p ||
		    memchr(p, '\0', (size_t)(eol - p)) != NULL) {
			*why = "malformed header line";
			return 400;
		}
		*colon = '\0';
		// No NUL in the line (above): the name is [p, colon), the
		// value [v, t).
		for (t = p; t < colon; t++)
			if (!is_tchar((unsigned char)*t)) {
				*why = "malformed header name";
				return 400;
			}
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		for (t = eol; t > v && (t[-1] == ' ' || t[-1] == '\t'); t--)
			;
		*t = '\0';
		if (!value_clean(v, t)) {
			*why = "control character in a header value";
			return 400;
		}
		if (c->nhdrs == MAX_HDRS) {
			*why = "more than 64 header fields";
			return 431;
		}
		c->hdrs[c->nhdrs++] = (struct hdr){ p, v, (size_t)(colon - p) };
		rv = header_apply(c, p, (size_t)(colon - p), v, &have_len, why);
		if (rv != 0)
			return rv;
	}
	if (c->http11 && !c->host) { // RFC 9112, 3.2
		*why = "HTTP/1.1 request without a Host header";
		return 400;
	}
	return 0;
}

static enum coord_httpd_refusal
refusal_of(int status)
{
	switch (status) {
	case 413: return COORD_HTTPD_REF_BODY_SIZE;
	case 414: case 431: return COORD_HTTPD_REF_HEADER_SIZE;
	default: return COORD_HTTPD_REF_MALFORMED;
	}
}

// Finds the end of the headers in the input; 0 when not there yet.
// Each CR found (memchr) is tried as the start of CRLF CRLF: a head has
// a handful, and glibc's memmem cost five times as much here.
static size_t
head_end(struct conn *c)
{
	const char *p = c->buf + c->scanned, *end = c->buf + c->len;

	while (end - p >= 4) {
		const char *e = memchr(p, '\r', (size_t)(end - p) - 3);

		if (e == NULL)
			break;
		if (e[1] == '\n' && e[2] == '\r' && e[3] == '\n')
			return (size_t)(e - c->buf) + 4;
		p = e + 1;
	}
	// Byte-by-byte senders must not make the search quadratic.
	c->scanned = c->len > 3 ? c->len - 3 : 0;
	return 0;
}

// ---- dispatch ------------------------------------------------------------

static void
dispatch(struct conn *c)
{
	struct coord_httpd *s = c->s;
	// Every member is set below (the compound literal zeroes the rest).
	struct coord_httpd_req *rq = malloc(sizeof(*rq));
	char allow[64] = "Allow: ", *q;
	bool path_match = false;

	if (rq == NULL) {
		conn_fail(c, 503, COORD_HTTPD_REF_MALFORMED, "out of memory");
		return;
	}
	q = strchr(c->target, '?');
	if (q != NULL)
		*q++ = '\0';
	*rq = (struct coord_httpd_req){
		.s = s, .conn = c, .method = c->method, .path = c->target,
		.query = q != NULL ? q : "", .hdrs = c->hdrs, .nhdrs = c->nhdrs,
		.body = c->body_len > 0 ? c->buf + c->head_len : NULL,
		.body_len = c->body_len, .head = c->head,
		.keepalive = c->keepalive, .http10 = !c->http11,
	};
	c->rq = rq;
	c->st = ST_WAIT;
	c->deadline = 0;
	// Interest in input stays while the handler works: a client waits
	// for its answer, so nothing comes, and the usual request costs no
	// epoll_ctl either way. Input that does come is looked at after the
	// answer (the event handler drops the interest until then).
	s->outstanding++;
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct coord_httpd_route *r = &s->routes[i];

		if (strcmp(r->path, rq->path) != 0)
			continue;
		if (strcmp(r->method, c->method) == 0 || (c->head &&
		    strcmp(r->method, "GET") == 0)) {
			r->fn(rq, s->arg);
			return;
		}
		// Every method the path has, for the 405 (methods are short
		// and a path has few: 64 bytes hold them).
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
		    "%s%s", path_match ? ", " : "", r->method);
		path_match = true;
	}
	if (path_match) {
		static const char b[] = "{\"status\":\"error\",\"error\":"
		    "\"method not allowed\"}";

		coord_httpd_reply(rq, 405, "application/json", b, sizeof(b) - 1,
		    allow);
		return;
	}
	static const char nf[] = "{\"status\":\"error\",\"error\":"
	    "\"no such endpoint\"}";
	coord_httpd_reply(rq, 404, "application/json", nf, sizeof(nf) - 1,
	    NULL);
}

// Moves the connection through the requests held in its input.
static void
conn_process(struct conn *c)
{
	const struct coord_httpd_limits *lim = &c->s->lim;

	if (c->st == ST_HEAD) {
		const char *why = NULL;
		int rv;

		if (c->len == 0)
			return;
		c->head_len = head_end(c);
		if (c->head_len == 0 || c->head_len > (size_t)lim->max_header_bytes) {
			if (c->len >= (size_t)lim->max_header_bytes)
				conn_fail(c, 431, COORD_HTTPD_REF_HEADER_SIZE,
				    "request line and headers exceed the size "
				    "limit");
			return;
		}
		rv = parse_head(c, &why);
		if (rv != 0) {
			conn_fail(c, rv, refusal_of(rv), why);
			return;
		}
		c->st = ST_BODY;
		c->deadline = cm_mono_ms() + lim->body_timeout_ms;
		if (c->expect && c->body_len > 0 &&
		    c->len < c->head_len + c->body_len) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			char *m = malloc(sizeof(cont));

			if (m == NULL) {
				conn_close(c);
				return;
			}
			memcpy(m, cont, sizeof(cont));
			conn_write(c, m, sizeof(cont) - 1);
			return; // conn_write may have closed c
		}
	}
	if (c->st == ST_BODY && c->len >= c->head_len + c->body_len)
		dispatch(c);
}

// The parsed head points into the input buffer: turns those pointers
// into offsets before it moves (to_offsets) and back after.
static void
conn_offsets(struct conn *c, bool to_offsets)
{
	const char **p[2 + 2 * MAX_HDRS];
	size_t n = 0;

	if (c->st != ST_BODY)
		return;
	p[n++] = &c->method;
	p[n++] = &c->target;
	for (size_t i = 0; i < c->nhdrs; i++) {
		p[n++] = &c->hdrs[i].name;
		p[n++] = &c->hdrs[i].value;
	}
	for (size_t i = 0; i < n; i++)
		*p[i] = to_offsets ? (const char *)(uintptr_t)(*p[i] - c->buf) :
		    c->buf + (uintptr_t)*p[i];
}

// Grows the input buffer to hold what the current state may read; 0
// bytes of room means the state's limit is reached.
static size_t
conn_room(struct conn *c)
{
	size_t want = c->st == ST_BODY ? c->head_len + c->body_len :
	    (size_t)c->s->lim.max_header_bytes;

	if (c->st == ST_LINGER)
		want = BUF_MIN;
	if (c->len >= want)
		return 0;
	if (c->cap < want && c->cap - c->len < BUF_MIN) {
		size_t cap = c->cap == 0 ? BUF_MIN : c->cap * 2;
		char *b;

		if (cap > want)
			cap = want;
		conn_offsets(c, true);
		b = realloc(c->buf, cap);
		if (b != NULL) {
			c->buf = b;
			c->cap = cap;
		}
		conn_offsets(c, false);
		if (b == NULL)
			return 0;
	}
	return (c->cap < want ? c->cap : want) - c->len;
}

static void
conn_handshake(struct conn *c)
{
	int r = mbedtls_ssl_handshake(c->ssl);

	if (r == MBEDTLS_ERR_SSL_WANT_READ) {
		conn_interest(c, EPOLLIN);
	} else if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
		conn_interest(c, EPOLLOUT);
	} else if (r != 0) {
		refuse(c->s, COORD_HTTPD_REF_TLS);
		cm_info("http.tls_failed", "rv=-0x%04x", (unsigned)-r);
		conn_close(c);
	} else {
		conn_await_request(c);
		conn_interest(c, EPOLLIN);
		conn_readable(c); // early data may be buffered already
	}
}

static void
conn_readable(struct conn *c)
{
	for (;;) {
		size_t room = conn_room(c);
		ssize_t r;

		if (c->st != ST_HEAD && c->st != ST_BODY && c->st != ST_LINGER)
			return;
		if (room == 0) {
			if (c->st == ST_HEAD) // full of an unfinished head
				conn_fail(c, 431, COORD_HTTPD_REF_HEADER_SIZE,
				    "request line and headers exceed the size "
				    "limit");
			return;
		}
		r = conn_recv(c, c->buf + c->len, room);
		if (r == -EAGAIN)
			return;
		if (r == 0 && (c->st == ST_BODY || (c->st == ST_HEAD &&
		    c->len > 0))) {
			// Half-closed mid-request: it may still read why.
			conn_fail(c, 400, COORD_HTTPD_REF_MALFORMED, "the client "
			    "ended its side before the request was complete");
			return;
		}
		if (r <= 0) {
			conn_close(c);
			return;
		}
		if (c->st == ST_LINGER) {
			c->lingered += (size_t)r;
			if (c->lingered > LINGER_BYTES)
				conn_close(c);
			continue;
		}
		if (c->st == ST_HEAD && c->len == 0)
			c->deadline = cm_mono_ms() + c->s->lim.header_timeout_ms;
		c->len += (size_t)r;
		conn_process(c);
		if (c->closed || c->ssl == NULL)
			return; // level-triggered epoll says when there is more
		if (mbedtls_ssl_get_bytes_avail(c->ssl) == 0)
			return;
	}
}

// ---- replies -------------------------------------------------------------

void
coord_httpd_reply(struct coord_httpd_req *rq, int status, const char *type,
    const void *body, size_t len, const char *extra)
{
	struct coord_httpd *s = rq->s;
	bool wake;

	// HTTP/1.0 closes unless told otherwise: say so when it stays open.
	rq->out = format_reply(status, type, body, len, extra, rq->head,
	    !rq->keepalive ? "close" : rq->http10 ? "keep-alive" : NULL,
	    &rq->out_len);
	pthread_mutex_lock(&s->mu);
	wake = s->sleeping && !pthread_equal(pthread_self(), s->thread);
	if (wake)
		s->sleeping = false;
	rq->next = NULL;
	*s->done_tail = rq;
	s->done_tail = &rq->next;
	// Still under mu: once the reply is queued, coord_httpd_stop may drain
	// it and free s (closing efd) as soon as mu is free.
	if (wake) {
		uint64_t one = 1;

		// Edge-triggered and never read: each write is one event.
		(void)!write(s->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&s->mu);
}

// Sends one reply on its connection, if that is still open.
static void
reply_send(struct coord_httpd_req *rq)
{
	struct conn *c = rq->conn;
	size_t used;

	rq->s->outstanding--;
	if (c == NULL)
		cm_debug("http.reply_dropped", "reason=client_gone");
	if (c == NULL || rq->out == NULL) {
		if (c != NULL)
			conn_close(c);
		free(rq->out);
		free(rq);
		return;
	}
	c->rq = NULL;
	c->served++;
	used = c->head_len + c->body_len;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	c->scanned = 0;
	if (c->cap > 4 * BUF_MIN && c->len <= BUF_MIN) {
		// A big body's buffer is not kept for an idle connection.
		char *small = realloc(c->buf, BUF_MIN);

		if (small != NULL) {
			c->buf = small;
			c->cap = BUF_MIN;
		}
	}
	c->close_after = !rq->keepalive;
	if (rq->out_len > REPLY_SMALL && c->s->out_bytes > 0 &&
	    c->s->out_bytes + (int64_t)rq->out_len >
	    c->s->lim.max_reply_memory) {
		// Slow clients already hold that much: a big reply now would
		// let a few hundred of them take the process's memory. (One
		// alone is always sent, however big.)
		char why[160];

		snprintf(why, sizeof(why), "server busy: %lld bytes of replies "
		    "wait for slow clients (http.max_reply_memory)",
		    (long long)c->s->out_bytes);
		free(rq->out);
		free(rq);
		conn_fail(c, 503, COORD_HTTPD_REF_REPLY_MEMORY, why);
		return;
	}
	c->st = ST_WRITE;
	c->deadline = cm_mono_ms() + c->s->lim.body_timeout_ms;
	conn_write(c, rq->out, rq->out_len);
	free(rq);
}

// Sends every queued reply (replies posted meanwhile included). With
// `then_sleep` the server thread waits in epoll_wait next: once the queue
// is seen empty, the next reply must wake it (s->sleeping).
static void
drain_replies(struct coord_httpd *s, bool then_sleep)
{
	for (;;) {
		struct coord_httpd_req *rq;

		pthread_mutex_lock(&s->mu);
		rq = s->done;
		if (rq != NULL) {
			s->done = rq->next;
			if (s->done == NULL)
				s->done_tail = &s->done;
		}
		s->sleeping = rq == NULL && then_sleep;
		pthread_mutex_unlock(&s->mu);
		if (rq == NULL)
			return;
		reply_send(rq);
	}
}

// ---- accepting and timing out --------------------------------------------

// At max_connections: closes the connection idle the longest; false
// when every connection is busy.
static bool
evict_idle(struct coord_httpd *s)
{
	struct conn *best = NULL;

	for (struct conn *c = s->first; c != NULL; c = c->next)
		if (c->st == ST_HEAD && c->len == 0 &&
		    (best == NULL || c->idle_since < best->idle_since))
			best = c;
	if (best == NULL)
		return false;
	refuse(s, COORD_HTTPD_REF_EVICTED);
	conn_close(best);
	return true;
}

static void
refuse_connection(struct coord_httpd *s, int fd)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\nContent-Length: 62\r\n"
	    "Connection: close\r\n\r\n"
	    "{\"status\":\"error\",\"error\":\"too many connections: retry later\"}";

	refuse(s, COORD_HTTPD_REF_CONNECTIONS);
	if (s->tls == NULL) // best effort: the client may not see it
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void
conn_new(struct coord_httpd *s, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->s = s;
	c->fd = fd;
	c->events = EPOLLIN;
	ev.data.ptr = c;
	if (s->tls != NULL) {
		c->ssl = malloc(sizeof(*c->ssl));
		if (c->ssl != NULL) {
			mbedtls_ssl_init(c->ssl);
			if (mbedtls_ssl_setup(c->ssl, &s->tls->conf) != 0) {
				mbedtls_ssl_free(c->ssl);
				free(c->ssl);
				c->ssl = NULL;
			}
		}
		if (c->ssl == NULL) {
			free(c);
			close(fd);
			return;
		}
		mbedtls_ssl_set_bio(c->ssl, &c->fd, bio_send, bio_recv, NULL);
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		if (c->ssl != NULL) {
			mbedtls_ssl_free(c->ssl);
			free(c->ssl);
		}
		free(c);
		close(fd);
		return;
	}
	c->prev = s->last;
	if (s->last != NULL)
		s->last->next = c;
	else
		s->first = c;
	s->last = c;
	s->n_conns++;
	conn_await_request(c);
	c->st = c->ssl != NULL ? ST_TLS : ST_HEAD;
}

static void
accept_all(struct coord_httpd *s)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				// Out of descriptors: stop accepting for a while
				// instead of spinning on a readable listener.
				cm_warn("http.accept_failed", "errno=%d", errno);
				(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
				s->accept_paused = true;
				s->accept_resume = cm_mono_ms() + SWEEP_MS;
			}
			return;
		}
		if (s->n_conns >= (size_t)s->lim.max_connections &&
		    !evict_idle(s)) {
			refuse_connection(s, fd);
			continue;
		}
		conn_new(s, fd);
	}
}

// A reply's deadline moves on while the client takes at least
// WRITE_PROGRESS bytes per body_timeout, so a big page to a slow client
// completes and a client that stops reading is dropped. Taken means gone
// from our buffer and from the kernel's send queue (SIOCOUTQ: bytes the
// peer has not acknowledged), since the kernel may hold megabytes.
static bool
write_progressed(struct conn *c)
{
	int64_t left = (int64_t)(c->out_len - c->out_off);
	int queued = 0;

	if (ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0)
		left += queued;
	if (c->out_mark - left < WRITE_PROGRESS)
		return false;
	c->out_mark = left;
	return true;
}

// Closes the connections past their deadline.
static void
sweep(struct coord_httpd *s, int64_t now)
{
	struct conn *c = s->first;

	while (c != NULL) {
		struct conn *next = c->next;

		if (c->deadline != 0 && now >= c->deadline) {
			char why[96];

			switch (c->st) {
			case ST_TLS:
				refuse(s, COORD_HTTPD_REF_HEADER_TIMEOUT);
				conn_close(c);
				break;
			case ST_HEAD:
				if (c->len == 0) { // idle keep-alive, or silent
					if (c->served == 0)
						refuse(s, COORD_HTTPD_REF_HEADER_TIMEOUT);
					conn_close(c);
					break;
				}
				snprintf(why, sizeof(why), "request headers not "
				    "received within %lld ms",
				    (long long)s->lim.header_timeout_ms);
				conn_fail(c, 408, COORD_HTTPD_REF_HEADER_TIMEOUT, why);
				break;
			case ST_BODY:
				snprintf(why, sizeof(why), "request body not "
				    "received within %lld ms",
				    (long long)s->lim.body_timeout_ms);
				conn_fail(c, 408, COORD_HTTPD_REF_BODY_TIMEOUT, why);
				break;
			case ST_WRITE:
				if (write_progressed(c)) {
					c->deadline = now + s->lim.body_timeout_ms;
					break;
				}
				refuse(s, COORD_HTTPD_REF_BODY_TIMEOUT);
				conn_close(c);
				break;
			default:
				conn_close(c);
				break;
			}
		}
		c = next;
	}
	if (s->accept_paused && now >= s->accept_resume) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->lfd };

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) == 0)
			s->accept_paused = false;
		else
			s->accept_resume = now + SWEEP_MS;
	}
}

static void
conn_event(struct conn *c, uint32_t ev)
{
	if (c->closed) // earlier in this batch of events
		return;
	if (ev & EPOLLERR) {
		conn_close(c);
		return;
	}
	switch (c->st) {
	case ST_TLS:
		conn_handshake(c);
		break;
	case ST_WRITE:
		conn_flush(c);
		break;
	case ST_BODY:
		if (c->out != NULL && (ev & EPOLLOUT)) {
			conn_flush(c);
			if (c->closed || c->out != NULL)
				break; // gone, or still sending the 100 Continue
		}
		conn_readable(c);
		break;
	case ST_WAIT:
		if (ev & EPOLLHUP)
			conn_close(c); // nothing to answer to any more
		else
			conn_interest(c, 0); // early input, or a half-close
		break;
	default:
		conn_readable(c);
		break;
	}
}

static void *
serve(void *arg)
{
	struct coord_httpd *s = arg;
	struct epoll_event evs[64];

	cm_thread_start("http", CM_THREAD_BULK);
	while (!atomic_load(&s->stop)) {
		int64_t now;
		int n;

		drain_replies(s, true);
		n = epoll_wait(s->epfd, evs, 64, s->first != NULL ||
		    s->accept_paused ? SWEEP_MS : -1);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			// The eventfd (edge-triggered) only wakes: the
			// replies are drained below.
			if (p == &s->lfd)
				accept_all(s);
			else if (p != &s->efd)
				conn_event(p, evs[i].events);
			// Replies: from handlers that answered at once, and
			// from other threads meanwhile.
			drain_replies(s, false);
		}
		now = cm_mono_ms();
		if (now >= s->next_sweep) {
			sweep(s, now);
			s->next_sweep = now + SWEEP_MS;
		}
		free_dead(s);
	}
	return NULL;
}

// ---- setup ---------------------------------------------------------------

static void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	mbedtls_ssl_config_free(&t->conf);
	mbedtls_x509_crt_free(&t->cert);
	mbedtls_x509_crt_free(&t->ca);
	mbedtls_pk_free(&t->key);
	mbedtls_ctr_drbg_free(&t->drbg);
	mbedtls_entropy_free(&t->entropy);
	free(t);
}

static int
tls_new(struct tls **ret, const struct coord_httpd_tls *cfg, char *err,
    size_t errlen)
{
	struct tls *t = calloc(1, sizeof(*t));
	const char *what = "entropy";
	int r;

	if (t == NULL)
		return -ENOMEM;
	mbedtls_entropy_init(&t->entropy);
	mbedtls_ctr_drbg_init(&t->drbg);
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_x509_crt_init(&t->cert);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_pk_init(&t->key);
	r = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
	    (const unsigned char *)"reflex-httpd", 12);
	if (r == 0) {
		what = cfg->cert_file;
		r = mbedtls_x509_crt_parse_file(&t->cert, cfg->cert_file);
	}
	if (r == 0) {
		what = cfg->key_file;
		r = mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, NULL);
	}
	if (r == 0 && cfg->ca_file != NULL) {
		what = cfg->ca_file;
		r = mbedtls_x509_crt_parse_file(&t->ca, cfg->ca_file);
	}
	if (r == 0) {
		what = "configuration";
		r = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
		    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	}
	if (r == 0) {
		mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
		mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
		    MBEDTLS_SSL_MINOR_VERSION_3); // TLS 1.2
		if (cfg->ca_file != NULL) {
			mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
			mbedtls_ssl_conf_authmode(&t->conf,
			    MBEDTLS_SSL_VERIFY_REQUIRED);
		} else {
			mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
		}
		what = "certificate and key";
		r = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key);
	}
	if (r != 0) {
		snprintf(err, errlen, "tls: cannot load %s (mbedtls -0x%04x)",
		    what, (unsigned)-r);
		tls_free(t);
		return -EINVAL;
	}
	*ret = t;
	return 0;
}

static int
listen_open(struct coord_httpd *s, const char *listen_on, char *err,
    size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen_on, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	size_t hl;
	int one = 1, r;

	if (colon == NULL || (size_t)(colon - listen_on) >= sizeof(host)) {
		snprintf(err, errlen, "listen %s: expected host:port", listen_on);
		return -EINVAL;
	}
	hl = (size_t)(colon - listen_on);
	if (hl >= 2 && listen_on[0] == '[' && listen_on[hl - 1] == ']') {
		memcpy(host, listen_on + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, listen_on, hl);
		host[hl] = '\0';
	}
	r = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai);
	if (r != 0) {
		snprintf(err, errlen, "listen %s: %s", listen_on, gai_strerror(r));
		return -EINVAL;
	}
	s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->lfd >= 0) {
		(void)setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		if (bind(s->lfd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(s->lfd, 1024) < 0) {
			close(s->lfd);
			s->lfd = -1;
		}
	}
	freeaddrinfo(ai);
	if (s->lfd < 0) {
		snprintf(err, errlen, "listen %s: %s", listen_on, strerror(errno));
		return -EADDRINUSE;
	}
	return 0;
}

static void
server_free(struct coord_httpd *s)
{
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->efd >= 0)
		close(s->efd);
	if (s->epfd >= 0)
		close(s->epfd);
	tls_free(s->tls);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

// The connection cap the open-file limit allows: above it accept()
// fails (EMFILE) before the cap is reached, so idle connections are never
// evicted for new clients, nobody gets the 503, and the rest of the
// process runs out of descriptors.
static int64_t
fd_fit(int64_t want)
{
	struct rlimit rl;
	int64_t fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    (uint64_t)want + FD_RESERVE <= (uint64_t)rl.rlim_cur)
		return want;
	fit = (int64_t)rl.rlim_cur > 2 * FD_RESERVE ?
	    (int64_t)rl.rlim_cur - FD_RESERVE : (int64_t)rl.rlim_cur / 2;
	if (fit < 1)
		fit = 1;
	cm_warn("http.max_connections_lowered", "max_connections=%lld "
	    "now=%lld open_file_limit=%llu reason=%s", (long long)want,
	    (long long)fit, (unsigned long long)rl.rlim_cur,
	    cm_q("the open-file limit (ulimit -n) leaves room for fewer"));
	return fit;
}

int
coord_httpd_start(struct coord_httpd **ret, const char *listen_on,
    const struct coord_httpd_limits *lim, const struct coord_httpd_tls *tls,
    const struct coord_httpd_route *routes, size_t n_routes, void *arg,
    char *err, size_t errlen)
{
	struct coord_httpd *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = EPOLLIN };
	int rv = 0;

	if (s == NULL)
		return -ENOMEM;
	s->lim = *lim;
	s->lim.max_connections = fd_fit(lim->max_connections);
	if (s->lim.max_reply_memory <= 0) // not given: no cap
		s->lim.max_reply_memory = INT64_MAX;
	s->routes = routes;
	s->n_routes = n_routes;
	s->arg = arg;
	s->lfd = s->efd = s->epfd = -1;
	s->done_tail = &s->done;
	pthread_mutex_init(&s->mu, NULL);
	if (tls != NULL)
		rv = tls_new(&s->tls, tls, err, errlen);
	if (rv == 0)
		rv = listen_open(s, listen_on, err, errlen);
	if (rv == 0) {
		s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		s->epfd = epoll_create1(EPOLL_CLOEXEC);
		ev.data.ptr = &s->lfd;
		if (s->efd < 0 || s->epfd < 0 ||
		    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0)
			rv = -errno;
		// Edge-triggered: a write is one event and the counter is
		// never read back (2^64 - 2 writes to fill it).
		ev.events = EPOLLIN | EPOLLET;
		ev.data.ptr = &s->efd;
		if (rv == 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev) < 0)
			rv = -errno;
		if (rv < 0)
			snprintf(err, errlen, "http: epoll: %s", strerror(-rv));
	}
	if (rv == 0) {
		rv = -pthread_create(&s->thread, NULL, serve, s);
		if (rv < 0)
			snprintf(err, errlen, "http: thread: %s", strerror(-rv));
	}
	if (rv < 0) {
		server_free(s);
		return rv;
	}
	*ret = s;
	return 0;
}

void
coord_httpd_stop(struct coord_httpd *s)
{
	uint64_t one = 1;

	if (s == NULL)
		return;
	atomic_store(&s->stop, true);
	(void)!write(s->efd, &one, sizeof(one));
	pthread_join(s->thread, NULL);
	// The server thread is gone: this one takes its place.
	while (s->first != NULL)
		conn_close(s->first);
	while (s->outstanding > 0) {
		drain_replies(s, false);
		if (s->outstanding > 0)
			usleep(1000);
	}
	free_dead(s);
	server_free(s);
}

int
coord_httpd_port(const struct coord_httpd *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(s->lfd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
}

void
coord_httpd_refusals(const struct coord_httpd *s,
    uint64_t ret[COORD_HTTPD_REF__COUNT])
{
	for (int i = 0; i < COORD_HTTPD_REF__COUNT; i++)
		ret[i] = atomic_load(&s->refused[i]);
}

const char *
coord_httpd_method(const struct coord_httpd_req *rq)
{
	return rq->method;
}

const char *
coord_httpd_path(const struct coord_httpd_req *rq)
{
	return rq->path;
}

const char *
coord_httpd_query(const struct coord_httpd_req *rq)
{
	return rq->query;
}

const char *
coord_httpd_header(const struct coord_httpd_req *rq, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < rq->nhdrs; i++)
		if (rq->hdrs[i].name_len == n &&
		    strcasecmp(rq->hdrs[i].name, name) == 0)
			return rq->hdrs[i].value;
	return NULL;
}

const void *
coord_httpd_body(const struct coord_httpd_req *rq, size_t *len)
{
	*len = rq->body_len;
	return rq->body;
}
