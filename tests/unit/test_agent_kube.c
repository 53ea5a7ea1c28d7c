// SPDX-License-Identifier: MIT
// Tests for the agent's kubernetes runtime without an API server: service
// names, annotations, the worker pool, and how a pod list becomes the
// table of managed pods (what is registered, probed and how it is shown).
// The client points at 127.0.0.1:1 and is never used: no tick runs.
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent.h"
#include "agent_json.h"
#include "agent_status.h"
#include "agent_kube_int.h"
#include "tt.h"

// ---- pure helpers ---------------------------------------------------------

static cJSON *
pod_json(const char *text)
{
	cJSON *o = cJSON_Parse(text);

	if (o == NULL)
		printf("# bad JSON in the test: %s\n", text);
	return o;
}

static void
check_service(const char *json, const char *want)
{
	cJSON *o = pod_json(json);
	char buf[CM_NAME_MAX];
	const char *got = agent_kube_service_of(o, buf, sizeof(buf));

	if (want == NULL)
		CHECK(got == NULL);
	else
		CHECK_STR(got, want);
	cJSON_Delete(o);
}

static void
test_service_names(void)
{
	// A ReplicaSet named <deployment>-<pod-template-hash>: the
	// Deployment.
	check_service("{\"metadata\":{\"name\":\"web-7b6d9-aaaaa\",\"labels\":"
	    "{\"pod-template-hash\":\"7b6d9\",\"app\":\"other\"},"
	    "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":"
	    "\"web-7b6d9\",\"controller\":true}]}}", "web");
	// A ReplicaSet without the hash label: the ReplicaSet itself.
	check_service("{\"metadata\":{\"name\":\"x\",\"ownerReferences\":"
	    "[{\"kind\":\"ReplicaSet\",\"name\":\"rs-1\",\"controller\":"
	    "true}]}}", "rs-1");
	check_service("{\"metadata\":{\"name\":\"db-0\",\"ownerReferences\":"
	    "[{\"kind\":\"StatefulSet\",\"name\":\"db\",\"controller\":true}]"
	    "}}", "db");
	// A reference that is not the controller does not count.
	check_service("{\"metadata\":{\"name\":\"p\",\"labels\":{\"app\":"
	    "\"api\"},\"ownerReferences\":[{\"kind\":\"ReplicaSet\","
	    "\"name\":\"rs\"}]}}", "api");
	check_service("{\"metadata\":{\"name\":\"p\",\"labels\":"
	    "{\"app.kubernetes.io/name\":\"shop\"}}}", "shop");
	check_service("{\"metadata\":{\"name\":\"bare\"}}", "bare");
	check_service("{}", NULL);
}

static void
test_annotations_parsed(void)
{
	CHECK_INT(agent_kube_port_parse("8080"), 8080);
	CHECK_INT(agent_kube_port_parse("1"), 1);
	CHECK_INT(agent_kube_port_parse("65535"), 65535);
	CHECK_INT(agent_kube_port_parse("0"), -EINVAL);
	CHECK_INT(agent_kube_port_parse("65536"), -EINVAL);
	CHECK_INT(agent_kube_port_parse("80a"), -EINVAL);
	CHECK_INT(agent_kube_port_parse("+80"), -EINVAL);
	CHECK_INT(agent_kube_port_parse(""), -EINVAL);
	CHECK_INT(agent_kube_port_parse("0000080"), -EINVAL);
	CHECK_INT(agent_kube_port_parse(NULL), -EINVAL);
	CHECK(agent_kube_path_valid("/healthz?full=1"));
	CHECK(!agent_kube_path_valid("healthz"));
	CHECK(!agent_kube_path_valid("/a b"));
	CHECK(!agent_kube_path_valid("/a\r\nHost: x"));
	CHECK(!agent_kube_path_valid(NULL));
	CHECK_STR(agent_pod_state_name(AGENT_POD_TERMINATING), "terminating");
	CHECK_STR(agent_pod_state_name(99), "unknown");
}

// ---- the worker pool ------------------------------------------------------

struct tjob {
	struct agent_kjob base;
	int value;
	atomic_int *disposed;
};

static atomic_int wakes;

static void
tjob_run(struct agent_kjob *j)
{
	((struct tjob *)j)->value *= 2;
}

static void
tjob_dispose(struct agent_kjob *j)
{
	atomic_fetch_add(((struct tjob *)j)->disposed, 1);
	free(j);
}

