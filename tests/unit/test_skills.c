/*
 * test_skills.c -- the SKILL.md parser and the catalog scanner.
 *
 * Parser cases are inline strings; each is copied into a buffer of exactly
 * its length so that ASan catches any read past the end.  The scanner runs
 * over a temporary tree with good skills, broken ones, a duplicate name,
 * symlinks, a non-UTF-8 file, an oversized file and an empty dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "skills/catalog.h"
#include "skills/skill.h"

static const char good_md[] = "---\n"
                              "name: pdf-tools\n"
                              "description: Fill and merge PDF files # a comment\n"
                              "version: 1.2\n"
                              "tags: [pdf, \"office docs\", 'a, b']\n"
                              "license: MIT\n"
                              "homepage: \"https://example.org/x#y\"\n"
                              "# a comment line\n"
                              "\n"
                              "---\n"
                              "# PDF tools\n\nUse `qpdf` to merge.\n";

/* Parse len bytes from an exact-size heap copy. */
static int
test_parse(const char *text, size_t len, struct skill *sk, char **cause)
{
	char *copy = malloc(len > 0 ? len : 1);
	int rc;

	memcpy(copy, text, len);
	rc = skill_parse(copy, len, "SKILL.md", sk, cause);
	free(copy);
	return rc;
}

static void
test_skill_good(void **state)
{
	struct skill sk;
	char *cause = NULL;

	(void)state;
	assert_int_equal(test_parse(good_md, strlen(good_md), &sk, &cause), 0);
	assert_null(cause);
	assert_string_equal(sk.name, "pdf-tools");
	assert_string_equal(sk.description, "Fill and merge PDF files");
	assert_int_equal(sk.ntags, 3);
	assert_string_equal(sk.tags[0], "pdf");
	assert_string_equal(sk.tags[1], "office docs");
	assert_string_equal(sk.tags[2], "a, b");
	assert_string_equal(skill_field(&sk, "version"), "1.2");
	assert_string_equal(skill_field(&sk, "license"), "MIT");
	assert_string_equal(skill_field(&sk, "homepage"), "https://example.org/x#y");
	assert_null(skill_field(&sk, "name"));
	assert_string_equal(sk.body, "# PDF tools\n\nUse `qpdf` to merge.\n");
	skill_free(&sk);
}

static void
test_skill_yaml_forms(void **state)
{
	static const char md[] = "\xef\xbb\xbf---\r\n"
	                         "name: notes\r\n"
	                         "description: >\r\n"
	                         "  Takes notes\r\n"
	                         "  and files them\r\n"
	                         "tags:\r\n"
	                         "  - one\r\n"
	                         "  - \"two\"\r\n"
	                         "usage: |\r\n"
	                         "  line 1\r\n"
	                         "  line 2\r\n"
	                         "summary: first part\r\n"
	                         "  second part\r\n"
	                         "quote: 'it''s \"fine\"'\r\n"
	                         "escaped: \"a\\tb\\\\c\"\r\n"
	                         "raw: [x, y]\r\n"
	                         "---\r\n";
	struct skill sk;
	char *cause = NULL;
	json_t *j;

	(void)state;
	assert_int_equal(test_parse(md, strlen(md), &sk, &cause), 0);
	assert_string_equal(sk.description, "Takes notes and files them");
	assert_int_equal(sk.ntags, 2);
	assert_string_equal(sk.tags[1], "two");
	assert_string_equal(skill_field(&sk, "tags"), "one, two");
	assert_string_equal(skill_field(&sk, "usage"), "line 1\nline 2");
	assert_string_equal(skill_field(&sk, "summary"), "first part second part");
	assert_string_equal(skill_field(&sk, "quote"), "it's \"fine\"");
	assert_string_equal(skill_field(&sk, "escaped"), "a\tb\\c");
	assert_string_equal(skill_field(&sk, "raw"), "[x, y]");
	assert_string_equal(sk.body, "");
	j = skill_to_json(&sk, 1);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "notes");
	assert_true(json_is_null(json_object_get(j, "path")));
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "fields"), "tags")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "fields"), "raw")),
	                    "[x, y]");
	assert_null(json_object_get(json_object_get(j, "fields"), "description"));
	assert_string_equal(json_string_value(json_object_get(j, "body")), "");
	json_decref(j);
	j = skill_to_json(&sk, 0);
	assert_null(json_object_get(j, "body"));
	json_decref(j);
	skill_free(&sk);
}

