/*
 * serve_http.c — serve's HTTP endpoint (libmicrohttpd, a thread per connection):
 *   POST /sql        statements; 200 with the results as the shell prints them, or as
 *                    JSON with "Accept: application/json" ({"results": [{"tag",
 *                    "columns": [{"name","type"}], "rows": [[...]]}]}); errors are 400
 *                    ("ERROR: request:line:col: ..." or {"error": {...}}), 403 when the
 *                    role may not, 401 without a valid token. A body that is one
 *                    SUBSCRIBE streams: text, server-sent events (Accept:
 *                    text/event-stream) or JSON lines (application/x-ndjson or json)
 *   GET /views       SHOW VIEWS (text or JSON)
 *   GET /metrics     Prometheus text: the engine's (ss_engine_metrics) and the endpoints'
 *   GET /api/dag     every view's operator DAG as JSON (?view=NAME for one)
 *   GET /api/status  JSON: whether a token is needed, the role of the one sent
 *   GET /healthz     "ok" (no token needed; never waits for statements)
 *   GET /, /console/ the web console (console.c)
 * Tokens are compared in constant time; refusals are logged (at most once a second)
 * and counted. Bodies over max_body are refused (413) before they are read when
 * their length is announced, else the connection is closed when they pass it.
 */
#include "cli.h"
#include "serve_int.h"
#include "ss_ast.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct request {
    ss_buf_t body;
    int too_big;
} request_t;

static enum MHD_Result reply_type(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
                                  size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (code == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"semstream\"");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, size_t len)
{
    return reply_type(c, code, "text/plain; charset=utf-8", body, len);
}

static int wants_json(struct MHD_Connection *c)
{
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    return acc && (strstr(acc, "application/json") || strstr(acc, "application/x-ndjson"));
}

/* A JSON or text error with its HTTP status. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, int json, int ecode, const char *msg)
{
    ss_buf_t b = SS_BUF_INIT;
    if (json) {
        ss_buf_puts(&b, "{\"error\":{\"message\":");
        ss_buf_put_json_str(&b, msg, strlen(msg));
        ss_buf_printf(&b, ",\"sqlstate\":\"%s\"}}\n", pg_sqlstate(ecode, msg));
    } else {
        ss_buf_printf(&b, "ERROR: %s\n", msg);
    }
    enum MHD_Result r = reply_type(c, code, json ? "application/json" : "text/plain; charset=utf-8", ss_buf_cstr(&b),
                                   b.len);
    ss_buf_free(&b);
    return r;
}

/* ---- access ---- */

static int token_is(const char *given, size_t n, const char *token)
{
    if (!token)
        return 0;
    size_t m = strlen(token);
    unsigned diff = (unsigned)(n ^ m); /* constant time over the token */
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

static pg_role_t role_of(serve_t *s, struct MHD_Connection *c)
{
    if (!s->auth_required)
        return PG_ROLE_READ_WRITE;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return PG_ROLE_NONE;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    if (token_is(h, n, s->rw_token))
        return PG_ROLE_READ_WRITE;
    if (token_is(h, n, s->ro_token))
        return PG_ROLE_READ_ONLY;
    return PG_ROLE_NONE;
}

static const char *peer_of(struct MHD_Connection *c, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, n, "?");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)n);
    }
    return buf;
}

static enum MHD_Result unauthorized(serve_t *s, struct MHD_Connection *c, const char *method, const char *url)
{
    char peer[64];
    pthread_mutex_lock(&s->mu);
    int64_t now = ss_now_ns(), n = ++s->http_unauthorized;
    int log = now - s->last_auth_log_ns > 1000000000LL;
    if (log)
        s->last_auth_log_ns = now;
    pthread_mutex_unlock(&s->mu);
    if (log)
        ss_log(SS_LOG_WARN, "serve", "refused %s %s from %s: missing or wrong bearer token (%lld refused so far)",
               method, url, peer_of(c, peer, sizeof peer), (long long)n);
    return reply_error(c, 401, wants_json(c), SS_ERR_DENIED,
                       "missing or wrong token: send Authorization: Bearer <token>");
}

/* ---- JSON results ---- */

static const char *type_name(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_INT: return "bigint";
    case SS_COL_REAL: return "double precision";
    case SS_COL_BOOL: return "boolean";
    case SS_COL_NUMERIC: return "numeric";
    case SS_COL_JSON: return "json";
    default: return "text";
    }
}

