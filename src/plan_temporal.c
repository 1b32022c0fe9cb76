/*
 * plan_temporal.c — temporal filters (issue 13): WHERE conjuncts that compare a
 * row's time with NOW() (or CURRENT_TIMESTAMP, LOCALTIMESTAMP, CURRENT_DATE),
 * such as
 *     WHERE ts > NOW() - INTERVAL '5 minutes'
 *     WHERE ts BETWEEN NOW() - INTERVAL '1 hour' AND NOW()
 *     WHERE NOW() < expires_at
 * become one TEMPORAL node that keeps the rows valid now and retracts (or
 * admits) them when time passes, as Materialize maintains mz_now() filters.
 *
 * Each conjunct is brought to the form  v <op> floor(now / g) * g + off  where v
 * is an expression over the row (a TIMESTAMP, TIMESTAMPTZ or DATE), g the
 * granularity of the NOW side (1 µs, or a day for CURRENT_DATE) and off a
 * constant interval; the operator turns that into the interval of wall-clock
 * time [from, until) during which the row passes. The node keeps the row
 * expressions in exprs[k] and, per bound, the option bound<k> = "<op> <g> <off
 * as months days µs>" (op one of lt le gt ge eq: the row side compared with the
 * NOW side). Everything else about NOW() is refused: a view cannot depend on the
 * clock in any other way and stay maintained.
 */
#include "plan_int.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nomem(ss__pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

/* Does e call NOW() & co. (as a call or as a bare CURRENT_TIMESTAMP name)? */
static int has_now(const ss_ast_expr_t *e)
{
    if (!e)
        return 0;
    if ((e->kind == SS_AX_FUNC || (e->kind == SS_AX_COLUMN && !e->table)) && ss__is_now_func(e->name) &&
        (e->kind == SS_AX_FUNC || !ss_strcaseeq(e->name, "NOW")))
        return 1;
    if (has_now(e->left) || has_now(e->right))
        return 1;
    for (int i = 0; e->args && i < e->args->n; i++)
        if (has_now(e->args->items[i]))
            return 1;
    return 0;
}

int ss__is_temporal(const ss_ast_expr_t *e) { return has_now(e); }

typedef struct bound {
    const ss_ast_expr_t *row;  /* the row side */
    const char *op;            /* row side <op> NOW side */
    int64_t g;                 /* granularity of the NOW side (µs) */
    const ss_ast_expr_t *off;  /* constant interval added to NOW (NULL: none) */
    int off_sign;
    const ss_ast_expr_t *at;   /* for errors */
} bound_t;

static int fail(ss__pctx_t *x, const ss_ast_expr_t *at, const char *what)
{
    return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                     "%d:%d: %s; a temporal filter compares a row's time with NOW() plus or minus a constant "
                     "interval, in WHERE, joined by AND: ts > NOW() - INTERVAL '5 minutes', ts BETWEEN NOW() - "
                     "INTERVAL '1 hour' AND NOW()",
                     at->span.line, at->span.col, what);
}

/* The NOW side: NOW() | NOW() ± c | c + NOW(). */
static int now_side(ss__pctx_t *x, const ss_ast_expr_t *e, bound_t *b)
{
    b->off = NULL;
    b->off_sign = 1;
    const ss_ast_expr_t *n = e;
    if (e->kind == SS_AX_BINARY && (e->op == SS_OP_ADD || e->op == SS_OP_SUB)) {
        int left = has_now(e->left);
        if (left == has_now(e->right))
            return fail(x, e, "NOW() appears on both sides of + or -");
        if (!left && e->op == SS_OP_SUB)
            return fail(x, e, "an interval minus NOW() is not a time");
        n = left ? e->left : e->right;
        b->off = left ? e->right : e->left;
        b->off_sign = e->op == SS_OP_SUB ? -1 : 1;
    }
    if (!((n->kind == SS_AX_FUNC && (!n->args || n->args->n == 0)) || n->kind == SS_AX_COLUMN) || !ss__is_now_func(n->name))
        return fail(x, n, "NOW() may only be shifted by a constant interval here");
    b->g = ss_strcaseeq(n->name, "CURRENT_DATE") ? SS_USEC_PER_DAY : 1;
    return SS_OK;
}

static const char *flip(const char *op)
{
    return !strcmp(op, "lt") ? "gt" : !strcmp(op, "gt") ? "lt" : !strcmp(op, "le") ? "ge" : !strcmp(op, "ge") ? "le" : op;
}

static int comparison(ss__pctx_t *x, const ss_ast_expr_t *e, ss_ast_op_t op, const ss_ast_expr_t *l,
                      const ss_ast_expr_t *r, bound_t *b)
{
    static const struct { ss_ast_op_t op; const char *name; } ops[] = {
        {SS_OP_LT, "lt"}, {SS_OP_LE, "le"}, {SS_OP_GT, "gt"}, {SS_OP_GE, "ge"}, {SS_OP_EQ, "eq"},
    };
    b->op = NULL;
    for (size_t i = 0; i < SS_ARRAY_LEN(ops); i++)
        if (ops[i].op == op)
            b->op = ops[i].name;
    if (!b->op)
        return fail(x, e, "NOW() must be compared with <, <=, >, >=, = or BETWEEN");
    int ln = has_now(l), rn = has_now(r);
    if (ln == rn)
        return fail(x, e, ln ? "NOW() is on both sides of the comparison" : "NOW() is inside an expression");
    b->row = ln ? r : l;
    if (ln)
        b->op = flip(b->op);
    b->at = e;
    return now_side(x, ln ? l : r, b);
}

