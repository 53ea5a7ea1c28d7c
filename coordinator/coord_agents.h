// SPDX-License-Identifier: MIT
// coord_agents: the agent registry and the coordinator's side of the
// agent channel. Agents dial `agent_listen` (nng rep) to register and
// heartbeat; the coordinator dials each agent's command address (nng req)
// to send commands. An agent silent for `lost_after_ms` is marked lost:
// commands for it fail fast with a clear reason.
#ifndef COORD_AGENTS_H
#define COORD_AGENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_auth.h"
#include "cm_msg.h"

struct coord_agents;

// Starts listening. Returns 0 or a negative errno with a reason in err.
// `auth` (borrowed; NULL = unauthenticated) seals and checks every
// message with the shared agent secret.
int coord_agents_start(struct coord_agents **ret, const char *listen_url,
    int64_t lost_after_ms, struct cm_auth *auth, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Registered agents at most, unless configured (coord_agents_set_max).
#define COORD_AGENTS_MAX_DEFAULT 5000

// Stops the server, cuts off the commands in flight and frees all: every
// pending command has called back (see coord_agents_done_fn) before it
// returns, and no callback runs after. Once libnng's nng_close has hung
// (cm_wire_close), the commands on sockets it could not close never
// call back (their answers and timeouts are dropped).
void coord_agents_stop(struct coord_agents *a);

// Where a target runs: one agent and the instance there.
struct coord_target {
	char node[CM_NAME_MAX];
	char service[CM_NAME_MAX];
	char instance[CM_NAME_MAX]; // the agent's instance name
	bool lost;
};

// Finds instances of `service`: `instance` may be an instance name
// ("demo-a-0") or its address ("127.0.0.1:18081", Prometheus' instance
// label); "" means every instance of the service (one target per agent,
// with instance ""). Fills up to `max` targets. Returns the number found
// (0 = nobody hosts it). Thread-safe.
size_t coord_agents_resolve(struct coord_agents *a, const char *service,
    const char *instance, struct coord_target *ret, size_t max);

// Finds the live agent of the kubernetes runtime that registered pod
// `pod` (an instance name there), for a restart it runs itself.
// Registrations carry no namespace, so two pods of one name may be
// registered; one whose service is `service` is preferred, and a pod
// whose service differs is taken only when no other agent has a pod of
// that name. Returns 1 (ret filled, with the agent's service name), 0
// when no live agent has it, or -EEXIST when several do and `service`
// picks none. Thread-safe.
int coord_agents_find_pod(struct coord_agents *a, const char *service,
    const char *pod, struct coord_target *ret);

// Called once when a command finished: rv 0 with the agent's reply, or
// rv < 0 (-ETIMEDOUT, -EBADMSG bad reply; cut off by stop or by the
// agent registering at a new address: -ECANCELED when not sent yet, -EIO
// once sent, like any closed connection) with reply NULL. Runs on an nng
// thread; must not block for long (a pool's socket is freed only after
// its callbacks returned).
typedef void (*coord_agents_done_fn)(int rv, const struct cm_msg_reply *reply,
    void *arg);

// Sends `cmd` to `node` asynchronously. Returns 0 (done will be called),
// or a negative errno (done will not be called): -ENOENT unknown node (or
// no command socket), -EHOSTDOWN lost agent, -ENOMEM, or an encoding
// error. Thread-safe; not from inside coord_agents_stop.
int coord_agents_command(struct coord_agents *a, const char *node,
    const struct cm_msg_command *cmd, int64_t timeout_ms,
    coord_agents_done_fn done, void *arg);

// Decides an agent's request to restart an instance on its own (its
// probes failed). Called only for a registered node asking about a
// service in its own workload list: any other request is refused before
// (-ENOENT unknown node, -EPERM "node X does not host service Y").
// Fills `reply` (ok = permitted). Called on the registry's worker
// thread, one permit at a time; may block briefly (the engine answers
// within a second or two) while heartbeats and registrations go on.
typedef void (*coord_agents_permit_fn)(const struct cm_msg_permit *req,
    struct cm_msg_reply *reply, void *arg);

// Installs the permit handler. Without one, permits are refused with
// -ENOTSUP. Call before agents connect (not synchronized).
void coord_agents_set_permit(struct coord_agents *a, coord_agents_permit_fn fn,
    void *arg);

// Caps the registry at `max_agents` (0 counts as 1; default
// COORD_AGENTS_MAX_DEFAULT). A node already registered may always
// register again. A new node at the cap takes the slot of the agent lost
// the longest, which is forgotten (it registers again if it comes back);
// when no agent is lost it is refused with -EUSERS and "agent limit
// reached". Thread-safe; lowering the cap forgets nobody.
void coord_agents_set_max(struct coord_agents *a, size_t max_agents);

// Caps the workloads held over all agents (default
// COORD_AGENTS_MAX_WORKLOADS_DEFAULT; 0 refuses every workload). A
// registration whose workloads would pass it (the node's previous ones
// not counted, since they are replaced) is refused with -ENOSPC and
// "workload limit reached ... (max_workloads)"; agents already registered
// keep theirs. Thread-safe; lowering the cap forgets nobody.
void coord_agents_set_max_workloads(struct coord_agents *a,
    size_t max_workloads);

// Kubernetes' documented scale limits: 5,000 nodes, 150,000 pods in all.
#define COORD_AGENTS_MAX_WORKLOADS_DEFAULT 150000

// GET /api/v1/agents pages: agents per page by default and at most, and
// the workloads a page holds at most (one agent at least, so <= 1,024).
#define COORD_AGENTS_PAGE_DEFAULT 500
#define COORD_AGENTS_PAGE_MAX 1000
#define COORD_AGENTS_PAGE_WORKLOADS 10000

// One page of GET /api/v1/agents, a JSON array (free()): the agents whose
// node name sorts after `after` (NULL: from the first), in node order, at
// most `limit` (0 counts as 1) and COORD_AGENTS_PAGE_WORKLOADS workloads.
// When more follow, `next` gets the last node of the page (the `after` of
// the next page), else "". NULL on ENOMEM.
char *coord_agents_json(struct coord_agents *a, const char *after,
    size_t limit, char *next, size_t nextlen);

void coord_agents_counts(struct coord_agents *a, int64_t *registered,
    int64_t *lost);

// Instances of `service` across all agents; every instance of every
// service when `service` is NULL (the fleet size, for storm detection).
int64_t coord_agents_count_instances(struct coord_agents *a,
    const char *service);

// Re-evaluates lost agents (call about once a second).
void coord_agents_tick(struct coord_agents *a);

#endif
