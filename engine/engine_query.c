/*
 * engine_query.c — the engine's read statements: SELECT over views (the AST is
 * re-rendered as SQLite SQL over the view tables view_<name>, each row repeated
 * _mult times), SHOW STREAMS/VIEWS/MODELS, EXPLAIN (plan + per-operator
 * statistics), SUBSCRIBE (a view's changes as they happen), and the aligned
 * text tables all of them print.
 */
#include "engine_int.h"
#include "ss_cascade.h"
#include "ss_sem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- aligned text tables ---- */

int eng_table_init(eng_table_t *t, int ncols, const char *const *names)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->nrows = -1; /* the header is row -1 */
    return eng_table_add(t, names);
}

static char *clean_cell(const char *s)
{
    ss_buf_t b = SS_BUF_INIT;
    for (; s && *s; s++) {
        if (*s == '\n')
            ss_buf_puts(&b, "\\n");
        else if (*s == '\r' || *s == '\t')
            ss_buf_putc(&b, ' ');
        else
            ss_buf_putc(&b, *s);
    }
    return ss_buf_take(&b);
}

int eng_table_add(eng_table_t *t, const char *const *cells)
{
    int need = (t->nrows + 2) * t->ncols;
    if (need > t->cap) {
        int cap = need * 2 + 16;
        char **c = realloc(t->cells, (size_t)cap * sizeof *c);
        if (!c)
            return SS_ERR_NOMEM;
        t->cells = c;
        t->cap = cap;
    }
    char **row = t->cells + (t->nrows + 1) * t->ncols;
    for (int i = 0; i < t->ncols; i++)
        row[i] = ss_strdup(cells[i]); /* raw (NULL stays NULL): rendering cleans, clients get values */
    t->nrows++;
    return SS_OK;
}

static int utf8_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void pad_cell(ss_buf_t *out, const char *s, int width)
{
    ss_buf_puts(out, s);
    for (int k = utf8_width(s); k < width; k++)
        ss_buf_putc(out, ' ');
}

void eng_table_render(const eng_table_t *t, ss_buf_t *out)
{
    size_t ncells = (size_t)(t->nrows + 1) * (size_t)t->ncols;
    int *w = calloc((size_t)t->ncols + 1, sizeof *w);
    char **shown = calloc(ncells + 1, sizeof *shown); /* cells as printed: NULL, \n escaped */
    if (!w || !shown) {
        free(w);
        free(shown);
        return;
    }
    for (size_t i = 0; i < ncells; i++)
        if (!(shown[i] = clean_cell(t->cells[i] ? t->cells[i] : "NULL"))) {
            for (size_t k = 0; k < i; k++)
                free(shown[k]);
            free(shown);
            free(w);
            return;
        }
    for (int r = 0; r <= t->nrows; r++)
        for (int c = 0; c < t->ncols; c++)
            w[c] = SS_MAX(w[c], utf8_width(shown[r * t->ncols + c]));
    for (int r = 0; r <= t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            ss_buf_puts(out, c ? " | " : " ");
            if (c == t->ncols - 1)
                ss_buf_puts(out, shown[r * t->ncols + c]);
            else
                pad_cell(out, shown[r * t->ncols + c], w[c]);
        }
        ss_buf_putc(out, '\n');
        if (r == 0) {
            for (int c = 0; c < t->ncols; c++) {
                if (c)
                    ss_buf_putc(out, '+');
                for (int k = 0; k < w[c] + 2; k++)
                    ss_buf_putc(out, '-');
            }
            ss_buf_putc(out, '\n');
        }
    }
    ss_buf_printf(out, "(%d row%s)\n", t->nrows, t->nrows == 1 ? "" : "s");
    for (size_t i = 0; i < ncells; i++)
        free(shown[i]);
    free(shown);
    free(w);
}

void eng_table_free(eng_table_t *t)
{
    for (int i = 0; i < (t->nrows + 1) * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->types);
    memset(t, 0, sizeof *t);
}

/* JSON form of result column i: numbers as numbers (REALs always with '.' or an exponent, so
 * that 2.0 stays distinct from 2; non-finite ones as the strings "Infinity"/"-Infinity"). */
static void json_cell(sqlite3_stmt *st, int i, ss_buf_t *out)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: ss_buf_puts(out, "null"); break;
    case SQLITE_INTEGER: ss_buf_put_i64(out, sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        char b[64];
        if (!isfinite(d)) {
            ss_buf_puts(out, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
            break;
        }
        snprintf(b, sizeof b, "%.17g", d);
        if (!strpbrk(b, ".e"))
            strcat(b, ".0");
        ss_buf_puts(out, b);
        break;
    }
    default: {
        const char *p = (const char *)sqlite3_column_text(st, i), *decl = sqlite3_column_decltype(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        /* a NUMERIC or JSON column of a view (view.c declares them so) is written as what it is */
        if (p && n && decl && (!strcmp(decl, "NUMERIC_TEXT") || !strcmp(decl, "JSON_TEXT")))
            ss_buf_append(out, p, n);
        else
            ss_buf_put_json_str(out, p ? p : "", n);
    }
    }
}

/* Runs a prepared statement: one JSON array of the column names, then one per row. */
static int render_json(sqlite3_stmt *st, ss_buf_t *out, char *err, size_t errsz)
{
    int n = sqlite3_column_count(st), rc;
    ss_buf_putc(out, '[');
    for (int i = 0; i < n; i++) {
        const char *nm = sqlite3_column_name(st, i);
        if (i)
            ss_buf_putc(out, ',');
        ss_buf_put_json_str(out, nm ? nm : "", nm ? strlen(nm) : 0);
    }
    ss_buf_puts(out, "]\n");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ss_buf_putc(out, '[');
        for (int i = 0; i < n; i++) {
            if (i)
                ss_buf_putc(out, ',');
            json_cell(st, i, out);
        }
        ss_buf_puts(out, "]\n");
    }
    if (rc != SQLITE_DONE)
        return ss_seterr(err, errsz, SS_ERR_SQLITE, "%s", sqlite3_errmsg(sqlite3_db_handle(st)));
    return SS_OK;
}

/* The shortest text of d that reads back exactly (PostgreSQL's float8 output). */
static char *real_text(double d)
{
    if (isnan(d))
        return ss_strdup("NaN");
    if (isinf(d))
        return ss_strdup(d > 0 ? "Infinity" : "-Infinity");
    char b[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, d);
        if (strtod(b, NULL) == d)
            break;
    }
    return ss_strdup(b);
}

/* Runs a prepared statement and renders every row (to the client's callbacks when it has
 * some: types, NULL as NULL, exact REALs; else as a text table). types may be NULL. */
