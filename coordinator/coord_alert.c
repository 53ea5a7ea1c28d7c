// SPDX-License-Identifier: MIT
// coord_alert: parser for Alertmanager webhook bodies (version 4).
//
// The body goes through three gates: a byte pre-scan (NUL bytes and
// control characters, which cJSON would silently accept or use to cut a
// string short), cJSON, then a typed walk that validates every field and
// moves it into the structs of coord_alert.h: the strings cJSON allocated
// (with malloc, its default) are taken from the tree, which is ours and
// freed right after, instead of being copied. Each object is walked once
// and its known keys dispatched by name, so the work is linear in the body
// size apart from sorting each label set.

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_msg.h"
#include "cm_time.h"
#include "coord_alert.h"

// Takes a string out of the parse tree (it is freed with free() later,
// and no longer by cJSON_Delete).
static char *
steal(char **slot)
{
	char *s = *slot;

	*slot = NULL;
	return s;
}

const struct coord_webhook_limits coord_webhook_default_limits = {
	.max_body = 1024 * 1024,
	.max_alerts = 1000,
	.max_labels = 64,
	.max_name_len = 128,
	.max_value_len = 1024,
	.max_annotation_len = 8192,
};

// Largest integer a double holds exactly; truncatedAlerts above it is
// nonsense anyway.
#define MAX_JSON_INT 9007199254740992.0

// Room for one path such as "alerts[999].annotations" plus a label name.
#define PATH_MAX_LEN 256

struct pctx {
	const struct coord_webhook_limits *lim;
	char *err;
	size_t errlen;
};

enum kvs_kind { KVS_LABELS, KVS_ANNOTATIONS };

static int
failf(struct pctx *p, int rv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
failf(struct pctx *p, int rv, const char *fmt, ...)
{
	va_list ap;

	if (p->err != NULL && p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return rv;
}

const char *
coord_safe_str(char *buf, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	for (i = 0; s[i] != '\0' && o + 8 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 40) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}


bool
coord_label_name_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

// JSON forbids raw control characters inside strings, and cJSON accepts
// them; a NUL byte or a "\u0000" escape would also end the C string cJSON
// hands back early, so "ab\u0000cd" would silently become "ab". Rejecting
// all of these here keeps every later string exact.
static int
prescan(struct pctx *p, const char *body, size_t len)
{
	bool in_str = false;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];

		if (c == '\0')
			return failf(p, -EINVAL, "body: NUL byte at offset %zu",
			    i);
		if (!in_str) {
			if (c == '"')
				in_str = true;
			continue;
		}
		if (c == '"') {
			in_str = false;
		} else if (c < 0x20) {
			return failf(p, -EINVAL,
			    "body: control character in a string at offset %zu",
			    i);
		} else if (c == '\\' && i + 1 < len) {
			if (body[i + 1] == 'u' && len - i > 5 &&
			    memcmp(body + i + 2, "0000", 4) == 0)
				return failf(p, -EINVAL, "body: \\u0000 in a "
				    "string at offset %zu", i);
			// Skip the escaped byte unless it is a control byte or
			// NUL: those are reported by the next turn.
			if ((unsigned char)body[i + 1] >= 0x20)
				i++;
		}
	}
	return 0;
}

// Checks a string value and takes it from the tree. Its path for errors
// is `path`, or "<path>.<key>" when key is not NULL (built only then).
static char *
dup_checked(struct pctx *p, const cJSON *item, const char *path,
    const char *key, size_t max_len, int *rv)
{
	const char *s = item->valuestring;
	const char *dot = key != NULL ? "." : "";
	size_t n;
	char *copy;

	if (key == NULL)
		key = "";
	n = strlen(s);
	if (n > max_len) {
		*rv = failf(p, -E2BIG, "%s%s%s: %zu bytes exceed the limit of "
		    "%zu", path, dot, key, n, max_len);
		return NULL;
	}
	if (!cm_utf8_valid(s, n)) {
		*rv = failf(p, -EINVAL, "%s%s%s: not valid UTF-8", path, dot,
		    key);
		return NULL;
	}
	copy = steal(&((cJSON *)item)->valuestring);
	return copy;
}

