// SPDX-License-Identifier: MIT
// Tests for cm_conf: typed binding, defaults, and errors with file:line.
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cm_conf.h"
#include "cm_time.h"
#include "tt.h"

struct probe {
	int line;
	char *path;
	int64_t period_ms;
};

struct svc {
	int line;
	char *name;
	int64_t instances;
	struct cm_strlist command;
	struct cm_strmap env;
	struct probe probe;
	int kind;
};

struct top {
	char *node;
	bool verbose;
	int64_t max_body;
	struct cm_list services;
};

static const char *const kinds[] = { "process", "kubernetes", NULL };

static const struct cm_conf_field probe_fields[] = {
	{ .key = "path", .type = CM_CONF_STR, .off = offsetof(struct probe, path),
	  .def = "/healthz" },
	{ .key = "period", .type = CM_CONF_DURATION,
	  .off = offsetof(struct probe, period_ms), .def = "2s",
	  .min = 100, .max = 3600000 },
	{ 0 },
};

static const struct cm_conf_field svc_fields[] = {
	{ .key = "name", .type = CM_CONF_STR, .off = offsetof(struct svc, name),
	  .required = true },
	{ .key = "instances", .type = CM_CONF_INT,
	  .off = offsetof(struct svc, instances), .def = "1", .min = 1, .max = 64 },
	{ .key = "command", .type = CM_CONF_STRLIST,
	  .off = offsetof(struct svc, command), .required = true },
	{ .key = "env", .type = CM_CONF_STRMAP, .off = offsetof(struct svc, env) },
	{ .key = "probe", .type = CM_CONF_STRUCT, .off = offsetof(struct svc, probe),
	  .sub = probe_fields, .line_off = CM_CONF_LINE(struct probe, line) },
	{ .key = "kind", .type = CM_CONF_ENUM, .off = offsetof(struct svc, kind),
	  .choices = kinds, .def = "process" },
	{ 0 },
};

static const struct cm_conf_field top_fields[] = {
	{ .key = "node", .type = CM_CONF_STR, .off = offsetof(struct top, node),
	  .required = true },
	{ .key = "verbose", .type = CM_CONF_BOOL, .off = offsetof(struct top, verbose),
	  .def = "false" },
	{ .key = "max_body", .type = CM_CONF_SIZE,
	  .off = offsetof(struct top, max_body), .def = "1MiB" },
	{ .key = "services", .type = CM_CONF_LIST,
	  .off = offsetof(struct top, services), .sub = svc_fields,
	  .elem_size = sizeof(struct svc), .line_off = CM_CONF_LINE(struct svc, line) },
	{ 0 },
};

static int
load(struct top *t, const char *yaml, char *err, size_t n)
{
	memset(t, 0, sizeof(*t));
	err[0] = '\0';
	return cm_conf_load_mem(t, top_fields, "t.yaml", yaml, strlen(yaml), err, n);
}

