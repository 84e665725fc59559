/*
 * test_mcp.c -- unit tests of colibri-mcp's pure parts: the JSON-RPC line
 * classifier and splitter (rpc.h), the tool table and result shapes
 * (tools.h) and the external host's configuration parser (hostcfg.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "mcp/hostcfg.h"
#include "mcp/rpc.h"
#include "mcp/server.h"
#include "mcp/tools.h"

struct parse_case {
	const char *line;
	enum rpc_kind kind;
	int code;       /* for RPC_INVALID */
	const char *id; /* expected id as compact JSON ("null" when none) */
};

static const struct parse_case parse_cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", RPC_REQUEST, 0, "1"},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"a\",\"params\":{}}", RPC_REQUEST, 0,
         "\"x\""},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", RPC_NOTIFICATION, 0,
         "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", RPC_RESPONSE, 0, "3"},
        {"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1}}", RPC_RESPONSE, 0, "3"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"_meta\":{},\"zz\":[]}", RPC_REQUEST, 0,
         "1"},
        {"not json", RPC_INVALID, RPC_PARSE_ERROR, "null"},
        {"{\"jsonrpc\":\"2.0\"", RPC_INVALID, RPC_PARSE_ERROR, "null"},
        {"{} {}", RPC_INVALID, RPC_PARSE_ERROR, "null"},
        {"   ", RPC_INVALID, RPC_PARSE_ERROR, "null"},
        {"[]", RPC_INVALID, RPC_INVALID_REQUEST, "null"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", RPC_INVALID, RPC_INVALID_REQUEST,
         "null"},
        {"\"str\"", RPC_INVALID, RPC_INVALID_REQUEST, "null"},
        {"7", RPC_INVALID, RPC_INVALID_REQUEST, "null"},
        {"{\"id\":4,\"method\":\"ping\"}", RPC_INVALID, RPC_INVALID_REQUEST, "4"},
        {"{\"jsonrpc\":\"1.0\",\"id\":\"k\",\"method\":\"ping\"}", RPC_INVALID, RPC_INVALID_REQUEST,
         "\"k\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":5}", RPC_INVALID, RPC_INVALID_REQUEST, "5"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", RPC_INVALID, RPC_INVALID_REQUEST,
         "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", RPC_INVALID, RPC_INVALID_REQUEST,
         "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", RPC_INVALID, RPC_INVALID_REQUEST,
         "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6}", RPC_INVALID, RPC_INVALID_REQUEST, "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"m\",\"params\":3}", RPC_INVALID,
         RPC_INVALID_REQUEST, "6"},
        {NULL, 0, 0, NULL},
};

static void
test_rpc_parse_table(void **state)
{
	const struct parse_case *c;
	struct rpc_msg m;
	char *id;

	for (c = parse_cases; c->line != NULL; c++) {
		enum rpc_kind k = rpc_parse(c->line, strlen(c->line), &m);
		if (k != c->kind || (k == RPC_INVALID && m.code != c->code))
			fail_msg("%s: kind %d code %d", c->line, (int)k, m.code);
		id = json_dumps(m.id, JSON_ENCODE_ANY | JSON_COMPACT);
		if (strcmp(id, c->id) != 0)
			fail_msg("%s: id %s, want %s", c->line, id, c->id);
		if (k == RPC_INVALID)
			assert_true(m.error[0] != '\0');
		free(id);
		rpc_msg_clear(&m);
	}
}

static void
test_rpc_build(void **state)
{
	json_t *id = json_string("a\"b"), *msg;
	size_t len;
	char *line;

	msg = rpc_error(id, RPC_INVALID_PARAMS, "bad %s", "thing");
	line = rpc_encode(msg, &len);
	assert_string_equal(line,
	                    "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"error\":{\"code\":-32602,"
	                    "\"message\":\"bad thing\"}}\n");
	assert_int_equal(len, strlen(line));
	free(line);
	json_decref(msg);
	msg = rpc_result(NULL, NULL);
	line = rpc_encode(msg, &len);
	assert_string_equal(line, "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}\n");
	free(line);
	json_decref(msg);
	msg = rpc_notification("n", json_pack("{s:s}", "text", "line\nbreak"));
	line = rpc_encode(msg, &len);
	assert_null(memchr(line, '\n', len - 1)); /* one message, one line */
	free(line);
	json_decref(msg);
	json_decref(id);
}

