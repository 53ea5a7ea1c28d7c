// SPDX-License-Identifier: MIT
// Tests for the agent's status document, its human rendering, and the
// output ring buffer that feeds it.
#include <errno.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "agent_actlog.h"
#include "agent_cmd.h"
#include "agent_json.h"
#include "agent_metrics.h"
#include "agent_proc.h"
#include "agent_status.h"
#include "tt.h"

#define FEED(r, lit) agent_outring_feed((r), (lit), sizeof(lit) - 1)

#define CONF                                                   \
	"node: node-a\n"                                       \
	"coordinator: tcp://127.0.0.1:9871\n"                  \
	"listen: tcp://127.0.0.1:9881\n"                       \
	"services:\n"                                          \
	"  - name: demo-a\n"                                   \
	"    command: [/bin/true]\n"                           \
	"    instances: 2\n"                                   \
	"    base_port: 18081\n"                               \
	"    probe: { path: /healthz }\n"                      \
	"  - name: plain\n"                                    \
	"    command: [/bin/true]\n"                           \
	"    base_port: 19000\n"

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

static char *
render(struct fixture *f, size_t max, int *ret_rv)
{
	struct agent_link_view lv = { .url = "tcp://127.0.0.1:9871",
		.connected = true, .registered = true,
		.last_ok_wall_ms = 1796378400123LL, .last_error = "" };
	struct agent_stats st = { .uptime_ms = 5000, .loop_wakeups = 7,
		.bad_frames = 2 };
	char *json = NULL;

	*ret_rv = agent_json_status(f->proc, &lv, &st, NULL, 0, max, &json);
	return json;
}

static void
test_status_json_shape(void)
{
	struct fixture f;
	struct agent_inst *in;
	const cJSON *c, *svcs, *s, *i0, *i1, *p;
	cJSON *doc;
	char *json;
	int rv;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[0];
	in->state = AGENT_ST_RUNNING;
	in->pid = 4242;
	in->restarts = 1;
	in->probe.ok = true;
	in->probe.ran = true;
	in->probe.last_ms = 3;
	snprintf(in->last_restart_reason, sizeof(in->last_restart_reason),
	    "probe failed 3 times: HTTP 500");
	in->last_restart_wall_ms = 1796378400123LL;
	FEED(&in->out, "hello\nworld\n");
	in = &f.proc->svc[0].inst[1];
	in->state = AGENT_ST_BACKOFF;
	in->probe.consecutive_failures = 2;
	snprintf(in->probe.last_error, sizeof(in->probe.last_error),
	    "Connection refused");

	json = render(&f, 1 << 20, &rv);
	CHECK_INT(rv, 0);
	doc = cJSON_Parse(json);
	CHECK(doc != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "node")),
	    "node-a");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "runtime")),
	    "process");
	c = cJSON_GetObjectItem(doc, "coordinator");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(c, "connected")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c, "url")),
	    "tcp://127.0.0.1:9871");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c, "last_ok")),
	    "2026-12-04T10:00:00.123Z");
	svcs = cJSON_GetObjectItem(doc, "services");
	CHECK_INT(cJSON_GetArraySize(svcs), 2);
	s = cJSON_GetArrayItem(svcs, 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")),
	    "demo-a");
	i0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "instances"), 0);
	i1 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "instances"), 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0, "name")),
	    "demo-a-0");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0, "addr")),
	    "127.0.0.1:18081");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(i0, "pid")), 4242);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0, "state")),
	    "running");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(i0, "restarts")), 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0,
	    "last_restart_reason")), "probe failed 3 times: HTTP 500");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0,
	    "last_restart_time")), "2026-12-04T10:00:00.123Z");
	p = cJSON_GetObjectItem(i0, "probe");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(p, "ok")));
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "last_ms")), 3);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(p, "last_error")));
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(i0, "output")), 2);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(i1, "pid")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i1, "state")),
	    "backoff");
	p = cJSON_GetObjectItem(i1, "probe");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(p,
	    "consecutive_failures")), 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "last_error")),
	    "Connection refused");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(i1, "last_restart_time")));
	// A service without a probe section has probe: null.
	s = cJSON_GetArrayItem(svcs, 1);
	i0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "instances"), 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(i0, "name")),
	    "plain-0");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(i0, "probe")));
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(doc, "stats"), "bad_frames")), 2);
	cJSON_Delete(doc);
	free(json);
	fixture_close(&f);
}

