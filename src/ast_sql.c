/*
 * ast_sql.c — renders the AST back to SQL: expressions with the minimum
 * parentheses (ss_ast_expr_to_sql, used by EXPLAIN), and whole queries and
 * statements in a canonical form (keywords upper-case, one space between
 * tokens, names quoted only when needed). Every rendering parses back to the
 * same tree; tests/check_parser.c checks that on the golden files.
 */
#include "ss_ast.h"
#include "ss_parse_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL rendering ---- */

/* Binding strength of an operator (higher binds tighter); mirrors parser.y. */
static int op_prec(const ss_ast_expr_t *e)
{
    if (e->kind == SS_AX_IS_NULL || e->kind == SS_AX_IN || e->kind == SS_AX_BETWEEN || e->kind == SS_AX_IN_SELECT)
        return 4;
    if (e->kind == SS_AX_CAST)
        return 11; /* rendered as CAST(...) */
    if (e->kind == SS_AX_UNARY)
        return e->op == SS_OP_NOT ? 3 : 9;
    if (e->kind != SS_AX_BINARY)
        return 10;
    switch (e->op) {
    case SS_OP_OR: return 1;
    case SS_OP_AND: return 2;
    case SS_OP_EQ: case SS_OP_NE: case SS_OP_LIKE: case SS_OP_ILIKE: case SS_OP_DISTINCT:
    case SS_OP_NOT_DISTINCT: return 4;
    case SS_OP_LT: case SS_OP_LE: case SS_OP_GT: case SS_OP_GE: return 5;
    case SS_OP_ADD: case SS_OP_SUB: return 6;
    case SS_OP_MUL: case SS_OP_DIV: case SS_OP_MOD: return 7;
    case SS_OP_CONCAT: return 8;
    case SS_OP_JSON_GET: case SS_OP_JSON_TEXT: return 8; /* rendered parenthesised against || */
    default: return 10;
    }
}

