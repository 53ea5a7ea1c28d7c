// SPDX-License-Identifier: MIT
// agent: setup, the main loop and shutdown of reflex-agent.
#include "agent.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "agent_json.h"
#include "cm_log.h"
#include "cm_time.h"

#define SHUTDOWN_SLACK_MS 3000 // beyond the longest stop_grace

static void
wake_loop(void *arg)
{
	struct agent *a = arg;

	agent_http_wakeup(a->http);
}

// The command server's direct function (agent.h: an nng thread answers a
// command itself when it gets the state lock within AGENT_DIRECT_WAIT_US).
static bool
answer_direct(void *arg, struct agent_cmd_ctx *ctx)
{
	struct agent *a = arg;
	struct timespec until;
	bool done;

	until = cm_mono_after_ns(AGENT_DIRECT_WAIT_US * 1000L);
	if (pthread_mutex_clocklock(&a->mu, CLOCK_MONOTONIC, &until) != 0)
		return false;
	done = agent_action_direct(a, ctx, cm_mono_ms());
	pthread_mutex_unlock(&a->mu);
	return done;
}

// Blocks the signals the loop reads from a signalfd (before any thread
// exists, so nng's and curl's threads inherit the mask).
static int
setup_signals(struct agent *a)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return a->sigfd < 0 ? -errno : 0;
}

static void
begin_shutdown(struct agent *a, int64_t now, const char *why)
{
	if (a->stopping)
		return;
	cm_notice("agent.stopping", "reason=%s", why);
	a->stopping = true;
	a->stop_deadline_ms = now + SHUTDOWN_SLACK_MS;
	if (a->kube != NULL)
		agent_kube_shutdown(a->kube);
	if (a->proc == NULL)
		return;
	a->stop_deadline_ms += agent_proc_max_grace(a->proc);
	agent_proc_shutdown(a->proc, now);
}

static void
read_signals(struct agent *a, int64_t now)
{
	struct signalfd_siginfo si;
	bool child = false;

	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			child = true;
		else if (si.ssi_signo == SIGHUP)
			cm_notice("agent.sighup", "action=ignored note=%s",
			    cm_q("config reload is not implemented; restart "
			    "the agent"));
		else
			begin_shutdown(a, now, si.ssi_signo == SIGTERM ?
			    "SIGTERM" : "SIGINT");
	}
	if (child && a->proc != NULL)
		agent_proc_reap(a->proc, now);
}

// ---- request handling -------------------------------------------------

static void
answer_status(struct agent *a, struct agent_cmd_ctx *ctx, int64_t now)
{
	struct agent_link_view lv;
	struct agent_stats st = {
		.uptime_ms = now - a->started_ms,
		.loop_wakeups = a->wakeups,
		.bad_frames = agent_cmd_bad_frames(a->cmd) +
		    agent_cmd_bad_frames(a->status),
		.refused = agent_cmd_refused(a->cmd) +
		    agent_cmd_refused(a->status),
		.unauthenticated = agent_cmd_unauthenticated(a->cmd),
		.sealed = a->auth != NULL,
		.permits = a->permits,
	};
	struct cm_msg m;
	char *json = NULL;
	int rv;

	agent_link_view(a->link, &lv);
	if (a->kube != NULL)
		rv = agent_json_kube_status(a->kube, a->conf.node, &lv, &st,
		    &a->actlog, now, AGENT_STATUS_JSON_MAX, &json);
	else
		rv = agent_json_status(a->proc, &lv, &st, &a->actlog, now,
		    AGENT_STATUS_JSON_MAX, &json);
	if (rv < 0) {
		agent_cmd_replyf(ctx, false, rv, "cannot render status: %s",
		    strerror(-rv));
		return;
	}
	memset(&m, 0, sizeof(m));
	m.type = CM_MSG_REPLY;
	m.u.reply.ok = true;
	m.u.reply.json = json;
	agent_cmd_reply(ctx, &m);
	free(json);
}

static void
drain_requests(struct agent *a, int64_t now)
{
	struct agent_cmd_ctx *ctx;

	while ((ctx = agent_cmd_next(a->status)) != NULL)
		answer_status(a, ctx, now);
	while ((ctx = agent_cmd_next(a->cmd)) != NULL) {
		if (a->kube != NULL)
			agent_kube_command(a->kube, ctx, now);
		else
			agent_action_handle(a, ctx, now);
	}
}

