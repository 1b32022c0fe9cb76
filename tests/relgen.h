/*
 * relgen.h — test-only helpers shared by check_expr.c and check_relational.c
 * (header-only, static): a seeded RNG, random rows, expression constructors,
 * random expression generators that stay inside the behaviour semstream and
 * SQLite agree on, and SQLite-oracle helpers (load a Z-set into a table, run
 * a query into a Z-set, compare Z-sets with a tolerance for REALs).
 */
#ifndef SS_RELGEN_H
#define SS_RELGEN_H

#include "ss_plan.h"
#include "ss_zset.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG ---- */
typedef struct rg {
    uint64_t s;
    int ncols;
    const int *kinds; /* per column: 0 = INT, 1 = TEXT, 2 = mixed INT/REAL */
    int real_keys;    /* INT columns sometimes hold an integral REAL (2.0) */
    int int_range;    /* INT columns take values in [-2, int_range) */
} rg_t;

static inline uint64_t rg_next(rg_t *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}
static inline int rg_int(rg_t *g, int n) { return (int)(rg_next(g) % (uint64_t)n); }
static inline int rg_pct(rg_t *g, int p) { return rg_int(g, 100) < p; }

/* ---- values and rows ---- */
static const char *const RG_TEXTS[] = {"a", "b", "A", "ab", "ba", "", "a_b", "B%", "Abc", "x y"};
static const double RG_REALS[] = {1.5, -2.25, 2.5, 0.75, -0.5};

static inline ss_value_t rg_value(rg_t *g, int kind)
{
    if (rg_pct(g, 10))
        return ss_val_null();
    if (kind == 1) {
        const char *t = RG_TEXTS[rg_int(g, (int)(sizeof RG_TEXTS / sizeof *RG_TEXTS))];
        return ss_val_text_ref(t, strlen(t));
    }
    if (kind == 2 && rg_pct(g, 50))
        return ss_val_real(RG_REALS[rg_int(g, (int)(sizeof RG_REALS / sizeof *RG_REALS))]);
    int range = g->int_range > 0 ? g->int_range : 8;
    int64_t i = rg_int(g, range + 2) - 2;
    if (kind == 0 && g->real_keys && rg_pct(g, 15))
        return ss_val_real((double)i);
    return ss_val_int(i);
}

static inline ss_row_t *rg_row(rg_t *g)
{
    ss_row_t *r = ss_row_new(g->ncols);
    for (int i = 0; i < g->ncols; i++) {
        ss_value_t v = rg_value(g, g->kinds[i]);
        ss_row_set(r, i, &v);
    }
    return r;
}

static inline ss_row_t *mk_row(int n, ...)
{
    /* values given as (type char, value): 'i' int64, 'r' double, 't' text, 'n' null */
    ss_row_t *r = ss_row_new(n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        int t = va_arg(ap, int);
        ss_value_t v = ss_val_null();
        if (t == 'i')
            v = ss_val_int(va_arg(ap, int64_t));
        else if (t == 'r')
            v = ss_val_real(va_arg(ap, double));
        else if (t == 't') {
            const char *s = va_arg(ap, const char *);
            v = ss_val_text_ref(s, strlen(s));
        }
        ss_row_set(r, i, &v);
    }
    va_end(ap);
    return r;
}

