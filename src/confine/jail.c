/*
 * jail.c -- parsing a JailConfig and turning (binary, args) into the FreeBSD
 * jail command line, prefixed for the privilege mode.
 *
 * Everything here is pure: no file system, no environment, no processes.  The
 * spawner resolves the privilege mode once at start-up, parses each spawn's
 * "jail" object, and asks jail_wrap for the argv to execute.
 */
#include "confine/jail.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "confine/jail-name.h"

static const struct {
	const char *key;
	size_t off;
	const char *(*check)(const char *);
} jail_keys[] = {
        {"name", offsetof(struct jail_config, name), jail_name_check},
        {"path", offsetof(struct jail_config, path), jail_path_check},
        {"root_path", offsetof(struct jail_config, root_path), jail_path_check},
        {"ip4", offsetof(struct jail_config, ip4), jail_ip4_check},
        {"user", offsetof(struct jail_config, user), jail_user_check},
};
#define JAIL_NKEYS (sizeof jail_keys / sizeof jail_keys[0])

static char **
jail_field(struct jail_config *cfg, size_t i)
{
	return (char **)((char *)cfg + jail_keys[i].off);
}

static int
jail_key_index(const char *key)
{
	size_t i;

	for (i = 0; i < JAIL_NKEYS; i++) {
		if (strcmp(jail_keys[i].key, key) == 0)
			return (int)i;
	}
	return -1;
}

static int
jail_parse_value(struct jail_config *cfg, int i, const json_t *v, char **cause)
{
	const char *s, *err;

	if (json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		xasprintf(cause, "jail.%s must be a string", jail_keys[i].key);
		return -1;
	}
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		xasprintf(cause, "jail.%s must not contain NUL bytes", jail_keys[i].key);
		return -1;
	}
	if ((err = jail_keys[i].check(s)) != NULL) {
		xasprintf(cause, "jail.%s %s", jail_keys[i].key, err);
		return -1;
	}
	/* "none" is the Linux-minded spelling of FreeBSD's ip4=disable: one value downstream. */
	if (strcmp(jail_keys[i].key, "ip4") == 0 && strcmp(s, "none") == 0)
		s = "disable";
	*jail_field(cfg, (size_t)i) = xstrdup(s);
	return 0;
}

/* p and q equal but for trailing slashes ("/j/a/" is "/j/a"; "/" stays "/"). */
static int
jail_path_same(const char *p, const char *q)
{
	size_t lp = strlen(p), lq = strlen(q);

	while (lp > 1 && p[lp - 1] == '/')
		lp--;
	while (lq > 1 && q[lq - 1] == '/')
		lq--;
	return lp == lq && strncmp(p, q, lp) == 0;
}

/*
 * An ephemeral jail (path, no name) runs at path while the payload is staged
 * under root_path: if they differed, the stage would land in a tree the jail
 * does not see, and a root_path under the base would vouch for a path that
 * is not (path "/" was accepted beside a valid root_path).
 */
static int
jail_config_check_ephemeral(const struct jail_config *cfg, char **cause)
{
	if (cfg->name != NULL || cfg->path == NULL || cfg->root_path == NULL)
		return 0;
	if (jail_path_same(cfg->path, cfg->root_path))
		return 0;
	xasprintf(cause,
	          "jail.root_path (%s) must equal jail.path (%s) for an ephemeral jail (no "
	          "name): the jail runs at path and the payload is staged under root_path",
	          cfg->root_path, cfg->path);
	return -1;
}

int
jail_config_parse(const json_t *obj, struct jail_config *out, char **cause)
{
	const char *key;
	json_t *v;
	int i;

	memset(out, 0, sizeof *out);
	*cause = NULL;
	if (obj == NULL || json_is_null(obj))
		return 0;
	if (!json_is_object(obj)) {
		xasprintf(cause, "jail must be an object");
		return -1;
	}
	json_object_foreach((json_t *)obj, key, v)
	{
		if ((i = jail_key_index(key)) < 0) {
			xasprintf(cause,
			          "jail: unknown key \"%s\" (known: name, path, "
			          "root_path, ip4, user)",
			          key);
			goto fail;
		}
		if (jail_parse_value(out, i, v, cause) == -1)
			goto fail;
	}
	if (jail_config_check_ephemeral(out, cause) == -1)
		goto fail;
	return 0;
fail:
	jail_config_clear(out);
	return -1;
}

