// SPDX-License-Identifier: MIT
// cm_msg: msgpack encoding and strict decoding of reflex wire frames.
//
// Wire schema, protocol version 1. A frame is one msgpack map and nothing
// else (no trailing bytes), at most CM_MSG_MAX_FRAME bytes (or the lower
// wire_limits.max_frame the receiver set; the same holds for the depth,
// the workloads and the string lengths below: see cm_msg_set_limits):
//
//   { "v": 1, "type": str, "id": uint64, "body": map }
//
// Body per type (N = name: 1..63 bytes of [A-Za-z0-9._-], alphanumeric at
// both ends; A = address: 0..255 bytes of printable ASCII without space;
// T = text: 0..1023 bytes of UTF-8 without NUL):
//
//   "register"   node: N, addr: A (non-empty), runtime: N,
//                workloads: array (<= 1024) of
//                  { service: N, instance: N, addr: A, healthy: bool }
//   "heartbeat"  node: N, seq: uint64, unhealthy: uint32
//   "command"    action_id: uint64, action: N, service: N,
//                instance: N or "" (every instance), reason: T,
//                timeout_ms: uint32
//   "permit"     node: N, service: N, instance: N, reason: T
//   "reply"      ok: bool, code: int (-4095..0), message: T,
//                json: str (optional, UTF-8 without NUL, < 256 KiB;
//                omitted when the C pointer is NULL)
//   "error"      code: N ("bad_frame", "bad_version", ...), message: T
//   "status"     {} (no fields)
//
// Integers may use any msgpack integer encoding whose value fits the
// field; floats never stand in for integers and bool is only bool. Every
// key listed is required unless marked optional. Map keys must be str and
// appear once. Keys this version does not know are ignored at the top
// level and in bodies and workloads, so that a newer peer can add fields.
//
// Decoding has two stages. cm_msg_check_frame() walks the raw bytes
// without allocating: every length and element count is checked against
// the bytes left, nesting is capped at max_depth, 0xc1 and trailing
// bytes are refused. Only a frame that passes is given to msgpack-c, whose
// unpacker allocates per element count; the walk guarantees that those
// counts are bounded by the frame size. The second stage checks the schema
// above and copies the fields into struct cm_msg.
#include "cm_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cm_log.h"

#define CODE_MIN (-4095) // most negative errno a reply may carry

/* ------------------------------------------------------------------ */
/* Run-time limits                                                     */

// The defaults are the compiled-in ceilings: the message structs hold no
// more.
#define DEFAULT_LIMITS { \
	.max_frame = CM_MSG_MAX_FRAME, \
	.max_depth = CM_MSG_MAX_DEPTH, \
	.max_workloads = CM_MSG_MAX_WORKLOADS, \
	.max_name_len = CM_NAME_MAX - 1, \
	.max_addr_len = CM_ADDR_MAX - 1, \
	.max_text_len = CM_TEXT_MAX - 1, \
}

const struct cm_msg_limits cm_msg_default_limits = DEFAULT_LIMITS;

#define STR_(x) #x
#define STR(x) STR_(x)
#define LIM(k, m, t, d, lo, hi, h) { .key = k, .type = t, \
	.off = offsetof(struct cm_msg_limits, m), .def = d, .min = lo, \
	.max = hi, .help = h }

const struct cm_conf_field cm_msg_limits_fields[] = {
	LIM("max_frame", max_frame, CM_CONF_SIZE, "256KiB", CM_MSG_MIN_FRAME,
	    CM_MSG_MAX_FRAME, "largest msgpack frame accepted (too_large "
	    "above; 1KiB..256KiB)"),
	LIM("max_depth", max_depth, CM_CONF_INT, STR(CM_MSG_MAX_DEPTH),
	    CM_MSG_MIN_DEPTH, CM_MSG_MAX_DEPTH,
	    "nested maps and arrays in a frame (bad_frame above; 4..16)"),
	LIM("max_workloads", max_workloads, CM_CONF_INT,
	    STR(CM_MSG_MAX_WORKLOADS), 1, CM_MSG_MAX_WORKLOADS,
	    "workloads in one registration (1..1024)"),
	LIM("max_name_len", max_name_len, CM_CONF_INT, "63",
	    CM_MSG_MIN_NAME_LEN, CM_NAME_MAX - 1,
	    "bytes of a node, service, instance or action name (32..63)"),
	LIM("max_addr_len", max_addr_len, CM_CONF_INT, "255",
	    CM_MSG_MIN_ADDR_LEN, CM_ADDR_MAX - 1,
	    "bytes of an address (32..255)"),
	LIM("max_text_len", max_text_len, CM_CONF_INT, "1023",
	    CM_MSG_MIN_TEXT_LEN, CM_TEXT_MAX - 1,
	    "bytes of a reason or message (256..1023)"),
	{ 0 },
};

// The limits in force; written only by cm_msg_set_limits, before threads.
static struct cm_msg_limits limits_now = DEFAULT_LIMITS;

int
cm_msg_set_limits(const struct cm_msg_limits *l, char *err, size_t errlen)
{
	if (l == NULL) {
		limits_now = cm_msg_default_limits;
		return 0;
	}
	// The table's bounds, so that a struct not loaded by cm_conf is
	// held to the same.
	for (const struct cm_conf_field *f = cm_msg_limits_fields;
	    f->key != NULL; f++) {
		int64_t v;

		memcpy(&v, (const char *)l + f->off, sizeof(v));
		if (v < f->min || v > f->max) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "wire_limits.%s: %" PRId64
				    " is outside %" PRId64 "..%" PRId64, f->key,
				    v, f->min, f->max);
			return -EINVAL;
		}
	}
	limits_now = *l;
	return 0;
}

