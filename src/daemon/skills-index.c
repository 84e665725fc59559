/*
 * skills-index.c -- the skills subsystem: the catalog's index in the store.
 *
 * Skill directories (COLIBRI_SKILLS_DIRS, colon-separated; by default
 * STATE/skills and the config dir's skills/) are scanned at start (a row in
 * subsys.c) and on skills-reload by src/skills, and the result is indexed
 * in the store's skills table (store_skills_replace) in the current
 * transaction, replacing the previous index.  A bad SKILL.md is a per-file
 * error in the reload's answer (and the log) and does not stop the scan.
 * The commands that read the index live in cmd-skills.c.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/paths.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "common/proto.h"
#include "daemon/daemon.h"
#include "daemon/skills-index.h"
#include "daemon/events.h"
#include "daemon/txn.h"
#include "skills/catalog.h"
#include "skills/skill.h"
#include "store/store.h"

static char **skill_dirs;
static size_t nskill_dirs;

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

/* The catalog as store_skills_replace wants it. */
static json_t *
skills_json(const struct skills_catalog *cat)
{
	json_t *a = json_array(), *f;
	size_t i, k;

	for (i = 0; i < cat->nskills; i++) {
		const struct skill *sk = &cat->skills[i];

		f = json_object();
		for (k = 0; k < sk->nfields; k++)
			json_object_set_new(f, sk->fields[k].key, json_string(sk->fields[k].value));
		json_array_append_new(a, json_pack("{s:s, s:s, s:s?, s:o, s:s}", "name", sk->name,
		                                   "description", sk->description, "path", sk->path,
		                                   "fields", f, "body",
		                                   sk->body != NULL ? sk->body : ""));
	}
	return a;
}

/* Scan and replace the index.  Returns {count, errors: [{path, message}], dirs}. */
json_t *
skills_reload(void)
{
	struct skills_catalog cat;
	struct store_err e;
	json_t *errors = json_array(), *dirs = json_array(), *list, *res;
	size_t i;

	skills_catalog_init(&cat);
	skills_scan(&cat, (const char *const *)skill_dirs, nskill_dirs);
	for (i = 0; i < nskill_dirs; i++)
		json_array_append_new(dirs, json_string(skill_dirs[i]));
	for (i = 0; i < cat.nerrors; i++) {
		log_warnx("skills: %s", cat.errors[i].message);
		json_array_append_new(errors, json_pack("{s:s, s:s}", "path", cat.errors[i].path,
		                                        "message", cat.errors[i].message));
	}
	list = skills_json(&cat);
	if (txn_write(&e) == -1 || store_skills_replace(D.store, list, now_ms(), &e) == -1) {
		log_warnx("skills: cannot index: %s", e.msg);
	} else {
		log_info("skills: %zu indexed, %zu errors", cat.nskills, cat.nerrors);
		events_emit(EV_SKILLS_RELOADED,
		            json_pack("{s:I, s:I}", "count", (json_int_t)cat.nskills, "errors",
		                      (json_int_t)cat.nerrors));
	}
	json_decref(list);
	res = json_pack("{s:I, s:o, s:o}", "count", (json_int_t)cat.nskills, "errors", errors,
	                "dirs", dirs);
	skills_catalog_free(&cat);
	return res;
}

int
skills_index_init(char **cause)
{
	json_t *r;

	(void)cause; /* the store creates the skills table when it opens */
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
