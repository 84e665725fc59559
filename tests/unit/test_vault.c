/*
 * test_vault.c -- the pure parts of vault provisioning (src/vault/vault.c).
 *
 * Parsers get exact-size heap copies so ASan sees any read past the end.
 * Error messages are checked for naming the line or item and never the
 * secret.  The containment check and the .env writer run against a
 * temporary tree with a sibling that shares the base's prefix, symlinked
 * directories and a planted .env symlink.  The rendered .env is sourced by
 * /bin/sh and each value compared byte for byte with what went in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "vault/vault.h"

/* ---- helpers ---- */

static char *
heap_copy(const char *s, size_t len)
{
	char *c = malloc(len > 0 ? len : 1);

	memcpy(c, s, len);
	return c;
}

static int
penv(const char *text, size_t len, struct vault_creds *c, char **cause)
{
	char *copy = heap_copy(text, len);
	int rc;

	memset(c, 0, sizeof *c);
	*cause = NULL;
	rc = vault_parse_provider_env(copy, len, c, cause);
	free(copy);
	return rc;
}

static json_t *
items(const char *text, char **cause)
{
	size_t len = strlen(text);
	char *copy = heap_copy(text, len);
	json_t *v;

	*cause = NULL;
	v = vault_items_to_vars(copy, len, cause);
	free(copy);
	return v;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

struct tree {
	char dir[64];
	char base[PATH_MAX];
};

static char *
tpath(struct tree *t, const char *rel)
{
	char *p;

	xasprintf(&p, "%s/%s", t->dir, rel);
	return p;
}

static void
tmkdir(struct tree *t, const char *rel)
{
	char *p = tpath(t, rel);

	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void
tsymlink(struct tree *t, const char *target, const char *rel)
{
	char *p = tpath(t, rel);

	assert_int_equal(symlink(target, p), 0);
	free(p);
}

/*
 * DIR/jails/T/root, DIR/jails-evil/T/root, DIR/outside,
 * DIR/jails/link -> DIR/outside, DIR/jails/T/rel -> ../../outside.
 */
static int
tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof *t);
	char *out;

	snprintf(t->dir, sizeof t->dir, "/tmp/test_vault.XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->base, sizeof t->base, "%s/jails", t->dir);
	tmkdir(t, "jails");
	tmkdir(t, "jails/T");
	tmkdir(t, "jails/T/root");
	tmkdir(t, "jails-evil");
	tmkdir(t, "jails-evil/T");
	tmkdir(t, "jails-evil/T/root");
	tmkdir(t, "outside");
	out = tpath(t, "outside");
	tsymlink(t, out, "jails/link");
	free(out);
	tsymlink(t, "../../outside", "jails/T/rel");
	*state = t;
	return 0;
}

static int
tree_teardown(void **state)
{
	struct tree *t = *state;

	nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

/* Names in dir that start with prefix. */
static int
count_prefixed(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = xcalloc(1, 65536);

	assert_non_null(f);
	assert_true(fread(s, 1, 65535, f) < 65535);
	fclose(f);
	return s;
}

/* ---- provider env ---- */

static void
test_provider_env_forms(void **state)
{
	static const char text[] = "# bootstrap credentials\n"
	                           "\n"
	                           "export BW_SERVER=https://vault.example.org\n"
	                           "  BW_CLIENTID='user.1234 x'\n"
	                           "BW_CLIENTSECRET=\"s3cr3t#not-a-comment\"\n"
	                           "\t# indented comment\n"
	                           "OTHER_KEY=ignored\n"
	                           "BW_PASSWORD=pa=ss'word";
	struct vault_creds c;
	const char *missing;
	char *cause;

	(void)state;
	assert_int_equal(penv(text, sizeof text - 1, &c, &cause), 0);
	assert_null(cause);
	assert_string_equal(c.server, "https://vault.example.org");
	assert_string_equal(c.client_id, "user.1234 x");
	assert_string_equal(c.client_secret, "s3cr3t#not-a-comment");
	assert_string_equal(c.password, "pa=ss'word");
	assert_true(vault_creds_complete(&c, &missing));
	assert_null(missing);
	vault_creds_clear(&c);
	assert_null(c.password);
}

static void
test_provider_env_crlf(void **state)
{
	static const char text[] = "# written on Windows\r\n"
	                           "BW_SERVER=https://v.example.org/\r\n"
	                           "\r\n"
	                           "BW_CLIENTID=\"cid\"\r\n"
	                           "BW_CLIENTSECRET=csec\r\n"
	                           "BW_PASSWORD='pw'\r\n";
	struct vault_creds c;
	char *cause;

	(void)state;
	assert_int_equal(penv(text, sizeof text - 1, &c, &cause), 0);
	assert_null(cause);
	assert_string_equal(c.server, "https://v.example.org/");
	assert_string_equal(c.client_id, "cid");
	assert_string_equal(c.client_secret, "csec");
	assert_string_equal(c.password, "pw");
	vault_creds_clear(&c);
}

static void
test_provider_env_garbage(void **state)
{
	static const char nul[] = "BW_SERVER=https://x\nBW_PASSWORD=SUPERSECRETVALUE\0tail\n";
	static const char *bad[] = {
	        "BW_SERVER=https://x\nBW_PASSWORD SUPERSECRETVALUE\n",
	        "BW_SERVER=https://x\nBW_PASSWORD = SUPERSECRETVALUE\n",
	        "BW_SERVER=https://x\nnot a key=SUPERSECRETVALUE\n",
	        "BW_SERVER=https://x\n=SUPERSECRETVALUE\n",
	        nul,
	};
	struct vault_creds c;
	const char *missing;
	char *cause;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		size_t len = bad[i] == nul ? sizeof nul - 1 : strlen(bad[i]);
		assert_int_equal(penv(bad[i], len, &c, &cause), -1);
		assert_non_null(cause);
		assert_non_null(strstr(cause, "line 2"));
		assert_null(strstr(cause, "SUPERSECRET"));
		free(cause);
		vault_creds_clear(&c);
	}
	/* Missing keys are reported by name. */
	assert_int_equal(penv("BW_SERVER=https://x\n", 20, &c, &cause), 0);
	assert_false(vault_creds_complete(&c, &missing));
	assert_string_equal(missing, "BW_CLIENTID");
	vault_creds_clear(&c);
}

static void
test_provider_env_mode(void **state)
{
	struct tree *t = *state;
	struct vault_creds c;
	char *p = tpath(t, "provider.env"), *cause = NULL;
	int fd;

	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "BW_PASSWORD=TOPSECRETPW\n", 24), 24);
	close(fd);
	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(vault_check_provider_env_mode(p, &cause), -1);
	assert_non_null(strstr(cause, "0640"));
	assert_non_null(strstr(cause, "chmod 600"));
	free(cause);
	cause = NULL;
	assert_int_equal(vault_load_creds(p, &c, &cause), -1);
	assert_null(strstr(cause, "TOPSECRET"));
	free(cause);
	cause = NULL;
	assert_int_equal(chmod(p, 0604), 0);
	assert_int_equal(vault_check_provider_env_mode(p, &cause), -1);
	free(cause);
	cause = NULL;
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(vault_check_provider_env_mode(p, &cause), 0);
	/* The file wins; missing keys come from the environment. */
	setenv("BW_SERVER", "https://from-env.example.org", 1);
	setenv("BW_PASSWORD", "ENVPW", 1);
	assert_int_equal(vault_load_creds(p, &c, &cause), 0);
	assert_string_equal(c.password, "TOPSECRETPW");
	assert_string_equal(c.server, "https://from-env.example.org");
	assert_null(c.client_id);
	vault_creds_clear(&c);
	unsetenv("BW_SERVER");
	unsetenv("BW_PASSWORD");
	free(p);
	/* An absent file is fine (everything may come from the environment). */
	p = tpath(t, "absent.env");
	assert_int_equal(vault_check_provider_env_mode(p, &cause), 0);
	free(p);
	/* A symlink to a 0600 file is refused. */
	p = tpath(t, "link.env");
	assert_int_equal(symlink("provider.env", p), 0);
	assert_int_equal(vault_check_provider_env_mode(p, &cause), -1);
	free(cause);
	free(p);
}

