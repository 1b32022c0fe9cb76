/*
 * planner.c — implements the planner half of ss_catalog.h (ss_plan_build,
 * ss_plan_query): lowers a view's AST into operator DAG nodes. FROM becomes
 * SOURCE nodes (one per stream, shared by every view), upstream VIEW nodes
 * (views reading views), JOIN (equi-keys taken from ON conjunctions) and
 * SEM_JOIN; WHERE becomes one FILTER of the ordinary conjuncts followed by one
 * SEM_FILTER per SEM_FILTER call (cheap predicates first, so fewer rows reach the
 * model); ORDER BY SEM_RANK/SEM_SCORE + LIMIT becomes SEM_TOPK, ordinary ORDER
 * BY + LIMIT TOPK; SEM_MAP items become SEM_MAP nodes; aggregates GROUP, SEM_AGG
 * the SEM_AGG node; LLM_GENERATE its own node; then PROJECT, DISTINCT and the
 * VIEW node. Node ids are stable (see plan_int.h). Name resolution and
 * expression compilation live in plan_expr.c, semantic options and
 * LLM_GENERATE in plan_sem.c.
 */
#include "plan_int.h"

#include "ss_jschema.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int plan_view_into(const ss_catalog_t *cat, ss_plan_t *plan, const char *name,
                          const ss_ast_query_t *q, const ss_ast_options_t *opts, int64_t seq, int depth,
                          char *err, size_t errsz);

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

/* ---------------------------------------------------------------- nodes */

static int plan_push(ss_plan_t *p, ss_plan_node_t *n)
{
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        ss_plan_node_t **a = realloc(p->nodes, (size_t)cap * sizeof *a);
        if (!a)
            return SS_ERR_NOMEM;
        p->nodes = a;
        p->cap = cap;
    }
    p->nodes[p->n++] = n;
    return SS_OK;
}

/* Creates a node of the current view, appends it to the plan (which owns it from then on). */
ss_plan_node_t *ss__new_node(pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in0, ss_plan_node_t *in1,
                                const char *label)
{
    ss_plan_node_t *n = ss_plan_node_new(k);
    if (!n)
        return NULL;
    n->id = (int)(x->id_base + ++x->nlocal);
    n->view = ss_strdup(x->view);
    n->label = ss_strdup(label ? label : ss_plan_kind_name(k));
    n->in[0] = in0;
    n->in[1] = in1;
    n->nin = in1 ? 2 : in0 ? 1 : 0;
    if (!n->view || !n->label || plan_push(x->plan, n)) {
        ss_plan_node_free(n);
        return NULL;
    }
    return n;
}

static ss_plan_node_t *find_node(const ss_plan_t *p, ss_plan_kind_t k, const char *label)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i]->kind == k && ss_strcaseeq(p->nodes[i]->label, label))
            return p->nodes[i];
    return NULL;
}

/* A node with the same schema as its input (filters, top-k). */
ss_plan_node_t *ss__node_like(pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in, const char *label)
{
    ss_plan_node_t *n = ss__new_node(x, k, in, NULL, label);
    if (n && !(n->schema = ss_schema_copy(in->schema)))
        return NULL;
    return n;
}

/* The SOURCE node of a stream in the current view, or the VIEW node of a view (planned
 * on demand). Every view reads its streams through SOURCE nodes of its own (ids of the
 * view's range, state and input positions of their own), so views progress
 * independently; a view that reads another view shares that view's nodes. */
int ss__input_node(pctx_t *x, const char *name, ss_span_t sp, ss_plan_node_t **out, const char **what)
{
    int is_cte = 0, rc = ss__cte_node(x, name, sp, out, &is_cte);
    if (rc || is_cte) {
        *what = "WITH query";
        return rc;
    }
    const ss_cat_stream_t *s = ss_catalog_stream(x->cat, name);
    if (s) {
        *what = "stream";
        for (int i = 0; i < x->plan->n; i++) {
            ss_plan_node_t *n = x->plan->nodes[i];
            if (n->kind == SS_PN_SOURCE && ss_strcaseeq(n->label, s->name) && n->view && ss_strcaseeq(n->view, x->view)) {
                *out = n;
                return SS_OK;
            }
        }
        ss_plan_node_t *n = ss__new_node(x, SS_PN_SOURCE, NULL, NULL, s->name);
        if (!n)
            return nomem(x);
        int rc = !(n->schema = ss_schema_copy(s->schema));
        rc = rc || ss__opts_add(&n->nopts, &n->opts, "topic", s->topic);
        rc = rc || ss__opts_add(&n->nopts, &n->opts, "format", s->format);
        for (int i = 0; !rc && i < s->nopts; i++)
            if (!ss_strcaseeq(s->opts[i].name, "topic") && !ss_strcaseeq(s->opts[i].name, "format"))
                rc = ss__opts_add(&n->nopts, &n->opts, s->opts[i].name, s->opts[i].value);
        if (rc)
            return nomem(x);
        *out = n;
        return SS_OK;
    }
    const ss_cat_view_t *v = ss_catalog_view(x->cat, name);
    if (v && !ss_strcaseeq(v->name, x->view)) {
        *what = "view";
        ss_plan_node_t *n = find_node(x->plan, SS_PN_VIEW, v->name);
        if (!n) {
            if (x->depth > 64)
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: views nest too deeply at %s",
                                 sp.line, sp.col, name);
            int rc = plan_view_into(x->cat, x->plan, v->name, v->stmt->query, v->stmt->opts,
                                    ss__catalog_seq(x->cat, SS_OBJ_VIEW, v->name), x->depth + 1,
                                    x->err, x->errsz);
            if (rc) {
                ss_errprefix(x->err, x->errsz, "in upstream view %s", v->name);
                return rc;
            }
            n = find_node(x->plan, SS_PN_VIEW, v->name);
        }
        *out = n;
        return n ? SS_OK : ss_seterr(x->err, x->errsz, SS_ERR_INTERNAL, "view %s has no plan", name);
    }
    const char *cands[512];
    int nc = 0;
    for (int i = 0; i < ss_catalog_nstreams(x->cat) && nc < 512; i++)
        cands[nc++] = ss_catalog_stream_at(x->cat, i)->name;
    for (int i = 0; i < ss_catalog_nviews(x->cat) && nc < 512; i++)
        cands[nc++] = ss_catalog_view_at(x->cat, i)->name;
    const char *best = ss_suggest(name, cands, nc);
    return ss_seterr(x->err, x->errsz, SS_ERR_NOTFOUND, "%d:%d: unknown stream or view \"%s\"%s%s%s",
                     sp.line, sp.col, name, best ? " (did you mean \"" : "", best ? best : "",
                     best ? "\"?)" : "");
}

/* ---------------------------------------------------------------- SELECT helpers */

/* First SEM call of kind `k` (any kind when k == SS_SEM_NONE) inside e, or NULL. */
static const ss_ast_expr_t *find_sem(const ss_ast_expr_t *e, ss_sem_kind_t k)
{
    if (!e)
        return NULL;
    if (e->kind == SS_AX_SEM && (k == SS_SEM_NONE || e->sem == k))
        return e;
    const ss_ast_expr_t *r = find_sem(e->left, k);
    if (!r)
        r = find_sem(e->right, k);
    for (int i = 0; !r && e->args && i < e->args->n; i++)
        r = find_sem(e->args->items[i], k);
    return r;
}

