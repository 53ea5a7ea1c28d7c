// SPDX-License-Identifier: MIT
// agent_cmd: nng rep servers for commands and status requests.
#include "agent_cmd.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "cm_log.h"
#include "cm_wire.h"

enum ctx_phase {
	PH_RECV,  // waiting for a request
	PH_DIRECT, // with the server's direct function
	PH_QUEUED, // handed to the main loop
	PH_SEND,  // reply being sent
};

// What the "cmd.done" line says of an answer.
struct done_facts {
	bool ok;
	int code;
	char message[CM_TEXT_MAX];
};

struct agent_cmd_ctx {
	struct agent_cmd_srv *srv;
	struct agent_cmd_ctx *next; // queue link
	nng_ctx ctx;
	nng_aio *aio;
	bool ctx_open;
	enum ctx_phase phase;
	struct cm_msg req; // decoded request while queued
	// The direct function's answer, logged and sent once it returned
	// (so not under the lock it holds): the frame (NULL: encoding
	// failed with out_rv) and the facts of its line.
	nng_msg *out;
	int out_rv;
	struct done_facts done;
};

struct agent_cmd_srv {
	char name[16];
	char ipc_path[PATH_MAX]; // "" for tcp
	enum cm_msg_type serves;
	char refusal[128];
	struct cm_auth *auth; // borrowed, or NULL
	agent_cmd_wake_fn wake;
	void *wake_arg;
	agent_cmd_direct_fn direct;
	void *direct_arg;
	nng_socket sock;
	bool sock_open;
	int lock_fd; // ipc: held lock on "<ipc_path>.lock", else -1
	struct agent_cmd_ctx *ctxs;
	unsigned n;
	pthread_mutex_t mu; // guards the queue
	struct agent_cmd_ctx *head, *tail;
	atomic_bool closing;
	atomic_uint_fast64_t bad_frames, refused, unauthenticated;
};

void
agent_cmd_hex16(const void *data, size_t len, char *buf, size_t n)
{
	const unsigned char *p = data;
	size_t o = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < len && i < 16 && o + 3 <= n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%02x", p[i]);
}

// ---- framing ----------------------------------------------------------

int
agent_wire_encode(struct cm_auth *auth, struct cm_msg *m, void **ret_buf,
    size_t *ret_len)
{
	if (auth == NULL)
		return cm_msg_encode(m, ret_buf, ret_len);
	cm_auth_stamp(m);
	return cm_auth_encode(auth, m, ret_buf, ret_len);
}

int
agent_wire_decode(struct cm_auth *auth, struct cm_msg *m, const void *buf,
    size_t len, char *err, size_t errlen)
{
	if (auth == NULL)
		return cm_msg_decode(m, buf, len, err, errlen);
	return cm_auth_decode(auth, m, buf, len, err, errlen);
}

// ---- sending ----------------------------------------------------------

static void start_recv(struct agent_cmd_ctx *c);

#define WIRE_RESERVE 256 // most answers fit: one allocation

