/*
 * timeval.c — implements ss_time.h: the calendar, parsing and formatting of
 * timestamps, dates and intervals, interval arithmetic, DATE_TRUNC, EXTRACT and
 * DATE_BIN, with PostgreSQL's rules (UTC session time zone).
 */
#include "ss_time.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_US (-62135596800LL * SS_USEC_PER_SEC)                        /* 0001-01-01 00:00:00 */
#define MAX_US (253402300800LL * SS_USEC_PER_SEC - 1)                    /* 9999-12-31 23:59:59.999999 */

#define FAIL(...) ss_seterr(err, errsz, SS_ERR_INVALID, __VA_ARGS__)

/* ---- calendar (H. Hinnant's algorithms) ---- */

int64_t ss_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void ss_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int ss_days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[(m - 1) % 12];
}

int ss_ts_in_range(int64_t us) { return us >= MIN_US && us <= MAX_US; }

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }
static int64_t floormod(int64_t a, int64_t b) { return a - floordiv(a, b) * b; }

/* ---- parsing helpers ---- */

typedef struct scan {
    const char *p, *e;
} scan_t;

static void skip_blank(scan_t *s)
{
    while (s->p < s->e && isspace((unsigned char)*s->p))
        s->p++;
}

/* Exactly n digits (n > 0) or, with n < 0, one or more. */
static int digits(scan_t *s, int n, int64_t *out)
{
    int64_t v = 0;
    int k = 0;
    while (s->p < s->e && isdigit((unsigned char)*s->p) && (n < 0 || k < n)) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s->p++ - '0');
        k++;
    }
    if (k == 0 || (n > 0 && k != n))
        return -1;
    *out = v;
    return 0;
}

/* Fraction digits after '.', as microseconds (rounded half away from zero at the 7th digit). */
static int64_t frac_us(scan_t *s)
{
    int64_t v = 0;
    int k = 0, round = 0;
    while (s->p < s->e && isdigit((unsigned char)*s->p)) {
        if (k < 6)
            v = v * 10 + (*s->p - '0');
        else if (k == 6)
            round = *s->p >= '5';
        k++;
        s->p++;
    }
    for (; k < 6; k++)
        v *= 10;
    return v + round;
}

static const char *excerpt(const char *s, size_t n, char *buf, size_t bn)
{
    snprintf(buf, bn, "%.*s%s", (int)SS_MIN(n, (size_t)60), s, n > 60 ? "..." : "");
    return buf;
}

/* YYYY-MM-DD (a year of 4+ digits). */
static int parse_date_part(scan_t *s, int64_t *days)
{
    int64_t y, m, d;
    if (digits(s, -1, &y) || s->p >= s->e || *s->p++ != '-' || digits(s, 2, &m) || s->p >= s->e ||
        *s->p++ != '-' || digits(s, 2, &d))
        return -1;
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > ss_days_in_month(y, (int)m))
        return -2;
    *days = ss_days_from_civil(y, (int)m, (int)d);
    return 0;
}

/* hh:mm[:ss[.ffffff]] -> µs of the day (24:00:00 allowed, as PostgreSQL does). */
static int parse_time_part(scan_t *s, int64_t *us)
{
    int64_t h, mi, sec = 0, f = 0;
    if (digits(s, 2, &h) || s->p >= s->e || *s->p++ != ':' || digits(s, 2, &mi))
        return -1;
    if (s->p < s->e && *s->p == ':') {
        s->p++;
        if (digits(s, 2, &sec))
            return -1;
        if (s->p < s->e && *s->p == '.') {
            s->p++;
            f = frac_us(s);
        }
    }
    if (h > 24 || mi > 59 || sec > 59 || (h == 24 && (mi || sec || f)))
        return -2;
    *us = ((h * 60 + mi) * 60 + sec) * SS_USEC_PER_SEC + f;
    return 0;
}

/* Z, UTC, GMT, +hh, +hh:mm, +hhmm (seconds east of UTC). */
static int parse_zone(scan_t *s, int64_t *off_sec)
{
    skip_blank(s);
    *off_sec = 0;
    if (s->p >= s->e)
        return 0;
    if (*s->p == 'Z' || *s->p == 'z') {
        s->p++;
        return 0;
    }
    if (s->e - s->p >= 3 && (!strncasecmp(s->p, "UTC", 3) || !strncasecmp(s->p, "GMT", 3))) {
        s->p += 3;
        return 0;
    }
    if (*s->p != '+' && *s->p != '-')
        return -1;
    int sign = *s->p++ == '-' ? -1 : 1;
    int64_t h, m = 0;
    if (digits(s, 2, &h))
        return -1;
    if (s->p < s->e && *s->p == ':')
        s->p++;
    if (s->p < s->e && isdigit((unsigned char)*s->p) && digits(s, 2, &m))
        return -1;
    if (h > 15 || m > 59)
        return -2;
    *off_sec = sign * (h * 3600 + m * 60);
    return 0;
}