static void
test_status_json_shrinks_output_to_fit(void)
{
	struct fixture f;
	char line[300], *json;
	size_t full;
	int rv;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 100; i++)
		agent_outring_feed(&f.proc->svc[0].inst[0].out, line,
		    sizeof(line));
	json = render(&f, 1 << 20, &rv);
	CHECK_INT(rv, 0);
	full = json ? strlen(json) : 0;
	CHECK(full > 64 * (AGENT_OUT_LINE_MAX - 1));
	free(json);
	json = render(&f, full, &rv); // must drop to the 8-line tail
	CHECK_INT(rv, 0);
	CHECK(json != NULL && strlen(json) < full);
	CHECK(json != NULL && strlen(json) > 8 * (AGENT_OUT_LINE_MAX - 1));
	free(json);
	json = render(&f, 100, &rv);
	CHECK_INT(rv, -E2BIG);
	CHECK(json == NULL);
	fixture_close(&f);
}

static void
test_human_status_lists_instances(void)
{
	struct fixture f;
	struct agent_inst *in;
	char *json, *text = NULL;
	size_t len = 0;
	FILE *out;
	int rv;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	in = &f.proc->svc[0].inst[1];
	in->state = AGENT_ST_BACKOFF;
	in->restarts = 2;
	snprintf(in->last_restart_reason, sizeof(in->last_restart_reason),
	    "process killed by \x1b[31msignal 9");
	in->last_restart_wall_ms = 1796378400123LL;
	FEED(&in->out, "last words\n");
	json = render(&f, 1 << 20, &rv);
	out = open_memstream(&text, &len);
	CHECK_INT(agent_status_print(out, json), 0);
	fclose(out);
	CHECK_HAS(text, "node         node-a (runtime process)");
	CHECK_HAS(text, "tcp://127.0.0.1:9871: connected, registered");
	CHECK_HAS(text, "service demo-a (probe GET /healthz)");
	CHECK_HAS(text, "demo-a-1");
	CHECK_HAS(text, "backoff");
	CHECK_HAS(text, "last restart 2026-12-04T10:00:00.123Z: process "
	    "killed by ?[31msignal 9");
	CHECK_HAS(text, "| last words");
	CHECK_HAS(text, "service plain (no probe");
	CHECK(strchr(text, '\x1b') == NULL);
	CHECK_INT(agent_status_print(stdout, "[1,2]"), -EINVAL);
	CHECK_INT(agent_status_print(stdout, "{"), -EINVAL);
	free(text);
	free(json);
	fixture_close(&f);
}

static void
test_outring_lines_and_wrap(void)
{
	static struct agent_outring r;
	char buf[32];

	memset(&r, 0, sizeof(r));
	FEED(&r, "a\r\nb");
	CHECK_INT(r.n, 1);
	CHECK_STR(agent_outring_line(&r, 0), "a");
	FEED(&r, "c\n");
	CHECK_INT(r.n, 2);
	CHECK_STR(agent_outring_line(&r, 1), "bc");
	for (int i = 0; i < 100; i++) {
		int n = snprintf(buf, sizeof(buf), "line %d\n", i);

		agent_outring_feed(&r, buf, (size_t)n);
	}
	CHECK_INT(r.n, AGENT_OUT_LINES);
	CHECK_INT(r.total, 102);
	CHECK_STR(agent_outring_line(&r, 0), "line 36");
	CHECK_STR(agent_outring_line(&r, AGENT_OUT_LINES - 1), "line 99");
}

