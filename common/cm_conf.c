// SPDX-License-Identifier: MIT
// cm_conf: binds a YAML document to C structs through field tables.
#include "cm_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

// Loader state: the document, where errors go, and a budget of node
// visits so that alias-heavy documents ("billion laughs") stay bounded.
struct loader {
	yaml_document_t *doc;
	const char *name;
	char *err;
	size_t errlen;
	long visits;
};

static void *
at(void *base, size_t off)
{
	return (char *)base + off;
}

int
cm_conf_errf(char *err, size_t errlen, const char *name, int line,
    const char *key, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (err != NULL && errlen > 0) {
		if (line > 0)
			snprintf(err, errlen, "%s:%d: %s: %s", name, line,
			    key != NULL && key[0] ? key : "(top)", msg);
		else
			snprintf(err, errlen, "%s: %s: %s", name,
			    key != NULL && key[0] ? key : "(top)", msg);
	}
	return -EINVAL;
}

static int
node_line(const yaml_node_t *n)
{
	return n != NULL ? (int)n->start_mark.line + 1 : 0;
}

static const char *
scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

// A plain "~", "null" or empty scalar stands for "not set".
static bool
is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = scalar(n);
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

int
cm_duration_parse(const char *s, int64_t *ret_ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	int64_t total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	while (*p != '\0') {
		char *end;
		long long v;
		size_t i, ulen = 0;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoll(p, &end, 10);
		if (errno != 0 || v > INT32_MAX)
			return -ERANGE;
		p = end;
		if (*p == '\0') {
			if (p == s + strlen(s) && total == 0 && end != s) {
				// a bare number means seconds
				*ret_ms = (int64_t)v * 1000;
				return 0;
			}
			return -EINVAL;
		}
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			ulen = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, ulen) == 0 &&
			    (p[ulen] == '\0' || (p[ulen] >= '0' && p[ulen] <= '9')))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		if ((int64_t)v > (INT64_MAX - total) / units[i].ms)
			return -ERANGE;
		total += (int64_t)v * units[i].ms;
		p += ulen;
	}
	*ret_ms = total;
	return 0;
}

int
cm_size_parse(const char *s, int64_t *ret_bytes)
{
	static const struct {
		const char *unit;
		int64_t mul;
	} units[] = {
		{ "", 1 }, { "B", 1 }, { "KiB", 1024 }, { "MiB", 1024 * 1024 },
		{ "GiB", 1024LL * 1024 * 1024 }, { "kB", 1000 },
		{ "MB", 1000 * 1000 }, { "GB", 1000LL * 1000 * 1000 },
	};
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > INT64_MAX / units[i].mul)
			return -ERANGE;
		*ret_bytes = (int64_t)v * units[i].mul;
		return 0;
	}
	return -EINVAL;
}

const char *
cm_strmap_get(const struct cm_strmap *m, const char *key)
{
	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	return NULL;
}

// With their article, for "expected a string", "expected an integer".
static const char *const type_names[] = {
	[CM_CONF_STR] = "a string",
	[CM_CONF_INT] = "an integer",
	[CM_CONF_BOOL] = "a boolean",
	[CM_CONF_DURATION] = "a duration",
	[CM_CONF_SIZE] = "a size",
	[CM_CONF_ENUM] = "a string",
	[CM_CONF_STRLIST] = "a list of strings",
	[CM_CONF_STRMAP] = "a map of strings",
	[CM_CONF_STRUCT] = "a map",
	[CM_CONF_LIST] = "a list of maps",
};

static int bind_struct(struct loader *l, void *obj,
    const struct cm_conf_field *tbl, yaml_node_t *map, const char *path);
static void free_struct(void *obj, const struct cm_conf_field *tbl);

static int
check_range(struct loader *l, const struct cm_conf_field *f, int64_t v,
    int line, const char *path)
{
	if (f->min < f->max && (v < f->min || v > f->max))
		return cm_conf_errf(l->err, l->errlen, l->name, line, path,
		    "%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
		    v, f->min, f->max);
	return 0;
}

