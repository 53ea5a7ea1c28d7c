// SPDX-License-Identifier: MIT
// Tests for the agent's own-restart permits (verdicts, holds, the
// partition policy), readiness for the "check" command and evidence
// tails. No process is started: instances are put into the
// states under test by hand.
#include <errno.h>
#include <stdlib.h>

#include "agent.h"
#include "tt.h"

#define FEED(r, lit) agent_outring_feed((r), (lit), sizeof(lit) - 1)

#define CONF                                                        \
	"node: node-a\n"                                            \
	"coordinator: tcp://127.0.0.1:9871\n"                       \
	"listen: tcp://127.0.0.1:9881\n"                            \
	"services:\n"                                               \
	"  - name: demo-a\n"                                        \
	"    command: [/bin/true]\n"                                \
	"    instances: 2\n"                                        \
	"    base_port: 18081\n"                                    \
	"    probe: { path: /healthz, failure_threshold: 3 }\n"     \
	"    restart_backoff: { initial: 100ms, max: 350ms }\n"     \
	"    partition_policy: { max_restarts: 2, window: 10s }\n"  \
	"  - name: never\n"                                         \
	"    command: [/bin/true]\n"                                \
	"    base_port: 19000\n"                                    \
	"    partition_policy: { max_restarts: 0 }\n"

struct fixture {
	struct agent_conf conf;
	struct agent_http *http;
	struct agent_proc *proc;
};

static int
fixture_open(struct fixture *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	if (agent_conf_load_mem(&f->conf, "t.yaml", CONF, err,
	    sizeof(err)) < 0) {
		printf("# %s\n", err);
		return -1;
	}
	if (agent_http_new(&f->http) < 0 ||
	    agent_proc_new(&f->conf, f->http, &f->proc) < 0)
		return -1;
	return 0;
}

static void
fixture_close(struct fixture *f)
{
	agent_proc_free(f->proc);
	agent_http_free(f->http);
	agent_conf_free(&f->conf);
}

// A crashed instance (no process) whose restart waits for a permit.
static void
crashed(struct agent_inst *in, int64_t now)
{
	in->state = AGENT_ST_BACKOFF;
	in->pid = 0;
	in->last_pid = 4242;
	in->deadline_ms = now; // its backoff delay is over
	in->start_granted = false;
	in->permit.phase = AGENT_PERMIT_WANTED;
	in->permit.kind = AGENT_RESTART_CRASH;
	in->permit.wanted_ms = now;
	in->permit.gen++;
	snprintf(in->permit.reason, sizeof(in->permit.reason),
	    "process killed by signal 9 (SIGKILL)");
}

static void
test_refused_is_held_then_asked_again(void)
{
	struct fixture f;
	struct agent_inst *in;
	int64_t now = 1000000, next;
	char buf[AGENT_REASON_MAX + 128];

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[1];
	crashed(in, now);
	CHECK(agent_proc_next_wanted(f.proc) == in);
	agent_proc_permit_asking(f.proc, in);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_ASKING);
	CHECK(agent_proc_next_wanted(f.proc) == NULL);
	agent_proc_permit_decided(f.proc, in, AGENT_VERDICT_REFUSED,
	    "refused by coordinator: rate_service", now);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_HELD);
	CHECK_STR(in->permit.held, "refused by coordinator: rate_service");
	CHECK_INT(in->permit.retry_ms, now + 100); // restart_backoff.initial
	CHECK_INT(in->restarts, 0);
	CHECK(!in->start_granted);
	// Its backoff is over but nothing starts while it is held: the tick
	// only waits for the retry.
	next = agent_proc_tick(f.proc, now + 50);
	CHECK_INT(next, now + 100);
	CHECK_INT(in->state, AGENT_ST_BACKOFF);
	CHECK_INT(in->pid, 0);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_HELD);
	CHECK(!agent_proc_ready(in, now + 50, buf, sizeof(buf)));
	CHECK_STR(buf, "backoff after 0 failures; crash restart held: "
	    "refused by coordinator: rate_service");
	(void)agent_proc_tick(f.proc, now + 100);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_WANTED);
	CHECK(agent_proc_next_wanted(f.proc) == in);
	// While it is asked again, the hold is still what it says.
	agent_proc_ready(in, now + 100, buf, sizeof(buf));
	CHECK_HAS(buf, "crash restart held: refused by coordinator: "
	    "rate_service (asking again)");
	// Refused again: the delay doubles (capped by restart_backoff.max).
	agent_proc_permit_asking(f.proc, in);
	agent_proc_permit_decided(f.proc, in, AGENT_VERDICT_REFUSED, "no",
	    now + 100);
	CHECK_INT(in->permit.holds, 2);
	CHECK_INT(in->permit.retry_ms, now + 100 + 200);
	in->permit.phase = AGENT_PERMIT_WANTED;
	agent_proc_permit_decided(f.proc, in, AGENT_VERDICT_REFUSED, "no",
	    now + 300);
	CHECK_INT(in->permit.retry_ms, now + 300 + 350);
	fixture_close(&f);
}

