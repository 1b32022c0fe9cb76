/*
 * engine_result.c — what the engine gives network clients (serve's HTTP and
 * PostgreSQL endpoints) besides text:
 *   - structured results (ss_engine_rs_t): tables with column types and raw cells,
 *     command tags, EXPLAIN as rows of "QUERY PLAN";
 *   - the guard around a SELECT on the statements' connection. A SELECT is parsed by
 *     our grammar and rendered as SQLite SQL over the view tables (engine_query.c);
 *     the guard makes sure that SQL reads nothing else and calls nothing else: an
 *     authorizer allows reads of view_<v> tables of catalog views only, functions from
 *     a fixed list only, and no other action (PRAGMA, ATTACH, writes); a progress
 *     handler stops it at the script's time limit or when the client cancels; strings
 *     are capped at 256 MiB while it runs;
 *   - the catalog clients see (ss_engine_relations, ss_engine_view_columns);
 *   - SUBSCRIBE's options, checked once for every endpoint (ss_engine_subscribe_opts).
 */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- structured results ---- */

int eng_table_set_types(eng_table_t *t, const ss_coltype_t *types)
{
    ss_coltype_t *ty = calloc((size_t)t->ncols + 1, sizeof *ty);
    if (!ty)
        return SS_ERR_NOMEM;
    for (int c = 0; c < t->ncols; c++) {
        if (types) {
            ty[c] = types[c];
            continue;
        }
        /* inferred from the cells: INT if every value is an integer, REAL if every one is a number */
        int all_int = 1, all_num = 1, any = 0;
        for (int r = 1; r <= t->nrows; r++) {
            const char *v = t->cells[r * t->ncols + c];
            if (!v)
                continue;
            any = 1;
            char *end;
            errno = 0;
            (void)strtoll(v, &end, 10);
            if (!*v || *end || errno)
                all_int = 0;
            (void)strtod(v, &end);
            if (!*v || *end)
                all_num = 0;
        }
        ty[c] = !any ? SS_COL_TEXT : all_int ? SS_COL_INT : all_num ? SS_COL_REAL : SS_COL_TEXT;
    }
    free(t->types);
    t->types = ty;
    return SS_OK;
}

static const char *bool_text(const char *v)
{
    if (!v)
        return NULL;
    if (!strcmp(v, "1") || ss_strcaseeq(v, "true") || !strcmp(v, "t"))
        return "t";
    if (!strcmp(v, "0") || ss_strcaseeq(v, "false") || !strcmp(v, "f"))
        return "f";
    return v;
}

int eng_table_emit(ss_engine_t *e, eng_table_t *t, const char *verb, ss_buf_t *out)
{
    const ss_engine_rs_t *rs = e->xo ? e->xo->rs : NULL;
    if (!rs) {
        eng_table_render(t, out);
        return SS_OK;
    }
    if (!t->types && eng_table_set_types(t, NULL))
        return SS_ERR_NOMEM;
    const char **cells = calloc((size_t)t->ncols + 1, sizeof *cells);
    if (!cells)
        return SS_ERR_NOMEM;
    int rc = rs->columns ? rs->columns(rs->ctx, t->ncols, (const char *const *)t->cells, t->types) : SS_OK;
    for (int r = 1; !rc && r <= t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r * t->ncols + c];
            cells[c] = t->types[c] == SS_COL_BOOL ? bool_text(v) : v;
        }
        if (rs->row)
            rc = rs->row(rs->ctx, t->ncols, cells);
    }
    free(cells);
    if (!rc && rs->done) {
        char tag[64];
        snprintf(tag, sizeof tag, "%s %d", verb, t->nrows);
        rc = rs->done(rs->ctx, tag);
    }
    e->xo_emitted = 1;
    return rc;
}

/* EXPLAIN's text as rows of one TEXT column. */
static int explain_rows(const ss_engine_rs_t *rs, const char *text, size_t len)
{
    const char *name = "QUERY PLAN";
    ss_coltype_t ty = SS_COL_TEXT;
    int rc = rs->columns ? rs->columns(rs->ctx, 1, &name, &ty) : SS_OK;
    for (const char *p = text, *end = text + len; !rc && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = ss_strndup(p, n);
        if (!line)
            return SS_ERR_NOMEM;
        const char *cell = line;
        if (rs->row)
            rc = rs->row(rs->ctx, 1, &cell);
        free(line);
        p += n + (nl != NULL);
    }
    return rc || !rs->done ? rc : rs->done(rs->ctx, "EXPLAIN");
}

