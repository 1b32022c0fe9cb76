/*
 * ast_build_query.c — AST constructors for the structure of queries, called by
 * the grammar actions of grammar/parser.y: compound SELECTs (UNION / EXCEPT /
 * INTERSECT), WITH lists, ORDER BY / LIMIT / OFFSET, subqueries (as values,
 * EXISTS, IN, and in FROM), the joins beyond INNER/LEFT ... ON (USING,
 * NATURAL, comma lists), and what follows a call's ')' (an aggregate's ORDER
 * BY and FILTER, a window function's OVER). Same ownership rules as
 * ast_build.c: every constructor takes its children, also when it fails.
 */
#include "ss_parse_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *zalloc(ss_pctx_t *ctx, size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        ss_pctx_nomem(ctx);
    return p;
}

void ss_ctelist_free(ss_ctelist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].name);
        for (int k = 0; k < l->items[i].ncols; k++)
            free(l->items[i].cols[k]);
        free(l->items[i].cols);
        ss_ast_select_free(l->items[i].select);
    }
    free(l->items);
    free(l);
}

void ss_ast_window_free(ss_ast_window_t *w)
{
    if (!w)
        return;
    ss_ast_exprlist_free(w->partition);
    for (int i = 0; i < w->norder; i++)
        ss_ast_expr_free(w->order[i].expr);
    free(w->order);
    free(w);
}

void ss_fsuffix_free(ss_fsuffix_t *f)
{
    ss_ast_expr_free(f->filter);
    ss_ast_window_free(f->over);
    f->filter = NULL;
    f->over = NULL;
}

/* ---- compound SELECT, WITH, ORDER BY / LIMIT / OFFSET ---- */

ss_ast_select_t *ss_build_compound(ss_pctx_t *ctx, ss_ast_select_t *l, ss_setop_t op, ss_ast_select_t *r)
{
    ss_ast_select_t *s = l && r ? zalloc(ctx, sizeof *s) : NULL;
    if (!s) {
        if (!l || !r)
            ss_pctx_nomem(ctx);
        ss_ast_select_free(l);
        ss_ast_select_free(r);
        return NULL;
    }
    s->span = ss_pctx_span_end(ctx, l->span);
    s->setop = op;
    s->left = l;
    s->right = r;
    s->limit = -1;
    return s;
}

/* A LIMIT/OFFSET count: a non-negative 64-bit integer. */
static int64_t count_value(ss_pctx_t *ctx, const ss_tok_t *t, const char *what)
{
    errno = 0;
    long long v = strtoll(t->z, NULL, 10);
    if (errno)
        ss_pctx_error(ctx, t->line, t->col, "%s value out of range", what);
    return errno ? 0 : v;
}

ss_ast_select_t *ss_build_select_tail(ss_pctx_t *ctx, ss_ctelist_t *with, ss_ast_select_t *s,
                                      ss_orderlist_t *order, const ss_limit_t *limit)
{
    if (!s) {
        ss_pctx_nomem(ctx);
        ss_ctelist_free(with);
        ss_orderlist_free(order);
        return NULL;
    }
    if (with) {
        s->ncte = with->n;
        s->ctes = with->items;
        free(with);
    }
    if (order) {
        s->norder = order->n;
        s->order = order->items;
        free(order);
    }
    if (limit->limit.z)
        s->limit = count_value(ctx, &limit->limit, "LIMIT");
    if (limit->offset.z)
        s->offset = count_value(ctx, &limit->offset, "OFFSET");
    return s;
}

ss_ctelist_t *ss_build_cte(ss_pctx_t *ctx, const ss_tok_t *name, ss_namelist_t *cols, ss_ast_select_t *s)
{
    ss_ctelist_t *l = s ? zalloc(ctx, sizeof *l) : NULL;
    ss_ast_cte_t *c = l ? zalloc(ctx, sizeof *c) : NULL;
    if (!c) {
        if (!s)
            ss_pctx_nomem(ctx);
        free(l);
        ss_namelist_free(cols);
        ss_ast_select_free(s);
        return NULL;
    }
    l->items = c;
    l->n = l->cap = 1;
    c->name = ss_tok_ident(ctx, name);
    c->span = ss_pctx_tok_span(name);
    c->select = s;
    if (cols) {
        c->ncols = cols->n;
        c->cols = cols->items;
        cols->items = NULL;
        cols->n = 0;
        ss_namelist_free(cols);
    }
    return l;
}

