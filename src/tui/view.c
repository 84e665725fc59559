/*
 * view.c -- drawing colibri-glasspane with ncursesw.
 *
 * The screen, top to bottom: a header (host, version, task board counts),
 * the column titles, one line per agent, a separator and the most recent
 * events, and a status line (connection, messages, prompts, the last seq).
 * Columns drop in a fixed order when the terminal is narrow (tenant/jail
 * first, then turns, provider, tokens and cache-hit share), so 80 columns
 * keep id, state, activity, age and cost.
 *
 * Text goes through tui_put, which decodes UTF-8 with the locale, replaces
 * control characters, cuts at a column count (never inside a character)
 * and pads, so every line is exactly as wide as its field and nothing
 * stale survives beside it.
 */
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include <curses.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "tui/view.h"

enum tui_col {
	COL_ID,
	COL_PROVIDER,
	COL_PLACE,
	COL_STATE,
	COL_ACTIVITY,
	COL_AGE,
	COL_TURNS,
	COL_TOKENS,
	COL_HIT,
	COL_COST,
	COL_COUNT
};

/* drop: columns with the highest number go first when space is short. */
static const struct {
	const char *title;
	int width;
	int drop;
	int right;
} tui_cols[COL_COUNT] = {
        {"ID", 16, 0, 0},   {"PROVIDER", 8, 3, 0}, {"TENANT/JAIL", 12, 5, 0},
        {"STATE", 7, 0, 0}, {"ACTIVITY", 0, 0, 0}, {"AGE", 4, 1, 1},
        {"TURNS", 5, 4, 1}, {"TOKENS", 6, 2, 1},   {"HIT", 4, 2, 1},
        {"COST", 8, 1, 1},
};
#define TUI_ACTIVITY_MIN 16

enum { PAIR_WORKING = 1, PAIR_BLOCKED, PAIR_ERROR, PAIR_DONE, PAIR_IDLE, PAIR_OTHER, PAIR_BAD };

/* ---- text ---- */

static void
tui_spaces(int n)
{
	static const char sp[] = "                                                                ";

	while (n > 0) {
		int k = n < (int)sizeof sp - 1 ? n : (int)sizeof sp - 1;
		addnstr(sp, k);
		n -= k;
	}
}

/* Decode s into at most width columns; returns the columns used. */
static int
tui_decode(const char *s, int width, wchar_t *w, int *nw, int max)
{
	mbstate_t st;
	size_t len = strlen(s), r;
	int cols = 0, n = 0, cw;
	wchar_t wc;

	memset(&st, 0, sizeof st);
	while (len > 0 && n < max) {
		r = mbrtowc(&wc, s, len, &st);
		if (r == (size_t)-1 || r == (size_t)-2 || r == 0) {
			memset(&st, 0, sizeof st);
			wc = L'?';
			r = 1;
		}
		cw = wcwidth(wc);
		if (wc < 32 || wc == 127 || cw < 0) {
			wc = L'?';
			cw = 1;
		}
		if (cols + cw > width)
			break;
		w[n++] = wc;
		cols += cw;
		s += r;
		len -= r;
	}
	*nw = n;
	return cols;
}

/* s at (y, x) in exactly width columns, cut or padded (right-aligned if right). */
static void
tui_put(int y, int x, int width, const char *s, int right)
{
	wchar_t w[512];
	int n, cols;

	if (width <= 0)
		return;
	cols = tui_decode(s, width, w, &n, (int)(sizeof w / sizeof w[0]));
	move(y, x);
	if (right)
		tui_spaces(width - cols);
	addnwstr(w, n);
	if (!right)
		tui_spaces(width - cols);
}

/* ---- set-up ---- */

static void
tui_colors(struct tui_ui *ui)
{
	const char *nc = getenv("NO_COLOR");

	ui->color = (nc == NULL || nc[0] == '\0') && has_colors();
	if (!ui->color)
		return;
	start_color();
	use_default_colors();
	init_pair(PAIR_WORKING, COLOR_GREEN, -1);
	init_pair(PAIR_BLOCKED, COLOR_YELLOW, -1);
	init_pair(PAIR_ERROR, COLOR_RED, -1);
	init_pair(PAIR_DONE, COLOR_CYAN, -1);
	init_pair(PAIR_IDLE, COLOR_BLUE, -1);
	init_pair(PAIR_OTHER, COLOR_MAGENTA, -1);
	init_pair(PAIR_BAD, COLOR_WHITE, COLOR_RED);
}

