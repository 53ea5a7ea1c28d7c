// SPDX-License-Identifier: MIT
// agent_proc: supervises local child processes (the "process" runtime).
#include "agent_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_time.h"

extern char **environ;

static const char *const state_names[] = {
	[AGENT_ST_STOPPED] = "stopped",
	[AGENT_ST_STARTING] = "starting",
	[AGENT_ST_RUNNING] = "running",
	[AGENT_ST_UNHEALTHY] = "unhealthy",
	[AGENT_ST_STOPPING] = "stopping",
	[AGENT_ST_BACKOFF] = "backoff",
};

static const char *const kind_names[] = {
	[AGENT_RESTART_PROBE] = "probe",
	[AGENT_RESTART_CRASH] = "crash",
	[AGENT_RESTART_COMMAND] = "command",
};

static const char *const verdict_names[] = {
	[AGENT_VERDICT_GRANTED] = "granted",
	[AGENT_VERDICT_REFUSED] = "refused",
	[AGENT_VERDICT_PARTITION_ALLOWED] = "partition_allowed",
	[AGENT_VERDICT_PARTITION_HELD] = "partition_held",
};

static const char *const phase_names[] = {
	[AGENT_PERMIT_NONE] = "none",
	[AGENT_PERMIT_WANTED] = "wanted",
	[AGENT_PERMIT_ASKING] = "asking",
	[AGENT_PERMIT_HELD] = "held",
};

#define NAME_OF(tbl, i)                                                     \
	((unsigned)(i) < sizeof(tbl) / sizeof((tbl)[0]) ? (tbl)[i] : "unknown")

const char *
agent_state_name(enum agent_state s)
{
	return NAME_OF(state_names, s);
}

const char *
agent_restart_kind_name(enum agent_restart_kind k)
{
	return NAME_OF(kind_names, k);
}

const char *
agent_verdict_name(enum agent_verdict v)
{
	return NAME_OF(verdict_names, v);
}

const char *
agent_permit_phase_name(enum agent_permit_phase ph)
{
	return NAME_OF(phase_names, ph);
}

// ---- output ring ----------------------------------------------------

// Length of the UTF-8 sequence a lead byte announces (0: not a lead).
static size_t
utf8_seq_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

// Drops an incomplete UTF-8 sequence that a cut left at the end of s.
static void
utf8_trim(char *s, size_t *len)
{
	size_t i = *len, back = 0;

	while (i > 0 && back < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0)
		return;
	if (utf8_seq_len((unsigned char)s[i - 1]) > back + 1) {
		*len = i - 1;
		s[*len] = '\0';
	}
}

// Makes a line safe to print and to put in JSON: control characters
// (C0, DEL, C1) and, if the line is not valid UTF-8, all non-ASCII bytes
// become '?'.
static void
sanitize(char *s, size_t len)
{
	bool utf8 = cm_utf8_valid(s, len);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\t')
			s[i] = ' ';
		else if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80))
			s[i] = '?';
		else if (utf8 && c == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			s[i] = '?';
			s[i + 1] = '?';
			i++;
		}
	}
}

size_t
agent_copy_text(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	if (len >= n)
		len = n - 1;
	memmove(dst, src, len);
	dst[len] = '\0';
	utf8_trim(dst, &len);
	return len;
}

static void
ring_commit(struct agent_outring *r)
{
	char *dst = r->line[r->head];

	r->part[r->plen] = '\0';
	if (r->cut)
		utf8_trim(r->part, &r->plen);
	sanitize(r->part, r->plen);
	memcpy(dst, r->part, r->plen + 1);
	r->head = (r->head + 1) % AGENT_OUT_LINES;
	if (r->n < AGENT_OUT_LINES)
		r->n++;
	r->total++;
	r->plen = 0;
	r->cut = false;
}

void
agent_outring_feed(struct agent_outring *r, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\n')
			ring_commit(r);
		else if (c == '\r')
			continue;
		else if (r->plen < AGENT_OUT_LINE_MAX - 1)
			r->part[r->plen++] = c;
		else
			r->cut = true;
	}
}

const char *
agent_outring_line(const struct agent_outring *r, unsigned i)
{
	unsigned idx = (r->head + AGENT_OUT_LINES - r->n + i) % AGENT_OUT_LINES;

	return r->line[idx];
}

