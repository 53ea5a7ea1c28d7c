// SPDX-License-Identifier: MIT
// coord_alert: Alertmanager webhook notifications (version 4) as parsed
// structs, and the parser. See ../shared API facts: each POST lists every
// current alert of its group; state is per alert (its own "status"), never
// the top-level status; endsAt of a firing alert is Go's zero time.
#ifndef COORD_ALERT_H
#define COORD_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct coord_kv {
	char *key;
	char *val;
};

// A label set or annotation set, sorted by key, keys unique.
struct coord_kvs {
	struct coord_kv *v;
	size_t n;
};

// Memory: an alert from coord_webhook_parse or coord_alert_dup keeps every
// string and both kv arrays in one block, `mem`, which coord_alert_free
// releases (nothing in it may be freed or replaced on its own). An alert
// built field by field (the journal's replay, tests) leaves `mem` NULL and
// malloc's each string and kv array separately; coord_alert_free frees
// those one by one. The struct itself may be moved (copied by value and
// the source zeroed, as coord_engine_push does): `mem` moves with it.
struct coord_alert {
	bool firing;		 // the alert's own status
	struct coord_kvs labels;
	struct coord_kvs annotations;
	int64_t starts_ms;	 // epoch ms; CM_TIME_NONE if absent/zero
	int64_t ends_ms;	 // CM_TIME_NONE = no end known
	char *generator_url;	 // may be ""
	char *fingerprint;	 // as sent, may be ""
	void *mem;		 // see above: the one block, or NULL
	// The labels and the annotations as the journal stores them, or
	// NULL: a JSON object of the set's entries in its order, no space,
	// each key and value a JSON string escaping '"', '\\' and the
	// control bytes and nothing else (coord_journal encodes the set so
	// when this is NULL). Lengths without the NUL. The parser sets them
	// when the body already holds that text (keys sent sorted, no escape
	// and no space in the object: what Alertmanager sends), copied into
	// `mem`; coord_alert_dup and an alert built field by field leave
	// them NULL.
	const char *labels_json, *annotations_json;
	size_t labels_json_len, annotations_json_len;
};

// Memory: built only by coord_webhook_parse and freed only with
// coord_notification_free. The top-level strings and the keys and values
// of the three label sets live in memory the notification owns (one
// block with the struct); the kvs arrays and alerts[] lie in that block
// too when they are small (a few alerts, 16 top-level entries) and are
// malloc'd otherwise, so neither may be freed or reallocated on its own;
// each alert owns its own block (coord_alert.mem), so alerts may be moved
// out of alerts[] (coord_engine_push) and outlive the notification.
struct coord_notification {
	char *version;		 // always "4" after a successful parse
	char *receiver;
	char *status;		 // "firing" or "resolved" (informational)
	char *group_key;
	char *external_url;
	int64_t truncated_alerts;
	struct coord_kvs group_labels;
	struct coord_kvs common_labels;
	struct coord_kvs common_annotations;
	struct coord_alert *alerts;
	size_t n_alerts;
};

// Bounds for one webhook body; every one configurable (coordinator
// config "limits:"), each breach a 4xx with a reason.
struct coord_webhook_limits {
	size_t max_body;	 // bytes (413 when exceeded)
	size_t max_alerts;	 // alerts per notification (413)
	size_t max_labels;	 // labels or annotations per alert (400)
	size_t max_name_len;	 // label name length (400)
	size_t max_value_len;	 // label value length (400)
	size_t max_annotation_len; // annotation value length (400)
	// Nested arrays and objects (limits.max_json_depth; 400). 0 (as in
	// the defaults): COORD_JSON_DEPTH_MAX, reported as invalid JSON;
	// otherwise at most COORD_JSON_DEPTH_MAX, reported with the message
	// of coord_jdepth_check ("JSON nests deeper than N levels at offset
	// M (limits.max_json_depth)"), which it then takes precedence over
	// every other fault as when that check ran first.
	size_t max_depth;
};

extern const struct coord_webhook_limits coord_webhook_default_limits;

