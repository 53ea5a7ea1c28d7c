// SPDX-License-Identifier: MIT
// floor-nng: the nng req/rep floor. An echo server on rep contexts, and
// two clients: one request at a time (round-trip latency), and many
// contexts of one req socket kept busy (requests per second). Messages
// are opaque bytes of a command's size; nothing is encoded or decoded.
//
// usage: floor-nng serve URL [--contexts N]
//        floor-nng rtt URL [--count N] [--size BYTES]
//        floor-nng load URL [--contexts N] [--seconds S] [--size BYTES]
// The clients print one JSON object on stdout.
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

#include "bench_common.h"

#define MAX_CTX 1024
#define MAX_SAMPLES 4000000

struct echo {
	nng_ctx ctx;
	nng_aio *aio;
	bool sending;
};

static void
echo_cb(void *arg)
{
	struct echo *e = arg;

	if (nng_aio_result(e->aio) != 0) {
		if (e->sending) // the message is still ours
			nng_msg_free(nng_aio_get_msg(e->aio));
		if (nng_aio_result(e->aio) == NNG_ECLOSED)
			return;
		e->sending = false;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (e->sending) {
		e->sending = false;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	e->sending = true; // the request goes back unchanged
	nng_ctx_send(e->ctx, e->aio);
}

static int
serve(const char *url, int contexts)
{
	static struct echo e[MAX_CTX];
	nng_socket s;
	sigset_t set;
	int rv, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rv = nng_rep0_open(&s);
	if (rv == 0)
		rv = nng_listen(s, url, NULL, 0);
	for (int i = 0; rv == 0 && i < contexts; i++) {
		rv = nng_ctx_open(&e[i].ctx, s);
		if (rv == 0)
			rv = nng_aio_alloc(&e[i].aio, echo_cb, &e[i]);
		if (rv == 0)
			nng_ctx_recv(e[i].ctx, e[i].aio);
	}
	if (rv != 0) {
		fprintf(stderr, "floor-nng: serve %s: %s\n", url,
		    nng_strerror(rv));
		return 1;
	}
	fprintf(stderr, "floor-nng: echo on %s with %d contexts\n", url,
	    contexts);
	sigwait(&set, &sig);
	nng_close(s);
	return 0;
}

static int
dial(nng_socket *s, const char *url)
{
	int rv = nng_req0_open(s);

	if (rv == 0)
		rv = nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME,
		    NNG_DURATION_INFINITE);
	if (rv == 0)
		rv = nng_dial(*s, url, NULL, 0);
	if (rv != 0)
		fprintf(stderr, "floor-nng: dial %s: %s\n", url,
		    nng_strerror(rv));
	return rv;
}

static int
rtt(const char *url, int count, size_t size)
{
	int64_t *lat = calloc((size_t)count, sizeof(*lat));
	char *payload = calloc(1, size);
	int64_t t0, total;
	nng_socket s;
	int rv;

	if (lat == NULL || payload == NULL || dial(&s, url) != 0)
		return 1;
	memset(payload, 'x', size);
	for (int i = -200; i < count; i++) { // 200 warm-up exchanges
		nng_msg *m;

		t0 = bench_now_ns();
		rv = nng_msg_alloc(&m, 0);
		if (rv == 0)
			rv = nng_msg_append(m, payload, size);
		if (rv == 0)
			rv = nng_sendmsg(s, m, 0);
		if (rv == 0)
			rv = nng_recvmsg(s, &m, 0);
		if (rv != 0) {
			fprintf(stderr, "floor-nng: rtt: %s\n",
			    nng_strerror(rv));
			return 1;
		}
		nng_msg_free(m);
		if (i >= 0)
			lat[i] = bench_now_ns() - t0;
	}
	total = 0;
	for (int i = 0; i < count; i++)
		total += lat[i];
	printf("{\"mode\":\"rtt\",\"rate\":%.1f,", count / (total / 1e9));
	bench_print_dist(stdout, "rtt", lat, (size_t)count);
	printf("}\n");
	nng_close(s);
	free(lat);
	free(payload);
	return 0;
}

struct loader {
	nng_ctx ctx;
	nng_aio *aio;
	bool sent;
	int64_t t0;
};

static char *load_payload;
static size_t load_size;
static int64_t load_deadline;
static int64_t *load_lat;
static atomic_long load_done, load_errors;
static atomic_int load_active;

static void
load_send(struct loader *l)
{
	nng_msg *m;

	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, load_payload, load_size) != 0) {
		atomic_fetch_sub(&load_active, 1);
		return;
	}
	l->sent = false;
	l->t0 = bench_now_ns();
	nng_aio_set_msg(l->aio, m);
	nng_ctx_send(l->ctx, l->aio);
}

