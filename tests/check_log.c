/*
 * check_log.c — unit tests of the durable embedded log (connectors/log.c,
 * log_client.c, loader.c) and of retention parsing: appends and reads with
 * keys, tombstones and empty values; dense offsets; partitioning by key
 * (Kafka's murmur2, checked against the Java clients' test vectors); appends
 * from several processes at once; retention by rows and by age; reopening;
 * refusing a file that is not a log; a source woken by an append of its own
 * process; and loads that resume where an earlier load stopped.
 */
#include "ss_connect.h"
#include "ss_log.h"
#include "ss_retention.h"
#include "testutil.h"

#include <check.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char err[SS_ERRSZ];

static ss_log_t *open_log(char **dir, char *path, size_t n)
{
    *dir = tu_tmpdir();
    snprintf(path, n, "%s/t.log", *dir);
    ss_log_t *l = NULL;
    ck_assert_msg(ss_log_open(path, &l, err, sizeof err) == SS_OK, "%s", err);
    return l;
}

typedef struct collected {
    int n;
    int64_t off[64];
    char *key[64], *val[64];
    int has_key[64], has_val[64];
} collected_t;

static int collect(void *arg, const ss_log_msg_t *m)
{
    collected_t *c = arg;
    c->off[c->n] = m->offset;
    c->has_key[c->n] = m->key != NULL;
    c->has_val[c->n] = m->val != NULL;
    c->key[c->n] = m->key ? strndup(m->key, m->klen) : NULL;
    c->val[c->n] = m->val ? strndup(m->val, m->vlen) : NULL;
    c->n++;
    return 0;
}

static void collected_free(collected_t *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->key[i]);
        free(c->val[i]);
    }
    c->n = 0;
}

