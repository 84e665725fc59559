/*
 * cmd.c -- the command table and argument checking.
 *
 * The table is the union of each family's entries (cmd-*.c); lookups are
 * by name.  Arguments are checked against the entry's spec before exec
 * runs: a missing required argument, an unknown one, a wrong type or a
 * value out of the spec's bounds is an invalid_argument error naming it.
 * The usage line each error carries is generated from the same spec when
 * the table is first sorted, so it cannot drift from what is checked.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "store/store.h"

extern const struct cmd_entry cmd_status_entries[];
extern const struct cmd_entry cmd_task_entries[];
extern const struct cmd_entry cmd_agent_entries[];
extern const struct cmd_entry cmd_events_entries[];
extern const struct cmd_entry cmd_spawn_entries[];
extern const struct cmd_entry cmd_tenant_entries[];
extern const struct cmd_entry cmd_skills_entries[];
extern const struct cmd_entry cmd_cache_entries[];
extern const struct cmd_entry cmd_dispatch_entries[];
extern const struct cmd_entry cmd_retention_entries[];

static const struct cmd_entry *const families[] = {
        cmd_status_entries,
        cmd_task_entries,
        cmd_agent_entries,
        cmd_events_entries,
        cmd_spawn_entries,
        cmd_tenant_entries,
        cmd_skills_entries,
        cmd_cache_entries,
        cmd_dispatch_entries,
        cmd_retention_entries,
        NULL,
};

/* Every entry with its usage line, sorted by name on first use, for a binary
 * search per request.  Built once and kept for the daemon's life. */
struct sorted_entry {
	const struct cmd_entry *ce;
	char *usage;
};
static struct sorted_entry *sorted;
static size_t nsorted;

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sorted_entry *)a)->ce->name,
	              ((const struct sorted_entry *)b)->ce->name);
}

/* "name {a, b?, c?}", or the name alone for a command without arguments. */
static char *
usage_of(const struct cmd_entry *ce)
{
	const struct cmd_arg *a;
	size_t len = strlen(ce->name) + 3, off;
	char *u;

	for (a = ce->args; a != NULL && a->name != NULL; a++)
		len += strlen(a->name) + 3;
	u = xmalloc(len);
	off = (size_t)snprintf(u, len, "%s", ce->name);
	for (a = ce->args; a != NULL && a->name != NULL; a++)
		off += (size_t)snprintf(u + off, len - off, "%s%s%s", a == ce->args ? " {" : ", ",
		                        a->name, a->required ? "" : "?");
	if (ce->args != NULL && ce->args->name != NULL)
		snprintf(u + off, len - off, "}");
	return u;
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
		for (ce = families[i]; ce->name != NULL; ce++) {
			sorted[nsorted].ce = ce;
			sorted[nsorted++].usage = usage_of(ce);
		}
	qsort(sorted, nsorted, sizeof *sorted, entry_cmp);
}

static const struct sorted_entry *
find_sorted(const char *name)
{
	size_t lo = 0, hi, mid;
	int c;

	if (sorted == NULL)
		sort_entries();
	hi = nsorted;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, sorted[mid].ce->name)) == 0)
			return &sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct cmd_entry *
cmd_find(const char *name)
{
	const struct sorted_entry *se = find_sorted(name);

	return se != NULL ? se->ce : NULL;
}

const char *
cmd_usage_line(const struct cmd_entry *ce)
{
	const struct sorted_entry *se = find_sorted(ce->name);

	return se != NULL ? se->usage : ce->name;
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
	return strncmp(topic, EV_PREFIX_TENANT, sizeof EV_PREFIX_TENANT - 1) != 0 &&
	       strncmp(topic, EV_PREFIX_VAULT, sizeof EV_PREFIX_VAULT - 1) != 0;
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

/* Is v within a's bounds?  If not, say so in msg. */
static int
arg_bounds_ok(const struct cmd_arg *a, json_t *v, char *msg, size_t len)
{
	long long n;

	if (a->min == 0 && a->max == 0)
		return 1;
	if (a->type == ARG_INT)
		n = json_integer_value(v);
	else if (a->type == ARG_STR)
		n = (long long)json_string_length(v);
	else
		return 1;
	if (n >= a->min && n <= a->max)
		return 1;
	if (a->type == ARG_STR && a->min == 0)
		snprintf(msg, len, "argument \"%s\" must be at most %lld bytes long", a->name,
		         a->max);
	else if (a->type == ARG_STR)
		snprintf(msg, len, "argument \"%s\" must be %lld to %lld bytes long", a->name,
		         a->min, a->max);
	else if (a->max == LLONG_MAX)
		snprintf(msg, len, "argument \"%s\" must be %lld or more", a->name, a->min);
	else
		snprintf(msg, len, "argument \"%s\" must be between %lld and %lld", a->name, a->min,
		         a->max);
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
		if (!arg_bounds_ok(a, v, msg, len))
			return -1;
	}
	for (a = ce->args; a != NULL && a->name != NULL; a++) {
		if (a->required && (v = json_object_get(args, a->name)) == NULL) {
			snprintf(msg, len, "missing argument \"%s\"", a->name);
			return -1;
		}
	}
	return 0;
}

void
cmd_fail_error(struct cmd_req *r, const struct store_err *e)
{
	cmd_fail(r, e->code, "%s", e->msg);
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
