/*
 * plan_time.c — the expression compiler's time types (issue 13), as PostgreSQL
 * types them: the common type of TIMESTAMP, TIMESTAMPTZ and DATE (DATE <
 * TIMESTAMP < TIMESTAMPTZ), the arithmetic operators (timestamp ± interval,
 * timestamp - timestamp = interval, date ± integer, date - date = integer,
 * interval ± interval, interval * or / number), which casts exist, and the time
 * functions with their argument checks: NOW(), CURRENT_TIMESTAMP, CURRENT_DATE,
 * LOCALTIMESTAMP, DATE_TRUNC, EXTRACT, DATE_PART, DATE_BIN, TO_TIMESTAMP,
 * TO_DATE, TO_CHAR. Evaluation is in runtime/expr_time.c.
 *
 * NOW() depends on when a row is looked at, so in a continuous view it is only
 * allowed where the planner can maintain it as time passes: a WHERE conjunct
 * comparing a row's time with NOW() ± an interval (a temporal filter,
 * plan_temporal.c); the compiler context says where NOW() may appear.
 */
#include "plan_int.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oom(const ss__cctx_t *cc) { return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory"); }

int ss__is_time_type(ss_coltype_t t) { return ss_coltype_is_time(t) || t == SS_COL_INTERVAL; }

static int time_rank(ss_coltype_t t)
{
    return t == SS_COL_DATE ? 1 : t == SS_COL_TIMESTAMP ? 2 : t == SS_COL_TIMESTAMPTZ ? 3 : 0;
}

int ss__time_common(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out)
{
    if (ss_coltype_is_time(a) && ss_coltype_is_time(b)) {
        *out = time_rank(a) >= time_rank(b) ? a : b;
        return 0;
    }
    return -1;
}

static const char *tn(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_TIMESTAMP: return "timestamp";
    case SS_COL_TIMESTAMPTZ: return "timestamptz";
    case SS_COL_DATE: return "date";
    case SS_COL_INTERVAL: return "interval";
    case SS_COL_INT: return "integer";
    case SS_COL_REAL: return "double precision";
    case SS_COL_NUMERIC: return "numeric";
    case SS_COL_BOOL: return "boolean";
    case SS_COL_TEXT: return "text";
    case SS_COL_JSON: return "json";
    default: return "unknown";
    }
}

static int is_num(ss_coltype_t t) { return t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC || t == SS_COL_ANY; }

static const char *op_sym(ss_ast_op_t op)
{
    return op == SS_OP_ADD ? "+" : op == SS_OP_SUB ? "-" : op == SS_OP_MUL ? "*" : op == SS_OP_DIV ? "/" : "%";
}

/* An unknown literal next to a time operand: what PostgreSQL would resolve it to. */
static ss_coltype_t literal_target(ss_ast_op_t op, ss_coltype_t other, int lit_is_left)
{
    if (ss_coltype_is_time(other))
        return op == SS_OP_ADD || (op == SS_OP_SUB && !lit_is_left) ? SS_COL_INTERVAL : other;
    if (other == SS_COL_INTERVAL)
        return op == SS_OP_MUL || op == SS_OP_DIV ? SS_COL_REAL : SS_COL_INTERVAL;
    return SS_COL_ANY;
}

