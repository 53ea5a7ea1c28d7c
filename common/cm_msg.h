// SPDX-License-Identifier: MIT
// cm_msg: the wire protocol between reflex-coordinator and reflex-agent.
//
// Every nng message is exactly one msgpack map:
//
//   { "v": 1, "type": "<name>", "id": <uint64 request id>, "body": { ... } }
//
// Requests and their replies travel over nng req/rep. The agent sends
// "register" and "heartbeat" to the coordinator; the coordinator sends
// "command" to an agent; the local CLI sends "status" to its agent. Every
// request is answered by "reply" (ok/code/message) or, when the frame could
// not be understood at all, by "error". Replies carry the request's id.
//
// Decoding never trusts the wire: a frame larger than the frame limit,
// truncated, with trailing bytes, nested deeper than the depth limit, with
// a length that exceeds the bytes left, of an unknown version or type, with
// a missing or wrongly typed field, a string that is not UTF-8, or a name
// that is not a valid name is rejected with an error code and a message;
// nothing is allocated from a length read off the wire before that length
// has been checked against the bytes present.
#ifndef CM_MSG_H
#define CM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_conf.h"

#define CM_PROTO_VERSION 1
#define CM_MSG_MAX_FRAME (256 * 1024)
// The NNG_OPT_RECVMAXSZ to set on reflex sockets. nng counts the 4-byte
// req/rep header in that limit and drops a larger message without a word
// (over TCP it closes the connection), so a limit of CM_MSG_MAX_FRAME
// would lose valid frames within 4 bytes of the limit, and the sender of
// an oversize one would get no answer. With twice the frame limit nng
// passes both, and cm_msg_decode refuses the oversize frame (-EMSGSIZE),
// which the receiver answers with a "too_large" error.
#define CM_MSG_RECV_MAX (2 * CM_MSG_MAX_FRAME)
#define CM_MSG_MAX_DEPTH 16
#define CM_MSG_MAX_WORKLOADS 1024
#define CM_NAME_MAX 64	    // node, service, instance, action names
#define CM_ADDR_MAX 256	    // nng URLs and host:port
#define CM_TEXT_MAX 1024    // reasons and messages
#define CM_STATUS_MAX (256 * 1024) // status JSON document

// The limits above are the ceilings: what the encoder writes at most and
// what the structs hold. What a process accepts from the wire can be set
// lower at run time (config key wire_limits:, struct cm_msg_limits); the
// floors keep the protocol's own frames decodable: a register frame nests
// 4 containers deep, error codes and actions are names of up to 19 bytes,
// tcp://255.255.255.255:65535 is 27 bytes, and error replies carry
// reasons of up to about 200 bytes.
#define CM_MSG_MIN_FRAME 1024
#define CM_MSG_MIN_DEPTH 4
#define CM_MSG_MIN_NAME_LEN 32
#define CM_MSG_MIN_ADDR_LEN 32
#define CM_MSG_MIN_TEXT_LEN 256

enum cm_msg_type {
	CM_MSG_REGISTER = 1, // agent -> coordinator
	CM_MSG_HEARTBEAT,    // agent -> coordinator
	CM_MSG_COMMAND,	     // coordinator -> agent
	CM_MSG_REPLY,	     // answer to any request
	CM_MSG_ERROR,	     // answer to an undecodable request
	CM_MSG_STATUS,	     // CLI -> agent (reply carries the JSON)
	CM_MSG_PERMIT,	     // agent -> coordinator: may I restart?
};

// One supervised instance as an agent announces it.
struct cm_workload {
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];
	char addr[CM_ADDR_MAX]; // "127.0.0.1:18081"; what Prometheus calls
				// the instance label
	bool healthy;
};

struct cm_msg_register {
	char node[CM_NAME_MAX];
	char addr[CM_ADDR_MAX];	   // the agent's command URL (nng)
	char runtime[CM_NAME_MAX]; // "process" or "kubernetes"
	struct cm_workload *workloads; // owned by the cm_msg
	size_t n_workloads;
};

struct cm_msg_heartbeat {
	char node[CM_NAME_MAX];
	uint64_t seq;
	uint32_t unhealthy; // instances currently failing probes
};

struct cm_msg_command {
	uint64_t action_id;		// coordinator's journal id
	char action[CM_NAME_MAX];	// "restart", "clear_cache", ...
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];	// "" = every instance of service
	char reason[CM_TEXT_MAX];
	uint32_t timeout_ms;
};

// Permission request from an agent before a local restart.
struct cm_msg_permit {
	char node[CM_NAME_MAX];
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];
	char reason[CM_TEXT_MAX];
};

struct cm_msg_reply {
	bool ok;
	int32_t code;		     // 0 or a negative errno
	char message[CM_TEXT_MAX];
	char *json;		     // optional payload (status); owned
};

struct cm_msg_error {
	char code[CM_NAME_MAX];	   // "bad_frame", "bad_version", ...
	char message[CM_TEXT_MAX];
};

struct cm_msg {
	uint32_t version;
	enum cm_msg_type type;
	uint64_t id;
	// Optional freshness stamp for authenticated channels (cm_auth.h):
	// sender's wall clock in ms and a random nonce; 0/0 = not stamped.
	uint64_t ts;
	uint64_t nonce;
	union {
		struct cm_msg_register reg;
		struct cm_msg_heartbeat hb;
		struct cm_msg_command cmd;
		struct cm_msg_permit permit;
		struct cm_msg_reply reply;
		struct cm_msg_error error;
	} u;
};

