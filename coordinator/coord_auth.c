// SPDX-License-Identifier: MIT
// coord_auth: bearer and basic credentials for the HTTP server.
#include "coord_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const struct cm_conf_field coord_auth_fields[] = {
	{ .key = "webhook_token_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_auth_conf, webhook_token_file),
	  .help = "file with the bearer token Alertmanager sends" },
	{ .key = "webhook_username", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_auth_conf, webhook_username),
	  .help = "basic auth user for the webhook" },
	{ .key = "webhook_password_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_auth_conf, webhook_password_file),
	  .help = "file with the basic auth password" },
	{ .key = "operator_token_file", .type = CM_CONF_STR,
	  .off = offsetof(struct coord_auth_conf, operator_token_file),
	  .help = "file with the bearer token for pause/resume" },
	{ 0 },
};

static int
read_secret(const char *path, char **ret, char *err, size_t errlen)
{
	char buf[COORD_SECRET_MAX + 2];
	struct stat st;
	size_t n;
	FILE *f;

	f = fopen(path, "rbe");
	if (f == NULL) {
		int rv = -errno;

		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return rv;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n > COORD_SECRET_MAX) {
		snprintf(err, errlen, "%s: longer than %d bytes", path,
		    COORD_SECRET_MAX);
		return -EINVAL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "%s: empty secret", path);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			snprintf(err, errlen, "%s: control character in secret",
			    path);
			return -EINVAL;
		}
	}
	*ret = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return *ret != NULL ? 0 : -ENOMEM;
}

int
coord_auth_load(struct coord_auth *a, const struct coord_auth_conf *c,
    char *err, size_t errlen)
{
	int rv = 0;

	memset(a, 0, sizeof(*a));
	if (c->webhook_token_file != NULL)
		rv = read_secret(c->webhook_token_file, &a->webhook_token, err,
		    errlen);
	if (rv == 0 && (c->webhook_username != NULL) !=
	    (c->webhook_password_file != NULL)) {
		snprintf(err, errlen, "auth: webhook_username and "
		    "webhook_password_file go together");
		rv = -EINVAL;
	}
	if (rv == 0 && c->webhook_password_file != NULL) {
		rv = read_secret(c->webhook_password_file, &a->webhook_password,
		    err, errlen);
		if (rv == 0) {
			a->webhook_user = strdup(c->webhook_username);
			if (a->webhook_user == NULL)
				rv = -ENOMEM;
		}
	}
	if (rv == 0 && c->operator_token_file != NULL)
		rv = read_secret(c->operator_token_file, &a->operator_token, err,
		    errlen);
	if (rv < 0)
		coord_auth_clear(a);
	return rv;
}

static void
wipe(char **p)
{
	if (*p != NULL) {
		memset(*p, 0, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void
coord_auth_clear(struct coord_auth *a)
{
	wipe(&a->webhook_token);
	wipe(&a->webhook_user);
	wipe(&a->webhook_password);
	wipe(&a->operator_token);
}

bool
coord_auth_webhook_open(const struct coord_auth *a)
{
	return a->webhook_token == NULL && a->webhook_password == NULL;
}

bool
coord_auth_equal(const char *secret, const char *given)
{
	size_t ls = strlen(secret), lg = strlen(given);
	unsigned char diff = (unsigned char)(ls != lg);

	// Walk the given string; compare against the secret cyclically so
	// the time depends on the attacker's input only.
	for (size_t i = 0; i < lg; i++)
		diff |= (unsigned char)given[i] ^
		    (unsigned char)secret[ls ? i % ls : 0];
	return diff == 0 && ls > 0;
}

// Decodes standard base64 into out (NUL-terminated). False if malformed
// or too long.
static bool
b64_decode(const char *in, char *out, size_t outlen)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0, pad = 0;

	for (const char *p = in; *p; p++) {
		const char *k;

		if (*p == '=') {
			pad++;
			continue;
		}
		k = pad ? NULL : strchr(tbl, *p);
		if (k == NULL || *p == '\0')
			return false;
		acc = (acc << 6) | (uint32_t)(k - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return false;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return pad <= 2 && strlen(out) == o; // no NUL inside
}

static const char *
scheme_value(const char *header, const char *scheme)
{
	size_t n = strlen(scheme);

	if (header == NULL || strncasecmp(header, scheme, n) != 0 ||
	    header[n] != ' ')
		return NULL;
	header += n;
	while (*header == ' ')
		header++;
	return header;
}

bool
coord_auth_webhook_ok(const struct coord_auth *a, const char *header)
{
	const char *v;

	if (coord_auth_webhook_open(a))
		return true;
	v = scheme_value(header, "Bearer");
	if (v != NULL && a->webhook_token != NULL)
		return coord_auth_equal(a->webhook_token, v);
	v = scheme_value(header, "Basic");
	if (v != NULL && a->webhook_password != NULL) {
		char plain[2 * COORD_SECRET_MAX], *colon;
		bool ok;

		if (strlen(v) > 4 * COORD_SECRET_MAX / 3 + 8 ||
		    !b64_decode(v, plain, sizeof(plain)))
			return false;
		colon = strchr(plain, ':');
		if (colon == NULL)
			return false;
		*colon = '\0';
		ok = coord_auth_equal(a->webhook_user, plain);
		ok &= coord_auth_equal(a->webhook_password, colon + 1);
		memset(plain, 0, sizeof(plain));
		return ok;
	}
	return false;
}

bool
coord_auth_operator_ok(const struct coord_auth *a, const char *header)
{
	const char *v = scheme_value(header, "Bearer");

	return a->operator_token != NULL && v != NULL &&
	    coord_auth_equal(a->operator_token, v);
}
