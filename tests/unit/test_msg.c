// SPDX-License-Identifier: MIT
// Unit tests for cm_msg: round trips, the wire schema, the raw-frame walk
// and the strict decoder, including the malformed frames of case C18.
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <msgpack.h>

#include "cm_msg.h"
#include "tt.h"

/* ------------------------------------------------------------------ */
/* mp(): msgpack from a small text notation                            */
//
// So that hand-made (and deliberately wrong) frames read like data:
//   {k: v, ...}   map; a bare identifier key is a str, any other key is
//                 parsed as a value
//   [a, b]        array
//   'text'        str; escapes \' \\ \xHH; 'ab'*300 repeats the text
//   b'..'         bin
//   12, -5        integer in its smallest encoding; 1.5 is a float64
//   true false nil
//   #c0d005       raw bytes, copied as they are
// The result is malloc'ed at exactly its length so that ASan sees any read
// past the end.

struct mp {
	const char *s;
};

static void mp_value(struct mp *p, msgpack_sbuffer *out);

static void
mp_die(const struct mp *p, const char *why)
{
	printf("# mp: %s at \"%.30s\"\n", why, p->s);
	fflush(stdout);
	abort();
}

static void
mp_ws(struct mp *p)
{
	while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t')
		p->s++;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

// Parses 'text' (optionally followed by *N) into a new buffer.
static char *
mp_text(struct mp *p, size_t *ret_len)
{
	msgpack_sbuffer sb;
	size_t reps = 1, n;
	char *out;

	msgpack_sbuffer_init(&sb);
	if (*p->s != '\'')
		mp_die(p, "expected '");
	p->s++;
	while (*p->s != '\'') {
		char c = *p->s;

		if (c == '\0')
			mp_die(p, "unterminated string");
		if (c == '\\') {
			p->s++;
			c = *p->s;
			if (c == 'x') {
				int hi = hexval(p->s[1]), lo = hexval(p->s[2]);

				if (hi < 0 || lo < 0)
					mp_die(p, "bad \\x escape");
				c = (char)(hi * 16 + lo);
				p->s += 2;
			} else if (c != '\\' && c != '\'') {
				mp_die(p, "bad escape");
			}
		}
		msgpack_sbuffer_write(&sb, &c, 1);
		p->s++;
	}
	p->s++;
	if (*p->s == '*') {
		p->s++;
		reps = strtoul(p->s, (char **)&p->s, 10);
	}
	n = sb.size;
	out = malloc(n * reps + 1);
	for (size_t i = 0; i < reps && n > 0; i++)
		memcpy(out + i * n, sb.data, n);
	*ret_len = n * reps;
	msgpack_sbuffer_destroy(&sb);
	return out;
}

static void
mp_container(struct mp *p, msgpack_sbuffer *out, bool map)
{
	msgpack_sbuffer kids;
	msgpack_packer pk;
	size_t n = 0;
	char close = map ? '}' : ']';

	msgpack_sbuffer_init(&kids);
	p->s++;
	mp_ws(p);
	while (*p->s != close) {
		if (map && ((*p->s >= 'a' && *p->s <= 'z') || *p->s == '_')) {
			const char *k = p->s;

			while ((*p->s >= 'a' && *p->s <= 'z') || *p->s == '_' ||
			    (*p->s >= '0' && *p->s <= '9'))
				p->s++;
			msgpack_packer_init(&pk, &kids, msgpack_sbuffer_write);
			msgpack_pack_str_with_body(&pk, k, (size_t)(p->s - k));
		} else if (map) {
			mp_value(p, &kids);
		}
		mp_ws(p);
		if (map) {
			if (*p->s != ':')
				mp_die(p, "expected :");
			p->s++;
			mp_ws(p);
		}
		mp_value(p, &kids);
		n++;
		mp_ws(p);
		if (*p->s == ',') {
			p->s++;
			mp_ws(p);
		} else if (*p->s != close) {
			mp_die(p, "expected , or close");
		}
	}
	p->s++;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (map)
		msgpack_pack_map(&pk, n);
	else
		msgpack_pack_array(&pk, n);
	if (kids.size > 0)
		msgpack_sbuffer_write(out, kids.data, kids.size);
	msgpack_sbuffer_destroy(&kids);
}

static void
mp_value(struct mp *p, msgpack_sbuffer *out)
{
	msgpack_packer pk;
	char *text;
	size_t n;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	mp_ws(p);
	if (*p->s == '{' || *p->s == '[') {
		mp_container(p, out, *p->s == '{');
	} else if (*p->s == '\'' || (p->s[0] == 'b' && p->s[1] == '\'')) {
		bool bin = *p->s == 'b';

		p->s += bin;
		text = mp_text(p, &n);
		if (bin)
			msgpack_pack_bin_with_body(&pk, text, n);
		else
			msgpack_pack_str_with_body(&pk, text, n);
		free(text);
	} else if (*p->s == '#') {
		p->s++;
		while (hexval(p->s[0]) >= 0 && hexval(p->s[1]) >= 0) {
			char c = (char)(hexval(p->s[0]) * 16 + hexval(p->s[1]));

			msgpack_sbuffer_write(out, &c, 1);
			p->s += 2;
		}
	} else if (strncmp(p->s, "true", 4) == 0) {
		msgpack_pack_true(&pk);
		p->s += 4;
	} else if (strncmp(p->s, "false", 5) == 0) {
		msgpack_pack_false(&pk);
		p->s += 5;
	} else if (strncmp(p->s, "nil", 3) == 0) {
		msgpack_pack_nil(&pk);
		p->s += 3;
	} else if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
		const char *start = p->s;

		p->s += *p->s == '-';
		while (*p->s >= '0' && *p->s <= '9')
			p->s++;
		if (*p->s == '.')
			msgpack_pack_double(&pk, strtod(start, (char **)&p->s));
		else if (*start == '-')
			msgpack_pack_int64(&pk, strtoll(start, NULL, 10));
		else
			msgpack_pack_uint64(&pk, strtoull(start, NULL, 10));
	} else {
		mp_die(p, "unexpected character");
	}
}

struct frame {
	uint8_t *p; // exactly n bytes (NULL when n is 0)
	size_t n;
};

static struct frame
frame_of(const void *data, size_t n)
{
	struct frame f = { .p = NULL, .n = n };

	if (n > 0) {
		f.p = malloc(n);
		memcpy(f.p, data, n);
	}
	return f;
}

