/*
 * profiles.h -- agent profiles: named spawn defaults from the config
 * directory's profiles.json, reloaded on SIGHUP.
 *
 * A profile names a provider, a binary, args, a model, plain env, an env
 * file of secrets, a default confinement (jail, ro_paths), a restart
 * policy, max_attempts and a prompt template.  spawn-agent --profile NAME
 * starts from the profile and lets the request's own arguments override it
 * (profiles_apply builds the merged argument object; spawn_spec_parse then
 * checks it as any spawn's).  The env file's values reach only the agent's
 * environment: they are never listed, logged or put in a reply.
 */
#ifndef COLIBRI_PROFILES_H
#define COLIBRI_PROFILES_H

#include <jansson.h>

/* The file's name inside the config directory. */
#define PROFILES_FILE "profiles.json"

/* Subsystem entry: load the profiles; -1 with *cause refuses start-up. */
int profiles_init(char **cause);
void profiles_close(void);
/* SIGHUP: load again; on failure the old profiles stay and the cause is logged. */
void profiles_reload(void);
/* {"config_dir", "profiles": [...]}: names and settings, never a secret's value. */
json_t *profiles_list(void);
/*
 * The spawn arguments of profile name overridden by req's (every member but
 * "profile" and "provider"): a new object in *out, and the provider in
 * *provider (req's "provider" if set, else the profile's; a static name).
 * -1 with *cause (no secret in it) when there is no such profile.
 */
int profiles_apply(const char *name, json_t *req, json_t **out, const char **provider,
                   char **cause);

#endif
