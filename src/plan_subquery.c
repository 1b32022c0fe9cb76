/*
 * plan_subquery.c — subqueries in expressions, planned as joins (DBSP: a
 * subquery predicate is a semi / anti join, bilinear in its two inputs, with a
 * non-linear count per key):
 *   - a top-level AND term of WHERE
 *       EXISTS (..)               SEMIJOIN (semi) of the row with the subquery's rows
 *       NOT EXISTS (..)           SEMIJOIN (anti)
 *       x IN (SELECT y ..)        SEMIJOIN (semi) with the key pair x = y
 *       x NOT IN (SELECT y ..)    SEMIJOIN (anti, NULL-aware: a NULL y or x empties the result
 *                                 unless the subquery is empty, as SQL says)
 *   - any other EXISTS / IN (under OR, NOT, in the SELECT list): SEMIJOIN (mark) appending its
 *     TRUE / FALSE / NULL value as a column;
 *   - a scalar (SELECT ..): a LEFT JOIN appending its value: with the subquery's one row when it
 *     is uncorrelated (an aggregate without GROUP BY, LIMIT 1, or pinned to one key), or, when
 *     correlated on equalities, with its rows grouped by the inner correlation columns (an
 *     aggregate: COUNT over no rows is 0), or keyed by them (a lookup by the stream's KEY).
 * A subquery is correlated when its WHERE names columns of the enclosing row: `inner = outer`
 * conjuncts become the join's keys, conjuncts of the inner row alone filter the subquery, others
 * are the join's residual condition. Correlated subqueries must be plain (no GROUP BY, set
 * operations or LIMIT); uncorrelated ones may be any query.
 */
#include "plan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

/* Adds a hint after the error already in x->err. */
static void err_hint(pctx_t *x, const char *hint)
{
    size_t n = strlen(x->err);
    if (n + 4 < x->errsz)
        snprintf(x->err + n, x->errsz - n, " (%s)", hint);
}

static int is_sq(const ss_ast_expr_t *e)
{
    return e && (e->kind == SS_AX_SUBQUERY || e->kind == SS_AX_EXISTS || e->kind == SS_AX_IN_SELECT);
}

int ss__has_subquery(const ss_ast_expr_t *e)
{
    if (!e)
        return 0;
    if (is_sq(e))
        return 1;
    if (ss__has_subquery(e->left) || ss__has_subquery(e->right) || ss__has_subquery(e->filter))
        return 1;
    for (int i = 0; e->args && i < e->args->n; i++)
        if (ss__has_subquery(e->args->items[i]))
            return 1;
    return 0;
}

void ss__premap_clear(ss__premap_t *pm)
{
    for (int i = 0; i < pm->n; i++)
        ss_expr_free(pm->expr[i]);
    pm->n = 0;
}

/* Records that ast now compiles to e (taken); makes sc->pre see pm. */
static int premap_add(pctx_t *x, ss__premap_t *pm, ss__scope_t *sc, const ss_ast_expr_t *ast, ss_expr_t *e)
{
    if (!e)
        return nomem(x);
    if (pm->n == (int)SS_ARRAY_LEN(pm->ast)) {
        ss_expr_free(e);
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many subqueries in one SELECT",
                         ast->span.line, ast->span.col);
    }
    if (sc->pre != pm) {
        pm->next = sc->pre;
        sc->pre = pm;
    }
    pm->ast[pm->n] = ast;
    pm->expr[pm->n++] = e;
    return SS_OK;
}

static ss_expr_t *col_expr(int col, ss_coltype_t t)
{
    ss_expr_t *e = ss_expr_new(SS_EX_COL);
    if (e) {
        e->col = col;
        e->type = t;
    }
    return e;
}

