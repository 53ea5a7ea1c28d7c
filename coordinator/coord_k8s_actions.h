// SPDX-License-Identifier: MIT
// coord_k8s_actions: the Kubernetes actions of the coordinator, each with
// kubectl's semantics and a precise outcome:
//
//   restart         kubectl rollout restart (restartedAt, strategic merge)
//   rollback        kubectl rollout undo of a Deployment (API facts 2.5)
//   scale           the /scale subresource within bounds, or the HPA's
//                   bounds when an HPA owns the replicas (C12)
//   switch_traffic  canary weight of an Istio VirtualService or Gateway
//                   API HTTPRoute, by a guarded JSON patch
//   run_job         a Job from a template, alert labels as env data
//   adjust_config   merge patch of an allowlisted resource, inverse kept
//   revert          undoes what a result's revert record describes
//
// Calling: every function blocks on HTTP (several requests; a Job waits
// for completion up to its timeout) and must run on a worker thread.
// They are thread-safe; two actions on the same object race only as
// kubectl invocations would (writes are guarded by resourceVersion or
// JSON-patch tests and re-applied on conflict, up to conflict_tries).
//
// Return value and result: 0 when the action did what was asked (or
// found nothing to do: result.changed says which), -ECANCELED when it
// refused by policy or state before writing anything, another negative
// errno when it failed. *ret is always filled; release it with
// coord_k8s_result_clear.
#ifndef COORD_K8S_ACTIONS_H
#define COORD_K8S_ACTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "cm_k8s.h"
#include "coord_alert.h"
#include "coord_k8s.h"

enum coord_k8s_outcome {
	COORD_K8S_OK,	   // done (or nothing to do, changed == false)
	COORD_K8S_REFUSED, // not attempted: policy or state (code says which)
	COORD_K8S_FAILED,  // attempted and failed (API error, job failed, ...)
};

#define COORD_K8S_REASON_MAX 768

struct coord_k8s_result {
	enum coord_k8s_outcome outcome;
	int err;		// 0, -ECANCELED (refused) or the failure errno
	bool changed;		// a write reached the API server
	char code[32];		// short, stable: see each action
	char reason[COORD_K8S_REASON_MAX]; // one line with the numbers
	char warning[384];	// a concern that did not block ("" if none)
	char uid[64];		// the target's metadata.uid, for Events
	char *revert;		// JSON revert record (owned) or NULL
};

// Frees ret->revert and zeroes *r. NULL-safe.
void coord_k8s_result_clear(struct coord_k8s_result *r);

// Name of an outcome: "ok", "refused", "failed".
const char *coord_k8s_outcome_name(enum coord_k8s_outcome o);

// kubectl rollout restart. Codes: "restarted"; refusals "paused" (a
// paused Deployment; the reason reports template drift against the
// running ReplicaSet, C11), "gitops" (policy refuse, C13), "on-delete"
// (updateStrategy OnDelete: a template change restarts no pod);
// failures "not-found", "api". A GitOps-managed target with policy warn
// is restarted and ret->warning says a reconcile may roll it again. No
// revert record (a restart cannot be undone).
int coord_k8s_restart(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, struct coord_k8s_result *ret);

// kubectl rollout undo of a Deployment to `to_revision` (0 = the
// previous one): ReplicaSets listed by the Deployment's selector and
// kept when controlled by its UID; the second-highest revision; paused
// refused; a template equal to the current one skipped; pod-template-hash
// removed; kubectl's annotation rules; one JSON patch replacing
// /spec/template and /metadata/annotations, guarded by a test of
// metadata.resourceVersion (re-read and re-applied on a race). Replicas
// are never touched and the reason says what they stay at (C10 C).
// Codes: "rolled-back", "skipped" (OK, unchanged); refusals "paused",
// "gitops", "no-history" (C10 A/B: "rollback impossible: no earlier
// ReplicaSet ..." after read-only calls only), "no-revision" (to_revision
// not found); failures "not-found", "api". Revert record: roll back to
// the revision that was current.
int coord_k8s_rollback(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, int64_t to_revision,
    struct coord_k8s_result *ret);

enum coord_k8s_scale_mode {
	COORD_K8S_SCALE_TO, // n is the replica count
	COORD_K8S_SCALE_BY, // n is added (negative to scale down)
};