int ss__time_arith_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    for (int i = 0; i < 2; i++) { /* ts - '5 minutes', '2024-01-01' + interval */
        ss_expr_t *o = e->args[1 - i];
        if (ss__is_unknown_lit(e->args[i]) && !ss__is_unknown_lit(o) && ss__is_time_type(o->type)) {
            ss_coltype_t t = literal_target(a->op, o->type, i == 0);
            int rc = t == SS_COL_ANY ? SS_OK : ss__coerce(cc, i ? a->right : a->left, &e->args[i], t, op_sym(a->op));
            if (rc)
                return rc;
        }
    }
    ss_coltype_t l = e->args[0]->type, r = e->args[1]->type;
    int lt = ss_coltype_is_time(l), rt = ss_coltype_is_time(r);
    ss_ast_op_t op = a->op;
    ss_coltype_t res = SS_COL_ANY;
    if ((op == SS_OP_ADD && ((lt && r == SS_COL_INTERVAL) || (rt && l == SS_COL_INTERVAL))) ||
        (op == SS_OP_SUB && lt && r == SS_COL_INTERVAL)) {
        ss_coltype_t t = lt ? l : r;
        res = t == SS_COL_DATE ? SS_COL_TIMESTAMP : t; /* date + interval is a timestamp */
    } else if ((op == SS_OP_ADD || op == SS_OP_SUB) && ((l == SS_COL_DATE && r == SS_COL_INT) ||
                                                       (op == SS_OP_ADD && r == SS_COL_DATE && l == SS_COL_INT))) {
        res = SS_COL_DATE;
    } else if (op == SS_OP_SUB && l == SS_COL_DATE && r == SS_COL_DATE) {
        res = SS_COL_INT;
    } else if (op == SS_OP_SUB && lt && rt) {
        ss_coltype_t c = l;
        ss__time_common(l, r, &c);
        int rc = ss__coerce(cc, a->left, &e->args[0], c == SS_COL_DATE ? SS_COL_TIMESTAMP : c, "-");
        if (!rc)
            rc = ss__coerce(cc, a->right, &e->args[1], c == SS_COL_DATE ? SS_COL_TIMESTAMP : c, "-");
        if (rc)
            return rc;
        res = SS_COL_INTERVAL;
    } else if ((op == SS_OP_ADD || op == SS_OP_SUB) && l == SS_COL_INTERVAL && r == SS_COL_INTERVAL) {
        res = SS_COL_INTERVAL;
    } else if ((op == SS_OP_MUL && ((l == SS_COL_INTERVAL && is_num(r)) || (r == SS_COL_INTERVAL && is_num(l)))) ||
               (op == SS_OP_DIV && l == SS_COL_INTERVAL && is_num(r))) {
        res = SS_COL_INTERVAL;
    }
    if (res == SS_COL_ANY)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: operator does not exist: %s %s %s%s",
                         a->span.line, a->span.col, tn(l), op_sym(op), tn(r),
                         lt && is_num(r) ? " (add an interval: ts + INTERVAL '5 minutes')" : "");
    e->type = res;
    return SS_OK;
}

int ss__time_cast_check(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_coltype_t from, ss_coltype_t to)
{
    int ok = 1;
    if (ss__is_time_type(to))
        ok = from == SS_COL_TEXT || from == SS_COL_ANY || from == SS_COL_JSON || from == to ||
             (ss_coltype_is_time(from) && ss_coltype_is_time(to));
    else if (ss__is_time_type(from))
        ok = to == SS_COL_TEXT || to == SS_COL_JSON;
    if (ok)
        return SS_OK;
    const char *hint = is_num(from) && ss_coltype_is_time(to) ? " (epoch seconds: TO_TIMESTAMP(x))"
                       : ss_coltype_is_time(from) && is_num(to) ? " (EXTRACT(EPOCH FROM x) gives epoch seconds)"
                                                                 : "";
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: cannot cast type %s to %s%s", a->span.line,
                     a->span.col, tn(from), tn(to), hint);
}

/* ---- functions ---- */

static const struct time_fn {
    const char *name;
    int lo, hi;
} time_fns[] = {
    {"NOW", 0, 0},        {"CURRENT_TIMESTAMP", 0, 0}, {"LOCALTIMESTAMP", 0, 0}, {"CURRENT_DATE", 0, 0},
    {"DATE_TRUNC", 2, 2}, {"EXTRACT", 2, 2},           {"DATE_PART", 2, 2},      {"DATE_BIN", 3, 3},
    {"TO_TIMESTAMP", 1, 2}, {"TO_DATE", 2, 2},         {"TO_CHAR", 2, 2},
};

int ss__is_time_func(const char *name)
{
    for (size_t i = 0; name && i < SS_ARRAY_LEN(time_fns); i++)
        if (ss_strcaseeq(name, time_fns[i].name))
            return 1;
    return 0;
}

int ss__is_now_func(const char *name)
{
    return name && (ss_strcaseeq(name, "NOW") || ss_strcaseeq(name, "CURRENT_TIMESTAMP") ||
                    ss_strcaseeq(name, "LOCALTIMESTAMP") || ss_strcaseeq(name, "CURRENT_DATE"));
}

