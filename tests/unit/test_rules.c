// SPDX-License-Identifier: MIT
// Tests of the remediation rules (coordinator/coord_rules.c): matcher
// syntax, matching, templating, the config tables and planning.
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_conf.h"
#include "coord_alert.h"
#include "coord_rules.h"
#include "rules_fixture.h"
#include "tt.h"

// ---- helpers -------------------------------------------------------------

static const struct coord_rule_conf *
rule_conf(const struct test_conf *c, size_t i)
{
	return &((const struct coord_rule_conf *)c->rules.v)[i];
}

static const struct coord_action_conf *
action_conf(const struct coord_rule_conf *r, size_t i)
{
	return &((const struct coord_action_conf *)r->actions.v)[i];
}

// ---- action types --------------------------------------------------------

static void
test_action_names(void)
{
	static const char *const names[] = { "restart", "scale_up",
		"scale_down", "switch_traffic", "rollback", "clear_cache",
		"reload_config", "notify", "run_job", "adjust_config" };
	int i;

	CHECK_INT(COORD_ACT__COUNT, 10);
	for (i = 0; i < COORD_ACT__COUNT; i++) {
		CHECK_STR(coord_action_name((enum coord_action_type)i),
		    names[i]);
		CHECK_INT(coord_action_parse(names[i]), i);
	}
	CHECK(coord_action_name(COORD_ACT__COUNT) == NULL);
	CHECK(coord_action_name((enum coord_action_type)-1) == NULL);
	CHECK_INT(coord_action_parse("reboot"), -1);
	CHECK_INT(coord_action_parse("Restart"), -1);
	CHECK_INT(coord_action_parse(""), -1);
	CHECK_INT(coord_action_parse(NULL), -1);
}

static void
test_action_timeouts(void)
{
	struct coord_action_conf a = { .type = COORD_ACT_ROLLBACK };

	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_RESTART), 300000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_SCALE_UP), 600000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_SCALE_DOWN),
	    600000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_SWITCH_TRAFFIC),
	    120000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_ROLLBACK), 900000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_CLEAR_CACHE),
	    300000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_RELOAD_CONFIG),
	    300000);
	CHECK_INT(coord_action_default_timeout_ms(COORD_ACT_NOTIFY), 300000);
	CHECK_INT(coord_action_timeout_ms(&a), 900000);
	a.timeout_ms = 42000;
	CHECK_INT(coord_action_timeout_ms(&a), 42000);
}

// ---- matcher syntax ------------------------------------------------------

struct mp_ok {
	const char *in;
	const char *name;
	enum coord_match_op op;
	const char *value;
};

static const struct mp_ok mp_ok_cases[] = {
	{ "alertname = \"HighErrorRate\"", "alertname", COORD_MATCH_EQ,
	  "HighErrorRate" },
	{ "alertname=\"X\"", "alertname", COORD_MATCH_EQ, "X" },
	{ "  a   !=   \"b\"  ", "a", COORD_MATCH_NE, "b" },
	{ "\tservice =~ \"demo-.*\"", "service", COORD_MATCH_RE, "demo-.*" },
	{ "a!~\"x|y\"", "a", COORD_MATCH_NRE, "x|y" },
	{ "a=bare", "a", COORD_MATCH_EQ, "bare" },
	{ "a = bare-word.1:2/3@4", "a", COORD_MATCH_EQ, "bare-word.1:2/3@4" },
	{ "a=~demo-.*", "a", COORD_MATCH_RE, "demo-.*" },
	{ "a!=x", "a", COORD_MATCH_NE, "x" },
	{ "a = \"\"", "a", COORD_MATCH_EQ, "" },
	{ "a =~ \"\"", "a", COORD_MATCH_RE, "" },
	{ "a = \"with space\"", "a", COORD_MATCH_EQ, "with space" },
	{ "a = \"q\\\"uote\"", "a", COORD_MATCH_EQ, "q\"uote" },
	{ "a = \"back\\\\slash\"", "a", COORD_MATCH_EQ, "back\\slash" },
	{ "_x9 = \"\xc3\xa9t\xc3\xa9\"", "_x9", COORD_MATCH_EQ,
	  "\xc3\xa9t\xc3\xa9" },
	{ "a = \xc3\xa9", "a", COORD_MATCH_EQ, "\xc3\xa9" },
	{ "a=~\"(web|api)[0-9]+\"", "a", COORD_MATCH_RE, "(web|api)[0-9]+" },
	{ "a =~ \"[])]x\"", "a", COORD_MATCH_RE, "[])]x" },
	{ "a =~ \"[[:digit:]]+\"", "a", COORD_MATCH_RE, "[[:digit:]]+" },
	{ "a =~ \"10\\\\.0\\\\..*\"", "a", COORD_MATCH_RE, "10\\.0\\..*" },
	{ "a = \"{{ x }}, y\"", "a", COORD_MATCH_EQ, "{{ x }}, y" },
	// The repetition budget's edges: 1000 copies along a path, 4000 in
	// all; '?' costs nothing, '*' and '+' 2 each.
	{ "a =~ \"(a{0,10}){0,100}\"", "a", COORD_MATCH_RE,
	  "(a{0,10}){0,100}" },
	{ "a =~ \"x{1000}\"", "a", COORD_MATCH_RE, "x{1000}" },
	{ "a =~ \"x{999,}\"", "a", COORD_MATCH_RE, "x{999,}" },
	{ "a =~ \"x+++++++++\"", "a", COORD_MATCH_RE, "x+++++++++" },
	{ "a =~ \"x??????????????????????\"", "a", COORD_MATCH_RE,
	  "x??????????????????????" },
	{ "a =~ \"((((((((((x?)?)?)?)?)?)?)?)?)?)*\"", "a", COORD_MATCH_RE,
	  "((((((((((x?)?)?)?)?)?)?)?)?)?)*" },
	{ "a =~ \"x{1000}y{1000}z{1000}[0-9]{999}\"", "a", COORD_MATCH_RE,
	  "x{1000}y{1000}z{1000}[0-9]{999}" },
	{ "a =~ \"(x{0}){1000}\"", "a", COORD_MATCH_RE, "(x{0}){1000}" },
	// Within the budget of optional copies of a part that can match
	// nothing (100), and pieces that cannot, however optional.
	{ "a =~ \"(a?){0,100}\"", "a", COORD_MATCH_RE, "(a?){0,100}" },
	{ "a =~ \"(a?){0,50}(b|){0,50}\"", "a", COORD_MATCH_RE,
	  "(a?){0,50}(b|){0,50}" },
	{ "a =~ \"((a?){0,9}){0,9}\"", "a", COORD_MATCH_RE,
	  "((a?){0,9}){0,9}" },
	{ "a =~ \"(ab|c){0,1000}\"", "a", COORD_MATCH_RE, "(ab|c){0,1000}" },
	{ "a =~ \".{0,253}\"", "a", COORD_MATCH_RE, ".{0,253}" },
	{ "a =~ \"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\"", "a", COORD_MATCH_RE,
	  "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?" },
	{ NULL, NULL, 0, NULL },
};

