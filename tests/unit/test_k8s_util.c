// SPDX-License-Identifier: MIT
// Unit tests for the pure parts of reflex's Kubernetes support: name
// rules, API paths and queries, label selectors, Status parsing, JSON
// accessors, kubeconfig and in-cluster configuration, rollout judgments,
// GitOps markers, the "kubernetes:" config checks and template loading.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_k8s.h"
#include "cm_log.h"
#include "cm_time.h"
#include "coord_k8s.h"
#include "tt.h"

static char dir[64];

static void
put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		CHECK(false);
		return;
	}
	fputs(text, f);
	fclose(f);
}

static const char *
at(const char *name)
{
	static char path[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(path[i], sizeof(path[i]), "%s/%s", dir, name);
	return path[i];
}

static char *
rep(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

// ---------------------------------------------------------------------
// Names

static void
test_name_rules(void)
{
	static const struct {
		enum cm_k8s_name_rule r;
		const char *s;
		bool ok;
	} t[] = {
		{ CM_K8S_NAME_LABEL, "a", true },
		{ CM_K8S_NAME_LABEL, "ns-a", true },
		{ CM_K8S_NAME_LABEL, "0abc", true },
		{ CM_K8S_NAME_LABEL, "a--b", true },
		{ CM_K8S_NAME_LABEL, "", false },
		{ CM_K8S_NAME_LABEL, "-a", false },
		{ CM_K8S_NAME_LABEL, "a-", false },
		{ CM_K8S_NAME_LABEL, "A", false },
		{ CM_K8S_NAME_LABEL, "a_b", false },
		{ CM_K8S_NAME_LABEL, "a.b", false },
		{ CM_K8S_NAME_LABEL, "a b", false },
		{ CM_K8S_NAME_LABEL, "caf\xc3\xa9", false },
		{ CM_K8S_NAME_SUBDOMAIN, "svc-a", true },
		{ CM_K8S_NAME_SUBDOMAIN, "a.b.c", true },
		{ CM_K8S_NAME_SUBDOMAIN, "svc-a-7b6d9-ccccc", true },
		{ CM_K8S_NAME_SUBDOMAIN, "web.17e0a4c1d2b3f4a5", true },
		{ CM_K8S_NAME_SUBDOMAIN, ".a", false },
		{ CM_K8S_NAME_SUBDOMAIN, "a.", false },
		{ CM_K8S_NAME_SUBDOMAIN, "a..b", false },
		{ CM_K8S_NAME_SUBDOMAIN, "a.-b", false },
		{ CM_K8S_NAME_SUBDOMAIN, "a/b", false },
		{ CM_K8S_NAME_SUBDOMAIN, "..", false },
		{ CM_K8S_NAME_SUBDOMAIN, "Web", false },
		{ CM_K8S_NAME_SUBDOMAIN, "a%2Fb", false },
		{ CM_K8S_NAME_DNS1035, "a1", true },
		{ CM_K8S_NAME_DNS1035, "1a", false },
		{ CM_K8S_NAME_DNS1035, "a-", false },
	};
	char *s63 = rep('a', 63), *s64 = rep('a', 64), *s253, *s254;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (cm_k8s_name_valid(t[i].r, t[i].s) != t[i].ok) {
			printf("#   rule %d \"%s\" expected %d\n", t[i].r, t[i].s,
			    t[i].ok);
			CHECK(false);
		}
	CHECK(cm_k8s_name_valid(CM_K8S_NAME_LABEL, s63));
	CHECK(!cm_k8s_name_valid(CM_K8S_NAME_LABEL, s64));
	CHECK(cm_k8s_name_valid(CM_K8S_NAME_DNS1035, s63));
	CHECK(!cm_k8s_name_valid(CM_K8S_NAME_DNS1035, s64));
	// A subdomain part may exceed 63 bytes (apimachinery does not check).
	CHECK(cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, s64));
	s253 = rep('a', 253);
	s254 = rep('a', 254);
	s253[100] = '.';
	s254[100] = '.';
	CHECK(cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, s253));
	CHECK(!cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, s254));
	CHECK(!cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, NULL));
	CHECK(!cm_k8s_name_valid((enum cm_k8s_name_rule)42, "a"));
	free(s63);
	free(s64);
	free(s253);
	free(s254);
}

static void
test_label_keys_and_values(void)
{
	static const char *const good_keys[] = { "app", "a_b", "A.b-C",
		"kustomize.toolkit.fluxcd.io/name", "app.kubernetes.io/instance",
		"argocd.argoproj.io/tracking-id", "kubectl.kubernetes.io/restartedAt" };
	static const char *const bad_keys[] = { "", "/a", "a/", "a/b/c", "-a",
		"a-", "Example.com/x", "a b", ".io/x", "a/_b" };
	char *k64 = rep('k', 64), *k63 = rep('k', 63), *v64 = rep('v', 64);
	size_t i;

	for (i = 0; i < sizeof(good_keys) / sizeof(good_keys[0]); i++)
		CHECK(cm_k8s_qualified_name_valid(good_keys[i]));
	for (i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		if (cm_k8s_qualified_name_valid(bad_keys[i])) {
			printf("#   key \"%s\" accepted\n", bad_keys[i]);
			CHECK(false);
		}
	CHECK(cm_k8s_qualified_name_valid(k63));
	CHECK(!cm_k8s_qualified_name_valid(k64));
	CHECK(cm_k8s_label_value_valid(""));
	CHECK(cm_k8s_label_value_valid("svc-a"));
	CHECK(cm_k8s_label_value_valid("A_b.c"));
	CHECK(!cm_k8s_label_value_valid("-a"));
	CHECK(!cm_k8s_label_value_valid("a b"));
	CHECK(!cm_k8s_label_value_valid(v64));
	CHECK(!cm_k8s_label_value_valid(NULL));
	free(k64);
	free(k63);
	free(v64);
}

// ---------------------------------------------------------------------
// Paths and queries

static void
test_paths(void)
{
	char b[256], small[20];

	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "ns-a", "pods", "p-1", NULL),
	    0);
	CHECK_STR(b, "/api/v1/namespaces/ns-a/pods/p-1");
	CHECK_INT(cm_k8s_path(b, sizeof(b), "apps/v1", "ns-a", "deployments",
	    "web", "scale"), 0);
	CHECK_STR(b, "/apis/apps/v1/namespaces/ns-a/deployments/web/scale");
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", NULL, "nodes", "node-c",
	    NULL), 0);
	CHECK_STR(b, "/api/v1/nodes/node-c");
	CHECK_INT(cm_k8s_path(b, sizeof(b), "networking.istio.io/v1", "demo",
	    "virtualservices", NULL, NULL), 0);
	CHECK_STR(b, "/apis/networking.istio.io/v1/namespaces/demo/"
	    "virtualservices");
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "NS", "pods", "p", NULL),
	    -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "ns", "pods", "../x", NULL),
	    -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "ns", "pods", "a/b", NULL),
	    -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "ns", "pods", NULL,
	    "eviction"), -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "apps//v1", "ns", "pods", NULL,
	    NULL), -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "a/b/c", "ns", "pods", NULL, NULL),
	    -EINVAL);
	CHECK_INT(cm_k8s_path(b, sizeof(b), "v1", "ns", "Pods", NULL, NULL),
	    -EINVAL);
	CHECK_INT(cm_k8s_path(small, sizeof(small), "v1", "ns-a", "pods",
	    "p", NULL), -ENAMETOOLONG);
}

