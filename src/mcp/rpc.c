/*
 * rpc.c -- JSON-RPC 2.0 lines: split, classify, build.
 *
 * Nothing here does I/O or keeps state beyond the line splitter's buffer, so
 * the whole error table of the transport is unit-tested without a process.
 */
#include "mcp/rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

int
rpc_id_valid(const json_t *id)
{
	return id != NULL && (json_is_string(id) || json_is_integer(id));
}

static enum rpc_kind
rpc_invalid(struct rpc_msg *m, int code, const char *why)
{
	m->kind = RPC_INVALID;
	m->code = code;
	snprintf(m->error, sizeof m->error, "%s", why);
	m->method = NULL;
	m->params = NULL;
	return m->kind;
}

static int
rpc_blank(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/* The envelope checks shared by requests, notifications and responses. */
static enum rpc_kind
rpc_classify(struct rpc_msg *m)
{
	json_t *v, *id, *method;

	if (json_is_array(m->root))
		return rpc_invalid(m, RPC_INVALID_REQUEST,
		                   "batches are not supported (MCP 2025-06-18 removed them)");
	if (!json_is_object(m->root))
		return rpc_invalid(m, RPC_INVALID_REQUEST, "a message must be a JSON object");
	id = json_object_get(m->root, "id");
	if (rpc_id_valid(id))
		m->id = id;
	v = json_object_get(m->root, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
		return rpc_invalid(m, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
	if (id != NULL && !rpc_id_valid(id))
		return rpc_invalid(m, RPC_INVALID_REQUEST, "\"id\" must be a string or an integer");
	method = json_object_get(m->root, "method");
	if (method == NULL) {
		if (id != NULL && (json_object_get(m->root, "result") != NULL ||
		                   json_object_get(m->root, "error") != NULL))
			return m->kind = RPC_RESPONSE;
		return rpc_invalid(m, RPC_INVALID_REQUEST, "\"method\" is missing");
	}
	if (!json_is_string(method))
		return rpc_invalid(m, RPC_INVALID_REQUEST, "\"method\" must be a string");
	m->method = json_string_value(method);
	m->params = json_object_get(m->root, "params");
	if (m->params != NULL && !json_is_object(m->params) && !json_is_array(m->params))
		return rpc_invalid(m, RPC_INVALID_REQUEST, "\"params\" must be an object");
	return m->kind = id != NULL ? RPC_REQUEST : RPC_NOTIFICATION;
}

enum rpc_kind
rpc_parse(const char *line, size_t len, struct rpc_msg *out)
{
	json_error_t jerr;

	memset(out, 0, sizeof *out);
	out->id = json_null();
	if (rpc_blank(line, len))
		return rpc_invalid(out, RPC_PARSE_ERROR, "empty message");
	out->root = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
	if (out->root == NULL) {
		rpc_invalid(out, RPC_PARSE_ERROR, "");
		snprintf(out->error, sizeof out->error, "parse error at byte %d: %.160s",
		         jerr.position, jerr.text);
		return out->kind;
	}
	return rpc_classify(out);
}

void
rpc_msg_clear(struct rpc_msg *m)
{
	json_decref(m->root);
	memset(m, 0, sizeof *m);
}

static json_t *
rpc_envelope(json_t *id)
{
	json_t *m = json_object();

	json_object_set_new(m, "jsonrpc", json_string("2.0"));
	json_object_set(m, "id", id != NULL ? id : json_null());
	return m;
}

json_t *
rpc_result(json_t *id, json_t *result)
{
	json_t *m = rpc_envelope(id);

	json_object_set_new(m, "result", result != NULL ? result : json_object());
	return m;
}

json_t *
rpc_error(json_t *id, int code, const char *fmt, ...)
{
	json_t *m = rpc_envelope(id);
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	json_object_set_new(m, "error", json_pack("{s:i, s:s}", "code", code, "message", msg));
	free(msg);
	return m;
}

json_t *
rpc_notification(const char *method, json_t *params)
{
	json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);

	if (params != NULL)
		json_object_set_new(m, "params", params);
	return m;
}

json_t *
rpc_request(json_int_t id, const char *method, json_t *params)
{
	json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", id, "method", method);

	if (params != NULL)
		json_object_set_new(m, "params", params);
	return m;
}

char *
rpc_encode(const json_t *msg, size_t *len)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n] = '\n';
	s[n + 1] = '\0';
	*len = n + 1;
	return s;
}

void
rpc_lines_init(struct rpc_lines *l, size_t max)
{
	buf_init(&l->b);
	l->max = max;
	l->skipping = 0;
}

void
rpc_lines_free(struct rpc_lines *l)
{
	buf_free(&l->b);
}

void
rpc_lines_feed(struct rpc_lines *l, const char *data, size_t len)
{
	if (len == 0)
		return;
	buf_add(&l->b, data, len);
}

/* Drop the rest of an over-long line; 1 when its newline was found. */
static int
rpc_lines_skip(struct rpc_lines *l)
{
	char *nl;

	if (buf_used(&l->b) == 0)
		return 0;
	nl = memchr(buf_head(&l->b), '\n', buf_used(&l->b));
	if (nl == NULL) {
		buf_consume(&l->b, buf_used(&l->b));
		return 0;
	}
	buf_consume(&l->b, (size_t)(nl - buf_head(&l->b)) + 1);
	l->skipping = 0;
	return 1;
}

int
rpc_lines_next(struct rpc_lines *l, int eof, const char **line, size_t *len)
{
	char *nl;
	size_t n;

	if (l->skipping && !rpc_lines_skip(l))
		return 0;
	if (buf_used(&l->b) == 0)
		return 0; /* nothing buffered (its data may still be NULL) */
	nl = memchr(buf_head(&l->b), '\n', buf_used(&l->b));
	n = nl != NULL ? (size_t)(nl - buf_head(&l->b)) : buf_used(&l->b);
	if (n > l->max) {
		l->skipping = 1;
		rpc_lines_skip(l);
		return -1;
	}
	if (nl == NULL && (!eof || n == 0))
		return 0;
	*line = buf_head(&l->b);
	*len = n;
	buf_consume(&l->b, nl != NULL ? n + 1 : n);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return 1;
}
