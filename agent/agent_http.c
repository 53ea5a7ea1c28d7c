// SPDX-License-Identifier: MIT
// agent_http: probes and actions over one curl multi handle.
#include "agent_http.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_time.h"

// What an epoll event's data says: the fd in the low 32 bits, and whose
// it is in the bits above.
#define EV_CURL 0ULL
#define EV_WATCHED (1ULL << 32)
#define EV_WAKE (2ULL << 32)
#define EV_KIND (3ULL << 32)

struct ready_sock {
	int fd;
	int what; // CURL_CSELECT_* bits
};

struct agent_http {
	CURLM *multi;
	int epfd;
	int evfd;		// eventfd written by agent_http_wakeup()
	atomic_bool wake_pending; // evfd written since the last poll
	int64_t timer_ms;	// curl's timer: monotonic deadline, -1 none
	void **tags;		// by fd: the tag of a watched fd, or NULL
	size_t n_tags;
	struct ready_sock ready[AGENT_HTTP_EVENTS]; // for perform
	unsigned n_ready;
	long n_reqs;		// requests between req_init and req_fini
};

// CURLMOPT_SOCKETFUNCTION: keeps curl's socket s in the epoll set with
// the events curl wants. socketp is non-NULL once s was added.
static int
on_socket(CURL *e, curl_socket_t s, int what, void *arg, void *socketp)
{
	struct agent_http *h = arg;
	struct epoll_event ev = { .data.u64 = EV_CURL | (uint32_t)s };
	int op = socketp != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		// curl tells us before it closes s.
		(void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
	    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	// socketp goes wrong only if curl reuses a number it did not
	// announce as removed; then the other operation is the right one.
	if (epoll_ctl(h->epfd, op, s, &ev) < 0 && ((errno != EEXIST &&
	    errno != ENOENT) || epoll_ctl(h->epfd, op == EPOLL_CTL_ADD ?
	    EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0))
		// Only ENOMEM/ENOSPC are left: the transfer then ends at
		// its timeout.
		cm_err("http.epoll", "fd=%d error=%s", (int)s,
		    cm_q(strerror(errno)));
	if (socketp == NULL)
		(void)curl_multi_assign(h->multi, s, h);
	return 0;
}

// CURLMOPT_TIMERFUNCTION: when curl wants agent_http_perform() to run
// for its timeouts (-1: no timer).
static int
on_timer(CURLM *m, long timeout_ms, void *arg)
{
	struct agent_http *h = arg;

	(void)m;
	h->timer_ms = timeout_ms < 0 ? -1 : cm_mono_ms() + timeout_ms;
	return 0;
}

static int
http_setup(struct agent_http *h)
{
	struct epoll_event ev = { .events = EPOLLIN };

	h->multi = curl_multi_init();
	if (h->multi == NULL)
		return -ENOMEM;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket)
	    != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer) !=
	    CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
		return -EINVAL;
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0)
		return -errno;
	h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->evfd < 0)
		return -errno;
	ev.data.u64 = EV_WAKE | (uint32_t)h->evfd;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) < 0)
		return -errno;
	return 0;
}

int
agent_http_new(struct agent_http **ret)
{
	struct agent_http *h = calloc(1, sizeof(*h));
	int rv;

	if (h == NULL)
		return -ENOMEM;
	h->epfd = -1;
	h->evfd = -1;
	h->timer_ms = -1;
	rv = http_setup(h);
	if (rv < 0) {
		agent_http_free(h);
		return rv;
	}
	*ret = h;
	return 0;
}

void
agent_http_free(struct agent_http *h)
{
	if (h == NULL)
		return;
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi); // may still call on_socket
	if (h->evfd >= 0)
		close(h->evfd);
	if (h->epfd >= 0)
		close(h->epfd);
	free(h->tags);
	free(h);
}

int
agent_http_watch(struct agent_http *h, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN,
		.data.u64 = EV_WATCHED | (uint32_t)fd };

	if (fd < 0 || tag == NULL)
		return -EINVAL;
	if ((size_t)fd >= h->n_tags) {
		size_t n = h->n_tags ? h->n_tags : 64;
		void **v;

		while (n <= (size_t)fd)
			n *= 2;
		v = realloc(h->tags, n * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		memset(v + h->n_tags, 0, (n - h->n_tags) * sizeof(*v));
		h->tags = v;
		h->n_tags = n;
	}
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	h->tags[fd] = tag;
	return 0;
}