START_TEST(test_append_read)
{
    char *dir, path[1024];
    ss_log_t *l = open_log(&dir, path, sizeof path);
    const ss_log_rec_t recs[] = {
        {"t", -1, "k1", 2, "v1", 2},
        {"t", -1, NULL, 0, "no key", 6},
        {"t", -1, "k1", 2, NULL, 0}, /* tombstone */
        {"t", -1, "", 0, "", 0},     /* empty key, empty value: not NULL */
    };
    ss_offset_t where[4];
    ck_assert_msg(ss_log_append(l, recs, 4, where, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < 4; i++) /* a topic created by its first append has one partition */
        ck_assert(where[i].partition == 0 && where[i].offset == i);
    ss_log_topic_t t;
    ck_assert_int_eq(ss_log_topic_get(l, "t", &t, err, sizeof err), SS_OK);
    ck_assert_int_eq(t.partitions, 1);
    ck_assert_int_eq(ss_log_topic_get(l, "nope", &t, err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_int_eq(ss_log_topic_get(l, "t", &t, err, sizeof err), SS_OK);
    collected_t c = {0};
    int n = 0;
    ck_assert_int_eq(ss_log_read(l, t.id, 0, 1, 10, collect, &c, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 3);
    ck_assert(c.off[0] == 1 && !c.has_key[0] && !strcmp(c.val[0], "no key"));
    ck_assert(c.off[1] == 2 && !strcmp(c.key[1], "k1") && !c.has_val[1]);
    ck_assert(c.off[2] == 3 && c.has_key[2] && !strcmp(c.key[2], "") && c.has_val[2] && !strcmp(c.val[2], ""));
    collected_free(&c);
    /* a second append continues the offsets */
    ck_assert_int_eq(ss_log_append(l, recs, 1, where, err, sizeof err), SS_OK);
    ck_assert_int_eq(where[0].offset, 4);
    int64_t lo, hi;
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    ck_assert(lo == 0 && hi == 5);
    /* a partition the topic lacks is refused, and nothing of the batch is appended */
    ss_log_rec_t bad[2] = {{"t", -1, NULL, 0, "x", 1}, {"t", 3, NULL, 0, "y", 1}};
    ck_assert_int_eq(ss_log_append(l, bad, 2, NULL, err, sizeof err), SS_ERR_INVALID);
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    ck_assert_int_eq(hi, 5);
    ss_log_close(l);
    /* reopened: the same topic, the same messages */
    ck_assert_int_eq(ss_log_open(path, &l, err, sizeof err), SS_OK);
    ss_log_topic_t t2;
    ck_assert_int_eq(ss_log_topic_get(l, "t", &t2, err, sizeof err), SS_OK);
    ck_assert_int_eq(t2.id, t.id);
    ck_assert_int_eq(ss_log_read(l, t.id, 0, 0, 100, collect, &c, &n, err, sizeof err), SS_OK);
    ck_assert_int_eq(n, 5);
    collected_free(&c);
    ss_log_close(l);
    free(dir);
}
END_TEST

/* Kafka's Java clients: Utils.murmur2 test vectors (UtilsTest.testMurmur2). */
START_TEST(test_murmur2)
{
    static const struct { const char *key; int32_t hash; } v[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    const int n = 2147483647; /* partition = positive hash mod n = the positive hash itself */
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int want = (int)((uint32_t)v[i].hash & 0x7fffffffu) % n;
        ck_assert_int_eq(ss_log_partition_for(v[i].key, strlen(v[i].key), n), want);
    }
    ck_assert_int_eq(ss_log_partition_for("anything", 8, 1), 0);
}
END_TEST

/* Several processes append to one topic at once: every message lands once, offsets stay dense,
 * and each writer's messages keep their order. */
START_TEST(test_multiprocess)
{
    char *dir, path[1024];
    ss_log_t *l = open_log(&dir, path, sizeof path);
    ss_topic_opts_t o = {2, 0, 0, 0};
    ck_assert_int_eq(ss_log_topic_create(l, "mp", &o, NULL, NULL, err, sizeof err), SS_OK);
    enum { NPROC = 3, BATCHES = 40, PER = 25 };
    pid_t pids[NPROC];
    for (int w = 0; w < NPROC; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w] == 0) {
            ss_log_t *c = NULL;
            if (ss_log_open(path, &c, err, sizeof err))
                _exit(1);
            char key[16], vals[PER][32];
            snprintf(key, sizeof key, "w%d", w);
            for (int b = 0; b < BATCHES; b++) {
                ss_log_rec_t r[PER];
                for (int i = 0; i < PER; i++) {
                    snprintf(vals[i], sizeof vals[i], "%d", b * PER + i);
                    r[i] = (ss_log_rec_t){"mp", -1, key, strlen(key), vals[i], strlen(vals[i])};
                }
                if (ss_log_append(c, r, PER, NULL, err, sizeof err)) {
                    fprintf(stderr, "writer %d: %s\n", w, err);
                    _exit(1);
                }
            }
            ss_log_close(c);
            _exit(0);
        }
    }
    for (int w = 0; w < NPROC; w++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[w], &st, 0), pids[w]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d failed", w);
    }
    ss_log_topic_t t;
    ck_assert_int_eq(ss_log_topic_get(l, "mp", &t, err, sizeof err), SS_OK);
    int next_seq[NPROC] = {0}, total = 0;
    for (int p = 0; p < 2; p++) {
        int64_t at = 0;
        for (;;) {
            collected_t c = {0};
            int n = 0;
            ck_assert_int_eq(ss_log_read(l, t.id, p, at, 64, collect, &c, &n, err, sizeof err), SS_OK);
            for (int i = 0; i < n; i++) {
                ck_assert_int_eq(c.off[i], at + i); /* dense */
                int w = c.key[i][1] - '0';
                ck_assert_int_eq(ss_log_partition_for(c.key[i], 2, 2), p);
                ck_assert_int_eq(atoi(c.val[i]), next_seq[w]++); /* in order */
            }
            collected_free(&c);
            at += n;
            total += n;
            if (n < 64)
                break;
        }
    }
    ck_assert_int_eq(total, NPROC * BATCHES * PER);
    for (int w = 0; w < NPROC; w++)
        ck_assert_int_eq(next_seq[w], BATCHES * PER);
    ss_log_close(l);
    free(dir);
}
END_TEST

static void append_n(ss_log_t *l, const char *topic, int n)
{
    for (int i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        ss_log_rec_t r = {topic, 0, NULL, 0, v, strlen(v)};
        ck_assert_msg(ss_log_append(l, &r, 1, NULL, err, sizeof err) == SS_OK, "%s", err);
    }
}

START_TEST(test_retention)
{
    char *dir, path[1024];
    ss_log_t *l = open_log(&dir, path, sizeof path);
    /* rows: each append keeps the newest 10 */
    ss_topic_opts_t o = {1, 1, 0, 10};
    int created = 0;
    ss_log_topic_t t;
    ck_assert_int_eq(ss_log_topic_create(l, "r", &o, &created, &t, err, sizeof err), SS_OK);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(t.retention_rows, 10);
    append_n(l, "r", 25);
    int64_t lo, hi;
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    ck_assert(lo == 15 && hi == 25);
    collected_t c = {0};
    int n = 0;
    ck_assert_int_eq(ss_log_read(l, t.id, 0, 0, 64, collect, &c, &n, err, sizeof err), SS_OK);
    ck_assert(n == 10 && c.off[0] == 15 && !strcmp(c.val[0], "15"));
    collected_free(&c);
    /* without retention nothing is deleted; setting none again on an existing topic clears it */
    ss_topic_opts_t none = {1, 1, 0, 0};
    ck_assert_int_eq(ss_log_topic_create(l, "r", &none, &created, &t, err, sizeof err), SS_OK);
    ck_assert(created == 0 && t.retention_rows == 0);
    append_n(l, "r", 5);
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    ck_assert(lo == 15 && hi == 30);
    /* age: everything older than 1 ms goes at the next retention pass; offsets are never reused */
    ss_topic_opts_t age = {1, 1, 1, 0};
    ck_assert_int_eq(ss_log_topic_create(l, "r", &age, NULL, &t, err, sizeof err), SS_OK);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    int64_t deleted = -1;
    ck_assert_int_eq(ss_log_retain(l, &deleted, err, sizeof err), SS_OK);
    ck_assert_int_eq(deleted, 15);
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    ck_assert(lo == 30 && hi == 30);
    append_n(l, "r", 1);
    ck_assert_int_eq(ss_log_watermarks(l, &t, &lo, &hi, err, sizeof err), SS_OK);
    /* the new row takes offset 30; on a loaded machine it may itself be older than 1 ms
     * when a retention pass runs, so lo is 30 or 31, but hi is 31 either way */
    ck_assert_msg(hi == 31 && (lo == 30 || lo == 31), "lo %lld hi %lld", (long long)lo, (long long)hi);
    ss_log_close(l);
    free(dir);
}
END_TEST

START_TEST(test_retention_parse)
{
    int64_t ms, rows;
    ck_assert_int_eq(ss_retention_parse("7 days", &ms, &rows, err, sizeof err), SS_OK);
    ck_assert(ms == 7 * 86400000LL && rows == 0);
    ck_assert_int_eq(ss_retention_parse(" 10000 rows ", &ms, &rows, err, sizeof err), SS_OK);
    ck_assert(ms == 0 && rows == 10000);
    ck_assert_int_eq(ss_retention_parse("12h, 500 rows", &ms, &rows, err, sizeof err), SS_OK);
    ck_assert(ms == 12 * 3600000LL && rows == 500);
    ck_assert_int_eq(ss_retention_parse("forever", &ms, &rows, err, sizeof err), SS_OK);
    ck_assert(ms == 0 && rows == 0);
    static const char *bad[][2] = {
        {"7", "expected a unit"}, {"soon", "positive number"}, {"3 fortnights", "unknown unit 'fortnights'"},
        {"1.5 rows", "whole number"}, {"-1 day", "positive number"}, {"1 day, 2 h", "two age limits"},
        {"", "empty retention"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ss_retention_parse(bad[i][0], &ms, &rows, err, sizeof err), SS_ERR_INVALID);
        ck_assert_msg(strstr(err, bad[i][1]), "'%s': %s", bad[i][0], err);
    }
}
END_TEST

START_TEST(test_not_a_log)
{
    char *dir = tu_tmpdir(), path[1024];
    snprintf(path, sizeof path, "%s/other.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE x(a)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ss_log_t *l = NULL;
    ck_assert_int_eq(ss_log_open(path, &l, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "not a semstream log"), "%s", err);
    free(dir);
}
END_TEST

/* A source waiting in poll wakes for an append of its own process at once. */
typedef struct appender {
    ss_transport_t *t;
} appender_t;

static void *append_later(void *arg)
{
    appender_t *a = arg;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    ss_producer_t *p = NULL;
    char e[SS_ERRSZ];
    if (ss_producer_new(a->t, &p, e, sizeof e) == SS_OK) {
        ss_producer_send(p, "w", "{\"id\":1}", 8, "{\"id\":1}", 8, e, sizeof e);
        ss_producer_flush(p, 0, e, sizeof e);
        ss_producer_destroy(p);
    }
    return NULL;
}

START_TEST(test_source_wakes)
{
    char *dir = tu_tmpdir(), path[1024];
    snprintf(path, sizeof path, "%s/t.log", dir);
    ss_transport_t *t = NULL;
    ck_assert_int_eq(ss_transport_log(path, &t, err, sizeof err), SS_OK);
    ss_schema_t *sch = ss_schema_new(1);
    ss_schema_set(sch, 0, "id", SS_COL_INT, 1);
    ss_source_opts_t o = {t, "w", "w", SS_FMT_JSON, sch, NULL, 0, NULL, 0};
    ss_source_t *s = NULL;
    ck_assert_msg(ss_source_open(&o, NULL, 0, &s, err, sizeof err) == SS_OK, "%s", err);
    appender_t a = {t};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, append_later, &a), 0);
    ss_zset_t z;
    ss_zset_init(&z);
    int got = 0;
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(ss_source_poll(s, 10, 5000, &z, &got, err, sizeof err), SS_OK);
    int64_t ms = (ss_now_ns() - t0) / 1000000;
    pthread_join(th, NULL);
    ck_assert_int_eq(got, 1);
    ck_assert_msg(ms < 2500, "woke after %lld ms", (long long)ms);
    int64_t lag = -1;
    ck_assert_int_eq(ss_source_lag(s, &lag, err, sizeof err), SS_OK);
    ck_assert_int_eq(lag, 0);
    ss_zset_destroy(&z);
    ss_source_close(s);
    ss_schema_free(sch);
    ss_transport_close(t);
    free(dir);
}
END_TEST

