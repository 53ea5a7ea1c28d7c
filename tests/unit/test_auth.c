// SPDX-License-Identifier: MIT
// Tests for cm_auth: sealed frames, tampering, wrong keys, stale and
// replayed messages, secret file rules.
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_auth.h"
#include "cm_time.h"
#include "tt.h"

static char dir[] = "/tmp/reflex-auth-XXXXXX";

static struct cm_auth *
load(const char *name, const char *secret, mode_t mode, int *rv)
{
	char path[128], err[256];
	struct cm_auth *a = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(secret, f);
	fclose(f);
	chmod(path, mode);
	*rv = cm_auth_new(&a, path, err, sizeof(err));
	if (*rv < 0)
		printf("# %s\n", err);
	return a;
}

static struct cm_msg
heartbeat(void)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_HEARTBEAT, .id = 7 };

	snprintf(m.u.hb.node, sizeof(m.u.hb.node), "node-a");
	m.u.hb.seq = 3;
	return m;
}

static void
test_round_trip_and_tampering(void)
{
	int rv;
	struct cm_auth *a = load("k1", "0123456789abcdef0123\n", 0600, &rv);
	struct cm_auth *b = load("k2", "another secret of ours", 0600, &rv);
	struct cm_msg m = heartbeat(), out;
	char err[256];
	unsigned char *buf;
	size_t len;

	CHECK(a != NULL && b != NULL);
	cm_auth_stamp(&m);
	CHECK_INT(cm_auth_encode(a, &m, (void **)&buf, &len), 0);
	CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)), 0);
	CHECK_STR(out.u.hb.node, "node-a");
	CHECK_INT(out.u.hb.seq, 3);
	cm_msg_clear(&out);
	// The same bytes again: a replay.
	CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)), -ESTALE);
	CHECK_HAS(err, "replayed");
	// Every single-byte change breaks the MAC.
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)),
		    -EACCES);
		buf[i] ^= 0x01;
	}
	// Another key, a truncated frame, a plain frame.
	CHECK_INT(cm_auth_decode(b, &out, buf, len, err, sizeof(err)), -EACCES);
	CHECK_INT(cm_auth_decode(a, &out, buf, len - 1, err, sizeof(err)),
	    -EACCES);
	free(buf);
	CHECK_INT(cm_msg_encode(&m, (void **)&buf, &len), 0);
	CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)), -EACCES);
	CHECK_HAS(err, "authentication failed");
	free(buf);
	cm_auth_free(a);
	cm_auth_free(b);
}

static void
test_stale_and_unstamped(void)
{
	int rv;
	struct cm_auth *a = load("k3", "0123456789abcdef0123", 0400, &rv);
	struct cm_msg m = heartbeat(), out;
	char err[256];
	void *buf;
	size_t len;

	cm_auth_stamp(&m);
	m.ts -= CM_AUTH_WINDOW_MS + 5000;
	CHECK_INT(cm_auth_encode(a, &m, &buf, &len), 0);
	CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)), -ESTALE);
	CHECK_HAS(err, "stale");
	free(buf);
	m = heartbeat(); // sealed but never stamped
	CHECK_INT(cm_auth_encode(a, &m, &buf, &len), 0);
	CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)), -ESTALE);
	free(buf);
	// A clock beyond int64 (found by tests/fuzz/fuzz_auth: the skew
	// computation overflowed, undefined behaviour under UBSan).
	for (int i = 0; i < 2; i++) {
		m = heartbeat();
		cm_auth_stamp(&m);
		m.ts = i == 0 ? UINT64_C(1) << 63 : UINT64_MAX;
		CHECK_INT(cm_auth_encode(a, &m, &buf, &len), 0);
		CHECK_INT(cm_auth_decode(a, &out, buf, len, err, sizeof(err)),
		    -ESTALE);
		CHECK_HAS(err, "stale");
		free(buf);
	}
	cm_auth_free(a);
}

static void
test_secret_file_rules(void)
{
	int rv;

	CHECK(load("loose", "0123456789abcdef0123", 0644, &rv) == NULL);
	CHECK_INT(rv, -EPERM);
	CHECK(load("short", "tooshort", 0600, &rv) == NULL);
	CHECK_INT(rv, -EINVAL);
}

static const struct tt_case cases[] = {
	{ "round trip, replay, tampering, wrong key", test_round_trip_and_tampering },
	{ "stale and unstamped frames", test_stale_and_unstamped },
	{ "secret file rules", test_secret_file_rules },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	int rv;

	if (mkdtemp(dir) == NULL)
		return 1;
	rv = tt_run(cases, argc, argv);
	for (const char *const *n = (const char *const[]){ "k1", "k2", "k3",
	    "loose", "short", NULL }; *n != NULL; n++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		(void)unlink(path);
	}
	(void)rmdir(dir);
	return rv;
}