void
agent_http_unwatch(struct agent_http *h, int fd)
{
	if (fd < 0 || (size_t)fd >= h->n_tags || h->tags[fd] == NULL)
		return;
	(void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
	h->tags[fd] = NULL;
}

// Lets curl keep one idle connection per request. By default it keeps 4
// per easy handle *in* the multi handle, and probes leave it as they end:
// a probe that ended while fewer than a quarter of the kept connections'
// probes were running closed the oldest idle one, which the next probe
// of its instance then had to reconnect.
static void
count_reqs(struct agent_http *h, long delta)
{
	h->n_reqs += delta;
	(void)curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	    h->n_reqs > 0 ? h->n_reqs : 1L);
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct agent_http_req *r = arg;
	size_t n = size * nmemb;

	if (r->body_len < AGENT_HTTP_KEEP) {
		size_t k = AGENT_HTTP_KEEP - r->body_len;

		k = k < n ? k : n;
		memcpy(r->body + r->body_len, data, k);
		r->body[r->body_len + k] = '\0';
	}
	r->body_len += n;
	return r->body_len > AGENT_HTTP_BODY_MAX ? 0 : n;
}

// The easy handle first: it reads the parsed URL until it is cleaned up.
static void
release(struct agent_http_req *r)
{
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	curl_url_cleanup(r->uh);
	r->uh = NULL;
}

static int
setup_easy(struct agent_http_req *r, const char *url, const char *method)
{
	bool post = strcmp(method, "POST") == 0, put = strcmp(method, "PUT")
	    == 0;
	CURL *e = r->easy;
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                   \
	do {                                            \
		if (c == CURLE_OK)                      \
			c = curl_easy_setopt(e, opt, val); \
	} while (0)
	// A parsed URL saves curl parsing and printing it again on every
	// transfer (about a tenth of a keep-alive probe's instructions).
	// curl parses a string URL with these flags too; one they reject
	// stays a string and fails each transfer as before.
	r->uh = curl_url();
	if (r->uh != NULL && curl_url_set(r->uh, CURLUPART_URL, url,
	    CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
		SET(CURLOPT_CURLU, r->uh);
	} else {
		curl_url_cleanup(r->uh);
		r->uh = NULL;
		SET(CURLOPT_URL, url);
	}
	SET(CURLOPT_PROTOCOLS_STR, "http");
	SET(CURLOPT_PROXY, ""); // never through an environment proxy
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_PRIVATE, r);
	SET(CURLOPT_USERAGENT, "reflex-agent");
	if (!post && !put && strcmp(method, "GET") != 0)
		return -EINVAL;
	if (post || put) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, "");
		SET(CURLOPT_POSTFIELDSIZE, 0L);
	}
	if (put)
		SET(CURLOPT_CUSTOMREQUEST, "PUT");
	if (r->connect_only) {
		SET(CURLOPT_CONNECT_ONLY, 1L);
		SET(CURLOPT_FORBID_REUSE, 1L);
		SET(CURLOPT_FRESH_CONNECT, 1L);
	}
#undef SET
	return c == CURLE_OK ? 0 : -EINVAL;
}

int
agent_http_req_init(struct agent_http *h, struct agent_http_req *r,
    const char *url, bool post, int64_t timeout_ms, agent_http_done_fn done,
    void *arg)
{
	return agent_http_req_init_method(h, r, url, post ? "POST" : "GET",
	    timeout_ms, done, arg);
}

int
agent_http_req_init_method(struct agent_http *h, struct agent_http_req *r,
    const char *url, const char *method, int64_t timeout_ms,
    agent_http_done_fn done, void *arg)
{
	int rv;

	memset(r, 0, sizeof(*r));
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		return -ENOMEM;
	r->http = h;
	r->done = done;
	r->arg = arg;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	rv = setup_easy(r, url, method);
	if (rv < 0) {
		release(r);
		return rv;
	}
	count_reqs(h, 1);
	return 0;
}

int
agent_http_req_init_connect(struct agent_http *h, struct agent_http_req *r,
    const char *url, int64_t timeout_ms, agent_http_done_fn done, void *arg)
{
	int rv;

	memset(r, 0, sizeof(*r));
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		return -ENOMEM;
	r->http = h;
	r->done = done;
	r->arg = arg;
	r->connect_only = true;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	rv = setup_easy(r, url, "GET");
	if (rv < 0) {
		release(r);
		return rv;
	}
	count_reqs(h, 1);
	return 0;
}

int
agent_http_req_start(struct agent_http_req *r, int64_t now)
{
	if (r->active)
		return 0;
	r->body_len = 0;
	r->body[0] = '\0';
	r->errbuf[0] = '\0';
	r->start_ms = now;
	if (curl_multi_add_handle(r->http->multi, r->easy) != CURLM_OK)
		return -EIO;
	r->active = true;
	return 0;
}

void
agent_http_req_cancel(struct agent_http_req *r)
{
	if (r == NULL || !r->active)
		return;
	(void)curl_multi_remove_handle(r->http->multi, r->easy);
	r->active = false;
}

void
agent_http_req_fini(struct agent_http_req *r)
{
	if (r == NULL || r->easy == NULL)
		return;
	agent_http_req_cancel(r);
	release(r);
	count_reqs(r->http, -1);
}

// Takes the wakeup: reads the eventfd, then allows the next write. Any
// request queued after this point writes again; one queued before it is
// seen by the loop's work after this poll.
static void
take_wakeup(struct agent_http *h)
{
	uint64_t v;

	if (read(h->evfd, &v, sizeof(v)) < 0) {
		// EAGAIN: already taken; nothing else can fail here
	}
	atomic_store(&h->wake_pending, false);
}

