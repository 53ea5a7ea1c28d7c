// SPDX-License-Identifier: MIT
// agent_http: a request runs again and again, answered (on one kept-alive
// connection) or not. A URL curl parses is handed over parsed, one it
// rejects as a string; both must end each run with its reason.
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_http.h"
#include "cm_time.h"
#include "tt.h"

#define RUN_MS 5000 // bound of one run (the requests' timeout is 1 s)

struct ended {
	int n;
	bool ok;
	long status;
	char reason[256];
};

static void
on_done(struct agent_http_req *r, bool ok, long status, const char *reason,
    int64_t elapsed_ms, void *arg)
{
	struct ended *e = arg;

	(void)r;
	(void)elapsed_ms;
	e->n++;
	e->ok = ok;
	e->status = status;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
}

// A one-port HTTP/1.1 server in the test's own poll set: answers every
// request with `answer`, keeps connections open, counts them.
struct server {
	int lfd;
	int cfd;
	int accepted;
	int requests;
	const char *answer;
};

static void
serve(struct agent_http *h, struct server *sv, void *tag)
{
	char buf[2048];
	ssize_t n;

	if (tag == &sv->lfd) {
		int fd = accept(sv->lfd, NULL, NULL);

		if (fd < 0)
			return;
		if (sv->cfd >= 0 || agent_http_watch(h, fd, &sv->cfd) < 0) {
			close(fd);
			return;
		}
		sv->cfd = fd;
		sv->accepted++;
		return;
	}
	n = read(sv->cfd, buf, sizeof(buf) - 1);
	if (n <= 0) {
		agent_http_unwatch(h, sv->cfd);
		close(sv->cfd);
		sv->cfd = -1;
		return;
	}
	buf[n] = '\0';
	if (strstr(buf, "\r\n\r\n") != NULL) { // a whole GET in one read
		sv->requests++;
		CHECK_INT(write(sv->cfd, sv->answer, strlen(sv->answer)),
		    strlen(sv->answer));
	}
}

// Starts r and drives the poll set (and sv, if any) until its done
// callback ran once.
static void
run_once(struct agent_http *h, struct agent_http_req *r, struct ended *e,
    struct server *sv)
{
	int64_t until = cm_mono_ms() + RUN_MS;
	int before = e->n;
	void *tags[AGENT_HTTP_EVENTS];

	CHECK_INT(agent_http_req_start(r, cm_mono_ms()), 0);
	while (e->n == before && cm_mono_ms() < until) {
		int k = agent_http_poll(h, 100, tags);

		CHECK(k >= 0);
		for (int i = 0; sv != NULL && i < k; i++)
			serve(h, sv, tags[i]);
		agent_http_perform(h, cm_mono_ms());
	}
	CHECK_INT(e->n, before + 1);
	CHECK(!r->active);
}

// A port on 127.0.0.1 that refuses connections: bound, never listening.
static int
refusing_port(int *ret_fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*ret_fd = fd;
	return ntohs(a.sin_port);
}

// A listening socket on a free port of 127.0.0.1; returns the port.
static int
listening_port(int *ret_fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*ret_fd = fd;
	return ntohs(a.sin_port);
}

static void
test_answered_kept(void)
{
	struct agent_http *h = NULL;
	struct agent_http_req r;
	struct ended e = { 0 };
	struct server sv = { .lfd = -1, .cfd = -1, .answer = "HTTP/1.1 204 "
		"No Content\r\nContent-Length: 0\r\n\r\n" };
	char url[64];
	int port = listening_port(&sv.lfd);

	CHECK(port > 0);
	CHECK_INT(agent_http_new(&h), 0);
	if (h == NULL || port <= 0)
		return;
	CHECK_INT(agent_http_watch(h, sv.lfd, &sv.lfd), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	CHECK_INT(agent_http_req_init(h, &r, url, false, 1000, on_done, &e),
	    0);
	CHECK(r.uh != NULL);
	for (int i = 0; i < 3; i++) {
		run_once(h, &r, &e, &sv);
		CHECK(e.ok);
		CHECK_INT(e.status, 204);
		CHECK_STR(e.reason, "HTTP 204");
	}
	CHECK_INT(sv.requests, 3);
	CHECK_INT(sv.accepted, 1); // kept alive between runs
	agent_http_req_fini(&r);
	if (sv.cfd >= 0) {
		agent_http_unwatch(h, sv.cfd);
		close(sv.cfd);
	}
	agent_http_unwatch(h, sv.lfd);
	close(sv.lfd);
	agent_http_free(h);
}

static void
test_refused_twice(void)
{
	struct agent_http *h = NULL;
	struct agent_http_req r;
	struct ended e = { 0 };
	char url[64];
	int fd = -1, port = refusing_port(&fd);

	CHECK(port > 0);
	CHECK_INT(agent_http_new(&h), 0);
	if (h == NULL || port <= 0)
		return;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	CHECK_INT(agent_http_req_init(h, &r, url, false, 1000, on_done, &e),
	    0);
	CHECK(r.uh != NULL); // parsed once, here
	for (int i = 0; i < 2; i++) {
		e.reason[0] = '\0';
		run_once(h, &r, &e, NULL);
		CHECK(!e.ok);
		CHECK_INT(e.status, 0);
		CHECK_HAS(e.reason, "onnect");
	}
	agent_http_req_fini(&r);
	agent_http_free(h);
	close(fd);
}

static void
test_rejected_url(void)
{
	struct agent_http *h = NULL;
	struct agent_http_req r;
	struct ended e = { 0 };

	CHECK_INT(agent_http_new(&h), 0);
	if (h == NULL)
		return;
	// Port out of range: curl's URL parser refuses it.
	CHECK_INT(agent_http_req_init(h, &r, "http://127.0.0.1:99999/healthz",
	    false, 1000, on_done, &e), 0);
	CHECK(r.uh == NULL); // left to curl as a string
	for (int i = 0; i < 2; i++) {
		e.reason[0] = '\0';
		run_once(h, &r, &e, NULL);
		CHECK(!e.ok);
		CHECK_INT(e.status, 0);
		CHECK(e.reason[0] != '\0');
	}
	agent_http_req_fini(&r);
	CHECK(r.easy == NULL && r.uh == NULL);
	agent_http_req_fini(&r); // idempotent
	agent_http_free(h);
}

static void
test_bad_method(void)
{
	struct agent_http *h = NULL;
	struct agent_http_req r;
	struct ended e = { 0 };

	CHECK_INT(agent_http_new(&h), 0);
	if (h == NULL)
		return;
	CHECK_INT(agent_http_req_init_method(h, &r, "http://127.0.0.1:1/",
	    "DELETE", 1000, on_done, &e), -EINVAL);
	CHECK(r.easy == NULL && r.uh == NULL);
	agent_http_free(h);
}

static const struct tt_case cases[] = {
	{ "a parsed URL: three answers (HTTP 204) on one connection",
	    test_answered_kept },
	{ "a parsed URL: a refused connection ends each of two runs",
	    test_refused_twice },
	{ "a URL curl rejects: each run ends with a reason",
	    test_rejected_url },
	{ "an unknown method fails init and leaves nothing behind",
	    test_bad_method },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	int rv;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	rv = tt_run(cases, argc, argv);
	curl_global_cleanup();
	return rv;
}
