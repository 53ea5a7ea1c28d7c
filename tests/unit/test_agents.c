// SPDX-License-Identifier: MIT
// The agent registry on an open (unsealed) channel: the max_agents cap,
// re-registration at the cap, eviction of the longest-lost agent, and
// permits only for services the node registered, and a pod's agent
// (coord_agents_find_pod). A real coord_agents
// server on ipc:// in a temporary directory, spoken to with nng req.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "coord_agents.h"
#include "coord_conf.h"
#include "chan_peer.h"
#include "tt.h"

static char dir[64];
static int permit_calls;

struct rig {
	struct coord_agents *a;
	nng_socket req;
	char url[128];
};

static void
grant(const struct cm_msg_permit *req, struct cm_msg_reply *reply,
    void *arg)
{
	(void)req;
	(void)arg;
	permit_calls++;
	reply->ok = true;
	snprintf(reply->message, sizeof(reply->message), "granted");
}

static void
rig_start(struct rig *r, const char *name, int64_t lost_after_ms,
    size_t max)
{
	char err[256];

	snprintf(r->url, sizeof(r->url), "ipc://%s/%s.ipc", dir, name);
	err[0] = '\0';
	if (coord_agents_start(&r->a, r->url, lost_after_ms, NULL, err,
	    sizeof(err)) != 0)
		printf("# start: %s\n", err);
	coord_agents_set_max(r->a, max);
	coord_agents_set_permit(r->a, grant, NULL);
	permit_calls = 0;
	nng_req0_open(&r->req);
	nng_socket_set_ms(r->req, NNG_OPT_RECVTIMEO, 5000);
	nng_dial(r->req, r->url, NULL, 0);
}

static void
rig_stop(struct rig *r)
{
	nng_close(r->req);
	coord_agents_stop(r->a);
}

// Sends m, fills *ret with the answer. Returns 0 or -1.
static int
ask(struct rig *r, const struct cm_msg *m, struct cm_msg *ret)
{
	return chan_ask(r->req, m, ret);
}

// Sends m; its reply (not ok, code -EIO, when none came).
static struct cm_msg_reply
ask_reply(struct rig *r, const struct cm_msg *m)
{
	struct cm_msg_reply rep = { .ok = false, .code = -EIO };
	struct cm_msg out = { 0 };

	if (ask(r, m, &out) == 0 && out.type == CM_MSG_REPLY) {
		rep = out.u.reply;
		rep.json = NULL;
	}
	cm_msg_clear(&out);
	return rep;
}

// Registers `node` of `runtime` with the n workloads w; the reply.
static struct cm_msg_reply
reg_node(struct rig *r, const char *node, const char *runtime,
    struct cm_workload *w, size_t n)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_REGISTER, .id = 1 };

	snprintf(m.u.reg.node, sizeof(m.u.reg.node), "%s", node);
	snprintf(m.u.reg.addr, sizeof(m.u.reg.addr), "ipc://%s/%s.cmd", dir,
	    node);
	snprintf(m.u.reg.runtime, sizeof(m.u.reg.runtime), "%s", runtime);
	m.u.reg.workloads = n > 0 ? w : NULL;
	m.u.reg.n_workloads = n;
	return ask_reply(r, &m);
}

// Registers `node` of `runtime` hosting `instance` of `service`; the
// reply.
static struct cm_msg_reply
reg_as(struct rig *r, const char *node, const char *runtime,
    const char *service, const char *instance)
{
	struct cm_workload w = { .healthy = true };

	snprintf(w.service, sizeof(w.service), "%s", service);
	snprintf(w.instance, sizeof(w.instance), "%s", instance);
	snprintf(w.addr, sizeof(w.addr), "127.0.0.1:9");
	return reg_node(r, node, runtime, &w, 1);
}