int ss_ts_parse(const char *str, size_t n, int64_t *us, char *err, size_t errsz)
{
    char ex[80];
    scan_t s = {str, str + n};
    skip_blank(&s);
    int64_t days = 0, tod = 0, off = 0;
    int rc = parse_date_part(&s, &days);
    if (!rc && s.p < s.e && (*s.p == 'T' || *s.p == 't' || *s.p == ' ')) {
        scan_t save = s;
        s.p++;
        skip_blank(&s);
        if (s.p < s.e && isdigit((unsigned char)*s.p))
            rc = parse_time_part(&s, &tod);
        else
            s = save;
    }
    if (!rc)
        rc = parse_zone(&s, &off);
    skip_blank(&s);
    if (!rc && s.p != s.e)
        rc = -1;
    if (rc == -2)
        return FAIL("date/time field value out of range: \"%s\"", excerpt(str, n, ex, sizeof ex));
    if (rc)
        return FAIL("invalid input syntax for type timestamp: \"%s\" (expected ISO 8601, e.g. "
                    "'2024-03-01 12:00:00' or '2024-03-01T12:00:00Z')", excerpt(str, n, ex, sizeof ex));
    int64_t v = days * SS_USEC_PER_DAY + tod - off * SS_USEC_PER_SEC;
    if (!ss_ts_in_range(v))
        return FAIL("timestamp out of range: \"%s\"", excerpt(str, n, ex, sizeof ex));
    *us = v;
    return SS_OK;
}

int ss_date_parse(const char *str, size_t n, int64_t *days, char *err, size_t errsz)
{
    char ex[80];
    scan_t s = {str, str + n};
    skip_blank(&s);
    int rc = parse_date_part(&s, days);
    skip_blank(&s);
    if (!rc && s.p != s.e)
        rc = -1;
    if (rc == -2)
        return FAIL("date/time field value out of range: \"%s\"", excerpt(str, n, ex, sizeof ex));
    if (rc)
        return FAIL("invalid input syntax for type date: \"%s\" (expected YYYY-MM-DD)", excerpt(str, n, ex, sizeof ex));
    return SS_OK;
}

/* ---- intervals ---- */

typedef enum { U_US, U_MS, U_SEC, U_MIN, U_HOUR, U_DAY, U_WEEK, U_MONTH, U_YEAR, U_DECADE, U_CENTURY,
               U_MILLENNIUM } unit_t;

static const struct {
    const char *name;
    unit_t u;
} units[] = {
    {"microsecond", U_US}, {"microseconds", U_US}, {"us", U_US}, {"usec", U_US}, {"usecs", U_US},
    {"millisecond", U_MS}, {"milliseconds", U_MS}, {"ms", U_MS}, {"msec", U_MS}, {"msecs", U_MS},
    {"second", U_SEC}, {"seconds", U_SEC}, {"s", U_SEC}, {"sec", U_SEC}, {"secs", U_SEC},
    {"minute", U_MIN}, {"minutes", U_MIN}, {"m", U_MIN}, {"min", U_MIN}, {"mins", U_MIN},
    {"hour", U_HOUR}, {"hours", U_HOUR}, {"h", U_HOUR}, {"hr", U_HOUR}, {"hrs", U_HOUR},
    {"day", U_DAY}, {"days", U_DAY}, {"d", U_DAY},
    {"week", U_WEEK}, {"weeks", U_WEEK}, {"w", U_WEEK},
    {"month", U_MONTH}, {"months", U_MONTH}, {"mon", U_MONTH}, {"mons", U_MONTH},
    {"year", U_YEAR}, {"years", U_YEAR}, {"y", U_YEAR}, {"yr", U_YEAR}, {"yrs", U_YEAR},
    {"decade", U_DECADE}, {"decades", U_DECADE}, {"century", U_CENTURY}, {"centuries", U_CENTURY},
    {"millennium", U_MILLENNIUM}, {"millennia", U_MILLENNIUM}, {"millenniums", U_MILLENNIUM},
};

static int find_unit(const char *w, size_t n, unit_t *u)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(units); i++)
        if (strlen(units[i].name) == n && !strncasecmp(units[i].name, w, n)) {
            *u = units[i].u;
            return 0;
        }
    return -1;
}