// Binds a scalar text (from the document or a default) to a field.
static int
bind_scalar_text(struct loader *l, void *obj, const struct cm_conf_field *f,
    const char *s, int line, const char *path)
{
	int64_t v;
	char *end;
	int rv;

	switch (f->type) {
	case CM_CONF_STR: {
		char *dup = strdup(s);

		if (dup == NULL)
			return -ENOMEM;
		free(*(char **)at(obj, f->off));
		*(char **)at(obj, f->off) = dup;
		return 0;
	}
	case CM_CONF_INT:
		errno = 0;
		v = strtoll(s, &end, 10);
		if (s[0] == '\0' || *end != '\0' || errno != 0)
			return cm_conf_errf(l->err, l->errlen, l->name, line,
			    path, "expected an integer, got \"%s\"", s);
		rv = check_range(l, f, v, line, path);
		if (rv == 0)
			*(int64_t *)at(obj, f->off) = v;
		return rv;
	case CM_CONF_BOOL:
		if (strcmp(s, "true") == 0)
			*(bool *)at(obj, f->off) = true;
		else if (strcmp(s, "false") == 0)
			*(bool *)at(obj, f->off) = false;
		else
			return cm_conf_errf(l->err, l->errlen, l->name, line,
			    path, "expected true or false, got \"%s\"", s);
		return 0;
	case CM_CONF_DURATION:
	case CM_CONF_SIZE:
		rv = f->type == CM_CONF_DURATION ? cm_duration_parse(s, &v) :
		    cm_size_parse(s, &v);
		if (rv < 0)
			return cm_conf_errf(l->err, l->errlen, l->name, line,
			    path, "expected %s (%s), got \"%s\"",
			    type_names[f->type],
			    f->type == CM_CONF_DURATION ? "e.g. 500ms, 30s, 5m, 1h" :
			    "e.g. 4096, 64KiB, 1MiB", s);
		rv = check_range(l, f, v, line, path);
		if (rv == 0)
			*(int64_t *)at(obj, f->off) = v;
		return rv;
	case CM_CONF_ENUM:
		for (int i = 0; f->choices[i] != NULL; i++) {
			if (strcmp(s, f->choices[i]) == 0) {
				*(int *)at(obj, f->off) = i;
				return 0;
			}
		}
		{
			char list[256] = "";
			size_t o = 0;

			for (int i = 0; f->choices[i] != NULL && o < sizeof(list); i++)
				o += (size_t)snprintf(list + o, sizeof(list) - o,
				    "%s%s", i ? ", " : "", f->choices[i]);
			return cm_conf_errf(l->err, l->errlen, l->name, line,
			    path, "unknown value \"%s\" (expected one of: %s)",
			    s, list);
		}
	default:
		return cm_conf_errf(l->err, l->errlen, l->name, line, path,
		    "expected %s, got a scalar", type_names[f->type]);
	}
}

static yaml_node_t *
node_get(struct loader *l, int id)
{
	l->visits++;
	return yaml_document_get_node(l->doc, id);
}

// The visit budget, checked for every element of a list or map too: a
// big file (--config-max-size up to 16 MiB) holds a million scalars.
static int
over_budget(struct loader *l, const yaml_node_t *n, const char *path)
{
	if (l->visits <= CM_CONF_MAX_NODES)
		return 0;
	return cm_conf_errf(l->err, l->errlen, l->name, node_line(n), path,
	    "document too deep or too large (more than %d nodes)",
	    CM_CONF_MAX_NODES);
}

// A map key and its place, sorted to find duplicates (bind_strmap).
struct keypos {
	const char *key;
	size_t i;
};

