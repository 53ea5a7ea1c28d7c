// SPDX-License-Identifier: MIT
// reflex-coordinator: receives Alertmanager webhooks and heals services.
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm_hash.h"
#include "cm_log.h"
#include "cm_thread.h"
#include "coord_agents.h"
#include "coord_cli.h"
#include "coord_conf.h"
#include "coord_engine.h"
#include "coord_fetch.h"
#include "coord_http.h"
#include "coord_journal.h"

#define DEFAULT_CONFIG "/etc/reflex/coordinator.yaml"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: reflex-coordinator [-c FILE] [-v]... [--check-config]\n"
	    "                          [--config-max-size SIZE]\n"
	    "       reflex-coordinator --help-config\n"
	    "       reflex-coordinator [-c FILE] history [--service S] "
	    "[--alertname A]\n"
	    "                          [--state S] [--since T|15m] [--limit N] "
	    "[--json] [--url URL]\n"
	    "       reflex-coordinator [-c FILE] alerts [--service S] "
	    "[--alertname A]\n"
	    "                          [--outcome O] [--since T|15m] "
	    "[--limit N] [--json] [--url URL]\n"
	    "       reflex-coordinator [-c FILE] status|agents [--json] "
	    "[--url URL]\n"
	    "       reflex-coordinator [-c FILE] pause|resume [--token-file F] "
	    "[--url URL]\n"
	    "       reflex-coordinator [-c FILE] approve|reject [--token-file F] "
	    "ID\n"
	    "       reflex-coordinator [-c FILE] simulate [--json] BODY_FILE\n"
	    "  (-c FILE may also follow the command)\n"
	    "\n"
	    "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
	    "  -v, --verbose       more logging (repeat for debug)\n"
	    "      --check-config  validate the configuration and exit\n"
	    "      --help-config   print every configuration key and exit\n"
	    "      --config-max-size SIZE\n"
	    "                      refuse larger configuration files (default "
	    "1MiB,\n"
	    "                      4KiB..16MiB; else from " CM_CONF_MAX_FILE_ENV
	    ")\n"
	    "      --version       print the version and exit\n"
	    "  -h, --help          this text\n");
}

struct app {
	struct coord_conf conf;
	struct coord_auth auth;
	struct coord_journal *journal;
	struct coord_agents *agents;
	struct coord_engine *engine;
	struct coord_http *http;
	struct cm_k8s *k8s;
	struct cm_auth *agent_auth;
	// Configurations loaded by SIGHUP, newest first: their rules may be
	// in use by runs until the engine stops, so all are kept till then.
	struct reloaded *reloaded;
	// Digest of the file the rules in force were read from, when it did
	// not change while it was loaded: a SIGHUP that finds the same bytes
	// keeps those rules instead of keeping one more copy of them.
	uint64_t digest;
	bool have_digest;
};

struct reloaded {
	struct reloaded *next;
	struct coord_conf conf;
};

static void
app_stop(struct app *a)
{
	// Intake first, then decisions, then the agent channel (its pending
	// callbacks post into the stopped engine), then storage.
	coord_http_stop(a->http);
	coord_engine_stop(a->engine);
	coord_agents_stop(a->agents);
	coord_engine_free(a->engine);
	coord_journal_close(a->journal);
	cm_k8s_free(a->k8s);
	cm_auth_free(a->agent_auth);
	coord_auth_clear(&a->auth);
	coord_conf_free(&a->conf);
	while (a->reloaded != NULL) {
		struct reloaded *r = a->reloaded;

		a->reloaded = r->next;
		coord_conf_free(&r->conf);
		free(r);
	}
}

// FNV-1a of the file's bytes, read up to one byte past the size limit
// (a larger file does not load anyway). Returns 0 or a negative errno.
static int
file_digest(const char *path, uint64_t *ret)
{
	size_t left = cm_conf_max_file() + 1, n;
	uint64_t h = 1469598103934665603ULL;
	unsigned char buf[8192];
	FILE *f = fopen(path, "rbe");
	int rv = 0;

	if (f == NULL)
		return -errno;
	while (left > 0 && (n = fread(buf, 1, left < sizeof(buf) ? left :
	    sizeof(buf), f)) > 0) {
		h = cm_fnv1a_buf(h, buf, n);
		left -= n;
	}
	if (ferror(f))
		rv = -EIO;
	fclose(f);
	*ret = h;
	return rv;
}

