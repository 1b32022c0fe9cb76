/*
 * plan_typing.c — the expression compiler's types, as PostgreSQL resolves them:
 * common types of CASE branches, COALESCE/GREATEST/LEAST/NULLIF arguments and
 * IN lists (INT < NUMERIC < REAL; a string literal is of unknown type and
 * takes the type it is compared with or combined with, checked here at
 * line:col), implicit casts inserted as SS_EX_CAST nodes, the compilation of
 * CASE, CAST/::, IN and BETWEEN, and the table of scalar functions with their
 * arities and result types. Evaluation lives in runtime/expr*.c.
 */
#include "plan_int.h"

#include "ss_decimal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oom(const ss__cctx_t *cc) { return ss_seterr(cc->err, cc->errsz, SS_ERR_NOMEM, "out of memory"); }

static const char *tname(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_INT: return "integer";
    case SS_COL_REAL: return "double precision";
    case SS_COL_NUMERIC: return "numeric";
    case SS_COL_BOOL: return "boolean";
    case SS_COL_JSON: return "json";
    case SS_COL_TEXT: return "text";
    default: return "unknown";
    }
}

int ss__is_num_type(ss_coltype_t t)
{
    return t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC || t == SS_COL_BOOL || t == SS_COL_ANY;
}

/* A string literal: PostgreSQL's "unknown" type, resolved from context. */
int ss__is_unknown_lit(const ss_expr_t *e) { return e->kind == SS_EX_LIT && e->lit.t == SS_TEXT; }

static int num_rank(ss_coltype_t t)
{
    return t == SS_COL_REAL ? 3 : t == SS_COL_NUMERIC ? 2 : t == SS_COL_INT ? 1 : 0; /* BOOL 0 */
}

int ss__common_type(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out)
{
    if (a == SS_COL_ANY || a == b) {
        *out = b;
        return 0;
    }
    if (b == SS_COL_ANY) {
        *out = a;
        return 0;
    }
    if (ss__is_num_type(a) && ss__is_num_type(b)) {
        *out = num_rank(a) >= num_rank(b) ? a : b;
        return 0;
    }
    return -1;
}

/* Wraps *e in a cast to t. */
static int wrap_cast(const ss__cctx_t *cc, ss_expr_t **e, ss_coltype_t t, int typmod, ss_span_t sp)
{
    ss_expr_t *c = ss_expr_new(SS_EX_CAST);
    if (!c || !(c->args = calloc(1, sizeof *c->args))) {
        ss_expr_free(c);
        return oom(cc);
    }
    c->args[0] = *e;
    c->nargs = 1;
    c->type = t;
    c->typmod = typmod;
    c->sline = sp.line;
    c->scol = sp.col;
    *e = c;
    return SS_OK;
}

/* Converts a literal in place (plan time), with the error at the literal's position. */
static int convert_literal(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e, ss_coltype_t t, int typmod)
{
    ss_value_t in = e->lit, out;
    char *tmp = NULL, emsg[256] = "";
    if (t == SS_COL_NUMERIC && a && a->kind == SS_AX_LITERAL && a->num_text && in.t == SS_REAL)
        in = ss_val_text_ref(a->num_text, strlen(a->num_text)); /* 0.1 exactly, not the double */
    if ((t == SS_COL_TEXT || t == SS_COL_JSON) && e->type == SS_COL_BOOL && in.t == SS_INT)
        in = in.u.i ? ss_val_text_ref("true", 4) : ss_val_text_ref("false", 5); /* as at run time */
    int rc = ss_val_coerce_tm(&in, t, typmod, &out, &tmp, emsg, sizeof emsg);
    if (rc == SS_ERR_NOMEM)
        return oom(cc);
    if (rc) {
        ss_span_t sp = a ? a->span : (ss_span_t){e->sline, e->scol, 0, 0};
        if (in.t == SS_TEXT)
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: invalid input syntax for type %s: '%.*s'%s%s",
                             sp.line, sp.col, tname(t), (int)SS_MIN(in.u.str.n, 60), in.u.str.s,
                             t == SS_COL_NUMERIC || t == SS_COL_JSON ? " — " : "", t == SS_COL_NUMERIC || t == SS_COL_JSON ? emsg : "");
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s", sp.line, sp.col, emsg);
    }
    ss_value_t nv = out;
    if (ss_vtype_has_str(out.t) && !(nv.u.str.s = ss_strndup(out.u.str.s, out.u.str.n))) {
        free(tmp);
        return oom(cc);
    }
    free(tmp);
    if (ss_vtype_has_str(e->lit.t))
        free(e->lit.u.str.s);
    e->lit = nv;
    e->type = t;
    return SS_OK;
}

