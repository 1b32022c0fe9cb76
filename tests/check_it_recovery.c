/*
 * check_it_recovery.c — crash recovery, end to end with real processes, on
 * both transports.
 *
 * Kafka: `semstream kafka` runs the broker; a loader run produces a stream of
 * keyed upserts and deletes; then `semstream run` maintains two views with
 * sinks (a filter and a GROUP BY) and is SIGKILLed at random points several
 * times, each time after it has committed some progress, and restarted.
 *
 * The durable log (the default): one `semstream run --load` both loads 200,000
 * JSON rows (inserts, and deletes of earlier rows) and maintains a COUNT(*)
 * view and a GROUP BY view with a sink; it is SIGKILLed at random moments,
 * during the load and during the processing, and started again with the same
 * command line each time.
 *
 * Finally an --until-idle run completes the work. Checked: each view table
 * equals the result computed here from the input (nothing lost, nothing
 * applied twice), the log holds every input line exactly once, and each sink
 * topic, de-duplicated by seq (a duplicate must repeat the same message), has
 * contiguous sequences and replays to the view.
 */
#include "ss_base.h"
#include "ss_json.h"
#include "ss_log.h"
#include "testutil.h"

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NKEYS = 300, NEVENTS = 12000, NGRP = 7, KILLS = 6 };

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts `semstream kafka ...`; returns its pid and the bootstrap address. */
static pid_t start_broker(char *addr, size_t n)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(SS_BINARY_DIR "/semstream", "semstream", "kafka", "--topic", "events:1", "--topic", "out_kept:1",
              "--topic", "out_grp:1", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    addr[0] = 0;
    if (!fgets(addr, (int)n, f))
        addr[0] = 0;
    addr[strcspn(addr, "\r\n")] = 0;
    /* keep the pipe open (the broker may print more); it closes when we exit */
    return pid;
}

/* Runs semstream with args (NULL-terminated) in the background. */
static pid_t spawn(const char *const *args)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execv(SS_BINARY_DIR "/semstream", (char *const *)args);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Committed offset of the events stream (0 if none yet). */
/* Input committed by the slowest of the views (each view reads through a source of its own). */
static int64_t committed(const char *db)
{
    sqlite3 *h = NULL;
    int64_t off = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT MIN(s) FROM (SELECT SUM(next_offset) AS s FROM ss_offsets"
                                  " WHERE stream LIKE 'events@%' GROUP BY stream)", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            off = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return off;
}

/* ---- the reference result ---- */

typedef struct ref {
    int present[NKEYS];
    int grp[NKEYS], v[NKEYS];
} ref_t;

static void write_events(const char *path, ref_t *r)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    memset(r, 0, sizeof *r);
    uint64_t x = 42;
    for (int i = 0; i < NEVENTS; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int id = (int)((x >> 33) % NKEYS);
        int del = (x >> 20) % 5 == 0;
        int v = (int)((x >> 40) % 100);
        if (del) {
            fprintf(f, "{\"op\":\"delete\",\"row\":{\"id\":%d}}\n", id);
            r->present[id] = 0;
        } else {
            fprintf(f, "{\"op\":\"insert\",\"row\":{\"id\":%d,\"grp\":%d,\"v\":%d}}\n", id, id % NGRP, v);
            r->present[id] = 1;
            r->grp[id] = id % NGRP;
            r->v[id] = v;
        }
    }
    fclose(f);
}

/* Expected rows of a view as sorted "a,b,c" lines. */
static char *expected_rows(const ref_t *r, int grp_view)
{
    ss_buf_t b = SS_BUF_INIT;
    if (!grp_view) {
        for (int id = 0; id < NKEYS; id++)
            if (r->present[id] && r->v[id] % 3 != 0)
                ss_buf_printf(&b, "%d,%d,%d\n", id, r->grp[id], r->v[id]);
    } else {
        for (int g = 0; g < NGRP; g++) {
            int n = 0, total = 0;
            for (int id = 0; id < NKEYS; id++)
                if (r->present[id] && r->grp[id] == g) {
                    n++;
                    total += r->v[id];
                }
            if (n)
                ss_buf_printf(&b, "%d,%d,%d\n", g, n, total);
        }
    }
    return ss_buf_take(&b);
}

