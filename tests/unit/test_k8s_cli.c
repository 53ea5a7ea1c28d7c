// SPDX-License-Identifier: MIT
// test-k8s-cli: runs one Kubernetes action or check of reflex and prints
// its result as one JSON line on stdout, so tests/integration/
// test_k8s_actions.py can drive every action against the fake API
// server (tests/fakek8s). Not a TAP test itself.
//
//   test-k8s-cli CONFIG.yaml COMMAND ARGS...
//
// CONFIG.yaml holds a "kubernetes:" section (coord_k8s_fields). Commands:
//   restart KIND NS NAME            rollback NS NAME [TO_REVISION]
//   scale KIND NS NAME to|by N      traffic vs|httproute NS NAME CANARY
//                                           [STABLE|-] [WEIGHT]
//   job NS [LABEL=VALUE...]         config RESOURCE NS NAME PATCH_JSON
//   revert RECORD_JSON              event KIND NS NAME Normal|Warning
//                                           REASON MESSAGE
//   rollout KIND NS NAME            verify KIND NS NAME NOW_RFC3339
//   owners KIND NS NAME             evict NS POD [delete-unready]
//                                           [TRIES BACKOFF_MS]
//   get PATH                        (raw GET, prints the reply body)
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_conf.h"
#include "cm_k8s.h"
#include "cm_log.h"
#include "cm_time.h"
#include "coord_alert.h"
#include "coord_k8s.h"
#include "coord_k8s_actions.h"

struct cli_conf {
	struct coord_k8s_conf k8s;
};

static const struct cm_conf_field cli_fields[] = {
	{ .key = "kubernetes", .type = CM_CONF_STRUCT,
	  .off = offsetof(struct cli_conf, k8s), .sub = coord_k8s_fields },
	{ .key = NULL },
};

static int
usage(void)
{
	fprintf(stderr, "usage: test-k8s-cli CONFIG.yaml COMMAND ARGS...\n");
	return 2;
}

static int
ref(struct coord_k8s_ref *t, char **argv)
{
	if (coord_k8s_kind_parse(argv[0], &t->kind) < 0)
		return -EINVAL;
	t->ns = argv[1];
	t->name = argv[2];
	return 0;
}

static void
emit(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}

static void
emit_result(int rv, const struct coord_k8s_result *r)
{
	cJSON *o = cJSON_CreateObject(), *rec;

	cJSON_AddNumberToObject(o, "rv", rv);
	cJSON_AddStringToObject(o, "outcome", coord_k8s_outcome_name(r->outcome));
	cJSON_AddNumberToObject(o, "err", r->err);
	cJSON_AddBoolToObject(o, "changed", r->changed);
	cJSON_AddStringToObject(o, "code", r->code);
	cJSON_AddStringToObject(o, "reason", r->reason);
	cJSON_AddStringToObject(o, "warning", r->warning);
	cJSON_AddStringToObject(o, "uid", r->uid);
	rec = r->revert != NULL ? cJSON_Parse(r->revert) : NULL;
	cJSON_AddItemToObject(o, "revert", rec != NULL ? rec :
	    cJSON_CreateNull());
	cJSON_AddStringToObject(o, "revert_text", r->revert ? r->revert : "");
	emit(o);
}

