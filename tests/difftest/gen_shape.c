/*
 * gen_shape.c — the query-shape generators (dt.h: dt_shapes): projections, DISTINCT, GROUP BY,
 * joins of every kind, ORDER BY/LIMIT/OFFSET, set operations, subqueries, FROM (SELECT), WITH
 * and window functions, over streams and earlier views of the same dialect (dt_pgmode).
 */
#include "dt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- query shapes ---- */

/* The dialect of the view being generated (dt_rel_t.pg): set by dt_case_gen around each shape. */
int dt_pgmode;

/* A relation to read: a stream or an earlier view of the same dialect. */
static const dt_rel_t *pick_rel(dt_rng_t *r, const dt_case_t *c, int views_too)
{
    const dt_rel_t *cand[DT_MAXSTREAMS + DT_MAXVIEWS];
    int n = 0;
    for (int i = 0; i < c->nstreams; i++)
        cand[n++] = &c->s[i];
    for (int i = 0; views_too && i < c->nviews; i++)
        if (c->v[i].pg == dt_pgmode)
            cand[n++] = &c->v[i];
    return cand[dt_int(r, n)];
}

static int plain_type(dt_type_t t);
static int usable(dt_type_t t);

/* 1 when a relation has a column only PostgreSQL can read (NUMERIC, JSON, an array). */
static int has_pg_cols(const dt_rel_t *rel)
{
    for (int i = 0; i < rel->ncols; i++)
        if (rel->types[i] >= DT_NTYPES)
            return 1;
    return 0;
}

/* A column type the current view may use: SQLite's views see only the four basic types. */
static int usable(dt_type_t t) { return dt_pgmode ? plain_type(t) : t < DT_NTYPES; }

static void scope_of(dt_gen_t *g, const dt_rel_t *rel, const char *qual)
{
    for (int i = 0; i < rel->ncols && g->ncols < 24; i++) {
        if (!dt_pgmode && rel->types[i] >= DT_NTYPES)
            continue; /* SQLite's tables have no NUMERIC or JSON */
        dt_col_t *c = &g->cols[g->ncols++];
        snprintf(c->sql, sizeof c->sql, "%s%s%s", qual ? qual : "", qual ? "." : "", rel->cols[i]);
        c->type = rel->types[i];
    }
}

dt_type_t dt_any_type(dt_rng_t *r)
{
    if (dt_pgmode && dt_pct(r, 10))
        return DT_NUM;
    return (dt_type_t)dt_int(r, DT_NTYPES);
}

/* Names output column i "<view>c<i>" (no input column has that name, so no alias can be
 * mistaken for one) and writes " AS name". */
static void alias(dt_rel_t *v, int i, dt_type_t t, ss_buf_t *out)
{
    char nm[40];
    snprintf(nm, sizeof nm, "%.8sc%d", v->name, i);
    memcpy(v->cols[i], nm, sizeof v->cols[i] - 1);
    v->cols[i][sizeof v->cols[i] - 1] = 0;
    v->types[i] = t;
    ss_buf_printf(out, " AS %s", v->cols[i]);
}

/* Output column i: "expr AS <view>c<i>". */
static void item(dt_gen_t *g, dt_rel_t *v, dt_type_t t, int depth, ss_buf_t *out)
{
    int i = v->ncols++;
    if (i)
        ss_buf_puts(out, ", ");
    dt_expr(g, t, depth, out);
    alias(v, i, t, out);
}

static void where(dt_gen_t *g, ss_buf_t *out, int pct)
{
    if (!dt_pct(g->rng, pct))
        return;
    ss_buf_puts(out, " WHERE ");
    dt_expr(g, DT_BOOL, 2, out);
}

static int s_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 4);
    for (int i = 0; i < n; i++)
        item(&g, v, dt_any_type(r), dt_pct(r, 50) ? 0 : 2, out);
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 60);
    return 1;
}

