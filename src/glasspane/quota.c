/*
 * quota.c -- read a provider's rate-limit or quota error (quota.h).
 *
 * Two passes over the text.  The first decides whether it is such an error
 * at all: an HTTP 429 standing as a number of its own, or one of the words
 * providers use ("rate limit", "too many requests", "quota",
 * RESOURCE_EXHAUSTED, "usage limit").  The second looks for the reset next
 * to the anchors that announce one:
 *
 *   retry-after-ms N                 a wait in ms
 *   retry-after N | <HTTP date>      a wait in seconds, or a time
 *   retry after / try again in / retry in <duration>   a wait with a unit
 *   try again at / reset(s) [at|in] <time> | <duration> | <epoch seconds>
 *
 * A duration is number-unit pairs ("1m20s", "2.5s", "3 minutes", "2 days 3
 * hours"); a time is ISO 8601 with a zone, an HTTP date, or a time of day
 * with UTC/GMT/Z.  A number without a unit counts only after Retry-After
 * (the header's unit is seconds).  Whatever is not certain is dropped: the
 * caller falls back on its own schedule rather than a guessed reset.
 */
#include <stddef.h>
#include <string.h>

#include "quota.h"

#define MS_SEC  1000LL
#define MS_MIN  (60 * MS_SEC)
#define MS_HOUR (60 * MS_MIN)
#define MS_DAY  (24 * MS_HOUR)
/* A reset this far in the past is taken as "now" (clocks differ); older ones as wrong. */
#define PAST_SLACK_MS (5 * MS_MIN)

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(int c)
{
	c = lower(c);
	return c >= 'a' && c <= 'z';
}

/* Does p start with word (case-insensitive)? */
static int
starts(const char *p, const char *word)
{
	for (; *word != '\0'; p++, word++)
		if (lower((unsigned char)*p) != *word)
			return 0;
	return 1;
}

/* The first place at or after p where needle (lower case) starts, case-insensitive; NULL. */
static const char *
ci_find(const char *p, const char *needle)
{
	for (; *p != '\0'; p++)
		if (starts(p, needle))
			return p;
	return NULL;
}

static const char *
skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'')
		p++;
	return p;
}

/* Spaces and one ':' or '=' between a name and its value. */
static const char *
skip_sep(const char *p)
{
	p = skip_space(p);
	if (*p == ':' || *p == '=')
		p = skip_space(p + 1);
	return p;
}

/* ---- is it one? ---- */

static int
has_429(const char *t)
{
	const char *p;

	for (p = t; (p = strstr(p, "429")) != NULL; p += 3)
		if ((p == t || !is_digit((unsigned char)p[-1])) && !is_digit((unsigned char)p[3]))
			return 1;
	return 0;
}

static int
is_quota_text(const char *t)
{
	static const char *const words[] = {"rate limit",         "rate-limit",        "rate_limit",
	                                    "ratelimit",          "too many requests", "quota",
	                                    "resource_exhausted", "usage limit"};
	size_t i;

	if (has_429(t))
		return 1;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (ci_find(t, words[i]) != NULL)
			return 1;
	return 0;
}

/* ---- numbers and durations ---- */

/* Up to 12 digits and an optional fraction (kept to thousandths); the end, or NULL. */
static const char *
read_number(const char *p, int64_t *whole, int64_t *milli)
{
	int n = 0, f = 0;

	*whole = 0;
	*milli = 0;
	for (; is_digit((unsigned char)*p); p++)
		if (n++ < 12)
			*whole = *whole * 10 + (*p - '0');
	if (n == 0 || n > 12)
		return NULL;
	if (*p == '.' && is_digit((unsigned char)p[1]))
		for (p++; is_digit((unsigned char)*p); p++)
			if (f++ < 3)
				*milli += (*p - '0') * (f == 1 ? 100 : f == 2 ? 10 : 1);
	return p;
}

/* The unit word at p in ms (0: not a unit); *end after it. */
static int64_t
read_unit(const char *p, const char **end)
{
	static const struct {
		const char *w;
		int64_t ms;
	} units[] = {
	        {"ms", 1},           {"msec", 1},         {"msecs", 1},        {"millisecond", 1},
	        {"milliseconds", 1}, {"s", MS_SEC},       {"sec", MS_SEC},     {"secs", MS_SEC},
	        {"second", MS_SEC},  {"seconds", MS_SEC}, {"m", MS_MIN},       {"min", MS_MIN},
	        {"mins", MS_MIN},    {"minute", MS_MIN},  {"minutes", MS_MIN}, {"h", MS_HOUR},
	        {"hr", MS_HOUR},     {"hrs", MS_HOUR},    {"hour", MS_HOUR},   {"hours", MS_HOUR},
	        {"d", MS_DAY},       {"day", MS_DAY},     {"days", MS_DAY},
	};
	size_t n = 0, i;

	while (is_alpha((unsigned char)p[n]))
		n++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].w) == n && starts(p, units[i].w)) {
			*end = p + n;
			return units[i].ms;
		}
	return 0;
}