static int
run(struct cm_k8s *k, const struct coord_k8s_conf *c, int argc, char **argv)
{
	struct coord_k8s_result res = { 0 };
	struct coord_k8s_ref t;
	const char *cmd = argv[0];
	int rv = -EINVAL;

	argc--;
	argv++;
	if (strcmp(cmd, "restart") == 0 && argc == 3 && ref(&t, argv) == 0) {
		rv = coord_k8s_restart(k, c, &t, &res);
	} else if (strcmp(cmd, "rollback") == 0 && argc >= 2) {
		t = (struct coord_k8s_ref){ COORD_K8S_DEPLOYMENT, argv[0],
			argv[1] };
		rv = coord_k8s_rollback(k, c, &t, argc > 2 ?
		    strtoll(argv[2], NULL, 10) : 0, &res);
	} else if (strcmp(cmd, "scale") == 0 && argc == 5 &&
	    ref(&t, argv) == 0) {
		rv = coord_k8s_scale(k, c, &t, strcmp(argv[3], "to") == 0 ?
		    COORD_K8S_SCALE_TO : COORD_K8S_SCALE_BY,
		    strtoll(argv[4], NULL, 10), &res);
	} else if (strcmp(cmd, "traffic") == 0 && argc >= 4) {
		struct coord_k8s_traffic tr = {
			.kind = strcmp(argv[0], "vs") == 0 ?
			    COORD_K8S_VIRTUALSERVICE : COORD_K8S_HTTPROUTE,
			.ns = argv[1], .name = argv[2], .canary = argv[3],
			.stable = argc > 4 && strcmp(argv[4], "-") != 0 ?
			    argv[4] : NULL,
			.weight = argc > 5 ? strtoll(argv[5], NULL, 10) : 0,
		};

		rv = coord_k8s_switch_traffic(k, c, &tr, &res);
	} else if (strcmp(cmd, "job") == 0 && argc >= 1) {
		struct coord_kvs kvs = { 0 };
		struct coord_kv kv[32];
		int i;

		for (i = 1; i < argc && kvs.n < 32; i++) {
			char *eq = strchr(argv[i], '=');

			if (eq == NULL)
				continue;
			*eq = '\0';
			kv[kvs.n].key = argv[i];
			kv[kvs.n].val = eq + 1;
			kvs.n++;
		}
		kvs.v = kv;
		rv = coord_k8s_run_job(k, c, argv[0], &kvs, 0, &res);
	} else if (strcmp(cmd, "config") == 0 && argc == 4) {
		cJSON *p = cJSON_Parse(argv[3]);

		rv = coord_k8s_adjust_config(k, c, argv[0], argv[1], argv[2], p,
		    &res);
		cJSON_Delete(p);
	} else if (strcmp(cmd, "revert") == 0 && argc == 1) {
		rv = coord_k8s_revert(k, c, argv[0], &res);
	} else {
		return 1;
	}
	emit_result(rv, &res);
	coord_k8s_result_clear(&res);
	return 0;
}

static void
emit_rollout(int rv, const struct coord_k8s_rollout *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "rv", rv);
	cJSON_AddBoolToObject(o, "done", r->done);
	cJSON_AddBoolToObject(o, "in_progress", r->in_progress);
	cJSON_AddBoolToObject(o, "paused", r->paused);
	cJSON_AddBoolToObject(o, "failed", r->failed);
	cJSON_AddNumberToObject(o, "desired", (double)r->desired);
	cJSON_AddNumberToObject(o, "updated", (double)r->updated);
	cJSON_AddNumberToObject(o, "ready", (double)r->ready);
	cJSON_AddNumberToObject(o, "available", (double)r->available);
	cJSON_AddStringToObject(o, "reason", r->reason);
	emit(o);
}

