/*
 * plan_expr.c — the planner's name resolution and expression compiler: resolves
 * [alias.]column references against the FROM scope (unknown/ambiguous column
 * errors with line:column and "did you mean" suggestions), compiles AST
 * expressions into ss_expr_t with inferred types, resolves prompt templates'
 * {col}/{alias.col} references to (side, column), and renders compiled
 * expressions for EXPLAIN. Also small AST/option helpers shared with the catalog.
 */
#include "plan_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- options */

const ss_ast_option_t *ss__opt_find(const ss_ast_options_t *o, const char *name)
{
    if (!o)
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (o->items[i].name && ss_strcaseeq(o->items[i].name, name))
            return &o->items[i];
    return NULL;
}

char *ss__opt_text(const ss_ast_option_t *o)
{
    if (o->stream)
        return ss_strdup(o->stream);
    if (o->value.t == SS_REAL)
        return ss_sprintf("%g", o->value.u.r);
    ss_buf_t b = SS_BUF_INIT;
    if (o->value.t == SS_NULL)
        return ss_strdup("");
    if (ss_val_to_text(&o->value, &b)) {
        ss_buf_free(&b);
        return NULL;
    }
    return ss_buf_take(&b);
}

int ss__opts_add(int *n, ss_plan_opt_t **opts, const char *name, const char *value)
{
    ss_plan_opt_t *p = realloc(*opts, (size_t)(*n + 1) * sizeof *p);
    if (!p)
        return SS_ERR_NOMEM;
    *opts = p;
    char *nm = ss_strdup(name), *v = ss_strdup(value ? value : "");
    if (!nm || !v) {
        free(nm);
        free(v);
        return SS_ERR_NOMEM;
    }
    for (char *c = nm; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    p[*n].name = nm;
    p[*n].value = v;
    (*n)++;
    return SS_OK;
}

int ss__opts_copy(const ss_ast_options_t *o, int *n, ss_plan_opt_t **opts)
{
    for (int i = 0; o && i < o->n; i++) {
        char *v = ss__opt_text(&o->items[i]);
        int rc = v ? ss__opts_add(n, opts, o->items[i].name, v) : SS_ERR_NOMEM;
        free(v);
        if (rc)
            return rc;
    }
    return SS_OK;
}

void ss__opts_free(int n, ss_plan_opt_t *opts)
{
    for (int i = 0; i < n; i++) {
        free(opts[i].name);
        free(opts[i].value);
    }
    free(opts);
}

/* ---------------------------------------------------------------- suggestions */

/* ---------------------------------------------------------------- AST walks */

static void add_ref(const char **out, int *n, int max, const char *s)
{
    if (!s)
        return;
    for (int i = 0; i < *n; i++)
        if (ss_strcaseeq(out[i], s))
            return;
    if (*n < max)
        out[(*n)++] = s;
}

/* Every stream/view name (refs) or model='..' option (models) a query mentions, subqueries,
 * WITH queries and set operations included (names of WITH queries too: a conservative answer). */
typedef struct refwalk {
    int models;
    const char **out;
    int n, max;
} refwalk_t;

static void walk_select(refwalk_t *w, const ss_ast_select_t *s);

static void walk_opts(refwalk_t *w, const ss_ast_options_t *o)
{
    const ss_ast_option_t *m = w->models ? ss__opt_find(o, "model") : NULL;
    if (m && m->value.t == SS_TEXT)
        add_ref(w->out, &w->n, w->max, m->value.u.str.s);
}

static void walk_expr(refwalk_t *w, const ss_ast_expr_t *e)
{
    if (!e)
        return;
    walk_opts(w, e->opts);
    walk_expr(w, e->left);
    walk_expr(w, e->right);
    walk_expr(w, e->filter);
    for (int i = 0; e->args && i < e->args->n; i++)
        walk_expr(w, e->args->items[i]);
    for (int i = 0; i < e->norder; i++)
        walk_expr(w, e->order[i].expr);
    if (e->sub)
        walk_select(w, e->sub);
}

static void walk_from(refwalk_t *w, const ss_ast_from_t *f)
{
    if (!f)
        return;
    if (f->kind == SS_FROM_TABLE && !w->models)
        add_ref(w->out, &w->n, w->max, f->name);
    walk_opts(w, f->opts);
    walk_expr(w, f->on);
    walk_from(w, f->left);
    walk_from(w, f->right);
    if (f->sub)
        walk_select(w, f->sub);
}

static void walk_select(refwalk_t *w, const ss_ast_select_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->ncte; i++)
        walk_select(w, s->ctes[i].select);
    walk_select(w, s->left);
    walk_select(w, s->right);
    for (int i = 0; i < s->nitems; i++)
        walk_expr(w, s->items[i].expr);
    walk_from(w, s->from);
    walk_expr(w, s->where);
    for (int i = 0; s->group_by && i < s->group_by->n; i++)
        walk_expr(w, s->group_by->items[i]);
    walk_expr(w, s->having);
    for (int i = 0; i < s->norder; i++)
        walk_expr(w, s->order[i].expr);
}