ss_ctelist_t *ss_ctelist_concat(ss_pctx_t *ctx, ss_ctelist_t *l, ss_ctelist_t *one)
{
    if (!l || !one) {
        ss_pctx_nomem(ctx);
        ss_ctelist_free(one);
        return l;
    }
    for (int i = 0; i < l->n; i++)
        if (one->items[0].name && l->items[i].name && ss_strcaseeq(one->items[0].name, l->items[i].name))
            ss_pctx_error(ctx, one->items[0].span.line, one->items[0].span.col,
                          "WITH query name \"%s\" specified more than once", one->items[0].name);
    if (ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items)) {
        ss_ctelist_free(one);
        return l;
    }
    l->items[l->n++] = one->items[0];
    one->n = 0;
    ss_ctelist_free(one);
    return l;
}

/* ---- subqueries ---- */

ss_ast_expr_t *ss_build_subquery(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_kind_t kind, ss_ast_expr_t *left,
                                 ss_ast_select_t *sub, int negated)
{
    ss_span_t sp = ss_pctx_span_end(ctx, left ? left->span : ss_pctx_tok_span(kw ? kw : &ctx->cur));
    ss_ast_expr_t *e = sub && (left || kind != SS_AX_IN_SELECT) ? ss_build_expr_node(ctx, kind, sp, left) : NULL;
    if (!e) {
        if (!sub || (!left && kind == SS_AX_IN_SELECT))
            ss_pctx_nomem(ctx);
        ss_ast_expr_free(left);
        ss_ast_select_free(sub);
        return NULL;
    }
    e->left = left;
    e->sub = sub;
    e->op = negated ? SS_OP_NOT : SS_OP_NONE;
    return e;
}

ss_ast_from_t *ss_build_from_subquery(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_select_t *s, const ss_tok_t *alias)
{
    ss_ast_from_t *f = s ? zalloc(ctx, sizeof *f) : NULL;
    if (!f) {
        if (!s)
            ss_pctx_nomem(ctx);
        ss_ast_select_free(s);
        return NULL;
    }
    f->kind = SS_FROM_SUBQUERY;
    f->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(lp));
    f->sub = s;
    if (alias->z)
        f->alias = ss_tok_ident(ctx, alias);
    return f;
}

/* ---- joins ---- */

ss_ast_from_t *ss_build_join_using(ss_pctx_t *ctx, ss_ast_from_t *j, ss_namelist_t *cols, int natural)
{
    if (!j) {
        ss_namelist_free(cols);
        return NULL;
    }
    j->natural = natural;
    if (j->join_type == SS_JOIN_CROSS || !cols)
        return j;
    for (int i = 0; i < cols->n; i++)
        for (int k = 0; k < i; k++)
            if (ss_strcaseeq(cols->items[i], cols->items[k]))
                ss_pctx_error(ctx, cols->spans[i].line, cols->spans[i].col,
                              "column \"%s\" appears more than once in USING", cols->items[i]);
    j->nusing = cols->n;
    j->using_cols = cols->items;
    j->using_spans = cols->spans;
    cols->items = NULL;
    cols->spans = NULL;
    cols->n = 0;
    ss_namelist_free(cols);
    return j;
}

ss_ast_from_t *ss_build_join_comma(ss_pctx_t *ctx, ss_ast_from_t *j)
{
    (void)ctx;
    if (j)
        j->comma = 1;
    return j;
}

/* ---- calls: aggregate ORDER BY / FILTER, window OVER ---- */

ss_ast_window_t *ss_build_window(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_list_t *partition,
                                 ss_orderlist_t *order)
{
    ss_ast_window_t *w = zalloc(ctx, sizeof *w);
    if (!w) {
        ss_ast_exprlist_free(partition);
        ss_orderlist_free(order);
        return NULL;
    }
    w->span = ss_pctx_tok_span(kw);
    w->partition = partition;
    if (order) {
        w->norder = order->n;
        w->order = order->items;
        free(order);
    }
    return w;
}

ss_ast_expr_t *ss_build_func_ex(ss_pctx_t *ctx, ss_ast_expr_t *f, ss_orderlist_t *order, ss_fsuffix_t *sfx)
{
    (void)ctx;
    if (!f) {
        ss_orderlist_free(order);
        ss_fsuffix_free(sfx);
        return NULL;
    }
    if (order) {
        f->norder = order->n;
        f->order = order->items;
        free(order);
    }
    f->filter = sfx->filter;
    f->over = sfx->over;
    sfx->filter = NULL;
    sfx->over = NULL;
    return f;
}