/* The bounds of one WHERE conjunct (a comparison, or BETWEEN: two). */
static int conjunct(ss__pctx_t *x, const ss_ast_expr_t *e, bound_t *out, int *n)
{
    if (e->kind == SS_AX_BETWEEN && e->op != SS_OP_NOT && e->args && e->args->n == 2) {
        int rc = comparison(x, e, SS_OP_GE, e->left, e->args->items[0], &out[(*n)]);
        if (!rc)
            (*n)++, rc = comparison(x, e, SS_OP_LE, e->left, e->args->items[1], &out[(*n)]);
        if (!rc)
            (*n)++;
        return rc;
    }
    if (e->kind != SS_AX_BINARY)
        return fail(x, e, "NOW() must be compared with the row's time");
    int rc = comparison(x, e, e->op, e->left, e->right, &out[*n]);
    if (!rc)
        (*n)++;
    return rc;
}

/* Compiles the constant offset to an interval value. */
static int offset_of(ss__pctx_t *x, const ss__cctx_t *cc, const bound_t *b, ss_interval_t *iv)
{
    memset(iv, 0, sizeof *iv);
    if (!b->off)
        return SS_OK;
    ss_expr_t *e = NULL;
    int rc = ss__compile(cc, b->off, &e);
    if (!rc && e->kind == SS_EX_LIT && e->lit.t == SS_TEXT) /* NOW() - '5 minutes' */
        rc = ss__coerce(cc, b->off, &e, SS_COL_INTERVAL, "-");
    if (!rc && b->g == SS_USEC_PER_DAY && e->kind == SS_EX_LIT && e->lit.t == SS_INT) { /* CURRENT_DATE - 7 */
        iv->days = (int32_t)(b->off_sign * e->lit.u.i);
    } else if (!rc && (e->kind != SS_EX_LIT || e->lit.t != SS_IVL)) {
        rc = fail(x, b->off, "NOW() may only be shifted by a constant interval (INTERVAL '5 minutes')");
    } else if (!rc) {
        *iv = e->lit.u.iv;
        if (b->off_sign < 0)
            *iv = (ss_interval_t){-iv->us, -iv->days, -iv->months};
    }
    ss_expr_free(e);
    return rc;
}

int ss__plan_temporal(ss__pctx_t *x, const ss_ast_expr_t *const *cj, int ncj, const ss__scope_t *sc,
                      ss_plan_node_t **cur)
{
    bound_t b[64];
    int nb = 0, rc = SS_OK;
    for (int i = 0; i < ncj && !rc; i++) {
        if (!has_now(cj[i]))
            continue;
        if (nb >= 62)
            return fail(x, cj[i], "too many temporal conditions (at most 62)");
        rc = conjunct(x, cj[i], b, &nb);
    }
    if (rc || !nb)
        return rc;
    ss_plan_node_t *t = ss__new_node(x, SS_PN_TEMPORAL, *cur, NULL, "temporal filter");
    if (!t || !(t->schema = ss_schema_copy((*cur)->schema)) || !(t->exprs = calloc((size_t)nb, sizeof *t->exprs)))
        return nomem(x);
    ss__cctx_t cc = {.scope = sc, .allow_now = 1, .err = x->err, .errsz = x->errsz};
    for (int k = 0; k < nb && !rc; k++) {
        ss_interval_t iv;
        if ((rc = offset_of(x, &cc, &b[k], &iv)))
            break;
        cc.allow_now = 0;
        rc = ss__compile(&cc, b[k].row, &t->exprs[k]);
        cc.allow_now = 1;
        if (rc)
            break;
        t->nexprs = k + 1;
        ss_expr_t *e = t->exprs[k];
        if (e->kind == SS_EX_LIT && e->lit.t == SS_TEXT) /* '2024-01-01' < NOW() */
            rc = ss__coerce(&cc, b[k].row, &t->exprs[k], SS_COL_TIMESTAMPTZ, "comparison");
        else if (!ss_coltype_is_time(e->type))
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: NOW() is compared with %s; a temporal filter compares it with a TIMESTAMP, "
                           "TIMESTAMPTZ or DATE", b[k].row->span.line, b[k].row->span.col,
                           ss_coltype_name(e->type));
        char name[16], val[96];
        snprintf(name, sizeof name, "bound%d", k);
        snprintf(val, sizeof val, "%s %lld %d %d %lld", b[k].op, (long long)b[k].g, iv.months, iv.days,
                 (long long)iv.us);
        if (!rc && ss__opts_add(&t->nopts, &t->opts, name, val))
            rc = nomem(x);
    }
    if (!rc)
        *cur = t;
    return rc;
}

const char *ss__time_strategy(const ss_plan_node_t *n)
{
    switch (n->kind) {
    case SS_PN_TEMPORAL:
        return "each changed row's validity interval in wall-clock time, kept in SQLite; rows are retracted "
               "(or admitted) by a timer when NOW() passes their bound, not at the next delta";
    case SS_PN_TIMEWIN: {
        const char *w = ss_plan_opt(n, "window");
        if (w && ss_strcaseeq(w, "session"))
            return "sessions per key kept in SQLite: a row that starts, extends or merges sessions retracts "
                   "the rows of the sessions it changes and emits them with their new bounds";
        return "stateless: each changed row goes to its window(s) (HOP: size/slide of them), window_start "
               "and window_end appended";
    }
    case SS_PN_EOWC:
        return "holds each window's changes until the watermark passes its end, then emits them once (the "
               "window's final rows) and forgets them";
    default:
        return "";
    }
}