// Registers `node` hosting `service` (instance service-0); the reply.
static struct cm_msg_reply
reg(struct rig *r, const char *node, const char *service)
{
	char inst[CM_NAME_MAX];

	snprintf(inst, sizeof(inst), "%.*s-0", CM_NAME_MAX - 3, service);
	return reg_as(r, node, "process", service, inst);
}

static struct cm_msg_reply
permit(struct rig *r, const char *node, const char *service)
{
	struct cm_msg m = { .version = CM_PROTO_VERSION,
		.type = CM_MSG_PERMIT, .id = 2 };

	snprintf(m.u.permit.node, sizeof(m.u.permit.node), "%s", node);
	snprintf(m.u.permit.service, sizeof(m.u.permit.service), "%s",
	    service);
	snprintf(m.u.permit.instance, sizeof(m.u.permit.instance), "%s-0",
	    service);
	snprintf(m.u.permit.reason, sizeof(m.u.permit.reason), "probe");
	return ask_reply(r, &m);
}

static int64_t
registered(struct rig *r, int64_t *lost)
{
	int64_t n, l;

	coord_agents_counts(r->a, &n, &l);
	if (lost != NULL)
		*lost = l;
	return n;
}

// Loads a config file holding `yaml`; returns coord_conf_load's result.
static int
load(struct coord_conf *c, const char *yaml, char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/c.yml", dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -EIO;
	fputs(yaml, f);
	fclose(f);
	return coord_conf_load(c, path, err, errlen);
}

static void
test_max_agents_defaults_to_5000(void)
{
	struct coord_conf c;
	char err[256] = "";

	CHECK_INT(load(&c, "{}\n", err, sizeof(err)), 0);
	CHECK_INT(c.max_agents, 5000);
	CHECK_INT(COORD_AGENTS_MAX_DEFAULT, 5000);
	coord_conf_free(&c);
	CHECK_INT(load(&c, "max_agents: 3\n", err, sizeof(err)), 0);
	CHECK_INT(c.max_agents, 3);
	coord_conf_free(&c);
	CHECK(load(&c, "max_agents: 0\n", err, sizeof(err)) < 0);
	CHECK_HAS(err, "max_agents");
}

static void
test_max_workloads_defaults_to_150000(void)
{
	struct coord_conf c;
	char err[256] = "";

	CHECK_INT(load(&c, "{}\n", err, sizeof(err)), 0);
	CHECK_INT(c.max_workloads, 150000);
	CHECK_INT(COORD_AGENTS_MAX_WORKLOADS_DEFAULT, 150000);
	coord_conf_free(&c);
	CHECK_INT(load(&c, "max_workloads: 0\n", err, sizeof(err)), 0);
	CHECK_INT(c.max_workloads, 0);
	coord_conf_free(&c);
	CHECK(load(&c, "max_workloads: 5120001\n", err, sizeof(err)) < 0);
	CHECK_HAS(err, "max_workloads");
	CHECK(load(&c, "max_workloads: -1\n", err, sizeof(err)) < 0);
	CHECK_HAS(err, "max_workloads");
}

static void
test_registration_beyond_the_cap_is_refused(void)
{
	struct rig r;
	struct cm_msg_reply rep;

	rig_start(&r, "cap", 60000, 2);
	CHECK(reg(&r, "n1", "s1").ok);
	CHECK(reg(&r, "n2", "s2").ok);
	rep = reg(&r, "n3", "s3");
	CHECK(!rep.ok);
	CHECK_INT(rep.code, -EUSERS);
	CHECK_HAS(rep.message, "agent limit reached");
	CHECK_INT(registered(&r, NULL), 2);
	CHECK_INT(coord_agents_resolve(r.a, "s3", "", &(struct coord_target){ 0 },
	    1), 0);
	rig_stop(&r);
}