static void
test_query_escape(void)
{
	char b[128] = "/api/v1/pods", tiny[24] = "/api/v1/pods";

	CHECK_INT(cm_k8s_query_add(b, sizeof(b), "labelSelector",
	    "app=svc-a,tier in (a,b)"), 0);
	CHECK_STR(b, "/api/v1/pods?labelSelector=app%3Dsvc-a%2Ctier%20in%20"
	    "%28a%2Cb%29");
	CHECK_INT(cm_k8s_query_add(b, sizeof(b), "limit", "5"), 0);
	CHECK_HAS(b, "%29&limit=5");
	CHECK_INT(cm_k8s_query_add(b, sizeof(b), "a=b", "x"), -EINVAL);
	CHECK_INT(cm_k8s_query_add(b, sizeof(b), "", "x"), -EINVAL);
	CHECK_INT(cm_k8s_query_add(tiny, sizeof(tiny), "fieldSelector",
	    "spec.nodeName=node-a"), -ENAMETOOLONG);
	CHECK_STR(tiny, "/api/v1/pods"); // unchanged
	strcpy(b, "/x");
	CHECK_INT(cm_k8s_query_add(b, sizeof(b), "v", "\xc3\xa9&#/?~._-"), 0);
	CHECK_STR(b, "/x?v=%C3%A9%26%23%2F%3F~._-");
}

static void
test_pointer_escape(void)
{
	char b[64], tiny[4];

	CHECK_INT(cm_k8s_pointer_escape(b, sizeof(b),
	    "kubectl.kubernetes.io/restartedAt"), 0);
	CHECK_STR(b, "kubectl.kubernetes.io~1restartedAt");
	CHECK_INT(cm_k8s_pointer_escape(b, sizeof(b), "a~b/c"), 0);
	CHECK_STR(b, "a~0b~1c");
	CHECK_INT(cm_k8s_pointer_escape(tiny, sizeof(tiny), "a/b"),
	    -ENAMETOOLONG);
}

// ---------------------------------------------------------------------
// Selectors, accessors, pods

static void
test_selectors(void)
{
	cJSON *sel = cJSON_Parse("{\"matchLabels\":{\"app\":\"web\"},"
	    "\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\","
	    "\"values\":[\"a\",\"b\"]},{\"key\":\"canary\",\"operator\":"
	    "\"DoesNotExist\"},{\"key\":\"env\",\"operator\":\"Exists\"},"
	    "{\"key\":\"x\",\"operator\":\"NotIn\",\"values\":[\"y\"]}]}");
	cJSON *l1 = cJSON_Parse("{\"app\":\"web\",\"tier\":\"a\",\"env\":\"p\"}");
	cJSON *l2 = cJSON_Parse("{\"app\":\"web\",\"tier\":\"c\",\"env\":\"p\"}");
	cJSON *l3 = cJSON_Parse("{\"app\":\"web\",\"tier\":\"a\",\"env\":\"p\","
	    "\"canary\":\"1\"}");
	cJSON *l4 = cJSON_Parse("{\"app\":\"web\",\"tier\":\"b\",\"env\":\"p\","
	    "\"x\":\"y\"}");
	cJSON *empty = cJSON_Parse("{}");
	cJSON *bad = cJSON_Parse("{\"matchExpressions\":[{\"key\":\"a\","
	    "\"operator\":\"Gt\",\"values\":[\"1\"]}]}");
	cJSON *badkey = cJSON_Parse("{\"matchLabels\":{\"a b\":\"c\"}}");
	char b[256];

	CHECK(cm_k8s_selector_matches(sel, l1));
	CHECK(!cm_k8s_selector_matches(sel, l2));
	CHECK(!cm_k8s_selector_matches(sel, l3));
	CHECK(!cm_k8s_selector_matches(sel, l4));
	CHECK(!cm_k8s_selector_matches(sel, NULL));
	CHECK(cm_k8s_selector_matches(empty, l2));
	CHECK(!cm_k8s_selector_matches(NULL, l1));
	CHECK(!cm_k8s_selector_matches(bad, l1));
	CHECK_INT(cm_k8s_selector_string(sel, b, sizeof(b)), 0);
	CHECK_STR(b, "app=web,tier in (a,b),!canary,env,x notin (y)");
	CHECK_INT(cm_k8s_selector_string(bad, b, sizeof(b)), -EINVAL);
	CHECK_INT(cm_k8s_selector_string(badkey, b, sizeof(b)), -EINVAL);
	CHECK_INT(cm_k8s_selector_string(sel, b, 10), -ENAMETOOLONG);
	CHECK_INT(cm_k8s_selector_string(empty, b, sizeof(b)), 0);
	CHECK_STR(b, "");
	cJSON_Delete(sel);
	cJSON_Delete(l1);
	cJSON_Delete(l2);
	cJSON_Delete(l3);
	cJSON_Delete(l4);
	cJSON_Delete(empty);
	cJSON_Delete(bad);
	cJSON_Delete(badkey);
}

