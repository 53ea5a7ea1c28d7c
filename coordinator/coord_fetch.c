// SPDX-License-Identifier: MIT
// coord_fetch: bounded blocking HTTP over libcurl.
#include "coord_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
	char *buf;
	size_t len, cap;
	bool too_big;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t k = size * n;

	if (s->len + k > COORD_FETCH_MAX_BODY) {
		s->too_big = true;
		return 0; // aborts the transfer
	}
	if (s->len + k + 1 > s->cap) {
		size_t ncap = (s->len + k + 1) * 2;
		char *nb = realloc(s->buf, ncap);

		if (nb == NULL)
			return 0;
		s->buf = nb;
		s->cap = ncap;
	}
	memcpy(s->buf + s->len, p, k);
	s->len += k;
	s->buf[s->len] = '\0';
	return k;
}

void
coord_fetch_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
coord_fetch(const char *method, const char *url, const char *content_type,
    const char *body, size_t body_len, int64_t timeout_ms,
    struct coord_fetch_reply *reply)
{
	return coord_fetch_headers(method, url, NULL, content_type, body,
	    body_len, timeout_ms, reply);
}

int
coord_fetch_headers(const char *method, const char *url,
    const char *const *headers, const char *content_type, const char *body,
    size_t body_len, int64_t timeout_ms, struct coord_fetch_reply *reply)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = { 0 };
	char ct[128];
	CURL *c;
	CURLcode rc;
	int rv = 0;

	memset(reply, 0, sizeof(*reply));
	c = curl_easy_init();
	if (c == NULL)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); // never the environment's
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "reflex-coordinator");
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hdrs = curl_slist_append(hdrs, headers[i]);
	if (strcmp(method, "POST") == 0) {
		snprintf(ct, sizeof(ct), "Content-Type: %s",
		    content_type != NULL ? content_type : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body_len);
	}
	if (hdrs != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (strncmp(url, "https://", 8) == 0 && getenv("REFLEX_CA_FILE") != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, getenv("REFLEX_CA_FILE"));
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
		if (s.buf == NULL)
			s.buf = calloc(1, 1);
		reply->body = s.buf;
		reply->len = s.len;
		if (reply->body == NULL)
			rv = -ENOMEM;
	} else {
		snprintf(reply->error, sizeof(reply->error), "%s",
		    curl_easy_strerror(rc));
		free(s.buf);
		rv = s.too_big ? -EMSGSIZE : rc == CURLE_OPERATION_TIMEDOUT ?
		    -ETIMEDOUT : -EIO;
		if (s.too_big)
			snprintf(reply->error, sizeof(reply->error),
			    "answer larger than %d bytes", COORD_FETCH_MAX_BODY);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rv;
}

char *
coord_fetch_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *out;

	if (e == NULL)
		return NULL;
	out = strdup(e); // callers free() it, curl's copy needs curl_free
	curl_free(e);
	return out;
}