/* SELECT * (or alias.*) FROM a relation: the output columns keep the input's names. */
static int s_star(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    if (!dt_pgmode && has_pg_cols(in)) /* SQLite cannot read NUMERIC or JSON */
        return 0;
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    int alias = dt_pct(r, 50);
    scope_of(&g, in, alias ? "t" : NULL);
    ss_buf_printf(out, "SELECT %s FROM %s%s", alias ? "t.*" : "*", in->name, alias ? " AS t" : "");
    for (int i = 0; i < in->ncols; i++) {
        memcpy(v->cols[i], in->cols[i], sizeof v->cols[i]);
        v->types[i] = in->types[i];
    }
    v->ncols = in->ncols;
    where(&g, out, 70);
    if (dt_pct(r, 15) && plain_type(in->types[0])) /* ORDER BY without LIMIT: does not change the bag */
        ss_buf_puts(out, " ORDER BY 1 DESC");
    return 1;
}

static int s_distinct(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT DISTINCT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(&g, v, dt_any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 40);
    return 1;
}

static int is_literal(const char *e)
{
    /* SQLite folds (- 1) and (+ -2) to a position too */
    if ((!strncmp(e, "(- ", 3) || !strncmp(e, "(+ ", 3)) && ((e[3] >= '0' && e[3] <= '9') || e[3] == '-'))
        return 1;
    return !*e || strchr("0123456789-'", *e) || !strncmp(e, "TRUE", 4) || !strncmp(e, "FALSE", 5) ||
           !strncmp(e, "NULL", 4);
}

/* GROUP BY 1-2 keys (columns or expressions) with aggregates; HAVING sometimes. */
static int grouped(dt_rng_t *r, dt_gen_t *g, dt_rel_t *v, int nkeys, ss_buf_t *out, ss_buf_t *tail)
{
    for (int k = 0; k < nkeys; k++) {
        dt_col_t *gc = &g->group[g->ngroup++];
        ss_buf_t e = SS_BUF_INIT;
        dt_type_t t = dt_any_type(r);
        /* a column or an expression, never a bare literal (GROUP BY 2 would be a position) */
        if (dt_pct(r, 70) || !dt_column(g, t, 0, &e)) {
            for (int tries = 0; tries < 10; tries++) {
                ss_buf_reset(&e);
                dt_expr(g, t, dt_pct(r, 70) ? 0 : 1, &e);
                if (!is_literal(ss_buf_cstr(&e)))
                    break;
            }
        }
        if (is_literal(ss_buf_cstr(&e))) {
            g->ngroup--;
            ss_buf_free(&e);
            continue;
        }
        snprintf(gc->sql, sizeof gc->sql, "%s", ss_buf_cstr(&e));
        gc->type = t;
        if (e.len >= sizeof gc->sql) { /* too long to keep: a plain literal-free column instead */
            g->ngroup--;
            ss_buf_free(&e);
            return 0;
        }
        ss_buf_free(&e);
    }
    g->grouped = 1;
    ss_buf_puts(out, "SELECT ");
    for (int k = 0; k < g->ngroup; k++) {
        int i = v->ncols++;
        ss_buf_printf(out, "%s%s", i ? ", " : "", g->group[k].sql);
        alias(v, i, g->group[k].type, out);
    }
    int na = 1 + dt_int(r, 3);
    for (int a = 0; a < na; a++) {
        static const dt_type_t at[] = {DT_INT, DT_INT, DT_REAL, DT_TEXT, DT_BOOL, DT_NUM, DT_ARR};
        item(g, v, at[dt_int(r, g->pg ? 7 : 4)], dt_pct(r, 70) ? 0 : 1, out);
    }
    if (g->ngroup) {
        ss_buf_puts(tail, " GROUP BY ");
        for (int k = 0; k < g->ngroup; k++)
            ss_buf_printf(tail, "%s%s", k ? ", " : "", g->group[k].sql);
    }
    if (g->ngroup && dt_pct(r, 30)) {
        ss_buf_puts(tail, " HAVING ");
        dt_expr(g, DT_BOOL, 2, tail);
    }
    return 1;
}

static int s_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_t tail = SS_BUF_INIT, w = SS_BUF_INIT;
    g.grouped = 0;
    where(&g, &w, 40); /* WHERE sees input columns */
    int ok = grouped(r, &g, v, dt_pct(r, 20) ? 0 : 1 + dt_int(r, 2), out, &tail);
    if (ok)
        ss_buf_printf(out, " FROM %s%s%s", in->name, ss_buf_cstr(&w), ss_buf_cstr(&tail));
    ss_buf_free(&tail);
    ss_buf_free(&w);
    return ok;
}

