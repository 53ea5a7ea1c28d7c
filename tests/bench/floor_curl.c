// SPDX-License-Identifier: MIT
// floor-curl: the probe floors. libcurl GETs against probe-target with the
// options reflex-agent sets on its probes (http only, no proxy, no
// redirects, timeouts, a write callback that keeps a few bytes).
//
//   single: one easy handle, one request after the other: CPU and latency
//           per probe (keep-alive, or a new connection each time when the
//           server closes).
//   sweep:  one curl multi handle with one easy handle per target; every
//           period all targets are probed at once, as a node agent would.
//           Prints the client-side sweep times and CPU per probe.
//
// usage: floor-curl single --url URL [--count N]
//        floor-curl sweep --base-port P --targets N [--period-ms MS]
//                   [--sweeps S] [--path /healthz]
// Prints one JSON object on stdout.
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

#define MAX_TARGETS 1024
#define KEEP 256

struct probe {
	CURL *easy;
	CURLU *url;	// parsed once, as reflex-agent does
	size_t got;
	char body[KEEP + 1];
	char err[CURL_ERROR_SIZE];
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct probe *p = arg;
	size_t n = size * nmemb, k;

	if (p->got < KEEP) {
		k = KEEP - p->got < n ? KEEP - p->got : n;
		memcpy(p->body + p->got, data, k);
		p->body[p->got + k] = '\0';
	}
	p->got += n;
	return n;
}

static int
probe_init(struct probe *p, const char *url)
{
	CURLcode c = CURLE_OK;

	p->easy = curl_easy_init();
	p->url = curl_url();
	if (p->easy == NULL || p->url == NULL ||
	    curl_url_set(p->url, CURLUPART_URL, url, 0) != CURLUE_OK)
		return -1;
#define SET(opt, val)                                         \
	do {                                                  \
		if (c == CURLE_OK)                            \
			c = curl_easy_setopt(p->easy, opt, val); \
	} while (0)
	SET(CURLOPT_CURLU, p->url);
	SET(CURLOPT_PROTOCOLS_STR, "http");
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, 1000L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, p);
	SET(CURLOPT_ERRORBUFFER, p->err);
	SET(CURLOPT_PRIVATE, p);
	SET(CURLOPT_USERAGENT, "floor-curl");
#undef SET
	return c == CURLE_OK ? 0 : -1;
}

static int
single(const char *url, int count)
{
	struct probe p = { 0 };
	int64_t *lat = calloc((size_t)count, sizeof(*lat)), cpu0, cpu1;
	int fails = 0;

	if (lat == NULL || probe_init(&p, url) < 0)
		return 1;
	for (int i = 0; i < 50; i++) // warm-up (also opens the connection)
		(void)curl_easy_perform(p.easy);
	cpu0 = bench_cpu_ns();
	for (int i = 0; i < count; i++) {
		int64_t t0 = bench_now_ns();
		long status = 0;

		p.got = 0;
		if (curl_easy_perform(p.easy) != CURLE_OK ||
		    curl_easy_getinfo(p.easy, CURLINFO_RESPONSE_CODE,
		    &status) != CURLE_OK || status != 200)
			fails++;
		lat[i] = bench_now_ns() - t0;
	}
	cpu1 = bench_cpu_ns();
	printf("{\"mode\":\"single\",\"probes\":%d,\"failures\":%d,"
	    "\"cpu_per_probe_us\":%.2f,", count, fails,
	    (cpu1 - cpu0) / 1e3 / count);
	bench_print_dist(stdout, "latency", lat, (size_t)count);
	printf("}\n");
	curl_easy_cleanup(p.easy);
	curl_url_cleanup(p.url);
	free(lat);
	return 0;
}

// One sweep: adds every handle, drives the multi handle until all are
// done. Returns the number of failed probes.
static int
sweep_once(CURLM *m, struct probe *p, int n)
{
	int running = 0, fails = 0, left;
	CURLMsg *msg;

	for (int i = 0; i < n; i++) {
		p[i].got = 0;
		curl_multi_add_handle(m, p[i].easy);
	}
	do {
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result != CURLE_OK || status != 200)
				fails++;
			curl_multi_remove_handle(m, msg->easy_handle);
		}
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	} while (running > 0);
	return fails;
}

static int
sweep(int base, int targets, int period_ms, int sweeps, const char *path)
{
	static struct probe p[MAX_TARGETS];
	int64_t *dur = calloc((size_t)sweeps, sizeof(*dur)), cpu0, cpu1, next;
	CURLM *m = curl_multi_init();
	char url[256];
	int fails = 0;

	if (dur == NULL || m == NULL)
		return 1;
	// One kept connection per target: curl's default (4 per running
	// transfer) closes idle ones as a sweep's last probes finish, and
	// the next sweep reconnects them (reflex-agent sets the same).
	(void)curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)targets);
	for (int i = 0; i < targets; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", base + i,
		    path);
		if (probe_init(&p[i], url) < 0)
			return 1;
	}
	(void)sweep_once(m, p, targets); // warm-up: connections, DNS cache
	cpu0 = bench_cpu_ns();
	next = bench_now_ns();
	for (int s = 0; s < sweeps; s++) {
		int64_t t0, wait;

		wait = next - bench_now_ns();
		if (wait > 0) {
			struct timespec ts = { wait / 1000000000,
				wait % 1000000000 };

			nanosleep(&ts, NULL);
		}
		t0 = bench_now_ns();
		fails += sweep_once(m, p, targets);
		dur[s] = bench_now_ns() - t0;
		next = t0 + (int64_t)period_ms * 1000000;
	}
	cpu1 = bench_cpu_ns();
	printf("{\"mode\":\"sweep\",\"targets\":%d,\"sweeps\":%d,"
	    "\"failures\":%d,\"cpu_per_probe_us\":%.2f,", targets, sweeps,
	    fails, (cpu1 - cpu0) / 1e3 / ((double)targets * sweeps));
	bench_print_dist(stdout, "sweep", dur, (size_t)sweeps);
	printf("}\n");
	for (int i = 0; i < targets; i++) {
		curl_easy_cleanup(p[i].easy);
		curl_url_cleanup(p[i].url);
	}
	curl_multi_cleanup(m);
	free(dur);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'n' },
		{ "base-port", required_argument, NULL, 'p' },
		{ "targets", required_argument, NULL, 't' },
		{ "period-ms", required_argument, NULL, 'P' },
		{ "sweeps", required_argument, NULL, 's' },
		{ "path", required_argument, NULL, 'a' },
		{ 0 },
	};
	const char *url = NULL, *path = "/healthz";
	int count = 5000, base = 0, targets = 110, period = 1000, sweeps = 10;
	int opt, rv = 2;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'n': count = atoi(optarg); break;
		case 'p': base = atoi(optarg); break;
		case 't': targets = atoi(optarg); break;
		case 'P': period = atoi(optarg); break;
		case 's': sweeps = atoi(optarg); break;
		case 'a': path = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: floor-curl single|sweep [options]\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[optind], "single") == 0 && url != NULL &&
	    bench_loopback_url(url) && count > 0)
		rv = single(url, count);
	else if (strcmp(argv[optind], "sweep") == 0 && base > 0 &&
	    targets > 0 && targets <= MAX_TARGETS && sweeps > 0 && period > 0)
		rv = sweep(base, targets, period, sweeps, path);
	else
		fprintf(stderr, "floor-curl: bad arguments\n");
	curl_global_cleanup();
	return rv;
}
