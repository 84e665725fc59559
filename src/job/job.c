/*
 * job.c -- spawn, pipes, the join, deadlines and tree kills for every child.
 * See job.h for the contract.
 *
 * One uv_timer per job serves both waits: the deadline while the process
 * runs, then the end-of-file wait after the exit.  Whichever fires kills
 * the whole tree and closes the pipes, so a job always ends: a child that
 * detaches a grandchild holding its pipes cannot wedge whoever waits.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "job/job.h"
#include "job/reaper.h"

static char readbuf[65536];
static uv_loop_t *loop;

/*
 * The tree's processes take a moment to leave after cgroup.kill, so a tree
 * that cannot be removed at job_close is retried from one timer of the
 * layer's own (the job itself may be reused or freed meanwhile).
 */
struct tree_pending {
	char name[TREE_NAME_MAX];
	int tries;
	struct tree_pending *next;
};

static struct tree_pending *pending;
static uv_timer_t pending_timer;
static int pending_timer_open;

static void
job_pending_drop(const char *name)
{
	struct tree_pending **pp, *p;

	for (pp = &pending; (p = *pp) != NULL;) {
		if (strcmp(p->name, name) == 0) {
			*pp = p->next;
			free(p);
		} else
			pp = &p->next;
	}
}

static void
job_on_pending(uv_timer_t *t)
{
	struct tree_pending **pp, *p;

	(void)t;
	for (pp = &pending; (p = *pp) != NULL;) {
		if (++p->tries % 10 == 0)
			tree_signal(p->name, -1, SIGKILL);
		if (tree_remove(p->name) == 0 || p->tries >= 40) {
			if (p->tries >= 40)
				log_warnx("process tree %s: still populated, left for the next "
				          "start",
				          p->name);
			*pp = p->next;
			free(p);
		} else
			pp = &p->next;
	}
	if (pending == NULL)
		uv_timer_stop(&pending_timer);
}

