/*
 * test-agent.c -- colibri-test-agent, a scripted coding agent.
 *
 * It speaks pi's JSONL (the shapes and field names of the real pi 0.73.1
 * captures in fixtures/pi/) or, with --harness zot, zot's, and plays named
 * scenarios: a text answer, a tool call, a model error, auto-retries that
 * succeed or give up, a provider's 429 for the first N runs, a slow tool, a hang (or one
 * until --session continues it, as pi continues a session), a crash, a grandchild that
 * escapes the process group, a flood of output, an endless line, stderr noise.  It
 * can also replay a capture and end with a chosen exit code or signal.  With
 * --mode rpc it reads pi's RPC commands on stdin (prompt, abort, get_state).
 *
 * Given no flags it speaks pi's JSON events, one run.  The `local` provider
 * runs it with exactly the spawn's args, so the spawn's mode and prompt come
 * from the environment the daemon sets: $COLIBRI_MODE (json or rpc) unless
 * --mode is given, and $COLIBRI_PROMPT unless -p is; the prompt defaults to
 * "Say hello".
 *
 * It is the `local` provider's default binary and the daemon's test double:
 * everything the glasspane and the spawner must survive, on demand, without
 * a model or a network.  stdout is flushed after every line.
 *
 * The scenario is --scenario NAME, else $TEST_AGENT_SCENARIO (a spawn's env
 * may not set COLIBRI_* names), else $COLIBRI_TEST_AGENT_SCENARIO, else text.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TA_FLOOD_DEFAULT (64L * 1024 * 1024)
#define TA_ABORTED_MSG   "Request was aborted"

struct ta_opts {
	const char *scenario;
	const char *prompt;
	const char *replay;
	int rpc;
	int zot;
	int exit_code; /* -1: scenario default */
	int signo;     /* 0: none */
	long delay_ms; /* between streamed lines; -1: scenario default */
	long retry_delay_ms;
	long flood_bytes;
	int then_hang;
	int grandchild_close;
	int mode_given; /* --mode was on the command line */
};

/* One agent session: the conversation so far and the RPC input state. */
struct ta_agent {
	const struct ta_opts *o;
	const char *prompt;
	json_t *messages; /* for agent_end */
	int aborted;
	int stdin_eof;
	char inbuf[65536];
	size_t inlen;
	int resp_seq;
};

static void ta_rpc_command(struct ta_agent *, const char *line, int busy);

static int64_t
ta_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
ta_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
ta_write(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(1);
		p += n;
		len -= (size_t)n;
	}
}

/* Write one JSON line to stdout and drop the reference. */
static void
ta_emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	size_t n = strlen(s);

	s = realloc(s, n + 2);
	if (s == NULL)
		exit(1);
	s[n] = '\n';
	ta_write(STDOUT_FILENO, s, n + 1);
	free(s);
	json_decref(o);
}

static void
ta_emit_type(const char *type)
{
	ta_emit(json_pack("{s:s}", "type", type));
}

static json_t *
ta_usage(int input, int output)
{
	return json_pack("{s:i, s:i, s:i, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i}}", "input", input,
	                 "output", output, "cacheRead", 0, "cacheWrite", 0, "totalTokens",
	                 input + output, "cost", "input", 0, "output", 0, "cacheRead", 0,
	                 "cacheWrite", 0, "total", 0);
}

/* An assistant message as pi writes it; content is stolen. */
static json_t *
ta_assistant(json_t *content, int input, int output, const char *stop, const char *err)
{
	json_t *m = json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:s, s:I}", "role", "assistant",
	                      "content", content, "api", "openai-completions", "provider",
	                      "colibri", "model", "colibri-test", "usage", ta_usage(input, output),
	                      "stopReason", stop, "timestamp", (json_int_t)ta_now_ms());

	if (err != NULL)
		json_object_set_new(m, "errorMessage", json_string(err));
	return m;
}