static void
test_full_document(void)
{
	struct top t;
	char err[512];
	struct svc *s;
	int rv;

	rv = load(&t,
	    "node: node-a\n"
	    "verbose: true\n"
	    "services:\n"
	    "  - name: web\n"
	    "    instances: 3\n"
	    "    command: [/bin/web, --port, '{port}']\n"
	    "    env: { A: '1', B: two }\n"
	    "    probe: { period: 500ms }\n"
	    "  - name: db\n"
	    "    command: [/bin/db]\n"
	    "    kind: kubernetes\n",
	    err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_STR(t.node, "node-a");
	CHECK(t.verbose);
	CHECK_INT(t.max_body, 1024 * 1024);
	CHECK_INT(t.services.n, 2);
	s = t.services.v;
	CHECK_STR(s[0].name, "web");
	CHECK_INT(s[0].line, 4);
	CHECK_INT(s[0].instances, 3);
	CHECK_INT(s[0].command.n, 3);
	CHECK_STR(s[0].command.v[2], "{port}");
	CHECK_STR(cm_strmap_get(&s[0].env, "B"), "two");
	CHECK(cm_strmap_get(&s[0].env, "C") == NULL);
	CHECK_INT(s[0].probe.period_ms, 500);
	CHECK_STR(s[0].probe.path, "/healthz");
	CHECK_INT(s[0].probe.line, 8);
	CHECK_INT(s[0].kind, 0);
	CHECK_INT(s[1].instances, 1);
	CHECK_INT(s[1].probe.period_ms, 2000);
	CHECK_INT(s[1].kind, 1);
	cm_conf_free(&t, top_fields);
	CHECK(t.node == NULL);
	CHECK(t.services.v == NULL);
}

static void
check_error(const char *yaml, const char *want)
{
	struct top t;
	char err[512];
	int rv;

	rv = load(&t, yaml, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, want);
	CHECK(t.node == NULL && t.services.v == NULL);
}

static void
test_errors_name_file_line_key(void)
{
	check_error("node: a\nbogus: 1\n", "t.yaml:2: bogus: unknown key");
	check_error("verbose: true\n", "t.yaml:1: node: required key is missing");
	check_error("node: a\nverbose: yes please\n",
	    "t.yaml:2: verbose: expected true or false");
	check_error("node: a\nnode: b\n", "t.yaml:2: node: duplicate key");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    instances: 65\n",
	    "t.yaml:5: services[0].instances: 65 is out of range [1, 64]");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    instances: three\n",
	    "services[0].instances: expected an integer");
	check_error("node: a\nservices:\n  - name: x\n",
	    "t.yaml:3: services[0].command: required key is missing");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    kind: docker\n",
	    "services[0].kind: unknown value \"docker\" (expected one of: "
	    "process, kubernetes)");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    probe: { period: 10 parsecs }\n",
	    "t.yaml:5: services[0].probe.period: expected a duration");
	check_error("node: a\nservices: {a: 1}\n",
	    "t.yaml:2: services: expected a list of maps, got a map");
	check_error("node: [a, b]\n", "t.yaml:1: node: expected a string, got a list");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    instances: [1]\n",
	    "services[0].instances: expected an integer, got a list");
	check_error("node: a\n  bad indent: [\n", "t.yaml:");
	check_error("node: a\nservices:\n  - name: x\n    command: [a]\n"
	    "    env: { A: 1, A: 2 }\n", "services[0].env.A: duplicate key");
	check_error("", "empty document");
	check_error("- a\n- b\n", "expected a map");
}

static void
test_alias_bomb_is_bounded(void)
{
	// Each level references the previous one ten times: 10^9 leaves if
	// expanded. The loader must stop at its visit budget.
	char yaml[4096];
	size_t o = 0;

	o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
	    "node: a\nservices:\n  - name: x\n    command: &l0 [a,a,a,a,a,a,a,a,a,a]\n");
	for (int i = 1; i < 9; i++)
		o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
		    "  - name: y%d\n    command: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,"
		    "*l%d,*l%d,*l%d,*l%d,*l%d]\n", i, i, i - 1, i - 1, i - 1,
		    i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	check_error(yaml, "services[1].command[0]: expected a string");
}

// Text of `n` nested flow lists, "[[...]]", after `head`. Free it.
static char *
nested(const char *head, size_t n, size_t *ret_len)
{
	size_t h = strlen(head);
	char *s = malloc(h + 2 * n + 1);

	if (s == NULL)
		abort();
	memcpy(s, head, h);
	memset(s + h, '[', n);
	memset(s + h + n, ']', n);
	s[h + 2 * n] = '\0';
	*ret_len = h + 2 * n;
	return s;
}

