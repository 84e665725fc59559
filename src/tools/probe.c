/*
 * probe.c -- colibri-probe: does DeepSeek's prompt cache hit for our prefix?
 *
 * DeepSeek caches prompt prefixes automatically and reports, per request,
 * how many prompt tokens were served from the cache (prompt_cache_hit_tokens)
 * and how many were not (prompt_cache_miss_tokens).  The probe sends the
 * same request, a ~6 KB system prompt and a short question, N times in a row
 * over the streaming chat-completions API with stream_options.include_usage,
 * reads the SSE stream for the last non-null usage object, and reports the
 * hit and miss tokens per call.  The first call is expected to miss; the
 * later ("warm") calls should hit nearly the whole prefix.  A low warm hit
 * share means something in front of the provider is moving the prefix.
 *
 * The API key comes from DEEPSEEK_API_KEY only and is never printed: it goes
 * into the Authorization header and nowhere else (no curl verbose output).
 *
 * Exit: 0 all calls answered with usage; 1 a call failed; 2 usage error or
 * no key.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cache/usage.h"
#include "common/buf.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define PROBE_BODY_MAX (64 * 1024) /* kept of an error response */

struct probe_opts {
	const char *base_url;
	const char *model;
	long calls;
	long timeout;
	int json;
};

/* One streaming response being read. */
struct probe_stream {
	struct buf line; /* partial SSE line */
	struct buf body; /* raw bytes, bounded, for error reports */
	json_t *usage;   /* last non-null usage seen */
	int done;        /* "data: [DONE]" seen */
};

/*
 * The fixed prefix.  Its content matters little; its size (well over
 * DeepSeek's 64-token cache granularity) and its stability matter.
 */
