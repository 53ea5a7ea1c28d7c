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
agent_partition_allows(const struct agent_svc *s, const char *cause,
    int64_t now, char *why, size_t n)
{
	const struct agent_partition_conf *pc = &s->conf->partition_policy;
	unsigned used = agent_proc_own_restarts_since(s, now - pc->window_ms);
	char win[32];

	window_text(pc->window_ms, win, sizeof(win));
	if (pc->max_restarts == 0) {
		snprintf(why, n, "partition policy: no restart of %s without "
		    "the coordinator (max_restarts 0) (%s)", s->conf->name,
		    cause);
		agent_copy_text(why, n, why);
		return false;
	}
	if ((int64_t)used >= pc->max_restarts) {
		snprintf(why, n, "partition policy: %u restart%s of %s within "
		    "%s already (%s)", used, used == 1 ? "" : "s",
		    s->conf->name, win, cause);
		agent_copy_text(why, n, why);
		return false;
	}
	snprintf(why, n, "partition policy: restart %u of at most %lld of %s "
	    "within %s (%s)", used + 1, (long long)pc->max_restarts,
	    s->conf->name, win, cause);
	agent_copy_text(why, n, why);
	return true;
}

// ---- verdicts -------------------------------------------------------------

static void
decide(struct agent *a, struct agent_inst *in, enum agent_verdict v,
    const char *why, int64_t now)
{
	const struct agent_permit *pm = &in->permit;
	bool held = v == AGENT_VERDICT_REFUSED ||
	    v == AGENT_VERDICT_PARTITION_HELD;
	bool repeat = held && pm->phase != AGENT_PERMIT_NONE && pm->decided &&
	    pm->last_verdict == v && strcmp(pm->held, why) == 0;
	const char *kind = agent_restart_kind_name(pm->kind);

	a->permits[v]++;
	cm_log(repeat ? CM_LOG_DEBUG : held ? CM_LOG_NOTICE : CM_LOG_INFO,
	    "permit.decision", "service=%s instance=%s kind=%s verdict=%s "
	    "holds=%u reason=%s why=%s", in->svc->conf->name, in->name, kind,
	    agent_verdict_name(v), pm->holds + held, cm_q(pm->reason),
	    cm_q(why));
	if (!repeat)
		agent_actlog_add(&a->actlog, cm_now_ms(), "own_restart",
		    in->svc->conf->name, in->name, agent_verdict_name(v),
		    "%s: %s; %s", kind, pm->reason, why);
	agent_proc_permit_decided(a->proc, in, v, why, now);
}