void
tui_ui_init(struct tui_ui *ui, struct tui_model *m, struct tui_conn *conn)
{
	memset(ui, 0, sizeof *ui);
	ui->m = m;
	ui->conn = conn;
	setlocale(LC_ALL, "");
	set_escdelay(25);
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	tui_colors(ui);
	tui_ui_resize(ui);
}

void
tui_ui_end(struct tui_ui *ui)
{
	endwin();
	free(ui->view);
	free(ui->lines);
	tui_tail_reset(&ui->tail, NULL);
	ui->view = NULL;
	ui->lines = NULL;
}

void
tui_ui_resize(struct tui_ui *ui)
{
	getmaxyx(stdscr, ui->rows, ui->cols);
	free(ui->lines);
	ui->nlines = ui->rows > 0 ? ui->rows : 1;
	ui->lines = xcalloc((size_t)ui->nlines, sizeof *ui->lines);
	ui->full = 1;
}

void
tui_ui_message(struct tui_ui *ui, const char *text)
{
	snprintf(ui->message, sizeof ui->message, "%s", text);
	ui->message_until = mono_ms() + 5000;
}

/* ---- layout ---- */

static int
tui_event_rows(const struct tui_ui *ui)
{
	if (ui->rows >= 40)
		return 8;
	if (ui->rows >= 28)
		return 5;
	if (ui->rows >= 20)
		return 3;
	return ui->rows >= 12 ? 1 : 0;
}

/* Table lines available between the titles and the event area. */
static int
tui_table_rows(const struct tui_ui *ui)
{
	int e = tui_event_rows(ui), t = ui->rows - 3 - (e > 0 ? e + 1 : 0);

	return t > 0 ? t : 0;
}

/* Column widths for the current width (0: dropped); the activity column takes the rest. */
static void
tui_layout(const struct tui_ui *ui, int *width)
{
	int c, used = TUI_ACTIVITY_MIN, drop;

	for (c = 0; c < COL_COUNT; c++) {
		width[c] = tui_cols[c].width;
		if (c != COL_ACTIVITY)
			used += width[c] + 1;
	}
	for (drop = 5; drop > 0 && used > ui->cols; drop--)
		for (c = 0; c < COL_COUNT; c++)
			if (tui_cols[c].drop == drop && width[c] > 0) {
				used -= width[c] + 1;
				width[c] = 0;
			}
	width[COL_ACTIVITY] = TUI_ACTIVITY_MIN + (ui->cols - used);
	if (width[COL_ACTIVITY] < 1)
		width[COL_ACTIVITY] = 1;
}

/* ---- the selection ---- */

void
tui_ui_rebuild(struct tui_ui *ui)
{
	free(ui->view);
	ui->nview = tui_model_view(ui->m, ui->filter, ui->sort, &ui->view);
	ui->view_valid = 1;
	ui->m->order_dirty = 0;
}

static long
tui_selected_index(struct tui_ui *ui)
{
	size_t i;

	for (i = 0; i < ui->nview; i++)
		if (strcmp(ui->view[i]->id, ui->selected) == 0)
			return (long)i;
	return -1;
}

struct tui_agent *
tui_ui_selected(struct tui_ui *ui)
{
	long i;

	if (!ui->view_valid || ui->m->order_dirty)
		tui_ui_rebuild(ui);
	i = tui_selected_index(ui);
	if (i < 0 && ui->nview > 0) {
		i = ui->top < (int)ui->nview ? ui->top : 0;
		snprintf(ui->selected, sizeof ui->selected, "%s", ui->view[i]->id);
	}
	return i >= 0 ? ui->view[i] : NULL;
}

void
tui_ui_move(struct tui_ui *ui, int delta)
{
	long i;

	if (tui_ui_selected(ui) == NULL)
		return;
	i = tui_selected_index(ui) + delta;
	if (i < 0)
		i = 0;
	if (i >= (long)ui->nview)
		i = (long)ui->nview - 1;
	snprintf(ui->selected, sizeof ui->selected, "%s", ui->view[i]->id);
}

