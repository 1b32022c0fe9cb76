/*
 * ss_parse_int.h — internals of the SQL front end shared by grammar/lexer.re,
 * grammar/parser.y, grammar/parse.c (the ss_parse driver) and src/ast_build.c
 * (the AST constructors the grammar actions call).
 *
 * Ownership: tokens are plain values pointing into the parse buffer (they own
 * nothing). Every ss_build_* constructor takes ownership of the nodes and lists
 * passed to it, also when it fails; on out-of-memory it frees them, marks the
 * parse context failed and returns NULL. Constructors that validate (column
 * types, templates, LLM_GENERATE options) report errors through the context.
 */
#ifndef SS_PARSE_INT_H
#define SS_PARSE_INT_H

#include "ss_ast.h"

#include <stddef.h>
#include <stdint.h>

#define SS_PARSE_MAX_PARENS 200    /* nesting limit of '(' */
#define SS_PARSE_MAX_EXPR_DEPTH 1000 /* depth limit of an expression tree */
#define SS_PARSE_MAX_JOINS 64      /* tables joined in one FROM */

/* A token: a slice of the (NUL-terminated) parse buffer plus its position. */
typedef struct ss_tok {
    const char *z; /* first byte; NULL for "no token" (an absent optional part) */
    int n;         /* byte length */
    int line, col; /* 1-based position of z */
    int off;       /* byte offset of z in the source */
    int quoted;    /* 1 for a "double-quoted" identifier */
    int aux;       /* free slot for grammar actions (e.g. the SEM kind) */
} ss_tok_t;

/* ---- lexer (grammar/lexer.re) ---- */
typedef struct ss_lexer {
    const unsigned char *buf; /* NUL-terminated copy of the source */
    const unsigned char *end; /* buf + len (the terminating NUL) */
    const unsigned char *cur;
    const unsigned char *line_start;
    int line;
    /* set when ss_lex returns < 0 */
    char msg[160];
    int err_line, err_col;
} ss_lexer_t;

void ss_lex_init(ss_lexer_t *lx, const char *buf, size_t len);
/* Next token: its TK_* code (> 0), 0 at end of input, -1 on a lexical error
 * (lx->msg, lx->err_line, lx->err_col describe it). */
int ss_lex(ss_lexer_t *lx, ss_tok_t *t);
/* Display name of a terminal for "expected ..." lists: SELECT, identifier, '('. */
const char *ss_token_name(int code);
/* 1 if s[0..n) is a keyword (case-insensitive): such names need quoting in SQL output. */
int ss_lex_is_keyword(const char *s, size_t n);
/* 1 if s[0..n) is a reserved keyword (not usable as a bare name). */
int ss_lex_is_reserved(const char *s, size_t n);

/* ---- parse context (%extra_context of the Lemon parser) ---- */
typedef struct ss_pctx {
    const char *src;          /* the NUL-terminated parse buffer */
    size_t len;
    const char *name;         /* file name for messages, or NULL */
    ss_ast_script_t *script;  /* statements parsed so far (owned until returned) */
    int failed;               /* an error was recorded: stop feeding tokens */
    int nomem;                /* the error is out-of-memory */
    char *err;                /* caller's buffer */
    size_t errsz;
    ss_tok_t cur;             /* the token being fed to the parser */
    int prev_end;             /* offset just past the token fed before cur */
    int last_end;             /* offset just past the last token fed */
    int *snap;                /* parser state stack before cur was fed (owned) */
    int nsnap, snapcap;
    ss_tok_t *stoks;          /* the tokens of the current statement so far, cur included (owned) */
    int nstoks, capstoks;
    const ss_lexer_t *lx;     /* to peek at the token after a failing one */
    const struct lookahead *la; /* ... which the parser may already have read ahead (parse.c) */
} ss_pctx_t;

/* The SQL feature that tokens toks[0..n) use and semstream does not support yet ("CASE",
 * "UNION", ...: grammar/unsupported.c), with *at = the index of its first token; NULL if none. */
