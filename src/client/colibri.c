/*
 * colibri.c -- the operator CLI: `colibri [--socket PATH] VERB [ARGS] [--json]`.
 *
 * main reads the global options, finds the verb in the table (cli-verbs.c),
 * lets cli_args_build turn the remaining words into the request's args,
 * and sends one command over client.h.  The result is printed by the
 * verb's renderer, or as the raw JSON result with --json.  Two verbs are
 * not a single call: `watch` subscribes and prints events until the
 * daemon goes away or the user interrupts it, and `call` sends any
 * command with a JSON object of arguments.
 *
 * Exit status is the contract scripts rely on (proto.h): 0 success, 1 the
 * daemon refused (its code and message on stderr), 2 a usage error found
 * before contacting the daemon, 69 the daemon could not be reached or
 * went away (the socket path on stderr), 74 stdout could not be written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/client.h"
#include "common/paths.h"
#include "common/proto.h"

#define EXIT_OUTPUT 74 /* EX_IOERR: stdout failed */

static void
main_usage(FILE *out)
{
	const struct cli_verb *v;

	fprintf(out, "usage: colibri [--socket PATH] VERB [ARGS] [--json]\n"
	             "       colibri VERB --help\n\nverbs:\n");
	for (v = cli_verbs; v->name != NULL; v++)
		fprintf(out, "  %-18s %s\n", v->name, v->help);
	fprintf(out,
	        "\nThe socket is --socket PATH, else $COLIBRI_SOCKET, else %s.\n"
	        "Exit status: 0 ok, 1 refused by the daemon, 2 usage, 69 daemon unreachable.\n",
	        PATH_DEFAULT_SOCKET);
}

static int
main_usage_error(const struct cli_verb *verb, const char *msg)
{
	if (verb != NULL)
		fprintf(stderr, "colibri: %s: %s\nTry 'colibri %s --help'.\n", verb->name, msg,
		        verb->name);
	else
		fprintf(stderr, "colibri: %s\nTry 'colibri --help'.\n", msg);
	return EXIT_USAGE;
}

static int
cli_unreachable(const struct cli_ctx *ctx, const char *what)
{
	fprintf(stderr, "colibri: daemon unreachable at %s: %s\n", ctx->socket, what);
	return EXIT_UNREACHABLE;
}

static int
cli_refused(const struct client_error *err)
{
	fprintf(stderr, "colibri: ");
	cli_put_clean(err->code, stderr);
	fprintf(stderr, ": ");
	cli_put_clean(err->message, stderr);
	fputc('\n', stderr);
	return EXIT_REFUSED;
}

static int
cli_flush(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "colibri: writing the output: %s\n", strerror(errno));
		return EXIT_OUTPUT;
	}
	return 0;
}

static void
cli_print_json(json_t *v, size_t flags)
{
	json_dumpf(v, stdout, flags | JSON_ENCODE_ANY);
	fputc('\n', stdout);
}

/* Connect, or report the socket on stderr and return NULL. */
static struct client *
cli_connect(const struct cli_ctx *ctx)
{
	struct client *c = client_connect(ctx->socket);

	if (c == NULL)
		cli_unreachable(ctx, strerror(errno));
	return c;
}

/* Send cmd with args on c; 0 with *result, else the exit status. */
static int
cli_request(const struct cli_ctx *ctx, struct client *c, const char *cmd, json_t *args,
            json_t **result)
{
	struct client_error err;
	int rc = client_call(c, cmd, args, result, &err);

	if (rc == -2)
		return cli_unreachable(ctx, err.message);
	if (rc == -1)
		return cli_refused(&err);
	return 0;
}

/* One call and its output: the verb's renderer, or JSON with --json. */
static int
cli_run(const struct cli_ctx *ctx, const char *cmd, json_t *args, cli_render_fn render)
{
	struct client *c;
	json_t *result = NULL;
	int rc;

	if ((c = cli_connect(ctx)) == NULL)
		return EXIT_UNREACHABLE;
	rc = cli_request(ctx, c, cmd, args, &result);
	client_close(c);
	if (rc != 0)
		return rc;
	if (ctx->json || render == NULL)
		cli_print_json(result, isatty(STDOUT_FILENO) ? JSON_INDENT(2) : JSON_COMPACT);
	else
		render(result, stdout);
	json_decref(result);
	return cli_flush();
}