/* First aggregate call (COUNT/SUM/.. or SEM_AGG) inside e, or NULL. */
static const ss_ast_expr_t *find_agg(const ss_ast_expr_t *e)
{
    if (!e)
        return NULL;
    if ((e->kind == SS_AX_FUNC && !e->over && ss__is_agg_name(e->name)) || (e->kind == SS_AX_SEM && e->sem == SS_SEM_AGG))
        return e;
    const ss_ast_expr_t *r = find_agg(e->left);
    if (!r)
        r = find_agg(e->right);
    for (int i = 0; !r && e->args && i < e->args->n; i++)
        r = find_agg(e->args->items[i]);
    return r;
}

static const ss_ast_expr_t *find_sem_append(const ss_ast_expr_t *e);
static void collect_sem_maps(const ss_ast_expr_t *e, const ss_ast_expr_t **out, int *n, int max);
static int plan_sem_conditions(pctx_t *x, const ss_ast_expr_t **cj, int n, ss__scope_t *sc, ss_plan_node_t **cur,
                               ss__premap_t *pm);

/* WHERE: ordinary conjuncts in one FILTER first, then one SEM_FILTER per SEM_FILTER call, then
 * the conjuncts over values such as SEM_CLASSIFY(...) (their operators, then one FILTER). */
int ss__plan_conditions(pctx_t *x, const ss_ast_expr_t **cjin, int ncj, ss__scope_t *sc, ss_plan_node_t **cur,
                        ss__premap_t *pm)
{
    const ss_ast_expr_t *cj[128];
    ncj = SS_MIN(ncj, 128);
    memcpy(cj, cjin, (size_t)ncj * sizeof *cj);
    int rc0 = ss__plan_subqueries(x, cj, &ncj, sc, cur, pm);
    if (rc0)
        return rc0;
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    ss_expr_t *pred = NULL;
    const ss_ast_expr_t *later[128];
    int rc = SS_OK, nlater = 0;
    for (int i = 0; i < ncj && !rc; i++) {
        if ((cj[i]->kind == SS_AX_SEM && cj[i]->sem == SS_SEM_FILTER) || ss__is_pushed(x, cj[i]) ||
            ss__is_temporal(cj[i])) /* NOW() conjuncts: the temporal filter below (plan_temporal.c) */
            continue;
        const ss_ast_expr_t *s = find_sem(cj[i], SS_SEM_NONE), *a = find_agg(cj[i]);
        if (s && s->sem != SS_SEM_FILTER && !find_agg(cj[i]) && find_sem_append(cj[i]) &&
            !find_sem(cj[i], SS_SEM_FILTER))
            later[nlater++] = cj[i];
        else if (s && s->sem == SS_SEM_FILTER)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: SEM_FILTER must be a top-level AND term of WHERE (not under OR/NOT or inside an expression)",
                           s->span.line, s->span.col);
        else if (a)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: aggregates are not allowed in WHERE (use HAVING)", a->span.line, a->span.col);
        else {
            ss_expr_t *e = NULL;
            if (!(rc = ss__compile(&cc, cj[i], &e)) && (rc = ss__check_bool(&cc, e, "WHERE", cj[i]->span)))
                ss_expr_free(e);
            else if (!rc && !(pred = ss__and_of(pred, e)))
                rc = nomem(x);
        }
    }
    if (rc) {
        ss_expr_free(pred);
        return rc;
    }
    if (pred) {
        ss_plan_node_t *f = ss__node_like(x, SS_PN_FILTER, *cur, "where");
        if (!f) {
            ss_expr_free(pred);
            return nomem(x);
        }
        f->pred = pred;
        *cur = f;
    }
    if ((rc = ss__plan_temporal(x, cj, ncj, sc, cur))) /* rows valid while NOW() passes (plan_temporal.c) */
        return rc;
    for (int i = 0; i < ncj; i++) {
        if (!(cj[i]->kind == SS_AX_SEM && cj[i]->sem == SS_SEM_FILTER))
            continue;
        ss_plan_node_t *f = ss__node_like(x, SS_PN_SEM_FILTER, *cur, "sem_filter");
        if (!f)
            return nomem(x);
        if ((rc = ss__template(&cc, cj[i]->tmpl ? cj[i]->tmpl : "", cj[i]->tmpl_span, 1, &f->tmpl)) ||
            (rc = ss__sem_options(x, f, cj[i]->opts)))
            return rc;
        *cur = f;
    }
    return nlater ? plan_sem_conditions(x, later, nlater, sc, cur, pm) : SS_OK;
}

/* Conjuncts that read SEM_CLASSIFY(...) and the like: the operators of those calls append their
 * values to the row (recorded in pm, so that the conjuncts compile to these columns), then one
 * FILTER tests the conjuncts. */
static int plan_sem_conditions(pctx_t *x, const ss_ast_expr_t **cj, int n, ss__scope_t *sc, ss_plan_node_t **cur,
                               ss__premap_t *pm)
{
    int rc = SS_OK;
    const ss_ast_expr_t *calls[33];
    int ncalls = 0;
    for (int i = 0; i < n; i++)
        collect_sem_maps(cj[i], calls, &ncalls, 33);
    for (int c = 0; c < ncalls && !rc; c++) {
        const ss_ast_expr_t *m = calls[c];
        {
            if (m->sem == SS_SEM_EXTRACT)
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: SEM_EXTRACT yields several columns and cannot be used in WHERE (extract in an "
                                 "upstream view, or use SEM_MAP(..., schema => '...') ->> 'field')",
                                 m->span.line, m->span.col);
            if (pm->n == (int)SS_ARRAY_LEN(pm->ast))
                return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many semantic calls in WHERE",
                                 m->span.line, m->span.col);
            int col = 0;
            ss_coltype_t t = SS_COL_TEXT;
            char name[32];
            snprintf(name, sizeof name, "where_sem_%d", pm->n + 1);
            if ((rc = ss__plan_sem_append(x, m, name, sc, cur, &col, &t)))
                break;
            ss_expr_t *e = ss_expr_new(SS_EX_COL);
            if (!e)
                return nomem(x);
            e->col = col;
            e->type = t;
            if (sc->pre != pm) {
                pm->next = sc->pre;
                sc->pre = pm;
            }
            pm->ast[pm->n] = m;
            pm->expr[pm->n++] = e;
        }
    }
    sc->schema = (*cur)->schema;
    ss__cctx_t cc = {.scope = sc, .pre = pm, .err = x->err, .errsz = x->errsz};
    ss_expr_t *pred = NULL;
    for (int i = 0; i < n && !rc; i++) {
        ss_expr_t *e = NULL;
        if (!(rc = ss__compile(&cc, cj[i], &e)) && !(pred = ss__and_of(pred, e)))
            rc = nomem(x);
    }
    ss_plan_node_t *f = rc ? NULL : ss__node_like(x, SS_PN_FILTER, *cur, "where (semantic)");
    if (!rc && !f)
        rc = nomem(x);
    if (rc) {
        ss_expr_free(pred);
        return rc;
    }
    f->pred = pred;
    *cur = f;
    return SS_OK;
}

/* One output column of the SELECT list: an expression, or an input column (from '*'). */
typedef struct outcol {
    const ss_ast_expr_t *ast;
    int col;
    const char *name;
    ss_span_t span;
    int sub;                  /* SEM_EXTRACT: which of its columns (ast = the call) */
} outcol_t;

typedef struct sel {
    const ss_ast_select_t *s;
    int n;
    outcol_t *cols;           /* owned array */
    char **gen;               /* generated names; owned */
    int ngen;
    /* SEM_MAP results (AST call -> column index of the row after the SEM_MAP nodes) */
    int nsem;
    const ss_ast_expr_t *sem_ast[32];
    int sem_col[32];
    ss_coltype_t sem_type[32];
} sel_t;

static void sel_free(sel_t *q)
{
    for (int i = 0; i < q->ngen; i++)
        free(q->gen[i]);
    free(q->gen);
    free(q->cols);
}