static void
job_tree_release(const char *name)
{
	struct tree_pending *p;

	if (tree_remove(name) == 0)
		return;
	job_pending_drop(name);
	p = xcalloc(1, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	p->next = pending;
	pending = p;
	if (!pending_timer_open) {
		uv_timer_init(loop, &pending_timer);
		uv_unref((uv_handle_t *)&pending_timer);
		pending_timer_open = 1;
	}
	if (!uv_is_active((uv_handle_t *)&pending_timer))
		uv_timer_start(&pending_timer, job_on_pending, 50, 50);
}

void
job_setup(uv_loop_t *l, const char *key)
{
	loop = l;
	if (reaper_acquire() == -1)
		log_warn("cannot become the reaper of child processes");
	proc_init(l);
	tree_init(key);
	tree_recover();
}

void
job_close_all(void)
{
	struct tree_pending *p;
	int waited = 0;

	/* Last chance for groups still emptying: up to two seconds in all. */
	while ((p = pending) != NULL) {
		pending = p->next;
		tree_signal(p->name, -1, SIGKILL);
		while (tree_remove(p->name) == -1 && waited++ < 200)
			nanosleep(&(struct timespec){0, 10000000L}, NULL);
		free(p);
	}
	if (pending_timer_open) {
		uv_timer_stop(&pending_timer);
		uv_close((uv_handle_t *)&pending_timer, NULL);
		pending_timer_open = 0;
	}
	proc_close();
	tree_close();
}

int
job_recover_tree(const char *name)
{
	int n = tree_signal(name, -1, SIGKILL);

	tree_remove(name);
	return n > 0;
}

/* ---- killing ---- */

static void
job_victims_add(struct job *j, pid_t *pids, int n)
{
	size_t k;
	int i;

	for (i = 0; i < n; i++) {
		for (k = 0; k < j->nvictims; k++)
			if (j->victims[k].pid == pids[i])
				break;
		if (k < j->nvictims)
			continue;
		j->victims = xreallocarray(j->victims, j->nvictims + 1, sizeof *j->victims);
		j->victims[j->nvictims].pid = pids[i];
		j->victims[j->nvictims].start = reaper_start_time(pids[i]);
		j->nvictims++;
	}
}

/* Without a cgroup or reaper subtree: descendants and marked processes, remembered. */
static void
job_signal_scan(struct job *j, int sig)
{
	pid_t *pids = NULL;
	size_t k;
	int n;

	n = reaper_descendants(j->running ? j->proc.pid : -1, j->marker, &pids);
	job_victims_add(j, pids, n);
	free(pids);
	for (k = 0; k < j->nvictims; k++) {
		struct job_victim *v = &j->victims[k];
		/* Only a process that is still the one we saw (pids are reused). */
		if (v->start != -1 && reaper_start_time(v->pid) == v->start) {
			kill(-v->pid, sig); /* its own group, if it leads one */
			kill(v->pid, sig);
		}
	}
}

void
job_signal(struct job *j, int sig)
{
	int t = -1;

	if (j->in_tree) /* Linux: its cgroup */
		t = tree_signal(j->tree, j->proc.pid, sig);
	else if (tree_available() && j->proc.pid > 0) /* FreeBSD: its reaper subtree */
		t = tree_signal(NULL, j->proc.pid, sig);
	if (j->running) {
		kill(-j->proc.pid, sig);
		kill(j->proc.pid, sig);
	}
	if (t == -1)
		job_signal_scan(j, sig);
}

/* ---- handles ---- */

static void
job_maybe_closed(struct job *j)
{
	if (j->closing && j->handles == 0 && !j->running && j->on_closed != NULL)
		j->on_closed(j);
}

static void
job_handle_closed(uv_handle_t *h)
{
	struct job *j = h->data;

	j->handles--;
	job_maybe_closed(j);
}

static void
job_close_handle(struct job *j, uv_handle_t *h, int *open)
{
	if (!*open)
		return;
	*open = 0;
	uv_close(h, job_handle_closed);
}

static void job_maybe_done(struct job *);

static void
job_on_timer(uv_timer_t *t)
{
	struct job *j = t->data;

	if (j->running) {
		log_warnx("child %ld: deadline passed, killing its tree", (long)j->proc.pid);
		j->timed_out = 1;
	} else {
		log_warnx("child %ld exited but something holds its pipes: killing its tree",
		          (long)j->proc.pid);
		j->forced = 1;
	}
	job_signal(j, SIGKILL);
	job_close_handle(j, (uv_handle_t *)&j->out, &j->out_open);
	job_close_handle(j, (uv_handle_t *)&j->err, &j->err_open);
	job_maybe_done(j);
}

/* The join: reaped, and both pipes at end of file (or closed by the timer). */
static void
job_maybe_done(struct job *j)
{
	if (j->done || j->running || j->out_open || j->err_open)
		return;
	j->done = 1;
	if (j->timer_open)
		uv_timer_stop(&j->timer);
	job_close_handle(j, (uv_handle_t *)&j->in, &j->in_open);
	/* No orphans: whatever the child left behind goes with it. */
	job_signal(j, SIGKILL);
	if (j->on_done != NULL)
		j->on_done(j);
}

static void
job_on_exit(struct proc *p, int exit_code, int term_signal)
{
	struct job *j = p->data;

	j->running = 0;
	j->exit_code = exit_code;
	j->term_signal = term_signal;
	if (j->closing) {
		job_maybe_closed(j);
		return;
	}
	if (j->on_exit != NULL)
		j->on_exit(j);
	if (j->closing) /* on_exit gave the job up */
		return;
	if (!j->done && !j->timed_out && (j->out_open || j->err_open) && j->timer_open) {
		/* A descendant holds the pipes: wait, but never past the deadline. */
		int64_t wait = j->eof_wait_ms, left;
		if (j->deadline_at > 0) {
			left = (int64_t)j->deadline_at - (int64_t)uv_now(loop);
			wait = left < wait ? (left > 0 ? left : 0) : wait;
		}
		uv_timer_stop(&j->timer);
		uv_timer_start(&j->timer, job_on_timer, (uint64_t)wait, 0);
	}
	job_maybe_done(j);
}

static void
job_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	b->base = readbuf;
	b->len = sizeof readbuf;
}

static void
job_read(struct job *j, uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	int which = s == (uv_stream_t *)&j->out ? 1 : 2;

	if (n < 0) {
		job_close_handle(j, (uv_handle_t *)s, which == 1 ? &j->out_open : &j->err_open);
		if (j->on_eof != NULL && !j->closing)
			j->on_eof(j, which);
		job_maybe_done(j);
		return;
	}
	if (n > 0 && j->on_read != NULL && !j->closing)
		j->on_read(j, which, b->base, (size_t)n);
}

static void
job_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	job_read(s->data, s, n, b);
}