static json_t *
ta_text_content(const char *text)
{
	return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

static void
ta_emit_message(const char *type, json_t *msg)
{
	ta_emit(json_pack("{s:s, s:O}", "type", type, "message", msg));
}

/* The same, taking over msg. */
static void
ta_emit_message_new(const char *type, json_t *msg)
{
	ta_emit(json_pack("{s:s, s:o}", "type", type, "message", msg));
}

/* A message_update; ame and partial are taken over. */
static void
ta_emit_update(json_t *ame, json_t *partial)
{
	json_object_set_new(ame, "partial", partial);
	ta_emit(json_pack("{s:s, s:o, s:O}", "type", "message_update", "assistantMessageEvent", ame,
	                  "message", partial));
}

/* Wait between streamed lines; in RPC mode, listen for an abort meanwhile. */
static int
ta_pace(struct ta_agent *a, long ms)
{
	struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
	int64_t until = ta_now_ms() + ms;
	char buf[4096];
	char *nl;
	ssize_t n;

	if (!a->o->rpc || a->stdin_eof) {
		ta_sleep_ms(ms);
		return a->aborted;
	}
	do {
		if (poll(&pfd, 1, (int)(until - ta_now_ms() > 0 ? until - ta_now_ms() : 0)) <= 0)
			break;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0) {
			a->stdin_eof = 1;
			break;
		}
		if (a->inlen + (size_t)n > sizeof(a->inbuf))
			a->inlen = 0;
		memcpy(a->inbuf + a->inlen, buf, (size_t)n);
		a->inlen += (size_t)n;
		while ((nl = memchr(a->inbuf, '\n', a->inlen)) != NULL) {
			*nl = '\0';
			ta_rpc_command(a, a->inbuf, 1);
			a->inlen -= (size_t)(nl + 1 - a->inbuf);
			memmove(a->inbuf, nl + 1, a->inlen);
		}
	} while (!a->aborted && ta_now_ms() < until);
	return a->aborted;
}

static void
ta_user_message(struct ta_agent *a)
{
	json_t *m = json_pack("{s:s, s:o, s:I}", "role", "user", "content",
	                      ta_text_content(a->prompt), "timestamp", (json_int_t)ta_now_ms());

	ta_emit_message("message_start", m);
	ta_emit_message("message_end", m);
	json_array_append_new(a->messages, m);
}

/* Close an assistant message: message_end, then turn_end with the tool results. */
static void
ta_finish_turn(struct ta_agent *a, json_t *msg, json_t *results)
{
	ta_emit_message("message_end", msg);
	ta_emit(json_pack("{s:s, s:O, s:o}", "type", "turn_end", "message", msg, "toolResults",
	                  results != NULL ? results : json_array()));
	json_array_append_new(a->messages, msg);
}

/* Stream a text answer word by word; stops early (stopReason aborted) on abort. */
static void
ta_text_turn(struct ta_agent *a, json_t *after_end)
{
	static const char *const words[] = {"Hello",    " from", " the",
	                                    " colibri", " test", " agent."};
	char sofar[256] = "";
	size_t i;

	ta_emit_message_new("message_start", ta_assistant(json_array(), 0, 0, "stop", NULL));
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		strncat(sofar, words[i], sizeof(sofar) - strlen(sofar) - 1);
		if (i == 0)
			ta_emit_update(
			        json_pack("{s:s, s:i}", "type", "text_start", "contentIndex", 0),
			        ta_assistant(ta_text_content(sofar), 0, 0, "stop", NULL));
		ta_emit_update(json_pack("{s:s, s:i, s:s}", "type", "text_delta", "contentIndex", 0,
		                         "delta", words[i]),
		               ta_assistant(ta_text_content(sofar), 0, 0, "stop", NULL));
		if (ta_pace(a, a->o->delay_ms)) {
			ta_finish_turn(a,
			               ta_assistant(ta_text_content(sofar), 42, (int)i, "aborted",
			                            TA_ABORTED_MSG),
			               NULL);
			json_decref(after_end);
			return;
		}
	}
	ta_emit_update(json_pack("{s:s, s:i, s:s}", "type", "text_end", "contentIndex", 0,
	                         "content", sofar),
	               ta_assistant(ta_text_content(sofar), 42, 6, "stop", NULL));
	ta_emit_message_new("message_end",
	                    ta_assistant(ta_text_content(sofar), 42, 6, "stop", NULL));
	if (after_end != NULL)
		ta_emit(after_end);
	ta_emit(json_pack("{s:s, s:o, s:[]}", "type", "turn_end", "message",
	                  ta_assistant(ta_text_content(sofar), 42, 6, "stop", NULL),
	                  "toolResults"));
	json_array_append_new(a->messages,
	                      ta_assistant(ta_text_content(sofar), 42, 6, "stop", NULL));
}

