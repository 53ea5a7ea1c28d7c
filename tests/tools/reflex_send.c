// SPDX-License-Identifier: MIT
// reflex-send: test tool that speaks reflex's wire protocol over nng.
//
//   reflex-send URL status
//   reflex-send URL command ACTION SERVICE [INSTANCE] [--reason TEXT]
//                    [--timeout-ms N] [--action-id N]
//   reflex-send URL raw HEX            (sends these bytes as one frame)
//   reflex-send URL serve [--count N] [--forget N] [--permit-file PATH]
//   common option: --wait MS (how long to wait for an answer, 15000)
//   client options for a sealed channel (cm_auth.h):
//     --secret PATH   stamp and seal the request with this secret file and
//                     open the answer with it
//     --skew-ms N     stamp the request N ms in the past (a stale frame)
//     --twice         send the very same frame twice (a replay) and print
//                     both answers
//
// Every answer line carries "mac": "ok" (opened with --secret), "bad"
// (--secret given but the answer's MAC does not verify under it; the
// body is shown anyway), "unchecked" (no --secret, but the answer ends
// in a MAC: it is shown without it) or "none" (a plain frame).
//
// The client modes dial URL, send one request and print the answer as one
// JSON line ({"type":"reply","id","ok","code","message","json"} or
// {"type":"error","id","code","message"}); exit 0 when an answer came, 1
// when none did or it was undecodable, 2 on usage errors. `serve` plays a
// coordinator: it listens on URL, prints every request as a JSON line
// {"type","id","body"} and answers ok=true; --forget N answers the N-th
// heartbeat with ok=false code=-ENOENT ("unknown node"); it stops after
// --count requests (default: never). --permit-file names a file read at
// every "permit" request; its first word says how to answer: "grant"
// (also when the file is missing or empty), "refuse" (ok=false -EPERM,
// the coordinator's wording), "silent" (no answer at all), "undecided"
// (ok=false -ETIMEDOUT), "unknown" (ok=false -ENOENT) or "unknown-once"
// (-ENOENT for the first permit while the file says so, then grant).
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "cm_auth.h"
#include "cm_msg.h"

struct opts {
	const char *url;
	const char *mode;
	const char *reason;
	long long timeout_ms, action_id, wait_ms, count, forget;
	const char *permit_file;
	const char *secret;
	long long skew_ms;
	bool twice;
	char **pos; // positional arguments after the mode
	int npos;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: reflex-send URL status\n"
	    "       reflex-send URL command ACTION SERVICE [INSTANCE] "
	    "[--reason TEXT] [--timeout-ms N] [--action-id N]\n"
	    "       reflex-send URL raw HEX\n"
	    "       reflex-send URL serve [--count N] [--forget N] "
	    "[--permit-file PATH]\n"
	    "       (any mode) --wait MS\n"
	    "       (client modes) --secret PATH --skew-ms N --twice\n");
}

// ---- message <-> JSON ---------------------------------------------------

static cJSON *
workloads_json(const struct cm_msg_register *r)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < r->n_workloads; i++) {
		const struct cm_workload *w = &r->workloads[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "service", w->service);
		cJSON_AddStringToObject(o, "instance", w->instance);
		cJSON_AddStringToObject(o, "addr", w->addr);
		cJSON_AddBoolToObject(o, "healthy", w->healthy);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static void
body_json(cJSON *b, const struct cm_msg *m)
{
	switch (m->type) {
	case CM_MSG_REGISTER:
		cJSON_AddStringToObject(b, "node", m->u.reg.node);
		cJSON_AddStringToObject(b, "addr", m->u.reg.addr);
		cJSON_AddStringToObject(b, "runtime", m->u.reg.runtime);
		cJSON_AddItemToObject(b, "workloads",
		    workloads_json(&m->u.reg));
		break;
	case CM_MSG_HEARTBEAT:
		cJSON_AddStringToObject(b, "node", m->u.hb.node);
		cJSON_AddNumberToObject(b, "seq", (double)m->u.hb.seq);
		cJSON_AddNumberToObject(b, "unhealthy", m->u.hb.unhealthy);
		break;
	case CM_MSG_COMMAND:
		cJSON_AddStringToObject(b, "action", m->u.cmd.action);
		cJSON_AddStringToObject(b, "service", m->u.cmd.service);
		cJSON_AddStringToObject(b, "instance", m->u.cmd.instance);
		break;
	case CM_MSG_PERMIT:
		cJSON_AddStringToObject(b, "node", m->u.permit.node);
		cJSON_AddStringToObject(b, "service", m->u.permit.service);
		cJSON_AddStringToObject(b, "instance", m->u.permit.instance);
		cJSON_AddStringToObject(b, "reason", m->u.permit.reason);
		break;
	default:
		break;
	}
}

static void
print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	printf("%s\n", s ? s : "{}");
	fflush(stdout);
	cJSON_free(s);
	cJSON_Delete(o);
}

