// SPDX-License-Identifier: MIT
// test_k8s_stub: a scripted HTTP/1.1 server on 127.0.0.1 for the
// Kubernetes client tests. It answers requests one connection at a time
// (Connection: close) with the next scripted reply (default 200 "{}"),
// records every request (method, path, headers, body, arrival time),
// can drop a connection or answer late, and can demand a bearer token
// (401 Unauthorized otherwise, without consuming the script).
#ifndef TEST_K8S_STUB_H
#define TEST_K8S_STUB_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STUB_SCRIPT_MAX 64
#define STUB_REQ_MAX 512

enum stub_action { STUB_REPLY, STUB_DROP, STUB_LATE };

struct stub_resp {
	int code;
	const char *headers; // extra header lines, each ending "\r\n"
	const char *body;
	enum stub_action action;
	int late_ms;
};

struct stub_req {
	char method[16];
	char path[2048];
	char auth[512];
	char ctype[128];
	char *body;
	int64_t t_us;
};

struct stub {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	struct stub_resp script[STUB_SCRIPT_MAX];
	size_t n_script, next;
	struct stub_req reqs[STUB_REQ_MAX];
	size_t n_reqs;
	char want_token[256];
	volatile bool stop;
};

static inline int64_t
stub_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void
stub_push(struct stub *s, struct stub_resp r)
{
	pthread_mutex_lock(&s->mu);
	if (s->n_script < STUB_SCRIPT_MAX)
		s->script[s->n_script++] = r;
	pthread_mutex_unlock(&s->mu);
}

static inline void
stub_reset(struct stub *s)
{
	size_t i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->n_reqs; i++)
		free(s->reqs[i].body);
	s->n_reqs = 0;
	s->n_script = s->next = 0;
	s->want_token[0] = '\0';
	pthread_mutex_unlock(&s->mu);
}

static inline size_t
stub_count(struct stub *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->n_reqs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

// Copies the value of header `name` from the raw head into out.
static inline void
stub_header(const char *head, const char *name, char *out, size_t n)
{
	const char *p = head;
	size_t l = strlen(name), i;

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, l) == 0 && p[l] == ':') {
			p += l + 1;
			while (*p == ' ')
				p++;
			for (i = 0; p[i] && p[i] != '\r' && i + 1 < n; i++)
				out[i] = p[i];
			out[i] = '\0';
			return;
		}
	}
}

static inline void
stub_serve(struct stub *s, int c)
{
	char head[65536], *end = NULL, *body = NULL, clen[32];
	size_t len = 0, blen = 0, have;
	struct stub_req *rq = NULL;
	struct stub_resp r = { 200, "", "{}", STUB_REPLY, 0 };
	char out[131072];
	int64_t t = 0;
	ssize_t n;
	int w;

	while (len < sizeof(head) - 1) {
		n = read(c, head + len, sizeof(head) - 1 - len);
		if (n <= 0)
			return;
		if (t == 0)
			t = stub_now_us();
		len += (size_t)n;
		head[len] = '\0';
		end = strstr(head, "\r\n\r\n");
		if (end != NULL)
			break;
	}
	if (end == NULL)
		return;
	stub_header(head, "Content-Length", clen, sizeof(clen));
	blen = (size_t)strtoul(clen, NULL, 10);
	body = calloc(1, blen + 1);
	have = len - (size_t)(end + 4 - head);
	if (have > blen)
		have = blen;
	memcpy(body, end + 4, have);
	while (have < blen) {
		n = read(c, body + have, blen - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	pthread_mutex_lock(&s->mu);
	if (s->n_reqs < STUB_REQ_MAX) {
		rq = &s->reqs[s->n_reqs++];
		memset(rq, 0, sizeof(*rq));
		sscanf(head, "%15s %2047s", rq->method, rq->path);
		stub_header(head, "Authorization", rq->auth, sizeof(rq->auth));
		stub_header(head, "Content-Type", rq->ctype, sizeof(rq->ctype));
		rq->body = body;
		body = NULL;
		rq->t_us = t;
	}
	if (s->want_token[0] != '\0' && rq != NULL &&
	    (strncmp(rq->auth, "Bearer ", 7) != 0 ||
	    strcmp(rq->auth + 7, s->want_token) != 0)) {
		r = (struct stub_resp){ 401, "", "{\"kind\":\"Status\","
			"\"apiVersion\":\"v1\",\"status\":\"Failure\","
			"\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\","
			"\"code\":401}", STUB_REPLY, 0 };
	} else if (s->next < s->n_script) {
		r = s->script[s->next++];
	}
	pthread_mutex_unlock(&s->mu);
	free(body);
	if (r.action == STUB_DROP)
		return;
	if (r.action == STUB_LATE)
		usleep((useconds_t)r.late_ms * 1000);
	w = snprintf(out, sizeof(out), "HTTP/1.1 %d Stub\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n%s\r\n%s", r.code, strlen(r.body),
	    r.headers ? r.headers : "", r.body);
	if (w > 0)
		(void)!write(c, out, (size_t)w < sizeof(out) ? (size_t)w :
		    sizeof(out) - 1);
}

static inline void *
stub_main(void *arg)
{
	struct stub *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int c;

		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		stub_serve(s, c);
		shutdown(c, SHUT_WR);
		close(c);
	}
	return NULL;
}

static inline int
stub_start(struct stub *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->fd, 64) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&a, &al) < 0) {
		close(s->fd);
		return -errno;
	}
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->th, NULL, stub_main, s) == 0 ? 0 : -EAGAIN;
}

static inline void
stub_stop(struct stub *s)
{
	s->stop = true;
	pthread_join(s->th, NULL);
	close(s->fd);
	stub_reset(s);
	pthread_mutex_destroy(&s->mu);
}

#endif
