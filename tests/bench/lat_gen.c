// SPDX-License-Identifier: MIT
// lat-gen: latency load generator, one request at a time.
//
//   http:  POSTs a body over one keep-alive connection COUNT times and
//          prints the request latencies (the HTTP part of the floor).
//   alert: plays a simulated agent and Alertmanager at once, to time
//          "alert received -> command acknowledged by the agent". The
//          agent registers with the coordinator (workloads SERVICE/
//          SERVICE-0..COUNT-1) and heartbeats; then for each i a webhook
//          whose alert targets SERVICE-i is POSTed and the clock stops
//          when the agent has sent its ack for that command. The ack is
//          immediate (the floor is one HTTP request plus one nng round
//          trip), so what is measured is the coordinator's path.
//
// usage: lat-gen http --url URL --body FILE [--count N]
//        lat-gen alert --url URL --body TEMPLATE --coordinator NNG_URL
//                --listen NNG_URL [--count N] [--service S] [--gap-ms MS]
// Both take --bearer TOKEN (sent as "Authorization: Bearer TOKEN").
// "{i}" in the body is replaced by the request number. Prints one JSON
// object on stdout.
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_common.h"
#include "cm_msg.h"

#define MAX_COUNT CM_MSG_MAX_WORKLOADS
#define RESP_MAX 65536
#define ACK_TIMEOUT_NS (5 * 1000000000LL)

// ---- a minimal keep-alive HTTP/1.1 client --------------------------------

static const char *bearer; // --bearer TOKEN: sent as Authorization

struct http {
	int fd;
	char host[64];
	char path[256];
	char buf[RESP_MAX];
	size_t len;
};

static int
http_open(struct http *h, const char *url)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *hp = url + strlen("http://"), *slash;
	int port, one = 1;

	if (strncmp(url, "http://127.0.0.1:", 17) != 0)
		return -EINVAL;
	slash = strchr(hp, '/');
	if (slash == NULL || (size_t)(slash - hp) >= sizeof(h->host))
		return -EINVAL;
	snprintf(h->host, sizeof(h->host), "%.*s", (int)(slash - hp), hp);
	snprintf(h->path, sizeof(h->path), "%s", slash);
	port = atoi(strchr(h->host, ':') + 1);
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -errno;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	h->len = 0;
	return 0;
}

// POSTs body and reads the whole answer. Returns the HTTP status or a
// negative errno.
static int
http_post(struct http *h, const char *body, size_t blen)
{
	char head[1024], auth[600] = "";
	struct iovec iov[2];
	char *end, *cl;
	size_t hlen, need;
	int status;

	if (bearer != NULL)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
		    bearer);
	hlen = (size_t)snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: lat-gen\r\nContent-Type: application/json"
	    "\r\n%sContent-Length: %zu\r\n\r\n", h->path, h->host, auth,
	    blen);
	iov[0] = (struct iovec){ head, hlen };
	iov[1] = (struct iovec){ (void *)body, blen };
	if (writev(h->fd, iov, 2) != (ssize_t)(hlen + blen))
		return -EIO;
	for (;;) {
		ssize_t n;

		end = memmem(h->buf, h->len, "\r\n\r\n", 4);
		if (end != NULL)
			break;
		if (h->len == sizeof(h->buf))
			return -EMSGSIZE;
		n = read(h->fd, h->buf + h->len, sizeof(h->buf) - h->len);
		if (n <= 0)
			return -EIO;
		h->len += (size_t)n;
	}
	*end = '\0';
	if (sscanf(h->buf, "HTTP/1.%*d %d", &status) != 1)
		return -EBADMSG;
	cl = strcasestr(h->buf, "\r\ncontent-length:");
	need = (size_t)(end + 4 - h->buf) + (cl ? (size_t)atol(cl + 17) : 0);
	if (need > sizeof(h->buf))
		return -EMSGSIZE;
	while (h->len < need) {
		ssize_t n = read(h->fd, h->buf + h->len,
		    sizeof(h->buf) - h->len);

		if (n <= 0)
			return -EIO;
		h->len += (size_t)n;
	}
	memmove(h->buf, h->buf + need, h->len - need);
	h->len -= need;
	return status;
}