static void
ta_error_turn(struct ta_agent *a, const char *err)
{
	ta_emit_message_new("message_start", ta_assistant(json_array(), 0, 0, "error", err));
	ta_finish_turn(a, ta_assistant(json_array(), 0, 0, "error", err), NULL);
}

static json_t *
ta_tool_call(const char *command)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s}}", "type", "toolCall", "id", "call_test_1",
	                 "name", "bash", "arguments", "command", command);
}

/* The model asks for bash; the streamed tool call as pi shows it. */
static void
ta_tool_request(struct ta_agent *a, const char *command)
{
	json_t *content = json_pack("[o]", ta_tool_call(command));

	ta_emit_message_new("message_start", ta_assistant(json_array(), 0, 0, "stop", NULL));
	ta_emit_update(json_pack("{s:s, s:i}", "type", "toolcall_start", "contentIndex", 0),
	               ta_assistant(json_deep_copy(content), 0, 0, "stop", NULL));
	ta_emit_update(json_pack("{s:s, s:i, s:O}", "type", "toolcall_end", "contentIndex", 0,
	                         "toolCall", json_array_get(content, 0)),
	               ta_assistant(json_deep_copy(content), 50, 10, "toolUse", NULL));
	ta_emit_message_new("message_end",
	                    ta_assistant(json_deep_copy(content), 50, 10, "toolUse", NULL));
	json_array_append_new(a->messages, ta_assistant(content, 50, 10, "toolUse", NULL));
}

/* tool_execution_* with nlines of output, paced; then the toolResult message and turn_end. */
static void
ta_tool_run(struct ta_agent *a, const char *command, int nlines, long pace_ms)
{
	json_t *args = json_pack("{s:s}", "command", command);
	char out[256] = "";
	json_t *result, *last = json_array_get(a->messages, json_array_size(a->messages) - 1);
	int i;

	ta_emit(json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_execution_start", "toolCallId",
	                  "call_test_1", "toolName", "bash", "args", args));
	for (i = 1; i <= nlines; i++) {
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "line%d\n", i);
		ta_emit(json_pack("{s:s, s:s, s:s, s:O, s:{s:o, s:{}}}", "type",
		                  "tool_execution_update", "toolCallId", "call_test_1", "toolName",
		                  "bash", "args", args, "partialResult", "content",
		                  ta_text_content(out), "details"));
		ta_sleep_ms(pace_ms);
	}
	ta_emit(json_pack("{s:s, s:s, s:s, s:{s:o}, s:b}", "type", "tool_execution_end",
	                  "toolCallId", "call_test_1", "toolName", "bash", "result", "content",
	                  ta_text_content(out), "isError", 0));
	result = json_pack("{s:s, s:s, s:s, s:o, s:b, s:I}", "role", "toolResult", "toolCallId",
	                   "call_test_1", "toolName", "bash", "content", ta_text_content(out),
	                   "isError", 0, "timestamp", (json_int_t)ta_now_ms());
	ta_emit_message("message_start", result);
	ta_emit_message("message_end", result);
	ta_emit(json_pack("{s:s, s:O, s:[O]}", "type", "turn_end", "message", last, "toolResults",
	                  result));
	json_array_append_new(a->messages, result);
	json_decref(args);
}

static void
ta_agent_end(struct ta_agent *a)
{
	ta_emit(json_pack("{s:s, s:O}", "type", "agent_end", "messages", a->messages));
}

/* --session ID: continue that session, as `pi --session ID` does (NULL: a new one). */
static const char *ta_continued;

