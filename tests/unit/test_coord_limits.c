// SPDX-License-Identifier: MIT
// The coordinator's configurable limits (issue 6): the webhook keys of
// limits: that the parser and the depth pre-check get, and wire_limits:
// for frames from agents.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord_conf.h"
#include "coord_jdepth.h"
#include "tt.h"

static char dir[] = "/tmp/reflex-test-coord-limits-XXXXXX";

// Loads a config file holding `yaml`; returns coord_conf_load's result.
static int
load(struct coord_conf *c, const char *yaml, char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/c.yml", dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -EIO;
	fputs(yaml, f);
	fclose(f);
	err[0] = '\0';
	return coord_conf_load(c, path, err, errlen);
}

// n '[' then n ']' inside {"a": ...}, which is level 1.
static char *
nested(size_t n)
{
	char *s = malloc(2 * n + 16);
	size_t o = 0;

	o += (size_t)sprintf(s, "{\"a\":");
	memset(s + o, '[', n);
	o += n;
	memset(s + o, ']', n);
	o += n;
	strcpy(s + o, "}");
	return s;
}

static void
test_jdepth(void)
{
	char err[256] = "";
	char *s;

	s = nested(9);
	CHECK_INT(coord_jdepth_check(s, strlen(s), 10, err, sizeof(err)), 0);
	free(s);
	s = nested(10);
	CHECK_INT(coord_jdepth_check(s, strlen(s), 10, err, sizeof(err)),
	    -EINVAL);
	CHECK_STR(err, "body: JSON nests deeper than 10 levels at offset 14 "
	    "(limits.max_json_depth)");
	free(s);
	// Brackets inside strings, escaped quotes included, do not count;
	// closing brackets give the levels back.
	s = "{\"a\":\"[[[[\\\"[[[[\",\"b\":[[1],[2],[3]],\"c\":{\"d\":{}}}";
	CHECK_INT(coord_jdepth_check(s, strlen(s), 3, err, sizeof(err)), 0);
	CHECK_INT(coord_jdepth_check(s, strlen(s), 2, err, sizeof(err)),
	    -EINVAL);
	// Not JSON at all: left to the parser. The length bounds the walk.
	CHECK_INT(coord_jdepth_check("]]]}}\"[[[", 9, 1, err, sizeof(err)), 0);
	CHECK_INT(coord_jdepth_check("[[[", 2, 2, err, sizeof(err)), 0);
	CHECK_INT(coord_jdepth_check(NULL, 0, 1, err, sizeof(err)), 0);
}

static void
test_defaults(void)
{
	struct coord_conf c;
	char err[512];

	CHECK_INT(load(&c, "{}\n", err, sizeof(err)), 0);
	CHECK_INT(c.wl.max_name_len, 128);
	CHECK_INT(c.limits.max_json_depth, COORD_JSON_DEPTH_MAX);
	CHECK(memcmp(&c.wire_limits, &cm_msg_default_limits,
	    sizeof(c.wire_limits)) == 0);
	coord_conf_free(&c);
}

static void
test_configured(void)
{
	struct coord_conf c;
	char err[512];

	CHECK_INT(load(&c, "limits:\n  max_name_len: 40\n"
	    "  max_json_depth: 12\n"
	    "wire_limits:\n  max_frame: 4KiB\n  max_depth: 5\n"
	    "  max_workloads: 7\n  max_name_len: 33\n  max_addr_len: 64\n"
	    "  max_text_len: 300\n", err, sizeof(err)), 0);
	CHECK_INT(c.wl.max_name_len, 40);
	CHECK_INT(c.limits.max_json_depth, 12);
	CHECK_INT(c.wire_limits.max_frame, 4096);
	CHECK_INT(c.wire_limits.max_depth, 5);
	CHECK_INT(c.wire_limits.max_workloads, 7);
	CHECK_INT(c.wire_limits.max_name_len, 33);
	CHECK_INT(c.wire_limits.max_addr_len, 64);
	CHECK_INT(c.wire_limits.max_text_len, 300);
	CHECK_INT(cm_msg_set_limits(&c.wire_limits, err, sizeof(err)), 0);
	CHECK_INT(cm_msg_recv_max(), 8192);
	CHECK_INT(cm_msg_set_limits(NULL, NULL, 0), 0);
	coord_conf_free(&c);
}

