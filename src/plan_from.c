/*
 * plan_from.c — the FROM clause: its items (a stream's shared SOURCE node, an
 * upstream VIEW node, a WITH query, a subquery), predicate pushdown (WHERE
 * conjuncts that read one item only filter it before the joins; a.x = b.y
 * conjuncts become keys of the inner join that meets a and b, so FROM a, b
 * WHERE a.x = b.y is an equi-join), and the joins:
 *   INNER, CROSS, LEFT   one JOIN node (keys from ON col = col conjuncts, the rest the residual);
 *   RIGHT                a LEFT JOIN with the sides swapped, then a PROJECT back to left ++ right;
 *   FULL                 LEFT JOIN ∪ (right rows without a match: an anti SEMIJOIN, padded);
 *   USING / NATURAL      keys on the named columns; an unqualified name means the left copy (the
 *                        right one for RIGHT, their COALESCE for FULL), listed once by `*`;
 *   SEM_JOIN             the semantic join (template references resolved per side).
 * Output columns of a join are always the left item's, then the right item's.
 */
#include "plan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

ss_schema_t *ss__concat_schema(const ss_schema_t *a, const ss_schema_t *b)
{
    ss_schema_t *s = ss_schema_new(a->n + b->n);
    if (!s)
        return NULL;
    int ka = 0, kb = 0;
    for (int i = 0; i < a->n; i++)
        ka |= a->is_key[i];
    for (int i = 0; i < b->n; i++)
        kb |= b->is_key[i];
    int keyed = ka && kb; /* the pair of keys identifies a joined row */
    for (int i = 0; i < a->n + b->n; i++) {
        const ss_schema_t *src = i < a->n ? a : b;
        int j = i < a->n ? i : i - a->n;
        if (ss_schema_set(s, i, src->names[j], src->types[j], keyed && src->is_key[j])) {
            ss_schema_free(s);
            return NULL;
        }
    }
    return s;
}

/* Merges the right scope into the left one (right columns shifted by the left width). */
static int merge_scopes(pctx_t *x, ss__scope_t *l, const ss__scope_t *r, int lwidth, int shift,
                        int side, ss_span_t sp)
{
    int d = shift ? lwidth : 0;
    for (int i = 0; i < r->nrels; i++) {
        for (int j = 0; j < l->nrels; j++)
            if (ss_strcaseeq(l->rels[j].name, r->rels[i].name))
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: \"%s\" appears twice in FROM; give one of them an alias",
                                 sp.line, sp.col, r->rels[i].name);
        if (l->nrels == SS__MAX_RELS)
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many tables in FROM",
                             sp.line, sp.col);
        ss__rel_t rel = r->rels[i];
        rel.off += d;
        rel.side = side;
        l->rels[l->nrels++] = rel;
    }
    if (l->nmerged + r->nmerged > (int)SS_ARRAY_LEN(l->merged) ||
        l->nhidden + r->nhidden > (int)SS_ARRAY_LEN(l->hidden))
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many USING columns", sp.line, sp.col);
    for (int i = 0; i < r->nmerged; i++) {
        l->merged[l->nmerged] = r->merged[i];
        l->merged[l->nmerged++].col += d;
    }
    for (int i = 0; i < r->nhidden; i++)
        l->hidden[l->nhidden++] = r->hidden[i] + d;
    return SS_OK;
}

void ss__flatten_and(const ss_ast_expr_t *e, const ss_ast_expr_t **out, int *n, int max)
{
    if (!e)
        return;
    if (e->kind == SS_AX_BINARY && e->op == SS_OP_AND) {
        ss__flatten_and(e->left, out, n, max);
        ss__flatten_and(e->right, out, n, max);
    } else {
        if (*n < max)
            out[*n] = e;
        (*n)++; /* counted beyond max: the caller reports it */
    }
}

int ss__too_many_terms(ss__pctx_t *x, const ss_ast_expr_t *e, int n, int max)
{
    if (n <= max)
        return SS_OK;
    return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many AND-ed conditions (%d, at most %d)",
                     e->span.line, e->span.col, n, max);
}

