/*
 * relational.c — throughput of a relational continuous view: events/s through
 * source -> filter -> projection -> view table + sink topic, on the embedded
 * broker, against a plain librdkafka consume-and-produce copy loop over the
 * same input topic in the same run (the baseline: no decoding, no state). The
 * baseline runs before and after the engine and the faster run is the bar.
 *
 *   bench_relational [--n N] [--partitions P] [--text-bytes B] [--batch-size K] [--out FILE]
 *
 * Prints both rates, their ratio and the peak RSS, and writes a JSON result
 * (default bench/results/relational.json).
 */
#include "ss_bench_util.h"
#include "ss_engine.h"
#include "ss_kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static rd_kafka_t *mkclient(rd_kafka_type_t type, const char *brokers)
{
    char es[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, es, sizeof es);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(c, "group.id", "bench-relational", es, sizeof es);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", es, sizeof es);
        rd_kafka_conf_set(c, "fetch.wait.max.ms", "10", es, sizeof es);
    } else {
        /* the same delivery guarantees as semstream's producers */
        rd_kafka_conf_set(c, "enable.idempotence", "true", es, sizeof es);
        rd_kafka_conf_set(c, "linger.ms", "5", es, sizeof es);
        rd_kafka_conf_set(c, "queue.buffering.max.messages", "1000000", es, sizeof es);
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, es, sizeof es);
    if (!rk)
        fprintf(stderr, "bench: %s\n", es);
    return rk;
}

/* The baseline: copy every message of `in` to `out`; returns seconds (< 0 on failure). */
static double copy_loop(const char *brokers, const char *in, const char *out, int parts, int64_t n)
{
    rd_kafka_t *c = mkclient(RD_KAFKA_CONSUMER, brokers), *p = mkclient(RD_KAFKA_PRODUCER, brokers);
    if (!c || !p)
        return -1;
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, in, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t got = 0, t0 = ss_now_ns();
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);
        if (!m)
            continue;
        if (!m->err) {
            while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(out), RD_KAFKA_V_KEY(m->key, m->key_len),
                                     RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 10);
            got++;
        }
        rd_kafka_message_destroy(m);
        rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 60000);
    double secs = (double)(ss_now_ns() - t0) / 1e9;
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return secs;
}

static int64_t topic_end(const char *brokers, const char *topic, int parts)
{
    rd_kafka_t *c = mkclient(RD_KAFKA_CONSUMER, brokers);
    int64_t sum = 0;
    for (int i = 0; c && i < parts; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(c, topic, i, &lo, &hi, 5000);
        sum += hi;
    }
    if (c)
        rd_kafka_destroy(c);
    return sum;
}

