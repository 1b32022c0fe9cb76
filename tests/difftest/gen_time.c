/*
 * gen_time.c — the time shapes of the differential tester (issue 13; dt.h, README.md): views
 * over TIMESTAMP and DATE columns compared with PostgreSQL, which has the same types, functions
 * and output format (SQLite has no time type). TIMESTAMP/DATE/INTERVAL arithmetic, DATE_TRUNC,
 * EXTRACT, DATE_PART, casts and comparisons in projections, WHERE and GROUP BY; and the window
 * table functions TUMBLE (with an offset) and HOP, written for PostgreSQL as what they mean: a
 * FROM subquery adding window_start = date_bin(size, ts, origin) (HOP: minus j slides, for j in
 * generate_series) and window_end = window_start + size, grouped or not; and SESSION per a
 * PARTITION BY column, its bounds computed by LAG and a running SUM over the key's rows.
 */
#include "dt.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_US 1709157600000000LL /* 2024-02-28 22:00:00 UTC: months, a leap day and weeks nearby */
#define BASE_DAY 19773             /* 2024-02-20 */

ss_value_t dt_time_value(dt_rng_t *r, dt_type_t t)
{
    if (t == DT_DATE)
        return ss_val_date(dt_pct(r, 85) ? BASE_DAY + dt_int(r, 20) : 19720 + dt_int(r, 5)); /* or near New Year */
    int64_t s = dt_pct(r, 50) ? dt_int(r, 240) * 7 : dt_pct(r, 70) ? dt_int(r, 3 * 86400) : dt_int(r, 40 * 86400);
    int64_t frac = dt_pct(r, 20) ? (int64_t)dt_int(r, 4) * 250000 : 0;
    return ss_val_ts(BASE_US + s * 1000000 + frac, 0);
}

/* The time view's scope: columns by type. */
typedef struct tscope {
    dt_rng_t *r;
    const char *ts[DT_MAXCOLS], *date[DT_MAXCOLS], *num[DT_MAXCOLS], *any[DT_MAXCOLS];
    dt_type_t anyt[DT_MAXCOLS]; /* the type of any[i] */
    int nts, ndate, nnum, nany;
} tscope_t;

static const char *pick(dt_rng_t *r, const char *const *v, int n) { return n ? v[dt_int(r, n)] : NULL; }

/* A column of any type (a grouping key, a column passed through) as an output column. */
static const char *any_col(tscope_t *s, dt_type_t *t)
{
    int i = dt_int(s->r, s->nany);
    *t = s->anyt[i];
    return s->any[i];
}

/* A relation of PostgreSQL's dialect with a TIMESTAMP (need_ts) or any time column. */
static const dt_rel_t *time_rel(dt_rng_t *r, const dt_case_t *c, int need_ts, tscope_t *sc)
{
    const dt_rel_t *cand[DT_MAXSTREAMS + DT_MAXVIEWS];
    int n = 0;
    for (int i = 0; i < c->nstreams + c->nviews; i++) {
        const dt_rel_t *x = i < c->nstreams ? &c->s[i] : &c->v[i - c->nstreams];
        if (i >= c->nstreams && !x->pg)
            continue;
        int ok = 0;
        for (int k = 0; k < x->ncols; k++)
            ok |= x->types[k] == DT_TS || (!need_ts && x->types[k] == DT_DATE);
        if (ok)
            cand[n++] = x;
    }
    if (!n)
        return NULL;
    const dt_rel_t *x = cand[dt_int(r, n)];
    memset(sc, 0, sizeof *sc);
    sc->r = r;
    for (int k = 0; k < x->ncols; k++) {
        dt_type_t t = x->types[k];
        if (t == DT_TS)
            sc->ts[sc->nts++] = x->cols[k];
        else if (t == DT_DATE)
            sc->date[sc->ndate++] = x->cols[k];
        else if (t == DT_INT)
            sc->num[sc->nnum++] = x->cols[k];
        if (t <= DT_BOOL || t == DT_TS || t == DT_DATE) {
            sc->anyt[sc->nany] = t;
            sc->any[sc->nany++] = x->cols[k];
        }
    }
    return x;
}

