/*
 * decimal.c — implements ss_decimal.h: exact decimal numbers for NUMERIC.
 * Magnitudes are little-endian arrays of decimal digits; add/sub/mul are
 * schoolbook, division is long division with one remainder comparison per
 * quotient digit. Result scales follow PostgreSQL (numeric.c: add_var, mul_var,
 * select_div_scale, mod_var), rounding is half away from zero everywhere.
 */
#include "ss_decimal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SIG_DIGITS 16 /* PostgreSQL's NUMERIC_MIN_SIG_DIGITS */

void ss_dec_free(ss_dec_t *a)
{
    if (!a)
        return;
    free(a->d);
    memset(a, 0, sizeof *a);
}

/* Drops high zeros above the point; zero is never negative. */
static void normalise(ss_dec_t *a)
{
    while (a->n > a->scale && a->d[a->n - 1] == 0)
        a->n--;
    int zero = 1;
    for (int i = 0; i < a->n && zero; i++)
        zero = a->d[i] == 0;
    if (zero)
        a->neg = 0;
}

static int overflow(char *err, size_t errsz)
{
    return ss_seterr(err, errsz, SS_ERR_INVALID, "value overflows numeric format");
}

/* Sets a to n digits (copied from d, or zeros when d is NULL) at scale. */
static int dec_set(ss_dec_t *a, const unsigned char *d, int n, int scale, int neg)
{
    unsigned char *p = malloc((size_t)(n > 0 ? n : 1));
    if (!p)
        return SS_ERR_NOMEM;
    if (d)
        memcpy(p, d, (size_t)n);
    else
        memset(p, 0, (size_t)(n > 0 ? n : 1));
    free(a->d);
    a->d = p;
    a->n = n;
    a->scale = scale;
    a->neg = neg;
    normalise(a);
    return SS_OK;
}

int ss_dec_copy(const ss_dec_t *a, ss_dec_t *out)
{
    return dec_set(out, a->d, a->n, a->scale, a->neg);
}

int ss_dec_parse(const char *s, size_t n, ss_dec_t *out, char *err, size_t errsz)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    size_t int0 = i;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    size_t int1 = i, frac0 = i, frac1 = i;
    if (i < n && s[i] == '.') {
        frac0 = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        frac1 = i;
    }
    long exp = 0;
    if (int1 == int0 && frac1 == frac0)
        goto bad;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= n || !isdigit((unsigned char)s[i]))
            goto bad;
        while (i < n && isdigit((unsigned char)s[i])) {
            exp = exp * 10 + (s[i++] - '0');
            if (exp > 100000)
                return overflow(err, errsz);
        }
        if (eneg)
            exp = -exp;
    }
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i != n)
        goto bad;
    /* digits int0..int1 then frac0..frac1; value = digits * 10^(exp - nfrac) */
    long nfrac = (long)(frac1 - frac0);
    long scale = nfrac - exp;
    if (scale < 0)
        scale = 0;
    long lead = (long)(int1 - int0);
    while (lead > 0 && s[int0] == '0') { /* skip leading zeros of the integer part */
        int0++;
        lead--;
    }
    long total = lead + nfrac; /* significant digits as written */
    /* digit positions: written digit k (0 = least significant, over int+frac) has exponent k - nfrac + exp */
    long pad = scale - (nfrac - exp); /* zeros appended below the written digits (exp > nfrac) */
    if (scale > SS_DEC_MAX_SCALE || total + pad > SS_DEC_MAX_DIGITS + SS_DEC_MAX_SCALE)
        return overflow(err, errsz);
    long len = total + pad;
    unsigned char *d = malloc((size_t)(len > 0 ? len : 1));
    if (!d)
        return SS_ERR_NOMEM;
    memset(d, 0, (size_t)(len > 0 ? len : 1));
    long k = pad;
    for (size_t j = frac1; j > frac0; j--)
        d[k++] = (unsigned char)(s[j - 1] - '0');
    for (size_t j = int1; j > int0; j--)
        d[k++] = (unsigned char)(s[j - 1] - '0');
    free(out->d);
    out->d = d;
    out->n = (int)len;
    out->scale = (int)scale;
    out->neg = neg;
    if (out->n < out->scale) { /* e.g. "0.5e-3": pad the fraction */
        unsigned char *p = realloc(out->d, (size_t)out->scale);
        if (!p)
            return SS_ERR_NOMEM;
        memset(p + out->n, 0, (size_t)(out->scale - out->n));
        out->d = p;
        out->n = out->scale;
    }
    normalise(out);
    if (out->n - out->scale > SS_DEC_MAX_DIGITS)
        return overflow(err, errsz);
    return SS_OK;
