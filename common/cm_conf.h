// SPDX-License-Identifier: MIT
// cm_conf: YAML configuration bound to C structs through declarative
// field tables. One table per struct names each key, its type, its offset,
// whether it is required, its default and a one-line description. The
// loader rejects unknown keys, duplicate keys, wrong types, out-of-range
// numbers and missing required keys, with "file:line: path.to.key: reason".
//
// Everything the loader allocates inside the target struct is released by
// cm_conf_free() with the same table.
#ifndef CM_CONF_H
#define CM_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Configuration files larger than the file limit are refused. Its default
// is CM_CONF_MAX_FILE; a binary may set it within CM_CONF_MIN_FILE..
// CM_CONF_MAX_FILE_CEIL (both take --config-max-size and the environment
// variable CM_CONF_MAX_FILE_ENV). Files also hold at most
// CM_CONF_MAX_NODES YAML nodes, whatever their size.
#define CM_CONF_MAX_FILE (1024 * 1024) // bytes; the default file limit
#define CM_CONF_MIN_FILE 4096
#define CM_CONF_MAX_FILE_CEIL (16 * 1024 * 1024)
#define CM_CONF_MAX_FILE_ENV "REFLEX_CONFIG_MAX_SIZE"
#define CM_CONF_MAX_DEPTH 32
#define CM_CONF_MAX_NODES 100000
// Before libyaml loads a file: at most this many anchors (its loader is
// quadratic in them: 75,000 anchors in 1 MiB took a minute) and YAML
// nodes (scalars, collections and aliases; what binding visits is
// bounded by CM_CONF_MAX_NODES).
#define CM_CONF_MAX_ANCHORS 1000
// Lines starting with '%' (YAML directives; libyaml compares each %TAG
// with all before it: 39,000 in 1 MiB took seconds).
#define CM_CONF_MAX_DIRECTIVES 100
#define CM_CONF_MAX_YAML_NODES (2 * CM_CONF_MAX_NODES)

enum cm_conf_type {
	CM_CONF_STR,	  // char *, owned
	CM_CONF_INT,	  // int64_t
	CM_CONF_BOOL,	  // bool
	CM_CONF_DURATION, // int64_t milliseconds: "250ms" "5s" "5m" "1h30m"
	CM_CONF_SIZE,	  // int64_t bytes: "4096" "64KiB" "1MiB" "1GiB"
	CM_CONF_ENUM,	  // int: index into .choices
	CM_CONF_STRLIST,  // struct cm_strlist
	CM_CONF_STRMAP,	  // struct cm_strmap (keys kept in file order)
	CM_CONF_STRUCT,	  // nested struct described by .sub
	CM_CONF_LIST,	  // struct cm_list of .elem_size structs (.sub)
};

struct cm_strlist {
	char **v;
	size_t n;
};

struct cm_strmap {
	char **keys;
	char **vals;
	size_t n;
};

struct cm_list {
	void *v; // array of n elements of the field's elem_size
	size_t n;
};

struct cm_conf_field {
	const char *key;
	enum cm_conf_type type;
	size_t off;
	bool required;
	const char *def;		     // default, as YAML scalar text
	int64_t min, max;		     // numeric bounds, used if min < max
	const char *const *choices;	     // ENUM: NULL-terminated names
	const struct cm_conf_field *sub;     // STRUCT and LIST
	size_t elem_size;		     // LIST
	size_t line_off;		     // STRUCT/LIST: CM_CONF_LINE()
	const char *help;
};

// For .line_off: the loader stores the source line of the struct's YAML
// mapping into this int member (encoded +1 so 0 means "none").
#define CM_CONF_LINE(type, member) (offsetof(type, member) + 1)

