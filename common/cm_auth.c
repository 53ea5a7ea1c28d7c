// SPDX-License-Identifier: MIT
// cm_auth: HMAC-SHA256 sealed frames with freshness checks.
#include "cm_auth.h"

#include <errno.h>
#include <mbedtls/md.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "cm_time.h"

#define SECRET_MIN 16
#define SECRET_MAX 4096

struct seen {
	uint64_t nonce;
	int64_t ts;
};

struct cm_auth {
	unsigned char key[SECRET_MAX];
	size_t key_len;
	pthread_mutex_t mu;
	struct seen ring[CM_AUTH_NONCES];
	size_t head;
};

int
cm_auth_new(struct cm_auth **ret, const char *path, char *err, size_t errlen)
{
	struct cm_auth *a;
	struct stat st;
	FILE *f;
	size_t n;

	f = fopen(path, "rbe");
	if (f == NULL) {
		int rv = -errno;

		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return rv;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		fclose(f);
		snprintf(err, errlen, "%s: must be a regular file readable only "
		    "by its owner (mode 0600 or 0400)", path);
		return -EPERM;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(a->key, 1, sizeof(a->key), f);
	fclose(f);
	while (n > 0 && (a->key[n - 1] == '\n' || a->key[n - 1] == '\r'))
		n--;
	if (n < SECRET_MIN || n >= SECRET_MAX) {
		snprintf(err, errlen, "%s: the secret must be %d..%d bytes",
		    path, SECRET_MIN, SECRET_MAX - 1);
		memset(a, 0, sizeof(*a));
		free(a);
		return -EINVAL;
	}
	a->key_len = n;
	pthread_mutex_init(&a->mu, NULL);
	*ret = a;
	return 0;
}

void
cm_auth_free(struct cm_auth *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->mu);
	memset(a->key, 0, sizeof(a->key));
	free(a);
}

void
cm_auth_stamp(struct cm_msg *m)
{
	uint64_t nonce = 0;

	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint64_t)cm_mono_ms() * 6364136223846793005ULL + 1;
	m->ts = (uint64_t)cm_now_ms();
	m->nonce = nonce != 0 ? nonce : 1;
}

static int
mac(const struct cm_auth *a, const void *buf, size_t len,
    unsigned char out[CM_AUTH_MAC_LEN])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

	if (md == NULL || mbedtls_md_hmac(md, a->key, a->key_len, buf, len,
	    out) != 0)
		return -EIO;
	return 0;
}

int
cm_auth_encode(struct cm_auth *a, const struct cm_msg *m, void **ret_buf,
    size_t *ret_len)
{
	unsigned char *sealed;
	void *buf;
	size_t len;
	int rv;

	rv = cm_msg_encode(m, &buf, &len);
	if (rv < 0)
		return rv;
	sealed = realloc(buf, len + CM_AUTH_MAC_LEN);
	if (sealed == NULL) {
		free(buf);
		return -ENOMEM;
	}
	rv = mac(a, sealed, len, sealed + len);
	if (rv < 0) {
		free(sealed);
		return rv;
	}
	*ret_buf = sealed;
	*ret_len = len + CM_AUTH_MAC_LEN;
	return 0;
}

int
cm_auth_seal(struct cm_auth *a, const void *buf, size_t len,
    unsigned char out[CM_AUTH_MAC_LEN])
{
	return mac(a, buf, len, out);
}

static bool
equal_ct(const unsigned char *x, const unsigned char *y, size_t n)
{
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

// Remembers the nonce; false if it was seen within the window.
static bool
remember(struct cm_auth *a, uint64_t nonce, int64_t ts, int64_t now)
{
	bool fresh = true;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CM_AUTH_NONCES; i++) {
		const struct seen *s = &a->ring[i];

		if (s->nonce == nonce && now - s->ts <= 2 * CM_AUTH_WINDOW_MS) {
			fresh = false;
			break;
		}
	}
	if (fresh) {
		a->ring[a->head] = (struct seen){ .nonce = nonce, .ts = ts };
		a->head = (a->head + 1) % CM_AUTH_NONCES;
	}
	pthread_mutex_unlock(&a->mu);
	return fresh;
}

int
cm_auth_decode(struct cm_auth *a, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen)
{
	unsigned char want[CM_AUTH_MAC_LEN];
	int64_t now = cm_now_ms(), skew;
	int rv;

	memset(m, 0, sizeof(*m));
	if (len < CM_AUTH_MAC_LEN + 1 || mac(a, buf, len - CM_AUTH_MAC_LEN,
	    want) < 0 || !equal_ct(want, (const unsigned char *)buf + len -
	    CM_AUTH_MAC_LEN, CM_AUTH_MAC_LEN)) {
		snprintf(err, errlen, "message authentication failed (missing "
		    "or wrong MAC: altered, or the sender lacks the secret)");
		return -EACCES;
	}
	rv = cm_msg_decode(m, buf, len - CM_AUTH_MAC_LEN, err, errlen);
	if (rv < 0)
		return rv;
	// A clock beyond int64 is as stale as can be (and must not overflow
	// the subtraction).
	skew = m->ts <= (uint64_t)INT64_MAX ? now - (int64_t)m->ts : INT64_MIN;
	if (m->ts == 0 || skew > CM_AUTH_WINDOW_MS || skew < -CM_AUTH_WINDOW_MS) {
		snprintf(err, errlen, "stale message: its clock is %lld ms from "
		    "ours (window %d ms)", (long long)skew, CM_AUTH_WINDOW_MS);
		cm_msg_clear(m);
		return -ESTALE;
	}
	if (!remember(a, m->nonce, (int64_t)m->ts, now)) {
		snprintf(err, errlen, "replayed message (nonce already seen)");
		cm_msg_clear(m);
		return -ESTALE;
	}
	return 0;
}