static void
load_cb(void *arg)
{
	struct loader *l = arg;
	int64_t now;
	long k;

	if (nng_aio_result(l->aio) != 0) {
		if (!l->sent)
			nng_msg_free(nng_aio_get_msg(l->aio));
		atomic_fetch_add(&load_errors, 1);
		atomic_fetch_sub(&load_active, 1);
		return;
	}
	if (!l->sent) {
		l->sent = true;
		nng_ctx_recv(l->ctx, l->aio);
		return;
	}
	nng_msg_free(nng_aio_get_msg(l->aio));
	now = bench_now_ns();
	k = atomic_fetch_add(&load_done, 1);
	if (k < MAX_SAMPLES)
		load_lat[k] = now - l->t0;
	if (now >= load_deadline) {
		atomic_fetch_sub(&load_active, 1);
		return;
	}
	load_send(l);
}

static int
load(const char *url, int contexts, double seconds, size_t size)
{
	static struct loader l[MAX_CTX];
	int64_t t0, t1;
	nng_socket s;
	long n;

	load_payload = calloc(1, size);
	load_lat = calloc(MAX_SAMPLES, sizeof(*load_lat));
	if (load_payload == NULL || load_lat == NULL || dial(&s, url) != 0)
		return 1;
	memset(load_payload, 'x', size);
	load_size = size;
	for (int i = 0; i < contexts; i++) {
		if (nng_ctx_open(&l[i].ctx, s) != 0 ||
		    nng_aio_alloc(&l[i].aio, load_cb, &l[i]) != 0)
			return 1;
	}
	t0 = bench_now_ns();
	load_deadline = t0 + (int64_t)(seconds * 1e9);
	atomic_store(&load_active, contexts);
	for (int i = 0; i < contexts; i++)
		load_send(&l[i]);
	while (atomic_load(&load_active) > 0)
		nng_msleep(5);
	t1 = bench_now_ns();
	n = atomic_load(&load_done);
	printf("{\"mode\":\"load\",\"contexts\":%d,\"done\":%ld,\"errors\":%ld,"
	    "\"seconds\":%.3f,\"rate\":%.1f,", contexts, n,
	    atomic_load(&load_errors), (t1 - t0) / 1e9, n / ((t1 - t0) / 1e9));
	bench_print_dist(stdout, "latency", load_lat,
	    (size_t)(n < MAX_SAMPLES ? n : MAX_SAMPLES));
	printf("}\n");
	for (int i = 0; i < contexts; i++) {
		nng_aio_free(l[i].aio);
		nng_ctx_close(l[i].ctx);
	}
	nng_close(s);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "contexts", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'z' },
		{ 0 },
	};
	int contexts = 64, count = 5000, opt;
	double seconds = 3;
	size_t size = 256;
	const char *mode, *url;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': contexts = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'z': size = (size_t)atol(optarg); break;
		default: return 2;
		}
	}
	if (argc - optind != 2 || contexts < 1 || contexts > MAX_CTX ||
	    count < 1 || size < 1 || size > 1 << 20) {
		fprintf(stderr, "usage: floor-nng serve|rtt|load URL "
		    "[options]\n");
		return 2;
	}
	mode = argv[optind];
	url = argv[optind + 1];
	if (!bench_loopback_url(url)) {
		fprintf(stderr, "floor-nng: %s: only tcp://127.0.0.1:PORT\n",
		    url);
		return 2;
	}
	if (strcmp(mode, "serve") == 0)
		return serve(url, contexts);
	if (strcmp(mode, "rtt") == 0)
		return rtt(url, count, size);
	if (strcmp(mode, "load") == 0)
		return load(url, contexts, seconds, size);
	fprintf(stderr, "floor-nng: unknown mode %s\n", mode);
	return 2;
}