// Copies tmpl into out with every "{i}" replaced by i. Returns the length.
static size_t
render(const char *tmpl, int i, char *out, size_t n)
{
	size_t o = 0;

	for (const char *p = tmpl; *p && o + 16 < n; p++) {
		if (strncmp(p, "{i}", 3) == 0) {
			o += (size_t)snprintf(out + o, n - o, "%d", i);
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	return o;
}

// ---- mode http -------------------------------------------------------------

static int
run_http(const char *url, const char *tmpl, int count)
{
	size_t cap = strlen(tmpl) + 4096;
	char *body = malloc(cap);
	int64_t *lat = calloc((size_t)count, sizeof(*lat));
	struct http *h = calloc(1, sizeof(*h));
	int bad = 0;

	if (body == NULL || lat == NULL || h == NULL || http_open(h, url) < 0) {
		fprintf(stderr, "lat-gen: cannot connect to %s\n", url);
		return 1;
	}
	for (int i = -100; i < count; i++) { // 100 warm-up requests
		size_t blen = render(tmpl, i < 0 ? -i : i, body, cap);
		int64_t t0 = bench_now_ns();
		int st = http_post(h, body, blen);

		if (st < 0) {
			fprintf(stderr, "lat-gen: POST failed: %s\n",
			    strerror(-st));
			return 1;
		}
		if (i >= 0) {
			lat[i] = bench_now_ns() - t0;
			bad += st / 100 != 2;
		}
	}
	printf("{\"mode\":\"http\",\"non_2xx\":%d,", bad);
	bench_print_dist(stdout, "latency", lat, (size_t)count);
	printf("}\n");
	close(h->fd);
	free(h);
	free(body);
	free(lat);
	return 0;
}

// ---- mode alert: the simulated agent ---------------------------------------

static nng_socket rep, req;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int64_t cmd_at[MAX_COUNT], ack_at[MAX_COUNT];
static char prefix[CM_NAME_MAX + 1];
static atomic_bool quit;
static atomic_long stray;

static int
send_msg(nng_socket s, const struct cm_msg *m)
{
	void *buf;
	size_t len;
	int rv = cm_msg_encode(m, &buf, &len);

	if (rv < 0)
		return rv;
	rv = nng_send(s, buf, len, 0);
	free(buf);
	return rv == 0 ? 0 : -EIO;
}

static bool
exchange(const struct cm_msg *m, struct cm_msg *r)
{
	char err[256];
	void *buf;
	size_t len;
	bool ok;

	if (send_msg(req, m) != 0 ||
	    nng_recv(req, &buf, &len, NNG_FLAG_ALLOC) != 0)
		return false;
	ok = cm_msg_decode(r, buf, len, err, sizeof(err)) == 0;
	nng_free(buf, len);
	return ok;
}

// Answers every command at once with ok, noting when it came and when
// the ack left.
static void *
agent_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&quit)) {
		struct cm_msg m, r = { .version = CM_PROTO_VERSION,
			.type = CM_MSG_REPLY };
		char err[256];
		int64_t t_in;
		void *buf;
		size_t len;
		long idx = -1;

		if (nng_recv(rep, &buf, &len, NNG_FLAG_ALLOC) != 0)
			continue;
		t_in = bench_now_ns();
		if (cm_msg_decode(&m, buf, len, err, sizeof(err)) != 0) {
			nng_free(buf, len);
			r.type = CM_MSG_ERROR;
			snprintf(r.u.error.code, sizeof(r.u.error.code),
			    "bad_frame");
			snprintf(r.u.error.message, sizeof(r.u.error.message),
			    "%s", err);
			(void)send_msg(rep, &r);
			continue;
		}
		nng_free(buf, len);
		r.id = m.id;
		r.u.reply.ok = m.type == CM_MSG_COMMAND;
		snprintf(r.u.reply.message, sizeof(r.u.reply.message), "%s",
		    r.u.reply.ok ? "done (simulated)" : "not a command");
		if (m.type == CM_MSG_COMMAND &&
		    strncmp(m.u.cmd.instance, prefix, strlen(prefix)) == 0)
			idx = atol(m.u.cmd.instance + strlen(prefix));
		(void)send_msg(rep, &r);
		pthread_mutex_lock(&mu);
		if (idx >= 0 && idx < MAX_COUNT && ack_at[idx] == 0) {
			cmd_at[idx] = t_in;
			ack_at[idx] = bench_now_ns();
			pthread_cond_broadcast(&cv);
		} else {
			atomic_fetch_add(&stray, 1);
		}
		pthread_mutex_unlock(&mu);
		cm_msg_clear(&m);
	}
	return NULL;
}

