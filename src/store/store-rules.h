/*
 * store-rules.h -- the rules of the task board, below both backends.
 *
 * What a task may do next (who may touch a claimed task, which status
 * changes task-update allows, what makes a dependency acceptable, when a
 * task can be claimed, completed or released) is decided here, once, by
 * pure functions of the rows a backend has read; the backend runs the SQL
 * and asks.  So the SQLite and PostgreSQL backends give the same answers
 * and the same error messages, and neither calls back up into store.c
 * (which only dispatches).  A rule is a function of values, returns 0 when
 * the change is allowed and -1 with a protocol error in e otherwise.
 *
 * The file also holds the little the backends share besides the rules:
 * store_err_set (declared in store.h), the LIKE pattern of the skills
 * search, the bounded last_error of a failed run.  It is linked into
 * the daemon and into the PostgreSQL module (store-postgres.so), so it
 * depends on nothing but jansson, the C library and the few helpers of
 * src/common the module links in (xmalloc, utf8_cut_len).
 */
#ifndef COLIBRI_STORE_RULES_H
#define COLIBRI_STORE_RULES_H

#include <jansson.h>

#include "store/store.h"

/* agent (if given) owns the claim on task t (a task JSON object); else a conflict. */
int store_rule_owner(json_t *t, const char *agent, long long id, struct store_err *e);
/* Task t may be claimed by id: it is open (readiness is the backend's query). */
int store_rule_claimable(json_t *t, long long id, struct store_err *e);
/* Task t is claimed, by agent if agent is given: it may be completed or released. */
int store_rule_claimed(json_t *t, const char *agent, long long id, struct store_err *e);
/*
 * task-update may move a task from `from` to `to`: cancelled, or open again
 * from cancelled or failed ('failed' itself is set only by a failed run).
 */
int store_rule_status_change(const char *from, const char *to, long long id, struct store_err *e);
/* The attempts a task has after task-update moves it from `from` to `to`: a reopened failed task
 * starts over. */
long long store_rule_attempts_after(const char *from, const char *to, long long attempts);

/*
 * Claim epochs.  Every claim bumps a task's epoch; a caller that names an
 * epoch (non-zero) acts only on the claim it holds.  store_rule_epoch: epoch
 * is 0 or the task's; else a conflict naming both ("stale").
 */
int store_rule_epoch(json_t *t, long long epoch, long long id, struct store_err *e);
/*
 * Task t may be completed by agent with epoch (0: not checked): the epoch
 * holds and t is claimed by agent; or t is already done, the epoch given
 * is the one it was completed at, and agent is NULL or the owner that
 * completed it -- the same completion again: 0 with *repeated = 1, and the
 * caller changes nothing and emits nothing.
 */
int store_rule_complete(json_t *t, const char *agent, long long epoch, long long id, int *repeated,
                        struct store_err *e);
/*
 * A run of agent at epoch on task t failed: t must be claimed by agent
 * (any owner if NULL) at exactly that epoch, else a conflict.
 */
int store_rule_run_failed(json_t *t, const char *agent, long long epoch, long long id,
                          struct store_err *e);
/* The status after a failed run: failed once attempts (counting it) reach max_attempts, else open.
 */
const char *store_rule_failed_status(json_t *t);
/* The last_error kept for a failed run's reason: at most STORE_LAST_ERROR_MAX bytes, cut on a UTF-8
 * boundary; caller frees. */
#define STORE_LAST_ERROR_MAX 1024
/* A task whose max_attempts is unset (null) fails after this many failed runs. */
#define STORE_MAX_ATTEMPTS_DEFAULT 3
char *store_rule_last_error(const char *reason);

/*
 * What a backend knows about a dependency it is asked to add: does the
 * task exist, and would the edge close a cycle (asked only if it exists).
 */
struct store_dep_probe {
	int (*exists)(void *ctx, long long id);
	int (*cycles)(void *ctx, long long task, long long dep);
	void *ctx;
};
/*
 * v (one element of depends_on) may become a dependency of task: an
 * integer naming an existing task that does not already reach task.  The
 * dependency's id in *dep.
 */
int store_rule_dep(long long task, json_t *v, const struct store_dep_probe *p, long long *dep,
                   struct store_err *e);

/*
 * Task tags (task-create, task-update): tags is NULL (none) or an array of
 * at most STORE_TAGS_MAX distinct strings of 1..STORE_TAG_LEN_MAX bytes of
 * [A-Za-z0-9_.:-].  Returns the column's text, the array as compact JSON
 * ("[]" for none; caller frees), or NULL with invalid_argument in e.  The
 * characters need no JSON escape, so a backend writes the column's text
 * into a task's JSON as it is.
 */
#define STORE_TAGS_MAX    16
#define STORE_TAG_LEN_MAX 64
char *store_rule_tags(json_t *tags, struct store_err *e);
/* Is tag one tag's text (the characters and length store_rule_tags allows)?  1 or 0. */
int store_rule_tag_ok(const char *tag);

/* A LIKE pattern (ESCAPE '\\') matching query as a substring; caller frees. */
char *store_like_substring(const char *query);

/* An agent_put key: 1 text column, 2 integer column, 4 detail (JSON); 0 unknown. */
int store_agent_field_kind(const char *key);

#endif
