/*
 * plan_semops.c — lowering of the semantic operators of issue 15 §2 into plan nodes:
 * the SELECT-list (and GROUP BY) calls that append columns to the row (SEM_MAP, with or
 * without schema =>, SEM_EXTRACT, SEM_CLASSIFY, SEM_DEDUP, SEM_GROUP, SEM_CLUSTER), and
 * the FROM item SEM_SEARCH(view, 'query', k). SEM_SIM_JOIN is planned with the other
 * joins (plan_from.c). Argument checks report line:col of the offending literal.
 *
 * What each node carries (operators/sem_*.c read it):
 *   SEM_EXTRACT   tmpl; opt schema = the column list or JSON Schema as written, opt output =
 *                 'columns' (one typed column per field) | 'json' (one JSON column: SEM_MAP
 *                 with schema =>)
 *   SEM_CLASSIFY  tmpl; opt labels = the labels as a JSON array
 *   SEM_DEDUP     tmpl; options threshold (blocking: minimum cosine), yes_prob, memo
 *   SEM_GROUP     tmpl; limit = k; sem = SS_SEM_GROUP (groups named by the model) or
 *                 SS_SEM_CLUSTER (named by their exemplar); options diversity, max_tokens,
 *                 temperature
 *   SEM_SEARCH    tmpl = opt text (the columns embedded; NULL: all of them); opt query; limit
 */
#include "plan_int.h"

#include "ss_jschema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

int ss__sem_appends(ss_sem_kind_t k)
{
    return k == SS_SEM_MAP || k == SS_SEM_EXTRACT || k == SS_SEM_CLASSIFY || k == SS_SEM_DEDUP ||
           k == SS_SEM_GROUP || k == SS_SEM_CLUSTER;
}

int ss__sem_groupable(ss_sem_kind_t k) { return ss__sem_appends(k) && k != SS_SEM_EXTRACT; }

/* The text of literal argument i of a SEM call (NULL if it is not a string). */
static const char *arg_text(const ss_ast_expr_t *e, int i)
{
    if (!e->args || i >= e->args->n || e->args->items[i]->kind != SS_AX_LITERAL ||
        e->args->items[i]->lit.t != SS_TEXT)
        return NULL;
    return e->args->items[i]->lit.u.str.s;
}

/* line:col of byte off inside the string literal at sp (a one-line literal; else its start). */
static ss_span_t in_literal(ss_span_t sp, int off)
{
    sp.col += 1 + off;
    return sp;
}

static const ss_ast_option_t *sem_opt(const ss_ast_expr_t *e, const char *name)
{
    return ss__opt_find(e->opts, name);
}

int ss__extract_cols(pctx_t *x, const ss_ast_expr_t *e, ss_jscol_t **cols, int *n)
{
    const char *spec = arg_text(e, 0);
    ss_span_t sp = e->args && e->args->n ? e->args->items[0]->span : e->span;
    int off = 0;
    char msg[256];
    if (!spec)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_EXTRACT needs a column list 'name TYPE, ...'",
                         sp.line, sp.col);
    if (ss_jscols_parse(spec, cols, n, &off, msg, sizeof msg)) {
        ss_span_t at = in_literal(sp, off);
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_EXTRACT column list: %s", at.line, at.col, msg);
    }
    return SS_OK;
}

/* SEM_MAP(..., schema => '...'): a JSON Schema ('{...}') or a column list. Checked here so that a
 * bad schema is a CREATE VIEW error with its position. */
static int check_schema_opt(pctx_t *x, const ss_ast_option_t *o, char **text)
{
    *text = ss__opt_text(o);
    if (!*text)
        return nomem(x);
    char msg[256];
    int rc, off = 0;
    if ((*text)[0] == '{') {
        ss_jschema_t *s = NULL;
        rc = ss_jschema_parse(*text, strlen(*text), &s, msg, sizeof msg);
        ss_jschema_free(s);
    } else {
        ss_jscol_t *c = NULL;
        int n = 0;
        rc = ss_jscols_parse(*text, &c, &n, &off, msg, sizeof msg);
        ss_jscols_free(c, n);
    }
    if (rc) {
        ss_span_t at = o->span;
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: option schema: %s%s", at.line, at.col, msg,
                         (*text)[0] == '{' ? "" : " (write 'name TYPE, ...' or a JSON Schema object)");
    }
    return SS_OK;
}

