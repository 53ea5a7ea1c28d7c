// SPDX-License-Identifier: MIT
// Tests of the Alertmanager webhook parser (coordinator/coord_alert.c)
// against captured Alertmanager 0.25 bodies, the project's case files and
// malformed or mutated input.
//
// Data files live in tests/data/webhook/. Set REFLEX_TEST_DATA to that
// directory to override where they are looked up; by default the test
// finds them from its own source path or by walking up from the binary.
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_time.h"
#include "cm_msg.h"
#include "coord_alert.h"
#include "notif_eq.h"
#include "tt.h"

// ---- helpers -------------------------------------------------------------

static char data_dir[PATH_MAX];

static bool
dir_has_data(const char *dir)
{
	char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/am025-full.json", dir);
	return access(p, R_OK) == 0;
}

static const char *
find_data_dir(void)
{
	char exe[PATH_MAX], src[PATH_MAX], cand[PATH_MAX + 64];
	const char *env = getenv("REFLEX_TEST_DATA");
	ssize_t n;
	char *d;
	int up;

	if (data_dir[0] != '\0')
		return data_dir;
	if (env != NULL && dir_has_data(env)) {
		snprintf(data_dir, sizeof(data_dir), "%s", env);
		return data_dir;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	// __FILE__ is this source as the compiler saw it: absolute, or
	// relative to the build root (the binary sits in <build>/tests/).
	snprintf(src, sizeof(src), "%s", __FILE__);
	d = dirname(src);
	if (d[0] == '/') {
		snprintf(cand, sizeof(cand), "%s/../data/webhook", d);
	} else {
		char bin[PATH_MAX];

		snprintf(bin, sizeof(bin), "%s", exe);
		snprintf(cand, sizeof(cand), "%s/../%s/../data/webhook",
		    dirname(bin), d);
	}
	if (dir_has_data(cand)) {
		snprintf(data_dir, sizeof(data_dir), "%s", cand);
		return data_dir;
	}
	// A build directory inside the source tree: walk up from the binary.
	d = dirname(exe);
	for (up = 0; up < 6 && strcmp(d, "/") != 0; up++) {
		snprintf(cand, sizeof(cand), "%s/tests/data/webhook", d);
		if (dir_has_data(cand)) {
			snprintf(data_dir, sizeof(data_dir), "%s", cand);
			return data_dir;
		}
		d = dirname(d);
	}
	return NULL;
}

// Reads a data file into a buffer of exactly its size (no NUL), so that
// ASan flags any read past the end by the parser.
static char *
slurp(const char *name, size_t *ret_len)
{
	const char *dir = find_data_dir();
	char path[PATH_MAX + 128];
	char *buf = NULL;
	long sz;
	FILE *f;

	*ret_len = 0;
	if (dir == NULL) {
		printf("# test data directory not found (set "
		    "REFLEX_TEST_DATA)\n");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL) {
		printf("# cannot open %s\n", path);
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)sz);
		if (buf != NULL && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
			*ret_len = (size_t)sz;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

static cJSON *
load_json(const char *name)
{
	size_t len;
	char *buf = slurp(name, &len);
	cJSON *j;

	if (buf == NULL)
		return NULL;
	j = cJSON_ParseWithLength(buf, len);
	free(buf);
	return j;
}

// One memo for every body the tests parse: coord_webhook_parse_memo
// meets the sets of all of them, under every limit they use.
static struct coord_setmemo *memo;
static int memo_differs;

// Parses `len` bytes copied into an exact-size heap buffer. Every body
// is parsed through the memo too, twice (the second time it holds the
// body's sets if the first read them): both must give the same result,
// error message and notification (memo_differs counts those that did
// not; test_set_memo_all checks it).
static int
parse_n(const char *body, size_t len, const struct coord_webhook_limits *lim,
    struct coord_notification **ret, char *err, size_t errlen)
{
	char *copy = malloc(len > 0 ? len : 1);
	int rv;

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, body, len);
	rv = coord_webhook_parse(ret, copy, len, lim, err, errlen);
	if (memo == NULL)
		memo = coord_setmemo_new();
	for (int k = 0; k < 2 && memo != NULL; k++) {
		struct coord_notification *m = NULL;
		char merr[512] = "";
		int mrv = coord_webhook_parse_memo(&m, copy, len, lim, memo,
		    merr, sizeof(merr));

		if (mrv != rv || !notif_eq(m, *ret) || (err != NULL &&
		    strncmp(merr, err, errlen > 0 ? errlen - 1 : 0) != 0)) {
			if (memo_differs++ < 5)
				printf("# memo differs (pass %d): %d/%d %s\n",
				    k, mrv, rv, merr);
		}
		coord_notification_free(m);
	}
	free(copy);
	return rv;
}

static int
parse_s(const char *body, struct coord_notification **ret, char *err,
    size_t errlen)
{
	return parse_n(body, strlen(body), NULL, ret, err, errlen);
}

// Serialises a case file's "body" object and parses it.
static int
parse_case_body(const cJSON *body, struct coord_notification **ret,
    char *err, size_t errlen)
{
	char *text = cJSON_PrintUnformatted(body);
	int rv;

	if (text == NULL)
		return -ENOMEM;
	rv = parse_n(text, strlen(text), NULL, ret, err, errlen);
	free(text);
	return rv;
}

static const char *
jstr(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static const struct coord_alert *
alert_by_fp(const struct coord_notification *n, const char *fp)
{
	size_t i;

	for (i = 0; i < n->n_alerts; i++)
		if (strcmp(n->alerts[i].fingerprint, fp) == 0)
			return &n->alerts[i];
	return NULL;
}

// Structural invariants every successful parse must hold.
static bool
kvs_ok(const struct coord_kvs *kvs)
{
	size_t i;

	for (i = 0; i < kvs->n; i++) {
		if (kvs->v[i].key == NULL || kvs->v[i].val == NULL)
			return false;
		if (!cm_utf8_valid(kvs->v[i].val, strlen(kvs->v[i].val)))
			return false;
		if (i > 0 && strcmp(kvs->v[i - 1].key, kvs->v[i].key) >= 0)
			return false;
	}
	return true;
}

// The set as the journal stores it (coord_alert.h, labels_json), written
// here independently: "k":"v" entries in the set's order, no space, '"',
// '\\' and control bytes escaped, nothing else. Returns a malloc'd text.
static size_t
canon_str(char *t, size_t o, const char *s)
{
	t[o++] = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0';
	    c++) {
		if (*c == '"' || *c == '\\') {
			t[o++] = '\\';
			t[o++] = (char)*c;
		} else if (*c < 0x20) {
			o += (size_t)sprintf(t + o, "\\u%04x", *c);
		} else {
			t[o++] = (char)*c;
		}
	}
	t[o++] = '"';
	return o;
}

static char *
canon_json(const struct coord_kvs *kvs)
{
	size_t cap = 3, o = 0;
	char *t;

	for (size_t i = 0; i < kvs->n; i++)
		cap += 6 * (strlen(kvs->v[i].key) + strlen(kvs->v[i].val)) + 6;
	t = malloc(cap);
	if (t == NULL)
		abort();
	t[o++] = '{';
	for (size_t i = 0; i < kvs->n; i++) {
		if (i > 0)
			t[o++] = ',';
		o = canon_str(t, o, kvs->v[i].key);
		t[o++] = ':';
		o = canon_str(t, o, kvs->v[i].val);
	}
	t[o++] = '}';
	t[o] = '\0';
	return t;
}

// An alert's labels_json / annotations_json, when set, is canon_json of
// its set, with its length.
static bool
set_json_ok(const char *json, size_t len, const struct coord_kvs *kvs)
{
	char *want;
	bool ok;

	if (json == NULL)
		return true;
	want = canon_json(kvs);
	ok = strlen(json) == len && strcmp(json, want) == 0;
	if (!ok)
		printf("# set text %s, journal's %s\n", json, want);
	free(want);
	return ok;
}

static bool
notification_ok(const struct coord_notification *n)
{
	size_t i;

	if (strcmp(n->version, "4") != 0 || n->receiver == NULL ||
	    n->status == NULL || n->group_key == NULL ||
	    n->external_url == NULL || n->truncated_alerts < 0)
		return false;
	if (!kvs_ok(&n->group_labels) || !kvs_ok(&n->common_labels) ||
	    !kvs_ok(&n->common_annotations))
		return false;
	for (i = 0; i < n->n_alerts; i++) {
		const struct coord_alert *a = &n->alerts[i];
		const char *name = coord_kvs_get(&a->labels, "alertname");

		if (name == NULL || name[0] == '\0' || !kvs_ok(&a->labels) ||
		    !kvs_ok(&a->annotations) || a->generator_url == NULL ||
		    a->fingerprint == NULL)
			return false;
		if (!set_json_ok(a->labels_json, a->labels_json_len,
		    &a->labels) || !set_json_ok(a->annotations_json,
		    a->annotations_json_len, &a->annotations))
			return false;
	}
	return true;
}

// ---- captured Alertmanager 0.25 bodies -----------------------------------

static void
test_real_body_all_fields(void)
{
	struct coord_notification *n = NULL;
	const struct coord_alert *a;
	char err[256] = "";
	size_t len;
	char *body = slurp("am025-full.json", &len);
	int rv;

	CHECK(body != NULL);
	if (body == NULL)
		return;
	rv = coord_webhook_parse(&n, body, len, NULL, err, sizeof(err));
	free(body);
	CHECK_INT(rv, 0);
	if (rv != 0) {
		printf("# %s\n", err);
		return;
	}
	CHECK(notification_ok(n));
	CHECK_STR(n->version, "4");
	CHECK_STR(n->receiver, "web\\.hook"); // regexp.QuoteMeta'd name
	CHECK_STR(n->status, "firing");
	CHECK_STR(n->group_key, "{}:{alertname=\"HighErrorRate\"}");
	CHECK_STR(n->external_url, "http://vm:19093");
	CHECK_INT(n->truncated_alerts, 0);
	CHECK_INT(n->group_labels.n, 1);
	CHECK_STR(coord_kvs_get(&n->group_labels, "alertname"),
	    "HighErrorRate");
	CHECK_INT(n->common_labels.n, 2);
	CHECK_STR(coord_kvs_get(&n->common_labels, "job"), "demo");
	CHECK_INT(n->common_annotations.n, 0);
	CHECK_INT(n->n_alerts, 2);
	if (n->n_alerts != 2)
		goto out;

	a = &n->alerts[0];
	CHECK(a->firing);
	CHECK_INT(a->labels.n, 6);
	CHECK_STR(a->labels.v[0].key, "alertname"); // sorted by key
	CHECK_STR(a->labels.v[5].key, "team");
	CHECK_STR(coord_kvs_get(&a->labels, "alertname"), "HighErrorRate");
	CHECK_STR(coord_kvs_get(&a->labels, "instance"), "10.0.0.7:8080");
	CHECK_STR(coord_kvs_get(&a->labels, "service"), "demo-api");
	CHECK_STR(coord_kvs_get(&a->labels, "severity"), "critical");
	CHECK_STR(coord_kvs_get(&a->labels, "team"),
	    "\xc3\xa9quipe-\xce\xb1"); // "équipe-α"
	CHECK(coord_kvs_get(&a->labels, "nope") == NULL);
	CHECK_INT(a->annotations.n, 2);
	CHECK_STR(coord_kvs_get(&a->annotations, "description"),
	    "Error ratio is 0.12 on 10.0.0.7:8080\nline two \"quoted\"");
	CHECK_STR(coord_kvs_get(&a->annotations, "summary"),
	    "demo-api 5xx ratio above 5%");
	// 2026-12-04T15:40:00.123456789+01:00, fraction truncated.
	CHECK_INT(a->starts_ms, 1796395200123LL);
	CHECK(a->ends_ms == CM_TIME_NONE);
	CHECK_STR(a->generator_url,
	    "http://127.0.0.1:19090/graph?g0.expr=rate%28http_errors_total"
	    "%5B1m%5D%29+%3E+0.05&g0.tab=1"); // "\u0026" decoded
	CHECK_STR(a->fingerprint, "4c21236dbaa3b4a9");

	a = &n->alerts[1];
	CHECK(!a->firing);
	CHECK_STR(coord_kvs_get(&a->labels, "service"), "demo-web");
	CHECK_INT(a->starts_ms, 1796398200000LL);
	CHECK_INT(a->ends_ms, 1796399070500LL);
	CHECK_STR(a->generator_url, "http://127.0.0.1:19090/graph?g0.expr=x");
	CHECK_STR(a->fingerprint, "5d0e407cef064e64");
out:
	coord_notification_free(n);
}

static void
test_real_body_truncated(void)
{
	struct coord_notification *n = NULL;
	char err[256] = "";
	size_t len, i;
	char *body = slurp("am025-truncated.json", &len);
	int rv;

	CHECK(body != NULL);
	if (body == NULL)
		return;
	rv = coord_webhook_parse(&n, body, len, NULL, err, sizeof(err));
	free(body);
	CHECK_INT(rv, 0);
	if (rv != 0)
		return;
	CHECK_INT(n->truncated_alerts, 1);
	CHECK_INT(n->n_alerts, 2);
	for (i = 0; i < n->n_alerts; i++) {
		CHECK_STR(n->alerts[i].generator_url, "");
		CHECK_INT(n->alerts[i].annotations.n, 0);
		CHECK_INT(n->alerts[i].starts_ms, 1796399180214LL);
	}
	coord_notification_free(n);
}

// ---- the project's case files --------------------------------------------

static void
test_c01_ha_duplicates_identity(void)
{
	static const char *const ign[] = { "prometheus_replica" };
	cJSON *c = load_json("C01-ha-duplicate-delivery.json");
	const cJSON *dl, *d;
	uint64_t with_ign[8], without[8];
	char ext[8][64];
	size_t k = 0, i;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	dl = cJSON_GetObjectItemCaseSensitive(c, "deliveries");
	CHECK_INT(cJSON_GetArraySize(dl), 5);
	cJSON_ArrayForEach(d, dl) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv;

		if (k == 8)
			break;
		rv = parse_case_body(cJSON_GetObjectItemCaseSensitive(d,
		    "body"), &n, err, sizeof(err));
		CHECK_INT(rv, 0);
		if (rv != 0) {
			printf("# delivery %zu: %s\n", k, err);
			continue;
		}
		CHECK(notification_ok(n));
		CHECK_INT(n->n_alerts, 1);
		snprintf(ext[k], sizeof(ext[k]), "%s", n->external_url);
		with_ign[k] = coord_alert_identity(&n->alerts[0], ign, 1);
		without[k] = coord_alert_identity(&n->alerts[0], NULL, 0);
		coord_notification_free(n);
		k++;
	}
	CHECK_INT(k, 5);
	if (k != 5)
		goto out;
	// Copies from both peers: different externalURL, same identity.
	CHECK(strcmp(ext[0], ext[1]) != 0);
	for (i = 1; i < 5; i++)
		CHECK(with_ign[i] == with_ign[0]);
	for (i = 1; i < 4; i++)
		CHECK(without[i] == without[0]);
	// The replica-labelled copy differs unless the label is ignored.
	CHECK(without[4] != without[0]);
out:
	cJSON_Delete(c);
}