const char *ss_unsupported_find(const ss_tok_t *toks, int n, int *at);

/* Copies the parser's state stack into ctx->snap (grammar/parser.y). -1 on OOM. */
int ss_parse_snapshot(void *parser, ss_pctx_t *ctx);

/* Records the first error as "[name:]line:col: message". */
void ss_pctx_error(ss_pctx_t *ctx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ss_pctx_nomem(ss_pctx_t *ctx);
/* Helpers of the AST builders (src/ast_build.c): a token's span; the span from start to the end
 * of the last consumed token; growing *items (of elem bytes) to hold n+1 entries (0, or -1 on OOM
 * with the error recorded). */
ss_span_t ss_pctx_tok_span(const ss_tok_t *t);
ss_span_t ss_pctx_span_end(const ss_pctx_t *ctx, ss_span_t start);
int ss_pctx_grow(ss_pctx_t *ctx, void **items, int *cap, int n, size_t elem);
/* Formats the syntax error at tok: expected[] is a 0/1 flag per terminal code. */
void ss_pctx_syntax_error(ss_pctx_t *ctx, int major, const ss_tok_t *tok,
                          const unsigned char *expected, int nterm);
/* Appends a finished statement (its text ends at ctx->prev_end). */
void ss_pctx_add_stmt(ss_pctx_t *ctx, ss_ast_stmt_t *s);

/* ---- intermediate lists built by the grammar ---- */
typedef struct ss_sellist { int n, cap; ss_ast_select_item_t *items; } ss_sellist_t;
typedef struct ss_orderlist { int n, cap; ss_ast_order_t *items; } ss_orderlist_t;
typedef struct ss_collist { int n, cap; ss_ast_coldef_t *items; } ss_collist_t;
typedef struct ss_namelist { int n, cap; char **items; ss_span_t *spans; } ss_namelist_t;
typedef struct ss_rowlist { int n, cap; ss_ast_expr_list_t **items; } ss_rowlist_t;
typedef struct ss_ctelist { int n, cap; ss_ast_cte_t *items; } ss_ctelist_t;
/* What may follow a call's ')': FILTER (WHERE ..) and OVER (...); both owned. */
typedef struct ss_fsuffix { ss_ast_expr_t *filter; ss_ast_window_t *over; } ss_fsuffix_t;
/* LIMIT k / OFFSET m as written (a token with z == NULL is absent). */
typedef struct ss_limit { ss_tok_t limit, offset; } ss_limit_t;

void ss_sellist_free(ss_sellist_t *l);
void ss_orderlist_free(ss_orderlist_t *l);
void ss_collist_free(ss_collist_t *l);
void ss_namelist_free(ss_namelist_t *l);
void ss_rowlist_free(ss_rowlist_t *l);
void ss_ctelist_free(ss_ctelist_t *l);
void ss_fsuffix_free(ss_fsuffix_t *f);
void ss_ast_window_free(ss_ast_window_t *w);
void ss_ast_exprlist_free(ss_ast_expr_list_t *l);
void ss_ast_select_free(ss_ast_select_t *s);
void ss_ast_from_free(ss_ast_from_t *f);

/* An option value as written (no heap): see ss_build_option. */
typedef enum ss_ov_kind {
    SS_OV_STRING, SS_OV_INT, SS_OV_FLOAT, SS_OV_IDENT, SS_OV_STREAM,
    SS_OV_TRUE, SS_OV_FALSE, SS_OV_NULL,
} ss_ov_kind_t;
typedef struct ss_optval {
    ss_ov_kind_t kind;
    ss_tok_t tok;  /* the literal / identifier / stream name */
    int neg;       /* a leading '-' (numbers) */
} ss_optval_t;

static inline ss_optval_t ss_ov(ss_ov_kind_t k, ss_tok_t t, int neg)
{
    ss_optval_t v = {k, t, neg};
    return v;
}

static inline ss_tok_t ss_tok_aux(ss_tok_t t, int aux)
{
    t.aux = aux;
    return t;
}

/* A type as written: name token and up to two modifiers (VARCHAR(200), NUMERIC(10,2)). */
typedef struct ss_typename {
    ss_tok_t name;
    int nmods;
    ss_tok_t mod[2];
} ss_typename_t;

static inline ss_typename_t ss_typename(ss_tok_t name, const ss_tok_t *p, const ss_tok_t *s)
{
    ss_typename_t t;
    t.name = name;
    t.nmods = p ? (s ? 2 : 1) : 0;
    if (p)
        t.mod[0] = *p;
    if (s)
        t.mod[1] = *s;
    return t;
}

/* Literal kinds for ss_build_literal. */
typedef enum ss_lit_kind { SS_LIT_INT, SS_LIT_FLOAT, SS_LIT_STRING, SS_LIT_TRUE, SS_LIT_FALSE, SS_LIT_NULL } ss_lit_kind_t;

/* ---- AST constructors (src/ast_build.c); see the ownership note above ---- */
char *ss_tok_ident(ss_pctx_t *ctx, const ss_tok_t *t);   /* identifier text, unquoted */
char *ss_tok_string(ss_pctx_t *ctx, const ss_tok_t *t);  /* 'string' or "string" unescaped */

/* A bare expression node of the given kind, one level above child (may be NULL) in the
 * expression depth count (see ast_build.c); NULL on OOM. */
ss_ast_expr_t *ss_build_expr_node(ss_pctx_t *ctx, ss_ast_expr_kind_t kind, ss_span_t span, const ss_ast_expr_t *child);
ss_ast_expr_t *ss_build_column(ss_pctx_t *ctx, const ss_tok_t *table, const ss_tok_t *name);
ss_ast_expr_t *ss_build_star(ss_pctx_t *ctx, const ss_tok_t *table, const ss_tok_t *star);
ss_ast_expr_t *ss_build_literal(ss_pctx_t *ctx, ss_lit_kind_t k, const ss_tok_t *t);
ss_ast_expr_t *ss_build_unary(ss_pctx_t *ctx, const ss_tok_t *optok, ss_ast_op_t op, ss_ast_expr_t *x);
ss_ast_expr_t *ss_build_binary(ss_pctx_t *ctx, ss_ast_op_t op, ss_ast_expr_t *l, ss_ast_expr_t *r);
ss_ast_expr_t *ss_build_not_like(ss_pctx_t *ctx, ss_ast_expr_t *l, ss_ast_expr_t *r);
ss_ast_expr_t *ss_build_isnull(ss_pctx_t *ctx, ss_ast_expr_t *x, int negated);
ss_ast_expr_t *ss_build_paren(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_expr_t *x);
/* name(args); args may be NULL (no arguments); star: COUNT(*) */
ss_ast_expr_t *ss_build_func(ss_pctx_t *ctx, const ss_tok_t *name, ss_ast_expr_list_t *args,
                             int distinct, const ss_tok_t *star);
/* fn.aux holds the ss_sem_kind_t */
ss_ast_expr_t *ss_build_sem(ss_pctx_t *ctx, const ss_tok_t *fn, const ss_tok_t *tmpl,
                            ss_ast_options_t *opts);
ss_ast_expr_list_t *ss_build_exprlist(ss_pctx_t *ctx, ss_ast_expr_list_t *l, ss_ast_expr_t *x);
/* [NOT] LIKE / ILIKE with an optional ESCAPE expression (esc may be NULL). */
ss_ast_expr_t *ss_build_like(ss_pctx_t *ctx, ss_ast_op_t op, int negated, ss_ast_expr_t *l, ss_ast_expr_t *r,
                             ss_ast_expr_t *esc);
/* x [NOT] IN list: list is a row (a, b), a parenthesised expression (a), or — for
 * POSITION(a IN b) only — any expression (kept, marked bare, refused by the planner). */
ss_ast_expr_t *ss_build_in(ss_pctx_t *ctx, ss_ast_expr_t *x, ss_ast_expr_t *list, int negated);
ss_ast_expr_t *ss_build_between(ss_pctx_t *ctx, ss_ast_expr_t *x, ss_ast_expr_t *lo, ss_ast_expr_t *hi,
                                int negated);
/* CAST(x AS type) (kw = the CAST token) or x::type (kw NULL). */
ss_ast_expr_t *ss_build_cast(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_t *x, const ss_typename_t *type);
ss_ast_expr_t *ss_build_row(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_expr_t *first, ss_ast_expr_list_t *rest);
/* CASE [operand] WHEN w THEN t ... [ELSE e] END: whens = w1, t1, w2, t2, ... */
ss_ast_expr_t *ss_build_case(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_t *operand,
                             ss_ast_expr_list_t *whens, ss_ast_expr_t *els);
/* Resolves a type name and its modifiers; errors at the type's position. 0 or -1. */
int ss_resolve_type(ss_pctx_t *ctx, const ss_typename_t *t, ss_coltype_t *type, int *typmod);

ss_ast_options_t *ss_build_option(ss_pctx_t *ctx, ss_ast_options_t *l, const ss_tok_t *name,
                                  const ss_optval_t *v);

ss_sellist_t *ss_build_selitem(ss_pctx_t *ctx, ss_sellist_t *l, ss_ast_expr_t *x, const ss_tok_t *alias);
ss_orderlist_t *ss_build_orderitem(ss_pctx_t *ctx, ss_orderlist_t *l, ss_ast_expr_t *x, int desc);
ss_ast_from_t *ss_build_table(ss_pctx_t *ctx, const ss_tok_t *name, const ss_tok_t *alias);
ss_ast_from_t *ss_build_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_join_type_t jt, ss_ast_from_t *r,
                             ss_ast_expr_t *on);
