/*
 * ss_kafka.h — the in-memory Kafka endpoint: librdkafka's mock cluster on
 * loopback (`semstream kafka`, tests, trying clients such as kcat). It keeps
 * at most ~5 MiB per partition and loses everything when its process ends
 * (docs/KAFKA.md), so the engine never uses it on its own: without --brokers
 * streams live in the durable log (ss_log.h). Producers, sources and sinks on
 * Kafka, the mock included, go through ss_transport_kafka (ss_connect.h).
 */
#ifndef SS_KAFKA_H
#define SS_KAFKA_H

#include "ss_connect.h"

typedef struct ss_broker ss_broker_t;
/* Starts a mock cluster with nbrokers brokers listening on loopback. */
int ss_broker_start(int nbrokers, ss_broker_t **out, char *err, size_t errsz);
const char *ss_broker_bootstrap(const ss_broker_t *b); /* "127.0.0.1:port,..." owned by b */
/* SS_ERR_EXISTS if the topic exists. */
int ss_broker_create_topic(ss_broker_t *b, const char *topic, int partitions, char *err, size_t errsz);
void ss_broker_stop(ss_broker_t *b); /* NULL-safe */

#endif