static void
decide_partition(struct agent *a, struct agent_inst *in, const char *cause,
    int64_t now)
{
	char why[AGENT_REASON_MAX];
	bool ok = agent_partition_allows(in->svc, cause, now, why,
	    sizeof(why));

	decide(a, in, ok ? AGENT_VERDICT_PARTITION_ALLOWED :
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
	struct agent_inst *in = a->asking;
	char why[AGENT_REASON_MAX], msg[AGENT_REASON_MAX];

	a->asking = NULL;
	if (in == NULL || in->permit.phase != AGENT_PERMIT_ASKING ||
	    in->permit.gen != a->asking_gen) {
		cm_debug("permit.late", "instance=%s answered=%d ok=%d",
		    in ? in->name : "-", ans->answered, ans->ok);
		return;
	}
	if (!ans->answered) {
		snprintf(why, sizeof(why), "coordinator: %s", ans->why);
		decide_partition(a, in, why, now);
	} else if (ans->ok) {
		snprintf(why, sizeof(why), "granted by coordinator: %s",
		    first_line(ans->message, msg, sizeof(msg)));
		decide(a, in, AGENT_VERDICT_GRANTED, why, now);
	} else if (ans->code == -ENOENT && !in->permit.reasked) {
		cm_info("permit.unknown_node", "instance=%s action=%s",
		    in->name, "register, then ask again");
		agent_link_reregister(a->link, now);
		agent_proc_permit_again(a->proc, in, true, now);
	} else if (ans->code == -ENOENT || ans->code == -ETIMEDOUT ||
	    ans->code == -ENOTSUP || ans->code == -EPROTO) {
		snprintf(why, sizeof(why), "coordinator could not decide: "
		    "%d %s", ans->code, first_line(ans->message, msg,
		    sizeof(msg)));
		decide_partition(a, in, why, now);
	} else {
		snprintf(why, sizeof(why), "refused by coordinator: %s",
		    first_line(ans->message, msg, sizeof(msg)));
		decide(a, in, AGENT_VERDICT_REFUSED, why, now);
	}
}

// ---- asking -----------------------------------------------------------------

// "<kind> restart: <reason>", then the last lines of the instance's
// output, all within the permit's reason field.
static void
permit_reason(struct agent_inst *in, char *buf, size_t n)
{
	static const char sep[] = "\nlast output:\n";
	char tail[CM_TEXT_MAX];
	size_t o;

	snprintf(buf, n, "%s restart: %s",
	    agent_restart_kind_name(in->permit.kind), in->permit.reason);
	o = agent_copy_text(buf, n, buf);
	if (o + sizeof(sep) + 32 >= n)
		return;
	if (agent_outring_tail(&in->out, AGENT_PERMIT_TAIL_LINES, tail,
	    n - o - sizeof(sep) + 1) == 0)
		return;
	snprintf(buf + o, n - o, "%s%s", sep, tail);
}

static int
ask(struct agent *a, struct agent_inst *in, int64_t now)
{
	struct cm_msg_permit req;
	int rv;

	memset(&req, 0, sizeof(req));
	snprintf(req.service, sizeof(req.service), "%s", in->svc->conf->name);
	snprintf(req.instance, sizeof(req.instance), "%s", in->name);
	if (in->out_fd >= 0)
		agent_proc_read_output(a->proc, in);
	permit_reason(in, req.reason, sizeof(req.reason));
	rv = agent_link_permit_start(a->link, &req, a->conf.permit_timeout_ms,
	    now);
	if (rv < 0)
		return rv;
	agent_proc_permit_asking(a->proc, in);
	a->asking = in;
	a->asking_gen = in->permit.gen;
	cm_info("permit.ask", "service=%s instance=%s kind=%s reason=%s",
	    in->svc->conf->name, in->name,
	    agent_restart_kind_name(in->permit.kind), cm_q(in->permit.reason));
	return 0;
}

int64_t
agent_permit_tick(struct agent *a, int64_t now)
{
	struct agent_link_permit_ans ans;
	struct agent_link_view lv;
	bool acted = false;
	char why[300];

	if (agent_link_permit_take(a->link, &ans)) {
		on_answer(a, &ans, now);
		acted = true;
	}
	while (!agent_link_permit_busy(a->link)) {
		struct agent_inst *in = agent_proc_next_wanted(a->proc);
		int64_t until;
		int rv;

		if (in == NULL)
			break;
		agent_link_view(a->link, &lv);
		until = in->permit.wanted_ms + a->conf.permit_timeout_ms;
		if (lv.down || (!lv.registered && now >= until)) {
			snprintf(why, sizeof(why), "coordinator %s: %s",
			    lv.down ? "unreachable" : "not registered in time",
			    lv.last_error && lv.last_error[0] ?
			    lv.last_error : "no exchange succeeded yet");
			decide_partition(a, in, why, now);
			acted = true;
			continue;
		}
		if (!lv.registered)
			return acted ? now : until; // wait for the register
		rv = ask(a, in, now);
		if (rv < 0) {
			snprintf(why, sizeof(why), "cannot send the request: "
			    "%s", strerror(-rv));
			decide_partition(a, in, why, now);
			acted = true;
			continue;
		}
		break;
	}
	return acted ? now : INT64_MAX;
}