/* ---- bw output ---- */

static void
test_status(void **state)
{
	static const char ok[] = "{\"serverUrl\":\"https://v.example.org\",\"lastSync\":null,"
	                         "\"status\":\"locked\"}";
	static const char unset[] = "{\"serverUrl\":null,\"status\":\"unauthenticated\"}";
	static const char *bad[] = {"", "[]", "{\"serverUrl\":\"x\"}", "{\"status\":3}",
	                            "? Master password: [hidden]"};
	char *server, *status, *cause = NULL, *copy;
	size_t i;

	(void)state;
	copy = heap_copy(ok, sizeof ok - 1);
	assert_int_equal(vault_parse_status(copy, sizeof ok - 1, &server, &status, &cause), 0);
	free(copy);
	assert_string_equal(server, "https://v.example.org");
	assert_string_equal(status, "locked");
	free(server);
	free(status);
	copy = heap_copy(unset, sizeof unset - 1);
	assert_int_equal(vault_parse_status(copy, sizeof unset - 1, &server, &status, &cause), 0);
	free(copy);
	assert_null(server);
	assert_string_equal(status, "unauthenticated");
	free(status);
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		copy = heap_copy(bad[i], strlen(bad[i]));
		assert_int_equal(vault_parse_status(copy, strlen(bad[i]), &server, &status, &cause),
		                 -1);
		free(copy);
		assert_null(server);
		assert_null(status);
		assert_non_null(cause);
		free(cause);
		cause = NULL;
	}
}

