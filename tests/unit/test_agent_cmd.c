// SPDX-License-Identifier: MIT
// agent_cmd, the agent's command server: an answer given by the direct
// function (on the nng thread, under the agent's state lock) is logged
// and sent only once that function has returned, so the "cmd.done" line
// is written without the lock; an answer given from the main loop to a
// queued request is logged and sent at once. Both lines say the same
// facts in the same form. A real server on ipc:// in a temporary
// directory and an nng req client.
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent_cmd.h"
#include "cm_log.h"
#include "tt.h"

#define WAIT_MS 10000 // how long a check waits for something that must happen

// The state lock the direct function holds, as the agent's does.
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;

// ---- captured log lines ----------------------------------------------------

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char done_line[1024];	// the last cmd.done line
static int done_lines;		// cmd.done lines seen
static int done_under_lock;	// of those, written while state_mu was held

static void
sink(int level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(line, "event=cmd.done") == NULL)
		return;
	// The direct function's thread would hold state_mu here if the line
	// were written under it (a plain mutex: trylock fails for anyone).
	bool locked = pthread_mutex_trylock(&state_mu) != 0;

	if (!locked)
		pthread_mutex_unlock(&state_mu);
	pthread_mutex_lock(&log_mu);
	snprintf(done_line, sizeof(done_line), "%s", line);
	done_lines++;
	done_under_lock += locked;
	pthread_mutex_unlock(&log_mu);
}

static int
lines_seen(void)
{
	int n;

	pthread_mutex_lock(&log_mu);
	n = done_lines;
	pthread_mutex_unlock(&log_mu);
	return n;
}

// ---- the server's callbacks ---------------------------------------------

static int lines_when_answered = -1; // cmd.done lines right after replyf

static void
wake(void *arg)
{
	(void)arg;
}

// Answers "reload_config" itself, under state_mu; leaves the rest to the
// main loop.
static bool
direct(void *arg, struct agent_cmd_ctx *c)
{
	const struct cm_msg_command *cmd = &agent_cmd_request(c)->u.cmd;

	(void)arg;
	if (strcmp(cmd->action, "reload_config") != 0)
		return false;
	pthread_mutex_lock(&state_mu);
	agent_cmd_replyf(c, true, 0, "did %s for %s", cmd->action,
	    cmd->reason);
	lines_when_answered = lines_seen();
	pthread_mutex_unlock(&state_mu);
	return true;
}

// ---- helpers --------------------------------------------------------------

struct fixture {
	char dir[64];
	char url[128];
	struct agent_cmd_srv *srv;
	nng_socket req;
};

static void
setup(struct fixture *f)
{
	char path[96], err[256] = "";
	struct agent_cmd_opts o = {
		.name = "command", .serves = CM_MSG_COMMAND, .contexts = 4,
		.refusal = "commands only", .wake = wake, .direct = direct,
	};

	snprintf(f->dir, sizeof(f->dir), "/tmp/reflex-agent-cmd-XXXXXX");
	CHECK(mkdtemp(f->dir) != NULL);
	snprintf(path, sizeof(path), "%s/cmd.sock", f->dir);
	snprintf(f->url, sizeof(f->url), "ipc://%s", path);
	o.url = f->url;
	o.ipc_path = path;
	cm_log_set_level(CM_LOG_INFO);
	cm_log_set_sink(sink, NULL);
	CHECK_INT(agent_cmd_open(&o, &f->srv, err, sizeof(err)), 0);
	CHECK_INT(nng_req0_open(&f->req), 0);
	nng_socket_set_ms(f->req, NNG_OPT_RECVTIMEO, WAIT_MS);
	nng_socket_set_ms(f->req, NNG_OPT_SENDTIMEO, WAIT_MS);
	CHECK_INT(nng_dial(f->req, f->url, NULL, 0), 0);
	pthread_mutex_lock(&log_mu);
	done_lines = done_under_lock = 0;
	done_line[0] = '\0';
	pthread_mutex_unlock(&log_mu);
	lines_when_answered = -1;
}

static void
teardown(struct fixture *f)
{
	char lock[128];

	nng_close(f->req);
	agent_cmd_close(f->srv);
	cm_log_set_sink(NULL, NULL);
	snprintf(lock, sizeof(lock), "%s/cmd.sock.lock", f->dir);
	unlink(lock);
	rmdir(f->dir);
}