static void
test_accessors_and_pods(void)
{
	cJSON *o = cJSON_Parse("{\"spec\":{\"replicas\":3,\"half\":2.5,"
	    "\"str\":\"3\",\"nil\":null,\"paused\":true},\"status\":"
	    "{\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},"
	    "{\"type\":\"Ready\",\"status\":\"False\"}]},\"metadata\":"
	    "{\"deletionTimestamp\":\"2026-12-04T16:09:30Z\",\"ownerReferences\":"
	    "[{\"kind\":\"Node\",\"name\":\"n\"},{\"kind\":\"ReplicaSet\","
	    "\"name\":\"rs\",\"controller\":true}]},\"cpu\":110,\"mem\":"
	    "\"15613336Ki\"}");
	cJSON *ready = cJSON_Parse("{\"status\":{\"conditions\":[{\"type\":"
	    "\"Ready\",\"status\":\"True\"}]},\"metadata\":"
	    "{\"deletionTimestamp\":null}}");
	int64_t v = 0;

	CHECK_INT(cm_k8s_int(o, &v, "spec", "replicas", NULL), 0);
	CHECK_INT(v, 3);
	CHECK_INT(cm_k8s_int(o, &v, "spec", "half", NULL), -EINVAL);
	CHECK_INT(cm_k8s_int(o, &v, "spec", "str", NULL), -EINVAL);
	CHECK_INT(cm_k8s_int(o, &v, "spec", "nil", NULL), -ENOENT);
	CHECK_INT(cm_k8s_int(o, &v, "spec", "none", NULL), -ENOENT);
	CHECK_INT(cm_k8s_int(o, &v, "spec", "replicas", "deeper", NULL),
	    -ENOENT);
	CHECK(cm_k8s_bool(o, false, "spec", "paused", NULL));
	CHECK(cm_k8s_bool(o, true, "spec", "replicas", NULL));
	CHECK(cm_k8s_str(o, "spec", "str", NULL) != NULL);
	CHECK(cm_k8s_str(o, "spec", "replicas", NULL) == NULL);
	CHECK(cm_k8s_str(NULL, "a", NULL) == NULL);
	CHECK_INT(cm_k8s_quantity(cm_k8s_at(o, "cpu", NULL), -3, &v), 0);
	CHECK_INT(v, 110000);
	CHECK_INT(cm_k8s_quantity(cm_k8s_at(o, "mem", NULL), 0, &v), 0);
	CHECK_INT(v, INT64_C(15988056064));
	CHECK_INT(cm_k8s_quantity(cm_k8s_at(o, "spec", NULL), 0, &v), -EINVAL);
	CHECK_INT(cm_k8s_quantity(NULL, 0, &v), -ENOENT);
	CHECK(!cm_k8s_pod_ready(o));
	CHECK(cm_k8s_pod_ready(ready));
	CHECK(cm_k8s_terminating(o));
	CHECK(!cm_k8s_terminating(ready));
	CHECK_STR(cm_k8s_str(cm_k8s_controller_ref(o), "name", NULL), "rs");
	CHECK(cm_k8s_controller_ref(ready) == NULL);
	cJSON_Delete(o);
	cJSON_Delete(ready);
}

// ---------------------------------------------------------------------
// Status objects

static void
test_status_parse(void)
{
	static const char body[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	    "\"status\":\"Failure\",\"message\":\"Cannot evict pod as it would "
	    "violate the pod's disruption budget.\",\"reason\":"
	    "\"TooManyRequests\",\"details\":{\"name\":\"p\",\"kind\":\"pods\","
	    "\"retryAfterSeconds\":10,\"causes\":[{\"reason\":"
	    "\"DisruptionBudget\",\"message\":\"The disruption budget svc-a "
	    "needs 2 healthy pods and has 2 currently\"}]},\"code\":429}";
	static const struct {
		long code;
		const char *reason;
		int err;
	} codes[] = {
		{ 400, "BadRequest", -EINVAL }, { 401, "Unauthorized", -EACCES },
		{ 403, "Forbidden", -EPERM }, { 404, "NotFound", -ENOENT },
		{ 405, "MethodNotAllowed", -EOPNOTSUPP },
		{ 409, "Conflict", -ESTALE }, { 409, "AlreadyExists", -EEXIST },
		{ 415, "UnsupportedMediaType", -EOPNOTSUPP },
		{ 422, "Invalid", -EINVAL }, { 429, "TooManyRequests", -EAGAIN },
		{ 500, "InternalError", -EIO }, { 503, "", -EIO },
		{ 302, "", -EIO }, { 201, "", 0 },
	};
	struct cm_k8s_status st;
	size_t i;

	cm_k8s_status_parse(&st, 429, body, strlen(body), NULL);
	CHECK_INT(st.code, 429);
	CHECK_STR(st.reason, "TooManyRequests");
	CHECK_INT(st.retry_after_s, 10);
	CHECK_STR(st.kind, "pods");
	CHECK_STR(st.name, "p");
	CHECK_INT(st.n_causes, 1);
	CHECK(cm_k8s_status_has_cause(&st, "DisruptionBudget"));
	CHECK(!cm_k8s_status_has_cause(&st, "FieldValueInvalid"));
	CHECK_HAS(st.causes[0].message, "needs 2 healthy pods");

	// The header counts when the body has no retryAfterSeconds.
	cm_k8s_status_parse(&st, 429, "{\"kind\":\"Status\",\"code\":429}", 29,
	    "7");
	CHECK_INT(st.retry_after_s, 7);
	CHECK_STR(st.reason, "TooManyRequests");
	cm_k8s_status_parse(&st, 503, NULL, 0, "Wed, 21 Oct 2015 07:28:00 GMT");
	CHECK_INT(st.retry_after_s, -1);
	CHECK_STR(st.reason, "ServiceUnavailable");
	cm_k8s_status_parse(&st, 502, "Bad Gateway\r\n\x01", 14, NULL);
	CHECK_STR(st.message, "Bad Gateway???");
	// More causes than kept: bounded.
	{
		char big[4096];
		size_t o = 0;
		int j;

		o += (size_t)snprintf(big + o, sizeof(big) - o, "{\"kind\":"
		    "\"Status\",\"details\":{\"causes\":[");
		for (j = 0; j < 20; j++)
			o += (size_t)snprintf(big + o, sizeof(big) - o,
			    "%s{\"reason\":\"R%d\"}", j ? "," : "", j);
		o += (size_t)snprintf(big + o, sizeof(big) - o, "]}}");
		cm_k8s_status_parse(&st, 422, big, o, NULL);
		CHECK_INT(st.n_causes, CM_K8S_MAX_CAUSES);
	}
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		memset(&st, 0, sizeof(st));
		st.code = codes[i].code;
		snprintf(st.reason, sizeof(st.reason), "%s", codes[i].reason);
		CHECK_INT(cm_k8s_status_errno(&st), codes[i].err);
	}
}