ss_expr_t *ss__and_of(ss_expr_t *a, ss_expr_t *b)
{
    if (!a)
        return b;
    ss_expr_t *e = ss_expr_new(SS_EX_BINARY);
    if (!e || !(e->args = calloc(2, sizeof *e->args))) {
        free(e);
        ss_expr_free(a);
        ss_expr_free(b);
        return NULL;
    }
    e->op = SS_OP_AND;
    e->args[0] = a;
    e->args[1] = b;
    e->nargs = 2;
    e->type = SS_COL_BOOL;
    return e;
}

int ss__push_int(int **arr, int n, int v)
{
    int *p = realloc(*arr, (size_t)(n + 1) * sizeof *p);
    if (!p)
        return SS_ERR_NOMEM;
    p[n] = v;
    *arr = p;
    return SS_OK;
}

/* Key pair (left column l, right column r) of j; the two must compare (as PostgreSQL: no
 * text = integer), sp the condition's position for the error. */
static int add_key(pctx_t *x, ss_plan_node_t *j, int l, int r, ss_span_t sp, const char *what)
{
    const ss_schema_t *ls = j->in[0] ? j->in[0]->schema : NULL, *rs = j->in[1] ? j->in[1]->schema : NULL;
    ss_coltype_t common;
    if (ls && rs && l < ls->n && r < rs->n && ss__common_type(ls->types[l], rs->types[r], &common))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: %s cannot compare %s with %s: operator does not exist: %s = %s", sp.line,
                         sp.col, what, ls->names[l], rs->names[r], ss_coltype_name(ls->types[l]),
                         ss_coltype_name(rs->types[r]));
    if (ss__push_int(&j->lkeys, j->nkeys, l) || ss__push_int(&j->rkeys, j->nkeys, r))
        return nomem(x);
    j->nkeys++;
    return SS_OK;
}

/* ON: col = col conjuncts across the two sides become key pairs of j, the rest its residual
 * (compiled over the scope sc of left ++ right, the left being lwidth columns wide). */
static int join_condition(pctx_t *x, ss_plan_node_t *j, const ss__scope_t *sc, int lwidth,
                          const ss_ast_expr_t *on)
{
    const ss_ast_expr_t *cj[64];
    int ncj = 0;
    ss__flatten_and(on, cj, &ncj, 64);
    if (ss__too_many_terms(x, on, ncj, 64))
        return SS_ERR_UNSUPPORTED;
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    for (int i = 0; i < ncj; i++) {
        const ss_ast_expr_t *c = cj[i];
        if (c->kind == SS_AX_BINARY && c->op == SS_OP_EQ && c->left->kind == SS_AX_COLUMN &&
            c->right->kind == SS_AX_COLUMN) {
            int s1, s2, a, b;
            int rc = ss__resolve_col(&cc, c->left->table, c->left->name, c->left->span, &s1, &a);
            if (!rc)
                rc = ss__resolve_col(&cc, c->right->table, c->right->name, c->right->span, &s2, &b);
            if (rc)
                return rc;
            if ((a < lwidth) != (b < lwidth)) {
                if ((rc = add_key(x, j, a < lwidth ? a : b, (a < lwidth ? b : a) - lwidth, c->span, "JOIN ... ON")))
                    return rc;
                continue;
            }
        }
        ss_expr_t *e = NULL;
        int rc = ss__compile(&cc, c, &e);
        if (!rc && (rc = ss__check_bool(&cc, e, "JOIN ... ON", c->span)))
            ss_expr_free(e);
        if (rc)
            return rc;
        if (!(j->pred = ss__and_of(j->pred, e)))
            return nomem(x);
    }
    return SS_OK;
}

/* ---------------------------------------------------------------- FROM items */

static const char *item_name(const ss_ast_from_t *f)
{
    return f->alias ? f->alias : f->kind == SS_FROM_SUBQUERY ? "unnamed_subquery" : f->name;
}

