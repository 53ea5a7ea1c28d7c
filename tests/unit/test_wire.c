// SPDX-License-Identifier: MIT
// cm_wire_error_code: the one mapping of decode errors to the "error"
// answer's code, for coordinator and agent alike; checked against what
// cm_msg_decode really returns for each kind of bad frame. Also
// cm_msg_encode_to and cm_auth_seal, which build the same bytes as
// cm_msg_encode and cm_auth_encode without a buffer of their own.
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_auth.h"
#include "cm_msg.h"
#include "cm_wire.h"
#include "tt.h"

static void
test_every_errno_has_its_code(void)
{
	CHECK_STR(cm_wire_error_code(-EACCES), "unauthenticated");
	CHECK_STR(cm_wire_error_code(-ESTALE), "replayed");
	CHECK_STR(cm_wire_error_code(-EMSGSIZE), "too_large");
	CHECK_STR(cm_wire_error_code(-EPROTO), "bad_version_or_type");
	CHECK_STR(cm_wire_error_code(-EINVAL), "bad_field");
	CHECK_STR(cm_wire_error_code(-EBADMSG), "bad_frame");
	CHECK_STR(cm_wire_error_code(-ENOMEM), "bad_frame");
	CHECK_STR(cm_wire_error_code(0), "bad_frame");
}

static const char *
decode_code(const void *buf, size_t len)
{
	struct cm_msg m;
	char err[256];
	int rv = cm_msg_decode(&m, buf, len, err, sizeof(err));

	printf("# rv %d: %s\n", rv, rv < 0 ? err : "decoded");
	return rv < 0 ? cm_wire_error_code(rv) : "decoded";
}

// A heartbeat whose node name breaks the name rules is well-formed
// msgpack of a known type: a bad field, not a bad frame.
static void
test_decode_errors_map_as_documented(void)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_HEARTBEAT, .id = 1 };
	// {"v": 1, "type": "heartbeat", "id": 1, "body": {"node": "-x-",
	//  "seq": 1, "unhealthy": 0}}
	static const unsigned char bad_field[] = {
		0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa9, 'h',
		'e', 'a', 'r', 't', 'b', 'e', 'a', 't', 0xa2, 'i', 'd', 0x01,
		0xa4, 'b', 'o', 'd', 'y', 0x83, 0xa4, 'n', 'o', 'd', 'e',
		0xa3, '-', 'x', '-', 0xa3, 's', 'e', 'q', 0x01, 0xa9, 'u',
		'n', 'h', 'e', 'a', 'l', 't', 'h', 'y', 0x00,
	};
	static const unsigned char bad_type[] = {
		0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'n',
		'o', 'p', 0xa2, 'i', 'd', 0x01, 0xa4, 'b', 'o', 'd', 'y',
		0x80,
	};
	static const unsigned char truncated[] = { 0x84, 0xa1, 'v' };
	void *buf;
	size_t len;

	snprintf(m.u.hb.node, sizeof(m.u.hb.node), "node-a");
	CHECK_INT(cm_msg_encode(&m, &buf, &len), 0);
	CHECK_STR(decode_code(buf, len), "decoded");
	free(buf);
	CHECK_STR(decode_code(bad_field, sizeof(bad_field)), "bad_field");
	CHECK_STR(decode_code(bad_type, sizeof(bad_type)),
	    "bad_version_or_type");
	CHECK_STR(decode_code(truncated, sizeof(truncated)), "bad_frame");
	buf = calloc(1, CM_MSG_MAX_FRAME + 1);
	CHECK_STR(decode_code(buf, CM_MSG_MAX_FRAME + 1), "too_large");
	free(buf);
}

struct sink {
	unsigned char buf[4096];
	size_t len;
	size_t calls;
	size_t fail_at; // 0: never
};

static int
sink_write(void *arg, const char *buf, size_t len)
{
	struct sink *s = arg;

	if (++s->calls == s->fail_at || s->len + len > sizeof(s->buf))
		return -1;
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

static struct cm_msg
command(void)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_COMMAND, .id = 42, .ts = 1700000000000ULL,
		.nonce = 99 };

	m.u.cmd.action_id = 42;
	snprintf(m.u.cmd.action, sizeof(m.u.cmd.action), "restart");
	snprintf(m.u.cmd.service, sizeof(m.u.cmd.service), "web");
	snprintf(m.u.cmd.instance, sizeof(m.u.cmd.instance), "web-0");
	snprintf(m.u.cmd.reason, sizeof(m.u.cmd.reason), "probe failed");
	m.u.cmd.timeout_ms = 5000;
	return m;
}

