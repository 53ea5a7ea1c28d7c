// SPDX-License-Identifier: MIT
// The agent channel once libnng's nng_close has hung (cm_wire_close left
// a close behind and skips every later one): the registry goes on
// working, and coord_agents_stop still keeps its word that no command
// callback runs after it returned, though the sockets it could not close
// stay open and their commands may still be answered or time out.
// nng_close is replaced here by one that blocks for good while `hang` is
// set (as libnng 1.5.2's hang, or the fault shim's REFLEX_HANG_NNG_CLOSE);
// the hang is process-wide, hence a binary of its own.
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "cm_log.h"
#include "chan_peer.h"
#include "cm_wire.h"
#include "coord_agents.h"
#include "tt.h"

static char dir[64];
static atomic_bool hang;
static atomic_int hung; // nng_close calls that blocked

typedef int (*close_fn)(nng_socket);

int
nng_close(nng_socket s)
{
	close_fn next;

	if (atomic_load(&hang)) {
		atomic_fetch_add(&hung, 1);
		for (;;)
			pause();
	}
	next = (close_fn)dlsym(RTLD_NEXT, "nng_close");
	return next != NULL ? next(s) : NNG_ENOTSUP;
}

// Closes s for real, hang or not.
static void
real_close(nng_socket s)
{
	close_fn next = (close_fn)dlsym(RTLD_NEXT, "nng_close");

	if (next != NULL)
		(void)next(s);
}

// Connections a listener of the test holds now.
static atomic_int connected;

static void
on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)arg;
	atomic_fetch_add(&connected, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

// Connections the third fake agent accepted so far.
static atomic_int accepted;

static void
on_accept(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(void)arg;
	atomic_fetch_add(&accepted, 1);
}

// A command's outcome; `after_stop` set once coord_agents_stop returned.
static atomic_bool stopped;
struct outcome {
	atomic_int calls, late;
	atomic_int rv;
};

static void
on_done(int rv, const struct cm_msg_reply *reply, void *arg)
{
	struct outcome *o = arg;

	(void)reply;
	atomic_store(&o->rv, rv);
	if (atomic_load(&stopped))
		atomic_fetch_add(&o->late, 1);
	atomic_fetch_add(&o->calls, 1);
}

static int
register_at(nng_socket s, const char *node, const char *addr)
{
	struct cm_workload w = { .healthy = true };
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_REGISTER, .id = 1 };

	snprintf(m.u.reg.node, sizeof(m.u.reg.node), "%s", node);
	snprintf(m.u.reg.addr, sizeof(m.u.reg.addr), "%s", addr);
	snprintf(m.u.reg.runtime, sizeof(m.u.reg.runtime), "process");
	snprintf(w.service, sizeof(w.service), "web");
	snprintf(w.instance, sizeof(w.instance), "%s", node);
	snprintf(w.addr, sizeof(w.addr), "127.0.0.1:9");
	m.u.reg.workloads = &w;
	m.u.reg.n_workloads = 1;
	return chan_ok(s, &m);
}

static int
heartbeat(nng_socket s, const char *node, uint64_t seq)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_HEARTBEAT, .id = seq };

	snprintf(m.u.hb.node, sizeof(m.u.hb.node), "%s", node);
	m.u.hb.seq = seq;
	return chan_ok(s, &m);
}

// A command server of a fake agent: a rep socket on ipc://dir/name.
static int
agent_open(nng_socket *s, const char *name, char *url, size_t urllen)
{
	snprintf(url, urllen, "ipc://%s/%s", dir, name);
	if (nng_rep0_open(s) != 0)
		return -1;
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 10000);
	return nng_listen(*s, url, NULL, 0) == 0 ? 0 : -1;
}

// Waits for a command on s (up to 10 s); its action id, or 0.
static uint64_t
agent_take(nng_socket s)
{
	struct cm_msg m = { 0 };
	char err[256];
	void *in = NULL;
	size_t inlen = 0;
	uint64_t id = 0;

	if (nng_recv(s, &in, &inlen, NNG_FLAG_ALLOC) != 0)
		return 0;
	if (cm_msg_decode(&m, in, inlen, err, sizeof(err)) == 0 &&
	    m.type == CM_MSG_COMMAND)
		id = m.id;
	nng_free(in, inlen);
	cm_msg_clear(&m);
	return id;
}

