// SPDX-License-Identifier: MIT
// agent_action: executes "command" requests (restart, clear_cache,
// reload_config) and answers them.
//
// restart: for one instance, or for every instance of the service one
// after another, stop (SIGTERM, stop_grace, SIGKILL) and start again; the
// reply is sent when the new processes have started (not when they are
// healthy), its message lists "inst: pid OLD -> NEW" and its json holds
// the same as {"results": [{instance, ok, old_pid, new_pid, detail}]}.
// clear_cache: HTTP POST http://127.0.0.1:<port>/cache/clear on each
// instance; 2xx/3xx = done, 404/405/501 = ok=false -EOPNOTSUPP "not
// supported by this service". reload_config: SIGHUP to each instance's
// process. A command that is not done within its timeout_ms (60 s when
// 0) is answered ok=false -ETIMEDOUT; the restart itself goes on.
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cm_log.h"

enum job_kind {
	JOB_RESTART,
	JOB_CACHE,
};

struct agent_job {
	struct agent_job *next;
	struct agent *a;
	struct agent_cmd_ctx *ctx; // answered exactly once, then released
	enum job_kind kind;
	char action[CM_NAME_MAX];
	uint64_t action_id;
	struct agent_svc *svc;
	size_t cur, end;	// instances [cur, end) still to do
	bool begun;		// step for inst[cur] started
	uint64_t want_gen, fail_gen;
	pid_t old_pid;
	int64_t deadline_ms;
	char reason[AGENT_REASON_MAX];
	struct agent_http_req req; // clear_cache
	bool req_done, req_ok;
	long req_status;
	char req_why[256];
	cJSON *results;	// array of per-instance results
	char text[CM_TEXT_MAX];
	int code;	// first error, 0 if none
};

// ---- results ----------------------------------------------------------

static void
text_add(struct agent_job *j, const char *fmt, ...)
{
	size_t o = strlen(j->text), n = sizeof(j->text);
	va_list ap;
	int k;

	if (o + 4 >= n)
		return;
	if (o > 0)
		o += (size_t)snprintf(j->text + o, n - o, "; ");
	va_start(ap, fmt);
	k = vsnprintf(j->text + o, n - o, fmt, ap);
	va_end(ap);
	if (k >= 0 && (size_t)k >= n - o)
		memcpy(j->text + n - 4, "...", 4);
}

static void
result_add(struct agent_job *j, const struct agent_inst *in, int code,
    pid_t old_pid, pid_t new_pid, const char *detail)
{
	cJSON *r = cJSON_CreateObject();

	if (code != 0 && j->code == 0)
		j->code = code;
	text_add(j, "%s: %s", in->name, detail);
	if (r == NULL)
		return;
	cJSON_AddStringToObject(r, "instance", in->name);
	cJSON_AddBoolToObject(r, "ok", code == 0);
	if (j->kind == JOB_RESTART) {
		cJSON_AddNumberToObject(r, "old_pid", old_pid);
		cJSON_AddNumberToObject(r, "new_pid", new_pid);
	}
	cJSON_AddStringToObject(r, "detail", detail);
	cJSON_AddItemToArray(j->results, r);
}

// Sends the reply (ok = no error recorded) and releases the context.
static void
job_reply(struct agent_job *j)
{
	cJSON *doc = cJSON_CreateObject();
	struct cm_msg m;

	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_REPLY;
	m.u.reply.ok = j->code == 0;
	m.u.reply.code = j->code;
	snprintf(m.u.reply.message, sizeof(m.u.reply.message), "%s", j->text);
	if (doc != NULL) {
		cJSON_AddStringToObject(doc, "action", j->action);
		cJSON_AddStringToObject(doc, "service", j->svc->conf->name);
		cJSON_AddItemToObject(doc, "results", j->results);
		j->results = NULL;
		m.u.reply.json = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
	}
	cm_info("cmd.done", "action=%s action_id=%llu ok=%s code=%d "
	    "message=%s", j->action, (unsigned long long)j->action_id,
	    m.u.reply.ok ? "true" : "false", j->code, cm_q(j->text));
	agent_cmd_reply(j->ctx, &m);
	cJSON_free(m.u.reply.json);
	j->ctx = NULL;
}

static void
job_free(struct agent_job *j)
{
	agent_http_req_fini(&j->req);
	cJSON_Delete(j->results);
	free(j);
}

// ---- restart ----------------------------------------------------------