/* The node of a FROM item that is not a join, planned once per SELECT (pushdown sees it first). */
static int item_node(pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t **out, const char **what)
{
    ss__selstate_t *st = &x->sel;
    for (int i = 0; i < st->nleaf; i++)
        if (st->leaf[i] == f) {
            *out = st->leaf_node[i];
            *what = st->leaf_what[i];
            return SS_OK;
        }
    int rc;
    if (f->kind == SS_FROM_SUBQUERY) {
        *what = "subquery";
        rc = ss__plan_subquery(x, f->sub, out);
    } else {
        rc = ss__input_node(x, f->name, f->span, out, what);
        if (!rc && f->kind == SS_FROM_SEM_SEARCH) /* its node: WHERE filters the k rows it keeps */
            rc = ss__plan_sem_search(x, f, *out, out);
    }
    if (!rc && st->nleaf < SS__MAX_RELS) {
        st->leaf[st->nleaf] = f;
        st->leaf_node[st->nleaf] = *out;
        st->leaf_what[st->nleaf++] = *what;
    }
    return rc;
}

/* ---------------------------------------------------------------- pushdown */

typedef struct leaf {
    const char *name;         /* alias or stream/view name */
    const ss_schema_t *schema;
    int nullable;             /* padded with NULLs by an outer join: filtering it early would change results */
} leaf_t;

static int collect_leaves(pctx_t *x, const ss_ast_from_t *f, int nullable, leaf_t *out, int *n)
{
    if (f->kind == SS_FROM_JOIN || f->kind == SS_FROM_SEM_JOIN || f->kind == SS_FROM_SEM_SIM_JOIN) {
        ss_join_type_t jt = f->kind == SS_FROM_JOIN ? f->join_type : SS_JOIN_INNER;
        int rc = collect_leaves(x, f->left, nullable || jt == SS_JOIN_RIGHT || jt == SS_JOIN_FULL, out, n);
        /* the nearest rows of a SEM_SIM_JOIN are found among all right rows: WHERE filters them after */
        int rn = nullable || jt == SS_JOIN_LEFT || jt == SS_JOIN_FULL || f->kind == SS_FROM_SEM_SIM_JOIN;
        return rc ? rc : collect_leaves(x, f->right, rn, out, n);
    }
    ss_plan_node_t *node;
    const char *what;
    int rc = item_node(x, f, &node, &what);
    if (rc)
        return rc;
    if (*n < SS__MAX_RELS)
        out[(*n)++] = (leaf_t){.name = item_name(f), .schema = node->schema, .nullable = nullable};
    return SS_OK;
}

static int is_subquery(const ss_ast_expr_t *e)
{
    return e->kind == SS_AX_SUBQUERY || e->kind == SS_AX_EXISTS || e->kind == SS_AX_IN_SELECT;
}

/* The single leaf every column of e reads (-1: none, several, or unresolvable: leave it alone). */
static int conj_leaf(const ss_ast_expr_t *e, const leaf_t *lv, int nl, int cur)
{
    if (!e || cur == -2)
        return cur;
    if (e->kind == SS_AX_SEM || e->kind == SS_AX_STAR || is_subquery(e) || e->over ||
        (e->kind == SS_AX_FUNC && ss__is_agg_name(e->name)))
        return -2;
    if (e->kind == SS_AX_COLUMN) {
        int found = -1, hits = 0;
        for (int i = 0; i < nl; i++) {
            if (e->table ? !ss_strcaseeq(e->table, lv[i].name) : ss_schema_find(lv[i].schema, e->name) < 0)
                continue;
            found = i;
            hits++;
        }
        if (hits != 1 || (cur >= 0 && cur != found))
            return -2;
        return found;
    }
    cur = conj_leaf(e->left, lv, nl, cur);
    cur = conj_leaf(e->right, lv, nl, cur);
    for (int i = 0; e->args && i < e->args->n; i++)
        cur = conj_leaf(e->args->items[i], lv, nl, cur);
    return cur;
}

