/*
 * notify-policy.h -- the notification policy: CONFIG_DIR/notify.json parsed
 * (notify-policy.c), for notify.c.
 *
 *   {"command": ["/abs/hook", "arg", ...],   the hook's argv (required)
 *    "on": ["agent.blocked", ...],           the kinds wanted (default all)
 *    "timeout_ms": 10000,                    its whole tree killed then
 *    "max_queue": 100,                       notifications waiting, at most
 *    "dedup_ms": 0}                          per-agent repeat window
 */
#ifndef COLIBRI_NOTIFY_POLICY_H
#define COLIBRI_NOTIFY_POLICY_H

#include <stdint.h>

/* The kinds of notification, in the order of notify_kind_names. */
enum nkind { NK_BLOCKED, NK_PARKED, NK_FAILED, NK_DRAINED, NK_COUNT };

extern const char *const notify_kind_names[NK_COUNT];

struct notify_policy {
	char **argv; /* NULL-terminated; NULL: no notifications */
	unsigned on; /* a bit per kind (1u << NK_*) */
	int64_t timeout_ms, dedup_ms, max_queue;
};

/*
 * Parse path into *p (the defaults for what it leaves out).  A missing file
 * is 0 with p->argv NULL: no notifications.  -1 with *cause ("PATH: why")
 * for a file that is not trusted, not JSON, or holds a bad key or value.
 */
int notify_policy_load(const char *path, struct notify_policy *p, char **cause);
/* Free what p holds and clear it (NULL-safe for a cleared policy). */
void notify_policy_free(struct notify_policy *p);

#endif
