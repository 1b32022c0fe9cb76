/*
 * check_it_log.c — the engine on its default transport, the durable log
 * ("<db>.log"), driven like a user would, with real processes: the issue's
 * 40,000-row COUNT(*) that the old in-memory broker cut short; restarting `run`
 * and `shell` on the same state, inserting more, and another process seeing
 * every row with the right lag (also with a `run` and a `shell` writing at
 * once); insert+delete pairs on 4 partitions leaving no phantom rows (keyed and
 * keyless); dead letters and sink topics read back with `semstream log cat`;
 * an append_only stream (deletes dead-lettered or refused, no state kept);
 * a log deleted under the saved positions (an error naming the topic, the
 * partition and both offsets); retention validated at definition and applied;
 * and a disk that fills during a load (a small tmpfs in a private mount
 * namespace: the load pauses with a clear error and completes once space
 * returns; skipped with the reason where namespaces are not allowed).
 */
#include "ss_engine.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIN SS_BINARY_DIR "/semstream"

/* Starts semstream with args (NULL-terminated, args[0] = "semstream"), output to /dev/null. */
static pid_t spawn_quiet(const char *const *args)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *null = freopen("/dev/null", "w", stdout);
        (void)null;
        execv(BIN, (char *const *)args);
        _exit(127);
    }
    return pid;
}

/* An engine of this process on dir/st.db (the log dir/st.db.log). */
/* catch_up: SELECT waits for the views; views_off: a process that never runs them */
static ss_engine_t *engine_opts(const char *dir, int catch_up, int views_off)
{
    char db[1024];
    snprintf(db, sizeof db, "%s/st.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.max_latency_ms = 20;
    o.catch_up = catch_up;
    o.views_off = views_off;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_engine_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    return e;
}

static ss_engine_t *engine(const char *dir, int catch_up) { return engine_opts(dir, catch_up, 0); }

static char *query(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_engine_exec(e, sql, strlen(sql), "t", &out, err, sizeof err) == SS_OK, "%s: %s", sql, err);
    return ss_buf_take(&out);
}

/* Column col (0-based) of view name's row in SHOW VIEWS output. */
static long long show_col(const char *show, const char *name, int col)
{
    char key[128];
    snprintf(key, sizeof key, "\n %s ", name);
    const char *p = strstr(show, key);
    ck_assert_msg(p != NULL, "view %s not in:\n%s", name, show);
    for (int i = 0; i < col; i++) {
        p = strchr(p + 1, '|');
        ck_assert_ptr_nonnull(p);
    }
    return strtoll(p + 1, NULL, 10);
}

/* The single number a one-row, one-column SELECT prints. */
static long long scalar(const char *table)
{
    const char *p = strstr(table, "\n-");
    ck_assert_msg(p && (p = strchr(p + 1, '\n')), "%s", table);
    return strtoll(p + 1, NULL, 10);
}

static const char *ORDERS =
    "CREATE STREAM IF NOT EXISTS orders (id INT KEY, cust TEXT, amount INT);\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS cnt AS SELECT COUNT(*) AS n FROM orders;\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS by_cust WITH (sink_topic = 'by_cust') AS\n"
    "  SELECT cust, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY cust;\n";

