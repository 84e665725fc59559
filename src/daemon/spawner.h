/*
 * spawner.h -- spawning and supervising coding agents.
 *
 * The spawner starts an agent (pi, zot or a local binary) as a child in a
 * process group of its own, optionally confined (src/confine), reads its
 * stdout as JSONL into the session log and the glasspane, its stderr into
 * a bounded log, restarts it by policy, and ends it -- with everything it
 * started -- on kill-agent or daemon shutdown.  State changes are stored
 * on the agent's row (one write per transition) and published as
 * agent.state events.  It starts agents from a parsed spawn_spec
 * (spawn-spec.h) and calls down into the vault (vault_jailed_spawned);
 * the commands call it, nothing it calls calls back.  Its own files share
 * spawner-agent.h.
 */
#ifndef COLIBRI_SPAWNER_H
#define COLIBRI_SPAWNER_H

#include <jansson.h>
#include <sys/types.h>

struct spawn_spec;

/* Told that agent id has ended (its row is final); arg as given. */
typedef void spawner_ended_fn(void *arg, const char *id);

int spawner_init(char **cause);
void spawner_shutdown(void);
int spawner_busy(void);
void spawner_close(void);

/*
 * Start an agent from spec (spawn-spec.h; its contents are taken over and
 * *spec left zeroed, whatever the outcome).  Returns the agent object (new
 * reference) or NULL with *code (ERR_*) and *cause: an id or session in
 * use, the daemon shutting down, or the first run failing to start.
 */
json_t *spawner_spawn(struct spawn_spec *spec, const char **code, char **cause);
/*
 * kill-agent: stop agent id (SIGTERM, SIGKILL after grace_ms; no restart)
 * and call done(arg, id) once it has ended -- before spawner_kill returns
 * when it had already ended or was waiting out a backoff (then nothing is
 * left to wait for), else from the loop when its last run is over.  done
 * is called exactly once.
 */
void spawner_kill(const char *id, long long grace_ms, spawner_ended_fn *done, void *arg);
/* RPC mode: write one JSON command line to the agent's stdin. */
int spawner_rpc_send(const char *id, json_t *cmd, const char **code, char **cause);
/* The session id of a live or recorded agent id (or id itself if it names a session). */
char *spawner_session_of(const char *id);

/*
 * Does pid belong to a process tree the daemon started?  Walks pid's
 * parent chain: 1 when it meets a running agent's pid (*agent_id names
 * the agent, borrowed until the next turn of the loop) or the daemon
 * itself (an agent's orphan, which the daemon reaps: *agent_id NULL);
 * 0 when the chain ends elsewhere; -1 when it cannot tell (pid is gone).
 */
int spawner_agent_of_pid(pid_t pid, const char **agent_id);

/*
 * The agent channel's ends in the server (server_channel_open and _close,
 * server.h), handed down by the top floor: the spawner does not know the
 * server.  open takes fd and returns the channel's number, or 0 with
 * *cause; close is told that number when the run ends.  Set before the
 * first spawn; without it a run cannot start.
 */
struct spawner_channel {
	unsigned long long (*open)(int fd, const char *agent_id, uid_t uid, gid_t gid,
	                           char **cause);
	void (*close)(unsigned long long channel);
};
void spawner_set_channel(const struct spawner_channel *);

/*
 * Quota parking (spawn-park.c): until when (ms since the epoch) agents of
 * profile are parked on a provider's rate limit or quota -- start nothing
 * more on that credential before it; 0 when not parked (or profile NULL).
 */
int64_t spawner_parked_until(const char *profile);

/*
 * Overlay the live detail (glasspane state, reason, pid, usage) of a
 * running agent on its stored agent object; an object that names no agent
 * of this daemon is left as it is.  list-agents and agent-status call it.
 */
void spawner_detail(json_t *agent);
/*
 * agent-explain: the spawned agent id's last transitions, each with its
 * cause and the session log line behind it (spawn-explain.c), as
 * {id, session_id, state, reason, live, unrecognized_lines, transitions}
 * (caller json_decref()s), or NULL with *code and *cause (freed by the caller).
 */
json_t *spawner_explain(const char *id, const char **code, char **cause);

/* Is id an agent of this daemon whose run is not over (running, draining, in a backoff)? */
int spawner_agent_live(const char *id);

/*
 * agent-resume: start an interrupted agent's run again under the same id and session
 * (spawn-resume.c).  Only a provider that can continue a session does (pi: `--session ID`,
 * the id its session header gave); a task-bound run claims its task again.  Returns the
 * agent object, or NULL with *code and *cause.
 */
json_t *spawner_resume(const char *id, const char **code, char **cause);

#endif
