/*
 * test_confine.c -- JailConfig parsing, jail_wrap in every combination, the
 * bubblewrap argv, env.sh quoting (round trip through /bin/sh), launch.sh's
 * status file, stage containment and removal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "confine/confine.h"
#include "confine/jail-name.h"

/* ---- helpers ---------------------------------------------------------- */

static char *
join_cmd(const struct confine_cmd *c)
{
	assert_non_null(c);
	assert_non_null(c->argv);
	assert_null(c->argv[c->argc]);
	assert_string_equal(c->program, c->argv[0]);
	return confine_cmd_join(c);
}

static int
cmd_has_seq(const struct confine_cmd *c, const char *a, const char *b, const char *d)
{
	size_t i;

	for (i = 0; i < c->argc; i++) {
		if (strcmp(c->argv[i], a) != 0)
			continue;
		if (b != NULL && (i + 1 >= c->argc || strcmp(c->argv[i + 1], b) != 0))
			continue;
		if (d != NULL && (i + 2 >= c->argc || strcmp(c->argv[i + 2], d) != 0))
			continue;
		return 1;
	}
	return 0;
}

static char *
make_tmpdir(void)
{
	char tmpl[] = "/tmp/test-confine-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return xstrdup(d);
}

static void
rm_rf(const char *dir)
{
	char *cmd;

	xasprintf(&cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static json_t *
jparse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);

	assert_non_null(j);
	return j;
}

/* ---- jail_config_parse / priv_mode ---------------------------------- */

static void
test_parse_ok(void **state)
{
	struct jail_config cfg;
	json_t *j = jparse("{\"name\":\"agent-1\",\"path\":\"/j/a\",\"root_path\":\"/j/a/root\","
	                   "\"ip4\":\"10.0.0.5\",\"user\":\"clawdie\"}");
	char *cause = NULL;

	(void)state;
	assert_int_equal(jail_config_parse(j, &cfg, &cause), 0);
	assert_string_equal(cfg.name, "agent-1");
	assert_string_equal(cfg.path, "/j/a");
	assert_string_equal(cfg.root_path, "/j/a/root");
	assert_string_equal(cfg.ip4, "10.0.0.5");
	assert_string_equal(cfg.user, "clawdie");
	assert_string_equal(jail_config_root(&cfg), "/j/a/root");
	assert_true(jail_config_active(&cfg));
	jail_config_clear(&cfg);
	json_decref(j);

	/* ip4 "none" is stored as "disable": one spelling for both backends. */
	j = jparse("{\"path\":\"/j/a\",\"ip4\":\"none\"}");
	assert_int_equal(jail_config_parse(j, &cfg, &cause), 0);
	assert_string_equal(cfg.ip4, "disable");
	jail_config_clear(&cfg);
	json_decref(j);

	j = jparse("{\"name\":null,\"path\":\"/j/b\"}");
	assert_int_equal(jail_config_parse(j, &cfg, &cause), 0);
	assert_null(cfg.name);
	assert_string_equal(jail_config_root(&cfg), "/j/b");
	jail_config_clear(&cfg);
	json_decref(j);

	assert_int_equal(jail_config_parse(NULL, &cfg, &cause), 0);
	assert_false(jail_config_active(&cfg));
	j = jparse("{}");
	assert_int_equal(jail_config_parse(j, &cfg, &cause), 0);
	assert_false(jail_config_active(&cfg));
	assert_null(jail_config_root(&cfg));
	json_decref(j);
}

static void
expect_parse_error(const char *json, const char *needle)
{
	struct jail_config cfg;
	json_t *j = jparse(json);
	char *cause = NULL;

	assert_int_equal(jail_config_parse(j, &cfg, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, needle) == NULL)
		fail_msg("cause \"%s\" lacks \"%s\" for %s", cause, needle, json);
	assert_null(cfg.name);
	assert_null(cfg.path);
	free(cause);
	json_decref(j);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	expect_parse_error("{\"nmae\":\"x\"}", "unknown key \"nmae\"");
	expect_parse_error("{\"path\":\"/a\",\"extra\":1}", "unknown key \"extra\"");
	expect_parse_error("[]", "must be an object");
	expect_parse_error("{\"name\":5}", "jail.name must be a string");
	expect_parse_error("{\"name\":\"\"}", "jail.name must not be empty");
	expect_parse_error("{\"name\":\"a/b\"}", "jail.name may contain only");
	expect_parse_error("{\"name\":\"a..b\"}", "jail.name must not contain \"..\"");
	expect_parse_error("{\"name\":\"..\"}", "jail.name must not contain \"..\"");
	expect_parse_error("{\"name\":\"-rf\"}", "jail.name must not start with '-'");
	expect_parse_error("{\"name\":\"42\"}", "jail.name must not be all digits");
	expect_parse_error("{\"name\":\"a b\"}", "jail.name may contain only");
	expect_parse_error(
	        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	        "jail.name is too long");
	expect_parse_error("{\"path\":\"jails/a\"}", "jail.path must be an absolute path");
	expect_parse_error("{\"path\":\"/jails/../etc\"}", "jail.path must not contain");
	expect_parse_error("{\"root_path\":\"/a/./b\"}", "jail.root_path must not contain");
	expect_parse_error("{\"root_path\":\"/a\\nb\"}", "control characters");
	expect_parse_error("{\"path\":\"/a\\u0000b\"}", "NUL");
	expect_parse_error("{\"ip4\":\"10.0.0.999\"}", "jail.ip4 must be a dotted IPv4");
	expect_parse_error("{\"ip4\":\"any\"}", "jail.ip4");
	expect_parse_error("{\"ip4\":\"None\"}", "jail.ip4");
	expect_parse_error("{\"user\":\"-U\"}", "jail.user must not start with '-'");
	expect_parse_error("{\"user\":\"a;b\"}", "jail.user may contain only");
}

