/*
 * expr_num.c — NUMERIC in compiled expressions: exact arithmetic when an
 * operand is NUMERIC (ss_decimal.h, PostgreSQL's result scales), the numeric
 * functions on NUMERIC arguments (ABS, SIGN, ROUND, TRUNC, FLOOR, CEIL, MOD),
 * and CAST between every pair of SQL types with PostgreSQL's rules (float to
 * integer rounds half to even, numeric to integer half away from zero, text
 * is parsed strictly; failures are run-time errors naming line:col).
 */
#include "expr_int.h"

#include "ss_decimal.h"
#include "ss_json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int to_dec(const ss_expr_t *e, const ss_value_t *v, ss_dec_t *d, char *err, size_t errsz)
{
    switch (v->t) {
    case SS_INT: return ss_dec_from_i64(v->u.i, d);
    case SS_REAL: return ss_dec_from_double(v->u.r, d, err, errsz);
    case SS_NUM: case SS_TEXT: case SS_JSON: {
        char e2[256];
        int rc = ss_dec_parse(v->u.str.s, v->u.str.n, d, e2, sizeof e2);
        if (rc == SS_ERR_INVALID)
            return ss__x_fail(e, err, errsz, "%s", e2);
        return rc;
    }
    default: return ss__x_fail(e, err, errsz, "not a number");
    }
}

static int dec_out(ss_dec_t *d, ss_value_t *out, char **owned, char *err, size_t errsz)
{
    ss_buf_t b = SS_BUF_INIT;
    int rc = ss_dec_to_text(d, &b);
    ss_dec_free(d);
    if (!rc)
        rc = ss__x_take_buf(out, owned, &b, SS_NUM);
    else
        ss_buf_free(&b);
    return rc ? EMSG(SS_ERR_NOMEM, "out of memory") : SS_OK;
}

int ss__x_num_arith(const ss_expr_t *e, ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b,
                    ss_value_t *out, char **owned, char *err, size_t errsz)
{
    if (a->t == SS_REAL || b->t == SS_REAL) { /* REAL wins (the planner casts; this is the fallback) */
        double p = ss__x_numd(a), q = ss__x_numd(b);
        if ((op == SS_OP_DIV || op == SS_OP_MOD) && q == 0)
            return ss__x_fail(e, err, errsz, "division by zero");
        double r = op == SS_OP_ADD ? p + q : op == SS_OP_SUB ? p - q : op == SS_OP_MUL ? p * q
                   : op == SS_OP_DIV ? p / q : fmod(p, q);
        *out = ss_val_real(r);
        return SS_OK;
    }
    ss_dec_t x = SS_DEC_INIT, y = SS_DEC_INIT, r = SS_DEC_INIT;
    char e2[256] = "";
    int rc = to_dec(e, a, &x, err, errsz);
    if (!rc)
        rc = to_dec(e, b, &y, err, errsz);
    if (!rc) {
        switch (op) {
        case SS_OP_ADD: rc = ss_dec_add(&x, &y, &r, e2, sizeof e2); break;
        case SS_OP_SUB: rc = ss_dec_sub(&x, &y, &r, e2, sizeof e2); break;
        case SS_OP_MUL: rc = ss_dec_mul(&x, &y, &r, e2, sizeof e2); break;
        case SS_OP_DIV: rc = ss_dec_div(&x, &y, &r, e2, sizeof e2); break;
        case SS_OP_MOD: rc = ss_dec_mod(&x, &y, &r, e2, sizeof e2); break;
        default: rc = EMSG(SS_ERR_INTERNAL, "bad numeric operator %d", (int)op); break;
        }
        if (rc == SS_ERR_INVALID)
            rc = ss__x_fail(e, err, errsz, "%s", e2);
        else if (rc == SS_ERR_NOMEM)
            EMSG(rc, "out of memory");
    }
    ss_dec_free(&x);
    ss_dec_free(&y);
    if (rc) {
        ss_dec_free(&r);
        return rc;
    }
    return dec_out(&r, out, owned, err, errsz);
}