const struct cm_msg_limits *
cm_msg_limits(void)
{
	return &limits_now;
}

size_t
cm_msg_recv_max(void)
{
	return 2 * (size_t)limits_now.max_frame;
}

// Clamps v to lo..hi.
static size_t
clamp(int64_t v, int64_t lo, int64_t hi)
{
	return (size_t)(v < lo ? lo : v > hi ? hi : v);
}

static int fail(char *err, size_t errlen, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Writes a reason into err (if any) and returns rv.
static int
fail(char *err, size_t errlen, int rv, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return rv;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Names and UTF-8                                                     */

static bool
is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static bool
name_valid_n(const char *s, size_t len)
{
	if (len == 0 || len >= CM_NAME_MAX)
		return false;
	if (!is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

bool
cm_name_valid(const char *s)
{
	if (s == NULL)
		return false;
	return name_valid_n(s, strnlen(s, CM_NAME_MAX));
}

bool
cm_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (s == NULL)
		return len == 0;
	while (i < len) {
		unsigned char c = p[i], lo = 0x80, hi = 0xbf;
		size_t n;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			lo = c == 0xe0 ? 0xa0 : 0x80; // no overlong forms
			hi = c == 0xed ? 0x9f : 0xbf; // no surrogates
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			lo = c == 0xf0 ? 0x90 : 0x80; // no overlong forms
			hi = c == 0xf4 ? 0x8f : 0xbf; // nothing past U+10FFFF
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

static bool
addr_chars_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

enum field_kind {
	F_NAME,	       // cm_name_valid()
	F_NAME_OR_ALL, // cm_name_valid() or ""
	F_ADDR,	       // printable ASCII, may be empty
	F_ADDR_REQ,    // printable ASCII, non-empty
	F_TEXT,	       // UTF-8 without NUL
};

// Checks the len bytes at s as the value of field prefix+key, at most max
// bytes long (below the capacity of its buffer). Shared by encoder and
// decoder so that both sides enforce the same rules; limit_key names the
// configured limit max came from (NULL: the buffer's capacity).
static int
check_str(const char *s, size_t len, size_t max, const char *limit_key,
    enum field_kind k, const char *prefix, const char *key, char *err,
    size_t errlen)
{
	if (len > max)
		return fail(err, errlen, -EINVAL,
		    "%s%s: %zu bytes, limit %zu%s%s%s", prefix, key, len, max,
		    limit_key ? " (wire_limits." : "", limit_key ? limit_key :
		    "", limit_key ? ")" : "");
	if (!cm_utf8_valid(s, len))
		return fail(err, errlen, -EINVAL,
		    "%s%s: not valid UTF-8 or contains NUL", prefix, key);
	switch (k) {
	case F_NAME:
		if (!name_valid_n(s, len))
			return fail(err, errlen, -EINVAL,
			    "%s%s: not a valid name", prefix, key);
		break;
	case F_NAME_OR_ALL:
		if (len > 0 && !name_valid_n(s, len))
			return fail(err, errlen, -EINVAL,
			    "%s%s: not a valid name (nor \"\" for all)",
			    prefix, key);
		break;
	case F_ADDR_REQ:
		if (len == 0)
			return fail(err, errlen, -EINVAL, "%s%s: empty",
			    prefix, key);
		/* fall through */
	case F_ADDR:
		if (!addr_chars_valid(s, len))
			return fail(err, errlen, -EINVAL,
			    "%s%s: not printable ASCII without spaces",
			    prefix, key);
		break;
	case F_TEXT:
		break;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stage 1: the bounds-checking walk over raw bytes                    */

struct walk {
	const uint8_t *p;
	size_t len;
	size_t pos;
	char *err;
	size_t errlen;
};

enum { K_SCALAR, K_ARRAY, K_MAP };

static size_t
walk_left(const struct walk *w)
{
	return w->len - w->pos;
}

// Reads an n-byte big-endian length or count belonging to the `what`
// header that starts at offset `at`.
static int
walk_be(struct walk *w, size_t n, const char *what, size_t at,
    uint64_t *ret)
{
	uint64_t v = 0;

	if (n > walk_left(w))
		return fail(w->err, w->errlen, -EBADMSG,
		    "frame truncated: %s header at offset %zu needs %zu "
		    "length bytes, %zu left", what, at, n, walk_left(w));
	for (size_t i = 0; i < n; i++)
		v = v << 8 | w->p[w->pos + i];
	w->pos += n;
	*ret = v;
	return 0;
}

// Skips n payload bytes of the `what` object that starts at offset `at`.
static int
walk_skip(struct walk *w, uint64_t n, const char *what, size_t at)
{
	if (n > walk_left(w))
		return fail(w->err, w->errlen, -EBADMSG,
		    "frame truncated: %s header at offset %zu claims %" PRIu64
		    " bytes, %zu left", what, at, n, walk_left(w));
	w->pos += (size_t)n;
	return 0;
}

// Skips a length-prefixed payload (str, bin, ext) whose length field has
// lenbytes bytes; ext carries one more byte, its type.
static int
walk_sized(struct walk *w, size_t lenbytes, uint64_t extra,
    const char *what, size_t at)
{
	uint64_t n = 0; // set by walk_be (gcc -O3 cannot tell)
	int r;

	r = walk_be(w, lenbytes, what, at, &n);
	if (r < 0)
		return r;
	return walk_skip(w, n + extra, what, at);
}

// Reads the object header at w->pos (at least one byte is left), skipping
// a scalar's payload. For a container returns its element count (a map's
// counted in keys plus values) in *ret_n.
static int
walk_head(struct walk *w, int *ret_kind, uint64_t *ret_n)
{
	static const char *const fixed_name[] = {
		[0xca - 0xca] = "float32", [0xcb - 0xca] = "float64",
		[0xcc - 0xca] = "uint8",   [0xcd - 0xca] = "uint16",
		[0xce - 0xca] = "uint32",  [0xcf - 0xca] = "uint64",
		[0xd0 - 0xca] = "int8",	   [0xd1 - 0xca] = "int16",
		[0xd2 - 0xca] = "int32",   [0xd3 - 0xca] = "int64",
		[0xd4 - 0xca] = "fixext1", [0xd5 - 0xca] = "fixext2",
		[0xd6 - 0xca] = "fixext4", [0xd7 - 0xca] = "fixext8",
		[0xd8 - 0xca] = "fixext16",
	};
	static const uint8_t fixed_size[] = {
		4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 2, 3, 5, 9, 17,
	};
	size_t at = w->pos;
	uint8_t b = w->p[w->pos++];
	uint64_t n = 0;
	int r;

	*ret_kind = K_SCALAR;
	*ret_n = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 0;
	if (b >= 0xa0 && b <= 0xbf)
		return walk_skip(w, b & 0x1f, "str", at);
	if (b >= 0x80 && b <= 0x9f) {
		*ret_kind = b >= 0x90 ? K_ARRAY : K_MAP;
		*ret_n = b & 0x0f;
		if (*ret_kind == K_MAP)
			*ret_n *= 2;
		return 0;
	}
	if (b >= 0xca && b <= 0xd8)
		return walk_skip(w, fixed_size[b - 0xca], fixed_name[b - 0xca],
		    at);
	switch (b) {
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return walk_sized(w, (size_t)1 << (b - 0xc4), 0, "bin", at);
	case 0xc7:
	case 0xc8:
	case 0xc9:
		return walk_sized(w, (size_t)1 << (b - 0xc7), 1, "ext", at);
	case 0xd9:
	case 0xda:
	case 0xdb:
		return walk_sized(w, (size_t)1 << (b - 0xd9), 0, "str", at);
	case 0xdc:
	case 0xdd:
		r = walk_be(w, b == 0xdc ? 2 : 4, "array", at, &n);
		*ret_kind = K_ARRAY;
		*ret_n = n;
		return r;
	case 0xde:
	case 0xdf:
		r = walk_be(w, b == 0xde ? 2 : 4, "map", at, &n);
		*ret_kind = K_MAP;
		*ret_n = n * 2;
		return r;
	default: // 0xc1
		return fail(w->err, w->errlen, -EBADMSG,
		    "byte 0x%02x at offset %zu is not a msgpack type", b, at);
	}
}

int
cm_msg_check_frame(const void *buf, size_t len, char *err, size_t errlen)
{
	return cm_msg_check_frame_lim(buf, len, NULL, err, errlen);
}

int
cm_msg_check_frame_lim(const void *buf, size_t len,
    const struct cm_msg_limits *lim, char *err, size_t errlen)
{
	struct walk w = {
		.p = buf, .len = len, .pos = 0, .err = err, .errlen = errlen,
	};
	// todo[d]: objects still to read in the container open at depth d;
	// depth 0 is the frame itself, which holds exactly one object.
	uint64_t todo[CM_MSG_MAX_DEPTH + 1];
	int depth = 0, kind, r, max_depth;
	size_t max_frame;
	uint64_t n;
	size_t at;

	if (lim == NULL)
		lim = &limits_now;
	// A caller's own struct is not checked by cm_msg_set_limits: the
	// clamp keeps todo[] and the frame bound safe whatever it holds.
	max_frame = clamp(lim->max_frame, CM_MSG_MIN_FRAME, CM_MSG_MAX_FRAME);
	max_depth = (int)clamp(lim->max_depth, CM_MSG_MIN_DEPTH,
	    CM_MSG_MAX_DEPTH);
	if (len == 0 || buf == NULL)
		return fail(err, errlen, -EBADMSG, "empty frame");
	if (len > max_frame)
		return fail(err, errlen, -EMSGSIZE,
		    "frame of %zu bytes exceeds the limit of %zu "
		    "(wire_limits.max_frame)", len, max_frame);
	todo[0] = 1;
	for (;;) {
		while (todo[depth] == 0 && depth > 0)
			depth--;
		if (todo[depth] == 0)
			break;
		if (walk_left(&w) == 0)
			return fail(err, errlen, -EBADMSG,
			    "frame truncated: container at depth %d still "
			    "expects %" PRIu64 " objects, 0 bytes left",
			    depth, todo[depth]);
		todo[depth]--;
		at = w.pos;
		r = walk_head(&w, &kind, &n);
		if (r < 0)
			return r;
		if (kind == K_SCALAR)
			continue;
		if (depth + 1 > max_depth)
			return fail(err, errlen, -EBADMSG,
			    "%s at offset %zu nests deeper than %d levels "
			    "(wire_limits.max_depth)",
			    kind == K_MAP ? "map" : "array", at, max_depth);
		// Each element takes at least one byte.
		if (n > walk_left(&w))
			return fail(err, errlen, -EBADMSG,
			    "frame truncated: %s header at offset %zu claims "
			    "%" PRIu64 " objects, %zu bytes left",
			    kind == K_MAP ? "map" : "array", at, n,
			    walk_left(&w));
		todo[++depth] = n;
	}
	if (w.pos != len)
		return fail(err, errlen, -EBADMSG,
		    "%zu trailing bytes after the object ending at offset %zu",
		    len - w.pos, w.pos);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stage 2: schema checks on the msgpack-c object                      */

// Sticky decoder state: after the first failure every getter is a no-op,
// so body decoders read as a plain list of fields.
struct dec {
	char *err;
	size_t errlen;
	int rv;
	const struct cm_msg_limits *lim; // within the bounds (clamped)
};

static const char *
obj_type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return "nil";
	case MSGPACK_OBJECT_BOOLEAN:
		return "bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return "uint";
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "negative int";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "float";
	case MSGPACK_OBJECT_STR:
		return "str";
	case MSGPACK_OBJECT_ARRAY:
		return "array";
	case MSGPACK_OBJECT_MAP:
		return "map";
	case MSGPACK_OBJECT_BIN:
		return "bin";
	case MSGPACK_OBJECT_EXT:
		return "ext";
	}
	return "unknown";
}

static bool
obj_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	    memcmp(o->via.str.ptr, s, n) == 0;
}

// Checks that `o`, the value at `what`, is a map whose keys are all str.
static int
check_map(struct dec *d, const msgpack_object *o, const char *what, int rv)
{
	if (d->rv < 0)
		return d->rv;
	if (o->type != MSGPACK_OBJECT_MAP) {
		d->rv = fail(d->err, d->errlen, rv, "%s: expected map, got %s",
		    what, obj_type_name(o));
		return d->rv;
	}
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR) {
			d->rv = fail(d->err, d->errlen, rv,
			    "%s: key %" PRIu32 " is %s, not str", what, i,
			    obj_type_name(k));
			return d->rv;
		}
	}
	return 0;
}

// Finds prefix+key in map. Returns NULL and records an error when the key
// is given twice, or when it is missing and rv (the error code for that)
// is not 0; rv 0 makes the key optional.
static const msgpack_object *
find(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, int rv)
{
	const msgpack_object *found = NULL;

	if (d->rv < 0)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		if (!obj_is(&map->via.map.ptr[i].key, key))
			continue;
		if (found != NULL) {
			d->rv = fail(d->err, d->errlen, -EINVAL,
			    "%s%s: key given twice", prefix, key);
			return NULL;
		}
		found = &map->via.map.ptr[i].val;
	}
	if (found == NULL && rv != 0)
		d->rv = fail(d->err, d->errlen, rv, "%s%s: missing", prefix,
		    key);
	return found;
}

static void
wrong_type(struct dec *d, const msgpack_object *o, const char *prefix,
    const char *key, const char *want, int rv)
{
	d->rv = fail(d->err, d->errlen, rv, "%s%s: expected %s, got %s",
	    prefix, key, want, obj_type_name(o));
}

static void
get_str(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, enum field_kind k, char *dst, size_t cap)
{
	const msgpack_object *o = find(d, map, prefix, key, -EINVAL);
	const char *limit_key = NULL;
	size_t n, max = cap - 1;

	if (o == NULL)
		return;
	if (o->type != MSGPACK_OBJECT_STR) {
		wrong_type(d, o, prefix, key, "str", -EINVAL);
		return;
	}
	n = o->via.str.size;
	switch (k) {
	case F_NAME:
	case F_NAME_OR_ALL:
		max = (size_t)d->lim->max_name_len;
		limit_key = "max_name_len";
		break;
	case F_ADDR:
	case F_ADDR_REQ:
		max = (size_t)d->lim->max_addr_len;
		limit_key = "max_addr_len";
		break;
	case F_TEXT:
		max = (size_t)d->lim->max_text_len;
		limit_key = "max_text_len";
		break;
	}
	if (max > cap - 1)
		max = cap - 1; // cannot happen with the bounds; the buffer rules
	d->rv = check_str(o->via.str.ptr, n, max, limit_key, k, prefix, key,
	    d->err, d->errlen);
	if (d->rv < 0)
		return;
	if (n > 0)
		memcpy(dst, o->via.str.ptr, n);
	dst[n] = '\0';
}

static void
get_uint(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, uint64_t max, uint64_t *ret)
{
	const msgpack_object *o = find(d, map, prefix, key, -EINVAL);

	if (o == NULL)
		return;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		d->rv = fail(d->err, d->errlen, -EINVAL,
		    "%s%s: %" PRId64 " is negative", prefix, key,
		    o->via.i64);
		return;
	}
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		wrong_type(d, o, prefix, key, "uint", -EINVAL);
		return;
	}
	if (o->via.u64 > max) {
		d->rv = fail(d->err, d->errlen, -EINVAL,
		    "%s%s: %" PRIu64 " exceeds %" PRIu64, prefix, key,
		    o->via.u64, max);
		return;
	}
	*ret = o->via.u64;
}

