// SPDX-License-Identifier: MIT
// coord_cli: the coordinator's operator subcommands.
//
//   reflex-coordinator history  [-c FILE] [--url URL] [--service S]
//                               [--alertname A] [--state S] [--since T]
//                               [--limit N] [--json]
//   reflex-coordinator alerts   [-c FILE] [--url URL] [--service S]
//                               [--alertname A] [--outcome O] [--since T]
//                               [--limit N] [--json]
//   reflex-coordinator status   [-c FILE] [--url URL] [--json]
//   reflex-coordinator agents   [-c FILE] [--url URL] [--json]
//   reflex-coordinator pause    [-c FILE] [--url URL] [--token-file F]
//   reflex-coordinator resume   [-c FILE] [--url URL] [--token-file F]
//   reflex-coordinator approve|reject ID [-c FILE] [--url URL] [--token-file F]
//   reflex-coordinator simulate [-c FILE] [--json] WEBHOOK_BODY_FILE
//
// history/alerts/status/agents/pause/resume talk to a running
// coordinator's HTTP API (its address from the config's `listen`, or
// --url). simulate feeds a saved webhook body through the rules and the
// safety checks of the config and prints the decisions without acting:
// how a rule change is tested.
// Each returns the process exit status (0 ok, 1 failed, 2 usage).
#ifndef COORD_CLI_H
#define COORD_CLI_H

int coord_cli_history(const char *config, int argc, char **argv);
// alerts: the alerts received and what was decided for each (refusals,
// no-rule, cooldown...), as GET /api/v1/alerts; --outcome refused also
// matches refused:<check>.
int coord_cli_alerts(const char *config, int argc, char **argv);
// status [--json] [--url URL]: health, breaker and rollout stage.
int coord_cli_status(const char *config, int argc, char **argv);

// agents [--json] [--url URL]: the registry, as GET /api/v1/agents.
int coord_cli_agents(const char *config, int argc, char **argv);
int coord_cli_control(const char *config, int argc, char **argv, int pause);
// approve|reject ID: the plan's journal id (from `history`).
int coord_cli_decide(const char *config, int argc, char **argv, int approve);
int coord_cli_simulate(const char *config, int argc, char **argv);

#endif
