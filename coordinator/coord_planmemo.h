// SPDX-License-Identifier: MIT
// coord_planmemo: the engine's memo of plans. An alert's plans are a
// function of the rules and of the values of the few labels they read
// (coord_rules_label_names: matchers and template placeholders), and the
// same alerts come again and again (Alertmanager re-sends every alert of
// a group with each notification). The memo keeps the result for an alert
// seen twice in a row in its slot (a small table indexed by the alert's
// identity) and lends it, read only, to the next alerts of that identity
// whose read labels are equal, under the same rules: they are not planned
// again. A rules reload is a different `rules` pointer (sets are never
// freed while the engine runs), so nothing planned under the old rules is
// lent after it. A slot is replaced only while nothing borrowed from it
// is out.
//
// One thread only (the engine's). Memory: the memo owns its copies of
// the label values and its plans; a lease keeps a slot's plans alive.
#ifndef COORD_PLANMEMO_H
#define COORD_PLANMEMO_H

#include <stddef.h>
#include <stdint.h>

#include "coord_alert.h"
#include "coord_rules.h"

#define COORD_PLANMEMO_SLOTS 64

struct coord_planmemo;
struct coord_planmemo_slot;

// NULL when out of memory.
struct coord_planmemo *coord_planmemo_new(void);
// No lease may be out. NULL is a no-op.
void coord_planmemo_free(struct coord_planmemo *m);

// Plans `a` under `rules` exactly as coord_rules_plan does and returns its
// result (reason in err when negative; such results are never kept).
// `identity` is the alert's
// (coord_alert_identity): it picks the slot; a match needs it equal and
// every label the rules read equal (or absent in both).
// On success with plans (*ret_n > 0), *ret_lease says who owns them: NULL,
// the caller (coord_plans_free); else they are lent, not to be changed or
// freed, valid until coord_planmemo_release(*ret_lease).
int coord_planmemo_plan(struct coord_planmemo *m,
    const struct coord_rules *rules, const struct coord_alert *a,
    uint64_t identity, struct coord_plan **ret, size_t *ret_n,
    struct coord_planmemo_slot **ret_lease, char *err, size_t errlen);

// Gives back lent plans. NULL is a no-op.
void coord_planmemo_release(struct coord_planmemo_slot *lease);

// Lookups answered from the memo so far (tests, benchmarks).
uint64_t coord_planmemo_hits(const struct coord_planmemo *m);

#endif