static int render_stmt(ss_engine_t *e, sqlite3_stmt *st, const ss_coltype_t *types, ss_buf_t *out, char *err,
                       size_t errsz)
{
    int structured = e->xo && e->xo->rs;
    int n = sqlite3_column_count(st);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    char **cells = calloc((size_t)n + 1, sizeof *cells);
    eng_table_t t;
    if (!names || !cells || (memset(&t, 0, sizeof t), 0)) {
        free(names);
        free(cells);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        names[i] = sqlite3_column_name(st, i);
    eng_table_init(&t, n, names);
    int rc = structured && e->xo->describe_only ? SQLITE_DONE : SQLITE_ROW; /* describe: no row read */
    if (rc == SQLITE_DONE && !types) {
        ss_coltype_t *dt = calloc((size_t)n + 1, sizeof *dt);
        for (int i = 0; dt && i < n; i++) { /* declared types survive a plain column reference */
            const char *d = sqlite3_column_decltype(st, i);
            dt[i] = !d                            ? SS_COL_TEXT
                    : !strcmp(d, "NUMERIC_TEXT") ? SS_COL_NUMERIC /* operators/view.c declares them so */
                    : !strcmp(d, "JSON_TEXT")    ? SS_COL_JSON
                    : strstr(d, "INT")           ? SS_COL_INT
                    : strstr(d, "REAL")          ? SS_COL_REAL
                                                 : SS_COL_TEXT;
        }
        if (!dt || eng_table_set_types(&t, dt)) {
            free(dt);
            eng_table_free(&t);
            free(names);
            free(cells);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        free(dt);
        types = t.types;
    }
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_NULL: cells[i] = NULL; break;
            case SQLITE_FLOAT:
                cells[i] = structured ? real_text(sqlite3_column_double(st, i))
                                      : ss_sprintf("%.15g", sqlite3_column_double(st, i));
                break;
            default: cells[i] = ss_strdup((const char *)sqlite3_column_text(st, i)); break;
            }
        }
        eng_table_add(&t, (const char *const *)cells);
        for (int i = 0; i < n; i++)
            free(cells[i]);
    }
    int ret = SS_OK;
    if (rc != SQLITE_DONE)
        ret = ss_seterr(err, errsz, SS_ERR_SQLITE, "%s", sqlite3_errmsg(sqlite3_db_handle(st)));
    else if (structured && (ret = eng_table_set_types(&t, types)) == SS_OK)
        ret = eng_table_emit(e, &t, "SELECT", out);
    else if (!structured)
        eng_table_render(&t, out);
    eng_table_free(&t);
    free(names);
    free(cells);
    return ret;
}

/* ---- SELECT: AST -> SQLite SQL ---- */

typedef struct scope_entry {
    const char *name;         /* alias, or the view's name */
    const char *view;
    const ss_schema_t *schema; /* NULL: a subquery or WITH query (SQLite checks its columns) */
} scope_entry_t;

typedef struct sqlgen {
    ss_buf_t sql;
    ss_engine_t *e;
    const char *views[16]; /* views read (each becomes a CTE) */
    int nviews;
    scope_entry_t scope[64]; /* FROM entries of the selects being rendered (outer ones first) */
    int nscope;
    const ss_ast_select_t *sel; /* select-list aliases may be named in ORDER BY/HAVING */
    const ss_ast_select_t *withs[32]; /* selects whose WITH queries are in scope */
    int nwith;
    int top_ctes;              /* the outermost WITH list goes into the views' WITH clause */
    int bare;                  /* rendering a select item that is a bare column */
    char *err;
    size_t errsz;
    int rc;
} sqlgen_t;

static void gen_fail(sqlgen_t *g, ss_span_t sp, ss_err_t code, const char *msg, const char *what)
{
    if (!g->rc)
        g->rc = ss_seterr(g->err, g->errsz, code, "%d:%d: %s%s", sp.line, sp.col, msg, what ? what : "");
}

static void put_ident(ss_buf_t *b, const char *s)
{
    ss_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            ss_buf_putc(b, '"');
        ss_buf_putc(b, *s);
    }
    ss_buf_putc(b, '"');
}

static void put_literal(ss_buf_t *b, const ss_value_t *v)
{
    switch (v->t) {
    case SS_NULL: ss_buf_puts(b, "NULL"); break;
    case SS_INT: ss_buf_printf(b, "%lld", (long long)v->u.i); break;
    case SS_REAL: ss_buf_printf(b, "%.17g", v->u.r); break;
    case SS_NUM:
        ss_buf_append(b, v->u.str.s, v->u.str.n);
        break;
    case SS_JSON:
    case SS_TEXT:
        ss_buf_putc(b, '\'');
        for (size_t i = 0; i < v->u.str.n; i++) {
            if (v->u.str.s[i] == '\'')
                ss_buf_putc(b, '\'');
            ss_buf_putc(b, v->u.str.s[i]);
        }
        ss_buf_putc(b, '\'');
        break;
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: /* the text a view's column holds */
        ss_buf_putc(b, '\'');
        ss_val_to_text(v, b);
        ss_buf_putc(b, '\'');
        break;
    }
}

static const char *binop_sql(ss_ast_op_t op)
{
    switch (op) {
    case SS_OP_OR: return " OR ";
    case SS_OP_AND: return " AND ";
    case SS_OP_EQ: return " = ";
    case SS_OP_NE: return " <> ";
    case SS_OP_LT: return " < ";
    case SS_OP_LE: return " <= ";
    case SS_OP_GT: return " > ";
    case SS_OP_GE: return " >= ";
    case SS_OP_ADD: return " + ";
    case SS_OP_SUB: return " - ";
    case SS_OP_MUL: return " * ";
    case SS_OP_DIV: return " / ";
    case SS_OP_MOD: return " % ";
    case SS_OP_CONCAT: return " || ";
    case SS_OP_LIKE: return " LIKE ";
    case SS_OP_ILIKE: return " LIKE "; /* SQLite's LIKE ignores ASCII case */
    case SS_OP_DISTINCT: return " IS NOT ";
    case SS_OP_NOT_DISTINCT: return " IS ";
    case SS_OP_JSON_GET: return " -> ";
    case SS_OP_JSON_TEXT: return " ->> ";
    default: return NULL;
    }
}

static const ss_schema_t *view_schema(ss_engine_t *e, const char *view)
{
    int k = eng_node_index(e, SS_PN_VIEW, view);
    return k < 0 ? NULL : e->plan->nodes[k]->schema;
}

/* The WITH query `name` in scope, or NULL. */
static const ss_ast_cte_t *find_cte(const sqlgen_t *g, const char *name)
{
    for (int i = g->nwith - 1; i >= 0; i--)
        for (int k = 0; k < g->withs[i]->ncte; k++)
            if (ss_strcaseeq(g->withs[i]->ctes[k].name, name))
                return &g->withs[i]->ctes[k];
    return NULL;
}

/* Collects the FROM entries (views and their aliases) before any expression is rendered. */
static void collect_scope(sqlgen_t *g, const ss_ast_from_t *f)
{
    if (!f)
        return;
    if (f->kind == SS_FROM_JOIN || f->kind == SS_FROM_SEM_JOIN || f->kind == SS_FROM_SEM_SIM_JOIN) {
        collect_scope(g, f->left);
        collect_scope(g, f->right);
        return;
    }
    const char *name = f->alias ? f->alias : f->name ? f->name : "";
    const ss_schema_t *sc = f->kind == SS_FROM_TABLE && !find_cte(g, f->name) ? view_schema(g->e, f->name) : NULL;
    if ((sc || f->kind == SS_FROM_SUBQUERY || find_cte(g, f->name)) && g->nscope < (int)SS_ARRAY_LEN(g->scope))
        g->scope[g->nscope++] = (scope_entry_t){name, f->name, sc};
}