static void
test_skill_errors(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *error;
	} cases[] = {
	        {"", 0, "SKILL.md:1: expected '---' to open the front matter"},
	        {"# title\n", 0, "SKILL.md:1: expected '---' to open the front matter"},
	        {"---\nname: a\ndescription: b\n", 0,
	         "SKILL.md:3: front matter not closed (missing '---')"},
	        {"---\ndescription: b\n---\n", 0, "SKILL.md:1: missing required key 'name'"},
	        {"---\nname: a\n---\n", 0, "SKILL.md:1: missing required key 'description'"},
	        {"---\nname: a\nthis is not a field\n---\n", 0, "SKILL.md:3: expected key: value"},
	        {"---\nname: a\nkey:value\n---\n", 0, "SKILL.md:3: expected key: value"},
	        {"---\nname: a\nname: b\n---\n", 0, "SKILL.md:3: duplicate key 'name'"},
	        {"---\nname: \"a\n---\n", 0, "SKILL.md:2: unterminated quoted string"},
	        {"---\nname: a\ndescription: d\ntags: [x, y\n---\n", 0,
	         "SKILL.md:4: unterminated list (missing ']')"},
	        {"---\nname: a b\ndescription: d\n---\n", 0,
	         "SKILL.md:2: invalid skill name 'a b' (letters, digits, '.', '_', '-'; at most "
	         "64)"},
	        {"---\nname: a\ndescription:\n---\n", 0,
	         "SKILL.md:3: 'description' must be a non-empty string"},
	        {"---\n  indented: x\n---\n", 0, "SKILL.md:2: indented line outside a field"},
	        {"---\nname: \"a\"\n  - item\n---\n", 0, "SKILL.md:3: list item after a value"},
	        {"---\nname: a\ndescription: caf\xe9\n---\n", 0, "SKILL.md:3: invalid UTF-8"},
	        {"---\nname: a\n\n\xc0\xaf\n", 0, "SKILL.md:4: invalid UTF-8"},
	        {"---\nname: a\0\n---\n", 14, "SKILL.md:2: NUL byte"},
	};
	struct skill sk;
	char *cause;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].text);

		cause = NULL;
		assert_int_equal(test_parse(cases[i].text, len, &sk, &cause), -1);
		assert_non_null(cause);
		assert_string_equal(cause, cases[i].error);
		assert_null(sk.name);
		free(cause);
	}
}

