/*
 * ast_build.c — the AST constructors called by the grammar actions
 * (grammar/parser.y). Each takes ownership of the nodes and lists given to it,
 * also when it fails: on out-of-memory it frees them, records the error in the
 * parse context and returns NULL. Spans run from a node's first token to the
 * end of the last token consumed (ctx->prev_end: a Lemon reduction happens
 * while the token after the construct is being fed). Validation that needs
 * source positions happens here too: column types, option values, LIMIT,
 * templates ({col} syntax, reported at line:col inside the literal), the
 * LLM_GENERATE options and the expression depth limit.
 */
#include "ss_parse_int.h"
#include "ss_decimal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Expression nodes carry their tree depth so that pathological inputs
 * (a+a+a+... over a megabyte) are refused before recursion gets deep. */
typedef struct axnode {
    ss_ast_expr_t e; /* first: an ss_ast_expr_t * is an axnode_t * */
    int depth;
    int paren;       /* written in parentheses: (x) — an IN list of one */
} axnode_t;

static int depth_of(const ss_ast_expr_t *e) { return e ? ((const axnode_t *)e)->depth : 0; }

ss_span_t ss_pctx_tok_span(const ss_tok_t *t)
{
    ss_span_t s = {t->line, t->col, t->off, t->n};
    return s;
}

ss_span_t ss_pctx_span_end(const ss_pctx_t *ctx, ss_span_t start)
{
    if (ctx->prev_end > start.off)
        start.len = ctx->prev_end - start.off;
    return start;
}

static void *zalloc(ss_pctx_t *ctx, size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        ss_pctx_nomem(ctx);
    return p;
}

int ss_pctx_grow(ss_pctx_t *ctx, void **items, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*items, (size_t)ncap * elem);
    if (!p) {
        ss_pctx_nomem(ctx);
        return -1;
    }
    *items = p;
    *cap = ncap;
    return 0;
}

char *ss_tok_ident(ss_pctx_t *ctx, const ss_tok_t *t)
{
    char *s;
    if (!t->quoted) {
        s = ss_strndup(t->z, (size_t)t->n);
    } else {
        s = malloc((size_t)t->n);
        if (s) {
            size_t k = 0;
            for (int i = 1; i < t->n - 1; i++) {
                s[k++] = t->z[i];
                if (t->z[i] == '"')
                    i++; /* "" -> " */
            }
            s[k] = 0;
        }
    }
    if (!s)
        ss_pctx_nomem(ctx);
    return s;
}

char *ss_tok_string(ss_pctx_t *ctx, const ss_tok_t *t)
{
    char q = t->z[0];
    char *s = malloc((size_t)t->n);
    if (!s) {
        ss_pctx_nomem(ctx);
        return NULL;
    }
    size_t k = 0;
    for (int i = 1; i < t->n - 1; i++) {
        s[k++] = t->z[i];
        if (t->z[i] == q)
            i++;
    }
    s[k] = 0;
    return s;
}

