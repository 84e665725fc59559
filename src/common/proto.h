/*
 * proto.h -- the Colibri socket protocol in one place.
 *
 * Newline-delimited JSON over a Unix stream socket, one request per line:
 *   {"id": 7, "cmd": "task-claim", "args": {...}}
 *   {"id": 7, "ok": true, "result": {...}}
 *   {"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}
 * Events after subscribe: {"event": "agent.state", "seq": N, "data": {...}}
 *
 * Bump COLIBRI_PROTOCOL_VERSION on any incompatible change, and update
 * docs/protocol.md and schemas/ with it.
 */
#ifndef COLIBRI_PROTO_H
#define COLIBRI_PROTO_H

#define COLIBRI_VERSION          "0.1.0"
#define COLIBRI_PROTOCOL_VERSION 1

#define COLIBRI_MAX_LINE_DEFAULT (1024 * 1024)

/* Error codes: the only values "error.code" takes. */
#define ERR_BAD_REQUEST       "bad_request"
#define ERR_UNKNOWN_COMMAND   "unknown_command"
#define ERR_INVALID_ARGUMENT  "invalid_argument"
#define ERR_NOT_FOUND         "not_found"
#define ERR_CONFLICT          "conflict"
#define ERR_PERMISSION_DENIED "permission_denied"
#define ERR_UNAVAILABLE       "unavailable"
#define ERR_INTERNAL          "internal"

/* CLI exit codes. */
#define EXIT_REFUSED     1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 69

#endif
