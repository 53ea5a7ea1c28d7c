// SPDX-License-Identifier: MIT
// Unit tests for cm_heap: every operation against a plain array that is
// searched in full (the model), over long random sequences, with the
// heap's order and each node's index checked after every step.
#include <errno.h>
#include <stdlib.h>

#include "cm_heap.h"
#include "tt.h"

#define N 300

struct item {
	struct cm_heap_node node;
	bool in;	// the model: in the heap or not
	int64_t key;	// the model's key
};

static struct item items[N];

// True when the heap property holds and every node knows its index.
static bool
heap_ok(const struct cm_heap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		if (h->v[i]->at != i)
			return false;
		if (i > 0 && h->v[(i - 1) / 2]->key > h->v[i]->key)
			return false;
	}
	return true;
}

// The smallest key of the model, or INT64_MAX with nothing in it.
static int64_t
model_min(size_t *count)
{
	int64_t m = INT64_MAX;

	*count = 0;
	for (size_t i = 0; i < N; i++) {
		if (!items[i].in)
			continue;
		(*count)++;
		if (items[i].key < m)
			m = items[i].key;
	}
	return m;
}

static void
test_empty(void)
{
	struct cm_heap h;
	struct cm_heap_node nd;

	cm_heap_init(&h);
	cm_heap_node_init(&nd);
	CHECK(cm_heap_top(&h) == NULL);
	CHECK(!cm_heap_has(&nd));
	cm_heap_remove(&h, &nd); // not in it: left alone
	CHECK(h.n == 0);
	cm_heap_fini(&h);
}

static void
test_random_against_model(void)
{
	struct cm_heap h;
	bool all_ok = true, tops_ok = true, has_ok = true;
	size_t count;

	srand(20261205);
	cm_heap_init(&h);
	for (size_t i = 0; i < N; i++) {
		cm_heap_node_init(&items[i].node);
		items[i].in = false;
	}
	for (int step = 0; step < 200000; step++) {
		struct item *it = &items[rand() % N];
		int64_t key = rand() % 1000 - 100; // duplicates and negatives
		int op = rand() % 4;

		if (!it->in && op != 3) {
			CHECK_INT(cm_heap_push(&h, &it->node, key), 0);
			it->in = true;
			it->key = key;
		} else if (it->in && op < 2) {
			cm_heap_update(&h, &it->node, key);
			it->key = key;
		} else if (it->in) {
			cm_heap_remove(&h, &it->node);
			it->in = false;
		} else {
			// Taking the top out, as a timer loop does.
			struct cm_heap_node *top = cm_heap_top(&h);

			if (top != NULL) {
				struct item *t = (struct item *)(void *)top;

				cm_heap_remove(&h, top);
				t->in = false;
			}
		}
		all_ok = all_ok && heap_ok(&h);
		int64_t m = model_min(&count);
		tops_ok = tops_ok && count == h.n &&
		    (count == 0 ? cm_heap_top(&h) == NULL :
		    cm_heap_top(&h)->key == m);
		has_ok = has_ok && cm_heap_has(&it->node) == it->in;
	}
	CHECK(all_ok);
	CHECK(tops_ok);
	CHECK(has_ok);
	// Draining by the top gives the keys in order.
	int64_t last = INT64_MIN;
	bool sorted = true;
	while (cm_heap_top(&h) != NULL) {
		struct cm_heap_node *top = cm_heap_top(&h);

		sorted = sorted && top->key >= last;
		last = top->key;
		cm_heap_remove(&h, top);
		((struct item *)(void *)top)->in = false;
	}
	CHECK(sorted);
	CHECK(h.n == 0);
	cm_heap_fini(&h);
}

static void
test_fini_marks_nodes_out(void)
{
	struct cm_heap h;
	struct cm_heap_node a, b;

	cm_heap_init(&h);
	cm_heap_node_init(&a);
	cm_heap_node_init(&b);
	CHECK_INT(cm_heap_push(&h, &a, 5), 0);
	CHECK_INT(cm_heap_push(&h, &b, 3), 0);
	CHECK(cm_heap_top(&h) == &b);
	cm_heap_update(&h, &b, 9);
	CHECK(cm_heap_top(&h) == &a);
	cm_heap_fini(&h);
	CHECK(!cm_heap_has(&a));
	CHECK(!cm_heap_has(&b));
	CHECK(h.n == 0 && h.v == NULL);
}

static const struct tt_case cases[] = {
	{ "empty", test_empty },
	{ "random_against_model", test_random_against_model },
	{ "fini_marks_nodes_out", test_fini_marks_nodes_out },
	{ NULL, NULL },
};

TT_MAIN(cases)
