/*
 * ss_kafka.h — Kafka in and out, through librdkafka: the embedded broker
 * (librdkafka's mock cluster), a producer, a source that decodes a stream's
 * topic into row events, and a sink that publishes a view's changelog.
 *
 * Sources use manual partition assignment from offsets the engine keeps in
 * SQLite (no consumer-group rebalances), so a micro-batch can commit its state
 * and its input offsets in one SQLite transaction.
 */
#ifndef SS_KAFKA_H
#define SS_KAFKA_H

#include "ss_zset.h"

#include <stdint.h>

/* ---- embedded broker ---- */
typedef struct ss_broker ss_broker_t;
/* Starts a mock cluster with nbrokers brokers listening on loopback. */
int ss_broker_start(int nbrokers, ss_broker_t **out, char *err, size_t errsz);
const char *ss_broker_bootstrap(const ss_broker_t *b); /* "127.0.0.1:port,..." owned by b */
int ss_broker_create_topic(ss_broker_t *b, const char *topic, int partitions, char *err, size_t errsz);
void ss_broker_stop(ss_broker_t *b); /* NULL-safe */

/* ---- producer ---- */
typedef struct ss_producer ss_producer_t;
int ss_producer_new(const char *brokers, ss_producer_t **out, char *err, size_t errsz);
/* Queues one message (copied). key may be NULL; value NULL = tombstone. */
int ss_producer_send(ss_producer_t *p, const char *topic, const void *key, size_t klen,
                     const void *val, size_t vlen, char *err, size_t errsz);
/* Waits until every queued message is delivered; SS_ERR_KAFKA if any failed. */
int ss_producer_flush(ss_producer_t *p, int timeout_ms, char *err, size_t errsz);
void ss_producer_destroy(ss_producer_t *p); /* NULL-safe; flushes briefly */

/* ---- source ---- */
typedef enum ss_format { SS_FMT_JSON = 0, SS_FMT_DEBEZIUM, SS_FMT_UPSERT } ss_format_t;
int ss_format_parse(const char *name, ss_format_t *out); /* "json"|"debezium"|"upsert" */

typedef struct ss_offset {
    int32_t partition;
    int64_t offset; /* next offset to consume */
} ss_offset_t;

typedef struct ss_source_opts {
    const char *brokers;
    const char *stream;          /* stream name (for messages) */
    const char *topic;
    ss_format_t format;
    const ss_schema_t *schema;   /* declared columns, KEY flags, types */
    const char *dlq_topic;       /* dead-letter topic; NULL = "<topic>.dlq" */
    size_t max_message_bytes;    /* larger messages are dead-lettered; 0 = 1 MiB */
} ss_source_opts_t;

typedef struct ss_source_stats {
    int64_t messages;     /* consumed */
    int64_t events;       /* row events produced */
    int64_t bad;          /* dead-lettered */
} ss_source_stats_t;

typedef struct ss_source ss_source_t;
/* Opens a source on every partition of the topic, starting at the given offsets
 * (partitions not listed start at the beginning). The topic is created on the
 * embedded broker if missing. */
int ss_source_open(const ss_source_opts_t *o, const ss_offset_t *start, int nstart,
                   ss_source_t **out, char *err, size_t errsz);
/* Polls up to max_msgs messages (waiting at most timeout_ms for the first) and
 * appends row events to `out` IN ARRIVAL ORDER (do not consolidate):
 *   weight +1: upsert (insert, or update of the row with the same key)
 *   weight -1: delete (for keyed streams only key columns are meaningful)
 * For json format an update message with both "before" and "row" may yield -1 then +1.
 * Bad messages are written to the dead-letter topic with the reason and
 * topic/partition/offset, counted, and skipped. *nmsgs = messages consumed. */
int ss_source_poll(ss_source_t *s, int max_msgs, int timeout_ms, ss_zset_t *out, int *nmsgs,
                   char *err, size_t errsz);
/* Current positions (next offset per partition); *offs owned by s, valid until next poll. */
int ss_source_positions(ss_source_t *s, const ss_offset_t **offs, int *n);
/* Messages behind the high watermark, summed over partitions (queries the broker). */
int ss_source_lag(ss_source_t *s, int64_t *lag, char *err, size_t errsz);
void ss_source_get_stats(const ss_source_t *s, ss_source_stats_t *out);
void ss_source_close(ss_source_t *s); /* NULL-safe */

/* ---- sink: a view's changelog ---- */
typedef struct ss_sink ss_sink_t;
/* key_cols: the view's key columns (NULL/0 = the whole row identifies it). */
int ss_sink_open(const char *brokers, const char *view, const char *topic, const ss_schema_t *schema,
                 const int *key_cols, int nkey, ss_sink_t **out, char *err, size_t errsz);
/* Publishes a consolidated delta: for each key, a -old/+new pair becomes one "update",
 * else "insert"/"delete". Message value:
 *   {"view":"v","seq":N,"op":"insert|update|delete","row":{...},"old":{...}}
 * keyed by the row's key as JSON. seq is taken from *seq and incremented per message. */
int ss_sink_publish(ss_sink_t *s, const ss_zset_t *delta, int64_t *seq, char *err, size_t errsz);
int ss_sink_flush(ss_sink_t *s, int timeout_ms, char *err, size_t errsz);
void ss_sink_close(ss_sink_t *s); /* NULL-safe */

/* Messages behind the last high watermark the consumer has seen with a fetch,
 * summed over partitions (no broker round trip; a partition not fetched yet
 * counts 0). A lower bound of ss_source_lag: > 0 means there is more to read. */
int64_t ss_source_cached_lag(ss_source_t *s);

#endif
