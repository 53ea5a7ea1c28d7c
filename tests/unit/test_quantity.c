// SPDX-License-Identifier: MIT
// Unit tests for cm_quantity: Kubernetes quantity grammar, every suffix,
// rounding, overflow and refused forms.
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cm_quantity.h"
#include "tt.h"

struct row {
	const char *s;
	int rv;
	int64_t want;
};

// Runs one table through `parse`, checking return value and result.
static void
run_table(const struct row *t, size_t n, int scale)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int64_t v = 424242;
		int rv = cm_quantity_parse_scaled(t[i].s, scale, &v);

		if (rv != t[i].rv || (rv == 0 && v != t[i].want)) {
			printf("#   \"%s\" at scale %d: rv %d value %lld, "
			       "expected rv %d value %lld\n",
			    t[i].s ? t[i].s : "(null)", scale, rv,
			    (long long)v, t[i].rv, (long long)t[i].want);
			CHECK(false);
		}
		if (rv != 0)
			CHECK_INT(v, 424242); // untouched on failure
	}
}

#define RUN(tbl, scale) run_table((tbl), sizeof(tbl) / sizeof((tbl)[0]), scale)

static void
test_brief_examples(void)
{
	int64_t v = 0;

	CHECK_INT(cm_quantity_parse_milli("3800m", &v), 0);
	CHECK_INT(v, 3800);
	CHECK_INT(cm_quantity_parse_milli("1.5", &v), 0);
	CHECK_INT(v, 1500);
	CHECK_INT(cm_quantity_parse_milli("2e3", &v), 0);
	CHECK_INT(v, 2000000);
	CHECK_INT(cm_quantity_parse_milli("123456789n", &v), 0);
	CHECK_INT(v, 124);
	CHECK_INT(cm_quantity_parse_bytes("16Gi", &v), 0);
	CHECK_INT(v, INT64_C(17179869184));
	CHECK_INT(cm_quantity_parse_bytes("15613336Ki", &v), 0);
	CHECK_INT(v, INT64_C(15988056064));
	CHECK_INT(cm_quantity_parse_bytes("512Mi", &v), 0);
	CHECK_INT(v, INT64_C(536870912));
	CHECK_INT(cm_quantity_parse_bytes("1.5Gi", &v), 0);
	CHECK_INT(v, INT64_C(1610612736));
	CHECK_INT(cm_quantity_parse_bytes("1e3", &v), 0);
	CHECK_INT(v, 1000);
}

// One of each suffix, in whole units and in milli units.
static void
test_every_suffix(void)
{
	static const struct row units[] = {
		{ "1n", 0, 1 },	 // 10^-9 rounds up to one unit
		{ "1u", 0, 1 },
		{ "1m", 0, 1 },
		{ "1", 0, 1 },
		{ "1k", 0, 1000 },
		{ "1M", 0, 1000000 },
		{ "1G", 0, INT64_C(1000000000) },
		{ "1T", 0, INT64_C(1000000000000) },
		{ "1P", 0, INT64_C(1000000000000000) },
		{ "1E", 0, INT64_C(1000000000000000000) },
		{ "1Ki", 0, 1024 },
		{ "1Mi", 0, 1048576 },
		{ "1Gi", 0, INT64_C(1073741824) },
		{ "1Ti", 0, INT64_C(1099511627776) },
		{ "1Pi", 0, INT64_C(1125899906842624) },
		{ "1Ei", 0, INT64_C(1152921504606846976) },
		{ "3e2", 0, 300 },
		{ "3E2", 0, 300 },
		{ "3e+2", 0, 300 },
		{ "3E-2", 0, 1 },
		{ "3e0", 0, 3 },
	};
	static const struct row milli[] = {
		{ "1n", 0, 1 },
		{ "999u", 0, 1 },
		{ "1000u", 0, 1 },
		{ "1001u", 0, 2 },
		{ "1m", 0, 1 },
		{ "250m", 0, 250 },
		{ "1", 0, 1000 },
		{ "1k", 0, 1000000 },
		{ "1M", 0, INT64_C(1000000000) },
		{ "1Ki", 0, 1024000 },
		{ "1E", -ERANGE, 0 }, // 10^21 milli
		{ "1e-3", 0, 1 },
		{ "1E-4", 0, 1 },
	};
	static const struct row nano[] = {
		{ "123456789n", 0, 123456789 },
		{ "250m", 0, 250000000 },
		{ "1u", 0, 1000 },
		{ "2", 0, 2000000000 },
	};

	RUN(units, 0);
	RUN(milli, -3);
	RUN(nano, -9);
}

