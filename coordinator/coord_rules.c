// SPDX-License-Identifier: MIT
// coord_rules: rule config tables, label matchers, matching and the strict
// templating of action targets from alert labels.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_rules.h"

#include "cm_msg.h"

// Bounds on one matcher; the config file size bounds the rest.
#define MATCHER_MAX_NAME 128
#define MATCHER_MAX_VALUE 1024

// Duration bounds of the tables, in ms.
#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define MAX_COOLDOWN_MS (30LL * 24 * 3600 * 1000)

static const char *const action_names[COORD_ACT__COUNT + 1] = {
	[COORD_ACT_RESTART] = "restart",
	[COORD_ACT_SCALE_UP] = "scale_up",
	[COORD_ACT_SCALE_DOWN] = "scale_down",
	[COORD_ACT_SWITCH_TRAFFIC] = "switch_traffic",
	[COORD_ACT_ROLLBACK] = "rollback",
	[COORD_ACT_CLEAR_CACHE] = "clear_cache",
	[COORD_ACT_RELOAD_CONFIG] = "reload_config",
	[COORD_ACT_NOTIFY] = "notify",
	[COORD_ACT_RUN_JOB] = "run_job",
	[COORD_ACT_ADJUST_CONFIG] = "adjust_config",
	[COORD_ACT__COUNT] = NULL,
};

static const char *const rule_modes[] = { "live", "shadow", "approval",
	NULL };

static const struct cm_conf_field action_fields[] = {
	{ .key = "type", .type = CM_CONF_ENUM, .required = true,
	  .off = offsetof(struct coord_action_conf, type),
	  .choices = action_names,
	  .help = "restart, clear_cache, reload_config (agents); scale_up, "
		  "scale_down, switch_traffic, rollback, run_job, adjust_config "
		  "(kubernetes runtime); or notify" },
	{ .key = "service", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_action_conf, service),
	  .help = "target service; template with {{ label }} placeholders" },
	{ .key = "instance", .type = CM_CONF_STR, .def = "",
	  .off = offsetof(struct coord_action_conf, instance),
	  .help = "target instance (template); empty = the whole service" },
	{ .key = "timeout", .type = CM_CONF_DURATION, .def = "0s",
	  .off = offsetof(struct coord_action_conf, timeout_ms),
	  .min = 0, .max = MAX_TIMEOUT_MS,
	  .help = "action deadline; 0 = the type's default (restart 300s, "
		  "scale_* 600s, switch_traffic 120s, rollback 900s, "
		  "others 300s)" },
	{ .key = "retries", .type = CM_CONF_INT, .def = "2",
	  .off = offsetof(struct coord_action_conf, retries),
	  .min = 0, .max = 10,
	  .help = "retries after a failed try: 2 = 3 tries (critical "
		  "services get 1 try whatever this says)" },
	{ .key = "params", .type = CM_CONF_STRMAP,
	  .off = offsetof(struct coord_action_conf, params),
	  .help = "type-specific parameters; values are templates" },
	{ .key = "patch", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_action_conf, patch),
	  .help = "adjust_config: the merge patch, a JSON object" },
	{ .key = NULL },
};

static const struct cm_conf_field verify_fields[] = {
	{ .key = "interval", .type = CM_CONF_DURATION, .def = "30s",
	  .min = 100, .max = 3600000,
	  .off = offsetof(struct coord_verify_conf, interval_ms),
	  .help = "time between checks of health and promql (the first "
		  "comes after at most 1 s)" },
	{ .key = "timeout", .type = CM_CONF_DURATION, .def = "300s",
	  .min = 1000, .max = 86400000,
	  .off = offsetof(struct coord_verify_conf, timeout_ms),
	  .help = "recovery not seen by then: the verification ends "
		  "failed (a check says broken) or timeout, and escalates" },
	{ .key = "health", .type = CM_CONF_BOOL, .def = "true",
	  .off = offsetof(struct coord_verify_conf, health),
	  .help = "the agent reports the target healthy again" },
	{ .key = "resolved", .type = CM_CONF_BOOL, .def = "true",
	  .off = offsetof(struct coord_verify_conf, resolved),
	  .help = "the alert's resolved notification arrives" },
	{ .key = "promql", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_verify_conf, promql),
	  .help = "condition that returns samples while broken" },
	{ 0 },
};

const struct cm_conf_field coord_rule_fields[] = {
	{ .key = "name", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_rule_conf, name),
	  .help = "unique rule name, used in the journal and logs" },
	{ .key = "matchers", .type = CM_CONF_STRLIST, .required = true,
	  .off = offsetof(struct coord_rule_conf, matchers),
	  .help = "label matchers 'name op value' (= != =~ !~), all must "
		  "match; regexes are POSIX ERE, anchored, and nested or "
		  "stacked repeats may multiply to 1000 copies at most" },
	{ .key = "cooldown", .type = CM_CONF_DURATION, .def = "5m",
	  .off = offsetof(struct coord_rule_conf, cooldown_ms),
	  .min = 0, .max = MAX_COOLDOWN_MS,
	  .help = "the same action on the same target is not repeated "
		  "within this time" },
	{ .key = "max_attempts", .type = CM_CONF_INT, .def = "2",
	  .off = offsetof(struct coord_rule_conf, max_attempts),
	  .min = 1, .max = 100,
	  .help = "actions per incident before escalating (1..100)" },
	{ .key = "force", .type = CM_CONF_BOOL, .def = "false",
	  .off = offsetof(struct coord_rule_conf, force),
	  .help = "allow restarting services in safety.critical_services" },
	{ .key = "mode", .type = CM_CONF_ENUM, .def = "live",
	  .off = offsetof(struct coord_rule_conf, mode), .choices = rule_modes,
	  .help = "live, shadow (record only) or approval (operator decides)" },
	{ .key = "continue", .type = CM_CONF_BOOL, .def = "false",
	  .off = offsetof(struct coord_rule_conf, cont),
	  .help = "keep matching later rules after this one matched" },
	{ .key = "verify", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct coord_rule_conf, verify), .sub = verify_fields,
	  .help = "how to tell the repair worked" },
	{ .key = "escalation", .type = CM_CONF_LIST,
	  .off = offsetof(struct coord_rule_conf, escalation),
	  .sub = action_fields,
	  .elem_size = sizeof(struct coord_action_conf),
	  .line_off = CM_CONF_LINE(struct coord_action_conf, line),
	  .help = "next steps when verification fails, in order" },
	{ .key = "actions", .type = CM_CONF_LIST, .required = true,
	  .off = offsetof(struct coord_rule_conf, actions),
	  .sub = action_fields,
	  .elem_size = sizeof(struct coord_action_conf),
	  .line_off = CM_CONF_LINE(struct coord_action_conf, line),
	  .help = "actions run in order for a matching alert" },
	{ .key = NULL },
};