static int put_ident(ss_buf_t *b, const char *s)
{
    /* non-reserved keywords (KEY, VIEW, ...) read as names where a name is expected */
    int plain = s[0] && !isdigit((unsigned char)s[0]) && !ss_lex_is_reserved(s, strlen(s));
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
    case SS_TEXT: case SS_JSON: return put_string(b, v->u.str.s, v->u.str.n);
    case SS_NUM: return ss_buf_append(b, v->u.str.s, v->u.str.n);
    case SS_REAL: {
        if (isinf(v->u.r))
            return ss_buf_puts(b, v->u.r > 0 ? "1e999" : "-1e999");
        char tmp[64];
        for (int prec = 15; prec <= 17; prec++) { /* shortest form that reads back exactly */
            snprintf(tmp, sizeof tmp, "%.*g", prec, v->u.r);
            if (strtod(tmp, NULL) == v->u.r)
                break;
        }
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
        rc = i ? ss_buf_puts(b, ", ") : 0;
        rc = rc ? rc : put_ident(b, op->name);
        rc = rc ? rc : ss_buf_puts(b, " = ");
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

static int put_select(ss_buf_t *b, const ss_ast_select_t *s);

static int put_order(ss_buf_t *b, const char *kw, int n, const ss_ast_order_t *o)
{
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = ss_buf_puts(b, i ? ", " : kw);
        rc = rc ? rc : ss_ast_expr_to_sql(o[i].expr, b);
        if (!rc && o[i].desc)
            rc = ss_buf_puts(b, " DESC");
    }
    return rc;
}

static int put_exprs(ss_buf_t *b, const ss_ast_expr_list_t *l)
{
    int rc = 0;
    for (int i = 0; l && i < l->n && !rc; i++) {
        rc = i ? ss_buf_puts(b, ", ") : 0;
        rc = rc ? rc : ss_ast_expr_to_sql(l->items[i], b);
    }
    return rc;
}

static int put_func(const ss_ast_expr_t *e, ss_buf_t *b)
{
    int rc = put_ident(b, e->name ? e->name : "?");
    rc = rc ? rc : ss_buf_printf(b, "(%s", e->distinct ? "DISTINCT " : "");
    rc = rc ? rc : put_exprs(b, e->args);
    rc = rc ? rc : put_order(b, " ORDER BY ", e->norder, e->order);
    rc = rc ? rc : ss_buf_putc(b, ')');
    if (!rc && e->filter) {
        rc = ss_buf_puts(b, " FILTER (WHERE ");
        rc = rc ? rc : ss_ast_expr_to_sql(e->filter, b);
        rc = rc ? rc : ss_buf_putc(b, ')');
    }
    if (!rc && e->over) {
        rc = ss_buf_puts(b, " OVER (");
        if (!rc && e->over->partition) {
            rc = ss_buf_puts(b, "PARTITION BY ");
            rc = rc ? rc : put_exprs(b, e->over->partition);
        }
        rc = rc ? rc : put_order(b, e->over->partition ? " ORDER BY " : "ORDER BY ", e->over->norder, e->over->order);
        rc = rc ? rc : ss_buf_putc(b, ')');
    }
    return rc;
}

/* (SELECT ...) */
static int put_sub(ss_buf_t *b, const ss_ast_select_t *s)
{
    int rc = ss_buf_putc(b, '(');
    rc = rc ? rc : (s ? put_select(b, s) : ss_buf_puts(b, "?"));
    return rc ? rc : ss_buf_putc(b, ')');
}

static int put_sem(const ss_ast_expr_t *e, ss_buf_t *b)
{
    int rc = ss_buf_printf(b, "%s(", ss_sem_kind_name(e->sem));
    rc = rc ? rc : put_string(b, e->tmpl ? e->tmpl : "", e->tmpl ? strlen(e->tmpl) : 0);
    for (int i = 0; !rc && e->args && i < e->args->n; i++) { /* SEM_EXTRACT/CLASSIFY/GROUP arguments */
        rc = ss_buf_puts(b, ", ");
        rc = rc ? rc : ss_ast_expr_to_sql(e->args->items[i], b);
    }
    if (!rc && e->opts && e->opts->n) {
        rc = ss_buf_puts(b, ", ");
        rc = rc ? rc : put_options(b, e->opts);
    }
    return rc ? rc : ss_buf_putc(b, ')');
}

static int put_list(ss_buf_t *b, const ss_ast_expr_list_t *l, int from)
{
    int rc = 0;
    for (int i = from; l && i < l->n && !rc; i++) {
        rc = i > from ? ss_buf_puts(b, ", ") : 0;
        rc = rc ? rc : ss_ast_expr_to_sql(l->items[i], b);
    }
    return rc;
}

/* CASE, CAST, IN, BETWEEN and row lists. */
static int put_special(const ss_ast_expr_t *e, int p, ss_buf_t *out)
{
    int rc = 0;
    switch (e->kind) {
    case SS_AX_CASE:
        rc = ss_buf_puts(out, "CASE");
        if (!rc && e->left) {
            rc = ss_buf_putc(out, ' ');
            rc = rc ? rc : ss_ast_expr_to_sql(e->left, out);
        }
        for (int i = 0; e->args && i + 1 < e->args->n && !rc; i += 2) {
            rc = ss_buf_puts(out, " WHEN ");
            rc = rc ? rc : ss_ast_expr_to_sql(e->args->items[i], out);
            rc = rc ? rc : ss_buf_puts(out, " THEN ");
            rc = rc ? rc : ss_ast_expr_to_sql(e->args->items[i + 1], out);
        }
        if (!rc && e->right) {
            rc = ss_buf_puts(out, " ELSE ");
            rc = rc ? rc : ss_ast_expr_to_sql(e->right, out);
        }
        return rc ? rc : ss_buf_puts(out, " END");
    case SS_AX_CAST:
        rc = ss_buf_puts(out, "CAST(");
        rc = rc ? rc : ss_ast_expr_to_sql(e->left, out);
        rc = rc ? rc : ss_buf_puts(out, " AS ");
        rc = rc ? rc : ss_type_to_sql(e->cast_type, e->cast_typmod, out);
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_AX_IN:
        rc = put_child(out, e->left, e->left && op_prec(e->left) <= p);
        rc = rc ? rc : ss_buf_puts(out, e->op == SS_OP_NOT ? " NOT IN (" : " IN (");
        rc = rc ? rc : put_list(out, e->args, 0);
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_AX_BETWEEN:
        rc = put_child(out, e->left, e->left && op_prec(e->left) <= p);
        rc = rc ? rc : ss_buf_puts(out, e->op == SS_OP_NOT ? " NOT BETWEEN " : " BETWEEN ");
        rc = rc ? rc : put_child(out, e->args->items[0], op_prec(e->args->items[0]) <= p);
        rc = rc ? rc : ss_buf_puts(out, " AND ");
        return rc ? rc : put_child(out, e->args->items[1], op_prec(e->args->items[1]) <= p);
    default: /* SS_AX_ROW */
        rc = ss_buf_putc(out, '(');
        rc = rc ? rc : put_list(out, e->args, 0);
        return rc ? rc : ss_buf_putc(out, ')');
    }
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
        rc = rc ? rc : put_child(out, e->right, e->right && op_prec(e->right) <= p);
        if (!rc && e->args && e->args->n == 1) { /* LIKE/ILIKE ... ESCAPE c */
            rc = ss_buf_puts(out, " ESCAPE ");
            rc = rc ? rc : put_child(out, e->args->items[0], op_prec(e->args->items[0]) <= p);
        }
        return rc;
    case SS_AX_IS_NULL:
        rc = put_child(out, e->left, e->left && op_prec(e->left) <= p);
        return rc ? rc : ss_buf_puts(out, e->op == SS_OP_NOT ? " IS NOT NULL" : " IS NULL");
    case SS_AX_FUNC:
        return put_func(e, out);
    case SS_AX_SEM:
        return put_sem(e, out);
    case SS_AX_SUBQUERY:
        return put_sub(out, e->sub);
    case SS_AX_EXISTS:
        rc = ss_buf_puts(out, "EXISTS ");
        return rc ? rc : put_sub(out, e->sub);
    case SS_AX_IN_SELECT:
        rc = put_child(out, e->left, e->left && op_prec(e->left) <= p);
        rc = rc ? rc : ss_buf_puts(out, e->op == SS_OP_NOT ? " NOT IN " : " IN ");
        return rc ? rc : put_sub(out, e->sub);
    case SS_AX_CASE: case SS_AX_CAST: case SS_AX_IN: case SS_AX_BETWEEN: case SS_AX_ROW:
        return put_special(e, p, out);
    }
    return SS_ERR_INVALID;
}

