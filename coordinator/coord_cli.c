// SPDX-License-Identifier: MIT
// coord_cli: history, alerts, status, agents, pause/resume, approve/reject
// and simulate subcommands.
#include "coord_cli.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_k8s.h"
#include "cm_log.h"
#include "cm_time.h"
#include "coord_agents.h"
#include "coord_alert.h"
#include "coord_conf.h"
#include "coord_fetch.h"
#include "coord_safety.h"

#define CLI_TIMEOUT_MS 10000

// The API base URL: --url, else from the config's listen and tls.
// Returns 0, or the exit status after saying why: 2 for arguments left
// over (the `rest` after the options) or a --url that is no URL, 1 for a
// config that does not load (not a usage error: no usage follows).
static int
base_url(const char *config, const char *url, int rest, char *out, size_t n)
{
	if (rest > 0)
		return 2;
	struct coord_conf c;
	char err[512];

	if (url != NULL) {
		if (strncmp(url, "http://", 7) != 0 &&
		    strncmp(url, "https://", 8) != 0) {
			fprintf(stderr, "reflex-coordinator: --url must be an "
			    "http(s) URL\n");
			return 2;
		}
		snprintf(out, n, "%s", url);
		return 0;
	}
	if (coord_conf_load(&c, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "reflex-coordinator: %s (or give --url)\n", err);
		return 1;
	}
	snprintf(out, n, "%s://%s", c.tls.cert_file ? "https" : "http",
	    c.listen);
	coord_conf_free(&c);
	return 0;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

// An API answer other than the one wanted: its "error" when the body is
// the API's JSON error, else the body as it came.
static void
http_failed(const char *what, const struct coord_fetch_reply *r)
{
	cJSON *doc = r->body != NULL ? cJSON_Parse(r->body) : NULL;
	const char *e = str(doc, "error");

	fprintf(stderr, "reflex-coordinator: %s%s%s (HTTP %ld)\n",
	    what != NULL ? what : "", what != NULL ? ": " : "",
	    e[0] != '\0' ? e : r->body != NULL ? r->body : "", r->status);
	cJSON_Delete(doc);
}

static int
append_param(char *q, size_t n, const char *k, const char *v)
{
	char *e = coord_fetch_escape(v);
	size_t o = strlen(q);

	if (e == NULL)
		return -ENOMEM;
	snprintf(q + o, n - o, "%s%s=%s", o ? "&" : "", k, e);
	free(e);
	return 0;
}

/*
 * Prints the first line of a detail (evidence carries a whole log tail),
 * with control bytes shown as '?' so that text from a service's log
 * cannot drive the terminal, and how many lines were left out.
 */
static void
print_first_line(const char *s)
{
	size_t more = 0;
	const char *nl = strchr(s, '\n');

	for (const char *p = s; *p && p != nl; p++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	for (const char *p = nl; p && p[1]; p = strchr(p + 1, '\n'))
		more++;
	if (more)
		printf(" (+%zu lines, --json shows them)", more);
	putchar('\n');
}

/*
 * --since takes an RFC 3339 time or a duration back from now ("15m",
 * "2h", "1d"); either way the API gets an RFC 3339 time.
 */
static int
since_arg(const char *arg, char *q, size_t n)
{
	int64_t ms;
	char ts[40];

	if (strlen(arg) < 64 && cm_time_parse(arg, &ms) == 0 &&
	    ms != CM_TIME_NONE) {
		append_param(q, n, "since", arg);
		return 0;
	}
	if (cm_duration_parse(arg, &ms) < 0 || ms <= 0 ||
	    cm_time_format(cm_now_ms() - ms, ts, sizeof(ts))[0] == '\0') {
		fprintf(stderr, "reflex-coordinator: --since \"%.64s\": expected "
		    "an RFC 3339 time or a duration such as 15m, 2h, 1d\n", arg);
		return -1;
	}
	append_param(q, n, "since", ts);
	return 0;
}

/*
 * The common part of 'history' and 'alerts': parses --service,
 * --alertname, --STATE_KEY (state or outcome), --since, --limit, --json
 * and --url, and GETs `path` with them. Returns 0 with *doc the answer's
 * array (NULL after --json printed it as it came), 1 when the request
 * failed (reported), 2 on bad usage.
 */
static int
list_get(const char *config, int argc, char **argv, const char *path,
    const char *state_key, cJSON **doc)
{
	const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "service", required_argument, NULL, 's' },
		{ "alertname", required_argument, NULL, 'a' },
		{ state_key, required_argument, NULL, 't' },
		{ "since", required_argument, NULL, 'S' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *url = NULL;
	char base[512], q[1024] = "", full[1600];
	struct coord_fetch_reply r;
	bool json = false;
	int opt, rv;

	*doc = NULL;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *key = opt == 's' ? "service" : opt == 'a' ?
		    "alertname" : opt == 't' ? state_key : opt == 'l' ?
		    "limit" : NULL;

		if (opt == 'u')
			url = optarg;
		else if (opt == 'j')
			json = true;
		else if (opt == 'S') {
			if (since_arg(optarg, q, sizeof(q)) < 0)
				return 2;
		} else if (key != NULL && strlen(optarg) < 256)
			append_param(q, sizeof(q), key, optarg);
		else
			return 2;
	}
	rv = base_url(config, url, argc - optind, base, sizeof(base));
	if (rv != 0)
		return rv;
	snprintf(full, sizeof(full), "%s%s%s%s", base, path, q[0] ? "?" : "",
	    q);
	rv = coord_fetch("GET", full, NULL, NULL, 0, CLI_TIMEOUT_MS, &r);
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s: %s\n", base, r.error);
		return 1;
	}
	if (r.status != 200) {
		http_failed(NULL, &r);
		free(r.body);
		return 1;
	}
	if (json) {
		printf("%s\n", r.body);
		free(r.body);
		return 0;
	}
	*doc = cJSON_Parse(r.body);
	free(r.body);
	if (!cJSON_IsArray(*doc)) {
		cJSON_Delete(*doc);
		*doc = NULL;
		fprintf(stderr, "reflex-coordinator: unexpected answer\n");
		return 1;
	}
	return 0;
}

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int
coord_cli_history(const char *config, int argc, char **argv)
{
	cJSON *doc, *a;
	int rv = list_get(config, argc, argv, "/api/v1/actions", "state",
	    &doc);

	if (rv != 0 || doc == NULL)
		return rv;
	printf("%-6s %-24s %-14s %-9s %-28s %-11s %s\n", "ID", "CREATED",
	    "TYPE", "STATE", "TARGET", "NODE", "DETAIL");
	cJSON_ArrayForEach(a, doc) {
		char target[160];

		snprintf(target, sizeof(target), "%s/%s", str(a, "service"),
		    str(a, "instance")[0] ? str(a, "instance") : "*");
		printf("%-6.0f %-24s %-14s %-9s %-28s %-11s ", num(a, "id"),
		    str(a, "created"), str(a, "type"), str(a, "state"), target,
		    str(a, "node")[0] ? str(a, "node") : "-");
		print_first_line(str(a, "detail"));
	}
	cJSON_Delete(doc);
	return 0;
}

