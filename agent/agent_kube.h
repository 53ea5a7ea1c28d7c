// SPDX-License-Identifier: MIT
// agent_kube: the "kubernetes" runtime. The agent watches the pods of
// its node through the API server, probes the ones it manages, and
// restarts them by eviction, under the same local policy as the process
// runtime (permits from the coordinator, the partition policy, backoff).
//
// Discovery: every kubernetes.discovery_interval (and soon after an
// eviction) a worker lists GET /api/v1/pods?fieldSelector=
// spec.nodeName=<node>. A pod is *managed* when a `workloads:` entry
// covers it (namespace, matchLabels selector) or, with
// kubernetes.annotations.enabled, when it carries reflex.io/probe-port.
// Its service is the entry's name, else its owner workload (a
// ReplicaSet's Deployment, found by stripping the pod-template-hash, a
// StatefulSet, a DaemonSet, ...), else its `app` label, else its
// app.kubernetes.io/name label, else (a bare pod) its own name. Managed
// pods are announced to the
// coordinator as (service, instance = pod name, addr = podIP:port);
// when that set changes the agent registers again. Other pods are shown
// in status but never probed, announced or touched.
//
// Probes (on the main loop, through agent_http): HTTP GET
// http://<podIP>:<port><path> or a TCP connection to <podIP>:<port>, for
// Running pods with an IP that are not terminating. reflex.io/probe-port
// and reflex.io/probe-path on the pod win over the entry's probe; an
// annotated pod of no entry gets HTTP when it has a path, else TCP.
//
// Own restarts: failure_threshold consecutive failures make the pod's
// permit WANTED (struct agent_permit, as in agent_proc.h); the agent asks
// the coordinator (agent_permit.c) and reports the verdict with
// agent_kube_permit_decided(). Granted (or allowed by the partition
// policy): a worker evicts the pod with cm_k8s_evict_pod (PDB-aware,
// bounded retries). Refused, held, blocked by a PodDisruptionBudget or
// failed: nothing happens to the pod; the permit is HELD and asked again
// after restart_backoff (doubling). Every eviction the agent decides on
// (granted or allowed) counts for the partition policy, whatever the API
// server then answers.
//
// Commands: restart (instance = pod name; a whole service is refused:
// the agent evicts one named pod at a time) evicts the pod and answers
// when the API answered: ok for evicted (or deleted by the
// delete_unready policy), ok=false -EBUSY "blocked by PDB ..." when a
// PodDisruptionBudget keeps it, -ENOENT when it is gone. check reads the
// pod from the API: ok when it is Ready and not terminating; for a pod
// that this agent evicted (gone, terminating, or replaced under the same
// name) ok when a Ready pod of the same controller has taken its place:
// one that was not among the controller's pods right before the
// eviction (the agent lists them then).
// clear_cache and reload_config: the call configured for the action in
// the pod's `workloads:` entry (struct agent_kcall_conf: method, path,
// port, timeout) goes to http://<podIP>:<port><path> of every Ready,
// non-terminating pod of the service on this node (at most
// KUBE_CALL_MAX), or of the named pod when an instance is given (Running
// with an IP suffices then), all at once through agent_http (curl multi:
// the main loop never waits on them). The answer comes when every pod
// answered or the command's timeout passed: ok only when all answered
// 2xx; the message has one "pod: 200" / "pod: <reason>" item per pod,
// failures first (bounded to CM_TEXT_MAX, "..." when cut), and json
// {"action", "service", "runtime", "skipped", "results": [{"instance",
// "namespace", "ok", "status", "detail"}]}. No pod of the service:
// -ENOENT; none whose entry configures the action: -EOPNOTSUPP; none
// Ready: -EAGAIN. A signal cannot be sent through the API, so signal:
// is a config error.
//
// Threads: everything here runs on the main loop thread; API calls run
// on agent_kwork workers and come back through agent_kube_tick().
#ifndef AGENT_KUBE_H
#define AGENT_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_actlog.h"
#include "agent_cmd.h"
#include "agent_conf.h"
#include "agent_http.h"
#include "agent_metrics.h"
#include "agent_proc.h"
#include "cm_k8s.h"

#define AGENT_KUBE_MAX_PODS 1024   // pods of the node kept (and announced)
#define AGENT_KUBE_ANN_PORT "reflex.io/probe-port"
#define AGENT_KUBE_ANN_PATH "reflex.io/probe-path"
#define AGENT_KUBE_RELIST_MS 1000  // re-list this soon after an eviction

enum agent_evict_result {
	AGENT_EVICT_EVICTED = 0,
	AGENT_EVICT_DELETED,
	AGENT_EVICT_BLOCKED,
	AGENT_EVICT_GONE,
	AGENT_EVICT_FAILED,
};

// What the pod is to the agent (status and "check").
enum agent_pod_state {
	AGENT_POD_PENDING = 0, // not Running yet, or no IP
	AGENT_POD_STARTING,    // Running; probe not passed yet (or, without a
			       // probe, not Ready per the API)
	AGENT_POD_RUNNING,     // probe passes (or Ready per the API)
	AGENT_POD_UNHEALTHY,   // probe passed before, fails now
	AGENT_POD_EVICTING,    // an eviction request is in flight
	AGENT_POD_TERMINATING, // deletionTimestamp set
	AGENT_POD_COMPLETED,   // phase Succeeded or Failed
};

