// SPDX-License-Identifier: MIT
// fake-agents: simulates reflex agents for coordinator tests and
// benchmarks. Each simulated agent registers its workloads, heartbeats,
// and answers commands (ok, or failure with --fail), printing every
// command it receives as one JSON line on stdout:
//
//   {"node":"node-0","action":"restart","service":"svc-a","instance":"svc-a-0","action_id":3}
//
// usage: fake-agents --coordinator URL --port PORT [--count N]
//            --workload SERVICE:INSTANCE:ADDR... [--fail] [--delay-ms MS]
//            [--heartbeat-ms MS] [--node-prefix P] [--unhealthy]
// --unhealthy answers every "check" (verification) with ok=false, as an
// agent whose target stays broken after a restart.
// --permit SERVICE:INSTANCE (repeatable): once registered, agent 0 asks
// the coordinator for permission to restart each, printing
//   {"permit":"SERVICE/INSTANCE","ok":true,"code":0,"message":"..."}
// Agent i listens on tcp://127.0.0.1:(PORT+i) (PORT 0: a free port each)
// and hosts every --workload
// (with "{i}" in SERVICE, INSTANCE or ADDR replaced by i).
#include <errno.h>
#include <getopt.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_auth.h"
#include "cm_msg.h"
#include "cm_wire.h"

#define MAX_WL 64

struct fake {
	char node[CM_NAME_MAX];
	char url[CM_ADDR_MAX];
	nng_socket rep, req;
	nng_aio *aio;
	bool replying;
	nng_msg *pending; // reply held during --delay-ms (async sleep)
	struct cm_workload wl[MAX_WL];
	size_t n_wl;
	bool registered;
	uint64_t seq;
};

static struct fake *fakes;
static int count = 1, delay_ms, heartbeat_ms = 1000;
static bool fail, unhealthy;
static const char *permits[16];
static struct cm_auth *auth; // --secret FILE: seal and check every message
static bool replay_test;     // --replay: send the first register twice
static int n_permits, permits_done;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop;
static const char *coord_url; // --coordinator

static void
subst(char *dst, size_t n, const char *src, int i)
{
	const char *p = strstr(src, "{i}");

	if (p == NULL) {
		snprintf(dst, n, "%s", src);
		return;
	}
	snprintf(dst, n, "%.*s%d%s", (int)(p - src), src, i, p + 3);
}

static int
encode(const struct cm_msg *m, void **buf, size_t *len)
{
	struct cm_msg copy = *m;

	if (auth == NULL)
		return cm_msg_encode(m, buf, len);
	cm_auth_stamp(&copy);
	return cm_auth_encode(auth, &copy, buf, len);
}

static int
decode(struct cm_msg *m, const void *buf, size_t len, char *err, size_t n)
{
	if (auth == NULL)
		return cm_msg_decode(m, buf, len, err, n);
	return cm_auth_decode(auth, m, buf, len, err, n);
}

static int
send_msg(nng_socket s, const struct cm_msg *m)
{
	void *buf;
	size_t len;
	int rv = encode(m, &buf, &len);

	if (rv < 0)
		return rv;
	rv = nng_send(s, buf, len, 0);
	free(buf);
	return rv;
}