static void
get_u32(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, uint32_t *ret)
{
	uint64_t v = 0;

	get_uint(d, map, prefix, key, UINT32_MAX, &v);
	*ret = (uint32_t)v;
}

static void
get_code(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, int32_t *ret)
{
	const msgpack_object *o = find(d, map, prefix, key, -EINVAL);

	if (o == NULL)
		return;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 != 0)
			d->rv = fail(d->err, d->errlen, -EINVAL,
			    "%s%s: %" PRIu64 " is not 0 or a negative errno",
			    prefix, key, o->via.u64);
		else
			*ret = 0;
		return;
	}
	if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		wrong_type(d, o, prefix, key, "int", -EINVAL);
		return;
	}
	if (o->via.i64 < CODE_MIN) {
		d->rv = fail(d->err, d->errlen, -EINVAL,
		    "%s%s: %" PRId64 " is below %d", prefix, key, o->via.i64,
		    CODE_MIN);
		return;
	}
	*ret = (int32_t)o->via.i64;
}

static void
get_bool(struct dec *d, const msgpack_object *map, const char *prefix,
    const char *key, bool *ret)
{
	const msgpack_object *o = find(d, map, prefix, key, -EINVAL);

	if (o == NULL)
		return;
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		wrong_type(d, o, prefix, key, "bool", -EINVAL);
		return;
	}
	*ret = o->via.boolean;
}