/* Rows of view_<name> (each repeated _mult times) as "a,b,c" lines in key order. */
static char *view_rows(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(h));
    ss_buf_t b = SS_BUF_INIT;
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int m = 0; m < sqlite3_column_int(st, 3); m++)
            ss_buf_printf(&b, "%lld,%lld,%lld\n", (long long)sqlite3_column_int64(st, 0),
                          (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return ss_buf_take(&b);
}

/* ---- the sink topic ---- */

typedef struct msg {
    int64_t seq;
    char *text;
} msg_t;

static int msg_cmp(const void *a, const void *b)
{
    const msg_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void msg_add(msg_t **out, int *n, int *cap, const void *val, size_t len)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *out = realloc(*out, sizeof **out * (size_t)*cap);
    }
    (*out)[*n].text = ss_strndup(val, len);
    ss_json_doc_t *d = NULL;
    char err[256];
    ck_assert_int_eq(ss_json_parse(val, len, 0, &d, NULL, err, sizeof err), SS_OK);
    const ss_json_t *s = ss_json_get(ss_json_root(d), "seq");
    ck_assert_ptr_nonnull(s);
    (*out)[*n].seq = s->u.i;
    ss_json_free(d);
    (*n)++;
}

typedef struct log_read {
    msg_t **out;
    int n, cap;
} log_read_t;

static int log_msg(void *arg, const ss_log_msg_t *m)
{
    log_read_t *r = arg;
    msg_add(r->out, &r->n, &r->cap, m->val, m->vlen);
    return 0;
}

/* A topic of the log (every partition), as `semstream log cat` reads it. */
static int read_topic_log(const char *logpath, const char *topic, msg_t **out)
{
    char err[SS_ERRSZ];
    ss_log_t *l = NULL;
    ck_assert_msg(ss_log_open(logpath, &l, err, sizeof err) == SS_OK, "%s", err);
    ss_log_topic_t t;
    ck_assert_msg(ss_log_topic_get(l, topic, &t, err, sizeof err) == SS_OK, "no topic %s", topic);
    *out = NULL;
    log_read_t r = {out, 0, 0};
    for (int p = 0; p < t.partitions; p++)
        for (int64_t at = 0, k = 1; k > 0; at += k) {
            int got = 0;
            ck_assert_msg(ss_log_read(l, t.id, p, at, 4096, log_msg, &r, &got, err, sizeof err) == SS_OK, "%s", err);
            k = got;
        }
    ss_log_close(l);
    return r.n;
}

static int read_topic(const char *brokers, const char *topic, msg_t **out)
{
    if (brokers[0] == '/')
        return read_topic_log(brokers, topic, out);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "recovery-check", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0, cap = 0, eof = 0;
    *out = NULL;
    int64_t deadline = ss_now_ns() + 30LL * 1000000000LL;
    while (!eof && ss_now_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof = 1;
        else if (!m->err)
            msg_add(out, &n, &cap, m->payload, m->len);
        rd_kafka_message_destroy(m);
    }
    ck_assert_msg(eof, "could not read topic %s to its end", topic);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* A bag of rows: (row, weight) pairs appended, merged by sorting. */
typedef struct bag {
    int n, cap;
    char **rows;
    int *w;
} bag_t;

static void bag_add(bag_t *b, const char *row, int w)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->rows = realloc(b->rows, sizeof *b->rows * (size_t)b->cap);
        b->w = realloc(b->w, sizeof *b->w * (size_t)b->cap);
        ck_assert(b->rows && b->w);
    }
    b->rows[b->n] = ss_strdup(row);
    b->w[b->n++] = w;
}

static const bag_t *g_bag;

/* Numeric order of "a,b,c" rows (as the view queries sort them). */
static int bag_idx_cmp(const void *a, const void *b)
{
    const char *x = g_bag->rows[*(const int *)a], *y = g_bag->rows[*(const int *)b];
    long long xa, xb, xc, ya, yb, yc;
    sscanf(x, "%lld,%lld,%lld", &xa, &xb, &xc);
    sscanf(y, "%lld,%lld,%lld", &ya, &yb, &yc);
    if (xa != ya)
        return xa < ya ? -1 : 1;
    if (xb != yb)
        return xb < yb ? -1 : 1;
    return xc < yc ? -1 : xc > yc;
}

static void row_of(const ss_json_t *r, const char *const *cols, char *out, size_t n)
{
    long long v[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        const ss_json_t *c = ss_json_get(r, cols[i]);
        ck_assert_msg(c && c->t == SS_JSON_INT, "sink row lacks integer %s", cols[i]);
        v[i] = (long long)c->u.i;
    }
    snprintf(out, n, "%lld,%lld,%lld", v[0], v[1], v[2]);
}

/* De-duplicates by seq, checks contiguity, replays insert/update/delete into rows.
 * brokers: a bootstrap list, or the path of a log ("/..."). */