/* ---- shapes over query structures: set operations, subqueries, FROM (SELECT), WITH, windows ---- */

/* A type every oracle can compare and order (no JSON or arrays). */
static int plain_type(dt_type_t t) { return t < DT_JSON; }

/* SELECT e1, ..., en FROM rel [WHERE ...] for the given column types (a set operation's operand). */
static void operand(dt_rng_t *r, const dt_rel_t *in, dt_rel_t *v, const dt_type_t *ts, int n, ss_buf_t *out)
{
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT ");
    for (int i = 0; i < n; i++) {
        if (v) {
            item(&g, v, ts[i], dt_pct(r, 60) ? 0 : 1, out);
        } else {
            ss_buf_puts(out, i ? ", " : "");
            dt_expr(&g, ts[i], dt_pct(r, 60) ? 0 : 1, out);
        }
    }
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 40);
}

/* ORDER BY every output column (each ASC or DESC, with its NULLs marker) [LIMIT k] [OFFSET m]. */
static int order_limit(dt_rng_t *r, const dt_rel_t *v, ss_buf_t *out)
{
    for (int i = 0; i < v->ncols; i++)
        if (!plain_type(v->types[i]))
            return 0;
    ss_buf_puts(out, " ORDER BY ");
    for (int i = 0; i < v->ncols; i++) {
        int desc = dt_pct(r, 40);
        ss_buf_printf(out, "%s%d%s%c", i ? ", " : "", i + 1, desc ? " DESC" : "", desc ? DT_DESC_END : DT_ASC_END);
    }
    if (dt_pct(r, 92))
        ss_buf_printf(out, " LIMIT %d", dt_int(r, 6) + (dt_pct(r, 10) ? 0 : 1));
    if (dt_pct(r, 30))
        ss_buf_printf(out, " OFFSET %d", dt_int(r, 4));
    return 1;
}

/* a UNION [ALL] b, a EXCEPT [ALL] b, a INTERSECT [ALL] b (sometimes a third operand, sometimes ORDER
 * BY ... LIMIT over the whole). SQLite has no EXCEPT ALL / INTERSECT ALL and applies every
 * operator left to right (PostgreSQL binds INTERSECT tighter), so a view compared with SQLite
 * never puts INTERSECT after another operator. */
static int s_setop(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    static const char *const ops[] = {" UNION ", " UNION ALL ", " EXCEPT ", " INTERSECT ", " EXCEPT ALL ",
                                      " INTERSECT ALL "};
    dt_type_t ts[3];
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        ts[i] = dt_any_type(r);
    operand(r, pick_rel(r, c, 1), v, ts, n, out);
    int nops = dt_pct(r, 25) ? 2 : 1, prev = -1;
    for (int k = 0; k < nops; k++) {
        int op = dt_int(r, dt_pgmode ? 6 : 4);
        if (!dt_pgmode && k > 0 && op == 3 && prev != 3)
            op = 0;
        prev = op;
        ss_buf_puts(out, ops[op]);
        operand(r, pick_rel(r, c, 1), NULL, ts, n, out);
    }
    if (dt_pct(r, 15))
        order_limit(r, v, out);
    return 1;
}

/* The columns of two relations with a comparable pair: *ka in a, *kb in b (-1 when none). */
static void key_pair(dt_rng_t *r, const dt_rel_t *a, const dt_rel_t *b, int *ka, int *kb)
{
    *kb = -1;
    *ka = dt_int(r, a->ncols);
    if (!usable(a->types[*ka]))
        return;
    for (int t = 0; t < 8 && *kb < 0; t++) {
        int x = dt_int(r, b->ncols);
        if (b->types[x] == a->types[*ka] || (a->types[*ka] <= DT_REAL && b->types[x] <= DT_REAL && dt_pct(r, 30)))
            *kb = x;
    }
}

/* Subqueries in expressions: [NOT] EXISTS (correlated), [NOT] IN (SELECT ...), scalar subqueries
 * (an aggregate, correlated or not) in WHERE and in the select list. */
