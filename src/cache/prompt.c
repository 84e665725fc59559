/*
 * prompt.c -- canonical three-region prompt assembly and the drift finder.
 *
 * The work is in three steps: copy each region's parts out of the input,
 * scrub volatile fields from regions 1 and 2 (refuse or strip), then dump
 * each region with sorted keys and no whitespace.  jansson's JSON_SORT_KEYS
 * plus JSON_COMPACT is the canonical form: it does not depend on the hash
 * seed or on insertion order, only on the value.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "prompt.h"

#define PROMPT_DUMP_FLAGS (JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY)

static const char *const prompt_region_names[PROMPT_NREGIONS] = {"stable", "semi_stable",
                                                                 "volatile"};

static const char *const prompt_volatile_keys[] = {
        "id",         "uuid",       "nonce",   "seq",        "timestamp", "time",
        "date",       "datetime",   "now",     "mtime",      "ctime",     "atime",
        "request_id", "session_id", "turn_id", "message_id", "trace_id",  NULL,
};

static const char *const prompt_name_maps[] = {"properties", "patternProperties", "$defs",
                                               "definitions", NULL};

const char *
prompt_region_name(enum prompt_region_id id)
{
	if ((int)id < 0 || id >= PROMPT_NREGIONS)
		return NULL;
	return prompt_region_names[id];
}

static int
prompt_in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static int
prompt_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && memcmp(s + n - m, suffix, m) == 0;
}

/* Is an object key a timestamp or an id by its name? */
static int
prompt_key_is_volatile(const char *k)
{
	size_t n = strlen(k);

	if (prompt_in_list(k, prompt_volatile_keys))
		return 1;
	if (prompt_has_suffix(k, "_at") || prompt_has_suffix(k, "_time") ||
	    prompt_has_suffix(k, "_timestamp"))
		return 1;
	return n > 2 && k[n - 2] == 'A' && k[n - 1] == 't' && k[n - 3] >= 'a' && k[n - 3] <= 'z';
}

static int
prompt_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of an object in sorted order, so errors name the same field every run. */
static const char **
prompt_sorted_keys(json_t *obj, size_t *n)
{
	const char **keys, *k;
	json_t *v;
	size_t i = 0;

	*n = json_object_size(obj);
	keys = xcalloc(*n + 1, sizeof *keys);
	json_object_foreach(obj, k, v) keys[i++] = k;
	qsort(keys, *n, sizeof *keys, prompt_strcmp_p);
	return keys;
}

static int prompt_scrub(json_t *v, struct buf *path, int names, int flags, size_t *stripped,
                        char **cause);

static int
prompt_scrub_object(json_t *obj, struct buf *path, int names, int flags, size_t *stripped,
                    char **cause)
{
	const char **keys;
	size_t n, i, mark = path->len;
	int rc = 0;

	keys = prompt_sorted_keys(obj, &n);
	for (i = 0; i < n && rc == 0; i++) {
		json_t *child = json_object_get(obj, keys[i]);

		path->len = mark;
		buf_printf(path, "%s%s", mark > 0 ? "." : "", keys[i]);
		if (!names && prompt_key_is_volatile(keys[i])) {
			if (!(flags & PROMPT_STRIP_VOLATILE)) {
				xasprintf(cause,
				          "%s: volatile field not allowed in a stable region",
				          buf_cstr(path));
				rc = -1;
				break;
			}
			json_object_del(obj, keys[i]);
			(*stripped)++;
			continue;
		}
		rc = prompt_scrub(child, path, !names && prompt_in_list(keys[i], prompt_name_maps),
		                  flags, stripped, cause);
	}
	path->len = mark;
	free(keys);
	return rc;
}

/*
 * Walk v, refusing or removing volatile keys.  names is set when v's keys are
 * JSON Schema property names rather than fields.
 */
static int
prompt_scrub(json_t *v, struct buf *path, int names, int flags, size_t *stripped, char **cause)
{
	size_t i, mark = path->len;

	if (json_is_object(v))
		return prompt_scrub_object(v, path, names, flags, stripped, cause);
	if (!json_is_array(v))
		return 0;
	for (i = 0; i < json_array_size(v); i++) {
		path->len = mark;
		buf_printf(path, "[%zu]", i);
		if (prompt_scrub(json_array_get(v, i), path, 0, flags, stripped, cause) == -1)
			return -1;
	}
	path->len = mark;
	return 0;
}

