// SPDX-License-Identifier: MIT
// agent_kube_int: what agent_kube.c (pods, discovery, probes, permits)
// and agent_kube_cmd.c (evictions, checks, commands) share. Not a public
// interface: see agent_kube.h.
#ifndef AGENT_KUBE_INT_H
#define AGENT_KUBE_INT_H

#include "agent_kube.h"
#include "agent_kwork.h"

#define KUBE_GONE_MAX 32	// evicted pods remembered for "check"
#define KUBE_CHECK_MAX 64	// pods one check command reads
#define KUBE_SELECTOR_MAX 512
#define KUBE_SIBLINGS_MAX 1024	// pods of one controller remembered
#define KUBE_UID_MAX 64

#define KUBE_CALL_MAX 64	// pods one clear_cache/reload_config calls

typedef char kube_uid[KUBE_UID_MAX];

struct kube_cmd;

// One pod's HTTP call of a clear_cache or reload_config command.
struct kube_call {
	struct agent_http_req req;
	struct kube_cmd *cmd;
	char ns[64], name[254];
	bool done, ok;
	long status;		// HTTP status, 0 if none
	char why[160];		// failure reason
};

// Own evictions of one service (for the partition policy).
struct kube_svc {
	struct kube_svc *next;
	char name[CM_NAME_MAX];
	int64_t *ring; // monotonic times
	size_t cap, head, n;
};

// A command waiting for its API call.
struct kube_cmd {
	struct kube_cmd *next;
	uint64_t id;
	struct agent_cmd_ctx *ctx;
	char action[CM_NAME_MAX];
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX];
	uint64_t action_id;
	int64_t deadline_ms;
	struct kube_call *calls; // clear_cache, reload_config; owned
	size_t n_calls, calls_left;
	size_t skipped;		 // Ready pods over KUBE_CALL_MAX
};

// An evicted pod, remembered so that "check" can look for the pod that
// took its place: a Ready pod of the same controller that was not among
// its pods right before the eviction (siblings).
struct kube_gone {
	char ns[64], name[254], uid[KUBE_UID_MAX];
	char service[CM_NAME_MAX];
	char owner_uid[KUBE_UID_MAX];
	char selector[KUBE_SELECTOR_MAX];
	kube_uid *sib;	// owned
	size_t n_sib;
	bool sib_known; // the sibling list could be read
};

enum kjob_kind {
	KJ_LIST,
	KJ_EVICT,
	KJ_CHECK,
};

// Every job starts with this.
struct kjob {
	struct agent_kjob base;
	enum kjob_kind kind;
	struct cm_k8s *k8s; // shared, thread-safe
};

struct agent_kube {
	const struct agent_conf *conf;
	struct agent_http *http;
	struct agent_actlog *log;
	struct cm_k8s *k8s;
	struct agent_kwork *work;
	cJSON **selectors; // per workloads entry: {"matchLabels": {...}}
	struct agent_pod *pods; // sorted by namespace/name
	size_t n_pods, n_managed;
	uint64_t gen;
	// Discovery.
	bool listing;
	int64_t list_due_ms;
	int64_t last_list_wall_ms;
	char list_error[512];
	bool list_error_logged;
	uint64_t lists, list_failures;
	bool full_logged; // AGENT_KUBE_MAX_PODS reached
	uint64_t sig;
	bool have_sig, changed;
	// Own evictions per service, commands, evicted pods.
	struct kube_svc *svcs;
	struct kube_cmd *cmds;
	uint64_t next_cmd_id;
	struct kube_gone gone[KUBE_GONE_MAX];
	unsigned gone_head, gone_n;
	uint64_t evictions[AGENT_EVICT_RESULTS];
	bool stopping;
};

// agent_kube.c
struct agent_pod *kube_pod_find(struct agent_kube *k, const char *ns,
    const char *name);
void kube_permit_hold(struct agent_kube *k, struct agent_pod *p,
    const char *why, int64_t now);
void kube_own_add(struct agent_kube *k, const char *service, int64_t now);
void kube_permit_drop(struct agent_pod *p, const char *why);
void kube_probe_stop(struct agent_pod *p);
// Applies the items of a successful list started at listed_ms.
void kube_apply_items(struct agent_kube *k, const cJSON *items,
    int64_t listed_ms);

// agent_kube_cmd.c
void kube_evict_submit(struct agent_kube *k, struct agent_pod *p, bool own,
    uint64_t cmd_id);
void kube_job_apply(struct agent_kube *k, struct kjob *j, int64_t now);
int64_t kube_cmds_tick(struct agent_kube *k, int64_t now);
void kube_cmds_abort(struct agent_kube *k, int code, const char *why);
void kube_list_submit(struct agent_kube *k);
// Remembers an evicted pod; takes *sib (the pre-eviction siblings).
void kube_gone_add(struct agent_kube *k, const struct agent_pod *p,
    kube_uid **sib, size_t n_sib, bool sib_known);
void kube_gone_clear(struct agent_kube *k);

#endif