static void
print_answer(const struct cm_msg *m, const char *mac)
{
	cJSON *o = cJSON_CreateObject();
	const char *t = cm_msg_type_name(m->type);

	cJSON_AddStringToObject(o, "type", t ? t : "?");
	if (mac != NULL)
		cJSON_AddStringToObject(o, "mac", mac);
	cJSON_AddNumberToObject(o, "id", (double)m->id);
	if (m->type == CM_MSG_ERROR) {
		cJSON_AddStringToObject(o, "code", m->u.error.code);
		cJSON_AddStringToObject(o, "message", m->u.error.message);
	} else if (m->type == CM_MSG_REPLY) {
		cJSON *j = m->u.reply.json ? cJSON_Parse(m->u.reply.json) :
		    NULL;

		cJSON_AddBoolToObject(o, "ok", m->u.reply.ok);
		cJSON_AddNumberToObject(o, "code", m->u.reply.code);
		cJSON_AddStringToObject(o, "message", m->u.reply.message);
		if (j == NULL && m->u.reply.json != NULL)
			j = cJSON_CreateString(m->u.reply.json);
		cJSON_AddItemToObject(o, "json", j ? j : cJSON_CreateNull());
	}
	print_json(o);
}

// Encodes m, stamped (ts moved skew_ms into the past) and sealed when
// auth is set.
static int
to_nng_sealed(struct cm_msg *m, struct cm_auth *auth, long long skew_ms,
    nng_msg **ret)
{
	void *buf = NULL;
	size_t len = 0;
	int rv;

	if (auth != NULL) {
		cm_auth_stamp(m);
		m->ts -= (uint64_t)skew_ms;
		rv = cm_auth_encode(auth, m, &buf, &len);
	} else {
		rv = cm_msg_encode(m, &buf, &len);
	}
	if (rv == 0 && nng_msg_alloc(ret, 0) != 0)
		rv = -ENOMEM;
	if (rv == 0 && nng_msg_append(*ret, buf, len) != 0)
		rv = -ENOMEM;
	free(buf);
	return rv;
}

static int
to_nng(const struct cm_msg *m, nng_msg **ret)
{
	void *buf = NULL;
	size_t len = 0;
	int rv = cm_msg_encode(m, &buf, &len);

	if (rv == 0 && nng_msg_alloc(ret, 0) != 0)
		rv = -ENOMEM;
	if (rv == 0 && nng_msg_append(*ret, buf, len) != 0)
		rv = -ENOMEM;
	free(buf);
	return rv;
}

static int
from_hex(const char *hex, nng_msg **ret)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || nng_msg_alloc(ret, 0) != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 2) {
		unsigned v;

		if (sscanf(hex + i, "%2x", &v) != 1)
			return -EINVAL;
		if (nng_msg_append(*ret, &(uint8_t){ (uint8_t)v }, 1) != 0)
			return -ENOMEM;
	}
	return 0;
}

// ---- client -------------------------------------------------------------

static int
build_request(const struct opts *o, struct cm_auth *auth, nng_msg **ret)
{
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.id = 77;
	if (strcmp(o->mode, "raw") == 0)
		return o->npos == 1 ? from_hex(o->pos[0], ret) : -EINVAL;
	if (strcmp(o->mode, "status") == 0) {
		m.type = CM_MSG_STATUS;
		return o->npos == 0 ? to_nng_sealed(&m, auth, o->skew_ms, ret) :
		    -EINVAL;
	}
	if (strcmp(o->mode, "command") != 0 || o->npos < 2 || o->npos > 3)
		return -EINVAL;
	m.type = CM_MSG_COMMAND;
	m.u.cmd.action_id = (uint64_t)o->action_id;
	m.u.cmd.timeout_ms = (uint32_t)o->timeout_ms;
	snprintf(m.u.cmd.action, sizeof(m.u.cmd.action), "%s", o->pos[0]);
	snprintf(m.u.cmd.service, sizeof(m.u.cmd.service), "%s", o->pos[1]);
	snprintf(m.u.cmd.instance, sizeof(m.u.cmd.instance), "%s",
	    o->npos == 3 ? o->pos[2] : "");
	snprintf(m.u.cmd.reason, sizeof(m.u.cmd.reason), "%s",
	    o->reason ? o->reason : "");
	return to_nng_sealed(&m, auth, o->skew_ms, ret);
}