static void
on_wake(void *arg)
{
	(void)arg;
	atomic_fetch_add(&wakes, 1);
}

static struct tjob *
tjob_new(int v, atomic_int *disposed)
{
	struct tjob *j = calloc(1, sizeof(*j));

	j->base.run = tjob_run;
	j->base.dispose = tjob_dispose;
	j->value = v;
	j->disposed = disposed;
	return j;
}

static void
test_workers_run_jobs(void)
{
	struct agent_kwork *w = NULL;
	atomic_int disposed = 0;
	int sum = 0, got = 0;

	CHECK_INT(agent_kwork_new(0, on_wake, NULL, &w), -EINVAL);
	CHECK_INT(agent_kwork_new(AGENT_KWORK_MAX_THREADS + 1, on_wake, NULL,
	    &w), -EINVAL);
	if (agent_kwork_new(3, on_wake, NULL, &w) < 0) {
		CHECK(!"kwork");
		return;
	}
	for (int i = 1; i <= 20; i++)
		agent_kwork_submit(w, &tjob_new(i, &disposed)->base);
	for (int tries = 0; got < 20 && tries < 5000; tries++) {
		struct agent_kjob *j = agent_kwork_take(w);

		if (j == NULL) {
			usleep(1000);
			continue;
		}
		sum += ((struct tjob *)j)->value;
		got++;
		j->dispose(j);
	}
	CHECK_INT(got, 20);
	CHECK_INT(sum, 2 * 210); // every job ran once
	CHECK_INT(atomic_load(&wakes), 20);
	CHECK_INT(agent_kwork_busy(w), 0);
	// Finished but not taken: disposed by free.
	agent_kwork_submit(w, &tjob_new(1, &disposed)->base);
	agent_kwork_free(w);
	CHECK_INT(atomic_load(&disposed), 21);
}

// ---- the pod table --------------------------------------------------------

#define CONF_FMT                                                            \
	"node: node-c\n"                                                    \
	"coordinator: tcp://127.0.0.1:9\n"                                  \
	"listen: tcp://127.0.0.1:9\n"                                       \
	"runtime: kubernetes\n"                                             \
	"kubernetes:\n"                                                     \
	"  client: { source: kubeconfig, kubeconfig: %s }\n"                \
	"workloads:\n"                                                      \
	"  - namespace: ns-a\n"                                             \
	"    selector: { app: svc-a }\n"                                    \
	"    probe: { path: /healthz, port: 8080 }\n"                       \
	"  - name: db\n"                                                    \
	"    selector: { tier: db }\n"

#define KUBECONFIG                                                          \
	"apiVersion: v1\nkind: Config\ncurrent-context: t\n"                \
	"clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n" \
	"users:\n- name: u\n  user:\n    token: t0k3n\n"                     \
	"contexts:\n- name: t\n  context:\n    cluster: c\n    user: u\n"

#define POD(ns, name, uid, extra_meta, status)                              \
	"{\"metadata\":{\"namespace\":\"" ns "\",\"name\":\"" name "\","    \
	"\"uid\":\"" uid "\"" extra_meta "},\"spec\":{\"nodeName\":"        \
	"\"node-c\"},\"status\":" status "}"

#define RUNNING(ip)                                                         \
	"{\"phase\":\"Running\",\"podIP\":\"" ip "\",\"conditions\":"       \
	"[{\"type\":\"Ready\",\"status\":\"True\"}]}"

