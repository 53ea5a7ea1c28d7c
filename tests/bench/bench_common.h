// SPDX-License-Identifier: MIT
// bench_common: small helpers shared by the benchmark programs (clocks,
// percentiles, files, loopback-only URL checks). Header-only: every bench
// program is one translation unit plus this file.
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Monotonic time in nanoseconds.
static inline int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// CPU time of the whole process (all threads) in nanoseconds.
static inline int64_t
bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int
bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

// Nearest-rank percentile (0 < p <= 100) of n sorted values.
static inline int64_t
bench_pct(const int64_t *sorted, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return sorted[k - 1];
}

// Prints "name":{"n":..,"p50_us":..,"p99_us":..,"max_us":..,"mean_us":..}
// for nanosecond samples (sorted in place).
static inline void
bench_print_dist(FILE *f, const char *name, int64_t *v, size_t n)
{
	double sum = 0;

	qsort(v, n, sizeof(*v), bench_cmp_i64);
	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	fprintf(f, "\"%s\":{\"n\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	    "\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}", name, n,
	    bench_pct(v, n, 50) / 1e3, bench_pct(v, n, 90) / 1e3,
	    bench_pct(v, n, 99) / 1e3, n ? v[n - 1] / 1e3 : 0.0,
	    n ? sum / (double)n / 1e3 : 0.0);
}

// Reads a whole file into a new NUL-terminated buffer (free()). Returns
// NULL with errno set on failure.
static inline char *
bench_read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
		if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
			free(buf);
			buf = NULL;
			errno = EIO;
		} else {
			buf[len] = '\0';
			*ret_len = (size_t)len;
		}
	}
	fclose(f);
	return buf;
}

// The benchmarks talk to 127.0.0.1 only: true if `url` (tcp:// or
// http://) names that host.
static inline bool
bench_loopback_url(const char *url)
{
	const char *p = strstr(url, "://");

	return p != NULL && strncmp(p + 3, "127.0.0.1:", 10) == 0;
}

#endif
