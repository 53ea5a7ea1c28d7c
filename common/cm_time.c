// SPDX-License-Identifier: MIT
// cm_time: wall and monotonic clocks, RFC 3339 parsing and formatting.
//
// Parsing accepts exactly what Go's time.Time marshals (RFC 3339 with an
// optional fraction of 1 to 9 digits) and nothing looser:
//
//   YYYY-MM-DD "T" hh:mm:ss [ "." 1*9DIGIT ] ( "Z" / ("+" / "-") hh:mm )
//
// Decisions worth knowing:
// - Lowercase "t" and "z" are accepted, as RFC 3339 section 5.6 allows
//   ("T" and "Z" may alternatively be lower case). A space instead of "T",
//   a missing offset, a comma as the fraction separator, a leap second
//   (ss = 60), a fraction of 0 or more than 9 digits and offsets beyond
//   23:59 are all rejected.
// - Years are 0001..9999 as written; the offset may move the instant a few
//   hours outside that range, which is fine for the arithmetic.
// - Any instant within the first millisecond of 0001-01-01T00:00:00Z (Go's
//   zero time.Time, however it is written) returns CM_TIME_NONE.
// - Calendar arithmetic is done here on int64 day counts (proleptic
//   Gregorian), so the result never depends on TZ, timegm() or the width
//   of time_t.
#include "cm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#define MS_PER_DAY INT64_C(86400000)

// Days from 0001-01-01 to 1970-01-01.
#define DAYS_YEAR1_TO_EPOCH INT64_C(719162)

// 0001-01-01T00:00:00Z in epoch milliseconds.
#define ZERO_TIME_MS (-DAYS_YEAR1_TO_EPOCH * MS_PER_DAY)

// 9999-12-31 is day 3652058 counted from 0001-01-01.
#define LAST_DAY INT64_C(3652058)

// Days before the first of each month in a common year.
static const int16_t month_start[12] = {
	0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334,
};

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
	static const int8_t len[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

// Days from 0001-01-01 to y-m-d (y >= 1, valid date).
static int64_t
days_since_year1(int64_t y, int m, int d)
{
	int64_t p = y - 1; // complete years before y
	int64_t days = p * 365 + p / 4 - p / 100 + p / 400;

	days += month_start[m - 1] + (m > 2 && is_leap(y) ? 1 : 0);
	return days + d - 1;
}

// Inverse of days_since_year1 for 0 <= n.
static void
date_from_days(int64_t n, int64_t *ret_y, int *ret_m, int *ret_d)
{
	int64_t q400, q100, q4, q1, y;
	int m;

	// 146097 days per 400 years, 36524 per century, 1461 per 4 years;
	// the last century of an era and the last year of a 4-year block
	// are one day longer, hence the clamps.
	q400 = n / 146097;
	n %= 146097;
	q100 = n / 36524;
	if (q100 == 4)
		q100 = 3;
	n -= q100 * 36524;
	q4 = n / 1461;
	n %= 1461;
	q1 = n / 365;
	if (q1 == 4)
		q1 = 3;
	n -= q1 * 365;
	y = q400 * 400 + q100 * 100 + q4 * 4 + q1 + 1;

	for (m = 12; m > 1; m--) {
		int start = month_start[m - 1] + (m > 2 && is_leap(y) ? 1 : 0);

		if (n >= start) {
			n -= start;
			break;
		}
	}
	*ret_y = y;
	*ret_m = m;
	*ret_d = (int)n + 1;
}

int64_t
cm_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts); // cannot fail for this id
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec
cm_mono_after_ns(int64_t ns)
{
	struct timespec ts;

	if (ns < 0)
		ns = 0;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec += (long)(ns % 1000000000);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int64_t
cm_mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); // cannot fail for this id
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Reads exactly n decimal digits at *p; advances *p.
static bool
digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

static bool
expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

// Parses "." 1*9DIGIT if present; returns the milliseconds, truncated.
static bool
fraction(const char **p, int *ret_ms)
{
	int n = 0, ms = 0;

	*ret_ms = 0;
	if (**p != '.')
		return true;
	(*p)++;
	while ((*p)[n] >= '0' && (*p)[n] <= '9') {
		if (n < 3)
			ms = ms * 10 + ((*p)[n] - '0');
		n++;
		if (n > 9)
			return false;
	}
	if (n == 0)
		return false;
	for (int i = n; i < 3; i++)
		ms *= 10;
	*p += n;
	*ret_ms = ms;
	return true;
}

// Parses "Z" / "z" / ("+" / "-") hh:mm; returns the offset in minutes.
static bool
offset(const char **p, int *ret_min)
{
	int sign, hh, mm;

	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		*ret_min = 0;
		return true;
	}
	if (**p == '+')
		sign = 1;
	else if (**p == '-')
		sign = -1;
	else
		return false;
	(*p)++;
	if (!digits(p, 2, &hh) || !expect(p, ':') || !digits(p, 2, &mm))
		return false;
	if (hh > 23 || mm > 59)
		return false;
	*ret_min = sign * (hh * 60 + mm);
	return true;
}

int
cm_time_parse(const char *s, int64_t *ret_ms)
{
	const char *p = s;
	int year, mon, day, hh, mi, ss, ms, off;
	int64_t days, t;

	if (s == NULL || ret_ms == NULL)
		return -EINVAL;
	if (!digits(&p, 4, &year) || !expect(&p, '-') ||
	    !digits(&p, 2, &mon) || !expect(&p, '-') ||
	    !digits(&p, 2, &day))
		return -EINVAL;
	if (*p != 'T' && *p != 't')
		return -EINVAL;
	p++;
	if (!digits(&p, 2, &hh) || !expect(&p, ':') || !digits(&p, 2, &mi) ||
	    !expect(&p, ':') || !digits(&p, 2, &ss))
		return -EINVAL;
	if (!fraction(&p, &ms) || !offset(&p, &off) || *p != '\0')
		return -EINVAL;
	if (year < 1 || mon < 1 || mon > 12 || day < 1 ||
	    day > month_days(year, mon) || hh > 23 || mi > 59 || ss > 59)
		return -EINVAL;

	days = days_since_year1(year, mon, day) - DAYS_YEAR1_TO_EPOCH;
	t = days * MS_PER_DAY +
	    ((int64_t)hh * 3600 + mi * 60 + ss - (int64_t)off * 60) * 1000 +
	    ms;
	*ret_ms = t == ZERO_TIME_MS ? CM_TIME_NONE : t;
	return 0;
}

char *
cm_time_format(int64_t ms, char *buf, size_t n)
{
	int64_t days, rem, y, last = (LAST_DAY + 1) * MS_PER_DAY;
	int m, d;

	if (buf == NULL || n == 0)
		return buf;
	buf[0] = '\0';
	// Outside years 1..9999 there is no RFC 3339 text to give.
	if (ms == CM_TIME_NONE || ms < ZERO_TIME_MS ||
	    ms >= last + ZERO_TIME_MS)
		return buf;

	days = (ms - ZERO_TIME_MS) / MS_PER_DAY; // non-negative here
	rem = (ms - ZERO_TIME_MS) % MS_PER_DAY;
	date_from_days(days, &y, &m, &d);
	snprintf(buf, n, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m,
	    d, (int)(rem / 3600000), (int)(rem / 60000 % 60),
	    (int)(rem / 1000 % 60), (int)(rem % 1000));
	return buf;
}
