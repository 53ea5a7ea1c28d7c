// SPDX-License-Identifier: MIT
// Unit tests for cm_time: RFC 3339 parsing, formatting and the clocks.
#include <errno.h>
#include <stdbool.h>

#include "cm_time.h"
#include "tt.h"

// Parses s, expecting success and the value want.
#define CHECK_PARSE(s, want)                                                \
	do {                                                                \
		int64_t tp_ms = 12345;                                      \
		CHECK_INT(cm_time_parse((s), &tp_ms), 0);                   \
		CHECK_INT(tp_ms, (want));                                   \
	} while (0)

#define CHECK_BAD(s)                                                        \
	do {                                                                \
		int64_t tb_ms = 12345;                                      \
		CHECK_INT(cm_time_parse((s), &tb_ms), -EINVAL);             \
	} while (0)

// 0001-01-01T00:00:00Z in epoch ms: -62135596800 s.
#define YEAR1_MS (-INT64_C(62135596800000))

// The three timestamps of case C03 (an Alertmanager webhook body) and the
// epoch ms values the case file gives for them.
static void
test_c03_alertmanager_timestamps(void)
{
	CHECK_PARSE("2026-12-04T09:59:55Z", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04T17:47:17.113904445+08:00",
	    INT64_C(1796377637113));
	CHECK_PARSE("2026-12-04T09:47:17.113904445Z", INT64_C(1796377637113));
	CHECK_PARSE("2026-12-04T09:40:00Z", INT64_C(1796377200000));
	CHECK_PARSE("2026-12-04T10:15:00.5Z", INT64_C(1796379300500));
}

// Go's zero time.Time is what every firing alert carries as endsAt: it
// means "no end known", never "ended in year 1".
static void
test_zero_endsat_is_none(void)
{
	CHECK_PARSE("0001-01-01T00:00:00Z", CM_TIME_NONE);
	CHECK_PARSE("0001-01-01T00:00:00.000Z", CM_TIME_NONE);
	CHECK_PARSE("0001-01-01T00:00:00.0009Z", CM_TIME_NONE);
	CHECK_PARSE("0001-01-01T00:00:00+00:00", CM_TIME_NONE);
	// One millisecond later is a real (if odd) time.
	CHECK_PARSE("0001-01-01T00:00:00.001Z", YEAR1_MS + 1);
	CHECK_PARSE("0001-01-01T00:00:01Z", YEAR1_MS + 1000);
	// The same wall clock east of UTC is an hour before the zero time.
	CHECK_PARSE("0001-01-01T00:00:00+01:00", YEAR1_MS - 3600000);
}

static void
test_epoch_and_offsets(void)
{
	CHECK_PARSE("1970-01-01T00:00:00Z", 0);
	CHECK_PARSE("1970-01-01T00:00:00.001Z", 1);
	CHECK_PARSE("1969-12-31T23:59:59.999Z", -1);
	CHECK_PARSE("1970-01-01T00:00:00+00:00", 0);
	CHECK_PARSE("1970-01-01T00:00:00-00:00", 0);
	CHECK_PARSE("1970-01-01T01:00:00+01:00", 0);
	CHECK_PARSE("1969-12-31T19:00:00-05:00", 0);
	CHECK_PARSE("1969-12-31T14:30:00-09:30", 0);
	CHECK_PARSE("1970-01-01T05:45:00+05:45", 0);
	CHECK_PARSE("2026-12-04T01:59:55-08:00", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-03T23:59:55-10:00", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04T23:59:55+14:00", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04T09:59:55+23:59",
	    INT64_C(1796378395000) - (23 * 60 + 59) * 60000);
	CHECK_PARSE("2026-12-04T09:59:55-23:59",
	    INT64_C(1796378395000) + (23 * 60 + 59) * 60000);
	// Beyond 32-bit time_t in both directions.
	CHECK_PARSE("2038-01-19T03:14:08Z", INT64_C(2147483648000));
	CHECK_PARSE("1901-12-13T20:45:51Z", -INT64_C(2147483649000));
	CHECK_PARSE("9999-12-31T23:59:59.999Z", INT64_C(253402300799999));
}

static void
test_fraction_digits(void)
{
	CHECK_PARSE("1970-01-01T00:00:01.1Z", 1100);
	CHECK_PARSE("1970-01-01T00:00:01.12Z", 1120);
	CHECK_PARSE("1970-01-01T00:00:01.123Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.1239Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.12399Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.123999Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.1239999Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.12399999Z", 1123);
	CHECK_PARSE("1970-01-01T00:00:01.999999999Z", 1999);
	CHECK_PARSE("1970-01-01T00:00:01.000000000Z", 1000);
	CHECK_BAD("1970-01-01T00:00:01.1234567890Z"); // 10 digits
	CHECK_BAD("1970-01-01T00:00:01.Z");
	CHECK_BAD("1970-01-01T00:00:01,5Z");
	CHECK_BAD("1970-01-01T00:00:01.5.5Z");
	CHECK_BAD("1970-01-01T00:00:01.-5Z");
	// Truncation goes toward the past, also before 1970.
	CHECK_PARSE("1969-12-31T23:59:59.9999Z", -1);
}