/* line:col of the idx-th character of the unescaped content of a quoted token. */
static void string_pos(const ss_tok_t *t, size_t idx, int *line, int *col)
{
    char q = t->z[0];
    int l = t->line, c = t->col + 1;
    size_t k = 0;
    for (int i = 1; i < t->n - 1 && k < idx; i++, k++) {
        if (t->z[i] == q) {
            i++;
            c++;
        }
        if (t->z[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Validates template syntax; returns the unescaped template (owned) or NULL
 * (error recorded). */
static char *template_text(ss_pctx_t *ctx, const ss_tok_t *t)
{
    char *s = ss_tok_string(ctx, t);
    if (!s)
        return NULL;
    size_t pos = 0;
    const char *msg = NULL;
    if (ss_template_scan(s, strlen(s), NULL, &pos, &msg) < 0) {
        int line, col;
        string_pos(t, pos, &line, &col);
        ss_pctx_error(ctx, line, col, "malformed template: %s", msg);
    }
    return s;
}

/* The value of a number token, optionally negated: INT, or REAL for reals and
 * for integers beyond 64 bits. strtoll/strtod read exactly the token here: the
 * buffer is NUL-terminated and the lexer's number tokens are maximal (what
 * follows cannot extend them), so no copy is needed. */
static void number_value(const ss_tok_t *t, int is_float, int neg, ss_value_t *v)
{
    if (!is_float) {
        errno = 0;
        long long i = strtoll(t->z, NULL, 10);
        if (errno == 0) {
            *v = ss_val_int(neg ? -i : i);
            return;
        }
    }
    double r = strtod(t->z, NULL);
    *v = ss_val_real(neg ? -r : r);
}

/* ---- expressions ---- */
static ss_ast_expr_t *expr_new(ss_pctx_t *ctx, ss_ast_expr_kind_t kind, ss_span_t span, int depth)
{
    axnode_t *n = zalloc(ctx, sizeof *n);
    if (!n)
        return NULL;
    n->e.kind = kind;
    n->e.span = span;
    n->depth = depth;
    if (depth > SS_PARSE_MAX_EXPR_DEPTH)
        ss_pctx_error(ctx, span.line, span.col, "expression nested too deeply (more than %d levels)",
                      SS_PARSE_MAX_EXPR_DEPTH);
    return &n->e;
}

ss_ast_expr_t *ss_build_expr_node(ss_pctx_t *ctx, ss_ast_expr_kind_t kind, ss_span_t span, const ss_ast_expr_t *child)
{
    return expr_new(ctx, kind, span, depth_of(child) + 1);
}

ss_ast_expr_t *ss_build_column(ss_pctx_t *ctx, const ss_tok_t *table, const ss_tok_t *name)
{
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_COLUMN, ss_pctx_span_end(ctx, ss_pctx_tok_span(table ? table : name)), 1);
    if (!e)
        return NULL;
    e->name = ss_tok_ident(ctx, name);
    if (table)
        e->table = ss_tok_ident(ctx, table);
    return e;
}

ss_ast_expr_t *ss_build_star(ss_pctx_t *ctx, const ss_tok_t *table, const ss_tok_t *star)
{
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_STAR, ss_pctx_span_end(ctx, ss_pctx_tok_span(table ? table : star)), 1);
    if (e && table)
        e->table = ss_tok_ident(ctx, table);
    return e;
}

ss_ast_expr_t *ss_build_literal(ss_pctx_t *ctx, ss_lit_kind_t k, const ss_tok_t *t)
{
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_LITERAL, ss_pctx_tok_span(t), 1);
    if (!e)
        return NULL;
    switch (k) {
    case SS_LIT_INT:
    case SS_LIT_FLOAT:
        number_value(t, k == SS_LIT_FLOAT, 0, &e->lit);
        if (k == SS_LIT_FLOAT || e->lit.t == SS_REAL) /* exact digits for NUMERIC contexts */
            if (!(e->num_text = ss_strndup(t->z, (size_t)t->n)))
                ss_pctx_nomem(ctx);
        break;
    case SS_LIT_TRUE: e->lit = ss_val_int(1); e->lit_bool = 1; break;
    case SS_LIT_FALSE: e->lit = ss_val_int(0); e->lit_bool = 1; break;
    case SS_LIT_NULL: e->lit = ss_val_null(); break;
    case SS_LIT_STRING: {
        char *s = ss_tok_string(ctx, t);
        if (s) {
            e->lit.t = SS_TEXT;
            e->lit.u.str.s = s;
            e->lit.u.str.n = strlen(s);
        }
        break;
    }
    }
    return e;
}

ss_ast_expr_t *ss_build_unary(ss_pctx_t *ctx, const ss_tok_t *optok, ss_ast_op_t op, ss_ast_expr_t *x)
{
    /* fold -<number> into a negative literal */
    if (op == SS_OP_NEG && x && x->kind == SS_AX_LITERAL &&
        (x->lit.t == SS_REAL || (x->lit.t == SS_INT && x->lit.u.i != INT64_MIN))) {
        if (x->lit.t == SS_INT)
            x->lit.u.i = -x->lit.u.i;
        else
            x->lit.u.r = -x->lit.u.r;
        if (x->num_text) {
            char *t = ss_sprintf("-%s", x->num_text);
            free(x->num_text);
            x->num_text = t;
            if (!t)
                ss_pctx_nomem(ctx);
        }
        x->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(optok));
        return x;
    }
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_UNARY, ss_pctx_span_end(ctx, ss_pctx_tok_span(optok)), depth_of(x) + 1);
    if (!e) {
        ss_ast_expr_free(x);
        return NULL;
    }
    e->op = op;
    e->left = x;
    return e;
}

