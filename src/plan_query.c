/*
 * plan_query.c — the structure of a whole SELECT around its plain SELECTs:
 *   - WITH queries: visible to the query and to the WITH queries after them,
 *     planned once on first use (every reference shares the node; a WITH
 *     query nobody reads is still checked, in a scratch plan), columns
 *     renamed by WITH name (a, b) AS (...);
 *   - compounds: UNION ALL is the linear UNION node; UNION, EXCEPT [ALL],
 *     INTERSECT [ALL] a SETOP node; operands must have as many columns, of
 *     compatible types; the output takes the left operand's column names;
 *   - ORDER BY / LIMIT / OFFSET of a compound: a TOPK over its output columns
 *     (names or positions; ORDER BY without LIMIT or OFFSET changes nothing
 *     in a view, which is a set);
 *   - nested SELECTs (FROM subqueries, WITH queries, subquery expressions)
 *     are planned with the enclosing SELECT's state saved.
 * A plain SELECT is planned by ss__plan_select (planner.c).
 */
#include "plan_int.h"

#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

int ss__plan_subquery(pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out)
{
    ss__selstate_t *saved = malloc(sizeof *saved);
    if (!saved)
        return nomem(x);
    *saved = x->sel;
    memset(&x->sel, 0, sizeof x->sel);
    int rc = ss__plan_query(x, s, out);
    x->sel = *saved;
    free(saved);
    return rc;
}

/* ---------------------------------------------------------------- WITH */

/* WITH q (a, b) AS (...): a PROJECT giving q's columns their names. */
static int rename_columns(pctx_t *x, const ss_ast_cte_t *c, ss_plan_node_t **node)
{
    ss_plan_node_t *in = *node;
    if (c->ncols > in->schema->n)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: WITH query %s has %d columns available but %d columns specified",
                         c->span.line, c->span.col, c->name, in->schema->n, c->ncols);
    ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, c->name);
    if (!p || !(p->schema = ss_schema_copy(in->schema)) ||
        !(p->exprs = calloc((size_t)in->schema->n + 1, sizeof *p->exprs)))
        return nomem(x);
    for (int i = 0; i < in->schema->n; i++) {
        if (!(p->exprs[i] = ss_expr_new(SS_EX_COL)))
            return nomem(x);
        p->nexprs = i + 1;
        p->exprs[i]->col = i;
        p->exprs[i]->type = in->schema->types[i];
        if (i < c->ncols) {
            char *nm = ss_strdup(c->cols[i]);
            if (!nm)
                return nomem(x);
            free(p->schema->names[i]);
            p->schema->names[i] = nm;
        }
    }
    for (int i = 0; i < p->schema->n; i++)
        for (int k = 0; k < i; k++)
            if (ss_strcaseeq(p->schema->names[i], p->schema->names[k]))
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: WITH query %s has two columns named \"%s\"", c->span.line, c->span.col,
                                 c->name, p->schema->names[i]);
    *node = p;
    return SS_OK;
}

/* Plans entry k of the WITH stack (it sees the entries before it). */
static int plan_cte(pctx_t *x, int k)
{
    struct ss__cte_ref *r = &x->ctes[k];
    int nvis = x->nvis;
    r->busy = 1;
    x->nvis = k;
    int rc = ss__plan_subquery(x, r->cte->select, &r->node);
    if (!rc && r->cte->ncols)
        rc = rename_columns(x, r->cte, &r->node);
    x->nvis = nvis;
    r->busy = 0;
    return rc; /* (errors point into the WITH query's text already) */
}

int ss__cte_node(pctx_t *x, const char *name, ss_span_t sp, ss_plan_node_t **out, int *found)
{
    *found = 0;
    for (int k = x->nvis - 1; k >= 0; k--) {
        struct ss__cte_ref *r = &x->ctes[k];
        if (!ss_strcaseeq(r->cte->name, name))
            continue;
        *found = 1;
        if (r->busy)
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                             "%d:%d: WITH query %s refers to itself (recursive queries are not supported)",
                             sp.line, sp.col, name);
        int rc = r->node ? SS_OK : plan_cte(x, k);
        *out = r->node;
        return rc;
    }
    for (int k = x->nvis; k < x->ncte; k++) /* a later WITH query of the same list */
        if (ss_strcaseeq(x->ctes[k].cte->name, name) && x->ctes[k].busy == 0 && x->nvis < x->ncte) {
            const ss_span_t *d = &x->ctes[k].cte->span;
            if (d->off > sp.off) {
                *found = 1;
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: WITH query %s is defined after this reference (at %d:%d); move it up",
                                 sp.line, sp.col, name, d->line, d->col);
            }
        }
    return SS_OK;
}

