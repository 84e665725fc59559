/*
 * test_task_prompt.c -- a task-bound run's prompt (src/daemon/task-prompt.c):
 * the default (title, blank line, body), every field, unknown names kept as
 * written and refused by the check, numbers and nulls, a NUL byte refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/task-prompt.h"

static json_t *
task(void)
{
	return json_pack("{s:I, s:s, s:s, s:I, s:n, s:I, s:I, s:I, s:s}", "id", (json_int_t)7,
	                 "title", "Fix the parser", "body", "It drops the last line.", "priority",
	                 (json_int_t)-2, "progress", "attempts", (json_int_t)1, "epoch",
	                 (json_int_t)2, "max_attempts", (json_int_t)3, "last_error", "HTTP 400");
}

static void
test_default(void **state)
{
	json_t *t = task();
	char *p;

	(void)state;
	p = task_prompt_render(NULL, t);
	assert_string_equal(p, "Fix the parser\n\nIt drops the last line.");
	free(p);
	json_object_set_new(t, "body", json_string(""));
	p = task_prompt_render(NULL, t);
	assert_string_equal(p, "Fix the parser");
	free(p);
	json_decref(t);
}

static void
test_fields(void **state)
{
	json_t *t = task();
	char *p, *cause = NULL;
	const char *tmpl = "#{{id}} {{title}} p{{priority}} [{{progress}}] try {{attempts}}/"
	                   "{{max_attempts}} e{{epoch}} ({{last_error}}): {{body}}";

	(void)state;
	assert_int_equal(task_prompt_check(tmpl, &cause), 0);
	p = task_prompt_render(tmpl, t);
	assert_string_equal(p, "#7 Fix the parser p-2 [] try 1/3 e2 (HTTP 400): It drops the "
	                       "last line.");
	free(p);
	/* Not placeholders: copied as written. */
	tmpl = "{{ title }} {{Title}} {title} {{title} {{}} {{{{title}}";
	assert_int_equal(task_prompt_check(tmpl, &cause), 0);
	p = task_prompt_render(tmpl, t);
	assert_string_equal(p, "{{ title }} {{Title}} {title} {{title} {{}} {{Fix the parser");
	free(p);
	json_decref(t);
}

static void
test_unknown(void **state)
{
	json_t *t = task();
	char *p, *cause = NULL;

	(void)state;
	assert_int_equal(task_prompt_check("do {{titel}} now", &cause), -1);
	assert_non_null(strstr(cause, "{{titel}}"));
	free(cause);
	p = task_prompt_render("do {{titel}} now", t);
	assert_string_equal(p, "do {{titel}} now");
	free(p);
	json_decref(t);
}

static void
test_nul(void **state)
{
	json_t *t = task();

	(void)state;
	json_object_set_new(t, "body", json_stringn("a\0b", 3));
	assert_null(task_prompt_render(NULL, t));
	assert_null(task_prompt_render("{{body}}", t));
	json_decref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default),
	        cmocka_unit_test(test_fields),
	        cmocka_unit_test(test_unknown),
	        cmocka_unit_test(test_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
