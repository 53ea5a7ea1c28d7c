// SPDX-License-Identifier: MIT
// coord_conf: the coordinator's configuration file (YAML).
#ifndef COORD_CONF_H
#define COORD_CONF_H

#include <stdint.h>

#include "cm_conf.h"
#include "cm_msg.h"
#include "coord_alert.h"
#include "coord_rules.h"
#include "coord_safety.h"
#include "coord_notify.h"
#include "coord_auth.h"
#include "coord_k8s.h"
#include "coord_kexec.h"

struct coord_limits_conf {
	int64_t max_body;
	int64_t max_alerts;
	int64_t max_labels;
	int64_t max_name_len;	// label name bytes
	int64_t max_value_len;
	int64_t max_annotation_len;
	int64_t max_json_depth;	// nested arrays and objects in the body
	int64_t queue;		// alerts waiting for the engine
};

// Bounds on every HTTP client (coord_httpd.h says what each does).
struct coord_http_conf {
	int64_t header_timeout_ms;
	int64_t body_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t max_connections;
	int64_t max_header_bytes;
	int64_t max_reply_memory;
};

// TLS on the HTTP server: PEM files; client_ca_file makes client
// certificates mandatory (mutual TLS).
struct coord_tls_conf {
	char *cert_file;
	char *key_file;
	char *client_ca_file;
};

enum coord_automation { COORD_AUTO_RULE, COORD_AUTO_LIVE, COORD_AUTO_SHADOW,
	COORD_AUTO_APPROVAL, COORD_AUTO_OFF };

// Per-service automation, overriding rules and the rollout.
struct coord_service_conf {
	int line;
	char *name;
	int automation;		// enum coord_automation
};

// Gradual rollout: services are automated when hash(name) % 100 is below
// the current percentage; the others run in shadow. The percentage ramps
// by `step` every `interval` up to `max` while reflex's own success rate
// holds, and steps back when it does not.
struct coord_rollout_conf {
	int64_t percent;	// starting (or fixed) share
	int64_t step;		// 0 = no ramp
	int64_t interval_ms;
	int64_t max;
	int64_t min_success_percent;
};

struct coord_conf {
	char *listen;		// HTTP: "127.0.0.1:9870"
	char *agent_listen;	// nng URL agents register at
	char *agent_secret_file; // shared secret sealing the agent channel
	char *journal;		// SQLite path
	char *log_level;
	bool journal_sync_full;
	int64_t retention_ms;
	int64_t agent_lost_after_ms;
	int64_t max_agents;
	int64_t max_workloads;
	int64_t heartbeat_expect_ms;
	struct cm_strlist replica_labels;
	struct coord_limits_conf limits;
	struct cm_msg_limits wire_limits; // frames from agents (cm_msg.h)
	struct coord_safety_conf safety;
	int mode;		// enum coord_mode: live or shadow, for all rules
	int cpu_scheduling;	// enum coord_sched: the bulk threads' class
	char *prometheus_url;	// for verify.promql; "" = none
	int64_t prometheus_timeout_ms;
	struct cm_list notify;	// of struct coord_notifier_conf
	struct coord_auth_conf auth;
	struct coord_rollout_conf rollout;
	struct cm_list services; // of struct coord_service_conf
	int64_t approval_timeout_ms;
	int runtime;		// enum coord_runtime
	struct coord_k8s_conf kubernetes;
	struct coord_load_conf cluster_load;
	int64_t health_min_success_percent;
	int64_t health_max_alerts_per_minute;
	struct coord_tls_conf tls;
	struct coord_http_conf http;
	struct cm_list rules;	// of struct coord_rule_conf

	// Derived after loading (not from YAML):
	char *path;			   // owned copy of the file name
	struct coord_webhook_limits wl;
	struct coord_rules compiled;
	const char **ignore_labels;	   // replica labels, borrowed strs
	size_t n_ignore_labels;
};

enum coord_mode { COORD_MODE_LIVE, COORD_MODE_SHADOW };
enum coord_sched { COORD_SCHED_BATCH, COORD_SCHED_NORMAL };
enum coord_runtime { COORD_RUNTIME_PROCESS, COORD_RUNTIME_KUBERNETES };

extern const struct cm_conf_field coord_conf_fields[];

// Loads and validates `path` (including compiling the rules). Returns 0
// or a negative errno with "file:line: key: reason" in err. On success
// release with coord_conf_free.
int coord_conf_load(struct coord_conf *c, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void coord_conf_free(struct coord_conf *c);

// The override for `service`, or COORD_AUTO_RULE.
int coord_conf_automation(const struct coord_conf *c, const char *service);

// hash(service) % 100: the service is in the rollout below this value.
int coord_rollout_bucket(const char *service);

#endif
