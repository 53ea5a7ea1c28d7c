// SPDX-License-Identifier: MIT
// cm_k8s_util: Kubernetes name rules, API paths, query escaping, JSON
// accessors and label selectors (pure functions, see cm_k8s.h).
#include "cm_k8s.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cm_quantity.h"

// ---------------------------------------------------------------------
// Names

static bool
lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
alnum(char c)
{
	return lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

// One DNS-1123 label within s[0..n): [a-z0-9]([-a-z0-9]*[a-z0-9])?.
static bool
label_part(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (i = 1; i + 1 < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool
subdomain(const char *s, size_t n)
{
	size_t start = 0, i;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!label_part(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

bool
cm_k8s_name_valid(enum cm_k8s_name_rule rule, const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, 254);
	switch (rule) {
	case CM_K8S_NAME_LABEL:
		return n <= 63 && label_part(s, n);
	case CM_K8S_NAME_SUBDOMAIN:
		return subdomain(s, n);
	case CM_K8S_NAME_DNS1035:
		return n <= 63 && label_part(s, n) && s[0] >= 'a' && s[0] <= 'z';
	default:
		return false;
	}
}

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? of at most 63 bytes.
static bool
qualified_part(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
		return false;
	for (i = 1; i + 1 < n; i++)
		if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

bool
cm_k8s_qualified_name_valid(const char *s)
{
	const char *slash;
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, 320);
	slash = memchr(s, '/', n);
	if (slash == NULL)
		return qualified_part(s, n);
	return subdomain(s, (size_t)(slash - s)) &&
	    qualified_part(slash + 1, n - (size_t)(slash - s) - 1);
}

bool
cm_k8s_label_value_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, 64);
	return n == 0 || qualified_part(s, n);
}

// ---------------------------------------------------------------------
// Paths and queries

// Lowercase [a-z0-9.-] word; `slashes` of them allowed inside.
static bool
word_ok(const char *s, int slashes)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 128)
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '/' && slashes > 0 && i > 0 && s[i + 1] != '\0') {
			slashes--;
			continue;
		}
		if (!lower_alnum(s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	}
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int
cm_k8s_path(char *buf, size_t n, const char *api, const char *ns,
    const char *plural, const char *name, const char *sub)
{
	size_t o;
	int w;

	if (buf == NULL || n == 0 || !word_ok(api, 1) || !word_ok(plural, 0) ||
	    (sub != NULL && !word_ok(sub, 0)) ||
	    (ns != NULL && !cm_k8s_name_valid(CM_K8S_NAME_LABEL, ns)) ||
	    (name != NULL && !cm_k8s_name_valid(CM_K8S_NAME_SUBDOMAIN, name)) ||
	    (sub != NULL && name == NULL))
		return -EINVAL;
	w = snprintf(buf, n, "%s%s", strchr(api, '/') ? "/apis/" : "/api/",
	    api);
	o = (size_t)w;
	if (ns != NULL && o < n)
		o += (size_t)snprintf(buf + o, n - o, "/namespaces/%s", ns);
	if (o < n)
		o += (size_t)snprintf(buf + o, n - o, "/%s", plural);
	if (name != NULL && o < n)
		o += (size_t)snprintf(buf + o, n - o, "/%s", name);
	if (sub != NULL && o < n)
		o += (size_t)snprintf(buf + o, n - o, "/%s", sub);
	if (o >= n) {
		buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

int
cm_k8s_query_add(char *buf, size_t n, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len, o, i;

	if (buf == NULL || key == NULL || value == NULL || key[0] == '\0')
		return -EINVAL;
	for (i = 0; key[i] != '\0'; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= 'A' && key[i] <= 'Z')))
			return -EINVAL;
	len = strnlen(buf, n);
	if (len == n)
		return -EINVAL;
	o = len;
	if (o + 1 + i + 1 >= n)
		return -ENAMETOOLONG;
	buf[o++] = strchr(buf, '?') != NULL ? '&' : '?';
	memcpy(buf + o, key, i);
	o += i;
	buf[o++] = '=';
	for (i = 0; value[i] != '\0'; i++) {
		unsigned char c = (unsigned char)value[i];

		if (alnum((char)c) || c == '-' || c == '.' || c == '_' ||
		    c == '~') {
			if (o + 1 >= n)
				goto full;
			buf[o++] = (char)c;
		} else {
			if (o + 3 >= n)
				goto full;
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return 0;
full:
	buf[len] = '\0';
	return -ENAMETOOLONG;
}

int
cm_k8s_pointer_escape(char *buf, size_t n, const char *key)
{
	size_t o = 0, i;

	for (i = 0; key[i] != '\0'; i++) {
		const char *rep = key[i] == '~' ? "~0" : key[i] == '/' ? "~1" :
		    NULL;
		size_t l = rep != NULL ? 2 : 1;

		if (o + l >= n) {
			if (n > 0)
				buf[0] = '\0';
			return -ENAMETOOLONG;
		}
		if (rep != NULL)
			memcpy(buf + o, rep, 2);
		else
			buf[o] = key[i];
		o += l;
	}
	if (o >= n)
		return -ENAMETOOLONG;
	buf[o] = '\0';
	return 0;
}

// ---------------------------------------------------------------------
// JSON accessors

static const cJSON *
walk(const cJSON *o, va_list ap)
{
	const char *k;

	while ((k = va_arg(ap, const char *)) != NULL) {
		if (o == NULL || !cJSON_IsObject(o))
			return NULL;
		o = cJSON_GetObjectItemCaseSensitive(o, k);
	}
	return o;
}

const cJSON *
cm_k8s_at(const cJSON *o, ...)
{
	va_list ap;

	va_start(ap, o);
	o = walk(o, ap);
	va_end(ap);
	return o;
}

const char *
cm_k8s_str(const cJSON *o, ...)
{
	va_list ap;

	va_start(ap, o);
	o = walk(o, ap);
	va_end(ap);
	return cJSON_IsString(o) ? o->valuestring : NULL;
}

static int
json_int(const cJSON *v, int64_t *ret)
{
	double d;

	if (v == NULL || cJSON_IsNull(v))
		return -ENOENT;
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < -9007199254740992.0 ||
	    d > 9007199254740992.0)
		return -EINVAL;
	*ret = (int64_t)d;
	return 0;
}

int
cm_k8s_int(const cJSON *o, int64_t *ret, ...)
{
	va_list ap;

	va_start(ap, ret);
	o = walk(o, ap);
	va_end(ap);
	return json_int(o, ret);
}

bool
cm_k8s_bool(const cJSON *o, int def, ...)
{
	va_list ap;

	va_start(ap, def);
	o = walk(o, ap);
	va_end(ap);
	if (cJSON_IsBool(o))
		return cJSON_IsTrue(o);
	return def != 0;
}

int
cm_k8s_quantity(const cJSON *v, int scale, int64_t *ret)
{
	char num[64];

	if (v == NULL || cJSON_IsNull(v))
		return -ENOENT;
	if (cJSON_IsString(v))
		return cm_quantity_parse_scaled(v->valuestring, scale, ret);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return -EINVAL;
	// cJSON keeps only the double: print it back exactly enough.
	if (v->valuedouble == floor(v->valuedouble) &&
	    fabs(v->valuedouble) < 9007199254740992.0)
		snprintf(num, sizeof(num), "%.0f", v->valuedouble);
	else
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
	return cm_quantity_parse_scaled(num, scale, ret);
}

// ---------------------------------------------------------------------
// Label selectors

static const char *
label(const cJSON *labels, const char *key)
{
	const cJSON *v = cJSON_IsObject(labels) ?
	    cJSON_GetObjectItemCaseSensitive(labels, key) : NULL;

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
in_values(const cJSON *values, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, values)
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return true;
	return false;
}

bool
cm_k8s_selector_matches(const cJSON *selector, const cJSON *labels)
{
	const cJSON *ml, *me, *e, *kv;

	if (!cJSON_IsObject(selector))
		return false;
	ml = cm_k8s_at(selector, "matchLabels", NULL);
	if (!cJSON_IsObject(ml))
		ml = NULL;
	cJSON_ArrayForEach(kv, ml) {
		const char *have = label(labels, kv->string);

		if (!cJSON_IsString(kv) || have == NULL ||
		    strcmp(have, kv->valuestring) != 0)
			return false;
	}
	me = cm_k8s_at(selector, "matchExpressions", NULL);
	if (!cJSON_IsArray(me))
		me = NULL;
	cJSON_ArrayForEach(e, me) {
		const char *key = cm_k8s_str(e, "key", NULL);
		const char *op = cm_k8s_str(e, "operator", NULL);
		const cJSON *vals = cm_k8s_at(e, "values", NULL);
		const char *have;

		if (key == NULL || op == NULL)
			return false;
		have = label(labels, key);
		if (strcmp(op, "In") == 0) {
			if (have == NULL || !in_values(vals, have))
				return false;
		} else if (strcmp(op, "NotIn") == 0) {
			if (have != NULL && in_values(vals, have))
				return false;
		} else if (strcmp(op, "Exists") == 0) {
			if (have == NULL)
				return false;
		} else if (strcmp(op, "DoesNotExist") == 0) {
			if (have != NULL)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

// Appends printf output at *o; false when it does not fit.
static bool
put(char *buf, size_t n, size_t *o, const char *fmt, const char *a,
    const char *b)
{
	int w;

	if (*o >= n)
		return false;
	w = snprintf(buf + *o, n - *o, fmt, a, b);
	if (w < 0 || (size_t)w >= n - *o)
		return false;
	*o += (size_t)w;
	return true;
}

int
cm_k8s_selector_string(const cJSON *selector, char *buf, size_t n)
{
	const cJSON *ml, *me, *e, *kv, *v;
	size_t o = 0;
	const char *sep = "";

	if (buf == NULL || n == 0 || !cJSON_IsObject(selector))
		return -EINVAL;
	buf[0] = '\0';
	ml = cm_k8s_at(selector, "matchLabels", NULL);
	if (!cJSON_IsObject(ml))
		ml = NULL;
	cJSON_ArrayForEach(kv, ml) {
		if (!cJSON_IsString(kv) ||
		    !cm_k8s_qualified_name_valid(kv->string) ||
		    !cm_k8s_label_value_valid(kv->valuestring))
			return -EINVAL;
		if (!put(buf, n, &o, "%s%s", sep, kv->string) ||
		    !put(buf, n, &o, "=%s%s", kv->valuestring, ""))
			return -ENAMETOOLONG;
		sep = ",";
	}
	me = cm_k8s_at(selector, "matchExpressions", NULL);
	if (!cJSON_IsArray(me))
		me = NULL;
	cJSON_ArrayForEach(e, me) {
		const char *key = cm_k8s_str(e, "key", NULL);
		const char *op = cm_k8s_str(e, "operator", NULL);
		const cJSON *vals = cm_k8s_at(e, "values", NULL);
		const char *vsep = "";
		bool set;

		if (!cm_k8s_qualified_name_valid(key) || op == NULL)
			return -EINVAL;
		set = strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0;
		if (strcmp(op, "Exists") == 0) {
			if (!put(buf, n, &o, "%s%s", sep, key))
				return -ENAMETOOLONG;
		} else if (strcmp(op, "DoesNotExist") == 0) {
			if (!put(buf, n, &o, "%s!%s", sep, key))
				return -ENAMETOOLONG;
		} else if (set) {
			if (!cJSON_IsArray(vals) || cJSON_GetArraySize(vals) == 0)
				return -EINVAL;
			if (!put(buf, n, &o, "%s%s", sep, key) ||
			    !put(buf, n, &o, " %s (%s", op[0] == 'I' ? "in" :
			    "notin", ""))
				return -ENAMETOOLONG;
			cJSON_ArrayForEach(v, vals) {
				if (!cJSON_IsString(v) ||
				    !cm_k8s_label_value_valid(v->valuestring))
					return -EINVAL;
				if (!put(buf, n, &o, "%s%s", vsep,
				    v->valuestring))
					return -ENAMETOOLONG;
				vsep = ",";
			}
			if (!put(buf, n, &o, ")%s%s", "", ""))
				return -ENAMETOOLONG;
		} else {
			return -EINVAL;
		}
		sep = ",";
	}
	return 0;
}

// ---------------------------------------------------------------------
// Pods and owners

bool
cm_k8s_pod_ready(const cJSON *pod)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cm_k8s_at(pod, "status", "conditions", NULL)) {
		const char *t = cm_k8s_str(c, "type", NULL);
		const char *s = cm_k8s_str(c, "status", NULL);

		if (t != NULL && strcmp(t, "Ready") == 0)
			return s != NULL && strcmp(s, "True") == 0;
	}
	return false;
}

bool
cm_k8s_terminating(const cJSON *obj)
{
	const cJSON *d = cm_k8s_at(obj, "metadata", "deletionTimestamp", NULL);

	return d != NULL && !cJSON_IsNull(d);
}

const cJSON *
cm_k8s_controller_ref(const cJSON *obj)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, cm_k8s_at(obj, "metadata", "ownerReferences",
	    NULL))
		if (cm_k8s_bool(r, false, "controller", NULL))
			return r;
	return NULL;
}
