// SPDX-License-Identifier: MIT
// agent_proc: the "process" runtime. Starts every instance of every
// configured service as a child process in its own process group, reaps
// them, probes them (through agent_http), restarts crashed or failing
// ones with exponential backoff, and restarts on command.
//
// Instance life cycle (enum agent_state):
//
//   start -> STARTING --probe ok--> RUNNING <--probe ok-- UNHEALTHY
//   (no probe: straight to RUNNING)       --probe fails-->
//   crash (any running state)          -> BACKOFF --delay+permit--> start
//   failure_threshold probe failures   -> (permit) STOPPING -> BACKOFF
//                                         --delay--> start
//   restart command                    -> STOPPING -> start at once
//   agent shutdown                     -> STOPPING -> STOPPED
//
// Own restarts need a permit. When an instance crashes, or its probe
// reaches failure_threshold, the runtime does not restart it by itself:
// it marks the instance's permit WANTED (struct agent_permit) and the
// agent (agent_permit.c) asks the coordinator, or applies the partition
// policy, and reports the verdict with agent_proc_permit_decided():
//   granted / partition_allowed: the restart goes ahead (a probe failure
//     stops the process now; a crashed one starts when its backoff delay
//     is over);
//   refused / partition_held: nothing is restarted. A probe-failing
//     process keeps running (and being probed); a crashed one stays down.
//     The permit is HELD and asked again after the service's backoff
//     delay (growing with every refusal in a row).
// While a permit is wanted, asked or held the need can go away: a probe
// that succeeds again, a restart command, a crash of a probe-failing
// process (which becomes a crash restart) or the agent's shutdown drop
// it, and a late answer is ignored (struct agent_permit.gen). Retried
// starts of a program that could not be executed at all and restarts on
// command need no permit.
//
// Stopping sends SIGTERM to the process group, SIGKILL after stop_grace.
// When the group leader exits, whatever is left in its group is killed
// before the leader is reaped, so no orphan keeps the port. Children also
// get PR_SET_PDEATHSIG(SIGKILL), so they die with the agent.
//
// Threads: everything here belongs to the agent's main loop thread.
// Nothing blocks except the short wait for a fork to exec.
#ifndef AGENT_PROC_H
#define AGENT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent_conf.h"
#include "agent_http.h"
#include "cm_msg.h"

#define AGENT_OUT_LINES 64     // output lines kept per instance
#define AGENT_OUT_LINE_MAX 240 // bytes per kept line (longer: cut)
#define AGENT_REASON_MAX 512
#define AGENT_EVIDENCE_LINES 40   // output lines kept as restart evidence
#define AGENT_EVIDENCE_MAX 4096   // bytes of evidence per instance
#define AGENT_PERMIT_TAIL_LINES 5 // output lines sent with a permit

enum agent_state {
	AGENT_ST_STOPPED = 0,
	AGENT_ST_STARTING,
	AGENT_ST_RUNNING,
	AGENT_ST_UNHEALTHY,
	AGENT_ST_STOPPING,
	AGENT_ST_BACKOFF,
};

// Why an instance is restarted (metrics label "reason").
enum agent_restart_kind {
	AGENT_RESTART_PROBE = 0, // own: failure_threshold probe failures
	AGENT_RESTART_CRASH,	 // own: the process ended by itself
	AGENT_RESTART_COMMAND,	 // the coordinator's restart command
	AGENT_RESTART_KINDS,
};

// The outcome of asking for an own restart (metrics label "result").
enum agent_verdict {
	AGENT_VERDICT_GRANTED = 0,	 // the coordinator said yes
	AGENT_VERDICT_REFUSED,		 // the coordinator said no
	AGENT_VERDICT_PARTITION_ALLOWED, // not asked; the policy said yes
	AGENT_VERDICT_PARTITION_HELD,	 // not asked; the policy said no
	AGENT_VERDICTS,
};

enum agent_permit_phase {
	AGENT_PERMIT_NONE = 0, // no own restart pending
	AGENT_PERMIT_WANTED,   // to be asked (agent_proc_next_wanted)
	AGENT_PERMIT_ASKING,   // request in flight
	AGENT_PERMIT_HELD,     // refused or held; asked again at retry_ms
};

// An own restart waiting for its permit.
struct agent_permit {
	enum agent_permit_phase phase;
	enum agent_restart_kind kind;  // PROBE or CRASH
	char reason[AGENT_REASON_MAX]; // why the restart is wanted
	int64_t wanted_ms;	       // monotonic: when it became WANTED
	int64_t retry_ms;	       // HELD: monotonic time to ask again
	unsigned holds;		       // refusals and holds in a row
	uint64_t gen;		       // changes whenever the need does
	bool reasked;		       // asked again after "unknown node"
	bool decided;		       // last_verdict is valid
	enum agent_verdict last_verdict;
	char held[AGENT_REASON_MAX];	// why it was held ("refused by
					// coordinator: ..."); kept while it
					// is asked again, "" otherwise
};