static const char *const probe_system_lines[] = {
        "You are a careful software engineering assistant working inside a supervised, "
        "confined workspace on a FreeBSD or Linux host.",
        "Read the task fully before acting, and restate it to yourself in one sentence so that "
        "you do not drift from what was asked.",
        "Prefer small, reversible steps: make one change, build, run the tests that cover it, "
        "and only then move to the next change.",
        "Keep the existing style of the code base: naming, indentation, comment voice, error "
        "handling conventions and the layout of files.",
        "Never invent APIs. When you are unsure whether a function exists or what it returns, "
        "read its header or its documentation first.",
        "Treat every input from outside the process as hostile: check lengths, check types, "
        "bound loops and allocations, and fail with a clear error instead of crashing.",
        "Return errors to the caller with a cause it can show to an operator; reserve aborting "
        "for impossible states and start-up failures.",
        "Do not print, log or echo secrets. API keys, passwords and tokens stay in memory and in "
        "the files that are meant to hold them, with restrictive permissions.",
        "When you write a test, make sure it can fail: break the code on purpose once and watch "
        "the test catch it, then restore the code.",
        "Prefer the standard library and the dependencies the project already has over adding "
        "a new one; every dependency is code you now maintain.",
        "Write the comment that explains why, not the one that repeats what the code says. Each "
        "file opens with a short essay on what it is for.",
        "Functions should do one thing and be short enough to read in one screen; give them "
        "names that say the action and carry the module prefix.",
        "Resources acquired in a function are released on every path out of it; use one "
        "cleanup label and make destructors accept NULL.",
        "Processes you start are processes you must reap. Kill only what you started, by its "
        "process id, never by a name pattern.",
        "Time limits are part of correctness: every wait has a deadline, every child process a "
        "timeout, every network call a connect and a total timeout.",
        "Serialise data deterministically when its bytes matter: sorted keys, fixed whitespace, "
        "no timestamps or random identifiers in stable regions.",
        "Keep stable prompt prefixes byte-identical across requests so that provider caches can "
        "serve them; put anything that changes at the end.",
        "Measure before optimising, and keep the measurement: note the machine, the numbers and "
        "the command that produced them.",
        "When a build or a test fails in code you did not touch, report it with the exact error "
        "and leave that code alone unless it is yours to change.",
        "Commit in small honest steps with messages that say what changed and why; never "
        "rewrite shared history.",
        "Use the task board: claim a task before working on it, heartbeat while you work, and "
        "complete or release it when you stop.",
        "If the task is ambiguous, choose the interpretation an experienced operator of the host "
        "would expect, write it down, and proceed.",
        "Answer in plain language. Lead with the result, then the evidence, then anything that "
        "is left open or that you noticed along the way.",
        "Respect the confinement: do not try to leave the jail or sandbox, do not probe for "
        "credentials, and use the network only where the task requires it.",
        "Handle partial reads and writes, interrupted system calls and short buffers; a "
        "protocol parser must cope with any split of its input.",
        "Give every limit a name and a documented default: maximum line size, maximum file size, "
        "maximum number of clients, maximum pending output.",
        "Log what an operator needs to follow the system: one line per state change, with the "
        "identifiers that let them find the object again.",
        "Document every command-line option in the usage text and the manual page, and make "
        "usage errors exit with status 2.",
        "Keep platform differences behind one small interface with one implementation per "
        "system, chosen at build time.",
        "Before you finish, run the whole test suite under the sanitizers, read the diff once "
        "more, and remove anything you would not want to review.",
        "Read error messages to the end; the first line names the symptom, the last lines often "
        "name the cause, and the file and line in between tell you where to look.",
        "Prefer explicit data flow: pass what a function needs as arguments and return what it "
        "produces, instead of reaching into globals from deep inside a call chain.",
        "Make state machines tables: list the states, the events and the action for each pair, "
        "and store the reason for every transition so it can be explained later.",
        "A daemon must never leave an orphan process behind: put children in their own process "
        "group, become a subreaper where the system allows it, and reap on every exit path.",
        "When a file must appear atomically, write it to a temporary name in the same directory, "
        "flush it, set its mode, and rename it over the final name.",
        "Check the peer's credentials on a control socket before acting on a privileged request; "
        "a protocol error should cost only the peer that made it.",
        "Keep configuration in one place with documented defaults, and let the environment and "
        "the command line override it in that order, with the command line winning.",
        "Use the database's transactions for invariants that span rows; never rely on a check "
        "made in one transaction still holding in the next one.",
        "Quote every value that goes into a shell script, and prefer passing an argument vector "
        "to exec over building a command line as a string.",
        "Keep user-visible text short and concrete: what happened, to which object, and what the "
        "operator can do about it, without jargon that only the code uses.",
        "Review your own change as a stranger would: is every new branch reached by a test, is "
        "every error path cleaned up, is every limit enforced?",
        "When the same bug could exist elsewhere, search for it; a fix applied once to a "
        "pattern repeated ten times is a fix of one tenth of the problem.",
        "Write the regression test for a bug before fixing it, name it after the bug, and keep "
        "it forever, so the bug cannot quietly come back.",
        "Prefer boring, well-known libraries and formats over clever ones; the next person to "
        "read the code should recognise every tool in it.",
        "Leave the workspace cleaner than you found it: remove temporary files, stop the "
        "processes you started, and delete build directories you no longer need.",
        NULL,
};

static char *
probe_system_prompt(void)
{
	struct buf b;
	int i;

	buf_init(&b);
	buf_adds(&b, "# Working rules\n\n");
	for (i = 0; probe_system_lines[i] != NULL; i++)
		buf_printf(&b, "%d. %s\n", i + 1, probe_system_lines[i]);
	buf_cstr(&b);
	return b.data;
}

static void
probe_usage(FILE *f)
{
	fprintf(f, "usage: colibri-probe [--calls N] [--base-url URL] [--model MODEL]"
	           " [--timeout SECS] [--json]\n"
	           "  needs DEEPSEEK_API_KEY in the environment\n");
}

