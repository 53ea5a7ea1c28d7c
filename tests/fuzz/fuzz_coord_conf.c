// SPDX-License-Identifier: MIT
// fuzz_coord_conf: libFuzzer target for the coordinator's configuration:
// the YAML binder (cm_conf) with the coordinator's tables, the whole-file
// validation and the rule compiler, all through coord_conf_load. The
// input is written to a memfd and loaded by its /proc/self/fd path, so
// the loader runs exactly as reflex-coordinator --check-config runs it.
//
// A config that loads must keep its promises: every action template
// renders, for an alert carrying every label the templates may name,
// either to an error or to a value within the template contract; the
// derived webhook limits equal the configured ones.
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coord_conf.h"
#include "coord_rules.h"
#include "fuzz_common.h"

static int memfd = -1;
static char path[64];

// Labels of the alert the rules are rendered for: the names the seed
// configs use, and values that stay valid targets.
static struct coord_kv labels[] = {
	{ "alertname", "HighErrorRate" },
	{ "deployment", "web" },
	{ "instance", "127.0.0.1:8080" },
	{ "job", "demo" },
	{ "namespace", "ns-a" },
	{ "pod", "web-7b6d9-x2x4z" },
	{ "service", "demo-a" },
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	memfd = memfd_create("fuzz-coord-conf", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

static bool
valid_target(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > COORD_TMPL_MAX || s[0] == '/' || s[0] == '-' ||
	    strstr(s, "..") != NULL)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("._:/@-", *p) != NULL))
			return false;
	return true;
}

static void
check_loaded(const struct coord_conf *c)
{
	struct coord_alert a = {
		.firing = true,
		.labels = { labels, sizeof(labels) / sizeof(labels[0]) },
		.generator_url = "",
		.fingerprint = "",
	};

	FUZZ_CHECK(c->compiled.n == c->rules.n, "%zu rules, %zu compiled",
	    c->compiled.n, c->rules.n);
	FUZZ_CHECK(c->wl.max_body == (size_t)c->limits.max_body &&
	    c->wl.max_alerts == (size_t)c->limits.max_alerts &&
	    c->wl.max_labels == (size_t)c->limits.max_labels,
	    "derived webhook limits differ from the config");
	for (size_t r = 0; r < c->compiled.n; r++) {
		const struct coord_rule *rule = &c->compiled.v[r];
		struct coord_plan *plans = NULL, *esc = NULL;
		size_t n = 0;
		char err[512], *promql = NULL;

		(void)coord_rule_matches(rule, &a);
		if (coord_rule_plan(rule, &a, &plans, &n, err,
		    sizeof(err)) == 0) {
			for (size_t i = 0; i < n; i++) {
				FUZZ_CHECK(valid_target(plans[i].service),
				    "service \"%s\"", plans[i].service);
				FUZZ_CHECK(plans[i].instance[0] == '\0' ||
				    valid_target(plans[i].instance),
				    "instance \"%s\"", plans[i].instance);
			}
			coord_plans_free(plans, n);
		}
		for (size_t s = 0; s < 4; s++) {
			if (coord_rule_plan_escalation(rule, &a, s, &esc, err,
			    sizeof(err)) == 0)
				coord_plans_free(esc, 1);
		}
		if (coord_rule_render_promql(rule, &a, &promql, err,
		    sizeof(err)) == 0)
			free(promql);
	}
	(void)coord_conf_automation(c, "demo-a");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct coord_conf c;
	char err[1024];
	int rv;

	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) !=
	    (ssize_t)size) {
		perror("memfd write");
		abort();
	}
	err[0] = '\0';
	rv = coord_conf_load(&c, path, err, sizeof(err));
	if (rv < 0) {
		FUZZ_CHECK(err[0] != '\0', "error %d without a message", rv);
		return 0;
	}
	check_loaded(&c);
	coord_conf_free(&c);
	return 0;
}
