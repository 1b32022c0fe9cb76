/*
 * ast.c — the AST of ss_ast.h after parsing: freeing every node kind, option
 * lookup, operator/semantic names, the SQL rendering of expressions (used by
 * EXPLAIN and by round-trip tests) and template reference scanning.
 * Construction lives in src/ast_build.c (called from the grammar actions).
 */
#include "ss_ast.h"
#include "ss_parse_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- freeing ---- */
static void value_free(ss_value_t *v)
{
    if (v->t == SS_TEXT)
        free(v->u.str.s);
    v->t = SS_NULL;
}

void ss_ast_exprlist_free(ss_ast_expr_list_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        ss_ast_expr_free(l->items[i]);
    free(l->items);
    free(l);
}

void ss_ast_expr_free(ss_ast_expr_t *e)
{
    if (!e)
        return;
    free(e->table);
    free(e->name);
    value_free(&e->lit);
    free(e->tmpl);
    ss_ast_expr_free(e->left);
    ss_ast_expr_free(e->right);
    ss_ast_exprlist_free(e->args);
    ss_ast_options_free(e->opts);
    free(e);
}

void ss_ast_options_free(ss_ast_options_t *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        free(o->items[i].name);
        value_free(&o->items[i].value);
        free(o->items[i].stream);
    }
    free(o->items);
    free(o);
}

void ss_ast_from_free(ss_ast_from_t *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->alias);
    ss_ast_from_free(f->left);
    ss_ast_from_free(f->right);
    ss_ast_expr_free(f->on);
    free(f->tmpl);
    ss_ast_options_free(f->opts);
    free(f);
}

void ss_ast_select_free(ss_ast_select_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nitems; i++) {
        ss_ast_expr_free(s->items[i].expr);
        free(s->items[i].alias);
    }
    free(s->items);
    ss_ast_from_free(s->from);
    ss_ast_expr_free(s->where);
    ss_ast_exprlist_free(s->group_by);
    ss_ast_expr_free(s->having);
    for (int i = 0; i < s->norder; i++)
        ss_ast_expr_free(s->order[i].expr);
    free(s->order);
    free(s);
}

void ss_ast_query_free(ss_ast_query_t *q)
{
    if (!q)
        return;
    ss_ast_select_free(q->select);
    if (q->generate) {
        free(q->generate->prompt);
        free(q->generate->context_stream);
        free(q->generate->data_stream);
        ss_ast_options_free(q->generate->opts);
        free(q->generate);
    }
    free(q);
}

void ss_ast_stmt_free(ss_ast_stmt_t *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->name);
    for (int i = 0; i < s->ncols; i++)
        free(s->cols[i].name);
    free(s->cols);
    ss_ast_options_free(s->opts);
    ss_ast_query_free(s->query);
    value_free(&s->set_value);
    for (int i = 0; i < s->ninsert_cols; i++)
        free(s->insert_cols[i]);
    free(s->insert_cols);
    for (int i = 0; i < s->nrows; i++)
        ss_ast_exprlist_free(s->rows[i]);
    free(s->rows);
    ss_ast_expr_free(s->where);
    free(s);
}

void ss_ast_script_free(ss_ast_script_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        ss_ast_stmt_free(s->stmts[i]);
    free(s->stmts);
    free(s);
}

/* ---- intermediate lists ---- */
void ss_sellist_free(ss_sellist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++) {
        ss_ast_expr_free(l->items[i].expr);
        free(l->items[i].alias);
    }
    free(l->items);
    free(l);
}

void ss_orderlist_free(ss_orderlist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        ss_ast_expr_free(l->items[i].expr);
    free(l->items);
    free(l);
}

void ss_collist_free(ss_collist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
    free(l);
}

void ss_namelist_free(ss_namelist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    free(l->spans);
    free(l);
}

void ss_rowlist_free(ss_rowlist_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        ss_ast_exprlist_free(l->items[i]);
    free(l->items);
    free(l);
}

/* ---- lookups and names ---- */
const ss_ast_option_t *ss_ast_option_get(const ss_ast_options_t *o, const char *name)
{
    if (!o || !name)
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (ss_strcaseeq(o->items[i].name, name))
            return &o->items[i];
    return NULL;
}

const char *ss_ast_op_name(ss_ast_op_t op)
{
    switch (op) {
    case SS_OP_NONE: return "";
    case SS_OP_OR: return "OR";
    case SS_OP_AND: return "AND";
    case SS_OP_NOT: return "NOT";
    case SS_OP_EQ: return "=";
    case SS_OP_NE: return "!=";
    case SS_OP_LT: return "<";
    case SS_OP_LE: return "<=";
    case SS_OP_GT: return ">";
    case SS_OP_GE: return ">=";
    case SS_OP_ADD: return "+";
    case SS_OP_SUB: return "-";
    case SS_OP_MUL: return "*";
    case SS_OP_DIV: return "/";
    case SS_OP_MOD: return "%";
    case SS_OP_CONCAT: return "||";
    case SS_OP_LIKE: return "LIKE";
    case SS_OP_NEG: return "-";
    }
    return "?";
}

