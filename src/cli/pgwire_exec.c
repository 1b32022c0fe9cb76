/*
 * pgwire_exec.c — what a PostgreSQL session does with one statement
 * (pgwire_int.h, pg_exec_one): semstream SQL goes to the engine with the
 * session's role, time limit and cancel flag, its results to a sink (the wire,
 * or rows kept for a portal or cursor); the session's own statements are done
 * here: BEGIN/COMMIT/ROLLBACK, SET/RESET/SHOW, DISCARD, DEALLOCATE; catalog
 * queries go to pgwire_catalog.c; and the streaming ones, as Materialize has them:
 *   SUBSCRIBE v                    rows (mz_timestamp, mz_diff, columns...) as
 *                                  they commit, until WITH (limit, timeout_ms)
 *                                  or a cancel request
 *   COPY (SUBSCRIBE v) TO STDOUT   the same as COPY text (or csv) data
 *   COPY (SELECT ...) TO STDOUT    a query's rows as COPY data
 *   DECLARE c CURSOR FOR SUBSCRIBE v / SELECT ...; FETCH [n|ALL] c
 *                                  [WITH (timeout = '1s')]; CLOSE c
 */
#include "pgwire_int.h"
#include "ss_ast.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- kept rows ---- */

void pg_result_clear(pg_result_t *r)
{
    for (int i = 0; r->cols && i < r->ncols; i++)
        free(r->cols[i].name);
    free(r->cols);
    for (int64_t i = 0; r->cells && i < r->nrows * r->ncols; i++)
        free(r->cells[i]);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

int pg_result_set_cols(pg_result_t *r, int n, const char *const *names, const ss_coltype_t *types)
{
    for (int i = 0; r->cols && i < r->ncols; i++)
        free(r->cols[i].name);
    free(r->cols);
    r->cols = calloc((size_t)n + 1, sizeof *r->cols);
    if (!r->cols)
        return SS_ERR_NOMEM;
    r->ncols = n;
    r->has_cols = 1;
    for (int i = 0; i < n; i++) {
        r->cols[i].name = ss_strdup(names[i] ? names[i] : "?column?");
        r->cols[i].t = types ? types[i] : SS_COL_TEXT;
        r->cols[i].oid = pg_type_oid(r->cols[i].t);
        r->cols[i].typmod = -1;
        if (!r->cols[i].name)
            return SS_ERR_NOMEM;
    }
    return SS_OK;
}

int pg_result_add(pg_result_t *r, int n, const char *const *cells)
{
    if (n != r->ncols)
        return SS_ERR_INTERNAL;
    if ((r->nrows + 1) * r->ncols > r->cap) {
        int64_t cap = (r->nrows + 1) * r->ncols * 2 + 16;
        char **c = realloc(r->cells, (size_t)cap * sizeof *c);
        if (!c)
            return SS_ERR_NOMEM;
        r->cells = c;
        r->cap = cap;
    }
    char **row = r->cells + r->nrows * r->ncols;
    for (int i = 0; i < n; i++) {
        row[i] = cells[i] ? ss_strdup(cells[i]) : NULL;
        if (cells[i] && !row[i]) {
            for (int k = 0; k < i; k++)
                free(row[k]);
            return SS_ERR_NOMEM;
        }
    }
    r->nrows++;
    return SS_OK;
}

/* ---- sinks ---- */

static int wire_columns(void *ctx, int n, const char *const *names, const ss_coltype_t *types)
{
    pg_wire_sink_t *w = ctx;
    w->rows = 0;
    if (pg_result_set_cols(&w->cols, n, names, types))
        return SS_ERR_NOMEM;
    if (w->send_desc)
        pg_send_rowdesc(w->s, w->cols.cols, n, w->fmts, w->nfmts);
    return SS_OK;
}

static int wire_row(void *ctx, int n, const char *const *cells)
{
    pg_wire_sink_t *w = ctx;
    w->rows++;
    int rc = pg_send_datarow(w->s, w->cols.cols, SS_MIN(n, w->cols.ncols), cells, w->fmts, w->nfmts);
    if (rc == SS_OK && w->s->cancel)
        rc = SS_ERR_CANCELED;
    return rc;
}

static int wire_done(void *ctx, const char *tag)
{
    pg_wire_sink_t *w = ctx;
    pg_send_complete(w->s, tag);
    return pg_maybe_flush(w->s);
}

void pg_wire_sink_init(pg_wire_sink_t *w, pg_sess_t *s, int send_desc, const int16_t *fmts, int nfmts)
{
    memset(w, 0, sizeof *w);
    w->rs = (ss_engine_rs_t){w, wire_columns, wire_row, wire_done};
    w->s = s;
    w->send_desc = send_desc;
    w->fmts = fmts;
    w->nfmts = nfmts;
}

void pg_wire_sink_free(pg_wire_sink_t *w) { pg_result_clear(&w->cols); }

static int collect_columns(void *ctx, int n, const char *const *names, const ss_coltype_t *types)
{
    pg_collect_sink_t *c = ctx;
    return pg_result_set_cols(c->res, n, names, types);
}

static int collect_row(void *ctx, int n, const char *const *cells)
{
    pg_collect_sink_t *c = ctx;
    return pg_result_add(c->res, n, cells);
}

static int collect_done(void *ctx, const char *tag)
{
    pg_collect_sink_t *c = ctx;
    snprintf(c->res->tag, sizeof c->res->tag, "%s", tag);
    return SS_OK;
}

void pg_collect_sink_init(pg_collect_sink_t *c, pg_result_t *res)
{
    c->rs = (ss_engine_rs_t){c, collect_columns, collect_row, collect_done};
    c->res = res;
}

/* COPY text/csv rows, sent as CopyData (columns -> CopyOutResponse, done -> CopyDone). */
typedef struct copy_sink {
    ss_engine_rs_t rs;
    pg_sess_t *s;
    int csv, header, ncols;
    int64_t rows;
} copy_sink_t;

static void copy_text(ss_buf_t *b, const char *v, int csv)
{
    if (!v) {
        if (!csv)
            ss_buf_puts(b, "\\N");
        return;
    }
    if (csv) {
        int quote = !*v || strpbrk(v, ",\"\n\r") != NULL;
        if (quote)
            ss_buf_putc(b, '"');
        for (; *v; v++) {
            if (*v == '"')
                ss_buf_putc(b, '"');
            ss_buf_putc(b, *v);
        }
        if (quote)
            ss_buf_putc(b, '"');
        return;
    }
    for (; *v; v++) {
        switch (*v) {
        case '\\': ss_buf_puts(b, "\\\\"); break;
        case '\t': ss_buf_puts(b, "\\t"); break;
        case '\n': ss_buf_puts(b, "\\n"); break;
        case '\r': ss_buf_puts(b, "\\r"); break;
        default: ss_buf_putc(b, *v);
        }
    }
}

static int copy_line(copy_sink_t *c, int n, const char *const *cells)
{
    size_t at;
    pg_msg_begin(&c->s->out, 'd', &at);
    for (int i = 0; i < n; i++) {
        if (i)
            ss_buf_putc(&c->s->out, c->csv ? ',' : '\t');
        copy_text(&c->s->out, cells[i], c->csv);
    }
    ss_buf_putc(&c->s->out, '\n');
    pg_msg_end(&c->s->out, at);
    return c->s->out.data ? pg_maybe_flush(c->s) : SS_ERR_NOMEM;
}

static int copy_columns(void *ctx, int n, const char *const *names, const ss_coltype_t *types)
{
    (void)types;
    copy_sink_t *c = ctx;
    c->ncols = n;
    size_t at;
    pg_msg_begin(&c->s->out, 'H', &at);
    ss_buf_putc(&c->s->out, 0);
    pg_put_i16(&c->s->out, (int16_t)n);
    for (int i = 0; i < n; i++)
        pg_put_i16(&c->s->out, 0);
    pg_msg_end(&c->s->out, at);
    int rc = c->header ? copy_line(c, n, names) : SS_OK;
    return rc ? rc : pg_flush(c->s);
}

static int copy_row(void *ctx, int n, const char *const *cells)
{
    copy_sink_t *c = ctx;
    c->rows++;
    int rc = copy_line(c, n, cells);
    return rc ? rc : c->s->cancel ? SS_ERR_CANCELED : SS_OK;
}

static int copy_done(void *ctx, const char *tag)
{
    (void)tag;
    copy_sink_t *c = ctx;
    size_t at;
    pg_msg_begin(&c->s->out, 'c', &at); /* CopyDone */
    pg_msg_end(&c->s->out, at);
    char t[64];
    snprintf(t, sizeof t, "COPY %lld", (long long)c->rows);
    pg_send_complete(c->s, t);
    return pg_flush(c->s);
}

/* ---- errors ---- */

static int fail(pg_errinfo_t *ei, int code, const char *sqlstate, int pos, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(pg_errinfo_t *ei, int code, const char *sqlstate, int pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
    va_end(ap);
    ei->code = code;
    ei->sqlstate = sqlstate;
    ei->pos = pos;
    return code ? code : SS_ERR_INVALID;
}

/* An engine message "line:col: text" -> ei (the byte offset of line:col in sql, and text). */
static int engine_error(const char *sql, int code, const char *err, pg_errinfo_t *ei)
{
    int line = 0, col = 0, used = 0;
    ei->code = code;
    ei->sqlstate = NULL;
    ei->pos = -1;
    if (sscanf(err, "%d:%d: %n", &line, &col, &used) == 2 && used > 0 && line >= 1 && col >= 1) {
        int l = 1, off = 0;
        for (; sql[off] && l < line; off++)
            l += sql[off] == '\n';
        /* col counts characters on that line */
        int c = 1;
        while (sql[off] && sql[off] != '\n' && c < col) {
            off++;
            while (((unsigned char)sql[off] & 0xC0) == 0x80)
                off++;
            c++;
        }
        ei->pos = off;
        snprintf(ei->msg, sizeof ei->msg, "%s", err + used);
    } else {
        snprintf(ei->msg, sizeof ei->msg, "%s", err);
    }
    return code;
}

/* ---- SUBSCRIBE ---- */

/* One subscription line "+1\t{json}" -> cells: mz_timestamp, mz_diff, then the view's columns.
 * Values are taken from the JSON object in column order (ss_row_to_json writes them so). */
static int json_value(const char **pp, const char *end, ss_coltype_t t, char **out)
{
    const char *p = *pp;
    *out = NULL;
    if (p >= end)
        return SS_ERR_INVALID;
    if (*p == '"' && t != SS_COL_JSON) {
        ss_buf_t b = SS_BUF_INIT;
        for (p++; p < end && *p != '"'; p++) {
            if (*p != '\\') {
                ss_buf_putc(&b, *p);
                continue;
            }
            if (++p >= end)
                break;
            switch (*p) {
            case 'n': ss_buf_putc(&b, '\n'); break;
            case 't': ss_buf_putc(&b, '\t'); break;
            case 'r': ss_buf_putc(&b, '\r'); break;
            case 'b': ss_buf_putc(&b, '\b'); break;
            case 'f': ss_buf_putc(&b, '\f'); break;
            case 'u': {
                unsigned cp = 0;
                if (end - p < 5 || sscanf(p + 1, "%4x", &cp) != 1)
                    break;
                p += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                    unsigned lo = 0;
                    if (sscanf(p + 3, "%4x", &lo) == 1 && lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    }
                }
                char u[5];
                int k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (k == 1)
                    u[0] = (char)cp;
                else if (k == 2)
                    u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
                else if (k == 3)
                    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
                    u[2] = (char)(0x80 | (cp & 0x3F));
                else
                    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F));
                ss_buf_append(&b, u, (size_t)k);
                break;
            }
            default: ss_buf_putc(&b, *p);
            }
        }
        *pp = p < end ? p + 1 : end;
        *out = ss_buf_take(&b);
        return SS_OK;
    }
    /* a number, true/false/null, or a JSON value kept as its text */
    int depth = 0, instr = 0;
    const char *st = p;
    for (; p < end; p++) {
        if (instr) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                instr = 0;
            continue;
        }
        if (*p == '"')
            instr = 1;
        else if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && depth > 0)
            depth--;
        else if ((*p == ',' || *p == '}') && depth == 0)
            break;
    }
    *pp = p;
    size_t n = (size_t)(p - st);
    if (n == 4 && !strncmp(st, "null", 4))
        return SS_OK;
    if (t == SS_COL_BOOL || (n == 4 && !strncmp(st, "true", 4)) || (n == 5 && !strncmp(st, "false", 5))) {
        int yes = (n == 4 && !strncmp(st, "true", 4)) || (n == 1 && *st == '1');
        *out = ss_strdup(yes ? "t" : "f");
    } else if (t == SS_COL_REAL) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s", (int)SS_MIN(n, 63), st);
        double d = strtod(tmp, NULL);
        for (int prec = 15; prec <= 17; prec++) { /* PostgreSQL prints the shortest exact text */
            snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
        *out = ss_strdup(tmp);
    } else {
        *out = ss_strndup(st, n);
    }
    return *out ? SS_OK : SS_ERR_NOMEM;
}

