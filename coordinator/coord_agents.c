// SPDX-License-Identifier: MIT
// coord_agents: registry, register/heartbeat server, command client.
//
// Threads. SRV_CONTEXTS rep contexts answer agents from their aio
// callbacks (nng's task threads): heartbeats, registrations, bad frames
// and unknown types are answered there. Two things may wait and never run
// on a callback: permits (the engine decides within a couple of seconds)
// and closing an agent's command socket (nng_close, then waiting for its
// commands' callbacks); both go to one worker thread.
//
// Commands: each agent's req socket has a pool of slots (a context and
// its aio), reused from one command to the next; a pool is detached from
// its agent under the registry lock and closed on the worker (or by
// coord_agents_stop), which waits for every command in flight on it to
// have called back before freeing it.
//
// Locks: `mu` guards the registry (v, buckets, every agent's fields and
// its pool pointer); a pool's `mu` its idle list and busy count (taken
// after the registry's); `wmu` the worker's queues. Nothing waits for an
// nng callback while holding `mu`.
#include "coord_agents.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cm_hash.h"
#include "cm_log.h"
#include "cm_time.h"
#include "cm_wire.h"
#include "cm_thread.h"
#include "coord_metrics.h"

#define SRV_CONTEXTS 16	 // agents' requests being answered at once
#define POOL_KEEP 8	 // idle command slots a pool keeps across a tick
#define HASH_MIN 64	 // buckets of the node-name index, at least
#define WIRE_RESERVE 512 // bytes reserved in an nng_msg before encoding

struct cmd_pool;

// One command slot: a req context and its aio, reused by the pool's
// commands one after another.
struct cmd {
	struct cmd_pool *pool;
	struct cmd *next; // idle list
	nng_ctx ctx;
	nng_aio *aio;
	bool sent;
	coord_agents_done_fn done;
	void *arg;
};

// An agent's command socket and its slots. Owned by its agent until
// detached (new address, eviction, stop); then owned by pool_close(),
// or, when its socket's close was left behind or skipped (libnng
// stuck), kept on the registry's `left` list: nng may still call back
// into it, and the stop orphans it (below) instead of freeing it.
struct cmd_pool {
	nng_socket sock; // req, dialing the agent's address
	nng_dialer dialer;
	struct coord_agents *owner;
	char node[CM_NAME_MAX]; // for the pipe callback and logs
	struct cmd_pool *next;	// worker's list of pools to close, or left
	pthread_mutex_t mu;
	pthread_cond_t drained; // busy reached 0, or calling did (orphaned)
	struct cmd *idle;	// free slots, owned
	size_t n_idle;
	size_t busy;	 // slots with a command in flight
	size_t calling;	 // command callbacks running past cb_enter
	bool orphaned;	 // stopped with its socket open: callbacks drop all
};

// A registered workload, stored compactly: the strings live in the same
// allocation as the agent's workload array (one malloc, one free), not in
// the wire struct's fixed arrays (~385 bytes each).
struct workload {
	const char *service, *instance, *addr;
	// The workload index (see below); set while the agent is registered.
	struct agent *ag;
	struct workload *snext, *sprev; // its service's list
	// By (service, instance|addr): chains with a back-pointer (the
	// previous entry's link or the bucket) so removal does not walk them.
	struct workload *inext, *anext;
	struct workload **iprev, **aprev;
};

// A service's entry in the workload index: how many workloads it has and
// the list of them (each agent's contiguous: added together).
struct svc {
	struct svc *next; // bucket chain
	uint64_t hash;
	size_t count;
	struct workload *head;
	char name[];
};

struct agent {
	char node[CM_NAME_MAX];
	char addr[CM_ADDR_MAX];
	char runtime[CM_NAME_MAX];
	struct workload *workloads; // owned, with its strings (see wl_pack)
	size_t n_workloads;
	int64_t registered_ms;
	int64_t last_seen_mono;
	uint64_t heartbeats;
	uint32_t unhealthy;
	bool lost;
	uint64_t hash;		// name_hash(node)
	struct agent *hnext;	// bucket chain
	struct cmd_pool *pool; // owned; NULL: no command socket
	uint64_t resolved;	// the resolve that last took it (mu)
};

enum srv_phase {
	SRV_RECV, // waiting for a request
	SRV_WORK, // request queued for the worker
	SRV_SEND, // answer being sent
};

// One rep context of the register/heartbeat server.
struct srv_ctx {
	struct coord_agents *owner;
	struct srv_ctx *next; // worker queue
	nng_ctx ctx;
	nng_aio *aio;
	enum srv_phase phase;
	struct cm_msg m; // the request while SRV_WORK (owned)
};

struct coord_agents {
	pthread_mutex_t mu;
	struct agent **v; // registered agents (owned), in no order
	size_t n, cap;
	struct agent **buckets; // the node-name index: chains over v
	size_t n_buckets;	// 0 or a power of two
	uint64_t seed;
	int64_t lost_after_ms;
	size_t max_agents;
	size_t n_workloads;   // over all agents
	size_t max_workloads; // cap on n_workloads
	// The workload index, so that resolving a target and counting a
	// service's instances cost what the answer holds, not a walk over
	// every agent's workloads: services by name, workloads by
	// (service, instance) and by (service, addr). Guarded by mu.
	struct svc **svcs;
	size_t n_svc_buckets;	// 0 or a power of two
	size_t n_svcs;
	struct workload **by_inst, **by_addr;
	size_t n_wl_buckets;	// 0 or a power of two
	uint64_t resolves;	// coord_agents_resolve calls (agent.resolved)
	nng_socket rep;
	bool rep_open;
	struct srv_ctx srv[SRV_CONTEXTS];
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	struct srv_ctx *whead, *wtail; // permits to decide
	struct cmd_pool *dead;	       // pools to close
	struct cmd_pool *left;	       // pools whose close was not done
	atomic_bool stopping;
	atomic_int left_open; // sockets not closed: libnng was stuck
	coord_agents_permit_fn permit_fn;
	void *permit_arg;
	struct cm_auth *auth; // NULL: the channel is not authenticated
};

// ---- framing ---------------------------------------------------------------

static int
wire_decode(struct coord_agents *a, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen)
{
	if (a->auth == NULL)
		return cm_msg_decode(m, buf, len, err, errlen);
	return cm_auth_decode(a->auth, m, buf, len, err, errlen);
}

// ---- the node-name index ---------------------------------------------------

// FNV-1a from a per-registry random seed, with the high bits folded into
// the low ones the bucket mask keeps.
static uint64_t
name_hash(const struct coord_agents *a, const char *s)
{
	uint64_t h = cm_fnv1a(CM_FNV_OFFSET ^ a->seed, s);

	return h ^ (h >> 32);
}

static struct agent **
bucket_of(struct coord_agents *a, uint64_t hash)
{
	return &a->buckets[hash & (a->n_buckets - 1)];
}

static struct agent *
find_locked(struct coord_agents *a, const char *node)
{
	uint64_t h;

	if (a->n_buckets == 0)
		return NULL;
	h = name_hash(a, node);
	for (struct agent *ag = *bucket_of(a, h); ag != NULL; ag = ag->hnext)
		if (ag->hash == h && strcmp(ag->node, node) == 0)
			return ag;
	return NULL;
}

