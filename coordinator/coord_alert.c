// SPDX-License-Identifier: MIT
// coord_alert: parser for Alertmanager webhook bodies (version 4).
//
// One pass over the body bytes: a small recursive-descent JSON reader
// (struct jr) that knows the webhook's shape, fills the structs of
// coord_alert.h as it goes and skips unknown keys and values of any type
// (checking their syntax, depth bounded). Strings are decoded (escapes,
// \uXXXX with surrogate pairs) straight into one arena that comes with
// the notification: the top-level strings and label sets stay there;
// each alert's strings and label sets are then packed into one block the
// alert owns, since alerts leave their notification (coord_engine_push).
// No tree, one allocation per alert.
//
// On any failure the body is looked at again in the order the contract
// gives errors (byte-level NUL/control/\u0000 first, then JSON syntax,
// then the webhook rules), so a malformed body is always reported as
// malformed; this costs nothing on the accepted path.

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cm_hash.h"
#include "cm_msg.h"
#include "cm_time.h"
#include "coord_alert.h"
#include "coord_jdepth.h"

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


// [a-zA-Z_][a-zA-Z0-9_]* over n bytes. (c | 0x20) folds 'A'-'Z' onto
// 'a'-'z' and moves no other byte into that range: one test for letters.
static bool
label_name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((unsigned char)((c | 0x20) - 'a') < 26 || c == '_')
			continue;
		if (i == 0 || (unsigned char)(c - '0') >= 10)
			return false;
	}
	return n > 0;
}

bool
coord_label_name_valid(const char *s)
{
	return s != NULL && label_name_ok(s, strlen(s));
}

// The byte-level rules, checked over the whole body on the error path
// (the reader enforces the same ones as it goes): a NUL byte anywhere, a
// raw control byte or "\u0000" inside a string.
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

// ---- the JSON reader -----------------------------------------------------

// Reader state. `arena` receives decoded strings (NUL-terminated); it is
// used as a stack: a string no longer needed is dropped by resetting
// `used`. Every string decodes to at most its raw length minus one
// (quotes out, NUL in), so len + 2 bytes always suffice, and the next
// byte written (arena + used + what the current string decoded so far)
// never lies more than pos + 1 bytes into the arena: plain_run relies on
// that. `kv` is scratch for label sets being read, also used as a stack:
// `kv_local` (cap_kv entries, the parser's stack frame) until it fills,
// then malloc'd.
struct jr {
	const unsigned char *s;
	size_t len, pos;
	size_t depth, max_depth;
	struct pctx *p;
	bool syntax;		 // the failure was malformed JSON
	char *arena;
	size_t used;
	struct coord_kv *kv, *kv_local;
	size_t n_kv, cap_kv;
	struct nblock *blk;	 // the notification's block (struct nblock)
	size_t top_kv_used;	 // entries of blk->top_kv given out
	struct coord_setmemo *memo; // NULL: none
};

// A notification from coord_webhook_parse and what comes with it in one
// allocation: room for its first alerts and for the entries of its
// top-level label sets (the usual webhook needs no allocation for
// either; larger ones are malloc'd), then the string arena (len + 2).
// coord_notification_free frees only what lies outside the block.
#define NBLOCK_ALERTS 4
#define NBLOCK_KV 16

struct nblock {
	struct coord_notification n; // first: the caller's pointer
	struct coord_alert alerts[NBLOCK_ALERTS];
	struct coord_kv top_kv[NBLOCK_KV];
	char arena[];
};

// True when `p` points into the block (then it is not freed on its own).
static bool
nblock_holds(const struct nblock *b, const void *p)
{
	uintptr_t u = (uintptr_t)p, lo = (uintptr_t)b;

	return u >= lo && u < lo + sizeof(*b);
}

// Entries of the kv scratch in the parser's frame: a webhook's largest
// label set (labels and annotations are popped after each alert) fits,
// so the usual body needs no allocation for it.
#define KV_LOCAL 64

static int
jr_bad(struct jr *j, size_t off)
{
	j->syntax = true;
	return failf(j->p, -EINVAL, "body: invalid JSON near offset %zu", off);
}

static void
jr_ws(struct jr *j)
{
	while (j->pos < j->len) {
		unsigned char c = j->s[j->pos];

		if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
			break;
		j->pos++;
	}
}

// The next non-space byte (not consumed), or -1 at the end.
static inline int
jr_peek(struct jr *j)
{
	// Most bodies have no space between tokens: one test for that.
	if (j->pos < j->len && j->s[j->pos] > ' ')
		return j->s[j->pos];
	jr_ws(j);
	return j->pos < j->len ? j->s[j->pos] : -1;
}

static int
jr_hex4(const unsigned char *s, unsigned *ret)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*ret = v;
	return 0;
}

// Decodes the \uXXXX escape (or surrogate pair) at s[i] ('\\') into o.
// Returns the bytes written, or a negative error; *ret_i is advanced past
// the escape.
static int
jr_uescape(struct jr *j, size_t *ret_i, char *o)
{
	const unsigned char *s = j->s;
	size_t i = *ret_i;
	unsigned cp, lo;

	if (j->len - i < 6 || jr_hex4(s + i + 2, &cp) < 0)
		return jr_bad(j, i);
	if (cp == 0) {
		j->syntax = true;
		return failf(j->p, -EINVAL, "body: \\u0000 in a string at "
		    "offset %zu", i);
	}
	i += 6;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return jr_bad(j, i - 6);
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->len - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
		    jr_hex4(s + i + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return jr_bad(j, i - 6);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		i += 6;
	}
	*ret_i = i;
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

#if defined(__SSE2__)
// The bytes of a 16-byte block that end a plain run: one bit per byte
// ('"', '\\' or a control byte), as _mm_movemask_epi8 numbers them.
static inline unsigned
block_specials(__m128i w)
{
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i ctl_max = _mm_set1_epi8(0x1f);
	// c <= 0x1f (unsigned) exactly when min(c, 0x1f) == c.
	__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(w, ctl_max), w);

	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(
	    _mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, bslash)), ctl));
}

// The bytes of a block that may be in a label name: [A-Za-z0-9_], one bit
// per byte; *digits gets those that are digits (not allowed first).
static inline unsigned
block_name_bytes(__m128i w, unsigned *digits)
{
	const __m128i fold = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a');
	const __m128i zero = _mm_set1_epi8('0'), under = _mm_set1_epi8('_');
	const __m128i max_letter = _mm_set1_epi8(25);
	const __m128i max_digit = _mm_set1_epi8(9);
	// As in label_name_ok; x <= max (unsigned) when min(x, max) == x.
	__m128i l = _mm_sub_epi8(_mm_or_si128(w, fold), a);
	__m128i d = _mm_sub_epi8(w, zero);
	__m128i dig = _mm_cmpeq_epi8(_mm_min_epu8(d, max_digit), d);

	*digits = (unsigned)_mm_movemask_epi8(dig);
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(
	    _mm_cmpeq_epi8(_mm_min_epu8(l, max_letter), l), dig),
	    _mm_cmpeq_epi8(w, under)));
}
#endif

// Copies the run of plain string bytes (not '"', '\\' or a control byte)
// at s[*i] to *o, advancing both; sets *high when a byte >= 0x80 was
// copied (or only follows the run in the same block). Sixteen bytes at a
// time with SSE2 (every x86-64 has it): one compare per kind of special
// byte finds the first one in the block. The whole block is stored even
// when fewer of its bytes are kept: the arena's end is always at least
// len - *i bytes past *o (see struct jr), so the store stays inside it.
// The byte loop does the body's last bytes and everything on other
// machines.
static inline void
plain_run(const unsigned char *s, size_t len, size_t *i, char **o,
    unsigned *high)
{
	size_t p = *i;
	char *d = *o;

#if defined(__SSE2__)
	while (len - p >= 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)
		    (s + p));
		unsigned m = block_specials(w);
		unsigned h = (unsigned)_mm_movemask_epi8(w); // bytes >= 0x80

		_mm_storeu_si128((__m128i *)(void *)d, w);
		if (m == 0) {
			*high |= h;
			p += 16;
			d += 16;
			continue;
		}
		// Bytes >= 0x80 past the run may count too (see jr_string).
		*high |= h;
		m = (unsigned)__builtin_ctz(m); // plain bytes before it
		*i = p + m;
		*o = d + m;
		return;
	}
#endif
	while (p < len && s[p] >= 0x20 && s[p] != '"' && s[p] != '\\') {
		*high |= s[p] & 0x80;
		*d++ = (char)s[p++];
	}
	*i = p;
	*o = d;
}

