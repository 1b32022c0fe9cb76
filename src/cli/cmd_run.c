/*
 * cmd_run.c — `semstream run FILE.sql`: runs a SQL script on an engine, prints
 * each statement's result, then keeps the views up to date until SIGINT/SIGTERM
 * (the batch in flight finishes and commits), or, with --until-idle, until every
 * source is caught up. --load STREAM=FILE.jsonl (repeatable) produces a file's
 * lines to a stream's topic as soon as the script has created the stream.
 */
#include "cli.h"
#include "ss_engine.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream run FILE.sql [options]\n"
               "Runs the script, then keeps its views up to date until Ctrl-C (SIGINT) or SIGTERM.\n\n");
    ss_cli_engine_help(f);
    fprintf(f, "  --load STREAM=FILE     produce FILE's JSON lines to STREAM once it exists (repeatable)\n"
               "  --until-idle           exit once every source is caught up and the views are current\n"
               "  --timeout-ms N         with --until-idle: give up (exit 1) N ms after start, whatever it waits for\n"
               "  --print-views          print every view's rows before exiting\n"
               "  --quiet                no progress lines on stderr\n");
}

int ss_cmd_run(int argc, char **argv)
{
    enum { O_LOAD = SS_CLI_OPT_USER, O_IDLE, O_TIMEOUT, O_PRINT, O_QUIET };
    static const struct option own[] = {
        {"load", 1, 0, O_LOAD}, {"until-idle", 0, 0, O_IDLE}, {"timeout-ms", 1, 0, O_TIMEOUT},
        {"print-views", 0, 0, O_PRINT}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option lo[24];
    ss_cli_longopts(own, lo, (int)SS_ARRAY_LEN(lo));
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.progress = 1;
    o.catch_up = 1;
    int until_idle = 0, print = 0, timeout_ms = -1, c;
    char **loads = calloc((size_t)argc + 1, sizeof *loads);
    int nloads = 0;
    char err[SS_ERRSZ] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int erc = ss_cli_engine_opt(&o, c, optarg, err, sizeof err);
        if (erc == SS_OK)
            continue;
        if (erc != SS_ERR_NOTFOUND) {
            fprintf(stderr, "semstream run: %s\n", err);
            free(loads);
            return 2;
        }
        switch (c) {
        case O_LOAD: loads[nloads++] = optarg; break;
        case O_IDLE: until_idle = 1; break;
        case O_TIMEOUT: {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v <= 0 || v > 1000000000L) {
                fprintf(stderr, "semstream run: --timeout-ms expects a positive integer, got '%s'\n", optarg);
                free(loads);
                return 2;
            }
            timeout_ms = (int)v;
            break;
        }
        case O_PRINT: print = 1; break;
        case O_QUIET: o.progress = 0; break;
        case 'h': usage(stdout); free(loads); return 0;
        default: usage(stderr); free(loads); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        free(loads);
        return 2;
    }
    const char *file = argv[optind];
    size_t len = 0;
    char *sql = ss_cli_read_file(file, &len);
    if (!sql) {
        fprintf(stderr, "semstream run: %s: %s\n", file, strerror(errno));
        free(loads);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &g_stop;
    o.live = stdout;
    if (until_idle && timeout_ms > 0)
        o.timeout_ms = timeout_ms; /* the whole run: the script's catch-ups and loads too */

    ss_engine_t *e = NULL;
    int rc = ss_engine_open(&o, &e, err, sizeof err);
    for (int i = 0; !rc && i < nloads; i++) {
        char *eq = strchr(loads[i], '=');
        if (!eq || eq == loads[i] || !eq[1]) {
            fprintf(stderr, "semstream run: --load expects STREAM=FILE.jsonl, got '%s'\n", loads[i]);
            ss_engine_close(e);
            free(sql);
            free(loads);
            return 2;
        }
        *eq = 0;
        rc = ss_engine_add_load(e, loads[i], eq + 1, err, sizeof err);
        *eq = '=';
    }
    if (!rc)
        rc = ss_engine_exec(e, sql, len, file, NULL, err, sizeof err);
    if (!rc)
        rc = ss_engine_do_loads(e, 1, err, sizeof err);
    if (!rc && until_idle)
        rc = ss_engine_run_until_idle(e, timeout_ms, err, sizeof err);
    else if (!rc)
        rc = ss_engine_run(e, err, sizeof err);
    if (!rc && print) {
        ss_buf_t out = SS_BUF_INIT;
        rc = ss_engine_print_views(e, &out, err, sizeof err);
        fputs(ss_buf_cstr(&out), stdout);
        ss_buf_free(&out);
    }
    if (rc)
        fprintf(stderr, "semstream run: %s\n", err);
    ss_engine_close(e);
    free(sql);
    free(loads);
    return rc ? 1 : 0;
}