/* A fractional constant cast to INT is rounded as at run time (runtime/expr_num.c): a NUMERIC (a
 * decimal literal is one, as in PostgreSQL) half away from zero, a REAL half to even; then the
 * INT conversion checks its range. */
static int round_literal(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *x)
{
    const char *dec = x->lit.t == SS_NUM ? x->lit.u.str.s
                      : a->left && a->left->kind == SS_AX_LITERAL && x->lit.t == SS_REAL ? a->left->num_text
                                                                                         : NULL;
    long double v;
    if (dec)
        v = roundl(strtold(dec, NULL));
    else if (x->lit.t == SS_REAL && isfinite(x->lit.u.r))
        v = rint(x->lit.u.r);
    else
        return SS_OK; /* not fractional: convert_literal says what is wrong, if anything */
    if (!(v >= -9223372036854775808.0L && v < 9223372036854775808.0L))
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: bigint out of range", a->span.line, a->span.col);
    if (ss_vtype_has_str(x->lit.t))
        free(x->lit.u.str.s);
    x->lit = ss_val_int((int64_t)v);
    x->type = SS_COL_INT;
    return SS_OK;
}

int ss__coerce(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **e, ss_coltype_t t, const char *what)
{
    ss_expr_t *x = *e;
    if (t == SS_COL_ANY || x->type == t)
        return SS_OK;
    if (x->kind == SS_EX_LIT && x->lit.t == SS_NULL) {
        x->type = t;
        return SS_OK;
    }
    if (x->kind == SS_EX_LIT && (ss__is_unknown_lit(x) || (t == SS_COL_NUMERIC && x->lit.t != SS_NULL) ||
                                 (ss__is_num_type(t) && ss__is_num_type(x->type))))
        return convert_literal(cc, a, x, t, -1);
    ss_coltype_t ct;
    if (x->type == SS_COL_ANY || (ss__common_type(x->type, t, &ct) == 0 && ct == t))
        return wrap_cast(cc, e, t, -1, a ? a->span : (ss_span_t){0, 0, 0, 0});
    ss_span_t sp = a ? a->span : (ss_span_t){0, 0, 0, 0};
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s: %s cannot be matched with %s", sp.line,
                     sp.col, what, tname(x->type), tname(t));
}

/* The common type of n compiled expressions (string literals adapt); -1 with an error naming `what`. */
int ss__resolve_common(const ss__cctx_t *cc, ss_expr_t **es, const ss_ast_expr_t *const *asts, int n,
                       const char *what, ss_coltype_t *out)
{
    ss_coltype_t t = SS_COL_ANY;
    int lits = 0;
    for (int i = 0; i < n; i++) {
        if (ss__is_unknown_lit(es[i])) {
            lits++;
            continue;
        }
        ss_coltype_t nt;
        if (ss__common_type(t, es[i]->type, &nt)) {
            ss_span_t sp = asts[i] ? asts[i]->span : (ss_span_t){0, 0, 0, 0};
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s types %s and %s cannot be matched",
                             sp.line, sp.col, what, tname(t), tname(es[i]->type));
        }
        t = nt;
    }
    if (t == SS_COL_ANY && lits)
        t = SS_COL_TEXT;
    for (int i = 0; i < n; i++) {
        int rc = ss__coerce(cc, asts[i], &es[i], t, what);
        if (rc)
            return rc;
    }
    *out = t;
    return SS_OK;
}

/* ---- CASE ---- */

static ss_expr_t *binary_node(ss_ast_op_t op, ss_expr_t *l, ss_expr_t *r)
{
    ss_expr_t *e = ss_expr_new(SS_EX_BINARY);
    if (!e || !(e->args = calloc(2, sizeof *e->args))) {
        ss_expr_free(e);
        return NULL;
    }
    e->op = op;
    e->args[0] = l;
    e->args[1] = r;
    e->nargs = 2;
    e->type = SS_COL_BOOL;
    return e;
}