static int s_subquery(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *a = pick_rel(r, c, 1), *b = pick_rel(r, c, 1);
    int ka, kb;
    key_pair(r, a, b, &ka, &kb);
    if (kb < 0)
        return 0;
    dt_gen_t g = {.rng = r, .pg = dt_pgmode}, gi = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, a, "o");
    scope_of(&gi, b, "i");
    ss_buf_t sub = SS_BUF_INIT, inner_where = SS_BUF_INIT;
    if (dt_pct(r, 40)) { /* a condition on the inner row alone */
        ss_buf_puts(&inner_where, " AND ");
        dt_expr(&gi, DT_BOOL, 1, &inner_where);
    }
    int kind = dt_int(r, 5), in_select = dt_pct(r, 30);
    if (a->types[ka] == DT_BOOL && (kind == 2 || kind == 3)) /* no MAX(boolean), no boolean <> count */
        kind = 0;
    switch (kind) {
    case 0: /* [NOT] EXISTS, correlated on the key pair */
        ss_buf_printf(&sub, "%sEXISTS (SELECT 1 FROM %s AS i WHERE i.%s = o.%s%s)", dt_pct(r, 35) ? "NOT " : "",
                      b->name, b->cols[kb], a->cols[ka], ss_buf_cstr(&inner_where));
        break;
    case 1: /* [NOT] IN, uncorrelated */
        ss_buf_printf(&sub, "(o.%s %sIN (SELECT i.%s FROM %s AS i WHERE TRUE%s))", a->cols[ka], dt_pct(r, 35) ? "NOT " : "",
                      b->cols[kb], b->name, ss_buf_cstr(&inner_where));
        break;
    case 2: { /* a correlated scalar aggregate compared with an outer column */
        static const char *const fns[] = {"COUNT(*)", "MAX(i.%s)", "MIN(i.%s)", "COUNT(i.%s)"};
        char fn[64];
        snprintf(fn, sizeof fn, fns[dt_int(r, 4)], b->cols[kb]);
        if (a->types[ka] == DT_TEXT && !strncmp(fn, "COUNT", 5))
            snprintf(fn, sizeof fn, "MAX(i.%s)", b->cols[kb]);
        ss_buf_printf(&sub, "(o.%s %s (SELECT %s FROM %s AS i WHERE i.%s = o.%s%s))", a->cols[ka],
                      dt_pct(r, 50) ? "<=" : "<>", fn, b->name, b->cols[kb], a->cols[ka], ss_buf_cstr(&inner_where));
        break;
    }
    case 3: /* an uncorrelated scalar aggregate */
        ss_buf_printf(&sub, "(o.%s %s (SELECT %s(i.%s) FROM %s AS i WHERE TRUE%s))", a->cols[ka], dt_pct(r, 50) ? ">=" : "=",
                      dt_pct(r, 50) ? "MAX" : "MIN", b->cols[kb], b->name, ss_buf_cstr(&inner_where));
        break;
    default: /* a correlated COUNT as a value */
        in_select = 1;
        ss_buf_printf(&sub, "(SELECT COUNT(*) FROM %s AS i WHERE i.%s = o.%s%s)", b->name, b->cols[kb], a->cols[ka],
                      ss_buf_cstr(&inner_where));
        break;
    }
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(&g, v, dt_any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    if (in_select) {
        int i = v->ncols++;
        ss_buf_printf(out, ", %s", ss_buf_cstr(&sub));
        alias(v, i, kind == 4 ? DT_INT : DT_BOOL, out);
        ss_buf_printf(out, " FROM %s AS o", a->name);
        where(&g, out, 30);
    } else {
        ss_buf_printf(out, " FROM %s AS o WHERE %s", a->name, ss_buf_cstr(&sub));
        if (dt_pct(r, 30)) {
            ss_buf_puts(out, dt_pct(r, 50) ? " AND " : " OR ");
            dt_expr(&g, DT_BOOL, 1, out);
        }
    }
    ss_buf_free(&sub);
    ss_buf_free(&inner_where);
    return 1;
}

