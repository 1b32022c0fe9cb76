/*
 * expr_func.c — the scalar functions of compiled expressions (ss_expr_eval on
 * SS_EX_FUNC): strings (LOWER, SUBSTR, CONCAT, LPAD, SPLIT_PART, INITCAP, ...),
 * math (ABS, ROUND, FLOOR, POWER, LN, MOD, GREATEST, ...), NULL handling
 * (COALESCE, NULLIF) and JSON (json_extract_path_text, json_typeof, ...), with
 * PostgreSQL's semantics. Regular expressions live in expr_regex.c, NUMERIC
 * arithmetic and casts in expr_num.c.
 */
#include "expr_int.h"

#include "ss_decimal.h"
#include "ss_json.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = ss__x_text(a, &s, &n, &t);
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
    return ss__x_take(out, owned, r, n);
}

/* PostgreSQL substring(s, start [, count]) on characters: start is 1-based and may be 0 or
 * negative (positions before the string count but give nothing: SUBSTR('Hello', -1, 3) is 'H'),
 * a negative count is an error. (SQLite counts a negative start from the end instead.) */
static int fn_substr(const ss_expr_t *e, const ss_value_t *a, const ss_value_t *y, const ss_value_t *z,
                     ss_value_t *out, char **owned, char *err, size_t errsz)
{
    ss_value_t yn = ss__x_num(y);
    int64_t from = yn.t == SS_INT ? yn.u.i : (int64_t)yn.u.r, to = INT64_MAX; /* [from, to) */
    if (z) {
        ss_value_t zn = ss__x_num(z);
        int64_t cnt = zn.t == SS_INT ? zn.u.i : (int64_t)zn.u.r;
        if (cnt < 0)
            return ss__x_fail(e, err, errsz, "negative substring length not allowed");
        to = from > 0 && cnt > INT64_MAX - from ? INT64_MAX : from + cnt;
    }
    const char *s;
    size_t n;
    char *t;
    int rc = ss__x_text(a, &s, &n, &t);
    if (rc)
        return rc;
    int64_t len = (int64_t)utf8_len(s, n);
    if (from < 1)
        from = 1;
    if (to > len + 1)
        to = len + 1;
    if (to < from)
        to = from;
    size_t b0 = utf8_off(s, n, from - 1);
    size_t b1 = b0 + utf8_off(s + b0, n - b0, to - from);
    char *r = ss_strndup(s + b0, b1 - b0);
    free(t);
    return ss__x_take(out, owned, r, b1 - b0);
}

static int fn_trim(const ss_value_t *a, const ss_value_t *chars, int left, int right, ss_value_t *out,
                   char **owned)
{
    const char *s, *cs = " ";
    size_t n, cn = 1;
    char *t, *tc = NULL;
    int rc = ss__x_text(a, &s, &n, &t);
    if (!rc && chars)
        rc = ss__x_text(chars, &cs, &cn, &tc);
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
    return ss__x_take(out, owned, r, e - b);
}