/* ---- queries and statements ---- */
static int put_with(ss_buf_t *b, const char *kw, const ss_ast_options_t *o)
{
    if (!o || !o->n)
        return 0;
    int rc = ss_buf_printf(b, "%s(", kw);
    rc = rc ? rc : put_options(b, o);
    return rc ? rc : ss_buf_putc(b, ')');
}

static int put_from(ss_buf_t *b, const ss_ast_from_t *f)
{
    int rc = 0;
    switch (f->kind) {
    case SS_FROM_TABLE:
        rc = put_ident(b, f->name ? f->name : "?");
        if (!rc && f->alias) {
            rc = ss_buf_puts(b, " AS ");
            rc = rc ? rc : put_ident(b, f->alias);
        }
        return rc;
    case SS_FROM_SUBQUERY:
        rc = put_sub(b, f->sub);
        if (!rc && f->alias) {
            rc = ss_buf_puts(b, " AS ");
            rc = rc ? rc : put_ident(b, f->alias);
        }
        return rc;
    case SS_FROM_JOIN: {
        static const char *const kw[] = {" JOIN ", " LEFT JOIN ", " RIGHT JOIN ", " FULL JOIN ", " CROSS JOIN "};
        int jt = (int)f->join_type >= 0 && (size_t)f->join_type < SS_ARRAY_LEN(kw) ? (int)f->join_type : 0;
        rc = put_from(b, f->left);
        rc = rc ? rc : ss_buf_puts(b, f->comma ? ", " : f->natural ? " NATURAL" : "");
        rc = rc ? rc : f->comma ? 0 : ss_buf_puts(b, kw[jt]);
        rc = rc ? rc : put_from(b, f->right);
        if (!rc && f->nusing) {
            rc = ss_buf_puts(b, " USING (");
            for (int i = 0; i < f->nusing && !rc; i++) {
                rc = i ? ss_buf_puts(b, ", ") : 0;
                rc = rc ? rc : put_ident(b, f->using_cols[i]);
            }
            return rc ? rc : ss_buf_putc(b, ')');
        }
        if (rc || !f->on)
            return rc;
        rc = ss_buf_puts(b, " ON ");
        return rc ? rc : ss_ast_expr_to_sql(f->on, b);
    }
    case SS_FROM_SEM_JOIN:
    case SS_FROM_SEM_SIM_JOIN:
        rc = put_from(b, f->left);
        rc = rc ? rc : ss_buf_puts(b, f->kind == SS_FROM_SEM_JOIN ? " SEM_JOIN " : " SEM_SIM_JOIN ");
        rc = rc ? rc : put_from(b, f->right);
        rc = rc ? rc : ss_buf_puts(b, " ON ");
        rc = rc ? rc : put_string(b, f->tmpl ? f->tmpl : "", f->tmpl ? strlen(f->tmpl) : 0);
        if (!rc && f->kind == SS_FROM_SEM_SIM_JOIN)
            rc = ss_buf_printf(b, " LIMIT %lld", (long long)f->k);
        return rc ? rc : put_with(b, " WITH ", f->opts);
    case SS_FROM_SEM_SEARCH:
        rc = ss_buf_puts(b, "SEM_SEARCH(");
        rc = rc ? rc : put_ident(b, f->name ? f->name : "?");
        rc = rc ? rc : ss_buf_puts(b, ", ");
        rc = rc ? rc : put_string(b, f->tmpl ? f->tmpl : "", f->tmpl ? strlen(f->tmpl) : 0);
        rc = rc ? rc : ss_buf_printf(b, ", %lld", (long long)f->k);
        if (!rc && f->opts && f->opts->n) {
            rc = ss_buf_puts(b, ", ");
            rc = rc ? rc : put_options(b, f->opts);
        }
        rc = rc ? rc : ss_buf_putc(b, ')');
        if (!rc && f->alias) {
            rc = ss_buf_puts(b, " AS ");
            rc = rc ? rc : put_ident(b, f->alias);
        }
        return rc;
    }
    return SS_ERR_INVALID;
}