typedef struct json_rs {
    ss_engine_rs_t rs;
    ss_buf_t *out;
    int nres;                /* results written */
    int ncols;
    ss_coltype_t *types;
    int64_t rows;
    int open;                /* a result object is open */
} json_rs_t;

static void json_cell(ss_buf_t *b, ss_coltype_t t, const char *v)
{
    if (!v) {
        ss_buf_puts(b, "null");
        return;
    }
    char *end;
    switch (t) {
    case SS_COL_INT:
    case SS_COL_NUMERIC:
    case SS_COL_REAL: {
        double d = strtod(v, &end);
        if (*v && !*end && isfinite(d) && !strpbrk(v, "xXnN")) {
            ss_buf_puts(b, v); /* the exact digits */
            return;
        }
        break;
    }
    case SS_COL_BOOL:
        ss_buf_puts(b, !strcmp(v, "t") ? "true" : !strcmp(v, "f") ? "false" : "null");
        return;
    case SS_COL_JSON: ss_buf_puts(b, v); return;
    default: break;
    }
    ss_buf_put_json_str(b, v, strlen(v));
}

static int json_columns(void *ctx, int n, const char *const *names, const ss_coltype_t *types)
{
    json_rs_t *j = ctx;
    free(j->types);
    j->types = calloc((size_t)n + 1, sizeof *j->types);
    if (!j->types)
        return SS_ERR_NOMEM;
    memcpy(j->types, types, (size_t)n * sizeof *types);
    j->ncols = n;
    j->rows = 0;
    ss_buf_puts(j->out, j->nres++ ? ",{\"columns\":[" : "{\"columns\":[");
    for (int i = 0; i < n; i++) {
        ss_buf_puts(j->out, i ? ",{\"name\":" : "{\"name\":");
        ss_buf_put_json_str(j->out, names[i], strlen(names[i]));
        ss_buf_printf(j->out, ",\"type\":\"%s\"}", type_name(types[i]));
    }
    ss_buf_puts(j->out, "],\"rows\":[");
    j->open = 1;
    return SS_OK;
}

static int json_row(void *ctx, int n, const char *const *cells)
{
    json_rs_t *j = ctx;
    ss_buf_puts(j->out, j->rows++ ? ",[" : "[");
    for (int i = 0; i < n && i < j->ncols; i++) {
        if (i)
            ss_buf_putc(j->out, ',');
        json_cell(j->out, j->types[i], cells[i]);
    }
    ss_buf_putc(j->out, ']');
    return j->out->data ? SS_OK : SS_ERR_NOMEM;
}

static int json_done(void *ctx, const char *tag)
{
    json_rs_t *j = ctx;
    if (j->open)
        ss_buf_puts(j->out, "],\"tag\":");
    else
        ss_buf_puts(j->out, j->nres++ ? ",{\"tag\":" : "{\"tag\":");
    ss_buf_put_json_str(j->out, tag, strlen(tag));
    ss_buf_putc(j->out, '}');
    j->open = 0;
    return SS_OK;
}

/* ---- SUBSCRIBE as a stream ---- */

typedef struct stream {
    ss_engine_sub_t *sub;
    int mode;                /* 0 text, 1 server-sent events, 2 JSON lines */
    int64_t limit, seen;     /* rows to send (0 = no limit) */
    int64_t deadline_ns;     /* 0 = none */
    volatile sig_atomic_t *stop;
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

/* "+1\t{row}" lines -> {"mz_diff":1,"row":{row}} lines */
static void ndjson_frame(const ss_buf_t *in, ss_buf_t *out)
{
    const char *p = ss_buf_cstr(in), *end = p + in->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *tab = memchr(p, '\t', n);
        if (tab) {
            ss_buf_printf(out, "{\"mz_diff\":%lld,\"row\":", strtoll(p, NULL, 10));
            ss_buf_append(out, tab + 1, (size_t)(p + n - tab - 1));
            ss_buf_puts(out, "}\n");
        }
        p += n + (nl != NULL);
    }
}