static void *
heartbeat_main(void *arg)
{
	const char *node = arg;
	uint64_t seq = 100;

	while (!atomic_load(&quit)) {
		struct cm_msg m = { .version = CM_PROTO_VERSION,
			.type = CM_MSG_HEARTBEAT, .id = ++seq }, r;

		snprintf(m.u.hb.node, sizeof(m.u.hb.node), "%s", node);
		m.u.hb.seq = seq;
		if (exchange(&m, &r))
			cm_msg_clear(&r);
		for (int t = 0; t < 100 && !atomic_load(&quit); t++)
			nng_msleep(10);
	}
	return NULL;
}

static int
agent_register(const char *node, const char *listen, const char *service,
    int count)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_REGISTER, .id = 1 }, r;
	struct cm_workload *wl = calloc((size_t)count, sizeof(*wl));
	bool ok = false;

	if (wl == NULL)
		return -ENOMEM;
	for (int i = 0; i < count; i++) {
		snprintf(wl[i].service, CM_NAME_MAX, "%s", service);
		snprintf(wl[i].instance, CM_NAME_MAX, "%s%d", prefix, i);
		snprintf(wl[i].addr, CM_ADDR_MAX, "127.0.0.1:%d", 40000 + i);
		wl[i].healthy = true;
	}
	snprintf(m.u.reg.node, sizeof(m.u.reg.node), "%s", node);
	snprintf(m.u.reg.addr, sizeof(m.u.reg.addr), "%s", listen);
	snprintf(m.u.reg.runtime, sizeof(m.u.reg.runtime), "process");
	m.u.reg.workloads = wl;
	m.u.reg.n_workloads = (size_t)count;
	for (int tries = 0; tries < 50 && !ok; tries++) {
		if (exchange(&m, &r)) {
			ok = r.type == CM_MSG_REPLY && r.u.reply.ok;
			cm_msg_clear(&r);
		}
		if (!ok)
			nng_msleep(100);
	}
	free(wl);
	return ok ? 0 : -ECONNREFUSED;
}