static void
test_leap_years(void)
{
	CHECK_PARSE("2024-02-29T00:00:00Z", INT64_C(1709164800000));
	CHECK_PARSE("2024-03-01T00:00:00Z", INT64_C(1709251200000));
	CHECK_BAD("2023-02-29T00:00:00Z");
	CHECK_PARSE("2000-02-29T12:00:00Z", INT64_C(951825600000));
	CHECK_BAD("1900-02-29T00:00:00Z");
	CHECK_BAD("2100-02-29T00:00:00Z");
	CHECK_PARSE("2400-02-29T00:00:00Z", INT64_C(13574563200000));
	CHECK_BAD("2024-02-30T00:00:00Z");
	CHECK_PARSE("2023-02-28T00:00:00Z", INT64_C(1677542400000));
	CHECK_BAD("2024-04-31T00:00:00Z");
	CHECK_BAD("2024-06-31T00:00:00Z");
	CHECK_BAD("2024-09-31T00:00:00Z");
	CHECK_BAD("2024-11-31T00:00:00Z");
	CHECK_PARSE("2024-12-31T00:00:00Z", INT64_C(1735603200000));
}

static void
test_field_ranges(void)
{
	CHECK_BAD("0000-01-01T00:00:00Z");
	CHECK_BAD("2024-00-01T00:00:00Z");
	CHECK_BAD("2024-13-01T00:00:00Z");
	CHECK_BAD("2024-01-00T00:00:00Z");
	CHECK_BAD("2024-01-32T00:00:00Z");
	CHECK_BAD("2024-01-01T24:00:00Z");
	CHECK_BAD("2024-01-01T00:60:00Z");
	CHECK_BAD("2024-01-01T00:00:60Z"); // no leap seconds
	CHECK_BAD("2024-01-01T00:00:00+24:00");
	CHECK_BAD("2024-01-01T00:00:00+00:60");
	CHECK_PARSE("2024-01-01T23:59:59Z", INT64_C(1704153599000));
}

static void
test_garbage(void)
{
	static const char *const bad[] = {
		"",
		"Z",
		"now",
		"2024",
		"2024-01-01",
		"2024-01-01T",
		"2024-01-01T00:00",
		"2024-01-01T00:00:00",	    // missing offset
		"2024-01-01T00:00:00.123",  // missing offset
		"2024-01-01 00:00:00Z",	    // space separator
		"2024-01-01_00:00:00Z",
		"2024-1-01T00:00:00Z",
		"2024-01-1T00:00:00Z",
		"24-01-01T00:00:00Z",
		"+2024-01-01T00:00:00Z",
		"12024-01-01T00:00:00Z",
		"2024/01/01T00:00:00Z",
		"2024-01-01T00.00.00Z",
		"2024-01-01T0:00:00Z",
		"2024-01-01T00:00:00ZZ",
		"2024-01-01T00:00:00Z ",
		" 2024-01-01T00:00:00Z",
		"2024-01-01T00:00:00+0000",
		"2024-01-01T00:00:00+00",
		"2024-01-01T00:00:00+00:0",
		"2024-01-01T00:00:00+00:000",
		"2024-01-01T00:00:00UTC",
		"2024-01-01T00:00:00GMT",
		"2024-01-01T00:00:00+-1:00",
		"2O24-01-01T00:00:00Z",
		"2024-01-01T00:00:00\nZ",
		"１９７０-01-01T00:00:00Z",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 7;
		int r = cm_time_parse(bad[i], &ms);

		if (r != -EINVAL)
			printf("#   accepted \"%s\"\n", bad[i]);
		CHECK_INT(r, -EINVAL);
		CHECK_INT(ms, 7); // untouched on failure
	}
	CHECK_INT(cm_time_parse(NULL, &(int64_t){ 0 }), -EINVAL);
	CHECK_INT(cm_time_parse("1970-01-01T00:00:00Z", NULL), -EINVAL);
}

// Decision: RFC 3339 section 5.6 allows "t" and "z" in lower case, and so
// do we, although Go never emits them.
static void
test_lowercase_t_and_z_accepted(void)
{
	CHECK_PARSE("2026-12-04t09:59:55z", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04t09:59:55Z", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04T09:59:55z", INT64_C(1796378395000));
	CHECK_PARSE("2026-12-04t17:59:55+08:00", INT64_C(1796378395000));
}

