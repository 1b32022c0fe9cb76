/*
 * ast_build_stmt.c — the statement-level AST constructors called by the
 * grammar actions: CREATE STREAM/VIEW/MODEL, SET, DROP, SHOW, SELECT,
 * SUBSCRIBE, EXPLAIN, INSERT, DELETE, the LLM_GENERATE query and the column,
 * name and row lists they use. Same ownership rules as src/ast_build.c.
 */
#include "ss_parse_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- LLM_GENERATE ---- */

/* Moves option i's text or stream name out of o (NULL if it has neither). */
static char *take_name(ss_ast_option_t *o)
{
    char *s = o->stream;
    o->stream = NULL;
    if (!s && o->value.t == SS_TEXT) {
        s = o->value.u.str.s;
        o->value.t = SS_NULL;
    }
    return s;
}

ss_ast_query_t *ss_build_query_generate(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_options_t *opts)
{
    ss_ast_query_t *q = calloc(1, sizeof *q);
    ss_ast_generate_t *g = calloc(1, sizeof *g);
    if (!q || !g || !opts) {
        free(q);
        free(g);
        ss_ast_options_free(opts);
        ss_pctx_nomem(ctx);
        return NULL;
    }
    q->kind = SS_Q_GENERATE;
    q->span = g->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(kw));
    q->generate = g;
    /* pull PROMPT, CONTEXT and DATA_SOURCE out; the rest stays in g->opts */
    int k = 0;
    for (int i = 0; i < opts->n; i++) {
        ss_ast_option_t *o = &opts->items[i];
        char **slot = !strcmp(o->name, "prompt") ? &g->prompt
                      : !strcmp(o->name, "context") ? &g->context_stream
                      : !strcmp(o->name, "data_source") ? &g->data_stream : NULL;
        if (!slot) {
            opts->items[k++] = *o;
            continue;
        }
        if (slot == &g->prompt ? o->value.t != SS_TEXT : (!o->stream && o->value.t != SS_TEXT))
            ss_pctx_error(ctx, o->span.line, o->span.col,
                          slot == &g->prompt ? "LLM_GENERATE: PROMPT must be a string"
                                             : "LLM_GENERATE: %s must be STREAM(name)",
                          slot == &g->context_stream ? "CONTEXT" : "DATA_SOURCE");
        free(*slot);
        *slot = take_name(o);
        free(o->name);
        if (o->value.t == SS_TEXT)
            free(o->value.u.str.s);
    }
    opts->n = k;
    g->opts = opts;
    if (!g->prompt)
        ss_pctx_error(ctx, kw->line, kw->col, "LLM_GENERATE requires PROMPT='...'");
    else if (!g->context_stream)
        ss_pctx_error(ctx, kw->line, kw->col, "LLM_GENERATE requires CONTEXT=STREAM(name)");
    return q;
}

/* ---- lists ---- */
ss_collist_t *ss_build_coldef(ss_pctx_t *ctx, ss_collist_t *l, const ss_tok_t *name, const ss_typename_t *type,
                              int is_key)
{
    if (!l && !(l = calloc(1, sizeof *l))) {
        ss_pctx_nomem(ctx);
        return NULL;
    }
    if (ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items))
        return l;
    ss_ast_coldef_t *c = &l->items[l->n];
    memset(c, 0, sizeof *c);
    if (!(c->name = ss_tok_ident(ctx, name)))
        return l;
    l->n++;
    c->is_key = is_key;
    c->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(name));
    c->typmod = -1;
    ss_resolve_type(ctx, type, &c->type, &c->typmod);
    for (int i = 0; i < l->n - 1; i++)
        if (ss_strcaseeq(l->items[i].name, c->name))
            ss_pctx_error(ctx, name->line, name->col, "duplicate column \"%s\"", c->name);
    return l;
}

ss_namelist_t *ss_build_namelist(ss_pctx_t *ctx, ss_namelist_t *l, const ss_tok_t *name)
{
    if (!l && !(l = calloc(1, sizeof *l))) {
        ss_pctx_nomem(ctx);
        return NULL;
    }
    int cap = l->cap;
    if (ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items))
        return l;
    if (l->cap != cap) {
        ss_span_t *sp = realloc(l->spans, (size_t)l->cap * sizeof *sp);
        if (!sp) {
            ss_pctx_nomem(ctx);
            return l;
        }
        l->spans = sp;
    }
    if (!(l->items[l->n] = ss_tok_ident(ctx, name)))
        return l;
    l->spans[l->n++] = ss_pctx_tok_span(name);
    return l;
}

ss_rowlist_t *ss_build_rowlist(ss_pctx_t *ctx, ss_rowlist_t *l, ss_ast_expr_list_t *row)
{
    if (!row) {
        ss_pctx_nomem(ctx);
        return l;
    }
    if ((!l && !(l = calloc(1, sizeof *l))) || ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items)) {
        if (!l)
            ss_pctx_nomem(ctx);
        ss_ast_exprlist_free(row);
        return l;
    }
    l->items[l->n++] = row;
    return l;
}

/* ---- statements ---- */
static ss_ast_stmt_t *stmt_new(ss_pctx_t *ctx, ss_ast_stmt_kind_t kind, const ss_tok_t *kw, const ss_tok_t *name)
{
    ss_ast_stmt_t *s = calloc(1, sizeof *s);
    if (!s) {
        ss_pctx_nomem(ctx);
        return NULL;
    }
    s->kind = kind;
    s->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(kw));
    if (name) {
        s->name_span = ss_pctx_tok_span(name);
        s->name = ss_tok_ident(ctx, name);
    }
    return s;
}

