// SPDX-License-Identifier: MIT
// The agent channel's stop while agents keep sending (coord_agents_stop,
// cm_wire_close). libnng 1.5.2 can hang in nng_close for good when a
// peer's message arrives as the socket closes (about one stop in ten
// here); the stop must return anyway, leaving that close behind. Once a
// close has hung, libnng's reaper is stuck for the whole process, so
// this case has a binary of its own and ends at the first hang.
#include <dirent.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "cm_log.h"
#include "chan_peer.h"
#include "cm_wire.h"
#include "coord_agents.h"
#include "tt.h"

#define PEERS 4

static char dir[64];

// An agent that registers, then heartbeats as fast as it is answered.
struct peer {
	pthread_t th;
	const char *url;
	atomic_bool *stop;
	int answered;
};

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	struct cm_workload w = { .healthy = true };
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_REGISTER, .id = 1 };
	char node[32];
	nng_socket s;

	snprintf(node, sizeof(node), "peer-%p", (void *)p);
	nng_req0_open(&s);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 200);
	nng_dial(s, p->url, NULL, 0);
	snprintf(m.u.reg.node, sizeof(m.u.reg.node), "%s", node);
	snprintf(m.u.reg.addr, sizeof(m.u.reg.addr), "ipc://%s/agent.cmd",
	    dir);
	snprintf(m.u.reg.runtime, sizeof(m.u.reg.runtime), "process");
	snprintf(w.service, sizeof(w.service), "web");
	snprintf(w.instance, sizeof(w.instance), "%s", node);
	snprintf(w.addr, sizeof(w.addr), "127.0.0.1:9");
	m.u.reg.workloads = &w;
	m.u.reg.n_workloads = 1;
	p->answered += chan_ok(s, &m) == 0;
	for (uint64_t id = 2; !atomic_load(p->stop); id++) {
		struct cm_msg hb = { .version = CM_PROTO_VERSION,
			.type = CM_MSG_HEARTBEAT, .id = id };

		snprintf(hb.u.hb.node, sizeof(hb.u.hb.node), "%s", node);
		hb.u.hb.seq = id;
		p->answered += chan_ok(s, &hb) == 0;
	}
	(void)cm_wire_close(s, CM_WIRE_CLOSE_WAIT_MS);
	return NULL;
}

// True once a close has been left behind in this process: a fresh
// socket's close is then not even tried.
static bool
wedged(void)
{
	nng_socket s;

	if (nng_req0_open(&s) != 0)
		return false;
	return cm_wire_close(s, CM_WIRE_CLOSE_WAIT_MS) == CM_WIRE_SKIPPED;
}

// Rounds of: the channel up, PEERS agents heartbeating, a stop in the
// middle of it. Every stop returns (a hang fails the test by its
// timeout), with or without libnng's close hang on the way.
static void
test_stop_while_agents_send(void)
{
	const char *env = getenv("REFLEX_STOP_ROUNDS");
	int rounds = env != NULL ? atoi(env) : 60, r, answered = 0;
	char url[128], cmd_url[128];
	nng_socket agent;

	// The peers' command address exists (the channel dials it).
	snprintf(cmd_url, sizeof(cmd_url), "ipc://%s/agent.cmd", dir);
	CHECK(nng_rep0_open(&agent) == 0);
	CHECK(nng_listen(agent, cmd_url, NULL, 0) == 0);
	snprintf(url, sizeof(url), "ipc://%s/coord.ipc", dir);
	for (r = 0; r < rounds && !wedged(); r++) {
		struct peer peers[PEERS] = { { 0 } };
		struct coord_agents *a = NULL;
		char err[256] = "";
		atomic_bool stop = false;

		if (coord_agents_start(&a, url, 60000, NULL, err,
		    sizeof(err)) != 0) {
			printf("# start: %s\n", err);
			CHECK(false);
			return;
		}
		for (int i = 0; i < PEERS; i++) {
			peers[i].url = url;
			peers[i].stop = &stop;
			pthread_create(&peers[i].th, NULL, peer_main, &peers[i]);
		}
		nng_msleep(20 + (unsigned)r % 30);
		coord_agents_stop(a);
		atomic_store(&stop, true);
		for (int i = 0; i < PEERS; i++) {
			pthread_join(peers[i].th, NULL);
			answered += peers[i].answered;
		}
	}
	printf("# %d round(s), %d answers before the stops; libnng's close "
	    "hang %s\n", r, answered, wedged() ? "occurred (left behind)" :
	    "did not occur");
	CHECK(r > 0);
	CHECK(answered > 0);
	(void)cm_wire_close(agent, CM_WIRE_CLOSE_WAIT_MS);
}

static const struct tt_case cases[] = {
	{ "stop while agents send", test_stop_while_agents_send },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (getenv("TEST_DEBUG") == NULL)
		cm_log_set_level(CM_LOG_WARN);
	return tt_run_in_dir(cases, argc, argv, dir, sizeof(dir),
	    "/tmp/reflex-stop-XXXXXX");
}
