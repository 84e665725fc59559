/*
 * cli-args.c -- from a verb's command-line words to the request's args.
 *
 * The parser knows no verb: it reads the row's positional and flag specs
 * and fills the protocol argument each names, typed as the spec says.
 * Numbers are parsed strictly (the whole word, in range), so a typo such
 * as `--priority x` is a usage error before the daemon is ever contacted.
 * Flags take their value as the next word or after '=' (`--lease-ms=500`).
 * A word "--" ends the flags: the remaining words are positionals, or,
 * for the spawn verbs, arguments for the agent.  A word that starts with
 * '-' followed by a digit is a (negative) number, not a flag.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "common/xmalloc.h"

int
cli_parse_int(const char *s, long long *out)
{
	char *end;
	long long v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* The object a (possibly dotted) key lives in; *leaf is the last part. */
static json_t *
cli_args_target(json_t *args, const char *key, const char **leaf)
{
	const char *dot = strchr(key, '.');
	json_t *sub;
	char *head;

	if (dot == NULL) {
		*leaf = key;
		return args;
	}
	head = xstrndup(key, (size_t)(dot - key));
	if ((sub = json_object_get(args, head)) == NULL) {
		sub = json_object();
		json_object_set_new(args, head, sub);
	}
	free(head);
	*leaf = dot + 1;
	return sub;
}

/* The array or object stored under leaf, created when absent. */
static json_t *
cli_args_container(json_t *obj, const char *leaf, int object)
{
	json_t *v = json_object_get(obj, leaf);

	if (v == NULL) {
		v = object ? json_object() : json_array();
		json_object_set_new(obj, leaf, v);
	}
	return v;
}

static int
cli_value_ints(json_t *arr, const char *s, char *err, size_t errlen)
{
	char *copy = xstrdup(s), *p = copy, *comma;
	long long n;
	int rc = -1;

	if (*s == '\0') {
		rc = 0;
		goto out;
	}
	for (;;) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma = '\0';
		if (cli_parse_int(p, &n) == -1) {
			snprintf(err, errlen, "\"%s\" is not an integer", p);
			goto out;
		}
		json_array_append_new(arr, json_integer(n));
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static int
cli_value_env(json_t *obj, const char *s, char *err, size_t errlen)
{
	const char *eq = strchr(s, '=');
	json_t *v;
	char *name;

	if (eq == NULL || eq == s) {
		snprintf(err, errlen, "\"%s\" is not NAME=VALUE", s);
		return -1;
	}
	name = xstrndup(s, (size_t)(eq - s));
	v = json_string(eq + 1);
	if (v != NULL)
		json_object_set_new(obj, name, v);
	free(name);
	if (v == NULL) {
		snprintf(err, errlen, "the value of %.*s is not valid UTF-8", (int)(eq - s), s);
		return -1;
	}
	return 0;
}

static json_t *
cli_value_json(const char *s, int object, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &jerr);

	if (object && !json_is_object(v)) {
		json_decref(v);
		snprintf(err, errlen, "\"%s\" is not a JSON object", s);
		return NULL;
	}
	if (v == NULL && (v = json_string(s)) == NULL)
		snprintf(err, errlen, "the value is not valid UTF-8");
	return v;
}

