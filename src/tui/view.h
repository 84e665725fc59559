/*
 * view.h -- colibri-glasspane's screen: the agent table, the detail and
 * help pages, the header, the event area and the status line.
 *
 * The view draws into stdscr and lets ncurses compute what reaches the
 * terminal (wnoutrefresh + doupdate, never clear() except after a resize).
 * On top of that it skips work itself: a table line is re-rendered only when
 * its row is dirty, another row moved onto it, the selection moved or its
 * age text changed; the header, column titles, event area and status line
 * only when their text changed.
 */
#ifndef COLIBRI_TUI_VIEW_H
#define COLIBRI_TUI_VIEW_H

#include <stdint.h>

#include "tui/conn.h"
#include "tui/model.h"

enum tui_mode { TUI_MODE_TABLE, TUI_MODE_DETAIL, TUI_MODE_HELP };
enum tui_prompt { TUI_PROMPT_NONE, TUI_PROMPT_FILTER, TUI_PROMPT_KILL };

/* What one table line shows now (to skip redrawing it). */
struct tui_line {
	const struct tui_agent *a;
	int selected;
	char age[8];
};

struct tui_ui {
	struct tui_model *m;
	struct tui_conn *conn;
	struct tui_tail tail; /* the detail view's session log */
	int color;
	int rows, cols;
	enum tui_mode mode;
	enum tui_prompt prompt;
	enum tui_sort sort;
	char filter[64];
	char input[64]; /* the filter being typed */
	char selected[64];
	char kill_target[64];
	int top; /* first view row shown */
	char message[256];
	int64_t message_until; /* monotonic ms */
	struct tui_agent **view;
	size_t nview;
	int view_valid;
	struct tui_line *lines;
	int nlines;
	enum tui_mode drawn_mode;
	int full; /* everything must be redrawn (resize, page change) */
	/* What the fixed lines show now, to skip drawing them again. */
	char drawn_header[256];
	char drawn_titles[256];
	char drawn_status[512];
};

/* Set up curses (colour unless NO_COLOR is set and non-empty). */
void tui_ui_init(struct tui_ui *, struct tui_model *, struct tui_conn *);
/* Restore the terminal and free the view's memory. */
void tui_ui_end(struct tui_ui *);
/* After KEY_RESIZE: take the new size and redraw everything on the next render. */
void tui_ui_resize(struct tui_ui *);
/* Rebuild the filtered, sorted row list (after model or filter/sort changes). */
void tui_ui_rebuild(struct tui_ui *);
/* The row under the cursor, or NULL. */
struct tui_agent *tui_ui_selected(struct tui_ui *);
/* Move the cursor by delta rows (clamped). */
void tui_ui_move(struct tui_ui *, int delta);
/* Rows currently on screen (the refresh budget serves them first); returns how many. */
size_t tui_ui_visible(struct tui_ui *, struct tui_agent **out, size_t max);
/* Show a message in the status line for a few seconds. */
void tui_ui_message(struct tui_ui *, const char *text);
/* Draw what changed and push it to the terminal. */
void tui_ui_render(struct tui_ui *);

#endif
