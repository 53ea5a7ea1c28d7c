// SPDX-License-Identifier: MIT
// cm_wire: frames and error codes of the agent channel.
#include "cm_wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cm_auth.h"
#include "cm_msg.h"

static int
msg_append(void *arg, const char *buf, size_t len)
{
	return nng_msg_append(arg, buf, len) == 0 ? 0 : -1;
}

int
cm_wire_msg(struct cm_auth *auth, struct cm_msg *m, size_t reserve,
    nng_msg **ret)
{
	unsigned char mac[CM_AUTH_MAC_LEN];
	nng_msg *msg;
	int rv;

	// One allocation of `reserve` bytes, emptied: the frame is appended
	// into it (append grows it when the frame is larger).
	if (nng_msg_alloc(&msg, reserve) != 0)
		return -ENOMEM;
	nng_msg_clear(msg);
	if (auth != NULL)
		cm_auth_stamp(m);
	rv = cm_msg_encode_to(m, msg_append, msg, NULL);
	if (rv == 0 && auth != NULL) {
		rv = cm_auth_seal(auth, nng_msg_body(msg), nng_msg_len(msg),
		    mac);
		if (rv == 0 && nng_msg_append(msg, mac, sizeof(mac)) != 0)
			rv = -ENOMEM;
	}
	if (rv < 0) {
		nng_msg_free(msg);
		return rv;
	}
	*ret = msg;
	return 0;
}

const char *
cm_wire_error_code(int rv)
{
	switch (rv) {
	case -EACCES:
		return "unauthenticated";
	case -ESTALE:
		return "replayed";
	case -EMSGSIZE:
		return "too_large";
	case -EPROTO:
		return "bad_version_or_type";
	case -EINVAL:
		return "bad_field";
	default:
		return "bad_frame";
	}
}

// One nng_close handed to a thread: whoever of the two lets go last
// frees it.
struct closer {
	nng_socket s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int refs;
};

static void
closer_unref(struct closer *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void *
closer_main(void *arg)
{
	struct closer *c = arg;

	nng_close(c->s);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	closer_unref(c);
	return NULL;
}

// Set once a close was left behind: libnng's reaper is stuck.
static atomic_bool wedged;

bool
cm_wire_wedged(void)
{
	return atomic_load(&wedged);
}

enum cm_wire_closed
cm_wire_close(nng_socket s, int64_t wait_ms)
{
	struct closer *c;
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t th;
	struct timespec ts;
	bool done;
	int rv;

	if (atomic_load(&wedged))
		return CM_WIRE_SKIPPED;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		nng_close(s); // unbounded, as without this helper
		return CM_WIRE_CLOSED;
	}
	c->s = s;
	c->refs = 2;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 64 * 1024);
	rv = pthread_create(&th, &ta, closer_main, c);
	pthread_attr_destroy(&ta);
	if (rv != 0) {
		c->refs = 1;
		closer_main(c);
		return CM_WIRE_CLOSED;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (wait_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->mu);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
			break;
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	closer_unref(c);
	if (done)
		return CM_WIRE_CLOSED;
	atomic_store(&wedged, true);
	return CM_WIRE_LEFT;
}
