/*
 * ast_build_sem.c — AST constructors for the semantic operators of issue 15
 * (grammar/parser.y, section "semantic operators"): SEM_EXTRACT, SEM_CLASSIFY,
 * SEM_GROUP, SEM_CLUSTER (a SEM call whose extra positional arguments are literals
 * in args), SEM_SIM_JOIN and SEM_SEARCH (FROM items). Like every constructor of
 * ast_build.c they take ownership of their children even when they fail.
 */
#include "ss_parse_int.h"

#include <stdlib.h>
#include <string.h>

ss_ast_expr_t *ss_build_sem_args(ss_pctx_t *ctx, const ss_tok_t *fn, int kind, const ss_tok_t *tmpl,
                                 ss_ast_expr_list_t *args, ss_ast_options_t *opts)
{
    ss_tok_t f = ss_tok_aux(*fn, kind);
    ss_ast_expr_t *e = ss_build_sem(ctx, &f, tmpl, opts);
    if (!e) {
        ss_ast_exprlist_free(args);
        return NULL;
    }
    e->args = args;
    return e;
}

/* The value of an INTEGER token, or -1 (with an error) when it does not fit. */
static int64_t tok_int(ss_pctx_t *ctx, const ss_tok_t *t)
{
    int64_t v = 0;
    for (int i = 0; i < t->n; i++) {
        if (v > (INT64_MAX - 9) / 10) {
            ss_pctx_error(ctx, t->line, t->col, "LIMIT %.*s is too large", t->n, t->z);
            return -1;
        }
        v = v * 10 + (t->z[i] - '0');
    }
    return v;
}

ss_ast_from_t *ss_build_sem_sim_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_ast_from_t *r, const ss_tok_t *tmpl,
                                     const ss_tok_t *k, ss_ast_options_t *opts)
{
    ss_ast_from_t *f = ss_build_sem_join(ctx, l, r, tmpl, opts);
    if (!f)
        return NULL;
    f->kind = SS_FROM_SEM_SIM_JOIN;
    f->k = tok_int(ctx, k);
    return f;
}

ss_ast_from_t *ss_build_sem_search(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name,
                                   const ss_tok_t *query, const ss_tok_t *k, ss_ast_options_t *opts,
                                   const ss_tok_t *alias)
{
    ss_ast_from_t *f = ss_build_table(ctx, name, alias);
    if (!f) {
        ss_ast_options_free(opts);
        return NULL;
    }
    f->kind = SS_FROM_SEM_SEARCH;
    f->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(kw));
    f->opts = opts;
    f->tmpl_span = ss_pctx_tok_span(query);
    f->tmpl = ss_tok_string(ctx, query);
    f->k = tok_int(ctx, k);
    if (!f->tmpl)
        ss_pctx_nomem(ctx);
    return f;
}