static void
test_server_matches(void **state)
{
	(void)state;
	assert_true(vault_server_matches("https://v.example.org", "https://v.example.org"));
	assert_true(vault_server_matches("https://v.example.org/", "https://v.example.org"));
	assert_true(vault_server_matches("https://v.example.org//", "https://v.example.org/"));
	assert_true(vault_server_matches("https://V.Example.ORG", "https://v.example.org/"));
	assert_true(vault_server_matches("HTTPS://v.example.org:8443/vw",
	                                 "https://v.example.org:8443/vw/"));
	assert_false(vault_server_matches("https://v.example.org/VW", "https://v.example.org/vw"));
	assert_false(vault_server_matches("https://v.example.org", "https://w.example.org"));
	assert_false(vault_server_matches("https://v.example.org", "https://v.example.org.evil"));
	assert_false(vault_server_matches("https://v.example.org", "http://v.example.org"));
	assert_false(vault_server_matches("https://v.example.org:8443", "https://v.example.org"));
	assert_false(vault_server_matches("https://a.org/bc", "https://a.or/gbc"));
	assert_false(vault_server_matches(NULL, "https://v.example.org"));
	assert_false(vault_server_matches("https://v.example.org", NULL));
	assert_false(vault_server_matches("/", "/"));
}

static int
find_coll(const char *json, const char *name, char **id, char **cause)
{
	char *copy = heap_copy(json, strlen(json));
	int rc;

	*cause = NULL;
	rc = vault_find_collection(copy, strlen(json), name, id, cause);
	free(copy);
	return rc;
}

static void
test_collection(void **state)
{
	char *id, *cause;

	(void)state;
	/* bw's --search matches substrings: only the exact name counts. */
	assert_int_equal(find_coll("[{\"id\":\"c-old\",\"name\":\"proof0-old\"},"
	                           "{\"id\":\"c1\",\"name\":\"proof0\"}]",
	                           "proof0", &id, &cause),
	                 0);
	assert_string_equal(id, "c1");
	free(id);
	assert_int_equal(find_coll("[]", "proof0", &id, &cause), -1);
	assert_null(id);
	assert_non_null(strstr(cause, "no collection named proof0"));
	free(cause);
	assert_int_equal(find_coll("[{\"id\":\"c-old\",\"name\":\"proof0-old\"},"
	                           "{\"id\":\"c2\",\"name\":\"Proof0\"}]",
	                           "proof0", &id, &cause),
	                 -1);
	assert_null(id);
	free(cause);
	assert_int_equal(find_coll("[{\"id\":\"c1\",\"name\":\"proof0\"},"
	                           "{\"id\":\"c2\",\"name\":\"proof0\"}]",
	                           "proof0", &id, &cause),
	                 -1);
	assert_null(id);
	assert_non_null(strstr(cause, "2 collections are named proof0"));
	free(cause);
	assert_int_equal(find_coll("{\"id\":\"c1\"}", "proof0", &id, &cause), -1);
	assert_null(id);
	free(cause);
}

static void
test_items_valid(void **state)
{
	char *cause;
	json_t *v;

	(void)state;
	v = items("[{\"name\":\"API_KEY\",\"type\":1,\"login\":{\"username\":null,"
	          "\"password\":\"k-1\"}},"
	          "{\"name\":\"_under\",\"login\":{\"password\":\"\"}},"
	          "{\"name\":\"DB_URL\",\"login\":{\"password\":\"postgres://u:p@h/db\"}}]",
	          &cause);
	assert_non_null(v);
	assert_null(cause);
	assert_int_equal(json_object_size(v), 3);
	assert_string_equal(json_string_value(json_object_get(v, "API_KEY")), "k-1");
	assert_string_equal(json_string_value(json_object_get(v, "_under")), "");
	assert_string_equal(json_string_value(json_object_get(v, "DB_URL")), "postgres://u:p@h/db");
	json_decref(v);
}

