/*
 * zset.c — implements ss_zset.h: value helpers, rows (one allocation plus owned
 * text), schemas, canonical row encoding, and Z-set consolidation.
 */
#include "ss_zset.h"
#include "ss_decimal.h"
#include "ss_json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ss_value_t ss_val_null(void) { ss_value_t v; memset(&v, 0, sizeof v); return v; }
ss_value_t ss_val_int(int64_t i) { ss_value_t v = ss_val_null(); v.t = SS_INT; v.u.i = i; return v; }
/* -0.0 becomes 0.0: the two are equal in SQL, so they must have one encoding */
ss_value_t ss_val_real(double r) { ss_value_t v = ss_val_null(); v.t = SS_REAL; v.u.r = r == 0.0 ? 0.0 : r; return v; }

ss_value_t ss_val_ts(int64_t us, int with_tz)
{
    ss_value_t v = ss_val_null();
    v.t = with_tz ? SS_TSTZ : SS_TS;
    v.u.i = us;
    return v;
}

ss_value_t ss_val_date(int64_t days)
{
    ss_value_t v = ss_val_null();
    v.t = SS_DATE;
    v.u.i = days;
    return v;
}

ss_value_t ss_val_interval(ss_interval_t iv)
{
    ss_value_t v = ss_val_null();
    v.t = SS_IVL;
    v.u.iv = iv;
    return v;
}

ss_value_t ss_val_text_ref(const char *s, size_t n)
{
    ss_value_t v = ss_val_null();
    v.t = SS_TEXT;
    v.u.str.s = (char *)s;
    v.u.str.n = n;
    return v;
}

ss_value_t ss_val_num_ref(const char *s, size_t n)
{
    ss_value_t v = ss_val_text_ref(s, n);
    v.t = SS_NUM;
    return v;
}

ss_value_t ss_val_json_ref(const char *s, size_t n)
{
    ss_value_t v = ss_val_text_ref(s, n);
    v.t = SS_JSON;
    return v;
}

static int cmp_num(double a, double b) { return a < b ? -1 : a > b ? 1 : 0; }

/* Compares canonical decimal texts numerically without parsing ("-0.5" < "0.25" < "1.00" = "1"). */
static int dec_text_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int na = an && a[0] == '-', nb = bn && b[0] == '-';
    if (na) a++, an--;
    if (nb) b++, bn--;
    size_t ia = 0, ib = 0; /* integer-part lengths, "0" counting as empty */
    while (ia < an && a[ia] != '.') ia++;
    while (ib < bn && b[ib] != '.') ib++;
    const char *pa = a, *pb = b;
    size_t la = ia, lb = ib;
    if (la == 1 && pa[0] == '0') la = 0, pa++;
    if (lb == 1 && pb[0] == '0') lb = 0, pb++;
    int c = 0;
    if (la != lb)
        c = la < lb ? -1 : 1;
    else {
        int m = memcmp(pa, pb, la);
        c = m < 0 ? -1 : m > 0;
        const char *fa = ia < an ? a + ia + 1 : "", *fb = ib < bn ? b + ib + 1 : "";
        size_t fna = ia < an ? an - ia - 1 : 0, fnb = ib < bn ? bn - ib - 1 : 0;
        for (size_t k = 0; !c && (k < fna || k < fnb); k++) {
            char x = k < fna ? fa[k] : '0', y = k < fnb ? fb[k] : '0';
            c = x < y ? -1 : x > y;
        }
    }
    int za = la == 0, zb = lb == 0; /* a zero is never negative: "-0" cannot occur in canonical text */
    (void)za;
    (void)zb;
    if (na != nb)
        return na ? -1 : 1;
    return na ? -c : c;
}

static int scale_of(const ss_value_t *v)
{
    const char *p = memchr(v->u.str.s, '.', v->u.str.n);
    return p ? (int)(v->u.str.s + v->u.str.n - p - 1) : 0;
}

/* NUMERIC against a number of any type. */
static int cmp_with_num(const ss_value_t *a, const ss_value_t *b)
{
    if (a->t == SS_NUM && b->t == SS_NUM) {
        int c = dec_text_cmp(a->u.str.s, a->u.str.n, b->u.str.s, b->u.str.n);
        if (c == 0) /* 1.0 and 1.00 are equal numbers: order by scale for a total order of values */
            c = cmp_num(scale_of(a), scale_of(b));
        return c;
    }
    if (a->t != SS_NUM)
        return -cmp_with_num(b, a);
    int c;
    if (b->t == SS_INT) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)b->u.i);
        c = dec_text_cmp(a->u.str.s, a->u.str.n, buf, (size_t)n);
    } else
        c = cmp_num(strtod(a->u.str.s, NULL), b->u.r);
    if (c == 0) /* equal numbers of different types: INT < NUM < REAL */
        c = b->t == SS_INT ? 1 : -1;
    return c;
}

