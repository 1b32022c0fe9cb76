/*
 * plan_window.c — window functions of a SELECT list: one WINDOW node per
 * distinct OVER (PARTITION BY .. ORDER BY ..), appending one column per
 * function (recorded in the premap, so that the SELECT list, ORDER BY and the
 * enclosing query see it as a column); partition expressions that are not
 * plain columns are computed first by a PROJECT. And the top-N pushdown: an
 * enclosing `WHERE rn <= N` on a FROM subquery's ranking column makes its
 * WINDOW node keep only the first N ranks per partition (maintained
 * incrementally as per-partition state that re-reads only those rows).
 */
#include "plan_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

static const struct {
    const char *name;
    ss_win_fn_t fn;
    int nargs; /* -1: 0 or 1 (COUNT) */
} WFNS[] = {
    {"ROW_NUMBER", SS_WIN_ROW_NUMBER, 0}, {"RANK", SS_WIN_RANK, 0}, {"DENSE_RANK", SS_WIN_DENSE_RANK, 0},
    {"COUNT", SS_WIN_COUNT, -1},         {"SUM", SS_WIN_SUM, 1},   {"AVG", SS_WIN_AVG, 1},
    {"MIN", SS_WIN_MIN, 1},              {"MAX", SS_WIN_MAX, 1},
};

int ss__has_window(const ss_ast_expr_t *e)
{
    if (!e || e->kind == SS_AX_SUBQUERY || e->kind == SS_AX_EXISTS || e->kind == SS_AX_IN_SELECT)
        return 0;
    if (e->kind == SS_AX_FUNC && e->over)
        return 1;
    if (ss__has_window(e->left) || ss__has_window(e->right))
        return 1;
    for (int i = 0; e->args && i < e->args->n; i++)
        if (ss__has_window(e->args->items[i]))
            return 1;
    return 0;
}

#define MAXW 32

static void collect(const ss_ast_expr_t *e, const ss_ast_expr_t **out, int *n)
{
    if (!e || e->kind == SS_AX_SUBQUERY || e->kind == SS_AX_EXISTS || e->kind == SS_AX_IN_SELECT)
        return;
    if (e->kind == SS_AX_FUNC && e->over) {
        if (*n < MAXW + 1)
            out[(*n)++] = e;
        return;
    }
    collect(e->left, out, n);
    collect(e->right, out, n);
    for (int i = 0; e->args && i < e->args->n; i++)
        collect(e->args->items[i], out, n);
}

/* Canonical text of a call's OVER (...), to give equal windows one node; malloc'd, NULL on OOM. */
static char *spec_key(const ss_ast_window_t *w)
{
    ss_buf_t b = SS_BUF_INIT;
    int rc = 0;
    for (int i = 0; !rc && w->partition && i < w->partition->n; i++) {
        char *k = ss__ast_key(w->partition->items[i]);
        rc = !k || ss_buf_printf(&b, "%s, ", k);
        free(k);
    }
    rc = rc || ss_buf_puts(&b, "|");
    for (int i = 0; !rc && i < w->norder; i++) {
        char *k = ss__ast_key(w->order[i].expr);
        rc = !k || ss_buf_printf(&b, "%s%s, ", k, w->order[i].desc ? " DESC" : "");
        free(k);
    }
    if (rc) {
        ss_buf_free(&b);
        return NULL;
    }
    return ss_buf_take(&b);
}

static int check_call(pctx_t *x, const ss_ast_expr_t *e, ss_win_fn_t *fn)
{
    int k = -1;
    for (size_t i = 0; i < SS_ARRAY_LEN(WFNS) && k < 0; i++)
        if (ss_strcaseeq(e->name, WFNS[i].name))
            k = (int)i;
    if (k < 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                         "%d:%d: window function %s is not supported (ROW_NUMBER, RANK, DENSE_RANK, COUNT, SUM, AVG, "
                         "MIN and MAX are)", e->span.line, e->span.col, e->name);
    int nargs = e->args ? e->args->n : 0;
    int star = nargs == 1 && e->args->items[0]->kind == SS_AX_STAR;
    if ((WFNS[k].nargs >= 0 && nargs != WFNS[k].nargs) || nargs > 1 || (star && WFNS[k].fn != SS_WIN_COUNT))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s takes %s", e->span.line, e->span.col, e->name,
                         WFNS[k].nargs == 0 ? "no arguments" : WFNS[k].nargs < 0 ? "one argument or *" : "one argument");
    if (e->distinct || e->filter || e->norder)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                         "%d:%d: DISTINCT, FILTER and ORDER BY inside a window function call are not supported",
                         e->span.line, e->span.col);
    *fn = WFNS[k].fn;
    return SS_OK;
}

