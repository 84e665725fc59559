/*
 * test_dispatch_policy.c -- the dispatcher's pure half
 * (src/daemon/dispatch-policy.c): dispatch.json parsed strictly (every bad
 * key or value refused, naming it), a task routed by its first routed tag
 * or the default, and the "why" the status shows for a task that cannot
 * start: no profile, a parked profile (local time: TZ=UTC here), and each
 * cap -- host, profile, tenant -- reached exactly at its bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/dispatch-policy.h"

static void
parse_ok(const char *text, struct dispatch_policy *p)
{
	json_t *o = json_loads(text, 0, NULL);
	char *cause = NULL;

	assert_non_null(o);
	if (dispatch_policy_parse(o, p, &cause) != 0)
		fail_msg("%s: %s", text, cause);
	json_decref(o);
}

static void
parse_bad(const char *text, const char *want)
{
	struct dispatch_policy p;
	json_t *o = json_loads(text, 0, NULL);
	char *cause = NULL;

	assert_non_null(o);
	assert_int_equal(dispatch_policy_parse(o, &p, &cause), -1);
	if (strstr(cause, want) == NULL)
		fail_msg("%s: %s (wanted %s)", text, cause, want);
	assert_false(p.enabled); /* the default after a failure */
	free(cause);
	json_decref(o);
	dispatch_policy_clear(&p);
}

static void
test_parse(void **state)
{
	struct dispatch_policy p;

	(void)state;
	assert_int_equal(dispatch_policy_parse(NULL, &p, NULL), 0);
	assert_false(p.enabled);
	assert_null(p.default_profile);
	assert_int_equal(p.cap_host, -1);
	assert_int_equal(p.interval_ms, DISPATCH_INTERVAL_DEFAULT);
	dispatch_policy_clear(&p);
	parse_ok("{\"enabled\": true, \"default_profile\": \"d\", \"tags\": {\"rust\": \"r\"},"
	         " \"caps\": {\"host\": 4, \"profiles\": {\"r\": 2}, \"tenants\": {\"acme\": 1}},"
	         " \"resume\": true, \"interval_ms\": 250}",
	         &p);
	assert_true(p.enabled && p.resume);
	assert_string_equal(p.default_profile, "d");
	assert_int_equal(p.cap_host, 4);
	assert_int_equal(json_integer_value(json_object_get(p.cap_profiles, "r")), 2);
	assert_int_equal(json_integer_value(json_object_get(p.cap_tenants, "acme")), 1);
	assert_int_equal(p.interval_ms, 250);
	dispatch_policy_clear(&p);
	parse_bad("{\"enable\": true}", "unknown key \"enable\"");
	parse_bad("{\"enabled\": 1}", "enabled must be true or false");
	parse_bad("{\"resume\": \"yes\"}", "resume must be true or false");
	parse_bad("{\"default_profile\": 3}", "default_profile");
	parse_bad("{\"tags\": []}", "tags must be an object");
	parse_bad("{\"tags\": {\"x\": 1}}", "tags: \"x\"");
	parse_bad("{\"caps\": {\"hosts\": 1}}", "caps: unknown key \"hosts\"");
	parse_bad("{\"caps\": {\"host\": -1}}", "caps.host");
	parse_bad("{\"caps\": {\"host\": 1.5}}", "caps.host");
	parse_bad("{\"caps\": {\"profiles\": {\"p\": \"2\"}}}", "caps.profiles: \"p\"");
	parse_bad("{\"caps\": {\"tenants\": [1]}}", "caps.tenants must be an object");
	parse_bad("{\"interval_ms\": 5}", "interval_ms");
}

static void
test_route(void **state)
{
	struct dispatch_policy p;
	json_t *tags = json_pack("[s,s,s]", "urgent", "rust", "go");
	json_t *names;

	(void)state;
	parse_ok("{\"tags\": {\"rust\": \"r\", \"go\": \"g\"}}", &p);
	assert_string_equal(dispatch_policy_profile_of(&p, tags), "r"); /* the first routed tag */
	json_array_remove(tags, 1);
	assert_string_equal(dispatch_policy_profile_of(&p, tags), "g");
	json_array_clear(tags);
	assert_null(dispatch_policy_profile_of(&p, tags)); /* no default: none */
	assert_null(dispatch_policy_profile_of(&p, NULL));
	dispatch_policy_clear(&p);
	parse_ok("{\"default_profile\": \"d\", \"tags\": {\"go\": \"g\", \"golang\": \"g\"}}", &p);
	assert_string_equal(dispatch_policy_profile_of(&p, tags), "d");
	names = dispatch_policy_profiles(&p);
	assert_int_equal(json_array_size(names), 2); /* d and g, once each */
	json_decref(names);
	dispatch_policy_clear(&p);
	json_decref(tags);
}

static void
test_why(void **state)
{
	struct dispatch_policy p;
	struct dispatch_used u = {0, json_object(), json_object()};
	int64_t now = 1700000000000LL; /* 2023-11-14 22:13:20 UTC */
	char why[256];

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	parse_ok("{\"caps\": {\"host\": 3, \"profiles\": {\"p\": 2}, \"tenants\": {\"t\": 1}}}",
	         &p);
	assert_int_equal(dispatch_policy_why(&p, &u, NULL, NULL, 0, now, why, sizeof why), 1);
	assert_string_equal(why, "no profile for its tags");
	assert_int_equal(dispatch_policy_why(&p, &u, "p", "t", 0, now, why, sizeof why), 0);
	/* parked: until a later time, shown as local HH:MM:SS; a past time parks nothing */
	assert_int_equal(dispatch_policy_why(&p, &u, "p", NULL, now + 65000, now, why, sizeof why),
	                 1);
	assert_string_equal(why, "profile p parked until 22:14:25");
	assert_int_equal(dispatch_policy_why(&p, &u, "p", NULL, now, now, why, sizeof why), 0);
	/* the tenant's cap, at its bound */
	json_object_set_new(u.tenants, "t", json_integer(1));
	assert_int_equal(dispatch_policy_why(&p, &u, "p", "t", 0, now, why, sizeof why), 1);
	assert_string_equal(why, "cap reached: tenant t 1/1");
	assert_int_equal(dispatch_policy_why(&p, &u, "p", "other", 0, now, why, sizeof why), 0);
	/* the profile's: checked before the tenant's */
	json_object_set_new(u.profiles, "p", json_integer(2));
	assert_int_equal(dispatch_policy_why(&p, &u, "p", "t", 0, now, why, sizeof why), 1);
	assert_string_equal(why, "cap reached: profile p 2/2");
	assert_int_equal(dispatch_policy_why(&p, &u, "q", NULL, 0, now, why, sizeof why), 0);
	/* the host's: first of all */
	u.host = 3;
	assert_int_equal(dispatch_policy_why(&p, &u, "q", NULL, 0, now, why, sizeof why), 1);
	assert_string_equal(why, "cap reached: host 3/3");
	dispatch_policy_clear(&p);
	/* a cap of 0 starts nothing of its kind */
	parse_ok("{\"caps\": {\"profiles\": {\"off\": 0}}}", &p);
	u.host = 0;
	assert_int_equal(dispatch_policy_why(&p, &u, "off", NULL, 0, now, why, sizeof why), 1);
	assert_string_equal(why, "cap reached: profile off 0/0");
	dispatch_policy_clear(&p);
	json_decref(u.profiles);
	json_decref(u.tenants);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_route),
	        cmocka_unit_test(test_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
