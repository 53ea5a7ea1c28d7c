// SPDX-License-Identifier: MIT
// rules_fixture: what the unit tests of rules and plans share: alerts
// built through the webhook parser and rule sets loaded from YAML.
#ifndef RULES_FIXTURE_H
#define RULES_FIXTURE_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cm_conf.h"
#include "coord_alert.h"
#include "coord_rules.h"

// Builds an alert from the inside of a JSON labels object, through the
// webhook parser so the label set is exactly what the engine will see.
// Free with coord_alert_free; NULL (reason printed) when it does not parse.
static inline struct coord_alert *
mk_alert(const char *labels)
{
	struct coord_notification *n = NULL;
	struct coord_alert *a = NULL;
	char body[4096], err[256] = "";

	snprintf(body, sizeof(body), "{\"version\":\"4\",\"alerts\":"
	    "[{\"status\":\"firing\",\"labels\":{%s}}]}", labels);
	if (coord_webhook_parse(&n, body, strlen(body), NULL, err,
	    sizeof(err)) != 0) {
		printf("# mk_alert: %s\n", err);
		return NULL;
	}
	if (n->n_alerts == 1)
		a = coord_alert_dup(&n->alerts[0]);
	coord_notification_free(n);
	return a;
}

struct test_conf {
	struct cm_list rules;
};

static const struct cm_conf_field test_fields[] = {
	{ .key = "rules", .type = CM_CONF_LIST, .required = true,
	  .off = offsetof(struct test_conf, rules), .sub = coord_rule_fields,
	  .elem_size = sizeof(struct coord_rule_conf),
	  .line_off = CM_CONF_LINE(struct coord_rule_conf, line),
	  .help = "rules" },
	{ .key = NULL },
};

// Loads and compiles `yaml`. Returns the first error (load or compile);
// on success free with coord_rules_clear and cm_conf_free(conf,
// test_fields).
static inline int
load_rules(const char *yaml, struct test_conf *conf, struct coord_rules *rs,
    char *err, size_t errlen)
{
	int rv;

	memset(rs, 0, sizeof(*rs));
	// The header promises cm_conf_load_mem zeroes `out`; do it anyway.
	memset(conf, 0, sizeof(*conf));
	rv = cm_conf_load_mem(conf, test_fields, "test.yaml", yaml,
	    strlen(yaml), err, errlen);
	if (rv < 0)
		return rv;
	rv = coord_rules_compile(rs, &conf->rules, "test.yaml", err, errlen);
	if (rv < 0)
		cm_conf_free(conf, test_fields);
	return rv;
}

#endif
