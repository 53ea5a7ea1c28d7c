// SPDX-License-Identifier: MIT
// Unit tests of coord_planmemo (the engine's memo of plans) and of the
// coord_rules helpers it stands on (coord_rules_plan, coord_plans_dup).
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_conf.h"
#include "coord_alert.h"
#include "coord_planmemo.h"
#include "coord_rules.h"
#include "rules_fixture.h"
#include "tt.h"

// ---- helpers -------------------------------------------------------------

struct rs {
	struct test_conf conf;
	struct coord_rules rules;
};

static bool
rs_load(struct rs *r, const char *yaml)
{
	char err[512] = "";

	if (load_rules(yaml, &r->conf, &r->rules, err, sizeof(err)) < 0) {
		printf("# rs_load: %s\n", err);
		return false;
	}
	return true;
}

static void
rs_free(struct rs *r)
{
	coord_rules_clear(&r->rules);
	cm_conf_free(&r->conf, test_fields);
}

#define RULES_A                                                             \
	"rules:\n"                                                          \
	"  - name: r1\n"                                                    \
	"    matchers: ['alertname = \"Down\"']\n"                          \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}\"\n"                              \
	"        instance: \"{{ instance }}\"\n"                            \
	"        params: { note: \"x-{{ service }}\" }\n"                   \
	"      - type: notify\n"                                            \
	"        service: \"{{ service }}\"\n"

// The same rule name and matcher, another instance template: what a
// reload that edits a rule brings.
#define RULES_B                                                             \
	"rules:\n"                                                          \
	"  - name: r1\n"                                                    \
	"    matchers: ['alertname = \"Down\"']\n"                          \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}\"\n"                              \
	"        instance: \"b-{{ instance }}\"\n"

#define LABELS_1 "\"alertname\":\"Down\",\"service\":\"api\","           \
	"\"instance\":\"i1\""
#define LABELS_2 "\"alertname\":\"Down\",\"service\":\"api\","           \
	"\"instance\":\"i2\""

// Plans a through the memo and checks the result against
// coord_rules_plan's own; returns the lease.
static struct coord_planmemo_slot *
plan_checked(struct coord_planmemo *m, const struct coord_rules *rules,
    const struct coord_alert *a, uint64_t identity, struct coord_plan **p,
    size_t *n)
{
	struct coord_planmemo_slot *lease = (void *)1;
	struct coord_plan *want = NULL;
	size_t n_want = 0;
	char err[256], err2[256];
	int rv, rv_want;

	rv = coord_planmemo_plan(m, rules, a, identity, p, n, &lease, err,
	    sizeof(err));
	rv_want = coord_rules_plan(rules, a, &want, &n_want, err2,
	    sizeof(err2));
	CHECK_INT(rv, rv_want);
	CHECK_INT((long long)*n, (long long)n_want);
	if (rv < 0)
		CHECK_STR(err, err2);
	for (size_t i = 0; rv == 0 && i < *n && i < n_want; i++) {
		CHECK((*p)[i].rule == want[i].rule);
		CHECK_INT((*p)[i].type, want[i].type);
		CHECK_STR((*p)[i].service, want[i].service);
		CHECK_STR((*p)[i].instance, want[i].instance);
		CHECK_INT((long long)(*p)[i].params.n,
		    (long long)want[i].params.n);
		for (size_t k = 0; k < (*p)[i].params.n &&
		    k < want[i].params.n; k++)
			CHECK_STR((*p)[i].params.vals[k], want[i].params.vals[k]);
	}
	coord_plans_free(want, n_want);
	return lease;
}

static void
drop(struct coord_plan *p, size_t n, struct coord_planmemo_slot *lease)
{
	if (lease != NULL)
		coord_planmemo_release(lease);
	else
		coord_plans_free(p, n);
}

// ---- cases ---------------------------------------------------------------

