/*
 * check_it_pgwire.c — `semstream serve --pg-port` against the official PostgreSQL
 * clients: libpq (this program, linked with Debian's libpq) and psql.
 *   - simple and extended protocol: CREATE/INSERT/SELECT, parameters ($1...) of every
 *     type, prepared statements described and executed twice, binary results;
 *   - RowDescription type OIDs (int8, float8, bool, text, numeric, json);
 *   - errors with SQLSTATE and the character position of the error;
 *   - SUBSCRIBE streamed as COPY (SUBSCRIBE v) TO STDOUT and through DECLARE/FETCH, a
 *     change made meanwhile arriving; a cancel request ending a COPY that never ends;
 *   - the statement time limit (SET statement_timeout) on a heavy cross join;
 *   - psql: the same statements, \d, \dt, \dm, \d NAME, EXPLAIN, an error's position.
 */
#include "serve_fixture.h"

#include <libpq-fe.h>
#include <pthread.h>

static PGconn *connect_pg(const sv_t *s, const char *user, const char *password)
{
    char ci[512];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s dbname=semstream connect_timeout=20%s%s", s->pg_port, user,
             password ? " password=" : "", password ? password : "");
    PGconn *c = PQconnectdb(ci);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

/* Runs sql; asserts the status; returns the result (caller clears). */
static PGresult *must(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == want, "%s: %s %s", sql, PQresStatus(PQresultStatus(r)),
                  PQresultErrorMessage(r));
    return r;
}

static void run_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The error's SQLSTATE and position ("" / 0 when absent). */
static void expect_error(PGresult *r, const char *state, int position, const char *msg_part)
{
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    ck_assert_msg(st && !strcmp(st, state), "SQLSTATE %s, wanted %s (%s)", st ? st : "none", state, m ? m : "");
    if (position)
        ck_assert_msg(pos && atoi(pos) == position, "position %s, wanted %d (%s)", pos ? pos : "none", position,
                      m ? m : "");
    if (msg_part)
        ck_assert_msg(m && strstr(m, msg_part), "message \"%s\" lacks \"%s\"", m ? m : "", msg_part);
}

static void setup_views(PGconn *c)
{
    run_ok(c, "CREATE STREAM ev (id INT KEY, v INT, name TEXT, score REAL, ok BOOLEAN, amount NUMERIC(10,2), "
              "doc JSON) WITH (topic = 'ev', format = 'json')");
    run_ok(c, "CREATE CONTINUOUS VIEW big AS SELECT id, v, name, score, ok, amount, doc FROM ev WHERE v > 15");
    run_ok(c, "INSERT INTO ev VALUES (1, 10, 'one', 1.5, true, 1.25, '{\"a\":1}'), "
              "(2, 20, 'two', 0.1, false, 2.50, '{\"a\":2}'), (3, 30, 'three', 3.25, true, 3.75, '[3]')");
}