static void ts_lit(dt_rng_t *r, ss_buf_t *out)
{
    ss_value_t v = dt_time_value(r, DT_TS);
    ss_buf_puts(out, "TIMESTAMP '");
    ss_ts_format(v.u.i, 0, 0, out);
    ss_buf_putc(out, '\'');
}

static void date_lit(dt_rng_t *r, ss_buf_t *out)
{
    ss_buf_puts(out, "DATE '");
    ss_date_format(dt_time_value(r, DT_DATE).u.i, out);
    ss_buf_putc(out, '\'');
}

static void ivl_lit(dt_rng_t *r, ss_buf_t *out)
{
    static const char *const units[] = {"SECOND", "MINUTE", "HOUR", "DAY", "MONTH"};
    static const char *const texts[] = {"1 day 02:00:00", "90 minutes", "-3 hours", "1 month 2 days", "00:00:07.5",
                                        "2 weeks", "1 year"};
    if (dt_pct(r, 60))
        ss_buf_printf(out, "INTERVAL '%d' %s", 1 + dt_int(r, 40), units[dt_int(r, 5)]);
    else
        ss_buf_printf(out, "INTERVAL '%s'", texts[dt_int(r, 7)]);
}

static void ts_expr(tscope_t *s, int depth, ss_buf_t *out);
static void date_expr(tscope_t *s, int depth, ss_buf_t *out);

static void ts_expr(tscope_t *s, int depth, ss_buf_t *out)
{
    static const char *const trunc[] = {"second", "minute", "hour", "day", "week", "month", "quarter", "year"};
    int x = depth > 0 ? dt_int(s->r, 7) : 0;
    if (x == 0 || (x < 5 && !s->nts && !s->ndate)) {
        if (s->nts && dt_pct(s->r, 85))
            ss_buf_puts(out, pick(s->r, s->ts, s->nts));
        else
            ts_lit(s->r, out);
    } else if (x == 1 || x == 2) {
        ts_expr(s, depth - 1, out);
        ss_buf_puts(out, x == 1 ? " + " : " - ");
        ivl_lit(s->r, out);
    } else if (x == 3) {
        ss_buf_printf(out, "DATE_TRUNC('%s', ", trunc[dt_int(s->r, 8)]);
        ts_expr(s, depth - 1, out);
        ss_buf_putc(out, ')');
    } else if (x == 4) {
        date_expr(s, depth - 1, out);
        ss_buf_puts(out, " + ");
        ivl_lit(s->r, out);
    } else if (x == 5) {
        ss_buf_puts(out, "CAST(");
        date_expr(s, depth - 1, out);
        ss_buf_puts(out, " AS TIMESTAMP)");
    } else {
        ts_lit(s->r, out);
    }
}

static void date_expr(tscope_t *s, int depth, ss_buf_t *out)
{
    int x = depth > 0 ? dt_int(s->r, 5) : 0;
    if (x == 0) {
        if (s->ndate && dt_pct(s->r, 85))
            ss_buf_puts(out, pick(s->r, s->date, s->ndate));
        else
            date_lit(s->r, out);
    } else if (x == 1 || x == 2) {
        date_expr(s, depth - 1, out);
        ss_buf_printf(out, " %c %d", x == 1 ? '+' : '-', dt_int(s->r, 40));
    } else if (x == 3) {
        ss_buf_puts(out, "CAST(");
        ts_expr(s, depth - 1, out);
        ss_buf_puts(out, " AS DATE)");
    } else {
        date_lit(s->r, out);
    }
}

/* An INTERVAL: a difference of timestamps, or a literal scaled. */
static void ivl_expr(tscope_t *s, int depth, ss_buf_t *out)
{
    if (dt_pct(s->r, 70)) {
        ss_buf_putc(out, '(');
        ts_expr(s, depth, out);
        ss_buf_puts(out, " - ");
        ts_expr(s, depth, out);
        ss_buf_putc(out, ')');
    } else {
        ivl_lit(s->r, out);
        ss_buf_printf(out, " * %d", dt_int(s->r, 5) - 1);
    }
}

