// SPDX-License-Identifier: MIT
// agent_metrics: the agent's own metrics over HTTP (`metrics_listen`):
// GET /metrics in Prometheus text format 0.0.4 and GET /healthz.
//
//   reflex_agent_probes_total{service,instance,result="success|failure"}
//   reflex_agent_restarts_total{service,instance,reason="probe|crash|command"}
//   reflex_agent_instance_up{service,instance}   1 = running and, with a
//                                                probe, passing it
//   reflex_agent_permits_total{result="granted|refused|partition_allowed|
//                                      partition_held"}
//   reflex_agent_evictions_total{result="evicted|deleted|blocked|gone|
//                                 failed"}  (runtime kubernetes)
//   reflex_agent_bad_frames_total
//   reflex_agent_unauthenticated_total  commands refused by the channel
//                                       authentication
//   reflex_agent_coordinator_connected
//   reflex_agent_loop_wakeups_total
//
// Prometheus renames the exposed `instance` label to `exported_instance`
// when it attaches its own target label of that name (unless the scrape
// sets honor_labels).
//
// Threads: the main loop owns the agent's state and copies the numbers
// into a snapshot with agent_metrics_publish() once per loop iteration;
// nng's HTTP threads render answers from that snapshot under a mutex, so
// a request never touches live state and never waits for the loop.
// Each publish says when the loop will run next at the latest (its next
// deadline: it sleeps until then unless an event comes first), and
// /healthz answers 503 once that time is AGENT_METRICS_STALL_MS past (it
// is stuck). So an idle loop need not wake just to look alive.
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_proc.h"

#define AGENT_METRICS_STALL_MS 15000
#define AGENT_EVICT_RESULTS 5 // evicted, deleted, blocked, gone, failed

// The result label of reflex_agent_evictions_total, by index; "unknown"
// when out of range.
const char *agent_evict_result_name(unsigned i);

struct agent_metrics;

struct agent_metrics_inst {
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];
	struct agent_inst_counters c;
	bool up;
};

// Everything /metrics shows.
struct agent_metrics_snap {
	struct agent_metrics_inst *inst;
	size_t n;
	uint64_t permits[AGENT_VERDICTS];
	uint64_t evictions[AGENT_EVICT_RESULTS];
	bool kubernetes; // show the evictions family
	uint64_t bad_frames;
	uint64_t unauthenticated;
	uint64_t wakeups;
	bool connected;
};

// The numbers published from the main loop besides the instances'.
struct agent_metrics_globals {
	const uint64_t *permits; // AGENT_VERDICTS of them; borrowed
	const uint64_t *evictions; // AGENT_EVICT_RESULTS, or NULL (process)
	uint64_t bad_frames;
	uint64_t unauthenticated;
	uint64_t wakeups;
	bool connected;
	int64_t next_ms; // monotonic time the loop runs next at the latest
			 // (INT64_MAX: only an event wakes it)
};

// Writes label value v escaped for the exposition format (backslash,
// double quote and line feed become \\, \" and \n) into buf. Returns 0,
// or -ENOSPC (buf then holds a cut, still well-formed, prefix). Pure.
int agent_metrics_escape(const char *v, char *buf, size_t n);

// Renders s as text format 0.0.4 (HELP and TYPE for every family, also
// when it has no samples). Returns 0 and *ret (returns new, free with
// free()) with its length in *ret_len, or -ENOMEM. Pure; any thread.
int agent_metrics_render(const struct agent_metrics_snap *s, char **ret,
    size_t *ret_len) __attribute__((warn_unused_result));

// Starts the HTTP server on "host:port" (validated by the configuration)
// with no instance rows yet. Returns 0 and *ret (stop with
// agent_metrics_close), or a negative errno with a reason in err (e.g.
// the address is in use). Main thread.
int agent_metrics_open(const char *hostport, struct agent_metrics **ret,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Copies the instance rows (n of them, borrowed) and the numbers of g
// into the snapshot, under the mutex (the row array grows when needed;
// on allocation failure the old rows stay). Never blocks otherwise.
// Main thread. NULL-safe (m).
void agent_metrics_publish(struct agent_metrics *m,
    const struct agent_metrics_inst *rows, size_t n,
    const struct agent_metrics_globals *g, int64_t now);

// Stops the server (waits for handlers in progress) and frees m.
// NULL-safe. Main thread.
void agent_metrics_close(struct agent_metrics *m);

#endif
