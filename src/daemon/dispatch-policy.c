/*
 * dispatch-policy.c -- dispatch.json parsed, and the dispatcher's
 * decisions made, without a side effect.
 *
 * The file is held to profiles.json's strictness (config-file.h loads it;
 * here every key is known and every value typed, and a wrong one names
 * its key).  A tag routes to one profile; the first of a task's tags that
 * routes decides, so a task tagged [urgent, rust] with only "rust" routed
 * runs with rust's profile.  Caps are claims: dispatch.c counts them from
 * the board and asks dispatch_policy_why before every start, so a cap is
 * a bound the loop never passes, not a target it steers towards.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xmalloc.h"
#include "daemon/dispatch-policy.h"

void
dispatch_policy_default(struct dispatch_policy *p)
{
	memset(p, 0, sizeof *p);
	p->tags = json_object();
	p->cap_host = -1;
	p->cap_profiles = json_object();
	p->cap_tenants = json_object();
	p->interval_ms = DISPATCH_INTERVAL_DEFAULT;
	p->digest = xstrdup("");
}

void
dispatch_policy_clear(struct dispatch_policy *p)
{
	free(p->default_profile);
	json_decref(p->tags);
	json_decref(p->cap_profiles);
	json_decref(p->cap_tenants);
	free(p->digest);
	memset(p, 0, sizeof *p);
}

static int bad(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* *cause from fmt; -1. */
static int
bad(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	xvasprintf(cause, fmt, ap);
	va_end(ap);
	return -1;
}

static int
is_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 128 && strchr(s, '\n') == NULL;
}

/* A cap: an integer 0..DISPATCH_CAP_MAX. */
static int
cap_of(const json_t *v, long long *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > DISPATCH_CAP_MAX)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* {"NAME": cap, ...} into a new object of the same; -1 with cause naming what. */
static int
cap_map(const json_t *o, const char *what, json_t **out, char **cause)
{
	const char *k;
	json_t *v;
	long long n;

	if (!json_is_object(o))
		return bad(cause, "caps.%s must be an object of NAME: N", what);
	json_object_foreach((json_t *)o, k, v)
	{
		if (!is_name(k) || cap_of(v, &n) == -1) {
			xasprintf(cause, "caps.%s: \"%.128s\" must be a name with a cap of 0 to %d",
			          what, k, DISPATCH_CAP_MAX);
			return -1;
		}
		json_object_set_new(*out, k, json_integer(n));
	}
	return 0;
}

static int
parse_caps(const json_t *c, struct dispatch_policy *p, char **cause)
{
	static const char *const keys[] = {"host", "profiles", "tenants", NULL};
	const char *k;
	json_t *v;
	size_t i;

	if (!json_is_object(c))
		return bad(cause, "%s must be an object", "caps");
	json_object_foreach((json_t *)c, k, v)
	{
		for (i = 0; keys[i] != NULL && strcmp(k, keys[i]) != 0; i++)
			;
		if (keys[i] == NULL)
			return bad(cause, "caps: unknown key \"%.64s\" (host, profiles, tenants)",
			           k);
	}
	if ((v = json_object_get(c, "host")) != NULL && cap_of(v, &p->cap_host) == -1) {
		xasprintf(cause, "caps.host must be an integer from 0 to %d", DISPATCH_CAP_MAX);
		return -1;
	}
	if ((v = json_object_get(c, "profiles")) != NULL &&
	    cap_map(v, "profiles", &p->cap_profiles, cause) == -1)
		return -1;
	if ((v = json_object_get(c, "tenants")) != NULL &&
	    cap_map(v, "tenants", &p->cap_tenants, cause) == -1)
		return -1;
	return 0;
}

static int
parse_tags(const json_t *t, struct dispatch_policy *p, char **cause)
{
	const char *k;
	json_t *v;

	if (!json_is_object(t))
		return bad(cause, "%s must be an object of TAG: PROFILE", "tags");
	json_object_foreach((json_t *)t, k, v)
	{
		if (!json_is_string(v) || !is_name(json_string_value(v))) {
			xasprintf(cause, "tags: \"%.64s\" must name a profile (a string)", k);
			return -1;
		}
		json_object_set(p->tags, k, v);
	}
	return 0;
}

