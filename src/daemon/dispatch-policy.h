/*
 * dispatch-policy.h -- the dispatcher's policy (CONFIG_DIR/dispatch.json)
 * and its decisions, as pure functions of values.
 *
 * The file says whether the dispatcher is on by default, which profile a
 * task's tags route it to, and the caps: how many claims the spawned agents
 * of this host may hold at once, in all, per profile and per tenant.  This
 * half parses the file (strictly: an unknown key, a wrong type or a cap out
 * of range is an error naming the key) and answers the two questions the
 * loop asks of every task at the head of the ready queue -- which profile?
 * may it start now, and if not, why? -- without a store, a clock or a
 * process; dispatch.c does the side effects.  So the "why" texts the
 * status shows are unit-tested (tests/unit/test_dispatch_policy.c).
 */
#ifndef COLIBRI_DISPATCH_POLICY_H
#define COLIBRI_DISPATCH_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The file's name inside the config directory. */
#define DISPATCH_FILE "dispatch.json"
/* The safety-net timer's default period, and its bounds (interval_ms). */
#define DISPATCH_INTERVAL_DEFAULT 2000
#define DISPATCH_INTERVAL_MIN     100
#define DISPATCH_INTERVAL_MAX     3600000
/* The largest cap a file may set. */
#define DISPATCH_CAP_MAX 100000

struct dispatch_policy {
	int enabled;           /* "enabled" (default false) */
	char *default_profile; /* or NULL */
	json_t *tags;          /* {"TAG": "PROFILE"} (never NULL) */
	long long cap_host;    /* -1: none */
	json_t *cap_profiles;  /* {"PROFILE": N} (never NULL) */
	json_t *cap_tenants;   /* {"TENANT": N} (never NULL) */
	int resume;            /* "resume": resume interrupted agents at start */
	long long interval_ms; /* the safety-net timer */
	char *digest;          /* the file's content, canonical (sorted keys): has it changed? */
};

/* The policy of no file: off, no profiles, no caps. */
void dispatch_policy_default(struct dispatch_policy *);
/*
 * Parse the file's object o (NULL: no file, the default) into *p.  0, or -1
 * with *cause (caller frees) naming the key that is wrong; *p is then the
 * default.  Free with dispatch_policy_clear.
 */
int dispatch_policy_parse(const json_t *o, struct dispatch_policy *p, char **cause);
void dispatch_policy_clear(struct dispatch_policy *);
/* Every profile the policy names (default and tags' values), once each: a new array. */
json_t *dispatch_policy_profiles(const struct dispatch_policy *);

/*
 * The profile a task with tags (an array of strings, NULL: none) runs
 * with: the profile of its first tag that has one, else the default, else
 * NULL.  Borrowed from the policy.
 */
const char *dispatch_policy_profile_of(const struct dispatch_policy *, const json_t *tags);

/* The claims held now: in all, and per profile and per tenant ({"NAME": N}). */
struct dispatch_used {
	long long host;
	json_t *profiles, *tenants; /* borrowed */
};

/*
 * May a task start now with profile (NULL: none routed) in tenant (NULL:
 * none)?  0 when it may; else 1 with why filled, the reason the status
 * shows: "no profile for its tags", "profile X parked until HH:MM:SS"
 * (parked_until, ms since the epoch, later than now; local time), "cap
 * reached: host 3/3", "cap reached: profile X 4/4", "cap reached: tenant
 * T 2/2".  Caps are checked host, profile, tenant in that order.
 */
int dispatch_policy_why(const struct dispatch_policy *, const struct dispatch_used *,
                        const char *profile, const char *tenant, int64_t parked_until, int64_t now,
                        char *why, size_t len);

#endif