// What stopped a plain run inside a string at s[*i] (not its closing
// quote): an escape, decoded to *o (both advanced), or a fault (the end
// of the body, a raw control byte or NUL). Kept out of jr_string_any so
// its common case, a string without escapes, stays a short loop.
static __attribute__((noinline)) int
jr_special(struct jr *j, size_t *ret_i, char **o)
{
	const unsigned char *s = j->s;
	size_t i = *ret_i, len = j->len;
	int k;

	if (i >= len)
		return jr_bad(j, i);
	if (s[i] == '\\') {
		if (i + 1 >= len)
			return jr_bad(j, i);
		switch (s[i + 1]) {
		case '"': *(*o)++ = '"'; break;
		case '\\': *(*o)++ = '\\'; break;
		case '/': *(*o)++ = '/'; break;
		case 'b': *(*o)++ = '\b'; break;
		case 'f': *(*o)++ = '\f'; break;
		case 'n': *(*o)++ = '\n'; break;
		case 'r': *(*o)++ = '\r'; break;
		case 't': *(*o)++ = '\t'; break;
		case 'u':
			k = jr_uescape(j, ret_i, *o);
			if (k < 0)
				return k;
			*o += k;
			return 0;
		default:
			if (s[i + 1] >= 0x20)
				return jr_bad(j, i);
			i++; // a control byte: reported below
			goto ctl;
		}
		*ret_i = i + 2;
		return 0;
	}
ctl:
	j->syntax = true;
	if (s[i] == 0)
		return failf(j->p, -EINVAL, "body: NUL byte at offset %zu", i);
	return failf(j->p, -EINVAL, "body: control character in a string at "
	    "offset %zu", i);
}

// jr_string for any string.
static __attribute__((noinline)) int
jr_string_any(struct jr *j, char **ret, size_t *ret_len, bool *ret_high)
{
	char *out = j->arena + j->used, *o = out;
	size_t i = j->pos + 1;
	unsigned high = 0;

	for (;;) {
		// Copies for jr_special, so that i and o can stay in
		// registers on the common path.
		size_t si;
		char *so;
		int rv;

		plain_run(j->s, j->len, &i, &o, &high);
		if (i < j->len && j->s[i] == '"')
			break;
		si = i;
		so = o;
		rv = jr_special(j, &si, &so);
		if (rv < 0)
			return rv;
		i = si;
		o = so;
	}
	*o = '\0';
	j->pos = i + 1;
	*ret = out;
	*ret_len = (size_t)(o - out);
	*ret_high = high != 0;
	j->used += (size_t)(o - out) + 1;
	return 0;
}

#if defined(__SSE2__)
// jr_string_name's string of 16 + n2 bytes (n2 < 16): the block w without
// a special byte, then n2 plain bytes of w2 and the closing quote. Same
// results as jr_string_any, plus *name_ok / *no_ctl from the blocks.
static inline int
jr_string_two(struct jr *j, __m128i w, __m128i w2, unsigned n2, char **ret,
    size_t *ret_len, bool *ret_high, bool *name_ok, bool *no_ctl)
{
	size_t n = 16 + n2;
	char *out = j->arena + j->used;
	unsigned want2 = (1u << n2) - 1;

	// Inside the arena: see struct jr and plain_run (32 bytes of body
	// follow the opening quote).
	_mm_storeu_si128((__m128i *)(void *)out, w);
	_mm_storeu_si128((__m128i *)(void *)(out + 16), w2);
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	*ret_high = (_mm_movemask_epi8(w) | _mm_movemask_epi8(w2)) != 0;
	j->pos += n + 2;
	j->used += n + 1;
	if (name_ok != NULL) {
		unsigned dig, dig2, ok = block_name_bytes(w, &dig);
		unsigned ok2 = block_name_bytes(w2, &dig2);

		*name_ok = ok == 0xffff && (ok2 & want2) == want2 &&
		    (dig & 1) == 0;
	}
	if (no_ctl != NULL) {
		const __m128i del = _mm_set1_epi8(0x7f);
		unsigned d = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, del));
		unsigned d2 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w2,
		    del));

		*no_ctl = d == 0 && (d2 & want2) == 0;
	}
	return 0;
}
#endif

// Reads the string at j->pos (a '"') into the arena: *ret (NUL-terminated,
// no NUL inside), *ret_len; *ret_high is set when a raw byte >= 0x80 was
// copied (only then can the result be invalid UTF-8: escapes always
// encode correctly), and sometimes when one only follows the string
// closely, which costs a needless UTF-8 check and nothing else.
//
// Inline, for the common case: the whole string (no escape) in the 16
// bytes after its opening quote, as most keys and many values are, or in
// the 32 bytes after it (pod names, timestamps, most annotation names and
// short values); a call with its register saves was half the cost of
// such a string. jr_string_any does the rest.
//
// With `name_ok` (label keys), *name_ok is set when the string is known
// to be a valid label name (label_name_ok), seen in the same block; false
// only means "not checked here". With `no_ctl` (annotation names),
// *no_ctl is set when the string is known to hold no control byte (below
// 0x20 or 0x7f), likewise: read in the block, it has no escape and no
// byte below 0x20 (block_specials), so only 0x7f is looked for.
static inline int
jr_string_name(struct jr *j, char **ret, size_t *ret_len, bool *ret_high,
    bool *name_ok, bool *no_ctl)
{
#if defined(__SSE2__)
	size_t i = j->pos + 1; // <= j->len: j->pos holds the '"'

	if (j->len - i >= 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)
		    (j->s + i));
		unsigned m = block_specials(w);

		if (m != 0 && j->s[i + (unsigned)__builtin_ctz(m)] == '"') {
			size_t n = (unsigned)__builtin_ctz(m);
			char *out = j->arena + j->used;

			// Inside the arena: see struct jr and plain_run.
			_mm_storeu_si128((__m128i *)(void *)out, w);
			out[n] = '\0';
			*ret = out;
			*ret_len = n;
			*ret_high = _mm_movemask_epi8(w) != 0;
			j->pos = i + n + 1;
			j->used += n + 1;
			if (name_ok != NULL) {
				unsigned dig, ok = block_name_bytes(w, &dig);
				unsigned want = (1u << n) - 1;

				*name_ok = n > 0 && (ok & want) == want &&
				    (dig & 1) == 0;
			}
			if (no_ctl != NULL) {
				unsigned del = (unsigned)_mm_movemask_epi8(
				    _mm_cmpeq_epi8(w, _mm_set1_epi8(0x7f)));

				*no_ctl = (del & ((1u << n) - 1)) == 0;
			}
			return 0;
		}
		// No special byte in the first block: the string may end in
		// the second, read the same way.
		if (m == 0 && j->len - i >= 32) {
			__m128i w2 = _mm_loadu_si128((const __m128i *)
			    (const void *)(j->s + i + 16));
			unsigned m2 = block_specials(w2);

			if (m2 != 0 &&
			    j->s[i + 16 + (unsigned)__builtin_ctz(m2)] == '"')
				return jr_string_two(j, w, w2,
				    (unsigned)__builtin_ctz(m2), ret, ret_len,
				    ret_high, name_ok, no_ctl);
		}
	}
#endif
	if (name_ok != NULL)
		*name_ok = false;
	if (no_ctl != NULL)
		*no_ctl = false;
	return jr_string_any(j, ret, ret_len, ret_high);
}

static inline int
jr_string(struct jr *j, char **ret, size_t *ret_len, bool *ret_high)
{
	return jr_string_name(j, ret, ret_len, ret_high, NULL, NULL);
}

// Skips a string, checking it the same way.
static int
jr_skip_string(struct jr *j)
{
	size_t mark = j->used, n;
	bool high;
	char *s;
	int rv = jr_string(j, &s, &n, &high);

	j->used = mark;
	return rv;
}

// A number as RFC 8259 writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
static int
jr_number(struct jr *j)
{
	const unsigned char *s = j->s;
	size_t i = j->pos, len = j->len, d;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0') {
		i++;
	} else {
		for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return jr_bad(j, i);
	}
	if (i < len && s[i] == '.') {
		for (d = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return jr_bad(j, i);
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return jr_bad(j, i);
	}
	j->pos = i;
	return 0;
}

static int
jr_literal(struct jr *j, const char *lit, size_t n)
{
	if (j->len - j->pos < n || memcmp(j->s + j->pos, lit, n) != 0)
		return jr_bad(j, j->pos);
	j->pos += n;
	return 0;
}

// True (and consumed) when the next value is the literal null.
static bool
jr_null(struct jr *j)
{
	if (jr_peek(j) != 'n' || j->len - j->pos < 4 ||
	    memcmp(j->s + j->pos, "null", 4) != 0)
		return false;
	j->pos += 4;
	return true;
}