static void
test_known_node_reregisters_at_the_cap(void)
{
	struct rig r;
	struct coord_target t;
	struct cm_msg_reply rep;

	rig_start(&r, "rereg", 60000, 2);
	CHECK(reg(&r, "n1", "s1").ok);
	CHECK(reg(&r, "n2", "s2").ok);
	// n1 comes back with a new workload list: accepted, list replaced.
	rep = reg(&r, "n1", "s1b");
	CHECK(rep.ok);
	CHECK_STR(rep.message, "registered");
	CHECK_INT(registered(&r, NULL), 2);
	CHECK_INT(coord_agents_resolve(r.a, "s1b", "", &t, 1), 1);
	CHECK_STR(t.node, "n1");
	CHECK_INT(coord_agents_resolve(r.a, "s1", "", &t, 1), 0);
	rig_stop(&r);
}

static void
test_the_longest_lost_agent_makes_room(void)
{
	struct rig r;
	struct coord_target t;
	int64_t lost;

	rig_start(&r, "evict", 50, 2);
	CHECK(reg(&r, "old", "s-old").ok);
	nng_msleep(30);
	CHECK(reg(&r, "newer", "s-newer").ok);
	nng_msleep(80); // both silent longer than lost_after (50 ms)
	coord_agents_tick(r.a);
	CHECK_INT(registered(&r, &lost), 2);
	CHECK_INT(lost, 2);
	CHECK(reg(&r, "fresh", "s-fresh").ok);
	CHECK_INT(registered(&r, &lost), 2);
	CHECK_INT(lost, 1);
	CHECK_INT(coord_agents_resolve(r.a, "s-old", "", &t, 1), 0);
	CHECK_INT(coord_agents_resolve(r.a, "s-newer", "", &t, 1), 1);
	CHECK_INT(coord_agents_resolve(r.a, "s-fresh", "", &t, 1), 1);
	// The forgotten node may come back: it takes the other lost slot.
	CHECK(reg(&r, "old", "s-old").ok);
	CHECK_INT(coord_agents_resolve(r.a, "s-newer", "", &t, 1), 0);
	CHECK_INT(registered(&r, &lost), 2);
	CHECK_INT(lost, 0);
	// Nobody lost any more: the next new node is refused.
	CHECK_INT(reg(&r, "late", "s-late").code, -EUSERS);
	rig_stop(&r);
}

static void
test_permit_only_for_hosted_services(void)
{
	struct rig r;
	struct cm_msg_reply rep;

	rig_start(&r, "permit", 60000, 10);
	CHECK(reg(&r, "n1", "web").ok);
	CHECK(reg(&r, "n2", "db").ok);
	rep = permit(&r, "n1", "db");
	CHECK(!rep.ok);
	CHECK_INT(rep.code, -EPERM);
	CHECK_STR(rep.message, "node n1 does not host service db");
	CHECK_INT(permit_calls, 0); // the engine (rate limits) never asked
	rep = permit(&r, "ghost", "web");
	CHECK(!rep.ok);
	CHECK_INT(rep.code, -ENOENT);
	CHECK_INT(permit_calls, 0);
	rep = permit(&r, "n1", "web");
	CHECK(rep.ok);
	CHECK_STR(rep.message, "granted");
	CHECK_INT(permit_calls, 1);
	rig_stop(&r);
}