/* Keep the selected row on screen. */
static void
tui_scroll(struct tui_ui *ui)
{
	int t = tui_table_rows(ui);
	long sel;

	tui_ui_selected(ui);
	sel = tui_selected_index(ui);
	if (sel >= 0 && sel < ui->top)
		ui->top = (int)sel;
	if (sel >= 0 && sel >= ui->top + t)
		ui->top = (int)sel - t + 1;
	if (ui->top > (int)ui->nview - t)
		ui->top = (int)ui->nview - t;
	if (ui->top < 0)
		ui->top = 0;
}

size_t
tui_ui_visible(struct tui_ui *ui, struct tui_agent **out, size_t max)
{
	size_t n = 0;
	int i, t;

	if (ui->mode == TUI_MODE_DETAIL) {
		struct tui_agent *a = tui_model_find(ui->m, ui->tail.id);
		if (a != NULL && max > 0)
			out[n++] = a;
		return n;
	}
	if (!ui->view_valid || ui->m->order_dirty)
		tui_ui_rebuild(ui);
	t = tui_table_rows(ui);
	for (i = ui->top; i < ui->top + t && i < (int)ui->nview && n < max; i++)
		out[n++] = ui->view[i];
	return n;
}

/* ---- cells ---- */

static int
tui_state_attr(const struct tui_ui *ui, const char *state)
{
	static const struct {
		const char *name;
		int pair;
	} map[] = {{"working", PAIR_WORKING}, {"blocked", PAIR_BLOCKED}, {"error", PAIR_ERROR},
	           {"done", PAIR_DONE},       {"idle", PAIR_IDLE},       {"lost", PAIR_ERROR}};
	size_t i;
	int bold = strcmp(state, "error") == 0 || strcmp(state, "blocked") == 0 ? A_BOLD : 0;

	if (!ui->color)
		return bold;
	for (i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(state, map[i].name) == 0)
			return COLOR_PAIR(map[i].pair) | bold;
	return COLOR_PAIR(PAIR_OTHER);
}

static void
tui_age_text(char *dst, size_t n, const struct tui_agent *a, int64_t wall)
{
	if (a->last_event_ms <= 0)
		snprintf(dst, n, "-");
	else
		tui_fmt_age(dst, n, wall - a->last_event_ms > 0 ? wall - a->last_event_ms : 0);
}

/* What the activity column says: the final reason for finished agents. */
static const char *
tui_activity_text(const struct tui_agent *a)
{
	if (strcmp(a->state, "done") == 0 || strcmp(a->state, "error") == 0 || a->activity[0] == 0)
		return a->reason;
	return a->activity;
}

static void
tui_cell(const struct tui_agent *a, int c, const char *age, char *dst, size_t n)
{
	int pct;

	switch (c) {
	case COL_ID:
		snprintf(dst, n, "%s", a->id);
		break;
	case COL_PROVIDER:
		snprintf(dst, n, "%s", a->provider[0] ? a->provider : "-");
		break;
	case COL_PLACE:
		snprintf(dst, n, "%s", a->place[0] ? a->place : "-");
		break;
	case COL_STATE:
		snprintf(dst, n, "%s", a->state[0] ? a->state : "?");
		break;
	case COL_ACTIVITY:
		snprintf(dst, n, "%s", tui_activity_text(a));
		break;
	case COL_AGE:
		snprintf(dst, n, "%s", age);
		break;
	case COL_TURNS:
		tui_fmt_count(dst, n, a->turns);
		break;
	case COL_TOKENS:
		tui_fmt_count(dst, n, a->total_tokens);
		break;
	case COL_HIT:
		if ((pct = tui_agent_hit_pct(a)) < 0)
			snprintf(dst, n, "-");
		else
			snprintf(dst, n, "%d%%", pct);
		break;
	default:
		tui_fmt_cost(dst, n, a->cost);
		break;
	}
}

static void
tui_draw_row(struct tui_ui *ui, int y, const struct tui_agent *a, int selected, const char *age)
{
	int width[COL_COUNT], c, x = 0, attr;
	char cell[256];

	tui_layout(ui, width);
	for (c = 0; c < COL_COUNT; c++) {
		if (width[c] == 0)
			continue;
		attr = selected ? A_REVERSE : 0;
		if (c == COL_STATE)
			attr |= tui_state_attr(ui, a->state);
		tui_cell(a, c, age, cell, sizeof cell);
		attrset(attr);
		tui_put(y, x, width[c], cell, tui_cols[c].right);
		x += width[c];
		if (x < ui->cols) {
			attrset(selected ? A_REVERSE : 0);
			tui_spaces(1);
			x++;
		}
	}
	attrset(selected ? A_REVERSE : 0);
	if (x < ui->cols)
		tui_put(y, x, ui->cols - x, "", 0);
	attrset(0);
}