/* A column must name a column of a view read (or a select-list alias): SQLite alone would take
 * an unknown "name" for a string literal. */
/* Checks that a column exists (an error naming the closest one otherwise); returns its type when
 * it is a view's column, else -1. */
static int check_column(sqlgen_t *g, const ss_ast_expr_t *x)
{
    int found = 0, type = -1;
    const char *cands[64];
    int nc = 0;
    for (int i = 0; i < g->nscope && !found; i++) {
        const scope_entry_t *s = &g->scope[i];
        if (x->table && !ss_strcaseeq(x->table, s->name))
            continue;
        if (!s->schema) { /* a subquery's columns: SQLite checks them (double quotes are names only) */
            found = 1;
            break;
        }
        int at = ss_schema_find(s->schema, x->name);
        found = at >= 0;
        if (found)
            type = (int)s->schema->types[at];
        for (int c = 0; c < s->schema->n && nc < 64; c++)
            cands[nc++] = s->schema->names[c];
    }
    for (int i = 0; !found && !x->table && g->sel && i < g->sel->nitems; i++)
        found = g->sel->items[i].alias && ss_strcaseeq(g->sel->items[i].alias, x->name);
    if (found || !g->nscope)
        return type;
    int known_table = !x->table;
    for (int i = 0; i < g->nscope && !known_table; i++)
        known_table = ss_strcaseeq(x->table, g->scope[i].name);
    char msg[512];
    if (!known_table)
        snprintf(msg, sizeof msg, "no view or alias named \"%s\" in FROM", x->table);
    else {
        const char *best = ss_suggest(x->name, cands, nc);
        snprintf(msg, sizeof msg, "unknown column \"%s\"%s%s%s", x->name, best ? " (did you mean \"" : "",
                 best ? best : "", best ? "\"?)" : "");
    }
    gen_fail(g, x->span, SS_ERR_SEMANTIC, msg, NULL);
    return -1;
}

static void gen_select(sqlgen_t *g, const ss_ast_select_t *s, int top);
static void gen_call_tail(sqlgen_t *g, const ss_ast_expr_t *x);
static void gen_special(sqlgen_t *g, const ss_ast_expr_t *x);

static void gen_expr(sqlgen_t *g, const ss_ast_expr_t *x)
{
    ss_buf_t *b = &g->sql;
    if (!x || g->rc)
        return;
    switch (x->kind) {
    case SS_AX_COLUMN: {
        /* a view keeps a NUMERIC as its exact text: inside an expression, a comparison, ORDER BY
         * or an aggregate it is read as a number (9.50 < 10.25, not as text); a bare select item
         * keeps its digits */
        int num = check_column(g, x) == SS_COL_NUMERIC && !g->bare;
        ss_buf_puts(b, num ? "CAST(" : "");
        if (x->table) {
            put_ident(b, x->table);
            ss_buf_putc(b, '.');
        }
        put_ident(b, x->name);
        ss_buf_puts(b, num ? " AS NUMERIC)" : "");
        break;
    }
    case SS_AX_LITERAL: put_literal(b, &x->lit); break;
    case SS_AX_STAR:
        if (x->table) {
            put_ident(b, x->table);
            ss_buf_putc(b, '.');
        }
        ss_buf_putc(b, '*');
        break;
    case SS_AX_UNARY:
        ss_buf_puts(b, x->op == SS_OP_NOT ? "(NOT " : "(-");
        gen_expr(g, x->left);
        ss_buf_putc(b, ')');
        break;
    case SS_AX_BINARY: {
        const char *op = binop_sql(x->op);
        if (!op) {
            gen_fail(g, x->span, SS_ERR_UNSUPPORTED, "operator not supported in a view query", NULL);
            return;
        }
        ss_buf_putc(b, '(');
        gen_expr(g, x->left);
        ss_buf_puts(b, op);
        gen_expr(g, x->right);
        ss_buf_putc(b, ')');
        break;
    }
    case SS_AX_IS_NULL:
        ss_buf_putc(b, '(');
        gen_expr(g, x->left);
        ss_buf_puts(b, x->op == SS_OP_NOT ? " IS NOT NULL)" : " IS NULL)");
        break;
    case SS_AX_FUNC:
        ss_buf_puts(b, x->name);
        ss_buf_puts(b, x->distinct ? "(DISTINCT " : "(");
        for (int i = 0; x->args && i < x->args->n; i++) {
            if (i)
                ss_buf_puts(b, ", ");
            gen_expr(g, x->args->items[i]);
        }
        if (!x->norder)
            ss_buf_putc(b, ')');
        break;
    case SS_AX_SEM:
        gen_fail(g, x->span, SS_ERR_SEMANTIC, ss_sem_kind_name(x->sem),
                 " belongs in a continuous view: a SELECT reads a view's current rows");
        break;
    case SS_AX_SUBQUERY:
    case SS_AX_EXISTS:
        ss_buf_puts(b, x->kind == SS_AX_EXISTS ? "(EXISTS (" : "((");
        gen_select(g, x->sub, 0);
        ss_buf_puts(b, "))");
        break;
    case SS_AX_IN_SELECT:
        ss_buf_putc(b, '(');
        gen_expr(g, x->left);
        ss_buf_puts(b, x->op == SS_OP_NOT ? " NOT IN (" : " IN (");
        gen_select(g, x->sub, 0);
        ss_buf_puts(b, "))");
        break;
    case SS_AX_CASE: case SS_AX_CAST: case SS_AX_IN: case SS_AX_BETWEEN: case SS_AX_ROW:
        gen_special(g, x);
        break;
    }
    if (x->kind == SS_AX_BINARY && x->args && x->args->n == 1) { /* LIKE ... ESCAPE */
        b->len--; /* reopen the parenthesis */
        ss_buf_puts(b, " ESCAPE ");
        gen_expr(g, x->args->items[0]);
        ss_buf_putc(b, ')');
    }
    if (x->kind == SS_AX_FUNC && (x->norder || x->filter || x->over))
        gen_call_tail(g, x);
}

/* CASE, CAST, IN and BETWEEN in SQLite's spelling. */
static void gen_special(sqlgen_t *g, const ss_ast_expr_t *x)
{
    ss_buf_t *b = &g->sql;
    int n = x->args ? x->args->n : 0;
    switch (x->kind) {
    case SS_AX_CASE:
        ss_buf_puts(b, "(CASE");
        if (x->left) {
            ss_buf_putc(b, ' ');
            gen_expr(g, x->left);
        }
        for (int i = 0; i + 1 < n; i += 2) {
            ss_buf_puts(b, " WHEN ");
            gen_expr(g, x->args->items[i]);
            ss_buf_puts(b, " THEN ");
            gen_expr(g, x->args->items[i + 1]);
        }
        if (x->right) {
            ss_buf_puts(b, " ELSE ");
            gen_expr(g, x->right);
        }
        ss_buf_puts(b, " END)");
        break;
    case SS_AX_CAST: {
        static const char *const sq[] = {"TEXT", "INTEGER", "REAL", "INTEGER", "TEXT", "TEXT", "TEXT"};
        ss_buf_puts(b, "CAST(");
        gen_expr(g, x->left);
        ss_buf_printf(b, " AS %s)", (size_t)x->cast_type < SS_ARRAY_LEN(sq) ? sq[x->cast_type] : "TEXT");
        break;
    }
    case SS_AX_IN:
        ss_buf_putc(b, '(');
        gen_expr(g, x->left);
        ss_buf_puts(b, x->op == SS_OP_NOT ? " NOT IN (" : " IN (");
        for (int i = 0; i < n; i++) {
            if (i)
                ss_buf_puts(b, ", ");
            gen_expr(g, x->args->items[i]);
        }
        ss_buf_puts(b, "))");
        break;
    case SS_AX_BETWEEN:
        ss_buf_putc(b, '(');
        gen_expr(g, x->left);
        ss_buf_puts(b, x->op == SS_OP_NOT ? " NOT BETWEEN " : " BETWEEN ");
        gen_expr(g, x->args->items[0]);
        ss_buf_puts(b, " AND ");
        gen_expr(g, x->args->items[1]);
        ss_buf_putc(b, ')');
        break;
    default:
        gen_fail(g, x->span, SS_ERR_SEMANTIC, "a parenthesised list (a, b, ...) is only allowed after IN", NULL);
    }
}

