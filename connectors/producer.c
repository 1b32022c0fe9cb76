/*
 * producer.c — ss_producer: on the log, the batching appender of log_client.c;
 * on Kafka, a librdkafka producer with idempotence on (acks=all, ordered
 * retries), the murmur2 partitioner (the one of Kafka's Java clients and of the
 * log, so a key lands on the same partition everywhere), a short linger for low
 * latency, and delivery reports counted so that ss_producer_flush can say
 * whether everything queued since the last flush was delivered.
 */
#include "conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ss_producer_t *p = opaque;
    if (!m->err || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return; /* purged by ss_producer_discard: dropped on purpose, not a failure */
    if (p->failed++ == 0)
        snprintf(p->first_err, sizeof p->first_err, "delivery to %s [%d] failed: %s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition, rd_kafka_err2str(m->err));
}

static int kafka_producer_new(ss_producer_t *p, char *err, size_t errsz)
{
    static const char *settings[][2] = {
        {"enable.idempotence", "true"},  /* implies acks=all and in-order retries */
        {"partitioner", "murmur2_random"}, /* keyed: Java clients' partition; keyless: random */
        {"linger.ms", "5"},
        {"message.timeout.ms", "30000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"message.max.bytes", "10000000"},
    };
    const char *brokers = p->t->addr;
    rd_kafka_conf_t *c = kafka_conf_new(brokers, err, errsz);
    if (!c)
        return SS_ERR_INVALID;
    for (size_t i = 0; i < SS_ARRAY_LEN(settings); i++)
        if (kafka_conf_set(c, settings[i][0], settings[i][1], err, errsz)) {
            rd_kafka_conf_destroy(c);
            return SS_ERR_INVALID;
        }
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_conf_set_opaque(c, p);
    char es[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, es, sizeof es);
    if (!p->rk) {
        rd_kafka_conf_destroy(c);
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "kafka producer: %s", es);
    }
    p->embedded = kafka_embedded_ensure_topic(brokers, NULL, 0);
    return SS_OK;
}

int ss_producer_new(ss_transport_t *t, ss_producer_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "producer: no transport");
    ss_producer_t *p = calloc(1, sizeof *p);
    if (!p)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    p->t = t;
    int rc = t->kind == SS_TRANSPORT_LOG ? logprod_open(p, err, errsz) : kafka_producer_new(p, err, errsz);
    if (rc) {
        ss_producer_destroy(p);
        return rc;
    }
    *out = p;
    return SS_OK;
}

/* On an in-process embedded broker, topics are created with one partition
 * before their first message, rather than auto-created with four. */
static void ensure_topic(ss_producer_t *p, const char *topic)
{
    for (known_topic_t *k = p->known; k; k = k->next)
        if (!strcmp(k->name, topic))
            return;
    kafka_embedded_ensure_topic(p->t->addr, topic, 1);
    known_topic_t *k = malloc(sizeof *k + strlen(topic) + 1);
    if (k) {
        strcpy(k->name, topic);
        k->next = p->known;
        p->known = k;
    }
}

int ss_producer_send(ss_producer_t *p, const char *topic, const void *key, size_t klen,
                     const void *val, size_t vlen, char *err, size_t errsz)
{
    if (p->log)
        return logprod_send(p, topic, key, klen, val, vlen, err, errsz);
    int64_t deadline = 0; /* read the clock only when the queue is full */
    if (p->embedded)
        ensure_topic(p, topic);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)key, key ? klen : 0), RD_KAFKA_V_VALUE((void *)val, val ? vlen : 0),
            RD_KAFKA_V_END);
        if (!e) {
            rd_kafka_poll(p->rk, 0); /* serve delivery reports */
            return SS_OK;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !deadline)
            deadline = ss_now_ns() + 30LL * 1000000000LL;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || ss_now_ns() > deadline)
            return ss_seterr(err, errsz, SS_ERR_KAFKA, "produce to %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(p->rk, 20); /* local queue full: let deliveries drain it */
    }
}

int kafka_producer_warm(ss_producer_t *p, const char *topic, int timeout_ms, char *err, size_t errsz)
{
    if (!p->rk)
        return SS_OK;
    if (p->embedded)
        ensure_topic(p, topic);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!rkt)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    if (!e && md->topic_cnt == 1)
        e = md->topics[0].err;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "metadata for topic %s: %s", topic, rd_kafka_err2str(e));
    return SS_OK;
}

int ss_producer_flush(ss_producer_t *p, int timeout_ms, char *err, size_t errsz)
{
    if (p->log)
        return logprod_flush(p, err, errsz);
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (p->failed) {
        int64_t n = p->failed;
        p->failed = 0;
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "%lld message(s) not delivered; %s", (long long)n, p->first_err);
    }
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return ss_seterr(err, errsz, SS_ERR_TIMEOUT, "kafka flush: %d message(s) still queued after %d ms",
                         rd_kafka_outq_len(p->rk), timeout_ms);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "kafka flush: %s", rd_kafka_err2str(e));
    return SS_OK;
}

void ss_producer_discard(ss_producer_t *p)
{
    if (p->log) {
        if (p->npend)
            ss_log(SS_LOG_WARN, "log", "%zu message(s) not appended were dropped", p->npend);
        p->npend = 0;
        ss_buf_reset(&p->data);
    } else if (p->rk) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE);
        rd_kafka_poll(p->rk, 0);
    }
}

void ss_producer_destroy(ss_producer_t *p)
{
    if (!p)
        return;
    logprod_close(p);
    if (p->rk) {
        rd_kafka_flush(p->rk, 2000);
        if (rd_kafka_outq_len(p->rk) > 0)
            ss_log(SS_LOG_WARN, "kafka", "producer closed with %d message(s) undelivered", rd_kafka_outq_len(p->rk));
        rd_kafka_destroy(p->rk);
    }
    for (known_topic_t *k = p->known, *n; k; k = n) {
        n = k->next;
        free(k);
    }
    free(p);
}
