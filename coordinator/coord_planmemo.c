// SPDX-License-Identifier: MIT
// coord_planmemo: the engine's memo of plans (see coord_planmemo.h).
#include "coord_planmemo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct coord_planmemo_slot {
	const struct coord_rules *rules; // NULL: empty
	uint64_t identity;
	struct coord_alert *alert;	 // its labels (a copy, owned)
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
};

struct coord_planmemo *
coord_planmemo_new(void)
{
	return calloc(1, sizeof(struct coord_planmemo));
}

static void
slot_clear(struct coord_planmemo_slot *s)
{
	coord_alert_free(s->alert);
	coord_plans_free(s->plans, s->n_plans);
	s->alert = NULL;
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
	free(m);
}

static bool
labels_equal(const struct coord_kvs *x, const struct coord_kvs *y)
{
	if (x->n != y->n)
		return false;
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->v[i].key, y->v[i].key) != 0 ||
		    strcmp(x->v[i].val, y->v[i].val) != 0)
			return false;
	return true;
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
	struct coord_alert *copy;
	struct coord_plan *plans;
	size_t n;
	int rv;

	*ret = NULL;
	*ret_n = 0;
	*ret_lease = NULL;
	if (s->rules == rules && s->identity == identity &&
	    labels_equal(&s->alert->labels, &a->labels)) {
		m->hits++;
		return answer(s, ret, ret_n, ret_lease);
	}
	rv = coord_rules_plan(rules, a, &plans, &n, err, errlen);
	if (rv < 0)
		return rv; // errors (rare) are not kept: planned each time
	if (s->lent > 0 || s->seen_rules != rules ||
	    s->seen_identity != identity ||
	    (copy = coord_alert_dup(a)) == NULL) {
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
	s->alert = copy;
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