// ---------------------------------------------------------------------
// kubeconfig

static int
kc(struct cm_k8s_endpoint *e, const char *name, const char *ctx, char *err)
{
	return cm_k8s_endpoint_kubeconfig(e, at(name), ctx, err, 512);
}

static const char kc_basic[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"preferences: {}\n"
	"current-context: dev\n"
	"clusters:\n"
	"- name: c1\n"
	"  cluster:\n"
	"    server: https://10.0.0.1:6443/\n"
	"    certificate-authority: certs/ca.crt\n"
	"    tls-server-name: kubernetes\n"
	"    extensions: [{name: x, extension: {a: 1}}]\n"
	"- name: c2\n"
	"  cluster:\n"
	"    server: http://127.0.0.1:8080\n"
	"    certificate-authority-data: LS0tLS1CRUdJTg==\n"
	"    certificate-authority: /ignored/ca.crt\n"
	"    proxy-url: http://127.0.0.1:3128\n"
	"users:\n"
	"- name: u1\n"
	"  user:\n"
	"    token: tok-abc\n"
	"- name: u2\n"
	"  user:\n"
	"    tokenFile: sa/token\n"
	"    client-certificate-data: Y2VydA==\n"
	"    client-key-data: a2V5\n"
	"contexts:\n"
	"- name: dev\n"
	"  context: {cluster: c1, user: u1, namespace: team-a}\n"
	"- name: ops\n"
	"  context:\n"
	"    cluster: c2\n"
	"    user: u2\n";

static void
test_kubeconfig_basic(void)
{
	struct cm_k8s_endpoint e;
	char err[512] = "", want[256];

	put("kc1", kc_basic);
	CHECK_INT(kc(&e, "kc1", NULL, err), 0);
	CHECK_STR(e.server, "https://10.0.0.1:6443");
	CHECK_STR(e.ns, "team-a");
	CHECK_STR(e.token, "tok-abc");
	snprintf(want, sizeof(want), "%s/certs/ca.crt", dir);
	CHECK_STR(e.ca_file, want);
	CHECK_STR(e.tls_server_name, "kubernetes");
	CHECK(e.ca_data == NULL && e.proxy_url == NULL && !e.insecure);
	CHECK_HAS(e.origin, "context dev");
	cm_k8s_endpoint_clear(&e);

	CHECK_INT(kc(&e, "kc1", "ops", err), 0);
	CHECK_STR(e.server, "http://127.0.0.1:8080");
	CHECK_STR(e.ns, "default");
	CHECK(e.ca_data != NULL && e.ca_len == 10 &&
	    memcmp(e.ca_data, "-----BEGIN", 10) == 0);
	CHECK(e.ca_file == NULL); // -data wins
	CHECK_STR(e.proxy_url, "http://127.0.0.1:3128");
	snprintf(want, sizeof(want), "%s/sa/token", dir);
	CHECK_STR(e.token_file, want);
	CHECK(e.cert_len == 4 && memcmp(e.cert_data, "cert", 4) == 0);
	CHECK(e.key_len == 3 && memcmp(e.key_data, "key", 3) == 0);
	cm_k8s_endpoint_clear(&e);
	cm_k8s_endpoint_clear(&e); // twice is fine
	cm_k8s_endpoint_clear(NULL);
}

// Each refused kubeconfig and the words its error must contain.
static void
test_kubeconfig_refused(void)
{
	static const struct {
		const char *text;
		const char *ctx;
		const char *want;
	} t[] = {
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "users: [{name: u, user: {exec: {command: aws}}}]\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "current-context: x\n", NULL, ":2: users[0].user: exec and "
		  "auth-provider credential plugins are not supported" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "current-context: x\n", NULL, "not supported" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "users: [{name: u, user: {token: t, username: a, "
		  "password: b}}]\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "current-context: x\n", NULL, "username/password or bearer "
		  "token may be set, but not both" },
		{ "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
		  "    insecure-skip-tls-verify: true\n"
		  "    certificate-authority: /ca\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", NULL, ":5: clusters[0].cluster: "
		  "specifying a root certificates file with the insecure flag "
		  "is not allowed" },
		{ "clusters:\n- name: c\n  cluster:\n"
		  "    server: ftp://a\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", NULL, ":4: clusters[0].cluster: server "
		  "must start with https:// or http://" },
		{ "clusters:\n- name: c\n  cluster: {insecure-skip-tls-verify: "
		  "true}\ncontexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", NULL, "server is missing" },
		{ "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
		  "    certificate-authority-data: \"not base64!\"\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", NULL, ":5: clusters[0].cluster."
		  "certificate-authority-data: not valid base64" },
		{ "clusters:\n- name: c\n  cluster:\n    server: https://a\n"
		  "    insecure-skip-tls-verify: maybe\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", NULL, "expected true or false" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n", NULL,
		  "no current-context set and no context given" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n"
		  "current-context: x\n", "prod", "context \"prod\" is not "
		  "defined" },
		{ "contexts: [{name: x, context: {cluster: nope}}]\n"
		  "current-context: x\n", NULL, "cluster \"nope\" of "
		  "contexts[0].context is not defined" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "contexts: [{name: x, context: {cluster: c, user: ghost}}]\n"
		  "current-context: x\n", NULL, "user \"ghost\"" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "contexts: [{name: x, context: {cluster: c, namespace: "
		  "Bad_NS}}]\ncurrent-context: x\n", NULL,
		  "namespace is not a valid namespace name" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "users: [{name: u, user: {client-certificate: /c.crt}}]\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "current-context: x\n", NULL, "client-certificate and "
		  "client-key must be given together" },
		{ "clusters: {c: {server: https://a}}\ncurrent-context: x\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n", NULL,
		  "clusters: expected a list" },
		{ "clusters: [web]\ncurrent-context: x\n"
		  "contexts: [{name: x, context: {cluster: c}}]\n", NULL,
		  "clusters[0]: expected a map" },
		{ "- a\n- b\n", NULL, "(top): expected a map" },
		{ "clusters: [{name: c, cluster: {server: https://a}}]\n"
		  "current-context: x\ncurrent-context: y\n", NULL,
		  "given twice" },
		{ "clusters: [{name: c, cluster: {server: https://a}}\n",
		  NULL, "YAML:" },
		{ "", NULL, "no current-context" },
		{ "contexts: [{name: x, context: {user: u}}]\n"
		  "current-context: x\n", NULL, "cluster is missing" },
	};
	struct cm_k8s_endpoint e;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		put("bad", t[i].text);
		if (kc(&e, "bad", t[i].ctx, err) != -EINVAL ||
		    strstr(err, t[i].want) == NULL) {
			printf("#   case %zu: err \"%s\", wanted \"%s\"\n", i, err,
			    t[i].want);
			CHECK(false);
		}
		CHECK(e.server == NULL);
	}
	CHECK_INT(cm_k8s_endpoint_kubeconfig(&e, at("missing"), NULL, err,
	    sizeof(err)), -ENOENT);
	CHECK_HAS(err, "missing");
}