static int arg_fail(const ss__cctx_t *cc, const ss_ast_expr_t *x, const char *fn, const char *want, ss_coltype_t got)
{
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs %s, got %s", x->span.line, x->span.col, fn,
                     want, tn(got));
}

/* Argument i must be of a time type (string literals become `dflt`). */
static int want_time(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e, int i, ss_coltype_t dflt, int ivl_ok)
{
    const ss_ast_expr_t *x = a->args->items[i];
    if (ss__is_unknown_lit(e->args[i]) || e->args[i]->type == SS_COL_ANY)
        return ss__coerce(cc, x, &e->args[i], dflt, e->func);
    ss_coltype_t t = e->args[i]->type;
    if (ss_coltype_is_time(t) || (ivl_ok && t == SS_COL_INTERVAL))
        return SS_OK;
    return arg_fail(cc, x, e->func, ivl_ok ? "a timestamp, date or interval" : "a timestamp or date", t);
}

static int want_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e, int i, ss_coltype_t t, const char *what)
{
    const ss_ast_expr_t *x = a->args->items[i];
    ss_coltype_t got = e->args[i]->type;
    if (got == t || ss__is_unknown_lit(e->args[i]) || got == SS_COL_ANY ||
        (t == SS_COL_REAL && is_num(got)))
        return ss__coerce(cc, x, &e->args[i], t, e->func);
    return arg_fail(cc, x, e->func, what, got);
}

/* A constant field name (EXTRACT, DATE_TRUNC, DATE_PART) is checked now, with its position. */
static int check_field(const ss__cctx_t *cc, const ss_ast_expr_t *a, const ss_expr_t *f, int for_trunc)
{
    if (f->kind != SS_EX_LIT || f->lit.t != SS_TEXT)
        return SS_OK;
    if (ss_time_field_ok(f->lit.u.str.s, for_trunc))
        return SS_OK;
    const ss_ast_expr_t *x = a->args->items[0];
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: unit \"%s\" not recognized for %s (expected %s)",
                     x->span.line, x->span.col, f->lit.u.str.s, a->name,
                     for_trunc ? "microseconds, milliseconds, second, minute, hour, day, week, month, quarter, year, "
                                 "decade, century or millennium"
                               : "e.g. year, month, day, hour, minute, second, dow, doy, week, quarter, epoch");
}