static void gen_from(sqlgen_t *g, const ss_ast_from_t *f)
{
    if (g->rc)
        return;
    switch (f->kind) {
    case SS_FROM_TABLE: {
        if (find_cte(g, f->name)) {
            put_ident(&g->sql, f->name);
            if (f->alias) {
                ss_buf_puts(&g->sql, " AS ");
                put_ident(&g->sql, f->alias);
            }
            break;
        }
        if (!ss_catalog_view(g->e->cat, f->name)) {
            if (ss_catalog_stream(g->e->cat, f->name))
                gen_fail(g, f->span, SS_ERR_SEMANTIC, f->name,
                         " is a stream: SELECT reads views (create a view over the stream)");
            else
                gen_fail(g, f->span, SS_ERR_NOTFOUND, "no such view: ", f->name);
            return;
        }
        int seen = 0;
        for (int i = 0; i < g->nviews; i++)
            seen |= ss_strcaseeq(g->views[i], f->name);
        if (!seen && g->nviews < (int)SS_ARRAY_LEN(g->views))
            g->views[g->nviews++] = f->name;
        char *cte = ss_sprintf("_ss_v_%s", f->name);
        put_ident(&g->sql, cte ? cte : "");
        free(cte);
        ss_buf_puts(&g->sql, " AS ");
        put_ident(&g->sql, f->alias ? f->alias : f->name);
        break;
    }
    case SS_FROM_JOIN: {
        static const char *const kw[] = {" JOIN ", " LEFT JOIN ", " RIGHT JOIN ", " FULL JOIN ", " CROSS JOIN "};
        gen_from(g, f->left);
        ss_buf_puts(&g->sql, f->natural ? " NATURAL" : "");
        ss_buf_puts(&g->sql, kw[(unsigned)f->join_type < SS_ARRAY_LEN(kw) ? f->join_type : 0]);
        gen_from(g, f->right);
        for (int i = 0; i < f->nusing; i++) {
            ss_buf_puts(&g->sql, i ? ", " : " USING (");
            put_ident(&g->sql, f->using_cols[i]);
        }
        ss_buf_puts(&g->sql, f->nusing ? ")" : "");
        if (f->on) {
            ss_buf_puts(&g->sql, " ON ");
            gen_expr(g, f->on);
        }
        break;
    }
    case SS_FROM_SUBQUERY:
        ss_buf_putc(&g->sql, '(');
        gen_select(g, f->sub, 0);
        ss_buf_puts(&g->sql, ")");
        if (f->alias) {
            ss_buf_puts(&g->sql, " AS ");
            put_ident(&g->sql, f->alias);
        }
        break;
    case SS_FROM_SEM_JOIN:
        gen_fail(g, f->span, SS_ERR_SEMANTIC, "SEM_JOIN belongs in a continuous view", NULL);
        break;
    case SS_FROM_SEM_SIM_JOIN:
    case SS_FROM_SEM_SEARCH:
        gen_fail(g, f->span, SS_ERR_SEMANTIC,
                 f->kind == SS_FROM_SEM_SEARCH ? "SEM_SEARCH" : "SEM_SIM_JOIN", " belongs in a continuous view");
        break;
    }
}

/* ORDER BY inside an aggregate call (its ')' is written here), FILTER, OVER. */
static void gen_call_tail(sqlgen_t *g, const ss_ast_expr_t *x)
{
    ss_buf_t *b = &g->sql;
    for (int i = 0; i < x->norder; i++) {
        ss_buf_puts(b, i ? ", " : " ORDER BY ");
        gen_expr(g, x->order[i].expr);
        ss_buf_puts(b, x->order[i].desc ? " DESC" : "");
    }
    ss_buf_puts(b, x->norder ? ")" : "");
    if (x->filter) {
        ss_buf_puts(b, " FILTER (WHERE ");
        gen_expr(g, x->filter);
        ss_buf_putc(b, ')');
    }
    if (!x->over)
        return;
    ss_buf_puts(b, " OVER (");
    for (int i = 0; x->over->partition && i < x->over->partition->n; i++) {
        ss_buf_puts(b, i ? ", " : "PARTITION BY ");
        gen_expr(g, x->over->partition->items[i]);
    }
    for (int i = 0; i < x->over->norder; i++) {
        ss_buf_puts(b, i ? ", " : " ORDER BY ");
        gen_expr(g, x->over->order[i].expr);
        ss_buf_puts(b, x->over->order[i].desc ? " DESC" : "");
    }
    ss_buf_putc(b, ')');
}

/* One SELECT of a compound, or a compound (PostgreSQL precedence kept with subqueries: SQLite
 * applies set operations left to right). */
static void gen_core(sqlgen_t *g, const ss_ast_select_t *s)
{
    ss_buf_t *b = &g->sql;
    if (s->setop != SS_SETOP_NONE) {
        if (s->setop == SS_SETOP_EXCEPT_ALL || s->setop == SS_SETOP_INTERSECT_ALL) {
            gen_fail(g, s->span, SS_ERR_UNSUPPORTED, ss_setop_name(s->setop),
                     " is not supported in a snapshot read (SQLite has no such operator): create a view with it");
            return;
        }
        gen_core(g, s->left);
        ss_buf_printf(b, " %s ", ss_setop_name(s->setop));
        if (s->right->setop != SS_SETOP_NONE)
            ss_buf_puts(b, "SELECT * FROM (");
        gen_core(g, s->right);
        if (s->right->setop != SS_SETOP_NONE)
            ss_buf_putc(b, ')');
        return;
    }
    int nscope = g->nscope;
    const ss_ast_select_t *sel = g->sel;
    g->sel = s;
    collect_scope(g, s->from);
    ss_buf_puts(b, s->distinct ? "SELECT DISTINCT " : "SELECT ");
    for (int i = 0; i < s->nitems; i++) {
        if (i)
            ss_buf_puts(b, ", ");
        g->bare = s->items[i].expr->kind == SS_AX_COLUMN;
        gen_expr(g, s->items[i].expr);
        g->bare = 0;
        if (s->items[i].alias) {
            ss_buf_puts(b, " AS ");
            put_ident(b, s->items[i].alias);
        }
    }
    if (s->from) {
        ss_buf_puts(b, " FROM ");
        gen_from(g, s->from);
    }
    if (s->where) {
        ss_buf_puts(b, " WHERE ");
        gen_expr(g, s->where);
    }
    for (int i = 0; s->group_by && i < s->group_by->n; i++) {
        ss_buf_puts(b, i ? ", " : " GROUP BY ");
        gen_expr(g, s->group_by->items[i]);
    }
    if (s->having) {
        ss_buf_puts(b, " HAVING ");
        gen_expr(g, s->having);
    }
    if (s->norder && !g->rc) { /* the scope of ORDER BY: this select's FROM and its aliases */
        for (int i = 0; i < s->norder; i++) {
            ss_buf_puts(b, i ? ", " : " ORDER BY ");
            gen_expr(g, s->order[i].expr);
            ss_buf_puts(b, s->order[i].desc ? " DESC" : "");
        }
    }
    g->nscope = nscope;
    g->sel = sel;
}

