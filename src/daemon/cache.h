/*
 * cache.h -- the cache subsystem (cache.c): the price table and the
 * per-session prompt memory that cmd-cache.c's commands use.
 */
#ifndef COLIBRI_CACHE_SUBSYS_H
#define COLIBRI_CACHE_SUBSYS_H

struct prompt;
struct usage_prices;

int cache_init(char **cause);
void cache_close(void);
/*
 * The previous prompt assembled for session (zeroed when there was none),
 * owned by the cache: the caller may free it and store a new one in its
 * place.  Marks the session most recently used; evicts the least.
 */
struct prompt *cache_last_prompt(const char *session);
/* The COLIBRI_PRICES table (borrowed), or NULL when none was given. */
const struct usage_prices *cache_prices(void);

#endif
