/*
 * check_it_failures.c — failures are states, never data loss (issue 11, item 5),
 * with real processes: Kafka is `semstream kafka --port P` run as a process of its
 * own, killed with SIGKILL and started again on the same port (it keeps its data
 * in memory only, so what a real broker would have kept is produced to it again,
 * in the same order: the same offsets).
 *  - `run` restarted while the broker is down: the views and their state stay,
 *    the failure is logged at the default level, and they resume when it returns;
 *  - the broker killed while the views are idle and while they are busy: logged
 *    within seconds, no crash, and once it is back nothing is lost or doubled;
 *  - a topic reset under the saved positions (the broker came back empty, then
 *    got fewer messages than were read): an error naming both offsets, never a
 *    skip;
 *  - a disk that fills while the views process (a tmpfs in a private mount
 *    namespace; skipped where namespaces are not allowed): the pipeline fails
 *    with the reason logged, nothing crashes, and it completes once space returns;
 *  - Ctrl-C (SIGINT) and SIGTERM end `run` cleanly: status 0 when it was keeping views current, 1 with
 *    the input left when it was catching up, and the state is whole either way.
 */
#include "ss_base.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIN SS_BINARY_DIR "/semstream"

static const char *VIEWS =
    "CREATE STREAM IF NOT EXISTS orders (id INT KEY, cust TEXT, amount INT);\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS cnt AS SELECT COUNT(*) AS n FROM orders;\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS by_cust AS SELECT cust, COUNT(*) AS n, SUM(amount) AS total FROM orders "
    "GROUP BY cust;\n";

/* ---- processes ---- */

/* `semstream kafka --port port --topic orders:1`, started again until the port is free. */
static pid_t kafka_start(const char *dir, int port)
{
    char p[16], log[1024];
    snprintf(p, sizeof p, "%d", port);
    snprintf(log, sizeof log, "%s/kafka.log", dir);
    for (int tries = 0; tries < 50; tries++) {
        int fd[2];
        ck_assert_int_eq(pipe(fd), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            dup2(fd[1], 1);
            int e = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (e >= 0)
                dup2(e, 2);
            close(fd[0]);
            close(fd[1]);
            execl(BIN, "semstream", "kafka", "--port", p, "--topic", "orders:1", (char *)NULL);
            _exit(127);
        }
        close(fd[1]);
        char line[128] = "";
        FILE *f = fdopen(fd[0], "r");
        int ok = f && fgets(line, sizeof line, f) && strstr(line, p);
        if (f)
            fclose(f);
        if (ok)
            return pid;
        waitpid(pid, NULL, 0);
        tu_sleep_ms(200); /* the port is still held by the one just killed */
    }
    ck_abort_msg("semstream kafka could not listen on port %d", port);
    return -1;
}

/* `semstream run` with args in the background, stdout to /dev/null, stderr to errpath. */
static pid_t run_bg(const char *errpath, const char *const *args)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644), n = open("/dev/null", O_WRONLY);
        dup2(n, 1);
        dup2(e, 2);
        const char *argv[32] = {"semstream", "run"};
        int k = 2;
        for (; args[k - 2] && k < 31; k++)
            argv[k] = args[k - 2];
        argv[k] = NULL;
        execv(BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to ms for pid to end; its status (128 + signal if killed), -1 if still running. */
static int wait_exit(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 50) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (waited >= ms)
            return -1;
        tu_sleep_ms(50);
    }
}

/* Waits up to ms for the file to contain what. */
static int file_has(const char *path, const char *what, int ms)
{
    for (int waited = 0;; waited += 100) {
        char *s = tu_read_file(path, NULL);
        int ok = s && strstr(s, what);
        free(s);
        if (ok)
            return 1;
        if (waited >= ms)
            return 0;
        tu_sleep_ms(100);
    }
}

/* How many progress lines ("semstream: ... lines (" or "... messages read") path holds. */
static int progress_lines(const char *path)
{
    char *s = tu_read_file(path, NULL);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, "semstream: ")); p++) {
        char *eol = strchr(p, '\n');
        if (!eol)
            break;
        *eol = 0;
        n += strstr(p, " lines (") || strstr(p, " messages read");
        *eol = '\n';
    }
    free(s);
    return n;
}

/* SELECT sql on the state database (another process may be writing it); -1 if no row. */
static long long db_scalar(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    long long v = -1;
    int rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(h, 5000);
        sqlite3_stmt *st = NULL;
        if ((rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL)) == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (v == -1) /* why, for a failure seen once under load (-1 after a completed run) */
        fprintf(stderr, "db_scalar(%s): rc %d (%s)\n", sql, rc, h ? sqlite3_errmsg(h) : "no handle");
    sqlite3_close(h);
    return v;
}