static const char *gen_name(sel_t *q, char *s)
{
    char **g = s ? realloc(q->gen, (size_t)(q->ngen + 1) * sizeof *g) : NULL;
    if (!g) {
        free(s);
        return NULL;
    }
    q->gen = g;
    g[q->ngen++] = s;
    return s;
}

/* Expands '*' and names every output column (alias, column name, function name or col_N). */
static int expand_items(pctx_t *x, sel_t *q, const ss__scope_t *sc)
{
    const ss_ast_select_t *s = q->s;
    int cap = 0;
    for (int i = 0; i < s->nitems; i++) {
        const ss_ast_expr_t *e = s->items[i].expr;
        int n = 1;
        if (e->kind == SS_AX_SEM && e->sem == SS_SEM_EXTRACT) { /* as many items as it names columns */
            ss_jscol_t *c = NULL;
            int rc = ss__extract_cols(x, e, &c, &n);
            ss_jscols_free(c, n);
            if (rc)
                return rc;
            if (s->items[i].alias)
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: SEM_EXTRACT yields the columns of its list; name them there, not with AS",
                                 s->items[i].span.line, s->items[i].span.col);
        }
        cap += e->kind == SS_AX_STAR ? sc->schema->n + sc->nmerged : n;
    }
    if (!(q->cols = calloc((size_t)cap + 1, sizeof *q->cols)))
        return nomem(x);
    int nsemmap = 0;
    for (int i = 0; i < s->nitems; i++) {
        const ss_ast_select_item_t *it = &s->items[i];
        const ss_ast_expr_t *e = it->expr;
        if (e->kind == SS_AX_STAR) {
            int found = !e->table;
            for (int m = 0; !e->table && m < sc->nmerged; m++) /* USING columns first, once */
                q->cols[q->n++] = (outcol_t){.ast = NULL, .col = sc->merged[m].col, .name = sc->merged[m].name,
                                             .span = it->span};
            for (int r = 0; r < sc->nrels; r++) {
                const ss__rel_t *rel = &sc->rels[r];
                if (e->table && !ss_strcaseeq(e->table, rel->name))
                    continue;
                found = 1;
                for (int c = rel->off; c < rel->off + rel->n; c++) {
                    int hidden = 0;
                    for (int h = 0; !e->table && h < sc->nhidden; h++)
                        hidden |= sc->hidden[h] == c;
                    if (!hidden)
                        q->cols[q->n++] = (outcol_t){.ast = NULL, .col = c, .name = sc->schema->names[c], .span = it->span};
                }
            }
            if (!found)
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: unknown table or alias \"%s\"",
                                 e->span.line, e->span.col, e->table);
            continue;
        }
        if (e->kind == SS_AX_SEM && e->sem == SS_SEM_EXTRACT) {
            ss_jscol_t *c = NULL;
            int n = 0, rc = ss__extract_cols(x, e, &c, &n);
            for (int k = 0; k < n && !rc; k++) {
                outcol_t *o = &q->cols[q->n++];
                *o = (outcol_t){.ast = e, .col = -1, .span = it->span, .sub = k, .name = gen_name(q, ss_strdup(c[k].name))};
                if (!o->name)
                    rc = nomem(x);
            }
            ss_jscols_free(c, n);
            if (rc)
                return rc;
            continue;
        }
        outcol_t *o = &q->cols[q->n++];
        o->ast = e;
        o->col = -1;
        o->span = it->span;
        if (e->kind == SS_AX_SEM && e->sem == SS_SEM_MAP)
            nsemmap++;
        if (it->alias)
            o->name = it->alias;
        else if (e->kind == SS_AX_COLUMN)
            o->name = e->name;
        else if (e->kind == SS_AX_SEM && e->sem == SS_SEM_MAP)
            o->name = gen_name(q, ss_sprintf("sem_map_%d", nsemmap));
        else if (e->kind == SS_AX_SEM && e->sem == SS_SEM_AGG)
            o->name = "summary";
        else if (e->kind == SS_AX_SEM && e->sem != SS_SEM_NONE)
            o->name = gen_name(q, ss_sprintf("%s", e->sem == SS_SEM_CLASSIFY ? "label" : e->sem == SS_SEM_DEDUP ? "entity"
                                                   : e->sem == SS_SEM_GROUP ? "sem_group" : e->sem == SS_SEM_CLUSTER ? "cluster"
                                                   : "sem"));
        else if (e->kind == SS_AX_FUNC) {
            char *nm = ss_strdup(e->name);
            for (char *p = nm; p && *p; p++)
                *p = (char)tolower((unsigned char)*p);
            o->name = gen_name(q, nm);
        } else
            o->name = gen_name(q, ss_sprintf("col_%d", q->n));
        if (!o->name)
            return nomem(x);
    }
    for (int i = 0; i < q->n && !x->names_free; i++)
        for (int j = 0; j < i; j++)
            if (ss_strcaseeq(q->cols[i].name, q->cols[j].name))
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: duplicate output column \"%s\" in view %s (rename one with AS)",
                                 q->cols[i].span.line, q->cols[i].span.col, q->cols[i].name, x->view);
    return SS_OK;
}

/* ORDER BY item: a SELECT position or alias stands for that item's expression. */
static const ss_ast_expr_t *order_target(const sel_t *q, const ss_ast_expr_t *e, int *star_col)
{
    *star_col = -1;
    const outcol_t *o = NULL;
    if (e->kind == SS_AX_LITERAL && e->lit.t == SS_INT && e->lit.u.i >= 1 && e->lit.u.i <= q->n)
        o = &q->cols[e->lit.u.i - 1];
    else if (e->kind == SS_AX_COLUMN && !e->table)
        for (int i = 0; i < q->n && !o; i++)
            if (q->cols[i].name && ss_strcaseeq(q->cols[i].name, e->name) &&
                (q->cols[i].ast == NULL || q->cols[i].ast->kind != SS_AX_COLUMN ||
                 !ss_strcaseeq(q->cols[i].ast->name, e->name)))
                o = &q->cols[i];
    if (!o)
        return e;
    if (!o->ast)
        *star_col = o->col;
    return o->ast;
}

/* Output keys: the input's key columns when every one of them survives as a plain column. */
static void project_keys(const ss_schema_t *in, ss_expr_t **exprs, int n, ss_schema_t *out)
{
    int nk = 0, found = 0;
    for (int k = 0; k < in->n; k++) {
        if (!in->is_key[k])
            continue;
        nk++;
        for (int i = 0; i < n; i++)
            if (exprs[i]->kind == SS_EX_COL && exprs[i]->col == k) {
                found++;
                break;
            }
    }
    if (!nk || found < nk)
        return;
    for (int k = 0; k < in->n; k++) {
        if (!in->is_key[k])
            continue;
        for (int i = 0; i < n; i++)
            if (exprs[i]->kind == SS_EX_COL && exprs[i]->col == k) {
                out->is_key[i] = 1;
                break;
            }
    }
}