const char *ss_sem_kind_name(ss_sem_kind_t k)
{
    switch (k) {
    case SS_SEM_NONE: return "";
    case SS_SEM_FILTER: return "SEM_FILTER";
    case SS_SEM_MAP: return "SEM_MAP";
    case SS_SEM_RANK: return "SEM_RANK";
    case SS_SEM_SCORE: return "SEM_SCORE";
    case SS_SEM_AGG: return "SEM_AGG";
    }
    return "?";
}

/* ---- SQL rendering ---- */

/* Binding strength of an operator (higher binds tighter); mirrors parser.y. */
static int op_prec(const ss_ast_expr_t *e)
{
    if (e->kind == SS_AX_IS_NULL)
        return 4;
    if (e->kind == SS_AX_UNARY)
        return e->op == SS_OP_NOT ? 3 : 9;
    if (e->kind != SS_AX_BINARY)
        return 10;
    switch (e->op) {
    case SS_OP_OR: return 1;
    case SS_OP_AND: return 2;
    case SS_OP_EQ: case SS_OP_NE: case SS_OP_LIKE: return 4;
    case SS_OP_LT: case SS_OP_LE: case SS_OP_GT: case SS_OP_GE: return 5;
    case SS_OP_ADD: case SS_OP_SUB: return 6;
    case SS_OP_MUL: case SS_OP_DIV: case SS_OP_MOD: return 7;
    case SS_OP_CONCAT: return 8;
    default: return 10;
    }
}

