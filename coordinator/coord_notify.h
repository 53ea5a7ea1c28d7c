// SPDX-License-Identifier: MIT
// coord_notify: telling people. A notification is a JSON POST to each
// configured webhook, generic (structured) or Slack-compatible ({"text"}),
// retried with exponential backoff.
#ifndef COORD_NOTIFY_H
#define COORD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "cm_conf.h"
#include "coord_alert.h"

enum coord_notify_format { COORD_NOTIFY_GENERIC, COORD_NOTIFY_SLACK };

struct coord_notifier_conf {
	int line;
	char *name;
	char *url;
	int format;	   // enum coord_notify_format
	int64_t timeout_ms;
	int64_t retries;
};

// cm_conf table of one notifier (a list under "notify:").
extern const struct cm_conf_field coord_notifier_fields[];

// Checks a notifier's URL (http:// or https:// with a host). 0 or -EINVAL.
int coord_notifier_validate(const struct coord_notifier_conf *n, char *err,
    size_t errlen);

// Builds the body for one notifier format (free()): the alert (may be
// NULL for fleet-wide reports), what reflex tried and the outcome. NULL on
// ENOMEM.
char *coord_notify_body(int format, const struct coord_alert *a,
    const char *headline, const char *tried, const char *outcome);

// Sends `body` to `n`, retrying on transport errors and 5xx/429 with
// backoff (0.5 s doubling). Returns 0 on a 2xx, else a negative errno with
// the last reason in err. Blocks (up to retries x timeout); worker only.
int coord_notify_send(const struct coord_notifier_conf *n, const char *body,
    char *err, size_t errlen);

#endif
