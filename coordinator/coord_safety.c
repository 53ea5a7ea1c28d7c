// SPDX-License-Identifier: MIT
// coord_safety: pre-action checks and the circuit breaker.
#include "coord_safety.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_hash.h"
#include "cm_log.h"

#define MAX_SERVICES 4096
#define MAX_IDENTITIES 65536
#define OUTCOMES 1024
#define BLAST_SLOTS 256

static const char *const dep_policies[] = { "skip", "wait", NULL };

static const struct cm_conf_field dep_fields[] = {
	{ .key = "service", .type = CM_CONF_STR, .required = true,
	  .off = offsetof(struct coord_dependency_conf, service) },
	{ .key = "depends_on", .type = CM_CONF_STRLIST, .required = true,
	  .off = offsetof(struct coord_dependency_conf, depends_on) },
	{ 0 },
};

#define S(k, m, d, lo, hi, h) { .key = k, .type = CM_CONF_INT, \
	.off = offsetof(struct coord_safety_conf, m), .def = d, .min = lo, \
	.max = hi, .help = h }
#define D(k, m, d, lo, hi, h) { .key = k, .type = CM_CONF_DURATION, \
	.off = offsetof(struct coord_safety_conf, m), .def = d, .min = lo, \
	.max = hi, .help = h }

const struct cm_conf_field coord_safety_fields[] = {
	{ .key = "critical_services", .type = CM_CONF_STRLIST,
	  .off = offsetof(struct coord_safety_conf, critical_services),
	  .help = "services a rule may restart only with force: true" },
	{ .key = "dependencies", .type = CM_CONF_LIST,
	  .off = offsetof(struct coord_safety_conf, dependencies),
	  .sub = dep_fields, .elem_size = sizeof(struct coord_dependency_conf),
	  .line_off = CM_CONF_LINE(struct coord_dependency_conf, line),
	  .help = "service dependency graph: fix the cause, not the symptom" },
	{ .key = "dependency_policy", .type = CM_CONF_ENUM,
	  .off = offsetof(struct coord_safety_conf, dependency_policy),
	  .choices = dep_policies, .def = "skip",
	  .help = "when a dependency is alerting: skip or wait" },
	S("max_concurrent", max_concurrent, "10", 1, 10000,
	    "actions in flight at once"),
	S("global_max_actions", global_max, "20", 1, 10000,
	    "actions per global window, all services"),
	D("global_window", global_window_ms, "10m", 1000, 86400000, ""),
	S("service_max_actions", service_max, "5", 1, 10000,
	    "actions per service window"),
	D("service_window", service_window_ms, "10m", 1000, 86400000, ""),
	S("blast_radius_percent", blast_percent, "25", 1, 100,
	    "share of a service's instances restarted per window (min 1)"),
	D("blast_radius_window", blast_window_ms, "10m", 1000, 86400000, ""),
	S("flapping_max_cycles", flap_max, "3", 1, 100,
	    "fire/fix/resolve cycles of one target per window before a loop"),
	D("flapping_window", flap_window_ms, "1h", 1000, 604800000, ""),
	S("breaker_min_actions", breaker_min_actions, "5", 1, 1000,
	    "finished actions needed before the success rate counts"),
	S("breaker_success_percent", breaker_success_percent, "95", 0, 100,
	    "success rate below which automation pauses"),
	D("breaker_window", breaker_window_ms, "30m", 1000, 86400000, ""),
	D("breaker_max_avg_duration", breaker_max_avg_ms, "10m", 1000,
	    86400000, "average action time above which automation pauses"),
	D("breaker_cool_off", breaker_cool_off_ms, "30m", 0, 86400000,
	    "breaker closes by itself after this (0: operator resumes)"),
	S("storm_percent", storm_percent, "10", 1, 100,
	    "share of known targets alerting at once that means a storm"),
	S("storm_min_targets", storm_min_targets, "5", 1, 100000,
	    "a storm needs at least this many targets alerting at once"),
	D("storm_window", storm_window_ms, "1m", 1000, 3600000, ""),
	{ 0 },
};

// Timestamps of the last `cap` events; counts those in a window.
struct tsring {
	int64_t *v;
	size_t cap, head, n;
};

