/*
 * plan_agg.c — one aggregate call of a GROUP node: its function (COUNT, SUM,
 * MIN, MAX, AVG, BOOL_AND / EVERY, BOOL_OR, VARIANCE / VAR_SAMP, VAR_POP,
 * STDDEV / STDDEV_SAMP, STDDEV_POP, STRING_AGG, ARRAY_AGG, JSON_AGG), its
 * argument, DISTINCT, FILTER (WHERE ..) and, for the ordered lists, ORDER BY
 * inside the call; argument and result types; and for VAR/STDDEV the helper
 * aggregate Σx² that the GROUP node keeps right after it (retraction-safe
 * sums, never a running estimate).
 */
#include "plan_int.h"

#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static const struct {
    const char *name;
    ss_agg_fn_t fn;
} AGGS[] = {
    {"COUNT", SS_AGG_COUNT},        {"SUM", SS_AGG_SUM},           {"MIN", SS_AGG_MIN},
    {"MAX", SS_AGG_MAX},            {"AVG", SS_AGG_AVG},           {"BOOL_AND", SS_AGG_BOOL_AND},
    {"EVERY", SS_AGG_BOOL_AND},     {"BOOL_OR", SS_AGG_BOOL_OR},   {"VARIANCE", SS_AGG_VAR_SAMP},
    {"VAR_SAMP", SS_AGG_VAR_SAMP},  {"VAR_POP", SS_AGG_VAR_POP},   {"STDDEV", SS_AGG_STDDEV_SAMP},
    {"STDDEV_SAMP", SS_AGG_STDDEV_SAMP}, {"STDDEV_POP", SS_AGG_STDDEV_POP},
    {"STRING_AGG", SS_AGG_STRING_AGG}, {"ARRAY_AGG", SS_AGG_ARRAY_AGG}, {"JSON_AGG", SS_AGG_JSON_AGG},
};

int ss__agg_fn(const char *name)
{
    for (size_t i = 0; name && i < SS_ARRAY_LEN(AGGS); i++)
        if (ss_strcaseeq(name, AGGS[i].name))
            return (int)AGGS[i].fn;
    return -1;
}

int ss__agg_needs_helper(const ss_ast_expr_t *a)
{
    int fn = ss__agg_fn(a->name);
    return fn == SS_AGG_VAR_SAMP || fn == SS_AGG_VAR_POP || fn == SS_AGG_STDDEV_SAMP || fn == SS_AGG_STDDEV_POP;
}

static int is_list(int fn) { return fn == SS_AGG_STRING_AGG || fn == SS_AGG_ARRAY_AGG || fn == SS_AGG_JSON_AGG; }

static int numeric(ss_coltype_t t)
{
    return t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC || t == SS_COL_BOOL || t == SS_COL_ANY;
}

/* x * x, for the helper Σx². */
static ss_expr_t *square(const ss_expr_t *x)
{
    ss_expr_t *e = ss_expr_new(SS_EX_BINARY);
    if (!e || !(e->args = calloc(2, sizeof *e->args))) {
        free(e);
        return NULL;
    }
    e->op = SS_OP_MUL;
    e->nargs = 2;
    e->type = x->type == SS_COL_INT || x->type == SS_COL_BOOL ? SS_COL_INT : x->type;
    if (!(e->args[0] = ss_expr_copy(x)) || !(e->args[1] = ss_expr_copy(x))) {
        ss_expr_free(e);
        return NULL;
    }
    return e;
}