static void
test_validators(void **state)
{
	char name[JAIL_EPHEMERAL_NAME_SIZE];

	(void)state;
	assert_null(jail_name_check("a"));
	assert_null(jail_name_check("A_b.c-9"));
	assert_null(jail_name_check(
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_non_null(jail_name_check(NULL));
	assert_null(jail_ip4_check("inherit"));
	assert_null(jail_ip4_check("disable"));
	assert_null(jail_ip4_check("none"));
	assert_null(jail_ip4_check("192.168.1.10"));
	assert_null(stage_id_check("agent-7"));
	assert_non_null(stage_id_check("."));
	assert_non_null(stage_id_check("a/b"));
	jail_ephemeral_name("/usr/local/bastille/jails/dev.box/root/", name, sizeof name);
	assert_string_equal(name, "colibri-root");
	jail_ephemeral_name("/jails/dev.box", name, sizeof name);
	assert_string_equal(name, "colibri-dev_box");
	jail_ephemeral_name("/", name, sizeof name);
	assert_string_equal(name, "colibri-root");
	jail_ephemeral_name("/j/a b:c", name, sizeof name);
	assert_string_equal(name, "colibri-a_b_c");
}

static void
test_priv_mode(void **state)
{
	enum priv_mode m;
	char *cause = NULL;

	(void)state;
	assert_int_equal(priv_mode_parse(NULL, &m, &cause), 0);
	assert_int_equal(m, PRIV_MODE_MDO);
	assert_int_equal(priv_mode_parse("", &m, &cause), 0);
	assert_int_equal(m, PRIV_MODE_MDO);
	assert_int_equal(priv_mode_parse("helper", &m, &cause), 0);
	assert_int_equal(m, PRIV_MODE_HELPER);
	assert_int_equal(priv_mode_parse("sudo", &m, &cause), 0);
	assert_int_equal(m, PRIV_MODE_SUDO);
	assert_int_equal(priv_mode_parse("none", &m, &cause), 0);
	assert_int_equal(m, PRIV_MODE_NONE);
	assert_string_equal(priv_mode_name(PRIV_MODE_HELPER), "helper");
	assert_int_equal(priv_mode_parse("MDO", &m, &cause), -1);
	assert_non_null(strstr(cause, "COLIBRI_JAIL_PRIV_MODE=\"MDO\""));
	free(cause);
	assert_int_equal(priv_mode_parse("root", &m, &cause), -1);
	free(cause);
}

/* ---- jail_wrap: golden cases and every combination -------------------- */

static const char *const wrap_args[] = {"--mode", "json", "it's a \"prompt\"", NULL};

static void
expect_wrap(enum priv_mode m, const struct jail_config *cfg, const char *want)
{
	struct confine_cmd *c = jail_wrap(m, cfg, "/usr/local/bin/pi", wrap_args);
	char *got = join_cmd(c);

	assert_string_equal(got, want);
	free(got);
	confine_cmd_free(c);
}

static void
test_wrap_golden(void **state)
{
	struct jail_config cfg = {0};

	(void)state;
	expect_wrap(PRIV_MODE_MDO, &cfg, "/usr/local/bin/pi --mode json it's a \"prompt\"");
	cfg.name = "dev";
	expect_wrap(PRIV_MODE_MDO, &cfg,
	            "mdo -u root jexec dev /usr/local/bin/pi --mode json it's a \"prompt\"");
	cfg.user = "clawdie";
	expect_wrap(PRIV_MODE_SUDO, &cfg,
	            "sudo -n jexec -U clawdie dev /usr/local/bin/pi --mode json it's a \"prompt\"");
	cfg.name = NULL;
	cfg.path = "/j/dev";
	cfg.ip4 = "10.1.2.3";
	expect_wrap(PRIV_MODE_NONE, &cfg,
	            "jail -c path=/j/dev name=colibri-dev ip4.addr=10.1.2.3 exec.jail_user=clawdie "
	            "command=/usr/local/bin/pi --mode json it's a \"prompt\"");
	expect_wrap(PRIV_MODE_HELPER, &cfg,
	            COLIBRI_LIBEXECDIR
	            "/colibri-jail-spawn create -4 10.1.2.3 -U clawdie /j/dev -- "
	            "/usr/local/bin/pi --mode json it's a \"prompt\"");
}

/* An independent statement of the contract, built clause by clause. */
static void
wrap_expected(struct buf *b, enum priv_mode m, const struct jail_config *cfg)
{
	const char *ip = cfg->ip4;

	if (cfg->name == NULL && cfg->path == NULL) {
		buf_adds(b, "/usr/local/bin/pi");
		goto args;
	}
	if (m == PRIV_MODE_HELPER) {
		buf_adds(b, COLIBRI_LIBEXECDIR "/colibri-jail-spawn");
		buf_adds(b, cfg->name != NULL ? " exec" : " create");
		if (cfg->name == NULL && ip != NULL)
			buf_printf(b, " -4 %s", ip);
		if (cfg->user != NULL)
			buf_printf(b, " -U %s", cfg->user);
		buf_printf(b, " %s -- /usr/local/bin/pi",
		           cfg->name != NULL ? cfg->name : cfg->path);
		goto args;
	}
	buf_adds(b, m == PRIV_MODE_MDO ? "mdo -u root " : m == PRIV_MODE_SUDO ? "sudo -n " : "");
	if (cfg->name != NULL) {
		buf_adds(b, "jexec");
		if (cfg->user != NULL)
			buf_printf(b, " -U %s", cfg->user);
		buf_printf(b, " %s /usr/local/bin/pi", cfg->name);
		goto args;
	}
	buf_printf(b, "jail -c path=%s name=colibri-jdir", cfg->path);
	if (ip == NULL || strcmp(ip, "inherit") == 0)
		buf_adds(b, " ip4=inherit");
	else if (strcmp(ip, "disable") == 0)
		buf_adds(b, " ip4=disable");
	else
		buf_printf(b, " ip4.addr=%s", ip);
	if (cfg->user != NULL)
		buf_printf(b, " exec.jail_user=%s", cfg->user);
	buf_adds(b, " command=/usr/local/bin/pi");
args:
	buf_adds(b, " --mode json it's a \"prompt\"");
}

static void
test_wrap_every_combination(void **state)
{
	static const enum priv_mode modes[] = {PRIV_MODE_MDO, PRIV_MODE_HELPER, PRIV_MODE_SUDO,
	                                       PRIV_MODE_NONE};
	static const char *const users[] = {NULL, "clawdie"};
	static const char *const ips[] = {NULL, "inherit", "disable", "10.0.0.9"};
	struct jail_config cfg;
	struct buf want;
	size_t m, sel, u, ip, count = 0;
	struct confine_cmd *c;
	char *got;

	(void)state;
	for (m = 0; m < 4; m++)
		for (sel = 0; sel < 4; sel++)
			for (u = 0; u < 2; u++)
				for (ip = 0; ip < 4; ip++) {
					memset(&cfg, 0, sizeof cfg);
					cfg.name = (sel & 1) ? "box" : NULL;
					cfg.path = (sel & 2) ? "/jails/jdir" : NULL;
					cfg.user = (char *)users[u];
					cfg.ip4 = (char *)ips[ip];
					buf_init(&want);
					wrap_expected(&want, modes[m], &cfg);
					c = jail_wrap(modes[m], &cfg, "/usr/local/bin/pi",
					              wrap_args);
					got = join_cmd(c);
					if (strcmp(got, buf_cstr(&want)) != 0)
						fail_msg("mode %s sel %zu user %zu ip %zu:\n got  "
						         "%s\n "
						         "want %s",
						         priv_mode_name(modes[m]), sel, u, ip, got,
						         buf_cstr(&want));
					/* argv stays separate: the prompt is one argument. */
					assert_string_equal(c->argv[c->argc - 1], wrap_args[2]);
					free(got);
					buf_free(&want);
					confine_cmd_free(c);
					count++;
				}
	assert_int_equal(count, 128);
}

static void
test_wrap_no_args(void **state)
{
	struct jail_config cfg = {.name = "box"};
	struct confine_cmd *c = jail_wrap(PRIV_MODE_NONE, &cfg, "/bin/sh", NULL);

	(void)state;
	assert_int_equal(c->argc, 3);
	assert_string_equal(c->program, "jexec");
	assert_string_equal(c->argv[2], "/bin/sh");
	confine_cmd_free(c);
}

/* ---- bubblewrap ------------------------------------------------------- */

static void
host_merged(struct bwrap_host *h)
{
	memset(h, 0, sizeof *h);
	h->present[0] = h->present[1] = h->present[2] = h->present[3] = 1;
	h->link[0] = xstrdup("usr/bin");
	h->link[1] = xstrdup("usr/sbin");
	h->link[2] = xstrdup("usr/lib");
	h->link[3] = xstrdup("usr/lib64");
}

static struct confine_cmd *
bwrap_for(struct jail_config *cfg, const struct bwrap_host *h, const char *stage, const char *agent)
{
	static const char *const args[] = {"/r/home/clawdie/.cache/colibri/stage/a1/launch.sh",
	                                   NULL};
	static const char *const extra[] = {"/opt/node", NULL};
	struct bwrap_spec s = {.cfg = cfg,
	                       .root = "/r",
	                       .stage_dir = stage,
	                       .agent_binary = agent,
	                       .ro_paths = extra,
	                       .host = h,
	                       .program = "/bin/sh",
	                       .args = args};
	char *cause = NULL;
	struct confine_cmd *c = bwrap_wrap(&s, &cause);

	assert_null(cause);
	return c;
}

static void
test_bwrap_argv(void **state)
{
	struct jail_config cfg = {.path = "/r", .user = "clawdie"};
	struct bwrap_host h;
	struct confine_cmd *c;

	(void)state;
	host_merged(&h);
	c = bwrap_for(&cfg, &h, "/r/home/clawdie/.cache/colibri/stage/a1", "/opt/pi/bin/pi");
	assert_string_equal(c->program, "bwrap");
	assert_true(cmd_has_seq(c, "--unshare-all", NULL, NULL));
	assert_true(cmd_has_seq(c, "--cap-drop", "ALL", NULL));
	assert_true(cmd_has_seq(c, "--die-with-parent", NULL, NULL));
	assert_true(cmd_has_seq(c, "--new-session", NULL, NULL));
	/* ip4 unset: the host's network, as a FreeBSD jail's ip4=inherit (issue 17). */
	assert_true(cmd_has_seq(c, "--share-net", NULL, NULL));
	assert_true(cmd_has_seq(c, "--ro-bind", "/usr", "/usr"));
	assert_true(cmd_has_seq(c, "--symlink", "usr/bin", "/bin"));
	assert_true(cmd_has_seq(c, "--symlink", "usr/lib64", "/lib64"));
	assert_false(cmd_has_seq(c, "--ro-bind", "/bin", "/bin"));
	assert_true(cmd_has_seq(c, "--ro-bind-try", "/etc/passwd", "/etc/passwd"));
	assert_false(cmd_has_seq(c, "--ro-bind", "/etc", "/etc"));
	assert_true(cmd_has_seq(c, "--proc", "/proc", NULL));
	assert_true(cmd_has_seq(c, "--dev", "/dev", NULL));
	assert_true(cmd_has_seq(c, "--tmpfs", "/tmp", NULL));
	assert_true(cmd_has_seq(c, "--bind", "/r", "/r"));
	assert_false(cmd_has_seq(c, "--bind", "/r/home/clawdie/.cache/colibri/stage/a1", NULL));
	assert_true(cmd_has_seq(c, "--ro-bind", "/opt/pi/bin", "/opt/pi/bin"));
	assert_true(cmd_has_seq(c, "--ro-bind-try", "/opt/node", "/opt/node"));
	assert_true(cmd_has_seq(c, "--hostname", "colibri-r", NULL));
	assert_true(cmd_has_seq(c, "--clearenv", NULL, NULL));
	assert_true(cmd_has_seq(c, "--setenv", "HOME", "/r/home/clawdie"));
	assert_true(cmd_has_seq(c, "--setenv", "USER", "clawdie"));
	assert_true(cmd_has_seq(c, "--chdir", "/r", NULL));
	assert_true(cmd_has_seq(c, "--remount-ro", "/", NULL));
	assert_string_equal(c->argv[c->argc - 3], "--");
	assert_string_equal(c->argv[c->argc - 2], "/bin/sh");
	assert_string_equal(c->argv[c->argc - 1],
	                    "/r/home/clawdie/.cache/colibri/stage/a1/launch.sh");
	confine_cmd_free(c);

	/* ip4 set: network shared; name -> hostname; stage outside the root is bound. */
	cfg.ip4 = "10.0.0.2";
	cfg.name = "box";
	c = bwrap_for(&cfg, &h, "/var/stage/a1", "/usr/bin/pi");
	assert_true(cmd_has_seq(c, "--share-net", NULL, NULL));
	assert_true(cmd_has_seq(c, "--hostname", "box", NULL));
	assert_true(cmd_has_seq(c, "--bind", "/var/stage/a1", "/var/stage/a1"));
	assert_false(cmd_has_seq(c, "--ro-bind", "/usr/bin", "/usr/bin"));
	confine_cmd_free(c);
	cfg.ip4 = "inherit";
	c = bwrap_for(&cfg, &h, NULL, NULL);
	assert_true(cmd_has_seq(c, "--share-net", NULL, NULL));
	confine_cmd_free(c);
	cfg.ip4 = "disable";
	c = bwrap_for(&cfg, &h, NULL, "/tmp/agent");
	assert_false(cmd_has_seq(c, "--share-net", NULL, NULL));
	assert_true(cmd_has_seq(c, "--ro-bind", "/tmp", "/tmp"));
	confine_cmd_free(c);
	bwrap_host_clear(&h);
}

static void
test_bwrap_classic_host_and_errors(void **state)
{
	struct jail_config cfg = {.path = "/r"};
	struct bwrap_host h;
	struct bwrap_spec s = {.cfg = &cfg, .root = "/", .host = &h, .program = "/bin/sh"};
	struct confine_cmd *c;
	char *cause = NULL;

	(void)state;
	memset(&h, 0, sizeof h);
	h.present[0] = h.present[2] = 1; /* /bin and /lib are real directories */
	c = bwrap_for(&cfg, &h, NULL, NULL);
	assert_true(cmd_has_seq(c, "--ro-bind", "/bin", "/bin"));
	assert_true(cmd_has_seq(c, "--ro-bind", "/lib", "/lib"));
	assert_false(cmd_has_seq(c, "--ro-bind", "/lib64", "/lib64"));
	assert_false(cmd_has_seq(c, "--symlink", "usr/bin", "/bin"));
	confine_cmd_free(c);

	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "whole host"));
	free(cause);
	s.root = NULL;
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "root_path or path"));
	free(cause);
}

