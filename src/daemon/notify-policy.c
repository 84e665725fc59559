/*
 * notify-policy.c -- CONFIG_DIR/notify.json parsed into a policy (see
 * notify-policy.h): the pure half of the notifications, apart from the
 * queue and the hook's process (notify.c), as vault.h is apart from
 * vault-run.c.
 *
 * The file is held to config-file.h's strictness (the daemon's, writable by
 * no one else, duplicate keys refused, every key known).  The hook's program
 * runs as the daemon's user, so it is held to the same rule: an absolute
 * path (no shell runs it) to a regular, executable file owned by root or the
 * daemon's uid that neither group nor others may write.  Every cause names
 * the file and the key at fault.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/xmalloc.h"
#include "daemon/config-file.h"
#include "daemon/notify-policy.h"

#define NOTIFY_ARGV_MAX 64

/* A kind is named after its event where there is one (task.failed: EV_TASK_FAILED). */
const char *const notify_kind_names[NK_COUNT] = {"agent.blocked", "agent.parked", EV_TASK_FAILED,
                                                 "queue.drained"};

void
notify_policy_free(struct notify_policy *p)
{
	size_t i;

	for (i = 0; p->argv != NULL && p->argv[i] != NULL; i++)
		free(p->argv[i]);
	free(p->argv);
	memset(p, 0, sizeof *p);
}

/* The hook's program: held to the config directory's rule (see the head comment). */
static int
policy_program(const char *prog, const char *path, char **cause)
{
	struct stat sb;

	if (prog[0] != '/') {
		xasprintf(cause, "%s: \"command\"[0] must be an absolute path (no shell runs it)",
		          path);
		return -1;
	}
	if (stat(prog, &sb) == -1)
		xasprintf(cause, "%s: command %s: %s", path, prog, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		xasprintf(cause, "%s: command %s: not a regular file", path, prog);
	else if (access(prog, X_OK) == -1)
		xasprintf(cause, "%s: command %s: not executable", path, prog);
	else if (sb.st_uid != 0 && sb.st_uid != geteuid())
		xasprintf(cause, "%s: command %s: owned by uid %ld, not root's or the daemon's",
		          path, prog, (long)sb.st_uid);
	else if ((sb.st_mode & 022) != 0)
		xasprintf(cause, "%s: command %s: mode %04o: group or others may write it", path,
		          prog, (unsigned)(sb.st_mode & 07777));
	else
		return 0;
	return -1;
}

static int
policy_command(const json_t *c, struct notify_policy *p, const char *path, char **cause)
{
	size_t i, n = json_array_size(c);
	const json_t *v;

	if (!json_is_array(c) || n == 0 || n > NOTIFY_ARGV_MAX) {
		xasprintf(cause, "%s: \"command\" must be an array of 1 to %d strings (the argv)",
		          path, NOTIFY_ARGV_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		v = json_array_get(c, i);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    (i == 0 && json_string_length(v) == 0)) {
			xasprintf(cause, "%s: \"command\"[%zu] must be a string without NUL%s",
			          path, i, i == 0 ? ", not empty" : "");
			return -1;
		}
	}
	if (policy_program(json_string_value(json_array_get(c, 0)), path, cause) == -1)
		return -1;
	p->argv = xcalloc(n + 1, sizeof *p->argv);
	for (i = 0; i < n; i++)
		p->argv[i] = xstrdup(json_string_value(json_array_get(c, i)));
	return 0;
}

static int
policy_on(const json_t *on, struct notify_policy *p, const char *path, char **cause)
{
	size_t i, k;
	const json_t *v;

	if (on == NULL) {
		p->on = (1u << NK_COUNT) - 1;
		return 0;
	}
	if (!json_is_array(on) || json_array_size(on) == 0) {
		xasprintf(cause,
		          "%s: \"on\" must be a non-empty array of kinds (remove the file to turn "
		          "notifications off)",
		          path);
		return -1;
	}
	json_array_foreach(on, i, v)
	{
		for (k = 0; k < NK_COUNT; k++)
			if (json_is_string(v) &&
			    strcmp(json_string_value(v), notify_kind_names[k]) == 0)
				break;
		if (k == NK_COUNT) {
			xasprintf(cause,
			          "%s: \"on\"[%zu] is no kind (agent.blocked, agent.parked, "
			          "task.failed, queue.drained)",
			          path, i);
			return -1;
		}
		p->on |= 1u << k;
	}
	return 0;
}

static int
policy_int(const json_t *root, const char *key, int64_t min, int64_t max, int64_t *out,
           const char *path, char **cause)
{
	const json_t *v = json_object_get(root, key);

	if (v == NULL)
		return 0; /* the default stays */
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		xasprintf(cause, "%s: \"%s\" must be an integer from %lld to %lld", path, key,
		          (long long)min, (long long)max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

int
notify_policy_load(const char *path, struct notify_policy *p, char **cause)
{
	static const char *const keys[] = {"command",   "on",       "timeout_ms",
	                                   "max_queue", "dedup_ms", NULL};
	json_t *root;
	int bad;

	memset(p, 0, sizeof *p);
	p->timeout_ms = 10000;
	p->max_queue = 100;
	if (config_load_json(path, &root, cause) == -1)
		return -1;
	if (root == NULL)
		return 0;
	bad = config_keys_check(root, keys, path, cause) == -1;
	if (!bad && json_object_get(root, "command") == NULL) {
		xasprintf(cause, "%s: \"command\" is missing (the hook's argv)", path);
		bad = 1;
	}
	bad = bad || policy_command(json_object_get(root, "command"), p, path, cause) == -1 ||
	      policy_on(json_object_get(root, "on"), p, path, cause) == -1 ||
	      policy_int(root, "timeout_ms", 100, 3600000, &p->timeout_ms, path, cause) == -1 ||
	      policy_int(root, "max_queue", 1, 1000, &p->max_queue, path, cause) == -1 ||
	      policy_int(root, "dedup_ms", 0, 86400000, &p->dedup_ms, path, cause) == -1;
	json_decref(root);
	if (bad)
		notify_policy_free(p);
	return bad ? -1 : 0;
}