static int put_core(ss_buf_t *b, const ss_ast_select_t *s)
{
    if (s->setop != SS_SETOP_NONE) {
        int rc = s->left ? put_core(b, s->left) : SS_ERR_INVALID;
        rc = rc ? rc : ss_buf_printf(b, " %s ", ss_setop_name(s->setop));
        return rc ? rc : s->right ? put_core(b, s->right) : SS_ERR_INVALID;
    }
    int rc = ss_buf_puts(b, s->distinct ? "SELECT DISTINCT " : "SELECT ");
    for (int i = 0; i < s->nitems && !rc; i++) {
        rc = i ? ss_buf_puts(b, ", ") : 0;
        rc = rc ? rc : ss_ast_expr_to_sql(s->items[i].expr, b);
        if (!rc && s->items[i].alias) {
            rc = ss_buf_puts(b, " AS ");
            rc = rc ? rc : put_ident(b, s->items[i].alias);
        }
    }
    if (!rc && s->from) {
        rc = ss_buf_puts(b, " FROM ");
        rc = rc ? rc : put_from(b, s->from);
    }
    if (!rc && s->where) {
        rc = ss_buf_puts(b, " WHERE ");
        rc = rc ? rc : ss_ast_expr_to_sql(s->where, b);
    }
    if (!rc && s->group_by) {
        rc = ss_buf_puts(b, " GROUP BY ");
        rc = rc ? rc : put_exprs(b, s->group_by);
    }
    if (!rc && s->having) {
        rc = ss_buf_puts(b, " HAVING ");
        rc = rc ? rc : ss_ast_expr_to_sql(s->having, b);
    }
    return rc;
}