int ss__x_num_func(const ss_expr_t *e, const char *f, const ss_value_t *a, int nargs, ss_value_t *out,
                   char **owned, char *err, size_t errsz)
{
    ss_dec_t x = SS_DEC_INIT;
    int rc = to_dec(e, &a[0], &x, err, errsz);
    if (rc)
        return rc;
    int64_t n = 0;
    if (nargs > 1) {
        ss_value_t nv = ss__x_num(&a[1]);
        n = nv.t == SS_INT ? nv.u.i : nv.t == SS_REAL ? (int64_t)nv.u.r : 0;
        if (n > SS_DEC_MAX_SCALE)
            n = SS_DEC_MAX_SCALE;
        if (n < -SS_DEC_MAX_SCALE)
            n = -SS_DEC_MAX_SCALE;
    }
    if (!strcmp(f, "ABS"))
        x.neg = 0;
    else if (!strcmp(f, "SIGN")) {
        int s = ss_dec_is_zero(&x) ? 0 : x.neg ? -1 : 1;
        ss_dec_free(&x);
        rc = ss_dec_from_i64(s, &x);
    } else if (!strcmp(f, "ROUND"))
        rc = ss_dec_round(&x, (int)n);
    else if (!strcmp(f, "TRUNC"))
        rc = ss_dec_trunc(&x, (int)n);
    else if (!strcmp(f, "FLOOR"))
        rc = ss_dec_floor(&x);
    else if (!strcmp(f, "CEIL"))
        rc = ss_dec_ceil(&x);
    else if (!strcmp(f, "MOD")) {
        ss_dec_free(&x);
        return ss__x_num_arith(e, SS_OP_MOD, &a[0], &a[1], out, owned, err, errsz);
    }
    if (rc) {
        ss_dec_free(&x);
        return EMSG(SS_ERR_NOMEM, "out of memory");
    }
    return dec_out(&x, out, owned, err, errsz);
}

/* ---- CAST ---- */

static int copy_text(const char *s, size_t n, ss_vtype_t t, ss_value_t *out, char **owned, char *err, size_t errsz)
{
    char *c = ss_strndup(s, n);
    if (!c)
        return EMSG(SS_ERR_NOMEM, "out of memory");
    ss__x_take(out, owned, c, n);
    out->t = t;
    return SS_OK;
}

/* Shortest text that reads back as r (PostgreSQL's float8 output). */
static void real_out(double r, char *buf, size_t n)
{
    if (isnan(r)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(r)) {
        snprintf(buf, n, r < 0 ? "-Infinity" : "Infinity");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, r);
        if (strtod(buf, NULL) == r)
            return;
    }
}

static int bad_input(const ss_expr_t *e, const char *type, const char *s, size_t n, char *err, size_t errsz)
{
    return ss__x_fail(e, err, errsz, "invalid input syntax for type %s: \"%.*s\"", type, (int)(n > 60 ? 60 : n), s);
}

/* Strict integer text: blanks around, an optional sign, digits. */
static int parse_int(const char *s, size_t n, int64_t *out, int *range)
{
    char buf[64];
    size_t i = 0, j = n;
    *range = 0;
    while (i < j && isspace((unsigned char)s[i]))
        i++;
    while (j > i && isspace((unsigned char)s[j - 1]))
        j--;
    if (j - i == 0)
        return 0;
    if (j - i >= sizeof buf) {
        *range = 1;
        return 0;
    }
    memcpy(buf, s + i, j - i);
    buf[j - i] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || end == buf || buf[0] == ' ')
        return 0;
    if (errno == ERANGE) {
        *range = 1;
        return 0;
    }
    *out = v;
    return 1;
}