/* The final PROJECT of the SELECT list (skipped when it would be the identity). */
static int plan_project(pctx_t *x, sel_t *q, const ss__cctx_t *cc, ss_plan_node_t **cur)
{
    ss_plan_node_t *in = *cur;
    ss_expr_t **ex = calloc((size_t)q->n + 1, sizeof *ex);
    if (!ex)
        return nomem(x);
    int rc = SS_OK, identity = q->n == in->schema->n;
    for (int i = 0; i < q->n && !rc; i++) {
        if (q->cols[i].ast) {
            rc = ss__compile(cc, q->cols[i].ast, &ex[i]);
        } else if ((ex[i] = ss_expr_new(SS_EX_COL))) {
            ex[i]->col = q->cols[i].col;
            ex[i]->type = in->schema->types[q->cols[i].col];
        } else
            rc = nomem(x);
        if (!rc)
            identity &= ex[i]->kind == SS_EX_COL && ex[i]->col == i &&
                        ss_strcaseeq(q->cols[i].name, in->schema->names[i]);
    }
    ss_plan_node_t *p = NULL;
    if (!rc && !identity) {
        p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "select");
        if (!p || !(p->schema = ss_schema_new(q->n)))
            rc = nomem(x);
        for (int i = 0; !rc && i < q->n; i++)
            if (ss_schema_set(p->schema, i, q->cols[i].name, ex[i]->type == SS_COL_ANY ? SS_COL_ANY : ex[i]->type, 0))
                rc = nomem(x);
        if (!rc) {
            project_keys(in->schema, ex, q->n, p->schema);
            p->exprs = ex;
            p->nexprs = q->n;
            *cur = p;
            return SS_OK;
        }
    }
    for (int i = 0; i < q->n; i++)
        ss_expr_free(ex[i]);
    free(ex);
    return rc;
}

/* TOPK for ORDER BY/LIMIT, compiled in the context cc (aliases and positions resolved). */
static int plan_topk(pctx_t *x, const sel_t *q, const ss__cctx_t *cc, int by_output, ss_plan_node_t **cur)
{
    const ss_ast_select_t *s = q->s;
    ss_plan_node_t *t = ss__node_like(x, SS_PN_TOPK, *cur, "order by");
    if (!t || (s->norder && !(t->order = calloc((size_t)s->norder, sizeof *t->order))))
        return nomem(x);
    t->limit = s->limit;
    t->offset = s->offset;
    for (int i = 0; i < s->norder; i++) {
        int star = -1;
        const ss_ast_expr_t *e = by_output ? s->order[i].expr : order_target(q, s->order[i].expr, &star);
        int rc;
        if (by_output && e->kind == SS_AX_LITERAL && e->lit.t == SS_INT && e->lit.u.i >= 1 &&
            e->lit.u.i <= (*cur)->schema->n)
            star = (int)e->lit.u.i - 1;
        if (star >= 0) {
            if (!(t->order[i].expr = ss_expr_new(SS_EX_COL)))
                return nomem(x);
            t->order[i].expr->col = star;
            t->order[i].expr->type = (*cur)->schema->types[star];
            rc = SS_OK;
        } else {
            rc = ss__compile(cc, e, &t->order[i].expr);
        }
        if (rc)
            return rc;
        t->order[i].desc = s->order[i].desc;
        t->norder = i + 1;
    }
    *cur = t;
    return SS_OK;
}

static int plan_distinct(pctx_t *x, sel_t *q, ss_plan_node_t **cur)
{
    ss_plan_node_t *d = ss__node_like(x, SS_PN_DISTINCT, *cur, "distinct");
    if (!d)
        return nomem(x);
    *cur = d;
    if (q->s->limit < 0 && q->s->offset <= 0)
        return SS_OK;
    /* ORDER BY after DISTINCT sees the output columns */
    ss__scope_t out = {.nrels = 1, .schema = d->schema};
    out.rels[0] = (ss__rel_t){.name = x->view, .table = x->view, .what = "view", .off = 0, .n = d->schema->n};
    ss__cctx_t cc = {.scope = &out, .err = x->err, .errsz = x->errsz};
    return plan_topk(x, q, &cc, 1, cur);
}

/* ---------------------------------------------------------------- plain SELECT */

static void collect_sem_maps(const ss_ast_expr_t *e, const ss_ast_expr_t **out, int *n, int max)
{
    if (!e)
        return;
    for (int i = 0; i < *n; i++)
        if (out[i] == e)
            return; /* SEM_EXTRACT's several items share one call */
    if (e->kind == SS_AX_SEM && ss__sem_appends(e->sem) && *n < max)
        out[(*n)++] = e;
    collect_sem_maps(e->left, out, n, max);
    collect_sem_maps(e->right, out, n, max);
    for (int i = 0; e->args && i < e->args->n; i++)
        collect_sem_maps(e->args->items[i], out, n, max);
}

/* One node per SEM_MAP call of the SELECT list (and SEM_EXTRACT, SEM_CLASSIFY, SEM_DEDUP,
 * SEM_GROUP, SEM_CLUSTER: plan_semops.c), each appending its column(s). */
static int plan_sem_maps(pctx_t *x, sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    const ss_ast_expr_t *maps[33];
    int nmaps = 0;
    for (int i = 0; i < q->n; i++)
        collect_sem_maps(q->cols[i].ast, maps, &nmaps, 33);
    if (nmaps > 32)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many SEM_MAP calls (at most 32)",
                         maps[32]->span.line, maps[32]->span.col);
    for (int k = 0; k < nmaps; k++) {
        const ss_ast_expr_t *m = maps[k];
        const char *name = NULL;
        for (int i = 0; i < q->n; i++)
            if (q->cols[i].ast == m)
                name = q->cols[i].name;
        if (!name && !(name = gen_name(q, ss_sprintf("sem_map_%d", k + 1))))
            return nomem(x);
        if (m->sem != SS_SEM_MAP || ss__opt_find(m->opts, "schema")) {
            int col = 0;
            ss_coltype_t t = SS_COL_TEXT;
            int rc = ss__plan_sem_append(x, m, name, sc, cur, &col, &t);
            if (rc)
                return rc;
            for (int i = 0; m->sem == SS_SEM_EXTRACT && i < q->n; i++)
                if (q->cols[i].ast == m) { /* SEM_EXTRACT's items are now columns of the row */
                    q->cols[i].col = col + q->cols[i].sub;
                    q->cols[i].ast = NULL;
                }
            q->sem_ast[q->nsem] = m;
            q->sem_type[q->nsem] = t;
            q->sem_col[q->nsem++] = col;
            continue;
        }
        ss_plan_node_t *in = *cur, *n = ss__new_node(x, SS_PN_SEM_MAP, in, NULL, name);
        if (!n || !(n->schema = ss_schema_new(in->schema->n + 1)))
            return nomem(x);
        for (int c = 0; c < in->schema->n; c++)
            if (ss_schema_set(n->schema, c, in->schema->names[c], in->schema->types[c], in->schema->is_key[c]))
                return nomem(x);
        if (ss_schema_set(n->schema, in->schema->n, name, SS_COL_TEXT, 0))
            return nomem(x);
        int rc = ss__template(&cc, m->tmpl ? m->tmpl : "", m->tmpl_span, 1, &n->tmpl);
        if (!rc)
            rc = ss__sem_options(x, n, m->opts);
        if (rc)
            return rc;
        q->sem_ast[q->nsem] = m;
        q->sem_type[q->nsem] = SS_COL_TEXT;
        q->sem_col[q->nsem++] = in->schema->n;
        *cur = n;
    }
    return SS_OK;
}

/* The first call inside e of a SEM function that appends a column (SEM_MAP, SEM_CLASSIFY, ...). */
static const ss_ast_expr_t *find_sem_append(const ss_ast_expr_t *e)
{
    if (!e)
        return NULL;
    if (e->kind == SS_AX_SEM && ss__sem_appends(e->sem))
        return e;
    const ss_ast_expr_t *r = find_sem_append(e->left);
    if (!r)
        r = find_sem_append(e->right);
    for (int i = 0; !r && e->args && i < e->args->n; i++)
        r = find_sem_append(e->args->items[i]);
    return r;
}

static int order_uses_sem_map(const sel_t *q)
{
    for (int i = 0; i < q->s->norder; i++) {
        int star;
        if (find_sem_append(order_target(q, q->s->order[i].expr, &star)))
            return 1;
    }
    return 0;
}

