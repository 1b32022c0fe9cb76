/*
 * expr.c — evaluation and rendering of compiled scalar expressions
 * (ss_expr_eval, ss_expr_to_sql from ss_plan.h) with SQLite-compatible
 * semantics: NULL propagates, AND/OR are three-valued, comparisons yield INT
 * 0/1 (numbers compare numerically; a text that is entirely a number is
 * compared as that number against a numeric operand, like a NUMERIC column),
 * integer arithmetic overflows to REAL, division or modulo by zero is NULL,
 * text in arithmetic is read as its numeric prefix, || concatenates text forms,
 * LIKE matches % and _ case-insensitively for ASCII. Scalar functions: LOWER
 * UPPER LENGTH ABS COALESCE IFNULL NULLIF SUBSTR ROUND TRIM LTRIM RTRIM REPLACE.
 * Text results borrow from the row/expression or are malloc'd into *owned.
 */
#include "expr_int.h"

#include "ss_json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- conversions ---- */

/* SQLite's text form of a REAL: %.15g, with ".0" added when it looks integral. */
void ss__x_real_text(double r, char *buf, size_t n)
{
    if (isnan(r)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(r)) {
        snprintf(buf, n, r < 0 ? "-Inf" : "Inf");
        return;
    }
    char tmp[64];
    if (r == 0.0)
        r = 0.0; /* SQLite prints -0.0 as 0.0 */
    snprintf(tmp, sizeof tmp, "%.15g", r);
    if (!strchr(tmp, '.') && !strchr(tmp, 'n') && !strchr(tmp, 'N')) {
        char *e = strchr(tmp, 'e');
        if (e) {
            size_t pre = (size_t)(e - tmp);
            ss_buf_t b = SS_BUF_INIT;
            ss_buf_printf(&b, "%.*s.0%s", (int)pre, tmp, e);
            snprintf(buf, n, "%s", ss_buf_cstr(&b));
            ss_buf_free(&b);
            return;
        }
        strcat(tmp, ".0");
    }
    snprintf(buf, n, "%s", tmp);
}

/* Text form of v into *owned (or borrowed for text). Returns pointer and length. */
int ss__x_text(const ss_value_t *v, const char **s, size_t *n, char **owned)
{
    char buf[64];
    *owned = NULL;
    switch (v->t) {
    case SS_TEXT: case SS_NUM: case SS_JSON:
        *s = v->u.str.s ? v->u.str.s : "";
        *n = v->u.str.n;
        return SS_OK;
    case SS_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); break;
    case SS_REAL: ss__x_real_text(v->u.r, buf, sizeof buf); break;
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: {
        ss_buf_t b = SS_BUF_INIT;
        if (ss_val_to_text(v, &b)) {
            ss_buf_free(&b);
            return SS_ERR_NOMEM;
        }
        *n = b.len;
        *s = *owned = ss_buf_take(&b);
        return SS_OK;
    }
    default: buf[0] = 0; break;
    }
    *owned = ss_strdup(buf);
    if (!*owned)
        return SS_ERR_NOMEM;
    *s = *owned;
    *n = strlen(buf);
    return SS_OK;
}

/* Numeric prefix of a text, as SQLite reads text in arithmetic ("12ab" -> 12, "x" -> 0; decimal
 * only: "inf", "nan" and "0x10" read as 0). */
static ss_value_t text_num(const char *s, size_t n)
{
    ss_value_t v;
    ss_num_parse(s, n, &v, NULL);
    return v;
}

/* 1 if the whole text (modulo surrounding blanks) is a decimal number; stores it in out. */
int ss__x_text_is_num(const ss_value_t *v, ss_value_t *out)
{
    size_t n = v->u.str.n, end = ss_num_parse(v->u.str.s, n, out, NULL);
    if (!end)
        return 0;
    while (end < n && isspace((unsigned char)v->u.str.s[end]))
        end++;
    return end == n;
}

ss_value_t ss__x_num(const ss_value_t *v)
{
    if (v->t == SS_TEXT)
        return text_num(v->u.str.s ? v->u.str.s : "", v->u.str.n);
    return *v;
}

double ss__x_numd(const ss_value_t *v)
{
    return v->t == SS_INT ? (double)v->u.i : v->t == SS_NUM ? strtod(v->u.str.s, NULL) : v->u.r;
}