size_t
agent_outring_tail(const struct agent_outring *r, unsigned max_lines,
    char *buf, size_t n)
{
	unsigned take = r->n < max_lines ? r->n : max_lines, first;
	size_t need = 0, o = 0;

	buf[0] = '\0';
	if (take == 0 || n == 0)
		return 0;
	// Newest first: how many whole lines fit (each but the first
	// needs a '\n' before it)?
	for (first = r->n; first > r->n - take; first--) {
		size_t len = strlen(agent_outring_line(r, first - 1));
		size_t add = len + (first == r->n ? 0 : 1);

		if (need + add > n - 1)
			break;
		need += add;
	}
	if (first == r->n) // not even the newest line fits whole
		return agent_copy_text(buf, n, agent_outring_line(r, r->n - 1));
	for (unsigned i = first; i < r->n; i++) {
		const char *l = agent_outring_line(r, i);
		size_t len = strlen(l);

		if (i > first)
			buf[o++] = '\n';
		memcpy(buf + o, l, len);
		o += len;
	}
	buf[o] = '\0';
	return o;
}

static void
ring_flush(struct agent_outring *r)
{
	if (r->plen > 0 || r->cut)
		ring_commit(r);
}

// ---- table ----------------------------------------------------------

static void on_probe_done(struct agent_http_req *r, bool ok, long status,
    const char *reason, int64_t elapsed_ms, void *arg);

static int
inst_init(struct agent_proc *p, struct agent_svc *s, unsigned i)
{
	struct agent_inst *in = &s->inst[i];
	const struct agent_probe_conf *pc = &s->conf->probe;
	char url[64 + AGENT_PROBE_PATH_MAX];
	int rv;

	in->svc = s;
	in->index = i;
	in->port = (int)s->conf->base_port + (int)i;
	in->out_fd = -1;
	in->state = AGENT_ST_STOPPED;
	snprintf(in->addr, sizeof(in->addr), "127.0.0.1:%d", in->port);
	rv = agent_instance_name(s->conf->name, i, in->name, sizeof(in->name));
	if (rv < 0 || pc->line == 0)
		return rv;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", in->port, pc->path);
	return agent_http_req_init(p->http, &in->probe.req, url, false,
	    pc->timeout_ms, on_probe_done, in);
}

int
agent_proc_new(const struct agent_conf *conf, struct agent_http *http,
    struct agent_proc **ret)
{
	struct agent_proc *p = calloc(1, sizeof(*p));
	int rv = 0;

	if (p == NULL)
		return -ENOMEM;
	p->conf = conf;
	p->http = http;
	p->svc = calloc(conf->services.n, sizeof(*p->svc));
	if (p->svc == NULL) {
		free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < conf->services.n && rv == 0; i++) {
		struct agent_svc *s = &p->svc[i];

		s->proc = p;
		s->conf = agent_conf_svc(conf, i);
		s->inst = calloc((size_t)s->conf->instances, sizeof(*s->inst));
		if (s->inst == NULL) {
			rv = -ENOMEM;
			break;
		}
		p->n_svc++;
		s->n = (size_t)s->conf->instances;
		s->own_cap = s->conf->partition_policy.max_restarts > 0 ?
		    (size_t)s->conf->partition_policy.max_restarts : 1;
		s->own_ms = calloc(s->own_cap, sizeof(*s->own_ms));
		if (s->own_ms == NULL) {
			rv = -ENOMEM;
			break;
		}
		for (unsigned j = 0; j < s->n && rv == 0; j++)
			rv = inst_init(p, s, j);
	}
	if (rv < 0) {
		agent_proc_free(p);
		return rv;
	}
	*ret = p;
	return 0;
}

void
agent_proc_free(struct agent_proc *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_svc; i++) {
		struct agent_svc *s = &p->svc[i];

		for (size_t j = 0; s->inst != NULL && j < s->n; j++) {
			agent_http_req_fini(&s->inst[j].probe.req);
			if (s->inst[j].out_fd >= 0) {
				agent_http_unwatch(p->http, s->inst[j].out_fd);
				close(s->inst[j].out_fd);
			}
		}
		free(s->inst);
		free(s->own_ms);
	}
	free(p->svc);
	free(p);
}

struct agent_svc *
agent_proc_find_svc(struct agent_proc *p, const char *name)
{
	for (size_t i = 0; i < p->n_svc; i++)
		if (strcmp(p->svc[i].conf->name, name) == 0)
			return &p->svc[i];
	return NULL;
}

struct agent_inst *
agent_proc_find_inst(struct agent_svc *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->inst[i].name, name) == 0)
			return &s->inst[i];
	return NULL;
}

static struct agent_inst *
find_pid(struct agent_proc *p, pid_t pid)
{
	for (size_t i = 0; i < p->n_svc; i++)
		for (size_t j = 0; j < p->svc[i].n; j++)
			if (p->svc[i].inst[j].pid == pid)
				return &p->svc[i].inst[j];
	return NULL;
}

unsigned
agent_proc_unhealthy(const struct agent_proc *p)
{
	unsigned n = 0;

	for (size_t i = 0; i < p->n_svc; i++)
		for (size_t j = 0; j < p->svc[i].n; j++)
			n += p->svc[i].inst[j].state != AGENT_ST_RUNNING;
	return n;
}