static const char *const items_text = "["
    POD("ns-a", "svc-a-7b6d9-aaaaa", "u1", ",\"labels\":{\"app\":\"svc-a\","
	"\"pod-template-hash\":\"7b6d9\"},\"ownerReferences\":[{\"kind\":"
	"\"ReplicaSet\",\"name\":\"svc-a-7b6d9\",\"uid\":\"r1\","
	"\"controller\":true}]", RUNNING("10.0.0.5")) ","
    POD("ns-b", "db-0", "u2", ",\"labels\":{\"tier\":\"db\"},"
	"\"ownerReferences\":[{\"kind\":\"StatefulSet\",\"name\":\"pg\","
	"\"uid\":\"s1\",\"controller\":true}]", RUNNING("10.0.0.6")) ","
    POD("ns-c", "web-x", "u3", ",\"labels\":{\"app\":\"web\"},"
	"\"annotations\":{\"reflex.io/probe-port\":\"9090\","
	"\"reflex.io/probe-path\":\"/ready\"}", RUNNING("10.0.0.7")) ","
    POD("ns-c", "lone", "u4", ",\"annotations\":{\"reflex.io/probe-port\":"
	"\"abc\"}", RUNNING("10.0.0.8")) ","
    POD("kube-system", "coredns-x", "u5", ",\"labels\":{\"k8s-app\":"
	"\"kube-dns\"}", RUNNING("10.0.0.9")) ","
    POD("ns-a", "svc-a-7b6d9-ppppp", "u6", ",\"labels\":{\"app\":\"svc-a\"}",
	"{\"phase\":\"Pending\"}") ","
    POD("Bad_NS", "x", "u7", "", RUNNING("10.0.0.10")) ","
    POD("ns-c", "v6", "u8", ",\"annotations\":{\"reflex.io/probe-port\":"
	"\"80\"}", RUNNING("fd00::5")) ","
    POD("ns-c", "not-an-ip", "u9", ",\"annotations\":"
	"{\"reflex.io/probe-port\":\"81\"}", RUNNING("10.0.0.1; rm")) "]";

struct kfix {
	char dir[64];
	char kc[128];
	struct agent_conf conf;
	struct agent_http *http;
	struct agent_actlog log;
	struct agent_kube *k;
};

static int
kfix_open(struct kfix *f)
{
	char conf[1024], err[512];
	FILE *fp;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/reflex-kube-unit-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->kc, sizeof(f->kc), "%s/kubeconfig", f->dir);
	fp = fopen(f->kc, "w");
	if (fp == NULL)
		return -1;
	fputs(KUBECONFIG, fp);
	fclose(fp);
	snprintf(conf, sizeof(conf), CONF_FMT, f->kc);
	if (agent_conf_load_mem(&f->conf, "t.yaml", conf, err,
	    sizeof(err)) < 0 || agent_http_new(&f->http) < 0 ||
	    agent_kube_new(&f->conf, f->http, &f->log, on_wake, NULL, &f->k,
	    err, sizeof(err)) < 0) {
		printf("# %s\n", err);
		return -1;
	}
	return 0;
}

static void
kfix_close(struct kfix *f)
{
	agent_kube_free(f->k);
	agent_http_free(f->http);
	agent_conf_free(&f->conf);
	unlink(f->kc);
	rmdir(f->dir);
}

static void
apply_text(struct agent_kube *k, const char *text)
{
	cJSON *items = cJSON_Parse(text);

	CHECK(cJSON_IsArray(items));
	kube_apply_items(k, items, 1000);
	cJSON_Delete(items);
}

static const struct agent_pod *
pod(struct agent_kube *k, const char *ns, const char *name)
{
	return kube_pod_find(k, ns, name);
}