/* The labels of SEM_CLASSIFY as a JSON array (at least two, distinct, not empty). */
static int classify_labels(pctx_t *x, const ss_ast_expr_t *e, ss_buf_t *out)
{
    int n = e->args ? e->args->n : 0;
    if (n < 2)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_CLASSIFY needs at least two labels",
                         e->span.line, e->span.col);
    int rc = ss_buf_putc(out, '[');
    for (int i = 0; i < n && !rc; i++) {
        const char *l = arg_text(e, i);
        ss_span_t sp = e->args->items[i]->span;
        if (!l || !*l)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: a SEM_CLASSIFY label must be a non-empty string",
                             sp.line, sp.col);
        for (int j = 0; j < i; j++)
            if (!strcmp(arg_text(e, j), l))
                return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_CLASSIFY label '%s' is given twice",
                                 sp.line, sp.col, l);
        if (i)
            rc = ss_buf_putc(out, ',');
        if (!rc)
            rc = ss_buf_put_json_str(out, l, strlen(l));
    }
    return rc ? nomem(x) : ss_buf_putc(out, ']') ? nomem(x) : SS_OK;
}

/* A node over in appending cols[0..n) (names and types), the rest of the schema copied. */
static ss_plan_node_t *append_node(pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in, const char *label,
                                   const char *const *names, const ss_coltype_t *types, int n)
{
    ss_plan_node_t *p = ss__new_node(x, k, in, NULL, label);
    if (!p || !(p->schema = ss_schema_new(in->schema->n + n)))
        return NULL;
    for (int c = 0; c < in->schema->n; c++)
        if (ss_schema_set(p->schema, c, in->schema->names[c], in->schema->types[c], in->schema->is_key[c]))
            return NULL;
    for (int i = 0; i < n; i++)
        if (ss_schema_set(p->schema, in->schema->n + i, names[i], types[i], 0))
            return NULL;
    return p;
}

static int plan_extract(pctx_t *x, const ss_ast_expr_t *m, const ss__scope_t *sc, ss_plan_node_t **cur, int json,
                        const char *name, ss_coltype_t *type)
{
    ss_jscol_t *cols = NULL;
    int n = 0, rc = SS_OK;
    char *schema = NULL;
    if (json)
        rc = check_schema_opt(x, sem_opt(m, "schema"), &schema);
    else if (!(rc = ss__extract_cols(x, m, &cols, &n)) && !(schema = ss_strdup(arg_text(m, 0))))
        rc = nomem(x);
    const char *names[257];
    ss_coltype_t types[257];
    if (!rc && n > 256)
        rc = ss_seterr(x->err, x->errsz, SS_ERR_UNSUPPORTED, "%d:%d: SEM_EXTRACT yields at most 256 columns",
                       m->span.line, m->span.col);
    for (int i = 0; !rc && i < n; i++) {
        names[i] = cols[i].name;
        types[i] = (ss_coltype_t)cols[i].type;
        for (int c = 0; c < (*cur)->schema->n; c++)
            if (ss_strcaseeq((*cur)->schema->names[c], cols[i].name)) {
                ss_span_t at = in_literal(m->args->items[0]->span, cols[i].off);
                rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                               "%d:%d: SEM_EXTRACT column \"%s\" is already a column of the input (rename it)",
                               at.line, at.col, cols[i].name);
            }
    }
    if (json) {
        names[0] = name;
        types[0] = SS_COL_JSON;
        n = 1;
    }
    ss_plan_node_t *p = NULL;
    if (!rc && !(p = append_node(x, SS_PN_SEM_EXTRACT, *cur, json ? name : "sem_extract", names, types, n)))
        rc = nomem(x);
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    if (!rc)
        rc = ss__template(&cc, m->tmpl ? m->tmpl : "", m->tmpl_span, 1, &p->tmpl);
    if (!rc)
        rc = ss__sem_options(x, p, m->opts);
    if (!rc && !json && ss_plan_opt(p, "schema"))
        rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_EXTRACT takes its columns as its second "
                       "argument, not as option schema", m->span.line, m->span.col);
    if (!rc && json) { /* the user's schema option stays as written */
    } else if (!rc && ss__opts_add(&p->nopts, &p->opts, "schema", schema)) {
        rc = nomem(x);
    }
    if (!rc && ss__opts_add(&p->nopts, &p->opts, "output", json ? "json" : "columns"))
        rc = nomem(x);
    if (!rc) {
        *type = json ? SS_COL_JSON : n ? types[0] : SS_COL_TEXT;
        *cur = p;
    }
    free(schema);
    ss_jscols_free(cols, json ? 0 : n);
    return rc;
}