/* Compiles a comparison of two compiled operands (resolving their common type). */
int ss__compare(const ss__cctx_t *cc, ss_ast_op_t op, const ss_ast_expr_t *la, ss_expr_t *l,
                const ss_ast_expr_t *ra, ss_expr_t *r, ss_expr_t **out)
{
    ss_expr_t *es[2] = {l, r};
    const ss_ast_expr_t *as[2] = {la, ra};
    ss_coltype_t t;
    int rc = ss__resolve_common(cc, es, as, 2, "comparison", &t);
    if (!rc && t == SS_COL_JSON && op != SS_OP_DISTINCT && op != SS_OP_NOT_DISTINCT && op != SS_OP_EQ &&
        op != SS_OP_NE) {
        ss_span_t sp = la->span;
        rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                       "%d:%d: json values cannot be ordered (compare fields: j->>'key')", sp.line, sp.col);
    }
    if (rc) {
        ss_expr_free(es[0]);
        ss_expr_free(es[1]);
        return rc;
    }
    if (!(*out = binary_node(op, es[0], es[1]))) {
        ss_expr_free(es[0]);
        ss_expr_free(es[1]);
        return oom(cc);
    }
    return SS_OK;
}

int ss__compile_case(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    int nw = a->args ? a->args->n / 2 : 0;
    int n = 2 * nw + (a->right != NULL);
    const ss_ast_expr_t **as = calloc((size_t)n + 1, sizeof *as);
    e->kind = SS_EX_CASE;
    if (!as || !(e->args = calloc((size_t)n + 1, sizeof *e->args))) {
        free(as);
        return oom(cc);
    }
    ss_expr_t *operand = NULL;
    int rc = a->left ? ss__compile(cc, a->left, &operand) : SS_OK;
    for (int i = 0; i < nw && !rc; i++) {
        const ss_ast_expr_t *w = a->args->items[2 * i];
        ss_expr_t *c = NULL;
        rc = ss__compile(cc, w, &c);
        if (!rc && operand) { /* simple CASE: operand = value */
            ss_expr_t *copy = ss_expr_copy(operand);
            if (!copy) {
                ss_expr_free(c);
                rc = oom(cc);
                break;
            }
            ss_expr_t *cmp = NULL;
            rc = ss__compare(cc, SS_OP_EQ, a->left, copy, w, c, &cmp);
            c = cmp;
        } else if (!rc && c->type != SS_COL_BOOL && c->type != SS_COL_ANY && c->type != SS_COL_INT)
            rc = ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: argument of CASE/WHEN must be type boolean, not %s",
                           w->span.line, w->span.col, tname(c->type));
        if (rc) {
            ss_expr_free(c);
            break;
        }
        e->args[e->nargs++] = c;
        as[2 * i] = w;
        as[2 * i + 1] = a->args->items[2 * i + 1];
        rc = ss__compile(cc, as[2 * i + 1], &e->args[e->nargs]);
        if (!rc)
            e->nargs++;
    }
    ss_expr_free(operand);
    if (!rc && a->right) {
        as[n - 1] = a->right;
        rc = ss__compile(cc, a->right, &e->args[e->nargs]);
        if (!rc)
            e->nargs++;
    }
    if (!rc) { /* the result type: common type of THEN and ELSE */
        ss_expr_t *rs[1024];
        const ss_ast_expr_t *ra[1024];
        int k = 0;
        for (int i = 1; i < e->nargs && k < 1024; i += 2)
            rs[k] = e->args[i], ra[k++] = as[i];
        if (e->nargs % 2 && k < 1024)
            rs[k] = e->args[e->nargs - 1], ra[k++] = as[e->nargs - 1];
        rc = ss__resolve_common(cc, rs, ra, k, "CASE", &e->type);
        k = 0;
        for (int i = 1; i < e->nargs && k < 1024; i += 2)
            e->args[i] = rs[k++];
        if (e->nargs % 2 && k < 1024)
            e->args[e->nargs - 1] = rs[k];
    }
    free(as);
    return rc;
}

/* ---- CAST, IN, BETWEEN ---- */

