// SPDX-License-Identifier: MIT
// fuzz_agent_conf: libFuzzer target for reflex-agent's configuration:
// cm_conf with the agent's tables and the whole-file checks, through
// agent_conf_load_mem. A config that loads must give every instance a
// valid name and an argv and environment that build (or fail cleanly
// with -ENAMETOOLONG when an expanded argument does not fit).
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "agent_conf.h"
#include "cm_msg.h"
#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_setup();
	return 0;
}

static void
check_loaded(const struct agent_conf *c)
{
	static char *const base[] = { "PATH=/usr/bin", "HOME=/nonexistent",
		"REFLEX_PORT=1", NULL };

	FUZZ_CHECK(cm_name_valid(c->node), "node \"%s\"", c->node);
	FUZZ_CHECK(c->services.n >= 1 && c->services.n <= AGENT_MAX_SERVICES,
	    "%zu services", c->services.n);
	for (size_t i = 0; i < c->services.n; i++) {
		const struct agent_svc_conf *s = agent_conf_svc(c, i);

		FUZZ_CHECK(cm_name_valid(s->name), "service \"%s\"", s->name);
		FUZZ_CHECK(s->instances >= 1 &&
		    s->instances <= AGENT_MAX_INSTANCES, "%lld instances",
		    (long long)s->instances);
		for (int64_t k = 0; k < s->instances && k < 3; k++) {
			char inst[CM_NAME_MAX];
			struct agent_subst sub = {
				.node = c->node, .service = s->name,
				.instance = inst,
				.port = (int)(s->base_port + k),
			};
			char **argv = NULL, **envp = NULL;
			int rv;

			FUZZ_CHECK(agent_instance_name(s->name, (unsigned)k,
			    inst, sizeof(inst)) == 0 && cm_name_valid(inst),
			    "instance %lld of %s", (long long)k, s->name);
			rv = agent_argv_build(&s->command, &sub, &argv);
			FUZZ_CHECK(rv == 0 || rv == -ENAMETOOLONG,
			    "argv: %d", rv);
			if (rv == 0)
				FUZZ_CHECK(argv[0] != NULL && argv[0][0] != '\0',
				    "empty program");
			agent_argv_free(argv);
			rv = agent_envp_build(base, &s->env, &sub, &envp);
			FUZZ_CHECK(rv == 0 || rv == -ENAMETOOLONG,
			    "envp: %d", rv);
			agent_argv_free(envp);
		}
		(void)agent_backoff_delay(&s->restart_backoff, 1);
		(void)agent_backoff_delay(&s->restart_backoff, 70);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_conf c;
	char err[1024], *text = fuzz_strndup(data, size);
	int rv;

	err[0] = '\0';
	rv = agent_conf_load_mem(&c, "fuzz.yaml", text, err, sizeof(err));
	if (rv < 0)
		FUZZ_CHECK(err[0] != '\0', "error %d without a message", rv);
	else
		check_loaded(&c);
	if (rv == 0)
		agent_conf_free(&c);
	free(text);
	return 0;
}