int
cli_exec_call(const struct cli_verb *verb, struct cli_ctx *ctx, json_t *args)
{
	const char *cmd = json_string_value(json_object_get(args, "cmd"));
	const struct cli_verb *known = cli_verb_by_cmd(cmd);

	return cli_run(ctx, cmd, json_object_get(args, "args"),
	               known != NULL ? known->render : cli_render_object);
}

int
cli_exec_watch(const struct cli_verb *verb, struct cli_ctx *ctx, json_t *args)
{
	struct client *c;
	json_t *result = NULL, *msg;
	int rc;

	if ((c = cli_connect(ctx)) == NULL)
		return EXIT_UNREACHABLE;
	if ((rc = cli_request(ctx, c, cli_verb_cmd(verb), args, &result)) != 0)
		goto out;
	/* --since below the compacted events: say where the stream really starts. */
	if (json_is_true(json_object_get(result, "cursor_expired")))
		fprintf(stderr,
		        "colibri: cursor expired: older events were compacted; from seq %lld\n",
		        (long long)json_integer_value(json_object_get(result, "oldest_seq")));
	json_decref(result);
	while (client_next(c, -1, &msg) == 1) {
		if (json_object_get(msg, "event") != NULL) {
			if (ctx->json)
				cli_print_json(msg, JSON_COMPACT);
			else
				cli_render_event_line(msg, stdout);
			if ((rc = cli_flush()) != 0) {
				json_decref(msg);
				goto out;
			}
		}
		json_decref(msg);
	}
	rc = cli_unreachable(ctx, "the connection was closed");
out:
	client_close(c);
	return rc;
}

/* Global options before the verb; returns the verb's index, or -1 with *rc set. */
static int
main_globals(int argc, char **argv, struct cli_ctx *ctx, int *rc)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ctx->json = 1;
		else if (strncmp(argv[i], "--socket=", 9) == 0)
			ctx->socket = argv[i] + 9;
		else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			ctx->socket = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			main_usage(stdout);
			*rc = 0;
			return -1;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("colibri %s (protocol %d)\n", COLIBRI_VERSION,
			       COLIBRI_PROTOCOL_VERSION);
			*rc = 0;
			return -1;
		} else if (argv[i][0] == '-') {
			*rc = main_usage_error(NULL, strcmp(argv[i], "--socket") == 0
			                                     ? "--socket needs a path"
			                                     : "unknown option before the verb");
			return -1;
		} else
			return i;
	}
	*rc = main_usage_error(NULL, "no verb given");
	return -1;
}

/* `colibri help [VERB]`. */
static int
main_help(int argc, char **argv, int i)
{
	const struct cli_verb *v;

	if (i + 1 >= argc) {
		main_usage(stdout);
		return 0;
	}
	if ((v = cli_verb_find(argv[i + 1])) == NULL)
		return main_usage_error(NULL, "unknown verb");
	cli_usage_verb(v, stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_ctx ctx = {NULL, 0};
	const struct cli_verb *verb;
	json_t *args = NULL;
	char err[512];
	int i, rc = 0;

	if ((i = main_globals(argc, argv, &ctx, &rc)) == -1)
		return rc;
	if (strcmp(argv[i], "help") == 0)
		return main_help(argc, argv, i);
	if ((verb = cli_verb_find(argv[i])) == NULL) {
		fprintf(stderr, "colibri: unknown verb \"");
		cli_put_clean(argv[i], stderr);
		fprintf(stderr, "\"\nTry 'colibri --help'.\n");
		return EXIT_USAGE;
	}
	rc = cli_args_build(verb, argc - i - 1, argv + i + 1, &ctx, &args, err, sizeof err);
	if (rc == 1) {
		cli_usage_verb(verb, stdout);
		return cli_flush();
	}
	if (rc == -1)
		return main_usage_error(verb, err);
	if (ctx.socket == NULL)
		ctx.socket = client_default_socket();
	if (verb->exec != NULL)
		rc = verb->exec(verb, &ctx, args);
	else
		rc = cli_run(&ctx, cli_verb_cmd(verb), args, verb->render);
	json_decref(args);
	return rc;
}
