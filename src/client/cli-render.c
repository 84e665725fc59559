/*
 * cli-render.c -- readable output of the colibri CLI.
 *
 * Lists become tables whose columns are data (a header and the member of
 * each item it shows, dotted for nested members); single objects become an
 * aligned "key: value" block with nested objects flattened to dotted keys.
 * Everything printed here came from the daemon and, through it, from
 * agents and task authors, so every cell passes through cli_put_clean:
 * control characters (C0, DEL and the UTF-8 encoded C1 range) are shown as
 * '?' and cannot move the cursor or retitle the terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cli.h"
#include "common/buf.h"
#include "common/xmalloc.h"

enum cli_cell_kind { CELL_PLAIN, CELL_TIME, CELL_SUMMARY };

struct cli_col {
	const char *head;
	const char *key; /* dotted for a nested member */
	enum cli_cell_kind kind;
};

void
cli_put_clean(const char *s, FILE *out)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			fputc('?', out);
			p++;
		} else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			fputc('?', out);
		else
			fputc(*p, out);
	}
}

/* Display width, counting UTF-8 sequences as one column each. */
static size_t
cli_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* A member by dotted path, or NULL. */
static json_t *
cli_get(json_t *obj, const char *key)
{
	const char *dot;
	char part[64];

	while ((dot = strchr(key, '.')) != NULL) {
		snprintf(part, sizeof part, "%.*s", (int)(dot - key), key);
		obj = json_object_get(obj, part);
		key = dot + 1;
	}
	return json_object_get(obj, key);
}

/* A value as text for a cell; caller frees. */
static char *
cli_cell(json_t *v)
{
	char *s;

	if (v == NULL || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v)) {
		xasprintf(&s, "%lld", (long long)json_integer_value(v));
		return s;
	}
	if (json_is_real(v)) {
		xasprintf(&s, "%.4g", json_real_value(v));
		return s;
	}
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return xstrdup("?");
	return s;
}

