/*
 * cli-dispatch.c -- `colibri dispatch on|off|status` printed for a person.
 *
 * The dispatch command's status (docs/protocol.md, "dispatch") as lines:
 * on or off and who decided, each cap as USED/CAP, the queue and why its
 * head waits, profiles the policy names that profiles.json lacks, the
 * profiles backing off and the spawns that failed lately.  --json prints
 * the object as it came.  Every string from the daemon goes through
 * cli_put_clean (a profile or tag name cannot move the cursor).
 */
#include <stdio.h>
#include <time.h>

#include "client/cli.h"

static void
put_str(const char *label, json_t *v, FILE *out)
{
	fputs(label, out);
	cli_put_clean(json_is_string(v) ? json_string_value(v) : "-", out);
	fputc('\n', out);
}

static void
put_cap(const char *what, const char *name, json_t *c, FILE *out)
{
	json_t *cap = json_object_get(c, "cap");

	fprintf(out, "  %-8s ", what);
	if (name != NULL) {
		cli_put_clean(name, out);
		fputc(' ', out);
	}
	fprintf(out, "%lld/", (long long)json_integer_value(json_object_get(c, "used")));
	if (json_is_integer(cap))
		fprintf(out, "%lld\n", (long long)json_integer_value(cap));
	else
		fputs("-\n", out);
}

static void
put_caps(json_t *caps, FILE *out)
{
	const char *k;
	json_t *v;

	fputs("caps (claims used/cap):\n", out);
	put_cap("host", NULL, json_object_get(caps, "host"), out);
	json_object_foreach(json_object_get(caps, "profiles"), k, v) put_cap("profile", k, v, out);
	json_object_foreach(json_object_get(caps, "tenants"), k, v) put_cap("tenant", k, v, out);
}

static void
put_failures(json_t *res, FILE *out)
{
	json_t *f, *v;
	const char *k;
	size_t i;
	char when[32];
	time_t t;
	struct tm tm;

	json_object_foreach(json_object_get(res, "backoff"), k, v)
	{
		fputs("backing off: profile ", out);
		cli_put_clean(k, out);
		fprintf(out, " (%lld failures, next try in %lld ms)\n",
		        (long long)json_integer_value(json_object_get(v, "failures")),
		        (long long)json_integer_value(json_object_get(v, "delay_ms")));
	}
	json_array_foreach(json_object_get(res, "failures"), i, f)
	{
		t = (time_t)(json_integer_value(json_object_get(f, "at_ms")) / 1000);
		localtime_r(&t, &tm);
		strftime(when, sizeof when, "%H:%M:%S", &tm);
		fprintf(out, "failed %s task %lld profile ", when,
		        (long long)json_integer_value(json_object_get(f, "task")));
		put_str("", json_object_get(f, "profile"), out);
		put_str("  ", json_object_get(f, "error"), out);
	}
}

void
cli_render_dispatch(json_t *res, FILE *out)
{
	json_t *q = json_object_get(res, "queue"), *head = json_object_get(q, "head"), *v;
	size_t i;

	fprintf(out, "dispatcher: %s (%s)\n",
	        json_is_true(json_object_get(res, "enabled")) ? "on" : "off",
	        json_string_value(json_object_get(res, "source")) != NULL &&
	                        json_string_value(json_object_get(res, "source"))[0] == 's'
	                ? "dispatch on|off, until the file changes"
	                : "dispatch.json");
	put_str("policy: ", json_object_get(res, "file"), out);
	put_str("default profile: ", json_object_get(res, "default_profile"), out);
	put_caps(json_object_get(res, "caps"), out);
	fprintf(out, "ready: %lld", (long long)json_integer_value(json_object_get(q, "ready")));
	if (json_is_integer(json_object_get(head, "task")))
		fprintf(out, ", head task %lld",
		        (long long)json_integer_value(json_object_get(head, "task")));
	fputc('\n', out);
	if (json_is_string(json_object_get(head, "why")))
		put_str("waiting: ", json_object_get(head, "why"), out);
	json_array_foreach(json_object_get(res, "missing_profiles"), i, v)
	        put_str("missing from profiles.json: ", v, out);
	if (json_array_size(json_object_get(res, "set_aside")) > 0) {
		fputs("set aside (failed to start 3 times):", out);
		json_array_foreach(json_object_get(res, "set_aside"), i, v)
		        fprintf(out, " %lld", (long long)json_integer_value(v));
		fputc('\n', out);
	}
	fprintf(out, "started: %lld\n",
	        (long long)json_integer_value(json_object_get(res, "started")));
	put_failures(res, out);
}