static void
dec_workload(struct dec *d, const msgpack_object *o, size_t i,
    struct cm_workload *wl)
{
	char prefix[48];

	snprintf(prefix, sizeof(prefix), "body.workloads[%zu]", i);
	if (check_map(d, o, prefix, -EINVAL) < 0)
		return;
	strcat(prefix, ".");
	get_str(d, o, prefix, "service", F_NAME, wl->service,
	    sizeof(wl->service));
	get_str(d, o, prefix, "instance", F_NAME, wl->instance,
	    sizeof(wl->instance));
	get_str(d, o, prefix, "addr", F_ADDR, wl->addr, sizeof(wl->addr));
	get_bool(d, o, prefix, "healthy", &wl->healthy);
}

static void
dec_register(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_register *reg = &m->u.reg;
	const msgpack_object *o;
	uint32_t n;

	get_str(d, b, "body.", "node", F_NAME, reg->node, sizeof(reg->node));
	get_str(d, b, "body.", "addr", F_ADDR_REQ, reg->addr,
	    sizeof(reg->addr));
	get_str(d, b, "body.", "runtime", F_NAME, reg->runtime,
	    sizeof(reg->runtime));
	o = find(d, b, "body.", "workloads", -EINVAL);
	if (o == NULL)
		return;
	if (o->type != MSGPACK_OBJECT_ARRAY) {
		wrong_type(d, o, "body.", "workloads", "array", -EINVAL);
		return;
	}
	n = o->via.array.size;
	if (n > d->lim->max_workloads) {
		d->rv = fail(d->err, d->errlen, -EINVAL,
		    "body.workloads: %" PRIu32 " entries, limit %" PRId64
		    " (wire_limits.max_workloads)", n, d->lim->max_workloads);
		return;
	}
	if (n == 0)
		return;
	reg->workloads = calloc(n, sizeof(*reg->workloads));
	if (reg->workloads == NULL) {
		d->rv = fail(d->err, d->errlen, -ENOMEM,
		    "body.workloads: out of memory");
		return;
	}
	reg->n_workloads = n; // cm_msg_clear frees them on a later error
	for (uint32_t i = 0; i < n && d->rv == 0; i++)
		dec_workload(d, &o->via.array.ptr[i], i, &reg->workloads[i]);
}