static void
test_find_pod_picks_the_live_kubernetes_agent(void)
{
	struct rig r;
	struct coord_target t = { 0 };

	rig_start(&r, "pods", 200, 10);
	CHECK(reg_as(&r, "proc", "process", "web", "web-abc").ok);
	// A process agent's instance of the same name is no pod.
	CHECK_INT(coord_agents_find_pod(r.a, "web", "web-abc", &t), 0);
	CHECK(reg_as(&r, "node-a", "kubernetes", "web", "web-abc").ok);
	CHECK_INT(coord_agents_find_pod(r.a, "web", "web-abc", &t), 1);
	CHECK_STR(t.node, "node-a");
	CHECK_STR(t.instance, "web-abc");
	CHECK(!t.lost);
	// Another service name (the app label, an entry's name): the only
	// pod of that name is still its agent's, under the agent's name.
	CHECK_INT(coord_agents_find_pod(r.a, "frontend", "web-abc", &t), 1);
	CHECK_STR(t.service, "web");
	CHECK_INT(coord_agents_find_pod(r.a, "web", "web-xyz", &t), 0);
	// Two pods of one name (two namespaces): the service decides.
	CHECK(reg_as(&r, "node-b", "kubernetes", "api", "web-abc").ok);
	CHECK_INT(coord_agents_find_pod(r.a, "api", "web-abc", &t), 1);
	CHECK_STR(t.node, "node-b");
	CHECK_INT(coord_agents_find_pod(r.a, "web", "web-abc", &t), 1);
	CHECK_STR(t.node, "node-a");
	CHECK_INT(coord_agents_find_pod(r.a, "other", "web-abc", &t), -EEXIST);
	// A lost agent's pods are nobody's.
	nng_msleep(300);
	CHECK(reg_as(&r, "node-b", "kubernetes", "api", "web-abc").ok);
	coord_agents_tick(r.a);
	CHECK_INT(coord_agents_find_pod(r.a, "web", "web-abc", &t), 1);
	CHECK_STR(t.node, "node-b");
	CHECK_STR(t.service, "api");
	rig_stop(&r);
}

// Registers `node` with n workloads: service svc[i % nsvc], instance
// "<node>-<service>-<i>", address 127.0.0.1:<port0 + i>. The reply.
static struct cm_msg_reply
reg_many(struct rig *r, const char *node, const char *const *svc,
    size_t nsvc, size_t n, int port0)
{
	struct cm_workload *w = calloc(n, sizeof(*w));
	struct cm_msg_reply rep = { .ok = false, .code = -EIO };

	if (w == NULL)
		return rep;
	for (size_t i = 0; i < n; i++) {
		const char *sv = svc[i % nsvc];

		w[i].healthy = true;
		snprintf(w[i].service, sizeof(w[i].service), "%s", sv);
		snprintf(w[i].instance, sizeof(w[i].instance), "%s-%s-%zu",
		    node, sv, i);
		snprintf(w[i].addr, sizeof(w[i].addr), "127.0.0.1:%d",
		    port0 + (int)i);
	}
	rep = reg_node(r, node, "process", w, n);
	free(w);
	return rep;
}