static void
test_c03_timestamps_from_case_file(void)
{
	cJSON *c = load_json("C03-zero-endsat-timestamps.json");
	struct coord_notification *n = NULL;
	const cJSON *exp, *e;
	char err[256] = "";
	int rv, seen = 0;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	rv = parse_case_body(cJSON_GetObjectItemCaseSensitive(c, "body"), &n,
	    err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv != 0) {
		printf("# %s\n", err);
		goto out;
	}
	CHECK_INT(n->n_alerts, 3);
	exp = cJSON_GetObjectItemCaseSensitive(c, "expected_parse");
	cJSON_ArrayForEach(e, exp) {
		const struct coord_alert *a = alert_by_fp(n,
		    jstr(e, "fingerprint"));
		const cJSON *v;
		const char *state = jstr(e, "state");

		CHECK(a != NULL);
		if (a == NULL)
			continue;
		seen++;
		v = cJSON_GetObjectItemCaseSensitive(e, "startsAt_epoch_ms");
		if (cJSON_IsNumber(v))
			CHECK_INT(a->starts_ms, (int64_t)v->valuedouble);
		v = cJSON_GetObjectItemCaseSensitive(e, "endsAt_epoch_ms");
		if (cJSON_IsNumber(v))
			CHECK_INT(a->ends_ms, (int64_t)v->valuedouble);
		if (jstr(e, "endsAt") != NULL &&
		    strncmp(jstr(e, "endsAt"), "none", 4) == 0)
			CHECK(a->ends_ms == CM_TIME_NONE);
		CHECK(state != NULL);
		if (state != NULL)
			CHECK_INT(a->firing, strcmp(state, "firing") == 0);
	}
	CHECK_INT(seen, 3);
	// The values themselves, in case the file's expectations change.
	CHECK_INT(alert_by_fp(n, "1111111111111111")->starts_ms,
	    1796378395000LL);
	CHECK_INT(alert_by_fp(n, "2222222222222222")->starts_ms,
	    1796377637113LL);
	CHECK_INT(alert_by_fp(n, "3333333333333333")->ends_ms,
	    1796379300500LL);
	CHECK(alert_by_fp(n, "2222222222222222")->ends_ms == CM_TIME_NONE);
out:
	coord_notification_free(n);
	cJSON_Delete(c);
}

static void
test_c05_per_alert_status(void)
{
	cJSON *c = load_json("C05-group-resends-mixed-status.json");
	const cJSON *nl, *x;
	int mixed = 0, count = 0;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	nl = cJSON_GetObjectItemCaseSensitive(c, "notifications");
	cJSON_ArrayForEach(x, nl) {
		const cJSON *body = cJSON_GetObjectItemCaseSensitive(x, "body");
		const cJSON *ja = cJSON_GetObjectItemCaseSensitive(body,
		    "alerts"), *j;
		struct coord_notification *n = NULL;
		char err[256] = "";
		size_t i = 0;
		int rv;

		rv = parse_case_body(body, &n, err, sizeof(err));
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		count++;
		CHECK_STR(n->status, jstr(body, "status"));
		CHECK_INT(n->n_alerts, cJSON_GetArraySize(ja));
		cJSON_ArrayForEach(j, ja) {
			bool want = strcmp(jstr(j, "status"), "firing") == 0;

			if (i >= n->n_alerts)
				break;
			CHECK_INT(n->alerts[i].firing, want);
			CHECK_STR(n->alerts[i].fingerprint,
			    jstr(j, "fingerprint"));
			if (strcmp(n->status, "firing") == 0 && !want)
				mixed++;
			i++;
		}
		coord_notification_free(n);
	}
	CHECK_INT(count, 6);
	// Resolved entries inside notifications whose top level says firing.
	CHECK(mixed >= 2);
	cJSON_Delete(c);
}

static void
test_c07_storm_48_alerts(void)
{
	cJSON *c = load_json("C07-fleet-wide-storm.json");
	uint64_t ids[64];
	size_t total = 0, i, j;
	const cJSON *d;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(c,
	    "deliveries")) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv;

		rv = parse_case_body(cJSON_GetObjectItemCaseSensitive(d,
		    "body"), &n, err, sizeof(err));
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		CHECK(notification_ok(n));
		for (i = 0; i < n->n_alerts && total < 64; i++) {
			CHECK(n->alerts[i].firing);
			CHECK_STR(coord_kvs_get(&n->alerts[i].labels,
			    "alertname"), "TargetDown");
			ids[total++] = coord_alert_identity(&n->alerts[i],
			    NULL, 0);
		}
		coord_notification_free(n);
	}
	CHECK_INT(total, 48);
	for (i = 0; i < total; i++)
		for (j = i + 1; j < total; j++)
			CHECK(ids[i] != ids[j]);
	cJSON_Delete(c);
}

// ---- malformed input -----------------------------------------------------

#define HEAD "{\"version\":\"4\",\"status\":\"firing\",\"alerts\":["
#define TAIL "]}"
#define LBL(x) "{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"" x "}}"

struct bad_case {
	const char *name;
	const char *body;
	size_t len; // 0: strlen(body)
	int rv;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{ "empty", "", 0, -EINVAL, "body: empty" },
	{ "only spaces", " \n\t ", 0, -EINVAL, "body: empty" },
	{ "truncated", HEAD "{\"status\":\"fir", 0, -EINVAL, "invalid JSON" },
	{ "truncated after key", "{\"version\":", 0, -EINVAL, "invalid JSON" },
	{ "garbage", "hello", 0, -EINVAL, "invalid JSON" },
	{ "array", "[1,2]", 0, -EINVAL, "expected a JSON object" },
	{ "string", "\"4\"", 0, -EINVAL, "expected a JSON object" },
	{ "trailing", "{\"version\":\"4\",\"alerts\":[]} x", 0, -EINVAL,
	  "trailing data" },
	{ "two objects", "{\"version\":\"4\",\"alerts\":[]}{}", 0, -EINVAL,
	  "trailing data" },
	{ "no version", "{\"alerts\":[]}", 0, -EINVAL, "version: missing" },
	{ "version 3", "{\"version\":\"3\",\"alerts\":[]}", 0, -EINVAL,
	  "version: unsupported \"3\"" },
	{ "version number", "{\"version\":4,\"alerts\":[]}", 0, -EINVAL,
	  "version: expected string" },
	{ "no alerts", "{\"version\":\"4\"}", 0, -EINVAL, "alerts: missing" },
	{ "alerts object", "{\"version\":\"4\",\"alerts\":{}}", 0, -EINVAL,
	  "alerts: expected array" },
	{ "alerts null", "{\"version\":\"4\",\"alerts\":null}", 0, -EINVAL,
	  "alerts: expected array" },
	{ "alert not object", HEAD "3" TAIL, 0, -EINVAL,
	  "alerts[0]: expected object" },
	{ "top status bad", "{\"version\":\"4\",\"status\":\"ok\","
	  "\"alerts\":[]}", 0, -EINVAL, "status: must be" },
	{ "receiver number", "{\"version\":\"4\",\"receiver\":1,"
	  "\"alerts\":[]}", 0, -EINVAL, "receiver: expected string" },
	{ "duplicate top key", "{\"version\":\"4\",\"alerts\":[],"
	  "\"version\":\"4\"}", 0, -EINVAL, "version: duplicate key" },
	{ "duplicate alert key", HEAD "{\"status\":\"firing\",\"status\":"
	  "\"resolved\",\"labels\":{\"alertname\":\"A\"}}" TAIL, 0, -EINVAL,
	  "alerts[0].status: duplicate key" },
	{ "alert status missing", HEAD "{\"labels\":{\"alertname\":\"A\"}}"
	  TAIL, 0, -EINVAL, "alerts[0].status: missing" },
	{ "alert status pending", HEAD "{\"status\":\"pending\",\"labels\":"
	  "{\"alertname\":\"A\"}}" TAIL, 0, -EINVAL,
	  "alerts[0].status: must be \"firing\" or \"resolved\"" },
	{ "no labels", HEAD "{\"status\":\"firing\"}" TAIL, 0, -EINVAL,
	  "alerts[0].labels: missing" },
	{ "labels array", HEAD "{\"status\":\"firing\",\"labels\":[]}" TAIL, 0,
	  -EINVAL, "alerts[0].labels: expected object" },
	{ "no alertname", HEAD "{\"status\":\"firing\",\"labels\":{\"a\":"
	  "\"b\"}}" TAIL, 0, -EINVAL, "alerts[0].labels: no alertname" },
	{ "empty alertname", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"\"}}" TAIL, 0, -EINVAL, "no alertname" },
	{ "label value number", HEAD LBL(",\"instance\":5") TAIL, 0, -EINVAL,
	  "alerts[0].labels.instance: expected string" },
	{ "label value null", HEAD LBL(",\"instance\":null") TAIL, 0, -EINVAL,
	  "alerts[0].labels.instance: expected string" },
	{ "label value object", HEAD LBL(",\"instance\":{}") TAIL, 0, -EINVAL,
	  "alerts[0].labels.instance: expected string" },
	{ "label error names index", HEAD LBL("") "," LBL("") "," LBL("") ","
	  LBL(",\"instance\":true") TAIL, 0, -EINVAL,
	  "alerts[3].labels.instance: expected string" },
	{ "label name dash", HEAD LBL(",\"bad-name\":\"x\"") TAIL, 0, -EINVAL,
	  "alerts[0].labels: invalid label name \"bad-name\"" },
	{ "label name digit", HEAD LBL(",\"0abc\":\"x\"") TAIL, 0, -EINVAL,
	  "invalid label name" },
	{ "label name empty", HEAD LBL(",\"\":\"x\"") TAIL, 0, -EINVAL,
	  "invalid label name" },
	{ "label name unicode", HEAD LBL(",\"\xc3\xa9t\xc3\xa9\":\"x\"") TAIL,
	  0, -EINVAL, "invalid label name \"\\xc3\\xa9t" },
	{ "duplicate label", HEAD LBL(",\"x\":\"1\",\"x\":\"2\"") TAIL, 0,
	  -EINVAL, "alerts[0].labels: duplicate key \"x\"" },
	{ "duplicate alertname", HEAD LBL(",\"alertname\":\"B\"") TAIL, 0,
	  -EINVAL, "duplicate key \"alertname\"" },
	{ "annotations string", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"annotations\":\"x\"}" TAIL, 0, -EINVAL,
	  "alerts[0].annotations: expected object" },
	{ "annotation number", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"annotations\":{\"s\":1}}" TAIL, 0,
	  -EINVAL, "alerts[0].annotations.s: expected string" },
	{ "bad startsAt", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"startsAt\":\"yesterday\"}" TAIL, 0,
	  -EINVAL, "alerts[0].startsAt: not an RFC 3339 time" },
	{ "bad endsAt date", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"endsAt\":\"2026-13-04T10:00:00Z\"}" TAIL,
	  0, -EINVAL, "alerts[0].endsAt: not an RFC 3339 time" },
	{ "startsAt number", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"startsAt\":1700000000}" TAIL, 0, -EINVAL,
	  "alerts[0].startsAt: expected string" },
	{ "fingerprint number", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"fingerprint\":12}" TAIL, 0, -EINVAL,
	  "alerts[0].fingerprint: expected string" },
	{ "truncated negative", "{\"version\":\"4\",\"alerts\":[],"
	  "\"truncatedAlerts\":-1}", 0, -EINVAL, "truncatedAlerts" },
	{ "truncated fraction", "{\"version\":\"4\",\"alerts\":[],"
	  "\"truncatedAlerts\":1.5}", 0, -EINVAL, "truncatedAlerts" },
	{ "truncated huge", "{\"version\":\"4\",\"alerts\":[],"
	  "\"truncatedAlerts\":1e999}", 0, -EINVAL, "truncatedAlerts" },
	{ "truncated string", "{\"version\":\"4\",\"alerts\":[],"
	  "\"truncatedAlerts\":\"1\"}", 0, -EINVAL,
	  "truncatedAlerts: expected number" },
	{ "groupLabels bad name", "{\"version\":\"4\",\"alerts\":[],"
	  "\"groupLabels\":{\"a b\":\"c\"}}", 0, -EINVAL,
	  "groupLabels: invalid label name \"a b\"" },
	{ "commonLabels bad value", "{\"version\":\"4\",\"alerts\":[],"
	  "\"commonLabels\":{\"a\":[]}}", 0, -EINVAL,
	  "commonLabels.a: expected string" },
	// Bytes that are not UTF-8, each in a different place.
	{ "latin1 value", HEAD LBL(",\"instance\":\"caf\xe9\"") TAIL, 0,
	  -EINVAL, "alerts[0].labels.instance: not valid UTF-8" },
	{ "overlong slash", HEAD LBL(",\"instance\":\"\xc0\xaf\"") TAIL, 0,
	  -EINVAL, "not valid UTF-8" },
	{ "surrogate bytes", HEAD LBL(",\"instance\":\"\xed\xa0\x80\"") TAIL,
	  0, -EINVAL, "not valid UTF-8" },
	{ "above U+10FFFF", HEAD LBL(",\"instance\":\"\xf4\x90\x80\x80\"")
	  TAIL, 0, -EINVAL, "not valid UTF-8" },
	{ "cut sequence", HEAD LBL(",\"instance\":\"ab\xe6\x97\"") TAIL, 0,
	  -EINVAL, "not valid UTF-8" },
	{ "bad annotation", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"annotations\":{\"s\":\"\xff\"}}" TAIL, 0,
	  -EINVAL, "alerts[0].annotations.s: not valid UTF-8" },
	{ "bad annotation name", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"annotations\":{\"\xfe\":\"x\"}}" TAIL, 0,
	  -EINVAL, "invalid annotation name \"\\xfe\"" },
	{ "bad receiver", "{\"version\":\"4\",\"receiver\":\"\x80\","
	  "\"alerts\":[]}", 0, -EINVAL, "receiver: not valid UTF-8" },
	{ "lone surrogate escape", HEAD LBL(",\"i\":\"\\udc00\"") TAIL, 0,
	  -EINVAL, "invalid JSON" },
	// NUL and control bytes, which cJSON alone would let through.
	{ "NUL in value", HEAD LBL(",\"instance\":\"ab\0cd\"") TAIL,
	  sizeof(HEAD LBL(",\"instance\":\"ab\0cd\"") TAIL) - 1, -EINVAL,
	  "NUL byte" },
	{ "NUL after body", "{\"version\":\"4\",\"alerts\":[]}\0",
	  sizeof("{\"version\":\"4\",\"alerts\":[]}\0") - 1,
	  -EINVAL, "NUL byte" },
	{ "escaped NUL", HEAD LBL(",\"instance\":\"ab\\u0000cd\"") TAIL, 0,
	  -EINVAL, "\\u0000" },
	{ "escaped NUL in key", HEAD LBL(",\"a\\u0000b\":\"x\"") TAIL, 0,
	  -EINVAL, "\\u0000" },
	{ "raw newline in value", HEAD LBL(",\"instance\":\"a\nb\"") TAIL, 0,
	  -EINVAL, "control character" },
	{ "raw tab after backslash", HEAD LBL(",\"instance\":\"a\\\tb\"")
	  TAIL, 0, -EINVAL, "control character" },
	{ "deep nesting", NULL, 0, -EINVAL, "invalid JSON" },
	{ NULL, NULL, 0, 0, NULL },
};