/* partition_by = 'c1, c2': the top k of each partition (e.g. of each window: 'window_end'). */
static int sem_topk_partition(pctx_t *x, const ss__cctx_t *cc, ss_plan_node_t *t, const ss_ast_option_t *o)
{
    if (!o)
        return SS_OK;
    char *v = ss__opt_text(o), *save = NULL;
    int rc = v ? SS_OK : nomem(x);
    for (char *tok = v ? strtok_r(v, ", ", &save) : NULL; tok && !rc; tok = strtok_r(NULL, ", ", &save)) {
        char *dot = strchr(tok, '.');
        ss_ast_expr_t col;
        memset(&col, 0, sizeof col);
        col.kind = SS_AX_COLUMN;
        col.span = o->span;
        col.name = dot ? dot + 1 : tok;
        if (dot) {
            *dot = 0;
            col.table = tok;
        }
        ss_expr_t *c = NULL;
        rc = ss__compile(cc, &col, &c);
        if (!rc && c->kind != SS_EX_COL)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: partition_by names columns", o->span.line,
                           o->span.col);
        int *g = rc ? NULL : realloc(t->group_cols, (size_t)(t->ngroup + 1) * sizeof *g);
        if (!rc && !g)
            rc = nomem(x);
        if (!rc) {
            t->group_cols = g;
            g[t->ngroup++] = c->col;
        }
        ss_expr_free(c);
    }
    if (!rc && !t->ngroup)
        rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: partition_by needs column names ('window_end')",
                       o->span.line, o->span.col);
    free(v);
    return rc;
}

static int plan_sem_topk(pctx_t *x, const ss_ast_select_t *s, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    const ss_ast_expr_t *e = s->order[0].expr;
    if (s->norder > 1)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                         "%d:%d: ORDER BY %s cannot be combined with other ORDER BY terms",
                         e->span.line, e->span.col, e->sem == SS_SEM_RANK ? "SEM_RANK" : "SEM_SCORE");
    if (s->limit < 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: ORDER BY %s needs a LIMIT (a semantic ranking keeps only the top k rows)",
                         e->span.line, e->span.col, e->sem == SS_SEM_RANK ? "SEM_RANK" : "SEM_SCORE");
    if (s->offset > 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: OFFSET cannot be combined with ORDER BY %s",
                         e->span.line, e->span.col, e->sem == SS_SEM_RANK ? "SEM_RANK" : "SEM_SCORE");
    ss_plan_node_t *t = ss__node_like(x, SS_PN_SEM_TOPK, *cur, e->sem == SS_SEM_RANK ? "sem_rank" : "sem_score");
    if (!t)
        return nomem(x);
    t->sem = e->sem;
    t->limit = s->limit;
    t->desc = 1; /* semantic orders always keep the k best (see docs/PLANNER.md) */
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    int rc = ss__template(&cc, e->tmpl ? e->tmpl : "", e->tmpl_span, 1, &t->tmpl);
    if (!rc)
        rc = ss__sem_options(x, t, e->opts);
    if (!rc)
        rc = sem_topk_partition(x, &cc, t, ss__opt_find(e->opts, "partition_by"));
    *cur = t;
    return rc;
}

static int plan_plain_body(pctx_t *x, sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur);

/* Window functions first (ORDER BY and LIMIT apply to their result), then the rest. */
static int plan_plain(pctx_t *x, sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    const ss_ast_expr_t *items[256];
    int n = 0, win = 0;
    for (int i = 0; i < q->n && n < 256; i++)
        if (q->cols[i].ast) {
            items[n++] = q->cols[i].ast;
            win |= ss__has_window(q->cols[i].ast);
        }
    if (!win)
        return plan_plain_body(x, q, sc, cur);
    ss__scope_t *wsc = malloc(sizeof *wsc);
    ss__premap_t pm = {0};
    if (!wsc)
        return nomem(x);
    *wsc = *sc;
    int rc = ss__plan_windows(x, items, n, wsc, cur, &pm);
    if (!rc)
        rc = plan_plain_body(x, q, wsc, cur);
    ss__premap_clear(&pm);
    free(wsc);
    return rc;
}

static int plan_plain_body(pctx_t *x, sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    const ss_ast_select_t *s = q->s;
    int rc;
    for (int i = 0; i < q->n; i++) {
        const ss_ast_expr_t *f = find_sem(q->cols[i].ast, SS_SEM_FILTER);
        if (!f)
            f = find_sem(q->cols[i].ast, SS_SEM_RANK);
        if (!f)
            f = find_sem(q->cols[i].ast, SS_SEM_SCORE);
        if (f)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: %s is not allowed in the SELECT list (SEM_FILTER belongs in WHERE, SEM_RANK/SEM_SCORE in ORDER BY)",
                             f->span.line, f->span.col,
                             f->sem == SS_SEM_FILTER ? "SEM_FILTER" : f->sem == SS_SEM_RANK ? "SEM_RANK" : "SEM_SCORE");
    }
    int sem_order = s->norder > 0 && s->order[0].expr->kind == SS_AX_SEM &&
                    (s->order[0].expr->sem == SS_SEM_RANK || s->order[0].expr->sem == SS_SEM_SCORE);
    for (int i = sem_order ? 1 : 0; i < s->norder; i++) {
        const ss_ast_expr_t *f = find_sem(s->order[i].expr, SS_SEM_RANK);
        if (!f)
            f = find_sem(s->order[i].expr, SS_SEM_SCORE);
        if (f)
            return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                             "%d:%d: SEM_RANK/SEM_SCORE must be the only ORDER BY term", f->span.line, f->span.col);
    }
    /* ORDER BY without LIMIT or OFFSET is ignored: a view is a set */
    int want_topk = !sem_order && (s->limit >= 0 || s->offset > 0) && !s->distinct;
    int late_topk = want_topk && order_uses_sem_map(q);
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    if (sem_order && (rc = plan_sem_topk(x, s, sc, cur)))
        return rc;
    if (want_topk && !late_topk && (rc = plan_topk(x, q, &cc, 0, cur)))
        return rc;
    if ((rc = plan_sem_maps(x, q, sc, cur)))
        return rc;
    cc.nsem = q->nsem;
    cc.sem_ast = q->sem_ast;
    cc.sem_col = q->sem_col;
    cc.sem_type = q->sem_type;
    if (late_topk && (rc = plan_topk(x, q, &cc, 0, cur)))
        return rc;
    if ((rc = plan_project(x, q, &cc, cur)))
        return rc;
    return s->distinct ? plan_distinct(x, q, cur) : SS_OK;
}

/* ---------------------------------------------------------------- grouped SELECT */

static int collect_aggs(pctx_t *x, const ss_ast_expr_t *e, ss__grouping_t *g)
{
    if (!e)
        return SS_OK;
    int is_agg = (e->kind == SS_AX_FUNC && !e->over && ss__is_agg_name(e->name)) ||
                 (e->kind == SS_AX_SEM && e->sem == SS_SEM_AGG);
    if (!is_agg) {
        int rc = collect_aggs(x, e->left, g);
        if (!rc)
            rc = collect_aggs(x, e->right, g);
        for (int i = 0; !rc && e->args && i < e->args->n; i++)
            rc = collect_aggs(x, e->args->items[i], g);
        return rc;
    }
    for (int i = 0; e->args && i < e->args->n; i++) {
        const ss_ast_expr_t *in = find_agg(e->args->items[i]);
        if (in)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: aggregates cannot be nested",
                             in->span.line, in->span.col);
    }
    char *key = ss__ast_key(e);
    if (!key)
        return nomem(x);
    for (int i = 0; i < g->naggs; i++)
        if (!strcmp(g->aggs[i].key, key)) {
            free(key);
            return SS_OK;
        }
    ss__agg_ref_t *a = realloc(g->aggs, (size_t)(g->naggs + 1) * sizeof *a);
    if (!a) {
        free(key);
        return nomem(x);
    }
    g->aggs = a;
    a[g->naggs++] = (ss__agg_ref_t){.ast = e, .key = key, .type = SS_COL_ANY};
    return SS_OK;
}