static int
jr_enter(struct jr *j)
{
	// A configured limit is reported by reclassify() (as
	// coord_jdepth_check words it).
	if (++j->depth > j->max_depth) {
		j->syntax = true;
		return failf(j->p, -EINVAL, "body: invalid JSON near offset "
		    "%zu: nests deeper than %zu levels", j->pos,
		    j->max_depth);
	}
	return 0;
}

// Object iteration: jr_begin(j, '}') at '{' (sets *more unless the object
// is empty), then per member jr_obj_key (the key decoded in the arena, the
// ':' consumed), the value, and jr_obj_next (sets *more).
static int
jr_begin(struct jr *j, char close, bool *more)
{
	int rv = jr_enter(j);

	if (rv < 0)
		return rv;
	j->pos++; // '{' or '['
	if (jr_peek(j) == close) {
		j->pos++;
		j->depth--;
		*more = false;
	} else {
		*more = true;
	}
	return 0;
}

// A member's key and its ':'; `name_ok` and `no_ctl` as in
// jr_string_name.
static inline int
jr_key(struct jr *j, char **key, size_t *klen, bool *high, bool *name_ok,
    bool *no_ctl)
{
	int rv;

	if (jr_peek(j) != '"')
		return jr_bad(j, j->pos);
	rv = jr_string_name(j, key, klen, high, name_ok, no_ctl);
	if (rv < 0)
		return rv;
	if (jr_peek(j) != ':')
		return jr_bad(j, j->pos);
	j->pos++; // every value reader starts with jr_peek
	return 0;
}

static int
jr_obj_key(struct jr *j, char **key, size_t *klen, bool *high)
{
	return jr_key(j, key, klen, high, NULL, NULL);
}

static int
jr_next(struct jr *j, char close, bool *more)
{
	int c = jr_peek(j);

	if (c == ',') {
		j->pos++;
		*more = true;
		return 0;
	}
	if (c != close)
		return jr_bad(j, j->pos);
	j->pos++;
	j->depth--;
	*more = false;
	return 0;
}

// Skips any value, checking its syntax.
static int
jr_skip(struct jr *j)
{
	bool more, high;
	size_t mark, n;
	char *key;
	int rv;

	switch (jr_peek(j)) {
	case '{':
		rv = jr_begin(j, '}', &more);
		while (rv == 0 && more) {
			mark = j->used;
			rv = jr_obj_key(j, &key, &n, &high);
			j->used = mark;
			if (rv == 0)
				rv = jr_skip(j);
			if (rv == 0)
				rv = jr_next(j, '}', &more);
		}
		return rv;
	case '[':
		rv = jr_begin(j, ']', &more);
		while (rv == 0 && more) {
			rv = jr_skip(j);
			if (rv == 0)
				rv = jr_next(j, ']', &more);
		}
		return rv;
	case '"':
		return jr_skip_string(j);
	case 't':
		return jr_literal(j, "true", 4);
	case 'f':
		return jr_literal(j, "false", 5);
	case 'n':
		return jr_literal(j, "null", 4);
	case -1:
		return jr_bad(j, j->pos);
	default:
		return jr_number(j);
	}
}

static void
jr_bom(struct jr *j)
{
	if (j->len >= 3 && memcmp(j->s, "\xef\xbb\xbf", 3) == 0)
		j->pos = 3;
}

// A whole text: one value and nothing but spaces after it.
static int
jr_validate(struct jr *j)
{
	int rv;

	jr_bom(j);
	rv = jr_skip(j);
	if (rv < 0)
		return rv;
	jr_ws(j);
	if (j->pos != j->len) {
		j->syntax = true;
		return failf(j->p, -EINVAL, "body: trailing data after JSON at "
		    "offset %zu", j->pos);
	}
	return 0;
}

// ---- the webhook's shape -------------------------------------------------

// Where a value sits, for error messages: "<field>" at the top level or
// "alerts[<idx>].<field>"; formatted only when there is an error.
struct where {
	const char *field;
	size_t idx;
	bool in_alert;
};

static const char *
where_str(char *buf, size_t n, const struct where *w)
{
	if (w->in_alert)
		snprintf(buf, n, "alerts[%zu].%s", w->idx, w->field);
	else
		snprintf(buf, n, "%s", w->field);
	return buf;
}

#define WBUF 64

// An optional string field: null gives "" (`empty`); a string must be
// UTF-8 and stays in the arena.
static int
opt_str(struct jr *j, const struct where *w, char *empty, char **out)
{
	char wb[WBUF];
	size_t n;
	bool high;
	int rv;

	if (jr_null(j)) {
		*out = empty;
		return 0;
	}
	if (jr_peek(j) != '"')
		return failf(j->p, -EINVAL, "%s: expected string",
		    where_str(wb, sizeof(wb), w));
	rv = jr_string(j, out, &n, &high);
	if (rv < 0)
		return rv;
	if (high && !cm_utf8_valid(*out, n))
		return failf(j->p, -EINVAL, "%s: not valid UTF-8",
		    where_str(wb, sizeof(wb), w));
	return 0;
}

// A string compared and dropped: "firing"/"resolved" for a status.
static int
status_read(struct jr *j, const struct where *w, bool *ret_firing,
    char **keep)
{
	size_t mark = j->used, n;
	char wb[WBUF], *s;
	bool high;
	int rv;

	if (jr_peek(j) != '"')
		return failf(j->p, -EINVAL, "%s: expected string",
		    where_str(wb, sizeof(wb), w));
	rv = jr_string(j, &s, &n, &high);
	if (rv < 0)
		return rv;
	// s holds no NUL (n bytes): equal exactly when the lengths are.
	if (n == 6 && memcmp(s, "firing", 6) == 0)
		*ret_firing = true;
	else if (n == 8 && memcmp(s, "resolved", 8) == 0)
		*ret_firing = false;
	else
		return failf(j->p, -EINVAL,
		    "%s: must be \"firing\" or \"resolved\"",
		    where_str(wb, sizeof(wb), w));
	if (keep != NULL)
		*keep = s;
	else
		j->used = mark;
	return 0;
}

#define GO_ZERO_TIME "0001-01-01T00:00:00Z"

static int
time_read(struct jr *j, const struct where *w, int64_t *ret_ms)
{
	size_t mark = j->used, n;
	char wb[WBUF], *s;
	bool high;
	int rv;

	*ret_ms = CM_TIME_NONE;
	if (jr_null(j))
		return 0;
	if (jr_peek(j) != '"')
		return failf(j->p, -EINVAL, "%s: expected string",
		    where_str(wb, sizeof(wb), w));
	rv = jr_string(j, &s, &n, &high);
	if (rv < 0)
		return rv;
	// Go's zero time, the endsAt of every firing alert: what
	// cm_time_parse gives for it (CM_TIME_NONE), without parsing.
	if (n == sizeof(GO_ZERO_TIME) - 1 &&
	    memcmp(s, GO_ZERO_TIME, sizeof(GO_ZERO_TIME) - 1) == 0) {
		j->used = mark;
		return 0;
	}
	if (cm_time_parse(s, ret_ms) < 0)
		return failf(j->p, -EINVAL, "%s: not an RFC 3339 time",
		    where_str(wb, sizeof(wb), w));
	j->used = mark;
	return 0;
}

static int
truncated_read(struct jr *j, int64_t *ret)
{
	size_t start, n;
	char buf[64], *tok;
	double d;
	int rv;

	*ret = 0;
	if (jr_null(j))
		return 0;
	rv = jr_peek(j);
	if (rv != '-' && !(rv >= '0' && rv <= '9'))
		return failf(j->p, -EINVAL, "truncatedAlerts: expected number");
	start = j->pos;
	rv = jr_number(j);
	if (rv < 0)
		return rv;
	// strtod wants a terminated copy; the grammar above already holds.
	n = j->pos - start;
	tok = n < sizeof(buf) ? buf : malloc(n + 1);
	if (tok == NULL)
		return failf(j->p, -ENOMEM, "truncatedAlerts: out of memory");
	memcpy(tok, j->s + start, n);
	tok[n] = '\0';
	d = strtod(tok, NULL);
	if (tok != buf)
		free(tok);
	if (!isfinite(d) || d < 0 || d > MAX_JSON_INT || floor(d) != d)
		return failf(j->p, -EINVAL,
		    "truncatedAlerts: expected a non-negative integer");
	*ret = (int64_t)d;
	return 0;
}

// strcmp's order (its sign); most label names differ in their first or
// second byte, which are compared without a call.
static inline int
key_cmp(const char *a, const char *b)
{
	if (a[0] != b[0])
		return (unsigned char)a[0] - (unsigned char)b[0];
	if (a[0] == '\0')
		return 0;
	if (a[1] != b[1])
		return (unsigned char)a[1] - (unsigned char)b[1];
	return strcmp(a, b);
}