// Counters for /metrics, only ever incremented.
struct agent_inst_counters {
	uint64_t probes_ok, probes_failed;
	uint64_t restarts[AGENT_RESTART_KINDS];
};

// The last AGENT_OUT_LINES lines a child wrote to stdout/stderr.
struct agent_outring {
	char line[AGENT_OUT_LINES][AGENT_OUT_LINE_MAX];
	unsigned head; // next slot to write
	unsigned n;    // lines held
	char part[AGENT_OUT_LINE_MAX]; // line being assembled
	size_t plen;
	bool cut; // the line being assembled was too long
	uint64_t total; // lines committed so far
};

struct agent_probe_state {
	bool ok;		   // last probe succeeded
	bool ran;		   // at least one probe finished
	unsigned consecutive_failures;
	char last_error[AGENT_REASON_MAX]; // "" after a success
	int64_t last_ms;	   // duration of the last probe
	int64_t next_ms;	   // monotonic time the next one is due
	pid_t pid;		   // process the running probe is for
	struct agent_http_req req;
};

struct agent_svc;

// One supervised instance. Owned by its agent_svc; fields are read by
// the status view and the command handlers, changed only by agent_proc.
struct agent_inst {
	struct agent_svc *svc; // owner
	unsigned index;
	char name[CM_NAME_MAX];
	char addr[32]; // "127.0.0.1:<port>"
	int port;
	enum agent_state state;
	pid_t pid;	   // current child (group leader), 0 if none
	int out_fd;	   // read end of the output pipe, -1 if none
	int64_t started_ms;	 // monotonic
	int64_t healthy_since_ms; // monotonic, 0 when not RUNNING
	int64_t deadline_ms; // STOPPING: SIGKILL due; BACKOFF: start due
	bool killed;	     // SIGKILL sent in this stop
	bool restart_now;    // after this stop: start at once (command)
	bool start_granted;  // BACKOFF: may start when the delay is over
	unsigned backoff_failures; // unplanned restarts in a row
	unsigned restarts;
	char last_restart_reason[AGENT_REASON_MAX];
	int64_t last_restart_wall_ms; // cm_now_ms(), 0 if never
	char last_exit[128];	      // how the last process ended
	uint64_t spawn_gen;	      // successful starts so far
	uint64_t spawn_fail_gen;      // failed starts so far
	char spawn_error[AGENT_REASON_MAX];
	pid_t last_pid;		      // pid of the latest start
	struct agent_probe_state probe;
	struct agent_permit permit;
	struct agent_inst_counters count;
	struct agent_outring out;
};

struct agent_proc;

struct agent_svc {
	struct agent_proc *proc;	   // owner
	const struct agent_svc_conf *conf; // borrowed from agent_proc's conf
	struct agent_inst *inst;	   // n of them, owned
	size_t n;
	// Monotonic times of the latest own restarts (ring of own_cap =
	// max(1, partition_policy.max_restarts)), for the partition policy.
	int64_t *own_ms;
	size_t own_cap, own_head, own_n;
};

struct agent_proc {
	const struct agent_conf *conf; // borrowed
	struct agent_http *http;       // borrowed
	struct agent_svc *svc;	       // owned, conf->services.n of them
	size_t n_svc;
	bool shutting_down;
};

// Builds the instance table from conf (nothing is started). Borrows conf
// and http for the object's life. Returns 0 and *ret (free with
// agent_proc_free) or -ENOMEM.
int agent_proc_new(const struct agent_conf *conf, struct agent_http *http,
    struct agent_proc **ret) __attribute__((warn_unused_result));

// Releases the table: cancels probes and closes pipes. Does not kill
// children (stop them first with agent_proc_shutdown). NULL-safe.
void agent_proc_free(struct agent_proc *p);

// Starts every instance (a failing start goes to BACKOFF).
void agent_proc_start_all(struct agent_proc *p, int64_t now);

// Handles what is due at `now` (SIGKILL after grace, starts after
// backoff, probes, backoff reset) and returns the next monotonic time
// something is due (INT64_MAX if nothing).
int64_t agent_proc_tick(struct agent_proc *p, int64_t now);

// Reaps every exited child (call on SIGCHLD). Never blocks.
void agent_proc_reap(struct agent_proc *p, int64_t now);

// Reads what is available on inst's output pipe into its ring buffer.
void agent_proc_read_output(struct agent_proc *p, struct agent_inst *inst);

// Planned restart of inst with `reason` (copied): stop (SIGTERM, grace,
// SIGKILL) and start again at once; an instance waiting in BACKOFF starts
// at once. Returns 0, or -ESHUTDOWN while the agent stops. Progress is
// visible in inst->spawn_gen / spawn_fail_gen.
int agent_proc_restart(struct agent_proc *p, struct agent_inst *inst,
    const char *reason, int64_t now);