static int
key_order(const void *a, const void *b)
{
	const struct keypos *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

static int
expect(struct loader *l, yaml_node_t *n, yaml_node_type_t t,
    const struct cm_conf_field *f, const char *path)
{
	static const char *const kinds[] = {
		[YAML_SCALAR_NODE] = "a scalar",
		[YAML_SEQUENCE_NODE] = "a list",
		[YAML_MAPPING_NODE] = "a map",
	};

	if (n->type == t)
		return 0;
	return cm_conf_errf(l->err, l->errlen, l->name, node_line(n), path,
	    "expected %s, got %s", type_names[f->type],
	    n->type <= YAML_MAPPING_NODE && kinds[n->type] ? kinds[n->type] :
	    "nothing");
}

static int
bind_strlist(struct loader *l, struct cm_strlist *sl,
    const struct cm_conf_field *f, yaml_node_t *n, const char *path)
{
	yaml_node_item_t *it;
	size_t cap;
	int rv;

	rv = expect(l, n, YAML_SEQUENCE_NODE, f, path);
	if (rv < 0)
		return rv;
	cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	sl->v = calloc(cap + 1, sizeof(char *));
	if (sl->v == NULL)
		return -ENOMEM;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	    it++) {
		yaml_node_t *e = node_get(l, *it);
		char epath[256];

		snprintf(epath, sizeof(epath), "%s[%zu]", path, sl->n);
		rv = over_budget(l, n, epath);
		if (rv < 0)
			return rv;
		if (e == NULL || e->type != YAML_SCALAR_NODE)
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(e ? e : n), epath, "expected a string");
		sl->v[sl->n] = strdup(scalar(e));
		if (sl->v[sl->n] == NULL)
			return -ENOMEM;
		sl->n++;
	}
	return 0;
}

static int
bind_strmap(struct loader *l, struct cm_strmap *sm,
    const struct cm_conf_field *f, yaml_node_t *n, const char *path)
{
	yaml_node_pair_t *p;
	size_t cap, dup = SIZE_MAX;
	struct keypos *order;
	int rv;

	rv = expect(l, n, YAML_MAPPING_NODE, f, path);
	if (rv < 0)
		return rv;
	cap = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	sm->keys = calloc(cap + 1, sizeof(char *));
	sm->vals = calloc(cap + 1, sizeof(char *));
	if (sm->keys == NULL || sm->vals == NULL)
		return -ENOMEM;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_get(l, p->key), *v = node_get(l, p->value);
		char epath[256];

		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(k ? k : n), path, "keys must be strings");
		snprintf(epath, sizeof(epath), "%s.%s", path, scalar(k));
		rv = over_budget(l, k, epath);
		if (rv < 0)
			return rv;
		if (v->type != YAML_SCALAR_NODE)
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(v), epath, "expected a string value");
		sm->keys[sm->n] = strdup(scalar(k));
		sm->vals[sm->n] = strdup(scalar(v));
		if (sm->keys[sm->n] == NULL || sm->vals[sm->n] == NULL) {
			sm->n++; // so that free releases the partial pair
			return -ENOMEM;
		}
		sm->n++;
	}
	// Duplicates by sorting, not by a search per key (quadratic: 60,000
	// keys took seconds). The first repeated key in file order is named.
	if (sm->n < 2)
		return 0;
	order = malloc(sm->n * sizeof(*order));
	if (order == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sm->n; i++)
		order[i] = (struct keypos){ sm->keys[i], i };
	qsort(order, sm->n, sizeof(*order), key_order);
	for (size_t i = 1; i < sm->n; i++)
		if (strcmp(order[i - 1].key, order[i].key) == 0 &&
		    order[i].i < dup)
			dup = order[i].i;
	free(order);
	if (dup != SIZE_MAX) {
		char epath[256];

		snprintf(epath, sizeof(epath), "%s.%s", path, sm->keys[dup]);
		rv = cm_conf_errf(l->err, l->errlen, l->name, node_line(
		    yaml_document_get_node(l->doc,
		    n->data.mapping.pairs.start[dup].key)), epath,
		    "duplicate key");
	}
	return rv;
}