/* A select or a grouping over one relation in scope g, FROM from_sql. */
static int body_over(dt_rng_t *r, dt_gen_t *g, dt_rel_t *v, const char *from_sql, ss_buf_t *out)
{
    if (dt_pct(r, 40)) {
        ss_buf_t tail = SS_BUF_INIT, w = SS_BUF_INIT;
        where(g, &w, 40);
        int ok = grouped(r, g, v, dt_pct(r, 20) ? 0 : 1 + dt_int(r, 2), out, &tail);
        if (ok)
            ss_buf_printf(out, " FROM %s%s%s", from_sql, ss_buf_cstr(&w), ss_buf_cstr(&tail));
        ss_buf_free(&tail);
        ss_buf_free(&w);
        return ok;
    }
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(g, v, dt_any_type(r), dt_pct(r, 50) ? 0 : 1, out);
    ss_buf_printf(out, " FROM %s", from_sql);
    where(g, out, 50);
    return 1;
}

static int s_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
static int s_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
static int s_distinct(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);

/* FROM (SELECT ...) AS q, or WITH q [(columns)] AS (SELECT ...): an inner query of another shape,
 * then a select or a grouping over it (a WITH query is sometimes read twice, joined to itself). */
static int s_derived(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    dt_rel_t q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "q");
    ss_buf_t inner = SS_BUF_INIT, from = SS_BUF_INIT;
    int k = dt_int(r, 4);
    int ok = k == 0 ? s_group(r, c, &q, &inner) : k == 1 ? s_distinct(r, c, &q, &inner)
           : k == 2 ? s_setop(r, c, &q, &inner) : s_select(r, c, &q, &inner);
    if (!ok || !q.ncols) {
        ss_buf_free(&inner);
        return 0;
    }
    int with = dt_pct(r, 50), collist = with && dt_pct(r, 40), self = with && dt_pct(r, 25);
    if (collist)
        for (int i = 0; i < q.ncols; i++)
            snprintf(q.cols[i], sizeof q.cols[i], "w%d", i);
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    if (with) {
        ss_buf_puts(out, "WITH q");
        for (int i = 0; collist && i < q.ncols; i++)
            ss_buf_printf(out, "%s%s", i ? ", " : " (", q.cols[i]);
        ss_buf_printf(out, "%s AS (%s) ", collist ? ")" : "", ss_buf_cstr(&inner));
        int kk = dt_int(r, q.ncols);
        if (self && usable(q.types[kk])) {
            scope_of(&g, &q, "x");
            scope_of(&g, &q, "y");
            ss_buf_printf(&from, "q AS x JOIN q AS y ON x.%s = y.%s", q.cols[kk], q.cols[kk]);
        } else {
            scope_of(&g, &q, NULL);
            ss_buf_puts(&from, "q");
        }
    } else {
        int qual = dt_pct(r, 50);
        scope_of(&g, &q, qual ? "q" : NULL);
        ss_buf_printf(&from, "(%s) AS q", ss_buf_cstr(&inner));
    }
    ok = body_over(r, &g, v, ss_buf_cstr(&from), out);
    ss_buf_free(&inner);
    ss_buf_free(&from);
    return ok;
}

/* Window functions: ROW_NUMBER/RANK/DENSE_RANK or a windowed aggregate OVER (PARTITION BY ..
 * ORDER BY ..); or a per-partition top-N: a FROM subquery numbering rows, filtered on the number.
 * ROW_NUMBER orders by every (orderable) column of the input, so that the numbers do not depend
 * on how ties are broken. */