// ---- the loop -------------------------------------------------------------

static int64_t
min64(int64_t x, int64_t y)
{
	return x < y ? x : y;
}

// ---- what the link announces ---------------------------------------------

static int
proc_workloads(void *arg, struct cm_workload **ret, size_t *ret_n)
{
	const struct agent_proc *p = arg;
	struct cm_workload *v;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < p->n_svc; i++)
		n += p->svc[i].n;
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_svc; i++) {
		for (size_t j = 0; j < p->svc[i].n; j++) {
			const struct agent_inst *in = &p->svc[i].inst[j];
			struct cm_workload *w = &v[k++];

			snprintf(w->service, sizeof(w->service), "%s",
			    p->svc[i].conf->name);
			snprintf(w->instance, sizeof(w->instance), "%s",
			    in->name);
			snprintf(w->addr, sizeof(w->addr), "%s", in->addr);
			w->healthy = in->state == AGENT_ST_RUNNING;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static unsigned
proc_unhealthy(void *arg)
{
	return agent_proc_unhealthy(arg);
}

static int
kube_workloads(void *arg, struct cm_workload **ret, size_t *ret_n)
{
	return agent_kube_workloads(arg, ret, ret_n);
}

static unsigned
kube_unhealthy(void *arg)
{
	return agent_kube_unhealthy(arg);
}

// Everything that is due now; returns the next time something is.
static int64_t
run_due(struct agent *a, int64_t now)
{
	struct agent_link_src src = { .runtime = "process",
		.workloads = proc_workloads, .unhealthy = proc_unhealthy,
		.arg = a->proc };
	int64_t next;

	if (a->kube != NULL) {
		src = (struct agent_link_src){ .runtime = "kubernetes",
			.workloads = kube_workloads,
			.unhealthy = kube_unhealthy, .arg = a->kube };
		next = agent_kube_tick(a->kube, now);
		if (agent_kube_take_changed(a->kube))
			agent_link_update(a->link, now);
	} else {
		next = agent_proc_tick(a->proc, now);
	}
	next = min64(next, agent_link_tick(a->link, &src, now));
	next = min64(next, agent_permit_tick(a, now));
	next = min64(next, agent_jobs_step(a, now));
	if (a->stopping)
		next = min64(next, a->stop_deadline_ms);
	return next;
}

// The metrics rows of the runtime's instances or pods, in a->mrows.
static size_t
metrics_rows(struct agent *a, int64_t now)
{
	size_t n = a->kube != NULL ? AGENT_KUBE_MAX_PODS : 0, k = 0;

	for (size_t i = 0; a->proc != NULL && i < a->proc->n_svc; i++)
		n += a->proc->svc[i].n;
	if (n > a->mrows_cap) {
		struct agent_metrics_inst *v = realloc(a->mrows,
		    n * sizeof(*v));

		if (v == NULL)
			return 0;
		a->mrows = v;
		a->mrows_cap = n;
	}
	if (a->kube != NULL)
		return agent_kube_metrics_rows(a->kube, a->mrows, n, now);
	for (size_t i = 0; i < a->proc->n_svc; i++) {
		for (size_t j = 0; j < a->proc->svc[i].n; j++) {
			const struct agent_inst *in = &a->proc->svc[i].inst[j];
			struct agent_metrics_inst *r = &a->mrows[k++];

			snprintf(r->service, sizeof(r->service), "%s",
			    a->proc->svc[i].conf->name);
			snprintf(r->instance, sizeof(r->instance), "%s",
			    in->name);
			r->c = in->count;
			r->up = agent_proc_ready(in, now, NULL, 0);
		}
	}
	return k;
}

static void
publish_metrics(struct agent *a, int64_t now, int64_t next)
{
	struct agent_link_view lv;
	struct agent_kube_view kv;
	struct agent_metrics_globals g = {
		.permits = a->permits,
		.bad_frames = agent_cmd_bad_frames(a->cmd) +
		    agent_cmd_bad_frames(a->status),
		.unauthenticated = agent_cmd_unauthenticated(a->cmd),
		.wakeups = a->wakeups,
		.next_ms = next,
	};

	size_t n;

	if (a->metrics == NULL)
		return;
	agent_link_view(a->link, &lv);
	g.connected = lv.connected;
	if (a->kube != NULL) {
		agent_kube_view(a->kube, &kv);
		g.evictions = kv.evictions;
	}
	n = metrics_rows(a, now);
	agent_metrics_publish(a->metrics, a->mrows, n, &g, now);
}

// How long the poll may sleep: until the next deadline, without limit
// when there is none (-1). Everything else that needs the loop wakes it:
// signals (signalfd) and children's output are in the poll set, curl's
// sockets and timer too, and the command and status servers, the
// coordinator link and the kubernetes workers call agent_http_wakeup().
static int
wait_timeout(int64_t next, int64_t now)
{
	int64_t t;

	if (next == INT64_MAX)
		return -1;
	t = next - now;
	if (t < 0)
		t = 0;
	return (int)(t < INT_MAX ? t : INT_MAX);
}

static bool
loop_done(struct agent *a, int64_t now)
{
	if (!a->stopping || a->jobs != NULL)
		return false;
	if (a->kube != NULL)
		return !agent_kube_busy(a->kube);
	if (agent_proc_all_stopped(a->proc))
		return true;
	if (now < a->stop_deadline_ms)
		return false;
	cm_err("agent.stop_timeout", "note=%s",
	    cm_q("children did not go away after SIGKILL; exiting anyway"));
	return true;
}

static int
main_loop(struct agent *a)
{
	int64_t now = cm_mono_ms(), next;
	void *ready[AGENT_HTTP_EVENTS];
	int n;

	if (a->proc != NULL)
		agent_proc_start_all(a->proc, now);
	for (;;) {
		next = run_due(a, now);
		publish_metrics(a, now, next);
		if (loop_done(a, now))
			return 0;
		pthread_mutex_unlock(&a->mu);
		n = agent_http_poll(a->http, wait_timeout(next, now), ready);
		pthread_mutex_lock(&a->mu);
		if (n < 0)
			return n;
		a->wakeups++;
		now = cm_mono_ms();
		// The signals first: a child that exited has its output read
		// and its pipe closed there (its tag below then reads nothing).
		for (int i = 0; i < n; i++)
			if (ready[i] == &a->sigfd)
				read_signals(a, now);
		for (int i = 0; i < n; i++)
			if (ready[i] != &a->sigfd &&
			    !agent_link_owns_tag(a->link, ready[i]))
				agent_proc_read_output(a->proc, ready[i]);
		agent_http_perform(a->http, now);
		drain_requests(a, now);
		if (a->stopping && a->jobs != NULL)
			agent_jobs_abort(a);
	}
}

// ---- setup and teardown -----------------------------------------------------

static int
open_servers(struct agent *a, char *err, size_t errlen)
{
	char url[CM_ADDR_MAX + 8];
	struct agent_cmd_opts o = {
		.name = "command", .url = a->conf.listen,
		.serves = CM_MSG_COMMAND, .contexts = AGENT_CMD_CONTEXTS,
		.refusal = "this endpoint accepts only command requests",
		.auth = a->auth, .wake = wake_loop, .wake_arg = a,
		.direct = answer_direct, .direct_arg = a,
	};
	int rv;

	rv = agent_cmd_open(&o, &a->cmd, err, errlen);
	if (rv < 0)
		return rv;
	snprintf(url, sizeof(url), "ipc://%s", a->conf.status_socket);
	o = (struct agent_cmd_opts){
		.name = "status", .url = url, .serves = CM_MSG_STATUS,
		.contexts = AGENT_STATUS_CONTEXTS,
		.ipc_path = a->conf.status_socket,
		.refusal = "the status socket is read-only: it answers only "
			   "status requests",
		.wake = wake_loop, .wake_arg = a,
	};
	return agent_cmd_open(&o, &a->status, err, errlen);
}

static int
agent_setup(struct agent *a, const char *conf_path, int verbose, char *err,
    size_t errlen)
{
	int rv;

	rv = agent_conf_load(&a->conf, conf_path, err, errlen);
	if (rv < 0)
		return rv;
	cm_log_set_level(a->conf.log_level + verbose);
	// Before any server or link thread decodes a frame.
	rv = cm_msg_set_limits(&a->conf.wire_limits, err, errlen);
	if (rv < 0)
		return rv;
	if (a->conf.coordinator_secret_file != NULL) {
		rv = cm_auth_new(&a->auth, a->conf.coordinator_secret_file,
		    err, errlen);
		if (rv < 0)
			return rv;
	} else {
		cm_notice("agent.unauthenticated_channel", "note=%s",
		    cm_q("no coordinator_secret_file: messages to and from "
		    "the coordinator are not sealed"));
	}
	rv = setup_signals(a);
	if (rv < 0) {
		snprintf(err, errlen, "signals: %s", strerror(-rv));
		return rv;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		return -EIO;
	}
	a->curl_ready = true;
	rv = agent_http_new(&a->http);
	if (rv == 0)
		rv = agent_http_watch(a->http, a->sigfd, &a->sigfd);
	if (rv == 0 && a->conf.runtime == AGENT_RUNTIME_PROCESS)
		rv = agent_proc_new(&a->conf, a->http, &a->proc);
	if (rv < 0) {
		snprintf(err, errlen, "%s", strerror(-rv));
		return rv;
	}
	if (a->conf.runtime == AGENT_RUNTIME_KUBERNETES) {
		rv = agent_kube_new(&a->conf, a->http, &a->actlog, wake_loop,
		    a, &a->kube, err, errlen);
		if (rv < 0)
			return rv;
	}
	rv = open_servers(a, err, errlen);
	if (rv == 0)
		rv = agent_link_open(&a->conf, a->auth, a->http, wake_loop, a,
		    &a->link, err, errlen);
	if (rv == 0 && a->conf.metrics_listen != NULL)
		rv = agent_metrics_open(a->conf.metrics_listen, &a->metrics,
		    err, errlen);
	return rv;
}

static void
agent_teardown(struct agent *a)
{
	agent_jobs_abort(a);
	if (a->kube != NULL)
		agent_kube_shutdown(a->kube); // answers what still waits
	agent_metrics_close(a->metrics);
	agent_cmd_close(a->cmd);
	agent_cmd_close(a->status);
	agent_link_close(a->link);
	agent_kube_free(a->kube); // waits for API calls in flight
	agent_proc_free(a->proc);
	agent_http_free(a->http);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->curl_ready)
		curl_global_cleanup();
	free(a->mrows);
	cm_auth_free(a->auth);
	agent_conf_free(&a->conf);
}

int
agent_run(const char *conf_path, int verbose)
{
	struct agent a = { .sigfd = -1 };
	char err[512] = "";
	int rv;

	pthread_mutex_init(&a.mu, NULL);
	pthread_mutex_lock(&a.mu); // released only while the loop waits
	cm_log_set_component("agent");
	a.started_ms = cm_mono_ms();
	rv = agent_setup(&a, conf_path, verbose, err, sizeof(err));
	if (rv == 0) {
		cm_notice("agent.start", "node=%s runtime=%s listen=%s "
		    "advertise=%s status=%s coordinator=%s", a.conf.node,
		    a.kube != NULL ? "kubernetes" : "process",
		    cm_q(a.conf.listen), cm_q(agent_conf_advertised(&a.conf)),
		    cm_q(a.conf.status_socket), cm_q(a.conf.coordinator));
		rv = main_loop(&a);
	} else {
		cm_err("agent.start_failed", "error=%s", cm_q(err[0] ? err :
		    strerror(-rv)));
	}
	if (a.proc != NULL && !agent_proc_all_stopped(a.proc))
		cm_err("agent.children_left", "note=%s",
		    cm_q("exiting with children alive; they get SIGKILL "
		    "through PR_SET_PDEATHSIG"));
	agent_teardown(&a); // no nng thread is left to try the lock
	pthread_mutex_unlock(&a.mu);
	pthread_mutex_destroy(&a.mu);
	if (rv == 0)
		cm_notice("agent.stopped", "clean=%s", "true");
	return rv == 0 ? 0 : 1;
}