/* MHD asks for the next bytes of the response; waits for changes (a thread per connection). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *st = cls;
    while (st->at >= st->pending.len) {
        ss_buf_reset(&st->pending);
        st->at = 0;
        if (st->done || *st->stop || (st->limit > 0 && st->seen >= st->limit) ||
            (st->deadline_ns && ss_now_ns() >= st->deadline_ns))
            return MHD_CONTENT_READER_END_OF_STREAM;
        ss_buf_t got = SS_BUF_INIT;
        int64_t n = 0;
        char err[SS_ERRSZ];
        int rc = ss_engine_sub_next(st->sub, 1000, &got, &n, err, sizeof err);
        if (rc == SS_OK) {
            st->seen += n;
            if (st->mode == 1)
                sse_frame(&got, &st->pending);
            else if (st->mode == 2)
                ndjson_frame(&got, &st->pending);
            else
                ss_buf_append(&st->pending, got.data, got.len);
        } else if (rc != SS_ERR_TIMEOUT) {
            if (st->mode == 2) {
                ss_buf_puts(&st->pending, "{\"error\":");
                ss_buf_put_json_str(&st->pending, err, strlen(err));
                ss_buf_puts(&st->pending, "}\n");
            } else {
                ss_buf_printf(&st->pending, "%sERROR: %s\n%s", st->mode == 1 ? "event: error\ndata: " : "", err,
                              st->mode == 1 ? "\n" : "");
            }
            st->done = 1;
        } else if (st->mode == 1) {
            ss_buf_puts(&st->pending, ": keep-alive\n\n"); /* lets a gone client be noticed */
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

static enum MHD_Result subscribe(serve_t *s, struct MHD_Connection *c, const ss_ast_stmt_t *q)
{
    stream_t *st = calloc(1, sizeof *st);
    char err[SS_ERRSZ] = "";
    int64_t timeout = 0;
    int snapshot = 1;
    int rc = st ? SS_OK : SS_ERR_NOMEM;
    int positioned = 0;
    if (!rc && (rc = ss_engine_subscribe_opts(q, 0, 0, &st->limit, &timeout, &snapshot, err, sizeof err)))
        positioned = 1; /* the message says where */
    if (!rc)
        rc = ss_engine_sub_open(s->e, q->name, snapshot, &st->sub, err, sizeof err);
    if (rc) {
        free(st);
        ss_buf_t out = SS_BUF_INIT;
        if (positioned)
            ss_buf_printf(&out, "request:%s", err);
        else
            ss_buf_printf(&out, "request:%d:%d: %s", q->name_span.line, q->name_span.col,
                          rc == SS_ERR_NOMEM ? "out of memory" : err);
        enum MHD_Result r = reply_error(c, rc == SS_ERR_NOTFOUND ? 404 : 400, wants_json(c), rc, ss_buf_cstr(&out));
        ss_buf_free(&out);
        return r;
    }
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    st->mode = acc && strstr(acc, "text/event-stream") ? 1 : wants_json(c) ? 2 : 0;
    st->stop = s->stop;
    st->deadline_ns = timeout > 0 ? ss_now_ns() + timeout * 1000000 : 0;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", st->mode == 1 ? "text/event-stream" : st->mode == 2
                                                ? "application/x-ndjson" : "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result res = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return res;
}

/* ---- SQL ---- */

static enum MHD_Result run_sql(serve_t *s, struct MHD_Connection *c, pg_role_t role, const char *sql, size_t len)
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
    int json = wants_json(c);
    ss_buf_t out = SS_BUF_INIT;
    json_rs_t j;
    memset(&j, 0, sizeof j);
    j.rs = (ss_engine_rs_t){&j, json_columns, json_row, json_done};
    j.out = &out;
    ss_exec_opts_t xo;
    memset(&xo, 0, sizeof xo);
    xo.rs = json ? &j.rs : NULL;
    xo.read_only = role != PG_ROLE_READ_WRITE;
    xo.client = 1;
    xo.timeout_ms = s->statement_timeout_ms;
    if (json)
        ss_buf_puts(&out, "{\"results\":[");
    int rc = ss_engine_exec_ex(s->e, sql, len, "request", &xo, &out, err, sizeof err);
    unsigned code = rc == SS_ERR_DENIED ? 403 : rc ? 400 : 200;
    if (rc == SS_ERR_DENIED) {
        char peer[64];
        pthread_mutex_lock(&s->mu);
        s->http_denied++;
        pthread_mutex_unlock(&s->mu);
        ss_log(SS_LOG_WARN, "serve", "refused for the read-only role from %s: %.80s", peer_of(c, peer, sizeof peer),
               sql);
    }
    if (json) {
        if (j.open)
            ss_buf_puts(&out, "]}");
        ss_buf_putc(&out, ']');
        if (rc) {
            int line = 0, col = 0;
            sscanf(err, "request:%d:%d:", &line, &col);
            ss_buf_puts(&out, ",\"error\":{\"message\":");
            ss_buf_put_json_str(&out, err, strlen(err));
            ss_buf_printf(&out, ",\"sqlstate\":\"%s\",\"line\":%d,\"col\":%d}", pg_sqlstate(rc, err), line, col);
        }
        ss_buf_puts(&out, "}\n");
    } else if (rc) {
        ss_buf_printf(&out, "ERROR: %s\n", err);
    }
    free(j.types);
    enum MHD_Result r = reply_type(c, code, json ? "application/json" : "text/plain; charset=utf-8",
                                   ss_buf_cstr(&out), out.len);
    ss_buf_free(&out);
    return r;
}