/* The scalar keys: enabled, default_profile, resume, interval_ms. */
static int
parse_scalars(const json_t *o, struct dispatch_policy *p, char **cause)
{
	json_t *v;

	if ((v = json_object_get(o, "enabled")) != NULL && !json_is_boolean(v))
		return bad(cause, "%s must be true or false", "enabled");
	p->enabled = json_is_true(v);
	if ((v = json_object_get(o, "resume")) != NULL && !json_is_boolean(v))
		return bad(cause, "%s must be true or false", "resume");
	p->resume = json_is_true(v);
	if ((v = json_object_get(o, "default_profile")) != NULL) {
		if (!json_is_string(v) || !is_name(json_string_value(v)))
			return bad(cause, "%s must name a profile (a string)", "default_profile");
		p->default_profile = xstrdup(json_string_value(v));
	}
	if ((v = json_object_get(o, "interval_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < DISPATCH_INTERVAL_MIN ||
		    json_integer_value(v) > DISPATCH_INTERVAL_MAX) {
			xasprintf(cause, "interval_ms must be an integer from %d to %d",
			          DISPATCH_INTERVAL_MIN, DISPATCH_INTERVAL_MAX);
			return -1;
		}
		p->interval_ms = json_integer_value(v);
	}
	return 0;
}

int
dispatch_policy_parse(const json_t *o, struct dispatch_policy *p, char **cause)
{
	static const char *const keys[] = {"enabled", "default_profile", "tags", "caps",
	                                   "resume",  "interval_ms",     NULL};
	const char *k;
	json_t *v;
	size_t i;

	dispatch_policy_default(p);
	if (o == NULL)
		return 0;
	json_object_foreach((json_t *)o, k, v)
	{
		for (i = 0; keys[i] != NULL && strcmp(k, keys[i]) != 0; i++)
			;
		if (keys[i] == NULL) {
			bad(cause,
			    "unknown key \"%.64s\" (enabled, default_profile, tags, caps, resume, "
			    "interval_ms)",
			    k);
			goto fail;
		}
	}
	if (parse_scalars(o, p, cause) == -1 ||
	    ((v = json_object_get(o, "tags")) != NULL && parse_tags(v, p, cause) == -1) ||
	    ((v = json_object_get(o, "caps")) != NULL && parse_caps(v, p, cause) == -1))
		goto fail;
	free(p->digest);
	p->digest = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	return 0;
fail:
	dispatch_policy_clear(p);
	dispatch_policy_default(p);
	return -1;
}

static void
add_once(json_t *a, const char *name)
{
	size_t i;

	for (i = 0; i < json_array_size(a); i++)
		if (strcmp(json_string_value(json_array_get(a, i)), name) == 0)
			return;
	json_array_append_new(a, json_string(name));
}

json_t *
dispatch_policy_profiles(const struct dispatch_policy *p)
{
	json_t *a = json_array(), *v;
	const char *k;

	if (p->default_profile != NULL)
		add_once(a, p->default_profile);
	json_object_foreach(p->tags, k, v) add_once(a, json_string_value(v));
	return a;
}

const char *
dispatch_policy_profile_of(const struct dispatch_policy *p, const json_t *tags)
{
	size_t i;
	json_t *v;

	for (i = 0; i < json_array_size(tags); i++) {
		const char *t = json_string_value(json_array_get(tags, i));
		if (t != NULL && (v = json_object_get(p->tags, t)) != NULL)
			return json_string_value(v);
	}
	return p->default_profile;
}

static long long
used_of(const json_t *counts, const char *name)
{
	return json_integer_value(json_object_get(counts, name));
}

int
dispatch_policy_why(const struct dispatch_policy *p, const struct dispatch_used *u,
                    const char *profile, const char *tenant, int64_t parked_until, int64_t now,
                    char *why, size_t len)
{
	json_t *cap;
	char hms[16];
	time_t t;
	struct tm tm;

	if (profile == NULL) {
		snprintf(why, len, "no profile for its tags");
		return 1;
	}
	if (parked_until > now) {
		t = (time_t)(parked_until / 1000);
		localtime_r(&t, &tm);
		strftime(hms, sizeof hms, "%H:%M:%S", &tm);
		snprintf(why, len, "profile %s parked until %s", profile, hms);
		return 1;
	}
	if (p->cap_host >= 0 && u->host >= p->cap_host) {
		snprintf(why, len, "cap reached: host %lld/%lld", u->host, p->cap_host);
		return 1;
	}
	if ((cap = json_object_get(p->cap_profiles, profile)) != NULL &&
	    used_of(u->profiles, profile) >= json_integer_value(cap)) {
		snprintf(why, len, "cap reached: profile %s %lld/%lld", profile,
		         used_of(u->profiles, profile), (long long)json_integer_value(cap));
		return 1;
	}
	if (tenant != NULL && (cap = json_object_get(p->cap_tenants, tenant)) != NULL &&
	    used_of(u->tenants, tenant) >= json_integer_value(cap)) {
		snprintf(why, len, "cap reached: tenant %s %lld/%lld", tenant,
		         used_of(u->tenants, tenant), (long long)json_integer_value(cap));
		return 1;
	}
	return 0;
}