static int
curl_what(uint32_t events)
{
	return (events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
	    (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
	    (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
}

int
agent_http_poll(struct agent_http *h, int timeout_ms, void **tags)
{
	struct epoll_event ev[AGENT_HTTP_EVENTS];
	int n, k = 0;

	if (h->timer_ms >= 0) {
		int64_t left = h->timer_ms - cm_mono_ms();

		left = left < 0 ? 0 : left;
		if (timeout_ms < 0 || left < timeout_ms)
			timeout_ms = (int)left;
	}
	n = epoll_wait(h->epfd, ev, AGENT_HTTP_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR) {
		cm_err("http.poll", "error=%s", cm_q(strerror(errno)));
		return -EIO;
	}
	for (int i = 0; i < n; i++) {
		uint64_t kind = ev[i].data.u64 & EV_KIND;
		int fd = (int)(uint32_t)ev[i].data.u64;

		if (kind == EV_WAKE) {
			take_wakeup(h);
		} else if (kind == EV_WATCHED) {
			if ((size_t)fd < h->n_tags && h->tags[fd] != NULL)
				tags[k++] = h->tags[fd];
		} else if (h->n_ready < AGENT_HTTP_EVENTS) {
			h->ready[h->n_ready++] = (struct ready_sock){ .fd = fd,
				.what = curl_what(ev[i].events) };
		}
	}
	return k;
}

// One line saying why a finished transfer failed.
static void
failure_reason(struct agent_http_req *r, CURLcode res, long status,
    int64_t elapsed, char *buf, size_t n)
{
	if (res == CURLE_OK)
		snprintf(buf, n, "HTTP %ld", status);
	else if (res == CURLE_OPERATION_TIMEDOUT)
		snprintf(buf, n, "timed out after %lld ms", (long long)elapsed);
	else if (res == CURLE_WRITE_ERROR)
		snprintf(buf, n, "response body larger than %d bytes",
		    AGENT_HTTP_BODY_MAX);
	else
		snprintf(buf, n, "%s", r->errbuf[0] ? r->errbuf :
		    curl_easy_strerror(res));
}

// "HTTP <status>", by hand for the 3 digits every answer has: it runs for
// every probe, and snprintf was most of finish()'s own instructions.
static void
http_reason(char *buf, size_t n, long status)
{
	if (n < 9 || status < 100 || status > 999) {
		snprintf(buf, n, "HTTP %ld", status);
		return;
	}
	memcpy(buf, "HTTP ", 5);
	buf[5] = (char)('0' + status / 100);
	buf[6] = (char)('0' + status / 10 % 10);
	buf[7] = (char)('0' + status % 10);
	buf[8] = '\0';
}

static void
finish(struct agent_http_req *r, CURLcode res, int64_t now)
{
	long status = 0;
	int64_t elapsed = now - r->start_ms;
	char reason[CURL_ERROR_SIZE + 64];
	bool ok;

	if (res == CURLE_OK && !r->connect_only)
		(void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
		    &status);
	ok = res == CURLE_OK && (r->connect_only || (status >= 200 &&
	    status < 400));
	if (ok && r->connect_only)
		snprintf(reason, sizeof(reason), "connected");
	else if (ok)
		http_reason(reason, sizeof(reason), status);
	else
		failure_reason(r, res, status, elapsed, reason, sizeof(reason));
	(void)curl_multi_remove_handle(r->http->multi, r->easy);
	r->active = false;
	r->done(r, ok, status, reason, elapsed, r->arg);
}

// Reads what curl finished and calls the done callbacks.
static void
take_done(struct agent_http *h, int64_t now)
{
	CURLMsg *m;
	int left;

	for (;;) {
		struct agent_http_req *r = NULL;

		m = curl_multi_info_read(h->multi, &left);
		if (m == NULL)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &r);
		if (r != NULL && r->active)
			finish(r, m->data.result, now);
	}
}

void
agent_http_perform(struct agent_http *h, int64_t now)
{
	int running;

	// A socket closed by an earlier action in this batch is unknown to
	// curl by now, and curl ignores it; one reopened under the same
	// number sees a spurious event, which curl tolerates.
	for (unsigned i = 0; i < h->n_ready; i++)
		(void)curl_multi_socket_action(h->multi, h->ready[i].fd,
		    h->ready[i].what, &running);
	h->n_ready = 0;
	if (h->timer_ms >= 0 && now >= h->timer_ms) {
		h->timer_ms = -1;
		(void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0,
		    &running);
	}
	take_done(h, now);
}

void
agent_http_wakeup(struct agent_http *h)
{
	uint64_t one = 1;

	if (atomic_exchange(&h->wake_pending, true))
		return; // the loop has not taken the last one yet
	if (write(h->evfd, &one, sizeof(one)) < 0) {
		// EAGAIN only at a counter of 2^64 - 2: it is readable then
	}
}