static void
on_cmd(void *arg)
{
	struct fake *f = arg;
	struct cm_msg m, r = { .version = CM_PROTO_VERSION, .type = CM_MSG_REPLY };
	char err[256];
	nng_msg *msg;
	int rv;

	if (f->pending != NULL) { // the delay passed: answer now
		nng_aio_set_msg(f->aio, f->pending);
		f->pending = NULL;
		f->replying = true;
		nng_send_aio(f->rep, f->aio);
		return;
	}
	if ((rv = nng_aio_result(f->aio)) != 0) {
		fprintf(stderr, "fake-agents: %s: %s\n", f->node,
		    nng_strerror(rv));
		if (rv == NNG_ECLOSED || atomic_load(&stop))
			return;
		if (f->replying) // a failed send leaves its message with us
			nng_msg_free(nng_aio_get_msg(f->aio));
		f->replying = false;
		nng_recv_aio(f->rep, f->aio); // serve the next request
		return;
	}
	if (f->replying) { // a reply went out; wait for the next request
		f->replying = false;
		nng_recv_aio(f->rep, f->aio);
		return;
	}
	msg = nng_aio_get_msg(f->aio);
	rv = decode(&m, nng_msg_body(msg), nng_msg_len(msg), err,
	    sizeof(err));
	nng_msg_free(msg);
	if (rv < 0) {
		pthread_mutex_lock(&out_mu);
		printf("{\"rejected\":%d}\n", rv);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
	}
	if (rv == 0 && m.type == CM_MSG_COMMAND) {
		pthread_mutex_lock(&out_mu);
		printf("{\"node\":\"%s\",\"action\":\"%s\",\"service\":\"%s\","
		    "\"instance\":\"%s\",\"action_id\":%llu}\n", f->node,
		    m.u.cmd.action, m.u.cmd.service, m.u.cmd.instance,
		    (unsigned long long)m.u.cmd.action_id);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
		r.id = m.id;
		bool bad = fail || (unhealthy &&
		    strcmp(m.u.cmd.action, "check") == 0);

		r.u.reply.ok = !bad;
		r.u.reply.code = bad ? -EIO : 0;
		snprintf(r.u.reply.message, sizeof(r.u.reply.message), "%s %s/%s %s",
		    m.u.cmd.action, m.u.cmd.service, m.u.cmd.instance,
		    bad ? "failed (simulated)" : "done (simulated)");
	} else {
		r.u.reply.ok = false;
		r.u.reply.code = rv < 0 ? rv : -EPROTO;
		snprintf(r.u.reply.message, sizeof(r.u.reply.message), "%s",
		    rv < 0 ? err : "not a command");
	}
	if (rv == 0)
		cm_msg_clear(&m);
	{
		void *buf;
		size_t len;

		if (encode(&r, &buf, &len) < 0 ||
		    nng_msg_alloc(&msg, 0) != 0) {
			nng_recv_aio(f->rep, f->aio);
			return;
		}
		nng_msg_append(msg, buf, len);
		free(buf);
	}
	if (delay_ms > 0) { // never block nng's callback thread
		f->pending = msg;
		nng_sleep_aio((nng_duration)delay_ms, f->aio);
		return;
	}
	f->replying = true;
	nng_aio_set_msg(f->aio, msg);
	nng_send_aio(f->rep, f->aio);
}

// Opens f's req socket to the coordinator and starts dialing it.
static int
req_open(struct fake *f, const char *coord)
{
	int rv = nng_req0_open(&f->req);

	if (rv != 0)
		return rv;
	nng_socket_set_ms(f->req, NNG_OPT_SENDTIMEO, 1000);
	nng_socket_set_ms(f->req, NNG_OPT_RECVTIMEO, 1000);
	return nng_dial(f->req, coord, NULL, NNG_FLAG_NONBLOCK);
}

// An exchange got no answer: a new socket, dialing at once, as
// reflex-agent does (agent_link.c), rather than leaning on libnng's
// redial of a connection that broke with a request in flight.
static void
req_reopen(struct fake *f)
{
	// Bounded: libnng 1.5.2 can hang in nng_close for good (cm_wire.h),
	// which left this process stuck, never registering again, when a
	// coordinator it talked to was killed.
	(void)cm_wire_close(f->req, CM_WIRE_CLOSE_WAIT_MS);
	if (req_open(f, coord_url) != 0)
		fprintf(stderr, "fake-agents: %s: cannot reopen its socket\n",
		    f->node);
}

static bool
exchange(struct fake *f, const struct cm_msg *m, struct cm_msg *reply)
{
	char err[256];
	void *buf = NULL;
	size_t len;

	if (send_msg(f->req, m) != 0 ||
	    nng_recv(f->req, &buf, &len, NNG_FLAG_ALLOC) != 0) {
		req_reopen(f);
		return false;
	}
	if (decode(reply, buf, len, err, sizeof(err)) < 0) {
		nng_free(buf, len);
		return false;
	}
	nng_free(buf, len);
	return true;
}