static int cast_int(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char *err, size_t errsz)
{
    switch (v->t) {
    case SS_INT: *out = *v; return SS_OK;
    case SS_REAL: {
        double r = rint(v->u.r); /* half to even, as PostgreSQL's float8 -> int8 */
        if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
            return ss__x_fail(e, err, errsz, "bigint out of range");
        *out = ss_val_int((int64_t)r);
        return SS_OK;
    }
    case SS_NUM: {
        ss_dec_t d = SS_DEC_INIT;
        int64_t i = 0;
        char e2[128];
        int rc = to_dec(e, v, &d, err, errsz);
        if (!rc && (rc = ss_dec_to_i64(&d, &i, e2, sizeof e2)))
            rc = ss__x_fail(e, err, errsz, "%s", e2);
        ss_dec_free(&d);
        if (!rc)
            *out = ss_val_int(i);
        return rc;
    }
    case SS_JSON:
        if (v->u.str.n && (isdigit((unsigned char)v->u.str.s[0]) || v->u.str.s[0] == '-')) {
            ss_value_t nv = ss_val_num_ref(v->u.str.s, v->u.str.n);
            return cast_int(e, &nv, out, err, errsz);
        }
        return ss__x_fail(e, err, errsz, "cannot cast json %s to type integer", ss_jtext_typeof(v->u.str.s, v->u.str.n));
    default: {
        int64_t i;
        int range;
        if (parse_int(v->u.str.s, v->u.str.n, &i, &range)) {
            *out = ss_val_int(i);
            return SS_OK;
        }
        if (range)
            return ss__x_fail(e, err, errsz, "value \"%.*s\" is out of range for type bigint", (int)SS_MIN(v->u.str.n, 60),
                              v->u.str.s);
        return bad_input(e, "integer", v->u.str.s, v->u.str.n, err, errsz);
    }
    }
}

static int cast_real(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char *err, size_t errsz)
{
    if (v->t == SS_INT || v->t == SS_REAL || v->t == SS_NUM) {
        *out = ss_val_real(ss__x_numd(v));
        return SS_OK;
    }
    char buf[128];
    size_t n = v->u.str.n, i = 0;
    const char *s = v->u.str.s;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    if (n - i == 0 || n - i >= sizeof buf || (v->t == SS_JSON && s[0] != '-' && !isdigit((unsigned char)s[0])))
        return v->t == SS_JSON ? ss__x_fail(e, err, errsz, "cannot cast json %s to type double precision",
                                            ss_jtext_typeof(s, v->u.str.n))
                               : bad_input(e, "double precision", s, v->u.str.n, err, errsz);
    memcpy(buf, s + i, n - i);
    buf[n - i] = 0;
    char *end;
    double r = strtod(buf, &end);
    if (*end || end == buf)
        return bad_input(e, "double precision", s, v->u.str.n, err, errsz);
    *out = ss_val_real(r);
    return SS_OK;
}

static int cast_bool(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char *err, size_t errsz)
{
    if (v->t == SS_INT) {
        *out = ss_val_int(v->u.i != 0);
        return SS_OK;
    }
    static const char *const yes[] = {"t", "true", "y", "yes", "on", "1"}, *const no[] = {"f", "false", "n", "no", "off", "0"};
    const char *s = v->u.str.s;
    size_t n = v->u.str.n, i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    char w[8];
    if (n - i < sizeof w && v->t != SS_REAL && v->t != SS_NUM) {
        memcpy(w, s + i, n - i);
        w[n - i] = 0;
        for (size_t k = 0; k < SS_ARRAY_LEN(yes); k++) {
            if (ss_strcaseeq(w, yes[k]) && (v->t != SS_JSON || k == 1)) {
                *out = ss_val_int(1);
                return SS_OK;
            }
            if (ss_strcaseeq(w, no[k]) && (v->t != SS_JSON || k == 1)) {
                *out = ss_val_int(0);
                return SS_OK;
            }
        }
    }
    if (v->t == SS_JSON)
        return ss__x_fail(e, err, errsz, "cannot cast json %s to type boolean", ss_jtext_typeof(s, v->u.str.n));
    if (v->t == SS_REAL || v->t == SS_NUM)
        return ss__x_fail(e, err, errsz, "cannot cast a number with a fraction to type boolean");
    return bad_input(e, "boolean", s, v->u.str.n, err, errsz);
}

