// SPDX-License-Identifier: MIT
// cm_hash: FNV-1a, the one non-cryptographic hash of reflex (hash tables,
// identities, digests, the rollout's picks). Callers keep their own
// starting value where a stored or compared hash depends on it.
#ifndef CM_HASH_H
#define CM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CM_FNV_OFFSET 14695981039346656037ULL
#define CM_FNV_PRIME 1099511628211ULL

// FNV-1a over the bytes of `s` (up to its NUL), going on from `h`.
static inline uint64_t
cm_fnv1a(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= CM_FNV_PRIME;
	}
	return h;
}

// The same over `n` bytes at `p`.
static inline uint64_t
cm_fnv1a_buf(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= CM_FNV_PRIME;
	}
	return h;
}

#endif
