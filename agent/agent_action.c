// SPDX-License-Identifier: MIT
// agent_action: executes "command" requests (restart, clear_cache,
// reload_config, check) and answers them.
//
// restart: for one instance, or for every instance of the service one
// after another, stop (SIGTERM, stop_grace, SIGKILL) and start again; the
// reply is sent when the new processes have started (not when they are
// healthy), its message lists "inst: pid OLD -> NEW" and its json holds
//   {"action": "restart", "service": S, "results": [{"instance", "ok",
//    "old_pid", "new_pid", "detail", "evidence", "old_exit"}]}
// where evidence is the instance's last output lines (at most
// AGENT_EVIDENCE_LINES, and AGENT_EVIDENCE_MAX bytes; less when many
// instances share AGENT_EVIDENCE_BUDGET), read right before it was
// stopped, then one line "[pid N <how it ended>]" once it was reaped, and
// old_exit is that "<how it ended>" alone (null when no process ran).
// check: answered at once from the runtime's state: ok=true when every
// named instance is ready (running, and its probe passed since the last
// start and passes now); else ok=false code=-EAGAIN. The message names
// the instances that are not ready and their state ("demo-a-1: starting
// (probe not passed yet)"), or all of them when all are ready; json holds
// {"action": "check", "service", "results": [{"instance", "ok", "state",
// "detail"}]}.
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
#include "cm_time.h"

// Bytes of an instance's evidence kept for the "[pid N ...]" line.
#define EXIT_ROOM 192

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
	size_t ev_cap;	// evidence bytes per instance (restart)
	char ev[AGENT_EVIDENCE_MAX]; // output of inst[cur] before its stop
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

// The evidence of a restarted instance: the output kept before its stop
// and how the old process ended (if it was reaped by now).
static void
evidence_finish(const struct agent_job *j, const struct agent_inst *in,
    char *buf, size_t n, const char **ret_exit)
{
	size_t o = (size_t)snprintf(buf, n, "%s%s", j->ev, j->ev[0] ? "\n" :
	    "");

	*ret_exit = NULL;
	if (o >= n)
		o = n - 1;
	if (!j->begun) // aborted before its turn
		snprintf(buf + o, n - o, "[not restarted]");
	else if (j->old_pid == 0)
		snprintf(buf + o, n - o, "[no process was running%s%s]",
		    in->last_exit[0] ? "; the last one " : "", in->last_exit);
	else if (in->pid == j->old_pid)
		snprintf(buf + o, n - o, "[pid %d not ended yet]",
		    (int)j->old_pid);
	else
		snprintf(buf + o, n - o, "[pid %d %s]", (int)j->old_pid,
		    in->last_exit);
	if (j->begun && j->old_pid != 0 && in->pid != j->old_pid)
		*ret_exit = in->last_exit;
	agent_copy_text(buf, n, buf);
}

static const char *const kind_names[] = {
	[JOB_RESTART] = "restart",
	[JOB_CACHE] = "clear_cache",
};

static void
result_add(struct agent_job *j, const struct agent_inst *in, int code,
    pid_t old_pid, pid_t new_pid, const char *detail)
{
	cJSON *r = cJSON_CreateObject();
	char ev[AGENT_EVIDENCE_MAX];
	const char *old_exit = NULL;

	if (code != 0 && j->code == 0)
		j->code = code;
	text_add(j, "%s: %s", in->name, detail);
	agent_actlog_add(&j->a->actlog, cm_now_ms(), kind_names[j->kind],
	    j->svc->conf->name, in->name, code == 0 ? "ok" : "failed",
	    "%s (%s)", detail, j->reason);
	if (r == NULL)
		return;
	cJSON_AddStringToObject(r, "instance", in->name);
	cJSON_AddBoolToObject(r, "ok", code == 0);
	if (j->kind == JOB_RESTART) {
		cJSON_AddNumberToObject(r, "old_pid", old_pid);
		cJSON_AddNumberToObject(r, "new_pid", new_pid);
	}
	cJSON_AddStringToObject(r, "detail", detail);
	if (j->kind == JOB_RESTART) {
		evidence_finish(j, in, ev, j->ev_cap < sizeof(ev) ? j->ev_cap :
		    sizeof(ev), &old_exit);
		cJSON_AddStringToObject(r, "evidence", ev);
		if (old_exit != NULL)
			cJSON_AddStringToObject(r, "old_exit", old_exit);
		else
			cJSON_AddNullToObject(r, "old_exit");
	}
	cJSON_AddItemToArray(j->results, r);
}

