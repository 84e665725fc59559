/*
 * cmd-skills.c -- the skills catalog: skills-list, skill-show, skills-reload.
 *
 * Queries read the store's skills table; skills-reload asks the skills
 * subsystem (skills-index.c) to rescan the skill directories and replace
 * the index.
 */
#include <string.h>

#include "common/proto.h"
#include "daemon/cmd.h"
#include "daemon/daemon.h"
#include "daemon/skills-index.h"
#include "store/store.h"

static void
cmd_skills_list(struct cmd_req *r)
{
	const char *query = cmd_arg_str(r, "query");
	struct store_err e;
	json_t *res;

	if ((res = store_skills_list(D.store, query, &e)) == NULL)
		cmd_fail_error(r, &e);
	else
		cmd_ok(r, res);
}

static void
cmd_skill_show(struct cmd_req *r)
{
	struct store_err e;
	json_t *s;

	if ((s = store_skill_get(D.store, cmd_arg_str(r, "name"), &e)) == NULL)
		cmd_fail_error(r, &e);
	else
		cmd_ok(r, s);
}

static void
cmd_skills_reload(struct cmd_req *r)
{
	cmd_ok(r, skills_reload());
}

static const struct cmd_arg list_args[] = {{"query", ARG_STR, 0, 0, 256}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg show_args[] = {{"name", ARG_STR, 1, 0, 0}, {NULL, 0, 0, 0, 0}};
static const struct cmd_arg no_args[] = {{NULL, 0, 0, 0, 0}};

const struct cmd_entry cmd_skills_entries[] = {
        {CMD_SKILLS_LIST, CMD_READ, CMD_R_ALL, list_args, cmd_skills_list},
        {CMD_SKILL_SHOW, CMD_READ, CMD_R_ALL, show_args, cmd_skill_show},
        {CMD_SKILLS_RELOAD, CMD_WRITE, CMD_R_ADMIN | CMD_R_MEMBER, no_args, cmd_skills_reload},
        {NULL, 0, 0, NULL, NULL},
};