/* Milliseconds since the epoch as local "YYYY-MM-DD HH:MM:SS". */
static char *
cli_time(json_t *v)
{
	time_t t;
	struct tm tm;
	char b[32];

	if (!json_is_integer(v))
		return cli_cell(v);
	t = (time_t)(json_integer_value(v) / 1000);
	if (localtime_r(&t, &tm) == NULL || strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return cli_cell(v);
	return xstrdup(b);
}

/* An event's data as key=value words; caller frees. */
static char *
cli_summary(json_t *data)
{
	struct buf b;
	const char *k, *s;
	json_t *v;
	char *cell;

	if (!json_is_object(data))
		return cli_cell(data);
	buf_init(&b);
	json_object_foreach(data, k, v)
	{
		s = json_string_value(v);
		if (s != NULL && (*s == '\0' || strpbrk(s, " \t\"=") != NULL))
			cell = json_dumps(v, JSON_ENCODE_ANY);
		else
			cell = cli_cell(v);
		buf_printf(&b, "%s%s=%s", buf_used(&b) > 0 ? " " : "", k,
		           cell != NULL ? cell : "?");
		free(cell);
	}
	cell = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return cell;
}

static void
cli_pad(FILE *out, size_t n)
{
	while (n-- > 0)
		fputc(' ', out);
}

/* Print cells (nrows x ncols, row-major, the first row the header). */
static void
cli_table_print(char **cells, size_t nrows, size_t ncols, FILE *out)
{
	size_t *w = xcalloc(ncols, sizeof *w), r, c, n;

	for (r = 0; r < nrows; r++)
		for (c = 0; c < ncols; c++)
			if ((n = cli_width(cells[r * ncols + c])) > w[c])
				w[c] = n;
	for (r = 0; r < nrows; r++) {
		for (c = 0; c < ncols; c++) {
			cli_put_clean(cells[r * ncols + c], out);
			if (c + 1 < ncols)
				cli_pad(out, w[c] - cli_width(cells[r * ncols + c]) + 2);
		}
		fputc('\n', out);
	}
	free(w);
}

static char *
cli_cell_of(json_t *item, const struct cli_col *col)
{
	json_t *v = cli_get(item, col->key);

	switch (col->kind) {
	case CELL_TIME:
		return cli_time(v);
	case CELL_SUMMARY:
		return cli_summary(v);
	case CELL_PLAIN:
		break;
	}
	return cli_cell(v);
}

/* A table of items (a JSON array) with the given columns. */
static void
cli_table(json_t *items, const struct cli_col *cols, FILE *out)
{
	size_t ncols, nrows = json_array_size(items) + 1, r, c;
	char **cells;

	for (ncols = 0; cols[ncols].head != NULL; ncols++)
		;
	cells = xcalloc(nrows * ncols, sizeof *cells);
	for (c = 0; c < ncols; c++)
		cells[c] = xstrdup(cols[c].head);
	for (r = 1; r < nrows; r++)
		for (c = 0; c < ncols; c++)
			cells[r * ncols + c] = cli_cell_of(json_array_get(items, r - 1), &cols[c]);
	cli_table_print(cells, nrows, ncols, out);
	for (r = 0; r < nrows * ncols; r++)
		free(cells[r]);
	free(cells);
}

/* The result's "items" as a table (a header only when there are none). */
static void
cli_table_items(json_t *result, const struct cli_col *cols, FILE *out)
{
	json_t *items = json_object_get(result, "items"), *none = json_array();

	cli_table(json_is_array(items) ? items : none, cols, out);
	json_decref(none);
	/* A page of a paged list (task-list, events-read): say how to get the next one. */
	if (json_is_true(json_object_get(result, "more")))
		fprintf(out, "(more: the next page is --after %lld)\n",
		        (long long)json_integer_value(json_object_get(result, "next")));
}

void
cli_render_tasks(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {{"ID", "id", 0},        {"STATUS", "status", 0},
	                                      {"PRI", "priority", 0}, {"OWNER", "owner", 0},
	                                      {"TITLE", "title", 0},  {NULL, NULL, 0}};

	cli_table_items(result, cols, out);
}

void
cli_render_agents(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {{"ID", "id", 0},         {"KIND", "kind", 0},
	                                      {"STATE", "state", 0},   {"PROVIDER", "provider", 0},
	                                      {"PID", "pid", 0},       {"SESSION", "session_id", 0},
	                                      {"REASON", "reason", 0}, {NULL, NULL, 0}};

	cli_table_items(result, cols, out);
}

void
cli_render_tenants(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {{"TENANT", "tenant_id", 0},
	                                      {"STATUS", "status", 0},
	                                      {"COLLECTION", "collection_id", 0},
	                                      {"JAIL_ROOT", "jail_root_path", 0},
	                                      {"REASON", "reason", 0},
	                                      {NULL, NULL, 0}};

	cli_table_items(result, cols, out);
}

void
cli_render_events(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {{"SEQ", "seq", CELL_PLAIN},
	                                      {"TIME", "ts", CELL_TIME},
	                                      {"EVENT", "event", CELL_PLAIN},
	                                      {"DATA", "data", CELL_SUMMARY},
	                                      {NULL, NULL, 0}};

	cli_table_items(result, cols, out);
}

void
cli_render_skills(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {
	        {"NAME", "name", 0}, {"DESCRIPTION", "description", 0}, {NULL, NULL, 0}};

	cli_table_items(result, cols, out);
}

void
cli_render_usage(json_t *result, FILE *out)
{
	static const struct cli_col cols[] = {{"AGENT", "agent", 0},
	                                      {"SESSION", "session_id", 0},
	                                      {"TENANT", "tenant", 0},
	                                      {"IN_MISS", "in_miss", 0},
	                                      {"IN_HIT", "in_hit", 0},
	                                      {"IN_WRITE", "in_write", 0},
	                                      {"OUT", "out", 0},
	                                      {"COST", "cost", 0},
	                                      {"HIT_SHARE", "hit_share", 0},
	                                      {NULL, NULL, 0}};
	json_t *items = json_object_get(result, "items"), *total = json_object_get(result, "total");
	json_t *rows = json_is_array(items) ? json_copy(items) : json_array();

	if (json_is_object(total)) {
		total = json_copy(total);
		json_object_set_new(total, "agent", json_string("TOTAL"));
		json_array_append_new(rows, total);
	}
	cli_table(rows, cols, out);
	json_decref(rows);
}

void
cli_render_lines(json_t *result, FILE *out)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(result, "lines"), i, v)
	{
		if (json_is_string(v))
			cli_put_clean(json_string_value(v), out);
		fputc('\n', out);
	}
}