int ss__query_refs(const ss_ast_query_t *q, const char **out, int max)
{
    refwalk_t w = {.models = 0, .out = out, .max = max};
    if (q->kind == SS_Q_GENERATE && q->generate) {
        add_ref(out, &w.n, max, q->generate->context_stream);
        add_ref(out, &w.n, max, q->generate->data_stream);
    } else {
        walk_select(&w, q->select);
    }
    return w.n;
}

int ss__query_models(const ss_ast_query_t *q, const char **out, int max)
{
    refwalk_t w = {.models = 1, .out = out, .max = max};
    if (q->kind == SS_Q_GENERATE && q->generate)
        walk_opts(&w, q->generate->opts);
    else
        walk_select(&w, q->select);
    return w.n;
}

static const char *sem_name(ss_sem_kind_t k)
{
    return k == SS_SEM_NONE ? "SEM_NONE" : ss_sem_kind_name(k);
}

static const char *op_text(ss_ast_op_t op)
{
    static const char *t[] = {"", "OR", "AND", "NOT", "=", "<>", "<", "<=", ">", ">=",
                              "+", "-", "*", "/", "%", "||", "LIKE", "-", "ILIKE",
                              "IS DISTINCT FROM", "IS NOT DISTINCT FROM", "->", "->>"};
    return (int)op >= 0 && (size_t)op < SS_ARRAY_LEN(t) ? t[op] : "?";
}

/* SQL-like canonical text: function names lower-cased, binary operators parenthesised when nested. */
static int ast_key_into(const ss_ast_expr_t *a, ss_buf_t *b, int top)
{
    int rc = 0;
    if (!a)
        return ss_buf_puts(b, "_");
    switch (a->kind) {
    case SS_AX_COLUMN:
        rc |= ss_buf_printf(b, "%s%s%s", a->table ? a->table : "", a->table ? "." : "", a->name);
        break;
    case SS_AX_LITERAL:
        if (a->lit.t == SS_TEXT) {
            rc |= ss_buf_putc(b, '\'');
            for (size_t i = 0; i < a->lit.u.str.n; i++) {
                if (a->lit.u.str.s[i] == '\'')
                    rc |= ss_buf_putc(b, '\'');
                rc |= ss_buf_putc(b, a->lit.u.str.s[i]);
            }
            rc |= ss_buf_putc(b, '\'');
        } else
            rc |= ss_val_to_text(&a->lit, b);
        break;
    case SS_AX_STAR:
        rc |= ss_buf_puts(b, "*");
        break;
    case SS_AX_SEM:
        rc |= ss_buf_printf(b, "%s(", sem_name(a->sem));
        rc |= ss_buf_put_json_str(b, a->tmpl ? a->tmpl : "", a->tmpl ? strlen(a->tmpl) : 0);
        for (int i = 0; a->args && i < a->args->n; i++) { /* SEM_EXTRACT/CLASSIFY/GROUP arguments */
            rc |= ss_buf_puts(b, ", ");
            rc |= ast_key_into(a->args->items[i], b, 1);
        }
        for (int i = 0; a->opts && i < a->opts->n; i++) {
            rc |= ss_buf_printf(b, ", %s=", a->opts->items[i].name);
            rc |= ss_val_to_text(&a->opts->items[i].value, b);
        }
        rc |= ss_buf_puts(b, ")");
        break;
    case SS_AX_FUNC:
        for (const char *p = a->name; *p; p++)
            rc |= ss_buf_putc(b, (char)tolower((unsigned char)*p));
        rc |= ss_buf_printf(b, "(%s", a->distinct ? "DISTINCT " : "");
        for (int i = 0; a->args && i < a->args->n; i++) {
            if (i)
                rc |= ss_buf_puts(b, ", ");
            rc |= ast_key_into(a->args->items[i], b, 1);
        }
        if (!a->args || a->args->n == 0)
            rc |= ss_buf_puts(b, ss_strcaseeq(a->name, "COUNT") ? "*" : "");
        for (int i = 0; i < a->norder; i++) { /* string_agg(x ORDER BY y) and FILTER make other calls */
            rc |= ss_buf_puts(b, i ? ", " : " ORDER BY ");
            rc |= ast_key_into(a->order[i].expr, b, 1);
            rc |= ss_buf_puts(b, a->order[i].desc ? " DESC" : "");
        }
        rc |= ss_buf_puts(b, ")");
        if (a->filter) {
            rc |= ss_buf_puts(b, " FILTER (WHERE ");
            rc |= ast_key_into(a->filter, b, 1);
            rc |= ss_buf_puts(b, ")");
        }
        break;
    case SS_AX_UNARY:
        rc |= ss_buf_puts(b, a->op == SS_OP_NOT ? "NOT " : "-");
        rc |= ast_key_into(a->left, b, 0);
        break;
    case SS_AX_IS_NULL:
        rc |= ast_key_into(a->left, b, 0);
        rc |= ss_buf_puts(b, a->op == SS_OP_NOT ? " IS NOT NULL" : " IS NULL");
        break;
    case SS_AX_CASE: case SS_AX_CAST: case SS_AX_IN: case SS_AX_BETWEEN: case SS_AX_ROW:
        if (!top)
            rc |= ss_buf_putc(b, '(');
        rc |= ss_ast_expr_to_sql(a, b);
        if (!top)
            rc |= ss_buf_putc(b, ')');
        break;
    default:
        if (a->kind == SS_AX_BINARY && a->args && a->args->n == 1) { /* LIKE ... ESCAPE */
            if (!top)
                rc |= ss_buf_putc(b, '(');
            rc |= ss_ast_expr_to_sql(a, b);
            if (!top)
                rc |= ss_buf_putc(b, ')');
            break;
        }
        if (!top)
            rc |= ss_buf_putc(b, '(');
        rc |= ast_key_into(a->left, b, 0);
        rc |= ss_buf_printf(b, " %s ", op_text(a->op));
        rc |= ast_key_into(a->right, b, 0);
        if (!top)
            rc |= ss_buf_putc(b, ')');
    }
    return rc;
}