int ss__compile_cast(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    e->kind = SS_EX_CAST;
    if (!(e->args = calloc(1, sizeof *e->args)))
        return oom(cc);
    int rc = ss__compile(cc, a->left, &e->args[0]);
    if (rc)
        return rc;
    e->nargs = 1;
    e->type = a->cast_type;
    e->typmod = a->cast_typmod;
    e->sline = a->span.line;
    e->scol = a->span.col;
    ss_expr_t *x = e->args[0];
    ss_coltype_t from = x->type;
    int ok = 1;
    if (from == SS_COL_JSON && a->cast_type == SS_COL_BOOL)
        ok = 1; /* json 'true' */
    else if (from == SS_COL_BOOL && (a->cast_type == SS_COL_REAL || a->cast_type == SS_COL_NUMERIC))
        ok = 0;
    else if ((from == SS_COL_REAL || from == SS_COL_NUMERIC) && a->cast_type == SS_COL_BOOL)
        ok = 0;
    if (!ok)
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: cannot cast type %s to %s", a->span.line,
                         a->span.col, tname(from), tname(a->cast_type));
    if (x->kind == SS_EX_LIT && x->lit.t != SS_NULL) { /* fold: errors in constants show at CREATE */
        int frc = a->cast_type == SS_COL_INT ? round_literal(cc, a, x) : SS_OK;
        if (!frc)
            frc = convert_literal(cc, a->left, x, a->cast_type, a->cast_typmod);
        if (frc)
            return frc;
        ss_expr_t **args = e->args;
        *e = *x; /* take the literal */
        free(x);
        free(args);
        e->sline = a->span.line;
        e->scol = a->span.col;
    } else if (x->kind == SS_EX_LIT)
        x->type = a->cast_type;
    return SS_OK;
}

int ss__compile_in(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    if (a->distinct) /* x IN y without parentheses */
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: IN needs a parenthesised list: x IN (a, b, ...)", a->span.line, a->span.col);
    int n = 1 + (a->args ? a->args->n : 0);
    const ss_ast_expr_t **as = calloc((size_t)n, sizeof *as);
    e->kind = SS_EX_IN;
    e->negate = a->op == SS_OP_NOT;
    e->type = SS_COL_BOOL;
    if (!as || !(e->args = calloc((size_t)n, sizeof *e->args))) {
        free(as);
        return oom(cc);
    }
    as[0] = a->left;
    int rc = ss__compile(cc, a->left, &e->args[0]);
    if (!rc)
        e->nargs = 1;
    for (int i = 1; i < n && !rc; i++) {
        as[i] = a->args->items[i - 1];
        rc = ss__compile(cc, as[i], &e->args[i]);
        if (!rc)
            e->nargs++;
    }
    ss_coltype_t t;
    if (!rc)
        rc = ss__resolve_common(cc, e->args, as, n, "IN", &t);
    free(as);
    return rc;
}

/* x BETWEEN lo AND hi is x >= lo AND x <= hi (NOT: x < lo OR x > hi), as PostgreSQL rewrites it. */
int ss__compile_between(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    int neg = a->op == SS_OP_NOT;
    const ss_ast_expr_t *lo = a->args->items[0], *hi = a->args->items[1];
    ss_expr_t *x1 = NULL, *x2 = NULL, *l = NULL, *h = NULL, *c1 = NULL, *c2 = NULL;
    int rc = ss__compile(cc, a->left, &x1);
    if (!rc && !(x2 = ss_expr_copy(x1)))
        rc = oom(cc);
    if (!rc)
        rc = ss__compile(cc, lo, &l);
    if (!rc)
        rc = ss__compile(cc, hi, &h);
    if (rc) {
        ss_expr_free(x1);
        ss_expr_free(x2);
        ss_expr_free(l);
        return rc;
    }
    rc = ss__compare(cc, neg ? SS_OP_LT : SS_OP_GE, a->left, x1, lo, l, &c1);
    if (rc) {
        ss_expr_free(x2);
        ss_expr_free(h);
        return rc;
    }
    rc = ss__compare(cc, neg ? SS_OP_GT : SS_OP_LE, a->left, x2, hi, h, &c2);
    if (rc) {
        ss_expr_free(c1);
        return rc;
    }
    e->kind = SS_EX_BINARY;
    e->op = neg ? SS_OP_OR : SS_OP_AND;
    e->type = SS_COL_BOOL;
    if (!(e->args = calloc(2, sizeof *e->args))) {
        ss_expr_free(c1);
        ss_expr_free(c2);
        return oom(cc);
    }
    e->args[0] = c1;
    e->args[1] = c2;
    e->nargs = 2;
    return SS_OK;
}

