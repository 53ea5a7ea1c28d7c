// SPDX-License-Identifier: MIT
// coord_metrics: the coordinator's Prometheus metrics. Counters are
// process-wide atomics with fixed label sets (so the series count is
// bounded whatever the input); gauges are sampled when /metrics is read.
// Every function is thread-safe and never blocks.
#ifndef COORD_METRICS_H
#define COORD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "coord_rules.h"

enum coord_decision {
	COORD_DEC_ACTED,	  // an action was planned and started
	COORD_DEC_NO_RULE,	  // no rule matched
	COORD_DEC_DUPLICATE,	  // an alert of an incident already handled
	COORD_DEC_RESOLVED,	  // a resolved alert (never acts)
	COORD_DEC_COOLDOWN,	  // same action on same target too recently
	COORD_DEC_REFUSED,	  // a safety check refused
	COORD_DEC_TEMPLATE_ERROR, // labels could not fill the rule's target
	COORD_DEC_NO_AGENT,	  // nobody hosts the target
	COORD_DEC_ESCALATED,	  // attempts exhausted: handed to people
	COORD_DEC__COUNT,
};

enum coord_outcome {
	COORD_OUT_SUCCEEDED,
	COORD_OUT_FAILED,
	COORD_OUT_TIMEOUT,
	COORD_OUT_REFUSED,
	COORD_OUT__COUNT,
};

const char *coord_decision_name(enum coord_decision d);
const char *coord_outcome_name(enum coord_outcome o);

void coord_metrics_alert(int firing);
// Alerts received within the last 60 seconds (for /health).
int64_t coord_metrics_alerts_last_minute(void);
void coord_metrics_webhook(int http_status);
void coord_metrics_decision(enum coord_decision d);
void coord_metrics_action(enum coord_action_type t, enum coord_outcome o);
void coord_metrics_bad_frame(void);
// A registration refused at max_agents; an agent forgotten to make room.
void coord_metrics_agent_refused(void);
// A registration refused at max_workloads.
void coord_metrics_workloads_refused(void);
void coord_metrics_agent_evicted(void);
// A permit refused because the node does not host the service.
void coord_metrics_permit_not_hosted(void);
// A safety check blocked an action (check names from coord_safety.h).
void coord_metrics_safety_block(const char *check);
// Seconds from the alert's arrival to its action being acknowledged.
void coord_metrics_alert_to_action(double seconds);
void coord_metrics_action_duration(double seconds);

enum coord_verified { COORD_VER_VERIFIED, COORD_VER_FAILED, COORD_VER_TIMEOUT,
	COORD_VER__COUNT };
// A verification ended; `seconds` from the alert to recovery (verified).
void coord_metrics_verification(enum coord_verified v, double seconds);
void coord_metrics_notification(int ok);

// Sampled values, filled by the caller of render.
struct coord_gauges {
	int64_t agents_registered;
	int64_t agents_lost;
	int64_t agent_channel_stuck; // 1 once libnng's close hung
	int64_t queue_depth;
	int64_t actions_in_flight;
	int64_t journal_bytes;
	int64_t journal_commits;
	int64_t journal_commit_errors;
	int64_t journal_checkpoints;	  // by the checkpointer thread
	int64_t journal_backstop_checkpoints; // by the writer itself
	int64_t journal_checkpoint_waits; // that waited for a quiet moment
	int64_t journal_syncs;		  // fdatasyncs of the WAL
	int64_t journal_linger_timeouts;  // syncer gave up on the engine
	int64_t journal_texts_new;	  // alert texts stored
	int64_t journal_texts_found;	  // alerts whose texts were stored
	int64_t breaker_open;
	int64_t rollout_percent;
};

// Renders the exposition text (format 0.0.4) into a new buffer (free()).
// Returns 0 or -ENOMEM.
int coord_metrics_render(const struct coord_gauges *g, char **ret,
    size_t *ret_len);

#endif