static void
ta_session(void)
{
	char cwd[1024];

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		strcpy(cwd, "/");
	ta_emit(json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", "session", "version", 3, "id",
	                  ta_continued != NULL ? ta_continued
	                                       : "00000000-0000-7000-8000-000000000000",
	                  "timestamp", "1970-01-01T00:00:00.000Z", "cwd", cwd));
}

static void
ta_run_begin(struct ta_agent *a)
{
	ta_emit_type("agent_start");
	ta_emit_type("turn_start");
	ta_user_message(a);
}

static void
ta_run_text(struct ta_agent *a)
{
	ta_run_begin(a);
	ta_text_turn(a, NULL);
	ta_agent_end(a);
}

static void
ta_run_tool(struct ta_agent *a, int nlines, long pace_ms)
{
	const char *command =
	        nlines > 1 ? "for i in 1 2 3; do echo line$i; sleep 0.4; done" : "echo line1";

	ta_run_begin(a);
	ta_tool_request(a, command);
	ta_tool_run(a, command, nlines, pace_ms);
	ta_emit_type("turn_start");
	ta_text_turn(a, NULL);
	ta_agent_end(a);
}

static void
ta_run_model_error(struct ta_agent *a)
{
	ta_run_begin(a);
	ta_error_turn(a, "400 colibri-test-agent: model refuses");
	ta_agent_end(a);
}

static void
ta_retry_start(struct ta_agent *a, int attempt, const char *err)
{
	long delay = a->o->retry_delay_ms << (attempt - 1);

	ta_emit(json_pack("{s:s, s:i, s:i, s:i, s:s}", "type", "auto_retry_start", "attempt",
	                  attempt, "maxAttempts", 3, "delayMs", (int)delay, "errorMessage", err));
	ta_sleep_ms(delay);
	ta_emit_type("agent_start");
	ta_emit_type("turn_start");
}

/* pi's auto-retry: each attempt is agent_start ... agent_end, then auto_retry_start. */
static void
ta_run_retry(struct ta_agent *a, int succeed)
{
	static const char err[] = "503 service unavailable";
	int attempt;

	ta_run_begin(a);
	for (attempt = 1; attempt <= 3; attempt++) {
		ta_error_turn(a, err);
		ta_agent_end(a);
		ta_retry_start(a, attempt, err);
		if (succeed) {
			ta_text_turn(a, json_pack("{s:s, s:b, s:i}", "type", "auto_retry_end",
			                          "success", 1, "attempt", attempt));
			ta_agent_end(a);
			return;
		}
	}
	ta_error_turn(a, err);
	ta_agent_end(a);
	ta_emit(json_pack("{s:s, s:b, s:i, s:s}", "type", "auto_retry_end", "success", 0, "attempt",
	                  3, "finalError", err));
}

/*
 * Provider quota: the first $TEST_AGENT_QUOTA_TIMES runs (default 1) end like pi on an HTTP 429
 * (stopReason error, exit 0) with $TEST_AGENT_QUOTA_MESSAGE (default: Retry-After: 2), later
 * runs answer.  Runs are counted in the file $TEST_AGENT_QUOTA_FILE, one line per run with its
 * start time in ms (so a test sees when each run began); without the file every run fails.
 */
static void
ta_run_quota(struct ta_agent *a)
{
	const char *path = getenv("TEST_AGENT_QUOTA_FILE"),
	           *times = getenv("TEST_AGENT_QUOTA_TIMES");
	const char *msg = getenv("TEST_AGENT_QUOTA_MESSAGE");
	long n = 0, limit = times != NULL ? strtol(times, NULL, 10) : 1;
	char line[64];
	FILE *f;

	if (path != NULL && (f = fopen(path, "a+")) != NULL) {
		rewind(f);
		while (fgets(line, sizeof line, f) != NULL)
			n++;
		fprintf(f, "%lld\n", (long long)ta_now_ms());
		fclose(f);
	}
	if (path != NULL && n >= limit) {
		ta_run_text(a);
		return;
	}
	ta_run_begin(a);
	ta_error_turn(a, msg != NULL
	                         ? msg
	                         : "429 Too Many Requests: colibri-test-agent rate limit reached "
	                           "(Retry-After: 2)");
	ta_agent_end(a);
}