/* ---- scalar functions ---- */

typedef enum rtype {
    R_TEXT, R_INT, R_REAL, R_BOOL, R_JSON, /* fixed */
    R_COMMON,  /* the common type of all arguments (COALESCE, GREATEST, ...) */
    R_SAME,    /* numeric: the argument's type (ABS, MOD with a common type) */
    R_FLOOR,   /* NUMERIC for NUMERIC, else REAL (FLOOR, CEIL, 1-argument ROUND/TRUNC, SIGN) */
    R_ROUND,   /* ROUND/TRUNC(x, n): REAL for REAL, else NUMERIC */
    R_MATH,    /* REAL; arguments must be numbers (SQRT, EXP, LN, LOG, POWER) */
} rtype_t;

static const struct scalar_fn {
    const char *name;
    int lo, hi;
    rtype_t r;
    const char *alias; /* evaluated as this function */
} funcs[] = {
    {"LOWER", 1, 1, R_TEXT, NULL},          {"UPPER", 1, 1, R_TEXT, NULL},
    {"LENGTH", 1, 1, R_INT, NULL},          {"CHAR_LENGTH", 1, 1, R_INT, "LENGTH"},
    {"CHARACTER_LENGTH", 1, 1, R_INT, "LENGTH"},
    {"COALESCE", 1, 1000, R_COMMON, NULL},  {"IFNULL", 2, 2, R_COMMON, "COALESCE"},
    {"NULLIF", 2, 2, R_COMMON, NULL},       {"GREATEST", 1, 1000, R_COMMON, NULL},
    {"LEAST", 1, 1000, R_COMMON, NULL},     {"ABS", 1, 1, R_SAME, NULL},
    {"SIGN", 1, 1, R_FLOOR, NULL},          {"ROUND", 1, 2, R_ROUND, NULL},
    {"TRUNC", 1, 2, R_ROUND, NULL},         {"FLOOR", 1, 1, R_FLOOR, NULL},
    {"CEIL", 1, 1, R_FLOOR, NULL},          {"CEILING", 1, 1, R_FLOOR, "CEIL"},
    {"SQRT", 1, 1, R_MATH, NULL},           {"EXP", 1, 1, R_MATH, NULL},
    {"LN", 1, 1, R_MATH, NULL},             {"LOG", 1, 2, R_MATH, NULL},
    {"LOG10", 1, 1, R_MATH, "LOG"},         {"POWER", 2, 2, R_MATH, NULL},
    {"POW", 2, 2, R_MATH, "POWER"},         {"MOD", 2, 2, R_SAME, NULL},
    {"PI", 0, 0, R_REAL, NULL},             {"SUBSTR", 2, 3, R_TEXT, NULL},
    {"SUBSTRING", 2, 3, R_TEXT, "SUBSTR"},  {"TRIM", 1, 2, R_TEXT, NULL},
    {"BTRIM", 1, 2, R_TEXT, "TRIM"},        {"LTRIM", 1, 2, R_TEXT, NULL},
    {"RTRIM", 1, 2, R_TEXT, NULL},          {"REPLACE", 3, 3, R_TEXT, NULL},
    {"CONCAT", 1, 1000, R_TEXT, NULL},      {"CONCAT_WS", 2, 1000, R_TEXT, NULL},
    {"POSITION", 2, 2, R_INT, NULL},        {"STRPOS", 2, 2, R_INT, NULL},
    {"LEFT", 2, 2, R_TEXT, NULL},           {"RIGHT", 2, 2, R_TEXT, NULL},
    {"LPAD", 2, 3, R_TEXT, NULL},           {"RPAD", 2, 3, R_TEXT, NULL},
    {"SPLIT_PART", 3, 3, R_TEXT, NULL},     {"REVERSE", 1, 1, R_TEXT, NULL},
    {"INITCAP", 1, 1, R_TEXT, NULL},        {"REPEAT", 2, 2, R_TEXT, NULL},
    {"REGEXP_REPLACE", 3, 4, R_TEXT, NULL}, {"REGEXP_MATCH", 2, 3, R_JSON, NULL},
    {"REGEXP_LIKE", 2, 3, R_BOOL, NULL},    {"REGEXP_SUBSTR", 2, 2, R_TEXT, NULL},
    {"JSON_EXTRACT_PATH_TEXT", 2, 1000, R_TEXT, NULL},
    {"JSONB_EXTRACT_PATH_TEXT", 2, 1000, R_TEXT, "JSON_EXTRACT_PATH_TEXT"},
    {"JSON_EXTRACT_PATH", 2, 1000, R_JSON, NULL},
    {"JSONB_EXTRACT_PATH", 2, 1000, R_JSON, "JSON_EXTRACT_PATH"},
    {"JSON_ARRAY_LENGTH", 1, 1, R_INT, NULL},
    {"JSONB_ARRAY_LENGTH", 1, 1, R_INT, "JSON_ARRAY_LENGTH"},
    {"JSON_TYPEOF", 1, 1, R_TEXT, NULL},    {"JSONB_TYPEOF", 1, 1, R_TEXT, "JSON_TYPEOF"},
};

