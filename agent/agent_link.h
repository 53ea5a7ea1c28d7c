// SPDX-License-Identifier: MIT
// agent_link: the agent's connection to the coordinator. One nng req
// socket dials `coordinator` without blocking (nng reconnects by itself);
// one exchange at a time runs on a req context with an aio:
//
//   "register"  {node, addr = listen URL, runtime, workloads[]}  at start,
//               after a failed exchange, and when a heartbeat reply says
//               ok=false code=-ENOENT (the coordinator forgot the node);
//   "heartbeat" {node, seq, unhealthy} every heartbeat_interval.
//
// A reply is "reply" with the request's id; anything else, a timeout
// (AGENT_LINK_TIMEOUT_MS) or a send error fails the exchange, marks the
// link down and makes the next exchange a register. Up/down changes are
// logged once each, not on every failure.
//
// Threads: all functions run on the main loop thread; the aio callback
// only raises a flag and calls the wake function.
#ifndef AGENT_LINK_H
#define AGENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"
#include "agent_proc.h"

#define AGENT_LINK_TIMEOUT_MS 5000

struct agent_link;

// What the status view shows.
struct agent_link_view {
	const char *url;	// borrowed from the link
	bool connected;		// the last exchange succeeded
	bool registered;	// the coordinator accepted our register
	int64_t last_ok_wall_ms; // cm_now_ms() of the last success, 0 never
	uint64_t exchanges, failures;
	const char *last_error; // borrowed; "" if none
};

// Opens the req socket and starts dialing conf->coordinator. Borrows
// conf for the link's life. `wake` is called from nng threads when an
// exchange step completes. Returns 0 and *ret (close with
// agent_link_close) or a negative errno with a reason in err.
int agent_link_open(const struct agent_conf *conf, void (*wake)(void *),
    void *wake_arg, struct agent_link **ret, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Advances a completed exchange step and starts the next exchange when
// due. Reads the workloads from p for a register. Returns the monotonic
// time it next needs to run (INT64_MAX while waiting for nng).
int64_t agent_link_tick(struct agent_link *l, const struct agent_proc *p,
    int64_t now);

// Fills v (pointers borrowed from l until the next tick).
void agent_link_view(const struct agent_link *l, struct agent_link_view *v);

// Aborts the exchange in flight and closes the socket. NULL-safe.
void agent_link_close(struct agent_link *l);

#endif
