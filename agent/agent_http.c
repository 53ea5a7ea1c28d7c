// SPDX-License-Identifier: MIT
// agent_http: probes and actions over one curl multi handle.
#include "agent_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"

struct agent_http {
	CURLM *multi;
};

int
agent_http_new(struct agent_http **ret)
{
	struct agent_http *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return -ENOMEM;
	h->multi = curl_multi_init();
	if (h->multi == NULL) {
		free(h);
		return -ENOMEM;
	}
	*ret = h;
	return 0;
}

void
agent_http_free(struct agent_http *h)
{
	if (h == NULL)
		return;
	curl_multi_cleanup(h->multi);
	free(h);
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
	SET(CURLOPT_URL, url);
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
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	return rv;
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
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	return rv;
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
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
}

int
agent_http_poll(struct agent_http *h, struct curl_waitfd *fds, unsigned n,
    int timeout_ms)
{
	CURLMcode mc;

	for (unsigned i = 0; i < n; i++)
		fds[i].revents = 0;
	mc = curl_multi_poll(h->multi, fds, n, timeout_ms, NULL);
	if (mc != CURLM_OK) {
		cm_err("http.poll", "error=%s", cm_q(curl_multi_strerror(mc)));
		return -EIO;
	}
	return 0;
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
		snprintf(reason, sizeof(reason), "HTTP %ld", status);
	else
		failure_reason(r, res, status, elapsed, reason, sizeof(reason));
	(void)curl_multi_remove_handle(r->http->multi, r->easy);
	r->active = false;
	r->done(r, ok, status, reason, elapsed, r->arg);
}

void
agent_http_perform(struct agent_http *h, int64_t now)
{
	CURLMsg *m;
	int running, left;

	(void)curl_multi_perform(h->multi, &running);
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
agent_http_wakeup(struct agent_http *h)
{
	(void)curl_multi_wakeup(h->multi);
}
