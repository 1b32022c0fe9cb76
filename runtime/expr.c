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
#include "ss_plan.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMSG(code, ...) ss_seterr(err, errsz, code, __VA_ARGS__)

/* ---- conversions ---- */

/* SQLite's text form of a REAL: %.15g, with ".0" added when it looks integral. */
static void real_text(double r, char *buf, size_t n)
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
static int to_text(const ss_value_t *v, const char **s, size_t *n, char **owned)
{
    char buf[64];
    *owned = NULL;
    switch (v->t) {
    case SS_TEXT:
        *s = v->u.str.s ? v->u.str.s : "";
        *n = v->u.str.n;
        return SS_OK;
    case SS_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); break;
    case SS_REAL: real_text(v->u.r, buf, sizeof buf); break;
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
static int text_is_num(const ss_value_t *v, ss_value_t *out)
{
    size_t n = v->u.str.n, end = ss_num_parse(v->u.str.s, n, out, NULL);
    if (!end)
        return 0;
    while (end < n && isspace((unsigned char)v->u.str.s[end]))
        end++;
    return end == n;
}

static ss_value_t to_num(const ss_value_t *v)
{
    if (v->t == SS_TEXT)
        return text_num(v->u.str.s ? v->u.str.s : "", v->u.str.n);
    return *v;
}

static double num_d(const ss_value_t *v) { return v->t == SS_INT ? (double)v->u.i : v->u.r; }

/* ---- comparison and arithmetic ---- */

static int sql_cmp(const ss_value_t *a, const ss_value_t *b)
{
    ss_value_t x = *a, y = *b, t;
    int an = a->t == SS_INT || a->t == SS_REAL, bn = b->t == SS_INT || b->t == SS_REAL;
    if (an && b->t == SS_TEXT && text_is_num(b, &t))
        y = t, bn = 1;
    else if (bn && a->t == SS_TEXT && text_is_num(a, &t))
        x = t, an = 1;
    if (an && bn) {
        if (x.t == SS_INT && y.t == SS_INT)
            return x.u.i < y.u.i ? -1 : x.u.i > y.u.i;
        double p = num_d(&x), q = num_d(&y);
        return p < q ? -1 : p > q;
    }
    return ss_val_cmp(&x, &y);
}

static int arith_real(ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b, ss_value_t *out);

/* a op b; a REAL result that is not a number (inf - inf, 0 * inf) is NULL, as in SQLite: no NaN
 * value ever exists in semstream. */
static int arith(ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b, ss_value_t *out)
{
    int rc = arith_real(op, a, b, out);
    if (!rc && out->t == SS_REAL && isnan(out->u.r))
        *out = ss_val_null();
    return rc;
}

static int arith_real(ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b, ss_value_t *out)
{
    ss_value_t x = to_num(a), y = to_num(b);
    if (x.t == SS_INT && y.t == SS_INT) {
        int64_t p = x.u.i, q = y.u.i, r;
        switch (op) {
        case SS_OP_ADD:
            if (!__builtin_add_overflow(p, q, &r)) { *out = ss_val_int(r); return SS_OK; }
            break;
        case SS_OP_SUB:
            if (!__builtin_sub_overflow(p, q, &r)) { *out = ss_val_int(r); return SS_OK; }
            break;
        case SS_OP_MUL:
            if (!__builtin_mul_overflow(p, q, &r)) { *out = ss_val_int(r); return SS_OK; }
            break;
        case SS_OP_DIV:
            if (q == 0) { *out = ss_val_null(); return SS_OK; }
            if (!(p == INT64_MIN && q == -1)) { *out = ss_val_int(p / q); return SS_OK; }
            break;
        case SS_OP_MOD:
            if (q == 0) { *out = ss_val_null(); return SS_OK; }
            *out = ss_val_int(q == -1 ? 0 : p % q);
            return SS_OK;
        default: return SS_ERR_INTERNAL;
        }
    }
    double p = num_d(&x), q = num_d(&y);
    switch (op) {
    case SS_OP_ADD: *out = ss_val_real(p + q); return SS_OK;
    case SS_OP_SUB: *out = ss_val_real(p - q); return SS_OK;
    case SS_OP_MUL: *out = ss_val_real(p * q); return SS_OK;
    case SS_OP_DIV:
        *out = q == 0.0 ? ss_val_null() : ss_val_real(p / q);
        return SS_OK;
    case SS_OP_MOD: {
        /* SQLite: both operands truncated to integers, REAL result */
        if (fabs(p) >= 9.2e18 || fabs(q) >= 9.2e18) {
            *out = ss_val_real(fmod(p, q));
            return SS_OK;
        }
        int64_t ip = (int64_t)p, iq = (int64_t)q;
        if (iq == 0) {
            *out = ss_val_null();
            return SS_OK;
        }
        *out = ss_val_real((double)(iq == -1 ? 0 : ip % iq));
        return SS_OK;
    }
    default: return SS_ERR_INTERNAL;
    }
}

/* LIKE with % and _, ASCII case-insensitive (no escape character), like SQLite's default. */
static int like_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '%') {
            star_p = pi++;
            star_s = si;
            continue;
        }
        if (pi < pn) {
            unsigned char pc = (unsigned char)p[pi], sc = (unsigned char)s[si];
            int ok = pc == '_';
            if (pc == '_' && sc >= 0x80) { /* _ matches one UTF-8 character */
                size_t k = si + 1;
                while (k < sn && ((unsigned char)s[k] & 0xC0) == 0x80)
                    k++;
                pi++;
                si = k;
                continue;
            }
            if (!ok)
                ok = tolower(pc) == tolower(sc);
            if (ok) {
                pi++;
                si++;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return 0;
        pi = star_p + 1;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '%')
        pi++;
    return pi == pn;
}