static void
set_line(void *obj, const struct cm_conf_field *f, int line)
{
	if (f->line_off > 0)
		*(int *)at(obj, f->line_off - 1) = line;
}

// Applies the defaults of a table (recursing into nested structs).
static int
apply_defaults(struct loader *l, void *obj, const struct cm_conf_field *tbl,
    const char *path)
{
	int rv;

	for (const struct cm_conf_field *f = tbl; f->key != NULL; f++) {
		char fpath[256];

		snprintf(fpath, sizeof(fpath), "%s%s%s", path, path[0] ? "." : "",
		    f->key);
		if (f->type == CM_CONF_STRUCT) {
			rv = apply_defaults(l, at(obj, f->off), f->sub, fpath);
			if (rv < 0)
				return rv;
			continue;
		}
		if (f->def == NULL)
			continue;
		rv = bind_scalar_text(l, obj, f, f->def, 0, fpath);
		if (rv < 0)
			return rv;
	}
	return 0;
}

static int
bind_list(struct loader *l, struct cm_list *list,
    const struct cm_conf_field *f, yaml_node_t *n, const char *path)
{
	yaml_node_item_t *it;
	size_t cap;
	int rv;

	rv = expect(l, n, YAML_SEQUENCE_NODE, f, path);
	if (rv < 0)
		return rv;
	cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	list->v = calloc(cap + 1, f->elem_size);
	if (list->v == NULL)
		return -ENOMEM;
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	    it++) {
		yaml_node_t *e = node_get(l, *it);
		void *elem = (char *)list->v + list->n * f->elem_size;
		char epath[256];

		snprintf(epath, sizeof(epath), "%s[%zu]", path, list->n);
		rv = over_budget(l, n, epath);
		if (rv < 0)
			return rv;
		list->n++; // counted first: free releases a partial element
		if (e == NULL)
			return -EINVAL;
		set_line(elem, f, node_line(e));
		rv = apply_defaults(l, elem, f->sub, epath);
		if (rv == 0)
			rv = bind_struct(l, elem, f->sub, e, epath);
		if (rv < 0)
			return rv;
	}
	return 0;
}

static int
bind_field(struct loader *l, void *obj, const struct cm_conf_field *f,
    yaml_node_t *v, const char *path)
{
	int rv;

	switch (f->type) {
	case CM_CONF_STRLIST:
		return bind_strlist(l, at(obj, f->off), f, v, path);
	case CM_CONF_STRMAP:
		return bind_strmap(l, at(obj, f->off), f, v, path);
	case CM_CONF_LIST:
		return bind_list(l, at(obj, f->off), f, v, path);
	case CM_CONF_STRUCT:
		set_line(at(obj, f->off), f, node_line(v));
		return bind_struct(l, at(obj, f->off), f->sub, v, path);
	default:
		rv = expect(l, v, YAML_SCALAR_NODE, f, path);
		if (rv < 0)
			return rv;
		return bind_scalar_text(l, obj, f, scalar(v), node_line(v), path);
	}
}

