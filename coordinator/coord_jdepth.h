// SPDX-License-Identifier: MIT
// coord_jdepth: the webhook body's JSON nesting depth, so that a body
// nested too deep is refused with a reason that says so ("nests deeper
// than N levels") rather than as invalid JSON, at a limit the
// configuration sets (limits.max_json_depth). coord_webhook_parse bounds
// the depth itself as it reads and calls this only for a rejected body,
// to word the reason (coord_webhook_limits.max_depth).
#ifndef COORD_JDEPTH_H
#define COORD_JDEPTH_H

#include <stddef.h>

#define COORD_JSON_DEPTH_MAX 1000 // coord_webhook_parse refuses deeper text

// Walks the len bytes at body (need not be NUL-terminated) counting the
// arrays and objects open at each byte outside JSON strings. Returns 0
// when no byte opens more than max_depth of them, else -EINVAL with
// "body: JSON nests deeper than <max_depth> levels at offset <n>
// (limits.max_json_depth)" in err. Validates nothing else: text that is
// not JSON is left to the parser. Pure; O(len); any thread.
int coord_jdepth_check(const char *body, size_t len, size_t max_depth,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