ss_ast_stmt_t *ss_build_create_stream(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                      const ss_tok_t *name, ss_collist_t *cols, ss_ast_options_t *opts)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_CREATE_STREAM, kw, name);
    if (!s) {
        ss_collist_free(cols);
        ss_ast_options_free(opts);
        return NULL;
    }
    s->if_not_exists = if_not_exists;
    if (cols) {
        s->ncols = cols->n;
        s->cols = cols->items;
        free(cols);
    }
    s->opts = opts;
    return s;
}

ss_ast_stmt_t *ss_build_create_view(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                    const ss_tok_t *name, ss_ast_options_t *opts, ss_ast_query_t *q)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_CREATE_VIEW, kw, name);
    if (!s) {
        ss_ast_options_free(opts);
        ss_ast_query_free(q);
        return NULL;
    }
    s->if_not_exists = if_not_exists;
    s->opts = opts;
    s->query = q;
    return s;
}

ss_ast_stmt_t *ss_build_create_model(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                     const ss_tok_t *name, ss_ast_options_t *opts)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_CREATE_MODEL, kw, name);
    if (!s) {
        ss_ast_options_free(opts);
        return NULL;
    }
    s->if_not_exists = if_not_exists;
    s->opts = opts;
    return s;
}

ss_ast_stmt_t *ss_build_set(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, const ss_optval_t *v)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_SET, kw, name);
    if (!s)
        return NULL;
    /* parse the value as a one-element option list, then move the value out */
    ss_ast_options_t *o = ss_build_option(ctx, NULL, name, v);
    if (o && o->n == 1) {
        if (o->items[0].stream) { /* SET x = STREAM(s): keep the stream name as text */
            s->set_value.t = SS_TEXT;
            s->set_value.u.str.s = o->items[0].stream;
            s->set_value.u.str.n = strlen(o->items[0].stream);
            o->items[0].stream = NULL;
        } else {
            s->set_value = o->items[0].value;
            o->items[0].value.t = SS_NULL;
        }
    }
    ss_ast_options_free(o);
    return s;
}

ss_ast_stmt_t *ss_build_drop(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_object_t obj, int if_exists,
                             const ss_tok_t *name)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_DROP, kw, name);
    if (s) {
        s->object = obj;
        s->if_exists = if_exists;
    }
    return s;
}

ss_ast_stmt_t *ss_build_show(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_object_t obj)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_SHOW, kw, NULL);
    if (s)
        s->object = obj;
    return s;
}

ss_ast_stmt_t *ss_build_select_stmt(ss_pctx_t *ctx, ss_ast_select_t *sel)
{
    if (!sel)
        return NULL;
    ss_tok_t kw = {0};
    kw.line = sel->span.line;
    kw.col = sel->span.col;
    kw.off = sel->span.off;
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_SELECT, &kw, NULL);
    ss_ast_query_t *q = ss_build_query_select(ctx, sel);
    if (!s || !q) {
        ss_ast_stmt_free(s);
        ss_ast_query_free(q);
        return NULL;
    }
    s->query = q;
    return s;
}

ss_ast_stmt_t *ss_build_subscribe(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name,
                                  ss_ast_options_t *opts)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_SUBSCRIBE, kw, name);
    if (!s) {
        ss_ast_options_free(opts);
        return NULL;
    }
    s->opts = opts; /* limit, timeout_ms, snapshot: checked where SUBSCRIBE runs */
    return s;
}

ss_ast_stmt_t *ss_build_explain(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_ast_query_t *q)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_EXPLAIN, kw, name);
    if (!s) {
        ss_ast_query_free(q);
        return NULL;
    }
    s->query = q;
    return s;
}

ss_ast_stmt_t *ss_build_insert(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_namelist_t *cols,
                               ss_rowlist_t *rows)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_INSERT, kw, name);
    if (!s) {
        ss_namelist_free(cols);
        ss_rowlist_free(rows);
        return NULL;
    }
    if (cols) {
        s->ninsert_cols = cols->n;
        s->insert_cols = cols->items;
        for (int i = 0; i < cols->n; i++)
            for (int j = 0; j < i; j++)
                if (ss_strcaseeq(cols->items[i], cols->items[j]))
                    ss_pctx_error(ctx, cols->spans[i].line, cols->spans[i].col,
                                  "duplicate column \"%s\" in INSERT", cols->items[i]);
        free(cols->spans);
        free(cols);
    }
    if (rows) {
        s->nrows = rows->n;
        s->rows = rows->items;
        free(rows);
    }
    for (int i = 0; i < s->nrows; i++) {
        int n = s->rows[i]->n, want = s->ninsert_cols ? s->ninsert_cols : s->rows[0]->n;
        if (n != want) {
            ss_span_t sp = s->rows[i]->items[0]->span;
            ss_pctx_error(ctx, sp.line, sp.col, "VALUES row %d has %d values, expected %d", i + 1, n, want);
            break;
        }
    }
    return s;
}

ss_ast_stmt_t *ss_build_delete(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_ast_expr_t *where)
{
    ss_ast_stmt_t *s = stmt_new(ctx, SS_STMT_DELETE, kw, name);
    if (!s) {
        ss_ast_expr_free(where);
        return NULL;
    }
    s->where = where;
    return s;
}
