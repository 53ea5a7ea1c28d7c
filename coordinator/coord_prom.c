// SPDX-License-Identifier: MIT
// coord_prom: PromQL conditions over the Prometheus HTTP API.
#include "coord_prom.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_fetch.h"

// A sample value as Prometheus writes it: a string ("0.5", "NaN", "+Inf").
static bool
value_of(const cJSON *pair, double *ret)
{
	const cJSON *v = cJSON_IsArray(pair) ? cJSON_GetArrayItem(pair, 1) : NULL;
	char *end;

	if (!cJSON_IsString(v))
		return false;
	*ret = strtod(v->valuestring, &end);
	return end != v->valuestring && *end == '\0';
}

enum coord_prom_verdict
coord_prom_parse(long status, const char *body, size_t len, char *detail,
    size_t n)
{
	cJSON *doc = cJSON_ParseWithLength(body, len), *data, *result, *type;
	enum coord_prom_verdict verdict = COORD_PROM_ERROR;
	const cJSON *st, *err;
	double v, worst = 0;
	int firing = 0, samples = 0;

	if (doc == NULL) {
		snprintf(detail, n, "HTTP %ld, not JSON", status);
		return COORD_PROM_ERROR;
	}
	st = cJSON_GetObjectItemCaseSensitive(doc, "status");
	if (!cJSON_IsString(st) || strcmp(st->valuestring, "success") != 0) {
		err = cJSON_GetObjectItemCaseSensitive(doc, "error");
		snprintf(detail, n, "HTTP %ld: %s", status, cJSON_IsString(err) ?
		    err->valuestring : "query failed");
		goto out;
	}
	data = cJSON_GetObjectItemCaseSensitive(doc, "data");
	result = cJSON_GetObjectItemCaseSensitive(data, "result");
	type = cJSON_GetObjectItemCaseSensitive(data, "resultType");
	if (!cJSON_IsString(type)) {
		snprintf(detail, n, "answer without resultType");
		goto out;
	}
	if (strcmp(type->valuestring, "scalar") == 0) {
		if (!value_of(result, &v)) {
			snprintf(detail, n, "malformed scalar");
			goto out;
		}
		samples = 1;
		if (!isnan(v) && v != 0) {
			firing = 1;
			worst = v;
		}
	} else if (strcmp(type->valuestring, "vector") == 0 &&
	    cJSON_IsArray(result)) {
		const cJSON *s;

		cJSON_ArrayForEach(s, result) {
			if (!value_of(cJSON_GetObjectItemCaseSensitive(s, "value"),
			    &v)) {
				snprintf(detail, n, "malformed sample");
				goto out;
			}
			samples++;
			if (!isnan(v) && v != 0) {
				firing++;
				worst = v;
			}
		}
	} else {
		snprintf(detail, n, "unsupported resultType %s", type->valuestring);
		goto out;
	}
	if (firing > 0) {
		snprintf(detail, n, "%d of %d samples non-zero (e.g. %g)", firing,
		    samples, worst);
		verdict = COORD_PROM_FIRING;
	} else {
		snprintf(detail, n, samples ? "all %d samples zero" :
		    "empty result", samples);
		verdict = COORD_PROM_NORMAL;
	}
out:
	cJSON_Delete(doc);
	return verdict;
}

enum coord_prom_verdict
coord_prom_check(const char *base_url, const char *expr, int64_t timeout_ms,
    char *detail, size_t n)
{
	struct coord_fetch_reply r;
	enum coord_prom_verdict v;
	char *q = coord_fetch_escape(expr), *url;
	size_t ulen;
	int rv;

	if (q == NULL) {
		snprintf(detail, n, "out of memory");
		return COORD_PROM_ERROR;
	}
	ulen = strlen(base_url) + strlen(q) + 32;
	url = malloc(ulen);
	if (url == NULL) {
		free(q);
		snprintf(detail, n, "out of memory");
		return COORD_PROM_ERROR;
	}
	snprintf(url, ulen, "%s/api/v1/query?query=%s", base_url, q);
	free(q);
	rv = coord_fetch("GET", url, NULL, NULL, 0, timeout_ms, &r);
	free(url);
	if (rv < 0) {
		snprintf(detail, n, "Prometheus unreachable: %s", r.error);
		return COORD_PROM_ERROR;
	}
	v = coord_prom_parse(r.status, r.body, r.len, detail, n);
	free(r.body);
	return v;
}