static void
test_encode_to_writes_the_same_frame(void)
{
	struct cm_msg m = command(), bad = command();
	struct sink s = { .len = 0 }, f = { .fail_at = 1 };
	void *buf;
	size_t len, n = 0;

	CHECK_INT(cm_msg_encode(&m, &buf, &len), 0);
	CHECK_INT(cm_msg_encode_to(&m, sink_write, &s, &n), 0);
	CHECK_INT(n, len);
	CHECK_INT(s.len, len);
	CHECK(memcmp(s.buf, buf, len) == 0);
	// A small frame reaches the writer in one piece.
	CHECK_INT(s.calls, 1);
	free(buf);
	// A writer that gives up fails the encoding.
	CHECK_INT(cm_msg_encode_to(&m, sink_write, &f, NULL), -ENOMEM);
	// Field rules are the encoder's: an invalid name is refused.
	snprintf(bad.u.cmd.service, sizeof(bad.u.cmd.service), "-bad-");
	CHECK_INT(cm_msg_encode_to(&bad, sink_write, &s, NULL), -EINVAL);
	bad.type = (enum cm_msg_type)77;
	CHECK_INT(cm_msg_encode_to(&bad, sink_write, &s, NULL), -EINVAL);
}

// A frame larger than the encoder's 512-byte pieces: a reply whose
// message fills most of one piece and whose json needs several. The
// writer gets the same bytes as cm_msg_encode makes, in a few calls (not
// one per key and value), and a refusal at any of them fails the frame.
static void
test_encode_to_large_frame_in_pieces(void)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_REPLY, .id = 7 };
	char json[3001];
	struct sink s = { .len = 0 };
	void *buf;
	size_t len, n = 0, calls;

	memset(m.u.reply.message, 'm', 500);
	memset(json, 'j', sizeof(json) - 1);
	json[sizeof(json) - 1] = '\0';
	m.u.reply.ok = true;
	m.u.reply.json = json;
	CHECK_INT(cm_msg_encode(&m, &buf, &len), 0);
	CHECK_INT(cm_msg_encode_to(&m, sink_write, &s, &n), 0);
	CHECK_INT(n, len);
	CHECK_INT(s.len, len);
	CHECK(memcmp(s.buf, buf, len) == 0);
	printf("# %zu bytes in %zu writes\n", len, s.calls);
	CHECK(s.calls >= 2 && s.calls <= 4);
	calls = s.calls;
	for (size_t i = 1; i <= calls; i++) {
		struct sink f = { .fail_at = i };

		CHECK_INT(cm_msg_encode_to(&m, sink_write, &f, NULL), -ENOMEM);
	}
	free(buf);
}

static void
test_seal_matches_auth_encode(void)
{
	char dir[] = "/tmp/reflex-wire-XXXXXX", path[64], err[256];
	struct cm_msg m = command(), out;
	struct cm_auth *a = NULL;
	unsigned char mac[CM_AUTH_MAC_LEN];
	struct sink s = { .len = 0 };
	void *buf;
	size_t len;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/secret", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("a secret of twenty-four\n", f);
	fclose(f);
	chmod(path, 0600);
	CHECK_INT(cm_auth_new(&a, path, err, sizeof(err)), 0);
	unlink(path);
	rmdir(dir);
	if (a == NULL)
		return;
	cm_auth_stamp(&m);
	CHECK_INT(cm_auth_encode(a, &m, &buf, &len), 0);
	CHECK_INT(cm_msg_encode_to(&m, sink_write, &s, NULL), 0);
	CHECK_INT(cm_auth_seal(a, s.buf, s.len, mac), 0);
	memcpy(s.buf + s.len, mac, sizeof(mac));
	s.len += sizeof(mac);
	CHECK_INT(s.len, len);
	CHECK(memcmp(s.buf, buf, len) == 0);
	CHECK_INT(cm_auth_decode(a, &out, s.buf, s.len, err, sizeof(err)), 0);
	CHECK_STR(out.u.cmd.service, "web");
	cm_msg_clear(&out);
	free(buf);
	cm_auth_free(a);
}

static const struct tt_case cases[] = {
	{ "every errno has its code", test_every_errno_has_its_code },
	{ "decode errors map as documented",
	  test_decode_errors_map_as_documented },
	{ "encode_to writes the same frame",
	  test_encode_to_writes_the_same_frame },
	{ "encode_to: a large frame in pieces",
	  test_encode_to_large_frame_in_pieces },
	{ "seal matches auth_encode", test_seal_matches_auth_encode },
	{ NULL, NULL },
};

TT_MAIN(cases)