static int
kv_cmp(const void *a, const void *b)
{
	const struct coord_kv *x = a, *y = b;

	return key_cmp(x->key, y->key);
}

// Label sets are small: insertion sort, qsort past a few dozen. Returns
// false when the keys are known to be unique: insertion meets any equal
// key next to the place it stops at, so the caller's scan for duplicates
// is needed only when it did (or after qsort). *moved: false when the
// entries were in order already (never said after qsort).
static bool
kv_sort(struct coord_kv *v, size_t n, bool *moved)
{
	bool equal = false;

	*moved = n > 32;
	if (n > 32) {
		qsort(v, n, sizeof(*v), kv_cmp);
		return true;
	}
	for (size_t i = 1; i < n; i++) {
		struct coord_kv t = v[i];
		size_t k = i;
		int c = 0;

		while (k > 0 && (c = key_cmp(v[k - 1].key, t.key)) > 0) {
			v[k] = v[k - 1];
			k--;
		}
		if (k > 0 && c == 0)
			equal = true;
		if (k != i) {
			v[k] = t;
			*moved = true;
		}
	}
	return equal;
}

// `high`: jr_string's flag (no raw byte >= 0x80: valid UTF-8 already);
// `name_ok`: jr_string_name's (a valid label name, or for an annotation
// name no control byte in it: no need to look).
static int
kv_key_check(struct pctx *p, const char *key, size_t n, bool high,
    bool name_ok, const struct where *w, enum kvs_kind kind)
{
	char sbuf[200], path[WBUF];

	if (n > p->lim->max_name_len)
		return failf(p, -E2BIG,
		    "%s: name \"%s\" is %zu bytes, over the limit of %zu "
		    "(limits.max_name_len)",
		    where_str(path, sizeof(path), w),
		    coord_safe_str(sbuf, sizeof(sbuf), key), n,
		    p->lim->max_name_len);
	if (kind == KVS_LABELS && !name_ok && !label_name_ok(key, n))
		return failf(p, -EINVAL, "%s: invalid label name \"%s\"",
		    where_str(path, sizeof(path), w),
		    coord_safe_str(sbuf, sizeof(sbuf), key));
	// Annotations are only displayed, never matched: any non-empty
	// UTF-8 name without control characters is fine.
	if (kind == KVS_ANNOTATIONS) {
		size_t i = name_ok ? n : 0;

		for (; i < n; i++)
			if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
				break;
		if (n == 0 || i < n || (high && !cm_utf8_valid(key, n)))
			return failf(p, -EINVAL,
			    "%s: invalid annotation name \"%s\"",
			    where_str(path, sizeof(path), w),
			    coord_safe_str(sbuf, sizeof(sbuf), key));
	}
	return 0;
}

// Entry `off` of the scratch stack (NULL while it is unallocated: no
// arithmetic on a null pointer).
static struct coord_kv *
kv_at(struct jr *j, size_t off)
{
	return j->kv != NULL ? j->kv + off : NULL;
}

static int
kv_push(struct jr *j, char *key, char *val)
{
	if (j->n_kv == j->cap_kv) {
		size_t cap = j->cap_kv != 0 ? j->cap_kv * 2 : 32;
		struct coord_kv *v;

		if (j->kv != NULL && j->kv == j->kv_local) {
			v = malloc(cap * sizeof(*v));
			if (v != NULL)
				memcpy(v, j->kv, j->n_kv * sizeof(*v));
		} else {
			v = realloc(j->kv, cap * sizeof(*v));
		}
		if (v == NULL)
			return -ENOMEM;
		j->kv = v;
		j->cap_kv = cap;
	}
	j->kv[j->n_kv++] = (struct coord_kv){ .key = key, .val = val };
	return 0;
}

static bool memo_take(struct jr *j, enum kvs_kind kind, size_t *off,
    size_t *cnt, size_t *canon_len);
static void memo_put(struct jr *j, enum kvs_kind kind, size_t start,
    size_t used, size_t off, size_t cnt);
static int kvs_read_text(struct jr *j, const struct where *w,
    enum kvs_kind kind, size_t *off, size_t *cnt, bool *canon,
    size_t *canon_len);

// Reads a string->string object at j->pos (a '{') onto the kv scratch
// stack, sorted and checked for duplicates: entries j->kv[*off ..
// *off + *cnt). Keys and values stay in the arena. With `canon` non-NULL,
// *canon is true when the object's text in the body is what the journal
// stores for the set (struct coord_alert, labels_json): then it is the
// *canon_len bytes before j->pos. Such a set (an alert's) is taken from
// j->memo when it holds the text, and kept there when read.
static int
kvs_read(struct jr *j, const struct where *w, enum kvs_kind kind,
    size_t *off, size_t *cnt, bool *canon, size_t *canon_len)
{
	size_t start = j->pos, used = j->used;
	int rv;

	if (canon == NULL || j->memo == NULL)
		return kvs_read_text(j, w, kind, off, cnt, canon, canon_len);
	if (memo_take(j, kind, off, cnt, canon_len)) {
		*canon = true;
		return 0;
	}
	rv = kvs_read_text(j, w, kind, off, cnt, canon, canon_len);
	if (rv == 0 && *canon)
		memo_put(j, kind, start, used, *off, *cnt);
	return rv;
}

static int
kvs_read_text(struct jr *j, const struct where *w, enum kvs_kind kind,
    size_t *off, size_t *cnt, bool *canon, size_t *canon_len)
{
	const struct coord_webhook_limits *lim = j->p->lim;
	size_t max_val = kind == KVS_LABELS ? lim->max_value_len :
	    lim->max_annotation_len;
	// In locals: the arena stores through char * would make the
	// compiler load them again for every entry.
	size_t max_labels = lim->max_labels, max_name = lim->max_name_len;
	char path[WBUF], sbuf[200], *key, *val;
	size_t klen, vlen, i, n = 0, start = j->pos, text = 0;
	bool more, high, name_ok = false, moved;
	int rv;

	*off = j->n_kv;
	*cnt = 0;
	rv = jr_begin(j, '}', &more);
	while (rv == 0 && more) {
		rv = jr_key(j, &key, &klen, &high,
		    kind == KVS_LABELS ? &name_ok : NULL,
		    kind == KVS_ANNOTATIONS ? &name_ok : NULL);
		if (rv < 0)
			return rv;
		if (++n > max_labels)
			return failf(j->p, -E2BIG, "%s: more than %zu entries "
			    "(limits.max_labels)",
			    where_str(path, sizeof(path), w), max_labels);
		// What kv_key_check passes without a look: a label name
		// already checked, an annotation name with no control and
		// no raw byte >= 0x80.
		if (klen > max_name || !name_ok || (kind == KVS_ANNOTATIONS &&
		    (klen == 0 || high))) {
			rv = kv_key_check(j->p, key, klen, high, name_ok, w,
			    kind);
			if (rv < 0)
				return rv;
		}
		if (jr_peek(j) != '"')
			return failf(j->p, -EINVAL, "%s.%s: expected string",
			    where_str(path, sizeof(path), w), key);
		rv = jr_string(j, &val, &vlen, &high);
		if (rv < 0)
			return rv;
		if (vlen > max_val)
			return failf(j->p, -E2BIG, "%s.%s: %zu bytes exceed "
			    "the limit of %zu (limits.%s)", where_str(path,
			    sizeof(path), w), key, vlen, max_val,
			    kind == KVS_LABELS ? "max_value_len" :
			    "max_annotation_len");
		if (high && !cm_utf8_valid(val, vlen))
			return failf(j->p, -EINVAL, "%s.%s: not valid UTF-8",
			    where_str(path, sizeof(path), w), key);
		if (kv_push(j, key, val) < 0)
			return failf(j->p, -ENOMEM, "%s: out of memory",
			    where_str(path, sizeof(path), w));
		text += klen + vlen;
		rv = jr_next(j, '}', &more);
	}
	if (rv < 0)
		return rv;
	*cnt = n;
	if (canon != NULL) {
		// The journal's text: "{}", or '{', n entries "k":"v" with
		// n - 1 commas, '}'. An escape decodes to fewer bytes than it
		// takes and space adds bytes, so a body text of exactly that
		// length has neither: its strings are the decoded bytes (none
		// the journal would escape: those come only from escapes) and
		// it differs from the journal's text at most in the order.
		*canon_len = j->pos - start;
		*canon = *canon_len == (n == 0 ? 2 : text + 6 * n + 1);
	}
	if (!kv_sort(kv_at(j, *off), *cnt, &moved)) {
		if (canon != NULL && moved)
			*canon = false;
		return 0;
	}
	if (canon != NULL)
		*canon = false;
	for (i = 1; i < *cnt; i++) {
		const struct coord_kv *v = kv_at(j, *off);

		if (strcmp(v[i - 1].key, v[i].key) == 0)
			return failf(j->p, -EINVAL, "%s: duplicate key \"%s\"",
			    where_str(path, sizeof(path), w),
			    coord_safe_str(sbuf, sizeof(sbuf), v[i].key));
	}
	return 0;
}