static void
test_items_refused(void **state)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
	        {"[]", "empty"},
	        {"{}", "unexpected output"},
	        {"[{\"name\":\"1BAD\",\"login\":{\"password\":\"SECRETVAL\"}}]", "1BAD"},
	        {"[{\"name\":\"has-dash\",\"login\":{\"password\":\"SECRETVAL\"}}]", "has-dash"},
	        {"[{\"name\":\"A B\",\"login\":{\"password\":\"SECRETVAL\"}}]", "not a valid"},
	        {"[{\"name\":\"\",\"login\":{\"password\":\"SECRETVAL\"}}]", "not a valid"},
	        {"[{\"login\":{\"password\":\"SECRETVAL\"}}]", "(none)"},
	        {"[{\"name\":\"A\\u0000B\",\"login\":{\"password\":\"SECRETVAL\"}}]",
	         "not a valid"},
	        {"[{\"name\":\"K\",\"login\":{\"password\":\"SECRETVAL\"}},"
	         "{\"name\":\"K\",\"login\":{\"password\":\"SECRETVAL2\"}}]",
	         "two items are named K"},
	        {"[{\"name\":\"K\",\"login\":{\"password\":null}}]", "no login password"},
	        {"[{\"name\":\"K\",\"type\":2,\"notes\":\"SECRETVAL\"}]", "no login password"},
	        {"[{\"name\":\"K\",\"login\":{}}]", "no login password"},
	        {"[{\"name\":\"K\",\"login\":{\"password\":\"SECRETVAL\\u0000x\"}}]", "NUL"},
	};
	char *cause;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		assert_null(items(cases[i].json, &cause));
		assert_non_null(cause);
		if (strstr(cause, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, cause, cases[i].want);
		assert_null(strstr(cause, "SECRETVAL"));
		free(cause);
	}
}

/* ---- containment ---- */

static void
test_contain(void **state)
{
	struct tree *t = *state;
	char *cause = NULL, *got, *p, *want;
	static const char *refused[] = {
	        "jails/T/root/../../../jails-evil/T/root", /* .. out of the base */
	        "jails-evil/T/root",                       /* sibling sharing the prefix */
	        "jails/link",                              /* symlinked dir pointing out */
	        "jails/T/rel",                             /* relative symlink out */
	        "jails",                                   /* the base itself */
	        "jails/",                                  /* the base, trailing slash */
	        "jails/T/..",                              /* the base via .. */
	        "jails/T/missing",                         /* a missing root */
	        "outside",
	};
	size_t i;

	want = tpath(t, "jails/T/root");
	got = vault_contain(want, t->base, &cause);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
	p = tpath(t, "jails/T/root/");
	got = vault_contain(p, t->base, &cause);
	assert_string_equal(got, want);
	free(got);
	free(p);
	/* .. that stays inside is canonicalised. */
	p = tpath(t, "jails/link/../T/root");
	got = vault_contain(p, t->base, &cause);
	assert_null(got); /* link/.. is outside/.. = DIR, then DIR/T/root is missing */
	free(cause);
	cause = NULL;
	free(p);
	/* A root must be its own canonical path: .. that stays inside is refused too. */
	p = tpath(t, "jails/T/root/../root");
	assert_null(vault_contain(p, t->base, &cause));
	assert_non_null(strstr(cause, "must be its own canonical path"));
	free(cause);
	cause = NULL;
	free(p);
	free(want);
	for (i = 0; i < sizeof refused / sizeof *refused; i++) {
		p = tpath(t, refused[i]);
		got = vault_contain(p, t->base, &cause);
		if (got != NULL)
			fail_msg("%s was accepted as %s", refused[i], got);
		assert_non_null(cause);
		free(cause);
		cause = NULL;
		free(p);
	}
	assert_null(vault_contain("jails/T/root", t->base, &cause));
	assert_non_null(strstr(cause, "absolute"));
	free(cause);
	cause = NULL;
	/* A missing base refuses everything. */
	p = tpath(t, "jails/T/root");
	want = tpath(t, "nobase");
	assert_null(vault_contain(p, want, &cause));
	free(cause);
	free(want);
	/* A base given through a symlink is canonicalised too. */
	want = tpath(t, "baselink");
	assert_int_equal(symlink(t->base, want), 0);
	got = vault_contain(p, want, &cause);
	assert_string_equal(got, p);
	free(got);
	free(want);
	free(p);
}

/* ---- .env rendering and writing ---- */

