// SPDX-License-Identifier: MIT
// Unit tests for the cm_k8s client against a scripted loopback server:
// headers and bodies, retries (429 with Retry-After and
// retryAfterSeconds, 5xx, dropped connections), what is not retried
// (409, POST on 5xx, oversize), Status parsing, token re-reads, the
// shared rate limit, and PDB-aware eviction (case C14).
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_k8s.h"
#include "cm_log.h"
#include "test_k8s_stub.h"
#include "tt.h"

static struct stub S;
static char tmpdir[64];
static char token_path[128];

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		CHECK(false);
		return;
	}
	fputs(text, f);
	fclose(f);
}

// A client for the stub with fast back-off; `tweak` may adjust settings.
static struct cm_k8s *
client(void (*tweak)(struct cm_k8s_settings *))
{
	struct cm_k8s_settings s;
	struct cm_k8s_endpoint ep = { 0 };
	struct cm_k8s *k = NULL;
	char err[256] = "";

	cm_k8s_settings_default(&s);
	s.qps = 1000;
	s.burst = 1000;
	s.backoff_ms = 1;
	s.backoff_max_ms = 4;
	s.timeout_ms = 3000;
	s.max_tries = 4;
	if (tweak != NULL)
		tweak(&s);
	if (asprintf(&ep.server, "http://127.0.0.1:%d", S.port) < 0)
		return NULL;
	ep.ns = strdup("ns-a");
	ep.token_file = strdup(token_path);
	ep.origin = strdup("test");
	if (cm_k8s_new_endpoint(&k, &s, &ep, err, sizeof(err)) < 0)
		printf("# client: %s\n", err);
	CHECK(k != NULL);
	return k;
}

// Request i as recorded, or an empty one (so checks fail, not crash).
static struct stub_req *
req_at(size_t i)
{
	static struct stub_req none;

	return i < S.n_reqs ? &S.reqs[i] : &none;
}

static void
setup(void)
{
	stub_reset(&S);
	write_file(token_path, "tok-1\n");
}

