// SPDX-License-Identifier: MIT
// agent_json: the status document served on the status socket.
//
//   { "node", "runtime",
//     "coordinator": { "url", "connected", "registered", "last_ok",
//                      "last_error", "exchanges", "failures" },
//     "services": [ { "name", "probe_path",
//       "partition_policy": { "max_restarts", "window_ms" },
//       "instances": [ { "name", "addr", "pid", "state", "ready",
//         "ready_detail",
//         "probe": { "ok", "consecutive_failures", "last_error",
//                    "last_ms" } | null,
//         "restarts", "last_restart_reason", "last_restart_time",
//         "last_exit", "start_error", "backoff_failures",
//         "permit": { "phase", "kind", "reason", "held",
//                     "last_verdict", "next_ask_in_ms" } | null,
//         "output": [ lines ] } ] } ],
//     "actions": [ { "time", "kind", "service", "instance", "result",
//                    "detail" } ],
//     "stats": { "uptime_ms", "loop_wakeups", "bad_frames",
//                "refused", "unauthenticated", "sealed",
//                "permits": { "granted", "refused",
//                "partition_allowed", "partition_held" } } }
//
// Times are RFC 3339 UTC strings or null; pid is null when no process
// runs; probe is null for a service without a probe section; permit is
// null unless an own restart waits for its permit (phase "wanted" or
// "asking") or is held (phase "held", asked again in next_ask_in_ms);
// "held" says why it was held ("refused by coordinator: ..." or
// "partition policy: ...") and stays while it is asked again, null if
// it never was. actions are the recent actions (agent_actlog.h), newest
// first.
#ifndef AGENT_JSON_H
#define AGENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "agent_actlog.h"
#include "agent_kube.h"
#include "agent_link.h"
#include "agent_proc.h"

struct agent_stats {
	int64_t uptime_ms;
	uint64_t loop_wakeups;
	uint64_t bad_frames; // undecodable frames, both servers
	uint64_t refused;    // well-formed requests of a type not served
	uint64_t unauthenticated; // commands refused: no/wrong MAC, replay
	bool sealed;	     // the coordinator channel is authenticated
	const uint64_t *permits; // AGENT_VERDICTS counters, or NULL
};

// Renders the status of p, lv, st and log (may be NULL) as of monotonic
// time `now` as compact JSON of fewer than `max` bytes: output tails are
// shortened (64 lines, then 8, then none) until it fits. Borrows
// everything. Returns 0 and *ret (returns new, free with free()), -E2BIG
// if even the shortest form does not fit, or -ENOMEM.
int agent_json_status(const struct agent_proc *p,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, size_t max, char **ret)
    __attribute__((warn_unused_result));

// The kubernetes runtime's status document:
//
//   { "node", "runtime": "kubernetes", "coordinator": { as above },
//     "kubernetes": { "server", "last_list", "last_error", "lists",
//                     "list_failures", "pods", "managed", "api_calls",
//                     "evictions": { "evicted", "deleted", "blocked",
//                                    "gone", "failed" } },
//     "pods": [ { "namespace", "name", "managed", "unmanaged_reason",
//       "service", "ip", "addr", "phase", "api_ready",
//       "container_restarts", "waiting", "owner", "state", "ready",
//       "ready_detail",
//       "probe": { "type", "target", "ok", "consecutive_failures",
//                  "last_error", "last_ms" } | null,
//       "permit": { as above } | null,
//       "evictions", "last_action", "last_action_time" } ],
//     "actions": [ as above ], "stats": { as above } }
//
// pods are the node's pods in namespace/name order; unmanaged ones
// (no workload covers them, no annotation) have only namespace, name,
// managed=false, unmanaged_reason, phase, ip and state. When the
// document would not fit, unmanaged pods are left out ("pods_omitted"
// in "kubernetes" says how many), then managed pods keep only
// namespace, name, managed, phase, ip, state, service and addr.
// Returns 0 and *ret (free()), -E2BIG or -ENOMEM.
int agent_json_kube_status(const struct agent_kube *k, const char *node,
    const struct agent_link_view *lv, const struct agent_stats *st,
    const struct agent_actlog *log, int64_t now, size_t max, char **ret)
    __attribute__((warn_unused_result));

#endif