int ss_interval_unit_ok(const char *name)
{
    unit_t u;
    return name && find_unit(name, strlen(name), &u) == 0;
}

/* Adds x (possibly fractional) units to the accumulators: months, days, µs (as long double
 * parts so 1.5 months = 1 month 15 days, 1.5 days = 1 day 12 hours, as PostgreSQL does). */
static int add_units(ss_interval_t *iv, long double x, unit_t u)
{
    long double months = 0, days = 0, us = 0;
    switch (u) {
    case U_US: us = x; break;
    case U_MS: us = x * 1000.0L; break;
    case U_SEC: us = x * 1e6L; break;
    case U_MIN: us = x * 6e7L; break;
    case U_HOUR: us = x * 3.6e9L; break;
    case U_DAY: days = x; break;
    case U_WEEK: days = x * 7; break;
    case U_MONTH: months = x; break;
    case U_YEAR: months = x * 12; break;
    case U_DECADE: months = x * 120; break;
    case U_CENTURY: months = x * 1200; break;
    case U_MILLENNIUM: months = x * 12000; break;
    }
    long double mi = truncl(months);
    days += (months - mi) * 30;
    long double di = truncl(days);
    us += (days - di) * 86400e6L;
    long double m2 = iv->months + mi, d2 = iv->days + di, u2 = (long double)iv->us + roundl(us);
    if (fabsl(m2) > INT32_MAX || fabsl(d2) > INT32_MAX || fabsl(u2) > 9.2e18L)
        return -2;
    iv->months = (int32_t)m2;
    iv->days = (int32_t)d2;
    iv->us = (int64_t)u2;
    return 0;
}

/* A number: [sign] digits [. digits] (or . digits). */
static int number(scan_t *s, long double *x)
{
    const char *b = s->p;
    if (s->p < s->e && (*s->p == '+' || *s->p == '-'))
        s->p++;
    int nd = 0;
    while (s->p < s->e && isdigit((unsigned char)*s->p))
        s->p++, nd++;
    if (s->p < s->e && *s->p == '.') {
        s->p++;
        while (s->p < s->e && isdigit((unsigned char)*s->p))
            s->p++, nd++;
    }
    if (!nd)
        return -1;
    char buf[64];
    size_t len = (size_t)(s->p - b);
    if (len >= sizeof buf)
        return -2;
    memcpy(buf, b, len);
    buf[len] = 0;
    *x = strtold(buf, NULL);
    return 0;
}

/* [-]h+:mm[:ss[.f]] at s (sign taken by the caller). */
static int hms(scan_t *s, long double *us)
{
    int64_t h, m, sec = 0, f = 0;
    if (digits(s, -1, &h) || s->p >= s->e || *s->p++ != ':' || digits(s, 2, &m))
        return -1;
    if (s->p < s->e && *s->p == ':') {
        s->p++;
        if (digits(s, 2, &sec))
            return -1;
        if (s->p < s->e && *s->p == '.') {
            s->p++;
            f = frac_us(s);
        }
    }
    if (m > 59 || sec > 59)
        return -2;
    *us = ((long double)h * 3600 + m * 60 + sec) * 1e6L + f;
    return 0;
}

/* ISO 8601 durations: P[nY][nM][nW][nD][T[nH][nM][nS]]. */
static int iso_duration(scan_t *s, ss_interval_t *iv)
{
    int in_time = 0, any = 0;
    s->p++; /* P */
    while (s->p < s->e) {
        if (*s->p == 'T' || *s->p == 't') {
            in_time = 1;
            s->p++;
            continue;
        }
        long double x;
        if (number(s, &x) || s->p >= s->e)
            return -1;
        char c = (char)toupper((unsigned char)*s->p++);
        unit_t u;
        if (c == 'Y' && !in_time) u = U_YEAR;
        else if (c == 'M') u = in_time ? U_MIN : U_MONTH;
        else if (c == 'W' && !in_time) u = U_WEEK;
        else if (c == 'D' && !in_time) u = U_DAY;
        else if (c == 'H' && in_time) u = U_HOUR;
        else if (c == 'S' && in_time) u = U_SEC;
        else return -1;
        if (add_units(iv, x, u))
            return -2;
        any = 1;
    }
    return any ? 0 : -1;
}

