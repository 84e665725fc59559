/*
 * agent.h -- hooks between the registry commands and the spawner.
 */
#ifndef COLIBRI_AGENT_H
#define COLIBRI_AGENT_H

#include <jansson.h>

/* Set by the spawner: adds live detail (glasspane snapshot) to a spawned agent object. */
extern void (*agent_detail_hook)(json_t *agent);

#endif