static void
test_malformed_table(void)
{
	const struct bad_case *c;
	char *deep;
	size_t i;

	// 2000 nested arrays under an unknown key: past cJSON's 1000 limit.
	deep = malloc(64 + 4000);
	CHECK(deep != NULL);
	if (deep == NULL)
		return;
	strcpy(deep, "{\"version\":\"4\",\"alerts\":[],\"x\":");
	for (i = 0; i < 2000; i++)
		strcat(deep, "[");
	for (i = 0; i < 2000; i++)
		strcat(deep, "]");
	strcat(deep, "}");

	for (c = bad_cases; c->name != NULL; c++) {
		struct coord_notification *n = (void *)1;
		const char *body = c->body != NULL ? c->body : deep;
		size_t len = c->len != 0 ? c->len : strlen(body);
		char err[256] = "";
		int rv;

		rv = parse_n(body, len, NULL, &n, err, sizeof(err));
		if (rv != c->rv || strstr(err, c->msg) == NULL)
			printf("# case \"%s\": rv %d err \"%s\"\n", c->name,
			    rv, err);
		CHECK_INT(rv, c->rv);
		CHECK_HAS(err, c->msg);
		CHECK(n == NULL);
		if (rv == 0)
			coord_notification_free(n);
	}
	free(deep);
}

struct good_case {
	const char *name;
	const char *body;
	size_t n_alerts;
};

static const struct good_case good_cases[] = {
	{ "minimal", "{\"version\":\"4\",\"alerts\":[]}", 0 },
	{ "trailing newline", "{\"version\":\"4\",\"alerts\":[]}\n", 0 },
	{ "leading space", "\r\n {\"version\":\"4\",\"alerts\":[]}", 0 },
	{ "one alert", HEAD LBL("") TAIL, 1 },
	{ "unknown keys", "{\"version\":\"4\",\"notification_reason\":\"x\","
	  "\"routeLabels\":{\"a\":[1,{\"b\":null}]},\"alerts\":[{\"status\":"
	  "\"firing\",\"labels\":{\"alertname\":\"A\"},\"value\":3,"
	  "\"silencedBy\":[]}]}", 1 },
	{ "null maps", "{\"version\":\"4\",\"groupLabels\":null,"
	  "\"commonLabels\":null,\"commonAnnotations\":null,\"alerts\":"
	  "[{\"status\":\"resolved\",\"labels\":{\"alertname\":\"A\"},"
	  "\"annotations\":null,\"endsAt\":null}]}", 1 },
	{ "unicode values", HEAD LBL(",\"team\":\"\xe6\x97\xa5\xe6\x9c\xac\","
	  "\"emoji\":\"\xf0\x9f\x94\xa5\",\"esc\":\"\\u00e9\\ud83d\\udd25\"")
	  TAIL, 1 },
	{ "unicode annotation name", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"annotations\":{\"r\xc3\xa9sum\xc3\xa9\":"
	  "\"ok\"}}" TAIL, 1 },
	// A literal backslash followed by "u0000" is text, not a NUL.
	{ "escaped backslash u0000", HEAD LBL(",\"i\":\"a\\\\u0000\"") TAIL,
	  1 },
	{ "escaped newline", HEAD LBL(",\"i\":\"a\\nb\"") TAIL, 1 },
	{ "empty label value", HEAD LBL(",\"i\":\"\"") TAIL, 1 },
	{ "nesting 500 in unknown key", NULL, 0 },
	{ NULL, NULL, 0 },
};

static void
test_valid_variants(void)
{
	const struct good_case *c;
	char *deep;
	size_t i;

	deep = malloc(64 + 1000);
	CHECK(deep != NULL);
	if (deep == NULL)
		return;
	strcpy(deep, "{\"version\":\"4\",\"alerts\":[],\"x\":");
	for (i = 0; i < 500; i++)
		strcat(deep, "[");
	for (i = 0; i < 500; i++)
		strcat(deep, "]");
	strcat(deep, "}");

	for (c = good_cases; c->name != NULL; c++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv;

		rv = parse_s(c->body != NULL ? c->body : deep, &n, err,
		    sizeof(err));
		if (rv != 0)
			printf("# case \"%s\": %s\n", c->name, err);
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		CHECK(notification_ok(n));
		CHECK_INT(n->n_alerts, c->n_alerts);
		coord_notification_free(n);
	}
	free(deep);
}

static void
test_unicode_values_exact(void)
{
	struct coord_notification *n = NULL;
	char err[256] = "";
	int rv;

	rv = parse_s(HEAD LBL(",\"esc\":\"\\u00e9\\ud83d\\udd25\","
	    "\"raw\":\"\xc3\xa9\xf0\x9f\x94\xa5\",\"bs\":\"a\\\\u0000\"") TAIL,
	    &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv != 0)
		return;
	CHECK_STR(coord_kvs_get(&n->alerts[0].labels, "esc"),
	    "\xc3\xa9\xf0\x9f\x94\xa5");
	CHECK_STR(coord_kvs_get(&n->alerts[0].labels, "raw"),
	    "\xc3\xa9\xf0\x9f\x94\xa5");
	CHECK_STR(coord_kvs_get(&n->alerts[0].labels, "bs"), "a\\u0000");
	CHECK_STR(n->status, "firing");
	CHECK_STR(n->receiver, ""); // absent informational fields read ""
	CHECK_STR(n->alerts[0].fingerprint, "");
	CHECK(n->alerts[0].starts_ms == CM_TIME_NONE);
	CHECK(n->alerts[0].ends_ms == CM_TIME_NONE);
	coord_notification_free(n);
}

// ---- limits --------------------------------------------------------------

struct sbuf {
	char *p;
	size_t n, cap;
};

static void
sb_add(struct sbuf *b, const char *s)
{
	size_t k = strlen(s);

	if (b->n + k + 1 > b->cap) {
		size_t cap = (b->cap + k + 1) * 2;
		char *p = realloc(b->p, cap);

		if (p == NULL)
			abort();
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, k + 1);
	b->n += k;
}

// A body with n_alerts alerts of n_labels labels (plus alertname) whose
// values are val_len bytes long.
static char *
gen_body(size_t n_alerts, size_t n_labels, size_t val_len)
{
	struct sbuf b = { 0 };
	char tmp[64], *val;
	size_t i, j;

	val = malloc(val_len + 1);
	if (val == NULL)
		abort();
	memset(val, 'v', val_len);
	val[val_len] = '\0';
	sb_add(&b, HEAD);
	for (i = 0; i < n_alerts; i++) {
		sb_add(&b, i ? ",{" : "{");
		sb_add(&b, "\"status\":\"firing\",\"labels\":{");
		snprintf(tmp, sizeof(tmp), "\"alertname\":\"A%zu\"", i);
		sb_add(&b, tmp);
		for (j = 0; j < n_labels; j++) {
			// Reverse order, so the parser has to sort.
			snprintf(tmp, sizeof(tmp), ",\"l%04zu\":\"",
			    n_labels - j);
			sb_add(&b, tmp);
			sb_add(&b, val);
			sb_add(&b, "\"");
		}
		sb_add(&b, "}}");
	}
	sb_add(&b, TAIL);
	free(val);
	return b.p;
}

static int
parse_gen(const char *body, const struct coord_webhook_limits *lim,
    char *err, size_t errlen, size_t *ret_alerts)
{
	struct coord_notification *n = NULL;
	int rv = parse_n(body, strlen(body), lim, &n, err, errlen);

	*ret_alerts = n != NULL ? n->n_alerts : 0;
	if (rv == 0 && !notification_ok(n))
		rv = -999;
	coord_notification_free(n);
	return rv;
}

static void
test_limits(void)
{
	struct coord_webhook_limits lim = coord_webhook_default_limits;
	char err[256] = "";
	size_t na;
	char *b;

	CHECK_INT(lim.max_body, 1024 * 1024);
	CHECK_INT(lim.max_alerts, 1000);
	CHECK_INT(lim.max_labels, 64);
	CHECK_INT(lim.max_name_len, 128);
	CHECK_INT(lim.max_value_len, 1024);
	CHECK_INT(lim.max_annotation_len, 8192);

	// Alerts: 1000 fine, 1001 too many.
	b = gen_body(1000, 0, 1);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), 0);
	CHECK_INT(na, 1000);
	free(b);
	b = gen_body(1001, 0, 1);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), -E2BIG);
	CHECK_HAS(err, "alerts: more than 1000 alerts");
	free(b);

	// Labels: alertname + 63 = 64 fine, + 64 = 65 too many.
	b = gen_body(1, 63, 3);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), 0);
	free(b);
	b = gen_body(1, 64, 3);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), -E2BIG);
	CHECK_HAS(err, "alerts[0].labels: more than 64 entries");
	free(b);

	// Values: 1024 bytes fine, 1025 too long.
	b = gen_body(1, 1, 1024);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), 0);
	free(b);
	b = gen_body(1, 1, 1025);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), -E2BIG);
	CHECK_HAS(err, "alerts[0].labels.l0001: 1025 bytes exceed the limit "
	    "of 1024");
	free(b);

	// Body: one byte over a custom limit.
	b = gen_body(3, 2, 10);
	lim.max_body = strlen(b);
	CHECK_INT(parse_gen(b, &lim, err, sizeof(err), &na), 0);
	lim.max_body = strlen(b) - 1;
	CHECK_INT(parse_gen(b, &lim, err, sizeof(err), &na), -E2BIG);
	CHECK_HAS(err, "body: ");
	CHECK_HAS(err, "exceed the limit");
	free(b);

	// A body past the default 1 MiB is refused before parsing.
	b = gen_body(1000, 1, 1100); // ~1.1 MB of values
	CHECK(strlen(b) > 1024 * 1024);
	CHECK_INT(parse_gen(b, NULL, err, sizeof(err), &na), -E2BIG);
	CHECK_HAS(err, "body: ");
	free(b);
}

static void
test_limits_names_and_annotations(void)
{
	char name[200], body[12000], err[256] = "", *ann;
	struct coord_notification *n = NULL;
	int rv;

	memset(name, 'n', 128);
	name[128] = '\0';
	snprintf(body, sizeof(body), HEAD LBL(",\"%s\":\"x\"") TAIL, name);
	rv = parse_s(body, &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	coord_notification_free(n);
	n = NULL;
	memset(name, 'n', 129);
	name[129] = '\0';
	snprintf(body, sizeof(body), HEAD LBL(",\"%s\":\"x\"") TAIL, name);
	rv = parse_s(body, &n, err, sizeof(err));
	CHECK_INT(rv, -E2BIG);
	CHECK_HAS(err, "is 129 bytes, over the limit of 128");

	ann = malloc(8194);
	CHECK(ann != NULL);
	if (ann == NULL)
		return;
	memset(ann, 'a', 8192);
	ann[8192] = '\0';
	snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\",\"labels\":"
	    "{\"alertname\":\"A\"},\"annotations\":{\"d\":\"%s\"}}" TAIL, ann);
	rv = parse_s(body, &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	coord_notification_free(n);
	n = NULL;
	ann[8192] = 'a';
	ann[8193] = '\0';
	snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\",\"labels\":"
	    "{\"alertname\":\"A\"},\"annotations\":{\"d\":\"%s\"}}" TAIL, ann);
	rv = parse_s(body, &n, err, sizeof(err));
	CHECK_INT(rv, -E2BIG);
	CHECK_HAS(err, "alerts[0].annotations.d: 8193 bytes");
	free(ann);
}

// The largest notification the defaults allow in count (1000 alerts of 64
// labels) parses; max_body is raised for it since it is over 1 MiB.
static void
test_full_size_notification(void)
{
	struct coord_webhook_limits lim = coord_webhook_default_limits;
	char err[256] = "";
	size_t na;
	char *b = gen_body(1000, 63, 8);

	lim.max_body = 16 * 1024 * 1024;
	CHECK_INT(parse_gen(b, &lim, err, sizeof(err), &na), 0);
	CHECK_INT(na, 1000);
	free(b);
}

// ---- identity, lookup, dup -----------------------------------------------

static struct coord_notification *
parse_ok(const char *body)
{
	struct coord_notification *n = NULL;
	char err[256] = "";

	if (parse_s(body, &n, err, sizeof(err)) != 0)
		printf("# unexpected parse failure: %s\n", err);
	return n;
}

static void
test_identity(void)
{
	static const char *const ign2[] = { "replica", "prometheus_replica" };
	struct coord_notification *n = parse_ok(HEAD
	    LBL(",\"a\":\"1\",\"b\":\"2\"") ","
	    "{\"status\":\"resolved\",\"labels\":{\"b\":\"2\",\"a\":\"1\","
	    "\"alertname\":\"A\"},\"fingerprint\":\"ffff\"}" ","
	    LBL(",\"a\":\"1\",\"b\":\"3\"") ","
	    LBL(",\"ab\":\"c\"") "," LBL(",\"a\":\"bc\"") ","
	    LBL(",\"a\":\"1\",\"b\":\"2\",\"replica\":\"r1\","
	    "\"prometheus_replica\":\"p0\"") TAIL);
	const struct coord_alert *al;
	uint64_t h0;

	CHECK(n != NULL);
	if (n == NULL)
		return;
	al = n->alerts;
	h0 = coord_alert_identity(&al[0], NULL, 0);
	// Label order, status and fingerprint play no part.
	CHECK(coord_alert_identity(&al[1], NULL, 0) == h0);
	CHECK(coord_alert_identity(&al[2], NULL, 0) != h0);
	// The NUL separators keep {ab=c} and {a=bc} apart.
	CHECK(coord_alert_identity(&al[3], NULL, 0) !=
	    coord_alert_identity(&al[4], NULL, 0));
	CHECK(coord_alert_identity(&al[5], NULL, 0) != h0);
	CHECK(coord_alert_identity(&al[5], ign2, 1) != h0);
	CHECK(coord_alert_identity(&al[5], ign2, 2) == h0);
	// Ignoring a label the alert lacks changes nothing.
	CHECK(coord_alert_identity(&al[0], ign2, 2) == h0);
	// Stable value: FNV-1a 64 over the sorted pairs a=1, alertname=A,
	// b=2, each key and value followed by a NUL.
	{
		const char s[] = "a\0" "1\0alertname\0A\0b\0" "2";
		uint64_t h = 14695981039346656037ULL;
		size_t i;

		for (i = 0; i < sizeof(s); i++) {
			h ^= (unsigned char)s[i];
			h *= 1099511628211ULL;
		}
		CHECK(h == h0);
	}
	coord_notification_free(n);
}