static ss_expr_t *wrap1(ss_expr_t *e, ss_expr_kind_t k, ss_ast_op_t op, const char *fn, ss_expr_t *arg2)
{
    ss_expr_t *w = e ? ss_expr_new(k) : NULL;
    if (!w || !(w->args = calloc(2, sizeof *w->args)) || (fn && !(w->func = ss_strdup(fn)))) {
        ss_expr_free(w);
        ss_expr_free(e);
        ss_expr_free(arg2);
        return NULL;
    }
    w->op = op;
    w->args[0] = e;
    w->args[1] = arg2;
    w->nargs = arg2 ? 2 : 1;
    w->type = e->type;
    return w;
}

/* ---------------------------------------------------------------- shapes and scopes */

static int has_agg(const ss_ast_expr_t *e)
{
    if (!e || is_sq(e))
        return 0;
    if (e->kind == SS_AX_FUNC && !e->over && ss__is_agg_name(e->name))
        return 1;
    if (has_agg(e->left) || has_agg(e->right))
        return 1;
    for (int i = 0; e->args && i < e->args->n; i++)
        if (has_agg(e->args->items[i]))
            return 1;
    return 0;
}

/* A subquery that may be correlated: one plain SELECT without GROUP BY, HAVING, LIMIT, WITH. */
static int plain_sub(const ss_ast_select_t *s)
{
    return s->setop == SS_SETOP_NONE && s->from && !s->group_by && !s->having && s->limit < 0 && s->offset <= 0 &&
           !s->ncte;
}

/* The scope of the row outer ++ inner: inner's names first, then the enclosing row's. */
static int corr_scope(pctx_t *x, const ss__scope_t *osc, const ss__scope_t *isc, ss__scope_t *out)
{
    int ow = osc->schema->n;
    *out = *isc;
    for (int i = 0; i < out->nrels; i++)
        out->rels[i].off += ow;
    for (int i = 0; i < out->nmerged; i++)
        out->merged[i].col += ow;
    for (int i = 0; i < out->nhidden; i++)
        out->hidden[i] += ow;
    out->pre = NULL;
    out->outer = osc;
    ss_schema_t *s = ss__concat_schema(osc->schema, isc->schema);
    out->schema = s;
    return s ? SS_OK : nomem(x);
}

/* Which rows e reads, resolved in the correlated scope cs (outer columns < ow): bit 1 the
 * inner row, bit 2 the outer row. -1 on an error (unknown column). Nested subqueries count as
 * inner (they are planned inside the subquery). */
static int refs_of(pctx_t *x, const ss__scope_t *cs, int ow, const ss_ast_expr_t *e)
{
    if (!e || is_sq(e) || e->kind == SS_AX_STAR)
        return is_sq(e) ? 1 : 0;
    if (e->kind == SS_AX_COLUMN) {
        ss__cctx_t cc = {.scope = cs, .err = x->err, .errsz = x->errsz};
        int side, col;
        if (ss__resolve_col(&cc, e->table, e->name, e->span, &side, &col))
            return -1;
        return col < ow ? 2 : 1;
    }
    int bits = 0, b;
    if ((b = refs_of(x, cs, ow, e->left)) < 0 || ((bits |= b), (b = refs_of(x, cs, ow, e->right)) < 0))
        return -1;
    bits |= b;
    for (int i = 0; e->args && i < e->args->n; i++) {
        if ((b = refs_of(x, cs, ow, e->args->items[i])) < 0)
            return -1;
        bits |= b;
    }
    return bits;
}

/* ---------------------------------------------------------------- correlation */

#define MAXK 16

/* A plain subquery's FROM planned and its WHERE split: filters of the inner row alone applied
 * (inner node and scope), inner = outer equalities as key pairs, the rest as residual terms. */
typedef struct corr {
    ss_plan_node_t *node;
    ss__scope_t isc;
    ss__premap_t pm;              /* the inner WHERE's own subqueries */
    int nkeys;
    const ss_ast_expr_t *ikey[MAXK], *okey[MAXK];
    int nres;
    const ss_ast_expr_t *res[64];
} corr_t;