/* [WITH ...] core [ORDER BY] [LIMIT] [OFFSET]; the outermost WITH list (top) is rendered by
 * gen_ctes next to the views'. */
static void gen_select(sqlgen_t *g, const ss_ast_select_t *s, int top)
{
    ss_buf_t *b = &g->sql;
    if (!s || g->rc)
        return;
    if (g->nwith == (int)SS_ARRAY_LEN(g->withs)) {
        gen_fail(g, s->span, SS_ERR_UNSUPPORTED, "WITH queries nest too deeply", NULL);
        return;
    }
    int nwith = g->nwith;
    for (int i = 0; i < s->ncte && !g->rc; i++) {
        if (!top)
            ss_buf_puts(b, i ? ", " : "WITH ");
        else if (i == 0) /* written into the views' WITH clause by gen_ctes */
            g->top_ctes = 1;
        if (top)
            continue;
        put_ident(b, s->ctes[i].name);
        for (int k = 0; k < s->ctes[i].ncols; k++) {
            ss_buf_puts(b, k ? ", " : "(");
            put_ident(b, s->ctes[i].cols[k]);
        }
        ss_buf_puts(b, s->ctes[i].ncols ? ") AS (" : " AS (");
        g->withs[g->nwith] = s;
        g->nwith = nwith + 1; /* a WITH query sees the ones before it (and itself: SQLite rejects that) */
        gen_select(g, s->ctes[i].select, 0);
        g->nwith = nwith;
        ss_buf_puts(b, ") ");
    }
    g->withs[g->nwith++] = s;
    if (s->setop == SS_SETOP_NONE) {
        gen_core(g, s);
    } else {
        gen_core(g, s);
        for (int i = 0; i < s->norder; i++) { /* names the compound's output columns */
            ss_buf_puts(b, i ? ", " : " ORDER BY ");
            int n = g->nscope;
            g->nscope = 0;
            gen_expr(g, s->order[i].expr);
            g->nscope = n;
            ss_buf_puts(b, s->order[i].desc ? " DESC" : "");
        }
    }
    if (s->limit >= 0 || s->offset > 0)
        ss_buf_printf(b, " LIMIT %lld", (long long)(s->limit >= 0 ? s->limit : -1));
    if (s->offset > 0)
        ss_buf_printf(b, " OFFSET %lld", (long long)s->offset);
    if (!top)
        g->nwith = nwith;
}

/* The outermost WITH queries, rendered after gen_select(top) has collected the views. */
static void gen_top_ctes(sqlgen_t *g, const ss_ast_select_t *s, ss_buf_t *w)
{
    ss_buf_t body = g->sql;
    for (int i = 0; i < s->ncte && !g->rc; i++) {
        memset(&g->sql, 0, sizeof g->sql);
        g->nwith = 0;
        g->withs[g->nwith++] = s; /* earlier WITH queries of the same list */
        gen_select(g, s->ctes[i].select, 0);
        ss_buf_puts(w, w->len ? ", " : "WITH ");
        put_ident(w, s->ctes[i].name);
        for (int k = 0; k < s->ctes[i].ncols; k++) {
            ss_buf_puts(w, k ? ", " : "(");
            put_ident(w, s->ctes[i].cols[k]);
        }
        ss_buf_puts(w, s->ctes[i].ncols ? ") AS (" : " AS (");
        ss_buf_append(w, g->sql.data, g->sql.len);
        ss_buf_puts(w, ") ");
        ss_buf_free(&g->sql);
    }
    g->sql = body;
}

/* The name of a view table's internal column (see view.c), quoted into w. */
static void put_internal(ss_buf_t *w, const ss_schema_t *sc, const char *base)
{
    char nm[64];
    put_ident(w, ss_view_internal(sc, base, nm, sizeof nm));
}

/* WITH clause: each view read becomes a CTE of its rows, each repeated _mult times. Every name
 * the CTEs use is qualified (t."col", n."i"), and the internal columns give way to user columns
 * of the same name (ss_view_internal), so no user column name can collide with them. */
static int gen_ctes(sqlgen_t *g, ss_buf_t *w)
{
    if (!g->nviews)
        return SS_OK;
    const ss_schema_t *sc[SS_ARRAY_LEN(g->views)];
    for (int i = 0; i < g->nviews; i++) {
        int k = eng_node_index(g->e, SS_PN_VIEW, g->views[i]);
        if (k < 0)
            return ss_seterr(g->err, g->errsz, SS_ERR_INTERNAL, "view %s is not running", g->views[i]);
        sc[i] = g->e->plan->nodes[k]->schema;
    }
    ss_buf_puts(w, "WITH RECURSIVE _ss_n(i) AS (SELECT 1 UNION ALL SELECT _ss_n.i + 1 FROM _ss_n WHERE _ss_n.i < "
                   "(SELECT MAX(m) FROM (");
    for (int i = 0; i < g->nviews; i++) {
        char *q = sqlite3_mprintf("%sSELECT MAX(t.", i ? " UNION ALL " : "");
        ss_buf_puts(w, q);
        sqlite3_free(q);
        put_internal(w, sc[i], "_mult");
        q = sqlite3_mprintf(") AS m FROM \"view_%w\" AS t", g->views[i]);
        ss_buf_puts(w, q);
        sqlite3_free(q);
    }
    ss_buf_puts(w, ")))");
    for (int i = 0; i < g->nviews; i++) {
        char *q = sqlite3_mprintf(", \"_ss_v_%w\" AS (SELECT ", g->views[i]);
        ss_buf_puts(w, q);
        sqlite3_free(q);
        for (int c = 0; c < sc[i]->n; c++) {
            ss_buf_puts(w, c ? ", t." : "t.");
            put_ident(w, sc[i]->names[c]);
            ss_buf_puts(w, " AS ");
            put_ident(w, sc[i]->names[c]);
        }
        q = sqlite3_mprintf(" FROM \"view_%w\" AS t JOIN _ss_n ON _ss_n.i <= t.", g->views[i]);
        ss_buf_puts(w, q);
        sqlite3_free(q);
        put_internal(w, sc[i], "_mult");
        ss_buf_puts(w, ") ");
    }
    return SS_OK;
}