/* A WITH query nobody reads is still checked, in a scratch plan that is thrown away. */
static int check_unused_cte(pctx_t *x, int k)
{
    ss_plan_t *real = x->plan, scratch = {0};
    int nlocal = x->nlocal;
    x->plan = &scratch;
    int rc = plan_cte(x, k);
    x->ctes[k].node = NULL;
    for (int i = 0; i < scratch.n; i++)
        ss_plan_node_free(scratch.nodes[i]);
    free(scratch.nodes);
    x->plan = real;
    x->nlocal = nlocal;
    return rc;
}

/* ---------------------------------------------------------------- compounds */

static int numeric(ss_coltype_t t) { return t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC; }

/* The column type both operands' types fit in (PostgreSQL's UNION type resolution, on our
 * types: numbers unify to REAL if one is REAL, else NUMERIC if one is, ANY fits anything;
 * TEXT, numbers, BOOLEAN and JSON never mix). */
static int unify(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out)
{
    if (a == b || b == SS_COL_ANY)
        *out = a;
    else if (a == SS_COL_ANY)
        *out = b;
    else if (numeric(a) && numeric(b))
        *out = a == SS_COL_REAL || b == SS_COL_REAL ? SS_COL_REAL : SS_COL_NUMERIC;
    else
        return -1;
    return 0;
}

static const char *setop_word(ss_setop_t op)
{
    return op == SS_SETOP_UNION || op == SS_SETOP_UNION_ALL ? "UNION"
           : op == SS_SETOP_EXCEPT || op == SS_SETOP_EXCEPT_ALL ? "EXCEPT" : "INTERSECT";
}

/* A PROJECT casting n's columns to types[] where they differ (an operand of a compound whose
 * column is INT where the other's is REAL holds REALs, as PostgreSQL's UNION does). */
static int coerce(pctx_t *x, ss_plan_node_t **n, const ss_coltype_t *types)
{
    ss_plan_node_t *in = *n;
    int w = in->schema->n, diff = 0;
    for (int i = 0; i < w; i++)
        diff |= in->schema->types[i] != types[i] && in->schema->types[i] != SS_COL_ANY && types[i] != SS_COL_ANY;
    if (!diff)
        return SS_OK;
    ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "unify types");
    if (!p || !(p->schema = ss_schema_new(w)) || !(p->exprs = calloc((size_t)w, sizeof *p->exprs)))
        return nomem(x);
    for (int i = 0; i < w; i++) {
        ss_expr_t *c = ss_expr_new(SS_EX_COL);
        if (!c)
            return nomem(x);
        c->col = i;
        c->type = in->schema->types[i];
        p->exprs[i] = c;
        p->nexprs = i + 1;
        if (c->type != types[i] && c->type != SS_COL_ANY && types[i] != SS_COL_ANY) {
            ss_expr_t *cast = ss_expr_new(SS_EX_CAST);
            if (!cast || !(cast->args = calloc(1, sizeof *cast->args))) {
                ss_expr_free(cast);
                return nomem(x);
            }
            cast->args[0] = c;
            cast->nargs = 1;
            cast->type = types[i];
            cast->typmod = -1;
            p->exprs[i] = cast;
        }
        if (ss_schema_set(p->schema, i, in->schema->names[i], p->exprs[i]->type, 0))
            return nomem(x);
    }
    *n = p;
    return SS_OK;
}