static const char status_409[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	"\"metadata\":{},\"status\":\"Failure\",\"message\":\"Operation "
	"cannot be fulfilled on deployments.apps \\\"web\\\": the object has "
	"been modified; please apply your changes to the latest version and "
	"try again\",\"reason\":\"Conflict\",\"details\":{\"name\":\"web\","
	"\"group\":\"apps\",\"kind\":\"deployments\"},\"code\":409}";

static const char status_429[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	"\"status\":\"Failure\",\"message\":\"Too many requests, please try "
	"again later.\",\"reason\":\"TooManyRequests\",\"details\":"
	"{\"retryAfterSeconds\":1},\"code\":429}";

static const char status_429_now[] = "{\"kind\":\"Status\",\"apiVersion\":"
	"\"v1\",\"status\":\"Failure\",\"message\":\"slow down\",\"reason\":"
	"\"TooManyRequests\",\"code\":429}";

static void
test_get_sends_headers_and_parses_json(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 200, "", "{\"kind\":\"Deployment\","
	    "\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"7\"}}" });
	CHECK_INT(cm_k8s_get(k, "/apis/apps/v1/namespaces/ns-a/deployments/web",
	    &r), 0);
	CHECK_INT(r.code, 200);
	CHECK_INT(r.tries, 1);
	CHECK_STR(cm_k8s_str(r.body, "metadata", "name", NULL), "web");
	CHECK_INT(stub_count(&S), 1);
	CHECK_STR(req_at(0)->method, "GET");
	CHECK_STR(req_at(0)->path,
	    "/apis/apps/v1/namespaces/ns-a/deployments/web");
	CHECK_STR(req_at(0)->auth, "Bearer tok-1");
	CHECK_STR(cm_k8s_namespace(k), "ns-a");
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_patch_content_types(void)
{
	static const struct {
		enum cm_k8s_body t;
		const char *ct;
	} tbl[] = {
		{ CM_K8S_BODY_MERGE_PATCH, "application/merge-patch+json" },
		{ CM_K8S_BODY_JSON_PATCH, "application/json-patch+json" },
		{ CM_K8S_BODY_STRATEGIC_PATCH,
		  "application/strategic-merge-patch+json" },
	};
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	cJSON *body = cJSON_Parse("{\"spec\":{\"replicas\":3}}");
	size_t i;

	setup();
	k = client(NULL);
	for (i = 0; i < 3; i++) {
		CHECK_INT(cm_k8s_patch(k, "/apis/apps/v1/namespaces/ns-a/"
		    "deployments/web", tbl[i].t, body, &r), 0);
		cm_k8s_resp_clear(&r);
		CHECK_STR(req_at(i)->method, "PATCH");
		CHECK_STR(req_at(i)->ctype, tbl[i].ct);
		CHECK_STR(req_at(i)->body, "{\"spec\":{\"replicas\":3}}");
	}
	CHECK_INT(cm_k8s_post(k, "/api/v1/namespaces/ns-a/events", body, &r), 0);
	cm_k8s_resp_clear(&r);
	CHECK_STR(req_at(3)->ctype, "application/json");
	CHECK_STR(req_at(3)->method, "POST");
	CHECK_INT(cm_k8s_put(k, "/api/v1/namespaces/ns-a/configmaps/c", body,
	    &r), 0);
	cm_k8s_resp_clear(&r);
	CHECK_STR(req_at(4)->method, "PUT");
	CHECK_INT(cm_k8s_delete(k, "/api/v1/namespaces/ns-a/pods/p", NULL, &r),
	    0);
	cm_k8s_resp_clear(&r);
	CHECK_STR(req_at(5)->method, "DELETE");
	CHECK_STR(req_at(5)->body, "");
	cJSON_Delete(body);
	cm_k8s_free(k);
}

static void
test_429_honours_retry_after_header(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 429, "Retry-After: 1\r\n",
	    status_429_now });
	stub_push(&S, (struct stub_resp){ 200, "", "{\"ok\":true}" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/namespaces/ns-a/pods", &r), 0);
	CHECK_INT(r.tries, 2);
	CHECK_INT(stub_count(&S), 2);
	// The second attempt came no earlier than the server asked.
	CHECK(req_at(1)->t_us - req_at(0)->t_us >= 950000);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_429_honours_retry_after_seconds(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 429, "", status_429 });
	stub_push(&S, (struct stub_resp){ 200, "", "{}" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/namespaces/ns-a/pods", &r), 0);
	CHECK_INT(r.tries, 2);
	CHECK(req_at(1)->t_us - req_at(0)->t_us >= 950000);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
three_tries(struct cm_k8s_settings *s)
{
	s->max_tries = 3;
}

static void
test_429_bounded(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	int i;

	setup();
	k = client(three_tries);
	for (i = 0; i < 5; i++)
		stub_push(&S, (struct stub_resp){ 429, "", status_429_now });
	CHECK_INT(cm_k8s_get(k, "/api/v1/namespaces/ns-a/pods", &r), -EAGAIN);
	CHECK_INT(r.tries, 3);
	CHECK_INT(stub_count(&S), 3);
	CHECK_STR(r.status.reason, "TooManyRequests");
	CHECK_HAS(r.err, "429 TooManyRequests: slow down");
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_retry_after_beyond_limit_gives_up(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 429, "Retry-After: 3600\r\n",
	    status_429_now });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -EAGAIN);
	CHECK_INT(stub_count(&S), 1);
	CHECK_HAS(r.err, "exceeds");
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_5xx_retried_for_get_not_post(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	cJSON *b = cJSON_Parse("{}");

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 503, "", "{\"kind\":\"Status\","
	    "\"reason\":\"ServiceUnavailable\",\"code\":503}" });
	stub_push(&S, (struct stub_resp){ 500, "", "{}" });
	stub_push(&S, (struct stub_resp){ 200, "", "{\"a\":1}" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	CHECK_INT(r.tries, 3);
	cm_k8s_resp_clear(&r);

	stub_reset(&S);
	write_file(token_path, "tok-1\n");
	stub_push(&S, (struct stub_resp){ 500, "", "{\"kind\":\"Status\","
	    "\"message\":\"This pod has more than one PodDisruptionBudget, "
	    "which the eviction subresource does not support.\",\"reason\":"
	    "\"InternalError\",\"code\":500}" });
	CHECK_INT(cm_k8s_post(k, "/api/v1/namespaces/ns-a/pods/p/eviction", b,
	    &r), -EIO);
	CHECK_INT(stub_count(&S), 1);
	CHECK_HAS(r.status.message, "more than one PodDisruptionBudget");
	cm_k8s_resp_clear(&r);
	cJSON_Delete(b);
	cm_k8s_free(k);
}

static void
test_409_surfaced_not_retried(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	cJSON *b = cJSON_Parse("{\"metadata\":{\"resourceVersion\":\"1\"}}");

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 409, "", status_409 });
	CHECK_INT(cm_k8s_put(k, "/apis/apps/v1/namespaces/ns-a/deployments/web",
	    b, &r), -ESTALE);
	CHECK_INT(stub_count(&S), 1);
	CHECK_STR(r.status.reason, "Conflict");
	CHECK_STR(r.status.kind, "deployments");
	CHECK_STR(r.status.name, "web");
	CHECK_HAS(r.err, "the object has been modified");
	cm_k8s_resp_clear(&r);

	stub_push(&S, (struct stub_resp){ 409, "", "{\"kind\":\"Status\","
	    "\"reason\":\"AlreadyExists\",\"message\":\"leases.coordination."
	    "k8s.io \\\"x\\\" already exists\",\"code\":409}" });
	CHECK_INT(cm_k8s_post(k, "/apis/coordination.k8s.io/v1/namespaces/"
	    "ns-a/leases", b, &r), -EEXIST);
	cm_k8s_resp_clear(&r);
	cJSON_Delete(b);
	cm_k8s_free(k);
}

