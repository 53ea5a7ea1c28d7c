// SPDX-License-Identifier: MIT
// fuzz_msg: libFuzzer target for the wire codec (common/cm_msg.h).
//
// Every input goes through cm_msg_check_frame and cm_msg_decode. The two
// must agree: a frame the raw walk refuses is never decoded, and the walk
// never refuses with anything but -EMSGSIZE or -EBADMSG. A decoded
// message must encode again (the encoder applies the decoder's rules),
// and that encoding must pass the walk and decode to the same message.
// Under the lowest run-time limits (cm_msg_decode_lim) it decodes a subset
// of those frames, to the same messages.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cm_msg.h"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	return 0;
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
same(const struct cm_msg *a, const struct cm_msg *b)
{
	// ts 0 means "not stamped": the encoder then writes neither ts nor
	// nonce, whatever nonce holds.
	if (a->type != b->type || a->id != b->id || a->ts != b->ts ||
	    (a->ts != 0 && a->nonce != b->nonce))
		return false;
	switch (a->type) {
	case CM_MSG_REGISTER:
		if (!str_eq(a->u.reg.node, b->u.reg.node) ||
		    !str_eq(a->u.reg.addr, b->u.reg.addr) ||
		    !str_eq(a->u.reg.runtime, b->u.reg.runtime) ||
		    a->u.reg.n_workloads != b->u.reg.n_workloads)
			return false;
		for (size_t i = 0; i < a->u.reg.n_workloads; i++) {
			const struct cm_workload *x = &a->u.reg.workloads[i];
			const struct cm_workload *y = &b->u.reg.workloads[i];

			if (!str_eq(x->service, y->service) ||
			    !str_eq(x->instance, y->instance) ||
			    !str_eq(x->addr, y->addr) ||
			    x->healthy != y->healthy)
				return false;
		}
		return true;
	case CM_MSG_HEARTBEAT:
		return str_eq(a->u.hb.node, b->u.hb.node) &&
		    a->u.hb.seq == b->u.hb.seq &&
		    a->u.hb.unhealthy == b->u.hb.unhealthy;
	case CM_MSG_COMMAND:
		return a->u.cmd.action_id == b->u.cmd.action_id &&
		    str_eq(a->u.cmd.action, b->u.cmd.action) &&
		    str_eq(a->u.cmd.service, b->u.cmd.service) &&
		    str_eq(a->u.cmd.instance, b->u.cmd.instance) &&
		    str_eq(a->u.cmd.reason, b->u.cmd.reason) &&
		    a->u.cmd.timeout_ms == b->u.cmd.timeout_ms;
	case CM_MSG_PERMIT:
		return str_eq(a->u.permit.node, b->u.permit.node) &&
		    str_eq(a->u.permit.service, b->u.permit.service) &&
		    str_eq(a->u.permit.instance, b->u.permit.instance) &&
		    str_eq(a->u.permit.reason, b->u.permit.reason);
	case CM_MSG_REPLY:
		return a->u.reply.ok == b->u.reply.ok &&
		    a->u.reply.code == b->u.reply.code &&
		    str_eq(a->u.reply.message, b->u.reply.message) &&
		    str_eq(a->u.reply.json, b->u.reply.json);
	case CM_MSG_ERROR:
		return str_eq(a->u.error.code, b->u.error.code) &&
		    str_eq(a->u.error.message, b->u.error.message);
	case CM_MSG_STATUS:
		return true;
	}
	return false;
}

static void
check_fields(const struct cm_msg *m)
{
	FUZZ_CHECK(m->version == CM_PROTO_VERSION, "version %u", m->version);
	FUZZ_CHECK(cm_msg_type_name(m->type) != NULL, "type %d", m->type);
	switch (m->type) {
	case CM_MSG_REGISTER:
		FUZZ_CHECK(cm_name_valid(m->u.reg.node), "node");
		FUZZ_CHECK(m->u.reg.n_workloads <= CM_MSG_MAX_WORKLOADS,
		    "%zu workloads", m->u.reg.n_workloads);
		for (size_t i = 0; i < m->u.reg.n_workloads; i++) {
			FUZZ_CHECK(cm_name_valid(m->u.reg.workloads[i].service),
			    "workload service");
			FUZZ_CHECK(cm_name_valid(
			    m->u.reg.workloads[i].instance),
			    "workload instance");
		}
		break;
	case CM_MSG_HEARTBEAT:
		FUZZ_CHECK(cm_name_valid(m->u.hb.node), "node");
		break;
	case CM_MSG_COMMAND:
		FUZZ_CHECK(cm_name_valid(m->u.cmd.action), "action");
		FUZZ_CHECK(cm_name_valid(m->u.cmd.service), "service");
		FUZZ_CHECK(m->u.cmd.instance[0] == '\0' ||
		    cm_name_valid(m->u.cmd.instance), "instance");
		FUZZ_CHECK(cm_utf8_valid(m->u.cmd.reason,
		    strlen(m->u.cmd.reason)), "reason");
		break;
	case CM_MSG_PERMIT:
		FUZZ_CHECK(cm_name_valid(m->u.permit.node), "node");
		FUZZ_CHECK(cm_name_valid(m->u.permit.service), "service");
		FUZZ_CHECK(cm_name_valid(m->u.permit.instance), "instance");
		break;
	case CM_MSG_REPLY:
		FUZZ_CHECK(m->u.reply.code <= 0 && m->u.reply.code >= -4095,
		    "code %d", m->u.reply.code);
		break;
	case CM_MSG_ERROR:
		FUZZ_CHECK(cm_name_valid(m->u.error.code), "error code");
		break;
	case CM_MSG_STATUS:
		break;
	}
}