static void
test_pod_list_becomes_table(void)
{
	struct cm_workload *w = NULL;
	const struct agent_pod *p;
	struct kfix f;
	char buf[600];
	size_t n = 0;

	if (kfix_open(&f) < 0) {
		CHECK(!"fixture");
		kfix_close(&f);
		return;
	}
	CHECK(!agent_kube_take_changed(f.k));
	apply_text(f.k, items_text);
	CHECK(agent_kube_take_changed(f.k)); // register again
	CHECK(!agent_kube_take_changed(f.k));
	CHECK_INT(agent_kube_pods(f.k) != NULL, 1);
	CHECK(pod(f.k, "Bad_NS", "x") == NULL); // invalid: skipped

	p = pod(f.k, "ns-a", "svc-a-7b6d9-aaaaa");
	CHECK(p != NULL && p->managed);
	if (p != NULL) {
		CHECK_STR(p->service, "svc-a"); // the Deployment
		CHECK_STR(p->addr, "10.0.0.5:8080");
		CHECK(p->has_probe && p->probe_type == AGENT_KPROBE_HTTP);
		CHECK_STR(p->path, "/healthz");
		CHECK_STR(p->owner_uid, "r1");
		CHECK_STR(p->selector, "app=svc-a"); // no hash label
		CHECK_INT(agent_pod_state(p), AGENT_POD_STARTING);
		CHECK(!agent_pod_ready(p, 0, buf, sizeof(buf)));
		CHECK_STR(buf, "starting (probe not passed yet)");
	}
	p = pod(f.k, "ns-b", "db-0");
	CHECK(p != NULL && p->managed && !p->has_probe);
	if (p != NULL) {
		CHECK_STR(p->service, "db"); // the entry's name
		CHECK_STR(p->addr, "10.0.0.6");
		CHECK_INT(agent_pod_state(p), AGENT_POD_RUNNING); // API Ready
	}
	p = pod(f.k, "ns-c", "web-x"); // annotations only
	CHECK(p != NULL && p->managed && p->wl == NULL);
	if (p != NULL) {
		CHECK_STR(p->service, "web");
		CHECK_STR(p->addr, "10.0.0.7:9090");
		CHECK(p->probe_type == AGENT_KPROBE_HTTP);
		CHECK_STR(p->path, "/ready");
	}
	p = pod(f.k, "ns-c", "lone");
	CHECK(p != NULL && !p->managed);
	if (p != NULL)
		CHECK_HAS(p->why_unmanaged, "bad reflex.io/probe-port");
	p = pod(f.k, "kube-system", "coredns-x");
	CHECK(p != NULL && !p->managed);
	if (p != NULL)
		CHECK_HAS(p->why_unmanaged, "no workload covers it");
	p = pod(f.k, "ns-a", "svc-a-7b6d9-ppppp");
	CHECK(p != NULL && p->managed);
	if (p != NULL) {
		CHECK_STR(p->addr, "");
		CHECK_INT(agent_pod_state(p), AGENT_POD_PENDING);
	}
	p = pod(f.k, "ns-c", "v6");
	CHECK(p != NULL && p->managed && p->probe_type == AGENT_KPROBE_TCP);
	if (p != NULL)
		CHECK_STR(p->addr, "[fd00::5]:80");
	p = pod(f.k, "ns-c", "not-an-ip"); // a podIP that is not an IP
	CHECK(p != NULL && p->ip[0] == '\0');
	if (p != NULL)
		CHECK_INT(agent_pod_state(p), AGENT_POD_PENDING);

	CHECK_INT(agent_kube_workloads(f.k, &w, &n), 0);
	CHECK_INT(n, 6);
	if (n == 6) {
		CHECK_STR(w[0].instance, "svc-a-7b6d9-aaaaa"); // ns/name order
		CHECK_STR(w[1].instance, "svc-a-7b6d9-ppppp");
		CHECK_STR(w[2].service, "db");
		CHECK(w[2].healthy);
		CHECK(!w[0].healthy);
	}
	free(w);
	CHECK_INT(agent_kube_unhealthy(f.k), 5);
	CHECK(agent_kube_find(f.k, "svc-a", "svc-a-7b6d9-aaaaa") != NULL);
	CHECK(agent_kube_find(f.k, "other", "svc-a-7b6d9-aaaaa") == NULL);
	CHECK(agent_kube_find(f.k, "coredns-x", "coredns-x") == NULL);
	CHECK(agent_kube_next_wanted(f.k) == NULL);

	// The same list again changes nothing; a pod that went away and
	// one replaced under the same name (new uid) do.
	apply_text(f.k, items_text);
	CHECK(!agent_kube_take_changed(f.k));
	apply_text(f.k, "["
	    POD("ns-b", "db-0", "u2-new", ",\"labels\":{\"tier\":\"db\"}",
	    RUNNING("10.0.0.16")) "]");
	CHECK(agent_kube_take_changed(f.k));
	CHECK(pod(f.k, "ns-a", "svc-a-7b6d9-aaaaa") == NULL);
	p = pod(f.k, "ns-b", "db-0");
	CHECK(p != NULL && strcmp(p->uid, "u2-new") == 0);
	if (p != NULL)
		CHECK_STR(p->addr, "10.0.0.16");
	kfix_close(&f);
}