int eng_result_finish(ss_engine_t *e, const ss_ast_stmt_t *st, const char *text, size_t len, char *err,
                      size_t errsz)
{
    const ss_engine_rs_t *rs = e->xo ? e->xo->rs : NULL;
    if (!rs || e->xo_emitted)
        return SS_OK;
    int rc;
    if (st->kind == SS_STMT_EXPLAIN) {
        rc = explain_rows(rs, text ? text : "", len);
    } else {
        /* the statement's text ("CREATE VIEW", "INSERT 3", "DROP STREAM") is the tag, after any
         * "NOTICE: ..." lines (IF NOT EXISTS on an existing object, a view left behind) */
        while (text && len > 8 && !strncmp(text, "NOTICE: ", 8)) {
            const char *nl = memchr(text, '\n', len);
            if (!nl)
                break;
            len -= (size_t)(nl + 1 - text);
            text = nl + 1;
        }
        char tag[64];
        size_t n = text ? strcspn(text, "\n(") : 0;
        while (n && text[n - 1] == ' ')
            n--;
        snprintf(tag, sizeof tag, "%.*s", (int)SS_MIN(n, sizeof tag - 8), text ? text : "");
        long long k;
        if (sscanf(tag, "INSERT %lld", &k) == 1)
            snprintf(tag, sizeof tag, "INSERT 0 %lld", k);
        rc = rs->done ? rs->done(rs->ctx, tag) : SS_OK;
    }
    if (rc && err && !*err)
        ss_seterr(err, errsz, rc, "%s", "the client stopped reading results");
    return rc;
}

/* ---- the guard around a SELECT ---- */

/* SQLite functions a SELECT may call: what our grammar's expressions render to (aggregates,
 * string and math functions, LIKE, JSON ->/->>), nothing that reads state, files or settings,
 * or makes blobs of a caller-given size. */
static const char *const ALLOWED_FUNCS[] = {
    "abs", "avg", "ceil", "ceiling", "char_length", "coalesce", "concat", "concat_ws", "count", "exp", "floor",
    "group_concat", "ifnull", "iif", "instr", "json_extract", "length", "like", "glob", "ln", "log", "log10",
    "log2", "lower", "ltrim", "max", "min", "mod", "nullif", "pi", "pow", "power", "replace", "round", "rtrim",
    "sign", "sqrt", "string_agg", "substr", "substring", "sum", "total", "trim", "trunc", "typeof", "upper",
    "->", "->>", "unicode", "hex", NULL};

static int func_allowed(const char *name)
{
    for (int i = 0; name && ALLOWED_FUNCS[i]; i++)
        if (ss_strcaseeq(name, ALLOWED_FUNCS[i]))
            return 1;
    return 0;
}

static int table_allowed(ss_engine_t *e, const char *table)
{
    if (!table)
        return 0;
    if (!strncmp(table, "_ss_", 4)) /* the engine's own CTEs (rows repeated _mult times) */
        return 1;
    return !strncmp(table, "view_", 5) && ss_catalog_view(e->cat, table + 5) != NULL;
}

static int authorize(void *ud, int action, const char *a, const char *b, const char *db, const char *trigger)
{
    (void)db;
    (void)trigger;
    eng_guard_t *g = ud;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        if (table_allowed(g->e, a))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied, "a SELECT reads views only (not \"%s\")", a ? a : "?");
        return SQLITE_DENY;
    case SQLITE_FUNCTION:
        if (func_allowed(b))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied, "function %s() is not available in a SELECT", b ? b : "?");
        return SQLITE_DENY;
    default:
        snprintf(g->denied, sizeof g->denied, "a SELECT only reads views (action %d refused)", action);
        return SQLITE_DENY;
    }
}

static int progress(void *ud)
{
    eng_guard_t *g = ud;
    if (g->cancel && *g->cancel) {
        g->stopped = SS_ERR_CANCELED;
        return 1;
    }
    if (g->deadline_ns && ss_now_ns() > g->deadline_ns) {
        g->stopped = SS_ERR_TIMEOUT;
        return 1;
    }
    return 0;
}

void eng_guard_begin(ss_engine_t *e, eng_guard_t *g)
{
    memset(g, 0, sizeof *g);
    g->e = e;
    const ss_exec_opts_t *xo = e->xo;
    if (xo && xo->timeout_ms > 0)
        g->deadline_ns = ss_now_ns() + (int64_t)xo->timeout_ms * 1000000;
    g->cancel = xo ? xo->cancel : NULL;
    sqlite3 *db = ss_store_db(e->store);
    sqlite3_set_authorizer(db, authorize, g);
    sqlite3_progress_handler(db, 1000, progress, g);
    g->old_len = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 256 << 20);
}