int64_t
agent_proc_max_grace(const struct agent_proc *p)
{
	int64_t g = 0;

	for (size_t i = 0; i < p->n_svc; i++)
		if (p->svc[i].conf->stop_grace_ms > g)
			g = p->svc[i].conf->stop_grace_ms;
	return g;
}

// ---- starting -------------------------------------------------------

// Finds prog in $PATH unless it holds a '/' (no shell, so no other
// lookup happens). Writes the path to run into buf.
static int
resolve_program(const char *prog, char *buf, size_t n)
{
	const char *path = getenv("PATH");

	if (strchr(prog, '/') != NULL) {
		if ((size_t)snprintf(buf, n, "%s", prog) >= n)
			return -ENAMETOOLONG;
		return 0;
	}
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *d = path; *d != '\0';) {
		size_t dlen = strcspn(d, ":");

		int len = snprintf(buf, n, "%.*s/%s", (int)dlen, d, prog);

		if (dlen > 0 && len > 0 && (size_t)len < n &&
		    access(buf, X_OK) == 0)
			return 0;
		d += dlen;
		if (*d == ':')
			d++;
	}
	return -ENOENT;
}

struct exec_args {
	const char *path;
	char **argv;
	char **envp;
	int nullfd, outw, errw;
	pid_t parent;
};

// Runs in the forked child: only async-signal-safe calls until execve.
static void __attribute__((noreturn))
child_exec(const struct exec_args *a)
{
	struct sigaction dfl;
	sigset_t none;
	int e;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	(void)setpgid(0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != a->parent)
		_exit(127); // the agent died before prctl took effect
	(void)sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(a->nullfd, 0) < 0 || dup2(a->outw, 1) < 0 ||
	    dup2(a->outw, 2) < 0)
		goto fail;
	// Belt and braces: whatever a library opened without O_CLOEXEC
	// must not leak into the service.
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(a->path, a->argv, a->envp);
fail:
	e = errno;
	(void)!write(a->errw, &e, sizeof(e));
	_exit(127);
}

// Waits until the child exec'd (the CLOEXEC error pipe closes) or reports
// why it could not. Returns 0 or the child's negative errno. A child that
// could not exec exits at once; agent_proc_reap reaps it when its SIGCHLD
// comes, as any other: the main loop never blocks in waitpid (a child
// slow to exit, under a debugger or valgrind, would hold it there).
static int
wait_exec(int errr)
{
	ssize_t n;
	int e = 0;

	do
		n = read(errr, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(e))
		return 0;
	return -e;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

// Closes inst's output pipe (out of the poll set first).
static void
out_close(struct agent_proc *p, struct agent_inst *in)
{
	agent_http_unwatch(p->http, in->out_fd);
	close_fd(&in->out_fd);
}

// Forks and execs; on success *ret_pid and the output pipe's read end in
// *ret_out (non-blocking, CLOEXEC).
static int
fork_exec(const char *path, char **argv, char **envp, pid_t *ret_pid,
    int *ret_out)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, nullfd = -1, rv = 0;
	struct exec_args a;
	pid_t pid = -1;

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		rv = -errno;
	if (rv == 0) {
		nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		rv = nullfd < 0 ? -errno : 0;
	}
	if (rv == 0) {
		a = (struct exec_args){ .path = path, .argv = argv,
			.envp = envp, .nullfd = nullfd, .outw = outp[1],
			.errw = errp[1], .parent = getpid() };
		pid = fork();
		if (pid == 0)
			child_exec(&a);
		rv = pid < 0 ? -errno : 0;
	}
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	close_fd(&nullfd);
	if (rv == 0) {
		(void)setpgid(pid, pid); // either side may win the race
		rv = wait_exec(errp[0]);
	}
	close_fd(&errp[0]);
	if (rv == 0 && fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0)
		rv = -errno; // cannot happen on a fresh pipe
	if (rv < 0) {
		close_fd(&outp[0]);
		return rv;
	}
	*ret_pid = pid;
	*ret_out = outp[0];
	return 0;
}

static int
spawn(struct agent_proc *p, struct agent_inst *in, pid_t *ret_pid,
    int *ret_out)
{
	const struct agent_svc_conf *c = in->svc->conf;
	struct agent_subst sub = { .node = p->conf->node, .service = c->name,
		.instance = in->name, .port = in->port };
	char **argv = NULL, **envp = NULL, path[PATH_MAX];
	int rv;

	rv = agent_argv_build(&c->command, &sub, &argv);
	if (rv == 0)
		rv = agent_envp_build(environ, &c->env, &sub, &envp);
	if (rv == 0)
		rv = resolve_program(argv[0], path, sizeof(path));
	if (rv == 0)
		rv = fork_exec(path, argv, envp, ret_pid, ret_out);
	agent_argv_free(argv);
	agent_argv_free(envp);
	return rv;
}