int ss__x_fail(const ss_expr_t *e, char *err, size_t errsz, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e && e->sline > 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: %s", e->sline, e->scol, msg);
    return ss_seterr(err, errsz, SS_ERR_INVALID, "%s", msg);
}

int ss__x_take_buf(ss_value_t *out, char **owned, ss_buf_t *b, ss_vtype_t t)
{
    size_t n = b->len;
    int rc = ss__x_take(out, owned, ss_buf_take(b), n);
    out->t = rc ? SS_NULL : t;
    return rc;
}

/* ---- comparison and arithmetic ---- */

int ss__x_cmp(const ss_value_t *a, const ss_value_t *b)
{
    ss_value_t x = *a, y = *b, t;
    if (ss_vtype_is_time(a->t) && ss_vtype_is_time(b->t)) { /* instants, whatever their type */
        int64_t p = ss_val_time_us(a), q = ss_val_time_us(b);
        return p < q ? -1 : p > q;
    }
    if (a->t == SS_IVL && b->t == SS_IVL)
        return ss_interval_cmp(&a->u.iv, &b->u.iv); /* '1 mon' = '30 days', as PostgreSQL says */
    if ((a->t == SS_NUM && (b->t == SS_NUM || b->t == SS_INT || b->t == SS_REAL)) ||
        (b->t == SS_NUM && (a->t == SS_INT || a->t == SS_REAL)))
        return ss_val_cmp_numeric(a, b); /* 1.0 = 1.00 */
    int an = a->t == SS_INT || a->t == SS_REAL, bn = b->t == SS_INT || b->t == SS_REAL;
    if (an && b->t == SS_TEXT && ss__x_text_is_num(b, &t))
        y = t, bn = 1;
    else if (bn && a->t == SS_TEXT && ss__x_text_is_num(a, &t))
        x = t, an = 1;
    if (an && bn) {
        if (x.t == SS_INT && y.t == SS_INT)
            return x.u.i < y.u.i ? -1 : x.u.i > y.u.i;
        double p = ss__x_numd(&x), q = ss__x_numd(&y);
        return p < q ? -1 : p > q;
    }
    return ss_val_cmp(&x, &y);
}

static int arith(const ss_expr_t *e, ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b, ss_value_t *out,
                 char **owned, char *err, size_t errsz)
{
    if (ss_vtype_is_time(a->t) || ss_vtype_is_time(b->t) || a->t == SS_IVL || b->t == SS_IVL)
        return ss__x_time_arith(e, op, a, b, out, err, errsz);
    if (a->t == SS_NUM || b->t == SS_NUM)
        return ss__x_num_arith(e, op, a, b, out, owned, err, errsz);
    ss_value_t x = ss__x_num(a), y = ss__x_num(b);
    if (x.t == SS_INT && y.t == SS_INT) {
        int64_t p = x.u.i, q = y.u.i, r = 0;
        int ovf = 0;
        switch (op) {
        case SS_OP_ADD: ovf = __builtin_add_overflow(p, q, &r); break;
        case SS_OP_SUB: ovf = __builtin_sub_overflow(p, q, &r); break;
        case SS_OP_MUL: ovf = __builtin_mul_overflow(p, q, &r); break;
        case SS_OP_DIV:
            if (q == 0)
                return ss__x_fail(e, err, errsz, "division by zero");
            ovf = p == INT64_MIN && q == -1;
            r = ovf ? 0 : p / q;
            break;
        case SS_OP_MOD:
            if (q == 0)
                return ss__x_fail(e, err, errsz, "division by zero");
            r = q == -1 ? 0 : p % q;
            break;
        default: return EMSG(SS_ERR_INTERNAL, "bad arithmetic operator %d", (int)op);
        }
        if (ovf)
            return ss__x_fail(e, err, errsz, "bigint out of range");
        *out = ss_val_int(r);
        return SS_OK;
    }
    double p = ss__x_numd(&x), q = ss__x_numd(&y), r;
    switch (op) {
    case SS_OP_ADD: r = p + q; break;
    case SS_OP_SUB: r = p - q; break;
    case SS_OP_MUL: r = p * q; break;
    case SS_OP_DIV:
        if (q == 0.0)
            return ss__x_fail(e, err, errsz, "division by zero");
        r = p / q;
        break;
    case SS_OP_MOD: /* as SQLite: both operands truncated to integers, a REAL result */
        if (fabs(p) < 9.2e18 && fabs(q) < 9.2e18) {
            int64_t ip = (int64_t)p, iq = (int64_t)q;
            if (iq == 0)
                return ss__x_fail(e, err, errsz, "division by zero");
            r = (double)(iq == -1 ? 0 : ip % iq);
        } else
            r = fmod(p, q);
        break;
    default: return EMSG(SS_ERR_INTERNAL, "bad arithmetic operator %d", (int)op);
    }
    if (!isfinite(r) && isfinite(p) && isfinite(q))
        return ss__x_fail(e, err, errsz, "value out of range: %s", isnan(r) ? "not a number" : "overflow");
    *out = ss_val_real(r);
    return SS_OK;
}

