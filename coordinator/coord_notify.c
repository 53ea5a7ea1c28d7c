// SPDX-License-Identifier: MIT
// coord_notify: notification webhooks.
#include "coord_notify.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord_fetch.h"

static const char *const formats[] = { "generic", "slack", NULL };

const struct cm_conf_field coord_notifier_fields[] = {
	{ .key = "name", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_notifier_conf, name) },
	{ .key = "url", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_notifier_conf, url),
	  .help = "http:// or https:// endpoint receiving a JSON POST" },
	{ .key = "format", .type = CM_CONF_ENUM, .def = "generic",
	  .off = offsetof(struct coord_notifier_conf, format),
	  .choices = formats, .help = "generic or slack" },
	{ .key = "timeout", .type = CM_CONF_DURATION, .def = "5s",
	  .min = 100, .max = 60000,
	  .off = offsetof(struct coord_notifier_conf, timeout_ms) },
	{ .key = "retries", .type = CM_CONF_INT, .def = "3", .min = 0, .max = 10,
	  .off = offsetof(struct coord_notifier_conf, retries) },
	{ 0 },
};

int
coord_notifier_validate(const struct coord_notifier_conf *n, char *err,
    size_t errlen)
{
	const char *u = n->url, *host;

	if (strncmp(u, "http://", 7) == 0)
		host = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		host = u + 8;
	else
		host = NULL;
	if (host == NULL || host[0] == '\0' || host[0] == '/' ||
	    strpbrk(u, " \t\r\n\"<>\\") != NULL) {
		snprintf(err, errlen, "url \"%s\" is not an http(s) URL with a "
		    "host", u);
		return -EINVAL;
	}
	return 0;
}

char *
coord_notify_body(int format, const struct coord_alert *a,
    const char *headline, const char *tried, const char *outcome)
{
	cJSON *o = cJSON_CreateObject(), *labels;
	const char *name = a != NULL ? coord_kvs_get(&a->labels, "alertname") :
	    NULL;
	char *out, text[2048];

	if (o == NULL)
		return NULL;
	if (format == COORD_NOTIFY_SLACK) {
		snprintf(text, sizeof(text), "*reflex: %s*\nalert: %s\ntried: %s\n"
		    "outcome: %s", headline, name != NULL ? name : "?", tried,
		    outcome);
		cJSON_AddStringToObject(o, "text", text);
	} else {
		cJSON_AddStringToObject(o, "source", "reflex");
		cJSON_AddStringToObject(o, "headline", headline);
		cJSON_AddStringToObject(o, "alertname", name != NULL ? name : "");
		labels = cJSON_AddObjectToObject(o, "labels");
		for (size_t i = 0; a != NULL && labels != NULL &&
		    i < a->labels.n; i++)
			cJSON_AddStringToObject(labels, a->labels.v[i].key,
			    a->labels.v[i].val);
		cJSON_AddStringToObject(o, "tried", tried);
		cJSON_AddStringToObject(o, "outcome", outcome);
	}
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

int
coord_notify_send(const struct coord_notifier_conf *n, const char *body,
    char *err, size_t errlen)
{
	struct timespec pause = { 0, 500 * 1000 * 1000 };
	int rv = -EIO;

	for (int64_t attempt = 0; attempt <= n->retries; attempt++) {
		struct coord_fetch_reply r;

		if (attempt > 0) {
			nanosleep(&pause, NULL);
			pause.tv_sec *= 2;
			pause.tv_nsec *= 2;
			if (pause.tv_nsec >= 1000000000) {
				pause.tv_sec += pause.tv_nsec / 1000000000;
				pause.tv_nsec %= 1000000000;
			}
		}
		rv = coord_fetch("POST", n->url, "application/json", body,
		    strlen(body), n->timeout_ms, &r);
		if (rv < 0) {
			snprintf(err, errlen, "%s: %s", n->name, r.error);
			continue;
		}
		free(r.body);
		if (r.status >= 200 && r.status < 300)
			return 0;
		snprintf(err, errlen, "%s: HTTP %ld", n->name, r.status);
		rv = -EIO;
		if (r.status < 500 && r.status != 429)
			return rv; // the receiver refused; retrying won't help
	}
	return rv;
}
