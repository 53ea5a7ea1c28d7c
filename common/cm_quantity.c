// SPDX-License-Identifier: MIT
// cm_quantity: exact parser for Kubernetes resource quantities.
#include "cm_quantity.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

// Room for the mantissa digits times 2^60 (19 more digits).
#define DIGITS_MAX (CM_QUANTITY_MAX_LEN + 24)

// Exponents beyond this give the same outcome as this (every digit
// string is shorter), so they are clamped before arithmetic.
#define EXP_CLAMP 4096

struct suffix {
	const char *s;
	int base; // 10 or 2
	int exp;
};

// Checked in this order, like apimachinery: decimal table, binary
// table, then the e/E exponent form.
static const struct suffix suffixes[] = {
	{ "n", 10, -9 }, { "u", 10, -6 }, { "m", 10, -3 }, { "", 10, 0 },
	{ "k", 10, 3 },	 { "M", 10, 6 },  { "G", 10, 9 },  { "T", 10, 12 },
	{ "P", 10, 15 }, { "E", 10, 18 }, { "Ki", 2, 10 }, { "Mi", 2, 20 },
	{ "Gi", 2, 30 }, { "Ti", 2, 40 }, { "Pi", 2, 50 }, { "Ei", 2, 60 },
};

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

// Parses "[+-]digits" of an e/E suffix like Go's strconv.ParseInt:
// 0 or -EINVAL (empty, stray characters, beyond int64).
static int
parse_exponent(const char *s, size_t n, int64_t *ret)
{
	bool neg = false;
	uint64_t v = 0, lim;
	size_t i = 0;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return -EINVAL;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

// Interprets the suffix text into a base (10 or 2) and exponent.
static int
interpret_suffix(const char *s, size_t n, int *ret_base, int64_t *ret_exp)
{
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strlen(suffixes[i].s) == n &&
		    memcmp(suffixes[i].s, s, n) == 0) {
			*ret_base = suffixes[i].base;
			*ret_exp = suffixes[i].exp;
			return 0;
		}
	}
	if (n > 1 && (s[0] == 'e' || s[0] == 'E')) {
		*ret_base = 10;
		return parse_exponent(s + 1, n - 1, ret_exp);
	}
	return -EINVAL;
}

// Multiplies the big-endian decimal digits d[0..*n) by m in place
// (the array has room for DIGITS_MAX digits).
static void
digits_mul(unsigned char *d, size_t *n, uint64_t m)
{
	unsigned char tmp[DIGITS_MAX];
	unsigned __int128 carry = 0;
	size_t len = 0, i;

	for (i = *n; i-- > 0;) {
		unsigned __int128 t = (unsigned __int128)d[i] * m + carry;

		tmp[len++] = (unsigned char)(t % 10);
		carry = t / 10;
	}
	while (carry > 0 && len < DIGITS_MAX) {
		tmp[len++] = (unsigned char)(carry % 10);
		carry /= 10;
	}
	for (i = 0; i < len; i++)
		d[i] = tmp[len - 1 - i];
	*n = len;
}

// Rounds the magnitude (digits d[0..n) times 10^e) up to an integer and
// applies the sign. -ERANGE when it does not fit int64.
static int
to_int64(const unsigned char *d, size_t n, int64_t e, bool neg, int64_t *ret)
{
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	size_t int_len, i;
	bool frac = false;

	while (n > 0 && d[0] == 0) {
		d++;
		n--;
	}
	if (n == 0) {
		*ret = 0;
		return 0;
	}
	if (e >= 0) {
		if ((int64_t)n + e > 19)
			return -ERANGE;
		int_len = n;
	} else {
		int_len = (int64_t)n > -e ? n - (size_t)(-e) : 0;
		for (i = int_len; i < n; i++)
			frac = frac || d[i] != 0;
	}
	for (i = 0; i < int_len; i++) {
		if (v > (lim - d[i]) / 10)
			return -ERANGE;
		v = v * 10 + d[i];
	}
	for (; e > 0; e--) {
		if (v > lim / 10)
			return -ERANGE;
		v *= 10;
	}
	if (frac) {
		if (v == lim)
			return -ERANGE;
		v++;
	}
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int
cm_quantity_parse_scaled(const char *s, int scale, int64_t *ret)
{
	unsigned char d[DIGITS_MAX];
	size_t len, pos = 0, n = 0, n_frac = 0, suf;
	int64_t exp = 0, e;
	bool neg = false;
	int base = 10, rv;

	if (s == NULL || ret == NULL || scale < -9 || scale > 18)
		return -EINVAL;
	len = strnlen(s, CM_QUANTITY_MAX_LEN + 1);
	if (len == 0 || len > CM_QUANTITY_MAX_LEN)
		return -EINVAL;
	if (s[pos] == '+' || s[pos] == '-')
		neg = s[pos++] == '-';
	for (; pos < len && is_digit(s[pos]); pos++)
		d[n++] = (unsigned char)(s[pos] - '0');
	if (pos < len && s[pos] == '.') {
		for (pos++; pos < len && is_digit(s[pos]); pos++) {
			d[n++] = (unsigned char)(s[pos] - '0');
			n_frac++;
		}
	}
	if (n == 0)
		return -EINVAL;

	// Suffix: letters from the suffix alphabet, an optional sign, digits,
	// and then the end of the string.
	suf = pos;
	while (pos < len && strchr("eEinumkKMGTP", s[pos]) != NULL)
		pos++;
	if (pos < len && (s[pos] == '+' || s[pos] == '-'))
		pos++;
	while (pos < len && is_digit(s[pos]))
		pos++;
	if (pos != len)
		return -EINVAL;
	rv = interpret_suffix(s + suf, len - suf, &base, &exp);
	if (rv < 0)
		return rv;

	if (base == 2) {
		digits_mul(d, &n, (uint64_t)1 << exp);
		exp = 0;
	}
	if (exp > EXP_CLAMP)
		exp = EXP_CLAMP;
	else if (exp < -EXP_CLAMP)
		exp = -EXP_CLAMP;
	e = exp - (int64_t)n_frac - scale;
	return to_int64(d, n, e, neg, ret);
}

int
cm_quantity_parse_milli(const char *s, int64_t *ret_milli)
{
	return cm_quantity_parse_scaled(s, -3, ret_milli);
}

int
cm_quantity_parse_bytes(const char *s, int64_t *ret)
{
	return cm_quantity_parse_scaled(s, 0, ret);
}