/* ---- fixed lines ---- */

/* Draw text at line y when it differs from what *drawn says is there. */
static void
tui_fixed_line(struct tui_ui *ui, int y, char *drawn, size_t n, const char *text, int attr)
{
	if (!ui->full && strncmp(drawn, text, n - 1) == 0)
		return;
	snprintf(drawn, n, "%s", text);
	attrset(attr);
	tui_put(y, 0, ui->cols, text, 0);
	attrset(0);
}

static void
tui_draw_header(struct tui_ui *ui)
{
	const struct tui_model *m = ui->m;
	char text[256];

	snprintf(text, sizeof text,
	         " colibri-glasspane  %s  %s | tasks open %lld ready %lld claimed %lld "
	         "done %lld stale claims %lld | agents %zu",
	         m->host[0] ? m->host : "?", m->version[0] ? m->version : "?", m->tasks_open,
	         m->tasks_ready, m->tasks_claimed, m->tasks_done, m->stale_claims, m->n);
	tui_fixed_line(ui, 0, ui->drawn_header, sizeof ui->drawn_header, text, A_REVERSE);
}

static void
tui_draw_titles(struct tui_ui *ui)
{
	int width[COL_COUNT], c;
	char text[256] = "";
	size_t len = 0;

	tui_layout(ui, width);
	for (c = 0; c < COL_COUNT && len < sizeof text - 1; c++) {
		if (width[c] == 0)
			continue;
		len += (size_t)snprintf(text + len, sizeof text - len,
		                        tui_cols[c].right ? "%*s " : "%-*s ", width[c],
		                        tui_cols[c].title);
	}
	tui_fixed_line(ui, 1, ui->drawn_titles, sizeof ui->drawn_titles, text, A_BOLD);
}

static void
tui_status_text(struct tui_ui *ui, char *left, size_t n, int *attr)
{
	*attr = 0;
	if (ui->prompt == TUI_PROMPT_FILTER) {
		snprintf(left, n, "filter: %s_   (Enter apply, Esc cancel)", ui->input);
		*attr = A_BOLD;
	} else if (ui->prompt == TUI_PROMPT_KILL) {
		snprintf(left, n, "kill agent %s? (y/n)", ui->kill_target);
		*attr = A_BOLD | (ui->color ? COLOR_PAIR(PAIR_BAD) : A_REVERSE);
	} else if (!ui->conn->up) {
		snprintf(left, n, "daemon unreachable, retrying every second: %s", ui->conn->why);
		*attr = A_BOLD | (ui->color ? COLOR_PAIR(PAIR_BAD) : A_REVERSE);
	} else if (ui->message[0] != '\0' && mono_ms() < ui->message_until) {
		snprintf(left, n, "%s", ui->message);
		*attr = A_BOLD;
	} else {
		snprintf(left, n, "connected  sort: %s%s%s", tui_sort_name(ui->sort),
		         ui->filter[0] ? "  filter: " : "", ui->filter);
	}
}

static void
tui_draw_status(struct tui_ui *ui)
{
	char left[400], right[64], text[512];
	int attr, lw, y = ui->rows - 1;

	tui_status_text(ui, left, sizeof left, &attr);
	snprintf(right, sizeof right, " seq %lld  ? help ", ui->m->last_seq);
	snprintf(text, sizeof text, "%d|%s|%s", attr, left, right);
	if (!ui->full && strcmp(ui->drawn_status, text) == 0)
		return;
	snprintf(ui->drawn_status, sizeof ui->drawn_status, "%s", text);
	lw = ui->cols - (int)strlen(right);
	if (lw < 0)
		lw = 0;
	attrset(attr);
	tui_put(y, 0, lw, left, 0);
	attrset(A_REVERSE);
	tui_put(y, lw, ui->cols - lw, right, 1);
	attrset(0);
}

static void
tui_event_line(const struct tui_event *e, char *dst, size_t n)
{
	struct tm tm;
	time_t t = (time_t)(e->ts / 1000);
	char hms[16] = "--:--:--";

	if (e->ts > 0 && localtime_r(&t, &tm) != NULL)
		strftime(hms, sizeof hms, "%H:%M:%S", &tm);
	snprintf(dst, n, "%s %s", hms, e->text);
}

