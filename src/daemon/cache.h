/*
 * cache.h -- prompt assembly, usage metering and host status (cmd-cache.c).
 */
#ifndef COLIBRI_CACHE_SUBSYS_H
#define COLIBRI_CACHE_SUBSYS_H

#include <jansson.h>

int cache_init(char **cause);
int cache_busy(void);
void cache_close(void);
/* The latest runtime inventory manifest (borrowed), or NULL. */
json_t *cache_host_status(void);

#endif