/* Store one word s for key as type t; what names the word in errors. */
static int
cli_value_add(json_t *args, const char *key, enum cli_type t, const char *s, const char *what,
              char *err, size_t errlen)
{
	const char *leaf;
	json_t *obj = cli_args_target(args, key, &leaf), *v = NULL;
	long long n;
	char sub[256];

	switch (t) {
	case CLI_INT:
		if (cli_parse_int(s, &n) == -1) {
			snprintf(err, errlen, "%s: \"%s\" is not an integer", what, s);
			return -1;
		}
		v = json_integer(n);
		break;
	case CLI_BOOL:
		v = json_true();
		break;
	case CLI_NEXT:
		v = json_string("next");
		break;
	case CLI_INTS:
		if (cli_value_ints(cli_args_container(obj, leaf, 0), s, sub, sizeof sub) == -1) {
			snprintf(err, errlen, "%s: %s", what, sub);
			return -1;
		}
		return 0;
	case CLI_ENV:
		if (cli_value_env(cli_args_container(obj, leaf, 1), s, sub, sizeof sub) == -1) {
			snprintf(err, errlen, "%s: %s", what, sub);
			return -1;
		}
		return 0;
	case CLI_JSON:
	case CLI_OBJ:
		if ((v = cli_value_json(s, t == CLI_OBJ, sub, sizeof sub)) == NULL) {
			snprintf(err, errlen, "%s: %s", what, sub);
			return -1;
		}
		break;
	case CLI_STR:
	case CLI_STRS:
		if ((v = json_string(s)) == NULL) {
			snprintf(err, errlen, "%s: not valid UTF-8", what);
			return -1;
		}
		if (t == CLI_STRS) {
			json_array_append_new(cli_args_container(obj, leaf, 0), v);
			return 0;
		}
		break;
	}
	json_object_set_new(obj, leaf, v);
	return 0;
}

static int
cli_is_flag(const char *w)
{
	return w[0] == '-' && w[1] != '\0' && !isdigit((unsigned char)w[1]);
}

static const struct cli_opt *
cli_opt_find(const struct cli_verb *verb, const char *w, size_t *namelen)
{
	const struct cli_opt *o;
	const char *name = w + 2, *eq;

	if (w[1] != '-') {
		*namelen = 1;
		for (o = verb->opts; o->flag != NULL; o++)
			if (w[2] == '\0' && o->shortc != 0 && o->shortc == w[1])
				return o;
		return NULL;
	}
	eq = strchr(name, '=');
	*namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
	for (o = verb->opts; o->flag != NULL; o++)
		if (strlen(o->flag) == *namelen && strncmp(o->flag, name, *namelen) == 0)
			return o;
	return NULL;
}

/* The global options; returns 1 if w (and perhaps the next word) was one. */
static int
cli_global(char **argv, int argc, int *i, struct cli_ctx *ctx, char *err, size_t errlen)
{
	const char *w = argv[*i];

	if (strcmp(w, "--json") == 0) {
		ctx->json = 1;
		return 1;
	}
	if (strncmp(w, "--socket=", 9) == 0) {
		ctx->socket = w + 9;
		return 1;
	}
	if (strcmp(w, "--socket") != 0)
		return 0;
	if (*i + 1 >= argc) {
		snprintf(err, errlen, "--socket needs a path");
		return -1;
	}
	ctx->socket = argv[++*i];
	return 1;
}

/* One flag word at argv[*i] (its value may be the next word). */
static int
cli_flag(const struct cli_verb *verb, char **argv, int argc, int *i, json_t *args, char *err,
         size_t errlen)
{
	const char *w = argv[*i], *value;
	const struct cli_opt *o;
	size_t namelen;
	char what[80];

	if ((o = cli_opt_find(verb, w, &namelen)) == NULL) {
		snprintf(err, errlen, "unknown option %.*s", w[1] == '-' ? (int)(namelen + 2) : 64,
		         w);
		return -1;
	}
	snprintf(what, sizeof what, "--%s", o->flag);
	value = w[1] == '-' ? strchr(w, '=') : NULL;
	if (o->type == CLI_BOOL || o->type == CLI_NEXT) {
		if (value != NULL) {
			snprintf(err, errlen, "%s takes no value", what);
			return -1;
		}
		return cli_value_add(args, o->key, o->type, "", what, err, errlen);
	}
	if (value != NULL)
		value++;
	else if (*i + 1 < argc)
		value = argv[++*i];
	else {
		snprintf(err, errlen, "%s needs a value", what);
		return -1;
	}
	return cli_value_add(args, o->key, o->type, value, what, err, errlen);
}

static int
cli_positional(const struct cli_verb *verb, int *npos, const char *w, json_t *args, char *err,
               size_t errlen)
{
	const struct cli_pos *p = &verb->pos[*npos];

	if (p->name == NULL) {
		snprintf(err, errlen, "unexpected argument \"%s\"", w);
		return -1;
	}
	(*npos)++;
	return cli_value_add(args, p->key, p->type, w, p->name, err, errlen);
}