static void
schedule_backoff(struct agent_proc *p, struct agent_inst *in, int64_t now)
{
	int64_t delay;

	(void)p;
	in->backoff_failures++;
	delay = agent_backoff_delay(&in->svc->conf->restart_backoff,
	    in->backoff_failures);
	in->state = AGENT_ST_BACKOFF;
	in->deadline_ms = now + delay;
	cm_info("proc.backoff", "instance=%s delay_ms=%lld failures=%u",
	    in->name, (long long)delay, in->backoff_failures);
}

// Forgets the previous process's probe results (keeps the easy handle).
static void
probe_reset(struct agent_probe_state *ps)
{
	ps->ok = false;
	ps->ran = false;
	ps->consecutive_failures = 0;
	ps->last_error[0] = '\0';
	ps->last_ms = 0;
	ps->next_ms = 0;
	ps->pid = 0;
}

static void
start_instance(struct agent_proc *p, struct agent_inst *in, int64_t now)
{
	const struct agent_probe_conf *pc = &in->svc->conf->probe;
	pid_t pid = 0;
	int fd = -1, rv;

	rv = spawn(p, in, &pid, &fd);
	if (rv < 0) {
		in->spawn_fail_gen++;
		snprintf(in->spawn_error, sizeof(in->spawn_error),
		    "start failed: %s", strerror(-rv));
		cm_err("proc.start_failed", "instance=%s program=%s error=%s",
		    in->name, cm_q(in->svc->conf->command.v[0]),
		    cm_q(strerror(-rv)));
		in->start_granted = true; // a retried start needs no permit
		schedule_backoff(p, in, now);
		return;
	}
	in->pid = pid;
	in->last_pid = pid;
	in->out_fd = fd;
	rv = agent_http_watch(p->http, fd, in);
	if (rv < 0) {
		// Without the poll the pipe would fill and block the child:
		// it gets EPIPE instead, and its output is not kept.
		cm_err("proc.output_lost", "instance=%s error=%s", in->name,
		    cm_q(strerror(-rv)));
		close_fd(&in->out_fd);
	}
	in->spawn_gen++;
	in->spawn_error[0] = '\0';
	in->started_ms = now;
	in->killed = false;
	in->restart_now = false;
	in->start_granted = false;
	probe_reset(&in->probe);
	if (pc->line > 0) {
		in->state = AGENT_ST_STARTING;
		in->healthy_since_ms = 0;
		in->probe.next_ms = now + pc->initial_delay_ms;
	} else {
		in->state = AGENT_ST_RUNNING;
		in->healthy_since_ms = now;
	}
	cm_info("proc.start", "instance=%s pid=%d port=%d", in->name, (int)pid,
	    in->port);
}

void
agent_proc_start_all(struct agent_proc *p, int64_t now)
{
	for (size_t i = 0; i < p->n_svc; i++)
		for (size_t j = 0; j < p->svc[i].n; j++)
			start_instance(p, &p->svc[i].inst[j], now);
}

// ---- own restarts and their permits ----------------------------------

static void
own_add(struct agent_svc *s, int64_t now)
{
	s->own_ms[s->own_head] = now;
	s->own_head = (s->own_head + 1) % s->own_cap;
	if (s->own_n < s->own_cap)
		s->own_n++;
}

unsigned
agent_proc_own_restarts_since(const struct agent_svc *s, int64_t since)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->own_n; i++)
		n += s->own_ms[i] >= since;
	return n;
}

void
agent_permit_reset(struct agent_permit *pm)
{
	pm->phase = AGENT_PERMIT_NONE;
	pm->gen++;
	pm->holds = 0;
	pm->reasked = false;
	pm->held[0] = '\0';
}

void
agent_permit_want(struct agent_permit *pm, enum agent_restart_kind kind,
    const char *reason, int64_t now)
{
	pm->phase = AGENT_PERMIT_WANTED;
	pm->kind = kind;
	pm->wanted_ms = now;
	pm->gen++;
	agent_copy_text(pm->reason, sizeof(pm->reason), reason);
}

// Forgets a pending own restart; a late answer to it is then ignored.
static void
permit_drop(struct agent_inst *in, const char *why)
{
	struct agent_permit *pm = &in->permit;

	if (pm->phase == AGENT_PERMIT_NONE)
		return;
	cm_info("permit.dropped", "instance=%s kind=%s phase=%s why=%s",
	    in->name, agent_restart_kind_name(pm->kind),
	    agent_permit_phase_name(pm->phase), cm_q(why));
	agent_permit_reset(pm);
}

static void
permit_want(struct agent_inst *in, enum agent_restart_kind kind,
    const char *reason, int64_t now)
{
	permit_drop(in, "replaced by a newer restart need");
	agent_permit_want(&in->permit, kind, reason, now);
	cm_info("permit.wanted", "instance=%s kind=%s reason=%s", in->name,
	    agent_restart_kind_name(kind), cm_q(reason));
}

