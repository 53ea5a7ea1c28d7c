// SPDX-License-Identifier: MIT
// coord_planmemo: the engine's memo of plans (see coord_planmemo.h).
#include "coord_planmemo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct coord_planmemo_slot {
	const struct coord_rules *rules; // NULL: empty
	uint64_t identity;
	// The values of the memo's label names (names[i] -> vals[i], NULL
	// when the alert lacks it): one block, owned.
	char **vals;
	struct coord_plan *plans;	 // owned; NULL: no rule matched
	size_t n_plans;
	unsigned lent;			 // leases out
	// The last label set planned here without being kept: kept when it
	// comes again next (a one-off alert costs no copy).
	const struct coord_rules *seen_rules;
	uint64_t seen_identity;
};

struct coord_planmemo {
	struct coord_planmemo_slot slots[COORD_PLANMEMO_SLOTS];
	uint64_t hits;
	// The labels the plans of `names_for` read (coord_rules_label_names):
	// only they are compared. names_ok false: none could be had; then
	// nothing is kept.
	const struct coord_rules *names_for;
	char **names;
	size_t n_names;
	bool names_ok;
};

struct coord_planmemo *
coord_planmemo_new(void)
{
	return calloc(1, sizeof(struct coord_planmemo));
}

static void
slot_clear(struct coord_planmemo_slot *s)
{
	free(s->vals);
	coord_plans_free(s->plans, s->n_plans);
	s->vals = NULL;
	s->plans = NULL;
	s->n_plans = 0;
	s->rules = NULL;
}

void
coord_planmemo_free(struct coord_planmemo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < COORD_PLANMEMO_SLOTS; i++)
		slot_clear(&m->slots[i]);
	coord_rules_label_names_free(m->names, m->n_names);
	free(m);
}

// The names for `rules`, worked out when the rules change (a reload).
static void
names_for(struct coord_planmemo *m, const struct coord_rules *rules)
{
	if (m->names_for == rules)
		return;
	coord_rules_label_names_free(m->names, m->n_names);
	m->names = NULL;
	m->n_names = 0;
	m->names_for = rules;
	m->names_ok = coord_rules_label_names(rules, &m->names,
	    &m->n_names) == 0;
}

static bool
vals_equal(const struct coord_planmemo *m,
    const struct coord_planmemo_slot *s, const struct coord_alert *a)
{
	for (size_t i = 0; i < m->n_names; i++) {
		const char *v = coord_kvs_get(&a->labels, m->names[i]);

		if (v == NULL || s->vals[i] == NULL) {
			if (v != s->vals[i])
				return false;
		} else if (strcmp(v, s->vals[i]) != 0) {
			return false;
		}
	}
	return true;
}

// The values of the names in one block, or NULL when out of memory.
static char **
vals_copy(const struct coord_planmemo *m, const struct coord_alert *a)
{
	size_t size = (m->n_names + 1) * sizeof(char *), o;
	char **v;

	for (size_t i = 0; i < m->n_names; i++) {
		const char *x = coord_kvs_get(&a->labels, m->names[i]);

		if (x != NULL)
			size += strlen(x) + 1;
	}
	v = malloc(size);
	if (v == NULL)
		return NULL;
	o = (m->n_names + 1) * sizeof(char *);
	for (size_t i = 0; i < m->n_names; i++) {
		const char *x = coord_kvs_get(&a->labels, m->names[i]);
		size_t k;

		v[i] = NULL;
		if (x == NULL)
			continue;
		k = strlen(x) + 1;
		v[i] = (char *)v + o;
		memcpy(v[i], x, k);
		o += k;
	}
	return v;
}

static int
answer(struct coord_planmemo_slot *s, struct coord_plan **ret, size_t *ret_n,
    struct coord_planmemo_slot **ret_lease)
{
	*ret = s->plans;
	*ret_n = s->n_plans;
	if (s->n_plans > 0) {
		s->lent++;
		*ret_lease = s;
	}
	return 0;
}

int
coord_planmemo_plan(struct coord_planmemo *m,
    const struct coord_rules *rules, const struct coord_alert *a,
    uint64_t identity, struct coord_plan **ret, size_t *ret_n,
    struct coord_planmemo_slot **ret_lease, char *err, size_t errlen)
{
	struct coord_planmemo_slot *s =
	    &m->slots[identity % COORD_PLANMEMO_SLOTS];
	struct coord_plan *plans;
	char **vals;
	size_t n;
	int rv;

	*ret = NULL;
	*ret_n = 0;
	*ret_lease = NULL;
	names_for(m, rules);
	if (m->names_ok && s->rules == rules && s->identity == identity &&
	    vals_equal(m, s, a)) {
		m->hits++;
		return answer(s, ret, ret_n, ret_lease);
	}
	rv = coord_rules_plan(rules, a, &plans, &n, err, errlen);
	if (rv < 0)
		return rv; // errors (rare) are not kept: planned each time
	if (!m->names_ok || s->lent > 0 || s->seen_rules != rules ||
	    s->seen_identity != identity || (vals = vals_copy(m, a)) == NULL) {
		// Once, or the slot is busy: the caller's own plans.
		if (s->lent == 0) {
			s->seen_rules = rules;
			s->seen_identity = identity;
		}
		*ret = plans;
		*ret_n = n;
		return rv;
	}
	// Seen twice in a row: kept, and lent from here on.
	slot_clear(s);
	s->rules = rules;
	s->identity = identity;
	s->vals = vals;
	s->plans = plans;
	s->n_plans = n;
	s->seen_rules = NULL;
	return answer(s, ret, ret_n, ret_lease);
}

void
coord_planmemo_release(struct coord_planmemo_slot *lease)
{
	if (lease != NULL && lease->lent > 0)
		lease->lent--;
}

uint64_t
coord_planmemo_hits(const struct coord_planmemo *m)
{
	return m->hits;
}