static int plan_compound(pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out)
{
    ss_plan_node_t *l, *r;
    int rc = s->left->setop ? plan_compound(x, s->left, &l) : ss__plan_subquery(x, s->left, &l);
    int names_free = x->names_free;
    x->names_free = 1; /* the result takes the left operand's names */
    if (!rc)
        rc = s->right->setop ? plan_compound(x, s->right, &r) : ss__plan_subquery(x, s->right, &r);
    x->names_free = names_free;
    if (rc)
        return rc;
    const ss_span_t *sp = &s->right->span;
    if (l->schema->n != r->schema->n)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: each %s query must have the same number of columns (%d on the left, %d here)",
                         sp->line, sp->col, setop_word(s->setop), l->schema->n, r->schema->n);
    ss_coltype_t *types = calloc((size_t)l->schema->n + 1, sizeof *types);
    if (!types)
        return nomem(x);
    for (int i = 0; i < l->schema->n && !rc; i++)
        if (unify(l->schema->types[i], r->schema->types[i], &types[i]))
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: %s types %s and %s cannot be matched (column %d, \"%s\")", sp->line, sp->col,
                           setop_word(s->setop), ss_coltype_name(l->schema->types[i]),
                           ss_coltype_name(r->schema->types[i]), i + 1, l->schema->names[i]);
    if (!rc)
        rc = coerce(x, &l, types);
    if (!rc)
        rc = coerce(x, &r, types);
    ss_plan_node_t *n = NULL;
    if (!rc && (!(n = ss__new_node(x, s->setop == SS_SETOP_UNION_ALL ? SS_PN_UNION : SS_PN_SETOP, l, r,
                                   ss_setop_name(s->setop))) ||
                !(n->schema = ss_schema_new(l->schema->n))))
        rc = nomem(x);
    for (int i = 0; !rc && i < l->schema->n; i++) {
        if (ss_schema_set(n->schema, i, l->schema->names[i], types[i], 0))
            rc = nomem(x);
        else if (types[i] == SS_COL_NUMERIC && l->schema->typmod[i] == r->schema->typmod[i])
            n->schema->typmod[i] = l->schema->typmod[i]; /* NUMERIC(p,s) on both sides stays */
    }
    if (!rc) {
        n->setop = s->setop;
        *out = n;
    }
    free(types);
    return rc;
}

/* ORDER BY (output names or positions) with LIMIT / OFFSET over a compound's result. */
static int plan_compound_topk(pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **cur)
{
    if (s->limit < 0 && s->offset <= 0)
        return SS_OK; /* a view is a set: ORDER BY alone changes nothing */
    ss_plan_node_t *t = ss__node_like(x, SS_PN_TOPK, *cur, "order by");
    if (!t || (s->norder && !(t->order = calloc((size_t)s->norder, sizeof *t->order))))
        return nomem(x);
    t->limit = s->limit;
    t->offset = s->offset;
    ss__scope_t sc = {.nrels = 1, .schema = t->schema};
    sc.rels[0] = (ss__rel_t){.name = x->view, .table = x->view, .what = "query", .off = 0, .n = t->schema->n};
    ss__cctx_t cc = {.scope = &sc, .err = x->err, .errsz = x->errsz};
    for (int i = 0; i < s->norder; i++) {
        const ss_ast_expr_t *e = s->order[i].expr;
        int rc;
        if (e->kind == SS_AX_LITERAL && e->lit.t == SS_INT) {
            if (e->lit.u.i < 1 || e->lit.u.i > t->schema->n)
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: ORDER BY position %lld is not in select list",
                                 e->span.line, e->span.col, (long long)e->lit.u.i);
            if (!(t->order[i].expr = ss_expr_new(SS_EX_COL)))
                return nomem(x);
            t->order[i].expr->col = (int)e->lit.u.i - 1;
            t->order[i].expr->type = t->schema->types[e->lit.u.i - 1];
            rc = SS_OK;
        } else {
            rc = ss__compile(&cc, e, &t->order[i].expr);
        }
        if (rc)
            return rc;
        t->order[i].desc = s->order[i].desc;
        t->norder = i + 1;
    }
    *cur = t;
    return SS_OK;
}

int ss__plan_query(pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out)
{
    int base = x->ncte, nvis = x->nvis;
    if (x->ncte + s->ncte > (int)SS_ARRAY_LEN(x->ctes))
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many WITH queries", s->span.line,
                         s->span.col);
    for (int i = 0; i < s->ncte; i++)
        x->ctes[x->ncte++] = (struct ss__cte_ref){.cte = &s->ctes[i]};
    x->nvis = x->ncte;
    int rc;
    if (s->setop == SS_SETOP_NONE) {
        rc = ss__plan_select(x, s, out);
    } else {
        rc = plan_compound(x, s, out);
        if (!rc)
            rc = plan_compound_topk(x, s, out);
    }
    for (int k = base; k < x->ncte && !rc; k++)
        if (!x->ctes[k].node)
            rc = check_unused_cte(x, k);
    x->ncte = base;
    x->nvis = nvis;
    return rc;
}