static void
test_status_errors(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	cJSON *b = cJSON_Parse("{\"spec\":{\"maxReplicas\":1}}");

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 422, "", "{\"kind\":\"Status\","
	    "\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
	    "\"HorizontalPodAutoscaler.autoscaling \\\"svc-a\\\" is invalid: "
	    "spec.maxReplicas: Invalid value: 1: must be greater than or "
	    "equal to `minReplicas`\",\"reason\":\"Invalid\",\"details\":"
	    "{\"name\":\"svc-a\",\"group\":\"autoscaling\",\"kind\":"
	    "\"HorizontalPodAutoscaler\",\"causes\":[{\"reason\":"
	    "\"FieldValueInvalid\",\"message\":\"Invalid value: 1\","
	    "\"field\":\"spec.maxReplicas\"}]},\"code\":422}" });
	CHECK_INT(cm_k8s_patch(k, "/apis/autoscaling/v2/namespaces/ns-a/"
	    "horizontalpodautoscalers/svc-a", CM_K8S_BODY_MERGE_PATCH, b, &r),
	    -EINVAL);
	CHECK_INT(r.status.n_causes, 1);
	CHECK_STR(r.status.causes[0].type, "FieldValueInvalid");
	CHECK_STR(r.status.causes[0].field, "spec.maxReplicas");
	cm_k8s_resp_clear(&r);

	stub_push(&S, (struct stub_resp){ 404, "", "{\"kind\":\"Status\","
	    "\"message\":\"deployments.apps \\\"web\\\" not found\",\"reason\":"
	    "\"NotFound\",\"code\":404}" });
	CHECK_INT(cm_k8s_get(k, "/apis/apps/v1/namespaces/ns-a/deployments/web",
	    &r), -ENOENT);
	CHECK_HAS(r.err, "404 NotFound: deployments.apps \"web\" not found");
	cm_k8s_resp_clear(&r);

	stub_push(&S, (struct stub_resp){ 403, "", "{\"kind\":\"Status\","
	    "\"reason\":\"Forbidden\",\"code\":403,\"message\":\"pods "
	    "\\\"p\\\" is forbidden\"}" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/namespaces/ns-a/pods/p", &r), -EPERM);
	cm_k8s_resp_clear(&r);

	stub_push(&S, (struct stub_resp){ 415, "", "{\"kind\":\"Status\","
	    "\"reason\":\"UnsupportedMediaType\",\"code\":415}" });
	CHECK_INT(cm_k8s_patch(k, "/apis/networking.istio.io/v1/namespaces/"
	    "ns-a/virtualservices/vs", CM_K8S_BODY_STRATEGIC_PATCH, b, &r),
	    -EOPNOTSUPP);
	cm_k8s_resp_clear(&r);

	// A proxy's page instead of a Status: kept as the message.
	stub_push(&S, (struct stub_resp){ 400, "", "<html>\n<b>Bad</b></html>" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -EINVAL);
	CHECK_STR(r.status.reason, "BadRequest");
	CHECK_STR(r.status.message, "<html>?<b>Bad</b></html>");
	cm_k8s_resp_clear(&r);
	cJSON_Delete(b);
	cm_k8s_free(k);
}

static void
small_body(struct cm_k8s_settings *s)
{
	s->max_body = 1024;
}

static void
test_bad_replies(void)
{
	static char big[3000];
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(small_body);
	stub_push(&S, (struct stub_resp){ 200, "", "{\"kind\":" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -EBADMSG);
	CHECK(r.body == NULL);
	cm_k8s_resp_clear(&r);

	memset(big, ' ', sizeof(big) - 3);
	big[0] = '{';
	big[sizeof(big) - 3] = '}';
	stub_push(&S, (struct stub_resp){ 200, "", big });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -EFBIG);
	CHECK_INT(stub_count(&S), 2); // not retried
	cm_k8s_resp_clear(&r);

	stub_push(&S, (struct stub_resp){ 200, "", "" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	CHECK(r.body == NULL);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_dropped_connection_retried(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	cJSON *b = cJSON_Parse("{}");

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 0, "", "", STUB_DROP });
	stub_push(&S, (struct stub_resp){ 200, "", "{\"n\":2}" });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	CHECK_INT(r.tries, 2);
	cm_k8s_resp_clear(&r);

	// A POST that may have reached the server is not sent again.
	stub_reset(&S);
	stub_push(&S, (struct stub_resp){ 0, "", "", STUB_DROP });
	CHECK_INT(cm_k8s_post(k, "/api/v1/namespaces/ns-a/events", b, &r),
	    -ECONNRESET);
	CHECK_INT(stub_count(&S), 1);
	cm_k8s_resp_clear(&r);
	cJSON_Delete(b);
	cm_k8s_free(k);
}

static void
test_connection_refused(void)
{
	struct cm_k8s_settings s;
	struct cm_k8s_endpoint ep = { 0 };
	struct cm_k8s *k = NULL;
	struct cm_k8s_resp r;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char err[256];
	int fd;

	// A port that was just free: bind, read it, close.
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	close(fd);
	cm_k8s_settings_default(&s);
	s.backoff_ms = 1;
	s.backoff_max_ms = 2;
	s.max_tries = 3;
	CHECK(asprintf(&ep.server, "http://127.0.0.1:%d",
	    ntohs(a.sin_port)) > 0);
	CHECK_INT(cm_k8s_new_endpoint(&k, &s, &ep, err, sizeof(err)), 0);
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -ECONNREFUSED);
	CHECK_INT(r.tries, 3);
	CHECK_INT(r.code, 0);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
quick_timeout(struct cm_k8s_settings *s)
{
	s->timeout_ms = 300;
	s->max_tries = 1;
}

static void
test_timeout(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(quick_timeout);
	stub_push(&S, (struct stub_resp){ 200, "", "{}", STUB_LATE, 1000 });
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -ETIMEDOUT);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_deadline_stops_retries(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	struct cm_k8s_req req = { .method = "GET", .path = "/api/v1/pods",
		.deadline_ms = 1 }; // long past

	setup();
	k = client(NULL);
	stub_push(&S, (struct stub_resp){ 503, "", "{}" });
	CHECK_INT(cm_k8s_do(k, &req, &r), -EIO);
	CHECK_INT(stub_count(&S), 1);
	CHECK_HAS(r.err, "no time left");
	cm_k8s_resp_clear(&r);

	req.flags = CM_K8S_F_NO_RETRY;
	req.deadline_ms = 0;
	stub_push(&S, (struct stub_resp){ 503, "", "{}" });
	CHECK_INT(cm_k8s_do(k, &req, &r), -EIO);
	CHECK_INT(stub_count(&S), 2);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
test_bad_requests_not_sent(void)
{
	static const char *const paths[] = { "api/v1/pods", "/api/v1/../x",
		"/api/v1/pods name", "/api/v1/pods\r\nX: y", "", "/a#b" };
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	struct cm_k8s_req req = { .method = "GET" };
	size_t i;

	setup();
	k = client(NULL);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		req.path = paths[i];
		CHECK_INT(cm_k8s_do(k, &req, &r), -EINVAL);
		cm_k8s_resp_clear(&r);
	}
	req.path = "/api/v1/pods";
	req.method = "TRACE";
	CHECK_INT(cm_k8s_do(k, &req, &r), -EINVAL);
	cm_k8s_resp_clear(&r);
	CHECK_INT(stub_count(&S), 0);
	cm_k8s_free(k);
}

static void
test_401_rereads_token(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;
	struct cm_k8s_counts c;

	setup();
	k = client(NULL); // reads tok-1
	write_file(token_path, "tok-rotated-2\n");
	snprintf(S.want_token, sizeof(S.want_token), "tok-rotated-2");
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	CHECK_INT(stub_count(&S), 2);
	CHECK_STR(req_at(0)->auth, "Bearer tok-1");
	CHECK_STR(req_at(1)->auth, "Bearer tok-rotated-2");
	cm_k8s_counts(k, &c);
	CHECK_INT(c.reauth, 1);
	cm_k8s_resp_clear(&r);

	// A token nobody accepts: one re-read, then -EACCES.
	snprintf(S.want_token, sizeof(S.want_token), "never");
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), -EACCES);
	CHECK_INT(stub_count(&S), 4);
	cm_k8s_resp_clear(&r);
	cm_k8s_free(k);
}

static void
fast_recheck(struct cm_k8s_settings *s)
{
	s->token_recheck_ms = 1;
}

static void
test_token_file_change_picked_up(void)
{
	struct cm_k8s *k;
	struct cm_k8s_resp r;

	setup();
	k = client(fast_recheck);
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	cm_k8s_resp_clear(&r);
	write_file(token_path, "tok-second-longer\n");
	usleep(5000);
	CHECK_INT(cm_k8s_get(k, "/api/v1/pods", &r), 0);
	cm_k8s_resp_clear(&r);
	CHECK_STR(req_at(0)->auth, "Bearer tok-1");
	CHECK_STR(req_at(1)->auth, "Bearer tok-second-longer");
	cm_k8s_free(k);
}

// Rate limit: 4 threads share one bucket (qps 20, burst 5).
static void
limited(struct cm_k8s_settings *s)
{
	s->qps = 20;
	s->burst = 5;
}

static void *
hammer(void *arg)
{
	struct cm_k8s *k = arg;
	struct cm_k8s_resp r;
	int i;

	for (i = 0; i < 10; i++) {
		if (cm_k8s_get(k, "/api/v1/pods", &r) != 0)
			CHECK(false);
		cm_k8s_resp_clear(&r);
	}
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_rate_limit_shared_by_threads(void)
{
	struct cm_k8s *k;
	struct cm_k8s_counts c;
	pthread_t th[4];
	int64_t t[40], start;
	size_t i, j, n;

	setup();
	k = client(limited);
	start = stub_now_us();
	for (i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, k);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	n = stub_count(&S);
	CHECK_INT(n, 40);
	for (i = 0; i < n && i < 40; i++)
		t[i] = req_at(i)->t_us;
	qsort(t, n, sizeof(t[0]), cmp_i64);
	// Request i may not arrive before its token exists: burst 5 at
	// once, then one every 50 ms. (Lower bounds only: never flaky.)
	for (i = 5; i < n; i++)
		if (t[i] - start < (int64_t)(i - 5 + 1) * 50000 - 2000) {
			printf("#   request %zu at %lld us\n", i,
			    (long long)(t[i] - start));
			CHECK(false);
			break;
		}
	// And no one-second window holds more than burst + qps.
	for (i = 0; i < n; i++) {
		size_t in = 0;

		for (j = i; j < n && t[j] - t[i] < 1000000; j++)
			in++;
		CHECK(in <= 25);
	}
	cm_k8s_counts(k, &c);
	CHECK_INT(c.requests, 40);
	CHECK(c.throttled >= 30);
	cm_k8s_free(k);
}

// ---------------------------------------------------------------------
// Eviction (C14)

static const char pdb_429[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	"\"status\":\"Failure\",\"message\":\"Cannot evict pod as it would "
	"violate the pod's disruption budget.\",\"reason\":\"TooManyRequests\","
	"\"details\":{\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":"
	"\"The disruption budget svc-a needs 2 healthy pods and has 2 "
	"currently\"}]},\"code\":429}";

static const char pod_unready[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":"
	"\"svc-a-7b6d9-ccccc\",\"namespace\":\"ns-a\",\"uid\":\"uid-ccccc\","
	"\"labels\":{\"app\":\"svc-a\"},\"ownerReferences\":[{\"apiVersion\":"
	"\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"svc-a-7b6d9\","
	"\"uid\":\"rs-uid\",\"controller\":true}]},\"status\":{\"phase\":"
	"\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":"
	"\"False\"}]}}";

static const char pod_ready[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":"
	"\"svc-a-7b6d9-aaaaa\",\"namespace\":\"ns-a\",\"uid\":\"uid-aaaaa\","
	"\"labels\":{\"app\":\"svc-a\"},\"ownerReferences\":[{\"kind\":"
	"\"ReplicaSet\",\"name\":\"svc-a-7b6d9\",\"controller\":true}]},"
	"\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}";

static const char pod_bare[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":"
	"\"lonely\",\"namespace\":\"ns-a\",\"uid\":\"uid-l\",\"labels\":"
	"{\"app\":\"svc-a\"}},\"status\":{\"conditions\":[{\"type\":\"Ready\","
	"\"status\":\"False\"}]}}";

static const char pdb_list[] = "{\"kind\":\"PodDisruptionBudgetList\","
	"\"items\":[{\"metadata\":{\"name\":\"other\"},\"spec\":{\"selector\":"
	"{\"matchLabels\":{\"app\":\"svc-b\"}}},\"status\":"
	"{\"disruptionsAllowed\":1}},{\"metadata\":{\"name\":\"svc-a\"},"
	"\"spec\":{\"minAvailable\":2,\"selector\":{\"matchLabels\":{\"app\":"
	"\"svc-a\"}}},\"status\":{\"currentHealthy\":2,\"desiredHealthy\":2,"
	"\"disruptionsAllowed\":0,\"expectedPods\":3}}]}";

static void
fast_evict(struct cm_k8s_evict_opts *o, bool del)
{
	cm_k8s_evict_opts_default(o);
	o->backoff_ms = 1;
	o->delete_unready = del;
}

static size_t
count_method(const char *m)
{
	size_t i, n = 0;

	for (i = 0; i < S.n_reqs; i++)
		n += strcmp(S.reqs[i].method, m) == 0;
	return n;
}

static void
test_evict_accepted(void)
{
	struct cm_k8s *k;
	struct cm_k8s_evict_opts o;
	struct cm_k8s_evict_result res;
	cJSON *b;

	setup();
	k = client(NULL);
	fast_evict(&o, false);
	stub_push(&S, (struct stub_resp){ 201, "", "{\"kind\":\"Status\","
	    "\"apiVersion\":\"v1\",\"status\":\"Success\",\"code\":201}" });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-ccccc", &o, &res),
	    0);
	CHECK_INT(res.outcome, CM_K8S_EVICTED);
	CHECK_STR(req_at(0)->path,
	    "/api/v1/namespaces/ns-a/pods/svc-a-7b6d9-ccccc/eviction");
	b = cJSON_Parse(req_at(0)->body);
	CHECK_STR(cm_k8s_str(b, "apiVersion", NULL), "policy/v1");
	CHECK_STR(cm_k8s_str(b, "kind", NULL), "Eviction");
	CHECK_STR(cm_k8s_str(b, "metadata", "name", NULL), "svc-a-7b6d9-ccccc");
	CHECK_STR(cm_k8s_str(b, "metadata", "namespace", NULL), "ns-a");
	cJSON_Delete(b);

	stub_push(&S, (struct stub_resp){ 404, "", "{\"kind\":\"Status\","
	    "\"reason\":\"NotFound\",\"code\":404}" });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "gone", &o, &res), -ENOENT);
	CHECK_INT(res.outcome, CM_K8S_EVICT_GONE);
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "Bad_Name", &o, &res), -EINVAL);
	CHECK_INT(stub_count(&S), 2);
	cm_k8s_free(k);
}

static void
test_evict_blocked_by_pdb_bounded(void)
{
	struct cm_k8s *k;
	struct cm_k8s_evict_opts o;
	struct cm_k8s_evict_result res;
	int i;

	setup();
	k = client(NULL);
	fast_evict(&o, false);
	for (i = 0; i < 3; i++)
		stub_push(&S, (struct stub_resp){ 429, "", pdb_429 });
	stub_push(&S, (struct stub_resp){ 200, "", pod_unready });
	stub_push(&S, (struct stub_resp){ 200, "", pdb_list });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-ccccc", &o, &res),
	    -EBUSY);
	CHECK_INT(res.outcome, CM_K8S_EVICT_BLOCKED);
	CHECK_INT(res.tries, 3);
	CHECK_STR(res.pdb, "svc-a");
	CHECK_INT(res.disruptions_allowed, 0);
	CHECK_HAS(res.reason, "blocked by PDB svc-a (0 disruptions allowed");
	CHECK_HAS(res.reason, "delete fallback is off by policy");
	CHECK_INT(count_method("POST"), 3);
	CHECK_INT(count_method("DELETE"), 0);
	CHECK_INT(stub_count(&S), 5);
	cm_k8s_free(k);
}