static int
bind_struct(struct loader *l, void *obj, const struct cm_conf_field *tbl,
    yaml_node_t *map, const char *path)
{
	yaml_node_pair_t *p;
	size_t nfields = 0;
	int rv, depth = 0;

	for (const char *c = path; *c; c++)
		depth += (*c == '.' || *c == '[');
	if (depth > CM_CONF_MAX_DEPTH || l->visits > CM_CONF_MAX_NODES)
		return cm_conf_errf(l->err, l->errlen, l->name, node_line(map),
		    path, "document too deep or too large");
	if (map->type != YAML_MAPPING_NODE)
		return cm_conf_errf(l->err, l->errlen, l->name, node_line(map),
		    path, "expected a map");
	while (tbl[nfields].key != NULL)
		nfields++;

	bool seen[nfields + 1];

	memset(seen, 0, sizeof(seen));
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	    p++) {
		yaml_node_t *k = node_get(l, p->key), *v = node_get(l, p->value);
		char fpath[256];
		size_t i;

		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(map), path, "keys must be strings");
		snprintf(fpath, sizeof(fpath), "%s%s%s", path,
		    path[0] ? "." : "", scalar(k));
		for (i = 0; i < nfields; i++)
			if (strcmp(tbl[i].key, scalar(k)) == 0)
				break;
		if (i == nfields)
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(k), fpath, "unknown key");
		if (seen[i])
			return cm_conf_errf(l->err, l->errlen, l->name,
			    node_line(k), fpath, "duplicate key");
		seen[i] = true;
		if (is_null(v)) {
			seen[i] = tbl[i].def != NULL; // null = "use default"
			continue;
		}
		rv = bind_field(l, obj, &tbl[i], v, fpath);
		if (rv < 0)
			return rv;
	}
	for (size_t i = 0; i < nfields; i++) {
		char fpath[256];

		if (!tbl[i].required || seen[i])
			continue;
		snprintf(fpath, sizeof(fpath), "%s%s%s", path,
		    path[0] ? "." : "", tbl[i].key);
		return cm_conf_errf(l->err, l->errlen, l->name, node_line(map),
		    fpath, "required key is missing");
	}
	return 0;
}

// Frees what the loader allocated for one member and zeroes the member,
// nested structs included, so that freeing twice is harmless.
static void
free_field(void *obj, const struct cm_conf_field *f)
{
	static const size_t sizes[] = {
		[CM_CONF_STR] = sizeof(char *),
		[CM_CONF_INT] = sizeof(int64_t),
		[CM_CONF_BOOL] = sizeof(bool),
		[CM_CONF_DURATION] = sizeof(int64_t),
		[CM_CONF_SIZE] = sizeof(int64_t),
		[CM_CONF_ENUM] = sizeof(int),
		[CM_CONF_STRLIST] = sizeof(struct cm_strlist),
		[CM_CONF_STRMAP] = sizeof(struct cm_strmap),
		[CM_CONF_LIST] = sizeof(struct cm_list),
	};

	switch (f->type) {
	case CM_CONF_STR:
		free(*(char **)at(obj, f->off));
		break;
	case CM_CONF_STRLIST: {
		struct cm_strlist *sl = at(obj, f->off);

		for (size_t i = 0; i < sl->n; i++)
			free(sl->v[i]);
		free(sl->v);
		break;
	}
	case CM_CONF_STRMAP: {
		struct cm_strmap *sm = at(obj, f->off);

		for (size_t i = 0; i < sm->n; i++) {
			free(sm->keys[i]);
			free(sm->vals[i]);
		}
		free(sm->keys);
		free(sm->vals);
		break;
	}
	case CM_CONF_STRUCT:
		free_struct(at(obj, f->off), f->sub);
		return; // its members are zeroed; other bytes are not ours
	case CM_CONF_LIST: {
		struct cm_list *list = at(obj, f->off);

		for (size_t i = 0; i < list->n; i++)
			free_struct((char *)list->v + i * f->elem_size, f->sub);
		free(list->v);
		break;
	}
	default:
		break;
	}
	memset(at(obj, f->off), 0, sizes[f->type]);
}

static void
free_struct(void *obj, const struct cm_conf_field *tbl)
{
	for (const struct cm_conf_field *f = tbl; f->key != NULL; f++)
		free_field(obj, f);
}

void
cm_conf_free(void *obj, const struct cm_conf_field *tbl)
{
	if (obj != NULL)
		free_struct(obj, tbl);
}