static int plan_corr(pctx_t *x, const ss_ast_select_t *sub, const ss__scope_t *osc, corr_t *c)
{
    memset(c, 0, sizeof *c);
    ss__selstate_t *saved = malloc(sizeof *saved);
    if (!saved)
        return nomem(x);
    *saved = x->sel;
    memset(&x->sel, 0, sizeof x->sel);
    int rc = ss__plan_from(x, sub->from, &c->isc, &c->node);
    ss__scope_t cs;
    const ss_ast_expr_t *cj[64], *inner[64];
    int ncj = 0, ninner = 0;
    ss__flatten_and(sub->where, cj, &ncj, 64);
    if (!rc && ss__too_many_terms(x, sub->where, ncj, 64))
        rc = SS_ERR_UNSUPPORTED;
    memset(&cs, 0, sizeof cs);
    if (!rc)
        rc = corr_scope(x, osc, &c->isc, &cs);
    int ow = osc->schema->n;
    for (int i = 0; !rc && i < ncj; i++) {
        const ss_ast_expr_t *e = cj[i];
        int bits = refs_of(x, &cs, ow, e);
        if (bits < 0) {
            rc = SS_ERR_SEMANTIC;
            break;
        }
        if (!(bits & 2)) {
            inner[ninner++] = e;
            continue;
        }
        int l = e->kind == SS_AX_BINARY && e->op == SS_OP_EQ ? refs_of(x, &cs, ow, e->left) : 0;
        int r = e->kind == SS_AX_BINARY && e->op == SS_OP_EQ ? refs_of(x, &cs, ow, e->right) : 0;
        if (l < 0 || r < 0) {
            rc = SS_ERR_SEMANTIC;
            break;
        }
        if (((l == 1 && r == 2) || (l == 2 && r == 1)) && c->nkeys < MAXK) {
            c->ikey[c->nkeys] = l == 1 ? e->left : e->right;
            c->okey[c->nkeys++] = l == 1 ? e->right : e->left;
        } else {
            c->res[c->nres++] = e;
        }
    }
    ss_schema_free((ss_schema_t *)cs.schema);
    if (!rc && ninner)
        rc = ss__plan_conditions(x, inner, ninner, &c->isc, &c->node, &c->pm);
    x->sel = *saved;
    free(saved);
    return rc;
}

int ss__expr_column(pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *sc, ss_plan_node_t **cur, const char *label,
                    int *col, ss_coltype_t *type)
{
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    ss_expr_t *k = NULL;
    int rc = ss__compile(&cc, e, &k);
    if (rc)
        return rc;
    *type = k->type;
    if (k->kind == SS_EX_COL) {
        *col = k->col;
        ss_expr_free(k);
        return SS_OK;
    }
    ss_plan_node_t *in = *cur, *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, label);
    int n = in->schema->n;
    if (!p || !(p->schema = ss_schema_new(n + 1)) || !(p->exprs = calloc((size_t)n + 1, sizeof *p->exprs))) {
        ss_expr_free(k);
        return nomem(x);
    }
    p->exprs[n] = k; /* owned by the node from here on */
    p->nexprs = n + 1;
    for (int i = 0; i <= n; i++) {
        if (i < n)
            p->exprs[i] = col_expr(i, in->schema->types[i]);
        if (!p->exprs[i] || ss_schema_set(p->schema, i, i < n ? in->schema->names[i] : label,
                                          p->exprs[i]->type, i < n && in->schema->is_key[i]))
            return nomem(x);
    }
    *cur = p;
    sc->schema = p->schema;
    *col = n;
    return SS_OK;
}

static int numeric(ss_coltype_t t) { return t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC; }

/* Key pairs must compare like values (PostgreSQL has no text = integer). */
static int check_key_types(pctx_t *x, const ss_ast_expr_t *at, ss_coltype_t a, ss_coltype_t b)
{
    if (a == SS_COL_ANY || b == SS_COL_ANY || a == b || (numeric(a) && numeric(b)))
        return SS_OK;
    return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: cannot compare %s with %s in a subquery condition",
                     at->span.line, at->span.col, ss_coltype_name(a), ss_coltype_name(b));
}

/* ---------------------------------------------------------------- EXISTS / IN */