// The tightest run-time limits (wire_limits: at every floor).
static const struct cm_msg_limits floor_limits = {
	.max_frame = CM_MSG_MIN_FRAME, .max_depth = CM_MSG_MIN_DEPTH,
	.max_workloads = 1, .max_name_len = CM_MSG_MIN_NAME_LEN,
	.max_addr_len = CM_MSG_MIN_ADDR_LEN,
	.max_text_len = CM_MSG_MIN_TEXT_LEN,
};

// Lower limits accept a subset of what the defaults accept, decoded to
// the same message; what they refuse has a reason. def_rv and def are
// the default decode's result.
static void
check_floor(const uint8_t *data, size_t size, int def_rv,
    const struct cm_msg *def)
{
	struct cm_msg t;
	char err[256] = "";
	int rv;

	rv = cm_msg_decode_lim(&t, data, size, &floor_limits, err,
	    sizeof(err));
	if (rv < 0) {
		FUZZ_CHECK(rv == -EMSGSIZE || rv == -EBADMSG || rv == -EPROTO ||
		    rv == -EINVAL || rv == -ENOMEM, "decode_lim returned %d",
		    rv);
		FUZZ_CHECK(err[0] != '\0', "decode_lim error %d without "
		    "reason", rv);
		return;
	}
	FUZZ_CHECK(def_rv == 0, "accepted under the floor limits, refused "
	    "(%d) under the defaults", def_rv);
	FUZZ_CHECK(same(&t, def), "the floor limits decoded another message");
	cm_msg_clear(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_msg m, again;
	char err[256];
	void *buf = NULL;
	size_t len = 0;
	int walk, rv;

	err[0] = '\0';
	walk = cm_msg_check_frame(data, size, err, sizeof(err));
	FUZZ_CHECK(walk == 0 || walk == -EMSGSIZE || walk == -EBADMSG,
	    "check_frame returned %d", walk);
	FUZZ_CHECK(walk == 0 || err[0] != '\0', "refusal without a reason");

	memset(&m, 0xa5, sizeof(m)); // decode must not read *m
	err[0] = '\0';
	rv = cm_msg_decode(&m, data, size, err, sizeof(err));
	check_floor(data, size, rv, &m);
	if (rv < 0) {
		FUZZ_CHECK(rv == -EMSGSIZE || rv == -EBADMSG || rv == -EPROTO ||
		    rv == -EINVAL || rv == -ENOMEM, "decode returned %d", rv);
		FUZZ_CHECK(err[0] != '\0', "decode error %d without reason", rv);
		FUZZ_CHECK(walk == 0 || rv == walk, "walk said %d, decode %d",
		    walk, rv);
		cm_msg_clear(&m);
		return 0;
	}
	FUZZ_CHECK(walk == 0, "decoded a frame the walk refused (%d)", walk);
	check_fields(&m);

	rv = cm_msg_encode(&m, &buf, &len);
	FUZZ_CHECK(rv == 0, "a decoded message does not encode again: %d", rv);
	FUZZ_CHECK(len <= CM_MSG_MAX_FRAME, "encoded %zu bytes", len);
	FUZZ_CHECK(cm_msg_check_frame(buf, len, err, sizeof(err)) == 0,
	    "own encoding refused by the walk: %s", err);
	rv = cm_msg_decode(&again, buf, len, err, sizeof(err));
	FUZZ_CHECK(rv == 0, "own encoding does not decode: %s", err);
	FUZZ_CHECK(same(&m, &again), "round trip changed the message");
	cm_msg_clear(&again);
	free(buf);
	cm_msg_clear(&m);
	return 0;
}