// Doubles the index (at least HASH_MIN buckets) so that it has a bucket
// per agent after one more is added. Caller holds mu.
static int
index_grow_locked(struct coord_agents *a)
{
	size_t nb = a->n_buckets ? a->n_buckets * 2 : HASH_MIN;
	struct agent **b;

	if (a->n + 1 <= a->n_buckets)
		return 0;
	b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	free(a->buckets);
	a->buckets = b;
	a->n_buckets = nb;
	for (size_t i = 0; i < a->n; i++) {
		struct agent **head = bucket_of(a, a->v[i]->hash);

		a->v[i]->hnext = *head;
		*head = a->v[i];
	}
	return 0;
}

static void
index_remove_locked(struct coord_agents *a, struct agent *ag)
{
	struct agent **pp = bucket_of(a, ag->hash);

	while (*pp != NULL && *pp != ag)
		pp = &(*pp)->hnext;
	if (*pp == ag)
		*pp = ag->hnext;
	ag->hnext = NULL;
}

// ---- the workload index ----------------------------------------------------

// name_hash of service, a separator, then s.
static uint64_t
pair_hash(const struct coord_agents *a, const char *service, const char *s)
{
	uint64_t h = cm_fnv1a(name_hash(a, service) * CM_FNV_PRIME, s);

	return h ^ (h >> 32);
}

static struct svc *
svc_find_locked(const struct coord_agents *a, const char *service)
{
	uint64_t h;

	if (a->n_svc_buckets == 0)
		return NULL;
	h = name_hash(a, service);
	for (struct svc *v = a->svcs[h & (a->n_svc_buckets - 1)]; v != NULL;
	    v = v->next)
		if (v->hash == h && strcmp(v->name, service) == 0)
			return v;
	return NULL;
}

// Rehashes the service table to nb buckets. Returns 0 or -ENOMEM.
static int
svc_rehash_locked(struct coord_agents *a, size_t nb)
{
	struct svc **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_svc_buckets; i++) {
		struct svc *v, *next;

		for (v = a->svcs[i]; v != NULL; v = next) {
			next = v->next;
			v->next = b[v->hash & (nb - 1)];
			b[v->hash & (nb - 1)] = v;
		}
	}
	free(a->svcs);
	a->svcs = b;
	a->n_svc_buckets = nb;
	return 0;
}

// The service's entry, made when it has none. NULL on ENOMEM.
static struct svc *
svc_get_locked(struct coord_agents *a, const char *service)
{
	struct svc *v = svc_find_locked(a, service);
	size_t len;

	if (v != NULL)
		return v;
	if (a->n_svcs + 1 > a->n_svc_buckets &&
	    svc_rehash_locked(a, a->n_svc_buckets ? a->n_svc_buckets * 2 :
	    HASH_MIN) < 0)
		return NULL;
	len = strlen(service);
	v = calloc(1, sizeof(*v) + len + 1);
	if (v == NULL)
		return NULL;
	memcpy(v->name, service, len + 1);
	v->hash = name_hash(a, service);
	v->next = a->svcs[v->hash & (a->n_svc_buckets - 1)];
	a->svcs[v->hash & (a->n_svc_buckets - 1)] = v;
	a->n_svcs++;
	return v;
}

static void
svc_drop_locked(struct coord_agents *a, struct svc *v)
{
	struct svc **pp = &a->svcs[v->hash & (a->n_svc_buckets - 1)];

	while (*pp != v)
		pp = &(*pp)->next;
	*pp = v->next;
	a->n_svcs--;
	free(v);
}

static struct workload **
wl_bucket(const struct coord_agents *a, struct workload **tab, uint64_t h)
{
	return &tab[h & (a->n_wl_buckets - 1)];
}

// Puts w at the head of its (service, instance) and (service, addr)
// chains.
static void
wl_link_pairs(struct coord_agents *a, struct workload *w)
{
	struct workload **head;

	head = wl_bucket(a, a->by_inst, pair_hash(a, w->service, w->instance));
	w->inext = *head;
	if (*head != NULL)
		(*head)->iprev = &w->inext;
	w->iprev = head;
	*head = w;
	head = wl_bucket(a, a->by_addr, pair_hash(a, w->service, w->addr));
	w->anext = *head;
	if (*head != NULL)
		(*head)->aprev = &w->anext;
	w->aprev = head;
	*head = w;
}

// Makes room for `more` workloads in the (service, instance|addr) tables:
// at least as many buckets as workloads. Returns 0 or -ENOMEM.
static int
wl_tables_reserve_locked(struct coord_agents *a, size_t more)
{
	size_t need = a->n_workloads + more, nb = a->n_wl_buckets;
	struct workload **bi, **ba;

	if (need <= nb)
		return 0;
	if (nb == 0)
		nb = HASH_MIN;
	while (nb < need)
		nb *= 2;
	bi = calloc(nb, sizeof(*bi));
	ba = calloc(nb, sizeof(*ba));
	if (bi == NULL || ba == NULL) {
		free(bi);
		free(ba);
		return -ENOMEM;
	}
	free(a->by_inst);
	free(a->by_addr);
	a->by_inst = bi;
	a->by_addr = ba;
	a->n_wl_buckets = nb;
	// Every indexed workload again (the old chains are gone).
	for (size_t i = 0; i < a->n; i++) {
		struct agent *ag = a->v[i];

		for (size_t j = 0; j < ag->n_workloads; j++)
			if (ag->workloads[j].ag != NULL) // indexed already
				wl_link_pairs(a, &ag->workloads[j]);
	}
	return 0;
}

static void
wl_unindex_one_locked(struct coord_agents *a, struct workload *w)
{
	struct svc *v = svc_find_locked(a, w->service);

	if (w->ag == NULL)
		return;
	if (w->sprev != NULL)
		w->sprev->snext = w->snext;
	else if (v != NULL)
		v->head = w->snext;
	if (w->snext != NULL)
		w->snext->sprev = w->sprev;
	if (v != NULL && --v->count == 0)
		svc_drop_locked(a, v);
	*w->iprev = w->inext;
	if (w->inext != NULL)
		w->inext->iprev = w->iprev;
	*w->aprev = w->anext;
	if (w->anext != NULL)
		w->anext->aprev = w->aprev;
	w->ag = NULL;
	w->snext = w->sprev = w->inext = w->anext = NULL;
	w->iprev = w->aprev = NULL;
}

// Takes the agent's workloads out of the index.
static void
wl_unindex_locked(struct coord_agents *a, struct agent *ag)
{
	for (size_t j = 0; j < ag->n_workloads; j++)
		wl_unindex_one_locked(a, &ag->workloads[j]);
}

// Puts the agent's workloads (not counted in n_workloads yet) into the
// index. On ENOMEM nothing of them stays indexed.
static int
wl_index_locked(struct coord_agents *a, struct agent *ag)
{
	struct svc *v;

	if (wl_tables_reserve_locked(a, ag->n_workloads) < 0)
		return -ENOMEM;
	for (size_t j = 0; j < ag->n_workloads; j++) {
		struct workload *w = &ag->workloads[j];

		v = svc_get_locked(a, w->service);
		if (v == NULL) {
			wl_unindex_locked(a, ag);
			return -ENOMEM;
		}
		w->ag = ag;
		w->sprev = NULL;
		w->snext = v->head;
		if (v->head != NULL)
			v->head->sprev = w;
		v->head = w;
		v->count++;
		wl_link_pairs(a, w);
	}
	return 0;
}