/* The position of the first token after the left operand l (the operator of l op r): from the end
 * of l, blanks and comments skipped. */
static ss_span_t op_after(const ss_pctx_t *ctx, const ss_ast_expr_t *l)
{
    ss_span_t s = {0, 0, 0, 0};
    if (!l || !ctx->src || l->span.len <= 0)
        return s;
    const char *p = ctx->src + l->span.off, *end = ctx->src + ctx->len, *stop = p + l->span.len;
    int line = l->span.line, col = l->span.col;
    for (int in_block = 0, in_line = 0; p < end; p++) {
        if (p >= stop && !in_block && !in_line) {
            if (p + 1 < end && p[0] == '-' && p[1] == '-')
                in_line = 1;
            else if (p + 1 < end && p[0] == '/' && p[1] == '*')
                in_block = 1;
            else if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                break;
        } else if (in_block && p > ctx->src && p[-1] == '*' && p[0] == '/' && p - 2 >= stop)
            in_block = 0;
        if (*p == '\n') {
            in_line = 0;
            line++;
            col = 1;
        } else
            col++;
    }
    s.line = line;
    s.col = col;
    s.off = (int)(p - ctx->src);
    s.len = 1;
    return s;
}

ss_ast_expr_t *ss_build_binary(ss_pctx_t *ctx, ss_ast_op_t op, ss_ast_expr_t *l, ss_ast_expr_t *r)
{
    ss_span_t s = l ? l->span : r ? r->span : ss_pctx_tok_span(&ctx->cur);
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_BINARY, ss_pctx_span_end(ctx, s), SS_MAX(depth_of(l), depth_of(r)) + 1);
    if (!e) {
        ss_ast_expr_free(l);
        ss_ast_expr_free(r);
        return NULL;
    }
    e->op = op;
    e->left = l;
    e->right = r;
    e->op_span = op_after(ctx, l);
    return e;
}

ss_ast_expr_t *ss_build_not_like(ss_pctx_t *ctx, ss_ast_expr_t *l, ss_ast_expr_t *r)
{
    ss_ast_expr_t *like = ss_build_binary(ctx, SS_OP_LIKE, l, r);
    if (!like)
        return NULL;
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_UNARY, like->span, depth_of(like) + 1);
    if (!e) {
        ss_ast_expr_free(like);
        return NULL;
    }
    e->op = SS_OP_NOT;
    e->left = like;
    return e;
}

ss_ast_expr_t *ss_build_isnull(ss_pctx_t *ctx, ss_ast_expr_t *x, int negated)
{
    ss_span_t s = x ? x->span : ss_pctx_tok_span(&ctx->cur);
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_IS_NULL, ss_pctx_span_end(ctx, s), depth_of(x) + 1);
    if (!e) {
        ss_ast_expr_free(x);
        return NULL;
    }
    e->op = negated ? SS_OP_NOT : SS_OP_NONE;
    e->left = x;
    return e;
}

ss_ast_expr_t *ss_build_paren(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_expr_t *x)
{
    if (x) {
        x->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(lp));
        ((axnode_t *)x)->paren = 1;
    }
    return x;
}

ss_ast_expr_t *ss_build_func(ss_pctx_t *ctx, const ss_tok_t *name, ss_ast_expr_list_t *args,
                             int distinct, const ss_tok_t *star)
{
    int depth = 0;
    for (int i = 0; args && i < args->n; i++)
        depth = SS_MAX(depth, depth_of(args->items[i]));
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_FUNC, ss_pctx_span_end(ctx, ss_pctx_tok_span(name)), depth + 1);
    if (!e) {
        ss_ast_exprlist_free(args);
        return NULL;
    }
    e->args = args;
    e->distinct = distinct;
    e->name = ss_tok_ident(ctx, name);
    for (char *p = e->name; p && *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    if (star) /* COUNT(*): one SS_AX_STAR argument */
        e->args = ss_build_exprlist(ctx, NULL, ss_build_star(ctx, NULL, star));
    ss_ast_expr_t *in = args && args->n == 1 ? args->items[0] : NULL;
    if (e->name && !strcmp(e->name, "POSITION") && in && in->kind == SS_AX_IN && in->op == SS_OP_NONE &&
        in->args && in->args->n == 1) { /* POSITION(a IN b): the arguments a, b */
        ss_ast_expr_t *sub = in->left, *str = in->args->items[0];
        in->left = NULL;
        in->args->items[0] = str;
        args->items[0] = sub;
        in->args->n = 0;
        ss_ast_expr_free(in);
        e->args = ss_build_exprlist(ctx, args, str);
    }
    return e;
}