/*
 * A duration at p: number-unit pairs, or (bare_unit > 0) one number without a unit in
 * bare_unit ms.  1 with *ms, 0 when none is there or it is too long to believe.
 */
static int
read_duration(const char *p, int64_t bare_unit, int64_t *ms)
{
	int64_t whole, milli, unit, total = 0;
	const char *q, *after;
	int pairs = 0;

	for (;;) {
		if ((q = read_number(skip_space(p), &whole, &milli)) == NULL)
			break;
		if ((unit = read_unit(skip_space(q), &after)) == 0) {
			if (pairs > 0 || bare_unit == 0 || is_alpha((unsigned char)*skip_space(q)))
				break;
			unit = bare_unit;
			after = q;
		}
		if (whole > GP_QUOTA_MAX_WAIT_MS / unit)
			return 0;
		total += whole * unit + milli * unit / 1000;
		pairs++;
		p = after;
		if (unit == bare_unit && after == q)
			break;
		if (*p == ',')
			p++;
		if (starts(skip_space(p), "and "))
			p = skip_space(p) + 4;
	}
	if (pairs == 0 || total > GP_QUOTA_MAX_WAIT_MS)
		return 0;
	*ms = total;
	return 1;
}

/* ---- times ---- */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* n digits at p into *v; the end or NULL. */
static const char *
read_digits(const char *p, int n, int *v)
{
	*v = 0;
	while (n-- > 0) {
		if (!is_digit((unsigned char)*p))
			return NULL;
		*v = *v * 10 + (*p++ - '0');
	}
	return p;
}

/* HH:MM[:SS[.fff]] at p: ms into the day; the end or NULL. */
static const char *
read_clock(const char *p, int64_t *ms)
{
	int h, m, s = 0;

	if ((p = read_digits(p, 2, &h)) == NULL || *p != ':' ||
	    (p = read_digits(p + 1, 2, &m)) == NULL)
		return NULL;
	if (*p == ':' && (p = read_digits(p + 1, 2, &s)) == NULL)
		return NULL;
	if (*p == '.')
		for (p++; is_digit((unsigned char)*p); p++)
			;
	if (h > 23 || m > 59 || s > 60)
		return NULL;
	*ms = h * MS_HOUR + m * MS_MIN + s * MS_SEC;
	return p;
}

/* A zone after a time: Z, UTC, GMT, +HH:MM, +HHMM; 1 with *off_ms (to subtract), else 0. */
static int
read_zone(const char *p, int64_t *off_ms)
{
	int h, m, sign;

	*off_ms = 0;
	if (*p == 'Z' || *p == 'z')
		return !is_alpha((unsigned char)p[1]);
	p = skip_space(p);
	if (starts(p, "utc") || starts(p, "gmt"))
		return !is_alpha((unsigned char)p[3]) && (p[3] != '+' && p[3] != '-');
	if (*p != '+' && *p != '-')
		return 0;
	sign = *p == '-' ? -1 : 1;
	if ((p = read_digits(p + 1, 2, &h)) == NULL)
		return 0;
	if (*p == ':')
		p++;
	if (read_digits(p, 2, &m) == NULL || h > 14 || m > 59)
		return 0;
	*off_ms = sign * (h * MS_HOUR + m * MS_MIN);
	return 1;
}

static int
valid_date(int y, int mo, int d)
{
	return y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

/* ISO 8601 with a zone: 2026-12-03T15:04:05Z, 2026-12-03 15:04:05+01:00. */
static int
read_iso(const char *p, int64_t *at)
{
	int y, mo, d;
	int64_t clock, off;

	if ((p = read_digits(p, 4, &y)) == NULL || *p != '-' ||
	    (p = read_digits(p + 1, 2, &mo)) == NULL || *p != '-' ||
	    (p = read_digits(p + 1, 2, &d)) == NULL || (*p != 'T' && *p != 't' && *p != ' ') ||
	    !valid_date(y, mo, d) || (p = read_clock(p + 1, &clock)) == NULL || !read_zone(p, &off))
		return 0;
	*at = days_from_civil(y, mo, d) * MS_DAY + clock - off;
	return 1;
}

/* An HTTP date: [Thu, ]03 Dec 2026 15:04:05 GMT. */
static int
read_http_date(const char *p, int64_t *at)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
	                                     "jul", "aug", "sep", "oct", "nov", "dec"};
	int d, y, mo;
	int64_t clock, off;

	if (is_alpha((unsigned char)p[0]) && is_alpha((unsigned char)p[1]) &&
	    is_alpha((unsigned char)p[2]) && p[3] == ',')
		p = skip_space(p + 4);
	if (!is_digit((unsigned char)p[0]) ||
	    (p = read_digits(p, is_digit((unsigned char)p[1]) ? 2 : 1, &d)) == NULL || *p != ' ')
		return 0;
	for (mo = 0; mo < 12 && !starts(p + 1, months[mo]); mo++)
		;
	if (mo == 12 || p[4] != ' ' || (p = read_digits(p + 5, 4, &y)) == NULL || *p != ' ' ||
	    !valid_date(y, mo + 1, d) || (p = read_clock(p + 1, &clock)) == NULL ||
	    !read_zone(p, &off))
		return 0;
	*at = days_from_civil(y, mo + 1, d) * MS_DAY + clock - off;
	return 1;
}