/* The subquery side of a semijoin: the inner node reduced to its key columns (and the rest of
 * the row when a residual needs it); ikeys[i] get the key columns of the result. */
static int right_side(pctx_t *x, corr_t *c, const ss_ast_expr_t *in_item, int keep_row, ss_plan_node_t **out,
                      int *ikeys, ss_coltype_t *itypes)
{
    ss_plan_node_t *in = c->node;
    int nk = c->nkeys + (in_item != NULL), base = keep_row ? in->schema->n : 0;
    if (base + nk == 0) { /* EXISTS without keys: only the number of rows matters */
        ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "subquery rows");
        if (!p || !(p->schema = ss_schema_new(1)) || !(p->exprs = calloc(1, sizeof *p->exprs)) ||
            !(p->exprs[0] = ss_expr_new(SS_EX_LIT)) || ss_schema_set(p->schema, 0, "one", SS_COL_INT, 0))
            return nomem(x);
        p->nexprs = 1;
        p->exprs[0]->lit = ss_val_int(1);
        p->exprs[0]->type = SS_COL_INT;
        *out = p;
        return SS_OK;
    }
    ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "subquery");
    if (!p || !(p->schema = ss_schema_new(base + nk)) || !(p->exprs = calloc((size_t)(base + nk) + 1, sizeof *p->exprs)))
        return nomem(x);
    ss__cctx_t cc = {.scope = &c->isc, .err = x->err, .errsz = x->errsz};
    for (int i = 0; i < base + nk; i++) {
        int rc = SS_OK;
        if (i < base)
            p->exprs[i] = col_expr(i, in->schema->types[i]);
        else
            rc = ss__compile(&cc, i - base < c->nkeys ? c->ikey[i - base] : in_item, &p->exprs[i]);
        if (rc)
            return rc;
        if (!p->exprs[i])
            return nomem(x);
        p->nexprs = i + 1;
        char nm[32];
        snprintf(nm, sizeof nm, "k%d", i - base + 1);
        if (ss_schema_set(p->schema, i, i < base ? in->schema->names[i] : nm, p->exprs[i]->type, 0))
            return nomem(x);
        if (i >= base) {
            ikeys[i - base] = i;
            itypes[i - base] = p->exprs[i]->type;
        }
    }
    *out = p;
    return SS_OK;
}

static int add_key(pctx_t *x, ss_plan_node_t *j, int l, int r)
{
    if (ss__push_int(&j->lkeys, j->nkeys, l) || ss__push_int(&j->rkeys, j->nkeys, r))
        return nomem(x);
    j->nkeys++;
    return SS_OK;
}

