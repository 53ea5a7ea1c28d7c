// SPDX-License-Identifier: MIT
// cmd-rtt: drives the coordinator's own command channel (coord_agents.c,
// linked from the release build, unchanged) against real or simulated
// agents, without the HTTP intake, the engine and the journal in the way.
//
//   rtt:    one command at a time to one node: round-trip latency.
//   load:   CONTEXTS commands in flight to one node for SECONDS:
//           commands per second.
//   fanout: one command to each of N registered nodes, all at once: when
//           each ack arrived, counted from the first send.
//   repl:   rtt and load on request (lines "rtt N" / "load S" on stdin),
//           so that they can alternate with the floor's measurements.
//
// usage: cmd-rtt rtt|load|fanout|repl --listen NNG_URL --service S
//            [--instance I] [--action A] [--nodes N] [--count N]
//            [--contexts N] [--seconds S] [--wait-s S]
// The agents register at --listen. Prints one JSON object on stdout.
#include <getopt.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "cm_log.h"
#include "coord_agents.h"

#define MAX_SAMPLES 4000000
#define CMD_TIMEOUT_MS 5000

struct opts {
	const char *listen, *service, *instance, *action;
	int nodes, count, contexts, wait_s;
	double seconds;
};

static struct coord_agents *ag;
static struct opts o = {
	.service = "bench", .instance = "", .action = "reload_config",
	.nodes = 1, .count = 3000, .contexts = 64, .seconds = 3, .wait_s = 60,
};

// ---- completion bookkeeping ------------------------------------------------

