// SPDX-License-Identifier: MIT
// agent_link: the agent's connection to the coordinator. One nng req
// socket dials `coordinator` without blocking (nng reconnects by itself);
// one exchange at a time runs on a req context with an aio:
//
//   "register"  {node, addr = advertised URL, runtime, workloads[]}  at
//               start, after a failed exchange, when a heartbeat reply
//               says ok=false code=-ENOENT (the coordinator forgot the
//               node), and when the runtime's workloads changed
//               (agent_link_update);
//   "heartbeat" {node, seq, unhealthy} every heartbeat_interval.
//
// A reply is "reply" with the request's id; anything else, no answer
// within AGENT_LINK_TIMEOUT_MS of the start of the exchange, or a send
// error fails the exchange, marks the link down and makes the next
// exchange a register (heartbeat_interval later). Up/down changes are
// logged once each, not on every failure.
//
// Permit requests ("permit" {node, service, instance, reason}) travel on
// a second req context of the same socket, one at a time, so a permit
// never waits behind a heartbeat. Their outcome does not change the
// link's up/down state: the agent (agent_permit.c) decides what a
// missing answer means.
//
// With a shared secret (coordinator_secret_file) every request is
// stamped and sealed and every answer opened with cm_auth_decode; an
// answer that fails it fails the exchange like an undecodable one (a
// coordinator with another secret, or none, never registers us).
//
// Threads: all functions run on the main loop thread. Registers and
// heartbeats use the socket itself, without an aio: the loop sends with
// NNG_FLAG_NONBLOCK and polls the socket's NNG_OPT_RECVFD (always in its
// poll set) for the answer; a request no connection can take yet waits
// with NNG_OPT_SENDFD in the poll set. No callback of ours runs on nng's
// task threads for them, so an exchange costs libnng's own wake-ups plus
// the loop's (the heartbeat deadline and the answer). The exchange's
// deadline is the loop's, and the req socket has no resend timer, so
// nng's timer threads stay asleep. An exchange whose request went out
// and got no answer in time replaces the socket (nng dials again at
// once; a permit in flight then ends unanswered). The permit context's
// aio callback only raises a flag and calls the wake function.
#ifndef AGENT_LINK_H
#define AGENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"
#include "agent_http.h"
#include "agent_proc.h"
#include "cm_auth.h"

#define AGENT_LINK_TIMEOUT_MS 5000

struct agent_link;

// What the status view shows.
struct agent_link_view {
	const char *url;	// borrowed from the link
	bool connected;		// the last exchange succeeded
	bool down;		// the last exchange failed (not just unknown
				// yet, as before the first one ends)
	bool registered;	// the coordinator accepted our register
	int64_t last_ok_wall_ms; // cm_now_ms() of the last success, 0 never
	uint64_t exchanges, failures;
	const char *last_error; // borrowed; "" if none
};

// Opens the req socket and starts dialing conf->coordinator. Borrows
// conf, auth (NULL: the channel is not sealed) and http (the loop's poll
// set, where the link keeps its descriptors; close the link first) for
// the link's life. `wake` is called from nng threads when a permit step
// completes.
// Returns 0 and *ret (close with agent_link_close) or a negative errno
// with a reason in err.
int agent_link_open(const struct agent_conf *conf, struct cm_auth *auth,
    struct agent_http *http, void (*wake)(void *), void *wake_arg,
    struct agent_link **ret, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// True if agent_http_poll() reported `tag` for one of the link's
// descriptors (agent_link_tick then does what is due). NULL-safe.
bool agent_link_owns_tag(const struct agent_link *l, const void *tag);

// What a register announces and a heartbeat counts, from the runtime.
struct agent_link_src {
	const char *runtime; // "process" or "kubernetes"
	// A new array of the workloads (free()) and its count; 0 or -ENOMEM.
	int (*workloads)(void *arg, struct cm_workload **ret, size_t *ret_n);
	unsigned (*unhealthy)(void *arg); // workloads not healthy
	void *arg;
};

// Advances a completed exchange step and starts the next exchange when
// due, and fails an exchange that passed its deadline. Reads the
// workloads from src (borrowed during the call) for a register. Returns
// the monotonic time it next needs to run.
int64_t agent_link_tick(struct agent_link *l, const struct agent_link_src *src,
    int64_t now);

// The workloads changed: the next exchange is a register (at once if the
// link is idle); the agent stays registered meanwhile. Main thread.
void agent_link_update(struct agent_link *l, int64_t now);

// What became of a permit request.
struct agent_link_permit_ans {
	bool answered; // a reply came: ok, code, message are valid
	bool ok;
	int code;      // 0 or a negative errno
	char message[CM_TEXT_MAX];
	char why[256]; // !answered: why not ("no answer within ...")
};

// Sends a permit request (req is copied; its node is set from the
// configuration) and waits at most timeout_ms for the answer, without
// blocking. Returns 0 (the outcome comes from agent_link_permit_take),
// -EBUSY while another permit is in flight, or -ENOMEM / -EINVAL when it
// could not be built. Main thread.
int agent_link_permit_start(struct agent_link *l,
    const struct cm_msg_permit *req, int64_t timeout_ms, int64_t now)
    __attribute__((warn_unused_result));

// True, with the outcome in *ret, once per finished permit request
// (answered or not); false while one is in flight or none was sent.
// Call after agent_link_tick. Main thread.
bool agent_link_permit_take(struct agent_link *l,
    struct agent_link_permit_ans *ret);

// True while a permit request is in flight.
bool agent_link_permit_busy(const struct agent_link *l);

// The coordinator does not know this node: register again as the next
// exchange, at once if the link is idle. Main thread.
void agent_link_reregister(struct agent_link *l, int64_t now);

// Fills v (pointers borrowed from l until the next tick).
void agent_link_view(const struct agent_link *l, struct agent_link_view *v);

// Aborts the exchange in flight and closes the socket. NULL-safe.
void agent_link_close(struct agent_link *l);

#endif