/* ---- evaluation ---- */


/* Evaluates a child, keeping its owned text in *co (freed by the caller). */
int ss__x_child(const ss_expr_t *e, int i, const ss_row_t *row, ss_value_t *v, char **co, char *err,
                 size_t errsz)
{
    *co = NULL;
    if (i >= e->nargs || !e->args[i])
        return EMSG(SS_ERR_INTERNAL, "expression is missing operand %d", i + 1);
    return ss_expr_eval(e->args[i], row, v, co, err, errsz);
}

int ss__x_take(ss_value_t *out, char **owned, char *s, size_t n)
{
    if (!s)
        return SS_ERR_NOMEM;
    *owned = s;
    *out = ss_val_text_ref(s, n);
    return SS_OK;
}

static int eval_logic(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char *err, size_t errsz)
{
    /* three-valued: 0 = false, 1 = true, 2 = unknown */
    int res[2];
    for (int i = 0; i < 2; i++) {
        ss_value_t v;
        char *co;
        int rc = ss__x_child(e, i, row, &v, &co, err, errsz);
        res[i] = v.t == SS_NULL ? 2 : ss_val_truthy(&v);
        free(co);
        if (rc)
            return rc;
        if (i == 0 && e->op == SS_OP_AND && res[0] == 0) {
            *out = ss_val_int(0);
            return SS_OK;
        }
        if (i == 0 && e->op == SS_OP_OR && res[0] == 1) {
            *out = ss_val_int(1);
            return SS_OK;
        }
    }
    int r;
    if (e->op == SS_OP_AND)
        r = (res[0] == 0 || res[1] == 0) ? 0 : (res[0] == 2 || res[1] == 2) ? 2 : 1;
    else
        r = (res[0] == 1 || res[1] == 1) ? 1 : (res[0] == 2 || res[1] == 2) ? 2 : 0;
    *out = r == 2 ? ss_val_null() : ss_val_int(r);
    return SS_OK;
}

/* PostgreSQL's LIKE: % and _ (one UTF-8 character), an escape character (default backslash; esc < 0
 * for none), case-sensitive unless fold (ILIKE, ASCII letters). Backtracking on the last %. */
int ss__x_like_esc(const char *p, size_t pn, const char *s, size_t sn, int esc, int fold)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '%') {
            while (pi < pn && p[pi] == '%')
                pi++;
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < pn) {
            unsigned char pc = (unsigned char)p[pi], sc = (unsigned char)s[si];
            size_t plen = 1;
            if (esc >= 0 && pc == (unsigned char)esc && pi + 1 < pn) {
                pc = (unsigned char)p[pi + 1];
                plen = 2;
            } else if (pc == '_') { /* one character */
                size_t k = si + 1;
                while (k < sn && ((unsigned char)s[k] & 0xC0) == 0x80)
                    k++;
                pi++;
                si = k;
                continue;
            }
            int ok = fold ? tolower(pc) == tolower(sc) : pc == sc;
            if (ok) {
                pi += plen;
                si++;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return 0;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '%')
        pi++;
    return pi == pn;
}

