// SPDX-License-Identifier: MIT
// coord_jdepth: JSON nesting depth before parsing.
#include "coord_jdepth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

int
coord_jdepth_check(const char *body, size_t len, size_t max_depth,
    char *err, size_t errlen)
{
	bool in_str = false, esc = false;
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = body[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth) {
				snprintf(err, errlen, "body: JSON nests deeper "
				    "than %zu levels at offset %zu "
				    "(limits.max_json_depth)", max_depth, i);
				return -EINVAL;
			}
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return 0;
}