// Returns true when the job is complete.
static bool
restart_step(struct agent_job *j, int64_t now)
{
	char detail[AGENT_REASON_MAX + 64];

	while (j->cur < j->end) {
		struct agent_inst *in = &j->svc->inst[j->cur];

		if (!j->begun) {
			int rv;

			j->old_pid = in->pid;
			j->want_gen = in->spawn_gen + 1;
			j->fail_gen = in->spawn_fail_gen;
			rv = agent_proc_restart(j->a->proc, in, j->reason, now);
			if (rv < 0) {
				result_add(j, in, rv, j->old_pid, 0,
				    strerror(-rv));
				return true;
			}
			j->begun = true;
		}
		if (in->spawn_gen >= j->want_gen) {
			snprintf(detail, sizeof(detail), "pid %d -> %d",
			    (int)j->old_pid, (int)in->last_pid);
			result_add(j, in, 0, j->old_pid, in->last_pid, detail);
			j->cur++;
			j->begun = false;
			continue;
		}
		if (in->spawn_fail_gen > j->fail_gen) {
			result_add(j, in, -EIO, j->old_pid, 0, in->spawn_error);
			return true;
		}
		return false;
	}
	return true;
}

// ---- clear_cache --------------------------------------------------------

static void
on_cache_done(struct agent_http_req *r, bool ok, long status,
    const char *reason, int64_t elapsed_ms, void *arg)
{
	struct agent_job *j = arg;

	(void)r;
	(void)elapsed_ms;
	j->req_done = true;
	j->req_ok = ok;
	j->req_status = status;
	snprintf(j->req_why, sizeof(j->req_why), "%s", reason);
}

static int
cache_start(struct agent_job *j, struct agent_inst *in, int64_t now)
{
	char url[96];
	int64_t left = j->deadline_ms - now;
	int rv;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", in->port,
	    AGENT_CACHE_PATH);
	agent_http_req_fini(&j->req);
	rv = agent_http_req_init(j->a->http, &j->req, url, true,
	    left < AGENT_CACHE_TIMEOUT_MS ? left : AGENT_CACHE_TIMEOUT_MS,
	    on_cache_done, j);
	if (rv == 0)
		rv = agent_http_req_start(&j->req, now);
	j->req_done = false;
	return rv;
}

static void
cache_result(struct agent_job *j, struct agent_inst *in)
{
	char detail[300];
	long st = j->req_status;

	if (j->req_ok) {
		snprintf(detail, sizeof(detail), "cache cleared (HTTP %ld)",
		    st);
		result_add(j, in, 0, 0, 0, detail);
	} else if (st == 404 || st == 405 || st == 501) {
		snprintf(detail, sizeof(detail), "clear_cache is not supported "
		    "by this service (HTTP %ld on POST %s)", st,
		    AGENT_CACHE_PATH);
		result_add(j, in, -EOPNOTSUPP, 0, 0, detail);
	} else {
		snprintf(detail, sizeof(detail), "POST %s failed: %s",
		    AGENT_CACHE_PATH, j->req_why);
		result_add(j, in, -EIO, 0, 0, detail);
	}
}

static bool
cache_step(struct agent_job *j, int64_t now)
{
	while (j->cur < j->end) {
		struct agent_inst *in = &j->svc->inst[j->cur];

		if (!j->begun) {
			if (in->pid == 0 || in->state == AGENT_ST_STOPPING) {
				result_add(j, in, -ESRCH, 0, 0, "not running");
				j->cur++;
				continue;
			}
			if (cache_start(j, in, now) < 0) {
				result_add(j, in, -EIO, 0, 0,
				    "could not start the HTTP request");
				j->cur++;
				continue;
			}
			j->begun = true;
		}
		if (!j->req_done)
			return false;
		cache_result(j, in);
		j->begun = false;
		j->cur++;
	}
	return true;
}

// ---- job list ---------------------------------------------------------

static bool
job_step(struct agent_job *j, int64_t now)
{
	bool done = j->kind == JOB_RESTART ? restart_step(j, now) :
	    cache_step(j, now);

	if (!done && now >= j->deadline_ms) {
		struct agent_inst *in = &j->svc->inst[j->cur];
		char detail[128];

		snprintf(detail, sizeof(detail), "not done after the command's "
		    "timeout (state %s); it goes on",
		    agent_state_name(in->state));
		result_add(j, in, -ETIMEDOUT, j->old_pid, 0, detail);
		done = true;
	}
	return done;
}

int64_t
agent_jobs_step(struct agent *a, int64_t now)
{
	struct agent_job **pp = &a->jobs;
	int64_t next = INT64_MAX;

	while (*pp != NULL) {
		struct agent_job *j = *pp;

		if (job_step(j, now)) {
			job_reply(j);
			*pp = j->next;
			job_free(j);
			continue;
		}
		if (j->deadline_ms < next)
			next = j->deadline_ms;
		pp = &j->next;
	}
	return next;
}