static int
tsring_init(struct tsring *r, size_t cap)
{
	r->v = calloc(cap, sizeof(*r->v));
	r->cap = cap;
	r->head = r->n = 0;
	return r->v != NULL ? 0 : -ENOMEM;
}

static void
tsring_push(struct tsring *r, int64_t ts)
{
	if (r->cap == 0)
		return;
	r->v[r->head] = ts;
	r->head = (r->head + 1) % r->cap;
	if (r->n < r->cap)
		r->n++;
}

static size_t
tsring_since(const struct tsring *r, int64_t since)
{
	size_t c = 0;

	for (size_t i = 0; i < r->n; i++)
		c += r->v[i] >= since;
	return c;
}

struct blast {
	char instance[64];
	uint64_t hash;		// inst_hash(instance)
	int64_t ts;
};

struct svc {
	char *name;
	struct tsring actions;
	struct blast blast[BLAST_SLOTS];
	size_t blast_head;
	int64_t in_flight;
	int64_t open_incidents;
};

struct ident {
	uint64_t id;
	bool used;
	bool open;
	bool demanded;		// in the storm list (see storm_link)
	int svc;		// index into services, -1 = unknown
	int prev, next;		// storm list neighbours, -1 = none
	int64_t last_demand;
	struct tsring cycles;
};

struct outcome {
	int64_t ts;
	int64_t dur;
	bool ok;
};

struct coord_safety {
	const struct coord_safety_conf *c;
	struct tsring global;
	struct svc *svcs;
	size_t n_svcs;
	struct ident *ids; // open addressing, MAX_IDENTITIES slots
	size_t n_ids;
	int storm_head, storm_tail; // demanded identities, oldest demand first
	int storm_first;	    // first with last_demand >= storm_lo, or -1
	int64_t storm_lo;	    // oldest last_demand inside the storm window
	int64_t storm_n;	    // storm_first and the entries after it
	struct outcome outcomes[OUTCOMES];
	size_t out_head, out_n;
	int64_t in_flight;
	struct coord_breaker_state br;
};

struct coord_safety *
coord_safety_new(const struct coord_safety_conf *c)
{
	struct coord_safety *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->c = c;
	s->storm_head = s->storm_tail = s->storm_first = -1;
	s->storm_lo = 1;
	s->svcs = calloc(MAX_SERVICES, sizeof(*s->svcs));
	s->ids = calloc(MAX_IDENTITIES, sizeof(*s->ids));
	if (s->svcs == NULL || s->ids == NULL ||
	    tsring_init(&s->global, (size_t)c->global_max) < 0) {
		coord_safety_free(s);
		return NULL;
	}
	return s;
}

void
coord_safety_free(struct coord_safety *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; s->svcs != NULL && i < s->n_svcs; i++) {
		free(s->svcs[i].name);
		free(s->svcs[i].actions.v);
	}
	for (size_t i = 0; s->ids != NULL && i < MAX_IDENTITIES; i++)
		free(s->ids[i].cycles.v);
	free(s->svcs);
	free(s->ids);
	free(s->global.v);
	free(s);
}

// Finds or adds a service; NULL when the table is full (then the
// per-service checks cannot apply, but the global ones still do).
static struct svc *
svc_get(struct coord_safety *s, const char *name, bool add)
{
	struct svc *v;

	for (size_t i = 0; i < s->n_svcs; i++)
		if (strcmp(s->svcs[i].name, name) == 0)
			return &s->svcs[i];
	if (!add || s->n_svcs == MAX_SERVICES)
		return NULL;
	v = &s->svcs[s->n_svcs];
	v->name = strdup(name);
	if (v->name == NULL ||
	    tsring_init(&v->actions, (size_t)s->c->service_max) < 0) {
		free(v->name);
		v->name = NULL;
		return NULL;
	}
	s->n_svcs++;
	return v;
}