int ss_val_cmp_numeric(const ss_value_t *a, const ss_value_t *b)
{
    if (a->t == SS_NUM && b->t == SS_NUM)
        return dec_text_cmp(a->u.str.s, a->u.str.n, b->u.str.s, b->u.str.n);
    if (a->t == SS_NUM && b->t == SS_INT) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)b->u.i);
        return dec_text_cmp(a->u.str.s, a->u.str.n, buf, (size_t)n);
    }
    if (b->t == SS_NUM && a->t != SS_NUM)
        return -ss_val_cmp_numeric(b, a);
    if (a->t == SS_INT && b->t == SS_INT)
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    double x = a->t == SS_INT ? (double)a->u.i : a->t == SS_NUM ? strtod(a->u.str.s, NULL) : a->u.r;
    double y = b->t == SS_INT ? (double)b->u.i : b->t == SS_NUM ? strtod(b->u.str.s, NULL) : b->u.r;
    return cmp_num(x, y);
}

static int vrank(ss_vtype_t t)
{
    switch (t) {
    case SS_NULL: return 0;
    case SS_INT: case SS_REAL: case SS_NUM: return 1;
    case SS_TEXT: return 2;
    case SS_TS: case SS_TSTZ: case SS_DATE: return 4;
    case SS_IVL: return 5;
    default: return 3; /* JSON */
    }
}

/* Timestamps and dates by instant; equal instants of different types: DATE < TIMESTAMP < TIMESTAMPTZ. */
static int cmp_time(const ss_value_t *a, const ss_value_t *b)
{
    int64_t x = ss_val_time_us(a), y = ss_val_time_us(b);
    if (x != y)
        return x < y ? -1 : 1;
    return a->t == b->t ? 0 : a->t == SS_DATE || (a->t == SS_TS && b->t == SS_TSTZ) ? -1 : 1;
}

/* Intervals as PostgreSQL orders them; equal spans written differently ('1 mon', '30 days') by fields. */
static int cmp_ivl(const ss_value_t *a, const ss_value_t *b)
{
    int c = ss_interval_cmp(&a->u.iv, &b->u.iv);
    if (c)
        return c;
    const ss_interval_t *x = &a->u.iv, *y = &b->u.iv;
    if (x->months != y->months)
        return x->months < y->months ? -1 : 1;
    if (x->days != y->days)
        return x->days < y->days ? -1 : 1;
    return x->us < y->us ? -1 : x->us > y->us;
}

int ss_val_cmp(const ss_value_t *a, const ss_value_t *b)
{
    int ra = vrank(a->t), rb = vrank(b->t);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (ra == 0)
        return 0;
    if (ra == 4)
        return cmp_time(a, b);
    if (ra == 5)
        return cmp_ivl(a, b);
    if (ra == 1 && (a->t == SS_NUM || b->t == SS_NUM))
        return cmp_with_num(a, b);
    if (ra >= 2) {
        size_t n = SS_MIN(a->u.str.n, b->u.str.n);
        int c = memcmp(a->u.str.s, b->u.str.s, n);
        if (c)
            return c < 0 ? -1 : 1;
        return a->u.str.n < b->u.str.n ? -1 : a->u.str.n > b->u.str.n ? 1 : 0;
    }
    if (a->t == SS_INT && b->t == SS_INT)
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i ? 1 : 0;
    double x = a->t == SS_INT ? (double)a->u.i : a->u.r;
    double y = b->t == SS_INT ? (double)b->u.i : b->u.r;
    int c = cmp_num(x, y);
    if (c == 0 && a->t != b->t) /* 1 and 1.0 are equal numerically; order INT before REAL for a total order */
        return a->t == SS_INT ? -1 : 1;
    return c;
}

int ss_val_eq(const ss_value_t *a, const ss_value_t *b) { return ss_val_cmp(a, b) == 0; }

uint64_t ss_val_hash(const ss_value_t *v, uint64_t seed)
{
    switch (v->t) {
    case SS_NULL: return ss_hash_combine(seed, 0x11);
    case SS_INT: return ss_hash64(&v->u.i, 8, seed ^ 0x22);
    case SS_REAL: return ss_hash64(&v->u.r, 8, seed ^ 0x33);
    case SS_TEXT: return ss_hash64(v->u.str.s, v->u.str.n, seed ^ 0x44);
    case SS_NUM: return ss_hash64(v->u.str.s, v->u.str.n, seed ^ 0x55);
    case SS_JSON: return ss_hash64(v->u.str.s, v->u.str.n, seed ^ 0x66);
    case SS_TS: return ss_hash64(&v->u.i, 8, seed ^ 0x77);
    case SS_TSTZ: return ss_hash64(&v->u.i, 8, seed ^ 0x78);
    case SS_DATE: return ss_hash64(&v->u.i, 8, seed ^ 0x79);
    case SS_IVL: {
        uint64_t h = ss_hash64(&v->u.iv.us, 8, seed ^ 0x7a);
        return ss_hash_combine(h, ((uint64_t)(uint32_t)v->u.iv.months << 32) | (uint32_t)v->u.iv.days);
    }
    }
    return seed;
}

int ss_val_truthy(const ss_value_t *v)
{
    switch (v->t) {
    case SS_INT: return v->u.i != 0;
    case SS_REAL: return v->u.r != 0.0;
    case SS_TEXT: return atof(v->u.str.s) != 0.0;
    case SS_NUM: return strspn(v->u.str.s, "-0.") != v->u.str.n;
    default: return 0;
    }
}