static int
probe_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
probe_parse_args(int argc, char **argv, struct probe_opts *o)
{
	static const struct option longopts[] = {
	        {"calls", required_argument, NULL, 'n'}, {"base-url", required_argument, NULL, 'u'},
	        {"model", required_argument, NULL, 'm'}, {"timeout", required_argument, NULL, 't'},
	        {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'n' && probe_parse_long(optarg, 1, 100, &o->calls) == 0)
			continue;
		if (c == 't' && probe_parse_long(optarg, 1, 3600, &o->timeout) == 0)
			continue;
		if (c == 'u' || c == 'm') {
			*(c == 'u' ? &o->base_url : &o->model) = optarg;
			continue;
		}
		if (c == 'j') {
			o->json = 1;
			continue;
		}
		if (c == 'h' || c == 'V') {
			if (c == 'h')
				probe_usage(stdout);
			else
				printf("colibri-probe %s\n", COLIBRI_VERSION);
			exit(0);
		}
		return -1;
	}
	return optind == argc ? 0 : -1;
}

/* One complete SSE line: keep the usage of a data chunk, note [DONE]. */
static void
probe_sse_line(struct probe_stream *s, const char *line, size_t n)
{
	json_t *chunk, *u;

	if (n < 5 || memcmp(line, "data:", 5) != 0)
		return;
	line += 5, n -= 5;
	while (n > 0 && (*line == ' ' || *line == '\t'))
		line++, n--;
	if (n == 6 && memcmp(line, "[DONE]", 6) == 0) {
		s->done = 1;
		return;
	}
	if ((chunk = json_loadb(line, n, 0, NULL)) == NULL)
		return;
	u = json_object_get(chunk, "usage");
	if (json_is_object(u)) {
		json_decref(s->usage);
		s->usage = json_incref(u);
	}
	json_decref(chunk);
}

static size_t
probe_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct probe_stream *s = arg;
	size_t n = size * nmemb;
	char *nl;

	if (buf_used(&s->body) < PROBE_BODY_MAX)
		buf_add(&s->body, data, n < PROBE_BODY_MAX ? n : PROBE_BODY_MAX);
	buf_add(&s->line, data, n);
	while ((nl = memchr(buf_head(&s->line), '\n', buf_used(&s->line))) != NULL) {
		size_t len = (size_t)(nl - buf_head(&s->line));

		probe_sse_line(s, buf_head(&s->line), len > 0 && nl[-1] == '\r' ? len - 1 : len);
		buf_consume(&s->line, len + 1);
	}
	return n;
}

static char *
probe_request_body(const struct probe_opts *o, const char *system)
{
	json_t *req;
	char *s;

	req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:b, s:{s:b}, s:i, s:i}", "model",
	                o->model, "messages", "role", "system", "content", system, "role", "user",
	                "content", "Reply with the single word: ok.", "stream", 1, "stream_options",
	                "include_usage", 1, "max_tokens", 8, "temperature", 0);
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return s;
}

static struct curl_slist *
probe_headers(const char *key)
{
	struct curl_slist *h = NULL;
	char *auth;

	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: text/event-stream");
	xasprintf(&auth, "Authorization: Bearer %s", key);
	h = curl_slist_append(h, auth);
	explicit_bzero(auth, strlen(auth));
	free(auth);
	return h;
}

/* Print why a call failed (never the request, which holds no secret but is long). */
static void
probe_report_failure(long call, CURLcode rc, long status, struct probe_stream *s)
{
	if (rc != CURLE_OK)
		fprintf(stderr, "colibri-probe: call %ld: %s\n", call, curl_easy_strerror(rc));
	else if (status != 200)
		fprintf(stderr, "colibri-probe: call %ld: HTTP %ld: %.300s\n", call, status,
		        buf_cstr(&s->body));
	else
		fprintf(stderr, "colibri-probe: call %ld: no usage in the response stream\n", call);
}

/* One call; on success *usage holds the normalised record. */
static int
probe_call(CURL *h, long call, struct usage *usage)
{
	struct probe_stream s;
	long status = 0;
	char *cause = NULL;
	CURLcode rc;
	int ret = -1;

	memset(&s, 0, sizeof s);
	buf_init(&s.line);
	buf_init(&s.body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (buf_used(&s.line) > 0)
		probe_sse_line(&s, buf_head(&s.line), buf_used(&s.line));
	if (rc != CURLE_OK || status != 200 || s.usage == NULL) {
		probe_report_failure(call, rc, status, &s);
	} else if (usage_normalize(s.usage, USAGE_DEEPSEEK, NULL, NULL, usage, &cause) == -1) {
		fprintf(stderr, "colibri-probe: call %ld: %s\n", call, cause);
		free(cause);
	} else {
		ret = 0;
	}
	json_decref(s.usage);
	buf_free(&s.line);
	buf_free(&s.body);
	return ret;
}

static CURL *
probe_handle(const struct probe_opts *o, const char *url, const char *body,
             struct curl_slist *headers)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "colibri-probe/" COLIBRI_VERSION);
	return h;
}