ss_ast_expr_t *ss_build_sem(ss_pctx_t *ctx, const ss_tok_t *fn, const ss_tok_t *tmpl, ss_ast_options_t *opts)
{
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_SEM, ss_pctx_span_end(ctx, ss_pctx_tok_span(fn)), 1);
    if (!e) {
        ss_ast_options_free(opts);
        return NULL;
    }
    e->sem = (ss_sem_kind_t)fn->aux;
    e->opts = opts;
    e->tmpl_span = ss_pctx_tok_span(tmpl);
    e->tmpl = template_text(ctx, tmpl);
    return e;
}

ss_ast_expr_list_t *ss_build_exprlist(ss_pctx_t *ctx, ss_ast_expr_list_t *l, ss_ast_expr_t *x)
{
    if (!x) {
        ss_pctx_nomem(ctx); /* an element constructor failed */
        return l;
    }
    if (!l && !(l = zalloc(ctx, sizeof *l))) {
        ss_ast_expr_free(x);
        return NULL;
    }
    if (ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items)) {
        ss_ast_expr_free(x);
        return l;
    }
    l->items[l->n++] = x;
    return l;
}

/* ---- options ---- */
static void lower(char *s)
{
    for (; s && *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

ss_ast_options_t *ss_build_option(ss_pctx_t *ctx, ss_ast_options_t *l, const ss_tok_t *name,
                                  const ss_optval_t *v)
{
    if (!l && !(l = zalloc(ctx, sizeof *l)))
        return NULL;
    if (ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items))
        return l;
    ss_ast_option_t *o = &l->items[l->n];
    memset(o, 0, sizeof *o);
    if (!(o->name = ss_tok_ident(ctx, name)))
        return l;
    l->n++;
    lower(o->name);
    o->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(name));
    for (int i = 0; i < l->n - 1; i++)
        if (!strcmp(l->items[i].name, o->name))
            ss_pctx_error(ctx, name->line, name->col, "duplicate option \"%s\"", o->name);
    switch (v->kind) {
    case SS_OV_INT: number_value(&v->tok, 0, v->neg, &o->value); break;
    case SS_OV_FLOAT: number_value(&v->tok, 1, v->neg, &o->value); break;
    case SS_OV_TRUE: o->value = ss_val_int(1); break;
    case SS_OV_FALSE: o->value = ss_val_int(0); break;
    case SS_OV_NULL: o->value = ss_val_null(); break;
    case SS_OV_STREAM: o->stream = ss_tok_ident(ctx, &v->tok); break;
    case SS_OV_STRING:
    case SS_OV_IDENT: {
        /* a "double-quoted" value reads as the string inside the quotes */
        char *s = v->kind == SS_OV_STRING || v->tok.quoted ? ss_tok_string(ctx, &v->tok)
                                                           : ss_tok_ident(ctx, &v->tok);
        if (s) {
            o->value.t = SS_TEXT;
            o->value.u.str.s = s;
            o->value.u.str.n = strlen(s);
        }
        if (s && !strcmp(o->name, "prompt") && (v->kind == SS_OV_STRING || v->tok.quoted))
            free(template_text(ctx, &v->tok)); /* LLM_GENERATE prompts are templates */
        break;
    }
    }
    return l;
}

/* ---- select ---- */
ss_sellist_t *ss_build_selitem(ss_pctx_t *ctx, ss_sellist_t *l, ss_ast_expr_t *x, const ss_tok_t *alias)
{
    if (!x) {
        ss_pctx_nomem(ctx);
        return l;
    }
    if ((!l && !(l = zalloc(ctx, sizeof *l))) ||
        ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items)) {
        ss_ast_expr_free(x);
        return l;
    }
    ss_ast_select_item_t *it = &l->items[l->n++];
    it->expr = x;
    it->alias = alias->z ? ss_tok_ident(ctx, alias) : NULL;
    it->span = ss_pctx_span_end(ctx, x->span);
    return l;
}

