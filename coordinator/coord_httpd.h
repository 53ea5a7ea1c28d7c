// SPDX-License-Identifier: MIT
// coord_httpd: a small HTTP/1.1 server (epoll, one thread, optional TLS
// through mbedtls) that bounds everything a client sends:
//
//   - the request line and headers must arrive within header_timeout
//     (408 and close), and hold at most max_header_bytes (431), 64 header
//     fields (431), a method of 16 bytes (400) and a target of 8 KiB (414),
//     and an HTTP/1.1 request needs a Host header (400);
//   - a body is taken only with Content-Length (Transfer-Encoding: 411),
//     refused with 413 as soon as the length exceeds max_body (the body
//     is never read), and must arrive within body_timeout (408);
//   - a reply the client does not take within body_timeout closes it;
//   - a keep-alive connection idle for idle_timeout is closed;
//   - at max_connections a new connection closes the oldest idle one, or
//     is answered 503 and closed when none is idle; max_connections is
//     lowered at start (with a warning) to the open-file limit less 64
//     when that is smaller, so that accept() does not run out first.
//
// Keep-alive, HTTP/1.0, "Connection: close", HEAD and "Expect:
// 100-continue" are handled; pipelined requests are served one at a time
// in order (the next is not read before the current one is answered).
#ifndef COORD_HTTPD_H
#define COORD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct coord_httpd;
struct coord_httpd_req;

struct coord_httpd_limits {
	int64_t header_timeout_ms;
	int64_t body_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t max_connections;
	int64_t max_header_bytes;
	int64_t max_body;
	int64_t max_reply_memory; // bytes of replies held for clients at
				  // most; a bigger one beyond it gets 503
				  // (0: no cap)
};

// PEM files; ca_file (optional) makes client certificates mandatory.
struct coord_httpd_tls {
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
};

// Called on the server thread for each complete request whose path has a
// route. It must answer with coord_httpd_reply exactly once, now or later
// from any thread; the connection reads nothing more until then.
typedef void (*coord_httpd_fn)(struct coord_httpd_req *rq, void *arg);

struct coord_httpd_route {
	const char *path;	// exact match, query string excluded
	const char *method;	// "GET" routes also answer HEAD
	coord_httpd_fn fn;
};

// Refusals by the server itself (not by a route), for /metrics.
enum coord_httpd_refusal {
	COORD_HTTPD_REF_HEADER_TIMEOUT,	// 408 (or closed in TLS handshake)
	COORD_HTTPD_REF_BODY_TIMEOUT,	// 408
	COORD_HTTPD_REF_HEADER_SIZE,	// 431 and 414
	COORD_HTTPD_REF_BODY_SIZE,	// 413
	COORD_HTTPD_REF_MALFORMED,	// 400, 411, 501, 505
	COORD_HTTPD_REF_CONNECTIONS,	// 503 at max_connections
	COORD_HTTPD_REF_EVICTED,	// idle connection closed for a new one
	COORD_HTTPD_REF_TLS,		// TLS handshake failed
	COORD_HTTPD_REF_REPLY_MEMORY,	// 503: replies held at their cap
	COORD_HTTPD_REF__COUNT,
};

const char *coord_httpd_refusal_name(enum coord_httpd_refusal r);

// Starts listening on `listen` ("host:port") and serving `routes`
// (borrowed: the table, `arg` and `tls` strings must outlive the server;
// `tls` NULL serves plain HTTP). Returns 0 or a negative errno with a
// reason in err.
int coord_httpd_start(struct coord_httpd **ret, const char *listen,
    const struct coord_httpd_limits *lim, const struct coord_httpd_tls *tls,
    const struct coord_httpd_route *routes, size_t n_routes, void *arg,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Stops serving: closes the listener and every connection, waits for the
// replies still owed by handlers (they may be posted meanwhile from other
// threads) and frees the server. NULL-safe. Not from a handler.
void coord_httpd_stop(struct coord_httpd *s);

// The TCP port listened on (the one chosen when `listen` gave port 0).
int coord_httpd_port(const struct coord_httpd *s);

// Refusal counts since start (thread-safe).
void coord_httpd_refusals(const struct coord_httpd *s,
    uint64_t ret[COORD_HTTPD_REF__COUNT]);

// Request accessors: borrowed strings, valid only during the handler
// call (not after it returns, even if the reply comes later).
const char *coord_httpd_method(const struct coord_httpd_req *rq);
const char *coord_httpd_path(const struct coord_httpd_req *rq);
// The query string after '?', or "".
const char *coord_httpd_query(const struct coord_httpd_req *rq);
// The first header named `name` (case-insensitive), or NULL.
const char *coord_httpd_header(const struct coord_httpd_req *rq,
    const char *name);
// The body (NULL when empty) and its length.
const void *coord_httpd_body(const struct coord_httpd_req *rq, size_t *len);

// Answers `rq` with `status`, Content-Type `type` and `body` (copied);
// `extra` is one more header line without CRLF ("Name: value") or NULL.
// Thread-safe; `rq` is consumed (freed) by the call, even if the client
// has gone meanwhile, in which case the reply is dropped.
void coord_httpd_reply(struct coord_httpd_req *rq, int status,
    const char *type, const void *body, size_t len, const char *extra);

#endif