static int sub_line_cells(const char *line, size_t len, const pg_cursor_t *cv, const char *ts, char **cells)
{
    const char *end = line + len, *p = line;
    long long diff = strtoll(line, NULL, 10);
    cells[0] = ss_strdup(ts);
    cells[1] = ss_sprintf("%lld", diff);
    p = memchr(line, '\t', len);
    if (!p || !cells[0] || !cells[1])
        return SS_ERR_INVALID;
    p++;
    if (p < end && *p == '{')
        p++;
    for (int c = 0; c < cv->nv; c++) {
        while (p < end && (*p == ',' || *p == ' '))
            p++;
        /* the key */
        char *key = NULL;
        if (json_value(&p, end, SS_COL_TEXT, &key) != SS_OK) {
            free(key);
            return SS_ERR_INVALID;
        }
        free(key);
        while (p < end && (*p == ':' || *p == ' '))
            p++;
        if (json_value(&p, end, cv->vtypes[c], &cells[2 + c]) != SS_OK)
            return SS_ERR_INVALID;
    }
    return SS_OK;
}

/* Adds the rows of a subscription's text to r (cursor columns: mz_timestamp, mz_diff, ...). */
static int sub_rows(const pg_cursor_t *cv, const ss_buf_t *txt, pg_result_t *r)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)ss_wall_ms());
    int n = cv->nv + 2;
    char **cells = calloc((size_t)n, sizeof *cells);
    if (!cells)
        return SS_ERR_NOMEM;
    int rc = SS_OK;
    for (const char *p = ss_buf_cstr(txt), *end = p + txt->len; !rc && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len) {
            memset(cells, 0, (size_t)n * sizeof *cells);
            rc = sub_line_cells(p, len, cv, ts, cells);
            if (!rc)
                rc = pg_result_add(r, n, (const char *const *)cells);
            for (int i = 0; i < n; i++)
                free(cells[i]);
        }
        p += len + 1;
    }
    free(cells);
    return rc;
}