bad:
    return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid input syntax for type numeric: \"%.*s\"",
                     (int)(n > 60 ? 60 : n), s);
}

int ss_dec_from_i64(int64_t v, ss_dec_t *out)
{
    unsigned char d[20];
    int n = 0;
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (m) {
        d[n++] = (unsigned char)(m % 10);
        m /= 10;
    }
    return dec_set(out, d, n, 0, v < 0);
}

int ss_dec_from_double(double v, ss_dec_t *out, char *err, size_t errsz)
{
    if (!isfinite(v))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "cannot convert %s to numeric",
                         isnan(v) ? "NaN" : "infinity");
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", v);
    return ss_dec_parse(buf, strlen(buf), out, err, errsz);
}

int ss_dec_to_text(const ss_dec_t *a, ss_buf_t *out)
{
    int rc = SS_OK;
    if (a->neg)
        rc = ss_buf_putc(out, '-');
    if (a->n <= a->scale)
        rc |= ss_buf_putc(out, '0');
    for (int i = a->n - 1; i >= a->scale && !rc; i--)
        rc = ss_buf_putc(out, (char)('0' + a->d[i]));
    if (a->scale > 0 && !rc) {
        rc = ss_buf_putc(out, '.');
        for (int i = a->scale - 1; i >= 0 && !rc; i--)
            rc = ss_buf_putc(out, (char)('0' + (i < a->n ? a->d[i] : 0)));
    }
    return rc;
}

double ss_dec_to_double(const ss_dec_t *a)
{
    ss_buf_t b = SS_BUF_INIT;
    double r = 0;
    if (!ss_dec_to_text(a, &b))
        r = strtod(ss_buf_cstr(&b), NULL);
    ss_buf_free(&b);
    return r;
}

int ss_dec_int_digits(const ss_dec_t *a) { return a->n > a->scale ? a->n - a->scale : 0; }

int ss_dec_is_zero(const ss_dec_t *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->d[i])
            return 0;
    return 1;
}

/* ---- magnitudes ---- */

/* Digit of a at decimal exponent e (0 outside). */
static int digit_at(const ss_dec_t *a, int e)
{
    int i = e + a->scale;
    return i >= 0 && i < a->n ? a->d[i] : 0;
}

/* Exponent of the most significant non-zero digit; INT32_MIN... for zero returns -(1<<30). */
static int msd(const ss_dec_t *a)
{
    for (int i = a->n - 1; i >= 0; i--)
        if (a->d[i])
            return i - a->scale;
    return -(1 << 30);
}

