/*
 * fuzz_request.c -- libFuzzer target: the daemon's whole request path.
 *
 * An input is what a client might write to the control socket.  It goes
 * through server.c's detached-client seam (server.h), so the real code
 * splits it into lines, enforces the line bound, parses each line, checks
 * envelope, command, arguments and role, runs the command from the
 * real command table against a fresh in-memory store, and serialises the
 * reply.  The input is fed in two pieces (split at its middle) so a line
 * may straddle two reads, as on a socket.
 *
 * Nothing outside the process is touched: the daemon runs with
 * spawn_disabled (spawns answer unavailable), the client is a member, not
 * an admin (tenant commands and spawns are refused, so bw never runs),
 * and the vault, skills and session paths point into a private scratch
 * directory.  The loop is never run, so no timer (inventory, sweep) fires;
 * the group commit is flushed by hand after each input.  With
 * FUZZ_REQUEST_ECHO set in the environment the replies go to stderr.
 *
 * The oracle, beyond the sanitizers: every output line is a JSON object,
 * either a reply ({"id": integer|string|null, "ok": true, "result": object}
 * or {"id", "ok": false, "error": {"code": a known code, "message": string}})
 * or an event ({"event", "seq", "ts", "data"}); and while the server kept
 * the client, there is exactly one reply per non-empty request line.
 * Anything else aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/daemon.h"
#include "daemon/server.h"
#include "daemon/subsys.h"
#include "daemon/sweep.h"
#include "daemon/txn.h"
#include "store/store.h"

#define FUZZ_MAX_LINE   4096  /* small, so the bound is reached often */
#define FUZZ_MAX_OUTPUT 16384 /* small, so a flood is dropped often */
#define FUZZ_STORE_RUNS 32    /* inputs per fresh store (opening one costs ~2 ms) */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct daemon D;

/* The daemon's shutdown is never begun here; commands only read the flag. */
void
daemon_shutdown(void)
{
	D.shutting_down = 1;
}

static void
fuzz_die(const char *what, const char *line, size_t len)
{
	fprintf(stderr, "fuzz_request: %s: %.*s\n", what, (int)(len > 400 ? 400 : len), line);
	abort();
}

static char *
fuzz_scratch(const char *name)
{
	return path_join(D.cfg.state_dir, name);
}

