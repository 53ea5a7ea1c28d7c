// SPDX-License-Identifier: MIT
// agent_link: register and heartbeat exchanges with the coordinator.
#include "agent_link.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent_cmd.h"
#include "cm_log.h"
#include "cm_time.h"

#define LINK_CANCEL_AGAIN_MS 100

enum link_phase {
	LK_IDLE,
	LK_SEND,
	LK_RECV,
};

struct agent_link {
	const struct agent_conf *conf;
	struct cm_auth *auth; // borrowed; NULL = not sealed
	void (*wake)(void *);
	void *wake_arg;
	nng_socket sock;
	bool sock_open;
	nng_ctx ctx;
	nng_aio *aio;
	atomic_bool step_done; // set by the aio callback
	atomic_bool sending;   // the request is not out yet (the callback
			       // starts the receive once it is)
	enum link_phase phase; // LK_IDLE, or LK_SEND while an exchange runs
	int64_t deadline_ms;   // the exchange fails if not done by then
	bool timed_out;	       // we cancelled it at deadline_ms
	enum cm_msg_type cur_type;
	uint64_t cur_id, next_id, seq;
	bool registered;
	int up; // -1 unknown, 0 down, 1 up
	bool refusal_logged;
	int64_t due_ms;
	int64_t last_ok_wall_ms;
	uint64_t exchanges, failures;
	char last_error[CM_TEXT_MAX];
	bool reregister; // register as soon as the current exchange ends
	bool update;	 // the workloads changed: the next exchange is a
			 // register
	// The permit exchange, on its own context.
	nng_ctx pctx;
	nng_aio *paio;
	atomic_bool pstep_done;
	enum link_phase pphase;
	uint64_t pcur_id;
	int64_t pdeadline_ms, ptimeout_ms;
	bool pready; // pans holds an outcome not taken yet
	struct agent_link_permit_ans pans;
};

// The request went out: the receive starts right here, on nng's thread,
// so a heartbeat wakes the main loop once (with the answer), not twice.
// The aio has no timeout (nng's timer threads would wake for each one);
// the loop cancels an exchange that passes its deadline.
static void
on_aio(void *arg)
{
	struct agent_link *l = arg;

	if (atomic_load(&l->sending) && nng_aio_result(l->aio) == 0) {
		atomic_store(&l->sending, false);
		nng_ctx_recv(l->ctx, l->aio);
		return;
	}
	atomic_store(&l->step_done, true);
	l->wake(l->wake_arg);
}

static void
on_paio(void *arg)
{
	struct agent_link *l = arg;

	atomic_store(&l->pstep_done, true);
	l->wake(l->wake_arg);
}

static int
link_err(int rv, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "coordinator link: %s: %s", what,
	    nng_strerror(rv));
	return rv == NNG_ENOMEM ? -ENOMEM : -EINVAL;
}

static int
link_setup(struct agent_link *l, char *err, size_t errlen)
{
	int rv;

	rv = nng_req0_open(&l->sock);
	if (rv != 0)
		return link_err(rv, "open", err, errlen);
	l->sock_open = true;
	rv = nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, cm_msg_recv_max());
	if (rv == 0)
		rv = nng_socket_set_ms(l->sock, NNG_OPT_RECONNMINT, 250);
	if (rv == 0)
		rv = nng_socket_set_ms(l->sock, NNG_OPT_RECONNMAXT, 2000);
	// No resend timer (before the contexts open: they copy it): an
	// exchange fails after AGENT_LINK_TIMEOUT_MS, long before the 60 s
	// default, and the timer would wake nng's timer thread twice per
	// exchange. A request whose connection breaks is still sent again
	// on the next one.
	if (rv == 0)
		rv = nng_socket_set_ms(l->sock, NNG_OPT_REQ_RESENDTIME,
		    NNG_DURATION_INFINITE);
	if (rv != 0)
		return link_err(rv, "socket options", err, errlen);
	rv = nng_aio_alloc(&l->aio, on_aio, l);
	if (rv == 0)
		rv = nng_ctx_open(&l->ctx, l->sock);
	if (rv == 0)
		rv = nng_aio_alloc(&l->paio, on_paio, l);
	if (rv == 0)
		rv = nng_ctx_open(&l->pctx, l->sock);
	if (rv != 0)
		return link_err(rv, "context", err, errlen);
	// Non-blocking: the agent runs without a coordinator; nng keeps
	// redialing in the background.
	rv = nng_dial(l->sock, l->conf->coordinator, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		return link_err(rv, l->conf->coordinator, err, errlen);
	return 0;
}

