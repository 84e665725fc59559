/*
 * harness.h -- turn one line of an agent's JSONL stream into a normalised event.
 *
 * Two harnesses speak two dialects: pi (`pi --mode json` / `--mode rpc`; the
 * `local` provider's colibri-test-agent speaks it too) and zot (`zot --json`,
 * `zot rpc`).  A decoder reads one line and fills a struct gp_event that the
 * glasspane state machine understands without knowing the dialect.
 *
 * Cost: the top-level "type" is found with the allocation-free scanner in
 * jscan.h, and only the rare lines that carry what the glasspane needs
 * (pi's assistant message_end, auto_retry_*, extension_ui_request, response;
 * zot's assistant_message, usage and error) are parsed into a jansson tree.  The message_update
 * lines that dominate a pi stream are scanned, never parsed.
 *
 * Decoders are pure: no I/O, no global state, any bytes accepted.
 */
#ifndef COLIBRI_GLASSPANE_HARNESS_H
#define COLIBRI_GLASSPANE_HARNESS_H

#include <stddef.h>
#include <stdint.h>

enum gp_kind {
	GP_EV_UNKNOWN = 0, /* well-framed line with a type we do not know: ignored */
	GP_EV_SESSION,     /* pi: session header */
	GP_EV_RUN_START,   /* pi: agent_start */
	GP_EV_TURN_START,  /* pi, zot: turn_start */
	GP_EV_MESSAGE_START,
	GP_EV_MESSAGE_UPDATE,
	GP_EV_MESSAGE_END,
	GP_EV_TOOL_START,  /* pi: tool_execution_start; zot: tool_call */
	GP_EV_TOOL_UPDATE, /* pi: tool_execution_update */
	GP_EV_TOOL_END,    /* pi: tool_execution_end; zot: tool_result */
	GP_EV_TURN_END,
	GP_EV_RUN_END, /* pi: agent_end (not the end of the run if a retry follows); zot: done */
	GP_EV_RETRY_START,  /* pi: auto_retry_start */
	GP_EV_RETRY_END,    /* pi: auto_retry_end */
	GP_EV_COMPACTION,   /* pi: compaction_start / compaction_end */
	GP_EV_QUEUE_UPDATE, /* pi: queue_update */
	GP_EV_UI_REQUEST,   /* pi rpc: extension_ui_request */
	GP_EV_RESPONSE,     /* pi rpc: response to a command */
	GP_EV_TEXT,         /* zot: text_delta */
	GP_EV_ASSISTANT,    /* zot: assistant_message */
	GP_EV_USAGE,        /* zot: usage */
	GP_EV_ERROR,        /* zot: error (the run failed) */
};

enum gp_role { GP_ROLE_NONE = 0, GP_ROLE_USER, GP_ROLE_ASSISTANT, GP_ROLE_TOOL, GP_ROLE_OTHER };

/* An assistant message's stopReason, folded to what the machine needs. */
enum gp_stop { GP_STOP_NONE = 0, GP_STOP_OK, GP_STOP_ERROR, GP_STOP_ABORTED };

/* What a message_update is streaming (pi's assistantMessageEvent.type prefix). */
enum gp_delta { GP_DELTA_NONE = 0, GP_DELTA_TEXT, GP_DELTA_THINKING, GP_DELTA_TOOLCALL };

struct gp_usage {
	int64_t input;
	int64_t output;
	int64_t cache_read;
	int64_t cache_write;
	int64_t total_tokens;
	double cost;
};

#define GP_TYPE_MAX    48
#define GP_NAME_MAX    64
#define GP_MESSAGE_MAX 512
/* An assistant message's text is kept up to this many bytes (cut on a UTF-8 boundary). */
#define GP_TEXT_MAX 16384

struct gp_event {
	enum gp_kind kind;
	char type[GP_TYPE_MAX]; /* the raw "type" value (truncated), for the transition's cause */
	enum gp_role role;      /* message_start/_end */
	enum gp_stop stop;      /* assistant message_end */
	enum gp_delta delta;    /* message_update */
	int has_usage;
	struct gp_usage usage; /* assistant message_end (pi), usage (zot) */
	int attempt;           /* auto_retry_start/_end */
	int max_attempts;      /* auto_retry_start */
	int64_t delay_ms;      /* auto_retry_start */
	int success;           /* auto_retry_end, response */
	int blocking; /* extension_ui_request that waits for an answer (select, confirm, ...) */
	char name[GP_NAME_MAX];       /* tool name, UI method, response command, session id */
	char message[GP_MESSAGE_MAX]; /* errorMessage, finalError, UI title, response error */
	size_t text_len;              /* the text below */
	/*
	 * An assistant message's text (pi: the text parts of message_end's content, joined by
	 * newlines; zot: assistant_message's text).  Last, and cleared only up to here plus its
	 * first byte (gp_event_clear): most lines carry none, and a decoder runs per line.
	 */
	char text[GP_TEXT_MAX];
};

/* Empty *ev: every field zero, text "" (without touching the rest of text). */
void gp_event_clear(struct gp_event *ev);

/*
 * Decode one pi line (without its newline) into *ev.  Returns 0 when the line
 * is a well-framed JSON object with a string "type" (ev->kind may then be
 * GP_EV_UNKNOWN), -1 for anything else (truncated, garbage, not an object, or
 * a line whose interesting payload does not parse); *ev is then GP_EV_UNKNOWN.
 */
int harness_pi_decode(const char *line, size_t len, struct gp_event *ev);

/* The same for zot's dialect. */
int harness_zot_decode(const char *line, size_t len, struct gp_event *ev);

#endif