// Resolving and counting go through the workload index: by service, by
// instance name, by address; re-registration replaces a node's entries,
// and a fleet large enough to grow the tables is still found whole.
static void
test_workload_index(void)
{
	static const char *const webapi[] = { "web", "api" };
	static const char *const web[] = { "web" };
	static const char *const fleet[] = { "fleet" };
	static const char *const api[] = { "api" };
	struct coord_target t[400];
	char node[32], inst[64];
	struct rig r;
	size_t n;
	int i;

	rig_start(&r, "index", 60000, 1000);
	CHECK(reg_many(&r, "n1", webapi, 2, 4, 8000).ok); // web 0,2 api 1,3
	CHECK(reg_many(&r, "n2", web, 1, 2, 9000).ok);
	CHECK_INT(coord_agents_count_instances(r.a, "web"), 4);
	CHECK_INT(coord_agents_count_instances(r.a, "api"), 2);
	CHECK_INT(coord_agents_count_instances(r.a, "nope"), 0);
	CHECK_INT(coord_agents_count_instances(r.a, NULL), 6);
	// The whole service: each node once, instance "".
	n = coord_agents_resolve(r.a, "web", "", t, 10);
	CHECK_INT(n, 2);
	CHECK(n == 2 && strcmp(t[0].node, t[1].node) != 0);
	CHECK(n == 2 && t[0].instance[0] == '\0');
	CHECK_INT(coord_agents_resolve(r.a, "web", "", t, 1), 1);
	// One instance, by name and by address; the service must match.
	CHECK_INT(coord_agents_resolve(r.a, "web", "n2-web-1", t, 10), 1);
	CHECK_STR(t[0].node, "n2");
	CHECK_STR(t[0].instance, "n2-web-1");
	CHECK_INT(coord_agents_resolve(r.a, "web", "127.0.0.1:8002", t, 10), 1);
	CHECK_STR(t[0].node, "n1");
	CHECK_STR(t[0].instance, "n1-web-2");
	CHECK_INT(coord_agents_resolve(r.a, "api", "n1-web-2", t, 10), 0);
	CHECK_INT(coord_agents_resolve(r.a, "api", "127.0.0.1:8002", t, 10), 0);
	// n1 comes back with api only: its web instances are gone.
	CHECK(reg_many(&r, "n1", api, 1, 3, 8100).ok);
	CHECK_INT(coord_agents_count_instances(r.a, "web"), 2);
	CHECK_INT(coord_agents_count_instances(r.a, "api"), 3);
	CHECK_INT(coord_agents_count_instances(r.a, NULL), 5);
	CHECK_INT(coord_agents_resolve(r.a, "web", "127.0.0.1:8002", t, 10), 0);
	CHECK_INT(coord_agents_resolve(r.a, "web", "", t, 10), 1);
	CHECK_INT(coord_agents_resolve(r.a, "api", "127.0.0.1:8101", t, 10), 1);
	CHECK_STR(t[0].instance, "n1-api-1");
	// 300 nodes of 4 instances: the tables grow, nothing is lost.
	for (i = 0; i < 300; i++) {
		snprintf(node, sizeof(node), "f%d", i);
		CHECK(reg_many(&r, node, fleet, 1, 4, 10000 + 4 * i).ok);
	}
	CHECK_INT(coord_agents_count_instances(r.a, "fleet"), 1200);
	CHECK_INT(coord_agents_count_instances(r.a, NULL), 1205);
	CHECK_INT(coord_agents_resolve(r.a, "fleet", "", t, 400), 300);
	CHECK_INT(coord_agents_resolve(r.a, "fleet", "f150-fleet-2", t, 10), 1);
	CHECK_STR(t[0].node, "f150");
	snprintf(inst, sizeof(inst), "127.0.0.1:%d", 10000 + 4 * 299 + 3);
	CHECK_INT(coord_agents_resolve(r.a, "fleet", inst, t, 10), 1);
	CHECK_STR(t[0].instance, "f299-fleet-3");
	CHECK_INT(coord_agents_resolve(r.a, "web", "", t, 10), 1);
	rig_stop(&r);
}

// The model of test_index_matches_a_scan: what each node registered.
#define MODEL_NODES 8
#define MODEL_WL 24 // 8 x 24 > 64 buckets: rehashes with chains in use

struct model_node {
	bool reg;
	size_t n;
	struct cm_workload w[MODEL_WL];
};

static bool
model_matches(const struct cm_workload *w, const char *service,
    const char *instance)
{
	return strcmp(w->service, service) == 0 && (instance[0] == '\0' ||
	    strcmp(w->instance, instance) == 0 ||
	    strcmp(w->addr, instance) == 0);
}

// Compares one resolve and one count with a walk over the model: the
// nodes found, each once, with an instance of theirs that matches.
static bool
model_check(struct rig *r, const struct model_node *m, const char *service,
    const char *instance)
{
	struct coord_target t[2 * MODEL_NODES];
	bool want[MODEL_NODES] = { false }, seen[MODEL_NODES] = { false };
	size_t n, nwant = 0, count = 0;
	bool ok = true;

	for (int i = 0; i < MODEL_NODES; i++) {
		for (size_t k = 0; m[i].reg && k < m[i].n; k++) {
			count += strcmp(m[i].w[k].service, service) == 0;
			if (!want[i] && model_matches(&m[i].w[k], service,
			    instance)) {
				want[i] = true;
				nwant++;
			}
		}
	}
	n = coord_agents_resolve(r->a, service, instance, t, 2 * MODEL_NODES);
	ok = n == nwant;
	for (size_t i = 0; ok && i < n; i++) {
		int k = t[i].node[0] == 'm' ? atoi(t[i].node + 1) : -1;
		bool inst_ok = false;

		if (k < 0 || k >= MODEL_NODES || !want[k] || seen[k]) {
			ok = false;
			break;
		}
		seen[k] = true;
		for (size_t x = 0; x < m[k].n; x++)
			inst_ok |= model_matches(&m[k].w[x], service,
			    instance) && (instance[0] == '\0' ?
			    t[i].instance[0] == '\0' :
			    strcmp(t[i].instance, m[k].w[x].instance) == 0);
		ok = inst_ok && strcmp(t[i].service, service) == 0;
	}
	if (coord_agents_count_instances(r->a, service) != (int64_t)count)
		ok = false;
	if (!ok)
		printf("# resolve(%s, %s): %zu targets, the model %zu\n",
		    service, instance, n, nwant);
	return ok;
}

