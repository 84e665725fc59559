/*
 * tools.c -- the table of Colibri's MCP tools and their result shapes.
 *
 * The schemas are written with single quotes so the table stays readable;
 * mcp_tool_definition turns them into JSON (no schema needs a literal ').
 * The output schemas require only the fields every daemon object has, so
 * a daemon that adds fields does not break a client that validates.
 * The whole tools/list answer is measured by the unit test and reported by
 * `colibri-mcp --list-size`; keep it under 6 KB.
 */
#include "mcp/tools.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "common/proto.h"
#include "common/xmalloc.h"

#define STR       "{'type':'string'}"
#define INT       "{'type':'integer'}"
#define INTS      "{'type':'array','items':" INT "}"
#define OBJ(p)    "{'type':'object','properties':{" p "}}"
#define REQ(p, r) "{'type':'object','properties':{" p "},'required':[" r "]}"
#define ITEMS(x)  REQ("'items':{'type':'array','items':" x "}", "'items'")

#define TASK  REQ("'id':" INT ",'title':" STR ",'status':" STR, "'id','status'")
#define AGENT REQ("'id':" STR ",'state':{'type':['string','null']}", "'id'")
#define SKILL REQ("'name':" STR ",'description':" STR, "'name'")

const struct mcp_tool mcp_tools[] = {
        {"task_create", CMD_TASK_CREATE, "Create a task.",
         REQ("'title':" STR ",'body':" STR ",'priority':" INT ",'depends_on':" INTS, "'title'"),
         TASK, 0},
        {"task_list", CMD_TASK_LIST, "List tasks; page: after=next while more.",
         OBJ("'status':" STR ",'owner':" STR ",'ready':{'type':'boolean'},'limit':" INT
             ",'after':" INT),
         ITEMS(TASK), 0},
        {"task_show", CMD_TASK_SHOW, "Show a task.", REQ("'id':" INT, "'id'"), TASK, 0},
        {"task_ready", CMD_TASK_READY, "Ready queue: open tasks whose dependencies are done.",
         OBJ("'limit':" INT), ITEMS(TASK), 0},
        {"task_claim", CMD_TASK_CLAIM, "Claim a task for agent: the ready head, or id.",
         REQ("'agent':" STR ",'id':" INT ",'lease_ms':" INT, "'agent'"), TASK, 0},
        {"task_update", CMD_TASK_UPDATE, "Change a task.",
         REQ("'id':" INT ",'title':" STR ",'body':" STR ",'priority':" INT ",'progress':" STR
             ",'depends_on':" INTS ",'status':{'enum':['open','cancelled']},'agent':" STR
             ",'epoch':" INT,
             "'id'"),
         TASK, 0},
        {"task_complete", CMD_TASK_COMPLETE, "Mark a claimed task done.",
         REQ("'id':" INT ",'agent':" STR ",'epoch':" INT ",'result':{}", "'id'"), TASK, 0},
        {"task_release", CMD_TASK_RELEASE, "Return a claimed task to the queue.",
         REQ("'id':" INT ",'agent':" STR ",'epoch':" INT, "'id'"), TASK, 0},
        {"agents_list", CMD_LIST_AGENTS, "List agents.",
         OBJ("'kind':{'enum':['registered','spawned']},'state':" STR), ITEMS(AGENT), 0},
        {"agent_status", CMD_AGENT_STATUS, "Agent state (idle/working/blocked/done/error), reason.",
         REQ("'id':" STR, "'id'"), AGENT, 0},
        {"spawn_local", CMD_SPAWN_LOCAL, "Spawn a supervised local agent.",
         REQ("'binary':" STR ",'args':{'type':'array','items':" STR "},'prompt':" STR
             ",'mode':{'enum':['json','rpc']},'env':{'type':'object','additionalProperties':" STR
             "},'cwd':" STR,
             "'binary'"),
         AGENT, 1},
        {"skills_list", CMD_SKILLS_LIST, "List skills.", OBJ("'query':" STR), ITEMS(SKILL), 0},
        {"skill_show", CMD_SKILL_SHOW, "Read a skill.", REQ("'name':" STR, "'name'"), SKILL, 0},
        {NULL, NULL, NULL, NULL, NULL, 0},
};

const struct mcp_tool *
mcp_tool_find(const char *name)
{
	const struct mcp_tool *t;

	for (t = mcp_tools; name != NULL && t->name != NULL; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

/* Single-quoted schema text to JSON.  NULL if it does not parse. */
static json_t *
mcp_schema_load(const char *text)
{
	char *s = xstrdup(text), *p;
	json_t *v;

	for (p = s; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(s, 0, NULL);
	free(s);
	return v;
}

json_t *
mcp_tool_definition(const struct mcp_tool *t)
{
	json_t *in = mcp_schema_load(t->input), *out = mcp_schema_load(t->output);

	if (in == NULL || out == NULL) {
		json_decref(in);
		json_decref(out);
		return NULL;
	}
	return json_pack("{s:s, s:s, s:o, s:o}", "name", t->name, "description", t->description,
	                 "inputSchema", in, "outputSchema", out);
}

json_t *
mcp_tools_definitions(int with_spawn)
{
	const struct mcp_tool *t;
	json_t *a = json_array(), *d;

	for (t = mcp_tools; t->name != NULL; t++)
		if ((with_spawn || !t->spawns) && (d = mcp_tool_definition(t)) != NULL)
			json_array_append_new(a, d);
	return a;
}

json_t *
mcp_tool_args(const json_t *arguments)
{
	json_t *args = json_object(), *v;
	const char *k;

	if (!json_is_object(arguments))
		return args;
	json_object_foreach((json_t *)arguments, k, v) if (!json_is_null(v))
	        json_object_set(args, k, v);
	return args;
}

static json_t *
mcp_text_block(const char *text)
{
	return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

json_t *
mcp_tool_result(const json_t *result)
{
	json_t *sc, *r;
	char *text;

	if (json_is_object(result))
		sc = json_incref((json_t *)result);
	else if (json_is_array(result))
		sc = json_pack("{s:O}", "items", result);
	else
		sc = json_pack("{s:O}", "value", result != NULL ? result : json_null());
	text = json_dumps(sc, JSON_COMPACT);
	r = json_pack("{s:o, s:o}", "content", mcp_text_block(text != NULL ? text : "{}"),
	              "structuredContent", sc);
	free(text);
	return r;
}

json_t *
mcp_tool_failure(const char *fmt, ...)
{
	va_list ap;
	char *msg;
	json_t *r;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	r = json_pack("{s:o, s:b}", "content", mcp_text_block(msg), "isError", 1);
	free(msg);
	return r;
}

json_t *
mcp_tool_daemon_failure(const struct mcp_tool *t, const struct client_error *e, const char *socket)
{
	if (strcmp(e->code, "unreachable") == 0)
		return mcp_tool_failure("%s: the Colibri daemon is not reachable at %s (%s); "
		                        "is colibri-daemon running?",
		                        t->name, socket, e->message);
	if (strcmp(e->code, ERR_UNKNOWN_COMMAND) == 0)
		return mcp_tool_failure("%s: this daemon does not offer %s yet (%s: %s)", t->name,
		                        t->cmd, e->code, e->message);
	return mcp_tool_failure("%s: %s: %s", t->name, e->code, e->message);
}