static int
errf(char *err, size_t errlen, int rv, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
errf(char *err, size_t errlen, int rv, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rv;
}


const char *
coord_action_name(enum coord_action_type t)
{
	if ((int)t < 0 || t >= COORD_ACT__COUNT)
		return NULL;
	return action_names[t];
}

int
coord_action_parse(const char *s)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < COORD_ACT__COUNT; i++)
		if (strcmp(s, action_names[i]) == 0)
			return i;
	return -1;
}

int64_t
coord_action_default_timeout_ms(enum coord_action_type t)
{
	switch (t) {
	case COORD_ACT_SCALE_UP:
	case COORD_ACT_SCALE_DOWN:
		return 600 * 1000;
	case COORD_ACT_SWITCH_TRAFFIC:
		return 120 * 1000;
	case COORD_ACT_ROLLBACK:
		return 900 * 1000;
	default:
		return 300 * 1000;
	}
}

int64_t
coord_action_timeout_ms(const struct coord_action_conf *act)
{
	if (act->timeout_ms > 0)
		return act->timeout_ms;
	return coord_action_default_timeout_ms(
	    (enum coord_action_type)act->type);
}

// ---- Matchers ------------------------------------------------------------

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

static const char *
skip_space(const char *s)
{
	while (is_space(*s))
		s++;
	return s;
}

// Characters an unquoted value may hold: no space, quote, backslash, or
// the characters of the operators and of Alertmanager's {a="b",c="d"}
// list syntax. Anything else needs quotes.
static bool
bare_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f && strchr("\"'\\{},=!~`", c) == NULL;
}

// Parses the quoted value starting at the opening quote into out (at
// least strlen(s) + 1 bytes). Returns the byte after the closing quote, or
// NULL with a reason.
static const char *
parse_quoted(const char *s, char *out, const char **reason)
{
	size_t o = 0;

	for (s++; *s != '"'; s++) {
		if (*s == '\0') {
			*reason = "unterminated quoted value";
			return NULL;
		}
		if (*s == '\\') {
			s++;
			if (*s != '"' && *s != '\\') {
				*reason = "only \\\" and \\\\ escapes are "
					  "allowed in a quoted value";
				return NULL;
			}
		}
		out[o++] = *s;
	}
	out[o] = '\0';
	return s + 1;
}

// Returns the index just past the bracket expression opening at v[i], or
// 0 if it is not closed.
static size_t
skip_bracket(const char *v, size_t i)
{
	size_t j = i + 1;

	if (v[j] == '^')
		j++;
	if (v[j] == ']')
		j++; // a leading ']' is literal
	for (; v[j] != '\0'; j++) {
		if (v[j] == '[' &&
		    (v[j + 1] == ':' || v[j + 1] == '=' || v[j + 1] == '.')) {
			char kind = v[j + 1];

			// [:class:] [=equiv=] [.coll.]
			for (j += 2; v[j] != '\0'; j++)
				if (v[j] == kind && v[j + 1] == ']')
					break;
			if (v[j] == '\0')
				return 0;
			j++;
			continue;
		}
		if (v[j] == ']')
			return j + 1;
	}
	return 0;
}

// Repetition budget. glibc's regcomp copies a repeated subtree once per
// count (x{m,n} becomes n copies, x+ two) and builds closures over the
// copies, so nested or stacked repeats cost the product of their counts:
// "(a{0,200}){0,200}" takes 260 MB, and every stacked '+' doubles the
// tree ("x++++...", 70 of them, runs out of memory). As RE2 does, refuse
// a regex whose counts multiply beyond REGEX_MAX_REPEAT along a nesting
// path; and since side-by-side repeats add up (92 "(a{0,1000})" fit in a
// matcher and take 800 MB), also one whose atoms, counted once per copy,
// exceed REGEX_MAX_COPIES. A third cost grows with the cube of its
// count: optional copies of a piece that can itself match nothing
// ("(a?){0,200}" 48 MB, "(a|b?){0,500}" 2 GB, "(a{0}){0,863}" fails
// after 4 GB; found by fuzzing), where each copy's closure takes in all
// those after it; such copies, summed over the regex and multiplied
// through nesting, may not exceed REGEX_MAX_EMPTY ("(a{0,10}){0,100}":
// 36 MB). Exact counts of them and optional copies of a piece that
// cannot match nothing ("a{0,1000}": 17 MB) stay cheap.
#define REGEX_MAX_REPEAT 1000
#define REGEX_MAX_COPIES 4000
#define REGEX_MAX_EMPTY 100

// Cost of a piece of regex: the largest product of counts along a path
// through it, its atoms counted once per copy, whether it can match the
// empty string, and its optional copies of pieces that can (see above).
// A group also keeps, while it is read, whether its current alternative
// can match nothing so far and whether an earlier one could.
struct rx_cost {
	uint64_t path;
	uint64_t size;
	uint64_t empty;
	bool nullable;
	bool alt_null, any_null;
};

// Reads the interval "{m}", "{m,}", "{m,n}", "{,n}" or "{,}" at v[*i]
// (glibc takes a missing m as 0); on success returns how many copies
// glibc makes (n; m + 1, at least 2 like '*', when unbounded) and moves *i
// past the '}'. Returns 0 when v[*i] does not start an interval (regcomp
// then decides what the '{' is). Counts saturate at 100000, far above
// both the budget and RE_DUP_MAX.
static uint64_t
rx_interval(const char *v, size_t *i, uint64_t *min)
{
	uint64_t num[2] = { 0, 0 };
	size_t j = *i + 1;
	int k = 0, digits = 0;
	bool comma = false;

	for (; v[j] != '}'; j++) {
		if (v[j] >= '0' && v[j] <= '9') {
			if (num[k] < 100000)
				num[k] = num[k] * 10 + (uint64_t)(v[j] - '0');
			digits++;
		} else if (v[j] == ',' && !comma) {
			comma = true;
			k = 1;
		} else {
			return 0;
		}
	}
	if (digits == 0 && !comma)
		return 0;
	*i = j + 1;
	*min = num[0];
	if (!comma)
		return num[0] > 0 ? num[0] : 1;
	if (v[j - 1] == ',') // {m,}: m copies and a star
		return num[0] + 1 > 2 ? num[0] + 1 : 2;
	return num[1] > num[0] ? num[1] : (num[0] > 0 ? num[0] : 1);
}