static void cursor_free(pg_cursor_t *c)
{
    if (!c)
        return;
    ss_engine_sub_close(c->sub);
    ss_engine_columns_free(c->nv, c->vnames, c->vtypes);
    pg_result_clear(&c->res);
    free(c->name);
    free(c);
}

void pg_cursor_close_all(pg_sess_t *s)
{
    while (s->cursors) {
        pg_cursor_t *c = s->cursors;
        s->cursors = c->next;
        cursor_free(c);
    }
}

static pg_cursor_t **find_cursor(pg_sess_t *s, const char *name)
{
    pg_cursor_t **pp = &s->cursors;
    while (*pp && strcmp((*pp)->name, name))
        pp = &(*pp)->next;
    return pp;
}

/* Opens a subscription cursor for a SUBSCRIBE statement's text (name not set). */
static int sub_open(pg_sess_t *s, const char *sql, pg_cursor_t **out, int64_t *limit, int64_t *timeout_ms,
                    pg_errinfo_t *ei)
{
    *out = NULL;
    ss_ast_script_t *script = NULL;
    char err[SS_ERRSZ] = "";
    int rc = ss_parse(sql, strlen(sql), NULL, &script, err, sizeof err);
    if (rc)
        return engine_error(sql, rc, err, ei);
    if (script->n != 1 || script->stmts[0]->kind != SS_STMT_SUBSCRIBE) {
        ss_ast_script_free(script);
        return fail(ei, SS_ERR_PARSE, "42601", 0, "expected one SUBSCRIBE statement");
    }
    const ss_ast_stmt_t *q = script->stmts[0];
    int with_snapshot = 1;
    rc = ss_engine_subscribe_opts(q, 0, 0, limit, timeout_ms, &with_snapshot, err, sizeof err);
    if (rc) {
        ss_ast_script_free(script);
        return engine_error(sql, rc, err, ei);
    }
    pg_cursor_t *c = calloc(1, sizeof *c);
    rc = c ? ss_engine_view_columns(s->env->engine, q->name, &c->nv, &c->vnames, &c->vtypes, err, sizeof err)
           : SS_ERR_NOMEM;
    if (!rc)
        rc = ss_engine_sub_open(s->env->engine, q->name, with_snapshot, &c->sub, err, sizeof err);
    if (rc) {
        int at = q->name_span.col > 0 ? 0 : -1;
        for (int l = 1, i = 0; at >= 0 && sql[i] && l < q->name_span.line; i++)
            if (sql[i] == '\n')
                l++, at = i + 1;
        if (at >= 0)
            at += q->name_span.col - 1;
        ss_ast_script_free(script);
        cursor_free(c);
        return fail(ei, rc, rc == SS_ERR_NOTFOUND ? "42P01" : NULL, at, "%s",
                    rc == SS_ERR_NOMEM ? "out of memory" : err);
    }
    ss_ast_script_free(script);
    const char *names[2] = {"mz_timestamp", "mz_diff"};
    ss_coltype_t types[2] = {SS_COL_NUMERIC, SS_COL_INT};
    char **all = calloc((size_t)c->nv + 2, sizeof *all);
    ss_coltype_t *ty = calloc((size_t)c->nv + 2, sizeof *ty);
    if (!all || !ty) {
        free(all);
        free(ty);
        cursor_free(c);
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    }
    for (int i = 0; i < 2; i++)
        all[i] = (char *)names[i], ty[i] = types[i];
    for (int i = 0; i < c->nv; i++)
        all[2 + i] = c->vnames[i], ty[2 + i] = c->vtypes[i];
    rc = pg_result_set_cols(&c->res, c->nv + 2, (const char *const *)all, ty);
    free(all);
    free(ty);
    if (rc) {
        cursor_free(c);
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    }
    *out = c;
    return SS_OK;
}

