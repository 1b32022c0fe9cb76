/*
 * serve.c — `semstream serve`: keeps the views of a state database up to date
 * (like `semstream run`) and accepts SQL over HTTP (libmicrohttpd):
 *   POST /sql      body = one or more statements; 200 with the rendered results
 *                  (text/plain, as the shell prints them), 400 "ERROR: ..." on failure
 *   GET  /views    SHOW VIEWS
 *   GET  /healthz  "ok"
 * Requests are served concurrently, a thread per connection: the views run in
 * the engine's own threads, statements run one at a time inside the engine, and
 * /healthz never waits for either. A body that is one SUBSCRIBE statement streams:
 * the view's rows, then each change as it commits (chunked text/plain, or
 * server-sent events when the client accepts text/event-stream), until the
 * client goes away, its WITH (limit, timeout_ms) is reached, or serve stops; it
 * holds no lock meanwhile, so other requests go on.
 */
#include "cli.h"
#include "ss_ast.h"
#include "ss_engine.h"

#include <errno.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
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

/* ---- SUBSCRIBE as a stream ---- */

typedef struct stream {
    ss_engine_sub_t *sub;
    int sse;                 /* server-sent events: "data: <line>\n" per row, "\n" after each commit */
    int64_t limit, seen;     /* rows to send (0 = no limit) */
    int64_t deadline_ns;     /* 0 = none */
    ss_buf_t pending;        /* rendered, not yet handed to MHD */
    size_t at;
    int done;
} stream_t;

static void sse_frame(const ss_buf_t *in, ss_buf_t *out)
{
    const char *p = ss_buf_cstr(in), *end = p + in->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        ss_buf_puts(out, "data: ");
        ss_buf_append(out, p, n);
        ss_buf_putc(out, '\n');
        p += n + (nl != NULL);
    }
    ss_buf_putc(out, '\n');
}

/* MHD asks for the next bytes of the response; waits for changes (a thread per connection). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *st = cls;
    while (st->at >= st->pending.len) {
        ss_buf_reset(&st->pending);
        st->at = 0;
        if (st->done || g_stop || (st->limit > 0 && st->seen >= st->limit) ||
            (st->deadline_ns && ss_now_ns() >= st->deadline_ns))
            return MHD_CONTENT_READER_END_OF_STREAM;
        ss_buf_t got = SS_BUF_INIT;
        int64_t n = 0;
        char err[SS_ERRSZ];
        int rc = ss_engine_sub_next(st->sub, 1000, &got, &n, err, sizeof err);
        if (rc == SS_OK) {
            st->seen += n;
            if (st->sse)
                sse_frame(&got, &st->pending);
            else
                ss_buf_append(&st->pending, got.data, got.len);
        } else if (rc != SS_ERR_TIMEOUT) {
            ss_buf_printf(&st->pending, "%sERROR: %s\n%s", st->sse ? "event: error\ndata: " : "", err,
                          st->sse ? "\n" : "");
            st->done = 1;
        }
        ss_buf_free(&got);
    }
    size_t n = SS_MIN(max, st->pending.len - st->at);
    memcpy(buf, st->pending.data + st->at, n);
    st->at += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *st = cls;
    ss_engine_sub_close(st->sub);
    ss_buf_free(&st->pending);
    free(st);
}

static int64_t opt_int(const ss_ast_stmt_t *q, const char *name, int64_t dflt)
{
    const ss_ast_option_t *o = q->opts ? ss_ast_option_get(q->opts, name) : NULL;
    if (!o)
        return dflt;
    if (o->value.t == SS_INT)
        return o->value.u.i;
    if (o->value.t == SS_TEXT)
        return strtoll(o->value.u.str.s, NULL, 10);
    return dflt;
}

static enum MHD_Result subscribe(server_t *s, struct MHD_Connection *c, const ss_ast_stmt_t *q)
{
    stream_t *st = calloc(1, sizeof *st);
    char err[SS_ERRSZ] = "";
    int rc = st ? ss_engine_sub_open(s->e, q->name, 1, &st->sub, err, sizeof err) : SS_ERR_NOMEM;
    if (rc) {
        free(st);
        ss_buf_t out = SS_BUF_INIT;
        ss_buf_printf(&out, "ERROR: request:%d:%d: %s\n", q->name_span.line, q->name_span.col,
                      rc == SS_ERR_NOMEM ? "out of memory" : err);
        enum MHD_Result r = reply(c, rc == SS_ERR_NOTFOUND ? 404 : 400, ss_buf_cstr(&out), out.len);
        ss_buf_free(&out);
        return r;
    }
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    st->sse = acc && strstr(acc, "text/event-stream") != NULL;
    st->limit = opt_int(q, "limit", 0);
    int64_t t = opt_int(q, "timeout_ms", opt_int(q, "timeout", 0));
    st->deadline_ns = t > 0 ? ss_now_ns() + t * 1000000 : 0;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", st->sse ? "text/event-stream" : "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result res = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result run_sql(server_t *s, struct MHD_Connection *c, const char *sql, size_t len)
{
    /* one SUBSCRIBE statement streams; everything else runs as a script */
    ss_ast_script_t *script = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_parse(sql, len, "request", &script, err, sizeof err) == SS_OK && script->n == 1 &&
        script->stmts[0]->kind == SS_STMT_SUBSCRIBE) {
        enum MHD_Result r = subscribe(s, c, script->stmts[0]);
        ss_ast_script_free(script);
        return r;
    }
    ss_ast_script_free(script);
    ss_buf_t out = SS_BUF_INIT;
    int rc = ss_engine_exec(s->e, sql, len, "request", &out, err, sizeof err);
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
    server_t s = {NULL, 1 << 20};
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
        /* connection threads never take the terminal's signals: the main thread does */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        struct sockaddr_in addr; /* loopback only, as the start-up line says */
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                             (uint16_t)port, NULL, NULL, handler, &s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!d)
            rc = ss_seterr(err, sizeof err, SS_ERR_HTTP, "cannot listen on port %d", port);
        else
            fprintf(stderr, "semstream serve: SQL over HTTP on http://127.0.0.1:%d/sql (streams on %s)\n", port,
                    ss_engine_transport(s.e));
    }
    if (!rc)
        rc = ss_engine_run(s.e, err, sizeof err); /* until Ctrl-C or SIGTERM; the views run meanwhile */
    if (d)
        MHD_stop_daemon(d);
    if (rc)
        fprintf(stderr, "semstream serve: %s\n", err);
    ss_engine_close(s.e);
    free(loads);
    return rc ? 1 : 0;
}