static int
run_alert(const char *url, const char *tmpl, const char *coord,
    const char *listen, const char *service, int count, int gap_ms)
{
	static const char node[] = "bench-node";
	size_t cap = strlen(tmpl) + 4096;
	char *body = malloc(cap);
	int64_t *ack = calloc((size_t)count, sizeof(int64_t));
	int64_t *cmd = calloc((size_t)count, sizeof(int64_t));
	int64_t *resp = calloc((size_t)count, sizeof(int64_t));
	struct http *h = calloc(1, sizeof(*h));
	pthread_t at, ht;
	int bad = 0, timeouts = 0, n = 0;

	snprintf(prefix, sizeof(prefix), "%s-", service);
	if (body == NULL || ack == NULL || cmd == NULL || resp == NULL ||
	    h == NULL)
		return 1;
	if (nng_rep0_open(&rep) != 0 || nng_listen(rep, listen, NULL, 0) != 0 ||
	    nng_req0_open(&req) != 0 ||
	    nng_dial(req, coord, NULL, NNG_FLAG_NONBLOCK) != 0) {
		fprintf(stderr, "lat-gen: cannot open %s / %s\n", listen,
		    coord);
		return 1;
	}
	nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 2000);
	nng_socket_set_ms(req, NNG_OPT_SENDTIMEO, 2000);
	nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 200);
	pthread_create(&at, NULL, agent_main, NULL);
	if (agent_register(node, listen, service, count) < 0) {
		fprintf(stderr, "lat-gen: could not register with %s\n", coord);
		return 1;
	}
	pthread_create(&ht, NULL, heartbeat_main, (void *)node);
	if (http_open(h, url) < 0) {
		fprintf(stderr, "lat-gen: cannot connect to %s\n", url);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		size_t blen = render(tmpl, i, body, cap);
		int64_t t0 = bench_now_ns(), deadline;
		int st = http_post(h, body, blen);

		resp[n] = bench_now_ns() - t0;
		if (st < 0) {
			fprintf(stderr, "lat-gen: POST failed: %s\n",
			    strerror(-st));
			return 1;
		}
		if (st / 100 != 2) {
			bad++;
			continue;
		}
		deadline = t0 + ACK_TIMEOUT_NS;
		pthread_mutex_lock(&mu);
		while (ack_at[i] == 0 && bench_now_ns() < deadline) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 5000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
		if (ack_at[i] != 0) {
			ack[n] = ack_at[i] - t0;
			cmd[n] = cmd_at[i] - t0;
			n++;
		} else {
			timeouts++;
		}
		pthread_mutex_unlock(&mu);
		if (gap_ms > 0)
			nng_msleep((nng_duration)gap_ms);
	}
	printf("{\"mode\":\"alert\",\"webhooks\":%d,\"acked\":%d,"
	    "\"non_2xx\":%d,\"timeouts\":%d,\"stray_commands\":%ld,", count,
	    n, bad, timeouts, atomic_load(&stray));
	bench_print_dist(stdout, "alert_to_ack", ack, (size_t)n);
	printf(",");
	bench_print_dist(stdout, "alert_to_command", cmd, (size_t)n);
	printf(",");
	bench_print_dist(stdout, "webhook_response", resp, (size_t)n);
	printf("}\n");
	fflush(stdout);
	atomic_store(&quit, true);
	pthread_join(ht, NULL);
	pthread_join(at, NULL);
	close(h->fd);
	nng_close(req);
	nng_close(rep);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "body", required_argument, NULL, 'b' },
		{ "count", required_argument, NULL, 'n' },
		{ "coordinator", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "service", required_argument, NULL, 's' },
		{ "gap-ms", required_argument, NULL, 'g' },
		{ "bearer", required_argument, NULL, 't' },
		{ 0 },
	};
	const char *url = NULL, *bodyf = NULL, *coord = NULL, *listen = NULL;
	const char *service = "bench";
	int count = 1000, gap = 5, opt, rv = 2;
	size_t blen;
	char *tmpl;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'b': bodyf = optarg; break;
		case 'n': count = atoi(optarg); break;
		case 'c': coord = optarg; break;
		case 'l': listen = optarg; break;
		case 's': service = optarg; break;
		case 'g': gap = atoi(optarg); break;
		case 't': bearer = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || url == NULL || bodyf == NULL || count < 1 ||
	    !bench_loopback_url(url)) {
		fprintf(stderr, "usage: lat-gen http|alert --url URL "
		    "--body FILE [options]\n");
		return 2;
	}
	tmpl = bench_read_file(bodyf, &blen);
	if (tmpl == NULL) {
		fprintf(stderr, "lat-gen: %s: %s\n", bodyf, strerror(errno));
		return 1;
	}
	if (strcmp(argv[optind], "http") == 0)
		rv = run_http(url, tmpl, count);
	else if (strcmp(argv[optind], "alert") == 0 && coord != NULL &&
	    listen != NULL && bench_loopback_url(coord) &&
	    bench_loopback_url(listen) && count <= MAX_COUNT &&
	    cm_name_valid(service))
		rv = run_alert(url, tmpl, coord, listen, service, count, gap);
	else
		fprintf(stderr, "lat-gen: bad arguments\n");
	free(tmpl);
	return rv;
}