/* Waits for changes of c's subscription: up to wait_ms (< 0: until some arrive), then takes
 * what else is there at once. SS_OK with rows added to c->res, SS_ERR_TIMEOUT if none came. */
static int sub_pull(pg_sess_t *s, pg_cursor_t *c, int64_t wait_ms, pg_errinfo_t *ei)
{
    int64_t start = ss_now_ns();
    for (;;) {
        if (s->cancel)
            return fail(ei, SS_ERR_CANCELED, "57014", -1, "canceling statement due to user request");
        if (pg_client_gone(s))
            return fail(ei, SS_ERR_IO, "08006", -1, "the client went away");
        if (s->env->stop && *s->env->stop)
            return fail(ei, SS_ERR_CANCELED, "57P01", -1, "terminating: the server is shutting down");
        int64_t left = wait_ms < 0 ? 200 : wait_ms - (ss_now_ns() - start) / 1000000;
        ss_buf_t got = SS_BUF_INIT;
        char err[SS_ERRSZ];
        int rc = ss_engine_sub_next(c->sub, (int)SS_MAX(0, SS_MIN(left, 200)), &got, NULL, err, sizeof err);
        if (rc == SS_OK) {
            rc = sub_rows(c, &got, &c->res);
            ss_buf_free(&got);
            return rc ? fail(ei, rc, NULL, -1, "%s", "out of memory") : SS_OK;
        }
        ss_buf_free(&got);
        if (rc != SS_ERR_TIMEOUT)
            return fail(ei, rc, rc == SS_ERR_NOTFOUND ? "42P01" : NULL, -1, "%s", err);
        if (wait_ms >= 0 && (ss_now_ns() - start) / 1000000 >= wait_ms)
            return SS_ERR_TIMEOUT;
    }
}