// Parses a webhook body (need not be NUL-terminated). On success returns 0
// and *ret (free with coord_notification_free). On failure returns
// -EINVAL (malformed JSON, wrong types, bad timestamps, version != "4",
// invalid label names, non-UTF-8) or -E2BIG (a size limit: body, alerts,
// labels, lengths) and writes a reason naming the field into err, e.g.
// "alerts[2].startsAt: not an RFC 3339 time". Unknown keys are ignored.
// Pure function; any thread.
//
// Details: `lim` NULL means coord_webhook_default_limits; every limit
// breach is -E2BIG. "version" and "alerts" are required (an empty alerts
// array is valid); receiver, status, groupKey, externalURL, generatorURL
// and fingerprint may be absent and then read "". A known key given twice
// in one object, a NUL byte or "\u0000" anywhere, a raw control byte in a
// string or trailing non-space data is -EINVAL. Label names (labels,
// groupLabels, commonLabels) must match [a-zA-Z_][a-zA-Z0-9_]*; annotation
// names may be any UTF-8 without control characters. Each alert needs a
// non-empty alertname label and a status of "firing" or "resolved".
// The JSON must be RFC 8259 text: numbers in its grammar only (no "+1",
// "01", ".5" or "1."), whitespace only space, tab, CR and LF (a leading
// UTF-8 byte order mark is skipped), escapes valid with surrogates
// paired, at most COORD_JSON_DEPTH_MAX nested arrays and objects ("invalid
// JSON"); a malformed body is reported as such even when it also breaks a
// rule above. -ENOMEM when out of memory. Known limitation: label names
// outside the classic syntax (allowed by Prometheus 3 / Alertmanager
// 0.28+ in UTF-8 mode) make the whole body -EINVAL.
int coord_webhook_parse(struct coord_notification **ret, const char *body,
    size_t len, const struct coord_webhook_limits *lim, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// A memo of alerts' label and annotation sets by their body text, for
// alerts sent again: where the body holds, at an alert's "labels" or
// "annotations" object, the text of a set met before (compact, keys
// sorted: labels_json), coord_webhook_parse_memo takes its decoded
// entries from the memo instead of reading every string again, when
// they are within `lim` (else, and for any other set, it reads the text
// as coord_webhook_parse does). The results are coord_webhook_parse's,
// byte for byte. 256 slots, each owning a copy of a set's text (at most
// 2 KiB) and its decoded strings: about 180 KiB for sets like the
// benchmark's, at most ~1.7 MiB. Not locked: one thread at a time.
struct coord_setmemo;
struct coord_setmemo *coord_setmemo_new(void);	// NULL on ENOMEM
void coord_setmemo_free(struct coord_setmemo *m); // NULL is a no-op
// coord_webhook_parse with a memo (m NULL: without).
int coord_webhook_parse_memo(struct coord_notification **ret,
    const char *body, size_t len, const struct coord_webhook_limits *lim,
    struct coord_setmemo *m, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void coord_notification_free(struct coord_notification *n);



// True if `s` is a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*. NULL and
// "" are not. Pure; any thread.
bool coord_label_name_valid(const char *s);

// Label value or NULL. Borrowed from the alert.
const char *coord_kvs_get(const struct coord_kvs *kvs, const char *key);

// Deep copy of one alert into a single block (`mem`) / release of one,
// of either layout (for handing alerts to the engine independently of
// their notification). copy returns NULL on ENOMEM.
struct coord_alert *coord_alert_dup(const struct coord_alert *a);
void coord_alert_free(struct coord_alert *a);
// Releases what an alert of either layout holds, not the struct itself
// (one kept inside another struct), and zeroes it. NULL is a no-op.
void coord_alert_clear(struct coord_alert *a);

// The alert's identity for deduplication: a 64-bit FNV-1a hash over the
// sorted label set with the labels named in `ignore` (replica labels such
// as "prometheus_replica") left out. Equal for the copies an HA pair of
// Alertmanagers or Prometheus replicas deliver; fingerprint and
// externalURL play no part.
uint64_t coord_alert_identity(const struct coord_alert *a,
    const char *const *ignore, size_t n_ignore);

// A memo of identities by label text, for alerts sent again (Alertmanager
// sends every alert of a group again with each notification of the
// group): coord_alert_identity's value for an alert whose labels_json it
// has met under the same ignore list, found by that text (a slot picked
// by the fingerprint, then a compare of the text) instead of FNV-1a over
// every label byte; the text of a set is the set, so the value is the
// same, whatever fingerprint comes with it. Alerts without
// labels_json, or with a text over 4 KiB, are hashed every time.
// IDMEMO_SLOTS slots, direct-mapped, each owning a copy of its text
// (a few hundred bytes for a typical alert). Not locked: one thread at a
// time.
struct coord_idmemo;
struct coord_idmemo *coord_idmemo_new(void);	// NULL on ENOMEM
void coord_idmemo_free(struct coord_idmemo *m);	// NULL is a no-op
// coord_alert_identity(a, ignore, n_ignore); m NULL computes it.
uint64_t coord_idmemo_identity(struct coord_idmemo *m,
    const struct coord_alert *a, const char *const *ignore,
    size_t n_ignore);

// Copies untrusted `s` into buf for an error message: printable ASCII as
// is, everything else as \xNN, at most ~40 input bytes. Returns buf.
const char *coord_safe_str(char *buf, size_t n, const char *s);

#endif
