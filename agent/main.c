// SPDX-License-Identifier: MIT
// reflex-agent: command line entry; runs the agent or the status client.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "agent_conf.h"
#include "agent_status.h"
#include "cm_auth.h"

#define MAX_VERBOSE 4

struct args {
	const char *config;
	bool config_given;    // -c, even with the default path
	const char *max_size; // --config-max-size, NULL: from the environment
	int verbose;
	bool check;
	bool help_config;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: reflex-agent [-c FILE] [-v]... [--check-config]\n"
	    "       reflex-agent status [-c FILE | -s SOCKET] [--json]\n"
	    "       reflex-agent --help-config\n"
	    "  -c, --config FILE   configuration (default %s)\n"
	    "  -v, --verbose       raise the log level one step (repeatable)\n"
	    "  --check-config      validate the configuration and exit 0/1\n"
	    "  --help-config       list the configuration keys\n"
	    "  --config-max-size SIZE\n"
	    "                      refuse larger configuration files (default "
	    "1MiB,\n"
	    "                      4KiB..16MiB; else from " CM_CONF_MAX_FILE_ENV
	    ")\n"
	    "  --version           print the version and exit\n"
	    "  -h, --help          this text\n",
	    AGENT_CONF_DEFAULT_PATH);
}

// Returns 0 to run, 1 for --help, ARGS_STATUS when the word "status"
// follows the options (at optind), ARGS_VERSION for --version, -EINVAL
// for a usage error.
#define ARGS_STATUS 2
#define ARGS_VERSION 3
static int
parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help-config", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "config-max-size", required_argument, NULL, 'M' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+c:vh", opts, NULL)) != -1) {
		if (c == 'c') {
			a->config = optarg;
			a->config_given = true;
		}
		else if (c == 'v')
			a->verbose++;
		else if (c == 'C')
			a->check = true;
		else if (c == 'H')
			a->help_config = true;
		else if (c == 'M')
			a->max_size = optarg;
		else if (c == 'h')
			return 1;
		else if (c == 'V')
			return ARGS_VERSION;
		else
			return -EINVAL;
	}
	if (optind < argc && strcmp(argv[optind], "status") == 0)
		return ARGS_STATUS;
	if (optind != argc) {
		fprintf(stderr, "reflex-agent: unexpected argument \"%.64s\"\n",
		    argv[optind]);
		return -EINVAL;
	}
	if (a->verbose > MAX_VERBOSE || a->config[0] == '\0' ||
	    strlen(a->config) >= 4096)
		return -EINVAL;
	return 0;
}

// "reflex-agent -c FILE status ...": the status client with the options
// given before the word (only -c means anything to it; any other is
// refused there, with its usage), then those after it.
static int
status_after_options(int argc, char **argv, int at, const struct args *a)
{
	char **sv = calloc((size_t)argc + 3, sizeof(*sv));
	int n = 0, rv;

	if (sv == NULL)
		return 1;
	sv[n++] = argv[at];
	if (a->config_given) {
		sv[n++] = "-c";
		sv[n++] = (char *)a->config;
	}
	if (a->verbose > 0 || a->check || a->help_config) {
		fprintf(stderr, "reflex-agent: status takes -c or -s, "
		    "--json\n");
		free(sv);
		return 2;
	}
	for (int i = at + 1; i < argc; i++)
		sv[n++] = argv[i];
	rv = agent_status_main(n, sv);
	free(sv);
	return rv;
}

static int
check_config(const char *path)
{
	struct agent_conf c;
	char err[512];
	size_t n = 0;

	if (agent_conf_load(&c, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "reflex-agent: %s\n", err);
		return 1;
	}
	if (c.coordinator_secret_file != NULL) {
		struct cm_auth *auth = NULL;

		if (cm_auth_new(&auth, c.coordinator_secret_file, err,
		    sizeof(err)) < 0) {
			fprintf(stderr, "reflex-agent: %s: "
			    "coordinator_secret_file: %s\n",
			    path, err);
			agent_conf_free(&c);
			return 1;
		}
		cm_auth_free(auth);
	}
	for (size_t i = 0; i < c.services.n; i++)
		n += (size_t)agent_conf_svc(&c, i)->instances;
	if (c.runtime == AGENT_RUNTIME_KUBERNETES)
		printf("%s: ok (node %s, runtime kubernetes, %zu workloads, "
		    "annotated pods %s)\n", path, c.node, c.workloads.n,
		    c.kubernetes.annotations.enabled ? "probed" : "ignored");
	else
		printf("%s: ok (node %s, %zu service%s, %zu instance%s)\n",
		    path, c.node, c.services.n, c.services.n == 1 ? "" : "s",
		    n, n == 1 ? "" : "s");
	agent_conf_free(&c);
	return 0;
}

// Makes sure fds 0-2 are open, so no pipe or socket of ours lands there
// and gets mixed up with a child's stdio.
static void
ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			_exit(1);
	}
}

int
main(int argc, char **argv)
{
	struct args a = { .config = AGENT_CONF_DEFAULT_PATH };
	char err[256];
	int rv;

	ensure_stdio();
	if (argc >= 2 && strcmp(argv[1], "status") == 0) {
		// The status client reads the configuration too.
		if (cm_conf_set_max_file(NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "reflex-agent: %s\n", err);
			return 2;
		}
		return agent_status_main(argc - 1, argv + 1);
	}
	rv = parse_args(argc, argv, &a);
	if (rv == ARGS_VERSION) {
		printf("reflex-agent %s\n", REFLEX_VERSION);
		return 0;
	}
	if (rv == ARGS_STATUS) {
		if (cm_conf_set_max_file(a.max_size, err, sizeof(err)) < 0) {
			fprintf(stderr, "reflex-agent: %s\n", err);
			return 2;
		}
		return status_after_options(argc, argv, optind, &a);
	}
	if (rv != 0) {
		usage(rv > 0 ? stdout : stderr);
		return rv > 0 ? 0 : 2;
	}
	// The option, else the environment.
	if (cm_conf_set_max_file(a.max_size, err, sizeof(err)) < 0) {
		fprintf(stderr, "reflex-agent: %s\n", err);
		return 2;
	}
	if (a.help_config) {
		agent_conf_print_reference();
		return 0;
	}
	if (a.check)
		return check_config(a.config);
	return agent_run(a.config, a.verbose);
}