#define PLUS10 "++++++++++"

struct mp_bad {
	const char *in;
	const char *why;
};

static const struct mp_bad mp_bad_cases[] = {
	{ "", "expected a label name" },
	{ "   ", "expected a label name" },
	{ "= \"x\"", "expected a label name" },
	{ "9a = \"x\"", "expected a label name" },
	{ "a-b = \"x\"", "expected =, !=, =~ or !~" },
	{ "a \"x\"", "expected =, !=, =~ or !~" },
	{ "a", "expected =, !=, =~ or !~" },
	{ "a ~= x", "expected =, !=, =~ or !~" },
	{ "a == \"x\"", "needs quotes" },
	{ "a = \"unterminated", "unterminated quoted value" },
	{ "a = \"x\" extra", "unexpected text after the value" },
	{ "a = \"x\"\"y\"", "unexpected text after the value" },
	{ "a = \"bad \\n escape\"", "only \\\" and \\\\ escapes" },
	{ "a =", "missing value" },
	{ "a =   ", "missing value" },
	{ "a = x y", "unexpected text after the value" },
	{ "a = {x}", "needs quotes" },
	{ "a = x,y", "needs quotes" },
	{ "a = 'x'", "needs quotes" },
	{ "a = \"x\ty\"", "control character" },
	{ "a = \"\xff\"", "not valid UTF-8" },
	{ "a =~ \"(\"", "unbalanced ( in regex" },
	{ "a =~ \"a)|(b\"", "unbalanced ) in regex" },
	{ "a =~ \")\"", "unbalanced ) in regex" },
	{ "a =~ \"\\\\d+\"", "backslash before a letter or digit" },
	{ "a =~ \"(a)\\\\1\"", "backslash before a letter or digit" },
	{ "a =~ \"x\\\\\"", "trailing backslash" },
	{ "a =~ \"[abc\"", "unterminated [" },
	{ "a =~ \"[[:digit:]\"", "unterminated [" },
	{ "a =~ \"*a\"", "invalid regex" },
	{ "a =~ \"(?i)x\"", "invalid regex" },
	{ "a =~ \"x{2\"", "invalid regex" },
	// Repetition that makes glibc's regcomp take gigabytes and seconds
	// (tests/fuzz/corpus/coord_conf/oom-regcomp-*), or is one step past
	// the budget.
	{ "a =~ \"demo-" PLUS10 PLUS10 PLUS10 PLUS10 PLUS10 PLUS10 PLUS10
	  ".*\"", "regex repeats too much" },
	{ "a =~ \"(a{0,200}){0,200}\"", "regex repeats too much" },
	// glibc reads a missing minimum as 0 (found by fuzzing: 2 GB)
	{ "a =~ \"(a{,0200}){0,200}\"", "regex repeats too much" },
	// Here and below, "regex repeats" alone: too much, or a part that
	// can match nothing too often, whichever budget runs out first.
	{ "a =~ \"(a{,}){,}{,}{,}{,}{,}{,}{,}{,}{,}\"", "regex repeats" },
	{ "a =~ \"(a{0,10}){0,101}\"", "regex repeats too much" },
	{ "a =~ \"((a{0,10}){0,10}){0,11}\"", "regex repeats too much" },
	{ "a =~ \"x{1001}\"", "regex repeats too much" },
	{ "a =~ \"x{1000,}\"", "regex repeats too much" },
	{ "a =~ \"x{0,1001}\"", "regex repeats too much" },
	{ "a =~ \"x{99999999999999999999999}\"", "regex repeats too much" },
	{ "a =~ \"x++++++++++\"", "regex repeats too much" },
	{ "a =~ \"x*********+\"", "regex repeats" },
	{ "a =~ \"((((((((((x*)*)*)*)*)*)*)*)*)*)*\"",
	  "regex repeats" },
	{ "a =~ \"(x{501})+\"", "regex repeats too much" },
	{ "a =~ \"[a-z]{1000}+\"", "regex repeats too much" },
	{ "a =~ \"\\\\.{1000}?+\"", "regex repeats too much" },
	{ "a =~ \"(a{0,1000})(a{0,1000})(a{0,1000})(a{0,1000})(a)\"",
	  "regex too large once its repeats are expanded" },
	{ "a =~ \"(a{0,1000}|b{0,1000}|c{0,1000}|d{0,1000}|e)\"",
	  "regex too large once its repeats are expanded" },
	// Optional copies of a part that can match nothing cost the cube
	// of their count (tests/fuzz/corpus/coord_conf/oom-regcomp-empty-
	// copies: "(a{00}){0,863}", 4 GB); 101 is one past the budget.
	{ "a =~ \"(a{00}){0,863}\"", "can match nothing too often" },
	{ "a =~ \"(a?){0,101}\"", "can match nothing too often" },
	{ "a =~ \"(a|b?){0,500}\"", "can match nothing too often" },
	{ "a =~ \"(|b){0,101}\"", "can match nothing too often" },
	{ "a =~ \"(){0,101}\"", "can match nothing too often" },
	{ "a =~ \"((a?){0,31}){0,31}\"", "can match nothing too often" },
	{ "a =~ \"(a?){0,51}(b?){0,50}\"", "can match nothing too often" },
	{ "a =~ \"a?{0,101}\"", "can match nothing too often" },
	{ "a =~ \"(a*)*(b*)*(c{0,2}){0,100}\"",
	  "can match nothing too often" },
	{ NULL, NULL },
};

