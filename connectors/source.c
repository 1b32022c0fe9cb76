/*
 * source.c — ss_source: reads a stream's topic at caller-given positions,
 * decodes each message into row events (decode.c), dead-letters bad messages,
 * and tracks positions and lag. The reading itself is the transport's: the
 * log's in log_client.c; Kafka's here, with manual partition assignment (no
 * consumer-group subscription, no rebalances, no offset commits), or as a member of
 * a consumer group when opts.group is set (group.c).
 *
 * Dead letters are JSON objects
 *   {"error":..,"stream":..,"topic":..,"partition":N,"offset":N,"payload":"..."}
 * keyed like the original message; the dead-letter producer is flushed before
 * poll returns, so a bad message is on the DLQ before its offset can be
 * committed by the engine.
 */
#include "conn_int.h"
#include "ss_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_PAYLOAD_MAX (64 * 1024)
#define META_TIMEOUT_MS 5000

int ss_format_parse(const char *name, ss_format_t *out)
{
    static const char *names[] = {"json", "debezium", "upsert"};
    for (size_t i = 0; name && i < SS_ARRAY_LEN(names); i++)
        if (ss_strcaseeq(name, names[i])) {
            *out = (ss_format_t)i;
            return SS_OK;
        }
    return SS_ERR_INVALID;
}

static rd_kafka_t *consumer_new(ss_source_t *s, const ss_source_opts_t *o, char *err, size_t errsz)
{
    char group[256];
    snprintf(group, sizeof group, "semstream.%s", o->stream ? o->stream : o->topic);
    const char *settings[][2] = {
        {"group.id", group}, /* required by assign(); offsets come from the caller */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"allow.auto.create.topics", "true"},
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "10"},
        {"fetch.error.backoff.ms", "50"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "500"},
        {"queued.min.messages", "100000"},
        {"fetch.message.max.bytes", "1048576"},
    };
    rd_kafka_conf_t *c = kafka_conf_new(o->transport->addr, err, errsz);
    if (!c)
        return NULL;
    for (size_t i = 0; i < SS_ARRAY_LEN(settings); i++)
        if (kafka_conf_set(c, settings[i][0], settings[i][1], err, errsz)) {
            rd_kafka_conf_destroy(c);
            return NULL;
        }
    if (s->group && kgroup_conf(s, c, err, errsz)) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    char es[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
    if (!rk) {
        rd_kafka_conf_destroy(c);
        ss_seterr(err, errsz, SS_ERR_KAFKA, "kafka consumer: %s", es);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Number of partitions of the topic (creating it when missing). */
static int discover(ss_source_t *s, int *npart, char *err, size_t errsz)
{
    kafka_embedded_ensure_topic(s->t->addr, s->topic, 1);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, s->topic, NULL);
    if (!rkt)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "topic %s: %s", s->topic, rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t deadline = ss_now_ns() + (int64_t)META_TIMEOUT_MS * 1000000;
    *npart = 0;
    do { /* a just auto-created topic can take a moment to get its partitions */
        const struct rd_kafka_metadata *md = NULL;
        e = rd_kafka_metadata(s->rk, 0, rkt, &md, META_TIMEOUT_MS);
        if (!e && md->topic_cnt == 1) {
            e = md->topics[0].err;
            *npart = md->topics[0].partition_cnt;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (!e && *npart > 0)
            break;
    } while (ss_now_ns() < deadline && (rd_kafka_poll(s->rk, 100), 1));
    rd_kafka_topic_destroy(rkt);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "metadata for topic %s on %s: %s", s->topic, s->t->addr,
                         rd_kafka_err2str(e));
    if (*npart <= 0)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "topic %s has no partitions on %s", s->topic, s->t->addr);
    return SS_OK;
}

/* The low and high watermarks of partitions 0..n-1 (lo, hi: n each), asked of the
 * brokers as the earliest and the latest offset (ListOffsets). Not
 * rd_kafka_query_watermark_offsets: with the partition's leader down it waits for
 * ever, whatever its timeout (librdkafka 2.0), and so did the pipeline reading it;
 * offsets_for_times gives up after META_TIMEOUT_MS. */