/* GROUP BY items: columns, expressions, SELECT positions or aliases. Expressions are computed
 * by a PROJECT before the grouping that appends one column per expression. */
typedef struct groupby {
    int n;
    int *cols;             /* input column of each group column */
    char **keys;           /* canonical text of expression items (NULL for columns) */
    ss_coltype_t *types;
} groupby_t;

static void groupby_free(groupby_t *gb)
{
    for (int i = 0; i < gb->n; i++)
        free(gb->keys[i]);
    free(gb->keys);
    free(gb->cols);
    free(gb->types);
}

static int groupby_add(groupby_t *gb, int col, char *key, ss_coltype_t t)
{
    int *c = realloc(gb->cols, (size_t)(gb->n + 1) * sizeof *c);
    if (c)
        gb->cols = c;
    char **k = c ? realloc(gb->keys, (size_t)(gb->n + 1) * sizeof *k) : NULL;
    if (k)
        gb->keys = k;
    ss_coltype_t *ty = k ? realloc(gb->types, (size_t)(gb->n + 1) * sizeof *ty) : NULL;
    if (!ty) {
        free(key);
        return SS_ERR_NOMEM;
    }
    gb->types = ty;
    gb->cols[gb->n] = col;
    gb->keys[gb->n] = key;
    gb->types[gb->n++] = t;
    return SS_OK;
}

/* GROUP BY items that are semantic calls (SEM_GROUP, SEM_CLASSIFY, ...): an operator appends
 * each one's column before the grouping; semcol[i] = that column (-1 for other items). */
static int group_sem_items(pctx_t *x, const sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur, int *semcol,
                           ss_coltype_t *semtype)
{
    const ss_ast_expr_list_t *items = q->s->group_by;
    for (int i = 0; items && i < items->n && i < 64; i++) {
        int star = -1;
        const ss_ast_expr_t *e = order_target(q, items->items[i], &star);
        semcol[i] = -1;
        if (star >= 0 || e->kind != SS_AX_SEM || !ss__sem_groupable(e->sem))
            continue;
        const char *name = NULL;
        for (int j = 0; j < q->n && !name; j++)
            if (q->cols[j].ast == e)
                name = q->cols[j].name;
        char dflt[32];
        snprintf(dflt, sizeof dflt, "group_%d", i + 1);
        int rc = ss__plan_sem_append(x, e, name ? name : dflt, sc, cur, &semcol[i], &semtype[i]);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int group_columns(pctx_t *x, const sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur, groupby_t *gb)
{
    const ss_ast_expr_list_t *items = q->s->group_by;
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    ss_expr_t *extra[32];
    int semcol[64];
    ss_coltype_t semtype[64];
    if (items && items->n > 64)
        return ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many GROUP BY items",
                         items->items[64]->span.line, items->items[64]->span.col);
    int rc = group_sem_items(x, q, sc, cur, semcol, semtype);
    int nextra = 0, base = (*cur)->schema->n;
    for (int i = 0; !rc && items && i < items->n; i++) {
        int star = -1, side, col = -1;
        /* a name is an input column first, and only otherwise an output alias (as PostgreSQL) */
        const ss_ast_expr_t *it = items->items[i], *e = it;
        int input = 0;
        if (it->kind == SS_AX_COLUMN && !it->table) {
            char sink[8];
            ss__cctx_t probe = {.scope = sc, .err = sink, .errsz = sizeof sink};
            input = ss__resolve_col(&probe, NULL, it->name, it->span, &side, &col) == SS_OK;
        }
        if (!input)
            e = order_target(q, it, &star);
        if (semcol[i] >= 0) { /* a semantic GROUP BY item: its operator's column, found again by its text */
            char *key = ss__ast_key(e);
            if (!key || groupby_add(gb, semcol[i], key, semtype[i]))
                rc = nomem(x);
            continue;
        }
        if (star >= 0) {
            col = star;
        } else if (e->kind == SS_AX_COLUMN) {
            rc = ss__resolve_col(&cc, e->table, e->name, e->span, &side, &col);
        } else {
            const ss_ast_expr_t *bad = find_agg(e);
            if (!bad)
                bad = find_sem(e, SS_SEM_NONE);
            if (bad) {
                rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: GROUP BY cannot use an aggregate or a semantic function",
                               bad->span.line, bad->span.col);
                break;
            }
            char *key = ss__ast_key(e);
            int dup = -1;
            for (int j = 0; key && j < gb->n; j++)
                if (gb->keys[j] && !strcmp(gb->keys[j], key))
                    dup = j;
            if (!key)
                rc = nomem(x);
            else if (dup >= 0)
                free(key);
            else if (nextra == 32) {
                free(key);
                rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: too many GROUP BY expressions",
                               e->span.line, e->span.col);
            } else if ((rc = ss__compile(&cc, e, &extra[nextra])))
                free(key);
            else {
                nextra++;
                if (groupby_add(gb, base + nextra - 1, key, extra[nextra - 1]->type))
                    rc = nomem(x);
            }
            continue;
        }
        int dup = 0;
        for (int j = 0; !rc && j < gb->n; j++)
            dup |= gb->cols[j] == col;
        if (!rc && !dup && groupby_add(gb, col, NULL, (*cur)->schema->types[col]))
            rc = nomem(x);
    }
    if (!rc && nextra) {
        ss_plan_node_t *in = *cur, *p = ss__new_node(x, SS_PN_PROJECT, in, NULL, "group by expressions");
        if (!p || !(p->schema = ss_schema_new(base + nextra)) ||
            !(p->exprs = calloc((size_t)(base + nextra), sizeof *p->exprs)))
            rc = nomem(x);
        for (int i = 0; !rc && i < base + nextra; i++) {
            if (i >= base) {
                p->exprs[i] = extra[i - base];
                extra[i - base] = NULL;
            } else if ((p->exprs[i] = ss_expr_new(SS_EX_COL))) {
                p->exprs[i]->col = i;
                p->exprs[i]->type = in->schema->types[i];
            } else
                rc = nomem(x);
            if (!rc)
                p->nexprs = i + 1;
            const char *nm = i < base ? in->schema->names[i] : NULL;
            for (int j = 0; !nm && j < gb->n; j++)
                if (gb->cols[j] == i)
                    nm = gb->keys[j];
            if (!rc && ss_schema_set(p->schema, i, nm, p->exprs[i]->type, i < base && in->schema->is_key[i]))
                rc = nomem(x);
        }
        if (!rc)
            *cur = p;
    }
    for (int i = 0; i < nextra; i++)
        ss_expr_free(extra[i]);
    return rc;
}

/* The GROUP node: group columns (the key) then one column per ordinary aggregate (VAR/STDDEV
 * followed by their helper Σx², a column nothing reads). */
