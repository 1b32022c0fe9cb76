/*
 * parse.c — ss_parse(): drives the re2c lexer and the Lemon parser over a
 * script, enforces the nesting limit, appends each finished statement (with
 * its source text) to the script, and formats errors as
 *   [name:]line:col: syntax error near "tok": expected one of A, B, C
 * The parse context (ss_pctx_t) owns the partial script until success.
 */
#include "ss_parse_int.h"
#include "parser.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Lemon's entry points (generated into parser.c with %name ss_Parse). */
void *ss_ParseAlloc(void *(*mallocProc)(size_t), ss_pctx_t *ctx);
void ss_ParseFree(void *p, void (*freeProc)(void *));
void ss_Parse(void *p, int major, ss_tok_t minor);

void ss_pctx_error(ss_pctx_t *ctx, int line, int col, const char *fmt, ...)
{
    if (ctx->failed)
        return;
    ctx->failed = 1;
    if (!ctx->err || !ctx->errsz)
        return;
    char msg[SS_ERRSZ];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->name)
        snprintf(ctx->err, ctx->errsz, "%s:%d:%d: %s", ctx->name, line, col, msg);
    else
        snprintf(ctx->err, ctx->errsz, "%d:%d: %s", line, col, msg);
}

void ss_pctx_nomem(ss_pctx_t *ctx)
{
    if (ctx->failed)
        return;
    ss_pctx_error(ctx, ctx->cur.line, ctx->cur.col, "out of memory");
    ctx->nomem = 1;
}

/* Appends the token text, shortened and with control bytes escaped. */
static void put_token_text(ss_buf_t *b, const ss_tok_t *t)
{
    int n = t->n > 40 ? 37 : t->n;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t->z[i];
        if (c == '"' || c == '\\')
            ss_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            ss_buf_printf(b, "\\x%02x", c);
        else
            ss_buf_putc(b, (char)c);
    }
    if (n < t->n)
        ss_buf_puts(b, "...");
}

/* Up to two tokens of lookahead for the contextual keywords. */
typedef struct lookahead {
    ss_lexer_t *lx;
    int n;
    int code[3];
    ss_tok_t tok[3];
} lookahead_t;

/* A syntax error caused by SQL semstream does not support yet is reported as such ("CASE is not
 * supported") at that SQL's position: the statement's tokens, the failing one and the one after
 * it are matched against grammar/unsupported.c. Returns 1 when it reported. */
static int report_unsupported(ss_pctx_t *ctx, const ss_tok_t *extra)
{
    int n = ctx->nstoks;
    ss_tok_t *t = realloc(ctx->stoks, (size_t)(n + 2) * sizeof *t);
    if (!t)
        return 0;
    ctx->stoks = t;
    ctx->capstoks = ctx->capstoks > n + 2 ? ctx->capstoks : n + 2;
    if (extra)
        t[n++] = *extra;
    else if (ctx->la && ctx->la->n > 0) { /* already read ahead */
        if (ctx->la->code[0] > 0)
            t[n++] = ctx->la->tok[0];
    } else if (ctx->lx) { /* peek at the next token on a copy of the lexer */
        ss_lexer_t peek = *ctx->lx;
        if (ss_lex(&peek, &t[n]) > 0)
            n++;
    }
    int at = -1;
    const char *what = ss_unsupported_find(t, n, &at);
    if (!what)
        return 0;
    ss_pctx_error(ctx, t[at].line, t[at].col, "%s is not supported", what);
    return 1;
}

void ss_pctx_syntax_error(ss_pctx_t *ctx, int major, const ss_tok_t *tok,
                          const unsigned char *expected, int nterm)
{
    if (major != 0 && report_unsupported(ctx, NULL))
        return;
    ss_buf_t b = SS_BUF_INIT;
    int at_end = major == 0 || tok->n == 0; /* end of input or the implied final ';' */
    if (at_end)
        ss_buf_puts(&b, "syntax error: unexpected end of input");
    else {
        ss_buf_puts(&b, "syntax error near \"");
        put_token_text(&b, tok);
        ss_buf_puts(&b, "\"");
    }
    int count = 0, shown = 0;
    for (int t = 1; t < nterm; t++)
        count += expected[t] && ss_token_name(t);
    for (int t = 1; t < nterm; t++) {
        const char *nm = ss_token_name(t);
        if (!expected[t] || !nm)
            continue;
        if (shown == 24) {
            ss_buf_printf(&b, ", ... (%d more)", count - shown);
            break;
        }
        ss_buf_puts(&b, shown ? ", " : count > 1 ? ": expected one of " : ": expected ");
        ss_buf_puts(&b, nm);
        shown++;
    }
    ss_pctx_error(ctx, tok->line, tok->col, "%s", ss_buf_cstr(&b));
    ss_buf_free(&b);
}