static int put_ident(ss_buf_t *b, const char *s)
{
    int plain = s[0] && !isdigit((unsigned char)s[0]) && !ss_lex_is_keyword(s, strlen(s));
    for (const char *p = s; *p && plain; p++)
        plain = isalnum((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80;
    if (plain)
        return ss_buf_puts(b, s);
    int rc = ss_buf_putc(b, '"');
    for (const char *p = s; *p && !rc; p++)
        rc = *p == '"' ? ss_buf_puts(b, "\"\"") : ss_buf_putc(b, *p);
    return rc ? rc : ss_buf_putc(b, '"');
}

static int put_string(ss_buf_t *b, const char *s, size_t n)
{
    int rc = ss_buf_putc(b, '\'');
    for (size_t i = 0; i < n && !rc; i++)
        rc = s[i] == '\'' ? ss_buf_puts(b, "''") : ss_buf_putc(b, s[i]);
    return rc ? rc : ss_buf_putc(b, '\'');
}

static int put_value(ss_buf_t *b, const ss_value_t *v)
{
    switch (v->t) {
    case SS_NULL: return ss_buf_puts(b, "NULL");
    case SS_INT: return ss_buf_printf(b, "%lld", (long long)v->u.i);
    case SS_TEXT: return put_string(b, v->u.str.s, v->u.str.n);
    case SS_REAL: {
        if (isinf(v->u.r))
            return ss_buf_puts(b, v->u.r > 0 ? "1e999" : "-1e999");
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.17g", v->u.r);
        if (!strpbrk(tmp, ".eEn"))
            strcat(tmp, ".0");
        return ss_buf_puts(b, tmp);
    }
    }
    return SS_ERR_INVALID;
}

static int put_options(ss_buf_t *b, const ss_ast_options_t *o)
{
    int rc = 0;
    for (int i = 0; o && i < o->n && !rc; i++) {
        const ss_ast_option_t *op = &o->items[i];
        rc = ss_buf_printf(b, "%s%s = ", i ? ", " : "", op->name);
        if (rc)
            break;
        if (op->stream) {
            rc = ss_buf_puts(b, "STREAM(");
            rc = rc ? rc : put_ident(b, op->stream);
            rc = rc ? rc : ss_buf_putc(b, ')');
        } else {
            rc = put_value(b, &op->value);
        }
    }
    return rc;
}

static int put_child(ss_buf_t *b, const ss_ast_expr_t *c, int parens)
{
    if (!parens)
        return ss_ast_expr_to_sql(c, b);
    int rc = ss_buf_putc(b, '(');
    rc = rc ? rc : ss_ast_expr_to_sql(c, b);
    return rc ? rc : ss_buf_putc(b, ')');
}

static int put_func(const ss_ast_expr_t *e, ss_buf_t *b)
{
    int rc = ss_buf_printf(b, "%s(%s", e->name ? e->name : "?", e->distinct ? "DISTINCT " : "");
    for (int i = 0; e->args && i < e->args->n && !rc; i++) {
        if (i)
            rc = ss_buf_puts(b, ", ");
        rc = rc ? rc : ss_ast_expr_to_sql(e->args->items[i], b);
    }
    return rc ? rc : ss_buf_putc(b, ')');
}

static int put_sem(const ss_ast_expr_t *e, ss_buf_t *b)
{
    int rc = ss_buf_printf(b, "%s(", ss_sem_kind_name(e->sem));
    rc = rc ? rc : put_string(b, e->tmpl ? e->tmpl : "", e->tmpl ? strlen(e->tmpl) : 0);
    if (!rc && e->opts && e->opts->n) {
        rc = ss_buf_puts(b, ", ");
        rc = rc ? rc : put_options(b, e->opts);
    }
    return rc ? rc : ss_buf_putc(b, ')');
}

int ss_ast_expr_to_sql(const ss_ast_expr_t *e, ss_buf_t *out)
{
    if (!e)
        return ss_buf_puts(out, "NULL");
    int rc = 0, p = op_prec(e);
    switch (e->kind) {
    case SS_AX_COLUMN:
        if (e->table) {
            rc = put_ident(out, e->table);
            rc = rc ? rc : ss_buf_putc(out, '.');
        }
        return rc ? rc : put_ident(out, e->name ? e->name : "?");
    case SS_AX_LITERAL:
        return put_value(out, &e->lit);
    case SS_AX_STAR:
        if (e->table) {
            rc = put_ident(out, e->table);
            rc = rc ? rc : ss_buf_putc(out, '.');
        }
        return rc ? rc : ss_buf_putc(out, '*');
    case SS_AX_UNARY:
        if (e->op == SS_OP_NOT) {
            rc = ss_buf_puts(out, "NOT ");
            return rc ? rc : put_child(out, e->left, e->left && op_prec(e->left) < p);
        }
        rc = ss_buf_putc(out, '-');
        /* parenthesize anything but a name or call: "--" would start a comment */
        return rc ? rc : put_child(out, e->left, e->left && e->left->kind != SS_AX_COLUMN &&
                                                     e->left->kind != SS_AX_FUNC &&
                                                     e->left->kind != SS_AX_SEM);
    case SS_AX_BINARY:
        rc = put_child(out, e->left, e->left && op_prec(e->left) < p);
        rc = rc ? rc : ss_buf_printf(out, " %s ", ss_ast_op_name(e->op));
        return rc ? rc : put_child(out, e->right, e->right && op_prec(e->right) <= p);
    case SS_AX_IS_NULL:
        rc = put_child(out, e->left, e->left && op_prec(e->left) <= p);
        return rc ? rc : ss_buf_puts(out, e->op == SS_OP_NOT ? " IS NOT NULL" : " IS NULL");
    case SS_AX_FUNC:
        return put_func(e, out);
    case SS_AX_SEM:
        return put_sem(e, out);
    }
    return SS_ERR_INVALID;
}

/* ---- templates ---- */
static int is_idstart(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int is_idchar(unsigned char c) { return isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

/* Checks "name" or "alias.name" in s[0..n). */
static int valid_ref(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        if (i >= n || !is_idstart((unsigned char)s[i]))
            return 0;
        while (i < n && is_idchar((unsigned char)s[i]))
            i++;
        if (i == n)
            return 1;
        if (s[i] != '.' || part == 1)
            return 0;
        i++;
    }
    return 0;
}

static void refs_free(char **refs, int n)
{
    if (!refs)
        return;
    for (int i = 0; i < n; i++)
        free(refs[i]);
    free(refs);
}

int ss_template_scan(const char *tmpl, size_t n, char ***refs, size_t *errpos, const char **msg)
{
    char **out = NULL;
    int count = 0, cap = 0;
    if (refs)
        *refs = NULL;
    for (size_t i = 0; i < n; i++) {
        if (tmpl[i] == '}') {
            *errpos = i;
            *msg = "unbalanced '}'";
            goto fail;
        }
        if (tmpl[i] != '{')
            continue;
        size_t j = i + 1;
        while (j < n && tmpl[j] != '}' && tmpl[j] != '{')
            j++;
        if (j >= n || tmpl[j] == '{') {
            *errpos = i;
            *msg = "unbalanced '{' (reference not closed by '}')";
            goto fail;
        }
        size_t a = i + 1, b = j; /* trim blanks inside the braces */
        while (a < b && isspace((unsigned char)tmpl[a]))
            a++;
        while (b > a && isspace((unsigned char)tmpl[b - 1]))
            b--;
        if (a == b) {
            *errpos = i;
            *msg = "empty reference {}";
            goto fail;
        }
        if (!valid_ref(tmpl + a, b - a)) {
            *errpos = a;
            *msg = "invalid reference: expected {column} or {alias.column}";
            goto fail;
        }
        if (refs) {
            if (count == cap) {
                int ncap = cap ? cap * 2 : 4;
                char **p = realloc(out, (size_t)ncap * sizeof *p);
                if (!p)
                    goto nomem;
                out = p;
                cap = ncap;
            }
            if (!(out[count] = ss_strndup(tmpl + a, b - a)))
                goto nomem;
        }
        count++;
        i = j;
    }
    if (refs)
        *refs = out;
    return count;
nomem:
    *errpos = 0;
    *msg = "out of memory";
fail:
    refs_free(out, count);
    return -1;
}

int ss_template_refs(const char *tmpl, char ***refs, char *err, size_t errsz)
{
    size_t pos = 0;
    const char *msg = NULL;
    if (refs)
        *refs = NULL;
    if (!tmpl)
        tmpl = "";
    int n = ss_template_scan(tmpl, strlen(tmpl), refs, &pos, &msg);
    if (n < 0)
        ss_seterr(err, errsz, SS_ERR_PARSE, "template offset %zu: %s", pos + 1, msg);
    return n;
}
