// SPDX-License-Identifier: MIT
// agent_permit: the agent asks the coordinator before each of its own
// restarts, and follows the partition policy when it cannot ask.
//
// One request is in flight at a time, oldest need first. What the answer
// means:
//   ok=true                      granted: restart
//   ok=false code=-EPERM (and any other code not listed below)
//                                refused: hold, ask again after backoff
//   ok=false code=-ENOENT        the coordinator does not know this node:
//                                register again, then ask once more (a
//                                second -ENOENT: partition policy)
//   ok=false code=-ETIMEDOUT, -ENOTSUP or -EPROTO
//                                the coordinator could not decide (or does
//                                not grant permits): partition policy
//   no answer within permit_timeout, link down, or not registered within
//   permit_timeout               partition policy
// Each verdict is logged once ("permit.decision"); asking again with the
// same outcome is logged at debug level and not recorded again in the
// recent actions.
//
// The same flow serves both runtimes: a "subject" is an instance of the
// process runtime or a managed pod of the kubernetes runtime; what a
// verdict does to it is up to its runtime (agent_proc_permit_decided,
// agent_kube_permit_decided).
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "cm_time.h"

static void
window_text(int64_t ms, char *buf, size_t n)
{
	if (ms % 1000 == 0)
		snprintf(buf, n, "%lld s", (long long)(ms / 1000));
	else
		snprintf(buf, n, "%lld ms", (long long)ms);
}

bool
agent_partition_check(const struct agent_partition_conf *pc,
    const char *service, unsigned used, const char *cause, char *why,
    size_t n)
{
	char win[32];

	window_text(pc->window_ms, win, sizeof(win));
	if (pc->max_restarts == 0) {
		snprintf(why, n, "partition policy: no restart of %s without "
		    "the coordinator (max_restarts 0) (%s)", service, cause);
		agent_copy_text(why, n, why);
		return false;
	}
	if ((int64_t)used >= pc->max_restarts) {
		snprintf(why, n, "partition policy: %u restart%s of %s within "
		    "%s already (%s)", used, used == 1 ? "" : "s", service, win,
		    cause);
		agent_copy_text(why, n, why);
		return false;
	}
	snprintf(why, n, "partition policy: restart %u of at most %lld of %s "
	    "within %s (%s)", used + 1, (long long)pc->max_restarts, service,
	    win, cause);
	agent_copy_text(why, n, why);
	return true;
}

bool
agent_partition_allows(const struct agent_svc *s, const char *cause,
    int64_t now, char *why, size_t n)
{
	const struct agent_partition_conf *pc = &s->conf->partition_policy;

	return agent_partition_check(pc, s->conf->name,
	    agent_proc_own_restarts_since(s, now - pc->window_ms), cause, why,
	    n);
}

// ---- subjects ---------------------------------------------------------------

// Whose own restart is asked for, in either runtime.
struct subj {
	struct agent_permit *pm;
	const char *service, *instance;
	struct agent_inst *in;	// process runtime, else NULL
	struct agent_pod *pod;	// kubernetes runtime, else NULL
};

static bool
subj_of_inst(struct agent_inst *in, struct subj *s)
{
	if (in == NULL)
		return false;
	*s = (struct subj){ .pm = &in->permit, .service = in->svc->conf->name,
		.instance = in->name, .in = in };
	return true;
}

static bool
subj_of_pod(struct agent_pod *p, struct subj *s)
{
	if (p == NULL)
		return false;
	*s = (struct subj){ .pm = &p->permit, .service = p->service,
		.instance = p->name, .pod = p };
	return true;
}

static bool
subj_next_wanted(struct agent *a, struct subj *s)
{
	if (a->kube != NULL)
		return subj_of_pod(agent_kube_next_wanted(a->kube), s);
	return subj_of_inst(agent_proc_next_wanted(a->proc), s);
}

static bool
subj_find(struct agent *a, const char *service, const char *instance,
    struct subj *s)
{
	struct agent_svc *svc;

	if (a->kube != NULL)
		return subj_of_pod(agent_kube_find(a->kube, service, instance),
		    s);
	svc = agent_proc_find_svc(a->proc, service);
	return subj_of_inst(svc ? agent_proc_find_inst(svc, instance) : NULL,
	    s);
}