// Sends one sealed register frame twice, byte for byte, and prints what
// each copy got: the second is a replay.
static void
replay(struct fake *f, const struct cm_msg *m)
{
	void *frame, *buf = NULL;
	size_t flen, len;
	char err[256];

	replay_test = false;
	if (encode(m, &frame, &flen) < 0)
		return;
	for (int k = 0; k < 2; k++) {
		struct cm_msg r;
		const char *what = "no answer";

		if (nng_send(f->req, frame, flen, 0) == 0 &&
		    nng_recv(f->req, &buf, &len, NNG_FLAG_ALLOC) == 0) {
			if (decode(&r, buf, len, err, sizeof(err)) == 0) {
				what = r.type == CM_MSG_REPLY && r.u.reply.ok ?
				    "accepted" : r.type == CM_MSG_ERROR ?
				    "refused" : "not ok";
				if (k == 0 && r.type == CM_MSG_REPLY)
					f->registered = r.u.reply.ok;
				cm_msg_clear(&r);
			} else {
				what = "undecodable answer";
			}
			nng_free(buf, len);
		}
		pthread_mutex_lock(&out_mu);
		printf("{\"replay\":%d,\"result\":\"%s\"}\n", k, what);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
	}
	free(frame);
}

static void
beat(struct fake *f)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION, .id = ++f->seq }, r;

	if (!f->registered) {
		m.type = CM_MSG_REGISTER;
		snprintf(m.u.reg.node, sizeof(m.u.reg.node), "%s", f->node);
		snprintf(m.u.reg.addr, sizeof(m.u.reg.addr), "%s", f->url);
		snprintf(m.u.reg.runtime, sizeof(m.u.reg.runtime), "process");
		m.u.reg.workloads = f->wl;
		m.u.reg.n_workloads = f->n_wl;
	} else {
		m.type = CM_MSG_HEARTBEAT;
		snprintf(m.u.hb.node, sizeof(m.u.hb.node), "%s", f->node);
		m.u.hb.seq = f->seq;
	}
	if (replay_test && m.type == CM_MSG_REGISTER) {
		replay(f, &m);
		return;
	}
	if (!exchange(f, &m, &r))
		return;
	if (r.type == CM_MSG_REPLY)
		f->registered = r.u.reply.ok;
	cm_msg_clear(&r);
}

