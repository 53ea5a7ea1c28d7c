// SPDX-License-Identifier: MIT
// agent_status: the `reflex-agent status` command line client. It sends
// one "status" request to the agent's status socket and prints the reply
// for a person, or the JSON document with --json.
#ifndef AGENT_STATUS_H
#define AGENT_STATUS_H

#include <stdio.h>

// Runs `reflex-agent status ARGS` (argv[0] is "status"). Prints to
// stdout, errors to stderr. Returns the exit code: 0 ok, 1 the agent
// could not be asked or refused, 2 usage error. Blocks up to
// AGENT_STATUS_TIMEOUT_MS. Main thread.
int agent_status_main(int argc, char **argv);

#define AGENT_STATUS_TIMEOUT_MS 5000

// Prints the status JSON document `json` for a person to `out`. Returns
// 0, or -EINVAL if the document is not the agent's status format.
int agent_status_print(FILE *out, const char *json);

#endif