int ss_val_to_text(const ss_value_t *v, ss_buf_t *out)
{
    switch (v->t) {
    case SS_NULL: return ss_buf_puts(out, "NULL");
    case SS_INT: return ss_buf_put_i64(out, v->u.i);
    case SS_REAL: return ss_buf_printf(out, "%.17g", v->u.r);
    case SS_TEXT: case SS_NUM: case SS_JSON: return ss_buf_append(out, v->u.str.s, v->u.str.n);
    case SS_TS: case SS_TSTZ: return ss_ts_format(v->u.i, v->t == SS_TSTZ, 0, out);
    case SS_DATE: return ss_date_format(v->u.i, out);
    case SS_IVL: return ss_interval_format(&v->u.iv, out);
    }
    return SS_ERR_INTERNAL;
}

/* The JSON string of a time value. */
static int time_json(const ss_value_t *v, ss_buf_t *out)
{
    int rc = ss_buf_putc(out, '"');
    if (!rc)
        rc = v->t == SS_IVL ? ss_interval_format(&v->u.iv, out)
             : v->t == SS_DATE ? ss_date_format(v->u.i, out)
                               : ss_ts_format(v->u.i, v->t == SS_TSTZ, 1, out);
    return rc ? rc : ss_buf_putc(out, '"');
}

int ss_val_to_json(const ss_value_t *v, ss_buf_t *out)
{
    switch (v->t) {
    case SS_NULL: return ss_buf_puts(out, "null");
    case SS_INT: return ss_buf_put_i64(out, v->u.i);
    case SS_REAL:
        if (!isfinite(v->u.r))
            return ss_buf_puts(out, "null");
        return ss_buf_printf(out, "%.17g", v->u.r);
    case SS_TEXT: return ss_buf_put_json_str(out, v->u.str.s, v->u.str.n);
    case SS_NUM: case SS_JSON: return ss_buf_append(out, v->u.str.s, v->u.str.n); /* exact digits / the document */
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: return time_json(v, out);
    }
    return SS_ERR_INTERNAL;
}

/* ---- numbers in text ---- */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

size_t ss_num_parse(const char *s, size_t n, ss_value_t *out, int *is_int_syntax)
{
    size_t i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    size_t st = i;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t nint = i - d0, nfrac = 0;
    int intsyn = 1;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        nfrac = i - f0;
        intsyn = 0;
    }
    if (nint + nfrac == 0) {
        *out = ss_val_int(0);
        if (is_int_syntax)
            *is_int_syntax = 0;
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = i + 1;
        if (e < n && (s[e] == '+' || s[e] == '-'))
            e++;
        if (e < n && s[e] >= '0' && s[e] <= '9') {
            while (e < n && s[e] >= '0' && s[e] <= '9')
                e++;
            i = e;
            intsyn = 0;
        }
    }
    char small[64], *tmp = i - st < sizeof small ? small : malloc(i - st + 1);
    if (!tmp) {
        *out = ss_val_int(0);
        return 0;
    }
    memcpy(tmp, s + st, i - st);
    tmp[i - st] = 0;
    int ok_int = 0;
    if (intsyn) {
        errno = 0;
        char *end;
        long long x = strtoll(tmp, &end, 10);
        if (!errno && *end == 0) {
            *out = ss_val_int(x);
            ok_int = 1;
        }
    }
    if (!ok_int)
        *out = ss_val_real(strtod(tmp, NULL));
    if (tmp != small)
        free(tmp);
    if (is_int_syntax)
        *is_int_syntax = intsyn;
    return i;
}

/* 1 if s[at..n) holds only blanks. */
static int rest_blank(const char *s, size_t at, size_t n)
{
    while (at < n && is_blank(s[at]))
        at++;
    return at == n;
}

int ss_real_text(double r, char *buf, size_t n)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, r);
        if (strtod(buf, NULL) == r)
            break;
    }
    return (int)strlen(buf);
}

static int bool_word(const char *s, size_t n, int *b)
{
    static const struct { const char *w; int b; } words[] = {
        {"t", 1}, {"true", 1}, {"y", 1}, {"yes", 1}, {"on", 1}, {"1", 1},
        {"f", 0}, {"false", 0}, {"n", 0}, {"no", 0}, {"off", 0}, {"0", 0},
    };
    size_t i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    while (n > i && is_blank(s[n - 1]))
        n--;
    char w[8];
    if (n - i >= sizeof w)
        return 0;
    for (size_t k = i; k < n; k++)
        w[k - i] = (char)tolower((unsigned char)s[k]);
    w[n - i] = 0;
    for (size_t k = 0; k < SS_ARRAY_LEN(words); k++)
        if (!strcmp(w, words[k].w)) {
            *b = words[k].b;
            return 1;
        }
    return 0;
}

/* Quoted excerpt of a text value for error messages. */
static const char *excerpt(const ss_value_t *v, char *buf, size_t n)
{
    size_t len = v->u.str.n < 40 ? v->u.str.n : 40;
    snprintf(buf, n, "\"%.*s%s\"", (int)len, v->u.str.s, v->u.str.n > 40 ? "..." : "");
    return buf;
}