static struct frame
mp(const char *text)
{
	struct mp p = { .s = text };
	msgpack_sbuffer sb;
	struct frame f;

	msgpack_sbuffer_init(&sb);
	mp_value(&p, &sb);
	mp_ws(&p);
	if (*p.s != '\0')
		mp_die(&p, "trailing text");
	f = frame_of(sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return f;
}

static struct frame
unhex(const char *hex)
{
	size_t n = strlen(hex) / 2;
	uint8_t *tmp = malloc(n + 1);
	struct frame f;

	for (size_t i = 0; i < n; i++)
		tmp[i] = (uint8_t)(hexval(hex[2 * i]) * 16 +
		    hexval(hex[2 * i + 1]));
	f = frame_of(tmp, n);
	free(tmp);
	return f;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static bool
all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

// Decodes f into *m; on failure also checks that *m was left cleared.
static int
dec_frame(const struct frame *f, struct cm_msg *m, char *err, size_t errlen)
{
	int r;

	memset(m, 0xa5, sizeof(*m)); // decode must not trust what is there
	r = cm_msg_decode(m, f->p, f->n, err, errlen);
	if (r < 0 && !all_zero(m, sizeof(*m))) {
		printf("#   message not cleared after error %d\n", r);
		tt_case_failed = 1;
	}
	if (r < 0 && err != NULL && err[0] == '\0') {
		printf("#   error %d without a reason\n", r);
		tt_case_failed = 1;
	}
	return r;
}

// Decodes the notation `text`, prints the reason, returns the code.
static int
dec_text(const char *text, char *err, size_t errlen)
{
	struct frame f = mp(text);
	struct cm_msg m;
	int r = dec_frame(&f, &m, err, errlen);

	printf("#   %d: %s\n", r, r < 0 ? err : "ok");
	cm_msg_clear(&m);
	free(f.p);
	return r;
}

#define EXPECT_FAIL(text, rv, reason)                                       \
	do {                                                                \
		char ef_err[512];                                           \
		CHECK_INT(dec_text((text), ef_err, sizeof(ef_err)), (rv));  \
		CHECK_HAS(ef_err, (reason));                                \
	} while (0)

#define EXPECT_OK(text)                                                     \
	do {                                                                \
		char eo_err[512];                                           \
		CHECK_INT(dec_text((text), eo_err, sizeof(eo_err)), 0);     \
	} while (0)

// Encodes m, checks success, returns the frame.
static struct frame
enc(const struct cm_msg *m)
{
	struct frame f = { NULL, 0 };
	void *buf = NULL;
	size_t len = 0;
	int r = cm_msg_encode(m, &buf, &len);

	CHECK_INT(r, 0);
	if (r == 0) {
		f = frame_of(buf, len);
		free(buf);
	}
	return f;
}

// Encodes in, decodes into out; returns the decode result.
static int
round_trip(const struct cm_msg *in, struct cm_msg *out)
{
	struct frame f = enc(in);
	char err[256] = "";
	int r;

	r = dec_frame(&f, out, err, sizeof(err));
	if (r < 0)
		printf("#   decode: %d %s\n", r, err);
	free(f.p);
	return r;
}

static void
fill(char *dst, size_t cap, char c)
{
	memset(dst, c, cap - 1);
	dst[cap - 1] = '\0';
}

static struct cm_msg
msg_new(enum cm_msg_type t, uint64_t id)
{
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.type = t;
	m.id = id;
	return m;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

static void
test_round_trip_register(void)
{
	struct cm_workload wl[3];
	struct cm_msg m = msg_new(CM_MSG_REGISTER, 1), out;

	memset(wl, 0, sizeof(wl));
	strcpy(m.u.reg.node, "node-1");
	strcpy(m.u.reg.addr, "tcp://127.0.0.1:7701");
	strcpy(m.u.reg.runtime, "process");
	fill(wl[0].service, sizeof(wl[0].service), 's');
	fill(wl[0].instance, sizeof(wl[0].instance), 'i');
	fill(wl[0].addr, sizeof(wl[0].addr), 'a');
	wl[0].healthy = true;
	strcpy(wl[1].service, "svc-a");
	strcpy(wl[1].instance, "svc-a-0");
	strcpy(wl[1].addr, "127.0.0.1:18081");
	wl[1].healthy = false;
	strcpy(wl[2].service, "svc_b.v2");
	strcpy(wl[2].instance, "0");
	wl[2].addr[0] = '\0'; // no address is allowed for a workload
	wl[2].healthy = true;
	m.u.reg.workloads = wl;
	m.u.reg.n_workloads = 3;

	CHECK_INT(round_trip(&m, &out), 0);
	CHECK_INT(out.version, CM_PROTO_VERSION);
	CHECK_INT(out.type, CM_MSG_REGISTER);
	CHECK_INT(out.id, 1);
	CHECK_STR(out.u.reg.node, "node-1");
	CHECK_STR(out.u.reg.addr, "tcp://127.0.0.1:7701");
	CHECK_STR(out.u.reg.runtime, "process");
	CHECK_INT(out.u.reg.n_workloads, 3);
	CHECK(out.u.reg.workloads != NULL);
	if (out.u.reg.workloads != NULL)
		CHECK(memcmp(out.u.reg.workloads, wl, sizeof(wl)) == 0);
	cm_msg_clear(&out);
	CHECK(all_zero(&out, sizeof(out)));

	// No workloads: an empty array and a NULL pointer.
	m.u.reg.workloads = NULL;
	m.u.reg.n_workloads = 0;
	fill(m.u.reg.node, sizeof(m.u.reg.node), 'n');
	fill(m.u.reg.addr, sizeof(m.u.reg.addr), '~');
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(out.u.reg.workloads == NULL);
	CHECK_INT(out.u.reg.n_workloads, 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);
}

static void
test_round_trip_register_max_workloads(void)
{
	struct cm_workload *wl = calloc(CM_MSG_MAX_WORKLOADS, sizeof(*wl));
	struct cm_msg m = msg_new(CM_MSG_REGISTER, 2), out;

	strcpy(m.u.reg.node, "n");
	strcpy(m.u.reg.addr, "ipc:///tmp/reflex-agent.sock");
	strcpy(m.u.reg.runtime, "kubernetes");
	for (int i = 0; i < CM_MSG_MAX_WORKLOADS; i++) {
		snprintf(wl[i].service, sizeof(wl[i].service), "svc%d", i % 7);
		snprintf(wl[i].instance, sizeof(wl[i].instance), "pod-%d", i);
		snprintf(wl[i].addr, sizeof(wl[i].addr), "10.0.%d.%d:80",
		    i / 256, i % 256);
		wl[i].healthy = i % 3 != 0;
	}
	m.u.reg.workloads = wl;
	m.u.reg.n_workloads = CM_MSG_MAX_WORKLOADS;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK_INT(out.u.reg.n_workloads, CM_MSG_MAX_WORKLOADS);
	if (out.u.reg.workloads != NULL)
		CHECK(memcmp(out.u.reg.workloads, wl,
		    CM_MSG_MAX_WORKLOADS * sizeof(*wl)) == 0);
	cm_msg_clear(&out);
	free(wl);
}

static void
test_round_trip_heartbeat(void)
{
	struct cm_msg m = msg_new(CM_MSG_HEARTBEAT, UINT64_MAX), out;

	strcpy(m.u.hb.node, "edge-03.dc1");
	m.u.hb.seq = UINT64_MAX;
	m.u.hb.unhealthy = UINT32_MAX;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	CHECK(out.id == UINT64_MAX);
	CHECK(out.u.hb.seq == UINT64_MAX);
	CHECK(out.u.hb.unhealthy == UINT32_MAX);
	cm_msg_clear(&out);

	m.id = 0;
	m.u.hb.seq = 0;
	m.u.hb.unhealthy = 0;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);
}

static void
test_round_trip_command(void)
{
	struct cm_msg m = msg_new(CM_MSG_COMMAND, 42), out;

	m.u.cmd.action_id = 9007199254740993ULL; // not exact as a double
	strcpy(m.u.cmd.action, "restart");
	strcpy(m.u.cmd.service, "svc-a");
	strcpy(m.u.cmd.instance, "svc-a-5d8c7b9f4-x2k9p");
	strcpy(m.u.cmd.reason, "PodCrashLooping: back-off 5m0s \"quoted\" "
	    "\xe2\x9c\x93 \xf0\x9f\x94\xa5\ttab");
	m.u.cmd.timeout_ms = 30000;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	CHECK_STR(out.u.cmd.reason, m.u.cmd.reason);
	cm_msg_clear(&out);

	// "" means every instance of the service; the longest reason fits.
	memset(m.u.cmd.instance, 0, sizeof(m.u.cmd.instance));
	fill(m.u.cmd.reason, sizeof(m.u.cmd.reason), 'r');
	fill(m.u.cmd.action, sizeof(m.u.cmd.action), 'x');
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	CHECK_STR(out.u.cmd.instance, "");
	cm_msg_clear(&out);
}

static void
test_round_trip_permit(void)
{
	struct cm_msg m = msg_new(CM_MSG_PERMIT, 77), out;

	strcpy(m.u.permit.node, "node-2");
	strcpy(m.u.permit.service, "api");
	strcpy(m.u.permit.instance, "api-1");
	strcpy(m.u.permit.reason, "probe failed 3 times");
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);

	memset(m.u.permit.reason, 0, sizeof(m.u.permit.reason));
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);
}

static void
test_round_trip_reply(void)
{
	struct cm_msg m = msg_new(CM_MSG_REPLY, 5), out;
	char *big;

	m.u.reply.ok = true;
	m.u.reply.code = 0;
	strcpy(m.u.reply.message, "restarted");
	m.u.reply.json = "{\"workloads\":[{\"service\":\"svc-a\"}]}";
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(out.u.reply.ok);
	CHECK_INT(out.u.reply.code, 0);
	CHECK_STR(out.u.reply.message, "restarted");
	CHECK_STR(out.u.reply.json, m.u.reply.json);
	CHECK(out.u.reply.json != m.u.reply.json);
	cm_msg_clear(&out);

	// Without json the key is omitted and decodes as NULL.
	m.u.reply.ok = false;
	m.u.reply.code = -ETIMEDOUT;
	strcpy(m.u.reply.message, "timed out after 30000 ms");
	m.u.reply.json = NULL;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);

	m.u.reply.code = -4095;
	m.u.reply.json = "";
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK_INT(out.u.reply.code, -4095);
	CHECK_STR(out.u.reply.json, "");
	cm_msg_clear(&out);

	// A large status document (200 KiB) still fits one frame.
	big = malloc(200 * 1024 + 1);
	memset(big, 'j', 200 * 1024);
	big[200 * 1024] = '\0';
	m.u.reply.json = big;
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK_STR(out.u.reply.json, big);
	cm_msg_clear(&out);
	free(big);
}

static void
test_round_trip_error_and_status(void)
{
	struct cm_msg m = msg_new(CM_MSG_ERROR, 0), out;

	strcpy(m.u.error.code, "bad_frame");
	strcpy(m.u.error.message, "frame truncated: str header at offset 16 "
	    "claims 7 bytes, 5 left");
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);

	m = msg_new(CM_MSG_STATUS, 123456789);
	CHECK_INT(round_trip(&m, &out), 0);
	CHECK(memcmp(&out, &m, sizeof(m)) == 0);
	cm_msg_clear(&out);
}

// Pins the wire schema byte for byte: key names, order and encodings.
static void
test_wire_schema_exact(void)
{
	struct cm_workload wl = { "svc-a", "svc-a-0", "127.0.0.1:18081",
		true };
	struct {
		struct cm_msg m;
		const char *want;
	} cases[7];
	size_t n = 0;

	cases[n].m = msg_new(CM_MSG_REGISTER, 1);
	strcpy(cases[n].m.u.reg.node, "n1");
	strcpy(cases[n].m.u.reg.addr, "tcp://127.0.0.1:7701");
	strcpy(cases[n].m.u.reg.runtime, "process");
	cases[n].m.u.reg.workloads = &wl;
	cases[n].m.u.reg.n_workloads = 1;
	cases[n++].want = "{v:1, type:'register', id:1, body:{node:'n1', "
	    "addr:'tcp://127.0.0.1:7701', runtime:'process', workloads:["
	    "{service:'svc-a', instance:'svc-a-0', addr:'127.0.0.1:18081', "
	    "healthy:true}]}}";

	cases[n].m = msg_new(CM_MSG_HEARTBEAT, 2);
	strcpy(cases[n].m.u.hb.node, "n1");
	cases[n].m.u.hb.seq = 300;
	cases[n].m.u.hb.unhealthy = 1;
	cases[n++].want = "{v:1, type:'heartbeat', id:2, body:{node:'n1', "
	    "seq:300, unhealthy:1}}";

	cases[n].m = msg_new(CM_MSG_COMMAND, 3);
	cases[n].m.u.cmd.action_id = 70000;
	strcpy(cases[n].m.u.cmd.action, "restart");
	strcpy(cases[n].m.u.cmd.service, "svc-a");
	strcpy(cases[n].m.u.cmd.reason, "r");
	cases[n].m.u.cmd.timeout_ms = 5000;
	cases[n++].want = "{v:1, type:'command', id:3, body:{action_id:70000, "
	    "action:'restart', service:'svc-a', instance:'', reason:'r', "
	    "timeout_ms:5000}}";

	cases[n].m = msg_new(CM_MSG_PERMIT, 4);
	strcpy(cases[n].m.u.permit.node, "n1");
	strcpy(cases[n].m.u.permit.service, "svc-a");
	strcpy(cases[n].m.u.permit.instance, "svc-a-0");
	strcpy(cases[n].m.u.permit.reason, "unhealthy");
	cases[n++].want = "{v:1, type:'permit', id:4, body:{node:'n1', "
	    "service:'svc-a', instance:'svc-a-0', reason:'unhealthy'}}";

	cases[n].m = msg_new(CM_MSG_REPLY, 5);
	cases[n].m.u.reply.code = -2;
	strcpy(cases[n].m.u.reply.message, "no such service");
	cases[n].m.u.reply.json = "{}";
	cases[n++].want = "{v:1, type:'reply', id:5, body:{ok:false, code:-2, "
	    "message:'no such service', json:'{}'}}";

	cases[n].m = msg_new(CM_MSG_ERROR, 6);
	strcpy(cases[n].m.u.error.code, "bad_version");
	strcpy(cases[n].m.u.error.message, "v: version 2");
	cases[n++].want = "{v:1, type:'error', id:6, body:{code:'bad_version',"
	    " message:'v: version 2'}}";

	cases[n].m = msg_new(CM_MSG_STATUS, 7);
	cases[n++].want = "{v:1, type:'status', id:7, body:{}}";

	for (size_t i = 0; i < n; i++) {
		struct frame got = enc(&cases[i].m), want = mp(cases[i].want);

		if (got.n != want.n || memcmp(got.p, want.p, got.n) != 0) {
			printf("#   %s: encoding differs from \"%s\"\n",
			    cm_msg_type_name(cases[i].m.type), cases[i].want);
			tt_case_failed = 1;
		}
		free(got.p);
		free(want.p);
	}
	// The version field of the struct is not what gets sent.
	cases[1].m.version = 9;
	{
		struct frame got = enc(&cases[1].m), want = mp(cases[1].want);

		CHECK(got.n == want.n && memcmp(got.p, want.p, got.n) == 0);
		free(got.p);
		free(want.p);
	}
}

