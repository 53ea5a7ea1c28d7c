// SPDX-License-Identifier: MIT
// coord_engine: decides what to do about each alert and drives the
// resulting actions to an outcome.
//
// One engine thread owns all decision state (incidents, cooldowns, runs),
// so no decision races another. Work arrives through a queue: committed
// alerts from the webhook (coord_engine_push) and completions of agent
// commands (posted by their callbacks). The webhook thread never waits for
// the engine, and the engine never waits for an agent.
//
// Per alert: a resolved alert closes its incident and never acts. A firing
// alert belongs to an incident, keyed by its identity (labels minus the
// replica labels); while that incident is open, repeats of it (group
// re-sends, HA duplicates) start nothing new, except a further attempt
// once the rule's cooldown has passed and while attempts remain; when
// they are spent, the incident is escalated once and then stays quiet.
#ifndef COORD_ENGINE_H
#define COORD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "coord_agents.h"
#include "coord_alert.h"
#include "coord_conf.h"
#include "coord_journal.h"
#include "coord_safety.h"
#include "cm_k8s.h"

struct coord_engine;

// Borrowed collaborators; they must outlive the engine.
struct coord_engine_deps {
	const struct coord_conf *conf;
	struct coord_journal *journal;
	struct coord_agents *agents;
	struct cm_k8s *k8s;	// kubernetes runtime; NULL in the process one
};

// Rebuilds state from the journal (recent actions; alerts still pending
// are queued again) and starts the engine thread.
int coord_engine_start(struct coord_engine **ret,
    const struct coord_engine_deps *deps) __attribute__((warn_unused_result));

// Stops the engine thread (queued work stays queued, and is found pending
// in the journal at the next start). Call before stopping the agents.
void coord_engine_stop(struct coord_engine *e);

// Frees the engine and whatever is still queued; after coord_agents_stop.
void coord_engine_free(struct coord_engine *e);

// Replaces the rules alerts are matched against from the next decision
// on (SIGHUP reload); runs already started keep the rules they started
// with. `rules` is borrowed and, like every set given before, must
// outlive the engine (runs in flight point into it). Any thread.
void coord_engine_set_rules(struct coord_engine *e,
    const struct coord_rules *rules);

// True when the queue is at its configured bound: answer 503.
bool coord_engine_full(struct coord_engine *e);

// Queues the alerts of a committed notification. Takes the contents of
// n->alerts[] (each is left empty, so freeing `n` frees none of them; the
// caller still frees `n`): no copy. ids[i] is the journal id of
// n->alerts[i]. Never blocks; any thread. Returns 0 or -ENOMEM (an alert
// not queued stays pending in the journal: the next start replays it).
int coord_engine_push(struct coord_engine *e, struct coord_notification *n,
    const int64_t *ids, const uint64_t *identities, int64_t received_mono);

// coord_engine_push() for alerts committed but not yet durable (called
// from the journal's coord_journal_early_fn): the engine decides them
// now, while the journal syncs, and sends nothing from them before its
// own batch is durable, which comes after the alerts' sync. Returns the
// journal holds taken (0 or 1): 1 when the journal was quiet and nothing
// else waited in the engine's queue (it decides them after the turn it
// may be in). The turn that decides them keeps the hold: with the
// batch of its commands' rows, or at once when it sends nothing.
unsigned coord_engine_push_early(struct coord_engine *e,
    struct coord_notification *n, const int64_t *ids,
    const uint64_t *identities, int64_t received_mono, bool quiet);

// Sampled for /metrics and /health.
void coord_engine_counts(struct coord_engine *e, int64_t *queued,
    int64_t *in_flight);

// Operator pause/resume of all automation (applied by the engine thread
// in queue order). Never block; any thread. Return 0 or -ENOMEM.
int coord_engine_pause(struct coord_engine *e, const char *who);
int coord_engine_resume(struct coord_engine *e);

// Operator decision on a plan waiting for approval (the journal id of its
// "awaiting-approval" row). Never blocks; any thread. 0 or -ENOMEM.
int coord_engine_approval(struct coord_engine *e, int64_t id, bool approve,
    const char *who);

// Decides an agent's local restart through the same safety checks as
// every action (and counts it against the same limits); records it.
// Blocks up to about a second waiting for the engine thread. Matches
// coord_agents_permit_fn (arg: the engine).
void coord_engine_permit(const struct cm_msg_permit *req,
    struct cm_msg_reply *reply, void *arg);

// The current rollout percentage. Any thread.
int64_t coord_engine_rollout(struct coord_engine *e);

// The breaker as of the last event the engine handled. Any thread.
void coord_engine_breaker(struct coord_engine *e,
    struct coord_breaker_state *ret);

#endif