static void
test_bounds(void)
{
	static const struct {
		const char *yaml, *reason;
	} cases[] = {
		{ "limits: { max_name_len: 15 }", "limits.max_name_len" },
		{ "limits: { max_name_len: 1025 }", "limits.max_name_len" },
		{ "limits: { max_json_depth: 3 }", "limits.max_json_depth" },
		{ "limits: { max_json_depth: 1001 }", "limits.max_json_depth" },
		{ "wire_limits: { max_frame: 1023 }", "wire_limits.max_frame" },
		{ "wire_limits: { max_frame: 256KiB }", NULL },
		{ "wire_limits: { max_frame: 262145 }", "wire_limits.max_frame" },
		{ "wire_limits: { max_depth: 3 }", "wire_limits.max_depth" },
		{ "wire_limits: { max_depth: 17 }", "wire_limits.max_depth" },
		{ "wire_limits: { max_workloads: 0 }",
		  "wire_limits.max_workloads" },
		{ "wire_limits: { max_workloads: 1025 }",
		  "wire_limits.max_workloads" },
		{ "wire_limits: { max_name_len: 64 }",
		  "wire_limits.max_name_len" },
		{ "wire_limits: { max_addr_len: 31 }",
		  "wire_limits.max_addr_len" },
		{ "wire_limits: { max_text_len: 1024 }",
		  "wire_limits.max_text_len" },
		{ "wire_limits: { max_bytes: 1 }", "wire_limits.max_bytes" },
	};
	struct coord_conf c;
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rv = load(&c, cases[i].yaml, err, sizeof(err));

		printf("# %s: %s\n", cases[i].yaml, rv == 0 ? "ok" : err);
		if (cases[i].reason == NULL) {
			CHECK_INT(rv, 0);
			coord_conf_free(&c);
			continue;
		}
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, cases[i].reason);
	}
}

// What a rule needs from the rest of the file is checked at load, with
// the rule's line.
static void
test_rule_needs(void)
{
	static const char promql[] =
	    "rules:\n"
	    "  - name: r\n"
	    "    matchers: ['alertname = \"A\"']\n"
	    "    verify: { promql: 'up == 0' }\n"
	    "    actions: [ { type: restart, service: s } ]\n";
	static const char job[] =
	    "runtime: kubernetes\n"
	    "rules:\n"
	    "  - name: j\n"
	    "    matchers: ['alertname = \"A\"']\n"
	    "    actions:\n"
	    "      - { type: run_job, service: s }\n";
	struct coord_conf c;
	char err[512], yaml[1024];

	memset(&c, 0, sizeof(c));
	CHECK_INT(load(&c, promql, err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "c.yml:2: rules: rule r: verify.promql needs "
	    "prometheus_url");
	snprintf(yaml, sizeof(yaml), "prometheus_url: http://127.0.0.1:9/\n%s",
	    promql);
	memset(&c, 0, sizeof(c));
	CHECK_INT(load(&c, yaml, err, sizeof(err)), 0);
	coord_conf_free(&c);
	memset(&c, 0, sizeof(c));
	CHECK_INT(load(&c, job, err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "c.yml:6: rules: run_job (rule j) needs "
	    "kubernetes.job_template");
}

// The journal is a path: SQLite would take "file:..." for a URI (its own
// options, and a file created even when it refuses them).
static void
test_journal_not_uri(void)
{
	struct coord_conf c;
	char err[512];

	memset(&c, 0, sizeof(c));
	CHECK_INT(load(&c, "journal: 'file:/tmp/reflex-uri.db?mode=rwc'\n",
	    err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "c.yml: journal: expected a file path, got the SQLite "
	    "URI");
	CHECK_HAS(err, "write ./file:/tmp/reflex-uri.db?mode=rwc");
	memset(&c, 0, sizeof(c));
	CHECK_INT(load(&c, "journal: './file:x.db'\n", err, sizeof(err)), 0);
	CHECK_STR(c.journal, "./file:x.db");
	coord_conf_free(&c);
}

static void
test_cleanup(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/c.yml", dir);
	unlink(path);
	CHECK_INT(rmdir(dir), 0);
}

static const struct tt_case cases[] = {
	{ "jdepth", test_jdepth },
	{ "defaults", test_defaults },
	{ "configured", test_configured },
	{ "bounds", test_bounds },
	{ "rule needs", test_rule_needs },
	{ "journal is a path, not a URI", test_journal_not_uri },
	{ "cleanup", test_cleanup },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	return tt_run(cases, argc, argv);
}