// Deep flow nesting is refused before libyaml's loader, which is
// quadratic in it, sees the file.
static void
test_kubeconfig_deep_nesting(void)
{
	static const char head[] = "apiVersion: v1\nclusters: ";
	size_t n = 400000, h = sizeof(head) - 1;
	struct cm_k8s_endpoint e;
	char err[512] = "", want[600];
	char *s = malloc(h + 2 * n + 2);
	int64_t t0;

	CHECK(s != NULL);
	if (s == NULL)
		return;
	memcpy(s, head, h);
	memset(s + h, '[', n);
	memset(s + h + n, ']', n);
	memcpy(s + h + 2 * n, "\n", 2);
	s[h + 2 * n + 1] = '\0';
	put("kc-deep", s);
	free(s);
	t0 = cm_mono_ms();
	CHECK_INT(kc(&e, "kc-deep", NULL, err), -EINVAL);
	CHECK(cm_mono_ms() - t0 < 2000);
	snprintf(want, sizeof(want), "%s:2: YAML nests deeper than 32 levels",
	    at("kc-deep"));
	CHECK_STR(err, want);
	CHECK(e.server == NULL);
}

static void
test_kubeconfig_odd_but_fine(void)
{
	struct cm_k8s_endpoint e;
	char err[512] = "";
	char *big;

	// Null values, unknown keys, yes/no booleans, CRLF line ends.
	put("odd", "clusters:\r\n- name: c\r\n  cluster:\r\n"
	    "    server: https://a:1\r\n    insecure-skip-tls-verify: yes\r\n"
	    "    certificate-authority: ~\r\n    x-unknown: [1, 2]\r\n"
	    "users: ~\r\ncontexts:\r\n- name: x\r\n"
	    "  context: {cluster: c, user: \"\", namespace: null}\r\n"
	    "current-context: x\r\nextensions: []\r\n");
	CHECK_INT(kc(&e, "odd", NULL, err), 0);
	CHECK(e.insecure && e.token == NULL && e.ca_file == NULL);
	CHECK_STR(e.ns, "default");
	cm_k8s_endpoint_clear(&e);

	// Larger than 1 MiB: refused, not read.
	big = rep('#', 1024 * 1024 + 10);
	put("big", big);
	free(big);
	CHECK_INT(kc(&e, "big", NULL, err), -EFBIG);
	CHECK_HAS(err, "larger than 1 MiB");
}

static void
test_kubeconfig_merge(void)
{
	struct cm_k8s_endpoint e;
	char err[512] = "", list[800];

	put("m1", "current-context: a\ncontexts:\n"
	    "- name: a\n  context: {cluster: c, user: u, namespace: one}\n"
	    "users: [{name: u, user: {token: first}}]\n");
	put("m2", "current-context: b\nclusters:\n"
	    "- name: c\n  cluster: {server: https://second:6443}\n"
	    "users: [{name: u, user: {token: second}}]\n"
	    "contexts: [{name: a, context: {cluster: zzz}}]\n");
	snprintf(list, sizeof(list), "%s:%s:%s", at("m1"), at("nothere"),
	    at("m2"));
	CHECK_INT(cm_k8s_endpoint_kubeconfig(&e, list, NULL, err, sizeof(err)),
	    0);
	CHECK_STR(e.server, "https://second:6443"); // only m2 has it
	CHECK_STR(e.token, "first");		   // first file wins
	CHECK_STR(e.ns, "one");
	cm_k8s_endpoint_clear(&e);

	// $KUBECONFIG when no path is given.
	setenv("KUBECONFIG", list, 1);
	CHECK_INT(cm_k8s_endpoint_kubeconfig(&e, NULL, NULL, err, sizeof(err)),
	    0);
	CHECK_STR(e.token, "first");
	cm_k8s_endpoint_clear(&e);
	unsetenv("KUBECONFIG");
}

// ---------------------------------------------------------------------
// In-cluster

static void
test_incluster(void)
{
	struct cm_k8s_endpoint e;
	struct cm_k8s_settings s;
	char err[512] = "", want[256], sa[200];

	snprintf(sa, sizeof(sa), "%s/sa", dir);
	mkdir(sa, 0700);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("POD_NAMESPACE");
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), -ENOENT);
	CHECK_HAS(err, "not in a cluster");

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), -ENOENT);
	CHECK_HAS(err, "/sa/token");

	put("sa/token", "eyJhbGciOi.x.y\n");
	put("sa/namespace", "team-b\n");
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), 0);
	CHECK_STR(e.server, "https://10.96.0.1:443");
	CHECK_STR(e.ns, "team-b");
	snprintf(want, sizeof(want), "%s/token", sa);
	CHECK_STR(e.token_file, want);
	CHECK(e.ca_file == NULL); // no ca.crt: system roots
	cm_k8s_endpoint_clear(&e);

	put("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	setenv("POD_NAMESPACE", "from-env", 1);
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), 0);
	CHECK_STR(e.server, "https://[fd00:10:96::1]:443");
	CHECK_STR(e.ns, "from-env");
	snprintf(want, sizeof(want), "%s/ca.crt", sa);
	CHECK_STR(e.ca_file, want);
	cm_k8s_endpoint_clear(&e);

	setenv("POD_NAMESPACE", "Not_Valid", 1);
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), -EINVAL);
	unsetenv("POD_NAMESPACE");
	setenv("KUBERNETES_SERVICE_PORT", "99999", 1);
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), -EINVAL);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("KUBERNETES_SERVICE_HOST", "evil/host?x", 1);
	CHECK_INT(cm_k8s_endpoint_incluster(&e, sa, err, sizeof(err)), -EINVAL);

	// auto: in-cluster when the variables are set and no kubeconfig is
	// named; a named kubeconfig wins.
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	cm_k8s_settings_default(&s);
	s.incluster_dir = sa;
	CHECK_INT(cm_k8s_endpoint_resolve(&e, &s, err, sizeof(err)), 0);
	CHECK_STR(e.origin, "in-cluster");
	cm_k8s_endpoint_clear(&e);
	put("kc-auto", kc_basic);
	s.kubeconfig = (char *)at("kc-auto");
	CHECK_INT(cm_k8s_endpoint_resolve(&e, &s, err, sizeof(err)), 0);
	CHECK_STR(e.token, "tok-abc");
	cm_k8s_endpoint_clear(&e);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void