/* A number from time: EXTRACT (NUMERIC in PostgreSQL), DATE_PART (double), date - date (integer). */
static dt_type_t num_expr(tscope_t *s, int depth, ss_buf_t *out)
{
    static const char *const tsf[] = {"YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND", "DOW", "DOY", "EPOCH",
                                      "QUARTER", "ISODOW", "MILLISECOND"};
    static const char *const df[] = {"YEAR", "MONTH", "DAY", "DOW", "DOY", "QUARTER"};
    int x = dt_int(s->r, 4);
    if (x == 0 || (x == 2 && !s->ndate)) {
        ss_buf_printf(out, "EXTRACT(%s FROM ", tsf[dt_int(s->r, 12)]);
        ts_expr(s, depth, out);
        ss_buf_putc(out, ')');
        return DT_NUM;
    }
    if (x == 1) {
        ss_buf_printf(out, "DATE_PART('%s', ", tsf[dt_int(s->r, 9)]);
        ts_expr(s, depth, out);
        ss_buf_putc(out, ')');
        return DT_REAL;
    }
    if (x == 2) {
        ss_buf_printf(out, "EXTRACT(%s FROM ", df[dt_int(s->r, 6)]);
        date_expr(s, depth, out);
        ss_buf_putc(out, ')');
        return DT_NUM;
    }
    ss_buf_putc(out, '(');
    date_expr(s, depth, out);
    ss_buf_puts(out, " - ");
    date_expr(s, depth, out);
    ss_buf_putc(out, ')');
    return DT_INT;
}

/* A condition on time values: comparisons (timestamps with dates too), BETWEEN, IS NULL. */
static void time_cond(tscope_t *s, ss_buf_t *out)
{
    static const char *const ops[] = {"<", "<=", ">", ">=", "=", "<>"};
    int x = dt_int(s->r, 6);
    if (x == 0 && s->nts) {
        ss_buf_printf(out, "%s IS %sNULL", pick(s->r, s->ts, s->nts), dt_pct(s->r, 50) ? "NOT " : "");
    } else if (x == 1) {
        ts_expr(s, 1, out);
        ss_buf_puts(out, " BETWEEN ");
        ts_lit(s->r, out);
        ss_buf_puts(out, " AND ");
        ts_lit(s->r, out);
    } else if (x == 2) {
        date_expr(s, 1, out);
        ss_buf_printf(out, " %s ", ops[dt_int(s->r, 6)]);
        date_expr(s, 1, out);
    } else if (x == 3) { /* a timestamp against a date: the date is midnight */
        ts_expr(s, 1, out);
        ss_buf_printf(out, " %s ", ops[dt_int(s->r, 6)]);
        date_expr(s, 0, out);
    } else {
        ts_expr(s, 1, out);
        ss_buf_printf(out, " %s ", ops[dt_int(s->r, 6)]);
        ts_expr(s, 1, out);
    }
}

static void out_col(dt_rel_t *v, dt_type_t t, ss_buf_t *out)
{
    int i = v->ncols++;
    char nm[40];
    snprintf(nm, sizeof nm, "%.8sc%d", v->name, i);
    memcpy(v->cols[i], nm, sizeof v->cols[i] - 1);
    v->cols[i][sizeof v->cols[i] - 1] = 0;
    v->types[i] = t;
    ss_buf_printf(out, " AS %s", v->cols[i]);
}

/* One output expression of a random time-related type. */
static void time_item(tscope_t *s, dt_rel_t *v, ss_buf_t *out)
{
    if (v->ncols)
        ss_buf_puts(out, ", ");
    int x = dt_int(s->r, 6), depth = 1 + dt_int(s->r, 2);
    dt_type_t t = x == 0 ? DT_TS : x == 1 ? DT_DATE : x == 2 ? DT_IVL : x == 3 ? DT_BOOL : DT_NUM;
    if (t == DT_TS)
        ts_expr(s, depth, out);
    else if (t == DT_DATE)
        date_expr(s, depth, out);
    else if (t == DT_IVL)
        ivl_expr(s, depth - 1, out);
    else if (t == DT_BOOL)
        time_cond(s, out);
    else
        t = num_expr(s, depth - 1, out);
    out_col(v, t, out);
}

int dt_s_time_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    tscope_t s;
    const dt_rel_t *in = dt_pgmode ? time_rel(r, c, 0, &s) : NULL;
    if (!in)
        return 0;
    ss_buf_puts(out, "SELECT ");
    if (s.nany && dt_pct(r, 60)) {
        dt_type_t t;
        ss_buf_puts(out, any_col(&s, &t));
        out_col(v, t, out);
    }
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        time_item(&s, v, out);
    ss_buf_printf(out, " FROM %s", in->name);
    if (dt_pct(r, 60)) {
        ss_buf_puts(out, " WHERE ");
        time_cond(&s, out);
    }
    return 1;
}

