/*
 * proc.h -- starting one child process, and the one SIGCHLD reaper.
 *
 * The lowest layer of the job layer (job.h): job.c calls proc_spawn and
 * gets the exit through on_exit.  Nothing else in the daemon starts a
 * process.
 *
 * proc_spawn forks and, in the child, before exec: resets the signal mask
 * and dispositions, optionally starts a process group, enters the child's
 * process tree (a cgroup: the descriptor from tree_enter_fd), sets up
 * stdin/stdout/stderr, changes directory, optionally becomes another user
 * (setgroups + setresgid + setresuid -- what posix_spawn cannot do), and
 * closes every descriptor above 2, so nothing the daemon holds or inherited
 * reaches the child -- but the one it was asked to pass (pass_fd), which
 * the child keeps as descriptor 3, PROC_PASS_FD, without close-on-exec (the
 * agent channel: a socket of the daemon's, spawn-exec.c).  A failure of any step is reported back
 * through a close-on-exec pipe as "which step: errno", so a spawn that cannot run fails with a
 * reason instead of a child exiting 127.
 *
 * Every exit is collected by one SIGCHLD handle calling waitpid(-1): as a
 * subreaper the daemon must reap every orphan that lands on it too.  Exits
 * of processes we did not start (reparented orphans) are reaped and logged.
 */
#ifndef COLIBRI_PROC_H
#define COLIBRI_PROC_H

#include <sys/types.h>
#include <uv.h>

enum proc_stdio { PROC_NULL, PROC_PIPE };

#define PROC_MAX_GROUPS 64

/* Whom the child runs as (a root daemon only). */
struct proc_creds {
	uid_t uid;
	gid_t gid;
	gid_t groups[PROC_MAX_GROUPS]; /* supplementary groups */
	int ngroups;
};

struct proc_spec {
	const char *path;  /* absolute path of the program */
	char *const *argv; /* NULL-terminated */
	char *const *envp; /* NULL-terminated */
	const char *cwd;   /* NULL: the daemon's */
	enum proc_stdio in, out, err;
	int new_pgroup;                 /* put the child in a process group of its own */
	const struct proc_creds *creds; /* NULL: the daemon's identity */
	int cgroup_fd;                  /* cgroup.procs to enter before exec, or -1 */
	int pass_fd; /* 0: none; else a descriptor above 2 the child keeps as PROC_PASS_FD */
};

/* The one descriptor above 2 a child may keep (proc_spec.pass_fd), at this number. */
#define PROC_PASS_FD 3

struct proc {
	pid_t pid;
	int in_fd, out_fd, err_fd; /* parent ends, -1 when not piped; caller owns them */
	/* Called once when the process has been reaped. */
	void (*on_exit)(struct proc *, int exit_code, int term_signal);
	void *data;
	struct proc *next;
};

void proc_init(uv_loop_t *loop);
void proc_close(void);
/* Spawn; 0 with p->pid and the pipe fds set, or -1 with *cause (caller frees). */
int proc_spawn(const struct proc_spec *, struct proc *p, char **cause);
/* Forget a process (its exit will be reaped but not reported). */
void proc_forget(struct proc *);
int proc_count(void);

#endif