// Adds the finished piece `p` to the enclosing group `g`.
static const char *
rx_add(struct rx_cost *g, const struct rx_cost *p)
{
	if (p->path > g->path)
		g->path = p->path;
	g->size += p->size;
	g->empty += p->empty;
	g->alt_null = g->alt_null && p->nullable;
	if (g->size > REGEX_MAX_COPIES)
		return "regex too large once its repeats are expanded (more "
		       "than 4000 copies of its atoms)";
	if (g->empty > REGEX_MAX_EMPTY)
		return "regex repeats a part that can match nothing too "
		       "often (more than 100 optional copies)";
	return NULL;
}

// Applies a repetition of `copies` copies, `min` of them required, to
// `p`; `zero`: the whole may match nothing (min 0).
static const char *
rx_repeat(struct rx_cost *p, uint64_t copies, uint64_t min)
{
	uint64_t optional = copies > min ? copies - min : 0;

	// p->path <= the budget and copies <= 100001: no overflow; nor
	// for empty (<= REGEX_MAX_EMPTY before).
	p->path *= copies;
	p->size *= copies;
	p->empty = p->empty * copies + (p->nullable ? optional : 0);
	p->nullable = p->nullable || min == 0;
	if (p->path > REGEX_MAX_REPEAT)
		return "regex repeats too much: nested or stacked repetition "
		       "multiplies to more than 1000 copies";
	if (p->empty > REGEX_MAX_EMPTY)
		return "regex repeats a part that can match nothing too "
		       "often (more than 100 optional copies)";
	return NULL;
}

// Checks the repetition budget of a regex whose brackets are closed and
// parentheses balanced (regex_precheck checks that first). Weights:
// '*' and '+' 2, '?' 1, an interval its largest count; stacked operators
// multiply, as do the operators of nested groups.
static const char *
regex_repeat_check(const char *v)
{
	// [0] is the whole regex, [d] the innermost open group; every '('
	// has its ')', so a 1024-byte value opens at most 512.
	// A group as it opens: one copy of itself, nothing read yet.
	static const struct rx_cost open = { .path = 1, .size = 1,
		.alt_null = true };
	// Nothing: adds nothing, and leaves an alternative as it was.
	static const struct rx_cost none = { .nullable = true };
	struct rx_cost g[MATCHER_MAX_VALUE / 2 + 2], last = none;
	const char *why;
	size_t i = 0, d = 0;
	uint64_t w, min;

	g[0] = open;
	g[0].size = 0;
	while (v[i] != '\0') {
		char c = v[i];

		min = 0;
		if (c == '*' || c == '+' || c == '?' ||
		    (c == '{' && (w = rx_interval(v, &i, &min)) > 0)) {
			if (c != '{') {
				w = c == '?' ? 1 : 2;
				min = c == '+' ? 1 : 0;
				i++;
			}
			why = rx_repeat(&last, w, min);
			if (why != NULL)
				return why;
			continue;
		}
		why = rx_add(&g[d], &last);
		if (why != NULL)
			return why;
		last = none;
		if (c == '(') {
			if (d + 1 >= sizeof(g) / sizeof(g[0]))
				return "regex nests groups too deeply";
			g[++d] = open;
			i++;
		} else if (c == ')') {
			last = g[d--];
			last.nullable = last.any_null || last.alt_null;
			i++;
		} else if (c == '|') {
			g[d].any_null = g[d].any_null || g[d].alt_null;
			g[d].alt_null = true;
			i++;
		} else {
			last = (struct rx_cost){ .path = 1, .size = 1 };
			if (c == '\\')
				i += 2;
			else if (c == '[')
				i = skip_bracket(v, i);
			else
				i++;
		}
	}
	return rx_add(&g[0], &last);
}

// Checks what regcomp would accept but must not be: a ')' without '('
// (glibc takes it as a literal, and "a)|(b" would escape the ^( )$ anchor
// wrapper), back-references and backslash-letter escapes (glibc reads
// "\d" as "d", while Alertmanager's RE2 reads a digit class: reject
// rather than silently match something else), and repetition beyond the
// budget above.
static const char *
regex_precheck(const char *v)
{
	size_t i = 0;
	int depth = 0;

	while (v[i] != '\0') {
		char c = v[i];

		if (c == '\\') {
			char e = v[i + 1];

			if (e == '\0')
				return "trailing backslash in regex";
			if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') ||
			    (e >= 'A' && e <= 'Z'))
				return "backslash before a letter or digit is "
				       "not portable in POSIX ERE (use [0-9], "
				       "[[:space:]] and the like)";
			i += 2;
			continue;
		}
		if (c == '[') {
			size_t j = skip_bracket(v, i);

			if (j == 0)
				return "unterminated [ in regex";
			i = j;
			continue;
		}
		if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (depth == 0)
				return "unbalanced ) in regex";
			depth--;
		}
		i++;
	}
	if (depth != 0)
		return "unbalanced ( in regex";
	return regex_repeat_check(v);
}

