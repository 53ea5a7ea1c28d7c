// SPDX-License-Identifier: MIT
// coord_worker: fixed thread pool with a bounded FIFO queue.
#include "coord_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include "cm_thread.h"

struct job {
	struct job *next;
	coord_worker_fn run;
	void *arg;
};

struct coord_worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	size_t queued, max_queue;
	bool stopping;
	bool winding_down; // see coord_worker_stopping
	pthread_t *threads;
	size_t n_threads;
};

static void *
worker_main(void *arg)
{
	struct coord_worker *w = arg;

	cm_thread_start("coord-worker", CM_THREAD_LATENCY);
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&w->mu);
		while (w->head == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		j = w->head;
		if (j == NULL) { // stopping and drained
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		w->head = j->next;
		if (w->head == NULL)
			w->tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->mu);
		j->run(j->arg);
		free(j);
	}
}

int
coord_worker_start(struct coord_worker **ret, size_t threads, size_t max_queue)
{
	struct coord_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -ENOMEM;
	w->threads = calloc(threads, sizeof(*w->threads));
	if (w->threads == NULL) {
		free(w);
		return -ENOMEM;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->max_queue = max_queue;
	for (; w->n_threads < threads; w->n_threads++) {
		if (pthread_create(&w->threads[w->n_threads], NULL, worker_main,
		    w) != 0) {
			coord_worker_stop(w);
			return -EAGAIN;
		}
	}
	*ret = w;
	return 0;
}

int
coord_worker_submit(struct coord_worker *w, coord_worker_fn run, void *arg)
{
	struct job *j = malloc(sizeof(*j));
	int rv = 0;

	if (j == NULL)
		return -EAGAIN;
	j->next = NULL;
	j->run = run;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->stopping || w->queued >= w->max_queue) {
		rv = -EAGAIN;
	} else {
		if (w->tail != NULL)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		w->queued++;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (rv < 0)
		free(j);
	return rv;
}

bool
coord_worker_stopping(struct coord_worker *w)
{
	bool s;

	if (w == NULL)
		return false;
	pthread_mutex_lock(&w->mu);
	s = w->stopping || w->winding_down;
	pthread_mutex_unlock(&w->mu);
	return s;
}

void
coord_worker_winding_down(struct coord_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->winding_down = true;
	pthread_mutex_unlock(&w->mu);
}

void
coord_worker_stop(struct coord_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->threads);
	free(w);
}
