// SPDX-License-Identifier: MIT
// coord_auth: who may talk to the coordinator's HTTP server.
//
// The webhook accepts what Alertmanager's http_config sends: a bearer
// token (`authorization: {credentials_file}`) and/or basic auth
// (`basic_auth: {username, password_file}`). The operator credential (a
// bearer token) guards every mutating API call (pause, resume). Secrets
// are read from files, so Kubernetes Secrets can be mounted; comparisons
// take constant time. With nothing configured, the webhook is open (and
// the coordinator logs a warning at start) and mutating calls are refused.
#ifndef COORD_AUTH_H
#define COORD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "cm_conf.h"

struct coord_auth_conf {
	char *webhook_token_file;
	char *webhook_username;
	char *webhook_password_file;
	char *operator_token_file;
};

extern const struct cm_conf_field coord_auth_fields[];

#define COORD_SECRET_MAX 4096

// Secrets loaded from their files (trailing newline stripped).
struct coord_auth {
	char *webhook_token;	// NULL = not required
	char *webhook_user;
	char *webhook_password; // NULL = basic not accepted
	char *operator_token;	// NULL = mutating calls refused
};

// Reads the files named in `c`. Returns 0 or -errno with a reason naming
// the file in err (missing, unreadable, empty, larger than
// COORD_SECRET_MAX, or holding a control character).
int coord_auth_load(struct coord_auth *a, const struct coord_auth_conf *c,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void coord_auth_clear(struct coord_auth *a);

// True when the webhook needs no credential.
bool coord_auth_webhook_open(const struct coord_auth *a);

// Checks an Authorization header value (NULL if absent) for the webhook /
// for an operator call. Constant time in the secret's length.
bool coord_auth_webhook_ok(const struct coord_auth *a, const char *header);
bool coord_auth_operator_ok(const struct coord_auth *a, const char *header);

// Constant-time equality of two NUL-terminated strings (the time depends
// only on the length of `given`).
bool coord_auth_equal(const char *secret, const char *given);

#endif