static void
test_kvs_get_many(void)
{
	char *b = gen_body(1, 63, 2);
	struct coord_notification *n = parse_ok(b);
	char key[16];
	int i;

	free(b);
	CHECK(n != NULL);
	if (n == NULL)
		return;
	for (i = 1; i <= 63; i++) {
		snprintf(key, sizeof(key), "l%04d", i);
		CHECK_STR(coord_kvs_get(&n->alerts[0].labels, key), "vv");
	}
	CHECK(coord_kvs_get(&n->alerts[0].labels, "l0000") == NULL);
	CHECK(coord_kvs_get(&n->alerts[0].labels, "l0064") == NULL);
	CHECK(coord_kvs_get(&n->alerts[0].labels, "zzz") == NULL);
	CHECK(coord_kvs_get(&n->alerts[0].labels, NULL) == NULL);
	CHECK(coord_kvs_get(NULL, "a") == NULL);
	coord_notification_free(n);
}

static void
test_alert_dup(void)
{
	struct coord_notification *n = parse_ok(HEAD
	    "{\"status\":\"resolved\",\"labels\":{\"alertname\":\"A\","
	    "\"x\":\"y\"},\"annotations\":{\"s\":\"t\"},\"startsAt\":"
	    "\"2026-12-04T10:00:00Z\",\"endsAt\":\"2026-12-04T10:05:00Z\","
	    "\"generatorURL\":\"http://g\",\"fingerprint\":\"ab\"}" TAIL);
	struct coord_alert *d;
	uint64_t h;

	CHECK(n != NULL);
	if (n == NULL)
		return;
	h = coord_alert_identity(&n->alerts[0], NULL, 0);
	d = coord_alert_dup(&n->alerts[0]);
	coord_notification_free(n); // the copy must not share memory
	CHECK(d != NULL);
	if (d == NULL)
		return;
	CHECK(!d->firing);
	CHECK_STR(coord_kvs_get(&d->labels, "x"), "y");
	CHECK_STR(coord_kvs_get(&d->annotations, "s"), "t");
	CHECK_INT(d->starts_ms, 1796378400000LL);
	CHECK_INT(d->ends_ms, 1796378700000LL);
	CHECK_STR(d->generator_url, "http://g");
	CHECK_STR(d->fingerprint, "ab");
	CHECK(coord_alert_identity(d, NULL, 0) == h);
	coord_alert_free(d);
	coord_alert_free(NULL);
	coord_notification_free(NULL);
	CHECK(coord_alert_dup(NULL) == NULL);
}

static uint32_t rng(void);

// The body's own text of a label set becomes the alert's labels_json (and
// annotations_json) exactly when it is what the journal would write;
// any space, escape or key out of order, and the journal encodes it.
struct json_case {
	const char *name;
	const char *labels;	 // the labels member's value in the body
	const char *annotations; // NULL: no annotations member
	bool labels_own, annotations_own;
};

static const struct json_case json_cases[] = {
	{ "as Alertmanager sends", "{\"alertname\":\"A\",\"job\":\"x\"}",
	  "{\"d\":\"t\",\"s\":\"u v\"}", true, true },
	{ "space inside", "{\"alertname\": \"A\"}", "{ }", false, false },
	{ "space around is not inside", "{\"alertname\":\"A\"}",
	  "{}", true, true },
	{ "keys out of order", "{\"job\":\"x\",\"alertname\":\"A\"}",
	  "{\"s\":\"1\",\"d\":\"2\"}", false, false },
	{ "escapes", "{\"alertname\":\"A\\/B\"}",
	  "{\"d\":\"\\u00e9\",\"q\":\"\\\"\"}", false, false },
	{ "raw UTF-8 and DEL", "{\"alertname\":\"\xc3\xa9\x7f\"}",
	  "{\"\xe2\x82\xac\":\"x\"}", true, true },
	{ "null annotations", "{\"alertname\":\"A\"}", "null", true, false },
	{ "no annotations", "{\"alertname\":\"A\"}", NULL, true, false },
	{ "newline between entries", "{\"alertname\":\"A\",\n\"b\":\"c\"}",
	  "{\"a\":\"b\"}", false, true },
};

static void
test_set_json(void)
{
	for (size_t i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]);
	    i++) {
		const struct json_case *c = &json_cases[i];
		struct coord_notification *n = NULL;
		const struct coord_alert *a;
		struct coord_alert *d;
		char body[512], err[256] = "";

		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\": %s %s%s}" TAIL, c->labels,
		    c->annotations != NULL ? ",\"annotations\":" : "",
		    c->annotations != NULL ? c->annotations : "");
		if (parse_s(body, &n, err, sizeof(err)) != 0) {
			printf("# %s: %s\n", c->name, err);
			CHECK(n != NULL);
			continue;
		}
		a = &n->alerts[0];
		if ((a->labels_json != NULL) != c->labels_own ||
		    (a->annotations_json != NULL) != c->annotations_own)
			printf("# %s: own texts %d %d\n", c->name,
			    a->labels_json != NULL,
			    a->annotations_json != NULL);
		CHECK((a->labels_json != NULL) == c->labels_own);
		CHECK((a->annotations_json != NULL) == c->annotations_own);
		if (c->labels_own)
			CHECK_STR(a->labels_json, c->labels);
		if (c->annotations_own)
			CHECK_STR(a->annotations_json, c->annotations);
		CHECK(notification_ok(n));
		// A copy is the journal's to encode.
		d = coord_alert_dup(a);
		coord_notification_free(n);
		CHECK(d != NULL && d->labels_json == NULL &&
		    d->annotations_json == NULL);
		coord_alert_free(d);
	}
}

// Random label sets, sent in order or not, with space or not, values
// with and without escapes: the body's text is the alert's own exactly
// when it is canon_json's, which notification_ok checks.
static void
test_set_json_random(void)
{
	static const char *const vals[] = { "x", "prod-eu", "a b", "\\\"",
		"\\\\", "\\n", "\\u0001", "\xc3\xa9", "\x7f", "", "\\/",
		"http://h:1/p?q=1&r=%2F" };
	enum { NV = sizeof(vals) / sizeof(vals[0]) };
	int own = 0, encoded = 0;

	for (int r = 0; r < 3000; r++) {
		struct coord_notification *n = NULL;
		char body[4096], err[256] = "";
		size_t o = 0, nl = 1 + rng() % 12;
		bool sorted = true, spaced = rng() % 4 == 0;
		bool plain = true;
		int order[12];

		for (size_t i = 0; i < nl; i++)
			order[i] = (int)i;
		if (rng() % 2 == 0 && nl > 1) {
			size_t x = rng() % nl, y = rng() % nl;
			int t = order[x];

			order[x] = order[y];
			order[y] = t;
			sorted = x == y;
		}
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    HEAD "{\"status\":\"firing\",\"labels\":{");
		for (size_t i = 0; i < nl; i++) {
			// Names "alertname", "l01" ... sort as numbered.
			const char *v = order[i] == 0 ? "A" : vals[rng() % NV];
			char name[16];

			if (order[i] == 0)
				snprintf(name, sizeof(name), "alertname");
			else
				snprintf(name, sizeof(name), "l%02d", order[i]);
			if (strchr(v, '\\') != NULL)
				plain = false;
			o += (size_t)snprintf(body + o, sizeof(body) - o,
			    "%s\"%s\":%s\"%s\"", i > 0 ? "," : "", name,
			    spaced ? " " : "", v);
		}
		o += (size_t)snprintf(body + o, sizeof(body) - o, "}}" TAIL);
		if (parse_s(body, &n, err, sizeof(err)) != 0) {
			printf("# round %d: %s\n", r, err);
			CHECK(n != NULL);
			break;
		}
		if (n->alerts[0].labels_json != NULL)
			own++;
		else
			encoded++;
		// Plain, sorted and without space: the body's text is kept.
		if ((n->alerts[0].labels_json != NULL) !=
		    (plain && sorted && !spaced)) {
			printf("# round %d: %s\n", r, body);
			CHECK((n->alerts[0].labels_json != NULL) ==
			    (plain && sorted && !spaced));
			coord_notification_free(n);
			break;
		}
		if (!notification_ok(n)) {
			printf("# round %d: %s\n", r, body);
			CHECK(notification_ok(n));
			coord_notification_free(n);
			break;
		}
		coord_notification_free(n);
	}
	printf("# %d sets kept as sent, %d for the journal to encode\n", own,
	    encoded);
	CHECK(own > 100);
	CHECK(encoded > 100);
}

static void
test_helpers(void)
{
	CHECK(coord_label_name_valid("a"));
	CHECK(coord_label_name_valid("_x9"));
	CHECK(coord_label_name_valid("__name__"));
	CHECK(!coord_label_name_valid(""));
	CHECK(!coord_label_name_valid(NULL));
	CHECK(!coord_label_name_valid("9a"));
	CHECK(!coord_label_name_valid("a-b"));
	CHECK(!coord_label_name_valid("a.b"));
	CHECK(cm_utf8_valid("", 0));
	CHECK(cm_utf8_valid("\xe2\x82\xac", 3));
	CHECK(cm_utf8_valid("\xf4\x8f\xbf\xbf", 4)); // U+10FFFF
	CHECK(!cm_utf8_valid("\xe2\x82", 2));
	CHECK(!cm_utf8_valid("\xe0\x80\x80", 3)); // overlong
	CHECK(!cm_utf8_valid("\xf0\x80\x80\x80", 4)); // overlong
	CHECK(!cm_utf8_valid("\xed\xbf\xbf", 3)); // surrogate
	CHECK(!cm_utf8_valid("\x80", 1));
	CHECK(!cm_utf8_valid("\xf5\x80\x80\x80", 4));
}

// ---- random mutations ----------------------------------------------------

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(void)
{
	// xorshift64*, fixed seed: the run is the same every time.
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static const char *const tokens[] = {
	"\"", "{", "}", "[", "]", ",", ":", "\\", "\\u0000", "\\ud800",
	"\\u00e9", "null", "true", "0", "-1", "1e999", "\"4\"", "\"firing\"",
	"\"resolved\"", "\"labels\"", "\"alertname\"", "\xff", "\xc3",
	"\xf0\x9f\x94", "\0", "\n", "{}", "[]", "\"\":\"\"",
};

static size_t
mutate(char *buf, size_t len, size_t cap)
{
	size_t pos = len > 0 ? rng() % len : 0, k, m;
	const char *t;

	switch (rng() % 6) {
	case 0: // flip a byte
		if (len > 0)
			buf[pos] = (char)(rng() & 0xff);
		return len;
	case 1: // delete a run
		k = 1 + rng() % 8;
		if (pos + k > len)
			k = len - pos;
		memmove(buf + pos, buf + pos + k, len - pos - k);
		return len - k;
	case 2: // truncate
		return pos;
	case 3: // insert a token
		t = tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))];
		k = t[0] == '\0' ? 1 : strlen(t);
		if (len + k > cap)
			return len;
		memmove(buf + pos + k, buf + pos, len - pos);
		memcpy(buf + pos, t, k);
		return len + k;
	case 4: // duplicate a slice somewhere else
		k = 1 + rng() % 64;
		if (pos + k > len)
			k = len - pos;
		m = len > 0 ? rng() % len : 0;
		if (len + k > cap || k == 0)
			return len;
		memmove(buf + m + k, buf + m, len - m);
		memmove(buf + m, buf + (pos < m ? pos : pos + k), k);
		return len + k;
	default: // set a byte to a structural character
		if (len > 0)
			buf[pos] = "\"{}[],:\\"[rng() % 8];
		return len;
	}
}

static void
fuzz_one(const char *seed, size_t seed_len, int rounds, int *ok, int *bad)
{
	struct coord_webhook_limits small = coord_webhook_default_limits;
	size_t cap = seed_len * 2 + 256;
	char *buf = malloc(cap);
	int r;

	if (buf == NULL)
		abort();
	small.max_labels = 4;
	small.max_alerts = 3;
	small.max_value_len = 16;
	small.max_annotation_len = 16;
	for (r = 0; r < rounds; r++) {
		struct coord_notification *n = NULL;
		size_t len = seed_len;
		char err[256];
		int k, nmut = 1 + (int)(rng() % 4), rv;

		memcpy(buf, seed, seed_len);
		for (k = 0; k < nmut; k++)
			len = mutate(buf, len, cap);
		err[0] = '\0';
		rv = parse_n(buf, len, (r & 3) == 3 ? &small : NULL, &n, err,
		    sizeof(err));
		if (rv == 0) {
			(*ok)++;
			if (!notification_ok(n)) {
				printf("# round %d: parse ok but invalid\n", r);
				CHECK(notification_ok(n));
			}
		} else {
			(*bad)++;
			if (rv != -EINVAL && rv != -E2BIG)
				CHECK_INT(rv, -EINVAL);
			if (err[0] == '\0' || n != NULL) {
				printf("# round %d: rv %d, no reason\n", r, rv);
				CHECK(err[0] != '\0');
				CHECK(n == NULL);
			}
		}
		coord_notification_free(n);
	}
	free(buf);
}

static void
test_random_mutations(void)
{
	int ok = 0, bad = 0;
	size_t len;
	char *full = slurp("am025-full.json", &len);
	cJSON *c07 = load_json("C07-fleet-wide-storm.json");
	char *storm = NULL;

	CHECK(full != NULL && c07 != NULL);
	if (full != NULL)
		fuzz_one(full, len, 4000, &ok, &bad);
	if (c07 != NULL) {
		const cJSON *d = cJSON_GetArrayItem(
		    cJSON_GetObjectItemCaseSensitive(c07, "deliveries"), 0);

		storm = cJSON_PrintUnformatted(
		    cJSON_GetObjectItemCaseSensitive(d, "body"));
	}
	if (storm != NULL)
		fuzz_one(storm, strlen(storm), 1000, &ok, &bad);
	printf("# mutations: %d parsed, %d rejected\n", ok, bad);
	// Both outcomes must occur, or the mutator is not doing its job.
	CHECK(ok > 50);
	CHECK(bad > 1000);
	free(full);
	free(storm);
	cJSON_Delete(c07);
}