static int
agent_answer(nng_socket s, uint64_t id)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .type = CM_MSG_REPLY,
		.id = id, .u.reply = { .ok = true } };
	void *buf;
	size_t len;
	int rv;

	if (cm_msg_encode(&m, &buf, &len) != 0)
		return -1;
	rv = nng_send(s, buf, len, 0);
	free(buf);
	return rv == 0 ? 0 : -1;
}

static int
command(struct coord_agents *a, const char *node, uint64_t id,
    int64_t timeout_ms, struct outcome *o)
{
	struct cm_msg_command cmd = { .action_id = id, .timeout_ms = 1000 };

	snprintf(cmd.action, sizeof(cmd.action), "restart");
	snprintf(cmd.service, sizeof(cmd.service), "web");
	snprintf(cmd.instance, sizeof(cmd.instance), "%s", node);
	return coord_agents_command(a, node, &cmd, timeout_ms, on_done, o);
}

static bool
wait_int(atomic_int *v, int n)
{
	for (int i = 0; i < 1000 && atomic_load(v) < n; i++)
		nng_msleep(10);
	return atomic_load(v) >= n;
}

static bool
wait_calls(struct outcome *o, int n)
{
	for (int i = 0; i < 1000 && atomic_load(&o->calls) < n; i++)
		nng_msleep(10);
	return atomic_load(&o->calls) >= n;
}

