/*
 * cli-verbs.c -- the colibri verb table.
 *
 * One row per daemon command.  A row says which protocol command the verb
 * sends, which protocol argument each positional word and each flag fills
 * and how the value is typed, and how the result is printed.  Flags carry
 * the protocol names with hyphens (--session-id fills session_id); a
 * dotted key fills a member of a nested object (--jail-root fills
 * jail.root_path), which is how the spawn verbs build their `jail` and
 * `restart` objects.  Nothing else in the CLI knows about any verb, so a
 * new daemon command needs only a new row here (and a line in colibri(1)).
 */
#include <string.h>

#include "client/cli.h"
#include "common/proto.h"

/* Positionals. */
static const struct cli_pos pos_none[] = {{NULL, NULL, 0, 0}};
static const struct cli_pos pos_task_id[] = {{"ID", "id", CLI_INT, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_agent_id[] = {{"ID", "id", CLI_STR, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_title[] = {{"TITLE", "title", CLI_STR, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_claim[] = {{"AGENT", "agent", CLI_STR, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_register[] = {{"ID", "id", CLI_STR, 1}, {NULL, NULL, 0, 0}};
/* PROVIDER may be left out when --profile names it. */
static const struct cli_pos pos_spawn_agent[] = {
        {"PROVIDER", "provider", CLI_STR, CLI_POS_UNLESS_PROFILE},
        {"BINARY", "binary", CLI_STR, 1},
        {NULL, NULL, 0, 0}};
static const struct cli_pos pos_spawn_local[] = {{"BINARY", "binary", CLI_STR, 0},
                                                 {NULL, NULL, 0, 0}};
static const struct cli_pos pos_prompt[] = {
        {"ID", "id", CLI_STR, 0}, {"MESSAGE", "message", CLI_STR, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_tenant[] = {{"TENANT_ID", "tenant_id", CLI_STR, 0},
                                            {NULL, NULL, 0, 0}};
static const struct cli_pos pos_register_tenant[] = {
        {"TENANT_ID", "tenant_id", CLI_STR, 0},
        {"JAIL_ROOT_PATH", "jail_root_path", CLI_STR, 0},
        {"COLLECTION_ID", "collection_id", CLI_STR, 1},
        {NULL, NULL, 0, 0}};
static const struct cli_pos pos_query[] = {{"QUERY", "query", CLI_STR, 1}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_skill[] = {{"NAME", "name", CLI_STR, 0}, {NULL, NULL, 0, 0}};
static const struct cli_pos pos_dispatch[] = {{"on|off|status", "action", CLI_STR, 0},
                                              {NULL, NULL, 0, 0}};
static const struct cli_pos pos_call[] = {
        {"CMD", "cmd", CLI_STR, 0}, {"JSON-ARGS", "args", CLI_OBJ, 1}, {NULL, NULL, 0, 0}};

/* Flags. */
#define OPT_END                                                                                    \
	{                                                                                          \
		NULL, 0, NULL, 0, NULL                                                             \
	}
static const struct cli_opt opt_none[] = {OPT_END};
static const struct cli_opt opt_task_create[] = {
        {"body", 0, "body", CLI_STR, "longer description"},
        {"priority", 0, "priority", CLI_INT, "higher runs first (default 0)"},
        {"depends-on", 0, "depends_on", CLI_INTS, "task IDs that must be done first"},
        {"tag", 0, "tags", CLI_STRS, "a tag (repeatable): the dispatcher routes by it"},
        OPT_END};
static const struct cli_opt opt_task_list[] = {
        {"status", 0, "status", CLI_STR, "open, claimed, done, cancelled or failed"},
        {"owner", 0, "owner", CLI_STR, "claiming agent"},
        {"ready", 0, "ready", CLI_BOOL, "only tasks whose dependencies are done"},
        {"limit", 0, "limit", CLI_INT, "at most N tasks (default 1000)"},
        {"after", 0, "after", CLI_INT, "tasks after this id (a page's next)"},
        {"tag", 0, "tag", CLI_STR, "only tasks carrying this tag"},
        OPT_END};
static const struct cli_opt opt_limit[] = {{"limit", 0, "limit", CLI_INT, "at most N tasks"},
                                           OPT_END};
static const struct cli_opt opt_task_claim[] = {
        {"id", 0, "id", CLI_INT, "claim this task instead of the head of the queue"},
        {"lease-ms", 0, "lease_ms", CLI_INT, "lease length (default 300000)"},
        OPT_END};
static const struct cli_opt opt_task_update[] = {
        {"title", 0, "title", CLI_STR, "new title"},
        {"body", 0, "body", CLI_STR, "new body"},
        {"priority", 0, "priority", CLI_INT, "new priority"},
        {"progress", 0, "progress", CLI_STR, "progress note"},
        {"depends-on", 0, "depends_on", CLI_INTS, "replace the dependencies (\"\" clears)"},
        {"status", 0, "status", CLI_STR, "cancelled, or open (reopens a cancelled or failed task)"},
        {"agent", 0, "agent", CLI_STR, "must own the claim"},
        {"epoch", 0, "epoch", CLI_INT, "the claim's epoch (conflict when stale)"},
        {"tag", 0, "tags", CLI_STRS, "replace the tags (repeatable)"},
        OPT_END};
static const struct cli_opt opt_task_complete[] = {
        {"agent", 0, "agent", CLI_STR, "must own the claim"},
        {"epoch", 0, "epoch", CLI_INT, "the claim's epoch (conflict when stale)"},
        {"result", 0, "result", CLI_JSON, "JSON, or text stored as a string"},
        OPT_END};
static const struct cli_opt opt_task_release[] = {
        {"agent", 0, "agent", CLI_STR, "must own the claim"},
        {"epoch", 0, "epoch", CLI_INT, "the claim's epoch (conflict when stale)"},
        OPT_END};
static const struct cli_opt opt_agent_register[] = {
        {"name", 0, "name", CLI_STR, "display name"},
        {"provider", 0, "provider", CLI_STR, "provider label"},
        {"lease-ms", 0, "lease_ms", CLI_INT, "heartbeat lease (default 30000)"},
        OPT_END};
static const struct cli_opt opt_agent_heartbeat[] = {
        {"state", 0, "state", CLI_STR, "reported state"},
        {"activity", 0, "activity", CLI_STR, "what the agent is doing"},
        OPT_END};
static const struct cli_opt opt_list_agents[] = {
        {"kind", 0, "kind", CLI_STR, "registered or spawned"},
        {"state", 0, "state", CLI_STR, "idle, working, blocked, done, error..."},
        OPT_END};
static const struct cli_opt opt_kill_agent[] = {
        {"grace-ms", 0, "grace_ms", CLI_INT, "SIGKILL after this long"}, OPT_END};
#define SPAWN_OPTS                                                                                 \
	{"prompt", 'p', "prompt", CLI_STR, "first prompt"},                                        \
	        {"mode", 0, "mode", CLI_STR, "json (default) or rpc"},                             \
	        {"arg", 0, "args", CLI_STRS,                                                       \
	         "an argument for the agent (repeatable; or after --)"},                           \
	        {"env", 0, "env", CLI_ENV, "NAME=VALUE in the agent's environment (repeatable)"},  \
	        {"cwd", 0, "cwd", CLI_STR, "working directory"},                                   \
	        {"session-id", 0, "session_id", CLI_STR, "session log name"},                      \
	        {"id", 0, "id", CLI_STR, "agent ID (generated when absent)"},                      \
	        {"max-restarts", 0, "restart.max_restarts", CLI_INT,                               \
	         "restart a crashed agent N times"},                                               \
	        {"backoff-ms", 0, "restart.backoff_ms", CLI_INT, "first restart delay"},           \
	        {"backoff-max-ms", 0, "restart.backoff_max_ms", CLI_INT, "restart delay cap"},     \
	        {"restart-on-error", 0, "restart.on_error", CLI_BOOL,                              \
	         "also restart after error exits"},                                                \
	        {"stall-ms", 0, "stall_ms", CLI_INT,                                               \
	         "silence before the agent counts as stalled"},                                    \
	        {"timeout-ms", 0, "timeout_ms", CLI_INT,                                           \
	         "end a run that lasts longer (its whole tree), in error"},                        \
	        {"jail-name", 0, "jail.name", CLI_STR, "run inside this jail"},                    \
	        {"jail-root", 0, "jail.root_path", CLI_STR, "host path of the jail's root"},       \
	        {"jail-path", 0, "jail.path", CLI_STR, "jail path"},                               \
	        {"jail-ip4", 0, "jail.ip4", CLI_STR, "jail IPv4 address"},                         \
	        {"jail-user", 0, "jail.user", CLI_STR, "user inside the jail"},                    \
	        {"ro-path", 0, "ro_paths", CLI_STRS,                                               \
	         "host path bound read-only (bubblewrap; repeatable)"},                            \
	        {"task", 0, "task", CLI_INT, "claim this task for the agent and work it"},         \
	        {"next", 0, "task", CLI_NEXT, "claim the head of the ready queue and work it"},    \
	        {"max-attempts", 0, "max_attempts", CLI_INT,                                       \
	         "a task-bound run's task fails after N failed runs (default: 3)"},                \
	        {"tenant-env", 0, "tenant_env", CLI_BOOL,                                          \
	         "start with the jail's tenant .env loaded (provisioned first when missing)"},
static const struct cli_opt opt_spawn[] = {SPAWN_OPTS OPT_END};
static const struct cli_opt opt_spawn_agent[] = {
        {"profile", 0, "profile", CLI_STR, "start from this agent profile"}, SPAWN_OPTS OPT_END};
static const struct cli_opt opt_session_read[] = {
        {"since", 0, "since", CLI_INT, "first line number (0 first)"},
        {"limit", 0, "limit", CLI_INT, "at most N lines"},
        {"stream", 0, "stream", CLI_STR, "stdout (the JSONL log, default) or stderr"},
        OPT_END};
static const struct cli_opt opt_usage[] = {{"agent", 0, "agent", CLI_STR, "one agent"},
                                           {"session-id", 0, "session_id", CLI_STR, "one session"},
                                           {"tenant", 0, "tenant", CLI_STR, "one tenant"},
                                           OPT_END};
static const struct cli_opt opt_events_read[] = {
        {"after", 0, "after", CLI_INT, "events after this seq (a page's next)"},
        {"since", 0, "since", CLI_INT, "the same as --after (its older name)"},
        {"limit", 0, "limit", CLI_INT, "at most N events"},
        {"topic", 0, "topics", CLI_STRS, "topic prefix (repeatable)"},
        OPT_END};
static const struct cli_opt opt_watch[] = {
        {"topic", 0, "topics", CLI_STRS, "topic prefix (repeatable; default all)"},
        {"since", 0, "since", CLI_INT, "replay stored events after this seq first"},
        OPT_END};
static const struct cli_opt opt_prompt_assemble[] = {
        {"session-id", 0, "session_id", CLI_STR, "session whose regions are compared"},
        {"system", 0, "system", CLI_JSON, "system region"},
        {"tools", 0, "tools", CLI_JSON, "tools region"},
        {"skills", 0, "skills", CLI_JSON, "skills region"},
        {"context", 0, "context", CLI_JSON, "context region"},
        {"turn", 0, "turn", CLI_JSON, "this turn"},
        {"strip-volatile", 0, "strip_volatile", CLI_BOOL, "drop volatile lines"},
        OPT_END};

const struct cli_verb cli_verbs[] = {
        {"status", CMD_STATUS, pos_none, opt_none, "daemon version, uptime and counts",
         cli_render_object, 0, NULL},
        {"task-create", CMD_TASK_CREATE, pos_title, opt_task_create, "create a task",
         cli_render_object, 0, NULL},
        {"task-list", CMD_TASK_LIST, pos_none, opt_task_list, "list tasks", cli_render_tasks, 0,
         NULL},
        {"task-show", CMD_TASK_SHOW, pos_task_id, opt_none, "show one task", cli_render_object, 0,
         NULL},
        {"task-ready", CMD_TASK_READY, pos_none, opt_limit, "the ready queue, in claim order",
         cli_render_tasks, 0, NULL},
        {"task-claim", CMD_TASK_CLAIM, pos_claim, opt_task_claim, "claim a task for AGENT",
         cli_render_object, 0, NULL},
        {"task-update", CMD_TASK_UPDATE, pos_task_id, opt_task_update, "change a task",
         cli_render_object, 0, NULL},
        {"task-complete", CMD_TASK_COMPLETE, pos_task_id, opt_task_complete,
         "mark a claimed task done", cli_render_object, 0, NULL},
        {"task-release", CMD_TASK_RELEASE, pos_task_id, opt_task_release,
         "return a claimed task to the queue", cli_render_object, 0, NULL},
        {"agent-register", CMD_AGENT_REGISTER, pos_register, opt_agent_register,
         "register an external agent", cli_render_object, 0, NULL},
        {"agent-heartbeat", CMD_AGENT_HEARTBEAT, pos_agent_id, opt_agent_heartbeat,
         "renew an agent's lease and its claims", cli_render_object, 0, NULL},
        {"list-agents", CMD_LIST_AGENTS, pos_none, opt_list_agents, "list agents",
         cli_render_agents, 0, NULL},
        {"agent-status", CMD_AGENT_STATUS, pos_agent_id, opt_none, "show one agent",
         cli_render_object, 0, NULL},
        {"agent-result", CMD_AGENT_STATUS, pos_agent_id, opt_none,
         "print an agent's final assistant message", cli_render_result, 0, NULL},
        {"agent-resume", CMD_AGENT_RESUME, pos_agent_id, opt_none,
         "start an interrupted pi run again on its session", cli_render_object, 0, NULL},
        {"agent-explain", CMD_AGENT_EXPLAIN, pos_agent_id, opt_none,
         "why an agent is in its state: its transitions and their causes", cli_render_explain, 0,
         NULL},
        {"kill-agent", CMD_KILL_AGENT, pos_agent_id, opt_kill_agent,
         "stop a spawned agent and its tree", cli_render_object, 0, NULL},
        {"spawn-agent", CMD_SPAWN_AGENT, pos_spawn_agent, opt_spawn_agent,
         "spawn a supervised agent (pi, zot, local)", cli_render_object, CLI_REST_ARGS, NULL},
        {"spawn-local", CMD_SPAWN_LOCAL, pos_spawn_local, opt_spawn,
         "spawn a supervised local binary", cli_render_object, CLI_REST_ARGS, NULL},
        {"agent-prompt", CMD_AGENT_PROMPT, pos_prompt, opt_none,
         "send a prompt to an RPC-mode agent", cli_render_object, 0, NULL},
        {"agent-abort", CMD_AGENT_ABORT, pos_agent_id, opt_none, "abort an RPC-mode agent's turn",
         cli_render_object, 0, NULL},
        {"session-read", CMD_SESSION_READ, pos_agent_id, opt_session_read,
         "print an agent's session log lines (ID: agent or session)", cli_render_lines, 0, NULL},
        {"agent-forget", CMD_AGENT_FORGET, pos_agent_id, opt_none,
         "forget an ended agent: its row and its session logs", cli_render_object, 0, NULL},
        {"gc", CMD_GC, pos_none, opt_none,
         "run retention now (retention.json) and report what went", cli_render_object, 0, NULL},
        {"register-tenant", CMD_REGISTER_TENANT, pos_register_tenant, opt_none,
         "register a tenant (COLLECTION_ID defaults to TENANT_ID)", cli_render_object, 0, NULL},
        {"list-tenants", CMD_LIST_TENANTS, pos_none, opt_none, "list tenants", cli_render_tenants,
         0, NULL},
        {"delete-tenant", CMD_DELETE_TENANT, pos_tenant, opt_none, "delete a tenant",
         cli_render_object, 0, NULL},
        {"provision-tenant", CMD_PROVISION_TENANT, pos_tenant, opt_none,
         "write a tenant's .env from the vault", cli_render_object, 0, NULL},
        {"usage", CMD_USAGE, pos_none, opt_usage, "token usage and cost of spawned agents",
         cli_render_usage, 0, NULL},
        {"prompt-assemble", CMD_PROMPT_ASSEMBLE, pos_none, opt_prompt_assemble,
         "assemble a cache-friendly prompt", cli_render_object, 0, NULL},
        {"profiles", CMD_PROFILES, pos_none, opt_none,
         "list the agent profiles (names and settings, no secret)", cli_render_object, 0, NULL},
        {"host-status", CMD_HOST_STATUS, pos_none, opt_none, "host inventory", cli_render_object, 0,
         NULL},
        {"skills-list", CMD_SKILLS_LIST, pos_query, opt_none,
         "list skills, optionally matching QUERY", cli_render_skills, 0, NULL},
        {"skill-show", CMD_SKILL_SHOW, pos_skill, opt_none, "show one skill", cli_render_object, 0,
         NULL},
        {"skills-reload", CMD_SKILLS_RELOAD, pos_none, opt_none, "rescan the skill directories",
         cli_render_object, 0, NULL},
        {"events-read", CMD_EVENTS_READ, pos_none, opt_events_read, "read stored events",
         cli_render_events, 0, NULL},
        {"dispatch", CMD_DISPATCH, pos_dispatch, opt_none,
         "turn the dispatcher on or off (admins), or show its caps, queue and failures",
         cli_render_dispatch, 0, NULL},
        {"watch", CMD_SUBSCRIBE, pos_none, opt_watch,
         "print events as they happen until interrupted", NULL, 0, cli_exec_watch},
        {"call", NULL, pos_call, opt_none, "send any command with a JSON object of arguments", NULL,
         0, cli_exec_call},
        {NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL},
};

const struct cli_verb *
cli_verb_find(const char *name)
{
	const struct cli_verb *v;

	for (v = cli_verbs; v->name != NULL; v++)
		if (strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

const char *
cli_verb_cmd(const struct cli_verb *v)
{
	return v->cmd != NULL ? v->cmd : v->name;
}

const struct cli_verb *
cli_verb_by_cmd(const char *cmd)
{
	const struct cli_verb *v;

	for (v = cli_verbs; v->name != NULL; v++)
		if (v->exec == NULL && strcmp(cli_verb_cmd(v), cmd) == 0)
			return v;
	return NULL;
}