int ss__plan_pushdown(pctx_t *x, const ss_ast_select_t *s)
{
    ss__selstate_t *st = &x->sel;
    st->npush = st->nkeyc = 0;
    if (!s->where || !s->from || (s->from->kind != SS_FROM_JOIN && s->from->kind != SS_FROM_SEM_JOIN))
        return SS_OK;
    leaf_t lv[SS__MAX_RELS];
    int nl = 0;
    int rc = collect_leaves(x, s->from, 0, lv, &nl);
    if (rc)
        return rc;
    const ss_ast_expr_t *cj[64];
    int ncj = 0;
    ss__flatten_and(s->where, cj, &ncj, 64);
    ncj = SS_MIN(ncj, 64); /* (the rest are planned with the WHERE filter) */
    for (int i = 0; i < ncj; i++) {
        const ss_ast_expr_t *c = cj[i];
        int l = conj_leaf(c, lv, nl, -1);
        if (l >= 0 && !lv[l].nullable) {
            st->push[st->npush] = c;
            st->push_to[st->npush] = lv[l].name;
            st->pushed[st->npush++] = 0;
        } else if (l == -2 && c->kind == SS_AX_BINARY && c->op == SS_OP_EQ && c->left->kind == SS_AX_COLUMN &&
                   c->right->kind == SS_AX_COLUMN) {
            int a = conj_leaf(c->left, lv, nl, -1), b = conj_leaf(c->right, lv, nl, -1);
            if (a < 0 || b < 0 || a == b)
                continue;
            st->keyc[st->nkeyc] = c;
            st->keyc_leaf[st->nkeyc][0] = lv[a].name;
            st->keyc_leaf[st->nkeyc][1] = lv[b].name;
            st->keyc_used[st->nkeyc++] = 0;
        }
    }
    return SS_OK;
}

int ss__is_pushed(const pctx_t *x, const ss_ast_expr_t *e)
{
    for (int i = 0; i < x->sel.npush; i++)
        if (x->sel.push[i] == e && x->sel.pushed[i])
            return 1;
    for (int i = 0; i < x->sel.nkeyc; i++)
        if (x->sel.keyc[i] == e && x->sel.keyc_used[i])
            return 1;
    return 0;
}

/* At a FROM item: one FILTER of the conjuncts pushed down to it. */
static int push_filters(pctx_t *x, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    ss_expr_t *pred = NULL;
    for (int i = 0; i < x->sel.npush; i++) {
        if (x->sel.pushed[i] || !ss_strcaseeq(x->sel.push_to[i], sc->rels[0].name))
            continue;
        ss_expr_t *e = NULL;
        int rc = ss__compile(&cc, x->sel.push[i], &e);
        if (!rc && (rc = ss__check_bool(&cc, e, "WHERE", x->sel.push[i]->span)))
            ss_expr_free(e);
        if (rc) {
            ss_expr_free(pred);
            return rc;
        }
        if (!(pred = ss__and_of(pred, e)))
            return nomem(x);
        x->sel.pushed[i] = 1;
        if (!strcmp(sc->rels[0].what, "subquery")) /* WHERE rn <= N over a ranking subquery */
            ss__window_pushdown(x, *cur, sc, x->sel.push[i]);
    }
    if (!pred)
        return SS_OK;
    ss_plan_node_t *f = ss__node_like(x, SS_PN_FILTER, *cur, "where");
    if (!f) {
        ss_expr_free(pred);
        return nomem(x);
    }
    f->pred = pred;
    *cur = f;
    return SS_OK;
}

static int scope_has(const ss__scope_t *sc, const char *rel)
{
    for (int i = 0; i < sc->nrels; i++)
        if (ss_strcaseeq(sc->rels[i].name, rel))
            return 1;
    return 0;
}

/* WHERE a.x = b.y with a on the left and b on the right of an inner join: a key of j. */
static int absorb_where_keys(pctx_t *x, ss_plan_node_t *j, const ss__scope_t *ls, const ss__scope_t *rs,
                             const ss__scope_t *both, int lwidth)
{
    ss__selstate_t *st = &x->sel;
    ss__cctx_t cc = {.scope = both, .err = x->err, .errsz = x->errsz};
    for (int i = 0; i < st->nkeyc; i++) {
        const char *a = st->keyc_leaf[i][0], *b = st->keyc_leaf[i][1];
        if (st->keyc_used[i] || !((scope_has(ls, a) && scope_has(rs, b)) || (scope_has(ls, b) && scope_has(rs, a))))
            continue;
        const ss_ast_expr_t *c = st->keyc[i];
        int s1, s2, ca, cb;
        int rc = ss__resolve_col(&cc, c->left->table, c->left->name, c->left->span, &s1, &ca);
        if (!rc)
            rc = ss__resolve_col(&cc, c->right->table, c->right->name, c->right->span, &s2, &cb);
        if (rc)
            return rc;
        if ((ca < lwidth) == (cb < lwidth))
            continue;
        if ((rc = add_key(x, j, ca < lwidth ? ca : cb, (ca < lwidth ? cb : ca) - lwidth, c->span, "WHERE")))
            return rc;
        st->keyc_used[i] = 1;
    }
    return SS_OK;
}

