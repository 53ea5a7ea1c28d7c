// SPDX-License-Identifier: MIT
// cm_heap: see cm_heap.h. Index i's children are 2i+1 and 2i+2.
#include "cm_heap.h"

#include <errno.h>
#include <stdlib.h>

void
cm_heap_init(struct cm_heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
}

void
cm_heap_fini(struct cm_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->at = CM_HEAP_OUT;
	free(h->v);
	cm_heap_init(h);
}

static void
place(struct cm_heap *h, size_t i, struct cm_heap_node *nd)
{
	h->v[i] = nd;
	nd->at = i;
}

// Moves the node at i towards the root while its parent's key is larger.
static size_t
sift_up(struct cm_heap *h, size_t i)
{
	struct cm_heap_node *nd = h->v[i];

	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (h->v[up]->key <= nd->key)
			break;
		place(h, i, h->v[up]);
		i = up;
	}
	place(h, i, nd);
	return i;
}

// Moves the node at i towards the leaves while a child's key is smaller.
static void
sift_down(struct cm_heap *h, size_t i)
{
	struct cm_heap_node *nd = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->key < h->v[c]->key)
			c++;
		if (nd->key <= h->v[c]->key)
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, nd);
}

int
cm_heap_push(struct cm_heap *h, struct cm_heap_node *nd, int64_t key)
{
	if (h->n == h->cap) {
		size_t cap = h->cap > 0 ? 2 * h->cap : 16;
		struct cm_heap_node **v;

		if (cap > SIZE_MAX / 2 / sizeof(*v))
			return -ENOMEM;
		v = realloc(h->v, cap * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	nd->key = key;
	place(h, h->n++, nd);
	sift_up(h, h->n - 1);
	return 0;
}

void
cm_heap_update(struct cm_heap *h, struct cm_heap_node *nd, int64_t key)
{
	size_t i = nd->at;

	nd->key = key;
	if (sift_up(h, i) == i)
		sift_down(h, i);
}

void
cm_heap_remove(struct cm_heap *h, struct cm_heap_node *nd)
{
	size_t i = nd->at;
	struct cm_heap_node *last;

	if (i == CM_HEAP_OUT || i >= h->n || h->v[i] != nd)
		return;
	nd->at = CM_HEAP_OUT;
	last = h->v[--h->n];
	if (last == nd)
		return;
	place(h, i, last);
	cm_heap_update(h, last, last->key);
}
