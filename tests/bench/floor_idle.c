// SPDX-License-Identifier: MIT
// floor-idle: the idle floor. Links the libraries reflex-agent links
// (nng, libcurl, msgpack-c, cJSON, libyaml), initializes each the way a
// daemon must (curl global state and a multi handle, an nng rep socket
// listening, which starts nng's threads), then waits in curl_multi_poll
// for nothing. Its RSS, wake-ups and CPU are what "doing nothing with
// these libraries" costs on this machine.
//
// usage: floor-idle --listen tcp://127.0.0.1:PORT
// Runs until a signal ends it (default actions).
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "bench_common.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ 0 },
	};
	const char *url = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	yaml_parser_t yp;
	cJSON *j;
	CURLM *m;
	nng_socket s;
	int opt, rv;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'l')
			return 2;
		url = optarg;
	}
	if (url == NULL || !bench_loopback_url(url)) {
		fprintf(stderr, "usage: floor-idle --listen "
		    "tcp://127.0.0.1:PORT\n");
		return 2;
	}
	// Touch every library once so that it is really loaded and set up.
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	msgpack_sbuffer_destroy(&sb);
	if (!yaml_parser_initialize(&yp))
		return 1;
	yaml_parser_delete(&yp);
	j = cJSON_Parse("{\"idle\":true}");
	cJSON_Delete(j);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (m = curl_multi_init()) == NULL)
		return 1;
	rv = nng_rep0_open(&s);
	if (rv == 0)
		rv = nng_listen(s, url, NULL, 0);
	if (rv != 0) {
		fprintf(stderr, "floor-idle: %s: %s\n", url, nng_strerror(rv));
		return 1;
	}
	for (;;) // SIGTERM's default action ends it
		curl_multi_poll(m, NULL, 0, 1000000, NULL);
}
