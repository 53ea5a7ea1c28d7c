// SPDX-License-Identifier: MIT
// cm_heap: a binary min-heap of timers, intrusive: each item embeds a
// struct cm_heap_node (its key and its place in the heap), so an item
// is found, moved and removed in O(log n) without a search. The heap
// holds pointers to the nodes and owns neither them nor their items.
// Not thread-safe: one owner (the coordinator's engine thread).
#ifndef CM_HEAP_H
#define CM_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_heap_node {
	int64_t key;	// smallest first
	size_t at;	// index in the heap; CM_HEAP_OUT when not in one
};

#define CM_HEAP_OUT SIZE_MAX

struct cm_heap {
	struct cm_heap_node **v; // owned array, cap entries
	size_t n, cap;
};

// An empty heap (no allocation until the first push).
void cm_heap_init(struct cm_heap *h);
// Frees the array; the nodes are the caller's.
void cm_heap_fini(struct cm_heap *h);

// A node not in any heap yet.
static inline void
cm_heap_node_init(struct cm_heap_node *nd)
{
	nd->key = 0;
	nd->at = CM_HEAP_OUT;
}

static inline bool
cm_heap_has(const struct cm_heap_node *nd)
{
	return nd->at != CM_HEAP_OUT;
}

// Adds nd (not in a heap) with `key`. Returns 0 or -ENOMEM (then nd
// stays out).
int cm_heap_push(struct cm_heap *h, struct cm_heap_node *nd, int64_t key);
// Gives nd (in h) a new key and moves it to its place.
void cm_heap_update(struct cm_heap *h, struct cm_heap_node *nd, int64_t key);
// Takes nd out of h; a node not in a heap is left alone.
void cm_heap_remove(struct cm_heap *h, struct cm_heap_node *nd);
// The node of the smallest key, or NULL when h is empty. Stays in h.
static inline struct cm_heap_node *
cm_heap_top(const struct cm_heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

#endif