/* Waits up to ms for both views to count want rows (they are pipelines of their own);
 * the last count of cnt read. */
static long long wait_count(const char *db, long long want, int ms)
{
    long long n = -1;
    for (int waited = 0; waited <= ms; waited += 200) {
        if ((n = db_scalar(db, "SELECT n FROM view_cnt")) == want &&
            db_scalar(db, "SELECT SUM(n) FROM view_by_cust") == want)
            return n;
        tu_sleep_ms(200);
    }
    return n;
}

/* The GROUP BY view equals what rows 0..n-1 give. */
static void check_by_cust(const char *db, int n)
{
    for (int c = 0; c < 10; c++) {
        long long cnt = 0, total = 0;
        for (int i = c; i < n; i += 10)
            cnt++, total += i % 17;
        char q[128];
        snprintf(q, sizeof q, "SELECT n FROM view_by_cust WHERE cust = 'c%d'", c);
        ck_assert_int_eq(db_scalar(db, q), cnt);
        snprintf(q, sizeof q, "SELECT total FROM view_by_cust WHERE cust = 'c%d'", c);
        ck_assert_int_eq(db_scalar(db, q), total);
    }
}

/* Produces a file's lines to the orders topic from a process of its own (as a producer would). */
static void produce(const char *dir, const char *brokers, const char *file)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && rm -f prod.db* && printf 'CREATE STREAM IF NOT EXISTS orders (id INT KEY, "
             "cust TEXT, amount INT);' > prod.sql && %s run prod.sql --db prod.db --brokers %s --load orders=%s "
             "--until-idle --quiet", dir, BIN, brokers, file);
    char *out = NULL;
    ck_assert_msg(tu_sh(cmd, &out) == 0, "producing %s: %s", file, out);
    free(out);
}

typedef struct env {
    char *dir;
    char db[1024], script[1024], err[1024], brokers[64];
    int port;
} env_t;

static void env_init(env_t *e)
{
    e->dir = tu_tmpdir();
    snprintf(e->db, sizeof e->db, "%s/st.db", e->dir);
    snprintf(e->script, sizeof e->script, "%s/views.sql", e->dir);
    snprintf(e->err, sizeof e->err, "%s/run.err", e->dir);
    tu_write_file(e->script, VIEWS);
    e->port = tu_free_port();
    snprintf(e->brokers, sizeof e->brokers, "127.0.0.1:%d", e->port);
}

static void path_in(const env_t *e, const char *name, char *buf, size_t n) { snprintf(buf, n, "%s/%s", e->dir, name); }

/* ---- the tests ---- */

START_TEST(test_restart_with_broker_down)
{
    env_t e;
    env_init(&e);
    char rows[1100], all[1100];
    path_in(&e, "o.jsonl", rows, sizeof rows);
    path_in(&e, "all.jsonl", all, sizeof all);
    tu_write_orders(rows, 0, 1000, 10);
    tu_write_orders(all, 0, 1500, 10);
    pid_t k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "o.jsonl");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --brokers %s --until-idle --quiet", BIN, e.script, e.db, e.brokers);
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    ck_assert_int_eq(db_scalar(e.db, "SELECT n FROM view_cnt"), 1000);
    tu_kill_wait(k, SIGKILL);
    /* run again while the broker is down: nothing is dropped, the failure is logged */
    pid_t r = run_bg(e.err, (const char *const[]){e.script, "--db", e.db, "--brokers", e.brokers, NULL});
    ck_assert_msg(file_has(e.err, "semstream[error] engine: views cnt", 30000), "no error logged:\n%s",
                  tu_read_file(e.err, NULL));
    ck_assert_int_eq(wait_exit(r, 0), -1); /* still running */
    ck_assert_int_eq(db_scalar(e.db, "SELECT n FROM view_cnt"), 1000);
    ck_assert_int_eq(db_scalar(e.db, "SELECT COUNT(*) FROM ss_views"), 2);
    check_by_cust(e.db, 1000);
    /* the broker returns (with what it held, and 500 rows more): the views resume where they were */
    k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "all.jsonl");
    ck_assert_int_eq(wait_count(e.db, 1500, 90000), 1500);
    check_by_cust(e.db, 1500);
    ck_assert_msg(file_has(e.err, "running again", 10000), "%s", tu_read_file(e.err, NULL));
    kill(r, SIGTERM);
    ck_assert_int_eq(wait_exit(r, 20000), 0);
    tu_kill_wait(k, SIGTERM);
    free(e.dir);
}
END_TEST

