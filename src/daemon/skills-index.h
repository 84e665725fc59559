/*
 * skills-index.h -- the skills subsystem: the catalog's index in the store
 * (skills-index.c; its commands are in cmd-skills.c).
 */
#ifndef COLIBRI_SKILLS_INDEX_H
#define COLIBRI_SKILLS_INDEX_H

#include <jansson.h>

int skills_index_init(char **cause);
void skills_index_close(void);
/* Rescan the skill directories and replace the index: {count, errors, dirs}. */
json_t *skills_reload(void);

#endif
