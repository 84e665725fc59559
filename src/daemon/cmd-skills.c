/*
 * cmd-skills.c -- the skills catalog: skills-list, skill-show, skills-reload.
 *
 * Skill directories (COLIBRI_SKILLS_DIRS, colon-separated; by default
 * STATE/skills and the config dir's skills/) are scanned at start and on
 * skills-reload by src/skills, and the result is indexed in the store's
 * skills table in one transaction, replacing the previous index; queries
 * read the table.  A bad SKILL.md is a per-file error in the reload's answer
 * (and the log) and does not stop the scan.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/skills-index.h"
#include "daemon/txn.h"
#include "skills/catalog.h"
#include "skills/skill.h"
#include "store/store.h"

static char **skill_dirs;
static size_t nskill_dirs;

static const char *schema = "CREATE TABLE IF NOT EXISTS skills ("
                            "  name TEXT PRIMARY KEY,"
                            "  description TEXT NOT NULL,"
                            "  path TEXT,"
                            "  fields TEXT NOT NULL,"
                            "  body TEXT NOT NULL,"
                            "  indexed INTEGER NOT NULL)";

static void
dirs_init(void)
{
	const char *v = getenv("COLIBRI_SKILLS_DIRS");
	char *copy, *d, *save = NULL, *defaults[2];
	struct stat sb;
	size_t i;

	if (v != NULL && *v != '\0') {
		copy = xstrdup(v);
		for (d = strtok_r(copy, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
			skill_dirs = xreallocarray(skill_dirs, nskill_dirs + 1, sizeof *skill_dirs);
			skill_dirs[nskill_dirs++] = xstrdup(d);
		}
		free(copy);
		return;
	}
	/* The defaults count only when they exist; a configured dir that is missing is an error. */
	skill_dirs = xcalloc(2, sizeof *skill_dirs);
	defaults[0] =
	        path_join(D.cfg.state_dir != NULL ? D.cfg.state_dir : PATH_DEFAULT_DATA, "skills");
	defaults[1] = path_join(PATH_DEFAULT_CONFIG_DIR, "skills");
	for (i = 0; i < 2; i++) {
		if (stat(defaults[i], &sb) == 0 && S_ISDIR(sb.st_mode))
			skill_dirs[nskill_dirs++] = defaults[i];
		else
			free(defaults[i]);
	}
}

/* Scan and replace the index.  Returns {count, errors: [{path, message}], dirs}. */
json_t *
skills_reload(void)
{
	struct skills_catalog cat;
	struct store_err e;
	sqlite3 *db = store_sqlite(D.store);
	sqlite3_stmt *q = NULL;
	json_t *errors = json_array(), *dirs = json_array(), *f;
	int64_t now = now_ms();
	size_t i, k;

	skills_catalog_init(&cat);
	skills_scan(&cat, (const char *const *)skill_dirs, nskill_dirs);
	for (i = 0; i < nskill_dirs; i++)
		json_array_append_new(dirs, json_string(skill_dirs[i]));
	for (i = 0; i < cat.nerrors; i++) {
		log_warnx("skills: %s", cat.errors[i].message);
		json_array_append_new(errors, json_pack("{s:s, s:s}", "path", cat.errors[i].path,
		                                        "message", cat.errors[i].message));
	}
	if (txn_write(&e) == -1 || sqlite3_exec(db, "DELETE FROM skills", NULL, NULL, NULL) != 0 ||
	    sqlite3_prepare_v2(db,
	                       "INSERT OR REPLACE INTO skills (name, description, path, fields, "
	                       "body, indexed) VALUES (?, ?, ?, ?, ?, ?)",
	                       -1, &q, NULL) != SQLITE_OK) {
		log_warnx("skills: cannot index: %s", sqlite3_errmsg(db));
		goto out;
	}
	for (i = 0; i < cat.nskills; i++) {
		const struct skill *sk = &cat.skills[i];
		char *fs;

		f = json_object();
		for (k = 0; k < sk->nfields; k++)
			json_object_set_new(f, sk->fields[k].key, json_string(sk->fields[k].value));
		fs = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(f);
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, sk->name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 2, sk->description, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 3, sk->path, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 4, fs, -1, free);
		sqlite3_bind_text(q, 5, sk->body != NULL ? sk->body : "", -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 6, now);
		if (sqlite3_step(q) != SQLITE_DONE)
			log_warnx("skills: indexing %s: %s", sk->name, sqlite3_errmsg(db));
	}
	log_info("skills: %zu indexed, %zu errors", cat.nskills, cat.nerrors);
	events_emit("skills.reloaded", json_pack("{s:I, s:I}", "count", (json_int_t)cat.nskills,
	                                         "errors", (json_int_t)cat.nerrors));
out:
	sqlite3_finalize(q);
	f = json_pack("{s:I, s:o, s:o}", "count", (json_int_t)cat.nskills, "errors", errors, "dirs",
	              dirs);
	skills_catalog_free(&cat);
	return f;
}

