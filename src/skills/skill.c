/*
 * skill.c -- the SKILL.md front-matter parser and a skill's JSON form.
 *
 * The parser works on (pointer, length) slices of the input and never on
 * NUL-terminated strings, so a missing newline, a missing quote or a file
 * that ends mid-line cannot make it read past the end.  It first checks the
 * whole file (size, NUL, UTF-8), then walks the front matter line by line
 * collecting raw fields, then turns those into a struct skill.  Each field
 * remembers how an indented line may continue it (mode), which is the whole
 * of the "YAML" it understands.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "skill.h"

enum skp_mode {
	SKP_OPEN,    /* "key:" with nothing after: list items or plain continuation may follow */
	SKP_PLAIN,   /* plain scalar: indented lines fold into it */
	SKP_CLOSED,  /* quoted scalar or inline list: nothing may follow */
	SKP_LIST,    /* "- item" lines */
	SKP_LITERAL, /* "|": indented lines joined by newlines */
	SKP_FOLDED,  /* ">": indented lines joined by spaces */
};

struct skp_field {
	char *key;
	struct buf value;
	char **items;
	size_t nitems;
	int is_list;
	enum skp_mode mode;
	int line;
};

struct skp {
	const char *data;
	size_t len;
	size_t pos;
	int line;
	const char *file;
	char **cause;
	struct skp_field fields[SKILL_MAX_FIELDS];
	size_t nfields;
};

