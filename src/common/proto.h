/*
 * proto.h -- the Colibri socket protocol in one place.
 *
 * Newline-delimited JSON over a Unix stream socket, one request per line:
 *   {"id": 7, "cmd": "task-claim", "args": {...}}
 *   {"id": 7, "ok": true, "result": {...}}
 *   {"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}
 * Events after subscribe: {"event": "agent.state", "seq": N, "data": {...}}
 *
 * Bump COLIBRI_PROTOCOL_VERSION on any incompatible change, and update
 * docs/protocol.md and schemas/ with it.  Every name on the wire that the code
 * spells -- command, event topic, error code -- is a constant below, so a
 * rename is one line here and tests/integration/test_protocol_parity.py
 * holds the table, schemas/ and docs/protocol.md to the same list.
 */
#ifndef COLIBRI_PROTO_H
#define COLIBRI_PROTO_H

#define COLIBRI_VERSION          "0.1.0"
#define COLIBRI_PROTOCOL_VERSION 1

#define COLIBRI_MAX_LINE_DEFAULT (1024 * 1024)

/*
 * Command names: the value of a request's "cmd".  Each is one entry of the
 * command table (src/daemon/cmd-*.c), has schemas/commands/NAME.args.json and
 * NAME.result.json and is described in docs/protocol.md; clients name
 * commands through these too.  test_protocol_parity.py checks all four agree.
 */
#define CMD_AGENT_ABORT      "agent-abort"
#define CMD_AGENT_EXPLAIN    "agent-explain"
#define CMD_AGENT_FORGET     "agent-forget"
#define CMD_AGENT_HEARTBEAT  "agent-heartbeat"
#define CMD_AGENT_PROMPT     "agent-prompt"
#define CMD_AGENT_REGISTER   "agent-register"
#define CMD_AGENT_RESUME     "agent-resume"
#define CMD_AGENT_STATUS     "agent-status"
#define CMD_DELETE_TENANT    "delete-tenant"
#define CMD_DISPATCH         "dispatch"
#define CMD_EVENTS_READ      "events-read"
#define CMD_GC               "gc"
#define CMD_HOST_STATUS      "host-status"
#define CMD_KILL_AGENT       "kill-agent"
#define CMD_LIST_AGENTS      "list-agents"
#define CMD_LIST_TENANTS     "list-tenants"
#define CMD_PROFILES         "profiles"
#define CMD_PROMPT_ASSEMBLE  "prompt-assemble"
#define CMD_PROVISION_TENANT "provision-tenant"
#define CMD_REGISTER_TENANT  "register-tenant"
#define CMD_SESSION_READ     "session-read"
#define CMD_SKILL_SHOW       "skill-show"
#define CMD_SKILLS_LIST      "skills-list"
#define CMD_SKILLS_RELOAD    "skills-reload"
#define CMD_SPAWN_AGENT      "spawn-agent"
#define CMD_SPAWN_LOCAL      "spawn-local"
#define CMD_STATUS           "status"
#define CMD_SUBSCRIBE        "subscribe"
#define CMD_TASK_CLAIM       "task-claim"
#define CMD_TASK_COMPLETE    "task-complete"
#define CMD_TASK_CREATE      "task-create"
#define CMD_TASK_LIST        "task-list"
#define CMD_TASK_READY       "task-ready"
#define CMD_TASK_RELEASE     "task-release"
#define CMD_TASK_SHOW        "task-show"
#define CMD_TASK_UPDATE      "task-update"
#define CMD_UNSUBSCRIBE      "unsubscribe"
#define CMD_USAGE            "usage"

/*
 * Event topics: the value of an event line's "event".  Each has
 * schemas/events/TOPIC.json and a row in docs/protocol.md (Events).  A
 * subscription names prefixes of these (EV_PREFIX_*), ending in a dot.
 */
#define EV_TASK_CREATED      "task.created"
#define EV_TASK_UPDATED      "task.updated"
#define EV_TASK_CLAIMED      "task.claimed"
#define EV_TASK_COMPLETED    "task.completed"
#define EV_TASK_RELEASED     "task.released"
#define EV_TASK_EXPIRED      "task.expired"
#define EV_TASK_FAILED       "task.failed"
#define EV_AGENT_REGISTERED  "agent.registered"
#define EV_AGENT_HEARTBEAT   "agent.heartbeat"
#define EV_AGENT_LOST        "agent.lost"
#define EV_AGENT_SPAWNED     "agent.spawned"
#define EV_AGENT_STATE       "agent.state"
#define EV_AGENT_EXITED      "agent.exited"
#define EV_AGENT_RESTARTED   "agent.restarted"
#define EV_AGENT_FORGOTTEN   "agent.forgotten"
#define EV_TENANT_REGISTERED "tenant.registered"
#define EV_TENANT_UPDATED    "tenant.updated"
#define EV_TENANT_DELETED    "tenant.deleted"
#define EV_VAULT_PROVISIONED "vault.provisioned"
#define EV_VAULT_FAILED      "vault.failed"
#define EV_PROMPT_ASSEMBLED  "prompt.assembled"
#define EV_HOST_STATUS       "host.status"
#define EV_SKILLS_RELOADED   "skills.reloaded"

#define EV_PREFIX_TASK   "task."
#define EV_PREFIX_AGENT  "agent."
#define EV_PREFIX_TENANT "tenant."
#define EV_PREFIX_VAULT  "vault."

/* Error codes: the only values "error.code" takes. */
#define ERR_BAD_REQUEST       "bad_request"
#define ERR_UNKNOWN_COMMAND   "unknown_command"
#define ERR_INVALID_ARGUMENT  "invalid_argument"
#define ERR_NOT_FOUND         "not_found"
#define ERR_CONFLICT          "conflict"
#define ERR_PERMISSION_DENIED "permission_denied"
#define ERR_UNAVAILABLE       "unavailable"
#define ERR_INTERNAL          "internal"
#define ERR_CURSOR_EXPIRED    "cursor_expired"

/* CLI exit codes. */
#define EXIT_REFUSED     1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 69

#endif
