/*
 * serve.c — `semstream serve`: keeps the views of a state database up to date
 * (like `semstream run`) and accepts SQL over HTTP (libmicrohttpd):
 *   POST /sql      body = one or more statements; 200 with the rendered results
 *                  (text/plain, as the shell prints them), 400 "ERROR: ..." on failure
 *   GET  /views    SHOW VIEWS
 *   GET  /healthz  "ok"
 * The engine is single-threaded: the HTTP thread and the micro-batch loop take
 * turns under one mutex. Reads catch the views up before answering. A
 * SUBSCRIBE over HTTP must be bounded (SET subscribe_limit / subscribe_timeout_ms).
 */
#include "cli.h"
#include "ss_engine.h"

#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct server {
    ss_engine_t *e;
    pthread_mutex_t mu;
    size_t max_body;
} server_t;

typedef struct request {
    ss_buf_t body;
    int too_big;
} request_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result run_sql(server_t *s, struct MHD_Connection *c, const char *sql, size_t len)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    pthread_mutex_lock(&s->mu);
    int rc = ss_engine_exec(s->e, sql, len, "request", &out, err, sizeof err);
    pthread_mutex_unlock(&s->mu);
    if (rc)
        ss_buf_printf(&out, "ERROR: %s\n", err);
    enum MHD_Result r = reply(c, rc ? 400 : 200, ss_buf_cstr(&out), out.len);
    ss_buf_free(&out);
    return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls)
{
    (void)version;
    server_t *s = cls;
    if (!strcmp(method, "GET")) {
        if (!strcmp(url, "/healthz"))
            return reply(c, 200, "ok\n", 3);
        if (!strcmp(url, "/views"))
            return run_sql(s, c, "SHOW VIEWS;", 11);
        return reply(c, 404, "not found: POST /sql, GET /views, GET /healthz\n", 48);
    }
    if (strcmp(method, "POST") || strcmp(url, "/sql"))
        return reply(c, 404, "not found: POST /sql, GET /views, GET /healthz\n", 48);
    request_t *rq = *con_cls;
    if (!rq) { /* first call: headers only */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*size) { /* a chunk of the body */
        if (rq->body.len + *size > s->max_body)
            rq->too_big = 1;
        else
            ss_buf_append(&rq->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (rq->too_big)
        return reply(c, 413, "ERROR: request body too large\n", 30);
    return run_sql(s, c, ss_buf_cstr(&rq->body), rq->body.len);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    request_t *rq = *con_cls;
    if (rq) {
        ss_buf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream serve [SCRIPT.sql] [options]\n"
               "Runs SCRIPT (if given), keeps the views up to date and answers SQL over HTTP on\n"
               "127.0.0.1:PORT until Ctrl-C (SIGINT) or SIGTERM:\n"
               "  curl --data-binary 'SELECT * FROM v;' http://127.0.0.1:8080/sql\n\n");
    ss_cli_engine_help(f);
    fprintf(f, "  --load STREAM=FILE     produce FILE's JSON lines to STREAM once it exists (repeatable)\n"
               "  --port N               HTTP port on 127.0.0.1 (default 8080)\n");
}

int ss_cmd_serve(int argc, char **argv)
{
    enum { O_LOAD = SS_CLI_OPT_USER, O_PORT };
    static const struct option own[] = {
        {"load", 1, 0, O_LOAD}, {"port", 1, 0, O_PORT}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option lo[24];
    ss_cli_longopts(own, lo, (int)SS_ARRAY_LEN(lo));
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.catch_up = 1;
    o.progress = 1;
    int port = 8080, c, nloads = 0;
    char **loads = calloc((size_t)argc + 1, sizeof *loads);
    char err[SS_ERRSZ] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int erc = ss_cli_engine_opt(&o, c, optarg, err, sizeof err);
        if (erc == SS_OK)
            continue;
        if (erc != SS_ERR_NOTFOUND) {
            fprintf(stderr, "semstream serve: %s\n", err);
            free(loads);
            return 2;
        }
        switch (c) {
        case O_LOAD: loads[nloads++] = optarg; break;
        case O_PORT: port = atoi(optarg); break;
        case 'h': usage(stdout); free(loads); return 0;
        default: usage(stderr); free(loads); return 2;
        }
    }
    if (optind < argc - 1 || port <= 0 || port > 65535) {
        usage(stderr);
        free(loads);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &g_stop;
    server_t s = {NULL, PTHREAD_MUTEX_INITIALIZER, 1 << 20};
    int rc = ss_engine_open(&o, &s.e, err, sizeof err);
    for (int i = 0; !rc && i < nloads; i++) {
        char *eq = strchr(loads[i], '=');
        if (!eq) {
            rc = ss_seterr(err, sizeof err, SS_ERR_INVALID, "--load expects STREAM=FILE.jsonl, got '%s'", loads[i]);
            break;
        }
        *eq = 0;
        rc = ss_engine_add_load(s.e, loads[i], eq + 1, err, sizeof err);
        *eq = '=';
    }
    if (!rc && optind < argc) {
        size_t len = 0;
        char *sql = ss_cli_read_file(argv[optind], &len);
        if (!sql)
            rc = ss_seterr(err, sizeof err, SS_ERR_IO, "%s: %s", argv[optind], strerror(errno));
        else
            rc = ss_engine_exec(s.e, sql, len, argv[optind], NULL, err, sizeof err);
        free(sql);
    }
    if (!rc)
        rc = ss_engine_do_loads(s.e, 1, err, sizeof err);
    struct MHD_Daemon *d = NULL;
    if (!rc) {
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, handler,
                             &s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
        if (!d)
            rc = ss_seterr(err, sizeof err, SS_ERR_HTTP, "cannot listen on port %d", port);
        else
            fprintf(stderr, "semstream serve: SQL over HTTP on http://127.0.0.1:%d/sql (streams on %s)\n", port,
                    ss_engine_transport(s.e));
    }
    while (!rc && !g_stop) {
        int n = 0;
        pthread_mutex_lock(&s.mu);
        int src = ss_engine_step(s.e, &n, err, sizeof err);
        pthread_mutex_unlock(&s.mu);
        if (src)
            ss_log(SS_LOG_ERROR, "serve", "%s", err);
        /* let a waiting request take the engine; idle longer when there was nothing to do */
        struct timespec ts = {0, (n ? 1 : 10) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (d)
        MHD_stop_daemon(d);
    if (rc)
        fprintf(stderr, "semstream serve: %s\n", err);
    ss_engine_close(s.e);
    free(loads);
    return rc ? 1 : 0;
}
