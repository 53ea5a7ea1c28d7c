// SPDX-License-Identifier: MIT
// coord_rules: remediation rules. A rule matches alerts by label matchers
// in Alertmanager's syntax and yields an ordered list of actions whose
// target and parameters are templated from the alert's labels.
//
// Config (YAML, under "rules:" of the coordinator config):
//
//   - name: demo-high-error-rate
//     matchers:                       # all must match (AND)
//       - alertname = "HighErrorRate" # = != =~ !~ ; regexes are anchored
//       - service =~ "demo-.*"        # like Alertmanager's
//     cooldown: 5m                    # same action+target not repeated
//     max_attempts: 2                 # actions per incident, then escalate
//     continue: false                 # keep matching later rules
//     actions:
//       - type: restart               # restart scale_up scale_down
//                                     # switch_traffic rollback
//                                     # clear_cache reload_config notify
//         service: "{{ service }}"    # templated from labels
//         instance: "{{ instance }}"  # optional: "" = whole service
//         timeout: 300s
//         retries: 2                  # 3 tries; 1 for critical services
//         params: { replicas: "2" }   # values templated too
//
// A template is literal text with {{ label }} placeholders (spaces
// optional). A placeholder naming a label the alert lacks is an error
// (the alert is recorded as "template-error", nothing runs). A rendered
// value must be 1..253 bytes of [A-Za-z0-9._:/@-], must not contain "..",
// and must not start with "/" or "-": alert text never reaches a shell or
// an unvalidated API path.
#ifndef COORD_RULES_H
#define COORD_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "cm_conf.h"
#include "coord_alert.h"

enum coord_action_type {
	COORD_ACT_RESTART,
	COORD_ACT_SCALE_UP,
	COORD_ACT_SCALE_DOWN,
	COORD_ACT_SWITCH_TRAFFIC,
	COORD_ACT_ROLLBACK,
	COORD_ACT_CLEAR_CACHE,
	COORD_ACT_RELOAD_CONFIG,
	COORD_ACT_NOTIFY,
	COORD_ACT_RUN_JOB,	 // kubernetes: a Job from the configured template
	COORD_ACT_ADJUST_CONFIG, // kubernetes: merge patch, previous values kept
	COORD_ACT__COUNT,
};

// Wire/config name ("restart", "scale_up", ...) and back (-1 if unknown).
const char *coord_action_name(enum coord_action_type t);
int coord_action_parse(const char *s);

// Deadline of an action type when its config says "timeout: 0" (the
// default): restart 300s, scale_up/scale_down 600s, switch_traffic 120s,
// rollback 900s, every other type 300s. Pure; any thread.
int64_t coord_action_default_timeout_ms(enum coord_action_type t);

// As loaded from YAML by the tables below (strings owned by cm_conf).
struct coord_action_conf {
	int line;
	int type; // enum coord_action_type (CM_CONF_ENUM)
	char *service;
	char *instance;
	int64_t timeout_ms;
	int64_t retries;
	struct cm_strmap params;
	char *patch;	// adjust_config: a JSON object, literal (not templated)
};

// How a repair is verified (see coord_engine.h). The PromQL condition is
// templated from the alert's labels like an action target, but quoted
// label values are escaped rather than validated as names.
struct coord_verify_conf {
	int64_t interval_ms;	// poll period (default 30 s)
	int64_t timeout_ms;	// give up after (default 300 s)
	bool health;		// the agent reports the target healthy
	bool resolved;		// the alert's resolved notification arrived
	char *promql;		// optional: returns samples while broken
};

// How a rule's plans run: live; shadow (decided and recorded, never
// executed); approval (held until an operator approves, or expired).
enum coord_rule_mode { COORD_RULE_LIVE, COORD_RULE_SHADOW,
	COORD_RULE_APPROVAL };

struct coord_rule_conf {
	int line;
	char *name;
	struct cm_strlist matchers;
	int64_t cooldown_ms;
	int64_t max_attempts;
	bool cont;
	bool force;	// may restart services listed as critical
	int mode;	// enum coord_rule_mode
	struct cm_list actions; // of struct coord_action_conf
	struct coord_verify_conf verify;
	struct cm_list escalation; // of struct coord_action_conf: run in
				   // order, one per failed verification
};

// cm_conf table for one rule (use as .sub of a CM_CONF_LIST with
// .elem_size = sizeof(struct coord_rule_conf)).
extern const struct cm_conf_field coord_rule_fields[];

// The action's effective deadline: its configured timeout, or the type's
// default when that is 0. Borrows `act`; pure; any thread.
int64_t coord_action_timeout_ms(const struct coord_action_conf *act);

enum coord_match_op { COORD_MATCH_EQ, COORD_MATCH_NE, COORD_MATCH_RE,
	COORD_MATCH_NRE };

struct coord_matcher {
	char *name;
	enum coord_match_op op;
	char *value;
	regex_t re; // RE/NRE: POSIX ERE "^(value)$" (REG_EXTENDED|REG_NOSUB)
};

struct coord_rule {
	const struct coord_rule_conf *conf; // borrowed from the config
	struct coord_matcher *matchers;
	size_t n_matchers;
};

struct coord_rules {
	struct coord_rule *v;
	size_t n;
};

