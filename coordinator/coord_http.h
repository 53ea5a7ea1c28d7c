// SPDX-License-Identifier: MIT
// coord_http: the coordinator's HTTP routes, served by coord_httpd (which
// bounds every client: http.* keys): the Alertmanager webhook, the read
// API, /metrics and the health endpoints.
//
//   POST /api/v1/alerts, /webhook/alert   Alertmanager webhook (v4)
//   GET  /api/v1/actions?service=&alertname=&state=&since=&limit=
//   GET  /api/v1/agents
//   GET  /metrics                          Prometheus text format
//   GET  /health                           healthy|degraded|unhealthy + reasons
//   GET  /healthz, /readyz                 liveness / readiness
//   POST /api/v1/pause, /api/v1/resume     operator: stop/restart automation
//   POST /api/v1/approve, /api/v1/reject   operator: decide a waiting plan
//
// With auth configured, the webhook needs Alertmanager's bearer token or
// basic credentials, and pause/resume need the operator's bearer token:
// otherwise 401 (and nothing is stored or started).
//
// The webhook answers as soon as the alerts are committed to the journal
// (200), never after an action: 400 for a malformed body, 413 for one
// over a limit, 503 only when the alerts could not be queued or stored
// (Alertmanager then retries, and deduplication absorbs the retry).
#ifndef COORD_HTTP_H
#define COORD_HTTP_H

#include "coord_agents.h"
#include "coord_auth.h"
#include "coord_conf.h"
#include "coord_engine.h"
#include "coord_journal.h"

struct coord_http;

// Borrowed collaborators; they must outlive the server.
struct coord_http_deps {
	const struct coord_conf *conf;
	struct coord_journal *journal;
	struct coord_agents *agents;
	struct coord_engine *engine;
	const struct coord_auth *auth;
};

int coord_http_start(struct coord_http **ret, const struct coord_http_deps *d,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Stops accepting, closes the connections and waits for the replies
// still owed (webhooks waiting for their journal commit). NULL-safe.
void coord_http_stop(struct coord_http *h);

#endif
