/*
 * task-prompt.h -- a task-bound run's prompt: a template over the task's
 * fields.
 *
 * A profile's prompt_template (or a spawn's own prompt, when the spawn is
 * bound to a task) names the task's fields as {{field}}: {{title}},
 * {{body}}, {{id}}, {{priority}}, {{progress}}, {{attempts}},
 * {{max_attempts}}, {{last_error}} and {{epoch}}.  A string field is put in
 * as it is, a number in decimal, a null as nothing.  Text that is not a
 * field's name between double braces stays as written.  With no template
 * the prompt is the title, then a blank line and the body when there is
 * one.  Pure functions: no I/O, no daemon state.
 */
#ifndef COLIBRI_TASK_PROMPT_H
#define COLIBRI_TASK_PROMPT_H

#include <jansson.h>

/* Does tmpl name only known fields?  0, or -1 with *cause naming the first unknown one. */
int task_prompt_check(const char *tmpl, char **cause);
/* The prompt for task t from tmpl (NULL: title and body); the caller frees it.  NULL when a
 * field put in holds a NUL byte (no argument or environment value can carry one). */
char *task_prompt_render(const char *tmpl, json_t *t);

#endif