// Loads the file into c and records its digest in a when the file held
// the same bytes before and after the load. Returns coord_conf_load's.
static int
app_load(struct app *a, struct coord_conf *c, const char *path, char *err,
    size_t errlen)
{
	uint64_t before, after;
	bool known = file_digest(path, &before) == 0;
	int rv = coord_conf_load(c, path, err, errlen);

	if (rv == 0) {
		a->have_digest = known && file_digest(path, &after) == 0 &&
		    after == before;
		a->digest = before;
	}
	return rv;
}

// SIGHUP: reads the configuration file again and, when it is valid and
// for the same runtime, matches alerts against its rules from now on.
// Only `rules:` take effect; every other key is read at start only. A
// file that does not load changes nothing.
static void
app_reload(struct app *a)
{
	const struct coord_conf *now = a->reloaded != NULL ?
	    &a->reloaded->conf : &a->conf;
	struct reloaded *r;
	bool had = a->have_digest;
	uint64_t was = a->digest, digest;
	char err[512];
	int rv;

	if (had && file_digest(a->conf.path, &digest) == 0 && digest == was) {
		cm_notice("coordinator.reload_unchanged", "path=%s rules=%zu "
		    "note=%s", cm_q(a->conf.path), now->compiled.n,
		    cm_q("the file holds the bytes the rules in force were "
		    "read from: they stay"));
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		cm_err("coordinator.reload_failed", "reason=%s",
		    cm_q("out of memory"));
		return;
	}
	rv = app_load(a, &r->conf, a->conf.path, err, sizeof(err));
	if (rv == 0 && r->conf.runtime != a->conf.runtime) {
		snprintf(err, sizeof(err), "%s: runtime changed: restart the "
		    "coordinator to apply it", a->conf.path);
		coord_conf_free(&r->conf);
		a->have_digest = had; // the rules in force stay, and theirs
		a->digest = was;
		rv = -EINVAL;
	}
	if (rv < 0) {
		cm_err("coordinator.reload_failed", "reason=%s rules=%zu "
		    "kept=%s", cm_q(err), now->compiled.n,
		    cm_q("the rules in force stay"));
		free(r);
		return;
	}
	r->next = a->reloaded;
	a->reloaded = r;
	coord_engine_set_rules(a->engine, &r->conf.compiled);
	cm_notice("coordinator.reloaded", "path=%s rules=%zu was=%zu note=%s",
	    cm_q(a->conf.path), r->conf.compiled.n, now->compiled.n,
	    cm_q("rules take effect for alerts decided from now on; other "
	    "keys at the next start"));
}

// Creates the journal's directory when it is missing (one level, 0750),
// as a package would.
static void
journal_dir(const char *journal)
{
	char dir[1024], *slash;

	snprintf(dir, sizeof(dir), "%s", journal);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0750) == 0)
		cm_notice("coordinator.journal_dir", "created=%s", cm_q(dir));
}

// The signals the main thread takes with sigwait: blocked before any
// thread starts, so every thread inherits the mask.
static void
block_signals_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

static void
block_signals(void)
{
	sigset_t set;

	block_signals_set(&set);
}

