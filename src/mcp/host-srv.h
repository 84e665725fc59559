/*
 * host-srv.h -- what host.c and host-rpc.c share about a hosted MCP server.
 *
 * Private to src/mcp: the host's and each server's state (struct host,
 * struct hsrv) and the calls in flight (struct hcall).  host.c owns their
 * life -- the process, its pipes, its timer, start, stop and the client's
 * calls; host-rpc.c speaks JSON-RPC with one running server -- it sends
 * requests, and reads the answers, notifications and requests the server
 * sends back.  Nothing outside these two files includes this header
 * (the rest of colibri-mcp sees only host.h).
 */
#ifndef COLIBRI_MCP_HOST_SRV_H
#define COLIBRI_MCP_HOST_SRV_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "confine/confine.h"
#include "job/job.h"
#include "job/tree.h"
#include "mcp/host.h"
#include "mcp/hostcfg.h"
#include "mcp/rpc.h"

#define HOST_SEP             "__"
#define HOST_INIT_TIMEOUT_MS 30000
#define HOST_EXIT_GRACE_MS   1000
#define HOST_BACKOFF_MIN_MS  500
#define HOST_BACKOFF_MAX_MS  30000
#define HOST_STABLE_MS       10000
#define HOST_PROTOCOL        "2025-11-25"

enum hs_state { HS_DOWN, HS_INIT, HS_LISTING, HS_READY, HS_BACKOFF };
enum hs_timer { T_NONE, T_INIT, T_RESTART, T_STOP_TERM, T_STOP_KILL };
enum hcall_kind { HC_INIT, HC_LIST, HC_CALL };

struct hcall {
	struct hcall *next;
	json_int_t sid;
	enum hcall_kind kind;
	json_t *cid;   /* HC_CALL: the client's id */
	json_t *token; /* HC_CALL: the client's progressToken, or NULL */
	char *tool;    /* HC_CALL: the offered name */
	int64_t start_ms;
};

struct hsrv {
	struct host *h;
	struct hostcfg_server *cfg;
	enum hs_state state;
	struct job job;
	int job_live; /* the job started and its handles are not closed yet */
	int running;  /* the process has not exited */
	int torn;     /* teardown done for this generation */
	int64_t exit_status;
	int term_signal;
	struct confine_spawn *spawn;
	struct rpc_lines lines, errlines;
	json_int_t next_sid;
	struct hcall *calls;
	json_t *tools;   /* the server's own tools (array), NULL before a listing */
	json_t *listing; /* pages of the listing under way */
	int relist;      /* tools/list_changed arrived during a listing */
	uv_timer_t timer;
	enum hs_timer timer_why;
	int backoff_ms;
	int64_t ready_ms;
	unsigned gen;
	int first_done;
	char tree[TREE_NAME_MAX];
};

/* A call that arrived before the first start settled; replayed then. */
struct hqueued {
	struct hqueued *next;
	json_t *id, *params;
	char *name;
};

struct host {
	uv_loop_t *loop;
	struct hqueued *queued, **queued_tail;
	struct hostcfg cfg;
	struct hsrv *srv;
	struct host_events ev;
	size_t max_line;
	int settle_ms;
	struct confine_opts copts;
	int copts_ok;
	uv_timer_t settle_timer;
	int started, settled, stopping, stopped;
	int grace_ms;
	int timers_open;
	int jobs_set_up; /* job_setup was called */
	void (*stop_done)(void *);
	void *stop_arg;
};

/* ---- host-rpc.c: the conversation with one server ---- */

/* Send msg (stolen) to the client of colibri-mcp. */
void host_send(struct host *h, json_t *msg);
/* Send msg (stolen) to the server's stdin; dropped when it is not running. */
void hsrv_send(struct hsrv *s, json_t *msg);
/* A new call of kind with the server's next id, linked into s->calls. */
struct hcall *hsrv_call_new(struct hsrv *s, enum hcall_kind kind);
void hcall_free(struct hcall *c);
/* Unlink and return the call with server id sid, or NULL. */
struct hcall *hsrv_call_take(struct hsrv *s, json_int_t sid);
/* Send a request (params stolen) as a new call of kind. */
void hsrv_request(struct hsrv *s, enum hcall_kind kind, const char *method, json_t *params);
/* The offered definitions of s's tools (a new array). */
json_t *hsrv_offered(const struct hsrv *s);
/* One line the server wrote on stdout. */
void hsrv_line(struct hsrv *s, const char *line, size_t len);

/* ---- host.c ---- */

/* The server's first start is over (ready, or failed): the host may settle. */
void hsrv_first_done(struct hsrv *s);

#endif
