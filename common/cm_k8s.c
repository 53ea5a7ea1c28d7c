// SPDX-License-Identifier: MIT
// cm_k8s: the Kubernetes API client core: handle pool, rate limit,
// token refresh, retries and Status errors (see cm_k8s.h).
#include "cm_k8s.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_time.h"

#define TOKEN_MAX (64 * 1024)
#define RETRY_AFTER_MAX 64

struct cm_k8s {
	struct cm_k8s_settings set; // numbers only; strings not kept
	struct cm_k8s_endpoint ep;
	char *base;		// URL prefix requests go to
	char *connect_to;	// CURLOPT_CONNECT_TO entry, or NULL
	struct curl_slist *connect_list;

	CURLSH *share; // DNS cache and TLS sessions
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_mu; // idle easy handles
	CURL **pool;
	size_t n_pool, cap_pool;

	pthread_mutex_t rl_mu; // token bucket
	double tokens;
	int64_t rl_last_us;

	pthread_mutex_t tok_mu; // bearer token from token_file
	char *tok;
	struct timespec tok_mtime;
	ino_t tok_ino;
	off_t tok_size;
	int64_t tok_checked_ms;

	atomic_llong n_requests, n_retries, n_throttled, n_reauth;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rv;

static void
curl_init_once(void)
{
	curl_init_rv = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); // cannot fail for this id
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

// ---------------------------------------------------------------------
// Share locks, handle pool

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *arg)
{
	struct cm_k8s *k = arg;

	(void)h;
	(void)acc;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&k->share_mu[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct cm_k8s *k = arg;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&k->share_mu[data]);
}

static CURL *
handle_take(struct cm_k8s *k)
{
	CURL *h = NULL;

	pthread_mutex_lock(&k->pool_mu);
	if (k->n_pool > 0)
		h = k->pool[--k->n_pool];
	pthread_mutex_unlock(&k->pool_mu);
	if (h == NULL)
		h = curl_easy_init();
	else
		curl_easy_reset(h);
	return h;
}

// Keeps the handle (and its open connections) for the next request.
static void
handle_give(struct cm_k8s *k, CURL *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&k->pool_mu);
	if (k->n_pool == k->cap_pool) {
		size_t cap = k->cap_pool ? k->cap_pool * 2 : 4;
		CURL **p = cap <= 64 ? realloc(k->pool, cap * sizeof(*p)) : NULL;

		if (p != NULL) {
			k->pool = p;
			k->cap_pool = cap;
		}
	}
	if (k->n_pool < k->cap_pool) {
		k->pool[k->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&k->pool_mu);
	if (h != NULL)
		curl_easy_cleanup(h);
}

// ---------------------------------------------------------------------
// Rate limit: one token bucket per client. A caller reserves a token
// (the count may go negative) and sleeps until its reservation is due,
// so waiting threads are served in order and the long-run rate never
// exceeds qps after the initial burst.

static void
rate_acquire(struct cm_k8s *k)
{
	int64_t now, wait_us = 0;
	double qps = (double)k->set.qps, burst = (double)k->set.burst;

	pthread_mutex_lock(&k->rl_mu);
	now = mono_us();
	k->tokens += (double)(now - k->rl_last_us) * qps / 1e6;
	if (k->tokens > burst)
		k->tokens = burst;
	k->rl_last_us = now;
	k->tokens -= 1.0;
	if (k->tokens < 0)
		wait_us = (int64_t)(-k->tokens * 1e6 / qps) + 1;
	pthread_mutex_unlock(&k->rl_mu);
	if (wait_us > 0) {
		atomic_fetch_add(&k->n_throttled, 1);
		sleep_ms((wait_us + 999) / 1000);
	}
}

// ---------------------------------------------------------------------
// Bearer token

