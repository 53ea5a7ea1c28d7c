// SPDX-License-Identifier: MIT
// coord_prom: "is this PromQL condition still true?" over Prometheus'
// HTTP query API, for verifying that a repair worked.
//
// The expression is written like an alert condition: it returns samples
// while the problem lasts. An empty result, or samples that are all 0,
// means the service is back to normal. NaN counts as "no data".
#ifndef COORD_PROM_H
#define COORD_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum coord_prom_verdict {
	COORD_PROM_NORMAL,   // empty result or all samples 0
	COORD_PROM_FIRING,   // at least one non-zero sample
	COORD_PROM_ERROR,    // no answer, HTTP/API error, unparsable
};

// Evaluates `expr` at `base_url` (e.g. "http://127.0.0.1:9090") with the
// instant query API. Writes a one-line explanation (the value seen or the
// error) into detail. Blocks up to timeout_ms; worker threads only.
enum coord_prom_verdict coord_prom_check(const char *base_url,
    const char *expr, int64_t timeout_ms, char *detail, size_t n);

// Interprets an instant-query answer body (exposed for tests).
enum coord_prom_verdict coord_prom_parse(long status, const char *body,
    size_t len, char *detail, size_t n);

#endif