/* ---- expression constructors (ownership of children passes to the parent) ---- */
static inline ss_expr_t *ex_col(int c)
{
    ss_expr_t *e = ss_expr_new(SS_EX_COL);
    e->col = c;
    return e;
}
static inline ss_expr_t *ex_lit(ss_value_t v)
{
    ss_expr_t *e = ss_expr_new(SS_EX_LIT);
    e->lit = v;
    if (v.t == SS_TEXT)
        e->lit.u.str.s = ss_strndup(v.u.str.s, v.u.str.n);
    return e;
}
static inline ss_expr_t *ex_int(int64_t i) { return ex_lit(ss_val_int(i)); }
static inline ss_expr_t *ex_real(double r) { return ex_lit(ss_val_real(r)); }
static inline ss_expr_t *ex_text(const char *s) { return ex_lit(ss_val_text_ref(s, strlen(s))); }
static inline ss_expr_t *ex_null(void) { return ex_lit(ss_val_null()); }
static inline ss_expr_t *ex_args(ss_expr_t *e, int n, ss_expr_t **a)
{
    e->nargs = n;
    e->args = calloc((size_t)n + 1, sizeof *e->args);
    for (int i = 0; i < n; i++)
        e->args[i] = a[i];
    return e;
}
static inline ss_expr_t *ex_bin(ss_ast_op_t op, ss_expr_t *a, ss_expr_t *b)
{
    ss_expr_t *e = ss_expr_new(SS_EX_BINARY), *v[2] = {a, b};
    e->op = op;
    return ex_args(e, 2, v);
}
static inline ss_expr_t *ex_un(ss_ast_op_t op, ss_expr_t *a)
{
    ss_expr_t *e = ss_expr_new(SS_EX_UNARY);
    e->op = op;
    return ex_args(e, 1, &a);
}
static inline ss_expr_t *ex_isnull(ss_expr_t *a, int neg)
{
    ss_expr_t *e = ss_expr_new(SS_EX_IS_NULL);
    e->negate = neg;
    return ex_args(e, 1, &a);
}
static inline ss_expr_t *ex_fn(const char *name, int n, ...)
{
    ss_expr_t *e = ss_expr_new(SS_EX_FUNC), *a[8];
    e->func = ss_strdup(name);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 8; i++)
        a[i] = va_arg(ap, ss_expr_t *);
    va_end(ap);
    return ex_args(e, n, a);
}

/* ---- random expressions (only constructs on which SQLite and semstream agree) ---- */
static inline int rg_col_of(rg_t *g, int want_text)
{
    int cand[16], n = 0;
    for (int i = 0; i < g->ncols && n < 16; i++)
        if ((g->kinds[i] == 1) == (want_text != 0))
            cand[n++] = i;
    return n ? cand[rg_int(g, n)] : 0;
}

static ss_expr_t *rg_text_expr(rg_t *g, int d);

static ss_expr_t *rg_num_expr(rg_t *g, int d)
{
    int c = rg_int(g, d > 0 ? 12 : 4);
    switch (c) {
    case 0: case 1: return ex_col(rg_col_of(g, 0));
    case 2: return rg_pct(g, 70) ? ex_int(rg_int(g, 12) - 3) : ex_real(RG_REALS[rg_int(g, 5)]);
    case 3: return rg_pct(g, 20) ? ex_null() : ex_col(rg_col_of(g, 0));
    case 4: {
        static const ss_ast_op_t ops[] = {SS_OP_ADD, SS_OP_SUB, SS_OP_MUL, SS_OP_DIV, SS_OP_MOD, SS_OP_ADD};
        ss_ast_op_t op = ops[rg_int(g, 6)];
        ss_expr_t *a = rg_num_expr(g, d - 1), *b = rg_num_expr(g, d - 1);
        if (op == SS_OP_DIV || op == SS_OP_MOD) /* PostgreSQL raises division by zero: keep divisors away from 0 */
            b = ex_fn("NULLIF", 2, ex_fn("ROUND", 1, b), ex_real(0));
        return ex_bin(op, a, b);
    }
    case 5: return ex_un(SS_OP_NEG, rg_num_expr(g, d - 1));
    case 6: return ex_fn("ABS", 1, rg_num_expr(g, d - 1));
    case 7: return ex_fn("LENGTH", 1, rg_text_expr(g, d - 1));
    case 8: {
        ss_expr_t *a = rg_num_expr(g, d - 1);
        return ex_fn("COALESCE", 2, a, rg_num_expr(g, d - 1));
    }
    case 9: return ex_fn("ROUND", 1, rg_num_expr(g, d - 1));
    case 10: {
        ss_expr_t *a = rg_num_expr(g, d - 1);
        return ex_fn("NULLIF", 2, a, rg_num_expr(g, d - 1));
    }
    default: return ex_bin(SS_OP_ADD, ex_col(rg_col_of(g, 0)), ex_int(rg_int(g, 5)));
    }
}