// Renders the reply json; drops the evidence if it would not fit a frame.
static char *
reply_json(cJSON *doc, cJSON *results)
{
	char *json = cJSON_PrintUnformatted(doc);
	cJSON *r;

	if (json == NULL || strlen(json) < AGENT_REPLY_JSON_MAX)
		return json;
	cJSON_free(json);
	cJSON_ArrayForEach(r, results) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, "evidence");
		cJSON_AddStringToObject(r, "evidence", "[left out: the reply "
		    "would be too large]");
	}
	return cJSON_PrintUnformatted(doc);
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
		cJSON *results = j->results;

		cJSON_AddStringToObject(doc, "action", j->action);
		cJSON_AddStringToObject(doc, "service", j->svc->conf->name);
		cJSON_AddItemToObject(doc, "results", j->results);
		j->results = NULL;
		m.u.reply.json = reply_json(doc, results);
		cJSON_Delete(doc);
	}
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

			// The evidence: what it wrote until now.
			if (in->out_fd >= 0)
				agent_proc_read_output(j->a->proc, in);
			agent_outring_tail(&in->out, AGENT_EVIDENCE_LINES,
			    j->ev, j->ev_cap - EXIT_ROOM);
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
			j->old_pid = 0;
			j->ev[0] = '\0';
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
	j->ev_cap = AGENT_EVIDENCE_BUDGET / count;
	if (j->ev_cap > AGENT_EVIDENCE_MAX)
		j->ev_cap = AGENT_EVIDENCE_MAX;
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
		const char *what = rv == 0 ? "sent SIGHUP" : rv == -ESRCH ?
		    "not running" : rv == -EAGAIN ?
		    "still starting (not signalled)" : strerror(-rv);

		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s: %s",
		    o ? "; " : "", in->name, what);
		if (rv == 0 && o < sizeof(text))
			o += (size_t)snprintf(text + o, sizeof(text) - o,
			    " (pid %d)", (int)pid);
		agent_actlog_add(&a->actlog, cm_now_ms(), "reload_config",
		    svc->conf->name, in->name, rv == 0 ? "ok" : "failed",
		    "%s (pid %d)", what, (int)pid);
	}
	agent_cmd_replyf(ctx, code == 0, code, "%s", text);
}

// ---- check ------------------------------------------------------------------

static void
do_check(struct agent_cmd_ctx *ctx, struct agent_svc *svc, size_t first,
    size_t count, int64_t now)
{
	cJSON *doc = cJSON_CreateObject(), *res = cJSON_CreateArray();
	char text[CM_TEXT_MAX] = "", state[AGENT_REASON_MAX + 128];
	unsigned bad = 0;
	struct cm_msg m;
	size_t o = 0;

	if (doc == NULL || res == NULL) {
		cJSON_Delete(doc);
		cJSON_Delete(res);
		agent_cmd_replyf(ctx, false, -ENOMEM, "out of memory");
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = first; i < first + count; i++) {
			struct agent_inst *in = &svc->inst[i];
			bool ok = agent_proc_ready(in, now, state,
			    sizeof(state));
			cJSON *r;

			if (pass == 0) {
				bad += !ok;
				r = cJSON_CreateObject();
				cJSON_AddStringToObject(r, "instance",
				    in->name);
				cJSON_AddBoolToObject(r, "ok", ok);
				cJSON_AddStringToObject(r, "state",
				    agent_state_name(in->state));
				cJSON_AddStringToObject(r, "detail", state);
				cJSON_AddItemToArray(res, r);
				continue;
			}
			// The message names what is not ready (or all).
			if ((bad > 0 && ok) || o + 4 >= sizeof(text))
				continue;
			o += (size_t)snprintf(text + o, sizeof(text) - o,
			    "%s%s: %s", o ? "; " : "", in->name, state);
		}
	}
	if (o >= sizeof(text))
		memcpy(text + sizeof(text) - 4, "...", 4);
	agent_copy_text(text, sizeof(text), text);
	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_REPLY;
	m.u.reply.ok = bad == 0;
	m.u.reply.code = bad == 0 ? 0 : -EAGAIN;
	snprintf(m.u.reply.message, sizeof(m.u.reply.message), "%s", text);
	cJSON_AddStringToObject(doc, "action", "check");
	cJSON_AddStringToObject(doc, "service", svc->conf->name);
	cJSON_AddItemToObject(doc, "results", res);
	m.u.reply.json = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	agent_cmd_reply(ctx, &m);
	cJSON_free(m.u.reply.json);
}

// ---- entry ----------------------------------------------------------------

void
agent_action_handle(struct agent *a, struct agent_cmd_ctx *ctx, int64_t now)
{
	const struct cm_msg_command *c = &agent_cmd_request(ctx)->u.cmd;
	struct agent_svc *svc;
	struct agent_inst *in = NULL;
	size_t first = 0, count;

	// The answer logs the command's one info line (agent_cmd_reply).
	if (cm_log_enabled(CM_LOG_DEBUG)) // not quoting four fields for nothing
		cm_debug("cmd.command", "action=%s action_id=%llu service=%s "
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
	else if (strcmp(c->action, "check") == 0)
		do_check(ctx, svc, first, count, now);
	else
		agent_cmd_replyf(ctx, false, -EINVAL, "unknown action \"%s\" "
		    "(known: restart, clear_cache, reload_config, check)",
		    c->action);
}

bool
agent_action_direct(struct agent *a, struct agent_cmd_ctx *ctx, int64_t now)
{
	const char *action = agent_cmd_request(ctx)->u.cmd.action;

	if (a->kube != NULL || strcmp(action, "restart") == 0 ||
	    strcmp(action, "clear_cache") == 0)
		return false;
	agent_action_handle(a, ctx, now);
	return true;
}