int
coord_cli_alerts(const char *config, int argc, char **argv)
{
	cJSON *doc, *a;
	int rv = list_get(config, argc, argv, "/api/v1/alerts", "outcome",
	    &doc);

	if (rv != 0 || doc == NULL)
		return rv;
	printf("%-7s %-24s %-22s %-8s %-28s %-22s %s\n", "ID", "RECEIVED",
	    "ALERTNAME", "STATUS", "SERVICE/INSTANCE", "OUTCOME", "DETAIL");
	cJSON_ArrayForEach(a, doc) {
		char target[160];

		snprintf(target, sizeof(target), "%s/%s",
		    str(a, "service")[0] ? str(a, "service") : "-",
		    str(a, "instance")[0] ? str(a, "instance") : "-");
		printf("%-7.0f %-24s %-22s %-8s %-28s %-22s ", num(a, "id"),
		    str(a, "received"), str(a, "alertname"), str(a, "status"),
		    target, str(a, "outcome"));
		print_first_line(str(a, "detail"));
	}
	cJSON_Delete(doc);
	return 0;
}

/*
 * The common part of 'status' and 'agents': parses [--json] [--url URL],
 * GETs path from the coordinator. Returns 0 with *r filled (the caller
 * frees r->body), 1 when the request failed (reported), 2 on bad usage.
 */