void eng_guard_end(ss_engine_t *e, eng_guard_t *g)
{
    sqlite3 *db = ss_store_db(e->store);
    sqlite3_set_authorizer(db, NULL, NULL);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, g->old_len);
}

int eng_guard_error(const eng_guard_t *g, const char *sqlite_msg, char *err, size_t errsz)
{
    if (g->stopped == SS_ERR_TIMEOUT)
        return ss_seterr(err, errsz, SS_ERR_TIMEOUT, "canceling statement due to statement timeout (%d ms)",
                         g->e->xo ? g->e->xo->timeout_ms : 0);
    if (g->stopped == SS_ERR_CANCELED)
        return ss_seterr(err, errsz, SS_ERR_CANCELED, "canceling statement due to user request");
    if (g->denied[0]) /* a function is unknown here (42883); reading anything but a view is refused */
        return ss_seterr(err, errsz, !strncmp(g->denied, "function", 8) ? SS_ERR_SEMANTIC : SS_ERR_DENIED, "%s",
                         g->denied);
    return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%s", sqlite_msg ? sqlite_msg : "SELECT failed");
}

/* ---- the catalog clients see ---- */

static int copy_schema(ss_engine_rel_t *r, const ss_schema_t *s)
{
    r->ncols = s->n;
    r->cols = calloc((size_t)s->n + 1, sizeof *r->cols);
    r->types = calloc((size_t)s->n + 1, sizeof *r->types);
    r->typmods = calloc((size_t)s->n + 1, sizeof *r->typmods);
    r->is_key = calloc((size_t)s->n + 1, sizeof *r->is_key);
    if (!r->cols || !r->types || !r->typmods || !r->is_key)
        return SS_ERR_NOMEM;
    for (int c = 0; c < s->n; c++) {
        if (!(r->cols[c] = ss_strdup(s->names[c])))
            return SS_ERR_NOMEM;
        r->types[c] = s->types[c];
        r->typmods[c] = s->typmod ? s->typmod[c] : -1;
        r->is_key[c] = s->is_key ? s->is_key[c] : 0;
    }
    return SS_OK;
}

int ss_engine_relations(ss_engine_t *e, ss_engine_rel_t **out, int *n, char *err, size_t errsz)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&e->exec_mu);
    int ns = ss_catalog_nstreams(e->cat), nv = ss_catalog_nviews(e->cat);
    ss_engine_rel_t *r = calloc((size_t)(ns + nv) + 1, sizeof *r);
    int rc = r ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; !rc && i < ns; i++) {
        const ss_cat_stream_t *s = ss_catalog_stream_at(e->cat, i);
        r[i].name = ss_strdup(s->name);
        r[i].sql = ss_strdup(s->sql ? s->sql : "");
        rc = !r[i].name || !r[i].sql ? SS_ERR_NOMEM : copy_schema(&r[i], s->schema);
    }
    for (int i = 0; !rc && i < nv; i++) {
        const ss_cat_view_t *v = ss_catalog_view_at(e->cat, i);
        ss_engine_rel_t *x = &r[ns + i];
        x->is_view = 1;
        x->name = ss_strdup(v->name);
        x->sql = ss_strdup(v->sql ? v->sql : "");
        ss_op_stats_t st;
        int64_t lag;
        char state[SS_ERRSZ + 128];
        eng_view_status(e, v->name, &st, &lag, state, sizeof state);
        if (e->plan_error[0])
            snprintf(state, sizeof state, "not running: %s", e->plan_error);
        x->state = ss_strdup(state);
        int k = eng_node_index(e, SS_PN_VIEW, v->name);
        rc = !x->name || !x->sql || !x->state ? SS_ERR_NOMEM
             : k >= 0                         ? copy_schema(x, e->plan->nodes[k]->schema)
                                              : SS_OK;
    }
    pthread_mutex_unlock(&e->exec_mu);
    if (rc) {
        ss_engine_relations_free(r, ns + nv);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    *out = r;
    *n = ns + nv;
    return SS_OK;
}