// Starts sending msg (encoded by cm_wire_msg; NULL when that failed with
// rv) on c. Falls back to receiving when there is nothing to send (the
// peer will time out).
static void
send_frame(struct agent_cmd_ctx *c, nng_msg *msg, int rv)
{
	if (msg == NULL) {
		cm_err("cmd.reply_failed", "server=%s error=%s", c->srv->name,
		    cm_q(strerror(-rv)));
		start_recv(c);
		return;
	}
	c->phase = PH_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

static void
send_msg(struct agent_cmd_ctx *c, struct cm_msg *m)
{
	nng_msg *msg = NULL;
	int rv = cm_wire_msg(c->srv->auth, m, WIRE_RESERVE, &msg);

	send_frame(c, msg, rv);
}

static void
send_reply(struct agent_cmd_ctx *c, uint64_t id, bool ok, int code,
    const char *text)
{
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.type = CM_MSG_REPLY;
	m.id = id;
	m.u.reply.ok = ok;
	m.u.reply.code = code;
	snprintf(m.u.reply.message, sizeof(m.u.reply.message), "%s", text);
	send_msg(c, &m);
}

static void
send_error(struct agent_cmd_ctx *c, int rv, const char *why)
{
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.type = CM_MSG_ERROR;
	snprintf(m.u.error.code, sizeof(m.u.error.code), "%s",
	    cm_wire_error_code(rv));
	snprintf(m.u.error.message, sizeof(m.u.error.message), "%s", why);
	send_msg(c, &m);
}

// ---- receiving (nng threads) ------------------------------------------

static void finish_direct(struct agent_cmd_ctx *c);

static void
start_recv(struct agent_cmd_ctx *c)
{
	c->phase = PH_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

static void
enqueue(struct agent_cmd_ctx *c)
{
	struct agent_cmd_srv *s = c->srv;

	c->phase = PH_QUEUED;
	c->next = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	pthread_mutex_unlock(&s->mu);
	s->wake(s->wake_arg);
}

static void
on_frame(struct agent_cmd_ctx *c, nng_msg *msg)
{
	struct agent_cmd_srv *s = c->srv;
	const void *body = nng_msg_body(msg);
	size_t len = nng_msg_len(msg);
	char err[256] = "", hex[40];
	int rv;

	rv = agent_wire_decode(s->auth, &c->req, body, len, err, sizeof(err));
	if (s->auth != NULL && (rv == -EACCES || rv == -ESTALE)) {
		atomic_fetch_add(&s->unauthenticated, 1);
		agent_cmd_hex16(body, len, hex, sizeof(hex));
		cm_warn("cmd.unauthenticated", "server=%s size=%zu head=%s "
		    "code=%s error=%s count=%llu", s->name, len, hex,
		    cm_wire_error_code(rv), cm_q(err),
		    (unsigned long long)atomic_load(&s->unauthenticated));
		nng_msg_free(msg);
		send_error(c, rv, err);
		return;
	}
	if (rv < 0) {
		atomic_fetch_add(&s->bad_frames, 1);
		agent_cmd_hex16(body, len, hex, sizeof(hex));
		cm_warn("cmd.bad_frame", "server=%s size=%zu head=%s error=%s "
		    "count=%llu", s->name, len, hex, cm_q(err),
		    (unsigned long long)atomic_load(&s->bad_frames));
		nng_msg_free(msg);
		send_error(c, rv, err[0] ? err : "undecodable frame");
		return;
	}
	nng_msg_free(msg);
	if (c->req.type != s->serves) {
		uint64_t id = c->req.id;
		const char *t = cm_msg_type_name(c->req.type);

		atomic_fetch_add(&s->refused, 1);
		cm_info("cmd.refused", "server=%s type=%s id=%llu", s->name,
		    cm_q(t), (unsigned long long)id);
		cm_msg_clear(&c->req);
		send_reply(c, id, false, -EPROTO, s->refusal);
		return;
	}
	c->phase = PH_DIRECT;
	if (s->direct != NULL && s->direct(s->direct_arg, c)) {
		finish_direct(c); // answered: log it and send it now
		return;
	}
	enqueue(c);
}

static void
on_aio(void *arg)
{
	struct agent_cmd_ctx *c = arg;
	int rv = nng_aio_result(c->aio);
	bool stop = rv == NNG_ECLOSED || rv == NNG_ECANCELED ||
	    atomic_load(&c->srv->closing);

	if (c->phase == PH_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		if (!stop)
			start_recv(c);
		return;
	}
	if (stop)
		return;
	if (rv != 0) {
		cm_warn("cmd.recv_failed", "server=%s error=%s", c->srv->name,
		    cm_q(nng_strerror(rv)));
		start_recv(c);
		return;
	}
	on_frame(c, nng_aio_get_msg(c->aio));
}

// ---- main-thread API ----------------------------------------------------

struct agent_cmd_ctx *
agent_cmd_next(struct agent_cmd_srv *s)
{
	struct agent_cmd_ctx *c;

	pthread_mutex_lock(&s->mu);
	c = s->head;
	if (c != NULL) {
		s->head = c->next;
		if (s->head == NULL)
			s->tail = NULL;
		c->next = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	return c;
}

const struct cm_msg *
agent_cmd_request(const struct agent_cmd_ctx *c)
{
	return &c->req;
}

// A name field of a decoded command as cm_q() prints it, without its
// scan: the decoder let through only [A-Za-z0-9._-] (alphanumeric at
// both ends, under 64 bytes), which cm_q leaves as it is, or "" (the
// instance of a command to every instance), which it prints as "".
static const char *
name_field(const char *name)
{
	return name[0] != '\0' ? name : "\"\"";
}

// The one log line of a command: what was asked and what it got ("check",
// which the coordinator sends every verify interval, at debug only).
static void
log_done(const struct cm_msg *req, const struct done_facts *d)
{
	const struct cm_msg_command *c = &req->u.cmd;
	int level;

	if (req->type != CM_MSG_COMMAND)
		return;
	level = strcmp(c->action, "check") == 0 ? CM_LOG_DEBUG : CM_LOG_INFO;
	CM_LOG_AT(level, "cmd.done", "action=%s action_id=%llu service=%s "
	    "instance=%s ok=%s code=%d message=%s reason=%s",
	    name_field(c->action), (unsigned long long)c->action_id,
	    name_field(c->service), name_field(c->instance),
	    d->ok ? "true" : "false", d->code, cm_q(d->message),
	    cm_q(c->reason));
}

// Notes what the line of answer m says (only a reply has ok, code and
// message).
static void
note_facts(struct done_facts *d, const struct cm_msg *m)
{
	const struct cm_msg_reply *r = &m->u.reply;
	bool reply = m->type == CM_MSG_REPLY;
	const char *text = reply ? r->message : "";
	size_t n = strnlen(text, sizeof(d->message) - 1);

	d->ok = reply && r->ok;
	d->code = reply ? (int)r->code : 0;
	memcpy(d->message, text, n);
	d->message[n] = '\0';
}

// Logs the answer's line, releases the request and sends the frame.
static void
finish(struct agent_cmd_ctx *c, nng_msg *msg, int rv)
{
	log_done(&c->req, &c->done);
	cm_msg_clear(&c->req);
	send_frame(c, msg, rv);
}

// After the direct function answered: the frame it encoded goes out now,
// on the same nng thread but with the agent's state lock released.
static void
finish_direct(struct agent_cmd_ctx *c)
{
	nng_msg *msg = c->out;

	c->out = NULL;
	finish(c, msg, c->out_rv);
}

// Answers c's request with m (version and id set here): encoded at once,
// logged and sent at once from the main loop, or once the direct
// function has returned.
static void
answer(struct agent_cmd_ctx *c, struct cm_msg *m)
{
	nng_msg *msg = NULL;
	int rv;

	m->version = CM_PROTO_VERSION;
	m->id = c->req.id;
	rv = cm_wire_msg(c->srv->auth, m, WIRE_RESERVE, &msg);
	note_facts(&c->done, m);
	if (c->phase == PH_DIRECT) {
		c->out = msg;
		c->out_rv = rv;
		return;
	}
	finish(c, msg, rv);
}

void
agent_cmd_reply(struct agent_cmd_ctx *c, const struct cm_msg *reply)
{
	struct cm_msg m = *reply;

	answer(c, &m);
}

void
agent_cmd_replyf(struct agent_cmd_ctx *c, bool ok, int code,
    const char *fmt, ...)
{
	struct cm_msg m;
	va_list ap;

	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_REPLY;
	m.u.reply.ok = ok;
	m.u.reply.code = code;
	va_start(ap, fmt);
	vsnprintf(m.u.reply.message, sizeof(m.u.reply.message), fmt, ap);
	va_end(ap);
	answer(c, &m);
}

uint64_t
agent_cmd_bad_frames(const struct agent_cmd_srv *s)
{
	return atomic_load(&s->bad_frames);
}

uint64_t
agent_cmd_refused(const struct agent_cmd_srv *s)
{
	return atomic_load(&s->refused);
}

uint64_t
agent_cmd_unauthenticated(const struct agent_cmd_srv *s)
{
	return atomic_load(&s->unauthenticated);
}

// ---- setup ---------------------------------------------------------------

// Creates the missing directories above `path` (mode 0750).
static int
make_parents(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

// Takes the lock file "<path>.lock" (kept open, CLOEXEC, for the life of
// the server). The lock, not a test connection, tells whether another
// agent serves this path: libnng 1.5.2's ipc listener stops accepting
// after a peer disconnects during the handshake (nng issue #1518), so we
// never connect to a live agent's socket to find out.
static int
lock_path(struct agent_cmd_srv *s, char *err, size_t errlen)
{
	char lock[PATH_MAX + 8];
	int rv = 0;

	snprintf(lock, sizeof(lock), "%s.lock", s->ipc_path);
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (s->lock_fd < 0) {
		rv = -errno;
		snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		return rv;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	rv = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
	snprintf(err, errlen, "%s: in use by a running agent (%s is locked)",
	    s->ipc_path, lock);
	close(s->lock_fd);
	s->lock_fd = -1;
	return rv;
}

// Makes the socket path usable for a new listener: parents exist, we hold
// the lock, and a stale socket file is gone; a file that is not a socket
// is an error.
static int
prepare_ipc(struct agent_cmd_srv *s, char *err, size_t errlen)
{
	const char *path = s->ipc_path;
	struct stat st;
	int rv = make_parents(path);

	if (rv < 0) {
		snprintf(err, errlen, "%s: cannot create parent directory: %s",
		    path, strerror(-rv));
		return rv;
	}
	rv = lock_path(s, err, errlen);
	if (rv < 0)
		return rv;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket", path);
		return -EEXIST;
	}
	if (unlink(path) < 0) {
		rv = -errno;
		snprintf(err, errlen, "%s: cannot remove stale socket: %s",
		    path, strerror(errno));
		return rv;
	}
	cm_info("cmd.stale_socket_removed", "path=%s", cm_q(path));
	return 0;
}

static int
nng_err(int rv, const char *what, const char *url, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s %s: %s", what, url, nng_strerror(rv));
	return rv == NNG_EADDRINUSE ? -EADDRINUSE :
	    rv == NNG_ENOMEM ? -ENOMEM : rv == NNG_EPERM ? -EPERM : -EIO;
}

static int
start_listener(struct agent_cmd_srv *s, const char *url, char *err,
    size_t errlen)
{
	nng_listener l;
	mode_t old;
	int rv;

	rv = nng_listener_create(&l, s->sock, url);
	if (rv != 0)
		return nng_err(rv, "listen", url, err, errlen);
	if (s->ipc_path[0] != '\0') {
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
		if (rv != 0)
			return nng_err(rv, "set permissions on", url, err,
			    errlen);
	}
	// nng chmods after bind(); the umask closes that window.
	old = umask(077);
	rv = nng_listener_start(l, 0);
	umask(old);
	if (rv != 0)
		return nng_err(rv, "listen", url, err, errlen);
	return 0;
}

static int
open_contexts(struct agent_cmd_srv *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct agent_cmd_ctx *c = &s->ctxs[i];

		c->srv = s;
		if (nng_aio_alloc(&c->aio, on_aio, c) != 0)
			return -ENOMEM;
		if (nng_ctx_open(&c->ctx, s->sock) != 0)
			return -ENOMEM;
		c->ctx_open = true;
	}
	return 0;
}

static int
open_socket(struct agent_cmd_srv *s, const struct agent_cmd_opts *o,
    char *err, size_t errlen)
{
	int rv;

	if (s->ipc_path[0] != '\0') {
		rv = prepare_ipc(s, err, errlen);
		if (rv < 0)
			return rv;
	}
	rv = nng_rep0_open(&s->sock);
	if (rv != 0)
		return nng_err(rv, "open socket for", o->url, err, errlen);
	s->sock_open = true;
	rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cm_msg_recv_max());
	if (rv != 0)
		return nng_err(rv, "set recv-size-max on", o->url, err, errlen);
	rv = open_contexts(s);
	if (rv < 0) {
		snprintf(err, errlen, "%s: out of memory", o->url);
		return rv;
	}
	return start_listener(s, o->url, err, errlen);
}

int
agent_cmd_open(const struct agent_cmd_opts *o, struct agent_cmd_srv **ret,
    char *err, size_t errlen)
{
	struct agent_cmd_srv *s = calloc(1, sizeof(*s));
	int rv;

	if (s == NULL)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", o->name);
	snprintf(s->ipc_path, sizeof(s->ipc_path), "%s",
	    o->ipc_path ? o->ipc_path : "");
	snprintf(s->refusal, sizeof(s->refusal), "%s", o->refusal);
	s->serves = o->serves;
	s->auth = o->auth;
	s->wake = o->wake;
	s->wake_arg = o->wake_arg;
	s->direct = o->direct;
	s->direct_arg = o->direct_arg;
	s->n = o->contexts;
	s->lock_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	s->ctxs = calloc(s->n, sizeof(*s->ctxs));
	rv = s->ctxs == NULL ? -ENOMEM : open_socket(s, o, err, errlen);
	if (rv < 0) {
		if (s->lock_fd < 0)
			s->ipc_path[0] = '\0'; // not ours to remove
		agent_cmd_close(s);
		return rv;
	}
	for (unsigned i = 0; i < s->n; i++)
		start_recv(&s->ctxs[i]);
	cm_info("cmd.listen", "server=%s url=%s contexts=%u sealed=%s",
	    s->name, cm_q(o->url), s->n, s->auth ? "true" : "false");
	*ret = s;
	return 0;
}

void
agent_cmd_close(struct agent_cmd_srv *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->closing, true);
	// Aborts every operation; a close libnng leaves hanging is left
	// behind (the contexts' aios below are stopped either way).
	if (s->sock_open && cm_wire_close(s->sock, CM_WIRE_CLOSE_WAIT_MS) !=
	    CM_WIRE_CLOSED)
		cm_warn("cmd.close_stuck", "server=%s reason=%s", s->name,
		    cm_q("nng_close did not return (libnng 1.5.2): left open"));
	for (unsigned i = 0; s->ctxs != NULL && i < s->n; i++) {
		struct agent_cmd_ctx *c = &s->ctxs[i];

		if (c->aio != NULL)
			nng_aio_free(c->aio); // waits for its callback
		cm_msg_clear(&c->req);
	}
	if (s->ipc_path[0] != '\0')
		(void)unlink(s->ipc_path);
	if (s->lock_fd >= 0)
		close(s->lock_fd); // only now: a successor's socket is safe
	pthread_mutex_destroy(&s->mu);
	free(s->ctxs);
	free(s);
}
