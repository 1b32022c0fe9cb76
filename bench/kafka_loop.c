/*
 * kafka_loop.c — the baseline of the relational benchmark: a plain librdkafka
 * consume-and-produce loop that copies N JSON messages from one topic to
 * another on the embedded broker, with no decoding and no state. Whatever
 * semstream does per event costs on top of this.
 *
 *   bench_kafka_loop [--n N] [--partitions P] [--text-bytes B] [--out FILE]
 *   bench_kafka_loop --capacity [--text-bytes B]   (how much one mock partition keeps)
 *
 * Prints events/s and writes a JSON result (default bench/results/kafka_loop.json).
 */
#include "ss_bench_util.h"
#include "ss_kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers)
{
    char es[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", brokers}, {"broker.address.family", "v4"}, {"group.id", "bench"},
        {"enable.auto.commit", "false"}, {"fetch.wait.max.ms", "10"}, {"linger.ms", "5"},
        {"queue.buffering.max.messages", "1000000"}, {"enable.idempotence", "true"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        int consumer_only = i >= 2 && i <= 4, producer_only = i >= 5;
        if ((type == RD_KAFKA_PRODUCER && consumer_only) || (type == RD_KAFKA_CONSUMER && producer_only))
            continue;
        if (rd_kafka_conf_set(c, kv[i][0], kv[i][1], es, sizeof es) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "bench: %s\n", es);
            exit(1);
        }
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, es, sizeof es);
    if (!rk) {
        fprintf(stderr, "bench: %s\n", es);
        exit(1);
    }
    return rk;
}

static int64_t sum_watermarks(rd_kafka_t *rk, const char *topic, int nparts, int64_t *lo_sum)
{
    int64_t hs = 0, ls = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
        hs += hi;
        ls += lo;
    }
    if (lo_sum)
        *lo_sum = ls;
    return hs;
}

/* Produces to a 1-partition topic in steps until the mock broker starts
 * dropping old data (low watermark > 0); reports how much it kept. */
static int capacity(const char *brokers, ss_broker_t *b, ss_transport_t *kt, int text_bytes)
{
    char err[SS_ERRSZ];
    ss_broker_create_topic(b, "cap", 1, err, sizeof err);
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, brokers);
    int64_t step = SS_MAX(1, 500000 / (text_bytes + 40)), total = 0, lo = 0; /* ~0.5 MB per step */
    size_t msg_bytes = 0;
    while (total < 2000000) {
        /* one message's value size, for the report */
        if (ss_bench_fill_topic(kt, "cap", step, text_bytes, err, sizeof err)) {
            fprintf(stderr, "bench: %s\n", err);
            return 1;
        }
        total += step;
        sum_watermarks(rk, "cap", 1, &lo);
        if (lo > 0)
            break;
    }
    msg_bytes = (size_t)text_bytes + 40;
    int64_t hi = sum_watermarks(rk, "cap", 1, &lo);
    printf("capacity: after %" PRId64 " messages (~%zu B each) the partition keeps offsets %" PRId64 "..%" PRId64
           " (%" PRId64 " messages, ~%.1f MB of values)\n",
           total, msg_bytes, lo, hi, hi - lo, (double)(hi - lo) * (double)msg_bytes / 1e6);
    rd_kafka_destroy(rk);
    return 0;
}

/* For comparison: the same input read and decoded by ss_source (upsert format
 * into rows of id INT KEY, v INT, s TEXT); returns events/s, 0 on failure. */