void ss_engine_relations_free(ss_engine_rel_t *r, int n)
{
    for (int i = 0; r && i < n; i++) {
        for (int c = 0; r[i].cols && c < r[i].ncols; c++)
            free(r[i].cols[c]);
        free(r[i].cols);
        free(r[i].types);
        free(r[i].typmods);
        free(r[i].is_key);
        free(r[i].name);
        free(r[i].sql);
        free(r[i].state);
    }
    free(r);
}

int ss_engine_view_columns(ss_engine_t *e, const char *view, int *n, char ***names, ss_coltype_t **types,
                           char *err, size_t errsz)
{
    *n = 0;
    *names = NULL;
    *types = NULL;
    pthread_mutex_lock(&e->exec_mu);
    int k = eng_node_index(e, SS_PN_VIEW, view);
    int rc = SS_OK;
    if (k < 0) {
        rc = ss_seterr(err, errsz, SS_ERR_NOTFOUND, "no such view: %s", view);
    } else {
        const ss_schema_t *s = e->plan->nodes[k]->schema;
        *names = calloc((size_t)s->n + 1, sizeof **names);
        *types = calloc((size_t)s->n + 1, sizeof **types);
        if (!*names || !*types)
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int c = 0; !rc && c < s->n; c++) {
            (*types)[c] = s->types[c];
            if (!((*names)[c] = ss_strdup(s->names[c])))
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        *n = s->n;
    }
    pthread_mutex_unlock(&e->exec_mu);
    if (rc) {
        ss_engine_columns_free(*n, *names, *types);
        *n = 0;
        *names = NULL;
        *types = NULL;
    }
    return rc;
}

void ss_engine_columns_free(int n, char **names, ss_coltype_t *types)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(types);
}

/* ---- SUBSCRIBE's options ---- */

/* An interval in ms: an integer (ms), or text such as '1s', '250ms', '2 min'. -1 if invalid. */
static int64_t interval_ms(const ss_value_t *v)
{
    if (v->t == SS_INT)
        return v->u.i;
    if (v->t != SS_TEXT)
        return -1;
    char *end;
    errno = 0;
    double x = strtod(v->u.str.s, &end);
    if (end == v->u.str.s || errno || x < 0 || x > 1e12)
        return -1;
    while (*end == ' ')
        end++;
    double mul = !*end || !strcmp(end, "ms") ? 1 : !strcmp(end, "s") || !strncmp(end, "sec", 3) ? 1000
               : !strcmp(end, "min") || !strncmp(end, "minute", 6) ? 60000 : -1;
    return mul < 0 ? -1 : (int64_t)(x * mul + 0.5);
}

int ss_engine_subscribe_opts(const struct ss_ast_stmt *st, int64_t limit_dflt, int64_t timeout_dflt,
                             int64_t *limit, int64_t *timeout_ms, int *snapshot, char *err, size_t errsz)
{
    *limit = limit_dflt;
    *timeout_ms = timeout_dflt;
    *snapshot = 1;
    for (int i = 0; st->opts && i < st->opts->n; i++) {
        const ss_ast_option_t *o = &st->opts->items[i];
        const ss_value_t *v = &o->value;
        if (!strcmp(o->name, "limit")) {
            if (v->t != SS_INT || v->u.i < 0 || v->u.i > 1000000000000LL)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: SUBSCRIBE limit must be an integer from 0 to "
                                 "1000000000000", o->span.line, o->span.col);
            *limit = v->u.i;
        } else if (!strcmp(o->name, "timeout_ms") || !strcmp(o->name, "timeout")) {
            int64_t ms = interval_ms(v);
            if (ms < 0 || ms > 86400000LL)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: SUBSCRIBE %s must be from 0 to 86400000 ms "
                                 "(an integer, or text such as '5s')", o->span.line, o->span.col, o->name);
            *timeout_ms = ms;
        } else if (!strcmp(o->name, "snapshot")) {
            int yes = v->t == SS_INT ? v->u.i != 0 : v->t == SS_TEXT && (ss_strcaseeq(v->u.str.s, "true") ||
                                                                         ss_strcaseeq(v->u.str.s, "on"));
            int no = v->t == SS_INT ? v->u.i == 0 : v->t == SS_TEXT && (ss_strcaseeq(v->u.str.s, "false") ||
                                                                        ss_strcaseeq(v->u.str.s, "off"));
            if (!yes && !no)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: SUBSCRIBE snapshot must be true or false",
                                 o->span.line, o->span.col);
            *snapshot = yes;
        } else {
            return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: unknown SUBSCRIBE option %s (limit, timeout_ms, "
                             "snapshot)", o->span.line, o->span.col, o->name);
        }
    }
    return SS_OK;
}