/* [WITH ...] core-or-compound [ORDER BY ...] [LIMIT k] [OFFSET m] */
static int put_select(ss_buf_t *b, const ss_ast_select_t *s)
{
    int rc = 0;
    for (int i = 0; i < s->ncte && !rc; i++) {
        const ss_ast_cte_t *c = &s->ctes[i];
        rc = ss_buf_puts(b, i ? ", " : "WITH ");
        rc = rc ? rc : put_ident(b, c->name ? c->name : "?");
        for (int k = 0; k < c->ncols && !rc; k++) {
            rc = ss_buf_puts(b, k ? ", " : "(");
            rc = rc ? rc : put_ident(b, c->cols[k]);
        }
        rc = rc ? rc : c->ncols ? ss_buf_putc(b, ')') : 0;
        rc = rc ? rc : ss_buf_puts(b, " AS ");
        rc = rc ? rc : put_sub(b, c->select);
    }
    rc = rc ? rc : s->ncte ? ss_buf_putc(b, ' ') : 0;
    rc = rc ? rc : put_core(b, s);
    rc = rc ? rc : put_order(b, " ORDER BY ", s->norder, s->order);
    if (!rc && s->limit >= 0)
        rc = ss_buf_printf(b, " LIMIT %lld", (long long)s->limit);
    if (!rc && s->offset > 0)
        rc = ss_buf_printf(b, " OFFSET %lld", (long long)s->offset);
    return rc;
}

int ss_ast_query_to_sql(const ss_ast_query_t *q, ss_buf_t *out)
{
    if (!q)
        return SS_ERR_INVALID;
    if (q->kind == SS_Q_SELECT)
        return q->select ? put_select(out, q->select) : SS_ERR_INVALID;
    const ss_ast_generate_t *g = q->generate;
    if (!g)
        return SS_ERR_INVALID;
    int rc = ss_buf_puts(out, "LLM_GENERATE(PROMPT = ");
    rc = rc ? rc : put_string(out, g->prompt ? g->prompt : "", g->prompt ? strlen(g->prompt) : 0);
    rc = rc ? rc : ss_buf_puts(out, ", CONTEXT = STREAM(");
    rc = rc ? rc : put_ident(out, g->context_stream ? g->context_stream : "?");
    rc = rc ? rc : ss_buf_putc(out, ')');
    if (!rc && g->data_stream) {
        rc = ss_buf_puts(out, ", DATA_SOURCE = STREAM(");
        rc = rc ? rc : put_ident(out, g->data_stream);
        rc = rc ? rc : ss_buf_putc(out, ')');
    }
    if (!rc && g->opts && g->opts->n) {
        rc = ss_buf_puts(out, ", ");
        rc = rc ? rc : put_options(out, g->opts);
    }
    return rc ? rc : ss_buf_putc(out, ')');
}

static const char *object_name(ss_ast_object_t o, int plural)
{
    switch (o) {
    case SS_OBJ_STREAM: return plural ? "STREAMS" : "STREAM";
    case SS_OBJ_VIEW: return plural ? "VIEWS" : "VIEW";
    case SS_OBJ_MODEL: return plural ? "MODELS" : "MODEL";
    }
    return "?";
}


/* "KEYWORD [IF NOT EXISTS ]name" */
static int put_head(ss_buf_t *b, const char *kw, int cond, const char *cond_text, const char *name)
{
    int rc = ss_buf_puts(b, kw);
    rc = rc ? rc : ss_buf_puts(b, cond ? cond_text : "");
    return rc ? rc : put_ident(b, name ? name : "?");
}