// A field's path in error messages is "<base>.<field>", or "<field>"
// when base is "" (top level): printed with FIELD_FMT / FIELD_ARGS, so it
// is formatted only when there is an error.
#define FIELD_FMT "%s%s%s"
#define FIELD_ARGS(base, field) (base), (base)[0] != '\0' ? "." : "", (field)

// Copies an optional string field; absent or null gives "".
static int
get_str(struct pctx *p, const cJSON *item, const char *base,
    const char *field, char **out)
{
	int rv = 0;

	if (item == NULL || cJSON_IsNull(item)) {
		*out = strdup("");
		return *out == NULL ? failf(p, -ENOMEM, FIELD_FMT ": out of "
		    "memory", FIELD_ARGS(base, field)) : 0;
	}
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return failf(p, -EINVAL, FIELD_FMT ": expected string",
		    FIELD_ARGS(base, field));
	*out = dup_checked(p, item, base[0] != '\0' ? base : field,
	    base[0] != '\0' ? field : NULL, SIZE_MAX, &rv);
	return rv;
}

static int
status_parse(struct pctx *p, const cJSON *item, const char *base,
    const char *field, bool *ret_firing)
{
	const char *s;

	if (item == NULL)
		return failf(p, -EINVAL, FIELD_FMT ": missing",
		    FIELD_ARGS(base, field));
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return failf(p, -EINVAL, FIELD_FMT ": expected string",
		    FIELD_ARGS(base, field));
	s = item->valuestring;
	if (strcmp(s, "firing") == 0)
		*ret_firing = true;
	else if (strcmp(s, "resolved") == 0)
		*ret_firing = false;
	else
		return failf(p, -EINVAL,
		    FIELD_FMT ": must be \"firing\" or \"resolved\"",
		    FIELD_ARGS(base, field));
	return 0;
}