// ---- command pools ---------------------------------------------------------

static void
pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	const struct cmd_pool *pool = arg;

	(void)p;
	(void)ev;
	cm_debug("agents.connection_closed", "node=%s", cm_q(pool->node));
}

static void pool_retire_locked(struct coord_agents *a, struct cmd_pool *p);

// Opens a pool whose socket dials `addr` (in the background). Returns 0,
// -ENOMEM, or -EINVAL for an address nng refuses. Caller holds mu.
static int
pool_open(struct coord_agents *a, const char *node, const char *addr,
    struct cmd_pool **ret)
{
	struct cmd_pool *p = calloc(1, sizeof(*p));
	int rv;

	if (p == NULL)
		return -ENOMEM;
	p->owner = a;
	snprintf(p->node, sizeof(p->node), "%s", node);
	if (nng_req0_open(&p->sock) != 0) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->drained, NULL);
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, cm_msg_recv_max());
	// Commands are not idempotent: never let req resend on its own.
	nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 2000);
	nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_gone, p);
	rv = nng_dial(p->sock, addr, &p->dialer, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		pool_retire_locked(a, p); // nng_close waits: not here
		return -EINVAL;
	}
	*ret = p;
	return 0;
}

static void
slot_free(struct cmd *c)
{
	nng_ctx_close(c->ctx); // ECLOSED once the socket is closed: fine
	nng_aio_free(c->aio);  // waits for the end of its callback
	free(c);
}

// Closes s; false when its close was left behind or not tried (a
// warning for the one left behind, a count of the others at the stop).
static bool
sock_close(struct coord_agents *a, nng_socket s, const char *what,
    const char *node)
{
	switch (cm_wire_close(s, CM_WIRE_CLOSE_WAIT_MS)) {
	case CM_WIRE_CLOSED:
		return true;
	case CM_WIRE_LEFT:
		cm_warn("agents.close_stuck", "socket=%s node=%s wait_ms=%d "
		    "reason=%s", what, cm_q(node), CM_WIRE_CLOSE_WAIT_MS,
		    cm_q("nng_close did not return (a libnng 1.5.2 race "
		    "with a peer sending): left open, and every later "
		    "socket too"));
		break;
	case CM_WIRE_SKIPPED:
		atomic_fetch_add(&a->left_open, 1);
		break;
	}
	return false;
}

