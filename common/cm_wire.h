// SPDX-License-Identifier: MIT
// cm_wire: what both ends of the agent channel (coordinator and agent) do
// the same way: build a frame into an nng message, and answer a frame
// that cannot be decoded.
#ifndef CM_WIRE_H
#define CM_WIRE_H

#include <stddef.h>

#include <nng/nng.h>

struct cm_auth;
struct cm_msg;

// Encodes m straight into a new nng message (*ret, the caller's: to send
// or to free), stamped and sealed when `auth` is set (NULL: a plain
// channel). `reserve` bytes are allocated at once, so a frame that fits
// costs one allocation. Returns 0 or a negative errno.
int cm_wire_msg(struct cm_auth *auth, struct cm_msg *m, size_t reserve,
    nng_msg **ret);

// The code an "error" answer carries for a frame that cm_msg_decode or
// cm_auth_decode refused with `rv`:
//   -EACCES   "unauthenticated"      no or wrong MAC
//   -ESTALE   "replayed"             stale or already seen
//   -EMSGSIZE "too_large"            over CM_MSG_MAX_FRAME
//   -EPROTO   "bad_version_or_type"  unknown version or message type
//   -EINVAL   "bad_field"            a well-formed frame of a known type
//                                    with a field outside its rules
//   anything else (-EBADMSG ...) "bad_frame"
// Pure; returns a static string; any thread.
const char *cm_wire_error_code(int rv);

#endif