// Parses one matcher string ('name = "value"', 'name=~"re"', unquoted
// values allowed). Returns 0 or -EINVAL with a reason in err.
// A quoted value knows the escapes \" and \\ only; an unquoted one is a
// run of non-space characters other than " ' \ { } , = ! ~ `. Values are
// UTF-8 without control characters, at most 1024 bytes. Regexes are POSIX
// extended (not RE2: no \d, no (?i)); a backslash before a letter or
// digit, or an unbalanced parenthesis, is rejected rather than read the
// glibc way. Repetition is bounded before regcomp sees it: counts that
// multiply beyond 1000 along a nesting path ('*' and '+' count 2, '?' 1,
// {m,n} n; "(a{0,200}){0,200}", "x++++++++++"), or more than 4000
// copies of atoms in all, are rejected. On failure *m is zeroed (coord_matcher_clear is then a
// no-op); on success free with coord_matcher_clear. Any thread.
int coord_matcher_parse(struct coord_matcher *m, const char *s, char *err,
    size_t errlen);
void coord_matcher_clear(struct coord_matcher *m);

// Compiles the rule list of the config. Borrows `confs` (must outlive the
// result). Errors name the file and line of the rule: "file:12:
// rules[0].matchers[1]: ...". Returns 0 or -EINVAL.
int coord_rules_compile(struct coord_rules *ret, const struct cm_list *confs,
    const char *file, char *err, size_t errlen);
void coord_rules_clear(struct coord_rules *rules);

// True if every matcher of the rule matches the alert's labels (a missing
// label matches as "", as in Alertmanager).
bool coord_rule_matches(const struct coord_rule *r, const struct coord_alert *a);

// One planned action, rendered for one alert.
struct coord_plan {
	enum coord_action_type type;
	const struct coord_rule *rule;	     // borrowed
	const struct coord_action_conf *act; // borrowed
	size_t step;			     // index in the rule's actions
	char *service;			     // rendered, owned
	char *instance;			     // rendered, may be ""; in service's
					     // allocation (freed with it)
	struct cm_strmap params;	     // rendered, owned
};

// Longest rendered value, in bytes.
#define COORD_TMPL_MAX 253

// Config-time check of a template: placeholders well formed ("{{" closed
// by "}}", a label name inside, no stray "}}"), literal text within
// [A-Za-z0-9._:/@-], not starting with "/" or "-", no "..", at most
// COORD_TMPL_MAX literal bytes. "" is refused (callers skip an optional
// empty instance). Returns 0 or -EINVAL with a reason. Any thread.
int coord_template_check(const char *tmpl, char *err, size_t errlen);

// Renders `tmpl` against the alert's labels into a new string (free()).
// Returns 0, -EINVAL (unknown label, invalid result; reason in err) or
// -ENOMEM.
int coord_template_render(char **ret, const char *tmpl,
    const struct coord_alert *a, char *err, size_t errlen);

// Renders every action of `r` for `a` into *ret (array of *ret_n plans,
// free with coord_plans_free). Returns 0 or the first render error.
int coord_rule_plan(const struct coord_rule *r, const struct coord_alert *a,
    struct coord_plan **ret, size_t *ret_n, char *err, size_t errlen);
void coord_plans_free(struct coord_plan *p, size_t n);

// The plans of the first rule of `rules` that matches `a`, followed by
// those of later matching rules while the matched rules say "continue".
// Returns 0 with *ret_n == 0 when no rule matched, or the first render
// error (reason in err) or -ENOMEM. A pure function of `rules` and the
// alert's labels. Free *ret with coord_plans_free. Any thread.
int coord_rules_plan(const struct coord_rules *rules,
    const struct coord_alert *a, struct coord_plan **ret, size_t *ret_n,
    char *err, size_t errlen);

// The names of the labels coord_rules_plan reads for `rules`: every
// matcher's, and every placeholder of the action templates (service,
// instance, params values), each once. Its result is a function of the
// values (or absence) of these labels alone. *ret: n malloc'd names in a
// malloc'd array (NULL when n is 0), free with
// coord_rules_label_names_free. Returns 0, -EINVAL (a template that does
// not parse) or -ENOMEM. Any thread.
int coord_rules_label_names(const struct coord_rules *rules, char ***ret,
    size_t *ret_n);
void coord_rules_label_names_free(char **names, size_t n);

// Deep copy of n plans (the rules they point to are shared). NULL when n
// is 0 or out of memory. Free with coord_plans_free.
struct coord_plan *coord_plans_dup(const struct coord_plan *p, size_t n);

// Renders step `step` of the rule's escalation chain into *ret (one plan,
// free with coord_plans_free(ret, 1)). Returns 0, -ENOENT past the end of
// the chain, or a render error with the reason in err.
int coord_rule_plan_escalation(const struct coord_rule *r,
    const struct coord_alert *a, size_t step, struct coord_plan **ret,
    char *err, size_t errlen);

// Renders the verify PromQL for `a`: each {{ label }} becomes the label's
// value with backslashes and double quotes escaped (so it is safe inside a
// quoted PromQL string). Returns 0 with *ret NULL when there is none.
int coord_rule_render_promql(const struct coord_rule *r,
    const struct coord_alert *a, char **ret, char *err, size_t errlen);

#endif