static int
cli_get(const char *config, int argc, char **argv, const char *path,
    bool *json, struct coord_fetch_reply *r)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *url = NULL;
	char base[512], full[600];
	int opt, rv;

	*json = false;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'u')
			url = optarg;
		else if (opt == 'j')
			*json = true;
		else
			return 2;
	}
	rv = base_url(config, url, argc - optind, base, sizeof(base));
	if (rv != 0)
		return rv;
	snprintf(full, sizeof(full), "%s%s", base, path);
	if (coord_fetch("GET", full, NULL, NULL, 0, CLI_TIMEOUT_MS, r) < 0) {
		fprintf(stderr, "reflex-coordinator: %s: %s\n", base, r->error);
		return 1;
	}
	return 0;
}

int
coord_cli_status(const char *config, int argc, char **argv)
{
	struct coord_fetch_reply r;
	bool json;
	const cJSON *reason;
	cJSON *doc;
	int rv = cli_get(config, argc, argv, "/health", &json, &r);

	if (rv != 0)
		return rv;
	doc = cJSON_Parse(r.body);
	if (json || doc == NULL) {
		printf("%s\n", r.body);
		free(r.body);
		cJSON_Delete(doc);
		return r.status == 200 ? 0 : 1;
	}
	free(r.body);
	printf("status:      %s\n", str(doc, "status"));
	cJSON_ArrayForEach(reason, cJSON_GetObjectItemCaseSensitive(doc,
	    "reasons"))
		if (cJSON_IsString(reason))
			printf("  reason:    %s\n", reason->valuestring);
	printf("automation:  %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    doc, "breaker_open")) ? "paused (breaker open)" : "running");
	printf("rollout:     %g%% of services live\n", cJSON_GetNumberValue(
	    cJSON_GetObjectItemCaseSensitive(doc, "rollout_percent")));
	printf("agents:      %g (%g lost)\n", cJSON_GetNumberValue(
	    cJSON_GetObjectItemCaseSensitive(doc, "agents")),
	    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc,
	    "agents_lost")));
	printf("queue:       %g alerts, %g actions in flight\n",
	    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "queue")),
	    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc,
	    "in_flight")));
	cJSON_Delete(doc);
	return r.status == 200 ? 0 : 1;
}

/*
 * Lists every agent: follows the pages of /api/v1/agents (node order,
 * each asked for after the last node of the one before) until an empty
 * page, then prints them as a table or (--json) one JSON array.
 */
