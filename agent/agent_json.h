// SPDX-License-Identifier: MIT
// agent_json: the status document served on the status socket.
//
//   { "node", "runtime",
//     "coordinator": { "url", "connected", "registered", "last_ok",
//                      "last_error", "exchanges", "failures" },
//     "services": [ { "name", "probe_path",
//       "instances": [ { "name", "addr", "pid", "state",
//         "probe": { "ok", "consecutive_failures", "last_error",
//                    "last_ms" } | null,
//         "restarts", "last_restart_reason", "last_restart_time",
//         "last_exit", "backoff_failures", "output": [ lines ] } ] } ],
//     "stats": { "uptime_ms", "loop_wakeups", "bad_frames",
//                "refused" } }
//
// Times are RFC 3339 UTC strings or null; pid is null when no process
// runs; probe is null for a service without a probe section.
#ifndef AGENT_JSON_H
#define AGENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "agent_link.h"
#include "agent_proc.h"

struct agent_stats {
	int64_t uptime_ms;
	uint64_t loop_wakeups;
	uint64_t bad_frames; // undecodable frames, both servers
	uint64_t refused;    // well-formed requests of a type not served
};

// Renders the status of p, lv and st as compact JSON of fewer than `max`
// bytes: output tails are shortened (64 lines, then 8, then none) until
// it fits. Borrows everything. Returns 0 and *ret (returns new, free with
// free()), -E2BIG if even the shortest form does not fit, or -ENOMEM.
int agent_json_status(const struct agent_proc *p,
    const struct agent_link_view *lv, const struct agent_stats *st,
    size_t max, char **ret) __attribute__((warn_unused_result));

#endif
