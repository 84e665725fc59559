/*
 * fuzz_mcp.c -- libFuzzer target: colibri-mcp's editor-facing JSON-RPC
 * handler, from raw bytes to the lines it sends back.
 *
 * An input is what an editor might write to colibri-mcp's stdin.  It is
 * split by the real bounded line splitter (rpc_lines, with a small bound so
 * over-long lines happen), and each line goes to mcp_server_line (or
 * mcp_server_line_too_long), exactly as src/mcp/main.c does.  There is no
 * daemon: the session points at a socket path that does not exist, so
 * every Colibri tool call runs the real daemon link and comes back as an
 * isError "daemon unreachable" result.  The loop runs until those calls
 * are done; then the session is shut down and freed, so each input starts
 * from a fresh session.
 *
 * The oracle, beyond the sanitizers: every line sent is a JSON-RPC 2.0
 * response object -- "jsonrpc": "2.0", an id that is a string, an integer
 * or null, and exactly one of "result" (an object) or "error" (an integer
 * code and a string message) -- and its id is the id of a message that
 * needed an answer (a request, or null / the usable id for a refused line).
 * Each such message is answered at most once, and all are answered but for
 * the calls a notifications/cancelled may have withdrawn.  Anything else
 * aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mcp/rpc.h"
#include "mcp/server.h"

#define FUZZ_MAX_LINE 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;

struct fuzz_run {
	json_t *owed; /* ids still owed an answer */
	size_t cancels;
	size_t answers;
};

static void
fuzz_die(const char *what, const char *line, size_t len)
{
	fprintf(stderr, "fuzz_mcp: %s: %.*s\n", what, (int)(len > 400 ? 400 : len), line);
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_mcp", LOG_LEVEL_ERROR, NULL);
	if (uv_loop_init(&loop) != 0)
		abort();
	return 0;
}

static int
fuzz_response_ok(json_t *m)
{
	json_t *id = json_object_get(m, "id"), *res = json_object_get(m, "result"),
	       *err = json_object_get(m, "error");

	if (!json_is_string(json_object_get(m, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") != 0)
		return 0;
	if (id == NULL || !(json_is_string(id) || json_is_integer(id) || json_is_null(id)))
		return 0;
	if ((res == NULL) == (err == NULL) || json_object_size(m) != 3)
		return 0;
	if (res != NULL)
		return json_is_object(res);
	return json_is_object(err) && json_is_integer(json_object_get(err, "code")) &&
	       json_is_string(json_object_get(err, "message"));
}

/* Remove one id equal to id from the owed list; 0 if none was owed. */
static int
fuzz_settle(json_t *owed, json_t *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(owed, i, v)
	{
		if (json_equal(v, id)) {
			json_array_remove(owed, i);
			return 1;
		}
	}
	return 0;
}

static void
fuzz_send(void *arg, const char *line, size_t len)
{
	struct fuzz_run *run = arg;
	json_t *m;

	if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL)
		fuzz_die("not one line", line, len);
	if ((m = json_loadb(line, len - 1, 0, NULL)) == NULL || !fuzz_response_ok(m))
		fuzz_die("not a JSON-RPC 2.0 response", line, len);
	if (!fuzz_settle(run->owed, json_object_get(m, "id")))
		fuzz_die("an answer to nothing owed", line, len);
	run->answers++;
	json_decref(m);
}

/* What the server owes for one line: record the id to answer, if any. */
static void
fuzz_owe(struct fuzz_run *run, const char *line, size_t len)
{
	struct rpc_msg m;
	size_t i;

	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len)
		return;
	switch (rpc_parse(line, len, &m)) {
	case RPC_REQUEST:
	case RPC_INVALID:
		json_array_append(run->owed, m.id);
		break;
	case RPC_NOTIFICATION:
		if (strcmp(m.method, "notifications/cancelled") == 0)
			run->cancels++;
		break;
	case RPC_RESPONSE:
		break;
	}
	rpc_msg_clear(&m);
}

static void
fuzz_done(void *arg)
{
	*(int *)arg = 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run run = {json_array(), 0, 0};
	struct mcp_server_opts o = {
	        .socket = "/nonexistent/colibri-fuzz.sock",
	        .daemon_timeout_ms = 1000,
	        .max_line = FUZZ_MAX_LINE,
	        .settle_ms = 0,
	        .cfg = NULL,
	        .send = fuzz_send,
	        .send_arg = &run,
	};
	struct mcp_server *s;
	struct rpc_lines lines;
	const char *line;
	size_t len;
	char *cause = NULL;
	int rc, done = 0;

	if ((s = mcp_server_new(&loop, &o, &cause)) == NULL)
		fuzz_die("mcp_server_new", cause, strlen(cause));
	rpc_lines_init(&lines, FUZZ_MAX_LINE);
	rpc_lines_feed(&lines, (const char *)data, size);
	while ((rc = rpc_lines_next(&lines, 1, &line, &len)) != 0) {
		if (rc == -1) {
			json_array_append_new(run.owed, json_null());
			mcp_server_line_too_long(s);
			continue;
		}
		fuzz_owe(&run, line, len);
		mcp_server_line(s, line, len);
	}
	rpc_lines_free(&lines);
	while (!mcp_server_clean(s))
		uv_run(&loop, UV_RUN_ONCE);
	mcp_server_shutdown(s, 0, fuzz_done, &done);
	while (!done || !mcp_server_clean(s))
		uv_run(&loop, UV_RUN_ONCE);
	mcp_server_free(s);
	if (json_array_size(run.owed) > run.cancels)
		fuzz_die("messages left unanswered", "", 0);
	json_decref(run.owed);
	return 0;
}
