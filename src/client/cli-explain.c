/*
 * cli-explain.c -- `colibri agent-explain ID`: an agent's transitions as
 * sentences, one a line, oldest first.
 *
 * The daemon's agent-explain reply (docs/protocol.md) lists each
 * transition with its cause: the event type of the session log line behind
 * it and that line's number (1-based; `colibri session-read ID --since N-1`
 * prints it first), or a cause that is no line -- the process start or exit,
 * a signal, a stall, a restart, a fault of the spawner's.  This file turns
 * each into "TIME  FROM -> TO  REASON  (caused by ...)".  Every string came
 * from the daemon, and the reasons from agents, so all of it is printed
 * through cli_put_clean.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/cli.h"

static const char *
str_or(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : dflt;
}

/* at_ms as local "YYYY-MM-DD HH:MM:SS.mmm". */
static void
explain_time(json_t *t, FILE *out)
{
	json_int_t ms = json_integer_value(json_object_get(t, "at_ms"));
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char b[32];

	if (localtime_r(&secs, &tm) == NULL || strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(b, sizeof b, "%lld", (long long)(ms / 1000));
	fprintf(out, "%s.%03d", b, (int)(ms % 1000));
}

/* "caused by ..." for one transition. */
static void
explain_cause(json_t *t, FILE *out)
{
	const char *cause = str_or(t, "cause", "?");
	json_t *line = json_object_get(t, "line");

	fputs("caused by ", out);
	if (json_is_integer(line) && strcmp(cause, "settle") == 0)
		fprintf(out, "the failed agent_end at line %lld (no retry followed)",
		        (long long)json_integer_value(line));
	else if (json_is_integer(line)) {
		cli_put_clean(cause, out);
		fprintf(out, " at line %lld", (long long)json_integer_value(line));
	} else if (strcmp(cause, "exit") == 0 && json_is_integer(json_object_get(t, "status")))
		fprintf(out, "the process exit (status %lld)",
		        (long long)json_integer_value(json_object_get(t, "status")));
	else if (strcmp(cause, "signal") == 0 && json_is_integer(json_object_get(t, "signal")))
		fprintf(out, "the process's death by signal %lld",
		        (long long)json_integer_value(json_object_get(t, "signal")));
	else if (strcmp(cause, "start") == 0)
		fputs("the process start", out);
	else if (strcmp(cause, "stall") == 0)
		fputs("a stall (no event for the stall time)", out);
	else if (strcmp(cause, "restart") == 0)
		fputs("a restart", out);
	else if (strcmp(cause, "spawner") == 0)
		fputs("the spawner (a fault it saw)", out);
	else
		cli_put_clean(cause, out);
}

void
cli_render_explain(json_t *result, FILE *out)
{
	json_t *t;
	size_t i;

	fputs("agent ", out);
	cli_put_clean(str_or(result, "id", "?"), out);
	fputs(": ", out);
	cli_put_clean(str_or(result, "state", "?"), out);
	fputs(" (", out);
	cli_put_clean(str_or(result, "reason", ""), out);
	fprintf(out, "), %lld unrecognized lines\n",
	        (long long)json_integer_value(json_object_get(result, "unrecognized_lines")));
	json_array_foreach(json_object_get(result, "transitions"), i, t)
	{
		explain_time(t, out);
		fputs("  ", out);
		cli_put_clean(str_or(t, "from", "?"), out);
		fputs(" -> ", out);
		cli_put_clean(str_or(t, "to", "?"), out);
		fputs("  ", out);
		cli_put_clean(str_or(t, "reason", ""), out);
		fputs("  (", out);
		explain_cause(t, out);
		fputs(")\n", out);
	}
}