/* Any number or numeric text to NUMERIC (rounded to the typmod's scale), text in *tmp. */
static int coerce_numeric(const ss_value_t *v, int typmod, ss_value_t *out, char **tmp, char *err,
                          size_t errsz)
{
    ss_dec_t d = SS_DEC_INIT;
    int rc;
    switch (v->t) {
    case SS_INT: rc = ss_dec_from_i64(v->u.i, &d); break;
    case SS_REAL: rc = ss_dec_from_double(v->u.r, &d, err, errsz); break;
    case SS_TEXT: case SS_NUM: rc = ss_dec_parse(v->u.str.s, v->u.str.n, &d, err, errsz); break;
    default: rc = ss_seterr(err, errsz, SS_ERR_INVALID, "expected NUMERIC, got JSON"); break;
    }
    if (!rc && typmod >= 0)
        rc = ss_dec_apply_typmod(&d, ss_typmod_precision(typmod), ss_typmod_scale(typmod), err, errsz);
    ss_buf_t b = SS_BUF_INIT;
    if (!rc && (rc = ss_dec_to_text(&d, &b)))
        ss_seterr(err, errsz, rc, "out of memory");
    ss_dec_free(&d);
    if (rc) {
        ss_buf_free(&b);
        return rc == SS_ERR_NOMEM ? (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : rc;
    }
    size_t n = b.len;
    *tmp = ss_buf_take(&b);
    *out = ss_val_num_ref(*tmp, n);
    return SS_OK;
}

/* Text holding a JSON document (or a number) to JSON, stored compact. */
static int coerce_json(const ss_value_t *v, ss_value_t *out, char **tmp, char *err, size_t errsz)
{
    if (v->t == SS_JSON)
        return SS_OK;
    ss_buf_t b = SS_BUF_INIT;
    int rc;
    if (v->t == SS_TEXT)
        rc = ss_jtext_compact(v->u.str.s, v->u.str.n, &b, err, errsz);
    else if (v->t == SS_REAL && !isfinite(v->u.r))
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "cannot convert a non-finite number to JSON");
    else if (ss_vtype_is_time(v->t) || v->t == SS_IVL)
        rc = ss_val_to_json(v, &b); /* a JSON string */
    else
        rc = ss_val_to_text(v, &b);
    if (rc) {
        ss_buf_free(&b);
        return rc;
    }
    size_t n = b.len;
    *tmp = ss_buf_take(&b);
    *out = ss_val_json_ref(*tmp, n);
    return SS_OK;
}

static const char *vtype_word(ss_vtype_t t)
{
    switch (t) {
    case SS_INT: return "an integer";
    case SS_REAL: return "a real";
    case SS_TEXT: return "text";
    case SS_NUM: return "a numeric";
    case SS_JSON: return "json";
    case SS_TS: return "a timestamp";
    case SS_TSTZ: return "a timestamptz";
    case SS_DATE: return "a date";
    case SS_IVL: return "an interval";
    default: return "NULL";
    }
}

/* Any value to a time type t (TIMESTAMP, TIMESTAMPTZ, DATE, INTERVAL). Text is parsed (ss_time.h);
 * a number is an epoch (or an interval's length) in units of 1/typmod second when typmod > 0. */
static int coerce_time(const ss_value_t *v, ss_coltype_t t, int typmod, ss_value_t *out, char *err, size_t errsz)
{
    int tz = t == SS_COL_TIMESTAMPTZ;
    if (v->t == SS_TEXT) {
        if (t == SS_COL_INTERVAL) {
            ss_interval_t iv;
            int rc = ss_interval_parse(v->u.str.s, v->u.str.n, NULL, &iv, err, errsz);
            if (!rc)
                *out = ss_val_interval(iv);
            return rc;
        }
        int64_t us, d;
        if (t == SS_COL_DATE && !ss_date_parse(v->u.str.s, v->u.str.n, &d, err, errsz)) {
            *out = ss_val_date(d);
            return SS_OK;
        }
        char e2[SS_ERRSZ];
        int rc = ss_ts_parse(v->u.str.s, v->u.str.n, &us, t == SS_COL_DATE ? e2 : err, t == SS_COL_DATE ? sizeof e2 : errsz);
        if (!rc)
            *out = t == SS_COL_DATE ? ss_val_date(us >= 0 ? us / SS_USEC_PER_DAY : -((-us + SS_USEC_PER_DAY - 1) / SS_USEC_PER_DAY))
                                    : ss_val_ts(us, tz);
        return rc;
    }
    if (ss_vtype_is_time(v->t) && t != SS_COL_INTERVAL) {
        int64_t us = ss_val_time_us(v);
        *out = t == SS_COL_DATE ? ss_val_date(us >= 0 ? us / SS_USEC_PER_DAY : -((-us + SS_USEC_PER_DAY - 1) / SS_USEC_PER_DAY))
                                : ss_val_ts(us, tz);
        return SS_OK;
    }
    if (v->t == SS_IVL && t == SS_COL_INTERVAL)
        return SS_OK;
    if ((v->t == SS_INT || v->t == SS_REAL) && typmod > 0 && t != SS_COL_DATE) {
        double x = v->t == SS_INT ? (double)v->u.i : v->u.r;
        double us = x * (1e6 / typmod);
        if (!isfinite(us) || fabs(us) > 9.2e18 || (t != SS_COL_INTERVAL && !ss_ts_in_range((int64_t)us)))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "%s out of range: %.17g", ss_coltype_name(t), x);
        int64_t u = v->t == SS_INT && typmod == 1000000 ? v->u.i : (int64_t)llround(us);
        *out = t == SS_COL_INTERVAL ? ss_val_interval((ss_interval_t){u, 0, 0}) : ss_val_ts(u, tz);
        return SS_OK;
    }
    if (v->t == SS_INT || v->t == SS_REAL)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "expected %s as text (%s), got the number %.17g (to read epoch numbers, give the stream "
                         "WITH (timestamp_format = 'epoch_s' | 'epoch_ms' | 'epoch_us'))",
                         ss_coltype_name(t), t == SS_COL_INTERVAL ? "'5 minutes'" : t == SS_COL_DATE ? "'2024-03-01'"
                                                                                      : "'2024-03-01T12:00:00Z'",
                         v->t == SS_INT ? (double)v->u.i : v->u.r);
    return ss_seterr(err, errsz, SS_ERR_INVALID, "expected %s, got %s", ss_coltype_name(t), vtype_word(v->t));
}

