/*
 * check_time.c — the time values of src/base/ss_time.h, table-driven against
 * what PostgreSQL 16 prints for the same inputs (session time zone UTC):
 * parsing and formatting of timestamps, dates and intervals, interval
 * arithmetic with month-end clamping, DATE_TRUNC, EXTRACT, DATE_BIN, and
 * the errors (with their messages) for bad input.
 */
#include "ss_time.h"
#include "ss_zset.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fmt_ts(int64_t us, int tz, int json, char *buf, size_t n)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_ts_format(us, tz, json, &b);
    snprintf(buf, n, "%s", ss_buf_cstr(&b));
    ss_buf_free(&b);
    return buf;
}

START_TEST(test_ts_parse_format)
{
    static const struct {
        const char *in, *text, *json;
    } cases[] = {
        {"2024-03-01 12:00:05", "2024-03-01 12:00:05", "2024-03-01T12:00:05"},
        {"2024-03-01T12:00:05.25Z", "2024-03-01 12:00:05.25", "2024-03-01T12:00:05.25"},
        {"2024-03-01t12:00", "2024-03-01 12:00:00", "2024-03-01T12:00:00"},
        {"2024-03-01 12:00:00+02:00", "2024-03-01 10:00:00", "2024-03-01T10:00:00"},
        {"2024-03-01 00:30:00-0130", "2024-03-01 02:00:00", "2024-03-01T02:00:00"},
        {"  2024-02-29  ", "2024-02-29 00:00:00", "2024-02-29T00:00:00"},
        {"1970-01-01 00:00:00.000001", "1970-01-01 00:00:00.000001", "1970-01-01T00:00:00.000001"},
        {"1969-12-31 23:59:59.9999995", "1970-01-01 00:00:00", "1970-01-01T00:00:00"},
        {"0001-01-01 00:00:00", "0001-01-01 00:00:00", "0001-01-01T00:00:00"},
        {"9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999", "9999-12-31T23:59:59.999999"},
        {"2024-03-01 24:00:00", "2024-03-02 00:00:00", "2024-03-02T00:00:00"},
        {"2024-03-01 12:00:00 UTC", "2024-03-01 12:00:00", "2024-03-01T12:00:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us;
        char err[256], a[64], b[64];
        ck_assert_msg(ss_ts_parse(cases[i].in, strlen(cases[i].in), &us, err, sizeof err) == SS_OK, "%s: %s",
                      cases[i].in, err);
        ck_assert_str_eq(fmt_ts(us, 0, 0, a, sizeof a), cases[i].text);
        ck_assert_str_eq(fmt_ts(us, 0, 1, b, sizeof b), cases[i].json);
    }
    char a[64];
    ck_assert_str_eq(fmt_ts(0, 1, 0, a, sizeof a), "1970-01-01 00:00:00+00");
    ck_assert_str_eq(fmt_ts(-1, 1, 1, a, sizeof a), "1969-12-31T23:59:59.999999+00:00");
}
END_TEST

START_TEST(test_ts_errors)
{
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"2024-02-30", "date/time field value out of range"},
        {"2023-02-29 00:00:00", "date/time field value out of range"},
        {"2024-13-01", "date/time field value out of range"},
        {"2024-03-01 25:00:00", "date/time field value out of range"},
        {"2024-03-01 12:60:00", "date/time field value out of range"},
        {"yesterday", "invalid input syntax for type timestamp"},
        {"2024-03-01 12", "invalid input syntax for type timestamp"},
        {"2024-03-01 12:00:00 +25:00", "date/time field value out of range"},
        {"2024-03-01 12:00:00 junk", "invalid input syntax for type timestamp"},
        {"10000-01-01", "date/time field value out of range"},
        {"", "invalid input syntax for type timestamp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us;
        char err[256] = "";
        ck_assert_msg(ss_ts_parse(cases[i].in, strlen(cases[i].in), &us, err, sizeof err) == SS_ERR_INVALID,
                      "%s parsed", cases[i].in);
        ck_assert_msg(strstr(err, cases[i].msg), "%s: %s", cases[i].in, err);
    }
    int64_t d;
    char err[256];
    ck_assert_int_eq(ss_date_parse("2024-02-29 10:00", 16, &d, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_date_parse("2024-02-29", 10, &d, err, sizeof err), SS_OK);
    ck_assert_int_eq(d, 19782);
}
END_TEST

START_TEST(test_interval_parse_format)
{
    static const struct {
        const char *in, *unit, *text;
        int64_t span_us;
    } cases[] = {
        {"5 minutes", NULL, "00:05:00", 300000000},
        {"5", "SECOND", "00:00:05", 5000000},
        {"1.5", "hours", "01:30:00", 5400000000},
        {"10", "DAY", "10 days", 864000000000},
        {"1 day 02:03:04.5", NULL, "1 day 02:03:04.5", 93784500000},
        {"-90 minutes", NULL, "-01:30:00", -5400000000},
        {"1 year 2 mons 3 days", NULL, "1 year 2 mons 3 days", 36547200000000}, /* a month = 30 days */
        {"1.5 months", NULL, "1 mon 15 days", 3888000000000},
        {"2 weeks ago", NULL, "-14 days", -1209600000000},
        {"PT5M", NULL, "00:05:00", 300000000},
        {"P1Y2M3DT4H5M6S", NULL, "1 year 2 mons 3 days 04:05:06", 36561906000000},
        {"250 ms", NULL, "00:00:00.25", 250000},
        {"30 s", NULL, "00:00:30", 30000000},
        {"1 h, 30 min", NULL, "01:30:00", 5400000000},
        {"100:00:00", NULL, "100:00:00", 360000000000},
        /* signs as PostgreSQL 15 prints them (found by the difftest) */
        {"-50 days 13 seconds", NULL, "-50 days +00:00:13", -4319987000000},
        {"1 day -1 seconds", NULL, "1 day -00:00:01", 86399000000},
        {"-1 mon -1 day", NULL, "-1 mons -1 days", -2678400000000},
        {"-1 year", NULL, "-1 years", -31104000000000},
        {"-1 year 2 mons", NULL, "-10 mons", -25920000000000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_interval_t iv;
        char err[256];
        ck_assert_msg(ss_interval_parse(cases[i].in, strlen(cases[i].in), cases[i].unit, &iv, err, sizeof err) == SS_OK,
                      "%s: %s", cases[i].in, err);
        ss_buf_t b = SS_BUF_INIT;
        ss_interval_format(&iv, &b);
        ck_assert_msg(!strcmp(ss_buf_cstr(&b), cases[i].text), "%s: got %s want %s", cases[i].in, ss_buf_cstr(&b),
                      cases[i].text);
        ss_buf_free(&b);
        ck_assert_msg(ss_interval_span_us(&iv) == cases[i].span_us, "%s: span %lld", cases[i].in,
                      (long long)ss_interval_span_us(&iv));
    }
    const char *bad[] = {"5 fortnights", "", "abc", "1 dya", "P", "5:77"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ss_interval_t iv;
        char err[256];
        ck_assert_msg(ss_interval_parse(bad[i], strlen(bad[i]), NULL, &iv, err, sizeof err) == SS_ERR_INVALID,
                      "%s parsed", bad[i]);
    }
    ss_interval_t a, b;
    char err[64];
    ss_interval_parse("1 mon", 5, NULL, &a, err, sizeof err);
    ss_interval_parse("30 days", 7, NULL, &b, err, sizeof err);
    ck_assert_int_eq(ss_interval_cmp(&a, &b), 0); /* PostgreSQL: '1 mon' = '30 days' */
    ss_value_t va = ss_val_interval(a), vb = ss_val_interval(b);
    ck_assert_int_ne(ss_val_cmp(&va, &vb), 0); /* but they are different values */
}
END_TEST

START_TEST(test_arithmetic)
{
    static const struct {
        const char *ts, *iv, *plus, *minus;
    } cases[] = {
        {"2024-01-31 10:00:00", "1 month", "2024-02-29 10:00:00", "2023-12-31 10:00:00"},
        {"2023-01-31 00:00:00", "1 month", "2023-02-28 00:00:00", "2022-12-31 00:00:00"},
        {"2024-02-29 00:00:00", "1 year", "2025-02-28 00:00:00", "2023-02-28 00:00:00"},
        {"2024-03-10 23:30:00", "1 day 01:00:00", "2024-03-12 00:30:00", "2024-03-09 22:30:00"},
        {"2024-01-01 00:00:00", "-1.5 days", "2023-12-30 12:00:00", "2024-01-02 12:00:00"},
        {"2024-05-31 00:00:00", "1 mon 1 day", "2024-07-01 00:00:00", "2024-04-29 00:00:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t t, r;
        ss_interval_t iv;
        char err[256], buf[64];
        ck_assert_int_eq(ss_ts_parse(cases[i].ts, strlen(cases[i].ts), &t, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_interval_parse(cases[i].iv, strlen(cases[i].iv), NULL, &iv, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_ts_add_interval(t, &iv, 1, &r, err, sizeof err), SS_OK);
        ck_assert_msg(!strcmp(fmt_ts(r, 0, 0, buf, sizeof buf), cases[i].plus), "%s + %s = %s", cases[i].ts,
                      cases[i].iv, buf);
        ck_assert_int_eq(ss_ts_add_interval(t, &iv, -1, &r, err, sizeof err), SS_OK);
        ck_assert_msg(!strcmp(fmt_ts(r, 0, 0, buf, sizeof buf), cases[i].minus), "%s - %s = %s", cases[i].ts,
                      cases[i].iv, buf);
    }
    int64_t t, r;
    ss_interval_t iv;
    char err[256];
    ss_ts_parse("9999-12-31", 10, &t, err, sizeof err);
    ss_interval_parse("1 day", 5, NULL, &iv, err, sizeof err);
    ck_assert_int_eq(ss_ts_add_interval(t, &iv, 1, &r, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "timestamp out of range"));
    ss_interval_t d;
    ss_ts_diff(3 * SS_USEC_PER_DAY + 5, 0, &d); /* '3 days 00:00:00.000005' */
    ck_assert_int_eq(d.days, 3);
    ck_assert_int_eq(d.us, 5);
    ss_interval_t half;
    ss_interval_parse("1 mon 1 day", 11, NULL, &iv, err, sizeof err);
    ck_assert_int_eq(ss_interval_mul(&iv, 0.5, &half, err, sizeof err), SS_OK); /* 15 days 12:00:00 */
    ck_assert_int_eq(half.months, 0);
    ck_assert_int_eq(half.days, 15);
    ck_assert_int_eq(half.us, 12 * SS_USEC_PER_HOUR);
}
END_TEST

START_TEST(test_trunc_extract_bin)
{
    static const struct {
        const char *field, *trunc, *extract;
    } cases[] = { /* of 2024-02-29 13:45:30.123456 (a Thursday) */
        {"microseconds", "2024-02-29 13:45:30.123456", "30123456"},
        {"milliseconds", "2024-02-29 13:45:30.123", "30123.456"},
        {"second", "2024-02-29 13:45:30", "30.123456"},
        {"minute", "2024-02-29 13:45:00", "45"},
        {"hour", "2024-02-29 13:00:00", "13"},
        {"day", "2024-02-29 00:00:00", "29"},
        {"week", "2024-02-26 00:00:00", "9"},
        {"month", "2024-02-01 00:00:00", "2"},
        {"quarter", "2024-01-01 00:00:00", "1"},
        {"year", "2024-01-01 00:00:00", "2024"},
        {"decade", "2020-01-01 00:00:00", "202"},
        {"century", "2001-01-01 00:00:00", "21"},
        {"millennium", "2001-01-01 00:00:00", "3"},
    };
    int64_t t;
    char err[256], buf[64];
    ck_assert_int_eq(ss_ts_parse("2024-02-29 13:45:30.123456", 26, &t, err, sizeof err), SS_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t r;
        ck_assert_msg(ss_ts_trunc(cases[i].field, t, &r, err, sizeof err) == SS_OK, "%s: %s", cases[i].field, err);
        ck_assert_msg(!strcmp(fmt_ts(r, 0, 0, buf, sizeof buf), cases[i].trunc), "trunc %s: %s", cases[i].field, buf);
        ss_buf_t b = SS_BUF_INIT;
        ck_assert_int_eq(ss_ts_extract(cases[i].field, t, 0, &b, err, sizeof err), SS_OK);
        ck_assert_msg(!strcmp(ss_buf_cstr(&b), cases[i].extract), "extract %s: %s", cases[i].field, ss_buf_cstr(&b));
        ss_buf_free(&b);
    }
    static const struct {
        const char *field, *value;
    } more[] = {{"dow", "4"}, {"isodow", "4"}, {"doy", "60"}, {"epoch", "1709214330.123456"}, {"isoyear", "2024"},
                {"julian", "2460370"}};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        ss_buf_t b = SS_BUF_INIT;
        ck_assert_int_eq(ss_ts_extract(more[i].field, t, 0, &b, err, sizeof err), SS_OK);
        ck_assert_msg(!strcmp(ss_buf_cstr(&b), more[i].value), "extract %s: %s", more[i].field, ss_buf_cstr(&b));
        ss_buf_free(&b);
    }
    ss_buf_t b = SS_BUF_INIT; /* ISO week 1 of 2021 starts on 2021-01-04; 2021-01-03 is week 53 of 2020 */
    int64_t jan3;
    ss_ts_parse("2021-01-03", 10, &jan3, err, sizeof err);
    ss_ts_extract("week", jan3, 0, &b, err, sizeof err);
    ck_assert_str_eq(ss_buf_cstr(&b), "53");
    ss_buf_reset(&b);
    ck_assert_int_eq(ss_ts_extract("hour", jan3, 1, &b, err, sizeof err), SS_ERR_INVALID); /* not for dates */
    ck_assert_int_eq(ss_ts_extract("fortnight", t, 0, &b, err, sizeof err), SS_ERR_INVALID);
    ss_buf_free(&b);
    int64_t r;
    ck_assert_int_eq(ss_ts_trunc("fortnight", t, &r, err, sizeof err), SS_ERR_INVALID);
    ss_interval_t iv;
    ss_interval_parse("15 minutes", 10, NULL, &iv, err, sizeof err);
    ck_assert_int_eq(ss_ts_bin(&iv, t, 0, &r, err, sizeof err), SS_OK);
    ck_assert_str_eq(fmt_ts(r, 0, 0, buf, sizeof buf), "2024-02-29 13:45:00");
    ss_interval_parse("1 month", 7, NULL, &iv, err, sizeof err);
    ck_assert_int_eq(ss_ts_bin(&iv, t, 0, &r, err, sizeof err), SS_ERR_INVALID);
}
END_TEST

START_TEST(test_values)
{
    /* input coercion (JSON fields, INSERT values): text, and numbers per timestamp_format */
    static const struct {
        ss_coltype_t t;
        int typmod;
        ss_value_t in;
        const char *out; /* NULL: an error */
    } cases[] = {
        {SS_COL_TIMESTAMP, -1, {SS_TEXT, {.str = {"2024-03-01T12:00:00Z", 20}}}, "2024-03-01 12:00:00"},
        {SS_COL_TIMESTAMP, -1, {SS_INT, {.i = 1709294400}}, NULL},
        {SS_COL_TIMESTAMP, SS_TSMOD_EPOCH_S, {SS_INT, {.i = 1709294400}}, "2024-03-01 12:00:00"},
        {SS_COL_TIMESTAMPTZ, SS_TSMOD_EPOCH_MS, {SS_INT, {.i = 1709294400123}}, "2024-03-01 12:00:00.123+00"},
        {SS_COL_TIMESTAMP, SS_TSMOD_EPOCH_US, {SS_INT, {.i = 1}}, "1970-01-01 00:00:00.000001"},
        {SS_COL_TIMESTAMP, SS_TSMOD_EPOCH_S, {SS_REAL, {.r = 1.5}}, "1970-01-01 00:00:01.5"},
        {SS_COL_DATE, -1, {SS_TEXT, {.str = {"2024-03-01", 10}}}, "2024-03-01"},
        {SS_COL_DATE, -1, {SS_TEXT, {.str = {"2024-03-01 23:00", 16}}}, "2024-03-01"},
        {SS_COL_INTERVAL, -1, {SS_TEXT, {.str = {"90 seconds", 10}}}, "00:01:30"},
        {SS_COL_INTERVAL, SS_TSMOD_EPOCH_MS, {SS_INT, {.i = 1500}}, "00:00:01.5"},
        {SS_COL_TIMESTAMP, -1, {SS_TEXT, {.str = {"soon", 4}}}, NULL},
        {SS_COL_TIMESTAMP, SS_TSMOD_EPOCH_S, {SS_INT, {.i = 999999999999}}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_value_t v;
        char *tmp = NULL, err[256] = "";
        int rc = ss_val_coerce_tm(&cases[i].in, cases[i].t, cases[i].typmod, &v, &tmp, err, sizeof err);
        if (!cases[i].out) {
            ck_assert_msg(rc == SS_ERR_INVALID, "case %zu accepted", i);
            continue;
        }
        ck_assert_msg(rc == SS_OK, "case %zu: %s", i, err);
        ss_buf_t b = SS_BUF_INIT;
        ss_val_to_text(&v, &b);
        ck_assert_msg(!strcmp(ss_buf_cstr(&b), cases[i].out), "case %zu: %s", i, ss_buf_cstr(&b));
        ss_buf_free(&b);
        free(tmp);
    }
    /* row encoding round trip and order */
    ss_row_t *r = ss_row_new(4);
    ss_value_t vs[4] = {ss_val_ts(-5, 0), ss_val_ts(7, 1), ss_val_date(-3), ss_val_interval((ss_interval_t){1, 2, 3})};
    for (int i = 0; i < 4; i++)
        ss_row_set(r, i, &vs[i]);
    ss_buf_t enc = SS_BUF_INIT;
    ck_assert_int_eq(ss_row_encode(r, &enc), SS_OK);
    ss_row_t *back = NULL;
    ck_assert_int_eq(ss_row_decode(enc.data, enc.len, &back), SS_OK);
    ck_assert_int_eq(ss_row_cmp(r, back), 0);
    ck_assert_int_eq(back->v[3].u.iv.months, 3);
    ss_row_free(r);
    ss_row_free(back);
    ss_buf_free(&enc);
    ss_value_t d = ss_val_date(1), ts = ss_val_ts(SS_USEC_PER_DAY, 0), later = ss_val_ts(SS_USEC_PER_DAY + 1, 0);
    ck_assert_int_lt(ss_val_cmp(&d, &ts), 0); /* the same instant: DATE first (total order) */
    ck_assert_int_lt(ss_val_cmp(&ts, &later), 0);
    ck_assert_int_gt(ss_val_cmp(&later, &d), 0);
    ss_buf_t j = SS_BUF_INIT;
    ss_val_to_json(&later, &j);
    ck_assert_str_eq(ss_buf_cstr(&j), "\"1970-01-02T00:00:00.000001\"");
    ss_buf_free(&j);
}
END_TEST

Suite *check_time_suite(void)
{
    Suite *s = suite_create("time");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, test_ts_parse_format);
    tcase_add_test(tc, test_ts_errors);
    tcase_add_test(tc, test_interval_parse_format);
    tcase_add_test(tc, test_arithmetic);
    tcase_add_test(tc, test_trunc_extract_bin);
    tcase_add_test(tc, test_values);
    suite_add_tcase(s, tc);
    return s;
}