/* A time of day with a zone ("15:04 UTC"): its next occurrence after now (with slack). */
static int
read_time_of_day(const char *p, int64_t now, int64_t *at)
{
	int64_t clock, off, day;

	if ((p = read_clock(p, &clock)) == NULL || !read_zone(p, &off))
		return 0;
	day = now - ((now % MS_DAY) + MS_DAY) % MS_DAY;
	*at = day + clock - off;
	while (*at < now - PAST_SLACK_MS)
		*at += MS_DAY;
	return 1;
}

/* Seconds (10 digits) or ms (13 digits) since the epoch, standing alone. */
static int
read_epoch(const char *p, int64_t *at)
{
	int64_t v = 0;
	int n = 0;

	for (; is_digit((unsigned char)*p); p++, n++)
		if (n < 13)
			v = v * 10 + (*p - '0');
	if (is_alpha((unsigned char)*p) || *p == '.' || *p == ':')
		return 0;
	if (n == 10)
		*at = v * MS_SEC;
	else if (n == 13)
		*at = v;
	else
		return 0;
	return 1;
}

static int
read_time(const char *p, int64_t now, int64_t *at)
{
	return read_iso(p, at) || read_http_date(p, at) || read_time_of_day(p, now, at);
}

/* ---- the anchors ---- */

static void
take_wait(struct gp_quota *q, int64_t ms)
{
	if (ms > q->after_ms)
		q->after_ms = ms;
}

static void
take_time(struct gp_quota *q, int64_t at, int64_t now)
{
	if (at < now - PAST_SLACK_MS || at > now + GP_QUOTA_MAX_WAIT_MS)
		return;
	if (at > q->at_ms)
		q->at_ms = at;
}

/* Retry-After and its kin: a bare number is seconds (ms for the -ms header), or a date. */
static void
scan_retry_after(const char *t, int64_t now, struct gp_quota *q)
{
	static const char *const names[] = {"retry-after", "retry_after", "retry after",
	                                    "retryafter"};
	const char *p, *v;
	int64_t ms, at;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (p = t; (p = ci_find(p, names[i])) != NULL; p++) {
			v = p + strlen(names[i]);
			if (starts(v, "-ms") || starts(v, "_ms")) {
				if (read_duration(skip_sep(v + 3), 1, &ms))
					take_wait(q, ms);
				continue;
			}
			v = skip_sep(v);
			if (read_time(v, now, &at))
				take_time(q, at, now);
			else if (read_duration(v, MS_SEC, &ms))
				take_wait(q, ms);
		}
	}
}

/* "try again in 1m20s", "retry in 32.5s": a wait that must carry its unit. */
static void
scan_try_again(const char *t, struct gp_quota *q)
{
	static const char *const names[] = {"try again in", "retry in", "retrying in",
	                                    "try again after", "available again in"};
	const char *p;
	int64_t ms;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		for (p = t; (p = ci_find(p, names[i])) != NULL; p++)
			if (read_duration(p + strlen(names[i]), 0, &ms))
				take_wait(q, ms);
}

/* "reset(s) at <time>", "resets in 5 minutes", "x-ratelimit-reset: <epoch>", "try again at". */
static void
scan_reset(const char *t, int64_t now, struct gp_quota *q)
{
	static const char *const names[] = {"reset", "try again at"};
	const char *p, *v;
	int64_t ms, at;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (p = t; (p = ci_find(p, names[i])) != NULL; p++) {
			v = p + strlen(names[i]);
			while (is_alpha((unsigned char)*v) || *v == '-' || *v == '_')
				v++; /* resets, reset-requests, x-ratelimit-reset_tokens */
			v = skip_sep(v);
			if (starts(v, "at ") || starts(v, "on "))
				v = skip_space(v + 3);
			if (read_time(v, now, &at) || read_epoch(v, &at))
				take_time(q, at, now);
			else if (read_duration(starts(v, "in ") ? v + 3 : v, 0, &ms))
				take_wait(q, ms);
		}
	}
}

int
gp_quota_parse(const char *text, int64_t now_ms, struct gp_quota *q)
{
	q->after_ms = -1;
	q->at_ms = 0;
	if (text == NULL || !is_quota_text(text))
		return 0;
	scan_retry_after(text, now_ms, q);
	scan_try_again(text, q);
	scan_reset(text, now_ms, q);
	return 1;
}

int64_t
gp_quota_until(const struct gp_quota *q, int64_t seen_ms)
{
	int64_t until = q->at_ms;

	if (q->after_ms >= 0 && seen_ms + q->after_ms > until)
		until = seen_ms + q->after_ms;
	return until;
}