// Random registrations and re-registrations of a few nodes (workloads
// sharing services, instance names and addresses, nodes with none, some
// frames refused for an invalid instance name; up to 192 workloads, so the
// index grows while its chains are in use): every resolve and count, by
// instance and by address, answers what a walk over all registered
// workloads gives.
static const char *const rnd_svcs[] = { "a", "b", "c" };
static const char *const rnd_addrs[] = { "127.0.0.1:1", "127.0.0.1:2",
	"127.0.0.1:3" };

// n random workloads into w (zeroed first): services and addresses from
// rnd_svcs and rnd_addrs, instances from names; the first two workloads
// draw from n_first names, the others from the first three.
static void
draw_workloads(struct cm_workload *w, size_t n, const char *const *names,
    int n_first)
{
	memset(w, 0, MODEL_WL * sizeof(*w));
	for (size_t i = 0; i < n; i++) {
		w[i].healthy = true;
		snprintf(w[i].service, sizeof(w[i].service), "%s",
		    rnd_svcs[rand() % 3]);
		snprintf(w[i].instance, sizeof(w[i].instance), "%s",
		    names[rand() % (i < 2 ? n_first : 3)]);
		snprintf(w[i].addr, sizeof(w[i].addr), "%s",
		    rnd_addrs[rand() % 3]);
	}
}

// Checks every service of rnd_svcs, alone and with each of the first
// n_names names and each address, against the model; returns the misses.
static int
check_every_key(struct rig *r, const struct model_node *m,
    const char *const *names, size_t n_names)
{
	int bad = 0;

	for (size_t s = 0; s < 3; s++) {
		bad += !model_check(r, m, rnd_svcs[s], "");
		for (size_t i = 0; i < n_names; i++)
			bad += !model_check(r, m, rnd_svcs[s], names[i]);
		for (size_t i = 0; i < 3; i++)
			bad += !model_check(r, m, rnd_svcs[s], rnd_addrs[i]);
	}
	return bad;
}

static void
test_index_matches_a_scan(void)
{
	// The last two are not valid instance names (the frame is refused
	// before it leaves): only the first two workloads may draw them, so
	// that many registrations of up to MODEL_WL pass.
	static const char *const names[] = { "i0", "i1", "i2",
		"127.0.0.1:1", "" };
	static struct model_node m[MODEL_NODES];
	struct cm_workload w[MODEL_WL];
	struct cm_msg_reply rep;
	char node[16];
	int step, bad = 0, accepted = 0;
	struct rig r;

	(void)tt_seed();
	memset(m, 0, sizeof(m));
	rig_start(&r, "scan", 60000, 1000);
	for (step = 0; step < 300 && bad == 0; step++) {
		int k = rand() % MODEL_NODES;
		size_t n = (size_t)(rand() % (MODEL_WL + 1));

		draw_workloads(w, n, names, 5);
		snprintf(node, sizeof(node), "m%d", k);
		rep = reg_node(&r, node, "process", w, n);
		if (rep.ok) {
			accepted++;
			m[k].reg = true;
			m[k].n = n;
			memcpy(m[k].w, w, sizeof(w));
		}
		bad += check_every_key(&r, m, names, 4);
		bad += !model_check(&r, m, "none", "");
	}
	printf("# %d steps, %d registrations accepted\n", step, accepted);
	CHECK(accepted >= 30); // about a third of the 300 draws pass
	CHECK_INT(bad, 0);
	rig_stop(&r);
}