ss_orderlist_t *ss_build_orderitem(ss_pctx_t *ctx, ss_orderlist_t *l, ss_ast_expr_t *x, int desc)
{
    if (!x) {
        ss_pctx_nomem(ctx);
        return l;
    }
    if ((!l && !(l = zalloc(ctx, sizeof *l))) ||
        ss_pctx_grow(ctx, (void **)&l->items, &l->cap, l->n, sizeof *l->items)) {
        ss_ast_expr_free(x);
        return l;
    }
    l->items[l->n].expr = x;
    l->items[l->n++].desc = desc;
    return l;
}

ss_ast_from_t *ss_build_table(ss_pctx_t *ctx, const ss_tok_t *name, const ss_tok_t *alias)
{
    ss_ast_from_t *f = zalloc(ctx, sizeof *f);
    if (!f)
        return NULL;
    f->kind = SS_FROM_TABLE;
    f->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(name));
    f->name = ss_tok_ident(ctx, name);
    if (alias->z)
        f->alias = ss_tok_ident(ctx, alias);
    return f;
}

static ss_ast_from_t *join_new(ss_pctx_t *ctx, ss_ast_from_kind_t kind, ss_ast_from_t *l, ss_ast_from_t *r)
{
    ss_ast_from_t *f = zalloc(ctx, sizeof *f);
    if (!f) {
        ss_ast_from_free(l);
        ss_ast_from_free(r);
        return NULL;
    }
    f->kind = kind;
    f->left = l;
    f->right = r;
    f->span = ss_pctx_span_end(ctx, l ? l->span : r ? r->span : ss_pctx_tok_span(&ctx->cur));
    int n = 1; /* joins nest to the left: bound the depth of that chain */
    for (const ss_ast_from_t *p = l; p && p->kind != SS_FROM_TABLE; p = p->left)
        n++;
    if (n >= SS_PARSE_MAX_JOINS)
        ss_pctx_error(ctx, f->span.line, f->span.col, "too many joins (at most %d tables in one FROM)",
                      SS_PARSE_MAX_JOINS);
    return f;
}

ss_ast_from_t *ss_build_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_join_type_t jt, ss_ast_from_t *r,
                             ss_ast_expr_t *on)
{
    ss_ast_from_t *f = join_new(ctx, SS_FROM_JOIN, l, r);
    if (!f) {
        ss_ast_expr_free(on);
        return NULL;
    }
    f->join_type = jt;
    f->on = on;
    return f;
}

ss_ast_from_t *ss_build_sem_join(ss_pctx_t *ctx, ss_ast_from_t *l, ss_ast_from_t *r, const ss_tok_t *tmpl,
                                 ss_ast_options_t *opts)
{
    ss_ast_from_t *f = join_new(ctx, SS_FROM_SEM_JOIN, l, r);
    if (!f) {
        ss_ast_options_free(opts);
        return NULL;
    }
    f->opts = opts;
    f->tmpl_span = ss_pctx_tok_span(tmpl);
    f->tmpl = template_text(ctx, tmpl);
    return f;
}

ss_ast_select_t *ss_build_select(ss_pctx_t *ctx, const ss_tok_t *kw, int distinct, ss_sellist_t *items,
                                 ss_ast_from_t *from, ss_ast_expr_t *where, ss_ast_expr_list_t *group_by,
                                 ss_ast_expr_t *having)
{
    ss_ast_select_t *s = zalloc(ctx, sizeof *s);
    if (!s) {
        ss_sellist_free(items);
        ss_ast_from_free(from);
        ss_ast_expr_free(where);
        ss_ast_exprlist_free(group_by);
        ss_ast_expr_free(having);
        return NULL;
    }
    s->span = ss_pctx_span_end(ctx, ss_pctx_tok_span(kw));
    s->distinct = distinct;
    if (items) {
        s->nitems = items->n;
        s->items = items->items;
        free(items);
    }
    s->from = from;
    s->where = where;
    s->group_by = group_by;
    s->having = having;
    s->limit = -1;
    return s;
}