static void
test_yaml_depth_check(void)
{
	const char *block = "a:\n  b:\n    c: [x, {d: e}]\n";
	const char *two_docs = "a: 1\n---\n[[[[]]]]\n";
	size_t len, line = 0;
	char *s;

	// The root map counts as a level: 1 + 31 lists is 32.
	s = nested("a: ", 31, &len);
	CHECK_INT(cm_yaml_depth_check(s, len, 32, &line), 0);
	free(s);
	s = nested("a: ", 32, &len);
	CHECK_INT(cm_yaml_depth_check(s, len, 32, &line), -EINVAL);
	CHECK_INT(line, 1);
	free(s);
	// Block and flow collections count alike (five levels here); the
	// line is that of the first collection past the limit.
	CHECK_INT(cm_yaml_depth_check(block, strlen(block), 3, &line),
	    -EINVAL);
	CHECK_INT(line, 3);
	CHECK_INT(cm_yaml_depth_check(block, strlen(block), 4, &line),
	    -EINVAL);
	CHECK_INT(cm_yaml_depth_check(block, strlen(block), 5, &line), 0);
	// Only the first document: yaml_parser_load reads no further.
	CHECK_INT(cm_yaml_depth_check(two_docs, strlen(two_docs), 2, &line),
	    0);
	// Syntax errors are left to the load.
	CHECK_INT(cm_yaml_depth_check("a: [\n", 5, 32, &line), 0);
	CHECK_INT(cm_yaml_depth_check("", 0, 32, &line), 0);
}

static void
test_deep_nesting_fails_fast(void)
{
	struct top t;
	char err[512];
	size_t len;
	int64_t t0;
	char *s;

	// 500,000 levels in under 1 MiB: libyaml's loader alone spends more
	// than ten minutes on this.
	s = nested("node: a\nservices: ", 500000, &len);
	CHECK(len <= CM_CONF_MAX_FILE);
	memset(&t, 0, sizeof(t));
	t0 = cm_mono_ms();
	CHECK_INT(cm_conf_load_mem(&t, top_fields, "t.yaml", s, len, err,
	    sizeof(err)), -EINVAL);
	CHECK(cm_mono_ms() - t0 < 2000);
	CHECK_STR(err, "t.yaml:2: (top): YAML nests deeper than 32 levels");
	CHECK(t.node == NULL && t.services.v == NULL);
	free(s);
}

static void
test_normal_depth_still_loads(void)
{
	struct top t;
	char err[512];

	CHECK_INT(load(&t, "node: a\nservices:\n  - name: x\n"
	    "    command: [a, b]\n    env: { A: \"1\" }\n"
	    "    probe: { path: /h, period: 1s }\n", err, sizeof(err)), 0);
	CHECK_STR(t.node, "a");
	CHECK_INT(t.services.n, 1);
	cm_conf_free(&t, top_fields);
}

static void
test_duration_and_size_parsers(void)
{
	int64_t v;

	CHECK_INT(cm_duration_parse("1h30m", &v), 0);
	CHECK_INT(v, 5400000);
	CHECK_INT(cm_duration_parse("250ms", &v), 0);
	CHECK_INT(v, 250);
	CHECK_INT(cm_duration_parse("45", &v), 0);
	CHECK_INT(v, 45000);
	CHECK_INT(cm_duration_parse("2d", &v), 0);
	CHECK_INT(v, 172800000);
	CHECK_INT(cm_duration_parse("", &v), -EINVAL);
	CHECK_INT(cm_duration_parse("-5s", &v), -EINVAL);
	CHECK_INT(cm_duration_parse("5 s", &v), -EINVAL);
	CHECK_INT(cm_duration_parse("5sm", &v), -EINVAL);
	CHECK_INT(cm_duration_parse("99999999999h", &v), -ERANGE);
	CHECK_INT(cm_size_parse("64KiB", &v), 0);
	CHECK_INT(v, 65536);
	CHECK_INT(cm_size_parse("2MB", &v), 0);
	CHECK_INT(v, 2000000);
	CHECK_INT(cm_size_parse("1TiB", &v), -EINVAL);
	CHECK_INT(cm_size_parse("-1", &v), -EINVAL);
	CHECK_INT(cm_size_parse("99999999999999GiB", &v), -ERANGE);
}