START_TEST(test_broker_killed_idle_and_busy)
{
    env_t e;
    env_init(&e);
    char path[1100];
    path_in(&e, "o.jsonl", path, sizeof path);
    tu_write_orders(path, 0, 1000, 10);
    path_in(&e, "big.jsonl", path, sizeof path);
    tu_write_orders(path, 0, 40000, 10);
    pid_t k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "o.jsonl");
    pid_t r = run_bg(e.err, (const char *const[]){e.script, "--db", e.db, "--brokers", e.brokers, NULL});
    ck_assert_int_eq(wait_count(e.db, 1000, 30000), 1000);
    /* idle: the views have nothing to read, the broker goes away */
    int64_t t0 = ss_now_ns();
    tu_kill_wait(k, SIGKILL);
    ck_assert_msg(file_has(e.err, "unreachable", 30000), "the broker's death was not logged:\n%s",
                  tu_read_file(e.err, NULL));
    ck_assert_msg(ss_now_ns() - t0 < 30000000000LL, "logged after %.0f s", (ss_now_ns() - t0) / 1e9);
    ck_assert_int_eq(wait_exit(r, 0), -1);
    k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "o.jsonl"); /* what it held */
    /* busy: 39,000 more rows arrive, and the broker dies while the views read them */
    produce(e.dir, e.brokers, "big.jsonl");
    long long n = -1;
    for (int i = 0; i < 600 && (n = db_scalar(e.db, "SELECT n FROM view_cnt")) <= 1000; i++)
        tu_sleep_ms(20);
    tu_kill_wait(k, SIGKILL);
    n = db_scalar(e.db, "SELECT n FROM view_cnt");
    fprintf(stderr, "test_broker_killed_idle_and_busy: the broker was killed with %lld of 40000 rows applied\n", n);
    tu_sleep_ms(12000);
    ck_assert_int_eq(wait_exit(r, 0), -1); /* no crash */
    long long during = db_scalar(e.db, "SELECT n FROM view_cnt");
    ck_assert_msg(during >= 1000 && during <= 40000, "%lld", during);
    k = kafka_start(e.dir, e.port);
    /* what it held, in the same order, so every saved position means the same row again */
    produce(e.dir, e.brokers, "o.jsonl");
    produce(e.dir, e.brokers, "big.jsonl");
    ck_assert_int_eq(wait_count(e.db, 40000, 120000), 40000);
    check_by_cust(e.db, 40000);
    kill(r, SIGTERM);
    ck_assert_int_eq(wait_exit(r, 20000), 0);
    tu_kill_wait(k, SIGTERM);
    free(e.dir);
}
END_TEST

/* The broker came back empty and then got fewer messages than were read: an error, not a skip. */
START_TEST(test_kafka_topic_reset)
{
    env_t e;
    env_init(&e);
    char path[1100], cmd[4096];
    path_in(&e, "o.jsonl", path, sizeof path);
    tu_write_orders(path, 0, 300, 10);
    path_in(&e, "new.jsonl", path, sizeof path);
    tu_write_orders(path, 1000, 150, 10);
    pid_t k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "o.jsonl");
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --brokers %s --until-idle --quiet", BIN, e.script, e.db, e.brokers);
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    tu_kill_wait(k, SIGKILL);
    k = kafka_start(e.dir, e.port);
    produce(e.dir, e.brokers, "new.jsonl");
    char *out = NULL;
    ck_assert_int_ne(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "topic orders partition 0: the saved position 300 is past the end of the partition "
                              "(150 messages"), "%s", out);
    free(out);
    ck_assert_int_eq(db_scalar(e.db, "SELECT n FROM view_cnt"), 300);
    tu_kill_wait(k, SIGTERM);
    free(e.dir);
}
END_TEST

/* A disk that fills while the views process: 2,000 rows of ~1 KB are in the log, then the
 * disk (a 16 MB tmpfs) is filled up but for ~256 KB and a view copying every row starts. */