void
jail_config_clear(struct jail_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < JAIL_NKEYS; i++)
		free(*jail_field(cfg, i));
	memset(cfg, 0, sizeof *cfg);
}

void
jail_config_copy(struct jail_config *out, const struct jail_config *in)
{
	size_t i;
	char *s;

	memset(out, 0, sizeof *out);
	for (i = 0; i < JAIL_NKEYS; i++) {
		s = *jail_field((struct jail_config *)in, i);
		*jail_field(out, i) = s != NULL ? xstrdup(s) : NULL;
	}
}

int
jail_config_active(const struct jail_config *cfg)
{
	return cfg != NULL && (cfg->name != NULL || cfg->path != NULL);
}

const char *
jail_config_root(const struct jail_config *cfg)
{
	if (cfg == NULL)
		return NULL;
	return cfg->root_path != NULL ? cfg->root_path : cfg->path;
}

int
jail_config_check_mode(const struct jail_config *cfg, enum priv_mode mode, char **cause)
{
	const char *err;

	*cause = NULL;
	if (mode != PRIV_MODE_HELPER || !jail_config_active(cfg))
		return 0;
	if (cfg->user == NULL) {
		xasprintf(cause,
		          "jail.user is required in helper mode (COLIBRI_JAIL_PRIV_MODE=helper): "
		          "colibri-jail-spawn runs a jailed command only as an unprivileged "
		          "user, never as root");
		return -1;
	}
	if ((err = jail_unpriv_user_check(cfg->user)) != NULL) {
		xasprintf(cause, "jail.user %s %s in helper mode", cfg->user, err);
		return -1;
	}
	return 0;
}

json_t *
jail_config_to_json(const struct jail_config *cfg)
{
	json_t *o = json_object();
	const char *s;
	size_t i;

	for (i = 0; cfg != NULL && i < JAIL_NKEYS; i++) {
		s = *jail_field((struct jail_config *)cfg, i);
		if (s != NULL)
			json_object_set_new(o, jail_keys[i].key, json_string(s));
	}
	return o;
}

static const char *const priv_names[] = {
        [PRIV_MODE_MDO] = "mdo",
        [PRIV_MODE_HELPER] = "helper",
        [PRIV_MODE_SUDO] = "sudo",
        [PRIV_MODE_NONE] = "none",
};

int
priv_mode_parse(const char *value, enum priv_mode *out, char **cause)
{
	size_t i;

	*cause = NULL;
	if (value == NULL || *value == '\0') {
		*out = PRIV_MODE_MDO;
		return 0;
	}
	for (i = 0; i < sizeof priv_names / sizeof priv_names[0]; i++) {
		if (strcmp(value, priv_names[i]) == 0) {
			*out = (enum priv_mode)i;
			return 0;
		}
	}
	xasprintf(cause, "COLIBRI_JAIL_PRIV_MODE=\"%s\" is not one of mdo, helper, sudo, none",
	          value);
	return -1;
}

const char *
priv_mode_name(enum priv_mode mode)
{
	if ((size_t)mode >= sizeof priv_names / sizeof priv_names[0])
		return "unknown";
	return priv_names[mode];
}

const char *
priv_helper_path(void)
{
	return COLIBRI_LIBEXECDIR "/colibri-jail-spawn";
}

struct confine_cmd *
confine_cmd_new(void)
{
	struct confine_cmd *c = xcalloc(1, sizeof *c);

	c->argv = xcalloc(1, sizeof *c->argv);
	return c;
}

void
confine_cmd_add(struct confine_cmd *c, const char *arg)
{
	c->argv = xreallocarray(c->argv, c->argc + 2, sizeof *c->argv);
	c->argv[c->argc++] = xstrdup(arg);
	c->argv[c->argc] = NULL;
	if (c->argc == 1)
		c->program = xstrdup(arg);
}

void
confine_cmd_addf(struct confine_cmd *c, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	xvasprintf(&s, fmt, ap);
	va_end(ap);
	confine_cmd_add(c, s);
	free(s);
}