static int skp_fail(struct skp *, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
skp_fail(struct skp *p, int line, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	xasprintf(p->cause, "%s:%d: %s", p->file, line, msg);
	free(msg);
	return -1;
}

int
skill_utf8_valid(const unsigned char *s, size_t len, size_t *bad)
{
	size_t i = 0, n, k;
	unsigned c, min;

	while (i < len) {
		c = s[i];
		if (c == 0)
			goto fail;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, c &= 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, c &= 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, c &= 0x07, min = 0x10000;
		else
			goto fail;
		if (len - i - 1 < n)
			goto fail;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto fail;
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			goto fail;
		i += n + 1;
	}
	return 1;
fail:
	*bad = i;
	return 0;
}

/* The next line without its "\n" or "\r\n"; 0 at the end of input. */
static int
skp_next_line(struct skp *p, const char **line, size_t *n)
{
	const char *nl;
	size_t end;

	if (p->pos >= p->len)
		return 0;
	*line = p->data + p->pos;
	nl = memchr(*line, '\n', p->len - p->pos);
	end = nl != NULL ? (size_t)(nl - p->data) : p->len;
	*n = end - p->pos;
	p->pos = nl != NULL ? end + 1 : p->len;
	if (*n > 0 && (*line)[*n - 1] == '\r')
		(*n)--;
	p->line++;
	return 1;
}

static int
skp_space(char c)
{
	return c == ' ' || c == '\t';
}

static void
skp_trim(const char **s, size_t *n)
{
	while (*n > 0 && skp_space(**s))
		(*s)++, (*n)--;
	while (*n > 0 && skp_space((*s)[*n - 1]))
		(*n)--;
}

static int
skp_is_marker(const char *s, size_t n)
{
	skp_trim(&s, &n);
	return n == 3 && memcmp(s, "---", 3) == 0;
}

/* Drop a " #comment" tail from a plain scalar. */
static size_t
skp_uncomment(const char *s, size_t n)
{
	size_t i;

	if (n > 0 && s[0] == '#')
		return 0;
	for (i = 1; i < n; i++)
		if (s[i] == '#' && skp_space(s[i - 1]))
			return i;
	return n;
}

/* Only blanks or a comment from s on? */
static int
skp_rest_empty(const char *s, size_t n)
{
	skp_trim(&s, &n);
	return n == 0 || s[0] == '#';
}

static int
skp_escape(char c, char *out)
{
	static const char from[] = "\"\\/nt", to[] = "\"\\/\n\t";
	const char *q = c != '\0' ? strchr(from, c) : NULL;

	if (q == NULL)
		return -1;
	*out = to[q - from];
	return 0;
}

/*
 * A quoted scalar starting at s[0] (a quote).  Appends its value to out and
 * returns the length consumed, or -1 if it does not close on this line.
 */
static long
skp_quoted(struct skp *p, const char *s, size_t n, struct buf *out)
{
	char q = s[0], c;
	size_t i = 1;

	while (i < n) {
		if (s[i] == q && q == '\'' && i + 1 < n && s[i + 1] == '\'') {
			buf_addc(out, '\'');
			i += 2;
		} else if (s[i] == q) {
			return (long)(i + 1);
		} else if (s[i] == '\\' && q == '"') {
			if (i + 1 >= n || skp_escape(s[i + 1], &c) == -1)
				return skp_fail(p, p->line, "bad escape in quoted string");
			buf_addc(out, c);
			i += 2;
		} else {
			buf_addc(out, s[i++]);
		}
	}
	return skp_fail(p, p->line, "unterminated quoted string");
}

/* One scalar (quoted or plain, comments allowed if plain_comments) into out. */
static int
skp_scalar(struct skp *p, const char *s, size_t n, int plain_comments, struct buf *out)
{
	long used;

	skp_trim(&s, &n);
	if (n > 0 && (s[0] == '"' || s[0] == '\'')) {
		if ((used = skp_quoted(p, s, n, out)) == -1)
			return -1;
		if (!skp_rest_empty(s + used, n - (size_t)used))
			return skp_fail(p, p->line, "text after closing quote");
		return 0;
	}
	if (plain_comments)
		n = skp_uncomment(s, n);
	skp_trim(&s, &n);
	buf_add(out, s, n);
	return 0;
}

static int
skp_add_item(struct skp *p, struct skp_field *f, const char *s, size_t n)
{
	struct buf b;

	if (f->nitems >= SKILL_MAX_TAGS)
		return skp_fail(p, p->line, "too many list items (limit %d)", SKILL_MAX_TAGS);
	buf_init(&b);
	if (skp_scalar(p, s, n, 0, &b) == -1) {
		buf_free(&b);
		return -1;
	}
	f->items = xreallocarray(f->items, f->nitems + 1, sizeof *f->items);
	f->items[f->nitems++] = xstrdup(buf_cstr(&b));
	buf_free(&b);
	f->is_list = 1;
	return 0;
}

/* Where the inline list opened at s[0] closes, or -1.  Quotes may hide brackets. */
static long
skp_list_end(struct skp *p, const char *s, size_t n)
{
	size_t i;
	char q = 0;

	for (i = 1; i < n; i++) {
		if (q != 0) {
			if (s[i] == '\\' && q == '"')
				i++;
			else if (s[i] == q)
				q = 0;
		} else if (s[i] == '"' || s[i] == '\'') {
			q = s[i];
		} else if (s[i] == '[') {
			return skp_fail(p, p->line, "nested lists are not supported");
		} else if (s[i] == ']') {
			return (long)i;
		}
	}
	return skp_fail(p, p->line, "unterminated list (missing ']')");
}

/* "[a, 'b c', d]" into f's items. */
static int
skp_inline_list(struct skp *p, struct skp_field *f, const char *s, size_t n)
{
	long end = skp_list_end(p, s, n);
	size_t i, start = 1;
	char q = 0;

	if (end == -1)
		return -1;
	if (!skp_rest_empty(s + end + 1, n - (size_t)end - 1))
		return skp_fail(p, p->line, "text after closing ']'");
	f->is_list = 1;
	for (i = 1; i <= (size_t)end; i++) {
		if (q != 0) {
			if (s[i] == '\\' && q == '"')
				i++;
			else if (s[i] == q)
				q = 0;
			continue;
		}
		if (s[i] == '"' || s[i] == '\'') {
			q = s[i];
		} else if (s[i] == ',' || i == (size_t)end) {
			const char *item = s + start;
			size_t len = i - start;

			skp_trim(&item, &len);
			if (len > 0 && skp_add_item(p, f, item, len) == -1)
				return -1;
			start = i + 1;
		}
	}
	return 0;
}

/* The value after "key:" on the key's own line. */
static int
skp_value(struct skp *p, struct skp_field *f, const char *v, size_t n)
{
	skp_trim(&v, &n);
	if (n == 0 || v[0] == '#') {
		f->mode = SKP_OPEN;
		return 0;
	}
	if (v[0] == '[' && strcmp(f->key, "tags") == 0) {
		f->mode = SKP_CLOSED;
		return skp_inline_list(p, f, v, n);
	}
	if (v[0] == '|' || v[0] == '>') {
		if (!skp_rest_empty(v + 1 + (n > 1 && (v[1] == '-' || v[1] == '+')),
		                    n - 1 - (n > 1 && (v[1] == '-' || v[1] == '+'))))
			return skp_fail(p, p->line, "unsupported block scalar header");
		f->mode = v[0] == '|' ? SKP_LITERAL : SKP_FOLDED;
		return 0;
	}
	f->mode = (v[0] == '"' || v[0] == '\'') ? SKP_CLOSED : SKP_PLAIN;
	return skp_scalar(p, v, n, 1, &f->value);
}

/* An indented line: continues the last field according to its mode. */
static int
skp_continue(struct skp *p, const char *s, size_t n)
{
	struct skp_field *f = p->nfields > 0 ? &p->fields[p->nfields - 1] : NULL;
	const char *sep;

	skp_trim(&s, &n);
	if (f == NULL)
		return skp_fail(p, p->line, "indented line outside a field");
	if (f->mode == SKP_LITERAL || f->mode == SKP_FOLDED) {
		sep = f->mode == SKP_LITERAL ? "\n" : " ";
		if (buf_used(&f->value) > 0)
			buf_adds(&f->value, sep);
		buf_add(&f->value, s, n);
		return 0;
	}
	if (n > 0 && s[0] == '-' && (n == 1 || skp_space(s[1]))) {
		if (f->mode != SKP_OPEN && f->mode != SKP_LIST)
			return skp_fail(p, p->line, "list item after a value");
		f->mode = SKP_LIST;
		return skp_add_item(p, f, s + 1, n - 1);
	}
	if (f->mode != SKP_OPEN && f->mode != SKP_PLAIN)
		return skp_fail(p, p->line, "unexpected indented line");
	f->mode = SKP_PLAIN;
	n = skp_uncomment(s, n);
	skp_trim(&s, &n);
	if (buf_used(&f->value) > 0 && n > 0)
		buf_addc(&f->value, ' ');
	buf_add(&f->value, s, n);
	return 0;
}

static int
skp_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* A "key: value" line starts a new field. */
static int
skp_key_line(struct skp *p, const char *s, size_t n)
{
	struct skp_field *f;
	size_t k = 0, i;

	while (k < n && skp_key_char(s[k]))
		k++;
	if (k == 0 || k >= n || s[k] != ':' || (k + 1 < n && !skp_space(s[k + 1])))
		return skp_fail(p, p->line, "expected key: value");
	for (i = 0; i < p->nfields; i++)
		if (strlen(p->fields[i].key) == k && memcmp(p->fields[i].key, s, k) == 0)
			return skp_fail(p, p->line, "duplicate key '%.*s'", (int)k, s);
	if (p->nfields >= SKILL_MAX_FIELDS)
		return skp_fail(p, p->line, "too many fields (limit %d)", SKILL_MAX_FIELDS);
	f = &p->fields[p->nfields++];
	f->key = xstrndup(s, k);
	f->line = p->line;
	return skp_value(p, f, s + k + 1, n - k - 1);
}

static int
skp_blank(const char *s, size_t n)
{
	skp_trim(&s, &n);
	return n == 0;
}

/* Read the front matter up to its closing "---". */
static int
skp_front_matter(struct skp *p)
{
	const char *s;
	size_t n;
	struct skp_field *last;

	if (!skp_next_line(p, &s, &n) || !skp_is_marker(s, n))
		return skp_fail(p, 1, "expected '---' to open the front matter");
	while (skp_next_line(p, &s, &n)) {
		last = p->nfields > 0 ? &p->fields[p->nfields - 1] : NULL;
		if (n >= 3 && memcmp(s, "---", 3) == 0 && skp_is_marker(s, n))
			return 0;
		if (skp_blank(s, n)) {
			if (last != NULL && last->mode == SKP_LITERAL && buf_used(&last->value) > 0)
				buf_addc(&last->value, '\n');
			continue;
		}
		if (skp_space(s[0])) {
			if (skp_continue(p, s, n) == -1)
				return -1;
			continue;
		}
		if (s[0] == '#')
			continue;
		if (skp_key_line(p, s, n) == -1)
			return -1;
	}
	return skp_fail(p, p->line > 0 ? p->line : 1, "front matter not closed (missing '---')");
}

static struct skp_field *
skp_find(struct skp *p, const char *key)
{
	size_t i;

	for (i = 0; i < p->nfields; i++)
		if (strcmp(p->fields[i].key, key) == 0)
			return &p->fields[i];
	return NULL;
}

static int
skp_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > SKILL_NAME_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!skp_key_char(s[i]))
			return 0;
	return 1;
}