// Decodes an answer and prints it with what became of its MAC.
static int
show_answer(struct cm_auth *auth, nng_msg *rep)
{
	const void *body = nng_msg_body(rep);
	size_t len = nng_msg_len(rep);
	const char *mac = "none";
	struct cm_msg m;
	char err[256];
	int rv;

	if (auth != NULL) {
		rv = cm_auth_decode(auth, &m, body, len, err, sizeof(err));
		mac = "ok";
		if (rv == -EACCES && len > CM_AUTH_MAC_LEN) {
			mac = "bad";
			rv = cm_msg_decode(&m, body, len - CM_AUTH_MAC_LEN, err,
			    sizeof(err));
		}
	} else {
		rv = cm_msg_decode(&m, body, len, err, sizeof(err));
		if (rv < 0 && len > CM_AUTH_MAC_LEN && cm_msg_decode(&m, body,
		    len - CM_AUTH_MAC_LEN, err, sizeof(err)) == 0) {
			mac = "unchecked";
			rv = 0;
		}
	}
	if (rv < 0) {
		fprintf(stderr, "reflex-send: undecodable answer: %s\n", err);
		return 1;
	}
	print_answer(&m, mac);
	cm_msg_clear(&m);
	return 0;
}

static int
client(const struct opts *o)
{
	struct cm_auth *auth = NULL;
	nng_msg *req = NULL, *rep = NULL, *copy = NULL;
	nng_socket s;
	char err[512];
	int rv, out = 0;

	if (o->secret != NULL && cm_auth_new(&auth, o->secret, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "reflex-send: %s\n", err);
		return 2;
	}
	if (build_request(o, auth, &req) < 0 || (o->twice &&
	    nng_msg_dup(&copy, req) != 0)) {
		nng_msg_free(req);
		cm_auth_free(auth);
		usage();
		return 2;
	}
	rv = nng_req0_open(&s);
	if (rv == 0)
		rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (int)o->wait_ms);
	if (rv == 0) // a peer gone before the send must not hang it either
		rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, (int)o->wait_ms);
	if (rv == 0)
		rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ,
		    CM_MSG_MAX_FRAME);
	if (rv == 0)
		rv = nng_dial(s, o->url, NULL, 0);
	if (rv == 0)
		rv = nng_sendmsg(s, req, 0);
	if (rv != 0)
		nng_msg_free(req);
	if (rv == 0)
		rv = nng_recvmsg(s, &rep, 0);
	if (rv == 0) {
		out = show_answer(auth, rep);
		nng_msg_free(rep);
	}
	if (rv == 0 && copy != NULL) {
		rv = nng_sendmsg(s, copy, 0);
		if (rv != 0)
			nng_msg_free(copy);
		copy = NULL;
		if (rv == 0)
			rv = nng_recvmsg(s, &rep, 0);
		if (rv == 0) {
			out |= show_answer(auth, rep);
			nng_msg_free(rep);
		}
	}
	nng_msg_free(copy);
	nng_close(s);
	cm_auth_free(auth);
	if (rv != 0) {
		fprintf(stderr, "reflex-send: %s: %s\n", o->url,
		    nng_strerror(rv));
		return 1;
	}
	return out;
}

// ---- fake coordinator -------------------------------------------------------

// The first word of the permit file ("grant" when there is none).
static void
permit_mode(const char *path, char *buf, size_t n)
{
	FILE *f = path ? fopen(path, "r") : NULL;

	snprintf(buf, n, "grant");
	if (f == NULL)
		return;
	if (fscanf(f, "%31s", buf) != 1)
		snprintf(buf, n, "grant");
	fclose(f);
}

// Fills the answer to a permit; returns false for "silent".
static bool
answer_permit(const struct opts *o, const struct cm_msg *m,
    struct cm_msg_reply *r, bool *unknown_done)
{
	char mode[32];

	permit_mode(o->permit_file, mode, sizeof(mode));
	if (strcmp(mode, "unknown-once") != 0)
		*unknown_done = false;
	if (strcmp(mode, "silent") == 0)
		return false;
	if (strcmp(mode, "refuse") == 0) {
		r->ok = false;
		r->code = -EPERM;
		snprintf(r->message, sizeof(r->message), "agent's own restart "
		    "refused:rate_service: too many restarts of %s (agent "
		    "said: %.200s)", m->u.permit.service, m->u.permit.reason);
	} else if (strcmp(mode, "undecided") == 0) {
		r->ok = false;
		r->code = -ETIMEDOUT;
		snprintf(r->message, sizeof(r->message), "the coordinator "
		    "could not decide in time");
	} else if (strcmp(mode, "unknown") == 0 ||
	    (strcmp(mode, "unknown-once") == 0 && !*unknown_done)) {
		*unknown_done = true;
		r->ok = false;
		r->code = -ENOENT;
		snprintf(r->message, sizeof(r->message), "unknown node: "
		    "register first");
	} else {
		snprintf(r->message, sizeof(r->message), "agent's own restart "
		    "permitted: %.200s", m->u.permit.reason);
	}
	return true;
}