int dt_s_time_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    tscope_t s;
    const dt_rel_t *in = dt_pgmode ? time_rel(r, c, 1, &s) : NULL;
    if (!in)
        return 0;
    static const char *const trunc[] = {"minute", "hour", "day", "week", "month"};
    ss_buf_t key = SS_BUF_INIT;
    const char *ts = pick(r, s.ts, s.nts);
    dt_type_t kt = DT_TS;
    int x = dt_int(r, 4);
    if (x == 0)
        ss_buf_printf(&key, "DATE_TRUNC('%s', %s)", trunc[dt_int(r, 5)], ts);
    else if (x == 1) {
        ss_buf_printf(&key, "CAST(%s AS DATE)", ts);
        kt = DT_DATE;
    } else if (x == 2) {
        ss_buf_printf(&key, "EXTRACT(HOUR FROM %s)", ts);
        kt = DT_NUM;
    } else
        ss_buf_printf(&key, "%s", ts);
    ss_buf_printf(out, "SELECT %s", ss_buf_cstr(&key));
    out_col(v, kt, out);
    ss_buf_puts(out, ", COUNT(*)");
    out_col(v, DT_INT, out);
    ss_buf_printf(out, ", MIN(%s)", pick(r, s.ts, s.nts));
    out_col(v, DT_TS, out);
    if (s.ndate) {
        ss_buf_printf(out, ", MAX(%s)", pick(r, s.date, s.ndate));
        out_col(v, DT_DATE, out);
    }
    ss_buf_printf(out, " FROM %s", in->name);
    if (dt_pct(r, 40)) {
        ss_buf_puts(out, " WHERE ");
        time_cond(&s, out);
    }
    ss_buf_printf(out, " GROUP BY %s", ss_buf_cstr(&key));
    ss_buf_free(&key);
    return 1;
}

/* FROM SESSION(in PARTITION BY k, DESCRIPTOR(ts), gap) for semstream; for PostgreSQL the rows
 * with their session's bounds by window functions: a row starts a session unless it is less than
 * the gap after the previous row of its key (LAG), sessions are numbered by a running SUM, and a
 * session is [its first ts, its last ts + gap). */
static void session_from(dt_rng_t *r, const dt_rel_t *in, const char *ts, tscope_t *s, ss_buf_t *out)
{
    static const int gaps[] = {7, 14, 60, 3600}; /* 7, 14: rows 7 s apart sit on the boundary */
    int gap = gaps[dt_int(r, 4)];
    dt_type_t kt;
    const char *k = any_col(s, &kt);
    ss_buf_printf(out, "%cSESSION(%s PARTITION BY %s, DESCRIPTOR(%s), INTERVAL '%d' SECOND)%c%c", DT_SS_ONLY,
                  in->name, k, ts, gap, DT_ALT_END, DT_PG_ONLY);
    ss_buf_printf(out, "(SELECT *, MIN(%s) OVER (PARTITION BY %s, ss_sid) AS window_start, MAX(%s) OVER (PARTITION BY "
                       "%s, ss_sid) + INTERVAL '%d seconds' AS window_end FROM (SELECT *, SUM(ss_new) OVER (PARTITION "
                       "BY %s ORDER BY %s ROWS UNBOUNDED PRECEDING) AS ss_sid FROM (SELECT *, CASE WHEN %s - LAG(%s) "
                       "OVER (PARTITION BY %s ORDER BY %s) < INTERVAL '%d seconds' THEN 0 ELSE 1 END AS ss_new FROM "
                       "%s WHERE %s IS NOT NULL) AS ss_a) AS ss_b) AS tw%c",
                  ts, k, ts, k, gap, k, ts, ts, ts, k, ts, gap, in->name, ts, DT_ALT_END);
}

/* FROM TUMBLE/HOP(in, DESCRIPTOR(ts), ...) for semstream; for PostgreSQL the rows with their
 * windows' bounds computed by date_bin. */