ss_ast_from_t *ss_build_sem_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_ast_from_t *r, const ss_tok_t *tmpl,
                                 ss_ast_options_t *opts);
/* semops (src/ast_build_sem.c): SEM_EXTRACT/CLASSIFY/GROUP/CLUSTER with positional args,
 * SEM_SIM_JOIN and SEM_SEARCH. Each takes ownership of its children. */
ss_ast_expr_t *ss_build_sem_args(ss_pctx_t *ctx, const ss_tok_t *fn, int kind, const ss_tok_t *tmpl,
                                 ss_ast_expr_list_t *args, ss_ast_options_t *opts);
ss_ast_from_t *ss_build_sem_sim_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_ast_from_t *r, const ss_tok_t *tmpl,
                                     const ss_tok_t *k, ss_ast_options_t *opts);
ss_ast_from_t *ss_build_sem_search(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name,
                                   const ss_tok_t *query, const ss_tok_t *k, ss_ast_options_t *opts,
                                   const ss_tok_t *alias);
ss_ast_select_t *ss_build_select(ss_pctx_t *ctx, const ss_tok_t *kw, int distinct, ss_sellist_t *items,
                                 ss_ast_from_t *from, ss_ast_expr_t *where, ss_ast_expr_list_t *group_by,
                                 ss_ast_expr_t *having);
