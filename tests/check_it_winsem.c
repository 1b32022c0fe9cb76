/*
 * check_it_winsem.c — semantic operators per window through the whole engine
 * (issue 13), on the real stories260K model: SEM_SCORE and SEM_RANK top-k per
 * window (partition_by = 'window_end'), SEM_AGG per window alone and beside
 * COUNT (a GROUP and a SEM_AGG joined on the window). A history with events out
 * of order, a late event (dead-lettered), deletes in an open window and windows
 * closing by the watermark must give the views of a from-scratch run over the
 * rows that stayed; and the state of a closed window (top-k rows, SEM_AGG rows,
 * the join's rows, the memo entries only its rows needed) must be gone.
 */
#include "engine_fixture.h"
#include "ss_engine.h"
#include "ss_log.h"
#include "ss_time.h"
#include "testutil.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1704067200000000LL /* 2024-01-01 00:00:00 UTC */
#define SEC 1000000LL

/* Waits (up to 20 s) until the view cnt counts n rows of bids. */
static void wait_count(ss_engine_t *e, int n, const char *what)
{
    char *got = NULL;
    for (int i = 0; i < 1000; i++) {
        free(got);
        got = run(e, "SELECT n FROM cnt;");
        char *p = strstr(got, "\n--");
        p = p ? strchr(p + 1, '\n') : NULL;
        if (p && atoi(p + 1) == n)
            break;
        usleep(20000);
    }
    char *p = strstr(got, "\n--");
    p = p ? strchr(p + 1, '\n') : NULL;
    ck_assert_msg(p && atoi(p + 1) == n, "%s: cnt gave %s, expected %d", what, got, n);
    free(got);
}

typedef struct ev {
    int id, price, sec;
} ev_t;

static void append(const char *dir, const ev_t *evs, int n)
{
    char path[1024], err[SS_ERRSZ];
    snprintf(path, sizeof path, "%s/state.db.log", dir);
    ss_log_t *l = NULL;
    ck_assert_msg(ss_log_open(path, &l, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < n; i++) {
        char val[256];
        ss_buf_t ts = SS_BUF_INIT;
        ss_ts_format(T0 + evs[i].sec * SEC, 0, 1, &ts);
        snprintf(val, sizeof val, "{\"id\":%d,\"price\":%d,\"ts\":\"%s\"}", evs[i].id, evs[i].price, ss_buf_cstr(&ts));
        ss_buf_free(&ts);
        ss_log_rec_t r = {"bids", 0, NULL, 0, val, strlen(val)};
        ck_assert_msg(ss_log_append(l, &r, 1, NULL, err, sizeof err) == SS_OK, "%s", err);
    }
    ss_log_close(l);
}

static void delete_ev(ss_engine_t *e, const ev_t *ev)
{
    char sql[256];
    ss_buf_t ts = SS_BUF_INIT;
    ss_ts_format(T0 + ev->sec * SEC, 0, 0, &ts);
    snprintf(sql, sizeof sql, "DELETE FROM bids WHERE id = %d AND price = %d AND ts = '%s';", ev->id, ev->price,
             ss_buf_cstr(&ts));
    ss_buf_free(&ts);
    exec(e, sql);
}

static const char *DDL =
    "CREATE STREAM bids (id INT, price INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)"
    " WITH (partitions = 1);"
    "CREATE VIEW cnt AS SELECT COUNT(*) AS n FROM bids;"
    "CREATE VIEW vscore AS SELECT id, price, window_end FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)"
    " ORDER BY SEM_SCORE('How high is the price {price}?', partition_by = 'window_end') DESC LIMIT 2;"
    "CREATE VIEW vrank AS SELECT id, price, window_end FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)"
    " ORDER BY SEM_RANK('Which price is higher: {price}?', partition_by = 'window_end') LIMIT 2;"
    "CREATE VIEW vagg AS SELECT window_end, SEM_AGG('Summarize the prices: {price}', max_tokens = 6) AS s"
    " FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_end;"
    "CREATE VIEW vboth AS SELECT window_start, COUNT(*) AS n, SUM(price) AS total,"
    " SEM_AGG('Summarize the prices: {price}', max_tokens = 6) AS s"
    " FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_start;";

static const char *VIEWS[] = {
    "SELECT window_end::TEXT, id, price FROM vscore ORDER BY window_end, id;",
    "SELECT window_end::TEXT, id, price FROM vrank ORDER BY window_end, id;",
    "SELECT window_end::TEXT, s FROM vagg ORDER BY window_end;",
    "SELECT window_start::TEXT, n, total, s FROM vboth ORDER BY window_start;",
};

/* The largest number of windows (distinct partition / group / join keys) that a state table of
 * the given kind holds: 't' SEM_TOPK rows, 'a' SEM_AGG rows, 'j' join sides, 'm' SEM_TOPK memo rows. */
static int state_windows(const char *dir, char kind)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/state.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const char *pick = kind == 't'   ? "name GLOB 'st_*_rows' AND sql LIKE '%zone INTEGER%'"
                       : kind == 'a' ? "name GLOB 'st_*_rows' AND sql LIKE '%g BLOB%'"
                       : kind == 'j' ? "(name GLOB 'st_*_l' OR name GLOB 'st_*_r')"
                                     : "name GLOB 'st_*_memo'";
    const char *col = kind == 't' ? "p" : kind == 'a' ? "g" : "k";
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT name FROM sqlite_master WHERE type = 'table' AND %s", pick);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    int most = -1, tables = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char c[256];
        snprintf(c, sizeof c, "SELECT count(DISTINCT %s) FROM \"%s\"", col, (const char *)sqlite3_column_text(q, 0));
        sqlite3_stmt *s = NULL;
        ck_assert_msg(sqlite3_prepare_v2(db, c, -1, &s, NULL) == SQLITE_OK, "%s: %s", c, sqlite3_errmsg(db));
        ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
        int n = sqlite3_column_int(s, 0);
        most = n > most ? n : most;
        tables++;
        sqlite3_finalize(s);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    ck_assert_msg(tables > 0, "no state table of kind %c", kind);
    return most;
}