// Once a close has hung: an agent that moves keeps working at its new
// address, heartbeats are answered, the old socket left open stops
// dialing the old address (its command in flight fails), registering
// again at the same address dials afresh (a stuck libnng does not redial
// a dropped connection), and at the
// stop the commands still out on sockets left open never call back,
// though one is answered and another times out after the stop returned.
static void
test_wedged_then_stop(void)
{
	struct coord_agents *a = NULL;
	struct outcome moved = { 0 }, fresh = { 0 }, answered = { 0 },
		       expiring = { 0 }, old = { 0 }, again = { 0 };
	char url[128], a1[128], a2[128], a3[128], err[256] = "";
	nng_socket reg, ag1, ag1b, ag2, ag3;
	uint64_t id_old, id_ans;

	snprintf(url, sizeof(url), "ipc://%s/coord.ipc", dir);
	CHECK(agent_open(&ag1, "a1.cmd", a1, sizeof(a1)) == 0);
	CHECK(agent_open(&ag2, "a2.cmd", a2, sizeof(a2)) == 0);
	snprintf(a3, sizeof(a3), "ipc://%s/a3.cmd", dir);
	CHECK(nng_rep0_open(&ag3) == 0);
	nng_socket_set_ms(ag3, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(ag3, NNG_OPT_SENDTIMEO, 10000);
	nng_pipe_notify(ag3, NNG_PIPE_EV_ADD_POST, on_accept, NULL);
	CHECK(nng_listen(ag3, a3, NULL, 0) == 0);
	if (coord_agents_start(&a, url, 60000, NULL, err, sizeof(err)) != 0) {
		printf("# start: %s\n", err);
		CHECK(false);
		return;
	}
	CHECK(nng_req0_open(&reg) == 0);
	nng_socket_set_ms(reg, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(reg, NNG_OPT_SENDTIMEO, 10000);
	CHECK(nng_dial(reg, url, NULL, 0) == 0);
	CHECK(register_at(reg, "n1", a1) == 0);

	// A command out at the first address, taken but not answered.
	CHECK(command(a, "n1", 1, 3000, &old) == 0);
	id_old = agent_take(ag1);
	CHECK(id_old == 1);

	// libnng hangs from here on: the move retires the first socket,
	// whose close is left behind (on the registry's worker).
	atomic_store(&hang, true);
	CHECK(register_at(reg, "n1", a2) == 0);
	CHECK(command(a, "n1", 2, 20000, &moved) == 0);
	CHECK(agent_take(ag2) == 2);
	CHECK(agent_answer(ag2, 2) == 0);
	CHECK(wait_calls(&moved, 1));
	CHECK_INT(atomic_load(&moved.rv), 0);
	CHECK(heartbeat(reg, "n1", 2) == 0);
	// Someone else listens at the first address now: the first
	// socket, left open, must not stay connected to it (nor redial it).
	real_close(ag1);
	CHECK(nng_rep0_open(&ag1b) == 0);
	nng_pipe_notify(ag1b, NNG_PIPE_EV_ADD_POST, on_pipe, NULL);
	nng_pipe_notify(ag1b, NNG_PIPE_EV_REM_POST, on_pipe, NULL);
	CHECK(nng_listen(ag1b, a1, NULL, 0) == 0);

	// Moving again: that close is not tried (no second wait), and the
	// third address works too.
	CHECK(register_at(reg, "n1", a3) == 0);
	CHECK(command(a, "n1", 3, 20000, &fresh) == 0);
	CHECK(agent_take(ag3) == 3);
	CHECK(agent_answer(ag3, 3) == 0);
	CHECK(wait_calls(&fresh, 1));
	CHECK_INT(atomic_load(&fresh.rv), 0);
	CHECK(heartbeat(reg, "n1", 3) == 0);

	// Two commands out at the stop: one the agent answers after it, one
	// that times out after it. Neither may call back: the caller has
	// freed what their arguments point to. First the worker's close is
	// left behind (so that the stop does not wait for it).
	for (int i = 0; i < 1000 && atomic_load(&hung) == 0; i++)
		nng_msleep(10);
	nng_msleep(CM_WIRE_CLOSE_WAIT_MS + 300);
	// The first socket's command failed (cut off, or timed out), and
	// its socket stays away from the first address (redials come at
	// most 2 s apart).
	CHECK(wait_calls(&old, 1));
	CHECK(atomic_load(&old.rv) != 0);
	for (int i = 0; i < 300 && atomic_load(&connected) > 0; i++)
		nng_msleep(10);
	nng_msleep(2500);
	CHECK_INT(atomic_load(&connected), 0);
	(void)id_old;

	// The agent registers again at the same address (it restarted,
	// say): a fresh socket dials it, and commands go through.
	CHECK_INT(atomic_load(&accepted), 1);
	CHECK(register_at(reg, "n1", a3) == 0);
	CHECK(wait_int(&accepted, 2));
	CHECK(command(a, "n1", 6, 20000, &again) == 0);
	CHECK(agent_take(ag3) == 6);
	CHECK(agent_answer(ag3, 6) == 0);
	CHECK(wait_calls(&again, 1));
	CHECK_INT(atomic_load(&again.rv), 0);
	CHECK(command(a, "n1", 4, 300, &expiring) == 0);
	CHECK(agent_take(ag3) == 4);
	CHECK(command(a, "n1", 5, 20000, &answered) == 0);
	id_ans = agent_take(ag3);
	CHECK(id_ans == 5);
	coord_agents_stop(a);
	atomic_store(&stopped, true);
	// Only the worker's close blocked (the stop waited for it): the
	// others were not tried.
	CHECK_INT(atomic_load(&hung), 1);
	CHECK(cm_wire_close(reg, CM_WIRE_CLOSE_WAIT_MS) == CM_WIRE_SKIPPED);
	// A raw rep socket answers its last request (5); 4 times out.
	CHECK(agent_answer(ag3, id_ans) == 0);
	nng_msleep(600); // past 4's timeout, and 5's answer delivered
	// (4 may still time out within the stop on a slow machine.)
	CHECK_INT(atomic_load(&answered.calls), 0);
	CHECK_INT(atomic_load(&answered.late), 0);
	CHECK_INT(atomic_load(&expiring.late), 0);
}

static const struct tt_case cases[] = {
	{ "wedged, then stopped with commands out", test_wedged_then_stop },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (getenv("TEST_DEBUG") == NULL)
		cm_log_set_level(CM_LOG_ERR);
	return tt_run_in_dir(cases, argc, argv, dir, sizeof(dir),
	    "/tmp/reflex-wedged-XXXXXX");
}
