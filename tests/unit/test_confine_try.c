/*
 * test_confine_try.c -- confine-try, a small driver for the integration tests.
 *
 * It does what the daemon's spawner will do with the confine library, so
 * pytest can check the result from outside: read the confinement options
 * from the environment, prepare a confined spawn (stage + argv), run it with
 * the driver's stdio, wait, read the agent's status, remove the stage.
 *
 *   confine-try [--id ID] [--jail JSON] [--env JSON] [--cwd DIR]
 *               [--result FILE] [--keep] [--print] -- BINARY [ARG...]
 *
 * --result writes {"argv", "stage", "jail_dir", "wrapper_exit",
 * "wrapper_signal", "status", "exit_code", "signal", "removed"} as JSON;
 * --print prints the argv as JSON and runs nothing; --keep leaves the stage.
 * Exit 0 when the driver worked (whatever the agent did), 1 otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine/confine.h"

extern char **environ;

struct try_args {
	const char *id, *jail, *env, *cwd, *result;
	int keep, print;
	char **cmd;
};

static void
try_usage(void)
{
	fprintf(stderr, "usage: confine-try [--id ID] [--jail JSON] [--env JSON] [--cwd DIR] "
	                "[--result FILE] [--keep] [--print] -- BINARY [ARG...]\n");
	exit(1);
}

static void
try_parse(struct try_args *a, int argc, char **argv)
{
	const char **slot;
	int i;

	memset(a, 0, sizeof *a);
	a->id = "try";
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--keep") == 0 || strcmp(argv[i], "--print") == 0) {
			*(argv[i][2] == 'k' ? &a->keep : &a->print) = 1;
			continue;
		}
		slot = strcmp(argv[i], "--id") == 0       ? &a->id
		       : strcmp(argv[i], "--jail") == 0   ? &a->jail
		       : strcmp(argv[i], "--env") == 0    ? &a->env
		       : strcmp(argv[i], "--cwd") == 0    ? &a->cwd
		       : strcmp(argv[i], "--result") == 0 ? &a->result
		                                          : NULL;
		if (slot == NULL || i + 1 >= argc)
			try_usage();
		*slot = argv[++i];
	}
	if (i + 1 >= argc)
		try_usage();
	a->cmd = argv + i + 1;
}

static json_t *
try_json(const char *what, const char *text)
{
	json_error_t e;
	json_t *j;

	if (text == NULL)
		return NULL;
	if ((j = json_loads(text, 0, &e)) == NULL) {
		fprintf(stderr, "confine-try: --%s: %s\n", what, e.text);
		exit(1);
	}
	return j;
}

static json_t *
try_argv_json(const struct confine_cmd *c)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < c->argc; i++)
		json_array_append_new(a, json_string(c->argv[i]));
	return a;
}

static int
try_run(const struct confine_cmd *c, int *code, int *sig)
{
	int status;
	pid_t pid;

	errno = posix_spawnp(&pid, c->program, NULL, NULL, c->argv, environ);
	if (errno != 0) {
		fprintf(stderr, "confine-try: spawn %s: %s\n", c->program, strerror(errno));
		return -1;
	}
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR)
			return -1;
	}
	*code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	*sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	return 0;
}

static const char *const try_kinds[] = {"unknown", "exited", "signaled", "setup_failed"};

static json_t *
try_result(const struct confine_spawn *sp, int code, int sig)
{
	struct stage_status s;
	json_t *r = json_object();

	confine_spawn_status(sp, code, sig, &s);
	json_object_set_new(r, "argv", try_argv_json(sp->cmd));
	json_object_set_new(r, "stage",
	                    sp->stage ? json_string(stage_host_dir(sp->stage)) : json_null());
	json_object_set_new(r, "jail_dir",
	                    sp->stage && stage_jail_dir(sp->stage)
	                            ? json_string(stage_jail_dir(sp->stage))
	                            : json_null());
	json_object_set_new(r, "wrapper_exit", json_integer(code));
	json_object_set_new(r, "wrapper_signal", json_integer(sig));
	json_object_set_new(r, "status", json_string(try_kinds[s.kind]));
	json_object_set_new(r, "exit_code", json_integer(s.exit_code));
	json_object_set_new(r, "signal", json_integer(s.signal));
	return r;
}

static int
try_finish(struct confine_spawn *sp, json_t *r, const struct try_args *a)
{
	char *cause = NULL, *dir = sp->stage ? strdup(stage_host_dir(sp->stage)) : NULL;
	int rc = 0;

	if (!a->keep && confine_spawn_finish(sp, &cause) == -1) {
		fprintf(stderr, "confine-try: %s\n", cause);
		free(cause);
		rc = -1;
	}
	json_object_set_new(r, "removed", json_boolean(dir != NULL && access(dir, F_OK) == -1));
	free(dir);
	if (a->result != NULL && json_dump_file(r, a->result, JSON_INDENT(1)) == -1)
		rc = -1;
	if (a->print)
		json_dumpf(json_object_get(r, "argv"), stdout, 0);
	return rc;
}

int
main(int argc, char **argv)
{
	struct confine_opts o;
	struct jail_config cfg;
	struct confine_spawn *sp;
	struct try_args a;
	json_t *jail, *env, *r;
	char *cause = NULL;
	int code = 0, sig = 0, rc;

	try_parse(&a, argc, argv);
	jail = try_json("jail", a.jail);
	env = try_json("env", a.env);
	if (confine_opts_from_env(&o, &cause) == -1 ||
	    jail_config_parse(jail, &cfg, &cause) == -1) {
		fprintf(stderr, "confine-try: %s\n", cause);
		return 1;
	}
	sp = confine_prepare(&o, &cfg, a.id, a.cmd[0], (const char *const *)a.cmd + 1, env, a.cwd,
	                     &cause);
	if (sp == NULL) {
		fprintf(stderr, "confine-try: %s\n", cause);
		return 1;
	}
	rc = a.print ? 0 : try_run(sp->cmd, &code, &sig);
	r = try_result(sp, code, sig);
	if (try_finish(sp, r, &a) == -1)
		rc = -1;
	json_decref(r);
	json_decref(jail);
	json_decref(env);
	jail_config_clear(&cfg);
	confine_opts_clear(&o);
	return rc == 0 ? 0 : 1;
}