/* Sends c's kept rows through rs (from res.at), at most max (< 0: all). */
static int drain(pg_cursor_t *c, const ss_engine_rs_t *rs, int64_t max, int64_t *sent)
{
    pg_result_t *r = &c->res;
    int rc = SS_OK;
    while (!rc && r->at < r->nrows && (max < 0 || *sent < max)) {
        rc = rs->row(rs->ctx, r->ncols, (const char *const *)r->cells + r->at * r->ncols);
        for (int i = 0; i < r->ncols; i++) {
            free(r->cells[r->at * r->ncols + i]);
            r->cells[r->at * r->ncols + i] = NULL;
        }
        r->at++;
        (*sent)++;
    }
    if (r->at == r->nrows) { /* everything sent: start the buffer afresh */
        free(r->cells);
        r->cells = NULL;
        r->nrows = r->at = r->cap = 0;
    }
    return rc;
}

static int cols_to_rs(const pg_result_t *r, const ss_engine_rs_t *rs)
{
    const char **names = calloc((size_t)r->ncols + 1, sizeof *names);
    ss_coltype_t *types = calloc((size_t)r->ncols + 1, sizeof *types);
    int rc = names && types ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; !rc && i < r->ncols; i++)
        names[i] = r->cols[i].name, types[i] = r->cols[i].t;
    if (!rc)
        rc = rs->columns(rs->ctx, r->ncols, names, types);
    free(names);
    free(types);
    return rc;
}

/* SUBSCRIBE streamed through rs: columns, then rows as they commit, until the statement's
 * limit or timeout (or a cancel, or the client leaving). */
static int stream_subscribe(pg_sess_t *s, const char *sql, const ss_engine_rs_t *rs, const char *verb,
                            pg_errinfo_t *ei)
{
    pg_cursor_t *c = NULL;
    int64_t limit = 0, timeout = 0;
    int rc = sub_open(s, sql, &c, &limit, &timeout, ei);
    if (rc)
        return rc;
    rc = cols_to_rs(&c->res, rs);
    if (!rc)
        rc = pg_flush(s);
    int64_t start = ss_now_ns(), sent = 0;
    while (!rc && !(limit > 0 && sent >= limit)) {
        int64_t left = timeout > 0 ? timeout - (ss_now_ns() - start) / 1000000 : -1;
        if (timeout > 0 && left <= 0)
            break;
        rc = sub_pull(s, c, timeout > 0 ? left : 1000, ei);
        if (rc == SS_ERR_TIMEOUT) {
            rc = SS_OK;
            continue;
        }
        if (!rc && (rc = drain(c, rs, limit > 0 ? limit : -1, &sent)) != SS_OK && !ei->msg[0])
            fail(ei, rc, rc == SS_ERR_CANCELED ? "57014" : NULL, -1, "%s",
                 rc == SS_ERR_CANCELED ? "canceling statement due to user request" : "the client went away");
        if (!rc)
            rc = pg_flush(s);
    }
    cursor_free(c);
    if (!rc) {
        char tag[64];
        snprintf(tag, sizeof tag, "%s %lld", verb, (long long)sent);
        rc = rs->done(rs->ctx, tag);
    }
    return rc;
}

/* ---- statements ---- */

static int run_engine(pg_sess_t *s, const char *sql, size_t len, const ss_engine_rs_t *rs, int describe,
                      pg_errinfo_t *ei)
{
    ss_exec_opts_t xo;
    memset(&xo, 0, sizeof xo);
    xo.rs = rs;
    xo.read_only = s->role != PG_ROLE_READ_WRITE;
    xo.client = 1;
    xo.timeout_ms = s->timeout_ms;
    xo.cancel = &s->cancel;
    xo.describe_only = describe;
    char err[SS_ERRSZ] = "";
    int rc = ss_engine_exec_ex(s->env->engine, sql, len, NULL, &xo, NULL, err, sizeof err);
    if (rc == SS_ERR_DENIED)
        ss_log(SS_LOG_WARN, "pgwire", "%s: refused for the %s role: %.80s", s->peer,
               s->role == PG_ROLE_READ_WRITE ? "read-write" : "read-only", sql);
    if (rc == SS_ERR_TIMEOUT && s->env->count)
        s->env->count(s->env->server, "timeout");
    return rc ? engine_error(sql, rc, err, ei) : SS_OK;
}

static int one_row(const ss_engine_rs_t *rs, const char *col, const char *val, const char *tag)
{
    ss_coltype_t t = SS_COL_TEXT;
    int rc = rs->columns(rs->ctx, 1, &col, &t);
    if (!rc)
        rc = rs->row(rs->ctx, 1, &val);
    return rc ? rc : rs->done(rs->ctx, tag);
}

static int do_set(pg_sess_t *s, const pg_cmd_t *c, const ss_engine_rs_t *rs, pg_errinfo_t *ei)
{
    const char *name = c->name;
    if (ss_strcaseeq(name, "client_encoding") && !ss_strcaseeq(c->value, "UTF8") &&
        !ss_strcaseeq(c->value, "UTF-8") && !ss_strcaseeq(c->value, "unicode"))
        return fail(ei, SS_ERR_INVALID, "22023", -1, "only UTF8 is supported as client_encoding (got %s)", c->value);
    if (ss_strcaseeq(name, "statement_timeout")) {
        int64_t ms = pg_interval_ms(c->value);
        if (ms < 0 || ms > 2147483647)
            return fail(ei, SS_ERR_INVALID, "22023", -1, "invalid value for statement_timeout: \"%s\"", c->value);
        int server = s->env->statement_timeout_ms;
        s->timeout_ms = server > 0 && (ms == 0 || ms > server) ? server : (int)ms; /* never past the server's */
    }
    if (ss_strcaseeq(name, "transaction") || ss_strcaseeq(name, "session") || ss_strcaseeq(name, "names") ||
        ss_strcaseeq(name, "role"))
        return rs->done(rs->ctx, "SET");
    pg_settings_set(s, name, c->value);
    static const char *const reported[] = {"application_name", "client_encoding", "datestyle", "timezone",
                                           "intervalstyle", "standard_conforming_strings"};
    for (size_t i = 0; i < SS_ARRAY_LEN(reported); i++)
        if (ss_strcaseeq(name, reported[i]))
            pg_send_param_status(s, name, c->value);
    return rs->done(rs->ctx, "SET");
}