/* The semijoin of *cur (names osc) with the subquery of e (EXISTS or IN_SELECT). */
static int plan_semi(pctx_t *x, const ss_ast_expr_t *e, ss_semi_mode_t mode, ss__scope_t *osc,
                     ss_plan_node_t **cur, int *mark_col)
{
    const ss_ast_select_t *sub = e->sub;
    int in = e->kind == SS_AX_IN_SELECT, null_aware = in && mode != SS_SEMI_SEMI;
    const ss_ast_expr_t *item = NULL;
    if (in) {
        if (sub->setop == SS_SETOP_NONE && (sub->nitems != 1 || sub->items[0].expr->kind == SS_AX_STAR))
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: subquery has too many columns (IN needs one)",
                             sub->span.line, sub->span.col);
        item = sub->setop == SS_SETOP_NONE ? sub->items[0].expr : NULL;
    }
    corr_t *c = calloc(1, sizeof *c);
    if (!c)
        return nomem(x);
    ss_plan_node_t *right = NULL;
    int rkeys[MAXK + 1], rc;
    ss_coltype_t rtypes[MAXK + 1];
    int correlatable = plain_sub(sub) && !(in && has_agg(item));
    for (int i = 0; correlatable && i < sub->nitems; i++)
        correlatable = !has_agg(sub->items[i].expr);
    if (correlatable) {
        rc = plan_corr(x, sub, osc, c);
        if (!rc && c->nres && null_aware)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: NOT IN / IN as a value with a correlated condition other than = is not supported "
                           "(write NOT EXISTS (... AND inner = outer))", c->res[0]->span.line, c->res[0]->span.col);
        if (!rc)
            rc = right_side(x, c, item, c->nres > 0, &right, rkeys, rtypes);
    } else { /* any query, not correlated */
        rc = ss__plan_subquery(x, sub, &right);
        if (rc && strstr(x->err, "unknown"))
            err_hint(x, "a subquery with GROUP BY, aggregates, UNION or LIMIT cannot refer to the enclosing query");
        if (!rc && in && right->schema->n != 1)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: subquery has %d columns (IN needs one)",
                           sub->span.line, sub->span.col, right->schema->n);
        if (!rc && in) {
            rkeys[0] = 0;
            rtypes[0] = right->schema->types[0];
        }
    }
    /* the outer keys, in the order of the right side's */
    int nk = c->nkeys + in;
    ss_plan_node_t *sj = NULL;
    int lkeys[MAXK + 1];
    for (int i = 0; !rc && i < nk; i++) {
        const ss_ast_expr_t *ok = i < c->nkeys ? c->okey[i] : e->left;
        ss_coltype_t lt;
        rc = ss__expr_column(x, ok, osc, cur, "subquery key", &lkeys[i], &lt);
        if (!rc)
            rc = check_key_types(x, ok, lt, rtypes[i]);
    }
    if (!rc && !(sj = ss__new_node(x, SS_PN_SEMIJOIN, *cur, right, in ? "IN subquery" : "EXISTS subquery")))
        rc = nomem(x);
    for (int i = 0; !rc && i < nk; i++)
        rc = add_key(x, sj, lkeys[i], rkeys[i]);
    if (!rc) {
        sj->semi_mode = mode;
        sj->semi_in = null_aware;
        int ow = (*cur)->schema->n;
        if (!(sj->schema = ss_schema_new(ow + (mode == SS_SEMI_MARK))))
            rc = nomem(x);
        for (int i = 0; !rc && i < ow; i++)
            if (ss_schema_set(sj->schema, i, (*cur)->schema->names[i], (*cur)->schema->types[i], (*cur)->schema->is_key[i]))
                rc = nomem(x);
        if (!rc && mode == SS_SEMI_MARK && ss_schema_set(sj->schema, ow, in ? "in" : "exists", SS_COL_BOOL, 0))
            rc = nomem(x);
        *mark_col = ow;
    }
    if (!rc && c->nres) { /* residual over the outer row ++ the subquery's row */
        ss__scope_t cs;
        osc->schema = (*cur)->schema;
        rc = corr_scope(x, osc, &c->isc, &cs);
        ss__cctx_t cc = {.scope = &cs, .err = x->err, .errsz = x->errsz};
        for (int i = 0; !rc && i < c->nres; i++) {
            ss_expr_t *p = NULL;
            if (!(rc = ss__compile(&cc, c->res[i], &p)) && !(sj->pred = ss__and_of(sj->pred, p)))
                rc = nomem(x);
        }
        ss_schema_free((ss_schema_t *)cs.schema);
    }
    if (!rc) {
        *cur = sj;
        osc->schema = sj->schema;
    }
    ss__premap_clear(&c->pm);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- scalar subqueries */

static int is_count(const ss_ast_expr_t *e)
{
    return e->kind == SS_AX_FUNC && !e->over && ss_strcaseeq(e->name, "COUNT");
}

static int has_count(const ss_ast_expr_t *e)
{
    if (!e || is_sq(e))
        return 0;
    if (is_count(e))
        return 1;
    if (has_count(e->left) || has_count(e->right))
        return 1;
    for (int i = 0; e->args && i < e->args->n; i++)
        if (has_count(e->args->items[i]))
            return 1;
    return 0;
}

/* At most one row, whatever the data: a global aggregate, LIMIT 0/1, or every KEY column of
 * its one stream pinned to a constant. */