static void
test_rpc_lines(void **state)
{
	struct rpc_lines l;
	const char *line;
	size_t len;
	char big[100];

	rpc_lines_init(&l, 16);
	rpc_lines_feed(&l, "ab\r\ncd", 6);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 1);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "ab", 2);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 0);
	rpc_lines_feed(&l, "e\n\n", 3);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 1);
	assert_memory_equal(line, "cde", 3);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 1);
	assert_int_equal(len, 0);
	/* An over-long line is reported once, dropped to its newline, and the next line survives.
	 */
	memset(big, 'x', sizeof big);
	rpc_lines_feed(&l, big, 40);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), -1);
	rpc_lines_feed(&l, big, 40);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 0);
	rpc_lines_feed(&l, "xx\nok\n", 6);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 1);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "ok", 2);
	/* At EOF a last line without a newline counts. */
	rpc_lines_feed(&l, "tail", 4);
	assert_int_equal(rpc_lines_next(&l, 0, &line, &len), 0);
	assert_int_equal(rpc_lines_next(&l, 1, &line, &len), 1);
	assert_memory_equal(line, "tail", 4);
	assert_int_equal(rpc_lines_next(&l, 1, &line, &len), 0);
	rpc_lines_free(&l);
}

static void
test_tools_table(void **state)
{
	const struct mcp_tool *t;
	json_t *d, *all;
	size_t n = 0, len;
	char *line;

	for (t = mcp_tools; t->name != NULL; t++, n++) {
		d = mcp_tool_definition(t);
		if (d == NULL)
			fail_msg("%s: a schema is not valid JSON", t->name);
		assert_string_equal(json_string_value(json_object_get(
		                            json_object_get(d, "inputSchema"), "type")),
		                    "object");
		assert_string_equal(json_string_value(json_object_get(
		                            json_object_get(d, "outputSchema"), "type")),
		                    "object");
		assert_true(strlen(t->description) <= 60);
		assert_ptr_equal(mcp_tool_find(t->name), t);
		json_decref(d);
	}
	assert_int_equal(n, 13);
	assert_null(mcp_tool_find("task-create"));
	assert_null(mcp_tool_find(NULL));
	all = mcp_tools_definitions(1);
	assert_int_equal(json_array_size(all), 13);
	json_decref(all);
	/* Without --allow-spawn the spawning tools are not offered. */
	all = mcp_tools_definitions(0);
	assert_int_equal(json_array_size(all), 12);
	for (n = 0; n < json_array_size(all); n++)
		assert_string_not_equal(
		        json_string_value(json_object_get(json_array_get(all, n), "name")),
		        "spawn_local");
	json_decref(all);
	line = mcp_server_tools_list_line(1, &len);
	printf("tools/list answer: %zu bytes\n", len - 1);
	assert_true(len < 6 * 1024);
	free(line);
}

static void
test_tool_results(void **state)
{
	json_t *obj = json_pack("{s:i}", "id", 3), *arr = json_pack("[i]", 1), *r;
	struct client_error e;

	r = mcp_tool_result(obj);
	assert_ptr_equal(json_object_get(r, "structuredContent"), obj);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(r, "content"), 0), "text")),
	                    "{\"id\":3}");
	assert_null(json_object_get(r, "isError"));
	json_decref(r);
	r = mcp_tool_result(arr);
	assert_true(
	        json_equal(json_object_get(json_object_get(r, "structuredContent"), "items"), arr));
	json_decref(r);
	memset(&e, 0, sizeof e);
	strcpy(e.code, "unknown_command");
	strcpy(e.message, "unknown command \"skills-list\"");
	r = mcp_tool_daemon_failure(mcp_tool_find("skills_list"), &e, "/s");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_non_null(strstr(json_string_value(json_object_get(
	                               json_array_get(json_object_get(r, "content"), 0), "text")),
	                       "does not offer skills-list"));
	json_decref(r);
	strcpy(e.code, "unreachable");
	r = mcp_tool_daemon_failure(mcp_tool_find("task_list"), &e, "/run/x.sock");
	assert_non_null(strstr(json_string_value(json_object_get(
	                               json_array_get(json_object_get(r, "content"), 0), "text")),
	                       "not reachable at /run/x.sock"));
	json_decref(r);
	json_decref(obj);
	json_decref(arr);
}

