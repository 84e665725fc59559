/*
 * test_confine_policy.c -- the pure checks behind the setuid helper's narrow
 * grant and the daemon's jail policy (issue 15).
 *
 * The helper (src/helper/jail-spawn.c) and the daemon share jail-name.c, so
 * what the helper will refuse is tested here once, without processes:
 * jail_unpriv_user_check (never root), jail_passwd_uid (a name that is uid 0
 * under another name), jail_launch_check (only /bin/sh STAGE/ID/launch.sh).
 * On the daemon side: an ephemeral jail's root_path must be its path,
 * helper mode needs an unprivileged user, both paths are checked against the
 * root base before anything is staged, and the helper argv always carries -U.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "confine/confine.h"
#include "confine/jail-name.h"

#define STAGE "/" JAIL_STAGE_REL

static void
test_unpriv_user(void **state)
{
	(void)state;
	assert_null(jail_unpriv_user_check("clawdie"));
	assert_null(jail_unpriv_user_check("agent_1"));
	assert_null(jail_unpriv_user_check("r00t"));
	assert_non_null(strstr(jail_unpriv_user_check("root"), "must not be root"));
	assert_non_null(strstr(jail_unpriv_user_check("toor"), "must not be root"));
	assert_non_null(strstr(jail_unpriv_user_check("0"), "not a uid"));
	assert_non_null(strstr(jail_unpriv_user_check("1001"), "not a uid"));
	/* The syntax check comes first. */
	assert_non_null(strstr(jail_unpriv_user_check("-root"), "must not start with '-'"));
	assert_non_null(strstr(jail_unpriv_user_check(""), "empty"));
	assert_non_null(jail_unpriv_user_check("a b"));
}