static int cmp_abs(const ss_dec_t *a, const ss_dec_t *b)
{
    int ea = msd(a), eb = msd(b);
    if (ea != eb)
        return ea < eb ? -1 : 1;
    int lo = -SS_MAX(a->scale, b->scale);
    for (int e = ea; e >= lo; e--) {
        int x = digit_at(a, e), y = digit_at(b, e);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

int ss_dec_cmp(const ss_dec_t *a, const ss_dec_t *b)
{
    int za = ss_dec_is_zero(a), zb = ss_dec_is_zero(b);
    int sa = za ? 0 : a->neg ? -1 : 1, sb = zb ? 0 : b->neg ? -1 : 1;
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (sa == 0)
        return 0;
    int c = cmp_abs(a, b);
    return sa < 0 ? -c : c;
}

/* |a| + |b| (sub = 0) or |a| - |b| with |a| >= |b| (sub = 1) at scale max(scales). */
static int add_abs(const ss_dec_t *a, const ss_dec_t *b, int sub, int neg, ss_dec_t *out, char *err,
                   size_t errsz)
{
    int scale = SS_MAX(a->scale, b->scale);
    int top = SS_MAX(a->n - a->scale, b->n - b->scale) + 1;
    int n = top + scale;
    if (n - scale > SS_DEC_MAX_DIGITS + 1)
        return overflow(err, errsz);
    unsigned char *d = malloc((size_t)n);
    if (!d)
        return SS_ERR_NOMEM;
    int carry = 0;
    for (int i = 0; i < n; i++) {
        int e = i - scale;
        int x = digit_at(a, e) + (sub ? -digit_at(b, e) - carry : digit_at(b, e) + carry);
        carry = 0;
        if (x < 0) {
            x += 10;
            carry = 1;
        } else if (x > 9) {
            x -= 10;
            carry = 1;
        }
        d[i] = (unsigned char)x;
    }
    free(out->d);
    out->d = d;
    out->n = n;
    out->scale = scale;
    out->neg = neg;
    normalise(out);
    if (out->n - out->scale > SS_DEC_MAX_DIGITS)
        return overflow(err, errsz);
    return SS_OK;
}

static int add_signed(const ss_dec_t *a, const ss_dec_t *b, int bneg, ss_dec_t *out, char *err, size_t errsz)
{
    if (a->neg == bneg)
        return add_abs(a, b, 0, a->neg, out, err, errsz);
    if (cmp_abs(a, b) >= 0)
        return add_abs(a, b, 1, a->neg, out, err, errsz);
    return add_abs(b, a, 1, bneg, out, err, errsz);
}

int ss_dec_add(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz)
{
    return add_signed(a, b, b->neg, out, err, errsz);
}

int ss_dec_sub(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz)
{
    return add_signed(a, b, !b->neg && !ss_dec_is_zero(b), out, err, errsz);
}

int ss_dec_mul(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz)
{
    int n = a->n + b->n + 1, scale = a->scale + b->scale;
    if (n - scale > SS_DEC_MAX_DIGITS + 2 || scale > 2 * SS_DEC_MAX_SCALE)
        return overflow(err, errsz);
    int *acc = calloc((size_t)n, sizeof *acc);
    unsigned char *d = malloc((size_t)n);
    if (!acc || !d) {
        free(acc);
        free(d);
        return SS_ERR_NOMEM;
    }
    for (int i = 0; i < a->n; i++) {
        if (!a->d[i])
            continue;
        for (int j = 0; j < b->n; j++)
            acc[i + j] += a->d[i] * b->d[j];
        if (i % 8 == 7) /* keep the accumulators small */
            for (int k = 0; k + 1 < n; k++) {
                acc[k + 1] += acc[k] / 10;
                acc[k] %= 10;
            }
    }
    for (int k = 0; k < n; k++) {
        if (k + 1 < n)
            acc[k + 1] += acc[k] / 10;
        d[k] = (unsigned char)(acc[k] % 10);
    }
    free(acc);
    free(out->d);
    out->d = d;
    out->n = n;
    out->scale = scale;
    out->neg = a->neg != b->neg;
    normalise(out);
    if (out->scale > SS_DEC_MAX_SCALE)
        ss_dec_round(out, SS_DEC_MAX_SCALE);
    if (out->n - out->scale > SS_DEC_MAX_DIGITS)
        return overflow(err, errsz);
    return SS_OK;
}

/* Integer magnitude of a scaled by 10^shift (digits below the units dropped when shift < -scale). */
typedef struct nat {
    int n;
    unsigned char *d; /* little endian */
} nat_t;

static int nat_of(const ss_dec_t *a, int shift, nat_t *out)
{
    /* value * 10^(scale + shift) as an integer: digits of a shifted up by shift */
    int n = a->n + shift;
    if (n < 1)
        n = 1;
    out->d = calloc((size_t)n, 1);
    if (!out->d)
        return SS_ERR_NOMEM;
    out->n = n;
    for (int i = 0; i < a->n; i++)
        if (i + shift >= 0 && i + shift < n)
            out->d[i + shift] = a->d[i];
    while (out->n > 1 && out->d[out->n - 1] == 0)
        out->n--;
    return SS_OK;
}

static int nat_cmp(const nat_t *a, const unsigned char *b, int bn)
{
    while (bn > 1 && b[bn - 1] == 0)
        bn--;
    int an = a->n;
    while (an > 1 && a->d[an - 1] == 0)
        an--;
    if (an != bn)
        return an < bn ? -1 : 1;
    for (int i = an - 1; i >= 0; i--)
        if (a->d[i] != b[i])
            return a->d[i] < b[i] ? -1 : 1;
    return 0;
}

/* r -= b (r >= b) */
static void nat_sub(nat_t *r, const unsigned char *b, int bn)
{
    int borrow = 0;
    for (int i = 0; i < r->n; i++) {
        int x = r->d[i] - (i < bn ? b[i] : 0) - borrow;
        borrow = x < 0;
        r->d[i] = (unsigned char)(x < 0 ? x + 10 : x);
    }
}

/* q = num / den, *round_up when the remainder is at least half of den. q has num->n digits. */
static int nat_divmod(const nat_t *num, const nat_t *den, unsigned char *q, int *round_up)
{
    nat_t r = {0, calloc((size_t)num->n + den->n + 2, 1)};
    if (!r.d)
        return SS_ERR_NOMEM;
    r.n = 1;
    for (int i = num->n - 1; i >= 0; i--) {
        /* r = r * 10 + num[i] */
        memmove(r.d + 1, r.d, (size_t)r.n);
        r.d[0] = num->d[i];
        r.n++;
        while (r.n > 1 && r.d[r.n - 1] == 0)
            r.n--;
        int k = 0;
        while (nat_cmp(&r, den->d, den->n) >= 0) {
            nat_sub(&r, den->d, den->n);
            while (r.n > 1 && r.d[r.n - 1] == 0)
                r.n--;
            k++;
        }
        q[i] = (unsigned char)k;
    }
    /* 2r >= den ? */
    unsigned char *r2 = calloc((size_t)r.n + 2, 1);
    if (!r2) {
        free(r.d);
        return SS_ERR_NOMEM;
    }
    int carry = 0;
    for (int i = 0; i < r.n + 1; i++) {
        int x = (i < r.n ? r.d[i] : 0) * 2 + carry;
        r2[i] = (unsigned char)(x % 10);
        carry = x / 10;
    }
    nat_t t = {r.n + 1, r2};
    *round_up = nat_cmp(&t, den->d, den->n) >= 0;
    free(r2);
    free(r.d);
    return SS_OK;
}

/* a / b at `scale` digits, rounded (round = 1) or truncated. */
static int div_at(const ss_dec_t *a, const ss_dec_t *b, int scale, int round, ss_dec_t *out, char *err,
                  size_t errsz)
{
    if (ss_dec_is_zero(b))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "division by zero");
    /* Q = A * 10^k / B with A = |a|*10^sa, B = |b|*10^sb, k = scale + sb - sa */
    int k = scale + b->scale - a->scale;
    nat_t num = {0, NULL}, den = {0, NULL};
    int rc = nat_of(a, k > 0 ? k : 0, &num);
    if (!rc)
        rc = nat_of(b, k < 0 ? -k : 0, &den);
    unsigned char *q = rc ? NULL : calloc((size_t)num.n + 1, 1);
    if (!rc && !q)
        rc = SS_ERR_NOMEM;
    int up = 0;
    if (!rc)
        rc = nat_divmod(&num, &den, q, &up);
    if (!rc) {
        ss_dec_t r = {a->neg != b->neg, scale, num.n, q};
        q = NULL;
        if (round && up) { /* add one unit in the last place */
            int i = 0;
            while (i < r.n && r.d[i] == 9)
                r.d[i++] = 0;
            if (i == r.n) {
                unsigned char *p = realloc(r.d, (size_t)r.n + 1);
                if (!p) {
                    ss_dec_free(&r);
                    rc = SS_ERR_NOMEM;
                    goto out;
                }
                r.d = p;
                r.d[r.n++] = 0;
            }
            r.d[i]++;
        }
        if (r.n < r.scale) {
            unsigned char *p = realloc(r.d, (size_t)r.scale);
            if (!p) {
                ss_dec_free(&r);
                rc = SS_ERR_NOMEM;
                goto out;
            }
            memset(p + r.n, 0, (size_t)(r.scale - r.n));
            r.d = p;
            r.n = r.scale;
        }
        normalise(&r);
        ss_dec_free(out);
        *out = r;
        if (out->n - out->scale > SS_DEC_MAX_DIGITS)
            rc = overflow(err, errsz);
    }
out:
    free(q);
    free(num.d);
    free(den.d);
    return rc;
}

int ss_dec_div_scale(const ss_dec_t *a, const ss_dec_t *b, int scale, ss_dec_t *out, char *err, size_t errsz)
{
    return div_at(a, b, scale, 1, out, err, errsz);
}

/* PostgreSQL's NBASE (10^4) weight and first digit of a. */
static void nbase_first(const ss_dec_t *a, int *weight, int *first)
{
    int e = msd(a);
    if (e == -(1 << 30)) {
        *weight = 0;
        *first = 0;
        return;
    }
    int w = e >= 0 ? e / 4 : -((-e + 3) / 4);
    int f = 0;
    for (int x = 4 * w + 3; x >= 4 * w; x--)
        f = f * 10 + digit_at(a, x);
    *weight = w;
    *first = f;
}

int ss_dec_div(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz)
{
    int w1, f1, w2, f2;
    nbase_first(a, &w1, &f1);
    nbase_first(b, &w2, &f2);
    int qweight = w1 - w2;
    if (f1 <= f2)
        qweight--;
    int rscale = MIN_SIG_DIGITS - qweight * 4;
    rscale = SS_MAX(rscale, a->scale);
    rscale = SS_MAX(rscale, b->scale);
    rscale = SS_MAX(rscale, 0);
    rscale = SS_MIN(rscale, SS_DEC_MAX_SCALE);
    return div_at(a, b, rscale, 1, out, err, errsz);
}

int ss_dec_mod(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz)
{
    ss_dec_t q = SS_DEC_INIT, p = SS_DEC_INIT;
    int rc = div_at(a, b, 0, 0, &q, err, errsz);
    if (!rc)
        rc = ss_dec_mul(b, &q, &p, err, errsz);
    if (!rc)
        rc = ss_dec_sub(a, &p, out, err, errsz);
    ss_dec_free(&q);
    ss_dec_free(&p);
    return rc;
}

/* ---- rounding ---- */

/* Sets the display scale to max(scale, 0), rounding (mode 1), truncating (0), or flooring/ceiling
 * (2 = towards -inf, 3 = towards +inf) the digits dropped. */
static int rescale(ss_dec_t *a, int scale, int mode)
{
    int keep = scale; /* digits at exponents >= -keep survive */
    int nscale = scale > 0 ? scale : 0;
    int drop = a->scale - keep; /* low digits to drop */
    int up = 0;
    if (drop > 0) {
        int any = 0;
        for (int i = 0; i < drop && i < a->n; i++)
            any |= a->d[i] != 0;
        if (mode == 1)
            up = drop - 1 < a->n && a->d[drop - 1] >= 5;
        else if (mode == 2)
            up = any && a->neg;
        else if (mode == 3)
            up = any && !a->neg;
        for (int i = 0; i < drop && i < a->n; i++)
            a->d[i] = 0;
    }
    /* new digit array: exponent range [-nscale, top] */
    int top = SS_MAX(a->n - a->scale, 0) + 1;
    int n = top + nscale;
    unsigned char *d = calloc((size_t)n, 1);
    if (!d)
        return SS_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        d[i] = (unsigned char)digit_at(a, i - nscale);
    if (up) {
        int i = nscale - keep; /* the digit at exponent -keep */
        while (i < n && d[i] == 9)
            d[i++] = 0;
        if (i < n)
            d[i]++;
    }
    free(a->d);
    a->d = d;
    a->n = n;
    a->scale = nscale;
    normalise(a);
    return SS_OK;
}

int ss_dec_round(ss_dec_t *a, int scale) { return rescale(a, scale, 1); }
int ss_dec_trunc(ss_dec_t *a, int scale) { return rescale(a, scale, 0); }
int ss_dec_floor(ss_dec_t *a) { return rescale(a, 0, 2); }
int ss_dec_ceil(ss_dec_t *a) { return rescale(a, 0, 3); }

int ss_dec_apply_typmod(ss_dec_t *a, int precision, int scale, char *err, size_t errsz)
{
    if (precision < 0)
        return SS_OK;
    int rc = ss_dec_round(a, scale);
    if (rc)
        return rc;
    if (ss_dec_int_digits(a) > precision - scale)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "numeric field overflow: a field with precision %d, scale %d must round to an "
                         "absolute value less than 10^%d", precision, scale, precision - scale);
    return SS_OK;
}

int ss_dec_to_i64(const ss_dec_t *a, int64_t *out, char *err, size_t errsz)
{
    ss_dec_t r = SS_DEC_INIT;
    int rc = ss_dec_copy(a, &r);
    if (!rc)
        rc = ss_dec_round(&r, 0);
    if (rc)
        return rc;
    uint64_t m = 0;
    int big = r.n > 19;
    for (int i = r.n - 1; i >= 0 && !big; i--) {
        if (m > (UINT64_MAX - r.d[i]) / 10)
            big = 1;
        else
            m = m * 10 + r.d[i];
    }
    int neg = r.neg;
    ss_dec_free(&r);
    if (big || m > (uint64_t)INT64_MAX + (uint64_t)neg)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "bigint out of range");
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return SS_OK;
}