// Reads the token file: at most TOKEN_MAX bytes, trailing white space
// trimmed, no control characters (it goes into a header line).
static int
token_read(const char *path, char **ret, struct stat *ret_st)
{
	char *buf = NULL;
	ssize_t n;
	size_t len = 0, i;
	int fd, rv = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0) {
		rv = -errno;
		goto out;
	}
	buf = malloc(TOKEN_MAX + 1);
	if (buf == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	while (len <= TOKEN_MAX) {
		n = read(fd, buf + len, TOKEN_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > TOKEN_MAX) {
		rv = -EFBIG;
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	    buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	for (i = 0; i < len; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			rv = -EINVAL;
			goto out;
		}
	}
	if (len == 0) {
		rv = -ENODATA;
		goto out;
	}
	*ret = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rv;
}

// Re-reads the token file when it changed (checked at most every
// token_recheck_ms unless `force`). Returns true if the token changed.
static bool
token_refresh(struct cm_k8s *k, bool force)
{
	struct stat st;
	char *t = NULL;
	bool changed = false;
	int64_t now = cm_mono_ms();
	int rv;

	if (k->ep.token_file == NULL)
		return false;
	pthread_mutex_lock(&k->tok_mu);
	if (!force && k->tok != NULL &&
	    now - k->tok_checked_ms < k->set.token_recheck_ms)
		goto out;
	k->tok_checked_ms = now;
	if (stat(k->ep.token_file, &st) < 0) {
		cm_warn("k8s.token", "file=%s err=%s, keeping the old token",
		    cm_q(k->ep.token_file), strerror(errno));
		goto out;
	}
	if (!force && k->tok != NULL && st.st_ino == k->tok_ino &&
	    st.st_size == k->tok_size &&
	    st.st_mtim.tv_sec == k->tok_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == k->tok_mtime.tv_nsec)
		goto out;
	rv = token_read(k->ep.token_file, &t, &st);
	if (rv < 0) {
		cm_warn("k8s.token", "file=%s err=%s, keeping the old token",
		    cm_q(k->ep.token_file), strerror(-rv));
		goto out;
	}
	changed = k->tok == NULL || strcmp(k->tok, t) != 0;
	free(k->tok);
	k->tok = t;
	k->tok_ino = st.st_ino;
	k->tok_size = st.st_size;
	k->tok_mtime = st.st_mtim;
	if (changed)
		cm_info("k8s.token", "file=%s event=reloaded",
		    cm_q(k->ep.token_file));
out:
	pthread_mutex_unlock(&k->tok_mu);
	return changed;
}

// "Authorization: Bearer ..." for this attempt, new string or NULL.
static char *
auth_header(struct cm_k8s *k)
{
	char *h = NULL;
	const char *t;

	token_refresh(k, false);
	pthread_mutex_lock(&k->tok_mu);
	t = k->tok != NULL ? k->tok : k->ep.token;
	if (t != NULL && asprintf(&h, "Authorization: Bearer %s", t) < 0)
		h = NULL;
	pthread_mutex_unlock(&k->tok_mu);
	return h;
}

// ---------------------------------------------------------------------
// Status objects

static void
copy_clean(char *dst, size_t n, const char *src)
{
	size_t i;

	if (n == 0)
		return;
	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < n; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ?
		    '?' : src[i];
	dst[i] = '\0';
}

static const char *
reason_for_code(long code)
{
	switch (code) {
	case 400: return "BadRequest";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "NotFound";
	case 405: return "MethodNotAllowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 415: return "UnsupportedMediaType";
	case 422: return "Invalid";
	case 429: return "TooManyRequests";
	case 500: return "InternalError";
	case 503: return "ServiceUnavailable";
	case 504: return "Timeout";
	default: return "";
	}
}

void
cm_k8s_status_parse(struct cm_k8s_status *ret, long code, const char *body,
    size_t len, const char *retry_after_hdr)
{
	cJSON *j = NULL;
	const cJSON *causes, *c;
	const char *s;
	int64_t v;

	memset(ret, 0, sizeof(*ret));
	ret->code = code;
	ret->retry_after_s = -1;
	if (body != NULL && len > 0)
		j = cJSON_ParseWithLength(body, len);
	s = cm_k8s_str(j, "kind", NULL);
	if (j != NULL && s != NULL && strcmp(s, "Status") == 0) {
		copy_clean(ret->reason, sizeof(ret->reason),
		    cm_k8s_str(j, "reason", NULL));
		copy_clean(ret->message, sizeof(ret->message),
		    cm_k8s_str(j, "message", NULL));
		copy_clean(ret->kind, sizeof(ret->kind),
		    cm_k8s_str(j, "details", "kind", NULL));
		copy_clean(ret->name, sizeof(ret->name),
		    cm_k8s_str(j, "details", "name", NULL));
		if (cm_k8s_int(j, &v, "details", "retryAfterSeconds", NULL) ==
		    0 && v >= 0)
			ret->retry_after_s = v;
		causes = cm_k8s_at(j, "details", "causes", NULL);
		cJSON_ArrayForEach(c, causes) {
			struct cm_k8s_cause *cc;

			if (ret->n_causes == CM_K8S_MAX_CAUSES)
				break;
			cc = &ret->causes[ret->n_causes++];
			copy_clean(cc->type, sizeof(cc->type),
			    cm_k8s_str(c, "reason", NULL));
			copy_clean(cc->message, sizeof(cc->message),
			    cm_k8s_str(c, "message", NULL));
			copy_clean(cc->field, sizeof(cc->field),
			    cm_k8s_str(c, "field", NULL));
		}
	} else if (body != NULL && len > 0) {
		// Not a Status (a proxy, a load balancer): keep the start of
		// the text so the operator sees what answered.
		char tmp[160];
		size_t n = len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1;

		memcpy(tmp, body, n);
		tmp[n] = '\0';
		copy_clean(ret->message, sizeof(ret->message), tmp);
	}
	if (ret->reason[0] == '\0')
		copy_clean(ret->reason, sizeof(ret->reason),
		    reason_for_code(code));
	if (retry_after_hdr != NULL && ret->retry_after_s < 0) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(retry_after_hdr, &end, 10);
		if (errno == 0 && end != retry_after_hdr && *end == '\0' &&
		    n >= 0)
			ret->retry_after_s = n;
	}
	cJSON_Delete(j);
}