static void
test_evict_fallback_deletes_unready_pod(void)
{
	struct cm_k8s *k;
	struct cm_k8s_evict_opts o;
	struct cm_k8s_evict_result res;
	cJSON *b;
	int i;

	setup();
	k = client(NULL);
	fast_evict(&o, true);
	for (i = 0; i < 3; i++)
		stub_push(&S, (struct stub_resp){ 429, "", pdb_429 });
	stub_push(&S, (struct stub_resp){ 200, "", pod_unready });
	stub_push(&S, (struct stub_resp){ 200, "", pdb_list });
	stub_push(&S, (struct stub_resp){ 200, "", pod_unready });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-ccccc", &o, &res),
	    0);
	CHECK_INT(res.outcome, CM_K8S_EVICT_DELETED);
	CHECK_INT(count_method("DELETE"), 1);
	CHECK_STR(req_at(5)->path, "/api/v1/namespaces/ns-a/pods/"
	    "svc-a-7b6d9-ccccc");
	b = cJSON_Parse(req_at(5)->body);
	CHECK_STR(cm_k8s_str(b, "preconditions", "uid", NULL), "uid-ccccc");
	CHECK(cm_k8s_at(b, "gracePeriodSeconds", NULL) == NULL);
	cJSON_Delete(b);
	CHECK_HAS(res.reason, "not Ready");
	cm_k8s_free(k);
}