// ---- the JSON reader (coord_alert.c's own) -------------------------------

// A body with the given top-level members after version and an empty
// alerts array.
#define TOP(x) "{\"version\":\"4\",\"alerts\":[]" x "}"
// An annotation value decoded: the one annotation "d" of the one alert.
#define ANN(v) HEAD "{\"status\":\"firing\",\"labels\":{\"alertname\":" \
	"\"A\"},\"annotations\":{\"d\":\"" v "\"}}" TAIL

struct dec_case {
	const char *name;
	const char *body;
	const char *want; // the annotation "d"
};

static const struct dec_case dec_cases[] = {
	{ "simple escapes", ANN("\\\"\\\\\\/\\b\\f\\n\\r\\t"),
	  "\"\\/\b\f\n\r\t" },
	{ "\\u one byte", ANN("\\u0041\\u007f"), "A\x7f" },
	{ "\\u two bytes", ANN("\\u00e9\\u07FF\\u0080"),
	  "\xc3\xa9\xdf\xbf\xc2\x80" },
	{ "\\u three bytes", ANN("\\u20ac\\uFFFF\\u0800"),
	  "\xe2\x82\xac\xef\xbf\xbf\xe0\xa0\x80" },
	{ "surrogate pairs", ANN("\\ud83d\\ude00\\uDBFF\\uDFFF\\ud800\\udc00"),
	  "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xf0\x90\x80\x80" },
	{ "escapes between raw text", ANN("a\\nb\xc3\xa9" "c\\u0064"),
	  "a\nb\xc3\xa9" "cd" },
	{ "empty", ANN(""), "" },
	{ NULL, NULL, NULL },
};

static void
test_reader_string_decoding(void)
{
	for (const struct dec_case *c = dec_cases; c->name != NULL; c++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv = parse_s(c->body, &n, err, sizeof(err));

		if (rv != 0)
			printf("# case \"%s\": %s\n", c->name, err);
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		CHECK_STR(coord_kvs_get(&n->alerts[0].annotations, "d"),
		    c->want);
		coord_notification_free(n);
	}
}

struct num_case {
	const char *name;
	const char *body;
	int rv;
	int64_t want;	 // truncatedAlerts when rv == 0
	const char *msg; // reason when rv != 0
};

static const struct num_case num_cases[] = {
	{ "zero", TOP(",\"truncatedAlerts\":0"), 0, 0, NULL },
	{ "integer", TOP(",\"truncatedAlerts\":17"), 0, 17, NULL },
	{ "minus zero", TOP(",\"truncatedAlerts\":-0"), 0, 0, NULL },
	{ "fraction zero", TOP(",\"truncatedAlerts\":3.000"), 0, 3, NULL },
	{ "exponent", TOP(",\"truncatedAlerts\":1e2"), 0, 100, NULL },
	{ "exponent E+", TOP(",\"truncatedAlerts\":1E+2"), 0, 100, NULL },
	{ "exponent minus", TOP(",\"truncatedAlerts\":2500e-2"), 0, 25,
	  NULL },
	{ "fraction and exponent", TOP(",\"truncatedAlerts\":0.5e1"), 0, 5,
	  NULL },
	{ "2^53", TOP(",\"truncatedAlerts\":9007199254740992"), 0,
	  9007199254740992LL, NULL },
	{ "null", TOP(",\"truncatedAlerts\":null"), 0, 0, NULL },
	{ "spaces around", TOP(",\"truncatedAlerts\" : \t4 \n"), 0, 4, NULL },
	{ "long digits", TOP(",\"truncatedAlerts\":"
	  "1.00000000000000000000000000000000000000000000000000000000000000"
	  "0000000000"), 0, 1, NULL },
	{ "negative", TOP(",\"truncatedAlerts\":-1"), -EINVAL, 0,
	  "truncatedAlerts: expected a non-negative integer" },
	{ "fraction", TOP(",\"truncatedAlerts\":2.5"), -EINVAL, 0,
	  "non-negative integer" },
	{ "over 2^53", TOP(",\"truncatedAlerts\":18014398509481984"), -EINVAL,
	  0, "non-negative integer" },
	{ "infinite", TOP(",\"truncatedAlerts\":1e400"), -EINVAL, 0,
	  "non-negative integer" },
	{ "huge negative", TOP(",\"truncatedAlerts\":-1e400"), -EINVAL, 0,
	  "non-negative integer" },
	{ "true", TOP(",\"truncatedAlerts\":true"), -EINVAL, 0,
	  "truncatedAlerts: expected number" },
	{ "array", TOP(",\"truncatedAlerts\":[1]"), -EINVAL, 0,
	  "truncatedAlerts: expected number" },
	// Outside the JSON grammar (cJSON took some of these).
	{ "plus", TOP(",\"truncatedAlerts\":+1"), -EINVAL, 0, "invalid JSON" },
	{ "leading zero", TOP(",\"truncatedAlerts\":01"), -EINVAL, 0,
	  "invalid JSON" },
	{ "minus leading zero", TOP(",\"truncatedAlerts\":-01"), -EINVAL, 0,
	  "invalid JSON" },
	{ "bare fraction", TOP(",\"truncatedAlerts\":.5"), -EINVAL, 0,
	  "invalid JSON" },
	{ "trailing dot", TOP(",\"truncatedAlerts\":1."), -EINVAL, 0,
	  "invalid JSON" },
	{ "bare minus", TOP(",\"truncatedAlerts\":-"), -EINVAL, 0,
	  "invalid JSON" },
	{ "empty exponent", TOP(",\"truncatedAlerts\":1e"), -EINVAL, 0,
	  "invalid JSON" },
	{ "signed empty exponent", TOP(",\"truncatedAlerts\":1e-"), -EINVAL, 0,
	  "invalid JSON" },
	{ "hex", TOP(",\"truncatedAlerts\":0x10"), -EINVAL, 0,
	  "invalid JSON" },
	{ "NaN", TOP(",\"truncatedAlerts\":NaN"), -EINVAL, 0,
	  "invalid JSON" },
	{ "Infinity", TOP(",\"truncatedAlerts\":Infinity"), -EINVAL, 0,
	  "invalid JSON" },
	// Numbers in unknown members: every JSON form passes, others not.
	{ "unknown numbers", TOP(",\"x\":[0,-0,1,-1.5,2e3,2E-3,-0.0e+0,"
	  "123456789012345678901234567890]"), 0, 0, NULL },
	{ "unknown bad number", TOP(",\"x\":[1,02]"), -EINVAL, 0,
	  "invalid JSON" },
	{ NULL, NULL, 0, 0, NULL },
};

static void
test_reader_numbers(void)
{
	for (const struct num_case *c = num_cases; c->name != NULL; c++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv = parse_s(c->body, &n, err, sizeof(err));

		if (rv != c->rv)
			printf("# case \"%s\": rv %d err \"%s\"\n", c->name, rv,
			    err);
		CHECK_INT(rv, c->rv);
		if (rv == 0 && c->rv == 0)
			CHECK_INT(n->truncated_alerts, c->want);
		if (c->rv != 0)
			CHECK_HAS(err, c->msg);
		coord_notification_free(n);
	}
}

// Malformed or refused text the reader must catch itself, and the order
// in which faults are reported.
static const struct bad_case reader_bad_cases[] = {
	// Escapes.
	{ "unknown escape", ANN("\\x41"), 0, -EINVAL, "invalid JSON" },
	{ "short \\u", ANN("\\u12"), 0, -EINVAL, "invalid JSON" },
	{ "bad hex", ANN("\\u12G4"), 0, -EINVAL, "invalid JSON" },
	// cJSON decoded this as U+0000 and cut the value to "X" unnoticed.
	{ "non-hex digit in \\u", HEAD LBL(",\"i\":\"X\\u00=9Y\"") TAIL, 0,
	  -EINVAL, "invalid JSON" },
	{ "\\u at the end of the body", "{\"version\":\"\\u00", 0, -EINVAL,
	  "invalid JSON" },
	{ "high surrogate alone", ANN("\\ud800x"), 0, -EINVAL,
	  "invalid JSON" },
	{ "high surrogate then \\u0041", ANN("\\ud800\\u0041"), 0, -EINVAL,
	  "invalid JSON" },
	{ "two high surrogates", ANN("\\ud800\\ud800"), 0, -EINVAL,
	  "invalid JSON" },
	{ "low surrogate alone", ANN("\\uDFFF"), 0, -EINVAL, "invalid JSON" },
	{ "bad escape in an unknown key", TOP(",\"a\\q\":1"), 0, -EINVAL,
	  "invalid JSON" },
	{ "lone surrogate in an unknown value", TOP(",\"x\":[\"\\udc00\"]"), 0,
	  -EINVAL, "invalid JSON" },
	{ "\\u0000 in an unknown value", TOP(",\"x\":{\"y\":\"\\u0000\"}"), 0,
	  -EINVAL, "\\u0000 in a string" },
	{ "raw control byte in an unknown key", TOP(",\"a\x01\":1"), 0,
	  -EINVAL, "control character in a string" },
	// UTF-8: escapes that decode next to raw bytes.
	{ "raw lead byte before an escape", ANN("\xc3\\u00a9"), 0, -EINVAL,
	  "alerts[0].annotations.d: not valid UTF-8" },
	{ "non-UTF-8 fingerprint", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"fingerprint\":\"\xff\"}" TAIL, 0, -EINVAL,
	  "alerts[0].fingerprint: not valid UTF-8" },
	{ "non-UTF-8 groupKey", TOP(",\"groupKey\":\"\xe2\x82\""), 0, -EINVAL,
	  "groupKey: not valid UTF-8" },
	{ "non-UTF-8 commonLabels value",
	  TOP(",\"commonLabels\":{\"a\":\"\xc0\x80\"}"), 0, -EINVAL,
	  "commonLabels.a: not valid UTF-8" },
	// Structure.
	{ "missing colon", "{\"version\" \"4\",\"alerts\":[]}", 0, -EINVAL,
	  "invalid JSON" },
	{ "trailing comma in object", TOP(","), 0, -EINVAL, "invalid JSON" },
	{ "trailing comma in array", TOP(",\"x\":[1,]"), 0, -EINVAL,
	  "invalid JSON" },
	{ "unquoted key", TOP(",x:1"), 0, -EINVAL, "invalid JSON" },
	{ "single quotes", TOP(",'x':1"), 0, -EINVAL, "invalid JSON" },
	{ "bad literal", TOP(",\"x\":nul"), 0, -EINVAL, "invalid JSON" },
	{ "capital literal", TOP(",\"x\":True"), 0, -EINVAL, "invalid JSON" },
	{ "unclosed array", "{\"version\":\"4\",\"alerts\":[", 0, -EINVAL,
	  "invalid JSON" },
	{ "unclosed unknown object", TOP(",\"x\":{\"a\":1"), 0, -EINVAL,
	  "invalid JSON" },
	{ "mismatched close", TOP(",\"x\":[1}"), 0, -EINVAL, "invalid JSON" },
	// Whitespace is space, tab, CR and LF only.
	{ "form feed as space", "{\"version\":\"4\",\f\"alerts\":[]}", 0,
	  -EINVAL, "invalid JSON" },
	{ "vertical tab as space", "{\"version\":\"4\",\v\"alerts\":[]}", 0,
	  -EINVAL, "invalid JSON" },
	{ "control byte before the body", "\x01{\"version\":\"4\","
	  "\"alerts\":[]}", 0, -EINVAL, "invalid JSON" },
	{ "NBSP as space", "{\"version\":\"4\",\xc2\xa0\"alerts\":[]}", 0,
	  -EINVAL, "invalid JSON" },
	// Duplicate known keys, also when spelled with escapes.
	{ "duplicate alerts", "{\"version\":\"4\",\"alerts\":[],\"alerts\":[]}",
	  0, -EINVAL, "alerts: duplicate key" },
	{ "duplicate truncatedAlerts", TOP(",\"truncatedAlerts\":1,"
	  "\"truncatedAlerts\":2"), 0, -EINVAL,
	  "truncatedAlerts: duplicate key" },
	{ "duplicate commonLabels", TOP(",\"commonLabels\":{},"
	  "\"commonLabels\":{}"), 0, -EINVAL, "commonLabels: duplicate key" },
	{ "duplicate version escaped", TOP(",\"\\u0076ersion\":\"4\""), 0,
	  -EINVAL, "version: duplicate key" },
	{ "duplicate labels", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"labels\":{\"alertname\":\"A\"}}" TAIL, 0,
	  -EINVAL, "alerts[0].labels: duplicate key" },
	{ "duplicate endsAt", HEAD "{\"status\":\"firing\",\"labels\":"
	  "{\"alertname\":\"A\"},\"endsAt\":null,\"endsAt\":null}" TAIL, 0,
	  -EINVAL, "alerts[0].endsAt: duplicate key" },
	{ "duplicate label escaped", HEAD LBL(",\"\\u0061lertname\":\"B\"")
	  TAIL, 0, -EINVAL, "alerts[0].labels: duplicate key \"alertname\"" },
	// Order of reports: malformed text wins over a rule broken before
	// it, and a NUL byte or control byte over malformed text.
	{ "bad version then bad JSON",
	  "{\"version\":\"3\",\"alerts\":[],\"x\":}", 0, -EINVAL,
	  "invalid JSON" },
	{ "too many labels then bad JSON", "{\"version\":\"4\",\"alerts\":[{"
	  "\"status\":\"firing\",\"labels\":{\"alertname\":\"A\",\"b\":\"1\","
	  "\"c\":\"2\",\"d\":\"3\",\"e\":\"4\"}}]} x", 0, -EINVAL,
	  "trailing data" },
	{ "bad JSON then a control byte", "{\"version\":,\"x\":\"\x02\"}", 0,
	  -EINVAL, "control character in a string at offset 17" },
	{ "missing version then bad JSON", "{\"alerts\":[]", 0, -EINVAL,
	  "invalid JSON" },
	{ NULL, NULL, 0, 0, NULL },
};

static void
test_reader_malformed(void)
{
	struct coord_webhook_limits four = coord_webhook_default_limits;

	four.max_labels = 4;
	for (const struct bad_case *c = reader_bad_cases; c->name != NULL;
	    c++) {
		struct coord_notification *n = (void *)1;
		size_t len = c->len != 0 ? c->len : strlen(c->body);
		char err[256] = "";
		int rv = parse_n(c->body, len, &four, &n, err, sizeof(err));

		if (rv != c->rv || strstr(err, c->msg) == NULL)
			printf("# case \"%s\": rv %d err \"%s\"\n", c->name,
			    rv, err);
		CHECK_INT(rv, c->rv);
		CHECK_HAS(err, c->msg);
		CHECK(n == NULL);
	}
}