struct agent_pod {
	struct agent_pod *next;
	char ns[64];
	char name[254];
	char uid[64];
	bool managed;
	char why_unmanaged[128];	// "" when managed
	char service[CM_NAME_MAX];	// managed pods
	const struct agent_kwl_conf *wl; // covering entry, NULL if none
	char ip[48];			// "" if none (or not an IP)
	char addr[CM_ADDR_MAX];		// announced: ip:port, ip, or ""
	char phase[24];
	bool api_ready;			// condition Ready == True
	bool terminating;
	int64_t container_restarts;	// sum of restartCount
	char waiting[64];		// a container's waiting reason
	char owner_kind[32], owner_name[254], owner_uid[64];
	char selector[512];		// the pod's labels without the
					// controllers' hash labels, for
					// finding a replacement
	// Probe.
	bool has_probe;
	int probe_type;			// enum agent_kprobe_type
	int port;
	char path[AGENT_PROBE_PATH_MAX + 1];
	const struct agent_kprobe_conf *timing;
	const struct agent_backoff_conf *backoff;
	const struct agent_partition_conf *policy;
	struct agent_probe_state probe;	// (pid unused)
	bool probe_ready;		// req set up for the current target
	bool probe_ever_ok;		// since first seen Running
	int64_t running_since_ms;	// monotonic; 0 while not probing
	// Own restarts and evictions.
	struct agent_permit permit;
	bool evicting;
	int64_t evicted_ms;		// monotonic: last successful
					// eviction, 0 never
	unsigned evictions;		// by this agent, since first seen
	char last_action[AGENT_REASON_MAX]; // "" if none
	int64_t last_action_wall_ms;
	struct agent_inst_counters count;
	uint64_t seen;			// list generation
};

// What status shows about discovery.
struct agent_kube_view {
	const char *server;	     // borrowed
	int64_t last_list_wall_ms;   // 0 = never
	const char *last_error;	     // "" if the last list worked
	uint64_t lists, list_failures;
	size_t pods, managed;
	size_t jobs;		     // API calls queued or running
	const uint64_t *evictions;   // AGENT_EVICT_RESULTS counters
};

struct agent_kube;

// Creates the API client from conf->kubernetes.client, starts the
// workers and schedules the first list. Borrows conf, http and log for
// its life. `wake` is called from worker threads. Returns 0 and *ret
// (free with agent_kube_free) or a negative errno with a reason in err.
// Main thread, before other threads use curl.
int agent_kube_new(const struct agent_conf *conf, struct agent_http *http,
    struct agent_actlog *log, void (*wake)(void *), void *wake_arg,
    struct agent_kube **ret, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Waits for API calls in flight (see agent_kwork_free), then frees
// everything. Commands must have been answered (agent_kube_shutdown).
// NULL-safe.
void agent_kube_free(struct agent_kube *k);

// Applies finished API calls, starts the next list when due, probes,
// asks again for held permits, times out commands. Returns the next
// monotonic time it needs to run.
int64_t agent_kube_tick(struct agent_kube *k, int64_t now);

// True once after the set of managed pods (service, name, addr)
// changed: the agent registers again.
bool agent_kube_take_changed(struct agent_kube *k);

// The managed pods as workloads for a register: a new array (free())
// and its count. 0 or -ENOMEM.
int agent_kube_workloads(const struct agent_kube *k, struct cm_workload **ret,
    size_t *ret_n) __attribute__((warn_unused_result));

// Managed pods that are not RUNNING (heartbeats).
unsigned agent_kube_unhealthy(const struct agent_kube *k);

// Handles a "command" request (takes the context until it is answered).
void agent_kube_command(struct agent_kube *k, struct agent_cmd_ctx *ctx,
    int64_t now);

// Stops starting API calls and answers every pending command with
// -ESHUTDOWN. Idempotent.
void agent_kube_shutdown(struct agent_kube *k);

// True while commands wait for an answer.
bool agent_kube_busy(const struct agent_kube *k);

// ---- permits (agent_permit.c) ---------------------------------------

// The managed pod whose WANTED permit was wanted longest ago, or NULL.
struct agent_pod *agent_kube_next_wanted(struct agent_kube *k);

// The managed pod (service, name), or NULL. Borrowed until the next tick.
struct agent_pod *agent_kube_find(struct agent_kube *k, const char *service,
    const char *instance);

// Applies a verdict on the pod's pending permit (see the top).
void agent_kube_permit_decided(struct agent_kube *k, struct agent_pod *p,
    enum agent_verdict v, const char *why, int64_t now);

// Own evictions of `service` at or after `since` (monotonic).
unsigned agent_kube_own_since(const struct agent_kube *k,
    const char *service, int64_t since);

// ---- status ---------------------------------------------------------

// The pods, in namespace/name order. Borrowed until the next tick.
const struct agent_pod *agent_kube_pods(const struct agent_kube *k);

void agent_kube_view(const struct agent_kube *k, struct agent_kube_view *v);

enum agent_pod_state agent_pod_state(const struct agent_pod *p);

// "pending", "starting", ... Pure.
const char *agent_pod_state_name(enum agent_pod_state s);

// Ready as "check" sees it from the agent's side: RUNNING. Writes one
// line about its state into buf unless buf is NULL. Pure.
bool agent_pod_ready(const struct agent_pod *p, int64_t now, char *buf,
    size_t n);

// Fills up to max metrics rows (one per managed pod); returns how many.
size_t agent_kube_metrics_rows(const struct agent_kube *k,
    struct agent_metrics_inst *rows, size_t max, int64_t now);

// ---- pure helpers, exposed for tests ----------------------------------

// The service name of a pod object (see the top), or NULL. Borrowed
// from `pod`, or written into buf.
const char *agent_kube_service_of(const cJSON *pod, char *buf, size_t n);

// Parses a port annotation ("8080"): 1..65535, else -EINVAL.
int agent_kube_port_parse(const char *s);

// True for a probe path we send: starts with '/', printable ASCII
// without spaces, at most AGENT_PROBE_PATH_MAX bytes.
bool agent_kube_path_valid(const char *s);

#endif