static void
test_matcher_parse_valid(void)
{
	const struct mp_ok *c;

	for (c = mp_ok_cases; c->in != NULL; c++) {
		struct coord_matcher m;
		char err[256] = "";
		int rv = coord_matcher_parse(&m, c->in, err, sizeof(err));

		if (rv != 0)
			printf("# \"%s\": %s\n", c->in, err);
		CHECK_INT(rv, 0);
		if (rv != 0)
			continue;
		CHECK_STR(m.name, c->name);
		CHECK_INT(m.op, c->op);
		CHECK_STR(m.value, c->value);
		coord_matcher_clear(&m);
		CHECK(m.name == NULL && m.value == NULL);
		coord_matcher_clear(&m); // twice is harmless
	}
	coord_matcher_clear(NULL);
}

static void
test_matcher_parse_invalid(void)
{
	const struct mp_bad *c;
	char long_val[1100], long_name[200];

	for (c = mp_bad_cases; c->in != NULL; c++) {
		struct coord_matcher m;
		char err[256] = "";
		int rv = coord_matcher_parse(&m, c->in, err, sizeof(err));

		if (rv != -EINVAL || strstr(err, c->why) == NULL)
			printf("# \"%s\": rv %d \"%s\"\n", c->in, rv, err);
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, c->why);
		CHECK(m.name == NULL && m.value == NULL); // left zeroed
		coord_matcher_clear(&m);
	}

	// Length bounds.
	{
		struct coord_matcher m;
		char err[256] = "", in[1300];

		memset(long_val, 'v', 1024);
		long_val[1024] = '\0';
		snprintf(in, sizeof(in), "a = \"%s\"", long_val);
		CHECK_INT(coord_matcher_parse(&m, in, err, sizeof(err)), 0);
		coord_matcher_clear(&m);
		memset(long_val, 'v', 1025);
		long_val[1025] = '\0';
		snprintf(in, sizeof(in), "a = \"%s\"", long_val);
		CHECK_INT(coord_matcher_parse(&m, in, err, sizeof(err)),
		    -EINVAL);
		CHECK_HAS(err, "value longer than 1024");
		memset(long_name, 'n', 129);
		long_name[129] = '\0';
		snprintf(in, sizeof(in), "%s = x", long_name);
		CHECK_INT(coord_matcher_parse(&m, in, err, sizeof(err)),
		    -EINVAL);
		CHECK_HAS(err, "label name longer than 128");
		CHECK_INT(coord_matcher_parse(&m, NULL, err, sizeof(err)),
		    -EINVAL);
	}
}

// ---- matching ------------------------------------------------------------

struct mm_case {
	const char *matcher;
	bool on_web;  // alert A: service="web"
	bool on_web2; // alert B: service="web2"
};

static const struct mm_case mm_cases[] = {
	{ "service = \"web\"", true, false },
	{ "service = web2", false, true },
	{ "service != \"web\"", false, true },
	{ "service != \"api\"", true, true },
	// Regexes are anchored at both ends.
	{ "service =~ \"web\"", true, false },
	{ "service =~ \"we\"", false, false },
	{ "service =~ \"eb\"", false, false },
	{ "service =~ \"w.*\"", true, true },
	{ "service =~ \"web|api\"", true, false },
	{ "service =~ \"api|web\"", true, false },
	{ "service =~ \"web[0-9]*\"", true, true },
	{ "service !~ \"web\"", false, true },
	{ "service !~ \"api\"", true, true },
	{ "service !~ \"web.*\"", false, false },
	// Case matters.
	{ "service = \"WEB\"", false, false },
	{ "service =~ \"WEB\"", false, false },
	// A missing label matches as "".
	{ "zone = \"\"", true, true },
	{ "zone != \"\"", false, false },
	{ "zone = \"x\"", false, false },
	{ "zone != \"x\"", true, true },
	{ "zone =~ \".*\"", true, true },
	{ "zone =~ \".+\"", false, false },
	{ "zone !~ \".+\"", true, true },
	{ "zone =~ \"\"", true, true },
	// Dots and escapes in an instance regex.
	{ "instance =~ \"10\\\\.0\\\\.0\\\\.7:.*\"", true, false },
	{ "instance =~ \"10.0.0.7:8080\"", true, false },
	{ "instance =~ \"10\\\\.0\\\\.0\\\\.7\"", false, false },
	// UTF-8 values compare bytewise.
	{ "team = \"\xc3\xa9quipe\"", true, false },
	{ "team =~ \"\xc3\xa9.*\"", true, false },
	{ NULL, false, false },
};