static double source_rate(ss_transport_t *kt, int64_t n)
{
    ss_schema_t *sch = ss_schema_new(3);
    ss_schema_set(sch, 0, "id", SS_COL_INT, 1);
    ss_schema_set(sch, 1, "v", SS_COL_INT, 0);
    ss_schema_set(sch, 2, "s", SS_COL_TEXT, 0);
    ss_source_opts_t o = {kt, "bench", "loop.in", SS_FMT_UPSERT, sch, NULL, 0, NULL, 0};
    ss_source_t *src = NULL;
    char err[SS_ERRSZ];
    double rate = 0;
    if (ss_source_open(&o, NULL, 0, &src, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        ss_schema_free(sch);
        return 0;
    }
    ss_zset_t z;
    ss_zset_init(&z);
    int64_t got = 0, t0 = ss_now_ns();
    while (got < n) {
        int k = 0;
        if (ss_source_poll(src, 10000, 1000, &z, &k, err, sizeof err)) {
            fprintf(stderr, "bench: %s\n", err);
            break;
        }
        got += k;
        ss_zset_clear(&z);
    }
    double secs = (double)(ss_now_ns() - t0) / 1e9;
    ss_source_stats_t st;
    ss_source_get_stats(src, &st);
    if (got >= n && st.events == n) {
        rate = (double)n / secs;
        printf("ss_source (upsert decode into rows): %" PRId64 " events in %.3f s: %.0f events/s\n", n, secs, rate);
    }
    ss_zset_destroy(&z);
    ss_source_close(src);
    ss_schema_free(sch);
    return rate;
}

static void write_result(const char *path, int64_t n, int parts, int text_bytes, double secs, double bytes,
                         double src_rate)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        mkdir(dir, 0755);
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    time_t now = time(NULL);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f,
            "{\"bench\":\"kafka_loop\",\"what\":\"plain librdkafka consume+produce copy on the embedded broker\","
            "\"n\":%" PRId64 ",\"partitions\":%d,\"text_bytes\":%d,\"avg_value_bytes\":%.1f,"
            "\"seconds\":%.3f,\"events_per_s\":%.0f,\"mb_per_s\":%.2f,\"ss_source_upsert_events_per_s\":%.0f,"
            "\"librdkafka\":\"%s\",\"date\":\"%s\"}\n",
            n, parts, text_bytes, bytes / (double)n, secs, (double)n / secs, bytes / secs / 1e6, src_rate,
            rd_kafka_version_str(), ts);
    fclose(f);
    printf("wrote %s\n", path);
}

int main(int argc, char **argv)
{
    int64_t n = 200000;
    int parts = 8, text_bytes = 32, cap = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc)
            parts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--text-bytes") && i + 1 < argc)
            text_bytes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--capacity"))
            cap = 1;
        else {
            fprintf(stderr, "usage: bench_kafka_loop [--n N] [--partitions P] [--text-bytes B] [--out FILE] "
                            "| --capacity\n");
            return 2;
        }
    }
    if (n <= 0 || parts <= 0) {
        fprintf(stderr, "bench: --n and --partitions must be positive\n");
        return 2;
    }
    char err[SS_ERRSZ];
    ss_broker_t *b = NULL;
    if (ss_broker_start(1, &b, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    const char *brokers = ss_broker_bootstrap(b);
    ss_transport_t *kt = NULL;
    if (ss_transport_kafka(brokers, &kt, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    if (cap) {
        int rc = capacity(brokers, b, kt, text_bytes);
        ss_transport_close(kt);
        ss_broker_stop(b);
        return rc;
    }
    if (ss_broker_create_topic(b, "loop.in", parts, err, sizeof err) ||
        ss_broker_create_topic(b, "loop.out", parts, err, sizeof err) ||
        ss_bench_fill_topic(kt, "loop.in", n, text_bytes, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    rd_kafka_t *c = client(RD_KAFKA_CONSUMER, brokers), *p = client(RD_KAFKA_PRODUCER, brokers);
    int64_t lo = 0, in_hi = sum_watermarks(c, "loop.in", parts, &lo);
    if (lo > 0 || in_hi != n) {
        fprintf(stderr, "bench: the broker kept offsets %" PRId64 "..%" PRId64 " of %" PRId64
                        " messages: use more --partitions (a mock partition keeps ~5 MB)\n", lo, in_hi, n);
        return 1;
    }
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, "loop.in", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t got = 0;
    double bytes = 0;
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);
        if (!m)
            continue;
        if (m->err) {
            fprintf(stderr, "bench: consume: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        bytes += (double)m->len;
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("loop.out"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 10);
        if (e) {
            fprintf(stderr, "bench: produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }
        rd_kafka_poll(p, 0);
        rd_kafka_message_destroy(m);
        got++;
    }
    rd_kafka_flush(p, 60000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int64_t out_hi = sum_watermarks(c, "loop.out", parts, NULL);
    printf("kafka_loop: copied %" PRId64 " messages (%.1f B avg) in %.3f s: %.0f events/s, %.2f MB/s "
           "(output topic holds %" PRId64 ")\n",
           n, bytes / (double)n, secs, (double)n / secs, bytes / secs / 1e6, out_hi);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    double src_rate = source_rate(kt, n);
    ss_transport_close(kt);
    ss_broker_stop(b);
    if (out_hi != n) {
        fprintf(stderr, "bench: output topic holds %" PRId64 " messages, expected %" PRId64 "\n", out_hi, n);
        return 1;
    }
    char path[256];
    write_result(out ? out : ss_bench_result_path("kafka_loop.json", path, sizeof path), n, parts, text_bytes, secs,
                 bytes, src_rate);
    return 0;
}