static int expr_has_sem(const ss_ast_expr_t *x)
{
    if (!x)
        return 0;
    if (x->kind == SS_AX_SEM)
        return 1;
    for (int i = 0; x->args && i < x->args->n; i++)
        if (expr_has_sem(x->args->items[i]))
            return 1;
    return expr_has_sem(x->left) || expr_has_sem(x->right);
}

static int from_has_sem(const ss_ast_from_t *f)
{
    return f && (f->kind == SS_FROM_SEM_JOIN || from_has_sem(f->left) || from_has_sem(f->right));
}

/* Semantic calls in a SELECT are refused by the reader with its own message. */
static int has_sem(const ss_ast_select_t *s)
{
    int r = from_has_sem(s->from) || expr_has_sem(s->where) || expr_has_sem(s->having);
    for (int i = 0; !r && i < s->nitems; i++)
        r = expr_has_sem(s->items[i].expr);
    for (int i = 0; !r && i < s->norder; i++)
        r = expr_has_sem(s->order[i].expr);
    return r;
}

/* Prepares with double-quoted strings disabled: "x" is always a name, so a misspelled column
 * in a subquery is an error rather than the string 'x'. */
static int prepare_strict(sqlite3 *db, const char *sql, sqlite3_stmt **stmt)
{
    int old = 1;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, -1, &old);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    int rc = sqlite3_prepare_v2(db, sql, -1, stmt, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, old, NULL);
    return rc;
}

/* The plan of every view (schemas, nodes): missing only when the views failed to start. */
static int need_plan(ss_engine_t *e, char *err, size_t errsz)
{
    if (e->plan || ss_catalog_nviews(e->cat) == 0)
        return SS_OK;
    return ss_seterr(err, errsz, SS_ERR_INVALID, "the views are not running: %s",
                     e->plan_error[0] ? e->plan_error : "no plan");
}

/* Prepares the SELECT's SQL (sorted by every column without ORDER BY) and renders its rows;
 * *stmtp is the caller's to finalize. */
static int select_exec(ss_engine_t *e, const ss_ast_stmt_t *st, sqlite3 *db, ss_buf_t *sql, size_t body_at,
                       const ss_schema_t *want, sqlite3_stmt **stmtp, ss_buf_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *stmt = NULL;
    if (prepare_strict(db, ss_buf_cstr(sql), &stmt) != SQLITE_OK)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s", st->span.line, st->span.col, sqlite3_errmsg(db));
    if (st->query->select->norder == 0) {
        /* no ORDER BY: sort by every output column so that results are deterministic */
        int n = sqlite3_column_count(stmt);
        sqlite3_finalize(stmt);
        stmt = NULL;
        ss_buf_t w = SS_BUF_INIT;
        ss_buf_append(&w, sql->data, body_at);
        ss_buf_puts(&w, "SELECT * FROM (");
        ss_buf_puts(&w, sql->data + body_at);
        ss_buf_puts(&w, ")");
        for (int i = 0; i < n; i++)
            ss_buf_printf(&w, "%s%d", i ? ", " : " ORDER BY ", i + 1);
        ss_buf_free(sql);
        *sql = w;
        if (prepare_strict(db, ss_buf_cstr(sql), &stmt) != SQLITE_OK)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s", st->span.line, st->span.col,
                             sqlite3_errmsg(db));
    }
    int nc = sqlite3_column_count(stmt), rc;
    if (e->result_json && !(e->xo && e->xo->rs)) /* SET result_format = 'json' (a client with callbacks gets cells) */
        rc = render_json(stmt, out, err, errsz);
    else
        rc = render_stmt(e, stmt, want && want->n == nc ? want->types : NULL, out, err, errsz);
    *stmtp = stmt;
    return rc;
}

/* Checks, then runs a SELECT; g (the caller's, zeroed) guards only the SQLite run of the generated
 * SQL: the planner's own reads of the catalog are not the client's. */
static int select_run(ss_engine_t *e, const ss_ast_stmt_t *st, eng_guard_t *guard, ss_buf_t *out, char *err,
                      size_t errsz)
{
    if (!st->query || st->query->kind != SS_Q_SELECT)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: only SELECT can be run as a query", st->span.line,
                         st->span.col);
    int rc = need_plan(e, err, errsz);
    if (rc)
        return rc;
    sqlgen_t g;
    memset(&g, 0, sizeof g);
    g.e = e;
    g.err = err;
    g.errsz = errsz;
    gen_select(&g, st->query->select, 1);
    ss_buf_t sql = SS_BUF_INIT, user = SS_BUF_INIT;
    if (!g.rc && st->query->select->ncte)
        gen_top_ctes(&g, st->query->select, &user); /* may read more views */
    ss_plan_t *p = NULL; /* its last node's schema: the output types a client is told */
    int structured = e->xo && e->xo->rs;
    if (!g.rc && st->query->select->from && !has_sem(st->query->select)) {
        /* the planner checks names and types as for a continuous view (PostgreSQL's rules), so a
         * SELECT refuses `amount = 'abc'` just as CREATE VIEW does; SQLite then runs it */
        g.rc = ss_plan_query(e->cat, st->query, "_select", &p, err, errsz);
    } else if (!g.rc && st->query->select->from && structured) {
        char perr[SS_ERRSZ]; /* semantic calls: the types when the planner knows them */
        if (ss_plan_query(e->cat, st->query, "_select", &p, perr, sizeof perr) != SS_OK)
            p = NULL;
    }
    const ss_schema_t *want = p && p->n > 0 ? p->nodes[p->n - 1]->schema : NULL;
    if (!g.rc)
        g.rc = gen_ctes(&g, &sql);
    if (!g.rc && user.len) {
        if (sql.len)
            ss_buf_puts(&sql, ", ");
        ss_buf_append(&sql, user.data + (sql.len ? 5 : 0), user.len - (sql.len ? 5 : 0)); /* drop "WITH " */
    }
    ss_buf_free(&user);
    if (g.rc) {
        ss_buf_free(&g.sql);
        ss_buf_free(&sql);
        ss_plan_free(p);
        return g.rc;
    }
    size_t body_at = sql.len;
    ss_buf_append(&sql, g.sql.data, g.sql.len);
    ss_buf_free(&g.sql);
    sqlite3 *db = ss_store_db(e->store);
    sqlite3_stmt *stmt = NULL;
    eng_guard_begin(e, guard);
    rc = select_exec(e, st, db, &sql, body_at, want, &stmt, out, err, errsz);
    sqlite3_finalize(stmt);
    eng_guard_end(e, guard);
    ss_buf_free(&sql);
    ss_plan_free(p);
    return rc;
}
/* The span of the first call of function name in x (for errors about it). */
static const ss_ast_expr_t *find_call(const ss_ast_expr_t *x, const char *name)
{
    if (!x)
        return NULL;
    if (x->kind == SS_AX_FUNC && x->name && ss_strcaseeq(x->name, name))
        return x;
    const ss_ast_expr_t *r = find_call(x->left, name);
    if (!r)
        r = find_call(x->right, name);
    for (int i = 0; !r && x->args && i < x->args->n; i++)
        r = find_call(x->args->items[i], name);
    return r;
}