int
agent_link_open(const struct agent_conf *conf, struct cm_auth *auth,
    void (*wake)(void *), void *wake_arg, struct agent_link **ret, char *err,
    size_t errlen)
{
	struct agent_link *l = calloc(1, sizeof(*l));
	int rv;

	if (l == NULL)
		return -ENOMEM;
	l->conf = conf;
	l->auth = auth;
	l->wake = wake;
	l->wake_arg = wake_arg;
	l->up = -1;
	l->next_id = 1;
	rv = link_setup(l, err, errlen);
	if (rv < 0) {
		agent_link_close(l);
		return rv;
	}
	cm_info("link.dial", "coordinator=%s sealed=%s",
	    cm_q(conf->coordinator), auth ? "true" : "false");
	*ret = l;
	return 0;
}

// Stops and frees an aio. A failed send leaves our message with us; a
// reply that arrived but was not processed is ours as well.
static void
aio_release(nng_aio *aio, enum link_phase phase)
{
	if (aio == NULL)
		return;
	nng_aio_stop(aio);
	if ((phase == LK_SEND && nng_aio_result(aio) != 0) ||
	    (phase == LK_RECV && nng_aio_result(aio) == 0)) {
		nng_msg *m = nng_aio_get_msg(aio);

		if (m != NULL)
			nng_msg_free(m);
	}
	nng_aio_free(aio);
}

void
agent_link_close(struct agent_link *l)
{
	if (l == NULL)
		return;
	if (l->sock_open)
		nng_close(l->sock);
	if (l->aio != NULL)
		nng_aio_stop(l->aio); // no callback runs after this
	aio_release(l->aio, l->phase == LK_IDLE ? LK_IDLE :
	    atomic_load(&l->sending) ? LK_SEND : LK_RECV);
	aio_release(l->paio, l->pphase);
	free(l);
}

void
agent_link_view(const struct agent_link *l, struct agent_link_view *v)
{
	v->url = l->conf->coordinator;
	v->connected = l->up == 1;
	v->down = l->up == 0;
	v->registered = l->registered;
	v->last_ok_wall_ms = l->last_ok_wall_ms;
	v->exchanges = l->exchanges;
	v->failures = l->failures;
	v->last_error = l->last_error;
}

// ---- outcome of an exchange -------------------------------------------

static void
link_failed(struct agent_link *l, int64_t now, const char *why)
{
	l->failures++;
	snprintf(l->last_error, sizeof(l->last_error), "%s", why);
	l->registered = false;
	l->reregister = false; // the next exchange is a register anyway
	l->phase = LK_IDLE;
	l->due_ms = now + l->conf->heartbeat_interval_ms;
	if (l->up != 0)
		cm_warn("link.down", "coordinator=%s error=%s",
		    cm_q(l->conf->coordinator), cm_q(why));
	l->up = 0;
}

static void
link_answered(struct agent_link *l, int64_t now)
{
	l->phase = LK_IDLE;
	l->last_ok_wall_ms = cm_now_ms();
	l->due_ms = now + l->conf->heartbeat_interval_ms;
	if (l->reregister) {
		l->reregister = false;
		l->due_ms = now;
	}
	if (l->up != 1)
		cm_notice("link.up", "coordinator=%s",
		    cm_q(l->conf->coordinator));
	l->up = 1;
}

static void
on_refused(struct agent_link *l, const struct cm_msg_reply *r, int64_t now)
{
	const char *t = cm_msg_type_name(l->cur_type);

	snprintf(l->last_error, sizeof(l->last_error), "%s refused: %d %s", t,
	    (int)r->code, r->message);
	if (l->cur_type == CM_MSG_HEARTBEAT && r->code == -ENOENT) {
		cm_notice("link.unknown_node", "node=%s action=register",
		    l->conf->node);
		l->registered = false;
		l->due_ms = now;
		return;
	}
	if (l->cur_type == CM_MSG_REGISTER)
		l->registered = false;
	cm_log(l->refusal_logged ? CM_LOG_DEBUG : CM_LOG_WARN, "link.refused",
	    "type=%s code=%d message=%s", t, (int)r->code, cm_q(r->message));
	l->refusal_logged = true;
}