static void
test_kept_on_second_sighting(void)
{
	struct rs a;
	struct coord_planmemo *m = coord_planmemo_new();
	struct coord_alert *x = mk_alert(LABELS_1);
	struct coord_planmemo_slot *l;
	struct coord_plan *p;
	size_t n;

	CHECK(m != NULL && x != NULL && rs_load(&a, RULES_A));
	// Once: the caller's own plans, nothing kept.
	l = plan_checked(m, &a.rules, x, 7, &p, &n);
	CHECK(l == NULL);
	CHECK_INT((long long)n, 2);
	drop(p, n, l);
	// Twice in a row: kept, and lent.
	l = plan_checked(m, &a.rules, x, 7, &p, &n);
	CHECK(l != NULL);
	CHECK_INT((long long)coord_planmemo_hits(m), 0);
	drop(p, n, l);
	// From then on: answered from the memo, same plans.
	for (int i = 0; i < 3; i++) {
		l = plan_checked(m, &a.rules, x, 7, &p, &n);
		CHECK(l != NULL);
		drop(p, n, l);
	}
	CHECK_INT((long long)coord_planmemo_hits(m), 3);
	CHECK_STR(p[0].instance, "i1");
	coord_alert_free(x);
	coord_planmemo_free(m);
	rs_free(&a);
}

// A reload gives another rules set: nothing planned under the old one is
// lent after it, and the new set's plans are what the alert gets.
static void
test_reload_invalidates(void)
{
	struct rs a, b;
	struct coord_planmemo *m = coord_planmemo_new();
	struct coord_alert *x = mk_alert(LABELS_1);
	struct coord_planmemo_slot *l;
	struct coord_plan *p;
	size_t n;

	CHECK(m != NULL && x != NULL && rs_load(&a, RULES_A) &&
	    rs_load(&b, RULES_B));
	for (int i = 0; i < 3; i++) {
		l = plan_checked(m, &a.rules, x, 7, &p, &n);
		drop(p, n, l);
	}
	CHECK_INT((long long)coord_planmemo_hits(m), 1);
	l = plan_checked(m, &b.rules, x, 7, &p, &n);
	CHECK(l == NULL); // planned anew, under the new rules
	CHECK_INT((long long)n, 1);
	CHECK_STR(p[0].instance, "b-i1");
	drop(p, n, l);
	CHECK_INT((long long)coord_planmemo_hits(m), 1);
	for (int i = 0; i < 3; i++) {
		l = plan_checked(m, &b.rules, x, 7, &p, &n);
		CHECK_STR(p[0].instance, "b-i1");
		drop(p, n, l);
	}
	CHECK_INT((long long)coord_planmemo_hits(m), 3);
	coord_alert_free(x);
	coord_planmemo_free(m);
	rs_free(&a);
	rs_free(&b);
}

// The identity only picks the slot: another value of a label the rules
// read, under the same identity, is planned for itself.
static void
test_labels_decide(void)
{
	struct rs a;
	struct coord_planmemo *m = coord_planmemo_new();
	struct coord_alert *x = mk_alert(LABELS_1), *y = mk_alert(LABELS_2);
	struct coord_planmemo_slot *l, *ly;
	struct coord_plan *p, *py;
	size_t n, ny;

	CHECK(m != NULL && x != NULL && y != NULL && rs_load(&a, RULES_A));
	for (int i = 0; i < 2; i++) {
		l = plan_checked(m, &a.rules, x, 7, &p, &n);
		drop(p, n, l);
	}
	// x is kept; y under the same identity is not x.
	ly = plan_checked(m, &a.rules, y, 7, &py, &ny);
	CHECK_STR(py[0].instance, "i2");
	drop(py, ny, ly);
	CHECK_INT((long long)coord_planmemo_hits(m), 0);
	// While x's plans are lent, y (twice) does not replace them.
	l = plan_checked(m, &a.rules, x, 7, &p, &n);
	CHECK(l != NULL);
	for (int i = 0; i < 2; i++) {
		ly = plan_checked(m, &a.rules, y, 7, &py, &ny);
		CHECK(ly == NULL);
		drop(py, ny, ly);
	}
	CHECK_STR(p[0].instance, "i1"); // still whole (ASan would say)
	drop(p, n, l);
	coord_alert_free(x);
	coord_alert_free(y);
	coord_planmemo_free(m);
	rs_free(&a);
}