static void
ta_hang(void)
{
	for (;;)
		pause();
}

/* End the process as --exit/--signal ask, else with status 0. */
static void
ta_finish(const struct ta_opts *o, int default_status)
{
	struct rlimit nocore = {0, 0};

	fflush(NULL);
	if (o->signo > 0) {
		setrlimit(RLIMIT_CORE, &nocore);
		signal(o->signo, SIG_DFL);
		raise(o->signo);
		ta_hang();
	}
	exit(o->exit_code >= 0 ? o->exit_code : default_status);
}

static void
ta_crash(struct ta_agent *a)
{
	ta_run_begin(a);
	ta_emit_message_new("message_start", ta_assistant(json_array(), 0, 0, "stop", NULL));
	ta_emit_update(json_pack("{s:s, s:i, s:s}", "type", "text_delta", "contentIndex", 0,
	                         "delta", "Hello"),
	               ta_assistant(ta_text_content("Hello"), 0, 0, "stop", NULL));
	ta_finish(a->o, 3);
}

/* The child is reported only once it has left the process group (ready pipe). */
static void
ta_grandchild(struct ta_agent *a)
{
	char line[96];
	int fd, ready[2];
	pid_t pid;

	if (pipe(ready) < 0 || (pid = fork()) < 0)
		exit(1);
	if (pid == 0) {
		close(ready[0]);
		setsid();
		close(ready[1]);
		if (a->o->grandchild_close && (fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		for (;;)
			sleep(3600);
	}
	close(ready[1]);
	while (read(ready[0], line, sizeof(line)) < 0 && errno == EINTR)
		;
	close(ready[0]);
	snprintf(line, sizeof(line), "{\"type\":\"grandchild\",\"pid\":%ld}\n", (long)pid);
	ta_write(STDOUT_FILENO, line, strlen(line));
	ta_write(STDERR_FILENO, line, strlen(line));
	ta_run_text(a);
	if (a->o->then_hang)
		ta_hang();
}

/* Valid message_update lines until about flood_bytes were written. */
static void
ta_flood(struct ta_agent *a)
{
	char chunk[1025], *line;
	long written = 0;
	int n;

	memset(chunk, 'x', sizeof(chunk) - 1);
	chunk[sizeof(chunk) - 1] = '\0';
	ta_run_begin(a);
	ta_emit_message_new("message_start", ta_assistant(json_array(), 0, 0, "stop", NULL));
	while (written < a->o->flood_bytes) {
		n = asprintf(&line,
		             "{\"type\":\"message_update\",\"assistantMessageEvent\":{\"type\":"
		             "\"text_delta\",\"contentIndex\":0,\"delta\":\"%s\"},\"message\":{"
		             "\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
		             "\"%s\"}],\"stopReason\":\"stop\"}}\n",
		             chunk, chunk);
		if (n < 0)
			exit(1);
		ta_write(STDOUT_FILENO, line, (size_t)n);
		written += n;
		free(line);
	}
	ta_finish_turn(a, ta_assistant(ta_text_content("flooded"), 42, 6, "stop", NULL), NULL);
	ta_agent_end(a);
}

/* One line that never ends: flood_bytes bytes and no newline. */
static void
ta_no_newline(struct ta_agent *a)
{
	static const char head[] = "{\"type\":\"message_update\",\"delta\":\"";
	char chunk[4096];
	long left = a->o->flood_bytes;
	size_t n;

	ta_session();
	ta_emit_type("agent_start");
	memset(chunk, 'x', sizeof(chunk));
	n = (size_t)left < sizeof(head) - 1 ? (size_t)left : sizeof(head) - 1;
	ta_write(STDOUT_FILENO, head, n);
	left -= (long)n;
	while (left > 0) {
		n = (size_t)left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ta_write(STDOUT_FILENO, chunk, n);
		left -= (long)n;
	}
}

static void
ta_stderr_noise(void)
{
	char buf[1024];
	int i;

	memset(buf, 'e', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\n';
	fputs("colibri-test-agent: warning: this scenario writes to stderr\n", stderr);
	fflush(stderr);
	for (i = 0; i < 256; i++)
		ta_write(STDERR_FILENO, buf, sizeof(buf));
}

static void
ta_zot_text(void)
{
	static const char *const words[] = {"Hello", " from", " zot."};
	size_t i;

	ta_emit_type("turn_start");
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		ta_emit(json_pack("{s:s, s:s}", "type", "text_delta", "delta", words[i]));
	ta_emit(json_pack("{s:s, s:s}", "type", "assistant_message", "text", "Hello from zot."));
	ta_emit(json_pack("{s:s, s:i, s:i, s:i, s:i, s:f}", "type", "usage", "input", 42, "output",
	                  6, "cache_read", 0, "cache_write", 0, "cost_usd", 0.0));
	ta_emit_type("turn_end");
	ta_emit_type("done");
}

static void
ta_zot_tool(void)
{
	ta_emit_type("turn_start");
	ta_emit(json_pack("{s:s, s:s, s:s, s:{s:s}}", "type", "tool_call", "id", "call_test_1",
	                  "name", "bash", "args", "command", "echo hi"));
	ta_emit(json_pack("{s:s, s:s, s:s}", "type", "tool_result", "id", "call_test_1", "output",
	                  "hi\n"));
	ta_emit(json_pack("{s:s, s:i, s:i, s:i, s:i, s:f}", "type", "usage", "input", 50, "output",
	                  10, "cache_read", 0, "cache_write", 0, "cost_usd", 0.0));
	ta_emit_type("turn_end");
	ta_zot_text();
}

static int
ta_zot(const struct ta_opts *o)
{
	if (strcmp(o->scenario, "text") == 0)
		ta_zot_text();
	else if (strcmp(o->scenario, "tool") == 0)
		ta_zot_tool();
	else if (strcmp(o->scenario, "model-error") == 0) {
		ta_emit_type("turn_start");
		ta_emit(json_pack("{s:s, s:s}", "type", "error", "message",
		                  "400 colibri-test-agent: model refuses"));
	} else {
		fprintf(stderr, "colibri-test-agent: scenario %s has no zot flavour\n",
		        o->scenario);
		return 2;
	}
	ta_finish(o, 0);
	return 0;
}

/* One run of the chosen scenario (JSON mode, or one RPC prompt). */
static int
ta_scenario(struct ta_agent *a)
{
	const char *s = a->o->scenario;

	if (strcmp(s, "text") == 0)
		ta_run_text(a);
	else if (strcmp(s, "tool") == 0)
		ta_run_tool(a, 1, 0);
	else if (strcmp(s, "slow-tool") == 0)
		ta_run_tool(a, 3, a->o->delay_ms > 0 ? a->o->delay_ms : 400);
	else if (strcmp(s, "model-error") == 0)
		ta_run_model_error(a);
	else if (strcmp(s, "retry-success") == 0)
		ta_run_retry(a, 1);
	else if (strcmp(s, "retry-fail") == 0)
		ta_run_retry(a, 0);
	else if (strcmp(s, "quota") == 0)
		ta_run_quota(a);
	else if (strcmp(s, "hang") == 0 ||
	         (strcmp(s, "hang-until-resumed") == 0 && ta_continued == NULL)) {
		ta_emit_type("agent_start");
		ta_hang();
	} else if (strcmp(s, "hang-until-resumed") == 0)
		ta_run_text(a); /* a continued session answers */
	else if (strcmp(s, "crash") == 0)
		ta_crash(a);
	else if (strcmp(s, "grandchild") == 0)
		ta_grandchild(a);
	else if (strcmp(s, "flood") == 0)
		ta_flood(a);
	else if (strcmp(s, "no-newline") == 0)
		ta_no_newline(a);
	else if (strcmp(s, "stderr") == 0) {
		ta_stderr_noise();
		ta_run_text(a);
	} else
		return -1;
	return 0;
}

static void
ta_respond(struct ta_agent *a, json_t *cmd, const char *command, int ok, const char *err)
{
	json_t *r = json_object();
	json_t *id = json_object_get(cmd, "id");

	if (id != NULL)
		json_object_set(r, "id", id);
	json_object_set_new(r, "type", json_string("response"));
	json_object_set_new(r, "command", json_string(command));
	json_object_set_new(r, "success", json_boolean(ok));
	if (err != NULL)
		json_object_set_new(r, "error", json_string(err));
	if (ok && strcmp(command, "get_state") == 0)
		json_object_set_new(r, "data",
		                    json_pack("{s:b, s:i, s:i}", "isStreaming", 0, "messageCount",
		                              (int)json_array_size(a->messages),
		                              "pendingMessageCount", 0));
	ta_emit(r);
}

/* One RPC command line.  busy: a run is streaming (only abort acts then). */
static void
ta_rpc_command(struct ta_agent *a, const char *line, int busy)
{
	json_t *cmd = json_loads(line, 0, NULL);
	const char *type = json_string_value(json_object_get(cmd, "type"));

	if (type == NULL) {
		ta_respond(a, cmd, "parse", 0, "Failed to parse command");
	} else if (strcmp(type, "abort") == 0) {
		a->aborted = busy;
		ta_respond(a, cmd, type, 1, NULL);
	} else if (busy) {
		ta_respond(a, cmd, type, 0, "Agent is already processing");
	} else if (strcmp(type, "prompt") == 0) {
		ta_respond(a, cmd, type, 1, NULL);
		a->prompt = json_string_value(json_object_get(cmd, "message"));
		if (a->prompt == NULL)
			a->prompt = "";
		a->aborted = 0;
		ta_scenario(a);
	} else if (strcmp(type, "get_state") == 0) {
		ta_respond(a, cmd, type, 1, NULL);
	} else {
		ta_respond(a, cmd, type, 0, "Unknown command");
	}
	json_decref(cmd);
}

static int
ta_rpc(struct ta_agent *a)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while (!a->stdin_eof && (n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		ta_rpc_command(a, line, 0);
	}
	free(line);
	ta_finish(a->o, 0);
	return 0;
}

static int
ta_replay(const struct ta_opts *o)
{
	FILE *f = fopen(o->replay, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL) {
		fprintf(stderr, "colibri-test-agent: %s: %s\n", o->replay, strerror(errno));
		return 1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		ta_write(STDOUT_FILENO, line, (size_t)n);
		if (line[n - 1] != '\n')
			ta_write(STDOUT_FILENO, "\n", 1);
		ta_sleep_ms(o->delay_ms);
	}
	free(line);
	fclose(f);
	ta_finish(o, 0);
	return 0;
}

static int
ta_parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int no;
	} sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
	            {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE}, {"TERM", SIGTERM},
	            {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
	size_t i;
	char *end;
	long v;

	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(s, sigs[i].name) == 0)
			return sigs[i].no;
	v = strtol(s, &end, 10);
	return (*s != '\0' && *end == '\0' && v > 0 && v < 65) ? (int)v : -1;
}

static void
ta_usage_exit(void)
{
	fputs("usage: colibri-test-agent [--scenario NAME] [-p PROMPT] [--mode json|rpc]\n"
	      "         [--harness pi|zot] [--delay-ms N] [--retry-delay-ms N]\n"
	      "         [--flood-bytes N] [--then exit|hang] [--grandchild-close]\n"
	      "         [--exit N | --signal SIG] [--session ID]\n"
	      "       colibri-test-agent --replay FILE [--delay-ms N] [--exit N | --signal SIG]\n"
	      "scenarios: text tool model-error retry-success retry-fail slow-tool hang crash\n"
	      "           grandchild flood no-newline stderr quota hang-until-resumed\n",
	      stderr);
	exit(2);
}

static long
ta_number(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0)
		ta_usage_exit();
	return v;
}