// Closes p's socket (its commands in flight call back with -ECANCELED),
// waits until they all have, and frees p. Never on an nng callback, and
// without mu held. A close left behind or skipped keeps p on the `left`
// list (nng may still call back into it), its dialer closed.
static void
pool_close(struct cmd_pool *p)
{
	struct coord_agents *a = p->owner;
	struct cmd *c;

	if (!sock_close(a, p->sock, "command", p->node)) {
		// A retired pool at least stops redialing (every 2 s, for
		// ever: a core's worth at thousands of vanished agents) and
		// drops its connection, which fails its commands in flight.
		// Closing a dialer does not wait for libnng's stuck reaper
		// (tried: it returns at once). At the stop, the commands in
		// flight are orphaned instead (coord_agents_stop).
		if (!atomic_load(&a->stopping))
			(void)nng_dialer_close(p->dialer);
		pthread_mutex_lock(&a->wmu);
		p->next = a->left;
		a->left = p;
		pthread_mutex_unlock(&a->wmu);
		return;
	}
	// nng_close returned after the pipe callbacks ran.
	pthread_mutex_lock(&p->mu);
	while (p->busy > 0)
		pthread_cond_wait(&p->drained, &p->mu);
	c = p->idle;
	p->idle = NULL;
	pthread_mutex_unlock(&p->mu);
	while (c != NULL) {
		struct cmd *next = c->next;

		slot_free(c);
		c = next;
	}
	pthread_cond_destroy(&p->drained);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

// Makes p's command callbacks drop what they get from now on (neither
// its owner nor a done callback is touched), and waits for those past
// cb_enter to have returned: after this, nothing of the registry or of
// the callers' is reached through p, whose socket stays open (its close
// was left behind). p itself is never freed. Without mu held.
static void
pool_orphan(struct cmd_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->orphaned = true;
	while (p->calling > 0)
		pthread_cond_wait(&p->drained, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

// A command callback begins: false when p is orphaned (the callback
// must only drop its message). Otherwise counted until cb_leave() or
// slot_put().
static bool
cb_enter(struct cmd_pool *p)
{
	bool ok;

	pthread_mutex_lock(&p->mu);
	ok = !p->orphaned;
	if (ok)
		p->calling++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static void
cb_leave_locked(struct cmd_pool *p)
{
	if (--p->calling == 0 && p->orphaned)
		pthread_cond_broadcast(&p->drained);
}

static void
cb_leave(struct cmd_pool *p)
{
	pthread_mutex_lock(&p->mu);
	cb_leave_locked(p);
	pthread_mutex_unlock(&p->mu);
}

static void cmd_cb(void *arg);

// A slot for one command on p: an idle one, or a new one. Counted busy
// until slot_put(). Caller holds the registry's mu (p stays attached).
static struct cmd *
slot_take(struct cmd_pool *p)
{
	struct cmd *c;

	pthread_mutex_lock(&p->mu);
	c = p->idle;
	if (c != NULL) {
		p->idle = c->next;
		p->n_idle--;
		p->busy++;
	}
	pthread_mutex_unlock(&p->mu);
	if (c != NULL)
		return c;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->pool = p;
	if (nng_ctx_open(&c->ctx, p->sock) != 0) {
		free(c);
		return NULL;
	}
	if (nng_aio_alloc(&c->aio, cmd_cb, c) != 0) {
		nng_ctx_close(c->ctx);
		free(c);
		return NULL;
	}
	pthread_mutex_lock(&p->mu);
	p->busy++;
	pthread_mutex_unlock(&p->mu);
	return c;
}

// Returns a slot whose command has called back, and leaves the callback
// when it entered (cb_enter; an orphaned pool's was not: the slot is
// kept on its idle list all the same, reachable). The last thing a
// command callback does: p may be freed as soon as the lock is released.
static void
slot_put(struct cmd *c, bool entered)
{
	struct cmd_pool *p = c->pool;

	c->done = NULL;
	c->arg = NULL;
	pthread_mutex_lock(&p->mu);
	c->next = p->idle;
	p->idle = c;
	p->n_idle++;
	if (entered)
		cb_leave_locked(p);
	if (--p->busy == 0)
		pthread_cond_broadcast(&p->drained);
	pthread_mutex_unlock(&p->mu);
}

// Detaches p to be closed by the worker. Caller holds mu.
static void
pool_retire_locked(struct coord_agents *a, struct cmd_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&a->wmu);
	p->next = a->dead;
	a->dead = p;
	pthread_cond_signal(&a->wcv);
	pthread_mutex_unlock(&a->wmu);
}

// ---- registry --------------------------------------------------------------

// Points an agent's command socket at addr, retiring the old one (its
// in-flight commands fail with -ECANCELED) when the address changed, or
// at every registration once libnng is stuck: its connection may have
// dropped (the agent restarted), and it would not dial again then.
// Caller holds mu.
static int
agent_dial_locked(struct coord_agents *a, struct agent *ag, const char *addr)
{
	if (ag->pool != NULL && strcmp(ag->addr, addr) == 0 &&
	    !cm_wire_wedged())
		return 0;
	pool_retire_locked(a, ag->pool);
	ag->pool = NULL;
	snprintf(ag->addr, sizeof(ag->addr), "%s", addr);
	return pool_open(a, ag->node, addr, &ag->pool);
}

// Frees an agent taken out of the registry, retiring its pool. Caller
// holds mu.
static void
agent_free_locked(struct coord_agents *a, struct agent *ag)
{
	pool_retire_locked(a, ag->pool);
	wl_unindex_locked(a, ag);
	a->n_workloads -= ag->n_workloads;
	free(ag->workloads);
	free(ag);
}

// The lost agent silent the longest, or -1 when none is lost.
static ptrdiff_t
longest_lost_locked(const struct coord_agents *a)
{
	ptrdiff_t best = -1;

	for (size_t i = 0; i < a->n; i++) {
		if (!a->v[i]->lost)
			continue;
		if (best < 0 ||
		    a->v[i]->last_seen_mono < a->v[best]->last_seen_mono)
			best = (ptrdiff_t)i;
	}
	return best;
}

// Makes room for one more agent under max_agents by forgetting the
// longest-lost agent (it registers again when it comes back). Returns 0,
// or -EUSERS when every registered agent is alive. Caller holds mu.
static int
make_room_locked(struct coord_agents *a)
{
	struct agent *ag;
	ptrdiff_t i;
	int64_t silent;

	if (a->n < a->max_agents)
		return 0;
	i = longest_lost_locked(a);
	if (i < 0)
		return -EUSERS;
	ag = a->v[i];
	silent = cm_mono_ms() - ag->last_seen_mono;
	cm_notice("agents.evicted", "node=%s silent_ms=%lld max_agents=%zu "
	    "reason=%s", cm_q(ag->node), (long long)silent, a->max_agents,
	    cm_q("agent limit reached: the longest-lost agent makes room"));
	coord_metrics_agent_evicted();
	index_remove_locked(a, ag);
	a->v[i] = a->v[a->n - 1];
	a->n--;
	agent_free_locked(a, ag);
	return 0;
}

// Adds a new, zeroed agent named `node`. Caller holds mu.
static int
agent_add_locked(struct coord_agents *a, const char *node,
    struct agent **ret)
{
	struct agent *ag, **head;

	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct agent **nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		a->v = nv;
		a->cap = ncap;
	}
	if (index_grow_locked(a) < 0)
		return -ENOMEM;
	ag = calloc(1, sizeof(*ag));
	if (ag == NULL)
		return -ENOMEM;
	snprintf(ag->node, sizeof(ag->node), "%s", node);
	ag->hash = name_hash(a, ag->node);
	head = bucket_of(a, ag->hash);
	ag->hnext = *head;
	*head = ag;
	a->v[a->n++] = ag;
	*ret = ag;
	return 0;
}

// ---- the register/heartbeat server -----------------------------------------

static void
srv_recv(struct srv_ctx *c)
{
	if (atomic_load(&c->owner->stopping))
		return;
	c->phase = SRV_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

// Answers the request c holds with m (sealed when the channel is
// authenticated). When nothing can be sent the request is dropped (the
// agent's exchange times out) and c receives again.
static void
srv_answer(struct srv_ctx *c, struct cm_msg *m)
{
	nng_msg *msg;
	int rv = cm_wire_msg(c->owner->auth, m, WIRE_RESERVE, &msg);

	if (rv < 0) {
		cm_err("agents.answer_failed", "type=%s error=%s",
		    cm_msg_type_name(m->type), cm_q(strerror(-rv)));
		srv_recv(c);
		return;
	}
	c->phase = SRV_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

static void
reply_send(struct srv_ctx *c, uint64_t id, bool ok, int code,
    const char *msg)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_REPLY,
		.id = id };

	m.u.reply.ok = ok;
	m.u.reply.code = code;
	snprintf(m.u.reply.message, sizeof(m.u.reply.message), "%s", msg);
	srv_answer(c, &m);
}

static void
error_send(struct srv_ctx *c, const char *code, const char *msg)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_ERROR };

	snprintf(m.u.error.code, sizeof(m.u.error.code), "%s", code);
	snprintf(m.u.error.message, sizeof(m.u.error.message), "%s", msg);
	srv_answer(c, &m);
}

