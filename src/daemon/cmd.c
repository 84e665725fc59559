/*
 * cmd.c -- the command table and argument checking.
 *
 * The table is the union of each family's entries (cmd-*.c); lookups are
 * by name.  Arguments are checked against the entry's spec before exec
 * runs: a missing required argument, an unknown one or a wrong type is an
 * invalid_argument error naming it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "daemon/cmd.h"

extern const struct cmd_entry cmd_status_entries[];
extern const struct cmd_entry cmd_task_entries[];
extern const struct cmd_entry cmd_agent_entries[];
extern const struct cmd_entry cmd_events_entries[];
extern const struct cmd_entry cmd_spawn_entries[];
extern const struct cmd_entry cmd_tenant_entries[];
extern const struct cmd_entry cmd_skills_entries[];
extern const struct cmd_entry cmd_cache_entries[];

static const struct cmd_entry *const families[] = {
        cmd_status_entries, cmd_task_entries,  cmd_agent_entries,
        cmd_events_entries, cmd_spawn_entries, cmd_tenant_entries,
        cmd_skills_entries, cmd_cache_entries, NULL,
};

/* Every entry, sorted by name on first use, for a binary search per request. */
static const struct cmd_entry **sorted;
static size_t nsorted;

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct cmd_entry *const *)a)->name,
	              (*(const struct cmd_entry *const *)b)->name);
}

static void
sort_entries(void)
{
	const struct cmd_entry *ce;
	size_t i, n = 0;

	for (i = 0; families[i] != NULL; i++)
		for (ce = families[i]; ce->name != NULL; ce++)
			n++;
	sorted = xreallocarray(NULL, n, sizeof *sorted);
	for (i = 0; families[i] != NULL; i++)
		for (ce = families[i]; ce->name != NULL; ce++)
			sorted[nsorted++] = ce;
	qsort(sorted, nsorted, sizeof *sorted, entry_cmp);
}

const struct cmd_entry *
cmd_find(const char *name)
{
	size_t lo = 0, hi, mid;
	int c;

	if (sorted == NULL)
		sort_entries();
	hi = nsorted;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, sorted[mid]->name)) == 0)
			return sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void
cmd_foreach(void (*cb)(const struct cmd_entry *, void *), void *arg)
{
	const struct cmd_entry *ce;
	size_t i;

	for (i = 0; families[i] != NULL; i++)
		for (ce = families[i]; ce->name != NULL; ce++)
			cb(ce, arg);
}

const char *
cmd_role_name(int role)
{
	switch (role) {
	case CMD_R_ADMIN:
		return "admin";
	case CMD_R_MEMBER:
		return "member";
	case CMD_R_AGENT:
		return "agent";
	}
	return "nobody";
}

const char *
cmd_roles_text(int roles, char *buf, size_t len)
{
	static const int order[] = {CMD_R_ADMIN, CMD_R_MEMBER, CMD_R_AGENT};
	const char *names[3];
	size_t i, n = 0;

	for (i = 0; i < 3; i++)
		if (roles & order[i])
			names[n++] = cmd_role_name(order[i]);
	if (n == 0)
		snprintf(buf, len, "nobody");
	else if (n == 1)
		snprintf(buf, len, "%s", names[0]);
	else if (n == 2)
		snprintf(buf, len, "%s or %s", names[0], names[1]);
	else
		snprintf(buf, len, "%s, %s or %s", names[0], names[1], names[2]);
	return buf;
}

int
cmd_event_visible(int role, const char *topic)
{
	if (role == CMD_R_ADMIN)
		return 1;
	return strncmp(topic, "tenant.", 7) != 0 && strncmp(topic, "vault.", 6) != 0;
}

static const char *
arg_type_name(enum arg_type t)
{
	static const char *names[] = {"a string",
	                              "an integer",
	                              "a boolean",
	                              "an object",
	                              "an array",
	                              "any value",
	                              "an integer or a string"};
	return names[t];
}

static int
arg_type_ok(enum arg_type t, json_t *v)
{
	switch (t) {
	case ARG_STR:
		return json_is_string(v);
	case ARG_INT:
		return json_is_integer(v);
	case ARG_BOOL:
		return json_is_boolean(v);
	case ARG_OBJ:
		return json_is_object(v);
	case ARG_ARR:
		return json_is_array(v);
	case ARG_ANY:
		return 1;
	case ARG_ID:
		return json_is_integer(v) || json_is_string(v);
	}
	return 0;
}

int
cmd_check_args(const struct cmd_entry *ce, json_t *args, char *msg, size_t len)
{
	const struct cmd_arg *a;
	const char *key;
	json_t *v;

	json_object_foreach(args, key, v)
	{
		for (a = ce->args; a != NULL && a->name != NULL; a++)
			if (strcmp(a->name, key) == 0)
				break;
		if (a == NULL || a->name == NULL) {
			snprintf(msg, len, "unknown argument \"%.64s\"", key);
			return -1;
		}
		if (json_is_null(v) && !a->required)
			continue; /* null means "not given" for optional arguments */
		if (!arg_type_ok(a->type, v)) {
			snprintf(msg, len, "argument \"%s\" must be %s", key,
			         arg_type_name(a->type));
			return -1;
		}
	}
	for (a = ce->args; a != NULL && a->name != NULL; a++) {
		if (a->required && (v = json_object_get(args, a->name)) == NULL) {
			snprintf(msg, len, "missing argument \"%s\"", a->name);
			return -1;
		}
	}
	return 0;
}

json_t *
cmd_arg(struct cmd_req *r, const char *name)
{
	json_t *v = json_object_get(r->args, name);

	return json_is_null(v) ? NULL : v;
}

const char *
cmd_arg_str(struct cmd_req *r, const char *name)
{
	return json_string_value(cmd_arg(r, name));
}

int
cmd_arg_int(struct cmd_req *r, const char *name, long long *out)
{
	json_t *v = cmd_arg(r, name);

	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

long long
cmd_arg_int_or(struct cmd_req *r, const char *name, long long dflt)
{
	long long v;

	return cmd_arg_int(r, name, &v) == 0 ? v : dflt;
}

int
cmd_arg_bool_or(struct cmd_req *r, const char *name, int dflt)
{
	json_t *v = cmd_arg(r, name);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}