static int put_create_stream(ss_buf_t *b, const ss_ast_stmt_t *s)
{
    int rc = put_head(b, "CREATE STREAM ", s->if_not_exists, "IF NOT EXISTS ", s->name);
    rc = rc ? rc : ss_buf_puts(b, " (");
    for (int i = 0; i < s->ncols && !rc; i++) {
        rc = i ? ss_buf_puts(b, ", ") : 0;
        rc = rc ? rc : put_ident(b, s->cols[i].name);
        rc = rc ? rc : ss_buf_putc(b, ' ');
        rc = rc ? rc : ss_type_to_sql(s->cols[i].type, s->cols[i].typmod, b);
        rc = rc ? rc : ss_buf_puts(b, s->cols[i].is_key ? " KEY" : "");
    }
    rc = rc ? rc : ss_buf_putc(b, ')');
    return rc ? rc : put_with(b, " WITH ", s->opts);
}

static int put_insert(ss_buf_t *b, const ss_ast_stmt_t *s)
{
    int rc = put_head(b, "INSERT INTO ", 0, "", s->name);
    for (int i = 0; i < s->ninsert_cols && !rc; i++) {
        rc = ss_buf_puts(b, i ? ", " : " (");
        rc = rc ? rc : put_ident(b, s->insert_cols[i]);
    }
    if (!rc && s->ninsert_cols)
        rc = ss_buf_putc(b, ')');
    rc = rc ? rc : ss_buf_puts(b, " VALUES ");
    for (int i = 0; i < s->nrows && !rc; i++) {
        rc = ss_buf_puts(b, i ? ", (" : "(");
        rc = rc ? rc : put_exprs(b, s->rows[i]);
        rc = rc ? rc : ss_buf_putc(b, ')');
    }
    return rc;
}

int ss_ast_stmt_to_sql(const ss_ast_stmt_t *s, ss_buf_t *out)
{
    int rc = 0;
    if (!s)
        return SS_ERR_INVALID;
    switch (s->kind) {
    case SS_STMT_CREATE_STREAM:
        return put_create_stream(out, s);
    case SS_STMT_CREATE_VIEW:
        rc = put_head(out, "CREATE CONTINUOUS VIEW ", s->if_not_exists, "IF NOT EXISTS ", s->name);
        rc = rc ? rc : put_with(out, " WITH ", s->opts);
        rc = rc ? rc : ss_buf_puts(out, " AS ");
        return rc ? rc : ss_ast_query_to_sql(s->query, out);
    case SS_STMT_CREATE_MODEL:
        rc = put_head(out, "CREATE MODEL ", s->if_not_exists, "IF NOT EXISTS ", s->name);
        return rc ? rc : put_with(out, " WITH ", s->opts);
    case SS_STMT_SET:
        rc = put_head(out, "SET ", 0, "", s->name);
        rc = rc ? rc : ss_buf_puts(out, " = ");
        return rc ? rc : put_value(out, &s->set_value);
    case SS_STMT_DROP:
        rc = ss_buf_printf(out, "DROP %s ", object_name(s->object, 0));
        return rc ? rc : put_head(out, "", s->if_exists, "IF EXISTS ", s->name);
    case SS_STMT_SHOW:
        return ss_buf_printf(out, "SHOW %s", object_name(s->object, 1));
    case SS_STMT_SELECT:
        return ss_ast_query_to_sql(s->query, out);
    case SS_STMT_SUBSCRIBE:
        rc = put_head(out, "SUBSCRIBE ", 0, "", s->name);
        return rc ? rc : put_with(out, " WITH ", s->opts);
    case SS_STMT_EXPLAIN:
        if (s->query) {
            rc = ss_buf_puts(out, "EXPLAIN ");
            return rc ? rc : ss_ast_query_to_sql(s->query, out);
        }
        return put_head(out, "EXPLAIN VIEW ", 0, "", s->name);
    case SS_STMT_INSERT:
        return put_insert(out, s);
    case SS_STMT_DELETE:
        rc = put_head(out, "DELETE FROM ", 0, "", s->name);
        if (!rc && s->where) {
            rc = ss_buf_puts(out, " WHERE ");
            rc = rc ? rc : ss_ast_expr_to_sql(s->where, out);
        }
        return rc;
    }
    return SS_ERR_INVALID;
}