static void
probe_print_call(const struct probe_opts *o, json_t *calls, long i, const struct usage *u,
                 int64_t ms)
{
	if (o->json) {
		json_array_append_new(calls, json_pack("{s:i, s:I, s:o}", "call", (int)i, "ms",
		                                       (json_int_t)ms, "usage", usage_to_json(u)));
		return;
	}
	printf("call %ld: hit %lld miss %lld out %lld hit-share %.1f%% (%lld ms)\n", i,
	       (long long)u->in_hit, (long long)u->in_miss, (long long)u->out,
	       100.0 * usage_hit_share(u), (long long)ms);
}

static void
probe_print_summary(const struct probe_opts *o, json_t *calls, size_t prefix,
                    const struct usage *total, const struct usage *warm)
{
	json_t *rep;

	if (!o->json) {
		printf("total: calls %lld hit %lld miss %lld hit-share %.1f%%\n",
		       (long long)total->calls, (long long)total->in_hit, (long long)total->in_miss,
		       100.0 * usage_hit_share(total));
		if (warm->calls > 0)
			printf("warm calls (2..%lld): hit-share %.1f%%\n", (long long)total->calls,
			       100.0 * usage_hit_share(warm));
		return;
	}
	rep = json_pack("{s:s, s:s, s:I, s:O, s:o, s:o}", "base_url", o->base_url, "model",
	                o->model, "prefix_bytes", (json_int_t)prefix, "calls", calls, "total",
	                usage_to_json(total), "warm_hit_share",
	                warm->calls > 0 ? json_real(usage_hit_share(warm)) : json_null());
	json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(rep);
}

/* Make the N calls and print; returns the exit status. */
static int
probe_run(const struct probe_opts *o, const char *key)
{
	char *system = probe_system_prompt(), *body = probe_request_body(o, system), *url;
	struct curl_slist *headers = probe_headers(key);
	struct usage total, warm, u;
	json_t *calls = json_array();
	int status = 0;
	size_t blen = strlen(o->base_url);
	CURL *h;
	long i;

	while (blen > 0 && o->base_url[blen - 1] == '/')
		blen--;
	xasprintf(&url, "%.*s/chat/completions", (int)blen, o->base_url);
	memset(&total, 0, sizeof total);
	memset(&warm, 0, sizeof warm);
	if ((h = probe_handle(o, url, body, headers)) == NULL) {
		fprintf(stderr, "colibri-probe: cannot create a curl handle\n");
		status = 1;
	}
	for (i = 1; h != NULL && i <= o->calls; i++) {
		int64_t t0 = mono_ms();

		if (probe_call(h, i, &u) == -1) {
			status = 1;
			break;
		}
		probe_print_call(o, calls, i, &u, mono_ms() - t0);
		usage_add(&total, &u);
		if (i > 1)
			usage_add(&warm, &u);
	}
	if (status == 0)
		probe_print_summary(o, calls, strlen(system), &total, &warm);
	json_decref(calls);
	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	free(url);
	free(body);
	free(system);
	return status;
}

int
main(int argc, char **argv)
{
	struct probe_opts o = {"https://api.deepseek.com", "deepseek-chat", 3, 120, 0};
	const char *key;
	int rc;

	if (probe_parse_args(argc, argv, &o) == -1) {
		probe_usage(stderr);
		return EXIT_USAGE;
	}
	key = getenv("DEEPSEEK_API_KEY");
	if (key == NULL || *key == '\0') {
		fprintf(stderr, "colibri-probe: DEEPSEEK_API_KEY is not set\n");
		return EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "colibri-probe: cannot initialise libcurl\n");
		return 1;
	}
	rc = probe_run(&o, key);
	curl_global_cleanup();
	return rc;
}
