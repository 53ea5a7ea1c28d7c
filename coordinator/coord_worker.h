// SPDX-License-Identifier: MIT
// coord_worker: a small pool of threads for blocking work (HTTP calls to
// Prometheus and to notification webhooks), so that the engine thread
// never blocks on the network. Jobs run in submission order per thread;
// their results travel back through the job's own callback.
#ifndef COORD_WORKER_H
#define COORD_WORKER_H

#include <stdbool.h>
#include <stddef.h>

struct coord_worker;

// A job: `run` is called on a pool thread with `arg`; the pool then
// forgets the job (run owns arg and must free or hand it on).
typedef void (*coord_worker_fn)(void *arg);

// Starts `threads` threads with a queue bounded at `max_queue` jobs.
// Returns 0 or -ENOMEM/-EAGAIN.
int coord_worker_start(struct coord_worker **ret, size_t threads,
    size_t max_queue) __attribute__((warn_unused_result));

// Queues a job. Returns 0, or -EAGAIN when the queue is full or the pool
// is stopping (the job did not run; the caller still owns arg). Never
// blocks; any thread.
int coord_worker_submit(struct coord_worker *w, coord_worker_fn run,
    void *arg) __attribute__((warn_unused_result));

// Runs the jobs already queued, then joins the threads. NULL-safe.
void coord_worker_stop(struct coord_worker *w);

// Says that the pool's owner is stopping (coord_worker_stop has begun, or
// coord_worker_winding_down was called): a job whose answer would come
// too late to matter (a verification's poll) then skips its network
// call, so that a stop is not held up by a queue of them, each waiting
// for its timeout. Jobs are still taken and run (notifications must
// leave). Any thread; NULL-safe (false).
bool coord_worker_stopping(struct coord_worker *w);
void coord_worker_winding_down(struct coord_worker *w);

#endif