/* The repro: 40,000 rows on the defaults gave COUNT 32,473 on the in-memory broker. */
START_TEST(test_40000_rows)
{
    char *dir = tu_tmpdir(), cmd[4096], path[1024];
    snprintf(path, sizeof path, "%s/o.jsonl", dir);
    tu_write_orders(path, 0, 40000, 100);
    snprintf(cmd, sizeof cmd, "%s/cnt.sql", dir);
    tu_write_file(cmd, ORDERS);
    snprintf(cmd, sizeof cmd, "cd %s && %s run cnt.sql --db st.db --load orders=o.jsonl --until-idle --print-views",
             dir, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "streams and sinks on log st.db.log"), "the transport is not announced:\n%s", out);
    ck_assert_msg(strstr(out, "view by_cust publishes its changes to topic by_cust"), "%s", out);
    ck_assert_msg(strstr(out, "\n 40000\n"), "%s", out);
    ck_assert_msg(strstr(out, " c7   | 400 |"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

START_TEST(test_restart_and_second_process)
{
    char *dir = tu_tmpdir(), cmd[4096], path[1024];
    snprintf(path, sizeof path, "%s/o.jsonl", dir);
    tu_write_orders(path, 0, 1000, 100);
    snprintf(path, sizeof path, "%s/cnt.sql", dir);
    tu_write_file(path, ORDERS);
    /* 1. run loads and catches up, then exits */
    snprintf(cmd, sizeof cmd, "cd %s && %s run cnt.sql --db st.db --load orders=o.jsonl --until-idle --quiet", dir,
             BIN);
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    /* 2. the same run again: the load is not repeated, the state resumes */
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    /* 3. a process that does not run the views inserts and deletes */
    ss_engine_t *w = engine_opts(dir, 0, 1);
    char *out = query(w, "INSERT INTO orders VALUES (5000, 'x', 1), (5001, 'x', 2);\nDELETE FROM orders WHERE id = 3;");
    ck_assert_msg(strstr(out, "INSERT 2") && strstr(out, "DELETE 1"), "%s", out);
    free(out);
    ss_engine_close(w);
    /* 4. a process that does not run the views sees the 3 writes as lag */
    ss_engine_t *e = engine_opts(dir, 0, 1);
    char *r = query(e, "SHOW VIEWS;");
    ck_assert_int_eq(show_col(r, "cnt", 2), 3);
    ck_assert_int_eq(show_col(r, "by_cust", 2), 3);
    free(r);
    ss_engine_close(e);
    /* 5. and one that does sees every row, lag 0 */
    e = engine(dir, 1);
    r = query(e, "SELECT n FROM cnt;");
    ck_assert_int_eq(scalar(r), 1001);
    free(r);
    r = query(e, "SHOW VIEWS;");
    ck_assert_int_eq(show_col(r, "cnt", 2), 0);
    free(r);
    r = query(e, "SELECT n, total FROM by_cust WHERE cust = 'x';");
    ck_assert_msg(strstr(r, " 2 | 3"), "%s", r);
    free(r);
    ss_engine_close(e);
    /* 6. a running `run` and a shell writing at the same time: both appends land, in order */
    char db[1024];
    snprintf(db, sizeof db, "%s/st.db", dir);
    pid_t pid = spawn_quiet((const char *const[]){"semstream", "run", path, "--db", db, "--quiet", NULL});
    tu_sleep_ms(500);
    ss_buf_t sql = SS_BUF_INIT;
    for (int i = 0; i < 30; i++)
        ss_buf_printf(&sql, "INSERT INTO orders VALUES (%d, 'y', 1);\n", 6000 + i);
    snprintf(path, sizeof path, "%s/more.sql", dir);
    tu_write_file(path, ss_buf_cstr(&sql));
    ss_buf_free(&sql);
    snprintf(cmd, sizeof cmd, "cd %s && %s shell more.sql --db st.db", dir, BIN);
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    /* the shell is a reader while `run` runs the views: it reads what run applied, refuses DDL */
    ss_engine_t *rd = engine(dir, 1);
    r = query(rd, "SELECT n FROM cnt;");
    ck_assert_int_eq(scalar(r), 1031);
    free(r);
    r = query(rd, "SHOW VIEWS;");
    ck_assert_msg(strstr(r, "run by process") != NULL, "%s", r);
    ck_assert_int_eq(show_col(r, "cnt", 2), 0);
    free(r);
    ss_buf_t o2 = SS_BUF_INIT;
    char e2[SS_ERRSZ] = "";
    const char *ddl = "DROP VIEW cnt;";
    ck_assert_int_ne(ss_engine_exec(rd, ddl, strlen(ddl), "t", &o2, e2, sizeof e2), SS_OK);
    ck_assert_msg(strstr(e2, "runs the views of") != NULL, "%s", e2);
    ss_buf_free(&o2);
    ss_engine_close(rd);
    tu_sleep_ms(300);
    kill(pid, SIGINT);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run ended with status %d", st);
    e = engine(dir, 1);
    r = query(e, "SELECT n FROM cnt;");
    ck_assert_int_eq(scalar(r), 1031);
    free(r);
    ss_engine_close(e);
    free(dir);
}
END_TEST

/* One key's insert and delete stay in one partition, in order: no phantom rows on 4 partitions. */
START_TEST(test_no_phantoms_on_partitions)
{
    char *dir = tu_tmpdir(), path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"op\":\"insert\",\"row\":{\"id\":%d,\"v\":%d}}\n{\"op\":\"delete\",\"row\":{\"id\":%d}}\n", i,
                i, i);
    fclose(f);
    snprintf(path, sizeof path, "%s/bag.jsonl", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"op\":\"insert\",\"row\":{\"a\":%d,\"b\":\"x\"}}\n{\"op\":\"delete\",\"row\":{\"a\":%d,\"b\":\"x\"}}\n",
                i, i);
    fclose(f);
    snprintf(path, sizeof path, "%s/p.sql", dir);
    tu_write_file(path, "CREATE STREAM kv (id INT KEY, v INT) WITH (partitions = 4);\n"
                     "CREATE STREAM bag (a INT, b TEXT) WITH (partitions = 4);\n"
                     "CREATE CONTINUOUS VIEW kv_rows AS SELECT id, v FROM kv;\n"
                     "CREATE CONTINUOUS VIEW bag_rows AS SELECT a, b FROM bag;\n"
                     "INSERT INTO kv VALUES (100, 1);\nDELETE FROM kv WHERE id = 100;\n"
                     "INSERT INTO bag VALUES (100, 'y');\nDELETE FROM bag WHERE a = 100 AND b = 'y';\n"
                     "SELECT COUNT(*) FROM kv_rows;\nSELECT COUNT(*) FROM bag_rows;\n");
    snprintf(cmd, sizeof cmd,
             "cd %s && %s run p.sql --db st.db --load kv=pairs.jsonl --load bag=bag.jsonl --until-idle --quiet "
             "--print-views && %s log --db st.db topics", dir, BIN, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "view kv_rows:") && strstr(out, "view bag_rows:"), "%s", out);
    const char *v = strstr(out, "view kv_rows:");
    ck_assert_msg(strstr(v, "(0 rows)") && strstr(strstr(v, "view bag_rows:"), "(0 rows)"), "phantom rows:\n%s", out);
    ck_assert_msg(strstr(out, "kv\t4 partition(s)\t82 message(s)") && strstr(out, "bag\t4 partition(s)\t82 message(s)"),
                  "%s", out);
    free(out);
    free(dir);
}
END_TEST