/* json or rpc: 0, and o->rpc set; -1 for anything else. */
static int
ta_mode(struct ta_opts *o, const char *val)
{
	if (strcmp(val, "json") != 0 && strcmp(val, "rpc") != 0)
		return -1;
	o->rpc = strcmp(val, "rpc") == 0;
	o->mode_given = 1;
	return 0;
}

/* Options that take a value; returns 1 when argv[*i] was one. */
static int
ta_opt_value(struct ta_opts *o, const char *opt, const char *val)
{
	if (strcmp(opt, "--scenario") == 0)
		o->scenario = val;
	else if (strcmp(opt, "-p") == 0 || strcmp(opt, "--prompt") == 0)
		o->prompt = val;
	else if (strcmp(opt, "--replay") == 0)
		o->replay = val;
	else if (strcmp(opt, "--session") == 0)
		ta_continued = val;
	else if (strcmp(opt, "--mode") == 0 && ta_mode(o, val) == 0)
		;
	else if (strcmp(opt, "--harness") == 0 &&
	         (strcmp(val, "pi") == 0 || strcmp(val, "zot") == 0))
		o->zot = strcmp(val, "zot") == 0;
	else if (strcmp(opt, "--exit") == 0)
		o->exit_code = (int)(ta_number(val) & 0xff);
	else if (strcmp(opt, "--signal") == 0 && (o->signo = ta_parse_signal(val)) > 0)
		;
	else if (strcmp(opt, "--delay-ms") == 0)
		o->delay_ms = ta_number(val);
	else if (strcmp(opt, "--retry-delay-ms") == 0)
		o->retry_delay_ms = ta_number(val);
	else if (strcmp(opt, "--flood-bytes") == 0)
		o->flood_bytes = ta_number(val);
	else if (strcmp(opt, "--then") == 0 &&
	         (strcmp(val, "exit") == 0 || strcmp(val, "hang") == 0))
		o->then_hang = strcmp(val, "hang") == 0;
	else
		return 0;
	return 1;
}

