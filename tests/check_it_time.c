/*
 * check_it_time.c — time through the whole engine (issue 13), table-driven,
 * with the clock under the test's control (ss_clock_set_us): temporal filters
 * and TTL retract rows when the clock passes their bound with no new input;
 * out-of-order events within the watermark's delay count, later ones are
 * dead-lettered with the reason; an idle partition stops holding the
 * watermark back once its idle timeout passes; and a restart in the middle of
 * a window (on the durable log) gives the windows of an uninterrupted run, the
 * watermark restored (what was late stays late).
 */
#include "ss_connect.h"
#include "engine_fixture.h"
#include "ss_engine.h"
#include "ss_log.h"
#include "ss_time.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1704067200000000LL /* 2024-01-01 00:00:00 UTC */
#define SEC 1000000LL

/* The result of a one-column SELECT as "a,b,c" (cells trimmed). */
static char *cells(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT, r = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_engine_exec(e, sql, strlen(sql), "test", &out, err, sizeof err) == SS_OK, "%s: %s", sql, err);
    const char *p = strstr(ss_buf_cstr(&out), "\n--");
    p = p ? strchr(p + 1, '\n') : NULL;
    while (p && *++p && *p != '(') {
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        const char *a = p, *b = eol;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        ss_buf_printf(&r, "%s%.*s", r.len ? "," : "", (int)(b - a), a);
        p = eol;
    }
    ss_buf_free(&out);
    return ss_buf_take(&r);
}

/* Waits (up to 5 s of real time) until sql gives want. */
static void expect(ss_engine_t *e, const char *sql, const char *want, const char *what)
{
    char *got = NULL;
    for (int i = 0; i < 250; i++) {
        free(got);
        got = cells(e, sql);
        if (!strcmp(got, want))
            break;
        usleep(20000);
    }
    ck_assert_msg(!strcmp(got, want), "%s: %s gave [%s], expected [%s]", what, sql, got, want);
    free(got);
}

/* ---- temporal filters and TTL: rows leave on time ---- */

