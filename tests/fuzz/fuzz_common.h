// SPDX-License-Identifier: MIT
// fuzz_common: helpers shared by the libFuzzer targets in tests/fuzz/.
//
// Every target logs at debug level into a sink that checks each line: a
// log line built from hostile input must stay one line of printable text
// (cm_q() quotes untrusted values), so a raw control byte in a line is a
// log-injection bug and aborts the run like a crash would.
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"

// libFuzzer's entry points (defined by each target).
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

// Aborts with a message: a violated property counts as a crash.
#define FUZZ_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz property failed: %s (%s:%d): ", #cond, \
		    __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

static void
fuzz_log_sink(int level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	for (const unsigned char *p = (const unsigned char *)line; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f,
		    "control byte 0x%02x in log line: %s", *p, line);
}

static inline void
fuzz_log_setup(void)
{
	cm_log_set_component("fuzz");
	cm_log_set_level(CM_LOG_DEBUG);
	cm_log_set_sink(fuzz_log_sink, NULL);
}

// A NUL-terminated copy of the input (free()); aborts on ENOMEM, which
// libFuzzer's -rss_limit_mb/-malloc_limit_mb report anyway.
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

// True if s is printable text on one line: a reason or message reflex
// puts into an HTTP answer, a reply frame or a log field.
static inline int
fuzz_one_line(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

#endif