test_client_settings_checked(void)
{
	struct cm_k8s_settings s;
	struct cm_k8s_endpoint e = { 0 };
	struct cm_k8s *k = NULL;
	char err[256] = "";

	cm_k8s_settings_default(&s);
	s.qps = 0;
	e.server = strdup("http://127.0.0.1:1");
	CHECK_INT(cm_k8s_new_endpoint(&k, &s, &e, err, sizeof(err)), -EINVAL);
	CHECK(k == NULL && e.server == NULL); // taken even on failure
	cm_k8s_settings_default(&s);
	e.server = strdup("http://127.0.0.1:1");
	e.token_file = strdup("/nonexistent/token");
	CHECK_INT(cm_k8s_new_endpoint(&k, &s, &e, err, sizeof(err)), -EACCES);
	CHECK_HAS(err, "cannot be read");
	e.server = strdup("https://127.0.0.1:6443");
	e.ns = strdup("x");
	CHECK_INT(cm_k8s_new_endpoint(&k, &s, &e, err, sizeof(err)), 0);
	CHECK_STR(cm_k8s_server(k), "https://127.0.0.1:6443");
	CHECK_STR(cm_k8s_namespace(k), "x");
	cm_k8s_free(k);
	cm_k8s_free(NULL);
}

// ---------------------------------------------------------------------
// Rollout judgments

static void
rollout(enum coord_k8s_kind kind, const char *json,
    struct coord_k8s_rollout *r)
{
	cJSON *o = cJSON_Parse(json);

	CHECK(o != NULL);
	coord_k8s_rollout_of(kind, o, r);
	cJSON_Delete(o);
}

static void
test_rollout_deployment(void)
{
	struct coord_k8s_rollout r;

	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":3},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":2,"
	    "\"replicas\":3,\"updatedReplicas\":3,\"availableReplicas\":3}}", &r);
	CHECK(!r.done && r.in_progress);
	CHECK_HAS(r.reason, "spec update to be observed");
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":3},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":3,"
	    "\"replicas\":4,\"updatedReplicas\":1,\"availableReplicas\":3}}", &r);
	CHECK_STR(r.reason, "1 out of 3 new replicas have been updated");
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":3},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":3,"
	    "\"replicas\":4,\"updatedReplicas\":3,\"availableReplicas\":3}}", &r);
	CHECK_STR(r.reason, "1 old replicas are pending termination");
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":3},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":3,"
	    "\"replicas\":3,\"updatedReplicas\":3,\"availableReplicas\":2}}", &r);
	CHECK_STR(r.reason, "2 of 3 updated replicas are available");
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":3},"
	    "\"spec\":{},\"status\":{\"observedGeneration\":3,\"replicas\":1,"
	    "\"updatedReplicas\":1,\"availableReplicas\":1,\"readyReplicas\":1}}",
	    &r);
	CHECK(r.done && !r.in_progress && r.desired == 1); // default 1
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":2},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":2,"
	    "\"replicas\":3,\"updatedReplicas\":1,\"availableReplicas\":2,"
	    "\"conditions\":[{\"type\":\"Progressing\",\"status\":\"False\","
	    "\"reason\":\"ProgressDeadlineExceeded\"}]}}", &r);
	CHECK(r.failed && !r.done && !r.in_progress);
	CHECK_HAS(r.reason, "progress deadline");
	// C11: paused with a pending template: not "in progress".
	rollout(COORD_K8S_DEPLOYMENT, "{\"metadata\":{\"generation\":5},"
	    "\"spec\":{\"replicas\":3,\"paused\":true},\"status\":"
	    "{\"observedGeneration\":5,\"replicas\":3,\"updatedReplicas\":0,"
	    "\"readyReplicas\":1,\"availableReplicas\":1}}", &r);
	CHECK(r.paused && !r.done && !r.in_progress);
	CHECK_HAS(r.reason, "paused: the rollout cannot progress");
}

static void
test_rollout_sts_ds(void)
{
	struct coord_k8s_rollout r;

	rollout(COORD_K8S_STATEFULSET, "{\"metadata\":{\"generation\":1},"
	    "\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":1,"
	    "\"readyReplicas\":1,\"updatedReplicas\":2,\"currentRevision\":"
	    "\"a\",\"updateRevision\":\"a\"}}", &r);
	CHECK_STR(r.reason, "waiting for 1 pods to be ready");
	rollout(COORD_K8S_STATEFULSET, "{\"metadata\":{\"generation\":1},"
	    "\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":1,"
	    "\"readyReplicas\":3,\"updatedReplicas\":1,\"currentRevision\":"
	    "\"a\",\"updateRevision\":\"b\"}}", &r);
	CHECK_HAS(r.reason, "rolling update to complete 1 pods at revision b");
	rollout(COORD_K8S_STATEFULSET, "{\"metadata\":{\"generation\":1},"
	    "\"spec\":{\"replicas\":3,\"updateStrategy\":{\"type\":"
	    "\"RollingUpdate\",\"rollingUpdate\":{\"partition\":2}}},\"status\":"
	    "{\"observedGeneration\":1,\"readyReplicas\":3,\"updatedReplicas\":1,"
	    "\"currentRevision\":\"a\",\"updateRevision\":\"b\"}}", &r);
	CHECK(r.done); // 1 updated >= 3 - partition 2
	rollout(COORD_K8S_STATEFULSET, "{\"metadata\":{\"generation\":1},"
	    "\"spec\":{\"replicas\":2,\"updateStrategy\":{\"type\":"
	    "\"OnDelete\"}},\"status\":{\"observedGeneration\":1,"
	    "\"readyReplicas\":2,\"currentRevision\":\"a\",\"updateRevision\":"
	    "\"b\"}}", &r);
	CHECK(r.done);
	CHECK_HAS(r.reason, "OnDelete");
	rollout(COORD_K8S_DAEMONSET, "{\"metadata\":{\"generation\":4},"
	    "\"status\":{\"observedGeneration\":4,\"desiredNumberScheduled\":3,"
	    "\"updatedNumberScheduled\":2,\"numberAvailable\":3}}", &r);
	CHECK_STR(r.reason, "2 out of 3 new pods have been updated");
	rollout(COORD_K8S_DAEMONSET, "{\"metadata\":{\"generation\":4},"
	    "\"status\":{\"observedGeneration\":4,\"desiredNumberScheduled\":3,"
	    "\"updatedNumberScheduled\":3,\"numberAvailable\":2}}", &r);
	CHECK_STR(r.reason, "2 of 3 updated pods are available");
	rollout(COORD_K8S_DAEMONSET, "{\"metadata\":{\"generation\":4},"
	    "\"status\":{\"observedGeneration\":4,\"desiredNumberScheduled\":3,"
	    "\"updatedNumberScheduled\":3,\"numberAvailable\":3,"
	    "\"numberReady\":3}}", &r);
	CHECK(r.done && r.ready == 3);
}