static int eval_like(const ss_expr_t *e, const ss_value_t *a, const ss_value_t *b, const ss_row_t *row,
                     ss_value_t *out, char *err, size_t errsz)
{
    const char *s1, *s2;
    size_t n1, n2;
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    int esc = '\\';
    int rc = ss__x_text(a, &s1, &n1, &t1);
    if (!rc)
        rc = ss__x_text(b, &s2, &n2, &t2);
    if (!rc && e->nargs > 2) {
        ss_value_t c;
        const char *s3;
        size_t n3;
        char *co = NULL;
        rc = ss__x_child(e, 2, row, &c, &co, err, errsz);
        if (!rc && c.t == SS_NULL)
            esc = -2; /* NULL escape: NULL result */
        else if (!rc && !(rc = ss__x_text(&c, &s3, &n3, &t3))) {
            if (n3 > 1)
                rc = ss__x_fail(e, err, errsz, "invalid escape string: it must be empty or one character");
            esc = n3 ? (unsigned char)s3[0] : -1;
        }
        free(co);
    }
    if (!rc)
        *out = esc == -2 ? ss_val_null() : ss_val_int(ss__x_like_esc(s2, n2, s1, n1, esc, e->op == SS_OP_ILIKE));
    free(t1);
    free(t2);
    free(t3);
    return rc;
}

/* j -> key / j -> index, j ->> key / index (PostgreSQL: a missing member or a wrong kind is NULL). */
static int eval_json_get(const ss_expr_t *e, const ss_value_t *a, const ss_value_t *b, ss_value_t *out,
                         char **owned, char *err, size_t errsz)
{
    const char *vs = NULL;
    size_t vn = 0;
    int found;
    if (a->t != SS_JSON && a->t != SS_TEXT)
        return ss__x_fail(e, err, errsz, "%s needs a json value", e->op == SS_OP_JSON_GET ? "->" : "->>");
    if (b->t == SS_INT)
        found = ss_jtext_get_index(a->u.str.s, a->u.str.n, b->u.i, &vs, &vn);
    else {
        const char *k;
        size_t kn;
        char *tk = NULL;
        if (ss__x_text(b, &k, &kn, &tk))
            return EMSG(SS_ERR_NOMEM, "out of memory");
        found = ss_jtext_get_key(a->u.str.s, a->u.str.n, k, kn, &vs, &vn);
        free(tk);
    }
    *out = ss_val_null();
    if (!found)
        return SS_OK;
    ss_buf_t buf = SS_BUF_INIT;
    int is_null = 0, rc;
    if (e->op == SS_OP_JSON_GET)
        rc = ss_buf_append(&buf, vs, vn);
    else
        rc = ss_jtext_to_text(vs, vn, &buf, &is_null);
    if (rc || is_null) {
        ss_buf_free(&buf);
        return rc ? EMSG(SS_ERR_NOMEM, "out of memory") : SS_OK;
    }
    if ((rc = ss__x_take_buf(out, owned, &buf, e->op == SS_OP_JSON_GET ? SS_JSON : SS_TEXT)))
        return EMSG(SS_ERR_NOMEM, "out of memory");
    return SS_OK;
}

static int eval_binary(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                       char *err, size_t errsz)
{
    if (e->op == SS_OP_AND || e->op == SS_OP_OR)
        return eval_logic(e, row, out, err, errsz);
    ss_value_t a, b;
    char *ca = NULL, *cb = NULL;
    int rc = ss__x_child(e, 0, row, &a, &ca, err, errsz);
    if (!rc)
        rc = ss__x_child(e, 1, row, &b, &cb, err, errsz);
    if (rc)
        goto done;
    if (e->op == SS_OP_DISTINCT || e->op == SS_OP_NOT_DISTINCT) { /* NULLs compare as values */
        int same = a.t == SS_NULL || b.t == SS_NULL ? a.t == b.t : ss__x_cmp(&a, &b) == 0;
        *out = ss_val_int(same == (e->op == SS_OP_NOT_DISTINCT));
        goto done;
    }
    if (a.t == SS_NULL || b.t == SS_NULL) {
        *out = ss_val_null();
        goto done;
    }
    switch (e->op) {
    case SS_OP_EQ: *out = ss_val_int(ss__x_cmp(&a, &b) == 0); break;
    case SS_OP_NE: *out = ss_val_int(ss__x_cmp(&a, &b) != 0); break;
    case SS_OP_LT: *out = ss_val_int(ss__x_cmp(&a, &b) < 0); break;
    case SS_OP_LE: *out = ss_val_int(ss__x_cmp(&a, &b) <= 0); break;
    case SS_OP_GT: *out = ss_val_int(ss__x_cmp(&a, &b) > 0); break;
    case SS_OP_GE: *out = ss_val_int(ss__x_cmp(&a, &b) >= 0); break;
    case SS_OP_ADD: case SS_OP_SUB: case SS_OP_MUL: case SS_OP_DIV: case SS_OP_MOD:
        rc = arith(e, e->op, &a, &b, out, owned, err, errsz);
        break;
    case SS_OP_LIKE: case SS_OP_ILIKE:
        rc = eval_like(e, &a, &b, row, out, err, errsz);
        break;
    case SS_OP_JSON_GET: case SS_OP_JSON_TEXT:
        rc = eval_json_get(e, &a, &b, out, owned, err, errsz);
        break;
    case SS_OP_CONCAT: {
        const char *s1, *s2;
        size_t n1, n2;
        char *t1 = NULL, *t2 = NULL;
        rc = ss__x_text(&a, &s1, &n1, &t1);
        if (!rc)
            rc = ss__x_text(&b, &s2, &n2, &t2);
        if (!rc) {
            char *s = malloc(n1 + n2 + 1);
            if (s) {
                memcpy(s, s1, n1);
                memcpy(s + n1, s2, n2);
                s[n1 + n2] = 0;
            }
            rc = ss__x_take(out, owned, s, n1 + n2);
        }
        free(t1);
        free(t2);
        if (rc)
            EMSG(rc, "out of memory");
        break;
    }
    default:
        rc = EMSG(SS_ERR_INTERNAL, "unknown binary operator %d", (int)e->op);
    }
done:
    free(ca);
    free(cb);
    return rc;
}

