/*
 * task-prompt.c -- a task-bound run's prompt from a template over the
 * task's fields (see task-prompt.h for the syntax).
 *
 * The template is scanned once, left to right: "{{" followed by a known
 * field's name and "}}" is replaced, anything else is copied.  The result
 * is built in a struct buf, so a long body costs one growing buffer.
 */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "daemon/task-prompt.h"

static const char *const fields[] = {"title",    "body",  "id",           "priority",   "progress",
                                     "attempts", "epoch", "max_attempts", "last_error", NULL};

/* At p, "{{name}}" with a name of [a-z_]: its length, with name and namelen set; else 0. */
static size_t
placeholder(const char *p, const char **name, size_t *namelen)
{
	size_t n = 0;

	if (p[0] != '{' || p[1] != '{')
		return 0;
	while ((p[2 + n] >= 'a' && p[2 + n] <= 'z') || p[2 + n] == '_')
		n++;
	if (n == 0 || p[2 + n] != '}' || p[3 + n] != '}')
		return 0;
	*name = p + 2;
	*namelen = n;
	return n + 4;
}

static const char *
field_named(const char *name, size_t len)
{
	size_t i;

	for (i = 0; fields[i] != NULL; i++)
		if (strlen(fields[i]) == len && memcmp(fields[i], name, len) == 0)
			return fields[i];
	return NULL;
}

int
task_prompt_check(const char *tmpl, char **cause)
{
	const char *p, *name;
	size_t n, len;

	for (p = tmpl; *p != '\0'; p++) {
		if ((n = placeholder(p, &name, &len)) == 0)
			continue;
		if (field_named(name, len) == NULL) {
			xasprintf(cause,
			          "prompt_template names {{%.*s}}, not a task field (title, body, "
			          "id, "
			          "priority, progress, attempts, max_attempts, last_error, epoch)",
			          (int)(len > 64 ? 64 : len), name);
			return -1;
		}
		p += n - 1;
	}
	return 0;
}

static void
put_value(struct buf *b, json_t *v)
{
	if (json_is_string(v))
		buf_add(b, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		buf_printf(b, "%lld", (long long)json_integer_value(v));
}

char *
task_prompt_render(const char *tmpl, json_t *t)
{
	struct buf b = {0};
	const char *p, *name, *f;
	size_t n, len;
	char *out;

	if (tmpl == NULL) {
		put_value(&b, json_object_get(t, "title"));
		if (json_string_length(json_object_get(t, "body")) > 0) {
			buf_add(&b, "\n\n", 2);
			put_value(&b, json_object_get(t, "body"));
		}
	} else {
		for (p = tmpl; *p != '\0'; p++) {
			if ((n = placeholder(p, &name, &len)) != 0 &&
			    (f = field_named(name, len)) != NULL) {
				put_value(&b, json_object_get(t, f));
				p += n - 1;
			} else
				buf_addc(&b, *p);
		}
	}
	if (buf_used(&b) > 0 && memchr(buf_head(&b), '\0', buf_used(&b)) != NULL)
		out = NULL; /* a field held a NUL byte: no argument can carry it */
	else
		out = xstrdup(buf_used(&b) > 0 ? buf_cstr(&b) : "");
	buf_free(&b);
	return out;
}