int ss_val_coerce(const ss_value_t *v, ss_coltype_t t, ss_value_t *out, char **tmp,
                  char *err, size_t errsz)
{
    char ex[64];
    *tmp = NULL;
    *out = *v;
    if (v->t == SS_NULL || t == SS_COL_ANY)
        return SS_OK;
    if ((ss_vtype_is_time(v->t) || v->t == SS_IVL) && t != SS_COL_TEXT && t != SS_COL_JSON && !ss_coltype_is_time(t) &&
        t != SS_COL_INTERVAL)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "expected %s, got %s", ss_coltype_name(t), vtype_word(v->t));
    if (v->t == SS_TEXT && memchr(v->u.str.s, 0, v->u.str.n))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "text contains a NUL character (\\u0000), which %s cannot hold",
                         t == SS_COL_TEXT ? "TEXT" : ss_coltype_name(t));
    if (v->t == SS_REAL && !isfinite(v->u.r))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s is not a finite number (NaN and infinities are not supported)",
                         isnan(v->u.r) ? "NaN" : "infinity");
    switch (t) {
    case SS_COL_TIMESTAMP: case SS_COL_TIMESTAMPTZ: case SS_COL_DATE: case SS_COL_INTERVAL:
        return coerce_time(v, t, -1, out, err, errsz);
    case SS_COL_TEXT:
        if (v->t != SS_TEXT) {
            char buf[64];
            if (ss_vtype_has_str(v->t)) { /* NUMERIC and JSON as their text */
                *out = ss_val_text_ref(v->u.str.s, v->u.str.n);
                return SS_OK;
            }
            if (ss_vtype_is_time(v->t) || v->t == SS_IVL) { /* as PostgreSQL prints them */
                ss_buf_t b = SS_BUF_INIT;
                if (ss_val_to_text(v, &b)) {
                    ss_buf_free(&b);
                    return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                }
                size_t n = b.len;
                *tmp = ss_buf_take(&b);
                *out = ss_val_text_ref(*tmp, n);
                return SS_OK;
            }
            int len = v->t == SS_INT ? snprintf(buf, sizeof buf, "%lld", (long long)v->u.i)
                                     : ss_real_text(v->u.r, buf, sizeof buf);
            if (!(*tmp = ss_strndup(buf, (size_t)len)))
                return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            *out = ss_val_text_ref(*tmp, (size_t)len);
        }
        return SS_OK;
    case SS_COL_BOOL: {
        int b;
        if (v->t == SS_INT && (v->u.i == 0 || v->u.i == 1))
            return SS_OK;
        if (v->t == SS_TEXT && bool_word(v->u.str.s, v->u.str.n, &b)) {
            *out = ss_val_int(b);
            return SS_OK;
        }
        if (v->t == SS_TEXT)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "expected BOOLEAN (true/false, t/f, yes/no, on/off, 1/0), got %s",
                             excerpt(v, ex, sizeof ex));
        return ss_seterr(err, errsz, SS_ERR_INVALID, "expected BOOLEAN, got the number %s",
                         v->t == SS_INT ? (snprintf(ex, sizeof ex, "%lld", (long long)v->u.i), ex)
                                        : (ss_real_text(v->u.r, ex, sizeof ex), ex));
    }
    case SS_COL_INT:
        if (v->t == SS_INT)
            return SS_OK;
        if (v->t == SS_REAL) {
            if (v->u.r == floor(v->u.r) && v->u.r >= -9223372036854775808.0 && v->u.r < 9223372036854775808.0) {
                *out = ss_val_int((int64_t)v->u.r);
                return SS_OK;
            }
            ss_real_text(v->u.r, ex, sizeof ex);
            return ss_seterr(err, errsz, SS_ERR_INVALID, v->u.r == floor(v->u.r) ? "%s is out of range for INT (64-bit)"
                                                                                 : "expected INT, got %s", ex);
        }
        {
            ss_value_t x;
            int intsyn = 0;
            size_t end = ss_num_parse(v->u.str.s, v->u.str.n, &x, &intsyn);
            if (end && intsyn && rest_blank(v->u.str.s, end, v->u.str.n)) {
                if (x.t == SS_INT) {
                    *out = x;
                    return SS_OK;
                }
                return ss_seterr(err, errsz, SS_ERR_INVALID, "%s is out of range for INT (64-bit)",
                                 excerpt(v, ex, sizeof ex));
            }
        }
        return ss_seterr(err, errsz, SS_ERR_INVALID, "expected INT, got %s", excerpt(v, ex, sizeof ex));
    case SS_COL_REAL:
        if (v->t == SS_REAL)
            return SS_OK;
        if (v->t == SS_INT) {
            *out = ss_val_real((double)v->u.i);
            return SS_OK;
        }
        {
            ss_value_t x;
            size_t end = ss_num_parse(v->u.str.s, v->u.str.n, &x, NULL);
            if (end && rest_blank(v->u.str.s, end, v->u.str.n)) {
                double d = x.t == SS_INT ? (double)x.u.i : x.u.r;
                if (!isfinite(d))
                    return ss_seterr(err, errsz, SS_ERR_INVALID, "%s is out of range for REAL", excerpt(v, ex, sizeof ex));
                *out = ss_val_real(d);
                return SS_OK;
            }
        }
        return ss_seterr(err, errsz, SS_ERR_INVALID, "expected REAL, got %s", excerpt(v, ex, sizeof ex));
    case SS_COL_NUMERIC:
        return coerce_numeric(v, -1, out, tmp, err, errsz);
    case SS_COL_JSON:
        return coerce_json(v, out, tmp, err, errsz);
    default:
        return SS_OK;
    }
}