static int fn_replace(const ss_value_t *a, const ss_value_t *from, const ss_value_t *to, ss_value_t *out,
                      char **owned)
{
    const char *s, *f, *r;
    size_t n, fn, rn;
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    int rc = ss__x_text(a, &s, &n, &t1);
    if (!rc)
        rc = ss__x_text(from, &f, &fn, &t2);
    if (!rc)
        rc = ss__x_text(to, &r, &rn, &t3);
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
    return ss__x_take(out, owned, ss_buf_take(&b), len);
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

#define MAXARGS 8

/* ---- variadic functions: evaluated one argument at a time ---- */

/* COALESCE: the first non-NULL argument (the rest is not evaluated). */
static int fn_coalesce(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned, char *err,
                       size_t errsz)
{
    for (int i = 0; i < e->nargs; i++) {
        char *co;
        int rc = ss__x_child(e, i, row, out, &co, err, errsz);
        if (rc || out->t != SS_NULL) {
            *owned = co;
            return rc;
        }
        free(co);
    }
    return SS_OK;
}

/* GREATEST/LEAST: NULLs are ignored; NULL only when every argument is NULL. */
static int fn_extreme(const ss_expr_t *e, int greatest, const ss_row_t *row, ss_value_t *out, char **owned,
                      char *err, size_t errsz)
{
    *out = ss_val_null();
    for (int i = 0; i < e->nargs; i++) {
        ss_value_t v;
        char *co;
        int rc = ss__x_child(e, i, row, &v, &co, err, errsz);
        if (rc) {
            free(co);
            return rc;
        }
        int c = v.t == SS_NULL ? 0 : out->t == SS_NULL ? 1 : ss__x_cmp(&v, out);
        if (v.t != SS_NULL && (out->t == SS_NULL || (greatest ? c > 0 : c < 0))) {
            free(*owned);
            *out = v;
            *owned = co;
        } else
            free(co);
    }
    return SS_OK;
}

/* CONCAT (NULLs skipped) and CONCAT_WS(sep, ...) (NULL separator: NULL). */
static int fn_concat(const ss_expr_t *e, int ws, const ss_row_t *row, ss_value_t *out, char **owned, char *err,
                     size_t errsz)
{
    ss_buf_t b = SS_BUF_INIT, sep = SS_BUF_INIT;
    int rc = SS_OK, first = 1;
    for (int i = 0; i < e->nargs && !rc; i++) {
        ss_value_t v;
        char *co, *tt = NULL;
        const char *s;
        size_t n;
        rc = ss__x_child(e, i, row, &v, &co, err, errsz);
        if (!rc && v.t != SS_NULL && !(rc = ss__x_text(&v, &s, &n, &tt))) {
            if (ws && i == 0)
                rc = ss_buf_append(&sep, s, n);
            else {
                if (ws && !first)
                    rc = ss_buf_append(&b, sep.data ? sep.data : "", sep.len);
                rc = rc ? rc : ss_buf_append(&b, s, n);
                first = 0;
            }
        } else if (!rc && v.t == SS_NULL && ws && i == 0) {
            free(co);
            ss_buf_free(&b);
            ss_buf_free(&sep);
            *out = ss_val_null();
            return SS_OK;
        }
        free(tt);
        free(co);
    }
    ss_buf_free(&sep);
    if (!rc)
        rc = ss__x_take_buf(out, owned, &b, SS_TEXT);
    ss_buf_free(&b);
    return rc == SS_ERR_NOMEM ? (int)EMSG(SS_ERR_NOMEM, "out of memory") : rc;
}

/* json_extract_path[_text](j, k1, k2, ...): keys, or array indexes written as text ('0'). */
static int fn_json_path(const ss_expr_t *e, int as_text, const ss_row_t *row, ss_value_t *out, char **owned,
                        char *err, size_t errsz)
{
    ss_value_t j;
    char *cj;
    int rc = ss__x_child(e, 0, row, &j, &cj, err, errsz);
    *out = ss_val_null();
    const char *cur = j.t == SS_NULL ? NULL : j.u.str.s;
    size_t curn = cur ? j.u.str.n : 0;
    for (int i = 1; !rc && cur && i < e->nargs; i++) {
        ss_value_t k;
        char *ck, *tk = NULL;
        const char *ks;
        size_t kn;
        rc = ss__x_child(e, i, row, &k, &ck, err, errsz);
        if (!rc && k.t == SS_NULL)
            cur = NULL;
        else if (!rc && !(rc = ss__x_text(&k, &ks, &kn, &tk))) {
            const char *vs = NULL;
            size_t vn = 0;
            int found = 0;
            if (curn && cur[0] == '[') {
                char *end;
                char buf[32];
                snprintf(buf, sizeof buf, "%.*s", (int)SS_MIN(kn, 31), ks);
                long long idx = strtoll(buf, &end, 10);
                found = *end == 0 && end != buf && ss_jtext_get_index(cur, curn, idx, &vs, &vn);
            } else
                found = ss_jtext_get_key(cur, curn, ks, kn, &vs, &vn);
            cur = found ? vs : NULL;
            curn = found ? vn : 0;
        }
        free(tk);
        free(ck);
    }
    if (!rc && cur) {
        ss_buf_t b = SS_BUF_INIT;
        int is_null = 0;
        rc = as_text ? ss_jtext_to_text(cur, curn, &b, &is_null) : ss_buf_append(&b, cur, curn);
        if (!rc && !is_null)
            rc = ss__x_take_buf(out, owned, &b, as_text ? SS_TEXT : SS_JSON);
        ss_buf_free(&b);
        if (rc)
            EMSG(rc, "out of memory");
    }
    free(cj);
    return rc;
}

/* ---- string functions (PostgreSQL) ---- */

static int take_buf(ss_value_t *out, char **owned, ss_buf_t *b, char *err, size_t errsz)
{
    int rc = ss__x_take_buf(out, owned, b, SS_TEXT);
    ss_buf_free(b);
    return rc ? EMSG(rc, "out of memory") : SS_OK;
}

static int64_t int_arg(const ss_value_t *v)
{
    ss_value_t n = ss__x_num(v);
    return n.t == SS_INT ? n.u.i : n.t == SS_REAL ? (int64_t)n.u.r : (int64_t)strtoll(v->u.str.s, NULL, 10);
}

/* POSITION(sub IN s) / STRPOS(s, sub): 1-based character index, 0 if absent. */
static int64_t strpos_of(const char *s, size_t n, const char *sub, size_t m)
{
    if (m == 0)
        return 1;
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(s + i, sub, m))
            return (int64_t)utf8_len(s, i) + 1;
    return 0;
}