// A top-level label set: null gives an empty set; the array is copied
// out of the scratch stack (its strings stay in the arena).
static int
top_kvs_read(struct jr *j, const char *field, enum kvs_kind kind,
    struct coord_kvs *out)
{
	struct where w = { .field = field };
	size_t off, cnt;
	int rv;

	if (jr_null(j))
		return 0;
	if (jr_peek(j) != '{')
		return failf(j->p, -EINVAL, "%s: expected object", field);
	rv = kvs_read(j, &w, kind, &off, &cnt, NULL, NULL);
	if (rv < 0 || cnt == 0)
		return rv;
	if (cnt <= NBLOCK_KV - j->top_kv_used) {
		out->v = j->blk->top_kv + j->top_kv_used;
		j->top_kv_used += cnt;
	} else {
		out->v = malloc(cnt * sizeof(*out->v));
	}
	if (out->v == NULL)
		return failf(j->p, -ENOMEM, "%s: out of memory", field);
	memcpy(out->v, kv_at(j, off), cnt * sizeof(*out->v));
	out->n = cnt;
	j->n_kv = off;
	return 0;
}

// Copies src (strings and kv arrays anywhere) into dst laid out in one
// block, dst->mem. Returns 0 or -ENOMEM (dst untouched).
static int
alert_pack(struct coord_alert *dst, const struct coord_alert *src)
{
	const struct coord_kvs *sets[2] = { &src->labels, &src->annotations };
	const char *gen = src->generator_url ? src->generator_url : "";
	const char *fp = src->fingerprint ? src->fingerprint : "";
	size_t need, nkv = src->labels.n + src->annotations.n;
	struct coord_kv *kv;
	char *mem, *o;

	need = nkv * sizeof(*kv) + strlen(gen) + 1 + strlen(fp) + 1;
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < sets[s]->n; i++)
			need += strlen(sets[s]->v[i].key) + 1 +
			    strlen(sets[s]->v[i].val) + 1;
	mem = malloc(need);
	if (mem == NULL)
		return -ENOMEM;
	kv = (struct coord_kv *)(void *)mem;
	o = mem + nkv * sizeof(*kv);
#define PUT(dstp, str) do {						\
		size_t n_ = strlen(str) + 1;				\
		memcpy(o, (str), n_);					\
		(dstp) = o;						\
		o += n_;						\
	} while (0)
	*dst = (struct coord_alert){
		.firing = src->firing,
		.starts_ms = src->starts_ms,
		.ends_ms = src->ends_ms,
		.mem = mem,
	};
	for (int s = 0; s < 2; s++) {
		struct coord_kvs *d = s == 0 ? &dst->labels : &dst->annotations;

		d->v = sets[s]->n > 0 ? kv : NULL;
		d->n = sets[s]->n;
		for (size_t i = 0; i < sets[s]->n; i++, kv++) {
			PUT(kv->key, sets[s]->v[i].key);
			PUT(kv->val, sets[s]->v[i].val);
		}
	}
	PUT(dst->generator_url, gen);
	PUT(dst->fingerprint, fp);
#undef PUT
	return 0;
}

// Where a string of the alert being read goes in its block: the arena
// bytes from `from` on are copied to `to`; `empty` (an absent field)
// becomes the block's own "" at `to_empty`.
struct rebase {
	const char *from, *empty;
	char *to, *to_empty;
};

static char *
rebase_str(const struct rebase *r, const char *s)
{
	return s == r->empty ? r->to_empty : r->to + (s - r->from);
}

// Copies the JSON text [s, s + n) to o, NUL-terminated, as *ret (NULL
// when s is); returns the byte after the NUL.
static char *
json_put(char *o, const char *s, size_t n, const char **ret)
{
	*ret = NULL;
	if (s == NULL)
		return o;
	memcpy(o, s, n);
	o[n] = '\0';
	*ret = o;
	return o + n + 1;
}

// The parser's alert_pack: the alert's strings are the arena bytes
// [from, from + n) (everything alert_read dropped on the way was popped
// off the stack), so one memcpy moves them all and the pointers follow;
// no strlen, no copy per string. Same layout as alert_pack: the kv arrays,
// then the strings, then src's labels_json and annotations_json (texts
// in the body) when it has them. Returns 0 or -ENOMEM (dst untouched).
static int
alert_pack_arena(struct coord_alert *dst, const struct coord_alert *src,
    const char *from, size_t n, const char *empty)
{
	const struct coord_kvs *sets[2] = { &src->labels, &src->annotations };
	size_t nkv = src->labels.n + src->annotations.n;
	size_t json = (src->labels_json != NULL ? src->labels_json_len + 1 :
	    0) + (src->annotations_json != NULL ?
	    src->annotations_json_len + 1 : 0);
	struct coord_kv *kv;
	struct rebase r = { .from = from, .empty = empty };
	char *mem, *o;

	mem = malloc(nkv * sizeof(*kv) + n + 1 + json);
	if (mem == NULL)
		return -ENOMEM;
	kv = (struct coord_kv *)(void *)mem;
	r.to = mem + nkv * sizeof(*kv);
	memcpy(r.to, from, n);
	r.to_empty = r.to + n;
	*r.to_empty = '\0';
	*dst = (struct coord_alert){
		.firing = src->firing,
		.starts_ms = src->starts_ms,
		.ends_ms = src->ends_ms,
		.generator_url = rebase_str(&r, src->generator_url),
		.fingerprint = rebase_str(&r, src->fingerprint),
		.mem = mem,
		.labels_json_len = src->labels_json_len,
		.annotations_json_len = src->annotations_json_len,
	};
	o = json_put(r.to_empty + 1, src->labels_json, src->labels_json_len,
	    &dst->labels_json);
	(void)json_put(o, src->annotations_json, src->annotations_json_len,
	    &dst->annotations_json);
	for (int s = 0; s < 2; s++) {
		struct coord_kvs *d = s == 0 ? &dst->labels : &dst->annotations;

		d->v = sets[s]->n > 0 ? kv : NULL;
		d->n = sets[s]->n;
		// Keys and values are always in the arena, never `empty`.
		for (size_t i = 0; i < sets[s]->n; i++, kv++) {
			kv->key = r.to + (sets[s]->v[i].key - r.from);
			kv->val = r.to + (sets[s]->v[i].val - r.from);
		}
	}
	return 0;
}

enum {
	A_STATUS, A_LABELS, A_ANNOTATIONS, A_STARTS, A_ENDS, A_GENURL, A_FP,
	A__N,
};

// A known key and its length.
struct key_name {
	const char *s;
	size_t n;
};

#define KEY(str) { str, sizeof(str) - 1 }

static const struct key_name alert_keys[A__N] = {
	[A_STATUS] = KEY("status"), [A_LABELS] = KEY("labels"),
	[A_ANNOTATIONS] = KEY("annotations"), [A_STARTS] = KEY("startsAt"),
	[A_ENDS] = KEY("endsAt"), [A_GENURL] = KEY("generatorURL"),
	[A_FP] = KEY("fingerprint"),
};

static int
key_find(const struct key_name *names, int n, const char *key, size_t klen)
{
	for (int i = 0; i < n; i++)
		if (names[i].n == klen && names[i].s[0] == key[0] &&
		    memcmp(key, names[i].s, klen) == 0)
			return i;
	return -1;
}

