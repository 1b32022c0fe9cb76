/*
 * kafka_int.h — internal helpers shared by the connectors/ files (not part of
 * the ss_kafka.h contract): librdkafka configuration with semstream's defaults,
 * the in-process registry of embedded brokers, and the message decoder.
 */
#ifndef SS_KAFKA_INT_H
#define SS_KAFKA_INT_H

#include "ss_kafka.h"

#include <librdkafka/rdkafka.h>

/* A new conf with bootstrap.servers = brokers and the defaults every client
 * gets (IPv4 loopback friendly, short timeouts and backoffs, logs routed to
 * ss_log). NULL with err filled on failure. */
rd_kafka_conf_t *kafka_conf_new(const char *brokers, char *err, size_t errsz);
/* rd_kafka_conf_set mapped to ss_err_t (SS_ERR_INVALID with librdkafka's text). */
int kafka_conf_set(rd_kafka_conf_t *c, const char *key, const char *val, char *err, size_t errsz);

/* If brokers is the bootstrap list of an ss_broker_t running in this process,
 * makes sure topic exists there (created with `partitions` partitions when
 * missing) and returns 1; returns 0 for any other broker (then topics are
 * created by the broker's auto-creation). topic NULL: only the check. */
int kafka_embedded_ensure_topic(const char *brokers, const char *topic, int partitions);

/* Fetches topic's metadata into the producer (waiting at most timeout_ms), so
 * that its first messages are partitioned and sent at once instead of waiting
 * in librdkafka's unassigned queue for a lazy metadata refresh (which, under
 * load, took as long as a whole run). Best effort: SS_OK, or an error that the
 * caller may ignore (messages then wait for the refresh as before). */
int kafka_producer_warm(ss_producer_t *p, const char *topic, int timeout_ms, char *err, size_t errsz);

/* Decodes one Kafka message of a stream into row events appended to out
 * (nothing is appended on failure). val == NULL means a tombstone.
 * Returns SS_ERR_INVALID with the reason in err for bad input. */
int kafka_decode(ss_format_t fmt, const ss_schema_t *schema, const void *key, size_t klen,
                 const void *val, size_t vlen, ss_zset_t *out, char *err, size_t errsz);

#endif