// Packs the message's workloads into one allocation: the array, then the
// strings. Returns NULL on ENOMEM (or n == 0: no workloads, nothing
// allocated). The result is owned by the caller (one free()).
static struct workload *
wl_pack(const struct cm_workload *w, size_t n)
{
	struct workload *v;
	size_t size = n * sizeof(*v);
	char *p;

	if (n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		size += strnlen(w[i].service, CM_NAME_MAX - 1) +
		    strnlen(w[i].instance, CM_NAME_MAX - 1) +
		    strnlen(w[i].addr, CM_ADDR_MAX - 1) + 3;
	v = malloc(size);
	if (v == NULL)
		return NULL;
	memset(v, 0, n * sizeof(*v)); // not indexed yet
	p = (char *)(v + n);
	for (size_t i = 0; i < n; i++) {
		const char *src[3] = { w[i].service, w[i].instance, w[i].addr };
		const size_t max[3] = { CM_NAME_MAX, CM_NAME_MAX, CM_ADDR_MAX };
		const char **dst[3] = { &v[i].service, &v[i].instance,
			&v[i].addr };

		for (int k = 0; k < 3; k++) {
			size_t l = strnlen(src[k], max[k] - 1);

			memcpy(p, src[k], l);
			p[l] = '\0';
			*dst[k] = p;
			p += l + 1;
		}
	}
	return v;
}

static void
handle_register(struct srv_ctx *c, struct cm_msg *m)
{
	struct coord_agents *a = c->owner;
	struct cm_msg_register *r = &m->u.reg;
	struct agent *ag, old;
	struct workload *wl;
	size_t n_workloads, max, held, max_wl;
	int rv = 0;
	bool fresh;
	char why[192];

	wl = wl_pack(r->workloads, r->n_workloads);
	if (wl == NULL && r->n_workloads > 0) {
		reply_send(c, m->id, false, -ENOMEM, "out of memory");
		return;
	}
	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, r->node);
	fresh = ag == NULL;
	// The node's previous workloads are replaced, so they do not count.
	held = a->n_workloads - (fresh ? 0 : ag->n_workloads);
	max_wl = a->max_workloads;
	if (r->n_workloads > max_wl - (held < max_wl ? held : max_wl)) {
		pthread_mutex_unlock(&a->mu);
		free(wl);
		coord_metrics_workloads_refused();
		cm_warn("agents.register_refused", "node=%s addr=%s "
		    "workloads=%zu held=%zu max_workloads=%zu reason=%s",
		    cm_q(r->node), cm_q(r->addr), r->n_workloads, held,
		    max_wl, cm_q("workload limit reached"));
		snprintf(why, sizeof(why), "workload limit reached: %zu "
		    "workloads registered, %zu more would pass %zu "
		    "(max_workloads)", held, r->n_workloads, max_wl);
		reply_send(c, m->id, false, -ENOSPC, why);
		return;
	}
	if (fresh) {
		rv = make_room_locked(a);
		if (rv == 0)
			rv = agent_add_locked(a, r->node, &ag);
	}
	max = a->max_agents;
	if (rv < 0) {
		pthread_mutex_unlock(&a->mu);
		free(wl);
		if (rv == -EUSERS) {
			coord_metrics_agent_refused();
			cm_warn("agents.register_refused", "node=%s addr=%s "
			    "max_agents=%zu reason=%s", cm_q(r->node),
			    cm_q(r->addr), max, cm_q("agent limit reached"));
			snprintf(why, sizeof(why), "agent limit reached: %zu "
			    "agents registered and none lost (max_agents)",
			    max);
			reply_send(c, m->id, false, rv, why);
		} else {
			reply_send(c, m->id, false, rv, "out of memory");
		}
		return;
	}
	// The new workloads join the index before the old leave it, so an
	// ENOMEM leaves the registration as it was. The tables grow first,
	// while the old workloads are still the agent's (a rebuild carries
	// only those it can reach).
	old = *ag;
	if (wl_tables_reserve_locked(a, r->n_workloads) == 0) {
		ag->workloads = wl;
		ag->n_workloads = r->n_workloads;
	}
	if (ag->workloads != wl || wl_index_locked(a, ag) < 0) {
		ag->workloads = old.workloads;
		ag->n_workloads = old.n_workloads;
		if (fresh) { // added above, for this registration only
			index_remove_locked(a, ag);
			a->n--;
			agent_free_locked(a, ag);
		}
		pthread_mutex_unlock(&a->mu);
		free(wl);
		reply_send(c, m->id, false, -ENOMEM, "out of memory");
		return;
	}
	for (size_t j = 0; j < old.n_workloads; j++)
		wl_unindex_one_locked(a, &old.workloads[j]);
	free(old.workloads);
	a->n_workloads += ag->n_workloads - old.n_workloads;
	n_workloads = ag->n_workloads;
	snprintf(ag->runtime, sizeof(ag->runtime), "%s", r->runtime);
	ag->registered_ms = cm_now_ms();
	ag->last_seen_mono = cm_mono_ms();
	ag->lost = false;
	rv = agent_dial_locked(a, ag, r->addr);
	pthread_mutex_unlock(&a->mu);

	if (rv < 0) {
		cm_warn("agents.register_failed", "node=%s addr=%s rv=%d",
		    cm_q(r->node), cm_q(r->addr), rv);
		reply_send(c, m->id, false, rv,
		    "cannot dial the agent's address");
		return;
	}
	cm_info("agents.registered", "node=%s addr=%s runtime=%s workloads=%zu new=%d",
	    cm_q(r->node), cm_q(r->addr), cm_q(r->runtime), n_workloads, fresh);
	reply_send(c, m->id, true, 0, "registered");
}

static void
handle_heartbeat(struct srv_ctx *c, const struct cm_msg *m)
{
	struct coord_agents *a = c->owner;
	struct agent *ag;
	bool known, was_lost = false;

	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, m->u.hb.node);
	known = ag != NULL;
	if (known) {
		was_lost = ag->lost;
		ag->last_seen_mono = cm_mono_ms();
		ag->heartbeats++;
		ag->unhealthy = m->u.hb.unhealthy;
		ag->lost = false;
		// Back: dial it again (its socket was closed when lost).
		if (was_lost && ag->pool == NULL && ag->addr[0] != '\0' &&
		    pool_open(a, ag->node, ag->addr, &ag->pool) < 0)
			cm_err("agents.redial_failed", "node=%s addr=%s "
			    "reason=\"commands fail until it registers again\"",
			    cm_q(ag->node), cm_q(ag->addr));
	}
	pthread_mutex_unlock(&a->mu);
	if (!known) {
		reply_send(c, m->id, false, -ENOENT,
		    "unknown node: register first");
		return;
	}
	if (was_lost)
		cm_notice("agents.back", "node=%s", cm_q(m->u.hb.node));
	reply_send(c, m->id, true, 0, "ok");
}

static bool
hosts_locked(const struct agent *ag, const char *service)
{
	for (size_t i = 0; i < ag->n_workloads; i++)
		if (strcmp(ag->workloads[i].service, service) == 0)
			return true;
	return false;
}

// A node may ask only about services it registered as hosting: anything
// else is refused here, before the engine's safety checks, so that it
// neither is journaled nor counts against the rate limits. On the worker.
static void
handle_permit(struct srv_ctx *c, const struct cm_msg *m)
{
	struct coord_agents *a = c->owner;
	struct cm_msg r = { .version = CM_PROTO_VERSION, .type = CM_MSG_REPLY,
		.id = m->id };
	const struct cm_msg_permit *p = &m->u.permit;
	const struct agent *ag;
	bool known, hosts = false;
	char why[CM_TEXT_MAX];

	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, p->node);
	known = ag != NULL;
	if (known)
		hosts = hosts_locked(ag, p->service);
	pthread_mutex_unlock(&a->mu);
	if (!known) {
		reply_send(c, m->id, false, -ENOENT,
		    "unknown node: register first");
		return;
	}
	if (!hosts) {
		coord_metrics_permit_not_hosted();
		cm_warn("agents.permit_refused", "node=%s service=%s "
		    "instance=%s reason=%s", cm_q(p->node), cm_q(p->service),
		    cm_q(p->instance),
		    cm_q("service not registered by the node"));
		snprintf(why, sizeof(why), "node %s does not host service %s",
		    p->node, p->service);
		reply_send(c, m->id, false, -EPERM, why);
		return;
	}
	if (a->permit_fn == NULL) {
		reply_send(c, m->id, false, -ENOTSUP,
		    "this coordinator grants no permits");
		return;
	}
	a->permit_fn(p, &r.u.reply, a->permit_arg);
	srv_answer(c, &r);
}

void
coord_agents_set_permit(struct coord_agents *a, coord_agents_permit_fn fn,
    void *arg)
{
	a->permit_fn = fn;
	a->permit_arg = arg;
}

void
coord_agents_set_max(struct coord_agents *a, size_t max_agents)
{
	pthread_mutex_lock(&a->mu);
	a->max_agents = max_agents > 0 ? max_agents : 1;
	pthread_mutex_unlock(&a->mu);
}

void
coord_agents_set_max_workloads(struct coord_agents *a, size_t max_workloads)
{
	pthread_mutex_lock(&a->mu);
	a->max_workloads = max_workloads;
	pthread_mutex_unlock(&a->mu);
}

static void
hexdump16(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && i < 16 && o + 3 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%02x", p[i]);
}