void
confine_cmd_free(struct confine_cmd *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	free(c->program);
	free(c);
}

char *
confine_cmd_join(const struct confine_cmd *c)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < c->argc; i++) {
		if (i > 0)
			buf_addc(&b, ' ');
		buf_adds(&b, c->argv[i]);
	}
	buf_cstr(&b);
	if (b.data == NULL)
		return xstrdup("");
	return b.data;
}

static void
jail_add_prefix(struct confine_cmd *c, enum priv_mode mode)
{
	switch (mode) {
	case PRIV_MODE_MDO:
		confine_cmd_add(c, "mdo");
		confine_cmd_add(c, "-u");
		confine_cmd_add(c, "root");
		break;
	case PRIV_MODE_SUDO:
		confine_cmd_add(c, "sudo");
		confine_cmd_add(c, "-n");
		break;
	case PRIV_MODE_HELPER:
	case PRIV_MODE_NONE:
		break;
	}
}

static void
jail_add_args(struct confine_cmd *c, const char *const *args)
{
	for (; args != NULL && *args != NULL; args++)
		confine_cmd_add(c, *args);
}

/*
 * The helper request: exec -U USER NAME | create [-4 IP4] -U USER PATH, then
 * -- binary.  The user is there by jail_config_check_mode; without one the
 * helper refuses the request itself.
 */
static void
jail_wrap_helper(struct confine_cmd *c, const struct jail_config *cfg, const char *binary)
{
	confine_cmd_add(c, priv_helper_path());
	confine_cmd_add(c, cfg->name != NULL ? "exec" : "create");
	if (cfg->name == NULL && cfg->ip4 != NULL) {
		confine_cmd_add(c, "-4");
		confine_cmd_add(c, cfg->ip4);
	}
	if (cfg->user != NULL) {
		confine_cmd_add(c, "-U");
		confine_cmd_add(c, cfg->user);
	}
	confine_cmd_add(c, cfg->name != NULL ? cfg->name : cfg->path);
	confine_cmd_add(c, "--");
	confine_cmd_add(c, binary);
}

static void
jail_wrap_jexec(struct confine_cmd *c, const struct jail_config *cfg, const char *binary)
{
	confine_cmd_add(c, "jexec");
	if (cfg->user != NULL) {
		confine_cmd_add(c, "-U");
		confine_cmd_add(c, cfg->user);
	}
	confine_cmd_add(c, cfg->name);
	confine_cmd_add(c, binary);
}

static void
jail_wrap_create(struct confine_cmd *c, const struct jail_config *cfg, const char *binary)
{
	char name[JAIL_EPHEMERAL_NAME_SIZE];

	jail_ephemeral_name(cfg->path, name, sizeof name);
	confine_cmd_add(c, "jail");
	confine_cmd_add(c, "-c");
	confine_cmd_addf(c, "path=%s", cfg->path);
	confine_cmd_addf(c, "name=%s", name);
	if (cfg->ip4 == NULL || strcmp(cfg->ip4, "inherit") == 0)
		confine_cmd_add(c, "ip4=inherit");
	else if (strcmp(cfg->ip4, "disable") == 0)
		confine_cmd_add(c, "ip4=disable");
	else
		confine_cmd_addf(c, "ip4.addr=%s", cfg->ip4);
	if (cfg->user != NULL)
		confine_cmd_addf(c, "exec.jail_user=%s", cfg->user);
	confine_cmd_addf(c, "command=%s", binary);
}

struct confine_cmd *
jail_wrap(enum priv_mode mode, const struct jail_config *cfg, const char *binary,
          const char *const *args)
{
	struct confine_cmd *c = confine_cmd_new();

	if (!jail_config_active(cfg))
		confine_cmd_add(c, binary);
	else if (mode == PRIV_MODE_HELPER)
		jail_wrap_helper(c, cfg, binary);
	else {
		jail_add_prefix(c, mode);
		if (cfg->name != NULL)
			jail_wrap_jexec(c, cfg, binary);
		else
			jail_wrap_create(c, cfg, binary);
	}
	jail_add_args(c, args);
	return c;
}