static int
matcher_regcomp(struct coord_matcher *m, char *err, size_t errlen)
{
	const char *why = regex_precheck(m->value);
	size_t n = strlen(m->value);
	char *pat;
	int rc;

	if (why != NULL)
		return errf(err, errlen, -EINVAL, "%s", why);
	pat = malloc(n + 5);
	if (pat == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	memcpy(pat, "^(", 2);
	memcpy(pat + 2, m->value, n);
	memcpy(pat + 2 + n, ")$", 3);
	rc = regcomp(&m->re, pat, REG_EXTENDED | REG_NOSUB);
	free(pat);
	if (rc != 0) {
		char msg[128];

		regerror(rc, &m->re, msg, sizeof(msg));
		return errf(err, errlen, -EINVAL, "invalid regex: %s", msg);
	}
	return 0;
}

static int
value_check(const char *v, char *err, size_t errlen)
{
	size_t n = strlen(v), i;

	if (n > MATCHER_MAX_VALUE)
		return errf(err, errlen, -EINVAL,
		    "value longer than %d bytes", MATCHER_MAX_VALUE);
	if (!cm_utf8_valid(v, n))
		return errf(err, errlen, -EINVAL, "value is not valid UTF-8");
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return errf(err, errlen, -EINVAL,
			    "control character in value");
	return 0;
}

static const char *
parse_op(const char *s, enum coord_match_op *op)
{
	if (strncmp(s, "=~", 2) == 0)
		*op = COORD_MATCH_RE;
	else if (strncmp(s, "!~", 2) == 0)
		*op = COORD_MATCH_NRE;
	else if (strncmp(s, "!=", 2) == 0)
		*op = COORD_MATCH_NE;
	else if (s[0] == '=')
		*op = COORD_MATCH_EQ;
	else
		return NULL;
	return s + (*op == COORD_MATCH_EQ ? 1 : 2);
}

// Reads the value at s (quoted or bare) into out; returns the rest.
static const char *
parse_value(const char *s, char *out, const char **reason)
{
	size_t o = 0;

	if (*s == '"')
		return parse_quoted(s, out, reason);
	while (*s != '\0' && !is_space(*s)) {
		if (!bare_ok((unsigned char)*s)) {
			*reason = "unquoted value holds a character that "
				  "needs quotes";
			return NULL;
		}
		out[o++] = *s++;
	}
	out[o] = '\0';
	if (o == 0) {
		*reason = "missing value (write \"\" for an empty one)";
		return NULL;
	}
	return s;
}

int
coord_matcher_parse(struct coord_matcher *m, const char *s, char *err,
    size_t errlen)
{
	const char *p, *name, *reason = NULL;
	size_t name_len;
	char *val = NULL;
	int rv;

	memset(m, 0, sizeof(*m));
	if (s == NULL)
		return errf(err, errlen, -EINVAL, "empty matcher");
	p = skip_space(s);
	name = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	    *p == '_' || (p > name && *p >= '0' && *p <= '9'))
		p++;
	name_len = (size_t)(p - name);
	if (name_len == 0)
		return errf(err, errlen, -EINVAL,
		    "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
	if (name_len > MATCHER_MAX_NAME)
		return errf(err, errlen, -EINVAL,
		    "label name longer than %d bytes", MATCHER_MAX_NAME);
	p = parse_op(skip_space(p), &m->op);
	if (p == NULL)
		return errf(err, errlen, -EINVAL,
		    "expected =, !=, =~ or !~ after the label name");
	p = skip_space(p);

	val = malloc(strlen(p) + 1);
	m->name = strndup(name, name_len);
	if (val == NULL || m->name == NULL) {
		rv = errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	p = parse_value(p, val, &reason);
	if (p == NULL) {
		rv = errf(err, errlen, -EINVAL, "%s", reason);
		goto fail;
	}
	if (*skip_space(p) != '\0') {
		rv = errf(err, errlen, -EINVAL,
		    "unexpected text after the value");
		goto fail;
	}
	rv = value_check(val, err, errlen);
	if (rv < 0)
		goto fail;
	m->value = val;
	val = NULL;
	if (m->op == COORD_MATCH_RE || m->op == COORD_MATCH_NRE) {
		rv = matcher_regcomp(m, err, errlen);
		if (rv < 0)
			goto fail;
	}
	return 0;
fail:
	free(val);
	free(m->name);
	free(m->value);
	memset(m, 0, sizeof(*m));
	return rv;
}

void
coord_matcher_clear(struct coord_matcher *m)
{
	if (m == NULL)
		return;
	// A parsed RE/NRE matcher always holds a compiled regex; a failed
	// parse leaves the struct zeroed (name NULL).
	if (m->name != NULL &&
	    (m->op == COORD_MATCH_RE || m->op == COORD_MATCH_NRE))
		regfree(&m->re);
	free(m->name);
	free(m->value);
	memset(m, 0, sizeof(*m));
}

static bool
matcher_matches(const struct coord_matcher *m, const struct coord_alert *a)
{
	const char *v = coord_kvs_get(&a->labels, m->name);

	if (v == NULL)
		v = "";
	switch (m->op) {
	case COORD_MATCH_EQ:
		return strcmp(v, m->value) == 0;
	case COORD_MATCH_NE:
		return strcmp(v, m->value) != 0;
	case COORD_MATCH_RE:
		return regexec(&m->re, v, 0, NULL, 0) == 0;
	case COORD_MATCH_NRE:
		return regexec(&m->re, v, 0, NULL, 0) != 0;
	}
	return false;
}

bool
coord_rule_matches(const struct coord_rule *r, const struct coord_alert *a)
{
	size_t i;

	for (i = 0; i < r->n_matchers; i++)
		if (!matcher_matches(&r->matchers[i], a))
			return false;
	return true;
}

// ---- Templates -----------------------------------------------------------

enum tok_kind { TOK_END, TOK_LIT, TOK_VAR, TOK_ERR };

struct tok {
	enum tok_kind kind;
	const char *s; // LIT: text; VAR: label name; ERR: reason
	size_t n;
};

// Returns the next token of the template at *pp and advances *pp.
static struct tok
tmpl_next(const char **pp)
{
	const char *p = *pp, *start;
	struct tok t = { .kind = TOK_END };

	if (*p == '\0')
		return t;
	if (p[0] == '{' && p[1] == '{') {
		p = skip_space(p + 2);
		start = p;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '_' || (p > start && *p >= '0' && *p <= '9'))
			p++;
		t.kind = TOK_VAR;
		t.s = start;
		t.n = (size_t)(p - start);
		p = skip_space(p);
		if (t.n == 0 || t.n > MATCHER_MAX_NAME) {
			t.kind = TOK_ERR;
			t.s = "placeholder needs a label name, as in "
			      "{{ instance }}";
		} else if (p[0] != '}' || p[1] != '}') {
			t.kind = TOK_ERR;
			t.s = "unterminated placeholder (missing }})";
		} else {
			*pp = p + 2;
		}
		return t;
	}
	start = p;
	while (*p != '\0' && !(p[0] == '{' && p[1] == '{')) {
		if (p[0] == '}' && p[1] == '}') {
			t.kind = TOK_ERR;
			t.s = "}} without a matching {{";
			return t;
		}
		p++;
	}
	t.kind = TOK_LIT;
	t.s = start;
	t.n = (size_t)(p - start);
	*pp = p;
	return t;
}

static bool
target_char_ok(unsigned char c)
{
	switch (c) { // no strchr: every rendered byte of every alert
	case '.': case '_': case ':': case '/': case '@': case '-':
		return true;
	default:
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
	}
}

// The rules of the header for a rendered value.
static int
rendered_check(const char *v, char *err, size_t errlen)
{
	char sbuf[200];
	size_t n = strlen(v), i;

	if (n == 0)
		return errf(err, errlen, -EINVAL, "renders to an empty value");
	if (n > COORD_TMPL_MAX)
		return errf(err, errlen, -EINVAL,
		    "renders to more than %d bytes", COORD_TMPL_MAX);
	for (i = 0; i < n; i++)
		if (!target_char_ok((unsigned char)v[i]))
			return errf(err, errlen, -EINVAL,
			    "rendered value \"%s\" holds a character outside "
			    "[A-Za-z0-9._:/@-] at byte %zu",
			    coord_safe_str(sbuf, sizeof(sbuf), v), i);
	if (strstr(v, "..") != NULL)
		return errf(err, errlen, -EINVAL,
		    "rendered value \"%s\" contains \"..\"",
		    coord_safe_str(sbuf, sizeof(sbuf), v));
	if (v[0] == '/' || v[0] == '-')
		return errf(err, errlen, -EINVAL,
		    "rendered value \"%s\" starts with '%c'",
		    coord_safe_str(sbuf, sizeof(sbuf), v), v[0]);
	return 0;
}

int
coord_template_check(const char *tmpl, char *err, size_t errlen)
{
	const char *p = tmpl;
	size_t lit_len = 0, i;
	char sbuf[200];
	struct tok t;
	bool first = true;

	if (tmpl == NULL || tmpl[0] == '\0')
		return errf(err, errlen, -EINVAL, "empty template");
	for (t = tmpl_next(&p); t.kind != TOK_END; t = tmpl_next(&p)) {
		if (t.kind == TOK_ERR)
			return errf(err, errlen, -EINVAL, "%s", t.s);
		if (t.kind == TOK_VAR) {
			first = false;
			continue;
		}
		for (i = 0; i < t.n; i++)
			if (!target_char_ok((unsigned char)t.s[i]))
				return errf(err, errlen, -EINVAL,
				    "template \"%s\" holds a character "
				    "outside [A-Za-z0-9._:/@-] or {{ label }}",
				    coord_safe_str(sbuf, sizeof(sbuf), tmpl));
		if (first && (t.s[0] == '/' || t.s[0] == '-'))
			return errf(err, errlen, -EINVAL,
			    "template starts with '%c'", t.s[0]);
		if (memmem(t.s, t.n, "..", 2) != NULL)
			return errf(err, errlen, -EINVAL,
			    "template contains \"..\"");
		lit_len += t.n;
		first = false;
	}
	if (lit_len > COORD_TMPL_MAX)
		return errf(err, errlen, -EINVAL,
		    "template text longer than %d bytes", COORD_TMPL_MAX);
	return 0;
}

// Copies a label value into out (COORD_TMPL_MAX + 1 bytes) if it passes
// every rule of rendered_check, in one pass. Returns its length, or 0
// when it does not pass (rendered_check then says why).
static size_t
value_copy_ok(char *out, const char *v)
{
	size_t i;

	for (i = 0; v[i] != '\0'; i++) {
		unsigned char c = (unsigned char)v[i];

		if (i == COORD_TMPL_MAX || !target_char_ok(c) ||
		    (c == '.' && v[i + 1] == '.'))
			return 0;
		out[i] = (char)c;
	}
	if (i == 0 || v[0] == '/' || v[0] == '-')
		return 0;
	out[i] = '\0';
	return i;
}

// Renders `tmpl` into out (COORD_TMPL_MAX + 1 bytes) and checks the
// result; *ret_len: its length. Returns 0 or -EINVAL (reason in err).
static int
render_into(char *out, size_t *ret_len, const char *tmpl,
    const struct coord_alert *a, char *err, size_t errlen)
{
	char name[MATCHER_MAX_NAME + 1];
	const char *p = tmpl, *v;
	size_t o = 0, n;
	struct tok t;
	int rv;

	if (tmpl == NULL)
		return errf(err, errlen, -EINVAL, "empty template");
	// A placeholder alone ("{{ service }}", most templates) whose value
	// passes: one pass over the value. Anything else, and every error,
	// takes the general way below.
	t = tmpl_next(&p);
	if (t.kind == TOK_VAR && *p == '\0') {
		memcpy(name, t.s, t.n);
		name[t.n] = '\0';
		v = coord_kvs_get(&a->labels, name);
		if (v != NULL && (n = value_copy_ok(out, v)) > 0) {
			*ret_len = n;
			return 0;
		}
	}
	p = tmpl;
	for (t = tmpl_next(&p); t.kind != TOK_END; t = tmpl_next(&p)) {
		if (t.kind == TOK_ERR)
			return errf(err, errlen, -EINVAL, "%s", t.s);
		if (t.kind == TOK_LIT) {
			v = t.s;
			n = t.n;
		} else {
			memcpy(name, t.s, t.n);
			name[t.n] = '\0';
			v = coord_kvs_get(&a->labels, name);
			if (v == NULL)
				return errf(err, errlen, -EINVAL,
				    "the alert has no label \"%s\"", name);
			n = strlen(v);
		}
		if (n > COORD_TMPL_MAX - o)
			return errf(err, errlen, -EINVAL,
			    "renders to more than %d bytes", COORD_TMPL_MAX);
		memcpy(out + o, v, n);
		o += n;
	}
	out[o] = '\0';
	// A label value holding a NUL cannot occur (the parser rejects it),
	// so strlen(out) == o and the check below sees every byte.
	rv = rendered_check(out, err, errlen);
	if (rv < 0)
		return rv;
	*ret_len = o;
	return 0;
}

int
coord_template_render(char **ret, const char *tmpl,
    const struct coord_alert *a, char *err, size_t errlen)
{
	char out[COORD_TMPL_MAX + 1];
	size_t n;
	int rv;

	*ret = NULL;
	rv = render_into(out, &n, tmpl, a, err, errlen);
	if (rv < 0)
		return rv;
	*ret = malloc(n + 1);
	if (*ret == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	memcpy(*ret, out, n + 1);
	return 0;
}

// ---- Plans ---------------------------------------------------------------

static void
plan_clear(struct coord_plan *p)
{
	size_t i;

	free(p->service); // and the instance, in the same block
	for (i = 0; i < p->params.n; i++) {
		free(p->params.keys[i]);
		free(p->params.vals[i]);
	}
	free(p->params.keys);
	free(p->params.vals);
	memset(p, 0, sizeof(*p));
}

void
coord_plans_free(struct coord_plan *p, size_t n)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < n; i++)
		plan_clear(&p[i]);
	free(p);
}

