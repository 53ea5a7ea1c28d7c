// SPDX-License-Identifier: MIT
// agent_conf: reflex-agent's YAML configuration, argv templates, backoff.
//
// The configuration is bound by cm_conf tables (see agent_conf.c for the
// keys, their defaults and bounds, and agent_kconf.c for the kubernetes
// runtime's) and then checked as a whole: names, URLs, port ranges,
// placeholders and probe settings. Every error reads
// "file:line: key: reason".
//
// runtime: process supervises `services:` (agent_proc.h); runtime:
// kubernetes watches the pods of its node through the API server
// (`kubernetes:` and `workloads:`, agent_kube.h). Each runtime refuses
// the other's section.
#ifndef AGENT_CONF_H
#define AGENT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_conf.h"
#include "cm_k8s.h"
#include "cm_msg.h"

#define AGENT_CONF_DEFAULT_PATH "/etc/reflex/agent.yaml"
#define AGENT_MAX_INSTANCES 64	 // per service
#define AGENT_MAX_SERVICES 64
#define AGENT_MAX_ARGS 128	 // command arguments per service
#define AGENT_ARG_MAX 4096	 // bytes per argument / env value, expanded
#define AGENT_MAX_ENV 128	 // env entries per service
#define AGENT_PROBE_PATH_MAX 1024
#define AGENT_PARTITION_MAX 1000 // partition_policy.max_restarts

#define AGENT_MAX_WORKLOADS 64	 // kubernetes: workloads entries

enum agent_runtime {
	AGENT_RUNTIME_PROCESS = 0,
	AGENT_RUNTIME_KUBERNETES,
};

struct agent_probe_conf {
	int line; // 0 when the service has no probe: section
	char *path;
	int64_t period_ms;
	int64_t timeout_ms;
	int64_t failure_threshold;
	int64_t initial_delay_ms;
};

struct agent_backoff_conf {
	int line;
	int64_t initial_ms;
	int64_t max_ms;
	int64_t reset_after_ms; // healthy this long -> backoff starts over
};

// What an agent may do on its own while the coordinator cannot be asked
// (not connected, or no answer within permit_timeout): restart a service's
// instances at most max_restarts times within window. Every own restart
// counts (probe or crash, permitted by the coordinator or by this policy);
// restarts the coordinator commanded do not.
struct agent_partition_conf {
	int line;
	int64_t max_restarts; // 0: never restart without the coordinator
	int64_t window_ms;
};

struct agent_svc_conf {
	int line;
	char *name;
	struct cm_strlist command;
	int64_t instances;
	int64_t base_port;
	struct cm_strmap env;
	int64_t stop_grace_ms;
	struct agent_probe_conf probe;
	struct agent_backoff_conf restart_backoff;
	struct agent_partition_conf partition_policy;
};

// ---- the kubernetes runtime ------------------------------------------

enum agent_kprobe_type {
	AGENT_KPROBE_HTTP = 0, // GET http://<podIP>:<port><path>, 2xx/3xx ok
	AGENT_KPROBE_TCP,      // a TCP connection to <podIP>:<port> opens
};

// How the pods of a workload (or annotated pods) are probed.
struct agent_kprobe_conf {
	int line;		   // 0 when the workload has no probe:
	int type;		   // enum agent_kprobe_type
	char *path;		   // HTTP path
	int64_t port;		   // 0: the pod's reflex.io/probe-port
	int64_t period_ms;
	int64_t timeout_ms;
	int64_t failure_threshold;
	int64_t initial_delay_ms;  // after the pod is first seen Running
};

enum agent_kcall_method {
	AGENT_KCALL_POST = 0,
	AGENT_KCALL_PUT,
	AGENT_KCALL_GET,
};

#define AGENT_KCALL_PATH_MAX 256 // clear_cache / reload_config path

// An action (clear_cache, reload_config) as an HTTP call on each pod:
// <method> http://<podIP>:<port><path>, with an empty body; 2xx = done.
// `signal` is parsed only to be refused: the API server cannot send a
// signal to a container.
struct agent_kcall_conf {
	int line;		   // 0 when the action is not configured
	int method;		   // enum agent_kcall_method
	char *path;
	int64_t port;		   // 1..65535 once checked
	int64_t timeout_ms;
	char *signal;		   // must stay NULL (refused)
};

// One entry of `workloads:`: which pods of this node it covers (all of
// `selector`, a matchLabels map, in `namespace` or in every namespace),
// under which service name, and how they are probed and restarted.
struct agent_kwl_conf {
	int line;
	char *name;		    // service name; NULL: the pod's owner
				    // workload, else its app label
	char *ns;		    // NULL: every namespace
	struct cm_strmap selector;  // matchLabels; at least one label
	struct agent_kprobe_conf probe;
	struct agent_backoff_conf restart_backoff; // delay before a held
						   // permit is asked again
	struct agent_partition_conf partition_policy;
	struct agent_kcall_conf clear_cache;   // line 0: not available
	struct agent_kcall_conf reload_config; // line 0: not available
};

// Options of cm_k8s_evict_pod (see cm_k8s.h).
struct agent_kevict_conf {
	int line;
	int64_t max_tries;
	int64_t backoff_ms;
	int64_t budget_ms;
	int64_t grace_seconds; // -1: the pod's own
	bool delete_unready;
};

// Pods that no workload covers but that carry reflex.io/probe-port.
struct agent_kannot_conf {
	int line;
	bool enabled;
	struct agent_kprobe_conf probe; // period, timeout, thresholds only
	struct agent_backoff_conf restart_backoff;
	struct agent_partition_conf partition_policy;
};