static char *replay_sink(const char *brokers, const char *topic, const char *const *cols)
{
    msg_t *m = NULL;
    int n = read_topic(brokers, topic, &m);
    qsort(m, (size_t)n, sizeof *m, msg_cmp);
    bag_t *bag = calloc(1, sizeof *bag);
    int64_t expect = 1;
    int dups = 0;
    for (int i = 0; i < n; i++) {
        if (i && m[i].seq == m[i - 1].seq) {
            ck_assert_msg(!strcmp(m[i].text, m[i - 1].text), "seq %lld repeated with different content:\n%s\n%s",
                          (long long)m[i].seq, m[i - 1].text, m[i].text);
            dups++;
            continue;
        }
        ck_assert_msg(m[i].seq == expect, "topic %s: seq %lld missing (next is %lld)", topic, (long long)expect,
                      (long long)m[i].seq);
        expect++;
        ss_json_doc_t *d = NULL;
        char err[256], row[128];
        ck_assert_int_eq(ss_json_parse(m[i].text, strlen(m[i].text), 0, &d, NULL, err, sizeof err), SS_OK);
        const ss_json_t *root = ss_json_root(d);
        const char *op = ss_json_str(ss_json_get(root, "op"));
        ck_assert_ptr_nonnull(op);
        if (!strcmp(op, "update")) {
            row_of(ss_json_get(root, "old"), cols, row, sizeof row);
            bag_add(bag, row, -1);
        }
        row_of(ss_json_get(root, "row"), cols, row, sizeof row);
        bag_add(bag, row, !strcmp(op, "delete") ? -1 : 1);
        ss_json_free(d);
    }
    fprintf(stderr, "sink %s: %d messages, %d duplicates dropped\n", topic, n, dups);
    /* sum the weights of equal rows (rows sorted numerically by their columns) */
    int *idx = malloc(sizeof *idx * (size_t)(bag->n + 1));
    for (int i = 0; i < bag->n; i++)
        idx[i] = i;
    g_bag = bag;
    qsort(idx, (size_t)bag->n, sizeof *idx, bag_idx_cmp);
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < bag->n;) {
        int j = i, w = 0;
        while (j < bag->n && !strcmp(bag->rows[idx[j]], bag->rows[idx[i]]))
            w += bag->w[idx[j++]];
        ck_assert_msg(w >= 0, "sink %s: row %s deleted more often than inserted", topic, bag->rows[idx[i]]);
        for (int k = 0; k < w; k++)
            ss_buf_printf(&b, "%s\n", bag->rows[idx[i]]);
        i = j;
    }
    free(idx);
    for (int i = 0; i < bag->n; i++)
        free(bag->rows[i]);
    for (int i = 0; i < n; i++)
        free(m[i].text);
    free(m);
    free(bag->rows);
    free(bag->w);
    free(bag);
    return ss_buf_take(&b);
}

static const char *SCRIPT =
    "CREATE STREAM IF NOT EXISTS events (id INT KEY, grp INT, v INT) WITH (topic = 'events');\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS kept WITH (sink_topic = 'out_kept') AS\n"
    "    SELECT id, grp, v FROM events WHERE v % 3 <> 0;\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS per_grp WITH (sink_topic = 'out_grp') AS\n"
    "    SELECT grp, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY grp;\n";