/* ---- metrics and the console's API ---- */

static enum MHD_Result metrics(serve_t *s, struct MHD_Connection *c)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_engine_metrics(s->e, &b);
    pthread_mutex_lock(&s->mu);
    ss_buf_printf(&b, "# HELP semstream_http_requests_total HTTP requests served.\n"
                      "# TYPE semstream_http_requests_total counter\nsemstream_http_requests_total %lld\n"
                      "# HELP semstream_http_unauthorized_total HTTP requests refused for a missing or wrong token.\n"
                      "# TYPE semstream_http_unauthorized_total counter\nsemstream_http_unauthorized_total %lld\n"
                      "# HELP semstream_http_denied_total HTTP statements refused for the read-only role.\n"
                      "# TYPE semstream_http_denied_total counter\nsemstream_http_denied_total %lld\n",
                  (long long)s->http_requests, (long long)s->http_unauthorized, (long long)s->http_denied);
    pthread_mutex_unlock(&s->mu);
    if (s->pg) {
        pg_server_stats_t ps;
        pg_server_get_stats(s->pg, &ps);
        ss_buf_printf(&b, "# HELP semstream_pg_connections PostgreSQL sessions open now.\n"
                          "# TYPE semstream_pg_connections gauge\nsemstream_pg_connections %d\n"
                          "# HELP semstream_pg_connections_total PostgreSQL connections accepted or refused.\n"
                          "# TYPE semstream_pg_connections_total counter\nsemstream_pg_connections_total %lld\n"
                          "# HELP semstream_pg_refused_total PostgreSQL connections refused by the limits.\n"
                          "# TYPE semstream_pg_refused_total counter\nsemstream_pg_refused_total %lld\n"
                          "# HELP semstream_pg_auth_failures_total Failed PostgreSQL authentications.\n"
                          "# TYPE semstream_pg_auth_failures_total counter\nsemstream_pg_auth_failures_total %lld\n"
                          "# HELP semstream_pg_queries_total PostgreSQL queries and executes.\n"
                          "# TYPE semstream_pg_queries_total counter\nsemstream_pg_queries_total %lld\n"
                          "# HELP semstream_pg_timeouts_total Statements and sessions ended by a time limit.\n"
                          "# TYPE semstream_pg_timeouts_total counter\nsemstream_pg_timeouts_total %lld\n"
                          "# HELP semstream_pg_canceled_total Cancel requests that reached a session.\n"
                          "# TYPE semstream_pg_canceled_total counter\nsemstream_pg_canceled_total %lld\n",
                      ps.open, (long long)ps.connections, (long long)ps.refused, (long long)ps.auth_failures,
                      (long long)ps.queries, (long long)ps.timeouts, (long long)ps.canceled);
    }
    enum MHD_Result r = reply_type(c, 200, "text/plain; version=0.0.4; charset=utf-8", ss_buf_cstr(&b), b.len);
    ss_buf_free(&b);
    return r;
}

static enum MHD_Result dag(serve_t *s, struct MHD_Connection *c)
{
    const char *view = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "view");
    ss_buf_t b = SS_BUF_INIT;
    char err[SS_ERRSZ];
    int rc = ss_engine_dag_json(s->e, view && *view ? view : NULL, &b, err, sizeof err);
    enum MHD_Result r = rc ? reply_error(c, rc == SS_ERR_NOTFOUND ? 404 : 503, 1, rc, err)
                           : reply_type(c, 200, "application/json", ss_buf_cstr(&b), b.len);
    ss_buf_free(&b);
    return r;
}

