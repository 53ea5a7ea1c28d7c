// SPDX-License-Identifier: MIT
// coord_textmemo: see coord_textmemo.h.
#include "coord_textmemo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SETS 4096		// a power of two
#define WAYS 2
#define NULL_LEN SIZE_MAX	// len[] of a part that is SQL NULL

struct slot {
	int64_t id;		// 0: empty
	uint64_t key;
	size_t len[COORD_TEXT_PARTS];
	char *buf;		// the parts one after another; owned, kept
	size_t cap;		// when the slot is emptied or taken again
};

// A key's slot is one of its set's WAYS: a new text takes the one used
// least lately.
struct coord_textmemo {
	struct slot slot[SETS][WAYS];
	uint8_t recent[SETS];	// the way used last
};

struct coord_textmemo *
coord_textmemo_new(void)
{
	return calloc(1, sizeof(struct coord_textmemo));
}

void
coord_textmemo_free(struct coord_textmemo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < SETS; i++)
		for (int w = 0; w < WAYS; w++)
			free(m->slot[i][w].buf);
	free(m);
}

static size_t
set_of(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	return (size_t)(key ^ key >> 29) & (SETS - 1);
}

static size_t
part_len(const struct coord_text *t, int i)
{
	return t->part[i] == NULL ? NULL_LEN : t->len[i];
}

static bool
holds(const struct slot *s, uint64_t key, const struct coord_text *t)
{
	size_t o = 0;

	if (s->id == 0 || s->key != key)
		return false;
	for (int i = 0; i < COORD_TEXT_PARTS; i++)
		if (s->len[i] != part_len(t, i))
			return false;
	for (int i = 0; i < COORD_TEXT_PARTS; i++) {
		if (t->part[i] == NULL || t->len[i] == 0)
			continue;
		if (memcmp(s->buf + o, t->part[i], t->len[i]) != 0)
			return false;
		o += t->len[i];
	}
	return true;
}

int64_t
coord_textmemo_find(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t)
{
	size_t set = set_of(key);

	for (int w = 0; w < WAYS; w++) {
		if (holds(&m->slot[set][w], key, t)) {
			m->recent[set] = (uint8_t)w;
			return m->slot[set][w].id;
		}
	}
	return 0;
}

void
coord_textmemo_put(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t, int64_t id)
{
	size_t set = set_of(key), need = 0, o = 0;
	struct slot *s;
	int w;
	char *b;

	// An empty way, else the one used least lately (a key may hold both:
	// an alert whose annotations go back and forth, firing and resolved).
	w = m->slot[set][0].id == 0 ? 0 : m->slot[set][1].id == 0 ? 1 :
	    1 - m->recent[set];
	s = &m->slot[set][w];
	m->recent[set] = (uint8_t)w;
	s->id = 0;
	if (id <= 0)
		return;
	for (int i = 0; i < COORD_TEXT_PARTS; i++) {
		if (t->part[i] == NULL)
			continue;
		if (t->len[i] > COORD_TEXTMEMO_MAX - need)
			return;
		need += t->len[i];
	}
	if (need > s->cap) {
		b = realloc(s->buf, need);
		if (b == NULL)
			return;
		s->buf = b;
		s->cap = need;
	}
	for (int i = 0; i < COORD_TEXT_PARTS; i++) {
		s->len[i] = part_len(t, i);
		if (t->part[i] == NULL || t->len[i] == 0)
			continue;
		memcpy(s->buf + o, t->part[i], t->len[i]);
		o += t->len[i];
	}
	s->key = key;
	s->id = id;
}

void
coord_textmemo_clear(struct coord_textmemo *m)
{
	for (size_t i = 0; i < SETS; i++)
		for (int w = 0; w < WAYS; w++)
			m->slot[i][w].id = 0;
}