/* What the engine wrote, read from outside it: dead letters and a view's changelog. */
START_TEST(test_log_cat)
{
    char *dir = tu_tmpdir(), path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/o.jsonl", dir);
    tu_write_orders(path, 0, 10, 100);
    FILE *f = fopen(path, "a");
    fputs("{\"id\":\"x7\",\"cust\":\"c\"}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/cnt.sql", dir);
    tu_write_file(path, ORDERS);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s run cnt.sql --db st.db --load orders=o.jsonl --until-idle --quiet >/dev/null && "
             "%s log --db st.db cat orders.dlq && %s log --db st.db cat by_cust --limit 2 && "
             "%s log --db st.db cat by_cust --partition 0 --from 9", dir, BIN, BIN, BIN, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "{\"topic\":\"orders.dlq\",\"partition\":0,\"offset\":0,") &&
                      strstr(out, "\"value\":{\"error\":\"column \\\"id\\\": expected INT") &&
                      strstr(out, "\"topic\":\"orders\",\"partition\":0,\"offset\":10,"),
                  "%s", out);
    ck_assert_msg(strstr(out, "{\"topic\":\"by_cust\",\"partition\":0,\"offset\":0,") &&
                      strstr(out, "\"offset\":1,") && strstr(out, "\"key\":{\"cust\":\"c0\"},\"value\":{\"view\":\"by_cust\",\"seq\":1,"),
                  "%s", out);
    ck_assert_msg(strstr(out, "\"offset\":9,") && !strstr(out, "\"offset\":10,\"ts_ms\":0"), "%s", out);
    /* errors name what is wrong */
    snprintf(cmd, sizeof cmd, "cd %s && %s log --db st.db cat nope; %s log --db none.db topics", dir, BIN, BIN);
    free(out);
    ck_assert_int_ne(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "no topic nope in st.db.log") && strstr(out, "no log at none.db.log"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

/* An append_only stream keeps no state: its rows (duplicates too) reach the views, a message
 * that deletes or updates a row is dead-lettered with the reason, DELETE FROM it is refused,
 * and a restart continues from the saved positions. */
START_TEST(test_append_only)
{
    char *dir = tu_tmpdir(), path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/ev.jsonl", dir);
    tu_write_file(path, "{\"a\":1,\"b\":\"x\"}\n{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n"
                        "{\"op\":\"delete\",\"row\":{\"a\":1,\"b\":\"x\"}}\n"
                        "{\"op\":\"update\",\"before\":{\"a\":2,\"b\":\"y\"},\"row\":{\"a\":2,\"b\":\"z\"}}\n"
                        "{\"op\":\"insert\",\"row\":{\"a\":3,\"b\":\"w\"}}\n");
    snprintf(path, sizeof path, "%s/ev.sql", dir);
    tu_write_file(path, "CREATE STREAM IF NOT EXISTS ev (a INT, b TEXT) WITH (append_only = true);\n"
                        "CREATE CONTINUOUS VIEW IF NOT EXISTS rows_ AS SELECT a, b FROM ev;\n"
                        "CREATE CONTINUOUS VIEW IF NOT EXISTS n AS SELECT COUNT(*) AS n, SUM(a) AS s FROM ev;\n");
    snprintf(cmd, sizeof cmd,
             "cd %s && %s run ev.sql --db st.db --load ev=ev.jsonl --until-idle --quiet >/dev/null && "
             "%s log --db st.db cat ev.dlq", dir, BIN, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "\"offset\":0,") && strstr(out, "\"offset\":1,") && /* (once per view's pipeline) */
                      strstr(out, "stream ev is append_only: a message that deletes or updates a row is refused") &&
                      strstr(out, "\"topic\":\"ev\",\"partition\":0,\"offset\":3,") &&
                      strstr(out, "\"topic\":\"ev\",\"partition\":0,\"offset\":4,"),
                  "%s", out);
    free(out);
    ss_engine_t *e = engine(dir, 1);
    char *t = query(e, "SELECT COUNT(*) FROM rows_;");
    ck_assert_int_eq(scalar(t), 4); /* 1 x twice, 2 y, 3 w */
    free(t);
    t = query(e, "SELECT s FROM n;");
    ck_assert_int_eq(scalar(t), 7);
    free(t);
    ss_buf_t o = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    const char *del = "DELETE FROM ev WHERE a = 1 AND b = 'x';";
    ck_assert_int_eq(ss_engine_exec(e, del, strlen(del), "t", &o, err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err, "1:1: stream ev is append_only: its rows cannot be deleted"), "%s", err);
    const char *ins = "INSERT INTO ev VALUES (1, 'x');";
    ck_assert_msg(ss_engine_exec(e, ins, strlen(ins), "t", &o, err, sizeof err) == SS_OK, "%s", err);
    ss_buf_free(&o);
    t = query(e, "SELECT COUNT(*) FROM rows_ WHERE a = 1;");
    ck_assert_int_eq(scalar(t), 3);
    free(t);
    ss_engine_close(e);
    free(dir);
}
END_TEST

