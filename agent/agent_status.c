// SPDX-License-Identifier: MIT
// agent_status: `reflex-agent status`, the local read-only status client.
#include "agent_status.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cjson/cJSON.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent_conf.h"
#include "cm_msg.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: reflex-agent status [-c FILE | -s SOCKET] "
	    "[--json]\n"
	    "  -c, --config FILE   read status_socket from this config "
	    "(default %s)\n"
	    "  -s, --socket PATH   the agent's status socket\n"
	    "  --json              print the JSON document\n",
	    AGENT_CONF_DEFAULT_PATH);
}

// ---- asking the agent -------------------------------------------------

static int
encode_request(nng_msg **ret)
{
	struct cm_msg m;
	void *buf = NULL;
	size_t len = 0;
	int rv;

	memset(&m, 0, sizeof(m));
	m.version = CM_PROTO_VERSION;
	m.type = CM_MSG_STATUS;
	m.id = 1;
	rv = cm_msg_encode(&m, &buf, &len);
	if (rv == 0 && nng_msg_alloc(ret, 0) != 0)
		rv = -ENOMEM;
	if (rv == 0 && nng_msg_append(*ret, buf, len) != 0) {
		nng_msg_free(*ret);
		rv = -ENOMEM;
	}
	free(buf);
	return rv;
}

static int
exchange(nng_socket s, const char *url, struct cm_msg *reply)
{
	nng_msg *msg = NULL;
	char err[256];
	int rv;

	rv = nng_dial(s, url, NULL, 0);
	if (rv != 0) {
		fprintf(stderr, "reflex-agent status: cannot connect to %s: %s "
		    "(is the agent running?)\n", url, nng_strerror(rv));
		return -ECONNREFUSED;
	}
	if (encode_request(&msg) < 0) {
		fprintf(stderr, "reflex-agent status: cannot encode request\n");
		return -ENOMEM;
	}
	rv = nng_sendmsg(s, msg, 0);
	if (rv != 0)
		nng_msg_free(msg);
	if (rv == 0)
		rv = nng_recvmsg(s, &msg, 0);
	if (rv != 0) {
		fprintf(stderr, "reflex-agent status: %s: %s\n", url,
		    nng_strerror(rv));
		return -EIO;
	}
	rv = cm_msg_decode(reply, nng_msg_body(msg), nng_msg_len(msg), err,
	    sizeof(err));
	nng_msg_free(msg);
	if (rv < 0)
		fprintf(stderr, "reflex-agent status: bad reply: %s\n", err);
	return rv;
}

// Asks the agent at `path`; on success *ret is the JSON (free with free()).
static int
ask(const char *path, char **ret)
{
	struct cm_msg reply;
	char url[CM_ADDR_MAX + 8];
	nng_socket s;
	int rv;

	snprintf(url, sizeof(url), "ipc://%s", path);
	if (nng_req0_open(&s) != 0)
		return -ENOMEM;
	(void)nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, AGENT_STATUS_TIMEOUT_MS);
	(void)nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, AGENT_STATUS_TIMEOUT_MS);
	(void)nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, CM_MSG_RECV_MAX);
	memset(&reply, 0, sizeof(reply));
	rv = exchange(s, url, &reply);
	nng_close(s);
	if (rv < 0)
		return rv;
	if (reply.type != CM_MSG_REPLY || !reply.u.reply.ok ||
	    reply.u.reply.json == NULL) {
		fprintf(stderr, "reflex-agent status: the agent refused: %s\n",
		    reply.type == CM_MSG_REPLY ? reply.u.reply.message :
		    reply.u.error.message);
		cm_msg_clear(&reply);
		return -EPROTO;
	}
	*ret = reply.u.reply.json;
	reply.u.reply.json = NULL;
	cm_msg_clear(&reply);
	return 0;
}

// ---- printing for a person -------------------------------------------------

// A JSON string value, or def; control characters become '?' when printed.
static const char *
jstr(const cJSON *o, const char *k, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : def;
}

