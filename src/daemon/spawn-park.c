/*
 * spawn-park.c -- quota parking: a run that a provider refused for volume waits for the reset.
 *
 * When a run ends on a rate-limit or quota error (the glasspane's quota
 * flag: pi's final errorMessage, its auto_retry_* giving up, zot's error;
 * glasspane/quota.h reads them), restarting by the crash schedule would
 * either hammer the provider or, worse, burn the restart budget and fail a
 * task that only needed to wait a minute.  So the run machine parks it
 * instead (park_run, called where a finished run is judged):
 *
 *   - the agent goes blocked with reason "quota until 15:04" (the reset the
 *     text gave, in the daemon's local time; "15:04:05" when the reset is
 *     not on a whole minute), or, when the text gave no time,
 *     "quota, retry in N s" on a schedule of its own: 30 s doubling to
 *     30 min, each delay drawn from its upper quarter ([3/4 d, d]) so
 *     parked agents do not all return at once -- never an invented reset;
 *   - its run machine waits in backoff until then, and restarts the same
 *     spec on the same session (act_restart): a task-bound run keeps its
 *     claim meanwhile (the run is not over, task_settle does not run);
 *   - a park does not count against restart.max: waiting out a quota is
 *     not a failure of the agent.  A run that ends otherwise starts the
 *     no-time schedule over;
 *   - the agent's profile (its credential) is parked too, until the same
 *     time: spawner_parked_until tells the dispatcher not to start more
 *     on it.  An agent without a profile parks only itself;
 *   - kill-agent or shutdown while parked ends the agent at once (error,
 *     "stopped while parked (quota until 15:04)"): its task goes back as
 *     for any stopped run.
 * Only JSON-mode runs park: an RPC agent's failed prompt does not end its
 * process, and it is judged as today.
 *
 * COLIBRI_QUOTA_BACKOFF_MS (tests only, 100 to 1800000) sets the first
 * no-time delay; the cap stays 60 times it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/spawner-agent.h"

/* The no-time schedule's first delay and its cap (60 times it: 30 s to 30 min). */
#define PARK_FIRST_MS 30000
#define PARK_CAP_X    60
/* A reset already past (a clock skew, pi's own retries outlasting it): restart this soon. */
#define PARK_MIN_MS 1000

/* A parked profile (a credential) and when its park ends. */
struct park_profile {
	char *name;
	int64_t until;
	struct park_profile *next;
};

static struct park_profile *parked;

static int64_t
park_first_ms(void)
{
	static int64_t first = -1;
	const char *v;

	if (first < 0) {
		first = PARK_FIRST_MS;
		if ((v = getenv("COLIBRI_QUOTA_BACKOFF_MS")) != NULL && atoll(v) >= 100 &&
		    atoll(v) <= 1800000)
			first = atoll(v);
	}
	return first;
}

/* The n-th no-time delay (n from 0), capped, drawn from [3/4 d, d]. */
static int64_t
park_schedule(int n)
{
	int64_t d = park_first_ms(), cap = park_first_ms() * PARK_CAP_X;
	uint32_t r = 0;

	while (n-- > 0 && d < cap)
		d *= 2;
	if (d > cap)
		d = cap;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint32_t)now_ms();
	return d - (int64_t)(r % (uint32_t)(d / 4 + 1));
}

/* "quota until 15:04" (a whole minute) or "quota until 15:04:05", local time. */
static void
park_reason_until(char *buf, size_t n, int64_t until)
{
	time_t t = (time_t)(until / 1000);
	struct tm tm;
	char hm[16];

	if (localtime_r(&t, &tm) == NULL) {
		snprintf(buf, n, "quota until %lld ms", (long long)until);
		return;
	}
	strftime(hm, sizeof hm, until % 60000 == 0 ? "%H:%M" : "%H:%M:%S", &tm);
	snprintf(buf, n, "quota until %s", hm);
}

/* The profile's park runs at least until until. */
static void
park_profile(const char *name, int64_t until)
{
	struct park_profile *p;

	if (name == NULL)
		return;
	for (p = parked; p != NULL; p = p->next)
		if (strcmp(p->name, name) == 0)
			break;
	if (p == NULL) {
		p = xcalloc(1, sizeof *p);
		p->name = xstrdup(name);
		p->next = parked;
		parked = p;
	}
	if (until > p->until)
		p->until = until;
}

/* Forget the parks that are over. */
static void
park_prune(int64_t now)
{
	struct park_profile **pp = &parked, *p;

	while ((p = *pp) != NULL) {
		if (p->until > now) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		free(p->name);
		free(p);
	}
}

int64_t
spawner_parked_until(const char *profile)
{
	struct park_profile *p;

	park_prune(now_ms());
	if (profile == NULL)
		return 0;
	for (p = parked; p != NULL; p = p->next)
		if (strcmp(p->name, profile) == 0)
			return p->until;
	return 0;
}

int
park_run(struct agent *a)
{
	struct glasspane_transition t;
	int64_t now = now_ms(), until = a->gp.quota_until_ms;
	char reason[GLASSPANE_REASON_MAX];

	if (a->gp.state != GLASSPANE_ERROR || !a->gp.quota || a->stopping || D.shutting_down ||
	    a->faulted || a->spec.mode != GLASSPANE_MODE_JSON) {
		a->parks = 0;
		return 0;
	}
	if (until > 0) {
		if (until < now + PARK_MIN_MS)
			until = now + PARK_MIN_MS;
		park_reason_until(reason, sizeof reason, until);
	} else {
		until = now + park_schedule(a->parks);
		snprintf(reason, sizeof reason, "quota, retry in %lld s",
		         (long long)((until - now + 999) / 1000));
	}
	a->parks++;
	a->parked_until = until;
	a->backoff_ms = until - now;
	park_profile(a->spec.profile, until);
	log_info("agent %s: %s (park %d; profile %s): %s", a->id, reason, a->parks,
	         a->spec.profile != NULL ? a->spec.profile : "none", a->gp.last_error);
	agent_transition(a, glasspane_park(&a->gp, reason, now, &t), &t);
	return 1;
}

void
park_stopped(struct agent *a)
{
	struct glasspane_transition t;
	char why[GLASSPANE_REASON_MAX + 32];

	if (a->parked_until == 0)
		return;
	snprintf(why, sizeof why, "stopped while parked (%s)", a->gp.reason);
	a->parked_until = 0;
	agent_transition(a, glasspane_fault(&a->gp, why, "stop", now_ms(), &t), &t);
}

void
park_gave_up(struct agent *a)
{
	struct held_transition *h;

	if (!glasspane_gave_up(&a->gp, a->restarts))
		return;
	log_info("agent %s: %s", a->id, a->gp.reason);
	/* The run's error transition, held for this step's write, says it. */
	h = a->nheld > 0 ? &a->held[a->nheld - 1] : NULL;
	if (h != NULL && h->to == GLASSPANE_ERROR) {
		snprintf(h->reason, sizeof h->reason, "%s", a->gp.reason);
		return;
	}
	/* The error came earlier (a line): a transition of its own carries the new reason. */
	agent_transition(a, 1,
	                 &(struct glasspane_transition){GLASSPANE_ERROR, GLASSPANE_ERROR,
	                                                a->gp.reason, "restart policy", now_ms()});
}