char *ss__ast_key(const ss_ast_expr_t *a)
{
    ss_buf_t b = SS_BUF_INIT;
    if (ast_key_into(a, &b, 1)) {
        ss_buf_free(&b);
        return NULL;
    }
    return ss_buf_take(&b);
}

int ss__is_agg_name(const char *fn) { return ss__agg_fn(fn) >= 0; }

/* ---------------------------------------------------------------- column resolution */

static const ss_schema_t *rel_schema(const ss__scope_t *s, const ss__rel_t *r)
{
    return s->side_schema[r->side] ? s->side_schema[r->side] : s->schema;
}

static int rel_find(const ss__scope_t *s, const ss__rel_t *r, const char *name)
{
    const ss_schema_t *sc = rel_schema(s, r);
    for (int i = r->off; i < r->off + r->n; i++)
        if (ss_strcaseeq(sc->names[i], name))
            return i;
    return -1;
}

/* Error for an unknown column, with the closest name as a suggestion. */
static int unknown_col(const ss__cctx_t *cc, const ss__rel_t *only, const char *name, ss_span_t sp)
{
    const ss__scope_t *s = cc->scope;
    const char *cands[256] = {0};
    char quals[256][96];
    int n = 0;
    for (int r = 0; r < s->nrels; r++) {
        const ss__rel_t *rel = &s->rels[r];
        if (only && rel != only)
            continue;
        const ss_schema_t *sc = rel_schema(s, rel);
        for (int i = rel->off; i < rel->off + rel->n && n < 256; i++) {
            if (only || s->nrels == 1)
                snprintf(quals[n], sizeof quals[n], "%s", sc->names[i]);
            else
                snprintf(quals[n], sizeof quals[n], "%s.%s", rel->name, sc->names[i]);
            cands[n] = sc->names[i];
            n++;
        }
    }
    const char *best = ss_suggest(name, cands, n);
    const char *bestq = NULL;
    for (int i = 0; best && i < n; i++)
        if (cands[i] == best)
            bestq = quals[i];
    char where[160] = "";
    const ss__rel_t *r1 = only ? only : s->nrels == 1 ? &s->rels[0] : NULL;
    if (r1 && ss_strcaseeq(r1->name, r1->table))
        snprintf(where, sizeof where, " in %s %s", r1->what, r1->table);
    else if (r1)
        snprintf(where, sizeof where, " in %s (%s %s)", r1->name, r1->what, r1->table);
    if (bestq)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: unknown column \"%s\"%s (did you mean \"%s\"?)", sp.line, sp.col,
                         name, where, bestq);
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: unknown column \"%s\"%s", sp.line,
                     sp.col, name, where);
}

static int resolve_here(const ss__cctx_t *cc, const char *table, const char *name, ss_span_t sp,
                        int *side, int *col);

int ss__resolve_col(const ss__cctx_t *cc, const char *table, const char *name, ss_span_t sp,
                    int *side, int *col)
{
    int rc = resolve_here(cc, table, name, sp, side, col);
    if (rc != SS_ERR_SEMANTIC || !cc->scope->outer || (cc->err && strstr(cc->err, " is ambiguous")))
        return rc;
    /* a correlated subquery: a name not found inside belongs to the enclosing query */
    char scratch[SS_ERRSZ];
    ss__cctx_t oc = *cc;
    oc.scope = cc->scope->outer;
    oc.err = scratch;
    oc.errsz = sizeof scratch;
    return ss__resolve_col(&oc, table, name, sp, side, col) ? rc : SS_OK;
}