/* The log deleted under the saved positions: an error naming the topic, the partition and both offsets. */
START_TEST(test_topic_reset)
{
    char *dir = tu_tmpdir(), path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/o.jsonl", dir);
    tu_write_orders(path, 0, 300, 100);
    snprintf(path, sizeof path, "%s/cnt.sql", dir);
    tu_write_file(path, ORDERS);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s run cnt.sql --db st.db --load orders=o.jsonl --until-idle --quiet && "
             "rm st.db.log* && %s run cnt.sql --db st.db --until-idle --quiet", dir, BIN, BIN);
    char *out = NULL;
    ck_assert_int_ne(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "stream orders: topic orders partition 0: the saved position 300 is past the end of "
                              "the partition (0 messages"),
                  "%s", out);
    free(out);
    /* the views and their state are still there */
    snprintf(cmd, sizeof cmd, "sqlite3 %s/st.db 'SELECT n FROM view_cnt' 2>/dev/null || echo no-sqlite3", dir);
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(!strcmp(out, "300\n") || strstr(out, "no-sqlite3"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

START_TEST(test_retention)
{
    char *dir = tu_tmpdir(), path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/r.sql", dir);
    tu_write_file(path, "CREATE STREAM s (id INT KEY) WITH (retention = '3 fortnights');\n");
    snprintf(cmd, sizeof cmd, "cd %s && %s run r.sql --db st.db --until-idle --quiet", dir, BIN);
    char *out = NULL;
    ck_assert_int_ne(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "r.sql:1:36: stream s: retention '3 fortnights': unknown unit 'fortnights'"), "%s", out);
    free(out);
    tu_write_file(path, "CREATE STREAM s (id INT KEY);\n"
                     "CREATE CONTINUOUS VIEW v WITH (retention = '10 rows') AS SELECT id FROM s;\n");
    ck_assert_int_ne(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "r.sql:2:32: view v: retention applies to the view's sink topic"), "%s", out);
    free(out);
    ss_buf_t sql = SS_BUF_INIT;
    ss_buf_puts(&sql, "CREATE STREAM t (id INT KEY) WITH (retention = '10 rows', partitions = 2);\n"
                      "CREATE CONTINUOUS VIEW w WITH (sink_topic = 'w_out', retention = '5 rows') AS SELECT id FROM t;\n");
    for (int i = 0; i < 25; i++)
        ss_buf_printf(&sql, "INSERT INTO t VALUES (%d);\n", i);
    tu_write_file(path, ss_buf_cstr(&sql));
    ss_buf_free(&sql);
    snprintf(cmd, sizeof cmd, "cd %s && %s run r.sql --db st2.db --until-idle --quiet && %s log --db st2.db topics",
             dir, BIN, BIN);
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "t\t2 partition(s)\t19 message(s)\tretention 10 rows") &&
                      strstr(out, "w_out\t1 partition(s)\t5 message(s)\tretention 5 rows"),
                  "%s", out);
    free(out);
    free(dir);
}
END_TEST