static void
test_tool_args_drop_nulls(void **state)
{
	json_t *in = json_pack("{s:s, s:n, s:i}", "title", "t", "body", "priority", 2);
	json_t *out = mcp_tool_args(in), *empty = mcp_tool_args(NULL);

	assert_int_equal(json_object_size(out), 2);
	assert_null(json_object_get(out, "body"));
	assert_int_equal(json_object_size(empty), 0);
	json_decref(in);
	json_decref(out);
	json_decref(empty);
}

static int
parse_cfg(const char *text, struct hostcfg *c, char **cause)
{
	json_t *root = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(root);
	rc = hostcfg_parse(root, c, cause);
	json_decref(root);
	return rc;
}

static void
test_hostcfg_ok(void **state)
{
	struct hostcfg c;
	char *cause = NULL;

	assert_int_equal(parse_cfg("{\"servers\":[{\"name\":\"ev-1\",\"command\":\"node\","
	                           "\"args\":[\"a\",\"b\"],\"env\":{\"K\":\"v\"},\"cwd\":\"/tmp\","
	                           "\"jail\":{\"path\":\"/j/r\"},\"ro_paths\":[\"/opt\"],"
	                           "\"allow\":[\"echo\"]},"
	                           "{\"name\":\"all\",\"command\":\"/bin/x\",\"allow\":[\"*\"]}]}",
	                           &c, &cause),
	                 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.servers[0].args[1], "b");
	assert_null(c.servers[0].args[2]);
	assert_string_equal(c.servers[0].jail.path, "/j/r");
	assert_true(jail_config_active(&c.servers[0].jail));
	assert_false(jail_config_active(&c.servers[1].jail));
	assert_true(hostcfg_allows(&c.servers[0], "echo"));
	assert_false(hostcfg_allows(&c.servers[0], "get-env"));
	assert_true(hostcfg_allows(&c.servers[1], "anything"));
	assert_non_null(c.servers[1].args);
	assert_null(c.servers[1].args[0]);
	hostcfg_clear(&c);
	assert_int_equal(parse_cfg("{\"servers\":[]}", &c, &cause), 0);
	assert_int_equal(c.n, 0);
	hostcfg_clear(&c);
}

static void
test_hostcfg_refused(void **state)
{
	static const char *const bad[] = {
	        "{}",
	        "{\"servers\":{}}",
	        "{\"servers\":[],\"extra\":1}",
	        "{\"servers\":[1]}",
	        "{\"servers\":[{\"command\":\"x\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a__b\",\"command\":\"x\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a b\",\"command\":\"x\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"\",\"command\":\"x\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"\",\"allow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\"}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[1]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"alow\":[]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"args\":\"s\"}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"args\":[1]}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"env\":{\"1X\":"
	        "\"v\"}}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"env\":{\"X\":1}}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"cwd\":\"rel\"}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"ro_paths\":[\"r\"]}"
	        "]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"jail\":{\"bad\":1}}"
	        "]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[],\"jail\":{\"path\":"
	        "\"r\"}}]}",
	        "{\"servers\":[{\"name\":\"a\",\"command\":\"x\",\"allow\":[]},"
	        "{\"name\":\"a\",\"command\":\"y\",\"allow\":[]}]}",
	        NULL,
	};
	struct hostcfg c;
	char *cause;
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		cause = NULL;
		if (parse_cfg(bad[i], &c, &cause) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(cause);
		assert_int_equal(c.n, 0);
		free(cause);
	}
}

static void
test_hostcfg_load_names_the_file(void **state)
{
	struct hostcfg c;
	char *cause = NULL;

	assert_int_equal(hostcfg_load("/nonexistent/colibri-mcp.json", &c, &cause), -1);
	assert_non_null(strstr(cause, "/nonexistent/colibri-mcp.json"));
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rpc_parse_table),
	        cmocka_unit_test(test_rpc_build),
	        cmocka_unit_test(test_rpc_lines),
	        cmocka_unit_test(test_tools_table),
	        cmocka_unit_test(test_tool_results),
	        cmocka_unit_test(test_tool_args_drop_nulls),
	        cmocka_unit_test(test_hostcfg_ok),
	        cmocka_unit_test(test_hostcfg_refused),
	        cmocka_unit_test(test_hostcfg_load_names_the_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