static int do_show(pg_sess_t *s, const pg_cmd_t *c, const ss_engine_rs_t *rs, pg_errinfo_t *ei)
{
    if (ss_strcaseeq(c->name, "all")) {
        const char *names[3] = {"name", "setting", "description"};
        ss_coltype_t t[3] = {SS_COL_TEXT, SS_COL_TEXT, SS_COL_TEXT};
        int rc = rs->columns(rs->ctx, 3, names, t);
        for (int i = 0; !rc && i < s->set.n; i++) {
            const char *row[3] = {s->set.names[i], s->set.values[i], ""};
            if (s->set.names[i][0] != '_') /* internal entries (_pid) */
                rc = rs->row(rs->ctx, 3, row);
        }
        return rc ? rc : rs->done(rs->ctx, "SHOW");
    }
    if (ss_strcaseeq(c->name, "statement_timeout")) {
        char v[32];
        snprintf(v, sizeof v, "%dms", s->timeout_ms);
        return one_row(rs, "statement_timeout", s->timeout_ms ? v : "0", "SHOW");
    }
    const char *v = pg_setting_get(&s->set, c->name);
    if (!v)
        return fail(ei, SS_ERR_NOTFOUND, "42704", -1, "unrecognized configuration parameter \"%s\"", c->name);
    return one_row(rs, c->name, v, "SHOW");
}

static int do_declare(pg_sess_t *s, const pg_cmd_t *c, const char *sql, const ss_engine_rs_t *rs,
                      pg_errinfo_t *ei)
{
    if (*find_cursor(s, c->name))
        return fail(ei, SS_ERR_EXISTS, "42P03", -1, "cursor \"%s\" already exists", c->name);
    char *inner = ss_strndup(sql + c->inner_at, c->inner_len);
    if (!inner)
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    pg_cmd_t ic;
    pg_classify(inner, strlen(inner), &ic);
    pg_cursor_t *cur = NULL;
    int rc;
    if (ic.kind == PG_CMD_SUBSCRIBE) {
        int64_t limit, timeout;
        rc = sub_open(s, inner, &cur, &limit, &timeout, ei);
    } else if (ic.kind == PG_CMD_ENGINE || ic.kind == PG_CMD_CATALOG) {
        cur = calloc(1, sizeof *cur);
        rc = cur ? SS_OK : fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
        pg_collect_sink_t k;
        if (!rc) {
            pg_collect_sink_init(&k, &cur->res);
            rc = ic.kind == PG_CMD_CATALOG
                     ? pg_catalog_query(s->env->engine, &s->set, inner, &k.rs, s->timeout_ms, &s->cancel, ei->msg,
                                        sizeof ei->msg)
                     : run_engine(s, inner, strlen(inner), &k.rs, 0, ei);
            if (rc && ic.kind == PG_CMD_CATALOG)
                ei->code = rc, ei->pos = -1;
        }
        if (!rc && !cur->res.has_cols)
            rc = fail(ei, SS_ERR_INVALID, "42P11", -1, "DECLARE CURSOR needs a query that returns rows");
    } else {
        rc = fail(ei, SS_ERR_UNSUPPORTED, "0A000", (int)c->inner_at, "a cursor reads a SELECT or a SUBSCRIBE");
    }
    if (ei->pos >= 0 && rc && ic.kind != PG_CMD_ERROR)
        ei->pos += (int)c->inner_at;
    free(inner);
    if (rc) {
        cursor_free(cur);
        return rc;
    }
    cur->res.at = 0;
    if (!(cur->name = ss_strdup(c->name))) {
        cursor_free(cur);
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    }
    cur->next = s->cursors;
    s->cursors = cur;
    return rs->done(rs->ctx, "DECLARE CURSOR");
}

static int do_fetch(pg_sess_t *s, const pg_cmd_t *c, const ss_engine_rs_t *rs, pg_errinfo_t *ei)
{
    pg_cursor_t *cur = *find_cursor(s, c->name);
    if (!cur)
        return fail(ei, SS_ERR_NOTFOUND, "34000", -1, "cursor \"%s\" does not exist", c->name);
    int rc = cols_to_rs(&cur->res, rs);
    int64_t sent = 0;
    if (!rc && cur->sub && cur->res.at >= cur->res.nrows && c->count != 0) {
        /* nothing kept: wait for changes (at least one, or until the timeout) */
        rc = sub_pull(s, cur, c->timeout_ms, ei);
        if (rc == SS_ERR_TIMEOUT)
            rc = SS_OK;
    }
    if (!rc && cur->sub) { /* and whatever else has arrived */
        int prc = sub_pull(s, cur, 0, ei);
        rc = prc == SS_ERR_TIMEOUT ? SS_OK : prc;
    }
    if (!rc)
        rc = drain(cur, rs, c->count, &sent);
    if (rc)
        return ei->msg[0] ? rc : fail(ei, rc, NULL, -1, "the client went away");
    char tag[64];
    snprintf(tag, sizeof tag, "FETCH %lld", (long long)sent);
    return rs->done(rs->ctx, tag);
}

