// SPDX-License-Identifier: MIT
// coord_k8s: what the coordinator knows about Kubernetes workloads:
// its "kubernetes:" config section (client settings plus the policies of
// the actions in coord_k8s_actions.h), workload references, rollout
// state the way `kubectl rollout status` judges it, post-action
// verification that ignores Terminating pods (C15), detection of other
// controllers (HPA, GitOps tools, rollouts in progress) and Event
// creation on the target.
//
// The HTTP client itself is cm_k8s (common/, shared with the agent, which
// does PDB-aware eviction on its node). Every function here that takes a
// struct cm_k8s blocks on HTTP (each request bounded by the client's
// timeout, retries and rate limit): call it from a worker thread, not the
// engine thread. All are thread-safe for distinct result structs.
#ifndef COORD_K8S_H
#define COORD_K8S_H

#include <stdbool.h>
#include <stdint.h>

#include "cm_conf.h"
#include "cm_k8s.h"

// ---------------------------------------------------------------------
// Config

enum coord_k8s_gitops_policy {
	COORD_K8S_GITOPS_WARN,	 // act, with a warning in the result
	COORD_K8S_GITOPS_REFUSE, // refuse ("GitOps-managed: ...")
};

enum coord_k8s_bounds_policy {
	COORD_K8S_BOUNDS_REFUSE, // a target outside [min, max] is refused
	COORD_K8S_BOUNDS_CLAMP,	 // ... or clamped into it (and said so)
};

enum coord_k8s_hpa_policy {
	COORD_K8S_HPA_REFUSE, // never scale an HPA target
	COORD_K8S_HPA_ADJUST, // move the HPA's bounds instead of replicas
};

struct coord_k8s_conf {
	struct cm_k8s_settings client;
	bool gitops_detect;
	struct cm_strlist gitops_markers; // label/annotation keys; empty =
					  // the defaults below
	int gitops_restart;		  // enum coord_k8s_gitops_policy
	int gitops_change;		  // rollback/scale/traffic/config
	int64_t scale_min, scale_max;
	int scale_bounds;		  // enum coord_k8s_bounds_policy
	int hpa;			  // enum coord_k8s_hpa_policy
	bool hpa_raise_max;		  // may raise maxReplicas
	int64_t hpa_max_replicas;	  // ceiling for a raised maxReplicas
	struct cm_strlist config_resources; // adjust_config allowlist
					  // (plurals); empty = configmaps
	char *job_template;		  // Job JSON or YAML file; "" = none
	int64_t job_timeout_ms;
	int64_t job_poll_ms;		  // first poll interval (grows x1.5)
	int64_t job_poll_max_ms;
	int64_t conflict_tries;		  // re-read/re-apply rounds on 409/422
	char *event_component;		  // Event source.component

	// Derived by coord_k8s_conf_finish (not from YAML):
	const char *const *markers;	  // borrowed: defaults or the list
	size_t n_markers;
	const char *const *resources;
	size_t n_resources;
};

// The default GitOps markers (C13): Flux's kustomize and helm
// controller labels and Argo CD's tracking annotation and instance label.
// "app.kubernetes.io/instance" is not among them: Helm sets it on almost
// everything; add it if Argo CD tracks applications by that label.
extern const char *const coord_k8s_default_markers[];
extern const size_t coord_k8s_n_default_markers;

// cm_conf table for the "kubernetes:" section (client settings under
// "client:"). Defaults: gitops_detect true, gitops_restart warn,
// gitops_change refuse, scale_min 1, scale_max 10, scale_bounds refuse,
// hpa adjust, hpa_raise_max false, hpa_max_replicas 20, job_timeout 10m,
// job_poll 1s..10s, conflict_tries 3, event_component "reflex".
extern const struct cm_conf_field coord_k8s_fields[];

