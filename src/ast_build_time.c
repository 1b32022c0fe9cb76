/*
 * ast_build_time.c — the AST constructors of the time syntax (issue 13), called
 * by the grammar actions:
 *   INTERVAL '5' SECOND, INTERVAL '5 minutes'   -> CAST('5 SECOND' AS INTERVAL)
 *   TIMESTAMP '..', TIMESTAMPTZ '..', DATE '..' -> CAST('..' AS type)
 *   EXTRACT(field FROM x)                       -> EXTRACT('field', x)
 *   TUMBLE/HOP/SESSION(...) in FROM             -> a table item with a window function
 *   WATERMARK FOR ts AS ts - INTERVAL '5' SECOND in CREATE STREAM
 *   CREATE VIEW ... EMIT ON WINDOW CLOSE
 * (The words become keywords in grammar/time_words.c.) Same ownership rules as
 * src/ast_build.c: every constructor takes its arguments, also when it fails.
 */
#include "ss_parse_int.h"
#include "ss_time.h"

#include <stdlib.h>
#include <string.h>

/* Case-insensitive comparison of a token's text with a word (never matches a quoted name). */
static int tok_is(const ss_tok_t *t, const char *w)
{
    size_t n = strlen(w);
    return t && t->z && !t->quoted && (size_t)t->n == n && !strncasecmp(t->z, w, n);
}

/* A string literal node holding text (taken). */
static ss_ast_expr_t *text_literal(ss_pctx_t *ctx, const ss_tok_t *at, char *text)
{
    ss_ast_expr_t *e = ss_build_literal(ctx, SS_LIT_NULL, at);
    if (!e || !text) {
        free(text);
        if (e && !text)
            ss_pctx_nomem(ctx);
        return e;
    }
    e->lit.t = SS_TEXT;
    e->lit.u.str.s = text;
    e->lit.u.str.n = strlen(text);
    return e;
}

ss_ast_expr_t *ss_build_interval(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *str, const ss_tok_t *unit)
{
    ss_ast_expr_t *lit = ss_build_literal(ctx, SS_LIT_STRING, str);
    if (lit && unit && lit->lit.t == SS_TEXT) { /* '5' SECOND -> '5 SECOND' */
        char *t = ss_sprintf("%s %.*s", lit->lit.u.str.s, unit->n, unit->z);
        if (!t) {
            ss_ast_expr_free(lit);
            ss_pctx_nomem(ctx);
            return NULL;
        }
        free(lit->lit.u.str.s);
        lit->lit.u.str.s = t;
        lit->lit.u.str.n = strlen(t);
    }
    ss_typename_t ty = ss_typename(*kw, NULL, NULL);
    return ss_build_cast(ctx, kw, lit, &ty);
}

ss_ast_expr_t *ss_build_typed_literal(ss_pctx_t *ctx, const ss_tok_t *type, const ss_tok_t *str)
{
    ss_typename_t ty = ss_typename(*type, NULL, NULL);
    return ss_build_cast(ctx, type, ss_build_literal(ctx, SS_LIT_STRING, str), &ty);
}

ss_ast_expr_t *ss_build_extract(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *field, ss_ast_expr_t *x)
{
    ss_ast_expr_t *f;
    if (field->z && (field->z[0] == '\'' || (field->z[0] == '"' && !field->quoted)))
        f = ss_build_literal(ctx, SS_LIT_STRING, field);
    else
        f = text_literal(ctx, field, ss_tok_ident(ctx, field));
    ss_ast_expr_list_t *args = ss_build_exprlist(ctx, ss_build_exprlist(ctx, NULL, f), x);
    return ss_build_func(ctx, kw, args, 0, NULL);
}

ss_ast_from_t *ss_build_tvf(ss_pctx_t *ctx, const ss_tok_t *fn, ss_tvfsrc_t *src, ss_ast_expr_list_t *args,
                            const ss_tok_t *alias)
{
    ss_ast_from_t *f = ss_build_table(ctx, &src->name, alias);
    ss_ast_tvf_t *t = calloc(1, sizeof *t);
    if (!f || !t) {
        free(t);
        ss_ast_from_free(f);
        ss_namelist_free(src->part);
        ss_ast_exprlist_free(args);
        if (f)
            ss_pctx_nomem(ctx);
        return NULL;
    }
    f->tvf = t;
    t->span = ss_pctx_tok_span(fn);
    f->span = ss_pctx_span_end(ctx, t->span);
    t->args = args;
    if (src->part) {
        t->npart = src->part->n;
        t->part = src->part->items;
        t->part_spans = src->part->spans;
        free(src->part);
        src->part = NULL;
    }
    if (tok_is(fn, "TUMBLE"))
        t->kind = SS_TVF_TUMBLE;
    else if (tok_is(fn, "HOP"))
        t->kind = SS_TVF_HOP;
    else if (tok_is(fn, "SESSION"))
        t->kind = SS_TVF_SESSION;
    else
        ss_pctx_error(ctx, fn->line, fn->col, "unknown table function %.*s in FROM (expected TUMBLE, HOP or SESSION)",
                      fn->n, fn->z);
    if (src->kw.z && !tok_is(&src->kw, "TABLE"))
        ss_pctx_error(ctx, src->kw.line, src->kw.col, "expected TABLE or a stream or view name, not %.*s",
                      src->kw.n, src->kw.z);
    if (t->npart && t->kind != SS_TVF_SESSION)
        ss_pctx_error(ctx, t->part_spans[0].line, t->part_spans[0].col,
                      "PARTITION BY is for SESSION windows; %s windows are the same for every key", ss_tvf_name(t->kind));
    return f;
}

ss_collist_t *ss_build_watermark(ss_pctx_t *ctx, ss_collist_t *l, const ss_tok_t *kw, const ss_tok_t *for_,
                                 const ss_tok_t *col, ss_ast_expr_t *e)
{
    (void)for_; /* WATERMARK is only a keyword when FOR follows it (ss_time_keyword) */
    if (!l) {
        ss_ast_expr_free(e);
        return NULL;
    }
    if (l->wm_col) {
        ss_pctx_error(ctx, kw->line, kw->col, "a stream has at most one WATERMARK");
        ss_ast_expr_free(e);
        return l;
    }
    l->wm_col = ss_tok_ident(ctx, col);
    l->wm_span = ss_pctx_tok_span(col);
    l->wm_expr = e;
    return l;
}

ss_ast_stmt_t *ss_build_emit(ss_pctx_t *ctx, ss_ast_stmt_t *s, const ss_tok_t *emit, const ss_tok_t *w1,
                             const ss_tok_t *w2)
{
    if (!tok_is(w1, "WINDOW") || !tok_is(w2, "CLOSE")) {
        const ss_tok_t *at = tok_is(w1, "WINDOW") ? w2 : w1;
        ss_pctx_error(ctx, at->line, at->col, "expected EMIT ON WINDOW CLOSE");
    }
    (void)emit;
    if (s && s->query)
        s->query->emit_on_close = 1;
    return s;
}
