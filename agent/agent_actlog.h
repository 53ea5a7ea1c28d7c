// SPDX-License-Identifier: MIT
// agent_actlog: the agent's recent actions (restart commands, its own
// restarts with the permit verdict, clear_cache, reload_config) for
// `reflex-agent status`. A ring of the last AGENT_ACTLOG_MAX entries;
// "check" commands are not recorded (the coordinator sends one every
// verify interval).
//
// Threads: main loop thread only.
#ifndef AGENT_ACTLOG_H
#define AGENT_ACTLOG_H

#include <stdint.h>

#include "cm_msg.h"

#define AGENT_ACTLOG_MAX 20
#define AGENT_ACTLOG_DETAIL_MAX 384

struct agent_actlog_entry {
	int64_t wall_ms;		// cm_now_ms() when recorded
	char kind[24];			// "restart", "own_restart", ...
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];
	char result[24];		// "ok", "failed", "granted", ...
	char detail[AGENT_ACTLOG_DETAIL_MAX]; // valid UTF-8, may be cut
};

struct agent_actlog {
	struct agent_actlog_entry e[AGENT_ACTLOG_MAX];
	unsigned head; // next slot to write
	unsigned n;    // entries held
};

// Records one action; the oldest entry goes when the ring is full.
// Strings are copied and cut to fit (on a UTF-8 boundary); detail is a
// printf format.
void agent_actlog_add(struct agent_actlog *l, int64_t wall_ms,
    const char *kind, const char *service, const char *instance,
    const char *result, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

// Entry i, 0 = newest (i < l->n). Borrowed pointer.
const struct agent_actlog_entry *agent_actlog_get(const struct agent_actlog *l,
    unsigned i);

#endif
