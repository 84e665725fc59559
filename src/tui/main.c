/*
 * main.c -- colibri-glasspane: the live terminal dashboard of a colibri-daemon.
 *
 * An ordinary unprivileged client.  The loop is event driven: poll() on the
 * terminal, the daemon socket and (while a kill runs) the kill child's pipe,
 * with a timeout that is the nearest of the one-second tick (ages, reconnect,
 * task counts), a pending coalesced redraw, or zero when whole lines already
 * sit in the client's buffer.  Nothing spins: with no events and no keys the
 * process wakes once a second.
 *
 * Events are read in batches at most every 20 ms and applied as they come;
 * the screen is redrawn at most ten times a second while they stream, five
 * under a flood of more than 2000 a second (a keypress redraws at once).
 * That keeps a thousand agents changing state ten times a second under 5%
 * of one core (bench/tui_bench.py), most of it jansson parsing the events.
 *
 * Signals only set a flag (SIGINT, SIGTERM, SIGHUP: quit); ncurses turns
 * SIGWINCH into KEY_RESIZE, read on the next wake-up.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curses.h>

#include "common/proto.h"
#include "common/util.h"
#include "tui/conn.h"
#include "tui/model.h"
#include "tui/view.h"

#define TUI_FRAME_MS     100  /* at most ten redraws a second while events stream, */
#define TUI_FLOOD_MS     200  /* five under a flood of ... */
#define TUI_FLOOD_RATE   2000 /* ... more events a second than this */
#define TUI_TICK_MS      1000 /* ages, reconnects, task counts */
#define TUI_REFRESH_MS   250  /* agent-status refreshes ... */
#define TUI_REFRESH_MAX  8    /* ... at most this many each time */
#define TUI_DRAIN_MAX    4000 /* events applied before the loop looks at keys again */
#define TUI_READ_PACE_MS 20   /* while events stream, read the socket at most this often */
#define TUI_VISIBLE_MAX  256
#define TUI_KEY_ESC      27
#define TUI_KEY_CTRL_L   12

static volatile sig_atomic_t tui_quit_signal;

struct tui_app {
	struct tui_model m;
	struct tui_conn conn;
	struct tui_ui ui;
	int quit;
	int need_render;
	int64_t last_render, last_tick, last_refresh;
	int64_t last_drain;    /* when the last read found events (pacing) */
	long long tick_events; /* events seen at the last tick */
	int frame_ms;          /* the current redraw interval */
	char saved_filter[64];
};

static void
tui_on_signal(int sig)
{
	tui_quit_signal = sig;
}

static void
tui_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = tui_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static void
tui_usage(FILE *f)
{
	fputs("usage: colibri-glasspane [--socket PATH]\n"
	      "  the live dashboard of a colibri-daemon's agents, tasks and usage\n"
	      "  --socket PATH   the daemon's socket (default $COLIBRI_SOCKET, then the OS "
	      "default)\n"
	      "keys: arrows/j/k move, Enter detail, K kill, / filter, s sort, ? help, q quit\n",
	      f);
}

/* ---- keys ---- */

static void
tui_open_detail(struct tui_app *app, struct tui_agent *a)
{
	if (a == NULL)
		return;
	tui_tail_reset(&app->ui.tail, a->id);
	app->ui.mode = TUI_MODE_DETAIL;
	a->refreshed_ms = 0;
	if (tui_conn_tail(&app->conn, &app->ui.tail) == -1)
		app->need_render = 1;
}

static void
tui_ask_kill(struct tui_app *app, struct tui_agent *a)
{
	if (a == NULL)
		return;
	snprintf(app->ui.kill_target, sizeof app->ui.kill_target, "%s", a->id);
	app->ui.prompt = TUI_PROMPT_KILL;
}

static void
tui_key_kill(struct tui_app *app, int ch)
{
	char msg[256];

	app->ui.prompt = TUI_PROMPT_NONE;
	if (ch != 'y' && ch != 'Y') {
		tui_ui_message(&app->ui, "kill cancelled");
		return;
	}
	tui_conn_kill_start(&app->conn, app->ui.kill_target, msg, sizeof msg);
	tui_ui_message(&app->ui, msg);
}

