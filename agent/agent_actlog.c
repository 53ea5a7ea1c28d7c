// SPDX-License-Identifier: MIT
// agent_actlog: ring of the agent's recent actions.
#include "agent_actlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent_proc.h"

void
agent_actlog_add(struct agent_actlog *l, int64_t wall_ms, const char *kind,
    const char *service, const char *instance, const char *result,
    const char *fmt, ...)
{
	struct agent_actlog_entry *e = &l->e[l->head];
	va_list ap;

	memset(e, 0, sizeof(*e));
	e->wall_ms = wall_ms;
	agent_copy_text(e->kind, sizeof(e->kind), kind);
	agent_copy_text(e->service, sizeof(e->service), service);
	agent_copy_text(e->instance, sizeof(e->instance), instance);
	agent_copy_text(e->result, sizeof(e->result), result);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	agent_copy_text(e->detail, sizeof(e->detail), e->detail);
	l->head = (l->head + 1) % AGENT_ACTLOG_MAX;
	if (l->n < AGENT_ACTLOG_MAX)
		l->n++;
}

const struct agent_actlog_entry *
agent_actlog_get(const struct agent_actlog *l, unsigned i)
{
	return &l->e[(l->head + AGENT_ACTLOG_MAX - 1 - i) % AGENT_ACTLOG_MAX];
}