static void
dec_heartbeat(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_heartbeat *hb = &m->u.hb;

	get_str(d, b, "body.", "node", F_NAME, hb->node, sizeof(hb->node));
	get_uint(d, b, "body.", "seq", UINT64_MAX, &hb->seq);
	get_u32(d, b, "body.", "unhealthy", &hb->unhealthy);
}

static void
dec_command(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_command *c = &m->u.cmd;

	get_uint(d, b, "body.", "action_id", UINT64_MAX, &c->action_id);
	get_str(d, b, "body.", "action", F_NAME, c->action,
	    sizeof(c->action));
	get_str(d, b, "body.", "service", F_NAME, c->service,
	    sizeof(c->service));
	get_str(d, b, "body.", "instance", F_NAME_OR_ALL, c->instance,
	    sizeof(c->instance));
	get_str(d, b, "body.", "reason", F_TEXT, c->reason,
	    sizeof(c->reason));
	get_u32(d, b, "body.", "timeout_ms", &c->timeout_ms);
}

static void
dec_permit(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_permit *p = &m->u.permit;

	get_str(d, b, "body.", "node", F_NAME, p->node, sizeof(p->node));
	get_str(d, b, "body.", "service", F_NAME, p->service,
	    sizeof(p->service));
	get_str(d, b, "body.", "instance", F_NAME, p->instance,
	    sizeof(p->instance));
	get_str(d, b, "body.", "reason", F_TEXT, p->reason,
	    sizeof(p->reason));
}

static void
dec_reply(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_reply *r = &m->u.reply;
	const msgpack_object *o;
	uint32_t n;

	get_bool(d, b, "body.", "ok", &r->ok);
	get_code(d, b, "body.", "code", &r->code);
	get_str(d, b, "body.", "message", F_TEXT, r->message,
	    sizeof(r->message));
	o = find(d, b, "body.", "json", 0);
	if (o == NULL)
		return; // absent (optional), or an error was recorded
	if (o->type != MSGPACK_OBJECT_STR) {
		wrong_type(d, o, "body.", "json", "str", -EINVAL);
		return;
	}
	n = o->via.str.size;
	d->rv = check_str(o->via.str.ptr, n, CM_STATUS_MAX - 1, NULL, F_TEXT,
	    "body.", "json", d->err, d->errlen);
	if (d->rv < 0)
		return;
	r->json = malloc((size_t)n + 1);
	if (r->json == NULL) {
		d->rv = fail(d->err, d->errlen, -ENOMEM,
		    "body.json: out of memory");
		return;
	}
	if (n > 0)
		memcpy(r->json, o->via.str.ptr, n);
	r->json[n] = '\0';
}

static void
dec_error(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	struct cm_msg_error *e = &m->u.error;

	get_str(d, b, "body.", "code", F_NAME, e->code, sizeof(e->code));
	get_str(d, b, "body.", "message", F_TEXT, e->message,
	    sizeof(e->message));
}