static void
tui_key_filter(struct tui_app *app, int ch)
{
	struct tui_ui *ui = &app->ui;
	size_t len = strlen(ui->input);

	if (ch == TUI_KEY_ESC) {
		snprintf(ui->filter, sizeof ui->filter, "%s", app->saved_filter);
		ui->prompt = TUI_PROMPT_NONE;
	} else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		ui->prompt = TUI_PROMPT_NONE;
	} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
		if (len > 0)
			ui->input[len - 1] = '\0';
	} else if (ch >= 32 && ch < 127 && len + 1 < sizeof ui->input) {
		ui->input[len] = (char)ch;
		ui->input[len + 1] = '\0';
	}
	if (ui->prompt == TUI_PROMPT_FILTER)
		snprintf(ui->filter, sizeof ui->filter, "%s", ui->input);
	tui_ui_rebuild(ui);
}

static void
tui_key_table(struct tui_app *app, int ch)
{
	struct tui_ui *ui = &app->ui;
	int page = ui->rows > 8 ? ui->rows - 8 : 1;

	switch (ch) {
	case KEY_UP:
	case 'k':
		tui_ui_move(ui, -1);
		break;
	case KEY_DOWN:
	case 'j':
		tui_ui_move(ui, 1);
		break;
	case KEY_PPAGE:
		tui_ui_move(ui, -page);
		break;
	case KEY_NPAGE:
	case ' ':
		tui_ui_move(ui, page);
		break;
	case KEY_HOME:
	case 'g':
		tui_ui_move(ui, -1000000);
		break;
	case KEY_END:
	case 'G':
		tui_ui_move(ui, 1000000);
		break;
	case '\n':
	case '\r':
	case KEY_ENTER:
		tui_open_detail(app, tui_ui_selected(ui));
		break;
	case 'K':
		tui_ask_kill(app, tui_ui_selected(ui));
		break;
	case '/':
		snprintf(app->saved_filter, sizeof app->saved_filter, "%s", ui->filter);
		snprintf(ui->input, sizeof ui->input, "%s", ui->filter);
		ui->prompt = TUI_PROMPT_FILTER;
		break;
	case 's':
		ui->sort = (enum tui_sort)((ui->sort + 1) % TUI_SORT_COUNT);
		tui_ui_rebuild(ui);
		break;
	case TUI_KEY_ESC:
		ui->filter[0] = '\0';
		tui_ui_rebuild(ui);
		break;
	default:
		break;
	}
}

static void
tui_key(struct tui_app *app, int ch)
{
	struct tui_ui *ui = &app->ui;

	if (ch == KEY_RESIZE) {
		tui_ui_resize(ui);
		return;
	}
	if (ch == TUI_KEY_CTRL_L) {
		clearok(curscr, TRUE);
		ui->full = 1;
	} else if (ui->prompt == TUI_PROMPT_FILTER)
		tui_key_filter(app, ch);
	else if (ui->prompt == TUI_PROMPT_KILL)
		tui_key_kill(app, ch);
	else if (ch == 'q')
		app->quit = 1;
	else if (ch == '?')
		ui->mode = ui->mode == TUI_MODE_HELP ? TUI_MODE_TABLE : TUI_MODE_HELP;
	else if (ui->mode != TUI_MODE_TABLE) {
		if (ch == TUI_KEY_ESC || ch == KEY_LEFT || ch == 'h')
			ui->mode = TUI_MODE_TABLE;
		else if (ch == 'K' && ui->mode == TUI_MODE_DETAIL)
			tui_ask_kill(app, tui_model_find(&app->m, ui->tail.id));
		else if (ch == 'e' && ui->mode == TUI_MODE_DETAIL) {
			tui_tail_toggle_stream(&ui->tail);
			tui_conn_tail(&app->conn, &ui->tail);
			app->need_render = 1;
		}
	} else
		tui_key_table(app, ch);
}

/* Read every waiting key; returns how many. */
static int
tui_keys(struct tui_app *app)
{
	int ch, n = 0;

	while ((ch = getch()) != ERR) {
		tui_key(app, ch);
		n++;
	}
	return n;
}

/* ---- the loop ---- */

static void
tui_connect(struct tui_app *app, int64_t now)
{
	if (app->conn.up || now < app->conn.next_try)
		return;
	tui_conn_open(&app->conn, &app->m, now);
	app->ui.view_valid = 0;
	app->need_render = 1;
}

static void
tui_refresh(struct tui_app *app, int64_t now)
{
	struct tui_agent *vis[TUI_VISIBLE_MAX];
	size_t n;

	if (!app->conn.up || now - app->last_refresh < TUI_REFRESH_MS)
		return;
	app->last_refresh = now;
	n = tui_ui_visible(&app->ui, vis, TUI_VISIBLE_MAX);
	if (tui_conn_refresh(&app->conn, &app->m, vis, n, TUI_REFRESH_MAX, now) != 0)
		app->need_render = 1;
}

