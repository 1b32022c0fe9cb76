/*
 * expr_time.c — evaluation of the time types' operators and functions (issue 13):
 * timestamp/date ± interval, timestamp - timestamp, date ± integer, date - date,
 * interval arithmetic, casts to and from the time types, and NOW(),
 * CURRENT_TIMESTAMP, CURRENT_DATE, LOCALTIMESTAMP, DATE_TRUNC, EXTRACT, DATE_PART,
 * DATE_BIN, TO_TIMESTAMP, TO_DATE, TO_CHAR. The planner (src/plan_time.c) has
 * already given both operands their types; values follow ss_time.h.
 */
#include "expr_int.h"

#include "ss_json.h"
#include "ss_time.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_time(const ss_value_t *v) { return ss_vtype_is_time(v->t); }

static ss_value_t ts_like(int64_t us, const ss_value_t *model)
{
    return ss_val_ts(us, model->t == SS_TSTZ);
}

static double as_double(const ss_value_t *v) { return ss__x_numd(v); }

int ss__x_time_arith(const ss_expr_t *e, ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b,
                     ss_value_t *out, char *err, size_t errsz)
{
    char e2[160];
    int sign = op == SS_OP_SUB ? -1 : 1;
    if ((op == SS_OP_ADD || op == SS_OP_SUB) && (is_time(a) || is_time(b)) && (a->t == SS_IVL || b->t == SS_IVL)) {
        const ss_value_t *t = is_time(a) ? a : b, *iv = is_time(a) ? b : a;
        if (is_time(b) && op == SS_OP_SUB)
            return ss__x_fail(e, err, errsz, "operator does not exist: interval - timestamp");
        int64_t r;
        if (ss_ts_add_interval(ss_val_time_us(t), &iv->u.iv, sign, &r, e2, sizeof e2))
            return ss__x_fail(e, err, errsz, "%s", e2);
        *out = t->t == SS_TSTZ ? ss_val_ts(r, 1) : ss_val_ts(r, 0); /* date + interval is a timestamp */
        return SS_OK;
    }
    if ((op == SS_OP_ADD || op == SS_OP_SUB) && (a->t == SS_DATE || b->t == SS_DATE) && (a->t == SS_INT || b->t == SS_INT)) {
        if (b->t == SS_DATE && op == SS_OP_SUB)
            return ss__x_fail(e, err, errsz, "operator does not exist: integer - date");
        const ss_value_t *d = a->t == SS_DATE ? a : b, *n = a->t == SS_DATE ? b : a;
        int64_t r;
        if (__builtin_add_overflow(d->u.i, sign * n->u.i, &r) || !ss_ts_in_range(r * SS_USEC_PER_DAY))
            return ss__x_fail(e, err, errsz, "date out of range");
        *out = ss_val_date(r);
        return SS_OK;
    }
    if (op == SS_OP_SUB && a->t == SS_DATE && b->t == SS_DATE) {
        *out = ss_val_int(a->u.i - b->u.i);
        return SS_OK;
    }
    if (op == SS_OP_SUB && is_time(a) && is_time(b)) {
        ss_interval_t iv;
        ss_ts_diff(ss_val_time_us(a), ss_val_time_us(b), &iv);
        *out = ss_val_interval(iv);
        return SS_OK;
    }
    if ((op == SS_OP_ADD || op == SS_OP_SUB) && a->t == SS_IVL && b->t == SS_IVL) {
        ss_interval_t r;
        if (ss_interval_add(&a->u.iv, &b->u.iv, sign, &r, e2, sizeof e2))
            return ss__x_fail(e, err, errsz, "%s", e2);
        *out = ss_val_interval(r);
        return SS_OK;
    }
    if ((op == SS_OP_MUL && (a->t == SS_IVL) != (b->t == SS_IVL)) || (op == SS_OP_DIV && a->t == SS_IVL && b->t != SS_IVL)) {
        const ss_value_t *iv = a->t == SS_IVL ? a : b, *n = a->t == SS_IVL ? b : a;
        double f = as_double(n);
        if (op == SS_OP_DIV) {
            if (f == 0.0)
                return ss__x_fail(e, err, errsz, "division by zero");
            f = 1.0 / f;
        }
        ss_interval_t r;
        if (ss_interval_mul(&iv->u.iv, f, &r, e2, sizeof e2))
            return ss__x_fail(e, err, errsz, "%s", e2);
        *out = ss_val_interval(r);
        return SS_OK;
    }
    return ss__x_fail(e, err, errsz, "operator does not exist for these time operands");
}