static void
on_reply(struct agent_link *l, const struct cm_msg *m, int64_t now)
{
	char why[CM_TEXT_MAX + 64];

	if (m->type == CM_MSG_ERROR) {
		snprintf(why, sizeof(why), "coordinator answered error %s: %s",
		    m->u.error.code, m->u.error.message);
		link_failed(l, now, why);
		return;
	}
	if (m->type != CM_MSG_REPLY || m->id != l->cur_id) {
		snprintf(why, sizeof(why), "unexpected answer (%s id %llu to "
		    "id %llu)", cm_msg_type_name(m->type) ?
		    cm_msg_type_name(m->type) : "?",
		    (unsigned long long)m->id, (unsigned long long)l->cur_id);
		link_failed(l, now, why);
		return;
	}
	link_answered(l, now);
	if (!m->u.reply.ok) {
		on_refused(l, &m->u.reply, now);
		return;
	}
	l->last_error[0] = '\0';
	l->refusal_logged = false;
	if (l->cur_type == CM_MSG_REGISTER && !l->registered) {
		l->registered = true;
		cm_notice("link.registered", "node=%s coordinator=%s",
		    l->conf->node, cm_q(l->conf->coordinator));
	}
}

static void
on_recv_done(struct agent_link *l, int rv, int64_t now)
{
	struct cm_msg m;
	char err[256], why[300];
	nng_msg *msg;

	if (rv != 0) {
		snprintf(why, sizeof(why), "%s", rv == NNG_ETIMEDOUT ?
		    "no answer in time (is the coordinator running?)" :
		    nng_strerror(rv));
		link_failed(l, now, why);
		return;
	}
	msg = nng_aio_get_msg(l->aio);
	rv = agent_wire_decode(l->auth, &m, nng_msg_body(msg),
	    nng_msg_len(msg), err, sizeof(err));
	nng_msg_free(msg);
	if (rv < 0) {
		snprintf(why, sizeof(why), "undecodable answer: %s", err);
		link_failed(l, now, why);
		return;
	}
	on_reply(l, &m, now);
	cm_msg_clear(&m);
}

// The exchange ended: the answer came, or the send or the receive failed
// (or was cancelled at the deadline, which counts as a timeout).
static void
on_step(struct agent_link *l, int64_t now)
{
	int rv = nng_aio_result(l->aio);
	char why[128];

	if (l->phase == LK_IDLE)
		return;
	if (l->timed_out && rv == NNG_ECANCELED)
		rv = NNG_ETIMEDOUT;
	l->timed_out = false;
	if (!atomic_load(&l->sending)) {
		on_recv_done(l, rv, now);
		return;
	}
	if (rv == 0) // cannot happen: on_aio receives after a send
		rv = NNG_EINTERNAL;
	if (nng_aio_get_msg(l->aio) != NULL) // a failed send leaves it to us
		nng_msg_free(nng_aio_get_msg(l->aio));
	snprintf(why, sizeof(why), "send: %s", rv == NNG_ETIMEDOUT ?
	    "not connected" : nng_strerror(rv));
	link_failed(l, now, why);
}

// ---- starting an exchange -----------------------------------------------

static int
fill_register(struct cm_msg *m, const struct agent_conf *c,
    const struct agent_link_src *src)
{
	struct cm_msg_register *r = &m->u.reg;
	int rv;

	rv = src->workloads(src->arg, &r->workloads, &r->n_workloads);
	if (rv < 0)
		return rv;
	snprintf(r->node, sizeof(r->node), "%s", c->node);
	snprintf(r->addr, sizeof(r->addr), "%s", agent_conf_advertised(c));
	snprintf(r->runtime, sizeof(r->runtime), "%s", src->runtime);
	return 0;
}