// Only the labels the rules read take part: another value of a label no
// rule reads is the same plans (lent); another value of a label only a
// matcher reads is planned anew.
#define RULES_C                                                             \
	"rules:\n"                                                          \
	"  - name: crit\n"                                                  \
	"    matchers: ['alertname = \"Down\"', 'severity =~ \"crit.*\"']\n" \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}\"\n"

static void
test_read_labels_decide(void)
{
	struct rs c;
	struct coord_planmemo *m = coord_planmemo_new();
	struct coord_alert *x = mk_alert("\"alertname\":\"Down\","
	    "\"service\":\"api\",\"severity\":\"critical\",\"pod\":\"p1\"");
	struct coord_alert *x2 = mk_alert("\"alertname\":\"Down\","
	    "\"service\":\"api\",\"severity\":\"critical\",\"pod\":\"p2\"");
	struct coord_alert *w = mk_alert("\"alertname\":\"Down\","
	    "\"service\":\"api\",\"severity\":\"warning\",\"pod\":\"p1\"");
	struct coord_alert *nosev = mk_alert("\"alertname\":\"Down\","
	    "\"service\":\"api\",\"pod\":\"p1\"");
	struct coord_planmemo_slot *l;
	struct coord_plan *p;
	char **names = NULL;
	size_t n, n_names = 0;

	CHECK(m != NULL && x != NULL && x2 != NULL && w != NULL &&
	    nosev != NULL && rs_load(&c, RULES_C));
	CHECK_INT(coord_rules_label_names(&c.rules, &names, &n_names), 0);
	CHECK_INT((long long)n_names, 3);
	if (n_names == 3) {
		CHECK_STR(names[0], "alertname");
		CHECK_STR(names[1], "severity");
		CHECK_STR(names[2], "service");
	}
	coord_rules_label_names_free(names, n_names);
	for (int i = 0; i < 2; i++) {
		l = plan_checked(m, &c.rules, x, 5, &p, &n);
		drop(p, n, l);
	}
	l = plan_checked(m, &c.rules, x2, 5, &p, &n); // pod: read by none
	CHECK(l != NULL);
	CHECK_INT((long long)n, 1);
	drop(p, n, l);
	CHECK_INT((long long)coord_planmemo_hits(m), 1);
	l = plan_checked(m, &c.rules, w, 5, &p, &n); // no rule matches
	CHECK(l == NULL && n == 0);
	l = plan_checked(m, &c.rules, nosev, 5, &p, &n); // absent: no match
	CHECK(l == NULL && n == 0);
	CHECK_INT((long long)coord_planmemo_hits(m), 1);
	coord_alert_free(x);
	coord_alert_free(x2);
	coord_alert_free(w);
	coord_alert_free(nosev);
	coord_planmemo_free(m);
	rs_free(&c);
}

// Errors are never kept; "no rule matched" is, without plans to lend.
static void
test_errors_and_no_rule(void)
{
	struct rs a;
	struct coord_planmemo *m = coord_planmemo_new();
	struct coord_alert *bad = mk_alert("\"alertname\":\"Down\","
	    "\"service\":\"api\"");
	struct coord_alert *other = mk_alert("\"alertname\":\"Up\"");
	struct coord_planmemo_slot *l;
	struct coord_plan *p;
	size_t n;

	CHECK(m != NULL && bad != NULL && other != NULL &&
	    rs_load(&a, RULES_A));
	for (int i = 0; i < 4; i++) {
		l = plan_checked(m, &a.rules, bad, 9, &p, &n);
		CHECK(l == NULL && p == NULL && n == 0);
	}
	CHECK_INT((long long)coord_planmemo_hits(m), 0);
	for (int i = 0; i < 4; i++) {
		l = plan_checked(m, &a.rules, other, 10, &p, &n);
		CHECK(l == NULL && p == NULL && n == 0);
	}
	CHECK_INT((long long)coord_planmemo_hits(m), 2);
	coord_alert_free(bad);
	coord_alert_free(other);
	coord_planmemo_free(m);
	rs_free(&a);
}