static double
jnum(const cJSON *o, const char *k, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static bool
jtrue(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

// Copies s into buf for a terminal: control characters become '?'.
static const char *
tty(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	for (; s[i] != '\0' && i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

#define TTY(s) tty((s), (char[600]){ 0 }, 600)

static void
print_link(FILE *out, const cJSON *c, const cJSON *stats)
{
	const char *err = jstr(c, "last_error", NULL);

	fprintf(out, "coordinator  %s: %s%s, last ok %s\n",
	    TTY(jstr(c, "url", "?")),
	    jtrue(c, "connected") ? "connected" : "not connected",
	    jtrue(c, "registered") ? ", registered" : "",
	    TTY(jstr(c, "last_ok", "never")));
	if (err != NULL)
		fprintf(out, "             last error: %s\n", TTY(err));
	if (jtrue(stats, "sealed"))
		fprintf(out, "             channel sealed with the shared "
		    "secret; %.0f command(s) refused as unauthenticated\n",
		    jnum(stats, "unauthenticated", 0));
	else
		fprintf(out, "             channel not sealed (no "
		    "coordinator_secret_file)\n");
}

static void
probe_text(const cJSON *in, char *buf, size_t n)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "probe");
	const char *err;

	if (!cJSON_IsObject(p)) {
		snprintf(buf, n, "-");
		return;
	}
	err = jstr(p, "last_error", NULL);
	if (jtrue(p, "ok"))
		snprintf(buf, n, "ok (%.0f ms)", jnum(p, "last_ms", 0));
	else if (err != NULL)
		snprintf(buf, n, "failed x%.0f: %s",
		    jnum(p, "consecutive_failures", 0), TTY(err));
	else
		snprintf(buf, n, "not yet");
}

static void
print_output_tail(FILE *out, const cJSON *in)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(in, "output");
	int n = cJSON_GetArraySize(o);

	for (int i = n > 3 ? n - 3 : 0; i < n; i++) {
		const cJSON *l = cJSON_GetArrayItem(o, i);

		if (cJSON_IsString(l))
			fprintf(out, "      | %s\n", TTY(l->valuestring));
	}
}

static void
print_permit(FILE *out, const cJSON *in)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "permit");
	const char *held;

	if (!cJSON_IsObject(p))
		return;
	held = jstr(p, "held", NULL);
	if (held != NULL && strcmp(jstr(p, "phase", ""), "held") == 0)
		fprintf(out, "      %s restart held: %s (asking again in "
		    "%.1f s)\n", TTY(jstr(p, "kind", "?")), TTY(held),
		    jnum(p, "next_ask_in_ms", 0) / 1000.0);
	else if (held != NULL)
		fprintf(out, "      %s restart held: %s (asking again now)\n",
		    TTY(jstr(p, "kind", "?")), TTY(held));
	else
		fprintf(out, "      %s restart waiting for the coordinator's "
		    "permission: %s\n", TTY(jstr(p, "kind", "?")),
		    TTY(jstr(p, "reason", "?")));
}

static void
print_instance(FILE *out, const cJSON *in)
{
	const char *reason = jstr(in, "last_restart_reason", NULL);
	const char *serr = jstr(in, "start_error", NULL);
	const char *state = jstr(in, "state", "?");
	char pid[16] = "-", probe[400];

	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(in, "pid")))
		snprintf(pid, sizeof(pid), "%.0f", jnum(in, "pid", 0));
	probe_text(in, probe, sizeof(probe));
	fprintf(out, "  %-20s %-21s %-8s %-10s %-8.0f %s\n",
	    TTY(jstr(in, "name", "?")), TTY(jstr(in, "addr", "?")), pid,
	    TTY(state), jnum(in, "restarts", 0), probe);
	if (reason != NULL)
		fprintf(out, "      last restart %s: %s\n",
		    TTY(jstr(in, "last_restart_time", "?")), TTY(reason));
	if (serr != NULL)
		fprintf(out, "      %s\n", TTY(serr));
	print_permit(out, in);
	if (strcmp(state, "running") != 0)
		print_output_tail(out, in);
}

static void
print_service(FILE *out, const cJSON *s)
{
	const char *probe = jstr(s, "probe_path", NULL);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "instances");
	const cJSON *in;

	fprintf(out, "\nservice %s (%s%s)\n", TTY(jstr(s, "name", "?")),
	    probe ? "probe GET " : "no probe: healthy = alive",
	    probe ? TTY(probe) : "");
	fprintf(out, "  %-20s %-21s %-8s %-10s %-8s %s\n", "INSTANCE", "ADDR",
	    "PID", "STATE", "RESTARTS", "PROBE");
	cJSON_ArrayForEach(in, a)
		print_instance(out, in);
}