static void
test_type_names(void)
{
	CHECK_STR(cm_msg_type_name(CM_MSG_REGISTER), "register");
	CHECK_STR(cm_msg_type_name(CM_MSG_HEARTBEAT), "heartbeat");
	CHECK_STR(cm_msg_type_name(CM_MSG_COMMAND), "command");
	CHECK_STR(cm_msg_type_name(CM_MSG_REPLY), "reply");
	CHECK_STR(cm_msg_type_name(CM_MSG_ERROR), "error");
	CHECK_STR(cm_msg_type_name(CM_MSG_STATUS), "status");
	CHECK_STR(cm_msg_type_name(CM_MSG_PERMIT), "permit");
	CHECK(cm_msg_type_name((enum cm_msg_type)0) == NULL);
	CHECK(cm_msg_type_name((enum cm_msg_type)8) == NULL);
	CHECK(cm_msg_type_name((enum cm_msg_type)-1) == NULL);
}

/* ------------------------------------------------------------------ */
/* Names and UTF-8                                                     */

static void
test_name_valid(void)
{
	char s[CM_NAME_MAX + 1];

	CHECK(cm_name_valid("a"));
	CHECK(cm_name_valid("A9"));
	CHECK(cm_name_valid("svc-a-5d8c7b9f4-x2k9p"));
	CHECK(cm_name_valid("svc_a.b-c"));
	CHECK(cm_name_valid("1.2.3"));
	memset(s, 'a', CM_NAME_MAX - 1);
	s[CM_NAME_MAX - 1] = '\0';
	CHECK(cm_name_valid(s));
	s[CM_NAME_MAX - 1] = 'a';
	s[CM_NAME_MAX] = '\0';
	CHECK(!cm_name_valid(s));
	CHECK(!cm_name_valid(NULL));
	CHECK(!cm_name_valid(""));
	CHECK(!cm_name_valid("-a"));
	CHECK(!cm_name_valid("a-"));
	CHECK(!cm_name_valid(".a"));
	CHECK(!cm_name_valid("a."));
	CHECK(!cm_name_valid("_a"));
	CHECK(!cm_name_valid("a b"));
	CHECK(!cm_name_valid("a/b"));
	CHECK(!cm_name_valid("../etc"));
	CHECK(!cm_name_valid("a:b"));
	CHECK(!cm_name_valid("a\nb"));
	CHECK(!cm_name_valid("a$(x)"));
	CHECK(!cm_name_valid("caf\xc3\xa9"));
}

static void
test_utf8_valid(void)
{
#define U(s, ok) CHECK(cm_utf8_valid((s), sizeof(s) - 1) == (ok))
	U("", true);
	U("plain ascii ~\x7f", true);
	U("caf\xc3\xa9", true);
	U("\xe2\x82\xac", true);	 // euro sign
	U("\xef\xbf\xbf", true);	 // U+FFFF
	U("\xf0\x9f\x94\xa5", true);	 // emoji
	U("\xf4\x8f\xbf\xbf", true);	 // U+10FFFF
	U("\xed\x9f\xbf", true);	 // U+D7FF
	U("\xee\x80\x80", true);	 // U+E000
	U("a\x00" "b", false);		 // NUL
	U("\xc0\x80", false);		 // overlong NUL
	U("\xc1\xbf", false);		 // overlong
	U("\xe0\x80\xaf", false);	 // overlong
	U("\xf0\x8f\xbf\xbf", false);	 // overlong
	U("\xed\xa0\x80", false);	 // surrogate
	U("\xed\xbf\xbf", false);	 // surrogate
	U("\xf4\x90\x80\x80", false);	 // past U+10FFFF
	U("\xf5\x80\x80\x80", false);
	U("\xff", false);
	U("\xfe\xff", false);
	U("\x80", false);		 // lone continuation
	U("\xc3", false);		 // truncated
	U("\xe2\x82", false);		 // truncated
	U("\xf0\x9f\x94", false);	 // truncated
	U("\xc3\x28", false);		 // bad continuation
	U("\xe2\x28\xa1", false);
	U("\xf0\x9f\x28\xa5", false);
#undef U
	CHECK(cm_utf8_valid(NULL, 0));
	CHECK(!cm_utf8_valid(NULL, 1));
	// The length given is all that is read: the byte after is ignored.
	CHECK(cm_utf8_valid("ab\xff", 2));
}

/* ------------------------------------------------------------------ */
/* Encoder limits                                                      */

static int
enc_rv(const struct cm_msg *m)
{
	void *buf = (void *)1;
	size_t len = 1;
	int r = cm_msg_encode(m, &buf, &len);

	if (r < 0) {
		CHECK(buf == NULL);
		CHECK_INT(len, 0);
	}
	free(buf);
	return r;
}

static void
test_encode_rejects(void)
{
	struct cm_msg m = msg_new(CM_MSG_HEARTBEAT, 1);
	struct cm_workload wl[2];
	void *buf;
	size_t len;

	strcpy(m.u.hb.node, "n1");
	CHECK_INT(enc_rv(&m), 0);
	CHECK_INT(cm_msg_encode(NULL, &buf, &len), -EINVAL);
	CHECK_INT(cm_msg_encode(&m, NULL, &len), -EINVAL);
	CHECK_INT(cm_msg_encode(&m, &buf, NULL), -EINVAL);
	m.type = (enum cm_msg_type)0;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.type = (enum cm_msg_type)99;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.type = CM_MSG_HEARTBEAT;
	m.u.hb.node[0] = '\0';
	CHECK_INT(enc_rv(&m), -EINVAL);
	strcpy(m.u.hb.node, "bad name");
	CHECK_INT(enc_rv(&m), -EINVAL);
	memset(m.u.hb.node, 'n', sizeof(m.u.hb.node)); // no NUL
	CHECK_INT(enc_rv(&m), -EINVAL);

	m = msg_new(CM_MSG_COMMAND, 1);
	strcpy(m.u.cmd.action, "restart");
	strcpy(m.u.cmd.service, "svc");
	CHECK_INT(enc_rv(&m), 0);
	memset(m.u.cmd.reason, 'r', sizeof(m.u.cmd.reason)); // no NUL
	CHECK_INT(enc_rv(&m), -EINVAL);
	strcpy(m.u.cmd.reason, "bad \xc3\x28 utf-8");
	CHECK_INT(enc_rv(&m), -EINVAL);
	strcpy(m.u.cmd.reason, "ok");
	strcpy(m.u.cmd.instance, "-x");
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.u.cmd.instance[0] = '\0';
	m.u.cmd.service[0] = '\0'; // "" only means "all" for instance
	CHECK_INT(enc_rv(&m), -EINVAL);

	m = msg_new(CM_MSG_PERMIT, 1);
	strcpy(m.u.permit.node, "n");
	strcpy(m.u.permit.service, "s");
	CHECK_INT(enc_rv(&m), -EINVAL); // a permit names one instance
	strcpy(m.u.permit.instance, "i");
	CHECK_INT(enc_rv(&m), 0);

	m = msg_new(CM_MSG_REGISTER, 1);
	strcpy(m.u.reg.node, "n");
	strcpy(m.u.reg.runtime, "process");
	CHECK_INT(enc_rv(&m), -EINVAL); // addr is required
	strcpy(m.u.reg.addr, "tcp://127.0.0.1:1 ");
	CHECK_INT(enc_rv(&m), -EINVAL); // no spaces
	strcpy(m.u.reg.addr, "tcp://127.0.0.1:1");
	CHECK_INT(enc_rv(&m), 0);
	m.u.reg.n_workloads = 1;
	CHECK_INT(enc_rv(&m), -EINVAL); // count without array
	memset(wl, 0, sizeof(wl));
	strcpy(wl[0].service, "s");
	strcpy(wl[0].instance, "i");
	strcpy(wl[1].service, "s");
	strcpy(wl[1].instance, "i/2");
	m.u.reg.workloads = wl;
	CHECK_INT(enc_rv(&m), 0);
	m.u.reg.n_workloads = 2;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.u.reg.n_workloads = CM_MSG_MAX_WORKLOADS + 1;
	CHECK_INT(enc_rv(&m), -EINVAL);

	m = msg_new(CM_MSG_REPLY, 1);
	m.u.reply.code = 1;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.u.reply.code = -4096;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.u.reply.code = INT32_MIN;
	CHECK_INT(enc_rv(&m), -EINVAL);
	m.u.reply.code = -4095;
	CHECK_INT(enc_rv(&m), 0);
	m.u.reply.json = "bad \xff json";
	CHECK_INT(enc_rv(&m), -EINVAL);

	m = msg_new(CM_MSG_ERROR, 1);
	strcpy(m.u.error.code, "bad frame");
	CHECK_INT(enc_rv(&m), -EINVAL);
}