static void
dec_status(struct dec *d, const msgpack_object *b, struct cm_msg *m)
{
	(void)d; // no fields; unknown keys are ignored like everywhere
	(void)b;
	(void)m;
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */

// Sticky encoder state, like struct dec.
struct enc {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rv;
	char err[192];
	// cm_msg_encode_to: where the bytes go, and how many went. msgpack
	// hands over every key and value on its own; they are gathered in
	// `chunk` and passed on when it is full and at the end, so that a
	// small frame costs the writer one call, not one per item.
	cm_msg_write_fn write;
	void *write_arg;
	size_t written;
	size_t chunk_len;
	char chunk[512];
};

static void
put_rv(struct enc *e, int packer_rv)
{
	if (packer_rv != 0 && e->rv == 0)
		e->rv = fail(e->err, sizeof(e->err), -ENOMEM,
		    "out of memory while packing");
}

static void
put_key(struct enc *e, const char *key)
{
	if (e->rv == 0)
		put_rv(e, msgpack_pack_str_with_body(&e->pk, key, strlen(key)));
}

static void
put_map(struct enc *e, size_t n)
{
	if (e->rv == 0)
		put_rv(e, msgpack_pack_map(&e->pk, n));
}

static void
put_uint(struct enc *e, const char *key, uint64_t v)
{
	put_key(e, key);
	if (e->rv == 0)
		put_rv(e, msgpack_pack_uint64(&e->pk, v));
}

static void
put_bool(struct enc *e, const char *key, bool v)
{
	put_key(e, key);
	if (e->rv == 0)
		put_rv(e, v ? msgpack_pack_true(&e->pk) :
		    msgpack_pack_false(&e->pk));
}

// Packs the NUL-terminated string s (inside a buffer of cap bytes) after
// checking it like the decoder will.
static void
put_str(struct enc *e, const char *prefix, const char *key, const char *s,
    size_t cap, enum field_kind k)
{
	size_t n;

	if (e->rv < 0)
		return;
	if (s == NULL) {
		e->rv = fail(e->err, sizeof(e->err), -EINVAL, "%s%s: NULL",
		    prefix, key);
		return;
	}
	n = strnlen(s, cap);
	e->rv = check_str(s, n, cap - 1, NULL, k, prefix, key, e->err,
	    sizeof(e->err));
	if (e->rv < 0)
		return;
	put_key(e, key);
	if (e->rv == 0)
		put_rv(e, msgpack_pack_str_with_body(&e->pk, s, n));
}

static void
enc_register(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_register *reg = &m->u.reg;
	char prefix[48];

	if (reg->n_workloads > CM_MSG_MAX_WORKLOADS) {
		e->rv = fail(e->err, sizeof(e->err), -EINVAL,
		    "body.workloads: %zu entries, limit %d",
		    reg->n_workloads, CM_MSG_MAX_WORKLOADS);
		return;
	}
	if (reg->n_workloads > 0 && reg->workloads == NULL) {
		e->rv = fail(e->err, sizeof(e->err), -EINVAL,
		    "body.workloads: %zu entries but no array",
		    reg->n_workloads);
		return;
	}
	put_map(e, 4);
	put_str(e, "body.", "node", reg->node, sizeof(reg->node), F_NAME);
	put_str(e, "body.", "addr", reg->addr, sizeof(reg->addr), F_ADDR_REQ);
	put_str(e, "body.", "runtime", reg->runtime, sizeof(reg->runtime),
	    F_NAME);
	put_key(e, "workloads");
	if (e->rv == 0)
		put_rv(e, msgpack_pack_array(&e->pk, reg->n_workloads));
	for (size_t i = 0; i < reg->n_workloads && e->rv == 0; i++) {
		const struct cm_workload *wl = &reg->workloads[i];

		snprintf(prefix, sizeof(prefix), "body.workloads[%zu].", i);
		put_map(e, 4);
		put_str(e, prefix, "service", wl->service,
		    sizeof(wl->service), F_NAME);
		put_str(e, prefix, "instance", wl->instance,
		    sizeof(wl->instance), F_NAME);
		put_str(e, prefix, "addr", wl->addr, sizeof(wl->addr), F_ADDR);
		put_bool(e, "healthy", wl->healthy);
	}
}

static void
enc_heartbeat(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_heartbeat *hb = &m->u.hb;

	put_map(e, 3);
	put_str(e, "body.", "node", hb->node, sizeof(hb->node), F_NAME);
	put_uint(e, "seq", hb->seq);
	put_uint(e, "unhealthy", hb->unhealthy);
}

static void
enc_command(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_command *c = &m->u.cmd;

	put_map(e, 6);
	put_uint(e, "action_id", c->action_id);
	put_str(e, "body.", "action", c->action, sizeof(c->action), F_NAME);
	put_str(e, "body.", "service", c->service, sizeof(c->service),
	    F_NAME);
	put_str(e, "body.", "instance", c->instance, sizeof(c->instance),
	    F_NAME_OR_ALL);
	put_str(e, "body.", "reason", c->reason, sizeof(c->reason), F_TEXT);
	put_uint(e, "timeout_ms", c->timeout_ms);
}

static void
enc_permit(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_permit *p = &m->u.permit;

	put_map(e, 4);
	put_str(e, "body.", "node", p->node, sizeof(p->node), F_NAME);
	put_str(e, "body.", "service", p->service, sizeof(p->service),
	    F_NAME);
	put_str(e, "body.", "instance", p->instance, sizeof(p->instance),
	    F_NAME);
	put_str(e, "body.", "reason", p->reason, sizeof(p->reason), F_TEXT);
}

static void
enc_reply(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_reply *r = &m->u.reply;

	if (r->code > 0 || r->code < CODE_MIN) {
		e->rv = fail(e->err, sizeof(e->err), -EINVAL,
		    "body.code: %" PRId32 " is not 0 or a negative errno",
		    r->code);
		return;
	}
	put_map(e, r->json != NULL ? 4 : 3);
	put_bool(e, "ok", r->ok);
	put_key(e, "code");
	if (e->rv == 0)
		put_rv(e, msgpack_pack_int32(&e->pk, r->code));
	put_str(e, "body.", "message", r->message, sizeof(r->message),
	    F_TEXT);
	if (r->json != NULL)
		put_str(e, "body.", "json", r->json, CM_STATUS_MAX, F_TEXT);
}

static void
enc_error(struct enc *e, const struct cm_msg *m)
{
	const struct cm_msg_error *er = &m->u.error;

	put_map(e, 2);
	put_str(e, "body.", "code", er->code, sizeof(er->code), F_NAME);
	put_str(e, "body.", "message", er->message, sizeof(er->message),
	    F_TEXT);
}

static void
enc_status(struct enc *e, const struct cm_msg *m)
{
	(void)m;
	put_map(e, 0);
}

/* ------------------------------------------------------------------ */
/* Type table and entry points                                         */

struct msg_kind {
	const char *name;
	void (*dec)(struct dec *d, const msgpack_object *body,
	    struct cm_msg *m);
	void (*enc)(struct enc *e, const struct cm_msg *m);
};

static const struct msg_kind kinds[] = {
	[CM_MSG_REGISTER] = { "register", dec_register, enc_register },
	[CM_MSG_HEARTBEAT] = { "heartbeat", dec_heartbeat, enc_heartbeat },
	[CM_MSG_COMMAND] = { "command", dec_command, enc_command },
	[CM_MSG_REPLY] = { "reply", dec_reply, enc_reply },
	[CM_MSG_ERROR] = { "error", dec_error, enc_error },
	[CM_MSG_STATUS] = { "status", dec_status, enc_status },
	[CM_MSG_PERMIT] = { "permit", dec_permit, enc_permit },
};

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static const struct msg_kind *
kind_of(enum cm_msg_type t)
{
	unsigned int i = (unsigned int)t;

	if (i == 0 || i >= N_KINDS || kinds[i].name == NULL)
		return NULL;
	return &kinds[i];
}

const char *
cm_msg_type_name(enum cm_msg_type t)
{
	const struct msg_kind *k = kind_of(t);

	return k != NULL ? k->name : NULL;
}

// Packs m's header and body through e->pk; the size limit is the
// caller's to check. Returns e->rv.
static int
encode_into(struct enc *e, const struct msg_kind *k, const struct cm_msg *m)
{
	put_map(e, m->ts != 0 ? 6 : 4);
	put_uint(e, "v", CM_PROTO_VERSION);
	if (m->ts != 0) {
		put_uint(e, "ts", m->ts);
		put_uint(e, "nonce", m->nonce);
	}
	put_key(e, "type");
	if (e->rv == 0)
		put_rv(e, msgpack_pack_str_with_body(&e->pk, k->name,
		    strlen(k->name)));
	put_uint(e, "id", m->id);
	put_key(e, "body");
	if (e->rv == 0)
		k->enc(e, m);
	return e->rv;
}

static int
too_large(struct enc *e, size_t size)
{
	if (e->rv == 0 && size > CM_MSG_MAX_FRAME)
		e->rv = fail(e->err, sizeof(e->err), -EMSGSIZE,
		    "frame of %zu bytes exceeds the limit of %d", size,
		    CM_MSG_MAX_FRAME);
	return e->rv;
}

int
cm_msg_encode(const struct cm_msg *m, void **ret_buf, size_t *ret_len)
{
	const struct msg_kind *k;
	struct enc e = { .rv = 0 };

	if (m == NULL || ret_buf == NULL || ret_len == NULL)
		return -EINVAL;
	*ret_buf = NULL;
	*ret_len = 0;
	k = kind_of(m->type);
	if (k == NULL) {
		cm_debug("msg.encode.invalid", "type=%d", (int)m->type);
		return -EINVAL;
	}

	msgpack_sbuffer_init(&e.sb);
	msgpack_packer_init(&e.pk, &e.sb, msgpack_sbuffer_write);
	if (encode_into(&e, k, m) == 0)
		(void)too_large(&e, e.sb.size);
	if (e.rv < 0) {
		cm_debug("msg.encode.invalid", "type=%s reason=%s", k->name,
		    cm_q(e.err));
		msgpack_sbuffer_destroy(&e.sb);
		return e.rv;
	}
	*ret_len = e.sb.size;
	*ret_buf = msgpack_sbuffer_release(&e.sb); // realloc'd: free()
	return 0;
}

// Passes the gathered bytes on. Returns 0 or -1 (the writer refused).
static int
flush_chunk(struct enc *e)
{
	size_t n = e->chunk_len;

	e->chunk_len = 0;
	return n == 0 || e->write(e->write_arg, e->chunk, n) == 0 ? 0 : -1;
}

// msgpack's write callback for cm_msg_encode_to: counts, gathers and
// forwards (a piece larger than the chunk goes on by itself).
static int
write_through(void *data, const char *buf, size_t len)
{
	struct enc *e = data;

	e->written += len;
	if (e->chunk_len + len > sizeof(e->chunk) && flush_chunk(e) != 0)
		return -1;
	if (len > sizeof(e->chunk))
		return e->write(e->write_arg, buf, len) == 0 ? 0 : -1;
	memcpy(e->chunk + e->chunk_len, buf, len);
	e->chunk_len += len;
	return 0;
}

int
cm_msg_encode_to(const struct cm_msg *m, cm_msg_write_fn write, void *arg,
    size_t *ret_len)
{
	const struct msg_kind *k;
	struct enc e = { .rv = 0, .write = write, .write_arg = arg };

	if (m == NULL || write == NULL)
		return -EINVAL;
	k = kind_of(m->type);
	if (k == NULL) {
		cm_debug("msg.encode.invalid", "type=%d", (int)m->type);
		return -EINVAL;
	}
	msgpack_packer_init(&e.pk, &e, write_through);
	if (encode_into(&e, k, m) == 0 && too_large(&e, e.written) == 0 &&
	    flush_chunk(&e) != 0)
		e.rv = fail(e.err, sizeof(e.err), -ENOMEM,
		    "out of memory while packing");
	if (e.rv < 0) {
		cm_debug("msg.encode.invalid", "type=%s reason=%s", k->name,
		    cm_q(e.err));
		return e.rv;
	}
	if (ret_len != NULL)
		*ret_len = e.written;
	return 0;
}

// Copies up to 32 bytes of an untrusted str into out for an error message,
// replacing anything but printable ASCII with '?'.
static const char *
printable(const msgpack_object *o, char *out, size_t n)
{
	size_t i, len = o->via.str.size;

	if (len > n - 1)
		len = n - 1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)o->via.str.ptr[i];

		out[i] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
	}
	out[i] = '\0';
	return out;
}