bool
cm_k8s_status_has_cause(const struct cm_k8s_status *st, const char *type)
{
	size_t i;

	for (i = 0; i < st->n_causes; i++)
		if (strcmp(st->causes[i].type, type) == 0)
			return true;
	return false;
}

int
cm_k8s_status_errno(const struct cm_k8s_status *st)
{
	switch (st->code) {
	case 400:
	case 422:
		return -EINVAL;
	case 401:
		return -EACCES;
	case 403:
		return -EPERM;
	case 404:
		return -ENOENT;
	case 405:
	case 415:
		return -EOPNOTSUPP;
	case 409:
		return strcmp(st->reason, "AlreadyExists") == 0 ? -EEXIST :
		    -ESTALE;
	case 429:
		return -EAGAIN;
	default:
		return st->code >= 200 && st->code < 300 ? 0 : -EIO;
	}
}

// ---------------------------------------------------------------------
// One attempt

struct buf {
	char *p;
	size_t len, cap, max;
	bool over;
};

struct attempt {
	struct buf body;
	char retry_after[RETRY_AFTER_MAX];
	long code;
	CURLcode cc;
	char curl_err[CURL_ERROR_SIZE];
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;

	if (b->len + n > b->max) {
		b->over = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nmemb, i = 12, j;
	static const char name[] = "retry-after:";

	if (n > 12 && strncasecmp(data, name, 12) == 0) {
		while (i < n && (data[i] == ' ' || data[i] == '\t'))
			i++;
		for (j = 0; i < n && j + 1 < sizeof(a->retry_after); i++) {
			if (data[i] == '\r' || data[i] == '\n')
				break;
			a->retry_after[j++] = data[i];
		}
		while (j > 0 && (a->retry_after[j - 1] == ' ' ||
		    a->retry_after[j - 1] == '\t'))
			j--;
		a->retry_after[j] = '\0';
	}
	return n;
}

static const char *
content_type(enum cm_k8s_body t)
{
	switch (t) {
	case CM_K8S_BODY_MERGE_PATCH:
		return "Content-Type: application/merge-patch+json";
	case CM_K8S_BODY_JSON_PATCH:
		return "Content-Type: application/json-patch+json";
	case CM_K8S_BODY_STRATEGIC_PATCH:
		return "Content-Type: application/strategic-merge-patch+json";
	default:
		return "Content-Type: application/json";
	}
}

#define SETOPT(h, o, v)                                                     \
	do {                                                                \
		if (curl_easy_setopt((h), (o), (v)) != CURLE_OK)           \
			goto fail;                                          \
	} while (0)

// Sets the TLS and authentication options of the endpoint.
static int
set_tls(struct cm_k8s *k, CURL *h)
{
	struct cm_k8s_endpoint *e = &k->ep;

	if (e->insecure) {
		SETOPT(h, CURLOPT_SSL_VERIFYPEER, 0L);
		SETOPT(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (e->ca_data != NULL) {
		struct curl_blob b = { e->ca_data, e->ca_len,
			CURL_BLOB_NOCOPY };

		SETOPT(h, CURLOPT_CAINFO_BLOB, &b);
	} else if (e->ca_file != NULL) {
		SETOPT(h, CURLOPT_CAINFO, e->ca_file);
	}
	if (e->cert_data != NULL) {
		struct curl_blob b = { e->cert_data, e->cert_len,
			CURL_BLOB_NOCOPY };

		SETOPT(h, CURLOPT_SSLCERT_BLOB, &b);
		SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (e->cert_file != NULL) {
		SETOPT(h, CURLOPT_SSLCERT, e->cert_file);
	}
	if (e->key_data != NULL) {
		struct curl_blob b = { e->key_data, e->key_len,
			CURL_BLOB_NOCOPY };

		SETOPT(h, CURLOPT_SSLKEY_BLOB, &b);
		SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (e->key_file != NULL) {
		SETOPT(h, CURLOPT_SSLKEY, e->key_file);
	}
	if (e->username != NULL) {
		SETOPT(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SETOPT(h, CURLOPT_USERNAME, e->username);
		SETOPT(h, CURLOPT_PASSWORD,
		    e->password != NULL ? e->password : "");
	}
	if (k->connect_list != NULL)
		SETOPT(h, CURLOPT_CONNECT_TO, k->connect_list);
	// Environment proxies are not used: only a kubeconfig proxy-url.
	SETOPT(h, CURLOPT_PROXY, e->proxy_url != NULL ? e->proxy_url : "");
	return 0;
fail:
	return -EINVAL;
}

static int
perform(struct cm_k8s *k, const struct cm_k8s_req *req, const char *payload,
    struct attempt *a)
{
	struct curl_slist *hdrs = NULL, *t;
	char *url = NULL, *auth = NULL;
	CURL *h = NULL;
	int rv = -ENOMEM;

	h = handle_take(k);
	if (h == NULL)
		goto out;
	if (asprintf(&url, "%s%s", k->base, req->path) < 0) {
		url = NULL;
		goto out;
	}
	auth = auth_header(k);
	t = curl_slist_append(hdrs, "Accept: application/json");
	if (t == NULL)
		goto out;
	hdrs = t;
	t = curl_slist_append(hdrs, "Expect:");
	if (t == NULL)
		goto out;
	hdrs = t;
	if (payload != NULL) {
		t = curl_slist_append(hdrs, content_type(req->type));
		if (t == NULL)
			goto out;
		hdrs = t;
	}
	if (auth != NULL) {
		t = curl_slist_append(hdrs, auth);
		if (t == NULL)
			goto out;
		hdrs = t;
	}
	rv = -EINVAL;
	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_SHARE, k->share);
	SETOPT(h, CURLOPT_HTTPHEADER, hdrs);
	SETOPT(h, CURLOPT_USERAGENT, "reflex/0.1");
	SETOPT(h, CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)k->set.timeout_ms);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)k->set.connect_timeout_ms);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(h, CURLOPT_WRITEDATA, &a->body);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_HEADERDATA, a);
	SETOPT(h, CURLOPT_ERRORBUFFER, a->curl_err);
	if (strcmp(req->method, "GET") == 0)
		SETOPT(h, CURLOPT_HTTPGET, 1L);
	else
		SETOPT(h, CURLOPT_CUSTOMREQUEST, req->method);
	if (payload != NULL) {
		SETOPT(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
		SETOPT(h, CURLOPT_POSTFIELDS, payload);
	} else if (strcmp(req->method, "GET") != 0 &&
	    strcmp(req->method, "DELETE") != 0) {
		SETOPT(h, CURLOPT_POSTFIELDSIZE, 0L);
		SETOPT(h, CURLOPT_POSTFIELDS, "");
	}
	if (set_tls(k, h) < 0)
		goto fail;
	atomic_fetch_add(&k->n_requests, 1);
	a->cc = curl_easy_perform(h);
	if (a->cc == CURLE_OK)
		(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->code);
	rv = 0;
	goto out;
fail:
	cm_err("k8s.setopt", "url=%s", cm_q(url));
out:
	// A handle that failed mid-transfer still only holds a connection
	// curl knows to be dead; it is safe to reuse.
	handle_give(k, h);
	curl_slist_free_all(hdrs);
	free(auth);
	free(url);
	return rv;
}

// errno for a transfer that got no complete HTTP reply.
static int
curl_errno(const struct attempt *a)
{
	if (a->body.over)
		return -EFBIG;
	switch (a->cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

static bool
valid_method(const char *m)
{
	static const char *const ok[] = { "GET", "POST", "PUT", "PATCH",
		"DELETE" };
	size_t i;

	for (i = 0; m != NULL && i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(m, ok[i]) == 0)
			return true;
	return false;
}

static bool
valid_path(const char *p)
{
	size_t i;

	if (p == NULL || p[0] != '/' || strlen(p) > 8192)
		return false;
	for (i = 0; p[i] != '\0'; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
		    p[i] == '#' || p[i] == '\\')
			return false;
	return strstr(p, "/../") == NULL && strstr(p, "/./") == NULL;
}

// Delay before retry number `retry` (1-based): backoff * 2^(retry-1),
// capped, with "equal jitter" (half fixed, half random).
static int64_t
backoff_delay(const struct cm_k8s *k, int retry)
{
	static _Thread_local unsigned int seed;
	int64_t d = k->set.backoff_ms;
	int i;

	if (seed == 0)
		seed = (unsigned int)mono_us() ^ (unsigned int)(uintptr_t)&d;
	for (i = 1; i < retry && d < k->set.backoff_max_ms; i++)
		d *= 2;
	if (d > k->set.backoff_max_ms)
		d = k->set.backoff_max_ms;
	return d / 2 + (d > 1 ? rand_r(&seed) % (d / 2 + 1) : 0);
}

static void
resp_fail(struct cm_k8s_resp *r, const struct cm_k8s_req *req,
    const char *fmt, const char *a, const char *b)
{
	char what[320];

	snprintf(what, sizeof(what), fmt, a, b);
	snprintf(r->err, sizeof(r->err), "%s %s: %s", req->method, req->path,
	    what);
}

int
cm_k8s_do(struct cm_k8s *k, const struct cm_k8s_req *req,
    struct cm_k8s_resp *ret)
{
	struct attempt a;
	char *payload = NULL;
	bool post, reauthed = false;
	int rv = 0, tries_left;

	memset(ret, 0, sizeof(*ret));
	ret->status.retry_after_s = -1;
	if (k == NULL || req == NULL || !valid_method(req->method) ||
	    !valid_path(req->path)) {
		snprintf(ret->err, sizeof(ret->err), "invalid request: %s %s",
		    req != NULL && req->method ? req->method : "-",
		    req != NULL && req->path ? req->path : "-");
		return -EINVAL;
	}
	if (req->body != NULL) {
		payload = cJSON_PrintUnformatted(req->body);
		if (payload == NULL) {
			resp_fail(ret, req, "%s%s", "out of memory", "");
			return -ENOMEM;
		}
	}
	post = strcmp(req->method, "POST") == 0;
	tries_left = (req->flags & CM_K8S_F_NO_RETRY) ? 1 :
	    (int)k->set.max_tries;
	for (;;) {
		int64_t wait_ms = -1;
		bool retry = false;

		memset(&a, 0, sizeof(a));
		a.body.max = (size_t)k->set.max_body;
		if (ret->tries > 0)
			atomic_fetch_add(&k->n_retries, 1);
		rate_acquire(k);
		ret->tries++;
		tries_left--;
		rv = perform(k, req, payload, &a);
		if (rv < 0) {
			resp_fail(ret, req, "%s%s", "cannot set up the request",
			    "");
			free(a.body.p);
			break;
		}
		ret->code = a.code;
		if (a.cc != CURLE_OK) {
			rv = curl_errno(&a);
			resp_fail(ret, req, "%s%s", a.body.over ?
			    "reply larger than max_body" : a.curl_err[0] ?
			    a.curl_err : curl_easy_strerror(a.cc), "");
			// A POST that may have reached the server is not
			// repeated; neither are TLS or size problems.
			retry = rv == -ECONNREFUSED ||
			    (!post && (rv == -ETIMEDOUT || rv == -ECONNRESET));
		} else if (a.code >= 200 && a.code < 300) {
			rv = 0;
			if (req->flags & CM_K8S_F_TEXT) {
				char *t = strndup(a.body.len > 0 ? a.body.p : "",
				    a.body.len);

				ret->body = t != NULL ? cJSON_CreateString(t) : NULL;
				free(t);
				if (ret->body == NULL)
					rv = -ENOMEM;
			} else if (a.body.len > 0) {
				ret->body = cJSON_ParseWithLength(a.body.p,
				    a.body.len);
				if (ret->body == NULL) {
					rv = -EBADMSG;
					resp_fail(ret, req, "%s%s",
					    "reply is not JSON", "");
				}
			}
		} else {
			cm_k8s_status_parse(&ret->status, a.code, a.body.p,
			    a.body.len, a.retry_after[0] ? a.retry_after : NULL);
			rv = cm_k8s_status_errno(&ret->status);
			snprintf(ret->err, sizeof(ret->err), "%s %s: %ld %s: %s",
			    req->method, req->path, a.code,
			    ret->status.reason[0] ? ret->status.reason : "-",
			    ret->status.message[0] ? ret->status.message :
			    "(no message)");
			if (a.code == 401 && !reauthed &&
			    k->ep.token_file != NULL) {
				reauthed = true;
				atomic_fetch_add(&k->n_reauth, 1);
				token_refresh(k, true);
				retry = true;
				wait_ms = 0;
				tries_left++; // the re-read is not a retry
			} else if (a.code == 429 &&
			    !(req->flags & CM_K8S_F_NO_RETRY_429)) {
				retry = true;
				if (ret->status.retry_after_s > 0)
					wait_ms = ret->status.retry_after_s *
					    1000;
			} else if (a.code >= 500 && a.code < 600 && !post) {
				retry = true;
				if (ret->status.retry_after_s > 0)
					wait_ms = ret->status.retry_after_s *
					    1000;
			}
		}
		free(a.body.p);
		if (!retry || tries_left <= 0)
			break;
		if (wait_ms < 0)
			wait_ms = backoff_delay(k, ret->tries);
		if (wait_ms > k->set.retry_after_max_ms) {
			snprintf(ret->err + strlen(ret->err),
			    sizeof(ret->err) - strlen(ret->err),
			    " (retry after %llds exceeds the %llds limit)",
			    (long long)wait_ms / 1000,
			    (long long)k->set.retry_after_max_ms / 1000);
			break;
		}
		if (req->deadline_ms > 0 &&
		    cm_mono_ms() + wait_ms >= req->deadline_ms) {
			snprintf(ret->err + strlen(ret->err),
			    sizeof(ret->err) - strlen(ret->err),
			    " (no time left to retry)");
			break;
		}
		cm_info("k8s.retry", "method=%s path=%s code=%ld err=%s "
		    "try=%d wait_ms=%lld", req->method, cm_q(req->path),
		    a.code, cm_q(strerror(-rv)), ret->tries,
		    (long long)wait_ms);
		sleep_ms(wait_ms);
	}
	free(payload);
	if (rv < 0)
		cm_debug("k8s.fail", "err=%s", cm_q(ret->err));
	return rv;
}

static int
simple(struct cm_k8s *k, const char *method, const char *path,
    enum cm_k8s_body type, const cJSON *body, struct cm_k8s_resp *ret)
{
	struct cm_k8s_req req = {
		.method = method, .path = path, .type = type, .body = body,
	};

	return cm_k8s_do(k, &req, ret);
}

int
cm_k8s_get(struct cm_k8s *k, const char *path, struct cm_k8s_resp *ret)
{
	return simple(k, "GET", path, CM_K8S_BODY_JSON, NULL, ret);
}

int
cm_k8s_post(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret)
{
	return simple(k, "POST", path, CM_K8S_BODY_JSON, body, ret);
}

int
cm_k8s_put(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret)
{
	return simple(k, "PUT", path, CM_K8S_BODY_JSON, body, ret);
}

int
cm_k8s_patch(struct cm_k8s *k, const char *path, enum cm_k8s_body type,
    const cJSON *body, struct cm_k8s_resp *ret)
{
	return simple(k, "PATCH", path, type, body, ret);
}

int
cm_k8s_delete(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret)
{
	return simple(k, "DELETE", path, CM_K8S_BODY_JSON, body, ret);
}

void
cm_k8s_resp_clear(struct cm_k8s_resp *r)
{
	if (r == NULL)
		return;
	cJSON_Delete(r->body);
	memset(r, 0, sizeof(*r));
}

// ---------------------------------------------------------------------
// Lifecycle

// Splits the server URL; with a tls-server-name, requests go to that
// name and CURLOPT_CONNECT_TO maps it to the real host, so curl sends it
// as SNI and checks the certificate against it (client-go's ServerName).
static int
setup_base(struct cm_k8s *k, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *url = NULL;
	int rv = -EINVAL;

	if (u == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, k->ep.server, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		snprintf(err, errlen, "server %s: not a valid URL",
		    k->ep.server);
		goto out;
	}
	if (k->ep.tls_server_name != NULL) {
		if (asprintf(&k->connect_to, "%s:%s:%s:%s",
		    k->ep.tls_server_name, port, host, port) < 0) {
			k->connect_to = NULL;
			rv = -ENOMEM;
			goto out;
		}
		k->connect_list = curl_slist_append(NULL, k->connect_to);
		if (k->connect_list == NULL ||
		    curl_url_set(u, CURLUPART_HOST, k->ep.tls_server_name, 0) !=
		    CURLUE_OK ||
		    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
			snprintf(err, errlen, "tls-server-name %s: not usable",
			    k->ep.tls_server_name);
			goto out;
		}
		k->base = strdup(url);
	} else {
		k->base = strdup(k->ep.server);
	}
	if (k->base == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	// The URL API adds a '/' path to a bare host; requests bring theirs.
	while (k->base[0] != '\0' && k->base[strlen(k->base) - 1] == '/')
		k->base[strlen(k->base) - 1] = '\0';
	rv = 0;
out:
	curl_free(url);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rv;
}

int
cm_k8s_new_endpoint(struct cm_k8s **ret, const struct cm_k8s_settings *s,
    struct cm_k8s_endpoint *ep, char *err, size_t errlen)
{
	struct cm_k8s *k = NULL;
	int rv = -ENOMEM, i;

	*ret = NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rv != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		cm_k8s_endpoint_clear(ep);
		return -EIO;
	}
	if (s->qps < 1 || s->burst < 1 || s->max_tries < 1 ||
	    s->timeout_ms < 1 || s->max_body < 1024) {
		snprintf(err, errlen, "kubernetes: qps, burst, max_tries and "
		    "timeout must be >= 1, max_body >= 1024");
		cm_k8s_endpoint_clear(ep);
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		cm_k8s_endpoint_clear(ep);
		return -ENOMEM;
	}
	k->set = *s;
	k->set.kubeconfig = k->set.context = k->set.incluster_dir = NULL;
	k->ep = *ep;
	memset(ep, 0, sizeof(*ep));
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&k->share_mu[i], NULL);
	pthread_mutex_init(&k->pool_mu, NULL);
	pthread_mutex_init(&k->rl_mu, NULL);
	pthread_mutex_init(&k->tok_mu, NULL);
	k->tokens = (double)s->burst;
	k->rl_last_us = mono_us();
	k->share = curl_share_init();
	if (k->share == NULL)
		goto fail;
	if (curl_share_setopt(k->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(k->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(k->share, CURLSHOPT_USERDATA, k) ||
	    curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(k->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION)) {
		snprintf(err, errlen, "curl share setup failed");
		rv = -EIO;
		goto fail;
	}
	rv = setup_base(k, err, errlen);
	if (rv < 0)
		goto fail;
	if (k->ep.token_file != NULL) {
		token_refresh(k, true);
		if (k->tok == NULL && k->ep.token == NULL) {
			snprintf(err, errlen, "token file %s: cannot be read",
			    k->ep.token_file);
			rv = -EACCES;
			goto fail;
		}
	}
	cm_info("k8s.client", "server=%s origin=%s namespace=%s qps=%lld "
	    "burst=%lld", cm_q(k->ep.server), cm_q(k->ep.origin),
	    cm_q(k->ep.ns), (long long)s->qps, (long long)s->burst);
	*ret = k;
	return 0;
fail:
	cm_k8s_free(k);
	return rv;
}

int
cm_k8s_new(struct cm_k8s **ret, const struct cm_k8s_settings *s, char *err,
    size_t errlen)
{
	struct cm_k8s_endpoint ep;
	int rv;

	*ret = NULL;
	rv = cm_k8s_endpoint_resolve(&ep, s, err, errlen);
	if (rv < 0)
		return rv;
	return cm_k8s_new_endpoint(ret, s, &ep, err, errlen);
}

void
cm_k8s_free(struct cm_k8s *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n_pool; i++)
		curl_easy_cleanup(k->pool[i]);
	free(k->pool);
	if (k->share != NULL)
		curl_share_cleanup(k->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&k->share_mu[i]);
	pthread_mutex_destroy(&k->pool_mu);
	pthread_mutex_destroy(&k->rl_mu);
	pthread_mutex_destroy(&k->tok_mu);
	curl_slist_free_all(k->connect_list);
	free(k->connect_to);
	free(k->base);
	free(k->tok);
	cm_k8s_endpoint_clear(&k->ep);
	free(k);
}

const char *
cm_k8s_namespace(const struct cm_k8s *k)
{
	return k->ep.ns != NULL ? k->ep.ns : "default";
}

const char *
cm_k8s_server(const struct cm_k8s *k)
{
	return k->ep.server;
}

void
cm_k8s_counts(struct cm_k8s *k, struct cm_k8s_counts *ret)
{
	ret->requests = atomic_load(&k->n_requests);
	ret->retries = atomic_load(&k->n_retries);
	ret->throttled = atomic_load(&k->n_throttled);
	ret->reauth = atomic_load(&k->n_reauth);
}