START_TEST(test_kill_and_restart)
{
    if (access(SS_BINARY_DIR "/semstream", X_OK) != 0) {
        fprintf(stderr, "skipped: no semstream binary\n");
        return;
    }
    char *dir = tu_tmpdir();
    char brokers[256], script[1024], loader[1024], events[1024], db[1024], ldb[1024];
    snprintf(script, sizeof script, "%s/views.sql", dir);
    snprintf(loader, sizeof loader, "%s/load.sql", dir);
    snprintf(events, sizeof events, "%s/events.jsonl", dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(ldb, sizeof ldb, "%s/loader.db", dir);
    FILE *f = fopen(script, "w");
    fputs(SCRIPT, f);
    fclose(f);
    f = fopen(loader, "w");
    fputs("CREATE STREAM events (id INT KEY, grp INT, v INT) WITH (topic = 'events');\n", f);
    fclose(f);
    ref_t ref;
    write_events(events, &ref);

    /* until every module is merged `semstream run` may not work yet: skip then */
    char probe_db[1100];
    snprintf(probe_db, sizeof probe_db, "%s/probe.db", dir);
    const char *pargs[] = {"semstream", "run", "/dev/null", "--db", probe_db, "--until-idle", "--quiet", NULL};
    if (wait_exit(spawn(pargs)) != 0) {
        fprintf(stderr, "skipped: `semstream run` does not work in this build\n");
        free(dir);
        return;
    }
    pid_t broker = start_broker(brokers, sizeof brokers);
    if (!brokers[0] || !strchr(brokers, ':')) {
        kill(broker, SIGTERM);
        wait_exit(broker);
        fprintf(stderr, "skipped: `semstream kafka` is not in this build\n");
        free(dir);
        return;
    }
    char load_arg[1200];
    snprintf(load_arg, sizeof load_arg, "events=%s", events);
    const char *largs[] = {"semstream", "run", loader, "--db", ldb, "--brokers", brokers, "--load", load_arg,
                           "--until-idle", "--quiet", NULL};
    ck_assert_int_eq(wait_exit(spawn(largs)), 0);

    const char *rargs[] = {"semstream", "run", script, "--db", db, "--brokers", brokers, "--batch-size", "8",
                           "--max-latency-ms", "20", "--quiet", NULL};
    srand((unsigned)time(NULL));
    int kills = 0;
    int64_t last = 0;
    for (int round = 0; round < KILLS; round++) {
        pid_t pid = spawn(rargs);
        /* kill once the committed offset passes a random target ahead of the last kill */
        int64_t target = last + 1 + rand() % (NEVENTS / (KILLS + 1));
        int64_t deadline = ss_now_ns() + 60LL * 1000000000LL, now_off = last;
        while (ss_now_ns() < deadline && (now_off = committed(db)) < target)
            sleep_ms(2);
        if (now_off >= NEVENTS) {
            kill(pid, SIGKILL);
            wait_exit(pid);
            break;
        }
        sleep_ms(rand() % 20);
        kill(pid, SIGKILL);
        ck_assert_int_eq(wait_exit(pid), 128 + SIGKILL);
        kills++;
        last = committed(db);
        fprintf(stderr, "kill %d at committed offset %lld\n", kills, (long long)last);
    }
    ck_assert_int_ge(kills, KILLS - 1);

    const char *fargs[] = {"semstream", "run", script, "--db", db, "--brokers", brokers, "--until-idle",
                           "--timeout-ms", "120000", "--quiet", NULL};
    ck_assert_int_eq(wait_exit(spawn(fargs)), 0);
    ck_assert_int_eq(committed(db), NEVENTS);

    char *want_kept = expected_rows(&ref, 0), *want_grp = expected_rows(&ref, 1);
    char *got_kept = view_rows(db, "SELECT id, grp, v, _mult FROM view_kept ORDER BY id");
    char *got_grp = view_rows(db, "SELECT grp, n, total, _mult FROM view_per_grp ORDER BY grp");
    ck_assert_msg(!strcmp(got_kept, want_kept), "view kept differs from the uninterrupted result");
    ck_assert_msg(!strcmp(got_grp, want_grp), "view per_grp differs:\n%s\nexpected:\n%s", got_grp, want_grp);

    const char *kcols[] = {"id", "grp", "v"}, *gcols[] = {"grp", "n", "total"};
    char *sink_kept = replay_sink(brokers, "out_kept", kcols);
    char *sink_grp = replay_sink(brokers, "out_grp", gcols);
    ck_assert_msg(!strcmp(sink_kept, got_kept), "sink out_kept does not replay to the view");
    ck_assert_msg(!strcmp(sink_grp, got_grp), "sink out_grp does not replay to the view:\n%s\nview:\n%s", sink_grp,
                  got_grp);

    kill(broker, SIGTERM);
    wait_exit(broker);
    free(want_kept);
    free(want_grp);
    free(got_kept);
    free(got_grp);
    free(sink_kept);
    free(sink_grp);
    free(dir);
}
END_TEST

/* ---- the durable log: kill -9 during the load and the processing ---- */

enum { LOG_ROWS = 200000, LOG_KILLS = 6 };

static const char *LOG_SCRIPT =
    "CREATE STREAM IF NOT EXISTS events (id INT KEY, grp INT, v INT) WITH (partitions = 4);\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS cnt AS SELECT COUNT(*) AS n FROM events;\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS per_grp WITH (sink_topic = 'out_grp') AS\n"
    "    SELECT grp, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY grp;\n";

/* LOG_ROWS lines: inserts of id i, except every tenth line, which deletes the id inserted
 * five lines before (on whichever partition its key hashes to). Returns the expected views. */
static void write_log_events(const char *path, char **want_cnt, char **want_grp)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    char *present = calloc(LOG_ROWS, 1);
    for (int i = 0; i < LOG_ROWS; i++) {
        if (i % 10 == 9) {
            fprintf(f, "{\"op\":\"delete\",\"id\":%d}\n", i - 5);
            present[i - 5] = 0;
        } else {
            fprintf(f, "{\"id\":%d,\"grp\":%d,\"v\":%d}\n", i, i % NGRP, i % 100);
            present[i] = 1;
        }
    }
    fclose(f);
    long long n = 0, gn[NGRP] = {0}, gt[NGRP] = {0};
    for (int i = 0; i < LOG_ROWS; i++)
        if (present[i]) {
            n++;
            gn[i % NGRP]++;
            gt[i % NGRP] += i % 100;
        }
    free(present);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_printf(&b, "%lld,0,0\n", n);
    *want_cnt = ss_buf_take(&b);
    for (int g = 0; g < NGRP; g++)
        ss_buf_printf(&b, "%d,%lld,%lld\n", g, gn[g], gt[g]);
    *want_grp = ss_buf_take(&b);
}