static int
time_field(struct pctx *p, const cJSON *item, const char *base,
    const char *field, int64_t *ret_ms)
{
	*ret_ms = CM_TIME_NONE;
	if (item == NULL || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return failf(p, -EINVAL, FIELD_FMT ": expected string",
		    FIELD_ARGS(base, field));
	if (cm_time_parse(item->valuestring, ret_ms) < 0)
		return failf(p, -EINVAL, FIELD_FMT ": not an RFC 3339 time",
		    FIELD_ARGS(base, field));
	return 0;
}

static int
kv_cmp(const void *a, const void *b)
{
	const struct coord_kv *x = a, *y = b;

	return strcmp(x->key, y->key);
}

static void
kvs_clear(struct coord_kvs *kvs)
{
	size_t i;

	for (i = 0; i < kvs->n; i++) {
		free(kvs->v[i].key);
		free(kvs->v[i].val);
	}
	free(kvs->v);
	kvs->v = NULL;
	kvs->n = 0;
}

static int
kv_key_check(struct pctx *p, const char *key, const char *path,
    enum kvs_kind kind)
{
	char sbuf[200];
	size_t n = strlen(key);

	if (n > p->lim->max_name_len)
		return failf(p, -E2BIG,
		    "%s: name \"%s\" is %zu bytes, over the limit of %zu",
		    path, coord_safe_str(sbuf, sizeof(sbuf), key), n,
		    p->lim->max_name_len);
	if (kind == KVS_LABELS && !coord_label_name_valid(key))
		return failf(p, -EINVAL, "%s: invalid label name \"%s\"", path,
		    coord_safe_str(sbuf, sizeof(sbuf), key));
	// Annotations are only displayed, never matched: any non-empty
	// UTF-8 name without control characters is fine.
	if (kind == KVS_ANNOTATIONS) {
		size_t i;

		for (i = 0; i < n; i++)
			if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
				break;
		if (n == 0 || i < n || !cm_utf8_valid(key, n))
			return failf(p, -EINVAL,
			    "%s: invalid annotation name \"%s\"", path,
			    coord_safe_str(sbuf, sizeof(sbuf), key));
	}
	return 0;
}

// Parses a string->string object into a sorted, duplicate-free set. An
// absent or null object gives an empty set.
static int
kvs_parse(struct pctx *p, const cJSON *obj, const char *path,
    enum kvs_kind kind, struct coord_kvs *out)
{
	size_t max_val = kind == KVS_LABELS ? p->lim->max_value_len :
	    p->lim->max_annotation_len;
	char sbuf[200];
	const cJSON *it;
	size_t n = 0, i;
	int rv = 0;

	out->v = NULL;
	out->n = 0;
	if (obj == NULL || cJSON_IsNull(obj))
		return 0;
	if (!cJSON_IsObject(obj))
		return failf(p, -EINVAL, "%s: expected object", path);
	for (it = obj->child; it != NULL; it = it->next)
		if (++n > p->lim->max_labels)
			return failf(p, -E2BIG,
			    "%s: more than %zu entries", path,
			    p->lim->max_labels);
	if (n == 0)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (out->v == NULL)
		return failf(p, -ENOMEM, "%s: out of memory", path);
	for (it = obj->child; it != NULL; it = it->next) {
		struct coord_kv *kv = &out->v[out->n];

		rv = kv_key_check(p, it->string, path, kind);
		if (rv < 0)
			goto fail;
		if (!cJSON_IsString(it) || it->valuestring == NULL) {
			rv = failf(p, -EINVAL, "%s.%s: expected string", path,
			    it->string);
			goto fail;
		}
		kv->key = steal(&((cJSON *)it)->string);
		out->n++;
		kv->val = dup_checked(p, it, path, kv->key, max_val, &rv);
		if (kv->val == NULL)
			goto fail;
	}
	qsort(out->v, out->n, sizeof(*out->v), kv_cmp);
	for (i = 1; i < out->n; i++) {
		if (strcmp(out->v[i - 1].key, out->v[i].key) == 0) {
			rv = failf(p, -EINVAL, "%s: duplicate key \"%s\"", path,
			    coord_safe_str(sbuf, sizeof(sbuf), out->v[i].key));
			goto fail;
		}
	}
	return 0;
fail:
	kvs_clear(out);
	return rv;
}

// One JSON object's known keys, found in a single pass. A known key given
// twice is an error: two "status" keys would leave it to the parser which
// one counts.
struct keyslot {
	const char *name;
	const cJSON *item;
};

static int
collect_keys(struct pctx *p, const cJSON *obj, const char *path,
    struct keyslot *slots, size_t n_slots)
{
	const cJSON *it;
	size_t i;

	for (it = obj->child; it != NULL; it = it->next) {
		for (i = 0; i < n_slots; i++)
			if (strcmp(it->string, slots[i].name) == 0)
				break;
		if (i == n_slots)
			continue; // unknown keys are ignored (newer AMs)
		if (slots[i].item != NULL)
			return failf(p, -EINVAL, "%s%s%s: duplicate key", path,
			    path[0] != '\0' ? "." : "", slots[i].name);
		slots[i].item = it;
	}
	return 0;
}

static void
alert_clear(struct coord_alert *a)
{
	kvs_clear(&a->labels);
	kvs_clear(&a->annotations);
	free(a->generator_url);
	free(a->fingerprint);
	memset(a, 0, sizeof(*a));
}

enum {
	A_STATUS, A_LABELS, A_ANNOTATIONS, A_STARTS, A_ENDS, A_GENURL, A_FP,
	A__N,
};

static int
alert_parse(struct pctx *p, const cJSON *obj, size_t idx,
    struct coord_alert *a)
{
	struct keyslot k[A__N] = {
		[A_STATUS] = { "status", NULL },
		[A_LABELS] = { "labels", NULL },
		[A_ANNOTATIONS] = { "annotations", NULL },
		[A_STARTS] = { "startsAt", NULL },
		[A_ENDS] = { "endsAt", NULL },
		[A_GENURL] = { "generatorURL", NULL },
		[A_FP] = { "fingerprint", NULL },
	};
	char base[48], path[PATH_MAX_LEN];
	const char *name;
	int rv;

	snprintf(base, sizeof(base), "alerts[%zu]", idx);
	if (!cJSON_IsObject(obj))
		return failf(p, -EINVAL, "%s: expected object", base);
	rv = collect_keys(p, obj, base, k, A__N);
	if (rv < 0)
		return rv;

	rv = status_parse(p, k[A_STATUS].item, base, "status", &a->firing);
	if (rv < 0)
		return rv;

	snprintf(path, sizeof(path), "%s.labels", base);
	if (k[A_LABELS].item == NULL || !cJSON_IsObject(k[A_LABELS].item))
		return failf(p, -EINVAL, "%s: %s", path,
		    k[A_LABELS].item == NULL ? "missing" : "expected object");
	rv = kvs_parse(p, k[A_LABELS].item, path, KVS_LABELS, &a->labels);
	if (rv < 0)
		return rv;
	name = coord_kvs_get(&a->labels, "alertname");
	if (name == NULL || name[0] == '\0')
		return failf(p, -EINVAL, "%s: no alertname label", path);

	snprintf(path, sizeof(path), "%s.annotations", base);
	rv = kvs_parse(p, k[A_ANNOTATIONS].item, path, KVS_ANNOTATIONS,
	    &a->annotations);
	if (rv < 0)
		return rv;

	rv = time_field(p, k[A_STARTS].item, base, "startsAt", &a->starts_ms);
	if (rv < 0)
		return rv;
	rv = time_field(p, k[A_ENDS].item, base, "endsAt", &a->ends_ms);
	if (rv < 0)
		return rv;

	rv = get_str(p, k[A_GENURL].item, base, "generatorURL",
	    &a->generator_url);
	if (rv < 0)
		return rv;
	return get_str(p, k[A_FP].item, base, "fingerprint", &a->fingerprint);
}

enum {
	N_VERSION, N_RECEIVER, N_STATUS, N_ALERTS, N_GROUPKEY, N_GLABELS,
	N_CLABELS, N_CANNOT, N_EXTURL, N_TRUNC, N__N,
};

static int
truncated_parse(struct pctx *p, const cJSON *item, int64_t *ret)
{
	double d;

	*ret = 0;
	if (item == NULL || cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsNumber(item))
		return failf(p, -EINVAL, "truncatedAlerts: expected number");
	d = item->valuedouble;
	if (!isfinite(d) || d < 0 || d > MAX_JSON_INT || floor(d) != d)
		return failf(p, -EINVAL,
		    "truncatedAlerts: expected a non-negative integer");
	*ret = (int64_t)d;
	return 0;
}

static int
alerts_parse(struct pctx *p, const cJSON *arr, struct coord_notification *n)
{
	const cJSON *it;
	size_t count = 0;
	int rv;

	if (arr == NULL)
		return failf(p, -EINVAL, "alerts: missing");
	if (!cJSON_IsArray(arr))
		return failf(p, -EINVAL, "alerts: expected array");
	for (it = arr->child; it != NULL; it = it->next)
		if (++count > p->lim->max_alerts)
			return failf(p, -E2BIG,
			    "alerts: more than %zu alerts", p->lim->max_alerts);
	if (count == 0)
		return 0;
	n->alerts = calloc(count, sizeof(*n->alerts));
	if (n->alerts == NULL)
		return failf(p, -ENOMEM, "alerts: out of memory");
	for (it = arr->child; it != NULL; it = it->next) {
		// Counted before parsing so a failed alert is freed too.
		n->n_alerts++;
		rv = alert_parse(p, it, n->n_alerts - 1,
		    &n->alerts[n->n_alerts - 1]);
		if (rv < 0)
			return rv;
	}
	return 0;
}

static int
notification_parse(struct pctx *p, const cJSON *root,
    struct coord_notification *n)
{
	struct keyslot k[N__N] = {
		[N_VERSION] = { "version", NULL },
		[N_RECEIVER] = { "receiver", NULL },
		[N_STATUS] = { "status", NULL },
		[N_ALERTS] = { "alerts", NULL },
		[N_GROUPKEY] = { "groupKey", NULL },
		[N_GLABELS] = { "groupLabels", NULL },
		[N_CLABELS] = { "commonLabels", NULL },
		[N_CANNOT] = { "commonAnnotations", NULL },
		[N_EXTURL] = { "externalURL", NULL },
		[N_TRUNC] = { "truncatedAlerts", NULL },
	};
	const cJSON *v;
	char sbuf[200];
	bool firing;
	int rv;

	if (!cJSON_IsObject(root))
		return failf(p, -EINVAL, "body: expected a JSON object");
	rv = collect_keys(p, root, "", k, N__N);
	if (rv < 0)
		return rv;

	v = k[N_VERSION].item;
	if (v == NULL)
		return failf(p, -EINVAL, "version: missing");
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return failf(p, -EINVAL, "version: expected string");
	if (strcmp(v->valuestring, "4") != 0)
		return failf(p, -EINVAL,
		    "version: unsupported \"%s\" (want \"4\")",
		    coord_safe_str(sbuf, sizeof(sbuf), v->valuestring));
	n->version = strdup("4");
	if (n->version == NULL)
		return failf(p, -ENOMEM, "version: out of memory");

	// The top-level status is informational; an absent one stays "".
	if (k[N_STATUS].item != NULL) {
		rv = status_parse(p, k[N_STATUS].item, "", "status", &firing);
		if (rv < 0)
			return rv;
	}
	rv = get_str(p, k[N_STATUS].item, "", "status", &n->status);
	if (rv < 0)
		return rv;
	rv = get_str(p, k[N_RECEIVER].item, "", "receiver", &n->receiver);
	if (rv < 0)
		return rv;
	rv = get_str(p, k[N_GROUPKEY].item, "", "groupKey", &n->group_key);
	if (rv < 0)
		return rv;
	rv = get_str(p, k[N_EXTURL].item, "", "externalURL",
	    &n->external_url);
	if (rv < 0)
		return rv;
	rv = truncated_parse(p, k[N_TRUNC].item, &n->truncated_alerts);
	if (rv < 0)
		return rv;
	rv = kvs_parse(p, k[N_GLABELS].item, "groupLabels", KVS_LABELS,
	    &n->group_labels);
	if (rv < 0)
		return rv;
	rv = kvs_parse(p, k[N_CLABELS].item, "commonLabels", KVS_LABELS,
	    &n->common_labels);
	if (rv < 0)
		return rv;
	rv = kvs_parse(p, k[N_CANNOT].item, "commonAnnotations",
	    KVS_ANNOTATIONS, &n->common_annotations);
	if (rv < 0)
		return rv;
	return alerts_parse(p, k[N_ALERTS].item, n);
}

static bool
only_space(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

int
coord_webhook_parse(struct coord_notification **ret, const char *body,
    size_t len, const struct coord_webhook_limits *lim, char *err,
    size_t errlen)
{
	struct pctx p = {
		.lim = lim != NULL ? lim : &coord_webhook_default_limits,
		.err = err,
		.errlen = errlen,
	};
	struct coord_notification *n = NULL;
	const char *end = NULL;
	cJSON *root = NULL;
	int rv;

	*ret = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (body == NULL || len == 0 || only_space(body, len))
		return failf(&p, -EINVAL, "body: empty");
	if (len > p.lim->max_body)
		return failf(&p, -E2BIG,
		    "body: %zu bytes exceed the limit of %zu", len,
		    p.lim->max_body);
	rv = prescan(&p, body, len);
	if (rv < 0)
		return rv;

	// cJSON also records the failure position in a process-wide static
	// (cJSON_GetErrorPtr); that write races between threads but nothing
	// here reads it: the position comes back through `end`.
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root == NULL) {
		size_t off = end != NULL && end >= body ?
		    (size_t)(end - body) : 0;

		return failf(&p, -EINVAL, "body: invalid JSON near offset %zu",
		    off);
	}
	if (end == NULL || end < body || (size_t)(end - body) > len ||
	    !only_space(end, len - (size_t)(end - body))) {
		rv = failf(&p, -EINVAL, "body: trailing data after JSON at "
		    "offset %zu", end != NULL ? (size_t)(end - body) : 0);
		goto out;
	}

	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		rv = failf(&p, -ENOMEM, "body: out of memory");
		goto out;
	}
	rv = notification_parse(&p, root, n);
	if (rv < 0)
		goto out;
	*ret = n;
	n = NULL;
out:
	coord_notification_free(n);
	cJSON_Delete(root);
	return rv;
}