static void
test_plans_dup(void)
{
	struct rs a;
	struct coord_alert *x = mk_alert(LABELS_1);
	struct coord_plan *p = NULL, *d;
	size_t n = 0;
	char err[256];

	CHECK(x != NULL && rs_load(&a, RULES_A));
	CHECK_INT(coord_rules_plan(&a.rules, x, &p, &n, err, sizeof(err)), 0);
	CHECK_INT((long long)n, 2);
	d = coord_plans_dup(p, n);
	CHECK(d != NULL);
	for (size_t i = 0; d != NULL && i < n; i++) {
		CHECK(d[i].rule == p[i].rule && d[i].act == p[i].act);
		CHECK_INT(d[i].type, p[i].type);
		CHECK_INT((long long)d[i].step, (long long)p[i].step);
		CHECK(d[i].service != p[i].service);
		CHECK_STR(d[i].service, p[i].service);
		CHECK_STR(d[i].instance, p[i].instance);
		CHECK_INT((long long)d[i].params.n, (long long)p[i].params.n);
	}
	if (d != NULL) {
		CHECK_STR(d[0].params.keys[0], "note");
		CHECK_STR(d[0].params.vals[0], "x-api");
		CHECK(d[0].params.vals[0] != p[0].params.vals[0]);
	}
	CHECK(coord_plans_dup(p, 0) == NULL);
	coord_plans_free(p, n); // the copy stands alone
	if (d != NULL)
		CHECK_STR(d[1].service, "api");
	coord_plans_free(d, n);
	coord_alert_free(x);
	rs_free(&a);
}

// Three rule sets: matchers on present, absent and empty values,
// templates in service, instance and params, templates that fail for
// some alerts (a label absent or empty); R2 and R3 read the same labels
// (a reload that changes only what is done with them).
#define RULES_R1                                                            \
	"rules:\n"                                                          \
	"  - name: crit\n"                                                  \
	"    matchers: ['alertname = \"Down\"', 'severity =~ \"crit|\"']\n"  \
	"    continue: true\n"                                              \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}\"\n"                              \
	"        instance: \"{{ pod }}\"\n"                                 \
	"  - name: team\n"                                                  \
	"    matchers: ['team != \"\"']\n"                                  \
	"    actions:\n"                                                    \
	"      - type: notify\n"                                            \
	"        service: \"t-{{ team }}\"\n"                               \
	"        params: { env: \"{{ env }}\" }\n"
#define RULES_R2                                                            \
	"rules:\n"                                                          \
	"  - name: any\n"                                                   \
	"    matchers: ['env = \"\"']\n"                                    \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}-{{ severity }}\"\n"
#define RULES_R3                                                            \
	"rules:\n"                                                          \
	"  - name: any\n"                                                   \
	"    matchers: ['env = \"\"']\n"                                    \
	"    actions:\n"                                                    \
	"      - type: restart\n"                                           \
	"        service: \"{{ service }}\"\n"                              \
	"        params: { who: \"{{ severity }}\" }\n"

// A random label set from a small pool: each optional label absent,
// empty or one of two values, so that sets repeat, differ in one read
// label, or differ only in labels some rules do not read.
static struct coord_alert *
random_alert(unsigned *seed)
{
	static const char *const names[] = { "severity", "pod", "team", "env",
		"zone" };
	static const char *const vals[] = { "crit", "p1", "x", "prod",
		"p.2" };
	char labels[512];
	size_t o;

	o = (size_t)snprintf(labels, sizeof(labels),
	    "\"alertname\":\"%s\",\"service\":\"s%d\"",
	    rand_r(seed) % 4 ? "Down" : "Up", rand_r(seed) % 2);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int k = rand_r(seed) % 4;

		if (k == 0)
			continue; // absent
		o += (size_t)snprintf(labels + o, sizeof(labels) - o,
		    ",\"%s\":\"%s\"", names[i], k == 1 ? "" : k == 2 ?
		    vals[i] : vals[(i + 1) % 5]);
	}
	return mk_alert(labels);
}