static int
build_request(struct agent_link *l, const struct agent_link_src *src,
    nng_msg **ret)
{
	struct cm_msg m;
	void *buf = NULL;
	size_t len = 0;
	int rv = 0;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.id = l->next_id++;
	m.type = l->registered && !l->update ? CM_MSG_HEARTBEAT :
	    CM_MSG_REGISTER;
	if (m.type == CM_MSG_REGISTER) {
		l->update = false;
		rv = fill_register(&m, l->conf, src);
	} else {
		snprintf(m.u.hb.node, sizeof(m.u.hb.node), "%s", l->conf->node);
		m.u.hb.seq = ++l->seq;
		m.u.hb.unhealthy = src->unhealthy(src->arg);
	}
	if (rv == 0)
		rv = agent_wire_encode(l->auth, &m, &buf, &len);
	if (m.type == CM_MSG_REGISTER)
		free(m.u.reg.workloads);
	if (rv == 0 && nng_msg_alloc(ret, 0) != 0)
		rv = -ENOMEM;
	if (rv == 0 && nng_msg_append(*ret, buf, len) != 0) {
		nng_msg_free(*ret);
		rv = -ENOMEM;
	}
	free(buf);
	l->cur_type = m.type;
	l->cur_id = m.id;
	return rv;
}

static void
start_exchange(struct agent_link *l, const struct agent_link_src *src,
    int64_t now)
{
	nng_msg *msg = NULL;
	char why[128];
	int rv;

	rv = build_request(l, src, &msg);
	if (rv < 0) {
		snprintf(why, sizeof(why), "cannot build %s: %s",
		    cm_msg_type_name(l->cur_type), strerror(-rv));
		link_failed(l, now, why);
		return;
	}
	l->exchanges++;
	l->phase = LK_SEND;
	l->deadline_ms = now + AGENT_LINK_TIMEOUT_MS;
	l->timed_out = false;
	atomic_store(&l->sending, true);
	cm_debug("link.send", "type=%s id=%llu", cm_msg_type_name(l->cur_type),
	    (unsigned long long)l->cur_id);
	nng_aio_set_msg(l->aio, msg);
	nng_ctx_send(l->ctx, l->aio);
}

void
agent_link_update(struct agent_link *l, int64_t now)
{
	l->update = true;
	if (l->phase == LK_IDLE && l->due_ms > now)
		l->due_ms = now;
}

void
agent_link_reregister(struct agent_link *l, int64_t now)
{
	if (l->registered)
		cm_notice("link.unknown_node", "node=%s action=register",
		    l->conf->node);
	l->registered = false;
	if (l->phase == LK_IDLE)
		l->due_ms = now;
	else
		l->reregister = true;
}

// ---- permits ----------------------------------------------------------------

static void
permit_finished(struct agent_link *l, const char *why)
{
	l->pphase = LK_IDLE;
	l->pready = true;
	if (why != NULL) {
		l->pans.answered = false;
		snprintf(l->pans.why, sizeof(l->pans.why), "%s", why);
	}
}

static void
permit_reply(struct agent_link *l, nng_msg *msg)
{
	struct cm_msg m;
	char err[200], why[256];
	int rv;

	rv = agent_wire_decode(l->auth, &m, nng_msg_body(msg),
	    nng_msg_len(msg), err, sizeof(err));
	nng_msg_free(msg);
	if (rv < 0) {
		snprintf(why, sizeof(why), "undecodable answer: %s", err);
		permit_finished(l, why);
		return;
	}
	if (m.type == CM_MSG_ERROR) {
		snprintf(why, sizeof(why), "coordinator answered error %s: "
		    "%.160s", m.u.error.code, m.u.error.message);
		permit_finished(l, why);
	} else if (m.type != CM_MSG_REPLY || m.id != l->pcur_id) {
		snprintf(why, sizeof(why), "unexpected answer (%s id %llu)",
		    cm_msg_type_name(m.type) ? cm_msg_type_name(m.type) : "?",
		    (unsigned long long)m.id);
		permit_finished(l, why);
	} else {
		l->pans.answered = true;
		l->pans.ok = m.u.reply.ok;
		l->pans.code = m.u.reply.code;
		snprintf(l->pans.message, sizeof(l->pans.message), "%s",
		    m.u.reply.message);
		l->pans.why[0] = '\0';
		permit_finished(l, NULL);
	}
	cm_msg_clear(&m);
}