// ---- the kubernetes runtime ---------------------------------------------

static void
print_kube(FILE *out, const cJSON *k)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(k, "evictions");
	const char *err = jstr(k, "last_error", NULL);

	fprintf(out, "kubernetes   %s: %.0f pods on the node, %.0f managed; "
	    "last list %s\n", TTY(jstr(k, "server", "?")), jnum(k, "pods", 0),
	    jnum(k, "managed", 0), TTY(jstr(k, "last_list", "never")));
	if (err != NULL)
		fprintf(out, "             last list error: %s\n", TTY(err));
	fprintf(out, "             evictions: %.0f evicted, %.0f deleted, "
	    "%.0f blocked by a PDB, %.0f gone, %.0f failed\n",
	    jnum(e, "evicted", 0), jnum(e, "deleted", 0), jnum(e, "blocked", 0),
	    jnum(e, "gone", 0), jnum(e, "failed", 0));
}

static void
kprobe_text(const cJSON *p, char *buf, size_t n)
{
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(p, "probe");
	const char *err;

	if (!cJSON_IsObject(pr)) {
		snprintf(buf, n, "-");
		return;
	}
	err = jstr(pr, "last_error", NULL);
	if (jtrue(pr, "ok"))
		snprintf(buf, n, "%s%s ok (%.0f ms)",
		    TTY(jstr(pr, "type", "?")), TTY(jstr(pr, "target", "")),
		    jnum(pr, "last_ms", 0));
	else if (err != NULL)
		snprintf(buf, n, "%s%s failed x%.0f: %s",
		    TTY(jstr(pr, "type", "?")), TTY(jstr(pr, "target", "")),
		    jnum(pr, "consecutive_failures", 0), TTY(err));
	else
		snprintf(buf, n, "%s%s not yet", TTY(jstr(pr, "type", "?")),
		    TTY(jstr(pr, "target", "")));
}

static void
print_pods(FILE *out, const cJSON *doc)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "pods"), *p;
	char probe[400], name[320];
	int other = 0;

	fprintf(out, "\npods (managed)\n  %-32s %-16s %-21s %-11s %s\n",
	    "NAMESPACE/POD", "SERVICE", "ADDR", "STATE", "PROBE");
	cJSON_ArrayForEach(p, a) {
		const char *last = jstr(p, "last_action", NULL);

		if (!jtrue(p, "managed")) {
			other++;
			continue;
		}
		kprobe_text(p, probe, sizeof(probe));
		snprintf(name, sizeof(name), "%s/%s", jstr(p, "namespace", "?"),
		    jstr(p, "name", "?"));
		fprintf(out, "  %-32s %-16s %-21s %-11s %s\n", TTY(name),
		    TTY(jstr(p, "service", "?")), TTY(jstr(p, "addr", "-")),
		    TTY(jstr(p, "state", "?")), probe);
		if (strcmp(jstr(p, "state", ""), "running") != 0)
			fprintf(out, "      %s\n", TTY(jstr(p, "ready_detail",
			    "")));
		if (last != NULL)
			fprintf(out, "      last action %s: %s\n",
			    TTY(jstr(p, "last_action_time", "?")), TTY(last));
	}
	if (other == 0)
		return;
	fprintf(out, "\nother pods on the node (not managed)\n");
	cJSON_ArrayForEach(p, a) {
		if (jtrue(p, "managed"))
			continue;
		snprintf(name, sizeof(name), "%s/%s", jstr(p, "namespace", "?"),
		    jstr(p, "name", "?"));
		fprintf(out, "  %-32s %-11s %s\n", TTY(name),
		    TTY(jstr(p, "state", "?")),
		    TTY(jstr(p, "unmanaged_reason", "")));
	}
}

// "2026-03-01T10:00:00.123Z" -> "10:00:00" (what fits a column).
static const char *
clock_of(const char *t, char *buf, size_t n)
{
	const char *tee = strchr(t, 'T');

	snprintf(buf, n, "%.8s", tee != NULL ? tee + 1 : t);
	return buf;
}

