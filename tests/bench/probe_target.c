// SPDX-License-Identifier: MIT
// probe-target: a trivial HTTP server for probe benchmarks. One thread,
// epoll, listening on 127.0.0.1 ports BASE..BASE+COUNT-1; every request
// is answered "200 ok" (keep-alive, or Connection: close with --close).
// It records when each request arrived and when its answer was written,
// so the same server measures the curl floor and reflex-agent alike: a
// sweep is a burst of requests, from the first arrival to the last answer.
//
// usage: probe-target --base-port P --count N [--close] --record FILE
// On SIGTERM/SIGINT writes FILE ("arrival_ns done_ns port" per request,
// CLOCK_MONOTONIC) and exits.
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define MAX_PORTS 1024
#define MAX_RECORDS (4 * 1024 * 1024)
#define BUF 4096

struct rec {
	int64_t arrival, done;
	int port;
};

struct conn {
	int fd;
	int port;
	size_t len;
	char buf[BUF];
};

static struct rec *recs;
static size_t n_recs;
static int listen_fds[MAX_PORTS];
static bool close_mode;

static const char resp_ka[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	"Content-Length: 3\r\n\r\nok\n";
static const char resp_close[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	"\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

static int
listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

// Answers every complete request in the buffer. Returns false when the
// connection is gone.
static bool
conn_serve(int ep, struct conn *c, int64_t arrival)
{
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		const char *r = close_mode ? resp_close : resp_ka;
		size_t rl = close_mode ? sizeof(resp_close) - 1 :
		    sizeof(resp_ka) - 1, used;

		if (end == NULL)
			return true;
		if (write(c->fd, r, rl) != (ssize_t)rl) {
			conn_close(ep, c);
			return false;
		}
		if (n_recs < MAX_RECORDS)
			recs[n_recs++] = (struct rec){ arrival, bench_now_ns(),
				c->port };
		if (close_mode) {
			conn_close(ep, c);
			return false;
		}
		used = (size_t)(end + 4 - c->buf);
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
}

static void
on_readable(int ep, struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->len == BUF) { // a request this large is not a probe
			conn_close(ep, c);
			return;
		}
		n = read(c->fd, c->buf + c->len, BUF - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			if (!conn_serve(ep, c, bench_now_ns()))
				return;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		conn_close(ep, c);
		return;
	}
}

static void
on_accept(int ep, int lfd, int port)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;
		int one = 1;

		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->port = port;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
		}
	}
}

static int
write_records(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < n_recs; i++)
		fprintf(f, "%lld %lld %d\n", (long long)recs[i].arrival,
		    (long long)recs[i].done, recs[i].port);
	return fclose(f);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base-port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "close", no_argument, NULL, 'c' },
		{ "record", required_argument, NULL, 'r' },
		{ 0 },
	};
	// Listening sockets are tagged by their index + 1 in a small
	// integer data field; connections by pointer (never that small).
	int base = 0, count = 1, opt, ep, sfd;
	const char *record = NULL;
	struct epoll_event ev;
	sigset_t set;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': base = atoi(optarg); break;
		case 'n': count = atoi(optarg); break;
		case 'c': close_mode = true; break;
		case 'r': record = optarg; break;
		default: return 2;
		}
	}
	if (base <= 0 || count < 1 || count > MAX_PORTS ||
	    base + count > 65536 || record == NULL) {
		fprintf(stderr, "usage: probe-target --base-port P --count N "
		    "[--close] --record FILE\n");
		return 2;
	}
	recs = calloc(MAX_RECORDS, sizeof(*recs));
	ep = epoll_create1(EPOLL_CLOEXEC);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (recs == NULL || ep < 0 || sfd < 0)
		return 1;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0 };
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	for (int i = 0; i < count; i++) {
		listen_fds[i] = listen_on(base + i);
		if (listen_fds[i] < 0) {
			fprintf(stderr, "probe-target: cannot listen on "
			    "127.0.0.1:%d: %s\n", base + i, strerror(errno));
			return 1;
		}
		ev = (struct epoll_event){ .events = EPOLLIN,
			.data.u64 = (uint64_t)i + 1 };
		epoll_ctl(ep, EPOLL_CTL_ADD, listen_fds[i], &ev);
	}
	fprintf(stderr, "probe-target: %d ports from %d (%s)\n", count, base,
	    close_mode ? "close" : "keep-alive");
	for (;;) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == 0)
				return write_records(record) == 0 ? 0 : 1;
			if (tag <= (uint64_t)count)
				on_accept(ep, listen_fds[tag - 1],
				    base + (int)tag - 1);
			else
				on_readable(ep, evs[i].data.ptr);
		}
	}
}
