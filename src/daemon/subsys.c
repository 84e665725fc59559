/*
 * subsys.c -- starts and stops the subsystems in a fixed order.
 *
 * Each subsystem exports an entry in subsystems[]; start-up runs them in
 * order, shutdown in order, close in reverse.  This table is the only
 * place a subsystem is started: the cmd-*.c files call down into the
 * subsystems and nothing calls up into them.
 */
#include <stddef.h>

#include "daemon/cache.h"
#include "daemon/daemon.h"
#include "daemon/dispatch.h"
#include "daemon/inventory.h"
#include "daemon/notify.h"
#include "daemon/profiles.h"
#include "daemon/retention.h"
#include "daemon/skills-index.h"
#include "job/job.h"
#include "daemon/spawner.h"
#include "daemon/subsys.h"
#include "daemon/vault-run.h"

struct subsys {
	const char *name;
	int (*init)(char **cause);
	void (*shutdown)(void);
	int (*busy)(void);
	void (*close)(void);
};

/* The child-process layer first: everything after it may start children. */
static int
jobs_init(char **cause)
{
	(void)cause;
	job_setup(D.loop, D.cfg.state_dir != NULL ? D.cfg.state_dir : D.cfg.db_path);
	return 0;
}

static const struct subsys subsystems[] = {
        {"job", jobs_init, NULL, NULL, job_close_all},
        {"profiles", profiles_init, NULL, NULL, profiles_close},
        {"spawner", spawner_init, spawner_shutdown, spawner_busy, spawner_close},
        {"vault", vault_init, vault_shutdown, vault_busy, vault_close},
        {"cache", cache_init, NULL, NULL, cache_close},
        {"inventory", inventory_init, NULL, inventory_busy, inventory_close},
        {"skills", skills_index_init, NULL, NULL, skills_index_close},
        {"notify", notify_init, notify_shutdown, notify_busy, notify_free},
        {"dispatch", dispatch_init, dispatch_shutdown, NULL, dispatch_close},
        {"retention", retention_init, NULL, NULL, retention_close},
        {NULL, NULL, NULL, NULL, NULL},
};

int
subsys_init(char **cause)
{
	const struct subsys *s;

	for (s = subsystems; s->name != NULL; s++)
		if (s->init != NULL && s->init(cause) == -1)
			return -1;
	return 0;
}

void
subsys_shutdown(void)
{
	const struct subsys *s;

	for (s = subsystems; s->name != NULL; s++)
		if (s->shutdown != NULL)
			s->shutdown();
}

int
subsys_busy(void)
{
	const struct subsys *s;

	for (s = subsystems; s->name != NULL; s++)
		if (s->busy != NULL && s->busy())
			return 1;
	return 0;
}

void
subsys_close(void)
{
	size_t n = sizeof subsystems / sizeof *subsystems - 1;

	while (n-- > 0)
		if (subsystems[n].close != NULL)
			subsystems[n].close();
}