static ss_expr_t *rg_text_expr(rg_t *g, int d)
{
    int c = rg_int(g, d > 0 ? 10 : 3);
    switch (c) {
    case 0: case 1: return ex_col(rg_col_of(g, 1));
    case 2: return rg_pct(g, 10) ? ex_null() : ex_text(RG_TEXTS[rg_int(g, 10)]);
    case 3: return ex_fn(rg_pct(g, 50) ? "LOWER" : "UPPER", 1, rg_text_expr(g, d - 1));
    case 4: {
        ss_expr_t *a = rg_pct(g, 30) ? rg_num_expr(g, d - 1) : rg_text_expr(g, d - 1);
        return ex_bin(SS_OP_CONCAT, a, rg_text_expr(g, d - 1));
    }
    case 5: {
        /* starts and counts where SQLite agrees with PostgreSQL (and semstream): SQLite counts a
         * negative start from the end and a negative count backwards, PostgreSQL does not */
        ss_expr_t *a = rg_text_expr(g, d - 1);
        if (rg_pct(g, 50))
            return ex_fn("SUBSTR", 2, a, ex_int(rg_int(g, 4)));
        return ex_fn("SUBSTR", 3, a, ex_int(rg_int(g, 4)), ex_int(rg_int(g, 4)));
    }
    case 6: return ex_fn(rg_pct(g, 50) ? "TRIM" : "LTRIM", 1, rg_text_expr(g, d - 1));
    case 7: {
        ss_expr_t *a = rg_text_expr(g, d - 1);
        return ex_fn("COALESCE", 2, a, rg_text_expr(g, d - 1));
    }
    case 8: {
        ss_expr_t *a = rg_text_expr(g, d - 1);
        return ex_fn("REPLACE", 3, a, ex_text(rg_pct(g, 50) ? "a" : "b"), ex_text("zz"));
    }
    default: return ex_fn("TRIM", 2, rg_text_expr(g, d - 1), ex_text("ab"));
    }
}

static ss_expr_t *rg_bool_expr(rg_t *g, int d)
{
    static const ss_ast_op_t cmps[] = {SS_OP_EQ, SS_OP_NE, SS_OP_LT, SS_OP_LE, SS_OP_GT, SS_OP_GE};
    int c = rg_int(g, d > 0 ? 8 : 4);
    switch (c) {
    case 0: case 1: {
        ss_expr_t *a = rg_num_expr(g, d - 1);
        return ex_bin(cmps[rg_int(g, 6)], a, rg_num_expr(g, d - 1));
    }
    case 2: {
        ss_expr_t *a = rg_text_expr(g, d - 1);
        return ex_bin(cmps[rg_int(g, 6)], a, rg_text_expr(g, d - 1));
    }
    case 3: {
        static const char *const pats[] = {"a%", "%b", "_", "%a_%", "A", "%", "x%y", "B_%"};
        ss_expr_t *a = rg_text_expr(g, d - 1);
        return ex_bin(SS_OP_LIKE, a, rg_pct(g, 80) ? ex_text(pats[rg_int(g, 8)]) : rg_text_expr(g, d - 1));
    }
    case 4: return ex_isnull(rg_pct(g, 50) ? rg_num_expr(g, d - 1) : rg_text_expr(g, d - 1), rg_int(g, 2));
    case 5: {
        ss_expr_t *a = rg_bool_expr(g, d - 1);
        return ex_bin(SS_OP_AND, a, rg_bool_expr(g, d - 1));
    }
    case 6: {
        ss_expr_t *a = rg_bool_expr(g, d - 1);
        return ex_bin(SS_OP_OR, a, rg_bool_expr(g, d - 1));
    }
    default: return ex_un(SS_OP_NOT, rg_bool_expr(g, d - 1));
    }
}

/* ---- comparing values and Z-sets ---- */
static inline int val_close(const ss_value_t *a, const ss_value_t *b)
{
    if (a->t == SS_REAL && b->t == SS_REAL)
        return a->u.r == b->u.r || fabs(a->u.r - b->u.r) <= 1e-9 * SS_MAX(1.0, fabs(a->u.r));
    return ss_val_cmp(a, b) == 0;
}