// "m" is milli and "M" mega; E alone is exa, E with digits an exponent.
static void
test_case_and_exponent_ambiguity(void)
{
	static const struct row units[] = {
		{ "5m", 0, 1 },
		{ "5M", 0, 5000000 },
		{ "2E", 0, INT64_C(2000000000000000000) },
		{ "2E3", 0, 2000 },
		{ "2e3", 0, 2000 },
		{ "2e", -EINVAL, 0 },
		{ "2E+", -EINVAL, 0 },
		{ "2e-", -EINVAL, 0 },
		{ "2Ee3", -EINVAL, 0 },
	};

	RUN(units, 0);
}

static void
test_number_forms(void)
{
	static const struct row milli[] = {
		{ "0", 0, 0 },
		{ "-0", 0, 0 },
		{ "+0", 0, 0 },
		{ "00012", 0, 12000 },
		{ ".5", 0, 500 },
		{ "5.", 0, 5000 },
		{ "0.001", 0, 1 },
		{ "0.0011", 0, 2 },
		{ "1.G", 0, INT64_C(1000000000000) },
		{ "0e99999", 0, 0 },
		{ "0.000Ei", 0, 0 },
		{ "+2", 0, 2000 },
		{ "0.0000000001", 0, 1 }, // below 10^-9: rounded up
		{ "3800m", 0, 3800 },
		{ "47233297124", 0, INT64_C(47233297124000) },
		{ "110", 0, 110000 },
		{ "0.5Ki", 0, 512000 },
		{ "0.1Ki", 0, 102400 },
		{ "0.001Ki", 0, 1024 },
		{ "0.0001Ki", 0, 103 }, // 102.4 rounds up
	};

	RUN(milli, -3);
}

// Rounding is away from zero, as Quantity.Value() does.
static void
test_negative_values(void)
{
	static const struct row milli[] = {
		{ "-1.5", 0, -1500 },
		{ "-123456789n", 0, -124 },
		{ "-1n", 0, -1 },
		{ "-2Ki", 0, -2048000 },
		{ "-1e-9", 0, -1 },
	};
	static const struct row units[] = {
		{ "-1m", 0, -1 },
		{ "-1.5Gi", 0, -INT64_C(1610612736) },
		{ "-9223372036854775808", 0, INT64_MIN },
		{ "-9223372036854775809", -ERANGE, 0 },
		{ "-8Ei", 0, INT64_MIN },
	};

	RUN(milli, -3);
	RUN(units, 0);
}

static void
test_overflow(void)
{
	static const struct row units[] = {
		{ "9223372036854775807", 0, INT64_MAX },
		{ "9223372036854775808", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "7Ei", 0, INT64_C(8070450532247928832) },
		{ "8Ei", -ERANGE, 0 },
		{ "1e18", 0, INT64_C(1000000000000000000) },
		{ "1e19", -ERANGE, 0 },
		{ "1e999999", -ERANGE, 0 },
		{ "1e-999999", 0, 1 },
		{ "1e9223372036854775807", -ERANGE, 0 },
		{ "1e-9223372036854775808", 0, 1 },
		// Beyond int64 in the exponent itself: refused like Go does.
		{ "1e9223372036854775808", -EINVAL, 0 },
		{ "1e99999999999999999999", -EINVAL, 0 },
		{ "9223372036854775.807m", 0, INT64_C(9223372036855) },
	};
	static const struct row milli[] = {
		{ "9223372036854775.807", 0, INT64_MAX },
		{ "9223372036854775.8071", -ERANGE, 0 }, // rounds up past max
		{ "9223372036854776", -ERANGE, 0 },
		{ "9223372036854775807", -ERANGE, 0 },
	};
	int64_t v;

	// 9.223372036854775807E = 9223372036854775807 exactly: fits.
	CHECK_INT(cm_quantity_parse_bytes("9.223372036854775807E", &v), 0);
	CHECK_INT(v, INT64_MAX);
	CHECK_INT(cm_quantity_parse_bytes("9.223372036854775808E", &v),
	    -ERANGE);
	RUN(units, 0);
	RUN(milli, -3);
}