static int
app_run(struct app *a)
{
	struct coord_journal_opts jo = {
		.sync_full = a->conf.journal_sync_full,
		.retention_ms = a->conf.retention_ms,
		.max_batch = 512,
	};
	struct coord_engine_deps ed;
	struct coord_http_deps hd;
	char err[512];
	sigset_t set;
	int rv, sig = 0;

	// Signals are taken by sigwait below, never by a worker thread.
	block_signals_set(&set);
	signal(SIGPIPE, SIG_IGN);

	rv = coord_auth_load(&a->auth, &a->conf.auth, err, sizeof(err));
	if (rv < 0)
		return cm_log_ret(rv, CM_LOG_ERR, "coordinator.auth_failed",
		    "reason=%s", cm_q(err));
	if (coord_auth_webhook_open(&a->auth))
		cm_warn("coordinator.webhook_open", "reason=%s",
		    cm_q("no webhook credential configured (auth:): anyone "
		    "who reaches the listen address can post alerts"));
	coord_fetch_global_init();
	journal_dir(a->conf.journal);
	if (a->conf.runtime == COORD_RUNTIME_KUBERNETES) {
		rv = cm_k8s_new(&a->k8s, &a->conf.kubernetes.client, err,
		    sizeof(err));
		if (rv < 0)
			return cm_log_ret(rv, CM_LOG_ERR,
			    "coordinator.kubernetes_failed", "reason=%s", cm_q(err));
		cm_notice("coordinator.kubernetes", "server=%s namespace=%s",
		    cm_q(cm_k8s_server(a->k8s)), cm_q(cm_k8s_namespace(a->k8s)));
	}
	rv = coord_journal_open(&a->journal, a->conf.journal, &jo, err, sizeof(err));
	if (rv < 0)
		return cm_log_ret(rv, CM_LOG_ERR, "coordinator.journal_failed",
		    "path=%s reason=%s", cm_q(a->conf.journal), cm_q(err));
	if (a->conf.agent_secret_file != NULL) {
		rv = cm_auth_new(&a->agent_auth, a->conf.agent_secret_file, err,
		    sizeof(err));
		if (rv < 0)
			return cm_log_ret(rv, CM_LOG_ERR,
			    "coordinator.agent_secret_failed", "reason=%s", cm_q(err));
	} else {
		cm_warn("coordinator.agent_channel_open", "reason=%s",
		    cm_q("no agent_secret_file: agent messages are not "
		    "authenticated"));
	}
	rv = coord_agents_start(&a->agents, a->conf.agent_listen,
	    a->conf.agent_lost_after_ms, a->agent_auth, err, sizeof(err));
	if (rv < 0)
		return cm_log_ret(rv, CM_LOG_ERR, "coordinator.agents_failed",
		    "reason=%s", cm_q(err));
	coord_agents_set_max(a->agents, (size_t)a->conf.max_agents);
	coord_agents_set_max_workloads(a->agents,
	    (size_t)a->conf.max_workloads);
	ed = (struct coord_engine_deps){ .conf = &a->conf,
		.journal = a->journal, .agents = a->agents, .k8s = a->k8s };
	rv = coord_engine_start(&a->engine, &ed);
	if (rv < 0)
		return cm_log_ret(rv, CM_LOG_ERR, "coordinator.engine_failed",
		    "rv=%d", rv);
	coord_agents_set_permit(a->agents, coord_engine_permit, a->engine);
	hd = (struct coord_http_deps){ .conf = &a->conf, .journal = a->journal,
		.agents = a->agents, .engine = a->engine, .auth = &a->auth };
	rv = coord_http_start(&a->http, &hd, err, sizeof(err));
	if (rv < 0)
		return cm_log_ret(rv, CM_LOG_ERR, "coordinator.http_failed",
		    "reason=%s", cm_q(err));
	cm_notice("coordinator.started", "listen=%s agent_listen=%s journal=%s "
	    "rules=%zu cpu_scheduling=%s", cm_q(a->conf.listen),
	    cm_q(a->conf.agent_listen), cm_q(a->conf.journal),
	    a->conf.compiled.n, cm_thread_batch() ? "batch" : "normal");
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		app_reload(a);
	cm_notice("coordinator.stopping", "signal=%d", sig);
	return 0;
}