static int need_numbers(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    for (int i = 0; i < e->nargs; i++) {
        ss_coltype_t t = e->args[i]->type;
        if (ss__is_unknown_lit(e->args[i])) {
            int rc = ss__coerce(cc, a->args->items[i], &e->args[i], SS_COL_REAL, e->func);
            if (rc)
                return rc;
        } else if (!ss__is_num_type(t)) {
            const ss_ast_expr_t *x = a->args->items[i];
            return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s needs a number, got %s",
                             x->span.line, x->span.col, e->func, tname(t));
        }
    }
    return SS_OK;
}

/* String functions take text, as in PostgreSQL (lower(integer) does not exist): their first
 * argument must not be a number, a boolean or JSON. CONCAT/CONCAT_WS take anything. */
static int need_text(const ss__cctx_t *cc, const ss_ast_expr_t *a, const struct scalar_fn *fn, const ss_expr_t *e)
{
    static const char *const text_fns[] = {"LOWER", "UPPER", "LENGTH", "CHAR_LENGTH", "CHARACTER_LENGTH", "SUBSTR",
                                           "SUBSTRING", "TRIM", "BTRIM", "LTRIM", "RTRIM", "REPLACE", "POSITION",
                                           "STRPOS", "LEFT", "RIGHT", "LPAD", "RPAD", "SPLIT_PART", "REVERSE",
                                           "INITCAP", "REPEAT", "REGEXP_REPLACE", "REGEXP_MATCH", "REGEXP_LIKE",
                                           "REGEXP_SUBSTR"};
    int is_text_fn = 0;
    for (size_t i = 0; i < sizeof text_fns / sizeof *text_fns; i++)
        is_text_fn |= !strcmp(fn->name, text_fns[i]);
    ss_coltype_t t = e->nargs ? e->args[0]->type : SS_COL_TEXT;
    if (!is_text_fn || t == SS_COL_TEXT || t == SS_COL_ANY)
        return SS_OK;
    char lower[32];
    size_t k = 0;
    for (; fn->name[k] && k < sizeof lower - 1; k++)
        lower[k] = (char)(fn->name[k] >= 'A' && fn->name[k] <= 'Z' ? fn->name[k] + 32 : fn->name[k]);
    lower[k] = 0;
    return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC,
                     "%d:%d: function %s(%s) does not exist (it takes text; cast the argument: %s(x::TEXT))",
                     a->span.line, a->span.col, lower, tname(t), fn->name);
}