struct agent_inst *
agent_proc_next_wanted(struct agent_proc *p)
{
	struct agent_inst *best = NULL;

	for (size_t i = 0; i < p->n_svc; i++) {
		for (size_t j = 0; j < p->svc[i].n; j++) {
			struct agent_inst *in = &p->svc[i].inst[j];

			if (in->permit.phase == AGENT_PERMIT_WANTED &&
			    (best == NULL ||
			    in->permit.wanted_ms < best->permit.wanted_ms))
				best = in;
		}
	}
	return best;
}

void
agent_proc_permit_asking(struct agent_proc *p, struct agent_inst *in)
{
	(void)p;
	if (in->permit.phase == AGENT_PERMIT_WANTED)
		in->permit.phase = AGENT_PERMIT_ASKING;
}

void
agent_proc_permit_again(struct agent_proc *p, struct agent_inst *in,
    bool reasked, int64_t now)
{
	(void)p;
	if (in->permit.phase != AGENT_PERMIT_ASKING)
		return;
	in->permit.phase = AGENT_PERMIT_WANTED;
	in->permit.wanted_ms = now;
	in->permit.reasked = reasked;
}

static void note_restart(struct agent_inst *in, pid_t pid, const char *reason);
static void begin_stop(struct agent_inst *in, int64_t now);

static bool
probing(enum agent_state s)
{
	return s == AGENT_ST_STARTING || s == AGENT_ST_RUNNING ||
	    s == AGENT_ST_UNHEALTHY;
}

void
agent_proc_permit_decided(struct agent_proc *p, struct agent_inst *in,
    enum agent_verdict v, const char *why, int64_t now)
{
	struct agent_permit *pm = &in->permit;
	enum agent_restart_kind kind = pm->kind;

	(void)p;
	if (pm->phase != AGENT_PERMIT_ASKING &&
	    pm->phase != AGENT_PERMIT_WANTED)
		return;
	pm->decided = true;
	pm->last_verdict = v;
	if (v == AGENT_VERDICT_REFUSED || v == AGENT_VERDICT_PARTITION_HELD) {
		pm->phase = AGENT_PERMIT_HELD;
		pm->holds++;
		pm->retry_ms = now + agent_backoff_delay(
		    &in->svc->conf->restart_backoff, pm->holds);
		agent_copy_text(pm->held, sizeof(pm->held), why);
		return;
	}
	own_add(in->svc, now);
	in->count.restarts[kind]++;
	note_restart(in, kind == AGENT_RESTART_PROBE ? in->pid : in->last_pid,
	    pm->reason);
	pm->phase = AGENT_PERMIT_NONE;
	pm->gen++;
	pm->holds = 0;
	pm->reasked = false;
	pm->held[0] = '\0';
	in->start_granted = true;
	if (kind == AGENT_RESTART_PROBE && in->pid > 0 && probing(in->state))
		begin_stop(in, now);
	// A crashed instance waits in BACKOFF: the tick starts it when its
	// delay is over.
}

// ---- stopping and reaping -------------------------------------------

static void
note_restart(struct agent_inst *in, pid_t pid, const char *reason)
{
	size_t len = strlen(reason), cap = sizeof(in->last_restart_reason);

	in->restarts++;
	if (len >= cap)
		len = cap - 1;
	memcpy(in->last_restart_reason, reason, len);
	in->last_restart_reason[len] = '\0';
	utf8_trim(in->last_restart_reason, &len); // a cut must stay UTF-8
	in->last_restart_wall_ms = cm_now_ms();
	cm_notice("proc.restart", "instance=%s pid=%d restarts=%u reason=%s",
	    in->name, (int)pid, in->restarts, cm_q(reason));
}

static void
send_kill(struct agent_inst *in)
{
	if (kill(-in->pid, SIGKILL) < 0 && errno != ESRCH)
		cm_err("proc.kill_failed", "instance=%s pid=%d error=%s",
		    in->name, (int)in->pid, cm_q(strerror(errno)));
	in->killed = true;
	in->deadline_ms = INT64_MAX; // nothing more to do but wait
}

static void
begin_stop(struct agent_inst *in, int64_t now)
{
	int64_t grace = in->svc->conf->stop_grace_ms;

	agent_http_req_cancel(&in->probe.req);
	in->state = AGENT_ST_STOPPING;
	in->healthy_since_ms = 0;
	in->killed = false;
	in->deadline_ms = now + grace;
	cm_info("proc.stop", "instance=%s pid=%d grace_ms=%lld", in->name,
	    (int)in->pid, (long long)grace);
	if (grace == 0 || (kill(-in->pid, SIGTERM) < 0 && errno != ESRCH))
		send_kill(in);
}