static int
cli_rest_args(char **argv, int argc, int i, json_t *args, char *err, size_t errlen)
{
	for (; i < argc; i++)
		if (cli_value_add(args, "args", CLI_STRS, argv[i], "--", err, errlen) == -1)
			return -1;
	return 0;
}

int
cli_args_build(const struct cli_verb *verb, int argc, char **argv, struct cli_ctx *ctx,
               json_t **out, char *err, size_t errlen)
{
	json_t *args = json_object();
	int i, g, npos = 0, flags = 1;

	*out = NULL;
	for (i = 0; i < argc; i++) {
		const char *w = argv[i];

		if (flags && strcmp(w, "--") == 0) {
			if (verb->flags & CLI_REST_ARGS) {
				if (cli_rest_args(argv, argc, i + 1, args, err, errlen) == -1)
					goto fail;
				break;
			}
			flags = 0;
		} else if (flags && (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0)) {
			json_decref(args);
			return 1;
		} else if (flags && (g = cli_global(argv, argc, &i, ctx, err, errlen)) != 0) {
			if (g == -1)
				goto fail;
		} else if (flags && cli_is_flag(w)) {
			if (cli_flag(verb, argv, argc, &i, args, err, errlen) == -1)
				goto fail;
		} else if (cli_positional(verb, &npos, w, args, err, errlen) == -1)
			goto fail;
	}
	for (; verb->pos[npos].name != NULL; npos++)
		if (!verb->pos[npos].optional ||
		    (verb->pos[npos].optional == CLI_POS_UNLESS_PROFILE &&
		     json_object_get(args, "profile") == NULL)) {
			snprintf(err, errlen, "missing %s%s", verb->pos[npos].name,
			         verb->pos[npos].optional == CLI_POS_UNLESS_PROFILE
			                 ? " (or --profile)"
			                 : "");
			goto fail;
		}
	*out = args;
	return 0;
fail:
	json_decref(args);
	return -1;
}

static const char *
cli_placeholder(enum cli_type t)
{
	switch (t) {
	case CLI_INT:
		return " N";
	case CLI_BOOL:
	case CLI_NEXT:
		return "";
	case CLI_INTS:
		return " N[,N...]";
	case CLI_ENV:
		return " NAME=VALUE";
	case CLI_JSON:
	case CLI_OBJ:
		return " JSON";
	case CLI_STR:
	case CLI_STRS:
		break;
	}
	return " TEXT";
}

void
cli_usage_verb(const struct cli_verb *verb, FILE *out)
{
	const struct cli_pos *p;
	const struct cli_opt *o;
	char flag[64];

	fprintf(out, "usage: colibri [--socket PATH] %s", verb->name);
	for (p = verb->pos; p->name != NULL; p++)
		fprintf(out, p->optional ? " [%s]" : " %s", p->name);
	fprintf(out, "%s [--json]%s\n", verb->opts[0].flag != NULL ? " [options]" : "",
	        verb->flags & CLI_REST_ARGS ? " [-- ARG...]" : "");
	fprintf(out, "\n%s.\n", verb->help);
	if (verb->exec == NULL && strcmp(cli_verb_cmd(verb), verb->name) == 0)
		fprintf(out, "Sends the daemon command %s.\n", verb->name);
	fprintf(out, "\noptions:\n");
	for (o = verb->opts; o->flag != NULL; o++) {
		snprintf(flag, sizeof flag, "%s%s--%s%s", o->shortc ? "-" : "",
		         o->shortc ? (char[]){o->shortc, ',', ' ', '\0'} : "", o->flag,
		         cli_placeholder(o->type));
		fprintf(out, "  %-28s %s\n", flag, o->help);
	}
	fprintf(out, "  %-28s %s\n", "--json", "print the raw result as JSON");
	fprintf(out, "  %-28s %s\n", "--socket PATH", "the daemon's socket");
	fprintf(out, "  %-28s %s\n", "-h, --help", "this help");
}