/* One WINDOW node for the calls calls[0..nc) sharing one OVER (...). */
static int window_node(pctx_t *x, const ss_ast_expr_t **calls, int nc, ss__scope_t *sc, ss_plan_node_t **cur,
                       ss__premap_t *pm)
{
    const ss_ast_window_t *w = calls[0]->over;
    int np = w->partition ? w->partition->n : 0, pcols[32];
    if (np > 32)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many PARTITION BY terms", w->span.line,
                         w->span.col);
    for (int i = 0; i < np; i++) {
        ss_coltype_t t;
        int rc = ss__expr_column(x, w->partition->items[i], sc, cur, "partition key", &pcols[i], &t);
        if (rc)
            return rc;
    }
    ss_plan_node_t *in = *cur;
    int base = in->schema->n;
    ss_plan_node_t *n = ss__new_node(x, SS_PN_WINDOW, in, NULL, "window");
    if (!n || !(n->schema = ss_schema_new(base + nc)) || !(n->wfns = calloc((size_t)nc, sizeof *n->wfns)) ||
        (np && !(n->group_cols = calloc((size_t)np, sizeof(int)))) ||
        (w->norder && !(n->order = calloc((size_t)w->norder, sizeof *n->order))))
        return nomem(x);
    n->ngroup = np;
    if (np)
        memcpy(n->group_cols, pcols, (size_t)np * sizeof(int));
    for (int i = 0; i < base; i++)
        if (ss_schema_set(n->schema, i, in->schema->names[i], in->schema->types[i], in->schema->is_key[i]))
            return nomem(x);
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    for (int i = 0; i < w->norder; i++) {
        int rc = ss__compile(&cc, w->order[i].expr, &n->order[i].expr);
        if (rc)
            return rc;
        n->order[i].desc = w->order[i].desc;
        n->norder = i + 1;
    }
    for (int i = 0; i < nc; i++) {
        const ss_ast_expr_t *e = calls[i];
        ss_plan_wfn_t *f = &n->wfns[i];
        int rc = check_call(x, e, &f->fn);
        n->nwfns = i + 1;
        if (!rc && e->args && e->args->n && e->args->items[0]->kind != SS_AX_STAR)
            rc = ss__compile(&cc, e->args->items[0], &f->arg);
        if (rc)
            return rc;
        ss_coltype_t at = f->arg ? f->arg->type : SS_COL_INT;
        if (f->fn != SS_WIN_COUNT && f->arg && (at == SS_COL_NUMERIC || at == SS_COL_JSON))
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                             "%d:%d: %s over %s is not supported yet (cast the argument: %s(x::DOUBLE))",
                             e->span.line, e->span.col, e->name, ss_coltype_name(at), e->name);
        if ((f->fn == SS_WIN_SUM || f->fn == SS_WIN_AVG) && at == SS_COL_TEXT)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs a number, got TEXT", e->span.line,
                             e->span.col, e->name);
        ss_coltype_t t = f->fn <= SS_WIN_COUNT ? SS_COL_INT : f->fn == SS_WIN_AVG ? SS_COL_REAL
                         : f->fn == SS_WIN_SUM && at == SS_COL_BOOL ? SS_COL_INT : at;
        char name[32];
        size_t k = 0;
        for (; e->name[k] && k < sizeof name - 1; k++)
            name[k] = (char)tolower((unsigned char)e->name[k]);
        name[k] = 0;
        if (ss_schema_set(n->schema, base + i, name, t, 0))
            return nomem(x);
        ss_expr_t *col = ss_expr_new(SS_EX_COL);
        if (col) {
            col->col = base + i;
            col->type = t;
        }
        if (pm->n == (int)SS_ARRAY_LEN(pm->ast)) {
            ss_expr_free(col);
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many window functions", e->span.line,
                             e->span.col);
        }
        if (!col)
            return nomem(x);
        pm->ast[pm->n] = e;
        pm->expr[pm->n++] = col;
    }
    if (sc->pre != pm) {
        pm->next = sc->pre;
        sc->pre = pm;
    }
    *cur = n;
    sc->schema = n->schema;
    return SS_OK;
}

