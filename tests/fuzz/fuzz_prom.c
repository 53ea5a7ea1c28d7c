// SPDX-License-Identifier: MIT
// fuzz_prom: libFuzzer target for the Prometheus instant-query answer
// parser (coord_prom_parse), which reads whatever the configured
// prometheus_url answers while a repair is verified. The first two bytes
// pick the HTTP status the body came with; the rest is the body. The
// verdict must be one of the three and the detail one bounded line.
#include <stdint.h>
#include <string.h>

#include "coord_prom.h"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long codes[] = { 200, 400, 422, 503, 0, 302 };
	long status = 200;
	enum coord_prom_verdict v;
	char detail[256], tiny[8];
	char *body;

	if (size >= 1 && data[0] < 0x20) {
		// A leading control byte selects the status (JSON bodies,
		// the usual seeds, start with '{' and keep 200).
		status = codes[data[0] % (sizeof(codes) / sizeof(codes[0]))];
		data++;
		size--;
	}
	// The parser gets (body, len) from curl: not NUL-terminated, so
	// hand it an exact-size copy for ASan to see any over-read.
	body = malloc(size ? size : 1);
	if (body == NULL)
		abort();
	if (size > 0)
		memcpy(body, data, size);
	memset(detail, 'x', sizeof(detail));
	v = coord_prom_parse(status, body, size, detail, sizeof(detail));
	FUZZ_CHECK(v == COORD_PROM_NORMAL || v == COORD_PROM_FIRING ||
	    v == COORD_PROM_ERROR, "verdict %d", (int)v);
	FUZZ_CHECK(memchr(detail, '\0', sizeof(detail)) != NULL,
	    "detail not terminated");
	v = coord_prom_parse(status, body, size, tiny, sizeof(tiny));
	FUZZ_CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL,
	    "short detail not terminated");
	free(body);
	return 0;
}