static void
test_matching_table(void)
{
	struct coord_alert *a = mk_alert("\"alertname\":\"X\",\"service\":"
	    "\"web\",\"instance\":\"10.0.0.7:8080\",\"team\":"
	    "\"\xc3\xa9quipe\"");
	struct coord_alert *b = mk_alert("\"alertname\":\"X\",\"service\":"
	    "\"web2\",\"instance\":\"10.0.0.70:8080\"");
	const struct mm_case *c;

	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	for (c = mm_cases; c->matcher != NULL; c++) {
		struct coord_matcher m;
		struct coord_rule r = { .matchers = &m, .n_matchers = 1 };
		char err[256] = "";

		if (coord_matcher_parse(&m, c->matcher, err,
		    sizeof(err)) != 0) {
			printf("# \"%s\": %s\n", c->matcher, err);
			CHECK(!"matcher parses");
			continue;
		}
		if (coord_rule_matches(&r, a) != c->on_web ||
		    coord_rule_matches(&r, b) != c->on_web2)
			printf("# \"%s\"\n", c->matcher);
		CHECK_INT(coord_rule_matches(&r, a), c->on_web);
		CHECK_INT(coord_rule_matches(&r, b), c->on_web2);
		coord_matcher_clear(&m);
	}
out:
	coord_alert_free(a);
	coord_alert_free(b);
}

static void
test_matching_all_must_match(void)
{
	struct coord_alert *a = mk_alert("\"alertname\":\"HighErrorRate\","
	    "\"service\":\"demo-api\"");
	struct coord_matcher m[3];
	struct coord_rule r = { .matchers = m, .n_matchers = 0 };
	char err[256];

	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK(coord_rule_matches(&r, a)); // no matchers: vacuously true
	CHECK_INT(coord_matcher_parse(&m[0], "alertname = HighErrorRate", err,
	    sizeof(err)), 0);
	CHECK_INT(coord_matcher_parse(&m[1], "service =~ \"demo-.*\"", err,
	    sizeof(err)), 0);
	CHECK_INT(coord_matcher_parse(&m[2], "severity = critical", err,
	    sizeof(err)), 0);
	r.n_matchers = 2;
	CHECK(coord_rule_matches(&r, a));
	r.n_matchers = 3;
	CHECK(!coord_rule_matches(&r, a));
	coord_matcher_clear(&m[0]);
	coord_matcher_clear(&m[1]);
	coord_matcher_clear(&m[2]);
	coord_alert_free(a);
}

// ---- templates -----------------------------------------------------------

struct tr_case {
	const char *tmpl;
	const char *want; // NULL: must fail
	const char *why;  // for failures
};

// Labels of the alert every case renders against.
#define TR_LABELS                                                          \
	"\"alertname\":\"HighErrorRate\",\"service\":\"web\","             \
	"\"namespace\":\"ns-a\",\"instance\":\"10.0.0.7:8080\","           \
	"\"dot\":\"x.\",\"trav\":\"../etc\",\"mid\":\"a/../b\","           \
	"\"dots\":\"..\",\"abs\":\"/etc/passwd\",\"dash\":\"-rf\","        \
	"\"space\":\"a b\",\"semi\":\"a;reboot\",\"subst\":\"$(x)\","      \
	"\"tick\":\"`id`\",\"pipe\":\"a|b\",\"amp\":\"a&b\","              \
	"\"gt\":\"a>b\",\"nl\":\"a\\nb\",\"tab\":\"a\\tb\","               \
	"\"del\":\"a\\u007fb\",\"esc\":\"a\\u001bb\",\"uni\":\"caf\\u00e9\"," \
	"\"empty\":\"\",\"star\":\"a*\",\"quote\":\"a'b\",\"bs\":\"a\\\\b\","    \
	"\"tail\":\"a..\",\"dotmid\":\"a.b.c\",\"slash\":\"a/b\""