/* Waits (up to 30 s: every view has a pipeline of its own) until state_windows(kind) is n. */
static void wait_state(const char *dir, char kind, int n, int line)
{
    int got = -1;
    for (int i = 0; i < 1500 && (got = state_windows(dir, kind)) != n; i++)
        usleep(20000);
    ck_assert_msg(got == n, "line %d: %d windows in the state of kind %c, expected %d", line, got, kind, n);
}

/* Windows of 10 s, watermark = latest ts - 5 s (event seconds after T0). A delete must not be
 * behind the watermark either (it would be late). */
static const ev_t STEP1[] = {{1, 30, 1}, {2, 70, 8}, {3, 10, 4}, {4, 90, 5}, {5, 40, 12}, {6, 80, 11}};
static const ev_t STEP2[] = {{7, 60, 16}, {8, 20, 19}, {9, 50, 15}}; /* watermark 14: [0, 10) closes */
static const ev_t LATE[] = {{10, 99, 7}};                             /* behind 14: dead-lettered */
static const ev_t STEP3[] = {{11, 35, 24}, {12, 75, 26}, {14, 55, 23}}; /* watermark 21: [10, 20) closes */
static const ev_t DEL[] = {{11, 35, 24}, {12, 75, 26}};               /* deletes in the open [20, 30) */
static const ev_t STEP4[] = {{13, 45, 40}};                           /* watermark 35: [20, 30) closes */
static const ev_t KEPT[] = {{1, 30, 1}, {2, 70, 8}, {3, 10, 4}, {4, 90, 5}, {5, 40, 12}, {6, 80, 11},
                            {7, 60, 16}, {8, 20, 19}, {9, 50, 15}, {14, 55, 23}, {13, 45, 40}};