int ss_val_coerce_tm(const ss_value_t *v, ss_coltype_t t, int typmod, ss_value_t *out, char **tmp,
                     char *err, size_t errsz)
{
    if (t == SS_COL_NUMERIC && v->t != SS_NULL) {
        *tmp = NULL;
        return coerce_numeric(v, typmod, out, tmp, err, errsz);
    }
    if ((ss_coltype_is_time(t) || t == SS_COL_INTERVAL) && v->t != SS_NULL) {
        *tmp = NULL;
        *out = *v;
        return coerce_time(v, t, typmod, out, err, errsz);
    }
    return ss_val_coerce(v, t, out, tmp, err, errsz);
}

ss_row_t *ss_row_new(int n)
{
    if (n < 0)
        return NULL;
    ss_row_t *r = calloc(1, sizeof *r + (size_t)n * sizeof(ss_value_t));
    if (r)
        r->n = n;
    return r;
}

void ss_row_free(ss_row_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        if (ss_vtype_has_str(r->v[i].t))
            free(r->v[i].u.str.s);
    free(r);
}

int ss_row_set(ss_row_t *r, int i, const ss_value_t *v)
{
    if (i < 0 || i >= r->n)
        return SS_ERR_INVALID;
    ss_value_t nv = *v;
    if (ss_vtype_has_str(v->t)) {
        nv.u.str.s = ss_strndup(v->u.str.s ? v->u.str.s : "", v->u.str.n);
        if (!nv.u.str.s)
            return SS_ERR_NOMEM;
    }
    if (ss_vtype_has_str(r->v[i].t))
        free(r->v[i].u.str.s);
    r->v[i] = nv;
    return SS_OK;
}

ss_row_t *ss_row_copy(const ss_row_t *r)
{
    ss_row_t *c = ss_row_new(r->n);
    if (!c)
        return NULL;
    for (int i = 0; i < r->n; i++)
        if (ss_row_set(c, i, &r->v[i])) {
            ss_row_free(c);
            return NULL;
        }
    return c;
}

int ss_row_cmp(const ss_row_t *a, const ss_row_t *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (int i = 0; i < a->n; i++) {
        int c = ss_val_cmp(&a->v[i], &b->v[i]);
        if (c)
            return c;
    }
    return 0;
}

uint64_t ss_row_hash(const ss_row_t *r)
{
    uint64_t h = 0xabcdef12345ULL ^ (uint64_t)r->n;
    for (int i = 0; i < r->n; i++)
        h = ss_val_hash(&r->v[i], h);
    return h;
}

uint64_t ss_row_hash_cols(const ss_row_t *r, const int *cols, int ncols)
{
    uint64_t h = 0xabcdef12345ULL ^ (uint64_t)ncols;
    for (int i = 0; i < ncols; i++)
        h = ss_val_hash(&r->v[cols[i]], h);
    return h;
}

int ss_row_cmp_cols(const ss_row_t *a, const int *acols, const ss_row_t *b, const int *bcols, int ncols)
{
    for (int i = 0; i < ncols; i++) {
        int c = ss_val_cmp(&a->v[acols[i]], &b->v[bcols[i]]);
        if (c)
            return c;
    }
    return 0;
}

/* Encoding: u32 n, then per value a tag byte and payload (i64 / f64 / u32 len + bytes), little endian. */
int ss_row_encode(const ss_row_t *r, ss_buf_t *out)
{
    uint32_t n = (uint32_t)r->n;
    int rc = ss_buf_append(out, &n, 4);
    for (int i = 0; i < r->n && !rc; i++) {
        const ss_value_t *v = &r->v[i];
        unsigned char tag = (unsigned char)v->t;
        rc = ss_buf_append(out, &tag, 1);
        if (rc)
            break;
        if (v->t == SS_INT || ss_vtype_is_time(v->t))
            rc = ss_buf_append(out, &v->u.i, 8);
        else if (v->t == SS_IVL) {
            rc = ss_buf_append(out, &v->u.iv.us, 8);
            rc = rc ? rc : ss_buf_append(out, &v->u.iv.days, 4);
            rc = rc ? rc : ss_buf_append(out, &v->u.iv.months, 4);
        } else if (v->t == SS_REAL) {
            double d = v->u.r == 0.0 ? 0.0 : v->u.r; /* one encoding for 0.0 and -0.0 */
            rc = ss_buf_append(out, &d, 8);
        } else if (ss_vtype_has_str(v->t)) {
            uint32_t len = (uint32_t)v->u.str.n;
            rc = ss_buf_append(out, &len, 4);
            if (!rc)
                rc = ss_buf_append(out, v->u.str.s, len);
        }
    }
    return rc;
}