// Loads `path` into `out` (which the caller must have zeroed: the loader
// does not know its size; defaults are applied first) using
// `tbl`, terminated by an entry with key NULL. Returns 0, or a negative
// errno with a message in `err` ("file:line: key: reason"). On failure
// whatever was allocated is freed and `out` is zeroed.
int cm_conf_load(void *out, const struct cm_conf_field *tbl, const char *path,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Same, from memory; `name` is used in messages in place of a path.
int cm_conf_load_mem(void *out, const struct cm_conf_field *tbl,
    const char *name, const char *text, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Frees what the loader allocated in `obj` and zeroes it. NULL-safe.
void cm_conf_free(void *obj, const struct cm_conf_field *tbl);

// Writes "name:line: key: <fmt>" into err (for checks done after loading)
// and returns -EINVAL.
int cm_conf_errf(char *err, size_t errlen, const char *name, int line,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

// Walks YAML text event by event to the end of its first document (all
// that yaml_parser_load reads) and checks that collections nest at most
// `max_depth` deep. Call it before yaml_parser_load: libyaml's loader is
// quadratic in the nesting depth ("[[[[...]]]]" 500,000 deep in 1 MiB
// runs for more than ten minutes), while this walk stops at the first
// collection past the limit. Returns 0, also for text that is not valid
// YAML (the load reports the syntax error, which it meets at the same
// place); -EINVAL with the 1-based line of the collection past the limit
// in *ret_line; -ENOMEM. Borrows `text`; any thread.
int cm_yaml_depth_check(const char *text, size_t len, int max_depth,
    size_t *ret_line) __attribute__((warn_unused_result));

// Every bound to check on YAML text before yaml_parser_load, whose cost
// grows faster than the text: nesting depth (`max_depth`, as
// cm_yaml_depth_check), anchors (CM_CONF_MAX_ANCHORS; the loader searches
// them one by one for every anchor and alias), nodes
// (CM_CONF_MAX_YAML_NODES) and lines starting with '%' (directives,
// CM_CONF_MAX_DIRECTIVES; libyaml compares each %TAG with all before it).
// Returns 0 (also for text that is not valid YAML: the load reports it);
// -EINVAL (depth) or -E2BIG (a count) with the 1-based line in *ret_line
// and the reason, without file or line, in why; -ENOMEM. Borrows `text`;
// any thread.
int cm_yaml_precheck(const char *text, size_t len, int max_depth,
    size_t *ret_line, char *why, size_t whylen)
    __attribute__((warn_unused_result));

// The file limit in force (bytes).
size_t cm_conf_max_file(void);

// Checks the open configuration file fd (named path) before it is read:
// a regular file within the file limit. Returns 0 with *size set, or
// -EINVAL with "path: (top): not a regular file" or "... file of N bytes
// is larger than L bytes (the limit: ...)" in err.
int cm_conf_check_file(int fd, const char *path, size_t *size, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// Sets the file limit from `opt` (a --config-max-size value such as
// "4MiB"), or, when opt is NULL, from the environment variable
// CM_CONF_MAX_FILE_ENV if set and non-empty; neither: the limit stays.
// Returns 0, or -EINVAL with the reason in err ("--config-max-size: ..."
// or "REFLEX_CONFIG_MAX_SIZE: ...") for a value that is not a size or is
// outside CM_CONF_MIN_FILE..CM_CONF_MAX_FILE_CEIL; the limit then stays.
// Not thread-safe: call it at startup, before loading.
int cm_conf_set_max_file(const char *opt, char *err, size_t errlen);

// Scalar parsers shared with the command line. Return 0 or -EINVAL/-ERANGE.
int cm_duration_parse(const char *s, int64_t *ret_ms);
int cm_size_parse(const char *s, int64_t *ret_bytes);

// Looks up `key` in a string map; NULL when absent. Borrowed pointer.
const char *cm_strmap_get(const struct cm_strmap *m, const char *key);

// Prints the table as an indented key reference ("key  type  default  help")
// for --help-config and the README.
void cm_conf_print_reference(const struct cm_conf_field *tbl, int indent);

#endif