static const struct tr_case tr_cases[] = {
	{ "{{ service }}", "web", NULL },
	{ "{{service}}", "web", NULL },
	{ "{{   service\t}}", "web", NULL },
	{ "{{ namespace }}/{{ service }}", "ns-a/web", NULL },
	{ "prefix-{{ service }}-suffix", "prefix-web-suffix", NULL },
	{ "{{ instance }}", "10.0.0.7:8080", NULL },
	{ "svc@{{ service }}:{{ namespace }}", "svc@web:ns-a", NULL },
	{ "plain-literal_1.2", "plain-literal_1.2", NULL },
	{ "{{ service }}{{ service }}", "webweb", NULL },
	// A placeholder alone takes a one-pass way; the same rules hold.
	{ "{{ dot }}", "x.", NULL },
	{ "{{ dotmid }}", "a.b.c", NULL },
	{ "{{ slash }}", "a/b", NULL },
	{ "{{ tail }}", NULL, "contains \"..\"" },
	{ "{{ service }} ", NULL, "outside" },
	// Missing labels.
	{ "{{ nope }}", NULL, "the alert has no label \"nope\"" },
	{ "a-{{ Service }}", NULL, "no label \"Service\"" },
	// Values that must never become a target.
	{ "{{ trav }}", NULL, "contains \"..\"" },
	{ "{{ mid }}", NULL, "contains \"..\"" },
	{ "{{ dots }}", NULL, "contains \"..\"" },
	{ "{{ dot }}.x", NULL, "contains \"..\"" },
	{ "{{ abs }}", NULL, "starts with '/'" },
	{ "{{ dash }}", NULL, "starts with '-'" },
	{ "{{ space }}", NULL, "outside [A-Za-z0-9._:/@-] at byte 1" },
	{ "{{ semi }}", NULL, "outside" },
	{ "{{ subst }}", NULL, "outside" },
	{ "{{ tick }}", NULL, "outside" },
	{ "{{ pipe }}", NULL, "outside" },
	{ "{{ amp }}", NULL, "outside" },
	{ "{{ gt }}", NULL, "outside" },
	{ "{{ nl }}", NULL, "\"a\\x0ab\" holds a character outside" },
	{ "{{ tab }}", NULL, "outside" },
	{ "{{ del }}", NULL, "outside" },
	{ "{{ esc }}", NULL, "outside" },
	{ "{{ uni }}", NULL, "outside" },
	{ "{{ star }}", NULL, "outside" },
	{ "{{ quote }}", NULL, "outside" },
	{ "{{ bs }}", NULL, "outside" },
	{ "{{ empty }}", NULL, "renders to an empty value" },
	{ "", NULL, "renders to an empty value" },
	// Broken templates.
	{ "{{ service", NULL, "unterminated placeholder" },
	{ "{{ service }", NULL, "unterminated placeholder" },
	{ "{{ }}", NULL, "placeholder needs a label name" },
	{ "{{ 9x }}", NULL, "placeholder needs a label name" },
	{ "{{ a-b }}", NULL, "unterminated placeholder" },
	{ "x }}", NULL, "}} without a matching {{" },
	{ "{{ service }}}", NULL, "outside" },
	{ "{service}", NULL, "outside" },
	{ NULL, NULL, NULL },
};

static void
test_template_render_table(void)
{
	struct coord_alert *a = mk_alert(TR_LABELS);
	const struct tr_case *c;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	for (c = tr_cases; c->tmpl != NULL; c++) {
		char *out = (char *)1, err[256] = "";
		int rv = coord_template_render(&out, c->tmpl, a, err,
		    sizeof(err));

		if (c->want != NULL) {
			if (rv != 0)
				printf("# \"%s\": %s\n", c->tmpl, err);
			CHECK_INT(rv, 0);
			if (rv == 0)
				CHECK_STR(out, c->want);
		} else {
			if (rv != -EINVAL || strstr(err, c->why) == NULL)
				printf("# \"%s\": rv %d \"%s\"\n", c->tmpl,
				    rv, err);
			CHECK_INT(rv, -EINVAL);
			CHECK_HAS(err, c->why);
			CHECK(out == NULL);
		}
		if (rv == 0)
			free(out);
	}
	coord_alert_free(a);
}

static void
test_template_length(void)
{
	char v253[300], v254[300], labels[700], *out = NULL, err[256] = "";
	struct coord_alert *a;

	memset(v253, 'x', 253);
	v253[253] = '\0';
	memset(v254, 'x', 254);
	v254[254] = '\0';
	snprintf(labels, sizeof(labels), "\"alertname\":\"A\",\"l253\":\"%s\","
	    "\"l254\":\"%s\"", v253, v254);
	a = mk_alert(labels);
	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK_INT(coord_template_render(&out, "{{ l253 }}", a, err,
	    sizeof(err)), 0);
	CHECK_INT(out != NULL ? strlen(out) : 0, 253);
	free(out);
	out = NULL;
	CHECK_INT(coord_template_render(&out, "{{ l254 }}", a, err,
	    sizeof(err)), -EINVAL);
	CHECK_HAS(err, "more than 253 bytes");
	CHECK_INT(coord_template_render(&out, "a{{ l253 }}", a, err,
	    sizeof(err)), -EINVAL);
	CHECK_HAS(err, "more than 253 bytes");
	// Many placeholders: the output stays bounded while rendering.
	CHECK_INT(coord_template_render(&out,
	    "{{l253}}{{l253}}{{l253}}{{l253}}{{l253}}", a, err, sizeof(err)),
	    -EINVAL);
	CHECK(out == NULL);
	coord_alert_free(a);
}

