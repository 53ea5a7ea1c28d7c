// SPDX-License-Identifier: MIT
// agent_kwork: a few worker threads for calls that block (the
// Kubernetes API: lists, evictions, pod reads), so the agent's main loop
// never waits for the network.
//
// The main loop submits a job (a struct embedding struct agent_kjob); a
// worker runs job->run; the finished job goes to a "done" queue and the
// wake function is called; the main loop takes finished jobs with
// agent_kwork_take() and applies their results. A job's run function
// touches only the job's own fields and thread-safe shared objects (the
// cm_k8s client), never the main loop's state.
//
// Threads: agent_kwork_new/submit/take/free are for the main loop
// thread; run functions run on the workers.
#ifndef AGENT_KWORK_H
#define AGENT_KWORK_H

#include <stddef.h>

#define AGENT_KWORK_MAX_THREADS 8

struct agent_kwork;

struct agent_kjob {
	struct agent_kjob *next;	     // queue link; kwork's while queued
	void (*run)(struct agent_kjob *j);   // worker thread; may block
	void (*dispose)(struct agent_kjob *j); // frees the job (whoever
					       // ends up owning it)
};

// Starts `threads` (1..AGENT_KWORK_MAX_THREADS) workers. `wake` is called
// from a worker after each finished job (must be thread-safe and quick).
// Returns 0 and *ret (free with agent_kwork_free), -EINVAL or a negative
// errno from pthread_create. Main thread.
int agent_kwork_new(unsigned threads, void (*wake)(void *), void *wake_arg,
    struct agent_kwork **ret) __attribute__((warn_unused_result));

// Queues j (taken; FIFO). Never blocks. Main thread.
void agent_kwork_submit(struct agent_kwork *w, struct agent_kjob *j);

// The next finished job, or NULL; the caller owns it (dispose it).
// Main thread.
struct agent_kjob *agent_kwork_take(struct agent_kwork *w);

// Jobs queued or running (not yet taken). Main thread.
size_t agent_kwork_busy(struct agent_kwork *w);

// Stops the workers: queued jobs are not run, running ones are waited
// for (they end within the API client's timeouts), then every job still
// held is disposed. NULL-safe. Main thread.
void agent_kwork_free(struct agent_kwork *w);

#endif