/* Dump v canonically into r (with the trailing newline) and hash it. */
static int
prompt_region_fill(struct prompt_region *r, const json_t *v, char **cause)
{
	char *s = json_dumps(v, PROMPT_DUMP_FLAGS);

	if (s == NULL) {
		*cause = xstrdup("cannot serialise region (invalid UTF-8 or nesting too deep)");
		return -1;
	}
	r->len = strlen(s) + 1;
	r->bytes = xmalloc(r->len + 1);
	memcpy(r->bytes, s, r->len - 1);
	r->bytes[r->len - 1] = '\n';
	r->bytes[r->len] = '\0';
	free(s);
	sha256_hex(r->bytes, r->len, r->sha256);
	return 0;
}

static int
prompt_skill_cmp(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	const char *nx = json_string_value(json_object_get(x, "name"));
	const char *ny = json_string_value(json_object_get(y, "name"));
	char *dx, *dy;
	int c;

	c = strcmp(nx != NULL ? nx : "", ny != NULL ? ny : "");
	if (c != 0)
		return c;
	dx = json_dumps(x, PROMPT_DUMP_FLAGS);
	dy = json_dumps(y, PROMPT_DUMP_FLAGS);
	c = strcmp(dx != NULL ? dx : "", dy != NULL ? dy : "");
	free(dx);
	free(dy);
	return c;
}

/* Replace the array's items by themselves in skill order. */
static void
prompt_sort_skills(json_t *arr)
{
	size_t i, n = json_array_size(arr);
	json_t **items = xcalloc(n + 1, sizeof *items);

	for (i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(arr, i));
	qsort(items, n, sizeof *items, prompt_skill_cmp);
	json_array_clear(arr);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	free(items);
}

static int
prompt_array_of_objects(const json_t *v)
{
	size_t i;

	if (!json_is_array(v))
		return 0;
	for (i = 0; i < json_array_size(v); i++)
		if (!json_is_object(json_array_get(v, i)))
			return 0;
	return 1;
}

/* Check the input's keys and the types of their values. */
static int
prompt_check_input(const json_t *in, char **cause)
{
	const char *k;
	json_t *v;

	if (!json_is_object(in)) {
		*cause = xstrdup("prompt input must be an object");
		return -1;
	}
	json_object_foreach((json_t *)in, k, v)
	{
		int ok = 1;

		if (strcmp(k, "system") == 0)
			ok = json_is_string(v);
		else if (strcmp(k, "tools") == 0 || strcmp(k, "skills") == 0)
			ok = prompt_array_of_objects(v);
		else if (strcmp(k, "context") == 0)
			ok = json_is_string(v) || json_is_object(v);
		else if (strcmp(k, "turn") != 0) {
			xasprintf(cause, "unknown prompt key '%s'", k);
			return -1;
		}
		if (!ok) {
			xasprintf(cause, "prompt key '%s' has the wrong type", k);
			return -1;
		}
	}
	return 0;
}

/* Build the object of one region from the named input keys (deep copies). */
static json_t *
prompt_region_value(const json_t *in, const char *k1, const char *k2)
{
	json_t *r = json_object(), *v;

	if ((v = json_object_get(in, k1)) != NULL)
		json_object_set_new(r, k1, json_deep_copy(v));
	if (k2 != NULL && (v = json_object_get(in, k2)) != NULL)
		json_object_set_new(r, k2, json_deep_copy(v));
	return r;
}

static void
prompt_concat(struct prompt *p)
{
	size_t i, off = 0;

	for (i = 0; i < PROMPT_NREGIONS; i++)
		p->len += p->region[i].len;
	p->bytes = xmalloc(p->len + 1);
	for (i = 0; i < PROMPT_NREGIONS; i++) {
		p->region[i].offset = off;
		memcpy(p->bytes + off, p->region[i].bytes, p->region[i].len);
		off += p->region[i].len;
	}
	p->bytes[p->len] = '\0';
}

int
prompt_assemble(const json_t *input, int flags, struct prompt *out, char **cause)
{
	json_t *rv[PROMPT_NREGIONS] = {NULL, NULL, NULL};
	struct buf path;
	int i, rc = -1;

	memset(out, 0, sizeof *out);
	*cause = NULL;
	buf_init(&path);
	if (prompt_check_input(input, cause) == -1)
		goto out;
	rv[PROMPT_STABLE] = prompt_region_value(input, "system", "tools");
	rv[PROMPT_SEMI_STABLE] = prompt_region_value(input, "context", "skills");
	rv[PROMPT_VOLATILE] = prompt_region_value(input, "turn", NULL);
	if (json_object_get(rv[PROMPT_SEMI_STABLE], "skills") != NULL)
		prompt_sort_skills(json_object_get(rv[PROMPT_SEMI_STABLE], "skills"));
	for (i = PROMPT_STABLE; i <= PROMPT_SEMI_STABLE; i++)
		if (prompt_scrub(rv[i], &path, 0, flags, &out->stripped, cause) == -1)
			goto out;
	for (i = 0; i < PROMPT_NREGIONS; i++)
		if (prompt_region_fill(&out->region[i], rv[i], cause) == -1)
			goto out;
	prompt_concat(out);
	rc = 0;
out:
	for (i = 0; i < PROMPT_NREGIONS; i++)
		json_decref(rv[i]);
	buf_free(&path);
	if (rc == -1)
		prompt_free(out);
	return rc;
}