int ss_interval_parse(const char *str, size_t n, const char *unit, ss_interval_t *iv, char *err, size_t errsz)
{
    char ex[80];
    scan_t s = {str, str + n};
    memset(iv, 0, sizeof *iv);
    skip_blank(&s);
    int rc = 0;
    if (unit) {
        unit_t u;
        long double x;
        if (find_unit(unit, strlen(unit), &u))
            return FAIL("unknown interval unit %s (expected YEAR, MONTH, WEEK, DAY, HOUR, MINUTE or SECOND)", unit);
        scan_t t = s;
        if (!number(&t, &x)) {
            skip_blank(&t);
            if (t.p == t.e)
                return add_units(iv, x, u) ? FAIL("interval out of range: '%s'", excerpt(str, n, ex, sizeof ex))
                                           : SS_OK;
        }
        /* otherwise the text carries units of its own ('1 day 2 hours' DAY): read it as such */
    }
    if (s.p < s.e && (*s.p == 'P' || *s.p == 'p')) {
        rc = iso_duration(&s, iv);
        skip_blank(&s);
        if (!rc && s.p != s.e)
            rc = -1;
    } else {
        int any = 0, ago = 0;
        while (!rc && s.p < s.e) {
            int neg = 0;
            scan_t t = s;
            if (t.p < t.e && (*t.p == '-' || *t.p == '+'))
                neg = *t.p++ == '-';
            /* h:mm[:ss] */
            const char *q = t.p;
            while (q < t.e && isdigit((unsigned char)*q))
                q++;
            if (q > t.p && q < t.e && *q == ':') {
                long double us;
                if ((rc = hms(&t, &us)))
                    break;
                iv->us += (int64_t)(neg ? -us : us);
                s = t;
                any = 1;
            } else if (s.e - s.p >= 3 && !strncasecmp(s.p, "ago", 3) && (s.e - s.p == 3 || isspace((unsigned char)s.p[3]))) {
                s.p += 3;
                ago = 1;
            } else {
                long double x;
                if ((rc = number(&s, &x)))
                    break;
                skip_blank(&s);
                const char *w = s.p;
                while (s.p < s.e && isalpha((unsigned char)*s.p))
                    s.p++;
                unit_t u = U_SEC; /* a bare number is seconds */
                if (s.p > w && find_unit(w, (size_t)(s.p - w), &u)) {
                    rc = -1;
                    break;
                }
                if (add_units(iv, x, u)) {
                    rc = -2;
                    break;
                }
                any = 1;
            }
            skip_blank(&s);
            if (s.p < s.e && *s.p == ',')
                s.p++, skip_blank(&s);
        }
        if (!rc && !any)
            rc = -1;
        if (!rc && ago) {
            iv->us = -iv->us;
            iv->days = -iv->days;
            iv->months = -iv->months;
        }
    }
    if (rc == -2)
        return FAIL("interval out of range: '%s'", excerpt(str, n, ex, sizeof ex));
    if (rc)
        return FAIL("invalid input syntax for type interval: '%s' (expected e.g. '5 minutes', '1 day 02:00:00', "
                    "'PT5M')", excerpt(str, n, ex, sizeof ex));
    return SS_OK;
}

int ss_duration_us(const char *s, int64_t *us, char *err, size_t errsz)
{
    ss_interval_t iv;
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0]) /* '5 minutes' written with its quotes */
        s++, n -= 2;
    int rc = ss_interval_parse(s, n, NULL, &iv, err, errsz);
    if (rc)
        return rc;
    if (iv.months)
        return FAIL("a duration cannot be in months or years (their length varies): '%.*s'", (int)n, s);
    *us = ss_interval_span_us(&iv);
    return SS_OK;
}

/* ---- formatting ---- */

/* Writes the fraction of a second f (µs, 0..999999) as ".5", ".000125" (no trailing zeros); returns
 * the characters written (0 when f is 0). */
static size_t frac_chars(int64_t f, char *p)
{
    if (!f)
        return 0;
    p[0] = '.';
    for (int i = 6; i >= 1; i--, f /= 10)
        p[i] = (char)('0' + f % 10);
    size_t k = 6;
    while (p[k] == '0')
        k--;
    return k + 1;
}