static void
test_format(void)
{
	char buf[32];

	CHECK_STR(cm_time_format(0, buf, sizeof(buf)),
	    "1970-01-01T00:00:00.000Z");
	CHECK_STR(cm_time_format(INT64_C(1796379300500), buf, sizeof(buf)),
	    "2026-12-04T10:15:00.500Z");
	CHECK_STR(cm_time_format(INT64_C(1796377637113), buf, sizeof(buf)),
	    "2026-12-04T09:47:17.113Z");
	CHECK_STR(cm_time_format(-1, buf, sizeof(buf)),
	    "1969-12-31T23:59:59.999Z");
	CHECK_STR(cm_time_format(INT64_C(1709164800000), buf, sizeof(buf)),
	    "2024-02-29T00:00:00.000Z");
	CHECK_STR(cm_time_format(YEAR1_MS + 1, buf, sizeof(buf)),
	    "0001-01-01T00:00:00.001Z");
	CHECK_STR(cm_time_format(INT64_C(253402300799999), buf, sizeof(buf)),
	    "9999-12-31T23:59:59.999Z");
	CHECK_STR(cm_time_format(CM_TIME_NONE, buf, sizeof(buf)), "");
	// Outside years 1..9999 there is no RFC 3339 text.
	CHECK_STR(cm_time_format(YEAR1_MS - 1, buf, sizeof(buf)), "");
	CHECK_STR(cm_time_format(INT64_C(253402300800000), buf, sizeof(buf)),
	    "");
	CHECK_STR(cm_time_format(INT64_MAX, buf, sizeof(buf)), "");
	CHECK_STR(cm_time_format(INT64_MIN + 1, buf, sizeof(buf)), "");
	// A short buffer is truncated, never overrun.
	memset(buf, 'x', sizeof(buf));
	CHECK_STR(cm_time_format(0, buf, 11), "1970-01-01");
	CHECK_INT(buf[11], 'x');
	CHECK(cm_time_format(0, NULL, 0) == NULL);
}

// Walks every day of years 1..9999 with a naive calendar of its own and
// checks that parse and format agree with it and with each other.
static void
test_every_day_round_trips(void)
{
	static const int mdays[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};
	int64_t want = YEAR1_MS + 43200000 + 1000 * 61 + 7; // 12:01:01.007
	int bad = 0;
	char in[40], out[32];

	for (int y = 1; y <= 9999 && bad < 5; y++) {
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

		for (int m = 1; m <= 12; m++) {
			int n = mdays[m - 1] + (m == 2 && leap);

			for (int d = 1; d <= n; d++) {
				int64_t got = 0;

				snprintf(in, sizeof(in),
				    "%04d-%02d-%02dT12:01:01.007Z", y, m, d);
				if (cm_time_parse(in, &got) != 0 ||
				    got != want ||
				    strcmp(cm_time_format(got, out,
				    sizeof(out)), in) != 0) {
					printf("#   %s -> %" PRId64 " -> %s, "
					    "expected %" PRId64 "\n", in, got,
					    out, want);
					bad++;
				}
				want += 86400000;
			}
			if (m == 2 && !leap) {
				snprintf(in, sizeof(in),
				    "%04d-02-29T00:00:00Z", y);
				CHECK_INT(cm_time_parse(in, &(int64_t){ 0 }),
				    -EINVAL);
			}
		}
	}
	CHECK_INT(bad, 0);
}

static void
test_clocks(void)
{
	int64_t now = cm_now_ms(), a, b;

	// After 2020-01-01 and before 2200-01-01: a sane wall clock in ms.
	CHECK(now > INT64_C(1577836800000));
	CHECK(now < INT64_C(7258118400000));
	a = cm_mono_ms();
	b = cm_mono_ms();
	CHECK(a >= 0);
	CHECK(b >= a);
}

static const struct tt_case cases[] = {
	{ "c03_alertmanager_timestamps", test_c03_alertmanager_timestamps },
	{ "zero_endsat_is_none", test_zero_endsat_is_none },
	{ "epoch_and_offsets", test_epoch_and_offsets },
	{ "fraction_digits", test_fraction_digits },
	{ "leap_years", test_leap_years },
	{ "field_ranges", test_field_ranges },
	{ "garbage", test_garbage },
	{ "lowercase_t_and_z_accepted", test_lowercase_t_and_z_accepted },
	{ "format", test_format },
	{ "every_day_round_trips", test_every_day_round_trips },
	{ "clocks", test_clocks },
	{ NULL, NULL },
};

TT_MAIN(cases)