int ss__x_cast(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char **owned, char *err, size_t errsz)
{
    *out = ss_val_null();
    if (v->t == SS_NULL)
        return SS_OK;
    ss_coltype_t from = e->nargs ? e->args[0]->type : SS_COL_ANY;
    if (ss_coltype_is_time(e->type) || e->type == SS_COL_INTERVAL)
        return ss__x_time_cast(e, v, out, err, errsz);
    switch (e->type) {
    case SS_COL_INT: return cast_int(e, v, out, err, errsz);
    case SS_COL_REAL: return cast_real(e, v, out, err, errsz);
    case SS_COL_BOOL: return cast_bool(e, v, out, err, errsz);
    case SS_COL_NUMERIC: {
        ss_dec_t d = SS_DEC_INIT;
        char e2[256];
        if (v->t == SS_JSON && v->u.str.n && v->u.str.s[0] != '-' && !isdigit((unsigned char)v->u.str.s[0]))
            return ss__x_fail(e, err, errsz, "cannot cast json %s to type numeric", ss_jtext_typeof(v->u.str.s, v->u.str.n));
        int rc = to_dec(e, v, &d, err, errsz);
        if (!rc && e->typmod >= 0 &&
            (rc = ss_dec_apply_typmod(&d, ss_typmod_precision(e->typmod), ss_typmod_scale(e->typmod), e2, sizeof e2)))
            rc = rc == SS_ERR_INVALID ? ss__x_fail(e, err, errsz, "%s", e2) : (int)EMSG(SS_ERR_NOMEM, "out of memory");
        if (rc) {
            ss_dec_free(&d);
            return rc;
        }
        return dec_out(&d, out, owned, err, errsz);
    }
    case SS_COL_JSON: {
        if (v->t == SS_JSON)
            return copy_text(v->u.str.s, v->u.str.n, SS_JSON, out, owned, err, errsz);
        ss_buf_t b = SS_BUF_INIT;
        char e2[256];
        int rc = SS_OK;
        if (v->t == SS_TEXT) {
            if ((rc = ss_jtext_compact(v->u.str.s, v->u.str.n, &b, e2, sizeof e2)))
                rc = rc == SS_ERR_INVALID ? ss__x_fail(e, err, errsz, "%s", e2) : (int)EMSG(SS_ERR_NOMEM, "out of memory");
        } else if (from == SS_COL_BOOL)
            rc = ss_buf_puts(&b, v->u.i ? "true" : "false");
        else if (v->t == SS_REAL) {
            char tmp[64];
            real_out(v->u.r, tmp, sizeof tmp);
            rc = isfinite(v->u.r) ? ss_buf_puts(&b, tmp) : ss__x_fail(e, err, errsz, "cannot cast %s to json", tmp);
        } else
            rc = ss_val_to_text(v, &b);
        if (!rc)
            rc = ss__x_take_buf(out, owned, &b, SS_JSON);
        else
            ss_buf_free(&b);
        return rc;
    }
    default: { /* TEXT */
        char tmp[64];
        if (from == SS_COL_BOOL && v->t == SS_INT)
            return copy_text(v->u.i ? "true" : "false", v->u.i ? 4 : 5, SS_TEXT, out, owned, err, errsz);
        if (v->t == SS_REAL) {
            real_out(v->u.r, tmp, sizeof tmp);
            return copy_text(tmp, strlen(tmp), SS_TEXT, out, owned, err, errsz);
        }
        if (v->t == SS_INT) {
            int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
            return copy_text(tmp, (size_t)n, SS_TEXT, out, owned, err, errsz);
        }
        if (from == SS_COL_TEXT && e->typmod < 0 && v->t == SS_TEXT)
            return copy_text(v->u.str.s, v->u.str.n, SS_TEXT, out, owned, err, errsz);
        if (ss_vtype_is_time(v->t) || v->t == SS_IVL) { /* PostgreSQL's text form */
            ss_buf_t b = SS_BUF_INIT;
            if (ss_val_to_text(v, &b) || ss__x_take_buf(out, owned, &b, SS_TEXT)) {
                ss_buf_free(&b);
                return EMSG(SS_ERR_NOMEM, "out of memory");
            }
            return SS_OK;
        }
        return copy_text(v->u.str.s, v->u.str.n, SS_TEXT, out, owned, err, errsz);
    }
    }
}