static void window_from(dt_rng_t *r, const dt_rel_t *in, const char *ts, ss_buf_t *out)
{
    static const int sizes[] = {2, 5, 10, 60, 3600, 86400};
    int size = sizes[dt_int(r, 6)], hop = dt_pct(r, 40), m = 2 + dt_int(r, 3);
    int slide = hop ? (size / m ? size / m : 1) : size;
    int offset = !hop && dt_pct(r, 25) ? 1 + dt_int(r, size - 1) : 0;
    if (hop)
        size = slide * m; /* m windows per row */
    ss_buf_printf(out, "%c", DT_SS_ONLY);
    if (hop)
        ss_buf_printf(out, "HOP(%s, DESCRIPTOR(%s), INTERVAL '%d' SECOND, INTERVAL '%d' SECOND)", in->name, ts, slide,
                      size);
    else if (offset)
        ss_buf_printf(out, "TUMBLE(%s, DESCRIPTOR(%s), INTERVAL '%d' SECOND, INTERVAL '%d' SECOND)", in->name, ts, size,
                      offset);
    else
        ss_buf_printf(out, "TUMBLE(%s, DESCRIPTOR(%s), INTERVAL '%d' SECOND)", in->name, ts, size);
    ss_buf_printf(out, "%c%c", DT_ALT_END, DT_PG_ONLY);
    char bin[256];
    snprintf(bin, sizeof bin, "date_bin(INTERVAL '%d seconds', %s, TIMESTAMP '1970-01-01 00:00:00' + INTERVAL '%d "
             "seconds')%s", slide, ts, offset, hop ? " - hop_j * INTERVAL '1 second' * " : "");
    ss_buf_printf(out, "(SELECT *, %s", bin);
    if (hop)
        ss_buf_printf(out, "%d", slide);
    ss_buf_printf(out, " AS window_start, %s", bin);
    if (hop)
        ss_buf_printf(out, "%d", slide);
    ss_buf_printf(out, " + INTERVAL '%d seconds' AS window_end FROM %s", size, in->name);
    if (hop)
        ss_buf_printf(out, " CROSS JOIN generate_series(0, %d) AS hop_g(hop_j)", m - 1);
    ss_buf_printf(out, " WHERE %s IS NOT NULL) AS tw%c", ts, DT_ALT_END);
}

int dt_s_time_window(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    tscope_t s;
    const dt_rel_t *in = dt_pgmode ? time_rel(r, c, 1, &s) : NULL;
    if (!in)
        return 0;
    const char *ts = pick(r, s.ts, s.nts);
    ss_buf_t from = SS_BUF_INIT;
    if (s.nany && dt_pct(r, 25))
        session_from(r, in, ts, &s, &from);
    else
        window_from(r, in, ts, &from);
    int x = dt_int(r, 3);
    dt_type_t kt = DT_INT;
    const char *k = x == 1 ? any_col(&s, &kt) : NULL;
    if (x == 2) { /* the windowed rows themselves */
        dt_type_t t;
        ss_buf_printf(out, "SELECT %s", any_col(&s, &t));
        out_col(v, t, out);
        ss_buf_puts(out, ", window_start");
        out_col(v, DT_TS, out);
        ss_buf_puts(out, ", window_end");
        out_col(v, DT_TS, out);
    } else {
        ss_buf_puts(out, dt_pct(r, 50) ? "SELECT window_start" : "SELECT window_end");
        out_col(v, DT_TS, out);
        if (k) {
            ss_buf_printf(out, ", %s", k);
            out_col(v, kt, out);
        }
        ss_buf_puts(out, ", COUNT(*)");
        out_col(v, DT_INT, out);
        if (s.nnum) {
            ss_buf_printf(out, ", SUM(%s)", pick(r, s.num, s.nnum));
            out_col(v, DT_INT, out);
        }
        ss_buf_printf(out, ", MAX(%s)", pick(r, s.ts, s.nts));
        out_col(v, DT_TS, out);
    }
    ss_buf_printf(out, " FROM %s", ss_buf_cstr(&from));
    if (dt_pct(r, 40)) {
        ss_buf_puts(out, " WHERE ");
        time_cond(&s, out);
    }
    if (x != 2)
        ss_buf_printf(out, " GROUP BY window_start, window_end%s%s", k ? ", " : "", k ? k : "");
    ss_buf_free(&from);
    return 1;
}
