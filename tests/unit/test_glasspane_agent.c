/*
 * test_glasspane_agent.c -- colibri-test-agent through the glasspane.
 *
 * Runs the real colibri-test-agent binary ($COLIBRI_TEST_AGENT, set by meson)
 * for each scenario, feeds its stdout line by line into a glasspane, reports
 * its exit the way the spawner will (status or signal), and checks the final
 * state and reason.  This tests both sides: that the agent's scenarios mean
 * what they say, and that the glasspane reads them as the design wants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "glasspane/glasspane.h"

extern char **environ;

struct agent {
	pid_t pid;
	int out; /* its stdout */
	int in;  /* its stdin, or -1 */
	char *buf;
	size_t len, cap;
	int eof;
	struct glasspane gp;
	int64_t now;
	char last_type[64];
	char last_line[512];
};

static void
agent_spawn(struct agent *a, const char *const *args, int with_stdin, enum glasspane_harness h,
            enum glasspane_mode m)
{
	const char *bin = getenv("COLIBRI_TEST_AGENT");
	posix_spawn_file_actions_t fa;
	char *argv[24];
	int po[2], pi[2] = {-1, -1};
	size_t i;

	assert_non_null(bin);
	memset(a, 0, sizeof(*a));
	argv[0] = (char *)bin;
	for (i = 0; args[i] != NULL && i < 22; i++)
		argv[i + 1] = (char *)args[i];
	argv[i + 1] = NULL;
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	if (with_stdin) {
		assert_int_equal(pipe2(pi, O_CLOEXEC), 0);
		posix_spawn_file_actions_adddup2(&fa, pi[0], STDIN_FILENO);
	} else
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	assert_int_equal(posix_spawn(&a->pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	if (with_stdin)
		close(pi[0]);
	a->out = po[0];
	a->in = pi[1];
	a->now = 1000;
	glasspane_init(&a->gp, h, m, 30000, a->now);
}

/* Read more output (10 s at most); returns 0 at EOF. */
static int
agent_fill(struct agent *a)
{
	struct pollfd pfd = {a->out, POLLIN, 0};
	ssize_t n;

	if (a->eof)
		return 0;
	assert_true(poll(&pfd, 1, 10000) > 0);
	if (a->cap - a->len < 65536) {
		a->cap = a->cap * 2 + 65536;
		a->buf = realloc(a->buf, a->cap);
		assert_non_null(a->buf);
	}
	n = read(a->out, a->buf + a->len, a->cap - a->len);
	assert_true(n >= 0);
	a->len += (size_t)n;
	a->eof = n == 0;
	return n > 0;
}

static void
agent_feed(struct agent *a, const char *line, size_t len)
{
	const char *t = strstr(line, "\"type\":\"");
	size_t k = 0;

	a->now += 5;
	glasspane_feed(&a->gp, line, len, a->now, NULL);
	snprintf(a->last_line, sizeof(a->last_line), "%.*s", (int)(len < 511 ? len : 511), line);
	a->last_type[0] = '\0';
	if (t == NULL || t > line + 16)
		return;
	for (t += 8; k + 1 < sizeof(a->last_type) && t < line + len && *t != '"'; t++)
		a->last_type[k++] = *t;
	a->last_type[k] = '\0';
}

/* Feed the next complete line; returns 0 at EOF (a final partial line is fed too). */
static int
agent_next(struct agent *a)
{
	char *nl;
	size_t n;

	while (a->len == 0 || (nl = memchr(a->buf, '\n', a->len)) == NULL) {
		if (!agent_fill(a)) {
			if (a->len == 0)
				return 0;
			agent_feed(a, a->buf, a->len);
			a->len = 0;
			return 1;
		}
	}
	*nl = '\0';
	n = (size_t)(nl - a->buf);
	agent_feed(a, a->buf, n);
	a->len -= n + 1;
	memmove(a->buf, nl + 1, a->len);
	return 1;
}

static void
agent_until(struct agent *a, const char *type)
{
	while (strcmp(a->last_type, type) != 0)
		assert_int_equal(agent_next(a), 1);
}

/* Drain to EOF, reap, and report the exit to the glasspane. */
static void
agent_finish(struct agent *a)
{
	int st;

	if (a->in >= 0)
		close(a->in);
	while (agent_next(a))
		;
	assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
	close(a->out);
	free(a->buf);
	a->now += 5;
	if (WIFSIGNALED(st))
		glasspane_exit(&a->gp, 0, WTERMSIG(st), a->now, NULL);
	else
		glasspane_exit(&a->gp, WEXITSTATUS(st), 0, a->now, NULL);
}

static void
agent_send(struct agent *a, const char *line)
{
	size_t n = strlen(line);

	assert_int_equal(write(a->in, line, n), (ssize_t)n);
}

struct scenario {
	const char *args[8];
	const char *env;
	enum glasspane_harness harness;
	enum glasspane_state state;
	const char *reason;
};

static const struct scenario scenarios[] = {
        {{"--scenario", "text"}, NULL, GLASSPANE_HARNESS_LOCAL, GLASSPANE_DONE, "exited cleanly"},
        {{NULL}, NULL, GLASSPANE_HARNESS_LOCAL, GLASSPANE_DONE, "exited cleanly"},
        {{"--scenario", "tool"}, NULL, GLASSPANE_HARNESS_PI, GLASSPANE_DONE, "exited cleanly"},
        {{"--scenario", "slow-tool", "--delay-ms", "5"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_DONE,
         "exited cleanly"},
        {{"--scenario", "model-error"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "400 colibri-test-agent: model refuses"},
        {{NULL},
         "model-error",
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "400 colibri-test-agent: model refuses"},
        {{"--scenario", "retry-success", "--retry-delay-ms", "5"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_DONE,
         "exited cleanly"},
        {{"--scenario", "retry-fail", "--retry-delay-ms", "5"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "503 service unavailable (gave up after 3 retries)"},
        {{"--scenario", "crash"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "exited with status 3"},
        {{"--scenario", "crash", "--signal", "ABRT"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "killed by signal 6 (SIGABRT)"},
        {{"--scenario", "stderr"}, NULL, GLASSPANE_HARNESS_PI, GLASSPANE_DONE, "exited cleanly"},
        {{"--scenario", "text", "--harness", "zot"},
         NULL,
         GLASSPANE_HARNESS_ZOT,
         GLASSPANE_DONE,
         "exited cleanly"},
        {{"--scenario", "tool", "--harness", "zot"},
         NULL,
         GLASSPANE_HARNESS_ZOT,
         GLASSPANE_DONE,
         "exited cleanly"},
        {{"--scenario", "model-error", "--harness", "zot"},
         NULL,
         GLASSPANE_HARNESS_ZOT,
         GLASSPANE_ERROR,
         "400 colibri-test-agent: model refuses"},
        {{"--scenario", "no-newline", "--flood-bytes", "100000"},
         NULL,
         GLASSPANE_HARNESS_PI,
         GLASSPANE_ERROR,
         "exited with status 0 before the run ended"},
};

static void
test_scenarios(void **state)
{
	size_t i;
	struct agent a;

	(void)state;
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		if (s->env != NULL)
			setenv("COLIBRI_TEST_AGENT_SCENARIO", s->env, 1);
		else
			unsetenv("COLIBRI_TEST_AGENT_SCENARIO");
		agent_spawn(&a, s->args, 0, s->harness, GLASSPANE_MODE_JSON);
		agent_finish(&a);
		print_message("scenario %zu: %s: %s\n", i, glasspane_state_name(a.gp.state),
		              a.gp.reason);
		assert_int_equal(a.gp.state, s->state);
		assert_string_equal(a.gp.reason, s->reason);
		if (s->state == GLASSPANE_DONE)
			assert_true(a.gp.usage.total_tokens >= 48);
	}
	unsetenv("COLIBRI_TEST_AGENT_SCENARIO");
}

static void
test_counters(void **state)
{
	static const char *const tool[] = {"--scenario", "tool", NULL};
	static const char *const noline[] = {"--scenario", "no-newline", "--flood-bytes", "100000",
	                                     NULL};
	struct agent a;

	(void)state;
	agent_spawn(&a, tool, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	assert_int_equal(a.gp.tool_calls, 1);
	assert_int_equal(a.gp.turns, 2);
	assert_int_equal(a.gp.usage.input, 92);
	assert_int_equal(a.gp.ignored_lines, 0);
	agent_spawn(&a, noline, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	assert_int_equal(a.gp.ignored_lines, 1);
}

static void
test_flood(void **state)
{
	static const char *const args[] = {"--scenario", "flood", "--flood-bytes", "2097152", NULL};
	struct agent a;

	(void)state;
	agent_spawn(&a, args, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	assert_int_equal(a.gp.state, GLASSPANE_DONE);
	assert_int_equal(a.gp.ignored_lines, 0);
	assert_true(a.gp.events > 2097152 / 2400);
}

static void
test_hang_then_kill(void **state)
{
	static const char *const args[] = {"--scenario", "hang", NULL};
	struct agent a;

	(void)state;
	agent_spawn(&a, args, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_until(&a, "agent_start");
	assert_int_equal(a.gp.state, GLASSPANE_WORKING);
	assert_int_equal(glasspane_tick(&a.gp, a.now + 30000, NULL), 1);
	assert_int_equal(a.gp.state, GLASSPANE_BLOCKED);
	kill(a.pid, SIGTERM);
	agent_finish(&a);
	assert_int_equal(a.gp.state, GLASSPANE_ERROR);
	assert_string_equal(a.gp.reason, "killed by signal 15 (SIGTERM)");
}

static pid_t grandchild_pid;

/* Teardown: even when an assertion failed, leave no grandchild behind. */
static int
kill_grandchild(void **state)
{
	(void)state;
	if (grandchild_pid > 0 && kill(grandchild_pid, SIGKILL) == 0)
		waitpid(grandchild_pid, NULL, 0);
	grandchild_pid = 0;
	return 0;
}

static void
test_grandchild(void **state)
{
	static const char *const args[] = {"--scenario", "grandchild", NULL};
	struct agent a;
	pid_t gc;
	char *p;
	int st;

	(void)state;
#ifdef __linux__
	/* Become the subreaper so the orphaned grandchild can be reaped here. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
#endif
	agent_spawn(&a, args, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_until(&a, "grandchild");
	p = strstr(a.last_line, "\"pid\":");
	assert_non_null(p);
	gc = (pid_t)atol(p + 6);
	assert_true(gc > 0);
	grandchild_pid = gc;
	assert_int_equal(getsid(gc), gc); /* escaped into its own session */
	assert_int_not_equal(getpgid(gc), getpgid(a.pid));
	agent_until(&a, "agent_end");
	assert_int_equal(waitpid(a.pid, &st, 0), a.pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The grandchild still holds the pipe: no EOF until it is killed. */
	assert_int_equal(kill(gc, 0), 0);
	assert_int_equal(kill(gc, SIGKILL), 0);
#ifdef __linux__
	assert_int_equal(waitpid(gc, &st, 0), gc);
#endif
	grandchild_pid = 0;
	while (agent_next(&a))
		;
	close(a.out);
	free(a.buf);
	glasspane_exit(&a.gp, 0, 0, a.now + 5, NULL);
	assert_int_equal(a.gp.state, GLASSPANE_DONE);
}

static void
test_rpc(void **state)
{
	static const char *const args[] = {"--mode", "rpc", NULL};
	struct agent a;

	(void)state;
	agent_spawn(&a, args, 1, GLASSPANE_HARNESS_LOCAL, GLASSPANE_MODE_RPC);
	agent_send(&a, "{\"id\":\"r1\",\"type\":\"prompt\",\"message\":\"Say hello\"}\n");
	agent_until(&a, "response");
	assert_non_null(strstr(a.last_line, "\"id\":\"r1\""));
	assert_int_equal(a.gp.state, GLASSPANE_IDLE);
	agent_until(&a, "agent_end");
	assert_int_equal(a.gp.state, GLASSPANE_IDLE);
	assert_string_equal(a.gp.reason, "prompt finished");
	agent_send(&a, "{\"id\":\"r2\",\"type\":\"get_state\"}\n");
	agent_until(&a, "response");
	agent_finish(&a);
	assert_int_equal(a.gp.state, GLASSPANE_DONE);
	assert_int_equal(a.gp.turns, 1);
}

static void
test_rpc_abort(void **state)
{
	static const char *const args[] = {"--mode", "rpc", "--delay-ms", "100", NULL};
	struct agent a;

	(void)state;
	agent_spawn(&a, args, 1, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_RPC);
	agent_send(&a, "{\"type\":\"prompt\",\"message\":\"Talk slowly\"}\n");
	agent_until(&a, "message_update");
	agent_send(&a, "{\"type\":\"abort\"}\n");
	agent_until(&a, "agent_end");
	assert_int_equal(a.gp.state, GLASSPANE_WORKING);
	assert_int_equal(glasspane_tick(&a.gp, a.now + GLASSPANE_SETTLE_MS, NULL), 1);
	assert_int_equal(a.gp.state, GLASSPANE_ERROR);
	assert_string_equal(a.gp.reason, "Request was aborted");
	agent_finish(&a);
	assert_int_equal(a.gp.state, GLASSPANE_ERROR);
}

static void
test_replay(void **state)
{
	const char *dir = getenv("COLIBRI_FIXTURES");
	char http400[512], kill_term[512];
	const char *a1[] = {"--replay", http400, NULL};
	const char *a2[] = {"--replay", kill_term, "--signal", "TERM", NULL};
	const char *a3[] = {"--replay", http400, "--exit", "2", "--delay-ms", "1", NULL};
	struct agent a;

	(void)state;
	assert_non_null(dir);
	snprintf(http400, sizeof(http400), "%s/pi/http400.jsonl", dir);
	snprintf(kill_term, sizeof(kill_term), "%s/pi/kill-term.jsonl", dir);
	agent_spawn(&a, a1, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	assert_string_equal(a.gp.reason, "400 fake bad request: model refuses");
	agent_spawn(&a, a2, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	assert_string_equal(a.gp.reason, "killed by signal 15 (SIGTERM)");
	agent_spawn(&a, a3, 0, GLASSPANE_HARNESS_PI, GLASSPANE_MODE_JSON);
	agent_finish(&a);
	/* A failed model call is the first cause; the exit status is added to it. */
	assert_string_equal(a.gp.reason,
	                    "400 fake bad request: model refuses (exited with status 2)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scenarios),
	        cmocka_unit_test(test_counters),
	        cmocka_unit_test(test_flood),
	        cmocka_unit_test(test_hang_then_kill),
	        cmocka_unit_test_teardown(test_grandchild, kill_grandchild),
	        cmocka_unit_test(test_rpc),
	        cmocka_unit_test(test_rpc_abort),
	        cmocka_unit_test(test_replay),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