int ss__x_time_neg(const ss_expr_t *e, const ss_value_t *a, ss_value_t *out, char *err, size_t errsz)
{
    if (a->t != SS_IVL || a->u.iv.us == INT64_MIN || a->u.iv.days == INT32_MIN || a->u.iv.months == INT32_MIN)
        return ss__x_fail(e, err, errsz, a->t == SS_IVL ? "interval out of range" : "unary minus needs a number");
    ss_interval_t iv = {-a->u.iv.us, -a->u.iv.days, -a->u.iv.months};
    *out = ss_val_interval(iv);
    return SS_OK;
}

/* ---- casts ---- */

int ss__x_time_cast(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char *err, size_t errsz)
{
    ss_value_t in = *v;
    ss_buf_t unq = SS_BUF_INIT;
    if (v->t == SS_JSON) { /* a JSON string holding a time */
        int is_null = 0;
        if (!v->u.str.n || v->u.str.s[0] != '"')
            return ss__x_fail(e, err, errsz, "cannot cast json %s to type %s", ss_jtext_typeof(v->u.str.s, v->u.str.n),
                              ss_coltype_name(e->type));
        if (ss_jtext_to_text(v->u.str.s, v->u.str.n, &unq, &is_null))
            return EMSG(SS_ERR_NOMEM, "out of memory");
        in = ss_val_text_ref(ss_buf_cstr(&unq), unq.len);
    }
    char e2[256];
    char *tmp = NULL;
    int rc = ss_val_coerce(&in, e->type, out, &tmp, e2, sizeof e2);
    free(tmp); /* time values own no text */
    ss_buf_free(&unq);
    if (rc == SS_ERR_NOMEM)
        return EMSG(SS_ERR_NOMEM, "out of memory");
    return rc ? ss__x_fail(e, err, errsz, "%s", e2) : SS_OK;
}

/* ---- TO_CHAR / TO_TIMESTAMP patterns (PostgreSQL's common ones) ---- */

static const char *const MONTHS[] = {"January", "February", "March",     "April",   "May",      "June",
                                     "July",    "August",   "September", "October", "November", "December"};
static const char *const DAYS[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

typedef enum {
    P_NONE, P_YYYY, P_YY, P_MM, P_MONTH, P_MON, P_DD, P_DDD, P_HH24, P_HH12, P_MI, P_SS, P_MS, P_US,
    P_AM, P_DAY, P_DY, P_D, P_TZ, P_Q
} pat_t;

static const struct {
    const char *s;
    pat_t p;
    int upper; /* MONTH vs Month vs month: 2 upper, 1 capitalised, 0 lower */
} pats[] = {
    {"YYYY", P_YYYY, 0}, {"YY", P_YY, 0}, {"MONTH", P_MONTH, 2}, {"Month", P_MONTH, 1}, {"month", P_MONTH, 0},
    {"MON", P_MON, 2}, {"Mon", P_MON, 1}, {"mon", P_MON, 0}, {"MM", P_MM, 0}, {"DDD", P_DDD, 0}, {"DD", P_DD, 0},
    {"DAY", P_DAY, 2}, {"Day", P_DAY, 1}, {"day", P_DAY, 0}, {"DY", P_DY, 2}, {"Dy", P_DY, 1}, {"dy", P_DY, 0},
    {"HH24", P_HH24, 0}, {"HH12", P_HH12, 0}, {"HH", P_HH12, 0}, {"MI", P_MI, 0}, {"SS", P_SS, 0},
    {"MS", P_MS, 0}, {"US", P_US, 0}, {"AM", P_AM, 2}, {"PM", P_AM, 2}, {"am", P_AM, 0}, {"pm", P_AM, 0},
    {"TZ", P_TZ, 2}, {"tz", P_TZ, 0}, {"Q", P_Q, 0}, {"D", P_D, 0},
};

static pat_t next_pat(const char *f, size_t *len, int *upper)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(pats); i++) {
        size_t n = strlen(pats[i].s);
        if (!strncmp(f, pats[i].s, n)) {
            *len = n;
            *upper = pats[i].upper;
            return pats[i].p;
        }
    }
    *len = 1;
    return P_NONE;
}

static int put_name(ss_buf_t *b, const char *name, int upper, int abbrev)
{
    char t[16];
    size_t n = abbrev ? 3 : strlen(name);
    for (size_t i = 0; i < n; i++)
        t[i] = (char)(upper == 2 ? toupper((unsigned char)name[i]) : upper == 1 && i == 0 ? name[i]
                                                                    : tolower((unsigned char)name[i]));
    t[n] = 0;
    return ss_buf_puts(b, t);
}