static const struct good_case reader_good_cases[] = {
	{ "every space kind between tokens", " \t\r\n{ \t\r\n\"version\" \t"
	  "\r\n: \t\r\n\"4\" \t\r\n, \t\r\n\"alerts\" \t\r\n: \t\r\n[ \t\r\n"
	  "{ \"status\" : \"firing\" , \"labels\" : { \"alertname\" : \"A\" "
	  "} } \t\r\n] \t\r\n} \t\r\n", 1 },
	{ "byte order mark", "\xef\xbb\xbf{\"version\":\"4\",\"alerts\":[]}",
	  0 },
	{ "empty containers with spaces", TOP(",\"a\":[ ],\"b\":{ },"
	  "\"groupLabels\":{ }"), 0 },
	{ "literals in unknown members", TOP(",\"t\":true,\"f\":false,"
	  "\"n\":null,\"l\":[true,false,null,{}]"), 0 },
	{ "duplicate unknown keys", TOP(",\"x\":1,\"x\":2,\"x\":{\"x\":3}"),
	  0 },
	{ "known names nested in unknown members", TOP(",\"x\":{\"version\":"
	  "3,\"alerts\":{},\"labels\":5}"), 0 },
	{ "escaped key names", "{\"\\u0076ersion\":\"4\",\"al\\u0065rts\":"
	  "[{\"status\":\"firing\",\"labels\":{\"\\u0061lertname\":\"A\"}}]}",
	  1 },
	{ "non-UTF-8 in unknown members", TOP(",\"x\":\"\xff\",\"\xfe\":1"),
	  0 },
	{ "escaped slash and quote in keys", TOP(",\"a\\/b\\\"c\":1"), 0 },
	{ NULL, NULL, 0 },
};

static void
test_reader_valid(void)
{
	for (const struct good_case *c = reader_good_cases; c->name != NULL;
	    c++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv = parse_s(c->body, &n, err, sizeof(err));

		if (rv != 0)
			printf("# case \"%s\": %s\n", c->name, err);
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		CHECK(notification_ok(n));
		CHECK_INT(n->n_alerts, c->n_alerts);
		coord_notification_free(n);
	}
}

// A body whose unknown member "x" nests `levels` arrays or objects (the
// body's own object is one more level).
static char *
deep_body(size_t levels, bool objects)
{
	const char *open = objects ? "{\"a\":" : "[", *close = objects ? "}" :
	    "]";
	size_t cap = 64 + levels * 6, i;
	char *b = malloc(cap), *o;

	if (b == NULL)
		abort();
	o = b + sprintf(b, "{\"version\":\"4\",\"alerts\":[],\"x\":");
	for (i = 0; i < levels; i++)
		o += sprintf(o, "%s", open);
	o += sprintf(o, "1");
	for (i = 0; i < levels; i++)
		o += sprintf(o, "%s", close);
	sprintf(o, "}");
	return b;
}

static void
test_reader_depth(void)
{
	for (int objects = 0; objects < 2; objects++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		char *b = deep_body(999, objects); // 1000 levels in all
		int rv = parse_s(b, &n, err, sizeof(err));

		if (rv != 0)
			printf("# %s\n", err);
		CHECK_INT(rv, 0);
		coord_notification_free(n);
		n = NULL;
		free(b);
		b = deep_body(1000, objects);
		rv = parse_s(b, &n, err, sizeof(err));
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, "invalid JSON");
		CHECK_HAS(err, "nests deeper than 1000 levels");
		CHECK(n == NULL);
		free(b);
		// Far deeper than any stack would take by recursion.
		b = deep_body(100000, objects);
		rv = parse_s(b, &n, err, sizeof(err));
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, "nests deeper than 1000 levels");
		CHECK(n == NULL);
		free(b);
	}
}

// Strings are scanned sixteen bytes at a time: a special byte (escape,
// quote, control byte, non-ASCII) at every position of strings of every
// length up to a few words, at every alignment of the body.
static void
test_reader_string_positions(void)
{
	static const char *const kinds[] = { "\\n", "\x01", "\xff",
		"\xc3\xa9", "\\\"", "\\u00e9" };
	static const char *const decoded[] = { "\n", NULL, NULL, "\xc3\xa9",
		"\"", "\xc3\xa9" };
	char body[512], val[128], want[128], err[256];
	int bad = 0;

	for (size_t kind = 0; kind < 6; kind++)
	for (size_t len = 0; len <= 40; len++)
	for (size_t at = 0; at <= len; at++)
	for (size_t pad = 0; pad < 8; pad += 3) {
		struct coord_notification *n = NULL;
		size_t k = 0, w = 0;
		const char *got;
		int rv;

		for (size_t i = 0; i <= len; i++) {
			if (i == at) {
				k += (size_t)sprintf(val + k, "%s",
				    kinds[kind]);
				if (decoded[kind] != NULL)
					w += (size_t)sprintf(want + w, "%s",
					    decoded[kind]);
			}
			if (i < len) {
				val[k++] = (char)('a' + i % 26);
				want[w++] = (char)('a' + i % 26);
			}
		}
		val[k] = want[w] = '\0';
		snprintf(body, sizeof(body), "%*s" HEAD "{\"status\":"
		    "\"firing\",\"labels\":{\"alertname\":\"A\"},"
		    "\"annotations\":{\"d\":\"%s\"}}" TAIL, (int)pad, "", val);
		rv = parse_s(body, &n, err, sizeof(err));
		got = rv == 0 ? coord_kvs_get(&n->alerts[0].annotations, "d") :
		    NULL;
		if (kind == 1 ? (rv != -EINVAL || !strstr(err,
		    "control character in a string")) :
		    kind == 2 ? (rv != -EINVAL || !strstr(err,
		    "annotations.d: not valid UTF-8")) :
		    (rv != 0 || got == NULL || strcmp(got, want) != 0)) {
			if (bad++ < 5)
				printf("# kind %zu len %zu at %zu pad %zu: "
				    "rv %d %s\n", kind, len, at, pad, rv, err);
		}
		coord_notification_free(n);
	}
	CHECK_INT(bad, 0);
}

// A configured depth (limits.max_json_depth) is reported in the words of
// coord_jdepth_check, ahead of any other fault, as when that check ran
// before the parser.
static void
test_reader_configured_depth(void)
{
	struct coord_webhook_limits lim = coord_webhook_default_limits;
	struct coord_notification *n = NULL;
	char err[256] = "";
	char *b;
	int rv;

	lim.max_depth = 12;
	b = deep_body(11, false); // 12 levels
	rv = parse_n(b, strlen(b), &lim, &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	coord_notification_free(n);
	n = NULL;
	free(b);
	b = deep_body(12, true); // 13 levels; the 13th opens at offset 86
	rv = parse_n(b, strlen(b), &lim, &n, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_STR(err, "body: JSON nests deeper than 12 levels at offset 86 "
	    "(limits.max_json_depth)");
	CHECK(n == NULL);
	free(b);
	// Ahead of a rule broken earlier, and of a NUL byte.
	rv = parse_n("{\"version\":\"3\",\"x\":[[[[[[[[[[[[]]]]]]]]]]]]}\0", 46,
	    &lim, &n, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_STR(err, "body: JSON nests deeper than 12 levels at offset 30 "
	    "(limits.max_json_depth)");
	// Over COORD_JSON_DEPTH_MAX the reader still stops at 1000.
	lim.max_depth = 5000;
	b = deep_body(1000, false);
	rv = parse_n(b, strlen(b), &lim, &n, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "nests deeper than 1000 levels");
	CHECK(n == NULL);
	free(b);
}

// Alerts leave their notification the way coord_engine_push takes them:
// the struct copied out and the slot zeroed; each owns one block.
static void
test_reader_alert_ownership(void)
{
	struct coord_notification *n = parse_ok(HEAD
	    LBL(",\"a\":\"1\"") ","
	    "{\"status\":\"resolved\",\"labels\":{\"alertname\":\"B\"},"
	    "\"annotations\":{\"s\":\"t\\u00e9\"},\"generatorURL\":\"g\","
	    "\"fingerprint\":\"f\"}" TAIL);
	struct coord_alert *moved[2];
	struct coord_alert *d;

	CHECK(n != NULL);
	if (n == NULL)
		return;
	CHECK(n->alerts[0].mem != NULL && n->alerts[1].mem != NULL);
	for (int i = 0; i < 2; i++) {
		moved[i] = malloc(sizeof(*moved[i]));
		if (moved[i] == NULL)
			abort();
		*moved[i] = n->alerts[i];
		memset(&n->alerts[i], 0, sizeof(n->alerts[i]));
	}
	coord_notification_free(n); // frees none of the moved alerts
	CHECK_STR(coord_kvs_get(&moved[0]->labels, "a"), "1");
	CHECK_STR(moved[0]->generator_url, "");
	CHECK_STR(coord_kvs_get(&moved[1]->annotations, "s"), "t\xc3\xa9");
	CHECK_STR(moved[1]->generator_url, "g");
	CHECK_STR(moved[1]->fingerprint, "f");
	d = coord_alert_dup(moved[1]);
	CHECK(d != NULL && d->mem != NULL && d->mem != moved[1]->mem);
	coord_alert_free(moved[0]);
	coord_alert_free(moved[1]);
	if (d != NULL) {
		CHECK_STR(coord_kvs_get(&d->labels, "alertname"), "B");
		CHECK_INT(d->annotations.n, 1);
		CHECK_STR(d->fingerprint, "f");
	}
	coord_alert_free(d);
}

// coord_alert_clear releases an alert kept inside another struct (the
// engine's event holds the alert it takes from a notification that way):
// of the one-block layout and of the field-by-field one; then zeroed, and
// a second clear is harmless. ASan and valgrind see a leak or a double
// free here.
static void
test_alert_clear(void)
{
	struct coord_notification *n = parse_ok(HEAD
	    LBL(",\"a\":\"1\"") TAIL);
	struct coord_alert in, fields = { 0 }, zero = { 0 };

	CHECK(n != NULL);
	if (n == NULL)
		return;
	in = n->alerts[0];
	memset(&n->alerts[0], 0, sizeof(n->alerts[0]));
	coord_notification_free(n);
	CHECK_STR(coord_kvs_get(&in.labels, "a"), "1");
	coord_alert_clear(&in);
	CHECK(memcmp(&in, &zero, sizeof(in)) == 0);
	coord_alert_clear(&in);

	fields.labels.v = calloc(1, sizeof(*fields.labels.v));
	if (fields.labels.v == NULL)
		abort();
	fields.labels.n = 1;
	fields.labels.v[0].key = strdup("alertname");
	fields.labels.v[0].val = strdup("X");
	fields.generator_url = strdup("g");
	fields.fingerprint = strdup("f");
	coord_alert_clear(&fields);
	CHECK(memcmp(&fields, &zero, sizeof(fields)) == 0);
	coord_alert_clear(NULL);
}

// Strings are scanned sixteen bytes at a time while that many body bytes
// are left and byte by byte after: the string that ends the body, with a
// special byte at every position, crosses from one to the other at every
// offset; the body is an exact-size copy, so a read past it is caught
// under ASan.
static void
test_reader_string_at_body_end(void)
{
	static const char *const kinds[] = { "\\n", "\x01", "\xff",
		"\xc3\xa9", "\\\"", "\\u00e9", "\\ud83d\\ude00" };
	static const char *const decoded[] = { "\n", NULL, NULL, "\xc3\xa9",
		"\"", "\xc3\xa9", "\xf0\x9f\x98\x80" };
	char body[512], val[128], want[128], err[256];
	int bad = 0;

	for (size_t kind = 0; kind < 7; kind++)
	for (size_t len = 0; len <= 40; len++)
	for (size_t at = 0; at <= len; at++) {
		struct coord_notification *n = NULL;
		size_t k = 0, w = 0;
		int rv;

		for (size_t i = 0; i <= len; i++) {
			if (i == at) {
				k += (size_t)sprintf(val + k, "%s",
				    kinds[kind]);
				if (decoded[kind] != NULL)
					w += (size_t)sprintf(want + w, "%s",
					    decoded[kind]);
			}
			if (i < len) {
				val[k++] = (char)('a' + i % 26);
				want[w++] = (char)('a' + i % 26);
			}
		}
		val[k] = want[w] = '\0';
		snprintf(body, sizeof(body), TOP(",\"receiver\":\"%s\""), val);
		rv = parse_s(body, &n, err, sizeof(err));
		if (kind == 1 ? (rv != -EINVAL || !strstr(err,
		    "control character in a string")) :
		    kind == 2 ? (rv != -EINVAL || !strstr(err,
		    "receiver: not valid UTF-8")) :
		    (rv != 0 || strcmp(n->receiver, want) != 0)) {
			if (bad++ < 5)
				printf("# kind %zu len %zu at %zu: rv %d %s\n",
				    kind, len, at, rv, err);
		}
		coord_notification_free(n);
	}
	CHECK_INT(bad, 0);
}

// A body cut anywhere inside its last string (in an escape, after a
// lone backslash, before the closing quote) is malformed JSON, reported
// at the end of the body or at the escape it cuts.
static void
test_reader_string_cut(void)
{
	static const char full[] = TOP(",\"receiver\":\"abcdefghijklmnopq"
	    "\\u00e9\\ud83d\\ude00rst\\\"uvwxyz0123456789\\\\\"");
	size_t from = strlen(TOP(",\"receiver\":\""));
	int bad = 0;

	from -= 1; // TOP's closing "}": from is just past the opening quote
	for (size_t cut = from; cut < sizeof(full) - 2; cut++) {
		struct coord_notification *n = NULL;
		char err[256] = "";
		int rv = parse_n(full, cut, NULL, &n, err, sizeof(err));

		if (rv != -EINVAL || !strstr(err, "body: invalid JSON near "
		    "offset") || n != NULL) {
			if (bad++ < 5)
				printf("# cut at %zu: rv %d %s\n", cut, rv,
				    err);
		}
		coord_notification_free(n);
	}
	CHECK_INT(bad, 0);
	// The whole body parses.
	{
		struct coord_notification *n = parse_ok(full);

		CHECK(n != NULL);
		if (n != NULL)
			CHECK_STR(n->receiver, "abcdefghijklmnopq\xc3\xa9"
			    "\xf0\x9f\x98\x80rst\"uvwxyz0123456789\\");
		coord_notification_free(n);
	}
}

// Label names are checked in the block their key was read in when it is
// short and plain, byte by byte otherwise: names of every length with a
// byte just outside each allowed range at every position, in an alert
// (bytes follow: the block path) and as the body's last label (no room
// for a block), and names spelled with escapes.
static void
test_reader_label_names(void)
{
	static const char ok_bytes[] = "aZ_9zA0m";
	static const char *const bad_bytes[] = { "-", "@", "[", "`", "{",
		"/", ":", "^", "\x7f", "\xc3\xa9", " " };
	char name[64], body[512], err[256];
	int bad = 0;

	for (size_t len = 1; len <= 40; len++)
	for (size_t at = 0; at <= len; at++) // at == len: all valid
	for (size_t b = 0; b < sizeof(bad_bytes) / sizeof(bad_bytes[0]); b++)
	for (int last = 0; last < 2; last++) {
		struct coord_notification *n = NULL;
		size_t k = 0;
		bool valid;
		int rv;

		if (at == len && b > 0)
			continue;
		for (size_t i = 0; i < len; i++) {
			if (i == at)
				k += (size_t)sprintf(name + k, "%s",
				    bad_bytes[b]);
			else
				name[k++] = i == 0 ? 'x' : ok_bytes[i % 8];
		}
		name[k] = '\0';
		valid = at == len;
		if (last)
			snprintf(body, sizeof(body), TOP(",\"groupLabels\":"
			    "{\"%s\":\"v\"}"), name);
		else
			snprintf(body, sizeof(body), HEAD LBL(",\"%s\":\"v\"")
			    TAIL, name);
		rv = parse_s(body, &n, err, sizeof(err));
		if (valid ? rv != 0 || coord_kvs_get(last ?
		    &n->group_labels : &n->alerts[0].labels, name) == NULL :
		    rv != -EINVAL || !strstr(err, "invalid label name")) {
			if (bad++ < 5)
				printf("# len %zu at %zu byte %zu last %d: rv %d "
				    "%s\n", len, at, b, last, rv, err);
		}
		coord_notification_free(n);
	}
	// A digit first, alone or in front of a valid name.
	for (size_t len = 1; len <= 20; len++) {
		struct coord_notification *n = NULL;

		memset(name, 'a', len);
		name[0] = '7';
		name[len] = '\0';
		snprintf(body, sizeof(body), HEAD LBL(",\"%s\":\"v\"") TAIL,
		    name);
		if (parse_s(body, &n, err, sizeof(err)) != -EINVAL ||
		    !strstr(err, "invalid label name")) {
			if (bad++ < 5)
				printf("# digit first, len %zu: %s\n", len, err);
		}
		coord_notification_free(n);
	}
	CHECK_INT(bad, 0);
	// Escapes: checked on the decoded name.
	{
		struct coord_notification *n = parse_ok(HEAD
		    LBL(",\"\\u0061b_\\u0039\":\"v\"") TAIL);

		CHECK(n != NULL);
		if (n != NULL)
			CHECK_STR(coord_kvs_get(&n->alerts[0].labels, "ab_9"),
			    "v");
		coord_notification_free(n);
	}
	{
		struct coord_notification *n = NULL;
		int rv = parse_s(HEAD LBL(",\"a\\u002db\":\"v\"") TAIL, &n, err,
		    sizeof(err));

		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, "invalid label name \"a-b\"");
	}
}

// FNV-1a 64 of the sorted label pairs, each key and value followed by a
// NUL, byte by byte: what coord_alert_identity must give.
static uint64_t
identity_ref(const struct coord_kvs *kvs, const char *const *ign,
    size_t n_ign)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < kvs->n; i++) {
		bool skip = false;

		for (size_t k = 0; k < n_ign; k++)
			if (ign[k] != NULL && strcmp(ign[k], kvs->v[i].key) == 0)
				skip = true;
		if (skip)
			continue;
		for (int f = 0; f < 2; f++) {
			const unsigned char *u = (const unsigned char *)
			    (f == 0 ? kvs->v[i].key : kvs->v[i].val);

			do {
				h ^= *u;
				h *= 1099511628211ULL;
			} while (*u++ != '\0');
		}
	}
	return h;
}