/* The integer a one-cell query gives. */
static int int1(ss_engine_t *e, const char *sql)
{
    char *got = run(e, sql);
    char *p = strstr(got, "\n--");
    p = p ? strchr(p + 1, '\n') : NULL;
    ck_assert_msg(p, "%s: %s", sql, got);
    int n = atoi(p + 1);
    free(got);
    return n;
}

START_TEST(test_sem_per_window)
{
    char *dir = tu_tmpdir();
    ss_engine_t *e = open_engine_ok(dir);
    exec(e, DDL);
    append(dir, STEP1, 6);
    wait_count(e, 6, "step 1");
    wait_state(dir, 't', 2, __LINE__);
    wait_state(dir, 'a', 2, __LINE__);
    wait_state(dir, 'j', 2, __LINE__);
    wait_state(dir, 'm', 6, __LINE__);
    append(dir, STEP2, 3);
    wait_count(e, 9, "step 2");
    wait_state(dir, 't', 1, __LINE__);
    wait_state(dir, 'a', 1, __LINE__);
    wait_state(dir, 'j', 1, __LINE__);
    wait_state(dir, 'm', 5, __LINE__);
    append(dir, LATE, 1);
    append(dir, STEP3, 3);
    wait_count(e, 12, "step 3 (the late event is not counted)");
    wait_state(dir, 't', 1, __LINE__); /* watermark 21: [10, 20) closed too */
    delete_ev(e, &DEL[0]);
    delete_ev(e, &DEL[1]);
    wait_count(e, 10, "deletes");
    append(dir, STEP4, 1);
    wait_count(e, 11, "step 4");
    wait_state(dir, 't', 1, __LINE__);
    wait_state(dir, 'a', 1, __LINE__);
    wait_state(dir, 'j', 1, __LINE__);
    wait_state(dir, 'm', 1, __LINE__);
    ck_assert_int_eq(int1(e, "SELECT count(*) FROM vscore;"), 6); /* 2 + 2 + 1 + 1 */
    ck_assert_int_eq(int1(e, "SELECT count(*) FROM vboth;"), 4);
    char *inc[4];
    for (int v = 0; v < 4; v++)
        inc[v] = run(e, VIEWS[v]);
    ss_engine_close(e);

    /* from scratch: the rows that stayed, at once */
    char *dir2 = tu_tmpdir();
    e = open_engine_ok(dir2);
    exec(e, DDL);
    append(dir2, KEPT, 11);
    wait_count(e, 11, "from scratch");
    for (int v = 0; v < 4; v++) {
        char *got = run(e, VIEWS[v]);
        for (int i = 0; i < 1500 && strcmp(got, inc[v]); i++) { /* each view catches up on its own */
            usleep(20000);
            free(got);
            got = run(e, VIEWS[v]);
        }
        ck_assert_msg(!strcmp(got, inc[v]), "%s\nincremental:\n%s\nfrom scratch:\n%s", VIEWS[v], inc[v], got);
        free(got);
        free(inc[v]);
    }
    ss_engine_close(e);
    free(dir);
    free(dir2);
}
END_TEST

/* A restart between the window's rows and its close: the state of closed windows still goes. */
START_TEST(test_sem_window_restart)
{
    char *dir = tu_tmpdir();
    ss_engine_t *e = open_engine_ok(dir);
    exec(e, DDL);
    append(dir, STEP1, 6);
    wait_count(e, 6, "before the restart");
    ss_engine_close(e);
    e = open_engine_ok(dir);
    append(dir, STEP2, 3);
    wait_count(e, 9, "after the restart");
    wait_state(dir, 't', 1, __LINE__);
    wait_state(dir, 'a', 1, __LINE__);
    wait_state(dir, 'j', 1, __LINE__);
    ss_engine_close(e);
    free(dir);
}
END_TEST

Suite *check_it_winsem_suite(void)
{
    Suite *s = suite_create("it_winsem");
    TCase *tc = tcase_create("winsem");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_sem_per_window);
    tcase_add_test(tc, test_sem_window_restart);
    suite_add_tcase(s, tc);
    return s;
}