int ss__plan_sem_append(pctx_t *x, const ss_ast_expr_t *m, const char *name, const ss__scope_t *sc,
                        ss_plan_node_t **cur, int *col, ss_coltype_t *type)
{
    ss__cctx_t cc = {.scope = sc, .err = x->err, .errsz = x->errsz};
    *col = (*cur)->schema->n;
    *type = SS_COL_TEXT;
    if (m->sem == SS_SEM_EXTRACT || (m->sem == SS_SEM_MAP && sem_opt(m, "schema")))
        return plan_extract(x, m, sc, cur, m->sem == SS_SEM_MAP, name, type);
    ss_plan_kind_t k = m->sem == SS_SEM_MAP        ? SS_PN_SEM_MAP
                       : m->sem == SS_SEM_CLASSIFY ? SS_PN_SEM_CLASSIFY
                       : m->sem == SS_SEM_DEDUP    ? SS_PN_SEM_DEDUP
                                                   : SS_PN_SEM_GROUP;
    ss_coltype_t t = SS_COL_TEXT;
    ss_plan_node_t *p = append_node(x, k, *cur, name, &name, &t, 1);
    if (!p)
        return nomem(x);
    int rc = ss__template(&cc, m->tmpl ? m->tmpl : "", m->tmpl_span, 1, &p->tmpl);
    if (!rc)
        rc = ss__sem_options(x, p, m->opts);
    if (!rc && k == SS_PN_SEM_CLASSIFY) {
        ss_buf_t l = SS_BUF_INIT;
        rc = classify_labels(x, m, &l);
        if (!rc && ss__opts_add(&p->nopts, &p->opts, "labels", ss_buf_cstr(&l)))
            rc = nomem(x);
        ss_buf_free(&l);
    }
    if (!rc && k == SS_PN_SEM_GROUP) {
        const ss_ast_expr_t *a = m->args && m->args->n ? m->args->items[0] : NULL;
        if (!a || a->kind != SS_AX_LITERAL || a->lit.t != SS_INT || a->lit.u.i < 1 || a->lit.u.i > 1000)
            rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs a number of groups from 1 to 1000",
                           (a ? a : m)->span.line, (a ? a : m)->span.col, ss_sem_kind_name(m->sem));
        else
            p->limit = a->lit.u.i;
        p->sem = m->sem;
    }
    *cur = p;
    return rc;
}

/* SEM_SEARCH(name, 'query', k [, text => '{col} ...']): the input's k rows nearest to the query,
 * with their similarity as column "score". */
int ss__plan_sem_search(pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t *in, ss_plan_node_t **out)
{
    if (f->k < 1 || f->k > 100000)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_SEARCH needs k from 1 to 100000",
                         f->span.line, f->span.col);
    if (!f->tmpl || !*f->tmpl)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: SEM_SEARCH needs a query text",
                         f->tmpl_span.line, f->tmpl_span.col);
    if (ss_schema_find(in->schema, "score") >= 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: SEM_SEARCH adds a column \"score\", which %s already has (rename it upstream)",
                         f->span.line, f->span.col, f->name);
    char label[160];
    snprintf(label, sizeof label, "SEM_SEARCH %s", f->name);
    const char *nm = "score";
    ss_coltype_t t = SS_COL_REAL;
    ss_plan_node_t *p = append_node(x, SS_PN_SEM_SEARCH, in, label, &nm, &t, 1);
    if (!p)
        return nomem(x);
    p->limit = f->k;
    for (int c = 0; c < in->schema->n; c++) /* the output keeps the input's key */
        p->schema->is_key[c] = in->schema->is_key[c];
    if (ss__opts_add(&p->nopts, &p->opts, "query", f->tmpl))
        return nomem(x);
    const ss_ast_option_t *to = ss__opt_find(f->opts, "text");
    int rc = SS_OK;
    if (to) {
        ss__scope_t one = {.nrels = 1, .schema = in->schema};
        one.rels[0] = (ss__rel_t){.name = f->alias ? f->alias : f->name, .table = f->name, .what = in->kind == SS_PN_SOURCE ? "stream" : "view",
                                  .off = 0, .n = in->schema->n};
        ss__cctx_t cc = {.scope = &one, .err = x->err, .errsz = x->errsz};
        char *txt = ss__opt_text(to);
        rc = txt ? ss__template(&cc, txt, to->span, 1, &p->tmpl) : nomem(x);
        free(txt);
    }
    ss_ast_options_t rest = {0}; /* the other options (model, threshold) as for any operator */
    ss_ast_option_t items[16];
    for (int i = 0; f->opts && i < f->opts->n && rest.n < 16; i++)
        if (!ss_strcaseeq(f->opts->items[i].name, "text"))
            items[rest.n++] = f->opts->items[i];
    rest.items = items;
    if (!rc)
        rc = ss__sem_options(x, p, &rest);
    *out = p;
    return rc;
}