static int do_copy(pg_sess_t *s, const pg_cmd_t *c, const char *sql, pg_errinfo_t *ei)
{
    char *inner = ss_strndup(sql + c->inner_at, c->inner_len);
    if (!inner)
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    pg_cmd_t ic;
    pg_classify(inner, strlen(inner), &ic);
    copy_sink_t k = {{NULL, copy_columns, copy_row, copy_done}, s, c->csv, c->header, 0, 0};
    k.rs.ctx = &k;
    int rc;
    if (ic.kind == PG_CMD_SUBSCRIBE)
        rc = stream_subscribe(s, inner, &k.rs, "COPY", ei);
    else if (ic.kind == PG_CMD_ENGINE)
        rc = run_engine(s, inner, strlen(inner), &k.rs, 0, ei);
    else if (ic.kind == PG_CMD_CATALOG) {
        rc = pg_catalog_query(s->env->engine, &s->set, inner, &k.rs, s->timeout_ms, &s->cancel, ei->msg,
                              sizeof ei->msg);
        if (rc)
            ei->code = rc, ei->pos = -1;
    } else
        rc = fail(ei, SS_ERR_UNSUPPORTED, "0A000", 0, "COPY reads a SELECT or a SUBSCRIBE");
    if (rc && ei->pos >= 0)
        ei->pos += (int)c->inner_at;
    free(inner);
    return rc;
}