/* ---------------------------------------------------------------- joins */

/* USING (cols) or NATURAL: the key column pairs (left column in ls's row, right in rs's). */
static int using_columns(pctx_t *x, const ss_ast_from_t *f, const ss__scope_t *ls, const ss__scope_t *rs,
                         int *lc, int *rc_, const char **names, int *n)
{
    char scratch[SS_ERRSZ];
    ss__cctx_t lcc = {.scope = ls, .err = x->err, .errsz = x->errsz};
    ss__cctx_t rcc = {.scope = rs, .err = x->err, .errsz = x->errsz};
    *n = 0;
    if (f->nusing > 32)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many USING columns (at most 32)",
                         f->using_spans[32].line, f->using_spans[32].col);
    if (f->natural) { /* every name both sides show (in the right side's order of `*`) */
        ss__cctx_t quiet = {.scope = ls, .err = scratch, .errsz = sizeof scratch};
        for (int r = 0; r < rs->nrels; r++)
            for (int c = rs->rels[r].off; c < rs->rels[r].off + rs->rels[r].n; c++) {
                const char *nm = rs->schema->names[c];
                int side, col, dup = 0;
                for (int k = 0; k < *n; k++)
                    dup |= ss_strcaseeq(names[k], nm);
                if (!dup && !ss__resolve_col(&quiet, NULL, nm, f->span, &side, &col)) {
                    if (*n == 32)
                        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                                         "%d:%d: NATURAL JOIN on too many columns (at most 32)", f->span.line,
                                         f->span.col);
                    names[(*n)++] = nm;
                }
            }
    } else {
        for (int i = 0; i < f->nusing; i++)
            names[(*n)++] = f->using_cols[i];
    }
    for (int i = 0; i < *n; i++) {
        ss_span_t sp = f->natural ? f->span : f->using_spans[i];
        int side, rc = ss__resolve_col(&lcc, NULL, names[i], sp, &side, &lc[i]);
        if (rc && !strstr(x->err, " is ambiguous"))
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: column \"%s\" named in USING is not in the left side of the join", sp.line,
                             sp.col, names[i]);
        if (!rc && (rc = ss__resolve_col(&rcc, NULL, names[i], sp, &side, &rc_[i])) && !strstr(x->err, " is ambiguous"))
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: column \"%s\" named in USING is not in the right side of the join", sp.line,
                             sp.col, names[i]);
        if (rc)
            return rc;
    }
    return SS_OK;
}

/* RIGHT JOIN: l RIGHT JOIN r = r LEFT JOIN l, then the columns back in l ++ r order. */
static int reorder_project(pctx_t *x, ss_plan_node_t *j, int lw, int rw, const ss_schema_t *schema,
                           ss_plan_node_t **out)
{
    ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, j, NULL, "right join columns");
    if (!p || !(p->schema = ss_schema_copy(schema)) || !(p->exprs = calloc((size_t)(lw + rw), sizeof *p->exprs)))
        return nomem(x);
    for (int i = 0; i < lw + rw; i++) {
        if (!(p->exprs[i] = ss_expr_new(SS_EX_COL)))
            return nomem(x);
        p->nexprs = i + 1;
        p->exprs[i]->col = i < lw ? rw + i : i - lw;
        p->exprs[i]->type = schema->types[i];
    }
    *out = p;
    return SS_OK;
}

/* Keys of j from USING pairs (swapped: j's inputs are right, left) and from ON, compiled over the
 * scope sc of j's left input ++ its right input (lwidth columns on the left). */