static struct ident *
ident_get(struct coord_safety *s, uint64_t id, bool add)
{
	size_t i = (size_t)(id % MAX_IDENTITIES);

	for (size_t probe = 0; probe < MAX_IDENTITIES; probe++) {
		struct ident *e = &s->ids[(i + probe) % MAX_IDENTITIES];

		if (e->used && e->id == id)
			return e;
		if (!e->used) {
			// Keep a quarter free so probing stays short.
			if (!add || s->n_ids >= MAX_IDENTITIES * 3 / 4)
				return NULL;
			if (tsring_init(&e->cycles, (size_t)s->c->flap_max + 1) < 0)
				return NULL;
			e->used = true;
			e->id = id;
			e->svc = -1;
			s->n_ids++;
			return e;
		}
	}
	return NULL;
}

static bool
is_critical(const struct coord_safety_conf *c, const char *service)
{
	for (size_t i = 0; i < c->critical_services.n; i++)
		if (strcmp(c->critical_services.v[i], service) == 0)
			return true;
	return false;
}

static bool
block(struct coord_verdict *v, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
block(struct coord_verdict *v, const char *check, const char *fmt, ...)
{
	va_list ap;

	v->allow = false;
	snprintf(v->check, sizeof(v->check), "%s", check);
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	return true;
}

static void
breaker_update(struct coord_safety *s, int64_t now)
{
	struct coord_breaker_state *b = &s->br;

	if (b->open && !b->paused_by_operator && b->until_ms > 0 &&
	    now >= b->until_ms) {
		cm_notice("safety.breaker_closed", "reason=cool_off_passed");
		b->open = false;
		b->reason[0] = '\0';
	}
}

static void
breaker_open(struct coord_safety *s, int64_t now, const char *reason)
{
	struct coord_breaker_state *b = &s->br;

	if (b->open)
		return;
	b->open = true;
	b->opened_ms = now;
	b->until_ms = s->c->breaker_cool_off_ms > 0 ?
	    now + s->c->breaker_cool_off_ms : 0;
	snprintf(b->reason, sizeof(b->reason), "%s", reason);
	cm_warn("safety.breaker_open", "reason=%s", cm_q(reason));
}

static bool
check_dependencies(struct coord_safety *s, const struct coord_safety_req *r,
    struct coord_verdict *v)
{
	const struct cm_list *deps = &s->c->dependencies;

	for (size_t i = 0; i < deps->n; i++) {
		const struct coord_dependency_conf *d =
		    (const struct coord_dependency_conf *)deps->v + i;

		if (strcmp(d->service, r->service) != 0)
			continue;
		for (size_t j = 0; j < d->depends_on.n; j++) {
			struct svc *dep = svc_get(s, d->depends_on.v[j], false);

			if (dep == NULL ||
			    (dep->open_incidents == 0 && dep->in_flight == 0))
				continue;
			v->wait = s->c->dependency_policy == COORD_DEP_WAIT;
			return block(v, "dependency", "%s depends on %s, which "
			    "is %s (%" PRId64 " open incident(s), %" PRId64
			    " action(s) in flight): treating the cause first; "
			    "dependent %s %s", r->service, dep->name,
			    dep->in_flight ? "being remediated" : "alerting",
			    dep->open_incidents, dep->in_flight, r->service,
			    v->wait ? "waits" : "skipped");
		}
	}
	return false;
}

// FNV-1a: the blast window's instances are told apart by it first.
static uint64_t
inst_hash(const char *s)
{
	return cm_fnv1a(CM_FNV_OFFSET, s);
}

static bool
check_blast(struct coord_safety *s, const struct coord_safety_req *r,
    struct svc *sv, int64_t now, struct coord_verdict *v)
{
	int64_t since = now - s->c->blast_window_ms, allowed, distinct = 0;
	// The other instances restarted within the window, each counted
	// once, through an open-addressing set of slot numbers (+1; 0 is
	// empty) keyed by the instance's hash (a pairwise comparison was
	// 65,000 strcmp calls for a full window).
	uint16_t set[2 * BLAST_SLOTS];
	const size_t mask = 2 * BLAST_SLOTS - 1;
	char self[sizeof(sv->blast[0].instance)];
	uint64_t hself;

	if (sv == NULL || r->instance[0] == '\0' || r->type != COORD_ACT_RESTART)
		return false;
	allowed = r->service_instances * s->c->blast_percent / 100;
	if (allowed < 1)
		allowed = 1;
	snprintf(self, sizeof(self), "%s", r->instance); // as slots keep it
	hself = inst_hash(self);
	memset(set, 0, sizeof(set));
	for (size_t i = 0; i < BLAST_SLOTS; i++) {
		const struct blast *b = &sv->blast[i];
		size_t k;

		if (b->ts < since || b->ts == 0 || (b->hash == hself &&
		    strcmp(b->instance, self) == 0))
			continue; // the same instance again is not a new one
		for (k = b->hash & mask; set[k] != 0; k = (k + 1) & mask) {
			const struct blast *o = &sv->blast[set[k] - 1];

			if (o->hash == b->hash &&
			    strcmp(o->instance, b->instance) == 0)
				break;
		}
		if (set[k] == 0) {
			set[k] = (uint16_t)(i + 1);
			distinct++;
		}
	}
	if (distinct + 1 <= allowed)
		return false;
	if (r->service_instances <= 0)
		return block(v, "blast_radius", "restarting %s would make %"
		    PRId64 " instances of %s restarted within %" PRId64 " s; "
		    "the instance count is unknown, so 1 is allowed",
		    r->instance, distinct + 1, r->service,
		    s->c->blast_window_ms / 1000);
	return block(v, "blast_radius", "restarting %s would make %" PRId64
	    " of %" PRId64 " instances of %s restarted within %" PRId64
	    " s, above %" PRId64 "%% (%" PRId64 " allowed)", r->instance,
	    distinct + 1, r->service_instances, r->service,
	    s->c->blast_window_ms / 1000, s->c->blast_percent, allowed);
}

void
coord_safety_check(struct coord_safety *s, const struct coord_safety_req *r,
    int64_t now, struct coord_verdict *v)
{
	struct svc *sv = svc_get(s, r->service, false);
	struct ident *id = ident_get(s, r->identity, false);
	size_t n;

	memset(v, 0, sizeof(*v));
	v->allow = true;
	breaker_update(s, now);
	if (s->br.open) {
		block(v, "breaker", "automation paused: %s", s->br.reason);
		return;
	}
	if (r->type == COORD_ACT_RESTART && !r->force &&
	    is_critical(s->c, r->service)) {
		block(v, "critical", "%s is a critical service; the rule needs "
		    "force: true to restart it", r->service);
		return;
	}
	if (check_dependencies(s, r, v))
		return;
	if (id != NULL) {
		n = tsring_since(&id->cycles, now - s->c->flap_window_ms);
		if ((int64_t)n >= s->c->flap_max) {
			block(v, "flapping", "loop: this target went fire, fix, "
			    "resolve %zu times within %" PRId64 " s (limit %"
			    PRId64 "); the fix does not hold", n,
			    s->c->flap_window_ms / 1000, s->c->flap_max);
			return;
		}
	}
	if (s->in_flight >= s->c->max_concurrent) {
		block(v, "concurrency", "%" PRId64 " actions in flight, limit %"
		    PRId64, s->in_flight, s->c->max_concurrent);
		return;
	}
	n = tsring_since(&s->global, now - s->c->global_window_ms);
	if ((int64_t)n >= s->c->global_max) {
		block(v, "rate_global", "%zu actions within %" PRId64 " s, "
		    "limit %" PRId64, n, s->c->global_window_ms / 1000,
		    s->c->global_max);
		return;
	}
	if (sv != NULL) {
		n = tsring_since(&sv->actions, now - s->c->service_window_ms);
		if ((int64_t)n >= s->c->service_max) {
			block(v, "rate_service", "%zu actions on %s within %"
			    PRId64 " s, limit %" PRId64, n, r->service,
			    s->c->service_window_ms / 1000, s->c->service_max);
			return;
		}
	}
	check_blast(s, r, sv, now, v);
}

void
coord_safety_started(struct coord_safety *s, const struct coord_safety_req *r,
    int64_t now)
{
	struct svc *sv = svc_get(s, r->service, true);

	tsring_push(&s->global, now);
	s->in_flight++;
	if (sv == NULL)
		return;
	tsring_push(&sv->actions, now);
	sv->in_flight++;
	if (r->instance[0] != '\0' && r->type == COORD_ACT_RESTART) {
		struct blast *b = &sv->blast[sv->blast_head];

		snprintf(b->instance, sizeof(b->instance), "%s", r->instance);
		b->hash = inst_hash(b->instance);
		b->ts = now;
		sv->blast_head = (sv->blast_head + 1) % BLAST_SLOTS;
	}
}

void
coord_safety_finished(struct coord_safety *s, const char *service, bool ok,
    int64_t duration_ms, int64_t now)
{
	struct svc *sv = svc_get(s, service, false);
	int64_t since = now - s->c->breaker_window_ms, n = 0, good = 0, dur = 0;
	char why[COORD_REASON_MAX];

	if (s->in_flight > 0)
		s->in_flight--;
	if (sv != NULL && sv->in_flight > 0)
		sv->in_flight--;
	s->outcomes[s->out_head] = (struct outcome){ .ts = now,
		.dur = duration_ms, .ok = ok };
	s->out_head = (s->out_head + 1) % OUTCOMES;
	if (s->out_n < OUTCOMES)
		s->out_n++;
	for (size_t i = 0; i < s->out_n; i++) {
		if (s->outcomes[i].ts < since)
			continue;
		n++;
		good += s->outcomes[i].ok;
		dur += s->outcomes[i].dur;
	}
	s->br.window_actions = n;
	s->br.window_ok = good;
	if (n < s->c->breaker_min_actions)
		return;
	if (good * 100 < s->c->breaker_success_percent * n) {
		snprintf(why, sizeof(why), "success rate %" PRId64 "%% (%" PRId64
		    " of %" PRId64 " actions within %" PRId64 " s) is below %"
		    PRId64 "%%", good * 100 / n, good, n,
		    s->c->breaker_window_ms / 1000, s->c->breaker_success_percent);
		breaker_open(s, now, why);
	} else if (dur / n > s->c->breaker_max_avg_ms) {
		snprintf(why, sizeof(why), "average action time %" PRId64
		    " s over %" PRId64 " actions is above %" PRId64 " s",
		    dur / n / 1000, n, s->c->breaker_max_avg_ms / 1000);
		breaker_open(s, now, why);
	}
}

void
coord_safety_alerting(struct coord_safety *s, const char *service,
    uint64_t identity, bool firing, bool acted, int64_t now)
{
	struct ident *id = ident_get(s, identity, true);
	struct svc *sv = svc_get(s, service, true);

	if (id == NULL)
		return;
	if (sv != NULL)
		id->svc = (int)(sv - s->svcs);
	if (firing && !id->open) {
		id->open = true;
		if (sv != NULL)
			sv->open_incidents++;
	} else if (!firing && id->open) {
		id->open = false;
		if (id->svc >= 0 && s->svcs[id->svc].open_incidents > 0)
			s->svcs[id->svc].open_incidents--;
		if (acted)
			tsring_push(&id->cycles, now);
	}
}

// Storm counting without a scan of the identity table. Every identity
// demanded at least once sits in a list ordered by last_demand, oldest
// first. storm_first is the first entry with last_demand >= storm_lo and
// storm_n counts it and every entry after it. While the clock moves
// forward a demand is O(1) amortised: the demanded entry moves to the
// tail, and the window passes each entry once. The clock is the wall
// clock and may step back: then an entry goes in behind the newer ones
// and the bound moves back over the entries that count again, so the
// count stays exact, at the cost of the entries stepped over.
static void
storm_unlink(struct coord_safety *s, int k)
{
	struct ident *e = &s->ids[k];

	if (e->last_demand >= s->storm_lo)
		s->storm_n--;
	if (s->storm_first == k)
		s->storm_first = e->next;
	if (e->prev >= 0)
		s->ids[e->prev].next = e->next;
	else
		s->storm_head = e->next;
	if (e->next >= 0)
		s->ids[e->next].prev = e->prev;
	else
		s->storm_tail = e->prev;
}

static void
storm_link(struct coord_safety *s, int k, int64_t ts)
{
	struct ident *e = &s->ids[k];
	int after = s->storm_tail;

	while (after >= 0 && s->ids[after].last_demand > ts)
		after = s->ids[after].prev; // only when the clock stepped back
	e->last_demand = ts;
	e->prev = after;
	e->next = after >= 0 ? s->ids[after].next : s->storm_head;
	if (e->prev >= 0)
		s->ids[e->prev].next = k;
	else
		s->storm_head = k;
	if (e->next >= 0)
		s->ids[e->next].prev = k;
	else
		s->storm_tail = k;
	if (ts < s->storm_lo)
		return;
	// Entries before k are not newer than ts, so none of them counts
	// unless storm_first is one of them.
	s->storm_n++;
	if (s->storm_first < 0 || s->ids[s->storm_first].last_demand > ts)
		s->storm_first = k;
}

// Moves the window's lower bound to `lo`, either way.
static void
storm_bound(struct coord_safety *s, int64_t lo)
{
	int k;

	while (s->storm_first >= 0 && s->ids[s->storm_first].last_demand < lo) {
		s->storm_first = s->ids[s->storm_first].next;
		s->storm_n--;
	}
	k = s->storm_first >= 0 ? s->ids[s->storm_first].prev : s->storm_tail;
	while (k >= 0 && s->ids[k].last_demand >= lo) {
		s->storm_first = k;
		s->storm_n++;
		k = s->ids[k].prev;
	}
	s->storm_lo = lo;
}

bool
coord_safety_demand(struct coord_safety *s, uint64_t identity,
    int64_t known_targets, int64_t now)
{
	struct ident *id = ident_get(s, identity, true);
	int64_t since = now - s->c->storm_window_ms, distinct;
	char why[COORD_REASON_MAX];

	breaker_update(s, now);
	if (id != NULL) {
		if (id->demanded)
			storm_unlink(s, (int)(id - s->ids));
		storm_link(s, (int)(id - s->ids), now);
		id->demanded = true;
	}
	// Demands at or before the epoch (last_demand <= 0) never count.
	storm_bound(s, since > 0 ? since : 1);
	distinct = s->storm_n;
	if (distinct < s->c->storm_min_targets)
		return s->br.open;
	if (known_targets > 0 &&
	    distinct * 100 > s->c->storm_percent * known_targets) {
		snprintf(why, sizeof(why), "alert storm: %" PRId64 " of %" PRId64
		    " known targets (%" PRId64 "%%) alerting within %" PRId64
		    " s, above %" PRId64 "%%: likely a monitoring or network "
		    "fault, not %" PRId64 " broken services", distinct,
		    known_targets, distinct * 100 / known_targets,
		    s->c->storm_window_ms / 1000, s->c->storm_percent, distinct);
		breaker_open(s, now, why);
	} else if (distinct > s->c->global_max) {
		snprintf(why, sizeof(why), "alert storm: %" PRId64 " targets want "
		    "action within %" PRId64 " s, more than the global budget "
		    "of %" PRId64 " actions", distinct,
		    s->c->storm_window_ms / 1000, s->c->global_max);
		breaker_open(s, now, why);
	}
	return s->br.open;
}

void
coord_safety_breaker(struct coord_safety *s, int64_t now,
    struct coord_breaker_state *ret)
{
	breaker_update(s, now);
	*ret = s->br;
}

void
coord_safety_restore_breaker(struct coord_safety *s,
    const struct coord_breaker_state *b)
{
	s->br.open = b->open;
	s->br.paused_by_operator = b->paused_by_operator;
	s->br.opened_ms = b->opened_ms;
	s->br.until_ms = b->until_ms;
	snprintf(s->br.reason, sizeof(s->br.reason), "%s", b->reason);
}

void
coord_safety_pause(struct coord_safety *s, const char *who, int64_t now)
{
	char why[COORD_REASON_MAX];

	snprintf(why, sizeof(why), "paused by %s", who);
	s->br.open = false; // re-open with the operator's reason
	breaker_open(s, now, why);
	s->br.paused_by_operator = true;
	s->br.until_ms = 0;
}

void
coord_safety_resume(struct coord_safety *s, int64_t now)
{
	(void)now;
	if (s->br.open)
		cm_notice("safety.breaker_closed", "reason=resumed_by_operator");
	s->br.open = false;
	s->br.paused_by_operator = false;
	s->br.reason[0] = '\0';
	// A fresh start: old failures must not re-open it at once.
	s->out_n = 0;
	s->out_head = 0;
}