static void
ta_parse(struct ta_opts *o, int argc, char **argv)
{
	const char *mode;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--grandchild-close") == 0)
			o->grandchild_close = 1;
		else if (strcmp(argv[i], "--json") == 0)
			o->zot = 1; /* invoked the way the spawner runs zot: zot --json PROMPT */
		else if (o->zot && argv[i][0] != '-')
			o->prompt = argv[i]; /* zot's positional prompt */
		else if (i + 1 < argc && ta_opt_value(o, argv[i], argv[i + 1]))
			i++;
		else
			ta_usage_exit();
	}
	if (o->scenario == NULL)
		o->scenario = getenv("TEST_AGENT_SCENARIO");
	if (o->scenario == NULL)
		o->scenario = getenv("COLIBRI_TEST_AGENT_SCENARIO");
	if (o->scenario == NULL || o->scenario[0] == '\0')
		o->scenario = "text";
	/* The daemon runs a local program with exactly its args and says the rest in env. */
	if (o->prompt == NULL)
		o->prompt = getenv("COLIBRI_PROMPT");
	if (o->prompt == NULL)
		o->prompt = "Say hello";
	if (!o->mode_given && (mode = getenv("COLIBRI_MODE")) != NULL && ta_mode(o, mode) == -1) {
		fprintf(stderr, "colibri-test-agent: COLIBRI_MODE must be json or rpc, not %s\n",
		        mode);
		exit(2);
	}
	if (o->delay_ms < 0)
		o->delay_ms = 0;
}

int
main(int argc, char **argv)
{
	struct ta_opts o = {.exit_code = -1,
	                    .delay_ms = -1,
	                    .retry_delay_ms = 2000,
	                    .flood_bytes = TA_FLOOD_DEFAULT};
	struct ta_agent a;
	int rc;

	ta_parse(&o, argc, argv);
	if (o.replay != NULL)
		return ta_replay(&o);
	if (o.zot)
		return ta_zot(&o);
	memset(&a, 0, sizeof(a));
	a.o = &o;
	a.prompt = o.prompt;
	a.messages = json_array();
	if (o.rpc)
		return ta_rpc(&a);
	ta_session();
	rc = ta_scenario(&a);
	if (rc < 0) {
		fprintf(stderr, "colibri-test-agent: unknown scenario %s\n", o.scenario);
		return 2;
	}
	json_decref(a.messages);
	ta_finish(&o, 0);
	return 0;
}