static int one_row(const ss_ast_select_t *s, const ss_plan_node_t *from)
{
    if (s->setop != SS_SETOP_NONE)
        return s->limit >= 0 && s->limit <= 1;
    if (s->limit >= 0 && s->limit <= 1)
        return 1;
    int agg = 0;
    for (int i = 0; i < s->nitems; i++)
        agg |= has_agg(s->items[i].expr);
    if (agg && !s->group_by)
        return 1;
    if (!from || s->group_by || !s->from || s->from->kind != SS_FROM_TABLE)
        return 0;
    const ss_ast_expr_t *cj[64];
    int ncj = 0, nk = 0, pinned = 0;
    ss__flatten_and(s->where, cj, &ncj, 64);
    ncj = SS_MIN(ncj, 64); /* (a condition among the first 64 pins a key, or it is not one row) */
    for (int c = 0; c < from->schema->n; c++) {
        if (!from->schema->is_key[c])
            continue;
        nk++;
        for (int i = 0; i < ncj; i++) {
            const ss_ast_expr_t *e = cj[i];
            if (e->kind != SS_AX_BINARY || e->op != SS_OP_EQ)
                continue;
            const ss_ast_expr_t *col = e->left->kind == SS_AX_COLUMN ? e->left : e->right;
            const ss_ast_expr_t *lit = col == e->left ? e->right : e->left;
            if (col->kind == SS_AX_COLUMN && lit->kind == SS_AX_LITERAL && lit->lit.t != SS_NULL &&
                ss_strcaseeq(col->name, from->schema->names[c])) {
                pinned++;
                break;
            }
        }
    }
    return nk && pinned == nk;
}

/* The input node of a one-stream FROM (for one_row), or NULL. */
static ss_plan_node_t *single_from(pctx_t *x, const ss_ast_select_t *s)
{
    if (s->setop != SS_SETOP_NONE || !s->from || s->from->kind != SS_FROM_TABLE)
        return NULL;
    ss_plan_node_t *n = NULL;
    const char *what;
    int found = 0;
    char scratch[SS_ERRSZ];
    char *err = x->err;
    size_t errsz = x->errsz;
    x->err = scratch;
    x->errsz = sizeof scratch;
    if (ss__cte_node(x, s->from->name, s->from->span, &n, &found) || (!found && ss__input_node(x, s->from->name, s->from->span, &n, &what)))
        n = NULL;
    x->err = err;
    x->errsz = errsz;
    return n;
}

/* A correlated scalar subquery: the inner rows grouped (an aggregate) or keyed (a lookup) by the
 * inner correlation columns: [k1 .. kn, value]. */
static int scalar_correlated(pctx_t *x, const ss_ast_select_t *sub, corr_t *c, int agg, ss_plan_node_t **out)
{
    ss_ast_select_item_t items[MAXK + 1];
    ss_ast_expr_list_t gb = {.n = c->nkeys, .cap = c->nkeys, .items = (ss_ast_expr_t **)c->ikey};
    static const char *const knames[] = {"_k1", "_k2", "_k3", "_k4", "_k5", "_k6", "_k7", "_k8",
                                         "_k9", "_k10", "_k11", "_k12", "_k13", "_k14", "_k15", "_k16"};
    for (int i = 0; i < c->nkeys; i++)
        items[i] = (ss_ast_select_item_t){.expr = (ss_ast_expr_t *)c->ikey[i], .alias = (char *)knames[i],
                                          .span = c->ikey[i]->span};
    items[c->nkeys] = sub->items[0];
    ss_ast_select_t t = {.span = sub->span, .nitems = c->nkeys + 1, .items = items, .limit = -1,
                         .group_by = agg && c->nkeys ? &gb : NULL};
    ss_plan_node_t *cur = c->node;
    int rc = ss__plan_select_items(x, &t, &c->isc, &cur);
    *out = cur;
    return rc;
}