static int eval_unary(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                      char *err, size_t errsz)
{
    ss_value_t a;
    char *ca;
    int rc = ss__x_child(e, 0, row, &a, &ca, err, errsz);
    if (rc || a.t == SS_NULL) {
        free(ca);
        *out = ss_val_null();
        return rc;
    }
    switch (e->op) {
    case SS_OP_NOT: *out = ss_val_int(!ss_val_truthy(&a)); break;
    case SS_OP_NEG: {
        if (a.t == SS_IVL) {
            rc = ss__x_time_neg(e, &a, out, err, errsz);
            break;
        }
        ss_value_t x = ss__x_num(&a);
        if (x.t == SS_NUM) { /* canonical decimal text: flip its sign (zero has none) */
            const char *t = x.u.str.s;
            size_t n = x.u.str.n;
            int zero = strspn(t, "-0.") == n;
            char *r = zero ? ss_strndup(t, n) : t[0] == '-' ? ss_strndup(t + 1, n - 1) : ss_sprintf("-%s", t);
            free(ca);
            if (!r)
                return EMSG(SS_ERR_NOMEM, "out of memory");
            *owned = r;
            *out = ss_val_num_ref(r, strlen(r));
            return SS_OK;
        }
        if (x.t == SS_INT)
            *out = x.u.i == INT64_MIN ? ss_val_real(-(double)x.u.i) : ss_val_int(-x.u.i);
        else
            *out = ss_val_real(-x.u.r);
        break;
    }
    case SS_OP_NONE: /* unary plus: the operand unchanged */
        *out = a;
        *owned = ca;
        return SS_OK;
    default: rc = EMSG(SS_ERR_INTERNAL, "unknown unary operator %d", (int)e->op);
    }
    free(ca);
    return rc;
}

/* CASE: the first WHEN that is true gives its THEN (later branches are not evaluated). */
static int eval_case(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned, char *err,
                     size_t errsz)
{
    int i = 0;
    for (; i + 1 < e->nargs; i += 2) {
        ss_value_t c;
        char *co;
        int rc = ss__x_child(e, i, row, &c, &co, err, errsz);
        int yes = !rc && c.t != SS_NULL && ss_val_truthy(&c);
        free(co);
        if (rc)
            return rc;
        if (yes)
            return ss__x_child(e, i + 1, row, out, owned, err, errsz);
    }
    if (i < e->nargs) /* ELSE */
        return ss__x_child(e, i, row, out, owned, err, errsz);
    *out = ss_val_null();
    return SS_OK;
}