static int put_frac(ss_buf_t *out, int64_t f)
{
    char buf[8];
    size_t n = frac_chars(f, buf);
    return n ? ss_buf_append(out, buf, n) : SS_OK;
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* The text of a timestamp without printf (a view writes one per row): "2024-03-01 12:00:00.5". */
size_t ss_ts_chars(int64_t us, int with_tz, int json, char out[SS_TS_CHARS])
{
    int64_t days = floordiv(us, SS_USEC_PER_DAY), tod = floormod(us, SS_USEC_PER_DAY);
    int64_t y;
    int m, d;
    ss_civil_from_days(days, &y, &m, &d);
    int sec = (int)(tod / SS_USEC_PER_SEC);
    size_t n;
    if (y >= 0 && y <= 9999) {
        two(out, (int)(y / 100));
        two(out + 2, (int)(y % 100));
        n = 4;
    } else {
        n = (size_t)snprintf(out, 24, "%04lld", (long long)y);
    }
    char *p = out + n;
    p[0] = '-';
    two(p + 1, m);
    p[3] = '-';
    two(p + 4, d);
    p[6] = json ? 'T' : ' ';
    two(p + 7, sec / 3600);
    p[9] = ':';
    two(p + 10, sec / 60 % 60);
    p[12] = ':';
    two(p + 13, sec % 60);
    n += 15;
    n += frac_chars(tod % SS_USEC_PER_SEC, out + n);
    if (with_tz) {
        memcpy(out + n, json ? "+00:00" : "+00", json ? 6 : 3);
        n += json ? 6 : 3;
    }
    out[n] = 0;
    return n;
}

int ss_ts_format(int64_t us, int with_tz, int json, ss_buf_t *out)
{
    char b[SS_TS_CHARS];
    size_t n = ss_ts_chars(us, with_tz, json, b);
    return ss_buf_append(out, b, n);
}

int ss_date_format(int64_t days, ss_buf_t *out)
{
    int64_t y;
    int m, d;
    ss_civil_from_days(days, &y, &m, &d);
    return ss_buf_printf(out, "%04lld-%02d-%02d", (long long)y, m, d);
}

/* PostgreSQL's "postgres" interval style: 1 year 2 mons 3 days 04:05:06.5, -00:00:05, 00:00:00.
 * One nonzero field of an interval, as PostgreSQL's "postgres" style writes it: a positive field
 * after a negative one says "+" (each field sets that for the next one only). */
static int interval_part(ss_buf_t *out, int64_t v, const char *unit, int *any, int *before)
{
    if (!v)
        return SS_OK;
    int rc = ss_buf_printf(out, "%s%s%lld %s%s", *any ? " " : "", *before && v > 0 ? "+" : "", (long long)v, unit,
                           v == 1 ? "" : "s"); /* "-1 days", as PostgreSQL */
    *before = v < 0;
    *any = 1;
    return rc;
}

int ss_interval_format(const ss_interval_t *iv, ss_buf_t *out)
{
    int any = 0, before = 0;
    int rc = interval_part(out, iv->months / 12, "year", &any, &before);
    rc = rc ? rc : interval_part(out, iv->months % 12, "mon", &any, &before);
    rc = rc ? rc : interval_part(out, iv->days, "day", &any, &before);
    if (!rc && (iv->us || !any)) {
        uint64_t a = iv->us < 0 ? (uint64_t)0 - (uint64_t)iv->us : (uint64_t)iv->us;
        uint64_t sec = a / 1000000;
        rc = ss_buf_printf(out, "%s%s%02llu:%02d:%02d", any ? " " : "", iv->us < 0 ? "-" : before ? "+" : "",
                           (unsigned long long)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
        rc = rc ? rc : put_frac(out, (int64_t)(a % 1000000));
    }
    return rc;
}

/* ---- arithmetic ---- */

int64_t ss_interval_span_us(const ss_interval_t *iv)
{
    long double t = (long double)iv->us + (long double)iv->days * SS_USEC_PER_DAY +
                    (long double)iv->months * 30 * SS_USEC_PER_DAY;
    return t > 9.2e18L ? INT64_MAX : t < -9.2e18L ? INT64_MIN : (int64_t)t;
}

int ss_interval_cmp(const ss_interval_t *a, const ss_interval_t *b)
{
    __int128 x = (__int128)a->us + (__int128)a->days * SS_USEC_PER_DAY + (__int128)a->months * 30 * SS_USEC_PER_DAY;
    __int128 y = (__int128)b->us + (__int128)b->days * SS_USEC_PER_DAY + (__int128)b->months * 30 * SS_USEC_PER_DAY;
    return x < y ? -1 : x > y;
}

int ss_ts_add_interval(int64_t us, const ss_interval_t *iv, int sign, int64_t *out, char *err, size_t errsz)
{
    int64_t v = us;
    int64_t months = (int64_t)sign * iv->months, days = (int64_t)sign * iv->days;
    if (months) {
        int64_t dd = floordiv(v, SS_USEC_PER_DAY), tod = floormod(v, SS_USEC_PER_DAY), y;
        int m, d;
        ss_civil_from_days(dd, &y, &m, &d);
        int64_t t = y * 12 + (m - 1) + months;
        y = floordiv(t, 12);
        m = (int)floormod(t, 12) + 1;
        if (y < 1 || y > 9999)
            return FAIL("timestamp out of range");
        int dim = ss_days_in_month(y, m);
        v = ss_days_from_civil(y, m, d > dim ? dim : d) * SS_USEC_PER_DAY + tod;
    }
    int64_t t;
    if (__builtin_mul_overflow(days, SS_USEC_PER_DAY, &t) || __builtin_add_overflow(v, t, &v) ||
        __builtin_add_overflow(v, (int64_t)sign * iv->us, &v) || !ss_ts_in_range(v))
        return FAIL("timestamp out of range");
    *out = v;
    return SS_OK;
}

int ss_interval_add(const ss_interval_t *a, const ss_interval_t *b, int sign, ss_interval_t *out, char *err,
                    size_t errsz)
{
    int64_t m = (int64_t)a->months + sign * (int64_t)b->months, d = (int64_t)a->days + sign * (int64_t)b->days, u;
    if (m > INT32_MAX || m < INT32_MIN || d > INT32_MAX || d < INT32_MIN ||
        __builtin_add_overflow(a->us, sign * b->us, &u))
        return FAIL("interval out of range");
    out->months = (int32_t)m;
    out->days = (int32_t)d;
    out->us = u;
    return SS_OK;
}

int ss_interval_mul(const ss_interval_t *a, double factor, ss_interval_t *out, char *err, size_t errsz)
{
    if (!isfinite(factor))
        return FAIL("interval out of range");
    ss_interval_t r = {0, 0, 0};
    if (add_units(&r, (long double)a->months * factor, U_MONTH) || add_units(&r, (long double)a->days * factor, U_DAY) ||
        add_units(&r, (long double)a->us * factor, U_US))
        return FAIL("interval out of range");
    *out = r;
    return SS_OK;
}

void ss_ts_diff(int64_t a, int64_t b, ss_interval_t *out)
{
    int64_t d = a - b;
    out->months = 0;
    out->days = (int32_t)(d / SS_USEC_PER_DAY); /* truncation: both parts carry d's sign */
    out->us = d % SS_USEC_PER_DAY;
}

/* ---- DATE_TRUNC, EXTRACT, DATE_BIN ---- */

static int fieldeq(const char *a, const char *b) { return ss_strcaseeq(a, b); }

static int field_alias(const char *f, const char *const *names)
{
    for (; *names; names++)
        if (fieldeq(f, *names))
            return 1;
    return 0;
}

static const char *const F_US[] = {"microsecond", "microseconds", "us", NULL};
static const char *const F_MS[] = {"millisecond", "milliseconds", "ms", NULL};
static const char *const F_SEC[] = {"second", "seconds", "sec", "s", NULL};
static const char *const F_MIN[] = {"minute", "minutes", "min", NULL};
static const char *const F_HOUR[] = {"hour", "hours", "h", NULL};
static const char *const F_DAY[] = {"day", "days", NULL};
static const char *const F_WEEK[] = {"week", "weeks", NULL};
static const char *const F_MONTH[] = {"month", "months", "mon", NULL};
static const char *const F_QUARTER[] = {"quarter", NULL};
static const char *const F_YEAR[] = {"year", "years", NULL};
static const char *const F_DECADE[] = {"decade", NULL};
static const char *const F_CENTURY[] = {"century", NULL};
static const char *const F_MILLENNIUM[] = {"millennium", NULL};

int ss_time_field_ok(const char *f, int for_trunc)
{
    static const char *const *const common[] = {F_US, F_MS, F_SEC, F_MIN, F_HOUR, F_DAY, F_WEEK, F_MONTH, F_QUARTER,
                                                 F_YEAR, F_DECADE, F_CENTURY, F_MILLENNIUM};
    static const char *const extract_only[] = {"dow", "isodow", "doy", "isoyear", "epoch", "julian", NULL};
    for (size_t i = 0; i < SS_ARRAY_LEN(common); i++)
        if (field_alias(f, common[i]))
            return 1;
    return !for_trunc && field_alias(f, extract_only);
}

int ss_ts_trunc(const char *f, int64_t us, int64_t *out, char *err, size_t errsz)
{
    int64_t days = floordiv(us, SS_USEC_PER_DAY), tod = floormod(us, SS_USEC_PER_DAY), y;
    int m, d;
    ss_civil_from_days(days, &y, &m, &d);
    int64_t base = days * SS_USEC_PER_DAY;
    if (field_alias(f, F_US))
        *out = us;
    else if (field_alias(f, F_MS))
        *out = base + tod - tod % 1000;
    else if (field_alias(f, F_SEC))
        *out = base + tod - tod % SS_USEC_PER_SEC;
    else if (field_alias(f, F_MIN))
        *out = base + tod - tod % SS_USEC_PER_MIN;
    else if (field_alias(f, F_HOUR))
        *out = base + tod - tod % SS_USEC_PER_HOUR;
    else if (field_alias(f, F_DAY))
        *out = base;
    else if (field_alias(f, F_WEEK)) /* ISO weeks start on Monday; 1970-01-01 was a Thursday */
        *out = (days - floormod(days + 3, 7)) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_MONTH))
        *out = ss_days_from_civil(y, m, 1) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_QUARTER))
        *out = ss_days_from_civil(y, (m - 1) / 3 * 3 + 1, 1) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_YEAR))
        *out = ss_days_from_civil(y, 1, 1) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_DECADE))
        *out = ss_days_from_civil(y - y % 10, 1, 1) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_CENTURY))
        *out = ss_days_from_civil((y - 1) / 100 * 100 + 1, 1, 1) * SS_USEC_PER_DAY;
    else if (field_alias(f, F_MILLENNIUM))
        *out = ss_days_from_civil((y - 1) / 1000 * 1000 + 1, 1, 1) * SS_USEC_PER_DAY;
    else
        return FAIL("unit \"%s\" not recognized for DATE_TRUNC (expected microseconds, milliseconds, second, minute, "
                    "hour, day, week, month, quarter, year, decade, century or millennium)", f);
    if (!ss_ts_in_range(*out))
        return FAIL("timestamp out of range");
    return SS_OK;
}