/* A required scalar field's value, or -1 with an error. */
static int
skp_required(struct skp *p, const char *key, char **out)
{
	struct skp_field *f = skp_find(p, key);

	if (f == NULL)
		return skp_fail(p, 1, "missing required key '%s'", key);
	if (f->is_list || buf_used(&f->value) == 0)
		return skp_fail(p, f->line, "'%s' must be a non-empty string", key);
	*out = xstrdup(buf_cstr(&f->value));
	return 0;
}

/* tags as a plain "a, b" string: split it into items. */
static int
skp_split_tags(struct skp *p, struct skp_field *f)
{
	char *s = xstrdup(buf_cstr(&f->value)), *tok, *save = NULL;
	int rc = 0;

	for (tok = strtok_r(s, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		const char *t = tok;
		size_t n = strlen(tok);

		skp_trim(&t, &n);
		if (n > 0 && f->nitems >= SKILL_MAX_TAGS)
			rc = skp_fail(p, f->line, "too many list items (limit %d)", SKILL_MAX_TAGS);
		else if (n > 0)
			f->items = xreallocarray(f->items, f->nitems + 1, sizeof *f->items),
			f->items[f->nitems++] = xstrndup(t, n);
	}
	free(s);
	return rc;
}

/* Items joined by ", "; caller frees. */
static char *
skp_join(char *const *items, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i > 0 ? ", " : "", items[i]);
	buf_cstr(&b);
	return b.data;
}

