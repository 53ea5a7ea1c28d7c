// SPDX-License-Identifier: MIT
// fuzz_quantity: libFuzzer target for the Kubernetes quantity parser
// (common/cm_quantity.h).
//
// Besides "no crash", the parser's arithmetic is checked against itself:
// rounding away from zero on nested grids composes, so the value at
// scale s+1 must be the value at scale s divided by 10 and rounded away
// from zero, for every pair of neighbouring scales where both fit int64;
// a value that overflows at a scale overflows at every finer scale;
// _milli and _bytes equal _scaled at -3 and 0; the length limit and the
// scale range are enforced.
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cm_quantity.h"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	return 0;
}

// v / 10, rounded away from zero (no overflow possible).
static int64_t
div10_away(int64_t v)
{
	int64_t q = v / 10, r = v % 10;

	if (r > 0)
		q++;
	else if (r < 0)
		q--;
	return q;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	int rv[28];
	int64_t v[28], m = 0, b = 0;
	int rm, rb;

	for (int scale = -9; scale <= 18; scale++) {
		int i = scale + 9;

		v[i] = INT64_MIN;
		rv[i] = cm_quantity_parse_scaled(s, scale, &v[i]);
		FUZZ_CHECK(rv[i] == 0 || rv[i] == -EINVAL || rv[i] == -ERANGE,
		    "scale %d: returned %d", scale, rv[i]);
		FUZZ_CHECK(rv[i] == 0 || v[i] == INT64_MIN,
		    "scale %d: *ret written on failure", scale);
		if (i > 0) {
			// Syntax errors do not depend on the scale.
			FUZZ_CHECK((rv[i] == -EINVAL) == (rv[i - 1] == -EINVAL),
			    "scale %d/%d disagree on syntax", scale - 1, scale);
			if (rv[i - 1] == 0)
				FUZZ_CHECK(rv[i] == 0 && v[i] ==
				    div10_away(v[i - 1]), "scale %d: %lld, "
				    "scale %d: %lld", scale - 1,
				    (long long)v[i - 1], scale,
				    (long long)v[i]);
			if (rv[i] == -ERANGE)
				FUZZ_CHECK(rv[i - 1] == -ERANGE,
				    "fits at %d, not at %d", scale - 1, scale);
		}
	}
	rm = cm_quantity_parse_milli(s, &m);
	rb = cm_quantity_parse_bytes(s, &b);
	FUZZ_CHECK(rm == rv[6] && (rm != 0 || m == v[6]), "milli differs");
	FUZZ_CHECK(rb == rv[9] && (rb != 0 || b == v[9]), "bytes differs");
	if (strlen(s) > CM_QUANTITY_MAX_LEN)
		FUZZ_CHECK(rv[9] == -EINVAL, "%zu bytes accepted", strlen(s));
	FUZZ_CHECK(cm_quantity_parse_scaled(s, -10, &m) == -EINVAL &&
	    cm_quantity_parse_scaled(s, 19, &m) == -EINVAL,
	    "scale out of range accepted");
	free(s);
	return 0;
}