/* LEFT/RIGHT(s, n): n characters (negative: all but |n|). */
static int fn_leftright(const char *s, size_t n, int64_t k, int right, ss_buf_t *b)
{
    int64_t len = (int64_t)utf8_len(s, n);
    int64_t take = k >= 0 ? SS_MIN(k, len) : SS_MAX(len + k, 0);
    size_t from = right ? utf8_off(s, n, len - take) : 0;
    size_t to = right ? n : utf8_off(s, n, take);
    return ss_buf_append(b, s + from, to - from);
}

/* LPAD/RPAD(s, len [, fill]): to len characters, truncating or filling (fill default ' '). */
static int fn_pad(const char *s, size_t n, int64_t len, const char *f, size_t fn, int right, ss_buf_t *b)
{
    int64_t have = (int64_t)utf8_len(s, n);
    if (len <= 0)
        return SS_OK;
    if (len > 10000000)
        return SS_ERR_INVALID;
    if (have >= len)
        return ss_buf_append(b, s, utf8_off(s, n, len));
    int64_t need = len - have;
    int rc = right ? ss_buf_append(b, s, n) : 0;
    size_t fl = utf8_len(f, fn);
    for (int64_t i = 0; i < need && fl && !rc; i++) {
        size_t a = utf8_off(f, fn, (int64_t)(i % (int64_t)fl)), z = utf8_off(f, fn, (int64_t)(i % (int64_t)fl) + 1);
        rc = ss_buf_append(b, f + a, z - a);
    }
    if (!rc && !right)
        rc = ss_buf_append(b, s, n);
    return rc;
}

static int fn_split_part(const char *s, size_t n, const char *d, size_t dn, int64_t k, ss_buf_t *b)
{
    if (dn == 0) /* no delimiter: the whole string is field 1 (and -1) */
        return k == 1 || k == -1 ? ss_buf_append(b, s, n) : SS_OK;
    size_t starts[4096];
    size_t nf = 0, i = 0;
    starts[nf++] = 0;
    while (i + dn <= n && nf < SS_ARRAY_LEN(starts)) {
        if (!memcmp(s + i, d, dn)) {
            starts[nf++] = i + dn;
            i += dn;
        } else
            i++;
    }
    int64_t idx = k > 0 ? k - 1 : (int64_t)nf + k;
    if (idx < 0 || idx >= (int64_t)nf)
        return SS_OK;
    size_t a = starts[idx], z = idx + 1 < (int64_t)nf ? starts[idx + 1] - dn : n;
    return ss_buf_append(b, s + a, z - a);
}