/* l op r (a compound SELECT). */
ss_ast_select_t *ss_build_compound(ss_pctx_t *ctx, ss_ast_select_t *l, ss_setop_t op, ss_ast_select_t *r);
/* Attaches WITH, ORDER BY and LIMIT/OFFSET to a plain or compound SELECT. */
ss_ast_select_t *ss_build_select_tail(ss_pctx_t *ctx, ss_ctelist_t *with, ss_ast_select_t *s,
                                      ss_orderlist_t *order, const ss_limit_t *limit);
/* name [(cols)] AS (select): a one-entry list. */
ss_ctelist_t *ss_build_cte(ss_pctx_t *ctx, const ss_tok_t *name, ss_namelist_t *cols, ss_ast_select_t *s);
ss_ctelist_t *ss_ctelist_concat(ss_pctx_t *ctx, ss_ctelist_t *l, ss_ctelist_t *one);
/* (SELECT ..) as a value (kind SUBQUERY), EXISTS (SELECT ..), or left [NOT] IN (SELECT ..). */
ss_ast_expr_t *ss_build_subquery(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_kind_t kind, ss_ast_expr_t *left,
                                 ss_ast_select_t *sub, int negated);
/* Adds ORDER BY (inside the call), FILTER and OVER to a function call. */
ss_ast_expr_t *ss_build_func_ex(ss_pctx_t *ctx, ss_ast_expr_t *f, ss_orderlist_t *order, ss_fsuffix_t *sfx);
ss_ast_window_t *ss_build_window(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_list_t *partition,
                                 ss_orderlist_t *order);