// Random sightings under reloads among three rule sets, with up to 8
// leases held at a time (runs, approvals) and identities that sometimes
// collide on purpose: every answer equals coord_rules_plan's (checked
// by plan_checked), lent plans stay intact until released, and the memo
// answers some from its slots.
static void
test_random_against_direct(void)
{
	const char *env = getenv("REFLEX_TEST_SEED");
	unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 10) : 7;
	struct coord_planmemo *m = coord_planmemo_new();
	struct rs sets[3];
	struct held {
		struct coord_planmemo_slot *lease;
		struct coord_plan *p, *copy;
		size_t n;
	} held[8] = { { 0 } };
	struct coord_alert *pool[24] = { NULL };
	const struct coord_rules *cur;
	int bad = 0, prev = 0;

	printf("# seed=%u (REFLEX_TEST_SEED)\n", seed);
	CHECK(m != NULL && rs_load(&sets[0], RULES_R1) &&
	    rs_load(&sets[1], RULES_R2) && rs_load(&sets[2], RULES_R3));
	if (m == NULL)
		return;
	// A pool of label sets, so that sets come again (in a row or not).
	for (int i = 0; i < 24; i++)
		if ((pool[i] = random_alert(&seed)) == NULL)
			bad++;
	cur = &sets[0].rules;
	for (int step = 0; step < 4000 && bad == 0; step++) {
		struct coord_alert *a;
		struct coord_planmemo_slot *lease;
		struct coord_plan *p;
		size_t n;
		uint64_t id;
		int h;

		if (rand_r(&seed) % 2 == 0)
			prev = rand_r(&seed) % 24;
		a = pool[prev];
		if (rand_r(&seed) % 10 == 0)
			cur = &sets[rand_r(&seed) % 3].rules; // a reload
		id = rand_r(&seed) % 4 == 0 ? 42 : // a collision
		    coord_alert_identity(a, NULL, 0);
		lease = plan_checked(m, cur, a, id, &p, &n);
		h = rand_r(&seed) % 16;
		if (h < 8 && lease != NULL && held[h].lease == NULL) {
			held[h].lease = lease; // kept for a while
			held[h].p = p;
			held[h].n = n;
			held[h].copy = coord_plans_dup(p, n);
		} else {
			drop(p, n, lease);
		}
		h = rand_r(&seed) % 8;
		if (held[h].lease != NULL && rand_r(&seed) % 3 == 0) {
			for (size_t i = 0; i < held[h].n; i++)
				bad += strcmp(held[h].p[i].service,
				    held[h].copy[i].service) != 0 ||
				    strcmp(held[h].p[i].instance,
				    held[h].copy[i].instance) != 0;
			coord_planmemo_release(held[h].lease);
			coord_plans_free(held[h].copy, held[h].n);
			held[h].lease = NULL;
		}
	}
	for (int h = 0; h < 8; h++)
		if (held[h].lease != NULL) {
			coord_planmemo_release(held[h].lease);
			coord_plans_free(held[h].copy, held[h].n);
		}
	printf("# %llu of 4000 answered from the memo\n",
	    (unsigned long long)coord_planmemo_hits(m));
	CHECK(coord_planmemo_hits(m) > 0);
	CHECK_INT(bad, 0);
	coord_planmemo_free(m);
	for (int i = 0; i < 24; i++)
		coord_alert_free(pool[i]);
	for (int i = 0; i < 3; i++)
		rs_free(&sets[i]);
}

static const struct tt_case cases[] = {
	{ "kept on the second sighting, then lent", test_kept_on_second_sighting },
	{ "a rules reload is never answered from the memo",
	  test_reload_invalidates },
	{ "a read label's value decides, a lent slot stays",
	  test_labels_decide },
	{ "only the labels the rules read decide",
	  test_read_labels_decide },
	{ "errors are not kept, no-rule is", test_errors_and_no_rule },
	{ "coord_plans_dup copies deeply", test_plans_dup },
	{ "random sightings, reloads and held leases answer as planning",
	  test_random_against_direct },
	{ NULL, NULL },
};

TT_MAIN(cases)