START_TEST(test_types_params_errors)
{
    sv_t s;
    sv_start(&s, NULL);
    PGconn *c = connect_pg(&s, "tester", NULL);
    setup_views(c);

    /* simple query: types and values */
    PGresult *r = must(c, "SELECT id, v, name, score, ok, amount, doc FROM big ORDER BY id", PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(r), 2);
    Oid want[] = {20, 20, 25, 701, 16, 1700, 114};
    for (int i = 0; i < 7; i++)
        ck_assert_msg(PQftype(r, i) == want[i], "column %d: type %u, wanted %u", i, PQftype(r, i), want[i]);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "two");
    ck_assert_str_eq(PQgetvalue(r, 0, 3), "0.1");
    ck_assert_str_eq(PQgetvalue(r, 0, 4), "f");
    ck_assert_str_eq(PQgetvalue(r, 0, 5), "2.50");
    ck_assert_str_eq(PQgetvalue(r, 1, 4), "t");
    ck_assert_str_eq(PQgetvalue(r, 1, 6), "[3]");
    ck_assert_str_eq(PQcmdTuples(r), "2");
    PQclear(r);

    /* extended protocol with parameters: text, numbers, NULL */
    const char *vals[] = {"4", "40", "it's four", NULL};
    r = PQexecParams(c, "INSERT INTO ev (id, v, name, doc) VALUES ($1, $2, $3, $4)", 4, NULL, vals, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    ck_assert_str_eq(PQcmdStatus(r), "INSERT 0 1");
    PQclear(r);
    Oid types[] = {20, 25};
    const char *p2[] = {"25", "it's four"};
    r = PQexecParams(c, "SELECT id, name FROM big WHERE v > $1 AND name = $2", 2, types, p2, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "4");
    PQclear(r);

    /* a prepared statement: described, then run twice; binary results */
    r = PQprepare(c, "by_v", "SELECT id, score FROM big WHERE v >= $1 ORDER BY id", 1, NULL);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQdescribePrepared(c, "by_v");
    ck_assert_int_eq(PQnparams(r), 1);
    ck_assert_int_eq(PQnfields(r), 2);
    ck_assert_int_eq(PQftype(r, 0), 20);
    ck_assert_str_eq(PQfname(r, 1), "score");
    PQclear(r);
    const char *a1[] = {"30"};
    r = PQexecPrepared(c, "by_v", 1, a1, NULL, NULL, 1);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    ck_assert_int_eq(PQntuples(r), 2);
    ck_assert_int_eq(PQfformat(r, 0), 1);
    ck_assert_int_eq(PQgetlength(r, 0, 0), 8);
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, 0, 0);
    ck_assert_int_eq(b[7], 3);
    double d;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | ((const unsigned char *)PQgetvalue(r, 0, 1))[i];
    memcpy(&d, &u, 8);
    ck_assert(d == 3.25);
    PQclear(r);
    const char *a2[] = {"20"};
    r = PQexecPrepared(c, "by_v", 1, a2, NULL, NULL, 0);
    ck_assert_int_eq(PQntuples(r), 3);
    PQclear(r);

    /* errors: SQLSTATE and position (1-based characters, as PostgreSQL) */
    r = PQexec(c, "SELECT id FROM big WHER id = 1");
    expect_error(r, "42601", 0, "syntax error");
    PQclear(r);
    r = PQexec(c, "SELECT nope FROM big");
    expect_error(r, "42703", 8, "unknown column");
    PQclear(r);
    r = PQexec(c, "SELECT 1;\nSELECT id FROM nowhere");
    expect_error(r, "42P01", 26, "no such view");
    PQclear(r);
    r = PQexec(c, "SELECT sqlite_version() FROM big");
    expect_error(r, "42883", 8, "SQLITE_VERSION");
    PQclear(r);
    const char *bad[] = {"x"};
    Oid it[] = {23};
    r = PQexecParams(c, "SELECT id FROM big WHERE v = $1", 1, it, bad, NULL, NULL, 0);
    expect_error(r, "22P02", 0, "invalid input syntax for type integer");
    PQclear(r);
    /* the session is usable after errors */
    r = must(c, "SELECT count(*) FROM big", PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "3");
    PQclear(r);

    /* a failed transaction block refuses statements until ROLLBACK */
    run_ok(c, "BEGIN");
    PQclear(PQexec(c, "SELECT nope FROM big"));
    r = PQexec(c, "SELECT 1");
    expect_error(r, "25P02", 0, "current transaction is aborted");
    PQclear(r);
    run_ok(c, "ROLLBACK");
    run_ok(c, "SELECT 1");

    /* session settings and catalog functions drivers ask for */
    r = must(c, "SHOW server_version", PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(strstr(PQgetvalue(r, 0, 0), "15"));
    PQclear(r);
    run_ok(c, "SET application_name = 'libpq-test'");
    r = must(c, "SELECT current_setting('application_name'), current_database(), version()", PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "libpq-test");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "semstream");
    ck_assert_str_eq(PQfname(r, 2), "version");
    PQclear(r);
    r = must(c, "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c WHERE c.relname ~ '^(ev|big)$' ORDER BY 1",
             PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(r), 2);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "big");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "m");
    ck_assert_str_eq(PQgetvalue(r, 1, 1), "r");
    PQclear(r);
    r = PQexec(c, "SELECT * FROM pg_catalog.pg_class; ATTACH 'x.db' AS x");
    ck_assert_int_ne(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);

    PQfinish(c);
    sv_stop(&s);
}
END_TEST

typedef struct canceller {
    PGconn *c;
    int delay_ms;
} canceller_t;

static void *cancel_later(void *arg)
{
    canceller_t *k = arg;
    sv_sleep_ms(k->delay_ms);
    PGcancel *pc = PQgetCancel(k->c);
    char err[256];
    PQcancel(pc, err, sizeof err);
    PQfreeCancel(pc);
    return NULL;
}