int
coord_cli_agents(const char *config, int argc, char **argv)
{
	struct coord_fetch_reply r;
	bool json;
	cJSON *all = cJSON_CreateArray(), *doc, *a;
	char path[64 + CM_NAME_MAX * 3], last[CM_NAME_MAX] = "";
	int rv, pages = 0;

	if (all == NULL)
		return 1;
	for (;;) {
		snprintf(path, sizeof(path), "/api/v1/agents?limit=%d",
		    COORD_AGENTS_PAGE_MAX);
		if (last[0] != '\0' &&
		    cm_k8s_query_add(path, sizeof(path), "after", last) < 0) {
			cJSON_Delete(all);
			return 1; // cannot happen: node names fit
		}
		rv = cli_get(config, argc, argv, path, &json, &r);
		if (rv != 0) {
			cJSON_Delete(all);
			return rv;
		}
		if (r.status != 200) {
			printf("%s\n", r.body);
			free(r.body);
			cJSON_Delete(all);
			return 1;
		}
		doc = cJSON_Parse(r.body);
		free(r.body);
		if (!cJSON_IsArray(doc) || ++pages > 100000) {
			cJSON_Delete(doc);
			cJSON_Delete(all);
			fprintf(stderr, "reflex-coordinator: unexpected answer\n");
			return 1;
		}
		if (cJSON_GetArraySize(doc) == 0) {
			cJSON_Delete(doc);
			break;
		}
		while ((a = cJSON_DetachItemFromArray(doc, 0)) != NULL) {
			const char *node = str(a, "node");

			if (strcmp(node, last) <= 0) { // pages go forward
				cJSON_Delete(a);
				cJSON_Delete(doc);
				cJSON_Delete(all);
				fprintf(stderr, "reflex-coordinator: unexpected "
				    "answer (agents out of order)\n");
				return 1;
			}
			snprintf(last, sizeof(last), "%s", node);
			cJSON_AddItemToArray(all, a);
		}
		cJSON_Delete(doc);
	}
	if (json) {
		char *out = cJSON_PrintUnformatted(all);

		printf("%s\n", out != NULL ? out : "[]");
		free(out);
		cJSON_Delete(all);
		return 0;
	}
	printf("%-16s %-6s %-9s %-10s %s\n", "NODE", "STATE", "RUNTIME",
	    "WORKLOADS", "ADDRESS");
	cJSON_ArrayForEach(a, all) {
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(a, "workloads");

		printf("%-16s %-6s %-9s %-10d %s\n", str(a, "node"),
		    str(a, "state"), str(a, "runtime"), cJSON_GetArraySize(w),
		    str(a, "addr"));
	}
	cJSON_Delete(all);
	return 0;
}

static int operator_post(const char *config, int argc, char **argv,
    const char *call, const char *body);

int
coord_cli_control(const char *config, int argc, char **argv, int pause)
{
	return operator_post(config, argc, argv, pause ? "pause" : "resume",
	    "{}");
}

// The plan id: the one argument that is neither an option nor the value
// of --url or --token-file (given as a separate argument), wherever it
// stands. Moves it to the end of argv and returns its index, or -1.
static int
take_plan_id(int argc, char **argv)
{
	int at = -1;
	char *id;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 ||
		    strcmp(argv[i], "--token-file") == 0)
			i++;
		else if (argv[i][0] != '-' && at < 0)
			at = i;
		else if (argv[i][0] != '-')
			return -1;	// two of them
	}
	if (at < 0)
		return -1;
	id = argv[at];
	memmove(&argv[at], &argv[at + 1], (size_t)(argc - at - 1) *
	    sizeof(*argv));
	argv[argc - 1] = id;
	return argc - 1;
}

int
coord_cli_decide(const char *config, int argc, char **argv, int approve)
{
	char body[64], *end;
	long long id;
	int at = take_plan_id(argc, argv);

	if (at < 0) {
		fprintf(stderr, "reflex-coordinator: %s needs one plan id\n",
		    approve ? "approve" : "reject");
		return 2;
	}
	id = strtoll(argv[at], &end, 10);
	if (*end != '\0' || id < 1) {
		fprintf(stderr, "reflex-coordinator: \"%.30s\" is not a plan id\n",
		    argv[at]);
		return 2;
	}
	snprintf(body, sizeof(body), "{\"id\":%lld}", id);
	return operator_post(config, argc - 1, argv, approve ? "approve" :
	    "reject", body);
}