/* The daemon's own paths: every bind that would show one is refused, with the reason. */
static void
test_bwrap_privates_refused(void **state)
{
	static const struct bwrap_private priv[] = {
	        {"/var/db/colibri", "state directory", 1, 1},
	        {"/run/colibri/colibri.sock", "socket", 0, 1},
	        {"/usr/local/etc/colibri", "configuration directory", 1, 1},
	        {"/usr/local/etc/colibri-gone", "configuration directory", 1, 0},
	        {"/usr/share/colibri/provider.env", "provider.env", 0, 1},
	};
	static const char *const args[] = {"/r/launch.sh", NULL};
	static const char *const ro_bad[] = {"/var/db", NULL};
	struct jail_config cfg = {.path = "/r"};
	struct bwrap_host h;
	struct bwrap_spec s = {.cfg = &cfg,
	                       .root = "/r",
	                       .host = &h,
	                       .program = "/bin/sh",
	                       .args = args,
	                       .privates = priv,
	                       .nprivates = 5};
	struct confine_cmd *c;
	char *cause = NULL;

	(void)state;
	host_merged(&h);
	/* Allowed: nothing overlaps.  Covered: the private paths a system bind shows. */
	c = bwrap_wrap(&s, &cause);
	assert_non_null(c);
	assert_true(cmd_has_seq(c, "--tmpfs", "/usr/local/etc/colibri", NULL));
	assert_false(cmd_has_seq(c, "--tmpfs", "/usr/local/etc/colibri-gone", NULL));
	assert_true(cmd_has_seq(c, "--ro-bind", "/dev/null", "/usr/share/colibri/provider.env"));
	assert_false(cmd_has_seq(c, "--tmpfs", "/var/db/colibri", NULL));
	confine_cmd_free(c);
	/* A root inside the state directory, and one that contains it. */
	s.root = "/var/db/colibri/jails/a";
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "lies inside the daemon's state directory"));
	free(cause);
	s.root = "/var";
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "contains the daemon's state directory /var/db/colibri"));
	free(cause);
	/* The socket's directory as a root. */
	s.root = "/run/colibri";
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "socket"));
	free(cause);
	/* A stage outside the root, the agent binary's directory, a read-only path. */
	s.root = "/r";
	s.stage_dir = "/var/db/colibri/stage/a1";
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "stage directory"));
	free(cause);
	s.stage_dir = NULL;
	s.agent_binary = "/var/db/colibri/bin/pi";
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "the agent binary's directory /var/db/colibri/bin"));
	free(cause);
	s.agent_binary = "/var/db/colibri-other/pi"; /* a sibling with a common prefix is fine */
	c = bwrap_wrap(&s, &cause);
	assert_non_null(c);
	confine_cmd_free(c);
	s.agent_binary = NULL;
	s.ro_paths = ro_bad;
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "read-only path /var/db contains"));
	free(cause);
	assert_ptr_equal(bwrap_private_conflict("/usr/local/etc", priv, 5), &priv[2]);
	assert_null(bwrap_private_conflict("/usr/local/etc/colibri2", priv, 3));
	bwrap_host_clear(&h);
}

