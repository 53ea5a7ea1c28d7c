// SPDX-License-Identifier: MIT
// agent_cmd: the agent's nng rep servers. One server is the command
// endpoint (`listen`, answers "command"), another the status socket
// (ipc://<status_socket>, answers only "status"). Each server runs
// several contexts so several requests can be in flight.
//
// Frames are decoded on nng's threads. What cannot be decoded is answered
// at once with an "error" message (and counted and logged with its size
// and first 16 bytes); a well-formed message of a type this server does
// not serve is answered with a reply ok=false code=-EPROTO. Everything
// else goes to the server's direct function, if it has one, which may
// answer it right there; what it leaves is queued for the main loop,
// which takes requests with agent_cmd_next() and answers each exactly
// once with agent_cmd_reply().
//
// A server opened with a shared secret (opts.auth: the command server
// when coordinator_secret_file is set) opens every frame with
// cm_auth_decode and stamps and seals every answer. A frame that fails
// it is not executed: it is answered with a sealed "error" of code
// "unauthenticated" (no or wrong MAC) or "replayed" (stale, or a nonce
// seen before), logged, and counted (agent_cmd_unauthenticated).
#ifndef AGENT_CMD_H
#define AGENT_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_auth.h"
#include "cm_msg.h"

// The command server's contexts bound the requests in flight to one agent
// (libnng's rep socket reads no further request while none is free). 64:
// a burst of commands is taken by one pass of the main loop, not eight per
// round trip; each costs a decoded request (~1.3 KB) and an nng context.
#define AGENT_CMD_CONTEXTS 64
#define AGENT_STATUS_CONTEXTS 2

struct agent_cmd_srv;
struct agent_cmd_ctx;

// Called from nng threads when a request was queued. Must be thread-safe
// and quick (the agent passes agent_http_wakeup).
typedef void (*agent_cmd_wake_fn)(void *arg);

// Called on the nng thread that decoded a served request, before it is
// queued: answers it there (agent_cmd_reply, exactly once, before
// returning) and returns true, or answers nothing and returns false (the
// request is then queued for the main loop). Must not wait long: it holds
// one of libnng's few task threads (the agent waits at most
// AGENT_DIRECT_WAIT_US for the lock on its state).
typedef bool (*agent_cmd_direct_fn)(void *arg, struct agent_cmd_ctx *c);

struct agent_cmd_opts {
	const char *name;	// "command" or "status", for logs
	const char *url;	// tcp://... or ipc://...
	enum cm_msg_type serves; // CM_MSG_COMMAND or CM_MSG_STATUS
	unsigned contexts;
	const char *ipc_path;	// status socket: file to prepare (mode
				// 0600, parent created, stale file removed)
	const char *refusal;	// message for requests of other types
	struct cm_auth *auth;	// borrowed for the server's life; NULL =
				// frames are neither opened nor sealed
	agent_cmd_wake_fn wake;
	void *wake_arg;
	agent_cmd_direct_fn direct; // NULL: every request is queued
	void *direct_arg;
};

// Opens the socket, listens and starts receiving. Returns 0 and *ret
// (close with agent_cmd_close), or a negative errno with a reason in err
// (e.g. the address is in use). Borrows opts' strings only during the
// call. Main thread.
int agent_cmd_open(const struct agent_cmd_opts *opts,
    struct agent_cmd_srv **ret, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Takes the next queued request, or NULL. The context stays reserved
// until agent_cmd_reply(). Main thread.
struct agent_cmd_ctx *agent_cmd_next(struct agent_cmd_srv *s);

// The decoded request of a context taken with agent_cmd_next() or given
// to the direct function. Borrowed until agent_cmd_reply().
const struct cm_msg *agent_cmd_request(const struct agent_cmd_ctx *c);

// Answers the request with `reply` (borrowed during the call; its
// version and id are set from the request) and releases the context for
// the next request. Logs the one line of a command, "cmd.done" with the
// request's action, action_id, service, instance and reason and the
// answer's ok, code and message (info; debug for "check"). Never blocks.
// The thread that has the context: the main thread, or the direct
// function's; called from the direct function, it only encodes the
// answer, and the line is logged and the answer sent once the function
// has returned (so neither the log's write nor the socket's send happens
// under a lock the function holds).
void agent_cmd_reply(struct agent_cmd_ctx *c, const struct cm_msg *reply);

// Shortcut: answers with a reply ok/code/message (printf format).
void agent_cmd_replyf(struct agent_cmd_ctx *c, bool ok, int code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

// Frames that could not be decoded / requests of a type not served /
// frames refused by the channel authentication (not counted as bad).
uint64_t agent_cmd_bad_frames(const struct agent_cmd_srv *s);
uint64_t agent_cmd_refused(const struct agent_cmd_srv *s);
uint64_t agent_cmd_unauthenticated(const struct agent_cmd_srv *s);

// Stops receiving, drops queued requests without answering, closes the
// socket and frees everything; for the ipc server removes the socket
// file. Waits for running callbacks. NULL-safe. Main thread.
void agent_cmd_close(struct agent_cmd_srv *s);

// Writes a message's first (up to 16) bytes as hex into buf. Pure.
void agent_cmd_hex16(const void *data, size_t len, char *buf, size_t n);

// The coordinator channel's framing, shared by the command server and
// the coordinator link. Encodes m into a new buffer (free with free());
// with auth, m is stamped first (its ts and nonce are overwritten) and
// the frame sealed (cm_auth_encode). Returns 0 or cm_msg_encode's /
// cm_auth_encode's errors. Any thread.
int agent_wire_encode(struct cm_auth *auth, struct cm_msg *m, void **ret_buf,
    size_t *ret_len) __attribute__((warn_unused_result));

// Decodes one frame: cm_auth_decode with auth (-EACCES: no or wrong MAC,
// -ESTALE: stale or replayed), cm_msg_decode without. Returns 0 with *m
// filled (cm_msg_clear it) or a negative errno with the reason in err.
// Any thread.
int agent_wire_decode(struct cm_auth *auth, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen) __attribute__((warn_unused_result));

// The error code an answer carries for a frame wire_decode refused is
// cm_wire_error_code (common/cm_wire.h), the coordinator's too.

#endif