void
prompt_free(struct prompt *p)
{
	int i;

	if (p == NULL)
		return;
	for (i = 0; i < PROMPT_NREGIONS; i++)
		free(p->region[i].bytes);
	free(p->bytes);
	memset(p, 0, sizeof *p);
}

json_t *
prompt_to_json(const struct prompt *p)
{
	json_t *regions = json_array();
	int i;

	for (i = 0; i < PROMPT_NREGIONS; i++)
		json_array_append_new(regions, json_pack("{s:s, s:I, s:I, s:s}", "name",
		                                         prompt_region_names[i], "offset",
		                                         (json_int_t)p->region[i].offset, "bytes",
		                                         (json_int_t)p->region[i].len, "sha256",
		                                         p->region[i].sha256));
	return json_pack("{s:s%, s:I, s:I, s:o}", "prompt", p->bytes, p->len, "bytes",
	                 (json_int_t)p->len, "stripped", (json_int_t)p->stripped, "regions",
	                 regions);
}

char *
prompt_escape(const void *data, size_t len)
{
	const unsigned char *p = data;
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < len; i++) {
		if (p[i] == '\\')
			buf_adds(&b, "\\\\");
		else if (p[i] == '\n')
			buf_adds(&b, "\\n");
		else if (p[i] == '\r')
			buf_adds(&b, "\\r");
		else if (p[i] == '\t')
			buf_adds(&b, "\\t");
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			buf_printf(&b, "\\x%02x", p[i]);
		else
			buf_addc(&b, (char)p[i]);
	}
	buf_cstr(&b);
	return b.data;
}

int
prompt_drift_find(const void *prev, size_t prev_len, const void *cur, size_t cur_len,
                  size_t context, struct prompt_drift *out)
{
	const unsigned char *a = prev, *b = cur;
	size_t min = prev_len < cur_len ? prev_len : cur_len, off = 0, from;

	memset(out, 0, sizeof *out);
	out->prev_len = prev_len;
	out->cur_len = cur_len;
	while (off < min && a[off] == b[off])
		off++;
	out->offset = off;
	out->differs = off < min || prev_len != cur_len;
	if (!out->differs)
		return 0;
	from = off > context ? off - context : 0;
	out->before = prompt_escape(a + from, off - from);
	out->prev_after =
	        prompt_escape(a + off, prev_len - off < context ? prev_len - off : context);
	out->cur_after = prompt_escape(b + off, cur_len - off < context ? cur_len - off : context);
	return 1;
}

void
prompt_drift_free(struct prompt_drift *d)
{
	if (d == NULL)
		return;
	free(d->before);
	free(d->prev_after);
	free(d->cur_after);
	memset(d, 0, sizeof *d);
}

json_t *
prompt_drift_to_json(const struct prompt_drift *d)
{
	if (!d->differs)
		return json_pack("{s:b, s:I, s:I}", "differs", 0, "prev_len",
		                 (json_int_t)d->prev_len, "cur_len", (json_int_t)d->cur_len);
	return json_pack("{s:b, s:I, s:I, s:I, s:s, s:s, s:s}", "differs", 1, "offset",
	                 (json_int_t)d->offset, "prev_len", (json_int_t)d->prev_len, "cur_len",
	                 (json_int_t)d->cur_len, "before", d->before, "prev_after", d->prev_after,
	                 "cur_after", d->cur_after);
}

json_t *
prompt_drift_regions(const struct prompt *prev, const struct prompt *cur, size_t context)
{
	json_t *res = json_object();
	struct prompt_drift d;
	int i;

	for (i = PROMPT_STABLE; i <= PROMPT_SEMI_STABLE; i++) {
		prompt_drift_find(prev->region[i].bytes, prev->region[i].len, cur->region[i].bytes,
		                  cur->region[i].len, context, &d);
		json_object_set_new(res, prompt_region_names[i], prompt_drift_to_json(&d));
		prompt_drift_free(&d);
	}
	return res;
}