static int join_on(pctx_t *x, ss_plan_node_t *j, int swap, const int *lc, const int *rc_, int nus,
                   const ss_ast_from_t *f, const ss__scope_t *sc, int lwidth)
{
    const ss_ast_expr_t *on = f->on;
    for (int i = 0; i < nus; i++) {
        ss_span_t sp = !f->natural && i < f->nusing ? f->using_spans[i] : f->span;
        int rc = add_key(x, j, swap ? rc_[i] : lc[i], swap ? lc[i] : rc_[i], sp, f->natural ? "NATURAL JOIN" : "JOIN ... USING");
        if (rc)
            return rc;
    }
    return on ? join_condition(x, j, sc, lwidth, on) : SS_OK;
}

/* FULL JOIN: the LEFT JOIN j plus the right rows without a match (an anti semijoin of r against
 * l on the same condition, compiled over `swapped` = r ++ l), padded with NULLs on the left. */
static int full_join_rest(pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t *j, ss_plan_node_t *l,
                          ss_plan_node_t *r, const int *lc, const int *rc_, int nus, const ss__scope_t *swapped,
                          ss_plan_node_t **out)
{
    int lw = l->schema->n, rw = r->schema->n;
    ss_plan_node_t *a = ss__new_node(x, SS_PN_SEMIJOIN, r, l, "full join: right rows without a match");
    if (!a || !(a->schema = ss_schema_copy(r->schema)))
        return nomem(x);
    a->semi_mode = SS_SEMI_ANTI;
    int rc = join_on(x, a, 1, lc, rc_, nus, f, swapped, rw);
    if (rc)
        return rc;
    ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, a, NULL, "full join: pad with NULLs");
    if (!p || !(p->schema = ss_schema_copy(j->schema)) || !(p->exprs = calloc((size_t)(lw + rw), sizeof *p->exprs)))
        return nomem(x);
    for (int i = 0; i < lw + rw; i++) {
        if (!(p->exprs[i] = ss_expr_new(i < lw ? SS_EX_LIT : SS_EX_COL)))
            return nomem(x);
        p->nexprs = i + 1;
        p->exprs[i]->col = i < lw ? -1 : i - lw;
        p->exprs[i]->type = j->schema->types[i];
    }
    ss_plan_node_t *u = ss__new_node(x, SS_PN_UNION, j, p, "full join");
    if (!u || !(u->schema = ss_schema_copy(j->schema)))
        return nomem(x);
    *out = u;
    return SS_OK;
}

/* USING / NATURAL after the join: unqualified names of the joined columns mean one column
 * (FULL: a COALESCE of both copies, appended by a PROJECT), and `*` shows it once, first. */
static int merge_using(pctx_t *x, ss_join_type_t jt, const int *lc, const int *rc_, const char **names, int n,
                       int lw, ss__scope_t *sc, ss_plan_node_t **cur)
{
    ss_plan_node_t *in = *cur;
    int w = in->schema->n;
    if (jt == SS_JOIN_FULL && n) {
        ss_plan_node_t *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "using columns");
        if (!p || !(p->schema = ss_schema_new(w + n)) || !(p->exprs = calloc((size_t)(w + n), sizeof *p->exprs)))
            return nomem(x);
        for (int i = 0; i < w + n; i++) {
            ss_expr_t *e = ss_expr_new(i < w ? SS_EX_COL : SS_EX_FUNC);
            if (!e)
                return nomem(x);
            p->exprs[i] = e;
            p->nexprs = i + 1;
            if (i < w) {
                e->col = i;
                e->type = in->schema->types[i];
            } else if (!(e->func = ss_strdup("COALESCE")) || !(e->args = calloc(2, sizeof *e->args)) ||
                       (e->nargs = 2, !(e->args[0] = ss_expr_new(SS_EX_COL))) || !(e->args[1] = ss_expr_new(SS_EX_COL))) {
                return nomem(x);
            } else {
                e->args[0]->col = lc[i - w];
                e->args[1]->col = lw + rc_[i - w];
                e->args[0]->type = in->schema->types[lc[i - w]];
                e->args[1]->type = in->schema->types[lw + rc_[i - w]];
                e->type = e->args[0]->type == e->args[1]->type ? e->args[0]->type : SS_COL_ANY;
            }
            if (ss_schema_set(p->schema, i, i < w ? in->schema->names[i] : names[i - w], e->type,
                              i < w && in->schema->is_key[i]))
                return nomem(x);
        }
        *cur = p;
        sc->schema = p->schema;
    }
    for (int i = 0; i < n; i++) {
        int merged = jt == SS_JOIN_FULL ? w + i : jt == SS_JOIN_RIGHT ? lw + rc_[i] : lc[i];
        int k = -1;
        for (int m = 0; m < sc->nmerged; m++)
            if (ss_strcaseeq(sc->merged[m].name, names[i]))
                k = m; /* a USING column joined again: the new merge replaces it */
        if (k < 0 && sc->nmerged == (int)SS_ARRAY_LEN(sc->merged))
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "too many USING columns");
        if (k < 0)
            k = sc->nmerged++;
        sc->merged[k].name = names[i];
        sc->merged[k].col = merged;
        if (sc->nhidden + 2 > (int)SS_ARRAY_LEN(sc->hidden))
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "too many USING columns");
        sc->hidden[sc->nhidden++] = lc[i];
        sc->hidden[sc->nhidden++] = lw + rc_[i];
    }
    return SS_OK;
}

