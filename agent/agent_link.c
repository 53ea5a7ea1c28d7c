// SPDX-License-Identifier: MIT
// agent_link: register and heartbeat exchanges with the coordinator.
#include "agent_link.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent_cmd.h"
#include "cm_log.h"
#include "cm_wire.h"
#include "cm_time.h"

enum link_phase {
	LK_IDLE,
	LK_SEND,
	LK_RECV,
};

struct agent_link {
	const struct agent_conf *conf;
	struct cm_auth *auth; // borrowed; NULL = not sealed
	struct agent_http *http; // borrowed: the loop's poll set
	void (*wake)(void *);
	void *wake_arg;
	nng_socket sock;
	nng_dialer dialer;
	bool sock_open;
	int recv_fd; // NNG_OPT_RECVFD (nng's): readable while an answer waits
	int send_fd; // NNG_OPT_SENDFD (nng's): readable while a connection
		     // can take a request
	bool recv_watched, send_watched; // in the loop's poll set
	nng_msg *unsent; // LK_SEND: the request, owned until nng takes it
	enum link_phase phase; // LK_IDLE, LK_SEND (no connection could take
			       // the request yet) or LK_RECV (it is out)
	int64_t deadline_ms;   // the exchange fails if not done by then
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

// Takes the socket's descriptors out of the poll set and closes it (which
// ends a permit in flight with NNG_ECLOSED through its callback).
static void
socket_close(struct agent_link *l)
{
	if (l->recv_watched)
		agent_http_unwatch(l->http, l->recv_fd);
	if (l->send_watched)
		agent_http_unwatch(l->http, l->send_fd);
	l->recv_watched = l->send_watched = false;
	if (l->sock_open && cm_wire_close(l->sock, CM_WIRE_CLOSE_WAIT_MS) !=
	    CM_WIRE_CLOSED) {
		cm_warn("link.close_stuck", "reason=%s",
		    cm_q("nng_close did not return (libnng 1.5.2): left open"));
		// The socket left open stops dialing (closing a dialer does
		// not wait for libnng's stuck reaper).
		(void)nng_dialer_close(l->dialer);
	}
	l->sock_open = false;
}

// Opens the req socket, puts its receive descriptor in the loop's poll
// set, opens the permit context and starts dialing.
static int
socket_open(struct agent_link *l, char *err, size_t errlen)
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
	// The exchanges run on the socket itself, polled from the loop: no
	// aio, so no nng task thread runs a callback of ours or wakes the
	// loop for the send's completion (libnng 1.5.2 asserts on a receive
	// started on a context whose send still waits for a connection).
	rv = nng_socket_get_int(l->sock, NNG_OPT_RECVFD, &l->recv_fd);
	if (rv == 0)
		rv = nng_socket_get_int(l->sock, NNG_OPT_SENDFD, &l->send_fd);
	if (rv != 0)
		return link_err(rv, "poll descriptors", err, errlen);
	rv = agent_http_watch(l->http, l->recv_fd, &l->recv_fd);
	if (rv < 0) {
		snprintf(err, errlen, "coordinator link: poll: %s",
		    strerror(-rv));
		return rv;
	}
	l->recv_watched = true;
	rv = nng_ctx_open(&l->pctx, l->sock);
	if (rv != 0)
		return link_err(rv, "context", err, errlen);
	// Non-blocking: the agent runs without a coordinator; nng keeps
	// redialing in the background.
	l->dialer = (nng_dialer)NNG_DIALER_INITIALIZER;
	rv = nng_dial(l->sock, l->conf->coordinator, &l->dialer,
	    NNG_FLAG_NONBLOCK);
	if (rv != 0)
		return link_err(rv, l->conf->coordinator, err, errlen);
	return 0;
}

static int
link_setup(struct agent_link *l, char *err, size_t errlen)
{
	int rv = nng_aio_alloc(&l->paio, on_paio, l);

	if (rv != 0)
		return link_err(rv, "aio", err, errlen);
	return socket_open(l, err, errlen);
}

// A request went out and got no answer in time: a new socket, so that an
// answer coming later cannot reach the next request's exchange (libnng
// 1.5.2 keeps the socket's receive descriptor readable, with nothing to
// receive, when a new request replaces one whose answer arrived unread).
// nng dials again at once.
static void
link_reopen(struct agent_link *l)
{
	char err[256] = "";

	socket_close(l);
	if (socket_open(l, err, sizeof(err)) == 0)
		return;
	socket_close(l);
	cm_err("link.reopen_failed", "coordinator=%s error=%s",
	    cm_q(l->conf->coordinator), cm_q(err));
}

int
agent_link_open(const struct agent_conf *conf, struct cm_auth *auth,
    struct agent_http *http, void (*wake)(void *), void *wake_arg,
    struct agent_link **ret, char *err, size_t errlen)
{
	struct agent_link *l = calloc(1, sizeof(*l));
	int rv;

