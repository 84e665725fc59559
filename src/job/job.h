/*
 * job.h -- the one layer for child processes (the daemon's and colibri-mcp's).
 *
 * Every child the daemon runs -- agents (spawner.c), bw (vault-run.c), the
 * runtime inventory (cmd-cache.c) -- and every external MCP server
 * colibri-mcp runs (mcp/host.c) is a job.  A job owns:
 *
 *   spawn     through proc.c: fork, a process group, the child's own
 *             process tree (tree.h: a cgroup on Linux), stdin/stdout/stderr
 *             pipes or /dev/null, an optional other identity (creds), and
 *             no descriptor above 2.
 *   reading   stdout and stderr are read by the job and handed to on_read in
 *             chunks (the buffer is the job layer's: copy what you keep).
 *   the join  a job is done when its process has been reaped AND both pipes
 *             reached end of file, so every byte is seen before the end.  If
 *             the pipes stay open eof_wait_ms after the exit (a descendant
 *             holds them), the whole tree is killed and the pipes closed.
 *   deadline  deadline_ms after the start (0: none) the whole tree is
 *             killed, the pipes are closed at once (a detached grandchild
 *             holding them cannot delay the end) and the job ends with
 *             timed_out set.  After the exit, the end-of-file wait never
 *             runs past the deadline; a job whose pipes had to be closed
 *             that way has forced set (its output may be incomplete).
 *   killing   job_signal signals the whole tree: the cgroup (cgroup.kill
 *             for SIGKILL), or on FreeBSD the reaper subtree, and always
 *             the process group and the process itself; where neither
 *             cgroups nor a reaper subtree exist, descendants found by the
 *             reaper's scan (reaper.h, the COLIBRI_AGENT_ID marker) too.
 *
 * Life cycle: job_start; then any number of on_read calls, one on_exit
 * (optional: the process was reaped, pipes may still be open) and one
 * on_done (the join; exactly once per successful job_start).  After on_done,
 * or at any time to abandon a job, job_close releases the handles;
 * on_closed (optional) follows once they are all closed, and only then may
 * the struct job be freed.  A job whose process still runs at job_close is
 * killed (its tree) first; its exit is reaped and ignored.
 */
#ifndef COLIBRI_JOB_H
#define COLIBRI_JOB_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "job/proc.h"
#include "job/tree.h"

#define JOB_EOF_WAIT_MS 2000

struct job_spec {
	const char *path;  /* absolute path of the program */
	char *const *argv; /* NULL-terminated */
	char *const *envp; /* NULL-terminated */
	const char *cwd;   /* NULL: the daemon's */
	enum proc_stdio in, out, err;
	const struct proc_creds *creds; /* NULL: the daemon's identity */
	const char *tree;               /* name of the child's process tree (cgroup); NULL: none */
	const char *marker;  /* COLIBRI_AGENT_ID value for the reaper's scan (fallback), or NULL */
	int64_t deadline_ms; /* 0: none */
	int64_t eof_wait_ms; /* 0: JOB_EOF_WAIT_MS */
	int pass_fd;         /* 0: none; else kept by the child as PROC_PASS_FD (proc.h) */
};

struct job {
	struct proc proc;
	int64_t pid_start; /* reaper_start_time of the child, for a later daemon */
	char tree[TREE_NAME_MAX];
	int in_tree;     /* the child entered its cgroup */
	int running;     /* not yet reaped */
	int exit_code;   /* valid once reaped: -1 when killed by a signal */
	int term_signal; /* 0 unless killed by a signal */
	int timed_out;   /* the deadline ended it */
	int forced;      /* it exited but a descendant held its pipes: closed by force */
	int done;        /* on_done was called */
	int closing;
	uv_pipe_t in, out, err;
	int in_open, out_open, err_open;
	uv_timer_t timer;
	int timer_open;
	int handles; /* uv handles not yet closed */
	int64_t eof_wait_ms;
	int64_t deadline_at; /* uv_now of the deadline, 0: none */
	char *marker;
	struct job_victim {
		pid_t pid;
		int64_t start;
	} * victims; /* descendants seen by the reaper's scan (fallback only) */
	size_t nvictims;

	/* which: 1 stdout, 2 stderr; n > 0 bytes at p. */
	void (*on_read)(struct job *, int which, const char *p, size_t n);
	/* Optional: stdout (1) or stderr (2) reached end of file. */
	void (*on_eof)(struct job *, int which);
	void (*on_exit)(struct job *);
	void (*on_done)(struct job *);
	void (*on_closed)(struct job *);
	void *data;
};

/*
 * Before the first job: become the reaper of our descendants, start the
 * SIGCHLD handle on loop, choose the process trees (keyed by key: the
 * daemon's state directory; a program without one passes something unique
 * to it, such as its pid) and kill what a previous process with the same
 * key left in them.  Never fails (what it cannot do is logged).  The daemon
 * calls it first of its subsystems (subsys.c), colibri-mcp before it starts
 * its servers.  job_close_all releases it all.
 */
void job_setup(uv_loop_t *loop, const char *key);
void job_close_all(void);

/* Start a job (callbacks and data set by the caller first).  0, or -1 with *cause. */
int job_start(struct job *, const struct job_spec *, char **cause);
/* Signal the whole tree. */
void job_signal(struct job *, int sig);
/* The stdin stream (NULL unless piped and still open). */
uv_stream_t *job_stdin(struct job *);
void job_close_stdin(struct job *);
/* Release the handles (killing the tree if it still runs); on_closed follows. */
void job_close(struct job *);

/*
 * Kill and remove what a previous daemon left in tree name (restart
 * recovery for one agent); 1 if it held processes.  The tree's own
 * leftovers in general are handled by job_init.
 */
int job_recover_tree(const char *name);

#endif