static int
inspect(struct cm_k8s *k, const struct coord_k8s_conf *c, int argc,
    char **argv)
{
	struct coord_k8s_ref t;
	const char *cmd = argv[0];
	int rv;

	argc--;
	argv++;
	if (strcmp(cmd, "rollout") == 0 && argc == 3 && ref(&t, argv) == 0) {
		struct coord_k8s_rollout r;

		rv = coord_k8s_rollout_status(k, &t, &r);
		emit_rollout(rv, &r);
	} else if (strcmp(cmd, "verify") == 0 && argc == 4 &&
	    ref(&t, argv) == 0) {
		struct coord_k8s_verify v;
		int64_t now = 0;
		cJSON *o = cJSON_CreateObject();

		if (cm_time_parse(argv[3], &now) < 0)
			return 1;
		rv = coord_k8s_verify(k, &t, now, &v);
		cJSON_AddNumberToObject(o, "rv", rv);
		cJSON_AddBoolToObject(o, "ok", v.ok);
		cJSON_AddBoolToObject(o, "paused", v.paused);
		cJSON_AddBoolToObject(o, "failed", v.failed);
		cJSON_AddNumberToObject(o, "desired", (double)v.desired);
		cJSON_AddNumberToObject(o, "ready", (double)v.ready);
		cJSON_AddNumberToObject(o, "terminating", (double)v.terminating);
		cJSON_AddNumberToObject(o, "stuck", (double)v.stuck);
		cJSON_AddStringToObject(o, "reason", v.reason);
		emit(o);
	} else if (strcmp(cmd, "owners") == 0 && argc == 3 &&
	    ref(&t, argv) == 0) {
		struct coord_k8s_owners w;
		cJSON *o = cJSON_CreateObject();

		rv = coord_k8s_owners(k, c, &t, &w);
		cJSON_AddNumberToObject(o, "rv", rv);
		cJSON_AddBoolToObject(o, "busy", w.busy);
		cJSON_AddBoolToObject(o, "hpa", w.hpa.found);
		cJSON_AddStringToObject(o, "hpa_name", w.hpa.name);
		cJSON_AddNumberToObject(o, "hpa_min", (double)w.hpa.min);
		cJSON_AddNumberToObject(o, "hpa_max", (double)w.hpa.max);
		cJSON_AddBoolToObject(o, "hpa_at_max", w.hpa.at_max);
		cJSON_AddBoolToObject(o, "gitops", w.gitops.managed);
		cJSON_AddStringToObject(o, "gitops_tool", w.gitops.tool);
		cJSON_AddBoolToObject(o, "paused", w.rollout.paused);
		cJSON_AddStringToObject(o, "uid", w.uid);
		cJSON_AddStringToObject(o, "reason", w.reason);
		emit(o);
	} else if (strcmp(cmd, "event") == 0 && argc == 6 &&
	    ref(&t, argv) == 0) {
		struct coord_k8s_obj ob = coord_k8s_ref_obj(&t, NULL);
		cJSON *o = cJSON_CreateObject();

		rv = coord_k8s_event(k, c, &ob, strcmp(argv[3], "Warning") == 0,
		    argv[4], argv[5]);
		cJSON_AddNumberToObject(o, "rv", rv);
		emit(o);
	} else if (strcmp(cmd, "evict") == 0 && argc >= 2) {
		struct cm_k8s_evict_opts eo;
		struct cm_k8s_evict_result er;
		cJSON *o = cJSON_CreateObject();

		cm_k8s_evict_opts_default(&eo);
		eo.delete_unready = argc > 2 &&
		    strcmp(argv[2], "delete-unready") == 0;
		if (argc > 4) {
			eo.max_tries = atoi(argv[3]);
			eo.backoff_ms = atoll(argv[4]);
		}
		rv = cm_k8s_evict_pod(k, argv[0], argv[1], &eo, &er);
		cJSON_AddNumberToObject(o, "rv", rv);
		cJSON_AddNumberToObject(o, "outcome", er.outcome);
		cJSON_AddNumberToObject(o, "tries", er.tries);
		cJSON_AddStringToObject(o, "pdb", er.pdb);
		cJSON_AddNumberToObject(o, "disruptions_allowed",
		    (double)er.disruptions_allowed);
		cJSON_AddStringToObject(o, "reason", er.reason);
		emit(o);
	} else if (strcmp(cmd, "get") == 0 && argc == 1) {
		struct cm_k8s_resp r;
		cJSON *o = cJSON_CreateObject();

		rv = cm_k8s_get(k, argv[0], &r);
		cJSON_AddNumberToObject(o, "rv", rv);
		cJSON_AddNumberToObject(o, "code", (double)r.code);
		cJSON_AddStringToObject(o, "err", r.err);
		cJSON_AddItemToObject(o, "body", r.body != NULL ? r.body :
		    cJSON_CreateNull());
		r.body = NULL;
		cm_k8s_resp_clear(&r);
		emit(o);
	} else {
		return run(k, c, argc + 1, argv - 1);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_conf cc;
	struct cm_k8s *k = NULL;
	char err[512];
	int rv;

	if (argc < 3)
		return usage();
	cm_log_set_component("test-k8s-cli");
	if (getenv("K8S_CLI_DEBUG") != NULL)
		cm_log_set_level(CM_LOG_DEBUG);
	// cm_conf_load frees defaults it replaces: start from zero.
	memset(&cc, 0, sizeof(cc));
	if (cm_conf_load(&cc, cli_fields, argv[1], err, sizeof(err)) < 0 ||
	    coord_k8s_conf_finish(&cc.k8s, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "test-k8s-cli: %s\n", err);
		return 2;
	}
	if (cm_k8s_new(&k, &cc.k8s.client, err, sizeof(err)) < 0) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "client_error", err);
		emit(o);
		cm_conf_free(&cc, cli_fields);
		return 3;
	}
	rv = inspect(k, &cc.k8s, argc - 2, argv + 2);
	if (rv != 0)
		usage();
	cm_k8s_free(k);
	cm_conf_free(&cc, cli_fields);
	return rv;
}