void
cli_render_result(json_t *result, FILE *out)
{
	const char *s = json_string_value(json_object_get(result, "last_message")), *nl;
	const char *state = json_string_value(json_object_get(result, "state"));
	const char *id = json_string_value(json_object_get(result, "id"));
	char *line;

	if (s == NULL) {
		fprintf(stderr, "colibri: agent %s has no final message yet (state %s)\n",
		        id != NULL ? id : "?", state != NULL ? state : "unknown");
		return;
	}
	for (;;) {
		nl = strchr(s, '\n');
		line = nl != NULL ? xstrndup(s, (size_t)(nl - s)) : xstrdup(s);
		cli_put_clean(line, out);
		fputc('\n', out);
		free(line);
		if (nl == NULL)
			break;
		s = nl + 1;
	}
}

/* A multi-line string: indented lines under its key. */
static void
cli_put_block(const char *s, FILE *out)
{
	const char *nl;
	char *line;

	for (;;) {
		nl = strchr(s, '\n');
		line = nl != NULL ? xstrndup(s, (size_t)(nl - s)) : xstrdup(s);
		fputs("    ", out);
		cli_put_clean(line, out);
		fputc('\n', out);
		free(line);
		if (nl == NULL)
			break;
		s = nl + 1;
	}
}

/* Collect "key" / value pairs, flattening nested objects to dotted keys. */
static void
cli_flatten(json_t *obj, const char *prefix, json_t *pairs)
{
	const char *k;
	json_t *v;
	char *key;

	json_object_foreach(obj, k, v)
	{
		xasprintf(&key, "%s%s%s", prefix, *prefix != '\0' ? "." : "", k);
		if (json_is_object(v) && json_object_size(v) > 0)
			cli_flatten(v, key, pairs);
		else
			json_array_append_new(pairs, json_pack("[s,O]", key, v));
		free(key);
	}
}

void
cli_render_object(json_t *result, FILE *out)
{
	json_t *pairs, *p, *v;
	size_t i, w = 0, n;
	const char *key;
	char *cell;

	if (!json_is_object(result)) {
		cell = cli_cell(result);
		cli_put_clean(cell, out);
		fputc('\n', out);
		free(cell);
		return;
	}
	pairs = json_array();
	cli_flatten(result, "", pairs);
	json_array_foreach(pairs, i, p)
	{
		if ((n = cli_width(json_string_value(json_array_get(p, 0)))) > w)
			w = n;
	}
	json_array_foreach(pairs, i, p)
	{
		key = json_string_value(json_array_get(p, 0));
		v = json_array_get(p, 1);
		cli_put_clean(key, out);
		fputc(':', out);
		if (json_is_string(v) && strchr(json_string_value(v), '\n') != NULL) {
			fputc('\n', out);
			cli_put_block(json_string_value(v), out);
			continue;
		}
		cli_pad(out, w - cli_width(key) + 1);
		cell = cli_cell(v);
		cli_put_clean(cell, out);
		fputc('\n', out);
		free(cell);
	}
	json_decref(pairs);
}

void
cli_render_event_line(json_t *ev, FILE *out)
{
	char *seq = cli_cell(json_object_get(ev, "seq")), *ts = cli_time(json_object_get(ev, "ts")),
	     *name = cli_cell(json_object_get(ev, "event")),
	     *data = cli_summary(json_object_get(ev, "data"));
	char *line;

	xasprintf(&line, "%s %s %s %s", seq, ts, name, data);
	cli_put_clean(line, out);
	fputc('\n', out);
	free(line);
	free(seq);
	free(ts);
	free(name);
	free(data);
}
