// SPDX-License-Identifier: MIT
// fuzz_auth: libFuzzer target for the authenticated agent channel
// (common/cm_auth.h): what cm_auth_decode does with a frame from someone
// without the secret, and with a frame sealed by someone who has it.
//
// Each input is tried three ways: as it is (must be refused: no valid
// MAC); sealed with the right key (MAC verifies, so the decoder and the
// freshness checks see arbitrary content, as from a compromised agent),
// where a frame that is accepted once must be refused when replayed; and,
// when the input decodes as a message, stamped and sealed by
// cm_auth_encode, which must decode to the same message once and be
// refused after any single-byte change.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "cm_auth.h"
#include "cm_msg.h"
#include "fuzz_common.h"

static const char secret[] = "fuzzing secret, 32 bytes or so..";
static struct cm_auth *auth;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/reflex-fuzz-secret-XXXXXX", err[256];
	int fd;

	(void)argc;
	(void)argv;
	fuzz_log_setup();
	fd = mkstemp(path); // mode 0600, as cm_auth_new requires
	if (fd < 0 || write(fd, secret, sizeof(secret) - 1) !=
	    (ssize_t)sizeof(secret) - 1) {
		perror("secret file");
		abort();
	}
	close(fd);
	if (cm_auth_new(&auth, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "cm_auth_new: %s\n", err);
		abort();
	}
	unlink(path);
	return 0;
}

static bool
refusal(int rv)
{
	return rv == -EACCES || rv == -ESTALE || rv == -EMSGSIZE ||
	    rv == -EBADMSG || rv == -EPROTO || rv == -EINVAL || rv == -ENOMEM;
}

static void
seal_raw(const uint8_t *data, size_t size)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(
	    MBEDTLS_MD_SHA256);
	unsigned char *buf = malloc(size + CM_AUTH_MAC_LEN);
	struct cm_msg m;
	char err[256];
	int rv;

	if (buf == NULL || md == NULL)
		abort();
	if (size > 0)
		memcpy(buf, data, size);
	if (mbedtls_md_hmac(md, (const unsigned char *)secret,
	    sizeof(secret) - 1, buf, size, buf + size) != 0)
		abort();
	rv = cm_auth_decode(auth, &m, buf, size + CM_AUTH_MAC_LEN, err,
	    sizeof(err));
	FUZZ_CHECK(rv == 0 || refusal(rv), "sealed input: %d", rv);
	if (rv == 0) {
		cm_msg_clear(&m);
		rv = cm_auth_decode(auth, &m, buf, size + CM_AUTH_MAC_LEN, err,
		    sizeof(err));
		FUZZ_CHECK(rv == -ESTALE, "replay of an accepted frame: %d",
		    rv);
	} else {
		cm_msg_clear(&m);
	}
	free(buf);
}

static void
round_trip(const uint8_t *data, size_t size)
{
	struct cm_msg m, again;
	unsigned char *buf;
	void *sealed;
	size_t len;
	char err[256];
	int rv;

	if (cm_msg_decode(&m, data, size, err, sizeof(err)) < 0)
		return;
	cm_auth_stamp(&m);
	rv = cm_auth_encode(auth, &m, &sealed, &len);
	FUZZ_CHECK(rv == 0 || rv == -EMSGSIZE, "encode: %d", rv);
	if (rv < 0) {
		cm_msg_clear(&m);
		return;
	}
	buf = sealed;
	// One changed byte anywhere, MAC included, must be refused.
	buf[size % len] ^= (unsigned char)(1u << (size % 8));
	rv = cm_auth_decode(auth, &again, buf, len, err, sizeof(err));
	FUZZ_CHECK(rv == -EACCES, "altered frame: %d", rv);
	buf[size % len] ^= (unsigned char)(1u << (size % 8));
	rv = cm_auth_decode(auth, &again, buf, len, err, sizeof(err));
	FUZZ_CHECK(rv == 0, "own sealed frame refused: %s", err);
	FUZZ_CHECK(again.type == m.type && again.id == m.id &&
	    again.ts == m.ts && again.nonce == m.nonce, "fields changed");
	cm_msg_clear(&again);
	rv = cm_auth_decode(auth, &again, buf, len, err, sizeof(err));
	FUZZ_CHECK(rv == -ESTALE, "replay accepted: %d", rv);
	cm_msg_clear(&again);
	free(sealed);
	cm_msg_clear(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_msg m;
	char err[256];
	int rv;

	rv = cm_auth_decode(auth, &m, data, size, err, sizeof(err));
	FUZZ_CHECK(refusal(rv) || rv == 0, "unsealed input: %d", rv);
	cm_msg_clear(&m);
	seal_raw(data, size);
	round_trip(data, size);
	return 0;
}