static int to_char(int64_t us, const char *f, ss_buf_t *b)
{
    int64_t days = us >= 0 ? us / SS_USEC_PER_DAY : -((-us + SS_USEC_PER_DAY - 1) / SS_USEC_PER_DAY);
    int64_t tod = us - days * SS_USEC_PER_DAY, y;
    int m, d, rc = SS_OK;
    ss_civil_from_days(days, &y, &m, &d);
    int h = (int)(tod / SS_USEC_PER_HOUR), mi = (int)(tod / SS_USEC_PER_MIN % 60), s = (int)(tod / SS_USEC_PER_SEC % 60);
    int dow = (int)(((days + 4) % 7 + 7) % 7);
    while (*f && !rc) {
        if (*f == '"') { /* quoted literal text */
            for (f++; *f && *f != '"' && !rc; f++)
                rc = ss_buf_putc(b, *f);
            if (*f)
                f++;
            continue;
        }
        size_t len;
        int up;
        pat_t p = next_pat(f, &len, &up);
        switch (p) {
        case P_YYYY: rc = ss_buf_printf(b, "%04lld", (long long)y); break;
        case P_YY: rc = ss_buf_printf(b, "%02lld", (long long)(y % 100)); break;
        case P_MM: rc = ss_buf_printf(b, "%02d", m); break;
        case P_MONTH: rc = put_name(b, MONTHS[m - 1], up, 0); break;
        case P_MON: rc = put_name(b, MONTHS[m - 1], up, 1); break;
        case P_DD: rc = ss_buf_printf(b, "%02d", d); break;
        case P_DDD: rc = ss_buf_printf(b, "%03lld", (long long)(days - ss_days_from_civil(y, 1, 1) + 1)); break;
        case P_DAY: rc = put_name(b, DAYS[dow], up, 0); break;
        case P_DY: rc = put_name(b, DAYS[dow], up, 1); break;
        case P_D: rc = ss_buf_printf(b, "%d", dow + 1); break;
        case P_Q: rc = ss_buf_printf(b, "%d", (m - 1) / 3 + 1); break;
        case P_HH24: rc = ss_buf_printf(b, "%02d", h); break;
        case P_HH12: rc = ss_buf_printf(b, "%02d", h % 12 ? h % 12 : 12); break;
        case P_MI: rc = ss_buf_printf(b, "%02d", mi); break;
        case P_SS: rc = ss_buf_printf(b, "%02d", s); break;
        case P_MS: rc = ss_buf_printf(b, "%03d", (int)(tod % SS_USEC_PER_SEC / 1000)); break;
        case P_US: rc = ss_buf_printf(b, "%06d", (int)(tod % SS_USEC_PER_SEC)); break;
        case P_AM: rc = ss_buf_puts(b, h < 12 ? (up ? "AM" : "am") : (up ? "PM" : "pm")); break;
        case P_TZ: rc = ss_buf_puts(b, up ? "UTC" : "utc"); break;
        case P_NONE: rc = ss_buf_putc(b, *f); break;
        }
        f += len;
    }
    return rc;
}

/* Reads up to max digits. */
static int read_num(const char **s, int max, int64_t *v)
{
    int k = 0;
    int64_t x = 0;
    while (k < max && isdigit((unsigned char)**s)) {
        x = x * 10 + (**s - '0');
        (*s)++;
        k++;
    }
    *v = x;
    return k ? 0 : -1;
}

static int read_name(const char **s, const char *const *names, int n, int abbrev, int *idx)
{
    for (int i = 0; i < n; i++) {
        size_t len = abbrev ? 3 : strlen(names[i]);
        if (!strncasecmp(*s, names[i], len)) {
            *s += len;
            *idx = i;
            return 0;
        }
    }
    return -1;
}

