// SPDX-License-Identifier: MIT
// coord_agents: registry, register/heartbeat server, command client.
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

#include "cm_log.h"
#include "cm_time.h"
#include "cm_wire.h"
#include "coord_metrics.h"

struct agent {
	char node[CM_NAME_MAX];
	char addr[CM_ADDR_MAX];
	char runtime[CM_NAME_MAX];
	struct cm_workload *workloads; // owned
	size_t n_workloads;
	int64_t registered_ms;
	int64_t last_seen_mono;
	uint64_t heartbeats;
	uint32_t unhealthy;
	bool lost;
	bool sock_open;
	nng_socket sock; // req socket dialing addr
	// Copy of node for sock's pipe callback: the registry array moves
	// (realloc, eviction), this does not. Freed after sock is closed.
	char *tag;
};

struct coord_agents {
	pthread_mutex_t mu;
	struct agent *v;
	size_t n, cap;
	int64_t lost_after_ms;
	size_t max_agents;
	nng_socket rep;
	pthread_t thread;
	atomic_bool stopping;
	atomic_int pending; // commands in flight
	coord_agents_permit_fn permit_fn;
	void *permit_arg;
	struct cm_auth *auth; // NULL: the channel is not authenticated
};

// Encodes m, stamped and sealed when the channel is authenticated.
static int
wire_encode(struct coord_agents *a, struct cm_msg *m, void **buf, size_t *len)
{
	if (a->auth == NULL)
		return cm_msg_encode(m, buf, len);
	cm_auth_stamp(m);
	return cm_auth_encode(a->auth, m, buf, len);
}

static int
wire_decode(struct coord_agents *a, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen)
{
	if (a->auth == NULL)
		return cm_msg_decode(m, buf, len, err, errlen);
	return cm_auth_decode(a->auth, m, buf, len, err, errlen);
}

// One command exchange on its own req context.
struct cmd {
	nng_ctx ctx;
	nng_aio *aio;
	bool sent;
	coord_agents_done_fn done;
	void *arg;
	struct coord_agents *owner;
};

static struct agent *
find_locked(struct coord_agents *a, const char *node)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].node, node) == 0)
			return &a->v[i];
	return NULL;
}

// Answers the request in hand on the rep socket (sealed when the channel
// is authenticated).
static int
answer(struct coord_agents *a, struct cm_msg *m)
{
	void *buf;
	size_t len;
	int rv;

	rv = wire_encode(a, m, &buf, &len);
	if (rv < 0)
		return rv;
	rv = nng_send(a->rep, buf, len, 0);
	free(buf);
	return rv ? -EIO : 0;
}

static int
reply_send(struct coord_agents *a, uint64_t id, bool ok, int code,
    const char *msg)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_REPLY,
		.id = id };

	m.u.reply.ok = ok;
	m.u.reply.code = code;
	snprintf(m.u.reply.message, sizeof(m.u.reply.message), "%s", msg);
	return answer(a, &m);
}

static int
error_send(struct coord_agents *a, const char *code, const char *msg)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_ERROR };

	snprintf(m.u.error.code, sizeof(m.u.error.code), "%s", code);
	snprintf(m.u.error.message, sizeof(m.u.error.message), "%s", msg);
	return answer(a, &m);
}

static void
pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(void)arg;
	cm_debug("agents.connection_closed", "node=%s", (const char *)arg);
}

