// SPDX-License-Identifier: MIT
// fuzz_webhook: libFuzzer target for the Alertmanager webhook parser and
// for what the coordinator derives from a parsed alert (rule matching and
// templated action targets).
//
// Each input is parsed twice: with the default limits and with tight
// ones, so that every limit check sees inputs on both sides of it. On
// success the documented properties of the result are checked (version
// "4", counts within the limits, label sets sorted with unique valid
// names, non-empty alertname, UTF-8 strings, a copy with the same
// identity) and the alerts go through a fixed rule set: every rendered
// target must satisfy the template contract of coord_rules.h, since that
// is what stops alert text from reaching an agent unvalidated.
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cm_conf.h"
#include "cm_msg.h"
#include "coord_alert.h"
#include "coord_rules.h"
#include "fuzz_common.h"
#include "../unit/notif_eq.h"

struct rules_doc {
	struct cm_list rules;
};

static const struct cm_conf_field rules_table[] = {
	{ .key = "rules", .type = CM_CONF_LIST,
	  .off = offsetof(struct rules_doc, rules), .sub = coord_rule_fields,
	  .elem_size = sizeof(struct coord_rule_conf),
	  .line_off = CM_CONF_LINE(struct coord_rule_conf, line) },
	{ 0 },
};

// Rules whose templates use the labels the seed bodies carry, plus one
// that matches everything through a regex.
static const char rules_yaml[] =
	"rules:\n"
	"  - name: any\n"
	"    matchers: ['alertname =~ \".+\"']\n"
	"    continue: true\n"
	"    verify: { promql: 'rate(x{instance=\"{{ instance }}\"}[1m]) > 0' }\n"
	"    actions:\n"
	"      - type: restart\n"
	"        service: \"{{ service }}\"\n"
	"        instance: \"{{instance}}\"\n"
	"        params: { who: \"{{ pod }}-{{ namespace }}\" }\n"
	"  - name: pods\n"
	"    matchers: ['alertname != \"Watchdog\"', 'namespace !~ \"kube-.*\"']\n"
	"    actions:\n"
	"      - type: scale_up\n"
	"        service: \"{{ deployment }}\"\n"
	"        params: { replicas: \"2\" }\n"
	"      - type: restart\n"
	"        service: \"svc-{{ job }}\"\n"
	"        instance: \"{{ pod }}\"\n";

static struct rules_doc doc;
static struct coord_rules rules;

static const struct coord_webhook_limits tight = {
	.max_body = 4096,
	.max_alerts = 3,
	.max_labels = 4,
	.max_name_len = 16,
	.max_value_len = 32,
	.max_annotation_len = 48,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	fuzz_log_setup();
	if (cm_conf_load_mem(&doc, rules_table, "fuzz-rules", rules_yaml,
	    sizeof(rules_yaml) - 1, err, sizeof(err)) < 0 ||
	    coord_rules_compile(&rules, &doc.rules, "fuzz-rules", err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_webhook: rules: %s\n", err);
		abort();
	}
	return 0;
}

static bool
target_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("._:/@-", c) != NULL;
}

// The contract of a rendered value (coord_rules.h): 1..253 bytes of
// [A-Za-z0-9._:/@-], no "..", not starting with '/' or '-'. An empty
// instance means "every instance" and is allowed there only.
static void
check_target(const char *s, bool may_be_empty)
{
	size_t n;

	FUZZ_CHECK(s != NULL, "rendered value is NULL");
	n = strlen(s);
	if (n == 0) {
		FUZZ_CHECK(may_be_empty, "empty rendered service");
		return;
	}
	FUZZ_CHECK(n <= COORD_TMPL_MAX, "rendered value of %zu bytes", n);
	FUZZ_CHECK(s[0] != '/' && s[0] != '-', "rendered value starts with "
	    "'%c'", s[0]);
	FUZZ_CHECK(strstr(s, "..") == NULL, "rendered value has \"..\"");
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(target_char(s[i]), "rendered value has byte 0x%02x",
		    (unsigned char)s[i]);
}

static void
check_kvs(const struct coord_kvs *kvs, const struct coord_webhook_limits *lim,
    bool label_names, size_t max_val)
{
	FUZZ_CHECK(kvs->n <= lim->max_labels, "%zu pairs > %zu", kvs->n,
	    lim->max_labels);
	for (size_t i = 0; i < kvs->n; i++) {
		const struct coord_kv *kv = &kvs->v[i];

		FUZZ_CHECK(kv->key != NULL && kv->val != NULL, "NULL pair");
		if (label_names)
			FUZZ_CHECK(coord_label_name_valid(kv->key),
			    "invalid label name accepted");
		FUZZ_CHECK(strlen(kv->key) <= lim->max_name_len,
		    "name of %zu bytes", strlen(kv->key));
		FUZZ_CHECK(strlen(kv->val) <= max_val, "value of %zu bytes",
		    strlen(kv->val));
		FUZZ_CHECK(cm_utf8_valid(kv->val, strlen(kv->val)),
		    "value not UTF-8");
		if (i > 0)
			FUZZ_CHECK(strcmp(kvs->v[i - 1].key, kv->key) < 0,
			    "pairs not sorted or not unique");
		FUZZ_CHECK(coord_kvs_get(kvs, kv->key) == kv->val,
		    "lookup does not find its own key");
	}
}