static void
test_granted_crash_restart_is_counted(void)
{
	struct fixture f;
	struct agent_inst *in;
	int64_t now = 1000000;
	uint64_t gen;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[0];
	crashed(in, now);
	agent_proc_permit_asking(f.proc, in);
	gen = in->permit.gen;
	agent_proc_permit_decided(f.proc, in, AGENT_VERDICT_GRANTED,
	    "granted by coordinator: ok", now);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_NONE);
	CHECK(in->permit.gen != gen); // a late answer no longer matches
	CHECK(in->start_granted);
	CHECK_INT(in->restarts, 1);
	CHECK_INT(in->count.restarts[AGENT_RESTART_CRASH], 1);
	CHECK_INT(in->count.restarts[AGENT_RESTART_PROBE], 0);
	CHECK_STR(in->last_restart_reason,
	    "process killed by signal 9 (SIGKILL)");
	CHECK_INT(agent_proc_own_restarts_since(in->svc, now), 1);
	CHECK(in->permit.decided &&
	    in->permit.last_verdict == AGENT_VERDICT_GRANTED);
	// A verdict without a pending permit changes nothing.
	agent_proc_permit_decided(f.proc, in, AGENT_VERDICT_REFUSED, "late",
	    now);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_NONE);
	CHECK_INT(in->restarts, 1);
	fixture_close(&f);
}

static void
test_partition_policy(void)
{
	struct fixture f;
	struct agent_inst *a0, *a1;
	int64_t now = 5000000;
	char why[AGENT_REASON_MAX];

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	a0 = &f.proc->svc[0].inst[0];
	a1 = &f.proc->svc[0].inst[1];
	// max_restarts 2 per 10 s, counted over the whole service.
	CHECK(agent_partition_allows(a0->svc, "coordinator: no answer", now,
	    why, sizeof(why)));
	CHECK_STR(why, "partition policy: restart 1 of at most 2 of demo-a "
	    "within 10 s (coordinator: no answer)");
	crashed(a0, now);
	agent_proc_permit_decided(f.proc, a0, AGENT_VERDICT_PARTITION_ALLOWED,
	    why, now);
	CHECK(agent_partition_allows(a1->svc, "x", now + 1, why, sizeof(why)));
	crashed(a1, now + 1);
	agent_proc_permit_decided(f.proc, a1, AGENT_VERDICT_PARTITION_ALLOWED,
	    why, now + 1);
	CHECK(!agent_partition_allows(a0->svc, "coordinator unreachable",
	    now + 2, why, sizeof(why)));
	CHECK_STR(why, "partition policy: 2 restarts of demo-a within 10 s "
	    "already (coordinator unreachable)");
	// The first one leaves the window: one more is allowed.
	CHECK(!agent_partition_allows(a0->svc, "x", now + 9999, why,
	    sizeof(why)));
	CHECK(agent_partition_allows(a0->svc, "x", now + 10001, why,
	    sizeof(why)));
	CHECK_HAS(why, "restart 2 of at most 2");
	CHECK_INT(a0->count.restarts[AGENT_RESTART_CRASH] +
	    a1->count.restarts[AGENT_RESTART_CRASH], 2);
	// max_restarts 0: never without the coordinator.
	CHECK(!agent_partition_allows(&f.proc->svc[1], "x", now, why,
	    sizeof(why)));
	CHECK_STR(why, "partition policy: no restart of never without the "
	    "coordinator (max_restarts 0) (x)");
	fixture_close(&f);
}