static void
test_refused_forms(void)
{
	static const char *const bad[] = {
		"", "K", "KB", "1K", "1KB", "1Kb", "1kB", "1ki", "1mi", "1Kib",
		"1.2.3", "--1", "-+1", "+-1", "1Ki5", "1 ", " 1", "1\t", "1e",
		"1E+", "abc", "1e3m", "1me3", "-", "+", ".", "Ki", "m", "e3",
		"1,5", "1_000", "0x10", "1i", "1.5.", "1e1.5", "1Mi1", "1..",
		"1 Mi", "1Mi ", "1n1", "1e3.", "infinity", "NaN", "1mm",
		"1MM", "1Ki1Ki", ".e3", "1.5Ki+", "１",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 7;
		int rv = cm_quantity_parse_bytes(bad[i], &v);

		if (rv != -EINVAL) {
			printf("#   \"%s\": rv %d value %lld\n", bad[i], rv,
			    (long long)v);
			CHECK(false);
		}
		CHECK_INT(v, 7);
		CHECK_INT(cm_quantity_parse_milli(bad[i], &v), -EINVAL);
	}
	{
		int64_t v = 7;

		CHECK_INT(cm_quantity_parse_bytes(NULL, &v), -EINVAL);
		CHECK_INT(v, 7);
	}
}

static void
test_bounds_of_input(void)
{
	char buf[CM_QUANTITY_MAX_LEN + 8];
	int64_t v = 0;

	// The longest accepted input: "0." followed by zeros and a final 1,
	// a positive value below 10^-9, rounds up to one unit.
	memset(buf, '0', CM_QUANTITY_MAX_LEN);
	buf[1] = '.';
	buf[CM_QUANTITY_MAX_LEN - 1] = '1';
	buf[CM_QUANTITY_MAX_LEN] = '\0';
	CHECK_INT(cm_quantity_parse_milli(buf, &v), 0);
	CHECK_INT(v, 1);
	// Leading zeros do not count against int64.
	memset(buf, '0', CM_QUANTITY_MAX_LEN);
	buf[CM_QUANTITY_MAX_LEN - 1] = '7';
	CHECK_INT(cm_quantity_parse_bytes(buf, &v), 0);
	CHECK_INT(v, 7);
	// One byte longer is refused.
	memset(buf, '0', CM_QUANTITY_MAX_LEN + 1);
	buf[CM_QUANTITY_MAX_LEN + 1] = '\0';
	CHECK_INT(cm_quantity_parse_bytes(buf, &v), -EINVAL);
	// Scales outside -9..18.
	CHECK_INT(cm_quantity_parse_scaled("1", -10, &v), -EINVAL);
	CHECK_INT(cm_quantity_parse_scaled("1", 19, &v), -EINVAL);
	CHECK_INT(cm_quantity_parse_scaled("1", 18, &v), 0);
	CHECK_INT(v, 1); // 1 is one 10^18-unit after rounding up
	CHECK_INT(cm_quantity_parse_scaled("1E", 18, &v), 0);
	CHECK_INT(v, 1);
	CHECK_INT(cm_quantity_parse_scaled("1", 0, NULL), -EINVAL);
}

// Node allocatable and metrics as the API server prints them (§2.12,
// §2.13) including the canonical forms of 1.5 and 1.5Gi.
static void
test_node_and_metrics_forms(void)
{
	static const struct row milli[] = {
		{ "3800m", 0, 3800 },
		{ "4", 0, 4000 },
		{ "1500m", 0, 1500 },
		{ "123456789n", 0, 124 },
		{ "250m", 0, 250 },
		{ "3.8", 0, 3800 },
		{ "0.38e4", 0, 3800000 },
		{ "38e2m", -EINVAL, 0 }, // an exponent takes no suffix after it
	};
	static const struct row bytes[] = {
		{ "15613336Ki", 0, INT64_C(15988056064) },
		{ "2048576Ki", 0, INT64_C(2097741824) },
		{ "47233297124", 0, INT64_C(47233297124) },
		{ "1536Mi", 0, INT64_C(1610612736) },
		{ "0", 0, 0 },
		{ "110", 0, 110 },
		{ "16G", 0, INT64_C(16000000000) },
		{ "1.6e10", 0, INT64_C(16000000000) },
	};

	RUN(milli, -3);
	RUN(bytes, 0);
}

static const struct tt_case cases[] = {
	{ "brief examples", test_brief_examples },
	{ "every suffix", test_every_suffix },
	{ "m vs M and E vs exponent", test_case_and_exponent_ambiguity },
	{ "number forms", test_number_forms },
	{ "negative values round away from zero", test_negative_values },
	{ "overflow is -ERANGE", test_overflow },
	{ "refused forms", test_refused_forms },
	{ "input bounds", test_bounds_of_input },
	{ "node allocatable and metrics forms", test_node_and_metrics_forms },
	{ NULL, NULL },
};
TT_MAIN(cases)