static int engine_run(const char *brokers, int batch, int64_t n, double *secs, int64_t *rows, char *err,
                      size_t errsz)
{
    char dir[] = "/tmp/ss_bench_relXXXXXX", db[64];
    if (!mkdtemp(dir))
        return ss_seterr(err, errsz, SS_ERR_IO, "mkdtemp: %s", strerror(errno));
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.brokers = brokers;
    o.batch_size = batch;
    o.max_latency_ms = 5;
    ss_engine_t *e = NULL;
    int rc = ss_engine_open(&o, &e, err, errsz);
    ss_buf_t out = SS_BUF_INIT;
    const char *sql = "CREATE STREAM ev (id INT, v INT, s TEXT) WITH (topic = 'rel.in', format = 'json');"
                      "CREATE CONTINUOUS VIEW small WITH (sink_topic = 'rel.out') AS "
                      "SELECT id, v * 2 AS v2, UPPER(s) AS s FROM ev WHERE v < 50;";
    int64_t t0 = ss_now_ns();
    if (!rc)
        rc = ss_engine_exec(e, sql, strlen(sql), "bench", &out, err, errsz);
    if (!rc)
        rc = ss_engine_run_until_idle(e, 600000, err, errsz);
    *secs = (double)(ss_now_ns() - t0) / 1e9;
    ss_engine_stats_t st;
    if (!rc) {
        ss_engine_get_stats(e, &st);
        if (st.messages != n)
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "engine consumed %" PRId64 " of %" PRId64 " messages",
                           st.messages, n);
    }
    ss_buf_reset(&out);
    const char *cnt = "SELECT COUNT(*) FROM small;";
    if (!rc)
        rc = ss_engine_exec(e, cnt, strlen(cnt), "bench", &out, err, errsz);
    *rows = 0;
    const char *p = strstr(ss_buf_cstr(&out), "\n-");
    if (p && (p = strchr(p + 1, '\n')))
        *rows = strtoll(p + 1, NULL, 10);
    ss_buf_free(&out);
    ss_engine_close(e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    int64_t n = 100000;
    int parts = 4, text_bytes = 32, batch = 4096;
    const char *outp = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc)
            parts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--text-bytes") && i + 1 < argc)
            text_bytes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outp = argv[++i];
        else {
            fprintf(stderr, "usage: bench_relational [--n N] [--partitions P] [--text-bytes B] [--batch-size K] "
                            "[--out FILE]\n");
            return 2;
        }
    }
    char err[SS_ERRSZ];
    ss_broker_t *b = NULL;
    ss_transport_t *kt = NULL;
    if (ss_broker_start(1, &b, err, sizeof err) || ss_broker_create_topic(b, "rel.in", parts, err, sizeof err) ||
        ss_broker_create_topic(b, "rel.copy", parts, err, sizeof err) ||
        ss_broker_create_topic(b, "rel.copy2", parts, err, sizeof err) ||
        ss_broker_create_topic(b, "rel.out", parts, err, sizeof err) ||
        ss_transport_kafka(ss_broker_bootstrap(b), &kt, err, sizeof err) ||
        ss_bench_fill_topic(kt, "rel.in", n, text_bytes, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    ss_transport_close(kt);
    const char *brokers = ss_broker_bootstrap(b);
    if (topic_end(brokers, "rel.in", parts) != n) {
        fprintf(stderr, "bench: the broker did not keep all %" PRId64 " messages: use more --partitions\n", n);
        return 1;
    }
    /* the baseline runs before and after the engine; the faster run counts (its
     * rate varies a lot on a shared machine, and the faster one is the harder bar) */
    double base1 = copy_loop(brokers, "rel.in", "rel.copy", parts, n);
    double secs = 0;
    int64_t rows = 0;
    int rc = base1 > 0 ? engine_run(brokers, batch, n, &secs, &rows, err, sizeof err) : 1;
    double base2 = rc ? -1 : copy_loop(brokers, "rel.in", "rel.copy2", parts, n);
    double base = base2 > 0 && base2 < base1 ? base2 : base1;
    if (rc) {
        fprintf(stderr, "bench: %s\n", base > 0 ? err : "baseline loop failed");
        ss_broker_stop(b);
        return 1;
    }
    int64_t sink_msgs = topic_end(brokers, "rel.out", parts);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double base_rate = (double)n / base, rate = (double)n / secs, ratio = rate / base_rate;
    printf("baseline librdkafka copy loop: %" PRId64 " events in %.3f s: %.0f events/s (runs: %.3f s before, "
           "%.3f s after the engine)\n", n, base, base_rate, base1, base2);
    printf("semstream source->filter->project->view+sink: %" PRId64 " events in %.3f s: %.0f events/s "
           "(%" PRId64 " view rows, %" PRId64 " sink messages)\n",
           n, secs, rate, rows, sink_msgs);
    printf("ratio %.2f (goal >= 0.70), peak RSS %.1f MB\n", ratio, (double)ru.ru_maxrss / 1024.0);
    char pbuf[256];
    const char *path = outp ? outp : ss_bench_result_path("relational.json", pbuf, sizeof pbuf);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        mkdir(dir, 0755);
    }
    FILE *f = fopen(path, "w");
    if (f) {
        time_t now = time(NULL);
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        fprintf(f,
                "{\"bench\":\"relational\",\"what\":\"source->filter->project->view table+sink vs plain librdkafka "
                "copy loop, embedded broker, same input\",\"n\":%" PRId64 ",\"partitions\":%d,\"text_bytes\":%d,"
                "\"batch_size\":%d,\"baseline_events_per_s\":%.0f,\"semstream_events_per_s\":%.0f,\"ratio\":%.3f,"
                "\"view_rows\":%" PRId64 ",\"sink_messages\":%" PRId64 ",\"peak_rss_mb\":%.1f,\"cpus\":%ld,"
                "\"date\":\"%s\"}\n",
                n, parts, text_bytes, batch, base_rate, rate, ratio, rows, sink_msgs, (double)ru.ru_maxrss / 1024.0,
                sysconf(_SC_NPROCESSORS_ONLN), ts);
        fclose(f);
        printf("wrote %s\n", path);
    }
    ss_broker_stop(b);
    return 0;
}
