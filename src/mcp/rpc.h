/*
 * rpc.h -- JSON-RPC 2.0 as MCP's stdio transport uses it.
 *
 * One message per line, UTF-8 JSON, no embedded newlines.  This module is
 * pure: it splits a byte stream into bounded lines (rpc_lines), classifies a
 * line (rpc_parse) and builds the messages colibri-mcp sends.  Both sides
 * of colibri-mcp use it: the editor-facing server and the host that speaks
 * to third-party MCP servers.
 *
 * Classification follows JSON-RPC 2.0 with MCP's narrowing:
 *   - not JSON                                   -> RPC_INVALID, -32700, id null
 *   - an array (a batch)                         -> RPC_INVALID, -32600: MCP
 *     2025-06-18 removed batching, and colibri-mcp answers every version the same
 *   - not an object, "jsonrpc" not "2.0", "method" not a string, an id that
 *     is not a string or an integer (null included: MCP forbids it), params
 *     neither an object nor an array           -> RPC_INVALID, -32600
 *   - "method" and an id                         -> RPC_REQUEST
 *   - "method" without an id                     -> RPC_NOTIFICATION
 *   - an id and "result" or "error"              -> RPC_RESPONSE
 * Unknown members (and "_meta") are accepted and ignored.
 */
#ifndef COLIBRI_MCP_RPC_H
#define COLIBRI_MCP_RPC_H

#include <jansson.h>
#include <stddef.h>

#include "common/buf.h"

#define RPC_PARSE_ERROR      -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603

/* The default bound of one line (a message), in bytes. */
#define RPC_MAX_LINE_DEFAULT (4 * 1024 * 1024)

enum rpc_kind { RPC_REQUEST, RPC_NOTIFICATION, RPC_RESPONSE, RPC_INVALID };

struct rpc_msg {
	enum rpc_kind kind;
	json_t *root;       /* the parsed line (owned), NULL after a parse error */
	json_t *id;         /* borrowed; JSON null when absent or unusable */
	const char *method; /* borrowed; requests and notifications */
	json_t *params;     /* borrowed; NULL when absent */
	int code;           /* RPC_INVALID: the error code to answer */
	char error[256];    /* RPC_INVALID: a readable reason */
};

/*
 * Classify one line (without its newline).  Always fills *out (release with
 * rpc_msg_clear) and returns out->kind.
 */
enum rpc_kind rpc_parse(const char *line, size_t len, struct rpc_msg *out);
void rpc_msg_clear(struct rpc_msg *);
/* Non-zero for a usable id: a string or an integer. */
int rpc_id_valid(const json_t *id);

/* {"jsonrpc":"2.0","id":ID,"result":RESULT}.  id borrowed (NULL: null), result stolen. */
json_t *rpc_result(json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":ID,"error":{"code","message"}}.  id borrowed (NULL: null). */
json_t *rpc_error(json_t *id, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* {"jsonrpc":"2.0","method":M,"params":P}.  params stolen (NULL: omitted). */
json_t *rpc_notification(const char *method, json_t *params);
/* {"jsonrpc":"2.0","id":ID,"method":M,"params":P}.  params stolen (NULL: omitted). */
json_t *rpc_request(json_int_t id, const char *method, json_t *params);
/*
 * The message as one line: compact JSON and "\n".  Returns a heap string
 * (caller frees) with *len its length, or NULL if msg cannot be encoded.
 */
char *rpc_encode(const json_t *msg, size_t *len);

/* A bounded line splitter over a byte stream. */
struct rpc_lines {
	struct buf b;
	size_t max;   /* longest accepted line, newline excluded */
	int skipping; /* dropping the rest of an over-long line */
};

void rpc_lines_init(struct rpc_lines *, size_t max);
void rpc_lines_free(struct rpc_lines *);
void rpc_lines_feed(struct rpc_lines *, const char *data, size_t len);
/*
 * The next complete line: returns 1 with *line and *len set (without "\n" or a
 * trailing "\r"; valid until the next rpc_lines_feed), 0 when more input is
 * needed, -1 once per line longer than max (its bytes are dropped up to and
 * including its newline).  With eof set, a final line without a newline is
 * returned too.
 */
int rpc_lines_next(struct rpc_lines *, int eof, const char **line, size_t *len);

#endif