static void
test_null_means_default(void)
{
	struct top t;
	char err[512];

	CHECK_INT(load(&t, "node: a\nverbose: ~\nmax_body:\n", err, sizeof(err)), 0);
	CHECK(!t.verbose);
	CHECK_INT(t.max_body, 1024 * 1024);
	cm_conf_free(&t, top_fields);
	check_error("node: null\n", "t.yaml:1: node: required key is missing");
}

static void
test_file_errors(void)
{
	struct top t;
	char err[512];

	memset(&t, 0, sizeof(t));
	CHECK_INT(cm_conf_load(&t, top_fields, "/nonexistent/x.yaml", err,
	    sizeof(err)), -ENOENT);
	CHECK_HAS(err, "/nonexistent/x.yaml: cannot open");
	CHECK(cm_conf_load(&t, top_fields, "/", err, sizeof(err)) < 0);
	CHECK_HAS(err, "not a regular file");
}

struct outer {
	char *name;
	struct probe probe;
};

static const struct cm_conf_field outer_fields[] = {
	{ .key = "name", .type = CM_CONF_STR, .off = offsetof(struct outer, name),
	  .required = true },
	{ .key = "probe", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct outer, probe), .sub = probe_fields,
	  .line_off = CM_CONF_LINE(struct probe, line) },
	{ 0 },
};

// A nested struct's strings (defaults included) are zeroed when freed, so
// freeing after a failed load, or twice, is harmless (it was a double
// free: the failed load freed them and left the pointers behind).
static void
test_free_is_idempotent(void)
{
	static const char *docs[] = {
		"probe: { period: 1ms }\n",	   // out of range
		"probe: { path: /x }\n",	   // name missing
		"name: a\nprobe: { path: /x }\n", // loads
	};
	struct outer o;
	char err[256];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		int rv;

		memset(&o, 0, sizeof(o));
		rv = cm_conf_load_mem(&o, outer_fields, "o.yaml", docs[i],
		    strlen(docs[i]), err, sizeof(err));
		CHECK_INT(rv, i < 2 ? -EINVAL : 0);
		cm_conf_free(&o, outer_fields);
		CHECK(o.name == NULL && o.probe.path == NULL);
		cm_conf_free(&o, outer_fields);
	}
}

// Text of exactly n bytes: "node: a\n" and a comment.
static char *
sized_doc(size_t n)
{
	char *s = malloc(n + 1);

	memset(s, 'x', n);
	memcpy(s, "node: a\n#", 9);
	s[n - 1] = '\n';
	s[n] = '\0';
	return s;
}