static void
tui_tick(struct tui_app *app, int64_t now)
{
	if (now - app->last_tick < TUI_TICK_MS)
		return;
	app->last_tick = now;
	app->need_render = 1;
	app->frame_ms = app->m.events_seen - app->tick_events > TUI_FLOOD_RATE ? TUI_FLOOD_MS
	                                                                       : TUI_FRAME_MS;
	app->tick_events = app->m.events_seen;
	tui_conn_tasks(&app->conn, &app->m, now);
	if (app->ui.mode == TUI_MODE_DETAIL)
		tui_conn_tail(&app->conn, &app->ui.tail);
}

/*
 * Whether to read the socket now.  While events stream, reading them in
 * batches 20 ms apart instead of waking for each costs a far smaller share
 * of wake-ups and system calls; the kernel's socket buffer holds the rest.
 */
static int
tui_read_due(const struct tui_app *app, int64_t now)
{
	return now - app->last_drain >= TUI_READ_PACE_MS;
}

static int
tui_timeout(struct tui_app *app, int64_t now)
{
	int64_t t = app->last_tick + TUI_TICK_MS - now;

	if (!tui_read_due(app, now))
		t = app->last_drain + TUI_READ_PACE_MS - now;
	else if (tui_conn_buffered(&app->conn))
		return 0;
	if (app->need_render && app->last_render + app->frame_ms - now < t)
		t = app->last_render + app->frame_ms - now;
	if (!app->conn.up && app->conn.next_try - now < t)
		t = app->conn.next_try - now;
	return t < 0 ? 0 : (int)t;
}

static void
tui_wait(struct tui_app *app, int64_t now)
{
	int due = tui_read_due(app, now), n;
	struct pollfd pfd[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
	                        {.fd = due ? tui_conn_fd(&app->conn) : -1, .events = POLLIN},
	                        {.fd = app->conn.kill_fd, .events = POLLIN}};

	n = poll(pfd, 3, tui_timeout(app, now));

	if (n == -1 && errno != EINTR)
		app->quit = 1;
	if (n == -1 || (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
		if (tui_keys(app) > 0) {
			app->need_render = 1;
			app->last_render = 0; /* a key redraws at once */
		}
	}
	if ((pfd[2].revents & (POLLIN | POLLHUP)) != 0) {
		char msg[256];
		tui_conn_kill_finish(&app->conn, msg, sizeof msg);
		tui_ui_message(&app->ui, msg);
		app->need_render = 1;
	}
	now = mono_ms();
	if (!tui_read_due(app, now) || tui_conn_fd(&app->conn) == -1)
		return;
	if (n > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) == 0 &&
	    !tui_conn_buffered(&app->conn))
		return;
	n = tui_conn_drain(&app->conn, &app->m, TUI_DRAIN_MAX, now);
	if (n != 0)
		app->need_render = 1;
	if (n > 0)
		app->last_drain = now;
}

static int
tui_run(const char *path)
{
	struct tui_app app;
	int64_t now;

	memset(&app, 0, sizeof app);
	tui_model_init(&app.m);
	tui_conn_init(&app.conn, path);
	tui_ui_init(&app.ui, &app.m, &app.conn);
	app.need_render = 1;
	app.frame_ms = TUI_FRAME_MS;
	while (!app.quit && tui_quit_signal == 0) {
		now = mono_ms();
		tui_connect(&app, now);
		tui_refresh(&app, now);
		tui_tick(&app, now);
		if (app.need_render && now - app.last_render >= app.frame_ms) {
			tui_ui_render(&app.ui);
			app.last_render = now;
			app.need_render = 0;
		}
		tui_wait(&app, now);
	}
	tui_ui_end(&app.ui);
	tui_conn_free(&app.conn);
	tui_model_free(&app.m);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--socket=", 9) == 0)
			path = argv[i] + 9;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			tui_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("colibri-glasspane %s\n", COLIBRI_VERSION);
			return 0;
		} else {
			tui_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (path == NULL)
		path = client_default_socket();
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fputs("colibri-glasspane: needs a terminal\n", stderr);
		return EXIT_USAGE;
	}
	tui_signals();
	return tui_run(path);
}