static int plan_group_node(pctx_t *x, ss__grouping_t *g, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    ss_plan_node_t *in = *cur;
    int nplain = 0;
    for (int i = 0; i < g->naggs; i++)
        if (g->aggs[i].ast->kind != SS_AX_SEM)
            nplain += 1 + ss__agg_needs_helper(g->aggs[i].ast);
    ss_plan_node_t *n = ss__new_node(x, SS_PN_GROUP, in, NULL, "group by");
    if (!n || !(n->schema = ss_schema_new(g->ngroup + nplain)) ||
        (nplain && !(n->aggs = calloc((size_t)nplain, sizeof *n->aggs))) ||
        (g->ngroup && !(n->group_cols = calloc((size_t)g->ngroup, sizeof(int)))))
        return nomem(x);
    n->ngroup = g->ngroup;
    for (int i = 0; i < g->ngroup; i++) {
        n->group_cols[i] = g->group_in[i];
        if (ss_schema_set(n->schema, i, in->schema->names[g->group_in[i]], in->schema->types[g->group_in[i]], 1))
            return nomem(x);
    }
    for (int i = 0; i < g->naggs; i++) {
        const ss_ast_expr_t *a = g->aggs[i].ast;
        if (a->kind == SS_AX_SEM)
            continue;
        int helper = ss__agg_needs_helper(a);
        ss_plan_agg_t *pa = &n->aggs[n->naggs];
        g->aggs[i].out_col = g->ngroup + n->naggs;
        n->naggs += 1 + helper;
        ss_coltype_t t;
        int rc = ss__plan_agg(x, a, sc, pa, helper ? pa + 1 : NULL, &t);
        if (rc)
            return rc;
        g->aggs[i].type = t;
        if (ss_schema_set(n->schema, g->aggs[i].out_col, g->aggs[i].key, t, 0))
            return nomem(x);
        if (helper) {
            char *nm = ss_sprintf("sumsq %s", g->aggs[i].key);
            rc = !nm || ss_schema_set(n->schema, g->aggs[i].out_col + 1, nm, SS_COL_ANY, 0);
            free(nm);
            if (rc)
                return nomem(x);
        }
    }
    *cur = n;
    return SS_OK;
}

/* The SEM_AGG node: group columns (the key) then the TEXT summary. */
static int plan_sem_agg_node(pctx_t *x, ss__grouping_t *g, const sel_t *q, const ss__scope_t *sc,
                             ss_plan_node_t **cur)
{
    int si = 0;
    while (si < g->naggs - 1 && g->aggs[si].ast->kind != SS_AX_SEM)
        si++;
    const ss_ast_expr_t *a = g->aggs[si].ast;
    const char *name = "summary";
    for (int i = 0; i < q->n; i++)
        if (q->cols[i].ast == a)
            name = q->cols[i].name;
    ss_plan_node_t *in = *cur, *n = ss__new_node(x, SS_PN_SEM_AGG, in, NULL, name);
    if (!n || !(n->schema = ss_schema_new(g->ngroup + 1)) ||
        (g->ngroup && !(n->group_cols = calloc((size_t)g->ngroup, sizeof(int)))))
        return nomem(x);
    n->ngroup = g->ngroup;
    for (int i = 0; i < g->ngroup; i++) {
        n->group_cols[i] = g->group_in[i];
        if (ss_schema_set(n->schema, i, in->schema->names[g->group_in[i]], in->schema->types[g->group_in[i]], 1))
            return nomem(x);
    }
    if (ss_schema_set(n->schema, g->ngroup, name, SS_COL_TEXT, 0))
        return nomem(x);
    g->aggs[si].type = SS_COL_TEXT;
    g->aggs[si].out_col = g->ngroup;
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    int rc = ss__template(&cc, a->tmpl ? a->tmpl : "", a->tmpl_span, 0, &n->tmpl);
    if (!rc)
        rc = ss__sem_options(x, n, a->opts);
    *cur = n;
    return rc;
}

/* SEM_AGG next to COUNT/SUM/...: a GROUP and a SEM_AGG over the same input, joined on the
 * group columns (the output = group columns, ordinary aggregates, group columns, summary). */
static int plan_group_and_sem_agg(pctx_t *x, ss__grouping_t *g, const sel_t *q, const ss__scope_t *sc,
                                  ss_plan_node_t **cur)
{
    ss_plan_node_t *gn = *cur, *sn = *cur;
    int rc = plan_group_node(x, g, sc, &gn);
    if (!rc)
        rc = plan_sem_agg_node(x, g, q, sc, &sn);
    if (rc)
        return rc;
    ss_plan_node_t *j = ss__new_node(x, SS_PN_JOIN, gn, sn, "aggregates JOIN summary");
    if (!j || !(j->schema = ss__concat_schema(gn->schema, sn->schema)))
        return nomem(x);
    for (int i = gn->schema->n; i < j->schema->n; i++)
        j->schema->is_key[i] = 0; /* the right copy of the group columns is not part of the key */
    for (int i = 0; i < g->ngroup; i++)
        if (ss__push_int(&j->lkeys, i, i) || ss__push_int(&j->rkeys, i, i))
            return nomem(x);
    j->nkeys = g->ngroup;
    for (int i = 0; i < g->naggs; i++)
        if (g->aggs[i].ast->kind == SS_AX_SEM)
            g->aggs[i].out_col += gn->schema->n;
    *cur = j;
    return SS_OK;
}

static int plan_grouped(pctx_t *x, sel_t *q, const ss__scope_t *sc, ss_plan_node_t **cur)
{
    const ss_ast_select_t *s = q->s;
    ss__grouping_t g = {0};
    groupby_t gby = {0};
    int rc = SS_OK;
    for (int i = 0; i < q->n && !rc; i++) {
        const ss_ast_expr_t *m = find_sem(q->cols[i].ast, SS_SEM_NONE);
        if (m && m->sem != SS_SEM_AGG && !ss__sem_groupable(m->sem))
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: %s cannot be combined with GROUP BY or aggregates in one view; compute it in an upstream view",
                           m->span.line, m->span.col, m->sem == SS_SEM_MAP ? "SEM_MAP" : "this semantic function");
        if (!q->cols[i].ast)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: '*' cannot be used with GROUP BY or aggregates",
                           q->cols[i].span.line, q->cols[i].span.col);
    }
    for (int i = 0; i < s->norder && !rc; i++)
        if (find_sem(s->order[i].expr, SS_SEM_RANK) || find_sem(s->order[i].expr, SS_SEM_SCORE))
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: SEM_RANK/SEM_SCORE cannot order grouped rows; rank in a downstream view",
                           s->order[i].expr->span.line, s->order[i].expr->span.col);
    for (int i = 0; i < q->n && !rc; i++)
        if (ss__has_window(q->cols[i].ast))
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: window functions over grouped rows are not supported (group in a subquery or an "
                           "upstream view, then apply the window to it)", q->cols[i].span.line, q->cols[i].span.col);
    for (int i = 0; i < q->n && !rc; i++)
        rc = collect_aggs(x, q->cols[i].ast, &g);
    if (!rc)
        rc = collect_aggs(x, s->having, &g);
    for (int i = 0; i < s->norder && !rc; i++) {
        int star;
        rc = collect_aggs(x, order_target(q, s->order[i].expr, &star), &g);
    }
    int nsemagg = 0, nplain = 0;
    const ss_ast_expr_t *first_plain = NULL, *second_sem = NULL;
    for (int i = 0; i < g.naggs; i++) {
        if (g.aggs[i].ast->kind == SS_AX_SEM) {
            if (nsemagg++)
                second_sem = g.aggs[i].ast;
        } else if (!nplain++)
            first_plain = g.aggs[i].ast;
    }
    (void)first_plain;
    if (!rc && second_sem)
        rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: only one SEM_AGG per view",
                       second_sem->span.line, second_sem->span.col);
    if (!rc)
        rc = group_columns(x, q, sc, cur, &gby);
    g.ngroup = gby.n;
    g.group_in = gby.cols;
    g.group_key = gby.keys;
    g.group_type = gby.types;
    if (!rc && nsemagg && nplain)
        rc = plan_group_and_sem_agg(x, &g, q, sc, cur);
    else if (!rc)
        rc = nsemagg ? plan_sem_agg_node(x, &g, q, sc, cur) : plan_group_node(x, &g, sc, cur);
    ss__cctx_t cc = {.scope = sc, .grp = &g, .err = x->err, .errsz = x->errsz};
    if (!rc && s->having) {
        ss_plan_node_t *f = ss__node_like(x, SS_PN_FILTER, *cur, "having");
        if (!f)
            rc = nomem(x);
        else if (!(rc = ss__compile(&cc, s->having, &f->pred)) &&
                 !(rc = ss__check_bool(&cc, f->pred, "HAVING", s->having->span)))
            *cur = f;
    }
    if (!rc && (s->limit >= 0 || s->offset > 0) && !s->distinct)
        rc = plan_topk(x, q, &cc, 0, cur);
    if (!rc)
        rc = plan_project(x, q, &cc, cur);
    if (!rc && s->distinct)
        rc = plan_distinct(x, q, cur);
    for (int i = 0; i < g.naggs; i++)
        free(g.aggs[i].key);
    free(g.aggs);
    groupby_free(&gby);
    return rc;
}