static int resolve_here(const ss__cctx_t *cc, const char *table, const char *name, ss_span_t sp,
                        int *side, int *col)
{
    const ss__scope_t *s = cc->scope;
    if (table) {
        const ss__rel_t *rel = NULL;
        for (int r = 0; r < s->nrels; r++)
            if (ss_strcaseeq(s->rels[r].name, table))
                rel = &s->rels[r];
        if (!rel) {
            const char *names[SS__MAX_RELS];
            for (int r = 0; r < s->nrels; r++)
                names[r] = s->rels[r].name;
            const char *best = ss_suggest(table, names, s->nrels);
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: unknown table or alias \"%s\"%s%s%s", sp.line, sp.col, table,
                             best ? " (did you mean \"" : "", best ? best : "", best ? "\"?)" : "");
        }
        int i = rel_find(s, rel, name);
        if (i < 0)
            return unknown_col(cc, rel, name, sp);
        *side = rel->side;
        *col = i;
        return SS_OK;
    }
    for (int m = s->nmerged - 1; m >= 0; m--) /* a column joined by USING / NATURAL: one column */
        if (ss_strcaseeq(s->merged[m].name, name)) {
            *side = 0;
            *col = s->merged[m].col;
            return SS_OK;
        }
    int found = -1, fside = 0;
    const ss__rel_t *frel = NULL;
    for (int r = 0; r < s->nrels; r++) {
        int i = rel_find(s, &s->rels[r], name);
        if (i < 0)
            continue;
        if (frel)
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: column \"%s\" is ambiguous: it is in %s and %s (write %s.%s or %s.%s)",
                             sp.line, sp.col, name, frel->name, s->rels[r].name, frel->name, name,
                             s->rels[r].name, name);
        frel = &s->rels[r];
        found = i;
        fside = s->rels[r].side;
    }
    if (!frel)
        return unknown_col(cc, NULL, name, sp);
    *side = fside;
    *col = found;
    return SS_OK;
}

/* ---------------------------------------------------------------- expressions */

static int is_numeric(ss_coltype_t t) { return ss__is_num_type(t); }

/* A condition (WHERE, HAVING, ON, AND, OR, NOT) must be BOOLEAN, as in PostgreSQL; TRUE/FALSE,
 * comparisons and BOOLEAN columns are, and so is NULL. */
int ss__check_bool(const ss__cctx_t *cc, const ss_expr_t *e, const char *what, ss_span_t sp)
{
    if (e->type == SS_COL_BOOL || e->type == SS_COL_ANY)
        return SS_OK;
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: argument of %s must be type boolean, not %s",
                     sp.line, sp.col, what, e->type == SS_COL_REAL ? "double precision"
                                                : e->type == SS_COL_INT ? "integer"
                                                : e->type == SS_COL_NUMERIC ? "numeric"
                                                : e->type == SS_COL_JSON ? "json" : "text");
}

static int compile_column(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    int side = 0, col = -1;
    int rc = ss__resolve_col(cc, a->table, a->name, a->span, &side, &col);
    if (rc)
        return rc;
    const ss_schema_t *in = cc->scope->schema;
    if (cc->grp) {
        for (int g = 0; g < cc->grp->ngroup; g++)
            if (cc->grp->group_in[g] == col) {
                e->col = g;
                e->type = in->types[col];
                return SS_OK;
            }
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: column \"%s\" must appear in GROUP BY or be used inside an aggregate",
                         a->span.line, a->span.col, a->name);
    }
    e->col = col;
    e->type = in->types[col];
    return SS_OK;
}

static int compile_agg_ref(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    const char *what = a->kind == SS_AX_SEM ? sem_name(a->sem) : a->name;
    if (!cc->grp)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: aggregate %s is not allowed here (only in SELECT, HAVING and ORDER BY)",
                         a->span.line, a->span.col, what);
    char *key = ss__ast_key(a);
    if (!key)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cc->grp->naggs; i++)
        if (!strcmp(cc->grp->aggs[i].key, key)) {
            free(key);
            e->kind = SS_EX_COL;
            e->col = cc->grp->aggs[i].out_col;
            e->type = cc->grp->aggs[i].type;
            return SS_OK;
        }
    free(key);
    return ss_seterr(cc->err, cc->errsz, SS_ERR_INTERNAL, "%d:%d: aggregate %s was not collected",
                     a->span.line, a->span.col, what);
}