/* 1 if equal after consolidation, REALs compared with a relative tolerance. */
static inline int zset_close(const ss_zset_t *a, const ss_zset_t *b)
{
    ss_zset_t x, y;
    ss_zset_init(&x);
    ss_zset_init(&y);
    ss_zset_extend(&x, a, 1);
    ss_zset_extend(&y, b, 1);
    ss_zset_consolidate(&x);
    ss_zset_consolidate(&y);
    int ok = x.n == y.n;
    for (size_t i = 0; ok && i < x.n; i++) {
        ok = x.e[i].w == y.e[i].w && x.e[i].row->n == y.e[i].row->n;
        for (int c = 0; ok && c < x.e[i].row->n; c++)
            ok = val_close(&x.e[i].row->v[c], &y.e[i].row->v[c]);
    }
    ss_zset_destroy(&x);
    ss_zset_destroy(&y);
    return ok;
}

static inline char *zset_str(const ss_zset_t *z)
{
    ss_zset_t c;
    ss_zset_init(&c);
    ss_zset_extend(&c, z, 1);
    ss_zset_consolidate(&c);
    ss_buf_t b = SS_BUF_INIT;
    ss_zset_dump(&c, NULL, &b);
    ss_zset_destroy(&c);
    return ss_buf_take(&b);
}

/* ---- SQLite oracle ---- */
static inline void sql_bind(sqlite3_stmt *s, int i, const ss_value_t *v)
{
    switch (v->t) {
    case SS_INT: sqlite3_bind_int64(s, i, v->u.i); break;
    case SS_REAL: sqlite3_bind_double(s, i, v->u.r); break;
    case SS_TEXT: sqlite3_bind_text(s, i, v->u.str.s, (int)v->u.str.n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_null(s, i);
    }
}

/* (Re)creates table `name`(c0..c{n-1}) without affinity and loads z (weights expanded). */
static inline int sql_load(sqlite3 *db, const char *name, int ncols, const ss_zset_t *z)
{
    char sql[512];
    int o = snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s; CREATE TABLE %s(", name, name);
    for (int i = 0; i < ncols; i++)
        o += snprintf(sql + o, sizeof sql - (size_t)o, "%sc%d", i ? ", " : "", i);
    snprintf(sql + o, sizeof sql - (size_t)o, ")");
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    o = snprintf(sql, sizeof sql, "INSERT INTO %s VALUES(", name);
    for (int i = 0; i < ncols; i++)
        o += snprintf(sql + o, sizeof sql - (size_t)o, "%s?", i ? ", " : "");
    snprintf(sql + o, sizeof sql - (size_t)o, ")");
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    for (size_t i = 0; i < z->n; i++)
        for (int64_t k = 0; k < z->e[i].w; k++) {
            sqlite3_reset(s);
            for (int c = 0; c < ncols; c++)
                sql_bind(s, c + 1, &z->e[i].row->v[c]);
            if (sqlite3_step(s) != SQLITE_DONE) {
                sqlite3_finalize(s);
                return -1;
            }
        }
    sqlite3_finalize(s);
    return 0;
}

/* Runs a query and adds each result row with weight 1 to out. */
static inline int sql_query(sqlite3 *db, const char *sql, ss_zset_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "oracle prepare failed: %s\n  %s\n", sqlite3_errmsg(db), sql);
        return -1;
    }
    int n = sqlite3_column_count(s), rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ss_row_t *r = ss_row_new(n);
        for (int i = 0; i < n; i++) {
            ss_value_t v = ss_val_null();
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_INTEGER: v = ss_val_int(sqlite3_column_int64(s, i)); break;
            case SQLITE_FLOAT: v = ss_val_real(sqlite3_column_double(s, i)); break;
            case SQLITE_TEXT:
            case SQLITE_BLOB:
                v = ss_val_text_ref((const char *)sqlite3_column_text(s, i), (size_t)sqlite3_column_bytes(s, i));
                break;
            }
            ss_row_set(r, i, &v);
        }
        ss_zset_add(out, r, 1);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        fprintf(stderr, "oracle query failed: %s\n  %s\n", sqlite3_errmsg(db), sql);
    return rc == SQLITE_DONE ? 0 : -1;
}

#endif