static void
test_encode_frame_too_large(void)
{
	struct cm_workload *wl = calloc(CM_MSG_MAX_WORKLOADS, sizeof(*wl));
	struct cm_msg m = msg_new(CM_MSG_REGISTER, 1);
	char *json;

	// 1024 workloads with every field at its longest: ~420 KiB.
	strcpy(m.u.reg.node, "n");
	strcpy(m.u.reg.addr, "a");
	strcpy(m.u.reg.runtime, "process");
	for (int i = 0; i < CM_MSG_MAX_WORKLOADS; i++) {
		fill(wl[i].service, sizeof(wl[i].service), 's');
		fill(wl[i].instance, sizeof(wl[i].instance), 'i');
		fill(wl[i].addr, sizeof(wl[i].addr), 'a');
	}
	m.u.reg.workloads = wl;
	m.u.reg.n_workloads = CM_MSG_MAX_WORKLOADS;
	CHECK_INT(enc_rv(&m), -EMSGSIZE);
	free(wl);

	// The json limit is one byte below CM_STATUS_MAX, and a json that
	// long no longer fits a frame with its envelope.
	m = msg_new(CM_MSG_REPLY, 1);
	json = malloc(CM_STATUS_MAX + 1);
	memset(json, 'j', CM_STATUS_MAX);
	json[CM_STATUS_MAX] = '\0';
	m.u.reply.json = json;
	CHECK_INT(enc_rv(&m), -EINVAL);
	json[CM_STATUS_MAX - 1] = '\0';
	CHECK_INT(enc_rv(&m), -EMSGSIZE);
	json[CM_MSG_MAX_FRAME - 100] = '\0';
	CHECK_INT(enc_rv(&m), 0);
	free(json);
}

/* ------------------------------------------------------------------ */
/* Stage 1: the raw frame walk                                         */

static int
check_hex(const char *hex, char *err, size_t errlen)
{
	struct frame f = unhex(hex);
	int r = cm_msg_check_frame(f.p, f.n, err, errlen);

	printf("#   %s -> %d %s\n", hex, r, r < 0 ? err : "");
	free(f.p);
	return r;
}

#define CHECK_WALK(hex, rv, reason)                                         \
	do {                                                                \
		char cw_err[256] = "";                                      \
		CHECK_INT(check_hex((hex), cw_err, sizeof(cw_err)), (rv));  \
		CHECK_HAS(cw_err, (reason));                                \
	} while (0)

#define CHECK_WALK_OK(hex)                                                  \
	do {                                                                \
		char cw_err[256] = "";                                      \
		CHECK_INT(check_hex((hex), cw_err, sizeof(cw_err)), 0);     \
	} while (0)

// Every msgpack type, well formed, in one array.
static const char every_type_hex[] =
	"dc0025"			   // array16 of 37
	"00" "7f" "e0" "ff" "c0" "c2" "c3" // fixints, nil, bools
	"cc" "ff" "cd" "ffff" "ce" "ffffffff" "cf" "ffffffffffffffff"
	"d0" "80" "d1" "8000" "d2" "80000000" "d3" "8000000000000000"
	"ca" "3fc00000" "cb" "3ff8000000000000"
	"a0" "a3616263" "d9" "0161" "da" "000162" "db" "0000000163"
	"c4" "0100" "c5" "000101" "c6" "0000000102"
	"c7" "0101" "aa" "c8" "000101" "bb" "c9" "0000000101" "cc"
	"d4" "01aa" "d5" "01aabb" "d6" "01aabbccdd"
	"d7" "01" "0001020304050607"
	"d8" "01" "000102030405060708090a0b0c0d0e0f"
	"90" "80" "dd00000000" "df00000000";

static void
test_walk_every_type(void)
{
	CHECK_WALK_OK(every_type_hex);
	CHECK_WALK_OK("c0");
	CHECK_WALK_OK("80");
	CHECK_WALK_OK("de0001a16b92c0c3");
}

static void
test_walk_truncated_headers(void)
{
	CHECK_WALK("cd00", -EBADMSG, "uint16 header at offset 0 claims 2 "
	    "bytes, 1 left");
	CHECK_WALK("cf00000000", -EBADMSG, "uint64 header");
	CHECK_WALK("d3", -EBADMSG, "int64 header");
	CHECK_WALK("cb000000", -EBADMSG, "float64 header");
	CHECK_WALK("c4", -EBADMSG, "bin header at offset 0 needs 1 length "
	    "bytes, 0 left");
	CHECK_WALK("c40561", -EBADMSG, "bin header at offset 0 claims 5 "
	    "bytes, 1 left");
	CHECK_WALK("c6ffffffff", -EBADMSG, "claims 4294967295 bytes, 0 left");
	CHECK_WALK("c70201aa", -EBADMSG, "ext header at offset 0 claims 3 "
	    "bytes, 2 left");
	CHECK_WALK("c9ffffffff01", -EBADMSG, "ext header");
	CHECK_WALK("d601aabb", -EBADMSG, "fixext4 header at offset 0 claims 5 "
	    "bytes, 3 left");
	CHECK_WALK("d9", -EBADMSG, "str header at offset 0 needs 1");
	CHECK_WALK("da00", -EBADMSG, "str header at offset 0 needs 2 length "
	    "bytes, 1 left");
	CHECK_WALK("a5616263", -EBADMSG, "str header at offset 0 claims 5 "
	    "bytes, 3 left");
	CHECK_WALK("dc00", -EBADMSG, "array header at offset 0 needs 2");
	CHECK_WALK("df000000", -EBADMSG, "map header at offset 0 needs 4");
}

static void
test_walk_counts_bounded_by_bytes_left(void)
{
	CHECK_WALK("dc0005c0c0", -EBADMSG, "array header at offset 0 claims "
	    "5 objects, 2 bytes left");
	CHECK_WALK("82c0c0c0", -EBADMSG, "map header at offset 0 claims 4 "
	    "objects, 3 bytes left");
	CHECK_WALK("dfffffffff", -EBADMSG, "claims 8589934590 objects");
	// Counts fit the bytes left, yet the inner array eats the last one.
	CHECK_WALK("9291c0", -EBADMSG, "container at depth 1 still expects 1 "
	    "objects, 0 bytes left");
	CHECK_WALK("82a16bc0a16b", -EBADMSG, "still expects 1 objects");
}

static void
test_walk_depth_limit(void)
{
	char hex[2 * 40 + 3];
	char err[256];
	int d;

	// CM_MSG_MAX_DEPTH nested containers pass, one more fails, for
	// arrays and for maps.
	for (d = CM_MSG_MAX_DEPTH; d <= CM_MSG_MAX_DEPTH + 1; d++) {
		hex[0] = '\0';
		for (int i = 0; i < d; i++)
			strcat(hex, "91");
		strcat(hex, "c0");
		CHECK_INT(check_hex(hex, err, sizeof(err)),
		    d <= CM_MSG_MAX_DEPTH ? 0 : -EBADMSG);
		hex[0] = '\0';
		for (int i = 0; i < d; i++)
			strcat(hex, "81c0");
		strcat(hex, "c0");
		CHECK_INT(check_hex(hex, err, sizeof(err)),
		    d <= CM_MSG_MAX_DEPTH ? 0 : -EBADMSG);
	}
	CHECK_HAS(err, "map at offset 32 nests deeper than 16 levels");
	// Empty containers count as a level too.
	CHECK_WALK("9191919191919191919191919191919190", -EBADMSG,
	    "array at offset 16 nests deeper");
	// A sibling after a deep branch is back at a shallow level.
	CHECK_WALK_OK("92919191919191919191919191919190c0");
}

static void
test_walk_bad_bytes_and_sizes(void)
{
	struct frame f;
	char err[256];

	CHECK_WALK("c1", -EBADMSG, "byte 0xc1 at offset 0 is not a msgpack "
	    "type");
	CHECK_WALK("92c0c1", -EBADMSG, "byte 0xc1 at offset 2");
	CHECK_WALK("c0c0", -EBADMSG, "1 trailing bytes after the object "
	    "ending at offset 1");
	CHECK_WALK("", -EBADMSG, "empty frame");
	CHECK_INT(cm_msg_check_frame(NULL, 0, err, sizeof(err)), -EBADMSG);
	CHECK_INT(cm_msg_check_frame(NULL, 0, NULL, 0), -EBADMSG);

	// Exactly CM_MSG_MAX_FRAME bytes pass (one str32), one more does not,
	// whatever it holds.
	f.n = CM_MSG_MAX_FRAME;
	f.p = calloc(1, CM_MSG_MAX_FRAME + 1);
	f.p[0] = 0xdb;
	f.p[2] = ((CM_MSG_MAX_FRAME - 5) >> 16) & 0xff;
	f.p[3] = ((CM_MSG_MAX_FRAME - 5) >> 8) & 0xff;
	f.p[4] = (CM_MSG_MAX_FRAME - 5) & 0xff;
	CHECK_INT(cm_msg_check_frame(f.p, f.n, err, sizeof(err)), 0);
	CHECK_INT(cm_msg_check_frame(f.p, f.n + 1, err, sizeof(err)),
	    -EMSGSIZE);
	CHECK_HAS(err, "frame of 262145 bytes exceeds the limit of 262144");
	free(f.p);
}

/* ------------------------------------------------------------------ */
/* Case C18: real malformed frames (schema {type, pod, ok})            */

static void
test_c18_valid_frame_passes_walk(void)
{
	// Well-formed msgpack, so the walk passes; it is not a reflex
	// message, so the decoder stops at the envelope.
	CHECK_WALK_OK("83a474797065a570726f6265a3706f64a77376632d612d30a26f6b"
	    "c2");
	EXPECT_FAIL("{type:'probe', pod:'svc-a-0', ok:false}", -EPROTO,
	    "v: missing");
}