/* Arithmetic: the common numeric type (string literals adapt; NUMERIC mixes through casts). */
static int arith_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    for (int i = 0; i < 2; i++) {
        ss_expr_t *o = e->args[1 - i];
        if (ss__is_unknown_lit(e->args[i]) && !ss__is_unknown_lit(o) && is_numeric(o->type)) {
            int rc = ss__coerce(cc, i ? a->right : a->left, &e->args[i],
                                o->type == SS_COL_ANY || o->type == SS_COL_BOOL ? SS_COL_INT : o->type, op_text(a->op));
            if (rc)
                return rc;
        }
    }
    ss_coltype_t l = e->args[0]->type, r = e->args[1]->type;
    if (!is_numeric(l) || !is_numeric(r))
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: operator %s needs numbers, got %s and %s", a->span.line,
                         a->span.col, op_text(a->op), ss_coltype_name(l), ss_coltype_name(r));
    if (l == SS_COL_NUMERIC || r == SS_COL_NUMERIC) {
        ss_coltype_t t = SS_COL_NUMERIC;
        /* a REAL column wins over NUMERIC (as in PostgreSQL); a REAL literal becomes exact NUMERIC */
        if ((l == SS_COL_REAL && e->args[0]->kind != SS_EX_LIT) || (r == SS_COL_REAL && e->args[1]->kind != SS_EX_LIT))
            t = SS_COL_REAL;
        int rc = ss__coerce(cc, a->left, &e->args[0], t, op_text(a->op));
        if (!rc)
            rc = ss__coerce(cc, a->right, &e->args[1], t, op_text(a->op));
        e->type = t;
        return rc;
    }
    e->type = l == SS_COL_REAL || r == SS_COL_REAL ? SS_COL_REAL
              : l == SS_COL_ANY || r == SS_COL_ANY ? SS_COL_ANY
                                                   : SS_COL_INT;
    return SS_OK;
}

static int binary_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    switch (a->op) {
    case SS_OP_ADD: case SS_OP_SUB: case SS_OP_MUL: case SS_OP_DIV: case SS_OP_MOD:
        return arith_type(cc, a, e);
    case SS_OP_LIKE: case SS_OP_ILIKE: /* text LIKE text */
        for (int i = 0; i < 2; i++) {
            ss_coltype_t t = e->args[i]->type;
            if (t != SS_COL_TEXT && t != SS_COL_ANY) {
                ss_span_t sp = a->op_span.len ? a->op_span : a->span;
                return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: operator does not exist: %s %s %s (LIKE matches text)", sp.line, sp.col,
                                 ss_coltype_name(e->args[0]->type), op_text(a->op), ss_coltype_name(e->args[1]->type));
            }
        }
        e->type = SS_COL_BOOL;
        return SS_OK;
    case SS_OP_AND: case SS_OP_OR: {
        int rc = ss__check_bool(cc, e->args[0], op_text(a->op), a->left->span);
        if (!rc)
            rc = ss__check_bool(cc, e->args[1], op_text(a->op), a->right->span);
        e->type = SS_COL_BOOL;
        return rc;
    }
    case SS_OP_CONCAT:
        e->type = SS_COL_TEXT;
        return SS_OK;
    case SS_OP_JSON_GET: case SS_OP_JSON_TEXT: {
        int rc = ss__coerce(cc, a->left, &e->args[0], SS_COL_JSON, op_text(a->op));
        ss_coltype_t k = e->args[1]->type;
        if (!rc && k != SS_COL_INT && k != SS_COL_TEXT && k != SS_COL_ANY)
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: %s takes a key (text) or an array index (integer), not %s", a->right->span.line,
                           a->right->span.col, op_text(a->op), ss_coltype_name(k));
        e->type = a->op == SS_OP_JSON_GET ? SS_COL_JSON : SS_COL_TEXT;
        return rc;
    }
    default:
        e->type = SS_COL_BOOL;
        return SS_OK;
    }
}

static int is_comparison(ss_ast_op_t op)
{
    return op == SS_OP_EQ || op == SS_OP_NE || op == SS_OP_LT || op == SS_OP_LE || op == SS_OP_GT ||
           op == SS_OP_GE || op == SS_OP_DISTINCT || op == SS_OP_NOT_DISTINCT;
}

/* Grouped rows: an expression written as in GROUP BY is that group column (-1 if none; -2 OOM). */
static int group_expr_col(const ss__cctx_t *cc, const ss_ast_expr_t *a)
{
    const ss__grouping_t *g = cc->grp;
    if (!g || !g->group_key || a->kind == SS_AX_COLUMN || a->kind == SS_AX_LITERAL)
        return -1;
    char *key = ss__ast_key(a);
    if (!key)
        return -2;
    int col = -1;
    for (int i = 0; i < g->ngroup && col < 0; i++)
        if (g->group_key[i] && !strcmp(g->group_key[i], key))
            col = i;
    free(key);
    return col;
}