// The file limit: --config-max-size / REFLEX_CONFIG_MAX_SIZE.
static void
test_max_file_configurable(void)
{
	struct top t;
	char err[512], *s;
	char path[] = "/tmp/reflex-test-conf-XXXXXX";
	int fd;

	CHECK_INT(cm_conf_max_file(), CM_CONF_MAX_FILE);
	CHECK_INT(cm_conf_set_max_file("4096", err, sizeof(err)), 0);
	CHECK_INT(cm_conf_max_file(), 4096);
	s = sized_doc(4096);
	CHECK_INT(cm_conf_load_mem(&t, top_fields, "t.yaml", s, 4096, err,
	    sizeof(err)), 0);
	CHECK_STR(t.node, "a");
	cm_conf_free(&t, top_fields);
	free(s);
	s = sized_doc(4097);
	memset(&t, 0, sizeof(t));
	CHECK_INT(cm_conf_load_mem(&t, top_fields, "t.yaml", s, 4097, err,
	    sizeof(err)), -EINVAL);
	CHECK_HAS(err, "t.yaml: (top): file is larger than 4096 bytes");
	CHECK_HAS(err, "--config-max-size");
	// From a file: the size is checked before reading.
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, s, 4097) == 4097);
	close(fd);
	memset(&t, 0, sizeof(t));
	CHECK_INT(cm_conf_load(&t, top_fields, path, err, sizeof(err)),
	    -EINVAL);
	CHECK_HAS(err, "file of 4097 bytes is larger than 4096 bytes");
	CHECK_HAS(err, "--config-max-size");
	CHECK(truncate(path, 4096) == 0);
	CHECK_INT(cm_conf_load(&t, top_fields, path, err, sizeof(err)), 0);
	cm_conf_free(&t, top_fields);
	unlink(path);
	free(s);

	// Bounds and bad values leave the limit as it was.
	CHECK_INT(cm_conf_set_max_file("4095", err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "--config-max-size: 4095 bytes is outside "
	    "4096..16777216");
	CHECK_INT(cm_conf_set_max_file("17MiB", err, sizeof(err)), -EINVAL);
	CHECK_INT(cm_conf_set_max_file("lots", err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "expected a size");
	CHECK_INT(cm_conf_max_file(), 4096);

	// No option: the environment, when set.
	unsetenv(CM_CONF_MAX_FILE_ENV);
	CHECK_INT(cm_conf_set_max_file(NULL, err, sizeof(err)), 0);
	CHECK_INT(cm_conf_max_file(), 4096);
	setenv(CM_CONF_MAX_FILE_ENV, "8KiB", 1);
	CHECK_INT(cm_conf_set_max_file(NULL, err, sizeof(err)), 0);
	CHECK_INT(cm_conf_max_file(), 8192);
	setenv(CM_CONF_MAX_FILE_ENV, "1", 1);
	CHECK_INT(cm_conf_set_max_file(NULL, err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "REFLEX_CONFIG_MAX_SIZE: 1 bytes is outside");
	unsetenv(CM_CONF_MAX_FILE_ENV);
	CHECK_INT(cm_conf_set_max_file("1MiB", err, sizeof(err)), 0);
	CHECK_INT(cm_conf_max_file(), CM_CONF_MAX_FILE);
}

// A service whose env has `n` entries "k<i>: v" (the last one repeating
// k<dup_of> when dup_of >= 0) or, with `list`, whose command has `n`
// items. Free it.
static char *
big_doc(size_t n, long dup_of, bool list)
{
	size_t cap = 128 + n * 24, o = 0;
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	o += (size_t)snprintf(s + o, cap - o, "node: a\nservices:\n"
	    "  - name: x\n%s", list ? "    command:\n" :
	    "    command: [c]\n    env:\n");
	for (size_t i = 0; i < n; i++) {
		if (list)
			o += (size_t)snprintf(s + o, cap - o, "      - a\n");
		else
			o += (size_t)snprintf(s + o, cap - o, "      k%zu: v\n",
			    i + 1 == n && dup_of >= 0 ? (size_t)dup_of : i);
	}
	return s;
}

static void
test_big_maps_and_lists_are_bounded(void)
{
	struct top t;
	char err[512];
	char *s;
	int rv;

	CHECK_INT(cm_conf_set_max_file("16MiB", err, sizeof(err)), 0);
	// 60,000 map entries: refused at the node budget (a search per key
	// for duplicates took seconds; ten times more took half an hour).
	s = big_doc(60000, -1, false);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "services[0].env.k");
	CHECK_HAS(err, "document too deep or too large");
	free(s);
	// A list of 150,000 strings: refused the same way.
	s = big_doc(150000, -1, true);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "services[0].command[");
	CHECK_HAS(err, "document too deep or too large");
	free(s);
	// Within the budget a duplicate is still found, the first one in
	// file order named with its line: k7 again on line 40,005.
	s = big_doc(40000, 7, false);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "t.yaml:40005: services[0].env.k7: duplicate key");
	free(s);
	s = big_doc(40000, -1, false);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv == 0) {
		struct svc *sv = t.services.v;

		CHECK_INT(sv[0].env.n, 40000);
		CHECK_STR(cm_strmap_get(&sv[0].env, "k39999"), "v");
		cm_conf_free(&t, top_fields);
	}
	free(s);
	CHECK_INT(cm_conf_set_max_file("1MiB", err, sizeof(err)), 0);
}

