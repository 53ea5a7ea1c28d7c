// SPDX-License-Identifier: MIT
// notif_eq.h: whether two parsed notifications are the same, field by
// field (strings compared, not pointers), for the tests that hold
// coord_webhook_parse_memo to coord_webhook_parse (test_webhook and the
// webhook fuzz target).
#ifndef NOTIF_EQ_H
#define NOTIF_EQ_H

#include <stdbool.h>
#include <string.h>

#include "coord_alert.h"

static inline bool
neq_str(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static inline bool
neq_text(const char *a, size_t an, const char *b, size_t bn)
{
	return a == NULL || b == NULL ? a == b :
	    an == bn && memcmp(a, b, an) == 0;
}

static inline bool
neq_kvs(const struct coord_kvs *a, const struct coord_kvs *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!neq_str(a->v[i].key, b->v[i].key) ||
		    !neq_str(a->v[i].val, b->v[i].val))
			return false;
	return true;
}

static inline bool
neq_alert(const struct coord_alert *a, const struct coord_alert *b)
{
	return a->firing == b->firing && neq_kvs(&a->labels, &b->labels) &&
	    neq_kvs(&a->annotations, &b->annotations) &&
	    a->starts_ms == b->starts_ms && a->ends_ms == b->ends_ms &&
	    neq_str(a->generator_url, b->generator_url) &&
	    neq_str(a->fingerprint, b->fingerprint) &&
	    neq_text(a->labels_json, a->labels_json_len, b->labels_json,
	    b->labels_json_len) &&
	    neq_text(a->annotations_json, a->annotations_json_len,
	    b->annotations_json, b->annotations_json_len);
}

// Both NULL, or equal in every field.
static inline bool
notif_eq(const struct coord_notification *a,
    const struct coord_notification *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (!neq_str(a->version, b->version) ||
	    !neq_str(a->receiver, b->receiver) ||
	    !neq_str(a->status, b->status) ||
	    !neq_str(a->group_key, b->group_key) ||
	    !neq_str(a->external_url, b->external_url) ||
	    a->truncated_alerts != b->truncated_alerts ||
	    !neq_kvs(&a->group_labels, &b->group_labels) ||
	    !neq_kvs(&a->common_labels, &b->common_labels) ||
	    !neq_kvs(&a->common_annotations, &b->common_annotations) ||
	    a->n_alerts != b->n_alerts)
		return false;
	for (size_t i = 0; i < a->n_alerts; i++)
		if (!neq_alert(&a->alerts[i], &b->alerts[i]))
			return false;
	return true;
}

#endif