/* A scalar (SELECT ..) as a column of *cur (a LEFT JOIN), recorded in pm. */
static int plan_scalar(pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *osc, ss_plan_node_t **cur, ss__premap_t *pm)
{
    const ss_ast_select_t *sub = e->sub;
    if (sub->setop == SS_SETOP_NONE && (sub->nitems != 1 || sub->items[0].expr->kind == SS_AX_STAR))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: subquery must return only one column",
                         sub->span.line, sub->span.col);
    int agg = sub->setop == SS_SETOP_NONE && has_agg(sub->items[0].expr);
    corr_t *c = calloc(1, sizeof *c);
    if (!c)
        return nomem(x);
    ss_plan_node_t *right = NULL;
    int rc, count_fix = 0;
    if (plain_sub(sub) && !(sub->distinct && !agg)) {
        rc = plan_corr(x, sub, osc, c);
        if (!rc && c->nres)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: a correlated scalar subquery may only correlate with equalities (inner = outer)",
                           c->res[0]->span.line, c->res[0]->span.col);
        if (!rc && c->nkeys && !agg) { /* a lookup: its keys must be the stream's KEY columns */
            const ss_schema_t *is = c->node->schema;
            int nk = 0, covered = 0;
            for (int k = 0; k < is->n; k++) {
                if (!is->is_key[k])
                    continue;
                nk++;
                for (int i = 0; i < c->nkeys; i++)
                    if (c->ikey[i]->kind == SS_AX_COLUMN && ss_strcaseeq(c->ikey[i]->name, is->names[k])) {
                        covered++;
                        break;
                    }
            }
            if (!nk || covered < nk || c->isc.nrels != 1)
                rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                               "%d:%d: a correlated scalar subquery must be an aggregate (COUNT, SUM, MAX, ...) or "
                               "look a stream up by all its KEY columns, so that it returns at most one row",
                               sub->span.line, sub->span.col);
        }
        if (!rc && !c->nkeys && !agg && !one_row(sub, c->isc.nrels == 1 ? c->node : NULL))
            rc = SS_ERR_INVALID;
        if (!rc)
            rc = scalar_correlated(x, sub, c, agg, &right);
        count_fix = c->nkeys && agg && has_count(sub->items[0].expr);
    } else {
        rc = ss__plan_subquery(x, sub, &right);
        if (rc && strstr(x->err, "unknown"))
            err_hint(x, "a subquery with GROUP BY, DISTINCT, UNION or LIMIT cannot refer to the enclosing query");
        if (!rc && right->schema->n != 1)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: subquery must return only one column",
                           sub->span.line, sub->span.col);
        if (!rc && !one_row(sub, single_from(x, sub)))
            rc = SS_ERR_INVALID;
    }
    if (rc == SS_ERR_INVALID)
        rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                       "%d:%d: a scalar subquery must return at most one row: use an aggregate (MAX, COUNT, ...), "
                       "LIMIT 1, or a condition on every KEY column", sub->span.line, sub->span.col);
    if (!rc && count_fix && has_count(sub->items[0].expr) && !is_count(sub->items[0].expr))
        rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                       "%d:%d: a correlated scalar subquery may use COUNT only as its whole value (it is 0 for a "
                       "row with no match)", sub->span.line, sub->span.col);
    int lkeys[MAXK];
    for (int i = 0; !rc && i < c->nkeys; i++) {
        ss_coltype_t lt;
        rc = ss__expr_column(x, c->okey[i], osc, cur, "subquery key", &lkeys[i], &lt);
        if (!rc)
            rc = check_key_types(x, c->okey[i], lt, right->schema->types[i]);
    }
    ss_plan_node_t *j = NULL;
    if (!rc && (!(j = ss__new_node(x, SS_PN_JOIN, *cur, right, "scalar subquery")) ||
                !(j->schema = ss__concat_schema((*cur)->schema, right->schema))))
        rc = nomem(x);
    for (int i = 0; !rc && i < c->nkeys; i++)
        rc = add_key(x, j, lkeys[i], i);
    if (!rc) {
        j->join_type = SS_JOIN_LEFT;
        for (int i = 0; i < j->schema->n; i++) /* at most one match per row: the row's key stays the key */
            j->schema->is_key[i] = i < (*cur)->schema->n && (*cur)->schema->is_key[i];
        int vcol = (*cur)->schema->n + right->schema->n - 1;
        ss_coltype_t t = right->schema->types[right->schema->n - 1];
        ss_expr_t *v = col_expr(vcol, t);
        if (count_fix) { /* no row for this key: COUNT is 0, not NULL */
            ss_expr_t *zero = ss_expr_new(SS_EX_LIT);
            if (zero)
                zero->lit = ss_val_int(0), zero->type = SS_COL_INT;
            v = zero ? wrap1(v, SS_EX_FUNC, SS_OP_NONE, "COALESCE", zero) : (ss_expr_free(v), NULL);
        }
        *cur = j;
        osc->schema = j->schema;
        rc = premap_add(x, pm, osc, e, v);
    }
    ss__premap_clear(&c->pm);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