static int fn_reverse(const char *s, size_t n, ss_buf_t *b)
{
    int rc = 0;
    size_t end = n;
    while (end > 0 && !rc) {
        size_t st = end - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
            st--;
        rc = ss_buf_append(b, s + st, end - st);
        end = st;
    }
    return rc;
}

/* INITCAP: first letter of each alphanumeric word upper-case, the rest lower-case (ASCII). */
static int fn_initcap(const char *s, size_t n, ss_buf_t *b)
{
    int rc = 0, inword = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = c >= 0x80 || isalnum(c);
        rc = ss_buf_putc(b, (char)(c < 0x80 ? (inword ? tolower(c) : toupper(c)) : c));
        inword = alnum;
    }
    return rc;
}

/* ---- math (double precision) ---- */

static int fn_math(const ss_expr_t *e, const char *f, const ss_value_t *a, int nargs, ss_value_t *out, char *err,
                   size_t errsz)
{
    double x = ss__x_numd(&a[0]), y = nargs > 1 ? ss__x_numd(&a[1]) : 0, r;
    if (!strcmp(f, "SQRT")) {
        if (x < 0)
            return ss__x_fail(e, err, errsz, "cannot take square root of a negative number");
        r = sqrt(x);
    } else if (!strcmp(f, "EXP"))
        r = exp(x);
    else if (!strcmp(f, "LN") || (!strcmp(f, "LOG") && nargs == 1)) {
        if (x == 0)
            return ss__x_fail(e, err, errsz, "cannot take logarithm of zero");
        if (x < 0)
            return ss__x_fail(e, err, errsz, "cannot take logarithm of a negative number");
        r = !strcmp(f, "LN") ? log(x) : log10(x);
    } else if (!strcmp(f, "LOG")) { /* LOG(base, x) */
        if (x <= 0 || y <= 0)
            return ss__x_fail(e, err, errsz, "cannot take logarithm of %s", x == 0 || y == 0 ? "zero" : "a negative number");
        if (x == 1)
            return ss__x_fail(e, err, errsz, "division by zero");
        r = log(y) / log(x);
    } else if (!strcmp(f, "POWER")) {
        if (x == 0 && y < 0)
            return ss__x_fail(e, err, errsz, "zero raised to a negative power is undefined");
        if (x < 0 && y != floor(y))
            return ss__x_fail(e, err, errsz, "a negative number raised to a non-integer power yields a complex result");
        r = pow(x, y);
    } else if (!strcmp(f, "FLOOR"))
        r = floor(x);
    else if (!strcmp(f, "CEIL"))
        r = ceil(x);
    else if (!strcmp(f, "SIGN"))
        r = x > 0 ? 1 : x < 0 ? -1 : 0;
    else if (!strcmp(f, "TRUNC"))
        r = nargs > 1 ? trunc(x * pow(10, y)) / pow(10, y) : trunc(x);
    else
        return EMSG(SS_ERR_INTERNAL, "unknown math function %s", f);
    if (!isfinite(r) && isfinite(x) && isfinite(y))
        return ss__x_fail(e, err, errsz, "value out of range: overflow");
    *out = ss_val_real(r);
    return SS_OK;
}