static void
test_c18_truncated_str(void)
{
	char err[256] = "";
	struct frame f = unhex("83a474797065a570726f6265a3706f64a77376632d61");
	struct cm_msg m;

	CHECK_INT(cm_msg_check_frame(f.p, f.n, err, sizeof(err)), -EBADMSG);
	CHECK_HAS(err, "frame truncated: str header at offset 16 claims 7 "
	    "bytes, 5 left");
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	CHECK_HAS(err, "claims 7 bytes, 5 left");
	free(f.p);
}

static void
test_c18_huge_lengths_do_not_allocate(void)
{
	char err[256] = "";
	struct frame f;
	struct cm_msg m;

	// If the decoder trusted these lengths it would allocate ~4 GiB or
	// ~100 GiB of msgpack_object; under ASan that aborts the test.
	CHECK_WALK("81a3706f64dbfffffff07376", -EBADMSG, "str header at offset "
	    "5 claims 4294967280 bytes, 2 left");
	CHECK_WALK("81a3706f64ddffffffff", -EBADMSG, "array header at offset "
	    "5 claims 4294967295 objects, 0 bytes left");
	f = unhex("81a3706f64ddffffffff");
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	free(f.p);
	f = unhex("81a3706f64dbfffffff07376");
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	free(f.p);
	f = unhex("81a3706f64dfffffffff");
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	free(f.p);
}

static void
test_c18_trailing_bytes(void)
{
	// 0xbe announces a 30-byte str that is not there: the frame has one
	// object and one byte too many, and nothing past the end is read.
	CHECK_WALK("83a474797065a570726f6265a3706f64a77376632d612d30a26f6bc2be",
	    -EBADMSG, "1 trailing bytes after the object ending at offset 28");
}

static void
test_c18_wrong_type(void)
{
	// ok:"false" is well-formed msgpack; the schema is what rejects it.
	CHECK_WALK_OK("83a474797065a570726f6265a3706f64a77376632d612d30a26f6b"
	    "a566616c7365");
	EXPECT_FAIL("{v:1, type:'reply', id:1, body:{ok:'false', code:0, "
	    "message:''}}", -EINVAL, "body.ok: expected bool, got str");
}

static void
test_c18_bad_utf8_name(void)
{
	CHECK_WALK_OK("83a474797065a570726f6265a3706f64a3fffefda26f6bc3");
	EXPECT_FAIL("{v:1, type:'heartbeat', id:1, body:{"
	    "node:'\\xff\\xfe\\xfd', seq:1, unhealthy:0}}", -EINVAL,
	    "body.node: not valid UTF-8 or contains NUL");
	EXPECT_FAIL("{v:1, type:'permit', id:1, body:{node:'n', service:'s', "
	    "instance:'\\xff\\xfe\\xfd', reason:''}}", -EINVAL,
	    "body.instance: not valid UTF-8");
}

static void
test_c18_deep_nesting(void)
{
	size_t n = 100000;
	uint8_t *buf = malloc(n + 1);
	char err[256] = "";
	struct frame f;
	struct cm_msg m;

	memset(buf, 0x91, n);
	buf[n] = 0xc0;
	f.p = buf;
	f.n = n + 1;
	CHECK_INT(cm_msg_check_frame(f.p, f.n, err, sizeof(err)), -EBADMSG);
	CHECK_HAS(err, "array at offset 16 nests deeper than 16 levels");
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	CHECK_HAS(err, "nests deeper");
	// The same 100000 levels as maps ({"a": {"a": ...}}) nest no deeper.
	free(buf);
	buf = malloc(3 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + 3 * i, "\x81\xa1" "a", 3);
	buf[3 * n] = 0xc0;
	CHECK_INT(cm_msg_check_frame(buf, 3 * n + 1, err, sizeof(err)),
	    -EMSGSIZE);
	CHECK_INT(cm_msg_check_frame(buf, CM_MSG_MAX_FRAME, err, sizeof(err)),
	    -EBADMSG);
	CHECK_HAS(err, "map at offset 48 nests deeper than 16 levels");
	free(buf);
}

static void
test_c18_empty(void)
{
	struct frame f = { NULL, 0 };
	char err[256] = "";
	struct cm_msg m;
	uint8_t one = 0;

	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
	CHECK_HAS(err, "empty frame");
	CHECK_INT(cm_msg_decode(&m, &one, 0, err, sizeof(err)), -EBADMSG);
}

/* ------------------------------------------------------------------ */
/* Stage 2: the schema                                                 */

#define HB(body) "{v:1, type:'heartbeat', id:7, body:{" body "}}"
#define CMD(body) "{v:1, type:'command', id:7, body:{" body "}}"
#define REPLY(body) "{v:1, type:'reply', id:7, body:{" body "}}"
#define REG(body) "{v:1, type:'register', id:7, body:{" body "}}"
#define PERMIT(body) "{v:1, type:'permit', id:7, body:{" body "}}"
#define ERROR(body) "{v:1, type:'error', id:7, body:{" body "}}"

static void
test_envelope(void)
{
	EXPECT_OK("{v:1, type:'status', id:0, body:{}}");
	EXPECT_FAIL("[1]", -EBADMSG, "frame: expected map, got array");
	EXPECT_FAIL("'v'", -EBADMSG, "frame: expected map, got str");
	EXPECT_FAIL("{v:1, type:'status', id:0, body:{}, 5:1}", -EBADMSG,
	    "frame: key 4 is uint, not str");
	EXPECT_FAIL("{type:'status', id:0, body:{}}", -EPROTO, "v: missing");
	EXPECT_FAIL("{v:2, type:'status', id:0, body:{}}", -EPROTO,
	    "v: version 2, this side speaks 1");
	EXPECT_FAIL("{v:0, type:'status', id:0, body:{}}", -EPROTO,
	    "v: version 0");
	EXPECT_FAIL("{v:-1, type:'status', id:0, body:{}}", -EPROTO,
	    "v: expected uint, got negative int");
	EXPECT_FAIL("{v:'1', type:'status', id:0, body:{}}", -EPROTO,
	    "v: expected uint, got str");
	EXPECT_FAIL("{v:1.0, type:'status', id:0, body:{}}", -EPROTO,
	    "v: expected uint, got float");
	EXPECT_FAIL("{v:1, v:1, type:'status', id:0, body:{}}", -EINVAL,
	    "v: key given twice");
	EXPECT_FAIL("{v:1, id:0, body:{}}", -EPROTO, "type: missing");
	EXPECT_FAIL("{v:1, type:3, id:0, body:{}}", -EPROTO,
	    "type: expected str, got uint");
	EXPECT_FAIL("{v:1, type:b'status', id:0, body:{}}", -EPROTO,
	    "type: expected str, got bin");
	EXPECT_FAIL("{v:1, type:'reboot', id:0, body:{}}", -EPROTO,
	    "type: unknown type \"reboot\"");
	EXPECT_FAIL("{v:1, type:'Status', id:0, body:{}}", -EPROTO,
	    "unknown type \"Status\"");
	EXPECT_FAIL("{v:1, type:'status\\x00', id:0, body:{}}", -EPROTO,
	    "unknown type \"status?\"");
	EXPECT_FAIL("{v:1, type:'', id:0, body:{}}", -EPROTO,
	    "unknown type \"\"");
	EXPECT_FAIL("{v:1, type:'x'*5000, id:0, body:{}}", -EPROTO,
	    "unknown type \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
	EXPECT_FAIL("{v:1, type:'status', body:{}}", -EINVAL, "id: missing");
	EXPECT_FAIL("{v:1, type:'status', id:-7, body:{}}", -EINVAL,
	    "id: -7 is negative");
	EXPECT_FAIL("{v:1, type:'status', id:'7', body:{}}", -EINVAL,
	    "id: expected uint, got str");
	EXPECT_FAIL("{v:1, type:'status', id:7}", -EINVAL, "body: missing");
	EXPECT_FAIL("{v:1, type:'status', id:7, body:nil}", -EINVAL,
	    "body: expected map, got nil");
	EXPECT_FAIL("{v:1, type:'status', id:7, body:[]}", -EINVAL,
	    "body: expected map, got array");
	EXPECT_FAIL("{v:1, type:'status', id:7, body:{#c3:1}}", -EINVAL,
	    "body: key 0 is bool, not str");
	EXPECT_FAIL("{v:1, type:'status', id:1, body:{}, body:{}}", -EINVAL,
	    "body: key given twice");
}

static void
test_unknown_keys_ignored(void)
{
	char text[2048];
	struct frame f;
	struct cm_msg m;
	char err[256];

	// Extra keys at the top, in the body and in a workload, holding every
	// msgpack type, nested as deep as the limit allows.
	snprintf(text, sizeof(text), "{v:1, extra:#%s, type:'register', id:9, "
	    "body:{future:[[[[[[[[[[[[[[nil]]]]]]]]]]]]]], node:'n', "
	    "addr:'a', runtime:'process', workloads:[{service:'s', "
	    "instance:'i', addr:'', healthy:false, weight:1.5, "
	    "tags:{a:b'x'}}]}, trailer:{}}", every_type_hex);
	f = mp(text);
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), 0);
	CHECK_INT(m.type, CM_MSG_REGISTER);
	CHECK_INT(m.id, 9);
	CHECK_INT(m.u.reg.n_workloads, 1);
	cm_msg_clear(&m);
	free(f.p);

	// One level deeper than that is past CM_MSG_MAX_DEPTH.
	EXPECT_FAIL(HB("node:'n', seq:1, unhealthy:0, "
	    "x:[[[[[[[[[[[[[[[nil]]]]]]]]]]]]]]]"), -EBADMSG,
	    "nests deeper than 16 levels");
	EXPECT_OK(HB("node:'n', seq:1, unhealthy:0, "
	    "x:[[[[[[[[[[[[[[nil]]]]]]]]]]]]]]"));
}

