// SPDX-License-Identifier: MIT
// floor-http: the HTTP floor. A bare nng HTTP server that answers every
// POST on one path with 200 and a fixed small JSON body, never looking at
// the request body. nng still takes the body off the connection
// (collect_body): without that the body bytes would be parsed as the next
// request of the keep-alive connection. Same library, same server code
// path the coordinator uses, nothing else.
//
// usage: floor-http --listen 127.0.0.1:PORT [--path /api/v1/alerts]
// Runs until SIGTERM or SIGINT.
#include <getopt.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_BODY (4 * 1024 * 1024)

static const char answer[] = "{\"status\":\"accepted\"}";

static void
on_post(nng_aio *aio)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, 200);
	nng_http_res_set_header(res, "Content-Type", "application/json");
	if (nng_http_res_copy_data(res, answer, sizeof(answer) - 1) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "path", required_argument, NULL, 'p' },
		{ 0 },
	};
	const char *listen = NULL, *path = "/api/v1/alerts";
	char url[300];
	nng_http_server *srv = NULL;
	nng_http_handler *h = NULL;
	nng_url *u = NULL;
	sigset_t set;
	int opt, rv, sig;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen = optarg; break;
		case 'p': path = optarg; break;
		default: return 2;
		}
	}
	if (listen == NULL || strncmp(listen, "127.0.0.1:", 10) != 0) {
		fprintf(stderr, "floor-http: --listen 127.0.0.1:PORT\n");
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	snprintf(url, sizeof(url), "http://%s", listen);
	rv = nng_url_parse(&u, url);
	if (rv == 0)
		rv = nng_http_server_hold(&srv, u);
	if (rv == 0)
		rv = nng_http_handler_alloc(&h, path, on_post);
	if (rv == 0) {
		nng_http_handler_set_method(h, "POST");
		nng_http_handler_collect_body(h, true, MAX_BODY);
		rv = nng_http_server_add_handler(srv, h);
	}
	if (rv == 0)
		rv = nng_http_server_start(srv);
	nng_url_free(u);
	if (rv != 0) {
		fprintf(stderr, "floor-http: %s: %s\n", url, nng_strerror(rv));
		return 1;
	}
	fprintf(stderr, "floor-http: listening on %s%s\n", url, path);
	sigwait(&set, &sig);
	nng_http_server_stop(srv);
	nng_http_server_release(srv);
	return 0;
}