static const struct fixed_fn {
    const char *name;
    int lo, hi;
} fixed[] = {
    {"LOWER", 1, 1}, {"UPPER", 1, 1}, {"LENGTH", 1, 1}, {"ABS", 1, 1}, {"SUBSTR", 2, 3}, {"ROUND", 1, 2},
    {"TRIM", 1, 2}, {"LTRIM", 1, 2}, {"RTRIM", 1, 2}, {"NULLIF", 2, 2}, {"REPLACE", 3, 3},
    {"SIGN", 1, 1}, {"TRUNC", 1, 2}, {"FLOOR", 1, 1}, {"CEIL", 1, 1}, {"SQRT", 1, 1}, {"EXP", 1, 1},
    {"LN", 1, 1}, {"LOG", 1, 2}, {"POWER", 2, 2}, {"MOD", 2, 2}, {"PI", 0, 0}, {"POSITION", 2, 2},
    {"STRPOS", 2, 2}, {"LEFT", 2, 2}, {"RIGHT", 2, 2}, {"LPAD", 2, 3}, {"RPAD", 2, 3},
    {"SPLIT_PART", 3, 3}, {"REVERSE", 1, 1}, {"INITCAP", 1, 1}, {"REPEAT", 2, 2},
    {"REGEXP_REPLACE", 3, 4}, {"REGEXP_MATCH", 2, 3}, {"REGEXP_LIKE", 2, 3}, {"REGEXP_SUBSTR", 2, 2},
    {"JSON_ARRAY_LENGTH", 1, 1}, {"JSON_TYPEOF", 1, 1},
};