int ss__plan_windows(pctx_t *x, const ss_ast_expr_t *const *items, int n, ss__scope_t *sc, ss_plan_node_t **cur,
                     ss__premap_t *pm)
{
    const ss_ast_expr_t *calls[MAXW + 1];
    int nc = 0;
    for (int i = 0; i < n; i++)
        collect(items[i], calls, &nc);
    if (nc > MAXW)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many window functions (at most %d)",
                         calls[MAXW]->span.line, calls[MAXW]->span.col, MAXW);
    char *keys[MAXW];
    int done[MAXW] = {0}, rc = SS_OK;
    for (int i = 0; i < nc; i++)
        keys[i] = spec_key(calls[i]->over);
    for (int i = 0; i < nc && !rc; i++) {
        if (done[i])
            continue;
        const ss_ast_expr_t *same[MAXW];
        int ns = 0;
        for (int k = i; k < nc; k++)
            if (!done[k] && keys[i] && keys[k] && !strcmp(keys[i], keys[k])) {
                same[ns++] = calls[k];
                done[k] = 1;
            }
        rc = keys[i] ? window_node(x, same, ns, sc, cur, pm) : nomem(x);
    }
    for (int i = 0; i < nc; i++)
        free(keys[i]);
    return rc;
}

/* ---------------------------------------------------------------- top-N pushdown */

void ss__window_pushdown(pctx_t *x, ss_plan_node_t *leaf, const ss__scope_t *sc, const ss_ast_expr_t *e)
{
    if (e->kind != SS_AX_BINARY)
        return;
    const ss_ast_expr_t *col = e->left, *lit = e->right;
    ss_ast_op_t op = e->op;
    if (col->kind == SS_AX_LITERAL) { /* N >= rn */
        col = e->right;
        lit = e->left;
        op = op == SS_OP_GE ? SS_OP_LE : op == SS_OP_GT ? SS_OP_LT : op;
    }
    if (col->kind != SS_AX_COLUMN || lit->kind != SS_AX_LITERAL || lit->lit.t != SS_INT ||
        (op != SS_OP_LE && op != SS_OP_LT && op != SS_OP_EQ))
        return;
    int64_t limit = op == SS_OP_LT ? lit->lit.u.i - 1 : lit->lit.u.i;
    char scratch[SS_ERRSZ];
    ss__cctx_t cc = {.scope = sc, .err = scratch, .errsz = sizeof scratch};
    int side, c;
    if (limit < 0 || ss__resolve_col(&cc, col->table, col->name, col->span, &side, &c))
        return;
    for (ss_plan_node_t *n = leaf; n;) { /* down through PROJECT and FILTER to the WINDOW */
        for (int k = 0; k < x->ncte; k++)
            if (x->ctes[k].node == n)
                return; /* a WITH query's nodes may have other readers */
        if (n->kind == SS_PN_PROJECT && c < n->nexprs && n->exprs[c]->kind == SS_EX_COL) {
            c = n->exprs[c]->col;
            n = n->in[0];
        } else if (n->kind == SS_PN_FILTER) {
            n = n->in[0];
        } else {
            if (n->kind == SS_PN_WINDOW && c == n->in[0]->schema->n && n->wfns[0].fn <= SS_WIN_DENSE_RANK &&
                (n->limit < 0 || limit < n->limit))
                n->limit = limit;
            return;
        }
    }
}
