// SPDX-License-Identifier: MIT
// cm_wire: what both ends of the agent channel (coordinator and agent) do
// the same way: build a frame into an nng message, and answer a frame
// that cannot be decoded.
#ifndef CM_WIRE_H
#define CM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

// How cm_wire_close ended.
enum cm_wire_closed {
	CM_WIRE_CLOSED,	 // nng_close returned
	CM_WIRE_LEFT,	 // it did not within wait_ms: left behind
	CM_WIRE_SKIPPED, // not tried: an earlier close was left behind
};

// How long a socket's close may take before it is left behind: it takes
// milliseconds, unless libnng hangs in it (below).
#define CM_WIRE_CLOSE_WAIT_MS 2000

// nng_close(s), waiting at most wait_ms for it to return. libnng 1.5.2
// can block in nng_close for good when a peer's message arrives while
// the socket closes: a pipe's receive is aborted between the start and
// the scheduling of its transport read, the abort is lost, and libnng's
// one reaper thread waits for that receive for ever (later nng releases
// changed how a stop treats such an operation: nng issue 1813). Such a
// close is left behind in a thread of its own; every later close would
// wait on the same reaper, so once one is left behind later calls do not
// try (CM_WIRE_SKIPPED). Unless CM_WIRE_CLOSED, nng still holds the
// socket and the caller must not free what its callbacks may reach. Any
// thread.
enum cm_wire_closed cm_wire_close(nng_socket s, int64_t wait_ms);

// True once a close was left behind in this process. libnng's reaper is
// then stuck: besides closes, it never finishes a connection that
// ended, so a socket whose connection drops does not dial again (seen
// with libnng 1.5.2: a fresh socket connects). Any thread.
// LeakSanitizer's exit check is then off (cm_wire.c): what the stuck
// threads hold can no longer be freed, and is not reflex's leak.
bool cm_wire_wedged(void);

#endif