static void
test_permit_again_after_unknown_node(void)
{
	struct fixture f;
	struct agent_inst *in;
	int64_t now = 1000000;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[0];
	crashed(in, now);
	agent_proc_permit_again(f.proc, in, true, now); // not asking: no-op
	CHECK(!in->permit.reasked);
	agent_proc_permit_asking(f.proc, in);
	agent_proc_permit_again(f.proc, in, true, now + 5);
	CHECK_INT(in->permit.phase, AGENT_PERMIT_WANTED);
	CHECK(in->permit.reasked);
	CHECK_INT(in->permit.wanted_ms, now + 5);
	fixture_close(&f);
}

static void
test_readiness_for_check(void)
{
	struct fixture f;
	struct agent_inst *in, *plain;
	char buf[AGENT_REASON_MAX + 128];
	int64_t now = 1000000;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[1];
	in->pid = 77;
	in->state = AGENT_ST_STARTING;
	CHECK(!agent_proc_ready(in, now, buf, sizeof(buf)));
	CHECK_STR(buf, "starting (probe not passed yet)");
	in->probe.consecutive_failures = 2;
	snprintf(in->probe.last_error, sizeof(in->probe.last_error),
	    "HTTP 503");
	CHECK(!agent_proc_ready(in, now, buf, sizeof(buf)));
	CHECK_STR(buf, "starting (probe not passed yet; failed 2 times: "
	    "HTTP 503)");
	in->state = AGENT_ST_RUNNING;
	in->probe.ran = true;
	in->probe.ok = true;
	in->healthy_since_ms = now - 3500;
	CHECK(agent_proc_ready(in, now, buf, sizeof(buf)));
	CHECK_STR(buf, "running (pid 77, probe ok, healthy for 3 s)");
	CHECK(agent_proc_ready(in, now, NULL, 0));
	in->probe.ok = false; // RUNNING with a failing probe is not ready
	CHECK(!agent_proc_ready(in, now, NULL, 0));
	in->state = AGENT_ST_UNHEALTHY;
	in->probe.consecutive_failures = 3;
	in->permit.phase = AGENT_PERMIT_HELD;
	in->permit.kind = AGENT_RESTART_PROBE;
	snprintf(in->permit.held, sizeof(in->permit.held),
	    "refused by coordinator: no");
	CHECK(!agent_proc_ready(in, now, buf, sizeof(buf)));
	CHECK_STR(buf, "unhealthy (probe failed 3 times, restart at 3: "
	    "HTTP 503); probe restart held: refused by coordinator: no");
	in->pid = 0;
	in->state = AGENT_ST_BACKOFF;
	in->backoff_failures = 3;
	in->permit.phase = AGENT_PERMIT_ASKING;
	in->permit.kind = AGENT_RESTART_CRASH;
	in->permit.held[0] = '\0'; // never held: just waiting
	CHECK(!agent_proc_ready(in, now, buf, sizeof(buf)));
	CHECK_STR(buf, "backoff after 3 failures; crash restart waiting for "
	    "the coordinator's permission");
	in->backoff_failures = 1;
	in->permit.phase = AGENT_PERMIT_NONE;
	snprintf(in->spawn_error, sizeof(in->spawn_error),
	    "start failed: No such file or directory");
	agent_proc_ready(in, now, buf, sizeof(buf));
	CHECK_STR(buf, "backoff after 1 failure: start failed: No such file "
	    "or directory");
	// Without a probe, running is ready.
	plain = &f.proc->svc[1].inst[0];
	plain->state = AGENT_ST_RUNNING;
	plain->pid = 88;
	plain->started_ms = now - 2000;
	CHECK(agent_proc_ready(plain, now, buf, sizeof(buf)));
	CHECK_STR(buf, "running (pid 88, no probe: alive for 2 s)");
	plain->pid = 0;
	plain->state = AGENT_ST_STOPPED;
	CHECK(!agent_proc_ready(plain, now, buf, sizeof(buf)));
	CHECK_STR(buf, "stopped");
	// The text is cut to fit, never inside a UTF-8 character.
	in->state = AGENT_ST_UNHEALTHY;
	in->pid = 1;
	snprintf(in->probe.last_error, sizeof(in->probe.last_error),
	    "caf\xc3\xa9");
	agent_proc_ready(in, now, buf, 52);
	CHECK_STR(buf, "unhealthy (probe failed 3 times, restart at 3: caf");
	fixture_close(&f);
}