// Reads one alert object (j->pos at '{') and packs it into *a.
static int
alert_read(struct jr *j, size_t idx, struct coord_alert *a)
{
	static char empty[1];
	struct coord_alert t = {
		.starts_ms = CM_TIME_NONE, .ends_ms = CM_TIME_NONE,
		.generator_url = empty, .fingerprint = empty,
	};
	struct where w = { .idx = idx, .in_alert = true };
	size_t mark = j->used, kv_mark = j->n_kv, lab_off = 0, lab_n = 0;
	size_t ann_off = 0, ann_n = 0, klen, clen;
	unsigned seen = 0;
	bool more, high, canon;
	const char *name;
	char *key;
	int rv, id;

	rv = jr_begin(j, '}', &more);
	while (rv == 0 && more) {
		size_t kmark = j->used;

		rv = jr_obj_key(j, &key, &klen, &high);
		if (rv < 0)
			return rv;
		id = key_find(alert_keys, A__N, key, klen);
		j->used = kmark;
		if (id >= 0) {
			if (seen & (1u << id))
				return failf(j->p, -EINVAL, "alerts[%zu].%s: "
				    "duplicate key", idx, alert_keys[id].s);
			seen |= 1u << id;
			w.field = alert_keys[id].s;
		}
		switch (id) {
		case A_STATUS:
			rv = status_read(j, &w, &t.firing, NULL);
			break;
		case A_LABELS:
			if (jr_peek(j) != '{')
				return failf(j->p, -EINVAL, "alerts[%zu]."
				    "labels: expected object", idx);
			rv = kvs_read(j, &w, KVS_LABELS, &lab_off, &lab_n,
			    &canon, &clen);
			if (rv < 0)
				return rv;
			if (canon) { // in the body, copied by alert_pack_arena
				t.labels_json = (const char *)j->s + j->pos -
				    clen;
				t.labels_json_len = clen;
			}
			t.labels = (struct coord_kvs){ kv_at(j, lab_off),
			    lab_n };
			// Sorted, keys unique: "alertname" is most often
			// the first (few names sort before it).
			name = lab_n > 0 && strcmp(t.labels.v[0].key,
			    "alertname") == 0 ? t.labels.v[0].val :
			    coord_kvs_get(&t.labels, "alertname");
			if (name == NULL || name[0] == '\0')
				return failf(j->p, -EINVAL, "alerts[%zu]."
				    "labels: no alertname label", idx);
			break;
		case A_ANNOTATIONS:
			if (jr_null(j))
				break;
			if (jr_peek(j) != '{')
				return failf(j->p, -EINVAL, "alerts[%zu]."
				    "annotations: expected object", idx);
			rv = kvs_read(j, &w, KVS_ANNOTATIONS, &ann_off, &ann_n,
			    &canon, &clen);
			if (rv == 0 && canon) {
				t.annotations_json = (const char *)j->s +
				    j->pos - clen;
				t.annotations_json_len = clen;
			}
			break;
		case A_STARTS:
			rv = time_read(j, &w, &t.starts_ms);
			break;
		case A_ENDS:
			rv = time_read(j, &w, &t.ends_ms);
			break;
		case A_GENURL:
			rv = opt_str(j, &w, empty, &t.generator_url);
			break;
		case A_FP:
			rv = opt_str(j, &w, empty, &t.fingerprint);
			break;
		default:
			rv = jr_skip(j); // unknown keys: newer AMs
			break;
		}
		if (rv == 0)
			rv = jr_next(j, '}', &more);
	}
	if (rv < 0)
		return rv;
	if (!(seen & (1u << A_STATUS)))
		return failf(j->p, -EINVAL, "alerts[%zu].status: missing", idx);
	if (!(seen & (1u << A_LABELS)))
		return failf(j->p, -EINVAL, "alerts[%zu].labels: missing", idx);
	// The scratch may have moved since the labels were read.
	t.labels = (struct coord_kvs){ kv_at(j, lab_off), lab_n };
	t.annotations = (struct coord_kvs){ kv_at(j, ann_off), ann_n };
	if (alert_pack_arena(a, &t, j->arena + mark, j->used - mark,
	    empty) < 0)
		return failf(j->p, -ENOMEM, "alerts[%zu]: out of memory", idx);
	j->used = mark;
	j->n_kv = kv_mark;
	return 0;
}

static int
alerts_read(struct jr *j, struct coord_notification *n)
{
	size_t cap = 0;
	bool more;
	int rv;

	if (jr_peek(j) != '[')
		return failf(j->p, -EINVAL, "alerts: expected array");
	rv = jr_begin(j, ']', &more);
	while (rv == 0 && more) {
		if (n->n_alerts == j->p->lim->max_alerts)
			return failf(j->p, -E2BIG, "alerts: more than %zu "
			    "alerts (limits.max_alerts)",
			    j->p->lim->max_alerts);
		if (jr_peek(j) != '{')
			return failf(j->p, -EINVAL, "alerts[%zu]: expected "
			    "object", n->n_alerts);
		if (n->n_alerts == cap) {
			size_t c = cap != 0 ? cap * 2 : NBLOCK_ALERTS;
			struct coord_alert *v;

			// The first alerts go into the block, then a malloc'd
			// array.
			if (cap == 0) {
				v = j->blk->alerts;
			} else if (n->alerts == j->blk->alerts) {
				v = malloc(c * sizeof(*v));
				if (v != NULL)
					memcpy(v, n->alerts, cap * sizeof(*v));
			} else {
				v = realloc(n->alerts, c * sizeof(*v));
			}
			if (v == NULL)
				return failf(j->p, -ENOMEM,
				    "alerts: out of memory");
			n->alerts = v;
			cap = c;
		}
		rv = alert_read(j, n->n_alerts, &n->alerts[n->n_alerts]);
		if (rv < 0)
			return rv;
		n->n_alerts++;
		rv = jr_next(j, ']', &more);
	}
	return rv;
}

enum {
	N_VERSION, N_RECEIVER, N_STATUS, N_ALERTS, N_GROUPKEY, N_GLABELS,
	N_CLABELS, N_CANNOT, N_EXTURL, N_TRUNC, N__N,
};

static const struct key_name top_keys[N__N] = {
	[N_VERSION] = KEY("version"), [N_RECEIVER] = KEY("receiver"),
	[N_STATUS] = KEY("status"), [N_ALERTS] = KEY("alerts"),
	[N_GROUPKEY] = KEY("groupKey"), [N_GLABELS] = KEY("groupLabels"),
	[N_CLABELS] = KEY("commonLabels"),
	[N_CANNOT] = KEY("commonAnnotations"),
	[N_EXTURL] = KEY("externalURL"), [N_TRUNC] = KEY("truncatedAlerts"),
};

static int
version_read(struct jr *j, struct coord_notification *n)
{
	char sbuf[200], *s;
	size_t len;
	bool high;
	int rv;

	if (jr_peek(j) != '"')
		return failf(j->p, -EINVAL, "version: expected string");
	rv = jr_string(j, &s, &len, &high);
	if (rv < 0)
		return rv;
	if (strcmp(s, "4") != 0)
		return failf(j->p, -EINVAL,
		    "version: unsupported \"%s\" (want \"4\")",
		    coord_safe_str(sbuf, sizeof(sbuf), s));
	n->version = s;
	return 0;
}

static int
top_field(struct jr *j, struct coord_notification *n, int id, char *empty)
{
	struct where w = { .field = id >= 0 ? top_keys[id].s : NULL };
	bool firing;

	switch (id) {
	case N_VERSION:
		return version_read(j, n);
	case N_STATUS:
		// Informational, but it must be a valid status.
		return status_read(j, &w, &firing, &n->status);
	case N_RECEIVER:
		return opt_str(j, &w, empty, &n->receiver);
	case N_GROUPKEY:
		return opt_str(j, &w, empty, &n->group_key);
	case N_EXTURL:
		return opt_str(j, &w, empty, &n->external_url);
	case N_TRUNC:
		return truncated_read(j, &n->truncated_alerts);
	case N_GLABELS:
		return top_kvs_read(j, "groupLabels", KVS_LABELS,
		    &n->group_labels);
	case N_CLABELS:
		return top_kvs_read(j, "commonLabels", KVS_LABELS,
		    &n->common_labels);
	case N_CANNOT:
		return top_kvs_read(j, "commonAnnotations", KVS_ANNOTATIONS,
		    &n->common_annotations);
	case N_ALERTS:
		return alerts_read(j, n);
	default:
		return jr_skip(j); // unknown keys: newer AMs
	}
}

static int
notification_read(struct jr *j, struct coord_notification *n)
{
	char *empty;
	unsigned seen = 0;
	bool more, high;
	size_t klen;
	char *key;
	int rv, id;

	// One "" for every absent string field.
	empty = j->arena + j->used;
	*empty = '\0';
	j->used++;
	n->receiver = n->status = n->group_key = n->external_url = empty;

	jr_bom(j);
	if (jr_peek(j) != '{')
		return failf(j->p, -EINVAL, "body: expected a JSON object");
	rv = jr_begin(j, '}', &more);
	while (rv == 0 && more) {
		size_t kmark = j->used;

		rv = jr_obj_key(j, &key, &klen, &high);
		if (rv < 0)
			return rv;
		id = key_find(top_keys, N__N, key, klen);
		j->used = kmark;
		if (id >= 0) {
			if (seen & (1u << id))
				return failf(j->p, -EINVAL, "%s: duplicate key",
				    top_keys[id].s);
			seen |= 1u << id;
		}
		rv = top_field(j, n, id, empty);
		if (rv == 0)
			rv = jr_next(j, '}', &more);
	}
	if (rv < 0)
		return rv;
	jr_ws(j);
	if (j->pos != j->len) {
		j->syntax = true;
		return failf(j->p, -EINVAL, "body: trailing data after JSON at "
		    "offset %zu", j->pos);
	}
	if (n->version == NULL)
		return failf(j->p, -EINVAL, "version: missing");
	if (!(seen & (1u << N_ALERTS)))
		return failf(j->p, -EINVAL, "alerts: missing");
	return 0;
}