// Checks v, type, id and body and dispatches on type.
static int
dec_envelope(struct cm_msg *m, const msgpack_object *top,
    const struct cm_msg_limits *lim, char *err, size_t errlen)
{
	struct dec d = { .err = err, .errlen = errlen, .rv = 0, .lim = lim };
	const msgpack_object *v, *type, *body;
	char shown[33];

	if (check_map(&d, top, "frame", -EBADMSG) < 0)
		return d.rv;
	v = find(&d, top, "", "v", -EPROTO);
	if (v == NULL)
		return d.rv;
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		wrong_type(&d, v, "", "v", "uint", -EPROTO);
		return d.rv;
	}
	if (v->via.u64 != CM_PROTO_VERSION)
		return fail(err, errlen, -EPROTO,
		    "v: version %" PRIu64 ", this side speaks %d", v->via.u64,
		    CM_PROTO_VERSION);
	type = find(&d, top, "", "type", -EPROTO);
	if (type == NULL)
		return d.rv;
	if (type->type != MSGPACK_OBJECT_STR) {
		wrong_type(&d, type, "", "type", "str", -EPROTO);
		return d.rv;
	}
	for (size_t i = 1; i < N_KINDS; i++)
		if (kinds[i].name != NULL && obj_is(type, kinds[i].name))
			m->type = (enum cm_msg_type)i;
	if (m->type == 0)
		return fail(err, errlen, -EPROTO, "type: unknown type \"%s\"",
		    printable(type, shown, sizeof(shown)));
	get_uint(&d, top, "", "id", UINT64_MAX, &m->id);
	if (find(&d, top, "", "ts", 0) != NULL) {
		get_uint(&d, top, "", "ts", UINT64_MAX, &m->ts);
		get_uint(&d, top, "", "nonce", UINT64_MAX, &m->nonce);
	}
	body = find(&d, top, "", "body", -EINVAL);
	if (body == NULL)
		return d.rv;
	if (check_map(&d, body, "body", -EINVAL) < 0)
		return d.rv;
	kinds[m->type].dec(&d, body, m);
	if (d.rv == 0)
		m->version = CM_PROTO_VERSION;
	return d.rv;
}

