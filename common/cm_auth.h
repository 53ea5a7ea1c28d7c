// SPDX-License-Identifier: MIT
// cm_auth: a shared secret that authenticates every message between the
// coordinator and its agents.
//
// A sealed frame is the msgpack message followed by a 32-byte
// HMAC-SHA256 of it under the secret. The message carries the sender's
// clock (ts, ms) and a random nonce; the receiver refuses a frame whose
// MAC does not verify (altered, or from someone without the secret), one
// whose ts is outside the window (a stale replay), and one whose nonce it
// has already seen within the window (a quick replay). So an agent obeys
// only a coordinator that knows the secret, and the coordinator accepts
// registrations only from agents that prove it.
#ifndef CM_AUTH_H
#define CM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cm_msg.h"

#define CM_AUTH_MAC_LEN 32
#define CM_AUTH_WINDOW_MS 60000 // accepted clock difference and replay memory
#define CM_AUTH_NONCES 8192	// nonces remembered (a ring)

struct cm_auth;

// Reads the secret from `path` (16..4096 bytes; trailing newline ignored;
// the file must not be readable by group or others). Returns 0 or a
// negative errno with the reason naming the file.
int cm_auth_new(struct cm_auth **ret, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void cm_auth_free(struct cm_auth *a);

// Stamps m with the current time and a fresh random nonce.
void cm_auth_stamp(struct cm_msg *m);

// Encodes m (stamp it first) and appends the MAC. On success *ret_buf
// (free()) and *ret_len. Thread-safe.
int cm_auth_encode(struct cm_auth *a, const struct cm_msg *m, void **ret_buf,
    size_t *ret_len) __attribute__((warn_unused_result));

// The MAC of an encoded frame (`len` bytes at buf, from a stamped m):
// the frame followed by `out` is what cm_auth_encode would have produced,
// for a caller that encoded the frame itself (cm_msg_encode_to). Returns
// 0 or -EIO. Thread-safe.
int cm_auth_seal(struct cm_auth *a, const void *buf, size_t len,
    unsigned char out[CM_AUTH_MAC_LEN]) __attribute__((warn_unused_result));

// Verifies the MAC of a sealed frame, decodes it, and checks ts and the
// nonce against the window and the recent nonces. Returns 0 with *m
// filled (cm_msg_clear it), -EACCES for a bad or missing MAC, -ESTALE for
// a stale or replayed frame, or cm_msg_decode's errors; reason in err.
// Thread-safe.
int cm_auth_decode(struct cm_auth *a, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
