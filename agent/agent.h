// SPDX-License-Identifier: MIT
// agent: the reflex-agent daemon. One main loop thread owns all state:
// the runtime (process: agent_proc.h; kubernetes: agent_kube.h, whose
// API calls run on its worker threads), the HTTP client (whose multi
// handle is also the poller), the coordinator link (with the permits for
// own restarts, agent_permit.c), the recent actions, and the queue of
// requests that nng threads hand over from the command and status
// servers. The optional metrics server (agent_metrics.h) reads only a
// snapshot the loop publishes once per iteration.
//
// The main thread holds `mu` at all times except while the loop waits
// for events. A command that needs no work of the loop afterwards
// (agent_action_direct: reload_config, check, refusals) is answered on
// the nng thread that decoded it if that thread gets `mu` within
// AGENT_DIRECT_WAIT_US (the rest of a loop turn, usually); otherwise it
// is queued as before. An nng thread never waits longer, so a loop turn
// that needs nng's threads while holding `mu` (closing a socket) waits
// at most that long for them: no deadlock.
#ifndef AGENT_H
#define AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_actlog.h"
#include "agent_cmd.h"
#include "agent_conf.h"
#include "agent_http.h"
#include "agent_kube.h"
#include "agent_link.h"
#include "agent_metrics.h"
#include "agent_proc.h"

#define AGENT_CMD_DEFAULT_TIMEOUT_MS 60000
// How long an nng thread waits for the state lock to answer a command
// itself before it queues the command for the loop instead.
#define AGENT_DIRECT_WAIT_US 500
#define AGENT_CACHE_TIMEOUT_MS 5000
#define AGENT_CACHE_PATH "/cache/clear"
// Room for the rest of the reply frame next to the status JSON.
#define AGENT_STATUS_JSON_MAX (CM_STATUS_MAX - 4096)

struct agent_job;

// Longest reply json of a command (room for the rest of the frame).
#define AGENT_REPLY_JSON_MAX (CM_MSG_MAX_FRAME - 16384)
// Evidence bytes of all instances of one restart reply together.
#define AGENT_EVIDENCE_BUDGET (96 * 1024)

struct agent {
	pthread_mutex_t mu; // the state below (see the top of this file)
	struct agent_conf conf;
	struct cm_auth *auth; // coordinator_secret_file, or NULL
	struct agent_http *http;
	struct agent_proc *proc; // process runtime (empty for kubernetes)
	struct agent_kube *kube; // kubernetes runtime, else NULL
	struct agent_link *link;
	struct agent_cmd_srv *cmd;
	struct agent_cmd_srv *status;
	struct agent_job *jobs; // commands in progress
	struct agent_metrics *metrics; // NULL without metrics_listen
	struct agent_actlog actlog;
	bool asking_set;	   // a permit request is in flight for
	char asking_svc[CM_NAME_MAX];  // this service's
	char asking_inst[CM_NAME_MAX]; // instance (or pod)
	uint64_t asking_gen;	   // its permit.gen when it was sent
	struct agent_metrics_inst *mrows; // metrics rows being published
	size_t mrows_cap;
	uint64_t permits[AGENT_VERDICTS]; // verdicts applied, by kind
	int sigfd;
	bool curl_ready;
	bool stopping;
	int64_t stop_deadline_ms;
	int64_t started_ms;
	uint64_t wakeups;
};

// Runs the agent with the configuration at conf_path until SIGTERM or
// SIGINT; `verbose` raises the configured log level by that many steps.
// Returns the process exit code (0 after a clean shutdown, 1 when it
// could not start). Blocks; call from main only.
int agent_run(const char *conf_path, int verbose);

// Handles one "command" request taken from the command server. Either
// replies at once or creates a job that agent_jobs_step() completes.
// Takes ownership of the context until it is answered. Main thread.
void agent_action_handle(struct agent *a, struct agent_cmd_ctx *ctx,
    int64_t now);

// The same on an nng thread that holds a->mu: handles the command if it
// needs nothing of the loop afterwards (it is answered at once) and
// returns true; returns false, answering nothing, for "restart" and
// "clear_cache" (jobs the loop steps), which go to the loop's queue.
bool agent_action_direct(struct agent *a, struct agent_cmd_ctx *ctx,
    int64_t now);

// Advances the jobs; returns the next monotonic time one needs to run.
int64_t agent_jobs_step(struct agent *a, int64_t now);

// Answers every job with -ESHUTDOWN and frees it (before the servers
// close).
void agent_jobs_abort(struct agent *a);

// Asks for the permits of own restarts (agent_permit.c): takes the
// answer of the request in flight, applies verdicts, and sends the next
// request, or applies the partition policy when the coordinator cannot be
// asked. Never blocks. Returns the next monotonic time it needs to run
// (`now` after applying a verdict, so the runtime acts on it at once).
// Main thread; call after agent_link_tick().
int64_t agent_permit_tick(struct agent *a, int64_t now);

// The partition policy for one own restart of an instance of s: true if
// the service's own restarts within its window are below max_restarts.
// Writes the reason ("partition policy: 1 restart of demo-a within 600 s
// already") into why. `cause` says why the coordinator was not asked.
// Pure.
bool agent_partition_allows(const struct agent_svc *s, const char *cause,
    int64_t now, char *why, size_t n);

// The same for any runtime: `used` own restarts of `service` within the
// policy's window so far. Pure.
bool agent_partition_check(const struct agent_partition_conf *pc,
    const char *service, unsigned used, const char *cause, char *why,
    size_t n);

#endif