/* A disk that fills during a load: a 32 MB tmpfs, mounted in a private mount namespace, with
 * 1.5 MB left free until the load has paused on the full disk. */
START_TEST(test_disk_full)
{
    if (tu_sh("unshare -rm sh -c 'mount -t tmpfs -o size=1m tmpfs /tmp'", NULL) != 0) {
        fprintf(stderr, "skipped: cannot mount a tmpfs in a user namespace here (unshare -rm)\n");
        return;
    }
    char *dir = tu_tmpdir(), path[1024], cmd[8192];
    snprintf(path, sizeof path, "%s/o.jsonl", dir);
    tu_write_orders(path, 0, 30000, 100); /* ~1.3 MB of JSON, ~2 MB in the log */
    snprintf(path, sizeof path, "%s/cnt.sql", dir);
    tu_write_file(path, ORDERS);
    snprintf(path, sizeof path, "%s/fs", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "cd %s && unshare -rm sh -c '"
             "mount -t tmpfs -o size=32m tmpfs fs && "
             "dd if=/dev/zero of=fs/filler bs=64k count=488 2>/dev/null; " /* leaves 1.5 MB */
             "%s run cnt.sql --db fs/st.db --load orders=o.jsonl --until-idle --quiet 2> err.txt & pid=$!; "
             "for i in $(seq 1 600); do grep -q \"disk full\" err.txt && break; sleep 0.1; done; "
             "rm fs/filler; wait $pid; echo \"exit=$?\"; "
             "echo \"SELECT n FROM cnt;\" | %s shell --db fs/st.db'; cat err.txt",
             dir, BIN, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "exit=0") && strstr(out, "\n 30000\n"), "%s", out);
    ck_assert_msg(strstr(out, "paused after") && strstr(out, "disk full") && strstr(out, "resumed after"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

Suite *check_it_log_suite(void)
{
    Suite *s = suite_create("it_log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_40000_rows);
    tcase_add_test(tc, test_restart_and_second_process);
    tcase_add_test(tc, test_no_phantoms_on_partitions);
    tcase_add_test(tc, test_log_cat);
    tcase_add_test(tc, test_append_only);
    tcase_add_test(tc, test_topic_reset);
    tcase_add_test(tc, test_retention);
    tcase_add_test(tc, test_disk_full);
    suite_add_tcase(s, tc);
    return s;
}