/* Reads COPY rows until n have come (or the copy ends); returns how many came. */
static int copy_rows(PGconn *c, int n, ss_buf_t *got)
{
    int k = 0;
    while (k < n) {
        char *line = NULL;
        int len = PQgetCopyData(c, &line, 0);
        if (len < 0)
            break;
        ss_buf_append(got, line, (size_t)len);
        PQfreemem(line);
        k++;
    }
    return k;
}

START_TEST(test_subscribe_copy_cursor_cancel)
{
    sv_t s;
    sv_start(&s, NULL);
    PGconn *c = connect_pg(&s, "tester", NULL), *w = connect_pg(&s, "writer", NULL);
    setup_views(c);

    /* COPY (SUBSCRIBE) streams: the snapshot (2 rows), then a change made meanwhile */
    PGresult *r = PQexec(c, "COPY (SUBSCRIBE big WITH (limit = 3)) TO STDOUT");
    ck_assert_msg(PQresultStatus(r) == PGRES_COPY_OUT, "%s", PQresultErrorMessage(r));
    PQclear(r);
    ss_buf_t got = SS_BUF_INIT;
    ck_assert_int_eq(copy_rows(c, 2, &got), 2);
    ck_assert_msg(strstr(ss_buf_cstr(&got), "\t1\t2\t20\ttwo\t0.1\tf\t2.50\t{\"a\":2}\n"), "%s", ss_buf_cstr(&got));
    run_ok(w, "INSERT INTO ev VALUES (9, 90, 'nine', NULL, NULL, NULL, NULL)");
    ss_buf_reset(&got);
    ck_assert_int_eq(copy_rows(c, 1, &got), 1);
    ck_assert_msg(strstr(ss_buf_cstr(&got), "\t1\t9\t90\tnine\t\\N\t\\N\t\\N\t\\N\n"), "%s", ss_buf_cstr(&got));
    char *line = NULL;
    ck_assert_int_eq(PQgetCopyData(c, &line, 0), -1); /* the limit ends it */
    r = PQgetResult(c);
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    ck_assert_str_eq(PQcmdStatus(r), "COPY 3");
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);

    /* a cursor over SUBSCRIBE: FETCH waits for rows, with a timeout returns what there is */
    run_ok(c, "BEGIN");
    run_ok(c, "DECLARE cur CURSOR FOR SUBSCRIBE big");
    r = must(c, "FETCH ALL cur WITH (timeout = '2s')", PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(r), 3);
    ck_assert_str_eq(PQfname(r, 0), "mz_timestamp");
    ck_assert_str_eq(PQfname(r, 1), "mz_diff");
    ck_assert_str_eq(PQfname(r, 2), "id");
    ck_assert_int_eq(PQftype(r, 2), 20);
    PQclear(r);
    r = must(c, "FETCH ALL cur WITH (timeout = '0s')", PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(r), 0);
    PQclear(r);
    run_ok(w, "DELETE FROM ev WHERE id = 2");
    r = must(c, "FETCH 5 FROM cur", PGRES_TUPLES_OK); /* no timeout: waits for the change */
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "-1");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "2");
    ck_assert_str_eq(PQcmdStatus(r), "FETCH 1");
    PQclear(r);
    run_ok(c, "COMMIT");
    r = PQexec(c, "FETCH 1 cur");
    expect_error(r, "34000", 0, "does not exist");
    PQclear(r);

    /* a COPY that never ends is ended by a cancel request: 57014, and the session goes on */
    canceller_t k = {c, 700};
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, &k);
    int64_t t0 = ss_now_ns();
    r = PQexec(c, "COPY (SUBSCRIBE big) TO STDOUT");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COPY_OUT);
    PQclear(r);
    while (PQgetCopyData(c, &line, 0) > 0)
        PQfreemem(line);
    r = PQgetResult(c);
    expect_error(r, "57014", 0, "canceling statement due to user request");
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    pthread_join(th, NULL);
    ck_assert_msg(ss_now_ns() - t0 < 10000000000LL, "the cancel took %.1f s", (ss_now_ns() - t0) / 1e9);
    r = must(c, "SELECT count(*) FROM big", PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
    PQclear(r);

    /* the statement time limit: a cross join far too big to finish */
    run_ok(w, "INSERT INTO ev VALUES (10, 100, 'a', 1, true, 1, '1'), (11, 110, 'b', 1, true, 1, '1'), "
              "(12, 120, 'c', 1, true, 1, '1'), (13, 130, 'd', 1, true, 1, '1')");
    run_ok(c, "SET statement_timeout = '300ms'");
    t0 = ss_now_ns();
    r = PQexec(c, "SELECT count(*) FROM big a JOIN big b ON 1 = 1 JOIN big c ON 1 = 1 JOIN big d ON 1 = 1 "
                  "JOIN big e ON 1 = 1 JOIN big f ON 1 = 1 JOIN big g ON 1 = 1 JOIN big h ON 1 = 1 "
                  "JOIN big i ON 1 = 1 JOIN big j ON 1 = 1 JOIN big k ON 1 = 1");
    expect_error(r, "57014", 0, "statement timeout");
    PQclear(r);
    ck_assert_msg(ss_now_ns() - t0 < 5000000000LL, "the time limit took %.1f s", (ss_now_ns() - t0) / 1e9);
    run_ok(c, "RESET statement_timeout");
    ss_buf_free(&got);
    PQfinish(c);
    PQfinish(w);
    sv_stop(&s);
}
END_TEST