// ---------------------------------------------------------------------
// GitOps markers, kinds, config

static void
test_gitops_and_kinds(void)
{
	struct coord_k8s_conf c;
	struct coord_k8s_gitops g;
	enum coord_k8s_kind k;
	cJSON *flux = cJSON_Parse("{\"metadata\":{\"labels\":{\"app\":\"svc-a\","
	    "\"kustomize.toolkit.fluxcd.io/name\":\"apps\"}}}");
	cJSON *argo = cJSON_Parse("{\"metadata\":{\"labels\":"
	    "{\"app.kubernetes.io/instance\":\"app-a\"},\"annotations\":"
	    "{\"argocd.argoproj.io/tracking-id\":\"app-a:apps/Deployment:ns-a/"
	    "svc-a\"}}}");
	cJSON *helm = cJSON_Parse("{\"metadata\":{\"labels\":"
	    "{\"app.kubernetes.io/instance\":\"x\"}}}");
	char *custom[] = { (char *)"app.kubernetes.io/instance" };

	coord_k8s_conf_default(&c);
	coord_k8s_gitops_detect(&c, flux, &g);
	CHECK(g.managed);
	CHECK_STR(g.tool, "flux");
	CHECK_STR(g.marker, "label kustomize.toolkit.fluxcd.io/name=apps");
	coord_k8s_gitops_detect(&c, argo, &g);
	CHECK(g.managed);
	CHECK_STR(g.tool, "argocd");
	CHECK_HAS(g.marker, "annotation argocd.argoproj.io/tracking-id=");
	coord_k8s_gitops_detect(&c, helm, &g);
	CHECK(!g.managed);
	c.gitops_detect = false;
	coord_k8s_gitops_detect(&c, flux, &g);
	CHECK(!g.managed);
	c.gitops_detect = true;
	c.markers = (const char *const *)custom;
	c.n_markers = 1;
	coord_k8s_gitops_detect(&c, helm, &g);
	CHECK(g.managed);
	CHECK_STR(g.tool, "gitops");
	cJSON_Delete(flux);
	cJSON_Delete(argo);
	cJSON_Delete(helm);

	CHECK_INT(coord_k8s_kind_parse("deploy", &k), 0);
	CHECK_INT(k, COORD_K8S_DEPLOYMENT);
	CHECK_INT(coord_k8s_kind_parse("StatefulSet", &k), 0);
	CHECK_INT(k, COORD_K8S_STATEFULSET);
	CHECK_INT(coord_k8s_kind_parse("ds", &k), 0);
	CHECK_INT(k, COORD_K8S_DAEMONSET);
	CHECK_INT(coord_k8s_kind_parse("ReplicaSet", &k), -EINVAL);
	CHECK_INT(coord_k8s_kind_parse(NULL, &k), -EINVAL);
	CHECK_STR(coord_k8s_kind_plural(COORD_K8S_DAEMONSET), "daemonsets");
	CHECK_STR(coord_k8s_resource_api("configmaps"), "v1");
	CHECK_STR(coord_k8s_resource_api("horizontalpodautoscalers"),
	    "autoscaling/v2");
	CHECK(coord_k8s_resource_api("secrets") == NULL);
}

static void
test_conf_checks(void)
{
	struct coord_k8s_conf c;
	char err[512] = "";
	char *bad_marker[] = { (char *)"not a key" };
	char *bad_res[] = { (char *)"secrets" };

	coord_k8s_conf_default(&c);
	CHECK(c.n_markers == coord_k8s_n_default_markers);
	CHECK(c.n_resources == 1);
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)), 0);
	c.gitops_markers.v = bad_marker;
	c.gitops_markers.n = 1;
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "kubernetes.gitops_markers: \"not a key\"");
	c.gitops_markers.n = 0;
	c.config_resources.v = bad_res;
	c.config_resources.n = 1;
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "\"secrets\" is not a resource adjust_config knows");
	c.config_resources.n = 0;
	c.scale_min = 11;
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "scale_min: 11 is above scale_max 10");
	c.scale_min = 1;
	c.job_template = (char *)at("no-such-template.yaml");
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "kubernetes.job_template");
	put("notjob.yaml", "kind: Job\nspec: {}\n");
	c.job_template = (char *)at("notjob.yaml");
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "not a Job");
	put("job.yaml", "kind: Job\nspec:\n  template:\n    spec:\n"
	    "      containers: [{name: a, image: b}]\n");
	c.job_template = (char *)at("job.yaml");
	CHECK_INT(coord_k8s_conf_finish(&c, "f.yaml", err, sizeof(err)), 0);
}