// Scales a Deployment or StatefulSet through /scale within [scale_min,
// scale_max] (refused or clamped per policy), after a GitOps check. When
// an HPA targets the workload, replicas are never patched (the HPA would
// overwrite them): a target of 0 is refused (it would switch the HPA
// off); with policy adjust the HPA's minReplicas is raised (or lowered)
// to the target, and when the target is above maxReplicas, maxReplicas is
// raised too if hpa_raise_max allows and the target is within
// hpa_max_replicas (otherwise refused "HPA-managed, at maxReplicas N");
// with policy refuse it is refused. Codes: "scaled", "hpa-adjusted",
// "noop"; refusals "gitops", "bounds", "hpa", "hpa-zero", "hpa-max",
// "no-scale" (DaemonSet); failures "not-found", "api". Revert record:
// the previous replicas, or the previous HPA bounds.
int coord_k8s_scale(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, enum coord_k8s_scale_mode mode, int64_t n,
    struct coord_k8s_result *ret);

enum coord_k8s_route_kind {
	COORD_K8S_VIRTUALSERVICE, // networking.istio.io v1, else v1beta1
	COORD_K8S_HTTPROUTE,	  // gateway.networking.k8s.io v1, else v1beta1
};

struct coord_k8s_traffic {
	enum coord_k8s_route_kind kind;
	const char *ns;
	const char *name;
	// VirtualService: a destination is named by its subset, or by its
	// host when it has no subset. HTTPRoute: by backendRef name.
	const char *canary;
	const char *stable; // NULL: the one other destination of the route
	int64_t weight;	    // new canary weight (0 = no traffic)
};

// Moves traffic away from the canary in every route (http[] / rules[])
// that has it: canary weight set to t->weight and the stable weight
// raised by the difference, so the sum stays (a VirtualService keeps 100;
// an HTTPRoute keeps its own sum; an omitted HTTPRoute weight counts as
// 1). One JSON patch tests metadata.resourceVersion, each destination's
// identity and each current weight before replacing them. Codes:
// "switched", "noop"; refusals "gitops", "no-canary" (no route has it),
// "single-destination" (the canary takes all traffic of a route: nothing
// to switch to), "ambiguous" (several other destinations and no
// stable given), "bad-weight"; failures "not-found", "api". Revert
// record: the previous weights, applied only if ours are still in place.
int coord_k8s_switch_traffic(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_traffic *t, struct coord_k8s_result *ret);

// Creates a Job in namespace `ns` from the configured template (JSON or
// YAML; metadata.name becomes generateName "<name>-"), adds each alert
// label to every container as env ALERT_<NAME> (name upper-cased, other
// characters than [A-Z0-9_] turned into '_'; values passed as data, never
// through a shell), sets activeDeadlineSeconds to at most the timeout,
// and polls it (growing interval) until it completes, fails or the
// timeout (0 = job_timeout from the config) passes; a timed-out Job is
// deleted (background propagation). Codes: "succeeded"; failures
// "failed" (with the Job's condition reason), "timeout", "api";
// refusals "no-template". No revert record.
int coord_k8s_run_job(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *ns, const struct coord_kvs *labels, int64_t timeout_ms,
    struct coord_k8s_result *ret);

// Merge-patches `resource` (a plural such as "configmaps") ns/name with
// `patch` (a JSON object; borrowed) if the resource is allowlisted. The
// object is read first, the inverse patch computed from it, and the
// write carries the resourceVersion read as a precondition (re-done on
// 409). The patch may not touch status or metadata other than labels and
// annotations. Codes: "patched", "noop"; refusals "allowlist",
// "bad-patch", "gitops"; failures "not-found", "api". Revert record: the
// inverse patch, applied only if the patched values are still in place.
int coord_k8s_adjust_config(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *resource, const char *ns, const char *name,
    const cJSON *patch, struct coord_k8s_result *ret);

// Applies a revert record from an earlier result. Codes: "reverted",
// refusals "changed-since" (someone else changed the same fields since:
// left alone), "bad-record"; failures as the action's. Writes are guarded
// like the action's. A revert of a rollback is itself a rollback.
int coord_k8s_revert(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const char *record, struct coord_k8s_result *ret);

#endif
