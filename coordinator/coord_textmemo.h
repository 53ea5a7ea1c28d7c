// SPDX-License-Identifier: MIT
// coord_textmemo: the alert texts the journal stored lately, by content.
//
// Alertmanager sends a group's alerts again with every notification, and
// an alert's labels, annotations, generator URL, receiver and group key
// rarely change between sends. The journal keeps them once, as a row of
// alert_texts, and each alert row refers to its text; this memo tells the
// journal's writer which text row already holds the texts it is about to
// store. A hit compares every byte, so the key only picks the slot.
// Two ways a set: a new text takes the place of the one used least
// lately. Writer thread only.
#ifndef COORD_TEXTMEMO_H
#define COORD_TEXTMEMO_H

#include <stddef.h>
#include <stdint.h>

#define COORD_TEXT_PARTS 5	// labels, annotations, url, receiver, group key

// An alert's texts, borrowed: part[i] == NULL is SQL NULL (then len[i]
// is not read).
struct coord_text {
	const char *part[COORD_TEXT_PARTS];
	size_t len[COORD_TEXT_PARTS];
};

// Texts longer than this in all are not kept (they are stored as usual).
#define COORD_TEXTMEMO_MAX 8192

struct coord_textmemo;

// NULL when out of memory. The memo owns copies of the texts it keeps.
struct coord_textmemo *coord_textmemo_new(void);
void coord_textmemo_free(struct coord_textmemo *m);

// The id of the text row holding exactly t, put with the same key, or 0.
int64_t coord_textmemo_find(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t);

// Remembers that row id (> 0) holds t. Best effort: too long a text, or
// no memory for its copy, leaves the slot empty.
void coord_textmemo_put(struct coord_textmemo *m, uint64_t key,
    const struct coord_text *t, int64_t id);

// Forgets every text (the rows they name may be gone: a rollback, or the
// journal's retention; see coord_journal.c).
void coord_textmemo_clear(struct coord_textmemo *m);

#endif