int ss__compile(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **out)
{
    *out = NULL;
    for (int k = 0; k < 2; k++) /* computed by an operator below */
        for (const ss__premap_t *m = k ? (cc->grp ? NULL : cc->scope->pre) : cc->pre; m; m = m->next)
            for (int i = 0; i < m->n; i++)
                if (m->ast[i] == a) {
                    if (!(*out = ss_expr_copy(m->expr[i])))
                        return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
                    return SS_OK;
                }
    int gcol = group_expr_col(cc, a);
    if (gcol == -2)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
    ss_expr_t *e = ss_expr_new(SS_EX_COL);
    if (!e)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
    if (gcol >= 0) {
        e->col = gcol;
        e->type = cc->grp->group_type[gcol];
        *out = e;
        return SS_OK;
    }
    int rc = SS_OK;
    switch (a->kind) {
    case SS_AX_COLUMN:
        rc = compile_column(cc, a, e);
        break;
    case SS_AX_LITERAL:
        e->kind = SS_EX_LIT;
        e->lit = a->lit;
        if (a->lit.t == SS_TEXT && !(e->lit.u.str.s = ss_strndup(a->lit.u.str.s, a->lit.u.str.n))) {
            e->lit.t = SS_NULL;
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
        }
        e->type = a->lit_bool ? SS_COL_BOOL : a->lit.t == SS_INT ? SS_COL_INT : a->lit.t == SS_REAL ? SS_COL_REAL
                  : a->lit.t == SS_TEXT ? SS_COL_TEXT : SS_COL_ANY;
        break;
    case SS_AX_UNARY:
    case SS_AX_IS_NULL:
        e->kind = a->kind == SS_AX_UNARY ? SS_EX_UNARY : SS_EX_IS_NULL;
        e->op = a->kind == SS_AX_UNARY ? a->op : SS_OP_NONE;
        e->negate = a->kind == SS_AX_IS_NULL && a->op == SS_OP_NOT;
        if (!(e->args = calloc(1, sizeof *e->args))) {
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        if ((rc = ss__compile(cc, a->left, &e->args[0])))
            break;
        e->nargs = 1;
        if (a->kind == SS_AX_UNARY && a->op == SS_OP_NEG && !is_numeric(e->args[0]->type))
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: unary minus needs a number, got %s",
                           a->span.line, a->span.col, ss_coltype_name(e->args[0]->type));
        if (!rc && a->kind == SS_AX_UNARY && a->op == SS_OP_NOT)
            rc = ss__check_bool(cc, e->args[0], "NOT", a->left->span);
        e->type = a->kind == SS_AX_IS_NULL || a->op == SS_OP_NOT ? SS_COL_BOOL : e->args[0]->type;
        break;
    case SS_AX_BINARY:
        e->kind = SS_EX_BINARY;
        e->op = a->op;
        e->sline = a->span.line;
        e->scol = a->span.col;
        if (!(e->args = calloc(3, sizeof *e->args))) {
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        if ((rc = ss__compile(cc, a->left, &e->args[0])))
            break;
        e->nargs = 1;
        if ((rc = ss__compile(cc, a->right, &e->args[1])))
            break;
        e->nargs = 2;
        if (a->args && a->args->n == 1) { /* LIKE ... ESCAPE */
            if ((rc = ss__compile(cc, a->args->items[0], &e->args[2])))
                break;
            e->nargs = 3;
        }
        if (is_comparison(a->op)) {
            ss_expr_t *cmp = NULL, *l = e->args[0], *r = e->args[1];
            e->nargs = 0;
            if ((rc = ss__compare(cc, a->op, a->left, l, a->right, r, &cmp)))
                break;
            e->args[0] = cmp->args[0];
            e->args[1] = cmp->args[1];
            e->nargs = 2;
            free(cmp->args);
            free(cmp);
            e->type = SS_COL_BOOL;
            break;
        }
        rc = binary_type(cc, a, e);
        break;
    case SS_AX_CASE:
        rc = ss__compile_case(cc, a, e);
        break;
    case SS_AX_CAST:
        rc = ss__compile_cast(cc, a, e);
        break;
    case SS_AX_IN:
        rc = ss__compile_in(cc, a, e);
        break;
    case SS_AX_BETWEEN:
        rc = ss__compile_between(cc, a, e);
        break;
    case SS_AX_ROW:
        rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                       "%d:%d: a parenthesised list (a, b, ...) is only allowed after IN", a->span.line, a->span.col);
        break;
    case SS_AX_FUNC:
        if (a->over) {
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: window function %s is only allowed in the SELECT list", a->span.line, a->span.col,
                           a->name);
            break;
        }
        if (ss__is_agg_name(a->name)) {
            rc = compile_agg_ref(cc, a, e);
            break;
        }
        e->kind = SS_EX_FUNC;
        rc = ss__compile_func(cc, a, e);
        break;
    case SS_AX_STAR:
        rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: '*' is only allowed as a SELECT item or in COUNT(*)",
                       a->span.line, a->span.col);
        break;
    case SS_AX_SEM:
        if (a->sem == SS_SEM_AGG) {
            rc = compile_agg_ref(cc, a, e);
            break;
        }
        rc = -1;
        for (int i = 0; ss__sem_appends(a->sem) && i < cc->nsem; i++)
            if (cc->sem_ast[i] == a) {
                e->col = cc->sem_col[i];
                e->type = cc->sem_type ? cc->sem_type[i] : SS_COL_TEXT;
                rc = SS_OK;
            }
        if (rc && cc->grp && ss__sem_groupable(a->sem))
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: %s of grouped rows must be one of the GROUP BY items (GROUP BY %s(...) or its alias)",
                           a->span.line, a->span.col, sem_name(a->sem), sem_name(a->sem));
        else if (rc && a->sem == SS_SEM_EXTRACT)
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: SEM_EXTRACT is a SELECT item of its own (it yields the columns it names); use "
                           "SEM_MAP(..., schema => '...') for one JSON value inside an expression",
                           a->span.line, a->span.col);
        else if (rc)
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: %s is not allowed here (SEM_FILTER belongs in WHERE, SEM_MAP and SEM_AGG in SELECT, SEM_RANK/SEM_SCORE in ORDER BY)",
                           a->span.line, a->span.col, sem_name(a->sem));
        break;
    case SS_AX_SUBQUERY:
    case SS_AX_EXISTS:
    case SS_AX_IN_SELECT:
        rc = ss_seterr(cc->err, cc->errsz, SS_ERR_UNSUPPORTED,
                       "%d:%d: a subquery is not supported here (use it in WHERE or the SELECT list)",
                       a->span.line, a->span.col);
        break;
    }
    if (rc) {
        ss_expr_free(e);
        return rc;
    }
    *out = e;
    return SS_OK;
}

