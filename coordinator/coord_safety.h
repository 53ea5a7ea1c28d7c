// SPDX-License-Identifier: MIT
// coord_safety: the named checks every action passes before it runs, and
// the fleet-wide circuit breaker.
//
// Pure state and arithmetic: every function takes the time explicitly and
// touches nothing outside the struct, so each check is tested with tables.
// Not thread-safe: the engine thread owns it (agent permit requests are
// forwarded to that thread).
//
// Checks, in the order they are applied (the first that blocks wins):
//   breaker     automation paused (breaker open or operator pause)
//   critical    a restart of a critical service without `force` on the rule
//   dependency  a service this one depends on is alerting or being fixed
//   flapping    the same target went fire/fix/resolve too often lately
//   concurrency too many actions in flight
//   rate_global too many actions in the window, all services
//   rate_service too many actions in the window for this service
//   blast_radius too large a share of the service's instances restarted
//                in the window (at least one is always allowed)
// The breaker opens on its own when the success rate of recent actions
// falls below its threshold, when actions take too long on average, or
// when an alert storm hits: more distinct targets alerting at once than
// the fleet share allows, or more than the global action budget.
#ifndef COORD_SAFETY_H
#define COORD_SAFETY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_conf.h"
#include "coord_rules.h"

struct coord_dependency_conf {
	int line;
	char *service;
	struct cm_strlist depends_on;
};

enum coord_dep_policy { COORD_DEP_SKIP, COORD_DEP_WAIT };

struct coord_safety_conf {
	struct cm_strlist critical_services;
	struct cm_list dependencies; // of struct coord_dependency_conf
	int dependency_policy;	     // enum coord_dep_policy
	int64_t max_concurrent;
	int64_t global_max, global_window_ms;
	int64_t service_max, service_window_ms;
	int64_t blast_percent, blast_window_ms;
	int64_t flap_max, flap_window_ms;
	int64_t breaker_min_actions;
	int64_t breaker_success_percent;
	int64_t breaker_window_ms;
	int64_t breaker_max_avg_ms;
	int64_t breaker_cool_off_ms; // 0 = only an operator resumes
	int64_t storm_percent;	     // of known targets alerting at once
	int64_t storm_min_targets;   // fewer alerting targets are no storm
	int64_t storm_window_ms;
};

// cm_conf table for the "safety:" section.
extern const struct cm_conf_field coord_safety_fields[];

struct coord_safety;

// Returns a new checker (free with coord_safety_free), NULL on ENOMEM.
// Borrows `conf`, which must outlive it.
struct coord_safety *coord_safety_new(const struct coord_safety_conf *conf);
void coord_safety_free(struct coord_safety *s);

// What an action would do, as the checks see it.
struct coord_safety_req {
	enum coord_action_type type;
	const char *service;
	const char *instance;	   // "" = the whole service
	uint64_t identity;	   // the alert's incident identity
	bool force;		   // the rule allows touching critical services
	int64_t service_instances; // instances of the service known now
	char name_buf[64];	   // storage a caller may point instance at
};

#define COORD_CHECK_MAX 32
#define COORD_REASON_MAX 384

struct coord_verdict {
	bool allow;
	bool wait;			// dependency policy "wait": try later
	char check[COORD_CHECK_MAX];	// name of the blocking check
	char reason[COORD_REASON_MAX];	// with the numbers compared
};

// Applies every check to `r` at `now_ms`. Never fails.
void coord_safety_check(struct coord_safety *s,
    const struct coord_safety_req *r, int64_t now_ms, struct coord_verdict *v);

// An action passed the checks and starts now / finished.
void coord_safety_started(struct coord_safety *s,
    const struct coord_safety_req *r, int64_t now_ms);
void coord_safety_finished(struct coord_safety *s, const char *service,
    bool ok, int64_t duration_ms, int64_t now_ms);

// An incident of `service` opened (firing) or closed (resolved); `acted`
// says whether reflex had acted on it (a fire/fix/resolve cycle).
void coord_safety_alerting(struct coord_safety *s, const char *service,
    uint64_t identity, bool firing, bool acted, int64_t now_ms);

// A firing alert that a rule wants to act on, counted before any of its
// batch is decided; `known_targets` is the fleet size (0 = unknown). May
// open the breaker (storm). Returns true if the breaker is open after it.
bool coord_safety_demand(struct coord_safety *s, uint64_t identity,
    int64_t known_targets, int64_t now_ms);

// Breaker state for /health, /metrics and the API.
struct coord_breaker_state {
	bool open;
	bool paused_by_operator;
	int64_t opened_ms;
	int64_t until_ms;	// 0 = until resumed
	char reason[COORD_REASON_MAX];
	int64_t window_actions;
	int64_t window_ok;
};
void coord_safety_breaker(struct coord_safety *s, int64_t now_ms,
    struct coord_breaker_state *ret);

// Restores a breaker persisted before a restart (see coord_engine).
void coord_safety_restore_breaker(struct coord_safety *s,
    const struct coord_breaker_state *b);

// Operator controls. pause opens the breaker until resume.
void coord_safety_pause(struct coord_safety *s, const char *who, int64_t now_ms);
void coord_safety_resume(struct coord_safety *s, int64_t now_ms);

#endif