/* x IN (a, b, ...): true on a match; NULL when no match but x or an element is NULL. */
static int eval_in(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char *err, size_t errsz)
{
    ss_value_t x;
    char *cx;
    int rc = ss__x_child(e, 0, row, &x, &cx, err, errsz);
    int found = 0, nulls = x.t == SS_NULL;
    for (int i = 1; !rc && !found && x.t != SS_NULL && i < e->nargs; i++) {
        ss_value_t v;
        char *cv;
        rc = ss__x_child(e, i, row, &v, &cv, err, errsz);
        if (!rc && v.t == SS_NULL)
            nulls = 1;
        else if (!rc)
            found = ss__x_cmp(&x, &v) == 0;
        free(cv);
    }
    free(cx);
    if (rc)
        return rc;
    *out = found ? ss_val_int(!e->negate) : nulls ? ss_val_null() : ss_val_int(e->negate);
    return SS_OK;
}

int ss_expr_eval(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                 char *err, size_t errsz)
{
    *owned = NULL;
    *out = ss_val_null();
    if (!e)
        return EMSG(SS_ERR_INTERNAL, "NULL expression");
    switch (e->kind) {
    case SS_EX_COL:
        if (!row || e->col < 0 || e->col >= row->n)
            return EMSG(SS_ERR_INTERNAL, "column %d out of range (row has %d)", e->col, row ? row->n : 0);
        *out = row->v[e->col];
        return SS_OK;
    case SS_EX_LIT:
        *out = e->lit;
        return SS_OK;
    case SS_EX_UNARY: return eval_unary(e, row, out, owned, err, errsz);
    case SS_EX_BINARY: return eval_binary(e, row, out, owned, err, errsz);
    case SS_EX_IS_NULL: {
        ss_value_t a;
        char *ca;
        int rc = ss__x_child(e, 0, row, &a, &ca, err, errsz);
        free(ca);
        *out = ss_val_int((a.t == SS_NULL) != (e->negate != 0));
        return rc;
    }
    case SS_EX_FUNC: return ss__x_func(e, row, out, owned, err, errsz);
    case SS_EX_CASE: return eval_case(e, row, out, owned, err, errsz);
    case SS_EX_IN: return eval_in(e, row, out, err, errsz);
    case SS_EX_CAST: {
        ss_value_t a;
        char *ca;
        int rc = ss__x_child(e, 0, row, &a, &ca, err, errsz);
        if (!rc)
            rc = ss__x_cast(e, &a, out, owned, err, errsz);
        free(ca);
        return rc;
    }
    }
    return EMSG(SS_ERR_INTERNAL, "unknown expression kind %d", (int)e->kind);
}

/* ---- rendering ---- */

static const char *op_sql(ss_ast_op_t op)
{
    if (op == SS_OP_NE)
        return "<>"; /* ss_ast_op_name's "!=" is not standard SQL */
    return op == SS_OP_NONE ? "?" : ss_ast_op_name(op);
}

static int plain_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int lit_sql(const ss_value_t *v, ss_buf_t *out)
{
    char buf[64];
    switch (v->t) {
    case SS_NULL: return ss_buf_puts(out, "NULL");
    case SS_INT: return ss_buf_printf(out, "%lld", (long long)v->u.i);
    case SS_REAL:
        if (!isfinite(v->u.r))
            return ss_buf_puts(out, isnan(v->u.r) ? "NULL" : v->u.r > 0 ? "9e999" : "-9e999");
        snprintf(buf, sizeof buf, "%.17g", v->u.r);
        if (!strpbrk(buf, ".e"))
            strcat(buf, ".0");
        return ss_buf_puts(out, buf);
    case SS_NUM:
        return ss_buf_printf(out, "CAST('%.*s' AS NUMERIC)", (int)v->u.str.n, v->u.str.s);
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: {
        int rc = ss_buf_puts(out, v->t == SS_TS ? "TIMESTAMP '" : v->t == SS_TSTZ ? "TIMESTAMPTZ '"
                                  : v->t == SS_DATE ? "DATE '" : "INTERVAL '");
        rc = rc ? rc : ss_val_to_text(v, out);
        return rc ? rc : ss_buf_putc(out, '\'');
    }
    case SS_JSON:
    case SS_TEXT: {
        int rc = ss_buf_putc(out, '\'');
        for (size_t i = 0; i < v->u.str.n && !rc; i++)
            rc = v->u.str.s[i] == '\'' ? ss_buf_puts(out, "''") : ss_buf_putc(out, v->u.str.s[i]);
        return rc ? rc : ss_buf_putc(out, '\'');
    }
    }
    return SS_ERR_INTERNAL;
}