static void
test_verdicts_on_pods(void)
{
	struct agent_pod *p;
	struct kfix f;
	char why[300];

	if (kfix_open(&f) < 0) {
		CHECK(!"fixture");
		kfix_close(&f);
		return;
	}
	apply_text(f.k, items_text);
	p = kube_pod_find(f.k, "ns-b", "db-0");
	if (p == NULL) {
		CHECK(!"db-0");
		kfix_close(&f);
		return;
	}
	p->permit.phase = AGENT_PERMIT_WANTED;
	p->permit.wanted_ms = 5;
	CHECK(agent_kube_next_wanted(f.k) == p);
	agent_kube_permit_decided(f.k, p, AGENT_VERDICT_REFUSED, "no", 1000);
	CHECK_INT(p->permit.phase, AGENT_PERMIT_HELD);
	CHECK_INT(p->permit.retry_ms, 1000 + 10000); // restart_backoff 10s
	CHECK(!p->evicting);
	CHECK(agent_kube_next_wanted(f.k) == NULL);
	// The partition policy counts what the agent decided to evict.
	CHECK_INT(agent_kube_own_since(f.k, "db", 0), 0);
	kube_own_add(f.k, "db", 2000);
	CHECK_INT(agent_kube_own_since(f.k, "db", 0), 1);
	CHECK_INT(agent_kube_own_since(f.k, "db", 2001), 0);
	CHECK(!agent_partition_check(p->policy, "db", 1, "unreachable", why,
	    sizeof(why)));
	CHECK_STR(why, "partition policy: 1 restart of db within 600 s "
	    "already (unreachable)");
	kfix_close(&f);
}

static void
test_status_document(void)
{
	struct agent_link_view lv = { .url = "tcp://127.0.0.1:9",
		.last_error = "" };
	struct agent_stats st = { .sealed = true };
	struct kfix f;
	char *json = NULL, *text = NULL;
	size_t len = 0, full;
	cJSON *doc, *pods, *p;
	FILE *out;

	if (kfix_open(&f) < 0) {
		CHECK(!"fixture");
		kfix_close(&f);
		return;
	}
	apply_text(f.k, items_text);
	CHECK_INT(agent_json_kube_status(f.k, "node-c", &lv, &st, &f.log, 0,
	    AGENT_STATUS_JSON_MAX, &json), 0);
	doc = cJSON_Parse(json);
	pods = cJSON_GetObjectItem(doc, "pods");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "runtime")),
	    "kubernetes");
	CHECK_INT(cJSON_GetArraySize(pods), 8);
	p = cJSON_GetArrayItem(pods, 1); // ns-a/svc-a-7b6d9-aaaaa
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")),
	    "svc-a-7b6d9-aaaaa");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "owner")),
	    "ReplicaSet/svc-a-7b6d9");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(
	    p, "probe"), "target")), ":8080/healthz");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(p, "permit")));
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(
	    doc, "kubernetes"), "managed")), 6);
	// Printed for a person.
	out = open_memstream(&text, &len);
	CHECK_INT(agent_status_print(out, json), 0);
	fclose(out);
	CHECK_HAS(text, "node         node-c (runtime kubernetes)");
	CHECK_HAS(text, "8 pods on the node, 6 managed");
	CHECK_HAS(text, "ns-a/svc-a-7b6d9-aaaaa           svc-a            "
	    "10.0.0.5:8080         starting    http:8080/healthz not yet");
	CHECK_HAS(text, "other pods on the node (not managed)");
	CHECK_HAS(text, "kube-system/coredns-x");
	CHECK_HAS(text, "no workload covers it");
	free(text);
	full = strlen(json);
	free(json);
	cJSON_Delete(doc);
	// Too little room: unmanaged pods go first, then the details.
	json = NULL;
	CHECK_INT(agent_json_kube_status(f.k, "node-c", &lv, &st, &f.log, 0,
	    full - 10, &json), 0);
	doc = cJSON_Parse(json);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "pods")), 6);
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(
	    doc, "kubernetes"), "pods_omitted")), 2);
	CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc,
	    "pods"), 0), "probe") != NULL);
	cJSON_Delete(doc);
	free(json);
	json = NULL;
	CHECK_INT(agent_json_kube_status(f.k, "node-c", &lv, &st, &f.log, 0,
	    full / 2, &json), 0);
	doc = cJSON_Parse(json);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "pods")), 6);
	CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc,
	    "pods"), 0), "probe") == NULL);
	cJSON_Delete(doc);
	free(json);
	CHECK_INT(agent_json_kube_status(f.k, "node-c", &lv, &st, &f.log, 0,
	    100, &json), -E2BIG);
	kfix_close(&f);
}

static const struct tt_case cases[] = {
	{ "service names", test_service_names },
	{ "annotations parsed", test_annotations_parsed },
	{ "workers run jobs", test_workers_run_jobs },
	{ "a pod list becomes the table", test_pod_list_becomes_table },
	{ "verdicts on pods", test_verdicts_on_pods },
	{ "status document", test_status_document },
	{ NULL, NULL },
};

TT_MAIN(cases)