/* ---------------------------------------------------------------- templates */

/* Source position of byte k of an unquoted string literal whose opening quote is at `sp`
 * (each quote character in the text was written doubled). */
static ss_span_t literal_pos(const char *text, ss_span_t sp, int k)
{
    ss_span_t r = sp;
    if (sp.len < 0) /* the literal's own position is unknown: report the enclosing construct */
        return sp;
    r.col = sp.col + 1;
    r.off = sp.off + 1;
    for (int i = 0; i < k && text[i]; i++) {
        if (text[i] == '\n') {
            r.line++;
            r.col = 1;
        } else {
            r.col += (text[i] == '\'') ? 2 : 1;
        }
        r.off += (text[i] == '\'') ? 2 : 1;
    }
    r.len = 1;
    return r;
}

static int part_add(ss_template_t *t, const char *text, size_t n, int side, int col, const char *name)
{
    ss_tmpl_part_t *p = realloc(t->parts, (size_t)(t->nparts + 1) * sizeof *p);
    if (!p)
        return SS_ERR_NOMEM;
    t->parts = p;
    p = &t->parts[t->nparts];
    memset(p, 0, sizeof *p);
    p->side = side;
    p->col = col;
    if (text && !(p->text = ss_strndup(text, n)))
        return SS_ERR_NOMEM;
    if (name && !(p->name = ss_strdup(name))) {
        free(p->text);
        return SS_ERR_NOMEM;
    }
    t->nparts++;
    return SS_OK;
}

/* Copies the reference inside {...} at s (s points after '{') into ref without blanks and
 * checks it is "ident" or "ident.ident". Returns the length up to '}' (exclusive), or -1 when
 * unbalanced, -2 when malformed. *lead = blanks before the name. */
static int ref_parse(const char *s, char *ref, size_t refsz, int *lead)
{
    const char *end = strchr(s, '}');
    if (!end)
        return -1;
    const char *open = strchr(s, '{');
    if (open && open < end)
        return -1;
    size_t k = 0;
    *lead = 0;
    while (s + *lead < end && isspace((unsigned char)s[*lead]))
        (*lead)++;
    for (const char *c = s; c < end; c++)
        if (!isspace((unsigned char)*c) && k + 1 < refsz)
            ref[k++] = *c;
    ref[k] = 0;
    int dots = 0;
    const char *c = ref;
    for (;;) {
        if (!(isalpha((unsigned char)*c) || *c == '_'))
            return -2;
        while (isalnum((unsigned char)*c) || *c == '_')
            c++;
        if (!*c)
            return (int)(end - s);
        if (*c != '.' || ++dots > 1)
            return -2;
        c++;
    }
}

