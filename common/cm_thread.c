// SPDX-License-Identifier: MIT
// cm_thread: thread names and the bulk threads' scheduling class.
#include "cm_thread.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "cm_log.h"

static atomic_bool batch_on;
static atomic_bool warned;

static void
refused(const char *thread, int rv)
{
	// No later thread tries, and cm_thread_batch() says so.
	atomic_store(&batch_on, false);
	if (!atomic_exchange(&warned, true))
		cm_warn("thread.sched", "thread=%s policy=batch error=%s "
		    "detail=\"the threads keep the default scheduling\"",
		    cm_q(thread), cm_q(strerror(rv)));
}

void
cm_thread_set_batch(bool on)
{
	struct sched_param sp = { .sched_priority = 0 }, old;
	int policy, rv;

	atomic_store(&batch_on, on);
	// Asked once here, on the calling thread and put back at once, so
	// that a refusal is known (and cm_thread_batch() false) before the
	// threads start and before anything reports the setting.
	if (!on || pthread_getschedparam(pthread_self(), &policy, &old) != 0)
		return;
	rv = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	if (rv != 0)
		refused("main", rv);
	else
		(void)pthread_setschedparam(pthread_self(), policy, &old);
}

bool
cm_thread_batch(void)
{
	return atomic_load(&batch_on);
}

void
cm_thread_start(const char *name, enum cm_thread_class cls)
{
	struct sched_param sp = { .sched_priority = 0 };
	char buf[16];
	int rv;

	// pthread_setname_np refuses names over 15 bytes: keep their start.
	strncpy(buf, name, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	// The class first, the name last: whoever sees the name (ps, top,
	// the tests reading /proc) sees the thread's final class with it.
	if (cls == CM_THREAD_BULK && atomic_load(&batch_on)) {
		rv = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
		if (rv != 0)
			refused(buf, rv);
	}
	(void)pthread_setname_np(pthread_self(), buf);
}
