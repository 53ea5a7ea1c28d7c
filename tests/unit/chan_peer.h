// SPDX-License-Identifier: MIT
// chan_peer: an agent's side of one exchange with the coordinator's agent
// channel, for the unit tests that play agents on a req socket.
#ifndef CHAN_PEER_H
#define CHAN_PEER_H

#include <nng/nng.h>
#include <stdlib.h>

#include "cm_msg.h"

// Sends m on req socket s and decodes the answer into *ret (the caller
// clears it). Returns 0, or -1 when nothing decodable came back.
static inline int
chan_ask(nng_socket s, const struct cm_msg *m, struct cm_msg *ret)
{
	char err[256];
	void *buf, *in = NULL;
	size_t len, inlen = 0;
	int rv;

	if (cm_msg_encode(m, &buf, &len) != 0)
		return -1;
	rv = nng_send(s, buf, len, 0);
	free(buf);
	if (rv == 0)
		rv = nng_recv(s, &in, &inlen, NNG_FLAG_ALLOC);
	if (rv != 0)
		return -1;
	rv = cm_msg_decode(ret, in, inlen, err, sizeof(err));
	nng_free(in, inlen);
	return rv == 0 ? 0 : -1;
}

// chan_ask, then 0 only when the answer is a reply saying ok.
static inline int
chan_ok(nng_socket s, const struct cm_msg *m)
{
	struct cm_msg out = { 0 };
	int rv = chan_ask(s, m, &out) == 0 && out.type == CM_MSG_REPLY &&
	    out.u.reply.ok ? 0 : -1;

	cm_msg_clear(&out);
	return rv;
}

#endif