/* Messages in the log's topic (every partition). */
static int64_t log_count(const char *logpath, const char *topic)
{
    char err[SS_ERRSZ];
    ss_log_t *l = NULL;
    ck_assert_msg(ss_log_open(logpath, &l, err, sizeof err) == SS_OK, "%s", err);
    ss_log_topic_t t;
    int64_t lo[16], hi[16], n = 0;
    if (ss_log_topic_get(l, topic, &t, err, sizeof err) == SS_OK && t.partitions <= 16 &&
        ss_log_watermarks(l, &t, lo, hi, err, sizeof err) == SS_OK)
        for (int p = 0; p < t.partitions; p++)
            n += hi[p] - lo[p];
    ss_log_close(l);
    return n;
}

START_TEST(test_kill_during_load_log)
{
    if (access(SS_BINARY_DIR "/semstream", X_OK) != 0) {
        fprintf(stderr, "skipped: no semstream binary\n");
        return;
    }
    char *dir = tu_tmpdir();
    char script[1024], events[1024], db[1024], logp[1100], load_arg[1200];
    snprintf(script, sizeof script, "%s/views.sql", dir);
    snprintf(events, sizeof events, "%s/events.jsonl", dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(logp, sizeof logp, "%s.log", db);
    snprintf(load_arg, sizeof load_arg, "events=%s", events);
    FILE *f = fopen(script, "w");
    fputs(LOG_SCRIPT, f);
    fclose(f);
    char *want_cnt, *want_grp;
    write_log_events(events, &want_cnt, &want_grp);

    /* the same command line every time: the load resumes, the views resume */
    const char *rargs[] = {"semstream", "run", script, "--db", db, "--load", load_arg, "--quiet", NULL};
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int k = 0; k < LOG_KILLS; k++) {
        pid_t pid = spawn(rargs);
        sleep_ms(50 + rand() % (k < 2 ? 600 : 2500)); /* the first kills land in the load */
        kill(pid, SIGKILL);
        ck_assert_int_eq(wait_exit(pid), 128 + SIGKILL);
        fprintf(stderr, "log kill %d: %lld lines in the log, %lld consumed\n", k + 1,
                (long long)log_count(logp, "events"), (long long)committed(db));
    }
    const char *fargs[] = {"semstream", "run", script, "--db", db, "--load", load_arg, "--until-idle",
                           "--timeout-ms", "300000", "--quiet", NULL};
    ck_assert_int_eq(wait_exit(spawn(fargs)), 0);
    ck_assert_int_eq(log_count(logp, "events"), LOG_ROWS); /* every line appended once */
    ck_assert_int_eq(committed(db), LOG_ROWS);

    char *got_cnt = view_rows(db, "SELECT n, 0, 0, _mult FROM view_cnt");
    char *got_grp = view_rows(db, "SELECT grp, n, total, _mult FROM view_per_grp ORDER BY grp");
    ck_assert_msg(!strcmp(got_cnt, want_cnt), "COUNT(*) %s, expected %s", got_cnt, want_cnt);
    ck_assert_msg(!strcmp(got_grp, want_grp), "view per_grp differs:\n%s\nexpected:\n%s", got_grp, want_grp);
    const char *gcols[] = {"grp", "n", "total"};
    char *sink_grp = replay_sink(logp, "out_grp", gcols);
    ck_assert_msg(!strcmp(sink_grp, got_grp), "sink out_grp does not replay to the view:\n%s\nview:\n%s", sink_grp,
                  got_grp);
    free(want_cnt);
    free(want_grp);
    free(got_cnt);
    free(got_grp);
    free(sink_grp);
    free(dir);
}
END_TEST

Suite *check_it_recovery_suite(void)
{
    Suite *s = suite_create("it_recovery");
    TCase *tc = tcase_create("recovery");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_kill_and_restart);
    tcase_add_test(tc, test_kill_during_load_log);
    suite_add_tcase(s, tc);
    return s;
}
