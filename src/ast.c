/*
 * ast.c — the AST of ss_ast.h after parsing: freeing every node kind, option
 * lookup, operator/semantic names and template reference scanning.
 * Construction lives in src/ast_build*.c (called from the grammar actions),
 * rendering back to SQL in src/ast_sql.c.
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

static void order_free(int n, ss_ast_order_t *o)
{
    for (int i = 0; i < n; i++)
        ss_ast_expr_free(o[i].expr);
    free(o);
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
    free(e->num_text);
    ss_ast_expr_free(e->left);
    ss_ast_expr_free(e->right);
    ss_ast_exprlist_free(e->args);
    ss_ast_options_free(e->opts);
    ss_ast_select_free(e->sub);
    order_free(e->norder, e->order);
    ss_ast_expr_free(e->filter);
    if (e->over) {
        ss_ast_exprlist_free(e->over->partition);
        order_free(e->over->norder, e->over->order);
        free(e->over);
    }
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
    for (int i = 0; i < f->nusing; i++)
        free(f->using_cols[i]);
    free(f->using_cols);
    free(f->using_spans);
    ss_ast_select_free(f->sub);
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
    order_free(s->norder, s->order);
    for (int i = 0; i < s->ncte; i++) {
        free(s->ctes[i].name);
        for (int k = 0; k < s->ctes[i].ncols; k++)
            free(s->ctes[i].cols[k]);
        free(s->ctes[i].cols);
        ss_ast_select_free(s->ctes[i].select);
    }
    free(s->ctes);
    ss_ast_select_free(s->left);
    ss_ast_select_free(s->right);
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
    case SS_OP_ILIKE: return "ILIKE";
    case SS_OP_DISTINCT: return "IS DISTINCT FROM";
    case SS_OP_NOT_DISTINCT: return "IS NOT DISTINCT FROM";
    case SS_OP_JSON_GET: return "->";
    case SS_OP_JSON_TEXT: return "->>";
    }
    return "?";
}

const char *ss_setop_name(ss_setop_t op)
{
    static const char *const t[] = {"", "UNION", "UNION ALL", "EXCEPT", "EXCEPT ALL", "INTERSECT", "INTERSECT ALL"};
    return (int)op >= 0 && (size_t)op < SS_ARRAY_LEN(t) ? t[op] : "?";
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
    case SS_SEM_EXTRACT: return "SEM_EXTRACT";
    case SS_SEM_CLASSIFY: return "SEM_CLASSIFY";
    case SS_SEM_DEDUP: return "SEM_DEDUP";
    case SS_SEM_GROUP: return "SEM_GROUP";
    case SS_SEM_CLUSTER: return "SEM_CLUSTER";
    }
    return "?";
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

/* ---- type names ---- */
static const struct type_name {
    const char *name;
    ss_coltype_t t;
} type_names[] = {
    {"TEXT", SS_COL_TEXT},       {"VARCHAR", SS_COL_TEXT},    {"STRING", SS_COL_TEXT},
    {"CHAR", SS_COL_TEXT},       {"CHARACTER", SS_COL_TEXT},  {"BPCHAR", SS_COL_TEXT},
    {"INT", SS_COL_INT},         {"INTEGER", SS_COL_INT},     {"BIGINT", SS_COL_INT},
    {"SMALLINT", SS_COL_INT},    {"INT2", SS_COL_INT},        {"INT4", SS_COL_INT},
    {"INT8", SS_COL_INT},        {"REAL", SS_COL_REAL},       {"DOUBLE", SS_COL_REAL},
    {"FLOAT", SS_COL_REAL},      {"FLOAT4", SS_COL_REAL},     {"FLOAT8", SS_COL_REAL},
    {"BOOLEAN", SS_COL_BOOL},    {"BOOL", SS_COL_BOOL},       {"NUMERIC", SS_COL_NUMERIC},
    {"DECIMAL", SS_COL_NUMERIC}, {"JSON", SS_COL_JSON},       {"JSONB", SS_COL_JSON},
};

int ss_type_from_name(const char *name)
{
    for (size_t i = 0; name && i < SS_ARRAY_LEN(type_names); i++)
        if (ss_strcaseeq(name, type_names[i].name))
            return (int)type_names[i].t;
    return -1;
}

int ss_type_to_sql(ss_coltype_t t, int typmod, ss_buf_t *out)
{
    switch (t) {
    case SS_COL_TEXT: return ss_buf_puts(out, "TEXT");
    case SS_COL_INT: return ss_buf_puts(out, "INT");
    case SS_COL_REAL: return ss_buf_puts(out, "REAL");
    case SS_COL_BOOL: return ss_buf_puts(out, "BOOLEAN");
    case SS_COL_JSON: return ss_buf_puts(out, "JSON");
    case SS_COL_NUMERIC:
        if (typmod < 0)
            return ss_buf_puts(out, "NUMERIC");
        return ss_buf_printf(out, "NUMERIC(%d,%d)", typmod >> 16, typmod & 0xffff);
    default: return ss_buf_puts(out, "TEXT");
    }
}
