/*
 * fuzz_glasspane.c -- libFuzzer target: the pi and zot decoders and the
 * state machine.  The input is split into lines; the first byte picks the
 * harness and mode.  Every line goes through glasspane_feed, with ticks and
 * an exit at the end; the invariants checked are the module's contract:
 * the state is always one of the five, a transition's from differs from
 * its to (or the reason changed while blocked), and strings stay
 * NUL-terminated within their buffers.  Each line is also read as an
 * error text by the quota parser (glasspane/quota.h), whose results must
 * stay within its documented bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glasspane/glasspane.h"
#include "glasspane/harness.h"
#include "glasspane/quota.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct glasspane *gp)
{
	if ((unsigned)gp->state >= GLASSPANE_NSTATES)
		abort();
	if (memchr(gp->reason, '\0', sizeof gp->reason) == NULL ||
	    memchr(gp->activity, '\0', sizeof gp->activity) == NULL)
		abort();
}

/* The quota parser on one line as a C string: no read past it, no reset beyond its bounds. */
static void
check_quota(const char *p, size_t len, int64_t now)
{
	char *s = malloc(len + 1);
	struct gp_quota q;

	if (s == NULL)
		return;
	memcpy(s, p, len);
	s[len] = '\0';
	if (gp_quota_parse(s, now, &q) == 1 &&
	    (q.after_ms < -1 || q.after_ms > GP_QUOTA_MAX_WAIT_MS ||
	     (q.at_ms != 0 && q.at_ms > now + GP_QUOTA_MAX_WAIT_MS)))
		abort();
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct glasspane gp;
	struct glasspane_transition t;
	struct gp_event ev;
	const char *p, *end, *nl;
	int64_t now = 1000;
	enum glasspane_harness h;

	if (size < 1)
		return 0;
	h = (data[0] & 3) == 1 ? GLASSPANE_HARNESS_ZOT : GLASSPANE_HARNESS_PI;
	glasspane_init(&gp, h, (data[0] & 4) ? GLASSPANE_MODE_RPC : GLASSPANE_MODE_JSON, 5000, now);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		/* The decoders alone, then the machine. */
		harness_pi_decode(p, (size_t)(nl - p), &ev);
		harness_zot_decode(p, (size_t)(nl - p), &ev);
		check_quota(p, (size_t)(nl - p), 1796310000000LL + now);
		if (glasspane_feed(&gp, p, (size_t)(nl - p), now, &t) == 1 && t.reason == NULL)
			abort();
		check(&gp);
		now += 700;
		glasspane_tick(&gp, now, &t);
		check(&gp);
		p = nl + 1;
	}
	glasspane_exit(&gp, data[0] >> 4, (data[0] & 8) ? 15 : 0, now, &t);
	check(&gp);
	json_decref(glasspane_to_json(&gp));
	return 0;
}