	if (l == NULL)
		return -ENOMEM;
	l->conf = conf;
	l->auth = auth;
	l->http = http;
	l->recv_fd = -1;
	l->send_fd = -1;
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

bool
agent_link_owns_tag(const struct agent_link *l, const void *tag)
{
	return l != NULL && (tag == &l->recv_fd || tag == &l->send_fd);
}

void
agent_link_close(struct agent_link *l)
{
	if (l == NULL)
		return;
	socket_close(l); // out of the poll set before nng closes the fds
	if (l->unsent != NULL)
		nng_msg_free(l->unsent);
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

// Watches send_fd only while a request waits for a connection: it is
// readable whenever a connection is idle.
static void
watch_send(struct agent_link *l, bool on)
{
	if (on == l->send_watched)
		return;
	if (!on) {
		agent_http_unwatch(l->http, l->send_fd);
		l->send_watched = false;
		return;
	}
	// Without it the request is tried again at the loop's next turn
	// (the deadline at the latest).
	l->send_watched = agent_http_watch(l->http, l->send_fd,
	    &l->send_fd) == 0;
}

static void
link_failed(struct agent_link *l, int64_t now, const char *why)
{
	if (l->unsent != NULL)
		nng_msg_free(l->unsent);
	l->unsent = NULL;
	watch_send(l, false);
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
on_answer(struct agent_link *l, nng_msg *msg, int64_t now)
{
	struct cm_msg m;
	char err[256], why[300];
	int rv;

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

// LK_SEND: hands the request to nng if a connection can take it now
// (never waits); else keeps it and watches send_fd.
static void
try_send(struct agent_link *l, int64_t now)
{
	char why[128];
	int rv = nng_sendmsg(l->sock, l->unsent, NNG_FLAG_NONBLOCK);

	if (rv == 0) {
		l->unsent = NULL; // nng's now
		watch_send(l, false);
		l->phase = LK_RECV;
		return;
	}
	if (rv == NNG_EAGAIN) {
		watch_send(l, true);
		return;
	}
	snprintf(why, sizeof(why), "send: %s", nng_strerror(rv));
	link_failed(l, now, why);
}

static bool
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

// Takes an answer once recv_fd says one is there: in LK_RECV the
// exchange's, in any other phase one nobody waits for (dropped). Only
// then: a receive that finds nothing makes libnng 1.5.2 forget the
// request. Readable with nothing to take cannot happen (link_reopen);
// should it, the socket is replaced rather than polled in a loop.
static void
try_recv(struct agent_link *l, int64_t now)
{
	nng_msg *msg = NULL;
	char why[128];
	int rv;

	if (!l->sock_open || !readable(l->recv_fd))
		return;
	rv = nng_recvmsg(l->sock, &msg, NNG_FLAG_NONBLOCK);
	if (rv == 0 && l->phase == LK_RECV) {
		on_answer(l, msg, now);
		return;
	}
	if (rv == 0) {
		nng_msg_free(msg);
		return;
	}
	if (l->phase != LK_IDLE) {
		snprintf(why, sizeof(why), "receive: %s", nng_strerror(rv));
		link_failed(l, now, why);
	}
	link_reopen(l);
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

	if (!l->sock_open) {
		char err[256] = "";

		if (socket_open(l, err, sizeof(err)) != 0) {
			socket_close(l);
			l->exchanges++;
			link_failed(l, now, err);
			return;
		}
	}
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
	l->unsent = msg;
	cm_debug("link.send", "type=%s id=%llu", cm_msg_type_name(l->cur_type),
	    (unsigned long long)l->cur_id);
	try_send(l, now);
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
	if (!l->sock_open)
		return -ENOMEM; // link_reopen failed; the next exchange retries
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

// An exchange in flight past its deadline fails. A request still waiting
// for a connection is dropped; one that went out takes its socket with it
// (link_reopen), so its answer cannot come later.
static void
exchange_deadline(struct agent_link *l, int64_t now)
{
	if (l->phase == LK_IDLE || now < l->deadline_ms)
		return;
	if (l->phase == LK_SEND) {
		link_failed(l, now, "send: not connected");
		// Once libnng's reaper is stuck (a close left behind), a
		// connection that dropped is never dialed again: a fresh
		// socket is (the old one is left open, not dialing).
		if (cm_wire_wedged())
			link_reopen(l);
		return;
	}
	link_failed(l, now, "no answer in time (is the coordinator "
	    "running?)");
	link_reopen(l);
}

int64_t
agent_link_tick(struct agent_link *l, const struct agent_link_src *src,
    int64_t now)
{
	if (atomic_exchange(&l->pstep_done, false))
		on_permit_step(l, now);
	if (l->phase == LK_SEND)
		try_send(l, now);
	try_recv(l, now);
	exchange_deadline(l, now);
	if (l->phase != LK_IDLE)
		return l->deadline_ms;
	if (now < l->due_ms)
		return l->due_ms;
	start_exchange(l, src, now);
	return l->phase == LK_IDLE ? l->due_ms : l->deadline_ms;
}