int ss_row_decode(const void *p, size_t n, ss_row_t **out)
{
    const unsigned char *s = p, *e = s + n;
    uint32_t cnt;
    *out = NULL;
    if (n < 4)
        return SS_ERR_INVALID;
    memcpy(&cnt, s, 4);
    s += 4;
    if (cnt > (uint32_t)(n - 4))
        return SS_ERR_INVALID;
    ss_row_t *r = ss_row_new((int)cnt);
    if (!r)
        return SS_ERR_NOMEM;
    for (uint32_t i = 0; i < cnt; i++) {
        if (s >= e)
            goto bad;
        unsigned char tag = *s++;
        ss_value_t v = ss_val_null();
        if (tag == SS_INT || tag == SS_REAL || ss_vtype_is_time((ss_vtype_t)tag)) {
            if (e - s < 8)
                goto bad;
            v.t = (ss_vtype_t)tag;
            memcpy(tag == SS_REAL ? (void *)&v.u.r : (void *)&v.u.i, s, 8);
            s += 8;
        } else if (tag == SS_IVL) {
            if (e - s < 16)
                goto bad;
            v.t = SS_IVL;
            memcpy(&v.u.iv.us, s, 8);
            memcpy(&v.u.iv.days, s + 8, 4);
            memcpy(&v.u.iv.months, s + 12, 4);
            s += 16;
        } else if (ss_vtype_has_str((ss_vtype_t)tag)) {
            uint32_t len;
            if (e - s < 4)
                goto bad;
            memcpy(&len, s, 4);
            s += 4;
            if ((size_t)(e - s) < len)
                goto bad;
            v = ss_val_text_ref((const char *)s, len);
            v.t = (ss_vtype_t)tag;
            s += len;
        } else if (tag != SS_NULL)
            goto bad;
        if (ss_row_set(r, (int)i, &v)) {
            ss_row_free(r);
            return SS_ERR_NOMEM;
        }
    }
    if (s != e)
        goto bad;
    *out = r;
    return SS_OK;
bad:
    ss_row_free(r);
    return SS_ERR_INVALID;
}

int ss_row_to_json(const ss_row_t *r, const ss_schema_t *s, ss_buf_t *out)
{
    int rc = ss_buf_putc(out, '{');
    for (int i = 0; i < r->n && !rc; i++) {
        if (i)
            rc = ss_buf_putc(out, ',');
        char tmp[32];
        const char *name = s && i < s->n && s->names[i] ? s->names[i] : NULL;
        if (!name) {
            snprintf(tmp, sizeof tmp, "c%d", i);
            name = tmp;
        }
        if (!rc)
            rc = ss_buf_put_json_str(out, name, strlen(name));
        if (!rc)
            rc = ss_buf_putc(out, ':');
        if (!rc)
            rc = ss_val_to_json(&r->v[i], out);
    }
    return rc ? rc : ss_buf_putc(out, '}');
}

ss_schema_t *ss_schema_new(int n)
{
    ss_schema_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n = n;
    s->names = calloc((size_t)n + 1, sizeof(char *));
    s->types = calloc((size_t)n + 1, sizeof(ss_coltype_t));
    s->is_key = calloc((size_t)n + 1, sizeof(int));
    s->typmod = malloc(((size_t)n + 1) * sizeof(int));
    if (!s->names || !s->types || !s->is_key || !s->typmod) {
        ss_schema_free(s);
        return NULL;
    }
    for (int i = 0; i <= n; i++)
        s->typmod[i] = -1;
    if (0) {
        ss_schema_free(s);
        return NULL;
    }
    return s;
}

void ss_schema_free(ss_schema_t *s)
{
    if (!s)
        return;
    if (s->names)
        for (int i = 0; i < s->n; i++)
            free(s->names[i]);
    free(s->names);
    free(s->types);
    free(s->is_key);
    free(s->typmod);
    free(s);
}

ss_schema_t *ss_schema_copy(const ss_schema_t *s)
{
    ss_schema_t *c = ss_schema_new(s->n);
    if (!c)
        return NULL;
    for (int i = 0; i < s->n; i++)
        if (ss_schema_set(c, i, s->names[i], s->types[i], s->is_key[i])) {
            ss_schema_free(c);
            return NULL;
        } else
            c->typmod[i] = s->typmod ? s->typmod[i] : -1;
    return c;
}

int ss_schema_set(ss_schema_t *s, int i, const char *name, ss_coltype_t t, int is_key)
{
    if (i < 0 || i >= s->n)
        return SS_ERR_INVALID;
    char *nm = ss_strdup(name);
    if (name && !nm)
        return SS_ERR_NOMEM;
    free(s->names[i]);
    s->names[i] = nm;
    s->types[i] = t;
    s->is_key[i] = is_key;
    s->typmod[i] = -1;
    return SS_OK;
}

void ss_schema_set_typmod(ss_schema_t *s, int i, int typmod)
{
    if (i >= 0 && i < s->n)
        s->typmod[i] = typmod;
}

