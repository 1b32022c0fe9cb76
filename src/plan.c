/*
 * plan.c — lifecycle of the planner's data: compiled expressions (allocation,
 * copy, free), templates, plan nodes and plans, and option lookup. Evaluation of
 * expressions lives in runtime/expr.c; building plans lives in src/planner.c.
 */
#include "ss_plan.h"

#include <stdlib.h>
#include <string.h>

ss_expr_t *ss_expr_new(ss_expr_kind_t kind)
{
    ss_expr_t *e = calloc(1, sizeof *e);
    if (e) {
        e->kind = kind;
        e->col = -1;
        e->type = SS_COL_ANY;
        e->typmod = -1;
    }
    return e;
}

void ss_expr_free(ss_expr_t *e)
{
    if (!e)
        return;
    if (ss_vtype_has_str(e->lit.t))
        free(e->lit.u.str.s);
    free(e->func);
    for (int i = 0; i < e->nargs; i++)
        ss_expr_free(e->args[i]);
    free(e->args);
    free(e);
}

ss_expr_t *ss_expr_copy(const ss_expr_t *e)
{
    if (!e)
        return NULL;
    ss_expr_t *c = ss_expr_new(e->kind);
    if (!c)
        return NULL;
    *c = *e;
    c->func = NULL;
    c->args = NULL;
    c->nargs = 0;
    if (ss_vtype_has_str(e->lit.t)) {
        c->lit.u.str.s = ss_strndup(e->lit.u.str.s, e->lit.u.str.n);
        if (!c->lit.u.str.s)
            goto fail;
    }
    if (e->func && !(c->func = ss_strdup(e->func)))
        goto fail;
    if (e->nargs) {
        c->args = calloc((size_t)e->nargs, sizeof *c->args);
        if (!c->args)
            goto fail;
        for (int i = 0; i < e->nargs; i++) {
            c->args[i] = ss_expr_copy(e->args[i]);
            c->nargs = i + 1;
            if (!c->args[i])
                goto fail;
        }
    }
    return c;
fail:
    ss_expr_free(c);
    return NULL;
}

void ss_template_free(ss_template_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nparts; i++) {
        free(t->parts[i].text);
        free(t->parts[i].name);
    }
    free(t->parts);
    free(t->src);
    free(t);
}

ss_template_t *ss_template_copy(const ss_template_t *t)
{
    if (!t)
        return NULL;
    ss_template_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->src = ss_strdup(t->src);
    c->parts = calloc((size_t)t->nparts + 1, sizeof *c->parts);
    if (!c->parts || (t->src && !c->src)) {
        ss_template_free(c);
        return NULL;
    }
    for (int i = 0; i < t->nparts; i++) {
        c->parts[i] = t->parts[i];
        c->parts[i].text = ss_strdup(t->parts[i].text);
        c->parts[i].name = ss_strdup(t->parts[i].name);
        c->nparts = i + 1;
    }
    return c;
}

int ss_template_cols(const ss_template_t *t, int side, int *cols, int max)
{
    int n = 0;
    for (int i = 0; i < t->nparts; i++) {
        const ss_tmpl_part_t *p = &t->parts[i];
        if (p->text || p->side != side)
            continue;
        int dup = 0;
        for (int j = 0; j < n; j++)
            dup |= cols[j] == p->col;
        if (!dup && n < max)
            cols[n++] = p->col;
    }
    return n;
}

ss_plan_node_t *ss_plan_node_new(ss_plan_kind_t kind)
{
    ss_plan_node_t *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->limit = -1;
        n->desc = 1;
    }
    return n;
}

void ss_plan_node_free(ss_plan_node_t *n)
{
    if (!n)
        return;
    free(n->label);
    free(n->view);
    ss_schema_free(n->schema);
    ss_expr_free(n->pred);
    for (int i = 0; i < n->nexprs; i++)
        ss_expr_free(n->exprs[i]);
    free(n->exprs);
    free(n->lkeys);
    free(n->rkeys);
    free(n->group_cols);
    for (int i = 0; i < n->naggs; i++) {
        ss_expr_free(n->aggs[i].arg);
        ss_expr_free(n->aggs[i].filter);
        for (int k = 0; k < n->aggs[i].norder; k++)
            ss_expr_free(n->aggs[i].order[k].expr);
        free(n->aggs[i].order);
        free(n->aggs[i].sep);
    }
    free(n->aggs);
    for (int i = 0; i < n->norder; i++)
        ss_expr_free(n->order[i].expr);
    free(n->order);
    for (int i = 0; i < n->nwfns; i++)
        ss_expr_free(n->wfns[i].arg);
    free(n->wfns);
    ss_template_free(n->tmpl);
    free(n->model);
    for (int i = 0; i < n->nopts; i++) {
        free(n->opts[i].name);
        free(n->opts[i].value);
    }
    free(n->opts);
    free(n);
}

void ss_plan_free(ss_plan_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        ss_plan_node_free(p->nodes[i]);
    free(p->nodes);
    free(p);
}

const char *ss_plan_kind_name(ss_plan_kind_t k)
{
    static const char *names[] = {
        "source", "filter", "project", "union", "distinct", "join", "group", "topk",
        "sem_filter", "sem_map", "sem_join", "sem_topk", "sem_agg", "llm_generate", "view",
        "setop", "semijoin", "window",
        "temporal_filter", "time_window", "emit_on_close",
        "sem_extract", "sem_classify", "sem_sim_join", "sem_search", "sem_dedup", "sem_group",
    };
    if ((int)k < 0 || (size_t)k >= SS_ARRAY_LEN(names))
        return "?";
    return names[k];
}

const char *ss_plan_opt(const ss_plan_node_t *n, const char *name)
{
    for (int i = 0; i < n->nopts; i++)
        if (ss_strcaseeq(n->opts[i].name, name))
            return n->opts[i].value;
    return NULL;
}

int ss_plan_opt_bool(const ss_plan_node_t *n, const char *name)
{
    const char *v = ss_plan_opt(n, name);
    return v && (!strcmp(v, "1") || ss_strcaseeq(v, "true"));
}

int64_t ss_plan_opt_int(const ss_plan_node_t *n, const char *name, int64_t dflt)
{
    const char *v = ss_plan_opt(n, name);
    if (!v || !*v)
        return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end ? dflt : (int64_t)x;
}

double ss_plan_opt_real(const ss_plan_node_t *n, const char *name, double dflt)
{
    const char *v = ss_plan_opt(n, name);
    if (!v || !*v)
        return dflt;
    char *end;
    double x = strtod(v, &end);
    return *end ? dflt : x;
}