static void
test_integers(void)
{
	char text[256];
	struct frame f;
	struct cm_msg m;
	char err[256];

	// Any integer encoding is fine when the value fits.
	f = mp(HB("node:'n', seq:#d005, unhealthy:#d300000000ffffffff"));
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), 0);
	CHECK_INT(m.u.hb.seq, 5);
	CHECK(m.u.hb.unhealthy == UINT32_MAX);
	free(f.p);
	f = mp(HB("node:'n', seq:#cfffffffffffffffff, unhealthy:#cc00"));
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), 0);
	CHECK(m.u.hb.seq == UINT64_MAX);
	CHECK_INT(m.u.hb.unhealthy, 0);
	free(f.p);

	EXPECT_FAIL(HB("node:'n', seq:1, unhealthy:4294967296"), -EINVAL,
	    "body.unhealthy: 4294967296 exceeds 4294967295");
	EXPECT_FAIL(HB("node:'n', seq:1, unhealthy:-1"), -EINVAL,
	    "body.unhealthy: -1 is negative");
	EXPECT_FAIL(HB("node:'n', seq:#d0ff, unhealthy:0"), -EINVAL,
	    "body.seq: -1 is negative");
	EXPECT_FAIL(HB("node:'n', seq:1.0, unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got float");
	EXPECT_FAIL(HB("node:'n', seq:#ca3f800000, unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got float");
	EXPECT_FAIL(HB("node:'n', seq:true, unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got bool");
	EXPECT_FAIL(HB("node:'n', seq:nil, unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got nil");
	EXPECT_FAIL(HB("node:'n', seq:'1', unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got str");
	EXPECT_FAIL(HB("node:'n', seq:#d4010a, unhealthy:0"), -EINVAL,
	    "body.seq: expected uint, got ext");
	EXPECT_FAIL(CMD("action_id:1, action:'a', service:'s', instance:'', "
	    "reason:'', timeout_ms:#ce00000001ff"), -EBADMSG, "trailing");

	// code: 0 or a negative errno, in any integer encoding.
	const struct {
		const char *code;
		int rv;
		int32_t want;
	} codes[] = {
		{ "0", 0, 0 },
		{ "#d000", 0, 0 },
		{ "#d30000000000000000", 0, 0 },
		{ "-5", 0, -5 },
		{ "#d1fffb", 0, -5 },
		{ "#d3fffffffffffffffb", 0, -5 },
		{ "-4095", 0, -4095 },
		{ "-4096", -EINVAL, 0 },
		{ "#d280000000", -EINVAL, 0 },
		{ "#d38000000000000000", -EINVAL, 0 },
		{ "1", -EINVAL, 0 },
		{ "#cfffffffffffffffff", -EINVAL, 0 },
		{ "-1.0", -EINVAL, 0 },
		{ "false", -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		snprintf(text, sizeof(text), REPLY("ok:false, code:%s, "
		    "message:''"), codes[i].code);
		f = mp(text);
		CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), codes[i].rv);
		CHECK_INT(m.u.reply.code, codes[i].want);
		if (codes[i].rv < 0)
			CHECK_HAS(err, "body.code: ");
		cm_msg_clear(&m);
		free(f.p);
	}
}

static void
test_bools(void)
{
	EXPECT_OK(REPLY("ok:true, code:0, message:''"));
	EXPECT_FAIL(REPLY("ok:1, code:0, message:''"), -EINVAL,
	    "body.ok: expected bool, got uint");
	EXPECT_FAIL(REPLY("ok:nil, code:0, message:''"), -EINVAL,
	    "body.ok: expected bool, got nil");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:[{"
	    "service:'s', instance:'i', addr:'', healthy:'true'}]"), -EINVAL,
	    "body.workloads[0].healthy: expected bool, got str");
}

static void
test_strings(void)
{
	EXPECT_OK(HB("node:'n'*63, seq:1, unhealthy:0"));
	EXPECT_FAIL(HB("node:'n'*64, seq:1, unhealthy:0"), -EINVAL,
	    "body.node: 64 bytes, limit 63");
	EXPECT_FAIL(HB("node:'n'*100000, seq:1, unhealthy:0"), -EINVAL,
	    "body.node: 100000 bytes, limit 63");
	EXPECT_FAIL(HB("node:'', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: not a valid name");
	EXPECT_FAIL(HB("node:'-n', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: not a valid name");
	EXPECT_FAIL(HB("node:'a b', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: not a valid name");
	EXPECT_FAIL(HB("node:'../x', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: not a valid name");
	EXPECT_FAIL(HB("node:'n\\x00', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: not valid UTF-8 or contains NUL");
	EXPECT_FAIL(HB("node:b'n', seq:1, unhealthy:0"), -EINVAL,
	    "body.node: expected str, got bin");
	EXPECT_FAIL(HB("node:nil, seq:1, unhealthy:0"), -EINVAL,
	    "body.node: expected str, got nil");
	EXPECT_FAIL(HB("node:['n'], seq:1, unhealthy:0"), -EINVAL,
	    "body.node: expected str, got array");

#define CMD_REASON(r) CMD("action_id:1, action:'restart', service:'s', " \
	"instance:'i', reason:" r ", timeout_ms:1")
	EXPECT_OK(CMD_REASON("'r'*1023"));
	EXPECT_OK(CMD_REASON("''"));
	EXPECT_OK(CMD_REASON("'line\\x0a \\x09 \\xe2\\x9c\\x93 "
	    "\\xf0\\x9f\\x94\\xa5'"));
	EXPECT_FAIL(CMD_REASON("'r'*1024"), -EINVAL,
	    "body.reason: 1024 bytes, limit 1023");
	EXPECT_FAIL(CMD_REASON("'bad \\xc3\\x28'"), -EINVAL,
	    "body.reason: not valid UTF-8");
	EXPECT_FAIL(CMD_REASON("'overlong \\xc0\\xaf'"), -EINVAL,
	    "body.reason: not valid UTF-8");
	EXPECT_FAIL(CMD_REASON("'surrogate \\xed\\xa0\\x80'"), -EINVAL,
	    "body.reason: not valid UTF-8");
	EXPECT_FAIL(CMD_REASON("'cut \\xe2\\x9c'"), -EINVAL,
	    "body.reason: not valid UTF-8");
	EXPECT_FAIL(CMD_REASON("'nul \\x00 inside'"), -EINVAL,
	    "body.reason: not valid UTF-8 or contains NUL");
#undef CMD_REASON

	EXPECT_OK(CMD("action_id:1, action:'restart', service:'s', instance:'',"
	    " reason:'', timeout_ms:1"));
	EXPECT_FAIL(CMD("action_id:1, action:'restart', service:'', "
	    "instance:'', reason:'', timeout_ms:1"), -EINVAL,
	    "body.service: not a valid name");
	EXPECT_FAIL(CMD("action_id:1, action:'restart', service:'s', "
	    "instance:'-', reason:'', timeout_ms:1"), -EINVAL,
	    "body.instance: not a valid name (nor \"\" for all)");
	EXPECT_FAIL(CMD("action_id:1, action:'rm -rf', service:'s', "
	    "instance:'', reason:'', timeout_ms:1"), -EINVAL,
	    "body.action: not a valid name");
	EXPECT_FAIL(PERMIT("node:'n', service:'s', instance:'', reason:''"),
	    -EINVAL, "body.instance: not a valid name");
	EXPECT_FAIL(ERROR("code:'bad frame', message:''"), -EINVAL,
	    "body.code: not a valid name");
	EXPECT_OK(ERROR("code:'bad_frame', message:'m'*1023"));
	EXPECT_FAIL(ERROR("code:'bad_frame', message:'m'*1024"), -EINVAL,
	    "body.message: 1024 bytes, limit 1023");

	// Addresses: printable ASCII without spaces, the agent's own one
	// required, a workload's optional.
	EXPECT_OK(REG("node:'n', addr:'a'*255, runtime:'r', workloads:[]"));
	EXPECT_FAIL(REG("node:'n', addr:'a'*256, runtime:'r', workloads:[]"),
	    -EINVAL, "body.addr: 256 bytes, limit 255");
	EXPECT_FAIL(REG("node:'n', addr:'', runtime:'r', workloads:[]"),
	    -EINVAL, "body.addr: empty");
	EXPECT_FAIL(REG("node:'n', addr:'tcp://a b', runtime:'r', "
	    "workloads:[]"), -EINVAL, "body.addr: not printable ASCII");
	EXPECT_FAIL(REG("node:'n', addr:'tcp://\\xc3\\xa9', runtime:'r', "
	    "workloads:[]"), -EINVAL, "body.addr: not printable ASCII");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:[{"
	    "service:'s', instance:'i', addr:'x\\x09y', healthy:true}]"),
	    -EINVAL, "body.workloads[0].addr: not printable ASCII");

	// Reply json: optional str, UTF-8 without NUL.
	EXPECT_OK(REPLY("ok:true, code:0, message:'', json:'{}'"));
	EXPECT_FAIL(REPLY("ok:true, code:0, message:'', json:nil"), -EINVAL,
	    "body.json: expected str, got nil");
	EXPECT_FAIL(REPLY("ok:true, code:0, message:'', json:'{\\x00}'"),
	    -EINVAL, "body.json: not valid UTF-8 or contains NUL");
	EXPECT_FAIL(REPLY("ok:true, code:0, message:'', json:'{}', "
	    "json:'{}'"), -EINVAL, "body.json: key given twice");
}

static void
test_workloads(void)
{
	size_t cap = 64 * (CM_MSG_MAX_WORKLOADS + 2) + 256, n;
	char *text = malloc(cap);
	char err[256];

	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:{}"),
	    -EINVAL, "body.workloads: expected array, got map");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:nil"),
	    -EINVAL, "body.workloads: expected array, got nil");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r'"), -EINVAL,
	    "body.workloads: missing");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'i', addr:'', healthy:true}, 's']"),
	    -EINVAL, "body.workloads[1]: expected map, got str");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'i', addr:''}]"), -EINVAL,
	    "body.workloads[0].healthy: missing");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'i', addr:'', healthy:true},"
	    "{service:'s', instance:'i', addr:'', healthy:true},"
	    "{service:'s/', instance:'i', addr:'', healthy:true}]"), -EINVAL,
	    "body.workloads[2].service: not a valid name");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'', addr:'', healthy:true}]"), -EINVAL,
	    "body.workloads[0].instance: not a valid name");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'i', addr:'', healthy:true, 1:2}]"),
	    -EINVAL, "body.workloads[0]: key 4 is uint, not str");

	// CM_MSG_MAX_WORKLOADS entries pass, one more does not.
	for (int extra = 0; extra <= 1; extra++) {
		n = (size_t)snprintf(text, cap, "{v:1, type:'register', id:1, "
		    "body:{node:'n', addr:'a', runtime:'r', workloads:[");
		for (int i = 0; i < CM_MSG_MAX_WORKLOADS + extra; i++)
			n += (size_t)snprintf(text + n, cap - n, "%s{service:"
			    "'s', instance:'i%d', addr:'', healthy:true}",
			    i ? "," : "", i);
		snprintf(text + n, cap - n, "]}}");
		CHECK_INT(dec_text(text, err, sizeof(err)),
		    extra ? -EINVAL : 0);
	}
	CHECK_HAS(err, "body.workloads: 1025 entries, limit 1024");
	free(text);
}