/* The separator and the newest events, oldest first, from line y0. */
static void
tui_draw_events(struct tui_ui *ui, int y0, int count)
{
	const struct tui_event *e;
	char line[256];
	int i;

	if (count <= 0 || (!ui->full && !ui->m->log_dirty))
		return;
	attrset(A_BOLD);
	tui_put(y0, 0, ui->cols, "-- recent events ", 0);
	attrset(0);
	for (i = 0; i < count; i++) {
		e = tui_model_log_get(ui->m, (unsigned)(count - 1 - i));
		line[0] = '\0';
		if (e != NULL)
			tui_event_line(e, line, sizeof line);
		tui_put(y0 + 1 + i, 0, ui->cols, line, 0);
	}
	ui->m->log_dirty = 0;
}

/* ---- the table ---- */

static void
tui_draw_table(struct tui_ui *ui)
{
	int t = tui_table_rows(ui), i, sel;
	int64_t wall = now_ms();
	const struct tui_agent *a;
	struct tui_line *l;
	char age[8];
	size_t k;

	tui_scroll(ui);
	for (i = 0; i < t && 2 + i < ui->nlines; i++) {
		l = &ui->lines[2 + i];
		a = ui->top + i < (int)ui->nview ? ui->view[ui->top + i] : NULL;
		if (a == NULL) {
			if (ui->full || l->a != NULL)
				tui_put(2 + i, 0, ui->cols,
				        i == 0 && ui->nview == 0 ? "  (no agents)" : "", 0);
			l->a = NULL;
			continue;
		}
		sel = strcmp(a->id, ui->selected) == 0;
		tui_age_text(age, sizeof age, a, wall);
		if (!ui->full && l->a == a && !a->dirty && l->selected == sel &&
		    strcmp(l->age, age) == 0)
			continue;
		tui_draw_row(ui, 2 + i, a, sel, age);
		l->a = a;
		l->selected = sel;
		snprintf(l->age, sizeof l->age, "%s", age);
	}
	for (k = 0; k < ui->m->n; k++)
		ui->m->agents[k]->dirty = 0;
}

static void
tui_render_table(struct tui_ui *ui)
{
	int e = tui_event_rows(ui);

	tui_draw_titles(ui);
	tui_draw_table(ui);
	tui_draw_events(ui, ui->rows - 2 - e, e);
}

/* ---- detail and help pages ---- */