static void
serve_one(const struct opts *o, nng_socket s, nng_msg *in,
    long long *heartbeats, bool *unknown_done)
{
	bool answer = true;
	struct cm_msg m, r;
	cJSON *j = cJSON_CreateObject(), *b = cJSON_CreateObject();
	nng_msg *out = NULL;
	char err[256];
	int rv;

	memset(&r, 0, sizeof(r));
	r.version = CM_PROTO_VERSION;
	rv = cm_msg_decode(&m, nng_msg_body(in), nng_msg_len(in), err,
	    sizeof(err));
	if (rv < 0) {
		cJSON_AddStringToObject(j, "type", "undecodable");
		cJSON_AddStringToObject(j, "error", err);
		r.type = CM_MSG_ERROR;
		snprintf(r.u.error.code, sizeof(r.u.error.code), "bad_frame");
		snprintf(r.u.error.message, sizeof(r.u.error.message), "%s",
		    err);
	} else {
		cJSON_AddStringToObject(j, "type", cm_msg_type_name(m.type));
		cJSON_AddNumberToObject(j, "id", (double)m.id);
		body_json(b, &m);
		r.type = CM_MSG_REPLY;
		r.id = m.id;
		r.u.reply.ok = true;
		if (m.type == CM_MSG_PERMIT)
			answer = answer_permit(o, &m, &r.u.reply, unknown_done);
		if (m.type == CM_MSG_HEARTBEAT && ++*heartbeats == o->forget) {
			r.u.reply.ok = false;
			r.u.reply.code = -ENOENT;
			snprintf(r.u.reply.message, sizeof(r.u.reply.message),
			    "unknown node %s", m.u.hb.node);
		}
		cm_msg_clear(&m);
	}
	cJSON_AddItemToObject(j, "body", b);
	print_json(j);
	if (answer && to_nng(&r, &out) == 0 && nng_sendmsg(s, out, 0) != 0)
		nng_msg_free(out);
}

static int
serve(const struct opts *o)
{
	long long n = 0, heartbeats = 0;
	bool unknown_done = false;
	nng_socket s;
	int rv;

	rv = nng_rep0_open(&s);
	if (rv == 0)
		rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ,
		    CM_MSG_MAX_FRAME);
	if (rv == 0)
		rv = nng_listen(s, o->url, NULL, 0);
	if (rv != 0) {
		fprintf(stderr, "reflex-send: listen %s: %s\n", o->url,
		    nng_strerror(rv));
		return 1;
	}
	printf("{\"type\":\"listening\"}\n");
	fflush(stdout);
	while (o->count == 0 || n < o->count) {
		nng_msg *in = NULL;

		rv = nng_recvmsg(s, &in, 0);
		if (rv != 0)
			break;
		serve_one(o, s, in, &heartbeats, &unknown_done);
		nng_msg_free(in);
		n++;
	}
	nng_close(s);
	return 0;
}

// ---- main --------------------------------------------------------------

static int
number(const char *s, long long *ret)
{
	char *end;

	errno = 0;
	*ret = strtoll(s, &end, 10);
	return errno || *end || *ret < 0 || *ret > 0xffffffffLL ? -1 : 0;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "action-id", required_argument, NULL, 'a' },
		{ "wait", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "forget", required_argument, NULL, 'f' },
		{ "permit-file", required_argument, NULL, 'p' },
		{ "secret", required_argument, NULL, 's' },
		{ "skew-ms", required_argument, NULL, 'k' },
		{ "twice", no_argument, NULL, '2' },
		{ NULL, 0, NULL, 0 },
	};
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'r')
			o->reason = optarg;
		else if (c == 't')
			bad |= number(optarg, &o->timeout_ms);
		else if (c == 'a')
			bad |= number(optarg, &o->action_id);
		else if (c == 'w')
			bad |= number(optarg, &o->wait_ms);
		else if (c == 'n')
			bad |= number(optarg, &o->count);
		else if (c == 'f')
			bad |= number(optarg, &o->forget);
		else if (c == 'p')
			o->permit_file = optarg;
		else if (c == 's')
			o->secret = optarg;
		else if (c == 'k')
			bad |= number(optarg, &o->skew_ms);
		else if (c == '2')
			o->twice = true;
		else
			bad = -1;
	}
	if (bad || argc - optind < 2)
		return -1;
	o->url = argv[optind];
	o->mode = argv[optind + 1];
	o->pos = argv + optind + 2;
	o->npos = argc - optind - 2;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { .wait_ms = 15000 };

	if (parse(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	if (strcmp(o.mode, "serve") == 0)
		return o.npos == 0 ? serve(&o) : 2;
	return client(&o);
}