void
coord_notification_free(struct coord_notification *n)
{
	size_t i;

	if (n == NULL)
		return;
	free(n->version);
	free(n->receiver);
	free(n->status);
	free(n->group_key);
	free(n->external_url);
	kvs_clear(&n->group_labels);
	kvs_clear(&n->common_labels);
	kvs_clear(&n->common_annotations);
	for (i = 0; i < n->n_alerts; i++)
		alert_clear(&n->alerts[i]);
	free(n->alerts);
	free(n);
}

const char *
coord_kvs_get(const struct coord_kvs *kvs, const char *key)
{
	size_t lo = 0, hi;

	if (kvs == NULL || key == NULL)
		return NULL;
	hi = kvs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, kvs->v[mid].key);

		if (c == 0)
			return kvs->v[mid].val;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
kvs_dup(struct coord_kvs *dst, const struct coord_kvs *src)
{
	size_t i;

	dst->v = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (dst->v == NULL)
		return -ENOMEM;
	for (i = 0; i < src->n; i++) {
		dst->v[i].key = strdup(src->v[i].key);
		dst->v[i].val = strdup(src->v[i].val);
		dst->n++;
		if (dst->v[i].key == NULL || dst->v[i].val == NULL) {
			kvs_clear(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

struct coord_alert *
coord_alert_dup(const struct coord_alert *a)
{
	struct coord_alert *c;

	if (a == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->firing = a->firing;
	c->starts_ms = a->starts_ms;
	c->ends_ms = a->ends_ms;
	c->generator_url = strdup(a->generator_url ? a->generator_url : "");
	c->fingerprint = strdup(a->fingerprint ? a->fingerprint : "");
	if (c->generator_url == NULL || c->fingerprint == NULL ||
	    kvs_dup(&c->labels, &a->labels) < 0 ||
	    kvs_dup(&c->annotations, &a->annotations) < 0) {
		coord_alert_free(c);
		return NULL;
	}
	return c;
}

void
coord_alert_free(struct coord_alert *a)
{
	if (a == NULL)
		return;
	alert_clear(a);
	free(a);
}

#define FNV64_OFFSET 14695981039346656037ULL
#define FNV64_PRIME 1099511628211ULL

static uint64_t
fnv1a(uint64_t h, const char *s)
{
	// Hashes the terminating NUL too, as the separator.
	do {
		h ^= (unsigned char)*s;
		h *= FNV64_PRIME;
	} while (*s++ != '\0');
	return h;
}

static bool
ignored(const char *key, const char *const *ignore, size_t n_ignore)
{
	size_t i;

	for (i = 0; i < n_ignore; i++)
		if (ignore[i] != NULL && strcmp(key, ignore[i]) == 0)
			return true;
	return false;
}

uint64_t
coord_alert_identity(const struct coord_alert *a, const char *const *ignore,
    size_t n_ignore)
{
	uint64_t h = FNV64_OFFSET;
	size_t i;

	for (i = 0; i < a->labels.n; i++) {
		const struct coord_kv *kv = &a->labels.v[i];

		if (ignored(kv->key, ignore, n_ignore))
			continue;
		h = fnv1a(h, kv->key);
		h = fnv1a(h, kv->val);
	}
	return h;
}