// The walk behind cm_yaml_depth_check and the loader's own check: also
// counts anchors and nodes (scalars, collections, aliases) when their
// limits are not 0: -E2BIG with *ret_what "anchors" or "nodes".
static int
yaml_walk(const char *text, size_t len, int max_depth, size_t max_anchors,
    size_t max_nodes, size_t *ret_line, const char **ret_what)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, rv = 0;
	size_t anchors = 0, nodes = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && rv == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			// A syntax error is left to yaml_parser_load.
			if (parser.error == YAML_MEMORY_ERROR)
				rv = -ENOMEM;
			break;
		}
		switch (ev.type) {
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			// libyaml's loader searches its anchors one by one for
			// every anchor and alias: quadratic in their number.
			anchors += (ev.type == YAML_SCALAR_EVENT &&
			    ev.data.scalar.anchor != NULL) ||
			    (ev.type == YAML_SEQUENCE_START_EVENT &&
			    ev.data.sequence_start.anchor != NULL) ||
			    (ev.type == YAML_MAPPING_START_EVENT &&
			    ev.data.mapping_start.anchor != NULL);
			nodes++;
			if ((max_anchors > 0 && anchors > max_anchors) ||
			    (max_nodes > 0 && nodes > max_nodes)) {
				*ret_line = ev.start_mark.line + 1;
				*ret_what = max_anchors > 0 &&
				    anchors > max_anchors ? "anchors" : "nodes";
				rv = -E2BIG;
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT ||
			    ev.type == YAML_ALIAS_EVENT)
				break;
			if (++depth > max_depth) {
				*ret_line = ev.start_mark.line + 1;
				rv = -EINVAL;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_DOCUMENT_END_EVENT:
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rv;
}

int
cm_yaml_depth_check(const char *text, size_t len, int max_depth,
    size_t *ret_line)
{
	const char *what;

	return yaml_walk(text, len, max_depth, 0, 0, ret_line, &what);
}

int
cm_yaml_precheck(const char *text, size_t len, int max_depth,
    size_t *ret_line, char *why, size_t whylen)
{
	const char *what = "";
	int rv;

	// libyaml checks each %TAG directive against all before it, before
	// the first event: count the lines that start with '%' instead.
	for (size_t i = 0, n = 0, ln = 1; i < len; i++) {
		if (text[i] == '%' && (i == 0 || text[i - 1] == '\n') &&
		    ++n > CM_CONF_MAX_DIRECTIVES) {
			*ret_line = ln;
			snprintf(why, whylen, "more than %d lines starting "
			    "with '%%' (YAML directives)",
			    CM_CONF_MAX_DIRECTIVES);
			return -E2BIG;
		}
		ln += text[i] == '\n';
	}
	rv = yaml_walk(text, len, max_depth, CM_CONF_MAX_ANCHORS,
	    CM_CONF_MAX_YAML_NODES, ret_line, &what);
	if (rv == -EINVAL)
		snprintf(why, whylen, "YAML nests deeper than %d levels",
		    max_depth);
	else if (rv == -E2BIG)
		snprintf(why, whylen, "more than %d YAML %s",
		    strcmp(what, "anchors") == 0 ? CM_CONF_MAX_ANCHORS :
		    CM_CONF_MAX_YAML_NODES, what);
	return rv;
}

// The file limit; written only by cm_conf_set_max_file, at startup.
static size_t max_file = CM_CONF_MAX_FILE;

size_t
cm_conf_max_file(void)
{
	return max_file;
}

int
cm_conf_set_max_file(const char *opt, char *err, size_t errlen)
{
	const char *what = "--config-max-size", *v = opt;
	int64_t n;

	if (v == NULL) {
		what = CM_CONF_MAX_FILE_ENV;
		v = getenv(CM_CONF_MAX_FILE_ENV);
		if (v == NULL || v[0] == '\0')
			return 0;
	}
	if (cm_size_parse(v, &n) < 0) {
		snprintf(err, errlen, "%s: expected a size (e.g. 4096, 512KiB, "
		    "4MiB), got \"%.40s\"", what, v);
		return -EINVAL;
	}
	if (n < CM_CONF_MIN_FILE || n > CM_CONF_MAX_FILE_CEIL) {
		snprintf(err, errlen, "%s: %lld bytes is outside %d..%d", what,
		    (long long)n, CM_CONF_MIN_FILE, CM_CONF_MAX_FILE_CEIL);
		return -EINVAL;
	}
	max_file = (size_t)n;
	return 0;
}

int
cm_conf_load_mem(void *out, const struct cm_conf_field *tbl, const char *name,
    const char *text, size_t len, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct loader l = { .doc = &doc, .name = name, .err = err,
		.errlen = errlen };
	yaml_node_t *root;
	char why[96];
	size_t line = 0;
	int rv;

	if (len > max_file)
		return cm_conf_errf(err, errlen, name, 0, NULL,
		    "file is larger than %zu bytes (the limit: "
		    "--config-max-size or " CM_CONF_MAX_FILE_ENV ")", max_file);
	rv = cm_yaml_precheck(text, len, CM_CONF_MAX_DEPTH, &line, why,
	    sizeof(why));
	if (rv == -EINVAL || rv == -E2BIG)
		return cm_conf_errf(err, errlen, name, (int)line, NULL, "%s",
		    why);
	if (rv < 0)
		return rv;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rv = cm_conf_errf(err, errlen, name,
		    (int)parser.problem_mark.line + 1, NULL, "YAML syntax: %s%s%s",
		    parser.problem ? parser.problem : "parse error",
		    parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return rv;
	}
	root = yaml_document_get_root_node(&doc);
	rv = apply_defaults(&l, out, tbl, "");
	if (rv == 0 && root == NULL)
		rv = cm_conf_errf(err, errlen, name, 0, NULL, "empty document");
	if (rv == 0)
		rv = bind_struct(&l, out, tbl, root, "");
	if (rv == -ENOMEM)
		cm_conf_errf(err, errlen, name, 0, NULL, "out of memory");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rv < 0)
		cm_conf_free(out, tbl);
	return rv;
}