struct agent_kube_conf {
	int line;
	struct cm_k8s_settings client;
	int64_t discovery_interval_ms;
	int64_t workers; // threads for API calls (they block)
	struct agent_kevict_conf evict;
	struct agent_kannot_conf annotations;
};

struct agent_conf {
	char *path; // the file it was loaded from (owned)
	char *node;
	char *coordinator;
	char *listen;
	char *advertise; // URL announced to the coordinator (${VAR}
			 // expanded at load); NULL: listen
	char *status_socket;
	int runtime;   // enum agent_runtime
	int log_level; // CM_LOG_*
	int64_t heartbeat_interval_ms;
	int64_t permit_timeout_ms; // no answer to a permit in this time:
				   // the partition policy decides
	char *metrics_listen;	   // "host:port" of /metrics, NULL = off
	char *coordinator_secret_file; // shared secret sealing the
				   // coordinator channel (cm_auth.h), NULL =
				   // the channel is not authenticated
	struct cm_list services;   // of struct agent_svc_conf (process)
	struct agent_kube_conf kubernetes; // runtime kubernetes
	struct cm_list workloads;  // of struct agent_kwl_conf (kubernetes)
	struct cm_msg_limits wire_limits; // frames it receives (cm_msg.h)
};

// Loads and validates `path` into *ret (zeroed first). Returns 0, or a
// negative errno with "file:line: key: reason" in err; on failure nothing
// stays allocated. Blocks on file I/O only. Any thread.
int agent_conf_load(struct agent_conf *ret, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));

// Same from memory; `name` stands for the file in messages. For tests.
int agent_conf_load_mem(struct agent_conf *ret, const char *name,
    const char *text, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Frees what load allocated and zeroes *c. NULL-safe.
void agent_conf_free(struct agent_conf *c);

// Borrowed pointer to service i (i < c->services.n).
const struct agent_svc_conf *agent_conf_svc(const struct agent_conf *c,
    size_t i);

// Borrowed pointer to workload i (i < c->workloads.n).
const struct agent_kwl_conf *agent_conf_kwl(const struct agent_conf *c,
    size_t i);

// The URL the agent announces to the coordinator (advertise, else
// listen). Borrowed.
const char *agent_conf_advertised(const struct agent_conf *c);

// Internal to agent_conf.c and agent_kconf.c: the tables of the
// kubernetes runtime's keys, its whole-file checks (run after the
// common ones; `text` is the file for line numbers) and ${VAR}
// expansion of advertise (into a new string, free()).
extern const struct cm_conf_field agent_kube_fields[];
extern const struct cm_conf_field agent_kwl_fields[];
int agent_kconf_check(const struct agent_conf *c, const char *name,
    char *err, size_t errlen);

// "POST", "PUT" or "GET" for an enum agent_kcall_method. Pure.
const char *agent_kcall_method_name(int method);
int agent_conf_expand_env(const char *tmpl, char **ret, char *why,
    size_t whylen);

// Values substituted into command arguments and env values.
struct agent_subst {
	const char *node;
	const char *service;
	const char *instance;
	int port;
};

// Checks that every "{word}" in `tmpl` names a known placeholder ({port},
// {instance}, {service}, {node}). Returns 0 or -EINVAL with the offending
// placeholder in why. Pure.
int agent_subst_check(const char *tmpl, char *why, size_t whylen);

// Expands the placeholders of `tmpl` into buf (size n). Returns the
// length, or -ENAMETOOLONG when the result does not fit. Pure.
int agent_subst_expand(const char *tmpl, const struct agent_subst *s,
    char *buf, size_t n) __attribute__((warn_unused_result));

// Builds the NULL-terminated argv of an instance from the service's
// command template. Returns 0 and *ret (returns new, free with
// agent_argv_free), or -ENOMEM / -ENAMETOOLONG. Pure.
int agent_argv_build(const struct cm_strlist *tmpl,
    const struct agent_subst *s, char ***ret)
    __attribute__((warn_unused_result));

// Frees a NULL-terminated vector from agent_argv_build or
// agent_envp_build. NULL-safe.
void agent_argv_free(char **v);

// Builds the environment of an instance: `base` (e.g. environ) without
// the names the service overrides, then the service's env (values
// expanded), then REFLEX_NODE, REFLEX_SERVICE, REFLEX_INSTANCE and
// REFLEX_PORT. Returns 0 and *ret (free with agent_argv_free) or a
// negative errno. Pure.
int agent_envp_build(char *const *base, const struct cm_strmap *env,
    const struct agent_subst *s, char ***ret)
    __attribute__((warn_unused_result));

// Delay before restart number `failures` (1 = first unplanned restart in
// a row): initial_ms doubled failures-1 times, capped at max_ms; 0 for
// failures == 0. Overflow-safe. Pure.
int64_t agent_backoff_delay(const struct agent_backoff_conf *b,
    unsigned failures);

// Instance name "<service>-<i>" into buf. Returns 0 or -ENAMETOOLONG.
int agent_instance_name(const char *service, unsigned i, char *buf,
    size_t n);

// Checks a "host:port" listen address: host is a name or IPv4 address of
// [A-Za-z0-9.-] or a bracketed IPv6 address, port is 1..65535. Returns 0
// or -EINVAL with the reason in why. Pure.
int agent_hostport_check(const char *s, char *why, size_t whylen);

// The key reference (for --help-config).
void agent_conf_print_reference(void);

#endif
