/*
 * proc.c -- fork, the child's steps before exec, and the SIGCHLD reaper.
 * See proc.h.
 *
 * Between fork and exec the child calls only async-signal-safe functions;
 * it reports a failure as two ints (step, errno) on a close-on-exec pipe
 * that the parent reads until end of file (the exec closed it) or a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "job/proc.h"

static uv_signal_t sigchld;
static struct proc *procs;
static int nprocs;

/* The child's steps, for the failure report. */
enum proc_step {
	STEP_PGROUP,
	STEP_CGROUP,
	STEP_STDIO,
	STEP_CWD,
	STEP_GROUPS,
	STEP_GID,
	STEP_UID,
	STEP_CLOSE,
	STEP_EXEC,
};

static const char *const step_names[] = {
        "setpgid",   "entering its cgroup", "stdio", "chdir", "setgroups", "setresgid",
        "setresuid", "closing descriptors", "exec",
};

static void
on_sigchld(uv_signal_t *h, int signum)
{
	struct proc **pp, *p;
	pid_t pid;
	int st;

	(void)h;
	(void)signum;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (pp = &procs; *pp != NULL; pp = &(*pp)->next)
			if ((*pp)->pid == pid)
				break;
		if ((p = *pp) == NULL) {
			log_debug("reaped orphan %ld", (long)pid);
			continue;
		}
		*pp = p->next;
		nprocs--;
		if (p->on_exit != NULL)
			p->on_exit(p, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
			           WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	}
}

void
proc_init(uv_loop_t *loop)
{
	uv_signal_init(loop, &sigchld);
	uv_signal_start(&sigchld, on_sigchld, SIGCHLD);
	uv_unref((uv_handle_t *)&sigchld);
}

void
proc_close(void)
{
	uv_close((uv_handle_t *)&sigchld, NULL);
}

int
proc_count(void)
{
	return nprocs;
}

void
proc_forget(struct proc *p)
{
	struct proc **pp;

	for (pp = &procs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			nprocs--;
			return;
		}
	}
}

/*
 * In the child: nothing above 2 but the report pipe, which exec closes,
 * and the passed descriptor, moved to PROC_PASS_FD (the report first moved
 * out of its way: *report follows it) and kept across exec.  -1 with errno.
 */
static int
proc_child_fds(const struct proc_spec *s, int *reportp)
{
	int low = 3, report = *reportp;

	if (s->pass_fd > 2) {
		if (report == PROC_PASS_FD &&
		    (report = *reportp = fcntl(report, F_DUPFD_CLOEXEC, PROC_PASS_FD + 1)) == -1) {
			*reportp = PROC_PASS_FD;
			return -1;
		}
		if (s->pass_fd != PROC_PASS_FD && dup2(s->pass_fd, PROC_PASS_FD) == -1)
			return -1;
		if (fcntl(PROC_PASS_FD, F_SETFD, 0) == -1)
			return -1;
		low = PROC_PASS_FD + 1;
	}
	if ((report > low && close_range((unsigned)low, (unsigned)report - 1, 0) == -1) ||
	    close_range((unsigned)report + 1, ~0U, 0) == -1)
		return -1;
	return 0;
}

/* The child after fork: never returns. */
static void __attribute__((noreturn))
proc_child(const struct proc_spec *s, int in[2], int out[2], int err[2], int report)
{
	struct sigaction sa;
	sigset_t none;
	int step, sig, fd, rep[2];

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	step = STEP_PGROUP;
	if (s->new_pgroup && setpgid(0, 0) == -1)
		goto fail;
	step = STEP_CGROUP;
	if (s->cgroup_fd != -1 && write(s->cgroup_fd, "0", 1) != 1)
		goto fail;
	step = STEP_STDIO;
	if ((fd = s->in == PROC_PIPE ? in[0] : open("/dev/null", O_RDONLY)) == -1 ||
	    dup2(fd, 0) == -1)
		goto fail;
	if ((fd = s->out == PROC_PIPE ? out[1] : open("/dev/null", O_WRONLY)) == -1 ||
	    dup2(fd, 1) == -1)
		goto fail;
	if ((fd = s->err == PROC_PIPE ? err[1] : open("/dev/null", O_WRONLY)) == -1 ||
	    dup2(fd, 2) == -1)
		goto fail;
	step = STEP_CWD;
	if (s->cwd != NULL && chdir(s->cwd) == -1)
		goto fail;
	if (s->creds != NULL) {
		step = STEP_GROUPS;
		if (setgroups((size_t)s->creds->ngroups, s->creds->groups) == -1)
			goto fail;
		step = STEP_GID;
		if (setresgid(s->creds->gid, s->creds->gid, s->creds->gid) == -1)
			goto fail;
		step = STEP_UID;
		if (setresuid(s->creds->uid, s->creds->uid, s->creds->uid) == -1)
			goto fail;
	}
	step = STEP_CLOSE;
	if (proc_child_fds(s, &report) == -1)
		goto fail;
	step = STEP_EXEC;
	execve(s->path, s->argv, s->envp);
fail:
	rep[0] = step;
	rep[1] = errno;
	(void)!write(report, rep, sizeof rep);
	_exit(127);
}

static int
make_pipe(int fds[2], char **cause)
{
	if (pipe2(fds, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
close_pair(int fds[2])
{
	if (fds[0] != -1)
		close(fds[0]);
	if (fds[1] != -1)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

/* Wait for the child's exec (end of file) or its failure report; 0 or -1 with *cause. */
static int
proc_await_exec(const struct proc_spec *s, pid_t pid, int report, char **cause)
{
	int rep[2] = {0, 0}, st;
	ssize_t n;

	do
		n = read(report, rep, sizeof rep);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof rep)
		return 0;
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (rep[0] == STEP_EXEC)
		xasprintf(cause, "cannot run %s: %s", s->path, strerror(rep[1]));
	else
		xasprintf(cause, "cannot run %s: %s failed: %s", s->path,
		          step_names[rep[0] >= 0 && rep[0] <= STEP_EXEC ? rep[0] : STEP_EXEC],
		          strerror(rep[1]));
	return -1;
}

int
proc_spawn(const struct proc_spec *s, struct proc *p, char **cause)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1}, rc = -1;
	sigset_t all, old;

	p->pid = -1;
	p->in_fd = p->out_fd = p->err_fd = -1;
	if ((s->in == PROC_PIPE && make_pipe(in, cause) == -1) ||
	    (s->out == PROC_PIPE && make_pipe(out, cause) == -1) ||
	    (s->err == PROC_PIPE && make_pipe(err, cause) == -1) || make_pipe(rep, cause) == -1)
		goto out;
	/* No handler of ours may run in the child between fork and the reset. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	p->pid = fork();
	if (p->pid == 0) {
		close(rep[0]);
		proc_child(s, in, out, err, rep[1]);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p->pid == -1) {
		xasprintf(cause, "cannot run %s: fork: %s", s->path, strerror(errno));
		goto out;
	}
	close(rep[1]);
	rep[1] = -1;
	if (proc_await_exec(s, p->pid, rep[0], cause) == -1) {
		p->pid = -1;
		goto out;
	}
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = err[0];
	in[1] = out[0] = err[0] = -1;
	p->next = procs;
	procs = p;
	nprocs++;
	rc = 0;
out:
	close_pair(in);
	close_pair(out);
	close_pair(err);
	close_pair(rep);
	return rc;
}