/* The directories an agent's program needs: bound read-only once, visible ones skipped. */
static void
test_bwrap_agent_dirs(void **state)
{
	static const char *const args[] = {"/r/launch.sh", NULL};
	static const char *const dirs[] = {"/opt/app/node_modules/.bin",
	                                   "/opt/app/node_modules/pkg/bin",
	                                   "/opt/app/node_modules",
	                                   "/opt/app/node_modules",
	                                   "/usr/lib/node",
	                                   "/r/inside",
	                                   "/opt/node/bin",
	                                   NULL};
	static const char *const bad[] = {"/var/db/colibri/lib", NULL};
	static const char *const rel[] = {"opt/x", NULL};
	static const struct bwrap_private priv[] = {{"/var/db/colibri", "state directory", 1, 1}};
	struct jail_config cfg = {.path = "/r"};
	struct bwrap_host h;
	struct bwrap_spec s = {.cfg = &cfg,
	                       .root = "/r",
	                       .host = &h,
	                       .program = "/bin/sh",
	                       .args = args,
	                       .agent_dirs = dirs,
	                       .path_first = "/opt/node/bin",
	                       .privates = priv,
	                       .nprivates = 1};
	struct confine_cmd *c;
	char *cause = NULL;
	size_t i, n = 0;

	(void)state;
	host_merged(&h);
	c = bwrap_wrap(&s, &cause);
	assert_non_null(c);
	assert_true(cmd_has_seq(c, "--ro-bind", "/opt/app/node_modules", "/opt/app/node_modules"));
	assert_true(cmd_has_seq(c, "--ro-bind", "/opt/node/bin", "/opt/node/bin"));
	assert_false(cmd_has_seq(c, "--ro-bind", "/opt/app/node_modules/.bin", NULL));
	assert_false(cmd_has_seq(c, "--ro-bind", "/opt/app/node_modules/pkg/bin", NULL));
	assert_false(cmd_has_seq(c, "--ro-bind", "/usr/lib/node", NULL));
	assert_false(cmd_has_seq(c, "--ro-bind", "/r/inside", NULL));
	for (i = 0; i < c->argc; i++)
		n += strcmp(c->argv[i], "/opt/app/node_modules") == 0;
	assert_int_equal(n, 2); /* one bind: source and destination */
	assert_true(cmd_has_seq(c, "--setenv", "PATH",
	                        "/opt/node/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
	confine_cmd_free(c);
	/* An interpreter the system binds show anyway leaves PATH alone. */
	s.path_first = "/usr/bin";
	c = bwrap_wrap(&s, &cause);
	assert_true(
	        cmd_has_seq(c, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
	confine_cmd_free(c);
	/* Never the daemon's files, never a relative directory. */
	s.agent_dirs = bad;
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "the agent program's directory /var/db/colibri/lib lies "
	                              "inside the daemon's state directory"));
	free(cause);
	s.agent_dirs = rel;
	assert_null(bwrap_wrap(&s, &cause));
	assert_non_null(strstr(cause, "opt/x is not absolute"));
	free(cause);
	bwrap_host_clear(&h);
}

static void
expect_interp(const char *head, const char *want)
{
	char *got = bwrap_shebang_interp(head, strlen(head));

	if (want == NULL)
		assert_null(got);
	else
		assert_string_equal(got, want);
	free(got);
}

static void
test_bwrap_shebang(void **state)
{
	char *t;

	(void)state;
	expect_interp("#!/usr/bin/env node\nconsole.log(1)\n", "node");
	expect_interp("#!/usr/bin/env -S node --no-warnings\n", "node");
	expect_interp("#! /usr/local/bin/node\n", "/usr/local/bin/node");
	expect_interp("#!/usr/bin/python3 -u\r\n", "/usr/bin/python3");
	expect_interp("#!/bin/sh", "/bin/sh");
	expect_interp("#!/usr/bin/env\n", NULL);
	expect_interp("#!/usr/bin/env FOO=1 node\n", NULL);
	expect_interp("#!node\n", NULL);
	expect_interp("\x7f"
	              "ELF\x02\x01",
	              NULL);
	expect_interp("#!", NULL);
	expect_interp("", NULL);
	/* Only the first line counts. */
	expect_interp("#!\n/usr/bin/node\n", NULL);
	assert_null(bwrap_shebang_interp("#!/usr/bin/env node", 2));
	t = bwrap_node_modules_top("/opt/a/node_modules/@s/pkg/node_modules/dep/cli.js");
	assert_string_equal(t, "/opt/a/node_modules");
	free(t);
	t = bwrap_node_modules_top("/opt/a/node_modules");
	assert_string_equal(t, "/opt/a/node_modules");
	free(t);
	assert_null(bwrap_node_modules_top("/opt/a/node_modules_x/pkg"));
	assert_null(bwrap_node_modules_top("/opt/pi/bin/pi"));
}

/* A spawn's ro_paths: absolute and written canonically, or the reason. */
static void
test_bwrap_ro_path_check(void **state)
{
	(void)state;
	assert_null(bwrap_ro_path_check("/srv/models"));
	assert_null(bwrap_ro_path_check("/srv/.cache/m..x"));
	assert_string_equal(bwrap_ro_path_check("srv/models"), "is not absolute");
	assert_string_equal(bwrap_ro_path_check(""), "is not absolute");
	assert_non_null(strstr(bwrap_ro_path_check("/"), "the whole host"));
	assert_non_null(strstr(bwrap_ro_path_check("/srv/"), "not canonical"));
	assert_non_null(strstr(bwrap_ro_path_check("/srv//m"), "not canonical"));
	assert_non_null(strstr(bwrap_ro_path_check("/srv/./m"), "not canonical"));
	assert_non_null(strstr(bwrap_ro_path_check("/srv/../etc"), "not canonical"));
	assert_non_null(strstr(bwrap_ro_path_check("/srv/.."), "not canonical"));
}

static void
test_bwrap_host_probe(void **state)
{
	struct bwrap_host h;
	struct stat st;

	(void)state;
	bwrap_host_probe(&h);
	/* /bin exists on every host this runs on: either a symlink or a directory. */
	assert_int_equal(lstat("/bin", &st), 0);
	assert_true(h.present[0]);
	assert_int_equal(h.link[0] != NULL, S_ISLNK(st.st_mode));
	bwrap_host_clear(&h);
}

/* ---- stage: env.sh, launch.sh, status, containment, removal -------- */

struct fx {
	char *tmp;
	char *root;
};

static int
fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);

	f->tmp = make_tmpdir();
	f->root = path_join(f->tmp, "jails/a/root");
	assert_int_equal(mkdir_p(f->root, 0755), 0);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	rm_rf(f->tmp);
	free(f->tmp);
	free(f->root);
	free(f);
	return 0;
}