/* TO_TIMESTAMP(text, format): fields in the format's order; blanks and separators match loosely. */
static int parse_with(const char *s, const char *f, int64_t *us, char *msg, size_t msz)
{
    int64_t y = 1, mo = 1, d = 1, h = 0, mi = 0, sec = 0, frac = 0, v;
    int pm = -1, doy = 0;
    while (*f) {
        if (*f == '"') {
            for (f++; *f && *f != '"'; f++)
                if (*s == *f)
                    s++;
            if (*f)
                f++;
            continue;
        }
        size_t len;
        int up, idx = 0;
        pat_t p = next_pat(f, &len, &up);
        int bad = 0;
        while (p != P_NONE && *s == ' ')
            s++;
        switch (p) {
        case P_YYYY: bad = read_num(&s, 4, &y); break;
        case P_YY: bad = read_num(&s, 2, &v); y = 2000 + v - (v >= 70 ? 100 : 0); break;
        case P_MM: bad = read_num(&s, 2, &mo); break;
        case P_MONTH: case P_MON: bad = read_name(&s, MONTHS, 12, p == P_MON, &idx); mo = idx + 1; break;
        case P_DD: bad = read_num(&s, 2, &d); break;
        case P_DDD: bad = read_num(&s, 3, &v); doy = (int)v; break;
        case P_DAY: case P_DY: bad = read_name(&s, DAYS, 7, p == P_DY, &idx); break;
        case P_HH24: bad = read_num(&s, 2, &h); break;
        case P_HH12: bad = read_num(&s, 2, &h); if (pm < 0) pm = 0; break;
        case P_MI: bad = read_num(&s, 2, &mi); break;
        case P_SS: bad = read_num(&s, 2, &sec); break;
        case P_MS: bad = read_num(&s, 3, &v); frac = v * 1000; break;
        case P_US: bad = read_num(&s, 6, &v); frac = v; break;
        case P_AM:
            if (!strncasecmp(s, "am", 2) || !strncasecmp(s, "pm", 2)) {
                pm = tolower((unsigned char)*s) == 'p';
                s += 2;
            } else
                bad = 1;
            break;
        case P_TZ: case P_D: case P_Q: bad = 1; break;
        case P_NONE: /* a separator in the format matches any one separator (or nothing) in the text */
            if (*s && !isalnum((unsigned char)*s))
                s++;
            break;
        }
        if (bad) {
            snprintf(msg, msz, "the text does not match the format at \"%.*s\"", (int)SS_MIN(strlen(f), 20), f);
            return -1;
        }
        f += len;
    }
    while (*s == ' ')
        s++;
    if (*s) {
        snprintf(msg, msz, "trailing characters \"%.20s\" after the format", s);
        return -1;
    }
    if (pm >= 0) {
        if (h < 1 || h > 12) {
            snprintf(msg, msz, "hour \"%lld\" is invalid for the 12-hour clock", (long long)h);
            return -1;
        }
        h = h % 12 + (pm == 1 ? 12 : 0);
    }
    if (mo < 1 || mo > 12 || d < 1 || d > ss_days_in_month(y, (int)mo) || h > 23 || mi > 59 || sec > 59 || y < 1 ||
        y > 9999) {
        snprintf(msg, msz, "date/time field value out of range");
        return -1;
    }
    int64_t days = doy ? ss_days_from_civil(y, 1, 1) + doy - 1 : ss_days_from_civil(y, (int)mo, (int)d);
    *us = days * SS_USEC_PER_DAY + ((h * 60 + mi) * 60 + sec) * SS_USEC_PER_SEC + frac;
    return 0;
}

/* ---- functions ---- */

static int field_of(const ss_expr_t *e, const ss_value_t *f, char *buf, size_t n)
{
    const char *s;
    size_t len;
    char *own = NULL;
    if (ss__x_text(f, &s, &len, &own))
        return -1;
    snprintf(buf, n, "%.*s", (int)SS_MIN(len, n - 1), s);
    free(own);
    (void)e;
    return 0;
}

static int num_out(ss_buf_t *b, ss_value_t *out, char **owned, char *err, size_t errsz)
{
    if (ss__x_take_buf(out, owned, b, SS_NUM))
        return EMSG(SS_ERR_NOMEM, "out of memory");
    return SS_OK;
}

int ss__x_is_time_func(const char *f)
{
    static const char *const names[] = {"NOW", "CURRENT_TIMESTAMP", "LOCALTIMESTAMP", "CURRENT_DATE", "DATE_TRUNC",
                                        "EXTRACT", "DATE_PART", "DATE_BIN", "TO_TIMESTAMP", "TO_DATE", "TO_CHAR"};
    for (size_t i = 0; i < SS_ARRAY_LEN(names); i++)
        if (!strcmp(f, names[i]))
            return 1;
    return 0;
}