// Hands c's request (moved into c->m) to the worker.
static void
worker_push(struct srv_ctx *c, struct cm_msg *m)
{
	struct coord_agents *a = c->owner;

	c->m = *m;
	memset(m, 0, sizeof(*m));
	c->phase = SRV_WORK;
	c->next = NULL;
	pthread_mutex_lock(&a->wmu);
	if (a->wtail != NULL)
		a->wtail->next = c;
	else
		a->whead = c;
	a->wtail = c;
	pthread_cond_signal(&a->wcv);
	pthread_mutex_unlock(&a->wmu);
}

// A request arrived on c: answered here, or queued for the worker.
static void
srv_frame(struct srv_ctx *c, nng_msg *msg)
{
	struct coord_agents *a = c->owner;
	const void *body = nng_msg_body(msg);
	size_t len = nng_msg_len(msg);
	char err[256], hex[40];
	struct cm_msg m;
	int rv;

	rv = wire_decode(a, &m, body, len, err, sizeof(err));
	if (rv < 0) {
		hexdump16(body, len, hex, sizeof(hex));
		coord_metrics_bad_frame();
		cm_warn("agents.bad_frame", "size=%zu head=%s reason=%s",
		    len, hex[0] ? hex : "-", cm_q(err));
		nng_msg_free(msg);
		error_send(c, cm_wire_error_code(rv), err);
		return;
	}
	nng_msg_free(msg);
	switch (m.type) {
	case CM_MSG_REGISTER:
		handle_register(c, &m);
		break;
	case CM_MSG_HEARTBEAT:
		handle_heartbeat(c, &m);
		break;
	case CM_MSG_PERMIT:
		worker_push(c, &m); // the engine's decision may take a while
		break;
	default:
		reply_send(c, m.id, false, -EPROTO,
		    "the coordinator accepts register and heartbeat only");
		break;
	}
	cm_msg_clear(&m);
}

static void
srv_cb(void *arg)
{
	struct srv_ctx *c = arg;
	int rv = nng_aio_result(c->aio);

	if (c->phase == SRV_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		srv_recv(c);
		return;
	}
	if (rv == 0 && atomic_load(&c->owner->stopping)) {
		nng_msg_free(nng_aio_get_msg(c->aio));
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		cm_warn("agents.recv_failed", "error=%s",
		    cm_q(nng_strerror(rv)));
		srv_recv(c);
		return;
	}
	srv_frame(c, nng_aio_get_msg(c->aio));
}

// Decides the queued permits and closes retired pools until stopping.
static void *
worker_main(void *arg)
{
	struct coord_agents *a = arg;

	cm_thread_start("agents-permit", CM_THREAD_LATENCY);
	pthread_mutex_lock(&a->wmu);
	while (!atomic_load(&a->stopping)) {
		struct srv_ctx *c = a->whead;
		struct cmd_pool *p = a->dead;
		struct cm_msg m;

		if (c == NULL && p == NULL) {
			pthread_cond_wait(&a->wcv, &a->wmu);
			continue;
		}
		if (p != NULL) {
			a->dead = p->next;
			pthread_mutex_unlock(&a->wmu);
			pool_close(p);
			pthread_mutex_lock(&a->wmu);
			continue;
		}
		a->whead = c->next;
		if (a->whead == NULL)
			a->wtail = NULL;
		pthread_mutex_unlock(&a->wmu);
		// The answer frees c for its next request: work on a copy.
		m = c->m;
		memset(&c->m, 0, sizeof(c->m));
		handle_permit(c, &m);
		cm_msg_clear(&m);
		pthread_mutex_lock(&a->wmu);
	}
	pthread_mutex_unlock(&a->wmu);
	return NULL;
}

static int
srv_open(struct coord_agents *a)
{
	for (size_t i = 0; i < SRV_CONTEXTS; i++) {
		struct srv_ctx *c = &a->srv[i];

		c->owner = a;
		if (nng_aio_alloc(&c->aio, srv_cb, c) != 0 ||
		    nng_ctx_open(&c->ctx, a->rep) != 0)
			return NNG_ENOMEM;
	}
	return 0;
}

// Closes the retired pools left (every agent's, at stop), one after
// another. nng_close waits for nng's reaper thread once per socket, so
// with thousands of agents this takes seconds; eight closing threads side
// by side cut 1.6-1.9 s to 1.1-1.3 s at 5,000 agents, but made libnng
// 1.5.2's nng_close hang more often (4 stops in 20 against 1 in 20), so
// there is one until that is understood.
static void
close_dead(struct coord_agents *a)
{
	for (;;) {
		struct cmd_pool *p;

		pthread_mutex_lock(&a->wmu);
		p = a->dead;
		if (p != NULL)
			a->dead = p->next;
		pthread_mutex_unlock(&a->wmu);
		if (p == NULL)
			return;
		pool_close(p);
	}
}

// Frees what start allocated; the rep socket is closed and the worker
// stopped first.
static void
agents_free(struct coord_agents *a)
{
	for (size_t i = 0; i < SRV_CONTEXTS; i++) {
		if (a->srv[i].aio != NULL)
			nng_aio_free(a->srv[i].aio); // waits for its callback
		cm_msg_clear(&a->srv[i].m);
	}
	close_dead(a);
	for (size_t i = 0; i < a->n_svc_buckets; i++) {
		struct svc *v, *next;

		for (v = a->svcs[i]; v != NULL; v = next) {
			next = v->next;
			free(v);
		}
	}
	free(a->svcs);
	free(a->by_inst);
	free(a->by_addr);
	free(a->buckets);
	free(a->v);
	pthread_cond_destroy(&a->wcv);
	pthread_mutex_destroy(&a->wmu);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

int
coord_agents_start(struct coord_agents **ret, const char *listen_url,
    int64_t lost_after_ms, struct cm_auth *auth, char *err, size_t errlen)
{
	struct coord_agents *a;
	int rv;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->wmu, NULL);
	pthread_cond_init(&a->wcv, NULL);
	if (getrandom(&a->seed, sizeof(a->seed), 0) != sizeof(a->seed))
		a->seed = (uint64_t)cm_mono_ms() * 0x9e3779b97f4a7c15ULL;
	a->lost_after_ms = lost_after_ms;
	a->max_agents = COORD_AGENTS_MAX_DEFAULT;
	a->max_workloads = COORD_AGENTS_MAX_WORKLOADS_DEFAULT;
	a->auth = auth;
	rv = nng_rep0_open(&a->rep);
	a->rep_open = rv == 0;
	if (rv == 0)
		rv = nng_socket_set_size(a->rep, NNG_OPT_RECVMAXSZ, cm_msg_recv_max());
	if (rv == 0)
		rv = srv_open(a);
	if (rv == 0) {
		rv = nng_listen(a->rep, listen_url, NULL, 0);
		if (rv != 0)
			snprintf(err, errlen, "agent_listen %s: %s", listen_url,
			    nng_strerror(rv));
	} else {
		snprintf(err, errlen, "cannot open the agent socket: %s",
		    nng_strerror(rv));
	}
	if (rv == 0 && pthread_create(&a->worker, NULL, worker_main, a) != 0) {
		snprintf(err, errlen, "cannot start the agent worker thread");
		rv = NNG_ENOMEM;
	}
	if (rv != 0) {
		atomic_store(&a->stopping, true);
		if (a->rep_open)
			nng_close(a->rep);
		agents_free(a);
		return -EADDRINUSE;
	}
	a->worker_started = true;
	for (size_t i = 0; i < SRV_CONTEXTS; i++)
		srv_recv(&a->srv[i]);
	*ret = a;
	return 0;
}