static int kafka_watermarks(ss_source_t *s, int n, int64_t *lo, int64_t *hi, char *err, size_t errsz)
{
    for (int pass = 0; pass < 2; pass++) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
        for (int p = 0; p < n; p++) /* the "timestamps" -2 and -1 mean the earliest and the latest offset */
            rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = pass ? -1 : -2;
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(s->rk, l, META_TIMEOUT_MS);
        for (int k = 0; !e && k < l->cnt; k++) {
            const rd_kafka_topic_partition_t *tp = &l->elems[k];
            if (tp->err)
                e = tp->err;
            else if (tp->partition >= 0 && tp->partition < n)
                (pass ? hi : lo)[tp->partition] = tp->offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (e)
            return ss_seterr(err, errsz, SS_ERR_KAFKA, "stream %s: offsets of topic %s on %s: %s", s->stream, s->topic,
                             s->t->addr, rd_kafka_err2str(e));
    }
    return SS_OK;
}

static int assign(ss_source_t *s, const ss_offset_t *start, int nstart, char *err, size_t errsz)
{
    int64_t *los = calloc((size_t)s->npart + 1, sizeof *los), *his = calloc((size_t)s->npart + 1, sizeof *his);
    int rc = los && his ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    /* the ends are needed to check the saved positions: no answer is an error (retried), not a skip */
    if (!rc)
        rc = kafka_watermarks(s, s->npart, los, his, err, errsz);
    if (rc) {
        free(los);
        free(his);
        return rc;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->npart);
    for (int p = 0; p < s->npart; p++) {
        int64_t off = RD_KAFKA_OFFSET_BEGINNING;
        for (int i = 0; i < nstart; i++)
            if (start[i].partition == p && start[i].offset >= 0)
                off = start[i].offset;
        int64_t lo = los[p], hi = his[p];
        int have_wm = lo >= 0;
        if (off == RD_KAFKA_OFFSET_BEGINNING) /* report a real offset: the low watermark */
            s->pos[p].offset = have_wm ? lo : RD_KAFKA_OFFSET_BEGINNING;
        else
            s->pos[p].offset = off;
        if (have_wm && off >= 0 && off < lo)
            ss_log(SS_LOG_WARN, "kafka", "stream %s: topic %s partition %d: offsets %" PRId64 "..%" PRId64
                   " were deleted by the broker before they were read; resuming at %" PRId64,
                   s->stream, s->topic, p, off, lo - 1, lo);
        if (have_wm && off > hi) {
            rd_kafka_topic_partition_list_destroy(l);
            free(los);
            free(his);
            return conn_past_end(s, p, off, hi, err, errsz);
        }
        s->pos[p].partition = p;
        rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = off;
    }
    free(los);
    free(his);
    rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "assign %s: %s", s->topic, rd_kafka_err2str(e));
    return SS_OK;
}

static int kafka_open(ss_source_t *s, const ss_source_opts_t *o, const ss_offset_t *start, int nstart, char *err,
                      size_t errsz)
{
    if (o->group && !(s->group = ss_strdup(o->group)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!(s->rk = consumer_new(s, o, err, errsz)))
        return SS_ERR_KAFKA;
    int rc = discover(s, &s->npart, err, errsz);
    if (!rc && !(s->pos = calloc((size_t)s->npart, sizeof *s->pos)))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc && s->group)
        return kgroup_start(s, start, nstart, err, errsz);
    return rc ? rc : assign(s, start, nstart, err, errsz);
}

int conn_past_end(const ss_source_t *s, int partition, int64_t saved, int64_t end, char *err, size_t errsz)
{
    return ss_seterr(err, errsz, SS_ERR_INVALID, "topic %s partition %d: the saved position %" PRId64
                     " is past the end of the partition (%" PRId64 " messages on %s): the topic was deleted or "
                     "replaced under the saved state; reading on would skip what is written next. Restore the "
                     "topic, or start the stream's views again (DROP and CREATE them)",
                     s->topic, partition, saved, end, ss_transport_describe(s->t));
}