int ss__plan_select_items(pctx_t *x, const ss_ast_select_t *s, ss__scope_t *sc, ss_plan_node_t **cur)
{
    sel_t q = {.s = s};
    int rc = expand_items(x, &q, sc);
    int grouped = s->group_by || s->having;
    for (int i = 0; i < q.n && !grouped; i++)
        grouped = find_agg(q.cols[i].ast) != NULL;
    ss__premap_t pm = {0};
    for (int i = 0; !rc && i < q.n; i++) {
        if (!ss__has_subquery(q.cols[i].ast))
            continue;
        if (grouped)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                           "%d:%d: a subquery in the SELECT list of a grouped query is not supported (compute it "
                           "in an upstream view, or move it to WHERE)", q.cols[i].span.line, q.cols[i].span.col);
        else
            rc = ss__plan_expr_subqueries(x, q.cols[i].ast, sc, cur, &pm);
    }
    const ss_ast_expr_t *sq = NULL;
    for (int i = 0; !sq && i < s->norder; i++)
        sq = ss__has_subquery(s->order[i].expr) ? s->order[i].expr : NULL;
    if (!sq && ss__has_subquery(s->having))
        sq = s->having;
    if (!rc && sq)
        rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED,
                       "%d:%d: a subquery in HAVING or ORDER BY is not supported (use WHERE or an upstream view)",
                       sq->span.line, sq->span.col);
    if (!rc)
        rc = grouped ? plan_grouped(x, &q, sc, cur) : plan_plain(x, &q, sc, cur);
    ss__premap_clear(&pm);
    sel_free(&q);
    return rc;
}

int ss__plan_select(pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out)
{
    if (!s->from)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: a view needs FROM <stream or view>",
                         s->span.line, s->span.col);
    ss__scope_t sc;
    ss__premap_t pm = {0};
    ss_plan_node_t *cur = NULL;
    const ss_ast_expr_t *cj[128];
    int ncj = 0;
    ss__flatten_and(s->where, cj, &ncj, 128);
    int rc = ss__too_many_terms(x, s->where, ncj, 128);
    if (!rc)
        rc = ss__plan_pushdown(x, s);
    if (!rc)
        rc = ss__plan_from(x, s->from, &sc, &cur);
    for (int i = 0; !rc && s->from->kind == SS_FROM_SUBQUERY && i < ncj; i++)
        ss__window_pushdown(x, cur, &sc, cj[i]); /* WHERE rn <= N over a ranking subquery */
    if (!rc)
        rc = ss__plan_conditions(x, cj, ncj, &sc, &cur, &pm);
    if (!rc)
        rc = ss__plan_select_items(x, s, &sc, &cur);
    ss__premap_clear(&pm);
    *out = cur;
    return rc;
}

/* ---------------------------------------------------------------- views */

static int plan_view_into(const ss_catalog_t *cat, ss_plan_t *plan, const char *name,
                          const ss_ast_query_t *q, const ss_ast_options_t *opts, int64_t seq, int depth,
                          char *err, size_t errsz)
{
    pctx_t x = {.cat = cat, .plan = plan, .view = name, .id_base = seq * SS_PLAN_IDS_PER_VIEW,
                .depth = depth, .err = err, .errsz = errsz};
    if (seq > 2000000)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "too many views have been created (%lld)", (long long)seq);
    const ss_ast_option_t *mo = ss__opt_find(opts, "model");
    char *dm = mo ? ss__opt_text(mo) : NULL;
    if (mo && (!dm || !ss_catalog_model(cat, dm))) {
        int rc = dm ? ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: unknown model \"%s\" (create it with CREATE MODEL)",
                                mo->span.line, mo->span.col, dm)
                    : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        free(dm);
        return rc;
    }
    x.default_model = dm;
    ss_plan_node_t *top = NULL;
    int rc = q->kind == SS_Q_GENERATE ? ss__plan_generate(&x, q->generate, &top) : ss__plan_query(&x, q->select, &top);
    if (!rc && q->emit_on_close)
        rc = ss__plan_eowc(&x, q->span, &top); /* plan_timewin.c */
    if (!rc)
        rc = ss__mark_window_state(&x); /* per-window state is dropped once windows close */
    if (!rc) {
        ss_plan_node_t *v = ss__new_node(&x, SS_PN_VIEW, top, NULL, name);
        if (!v || !(v->schema = ss_schema_copy(top->schema)))
            rc = nomem(&x);
        for (int i = 0; !rc && opts && i < opts->n; i++) {
            char *t = ss__opt_text(&opts->items[i]);
            if (!t || ss__opts_add(&v->nopts, &v->opts, opts->items[i].name, t))
                rc = nomem(&x);
            free(t);
        }
        if (!rc && x.nlocal >= SS_PLAN_IDS_PER_VIEW)
            rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "view %s needs more than %d operators", name,
                           SS_PLAN_IDS_PER_VIEW - 1);
    }
    free(dm);
    return rc;
}

int ss__plan_view(const ss_catalog_t *c, const ss_ast_query_t *q, const char *name,
                  const ss_ast_options_t *opts, ss_plan_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const ss_cat_view_t *v = ss_catalog_view(c, name);
    int64_t seq = v ? ss__catalog_seq(c, SS_OBJ_VIEW, name) : ss__catalog_next_view_seq(c);
    int rc = plan_view_into(c, p, name, q, opts, seq, 0, err, errsz);
    if (rc) {
        ss_plan_free(p);
        return rc;
    }
    *out = p;
    return SS_OK;
}

int ss_plan_query(const ss_catalog_t *c, const ss_ast_query_t *q, const char *name, ss_plan_t **out,
                  char *err, size_t errsz)
{
    const ss_cat_view_t *v = ss_catalog_view(c, name);
    const ss_ast_options_t *opts = v && v->stmt && v->stmt->query == q ? v->stmt->opts : NULL;
    return ss__plan_view(c, q, name, opts, out, err, errsz);
}

int ss_plan_build(const ss_catalog_t *c, ss_plan_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ss_catalog_nviews(c); i++) {
        const ss_cat_view_t *v = ss_catalog_view_at(c, i);
        if (find_node(p, SS_PN_VIEW, v->name))
            continue; /* planned already as an upstream of an earlier view */
        int rc = plan_view_into(c, p, v->name, v->stmt->query, v->stmt->opts,
                                ss__catalog_seq(c, SS_OBJ_VIEW, v->name), 0, err, errsz);
        if (rc) {
            ss_errprefix(err, errsz, "view %s", v->name);
            ss_plan_free(p);
            return rc;
        }
    }
    *out = p;
    return SS_OK;
}