void
coord_agents_stop(struct coord_agents *a)
{
	int64_t t0 = cm_mono_ms();
	struct cmd_pool *left;
	size_t n;
	int left_open;

	if (a == NULL)
		return;
	atomic_store(&a->stopping, true);
	// The worker first: a permit it is deciding is answered on its
	// context, which nng_close frees (libnng 1.5.2 then panics in
	// nng_ctx_send instead of returning NNG_ECLOSED). Requests still
	// queued for it go unanswered.
	pthread_mutex_lock(&a->wmu);
	pthread_cond_broadcast(&a->wcv);
	pthread_mutex_unlock(&a->wmu);
	pthread_join(a->worker, NULL);
	// Every server context's operation ends (nng closes the contexts
	// before it waits for the pipes, where a close can hang: the aio
	// stops below then return at once either way).
	(void)sock_close(a, a->rep, "agents", "-");
	// Every agent's pool joins the retired ones: agents_free closes them
	// all, each after its commands called back (-ECANCELED).
	// No server callback runs past this point (nor registers an agent
	// after the loop below).
	for (size_t i = 0; i < SRV_CONTEXTS; i++)
		nng_aio_stop(a->srv[i].aio);
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		agent_free_locked(a, a->v[i]);
	n = a->n;
	a->n = 0;
	pthread_mutex_unlock(&a->mu);
	close_dead(a);
	// The pools left open (closes left behind or skipped, now or
	// earlier) may still see answers and timeouts: from here on their
	// callbacks drop them. They are never freed (nng holds them).
	pthread_mutex_lock(&a->wmu);
	left = a->left;
	a->left = NULL;
	pthread_mutex_unlock(&a->wmu);
	for (; left != NULL; left = left->next)
		pool_orphan(left);
	left_open = atomic_load(&a->left_open);
	agents_free(a);
	cm_info("agents.stopped", "agents=%zu ms=%lld left_open=%d", n,
	    (long long)(cm_mono_ms() - t0), left_open);
}

// Adds ag as a target unless this resolve (`gen`) took it already: a
// mark on the agent, not a look through the targets so far (quadratic
// when thousands of agents answer to one instance or address). Returns
// the new count.
static size_t
add_target(struct coord_target *ret, size_t n, struct agent *ag,
    const char *service, const char *instance, uint64_t gen)
{
	if (ag->resolved == gen)
		return n;
	ag->resolved = gen;
	memset(&ret[n], 0, sizeof(ret[n]));
	snprintf(ret[n].node, sizeof(ret[n].node), "%s", ag->node);
	snprintf(ret[n].service, sizeof(ret[n].service), "%s", service);
	snprintf(ret[n].instance, sizeof(ret[n].instance), "%s", instance);
	ret[n].lost = ag->lost;
	return n + 1;
}

size_t
coord_agents_resolve(struct coord_agents *a, const char *service,
    const char *instance, struct coord_target *ret, size_t max)
{
	const struct workload *w;
	uint64_t gen;
	size_t n = 0;

	pthread_mutex_lock(&a->mu);
	gen = ++a->resolves;
	if (instance[0] == '\0') {
		// Every agent of the service, once (add_target).
		const struct svc *v = svc_find_locked(a, service);

		for (w = v != NULL ? v->head : NULL; w != NULL && n < max;
		    w = w->snext)
			n = add_target(ret, n, w->ag, service, "", gen);
	} else if (a->n_wl_buckets > 0) {
		// By instance name, then by address (Prometheus' label).
		for (w = *wl_bucket(a, a->by_inst, pair_hash(a, service,
		    instance)); w != NULL && n < max; w = w->inext)
			if (strcmp(w->instance, instance) == 0 &&
			    strcmp(w->service, service) == 0)
				n = add_target(ret, n, w->ag, service,
				    w->instance, gen);
		for (w = *wl_bucket(a, a->by_addr, pair_hash(a, service,
		    instance)); w != NULL && n < max; w = w->anext)
			if (strcmp(w->addr, instance) == 0 &&
			    strcmp(w->service, service) == 0)
				n = add_target(ret, n, w->ag, service,
				    w->instance, gen);
	}
	pthread_mutex_unlock(&a->mu);
	return n;
}

int
coord_agents_find_pod(struct coord_agents *a, const char *service,
    const char *pod, struct coord_target *ret)
{
	struct coord_target same = { 0 }, other = { 0 };
	size_t n_same = 0, n_other = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		const struct agent *ag = a->v[i];

		if (ag->lost || strcmp(ag->runtime, "kubernetes") != 0)
			continue;
		for (size_t j = 0; j < ag->n_workloads; j++) {
			const struct workload *w = &ag->workloads[j];
			bool mine = strcmp(w->service, service) == 0;
			struct coord_target *t = mine ? &same : &other;

			if (strcmp(w->instance, pod) != 0)
				continue;
			snprintf(t->node, sizeof(t->node), "%s", ag->node);
			snprintf(t->service, sizeof(t->service), "%s",
			    w->service);
			snprintf(t->instance, sizeof(t->instance), "%s",
			    w->instance);
			t->lost = false;
			if (mine)
				n_same++;
			else
				n_other++;
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (n_same == 1 || (n_same == 0 && n_other == 1)) {
		*ret = n_same == 1 ? same : other;
		return 1;
	}
	return n_same + n_other == 0 ? 0 : -EEXIST;
}

static void
cmd_finish(struct cmd *c, int rv, const struct cm_msg_reply *reply)
{
	c->done(rv, reply, c->arg);
	slot_put(c, true); // last: the pool may be closed right after
}

static int
nng_to_errno(int rv)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return -ECANCELED;
	case NNG_ENOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void
cmd_cb(void *arg)
{
	struct cmd *c = arg;
	int rv = nng_aio_result(c->aio);
	struct cm_msg m;
	nng_msg *msg;
	char err[256];

	if (!cb_enter(c->pool)) {
		// The registry stopped with this socket open: its owner and
		// the command's caller are gone.
		msg = nng_aio_get_msg(c->aio);
		nng_aio_set_msg(c->aio, NULL);
		if (msg != NULL)
			nng_msg_free(msg);
		slot_put(c, false);
		return;
	}
	if (rv != 0) {
		if (!c->sent) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
		}
		cm_debug("agents.command_failed", "stage=%s nng=%s",
		    c->sent ? "recv" : "send", nng_strerror(rv));
		cmd_finish(c, nng_to_errno(rv), NULL);
		return;
	}
	if (!c->sent) {
		c->sent = true;
		nng_ctx_recv(c->ctx, c->aio);
		cb_leave(c->pool); // busy: the pool stays
		return;
	}
	msg = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	rv = wire_decode(c->pool->owner, &m, nng_msg_body(msg),
	    nng_msg_len(msg), err, sizeof(err));
	nng_msg_free(msg);
	if (rv < 0) {
		coord_metrics_bad_frame();
		cm_warn("agents.bad_reply", "reason=%s", cm_q(err));
		cmd_finish(c, -EBADMSG, NULL);
		return;
	}
	if (m.type == CM_MSG_ERROR) {
		struct cm_msg_reply r = { .ok = false, .code = -EPROTO };

		snprintf(r.message, sizeof(r.message), "agent error %s: %s",
		    m.u.error.code, m.u.error.message);
		cmd_finish(c, 0, &r);
	} else if (m.type != CM_MSG_REPLY) {
		cmd_finish(c, -EBADMSG, NULL);
	} else {
		cmd_finish(c, 0, &m.u.reply);
	}
	cm_msg_clear(&m);
}