static int
operator_post(const char *config, int argc, char **argv, const char *call,
    const char *body)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ 0 },
	};
	const char *url = NULL, *token_file = NULL;
	struct coord_auth_conf ac = { 0 };
	struct coord_auth auth;
	struct coord_conf c = { 0 };
	struct coord_fetch_reply r;
	char base[512], full[600], hdr[COORD_SECRET_MAX + 32], err[512];
	const char *headers[2] = { hdr, NULL };
	bool have_conf = false;
	int opt, rv;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'u')
			url = optarg;
		else if (opt == 't')
			token_file = optarg;
		else
			return 2;
	}
	rv = base_url(config, url, argc - optind, base, sizeof(base));
	if (rv != 0)
		return rv;
	if (token_file == NULL &&
	    coord_conf_load(&c, config, err, sizeof(err)) == 0) {
		have_conf = true;
		token_file = c.auth.operator_token_file;
	}
	if (token_file == NULL) {
		fprintf(stderr, "reflex-coordinator: no operator token (give "
		    "--token-file or auth.operator_token_file)\n");
		if (have_conf)
			coord_conf_free(&c);
		return 1; // the setup lacks it: not a usage error
	}
	ac.operator_token_file = (char *)token_file;
	rv = coord_auth_load(&auth, &ac, err, sizeof(err));
	if (have_conf)
		coord_conf_free(&c);
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s\n", err);
		return 1;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s",
	    auth.operator_token);
	coord_auth_clear(&auth);
	snprintf(full, sizeof(full), "%s/api/v1/%s", base, call);
	rv = coord_fetch_headers("POST", full, headers, "application/json",
	    body, strlen(body), CLI_TIMEOUT_MS, &r);
	memset(hdr, 0, sizeof(hdr));
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s: %s\n", base, r.error);
		return 1;
	}
	if (r.status == 202) {
		cJSON *doc = cJSON_Parse(r.body);

		printf("%s: accepted, %s (HTTP 202)\n", call,
		    str(doc, "status")[0] ? str(doc, "status") : r.body);
		cJSON_Delete(doc);
	} else {
		http_failed(call, &r);
	}
	free(r.body);
	return r.status == 202 ? 0 : 1;
}

static char *
read_file(const char *path, size_t max, size_t *ret_len)
{
	FILE *f = fopen(path, "rbe");
	char *buf;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf != NULL) {
		*ret_len = fread(buf, 1, max + 1, f);
		if (*ret_len > max) {
			free(buf);
			buf = NULL;
			errno = EFBIG;
		} else {
			buf[*ret_len] = '\0';
		}
	}
	fclose(f);
	return buf;
}

// One alert of the file through rules and checks, printed as a line or
// added to `out` (JSON).
static void
simulate_alert(const struct coord_conf *c, struct coord_safety *s,
    const struct coord_alert *a, size_t idx, cJSON *out)
{
	const char *name = coord_kvs_get(&a->labels, "alertname");
	char decision[64] = "", detail[COORD_REASON_MAX + 128] = "";
	cJSON *o = cJSON_CreateObject();

	if (!a->firing) {
		snprintf(decision, sizeof(decision), "resolved");
		snprintf(detail, sizeof(detail), "closes its incident; never acts");
	}
	for (size_t i = 0; a->firing && i < c->compiled.n; i++) {
		const struct coord_rule *r = &c->compiled.v[i];
		struct coord_plan *plans;
		struct coord_safety_req sr;
		struct coord_verdict v;
		size_t n;
		char err[256];

		if (!coord_rule_matches(r, a))
			continue;
		if (coord_rule_plan(r, a, &plans, &n, err, sizeof(err)) < 0) {
			snprintf(decision, sizeof(decision), "template-error");
			snprintf(detail, sizeof(detail), "rule %s: %s",
			    r->conf->name, err);
			break;
		}
		sr = (struct coord_safety_req){ .type = plans[0].type,
			.service = plans[0].service, .instance = plans[0].instance,
			.identity = coord_alert_identity(a, c->ignore_labels,
			    c->n_ignore_labels), .force = r->conf->force };
		coord_safety_check(s, &sr, cm_now_ms(), &v);
		if (!v.allow) {
			snprintf(decision, sizeof(decision), "refused:%s", v.check);
			snprintf(detail, sizeof(detail), "rule %s: %s",
			    r->conf->name, v.reason);
		} else {
			size_t k0 = 0;

			snprintf(decision, sizeof(decision), "%s",
			    c->mode == COORD_MODE_SHADOW ||
			    r->conf->mode == COORD_RULE_SHADOW ? "shadow" :
			    r->conf->mode == COORD_RULE_APPROVAL ?
			    "awaiting-approval" : "act");
			k0 = (size_t)snprintf(detail, sizeof(detail), "rule %s:",
			    r->conf->name);
			for (size_t k = 0; k < n && k0 < sizeof(detail); k++)
				k0 += (size_t)snprintf(detail + k0, sizeof(detail) - k0,
				    " %s%s %s/%s", k ? "then " : "",
				    coord_action_name(plans[k].type),
				    plans[k].service, plans[k].instance[0] ?
				    plans[k].instance : "*");
			coord_safety_started(s, &sr, cm_now_ms());
		}
		coord_plans_free(plans, n);
		if (!r->conf->cont || !v.allow)
			break;
	}
	if (decision[0] == '\0') {
		snprintf(decision, sizeof(decision), "no-rule");
		snprintf(detail, sizeof(detail), "no rule matches");
	}
	if (out != NULL && o != NULL) {
		cJSON_AddNumberToObject(o, "alert", (double)idx);
		cJSON_AddStringToObject(o, "alertname", name ? name : "");
		cJSON_AddStringToObject(o, "decision", decision);
		cJSON_AddStringToObject(o, "detail", detail);
		cJSON_AddItemToArray(out, o);
	} else {
		printf("%-4zu %-28s %-20s %s\n", idx, name ? name : "?", decision,
		    detail);
		cJSON_Delete(o);
	}
}