int
cm_msg_decode(struct cm_msg *m, const void *buf, size_t len, char *err,
    size_t errlen)
{
	return cm_msg_decode_lim(m, buf, len, NULL, err, errlen);
}

int
cm_msg_decode_lim(struct cm_msg *m, const void *buf, size_t len,
    const struct cm_msg_limits *lim, char *err, size_t errlen)
{
	const struct cm_msg_limits *l = lim != NULL ? lim : &limits_now;
	struct cm_msg_limits cl = {
		.max_frame = l->max_frame, .max_depth = l->max_depth,
		.max_workloads = (int64_t)clamp(l->max_workloads, 1,
		    CM_MSG_MAX_WORKLOADS),
		.max_name_len = (int64_t)clamp(l->max_name_len,
		    CM_MSG_MIN_NAME_LEN, CM_NAME_MAX - 1),
		.max_addr_len = (int64_t)clamp(l->max_addr_len,
		    CM_MSG_MIN_ADDR_LEN, CM_ADDR_MAX - 1),
		.max_text_len = (int64_t)clamp(l->max_text_len,
		    CM_MSG_MIN_TEXT_LEN, CM_TEXT_MAX - 1),
	};
	msgpack_unpacked up;
	msgpack_unpack_return ur;
	size_t off = 0;
	int r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (m == NULL)
		return fail(err, errlen, -EINVAL, "no message to decode into");
	memset(m, 0, sizeof(*m));
	r = cm_msg_check_frame_lim(buf, len, l, err, errlen);
	if (r < 0)
		return r;

	msgpack_unpacked_init(&up);
	ur = msgpack_unpack_next(&up, buf, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		r = fail(err, errlen, -ENOMEM, "out of memory unpacking frame");
		goto out;
	}
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		// The walk accepted it, so this would be a walker bug.
		r = fail(err, errlen, -EBADMSG,
		    "msgpack-c rejected the frame (%d at offset %zu)", (int)ur,
		    off);
		goto out;
	}
	r = dec_envelope(m, &up.data, &cl, err, errlen);
	if (r < 0)
		cm_msg_clear(m);
out:
	msgpack_unpacked_destroy(&up);
	return r;
}

void
cm_msg_clear(struct cm_msg *m)
{
	if (m == NULL)
		return;
	if (m->type == CM_MSG_REGISTER)
		free(m->u.reg.workloads);
	else if (m->type == CM_MSG_REPLY)
		free(m->u.reply.json);
	memset(m, 0, sizeof(*m));
}