START_TEST(test_temporal_filters)
{
    char *dir = tu_tmpdir();
    ss_clock_set_us(T0);
    ss_engine_t *e = open_engine_ok(dir);
    exec(e, "CREATE STREAM s (id INT, ts TIMESTAMP) WITH (ttl = '30 s', ttl_column = ts);"
              "CREATE VIEW recent AS SELECT id FROM s WHERE ts > NOW() - INTERVAL '10' SECOND;"
              "CREATE VIEW window10 AS SELECT id FROM s WHERE ts BETWEEN NOW() - INTERVAL '10 s' AND NOW();"
              "CREATE VIEW due AS SELECT id FROM s WHERE ts <= CURRENT_TIMESTAMP;"
              "CREATE VIEW kept AS SELECT id FROM s;"
              "CREATE VIEW n AS SELECT COUNT(*) AS n FROM s WHERE ts + INTERVAL '10 s' >= NOW();"
              "INSERT INTO s VALUES (1, '2023-12-31 23:59:55'), (2, '2023-12-31 23:59:45'),"
              " (3, '2024-01-01 00:00:05'), (4, NULL);");
    static const struct {
        int64_t at;                       /* the clock, seconds after T0 */
        const char *recent, *window10, *due, *n, *kept;
    } steps[] = {
        {0, "1,3", "1", "1,2", "2", "1,2,3,4"},
        {5, "3", "1,3", "1,2,3", "2", "1,2,3,4"},
        {6, "3", "3", "1,2,3", "1", "1,2,3,4"},
        {15, "", "3", "1,2,3", "1", "1,2,3,4"},
        {16, "", "", "1,3", "0", "1,3,4"}, /* the stream's ttl (30 s from ts): 2 (ts -15 s) is gone */
        {26, "", "", "3", "0", "3,4"},     /* 4 has no ts: it never expires */
        {40, "", "", "", "0", "4"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ss_clock_set_us(T0 + steps[i].at * SEC);
        char what[64];
        snprintf(what, sizeof what, "at T0 + %llds", (long long)steps[i].at);
        expect(e, "SELECT id FROM recent ORDER BY id;", steps[i].recent, what);
        expect(e, "SELECT id FROM window10 ORDER BY id;", steps[i].window10, what);
        expect(e, "SELECT id FROM due ORDER BY id;", steps[i].due, what);
        expect(e, "SELECT n FROM n;", steps[i].n, what);
        expect(e, "SELECT id FROM kept ORDER BY id;", steps[i].kept, what);
    }
    ss_engine_close(e);
    ss_clock_set_us(0);
    free(dir);
}
END_TEST

/* ---- event time: out-of-order and late events, partitions, idleness, restarts ---- */

typedef struct ev {
    int part;          /* the partition it is appended to */
    int id, price;
    int sec;           /* its event time, seconds after T0 */
} ev_t;

/* Appends events as JSON to the topic's partitions (the log, as another process would). */
static void append(const char *dir, const char *topic, const ev_t *evs, int n)
{
    char path[1024], err[SS_ERRSZ];
    snprintf(path, sizeof path, "%s/state.db.log", dir);
    ss_log_t *l = NULL;
    ck_assert_msg(ss_log_open(path, &l, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < n; i++) {
        char val[256];
        int64_t us = T0 + evs[i].sec * SEC;
        ss_buf_t ts = SS_BUF_INIT;
        ss_ts_format(us, 0, 1, &ts);
        snprintf(val, sizeof val, "{\"id\":%d,\"price\":%d,\"ts\":\"%s\"}", evs[i].id, evs[i].price, ss_buf_cstr(&ts));
        ss_buf_free(&ts);
        ss_log_rec_t r = {topic, evs[i].part, NULL, 0, val, strlen(val)};
        ck_assert_msg(ss_log_append(l, &r, 1, NULL, err, sizeof err) == SS_OK, "%s", err);
    }
    ss_log_close(l);
}

typedef struct dlq {
    int n;
    char first[512];
} dlq_t;

static int on_dead(void *arg, const ss_log_msg_t *m)
{
    dlq_t *d = arg;
    if (!d->n++)
        snprintf(d->first, sizeof d->first, "%.*s", (int)SS_MIN(m->vlen, sizeof d->first - 1), (const char *)m->val);
    return 0;
}

/* Messages in topic's partition 0 (the dead letters of one view's source). */
static dlq_t dead_letters(const char *dir, const char *topic)
{
    char path[1024], err[SS_ERRSZ];
    snprintf(path, sizeof path, "%s/state.db.log", dir);
    ss_log_t *l = NULL;
    dlq_t d = {0, ""};
    ck_assert_msg(ss_log_open(path, &l, err, sizeof err) == SS_OK, "%s", err);
    ss_log_topic_t t;
    if (ss_log_topic_get(l, topic, &t, err, sizeof err) == SS_OK) {
        int got = 0;
        ck_assert_int_eq(ss_log_read(l, t.id, 0, 0, 1000, on_dead, &d, &got, err, sizeof err), SS_OK);
    }
    ss_log_close(l);
    return d;
}

static const char *BIDS_DDL =
    "CREATE STREAM bids (id INT, price INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)"
    " WITH (partitions = 2, watermark_idle_timeout = '3 s');"
    "CREATE VIEW final AS SELECT window_end, COUNT(*) AS n, SUM(price) AS total"
    " FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_end EMIT ON WINDOW CLOSE;";

/* A window's final row as "end-second:count:total" (the view keeps times as their text). */
static const char *FINAL_SQL =
    "SELECT CAST(substr(window_end::TEXT, 18, 2) AS INT) || ':' || n || ':' || total FROM final ORDER BY window_end;";

START_TEST(test_event_time)
{
    /* a step's outcome must not depend on how the source interleaves partitions within it */
    static const struct step {
        const char *what;
        int64_t clock;     /* seconds after T0 when the events arrive */
        ev_t evs[4];
        int nev;
        const char *final; /* the windows emitted so far */
        int late;          /* dead letters so far */
    } steps[] = {
        {"partition 1 has no event yet: nothing closes", 0,
         {{0, 1, 10, 1}, {0, 2, 20, 8}, {0, 3, 30, 14}}, 3, "", 0},
        {"out of order within the delay (9 > 14 - 5): counted", 0, {{0, 4, 40, 9}}, 1, "", 0},
        {"partition 1 idle for 3 s: the watermark (14 - 5) is partition 0's", 4, {{0, 5, 50, 16}}, 1, "10:3:70", 0},
        {"behind the watermark (16 - 5 = 11): dead-lettered", 4, {{0, 6, 60, 10}}, 1, "10:3:70", 1},
        {"partition 1 speaks again (on time): it holds the watermark again", 5, {{1, 7, 70, 25}}, 1, "10:3:70", 1},
        {"partition 0 moves on: the watermark is partition 1's (25 - 5)", 5, {{0, 8, 80, 31}}, 1,
         "10:3:70,20:2:80", 1},
        {"a window far ahead closes the rest", 6, {{1, 9, 90, 60}, {0, 10, 100, 61}}, 2,
         "10:3:70,20:2:80,30:1:70,40:1:80", 1},
    };
    char *dir = tu_tmpdir();
    ss_clock_set_us(T0);
    ss_engine_t *e = open_engine_ok(dir);
    exec(e, BIDS_DDL);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        ss_clock_set_us(T0 + steps[i].clock * SEC);
        append(dir, "bids", steps[i].evs, steps[i].nev);
        expect(e, FINAL_SQL, steps[i].final, steps[i].what);
        dlq_t d = dead_letters(dir, "bids.dlq");
        ck_assert_msg(d.n == steps[i].late, "%s: %d dead letters, expected %d", steps[i].what, d.n, steps[i].late);
        if (d.n)
            ck_assert_msg(strstr(d.first, "late event: ts 2024-01-01 00:00:10 is behind the watermark "
                                           "2024-01-01 00:00:11 of stream bids"), "%s", d.first);
    }
    ss_engine_close(e);
    ss_clock_set_us(0);
    free(dir);
}
END_TEST

/* The same events, once without a stop and once with restarts between the steps (the engine
 * closed and opened again on the same state): the same windows, and what was late stays late. */
START_TEST(test_restart_mid_window)
{
    /* each step's outcome must not depend on how the source interleaves partitions within it */
    static const struct {
        ev_t evs[2];
        int nev;
        const char *closed; /* windows emitted after it */
    } steps[] = {
        {{{0, 1, 10, 1}, {1, 2, 20, 3}}, 2, "0"},
        {{{0, 3, 30, 12}, {1, 4, 40, 16}}, 2, "0"},   /* the watermark: min(12, 16) - 5 = 7 */
        {{{1, 6, 60, 19}}, 1, "0"},
        {{{0, 5, 50, 2}, {0, 7, 5, 17}}, 2, "1"},     /* 2 is late (the watermark is restored to 7) */
        {{{0, 8, 70, 26}, {1, 9, 80, 33}}, 2, "2"},   /* watermark 21 */
        {{{0, 10, 90, 22}, {1, 11, 1, 45}}, 2, "2"},  /* 22 is on time; watermark still 21 */
        {{{0, 12, 2, 50}}, 1, "4"},                   /* watermark 40 */
    };
    const char *want = "10:2:30,20:4:135,30:2:160,40:1:80";
    for (int restart = 0; restart < 2; restart++) {
        char *dir = tu_tmpdir();
        ss_clock_set_us(T0);
        ss_engine_t *e = open_engine_ok(dir);
        exec(e, BIDS_DDL);
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            append(dir, "bids", steps[k].evs, steps[k].nev);
            expect(e, "SELECT COUNT(*) FROM final;", steps[k].closed, restart ? "with restarts" : "without a stop");
            if (restart) {
                ss_engine_close(e);
                e = open_engine_ok(dir);
            }
        }
        expect(e, FINAL_SQL, want, restart ? "with restarts" : "without a stop");
        dlq_t d = dead_letters(dir, "bids.dlq");
        ck_assert_msg(d.n == 1, "%s: %d dead letters", restart ? "with restarts" : "without a stop", d.n);
        ss_engine_close(e);
        free(dir);
    }
    ss_clock_set_us(0);
}
END_TEST

Suite *check_it_time_suite(void)
{
    Suite *s = suite_create("it_time");
    TCase *tc = tcase_create("time");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_temporal_filters);
    tcase_add_test(tc, test_event_time);
    tcase_add_test(tc, test_restart_mid_window);
    suite_add_tcase(s, tc);
    return s;
}
