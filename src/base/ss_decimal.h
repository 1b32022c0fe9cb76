/*
 * ss_decimal.h — exact decimal arithmetic for the NUMERIC/DECIMAL SQL type,
 * with PostgreSQL's rules for result scales (add/sub: the larger scale; mul:
 * the sum of scales; div: at least 16 significant digits and never less than
 * either input's scale), rounding half away from zero, and typmods
 * NUMERIC(precision, scale).
 *
 * A value ss_dec_t is sign, display scale and a little-endian array of decimal
 * digits (owned by the value, freed with ss_dec_free). NUMERIC values travel in
 * rows as text in canonical form ("-12.340": no leading zeros, exactly `scale`
 * digits after the point) in an SS_NUM value; ss_dec_parse reads that form and
 * any PostgreSQL numeric literal ("1e3", " +.5 ").
 */
#ifndef SS_DECIMAL_H
#define SS_DECIMAL_H

#include "ss_base.h"

#include <stdint.h>

#define SS_DEC_MAX_SCALE 1000   /* digits after the point (PostgreSQL's display-scale limit) */
#define SS_DEC_MAX_DIGITS 2000  /* digits in all */
#define SS_DEC_MAX_PRECISION 1000 /* NUMERIC(p, s): 1 <= p <= 1000, 0 <= s <= p */

typedef struct ss_dec {
    int neg;          /* 1 when negative (never for zero) */
    int scale;        /* display scale: digits after the point */
    int n;            /* digits in d; always >= scale */
    unsigned char *d; /* d[i] in 0..9 has weight 10^(i - scale); d[n-1] != 0 when n > scale; owned */
} ss_dec_t;

#define SS_DEC_INIT {0, 0, 0, NULL}

void ss_dec_free(ss_dec_t *a);
/* Reads a numeric literal (blanks around it allowed). SS_ERR_INVALID (err says why) when it is
 * not one or has too many digits. */
int ss_dec_parse(const char *s, size_t n, ss_dec_t *out, char *err, size_t errsz);
int ss_dec_from_i64(int64_t v, ss_dec_t *out);
/* As PostgreSQL's float8 -> numeric: the 15 significant digits of %.15g. SS_ERR_INVALID for NaN/Inf. */
int ss_dec_from_double(double v, ss_dec_t *out, char *err, size_t errsz);
/* Canonical text ("-0.50"). */
int ss_dec_to_text(const ss_dec_t *a, ss_buf_t *out);
double ss_dec_to_double(const ss_dec_t *a);
/* Rounded half away from zero; SS_ERR_INVALID "bigint out of range" when it does not fit. */
int ss_dec_to_i64(const ss_dec_t *a, int64_t *out, char *err, size_t errsz);

int ss_dec_cmp(const ss_dec_t *a, const ss_dec_t *b); /* numeric order; 1.0 == 1.00 */
int ss_dec_is_zero(const ss_dec_t *a);
int ss_dec_copy(const ss_dec_t *a, ss_dec_t *out);

/* out = a op b (out may not alias a or b). Errors: SS_ERR_INVALID "division by zero",
 * "value overflows numeric format"; SS_ERR_NOMEM. */
int ss_dec_add(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz);
int ss_dec_sub(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz);
int ss_dec_mul(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz);
int ss_dec_div(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz);
/* PostgreSQL's numeric mod: a - trunc(a / b) * b, scale max(scale a, scale b). */
int ss_dec_mod(const ss_dec_t *a, const ss_dec_t *b, ss_dec_t *out, char *err, size_t errsz);
/* a / b rounded to `scale` digits (no PostgreSQL scale selection). */
int ss_dec_div_scale(const ss_dec_t *a, const ss_dec_t *b, int scale, ss_dec_t *out, char *err, size_t errsz);

/* In place: round half away from zero / truncate to `scale` digits after the point (negative:
 * to tens, hundreds...; the display scale becomes max(scale, 0)). */
int ss_dec_round(ss_dec_t *a, int scale);
int ss_dec_trunc(ss_dec_t *a, int scale);
int ss_dec_floor(ss_dec_t *a); /* scale 0 */
int ss_dec_ceil(ss_dec_t *a);
/* NUMERIC(precision, scale): rounds to scale, then SS_ERR_INVALID "numeric field overflow"
 * when more than precision - scale digits are left before the point. */
int ss_dec_apply_typmod(ss_dec_t *a, int precision, int scale, char *err, size_t errsz);
/* Digits before the point (0 for |a| < 1). */
int ss_dec_int_digits(const ss_dec_t *a);

/* Typmod packing (as in the catalog): -1 = none, else precision << 16 | scale. */
static inline int ss_typmod_make(int precision, int scale) { return (precision << 16) | (scale & 0xffff); }
static inline int ss_typmod_precision(int tm) { return tm < 0 ? -1 : tm >> 16; }
static inline int ss_typmod_scale(int tm) { return tm < 0 ? -1 : tm & 0xffff; }

#endif