static ss_span_t call_span(const ss_ast_stmt_t *st, const char *denied)
{
    char fn[64];
    const ss_ast_select_t *s = st->query->select;
    if (sscanf(denied, "function %63[^(]()", fn) == 1) {
        const ss_ast_expr_t *x = find_call(s->where, fn);
        if (!x)
            x = find_call(s->having, fn);
        for (int i = 0; !x && i < s->nitems; i++)
            x = find_call(s->items[i].expr, fn);
        for (int i = 0; !x && i < s->norder; i++)
            x = find_call(s->order[i].expr, fn);
        if (x)
            return x->span;
    }
    return st->span;
}

/* A SELECT: its SQL reads only view tables and calls only allowed functions, within the
 * client's time limit (engine_result.c); the output types come from planning it as a view. */
int eng_select(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    eng_guard_t g;
    memset(&g, 0, sizeof g);
    int rc = select_run(e, st, &g, out, err, errsz);
    if (rc && (g.stopped || g.denied[0])) {
        ss_span_t sp = g.stopped ? st->span : call_span(st, g.denied);
        rc = eng_guard_error(&g, NULL, err, errsz);
        ss_errprefix(err, errsz, "%d:%d", sp.line, sp.col);
    }
    return rc;
}

int ss_engine_print_views(ss_engine_t *e, ss_buf_t *out, char *err, size_t errsz)
{
    int rc = need_plan(e, err, errsz);
    for (int i = 0; !rc && i < ss_catalog_nviews(e->cat); i++) {
        const char *name = ss_catalog_view_at(e->cat, i)->name;
        sqlgen_t g;
        memset(&g, 0, sizeof g);
        g.e = e;
        g.err = err;
        g.errsz = errsz;
        g.views[g.nviews++] = name;
        ss_buf_t sql = SS_BUF_INIT;
        rc = gen_ctes(&g, &sql);
        char *q = sqlite3_mprintf("SELECT * FROM \"_ss_v_%w\"", name);
        ss_buf_puts(&sql, q);
        sqlite3_free(q);
        sqlite3 *db = ss_store_db(e->store);
        sqlite3_stmt *st = NULL;
        if (!rc && sqlite3_prepare_v2(db, ss_buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK)
            rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "view %s: %s", name, sqlite3_errmsg(db));
        if (!rc) {
            int n = sqlite3_column_count(st);
            sqlite3_finalize(st);
            st = NULL;
            for (int k = 0; k < n; k++)
                ss_buf_printf(&sql, "%s%d", k ? ", " : " ORDER BY ", k + 1);
            if (sqlite3_prepare_v2(db, ss_buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK)
                rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "view %s: %s", name, sqlite3_errmsg(db));
        }
        if (!rc) {
            ss_buf_printf(out, "%sview %s:\n", i ? "\n" : "", name);
            rc = render_stmt(e, st, NULL, out, err, errsz);
        }
        sqlite3_finalize(st);
        ss_buf_free(&sql);
    }
    return rc;
}

/* ---- SHOW ---- */

static char *opts_text(const ss_plan_opt_t *o, int n)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < n; i++)
        ss_buf_printf(&b, "%s%s=%s", i ? ", " : "", o[i].name, o[i].value);
    return ss_buf_take(&b);
}

static int show_streams(ss_engine_t *e, ss_buf_t *out)
{
    const char *h[] = {"name", "topic", "format", "columns"};
    eng_table_t t;
    eng_table_init(&t, 4, h);
    for (int i = 0; i < ss_catalog_nstreams(e->cat); i++) {
        const ss_cat_stream_t *s = ss_catalog_stream_at(e->cat, i);
        ss_buf_t cols = SS_BUF_INIT;
        for (int c = 0; c < s->schema->n; c++)
            ss_buf_printf(&cols, "%s%s %s%s", c ? ", " : "", s->schema->names[c], ss_coltype_name(s->schema->types[c]),
                          s->schema->is_key[c] ? " KEY" : "");
        const char *row[] = {s->name, s->topic ? s->topic : s->name, s->format ? s->format : "json", ss_buf_cstr(&cols)};
        eng_table_add(&t, row);
        ss_buf_free(&cols);
    }
    int rc = eng_table_emit(e, &t, "SHOW", out);
    eng_table_free(&t);
    return rc;
}