/* Runs psql with the given -c commands; returns its output (stdout and stderr). */
static char *psql(const sv_t *s, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "PGCONNECT_TIMEOUT=20 psql -X -h 127.0.0.1 -p %d -U tester semstream %s 2>&1",
             s->pg_port, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ss_buf_t b = SS_BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        ss_buf_append(&b, tmp, n);
    pclose(p);
    return ss_buf_take(&b);
}

START_TEST(test_psql)
{
    if (system("command -v psql >/dev/null 2>&1") != 0) {
        fprintf(stderr, "check_it_pgwire: psql is not installed (scripts/setup.sh installs postgresql-client)\n");
        ck_abort_msg("psql missing");
    }
    sv_t s;
    sv_start(&s, NULL);
    char *o = psql(&s, "-c \"CREATE STREAM ev (id INT KEY, v INT) WITH (topic='ev', format='json')\" "
                       "-c \"CREATE CONTINUOUS VIEW big AS SELECT id, v FROM ev WHERE v > 15\" "
                       "-c \"INSERT INTO ev VALUES (1, 10), (2, 20), (3, 30)\" "
                       "-c \"SELECT * FROM big ORDER BY id\" "
                       "-c \"EXPLAIN VIEW big\" "
                       "-c \"COPY (SUBSCRIBE big WITH (limit = 2)) TO STDOUT\"");
    ck_assert_msg(strstr(o, "CREATE STREAM\nCREATE VIEW\nINSERT 0 3\n"), "%s", o);
    ck_assert_msg(strstr(o, " id | v  \n----+----\n  2 | 20\n  3 | 30\n(2 rows)"), "%s", o);
    ck_assert_msg(strstr(o, "QUERY PLAN") && strstr(o, "view big") && strstr(o, "#1002 filter"), "%s", o);
    ck_assert_msg(strstr(o, "\t1\t2\t20\n") && strstr(o, "\t1\t3\t30\n"), "%s", o);
    free(o);
    o = psql(&s, "-c '\\d' -c '\\dt' -c '\\dm' -c '\\d big' -c '\\d+ big' -c '\\l'");
    ck_assert_msg(strstr(o, " public | big  | materialized view |") && strstr(o, " public | ev   | table "), "%s", o);
    ck_assert_msg(strstr(o, "Materialized view \"public.big\"") && strstr(o, " id     | bigint |"), "%s", o);
    ck_assert_msg(strstr(o, "View definition:\nSELECT id, v FROM ev WHERE v > 15"), "%s", o);
    /* \l: the database, its columns named as psql aliases them ("Locale Provider") */
    ck_assert_msg(strstr(o, "List of databases") && strstr(o, " semstream |") && strstr(o, "Locale Provider") &&
                      !strstr(o, "?column?"),
                  "%s", o);
    free(o);
    /* an error points at its place, as PostgreSQL's do */
    o = psql(&s, "-c 'SELECT id, nope FROM big'");
    ck_assert_msg(strstr(o, "ERROR:  unknown column \"nope\"") && strstr(o, "LINE 1: SELECT id, nope FROM big") &&
                      strstr(o, "\n                   ^"),
                  "%s", o);
    free(o);
    sv_stop(&s);
}
END_TEST

Suite *check_it_pgwire_suite(void)
{
    Suite *s = suite_create("it_pgwire");
    TCase *tc = tcase_create("pgwire");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_types_params_errors);
    tcase_add_test(tc, test_subscribe_copy_cursor_cancel);
    tcase_add_test(tc, test_psql);
    suite_add_tcase(s, tc);
    return s;
}
