// SPDX-License-Identifier: MIT
// coord_textmemo: see coord_textmemo.h.
#include "coord_textmemo.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS 1024		// a power of two
#define NULL_LEN SIZE_MAX	// len[] of a part that is SQL NULL

struct slot {
	int64_t id;		// 0: empty
	uint64_t key;
	size_t len[COORD_TEXT_PARTS];
	char *buf;		// the parts one after another; owned, kept
	size_t cap;		// when the slot is emptied or taken again
};

struct coord_textmemo {
	struct slot slot[SLOTS];
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
	for (size_t i = 0; i < SLOTS; i++)
		free(m->slot[i].buf);
	free(m);
}

static struct slot *
slot_of(struct coord_textmemo *m, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	return &m->slot[(key ^ key >> 29) & (SLOTS - 1)];
}

static size_t
part_len(const struct coord_text *t, int i)
{
	return t->part[i] == NULL ? NULL_LEN : t->len[i];
}

int64_t
coord_textmemo_find(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t)
{
	struct slot *s = slot_of(m, key);
	size_t o = 0;

	if (s->id == 0 || s->key != key)
		return 0;
	for (int i = 0; i < COORD_TEXT_PARTS; i++)
		if (s->len[i] != part_len(t, i))
			return 0;
	for (int i = 0; i < COORD_TEXT_PARTS; i++) {
		if (t->part[i] == NULL || t->len[i] == 0)
			continue;
		if (memcmp(s->buf + o, t->part[i], t->len[i]) != 0)
			return 0;
		o += t->len[i];
	}
	return s->id;
}

void
coord_textmemo_put(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t, int64_t id)
{
	struct slot *s = slot_of(m, key);
	size_t need = 0, o = 0;
	char *b;

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
	for (size_t i = 0; i < SLOTS; i++)
		m->slot[i].id = 0;
}