/* The functions of fixed arity, on evaluated arguments (none NULL unless NULLIF). */
static int fixed_fn(const ss_expr_t *e, const char *f, ss_value_t *a, char **co, ss_value_t *out, char **owned,
                    char *err, size_t errsz)
{
    int nargs = e->nargs, rc = SS_OK;
    const char *s = NULL, *s2 = NULL, *s3 = NULL;
    size_t n = 0, n2 = 0, n3 = 0;
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    ss_buf_t b = SS_BUF_INIT;
    int numeric = e->type == SS_COL_NUMERIC;
    if (numeric && (!strcmp(f, "ABS") || !strcmp(f, "SIGN") || !strcmp(f, "ROUND") || !strcmp(f, "TRUNC") ||
                    !strcmp(f, "FLOOR") || !strcmp(f, "CEIL") || !strcmp(f, "MOD")))
        return ss__x_num_func(e, f, a, nargs, out, owned, err, errsz);
    if (!strncmp(f, "REGEXP_", 7))
        return ss__x_regex(e, f, a, nargs, out, owned, err, errsz);
    if (!strcmp(f, "SQRT") || !strcmp(f, "EXP") || !strcmp(f, "LN") || !strcmp(f, "LOG") || !strcmp(f, "POWER") ||
        !strcmp(f, "FLOOR") || !strcmp(f, "CEIL") || !strcmp(f, "SIGN") || (!strcmp(f, "TRUNC") && e->type == SS_COL_REAL))
        return fn_math(e, f, a, nargs, out, err, errsz);
    if (!strcmp(f, "PI")) {
        *out = ss_val_real(M_PI);
        return SS_OK;
    }
    if (!strcmp(f, "MOD")) {
        ss_value_t q = ss__x_num(&a[1]);
        if ((q.t == SS_INT && q.u.i == 0) || (q.t == SS_REAL && q.u.r == 0))
            return ss__x_fail(e, err, errsz, "division by zero");
        ss_value_t p = ss__x_num(&a[0]);
        if (p.t == SS_INT && q.t == SS_INT)
            *out = ss_val_int(q.u.i == -1 ? 0 : p.u.i % q.u.i);
        else
            *out = ss_val_real(fmod(ss__x_numd(&p), ss__x_numd(&q)));
        return SS_OK;
    }
    if (!strcmp(f, "JSON_ARRAY_LENGTH") || !strcmp(f, "JSON_TYPEOF")) {
        if (a[0].t != SS_JSON && a[0].t != SS_TEXT)
            return ss__x_fail(e, err, errsz, "%s needs a json value", f);
        if (!strcmp(f, "JSON_TYPEOF")) {
            const char *ty = ss_jtext_typeof(a[0].u.str.s, a[0].u.str.n);
            rc = ss_buf_puts(&b, ty);
            return rc ? (int)EMSG(SS_ERR_NOMEM, "out of memory") : take_buf(out, owned, &b, err, errsz);
        }
        int64_t len = ss_jtext_array_length(a[0].u.str.s, a[0].u.str.n);
        if (len < 0)
            return ss__x_fail(e, err, errsz, "cannot get array length of a %s", ss_jtext_typeof(a[0].u.str.s, a[0].u.str.n));
        *out = ss_val_int(len);
        return SS_OK;
    }
    rc = ss__x_text(&a[0], &s, &n, &t1);
    if (!rc && nargs > 1)
        rc = ss__x_text(&a[1], &s2, &n2, &t2);
    if (!rc && nargs > 2)
        rc = ss__x_text(&a[2], &s3, &n3, &t3);
    if (rc)
        goto out;
    if (!strcmp(f, "POSITION") || !strcmp(f, "STRPOS")) /* POSITION(sub, s) after the parser; STRPOS(s, sub) */
        *out = ss_val_int(!strcmp(f, "POSITION") ? strpos_of(s2, n2, s, n) : strpos_of(s, n, s2, n2));
    else if (!strcmp(f, "LEFT") || !strcmp(f, "RIGHT"))
        rc = fn_leftright(s, n, int_arg(&a[1]), !strcmp(f, "RIGHT"), &b);
    else if (!strcmp(f, "LPAD") || !strcmp(f, "RPAD")) {
        rc = fn_pad(s, n, int_arg(&a[1]), nargs > 2 ? s3 : " ", nargs > 2 ? n3 : 1, !strcmp(f, "RPAD"), &b);
        if (rc == SS_ERR_INVALID) {
            rc = ss__x_fail(e, err, errsz, "requested length too large");
            goto out;
        }
    } else if (!strcmp(f, "SPLIT_PART")) {
        int64_t k = int_arg(&a[2]);
        if (k == 0) {
            rc = ss__x_fail(e, err, errsz, "field position must not be zero");
            goto out;
        }
        rc = fn_split_part(s, n, s2, n2, k, &b);
    } else if (!strcmp(f, "REVERSE"))
        rc = fn_reverse(s, n, &b);
    else if (!strcmp(f, "INITCAP"))
        rc = fn_initcap(s, n, &b);
    else if (!strcmp(f, "REPEAT")) {
        int64_t k = int_arg(&a[1]);
        if (k > 0 && (uint64_t)k * n > 100000000) {
            rc = ss__x_fail(e, err, errsz, "requested length too large");
            goto out;
        }
        for (int64_t i = 0; i < k && !rc; i++)
            rc = ss_buf_append(&b, s, n);
    } else {
        rc = EMSG(SS_ERR_INTERNAL, "unknown function %s", f);
        goto out;
    }
    if (!rc && out->t == SS_NULL && strcmp(f, "POSITION") && strcmp(f, "STRPOS"))
        rc = take_buf(out, owned, &b, err, errsz);
    else if (rc)
        rc = EMSG(rc, "out of memory");
out:
    (void)co;
    ss_buf_free(&b);
    free(t1);
    free(t2);
    free(t3);
    return rc;
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

int ss__x_func(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
               char *err, size_t errsz)
{
    char fu[32];
    size_t k0 = 0;
    for (const char *p = e->func ? e->func : ""; *p && k0 + 1 < sizeof fu; p++)
        fu[k0++] = (char)toupper((unsigned char)*p);
    fu[k0] = 0;
    const char *f = fu;
    if (!strcmp(f, "COALESCE") || !strcmp(f, "IFNULL"))
        return fn_coalesce(e, row, out, owned, err, errsz);
    if (!strcmp(f, "GREATEST") || !strcmp(f, "LEAST"))
        return fn_extreme(e, !strcmp(f, "GREATEST"), row, out, owned, err, errsz);
    if (!strcmp(f, "CONCAT") || !strcmp(f, "CONCAT_WS"))
        return fn_concat(e, !strcmp(f, "CONCAT_WS"), row, out, owned, err, errsz);
    if (!strcmp(f, "JSON_EXTRACT_PATH") || !strcmp(f, "JSON_EXTRACT_PATH_TEXT"))
        return fn_json_path(e, !strcmp(f, "JSON_EXTRACT_PATH_TEXT"), row, out, owned, err, errsz);
    int k = -1;
    for (size_t i = 0; i < SS_ARRAY_LEN(fixed) && k < 0; i++)
        if (!strcmp(f, fixed[i].name))
            k = (int)i;
    if (k < 0)
        return EMSG(SS_ERR_SEMANTIC, "unknown function %s", f);
    int rc = check_arity(e, fixed[k].lo, fixed[k].hi, err, errsz);
    if (rc)
        return rc;
    ss_value_t a[MAXARGS];
    char *co[MAXARGS] = {0};
    int anynull = 0;
    for (int i = 0; i < e->nargs && !rc; i++) {
        rc = ss__x_child(e, i, row, &a[i], &co[i], err, errsz);
        anynull |= a[i].t == SS_NULL;
    }
    if (rc)
        goto done;
    if (!strcmp(f, "NULLIF")) {
        if (a[0].t != SS_NULL && a[1].t != SS_NULL && ss__x_cmp(&a[0], &a[1]) == 0)
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
    if (!strcmp(f, "LOWER") || !strcmp(f, "UPPER"))
        rc = fn_case(&a[0], !strcmp(f, "UPPER"), out, owned);
    else if (!strcmp(f, "LENGTH")) {
        const char *s;
        size_t n;
        char *t;
        rc = ss__x_text(&a[0], &s, &n, &t);
        if (!rc)
            *out = ss_val_int((int64_t)utf8_len(s, n));
        free(t);
    } else if (!strcmp(f, "ABS") && e->type != SS_COL_NUMERIC) {
        ss_value_t x = ss__x_num(&a[0]);
        if (x.t == SS_INT && x.u.i == INT64_MIN)
            rc = ss__x_fail(e, err, errsz, "bigint out of range");
        else if (x.t == SS_INT)
            *out = ss_val_int(x.u.i < 0 ? -x.u.i : x.u.i);
        else
            *out = ss_val_real(fabs(ss__x_numd(&x)));
    } else if (!strcmp(f, "SUBSTR"))
        rc = fn_substr(e, &a[0], &a[1], e->nargs > 2 ? &a[2] : NULL, out, owned, err, errsz);
    else if (!strcmp(f, "ROUND") && e->type != SS_COL_NUMERIC) {
        ss_value_t x = ss__x_num(&a[0]);
        int64_t d = 0;
        if (e->nargs > 1) {
            ss_value_t dn = ss__x_num(&a[1]);
            d = dn.t == SS_INT ? dn.u.i : (int64_t)dn.u.r;
        }
        *out = ss_val_real(round_digits(ss__x_numd(&x), d));
    } else if (!strcmp(f, "TRIM") || !strcmp(f, "LTRIM") || !strcmp(f, "RTRIM"))
        rc = fn_trim(&a[0], e->nargs > 1 ? &a[1] : NULL, strcmp(f, "RTRIM") != 0, strcmp(f, "LTRIM") != 0, out,
                     owned);
    else if (!strcmp(f, "REPLACE"))
        rc = fn_replace(&a[0], &a[1], &a[2], out, owned);
    else
        rc = fixed_fn(e, f, a, co, out, owned, err, errsz);
    if (rc == SS_ERR_NOMEM)
        EMSG(rc, "%s: out of memory", f);
done:
    for (int i = 0; i < e->nargs && i < MAXARGS; i++)
        free(co[i]);
    return rc;
}