static void
run_rules(const struct coord_alert *a)
{
	for (size_t r = 0; r < rules.n; r++) {
		struct coord_plan *plans = NULL;
		size_t n = 0;
		char *promql = NULL;
		char err[512];

		if (!coord_rule_matches(&rules.v[r], a))
			continue;
		if (coord_rule_plan(&rules.v[r], a, &plans, &n, err,
		    sizeof(err)) == 0) {
			for (size_t i = 0; i < n; i++) {
				check_target(plans[i].service, false);
				check_target(plans[i].instance, true);
				for (size_t k = 0; k < plans[i].params.n; k++)
					check_target(plans[i].params.vals[k],
					    false);
			}
			coord_plans_free(plans, n);
		}
		if (coord_rule_render_promql(&rules.v[r], a, &promql, err,
		    sizeof(err)) == 0)
			free(promql);
	}
}

static void
check_notification(const struct coord_notification *n,
    const struct coord_webhook_limits *lim)
{
	static const char *const replicas[] = { "prometheus_replica",
		"replica" };

	FUZZ_CHECK(n->version != NULL && strcmp(n->version, "4") == 0,
	    "version is not \"4\"");
	FUZZ_CHECK(n->receiver && n->status && n->group_key && n->external_url,
	    "a string field is NULL");
	FUZZ_CHECK(n->n_alerts <= lim->max_alerts, "%zu alerts > %zu",
	    n->n_alerts, lim->max_alerts);
	check_kvs(&n->group_labels, lim, true, lim->max_value_len);
	check_kvs(&n->common_labels, lim, true, lim->max_value_len);
	check_kvs(&n->common_annotations, lim, false, lim->max_annotation_len);
	for (size_t i = 0; i < n->n_alerts; i++) {
		const struct coord_alert *a = &n->alerts[i];
		const char *name = coord_kvs_get(&a->labels, "alertname");
		struct coord_alert *c;

		FUZZ_CHECK(name != NULL && name[0] != '\0', "no alertname");
		FUZZ_CHECK(a->generator_url && a->fingerprint, "NULL string");
		check_kvs(&a->labels, lim, true, lim->max_value_len);
		check_kvs(&a->annotations, lim, false, lim->max_annotation_len);
		c = coord_alert_dup(a);
		FUZZ_CHECK(c != NULL, "coord_alert_dup failed");
		FUZZ_CHECK(coord_alert_identity(c, replicas, 2) ==
		    coord_alert_identity(a, replicas, 2),
		    "a copy has another identity");
		run_rules(c);
		coord_alert_free(c);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct coord_webhook_limits *limits[] = {
		&coord_webhook_default_limits, &tight,
	};

	// Kept across inputs (never freed: reachable to the end), so that
	// the sets of earlier inputs meet later ones, under either limits.
	static struct coord_setmemo *memo;

	if (memo == NULL)
		memo = coord_setmemo_new();
	for (size_t i = 0; i < 2; i++) {
		struct coord_notification *n = NULL, *m = NULL;
		char err[512], merr[512];
		int rv, mrv;

		err[0] = '\0';
		merr[0] = '\0';
		rv = coord_webhook_parse(&n, (const char *)data, size, limits[i],
		    err, sizeof(err));
		// Through the memo: the same result, reason and notification.
		mrv = coord_webhook_parse_memo(&m, (const char *)data, size,
		    limits[i], memo, merr, sizeof(merr));
		FUZZ_CHECK(mrv == rv && strcmp(merr, err) == 0 &&
		    notif_eq(m, n), "the memo's parse differs: %d/%d %s", mrv,
		    rv, merr);
		coord_notification_free(m);
		if (rv == 0) {
			FUZZ_CHECK(n != NULL, "success without a result");
			check_notification(n, limits[i]);
		} else {
			FUZZ_CHECK(n == NULL, "failure with a result");
			FUZZ_CHECK(rv == -EINVAL || rv == -E2BIG ||
			    rv == -ENOMEM, "unexpected error %d", rv);
			FUZZ_CHECK(err[0] != '\0', "error %d without a reason",
			    rv);
		}
		coord_notification_free(n);
	}
	return 0;
}
