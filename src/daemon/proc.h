/*
 * proc.h -- child processes: posix_spawn, pipes, and one SIGCHLD reaper.
 *
 * libuv's uv_spawn forks (costly once the daemon is large) and reaps only
 * its own children; as a subreaper the daemon must reap every orphan that
 * lands on it.  So every child is started here with posix_spawn (vfork
 * speed) and every exit is collected by one SIGCHLD handle calling
 * waitpid(-1).  Exits of processes we did not start (reparented orphans)
 * are reaped and logged.
 */
#ifndef COLIBRI_PROC_H
#define COLIBRI_PROC_H

#include <sys/types.h>
#include <uv.h>

enum proc_stdio { PROC_NULL, PROC_PIPE };

struct proc_spec {
	const char *path;  /* absolute path of the program */
	char *const *argv; /* NULL-terminated */
	char *const *envp; /* NULL-terminated */
	const char *cwd;   /* NULL: the daemon's */
	enum proc_stdio in, out, err;
	int new_pgroup; /* put the child in a process group of its own */
};

struct proc {
	pid_t pid;
	int in_fd, out_fd, err_fd; /* parent ends, -1 when not piped; caller owns them */
	/* Called once when the process has been reaped. */
	void (*on_exit)(struct proc *, int exit_code, int term_signal);
	void *data;
	struct proc *next;
};

void proc_init(void);
void proc_close(void);
/* Spawn; 0 with p->pid and the pipe fds set, or -1 with *cause (caller frees). */
int proc_spawn(const struct proc_spec *, struct proc *p, char **cause);
/* Forget a process (its exit will be reaped but not reported). */
void proc_forget(struct proc *);
int proc_count(void);

#endif