int64_t eng_view_rows(ss_engine_t *e, const char *view)
{
    int k = eng_node_index(e, SS_PN_VIEW, view);
    if (k < 0)
        return -1;
    char nm[64];
    ss_view_internal(e->plan->nodes[k]->schema, "_mult", nm, sizeof nm);
    char *q = sqlite3_mprintf("SELECT COALESCE(SUM(\"%w\"), 0) FROM \"view_%w\" WHERE \"%w\" > 0", nm, view, nm);
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (q && sqlite3_prepare_v2(ss_store_db(e->store), q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_free(q);
    return n;
}

static int show_views(ss_engine_t *e, ss_buf_t *out)
{
    const char *h[] = {"name", "rows", "lag", "deltas", "llm_calls", "cache_hits", "tokens", "sink", "state"};
    eng_table_t t;
    eng_table_init(&t, 9, h);
    for (int i = 0; i < ss_catalog_nviews(e->cat); i++) {
        const ss_cat_view_t *v = ss_catalog_view_at(e->cat, i);
        ss_op_stats_t s;
        int64_t lagv;
        char state[SS_ERRSZ + 128];
        eng_view_status(e, v->name, &s, &lagv, state, sizeof state);
        if (e->reader) {
            lagv = eng_reader_lag(e, v->name);
            snprintf(state, sizeof state, "run by process %ld", e->leader_pid);
        } else if (e->plan_error[0]) {
            snprintf(state, sizeof state, "not running: %s", e->plan_error);
        }
        char rows[24], lag[24], deltas[24], calls[24], hits[24], toks[24];
        snprintf(rows, sizeof rows, "%lld", (long long)eng_view_rows(e, v->name));
        if (lagv < 0)
            snprintf(lag, sizeof lag, "?");
        else
            snprintf(lag, sizeof lag, "%lld", (long long)lagv);
        snprintf(deltas, sizeof deltas, "%lld", (long long)s.rows_in);
        snprintf(calls, sizeof calls, "%lld", (long long)s.infer.calls);
        snprintf(hits, sizeof hits, "%lld", (long long)s.infer.cache_hits);
        snprintf(toks, sizeof toks, "%lld", (long long)(s.infer.prompt_tokens + s.infer.gen_tokens));
        const char *row[] = {v->name, rows, lag, deltas, calls, hits, toks, v->sink_topic ? v->sink_topic : "", state};
        eng_table_add(&t, row);
    }
    int rc = eng_table_emit(e, &t, "SHOW", out);
    eng_table_free(&t);
    return rc;
}

static int show_models(ss_engine_t *e, ss_buf_t *out)
{
    const char *h[] = {"name", "backend", "options"};
    eng_table_t t;
    eng_table_init(&t, 3, h);
    char *path = ss_sprintf("path=%s (default)", e->model_path);
    const char *row0[] = {"local", "local", path};
    eng_table_add(&t, row0);
    free(path);
    for (int i = 0; i < ss_catalog_nmodels(e->cat); i++) {
        const ss_cat_model_t *m = ss_catalog_model_at(e->cat, i);
        char *o = opts_text(m->opts, m->nopts);
        const char *row[] = {m->name, m->backend, o};
        eng_table_add(&t, row);
        free(o);
    }
    /* the embedder of SEM_JOIN pruning and LLM_GENERATE retrieval (SET embedder = ...) */
    char desc[600] = "";
    const char *kind = ss_catalog_get(e->cat, "embedder");
    if (e->emb)
        snprintf(desc, sizeof desc, "%s", e->emb->desc);
    else {
        ss_embed_describe(kind, NULL, desc, sizeof desc - 40);
        strcat(desc, " (opened when a view needs it)");
    }
    const char *erow[] = {"(embedder)", e->emb ? e->emb->kind : kind ? kind : "wink", desc};
    eng_table_add(&t, erow);
    int rc = eng_table_emit(e, &t, "SHOW", out);
    eng_table_free(&t);
    return rc;
}

int eng_show(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    switch (st->object) {
    case SS_OBJ_STREAM: return show_streams(e, out);
    case SS_OBJ_VIEW: return show_views(e, out);
    case SS_OBJ_MODEL: return show_models(e, out);
    }
    return SS_OK;
}

/* ---- EXPLAIN ---- */

static void explain_stats(ss_engine_t *e, const char *view, ss_buf_t *out)
{
    const char *h[] = {"node", "operator", "batches", "rows_in", "rows_out", "llm_calls", "cache_hits", "tokens"};
    eng_table_t t;
    eng_table_init(&t, 8, h);
    const ss_plan_t *p = e->plan;
    for (int i = 0; p && i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        if (!n->view || !ss_strcaseeq(n->view, view))
            continue;
        ss_op_stats_t s;
        eng_node_stats(e, i, &s);
        char c[6][24];
        snprintf(c[0], 24, "%d", n->id);
        snprintf(c[1], 24, "%lld", (long long)s.batches);
        snprintf(c[2], 24, "%lld", (long long)s.rows_in);
        snprintf(c[3], 24, "%lld", (long long)s.rows_out);
        snprintf(c[4], 24, "%lld", (long long)s.infer.calls);
        snprintf(c[5], 24, "%lld", (long long)s.infer.cache_hits);
        char tok[24];
        snprintf(tok, sizeof tok, "%lld", (long long)(s.infer.prompt_tokens + s.infer.gen_tokens));
        const char *row[] = {c[0], ss_plan_kind_name(n->kind), c[1], c[2], c[3], c[4], c[5], tok};
        eng_table_add(&t, row);
    }
    eng_table_render(&t, out);
    eng_table_free(&t);
}

/* Which embedder the view's semantic joins and retrieval compare texts with. */
static void explain_embedder(ss_engine_t *e, const char *view, ss_buf_t *out)
{
    const ss_plan_t *p = e->plan;
    int need = 0;
    for (int i = 0; p && i < p->n; i++)
        need |= p->nodes[i]->view && ss_strcaseeq(p->nodes[i]->view, view) &&
                (p->nodes[i]->kind == SS_PN_SEM_JOIN || p->nodes[i]->kind == SS_PN_LLM_GENERATE ||
                 p->nodes[i]->kind == SS_PN_SEM_SIM_JOIN || p->nodes[i]->kind == SS_PN_SEM_SEARCH ||
                 p->nodes[i]->kind == SS_PN_SEM_DEDUP || p->nodes[i]->kind == SS_PN_SEM_GROUP ||
                 ss_plan_cascade_embeds(p->nodes[i]));
    if (need)
        ss_buf_printf(out, "embedder: %s\n", e->emb ? e->emb->desc : "none open");
}

/* The cascades of the view's operators (operators/sem_cascade.c): thresholds, samples, estimates,
 * oracle calls, as their last committed batch left them. */
static void explain_cascades(ss_engine_t *e, const char *view, ss_buf_t *out)
{
    const ss_plan_t *p = e->plan;
    for (int i = 0; p && i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        if (n->view && ss_strcaseeq(n->view, view) && ss_plan_opt(n, "cascade"))
            ss_cascade_describe(ss_store_db(e->store), n->id, "", out);
        if (n->view && ss_strcaseeq(n->view, view) && n->kind == SS_PN_LLM_GENERATE) /* dependency, reuse */
            ss_llm_generate_describe(ss_store_db(e->store), n, 8, out);
    }
}

int eng_explain(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    if (st->query) {
        ss_plan_t *p = NULL;
        int rc = ss_plan_query(e->cat, st->query, "query", &p, err, errsz);
        if (!rc)
            rc = ss_explain(p, NULL, out);
        ss_plan_free(p);
        return rc;
    }
    if (!ss_catalog_view(e->cat, st->name))
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "%d:%d: no such view: %s", st->name_span.line,
                         st->name_span.col, st->name);
    int rc = need_plan(e, err, errsz);
    if (!rc)
        rc = ss_explain(e->plan, st->name, out);
    if (!rc) {
        ss_op_stats_t s;
        int64_t lag;
        char state[SS_ERRSZ + 128];
        eng_view_status(e, st->name, &s, &lag, state, sizeof state);
        ss_buf_printf(out, "state: %s\n", state);
        explain_embedder(e, st->name, out);
        explain_cascades(e, st->name, out);
        explain_stats(e, st->name, out);
    }
    return rc;
}

/* ---- SUBSCRIBE ---- */

int eng_subscribe(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int64_t limit, timeout_ms;
    int snapshot;
    int rc = ss_engine_subscribe_opts(st, e->sub_limit, e->sub_timeout_ms, &limit, &timeout_ms, &snapshot, err,
                                      errsz);
    if (rc)
        return rc;
    ss_engine_sub_t *sub = NULL;
    rc = e->reader ? (int)ss_seterr(err, errsz, SS_ERR_BUSY, "SUBSCRIBE: process %ld runs the views; subscribe "
                                   "there, or read the view's sink topic", e->leader_pid)
                   : ss_engine_sub_open(e, st->name, snapshot, &sub, err, errsz);
    if (rc) {
        if (rc == SS_ERR_NOTFOUND)
            ss_errprefix(err, errsz, "%d:%d", st->name_span.line, st->name_span.col);
        return rc;
    }
    /* the current contents first, as insertions, then every change as it commits */
    int64_t start = ss_now_ns(), seen = 0;
    ss_buf_t b = SS_BUF_INIT;
    while (!(e->stop && *e->stop) && !(limit > 0 && seen >= limit)) {
        int64_t left = timeout_ms > 0 ? timeout_ms - (ss_now_ns() - start) / 1000000 : 200;
        if (left <= 0)
            break;
        int64_t n = 0;
        ss_buf_reset(&b);
        rc = ss_engine_sub_next(sub, (int)SS_MIN(left, 200), &b, &n, err, errsz);
        if (rc == SS_ERR_TIMEOUT) {
            rc = SS_OK;
            continue;
        }
        if (rc)
            break;
        seen += n;
        if (e->live) {
            fputs(ss_buf_cstr(&b), e->live);
            fflush(e->live);
        } else {
            ss_buf_append(out, b.data, b.len);
        }
    }
    ss_buf_free(&b);
    ss_engine_sub_close(sub);
    if (!rc && e->stop && *e->stop)
        rc = ss_seterr(err, errsz, SS_ERR_CANCELED, "SUBSCRIBE %s canceled after %lld change(s)", st->name,
                       (long long)seen);
    return rc;
}