// Registration churn at max_agents (4 of 8 nodes): before most
// registrations every agent is marked lost, so a new node evicts the
// longest-lost one (the one registered longest ago: the lost ones are
// always the oldest) and its workloads leave the index through their
// back-pointers while other agents share their services, instance names
// and addresses. Every resolve and count answers what a walk over the
// agents still registered gives.
static void
test_churn_with_evictions(void)
{
	static const char *const names[] = { "i0", "i1", "i2" };
	static struct model_node m[MODEL_NODES];
	int last[MODEL_NODES] = { 0 };
	struct cm_workload w[MODEL_WL];
	struct cm_msg_reply rep;
	char node[16];
	int step, bad = 0, evicted = 0;
	struct rig r;

	(void)tt_seed();
	memset(m, 0, sizeof(m));
	rig_start(&r, "churn", 1, 4);
	for (step = 1; step <= 200 && bad == 0; step++) {
		int k = rand() % MODEL_NODES, nreg = 0;
		size_t n = (size_t)(rand() % (MODEL_WL + 1));

		// Silent for longer than lost_after (1 ms), then marked lost;
		// one step in five leaves the last registered alive.
		nng_msleep(3);
		if (rand() % 5 != 0)
			coord_agents_tick(r.a);
		draw_workloads(w, n, names, 3);
		for (int i = 0; i < MODEL_NODES; i++)
			nreg += m[i].reg;
		snprintf(node, sizeof(node), "m%d", k);
		rep = reg_node(&r, node, "process", w, n);
		if (rep.ok) {
			if (!m[k].reg && nreg == 4) { // the oldest is evicted
				int old = -1;

				for (int i = 0; i < MODEL_NODES; i++)
					if (m[i].reg && (old < 0 ||
					    last[i] < last[old]))
						old = i;
				m[old].reg = false;
				evicted++;
			}
			m[k].reg = true;
			m[k].n = n;
			last[k] = step;
			memcpy(m[k].w, w, sizeof(w));
		} else if (rep.code != -EUSERS) { // none lost: refused
			printf("# step %d: %d %s\n", step, rep.code,
			    rep.message);
			bad++;
		}
		bad += check_every_key(&r, m, names, 3);
	}
	printf("# %d steps, %d evictions\n", step - 1, evicted);
	CHECK(evicted >= 20); // about half of the 200 draws are new nodes
	CHECK_INT(bad, 0);
	rig_stop(&r);
}

static const struct tt_case cases[] = {
	{ "max_agents defaults to 5000", test_max_agents_defaults_to_5000 },
	{ "max_workloads defaults to 150000",
	  test_max_workloads_defaults_to_150000 },
	{ "registration beyond the cap is refused",
	  test_registration_beyond_the_cap_is_refused },
	{ "known node re-registers at the cap",
	  test_known_node_reregisters_at_the_cap },
	{ "the longest-lost agent makes room",
	  test_the_longest_lost_agent_makes_room },
	{ "permit only for hosted services",
	  test_permit_only_for_hosted_services },
	{ "find_pod picks the live kubernetes agent",
	  test_find_pod_picks_the_live_kubernetes_agent },
	{ "the workload index resolves and counts", test_workload_index },
	{ "the workload index answers as a walk over every workload",
	  test_index_matches_a_scan },
	{ "registration churn with evictions keeps the index exact",
	  test_churn_with_evictions },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	return tt_run_in_dir(cases, argc, argv, dir, sizeof(dir),
	    "/tmp/reflex-agents-XXXXXX");
}