static void
job_open_pipe(struct job *j, uv_pipe_t *p, int fd, int *open, int read)
{
	if (fd == -1)
		return;
	uv_pipe_init(loop, p, 0);
	p->data = j;
	j->handles++;
	*open = 1;
	if (uv_pipe_open(p, fd) != 0) {
		close(fd);
		job_close_handle(j, (uv_handle_t *)p, open);
		return;
	}
	if (read)
		uv_read_start((uv_stream_t *)p, job_alloc, job_on_read);
}

/* ---- starting ---- */

/* Clear what the previous run left; take this run's marker and end-of-output wait. */
static void
job_reset(struct job *j, const struct job_spec *s)
{
	j->running = j->done = j->closing = j->timed_out = j->forced = 0;
	j->deadline_at = 0;
	j->exit_code = j->term_signal = 0;
	j->in_open = j->out_open = j->err_open = 0;
	j->in_tree = 0;
	j->tree[0] = '\0';
	j->nvictims = 0;
	free(j->marker);
	j->marker = s->marker != NULL ? xstrdup(s->marker) : NULL;
	j->eof_wait_ms = s->eof_wait_ms > 0 ? s->eof_wait_ms : JOB_EOF_WAIT_MS;
}

/* The child runs: its timer (and deadline, if any) and its pipes watched. */
static void
job_watch(struct job *j, const struct job_spec *s)
{
	j->pid_start = reaper_start_time(j->proc.pid);
	j->running = 1;
	uv_timer_init(loop, &j->timer);
	j->timer.data = j;
	j->timer_open = 1;
	j->handles++;
	if (s->deadline_ms > 0) {
		j->deadline_at = (int64_t)uv_now(loop) + s->deadline_ms;
		uv_timer_start(&j->timer, job_on_timer, (uint64_t)s->deadline_ms, 0);
	}
	job_open_pipe(j, &j->out, j->proc.out_fd, &j->out_open, 1);
	job_open_pipe(j, &j->err, j->proc.err_fd, &j->err_open, 1);
	job_open_pipe(j, &j->in, j->proc.in_fd, &j->in_open, 0);
}

int
job_start(struct job *j, const struct job_spec *s, char **cause)
{
	struct proc_spec ps;
	int fd = -1;

	if (j->handles > 0) {
		xasprintf(cause, "the previous run of this job is still closing");
		return -1;
	}
	job_reset(j, s);
	if (s->tree != NULL && tree_name_valid(s->tree)) {
		snprintf(j->tree, sizeof j->tree, "%s", s->tree);
		job_pending_drop(s->tree);
		fd = tree_enter_fd(s->tree);
	}
	memset(&ps, 0, sizeof ps);
	ps.path = s->path;
	ps.argv = s->argv;
	ps.envp = s->envp;
	ps.cwd = s->cwd;
	ps.in = s->in;
	ps.out = s->out;
	ps.err = s->err;
	ps.new_pgroup = 1;
	ps.creds = s->creds;
	ps.cgroup_fd = fd;
	ps.pass_fd = s->pass_fd;
	memset(&j->proc, 0, sizeof j->proc);
	j->proc.on_exit = job_on_exit;
	j->proc.data = j;
	if (proc_spawn(&ps, &j->proc, cause) == -1) {
		if (fd != -1) {
			close(fd);
			job_tree_release(j->tree);
		}
		free(j->marker);
		j->marker = NULL;
		return -1;
	}
	if (fd != -1)
		close(fd);
	j->in_tree = fd != -1;
	job_watch(j, s);
	return 0;
}

uv_stream_t *
job_stdin(struct job *j)
{
	return j->in_open ? (uv_stream_t *)&j->in : NULL;
}

void
job_close_stdin(struct job *j)
{
	job_close_handle(j, (uv_handle_t *)&j->in, &j->in_open);
}

void
job_close(struct job *j)
{
	if (j->closing)
		return;
	j->closing = 1;
	if (j->running || (j->in_tree && !j->done))
		job_signal(j, SIGKILL);
	job_close_handle(j, (uv_handle_t *)&j->in, &j->in_open);
	job_close_handle(j, (uv_handle_t *)&j->out, &j->out_open);
	job_close_handle(j, (uv_handle_t *)&j->err, &j->err_open);
	if (j->timer_open) {
		uv_timer_stop(&j->timer);
		job_close_handle(j, (uv_handle_t *)&j->timer, &j->timer_open);
	}
	if (j->in_tree)
		job_tree_release(j->tree);
	free(j->victims);
	j->victims = NULL;
	j->nvictims = 0;
	free(j->marker);
	j->marker = NULL;
	job_maybe_closed(j);
}
