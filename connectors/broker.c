/*
 * broker.c — the embedded broker (librdkafka's mock cluster on a dedicated
 * rd_kafka_t, listening on 127.0.0.1), the in-process registry that lets
 * sources and sinks create topics on it, and the client configuration
 * defaults shared by every connector (kafka_conf_new).
 */
#include "conn_int.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

struct ss_broker {
    rd_kafka_t *rk;              /* owns the mock cluster's bookkeeping */
    rd_kafka_mock_cluster_t *mc;
    char *bootstrap;             /* "127.0.0.1:port,..." */
    ss_broker_t *next;           /* registry link */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static ss_broker_t *reg_head;

/* ---- client configuration ---- */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ss_log(level <= LOG_CRIT ? SS_LOG_WARN : SS_LOG_DEBUG, "kafka", "librdkafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    /* transport errors are routine while brokers start or stop: keep them at info */
    int fatal = err == RD_KAFKA_RESP_ERR__FATAL;
    ss_log(fatal ? SS_LOG_ERROR : SS_LOG_INFO, "kafka", "%s: %s: %s", rd_kafka_name(rk),
           rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

int kafka_conf_set(rd_kafka_conf_t *c, const char *key, const char *val, char *err, size_t errsz)
{
    char es[512];
    if (rd_kafka_conf_set(c, key, val, es, sizeof es) != RD_KAFKA_CONF_OK)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "kafka config %s=%s: %s", key, val, es);
    return SS_OK;
}

rd_kafka_conf_t *kafka_conf_new(const char *brokers, char *err, size_t errsz)
{
    static const char *defaults[][2] = {
        {"client.id", "semstream"},
        {"broker.address.family", "v4"},
        {"socket.timeout.ms", "10000"},
        {"socket.connection.setup.timeout.ms", "10000"},
        {"reconnect.backoff.ms", "20"},
        {"reconnect.backoff.max.ms", "500"},
        {"retry.backoff.ms", "50"},
        {"topic.metadata.refresh.interval.ms", "10000"},
        {"metadata.max.age.ms", "30000"},
        {"log.connection.close", "false"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c) {
        ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (!brokers || !*brokers) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "no Kafka brokers given");
        goto fail;
    }
    if (kafka_conf_set(c, "bootstrap.servers", brokers, err, errsz))
        goto fail;
    for (size_t i = 0; i < SS_ARRAY_LEN(defaults); i++)
        if (kafka_conf_set(c, defaults[i][0], defaults[i][1], err, errsz))
            goto fail;
    rd_kafka_conf_set_log_cb(c, log_cb);
    rd_kafka_conf_set_error_cb(c, error_cb);
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

/* ---- embedded broker ---- */

int ss_broker_start(int nbrokers, ss_broker_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (nbrokers < 1 || nbrokers > 32)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "broker count %d out of range 1..32", nbrokers);
    ss_broker_t *b = calloc(1, sizeof *b);
    if (!b)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    char es[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(c, log_cb);
    /* this handle only hosts the mock cluster; it never connects anywhere */
    rd_kafka_conf_set(c, "client.id", "semstream-embedded-broker", es, sizeof es);
    /* the mock cluster's thread never takes a terminal's signals (an EINTR kills its poll loop) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, es, sizeof es);
    if (b->rk)
        b->mc = rd_kafka_mock_cluster_new(b->rk, nbrokers);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!b->rk) {
        rd_kafka_conf_destroy(c);
        free(b);
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "embedded broker: %s", es);
    }
    const char *bs = b->mc ? rd_kafka_mock_cluster_bootstraps(b->mc) : NULL;
    if (!bs || !(b->bootstrap = ss_strdup(bs))) {
        ss_broker_stop(b);
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "embedded broker: could not start the mock cluster");
    }
    pthread_mutex_lock(&reg_mu);
    b->next = reg_head;
    reg_head = b;
    pthread_mutex_unlock(&reg_mu);
    *out = b;
    return SS_OK;
}

const char *ss_broker_bootstrap(const ss_broker_t *b) { return b ? b->bootstrap : NULL; }

static int create_locked(ss_broker_t *b, const char *topic, int partitions, char *err, size_t errsz)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->mc, topic, partitions, 1);
    if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return ss_seterr(err, errsz, SS_ERR_EXISTS, "topic %s already exists", topic);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "create topic %s: %s", topic, rd_kafka_err2str(e));
    return SS_OK;
}

int ss_broker_create_topic(ss_broker_t *b, const char *topic, int partitions, char *err, size_t errsz)
{
    if (!b || !topic || !*topic)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "create topic: no broker or topic name");
    if (partitions < 1 || partitions > 10000)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "create topic %s: %d partitions out of range 1..10000",
                         topic, partitions);
    pthread_mutex_lock(&reg_mu);
    int rc = create_locked(b, topic, partitions, err, errsz);
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

int kafka_embedded_ensure_topic(const char *brokers, const char *topic, int partitions)
{
    int found = 0;
    pthread_mutex_lock(&reg_mu);
    for (ss_broker_t *b = reg_head; b; b = b->next)
        if (!strcmp(b->bootstrap, brokers)) {
            if (topic)
                create_locked(b, topic, partitions, NULL, 0); /* "already exists" is fine */
            found = 1;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    return found;
}

void ss_broker_stop(ss_broker_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&reg_mu);
    for (ss_broker_t **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    if (b->mc)
        rd_kafka_mock_cluster_destroy(b->mc);
    if (b->rk)
        rd_kafka_destroy(b->rk);
    free(b->bootstrap);
    free(b);
}
