// SPDX-License-Identifier: MIT
// agent_http: the agent's HTTP client on one curl multi handle: health
// probes (GET, one reused easy handle per instance, keep-alive; or, for
// TCP probes, only a connection), and the clear_cache action (POST). It
// is also the main loop's poller: one epoll set holds curl's sockets
// (kept up to date through CURLMOPT_SOCKETFUNCTION, curl's timeouts come
// through CURLMOPT_TIMERFUNCTION), the fds the loop registers once with
// agent_http_watch() (signalfd, children's output pipes) and an eventfd
// that agent_http_wakeup() writes from other threads. agent_http_poll()
// waits on that set; agent_http_perform() hands curl only the sockets
// that are ready (curl_multi_socket_action), so a wake-up costs the same
// with 1 or 1,000 watched fds.
//
// Threads: everything here runs on the main loop thread, except
// agent_http_wakeup(), which any thread may call while the object lives.
#ifndef AGENT_HTTP_H
#define AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define AGENT_HTTP_BODY_MAX (1024 * 1024) // larger responses fail
#define AGENT_HTTP_KEEP 256		  // body bytes kept for messages

struct agent_http;
struct agent_http_req;

// Called on the loop thread from agent_http_perform() when a request
// finished: ok (2xx/3xx), status (HTTP code or 0), a one-line reason
// ("HTTP 500", "Connection refused", "timed out after 1000 ms") and
// the elapsed milliseconds. The request may be restarted from here.
typedef void (*agent_http_done_fn)(struct agent_http_req *r, bool ok,
    long status, const char *reason, int64_t elapsed_ms, void *arg);

// One reusable request. Embed it in its owner, set it up with
// agent_http_req_init(), release it with agent_http_req_fini().
struct agent_http_req {
	CURL *easy;
	CURLU *uh;	   // the parsed URL the easy handle reads, or NULL
	struct agent_http *http;
	agent_http_done_fn done;
	void *arg;
	bool active;	   // added to the multi handle, not finished yet
	bool connect_only; // TCP probe: done once connected
	int64_t start_ms;  // monotonic
	int64_t timeout_ms;
	size_t body_len;   // bytes received so far
	char body[AGENT_HTTP_KEEP + 1]; // first bytes of the body
	char errbuf[CURL_ERROR_SIZE];
};

// Creates the multi handle. Returns 0 and *ret (free with
// agent_http_free) or -ENOMEM. Call curl_global_init() first.
int agent_http_new(struct agent_http **ret)
    __attribute__((warn_unused_result));

// Cancels nothing by itself: every request must have been fini'd before
// (fini uses h). NULL-safe.
void agent_http_free(struct agent_http *h);

// Prepares r for `url` (copied by curl) with method GET (post = false)
// or an empty POST, a whole-request timeout, no proxy, no redirects,
// http only. Returns 0 or -ENOMEM / -EINVAL. r must be zeroed or fini'd.
int agent_http_req_init(struct agent_http *h, struct agent_http_req *r,
    const char *url, bool post, int64_t timeout_ms, agent_http_done_fn done,
    void *arg) __attribute__((warn_unused_result));

// Like agent_http_req_init with method "GET", "POST" or "PUT" (the last
// two with an empty body). Returns 0 or -ENOMEM / -EINVAL.
int agent_http_req_init_method(struct agent_http *h, struct agent_http_req *r,
    const char *url, const char *method, int64_t timeout_ms,
    agent_http_done_fn done, void *arg) __attribute__((warn_unused_result));

// Like agent_http_req_init for a TCP probe: r only opens a connection to
// the host and port of `url` (http://HOST:PORT/) and succeeds once it is
// open (status 0, reason "connected"); the connection is closed when r
// finishes. Returns 0 or -ENOMEM / -EINVAL.
int agent_http_req_init_connect(struct agent_http *h, struct agent_http_req *r,
    const char *url, int64_t timeout_ms, agent_http_done_fn done, void *arg)
    __attribute__((warn_unused_result));

// Starts r (no-op if already active). Returns 0 or -EIO. `now` is
// cm_mono_ms().
int agent_http_req_start(struct agent_http_req *r, int64_t now)
    __attribute__((warn_unused_result));

// Aborts r if active; done is not called. Idempotent.
void agent_http_req_cancel(struct agent_http_req *r);

// Cancels and releases the easy handle and the parsed URL. NULL-safe,
// idempotent.
void agent_http_req_fini(struct agent_http_req *r);

#define AGENT_HTTP_EVENTS 64 // events taken per agent_http_poll()

// Adds fd to the poll set (readable, level-triggered): agent_http_poll()
// reports `tag` (not NULL) while fd is readable. fd stays the caller's;
// call agent_http_unwatch() before closing it. Returns 0, -EINVAL
// (fd < 0 or tag NULL) or a negative errno from epoll_ctl. Main thread.
int agent_http_watch(struct agent_http *h, int fd, void *tag)
    __attribute__((warn_unused_result));

// Removes fd from the poll set (no-op if it is not there). Main thread.
void agent_http_unwatch(struct agent_http *h, int fd);

// Waits up to timeout_ms (-1: without limit; less if curl has a timer
// due) for curl's sockets, the watched fds or a wakeup. Writes the tags
// of the readable watched fds into tags (room for AGENT_HTTP_EVENTS) and
// returns how many, or -EIO. Remembers curl's ready sockets for
// agent_http_perform(). Main thread.
int agent_http_poll(struct agent_http *h, int timeout_ms, void **tags);

// Drives the transfers whose sockets were ready or whose timer is due
// and calls done for the finished ones. Main thread.
void agent_http_perform(struct agent_http *h, int64_t now);

// Makes the running or next agent_http_poll() return. Writes the eventfd
// only if no wakeup is pending since the last poll, so a burst of
// requests costs one write. Any thread; never blocks.
void agent_http_wakeup(struct agent_http *h);

#endif