// Checks what the table cannot (marker keys are label/annotation keys,
// allowlisted resources are known plurals, scale_min <= scale_max, the
// job template exists and parses) and fills the derived fields. `name`
// prefixes messages ("file: kubernetes.scale_min: ..."). Returns 0 or
// -EINVAL with a reason. Call after cm_conf_load.
int coord_k8s_conf_finish(struct coord_k8s_conf *c, const char *name,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Fills *c with the defaults (static strings; never cm_conf_free it) and
// finishes it. For tests and tools that do not load YAML.
void coord_k8s_conf_default(struct coord_k8s_conf *c);

// The API ("v1", "apps/v1", ...) of a resource plural that
// adjust_config knows: configmaps, services, deployments, statefulsets,
// daemonsets, horizontalpodautoscalers, poddisruptionbudgets,
// ingresses, cronjobs. NULL for others.
const char *coord_k8s_resource_api(const char *plural);

// Reads a Kubernetes object from a JSON or YAML file (at most 1 MiB; a
// YAML document becomes JSON the way kubectl reads it: plain true/false,
// null/~ and numbers are typed, everything else is a string). Returns 0
// with *ret (cJSON_Delete), or -ENOENT/-EINVAL with "file:line: reason".
int coord_k8s_load_object(const char *path, cJSON **ret, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// ---------------------------------------------------------------------
// Workloads

enum coord_k8s_kind {
	COORD_K8S_DEPLOYMENT,
	COORD_K8S_STATEFULSET,
	COORD_K8S_DAEMONSET,
};

struct coord_k8s_ref {
	enum coord_k8s_kind kind;
	const char *ns;	  // borrowed; DNS-1123 label
	const char *name; // borrowed; DNS-1123 subdomain
};

// "Deployment", "deployment", "deployments", "deploy", "StatefulSet",
// "statefulsets", "sts", "DaemonSet", "daemonsets", "ds". 0 or -EINVAL.
int coord_k8s_kind_parse(const char *s, enum coord_k8s_kind *ret);

// "Deployment" / "deployments" for a kind.
const char *coord_k8s_kind_name(enum coord_k8s_kind k);
const char *coord_k8s_kind_plural(enum coord_k8s_kind k);

// 0 if the reference names a valid namespace and name, else -EINVAL.
int coord_k8s_ref_check(const struct coord_k8s_ref *t);

// Builds the API path of the workload (sub NULL, or "scale").
int coord_k8s_ref_path(const struct coord_k8s_ref *t, const char *sub,
    char *buf, size_t n) __attribute__((warn_unused_result));

// ---------------------------------------------------------------------
// Rollout state (kubectl rollout status rules, API facts 2.2 and 2.11)

struct coord_k8s_rollout {
	bool done;	   // rollout complete
	bool in_progress;  // a rollout is under way (not done, not paused)
	bool paused;	   // Deployment spec.paused: it cannot progress
	bool failed;	   // Progressing=False ProgressDeadlineExceeded
	int64_t generation, observed;
	int64_t desired;   // spec.replicas (default 1) / desiredNumberScheduled
	int64_t current;   // status.replicas / currentNumberScheduled
	int64_t updated;   // updatedReplicas / updatedNumberScheduled
	int64_t ready;	   // readyReplicas / numberReady
	int64_t available; // availableReplicas / numberAvailable
	char reason[384];  // "2 out of 3 new replicas have been updated"
};

// Judges the rollout of a workload object already read (pure).
void coord_k8s_rollout_of(enum coord_k8s_kind kind, const cJSON *obj,
    struct coord_k8s_rollout *ret);

// GETs the workload and judges it. 0, or a cm_k8s errno (-ENOENT ...)
// with the error in ret->reason. Blocks.
int coord_k8s_rollout_status(struct cm_k8s *k, const struct coord_k8s_ref *t,
    struct coord_k8s_rollout *ret);

// ---------------------------------------------------------------------
// Verification after an action

struct coord_k8s_verify {
	bool ok;	   // rollout done and `ready` >= `desired`
	bool paused;	   // do not wait: it cannot progress (C11)
	bool failed;	   // progress deadline exceeded: do not wait either
	int64_t desired;
	int64_t ready;	   // Ready pods that are not terminating
	int64_t terminating; // pods with a deletionTimestamp (not counted)
	int64_t stuck;	   // ... past deletionTimestamp (grace elapsed)
	char reason[768];  // numbers, and stuck pods with node and time
};

// Reads the workload and its pods (by its selector): ok when the rollout
// is complete and enough Ready, non-terminating pods exist; Terminating
// pods are neither counted nor waited for, and those past their grace
// period are reported as stuck with their node (C15). `now_ms` is wall
// clock epoch ms (for "stuck"). 0, or a cm_k8s errno. Blocks.
int coord_k8s_verify(struct cm_k8s *k, const struct coord_k8s_ref *t,
    int64_t now_ms, struct coord_k8s_verify *ret);

// ---------------------------------------------------------------------
// Other controllers: HPA, GitOps, rollouts in progress

struct coord_k8s_hpa {
	bool found;
	char name[254];
	char api[32];		// "autoscaling/v2" or "autoscaling/v1"
	char rv[64];		// resourceVersion when read
	int64_t min, max;	// minReplicas (default 1), maxReplicas
	int64_t current, desired; // status
	bool at_max;		// ScalingLimited TooManyReplicas, or current >= max
	bool disabled;		// ScalingActive=False
};

// Lists HPAs in the target's namespace (autoscaling/v2, falling back to
// v1) and finds the one whose scaleTargetRef names the workload (kind
// and name, group apps). 0 (ret->found says if one exists) or an errno.
int coord_k8s_find_hpa(struct cm_k8s *k, const struct coord_k8s_ref *t,
    struct coord_k8s_hpa *ret);

struct coord_k8s_gitops {
	bool managed;
	char tool[16];	  // "flux", "argocd" or "gitops"
	char marker[384]; // "label kustomize.toolkit.fluxcd.io/name=apps"
};

// Looks for the configured marker keys among the object's labels and
// annotations (pure).
void coord_k8s_gitops_detect(const struct coord_k8s_conf *c, const cJSON *obj,
    struct coord_k8s_gitops *ret);

struct coord_k8s_owners {
	struct coord_k8s_rollout rollout;
	struct coord_k8s_hpa hpa;
	struct coord_k8s_gitops gitops;
	char uid[64];
	bool busy;	   // another actor is acting now: a rollout in progress
	char reason[768];  // all findings, "" when nothing else controls it
};

// One call for the "other controllers" safety check: reads the workload
// and its HPA. busy = a rollout is in progress (generation not observed,
// replicas not caught up); HPA and GitOps ownership are reported but
// each action applies its own policy to them. 0 or an errno. Blocks.
int coord_k8s_owners(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_ref *t, struct coord_k8s_owners *ret);

// ---------------------------------------------------------------------
// Events

struct coord_k8s_obj {
	const char *api_version; // "apps/v1", "v1", "networking.istio.io/v1"
	const char *kind;	 // "Deployment", "Pod", ...
	const char *ns;
	const char *name;
	const char *uid;	 // NULL or "": looked up for workloads
};

// Creates a core v1 Event on the object: reason (CamelCase, at most 128
// bytes of [A-Za-z0-9]), message (cut to 1024 bytes at a UTF-8
// boundary), type Normal or Warning, source.component from the config,
// firstTimestamp = lastTimestamp = now, count 1. The involvedObject
// carries the uid (fetched with a GET when not given, for Deployment,
// StatefulSet and DaemonSet) so `kubectl describe` shows it. Returns 0
// or an errno (-EINVAL for bad arguments). Blocks.
int coord_k8s_event(struct cm_k8s *k, const struct coord_k8s_conf *c,
    const struct coord_k8s_obj *o, bool warning, const char *reason,
    const char *message);

// The workload as an Event target (api apps/v1, kind, ns, name, uid).
struct coord_k8s_obj coord_k8s_ref_obj(const struct coord_k8s_ref *t,
    const char *uid);

#endif