static int plan_sem_join(pctx_t *x, const ss_ast_from_t *f, ss__scope_t *sc, ss__scope_t *ls, ss__scope_t *rs,
                         ss_plan_node_t *l, ss_plan_node_t *r, ss_plan_node_t **out)
{
    char label[160];
    int sim = f->kind == SS_FROM_SEM_SIM_JOIN; /* a SEM_SIM_JOIN: k nearest, plus a similarity column */
    snprintf(label, sizeof label, "%s %s %s", ls->rels[0].name, sim ? "SEM_SIM_JOIN" : "SEM_JOIN", rs->rels[0].name);
    if (sim && (f->k < 1 || f->k > 100000))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_SIM_JOIN needs LIMIT k from 1 to 100000",
                         f->span.line, f->span.col);
    if (sim && (ss_schema_find(l->schema, "similarity") >= 0 || ss_schema_find(r->schema, "similarity") >= 0))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: SEM_SIM_JOIN adds a column \"similarity\", which an input already has (rename it upstream)",
                         f->span.line, f->span.col);
    ss_plan_node_t *j = ss__new_node(x, sim ? SS_PN_SEM_SIM_JOIN : SS_PN_SEM_JOIN, l, r, label);
    if (!j || !(j->schema = ss__concat_schema(l->schema, r->schema)))
        return nomem(x);
    if (sim) {
        ss_schema_t *w = ss_schema_new(j->schema->n + 1);
        for (int c = 0; w && c < j->schema->n; c++)
            if (ss_schema_set(w, c, j->schema->names[c], j->schema->types[c], j->schema->is_key[c])) {
                ss_schema_free(w);
                w = NULL;
            }
        if (!w || ss_schema_set(w, j->schema->n, "similarity", SS_COL_REAL, 0))
            return nomem(x);
        ss_schema_free(j->schema);
        j->schema = w;
        j->limit = f->k;
    }
    /* the template sees each side as its own row: side 0 = left, side 1 = right */
    ss__scope_t two = *ls;
    two.side_schema[0] = l->schema;
    two.side_schema[1] = r->schema;
    int rc = merge_scopes(x, &two, rs, 0, 0, 1, f->span);
    ss__cctx_t cc = {.scope = &two, .err = x->err, .errsz = x->errsz};
    if (!rc)
        rc = ss__template(&cc, f->tmpl ? f->tmpl : "", f->tmpl_span, 3, &j->tmpl);
    if (!rc)
        rc = ss__sem_options(x, j, f->opts);
    *sc = *ls;
    if (!rc)
        rc = merge_scopes(x, sc, rs, l->schema->n, 1, 0, f->span);
    if (!rc && sim)
        sc->rels[sc->nrels - 1].n++; /* similarity reads as a column of the right side */
    sc->schema = j->schema;
    *out = j;
    return rc;
}