static void
describe_exit(int status, char *buf, size_t n)
{
	if (WIFEXITED(status)) {
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *abbr = sigabbrev_np(WTERMSIG(status));

		snprintf(buf, n, "killed by signal %d (SIG%s)",
		    WTERMSIG(status), abbr ? abbr : "?");
	} else {
		snprintf(buf, n, "ended with wait status %#x", status);
	}
}

static void
on_exit_status(struct agent_proc *p, struct agent_inst *in, int status,
    int64_t now)
{
	char how[sizeof(in->last_exit)], why[sizeof(in->last_exit) + 16];
	pid_t pid = in->pid;

	if (in->out_fd >= 0)
		agent_proc_read_output(p, in);
	out_close(p, in);
	ring_flush(&in->out);
	agent_http_req_cancel(&in->probe.req);
	describe_exit(status, how, sizeof(how));
	snprintf(in->last_exit, sizeof(in->last_exit), "%s", how);
	in->pid = 0;
	in->healthy_since_ms = 0;
	if (in->state == AGENT_ST_STOPPING) {
		cm_info("proc.stopped", "instance=%s pid=%d how=%s", in->name,
		    (int)pid, cm_q(how));
	} else {
		cm_warn("proc.exit", "instance=%s pid=%d how=%s", in->name,
		    (int)pid, cm_q(how));
		if (!p->shutting_down) {
			snprintf(why, sizeof(why), "process %s", how);
			permit_want(in, AGENT_RESTART_CRASH, why, now);
			in->start_granted = false;
		}
	}
	if (p->shutting_down)
		in->state = AGENT_ST_STOPPED;
	else if (in->restart_now)
		start_instance(p, in, now);
	else
		schedule_backoff(p, in, now);
}

void
agent_proc_reap(struct agent_proc *p, int64_t now)
{
	for (;;) {
		struct agent_inst *in;
		siginfo_t si;
		pid_t r;
		int status = 0;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == 0)
			break;
		in = find_pid(p, si.si_pid);
		// The leader is a zombie, so its group id cannot have been
		// reused: kill whatever it left behind, then reap it.
		if (in != NULL && kill(-si.si_pid, SIGKILL) == 0)
			cm_debug("proc.group_cleanup", "instance=%s pgid=%d",
			    in->name, (int)si.si_pid);
		do
			r = waitpid(si.si_pid, &status, 0);
		while (r < 0 && errno == EINTR);
		if (in != NULL && r == si.si_pid)
			on_exit_status(p, in, status, now);
	}
}

void
agent_proc_read_output(struct agent_proc *p, struct agent_inst *in)
{
	char buf[4096];

	for (int i = 0; i < 16 && in->out_fd >= 0; i++) {
		uint64_t before = in->out.total;
		ssize_t n = read(in->out_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			out_close(p, in); // EOF: the writers are gone
			ring_flush(&in->out);
			return;
		}
		agent_outring_feed(&in->out, buf, (size_t)n);
		for (uint64_t k = before; cm_log_enabled(CM_LOG_DEBUG) &&
		    k < in->out.total; k++) {
			uint64_t back = in->out.total - k;

			if (back > in->out.n)
				continue;
			cm_debug("proc.output", "instance=%s line=%s", in->name,
			    cm_q(agent_outring_line(&in->out,
			    (unsigned)(in->out.n - back))));
		}
	}
}

// ---- probes ---------------------------------------------------------

static void
probe_ok(struct agent_inst *in, int64_t now)
{
	in->count.probes_ok++;
	in->probe.ok = true;
	in->probe.consecutive_failures = 0;
	in->probe.last_error[0] = '\0';
	if (in->permit.kind == AGENT_RESTART_PROBE)
		permit_drop(in, "the probe passed again");
	if (in->state == AGENT_ST_RUNNING)
		return;
	if (in->state == AGENT_ST_UNHEALTHY)
		cm_notice("probe.recovered", "instance=%s", in->name);
	else
		cm_info("probe.healthy", "instance=%s pid=%d", in->name,
		    (int)in->pid);
	in->state = AGENT_ST_RUNNING;
	in->healthy_since_ms = now;
}

static void
probe_failed(struct agent_inst *in, const char *reason, int64_t now)
{
	unsigned limit = (unsigned)in->svc->conf->probe.failure_threshold;
	char why[AGENT_REASON_MAX];

	in->count.probes_failed++;
	in->probe.ok = false;
	in->probe.consecutive_failures++;
	snprintf(in->probe.last_error, sizeof(in->probe.last_error), "%s",
	    reason);
	cm_log(in->state == AGENT_ST_STARTING ? CM_LOG_INFO : CM_LOG_WARN,
	    "probe.failed", "instance=%s failures=%u threshold=%u error=%s",
	    in->name, in->probe.consecutive_failures, limit, cm_q(reason));
	if (in->state == AGENT_ST_RUNNING) {
		in->state = AGENT_ST_UNHEALTHY;
		in->healthy_since_ms = 0;
	}
	if (in->probe.consecutive_failures < limit ||
	    in->permit.phase != AGENT_PERMIT_NONE)
		return;
	snprintf(why, sizeof(why), "probe failed %u times: %s",
	    in->probe.consecutive_failures, reason);
	permit_want(in, AGENT_RESTART_PROBE, why, now);
}