static int
send_command(struct fixture *f, const char *action, const char *instance)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_COMMAND, .id = 31 };
	void *buf;
	size_t len;
	int rv;

	m.u.cmd.action_id = 7;
	snprintf(m.u.cmd.action, sizeof(m.u.cmd.action), "%s", action);
	snprintf(m.u.cmd.service, sizeof(m.u.cmd.service), "web");
	snprintf(m.u.cmd.instance, sizeof(m.u.cmd.instance), "%s", instance);
	snprintf(m.u.cmd.reason, sizeof(m.u.cmd.reason), "unit test");
	m.u.cmd.timeout_ms = 5000;
	if (cm_msg_encode(&m, &buf, &len) != 0)
		return -EINVAL;
	rv = nng_send(f->req, buf, len, 0);
	free(buf);
	return rv;
}

static int
recv_reply(struct fixture *f, struct cm_msg *m)
{
	char err[256];
	void *buf;
	size_t len;
	int rv = nng_recv(f->req, &buf, &len, NNG_FLAG_ALLOC);

	if (rv != 0)
		return rv;
	rv = cm_msg_decode(m, buf, len, err, sizeof(err));
	nng_free(buf, len);
	return rv;
}

// ---- cases ------------------------------------------------------------------

static void
test_direct_answer_logged_after_the_lock(void)
{
	struct fixture f;
	struct cm_msg r;

	setup(&f);
	CHECK_INT(send_command(&f, "reload_config", ""), 0);
	CHECK_INT(recv_reply(&f, &r), 0);
	CHECK_INT(r.type, CM_MSG_REPLY);
	CHECK_INT(r.id, 31);
	CHECK(r.u.reply.ok);
	CHECK_INT(r.u.reply.code, 0);
	CHECK_STR(r.u.reply.message, "did reload_config for unit test");
	cm_msg_clear(&r);
	// Answered inside the function, logged after it: no line yet when
	// agent_cmd_replyf returned, one line (written before the answer
	// left) once it had, and not under the function's lock.
	CHECK_INT(lines_when_answered, 0);
	CHECK_INT(lines_seen(), 1);
	CHECK_INT(done_under_lock, 0);
	CHECK_HAS(done_line, "level=info comp=");
	CHECK_HAS(done_line, " event=cmd.done action=reload_config "
	    "action_id=7 service=web instance=\"\" ok=true code=0 "
	    "message=\"did reload_config for unit test\" "
	    "reason=\"unit test\"");
	teardown(&f);
}

static void
test_queued_answer_logged_at_once(void)
{
	struct fixture f;
	struct agent_cmd_ctx *c = NULL;
	struct cm_msg reply = { .type = CM_MSG_REPLY }, r;

	setup(&f);
	CHECK_INT(send_command(&f, "restart", "web-0"), 0);
	// The direct function left it: it waits for the main loop.
	for (int i = 0; i < WAIT_MS && c == NULL; i++) {
		c = agent_cmd_next(f.srv);
		if (c == NULL)
			nng_msleep(1);
	}
	CHECK(c != NULL);
	if (c == NULL) {
		teardown(&f);
		return;
	}
	CHECK_STR(agent_cmd_request(c)->u.cmd.action, "restart");
	reply.u.reply.code = -EBUSY;
	snprintf(reply.u.reply.message, sizeof(reply.u.reply.message),
	    "busy \"now\"");
	agent_cmd_reply(c, &reply);
	// Logged before agent_cmd_reply returned.
	CHECK_INT(lines_seen(), 1);
	CHECK_HAS(done_line, " event=cmd.done action=restart action_id=7 "
	    "service=web instance=web-0 ok=false code=-16 "
	    "message=\"busy \\\"now\\\"\" reason=\"unit test\"");
	CHECK_INT(recv_reply(&f, &r), 0);
	CHECK_INT(r.id, 31);
	CHECK(!r.u.reply.ok);
	CHECK_INT(r.u.reply.code, -EBUSY);
	CHECK_STR(r.u.reply.message, "busy \"now\"");
	cm_msg_clear(&r);
	teardown(&f);
}

static const struct tt_case cases[] = {
	{ "direct answer logged and sent after the lock",
	  test_direct_answer_logged_after_the_lock },
	{ "queued answer logged at once", test_queued_answer_logged_at_once },
	{ NULL, NULL },
};

TT_MAIN(cases)