int ss_schema_find(const ss_schema_t *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (s->names[i] && ss_strcaseeq(s->names[i], name))
            return i;
    return -1;
}

int ss_schema_keys(const ss_schema_t *s, int *out, int max)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->is_key[i] && k < max)
            out[k++] = i;
    return k;
}

const char *ss_coltype_name(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_TEXT: return "TEXT";
    case SS_COL_INT: return "INT";
    case SS_COL_REAL: return "REAL";
    case SS_COL_BOOL: return "BOOLEAN";
    case SS_COL_NUMERIC: return "NUMERIC";
    case SS_COL_JSON: return "JSON";
    case SS_COL_TIMESTAMP: return "TIMESTAMP";
    case SS_COL_TIMESTAMPTZ: return "TIMESTAMPTZ";
    case SS_COL_DATE: return "DATE";
    case SS_COL_INTERVAL: return "INTERVAL";
    default: return "ANY";
    }
}

void ss_zset_init(ss_zset_t *z) { memset(z, 0, sizeof *z); z->consolidated = 1; }

void ss_zset_clear(ss_zset_t *z)
{
    for (size_t i = 0; i < z->n; i++)
        ss_row_free(z->e[i].row);
    z->n = 0;
    z->consolidated = 1;
}

void ss_zset_destroy(ss_zset_t *z)
{
    ss_zset_clear(z);
    free(z->e);
    ss_zset_init(z);
}

int ss_zset_add(ss_zset_t *z, ss_row_t *row, int64_t w)
{
    if (!row)
        return SS_ERR_NOMEM;
    if (w == 0) {
        ss_row_free(row);
        return SS_OK;
    }
    if (z->n == z->cap) {
        size_t nc = z->cap ? z->cap * 2 : 16;
        ss_zentry_t *e = realloc(z->e, nc * sizeof *e);
        if (!e) {
            ss_row_free(row);
            return SS_ERR_NOMEM;
        }
        z->e = e;
        z->cap = nc;
    }
    z->e[z->n].row = row;
    z->e[z->n].w = w;
    z->n++;
    z->consolidated = 0;
    return SS_OK;
}

int ss_zset_add_copy(ss_zset_t *z, const ss_row_t *row, int64_t w)
{
    if (w == 0)
        return SS_OK;
    return ss_zset_add(z, ss_row_copy(row), w);
}

int ss_zset_extend(ss_zset_t *z, const ss_zset_t *src, int64_t mul)
{
    /* a copy of a consolidated set into an empty one is consolidated (no re-sort later) */
    int stays = z->n == 0 && src->consolidated && mul != 0;
    for (size_t i = 0; i < src->n; i++) {
        int rc = ss_zset_add_copy(z, src->e[i].row, src->e[i].w * mul);
        if (rc)
            return rc;
    }
    if (stays && z->n == src->n)
        z->consolidated = 1;
    return SS_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    return ss_row_cmp(((const ss_zentry_t *)a)->row, ((const ss_zentry_t *)b)->row);
}

int ss_zset_consolidate(ss_zset_t *z)
{
    if (z->consolidated)
        return SS_OK;
    /* input that is already in order (a source's consolidated output through a projection
     * that keeps its leading columns) needs no sort: one pass finds out */
    size_t k = 1;
    while (k < z->n && entry_cmp(&z->e[k - 1], &z->e[k]) < 0)
        k++;
    if (k < z->n)
        qsort(z->e, z->n, sizeof *z->e, entry_cmp);
    size_t o = 0;
    for (size_t i = 0; i < z->n;) {
        size_t j = i + 1;
        int64_t w = z->e[i].w;
        while (j < z->n && ss_row_cmp(z->e[i].row, z->e[j].row) == 0) {
            w += z->e[j].w;
            ss_row_free(z->e[j].row);
            j++;
        }
        if (w == 0)
            ss_row_free(z->e[i].row);
        else {
            z->e[o].row = z->e[i].row;
            z->e[o].w = w;
            o++;
        }
        i = j;
    }
    z->n = o;
    z->consolidated = 1;
    return SS_OK;
}

int ss_zset_equal(const ss_zset_t *a, const ss_zset_t *b)
{
    ss_zset_t ca, cb;
    ss_zset_init(&ca);
    ss_zset_init(&cb);
    int eq = 0;
    if (ss_zset_extend(&ca, a, 1) || ss_zset_extend(&cb, b, 1))
        goto out;
    ss_zset_consolidate(&ca);
    ss_zset_consolidate(&cb);
    if (ca.n != cb.n)
        goto out;
    for (size_t i = 0; i < ca.n; i++)
        if (ca.e[i].w != cb.e[i].w || ss_row_cmp(ca.e[i].row, cb.e[i].row))
            goto out;
    eq = 1;
out:
    ss_zset_destroy(&ca);
    ss_zset_destroy(&cb);
    return eq;
}

int ss_zset_dump(const ss_zset_t *z, const ss_schema_t *s, ss_buf_t *out)
{
    for (size_t i = 0; i < z->n; i++) {
        int rc = ss_buf_printf(out, "%+lld\t", (long long)z->e[i].w);
        if (!rc)
            rc = ss_row_to_json(z->e[i].row, s, out);
        if (!rc)
            rc = ss_buf_putc(out, '\n');
        if (rc)
            return rc;
    }
    return SS_OK;
}