static void
on_permit_step(struct agent_link *l, int64_t now)
{
	int rv = nng_aio_result(l->paio);
	int64_t left = l->pdeadline_ms - now;
	char why[160];

	if (l->pphase == LK_SEND && rv != 0) {
		nng_msg *m = nng_aio_get_msg(l->paio);

		if (m != NULL)
			nng_msg_free(m);
		if (rv == NNG_ETIMEDOUT)
			snprintf(why, sizeof(why), "not connected to the "
			    "coordinator within %lld ms",
			    (long long)l->ptimeout_ms);
		else
			snprintf(why, sizeof(why), "send: %s",
			    nng_strerror(rv));
		permit_finished(l, why);
	} else if (l->pphase == LK_SEND) {
		l->pphase = LK_RECV;
		nng_aio_set_timeout(l->paio, left > 1 ? (nng_duration)left : 1);
		nng_ctx_recv(l->pctx, l->paio);
	} else if (l->pphase == LK_RECV && rv != 0) {
		if (rv == NNG_ETIMEDOUT)
			snprintf(why, sizeof(why), "no answer within %lld ms",
			    (long long)l->ptimeout_ms);
		else
			snprintf(why, sizeof(why), "receive: %s",
			    nng_strerror(rv));
		permit_finished(l, why);
	} else if (l->pphase == LK_RECV) {
		permit_reply(l, nng_aio_get_msg(l->paio));
	}
}

int
agent_link_permit_start(struct agent_link *l, const struct cm_msg_permit *req,
    int64_t timeout_ms, int64_t now)
{
	struct cm_msg m;
	nng_msg *msg = NULL;
	void *buf = NULL;
	size_t len = 0;
	int rv;

	if (l->pphase != LK_IDLE || l->pready)
		return -EBUSY;
	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.type = CM_MSG_PERMIT;
	m.id = l->next_id++;
	m.u.permit = *req;
	snprintf(m.u.permit.node, sizeof(m.u.permit.node), "%s",
	    l->conf->node);
	rv = agent_wire_encode(l->auth, &m, &buf, &len);
	if (rv == 0 && nng_msg_alloc(&msg, 0) != 0)
		rv = -ENOMEM;
	if (rv == 0 && nng_msg_append(msg, buf, len) != 0) {
		nng_msg_free(msg);
		rv = -ENOMEM;
	}
	free(buf);
	if (rv < 0)
		return rv;
	l->pcur_id = m.id;
	l->ptimeout_ms = timeout_ms;
	l->pdeadline_ms = now + timeout_ms;
	l->pphase = LK_SEND;
	cm_debug("link.send", "type=permit id=%llu instance=%s",
	    (unsigned long long)m.id, req->instance);
	nng_aio_set_timeout(l->paio, (nng_duration)timeout_ms);
	nng_aio_set_msg(l->paio, msg);
	nng_ctx_send(l->pctx, l->paio);
	return 0;
}

bool
agent_link_permit_take(struct agent_link *l,
    struct agent_link_permit_ans *ret)
{
	if (!l->pready)
		return false;
	*ret = l->pans;
	l->pready = false;
	return true;
}

bool
agent_link_permit_busy(const struct agent_link *l)
{
	return l->pphase != LK_IDLE || l->pready;
}

// An exchange in flight: its deadline, or, once that passed, cancel it
// (the callback then reports NNG_ECANCELED and wakes the loop). The
// cancel is repeated now and then, in case it came between the send's
// end and the receive's start in on_aio (it has nothing to cancel then).
static int64_t
exchange_deadline(struct agent_link *l, int64_t now)
{
	if (now < l->deadline_ms)
		return l->deadline_ms;
	l->timed_out = true;
	nng_aio_cancel(l->aio);
	return now + LINK_CANCEL_AGAIN_MS;
}

int64_t
agent_link_tick(struct agent_link *l, const struct agent_link_src *src,
    int64_t now)
{
	if (atomic_exchange(&l->pstep_done, false))
		on_permit_step(l, now);
	if (atomic_exchange(&l->step_done, false))
		on_step(l, now);
	if (l->phase != LK_IDLE)
		return exchange_deadline(l, now);
	if (now < l->due_ms)
		return l->due_ms;
	start_exchange(l, src, now);
	return l->phase == LK_IDLE ? l->due_ms : l->deadline_ms;
}