// The identity against identity_ref: names and values of every length
// 0..40 (each remainder of the hash loop), ignore lists with names that
// share a first byte with labels but are not theirs, NULL and "" entries,
// and first bytes in every quarter of the byte range (UTF-8 values).
static void
test_identity_values(void)
{
	static const char *const ign[] = {
		"prometheus_replica", NULL, "", "a", "\xc3\xa9", "zz", "_x",
	};
	char body[8192], val[64];
	int bad = 0;

	for (size_t len = 0; len <= 40; len++) {
		struct coord_notification *n;

		memset(val, 'v', len);
		val[len] = '\0';
		if (len > 3)
			memcpy(val + 1, "\xc3\xa9", 2);
		snprintf(body, sizeof(body), HEAD LBL(",\"prometheus\":\"%s\","
		    "\"prometheus_replica\":\"%s\",\"a\":\"%s\",\"ab\":\"x\","
		    "\"_x\":\"%s\",\"zz\":\"1\",\"z\":\"%s\"") TAIL, val, val,
		    val, val, val);
		n = parse_ok(body);
		if (n == NULL) {
			bad++;
			continue;
		}
		for (size_t k = 0; k <= sizeof(ign) / sizeof(ign[0]); k++) {
			const struct coord_alert *a = &n->alerts[0];

			if (coord_alert_identity(a, ign, k) !=
			    identity_ref(&a->labels, ign, k)) {
				if (bad++ < 5)
					printf("# len %zu, %zu ignored\n", len, k);
			}
		}
		coord_notification_free(n);
	}
	CHECK_INT(bad, 0);
	// Field by field (mem NULL), keys and values with bytes >= 0x80
	// first, and an empty key.
	{
		static char k0[] = "", k1[] = "\xc3\xa9t\xc3\xa9", k2[] = "\xff";
		static char v0[] = "e", v1[] = "", v2[] = "\x80\x81";
		static const char *const ign2[] = { "\xc3\xa9", "\xff" };
		struct coord_kv kv[] = { { k0, v0 }, { k1, v1 }, { k2, v2 } };
		struct coord_alert a = { .labels = { kv, 3 } };

		for (size_t k = 0; k <= 2; k++)
			CHECK(coord_alert_identity(&a, ign2, k) ==
			    identity_ref(&a.labels, ign2, k));
	}
}

// coord_idmemo gives coord_alert_identity's value: 600 label sets (more
// than the memo's slots, so slots are taken over; without a fingerprint,
// with their own, or all with the same one), each asked several times in
// a random order under ignore lists that change between asks (a new
// list, the same names at other addresses, a longer one, none).
// An alert whose text is the memo's but whose labels differ (not what
// the parser makes) shows that a hit does not hash: it gets the memo's
// value until the ignore list changes.
static void
test_identity_memo(void)
{
	static const char *const ign_a[] = { "prometheus_replica" };
	static const char *const ign_b[] = { "prometheus_replica", "pod" };
	static const char *const ign_c[] = { NULL, "pod" };
	char copy_a[] = "prometheus_replica";
	const char *const ign_a2[] = { copy_a };
	const char *const *lists[] = { ign_a, ign_b, ign_c, ign_a2, NULL };
	const size_t n_lists[] = { 1, 2, 2, 1, 0 };
	enum { SETS = 600, ASKS = 6000 };
	struct coord_notification **ns = calloc(SETS, sizeof(*ns));
	struct coord_idmemo *m = coord_idmemo_new();
	unsigned seed = 7;
	char body[1024];
	int bad = 0, no_text = 0;

	CHECK(ns != NULL && m != NULL);
	if (ns == NULL || m == NULL)
		goto out;
	for (int i = 0; i < SETS; i++) {
		char fp[32] = "";

		// No fingerprint, one shared by many sets, or its own.
		if (i % 4 == 1)
			snprintf(fp, sizeof(fp), ",\"fingerprint\":\"same\"");
		else if (i % 4 > 1)
			snprintf(fp, sizeof(fp), ",\"fingerprint\":\"f%d\"", i);
		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\":{\"alertname\":\"A\",\"instance\":\"10.0.%d.%d"
		    ":8080\",\"pod\":\"p-%d\",\"prometheus_replica\":"
		    "\"r%d\"}%s}" TAIL, i / 250, i % 250, i % 7, i % 2, fp);
		ns[i] = parse_ok(body);
		if (ns[i] == NULL)
			goto out;
		if (ns[i]->alerts[0].labels_json == NULL)
			no_text++;
	}
	CHECK_INT(no_text, 0); // sorted, compact: the memo's case
	for (int k = 0; k < ASKS; k++) {
		const struct coord_alert *a;
		int l;

		seed = seed * 1103515245u + 12345u;
		a = &ns[(seed >> 8) % SETS]->alerts[0];
		l = k / 500 % 5; // the list changes every 500 asks
		if (coord_idmemo_identity(m, a, lists[l], n_lists[l]) !=
		    coord_alert_identity(a, lists[l], n_lists[l]) && bad++ < 5)
			printf("# ask %d: set %u, list %d\n", k,
			    (seed >> 8) % SETS, l);
	}
	CHECK_INT(bad, 0);
	{
		struct coord_alert t = ns[1]->alerts[0];
		uint64_t h0 = coord_alert_identity(&ns[0]->alerts[0], NULL, 0);

		t.labels_json = ns[0]->alerts[0].labels_json;
		t.labels_json_len = ns[0]->alerts[0].labels_json_len;
		t.fingerprint = ns[0]->alerts[0].fingerprint;
		CHECK(coord_alert_identity(&t, NULL, 0) != h0);
		CHECK(coord_idmemo_identity(m, &ns[0]->alerts[0], NULL, 0) ==
		    h0);
		CHECK(coord_idmemo_identity(m, &t, NULL, 0) == h0);
		CHECK(coord_idmemo_identity(m, &t, ign_a, 1) ==
		    coord_alert_identity(&t, ign_a, 1));
		// Without a text, or without a memo: hashed.
		t.labels_json = NULL;
		CHECK(coord_idmemo_identity(m, &t, NULL, 0) ==
		    coord_alert_identity(&t, NULL, 0));
		CHECK(coord_idmemo_identity(NULL, &ns[2]->alerts[0], ign_b,
		    2) == coord_alert_identity(&ns[2]->alerts[0], ign_b, 2));
	}
out:
	for (int i = 0; ns != NULL && i < SETS; i++)
		coord_notification_free(ns[i]);
	free(ns);
	coord_idmemo_free(m);
}

// Go's zero time reads as "none" in either field, however it is written;
// other times near it do not.
static void
test_zero_times(void)
{
	static const struct {
		const char *text;
		bool none;
	} cases[] = {
		{ "0001-01-01T00:00:00Z", true },
		{ "0001-01-01T00:00:00.000Z", true },
		{ "0001-01-01T00:00:00+00:00", true },
		{ "0001-01-01t00:00:00z", true },
		{ "0001-01-01T00:00:00\\u005a", true },
		{ "\\u0030001-01-01T00:00:00Z", true },
		{ "0001-01-01T00:00:01Z", false },
		{ "0001-01-02T00:00:00Z", false },
		{ "0001-01-01T00:00:00.001Z", false },
		{ "0001-01-01T01:00:00+01:00", true },
	};
	char body[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct coord_notification *n;

		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\":{\"alertname\":\"A\"},\"startsAt\":\"%s\","
		    "\"endsAt\":\"%s\"}" TAIL, cases[i].text, cases[i].text);
		n = parse_ok(body);
		CHECK(n != NULL);
		if (n == NULL)
			continue;
		if ((n->alerts[0].starts_ms == CM_TIME_NONE) != cases[i].none ||
		    n->alerts[0].ends_ms != n->alerts[0].starts_ms)
			printf("# %s\n", cases[i].text);
		CHECK((n->alerts[0].starts_ms == CM_TIME_NONE) == cases[i].none);
		CHECK(n->alerts[0].ends_ms == n->alerts[0].starts_ms);
		coord_notification_free(n);
	}
	// Not a time at all, however close to the zero time.
	{
		struct coord_notification *n = NULL;
		char err[256] = "";

		CHECK_INT(parse_s(HEAD "{\"status\":\"firing\",\"labels\":"
		    "{\"alertname\":\"A\"},\"endsAt\":\"0001-01-01T00:00:00Z \"}"
		    TAIL, &n, err, sizeof(err)), -EINVAL);
		CHECK_HAS(err, "alerts[0].endsAt: not an RFC 3339 time");
	}
}

// Annotation names: a DEL or (escaped) control byte anywhere refuses the
// name, short (read in one block) or long, and any other name passes.
static void
test_annotation_names(void)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "summary", true },
		{ "a\x7f", false },
		{ "\x7f", false },
		{ "fifteen-bytes-x\x7f", false },
		{ "sixteen-bytes-xx\x7f", false },
		{ "a-much-longer-annotation-name\x7f", false },
		{ "\x7f" "a-much-longer-annotation-name", false },
		{ "a\\u007f", false },
		{ "a\\u0001", false },
		{ "a\\n", false },
		{ "a\\t-and-a-long-tail-after-it", false },
		{ "\xc3\xa9t\xc3\xa9 ~!", true },
		{ "a-much-longer-annotation-name~~", true },
		{ "", false },
	};
	char body[512], err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct coord_notification *n = NULL;
		int rv;

		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\":{\"alertname\":\"A\"},\"annotations\":"
		    "{\"%s\":\"v\"}}" TAIL, cases[i].name);
		rv = parse_s(body, &n, err, sizeof(err));
		if ((rv == 0) != cases[i].ok)
			printf("# %zu: %d %s\n", i, rv, err);
		CHECK((rv == 0) == cases[i].ok);
		if (!cases[i].ok)
			CHECK_HAS(err, "alerts[0].annotations: invalid "
			    "annotation name");
		coord_notification_free(n);
	}
}

// Label sets larger than the reader's scratch in its frame (64 entries):
// an alert with 64 labels and 64 annotations, and with a raised limit
// sets of 150, read in full and in order.
static void
test_large_label_sets(void)
{
	struct coord_webhook_limits lim = coord_webhook_default_limits;
	size_t cap = 64 * 1024, o;
	char *body = malloc(cap), err[256];
	struct coord_notification *n = NULL;
	int rv;

	CHECK(body != NULL);
	if (body == NULL)
		return;
	lim.max_labels = 150;
	for (size_t count = 63; count <= 150; count += count < 66 ? 1 : 84) {
		o = (size_t)snprintf(body, cap, "{\"version\":\"4\","
		    "\"commonLabels\":{");
		for (size_t i = 0; i < count; i++)
			o += (size_t)snprintf(body + o, cap - o, "%s\"c%03zu\":"
			    "\"%zu\"", i ? "," : "", count - 1 - i, i);
		o += (size_t)snprintf(body + o, cap - o, "},\"alerts\":["
		    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"");
		for (size_t i = 1; i < count; i++)
			o += (size_t)snprintf(body + o, cap - o, ",\"l%03zu\":"
			    "\"%zu\"", count - i, i);
		o += (size_t)snprintf(body + o, cap - o, "},\"annotations\":{");
		for (size_t i = 0; i < count; i++)
			o += (size_t)snprintf(body + o, cap - o, "%s\"a%03zu\":"
			    "\"%zu\"", i ? "," : "", i, i);
		o += (size_t)snprintf(body + o, cap - o, "}}]}");
		rv = parse_n(body, o, count > 64 ? &lim : NULL, &n, err,
		    sizeof(err));
		CHECK_INT(rv, 0);
		if (rv != 0) {
			printf("# %zu: %s\n", count, err);
			continue;
		}
		CHECK(n->common_labels.n == count);
		CHECK(n->alerts[0].labels.n == count);
		CHECK(n->alerts[0].annotations.n == count);
		for (size_t i = 0; i + 1 < count; i++) {
			char k[16], v[16];

			snprintf(k, sizeof(k), "c%03zu", i);
			snprintf(v, sizeof(v), "%zu", count - 1 - i);
			CHECK_STR(n->common_labels.v[i].key, k);
			CHECK_STR(n->common_labels.v[i].val, v);
			snprintf(k, sizeof(k), "l%03zu", i + 1);
			snprintf(v, sizeof(v), "%zu", count - 1 - i);
			CHECK_STR(n->alerts[0].labels.v[i + 1].key, k);
			CHECK_STR(n->alerts[0].labels.v[i + 1].val, v);
			snprintf(k, sizeof(k), "a%03zu", i);
			snprintf(v, sizeof(v), "%zu", i);
			CHECK_STR(n->alerts[0].annotations.v[i].key, k);
			CHECK_STR(n->alerts[0].annotations.v[i].val, v);
		}
		coord_notification_free(n);
		n = NULL;
	}
	free(body);
}