static const struct {
	const char *name, *value;
} hostile[] = {
        {"PLAIN", "abc-DEF_1.2:3@4+5,6%7=8/9"},
        {"EMPTY", ""},
        {"SQUOTE", "it's"},
        {"DQUOTE", "say \"hi\""},
        {"DOLLAR", "$HOME ${PATH} $(id) $1"},
        {"BACKTICK", "`id` and `uname`"},
        {"BACKSLASH", "a\\b\\\\c\\n\\"},
        {"NEWLINE", "line1\nline2"},
        {"NL_QUOTE", "it's\nmulti \"line\" $x `y` \\z\n"},
        {"TRAIL_NL", "value\n\n"},
        {"LEAD_NL", "\nvalue"},
        {"UTF8", "p\xc3\xa4ss \xe2\x9c\x93 \xf0\x9f\x94\x91"},
        {"SPACES", "  two  spaces  "},
        {"TAB", "a\tb"},
        {"HASH", "#not a comment"},
        {"GLOB", "* ? [a]"},
        {"TILDE", "~root"},
        {"SEMI", "a; rm -rf /tmp/nonexistent-colibri & echo"},
        {"ONLYQ", "'"},
        {"CR", "a\rb"},
        {"BANG", "!x !! ^a"},
};

/* The value of name after sourcing path in /bin/sh, exactly as printf %s prints it. */
static char *
sh_value(const char *path, const char *name, size_t *len)
{
	char *cmd, *out = xcalloc(1, 65536);
	FILE *p;
	size_t n;

	xasprintf(&cmd, "/bin/sh -c '. \"%s\" && printf %%s \"$%s\"'", path, name);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, 65535, p);
	assert_int_equal(pclose(p), 0);
	free(cmd);
	*len = n;
	return out;
}