static struct stage *
stage_ok(const char *root, const char *id, const char *override, const char *base)
{
	char *cause = NULL;
	struct stage *st = stage_create(root, id, override, base, &cause);

	if (st == NULL)
		fail_msg("stage_create: %s", cause);
	return st;
}

/* Run `. ./env.sh; printf %s "$name"` in dir and return the bytes printed. */
static char *
shell_value(const char *dir, const char *name, size_t *len)
{
	char *cmd;
	struct buf b;
	FILE *p;
	char chunk[512];
	size_t n;

	xasprintf(&cmd, "cd '%s' && . ./env.sh && printf %%s \"$%s\"", dir, name);
	p = popen(cmd, "r");
	assert_non_null(p);
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
		buf_add(&b, chunk, n);
	assert_int_equal(pclose(p), 0);
	free(cmd);
	*len = buf_used(&b);
	buf_cstr(&b);
	return b.data != NULL ? b.data : xstrdup("");
}

static void
test_env_round_trip(void **state)
{
	struct fx *f = *state;
	static char all_bytes[256];
	const char *values[] = {
	        "",
	        "plain",
	        "it's",
	        "'",
	        "''",
	        "'\\''",
	        "$(touch /tmp/colibri-pwned)",
	        "`touch /tmp/colibri-pwned`",
	        "back\\slash\\",
	        "-n",
	        "--",
	        "-e \\n",
	        "line1\nline2\n",
	        "\n",
	        "\n\n",
	        "héllo ✓ 日本",
	        "${HOME}",
	        "$HOME",
	        "*",
	        "a  b\tc",
	        "\"dq\"",
	        "!event",
	        "%s%n",
	        "~",
	        all_bytes,
	};
	size_t n = sizeof values / sizeof values[0], i, len;
	const char **names = xcalloc(n, sizeof *names);
	struct stage *st;
	struct stat sb;
	char *cause = NULL, *got, *envsh;
	int c;

	(void)state;
	unlink("/tmp/colibri-pwned"); /* the marker a broken quoting would create */
	for (c = 1; c < 256; c++)
		all_bytes[c - 1] = (char)c;
	for (i = 0; i < n; i++)
		xasprintf((char **)&names[n - 1 - i], "V_%02zu", i); /* reverse order */
	st = stage_ok(f->root, "env1", NULL, NULL);
	{
		const char **vals = xcalloc(n, sizeof *vals);

		for (i = 0; i < n; i++)
			vals[n - 1 - i] = values[i];
		assert_int_equal(stage_write_env(st, names, vals, n, &cause), 0);
		free(vals);
	}
	envsh = path_join(stage_host_dir(st), "env.sh");
	assert_int_equal(stat(envsh, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(stage_host_dir(st), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	for (i = 0; i < n; i++) {
		char name[8];

		snprintf(name, sizeof name, "V_%02zu", i);
		got = shell_value(stage_host_dir(st), name, &len);
		if (len != strlen(values[i]) || memcmp(got, values[i], len) != 0)
			fail_msg("value %zu did not survive env.sh (got %zu bytes)", i, len);
		free(got);
	}
	assert_int_equal(access("/tmp/colibri-pwned", F_OK), -1);
	for (i = 0; i < n; i++)
		free((char *)names[i]);
	free(names);
	free(envsh);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);
}

static char *
read_file(const char *path)
{
	struct buf b;
	char chunk[512];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	buf_init(&b);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	buf_cstr(&b);
	return b.data;
}

static void
test_env_sorted_and_quoted(void **state)
{
	struct fx *f = *state;
	const char *names[] = {"ZED", "ALPHA", "MID"};
	const char *values[] = {"z", "it's", ""};
	struct stage *st = stage_ok(f->root, "env2", NULL, NULL);
	char *cause = NULL, *path, *text;

	(void)state;
	assert_int_equal(stage_write_env(st, names, values, 3, &cause), 0);
	path = path_join(stage_host_dir(st), "env.sh");
	text = read_file(path);
	assert_non_null(strstr(text, "export ALPHA='it'\\''s'\nexport MID=''\nexport ZED='z'\n"));
	free(text);
	free(path);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);
}

static void
expect_env_refused(struct fx *f, const char *name, const char *needle)
{
	const char *names[] = {"OK", name};
	const char *values[] = {"1", "2"};
	struct stage *st = stage_ok(f->root, "bad", NULL, NULL);
	char *cause = NULL, *path;

	assert_int_equal(stage_write_env(st, names, values, 2, &cause), -1);
	if (strstr(cause, needle) == NULL)
		fail_msg("cause \"%s\" lacks \"%s\"", cause, needle);
	free(cause);
	path = path_join(stage_host_dir(st), "env.sh");
	assert_int_equal(access(path, F_OK), -1);
	free(path);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);
}

static void
test_env_invalid_names(void **state)
{
	struct fx *f = *state;
	json_t *j;
	struct stage *st;
	char *cause = NULL;

	expect_env_refused(f, "1ABC", "\"1ABC\" is not a valid shell identifier");
	expect_env_refused(f, "A-B", "\"A-B\" is not a valid shell identifier");
	expect_env_refused(f, "", "\"\" is not a valid shell identifier");
	expect_env_refused(f, "A B", "\"A B\"");
	expect_env_refused(f, "X;rm", "\"X;rm\"");
	expect_env_refused(f, "_colibri_rc", "reserved");
	expect_env_refused(f, "OK", "\"OK\" is given twice");

	st = stage_ok(f->root, "json", NULL, NULL);
	j = jparse("{\"A\":\"1\",\"B\":2}");
	assert_int_equal(stage_write_env_json(st, j, &cause), -1);
	assert_non_null(strstr(cause, "env.B must be a string"));
	free(cause);
	json_decref(j);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);
}

/* Run launch.sh on the host (no jail) and read the status the stage recorded. */
static void
run_launch(struct stage *st, const char *cwd, const char *binary, const char *const *args,
           struct stage_status *out, int *shell_rc)
{
	char *cause = NULL, *launch;
	int status;
	pid_t pid;

	assert_int_equal(stage_write_env_json(st, NULL, &cause), 0);
	assert_int_equal(stage_write_launch(st, cwd, binary, args, &cause), 0);
	launch = path_join(stage_host_dir(st), "launch.sh");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, 1);
		dup2(devnull, 2);
		execl("/bin/sh", "sh", launch, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	*shell_rc = WEXITSTATUS(status);
	free(launch);
	stage_read_status(st, out);
}

