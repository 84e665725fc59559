/*
 * proc.c -- posix_spawn and the SIGCHLD reaper.  See proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/proc.h"

static uv_signal_t sigchld;
static struct proc *procs;
static int nprocs;

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
proc_init(void)
{
	uv_signal_init(D.loop, &sigchld);
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

static int
make_pipe(int fds[2], char **cause)
{
	if (pipe2(fds, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
proc_spawn(const struct proc_spec *s, struct proc *p, char **cause)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rc = -1, e;
	sigset_t none, all;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;

	p->pid = -1;
	p->in_fd = p->out_fd = p->err_fd = -1;
	if ((s->in == PROC_PIPE && make_pipe(in, cause) == -1) ||
	    (s->out == PROC_PIPE && make_pipe(out, cause) == -1) ||
	    (s->err == PROC_PIPE && make_pipe(err, cause) == -1))
		goto out;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	if (s->in == PROC_PIPE)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (s->out == PROC_PIPE)
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (s->err == PROC_PIPE)
		posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (s->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, s->cwd);
	if (s->new_pgroup) {
		flags |= POSIX_SPAWN_SETPGROUP;
		posix_spawnattr_setpgroup(&attr, 0);
	}
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, flags);
	e = posix_spawn(&p->pid, s->path, &fa, &attr, s->argv, s->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (e != 0) {
		xasprintf(cause, "cannot run %s: %s", s->path, strerror(e));
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
	if (in[0] != -1)
		close(in[0]);
	if (in[1] != -1)
		close(in[1]);
	if (out[0] != -1)
		close(out[0]);
	if (out[1] != -1)
		close(out[1]);
	if (err[0] != -1)
		close(err[0]);
	if (err[1] != -1)
		close(err[1]);
	return rc;
}