static bool
subj_partition(struct agent *a, const struct subj *s, const char *cause,
    int64_t now, char *why, size_t n)
{
	const struct agent_partition_conf *pc;

	if (s->in != NULL)
		return agent_partition_allows(s->in->svc, cause, now, why, n);
	pc = s->pod->policy;
	return agent_partition_check(pc, s->service, agent_kube_own_since(
	    a->kube, s->service, now - pc->window_ms), cause, why, n);
}

static void
subj_decided(struct agent *a, const struct subj *s, enum agent_verdict v,
    const char *why, int64_t now)
{
	if (s->in != NULL)
		agent_proc_permit_decided(a->proc, s->in, v, why, now);
	else
		agent_kube_permit_decided(a->kube, s->pod, v, why, now);
}

// ---- verdicts -------------------------------------------------------------

static void
decide(struct agent *a, const struct subj *s, enum agent_verdict v,
    const char *why, int64_t now)
{
	const struct agent_permit *pm = s->pm;
	bool held = v == AGENT_VERDICT_REFUSED ||
	    v == AGENT_VERDICT_PARTITION_HELD;
	bool repeat = held && pm->phase != AGENT_PERMIT_NONE && pm->decided &&
	    pm->last_verdict == v && strcmp(pm->held, why) == 0;
	const char *kind = agent_restart_kind_name(pm->kind);

	a->permits[v]++;
	cm_log(repeat ? CM_LOG_DEBUG : held ? CM_LOG_NOTICE : CM_LOG_INFO,
	    "permit.decision", "service=%s instance=%s kind=%s verdict=%s "
	    "holds=%u reason=%s why=%s", s->service, s->instance, kind,
	    agent_verdict_name(v), pm->holds + held, cm_q(pm->reason),
	    cm_q(why));
	if (!repeat)
		agent_actlog_add(&a->actlog, cm_now_ms(), s->pod != NULL ?
		    "own_evict" : "own_restart", s->service, s->instance,
		    agent_verdict_name(v), "%s: %s; %s", kind, pm->reason, why);
	subj_decided(a, s, v, why, now);
}

static void
decide_partition(struct agent *a, const struct subj *s, const char *cause,
    int64_t now)
{
	char why[AGENT_REASON_MAX];
	bool ok = subj_partition(a, s, cause, now, why, sizeof(why));

	decide(a, s, ok ? AGENT_VERDICT_PARTITION_ALLOWED :
	    AGENT_VERDICT_PARTITION_HELD, why, now);
}

// The coordinator's message up to its first line break: its refusals
// quote our reason, whose output tail would only repeat itself.
static const char *
first_line(const char *msg, char *buf, size_t n)
{
	snprintf(buf, n, "%.*s", (int)strcspn(msg, "\n"), msg);
	agent_copy_text(buf, n, buf);
	return buf;
}

static void
on_answer(struct agent *a, const struct agent_link_permit_ans *ans,
    int64_t now)
{
	char why[AGENT_REASON_MAX], msg[AGENT_REASON_MAX];
	struct subj s;
	bool found = a->asking_set && subj_find(a, a->asking_svc,
	    a->asking_inst, &s);

	a->asking_set = false;
	if (!found || s.pm->phase != AGENT_PERMIT_ASKING ||
	    s.pm->gen != a->asking_gen) {
		cm_debug("permit.late", "instance=%s answered=%d ok=%d",
		    a->asking_inst, ans->answered, ans->ok);
		return;
	}
	if (!ans->answered) {
		snprintf(why, sizeof(why), "coordinator: %s", ans->why);
		decide_partition(a, &s, why, now);
	} else if (ans->ok) {
		snprintf(why, sizeof(why), "granted by coordinator: %s",
		    first_line(ans->message, msg, sizeof(msg)));
		decide(a, &s, AGENT_VERDICT_GRANTED, why, now);
	} else if (ans->code == -ENOENT && !s.pm->reasked) {
		cm_info("permit.unknown_node", "instance=%s action=%s",
		    s.instance, "register, then ask again");
		agent_link_reregister(a->link, now);
		s.pm->phase = AGENT_PERMIT_WANTED;
		s.pm->wanted_ms = now;
		s.pm->reasked = true;
	} else if (ans->code == -ENOENT || ans->code == -ETIMEDOUT ||
	    ans->code == -ENOTSUP || ans->code == -EPROTO) {
		snprintf(why, sizeof(why), "coordinator could not decide: "
		    "%d %s", ans->code, first_line(ans->message, msg,
		    sizeof(msg)));
		decide_partition(a, &s, why, now);
	} else {
		snprintf(why, sizeof(why), "refused by coordinator: %s",
		    first_line(ans->message, msg, sizeof(msg)));
		decide(a, &s, AGENT_VERDICT_REFUSED, why, now);
	}
}

