// SPDX-License-Identifier: MIT
// coord_fetch: one blocking HTTP request with libcurl, bounded in time and
// in response size, for the Prometheus query API and notification
// webhooks. Never follows redirects, never uses a proxy from the
// environment. Call from worker threads only (it blocks).
#ifndef COORD_FETCH_H
#define COORD_FETCH_H

#include <stddef.h>
#include <stdint.h>

#define COORD_FETCH_MAX_BODY (4 * 1024 * 1024)

struct coord_fetch_reply {
	long status;	 // HTTP status, 0 when there was no answer
	char *body;	 // NUL-terminated, owned: free()
	size_t len;
	char error[256]; // transport error text when status == 0
};

// Performs `method` ("GET" or "POST") on `url`. For POST, `body` is sent
// with `content_type`. Returns 0 when an HTTP answer arrived (any status),
// -ETIMEDOUT, -ECONNREFUSED/-EHOSTUNREACH-like -EIO on transport errors
// (reason in reply->error), -EMSGSIZE when the answer exceeds
// COORD_FETCH_MAX_BODY, -ENOMEM. Release reply->body with free().
int coord_fetch(const char *method, const char *url, const char *content_type,
    const char *body, size_t body_len, int64_t timeout_ms,
    struct coord_fetch_reply *reply) __attribute__((warn_unused_result));

// Same, with extra request headers ("Name: value", NULL-terminated list).
int coord_fetch_headers(const char *method, const char *url,
    const char *const *headers, const char *content_type, const char *body,
    size_t body_len, int64_t timeout_ms, struct coord_fetch_reply *reply)
    __attribute__((warn_unused_result));

// URL-escapes `s` into a new string (free()). NULL on ENOMEM.
char *coord_fetch_escape(const char *s);

// Once per process, before threads start.
void coord_fetch_global_init(void);

#endif