static void
test_render_round_trip(void **state)
{
	struct tree *t = *state;
	char *root = tpath(t, "jails/T/root"), *envp, *text, *cause = NULL, *got;
	json_t *vars = json_object(), *back;
	size_t i, len, glen;
	struct stat sb;

	for (i = 0; i < sizeof hostile / sizeof *hostile; i++)
		json_object_set_new(vars, hostile[i].name, json_string(hostile[i].value));
	text = vault_render_env(vars, &len);
	assert_int_equal(strlen(text), len);
	assert_int_equal(vault_write_env(root, text, len, &cause), 0);
	assert_null(cause);
	free(text);
	envp = tpath(t, "jails/T/root/.env");
	assert_int_equal(lstat(envp, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	for (i = 0; i < sizeof hostile / sizeof *hostile; i++) {
		got = sh_value(envp, hostile[i].name, &glen);
		if (glen != strlen(hostile[i].value) || memcmp(got, hostile[i].value, glen) != 0)
			fail_msg("%s: sh read back \"%.*s\" (%zu bytes), wrote \"%s\"",
			         hostile[i].name, (int)glen, got, glen, hostile[i].value);
		free(got);
	}
	/* The daemon reads the same values back, evaluating nothing (issue 17). */
	assert_int_equal(vault_read_env(root, &back, &cause), 1);
	assert_null(cause);
	assert_int_equal(json_object_size(back), sizeof hostile / sizeof *hostile);
	for (i = 0; i < sizeof hostile / sizeof *hostile; i++)
		assert_string_equal(json_string_value(json_object_get(back, hostile[i].name)),
		                    hostile[i].value);
	vault_vars_free(back);
	/* Sorted, one assignment per key: the file lists the keys in order. */
	text = read_file(envp);
	assert_non_null(strstr(text, "\nBACKSLASH="));
	assert_true(strstr(text, "\nBACKSLASH=") < strstr(text, "\nUTF8="));
	free(text);
	assert_int_equal(count_prefixed(root, ".env."), 0);
	/* A second write replaces the file, still 0600, still no temporary left. */
	json_object_clear(vars);
	json_object_set_new(vars, "ONLY", json_string("new"));
	text = vault_render_env(vars, &len);
	assert_int_equal(vault_write_env(root, text, len, &cause), 0);
	free(text);
	got = sh_value(envp, "ONLY", &glen);
	assert_int_equal(glen, 3);
	assert_memory_equal(got, "new", 3);
	free(got);
	got = sh_value(envp, "PLAIN", &glen);
	assert_int_equal(glen, 0);
	free(got);
	assert_int_equal(lstat(envp, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(count_prefixed(root, ".env."), 0);
	json_decref(vars);
	unlink(envp);
	free(envp);
	free(root);
}

static void
test_write_refuses_symlinks(void **state)
{
	struct tree *t = *state;
	char *root = tpath(t, "jails/T/root"), *envp = tpath(t, "jails/T/root/.env"),
	     *victim = tpath(t, "outside/victim"), *cause = NULL, *s, *p;
	static const char text[] = "K=v\n";
	struct stat sb;
	int fd;

	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "original\n", 9), 9);
	close(fd);
	/* A planted .env symlink (to an existing file, and dangling). */
	assert_int_equal(symlink(victim, envp), 0);
	assert_int_equal(vault_write_env(root, text, sizeof text - 1, &cause), -1);
	assert_non_null(strstr(cause, "symlink"));
	free(cause);
	cause = NULL;
	s = read_file(victim);
	assert_string_equal(s, "original\n");
	free(s);
	assert_int_equal(lstat(envp, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	assert_int_equal(count_prefixed(root, ".env."), 0);
	unlink(envp);
	p = tpath(t, "outside/absent");
	assert_int_equal(symlink(p, envp), 0);
	assert_int_equal(vault_write_env(root, text, sizeof text - 1, &cause), -1);
	free(cause);
	cause = NULL;
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(count_prefixed(root, ".env."), 0);
	unlink(envp);
	free(p);
	/* A directory named .env. */
	assert_int_equal(mkdir(envp, 0700), 0);
	assert_int_equal(vault_write_env(root, text, sizeof text - 1, &cause), -1);
	free(cause);
	cause = NULL;
	rmdir(envp);
	/* A symlinked directory in the (supposedly canonical) path is not followed. */
	p = tpath(t, "jails/link");
	assert_int_equal(vault_write_env(p, text, sizeof text - 1, &cause), -1);
	assert_non_null(strstr(cause, "symlink"));
	free(cause);
	cause = NULL;
	assert_int_equal(count_prefixed(t->dir, "outside"), 1);
	free(p);
	p = tpath(t, "outside");
	assert_int_equal(count_prefixed(p, ".env"), 0);
	free(p);
	/* A missing root. */
	p = tpath(t, "jails/T/missing");
	assert_int_equal(vault_write_env(p, text, sizeof text - 1, &cause), -1);
	free(cause);
	free(p);
	unlink(victim);
	free(victim);
	free(envp);
	free(root);
}

/* A .env read back: the accepted hand-written forms, and every refusal naming no value. */
static void
test_parse_env(void **state)
{
	static const char ok[] = "# c\n\n  export A=1\r\nB='x y' # note\nC=\"l1\nl2 \\$\"\nD=\n";
	static const char *const bad[] = {
	        "A=$(touch /tmp/x)\n",
	        "A=\"$(id)\"\n",
	        "A=`id`\n",
	        "A=a b\n",
	        "A='open\n",
	        "A=1\nA=2\n",
	        "1A=x\n",
	        "A\n",
	        "A=~x\n",
	        "A=x;y\n",
	        "A='x'y\n",
	        "A=\"\xff\"\n",
	};
	json_t *v;
	char *cause = NULL;
	size_t i;

	(void)state;
	v = vault_parse_env(ok, sizeof ok - 1, &cause);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "A")), "1");
	assert_string_equal(json_string_value(json_object_get(v, "B")), "x y");
	assert_string_equal(json_string_value(json_object_get(v, "C")), "l1\nl2 $");
	assert_string_equal(json_string_value(json_object_get(v, "D")), "");
	assert_int_equal(json_object_size(v), 4);
	vault_vars_free(v);
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		v = vault_parse_env(bad[i], strlen(bad[i]), &cause);
		if (v != NULL)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(cause, "line "));
		assert_null(strstr(cause, "touch"));
		assert_null(strstr(cause, "id"));
		free(cause);
		cause = NULL;
	}
	v = vault_parse_env("A=1\0", 4, &cause);
	assert_null(v);
	free(cause);
}

/* vault_read_env: absent is 0; a symlink, a group-readable file or another's is refused. */
static void
test_read_env_refusals(void **state)
{
	struct tree *t = *state;
	char *root = tpath(t, "jails/T/root"), *envp = tpath(t, "jails/T/root/.env"),
	     *victim = tpath(t, "outside/victim"), *link2 = tpath(t, "jails/T/root/hard"),
	     *cause = NULL;
	json_t *v = NULL;
	int fd;

	assert_int_equal(vault_read_env(root, &v, &cause), 0);
	assert_null(v);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "K=v\n", 4), 4);
	close(fd);
	assert_int_equal(symlink(victim, envp), 0);
	assert_int_equal(vault_read_env(root, &v, &cause), -1);
	assert_non_null(strstr(cause, "symlink"));
	free(cause);
	cause = NULL;
	unlink(envp);
	fd = open(envp, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "K=v\n", 4), 4);
	close(fd);
	chmod(envp, 0640);
	assert_int_equal(vault_read_env(root, &v, &cause), -1);
	assert_non_null(strstr(cause, "mode 0600"));
	free(cause);
	cause = NULL;
	chmod(envp, 0600);
	assert_int_equal(link(envp, link2), 0); /* a second link: not as the vault writes it */
	assert_int_equal(vault_read_env(root, &v, &cause), -1);
	free(cause);
	cause = NULL;
	unlink(link2);
	assert_int_equal(vault_read_env(root, &v, &cause), 1);
	assert_string_equal(json_string_value(json_object_get(v, "K")), "v");
	vault_vars_free(v);
	unlink(envp);
	unlink(victim);
	free(root);
	free(envp);
	free(victim);
	free(link2);
}