static void
on_probe_done(struct agent_http_req *r, bool ok, long status,
    const char *reason, int64_t elapsed_ms, void *arg)
{
	struct agent_inst *in = arg;
	int64_t now = r->start_ms + elapsed_ms;

	(void)status;
	if (in->pid == 0 || in->pid != in->probe.pid || !probing(in->state))
		return; // a late answer for a process that is gone
	in->probe.ran = true;
	in->probe.last_ms = elapsed_ms;
	if (ok)
		probe_ok(in, now);
	else
		probe_failed(in, reason, now);
}

// Starts the probe if due; returns when it is due next.
static int64_t
probe_due(struct agent_inst *in, int64_t now)
{
	const struct agent_probe_conf *pc = &in->svc->conf->probe;

	if (pc->line == 0 || in->probe.req.active)
		return INT64_MAX; // curl's own timer covers a running probe
	if (now < in->probe.next_ms)
		return in->probe.next_ms;
	in->probe.pid = in->pid;
	in->probe.next_ms = now + pc->period_ms;
	if (agent_http_req_start(&in->probe.req, now) < 0) {
		probe_failed(in, "could not start the HTTP request", now);
		return in->state == AGENT_ST_STOPPING ? in->deadline_ms :
		    in->probe.next_ms;
	}
	return INT64_MAX;
}

// ---- timers ---------------------------------------------------------

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t
tick_running(struct agent_inst *in, int64_t now)
{
	const struct agent_backoff_conf *b = &in->svc->conf->restart_backoff;
	int64_t next = INT64_MAX;

	if (in->state == AGENT_ST_RUNNING && in->backoff_failures > 0) {
		int64_t stable = in->healthy_since_ms + b->reset_after_ms;

		if (now >= stable) {
			in->backoff_failures = 0;
			cm_info("proc.stable", "instance=%s backoff=reset",
			    in->name);
		} else {
			next = stable;
		}
	}
	return min64(next, probe_due(in, now));
}

static int64_t tick_state(struct agent_proc *p, struct agent_inst *in,
    int64_t now);

bool
agent_permit_rearm(struct agent_permit *pm, int64_t now, int64_t *next)
{
	*next = INT64_MAX;
	if (pm->phase != AGENT_PERMIT_HELD)
		return false;
	if (now < pm->retry_ms) {
		*next = pm->retry_ms;
		return false;
	}
	pm->phase = AGENT_PERMIT_WANTED;
	pm->wanted_ms = now;
	pm->reasked = false;
	return true;
}

// A held permit is asked again when its delay is over.
static int64_t
tick_permit(struct agent_inst *in, int64_t now)
{
	int64_t next;

	if (agent_permit_rearm(&in->permit, now, &next))
		cm_debug("permit.ask_again", "instance=%s holds=%u", in->name,
		    in->permit.holds);
	return next;
}

static int64_t
tick_inst(struct agent_proc *p, struct agent_inst *in, int64_t now)
{
	int64_t next = tick_permit(in, now);

	return min64(next, tick_state(p, in, now));
}

static int64_t
tick_state(struct agent_proc *p, struct agent_inst *in, int64_t now)
{
	switch (in->state) {
	case AGENT_ST_STOPPING:
		if (!in->killed && now >= in->deadline_ms) {
			cm_warn("proc.kill", "instance=%s pid=%d reason=%s",
			    in->name, (int)in->pid, "stop_grace_expired");
			send_kill(in);
		}
		return in->deadline_ms;
	case AGENT_ST_BACKOFF:
		if (now < in->deadline_ms)
			return in->deadline_ms;
		if (!in->start_granted)
			return INT64_MAX; // waits for its permit
		start_instance(p, in, now);
		return in->state == AGENT_ST_BACKOFF ? in->deadline_ms :
		    tick_running(in, now);
	case AGENT_ST_STARTING:
	case AGENT_ST_RUNNING:
	case AGENT_ST_UNHEALTHY:
		return tick_running(in, now);
	default:
		return INT64_MAX;
	}
}

int64_t
agent_proc_tick(struct agent_proc *p, int64_t now)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < p->n_svc; i++) {
		for (size_t j = 0; j < p->svc[i].n; j++) {
			struct agent_inst *in = &p->svc[i].inst[j];

			next = min64(next, tick_inst(p, in, now));
		}
	}
	return next;
}

// ---- commands -------------------------------------------------------