/* Move fields other than name and description into sk; tags also become sk->tags. */
static int
skp_build_fields(struct skp *p, struct skill *sk)
{
	struct skill_field *out;
	struct skp_field *f;
	size_t i;

	sk->fields = xcalloc(p->nfields + 1, sizeof *sk->fields);
	for (i = 0; i < p->nfields; i++) {
		f = &p->fields[i];
		if (strcmp(f->key, "name") == 0 || strcmp(f->key, "description") == 0)
			continue;
		out = &sk->fields[sk->nfields++];
		out->key = xstrdup(f->key);
		out->line = f->line;
		if (strcmp(f->key, "tags") == 0) {
			if (!f->is_list && skp_split_tags(p, f) == -1)
				return -1;
			sk->tags = f->items;
			sk->ntags = f->nitems;
			f->items = NULL;
			f->nitems = 0;
			out->value = skp_join(sk->tags, sk->ntags);
		} else if (f->is_list) {
			out->value = skp_join(f->items, f->nitems);
		} else {
			out->value = xstrdup(buf_cstr(&f->value));
		}
	}
	return 0;
}

static void
skp_free(struct skp *p)
{
	size_t i, k;

	for (i = 0; i < p->nfields; i++) {
		free(p->fields[i].key);
		buf_free(&p->fields[i].value);
		for (k = 0; k < p->fields[i].nitems; k++)
			free(p->fields[i].items[k]);
		free(p->fields[i].items);
	}
}