// A rejected body: the contract names byte-level faults first, then
// malformed JSON, then the rest, wherever each sits in the body; the
// reader stopped at the first fault in document order, so look again.
static int
reclassify(struct pctx *p, const char *body, size_t len, bool syntax,
    int rv)
{
	struct jr v = {
		.s = (const unsigned char *)body,
		.len = len,
		.p = p,
		.max_depth = COORD_JSON_DEPTH_MAX,
	};

	if (rv == -ENOMEM)
		return rv;
	if (p->lim->max_depth != 0 && coord_jdepth_check(body, len,
	    p->lim->max_depth, p->err, p->errlen) < 0)
		return -EINVAL;
	if (prescan(p, body, len) < 0)
		return -EINVAL;
	if (syntax)
		return rv;
	v.arena = malloc(len + 2);
	if (v.arena == NULL)
		return rv;
	// The original reason survives in p->err unless this finds worse;
	// validation writes err only when it fails.
	if (jr_validate(&v) < 0)
		rv = -EINVAL;
	free(v.arena);
	return rv;
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
	return coord_webhook_parse_memo(ret, body, len, lim, NULL, err,
	    errlen);
}

int
coord_webhook_parse_memo(struct coord_notification **ret, const char *body,
    size_t len, const struct coord_webhook_limits *lim,
    struct coord_setmemo *m, char *err, size_t errlen)
{
	struct pctx p = {
		.lim = lim != NULL ? lim : &coord_webhook_default_limits,
		.err = err,
		.errlen = errlen,
	};
	struct coord_kv kv_local[KV_LOCAL];
	struct coord_notification *n;
	struct nblock *blk;
	struct jr j;
	int rv;

	*ret = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (body == NULL || len == 0 || only_space(body, len))
		return failf(&p, -EINVAL, "body: empty");
	if (len > p.lim->max_body)
		return failf(&p, -E2BIG,
		    "body: %zu bytes exceed the limit of %zu (limits.max_body)",
		    len,
		    p.lim->max_body);

	// The notification, room for its first alerts and top-level label
	// entries, and its string arena in one block (struct nblock).
	blk = malloc(sizeof(*blk) + len + 2);
	if (blk == NULL)
		return failf(&p, -ENOMEM, "body: out of memory");
	n = &blk->n;
	memset(n, 0, sizeof(*n));
	j = (struct jr){
		.s = (const unsigned char *)body,
		.len = len,
		.p = &p,
		.arena = blk->arena,
		.blk = blk,
		.kv = kv_local,
		.kv_local = kv_local,
		.cap_kv = KV_LOCAL,
		.max_depth = p.lim->max_depth != 0 &&
		    p.lim->max_depth < COORD_JSON_DEPTH_MAX ?
		    p.lim->max_depth : COORD_JSON_DEPTH_MAX,
		.memo = m,
	};
	rv = notification_read(&j, n);
	if (j.kv != kv_local)
		free(j.kv);
	if (rv < 0) {
		coord_notification_free(n);
		return reclassify(&p, body, len, j.syntax, rv);
	}
	*ret = n;
	return 0;
}

static void alert_clear(struct coord_alert *a);

void
coord_notification_free(struct coord_notification *n)
{
	struct nblock *blk = (struct nblock *)(void *)n; // n is its first member
	struct coord_kvs *sets[3];
	size_t i;

	if (n == NULL)
		return;
	// Strings live in the block with n; arrays that did not fit in it
	// are separate.
	sets[0] = &n->group_labels;
	sets[1] = &n->common_labels;
	sets[2] = &n->common_annotations;
	for (i = 0; i < 3; i++)
		if (!nblock_holds(blk, sets[i]->v))
			free(sets[i]->v);
	for (i = 0; i < n->n_alerts; i++)
		alert_clear(&n->alerts[i]);
	if (!nblock_holds(blk, n->alerts))
		free(n->alerts);
	free(blk);
}