/* ---- bw data dir removal ---- */

static void
test_remove_dir(void **state)
{
	struct tree *t = *state;
	char *dd = tpath(t, "state-vault-T"), *p, *victim = tpath(t, "outside/keep");
	int fd;

	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	tmkdir(t, "state-vault-T");
	tmkdir(t, "state-vault-T/sub");
	tmkdir(t, "state-vault-T/sub/deeper");
	p = tpath(t, "state-vault-T/data.json");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	free(p);
	p = tpath(t, "outside");
	tsymlink(t, p, "state-vault-T/sub/link"); /* must be unlinked, not entered */
	free(p);
	assert_int_equal(vault_remove_dir(dd), 0);
	assert_int_equal(access(dd, F_OK), -1);
	assert_int_equal(access(victim, F_OK), 0);
	assert_int_equal(vault_remove_dir(dd), 0); /* absent: nothing to do */
	/* The dir itself a symlink: refused, its target untouched. */
	p = tpath(t, "outside");
	assert_int_equal(symlink(p, dd), 0);
	free(p);
	assert_int_equal(vault_remove_dir(dd), -1);
	assert_int_equal(access(victim, F_OK), 0);
	unlink(dd);
	free(victim);
	free(dd);
}

/* ---- scrub ---- */

static void
test_scrub(void **state)
{
	const char *secrets[] = {"hunter22", NULL, "SESSIONKEY"};
	char msg[] = "bw: hunter22 rejected; session SESSIONKEY/SESSIONKEYhunter22.";
	char none[] = "nothing to hide";

	(void)state;
	vault_scrub(msg, secrets, sizeof secrets / sizeof *secrets);
	/* Adjacent matches make one run. */
	assert_string_equal(msg, "bw: *** rejected; session ***/***.");
	vault_scrub(none, secrets, sizeof secrets / sizeof *secrets);
	assert_string_equal(none, "nothing to hide");
}

/* Scrub msg (a copy of exactly its size, for ASan) and compare. */
static void
scrub_is(const char *msg, const char *const *secrets, size_t n, const char *want)
{
	size_t len = strlen(msg);
	char *m = heap_copy(msg, len + 1);

	vault_scrub(m, secrets, n);
	if (strcmp(m, want) != 0)
		fail_msg("scrub of \"%s\" gave \"%s\", not \"%s\"", msg, m, want);
	/* The bytes after the end are zeroed: no secret survives there. */
	for (size_t i = strlen(m); i < len + 1; i++)
		assert_int_equal(m[i], 0);
	free(m);
}

static void
test_scrub_substrings(void **state)
{
	const char *pw[] = {"MPW-master-pass-4711-zq"};
	const char *two[] = {"AAAAbbbbCCCC", "CCCCddddEEEE"};
	const char *shortish[] = {"abc", "xy", "1234567"};
	const char *empty[] = {"", NULL};

	(void)state;
	/* Any 8-byte or longer piece: a prefix, a middle, a suffix. */
	scrub_is("prefix MPW-mast| end", pw, 1, "prefix ***| end");
	scrub_is("mid ter-pass-47 x", pw, 1, "mid *** x");
	scrub_is("end 4711-zq", pw, 1, "end 4711-zq"); /* 7 bytes: kept */
	scrub_is("end s-4711-zq", pw, 1, "end ***");
	scrub_is("MPW-master-pass-4711-zq", pw, 1, "***");
	/* A cut-off prefix of 8 bytes at the very end. */
	scrub_is("failed: MPW-mast", pw, 1, "failed: ***");
	/* 7 bytes of a prefix stay: below the threshold. */
	scrub_is("failed: MPW-mas", pw, 1, "failed: MPW-mas");
	/* Overlapping pieces of two secrets make one run. */
	scrub_is("[AAAAbbbbCCCCddddEEEE]", two, 2, "[***]");
	scrub_is("[bbbbCCCCdddd]", two, 2, "[***]");
	/* Two pieces of one secret, separated by a byte. */
	scrub_is("ter-pass.MPW-mast", pw, 1, "***.***");
	/* Shorter secrets: whole occurrences from 3 bytes on. */
	scrub_is("abc abcd xy 1234567 123456", shortish, 3, "*** ***d xy *** 123456");
	scrub_is("nothing", empty, 2, "nothing");
	scrub_is("", pw, 1, "");
}

