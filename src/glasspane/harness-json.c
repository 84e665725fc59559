/*
 * harness-json.c -- field helpers shared by the pi and zot decoders.
 *
 * Agents are not always consistent about number types (a token count may be
 * written as 42 or 42.0), so the getters accept both and clamp what a C
 * integer cannot hold instead of invoking undefined behaviour.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "common/util.h"
#include "harness-json.h"

void
gp_event_clear(struct gp_event *ev)
{
	memset(ev, 0, offsetof(struct gp_event, text));
	ev->text[0] = '\0';
}

void
gp_text_add(struct gp_event *ev, const char *s)
{
	size_t room = sizeof ev->text - 1 - ev->text_len, n;

	if (s == NULL || *s == '\0' || room == 0)
		return;
	if (ev->text_len > 0) {
		ev->text[ev->text_len++] = '\n';
		room--;
	}
	n = utf8_cut_len(s, strlen(s), room);
	memcpy(ev->text + ev->text_len, s, n);
	ev->text_len += n;
	ev->text[ev->text_len] = '\0';
}

void
gp_copy(char *dst, size_t n, const char *src)
{
	size_t len;

	if (src == NULL) {
		dst[0] = '\0';
		return;
	}
	len = utf8_cut_len(src, strlen(src), n - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int
gp_json_str(json_t *o, const char *key, char *dst, size_t n)
{
	json_t *v = json_object_get(o, key);

	gp_copy(dst, n, json_is_string(v) ? json_string_value(v) : NULL);
	return json_is_string(v);
}

int64_t
gp_json_i64(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	double d;

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (!json_is_real(v))
		return 0;
	d = json_real_value(v);
	if (isnan(d) || d > 9.0e18 || d < -9.0e18)
		return 0;
	return (int64_t)d;
}

double
gp_json_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : 0.0;
}

int
gp_json_true(json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

json_t *
gp_json_load(const char *line, size_t len)
{
	json_error_t err;
	json_t *root = json_loadb(line, len, 0, &err);

	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}