// A subcommand's "-c FILE", "--config FILE" or "--config=FILE" (the
// agent's status client takes it there, so people write it there too):
// sets *path and leaves the subcommand's other arguments, in order, in
// argv. Returns the new argc, or -1 when -c has no value.
static int
take_config(int argc, char **argv, const char **path)
{
	int n = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) {
			if (i + 1 == argc)
				return -1;
			*path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			*path = argv[i] + 9;
		} else {
			argv[n++] = argv[i];
		}
	}
	return n;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help-config", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "config-max-size", required_argument, NULL, 'M' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *path = DEFAULT_CONFIG, *max_size = NULL;
	bool check = false;
	int verbose = 0, opt, rv, level;
	struct app a = { 0 };
	char err[512];

	cm_log_set_component("coordinator");
	while ((opt = getopt_long(argc, argv, "+c:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'C':
			check = true;
			break;
		case 'H':
			cm_conf_print_reference(coord_conf_fields, 0);
			return 0;
		case 'M':
			max_size = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("reflex-coordinator %s\n", REFLEX_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	// The option, else the environment (also for the subcommands).
	if (cm_conf_set_max_file(max_size, err, sizeof(err)) < 0) {
		fprintf(stderr, "reflex-coordinator: %s\n", err);
		return 2;
	}
	if (optind < argc) {
		const char *cmd = argv[optind];
		char **sub_argv = argv + optind;
		int sub_argc = take_config(argc - optind, sub_argv, &path);

		if (sub_argc < 0 || path[0] == '\0') {
			fprintf(stderr, "reflex-coordinator: %s: -c needs a "
			    "file\n", cmd);
			return 2;
		}
		for (int i = 1; i < sub_argc; i++) {
			if (strcmp(sub_argv[i], "--help") == 0 ||
			    strcmp(sub_argv[i], "-h") == 0) {
				usage(stdout);
				return 0;
			}
		}
		if (strcmp(cmd, "history") == 0)
			rv = coord_cli_history(path, sub_argc, sub_argv);
		else if (strcmp(cmd, "alerts") == 0)
			rv = coord_cli_alerts(path, sub_argc, sub_argv);
		else if (strcmp(cmd, "status") == 0)
			rv = coord_cli_status(path, sub_argc, sub_argv);
		else if (strcmp(cmd, "agents") == 0)
			rv = coord_cli_agents(path, sub_argc, sub_argv);
		else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
			rv = coord_cli_control(path, sub_argc, sub_argv,
			    cmd[0] == 'p');
		else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "reject") == 0)
			rv = coord_cli_decide(path, sub_argc, sub_argv,
			    cmd[0] == 'a');
		else if (strcmp(cmd, "simulate") == 0)
			rv = coord_cli_simulate(path, sub_argc, sub_argv);
		else {
			fprintf(stderr, "reflex-coordinator: unknown command "
			    "\"%.40s\"\n", cmd);
			rv = 2;
		}
		// The error said what was wrong; the whole usage would bury it.
		if (rv == 2)
			fprintf(stderr, "reflex-coordinator: --help lists the "
			    "commands and their options\n");
		return rv;
	}
	// From here on SIGHUP, SIGTERM and SIGINT wait for app_run's sigwait
	// (a SIGHUP while the file loads is a reload then, not the default
	// action, which ended the process silently).
	block_signals();
	rv = app_load(&a, &a.conf, path, err, sizeof(err));
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s\n", err);
		return 1;
	}
	if (check) {
		struct cm_auth *sealed = NULL;

		// The secrets it names must be there and well kept too.
		rv = coord_auth_load(&a.auth, &a.conf.auth, err, sizeof(err));
		if (rv == 0 && a.conf.agent_secret_file != NULL)
			rv = cm_auth_new(&sealed, a.conf.agent_secret_file, err,
			    sizeof(err));
		coord_auth_clear(&a.auth);
		cm_auth_free(sealed);
		if (rv < 0) {
			fprintf(stderr, "reflex-coordinator: %s: %s\n", path, err);
			coord_conf_free(&a.conf);
			return 1;
		}
		printf("%s: ok (%zu rule%s)\n", path, a.conf.compiled.n,
		    a.conf.compiled.n == 1 ? "" : "s");
		coord_conf_free(&a.conf);
		return 0;
	}
	if (cm_log_level_parse(a.conf.log_level, &level) == 0)
		cm_log_set_level(level + verbose);
	// Before any thread decodes a frame (cm_msg_set_limits is not
	// thread-safe); the loader kept the values within bounds.
	rv = cm_msg_set_limits(&a.conf.wire_limits, err, sizeof(err));
	if (rv < 0) {
		fprintf(stderr, "reflex-coordinator: %s: %s\n", path, err);
		coord_conf_free(&a.conf);
		return 1;
	}
	// Before any thread starts: they take their class as they begin.
	cm_thread_set_batch(a.conf.cpu_scheduling == COORD_SCHED_BATCH);
	rv = app_run(&a);
	app_stop(&a);
	return rv < 0 ? 1 : 0;
}