static int plan_one(pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *sc, ss_plan_node_t **cur, ss__premap_t *pm)
{
    if (e->kind == SS_AX_SUBQUERY)
        return plan_scalar(x, e, sc, cur, pm);
    int col, rc = plan_semi(x, e, SS_SEMI_MARK, sc, cur, &col);
    if (rc)
        return rc;
    ss_expr_t *v = col_expr(col, SS_COL_BOOL);
    if (e->kind == SS_AX_IN_SELECT && e->op == SS_OP_NOT)
        v = wrap1(v, SS_EX_UNARY, SS_OP_NOT, NULL, NULL);
    return premap_add(x, pm, sc, e, v);
}

int ss__plan_expr_subqueries(pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *sc, ss_plan_node_t **cur,
                             ss__premap_t *pm)
{
    if (!e)
        return SS_OK;
    if (is_sq(e)) { /* (its own subquery's outer references are planned inside it) */
        int rc = e->kind == SS_AX_IN_SELECT ? ss__plan_expr_subqueries(x, e->left, sc, cur, pm) : SS_OK;
        return rc ? rc : plan_one(x, e, sc, cur, pm);
    }
    int rc = ss__plan_expr_subqueries(x, e->left, sc, cur, pm);
    if (!rc)
        rc = ss__plan_expr_subqueries(x, e->right, sc, cur, pm);
    for (int i = 0; !rc && e->args && i < e->args->n; i++)
        rc = ss__plan_expr_subqueries(x, e->args->items[i], sc, cur, pm);
    return rc;
}

/* The semi / anti join a top-level WHERE term stands for (-1: not one). */
static int filter_mode(const ss_ast_expr_t *e, const ss_ast_expr_t **sq)
{
    int neg = 0;
    while (e->kind == SS_AX_UNARY && e->op == SS_OP_NOT) {
        neg ^= 1;
        e = e->left;
    }
    if (e->kind == SS_AX_IN_SELECT)
        neg ^= e->op == SS_OP_NOT;
    else if (e->kind != SS_AX_EXISTS)
        return -1;
    if (e->kind == SS_AX_IN_SELECT && ss__has_subquery(e->left))
        return -1;
    *sq = e;
    return neg ? SS_SEMI_ANTI : SS_SEMI_SEMI;
}

int ss__plan_subqueries(pctx_t *x, const ss_ast_expr_t **cj, int *ncj, ss__scope_t *sc, ss_plan_node_t **cur,
                        ss__premap_t *pm)
{
    int n = 0, rc = SS_OK;
    for (int i = 0; i < *ncj && !rc; i++) {
        const ss_ast_expr_t *sq = NULL;
        int mode = ss__has_subquery(cj[i]) ? filter_mode(cj[i], &sq) : -1;
        int col;
        if (mode >= 0)
            rc = plan_semi(x, sq, (ss_semi_mode_t)mode, sc, cur, &col);
        else {
            rc = ss__plan_expr_subqueries(x, cj[i], sc, cur, pm);
            cj[n++] = cj[i];
        }
    }
    *ncj = n;
    return rc;
}