static void write_lines(const char *path, const char *mode, int from, int to)
{
    FILE *f = fopen(path, mode);
    ck_assert_ptr_nonnull(f);
    for (int i = from; i < to; i++)
        fprintf(f, "{\"id\":%d,\"v\":%d}\n", i, i * 10);
    fclose(f);
}

static int64_t topic_end(const char *logpath, const char *topic)
{
    ss_log_t *l = NULL;
    ck_assert_int_eq(ss_log_open(logpath, &l, err, sizeof err), SS_OK);
    ss_log_topic_t t;
    ck_assert_int_eq(ss_log_topic_get(l, topic, &t, err, sizeof err), SS_OK);
    int64_t lo[8], hi[8], sum = 0;
    ck_assert_int_eq(ss_log_watermarks(l, &t, lo, hi, err, sizeof err), SS_OK);
    for (int p = 0; p < t.partitions; p++)
        sum += hi[p] - lo[p];
    ss_log_close(l);
    return sum;
}

START_TEST(test_load_resumes)
{
    char *dir = tu_tmpdir(), path[1024], file[1024];
    snprintf(path, sizeof path, "%s/t.log", dir);
    snprintf(file, sizeof file, "%s/in.jsonl", dir);
    ss_transport_t *t = NULL;
    ck_assert_int_eq(ss_transport_log(path, &t, err, sizeof err), SS_OK);
    ss_topic_opts_t to = {3, 0, 0, 0};
    ck_assert_int_eq(ss_transport_create_topic(t, "in", &to, NULL, NULL, err, sizeof err), SS_OK);
    ss_schema_t *sch = ss_schema_new(2);
    ss_schema_set(sch, 0, "id", SS_COL_INT, 1);
    ss_schema_set(sch, 1, "v", SS_COL_INT, 0);
    write_lines(file, "w", 0, 100);
    FILE *f = fopen(file, "a");
    fputs("\n   \nnot json\n", f); /* blank lines are skipped; a bad line goes unkeyed */
    fclose(f);
    ss_load_opts_t o = {"in", "in", file, SS_FMT_JSON, sch, NULL, NULL, NULL};
    ss_load_result_t r;
    ck_assert_msg(ss_load_jsonl(t, &o, &r, err, sizeof err) == SS_OK, "%s", err);
    ck_assert(r.lines == 101 && r.before == 0 && r.unkeyed == 1);
    ck_assert_int_eq(topic_end(path, "in"), 101);
    /* the same file again: nothing new */
    ck_assert_int_eq(ss_load_jsonl(t, &o, &r, err, sizeof err), SS_OK);
    ck_assert(r.lines == 0 && r.before == 101);
    ck_assert_int_eq(topic_end(path, "in"), 101);
    /* grown: only the new lines */
    write_lines(file, "a", 100, 130);
    ck_assert_int_eq(ss_load_jsonl(t, &o, &r, err, sizeof err), SS_OK);
    ck_assert(r.lines == 30 && r.before == 101);
    ck_assert_int_eq(topic_end(path, "in"), 131);
    /* a different file at the same path (rewritten): loaded from the start */
    write_lines(file, "w", 500, 510);
    ck_assert_int_eq(ss_load_jsonl(t, &o, &r, err, sizeof err), SS_OK);
    ck_assert(r.lines == 10 && r.before == 0);
    ck_assert_int_eq(topic_end(path, "in"), 141);
    /* keyed: each id on the partition of its key */
    ss_log_t *l = NULL;
    ck_assert_int_eq(ss_log_open(path, &l, err, sizeof err), SS_OK);
    ss_log_topic_t lt;
    ck_assert_int_eq(ss_log_topic_get(l, "in", &lt, err, sizeof err), SS_OK);
    for (int p = 0; p < 3; p++) {
        collected_t c = {0};
        int n = 0;
        ck_assert_int_eq(ss_log_read(l, lt.id, p, 0, 64, collect, &c, &n, err, sizeof err), SS_OK);
        for (int i = 0; i < n; i++)
            if (c.key[i])
                ck_assert_int_eq(ss_log_partition_for(c.key[i], strlen(c.key[i]), 3), p);
        collected_free(&c);
    }
    ss_log_close(l);
    ss_schema_free(sch);
    ss_transport_close(t);
    free(dir);
}
END_TEST

Suite *check_log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_append_read);
    tcase_add_test(tc, test_murmur2);
    tcase_add_test(tc, test_multiprocess);
    tcase_add_test(tc, test_retention);
    tcase_add_test(tc, test_retention_parse);
    tcase_add_test(tc, test_not_a_log);
    tcase_add_test(tc, test_source_wakes);
    tcase_add_test(tc, test_load_resumes);
    suite_add_tcase(s, tc);
    return s;
}