static int plan_join(pctx_t *x, const ss_ast_from_t *f, ss__scope_t *sc, ss_plan_node_t **out)
{
    ss__scope_t ls, rs, swapped;
    ss_plan_node_t *l, *r;
    int rc = ss__plan_from(x, f->left, &ls, &l);
    if (!rc)
        rc = ss__plan_from(x, f->right, &rs, &r);
    if (rc)
        return rc;
    if (f->kind == SS_FROM_SEM_JOIN || f->kind == SS_FROM_SEM_SIM_JOIN)
        return plan_sem_join(x, f, sc, &ls, &rs, l, r, out);
    ss_join_type_t jt = f->join_type;
    int lw = l->schema->n, rw = r->schema->n, outer2 = jt == SS_JOIN_RIGHT || jt == SS_JOIN_FULL;
    int lc[32], rcol[32], nus = 0;
    const char *names[32];
    if ((f->nusing || f->natural) && (rc = using_columns(x, f, &ls, &rs, lc, rcol, names, &nus)))
        return rc;
    static const char *const jname[] = {"JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "CROSS JOIN"};
    char label[160];
    snprintf(label, sizeof label, "%s %s %s", ls.rels[0].name, jname[jt <= SS_JOIN_CROSS ? jt : 0], rs.rels[0].name);
    /* the scope of left ++ right (the output), and of right ++ left (RIGHT and FULL compile ON over it) */
    *sc = ls;
    if ((rc = merge_scopes(x, sc, &rs, lw, 1, 0, f->span)))
        return rc;
    swapped = rs;
    if (outer2 && (rc = merge_scopes(x, &swapped, &ls, rw, 1, 0, f->span)))
        return rc;
    ss_schema_t *lr = ss__concat_schema(l->schema, r->schema), *rl = NULL;
    ss_plan_node_t *j = jt == SS_JOIN_RIGHT ? ss__new_node(x, SS_PN_JOIN, r, l, label)
                                            : ss__new_node(x, SS_PN_JOIN, l, r, label);
    if (!lr || !j || (outer2 && !(rl = ss__concat_schema(r->schema, l->schema)))) {
        ss_schema_free(lr);
        return nomem(x);
    }
    swapped.schema = rl;
    sc->schema = lr;
    j->join_type = outer2 ? SS_JOIN_LEFT : jt;
    ss_plan_node_t *cur = j;
    if (jt == SS_JOIN_RIGHT) { /* r LEFT JOIN l, then back to l ++ r */
        j->schema = rl;
        rl = NULL;
        rc = join_on(x, j, 1, lc, rcol, nus, f, &swapped, rw);
        if (!rc)
            rc = reorder_project(x, j, lw, rw, lr, &cur);
        ss_schema_free(lr);
    } else {
        j->schema = lr;
        rc = join_on(x, j, 0, lc, rcol, nus, f, sc, lw);
        if (!rc && jt != SS_JOIN_LEFT && jt != SS_JOIN_FULL)
            rc = absorb_where_keys(x, j, &ls, &rs, sc, lw);
        if (!rc && jt == SS_JOIN_FULL)
            rc = full_join_rest(x, f, j, l, r, lc, rcol, nus, &swapped, &cur);
    }
    ss_schema_free(rl);
    sc->schema = cur->schema;
    if (!rc && nus)
        rc = merge_using(x, jt, lc, rcol, names, nus, lw, sc, &cur);
    *out = cur;
    return rc;
}

int ss__plan_from(pctx_t *x, const ss_ast_from_t *f, ss__scope_t *sc, ss_plan_node_t **out)
{
    memset(sc, 0, sizeof *sc);
    if (f->kind == SS_FROM_JOIN || f->kind == SS_FROM_SEM_JOIN || f->kind == SS_FROM_SEM_SIM_JOIN)
        return plan_join(x, f, sc, out);
    const char *what = NULL;
    int rc = item_node(x, f, out, &what);
    if (rc)
        return rc;
    sc->nrels = 1;
    sc->rels[0] = (ss__rel_t){.name = item_name(f), .table = f->kind == SS_FROM_SUBQUERY ? item_name(f) : (*out)->label,
                              .what = what, .off = 0, .n = (*out)->schema->n, .side = 0};
    sc->schema = (*out)->schema;
    return push_filters(x, sc, out);
}