static void
ask_permits(struct fake *f)
{
	for (; permits_done < n_permits; permits_done++) {
		struct cm_msg m = { .version = CM_PROTO_VERSION,
			.type = CM_MSG_PERMIT, .id = ++f->seq }, r;
		char tmp[2 * CM_NAME_MAX], *inst;

		snprintf(tmp, sizeof(tmp), "%s", permits[permits_done]);
		inst = strchr(tmp, ':');
		if (inst == NULL)
			continue;
		*inst++ = '\0';
		snprintf(m.u.permit.node, sizeof(m.u.permit.node), "%s", f->node);
		snprintf(m.u.permit.service, sizeof(m.u.permit.service), "%s", tmp);
		snprintf(m.u.permit.instance, sizeof(m.u.permit.instance), "%s",
		    inst);
		snprintf(m.u.permit.reason, sizeof(m.u.permit.reason),
		    "probe failed 3 times (simulated)");
		if (!exchange(f, &m, &r))
			return; // asked again at the next beat
		pthread_mutex_lock(&out_mu);
		printf("{\"permit\":\"%s/%s\",\"ok\":%s,\"code\":%d,"
		    "\"message\":\"%s\"}\n", tmp, inst,
		    r.type == CM_MSG_REPLY && r.u.reply.ok ? "true" : "false",
		    r.type == CM_MSG_REPLY ? r.u.reply.code : -1,
		    r.type == CM_MSG_REPLY ? "reply" : "error");
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
		cm_msg_clear(&r);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, true);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "coordinator", required_argument, NULL, 'c' },
		{ "port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "workload", required_argument, NULL, 'w' },
		{ "fail", no_argument, NULL, 'f' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "heartbeat-ms", required_argument, NULL, 'b' },
		{ "node-prefix", required_argument, NULL, 'P' },
		{ "unhealthy", no_argument, NULL, 'u' },
		{ "permit", required_argument, NULL, 'q' },
		{ "secret", required_argument, NULL, 's' },
		{ "replay", no_argument, NULL, 'r' },
		{ 0 },
	};
	const char *coord = NULL, *prefix = "node-", *wls[MAX_WL];
	int port = 0, opt, n_wls = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': coord = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		case 'w':
			if (n_wls < MAX_WL)
				wls[n_wls++] = optarg;
			break;
		case 'f': fail = true; break;
		case 'd': delay_ms = atoi(optarg); break;
		case 'b': heartbeat_ms = atoi(optarg); break;
		case 'P': prefix = optarg; break;
		case 'u': unhealthy = true; break;
		case 's': {
			char err[256];

			if (cm_auth_new(&auth, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "fake-agents: %s\n", err);
				return 2;
			}
			break;
		}
		case 'r': replay_test = true; break;
		case 'q':
			if (n_permits < 16)
				permits[n_permits++] = optarg;
			break;
		default: return 2;
		}
	}
	if (coord == NULL || port < 0 || count < 1 || count > 20000 ||
	    heartbeat_ms < 10) {
		fprintf(stderr, "fake-agents: need --coordinator and --port\n");
		return 2;
	}
	coord_url = coord;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	fakes = calloc((size_t)count, sizeof(*fakes));
	for (int i = 0; i < count; i++) {
		struct fake *f = &fakes[i];

		snprintf(f->node, sizeof(f->node), "%s%d", prefix, i);
		snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d",
		    port > 0 ? port + i : 0);
		for (int k = 0; k < n_wls; k++) {
			char tmp[3 * CM_ADDR_MAX], *svc = tmp, *inst, *addr;

			subst(tmp, sizeof(tmp), wls[k], i);
			inst = strchr(svc, ':');
			addr = inst ? strchr(inst + 1, ':') : NULL;
			if (inst == NULL || addr == NULL) {
				fprintf(stderr, "fake-agents: --workload S:I:ADDR\n");
				return 2;
			}
			*inst++ = '\0';
			*addr++ = '\0';
			snprintf(f->wl[k].service, CM_NAME_MAX, "%s", svc);
			snprintf(f->wl[k].instance, CM_NAME_MAX, "%s", inst);
			snprintf(f->wl[k].addr, CM_ADDR_MAX, "%s", addr);
			f->wl[k].healthy = true;
		}
		f->n_wl = (size_t)n_wls;
		nng_listener l;
		nng_sockaddr sa;

		if (nng_rep0_open(&f->rep) != 0 ||
		    nng_listen(f->rep, f->url, &l, 0) != 0 ||
		    nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) != 0 ||
		    nng_aio_alloc(&f->aio, on_cmd, f) != 0 ||
		    req_open(f, coord) != 0) {
			fprintf(stderr, "fake-agents: cannot listen on %s\n", f->url);
			return 1;
		}
		// The port actually bound (for port 0), in network order.
		snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%u",
		    (unsigned)(((sa.s_in.sa_port & 0xff) << 8) |
		    (sa.s_in.sa_port >> 8)));
		nng_recv_aio(f->rep, f->aio);
	}
	fprintf(stderr, "fake-agents: %d agents up\n", count);
	while (!atomic_load(&stop)) {
		for (int i = 0; i < count && !atomic_load(&stop); i++)
			beat(&fakes[i]);
		if (fakes[0].registered)
			ask_permits(&fakes[0]);
		for (int t = 0; t < heartbeat_ms && !atomic_load(&stop); t += 10)
			nng_msleep(10);
	}
	bool all_closed = true;
	for (int i = 0; i < count; i++) {
		// A socket left open may still run its aio's callback, which
		// reaches its fake: those stay (the process ends anyway).
		if (cm_wire_close(fakes[i].rep, CM_WIRE_CLOSE_WAIT_MS) ==
		    CM_WIRE_CLOSED)
			nng_aio_free(fakes[i].aio);
		else
			all_closed = false;
		(void)cm_wire_close(fakes[i].req, CM_WIRE_CLOSE_WAIT_MS);
	}
	if (all_closed)
		free(fakes);
	cm_auth_free(auth);
	return 0;
}