// What cm_msg_decode accepts, each at most the ceiling and at least the
// floor above (int64_t so that cm_conf binds the struct directly). A
// breach is refused like a breach of the ceiling, with the same error
// (-EMSGSIZE for the frame, -EBADMSG for the depth, -EINVAL for the
// workloads and the strings) and a reason that names the limit and its
// config key, e.g. "body.reason: 300 bytes, limit 255
// (wire_limits.max_text_len)".
struct cm_msg_limits {
	int64_t max_frame;	// bytes of one frame
	int64_t max_depth;	// nested maps and arrays
	int64_t max_workloads;	// entries of a register's workloads
	int64_t max_name_len;	// bytes of a name (node, service, ...)
	int64_t max_addr_len;	// bytes of an address (addr fields)
	int64_t max_text_len;	// bytes of a text (reason, message)
};

// The ceilings, which are also the defaults.
extern const struct cm_msg_limits cm_msg_default_limits;

// cm_conf table of struct cm_msg_limits (keys max_frame, max_depth, ...,
// with the defaults and the floor..ceiling bounds), for a config file's
// wire_limits: section.
extern const struct cm_conf_field cm_msg_limits_fields[];

// Sets the limits cm_msg_decode, cm_msg_check_frame and cm_msg_recv_max
// apply in this process; NULL restores the defaults. Returns 0, or
// -EINVAL with the out-of-bounds key in err (may be NULL), leaving the
// limits as they were. Not thread-safe: call it once at startup, before
// any thread decodes (the limits are then read without locks). Copies l.
int cm_msg_set_limits(const struct cm_msg_limits *l, char *err,
    size_t errlen);

// The limits in force (borrowed; valid until the next cm_msg_set_limits).
const struct cm_msg_limits *cm_msg_limits(void);

// The NNG_OPT_RECVMAXSZ for reflex sockets under the limits in force:
// twice max_frame, for the reason given at CM_MSG_RECV_MAX.
size_t cm_msg_recv_max(void);

// Encodes `m` into a new buffer. On success returns 0 and *ret_buf (free
// with free()) and *ret_len; -EINVAL if a field does not fit the limits,
// -ENOMEM on allocation failure. Never blocks; any thread.
// Clarifications: the encoder applies exactly the field rules the decoder
// applies (see the schema at the top of cm_msg.c), always writes
// CM_PROTO_VERSION whatever m->version holds, and returns -EMSGSIZE when
// the encoded frame would exceed CM_MSG_MAX_FRAME (possible with many
// long workloads or a big reply json). Borrows m.
int cm_msg_encode(const struct cm_msg *m, void **ret_buf, size_t *ret_len)
    __attribute__((warn_unused_result));

// Takes `len` bytes of an encoded frame, in order; returns 0, or nonzero
// to stop the encoding (it then fails with -ENOMEM).
typedef int (*cm_msg_write_fn)(void *arg, const char *buf, size_t len);

// Encodes `m` exactly as cm_msg_encode does, but hands the bytes to
// `write` in order (e.g. straight into a transport message) instead of
// into a buffer of its own: gathered in pieces of up to 512 bytes (a
// frame that small takes one call), a longer string in a piece of its
// own. Returns 0 (with *ret_len the
// frame's size when ret_len is not NULL) or cm_msg_encode's errors; on
// error part of the frame may have been written: discard it. Borrows m;
// never blocks; any thread.
int cm_msg_encode_to(const struct cm_msg *m, cm_msg_write_fn write,
    void *arg, size_t *ret_len) __attribute__((warn_unused_result));

// Decodes one frame under the limits in force (cm_msg_set_limits). On
// success returns 0 and fills *m (release with cm_msg_clear). On failure
// returns a negative errno (-EMSGSIZE too large, -EBADMSG malformed or
// nested too deep, -EPROTO bad version or type, -EINVAL bad field, too
// long a string, too many workloads) and writes a one-line reason into
// err; *m is left cleared. Borrows buf.
int cm_msg_decode(struct cm_msg *m, const void *buf, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// The same under the limits `lim` (borrowed; NULL: the limits in force),
// which must be within the bounds cm_msg_set_limits checks (values out of
// them are clamped to the ceiling or the floor).
int cm_msg_decode_lim(struct cm_msg *m, const void *buf, size_t len,
    const struct cm_msg_limits *lim, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// The first, allocation-free stage of cm_msg_decode: walks the raw bytes
// of one frame checking that it is exactly one well-formed msgpack object
// (every length and element count within the bytes left, nesting at most
// max_depth containers, no 0xc1 byte, no trailing bytes) under the limits
// in force. Returns 0, -EMSGSIZE when len > max_frame, or -EBADMSG (also
// for an empty frame) with a one-line reason in err (may be NULL). Knows
// nothing of the reflex schema. Borrows buf; pure; any thread.
int cm_msg_check_frame(const void *buf, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// The same under `lim` (NULL: the limits in force), as cm_msg_decode_lim.
int cm_msg_check_frame_lim(const void *buf, size_t len,
    const struct cm_msg_limits *lim, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Frees what decode allocated inside m (workloads, json) and zeroes it.
void cm_msg_clear(struct cm_msg *m);

// Wire names of the types ("register", ...); NULL for unknown.
const char *cm_msg_type_name(enum cm_msg_type t);

// True for 1..CM_NAME_MAX-1 bytes of [A-Za-z0-9._-], starting and ending
// with an alphanumeric: safe in logs, file names and API paths.
bool cm_name_valid(const char *s);

// True if the len bytes at s are well-formed UTF-8 without NUL.
bool cm_utf8_valid(const char *s, size_t len);

#endif
