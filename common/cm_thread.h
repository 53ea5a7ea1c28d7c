// SPDX-License-Identifier: MIT
// cm_thread: how reflex's own threads start: a name (top -H, the
// benchmarks' per-thread CPU) and a scheduling class.
//
// Bulk threads (the coordinator's HTTP server, journal writer and
// checkpointer, engine) do work that grows with load and gains from taking
// more per turn. With batch scheduling on, they run as SCHED_BATCH: a
// wake-up does not preempt what runs on the CPU, so under load a woken
// thread finds more work queued when it gets its turn (fewer context
// switches, larger group commits), and on a shared node reflex yields to
// the node's workloads. An idle CPU still runs a woken thread at once, so
// a quiet system's latency is unchanged. Latency threads (the journal's
// syncer, which completes durable commits, and everything else) keep the
// default class.
#ifndef CM_THREAD_H
#define CM_THREAD_H

#include <stdbool.h>

enum cm_thread_class { CM_THREAD_LATENCY, CM_THREAD_BULK };

// Process-wide: whether bulk threads started from now on use SCHED_BATCH
// (default off). Set it before starting them: turning it on tries the
// class on the calling thread (then puts that thread's back), so a
// system that refuses it is known, logged once and cm_thread_batch()
// false before any thread starts.
void cm_thread_set_batch(bool on);
bool cm_thread_batch(void);

// Names the calling thread (up to 15 bytes are kept) and, for a bulk
// thread with batch scheduling on, moves it to SCHED_BATCH. A refusal
// (a seccomp profile, say) is logged once, turns batch scheduling off
// for the threads that follow, and the thread goes on as it is.
void cm_thread_start(const char *name, enum cm_thread_class cls);

#endif