/* The scratch directory holds only empty directories: remove them at exit. */
static void
fuzz_cleanup(void)
{
	rmdir(D.cfg.sessions_dir);
	rmdir(D.cfg.state_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char tmpl[] = "/tmp/colibri-fuzz-request.XXXXXX", *cause = NULL, *p;
	struct store_err e;

	(void)argc;
	(void)argv;
	if (mkdtemp(tmpl) == NULL)
		abort();
	log_init("fuzz_request", LOG_LEVEL_ERROR, NULL);
	D.uid = geteuid();
	D.started_ms = now_ms();
	strcpy(D.hostname, "fuzz");
	D.loop = uv_default_loop();
	D.cfg.state_dir = xstrdup(tmpl);
	D.cfg.sessions_dir = fuzz_scratch("sessions");
	D.cfg.socket_path = fuzz_scratch("colibri.sock");
	D.cfg.db_path = xstrdup(":memory:");
	/* An empty config directory: no file of /etc/colibri reaches the fuzzer's daemon. */
	D.cfg.config_dir = fuzz_scratch("etc");
	D.cfg.max_line = FUZZ_MAX_LINE;
	D.cfg.max_clients = 16;
	D.cfg.max_output = FUZZ_MAX_OUTPUT;
	D.cfg.max_output_total = 4 * FUZZ_MAX_OUTPUT;
	D.cfg.max_reply = FUZZ_MAX_OUTPUT;
	D.cfg.max_clients_per_uid = 16;
	D.cfg.line_timeout_ms = 30000;
	D.cfg.stall_ms = 120000;
	D.cfg.kill_grace_ms = 0;
	D.cfg.spawn_disabled = 1;
	mkdir_p(D.cfg.sessions_dir, 0700);
	atexit(fuzz_cleanup);
	/* Every path the subsystems might reach points into the scratch dir or nowhere. */
	setenv("COLIBRI_PROVIDER_ENV", (p = fuzz_scratch("provider.env")), 1);
	free(p);
	setenv("COLIBRI_JAIL_ROOT_BASE", (p = fuzz_scratch("jails")), 1);
	free(p);
	setenv("COLIBRI_SKILLS_DIRS", (p = fuzz_scratch("skills")), 1);
	free(p);
	setenv("COLIBRI_BW", "/nonexistent/bw", 1);
	setenv("COLIBRI_AGENT_BINARY", "/nonexistent/agent", 1);
	setenv("COLIBRI_INVENTORY_INTERVAL_MS", "86400000", 1);
	unsetenv("COLIBRI_PRICES");
	if ((D.store = store_open(":memory:", &e)) == NULL)
		fuzz_die("store_open", e.msg, strlen(e.msg));
	txn_init();
	if (subsys_init(&cause) == -1)
		fuzz_die("subsys_init", cause, strlen(cause));
	sweep_init();
	return 0;
}

/*
 * A fresh empty store every FUZZ_STORE_RUNS inputs, and for the first: an
 * input replayed alone (a crash, a seed) always starts from an empty board.
 */
static void
fuzz_fresh_store(void)
{
	static unsigned long runs;
	struct store_err e;

	if (runs++ % FUZZ_STORE_RUNS != 0)
		return;
	store_close(D.store);
	if ((D.store = store_open(":memory:", &e)) == NULL)
		fuzz_die("store_open", e.msg, strlen(e.msg));
}

static int
fuzz_known_code(const char *code)
{
	static const char *const codes[] = {
	        ERR_BAD_REQUEST, ERR_UNKNOWN_COMMAND, ERR_INVALID_ARGUMENT,
	        ERR_NOT_FOUND,   ERR_CONFLICT,        ERR_PERMISSION_DENIED,
	        ERR_UNAVAILABLE, ERR_INTERNAL,        NULL};
	size_t i;

	for (i = 0; codes[i] != NULL; i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

static int
fuzz_reply_ok(json_t *m)
{
	json_t *id = json_object_get(m, "id"), *ok = json_object_get(m, "ok"), *err;
	const char *code;

	if (id == NULL || !(json_is_integer(id) || json_is_string(id) || json_is_null(id)))
		return 0;
	if (json_is_true(ok))
		return json_is_object(json_object_get(m, "result")) &&
		       json_object_get(m, "error") == NULL && json_object_size(m) == 3;
	if (!json_is_false(ok) || json_object_get(m, "result") != NULL || json_object_size(m) != 3)
		return 0;
	err = json_object_get(m, "error");
	code = json_string_value(json_object_get(err, "code"));
	return code != NULL && fuzz_known_code(code) &&
	       json_is_string(json_object_get(err, "message"));
}

static int
fuzz_event_ok(json_t *m)
{
	return json_is_string(json_object_get(m, "event")) &&
	       json_is_integer(json_object_get(m, "seq")) &&
	       json_is_integer(json_object_get(m, "ts")) && json_object_get(m, "data") != NULL;
}

/* Check every output line; returns the number of replies (events excluded). */
static size_t
fuzz_check_output(const char *p, size_t n)
{
	const char *nl;
	size_t replies = 0, len;
	json_t *m;

	while (n > 0) {
		if ((nl = memchr(p, '\n', n)) == NULL)
			fuzz_die("output without a final newline", p, n);
		len = (size_t)(nl - p);
		if ((m = json_loadb(p, len, 0, NULL)) == NULL || !json_is_object(m))
			fuzz_die("output line is not a JSON object", p, len);
		if (json_object_get(m, "event") != NULL) {
			if (!fuzz_event_ok(m))
				fuzz_die("malformed event", p, len);
		} else if (fuzz_reply_ok(m))
			replies++;
		else
			fuzz_die("malformed reply", p, len);
		json_decref(m);
		n -= len + 1;
		p = nl + 1;
	}
	return replies;
}

/* The replies the server owes: one per non-empty line, one for an over-long line. */
static size_t
fuzz_expected_replies(const char *p, size_t n, int *overlong)
{
	const char *nl;
	size_t want = 0, len;

	*overlong = 0;
	while (n > 0) {
		nl = memchr(p, '\n', n);
		len = nl != NULL ? (size_t)(nl - p) : n;
		if (len > FUZZ_MAX_LINE) {
			*overlong = 1;
			return want + 1;
		}
		if (nl == NULL)
			break;
		while (len > 0 && p[len - 1] == '\r')
			len--;
		want += len > 0;
		n -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	return want;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *o;
	uid_t uid = D.uid == 65534 ? 65533 : (D.uid == 0 ? 65534 : D.uid + 1);
	struct client *c;
	struct buf out;
	size_t want, got;
	int overlong, closed;

	fuzz_fresh_store();
	c = server_client_new_detached(uid, (gid_t)uid);
	server_client_feed(c, in, size / 2);
	server_client_feed(c, in + size / 2, size - size / 2);
	sweep_run();
	server_commit();
	server_flush_all();
	buf_init(&out);
	server_client_take_output(c, &out);
	closed = server_client_closed(c);
	server_client_free_detached(c);
	o = out.data != NULL ? buf_head(&out) : ""; /* an empty buf has no data */
	if (getenv("FUZZ_REQUEST_ECHO") != NULL)    /* to see what a seed does */
		fwrite(o, 1, buf_used(&out), stderr);
	got = fuzz_check_output(o, buf_used(&out));
	want = fuzz_expected_replies(in, size, &overlong);
	/* Dropped for its output (a subscription) the client may miss replies, never gain. */
	if (got > want || (!closed && got != want) || (overlong && !closed))
		fuzz_die("reply count differs from the request lines", o, buf_used(&out));
	buf_free(&out);
	return 0;
}