static void
test_outring_tail(void)
{
	static struct agent_outring r;
	char buf[64], big[AGENT_EVIDENCE_MAX];

	memset(&r, 0, sizeof(r));
	CHECK_INT(agent_outring_tail(&r, 5, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	FEED(&r, "one\ntwo\nthree\nfour\n");
	CHECK_INT(agent_outring_tail(&r, 2, buf, sizeof(buf)), 10);
	CHECK_STR(buf, "three\nfour");
	agent_outring_tail(&r, 40, buf, sizeof(buf));
	CHECK_STR(buf, "one\ntwo\nthree\nfour");
	// Older lines go first when the bytes run out.
	agent_outring_tail(&r, 40, buf, 12);
	CHECK_STR(buf, "three\nfour");
	agent_outring_tail(&r, 40, buf, 11);
	CHECK_STR(buf, "three\nfour");
	agent_outring_tail(&r, 40, buf, 10);
	CHECK_STR(buf, "four");
	// Not even the newest line fits: its beginning, cut on a character.
	FEED(&r, "\xc3\xa9\xc3\xa9\xc3\xa9\n");
	agent_outring_tail(&r, 40, buf, 4);
	CHECK_STR(buf, "\xc3\xa9");
	// The evidence bound holds with many long lines.
	for (int i = 0; i < 100; i++)
		FEED(&r, "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789\n");
	CHECK(agent_outring_tail(&r, AGENT_EVIDENCE_LINES, big, sizeof(big)) <
	    sizeof(big));
	CHECK(strlen(big) <= AGENT_EVIDENCE_MAX - 1);
	CHECK_INT(strlen(big), 33 * 121 - 1); // 33 whole lines of 120 + '\n'
}

static void
test_copy_text_cuts_on_characters(void)
{
	char buf[8];

	CHECK_INT(agent_copy_text(buf, sizeof(buf), "abc"), 3);
	CHECK_STR(buf, "abc");
	CHECK_INT(agent_copy_text(buf, sizeof(buf), "abcdef\xc3\xa9"), 6);
	CHECK_STR(buf, "abcdef");
	CHECK_INT(agent_copy_text(buf, sizeof(buf), "ab\xe2\x82\xac\xe2\x82"
	    "\xac"), 5);
	CHECK_STR(buf, "ab\xe2\x82\xac");
	snprintf(buf, sizeof(buf), "%s", "abcde\xe2\x82\xac");
	CHECK_INT(agent_copy_text(buf, sizeof(buf), buf), 5);
	CHECK_STR(buf, "abcde");
}

static void
test_names(void)
{
	CHECK_STR(agent_restart_kind_name(AGENT_RESTART_COMMAND), "command");
	CHECK_STR(agent_verdict_name(AGENT_VERDICT_PARTITION_HELD),
	    "partition_held");
	CHECK_STR(agent_permit_phase_name(AGENT_PERMIT_HELD), "held");
	CHECK_STR(agent_verdict_name((enum agent_verdict)9), "unknown");
}

static const struct tt_case cases[] = {
	{ "refused permit is held, then asked again after the backoff",
	  test_refused_is_held_then_asked_again },
	{ "granted crash restart is counted and allowed to start",
	  test_granted_crash_restart_is_counted },
	{ "partition policy counts own restarts in the window",
	  test_partition_policy },
	{ "permit asked again after unknown node",
	  test_permit_again_after_unknown_node },
	{ "readiness for the check command", test_readiness_for_check },
	{ "output tail for evidence", test_outring_tail },
	{ "text copies cut on characters", test_copy_text_cuts_on_characters },
	{ "names of kinds, verdicts and phases", test_names },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	int rv;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rv = tt_run(cases, argc, argv);
	curl_global_cleanup();
	return rv;
}