static void
test_evict_fallback_spares_ready_and_bare_pods(void)
{
	struct cm_k8s *k;
	struct cm_k8s_evict_opts o;
	struct cm_k8s_evict_result res;
	int i;

	setup();
	k = client(NULL);
	fast_evict(&o, true);
	for (i = 0; i < 3; i++)
		stub_push(&S, (struct stub_resp){ 429, "", pdb_429 });
	stub_push(&S, (struct stub_resp){ 200, "", pod_ready });
	stub_push(&S, (struct stub_resp){ 200, "", pdb_list });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-aaaaa", &o, &res),
	    -EBUSY);
	CHECK_HAS(res.reason, "pod is Ready, not deleted");
	CHECK_INT(count_method("DELETE"), 0);

	stub_reset(&S);
	for (i = 0; i < 3; i++)
		stub_push(&S, (struct stub_resp){ 429, "", pdb_429 });
	stub_push(&S, (struct stub_resp){ 200, "", pod_bare });
	stub_push(&S, (struct stub_resp){ 200, "", pdb_list });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "lonely", &o, &res), -EBUSY);
	CHECK_HAS(res.reason, "bare pod");
	CHECK_INT(count_method("DELETE"), 0);
	cm_k8s_free(k);
}

// A stale PDB status answers 429 with Retry-After 10: the eviction waits
// only within its budget; throttling without a PDB cause is not "PDB".
static void
test_evict_budget_and_plain_throttling(void)
{
	struct cm_k8s *k;
	struct cm_k8s_evict_opts o;
	struct cm_k8s_evict_result res;

	setup();
	k = client(NULL);
	fast_evict(&o, false);
	o.budget_ms = 100;
	stub_push(&S, (struct stub_resp){ 429, "Retry-After: 10\r\n",
	    "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"code\":429,"
	    "\"message\":\"Cannot evict pod as it would violate the pod's "
	    "disruption budget.\",\"details\":{\"retryAfterSeconds\":10,"
	    "\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The "
	    "disruption budget svc-a is still being processed by the "
	    "server.\"}]}}" });
	stub_push(&S, (struct stub_resp){ 200, "", pod_unready });
	stub_push(&S, (struct stub_resp){ 200, "", pdb_list });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-ccccc", &o, &res),
	    -EBUSY);
	CHECK_INT(res.tries, 1);
	CHECK_INT(res.outcome, CM_K8S_EVICT_BLOCKED);

	stub_reset(&S);
	o.budget_ms = 120000;
	o.max_tries = 2;
	stub_push(&S, (struct stub_resp){ 429, "", status_429_now });
	stub_push(&S, (struct stub_resp){ 429, "", status_429_now });
	CHECK_INT(cm_k8s_evict_pod(k, "ns-a", "svc-a-7b6d9-ccccc", &o, &res),
	    -EAGAIN);
	CHECK_INT(res.outcome, CM_K8S_EVICT_FAILED);
	CHECK_HAS(res.reason, "throttled");
	CHECK_INT(stub_count(&S), 2);
	cm_k8s_free(k);
}

