// SPDX-License-Identifier: MIT
// agent: the reflex-agent daemon. One main loop thread owns all state:
// the process runtime, the HTTP client (whose multi handle is also the
// poller), the coordinator link, and the queue of requests that nng
// threads hand over from the command and status servers.
#ifndef AGENT_H
#define AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_cmd.h"
#include "agent_conf.h"
#include "agent_http.h"
#include "agent_link.h"
#include "agent_proc.h"

#define AGENT_MAX_WAIT_MS 1000 // longest sleep of the main loop
#define AGENT_CMD_DEFAULT_TIMEOUT_MS 60000
#define AGENT_CACHE_TIMEOUT_MS 5000
#define AGENT_CACHE_PATH "/cache/clear"
// Room for the rest of the reply frame next to the status JSON.
#define AGENT_STATUS_JSON_MAX (CM_STATUS_MAX - 4096)

struct agent_job;

struct agent {
	struct agent_conf conf;
	struct agent_http *http;
	struct agent_proc *proc;
	struct agent_link *link;
	struct agent_cmd_srv *cmd;
	struct agent_cmd_srv *status;
	struct agent_job *jobs; // commands in progress
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

// Advances the jobs; returns the next monotonic time one needs to run.
int64_t agent_jobs_step(struct agent *a, int64_t now);

// Answers every job with -ESHUTDOWN and frees it (before the servers
// close).
void agent_jobs_abort(struct agent *a);

#endif