static void
test_scrub_utf8(void **state)
{
	/* "\u00e9t\u00e9-\u2713-secret" with multi-byte characters at both ends of a window. */
	const char *s[] = {"\xc3\xa9t\xc3\xa9-\xe2\x9c\x93-secret"};
	char buf[128];

	(void)state;
	/* A window that starts or ends inside a character widens to the whole character. */
	scrub_is("<\xc3\xa9t\xc3\xa9-\xe2\x9c\x93-se>", s, 1, "<***>");
	scrub_is("<\xa9t\xc3\xa9-\xe2\x9c\x93-se>", s, 1, "<***>");
	scrub_is("<x\xe2\x9c\x93-secret>", s, 1, "<x***>");
	/* Cutting after the scrub never splits a character. */
	snprintf(buf, sizeof buf,
	         "ab\xe2\x9c\x93"
	         "cd");
	vault_cut(buf, 4); /* would split the 3-byte check mark */
	assert_string_equal(buf, "ab");
	assert_int_equal(buf[3], 0);
	assert_int_equal(buf[4], 0);
	snprintf(buf, sizeof buf,
	         "ab\xe2\x9c\x93"
	         "cd");
	vault_cut(buf, 5);
	assert_string_equal(buf, "ab\xe2\x9c\x93");
	vault_cut(buf, 100);
	assert_string_equal(buf, "ab\xe2\x9c\x93");
	/* Scrub, then cut: the secret's prefix right at the cut is gone. */
	snprintf(buf, sizeof buf, "error: %s trailing", s[0]);
	vault_scrub(buf, s, 1);
	vault_cut(buf, 12);
	assert_string_equal(buf, "error: *** t");
}

/* A root given through a symlink anywhere in its path is not its own canonical path. */
static void
test_root_canonical(void **state)
{
	struct tree *t = *state;
	char *cause = NULL, *p, *link;

	p = tpath(t, "jails/T/root");
	assert_int_equal(vault_root_canonical(p, &cause), 0);
	free(p);
	p = tpath(t, "jails/T/root/");
	assert_int_equal(vault_root_canonical(p, &cause), 0);
	free(p);
	p = tpath(t, "jails/T/not-there-yet");
	assert_int_equal(vault_root_canonical(p, &cause), 0);
	free(p);
	/* Another tenant's root reached through a symlink inside the base. */
	link = tpath(t, "jails/U");
	p = tpath(t, "jails/T");
	assert_int_equal(symlink(p, link), 0);
	free(p);
	p = tpath(t, "jails/U/root");
	assert_int_equal(vault_root_canonical(p, &cause), -1);
	assert_non_null(strstr(cause, "must be its own canonical path"));
	free(cause);
	cause = NULL;
	assert_null(vault_contain(p, t->base, &cause));
	assert_non_null(strstr(cause, "must be its own canonical path"));
	free(cause);
	cause = NULL;
	free(p);
	free(link);
	p = tpath(t, "jails/T//root");
	assert_int_equal(vault_root_canonical(p, &cause), -1);
	free(cause);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_provider_env_forms),
	        cmocka_unit_test(test_provider_env_crlf),
	        cmocka_unit_test(test_provider_env_garbage),
	        cmocka_unit_test_setup_teardown(test_provider_env_mode, tree_setup, tree_teardown),
	        cmocka_unit_test(test_status),
	        cmocka_unit_test(test_server_matches),
	        cmocka_unit_test(test_collection),
	        cmocka_unit_test(test_items_valid),
	        cmocka_unit_test(test_items_refused),
	        cmocka_unit_test_setup_teardown(test_contain, tree_setup, tree_teardown),
	        cmocka_unit_test_setup_teardown(test_root_canonical, tree_setup, tree_teardown),
	        cmocka_unit_test_setup_teardown(test_render_round_trip, tree_setup, tree_teardown),
	        cmocka_unit_test_setup_teardown(test_write_refuses_symlinks, tree_setup,
	                                        tree_teardown),
	        cmocka_unit_test_setup_teardown(test_remove_dir, tree_setup, tree_teardown),
	        cmocka_unit_test(test_parse_env),
	        cmocka_unit_test_setup_teardown(test_read_env_refusals, tree_setup, tree_teardown),
	        cmocka_unit_test(test_scrub),
	        cmocka_unit_test(test_scrub_substrings),
	        cmocka_unit_test(test_scrub_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
