// SPDX-License-Identifier: MIT
// Table-driven tests of every safety check: what passes, what blocks, and
// the reason with the numbers compared.
#include <stdlib.h>

#include "cm_log.h"
#include "coord_safety.h"
#include "tt.h"

#define MIN 60000LL
#define T0 1796378400000LL // 2026-12-04T10:00:00Z

static struct coord_safety_conf
defaults(void)
{
	struct coord_safety_conf c;
	char err[256];

	memset(&c, 0, sizeof(c));
	// Defaults come from the table, as in a real config.
	if (cm_conf_load_mem(&c, coord_safety_fields, "t", "{}", 2, err,
	    sizeof(err)) != 0)
		printf("# %s\n", err);
	return c;
}

static struct coord_safety_req
restart(const char *svc, const char *inst, uint64_t id, int64_t n)
{
	return (struct coord_safety_req){ .type = COORD_ACT_RESTART,
		.service = svc, .instance = inst, .identity = id,
		.service_instances = n };
}

static void
test_defaults_match_the_issue(void)
{
	struct coord_safety_conf c = defaults();

	CHECK_INT(c.blast_percent, 25);
	CHECK_INT(c.flap_max, 3);
	CHECK_INT(c.flap_window_ms, 60 * MIN);
	CHECK_INT(c.breaker_success_percent, 95);
	CHECK_INT(c.dependency_policy, COORD_DEP_SKIP);
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_critical_needs_force(void)
{
	struct coord_safety_conf c = defaults();
	char *crit[] = { "db" };
	struct coord_safety *s;
	struct coord_verdict v;
	struct coord_safety_req r = restart("db", "db-0", 1, 4);

	c.critical_services = (struct cm_strlist){ crit, 1 };
	s = coord_safety_new(&c);
	coord_safety_check(s, &r, T0, &v);
	CHECK(!v.allow);
	CHECK_STR(v.check, "critical");
	CHECK_HAS(v.reason, "force: true");
	r.force = true;
	coord_safety_check(s, &r, T0, &v);
	CHECK(v.allow);
	r = restart("web", "web-0", 2, 4);
	coord_safety_check(s, &r, T0, &v);
	CHECK(v.allow);
	coord_safety_free(s);
	c.critical_services = (struct cm_strlist){ 0 };
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_rate_limits(void)
{
	static const struct {
		const char *name;
		int64_t global_max, service_max, n_prior;
		const char *prior_svc;
		int64_t gap_ms;
		bool allow;
		const char *check, *reason;
	} rows[] = {
		{ "under both", 5, 3, 2, "web", 0, true, "", "" },
		{ "service full", 5, 3, 3, "web", 0, false, "rate_service",
		  "3 actions on web within 600 s, limit 3" },
		{ "other service fills global", 5, 3, 5, "api", 0, false,
		  "rate_global", "5 actions within 600 s, limit 5" },
		{ "window passed", 5, 3, 3, "web", 11 * MIN, true, "", "" },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct coord_safety_conf c = defaults();
		struct coord_safety *s;
		struct coord_verdict v;
		struct coord_safety_req r;

		c.global_max = rows[i].global_max;
		c.service_max = rows[i].service_max;
		c.blast_percent = 100;
		s = coord_safety_new(&c);
		for (int64_t k = 0; k < rows[i].n_prior; k++) {
			char inst[16];

			snprintf(inst, sizeof(inst), "i%lld", (long long)k);
			r = restart(rows[i].prior_svc, inst, 100 + (uint64_t)k, 10);
			coord_safety_started(s, &r, T0 + k);
			coord_safety_finished(s, rows[i].prior_svc, true, 10, T0 + k);
		}
		r = restart("web", "w9", 1, 10);
		coord_safety_check(s, &r, T0 + 100 + rows[i].gap_ms, &v);
		printf("# row: %s\n", rows[i].name);
		CHECK_INT(v.allow, rows[i].allow);
		CHECK_STR(v.check, rows[i].check);
		CHECK_HAS(v.reason, rows[i].reason);
		coord_safety_free(s);
		cm_conf_free(&c, coord_safety_fields);
	}
}

static void
test_concurrency(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s;
	struct coord_verdict v;
	struct coord_safety_req r = restart("a", "", 1, 1);

	c.max_concurrent = 2;
	s = coord_safety_new(&c);
	coord_safety_started(s, &r, T0);
	r.service = "b";
	coord_safety_started(s, &r, T0);
	r.service = "c";
	coord_safety_check(s, &r, T0, &v);
	CHECK_STR(v.check, "concurrency");
	CHECK_HAS(v.reason, "2 actions in flight, limit 2");
	coord_safety_finished(s, "a", true, 5, T0 + 5);
	coord_safety_check(s, &r, T0 + 5, &v);
	CHECK(v.allow);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_blast_radius(void)
{
	static const struct {
		int64_t instances, percent, prior;
		bool allow;
	} rows[] = {
		{ 4, 25, 0, true },   // 1 of 4 = 25 %
		{ 4, 25, 1, false },  // 2 of 4 > 25 %
		{ 2, 25, 0, true },   // at least one is always allowed
		{ 2, 25, 1, false },
		{ 50, 25, 12, false }, // 13 of 50 > 12 allowed
		{ 50, 25, 11, true },
		{ 10, 100, 9, true },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct coord_safety_conf c = defaults();
		struct coord_safety *s;
		struct coord_verdict v;
		struct coord_safety_req r;

		c.blast_percent = rows[i].percent;
		c.service_max = 1000;
		c.global_max = 1000;
		c.max_concurrent = 1000;
		s = coord_safety_new(&c);
		for (int64_t k = 0; k < rows[i].prior; k++) {
			char inst[16];

			snprintf(inst, sizeof(inst), "web-%lld", (long long)k);
			r = restart("web", inst, (uint64_t)k + 1, rows[i].instances);
			coord_safety_started(s, &r, T0);
		}
		r = restart("web", "web-99", 999, rows[i].instances);
		coord_safety_check(s, &r, T0 + 1000, &v);
		printf("# row %zu\n", i);
		CHECK_INT(v.allow, rows[i].allow);
		if (!rows[i].allow) {
			CHECK_STR(v.check, "blast_radius");
			CHECK_HAS(v.reason, "instances of web restarted");
		}
		// The same instance again is not a new one.
		if (rows[i].prior > 0) {
			r.instance = "web-0";
			coord_safety_check(s, &r, T0 + 1000, &v);
			CHECK(v.allow || strcmp(v.check, "blast_radius") != 0 ||
			    rows[i].prior > rows[i].instances * rows[i].percent / 100);
		}
		coord_safety_free(s);
		cm_conf_free(&c, coord_safety_fields);
	}
}

static void
test_dependencies(void)
{
	struct coord_safety_conf c = defaults();
	char *deps[] = { "db", "cache" }, *svc = "api";
	struct coord_dependency_conf d = { .service = svc,
		.depends_on = { deps, 2 } };
	struct coord_safety *s;
	struct coord_verdict v;
	struct coord_safety_req r = restart("api", "api-0", 1, 4);

	c.dependencies = (struct cm_list){ &d, 1 };
	s = coord_safety_new(&c);
	coord_safety_check(s, &r, T0, &v);
	CHECK(v.allow);
	coord_safety_alerting(s, "db", 77, true, false, T0);
	coord_safety_check(s, &r, T0, &v);
	CHECK_STR(v.check, "dependency");
	CHECK_HAS(v.reason, "api depends on db, which is alerting");
	CHECK(!v.wait);
	coord_safety_alerting(s, "db", 77, false, false, T0 + 10);
	coord_safety_check(s, &r, T0 + 10, &v);
	CHECK(v.allow);
	c.dependency_policy = COORD_DEP_WAIT;
	r = restart("db", "db-0", 78, 2);
	coord_safety_started(s, &r, T0 + 20);
	r = restart("api", "api-0", 1, 4);
	coord_safety_check(s, &r, T0 + 20, &v);
	CHECK_STR(v.check, "dependency");
	CHECK_HAS(v.reason, "being remediated");
	CHECK(v.wait);
	coord_safety_free(s);
	c.dependencies = (struct cm_list){ 0 };
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_flapping(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s = coord_safety_new(&c);
	struct coord_verdict v;
	struct coord_safety_req r = restart("web", "web-0", 42, 8);

	for (int k = 0; k < 3; k++) {
		coord_safety_check(s, &r, T0 + k * 10 * MIN, &v);
		CHECK(v.allow);
		coord_safety_alerting(s, "web", 42, true, false, T0 + k * 10 * MIN);
		coord_safety_alerting(s, "web", 42, false, true,
		    T0 + k * 10 * MIN + MIN);
	}
	coord_safety_check(s, &r, T0 + 35 * MIN, &v);
	CHECK_STR(v.check, "flapping");
	CHECK_HAS(v.reason, "loop: this target went fire, fix, resolve 3 times "
	    "within 3600 s (limit 3)");
	// Resolves without an action taken are not cycles of a fix.
	coord_safety_alerting(s, "web", 43, true, false, T0);
	coord_safety_alerting(s, "web", 43, false, false, T0 + 1);
	r.identity = 43;
	coord_safety_check(s, &r, T0 + 35 * MIN, &v);
	CHECK(v.allow);
	// An hour later the first cycle left the window.
	r.identity = 42;
	coord_safety_check(s, &r, T0 + 62 * MIN, &v);
	CHECK(v.allow);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_breaker_on_success_rate_and_cool_off(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s = coord_safety_new(&c);
	struct coord_breaker_state b;
	struct coord_verdict v;
	struct coord_safety_req r = restart("web", "", 1, 8);

	for (int k = 0; k < 4; k++)
		coord_safety_finished(s, "web", k != 0, 1000, T0 + k);
	coord_safety_breaker(s, T0 + 10, &b);
	CHECK(!b.open); // 4 < min_actions 5
	coord_safety_finished(s, "web", true, 1000, T0 + 5);
	coord_safety_breaker(s, T0 + 10, &b);
	CHECK(b.open); // 4 of 5 = 80 % < 95 %
	CHECK_HAS(b.reason, "success rate 80% (4 of 5 actions within 1800 s) "
	    "is below 95%");
	coord_safety_check(s, &r, T0 + 10, &v);
	CHECK_STR(v.check, "breaker");
	coord_safety_check(s, &r, T0 + 31 * MIN, &v);
	CHECK(v.allow); // cool-off passed
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_breaker_on_slow_actions(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s = coord_safety_new(&c);
	struct coord_breaker_state b;

	for (int k = 0; k < 5; k++)
		coord_safety_finished(s, "web", true, 11 * MIN, T0 + k);
	coord_safety_breaker(s, T0 + 10, &b);
	CHECK(b.open);
	CHECK_HAS(b.reason, "average action time 660 s over 5 actions is above 600 s");
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static void
test_operator_pause_and_resume(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s = coord_safety_new(&c);
	struct coord_verdict v;
	struct coord_safety_req r = restart("web", "", 1, 8);

	coord_safety_pause(s, "alice", T0);
	coord_safety_check(s, &r, T0 + 365LL * 24 * 60 * MIN, &v);
	CHECK_STR(v.check, "breaker");
	CHECK_HAS(v.reason, "paused by alice");
	coord_safety_resume(s, T0);
	coord_safety_check(s, &r, T0, &v);
	CHECK(v.allow);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

// C07: 48 of 240 targets report down within 30 s. The breaker must open
// while the first delivery is being counted, before any restart.
static void
test_c07_storm_opens_breaker_before_acting(void)
{
	struct coord_safety_conf c = defaults();
	struct coord_safety *s = coord_safety_new(&c);
	struct coord_breaker_state b;
	bool open = false;
	int counted = 0;

	c.global_max = 5; // policy max_actions_per_10m
	for (uint64_t k = 0; k < 48 && !open; k++) {
		open = coord_safety_demand(s, 0x7000 + k, 240, T0 + (int64_t)k);
		counted++;
	}
	coord_safety_breaker(s, T0 + 100, &b);
	CHECK(b.open);
	CHECK(counted <= 16); // within the first of three deliveries
	CHECK_HAS(b.reason, "alert storm");
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);

	// The share alone (no small budget): 25 of 240 > 10 %.
	c = defaults();
	c.global_max = 1000;
	s = coord_safety_new(&c);
	for (uint64_t k = 0; k < 25; k++)
		open = coord_safety_demand(s, 0x8000 + k, 240, T0);
	CHECK(open);
	coord_safety_breaker(s, T0, &b);
	CHECK_HAS(b.reason, "25 of 240 known targets (10%) alerting within 60 s, "
	    "above 10%");
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);

	// Four of five instances alerting in a small fleet are no storm:
	// below storm_min_targets the share means nothing.
	c = defaults();
	s = coord_safety_new(&c);
	for (uint64_t k = 0; k < 4; k++)
		open = coord_safety_demand(s, 0xa000 + k, 5, T0);
	CHECK(!open);
	open = coord_safety_demand(s, 0xa000 + 4, 5, T0);
	CHECK(open);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);

	// A few alerts in a big fleet are no storm.
	c = defaults();
	s = coord_safety_new(&c);
	for (uint64_t k = 0; k < 3; k++)
		open = coord_safety_demand(s, 0x9000 + k, 240, T0);
	CHECK(!open);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static void
quiet(int level, const char *line, void *arg)
{
	(void)level;
	(void)line;
	(void)arg;
}

// A checker whose storm count shows in the breaker reason: one known
// target and storm_min_targets 1 make any count of 1 or more a storm.
static struct coord_safety *
storm_counter(struct coord_safety_conf *c, int64_t window_ms)
{
	*c = defaults();
	c->storm_min_targets = 1;
	c->storm_percent = 1;
	c->storm_window_ms = window_ms;
	cm_log_set_sink(quiet, NULL); // a breaker opens on every demand
	return coord_safety_new(c);
}

// Demands `id` at `now` and returns the distinct identities the storm
// check counted, read back from the reason; -1 if it cannot be read.
static int64_t
storm_count(struct coord_safety *s, uint64_t id, int64_t now)
{
	struct coord_breaker_state b;
	long long n = -1;

	coord_safety_resume(s, now);
	if (!coord_safety_demand(s, id, 1, now))
		return 0;
	coord_safety_breaker(s, now, &b);
	if (sscanf(b.reason, "alert storm: %lld of 1 known", &n) != 1)
		return -1;
	return n;
}

static void
storm_counter_free(struct coord_safety *s, struct coord_safety_conf *c)
{
	coord_safety_free(s);
	cm_conf_free(c, coord_safety_fields);
	cm_log_set_sink(NULL, NULL);
}

// 5,000 identities within the window, then the window passes them all:
// the count falls back and rises again one by one, the window bound is
// inclusive, and a clock stepping back counts the newer demands again.
static void
test_storm_count_across_window_expiry(void)
{
	struct coord_safety_conf c;
	struct coord_safety *s = storm_counter(&c, MIN);
	int64_t bad = 0;

	for (int64_t k = 0; k < 5000; k++)
		bad += storm_count(s, 1 + (uint64_t)k, T0 + k * 10) != k + 1;
	CHECK_INT(bad, 0);
	// A demand again is no new identity.
	CHECK_INT(storm_count(s, 5000, T0 + 49990), 5000);
	// The window's oldest edge still counts; 1 ms later it does not.
	CHECK_INT(storm_count(s, 9001, T0 + 10 + MIN), 4999 + 1);
	CHECK_INT(storm_count(s, 9001, T0 + 11 + MIN), 4998 + 1);
	// Half of them passed.
	CHECK_INT(storm_count(s, 9001, T0 + 24990 + MIN), 2501 + 1);
	// All passed: only the demand being counted is left.
	CHECK_INT(storm_count(s, 9002, T0 + 10 * MIN), 1);
	bad = 0;
	for (int64_t k = 0; k < 5000; k++)
		bad += storm_count(s, 1 + (uint64_t)k, T0 + 10 * MIN + k) !=
		    k + 2;
	CHECK_INT(bad, 0);
	// The wall clock steps back ten minutes: every later demand is
	// inside [now - 1 min, ...) again, id 1 moves back and still counts.
	CHECK_INT(storm_count(s, 1, T0), 5000 + 2);
	// Forward again: id 1 now lies before the window, 9002 on its edge.
	CHECK_INT(storm_count(s, 2, T0 + 11 * MIN), 4999 + 1);
	storm_counter_free(s, &c);
}

static uint64_t
xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

#define POOL 400

// The count against a recount of every demand so far, over random
// demands: identities that collide in the hash table, time that mostly
// moves forward but sometimes steps back, and the epoch (demands at or
// before time 0 never count). Then a full table: refused identities are
// not counted, and do not stop the held ones from expiring.
static void
test_storm_count_matches_recount(void)
{
	struct coord_safety_conf c;
	struct coord_safety *s = storm_counter(&c, 10000);
	int64_t last[POOL], now = -3000, got, want;
	bool seen[POOL] = { false };
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int step, bad = 0;

	for (step = 0; step < 20000 && bad < 5; step++) {
		uint64_t r = xorshift(&x);
		size_t i = (size_t)(r >> 32) % POOL;

		if (r % 100 < 5)
			now -= (int64_t)(r >> 8) % 20000;
		else
			now += (int64_t)(r >> 8) % 1500;
		// Slots i % 40 + 7: ten identities share each home slot.
		got = storm_count(s, i % 40 + 7 + i / 40 * 65536, now);
		last[i] = now;
		seen[i] = true;
		want = 0;
		for (size_t k = 0; k < POOL; k++)
			want += seen[k] && last[k] >= now - 10000 && last[k] > 0;
		if (got != want) {
			printf("# step %d at %lld: counted %lld, recount %lld\n",
			    step, (long long)now, (long long)got,
			    (long long)want);
			bad++;
		}
	}
	CHECK_INT(bad, 0);
	CHECK_INT(step, 20000);
	storm_counter_free(s, &c);

	// The table holds 3/4 of its 65,536 slots.
	s = storm_counter(&c, MIN);
	bad = 0;
	for (int64_t k = 0; k < 49152; k++)
		bad += storm_count(s, 1 + (uint64_t)k, T0) != k + 1;
	CHECK_INT(bad, 0);
	CHECK_INT(storm_count(s, 100000, T0), 49152);
	CHECK_INT(storm_count(s, 100001, T0 + MIN + 1), 0);
	CHECK_INT(storm_count(s, 7, T0 + MIN + 2), 1);
	storm_counter_free(s, &c);
}

// Restarts of one instance count once, however many and in whatever
// order they sit in the window; the reason gives the distinct count.
static void
test_blast_radius_counts_instances_once(void)
{
	static const char *const order[] = {
		"web-2", "web-0", "web-1", "web-0", "web-2", "web-2", "web-1",
	};
	struct coord_safety_conf c = defaults();
	struct coord_safety_req r;
	struct coord_verdict v;
	struct coord_safety *s;

	c.blast_percent = 75; // of 4 instances: 3 allowed
	c.service_max = 1000;
	c.global_max = 1000;
	c.max_concurrent = 1000;
	s = coord_safety_new(&c);
	for (size_t k = 0; k < 4; k++) { // web-2, web-0, web-1, web-0
		r = restart("web", order[k], (uint64_t)k + 1, 4);
		coord_safety_started(s, &r, T0);
	}
	r = restart("web", "web-3", 99, 4);
	coord_safety_check(s, &r, T0 + 1000, &v);
	CHECK(!v.allow);
	CHECK_STR(v.check, "blast_radius");
	CHECK_HAS(v.reason, "would make 4 of 4 instances");
	// One of those three again: still 3 distinct, allowed.
	r = restart("web", "web-1", 98, 4);
	coord_safety_check(s, &r, T0 + 1000, &v);
	CHECK(v.allow);
	for (size_t k = 4; k < sizeof(order) / sizeof(order[0]); k++) {
		r = restart("web", order[k], (uint64_t)k + 1, 4);
		coord_safety_started(s, &r, T0);
	}
	r = restart("web", "web-0", 97, 4);
	coord_safety_check(s, &r, T0 + 1000, &v);
	CHECK(v.allow);
	coord_safety_free(s);
	cm_conf_free(&c, coord_safety_fields);
}

static const struct tt_case cases[] = {
	{ "defaults match the issue", test_defaults_match_the_issue },
	{ "critical services need force", test_critical_needs_force },
	{ "global and per-service rate limits", test_rate_limits },
	{ "concurrency limit", test_concurrency },
	{ "blast radius share with at least one", test_blast_radius },
	{ "blast radius counts an instance once",
	    test_blast_radius_counts_instances_once },
	{ "dependencies: skip or wait", test_dependencies },
	{ "flapping loop detection", test_flapping },
	{ "breaker on success rate, cool-off", test_breaker_on_success_rate_and_cool_off },
	{ "breaker on slow actions", test_breaker_on_slow_actions },
	{ "operator pause and resume", test_operator_pause_and_resume },
	{ "C07 storm opens the breaker before acting",
	  test_c07_storm_opens_breaker_before_acting },
	{ "storm count across window expiry, 5,000 identities",
	  test_storm_count_across_window_expiry },
	{ "storm count matches a recount of every demand",
	  test_storm_count_matches_recount },
	{ NULL, NULL },
};

TT_MAIN(cases)