ss_ast_from_t *ss_build_from_subquery(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_select_t *s, const ss_tok_t *alias);
/* JOIN ... USING (cols) (natural = 0) or NATURAL JOIN (cols NULL); j may be NULL (OOM). */
ss_ast_from_t *ss_build_join_using(ss_pctx_t *ctx, ss_ast_from_t *j, ss_namelist_t *cols, int natural);
/* FROM a, b: a CROSS join marked as written with a comma. */
ss_ast_from_t *ss_build_join_comma(ss_pctx_t *ctx, ss_ast_from_t *j);
ss_ast_query_t *ss_build_query_select(ss_pctx_t *ctx, ss_ast_select_t *s);
ss_ast_query_t *ss_build_query_generate(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_options_t *opts);

ss_collist_t *ss_build_coldef(ss_pctx_t *ctx, ss_collist_t *l, const ss_tok_t *name, const ss_typename_t *type,
                              int is_key);
ss_namelist_t *ss_build_namelist(ss_pctx_t *ctx, ss_namelist_t *l, const ss_tok_t *name);
ss_rowlist_t *ss_build_rowlist(ss_pctx_t *ctx, ss_rowlist_t *l, ss_ast_expr_list_t *row);

ss_ast_stmt_t *ss_build_create_stream(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                      const ss_tok_t *name, ss_collist_t *cols, ss_ast_options_t *opts);
ss_ast_stmt_t *ss_build_create_view(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                    const ss_tok_t *name, ss_ast_options_t *opts, ss_ast_query_t *q);
ss_ast_stmt_t *ss_build_create_model(ss_pctx_t *ctx, const ss_tok_t *kw, int if_not_exists,
                                     const ss_tok_t *name, ss_ast_options_t *opts);
ss_ast_stmt_t *ss_build_set(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, const ss_optval_t *v);
ss_ast_stmt_t *ss_build_drop(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_object_t obj, int if_exists,
                             const ss_tok_t *name);
ss_ast_stmt_t *ss_build_show(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_object_t obj);
ss_ast_stmt_t *ss_build_select_stmt(ss_pctx_t *ctx, ss_ast_select_t *s);
ss_ast_stmt_t *ss_build_subscribe(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name,
                                  ss_ast_options_t *opts);
ss_ast_stmt_t *ss_build_explain(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_ast_query_t *q);
ss_ast_stmt_t *ss_build_insert(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_namelist_t *cols,
                               ss_rowlist_t *rows);
ss_ast_stmt_t *ss_build_delete(ss_pctx_t *ctx, const ss_tok_t *kw, const ss_tok_t *name, ss_ast_expr_t *where);

/* Template scanning shared by ss_template_refs and the parser's validation:
 * returns the number of references (refs may be NULL) or -1 with *errpos the
 * byte index of the problem in tmpl and msg a short description. */
int ss_template_scan(const char *tmpl, size_t n, char ***refs, size_t *errpos, const char **msg);

#endif