int pg_exec_one(pg_sess_t *s, const char *sql, size_t len, const ss_engine_rs_t *rs, int extended,
                pg_errinfo_t *ei)
{
    ei->pos = -1;
    ei->msg[0] = 0;
    ei->sqlstate = NULL;
    pg_cmd_t c;
    if (pg_classify(sql, len, &c))
        return fail(ei, SS_ERR_NOMEM, NULL, -1, "out of memory");
    if (c.kind == PG_CMD_EMPTY)
        return PG_EMPTY_STATEMENT;
    if (s->txn == 'E' && c.kind != PG_CMD_COMMIT && c.kind != PG_CMD_ROLLBACK)
        return fail(ei, SS_ERR_INVALID, "25P02", -1,
                    "current transaction is aborted, commands ignored until end of transaction block");
    switch (c.kind) {
    case PG_CMD_ERROR: return fail(ei, SS_ERR_PARSE, "42601", c.err_at, "%s", c.msg);
    case PG_CMD_BEGIN:
        if (s->txn != 'I')
            pg_send_notice(s, "25001", "there is already a transaction in progress");
        s->txn = 'T';
        return rs->done(rs->ctx, "BEGIN");
    case PG_CMD_COMMIT:
    case PG_CMD_ROLLBACK: {
        const char *tag = c.kind == PG_CMD_COMMIT && s->txn != 'E' ? "COMMIT" : "ROLLBACK";
        if (s->txn == 'I')
            pg_send_notice(s, "25P01", "there is no transaction in progress");
        s->txn = 'I';
        pg_cursor_close_all(s); /* cursors end with their transaction */
        return rs->done(rs->ctx, tag);
    }
    case PG_CMD_SET: return do_set(s, &c, rs, ei);
    case PG_CMD_RESET:
        if (ss_strcaseeq(c.name, "all"))
            pg_settings_reset(s, NULL);
        else
            pg_settings_reset(s, c.name);
        if (ss_strcaseeq(c.name, "all") || ss_strcaseeq(c.name, "statement_timeout"))
            s->timeout_ms = s->env->statement_timeout_ms;
        return rs->done(rs->ctx, "RESET");
    case PG_CMD_SHOW: return do_show(s, &c, rs, ei);
    case PG_CMD_DISCARD:
        pg_cursor_close_all(s);
        pg_deallocate(s, "all");
        pg_settings_reset(s, NULL);
        s->timeout_ms = s->env->statement_timeout_ms;
        return rs->done(rs->ctx, "DISCARD ALL");
    case PG_CMD_DEALLOCATE:
        if (pg_deallocate(s, c.name) != SS_OK)
            return fail(ei, SS_ERR_NOTFOUND, "26000", -1, "prepared statement \"%s\" does not exist", c.name);
        return rs->done(rs->ctx, ss_strcaseeq(c.name, "all") ? "DEALLOCATE ALL" : "DEALLOCATE");
    case PG_CMD_IGNORE: {
        char tag[32];
        snprintf(tag, sizeof tag, "%.*s", (int)strcspn(sql + strspn(sql, " \t\r\n"), " \t\r\n;"),
                 sql + strspn(sql, " \t\r\n"));
        for (char *p = tag; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        return rs->done(rs->ctx, tag);
    }
    case PG_CMD_COPY: return do_copy(s, &c, sql, ei);
    case PG_CMD_DECLARE: return do_declare(s, &c, sql, rs, ei);
    case PG_CMD_FETCH: return do_fetch(s, &c, rs, ei);
    case PG_CMD_CLOSE: {
        if (ss_strcaseeq(c.name, "all")) {
            pg_cursor_close_all(s);
            return rs->done(rs->ctx, "CLOSE CURSOR ALL");
        }
        pg_cursor_t **pp = find_cursor(s, c.name);
        if (!*pp)
            return fail(ei, SS_ERR_NOTFOUND, "34000", -1, "cursor \"%s\" does not exist", c.name);
        pg_cursor_t *cur = *pp;
        *pp = cur->next;
        cursor_free(cur);
        return rs->done(rs->ctx, "CLOSE CURSOR");
    }
    case PG_CMD_SUBSCRIBE: return stream_subscribe(s, sql, rs, "SUBSCRIBE", ei);
    case PG_CMD_CATALOG: {
        int rc = pg_catalog_query(s->env->engine, &s->set, sql, rs, s->timeout_ms, &s->cancel, ei->msg,
                                  sizeof ei->msg);
        if (rc) {
            ei->code = rc;
            if (rc == SS_ERR_CANCELED || rc == SS_ERR_TIMEOUT)
                ei->sqlstate = "57014";
        }
        return rc;
    }
    case PG_CMD_EMPTY: return PG_EMPTY_STATEMENT;
    case PG_CMD_ENGINE: break;
    }
    (void)extended;
    return run_engine(s, sql, len, rs, 0, ei);
}

/* ---- describe, direct ---- */

int pg_describe(pg_sess_t *s, const char *sql, pg_result_t *res, pg_errinfo_t *ei)
{
    memset(res, 0, sizeof *res);
    ei->pos = -1;
    ei->msg[0] = 0;
    ei->sqlstate = NULL;
    int np = pg_max_param(sql);
    char **nulls = calloc((size_t)np + 1, sizeof *nulls);
    for (int i = 0; nulls && i < np; i++)
        nulls[i] = "NULL";
    ss_buf_t b = SS_BUF_INIT;
    char err[SS_ERRSZ];
    int rc = nulls ? pg_substitute(sql, np, nulls, &b, NULL, err, sizeof err) : SS_ERR_NOMEM;
    free(nulls);
    if (rc) {
        ss_buf_free(&b);
        return fail(ei, rc, NULL, -1, "%s", rc == SS_ERR_NOMEM ? "out of memory" : err);
    }
    const char *q = ss_buf_cstr(&b);
    pg_cmd_t c;
    pg_classify(q, b.len, &c);
    pg_collect_sink_t k;
    pg_collect_sink_init(&k, res);
    switch (c.kind) {
    case PG_CMD_ENGINE: rc = run_engine(s, q, b.len, &k.rs, 1, ei); break;
    case PG_CMD_CATALOG:
        rc = pg_catalog_query(s->env->engine, &s->set, q, &k.rs, s->timeout_ms, &s->cancel, ei->msg,
                              sizeof ei->msg);
        if (rc)
            ei->code = rc;
        break;
    case PG_CMD_SHOW: rc = do_show(s, &c, &k.rs, ei); break;
    case PG_CMD_FETCH: {
        pg_cursor_t *cur = *find_cursor(s, c.name);
        rc = cur ? cols_to_rs(&cur->res, &k.rs)
                 : fail(ei, SS_ERR_NOTFOUND, "34000", -1, "cursor \"%s\" does not exist", c.name);
        break;
    }
    case PG_CMD_SUBSCRIBE: {
        ss_ast_script_t *script = NULL;
        rc = ss_parse(q, b.len, NULL, &script, err, sizeof err);
        if (rc) {
            engine_error(q, rc, err, ei);
            break;
        }
        int nv = 0;
        char **names = NULL;
        ss_coltype_t *types = NULL;
        rc = ss_engine_view_columns(s->env->engine, script->stmts[0]->name, &nv, &names, &types, err, sizeof err);
        ss_ast_script_free(script);
        if (rc) {
            fail(ei, rc, "42P01", -1, "%s", err);
            break;
        }
        char **all = calloc((size_t)nv + 2, sizeof *all);
        ss_coltype_t *ty = calloc((size_t)nv + 2, sizeof *ty);
        if (all && ty) {
            all[0] = "mz_timestamp", all[1] = "mz_diff", ty[0] = SS_COL_NUMERIC, ty[1] = SS_COL_INT;
            for (int i = 0; i < nv; i++)
                all[2 + i] = names[i], ty[2 + i] = types[i];
            rc = pg_result_set_cols(res, nv + 2, (const char *const *)all, ty);
        } else {
            rc = SS_ERR_NOMEM;
        }
        free(all);
        free(ty);
        ss_engine_columns_free(nv, names, types);
        break;
    }
    case PG_CMD_ERROR: rc = fail(ei, SS_ERR_PARSE, "42601", c.err_at, "%s", c.msg); break;
    default: rc = SS_OK; break; /* no rows: NoData */
    }
    ss_buf_free(&b);
    if (!rc && !res->tag[0] && !res->has_cols)
        res->has_cols = 0;
    return rc;
}

int pg_is_direct(pg_sess_t *s, const char *sql)
{
    (void)s;
    pg_cmd_t c;
    if (pg_classify(sql, strlen(sql), &c))
        return 0;
    return c.kind == PG_CMD_SUBSCRIBE || c.kind == PG_CMD_COPY || c.kind == PG_CMD_FETCH;
}
