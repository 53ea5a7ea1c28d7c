// SPDX-License-Identifier: MIT
// cm_wire: what both ends of the agent channel (coordinator and agent)
// answer the same way when a frame cannot be decoded.
#ifndef CM_WIRE_H
#define CM_WIRE_H

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