ss_ast_query_t *ss_build_query_select(ss_pctx_t *ctx, ss_ast_select_t *s)
{
    if (!s)
        return NULL;
    ss_ast_query_t *q = zalloc(ctx, sizeof *q);
    if (!q) {
        ss_ast_select_free(s);
        return NULL;
    }
    q->kind = SS_Q_SELECT;
    q->span = s->span;
    q->select = s;
    return q;
}

/* ---- CASE, CAST, IN, BETWEEN, LIKE/ILIKE ... ESCAPE ---- */

static int list_depth(const ss_ast_expr_list_t *l)
{
    int d = 0;
    for (int i = 0; l && i < l->n; i++)
        d = SS_MAX(d, depth_of(l->items[i]));
    return d;
}

ss_ast_expr_t *ss_build_like(ss_pctx_t *ctx, ss_ast_op_t op, int negated, ss_ast_expr_t *l, ss_ast_expr_t *r,
                             ss_ast_expr_t *esc)
{
    ss_ast_expr_t *e = ss_build_binary(ctx, op, l, r);
    if (!e) {
        ss_ast_expr_free(esc);
        return NULL;
    }
    if (esc) {
        e->args = ss_build_exprlist(ctx, NULL, esc);
        ((axnode_t *)e)->depth = SS_MAX(depth_of(e), depth_of(esc) + 1);
        e->span = ss_pctx_span_end(ctx, e->span);
    }
    if (!negated)
        return e;
    ss_ast_expr_t *n = expr_new(ctx, SS_AX_UNARY, e->span, depth_of(e) + 1);
    if (!n) {
        ss_ast_expr_free(e);
        return NULL;
    }
    n->op = SS_OP_NOT;
    n->left = e;
    return n;
}

ss_ast_expr_t *ss_build_in(ss_pctx_t *ctx, ss_ast_expr_t *x, ss_ast_expr_t *list, int negated)
{
    ss_span_t s = x ? x->span : ss_pctx_tok_span(&ctx->cur);
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_IN, ss_pctx_span_end(ctx, s), SS_MAX(depth_of(x), depth_of(list)) + 1);
    if (!e || !list) {
        ss_ast_expr_free(e);
        ss_ast_expr_free(x);
        ss_ast_expr_free(list);
        if (e && !list)
            ss_pctx_nomem(ctx);
        return NULL;
    }
    e->op = negated ? SS_OP_NOT : SS_OP_NONE;
    e->left = x;
    if (list->kind == SS_AX_SUBQUERY && !((axnode_t *)list)->paren) { /* x IN (SELECT ...) */
        e->kind = SS_AX_IN_SELECT;
        e->sub = list->sub;
        list->sub = NULL;
        ss_ast_expr_free(list);
        return e;
    }
    if (list->kind == SS_AX_ROW) { /* take the row's elements */
        e->args = list->args;
        list->args = NULL;
        ss_ast_expr_free(list);
    } else {
        if (!((axnode_t *)list)->paren)
            e->distinct = 1; /* bare: only POSITION(a IN b) accepts it */
        e->args = ss_build_exprlist(ctx, NULL, list);
    }
    return e;
}

ss_ast_expr_t *ss_build_between(ss_pctx_t *ctx, ss_ast_expr_t *x, ss_ast_expr_t *lo, ss_ast_expr_t *hi,
                                int negated)
{
    ss_span_t s = x ? x->span : ss_pctx_tok_span(&ctx->cur);
    int d = SS_MAX(depth_of(x), SS_MAX(depth_of(lo), depth_of(hi))) + 1;
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_BETWEEN, ss_pctx_span_end(ctx, s), d);
    if (!e || !lo || !hi) {
        if (e && (!lo || !hi))
            ss_pctx_nomem(ctx);
        ss_ast_expr_free(e);
        ss_ast_expr_free(x);
        ss_ast_expr_free(lo);
        ss_ast_expr_free(hi);
        return NULL;
    }
    e->op = negated ? SS_OP_NOT : SS_OP_NONE;
    e->left = x;
    e->args = ss_build_exprlist(ctx, ss_build_exprlist(ctx, NULL, lo), hi);
    if (!e->args || e->args->n != 2) {
        ss_ast_expr_free(e);
        return NULL;
    }
    return e;
}