int ss__template(const ss__cctx_t *cc, const char *tmpl, ss_span_t span, int need_side,
                 ss_template_t **out)
{
    *out = NULL;
    ss_template_t *t = calloc(1, sizeof *t);
    if (!t || !(t->src = ss_strdup(tmpl))) {
        free(t);
        return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
    }
    int rc = SS_OK, used = 0;
    const char *lit = tmpl;
    for (const char *p = tmpl; *p && !rc; p++) {
        if (*p != '{')
            continue;
        char ref[128];
        int lead = 0, n = ref_parse(p + 1, ref, sizeof ref, &lead);
        ss_span_t sp = literal_pos(tmpl, span, (int)(p + 1 + lead - tmpl));
        if (n < 0) {
            ss_span_t bp = literal_pos(tmpl, span, (int)(p - tmpl));
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s", bp.line, bp.col,
                           n == -1 ? "unbalanced '{' (reference not closed by '}')"
                                   : "invalid reference: expected {column} or {alias.column}");
            break;
        }
        if (p > lit && part_add(t, lit, (size_t)(p - lit), 0, -1, NULL)) {
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        char *dot = strchr(ref, '.');
        const char *table = dot ? ref : NULL, *name = dot ? dot + 1 : ref;
        if (dot)
            *dot = 0;
        int side = 0, col = -1;
        if ((rc = ss__resolve_col(cc, table, name, sp, &side, &col)))
            break;
        if (dot)
            *dot = '.';
        if (part_add(t, NULL, 0, side, col, ref)) {
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        used |= 1 << side;
        p += n + 1;
        lit = p + 1;
    }
    if (!rc && *lit && part_add(t, lit, strlen(lit), 0, -1, NULL))
        rc = ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc && (need_side & ~used)) {
        int missing = (need_side & ~used) & 1 ? 0 : 1;
        if (need_side == 1)
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: template references no column, so every row would get the same answer (write {column})",
                           span.line, span.col);
        else
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                           "%d:%d: SEM_JOIN template references no column of the %s side (write {alias.column})",
                           span.line, span.col, missing ? "right" : "left");
    }
    if (rc) {
        ss_template_free(t);
        return rc;
    }
    *out = t;
    return SS_OK;
}

/* ---------------------------------------------------------------- rendering */

static int render(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *b, int top)
{
    switch (e->kind) {
    case SS_EX_COL:
        if (in && e->col >= 0 && e->col < in->n && in->names[e->col])
            return ss_buf_puts(b, in->names[e->col]);
        return ss_buf_printf(b, "$%d", e->col);
    case SS_EX_LIT:
        if (e->lit.t == SS_TEXT) {
            ss_buf_putc(b, '\'');
            for (size_t i = 0; i < e->lit.u.str.n; i++) {
                if (e->lit.u.str.s[i] == '\'')
                    ss_buf_putc(b, '\'');
                ss_buf_putc(b, e->lit.u.str.s[i]);
            }
            return ss_buf_putc(b, '\'');
        }
        return ss_val_to_text(&e->lit, b);
    case SS_EX_UNARY:
        ss_buf_puts(b, e->op == SS_OP_NOT ? "NOT " : "-");
        return render(e->args[0], in, b, 0);
    case SS_EX_IS_NULL:
        render(e->args[0], in, b, 0);
        return ss_buf_puts(b, e->negate ? " IS NOT NULL" : " IS NULL");
    case SS_EX_BINARY:
        if (!top)
            ss_buf_putc(b, '(');
        render(e->args[0], in, b, 0);
        ss_buf_printf(b, " %s ", op_text(e->op));
        render(e->args[1], in, b, 0);
        if (e->nargs > 2) {
            ss_buf_puts(b, " ESCAPE ");
            render(e->args[2], in, b, 0);
        }
        return top ? SS_OK : ss_buf_putc(b, ')');
    case SS_EX_FUNC:
        ss_buf_printf(b, "%s(", e->func);
        for (int i = 0; i < e->nargs; i++) {
            if (i)
                ss_buf_puts(b, ", ");
            render(e->args[i], in, b, 1);
        }
        return ss_buf_putc(b, ')');
    case SS_EX_CASE:
        ss_buf_puts(b, "CASE");
        for (int i = 0; i + 1 < e->nargs; i += 2) {
            ss_buf_puts(b, " WHEN ");
            render(e->args[i], in, b, 1);
            ss_buf_puts(b, " THEN ");
            render(e->args[i + 1], in, b, 1);
        }
        if (e->nargs % 2) {
            ss_buf_puts(b, " ELSE ");
            render(e->args[e->nargs - 1], in, b, 1);
        }
        return ss_buf_puts(b, " END");
    case SS_EX_CAST:
        ss_buf_puts(b, "CAST(");
        render(e->args[0], in, b, 1);
        ss_buf_puts(b, " AS ");
        ss_type_to_sql(e->type, e->typmod, b);
        return ss_buf_putc(b, ')');
    case SS_EX_IN:
        if (!top)
            ss_buf_putc(b, '(');
        render(e->args[0], in, b, 0);
        ss_buf_puts(b, e->negate ? " NOT IN (" : " IN (");
        for (int i = 1; i < e->nargs; i++) {
            if (i > 1)
                ss_buf_puts(b, ", ");
            render(e->args[i], in, b, 1);
        }
        ss_buf_putc(b, ')');
        return top ? SS_OK : ss_buf_putc(b, ')');
    }
    return SS_OK;
}

int ss__expr_sql(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *out)
{
    return render(e, in, out, 1);
}