// Every required key of every type, left out in turn.
static void
test_missing_keys(void)
{
	static const struct {
		const char *type;
		const char *kv[6];
	} types[] = {
		{ "register", { "node:'n'", "addr:'a'", "runtime:'r'",
		    "workloads:[]" } },
		{ "heartbeat", { "node:'n'", "seq:1", "unhealthy:0" } },
		{ "command", { "action_id:1", "action:'a'", "service:'s'",
		    "instance:''", "reason:''", "timeout_ms:1" } },
		{ "permit", { "node:'n'", "service:'s'", "instance:'i'",
		    "reason:''" } },
		{ "reply", { "ok:true", "code:0", "message:''" } },
		{ "error", { "code:'c'", "message:''" } },
	};
	char text[512], err[256], want[64];
	size_t n;

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (int skip = -1; skip < 6; skip++) {
			if (skip >= 0 && types[t].kv[skip] == NULL)
				break;
			n = (size_t)snprintf(text, sizeof(text),
			    "{v:1, type:'%s', id:1, body:{", types[t].type);
			for (int k = 0; k < 6 && types[t].kv[k] != NULL; k++)
				if (k != skip)
					n += (size_t)snprintf(text + n,
					    sizeof(text) - n, "%s, ",
					    types[t].kv[k]);
			snprintf(text + n, sizeof(text) - n, "unknown:1}}");
			if (skip < 0) {
				CHECK_INT(dec_text(text, err, sizeof(err)), 0);
				continue;
			}
			CHECK_INT(dec_text(text, err, sizeof(err)), -EINVAL);
			snprintf(want, sizeof(want), "body.%.*s: missing",
			    (int)strcspn(types[t].kv[skip], ":"),
			    types[t].kv[skip]);
			CHECK_HAS(err, want);
		}
	}
}

static void
test_err_buffer_handling(void)
{
	struct frame f = mp(HB("node:'', seq:1, unhealthy:0"));
	struct cm_msg m;
	char err[8];

	CHECK_INT(cm_msg_decode(&m, f.p, f.n, NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	CHECK_INT(cm_msg_decode(&m, f.p, f.n, err, 5), -EINVAL);
	CHECK_STR(err, "body");
	CHECK_INT(err[5], 'x');
	CHECK_INT(cm_msg_decode(NULL, f.p, f.n, NULL, 0), -EINVAL);
	free(f.p);
	cm_msg_clear(NULL);
}

/* ------------------------------------------------------------------ */
/* Truncation, trailing bytes and random mutation of valid frames      */

// One valid frame of every type, with every optional part present.
static size_t
valid_frames(struct frame *out)
{
	static struct cm_workload wl[2] = {
		{ "svc-a", "svc-a-0", "127.0.0.1:18081", true },
		{ "svc-b", "svc-b-1", "", false },
	};
	struct cm_msg m;
	size_t n = 0;

	m = msg_new(CM_MSG_REGISTER, 1);
	strcpy(m.u.reg.node, "node-1");
	strcpy(m.u.reg.addr, "tcp://127.0.0.1:7701");
	strcpy(m.u.reg.runtime, "process");
	m.u.reg.workloads = wl;
	m.u.reg.n_workloads = 2;
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_HEARTBEAT, 70000);
	strcpy(m.u.hb.node, "node-1");
	m.u.hb.seq = 1ULL << 40;
	m.u.hb.unhealthy = 3;
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_COMMAND, 3);
	m.u.cmd.action_id = 12;
	strcpy(m.u.cmd.action, "restart");
	strcpy(m.u.cmd.service, "svc-a");
	strcpy(m.u.cmd.instance, "svc-a-0");
	strcpy(m.u.cmd.reason, "PodCrashLooping \xe2\x9c\x93");
	m.u.cmd.timeout_ms = 30000;
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_PERMIT, 4);
	strcpy(m.u.permit.node, "node-1");
	strcpy(m.u.permit.service, "svc-a");
	strcpy(m.u.permit.instance, "svc-a-0");
	strcpy(m.u.permit.reason, "probe");
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_REPLY, 5);
	m.u.reply.code = -110;
	strcpy(m.u.reply.message, "timeout");
	m.u.reply.json = "{\"a\":[1,2]}";
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_ERROR, 6);
	strcpy(m.u.error.code, "bad_frame");
	strcpy(m.u.error.message, "empty frame");
	out[n++] = enc(&m);
	m = msg_new(CM_MSG_STATUS, 7);
	out[n++] = enc(&m);
	return n;
}

static void
test_truncation_at_every_offset(void)
{
	struct frame v[8], f;
	struct cm_msg m;
	char err[256];
	size_t n = valid_frames(v);

	for (size_t i = 0; i < n; i++) {
		CHECK_INT(cm_msg_check_frame(v[i].p, v[i].n, err, sizeof(err)),
		    0);
		for (size_t k = 0; k < v[i].n; k++) {
			f = frame_of(v[i].p, k);
			CHECK_INT(cm_msg_check_frame(f.p, f.n, err,
			    sizeof(err)), -EBADMSG);
			CHECK_INT(dec_frame(&f, &m, err, sizeof(err)),
			    -EBADMSG);
			if (k > 0)
				CHECK_HAS(err, "truncated");
			free(f.p);
		}
		free(v[i].p);
	}
}

static void
test_trailing_bytes(void)
{
	static const uint8_t tails[] = { 0x00, 0xc0, 0xbe, 0xc1, 0xdb, 0x91 };
	struct frame v[8], f;
	struct cm_msg m;
	char err[256];
	size_t n = valid_frames(v);

	for (size_t i = 0; i < n; i++) {
		for (size_t t = 0; t < sizeof(tails); t++) {
			uint8_t *p = malloc(v[i].n + 1);

			memcpy(p, v[i].p, v[i].n);
			p[v[i].n] = tails[t];
			f.p = p;
			f.n = v[i].n + 1;
			CHECK_INT(dec_frame(&f, &m, err, sizeof(err)),
			    -EBADMSG);
			CHECK_HAS(err, "1 trailing bytes");
			free(p);
		}
		// Two frames back to back are not one frame.
		f.p = malloc(2 * v[i].n);
		memcpy(f.p, v[i].p, v[i].n);
		memcpy(f.p + v[i].n, v[i].p, v[i].n);
		f.n = 2 * v[i].n;
		CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EBADMSG);
		CHECK_HAS(err, "trailing bytes");
		free(f.p);
		free(v[i].p);
	}
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

// Structure-blind mutations of valid frames. Whatever the decoder says,
// it must not crash, leak or read out of bounds (ASan and valgrind runs
// check that), it must answer with one of its documented codes and a
// reason, and a frame it accepts must encode back to a frame that decodes
// to the same message.
static void
test_random_mutations(void)
{
	static const uint8_t magic[] = {
		0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
		0xc2, 0xc3, 0xc6, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd8, 0xdb,
		0xdd, 0xdf, 0xe0, 0xff,
	};
	struct frame v[8];
	size_t nv = valid_frames(v);
	uint64_t seed = 0x5eed2026c0ffee11ULL;
	int accepted = 0, rejected = 0, bad = 0;
	int by_code[5] = { 0 };

	for (int it = 0; it < 20000 && bad < 10; it++) {
		const struct frame *base = &v[xorshift(&seed) % nv];
		size_t cap = base->n + 8, n = base->n;
		uint8_t *work = malloc(cap);
		int muts = 1 + (int)(xorshift(&seed) % 4);
		struct frame f;
		struct cm_msg m, m2;
		char err[256] = "";
		int r, rc;

		memcpy(work, base->p, n);
		for (int k = 0; k < muts && n > 0; k++) {
			size_t at = xorshift(&seed) % n;

			uint64_t x = xorshift(&seed);

			switch (xorshift(&seed) % 6) {
			case 0:
				work[at] = (uint8_t)x;
				break;
			case 1:
				work[at] ^= (uint8_t)(1u << (x % 8));
				break;
			case 2:
				work[at] = magic[x % sizeof(magic)];
				break;
			case 3: // delete a byte
				memmove(work + at, work + at + 1, n - at - 1);
				n--;
				break;
			case 4: // insert a byte
				if (n < cap) {
					memmove(work + at + 1, work + at,
					    n - at);
					work[at] = magic[x % sizeof(magic)];
					n++;
				}
				break;
			default: // cut the tail
				n = at;
				break;
			}
		}
		f = frame_of(work, n);
		free(work);

		rc = cm_msg_check_frame(f.p, f.n, err, sizeof(err));
		r = dec_frame(&f, &m, err, sizeof(err));
		if (rc < 0 && r != rc) {
			bad++;
			printf("#   it %d: walk %d, decode %d\n", it, rc, r);
		}
		if (strstr(err, "msgpack-c rejected") != NULL) {
			bad++;
			printf("#   it %d: walk passed what msgpack-c "
			    "refused: %s\n", it, err);
		}
		switch (r) {
		case 0:
			by_code[0]++;
			break;
		case -EBADMSG:
			by_code[1]++;
			break;
		case -EPROTO:
			by_code[2]++;
			break;
		case -EINVAL:
			by_code[3]++;
			break;
		default:
			by_code[4]++;
			bad++;
			printf("#   it %d: unexpected code %d\n", it, r);
		}
		if (r == 0) {
			struct frame again;

			accepted++;
			again = enc(&m);
			if (again.p == NULL || dec_frame(&again, &m2, err,
			    sizeof(err)) != 0) {
				bad++;
				printf("#   it %d: accepted but does not "
				    "re-encode: %s\n", it, err);
			} else {
				struct frame third = enc(&m2);

				if (third.n != again.n ||
				    memcmp(third.p, again.p, again.n) != 0) {
					bad++;
					printf("#   it %d: re-encoding is not "
					    "stable\n", it);
				}
				free(third.p);
				cm_msg_clear(&m2);
			}
			free(again.p);
			cm_msg_clear(&m);
		} else {
			rejected++;
		}
		free(f.p);
	}
	printf("#   accepted %d, rejected %d (EBADMSG %d, EPROTO %d, "
	    "EINVAL %d)\n", accepted, rejected, by_code[1], by_code[2],
	    by_code[3]);
	CHECK_INT(bad, 0);
	// The mix must exercise both outcomes and every failure class.
	CHECK(accepted > 0);
	CHECK(by_code[1] > 0);
	CHECK(by_code[2] > 0);
	CHECK(by_code[3] > 0);
	for (size_t i = 0; i < nv; i++)
		free(v[i].p);
}