static void
test_template_check(void)
{
	static const char *const good[] = { "web", "{{ service }}",
		"{{a}}-{{b}}", "ns/{{ x }}", "{{ x }}/{{ y }}", "a.b:c@d",
		"x{{a}}.", NULL };
	static const struct {
		const char *t, *why;
	} bad[] = {
		{ "", "empty template" },
		{ "-{{ x }}", "starts with '-'" },
		{ "/{{ x }}", "starts with '/'" },
		{ "a..{{ x }}", "contains \"..\"" },
		{ "a b", "outside" },
		{ "$(reboot)", "outside" },
		{ "{{ x", "unterminated placeholder" },
		{ "{{ x }", "unterminated placeholder" },
		{ "}}", "}} without a matching {{" },
		{ "{{}}", "needs a label name" },
		{ "{x}", "outside" },
		{ NULL, NULL },
	};
	char err[256], big[300];
	size_t i;

	for (i = 0; good[i] != NULL; i++) {
		int rv = coord_template_check(good[i], err, sizeof(err));

		if (rv != 0)
			printf("# \"%s\": %s\n", good[i], err);
		CHECK_INT(rv, 0);
	}
	for (i = 0; bad[i].t != NULL; i++) {
		int rv = coord_template_check(bad[i].t, err, sizeof(err));

		if (rv != -EINVAL || strstr(err, bad[i].why) == NULL)
			printf("# \"%s\": rv %d \"%s\"\n", bad[i].t, rv, err);
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, bad[i].why);
	}
	memset(big, 'a', 254);
	big[254] = '\0';
	CHECK_INT(coord_template_check(big, err, sizeof(err)), -EINVAL);
	CHECK_HAS(err, "longer than 253");
	CHECK_INT(coord_template_check(NULL, err, sizeof(err)), -EINVAL);
}

// ---- config and plans ----------------------------------------------------

static const char full_yaml[] =
    "rules:\n"						// 1
    "  - name: demo-high-error-rate\n"			// 2
    "    matchers:\n"					// 3
    "      - alertname = \"HighErrorRate\"\n"		// 4
    "      - service =~ \"demo-.*\"   # anchored\n"	// 5
    "    cooldown: 10m\n"				// 6
    "    max_attempts: 3\n"				// 7
    "    continue: true\n"				// 8
    "    actions:\n"					// 9
    "      - type: restart\n"				// 10
    "        service: \"{{ service }}\"\n"		// 11
    "        instance: \"{{ instance }}\"\n"		// 12
    "        timeout: 200s\n"				// 13
    "        retries: 1\n"				// 14
    "        params: { reason: \"err-{{ alertname }}\", replicas: \"2\" }\n"
    "      - type: notify\n"				// 16
    "        service: \"{{ service }}\"\n"		// 17
    "  - name: scale-on-latency\n"			// 18
    "    matchers: [ 'alertname = HighLatency' ]\n"	// 19
    "    actions:\n"					// 20
    "      - type: scale_up\n"				// 21
    "        service: web\n"				// 22
    "        params:\n"					// 23
    "          replicas: \"3\"\n";			// 24

static void
test_config_loads_with_defaults(void)
{
	struct test_conf conf;
	struct coord_rules rs;
	const struct coord_rule_conf *r0, *r1;
	const struct coord_action_conf *a;
	char err[512] = "";
	int rv;

	rv = load_rules(full_yaml, &conf, &rs, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv != 0) {
		printf("# %s\n", err);
		return;
	}
	CHECK_INT(conf.rules.n, 2);
	CHECK_INT(rs.n, 2);
	r0 = rule_conf(&conf, 0);
	r1 = rule_conf(&conf, 1);
	CHECK_STR(r0->name, "demo-high-error-rate");
	CHECK_INT(r0->line, 2);
	CHECK_INT(r0->matchers.n, 2);
	CHECK_INT(r0->cooldown_ms, 600000);
	CHECK_INT(r0->max_attempts, 3);
	CHECK(r0->cont);
	CHECK_INT(r0->actions.n, 2);
	a = action_conf(r0, 0);
	CHECK_INT(a->line, 10);
	CHECK_INT(a->type, COORD_ACT_RESTART);
	CHECK_STR(a->service, "{{ service }}");
	CHECK_STR(a->instance, "{{ instance }}");
	CHECK_INT(a->timeout_ms, 200000);
	CHECK_INT(coord_action_timeout_ms(a), 200000);
	CHECK_INT(a->retries, 1);
	CHECK_INT(a->params.n, 2);
	CHECK_STR(cm_strmap_get(&a->params, "replicas"), "2");
	a = action_conf(r0, 1);
	CHECK_INT(a->line, 16);
	CHECK_INT(a->type, COORD_ACT_NOTIFY);
	CHECK_STR(a->instance, "");
	CHECK_INT(a->timeout_ms, 0);
	CHECK_INT(coord_action_timeout_ms(a), 300000);
	CHECK_INT(a->retries, 2); // 3 tries by default
	CHECK_INT(a->params.n, 0);

	// Defaults of the second rule.
	CHECK_INT(r1->line, 18);
	CHECK_INT(r1->cooldown_ms, 300000);
	CHECK_INT(r1->max_attempts, 2);
	CHECK(!r1->cont);
	a = action_conf(r1, 0);
	CHECK_INT(a->type, COORD_ACT_SCALE_UP);
	CHECK_INT(coord_action_timeout_ms(a), 600000);

	CHECK(rs.v[0].conf == r0);
	CHECK_INT(rs.v[0].n_matchers, 2);
	CHECK_INT(rs.v[0].matchers[1].op, COORD_MATCH_RE);
	CHECK_STR(rs.v[1].matchers[0].value, "HighLatency");
	coord_rules_clear(&rs);
	CHECK(rs.v == NULL && rs.n == 0);
	coord_rules_clear(&rs);
	cm_conf_free(&conf, test_fields);
}

