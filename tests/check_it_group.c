/*
 * check_it_group.c — several `semstream run --group` processes in one Kafka consumer group
 * (docs/ARCHITECTURE.md §6) against `semstream kafka` (the mock cluster) with an 8-partition
 * input: instances join, leave and are killed with SIGKILL while input arrives, and the sink
 * topic, read with isolation.level=read_committed and folded by key, must equal the view
 * computed here from the input (zero missing, nothing stale). A sink message that does not apply
 * cleanly to the fold (an insert of a present key, an update or delete of another row than the
 * current one) is a duplicate: counted and reported, not failed, since the sinks are at-least-once
 * (§6.5: a batch published and then refused by the group, or killed before its commit, is
 * published again over the same range). Phases: two instances, a third joining, one leaving with
 * SIGTERM and coming back, then SS_TEST_GROUP_KILLS (default 6; scripts/group_kills.sh runs 20)
 * rounds in which input arrives, keys change several times and change back (what left keys stale
 * before the batch ranges were committed as intents), one instance is killed with SIGKILL at a
 * random moment and restarted, and every fourth round stays away for a round (removed, then
 * added). How often the group refused a commit and how often an instance found a published,
 * uncommitted range at assignment is taken from the instances' logs and printed (the second is
 * rare here: test_group_intent makes it happen). Also: views that need an exchange are refused under --group with
 * a clear error, and --group needs --brokers.
 */
#include "ss_connect.h"
#include "ss_json.h"
#include "testutil.h"

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS 1200
#define NINST 3

static char g_bin[1024];

static const char *SCRIPT =
    "CREATE STREAM IF NOT EXISTS orders (id INT KEY, cust TEXT, amount INT) WITH (topic = 'orders');\n"
    "CREATE VIEW IF NOT EXISTS big WITH (sink_topic = 'big') AS\n"
    "  SELECT id, cust, amount FROM orders WHERE amount >= 50;\n";

/* ---- processes ---- */