void ss_pctx_add_stmt(ss_pctx_t *ctx, ss_ast_stmt_t *s)
{
    if (!s)
        return;
    ss_ast_script_t *sc = ctx->script;
    if (ctx->prev_end > s->span.off)
        s->span.len = ctx->prev_end - s->span.off;
    s->text = ss_strndup(ctx->src + s->span.off, (size_t)s->span.len);
    if (!s->text)
        goto oom;
    if (sc->n == sc->cap) {
        int ncap = sc->cap ? sc->cap * 2 : 4;
        ss_ast_stmt_t **p = realloc(sc->stmts, (size_t)ncap * sizeof *p);
        if (!p)
            goto oom;
        sc->stmts = p;
        sc->cap = ncap;
    }
    sc->stmts[sc->n++] = s;
    return;
oom:
    ss_ast_stmt_free(s);
    ss_pctx_nomem(ctx);
}

/* Feeds one token; returns 0 to go on, -1 once the parse has failed. */
static int feed(ss_pctx_t *ctx, void *parser, int code, const ss_tok_t *t)
{
    ctx->prev_end = ctx->last_end;
    ctx->cur = *t;
    if (code == TK_SEMI || code == 0) {
        ctx->nstoks = 0; /* a new statement */
    } else {
        if (ctx->nstoks == ctx->capstoks) {
            int cap = ctx->capstoks ? ctx->capstoks * 2 : 64;
            ss_tok_t *p = realloc(ctx->stoks, (size_t)cap * sizeof *p);
            if (!p) {
                ss_pctx_nomem(ctx);
                return -1;
            }
            ctx->stoks = p;
            ctx->capstoks = cap;
        }
        ctx->stoks[ctx->nstoks++] = *t;
    }
    if (ss_parse_snapshot(parser, ctx)) {
        ss_pctx_nomem(ctx);
        return -1;
    }
    ss_Parse(parser, code, *t);
    if (t->n)
        ctx->last_end = t->off + t->n;
    return ctx->failed ? -1 : 0;
}

/* Positions the end-of-input token t just after the last real token, so that
 * "unexpected end of input" points where the statement stopped. */
static void place_eof(ss_tok_t *t, const ss_tok_t *last)
{
    if (!last->z)
        return;
    t->line = last->line;
    t->col = last->col;
    for (int i = 0; i < last->n; i++) {
        if (last->z[i] == '\n') {
            t->line++;
            t->col = 1;
        } else {
            t->col++;
        }
    }
}

/* Code of the i-th token ahead (0 = the next one to be consumed, at most 2); 0 at end, -1 on error. */
static int peek(lookahead_t *la, int i)
{
    if (i > 2)
        return -1;
    for (int k = 0; k <= i; k++) {
        if (k == la->n) {
            la->code[k] = ss_lex(la->lx, &la->tok[k]);
            la->n = k + 1;
        }
        if (la->code[k] <= 0) /* end of input or an error: nothing comes after it */
            return la->code[k];
    }
    return la->code[i];
}

static int next_token(lookahead_t *la, ss_tok_t *t)
{
    int code = peek(la, 0);
    *t = la->tok[0];
    if (code > 0) {
        la->n--;
        memmove(la->code, la->code + 1, (size_t)la->n * sizeof la->code[0]);
        memmove(la->tok, la->tok + 1, (size_t)la->n * sizeof la->tok[0]);
    }
    return code;
}

/* Words that are keywords only where the tokens around them make them one (RIGHT JOIN,
 * USING (, OVER (, PARTITION BY, FILTER (WHERE, WITH RECURSIVE); elsewhere they are names
 * (a column `full`, a function right(s, n)). */
