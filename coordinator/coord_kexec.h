// SPDX-License-Identifier: MIT
// coord_kexec: runs a plan on Kubernetes (the kubernetes runtime).
//
// The engine hands a plan over; a worker thread runs the blocking API
// calls (coord_k8s_actions.h) and reports through the same callback as an
// agent's reply, so retries, timeouts, verification and escalation work
// the same in both runtimes. Before acting it applies the checks that
// need the API: no action on a workload whose rollout is in progress
// (except the rollback of that rollout), the cluster's CPU and memory use
// before a scale-up, and after acting it leaves an Event on the target.
//
// Plan parameters (rule `params`, templated like the target):
//   namespace (required), kind (deployment, statefulset, daemonset)
//   restart:        instance "" = rollout restart; a pod name = evict it
//   scale_up/down:  by (default 1) or replicas (absolute)
//   rollback:       to_revision (default: the previous one)
//   switch_traffic: route_kind (virtualservice|httproute), route, canary,
//                   stable, weight (default 0)
//   run_job:        (the template from kubernetes.job_template)
//   adjust_config:  resource (default configmaps), name (default the
//                   service); the action's `patch` (a literal JSON object
//                   in the rule); params.revert_after (a duration) undoes
//                   the change after that long, if nobody changed it since
#ifndef COORD_KEXEC_H
#define COORD_KEXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "cm_k8s.h"
#include "coord_agents.h"
#include "coord_k8s.h"
#include "coord_rules.h"
#include "coord_worker.h"

// Cluster load check before a scale-up (section safety.cluster_load).
struct coord_load_conf {
	int source;		// 0 prometheus, 1 metrics API, 2 off
	char *cpu_promql;	// returns the used share of CPU, 0..1
	char *memory_promql;	// same for memory
	int64_t max_percent;	// refuse above (default 90)
	bool allow_unavailable; // when the source cannot answer (default no)
};

extern const struct cm_conf_field coord_load_fields[];

struct coord_kexec;

// Borrows everything; all must outlive it. `prom_url` may be "". Actions
// run on `w`, verification polls on `polls` (a storm's polls, slow
// against a slow API server, never hold an action back).
int coord_kexec_new(struct coord_kexec **ret, struct cm_k8s *k,
    const struct coord_k8s_conf *kc, const struct coord_load_conf *load,
    const char *prom_url, int64_t prom_timeout_ms, struct coord_worker *w,
    struct coord_worker *polls);
void coord_kexec_free(struct coord_kexec *x);

// True for the action types this runtime runs itself.
bool coord_kexec_handles(enum coord_action_type t);

// Runs `p` for the alert with `labels` on a worker; `done` is called once
// on that worker with a reply (ok, code: 0, -ECANCELED for a refusal,
// else the failure; message: "<code>: <reason>"). Copies what it needs.
// Returns 0, or -EAGAIN when the pool is full (done not called).
int coord_kexec_submit(struct coord_kexec *x, const struct coord_plan *p,
    const struct coord_kvs *labels, const char *rule, int64_t timeout_ms,
    coord_agents_done_fn done, void *arg);

// Verification of a workload after an action: ok when its rollout is
// complete and enough Ready pods exist (Terminating ones not counted).
// Same callback contract. A poll whose turn on the pool comes at or
// after deadline_mono (cm_mono_ms) is answered without a call: rv
// -ETIMEDOUT, with a reply that says why.
int coord_kexec_verify(struct coord_kexec *x, const struct coord_plan *p,
    int64_t deadline_mono, coord_agents_done_fn done, void *arg);

#endif
