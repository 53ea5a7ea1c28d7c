// SPDX-License-Identifier: MIT
// fail-fsync: an LD_PRELOAD shim for fault tests. While the file named by
// $REFLEX_FAIL_FSYNC exists, fdatasync() and fsync() fail with EIO (as a
// disk that lost a write would report); otherwise they pass through. Test
// use only: it is never installed.
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static int
failing(void)
{
	const char *path = getenv("REFLEX_FAIL_FSYNC");

	return path != NULL && *path != '\0' && access(path, F_OK) == 0;
}

static int
call(const char *name, int fd)
{
	sync_fn next;

	if (failing()) {
		errno = EIO;
		return -1;
	}
	next = (sync_fn)dlsym(RTLD_NEXT, name);
	if (next == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return next(fd);
}

int
fdatasync(int fd)
{
	return call("fdatasync", fd);
}

int
fsync(int fd)
{
	return call("fsync", fd);
}