/* The integer value of a type modifier token; -1 when out of range. */
static int mod_value(const ss_tok_t *t)
{
    long v = 0;
    for (int i = 0; i < t->n; i++) {
        v = v * 10 + (t->z[i] - '0');
        if (v > 1000000)
            return -1;
    }
    return (int)v;
}

int ss_resolve_type(ss_pctx_t *ctx, const ss_typename_t *t, ss_coltype_t *type, int *typmod)
{
    char *tn = ss_tok_ident(ctx, &t->name);
    if (!tn)
        return -1;
    int ty = ss_type_from_name(tn);
    *typmod = -1;
    if (ty < 0) {
        ss_pctx_error(ctx, t->name.line, t->name.col,
                      "unknown type \"%s\": expected TEXT, VARCHAR, INT, BIGINT, REAL, DOUBLE, FLOAT, BOOLEAN, "
                      "NUMERIC, DECIMAL or JSON", tn);
        free(tn);
        return -1;
    }
    *type = (ss_coltype_t)ty;
    if (ty == SS_COL_NUMERIC && t->nmods > 0) {
        int p = mod_value(&t->mod[0]), sc = t->nmods > 1 ? mod_value(&t->mod[1]) : 0;
        if (p < 1 || p > SS_DEC_MAX_PRECISION) {
            ss_pctx_error(ctx, t->mod[0].line, t->mod[0].col, "NUMERIC precision %.*s must be between 1 and %d",
                          t->mod[0].n, t->mod[0].z, SS_DEC_MAX_PRECISION);
            free(tn);
            return -1;
        }
        if (sc < 0 || sc > p) {
            ss_pctx_error(ctx, t->mod[1].line, t->mod[1].col, "NUMERIC scale %.*s must be between 0 and precision %d",
                          t->mod[1].n, t->mod[1].z, p);
            free(tn);
            return -1;
        }
        *typmod = ss_typmod_make(p, sc);
    } else if (t->nmods > (ty == SS_COL_TEXT ? 1 : 0)) {
        const ss_tok_t *m = &t->mod[0];
        ss_pctx_error(ctx, m->line, m->col, "type %s takes no modifiers%s", tn,
                      ty == SS_COL_TEXT ? " but a length" : "");
        free(tn);
        return -1;
    }
    free(tn);
    return 0;
}

ss_ast_expr_t *ss_build_cast(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_t *x, const ss_typename_t *type)
{
    ss_span_t s = kw ? ss_pctx_tok_span(kw) : x ? x->span : ss_pctx_tok_span(&type->name);
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_CAST, ss_pctx_span_end(ctx, s), depth_of(x) + 1);
    if (!e) {
        ss_ast_expr_free(x);
        return NULL;
    }
    e->left = x;
    e->cast_typmod = -1;
    ss_resolve_type(ctx, type, &e->cast_type, &e->cast_typmod);
    return e;
}

ss_ast_expr_t *ss_build_row(ss_pctx_t *ctx, const ss_tok_t *lp, ss_ast_expr_t *first, ss_ast_expr_list_t *rest)
{
    ss_ast_expr_list_t *l = ss_build_exprlist(ctx, NULL, first);
    for (int i = 0; l && rest && i < rest->n; i++) {
        l = ss_build_exprlist(ctx, l, rest->items[i]);
        rest->items[i] = NULL;
    }
    ss_ast_exprlist_free(rest);
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_ROW, ss_pctx_span_end(ctx, ss_pctx_tok_span(lp)), list_depth(l) + 1);
    if (!e) {
        ss_ast_exprlist_free(l);
        return NULL;
    }
    e->args = l;
    return e;
}

ss_ast_expr_t *ss_build_case(ss_pctx_t *ctx, const ss_tok_t *kw, ss_ast_expr_t *operand,
                             ss_ast_expr_list_t *whens, ss_ast_expr_t *els)
{
    int d = SS_MAX(SS_MAX(depth_of(operand), depth_of(els)), list_depth(whens)) + 1;
    ss_ast_expr_t *e = expr_new(ctx, SS_AX_CASE, ss_pctx_span_end(ctx, ss_pctx_tok_span(kw)), d);
    if (!e) {
        ss_ast_expr_free(operand);
        ss_ast_exprlist_free(whens);
        ss_ast_expr_free(els);
        return NULL;
    }
    e->left = operand;
    e->args = whens;
    e->right = els;
    return e;
}