int
skills_index_init(char **cause)
{
	json_t *r;

	if (sqlite3_exec(store_sqlite(D.store), schema, NULL, NULL, NULL) != SQLITE_OK) {
		xasprintf(cause, "skills table: %s", sqlite3_errmsg(store_sqlite(D.store)));
		return -1;
	}
	dirs_init();
	r = skills_reload();
	json_decref(r);
	return 0;
}

void
skills_index_close(void)
{
	size_t i;

	for (i = 0; i < nskill_dirs; i++)
		free(skill_dirs[i]);
	free(skill_dirs);
	skill_dirs = NULL;
	nskill_dirs = 0;
}

static json_t *
skill_row(sqlite3_stmt *q, int with_body)
{
	json_t *s = json_object(), *fields;

	json_object_set_new(s, "name", json_string((const char *)sqlite3_column_text(q, 0)));
	json_object_set_new(s, "description", json_string((const char *)sqlite3_column_text(q, 1)));
	json_object_set_new(s, "path",
	                    sqlite3_column_type(q, 2) == SQLITE_NULL
	                            ? json_null()
	                            : json_string((const char *)sqlite3_column_text(q, 2)));
	fields = json_loads((const char *)sqlite3_column_text(q, 3), 0, NULL);
	json_object_set_new(s, "fields", fields != NULL ? fields : json_object());
	if (with_body)
		json_object_set_new(s, "body",
		                    json_string((const char *)sqlite3_column_text(q, 4)));
	return s;
}

static void
cmd_skills_list(struct cmd_req *r)
{
	const char *query = cmd_arg_str(r, "query");
	sqlite3 *db = store_sqlite(D.store);
	sqlite3_stmt *q;
	json_t *items = json_array();
	char *like = NULL;

	if (query != NULL && strlen(query) > 256) {
		json_decref(items);
		cmd_fail(r, ERR_INVALID_ARGUMENT, "query is longer than 256 bytes");
		return;
	}
	if (sqlite3_prepare_v2(db,
	                       "SELECT name, description, path, fields, body FROM skills WHERE ?1 "
	                       "IS NULL OR name LIKE ?1 ESCAPE '\\' OR description LIKE ?1 ESCAPE "
	                       "'\\' OR body LIKE ?1 ESCAPE '\\' ORDER BY name",
	                       -1, &q, NULL) != SQLITE_OK) {
		json_decref(items);
		cmd_fail(r, ERR_INTERNAL, "skills: %s", sqlite3_errmsg(db));
		return;
	}
	if (query != NULL) {
		/* A substring match: escape LIKE's own wildcards in the query. */
		size_t i, o = 0, n = strlen(query);
		like = xmalloc(2 * n + 3);
		like[o++] = '%';
		for (i = 0; i < n; i++) {
			if (query[i] == '%' || query[i] == '_' || query[i] == '\\')
				like[o++] = '\\';
			like[o++] = query[i];
		}
		like[o++] = '%';
		like[o] = '\0';
		sqlite3_bind_text(q, 1, like, -1, free);
	}
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(items, skill_row(q, 0));
	sqlite3_finalize(q);
	cmd_ok(r, json_pack("{s:o}", "items", items));
}

static void
cmd_skill_show(struct cmd_req *r)
{
	sqlite3 *db = store_sqlite(D.store);
	sqlite3_stmt *q;
	json_t *s = NULL;

	if (sqlite3_prepare_v2(db,
	                       "SELECT name, description, path, fields, body FROM skills "
	                       "WHERE name = ?",
	                       -1, &q, NULL) != SQLITE_OK) {
		cmd_fail(r, ERR_INTERNAL, "skills: %s", sqlite3_errmsg(db));
		return;
	}
	sqlite3_bind_text(q, 1, cmd_arg_str(r, "name"), -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW)
		s = skill_row(q, 1);
	sqlite3_finalize(q);
	if (s == NULL)
		cmd_fail(r, ERR_NOT_FOUND, "no skill named %.64s", cmd_arg_str(r, "name"));
	else
		cmd_ok(r, s);
}

static void
cmd_skills_reload(struct cmd_req *r)
{
	cmd_ok(r, skills_reload());
}

static const struct cmd_arg list_args[] = {{"query", ARG_STR, 0}, {NULL, 0, 0}};
static const struct cmd_arg show_args[] = {{"name", ARG_STR, 1}, {NULL, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0}};

const struct cmd_entry cmd_skills_entries[] = {
        {"skills-list", "skills-list {query?}", CMD_READ, list_args, cmd_skills_list},
        {"skill-show", "skill-show {name}", CMD_READ, show_args, cmd_skill_show},
        {"skills-reload", "skills-reload", CMD_WRITE, no_args, cmd_skills_reload},
        {NULL, NULL, 0, NULL, NULL},
};