int ss_expr_to_sql(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *out)
{
    if (!e)
        return ss_buf_puts(out, "NULL");
    int rc = SS_OK;
    switch (e->kind) {
    case SS_EX_COL: {
        const char *nm = in && e->col >= 0 && e->col < in->n ? in->names[e->col] : NULL;
        if (!nm)
            return ss_buf_printf(out, "$%d", e->col);
        if (plain_ident(nm))
            return ss_buf_puts(out, nm);
        rc = ss_buf_putc(out, '"');
        for (const char *p = nm; *p && !rc; p++)
            rc = *p == '"' ? ss_buf_puts(out, "\"\"") : ss_buf_putc(out, *p);
        return rc ? rc : ss_buf_putc(out, '"');
    }
    case SS_EX_LIT: return lit_sql(&e->lit, out);
    case SS_EX_UNARY:
        if (e->op == SS_OP_NOT)
            rc = ss_buf_puts(out, "(NOT ");
        else if (e->op == SS_OP_NEG)
            rc = ss_buf_puts(out, "(- ");
        else
            rc = ss_buf_puts(out, "(+ ");
        if (!rc)
            rc = ss_expr_to_sql(e->nargs > 0 ? e->args[0] : NULL, in, out);
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_EX_BINARY:
        rc = ss_buf_putc(out, '(');
        if (!rc)
            rc = ss_expr_to_sql(e->nargs > 0 ? e->args[0] : NULL, in, out);
        if (!rc)
            rc = ss_buf_printf(out, " %s ", op_sql(e->op));
        if (!rc)
            rc = ss_expr_to_sql(e->nargs > 1 ? e->args[1] : NULL, in, out);
        if (!rc && e->nargs > 2) {
            rc = ss_buf_puts(out, " ESCAPE ");
            rc = rc ? rc : ss_expr_to_sql(e->args[2], in, out);
        }
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_EX_IS_NULL:
        rc = ss_buf_putc(out, '(');
        if (!rc)
            rc = ss_expr_to_sql(e->nargs > 0 ? e->args[0] : NULL, in, out);
        if (!rc)
            rc = ss_buf_puts(out, e->negate ? " IS NOT NULL)" : " IS NULL)");
        return rc;
    case SS_EX_CASE:
        rc = ss_buf_puts(out, "(CASE");
        for (int i = 0; i + 1 < e->nargs && !rc; i += 2) {
            rc = ss_buf_puts(out, " WHEN ");
            rc = rc ? rc : ss_expr_to_sql(e->args[i], in, out);
            rc = rc ? rc : ss_buf_puts(out, " THEN ");
            rc = rc ? rc : ss_expr_to_sql(e->args[i + 1], in, out);
        }
        if (!rc && e->nargs % 2) {
            rc = ss_buf_puts(out, " ELSE ");
            rc = rc ? rc : ss_expr_to_sql(e->args[e->nargs - 1], in, out);
        }
        return rc ? rc : ss_buf_puts(out, " END)");
    case SS_EX_CAST:
        rc = ss_buf_puts(out, "CAST(");
        rc = rc ? rc : ss_expr_to_sql(e->nargs ? e->args[0] : NULL, in, out);
        rc = rc ? rc : ss_buf_puts(out, " AS ");
        rc = rc ? rc : ss_type_to_sql(e->type, e->typmod, out);
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_EX_IN:
        rc = ss_buf_putc(out, '(');
        rc = rc ? rc : ss_expr_to_sql(e->nargs ? e->args[0] : NULL, in, out);
        rc = rc ? rc : ss_buf_puts(out, e->negate ? " NOT IN (" : " IN (");
        for (int i = 1; i < e->nargs && !rc; i++) {
            rc = i > 1 ? ss_buf_puts(out, ", ") : 0;
            rc = rc ? rc : ss_expr_to_sql(e->args[i], in, out);
        }
        return rc ? rc : ss_buf_puts(out, "))");
    case SS_EX_FUNC:
        rc = ss_buf_printf(out, "%s(", e->func ? e->func : "?");
        for (int i = 0; i < e->nargs && !rc; i++) {
            if (i)
                rc = ss_buf_puts(out, ", ");
            if (!rc)
                rc = ss_expr_to_sql(e->args[i], in, out);
        }
        return rc ? rc : ss_buf_putc(out, ')');
    }
    return SS_ERR_INTERNAL;
}