static int contextual(lookahead_t *la, int code, int prev)
{
    int n1 = peek(la, 0); /* the token after this one */
    switch (code) {
    case TK_RIGHT: case TK_FULL: return n1 == TK_JOIN || n1 == TK_OUTER ? code : TK_ID;
    case TK_CROSS: return n1 == TK_JOIN ? code : TK_ID;
    case TK_NATURAL:
        return n1 == TK_JOIN || n1 == TK_INNER || n1 == TK_LEFT || n1 == TK_RIGHT || n1 == TK_FULL ? code : TK_ID;
    case TK_USING: case TK_OVER: return n1 == TK_LP ? code : TK_ID;
    case TK_PARTITION: return n1 == TK_BY ? code : TK_ID;
    case TK_FILTER: return n1 == TK_LP && peek(la, 1) == TK_WHERE ? code : TK_ID;
    case TK_RECURSIVE: return prev == TK_WITH ? code : TK_ID;
    default: return code;
    }
}

/* 1 when t is DOUBLE followed by PRECISION where a type name goes (after AS, ::, or a column
 * name in CREATE STREAM): PostgreSQL's two-word name of REAL. */
static int double_precision(lookahead_t *la, const ss_tok_t *t, int prev)
{
    if (prev != TK_AS && prev != TK_DCOLON && prev != TK_ID)
        return 0;
    if (t->n != 6 || strncasecmp(t->z, "DOUBLE", 6) != 0 || peek(la, 0) != TK_ID)
        return 0;
    return la->tok[0].n == 9 && strncasecmp(la->tok[0].z, "PRECISION", 9) == 0;
}

static void run_parser(ss_pctx_t *ctx, ss_lexer_t *lx, void *parser)
{
    int depth = 0, last = TK_SEMI;
    ss_tok_t t, lastt = {0};
    lookahead_t la = {.lx = lx};
    ctx->la = &la;
    for (;;) {
        int code = next_token(&la, &t);
        if (code < 0) {
            /* "a::int": the lexer stops at ':'; say which SQL that is */
            const char *p = ctx->src;
            for (int l = 1; *p && l < lx->err_line; p++)
                l += *p == '\n';
            p += lx->err_col - 1;
            ss_tok_t cc = {.z = p, .n = 2, .line = lx->err_line, .col = lx->err_col};
            if (p < ctx->src + ctx->len - 1 && p[0] == ':' && p[1] == ':' && report_unsupported(ctx, &cc))
                return;
            ss_pctx_error(ctx, lx->err_line, lx->err_col, "%s", lx->msg);
            return;
        }
        if (code == 0)
            break;
        code = contextual(&la, code, last);
        if (code == TK_ID && double_precision(&la, &t, last))
            next_token(&la, &(ss_tok_t){0}); /* DOUBLE PRECISION is the type DOUBLE */
        if (code == TK_LP && ++depth > SS_PARSE_MAX_PARENS) {
            ss_pctx_error(ctx, t.line, t.col, "nesting too deep (more than %d levels of parentheses)",
                          SS_PARSE_MAX_PARENS);
            return;
        }
        if (code == TK_RP)
            depth--;
        if (feed(ctx, parser, code, &t))
            return;
        last = code;
        lastt = t;
    }
    place_eof(&t, &lastt);
    /* t is the end-of-input token: empty, positioned at the end */
    if (last != TK_SEMI && feed(ctx, parser, TK_SEMI, &t))
        return;
    feed(ctx, parser, 0, &t);
}

int ss_parse(const char *sql, size_t len, const char *name, ss_ast_script_t **out,
             char *err, size_t errsz)
{
    if (out)
        *out = NULL;
    if (err && errsz)
        err[0] = 0;
    if (!out || (!sql && len))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "ss_parse: no input");
    if (len > (size_t)INT_MAX / 2)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "ss_parse: input too large (%zu bytes)", len);
    char *buf = malloc(len + 1);
    ss_ast_script_t *script = calloc(1, sizeof *script);
    if (!buf || !script) {
        free(buf);
        free(script);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    if (len)
        memcpy(buf, sql, len);
    buf[len] = 0;
    ss_pctx_t ctx = {.src = buf, .len = len, .name = name, .script = script, .err = err, .errsz = errsz};
    ss_lexer_t lx;
    ss_lex_init(&lx, buf, len);
    ctx.lx = &lx;
    void *parser = ss_ParseAlloc(malloc, &ctx);
    if (!parser) {
        ss_pctx_nomem(&ctx);
    } else {
        run_parser(&ctx, &lx, parser);
        ss_ParseFree(parser, free);
    }
    free(buf);
    free(ctx.snap);
    free(ctx.stoks);
    if (ctx.failed) {
        ss_ast_script_free(script);
        return ctx.nomem ? SS_ERR_NOMEM : SS_ERR_PARSE;
    }
    *out = script;
    return SS_OK;
}
