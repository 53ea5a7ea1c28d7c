// SPDX-License-Identifier: MIT
// cm_wire: frames and error codes of the agent channel.
#include "cm_wire.h"

#include <errno.h>

#include "cm_auth.h"
#include "cm_msg.h"

static int
msg_append(void *arg, const char *buf, size_t len)
{
	return nng_msg_append(arg, buf, len) == 0 ? 0 : -1;
}

int
cm_wire_msg(struct cm_auth *auth, struct cm_msg *m, size_t reserve,
    nng_msg **ret)
{
	unsigned char mac[CM_AUTH_MAC_LEN];
	nng_msg *msg;
	int rv;

	// One allocation of `reserve` bytes, emptied: the frame is appended
	// into it (append grows it when the frame is larger).
	if (nng_msg_alloc(&msg, reserve) != 0)
		return -ENOMEM;
	nng_msg_clear(msg);
	if (auth != NULL)
		cm_auth_stamp(m);
	rv = cm_msg_encode_to(m, msg_append, msg, NULL);
	if (rv == 0 && auth != NULL) {
		rv = cm_auth_seal(auth, nng_msg_body(msg), nng_msg_len(msg),
		    mac);
		if (rv == 0 && nng_msg_append(msg, mac, sizeof(mac)) != 0)
			rv = -ENOMEM;
	}
	if (rv < 0) {
		nng_msg_free(msg);
		return rv;
	}
	*ret = msg;
	return 0;
}

const char *
cm_wire_error_code(int rv)
{
	switch (rv) {
	case -EACCES:
		return "unauthenticated";
	case -ESTALE:
		return "replayed";
	case -EMSGSIZE:
		return "too_large";
	case -EPROTO:
		return "bad_version_or_type";
	case -EINVAL:
		return "bad_field";
	default:
		return "bad_frame";
	}
}