static void
test_load_object(void)
{
	cJSON *o = NULL;
	char err[512] = "";
	char deep[400];
	size_t i, n = 0;

	put("obj.yaml", "a: true\nb: False\nc: ~\nd: 12\ne: \"12\"\n"
	    "f: 1.5e3\ng: [x, 'y', 3]\nh: {i: null}\nj: 0x10\nk: yes\n"
	    "l: ''\n");
	CHECK_INT(coord_k8s_load_object(at("obj.yaml"), &o, err, sizeof(err)),
	    0);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "a")));
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "b")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "c")));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "d")));
	CHECK_STR(cm_k8s_str(o, "e", NULL), "12");
	CHECK(cJSON_GetObjectItem(o, "f")->valuedouble == 1500.0);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(o, "g")), 3);
	CHECK(cJSON_IsNull(cm_k8s_at(o, "h", "i", NULL)));
	CHECK_STR(cm_k8s_str(o, "j", NULL), "0x10"); // not a YAML 1.2 int
	CHECK_STR(cm_k8s_str(o, "k", NULL), "yes");
	CHECK_STR(cm_k8s_str(o, "l", NULL), "");
	cJSON_Delete(o);

	put("obj.json", "  {\"kind\":\"Job\",\"spec\":{}}\n");
	CHECK_INT(coord_k8s_load_object(at("obj.json"), &o, err, sizeof(err)),
	    0);
	CHECK_STR(cm_k8s_str(o, "kind", NULL), "Job");
	cJSON_Delete(o);

	put("bad.json", "{\n\"a\": 1,\n\"b\": }\n");
	CHECK_INT(coord_k8s_load_object(at("bad.json"), &o, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "bad.json:3: not valid JSON");
	put("bad.yaml", "a: 1\nb: [\n");
	CHECK_INT(coord_k8s_load_object(at("bad.yaml"), &o, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "YAML");
	put("list.yaml", "- a\n");
	CHECK_INT(coord_k8s_load_object(at("list.yaml"), &o, err, sizeof(err)),
	    -EINVAL);
	put("dup.yaml", "a: 1\nb: 2\na: 3\n");
	CHECK_INT(coord_k8s_load_object(at("dup.yaml"), &o, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "dup.yaml:3: key \"a\" given twice");
	for (i = 0; i < 80; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "[");
	put("deep.yaml", deep);
	CHECK_INT(coord_k8s_load_object(at("deep.yaml"), &o, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "deep.yaml:1: YAML nests deeper than 64 levels");
	// Aliases that would expand to 10^6 nodes stop at the budget.
	put("bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	    "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n");
	CHECK_INT(coord_k8s_load_object(at("bomb.yaml"), &o, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "too large");
	CHECK_INT(coord_k8s_load_object(at("absent.yaml"), &o, err,
	    sizeof(err)), -ENOENT);
}

// YAML whose load costs grow faster than its size (libyaml searches its
// anchors one by one; compares each %TAG with all before it) is refused
// before libyaml loads it, by the same bounds as the configs: a Job
// template and a kubeconfig alike.
static void
test_yaml_bounded_before_load(void)
{
	struct cm_k8s_endpoint e;
	cJSON *o = NULL;
	char err[512] = "";
	char *s;
	size_t cap = 64 * 1100, n;

	s = malloc(cap);
	if (s == NULL)
		abort();
	n = (size_t)snprintf(s, cap, "kind: Job\nspec:\n");
	for (int i = 0; i <= CM_CONF_MAX_ANCHORS; i++)
		n += (size_t)snprintf(s + n, cap - n, "  k%d: &a%d v\n", i, i);
	put("anchors.yaml", s);
	CHECK_INT(coord_k8s_load_object(at("anchors.yaml"), &o, err,
	    sizeof(err)), -E2BIG);
	CHECK_HAS(err, "anchors.yaml:1003: more than 1000 YAML anchors");
	memset(&e, 0, sizeof(e));
	CHECK(kc(&e, "anchors.yaml", NULL, err) < 0);
	CHECK_HAS(err, "anchors.yaml:1003: more than 1000 YAML anchors");
	cm_k8s_endpoint_clear(&e);
	n = 0;
	for (int i = 0; i <= CM_CONF_MAX_DIRECTIVES; i++)
		n += (size_t)snprintf(s + n, cap - n, "%%TAG !a%d! tag:x,%d:\n",
		    i, i);
	snprintf(s + n, cap - n, "---\nkind: Job\n");
	put("tags.yaml", s);
	CHECK_INT(coord_k8s_load_object(at("tags.yaml"), &o, err,
	    sizeof(err)), -E2BIG);
	CHECK_HAS(err, "tags.yaml:101: more than 100 lines starting with '%'");
	CHECK(kc(&e, "tags.yaml", NULL, err) < 0);
	CHECK_HAS(err, "tags.yaml:101: more than 100 lines starting with '%'");
	cm_k8s_endpoint_clear(&e);
	free(s);
}

static void
quiet(int level, const char *line, void *arg)
{
	(void)level;
	(void)line;
	(void)arg;
}

static const struct tt_case cases[] = {
	{ "YAML bounded before load (Job template, kubeconfig)",
	    test_yaml_bounded_before_load },
	{ "name rules (label, subdomain, dns1035)", test_name_rules },
	{ "label keys and values", test_label_keys_and_values },
	{ "API paths", test_paths },
	{ "query escaping", test_query_escape },
	{ "JSON pointer escaping", test_pointer_escape },
	{ "label selectors", test_selectors },
	{ "JSON accessors and pods", test_accessors_and_pods },
	{ "Status parsing and errno", test_status_parse },
	{ "kubeconfig: contexts, -data, relative paths", test_kubeconfig_basic },
	{ "kubeconfig: refused with file:line", test_kubeconfig_refused },
	{ "kubeconfig: deep nesting refused fast with file:line",
	  test_kubeconfig_deep_nesting },
	{ "kubeconfig: odd but fine", test_kubeconfig_odd_but_fine },
	{ "kubeconfig: merged list and $KUBECONFIG", test_kubeconfig_merge },
	{ "in-cluster config", test_incluster },
	{ "client settings checked", test_client_settings_checked },
	{ "rollout: Deployment", test_rollout_deployment },
	{ "rollout: StatefulSet and DaemonSet", test_rollout_sts_ds },
	{ "GitOps markers and kinds", test_gitops_and_kinds },
	{ "kubernetes: config checks", test_conf_checks },
	{ "object files (YAML and JSON)", test_load_object },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	char cmd[128];
	int rv;

	snprintf(dir, sizeof(dir), "/tmp/reflex-k8su-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	cm_log_set_sink(quiet, NULL);
	rv = tt_run(cases, argc, argv);
	// Test files only, in a directory this run created.
	snprintf(cmd, sizeof(cmd), "%s", dir);
	{
		static const char *const files[] = { "kc1", "bad", "odd", "big",
			"m1", "m2", "kc-auto", "sa/token", "sa/namespace",
			"sa/ca.crt", "notjob.yaml", "job.yaml", "obj.yaml",
			"obj.json", "bad.json", "bad.yaml", "list.yaml",
			"dup.yaml", "deep.yaml", "bomb.yaml" };
		size_t i;

		for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			unlink(at(files[i]));
		rmdir(at("sa"));
		rmdir(cmd);
	}
	return rv;
}