static void
test_passwd_uid(void **state)
{
	(void)state;
	assert_int_equal(jail_passwd_uid("admin:*:0:0:alias:/root:/bin/sh", "admin"), 0);
	assert_int_equal(jail_passwd_uid("clawdie:*:1001:1001::/home/clawdie:/bin/sh", "clawdie"),
	                 1001);
	/* master.passwd: uid is the third field too. */
	assert_int_equal(jail_passwd_uid("ops:$6$x:0:0::0:0:Ops:/root:/bin/sh", "ops"), 0);
	/* Other names, prefixes of names, comments, malformed lines. */
	assert_int_equal(jail_passwd_uid("admin:*:0:0::/:/bin/sh", "adm"), -1);
	assert_int_equal(jail_passwd_uid("adm:*:0:0::/:/bin/sh", "admin"), -1);
	assert_int_equal(jail_passwd_uid("# admin:*:0:0", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin:*:", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin:*:0", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin:*:0x:0::", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin:*:-1:0::", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin:*:99999999999999999999:0::", "admin"), -1);
	assert_int_equal(jail_passwd_uid("admin", "admin"), -1);
	assert_int_equal(jail_passwd_uid("", "admin"), -1);
}

static const char *
launch(const char *a, const char *b)
{
	char *cmd[] = {(char *)a, (char *)b, NULL};

	return jail_launch_check(STAGE, cmd, b == NULL ? 1 : 2);
}

static void
test_launch_check(void **state)
{
	char *three[] = {"/bin/sh", STAGE "/a1/launch.sh", "x", NULL};
	char long_id[128];

	(void)state;
	assert_null(launch("/bin/sh", STAGE "/a1/launch.sh"));
	assert_null(launch("/bin/sh", STAGE "/pi-1.x_2/launch.sh"));
	assert_non_null(strstr(jail_launch_check(STAGE, three, 3), "exactly"));
	assert_non_null(strstr(launch("/bin/cat", "/.env"), "exactly /bin/sh"));
	assert_non_null(launch("/bin/sh", NULL));
	assert_non_null(launch("/bin/bash", STAGE "/a1/launch.sh"));
	assert_non_null(launch("sh", STAGE "/a1/launch.sh"));
	assert_non_null(strstr(launch("/bin/sh", "/tmp/a1/launch.sh"), "stage prefix"));
	assert_non_null(launch("/bin/sh", STAGE "x/a1/launch.sh"));
	assert_non_null(launch("/bin/sh", STAGE "/a1/env.sh"));
	assert_non_null(launch("/bin/sh", STAGE "/a1/launch.sh/"));
	assert_non_null(launch("/bin/sh", STAGE "/a1/b/launch.sh"));
	assert_non_null(launch("/bin/sh", STAGE "/../launch.sh"));
	assert_non_null(strstr(launch("/bin/sh", STAGE "/./launch.sh"), "invalid stage id"));
	assert_non_null(strstr(launch("/bin/sh", STAGE "//launch.sh"), "invalid stage id"));
	assert_non_null(launch("/bin/sh", STAGE "/-x/launch.sh"));
	memset(long_id, 'i', 65);
	long_id[65] = '\0';
	{
		char p[256];
		snprintf(p, sizeof p, "%s/%s/launch.sh", STAGE, long_id);
		assert_non_null(strstr(launch("/bin/sh", p), "too long"));
		long_id[64] = '\0';
		snprintf(p, sizeof p, "%s/%s/launch.sh", STAGE, long_id);
		assert_null(launch("/bin/sh", p));
	}
}

static json_t *
jparse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	assert_non_null(j);
	return j;
}

static void
expect_parse(const char *text, const char *needle)
{
	struct jail_config cfg;
	char *cause = NULL;
	json_t *j = jparse(text);
	int rc = jail_config_parse(j, &cfg, &cause);

	if (needle == NULL) {
		assert_int_equal(rc, 0);
		jail_config_clear(&cfg);
	} else {
		assert_int_equal(rc, -1);
		assert_non_null(cause);
		assert_non_null(strstr(cause, needle));
		free(cause);
	}
	json_decref(j);
}

static void
test_ephemeral_paths_equal(void **state)
{
	(void)state;
	expect_parse("{\"path\":\"/\",\"root_path\":\"/j/a\"}", "must equal jail.path");
	expect_parse("{\"path\":\"/j/a\",\"root_path\":\"/j/b\"}", "must equal jail.path");
	expect_parse("{\"path\":\"/j/a\",\"root_path\":\"/j/a/root\"}", "ephemeral jail");
	expect_parse("{\"path\":\"/j/a\",\"root_path\":\"/j/a\"}", NULL);
	expect_parse("{\"path\":\"/j/a/\",\"root_path\":\"/j/a\"}", NULL);
	expect_parse("{\"path\":\"/j/a\"}", NULL);
	/* A named jail runs by name: its path is not the jail's root. */
	expect_parse("{\"name\":\"box\",\"path\":\"/j/a\",\"root_path\":\"/j/a/root\"}", NULL);
}

static void
expect_mode(enum priv_mode mode, const char *name, const char *path, const char *user,
            const char *needle)
{
	struct jail_config cfg = {.name = (char *)name, .path = (char *)path, .user = (char *)user};
	char *cause = NULL;

	if (needle == NULL) {
		assert_int_equal(jail_config_check_mode(&cfg, mode, &cause), 0);
		assert_null(cause);
		return;
	}
	assert_int_equal(jail_config_check_mode(&cfg, mode, &cause), -1);
	assert_non_null(strstr(cause, needle));
	free(cause);
}

static void
test_helper_mode_user(void **state)
{
	(void)state;
	expect_mode(PRIV_MODE_HELPER, "box", NULL, NULL, "jail.user is required in helper mode");
	expect_mode(PRIV_MODE_HELPER, NULL, "/j/a", NULL, "jail.user is required");
	expect_mode(PRIV_MODE_HELPER, "box", NULL, "root", "must not be root");
	expect_mode(PRIV_MODE_HELPER, NULL, "/j/a", "toor", "must not be root");
	expect_mode(PRIV_MODE_HELPER, "box", NULL, "0", "not a uid");
	expect_mode(PRIV_MODE_HELPER, "box", NULL, "clawdie", NULL);
	/* No jail: nothing to check; other modes run their own privilege tool. */
	expect_mode(PRIV_MODE_HELPER, NULL, NULL, NULL, NULL);
	expect_mode(PRIV_MODE_MDO, "box", NULL, NULL, NULL);
	expect_mode(PRIV_MODE_NONE, "box", NULL, "root", NULL);
}

static void
test_helper_argv_has_user(void **state)
{
	struct jail_config cfg = {.name = "box", .user = "clawdie"};
	const char *args[] = {STAGE "/a1/launch.sh", NULL};
	struct confine_cmd *c;
	char *got, *want;

	(void)state;
	c = jail_wrap(PRIV_MODE_HELPER, &cfg, "/bin/sh", args);
	got = confine_cmd_join(c);
	xasprintf(&want, "%s exec -U clawdie box -- /bin/sh %s/a1/launch.sh", priv_helper_path(),
	          STAGE);
	assert_string_equal(got, want);
	free(got);
	free(want);
	confine_cmd_free(c);
	cfg.name = NULL;
	cfg.path = "/j/a";
	cfg.ip4 = "disable";
	c = jail_wrap(PRIV_MODE_HELPER, &cfg, "/bin/sh", args);
	got = confine_cmd_join(c);
	xasprintf(&want, "%s create -4 disable -U clawdie /j/a -- /bin/sh %s/a1/launch.sh",
	          priv_helper_path(), STAGE);
	assert_string_equal(got, want);
	free(got);
	free(want);
	confine_cmd_free(c);
}

/* A root base with jail roots box and box2 below it, and a directory outside. */
struct fx {
	char *tmp, *base, *box, *box2, *outside;
};

static int
fx_setup(void **state)
{
	char tmpl[] = "/tmp/test-confine-policy-XXXXXX";
	struct fx *f = xcalloc(1, sizeof *f);

	assert_non_null(mkdtemp(tmpl));
	f->tmp = xstrdup(tmpl);
	xasprintf(&f->base, "%s/jails", f->tmp);
	xasprintf(&f->box, "%s/box", f->base);
	xasprintf(&f->box2, "%s/box2", f->base);
	xasprintf(&f->outside, "%s/outside", f->tmp);
	assert_int_equal(mkdir(f->base, 0755), 0);
	assert_int_equal(mkdir(f->box, 0755), 0);
	assert_int_equal(mkdir(f->box2, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	char *cmd;

	xasprintf(&cmd, "rm -rf '%s'", f->tmp);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->tmp);
	free(f->base);
	free(f->box);
	free(f->box2);
	free(f->outside);
	free(f);
	return 0;
}

static void
expect_prepare_refused(struct confine_opts *o, struct jail_config *cfg, const struct fx *f,
                       const char *needle)
{
	const char *args[] = {NULL};
	char *cause = NULL, *staged;

	assert_null(confine_prepare(o, cfg, "p1", "/bin/agent", args, NULL, NULL, &cause));
	assert_non_null(cause);
	if (strstr(cause, needle) == NULL)
		fail_msg("cause \"%s\" lacks \"%s\"", cause, needle);
	free(cause);
	xasprintf(&staged, "%s/home", f->box);
	assert_int_equal(access(staged, F_OK), -1);
	free(staged);
}

static void
test_prepare_checks_both_paths(void **state)
{
	struct fx *f = *state;
	struct jail_config cfg = {.name = "box"};
	struct confine_opts o;
	struct confine_spawn *sp;
	const char *args[] = {NULL};
	char *cause = NULL;

	memset(&o, 0, sizeof o);
	o.backend = CONFINE_BACKEND_JAIL;
	o.priv = PRIV_MODE_NONE;
	o.root_base = f->base;
	cfg.root_path = f->box;
	cfg.path = "/";
	expect_prepare_refused(&o, &cfg, f, "jail.path / (/) is not strictly under the root base");
	cfg.path = f->outside;
	expect_prepare_refused(&o, &cfg, f, "jail.path");
	cfg.path = f->base;
	expect_prepare_refused(&o, &cfg, f, "is not strictly under");
	cfg.path = NULL;
	cfg.root_path = f->outside;
	expect_prepare_refused(&o, &cfg, f, "jail.root_path");
	/* Helper mode: no user, nothing staged. */
	cfg.root_path = f->box;
	o.priv = PRIV_MODE_HELPER;
	expect_prepare_refused(&o, &cfg, f, "jail.user is required in helper mode");
	cfg.user = "clawdie";
	cfg.path = f->box2;
	sp = confine_prepare(&o, &cfg, "p2", "/bin/agent", args, NULL, NULL, &cause);
	assert_non_null(sp);
	assert_string_equal(sp->cmd->argv[1], "exec");
	assert_string_equal(sp->cmd->argv[2], "-U");
	assert_string_equal(sp->cmd->argv[3], "clawdie");
	assert_int_equal(confine_spawn_finish(sp, &cause), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_unpriv_user),
	        cmocka_unit_test(test_passwd_uid),
	        cmocka_unit_test(test_launch_check),
	        cmocka_unit_test(test_ephemeral_paths_equal),
	        cmocka_unit_test(test_helper_mode_user),
	        cmocka_unit_test(test_helper_argv_has_user),
	        cmocka_unit_test_setup_teardown(test_prepare_checks_both_paths, fx_setup,
	                                        fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
