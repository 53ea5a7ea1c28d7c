// SPDX-License-Identifier: MIT
// tt: a tiny unit-test runner printing TAP. Each test file ends with
//
//   static const struct tt_case cases[] = {
//           { "parses zero endsAt as no end", test_zero_endsat },
//           { NULL, NULL },
//   };
//   TT_MAIN(cases)
//
// A failed CHECK marks the current case failed and continues; the exit
// status is 1 when any case failed. `./test_x NAME` runs one case.
#ifndef TT_H
#define TT_H

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct tt_case {
	const char *name;
	void (*fn)(void);
};

static int tt_case_failed;

static inline void
tt_fail(const char *file, int line, const char *what)
{
	printf("#   %s:%d: check failed: %s\n", file, line, what);
	tt_case_failed = 1;
}

#define CHECK(c)                                                            \
	do {                                                                \
		if (!(c))                                                   \
			tt_fail(__FILE__, __LINE__, #c);                    \
	} while (0)

#define CHECK_INT(a, b)                                                     \
	do {                                                                \
		long long tt_a = (long long)(a), tt_b = (long long)(b);     \
		if (tt_a != tt_b) {                                         \
			printf("#   %s == %lld, expected %lld\n", #a, tt_a, \
			    tt_b);                                          \
			tt_fail(__FILE__, __LINE__, #a " == " #b);          \
		}                                                           \
	} while (0)

#define CHECK_STR(a, b)                                                     \
	do {                                                                \
		const char *tt_a = (a), *tt_b = (b);                        \
		if (tt_a == NULL || tt_b == NULL || strcmp(tt_a, tt_b)) {   \
			printf("#   %s == \"%s\", expected \"%s\"\n", #a,   \
			    tt_a ? tt_a : "(null)", tt_b ? tt_b : "(null)");\
			tt_fail(__FILE__, __LINE__, #a " == " #b);          \
		}                                                           \
	} while (0)

// Checks that string `hay` contains `needle`.
#define CHECK_HAS(hay, needle)                                              \
	do {                                                                \
		const char *tt_h = (hay), *tt_n = (needle);                 \
		if (tt_h == NULL || strstr(tt_h, tt_n) == NULL) {           \
			printf("#   \"%s\" lacks \"%s\"\n",                 \
			    tt_h ? tt_h : "(null)", tt_n);                  \
			tt_fail(__FILE__, __LINE__, #hay " has " #needle);  \
		}                                                           \
	} while (0)

// Seeds rand() for a randomized case: $REFLEX_TEST_SEED when set, else
// the time and pid; prints the seed so that a failure can be replayed.
static inline unsigned int
tt_seed(void)
{
	const char *env = getenv("REFLEX_TEST_SEED");
	unsigned int seed = env != NULL ? (unsigned int)strtoul(env, NULL, 10) :
	    (unsigned int)time(NULL) ^ (unsigned int)getpid();

	printf("# seed=%u (REFLEX_TEST_SEED)\n", seed);
	srand(seed);
	return seed;
}

static inline int
tt_run(const struct tt_case *cases, int argc, char **argv)
{
	int n = 0, failed = 0, i;

	for (i = 0; cases[i].name != NULL; i++)
		if (argc < 2 || strcmp(argv[1], cases[i].name) == 0)
			n++;
	printf("1..%d\n", n);
	n = 0;
	for (i = 0; cases[i].name != NULL; i++) {
		if (argc >= 2 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		tt_case_failed = 0;
		fflush(stdout);
		cases[i].fn();
		printf("%s %d - %s\n", tt_case_failed ? "not ok" : "ok", ++n,
		    cases[i].name);
		fflush(stdout);
		failed += tt_case_failed;
	}
	return failed ? 1 : 0;
}

// Removes a test's temporary directory and the files in it (flat: ipc
// sockets and such), best effort: a leftover file is harmless.
static inline void
tt_rm_dir(const char *path)
{
	char f[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(path);

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		(void)unlink(f);
	}
	if (d != NULL)
		closedir(d);
	(void)rmdir(path);
}

// tt_run inside a new temporary directory: dir[size] is made from
// `templ` ("/tmp/reflex-x-XXXXXX") before the cases and removed after.
// Returns tt_run's status, or 1 when the directory cannot be made.
static inline int
tt_run_in_dir(const struct tt_case *cases, int argc, char **argv,
    char *dir, size_t size, const char *templ)
{
	int rv;

	snprintf(dir, size, "%s", templ);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	rv = tt_run(cases, argc, argv);
	tt_rm_dir(dir);
	return rv;
}

#define TT_MAIN(cases)                                                      \
	int main(int argc, char **argv)                                     \
	{                                                                   \
		return tt_run(cases, argc, argv);                           \
	}

#endif