static enum MHD_Result status(serve_t *s, struct MHD_Connection *c, pg_role_t role)
{
    if (role == PG_ROLE_NONE) { /* without a token: only that one is needed */
        static const char who[] = "{\"auth_required\":true,\"role\":\"none\"}\n";
        return reply_type(c, 200, "application/json", who, sizeof who - 1);
    }
    ss_engine_stats_t st;
    ss_engine_get_stats(s->e, &st);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_printf(&b, "{\"version\":\"%s\",\"auth_required\":%s,\"role\":\"%s\",\"transport\":", SS_VERSION,
                  s->auth_required ? "true" : "false",
                  role == PG_ROLE_READ_WRITE ? "read-write" : role == PG_ROLE_READ_ONLY ? "read-only" : "none");
    const char *tr = ss_engine_transport(s->e);
    ss_buf_put_json_str(&b, tr, strlen(tr));
    ss_buf_printf(&b, ",\"llm_calls\":%lld,\"cache_hits\":%lld,\"messages\":%lld,\"batches\":%lld,\"lag\":%lld,"
                      "\"in_flight\":%lld,\"wall_ms\":%lld}\n",
                  (long long)st.llm_calls, (long long)st.cache_hits, (long long)st.messages, (long long)st.batches,
                  (long long)st.lag, (long long)st.in_flight, (long long)ss_wall_ms());
    enum MHD_Result r = reply_type(c, 200, "application/json", ss_buf_cstr(&b), b.len);
    ss_buf_free(&b);
    return r;
}

static enum MHD_Result asset(struct MHD_Connection *c, const char *url)
{
    const ss_asset_t *a = ss_console_asset(!strcmp(url, "/") || !strcmp(url, "/console") ? "/console/index.html"
                                                                                          : url);
    if (!a)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", a->mime);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'; img-src 'self' data:");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static const char NOT_FOUND[] = "not found: POST /sql, GET /views, /metrics, /healthz, /api/dag, /api/status, /\n";

static enum MHD_Result get(serve_t *s, struct MHD_Connection *c, const char *url)
{
    if (!strcmp(url, "/healthz"))
        return reply(c, 200, "ok\n", 3);
    if (!strcmp(url, "/") || !strncmp(url, "/console", 8)) {
        if (ss_console_asset(!strcmp(url, "/") || !strcmp(url, "/console") ? "/console/index.html" : url))
            return asset(c, url);
        return reply(c, 404, NOT_FOUND, sizeof NOT_FOUND - 1);
    }
    pg_role_t role = role_of(s, c);
    if (!strcmp(url, "/api/status"))
        return status(s, c, role); /* says whether a token is needed; tells nothing else without one */
    if (role == PG_ROLE_NONE)
        return unauthorized(s, c, "GET", url);
    if (!strcmp(url, "/views"))
        return run_sql(s, c, role, "SHOW VIEWS;", 11);
    if (!strcmp(url, "/metrics"))
        return metrics(s, c);
    if (!strcmp(url, "/api/dag"))
        return dag(s, c);
    return reply(c, 404, NOT_FOUND, sizeof NOT_FOUND - 1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls)
{
    (void)version;
    serve_t *s = cls;
    request_t *rq = *con_cls;
    if (!rq) { /* first call: headers only */
        pthread_mutex_lock(&s->mu);
        s->http_requests++;
        pthread_mutex_unlock(&s->mu);
        if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
            return get(s, c, url);
        if (strcmp(method, "POST") || strcmp(url, "/sql"))
            return reply(c, 404, NOT_FOUND, sizeof NOT_FOUND - 1);
        if (role_of(s, c) == PG_ROLE_NONE) /* refused before the body is read */
            return unauthorized(s, c, method, url);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            char m[128];
            snprintf(m, sizeof m, "request body too large (%s bytes; at most %zu)", cl, s->max_body);
            return reply_error(c, 413, wants_json(c), SS_ERR_INVALID, m);
        }
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*size) { /* a chunk of the body */
        if (rq->body.len + *size > s->max_body)
            return MHD_NO; /* a body past the limit without a length announced: the connection is closed */
        ss_buf_append(&rq->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    return run_sql(s, c, role_of(s, c), ss_buf_cstr(&rq->body), rq->body.len);
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

int serve_http_start(serve_t *s, const char *addr, int port, int idle_timeout_s, int max_connections,
                     int max_per_client, struct MHD_Daemon **out, int *bound, char *err, size_t errsz)
{
    *out = NULL;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *host = addr ? addr : "127.0.0.1";
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "--listen %s: %s", host, gai_strerror(gai));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handler, s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(max_connections > 0 ? max_connections : 256), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(max_per_client > 0 ? max_per_client : 64), MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20),
        MHD_OPTION_SOCK_ADDR, res->ai_addr, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!d)
        return ss_seterr(err, errsz, SS_ERR_HTTP, "cannot listen on %s port %d", host, port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = di ? di->port : port;
    *out = d;
    return SS_OK;
}