static int
plan_params(struct coord_plan *pl, const struct cm_strmap *src, size_t step,
    const struct coord_alert *a, char *err, size_t errlen)
{
	char why[256];
	size_t i;
	int rv;

	if (src->n == 0)
		return 0;
	pl->params.keys = calloc(src->n, sizeof(char *));
	pl->params.vals = calloc(src->n, sizeof(char *));
	if (pl->params.keys == NULL || pl->params.vals == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (i = 0; i < src->n; i++) {
		pl->params.keys[i] = strdup(src->keys[i]);
		pl->params.n++;
		if (pl->params.keys[i] == NULL)
			return errf(err, errlen, -ENOMEM, "out of memory");
		rv = coord_template_render(&pl->params.vals[i], src->vals[i],
		    a, why, sizeof(why));
		if (rv < 0)
			return errf(err, errlen, rv,
			    "actions[%zu].params.%s: %s", step, src->keys[i],
			    why);
	}
	return 0;
}

static int
plan_one(struct coord_plan *pl, const struct coord_rule *r,
    const struct cm_list *list, size_t step, const struct coord_alert *a,
    char *err, size_t errlen)
{
	const struct coord_action_conf *act =
	    &((const struct coord_action_conf *)list->v)[step];
	char why[256], svc[COORD_TMPL_MAX + 1], inst[COORD_TMPL_MAX + 1];
	size_t n_svc, n_inst = 0;
	int rv;

	if (act->type < 0 || act->type >= COORD_ACT__COUNT)
		return errf(err, errlen, -EINVAL, "actions[%zu]: bad type %d",
		    step, act->type);
	pl->type = (enum coord_action_type)act->type;
	pl->rule = r;
	pl->act = act;
	pl->step = step;
	rv = render_into(svc, &n_svc, act->service, a, why, sizeof(why));
	if (rv < 0)
		return errf(err, errlen, rv, "actions[%zu].service: %s", step,
		    why);
	inst[0] = '\0';
	if (act->instance != NULL && act->instance[0] != '\0') {
		rv = render_into(inst, &n_inst, act->instance, a, why,
		    sizeof(why));
		if (rv < 0)
			return errf(err, errlen, rv,
			    "actions[%zu].instance: %s", step, why);
	}
	// One allocation for both, as every alert is planned:
	// "service\0instance\0".
	pl->service = malloc(n_svc + n_inst + 2);
	if (pl->service == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	memcpy(pl->service, svc, n_svc + 1);
	pl->instance = pl->service + n_svc + 1;
	memcpy(pl->instance, inst, n_inst + 1);
	return plan_params(pl, &act->params, step, a, err, errlen);
}

int
coord_rule_plan(const struct coord_rule *r, const struct coord_alert *a,
    struct coord_plan **ret, size_t *ret_n, char *err, size_t errlen)
{
	size_t n = r->conf->actions.n, i;
	struct coord_plan *plans;
	int rv;

	*ret = NULL;
	*ret_n = 0;
	if (n == 0)
		return 0;
	// Not calloc: each plan is zeroed as it is made (cheaper per alert).
	plans = malloc(n * sizeof(*plans));
	if (plans == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		plans[i] = (struct coord_plan){ 0 };
		rv = plan_one(&plans[i], r, &r->conf->actions, i, a, err,
		    errlen);
		if (rv < 0) {
			coord_plans_free(plans, i + 1);
			return rv;
		}
	}
	*ret = plans;
	*ret_n = n;
	return 0;
}

int
coord_rules_plan(const struct coord_rules *rules, const struct coord_alert *a,
    struct coord_plan **ret, size_t *ret_n, char *err, size_t errlen)
{
	struct coord_plan *all = NULL;
	size_t n_all = 0;

	*ret = NULL;
	*ret_n = 0;
	for (size_t i = 0; i < rules->n; i++) {
		struct coord_plan *p, *grown;
		size_t n;
		int rv;

		if (!coord_rule_matches(&rules->v[i], a))
			continue;
		rv = coord_rule_plan(&rules->v[i], a, &p, &n, err, errlen);
		if (rv < 0) {
			coord_plans_free(all, n_all);
			return rv;
		}
		if (all == NULL) { // the first plans: taken as they are
			all = p;
			n_all = n;
		} else {
			grown = realloc(all, (n_all + n) * sizeof(*all));
			if (grown == NULL) {
				coord_plans_free(p, n);
				coord_plans_free(all, n_all);
				return -ENOMEM;
			}
			all = grown;
			memcpy(all + n_all, p, n * sizeof(*p));
			n_all += n;
			free(p); // elements moved into `all`
		}
		if (!rules->v[i].conf->cont)
			break;
	}
	*ret = all;
	*ret_n = n_all;
	return 0;
}

void
coord_rules_label_names_free(char **names, size_t n)
{
	for (size_t i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

// Adds the first k bytes of s to the name list unless it is there.
static int
names_add(char ***v, size_t *n, size_t *cap, const char *s, size_t k)
{
	char *d;

	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == k && memcmp((*v)[i], s, k) == 0)
			return 0;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		char **g = realloc(*v, c * sizeof(*g));

		if (g == NULL)
			return -ENOMEM;
		*v = g;
		*cap = c;
	}
	d = strndup(s, k);
	if (d == NULL)
		return -ENOMEM;
	(*v)[(*n)++] = d;
	return 0;
}

// The placeholders of one template (NULL or "" has none).
static int
names_of_template(char ***v, size_t *n, size_t *cap, const char *tmpl)
{
	const char *p = tmpl;
	struct tok t;
	int rv;

	if (tmpl == NULL)
		return 0;
	for (t = tmpl_next(&p); t.kind != TOK_END; t = tmpl_next(&p)) {
		if (t.kind == TOK_ERR)
			return -EINVAL;
		if (t.kind == TOK_VAR &&
		    (rv = names_add(v, n, cap, t.s, t.n)) < 0)
			return rv;
	}
	return 0;
}

int
coord_rules_label_names(const struct coord_rules *rules, char ***ret,
    size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rv = 0;

	for (size_t i = 0; rv == 0 && i < rules->n; i++) {
		const struct coord_rule *r = &rules->v[i];
		const struct coord_action_conf *acts = r->conf->actions.v;

		for (size_t k = 0; rv == 0 && k < r->n_matchers; k++)
			rv = names_add(&v, &n, &cap, r->matchers[k].name,
			    strlen(r->matchers[k].name));
		for (size_t k = 0; rv == 0 && k < r->conf->actions.n; k++) {
			rv = names_of_template(&v, &n, &cap, acts[k].service);
			if (rv == 0)
				rv = names_of_template(&v, &n, &cap,
				    acts[k].instance);
			for (size_t j = 0; rv == 0 && j < acts[k].params.n; j++)
				rv = names_of_template(&v, &n, &cap,
				    acts[k].params.vals[j]);
		}
	}
	if (rv < 0) {
		coord_rules_label_names_free(v, n);
		return rv;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

struct coord_plan *
coord_plans_dup(const struct coord_plan *p, size_t n)
{
	struct coord_plan *d;

	if (n == 0)
		return NULL;
	d = calloc(n, sizeof(*d));
	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t ls = strlen(p[i].service), li = strlen(p[i].instance);

		d[i].type = p[i].type;
		d[i].rule = p[i].rule;
		d[i].act = p[i].act;
		d[i].step = p[i].step;
		d[i].service = malloc(ls + li + 2); // as plan_one lays it out
		if (d[i].service == NULL)
			goto fail;
		memcpy(d[i].service, p[i].service, ls + 1);
		d[i].instance = d[i].service + ls + 1;
		memcpy(d[i].instance, p[i].instance, li + 1);
		if (p[i].params.n == 0)
			continue;
		d[i].params.keys = calloc(p[i].params.n, sizeof(char *));
		d[i].params.vals = calloc(p[i].params.n, sizeof(char *));
		if (d[i].params.keys == NULL || d[i].params.vals == NULL)
			goto fail;
		for (size_t k = 0; k < p[i].params.n; k++) {
			d[i].params.keys[k] = strdup(p[i].params.keys[k]);
			d[i].params.vals[k] = strdup(p[i].params.vals[k]);
			d[i].params.n++;
			if (d[i].params.keys[k] == NULL ||
			    d[i].params.vals[k] == NULL)
				goto fail;
		}
	}
	return d;
fail:
	coord_plans_free(d, n);
	return NULL;
}

int
coord_rule_plan_escalation(const struct coord_rule *r,
    const struct coord_alert *a, size_t step, struct coord_plan **ret,
    char *err, size_t errlen)
{
	struct coord_plan *p;
	int rv;

	*ret = NULL;
	if (step >= r->conf->escalation.n)
		return -ENOENT;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	rv = plan_one(p, r, &r->conf->escalation, step, a, err, errlen);
	if (rv < 0) {
		coord_plans_free(p, 1);
		return rv;
	}
	*ret = p;
	return 0;
}

int
coord_rule_render_promql(const struct coord_rule *r,
    const struct coord_alert *a, char **ret, char *err, size_t errlen)
{
	const char *t = r->conf->verify.promql, *p;
	char *out;
	size_t cap, o = 0;

	*ret = NULL;
	if (t == NULL || t[0] == '\0')
		return 0;
	cap = strlen(t) + 1;
	out = malloc(cap);
	if (out == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (p = t; *p != '\0';) {
		const char *open = strstr(p, "{{"), *close, *val;
		char name[MATCHER_MAX_NAME + 1];
		size_t need, nl;

		if (open == NULL)
			open = p + strlen(p);
		need = o + (size_t)(open - p) + 1;
		if (need > cap) {
			char *g = realloc(out, need * 2);

			if (g == NULL)
				goto nomem;
			out = g;
			cap = need * 2;
		}
		memcpy(out + o, p, (size_t)(open - p));
		o += (size_t)(open - p);
		if (*open == '\0')
			break;
		close = strstr(open, "}}");
		if (close == NULL) {
			free(out);
			return errf(err, errlen, -EINVAL, "verify.promql: "
			    "unbalanced {{");
		}
		for (open += 2; *open == ' '; open++)
			;
		nl = (size_t)(close - open);
		while (nl > 0 && open[nl - 1] == ' ')
			nl--;
		if (nl == 0 || nl > MATCHER_MAX_NAME) {
			free(out);
			return errf(err, errlen, -EINVAL, "verify.promql: bad "
			    "placeholder");
		}
		memcpy(name, open, nl);
		name[nl] = '\0';
		val = coord_kvs_get(&a->labels, name);
		if (val == NULL) {
			free(out);
			return errf(err, errlen, -EINVAL, "verify.promql: the "
			    "alert has no label %s", name);
		}
		need = o + 2 * strlen(val) + 1;
		if (need > cap) {
			char *g = realloc(out, need * 2);

			if (g == NULL)
				goto nomem;
			out = g;
			cap = need * 2;
		}
		for (const char *v = val; *v; v++) {
			if (*v == '"' || *v == '\\')
				out[o++] = '\\';
			if (*v == '\n')
				continue; // label values cannot break the query
			out[o++] = *v;
		}
		p = close + 2;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
nomem:
	free(out);
	return errf(err, errlen, -ENOMEM, "out of memory");
}

// ---- Compiling the config ------------------------------------------------

static void
rule_clear(struct coord_rule *r)
{
	size_t i;

	for (i = 0; i < r->n_matchers; i++)
		coord_matcher_clear(&r->matchers[i]);
	free(r->matchers);
	memset(r, 0, sizeof(*r));
}

void
coord_rules_clear(struct coord_rules *rules)
{
	size_t i;

	if (rules == NULL)
		return;
	for (i = 0; i < rules->n; i++)
		rule_clear(&rules->v[i]);
	free(rules->v);
	rules->v = NULL;
	rules->n = 0;
}

static bool
param_key_ok(const char *k)
{
	size_t i;

	if (k == NULL || k[0] == '\0' || strlen(k) > MATCHER_MAX_NAME)
		return false;
	for (i = 0; k[i] != '\0'; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == '-'))
			return false;
	}
	return true;
}

static int
action_compile(const struct coord_action_conf *act, size_t i, size_t k,
    int rule_line, const char *file, char *err, size_t errlen)
{
	int line = act->line > 0 ? act->line : rule_line;
	char key[96], why[256];
	size_t j;

	snprintf(key, sizeof(key), "rules[%zu].actions[%zu]", i, k);
	if (act->type < 0 || act->type >= COORD_ACT__COUNT)
		return cm_conf_errf(err, errlen, file, line, key,
		    "type: unknown action type");
	if (act->patch != NULL) {
		cJSON *pj = cJSON_Parse(act->patch);
		bool obj = cJSON_IsObject(pj);

		cJSON_Delete(pj);
		if (!obj || act->type != COORD_ACT_ADJUST_CONFIG)
			return cm_conf_errf(err, errlen, file, line, key,
			    "patch: %s", !obj ? "not a JSON object" :
			    "only for adjust_config actions");
	} else if (act->type == COORD_ACT_ADJUST_CONFIG) {
		return cm_conf_errf(err, errlen, file, line, key,
		    "patch: required for adjust_config");
	}
	if (coord_template_check(act->service, why, sizeof(why)) < 0)
		return cm_conf_errf(err, errlen, file, line, key,
		    "service: %s", why);
	if (act->instance != NULL && act->instance[0] != '\0' &&
	    coord_template_check(act->instance, why, sizeof(why)) < 0)
		return cm_conf_errf(err, errlen, file, line, key,
		    "instance: %s", why);
	for (j = 0; j < act->params.n; j++) {
		if (!param_key_ok(act->params.keys[j]))
			return cm_conf_errf(err, errlen, file, line, key,
			    "params: key \"%s\" is not 1..%d bytes of "
			    "[A-Za-z0-9_.-]",
			    coord_safe_str(why, sizeof(why), act->params.keys[j]),
			    MATCHER_MAX_NAME);
		if (coord_template_check(act->params.vals[j], why,
		    sizeof(why)) < 0)
			return cm_conf_errf(err, errlen, file, line, key,
			    "params.%s: %s", act->params.keys[j], why);
	}
	return 0;
}

static int
rule_compile(struct coord_rules *rules, const struct coord_rule_conf *rc,
    size_t i, const char *file, char *err, size_t errlen)
{
	struct coord_rule *r = &rules->v[i];
	char key[96], why[256];
	size_t j;
	int rv;

	r->conf = rc;
	snprintf(key, sizeof(key), "rules[%zu]", i);
	if (rc->name == NULL || rc->name[0] == '\0')
		return cm_conf_errf(err, errlen, file, rc->line, key,
		    "name: must not be empty");
	for (j = 0; j < i; j++)
		if (strcmp(rules->v[j].conf->name, rc->name) == 0)
			return cm_conf_errf(err, errlen, file, rc->line, key,
			    "name: \"%s\" is already used by rules[%zu]",
			    coord_safe_str(why, sizeof(why), rc->name), j);
	if (rc->matchers.n == 0)
		return cm_conf_errf(err, errlen, file, rc->line, key,
		    "matchers: at least one matcher is required");
	if (rc->actions.n == 0)
		return cm_conf_errf(err, errlen, file, rc->line, key,
		    "actions: at least one action is required");

	r->matchers = calloc(rc->matchers.n, sizeof(*r->matchers));
	if (r->matchers == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	for (j = 0; j < rc->matchers.n; j++) {
		rv = coord_matcher_parse(&r->matchers[j], rc->matchers.v[j],
		    why, sizeof(why));
		if (rv < 0) {
			char name[96];

			snprintf(key, sizeof(key), "rules[%zu].matchers[%zu]",
			    i, j);
			cm_conf_errf(err, errlen, file, rc->line, key,
			    "%s (rule \"%s\")", why,
			    coord_safe_str(name, sizeof(name), rc->name));
			return rv;
		}
		r->n_matchers++;
	}
	for (j = 0; j < rc->actions.n; j++) {
		const struct coord_action_conf *act =
		    &((const struct coord_action_conf *)rc->actions.v)[j];

		rv = action_compile(act, i, j, rc->line, file, err, errlen);
		if (rv < 0)
			return rv;
	}
	for (j = 0; j < rc->escalation.n; j++) {
		const struct coord_action_conf *act =
		    &((const struct coord_action_conf *)rc->escalation.v)[j];

		rv = action_compile(act, i, j, rc->line, file, err, errlen);
		if (rv < 0)
			return rv;
	}
	if (rc->verify.promql != NULL && strlen(rc->verify.promql) > 4096)
		return cm_conf_errf(err, errlen, file, rc->line, key,
		    "verify.promql: longer than 4096 bytes");
	return 0;
}

int
coord_rules_compile(struct coord_rules *ret, const struct cm_list *confs,
    const char *file, char *err, size_t errlen)
{
	const struct coord_rule_conf *rc;
	size_t i;
	int rv;

	ret->v = NULL;
	ret->n = 0;
	if (file == NULL)
		file = "config";
	if (confs == NULL || confs->n == 0)
		return 0;
	ret->v = calloc(confs->n, sizeof(*ret->v));
	if (ret->v == NULL)
		return errf(err, errlen, -ENOMEM, "out of memory");
	rc = confs->v;
	for (i = 0; i < confs->n; i++) {
		// Counted first so a half-compiled rule is cleared too.
		ret->n++;
		rv = rule_compile(ret, &rc[i], i, file, err, errlen);
		if (rv < 0) {
			coord_rules_clear(ret);
			return rv;
		}
	}
	return 0;
}