static void
print_actions(FILE *out, const cJSON *doc)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "actions");
	const cJSON *e;
	char tbuf[16];

	fprintf(out, "\nrecent actions (newest first, UTC)\n");
	if (cJSON_GetArraySize(a) == 0) {
		fprintf(out, "  none\n");
		return;
	}
	fprintf(out, "  %-8s %-13s %-20s %-17s %s\n", "TIME", "KIND",
	    "INSTANCE", "RESULT", "DETAIL");
	cJSON_ArrayForEach(e, a) {
		fprintf(out, "  %-8s %-13s %-20s %-17s %s\n",
		    clock_of(TTY(jstr(e, "time", "?")), tbuf, sizeof(tbuf)),
		    TTY(jstr(e, "kind", "?")), TTY(jstr(e, "instance", "?")),
		    TTY(jstr(e, "result", "?")), TTY(jstr(e, "detail", "")));
	}
}

int
agent_status_print(FILE *out, const char *json)
{
	cJSON *doc = cJSON_Parse(json);
	const cJSON *c, *svcs, *s, *kube;

	if (doc == NULL)
		return -EINVAL;
	c = cJSON_GetObjectItemCaseSensitive(doc, "coordinator");
	svcs = cJSON_GetObjectItemCaseSensitive(doc, "services");
	kube = cJSON_GetObjectItemCaseSensitive(doc, "kubernetes");
	if (!cJSON_IsObject(c) || (!cJSON_IsArray(svcs) &&
	    !(cJSON_IsObject(kube) && cJSON_IsArray(
	    cJSON_GetObjectItemCaseSensitive(doc, "pods"))))) {
		cJSON_Delete(doc);
		return -EINVAL;
	}
	fprintf(out, "node         %s (runtime %s)\n",
	    TTY(jstr(doc, "node", "?")), TTY(jstr(doc, "runtime", "?")));
	print_link(out, c, cJSON_GetObjectItemCaseSensitive(doc, "stats"));
	if (cJSON_IsArray(svcs)) {
		cJSON_ArrayForEach(s, svcs)
			print_service(out, s);
	} else {
		print_kube(out, kube);
		print_pods(out, doc);
	}
	print_actions(out, doc);
	cJSON_Delete(doc);
	return 0;
}

// ---- command line ----------------------------------------------------------

struct status_args {
	const char *config;
	const char *socket;
	bool json;
};

static int
parse_args(int argc, char **argv, struct status_args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
		if (c == 'c')
			a->config = optarg;
		else if (c == 's')
			a->socket = optarg;
		else if (c == 'j')
			a->json = true;
		else if (c == 'h')
			return 1;
		else
			return -EINVAL;
	}
	if (optind != argc || (a->config != NULL && a->socket != NULL))
		return -EINVAL;
	if (a->socket != NULL && (a->socket[0] == '\0' ||
	    strlen(a->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
		return -EINVAL;
	if (a->config != NULL && (a->config[0] == '\0' ||
	    strlen(a->config) >= 4096))
		return -EINVAL;
	return 0;
}

// Finds the socket path: -s, or status_socket from the config.
static int
socket_path(const struct status_args *a, char *buf, size_t n)
{
	struct agent_conf conf;
	char err[512];
	int rv;

	if (a->socket != NULL) {
		snprintf(buf, n, "%s", a->socket);
		return 0;
	}
	rv = agent_conf_load(&conf, a->config ? a->config :
	    AGENT_CONF_DEFAULT_PATH, err, sizeof(err));
	if (rv < 0) {
		// Without -c the file is only the default: say how to name
		// the agent's config or its socket instead.
		fprintf(stderr, "reflex-agent status: %s%s\n", err,
		    a->config == NULL ? " (give -c FILE or -s SOCKET)" : "");
		return rv;
	}
	snprintf(buf, n, "%s", conf.status_socket);
	agent_conf_free(&conf);
	return 0;
}

int
agent_status_main(int argc, char **argv)
{
	struct status_args a = { 0 };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *json = NULL;
	int rv;

	rv = parse_args(argc, argv, &a);
	if (rv != 0) {
		usage(rv > 0 ? stdout : stderr);
		return rv > 0 ? 0 : 2;
	}
	if (socket_path(&a, path, sizeof(path)) < 0 || ask(path, &json) < 0)
		return 1;
	if (a.json)
		printf("%s\n", json);
	else if (agent_status_print(stdout, json) < 0)
		rv = 1;
	if (rv != 0)
		fprintf(stderr, "reflex-agent status: the reply is not a "
		    "status document\n");
	free(json);
	return rv;
}