int
agent_proc_restart(struct agent_proc *p, struct agent_inst *in,
    const char *reason, int64_t now)
{
	if (p->shutting_down)
		return -ESHUTDOWN;
	permit_drop(in, "restart command");
	in->count.restarts[AGENT_RESTART_COMMAND]++;
	switch (in->state) {
	case AGENT_ST_STARTING:
	case AGENT_ST_RUNNING:
	case AGENT_ST_UNHEALTHY:
		note_restart(in, in->pid, reason);
		in->restart_now = true;
		begin_stop(in, now);
		break;
	case AGENT_ST_STOPPING:
		in->restart_now = true;
		break;
	default:
		note_restart(in, 0, reason);
		start_instance(p, in, now);
		break;
	}
	return 0;
}

int
agent_proc_signal(struct agent_proc *p, struct agent_inst *in, int sig)
{
	(void)p;
	if (in->pid == 0 || in->state == AGENT_ST_STOPPING)
		return -ESRCH;
	if (in->state == AGENT_ST_STARTING)
		return -EAGAIN; // its handlers may not be installed yet
	if (kill(in->pid, sig) < 0)
		return -errno;
	return 0;
}

void
agent_proc_shutdown(struct agent_proc *p, int64_t now)
{
	p->shutting_down = true;
	for (size_t i = 0; i < p->n_svc; i++) {
		for (size_t j = 0; j < p->svc[i].n; j++) {
			struct agent_inst *in = &p->svc[i].inst[j];

			permit_drop(in, "agent shutdown");
			in->restart_now = false;
			if (in->pid == 0)
				in->state = AGENT_ST_STOPPED;
			else if (in->state != AGENT_ST_STOPPING)
				begin_stop(in, now);
		}
	}
}

bool
agent_proc_all_stopped(const struct agent_proc *p)
{
	for (size_t i = 0; i < p->n_svc; i++)
		for (size_t j = 0; j < p->svc[i].n; j++)
			if (p->svc[i].inst[j].pid != 0)
				return false;
	return true;
}

// ---- readiness ------------------------------------------------------

static void
permit_note(const struct agent_inst *in, char *buf, size_t n)
{
	const struct agent_permit *pm = &in->permit;
	size_t o = strlen(buf);

	if (pm->phase == AGENT_PERMIT_NONE || o + 1 >= n)
		return;
	if (pm->held[0] != '\0') // held, or held and being asked again
		snprintf(buf + o, n - o, "; %s restart held: %s%s",
		    agent_restart_kind_name(pm->kind), pm->held,
		    pm->phase == AGENT_PERMIT_HELD ? "" : " (asking again)");
	else
		snprintf(buf + o, n - o, "; %s restart waiting for the "
		    "coordinator's permission",
		    agent_restart_kind_name(pm->kind));
}

bool
agent_proc_ready(const struct agent_inst *in, int64_t now, char *buf,
    size_t n)
{
	const struct agent_probe_state *ps = &in->probe;
	unsigned limit = (unsigned)in->svc->conf->probe.failure_threshold;
	bool has_probe = in->svc->conf->probe.line > 0;
	bool ok = in->state == AGENT_ST_RUNNING && in->pid > 0 &&
	    (!has_probe || (ps->ran && ps->ok));

	if (buf == NULL)
		return ok;
	switch (in->state) {
	case AGENT_ST_RUNNING:
		if (has_probe)
			snprintf(buf, n, "running (pid %d, probe ok, healthy "
			    "for %lld s)", (int)in->pid,
			    (long long)(now - in->healthy_since_ms) / 1000);
		else
			snprintf(buf, n, "running (pid %d, no probe: alive "
			    "for %lld s)", (int)in->pid,
			    (long long)(now - in->started_ms) / 1000);
		break;
	case AGENT_ST_STARTING:
		if (ps->consecutive_failures > 0)
			snprintf(buf, n, "starting (probe not passed yet; "
			    "failed %u times: %s)", ps->consecutive_failures,
			    ps->last_error);
		else
			snprintf(buf, n, "starting (probe not passed yet)");
		break;
	case AGENT_ST_UNHEALTHY:
		snprintf(buf, n, "unhealthy (probe failed %u times, restart "
		    "at %u: %s)", ps->consecutive_failures, limit,
		    ps->last_error);
		break;
	case AGENT_ST_STOPPING:
		snprintf(buf, n, "stopping (pid %d)", (int)in->pid);
		break;
	case AGENT_ST_BACKOFF:
		snprintf(buf, n, "backoff after %u failure%s%s%s",
		    in->backoff_failures, in->backoff_failures == 1 ? "" : "s",
		    in->spawn_error[0] ? ": " : "", in->spawn_error);
		break;
	default:
		snprintf(buf, n, "%s", agent_state_name(in->state));
		break;
	}
	permit_note(in, buf, n);
	agent_copy_text(buf, n, buf); // a cut must not split a character
	return ok;
}
