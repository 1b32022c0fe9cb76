/*
 * shell.c — `semstream shell`: the interactive SQL shell (libedit line editing,
 * multi-line statements ending in ';', history in ~/.semstream_history, tab
 * completion of keywords and catalog names, \help \q \timing) and its
 * non-interactive form (`semstream shell FILE.sql`, or input that is not a
 * terminal): statements are split here so that an error in one is reported
 * with its line:column and the session goes on with the next.
 */
#include "cli.h"
#include "ss_engine.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- running statements ---- */

/* Runs one statement found at byte `at` of the input: it is padded with the
 * newlines and spaces before it so that error positions match the input. */
static int run_one(ss_engine_t *e, const char *all, size_t at, size_t len, const char *name, int timing)
{
    int line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        if (all[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 1; i < line; i++)
        ss_buf_putc(&b, '\n');
    for (int i = 1; i < col; i++)
        ss_buf_putc(&b, ' ');
    ss_buf_append(&b, all + at, len);
    char err[SS_ERRSZ] = "";
    g_stop = 0;
    int64_t t0 = ss_now_ns();
    int rc = ss_engine_exec(e, b.data, b.len, name, NULL, err, sizeof err);
    if (rc == SS_ERR_CANCELED && !name)
        fputc('\n', stderr); /* after the terminal's "^C" */
    if (rc)
        fprintf(stderr, "ERROR: %s\n", err);
    if (timing)
        printf("Time: %.3f ms\n", (double)(ss_now_ns() - t0) / 1e6);
    fflush(stdout);
    ss_buf_free(&b);
    return rc;
}

static int run_text(ss_engine_t *e, const char *text, size_t n, const char *name)
{
    int failed = 0;
    size_t at = 0;
    while (at < n && !ss_sql_blank(text + at, n - at)) {
        size_t len = ss_sql_stmt_end(text + at, n - at);
        if (len == 0)
            len = n - at; /* last statement without ';' */
        if (!ss_sql_blank(text + at, len))
            failed |= run_one(e, text, at, len, name, 0) != SS_OK;
        at += len;
    }
    return failed;
}

/* ---- completion ---- */

static ss_engine_t *g_engine;
static const char **g_names;

static char *complete_next(const char *text, int state)
{
    static int idx;
    static size_t tlen;
    if (state == 0) {
        free(g_names);
        g_names = ss_engine_names(g_engine);
        idx = 0;
        tlen = strlen(text);
    }
    while (g_names && g_names[idx]) {
        const char *n = g_names[idx++];
        if (strncasecmp(n, text, tlen) != 0)
            continue;
        char *m = strdup(n);
        /* keywords follow the case the user started typing in */
        if (m && tlen && islower((unsigned char)text[0])) {
            int all_upper = 1;
            for (const char *p = n; *p; p++)
                all_upper &= !islower((unsigned char)*p);
            if (all_upper)
                for (char *p = m; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
        }
        return m;
    }
    return NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    return rl_completion_matches(text, complete_next);
}

/* ---- interactive loop ---- */

static void help(void)
{
    printf("Statements end with ';' and may span lines. Examples:\n"
           "  CREATE STREAM papers (id INT KEY, title TEXT, abstract TEXT) WITH (topic = 'papers');\n"
           "  CREATE CONTINUOUS VIEW v AS SELECT id, title FROM papers WHERE SEM_FILTER('is {abstract} about ML?');\n"
           "  INSERT INTO papers VALUES (1, 'A title', 'An abstract');\n"
           "  SELECT * FROM v;   SHOW VIEWS;   EXPLAIN VIEW v;   SUBSCRIBE v;   DROP VIEW v;\n"
           "Commands:\n"
           "  \\help      this text\n"
           "  \\timing    toggle printing each statement's time\n"
           "  \\q         quit (also Ctrl-D)\n"
           "Ctrl-C stops a running SUBSCRIBE or catch-up. Tab completes keywords and names.\n");
}

static char *history_path(void)
{
    const char *home = getenv("HOME");
    return home && *home ? ss_sprintf("%s/.semstream_history", home) : NULL;
}

static int interactive(ss_engine_t *e)
{
    char *hist = history_path();
    using_history();
    if (hist)
        read_history(hist);
    rl_readline_name = "semstream";
    rl_attempted_completion_function = complete;
    g_engine = e;
    printf("semstream %s shell — statements end with ';', \\help for help, \\q to quit.\n", SS_VERSION);
    ss_buf_t buf = SS_BUF_INIT;
    int timing = 0;
    for (;;) {
        g_stop = 0;
        char *line = readline(buf.len ? "      -> " : "semstream> ");
        if (!line) {
            if (g_stop) { /* Ctrl-C: drop the partial statement */
                ss_buf_reset(&buf);
                putchar('\n');
                continue;
            }
            break;
        }
        if (!buf.len) {
            const char *p = line;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '\\') {
                if (!strncmp(p, "\\q", 2)) {
                    free(line);
                    break;
                }
                if (!strncmp(p, "\\timing", 7)) {
                    timing = !timing;
                    printf("Timing is %s.\n", timing ? "on" : "off");
                } else if (!strncmp(p, "\\h", 2) || !strncmp(p, "\\?", 2)) {
                    help();
                } else {
                    printf("unknown command %s (\\help lists them)\n", p);
                }
                free(line);
                continue;
            }
        }
        ss_buf_puts(&buf, line);
        ss_buf_putc(&buf, '\n');
        free(line);
        size_t len;
        while (buf.len && (len = ss_sql_stmt_end(buf.data, buf.len)) > 0) {
            char *stmt = ss_strndup(buf.data, len);
            if (!ss_sql_blank(stmt, len)) {
                add_history(stmt);
                run_one(e, stmt, 0, len, NULL, timing);
            }
            free(stmt);
            size_t rest = buf.len - len;
            memmove(buf.data, buf.data + len, rest);
            buf.len = rest;
            buf.data[rest] = 0;
            if (ss_sql_blank(buf.data, buf.len))
                ss_buf_reset(&buf);
        }
    }
    if (hist) {
        write_history(hist);
        history_truncate_file(hist, 1000);
    }
    free(hist);
    free(g_names);
    g_names = NULL;
    ss_buf_free(&buf);
    return 0;
}

/* ---- entry point ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream shell [FILE.sql] [options]\n"
               "Interactive when input is a terminal; otherwise runs the statements of FILE or stdin,\n"
               "reporting each failing statement and going on (exit status 1 if any failed).\n\n");
    ss_cli_engine_help(f);
}

int ss_cmd_shell(int argc, char **argv)
{
    static const struct option own[] = {{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option lo[16];
    ss_cli_longopts(own, lo, (int)SS_ARRAY_LEN(lo));
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.catch_up = 1;
    int c;
    char err[SS_ERRSZ] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int erc = ss_cli_engine_opt(&o, c, optarg, err, sizeof err);
        if (erc == SS_OK)
            continue;
        if (erc != SS_ERR_NOTFOUND) {
            fprintf(stderr, "semstream shell: %s\n", err);
            return 2;
        }
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    if (optind < argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    char *text = NULL;
    size_t len = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "semstream shell: %s: %s\n", file, strerror(errno));
            return 1;
        }
        text = ss_cli_read_stream(f, &len);
        fclose(f);
    } else if (!isatty(STDIN_FILENO)) {
        text = ss_cli_read_stream(stdin, &len);
        file = "<stdin>";
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &g_stop;
    o.live = stdout;
    ss_engine_t *e = NULL;
    if (ss_engine_open(&o, &e, err, sizeof err)) {
        fprintf(stderr, "semstream shell: %s\n", err);
        free(text);
        return 1;
    }
    int rc = text ? run_text(e, text, len, file) : interactive(e);
    ss_engine_close(e);
    free(text);
    return rc ? 1 : 0;
}