static int s_window(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    scope_of(&g, in, NULL);
    int part = -1;
    for (int t = 0; t < 3 && part < 0; t++) {
        int x = dt_int(r, in->ncols);
        if (usable(in->types[x]) && dt_pct(r, 75))
            part = x;
    }
    ss_buf_t keys = SS_BUF_INIT, fn = SS_BUF_INIT;
    int kind = dt_int(r, 100), rownum = kind < 35 || kind >= 85, nkeys = 0;
    dt_type_t wt = DT_INT;
    if (rownum) {
        ss_buf_puts(&fn, "ROW_NUMBER()");
        for (int i = 0; i < in->ncols; i++) {
            char key[40];
            if (usable(in->types[i]))
                snprintf(key, sizeof key, "%s", in->cols[i]);
            else if (dt_pgmode) /* JSON has no order: its text has (compact in both) */
                snprintf(key, sizeof key, "(%s)::TEXT", in->cols[i]);
            else
                continue; /* a column SQLite's views cannot see: rows equal on the rest look alike */
            ss_buf_puts(&keys, nkeys++ ? ", " : "");
            dt_order_key(&g, key, &keys);
        }
    } else {
        int x = dt_int(r, in->ncols);
        if (kind < 60)
            ss_buf_puts(&fn, dt_pct(r, 50) ? "RANK()" : "DENSE_RANK()");
        else if (in->types[x] <= DT_REAL && dt_pct(r, 70)) {
            static const char *const fns[] = {"SUM", "MIN", "MAX", "COUNT", "AVG"};
            int f = dt_int(r, 5);
            ss_buf_printf(&fn, "%s(%s)", fns[f], in->cols[x]);
            wt = f == 4 ? DT_REAL : f == 3 ? DT_INT : in->types[x];
        } else
            ss_buf_puts(&fn, "COUNT(*)");
        if (kind < 60 || dt_pct(r, 60))
            for (int t = 0; t < 2; t++) {
                int y = dt_int(r, in->ncols);
                if (usable(in->types[y]) && (t == 0 || dt_pct(r, 40))) {
                    ss_buf_puts(&keys, nkeys++ ? ", " : "");
                    dt_order_key(&g, in->cols[y], &keys);
                }
            }
    }
    if (!nkeys && kind < 85 && (rownum || kind < 60)) { /* a ranking needs something to order by */
        ss_buf_free(&keys);
        ss_buf_free(&fn);
        return 0;
    }
    ss_buf_t over = SS_BUF_INIT;
    ss_buf_puts(&over, " OVER (");
    if (part >= 0)
        ss_buf_printf(&over, "PARTITION BY %s%s", in->cols[part], nkeys ? " " : "");
    if (nkeys)
        ss_buf_printf(&over, "ORDER BY %s", ss_buf_cstr(&keys));
    ss_buf_putc(&over, ')');
    int topn = (rownum && kind >= 85) || (!rownum && kind < 60 && dt_pct(r, 40));
    int n = 1 + dt_int(r, 3);
    if (topn) {
        /* SELECT cols [, rn] FROM (SELECT cols, ROW_NUMBER() OVER (...) AS rn FROM in) AS t WHERE rn <= N */
        dt_gen_t go = {.rng = r, .pg = dt_pgmode};
        scope_of(&go, in, "t");
        ss_buf_puts(out, "SELECT ");
        for (int i = 0; i < n; i++)
            item(&go, v, dt_any_type(r), dt_pct(r, 60) ? 0 : 1, out);
        if (dt_pct(r, 50)) {
            int i = v->ncols++;
            ss_buf_puts(out, ", t.rn");
            alias(v, i, DT_INT, out);
        }
        ss_buf_puts(out, " FROM (SELECT ");
        for (int i = 0; i < in->ncols; i++)
            ss_buf_printf(out, "%s, ", in->cols[i]);
        static const char *const cmp[] = {"<= %d", "< %d", "= %d"};
        ss_buf_printf(out, "%s%s AS rn FROM %s) AS t WHERE t.rn ", ss_buf_cstr(&fn), ss_buf_cstr(&over), in->name);
        ss_buf_printf(out, cmp[dt_int(r, 3)], 1 + dt_int(r, 3));
    } else {
        ss_buf_puts(out, "SELECT ");
        for (int i = 0; i < n; i++)
            item(&g, v, dt_any_type(r), 0, out);
        int i = v->ncols++;
        ss_buf_printf(out, ", %s%s", ss_buf_cstr(&fn), ss_buf_cstr(&over));
        alias(v, i, wt, out);
        ss_buf_printf(out, " FROM %s", in->name);
        where(&g, out, 30);
    }
    ss_buf_free(&over);
    ss_buf_free(&keys);
    ss_buf_free(&fn);
    return 1;
}

/* Two relations joined: [INNER], LEFT, RIGHT, FULL [OUTER] JOIN ... ON equal columns (with a
 * residual condition sometimes), a self join USING (column), CROSS JOIN, or FROM a, b WHERE
 * a.x = b.y; then a select or a grouping. */