int ss__plan_agg(pctx_t *x, const ss_ast_expr_t *a, const ss__scope_t *sc, ss_plan_agg_t *pa, ss_plan_agg_t *helper,
                 ss_coltype_t *type)
{
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    int fn = ss__agg_fn(a->name);
    int nargs = a->args ? a->args->n : 0;
    int star = nargs == 1 && a->args->items[0]->kind == SS_AX_STAR;
    int want = fn == SS_AGG_STRING_AGG ? 2 : 1;
    if (fn < 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: unknown aggregate %s", a->span.line, a->span.col,
                         a->name);
    if (nargs != want && !(fn == SS_AGG_COUNT && nargs == 0))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s takes %s", a->span.line, a->span.col, a->name,
                         fn == SS_AGG_COUNT ? "one argument or *" : want == 2 ? "two arguments (value, separator)"
                                                                          : "one argument");
    if (star && fn != SS_AGG_COUNT)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s takes one argument", a->span.line, a->span.col,
                         a->name);
    pa->fn = (ss_agg_fn_t)fn;
    pa->distinct = a->distinct;
    int rc = SS_OK;
    if (nargs && !star)
        rc = ss__compile(&cc, a->args->items[0], &pa->arg);
    if (!rc && a->filter)
        rc = ss__compile(&cc, a->filter, &pa->filter);
    if (!rc && a->filter && !pa->arg) { /* COUNT(*) FILTER: count the rows that pass */
        if (!(pa->arg = ss_expr_new(SS_EX_LIT)))
            return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory");
        pa->arg->lit = ss_val_int(1);
        pa->arg->type = SS_COL_INT;
    }
    if (!rc && a->norder) {
        /* (only the list aggregates have an order; elsewhere, as in PostgreSQL, it changes nothing) */
        if (a->norder > 16)
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many ORDER BY terms in %s", a->span.line,
                             a->span.col, a->name);
        if (!(pa->order = calloc((size_t)a->norder, sizeof *pa->order)))
            return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory");
        for (int i = 0; !rc && i < a->norder; i++) {
            rc = ss__compile(&cc, a->order[i].expr, &pa->order[i].expr);
            pa->order[i].desc = a->order[i].desc;
            pa->norder = i + 1;
        }
        if (!rc && a->distinct) /* as PostgreSQL: DISTINCT orders by the argument itself */
            for (int i = 0; !rc && i < a->norder; i++) {
                char *k1 = ss__ast_key(a->order[i].expr), *k2 = ss__ast_key(a->args->items[0]);
                if (!k1 || !k2)
                    rc = ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory");
                else if (strcmp(k1, k2))
                    rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                   "%d:%d: in an aggregate with DISTINCT, ORDER BY expressions must appear in the "
                                   "argument list", a->order[i].expr->span.line, a->order[i].expr->span.col);
                free(k1);
                free(k2);
            }
    }
    if (rc)
        return rc;
    if (fn == SS_AGG_STRING_AGG) {
        const ss_ast_expr_t *sep = a->args->items[1];
        if (sep->kind != SS_AX_LITERAL || (sep->lit.t != SS_TEXT && sep->lit.t != SS_NULL))
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                             "%d:%d: STRING_AGG's separator must be a text literal", sep->span.line, sep->span.col);
        if (sep->lit.t == SS_TEXT && !(pa->sep = ss_strndup(sep->lit.u.str.s, sep->lit.u.str.n)))
            return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory");
    }
    ss_coltype_t at = pa->arg ? pa->arg->type : SS_COL_INT;
    /* NUMERIC: SUM is an exact decimal sum, MIN/MAX/COUNT DISTINCT compare numerically
     * (operators/group.c), AVG and VAR/STDDEV give REAL; the list aggregates do not take it yet */
    if (at == SS_COL_NUMERIC && (is_list(fn) || fn == SS_AGG_BOOL_AND || fn == SS_AGG_BOOL_OR))
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                         "%d:%d: %s over NUMERIC is not supported yet (cast the argument: %s(x::DOUBLE))",
                         a->span.line, a->span.col, a->name, a->name);
    if (fn != SS_AGG_COUNT && fn != SS_AGG_JSON_AGG && at == SS_COL_JSON)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s over JSON: extract a field first (j->>'key')",
                         a->span.line, a->span.col, a->name);
    switch (fn) {
    case SS_AGG_SUM:
    case SS_AGG_AVG:
    case SS_AGG_VAR_SAMP:
    case SS_AGG_VAR_POP:
    case SS_AGG_STDDEV_SAMP:
    case SS_AGG_STDDEV_POP:
        if (!numeric(at))
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs a number, got %s", a->span.line,
                             a->span.col, a->name, ss_coltype_name(at));
        break;
    case SS_AGG_BOOL_AND:
    case SS_AGG_BOOL_OR:
        if (at != SS_COL_BOOL && at != SS_COL_ANY)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs a boolean, got %s", a->span.line,
                             a->span.col, a->name, ss_coltype_name(at));
        break;
    default:
        break;
    }
    if (helper && (fn == SS_AGG_VAR_SAMP || fn == SS_AGG_VAR_POP || fn == SS_AGG_STDDEV_SAMP || fn == SS_AGG_STDDEV_POP)) {
        if (a->distinct)
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: %s(DISTINCT ..) is not supported",
                             a->span.line, a->span.col, a->name);
        helper->fn = SS_AGG_SUMSQ;
        if (!(helper->arg = square(pa->arg)) || (pa->filter && !(helper->filter = ss_expr_copy(pa->filter))))
            return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory");
    }
    *type = fn == SS_AGG_COUNT ? SS_COL_INT
            : fn == SS_AGG_AVG || (fn >= SS_AGG_VAR_SAMP && fn <= SS_AGG_STDDEV_POP) ? SS_COL_REAL
            : fn == SS_AGG_BOOL_AND || fn == SS_AGG_BOOL_OR ? SS_COL_BOOL
            : fn == SS_AGG_JSON_AGG ? SS_COL_JSON
            : is_list(fn) ? SS_COL_TEXT
            : at == SS_COL_BOOL && fn == SS_AGG_SUM ? SS_COL_INT : at;
    return SS_OK;
}
