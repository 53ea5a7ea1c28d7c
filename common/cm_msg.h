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
// Decoding never trusts the wire: a frame larger than CM_MSG_MAX_FRAME,
// truncated, with trailing bytes, nested deeper than CM_MSG_MAX_DEPTH, with
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
// `write` as they are produced (e.g. straight into a transport message)
// instead of into a buffer of its own. Returns 0 (with *ret_len the
// frame's size when ret_len is not NULL) or cm_msg_encode's errors; on
// error part of the frame may have been written: discard it. Borrows m;
// never blocks; any thread.
int cm_msg_encode_to(const struct cm_msg *m, cm_msg_write_fn write,
    void *arg, size_t *ret_len) __attribute__((warn_unused_result));

// Decodes one frame. On success returns 0 and fills *m (release with
// cm_msg_clear). On failure returns a negative errno (-EMSGSIZE too large,
// -EBADMSG malformed, -EPROTO bad version or type, -EINVAL bad field) and
// writes a one-line reason into err; *m is left cleared. Borrows buf.
int cm_msg_decode(struct cm_msg *m, const void *buf, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// The first, allocation-free stage of cm_msg_decode: walks the raw bytes
// of one frame checking that it is exactly one well-formed msgpack object
// (every length and element count within the bytes left, nesting at most
// CM_MSG_MAX_DEPTH containers, no 0xc1 byte, no trailing bytes). Returns 0,
// -EMSGSIZE when len > CM_MSG_MAX_FRAME, or -EBADMSG (also for an empty
// frame) with a one-line reason in err (may be NULL). Knows nothing of the
// reflex schema. Borrows buf; pure; any thread.
int cm_msg_check_frame(const void *buf, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));

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