static int func_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, const struct scalar_fn *fn, ss_expr_t *e)
{
    ss_coltype_t t0 = e->nargs ? e->args[0]->type : SS_COL_ANY;
    int rc = need_text(cc, a, fn, e);
    if (rc)
        return rc;
    switch (fn->r) {
    case R_TEXT: e->type = SS_COL_TEXT; break;
    case R_INT: e->type = SS_COL_INT; break;
    case R_REAL: e->type = SS_COL_REAL; break;
    case R_BOOL: e->type = SS_COL_BOOL; break;
    case R_JSON: e->type = SS_COL_JSON; break;
    case R_COMMON:
        return ss__resolve_common(cc, e->args, (const ss_ast_expr_t *const *)a->args->items, e->nargs, fn->name,
                                  &e->type);
    case R_SAME:
        if ((rc = need_numbers(cc, a, e)))
            return rc;
        if (e->nargs == 2)
            return ss__resolve_common(cc, e->args, (const ss_ast_expr_t *const *)a->args->items, 2, fn->name,
                                      &e->type);
        e->type = e->args[0]->type == SS_COL_BOOL ? SS_COL_INT : e->args[0]->type;
        break;
    case R_FLOOR:
        if ((rc = need_numbers(cc, a, e)))
            return rc;
        e->type = e->args[0]->type == SS_COL_NUMERIC ? SS_COL_NUMERIC : SS_COL_REAL;
        break;
    case R_ROUND:
        if ((rc = need_numbers(cc, a, e)))
            return rc;
        t0 = e->args[0]->type;
        if (e->nargs == 1)
            e->type = t0 == SS_COL_NUMERIC ? SS_COL_NUMERIC : SS_COL_REAL;
        else
            e->type = t0 == SS_COL_REAL || t0 == SS_COL_ANY ? SS_COL_REAL : SS_COL_NUMERIC;
        if (e->type == SS_COL_NUMERIC)
            rc = ss__coerce(cc, a->args->items[0], &e->args[0], SS_COL_NUMERIC, fn->name);
        break;
    case R_MATH:
        if ((rc = need_numbers(cc, a, e)))
            return rc;
        e->type = SS_COL_REAL;
        break;
    }
    if (!rc && !strncmp(e->func, "JSON_", 5) && e->nargs) /* the document: a json value or json text */
        rc = ss__coerce(cc, a->args->items[0], &e->args[0], SS_COL_JSON, fn->name);
    return rc;
}

int ss__compile_func(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e)
{
    const struct scalar_fn *fn = NULL;
    for (size_t i = 0; i < SS_ARRAY_LEN(funcs) && !fn; i++)
        if (ss_strcaseeq(a->name, funcs[i].name))
            fn = &funcs[i];
    if (!fn) {
        const char *cands[SS_ARRAY_LEN(funcs) + 5] = {"COUNT", "SUM", "MIN", "MAX", "AVG"};
        for (size_t i = 0; i < SS_ARRAY_LEN(funcs); i++)
            cands[5 + i] = funcs[i].name;
        const char *best = ss_suggest(a->name, cands, (int)SS_ARRAY_LEN(cands));
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: unknown function %s%s%s%s",
                         a->span.line, a->span.col, a->name, best ? " (did you mean " : "",
                         best ? best : "", best ? "?)" : "");
    }
    int nargs = a->args ? a->args->n : 0;
    if (nargs < fn->lo || nargs > fn->hi) {
        char want[48];
        if (fn->lo == fn->hi)
            snprintf(want, sizeof want, "%d argument%s", fn->lo, fn->lo == 1 ? "" : "s");
        else if (fn->hi >= 1000)
            snprintf(want, sizeof want, "at least %d argument%s", fn->lo, fn->lo == 1 ? "" : "s");
        else
            snprintf(want, sizeof want, "%d to %d arguments", fn->lo, fn->hi);
        return ss_seterr(cc->err, cc->errsz, SS_ERR_SEMANTIC, "%d:%d: %s takes %s, not %d", a->span.line,
                         a->span.col, fn->name, want, nargs);
    }
    if (!(e->func = ss_strdup(fn->alias ? fn->alias : fn->name)))
        return oom(cc);
    if (nargs && !(e->args = calloc((size_t)nargs, sizeof *e->args)))
        return oom(cc);
    for (int i = 0; i < nargs; i++) {
        int rc = ss__compile(cc, a->args->items[i], &e->args[i]);
        if (rc)
            return rc;
        e->nargs = i + 1;
    }
    e->sline = a->span.line;
    e->scol = a->span.col;
    return func_type(cc, a, fn, e);
}