/* ISO year and week of a day. */
static void iso_week(int64_t days, int64_t *iy, int *wk)
{
    int64_t y;
    int m, d;
    ss_civil_from_days(days, &y, &m, &d);
    int64_t dow = floormod(days + 3, 7); /* 0 = Monday */
    int64_t thursday = days - dow + 3;   /* the week's Thursday decides its year */
    int64_t ty;
    int tm, td;
    ss_civil_from_days(thursday, &ty, &tm, &td);
    *iy = ty;
    *wk = (int)((thursday - ss_days_from_civil(ty, 1, 1)) / 7 + 1);
    (void)y;
}

/* value = n + f / 10^6 with f >= 0 the micro part: text with 6 decimals. */
static int put_micros(ss_buf_t *out, int64_t n_us)
{
    uint64_t a = n_us < 0 ? (uint64_t)0 - (uint64_t)n_us : (uint64_t)n_us;
    return ss_buf_printf(out, "%s%llu.%06llu", n_us < 0 ? "-" : "", (unsigned long long)(a / 1000000),
                         (unsigned long long)(a % 1000000));
}

int ss_ts_extract(const char *f, int64_t us, int is_date, ss_buf_t *out, char *err, size_t errsz)
{
    int64_t days = floordiv(us, SS_USEC_PER_DAY), tod = floormod(us, SS_USEC_PER_DAY), y;
    int m, d;
    ss_civil_from_days(days, &y, &m, &d);
    int sub_day = field_alias(f, F_US) || field_alias(f, F_MS) || field_alias(f, F_SEC) || field_alias(f, F_MIN) ||
                  field_alias(f, F_HOUR);
    if (is_date && sub_day)
        return FAIL("unit \"%s\" not supported for type date", f);
    if (field_alias(f, F_US))
        return ss_buf_printf(out, "%lld", (long long)(tod % SS_USEC_PER_MIN));
    if (field_alias(f, F_MS)) {
        int64_t x = tod % SS_USEC_PER_MIN;
        return ss_buf_printf(out, "%lld.%03lld", (long long)(x / 1000), (long long)(x % 1000));
    }
    if (field_alias(f, F_SEC))
        return put_micros(out, tod % SS_USEC_PER_MIN);
    if (field_alias(f, F_MIN))
        return ss_buf_printf(out, "%lld", (long long)(tod / SS_USEC_PER_MIN % 60));
    if (field_alias(f, F_HOUR))
        return ss_buf_printf(out, "%lld", (long long)(tod / SS_USEC_PER_HOUR));
    if (field_alias(f, F_DAY))
        return ss_buf_printf(out, "%d", d);
    if (fieldeq(f, "dow"))
        return ss_buf_printf(out, "%lld", (long long)floormod(days + 4, 7)); /* Sunday = 0 */
    if (fieldeq(f, "isodow"))
        return ss_buf_printf(out, "%lld", (long long)floormod(days + 3, 7) + 1); /* Monday = 1 .. Sunday = 7 */
    if (fieldeq(f, "doy"))
        return ss_buf_printf(out, "%lld", (long long)(days - ss_days_from_civil(y, 1, 1) + 1));
    if (field_alias(f, F_WEEK) || fieldeq(f, "isoyear")) {
        int64_t iy;
        int wk;
        iso_week(days, &iy, &wk);
        return field_alias(f, F_WEEK) ? ss_buf_printf(out, "%d", wk) : ss_buf_printf(out, "%lld", (long long)iy);
    }
    if (field_alias(f, F_MONTH))
        return ss_buf_printf(out, "%d", m);
    if (field_alias(f, F_QUARTER))
        return ss_buf_printf(out, "%d", (m - 1) / 3 + 1);
    if (field_alias(f, F_YEAR))
        return ss_buf_printf(out, "%lld", (long long)y);
    if (field_alias(f, F_DECADE))
        return ss_buf_printf(out, "%lld", (long long)(y / 10));
    if (field_alias(f, F_CENTURY))
        return ss_buf_printf(out, "%lld", (long long)((y - 1) / 100 + 1));
    if (field_alias(f, F_MILLENNIUM))
        return ss_buf_printf(out, "%lld", (long long)((y - 1) / 1000 + 1));
    if (fieldeq(f, "epoch"))
        return is_date ? ss_buf_printf(out, "%lld", (long long)(us / SS_USEC_PER_SEC)) : put_micros(out, us);
    if (fieldeq(f, "julian"))
        return ss_buf_printf(out, "%lld", (long long)(days + 2440588));
    return FAIL("unit \"%s\" not recognized for EXTRACT (expected e.g. year, month, day, hour, minute, second, "
                "dow, doy, week, quarter, epoch)", f);
}