/* ---- evaluation ---- */

static int eval_func(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                     char *err, size_t errsz);

/* Evaluates a child, keeping its owned text in *co (freed by the caller). */
static int child(const ss_expr_t *e, int i, const ss_row_t *row, ss_value_t *v, char **co, char *err,
                 size_t errsz)
{
    *co = NULL;
    if (i >= e->nargs || !e->args[i])
        return EMSG(SS_ERR_INTERNAL, "expression is missing operand %d", i + 1);
    return ss_expr_eval(e->args[i], row, v, co, err, errsz);
}

static int take_text(ss_value_t *out, char **owned, char *s, size_t n)
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
        int rc = child(e, i, row, &v, &co, err, errsz);
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

static int eval_binary(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                       char *err, size_t errsz)
{
    if (e->op == SS_OP_AND || e->op == SS_OP_OR)
        return eval_logic(e, row, out, err, errsz);
    ss_value_t a, b;
    char *ca = NULL, *cb = NULL;
    int rc = child(e, 0, row, &a, &ca, err, errsz);
    if (!rc)
        rc = child(e, 1, row, &b, &cb, err, errsz);
    if (rc)
        goto done;
    if (a.t == SS_NULL || b.t == SS_NULL) {
        *out = ss_val_null();
        goto done;
    }
    switch (e->op) {
    case SS_OP_EQ: *out = ss_val_int(sql_cmp(&a, &b) == 0); break;
    case SS_OP_NE: *out = ss_val_int(sql_cmp(&a, &b) != 0); break;
    case SS_OP_LT: *out = ss_val_int(sql_cmp(&a, &b) < 0); break;
    case SS_OP_LE: *out = ss_val_int(sql_cmp(&a, &b) <= 0); break;
    case SS_OP_GT: *out = ss_val_int(sql_cmp(&a, &b) > 0); break;
    case SS_OP_GE: *out = ss_val_int(sql_cmp(&a, &b) >= 0); break;
    case SS_OP_ADD: case SS_OP_SUB: case SS_OP_MUL: case SS_OP_DIV: case SS_OP_MOD:
        rc = arith(e->op, &a, &b, out);
        if (rc == SS_ERR_INTERNAL)
            EMSG(rc, "bad arithmetic operator %d", (int)e->op);
        break;
    case SS_OP_CONCAT:
    case SS_OP_LIKE: {
        const char *s1, *s2;
        size_t n1, n2;
        char *t1 = NULL, *t2 = NULL;
        rc = to_text(&a, &s1, &n1, &t1);
        if (!rc)
            rc = to_text(&b, &s2, &n2, &t2);
        if (!rc && e->op == SS_OP_LIKE)
            *out = ss_val_int(like_match(s2, n2, s1, n1));
        else if (!rc) {
            char *s = malloc(n1 + n2 + 1);
            if (s) {
                memcpy(s, s1, n1);
                memcpy(s + n1, s2, n2);
                s[n1 + n2] = 0;
            }
            rc = take_text(out, owned, s, n1 + n2);
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
    int rc = child(e, 0, row, &a, &ca, err, errsz);
    if (rc || a.t == SS_NULL) {
        free(ca);
        *out = ss_val_null();
        return rc;
    }
    switch (e->op) {
    case SS_OP_NOT: *out = ss_val_int(!ss_val_truthy(&a)); break;
    case SS_OP_NEG: {
        ss_value_t x = to_num(&a);
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
        int rc = child(e, 0, row, &a, &ca, err, errsz);
        free(ca);
        *out = ss_val_int((a.t == SS_NULL) != (e->negate != 0));
        return rc;
    }
    case SS_EX_FUNC: return eval_func(e, row, out, owned, err, errsz);
    }
    return EMSG(SS_ERR_INTERNAL, "unknown expression kind %d", (int)e->kind);
}

/* ---- functions ---- */

static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Byte offset of the character index ci (clamped to n). */
static size_t utf8_off(const char *s, size_t n, int64_t ci)
{
    size_t i = 0;
    while (ci > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        ci--;
    }
    return i;
}

static int fn_case(const ss_value_t *a, int upper, ss_value_t *out, char **owned)
{
    const char *s;
    size_t n;
    char *t;
    int rc = to_text(a, &s, &n, &t);
    if (rc)
        return rc;
    char *r = malloc(n + 1);
    if (r) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            r[i] = (char)(c < 0x80 ? (upper ? toupper(c) : tolower(c)) : c);
        }
        r[n] = 0;
    }
    free(t);
    return take_text(out, owned, r, n);
}

/* SQLite substr(X, Y, Z) on characters: Y is 1-based, negative counts from the end,
 * negative Z takes characters before Y. */
static int fn_substr(const ss_value_t *a, const ss_value_t *y, const ss_value_t *z, ss_value_t *out,
                     char **owned)
{
    const char *s;
    size_t n;
    char *t;
    int rc = to_text(a, &s, &n, &t);
    if (rc)
        return rc;
    int64_t len = (int64_t)utf8_len(s, n);
    ss_value_t yn = to_num(y);
    int64_t p1 = yn.t == SS_INT ? yn.u.i : (int64_t)yn.u.r;
    int64_t p2 = (int64_t)1 << 40; /* no length: to the end */
    int negz = 0;
    if (z) {
        ss_value_t zn = to_num(z);
        p2 = zn.t == SS_INT ? zn.u.i : (int64_t)zn.u.r;
        if (p2 < 0) {
            p2 = -p2;
            negz = 1;
        }
    }
    if (p1 < 0) {
        p1 += len;
        if (p1 < 0) {
            p2 += p1;
            if (p2 < 0)
                p2 = 0;
            p1 = 0;
        }
    } else if (p1 > 0)
        p1--;
    else if (p2 > 0)
        p2--;
    if (negz) {
        p1 -= p2;
        if (p1 < 0) {
            p2 += p1;
            p1 = 0;
        }
    }
    if (p2 < 0)
        p2 = 0;
    size_t b0 = utf8_off(s, n, p1);
    size_t b1 = b0 + utf8_off(s + b0, n - b0, p2);
    char *r = ss_strndup(s + b0, b1 - b0);
    free(t);
    return take_text(out, owned, r, b1 - b0);
}

static int fn_trim(const ss_value_t *a, const ss_value_t *chars, int left, int right, ss_value_t *out,
                   char **owned)
{
    const char *s, *cs = " ";
    size_t n, cn = 1;
    char *t, *tc = NULL;
    int rc = to_text(a, &s, &n, &t);
    if (!rc && chars)
        rc = to_text(chars, &cs, &cn, &tc);
    if (rc) {
        free(t);
        return rc;
    }
    size_t b = 0, e = n;
    while (left && b < e && memchr(cs, s[b], cn))
        b++;
    while (right && e > b && memchr(cs, s[e - 1], cn))
        e--;
    char *r = ss_strndup(s + b, e - b);
    free(t);
    free(tc);
    return take_text(out, owned, r, e - b);
}

static int fn_replace(const ss_value_t *a, const ss_value_t *from, const ss_value_t *to, ss_value_t *out,
                      char **owned)
{
    const char *s, *f, *r;
    size_t n, fn, rn;
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    int rc = to_text(a, &s, &n, &t1);
    if (!rc)
        rc = to_text(from, &f, &fn, &t2);
    if (!rc)
        rc = to_text(to, &r, &rn, &t3);
    ss_buf_t b = SS_BUF_INIT;
    for (size_t i = 0; !rc && i < n;) {
        if (fn && i + fn <= n && memcmp(s + i, f, fn) == 0) {
            rc = ss_buf_append(&b, r, rn);
            i += fn;
        } else
            rc = ss_buf_append(&b, s + i++, 1);
    }
    free(t1);
    free(t2);
    free(t3);
    if (rc) {
        ss_buf_free(&b);
        return rc;
    }
    size_t len = b.len;
    return take_text(out, owned, ss_buf_take(&b), len);
}

/* ROUND(r, d): half away from zero on the number as written — the shortest decimal that reads
 * back as r (so 2.675 rounds to 2.68 and 7.25 to 7.3, as in SQLite and PostgreSQL), not on the
 * binary fraction printf would round to even. d is clamped to [0, 30] as in SQLite. */
static double round_digits(double r, int64_t d)
{
    if (d < 0)
        d = 0;
    if (d > 30)
        d = 30;
    if (!isfinite(r) || r == 0.0 || fabs(r) >= 4503599627370496.0)
        return r;
    char buf[64];
    int p = 1;
    for (; p < 17; p++) { /* shortest round-trip precision */
        snprintf(buf, sizeof buf, "%.*e", p - 1, fabs(r));
        if (strtod(buf, NULL) == fabs(r))
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", p - 1, fabs(r));
    char digs[24];
    int nd = 0;
    for (const char *c = buf; *c && *c != 'e'; c++)
        if (isdigit((unsigned char)*c))
            digs[nd++] = *c;
    int e10 = atoi(strchr(buf, 'e') + 1);
    int64_t keep = e10 + 1 + d; /* digits that stay */
    if (keep >= nd)
        return r;
    double mag;
    if (keep < 0)
        mag = 0.0;
    else {
        int up = digs[keep] >= '5';
        int64_t v = 0;
        for (int64_t i = 0; i < keep; i++)
            v = v * 10 + (digs[i] - '0');
        v += up;
        snprintf(buf, sizeof buf, "%llde%lld", (long long)v, (long long)(e10 + 1 - keep));
        mag = strtod(buf, NULL);
    }
    return r < 0 ? -mag : mag;
}

static int check_arity(const ss_expr_t *e, int lo, int hi, char *err, size_t errsz)
{
    if (e->nargs < lo || e->nargs > hi) {
        if (lo == hi)
            return EMSG(SS_ERR_SEMANTIC, "function %s takes %d argument%s, got %d", e->func, lo,
                        lo == 1 ? "" : "s", e->nargs);
        return EMSG(SS_ERR_SEMANTIC, "function %s takes %d to %d arguments, got %d", e->func, lo, hi,
                    e->nargs);
    }
    return SS_OK;
}

#define MAXARGS 8

static int eval_func(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                     char *err, size_t errsz)
{
    const char *f = e->func ? e->func : "";
    int rc = SS_OK;
    if (ss_strcaseeq(f, "COALESCE") || ss_strcaseeq(f, "IFNULL")) {
        if ((rc = check_arity(e, ss_strcaseeq(f, "IFNULL") ? 2 : 1, ss_strcaseeq(f, "IFNULL") ? 2 : 1000,
                              err, errsz)))
            return rc;
        for (int i = 0; i < e->nargs; i++) {
            char *co;
            rc = child(e, i, row, out, &co, err, errsz);
            if (rc || out->t != SS_NULL) {
                *owned = co;
                return rc;
            }
            free(co);
        }
        return SS_OK;
    }
    static const struct { const char *name; int lo, hi; } fns[] = {
        {"LOWER", 1, 1}, {"UPPER", 1, 1}, {"LENGTH", 1, 1}, {"ABS", 1, 1}, {"SUBSTR", 2, 3},
        {"SUBSTRING", 2, 3}, {"ROUND", 1, 2}, {"TRIM", 1, 2}, {"LTRIM", 1, 2}, {"RTRIM", 1, 2},
        {"NULLIF", 2, 2}, {"REPLACE", 3, 3},
    };
    int k = -1;
    for (size_t i = 0; i < SS_ARRAY_LEN(fns); i++)
        if (ss_strcaseeq(f, fns[i].name))
            k = (int)i;
    if (k < 0)
        return EMSG(SS_ERR_SEMANTIC, "unknown function %s", f);
    if ((rc = check_arity(e, fns[k].lo, fns[k].hi, err, errsz)))
        return rc;
    ss_value_t a[MAXARGS];
    char *co[MAXARGS] = {0};
    int anynull = 0;
    for (int i = 0; i < e->nargs && !rc; i++) {
        rc = child(e, i, row, &a[i], &co[i], err, errsz);
        anynull |= a[i].t == SS_NULL;
    }
    if (rc)
        goto done;
    if (ss_strcaseeq(f, "NULLIF")) {
        if (a[0].t != SS_NULL && a[1].t != SS_NULL && sql_cmp(&a[0], &a[1]) == 0)
            *out = ss_val_null();
        else {
            *out = a[0];
            *owned = co[0];
            co[0] = NULL;
        }
        goto done;
    }
    if (anynull) {
        *out = ss_val_null();
        goto done;
    }
    if (ss_strcaseeq(f, "LOWER") || ss_strcaseeq(f, "UPPER"))
        rc = fn_case(&a[0], ss_strcaseeq(f, "UPPER"), out, owned);
    else if (ss_strcaseeq(f, "LENGTH")) {
        const char *s;
        size_t n;
        char *t;
        rc = to_text(&a[0], &s, &n, &t);
        if (!rc)
            *out = ss_val_int((int64_t)utf8_len(s, n));
        free(t);
    } else if (ss_strcaseeq(f, "ABS")) {
        ss_value_t x = to_num(&a[0]);
        if (x.t == SS_INT)
            *out = x.u.i == INT64_MIN ? ss_val_real(9223372036854775808.0) : ss_val_int(x.u.i < 0 ? -x.u.i : x.u.i);
        else
            *out = ss_val_real(fabs(x.u.r));
    } else if (ss_strcaseeq(f, "SUBSTR") || ss_strcaseeq(f, "SUBSTRING"))
        rc = fn_substr(&a[0], &a[1], e->nargs > 2 ? &a[2] : NULL, out, owned);
    else if (ss_strcaseeq(f, "ROUND")) {
        ss_value_t x = to_num(&a[0]);
        int64_t d = 0;
        if (e->nargs > 1) {
            ss_value_t dn = to_num(&a[1]);
            d = dn.t == SS_INT ? dn.u.i : (int64_t)dn.u.r;
        }
        *out = ss_val_real(round_digits(num_d(&x), d));
    } else if (ss_strcaseeq(f, "TRIM") || ss_strcaseeq(f, "LTRIM") || ss_strcaseeq(f, "RTRIM"))
        rc = fn_trim(&a[0], e->nargs > 1 ? &a[1] : NULL, !ss_strcaseeq(f, "RTRIM"), !ss_strcaseeq(f, "LTRIM"),
                     out, owned);
    else if (ss_strcaseeq(f, "REPLACE"))
        rc = fn_replace(&a[0], &a[1], &a[2], out, owned);
    if (rc && rc != SS_ERR_SEMANTIC)
        EMSG(rc, "%s: out of memory", f);
done:
    for (int i = 0; i < e->nargs && i < MAXARGS; i++)
        free(co[i]);
    return rc;
}

/* ---- rendering ---- */

static const char *op_sql(ss_ast_op_t op)
{
    switch (op) {
    case SS_OP_OR: return "OR";
    case SS_OP_AND: return "AND";
    case SS_OP_NOT: return "NOT";
    case SS_OP_EQ: return "=";
    case SS_OP_NE: return "<>";
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
    default: return "?";
    }
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
        return rc ? rc : ss_buf_putc(out, ')');
    case SS_EX_IS_NULL:
        rc = ss_buf_putc(out, '(');
        if (!rc)
            rc = ss_expr_to_sql(e->nargs > 0 ? e->args[0] : NULL, in, out);
        if (!rc)
            rc = ss_buf_puts(out, e->negate ? " IS NOT NULL)" : " IS NULL)");
        return rc;
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