/* Every prefix and every one-byte corruption of a good file parses or fails cleanly. */
static void
test_skill_truncations(void **state)
{
	size_t len = strlen(good_md), i, ok = 0;
	struct skill sk;
	char *cause, *copy;

	(void)state;
	for (i = 0; i <= len; i++) {
		cause = NULL;
		if (test_parse(good_md, i, &sk, &cause) == 0)
			ok++, skill_free(&sk);
		else
			free(cause);
	}
	assert_true(ok > 0 && ok < len);
	copy = malloc(len);
	for (i = 0; i < len; i++) {
		memcpy(copy, good_md, len);
		copy[i] = (char)(copy[i] ^ 0xa5);
		cause = NULL;
		if (skill_parse(copy, len, "SKILL.md", &sk, &cause) == 0)
			skill_free(&sk);
		else
			free(cause);
	}
	free(copy);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void
test_write(const char *dir, const char *sub, const char *text, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/SKILL.md", dir, sub);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void
test_skill_md(const char *dir, const char *sub, const char *name, const char *body)
{
	char text[512];

	snprintf(text, sizeof text, "---\nname: %s\ndescription: The %s skill\n---\n%s\n", name,
	         name, body);
	test_write(dir, sub, text, strlen(text));
}

/* A tree: root/a (skills dir), root/b (second skills dir), root/outside, root/empty. */
static char *
test_tree(void)
{
	char tmpl[] = "/tmp/colibri-skills-......", path[4096], *big, *root;

	/* mkdtemp wants six trailing 'X's */
	memset(tmpl + sizeof tmpl - 7, 'X', 6);
	root = strdup(mkdtemp(tmpl));

	snprintf(path, sizeof path, "%s/a", root);
	mkdir(path, 0755);
	test_skill_md(path, "10-review", "review", "Check the DIFF carefully.");
	test_skill_md(path, "20-deploy", "deploy", "Ship it with rsync.");
	test_skill_md(path, "30-review-again", "review", "A duplicate.");
	test_write(path, "40-broken", "---\nname: broken\n", strlen("---\nname: broken\n"));
	{
		static const char latin1[] = "---\nname: x\ndescription: caf\xe9\n---\n";

		test_write(path, "50-latin1", latin1, sizeof latin1 - 1);
	}
	big = malloc(SKILL_MAX_BYTES + 10);
	memset(big, 'x', SKILL_MAX_BYTES + 10);
	test_write(path, "60-big", big, SKILL_MAX_BYTES + 10);
	free(big);
	snprintf(path, sizeof path, "%s/a/70-no-skill-md", root);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/a/.hidden", root);
	mkdir(path, 0755);
	test_skill_md(path, ".", "hidden", "never seen");
	snprintf(path, sizeof path, "%s/a/README.md", root);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof path, "%s/outside", root);
	mkdir(path, 0755);
	test_skill_md(path, "secret", "secret", "outside the skills dir");
	snprintf(path, sizeof path, "%s/a/80-linked", root);
	assert_int_equal(symlink("../outside/secret", path), 0);
	snprintf(path, sizeof path, "%s/a/90-linkfile", root);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/a/90-linkfile/SKILL.md", root);
	assert_int_equal(symlink("../../outside/secret/SKILL.md", path), 0);
	snprintf(path, sizeof path, "%s/b", root);
	mkdir(path, 0755);
	test_skill_md(path, "deploy", "deploy", "Second dir loses.");
	test_skill_md(path, "lint", "lint", "Run clang-format.");
	snprintf(path, sizeof path, "%s/empty", root);
	mkdir(path, 0755);
	return root;
}

static int
test_has_error(const struct skills_catalog *cat, const char *needle)
{
	size_t i;

	for (i = 0; i < cat->nerrors; i++)
		if (strstr(cat->errors[i].message, needle) != NULL)
			return 1;
	return 0;
}

static void
test_catalog_scan(void **state)
{
	char *root = test_tree(), a[4096], b[4096], missing[4096];
	const char *dirs[] = {a, b, missing};
	struct skills_catalog cat;
	const struct skill **found;
	size_t nerr, n;

	(void)state;
	snprintf(a, sizeof a, "%s/a", root);
	snprintf(b, sizeof b, "%s/b", root);
	snprintf(missing, sizeof missing, "%s/missing", root);
	skills_catalog_init(&cat);
	nerr = skills_scan(&cat, dirs, 3);
	assert_int_equal(cat.nskills, 3);
	assert_string_equal(cat.skills[0].name, "deploy");
	assert_string_equal(cat.skills[1].name, "lint");
	assert_string_equal(cat.skills[2].name, "review");
	assert_non_null(strstr(skills_find(&cat, "deploy")->path, "/a/20-deploy/SKILL.md"));
	assert_non_null(strstr(skills_find(&cat, "review")->body, "DIFF"));
	assert_null(skills_find(&cat, "secret"));
	assert_null(skills_find(&cat, "hidden"));
	assert_int_equal(nerr, cat.nerrors);
	assert_int_equal(cat.nerrors, 8);
	assert_true(
	        test_has_error(&cat, "30-review-again/SKILL.md: duplicate skill name 'review'"));
	assert_true(test_has_error(&cat, "/b/deploy/SKILL.md: duplicate skill name 'deploy'"));
	assert_true(test_has_error(&cat, "40-broken/SKILL.md:2: front matter not closed"));
	assert_true(test_has_error(&cat, "50-latin1/SKILL.md:3: invalid UTF-8"));
	assert_true(test_has_error(&cat, "60-big/SKILL.md: file too large"));
	assert_true(test_has_error(&cat, "80-linked: symlinked skill folder not followed"));
	assert_true(test_has_error(&cat, "90-linkfile/SKILL.md: SKILL.md is a symlink"));
	assert_true(test_has_error(&cat, "/missing: cannot open skills dir"));

	n = skills_search(&cat, "diff", &found);
	assert_int_equal(n, 1);
	assert_string_equal(found[0]->name, "review");
	free(found);
	n = skills_search(&cat, "THE DEPLOY", &found);
	assert_int_equal(n, 1);
	free(found);
	n = skills_search(&cat, "", &found);
	assert_int_equal(n, 3);
	free(found);
	n = skills_search(&cat, "nothing-matches-this", &found);
	assert_int_equal(n, 0);
	free(found);
	skills_catalog_free(&cat);
	nftw(root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(root);
}

static void
test_catalog_empty_and_json(void **state)
{
	char *root = test_tree(), e[4096], b[4096];
	const char *dirs[] = {e};
	struct skills_catalog cat;
	json_t *j, *item;

	(void)state;
	snprintf(e, sizeof e, "%s/empty", root);
	skills_catalog_init(&cat);
	assert_int_equal(skills_scan(&cat, dirs, 1), 0);
	assert_int_equal(cat.nskills, 0);
	j = skills_catalog_to_json(&cat, NULL, 0);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
	assert_int_equal(json_array_size(json_object_get(j, "errors")), 0);
	json_decref(j);
	skills_catalog_free(&cat);

	snprintf(b, sizeof b, "%s/b", root);
	dirs[0] = b;
	skills_catalog_init(&cat);
	assert_int_equal(skills_scan(&cat, dirs, 1), 0);
	j = skills_catalog_to_json(&cat, "clang", 1);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
	item = json_array_get(json_object_get(j, "items"), 0);
	assert_string_equal(json_string_value(json_object_get(item, "name")), "lint");
	assert_string_equal(json_string_value(json_object_get(item, "description")),
	                    "The lint skill");
	assert_string_equal(json_string_value(json_object_get(item, "body")),
	                    "Run clang-format.\n");
	assert_non_null(
	        strstr(json_string_value(json_object_get(item, "path")), "/b/lint/SKILL.md"));
	assert_true(json_is_object(json_object_get(item, "fields")));
	json_decref(j);
	skills_catalog_free(&cat);
	nftw(root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_skill_good),   cmocka_unit_test(test_skill_yaml_forms),
	        cmocka_unit_test(test_skill_errors), cmocka_unit_test(test_skill_truncations),
	        cmocka_unit_test(test_catalog_scan), cmocka_unit_test(test_catalog_empty_and_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