static int s_join(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *a = pick_rel(r, c, 1), *b = pick_rel(r, c, 1);
    int using = a == b;
    int ka, kb;
    if (using) {
        ka = kb = dt_int(r, a->ncols);
        if (!usable(a->types[ka]))
            return 0;
    } else {
        key_pair(r, a, b, &ka, &kb);
        if (kb < 0)
            return 0;
    }
    dt_gen_t g = {.rng = r, .pg = dt_pgmode};
    if (using && g.ncols < 24) { /* the joined column, unqualified */
        snprintf(g.cols[g.ncols].sql, sizeof g.cols[g.ncols].sql, "%s", a->cols[ka]);
        g.cols[g.ncols++].type = a->types[ka];
    }
    scope_of(&g, a, "x");
    scope_of(&g, b, "y");
    ss_buf_t on = SS_BUF_INIT, w = SS_BUF_INIT, tail = SS_BUF_INIT;
    int jt = dt_int(r, 100);
    static const char *const inner[] = {"JOIN", "INNER JOIN"}, *const left[] = {"LEFT JOIN", "LEFT OUTER JOIN"},
                             *const right[] = {"RIGHT JOIN", "RIGHT OUTER JOIN"}, *const full[] = {"FULL JOIN", "FULL OUTER JOIN"};
    const char *join = jt < 40 ? inner[dt_int(r, 2)] : jt < 60 ? left[dt_int(r, 2)] : jt < 72 ? right[dt_int(r, 2)]
                     : jt < 84 ? full[dt_int(r, 2)] : NULL;
    const char *as = dt_pct(r, 50) ? "AS " : "";
    if (using) {
        ss_buf_printf(&on, " FROM %s %sx %s %s y USING (%s)", a->name, as, join ? join : "JOIN", b->name, a->cols[ka]);
    } else if (join) {
        ss_buf_printf(&on, " FROM %s %sx %s %s y ON x.%s = y.%s", a->name, as, join, b->name, a->cols[ka], b->cols[kb]);
        if (dt_pct(r, 25)) {
            ss_buf_puts(&on, " AND ");
            dt_expr(&g, DT_BOOL, 1, &on);
        }
    } else if (jt < 92) { /* a cross join: a WHERE keeps it small most of the time */
        ss_buf_printf(&on, " FROM %s %sx CROSS JOIN %s y", a->name, as, b->name);
    } else {
        ss_buf_printf(&on, " FROM %s %sx, %s y WHERE x.%s = y.%s", a->name, as, b->name, a->cols[ka], b->cols[kb]);
    }
    int has_where = strstr(ss_buf_cstr(&on), " WHERE ") != NULL;
    if (has_where && dt_pct(r, 30)) {
        ss_buf_puts(&w, " AND ");
        dt_expr(&g, DT_BOOL, 2, &w);
    } else if (!has_where)
        where(&g, &w, !join && !using ? 80 : 30);
    int ok = 1;
    if (dt_pct(r, 35))
        ok = grouped(r, &g, v, 1 + dt_int(r, 2), out, &tail);
    else {
        ss_buf_puts(out, "SELECT ");
        int n = 1 + dt_int(r, 4);
        for (int i = 0; i < n; i++)
            item(&g, v, dt_any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    }
    if (ok)
        ss_buf_printf(out, "%s%s%s", ss_buf_cstr(&on), ss_buf_cstr(&w), ss_buf_cstr(&tail));
    ss_buf_free(&on);
    ss_buf_free(&w);
    ss_buf_free(&tail);
    return ok;
}

/* ORDER BY every output column (each ASC or DESC) LIMIT k, over a select or a grouping. */
static int s_topk(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    int ok = dt_pct(r, 30) ? s_group(r, c, v, out) : s_select(r, c, v, out);
    return ok && order_limit(r, v, out);
}

/* The query-shape generators: to test a new query feature, add an entry here. */
const dt_shape_t dt_shapes[] = {
    {"select", 20, s_select},
    {"star", 6, s_star},
    {"distinct", 8, s_distinct},
    {"group", 25, s_group},
    {"join", 20, s_join},
    {"topk", 12, s_topk},
    {"setop", 10, s_setop},
    {"subquery", 12, s_subquery},
    {"derived", 10, s_derived},
    {"window", 12, s_window},
    {"time", 8, dt_s_time_select},      /* gen_time.c: PostgreSQL's dialect only */
    {"time group", 5, dt_s_time_group},
    {"time window", 8, dt_s_time_window},
};
const int dt_nshapes = (int)(sizeof dt_shapes / sizeof *dt_shapes);