struct slot {
	int64_t t0;
	bool busy; // a command is in flight on this slot
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int64_t *lat;
static atomic_long n_done, n_fail, n_sent;
static atomic_int in_flight;
static int64_t deadline;
static char first_error[CM_TEXT_MAX];

// Starts a measurement from zero.
static void
reset_counters(void)
{
	atomic_store(&n_done, 0);
	atomic_store(&n_fail, 0);
	atomic_store(&n_sent, 0);
	pthread_mutex_lock(&mu);
	first_error[0] = '\0';
	pthread_mutex_unlock(&mu);
}

static void
note_failure(int rv, const struct cm_msg_reply *r)
{
	atomic_fetch_add(&n_fail, 1);
	pthread_mutex_lock(&mu);
	if (first_error[0] == '\0')
		snprintf(first_error, sizeof(first_error), "%s",
		    r != NULL ? r->message : strerror(-rv));
	pthread_mutex_unlock(&mu);
}

static void
fill(struct cm_msg_command *c, uint64_t id)
{
	memset(c, 0, sizeof(*c));
	c->action_id = id;
	snprintf(c->action, sizeof(c->action), "%s", o.action);
	snprintf(c->service, sizeof(c->service), "%s", o.service);
	snprintf(c->instance, sizeof(c->instance), "%s", o.instance);
	snprintf(c->reason, sizeof(c->reason), "benchmark command %llu",
	    (unsigned long long)id);
	c->timeout_ms = CMD_TIMEOUT_MS;
}

static void
one_done(int rv, const struct cm_msg_reply *r, void *arg)
{
	struct slot *s = arg;
	int64_t now = bench_now_ns();
	long k;

	if (rv != 0 || r == NULL || !r->ok)
		note_failure(rv, r);
	k = atomic_fetch_add(&n_done, 1);
	if (k < MAX_SAMPLES)
		lat[k] = now - s->t0;
	pthread_mutex_lock(&mu);
	s->busy = false;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

// ---- rtt -------------------------------------------------------------------

static int
send_to(const char *node, struct slot *s, uint64_t id,
    coord_agents_done_fn fn)
{
	struct cm_msg_command c;

	fill(&c, id);
	s->t0 = bench_now_ns();
	atomic_fetch_add(&n_sent, 1);
	return coord_agents_command(ag, node, &c, CMD_TIMEOUT_MS, fn, s);
}

static int
run_rtt(const char *node)
{
	struct slot s;

	for (int i = -200; i < o.count; i++) { // 200 warm-up commands
		int rv;

		if (i == 0)
			reset_counters();
		s.busy = true;
		rv = send_to(node, &s, (uint64_t)(i + 1000), one_done);
		if (rv < 0) {
			fprintf(stderr, "cmd-rtt: command: %s\n",
			    strerror(-rv));
			return 1;
		}
		pthread_mutex_lock(&mu);
		while (s.busy)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	}
	printf("{\"mode\":\"rtt\",\"failures\":%ld,\"first_error\":\"%s\",",
	    atomic_load(&n_fail), first_error);
	bench_print_dist(stdout, "rtt", lat, (size_t)atomic_load(&n_done));
	printf("}\n");
	return 0;
}

// ---- load ------------------------------------------------------------------

static const char *load_node;

static void
load_done(int rv, const struct cm_msg_reply *r, void *arg)
{
	struct slot *s = arg;
	int64_t now = bench_now_ns();
	long k;

	if (rv != 0 || r == NULL || !r->ok)
		note_failure(rv, r);
	k = atomic_fetch_add(&n_done, 1);
	if (k < MAX_SAMPLES)
		lat[k] = now - s->t0;
	// Called on an nng thread: the next command goes out from here.
	if (now < deadline &&
	    send_to(load_node, s, (uint64_t)atomic_load(&n_sent) + 1,
	    load_done) == 0)
		return;
	atomic_fetch_sub(&in_flight, 1);
}

static int
run_load(const char *node)
{
	struct slot *slots = calloc((size_t)o.contexts, sizeof(*slots));
	int64_t t0, t1;
	long n;

	if (slots == NULL)
		return 1;
	reset_counters();
	load_node = node;
	t0 = bench_now_ns();
	deadline = t0 + (int64_t)(o.seconds * 1e9);
	atomic_store(&in_flight, o.contexts);
	for (int i = 0; i < o.contexts; i++) {
		if (send_to(node, &slots[i], (uint64_t)i + 1, load_done) < 0)
			atomic_fetch_sub(&in_flight, 1);
	}
	while (atomic_load(&in_flight) > 0)
		nng_msleep(2);
	t1 = bench_now_ns();
	n = atomic_load(&n_done);
	printf("{\"mode\":\"load\",\"contexts\":%d,\"done\":%ld,"
	    "\"failures\":%ld,\"first_error\":\"%s\",\"seconds\":%.3f,"
	    "\"rate\":%.1f,",
	    o.contexts, n, atomic_load(&n_fail), first_error, (t1 - t0) / 1e9,
	    n / ((t1 - t0) / 1e9));
	bench_print_dist(stdout, "latency", lat,
	    (size_t)(n < MAX_SAMPLES ? n : MAX_SAMPLES));
	printf("}\n");
	free(slots);
	return 0;
}

// ---- fanout ----------------------------------------------------------------

static int64_t fan_t0;

static void
fan_done(int rv, const struct cm_msg_reply *r, void *arg)
{
	long k;

	(void)arg;
	if (rv != 0 || r == NULL || !r->ok)
		note_failure(rv, r);
	k = atomic_fetch_add(&n_done, 1);
	if (k < MAX_SAMPLES)
		lat[k] = bench_now_ns() - fan_t0;
	pthread_mutex_lock(&mu);
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int
run_fanout(void)
{
	struct cm_msg_command c;
	char node[CM_NAME_MAX];
	int64_t send_ns;
	int refused = 0;

	fan_t0 = bench_now_ns();
	for (int i = 0; i < o.nodes; i++) {
		snprintf(node, sizeof(node), "node-%d", i);
		fill(&c, (uint64_t)i + 1);
		if (coord_agents_command(ag, node, &c, CMD_TIMEOUT_MS, fan_done,
		    NULL) < 0)
			refused++;
	}
	send_ns = bench_now_ns() - fan_t0;
	pthread_mutex_lock(&mu);
	while (atomic_load(&n_done) < o.nodes - refused) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_cond_timedwait(&cv, &mu, &ts) != 0 &&
		    bench_now_ns() - fan_t0 > 2LL * CMD_TIMEOUT_MS * 1000000)
			break;
	}
	pthread_mutex_unlock(&mu);
	printf("{\"mode\":\"fanout\",\"nodes\":%d,\"refused\":%d,\"acked\":%ld,"
	    "\"failures\":%ld,\"first_error\":\"%s\",\"send_loop_us\":%.1f,",
	    o.nodes, refused, atomic_load(&n_done), atomic_load(&n_fail),
	    first_error, send_ns / 1e3);
	bench_print_dist(stdout, "ack_at", lat, (size_t)atomic_load(&n_done));
	printf("}\n");
	return 0;
}

// ---- repl: measurements on request, interleaved with the floor's ----------

// Reads "rtt COUNT" or "load SECONDS" lines from stdin and answers each
// with one JSON line, so that the caller can alternate reflex and floor
// measurements while the agent stays registered.
static int
run_repl(const char *node)
{
	char line[128];

	printf("{\"mode\":\"ready\"}\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char what[16];
		double arg;
		int rv;

		if (sscanf(line, "%15s %lf", what, &arg) != 2 || arg <= 0) {
			printf("{\"mode\":\"error\"}\n");
		} else if (strcmp(what, "rtt") == 0) {
			o.count = (int)arg;
			rv = run_rtt(node);
			if (rv != 0)
				return rv;
		} else if (strcmp(what, "load") == 0) {
			o.seconds = arg;
			rv = run_load(node);
			if (rv != 0)
				return rv;
		} else {
			printf("{\"mode\":\"error\"}\n");
		}
		fflush(stdout);
	}
	return 0;
}

// ---- main ------------------------------------------------------------------

static bool
wait_registered(int want)
{
	int64_t reg = 0, lost = 0, end = bench_now_ns() +
	    (int64_t)o.wait_s * 1000000000LL;

	while (bench_now_ns() < end) {
		coord_agents_counts(ag, &reg, &lost);
		if (reg >= want)
			return true;
		nng_msleep(20);
	}
	fprintf(stderr, "cmd-rtt: %lld of %d agents registered after %d s\n",
	    (long long)reg, want, o.wait_s);
	return false;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "service", required_argument, NULL, 's' },
		{ "instance", required_argument, NULL, 'i' },
		{ "action", required_argument, NULL, 'a' },
		{ "nodes", required_argument, NULL, 'N' },
		{ "count", required_argument, NULL, 'n' },
		{ "contexts", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "wait-s", required_argument, NULL, 'w' },
		{ "node", required_argument, NULL, 'o' },
		{ 0 },
	};
	const char *mode, *node = "node-0";
	char err[256];
	int opt, rv = 2;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': o.listen = optarg; break;
		case 's': o.service = optarg; break;
		case 'i': o.instance = optarg; break;
		case 'a': o.action = optarg; break;
		case 'N': o.nodes = atoi(optarg); break;
		case 'n': o.count = atoi(optarg); break;
		case 'c': o.contexts = atoi(optarg); break;
		case 'S': o.seconds = atof(optarg); break;
		case 'w': o.wait_s = atoi(optarg); break;
		case 'o': node = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || o.listen == NULL ||
	    !bench_loopback_url(o.listen) || o.nodes < 1 || o.count < 1 ||
	    o.contexts < 1) {
		fprintf(stderr, "usage: cmd-rtt rtt|load|fanout --listen URL "
		    "[options]\n");
		return 2;
	}
	mode = argv[optind];
	cm_log_set_component("cmd-rtt");
	cm_log_set_level(CM_LOG_WARN);
	lat = calloc(MAX_SAMPLES, sizeof(*lat));
	if (lat == NULL)
		return 1;
	// Unauthenticated channel (no agent_secret_file), as the
	// coordinator runs in the other benchmarks.
	if (coord_agents_start(&ag, o.listen, 3600 * 1000, NULL, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "cmd-rtt: %s\n", err);
		return 1;
	}
	if (wait_registered(strcmp(mode, "fanout") == 0 ? o.nodes : 1)) {
		nng_msleep(200); // let the command connections come up
		if (strcmp(mode, "rtt") == 0)
			rv = run_rtt(node);
		else if (strcmp(mode, "load") == 0)
			rv = run_load(node);
		else if (strcmp(mode, "fanout") == 0)
			rv = run_fanout();
		else if (strcmp(mode, "repl") == 0)
			rv = run_repl(node);
		else
			fprintf(stderr, "cmd-rtt: unknown mode %s\n", mode);
	} else {
		rv = 1;
	}
	fflush(stdout);
	coord_agents_stop(ag);
	free(lat);
	return rv;
}