START_TEST(test_disk_full_processing)
{
    char *dir = tu_tmpdir(), path[1100], cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && unshare -rm sh -c 'mkdir -p t && mount -t tmpfs -o size=1m tmpfs t'", dir);
    if (tu_sh(cmd, NULL) != 0) {
        fprintf(stderr, "skipped: cannot mount a tmpfs in a user namespace here (unshare -rm)\n");
        free(dir);
        return;
    }
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 2000; i++) {
        fprintf(f, "{\"id\":%d,\"txt\":\"", i);
        for (int j = 0; j < 100; j++)
            fprintf(f, "w%03d-%04d ", j, i);
        fprintf(f, "\"}\n");
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/load.sql", dir);
    tu_write_file(path, "CREATE STREAM IF NOT EXISTS s (id INT KEY, txt TEXT);\n");
    snprintf(path, sizeof path, "%s/views.sql", dir);
    tu_write_file(path, "CREATE STREAM IF NOT EXISTS s (id INT KEY, txt TEXT);\n"
                     "CREATE CONTINUOUS VIEW IF NOT EXISTS copy AS SELECT id, txt FROM s;\n");
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p fs && unshare -rm sh -c '"
             "mount -t tmpfs -o size=16m tmpfs fs && "
             "%s run load.sql --db fs/st.db --load s=rows.jsonl --until-idle --quiet && "
             "avail=$(df -k fs | awk \"NR==2 {print \\$4}\") && "
             "dd if=/dev/zero of=fs/filler bs=1k count=$((avail - 256)) 2>/dev/null; "
             "%s run views.sql --db fs/st.db --until-idle --quiet 2> err.txt & pid=$!; "
             "for i in $(seq 1 600); do grep -qi \"disk\" err.txt && break; sleep 0.1; done; "
             "sleep 2; kill -0 $pid && echo alive-while-full; "
             "rm fs/filler; wait $pid; echo \"exit=$?\"; "
             "echo \"SELECT COUNT(*) AS n FROM copy; SELECT COUNT(DISTINCT txt) AS n FROM copy;\" | "
             "%s shell --db fs/st.db'; cat err.txt",
             dir, BIN, BIN, BIN);
    char *out = NULL;
    ck_assert_int_eq(tu_sh(cmd, &out), 0);
    ck_assert_msg(strstr(out, "alive-while-full") && strstr(out, "exit=0"), "%s", out);
    const char *a = strstr(out, "\n 2000\n(1 row)");
    ck_assert_msg(a && strstr(a + 1, "\n 2000\n(1 row)"), "every row, once, each complete:\n%s", out);
    ck_assert_msg(strstr(out, "disk") && strstr(out, "running again"), "%s", out);
    free(out);
    free(dir);
}
END_TEST

/* SIGTERM while a script catches up: status 1 and the input left; while keeping views current: 0. */
START_TEST(test_sigterm)
{
    env_t e;
    env_init(&e);
    char path[1100], cmd[4096];
    path_in(&e, "big.jsonl", path, sizeof path);
    tu_write_orders(path, 0, 300000, 10);
    char load[1200];
    snprintf(load, sizeof load, "orders=%s", path);
    /* Ctrl-C (SIGINT), then SIGTERM, while --until-idle catches up: status 1 and the input left */
    static const int sigs[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        unlink(e.err);
        pid_t r = run_bg(e.err, (const char *const[]){e.script, "--db", e.db, "--load", load, "--until-idle", NULL});
        ck_assert(file_has(e.err, "messages read", 60000)); /* processing has begun */
        /* progress at least once a second while there is work (1.5 s apart: slack for a loaded machine) */
        for (int k = 0, n0 = progress_lines(e.err); i == 0 && k < 2; k++) {
            tu_sleep_ms(1500);
            int n = progress_lines(e.err);
            if (wait_exit(r, 0) != -1)
                break; /* done already: the status check below says so */
            ck_assert_msg(n > n0, "no progress line in 1.5 s:\n%s", tu_read_file(e.err, NULL));
            n0 = n;
        }
        int64_t t0 = ss_now_ns();
        kill(r, sigs[i]);
        int st = wait_exit(r, 20000);
        char *err = tu_read_file(e.err, NULL);
        ck_assert_msg(st == 1, "%s: status %d:\n%s", strsignal(sigs[i]), st, err);
        ck_assert_msg(strstr(err, "interrupted with") && strstr(err, "not yet applied"), "%s", err);
        ck_assert_msg(ss_now_ns() - t0 < 10000000000LL, "%s took %.1f s", strsignal(sigs[i]),
                      (ss_now_ns() - t0) / 1e9);
        free(err);
    }
    /* the state is whole: the same run completes with exact counts */
    snprintf(cmd, sizeof cmd, "%s run %s --db %s --load %s --until-idle --quiet", BIN, e.script, e.db, load);
    ck_assert_int_eq(tu_sh(cmd, NULL), 0);
    ck_assert_int_eq(db_scalar(e.db, "SELECT n FROM view_cnt"), 300000);
    check_by_cust(e.db, 300000);
    /* keeping the views current: SIGTERM ends it with 0 */
    pid_t r = run_bg(e.err, (const char *const[]){e.script, "--db", e.db, NULL});
    tu_sleep_ms(1000);
    kill(r, SIGTERM);
    ck_assert_int_eq(wait_exit(r, 20000), 0);
    free(e.dir);
}
END_TEST

Suite *check_it_failures_suite(void)
{
    Suite *s = suite_create("it_failures");
    TCase *tc = tcase_create("failures");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_restart_with_broker_down);
    tcase_add_test(tc, test_broker_killed_idle_and_busy);
    tcase_add_test(tc, test_kafka_topic_reset);
    tcase_add_test(tc, test_disk_full_processing);
    tcase_add_test(tc, test_sigterm);
    suite_add_tcase(s, tc);
    return s;
}