static void
test_outring_sanitizes(void)
{
	static struct agent_outring r;
	char longline[1000];

	memset(&r, 0, sizeof(r));
	FEED(&r, "x\x1b[2Jy\ttab\x7f\n");
	CHECK_STR(agent_outring_line(&r, 0), "x?[2Jy tab?");
	FEED(&r, "caf\xc3\xa9 ok\n");
	CHECK_STR(agent_outring_line(&r, 1), "caf\xc3\xa9 ok");
	FEED(&r, "bad \xff\xfe utf8 \xc3\xa9\n");
	CHECK_STR(agent_outring_line(&r, 2), "bad ?? utf8 ??");
	FEED(&r, "c1 \xc2\x9b csi\n");
	CHECK_STR(agent_outring_line(&r, 3), "c1 ?? csi");
	// A cut inside a multi-byte character leaves valid UTF-8.
	memset(longline, 'a', sizeof(longline));
	longline[AGENT_OUT_LINE_MAX - 2] = '\xc3';
	longline[AGENT_OUT_LINE_MAX - 1] = '\xa9';
	longline[sizeof(longline) - 1] = '\n';
	agent_outring_feed(&r, longline, sizeof(longline));
	CHECK_INT(strlen(agent_outring_line(&r, 4)), AGENT_OUT_LINE_MAX - 2);
	CHECK(cm_utf8_valid(agent_outring_line(&r, 4),
	    strlen(agent_outring_line(&r, 4))));
}

static void
test_hex16(void)
{
	char buf[40];

	agent_cmd_hex16("\x83\xa4type", 6, buf, sizeof(buf));
	CHECK_STR(buf, "83a474797065");
	agent_cmd_hex16("0123456789abcdefXYZ", 19, buf, sizeof(buf));
	CHECK_STR(buf, "30313233343536373839616263646566");
	agent_cmd_hex16("", 0, buf, sizeof(buf));
	CHECK_STR(buf, "");
}

static void
test_actlog_keeps_the_newest(void)
{
	static struct agent_actlog log;
	const struct agent_actlog_entry *e;
	char longer[600];

	memset(&log, 0, sizeof(log));
	for (int i = 0; i < 25; i++)
		agent_actlog_add(&log, 1000 + i, "restart", "demo-a",
		    "demo-a-0", "ok", "number %d", i);
	CHECK_INT(log.n, AGENT_ACTLOG_MAX);
	e = agent_actlog_get(&log, 0);
	CHECK_STR(e->detail, "number 24");
	CHECK_INT(e->wall_ms, 1024);
	CHECK_STR(agent_actlog_get(&log, AGENT_ACTLOG_MAX - 1)->detail,
	    "number 5");
	// Long details are cut on a character boundary.
	memset(longer, 'x', sizeof(longer));
	memcpy(longer + AGENT_ACTLOG_DETAIL_MAX - 2, "\xc3\xa9", 2);
	longer[sizeof(longer) - 1] = '\0';
	agent_actlog_add(&log, 1, "own_restart", "s", "i", "refused", "%s",
	    longer);
	e = agent_actlog_get(&log, 0);
	CHECK_INT(strlen(e->detail), AGENT_ACTLOG_DETAIL_MAX - 2);
	CHECK(cm_utf8_valid(e->detail, strlen(e->detail)));
}