static void
test_launch_status(void **state)
{
	struct fx *f = *state;
	const char *exit7[] = {"-c", "cd /; [ \"$(pwd)\" = / ] && exit 7", NULL};
	const char *cwdchk[] = {"-c", "[ \"$(pwd -P)\" = \"$1\" ] || exit 9", "sh", NULL, NULL};
	const char *killself[] = {"-c", "kill -TERM $$", NULL};
	struct stage_status s;
	struct stage *st;
	char buf[32], *real;
	int rc;

	st = stage_ok(f->root, "s1", NULL, NULL);
	run_launch(st, NULL, "/bin/sh", exit7, &s, &rc);
	assert_int_equal(rc, 7);
	assert_int_equal(s.kind, STAGE_STATUS_EXITED);
	assert_int_equal(s.exit_code, 7);
	assert_string_equal(stage_status_str(&s, buf, sizeof buf), "exit 7");
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);

	real = realpath(f->root, NULL);
	cwdchk[3] = real;
	st = stage_ok(f->root, "s2", NULL, NULL);
	run_launch(st, real, "/bin/sh", cwdchk, &s, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(s.kind, STAGE_STATUS_EXITED);
	assert_int_equal(s.exit_code, 0);
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);
	free(real);

	st = stage_ok(f->root, "s3", NULL, NULL);
	run_launch(st, NULL, "/bin/sh", killself, &s, &rc);
	assert_int_equal(rc, 143);
	assert_int_equal(s.kind, STAGE_STATUS_SIGNALED);
	assert_int_equal(s.signal, 15);
	assert_string_equal(stage_status_str(&s, buf, sizeof buf), "signal 15");
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);

	st = stage_ok(f->root, "s4", NULL, NULL);
	run_launch(st, "/nonexistent/dir", "/bin/true", NULL, &s, &rc);
	assert_int_equal(rc, STAGE_SETUP_EXIT);
	assert_int_equal(s.kind, STAGE_STATUS_SETUP_FAILED);
	assert_string_equal(s.setup, "cwd");
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);
}

static void
write_status(struct stage *st, const char *text)
{
	char *p = path_join(stage_host_dir(st), "status");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	free(p);
}

static void
test_status_parsing(void **state)
{
	struct fx *f = *state;
	struct stage *st = stage_ok(f->root, "p1", NULL, NULL);
	struct stage_status s;
	char *p, *outside;

	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN);
	write_status(st, "exit 300\n");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN);
	write_status(st, "exit 3");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN);
	write_status(st, "exit -1\n");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN);
	write_status(st, "exit 128\n");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_EXITED);
	assert_int_equal(s.exit_code, 128);
	write_status(st, "exit 137\n");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_SIGNALED);
	assert_int_equal(s.signal, 9);
	write_status(st, "setup env\n");
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_SETUP_FAILED);
	assert_string_equal(s.setup, "env");

	/* A status planted as a symlink is not followed. */
	p = path_join(stage_host_dir(st), "status");
	outside = path_join(f->tmp, "fake-status");
	unlink(p);
	{
		int fd = open(outside, O_WRONLY | O_CREAT, 0600);

		assert_int_equal(write(fd, "exit 0\n", 7), 7);
		close(fd);
	}
	assert_int_equal(symlink(outside, p), 0);
	stage_read_status(st, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN);
	free(p);
	free(outside);
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);
}

static void
test_stage_containment(void **state)
{
	struct fx *f = *state;
	char *cause = NULL, *home, *outside, *base, *evil, *jails;
	struct stage *st;

	jails = path_join(f->tmp, "jails");
	/* The root must exist and lie strictly under the base when one is given. */
	st = stage_create(f->root, "c1", NULL, f->root, &cause);
	assert_null(st);
	assert_non_null(strstr(cause, "not strictly under"));
	free(cause);
	st = stage_create("/nonexistent/root", "c1", NULL, NULL, &cause);
	assert_null(st);
	free(cause);
	st = stage_create(f->root, "../x", NULL, NULL, &cause);
	assert_null(st);
	assert_non_null(strstr(cause, "stage id"));
	free(cause);

	/* A root that is a symlink leading outside the base is refused. */
	outside = path_join(f->tmp, "outside");
	assert_int_equal(mkdir(outside, 0755), 0);
	evil = path_join(jails, "evil");
	assert_int_equal(symlink(outside, evil), 0);
	st = stage_create(evil, "c1", NULL, jails, &cause);
	assert_null(st);
	assert_non_null(strstr(cause, "not strictly under"));
	free(cause);

	/* A symlink planted inside the jail (home -> outside) is refused, not followed. */
	home = path_join(f->root, "home");
	assert_int_equal(symlink(outside, home), 0);
	st = stage_create(f->root, "c1", NULL, jails, &cause);
	assert_null(st);
	assert_non_null(strstr(cause, "is a symlink"));
	free(cause);
	base = path_join(outside, "clawdie");
	assert_int_equal(access(base, F_OK), -1);
	unlink(home);

	/* Fine once the symlink is gone; an existing stage id is refused. */
	st = stage_ok(f->root, "c1", NULL, jails);
	assert_non_null(strstr(stage_host_dir(st), "/home/clawdie/.cache/colibri/stage/c1"));
	assert_string_equal(stage_jail_dir(st), "/home/clawdie/.cache/colibri/stage/c1");
	assert_null(stage_create(f->root, "c1", NULL, jails, &cause));
	assert_non_null(strstr(cause, "cannot create stage"));
	free(cause);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);

	free(base);
	free(home);
	free(evil);
	free(outside);
	free(jails);
}

static void
test_stage_override(void **state)
{
	struct fx *f = *state;
	char *inside = path_join(f->root, "var/stage"), *outside = path_join(f->tmp, "ext");
	struct stage *st;

	assert_int_equal(mkdir_p(inside, 0700), 0);
	assert_int_equal(mkdir_p(outside, 0700), 0);
	st = stage_ok(f->root, "o1", inside, NULL);
	assert_string_equal(stage_jail_dir(st), "/var/stage/o1");
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);

	st = stage_ok(f->root, "o2", outside, NULL);
	assert_null(stage_jail_dir(st));
	assert_non_null(strstr(stage_host_dir(st), "/ext/o2"));
	assert_int_equal(stage_remove(st, &(char *){NULL}), 0);
	stage_free(st);
	free(inside);
	free(outside);
}

static void
write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_stage_remove(void **state)
{
	struct fx *f = *state;
	struct stage *st = stage_ok(f->root, "r1", NULL, NULL);
	char *cause = NULL, *victim_dir, *victim, *p, *host;
	struct stat sb;

	victim_dir = path_join(f->tmp, "victim");
	assert_int_equal(mkdir(victim_dir, 0755), 0);
	victim = path_join(victim_dir, "keep.txt");
	write_text(victim, "precious");
	host = xstrdup(stage_host_dir(st));
	/* Whatever the agent left: nested dirs, a symlink to a file and to a dir outside. */
	p = path_join(host, "a/b/c");
	assert_int_equal(mkdir_p(p, 0755), 0);
	free(p);
	p = path_join(host, "a/b/c/file");
	write_text(p, "x");
	free(p);
	p = path_join(host, "link-file");
	assert_int_equal(symlink(victim, p), 0);
	free(p);
	p = path_join(host, "a/link-dir");
	assert_int_equal(symlink(victim_dir, p), 0);
	free(p);

	assert_int_equal(stage_remove(st, &cause), 0);
	assert_int_equal(lstat(host, &sb), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(victim, &sb), 0);        /* the symlink targets survive */
	assert_int_equal(stage_remove(st, &cause), 0); /* twice is fine */
	stage_free(st);

	free(host);
	free(victim);
	free(victim_dir);
}

