/*
 * transport.c — ss_transport (ss_connect.h): which transport carries the
 * streams (the durable log at a path, or Kafka at a broker list), topic
 * creation on either, and, for the log, the in-process wake-up that lets a
 * waiting source see an append of its own process at once (appends of other
 * processes are found by the source's periodic re-reads).
 */
#include "conn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int transport_new(ss_transport_kind_t kind, const char *addr, ss_transport_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (!addr || !*addr)
        return ss_seterr(err, errsz, SS_ERR_INVALID, kind == SS_TRANSPORT_LOG ? "no log path given"
                                                                             : "no Kafka brokers given");
    ss_transport_t *t = calloc(1, sizeof *t);
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    t->kind = kind;
    t->addr = ss_strdup(addr);
    t->desc = ss_sprintf("%s %s", kind == SS_TRANSPORT_LOG ? "log" : "kafka", addr);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!t->addr || !t->desc) {
        ss_transport_close(t);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    *out = t;
    return SS_OK;
}

int ss_transport_log(const char *path, ss_transport_t **out, char *err, size_t errsz)
{
    int rc = transport_new(SS_TRANSPORT_LOG, path, out, err, errsz);
    if (!rc && (rc = ss_log_open(path, &(*out)->admin, err, errsz))) {
        ss_transport_close(*out);
        *out = NULL;
    }
    return rc;
}

int ss_transport_kafka(const char *brokers, ss_transport_t **out, char *err, size_t errsz)
{
    return transport_new(SS_TRANSPORT_KAFKA, brokers, out, err, errsz);
}

void ss_transport_close(ss_transport_t *t)
{
    if (!t)
        return;
    ss_log_close(t->admin);
    for (seen_topic_t *s = t->seen, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->addr);
    free(t->desc);
    free(t);
}

ss_transport_kind_t ss_transport_kind(const ss_transport_t *t) { return t->kind; }
const char *ss_transport_address(const ss_transport_t *t) { return t->addr; }
const char *ss_transport_describe(const ss_transport_t *t) { return t->desc; }

/* Under t->mu: 1 the first time the topic is named to this handle. */
static int first_sight(ss_transport_t *t, const char *topic)
{
    for (seen_topic_t *s = t->seen; s; s = s->next)
        if (!strcmp(s->name, topic))
            return 0;
    seen_topic_t *s = malloc(sizeof *s + strlen(topic) + 1);
    if (s) {
        strcpy(s->name, topic);
        s->next = t->seen;
        t->seen = s;
    }
    return 1;
}

int ss_transport_create_topic(ss_transport_t *t, const char *topic, const ss_topic_opts_t *opts, int *partitions,
                              int *first, char *err, size_t errsz)
{
    if (!topic || !*topic)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "create topic: no topic name");
    int want = opts && opts->partitions > 0 ? opts->partitions : 1;
    int rc = SS_OK, have = want, fs = 0;
    pthread_mutex_lock(&t->mu);
    if (t->kind == SS_TRANSPORT_LOG) {
        ss_log_topic_t lt;
        rc = ss_log_topic_create(t->admin, topic, opts, NULL, &lt, err, errsz);
        have = rc ? 0 : lt.partitions;
        fs = rc ? 0 : first_sight(t, topic);
    } else {
        fs = first_sight(t, topic);
        if (fs && opts && opts->set_retention && (opts->retention_ms || opts->retention_rows))
            ss_log(SS_LOG_WARN, "kafka", "topic %s: WITH (retention=...) applies to the embedded log only; on "
                   "Kafka retention is the topic's retention.ms/retention.bytes, set on the broker", topic);
        kafka_embedded_ensure_topic(t->addr, topic, want);
    }
    pthread_mutex_unlock(&t->mu);
    if (first)
        *first = fs;
    if (partitions)
        *partitions = have;
    return rc;
}

/* ---- log wake-ups ---- */

void conn_log_appended(ss_transport_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->gen++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

uint64_t conn_log_gen(ss_transport_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->mu);
    return g;
}

void conn_log_wake(ss_transport_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->wakes++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

uint64_t conn_log_wait(ss_transport_t *t, uint64_t seen, int ms)
{
    struct timespec ts;
    ss_deadline(&ts, CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&t->mu);
    uint64_t wakes = t->wakes;
    while (t->gen == seen && t->wakes == wakes)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) == ETIMEDOUT)
            break;
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->mu);
    return g;
}