int
cm_conf_check_file(int fd, const char *path, size_t *size, char *err,
    size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return cm_conf_errf(err, errlen, path, 0, NULL,
		    "not a regular file");
	if ((uint64_t)st.st_size > max_file)
		return cm_conf_errf(err, errlen, path, 0, NULL,
		    "file of %jd bytes is larger than %zu bytes (the limit: "
		    "--config-max-size or " CM_CONF_MAX_FILE_ENV ")",
		    (intmax_t)st.st_size, max_file);
	*size = (size_t)st.st_size;
	return 0;
}

int
cm_conf_load(void *out, const struct cm_conf_field *tbl, const char *path,
    char *err, size_t errlen)
{
	FILE *f;
	char *text;
	size_t n, size;
	int rv;

	f = fopen(path, "rbe");
	if (f == NULL) {
		rv = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return rv;
	}
	rv = cm_conf_check_file(fileno(f), path, &size, err, errlen);
	if (rv < 0) {
		fclose(f);
		return rv;
	}
	text = malloc(size + 1);
	if (text == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(text, 1, size, f);
	fclose(f);
	rv = cm_conf_load_mem(out, tbl, path, text, n, err, errlen);
	free(text);
	return rv;
}

void
cm_conf_print_reference(const struct cm_conf_field *tbl, int indent)
{
	for (const struct cm_conf_field *f = tbl; f->key != NULL; f++) {
		const char *def = f->required ? "required" :
		    f->def != NULL && f->def[0] != '\0' ? f->def : "-";

		printf("%*s%-22s %-15s %-10s", indent, "", f->key,
		    strchr(type_names[f->type], ' ') + 1, def);
		// A default wider than its column puts the help under it,
		// in the help's column, rather than right after it.
		if (strlen(def) > 10 && f->help != NULL)
			printf("\n%*s", indent + 22 + 1 + 15 + 1 + 10, "");
		printf(" %s\n", f->help ? f->help : "");
		if (f->sub != NULL)
			cm_conf_print_reference(f->sub, indent + 2);
	}
}