static void
test_status_json_actions_and_permit(void)
{
	static struct agent_actlog log;
	struct agent_link_view lv = { .url = "tcp://127.0.0.1:9871",
		.last_error = "" };
	uint64_t permits[AGENT_VERDICTS] = { 3, 2, 1, 4 };
	struct agent_stats st = { .permits = permits };
	const cJSON *i1, *pm, *a0, *pp;
	struct fixture f;
	struct agent_inst *in;
	char *json = NULL, *text = NULL;
	size_t len = 0;
	cJSON *doc;
	FILE *out;

	if (fixture_open(&f) < 0) {
		CHECK(!"fixture");
		fixture_close(&f);
		return;
	}
	memset(&log, 0, sizeof(log));
	agent_actlog_add(&log, 1796378400123LL, "own_restart", "demo-a",
	    "demo-a-1", "refused", "crash: process killed; refused by "
	    "coordinator: rate_service");
	agent_actlog_add(&log, 1796378401000LL, "restart", "demo-a",
	    "demo-a-0", "ok", "pid 1 -> 2");
	in = &f.proc->svc[0].inst[1];
	in->state = AGENT_ST_BACKOFF;
	in->permit.phase = AGENT_PERMIT_HELD;
	in->permit.kind = AGENT_RESTART_CRASH;
	in->permit.decided = true;
	in->permit.last_verdict = AGENT_VERDICT_REFUSED;
	in->permit.retry_ms = 10500;
	snprintf(in->permit.reason, sizeof(in->permit.reason),
	    "process killed by signal 9 (SIGKILL)");
	snprintf(in->permit.held, sizeof(in->permit.held),
	    "refused by coordinator: rate_service");
	CHECK_INT(agent_json_status(f.proc, &lv, &st, &log, 10000, 1 << 20,
	    &json), 0);
	doc = cJSON_Parse(json);
	CHECK(doc != NULL);
	a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "actions"), 0);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "actions")), 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(a0, "kind")),
	    "restart");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(a0, "time")),
	    "2026-12-04T10:00:01.000Z");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(a0, "instance")),
	    "demo-a-0");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(a0, "result")),
	    "ok");
	i1 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
	    cJSON_GetObjectItem(doc, "services"), 0), "instances"), 1);
	pm = cJSON_GetObjectItem(i1, "permit");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pm, "phase")),
	    "held");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pm, "kind")),
	    "crash");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pm, "held")),
	    "refused by coordinator: rate_service");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pm,
	    "last_verdict")), "refused");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(pm,
	    "next_ask_in_ms")), 500);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(i1, "ready")));
	CHECK_HAS(cJSON_GetStringValue(cJSON_GetObjectItem(i1,
	    "ready_detail")), "crash restart held: refused by coordinator");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc,
	    "services"), 0), "instances"), 0), "permit")));
	pp = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc,
	    "services"), 0), "partition_policy");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(pp,
	    "max_restarts")), 1);
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(pp, "window_ms")),
	    600000);
	pp = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "stats"), "permits");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(pp, "granted")), 3);
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(pp,
	    "partition_held")), 4);
	cJSON_Delete(doc);

	out = open_memstream(&text, &len);
	CHECK_INT(agent_status_print(out, json), 0);
	fclose(out);
	CHECK_HAS(text, "crash restart held: refused by coordinator: "
	    "rate_service (asking again in 0.5 s)");
	CHECK_HAS(text, "recent actions (newest first, UTC)");
	CHECK_HAS(text, "  10:00:01 restart       demo-a-0             ok"
	    "                pid 1 -> 2\n");
	CHECK_HAS(text, "  10:00:00 own_restart   demo-a-1             "
	    "refused           crash: process killed; refused by "
	    "coordinator: rate_service\n");
	CHECK(strstr(text, "restart held") < strstr(text, "recent actions"));
	free(text);
	free(json);
	fixture_close(&f);
}