static pid_t start_kafka(char *addr, size_t addrsz, FILE **outf, const char *orders)
{
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(g_bin, "semstream", "kafka", "--topic", orders, "--topic", "big:1", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    *outf = fdopen(out[0], "r");
    ck_assert_ptr_nonnull(fgets(addr, (int)addrsz, *outf));
    addr[strcspn(addr, "\n")] = 0;
    return pid;
}

static pid_t start_inst(const char *dir, const char *addr, int k)
{
    char db[512], logf[512], script[512];
    snprintf(db, sizeof db, "%s/i%d.db", dir, k);
    snprintf(logf, sizeof logf, "%s/i%d.log", dir, k);
    snprintf(script, sizeof script, "%s/g.sql", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(logf, "a", stderr);
        (void)f;
        dup2(2, 1);
        execl(g_bin, "semstream", "run", script, "--brokers", addr, "--group", "g", "--db", db, "--batch-size", "100",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_pid(pid_t pid, int sig)
{
    kill(pid, sig);
    int st;
    waitpid(pid, &st, 0);
}

/* ---- input, and the view it should give ---- */

static int g_amount[NKEYS]; /* current input rows: amount, -1 = deleted */
static char g_inhist[NKEYS][256]; /* the last amounts produced per id, for failure messages */

static void produce(ss_producer_t *p, int id, int amount)
{
    char key[64], val[128], err[256];
    snprintf(key, sizeof key, "{\"id\":%d}", id);
    if (amount < 0)
        snprintf(val, sizeof val, "{\"op\":\"delete\",\"id\":%d}", id);
    else
        snprintf(val, sizeof val, "{\"id\":%d,\"cust\":\"c%d\",\"amount\":%d}", id, id % 7, amount);
    ck_assert_msg(ss_producer_send(p, "orders", key, strlen(key), val, strlen(val), err, sizeof err) == SS_OK, "%s",
                  err);
    g_amount[id] = amount;
    size_t hl = strlen(g_inhist[id]);
    if (hl > 200)
        memmove(g_inhist[id], g_inhist[id] + hl - 150, 151), hl = strlen(g_inhist[id]);
    snprintf(g_inhist[id] + hl, sizeof g_inhist[id] - hl, " %d", amount);
}

static void flush(ss_producer_t *p)
{
    char err[256];
    ck_assert_msg(ss_producer_flush(p, 30000, err, sizeof err) == SS_OK, "%s", err);
}

/* ---- the sink, folded by key ---- */

typedef struct fold {
    rd_kafka_t *rk;
    char *row[NKEYS]; /* current row JSON per id */
    char hist[NKEYS][512]; /* the last messages per id, for failure messages */
    long messages, unclean;
} fold_t;

static void fold_open(fold_t *f, const char *addr)
{
    memset(f, 0, sizeof *f);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char es[256];
    ck_assert_int_eq(rd_kafka_conf_set(c, "bootstrap.servers", addr, es, sizeof es), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(c, "group.id", "check_it_group_reader", es, sizeof es);
    rd_kafka_conf_set(c, "isolation.level", "read_committed", es, sizeof es);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", es, sizeof es);
    rd_kafka_conf_set(c, "broker.address.family", "v4", es, sizeof es);
    f->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
    ck_assert_ptr_nonnull(f->rk);
    rd_kafka_poll_set_consumer(f->rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "big", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(f->rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
}

static char *jdup(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

static int same(const char *cur, const char *s, size_t n) { return cur && strlen(cur) == n && !memcmp(cur, s, n); }

static void fold_apply(fold_t *f, const char *v, size_t n)
{
    const char *op, *row, *old = NULL, *id;
    size_t opn, rown, oldn = 0, idn;
    ck_assert_int_eq(ss_jtext_get_key(v, n, "op", 2, &op, &opn), 1);
    ck_assert_int_eq(ss_jtext_get_key(v, n, "row", 3, &row, &rown), 1);
    ss_jtext_get_key(v, n, "old", 3, &old, &oldn);
    ck_assert_int_eq(ss_jtext_get_key(row, rown, "id", 2, &id, &idn), 1);
    int k = atoi(id);
    ck_assert(k >= 0 && k < NKEYS);
    f->messages++;
    size_t hl = strlen(f->hist[k]);
    if (hl > 400)
        memmove(f->hist[k], f->hist[k] + hl - 300, 301), hl = strlen(f->hist[k]);
    snprintf(f->hist[k] + hl, sizeof f->hist[k] - hl, " | %.*s %.*s", (int)opn, op, (int)rown, row);
    if (opn == 8 && !memcmp(op, "\"insert\"", 8)) {
        f->unclean += f->row[k] != NULL;
        free(f->row[k]);
        f->row[k] = jdup(row, rown);
    } else if (opn == 8 && !memcmp(op, "\"update\"", 8)) {
        f->unclean += !same(f->row[k], old, oldn);
        free(f->row[k]);
        f->row[k] = jdup(row, rown);
    } else {
        f->unclean += !same(f->row[k], row, rown);
        free(f->row[k]);
        f->row[k] = NULL;
    }
}

static void fold_drain(fold_t *f, int ms)
{
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f->rk, ms);
        if (!m)
            return;
        if (!m->err && m->payload)
            fold_apply(f, m->payload, m->len);
        rd_kafka_message_destroy(m);
        ms = 50;
    }
}

/* Keys whose folded row differs from the view of the input. */
static int fold_diff(const fold_t *f, int report)
{
    int bad = 0;
    for (int k = 0; k < NKEYS; k++) {
        char want[128] = "";
        if (g_amount[k] >= 50)
            snprintf(want, sizeof want, "{\"id\":%d,\"cust\":\"c%d\",\"amount\":%d}", k, k % 7, g_amount[k]);
        int ok = want[0] ? f->row[k] && !strcmp(f->row[k], want) : f->row[k] == NULL;
        if (!ok && report && bad < 5)
            fprintf(stderr, "check_it_group: id %d: sink has %s, want %s\n  input amounts:%s\n  sink:%s\n", k,
                    f->row[k] ? f->row[k] : "nothing", want[0] ? want : "nothing", g_inhist[k], f->hist[k]);
        bad += !ok;
    }
    return bad;
}

static void wait_equal(fold_t *f, int timeout_s, const char *what)
{
    for (int t = 0; t < timeout_s * 2; t++) {
        fold_drain(f, 500);
        if (fold_diff(f, 0) == 0)
            return;
    }
    int bad = fold_diff(f, 1);
    ck_abort_msg("%s: %d key(s) of the sink differ from the view of the input after %d s", what, bad, timeout_s);
}

static void fold_close(fold_t *f)
{
    rd_kafka_consumer_close(f->rk);
    rd_kafka_destroy(f->rk);
    for (int k = 0; k < NKEYS; k++)
        free(f->row[k]);
}

static char *setup_dir(void)
{
    snprintf(g_bin, sizeof g_bin, "%s/semstream", SS_BINARY_DIR);
    ck_assert_msg(access(g_bin, X_OK) == 0, "%s not built", g_bin);
    char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/g.sql", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(SCRIPT, f);
    fclose(f);
    return dir;
}

/* One round's input: random changes, and keys changed twice and then back to their row (a key
 * whose net change over a batch is nothing: a range published and then processed again with other
 * ends left such a key as the first attempt published it, docs/ARCHITECTURE.md §6.5). */
static void produce_round(ss_producer_t *p)
{
    for (int n = 0; n < 400; n++) {
        int k = rand() % NKEYS;
        produce(p, k, rand() % 7 == 0 ? -1 : rand() % 100);
    }
    for (int n = 0; n < 200; n++) {
        int k = rand() % NKEYS, was = g_amount[k];
        produce(p, k, 50 + rand() % 50);
        produce(p, k, rand() % 3 ? rand() % 100 : -1);
        produce(p, k, was);
    }
}

/* Lines of the instances' logs that contain what. */
static int count_in_logs(const char *dir, const char *what)
{
    int n = 0;
    char path[512], line[4096];
    for (int k = 0; k < NINST; k++) {
        snprintf(path, sizeof path, "%s/i%d.log", dir, k);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            n += strstr(line, what) != NULL;
        if (f)
            fclose(f);
    }
    return n;
}

/* SIGKILL at random moments, restarting the instance each time; every fourth round the killed
 * instance stays away for a round (removed) and then comes back (added). */
static void kill_rounds(fold_t *f, ss_producer_t *p, pid_t *inst, const char *dir, const char *addr, int kills)
{
    long before = f->unclean;
    srand(14);
    int away = -1;
    for (int round = 0; round < kills; round++) {
        produce_round(p);
        flush(p);
        usleep((useconds_t)(rand() % 1000000)); /* mostly while the batches are processed */
        if (away >= 0) { /* added back */
            inst[away] = start_inst(dir, addr, away);
            away = -1;
        }
        int v = rand() % NINST;
        stop_pid(inst[v], SIGKILL);
        if (round % 4 == 3)
            away = v;
        else
            inst[v] = start_inst(dir, addr, v);
    }
    if (away >= 0)
        inst[away] = start_inst(dir, addr, away);
    wait_equal(f, 240, "after SIGKILLs");
    fprintf(stderr, "check_it_group: after %d SIGKILLs (%d instance(s) removed and added) nothing missing or stale; "
            "%ld more duplicated; batches read again after the group refused a commit (the range's or the positions'): "
            "%d; published ranges found at assignment: %d\n",
            kills, kills / 4, f->unclean - before, count_in_logs(dir, ": the batch is read again"),
            count_in_logs(dir, "were published but not committed"));
}

/* Instances join, leave gracefully (SIGTERM), are killed (SIGKILL), removed and added while input arrives. */
START_TEST(test_group_membership)
{
    char *dir = setup_dir();
    char addr[128], err[256];
    FILE *kout;
    pid_t kafka = start_kafka(addr, sizeof addr, &kout, "orders:8");
    ss_transport_t *t = NULL;
    ss_producer_t *p = NULL;
    ck_assert_int_eq(ss_transport_kafka(addr, &t, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_producer_new(t, &p, err, sizeof err), SS_OK);
    for (int k = 0; k < NKEYS; k++)
        produce(p, k, (k * 37) % 100);
    flush(p);

    setenv("SEMSTREAM_LOG", "info", 1); /* the ranges processed again are counted in their logs */
    pid_t inst[NINST];
    inst[0] = start_inst(dir, addr, 0);
    inst[1] = start_inst(dir, addr, 1);
    fold_t f;
    fold_open(&f, addr);
    wait_equal(&f, 120, "two instances");

    inst[2] = start_inst(dir, addr, 2); /* joins: partitions move to it */
    for (int k = 0; k < NKEYS; k += 2)
        produce(p, k, (k * 53 + 11) % 100);
    flush(p);
    wait_equal(&f, 120, "a third instance joined");

    stop_pid(inst[1], SIGTERM); /* leaves: its partitions move to the others */
    inst[1] = start_inst(dir, addr, 1); /* and comes back */
    for (int k = 0; k < NKEYS; k += 5)
        produce(p, k, -1);
    for (int k = 1; k < NKEYS; k += 3)
        if (k % 5)
            produce(p, k, (k * 29 + 3) % 100);
    flush(p);
    wait_equal(&f, 120, "an instance left and came back");

    fprintf(stderr, "check_it_group: %ld sink messages, none missing; %ld duplicated (a batch whose positions "
            "the group refused during a rebalance is published again: at-least-once)\n", f.messages, f.unclean);
    const char *kills = getenv("SS_TEST_GROUP_KILLS");
    kill_rounds(&f, p, inst, dir, addr, kills && atoi(kills) > 0 ? atoi(kills) : 6);
    for (int k = 0; k < NINST; k++)
        stop_pid(inst[k], SIGTERM);
    fold_close(&f);
    ss_producer_destroy(p);
    ss_transport_close(t);
    stop_pid(kafka, SIGTERM);
    fclose(kout);
    free(dir);
}
END_TEST

/* Commits offset to the group's partition 0 with metadata (a group without members accepts it). */
static void commit_with_meta(const char *addr, const char *group, int64_t offset, const char *meta)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char es[256];
    rd_kafka_conf_set(c, "bootstrap.servers", addr, es, sizeof es);
    rd_kafka_conf_set(c, "group.id", group, es, sizeof es);
    rd_kafka_conf_set(c, "broker.address.family", "v4", es, sizeof es);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, "orders", 0);
    tp->offset = offset;
    tp->metadata = strdup(meta);
    tp->metadata_size = strlen(meta);
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    ck_assert_msg(!e, "commit to group %s: %s", group, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static void send_sink(ss_producer_t *p, const char *val)
{
    char err[256];
    ck_assert_msg(ss_producer_send(p, "big", "{\"id\":5}", 8, val, strlen(val), err, sizeof err) == SS_OK, "%s", err);
}

/* The root of the stale keys (docs/ARCHITECTURE.md §6.5), made deterministic: a previous owner
 * published offset 0 (id 5 = 60) and committed it, then published offsets 1..1 (id 5: 60 -> 70)
 * with its intent (offset 1, ends at 2) committed, and was killed before committing the range.
 * Offset 2 sets id 5 back to 60. An instance that read 1..2 as one batch would publish nothing
 * for id 5 (no net change) and leave the sink at 70; it must end its first batch at 2 as the
 * intent says, and then publish 70 -> 60. */
START_TEST(test_group_intent)
{
    char *dir = setup_dir();
    char addr[128], err[256];
    FILE *kout;
    pid_t kafka = start_kafka(addr, sizeof addr, &kout, "orders:1");
    ss_transport_t *t = NULL;
    ss_producer_t *p = NULL;
    ck_assert_int_eq(ss_transport_kafka(addr, &t, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_producer_new(t, &p, err, sizeof err), SS_OK);
    memset(g_amount, 0xff, sizeof g_amount); /* every key absent (-1) */
    produce(p, 5, 60);
    produce(p, 5, 70);
    produce(p, 5, 60);
    send_sink(p, "{\"view\":\"big\",\"seq\":0,\"op\":\"insert\",\"row\":{\"id\":5,\"cust\":\"c5\",\"amount\":60}}");
    send_sink(p, "{\"view\":\"big\",\"seq\":1,\"op\":\"update\",\"row\":{\"id\":5,\"cust\":\"c5\",\"amount\":70},"
                 "\"old\":{\"id\":5,\"cust\":\"c5\",\"amount\":60}}");
    flush(p);
    commit_with_meta(addr, "g.orders@1001", 1, "semstream:intent=2"); /* the SOURCE node's group */

    setenv("SEMSTREAM_LOG", "info", 1);
    pid_t inst = start_inst(dir, addr, 0);
    fold_t f;
    fold_open(&f, addr);
    wait_equal(&f, 60, "a range published but not committed");
    stop_pid(inst, SIGTERM);
    ck_assert_msg(count_in_logs(dir, "group g.orders@1001: partition 0: offsets 1..1 were published but not committed"),
                  "the instance did not find the intent (is the SOURCE node's group still g.orders@1001?)");
    fold_close(&f);
    ss_producer_destroy(p);
    ss_transport_close(t);
    stop_pid(kafka, SIGTERM);
    fclose(kout);
    free(dir);
}
END_TEST

static int run_capture(const char *cmd, char *out, size_t outsz)
{
    FILE *pf = popen(cmd, "r");
    ck_assert_ptr_nonnull(pf);
    size_t n = fread(out, 1, outsz - 1, pf);
    out[n] = 0;
    int st = pclose(pf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Views that need an exchange are refused under --group, naming the view and the operator. */
START_TEST(test_group_refuses)
{
    char *dir = setup_dir();
    char addr[128], cmd[2048], out[8192];
    FILE *kout;
    pid_t kafka = start_kafka(addr, sizeof addr, &kout, "orders:8");
    snprintf(cmd, sizeof cmd, "cd %s && printf '%%s' \"CREATE STREAM orders (id INT KEY, cust TEXT, amount INT) WITH "
             "(topic = 'orders'); CREATE VIEW per_cust AS SELECT cust, COUNT(*) AS n FROM orders GROUP BY cust;\" "
             "> agg.sql && %s run agg.sql --brokers %s --group g --db r.db --until-idle 2>&1", dir, g_bin, addr);
    int rc = run_capture(cmd, out, sizeof out);
    ck_assert_msg(rc != 0, "GROUP BY under --group ran: %s", out);
    ck_assert_msg(strstr(out, "view per_cust") && strstr(out, "repartition exchange by its GROUP BY columns"),
                  "%s", out);
    snprintf(cmd, sizeof cmd, "cd %s && %s run g.sql --group g --db r2.db --until-idle 2>&1", dir, g_bin);
    rc = run_capture(cmd, out, sizeof out);
    ck_assert_msg(rc != 0 && strstr(out, "--group g needs --brokers"), "%s", out);
    stop_pid(kafka, SIGTERM);
    fclose(kout);
    free(dir);
}
END_TEST

Suite *check_it_group_suite(void)
{
    Suite *s = suite_create("it_group");
    TCase *tc = tcase_create("group");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_group_refuses);
    tcase_add_test(tc, test_group_intent);
    tcase_add_test(tc, test_group_membership);
    suite_add_tcase(s, tc);
    return s;
}