static void
test_stage_replaced(void **state)
{
	struct fx *f = *state;
	struct stage *st = stage_ok(f->root, "r3", NULL, NULL);
	char *cause = NULL, *moved, *victim_dir, *victim;
	const char *host = stage_host_dir(st);
	struct stat sb;

	victim_dir = path_join(f->tmp, "victim2");
	assert_int_equal(mkdir(victim_dir, 0755), 0);
	victim = path_join(victim_dir, "keep.txt");
	write_text(victim, "precious");
	moved = path_join(f->tmp, "moved-stage");
	assert_int_equal(rename(host, moved), 0);
	assert_int_equal(symlink(victim_dir, host), 0);
	assert_int_equal(stage_remove(st, &cause), -1);
	assert_non_null(strstr(cause, "was replaced"));
	free(cause);
	assert_int_equal(stat(victim, &sb), 0);
	/* The real stage directory (wherever it went) was emptied through its descriptor. */
	assert_int_equal(rmdir(moved), 0);
	stage_free(st);
	free(moved);
	free(victim);
	free(victim_dir);
}

/* ---- confine_prepare -------------------------------------------------- */

static void
opts_for(struct confine_opts *o, enum confine_backend b, enum priv_mode m)
{
	memset(o, 0, sizeof *o);
	o->backend = b;
	o->priv = m;
	bwrap_host_probe(&o->host);
}

static void
put_file(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char *p = path_join(dir, rel), *slash = strrchr(p, '/');
	FILE *fp;

	*slash = '\0';
	assert_int_equal(mkdir_p(p, 0755), 0);
	*slash = '/';
	assert_non_null(fp = fopen(p, "w"));
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

/*
 * npm's layout (node_modules/.bin/x -> ../pkg/bin/x.js, `#!/usr/bin/env
 * mynode`, mynode found on PATH in a directory of its own): the hoisting
 * node_modules and the interpreter's directory are bound read-only, and the
 * interpreter's directory leads the sandbox's PATH.
 */
static void
test_prepare_agent_program(void **state)
{
	struct fx *f = *state;
	struct jail_config cfg = {.name = "box"};
	struct confine_opts o;
	struct confine_spawn *sp;
	char *cause = NULL, *nm, *bin, *nb, *link, *oldpath, *path, *want;
	const char *env_path = getenv("PATH");

	cfg.root_path = f->root;
	oldpath = xstrdup(env_path != NULL ? env_path : "/usr/bin:/bin");
	nm = path_join(f->tmp, "app/node_modules");
	put_file(nm, "pkg/package.json", "{}\n", 0644);
	put_file(nm, "pkg/bin/x.js", "#!/usr/bin/env mynode\n", 0755);
	put_file(nm, "dep/index.js", "\n", 0644);
	bin = path_join(nm, ".bin");
	assert_int_equal(mkdir(bin, 0755), 0);
	link = path_join(bin, "x");
	assert_int_equal(symlink("../pkg/bin/x.js", link), 0);
	nb = path_join(f->tmp, "nodehome/bin");
	assert_int_equal(mkdir_p(nb, 0755), 0);
	path = path_join(nb, "mynode");
	assert_int_equal(symlink("/bin/sh", path), 0);
	free(path);
	xasprintf(&path, "%s/missing:%s:%s", f->tmp, nb, oldpath);
	setenv("PATH", path, 1);
	free(path);
	opts_for(&o, CONFINE_BACKEND_BWRAP, PRIV_MODE_NONE);
	sp = confine_prepare(&o, &cfg, "pg1", link, NULL, NULL, NULL, &cause);
	setenv("PATH", oldpath, 1);
	assert_non_null(sp);
	assert_true(cmd_has_seq(sp->cmd, "--ro-bind", nm, nm));
	assert_true(cmd_has_seq(sp->cmd, "--ro-bind", nb, nb));
	assert_false(cmd_has_seq(sp->cmd, "--ro-bind", bin, bin));
	xasprintf(&want, "%s:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", nb);
	assert_true(cmd_has_seq(sp->cmd, "--setenv", "PATH", want));
	free(want);
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);

	/* A plain binary beside no package: only its directory, PATH untouched. */
	put_file(f->tmp, "tools/bin/t",
	         "\x7f"
	         "ELF",
	         0755);
	path = path_join(f->tmp, "tools/bin/t");
	sp = confine_prepare(&o, &cfg, "pg2", path, NULL, NULL, NULL, &cause);
	assert_non_null(sp);
	want = path_join(f->tmp, "tools/bin");
	assert_true(cmd_has_seq(sp->cmd, "--ro-bind", want, want));
	free(want);
	want = path_join(f->tmp, "tools");
	assert_false(cmd_has_seq(sp->cmd, "--ro-bind", want, want));
	free(want);
	assert_true(cmd_has_seq(sp->cmd, "--setenv", "PATH",
	                        "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);
	free(path);
	confine_opts_clear(&o);
	free(oldpath);
	free(nm);
	free(bin);
	free(link);
	free(nb);
}

static void
test_prepare(void **state)
{
	struct fx *f = *state;
	struct jail_config cfg = {.name = "box"};
	const char *args[] = {"--mode", "json", NULL};
	struct confine_opts o;
	struct confine_spawn *sp;
	struct stage_status s;
	char *cause = NULL, *got, *want, *real;
	json_t *env = jparse("{\"B\":\"2\",\"A\":\"1\"}"), *bad = jparse("{\"1X\":\"v\"}");

	cfg.root_path = f->root;
	opts_for(&o, CONFINE_BACKEND_JAIL, PRIV_MODE_MDO);
	sp = confine_prepare(&o, &cfg, "ag1", "/usr/local/bin/pi", args, env, "/home/clawdie",
	                     &cause);
	assert_non_null(sp);
	got = join_cmd(sp->cmd);
	assert_string_equal(got, "mdo -u root jexec box /bin/sh "
	                         "/home/clawdie/.cache/colibri/stage/ag1/launch.sh");
	free(got);
	confine_spawn_status(sp, 1, 0, &s);
	assert_int_equal(s.kind, STAGE_STATUS_UNKNOWN); /* jexec's 1 proves nothing */
	assert_int_equal(s.exit_code, 1);
	confine_spawn_status(sp, 0, 9, &s);
	assert_int_equal(s.kind, STAGE_STATUS_SIGNALED);
	assert_int_equal(s.signal, 9);
	write_status(sp->stage, "exit 4\n");
	confine_spawn_status(sp, 1, 0, &s);
	assert_int_equal(s.kind, STAGE_STATUS_EXITED);
	assert_int_equal(s.exit_code, 4);
	real = xstrdup(stage_host_dir(sp->stage));
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);
	assert_int_equal(access(real, F_OK), -1);
	free(real);

	/* bwrap: the stage is seen at its host path. */
	o.backend = CONFINE_BACKEND_BWRAP;
	sp = confine_prepare(&o, &cfg, "ag2", "/usr/local/bin/pi", args, env, NULL, &cause);
	assert_non_null(sp);
	assert_string_equal(sp->cmd->program, "bwrap");
	xasprintf(&want, "%s/launch.sh", stage_host_dir(sp->stage));
	assert_string_equal(sp->cmd->argv[sp->cmd->argc - 1], want);
	free(want);
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);

	/* Failures leave nothing behind and say why. */
	o.backend = CONFINE_BACKEND_JAIL;
	assert_null(confine_prepare(&o, &cfg, "ag3", "/bin/pi", args, bad, NULL, &cause));
	assert_non_null(strstr(cause, "\"1X\""));
	free(cause);
	xasprintf(&want, "%s/home/clawdie/.cache/colibri/stage/ag3", f->root);
	assert_int_equal(access(want, F_OK), -1);
	free(want);
	cfg.root_path = NULL;
	assert_null(confine_prepare(&o, &cfg, "ag4", "/bin/pi", args, env, NULL, &cause));
	assert_non_null(strstr(cause, "no root_path"));
	free(cause);
	/* Stage outside the root: a jail cannot see it. */
	cfg.root_path = f->root;
	o.stage_base = f->tmp;
	assert_null(confine_prepare(&o, &cfg, "ag5", "/bin/pi", args, env, NULL, &cause));
	assert_non_null(strstr(cause, "outside the jail root"));
	free(cause);
	o.stage_base = NULL;

	/* No jail: unchanged, nothing staged. */
	sp = confine_prepare(&o, NULL, "ag6", "/bin/pi", args, env, NULL, &cause);
	assert_non_null(sp);
	assert_null(sp->stage);
	got = join_cmd(sp->cmd);
	assert_string_equal(got, "/bin/pi --mode json");
	free(got);
	confine_spawn_status(sp, 3, 0, &s);
	assert_int_equal(s.kind, STAGE_STATUS_EXITED);
	assert_int_equal(s.exit_code, 3);
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);

	bwrap_host_clear(&o.host);
	json_decref(env);
	json_decref(bad);
}