static void
test_metrics_text(void)
{
	struct agent_metrics_inst rows[2] = {
		{ .service = "demo-a", .instance = "demo-a-0", .up = true,
		  .c = { .probes_ok = 7, .probes_failed = 2,
			 .restarts = { 1, 2, 3 } } },
		{ .service = "we\"ird\\", .instance = "line\nbreak" },
	};
	struct agent_metrics_snap s = { .inst = rows, .n = 2,
		.permits = { 5, 6, 7, 8 }, .bad_frames = 9, .wakeups = 10,
		.connected = true };
	char *text = NULL;
	size_t len = 0;

	CHECK_INT(agent_metrics_render(&s, &text, &len), 0);
	CHECK_INT(strlen(text), len);
	CHECK_HAS(text, "# HELP reflex_agent_probes_total ");
	CHECK_HAS(text, "# TYPE reflex_agent_probes_total counter\n");
	CHECK_HAS(text, "reflex_agent_probes_total{service=\"demo-a\","
	    "instance=\"demo-a-0\",result=\"success\"} 7\n");
	CHECK_HAS(text, "reflex_agent_probes_total{service=\"demo-a\","
	    "instance=\"demo-a-0\",result=\"failure\"} 2\n");
	CHECK_HAS(text, "reflex_agent_restarts_total{service=\"demo-a\","
	    "instance=\"demo-a-0\",reason=\"probe\"} 1\n");
	CHECK_HAS(text, "reason=\"crash\"} 2\n");
	CHECK_HAS(text, "reason=\"command\"} 3\n");
	CHECK_HAS(text, "# TYPE reflex_agent_instance_up gauge\n");
	CHECK_HAS(text, "reflex_agent_instance_up{service=\"demo-a\","
	    "instance=\"demo-a-0\"} 1\n");
	CHECK_HAS(text, "reflex_agent_instance_up{service=\"we\\\"ird\\\\\","
	    "instance=\"line\\nbreak\"} 0\n");
	CHECK_HAS(text, "reflex_agent_permits_total{result=\"granted\"} 5\n");
	CHECK_HAS(text, "reflex_agent_permits_total{result=\"refused\"} 6\n");
	CHECK_HAS(text, "reflex_agent_permits_total{result=\"partition_allowed"
	    "\"} 7\n");
	CHECK_HAS(text, "reflex_agent_permits_total{result=\"partition_held\"} "
	    "8\n");
	CHECK_HAS(text, "reflex_agent_bad_frames_total 9\n");
	CHECK_HAS(text, "reflex_agent_coordinator_connected 1\n");
	CHECK_HAS(text, "reflex_agent_loop_wakeups_total 10\n");
	CHECK(text[len - 1] == '\n');
	free(text);
}

static void
test_metrics_escape(void)
{
	char buf[8];

	CHECK_INT(agent_metrics_escape("a\"b", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a\\\"b");
	CHECK_INT(agent_metrics_escape("\\\n", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "\\\\\\n");
	CHECK_INT(agent_metrics_escape("abcdef\"", buf, sizeof(buf)),
	    -ENOSPC);
	CHECK_STR(buf, "abcdef"); // never half an escape
}

static void
test_state_names(void)
{
	CHECK_STR(agent_state_name(AGENT_ST_STARTING), "starting");
	CHECK_STR(agent_state_name(AGENT_ST_UNHEALTHY), "unhealthy");
	CHECK_STR(agent_state_name(AGENT_ST_STOPPING), "stopping");
	CHECK_STR(agent_state_name((enum agent_state)99), "unknown");
}

static const struct tt_case cases[] = {
	{ "status JSON has the documented shape", test_status_json_shape },
	{ "status JSON shrinks output tails to fit",
	  test_status_json_shrinks_output_to_fit },
	{ "human status lists instances", test_human_status_lists_instances },
	{ "output ring keeps the last lines", test_outring_lines_and_wrap },
	{ "output ring sanitizes", test_outring_sanitizes },
	{ "hex of a frame head", test_hex16 },
	{ "state names", test_state_names },
	{ "recent actions keep the newest", test_actlog_keeps_the_newest },
	{ "status JSON: actions, held permit, permit counts",
	  test_status_json_actions_and_permit },
	{ "metrics text format", test_metrics_text },
	{ "metrics label escaping", test_metrics_escape },
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
