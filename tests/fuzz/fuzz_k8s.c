// SPDX-License-Identifier: MIT
// fuzz_k8s: libFuzzer target for what reflex reads from Kubernetes API
// answers without a server: the Status parser of error replies
// (cm_k8s_status_parse, cm_k8s_status_errno) and the pure helpers that
// read API objects (paths, integers, quantities, label selectors, pod
// readiness, owner references).
//
// Input: an optional leading control byte picks the HTTP status; the
// body follows; bytes after a 0xff byte, if any, are the Retry-After
// header. Every text the Status parser keeps must be one line (control
// characters replaced) and NUL-terminated within its array; the errno
// must be one of cm_k8s_do's; a selector rendered as a query string must
// fit the buffer.
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cm_k8s.h"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	return 0;
}

#define FIELD_OK(f) \
	FUZZ_CHECK(memchr((f), '\0', sizeof(f)) != NULL && \
	    fuzz_one_line(f), #f " not one terminated line")

static void
check_status(const struct cm_k8s_status *st, long code)
{
	int e = cm_k8s_status_errno(st);

	FUZZ_CHECK(st->code == code, "code changed");
	FIELD_OK(st->reason);
	FIELD_OK(st->message);
	FIELD_OK(st->kind);
	FIELD_OK(st->name);
	FUZZ_CHECK(st->n_causes <= CM_K8S_MAX_CAUSES, "%zu causes",
	    st->n_causes);
	for (size_t i = 0; i < st->n_causes; i++) {
		FIELD_OK(st->causes[i].type);
		FIELD_OK(st->causes[i].message);
		FIELD_OK(st->causes[i].field);
	}
	FUZZ_CHECK(st->retry_after_s >= -1, "retry_after %lld",
	    (long long)st->retry_after_s);
	FUZZ_CHECK(e == 0 || e == -EINVAL || e == -EACCES || e == -EPERM ||
	    e == -ENOENT || e == -EOPNOTSUPP || e == -EEXIST || e == -ESTALE ||
	    e == -EAGAIN || e == -EIO, "errno %d", e);
	(void)cm_k8s_status_has_cause(st, "DisruptionBudget");
}

static void
read_object(const cJSON *o)
{
	const cJSON *sel, *labels, *alloc, *it;
	char buf[512];
	int64_t v;
	int rv;

	(void)cm_k8s_str(o, "metadata", "name", NULL);
	(void)cm_k8s_str(o, "metadata", "resourceVersion", NULL);
	(void)cm_k8s_int(o, &v, "spec", "replicas", NULL);
	(void)cm_k8s_int(o, &v, "metadata", "generation", NULL);
	(void)cm_k8s_bool(o, false, "spec", "paused", NULL);
	(void)cm_k8s_pod_ready(o);
	(void)cm_k8s_terminating(o);
	(void)cm_k8s_controller_ref(o);
	alloc = cm_k8s_at(o, "status", "allocatable", NULL);
	cJSON_ArrayForEach(it, alloc) {
		(void)cm_k8s_quantity(it, -3, &v);
		(void)cm_k8s_quantity(it, 0, &v);
	}
	sel = cm_k8s_at(o, "spec", "selector", NULL);
	labels = cm_k8s_at(o, "metadata", "labels", NULL);
	(void)cm_k8s_selector_matches(sel, labels);
	(void)cm_k8s_selector_matches(o, labels);
	memset(buf, 'x', sizeof(buf));
	rv = cm_k8s_selector_string(sel != NULL ? sel : o, buf, sizeof(buf));
	FUZZ_CHECK(rv == 0 || rv == -EINVAL || rv == -ENAMETOOLONG,
	    "selector_string %d", rv);
	if (rv == 0)
		FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) != NULL,
		    "selector not terminated");
	// Lists: the same on each item.
	cJSON_ArrayForEach(it, cm_k8s_at(o, "items", NULL)) {
		(void)cm_k8s_str(it, "metadata", "name", NULL);
		(void)cm_k8s_pod_ready(it);
		(void)cm_k8s_controller_ref(it);
		(void)cm_k8s_selector_matches(sel,
		    cm_k8s_at(it, "metadata", "labels", NULL));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long codes[] = { 409, 404, 422, 429, 500, 403, 401, 0,
		200, 201, 405, 415, 400, 503, 302, 999 };
	struct cm_k8s_status st;
	const uint8_t *ff;
	char *body, *hdr = NULL;
	size_t blen = size;
	long code = 409;
	cJSON *doc;

	if (size >= 1 && data[0] < 0x20) {
		code = codes[data[0] % (sizeof(codes) / sizeof(codes[0]))];
		data++;
		size--;
		blen = size;
	}
	ff = memchr(data, 0xff, size);
	if (ff != NULL) {
		blen = (size_t)(ff - data);
		hdr = fuzz_strndup(ff + 1, size - blen - 1);
	}
	// Exact-size copy: curl bodies are not NUL-terminated.
	body = malloc(blen ? blen : 1);
	if (body == NULL)
		abort();
	if (blen > 0)
		memcpy(body, data, blen);
	cm_k8s_status_parse(&st, code, body, blen, hdr);
	check_status(&st, code);
	cm_k8s_status_parse(&st, code, NULL, 0, hdr);
	check_status(&st, code);

	doc = cJSON_ParseWithLength(body, blen);
	if (doc != NULL)
		read_object(doc);
	cJSON_Delete(doc);
	free(hdr);
	free(body);
	return 0;
}