int ss__x_time_func(const ss_expr_t *e, const char *f, const ss_row_t *row, ss_value_t *out, char **owned,
                    char *err, size_t errsz)
{
    if (!strcmp(f, "NOW") || !strcmp(f, "CURRENT_TIMESTAMP") || !strcmp(f, "LOCALTIMESTAMP")) {
        *out = ss_val_ts(ss_clock_us(), strcmp(f, "LOCALTIMESTAMP") != 0);
        return SS_OK;
    }
    if (!strcmp(f, "CURRENT_DATE")) {
        *out = ss_val_date(ss_clock_us() / SS_USEC_PER_DAY);
        return SS_OK;
    }
    ss_value_t a[3] = {ss_val_null(), ss_val_null(), ss_val_null()};
    char *co[3] = {NULL, NULL, NULL};
    int rc = SS_OK, anynull = 0;
    for (int i = 0; i < e->nargs && i < 3 && !rc; i++) {
        rc = ss__x_child(e, i, row, &a[i], &co[i], err, errsz);
        anynull |= a[i].t == SS_NULL;
    }
    char e2[256], field[32];
    ss_buf_t b = SS_BUF_INIT;
    if (rc || anynull)
        goto done;
    if (!strcmp(f, "DATE_TRUNC")) {
        int64_t r;
        if (field_of(e, &a[0], field, sizeof field) || ss_ts_trunc(field, ss_val_time_us(&a[1]), &r, e2, sizeof e2))
            rc = ss__x_fail(e, err, errsz, "%s", e2);
        else
            *out = ss_val_ts(r, a[1].t == SS_TSTZ);
    } else if (!strcmp(f, "EXTRACT") || !strcmp(f, "DATE_PART")) {
        int r = field_of(e, &a[0], field, sizeof field);
        if (!r)
            r = a[1].t == SS_IVL ? ss_interval_extract(field, &a[1].u.iv, &b, e2, sizeof e2)
                                 : ss_ts_extract(field, ss_val_time_us(&a[1]), a[1].t == SS_DATE, &b, e2, sizeof e2);
        if (r)
            rc = r == SS_ERR_NOMEM ? (int)EMSG(SS_ERR_NOMEM, "out of memory") : ss__x_fail(e, err, errsz, "%s", e2);
        else if (!strcmp(f, "DATE_PART"))
            *out = ss_val_real(strtod(ss_buf_cstr(&b), NULL));
        else
            rc = num_out(&b, out, owned, err, errsz);
    } else if (!strcmp(f, "DATE_BIN")) {
        int64_t r;
        if (ss_ts_bin(&a[0].u.iv, ss_val_time_us(&a[1]), ss_val_time_us(&a[2]), &r, e2, sizeof e2))
            rc = ss__x_fail(e, err, errsz, "%s", e2);
        else
            *out = ts_like(r, &a[1]);
    } else if ((!strcmp(f, "TO_TIMESTAMP") || !strcmp(f, "TO_DATE")) && e->nargs == 2) {
        const char *s, *fm;
        size_t sn, fn;
        char *o1 = NULL, *o2 = NULL;
        int64_t us;
        if (ss__x_text(&a[0], &s, &sn, &o1) || ss__x_text(&a[1], &fm, &fn, &o2))
            rc = EMSG(SS_ERR_NOMEM, "out of memory");
        else if (parse_with(s, fm, &us, e2, sizeof e2))
            rc = ss__x_fail(e, err, errsz, "%s(%.40s, %.40s): %s", f, s, fm, e2);
        else
            *out = !strcmp(f, "TO_DATE") ? ss_val_date(us / SS_USEC_PER_DAY) : ss_val_ts(us, 1);
        free(o1);
        free(o2);
    } else if (!strcmp(f, "TO_TIMESTAMP")) { /* epoch seconds */
        int64_t us;
        if (ss_ts_from_epoch(ss__x_numd(&a[0]), &us, e2, sizeof e2))
            rc = ss__x_fail(e, err, errsz, "%s", e2);
        else
            *out = ss_val_ts(us, 1);
    } else if (!strcmp(f, "TO_CHAR")) {
        const char *fm;
        size_t fn;
        char *o2 = NULL;
        if (ss__x_text(&a[1], &fm, &fn, &o2) || to_char(ss_val_time_us(&a[0]), fm, &b) ||
            ss__x_take_buf(out, owned, &b, SS_TEXT))
            rc = EMSG(SS_ERR_NOMEM, "out of memory");
        free(o2);
    } else
        rc = EMSG(SS_ERR_INTERNAL, "%s is not a time function", f);
done:
    ss_buf_free(&b);
    for (int i = 0; i < 3; i++)
        free(co[i]);
    return rc;
}