static int
skp_check_bytes(struct skp *p)
{
	size_t bad, i;
	int line = 1;

	if (p->len > SKILL_MAX_BYTES)
		return skp_fail(p, 1, "file too large (%zu bytes, limit %d)", p->len,
		                SKILL_MAX_BYTES);
	if (skill_utf8_valid((const unsigned char *)p->data, p->len, &bad))
		return 0;
	for (i = 0; i < bad; i++)
		line += p->data[i] == '\n';
	return skp_fail(p, line, "%s", p->data[bad] == '\0' ? "NUL byte" : "invalid UTF-8");
}

int
skill_parse(const char *data, size_t len, const char *file, struct skill *out, char **cause)
{
	struct skp p;
	struct skp_field *name;
	int rc = -1;

	memset(out, 0, sizeof *out);
	memset(&p, 0, sizeof p);
	p.data = data;
	p.len = len;
	p.file = file;
	p.cause = cause;
	*cause = NULL;
	if (skp_check_bytes(&p) == -1)
		goto out;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		p.pos = 3;
	if (skp_front_matter(&p) == -1 || skp_required(&p, "name", &out->name) == -1 ||
	    skp_required(&p, "description", &out->description) == -1)
		goto out;
	name = skp_find(&p, "name");
	if (!skp_name_ok(out->name)) {
		skp_fail(&p, name->line,
		         "invalid skill name '%s' (letters, digits, '.', '_', '-';"
		         " at most %d)",
		         out->name, SKILL_NAME_MAX);
		goto out;
	}
	if (skp_build_fields(&p, out) == -1)
		goto out;
	out->body = xstrndup(data + p.pos, len - p.pos);
	rc = 0;
out:
	skp_free(&p);
	if (rc == -1)
		skill_free(out);
	return rc;
}

void
skill_free(struct skill *sk)
{
	size_t i;

	if (sk == NULL)
		return;
	free(sk->name);
	free(sk->description);
	for (i = 0; i < sk->ntags; i++)
		free(sk->tags[i]);
	free(sk->tags);
	for (i = 0; i < sk->nfields; i++) {
		free(sk->fields[i].key);
		free(sk->fields[i].value);
	}
	free(sk->fields);
	free(sk->body);
	free(sk->path);
	memset(sk, 0, sizeof *sk);
}

const char *
skill_field(const struct skill *sk, const char *key)
{
	size_t i;

	for (i = 0; i < sk->nfields; i++)
		if (strcmp(sk->fields[i].key, key) == 0)
			return sk->fields[i].value;
	return NULL;
}

json_t *
skill_to_json(const struct skill *sk, int with_body)
{
	json_t *fields = json_object(), *tags, *o;
	size_t i;

	for (i = 0; i < sk->nfields; i++) {
		if (strcmp(sk->fields[i].key, "tags") != 0) {
			json_object_set_new(fields, sk->fields[i].key,
			                    json_string(sk->fields[i].value));
			continue;
		}
		tags = json_array();
		for (size_t k = 0; k < sk->ntags; k++)
			json_array_append_new(tags, json_string(sk->tags[k]));
		json_object_set_new(fields, "tags", tags);
	}
	o = json_pack("{s:s, s:s, s:o, s:o}", "name", sk->name, "description", sk->description,
	              "path", sk->path != NULL ? json_string(sk->path) : json_null(), "fields",
	              fields);
	if (with_body && o != NULL)
		json_object_set_new(o, "body", json_string(sk->body));
	return o;
}