static void
test_opts_from_env(void **state)
{
	struct confine_opts o;
	char *cause = NULL;

	(void)state;
	setenv("COLIBRI_CONFINE", "freebsd-jail", 1);
	setenv("COLIBRI_JAIL_PRIV_MODE", "sudo", 1);
	unsetenv("COLIBRI_JAIL_ROOT_BASE");
	setenv("COLIBRI_JAIL_STAGE_DIR", "/var/stage", 1);
	assert_int_equal(confine_opts_from_env(&o, &cause), 0);
	assert_int_equal(o.backend, CONFINE_BACKEND_JAIL);
	assert_int_equal(o.priv, PRIV_MODE_SUDO);
	assert_string_equal(o.root_base, CONFINE_ROOT_BASE_DEFAULT);
	assert_string_equal(o.stage_base, "/var/stage");
	confine_opts_clear(&o);

	setenv("COLIBRI_JAIL_PRIV_MODE", "bogus", 1);
	assert_int_equal(confine_opts_from_env(&o, &cause), -1);
	assert_non_null(strstr(cause, "bogus"));
	free(cause);
	setenv("COLIBRI_JAIL_PRIV_MODE", "none", 1);
	setenv("COLIBRI_CONFINE", "lxc", 1);
	assert_int_equal(confine_opts_from_env(&o, &cause), -1);
	assert_non_null(strstr(cause, "lxc"));
	free(cause);
	setenv("COLIBRI_CONFINE", "", 1);
	setenv("COLIBRI_JAIL_STAGE_DIR", "relative", 1);
	assert_int_equal(confine_opts_from_env(&o, &cause), -1);
	assert_non_null(strstr(cause, "COLIBRI_JAIL_STAGE_DIR"));
	free(cause);
	unsetenv("COLIBRI_JAIL_STAGE_DIR");
	assert_int_equal(confine_opts_from_env(&o, &cause), 0);
	assert_int_equal(o.backend, confine_backend_default());
	confine_opts_clear(&o);
	unsetenv("COLIBRI_CONFINE");
	unsetenv("COLIBRI_JAIL_PRIV_MODE");
}

/* A stage a killed daemon left behind: found without creating anything, removed once. */
static void
test_stage_remove_leftover(void **state)
{
	struct fx *f = *state;
	struct stage *st = stage_ok(f->root, "left1", NULL, NULL);
	char *cause = NULL, *dir = xstrdup(stage_host_dir(st)), *other;
	struct stat sb;

	assert_int_equal(stage_write_env_json(st, NULL, &cause), 0);
	stage_free(st); /* the daemon died: nothing removed */
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(stage_remove_leftover(f->root, "left1", NULL, NULL, &cause), 1);
	assert_int_equal(stat(dir, &sb), -1);
	/* None there: 0, and nothing is created on the way. */
	assert_int_equal(stage_remove_leftover(f->root, "left1", NULL, NULL, &cause), 0);
	assert_null(cause);
	other = path_join(f->tmp, "jails/b");
	assert_int_equal(mkdir_p(other, 0755), 0);
	assert_int_equal(stage_remove_leftover(other, "x", NULL, NULL, &cause), 0);
	free(dir);
	dir = path_join(other, "home");
	assert_int_equal(stat(dir, &sb), -1);
	/* A bad id is an error, not a walk. */
	assert_int_equal(stage_remove_leftover(f->root, "../x", NULL, NULL, &cause), -1);
	assert_non_null(cause);
	free(cause);
	free(dir);
	free(other);
}

/* Under a root daemon the stage and the daemon's directories on the way go to the agent user. */
static void
test_stage_give(void **state)
{
	struct fx *f = *state;
	struct stage *st;
	char *cause = NULL, *p;
	struct stat sb;

	if (geteuid() != 0)
		skip();
	/* The jail's own /home exists (root's): it stays root's; what the stage makes is given. */
	p = path_join(f->root, "home");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	st = stage_ok(f->root, "give1", NULL, NULL);
	assert_int_equal(stage_write_env_json(st, NULL, &cause), 0);
	assert_int_equal(stage_give(st, 65534, 65534, &cause), 0);
	assert_int_equal(stat(stage_host_dir(st), &sb), 0);
	assert_int_equal(sb.st_uid, 65534);
	assert_int_equal(sb.st_mode & 0777, 0700);
	p = path_join(stage_host_dir(st), "env.sh");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_uid, 65534);
	free(p);
	p = path_join(f->root, "home/clawdie");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_uid, 65534);
	free(p);
	p = path_join(f->root, "home/clawdie/.cache/colibri/stage");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_uid, 65534);
	free(p);
	/* The root and what existed before are the operator's: untouched. */
	assert_int_equal(stat(f->root, &sb), 0);
	assert_int_equal(sb.st_uid, 0);
	p = path_join(f->root, "home");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_uid, 0);
	free(p);
	assert_int_equal(stage_remove(st, &cause), 0);
	stage_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_ok),
	        cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_validators),
	        cmocka_unit_test(test_priv_mode),
	        cmocka_unit_test(test_wrap_golden),
	        cmocka_unit_test(test_wrap_every_combination),
	        cmocka_unit_test(test_wrap_no_args),
	        cmocka_unit_test(test_bwrap_argv),
	        cmocka_unit_test(test_bwrap_classic_host_and_errors),
	        cmocka_unit_test(test_bwrap_privates_refused),
	        cmocka_unit_test(test_bwrap_agent_dirs),
	        cmocka_unit_test(test_bwrap_shebang),
	        cmocka_unit_test(test_bwrap_ro_path_check),
	        cmocka_unit_test(test_bwrap_host_probe),
	        cmocka_unit_test_setup_teardown(test_env_round_trip, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_env_sorted_and_quoted, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_env_invalid_names, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_launch_status, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_status_parsing, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_containment, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_override, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_remove, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_remove_leftover, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_give, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stage_replaced, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_prepare, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_prepare_agent_program, fx_setup, fx_teardown),
	        cmocka_unit_test(test_opts_from_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