// Sends `sig` to inst's process (not its group). Returns 0, -ESRCH when
// no process runs, -EAGAIN while it is STARTING (a signal that arrives
// before the service installed its handler would kill it), or a negative
// errno from kill(2).
int agent_proc_signal(struct agent_proc *p, struct agent_inst *inst, int sig);

// Starts stopping everything (no more restarts).
void agent_proc_shutdown(struct agent_proc *p, int64_t now);

// True when no child is left.
bool agent_proc_all_stopped(const struct agent_proc *p);

// Lookups by name; NULL if absent. Borrowed pointers.
struct agent_svc *agent_proc_find_svc(struct agent_proc *p, const char *name);
struct agent_inst *agent_proc_find_inst(struct agent_svc *s,
    const char *name);

// The WANTED permit asked for longest ago, or NULL. Borrowed.
struct agent_inst *agent_proc_next_wanted(struct agent_proc *p);

// Marks inst's WANTED permit as being asked (phase ASKING).
void agent_proc_permit_asking(struct agent_proc *p, struct agent_inst *inst);

// Puts an ASKING permit back to WANTED (e.g. to ask again once the agent
// has registered again); `reasked` is remembered in permit.reasked.
void agent_proc_permit_again(struct agent_proc *p, struct agent_inst *inst,
    bool reasked, int64_t now);

// Applies the verdict on inst's ASKING or WANTED permit (see the top of
// this file). `why` (copied) is the coordinator's message or the
// policy's reason; it becomes permit.held when the restart is held.
// Does nothing if no permit is pending.
void agent_proc_permit_decided(struct agent_proc *p, struct agent_inst *inst,
    enum agent_verdict v, const char *why, int64_t now);

// Own restarts of s whose permit was given at or after `since`
// (monotonic), counting at most own_cap of the latest.
unsigned agent_proc_own_restarts_since(const struct agent_svc *s,
    int64_t since);

// Whether inst is ready: running and, if it has a probe, the probe passed
// since the last (re)start and is not failing now. Writes one line about
// its state into buf ("running (pid 12, healthy for 3 s)", "starting
// (probe not passed yet)", "backoff after 3 failures", ...) unless buf
// is NULL. Pure.
bool agent_proc_ready(const struct agent_inst *inst, int64_t now, char *buf,
    size_t n);

// Instances that are not RUNNING (for heartbeats).
unsigned agent_proc_unhealthy(const struct agent_proc *p);

// Longest stop_grace of all services (for the shutdown deadline).
int64_t agent_proc_max_grace(const struct agent_proc *p);

// Lower-case state name ("starting", "running", ...).
const char *agent_state_name(enum agent_state s);

// Names used in metrics labels, logs and JSON: "probe", "crash",
// "command"; "granted", "refused", "partition_allowed", "partition_held";
// "none", "wanted", "asking", "held". "unknown" when out of range.
const char *agent_restart_kind_name(enum agent_restart_kind k);
const char *agent_verdict_name(enum agent_verdict v);
const char *agent_permit_phase_name(enum agent_permit_phase ph);

// A HELD permit whose delay is over becomes WANTED again (true: the agent
// asks now). Otherwise false, with *next the time to look again
// (INT64_MAX: nothing to wait for). Shared by both runtimes.
bool agent_permit_rearm(struct agent_permit *pm, int64_t now, int64_t *next);

// No own restart pending any more (a late answer to the old one is then
// ignored: gen changed). Shared by both runtimes; they log the drop.
void agent_permit_reset(struct agent_permit *pm);

// An own restart of `kind` is wanted from `now` for `reason` (copied);
// reset it first. Shared by both runtimes.
void agent_permit_want(struct agent_permit *pm, enum agent_restart_kind kind,
    const char *reason, int64_t now);

// Copies src into dst (size n > 0), cut to fit without leaving a broken
// UTF-8 sequence at the end; dst may be src (then it only repairs a cut
// that snprintf made). Returns the length copied. Pure.
size_t agent_copy_text(char *dst, size_t n, const char *src);

// Appends `len` bytes of child output to the ring, splitting lines and
// replacing control characters and invalid UTF-8 with '?'. Pure; exposed
// for tests.
void agent_outring_feed(struct agent_outring *r, const char *buf, size_t len);

// Line i of the ring, 0 = oldest (i < r->n). Borrowed pointer.
const char *agent_outring_line(const struct agent_outring *r, unsigned i);

// Writes the newest up to max_lines lines of r, oldest first, joined by
// '\n', into buf (size n > 0): older lines are left out first so that
// the text fits; if even the newest line does not fit, its beginning is
// kept (cut on a UTF-8 boundary). Returns the length ("" when no line).
// Pure.
size_t agent_outring_tail(const struct agent_outring *r, unsigned max_lines,
    char *buf, size_t n);

#endif