void
agent_jobs_abort(struct agent *a)
{
	while (a->jobs != NULL) {
		struct agent_job *j = a->jobs;

		a->jobs = j->next;
		result_add(j, &j->svc->inst[j->cur < j->end ? j->cur :
		    j->end - 1], -ESHUTDOWN, j->old_pid, 0,
		    "agent is shutting down");
		job_reply(j);
		job_free(j);
	}
}

static void
job_new(struct agent *a, struct agent_cmd_ctx *ctx, enum job_kind kind,
    struct agent_svc *svc, size_t first, size_t count, int64_t now)
{
	const struct cm_msg_command *c = &agent_cmd_request(ctx)->u.cmd;
	struct agent_job *j = calloc(1, sizeof(*j));
	int64_t timeout = c->timeout_ms ? (int64_t)c->timeout_ms :
	    AGENT_CMD_DEFAULT_TIMEOUT_MS;

	if (j == NULL || (j->results = cJSON_CreateArray()) == NULL) {
		free(j);
		agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	j->a = a;
	j->ctx = ctx;
	j->kind = kind;
	j->svc = svc;
	j->cur = first;
	j->end = first + count;
	j->action_id = c->action_id;
	j->deadline_ms = now + timeout;
	snprintf(j->action, sizeof(j->action), "%s", c->action);
	snprintf(j->reason, sizeof(j->reason), "%s by coordinator (action "
	    "%llu)%s%s", c->action, (unsigned long long)c->action_id,
	    c->reason[0] ? ": " : "", c->reason);
	j->next = a->jobs;
	a->jobs = j;
}

// ---- reload_config ------------------------------------------------------

static void
do_reload(struct agent *a, struct agent_cmd_ctx *ctx, struct agent_svc *svc,
    size_t first, size_t count)
{
	char text[CM_TEXT_MAX] = "";
	size_t o = 0;
	int code = 0;

	for (size_t i = first; i < first + count && o < sizeof(text); i++) {
		struct agent_inst *in = &svc->inst[i];
		pid_t pid = in->pid;
		int rv = agent_proc_signal(a->proc, in, SIGHUP);

		if (rv < 0 && code == 0)
			code = rv;
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s: %s",
		    o ? "; " : "", in->name, rv == 0 ? "sent SIGHUP" :
		    rv == -ESRCH ? "not running" : rv == -EAGAIN ?
		    "still starting (not signalled)" : strerror(-rv));
		if (rv == 0 && o < sizeof(text))
			o += (size_t)snprintf(text + o, sizeof(text) - o,
			    " (pid %d)", (int)pid);
	}
	cm_info("cmd.done", "action=reload_config ok=%s code=%d message=%s",
	    code == 0 ? "true" : "false", code, cm_q(text));
	agent_cmd_replyf(ctx, code == 0, code, "%s", text);
}

// ---- entry ----------------------------------------------------------------

void
agent_action_handle(struct agent *a, struct agent_cmd_ctx *ctx, int64_t now)
{
	const struct cm_msg_command *c = &agent_cmd_request(ctx)->u.cmd;
	struct agent_svc *svc;
	struct agent_inst *in = NULL;
	size_t first = 0, count;

	cm_info("cmd.command", "action=%s action_id=%llu service=%s "
	    "instance=%s reason=%s", cm_q(c->action),
	    (unsigned long long)c->action_id, cm_q(c->service),
	    cm_q(c->instance), cm_q(c->reason));
	if (a->stopping) {
		agent_cmd_replyf(ctx, false, -ESHUTDOWN,
		    "agent is shutting down");
		return;
	}
	svc = agent_proc_find_svc(a->proc, c->service);
	if (svc == NULL) {
		agent_cmd_replyf(ctx, false, -ENOENT, "unknown service \"%s\" "
		    "on node %s", c->service, a->conf.node);
		return;
	}
	if (c->instance[0] != '\0') {
		in = agent_proc_find_inst(svc, c->instance);
		if (in == NULL) {
			agent_cmd_replyf(ctx, false, -ENOENT,
			    "unknown instance \"%s\" of service %s",
			    c->instance, c->service);
			return;
		}
		first = in->index;
	}
	count = in != NULL ? 1 : svc->n;
	if (strcmp(c->action, "restart") == 0)
		job_new(a, ctx, JOB_RESTART, svc, first, count, now);
	else if (strcmp(c->action, "clear_cache") == 0)
		job_new(a, ctx, JOB_CACHE, svc, first, count, now);
	else if (strcmp(c->action, "reload_config") == 0)
		do_reload(a, ctx, svc, first, count);
	else
		agent_cmd_replyf(ctx, false, -EINVAL, "unknown action \"%s\" "
		    "(known: restart, clear_cache, reload_config)", c->action);
}