// A service whose command lists `n` items "c", each with an anchor
// &a<i> when `anchored`. Free it.
static char *
list_doc(size_t n, bool anchored)
{
	size_t cap = 128 + n * 24, o = 0;
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	o += (size_t)snprintf(s + o, cap - o, "node: a\nservices:\n"
	    "  - name: x\n    command:\n");
	for (size_t i = 0; i < n; i++) {
		if (anchored)
			o += (size_t)snprintf(s + o, cap - o, "      - &a%zu c\n",
			    i);
		else
			o += (size_t)snprintf(s + o, cap - o, "      - c\n");
	}
	return s;
}

static void
test_anchors_and_nodes_bounded_before_load(void)
{
	struct top t;
	char err[512];
	char *s;
	int rv;

	CHECK_INT(cm_conf_set_max_file("16MiB", err, sizeof(err)), 0);
	// libyaml registers anchors by a linear search each: 75,000 of
	// them took about a minute before this check.
	s = list_doc(75000, true);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "t.yaml:1005: (top): more than 1000 YAML anchors");
	free(s);
	s = list_doc(CM_CONF_MAX_ANCHORS, true);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv == 0) {
		CHECK_INT(((struct svc *)t.services.v)[0].command.n,
		    CM_CONF_MAX_ANCHORS);
		cm_conf_free(&t, top_fields);
	}
	free(s);
	// 40,000 %TAG directives (libyaml checks each against all before
	// it): refused before parsing; 100 are parsed.
	{
		size_t cap = 40000 * 40 + 64, o = 0;

		s = malloc(cap);
		if (s == NULL)
			abort();
		for (int i = 0; i < 40000; i++)
			o += (size_t)snprintf(s + o, cap - o,
			    "%%TAG !a%d! tag:x,%d:\n", i, i);
		snprintf(s + o, cap - o, "---\nnode: a\n");
		rv = load(&t, s, err, sizeof(err));
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, "t.yaml:101: (top): more than 100 lines starting "
		    "with '%'");
		// The same with 100 directives is a document.
		o = 0;
		for (int i = 0; i < 100; i++)
			o += (size_t)snprintf(s + o, cap - o,
			    "%%TAG !a%d! tag:x,%d:\n", i, i);
		snprintf(s + o, cap - o, "---\nnode: a\n");
		rv = load(&t, s, err, sizeof(err));
		CHECK_INT(rv, 0);
		CHECK_STR(t.node, "a");
		cm_conf_free(&t, top_fields);
		free(s);
	}
	// 300,000 scalars: refused before libyaml builds the document.
	s = list_doc(300000, false);
	rv = load(&t, s, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK_HAS(err, "more than 200000 YAML nodes");
	free(s);
	CHECK_INT(cm_conf_set_max_file("1MiB", err, sizeof(err)), 0);
}

static const struct tt_case cases[] = {
	{ "the file limit is configurable", test_max_file_configurable },
	{ "binds a full document with defaults and lines", test_full_document },
	{ "errors name file, line and key", test_errors_name_file_line_key },
	{ "alias expansion is bounded", test_alias_bomb_is_bounded },
	{ "big maps and lists stop at the node budget; duplicates found",
	  test_big_maps_and_lists_are_bounded },
	{ "anchors, YAML nodes and directives are counted before libyaml",
	  test_anchors_and_nodes_bounded_before_load },
	{ "YAML depth check: limit, line, first document only",
	  test_yaml_depth_check },
	{ "500,000-deep flow nesting fails fast with the depth error",
	  test_deep_nesting_fails_fast },
	{ "a document of normal depth still loads",
	  test_normal_depth_still_loads },
	{ "duration and size parsers", test_duration_and_size_parsers },
	{ "null scalars mean the default", test_null_means_default },
	{ "file errors", test_file_errors },
	{ "freeing is idempotent, nested structs included",
	  test_free_is_idempotent },
	{ NULL, NULL },
};

TT_MAIN(cases)