// A heartbeat padded (unknown key x, a str16) to exactly n bytes.
static struct frame
hb_of_size(size_t n)
{
	char text[128];
	struct frame f;
	size_t k = 1000;

	for (int i = 0; i < 2; i++) {
		snprintf(text, sizeof(text), HB("node:'n', seq:1, unhealthy:0, "
		    "x:'p'*%zu"), k);
		f = mp(text);
		if (f.n == n)
			return f;
		k = k + n - f.n; // the str16 header stays 3 bytes
		free(f.p);
	}
	abort();
}

// wire_limits: limits set at run time below the ceilings; each one at
// the limit passes and one past it fails with its reason and config key.
#define CMD_REASON(r) CMD("action_id:1, action:'restart', service:'s', " \
	"instance:'i', reason:" r ", timeout_ms:1")

static void
test_runtime_limits(void)
{
	const struct cm_msg_limits lim = {
		.max_frame = 2048, .max_depth = 6, .max_workloads = 3,
		.max_name_len = 40, .max_addr_len = 50, .max_text_len = 300,
	};
	struct cm_msg_limits bad;
	struct cm_msg m;
	struct frame f;
	char err[256], text[2048];
	size_t n;

	// Bounds: every key below its floor and above its ceiling.
	for (const struct cm_conf_field *k = cm_msg_limits_fields;
	    k->key != NULL; k++) {
		for (int over = 0; over <= 1; over++) {
			int64_t v = over ? k->max + 1 : k->min - 1;

			bad = lim;
			memcpy((char *)&bad + k->off, &v, sizeof(v));
			err[0] = '\0';
			CHECK_INT(cm_msg_set_limits(&bad, err, sizeof(err)),
			    -EINVAL);
			CHECK_HAS(err, k->key);
			CHECK_HAS(err, "is outside");
		}
	}
	CHECK_INT(cm_msg_limits()->max_frame, CM_MSG_MAX_FRAME);
	CHECK_INT(cm_msg_recv_max(), CM_MSG_RECV_MAX);
	CHECK_INT(cm_msg_set_limits(&lim, err, sizeof(err)), 0);
	CHECK_INT(cm_msg_limits()->max_text_len, 300);
	CHECK_INT(cm_msg_recv_max(), 4096);

	// Frame size, through the walk and the decoder.
	f = hb_of_size(2048);
	CHECK_INT(cm_msg_check_frame(f.p, f.n, err, sizeof(err)), 0);
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), 0);
	cm_msg_clear(&m);
	free(f.p);
	f = hb_of_size(2049);
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EMSGSIZE);
	CHECK_HAS(err, "frame of 2049 bytes exceeds the limit of 2048 "
	    "(wire_limits.max_frame)");
	// The same frame passes under the default limits given explicitly.
	CHECK_INT(cm_msg_decode_lim(&m, f.p, f.n, &cm_msg_default_limits, err,
	    sizeof(err)), 0);
	cm_msg_clear(&m);
	free(f.p);

	// Depth: the envelope is level 1, the body 2, x holds the rest.
	EXPECT_OK(HB("node:'n', seq:1, unhealthy:0, x:[[[[nil]]]]"));
	EXPECT_FAIL(HB("node:'n', seq:1, unhealthy:0, x:[[[[[nil]]]]]"),
	    -EBADMSG, "nests deeper than 6 levels (wire_limits.max_depth)");

	// Strings: names, addresses, texts.
	EXPECT_OK(HB("node:'n'*40, seq:1, unhealthy:0"));
	EXPECT_FAIL(HB("node:'n'*41, seq:1, unhealthy:0"), -EINVAL,
	    "body.node: 41 bytes, limit 40 (wire_limits.max_name_len)");
	EXPECT_OK(CMD_REASON("'r'*300"));
	EXPECT_FAIL(CMD_REASON("'r'*301"), -EINVAL,
	    "body.reason: 301 bytes, limit 300 (wire_limits.max_text_len)");
	EXPECT_OK(ERROR("code:'bad_frame', message:'m'*300"));
	EXPECT_FAIL(ERROR("code:'bad_frame', message:'m'*301"), -EINVAL,
	    "body.message: 301 bytes, limit 300");
	EXPECT_OK(REG("node:'n', addr:'a'*50, runtime:'r', workloads:[]"));
	EXPECT_FAIL(REG("node:'n', addr:'a'*51, runtime:'r', workloads:[]"),
	    -EINVAL, "body.addr: 51 bytes, limit 50 "
	    "(wire_limits.max_addr_len)");
	EXPECT_FAIL(REG("node:'n', addr:'a', runtime:'r', workloads:["
	    "{service:'s', instance:'i', addr:'a'*51, healthy:true}]"),
	    -EINVAL, "body.workloads[0].addr: 51 bytes, limit 50");

	// Workloads per registration.
	for (int k = 3; k <= 4; k++) {
		n = (size_t)snprintf(text, sizeof(text), "{v:1, type:'register',"
		    " id:1, body:{node:'n', addr:'a', runtime:'r', workloads:[");
		for (int i = 0; i < k; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n,
			    "%s{service:'s', instance:'i%d', addr:'', "
			    "healthy:true}", i ? "," : "", i);
		snprintf(text + n, sizeof(text) - n, "]}}");
		CHECK_INT(dec_text(text, err, sizeof(err)), k == 3 ? 0 : -EINVAL);
	}
	CHECK_HAS(err, "body.workloads: 4 entries, limit 3 "
	    "(wire_limits.max_workloads)");

	// The encoder still writes up to the ceilings (the peer's limits
	// are its own): a 1023-byte reason encodes.
	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_COMMAND;
	strcpy(m.u.cmd.action, "restart");
	strcpy(m.u.cmd.service, "s");
	memset(m.u.cmd.reason, 'r', CM_TEXT_MAX - 1);
	f = enc(&m);
	CHECK_INT(dec_frame(&f, &m, err, sizeof(err)), -EINVAL);
	CHECK_INT(cm_msg_decode_lim(&m, f.p, f.n, &cm_msg_default_limits, err,
	    sizeof(err)), 0);
	cm_msg_clear(&m);
	free(f.p);

	// NULL restores the defaults.
	CHECK_INT(cm_msg_set_limits(NULL, NULL, 0), 0);
	CHECK_INT(cm_msg_limits()->max_depth, CM_MSG_MAX_DEPTH);
	EXPECT_OK(CMD_REASON("'r'*1023"));
}

#undef CMD_REASON

static const struct tt_case cases[] = {
	{ "round_trip_register", test_round_trip_register },
	{ "round_trip_register_max_workloads",
	    test_round_trip_register_max_workloads },
	{ "round_trip_heartbeat", test_round_trip_heartbeat },
	{ "round_trip_command", test_round_trip_command },
	{ "round_trip_permit", test_round_trip_permit },
	{ "round_trip_reply", test_round_trip_reply },
	{ "round_trip_error_and_status", test_round_trip_error_and_status },
	{ "wire_schema_exact", test_wire_schema_exact },
	{ "type_names", test_type_names },
	{ "name_valid", test_name_valid },
	{ "utf8_valid", test_utf8_valid },
	{ "encode_rejects", test_encode_rejects },
	{ "encode_frame_too_large", test_encode_frame_too_large },
	{ "walk_every_type", test_walk_every_type },
	{ "walk_truncated_headers", test_walk_truncated_headers },
	{ "walk_counts_bounded_by_bytes_left",
	    test_walk_counts_bounded_by_bytes_left },
	{ "walk_depth_limit", test_walk_depth_limit },
	{ "walk_bad_bytes_and_sizes", test_walk_bad_bytes_and_sizes },
	{ "c18_valid_frame_passes_walk", test_c18_valid_frame_passes_walk },
	{ "c18_truncated_str", test_c18_truncated_str },
	{ "c18_huge_lengths_do_not_allocate",
	    test_c18_huge_lengths_do_not_allocate },
	{ "c18_trailing_bytes", test_c18_trailing_bytes },
	{ "c18_wrong_type", test_c18_wrong_type },
	{ "c18_bad_utf8_name", test_c18_bad_utf8_name },
	{ "c18_deep_nesting", test_c18_deep_nesting },
	{ "c18_empty", test_c18_empty },
	{ "envelope", test_envelope },
	{ "unknown_keys_ignored", test_unknown_keys_ignored },
	{ "integers", test_integers },
	{ "bools", test_bools },
	{ "strings", test_strings },
	{ "workloads", test_workloads },
	{ "missing_keys", test_missing_keys },
	{ "err_buffer_handling", test_err_buffer_handling },
	{ "truncation_at_every_offset", test_truncation_at_every_offset },
	{ "trailing_bytes", test_trailing_bytes },
	{ "random_mutations", test_random_mutations },
	{ "runtime_limits", test_runtime_limits },
	{ NULL, NULL },
};

TT_MAIN(cases)