void
coord_alert_clear(struct coord_alert *a)
{
	if (a != NULL)
		alert_clear(a);
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
		int c = key_cmp(key, kvs->v[mid].key);

		if (c == 0)
			return kvs->v[mid].val;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

// Frees the strings and array of a field-by-field kv set.
static void
kvs_clear(struct coord_kvs *kvs)
{
	for (size_t i = 0; i < kvs->n; i++) {
		free(kvs->v[i].key);
		free(kvs->v[i].val);
	}
	free(kvs->v);
}

static void
alert_clear(struct coord_alert *a)
{
	if (a->mem != NULL) {
		free(a->mem);
	} else {
		kvs_clear(&a->labels);
		kvs_clear(&a->annotations);
		free(a->generator_url);
		free(a->fingerprint);
	}
	memset(a, 0, sizeof(*a));
}

struct coord_alert *
coord_alert_dup(const struct coord_alert *a)
{
	struct coord_alert *c;

	if (a == NULL)
		return NULL;
	c = malloc(sizeof(*c));
	if (c == NULL)
		return NULL;
	if (alert_pack(c, a) < 0) {
		free(c);
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

// cm_fnv1a, but with the terminating NUL hashed too (the identity's
// separator) and unrolled for this hot loop.
static uint64_t
fnv1a(uint64_t h, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	// Hashes the terminating NUL too, as the separator. Four bytes a
	// turn: a quarter of the loop overhead of this hot loop.
	for (;; u += 4) {
		h = (h ^ u[0]) * CM_FNV_PRIME;
		if (u[0] == '\0')
			return h;
		h = (h ^ u[1]) * CM_FNV_PRIME;
		if (u[1] == '\0')
			return h;
		h = (h ^ u[2]) * CM_FNV_PRIME;
		if (u[2] == '\0')
			return h;
		h = (h ^ u[3]) * CM_FNV_PRIME;
		if (u[3] == '\0')
			return h;
	}
}

static bool
ignored(const char *key, const char *const *ignore, size_t n_ignore)
{
	size_t i;

	for (i = 0; i < n_ignore; i++)
		if (ignore[i] != NULL && ignore[i][0] == key[0] &&
		    strcmp(key, ignore[i]) == 0)
			return true;
	return false;
}

uint64_t
coord_alert_identity(const struct coord_alert *a, const char *const *ignore,
    size_t n_ignore)
{
	uint64_t h = CM_FNV_OFFSET;
	// The first bytes of the ignored names, one bit each: most labels
	// are ruled out by one test instead of a look at every name.
	uint64_t first[4] = { 0, 0, 0, 0 };
	size_t i;

	for (i = 0; i < n_ignore; i++)
		if (ignore[i] != NULL) {
			unsigned char c = (unsigned char)ignore[i][0];

			first[c >> 6] |= 1ull << (c & 63);
		}
	for (i = 0; i < a->labels.n; i++) {
		const struct coord_kv *kv = &a->labels.v[i];
		unsigned char c = (unsigned char)kv->key[0];

		if ((first[c >> 6] >> (c & 63) & 1) != 0 &&
		    ignored(kv->key, ignore, n_ignore))
			continue;
		h = fnv1a(h, kv->key);
		h = fnv1a(h, kv->val);
	}
	return h;
}

// ---- identities by label text (coord_idmemo) -----------------------------

#define IDMEMO_SLOTS 256
#define IDMEMO_TEXT_MAX 4096
#define IDMEMO_IGNORE_MAX 1024

struct idmemo_slot {
	uint64_t key;		// memo_key of text
	size_t len;		// 0: empty slot (a set's text is >= 2 bytes)
	size_t cap;
	char *text;		// owned
	uint64_t identity;
};

struct coord_idmemo {
	struct idmemo_slot slot[IDMEMO_SLOTS];
	// The ignore list the slots hold identities under: its non-NULL
	// names in order, each with its NUL; ignore_len 0 with no slot
	// filled yet.
	char ignore[IDMEMO_IGNORE_MAX];
	size_t ignore_len;
	bool ignore_known;
};

struct coord_idmemo *
coord_idmemo_new(void)
{
	return calloc(1, sizeof(struct coord_idmemo));
}

void
coord_idmemo_free(struct coord_idmemo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < IDMEMO_SLOTS; i++)
		free(m->slot[i].text);
	free(m);
}

// Picks the slot: 8 bytes a step (a multiply per word, not per byte as
// FNV-1a). Only a slot's choice depends on it; a hit compares the text.
// Over the alert's fingerprint when it has one (Alertmanager's hash of
// the label set, 16 bytes), else over the text.
static uint64_t
memo_key(const char *s, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = n * k, w;
	size_t i = 0;

	for (; n - i >= 8; i += 8) {
		memcpy(&w, s + i, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	if (i < n) {
		w = 0;
		memcpy(&w, s + i, n - i);
		h = (h ^ w) * k;
	}
	return h ^ h >> 32;
}

// True when the memo's slots were filled under this ignore list (in this
// order); otherwise empties them and takes it, false when it is too long
// to keep (then nothing is memoised).
static bool
memo_ignore(struct coord_idmemo *m, const char *const *ignore,
    size_t n_ignore)
{
	size_t o = 0, k;

	if (m->ignore_known) {
		for (size_t i = 0; i < n_ignore; i++) {
			if (ignore[i] == NULL)
				continue;
			k = strlen(ignore[i]) + 1;
			if (m->ignore_len - o < k ||
			    memcmp(m->ignore + o, ignore[i], k) != 0)
				goto changed;
			o += k;
		}
		if (o == m->ignore_len)
			return true;
	}
changed:
	for (size_t i = 0; i < IDMEMO_SLOTS; i++)
		m->slot[i].len = 0;
	m->ignore_known = false;
	o = 0;
	for (size_t i = 0; i < n_ignore; i++) {
		if (ignore[i] == NULL)
			continue;
		k = strlen(ignore[i]) + 1;
		if (sizeof(m->ignore) - o < k)
			return false;
		memcpy(m->ignore + o, ignore[i], k);
		o += k;
	}
	m->ignore_len = o;
	m->ignore_known = true;
	return true;
}

uint64_t
coord_idmemo_identity(struct coord_idmemo *m, const struct coord_alert *a,
    const char *const *ignore, size_t n_ignore)
{
	const char *t = a->labels_json;
	size_t n = a->labels_json_len;
	struct idmemo_slot *sl;
	uint64_t key, id;

	if (m == NULL || t == NULL || n < 2 || n > IDMEMO_TEXT_MAX ||
	    !memo_ignore(m, ignore, n_ignore))
		return coord_alert_identity(a, ignore, n_ignore);
	if (a->fingerprint != NULL && a->fingerprint[0] != '\0')
		key = memo_key(a->fingerprint, strlen(a->fingerprint)) ^ n;
	else
		key = memo_key(t, n);
	sl = &m->slot[key % IDMEMO_SLOTS];
	if (sl->len == n && sl->key == key && memcmp(sl->text, t, n) == 0)
		return sl->identity;
	id = coord_alert_identity(a, ignore, n_ignore);
	if (sl->cap < n) {
		char *p = realloc(sl->text, n);

		if (p == NULL)
			return id;	// the slot keeps what it had
		sl->text = p;
		sl->cap = n;
	}
	memcpy(sl->text, t, n);
	sl->len = n;
	sl->key = key;
	sl->identity = id;
	return id;
}

// ---- alerts' sets by their text (coord_setmemo) ---------------------------

#define SETMEMO_SLOTS 256
#define SETMEMO_TEXT_MAX 2048
// Body bytes from a set's '{' that pick its slot (those after a shorter
// set too: only the slot depends on them; a hit compares the set's text).
#define SETMEMO_KEY 256

struct setmemo_slot {
	uint64_t key;
	enum kvs_kind kind;
	size_t tlen;		// the text's bytes; 0: empty slot
	size_t dlen;		// its decoded strings' (each with its NUL)
	size_t n;		// entries
	size_t max_klen, max_vlen;
	// The text, the decoded strings, then (4-aligned) n pairs of offsets
	// of a key and its value in the strings. Owned.
	char *mem;
	size_t cap;
};

struct coord_setmemo {
	struct setmemo_slot slot[SETMEMO_SLOTS];
};

struct coord_setmemo *
coord_setmemo_new(void)
{
	return calloc(1, sizeof(struct coord_setmemo));
}

void
coord_setmemo_free(struct coord_setmemo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < SETMEMO_SLOTS; i++)
		free(m->slot[i].mem);
	free(m);
}

static size_t
setmemo_offs(size_t tlen, size_t dlen)
{
	return (tlen + dlen + 3) & ~(size_t)3;
}

static struct setmemo_slot *
setmemo_slot(struct jr *j, size_t at, uint64_t *key)
{
	size_t rem = j->len - at;

	*key = memo_key((const char *)j->s + at,
	    rem < SETMEMO_KEY ? rem : SETMEMO_KEY);
	return &j->memo->slot[*key % SETMEMO_SLOTS];
}

// kvs_read's result for the set at j->pos when the memo holds its text
// (of the same kind) and kvs_read_text would accept it under these
// limits and at this depth: its strings copied to the arena, its entries
// pushed, j->pos past it. False, with nothing changed that matters,
// otherwise.
static bool
memo_take(struct jr *j, enum kvs_kind kind, size_t *off, size_t *cnt,
    size_t *canon_len)
{
	const struct coord_webhook_limits *lim = j->p->lim;
	size_t max_val = kind == KVS_LABELS ? lim->max_value_len :
	    lim->max_annotation_len;
	struct setmemo_slot *sl;
	const uint32_t *o;
	uint64_t key;
	size_t first = j->n_kv;
	char *d;

	sl = setmemo_slot(j, j->pos, &key);
	if (sl->tlen == 0 || sl->key != key || sl->kind != kind ||
	    sl->tlen > j->len - j->pos ||
	    memcmp(j->s + j->pos, sl->mem, sl->tlen) != 0)
		return false;
	if (sl->n > lim->max_labels || sl->max_klen > lim->max_name_len ||
	    sl->max_vlen > max_val || j->depth + 1 > j->max_depth)
		return false;	// read, to be refused as it would be
	// The arena has room: a set's strings take fewer bytes than its
	// text, and the text is in the body's rest (see struct jr).
	d = j->arena + j->used;
	memcpy(d, sl->mem + sl->tlen, sl->dlen);
	o = (const uint32_t *)(const void *)(sl->mem +
	    setmemo_offs(sl->tlen, sl->dlen));
	for (size_t i = 0; i < sl->n; i++)
		if (kv_push(j, d + o[2 * i], d + o[2 * i + 1]) < 0) {
			j->n_kv = first;
			return false;
		}
	j->used += sl->dlen;
	j->pos += sl->tlen;
	*off = first;
	*cnt = sl->n;
	*canon_len = sl->tlen;
	return true;
}

// Keeps the set kvs_read_text just read (its text from `start`, its
// strings from arena offset `used`, entries j->kv[off .. off + cnt), a
// canonical text) in its slot, in place of what the slot held.
static void
memo_put(struct jr *j, enum kvs_kind kind, size_t start, size_t used,
    size_t off, size_t cnt)
{
	size_t tlen = j->pos - start, dlen = j->used - used, oo, need;
	const char *d = j->arena + used;
	struct setmemo_slot *sl;
	size_t max_klen = 0, max_vlen = 0;
	uint64_t key;
	uint32_t *o;

	if (tlen > SETMEMO_TEXT_MAX || tlen < 2)
		return;
	for (size_t i = 0; i < cnt; i++) {
		const struct coord_kv *v = kv_at(j, off + i);
		size_t kl = strlen(v->key), vl = strlen(v->val);

		// Every string of the set lies in its strings (defensive).
		if (v->key < d || v->key + kl >= d + dlen ||
		    v->val < d || v->val + vl >= d + dlen)
			return;
		max_klen = kl > max_klen ? kl : max_klen;
		max_vlen = vl > max_vlen ? vl : max_vlen;
	}
	sl = setmemo_slot(j, start, &key);
	oo = setmemo_offs(tlen, dlen);
	need = oo + cnt * 2 * sizeof(uint32_t);
	if (sl->cap < need) {
		char *p = realloc(sl->mem, need);

		if (p == NULL)
			return;	// the slot keeps what it had
		sl->mem = p;
		sl->cap = need;
	}
	memcpy(sl->mem, j->s + start, tlen);
	memcpy(sl->mem + tlen, d, dlen);
	o = (uint32_t *)(void *)(sl->mem + oo);
	for (size_t i = 0; i < cnt; i++) {
		const struct coord_kv *v = kv_at(j, off + i);

		o[2 * i] = (uint32_t)(v->key - d);
		o[2 * i + 1] = (uint32_t)(v->val - d);
	}
	sl->key = key;
	sl->kind = kind;
	sl->tlen = tlen;
	sl->dlen = dlen;
	sl->n = cnt;
	sl->max_klen = max_klen;
	sl->max_vlen = max_vlen;
}