static int tui_textf(struct tui_ui *ui, int y, int attr, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* One formatted full-width line; returns the next line. */
static int
tui_textf(struct tui_ui *ui, int y, int attr, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (y >= ui->rows - 1)
		return y;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	attrset(attr);
	tui_put(y, 0, ui->cols, text, 0);
	attrset(0);
	return y + 1;
}

static int
tui_detail_facts(struct tui_ui *ui, const struct tui_agent *a, int y)
{
	char age[8], tok[5][16], cost[24];
	int pct = tui_agent_hit_pct(a), attr, x;

	tui_age_text(age, sizeof age, a, now_ms());
	tui_fmt_count(tok[0], sizeof tok[0], a->input);
	tui_fmt_count(tok[1], sizeof tok[1], a->output);
	tui_fmt_count(tok[2], sizeof tok[2], a->cache_read);
	tui_fmt_count(tok[3], sizeof tok[3], a->cache_write);
	tui_fmt_count(tok[4], sizeof tok[4], a->total_tokens);
	tui_fmt_cost(cost, sizeof cost, a->cost);
	y = tui_textf(ui, y, A_BOLD, " agent %s  %s", a->id, a->state);
	attr = tui_state_attr(ui, a->state);
	x = 9 + (int)strlen(a->id);
	if (x + (int)strlen(a->state) <= ui->cols)
		mvchgat(y - 1, x, (int)strlen(a->state), (attr & ~A_COLOR) | A_BOLD,
		        (short)PAIR_NUMBER(attr), NULL);
	y = tui_textf(ui, y, 0, " reason: %s%s%s", a->reason, a->exit_text[0] ? "  " : "",
	              a->exit_text);
	y = tui_textf(ui, y, 0, " provider %s  kind %s  tenant/jail %s  pid %lld  session %s",
	              a->provider[0] ? a->provider : "-", a->kind[0] ? a->kind : "-",
	              a->place[0] ? a->place : "-", a->pid, a->session_id[0] ? a->session_id : "-");
	y = tui_textf(
	        ui, y, 0,
	        " activity: %s  turns %lld  tool calls %lld  restarts %lld  last event %s ago",
	        a->activity[0] ? a->activity : "-", a->turns, a->tool_calls, a->restarts, age);
	y = tui_textf(ui, y, 0,
	              " tokens: in %s  out %s  cache read %s  cache write %s  total %s  hit %d%%  "
	              "cost %s",
	              tok[0], tok[1], tok[2], tok[3], tok[4], pct < 0 ? 0 : pct, cost);
	return tui_textf(ui, y, a->last_error[0] ? A_BOLD : 0, " last error: %s",
	                 a->last_error[0] ? a->last_error : "-");
}

static void
tui_render_detail(struct tui_ui *ui)
{
	const struct tui_agent *a = tui_model_find(ui->m, ui->tail.id);
	char line[256];
	int y = 1, nev = 0, room, i;

	erase();
	if (a == NULL) {
		tui_textf(ui, 1, A_BOLD, " agent %s is gone (Esc to go back)", ui->tail.id);
		return;
	}
	y = tui_detail_facts(ui, a, y);
	room = ui->rows - 1 - y - 2;
	while (nev < TUI_AGENT_EVENTS && nev < room / 2 && tui_agent_event_get(a, (unsigned)nev))
		nev++;
	y = tui_textf(ui, y, A_BOLD, "-- recent events of %s ", a->id);
	for (i = nev - 1; i >= 0; i--) {
		tui_event_line(tui_agent_event_get(a, (unsigned)i), line, sizeof line);
		y = tui_textf(ui, y, 0, " %s", line);
	}
	y = tui_textf(ui, y, A_BOLD, "-- %s %s (newest last; e: %s) %s",
	              ui->tail.stderr_stream ? "stderr of" : "session log", ui->tail.id,
	              ui->tail.stderr_stream ? "session log" : "stderr", ui->tail.error);
	room = ui->rows - 1 - y;
	for (i = room - 1; i >= 0; i--) {
		const char *s = tui_tail_get(&ui->tail, (unsigned)i);
		if (s != NULL)
			y = tui_textf(ui, y, 0, " %s", s);
	}
}

static void
tui_render_help(struct tui_ui *ui)
{
	static const char *help[] = {
	        " colibri-glasspane: live view of the agents of a colibri-daemon",
	        "",
	        "  Up/Down, j/k   move the selection       PgUp/PgDn, g/G  page, first, last",
	        "  Enter          the agent's detail: facts, recent events, session log",
	        "  e              (detail) switch between the session log and stderr",
	        "  K              kill the selected agent (asks y/n)",
	        "  /              filter by id, provider or state (empty: all)",
	        "  s              cycle the sort: id, state, last event, cost",
	        "  ?              this help        Esc  back to the table        q  quit",
	        "",
	        " Columns: AGE is the time since the agent's last event; HIT is the",
	        " cache-hit share cache_read / (input + cache_read); COST is in dollars.",
	        " States: idle, working, blocked (retry, stall, waiting), done, error.",
	        " The status line shows the last event seq applied; the dashboard",
	        " reconnects by itself when the daemon goes away.",
	};
	size_t i;
	int y = 1;

	erase();
	for (i = 0; i < sizeof help / sizeof help[0]; i++)
		y = tui_textf(ui, y, i == 0 ? A_BOLD : 0, "%s", help[i]);
}

void
tui_ui_render(struct tui_ui *ui)
{
	if (ui->mode != ui->drawn_mode) {
		ui->full = 1;
		ui->drawn_mode = ui->mode;
	}
	if (ui->full && ui->mode == TUI_MODE_TABLE)
		erase();
	if (ui->mode == TUI_MODE_TABLE)
		tui_render_table(ui);
	else if (ui->mode == TUI_MODE_DETAIL)
		tui_render_detail(ui);
	else
		tui_render_help(ui);
	tui_draw_header(ui);
	tui_draw_status(ui);
	ui->full = ui->mode != TUI_MODE_TABLE;
	wnoutrefresh(stdscr);
	doupdate();
}
