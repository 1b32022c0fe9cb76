/*
 * ss_time.h — the time types' values: TIMESTAMP, TIMESTAMPTZ, DATE and INTERVAL,
 * as PostgreSQL defines them, with the session time zone fixed at UTC.
 *
 *   TIMESTAMP, TIMESTAMPTZ  int64 microseconds since 1970-01-01 00:00:00 UTC
 *   DATE                    int64 days since 1970-01-01
 *   INTERVAL                months, days and microseconds kept apart (a month is
 *                           not a fixed number of days: '1 month' added to Jan 31
 *                           gives Feb 28/29), compared as PostgreSQL compares them
 *                           (a month = 30 days, a day = 24 hours)
 *
 * Text forms (PostgreSQL's defaults): '2024-03-01 12:00:05.25', '...+00' for
 * TIMESTAMPTZ, '2024-03-01', '1 year 2 mons 3 days 04:05:06'; JSON forms:
 * "2024-03-01T12:00:05.25", "2024-03-01T12:00:05.25+00:00" (what PostgreSQL's
 * to_json writes). Parsing accepts ISO-8601 ('T' or ' ' between date and time,
 * a 'Z' or '+hh[:mm]' offset, which is applied: values are stored in UTC) and
 * PostgreSQL's interval syntax ('5 minutes', '1 day 02:00:00', '-1.5 hours',
 * '2 weeks ago', ISO 8601 'P1DT2H'). Years 1..9999. Every function returns
 * SS_OK or SS_ERR_INVALID with a message saying what is wrong in err.
 */
#ifndef SS_TIME_H
#define SS_TIME_H

#include "ss_base.h"

#include <stdint.h>

#define SS_USEC_PER_MS 1000LL
#define SS_USEC_PER_SEC 1000000LL
#define SS_USEC_PER_MIN (60LL * SS_USEC_PER_SEC)
#define SS_USEC_PER_HOUR (3600LL * SS_USEC_PER_SEC)
#define SS_USEC_PER_DAY (86400LL * SS_USEC_PER_SEC)
/* Sentinel "no time" (no watermark yet, no timer due). */
#define SS_TIME_NONE INT64_MIN

typedef struct ss_interval {
    int64_t us;     /* time part */
    int32_t days;
    int32_t months;
} ss_interval_t;

/* Proleptic Gregorian calendar: days since 1970-01-01 of y-m-d, and back. */
int64_t ss_days_from_civil(int64_t y, int m, int d);
void ss_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int ss_days_in_month(int64_t y, int m);

/* Parses a timestamp (a date alone is its midnight). */
int ss_ts_parse(const char *s, size_t n, int64_t *us, char *err, size_t errsz);
int ss_date_parse(const char *s, size_t n, int64_t *days, char *err, size_t errsz);
/* Parses an interval. unit (may be NULL) is the qualifier of INTERVAL '5' SECOND:
 * then the text is a number of that unit (YEAR MONTH WEEK DAY HOUR MINUTE SECOND,
 * singular or plural, any case); else the text carries its units. */
int ss_interval_parse(const char *s, size_t n, const char *unit, ss_interval_t *iv, char *err, size_t errsz);
/* A duration option ('30 s', '5 minutes', '1.5 hours', '2 days', '250 ms'; a bare number is seconds)
 * as µs: an interval without months or years. */
int ss_duration_us(const char *s, int64_t *us, char *err, size_t errsz);
/* 1 if name is a unit INTERVAL '..' <unit> accepts. */
int ss_interval_unit_ok(const char *name);

/* Text forms (json: the ISO forms PostgreSQL's to_json writes). */
int ss_ts_format(int64_t us, int with_tz, int json, ss_buf_t *out);
/* The same into a buffer (no allocation, no printf: views write one per row); returns the length. */
#define SS_TS_CHARS 48
size_t ss_ts_chars(int64_t us, int with_tz, int json, char out[SS_TS_CHARS]);
int ss_date_format(int64_t days, ss_buf_t *out);
int ss_interval_format(const ss_interval_t *iv, ss_buf_t *out);

/* Comparison as PostgreSQL does it (a month = 30 days, a day = 24 h), and that span in µs
 * (saturating). */
int ss_interval_cmp(const ss_interval_t *a, const ss_interval_t *b);
int64_t ss_interval_span_us(const ss_interval_t *iv);

/* us + sign * iv: months first (the day of month clamped to the month's length, as
 * PostgreSQL does), then days, then the time part. Out of range: SS_ERR_INVALID. */
int ss_ts_add_interval(int64_t us, const ss_interval_t *iv, int sign, int64_t *out, char *err, size_t errsz);
/* a + sign * b, interval * factor and interval / divisor (PostgreSQL's fractional carry
 * of months into days and days into time). */
int ss_interval_add(const ss_interval_t *a, const ss_interval_t *b, int sign, ss_interval_t *out, char *err,
                    size_t errsz);
int ss_interval_mul(const ss_interval_t *a, double factor, ss_interval_t *out, char *err, size_t errsz);
/* a - b of two timestamps: days and time, as PostgreSQL's timestamp - timestamp. */
void ss_ts_diff(int64_t a, int64_t b, ss_interval_t *out);

/* DATE_TRUNC(field, ts): microseconds, milliseconds, second, minute, hour, day, week
 * (Monday), month, quarter, year, decade, century, millennium. */
int ss_ts_trunc(const char *field, int64_t us, int64_t *out, char *err, size_t errsz);
/* EXTRACT(field FROM ts) as a decimal text ("2024", "5.250000", "1700000000.000000"):
 * microsecond(s), millisecond(s), second, minute, hour, day, dow, isodow, doy, week
 * (ISO), month, quarter, year, isoyear, decade, century, millennium, epoch, julian.
 * is_date: the value is a DATE's midnight (second-level fields are refused, as PostgreSQL does). */
int ss_ts_extract(const char *field, int64_t us, int is_date, ss_buf_t *out, char *err, size_t errsz);
/* EXTRACT from an interval: epoch, year, month, day, hour, minute, second, millisecond(s),
 * microsecond(s). */
int ss_interval_extract(const char *field, const ss_interval_t *iv, ss_buf_t *out, char *err, size_t errsz);
/* 1 if field is one EXTRACT/DATE_TRUNC/DATE_BIN know (for plan-time checks). */
int ss_time_field_ok(const char *field, int for_trunc);

/* DATE_BIN(stride, ts, origin): the start of the bin of width stride (no months) holding ts. */
int ss_ts_bin(const ss_interval_t *stride, int64_t us, int64_t origin, int64_t *out, char *err, size_t errsz);

/* Epoch seconds (fractional) to a timestamp, as TO_TIMESTAMP(double). */
int ss_ts_from_epoch(double seconds, int64_t *us, char *err, size_t errsz);

/* The valid range: 0001-01-01 00:00:00 .. 9999-12-31 23:59:59.999999. */
int ss_ts_in_range(int64_t us);

/* The clock NOW() and the time-driven operators read: wall-clock µs since the epoch, unless a
 * test fixed it with ss_clock_set_us(t) (0 restores the real clock). Thread-safe. */
int64_t ss_clock_us(void);
void ss_clock_set_us(int64_t us);

#endif