// ---- asking -----------------------------------------------------------------

// "<kind> restart: <reason>", then the last lines of the instance's
// output (process runtime) or the pod's state (kubernetes runtime), all
// within the permit's reason field.
static void
permit_reason(struct agent *a, const struct subj *s, char *buf, size_t n)
{
	static const char sep[] = "\nlast output:\n";
	char tail[CM_TEXT_MAX];
	size_t o;

	if (s->pod != NULL) {
		const struct agent_pod *p = s->pod;

		snprintf(buf, n, "pod eviction: %s (namespace %s, phase %s, "
		    "%s per the API, %lld container restarts%s%s)",
		    s->pm->reason, p->ns, p->phase[0] ? p->phase : "?",
		    p->api_ready ? "Ready" : "not Ready",
		    (long long)p->container_restarts, p->waiting[0] ? ", " :
		    "", p->waiting);
		agent_copy_text(buf, n, buf);
		return;
	}
	if (s->in->out_fd >= 0)
		agent_proc_read_output(a->proc, s->in);
	snprintf(buf, n, "%s restart: %s", agent_restart_kind_name(
	    s->pm->kind), s->pm->reason);
	o = agent_copy_text(buf, n, buf);
	if (o + sizeof(sep) + 32 >= n)
		return;
	if (agent_outring_tail(&s->in->out, AGENT_PERMIT_TAIL_LINES, tail,
	    n - o - sizeof(sep) + 1) == 0)
		return;
	snprintf(buf + o, n - o, "%s%s", sep, tail);
}

static int
ask(struct agent *a, const struct subj *s, int64_t now)
{
	struct cm_msg_permit req;
	int rv;

	memset(&req, 0, sizeof(req));
	snprintf(req.service, sizeof(req.service), "%s", s->service);
	snprintf(req.instance, sizeof(req.instance), "%s", s->instance);
	permit_reason(a, s, req.reason, sizeof(req.reason));
	rv = agent_link_permit_start(a->link, &req, a->conf.permit_timeout_ms,
	    now);
	if (rv < 0)
		return rv;
	if (s->pm->phase == AGENT_PERMIT_WANTED)
		s->pm->phase = AGENT_PERMIT_ASKING;
	a->asking_set = true;
	snprintf(a->asking_svc, sizeof(a->asking_svc), "%s", s->service);
	snprintf(a->asking_inst, sizeof(a->asking_inst), "%s", s->instance);
	a->asking_gen = s->pm->gen;
	cm_info("permit.ask", "service=%s instance=%s kind=%s reason=%s",
	    s->service, s->instance, agent_restart_kind_name(s->pm->kind),
	    cm_q(s->pm->reason));
	return 0;
}

int64_t
agent_permit_tick(struct agent *a, int64_t now)
{
	struct agent_link_permit_ans ans;
	struct agent_link_view lv;
	bool acted = false;
	char why[300];
	struct subj s;

	if (agent_link_permit_take(a->link, &ans)) {
		on_answer(a, &ans, now);
		acted = true;
	}
	while (!agent_link_permit_busy(a->link) && subj_next_wanted(a, &s)) {
		int64_t until;
		int rv;

		agent_link_view(a->link, &lv);
		until = s.pm->wanted_ms + a->conf.permit_timeout_ms;
		if (lv.down || (!lv.registered && now >= until)) {
			snprintf(why, sizeof(why), "coordinator %s: %s",
			    lv.down ? "unreachable" : "not registered in time",
			    lv.last_error && lv.last_error[0] ?
			    lv.last_error : "no exchange succeeded yet");
			decide_partition(a, &s, why, now);
			acted = true;
			continue;
		}
		if (!lv.registered)
			return acted ? now : until; // wait for the register
		rv = ask(a, &s, now);
		if (rv < 0) {
			snprintf(why, sizeof(why), "cannot send the request: "
			    "%s", strerror(-rv));
			decide_partition(a, &s, why, now);
			acted = true;
			continue;
		}
		break;
	}
	return acted ? now : INT64_MAX;
}