// Opens (or re-targets) the command socket of an agent. Caller holds mu.
static int
agent_dial_locked(struct agent *ag, const char *addr)
{
	int rv;

	if (ag->sock_open && strcmp(ag->addr, addr) == 0)
		return 0;
	if (ag->sock_open) {
		nng_close(ag->sock); // in-flight commands fail with ECLOSED
		ag->sock_open = false;
	}
	snprintf(ag->addr, sizeof(ag->addr), "%s", addr);
	rv = nng_req0_open(&ag->sock);
	if (rv != 0)
		return -ENOMEM;
	nng_socket_set_size(ag->sock, NNG_OPT_RECVMAXSZ, CM_MSG_RECV_MAX);
	// Commands are not idempotent: never let req resend on its own.
	nng_socket_set_ms(ag->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(ag->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(ag->sock, NNG_OPT_RECONNMAXT, 2000);
	nng_pipe_notify(ag->sock, NNG_PIPE_EV_REM_POST, pipe_gone, ag->tag);
	rv = nng_dial(ag->sock, addr, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_close(ag->sock);
		return -EINVAL;
	}
	ag->sock_open = true;
	return 0;
}

// Closes an agent's command socket (its in-flight commands fail with
// ECLOSED) and frees what it owns. Caller holds mu.
static void
agent_release_locked(struct agent *ag)
{
	if (ag->sock_open)
		nng_close(ag->sock); // returns after the pipe callbacks ran
	ag->sock_open = false;
	free(ag->workloads);
	ag->workloads = NULL;
	ag->n_workloads = 0;
	free(ag->tag);
	ag->tag = NULL;
}

// The lost agent silent the longest, or -1 when none is lost.
static ptrdiff_t
longest_lost_locked(const struct coord_agents *a)
{
	ptrdiff_t best = -1;

	for (size_t i = 0; i < a->n; i++) {
		if (!a->v[i].lost)
			continue;
		if (best < 0 ||
		    a->v[i].last_seen_mono < a->v[best].last_seen_mono)
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
	ptrdiff_t i;
	int64_t silent;

	if (a->n < a->max_agents)
		return 0;
	i = longest_lost_locked(a);
	if (i < 0)
		return -EUSERS;
	silent = cm_mono_ms() - a->v[i].last_seen_mono;
	cm_notice("agents.evicted", "node=%s silent_ms=%lld max_agents=%zu "
	    "reason=%s", cm_q(a->v[i].node), (long long)silent, a->max_agents,
	    cm_q("agent limit reached: the longest-lost agent makes room"));
	coord_metrics_agent_evicted();
	agent_release_locked(&a->v[i]);
	a->v[i] = a->v[a->n - 1];
	a->n--;
	return 0;
}

// Appends a new, zeroed agent named `node`. Caller holds mu.
static int
agent_add_locked(struct coord_agents *a, const char *node,
    struct agent **ret)
{
	struct agent *ag;
	char *tag;

	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct agent *nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		a->v = nv;
		a->cap = ncap;
	}
	tag = strdup(node);
	if (tag == NULL)
		return -ENOMEM;
	ag = &a->v[a->n++];
	memset(ag, 0, sizeof(*ag));
	snprintf(ag->node, sizeof(ag->node), "%s", node);
	ag->tag = tag;
	*ret = ag;
	return 0;
}

static void
handle_register(struct coord_agents *a, struct cm_msg *m)
{
	struct cm_msg_register *r = &m->u.reg;
	struct agent *ag;
	size_t n_workloads, max;
	int rv = 0;
	bool fresh;
	char why[128];

	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, r->node);
	fresh = ag == NULL;
	if (fresh) {
		rv = make_room_locked(a);
		if (rv == 0)
			rv = agent_add_locked(a, r->node, &ag);
	}
	max = a->max_agents;
	if (rv < 0) {
		pthread_mutex_unlock(&a->mu);
		if (rv == -EUSERS) {
			coord_metrics_agent_refused();
			cm_warn("agents.register_refused", "node=%s addr=%s "
			    "max_agents=%zu reason=%s", cm_q(r->node),
			    cm_q(r->addr), max, cm_q("agent limit reached"));
			snprintf(why, sizeof(why), "agent limit reached: %zu "
			    "agents registered and none lost (max_agents)",
			    max);
			reply_send(a, m->id, false, rv, why);
		} else {
			reply_send(a, m->id, false, rv, "out of memory");
		}
		return;
	}
	free(ag->workloads);
	ag->workloads = r->workloads; // taken from the message
	ag->n_workloads = r->n_workloads;
	r->workloads = NULL;
	r->n_workloads = 0;
	n_workloads = ag->n_workloads;
	snprintf(ag->runtime, sizeof(ag->runtime), "%s", r->runtime);
	ag->registered_ms = cm_now_ms();
	ag->last_seen_mono = cm_mono_ms();
	ag->lost = false;
	rv = agent_dial_locked(ag, r->addr);
	pthread_mutex_unlock(&a->mu);

	if (rv < 0) {
		cm_warn("agents.register_failed", "node=%s addr=%s rv=%d",
		    cm_q(r->node), cm_q(r->addr), rv);
		reply_send(a, m->id, false, rv, "cannot dial the agent's address");
		return;
	}
	cm_info("agents.registered", "node=%s addr=%s runtime=%s workloads=%zu new=%d",
	    cm_q(r->node), cm_q(r->addr), cm_q(r->runtime), n_workloads, fresh);
	reply_send(a, m->id, true, 0, "registered");
}

static void
handle_heartbeat(struct coord_agents *a, struct cm_msg *m)
{
	struct agent *ag;
	bool was_lost = false;

	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, m->u.hb.node);
	if (ag != NULL) {
		was_lost = ag->lost;
		ag->last_seen_mono = cm_mono_ms();
		ag->heartbeats++;
		ag->unhealthy = m->u.hb.unhealthy;
		ag->lost = false;
	}
	pthread_mutex_unlock(&a->mu);
	if (ag == NULL) {
		reply_send(a, m->id, false, -ENOENT, "unknown node: register first");
		return;
	}
	if (was_lost)
		cm_notice("agents.back", "node=%s", cm_q(m->u.hb.node));
	reply_send(a, m->id, true, 0, "ok");
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
// neither is journaled nor counts against the rate limits.
static void
handle_permit(struct coord_agents *a, struct cm_msg *m)
{
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
		reply_send(a, m->id, false, -ENOENT,
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
		reply_send(a, m->id, false, -EPERM, why);
		return;
	}
	if (a->permit_fn == NULL) {
		reply_send(a, m->id, false, -ENOTSUP,
		    "this coordinator grants no permits");
		return;
	}
	a->permit_fn(p, &r.u.reply, a->permit_arg);
	(void)answer(a, &r);
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

static void
hexdump16(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && i < 16 && o + 3 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%02x", p[i]);
}

static void *
server_main(void *arg)
{
	struct coord_agents *a = arg;

	while (!atomic_load(&a->stopping)) {
		char err[256], hex[40];
		struct cm_msg m;
		void *buf = NULL;
		size_t len = 0;
		int rv;

		rv = nng_recv(a->rep, &buf, &len, NNG_FLAG_ALLOC);
		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0)
			continue;
		rv = wire_decode(a, &m, buf, len, err, sizeof(err));
		if (rv < 0) {
			hexdump16(buf, len, hex, sizeof(hex));
			coord_metrics_bad_frame();
			cm_warn("agents.bad_frame", "size=%zu head=%s reason=%s",
			    len, hex[0] ? hex : "-", cm_q(err));
			nng_free(buf, len);
			error_send(a, cm_wire_error_code(rv), err);
			continue;
		}
		nng_free(buf, len);
		switch (m.type) {
		case CM_MSG_REGISTER:
			handle_register(a, &m);
			break;
		case CM_MSG_HEARTBEAT:
			handle_heartbeat(a, &m);
			break;
		case CM_MSG_PERMIT:
			handle_permit(a, &m);
			break;
		default:
			reply_send(a, m.id, false, -EPROTO,
			    "the coordinator accepts register and heartbeat only");
			break;
		}
		cm_msg_clear(&m);
	}
	return NULL;
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
	a->lost_after_ms = lost_after_ms;
	a->max_agents = COORD_AGENTS_MAX_DEFAULT;
	a->auth = auth;
	rv = nng_rep0_open(&a->rep);
	if (rv == 0)
		rv = nng_socket_set_size(a->rep, NNG_OPT_RECVMAXSZ, CM_MSG_RECV_MAX);
	if (rv == 0) {
		rv = nng_listen(a->rep, listen_url, NULL, 0);
		if (rv != 0)
			snprintf(err, errlen, "agent_listen %s: %s", listen_url,
			    nng_strerror(rv));
	} else {
		snprintf(err, errlen, "cannot open the agent socket: %s",
		    nng_strerror(rv));
	}
	if (rv == 0 && pthread_create(&a->thread, NULL, server_main, a) != 0) {
		snprintf(err, errlen, "cannot start the agent server thread");
		rv = NNG_ENOMEM;
	}
	if (rv != 0) {
		nng_close(a->rep);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return -EADDRINUSE;
	}
	*ret = a;
	return 0;
}

void
coord_agents_stop(struct coord_agents *a)
{
	if (a == NULL)
		return;
	atomic_store(&a->stopping, true);
	nng_close(a->rep);
	pthread_join(a->thread, NULL);
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		agent_release_locked(&a->v[i]);
	pthread_mutex_unlock(&a->mu);
	// Closing the sockets completed every command with ECLOSED; wait for
	// their callbacks to have run before freeing what they touch.
	while (atomic_load(&a->pending) > 0)
		nng_msleep(5);
	free(a->v);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static bool
workload_matches(const struct cm_workload *w, const char *service,
    const char *instance)
{
	if (strcmp(w->service, service) != 0)
		return false;
	return instance[0] == '\0' || strcmp(w->instance, instance) == 0 ||
	    strcmp(w->addr, instance) == 0;
}

size_t
coord_agents_resolve(struct coord_agents *a, const char *service,
    const char *instance, struct coord_target *ret, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n && n < max; i++) {
		struct agent *ag = &a->v[i];

		for (size_t j = 0; j < ag->n_workloads; j++) {
			const struct cm_workload *w = &ag->workloads[j];

			if (!workload_matches(w, service, instance))
				continue;
			memset(&ret[n], 0, sizeof(ret[n]));
			snprintf(ret[n].node, sizeof(ret[n].node), "%s", ag->node);
			snprintf(ret[n].service, sizeof(ret[n].service), "%s", service);
			snprintf(ret[n].instance, sizeof(ret[n].instance), "%s",
			    instance[0] ? w->instance : "");
			ret[n].lost = ag->lost;
			n++;
			break; // one target per agent
		}
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
		const struct agent *ag = &a->v[i];

		if (ag->lost || strcmp(ag->runtime, "kubernetes") != 0)
			continue;
		for (size_t j = 0; j < ag->n_workloads; j++) {
			const struct cm_workload *w = &ag->workloads[j];
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
	struct coord_agents *a = c->owner;

	c->done(rv, reply, c->arg);
	nng_ctx_close(c->ctx);
	nng_aio_reap(c->aio);
	free(c);
	atomic_fetch_sub(&a->pending, 1);
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

	if (rv != 0) {
		if (!c->sent)
			nng_msg_free(nng_aio_get_msg(c->aio));
		cm_debug("agents.command_failed", "stage=%s nng=%s",
		    c->sent ? "recv" : "send", nng_strerror(rv));
		cmd_finish(c, nng_to_errno(rv), NULL);
		return;
	}
	if (!c->sent) {
		c->sent = true;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	msg = nng_aio_get_msg(c->aio);
	rv = wire_decode(c->owner, &m, nng_msg_body(msg), nng_msg_len(msg), err,
	    sizeof(err));
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
	struct cmd *c;
	nng_msg *msg = NULL;
	void *buf;
	size_t len;
	int rv;

	rv = wire_encode(a, &m, &buf, &len);
	if (rv < 0)
		return rv;
	c = calloc(1, sizeof(*c));
	if (c == NULL || nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, buf, len) != 0) {
		free(buf);
		free(c);
		nng_msg_free(msg);
		return -ENOMEM;
	}
	free(buf);
	c->done = done;
	c->arg = arg;
	c->owner = a;

	pthread_mutex_lock(&a->mu);
	ag = find_locked(a, node);
	if (ag == NULL || !ag->sock_open)
		rv = -ENOENT;
	else if (ag->lost)
		rv = -EHOSTDOWN;
	else if (nng_ctx_open(&c->ctx, ag->sock) != 0)
		rv = -ENOMEM;
	else if (nng_aio_alloc(&c->aio, cmd_cb, c) != 0) {
		nng_ctx_close(c->ctx);
		rv = -ENOMEM;
	}
	if (rv == 0)
		atomic_fetch_add(&a->pending, 1);
	pthread_mutex_unlock(&a->mu);
	if (rv < 0) {
		nng_msg_free(msg);
		free(c);
		return rv;
	}
	nng_aio_set_timeout(c->aio, timeout_ms > 0 ? (nng_duration)timeout_ms :
	    NNG_DURATION_DEFAULT);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
	return 0;
}

void
coord_agents_tick(struct coord_agents *a)
{
	int64_t now = cm_mono_ms();

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		struct agent *ag = &a->v[i];

		if (!ag->lost && now - ag->last_seen_mono > a->lost_after_ms) {
			ag->lost = true;
			cm_warn("agents.lost", "node=%s silent_ms=%lld",
			    cm_q(ag->node), (long long)(now - ag->last_seen_mono));
		}
	}
	pthread_mutex_unlock(&a->mu);
}

void
coord_agents_counts(struct coord_agents *a, int64_t *registered, int64_t *lost)
{
	int64_t r = 0, l = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		r++;
		l += a->v[i].lost;
	}
	pthread_mutex_unlock(&a->mu);
	*registered = r;
	*lost = l;
}

int64_t
coord_agents_count_instances(struct coord_agents *a, const char *service)
{
	int64_t n = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = 0; j < a->v[i].n_workloads; j++)
			n += service == NULL ||
			    strcmp(a->v[i].workloads[j].service, service) == 0;
	pthread_mutex_unlock(&a->mu);
	return n;
}

char *
coord_agents_json(struct coord_agents *a)
{
	cJSON *arr = cJSON_CreateArray();
	int64_t now = cm_mono_ms();
	char ts[40], *out;

	if (arr == NULL)
		return NULL;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++) {
		struct agent *ag = &a->v[i];
		cJSON *o = cJSON_CreateObject(), *ws = cJSON_CreateArray();

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
	pthread_mutex_unlock(&a->mu);
	out = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	return out;
}
