/*
 * test_tree.c -- the pure half of the daemon's process trees (tree.c):
 * finding the daemon's cgroup v2 and the cgroup2 mount from the text of
 * /proc/self/cgroup and /proc/self/mountinfo on the layouts seen in the
 * wild (hybrid systemd, pure v2, a container, v1 only), and naming groups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job/tree.h"

static void
test_parse_cgroup(void **state)
{
	char *p;

	(void)state;
	/* Hybrid: v1 controllers and the unified hierarchy's "0::" line. */
	p = tree_parse_cgroup("9:name=systemd:/\n4:memory:/x/y\n0::/\n");
	assert_string_equal(p, "/");
	free(p);
	/* Pure v2 under a service, no trailing newline. */
	p = tree_parse_cgroup("0::/system.slice/colibri.service");
	assert_string_equal(p, "/system.slice/colibri.service");
	free(p);
	/* v1 only, empty, a malformed path. */
	assert_null(tree_parse_cgroup("4:memory:/\n1:cpu:/\n"));
	assert_null(tree_parse_cgroup(""));
	assert_null(tree_parse_cgroup("0::\n"));
	assert_null(tree_parse_cgroup("0::relative\n"));
}

static void
test_parse_mountinfo(void **state)
{
	static const char hybrid[] =
	        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	static const char pure[] = "25 22 0:23 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 "
	                           "cgroup2 rw,nsdelegate";
	static const char escaped[] = "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 none rw\n";
	static const char none[] = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
	                           "32 31 0:29 / /sys/fs/cgroup/cgroup2 rw - cgroup cgroup rw\n";
	char *p;

	(void)state;
	p = tree_parse_mountinfo(hybrid);
	assert_string_equal(p, "/sys/fs/cgroup/unified");
	free(p);
	p = tree_parse_mountinfo(pure);
	assert_string_equal(p, "/sys/fs/cgroup");
	free(p);
	p = tree_parse_mountinfo(escaped);
	assert_string_equal(p, "/mnt/cg two");
	free(p);
	assert_null(tree_parse_mountinfo(none));
	assert_null(tree_parse_mountinfo("garbage\n\n"));
}

static void
test_names(void **state)
{
	char a[64], b[64];

	(void)state;
	tree_key_name("/var/db/colibri", a, sizeof a);
	tree_key_name("/var/db/colibri2", b, sizeof b);
	assert_int_equal(strlen(a), strlen("colibri-") + 16);
	assert_memory_equal(a, "colibri-", 8);
	assert_string_not_equal(a, b);
	tree_key_name("/var/db/colibri", b, sizeof b);
	assert_string_equal(a, b);
	assert_true(tree_name_valid("agent.pi-0a1b2c3d"));
	assert_true(tree_name_valid("job.bw"));
	assert_false(tree_name_valid(NULL));
	assert_false(tree_name_valid(""));
	assert_false(tree_name_valid(".."));
	assert_false(tree_name_valid(".hidden"));
	assert_false(tree_name_valid("a/b"));
	assert_false(tree_name_valid("a b"));
	assert_false(tree_name_valid("cgroup.kill"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_cgroup),
	        cmocka_unit_test(test_parse_mountinfo),
	        cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