static void
test_plan_full_config(void)
{
	struct coord_alert *hit = mk_alert("\"alertname\":\"HighErrorRate\","
	    "\"service\":\"demo-api\",\"instance\":\"10.0.0.7:8080\"");
	struct coord_alert *evil = mk_alert("\"alertname\":\"HighErrorRate\","
	    "\"service\":\"demo-x;reboot\",\"instance\":\"i\"");
	struct coord_alert *noinst = mk_alert("\"alertname\":\"HighErrorRate\","
	    "\"service\":\"demo-api\"");
	struct coord_alert *lat = mk_alert("\"alertname\":\"HighLatency\"");
	struct coord_plan *p = NULL;
	struct test_conf conf;
	struct coord_rules rs;
	char err[512] = "";
	size_t n = 99;
	int rv;

	CHECK(hit && evil && noinst && lat);
	if (!(hit && evil && noinst && lat))
		goto out_alerts;
	rv = load_rules(full_yaml, &conf, &rs, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv != 0)
		goto out_alerts;

	CHECK(coord_rule_matches(&rs.v[0], hit));
	CHECK(!coord_rule_matches(&rs.v[1], hit));
	CHECK(!coord_rule_matches(&rs.v[0], lat));
	CHECK(coord_rule_matches(&rs.v[1], lat));

	rv = coord_rule_plan(&rs.v[0], hit, &p, &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_INT(n, 2);
	if (rv == 0 && n == 2) {
		CHECK_INT(p[0].type, COORD_ACT_RESTART);
		CHECK(p[0].rule == &rs.v[0]);
		CHECK(p[0].act == action_conf(rule_conf(&conf, 0), 0));
		CHECK_INT(p[0].step, 0);
		CHECK_STR(p[0].service, "demo-api");
		CHECK_STR(p[0].instance, "10.0.0.7:8080");
		CHECK_INT(p[0].params.n, 2);
		CHECK_STR(cm_strmap_get(&p[0].params, "reason"),
		    "err-HighErrorRate");
		CHECK_STR(cm_strmap_get(&p[0].params, "replicas"), "2");
		CHECK_INT(p[1].type, COORD_ACT_NOTIFY);
		CHECK_INT(p[1].step, 1);
		CHECK_STR(p[1].service, "demo-api");
		CHECK_STR(p[1].instance, "");
		CHECK_INT(p[1].params.n, 0);
	}
	coord_plans_free(p, n);

	rv = coord_rule_plan(&rs.v[1], lat, &p, &n, err, sizeof(err));
	CHECK_INT(rv, 0);
	CHECK_INT(n, 1);
	if (rv == 0) {
		CHECK_STR(p[0].service, "web");
		CHECK_STR(cm_strmap_get(&p[0].params, "replicas"), "3");
	}
	coord_plans_free(p, n);

	// The regex lets "demo-x;reboot" match; the template stops it.
	CHECK(coord_rule_matches(&rs.v[0], evil));
	p = (void *)1;
	rv = coord_rule_plan(&rs.v[0], evil, &p, &n, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK(p == NULL);
	CHECK_INT(n, 0);
	CHECK_HAS(err, "actions[0].service: rendered value \"demo-x;reboot\"");

	// A label the template needs is missing: the whole plan fails.
	rv = coord_rule_plan(&rs.v[0], noinst, &p, &n, err, sizeof(err));
	CHECK_INT(rv, -EINVAL);
	CHECK(p == NULL);
	CHECK_HAS(err, "actions[0].instance: the alert has no label "
	    "\"instance\"");

	coord_rules_clear(&rs);
	cm_conf_free(&conf, test_fields);
out_alerts:
	coord_alert_free(hit);
	coord_alert_free(evil);
	coord_alert_free(noinst);
	coord_alert_free(lat);
}

static void
test_plan_param_error(void)
{
	static const char yaml[] =
	    "rules:\n"
	    "  - name: r\n"
	    "    matchers: [ 'alertname = A' ]\n"
	    "    actions:\n"
	    "      - type: switch_traffic\n"
	    "        service: svc\n"
	    "        params: { to: \"{{ zone }}\" }\n";
	struct coord_alert *a = mk_alert("\"alertname\":\"A\",\"zone\":"
	    "\"../x\"");
	struct coord_plan *p = NULL;
	struct test_conf conf;
	struct coord_rules rs;
	char err[512] = "";
	size_t n = 0;
	int rv;

	CHECK(a != NULL);
	if (a == NULL)
		return;
	rv = load_rules(yaml, &conf, &rs, err, sizeof(err));
	CHECK_INT(rv, 0);
	if (rv == 0) {
		rv = coord_rule_plan(&rs.v[0], a, &p, &n, err, sizeof(err));
		CHECK_INT(rv, -EINVAL);
		CHECK_HAS(err, "actions[0].params.to: rendered value "
		    "\"../x\" contains \"..\"");
		CHECK(p == NULL);
		coord_rules_clear(&rs);
		cm_conf_free(&conf, test_fields);
	}
	coord_alert_free(a);
}

struct cfg_bad {
	const char *name;
	const char *yaml;
	const char *msg;
};

#define R0 "rules:\n  - name: r0\n"
#define MA "    matchers: [ 'alertname = A' ]\n"
#define AC "    actions:\n      - type: restart\n        service: svc\n"

static const struct cfg_bad cfg_bad_cases[] = {
	{ "bad matcher names rule line",
	  R0 MA AC
	  "  - name: r1\n"
	  "    matchers:\n"
	  "      - alertname = A\n"
	  "      - service =~ \"(demo\"\n"
	  AC,
	  "test.yaml:7: rules[1].matchers[1]: unbalanced ( in regex "
	  "(rule \"r1\")" },
	{ "regex that repeats too much names the rule",
	  R0 MA AC
	  "  - name: nested\n"
	  "    matchers: ['service =~ \"(a{0,200}){0,200}\"']\n"
	  AC,
	  "test.yaml:7: rules[1].matchers[0]: regex repeats too much: "
	  "nested or stacked repetition multiplies to more than 1000 "
	  "copies (rule \"nested\")" },
	{ "matcher without operator",
	  R0 "    matchers: [ 'alertname' ]\n" AC,
	  "test.yaml:2: rules[0].matchers[0]: expected =, !=, =~ or !~" },
	{ "empty matchers",
	  R0 "    matchers: []\n" AC,
	  "test.yaml:2: rules[0]: matchers: at least one matcher" },
	{ "empty actions",
	  R0 MA "    actions: []\n",
	  "test.yaml:2: rules[0]: actions: at least one action" },
	{ "missing matchers", R0 AC, "rules[0].matchers" },
	{ "missing actions", R0 MA, "rules[0].actions" },
	{ "missing name", "rules:\n  - matchers: [ 'a = b' ]\n" AC,
	  "rules[0].name" },
	{ "unknown type",
	  R0 MA "    actions:\n      - type: reboot\n        service: s\n",
	  "test.yaml:5: rules[0].actions[0].type" },
	{ "missing service",
	  R0 MA "    actions:\n      - type: restart\n",
	  "rules[0].actions[0].service" },
	{ "max_attempts 0", R0 MA "    max_attempts: 0\n" AC,
	  "test.yaml:4: rules[0].max_attempts" },
	{ "max_attempts 101", R0 MA "    max_attempts: 101\n" AC,
	  "rules[0].max_attempts" },
	{ "retries 11",
	  R0 MA AC "        retries: 11\n",
	  "rules[0].actions[0].retries" },
	{ "bad cooldown", R0 MA "    cooldown: soon\n" AC,
	  "rules[0].cooldown" },
	{ "unknown rule key", R0 MA "    priority: 3\n" AC,
	  "rules[0].priority" },
	{ "broken service template",
	  R0 MA
	  "    actions:\n"
	  "      - type: restart\n"
	  "        service: svc\n"
	  "      - type: rollback\n"
	  "        service: \"{{ service\"\n",
	  "test.yaml:7: rules[0].actions[1]: service: unterminated "
	  "placeholder" },
	{ "service with a space",
	  R0 MA "    actions:\n      - type: restart\n        service: a b\n",
	  "test.yaml:5: rules[0].actions[0]: service: template \"a b\"" },
	{ "instance starting with a dash",
	  R0 MA AC "        instance: \"-{{ instance }}\"\n",
	  "rules[0].actions[0]: instance: template starts with '-'" },
	{ "param value with dots",
	  R0 MA AC "        params: { path: \"a/../b\" }\n",
	  "rules[0].actions[0]: params.path: template contains \"..\"" },
	{ "param key with a space",
	  R0 MA AC "        params: { \"a b\": \"x\" }\n",
	  "rules[0].actions[0]: params: key \"a b\"" },
	{ "duplicate rule names",
	  R0 MA AC "  - name: r0\n" MA AC,
	  "test.yaml:7: rules[1]: name: \"r0\" is already used by rules[0]" },
	{ NULL, NULL, NULL },
};

static void
test_config_errors(void)
{
	const struct cfg_bad *c;

	for (c = cfg_bad_cases; c->name != NULL; c++) {
		struct test_conf conf;
		struct coord_rules rs;
		char err[512] = "";
		int rv = load_rules(c->yaml, &conf, &rs, err, sizeof(err));

		if (rv >= 0 || strstr(err, c->msg) == NULL)
			printf("# case \"%s\": rv %d \"%s\"\n", c->name, rv,
			    err);
		CHECK(rv < 0);
		CHECK_HAS(err, c->msg);
		if (rv == 0) {
			coord_rules_clear(&rs);
			cm_conf_free(&conf, test_fields);
		} else {
			CHECK(rs.v == NULL && rs.n == 0);
		}
	}
}

static void
test_compile_empty_list(void)
{
	struct cm_list none = { 0 };
	struct coord_rules rs = { (void *)1, 5 };
	char err[64];

	CHECK_INT(coord_rules_compile(&rs, &none, "f", err, sizeof(err)), 0);
	CHECK(rs.v == NULL && rs.n == 0);
	coord_rules_clear(&rs);
	coord_rules_clear(NULL);
	coord_plans_free(NULL, 0);
}

static const struct tt_case cases[] = {
	{ "action names round-trip", test_action_names },
	{ "action timeouts default by type", test_action_timeouts },
	{ "matcher syntax: valid forms", test_matcher_parse_valid },
	{ "matcher syntax: invalid forms name the reason",
	  test_matcher_parse_invalid },
	{ "matching: ops, anchoring, missing labels", test_matching_table },
	{ "matching: every matcher must match", test_matching_all_must_match },
	{ "templates render or refuse unsafe values",
	  test_template_render_table },
	{ "templates are bounded to 253 bytes", test_template_length },
	{ "templates are checked at config time", test_template_check },
	{ "config loads with defaults and lines",
	  test_config_loads_with_defaults },
	{ "plans from a full config", test_plan_full_config },
	{ "plan fails on an unsafe param", test_plan_param_error },
	{ "config errors carry file and line", test_config_errors },
	{ "compiling no rules", test_compile_empty_list },
	{ NULL, NULL },
};

TT_MAIN(cases)