int
coord_agents_command(struct coord_agents *a, const char *node,
    const struct cm_msg_command *cmd, int64_t timeout_ms,
    coord_agents_done_fn done, void *arg)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_COMMAND,
		.id = cmd->action_id, .u.cmd = *cmd };
	struct agent *ag;
	struct cmd *c = NULL;
	nng_msg *msg;
	int rv;

	rv = cm_wire_msg(a->auth, &m, WIRE_RESERVE, &msg);
	if (rv < 0)
		return rv;
	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, node);
	if (ag != NULL && ag->lost)
		rv = -EHOSTDOWN;
	else if (ag == NULL || ag->pool == NULL)
		rv = -ENOENT;
	else if ((c = slot_take(ag->pool)) == NULL)
		rv = -ENOMEM;
	pthread_mutex_unlock(&a->mu);
	if (rv < 0) {
		nng_msg_free(msg);
		return rv;
	}
	c->sent = false;
	c->done = done;
	c->arg = arg;
	nng_aio_set_timeout(c->aio, timeout_ms > 0 ? (nng_duration)timeout_ms :
	    NNG_DURATION_DEFAULT);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
	return 0;
}

// Takes the idle slots p holds beyond POOL_KEEP onto *surplus (a burst
// of commands to one agent leaves them). Caller holds mu.
static void
pool_trim_locked(struct cmd_pool *p, struct cmd **surplus)
{
	pthread_mutex_lock(&p->mu);
	while (p->n_idle > POOL_KEEP) {
		struct cmd *c = p->idle;

		p->idle = c->next;
		p->n_idle--;
		c->next = *surplus;
		*surplus = c;
	}
	pthread_mutex_unlock(&p->mu);
}

void
coord_agents_tick(struct coord_agents *a)
{
	int64_t now = cm_mono_ms();
	struct cmd *surplus = NULL;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		struct agent *ag = a->v[i];

		if (!ag->lost && now - ag->last_seen_mono > a->lost_after_ms) {
			ag->lost = true;
			cm_warn("agents.lost", "node=%s silent_ms=%lld",
			    cm_q(ag->node), (long long)(now - ag->last_seen_mono));
			// Its commands fail fast now: stop redialing it (at
			// thousands of vanished agents, the redials took a
			// core). Its commands in flight are cut off.
			pool_retire_locked(a, ag->pool);
			ag->pool = NULL;
		}
		if (ag->pool != NULL)
			pool_trim_locked(ag->pool, &surplus);
	}
	pthread_mutex_unlock(&a->mu);
	while (surplus != NULL) {
		struct cmd *next = surplus->next;

		slot_free(surplus); // idle: at most the end of a callback left
		surplus = next;
	}
}

void
coord_agents_counts(struct coord_agents *a, int64_t *registered, int64_t *lost)
{
	int64_t r = 0, l = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		r++;
		l += a->v[i]->lost;
	}
	pthread_mutex_unlock(&a->mu);
	*registered = r;
	*lost = l;
}

int64_t
coord_agents_count_instances(struct coord_agents *a, const char *service)
{
	const struct svc *v;
	int64_t n;

	pthread_mutex_lock(&a->mu);
	if (service == NULL) {
		n = (int64_t)a->n_workloads;
	} else {
		v = svc_find_locked(a, service);
		n = v != NULL ? (int64_t)v->count : 0;
	}
	pthread_mutex_unlock(&a->mu);
	return n;
}

static int
node_cmp(const void *x, const void *y)
{
	const struct agent *const *p = x, *const *q = y;

	return strcmp((*p)->node, (*q)->node);
}

char *
coord_agents_json(struct coord_agents *a, const char *after, size_t limit,
    char *next, size_t nextlen)
{
	cJSON *arr = cJSON_CreateArray();
	int64_t now = cm_mono_ms();
	struct agent **page = NULL;
	size_t n = 0, taken = 0, wl = 0;
	char ts[40], *out;

	if (nextlen > 0)
		next[0] = '\0';
	if (arr == NULL)
		return NULL;
	if (limit == 0)
		limit = 1;
	pthread_mutex_lock(&a->mu);
	// The agents after `after` in node order; the page is their first
	// `limit`, fewer when COORD_AGENTS_PAGE_WORKLOADS would be passed.
	if (a->n > 0) {
		page = malloc(a->n * sizeof(*page));
		if (page == NULL) {
			pthread_mutex_unlock(&a->mu);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	for (size_t i = 0; i < a->n; i++)
		if (after == NULL || strcmp(a->v[i]->node, after) > 0)
			page[n++] = a->v[i];
	if (n > 0)
		qsort(page, n, sizeof(*page), node_cmp);
	for (; taken < n && taken < limit; taken++) {
		struct agent *ag = page[taken];
		cJSON *o, *ws;

		if (taken > 0 && wl + ag->n_workloads >
		    COORD_AGENTS_PAGE_WORKLOADS)
			break;
		wl += ag->n_workloads;
		o = cJSON_CreateObject();
		ws = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "node", ag->node);
		cJSON_AddStringToObject(o, "addr", ag->addr);
		cJSON_AddStringToObject(o, "runtime", ag->runtime);
		cJSON_AddStringToObject(o, "state", ag->lost ? "lost" : "ready");
		cJSON_AddStringToObject(o, "registered",
		    cm_time_format(ag->registered_ms, ts, sizeof(ts)));
		cJSON_AddNumberToObject(o, "last_seen_ms_ago",
		    (double)(now - ag->last_seen_mono));
		cJSON_AddNumberToObject(o, "heartbeats", (double)ag->heartbeats);
		cJSON_AddNumberToObject(o, "unhealthy", ag->unhealthy);
		cJSON_AddItemToObject(o, "workloads", ws);
		for (size_t j = 0; j < ag->n_workloads; j++) {
			cJSON *w = cJSON_CreateObject();

			cJSON_AddItemToArray(ws, w);
			cJSON_AddStringToObject(w, "service", ag->workloads[j].service);
			cJSON_AddStringToObject(w, "instance", ag->workloads[j].instance);
			cJSON_AddStringToObject(w, "addr", ag->workloads[j].addr);
			// Per-instance health is the agent's (reflex-agent
			// status); heartbeats carry only the count above.
		}
	}
	if (taken < n && taken > 0 && nextlen > 0)
		snprintf(next, nextlen, "%s", page[taken - 1]->node);
	pthread_mutex_unlock(&a->mu);
	free(page);
	out = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	return out;
}
