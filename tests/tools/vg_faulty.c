// SPDX-License-Identifier: MIT
/* vg-faulty: a program with one known memory fault, for the self-test of
 * the valgrind hook in tests/lib/reflexlab.py
 * (tests/integration/test_valgrind_hook.py). Usage: vg-faulty MODE, MODE
 * one of
 *   clean  frees what it allocates and exits 0
 *   leak   loses a 16-byte block (a definite leak) and exits 0
 *   read   reads one byte past the end of a 16-byte block, then exits 0
 *   wait   says "waiting" on stdout and waits for a signal (SIGTERM
 *          ends it; nothing leaked)
 *   hang   the same, but it ignores SIGTERM (the harness must SIGKILL
 *          it)
 * Exits 2 on a bad MODE. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* volatile: the compiler may neither drop the block nor see its size */
static char *volatile vf_block;

int main(int argc, char **argv)
{
	const char *mode = argc == 2 ? argv[1] : "";
	if (strcmp(mode, "clean") && strcmp(mode, "leak") &&
	    strcmp(mode, "read") && strcmp(mode, "wait") &&
	    strcmp(mode, "hang")) {
		fprintf(stderr, "usage: vg-faulty clean|leak|read|wait|hang\n");
		return 2;
	}
	vf_block = malloc(16);
	if (vf_block == NULL)
		return 1;
	memset(vf_block, 'x', 16);
	if (strcmp(mode, "leak") == 0) {
		vf_block = NULL;
		return 0;
	}
	if (strcmp(mode, "read") == 0) {
		volatile char c = vf_block[16];
		(void)c;
	}
	if (strcmp(mode, "hang") == 0)
		signal(SIGTERM, SIG_IGN);
	if (strcmp(mode, "wait") == 0 || strcmp(mode, "hang") == 0) {
		free(vf_block);
		vf_block = NULL;
		printf("waiting\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	free(vf_block);
	return 0;
}