static void
quiet(int level, const char *line, void *arg)
{
	(void)level;
	(void)line;
	(void)arg;
}

static void
before_all(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/reflex-k8s-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
	snprintf(token_path, sizeof(token_path), "%s/token", tmpdir);
	if (stub_start(&S) < 0)
		abort();
	cm_log_set_sink(quiet, NULL);
}

static void
after_all(void)
{
	stub_stop(&S);
	unlink(token_path);
	rmdir(tmpdir);
}

static const struct tt_case cases[] = {
	{ "GET sends headers, parses JSON", test_get_sends_headers_and_parses_json },
	{ "patch content types", test_patch_content_types },
	{ "429 honours Retry-After header", test_429_honours_retry_after_header },
	{ "429 honours details.retryAfterSeconds",
	  test_429_honours_retry_after_seconds },
	{ "429 retries are bounded", test_429_bounded },
	{ "Retry-After beyond the limit gives up",
	  test_retry_after_beyond_limit_gives_up },
	{ "5xx retried for GET, not for POST", test_5xx_retried_for_get_not_post },
	{ "409 surfaced, not retried", test_409_surfaced_not_retried },
	{ "Status errors parsed", test_status_errors },
	{ "bad replies", test_bad_replies },
	{ "dropped connection retried (not POST)",
	  test_dropped_connection_retried },
	{ "connection refused", test_connection_refused },
	{ "timeout", test_timeout },
	{ "deadline and no-retry flag", test_deadline_stops_retries },
	{ "malformed requests never sent", test_bad_requests_not_sent },
	{ "401 re-reads the token file", test_401_rereads_token },
	{ "token file change picked up", test_token_file_change_picked_up },
	{ "rate limit shared by threads", test_rate_limit_shared_by_threads },
	{ "evict: accepted, gone, bad name", test_evict_accepted },
	{ "evict: C14 blocked by PDB, bounded", test_evict_blocked_by_pdb_bounded },
	{ "evict: C14 fallback deletes not-Ready pod",
	  test_evict_fallback_deletes_unready_pod },
	{ "evict: fallback spares Ready and bare pods",
	  test_evict_fallback_spares_ready_and_bare_pods },
	{ "evict: budget and plain throttling",
	  test_evict_budget_and_plain_throttling },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	int rv;

	before_all();
	rv = tt_run(cases, argc, argv);
	after_all();
	return rv;
}