int ss__compile_time_func(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    const struct time_fn *fn = NULL;
    for (size_t i = 0; i < SS_ARRAY_LEN(time_fns) && !fn; i++)
        if (ss_strcaseeq(a->name, time_fns[i].name))
            fn = &time_fns[i];
    int nargs = a->args ? a->args->n : 0;
    if (!fn)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_INTERNAL, "%s is not a time function", a->name);
    if (nargs < fn->lo || nargs > fn->hi)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s takes %d%s%d argument%s, not %d",
                         a->span.line, a->span.col, fn->name, fn->lo, fn->lo == fn->hi ? "" : " to ",
                         fn->lo == fn->hi ? -1 : fn->hi, fn->hi == 1 ? "" : "s", nargs);
    e->kind = SS_EX_FUNC;
    if (!(e->func = ss_strdup(fn->name)) || (nargs && !(e->args = calloc((size_t)nargs, sizeof *e->args))))
        return oom(cc);
    e->sline = a->span.line;
    e->scol = a->span.col;
    for (int i = 0; i < nargs; i++) {
        int rc = ss__compile(cc, a->args->items[i], &e->args[i]);
        if (rc)
            return rc;
        e->nargs = i + 1;
    }
    const char *f = fn->name;
    int rc = SS_OK;
    if (ss__is_now_func(f)) {
        if (!cc->allow_now)
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                             "%d:%d: %s changes as time passes, so a continuous view can only use it in WHERE, "
                             "compared with a row's time: WHERE ts > NOW() - INTERVAL '5 minutes' (a temporal filter, "
                             "maintained as time passes)", a->span.line, a->span.col, fn->name);
        e->type = !strcmp(f, "CURRENT_DATE") ? SS_COL_DATE : !strcmp(f, "LOCALTIMESTAMP") ? SS_COL_TIMESTAMP
                                                                                            : SS_COL_TIMESTAMPTZ;
        e->sline = 0; /* never fails */
        return SS_OK;
    }
    if (!strcmp(f, "DATE_TRUNC")) {
        rc = want_type(cc, a, e, 0, SS_COL_TEXT, "a unit name ('hour')");
        rc = rc ? rc : check_field(cc, a, e->args[0], 1);
        rc = rc ? rc : want_time(cc, a, e, 1, SS_COL_TIMESTAMP, 0);
        if (!rc && e->args[1]->type == SS_COL_DATE)
            rc = ss__coerce(cc, a->args->items[1], &e->args[1], SS_COL_TIMESTAMP, f);
        e->type = rc ? SS_COL_ANY : e->args[1]->type;
    } else if (!strcmp(f, "EXTRACT") || !strcmp(f, "DATE_PART")) {
        rc = want_type(cc, a, e, 0, SS_COL_TEXT, "a field name ('year')");
        rc = rc ? rc : check_field(cc, a, e->args[0], 0);
        rc = rc ? rc : want_time(cc, a, e, 1, SS_COL_TIMESTAMP, 1);
        e->type = !strcmp(f, "EXTRACT") ? SS_COL_NUMERIC : SS_COL_REAL;
    } else if (!strcmp(f, "DATE_BIN")) {
        rc = want_type(cc, a, e, 0, SS_COL_INTERVAL, "an interval");
        rc = rc ? rc : want_time(cc, a, e, 1, SS_COL_TIMESTAMP, 0);
        rc = rc ? rc : want_time(cc, a, e, 2, e->args[1]->type, 0);
        ss_coltype_t c = e->args[1]->type;
        if (!rc && !ss__time_common(e->args[1]->type, e->args[2]->type, &c)) {
            c = c == SS_COL_DATE ? SS_COL_TIMESTAMP : c;
            rc = ss__coerce(cc, a->args->items[1], &e->args[1], c, f);
            rc = rc ? rc : ss__coerce(cc, a->args->items[2], &e->args[2], c, f);
        }
        e->type = c;
    } else if (!strcmp(f, "TO_TIMESTAMP") && nargs == 1) {
        rc = want_type(cc, a, e, 0, SS_COL_REAL, "epoch seconds (a number)");
        e->type = SS_COL_TIMESTAMPTZ;
    } else if (!strcmp(f, "TO_TIMESTAMP") || !strcmp(f, "TO_DATE")) {
        rc = want_type(cc, a, e, 0, SS_COL_TEXT, "text");
        rc = rc ? rc : want_type(cc, a, e, 1, SS_COL_TEXT, "a format ('YYYY-MM-DD HH24:MI:SS')");
        e->type = !strcmp(f, "TO_DATE") ? SS_COL_DATE : SS_COL_TIMESTAMPTZ;
    } else if (!strcmp(f, "TO_CHAR")) {
        rc = want_time(cc, a, e, 0, SS_COL_TIMESTAMP, 0);
        rc = rc ? rc : want_type(cc, a, e, 1, SS_COL_TEXT, "a format ('YYYY-MM-DD HH24:MI:SS')");
        e->type = SS_COL_TEXT;
    }
    return rc;
}

/* CURRENT_TIMESTAMP, CURRENT_DATE, LOCALTIMESTAMP written without parentheses, when the scope has no
 * column of that name: the function. 1 if a was one (compiled into e), 0 if not, < 0 on error. */
int ss__compile_time_ident(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e, int *rc)
{
    if (a->table || !a->name || !ss__is_now_func(a->name) || ss_strcaseeq(a->name, "NOW"))
        return 0;
    for (int r = 0; r < cc->scope->nrels; r++) {
        const ss__rel_t *rel = &cc->scope->rels[r];
        const ss_schema_t *sc = cc->scope->side_schema[rel->side] ? cc->scope->side_schema[rel->side] : cc->scope->schema;
        for (int i = rel->off; sc && i < rel->off + rel->n; i++)
            if (ss_strcaseeq(sc->names[i], a->name))
                return 0;
    }
    ss_ast_expr_t call = *a;
    call.kind = SS_AX_FUNC;
    call.args = NULL;
    *rc = ss__compile_time_func(cc, &call, e);
    return 1;
}
