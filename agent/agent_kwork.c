// SPDX-License-Identifier: MIT
// agent_kwork: worker threads for blocking API calls.
#include "agent_kwork.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include "cm_thread.h"

struct agent_kwork {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct agent_kjob *todo, *todo_tail; // FIFO
	struct agent_kjob *done, *done_tail; // FIFO
	size_t busy;			     // queued + running
	bool stopping;
	void (*wake)(void *);
	void *wake_arg;
	pthread_t threads[AGENT_KWORK_MAX_THREADS];
	unsigned n_threads;
};

static void
push(struct agent_kjob **head, struct agent_kjob **tail, struct agent_kjob *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct agent_kjob *
pop(struct agent_kjob **head, struct agent_kjob **tail)
{
	struct agent_kjob *j = *head;

	if (j == NULL)
		return NULL;
	*head = j->next;
	if (*head == NULL)
		*tail = NULL;
	j->next = NULL;
	return j;
}

static void *
worker(void *arg)
{
	struct agent_kwork *w = arg;

	cm_thread_start("kube-worker", CM_THREAD_LATENCY);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct agent_kjob *j;

		while (!w->stopping && w->todo == NULL)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stopping)
			break;
		j = pop(&w->todo, &w->todo_tail);
		pthread_mutex_unlock(&w->mu);
		j->run(j);
		pthread_mutex_lock(&w->mu);
		push(&w->done, &w->done_tail, j);
		pthread_mutex_unlock(&w->mu);
		w->wake(w->wake_arg);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
agent_kwork_new(unsigned threads, void (*wake)(void *), void *wake_arg,
    struct agent_kwork **ret)
{
	struct agent_kwork *w;
	sigset_t all, old;
	int rv = 0;

	if (threads < 1 || threads > AGENT_KWORK_MAX_THREADS)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->wake = wake;
	w->wake_arg = wake_arg;
	// Workers take no signals: the main loop reads them from its
	// signalfd.
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads && rv == 0; i++) {
		rv = -pthread_create(&w->threads[i], NULL, worker, w);
		if (rv == 0)
			w->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv < 0) {
		agent_kwork_free(w);
		return rv;
	}
	*ret = w;
	return 0;
}

void
agent_kwork_submit(struct agent_kwork *w, struct agent_kjob *j)
{
	pthread_mutex_lock(&w->mu);
	push(&w->todo, &w->todo_tail, j);
	w->busy++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

struct agent_kjob *
agent_kwork_take(struct agent_kwork *w)
{
	struct agent_kjob *j;

	pthread_mutex_lock(&w->mu);
	j = pop(&w->done, &w->done_tail);
	if (j != NULL)
		w->busy--;
	pthread_mutex_unlock(&w->mu);
	return j;
}

size_t
agent_kwork_busy(struct agent_kwork *w)
{
	size_t n;

	pthread_mutex_lock(&w->mu);
	n = w->busy;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static void
dispose_all(struct agent_kjob *j)
{
	while (j != NULL) {
		struct agent_kjob *next = j->next;

		j->dispose(j);
		j = next;
	}
}

void
agent_kwork_free(struct agent_kwork *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	dispose_all(w->todo);
	dispose_all(w->done);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