// Notifications with 1..9 alerts and top-level label sets of sizes around
// what fits in the notification's own block (16 entries for the three
// sets together, 4 alerts): every alert and entry read back in order,
// freed without a leak or a double free (the ASan build checks that).
static void
test_notification_sizes(void)
{
	static const size_t sets[][3] = {
		{ 0, 0, 0 }, { 1, 1, 1 }, { 16, 0, 0 }, { 6, 10, 0 },
		{ 6, 10, 1 }, { 10, 10, 10 }, { 17, 0, 2 }, { 0, 0, 16 },
		{ 5, 5, 7 },
	};
	static const char *const names[3] = {
		"groupLabels", "commonLabels", "commonAnnotations",
	};
	size_t cap = 32 * 1024;
	char *body = malloc(cap), err[256];
	int bad = 0;

	CHECK(body != NULL);
	if (body == NULL)
		return;
	for (size_t t = 0; t < sizeof(sets) / sizeof(sets[0]); t++) {
		for (size_t na = 1; na <= 9; na++) {
			struct coord_notification *n = NULL;
			const struct coord_kvs *got[3];
			size_t o = (size_t)snprintf(body, cap, "{\"version\":\"4\"");

			for (int k = 0; k < 3; k++) {
				o += (size_t)snprintf(body + o, cap - o, ",\"%s\":{",
				    names[k]);
				for (size_t i = 0; i < sets[t][k]; i++)
					o += (size_t)snprintf(body + o, cap - o,
					    "%s\"k%02zu\":\"%d-%zu\"", i ? "," : "",
					    i, k, i);
				o += (size_t)snprintf(body + o, cap - o, "}");
			}
			o += (size_t)snprintf(body + o, cap - o, ",\"alerts\":[");
			for (size_t a = 0; a < na; a++)
				o += (size_t)snprintf(body + o, cap - o, "%s{\"status\":"
				    "\"firing\",\"labels\":{\"alertname\":\"A%zu\"}}",
				    a ? "," : "", a);
			o += (size_t)snprintf(body + o, cap - o, "]}");
			if (parse_n(body, o, NULL, &n, err, sizeof(err)) != 0) {
				if (bad++ < 5)
					printf("# %zu/%zu: %s\n", t, na, err);
				continue;
			}
			got[0] = &n->group_labels;
			got[1] = &n->common_labels;
			got[2] = &n->common_annotations;
			for (int k = 0; k < 3; k++) {
				if (got[k]->n != sets[t][k]) {
					bad++;
					continue;
				}
				for (size_t i = 0; i < got[k]->n; i++) {
					char key[16], val[16];

					snprintf(key, sizeof(key), "k%02zu", i);
					snprintf(val, sizeof(val), "%d-%zu", k, i);
					if (strcmp(got[k]->v[i].key, key) != 0 ||
					    strcmp(got[k]->v[i].val, val) != 0)
						bad++;
				}
			}
			if (n->n_alerts != na)
				bad++;
			for (size_t a = 0; a < n->n_alerts; a++) {
				char name[16];

				snprintf(name, sizeof(name), "A%zu", a);
				if (strcmp(coord_kvs_get(&n->alerts[a].labels,
				    "alertname"), name) != 0)
					bad++;
			}
			coord_notification_free(n);
		}
	}
	CHECK_INT(bad, 0);
	free(body);
}

// Per-alert status spellings, and the alertname label wherever it sorts
// (first, after names that sort before it, absent beside near names).
static void
test_status_and_alertname(void)
{
	static const struct {
		const char *status;
		int rv;
		bool firing;
	} st[] = {
		{ "firing", 0, true }, { "resolved", 0, false },
		{ "fir\\u0069ng", 0, true }, { "\\u0072esolved", 0, false },
		{ "Firing", -EINVAL, false }, { "firin", -EINVAL, false },
		{ "firing ", -EINVAL, false }, { "resolvedx", -EINVAL, false },
		{ "", -EINVAL, false }, { "resolve", -EINVAL, false },
	};
	static const struct {
		const char *labels;
		const char *want; // NULL: refused
	} an[] = {
		{ "\"alertname\":\"A\"", "A" },
		{ "\"_x\":\"1\",\"alertname\":\"B\"", "B" },
		{ "\"Zed\":\"1\",\"a\":\"2\",\"alertname\":\"C\",\"b\":\"3\"", "C" },
		{ "\"alertnam\":\"D\",\"alertnamf\":\"E\"", NULL },
		{ "\"alertname_\":\"F\"", NULL },
		{ "\"alertname\":\"\"", NULL },
	};
	char body[512], err[256];

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		struct coord_notification *n = NULL;
		int rv;

		snprintf(body, sizeof(body), HEAD "{\"status\":\"%s\",\"labels\":"
		    "{\"alertname\":\"A\"}}" TAIL, st[i].status);
		rv = parse_s(body, &n, err, sizeof(err));
		CHECK_INT(rv, st[i].rv);
		if (rv == 0)
			CHECK(n->alerts[0].firing == st[i].firing);
		else
			CHECK_HAS(err, "alerts[0].status: must be \"firing\" or "
			    "\"resolved\"");
		coord_notification_free(n);
	}
	for (size_t i = 0; i < sizeof(an) / sizeof(an[0]); i++) {
		struct coord_notification *n = NULL;
		int rv;

		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\":{%s}}" TAIL, an[i].labels);
		rv = parse_s(body, &n, err, sizeof(err));
		if (an[i].want != NULL) {
			CHECK_INT(rv, 0);
			if (rv == 0)
				CHECK_STR(coord_kvs_get(&n->alerts[0].labels,
				    "alertname"), an[i].want);
		} else {
			CHECK_INT(rv, -EINVAL);
			CHECK_HAS(err, "alerts[0].labels: no alertname label");
		}
		coord_notification_free(n);
	}
}

// Label sets sorted in strcmp's (unsigned) order whatever prefix their
// names share, and equal names found however short.
static void
test_kvs_order(void)
{
	static const char *const want[] = {
		"a", "aa", "aab", "ab", "a\xc3\xa9", "b", "\xc3\xa9", "\xc3\xa9\xc3\xa9",
	};
	static const char *const dups[] = {
		"{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}",
		"{\"ab\":\"1\",\"ab\":\"2\"}",
		"{\"abc\":\"1\",\"abd\":\"2\",\"abc\":\"3\"}",
		"{\"\\u00e9\":\"1\",\"\xc3\xa9\":\"2\"}",
	};
	struct coord_notification *n = parse_ok(HEAD "{\"status\":\"firing\","
	    "\"labels\":{\"alertname\":\"A\"},\"annotations\":{"
	    "\"\xc3\xa9\xc3\xa9\":\"8\",\"b\":\"6\",\"a\":\"1\",\"ab\":\"4\","
	    "\"aa\":\"2\",\"a\\u00e9\":\"5\",\"\\u00e9\":\"7\",\"aab\":\"3\"}}"
	    TAIL);
	char body[512], err[256];

	CHECK(n != NULL);
	if (n != NULL) {
		const struct coord_kvs *a = &n->alerts[0].annotations;

		CHECK(a->n == 8);
		for (size_t i = 0; i < a->n && i < 8; i++) {
			char v[4];

			snprintf(v, sizeof(v), "%zu", i + 1);
			CHECK_STR(a->v[i].key, want[i]);
			CHECK_STR(a->v[i].val, v);
		}
		coord_notification_free(n);
	}
	for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		n = NULL;
		snprintf(body, sizeof(body), HEAD "{\"status\":\"firing\","
		    "\"labels\":{\"alertname\":\"A\"},\"annotations\":%s}" TAIL,
		    dups[i]);
		CHECK_INT(parse_s(body, &n, err, sizeof(err)), -EINVAL);
		CHECK_HAS(err, "alerts[0].annotations: duplicate key");
		coord_notification_free(n);
	}
}

// coord_webhook_parse_memo with a set it holds, under limits that refuse
// it, at a depth past the limit, and a set met as annotations read as
// labels (valid as the one, not as the other): each as
// coord_webhook_parse has it (parse_n compares), refused.
static void
test_set_memo_limits(void)
{
	static const char body[] = HEAD "{\"status\":\"firing\",\"labels\":"
	    "{\"alertname\":\"A\",\"instance\":\"i-1\",\"job\":\"jj\","
	    "\"pod\":\"p\",\"team\":\"t\"},\"annotations\":{\"a-b\":\"x\"}}"
	    TAIL;
	static const char as_labels[] = HEAD "{\"status\":\"firing\","
	    "\"labels\":{\"a-b\":\"x\"},\"annotations\":{\"a-b\":\"x\"}}" TAIL;
	struct coord_webhook_limits lim = coord_webhook_default_limits;
	struct coord_notification *n = NULL;
	char err[256];

	for (int k = 0; k < 2; k++) { // the memo holds the sets after one
		CHECK_INT(parse_n(body, strlen(body), NULL, &n, err,
		    sizeof(err)), 0);
		coord_notification_free(n);
		n = NULL;
	}
	lim.max_labels = 4;
	CHECK_INT(parse_n(body, strlen(body), &lim, &n, err, sizeof(err)),
	    -E2BIG);
	CHECK_HAS(err, "limits.max_labels");
	lim = coord_webhook_default_limits;
	lim.max_name_len = 7;
	CHECK_INT(parse_n(body, strlen(body), &lim, &n, err, sizeof(err)),
	    -E2BIG);
	CHECK_HAS(err, "limits.max_name_len");
	lim = coord_webhook_default_limits;
	lim.max_value_len = 2;
	CHECK_INT(parse_n(body, strlen(body), &lim, &n, err, sizeof(err)),
	    -E2BIG);
	CHECK_HAS(err, "limits.max_value_len");
	lim = coord_webhook_default_limits;
	lim.max_depth = 3; // the labels object is the 4th level
	CHECK_INT(parse_n(body, strlen(body), &lim, &n, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "max_json_depth");
	CHECK_INT(parse_n(as_labels, strlen(as_labels), NULL, &n, err,
	    sizeof(err)), -EINVAL);
	CHECK_HAS(err, "invalid label name \"a-b\"");
	CHECK(n == NULL);
}

// Runs last: every body of every test above went through the memo too
// (parse_n) and came out the same.
static void
test_set_memo_all(void)
{
	CHECK(memo != NULL);
	CHECK_INT(memo_differs, 0);
	coord_setmemo_free(memo);
	memo = NULL;
}

static const struct tt_case cases[] = {
	{ "real AM 0.25 body: every field", test_real_body_all_fields },
	{ "real AM 0.25 body with truncatedAlerts", test_real_body_truncated },
	{ "C01 HA copies share an identity", test_c01_ha_duplicates_identity },
	{ "C03 timestamps match the case file",
	  test_c03_timestamps_from_case_file },
	{ "C05 per-alert status beats top-level", test_c05_per_alert_status },
	{ "C07 storm bodies give 48 distinct alerts",
	  test_c07_storm_48_alerts },
	{ "malformed bodies rejected with a reason", test_malformed_table },
	{ "valid variants accepted", test_valid_variants },
	{ "unicode and escapes decode exactly", test_unicode_values_exact },
	{ "limits on alerts, labels, values, body", test_limits },
	{ "limits on names and annotations",
	  test_limits_names_and_annotations },
	{ "1000 alerts x 64 labels parse", test_full_size_notification },
	{ "identity ignores order and replica labels", test_identity },
	{ "label sets in strcmp order, duplicates of any length",
	  test_kvs_order },
	{ "status spellings, alertname wherever it sorts",
	  test_status_and_alertname },
	{ "notifications of 1..9 alerts and sets of 0..17",
	  test_notification_sizes },
	{ "identity: FNV-1a of every length, ignore lists",
	  test_identity_values },
	{ "identity memo: the same values, ignore lists changing",
	  test_identity_memo },
	{ "zero times in every form read as none", test_zero_times },
	{ "annotation names with control bytes refused",
	  test_annotation_names },
	{ "label sets larger than the reader's scratch",
	  test_large_label_sets },
	{ "label lookup in a large set", test_kvs_get_many },
	{ "alert dup is deep", test_alert_dup },
	{ "label sets kept as sent when the journal's text",
	  test_set_json },
	{ "label sets kept as sent, random", test_set_json_random },
	{ "alert clear frees what the alert holds", test_alert_clear },
	{ "label name and UTF-8 helpers", test_helpers },
	{ "random mutations never crash or leak", test_random_mutations },
	{ "reader: strings decode exactly", test_reader_string_decoding },
	{ "reader: numbers in every JSON form", test_reader_numbers },
	{ "reader: malformed text and report order", test_reader_malformed },
	{ "reader: valid text in every form", test_reader_valid },
	{ "reader: special bytes at every position",
	  test_reader_string_positions },
	{ "reader: the body's last string, every position",
	  test_reader_string_at_body_end },
	{ "reader: a body cut inside its last string",
	  test_reader_string_cut },
	{ "reader: label names, every length and position",
	  test_reader_label_names },
	{ "reader: nesting is bounded", test_reader_depth },
	{ "reader: limits.max_json_depth", test_reader_configured_depth },
	{ "reader: alerts own their memory", test_reader_alert_ownership },
	{ "set memo: limits, depth and kind still refuse",
	  test_set_memo_limits },
	{ "set memo: every body above parsed the same through it",
	  test_set_memo_all },
	{ NULL, NULL },
};

TT_MAIN(cases)