int
coord_cli_simulate(const char *config, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	struct coord_notification *n = NULL;
	struct coord_safety *s;
	struct coord_conf c;
	char err[512], *body;
	cJSON *out = NULL;
	bool json = false;
	size_t len = 0;
	int opt, rv;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'j')
			return 2;
		json = true;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: reflex-coordinator simulate [-c FILE] "
		    "[--json] WEBHOOK_BODY_FILE\n");
		return 2;
	}
	rv = coord_conf_load(&c, config, err, sizeof(err));
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s\n", err);
		return 1;
	}
	body = read_file(argv[optind], c.wl.max_body, &len);
	if (body == NULL) {
		fprintf(stderr, "reflex-coordinator: %s: %s\n", argv[optind],
		    strerror(errno));
		coord_conf_free(&c);
		return 1;
	}
	rv = coord_webhook_parse(&n, body, len, &c.wl, err, sizeof(err));
	free(body);
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s: %s (the coordinator "
		    "would answer %d)\n", argv[optind], err,
		    rv == -E2BIG ? 413 : 400);
		coord_conf_free(&c);
		return 1;
	}
	s = coord_safety_new(&c.safety);
	if (s == NULL) {
		coord_notification_free(n);
		coord_conf_free(&c);
		return 1;
	}
	// Storms are counted over the whole body first, as the engine does
	// for a batch. The fleet size is unknown here.
	for (size_t i = 0; i < n->n_alerts; i++)
		if (n->alerts[i].firing)
			coord_safety_demand(s, coord_alert_identity(&n->alerts[i],
			    c.ignore_labels, c.n_ignore_labels), 0, cm_now_ms());
	if (json)
		out = cJSON_CreateArray();
	else
		printf("%-4s %-28s %-20s %s\n", "#", "ALERTNAME", "DECISION",
		    "DETAIL");
	for (size_t i = 0; i < n->n_alerts; i++)
		simulate_alert(&c, s, &n->alerts[i], i, out);
	if (out != NULL) {
		char *text = cJSON_Print(out);

		printf("%s\n", text != NULL ? text : "[]");
		free(text);
		cJSON_Delete(out);
	}
	coord_safety_free(s);
	coord_notification_free(n);
	coord_conf_free(&c);
	return 0;
}