int ss_source_open(const ss_source_opts_t *o, const ss_offset_t *start, int nstart,
                   ss_source_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (!o || !o->transport || !o->topic || !*o->topic || !o->schema || o->schema->n <= 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "source: transport, topic and schema are required");
    ss_source_t *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    s->t = o->transport;
    s->wm.col = -1;
    s->stream = ss_strdup(o->stream ? o->stream : o->topic);
    s->topic = ss_strdup(o->topic);
    s->dlq_topic = o->dlq_topic ? ss_strdup(o->dlq_topic) : ss_sprintf("%s.dlq", o->topic);
    s->schema = ss_schema_copy(o->schema);
    s->format = o->format;
    s->max_bytes = o->max_message_bytes ? o->max_message_bytes : 1024 * 1024;
    s->append_only = o->append_only;
    int rc = SS_OK;
    if (!s->stream || !s->topic || !s->dlq_topic || !s->schema)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = s->t->kind == SS_TRANSPORT_LOG ? logsrc_open(s, start, nstart, err, errsz)
                                            : kafka_open(s, o, start, nstart, err, errsz);

    if (rc) {
        ss_errprefix(err, errsz, "stream %s", s->stream ? s->stream : "?");
        ss_source_close(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

/* Writes a bad message to the dead-letter topic (never fails the caller). */
static void dead_letter(ss_source_t *s, const conn_msg_t *m, const char *reason)
{
    s->st.bad++;
    ss_log(SS_LOG_WARN, "source", "stream %s: topic %s partition %d offset %" PRId64 ": %s", s->stream,
           s->topic, (int)m->partition, (int64_t)m->offset, reason);
    char err[SS_ERRSZ];
    if (!s->dlq) {
        if (ss_transport_create_topic(s->t, s->dlq_topic, NULL, NULL, NULL, err, sizeof err) ||
            ss_producer_new(s->t, &s->dlq, err, sizeof err)) {
            ss_log(SS_LOG_WARN, "source", "stream %s: no dead-letter producer: %s", s->stream, err);
            return;
        }
    }
    ss_buf_t b = SS_BUF_INIT;
    size_t n = m->val ? SS_MIN(m->vlen, (size_t)DLQ_PAYLOAD_MAX) : 0;
    int rc = ss_buf_puts(&b, "{\"error\":");
    rc = rc ? rc : ss_json_put_str_utf8(&b, reason, strlen(reason));
    rc = rc ? rc : ss_buf_puts(&b, ",\"stream\":");
    rc = rc ? rc : ss_json_put_str_utf8(&b, s->stream, strlen(s->stream));
    rc = rc ? rc : ss_buf_puts(&b, ",\"topic\":");
    rc = rc ? rc : ss_json_put_str_utf8(&b, s->topic, strlen(s->topic));
    rc = rc ? rc : ss_buf_printf(&b, ",\"partition\":%d,\"offset\":%" PRId64 ",\"payload\":", (int)m->partition,
                                 (int64_t)m->offset);
    rc = rc ? rc : m->val ? ss_json_put_str_utf8(&b, m->val, n) : ss_buf_puts(&b, "null");
    if (!rc && m->val && n < m->vlen)
        rc = ss_buf_printf(&b, ",\"truncated\":true,\"payload_bytes\":%zu", m->vlen);
    rc = rc ? rc : ss_buf_putc(&b, '}');
    if (!rc)
        rc = ss_producer_send(s->dlq, s->dlq_topic, m->key, m->klen, b.data, b.len, err, sizeof err);
    else
        snprintf(err, sizeof err, "out of memory");
    if (rc)
        ss_log(SS_LOG_WARN, "source", "stream %s: dead letter to %s failed: %s", s->stream, s->dlq_topic, err);
    else
        s->dlq_pending++;
    ss_buf_free(&b);
}

void conn_source_handle(ss_source_t *s, const conn_msg_t *m, ss_zset_t *out)
{
    for (int i = 0; i < s->npart; i++)
        if (s->pos[i].partition == m->partition)
            s->pos[i].offset = m->offset + 1;
    s->st.messages++;
    char reason[SS_ERRSZ];
    size_t total = m->vlen + m->klen;
    if (total > s->max_bytes) {
        snprintf(reason, sizeof reason, "message of %zu bytes exceeds the limit of %zu bytes", total, s->max_bytes);
        dead_letter(s, m, reason);
        return;
    }
    size_t before = out->n;
    int rc = conn_decode(s->format, s->schema, m->key, m->klen, m->val, m->vlen, out, reason, sizeof reason);
    for (size_t k = before; !rc && s->append_only && k < out->n; k++)
        if (out->e[k].w < 0) {
            snprintf(reason, sizeof reason, "stream %s is append_only: a message that deletes or updates a row "
                     "is refused", s->stream);
            for (size_t j = before; j < out->n; j++)
                ss_row_free(out->e[j].row);
            out->n = before;
            rc = SS_ERR_INVALID;
        }
    if (!rc && conn_wm_event(s, m, out, before, reason, sizeof reason)) { /* late: its windows may be closed */
        for (size_t k = before; k < out->n; k++)
            ss_row_free(out->e[k].row);
        out->n = before;
        rc = SS_ERR_INVALID;
    }
    if (rc)
        dead_letter(s, m, reason);
    else
        s->st.events += (int64_t)(out->n - before);
}

static void kafka_handle(ss_source_t *s, const rd_kafka_message_t *m, ss_zset_t *out)
{
    for (int i = 0; i < s->npart; i++)
        if (s->pos[i].partition == m->partition && s->pos[i].offset >= 0 && m->offset > s->pos[i].offset + 1)
            /* gaps of 1 are transaction markers; larger ones mean data the broker dropped */
            ss_log(SS_LOG_WARN, "kafka", "stream %s: topic %s partition %d: offsets %" PRId64 "..%" PRId64
                   " are gone (retention or compaction); continuing at %" PRId64, s->stream, s->topic,
                   (int)m->partition, s->pos[i].offset, (int64_t)m->offset - 1, (int64_t)m->offset);
    conn_msg_t cm = {m->partition, m->offset, m->key, m->key_len, m->payload, m->len};
    if (m->key && !m->key_len)
        cm.key = "";
    conn_source_handle(s, &cm, out);
}

/* Dead letters queued by this poll are on their topic before it returns. */
static void flush_dead_letters(ss_source_t *s)
{
    if (s->dlq && s->dlq_pending) {
        char e2[SS_ERRSZ];
        if (ss_producer_flush(s->dlq, 10000, e2, sizeof e2))
            ss_log(SS_LOG_WARN, "source", "stream %s: dead-letter topic %s: %s", s->stream, s->dlq_topic, e2);
        s->dlq_pending = 0;
    }
}

static int kafka_poll(ss_source_t *s, int max_msgs, int timeout_ms, ss_zset_t *out, int *nmsgs, char *err,
                      size_t errsz)
{
    int got = 0, rc = SS_OK;
    int64_t t0 = ss_now_ns();
    while (got < max_msgs) {
        int64_t left = got ? 0 : timeout_ms - (ss_now_ns() - t0) / 1000000;
        if (conn_source_woken(s))
            break; /* ss_source_wake: return what there is now */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, left > 0 ? (int)left : 0);
        if (!m)
            break;
        if (m->err) {
            rd_kafka_resp_err_t e = m->err;
            ss_log(SS_LOG_WARN, "kafka", "stream %s: topic %s: %s", s->stream, s->topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (e == RD_KAFKA_RESP_ERR__FATAL || e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                rc = ss_seterr(err, errsz, SS_ERR_KAFKA, "stream %s: topic %s: %s", s->stream, s->topic,
                               rd_kafka_err2str(e));
                break;
            }
            if (left <= 0)
                break;
            continue;
        }
        int admit = s->group ? kgroup_admit(s, m) : 1;
        if (admit <= 0) {
            rd_kafka_message_destroy(m);
            if (admit == 0)
                break;
            continue;
        }
        kafka_handle(s, m, out);
        rd_kafka_message_destroy(m);
        got++;
    }
    *nmsgs = got;
    return rc;
}

int ss_source_poll(ss_source_t *s, int max_msgs, int timeout_ms, ss_zset_t *out, int *nmsgs,
                   char *err, size_t errsz)
{
    int got = 0;
    conn_wm_poll_start(s);
    int rc = s->log ? logsrc_poll(s, max_msgs, timeout_ms, out, &got, err, errsz)
                    : kafka_poll(s, max_msgs, timeout_ms, out, &got, err, errsz);
    flush_dead_letters(s);
    if (nmsgs)
        *nmsgs = got;
    return rc;
}

int conn_source_woken(ss_source_t *s) { return __atomic_exchange_n(&s->woken, 0, __ATOMIC_ACQ_REL); }

void ss_source_wake(ss_source_t *s)
{
    if (!s)
        return;
    __atomic_store_n(&s->woken, 1, __ATOMIC_RELEASE);
    if (s->log)
        conn_log_wake(s->t);
    else if (s->rk) { /* ends a rd_kafka_consumer_poll in progress */
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(s->rk);
        if (q) {
            rd_kafka_queue_yield(q);
            rd_kafka_queue_destroy(q);
        }
    }
}

int ss_source_positions(ss_source_t *s, const ss_offset_t **offs, int *n)
{
    *offs = s->pos;
    *n = s->npart;
    return SS_OK;
}

int ss_source_lag(ss_source_t *s, int64_t *lag, char *err, size_t errsz)
{
    if (s->log)
        return logsrc_lag(s, lag, err, errsz);
    int64_t total = 0;
    int64_t *lo = calloc((size_t)s->npart + 1, sizeof *lo), *hi = calloc((size_t)s->npart + 1, sizeof *hi);
    int rc = lo && hi ? kafka_watermarks(s, s->npart, lo, hi, err, errsz)
                      : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < s->npart; i++) {
        int p = s->pos[i].partition;
        if (p < 0 || p >= s->npart || !kgroup_lag_counts(s, p))
            continue;
        int64_t at = s->pos[i].offset < lo[p] ? lo[p] : s->pos[i].offset;
        if (hi[p] > at)
            total += hi[p] - at;
    }
    free(lo);
    free(hi);
    if (!rc)
        *lag = total;
    return rc;
}

int64_t ss_source_cached_lag(ss_source_t *s)
{
    if (s->log)
        return logsrc_cached_lag(s);
    int64_t total = 0;
    for (int i = 0; i < s->npart; i++) {
        int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
        if (!kgroup_lag_counts(s, s->pos[i].partition) ||
            rd_kafka_get_watermark_offsets(s->rk, s->topic, s->pos[i].partition, &lo, &hi) ||
            hi == RD_KAFKA_OFFSET_INVALID)
            continue;
        int64_t at = lo != RD_KAFKA_OFFSET_INVALID && s->pos[i].offset < lo ? lo : s->pos[i].offset;
        if (hi > at)
            total += hi - at;
    }
    return total;
}

void ss_source_get_stats(const ss_source_t *s, ss_source_stats_t *out) { *out = s->st; }

void ss_source_close(ss_source_t *s)
{
    if (!s)
        return;
    if (s->rk) {
        rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    logsrc_close(s);
    kgroup_close(s);
    conn_wm_close(s);
    ss_producer_destroy(s->dlq);
    ss_schema_free(s->schema);
    free(s->pos);
    free(s->stream);
    free(s->topic);
    free(s->dlq_topic);
    free(s);
}
