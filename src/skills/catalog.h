/*
 * catalog.h -- the skills catalog: every skill under the configured dirs.
 *
 * A skills directory holds one subdirectory per skill, each with a SKILL.md.
 * skills_scan reads them all and keeps going past bad ones: every file that
 * fails (bad front matter, too large, a symlink, a duplicate name) becomes an
 * error entry {path, message} beside the good skills.  The daemon builds a
 * fresh catalog on skills-reload and swaps it in; skills-list, skill-show
 * and search read it.
 *
 * Rules: entries are visited in name order, so with several dirs or
 * duplicate names the first dir and the first name win, every run; names
 * starting with '.' are skipped; symlinks are never followed out of a
 * skills dir (a symlinked skill folder or SKILL.md is an error, not a
 * skill); SKILL.md must be a regular file of at most SKILL_MAX_BYTES; a
 * subdirectory without SKILL.md is not a skill and not an error.
 */
#ifndef COLIBRI_CATALOG_H
#define COLIBRI_CATALOG_H

#include <stddef.h>

#include <jansson.h>

#include "skill.h"

struct skills_error {
	char *path;
	char *message; /* includes path and line when a parse failed */
};

struct skills_catalog {
	struct skill *skills; /* sorted by name */
	size_t nskills;
	struct skills_error *errors; /* in scan order */
	size_t nerrors;
};

void skills_catalog_init(struct skills_catalog *);
void skills_catalog_free(struct skills_catalog *);
/*
 * Scan dirs (in priority order) into cat, which must be freshly initialised.
 * Returns the number of errors recorded; never stops early.
 */
size_t skills_scan(struct skills_catalog *cat, const char *const *dirs, size_t ndirs);
/* The skill named name, or NULL.  Points into cat. */
const struct skill *skills_find(const struct skills_catalog *, const char *name);
/*
 * Skills whose name, description or body contains query, ignoring ASCII
 * case (an empty or NULL query matches all).  Returns the count and sets
 * *out to an array of pointers into cat (caller frees the array only).
 */
size_t skills_search(const struct skills_catalog *, const char *query, const struct skill ***out);
/*
 * {"items": [skill..], "errors": [{"path", "message"}..]}: the skills matching
 * query (see skills_search), rendered by skill_to_json.  New reference.
 */
json_t *skills_catalog_to_json(const struct skills_catalog *, const char *query, int with_body);

#endif