int ss_interval_extract(const char *f, const ss_interval_t *iv, ss_buf_t *out, char *err, size_t errsz)
{
    if (fieldeq(f, "epoch")) {
        /* PostgreSQL: a year is 365.25 days, a month 30 days */
        __int128 t = (__int128)iv->us + (__int128)iv->days * SS_USEC_PER_DAY +
                     (__int128)(iv->months / 12) * 31557600 * SS_USEC_PER_SEC +
                     (__int128)(iv->months % 12) * 30 * SS_USEC_PER_DAY;
        return put_micros(out, (int64_t)t);
    }
    if (field_alias(f, F_YEAR))
        return ss_buf_printf(out, "%d", iv->months / 12);
    if (field_alias(f, F_MONTH))
        return ss_buf_printf(out, "%d", iv->months % 12);
    if (field_alias(f, F_DAY))
        return ss_buf_printf(out, "%d", iv->days);
    if (field_alias(f, F_HOUR))
        return ss_buf_printf(out, "%lld", (long long)(iv->us / SS_USEC_PER_HOUR));
    if (field_alias(f, F_MIN))
        return ss_buf_printf(out, "%lld", (long long)(iv->us / SS_USEC_PER_MIN % 60));
    if (field_alias(f, F_SEC))
        return put_micros(out, iv->us % SS_USEC_PER_MIN);
    if (field_alias(f, F_MS)) {
        int64_t x = iv->us % SS_USEC_PER_MIN;
        return ss_buf_printf(out, "%s%lld.%03lld", x < 0 ? "-" : "", (long long)llabs(x / 1000), (long long)llabs(x % 1000));
    }
    if (field_alias(f, F_US))
        return ss_buf_printf(out, "%lld", (long long)(iv->us % SS_USEC_PER_MIN));
    return FAIL("unit \"%s\" not supported for type interval", f);
}

int ss_ts_bin(const ss_interval_t *stride, int64_t us, int64_t origin, int64_t *out, char *err, size_t errsz)
{
    if (stride->months)
        return FAIL("timestamps cannot be binned into intervals containing months or years");
    int64_t w = ss_interval_span_us(stride);
    if (w <= 0)
        return FAIL("stride must be greater than zero");
    *out = origin + floordiv(us - origin, w) * w;
    return SS_OK;
}

int ss_ts_from_epoch(double seconds, int64_t *us, char *err, size_t errsz)
{
    if (!isfinite(seconds) || seconds * 1e6 < (double)MIN_US || seconds * 1e6 > (double)MAX_US)
        return FAIL("timestamp out of range: epoch %g", seconds);
    *us = (int64_t)llround(seconds * 1e6);
    return SS_OK;
}

/* ---- the clock ---- */

static _Atomic int64_t g_fixed_us;

int64_t ss_clock_us(void)
{
    int64_t f = atomic_load(&g_fixed_us);
    if (f)
        return f;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

void ss_clock_set_us(int64_t us) { atomic_store(&g_fixed_us, us); }
