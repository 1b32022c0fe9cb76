/*
 * conn_int.h — internals shared by the connectors/ files (not part of the
 * ss_connect.h contract): the transport, producer and source structs with
 * their two backends (the embedded log: log_client.c; Kafka: producer.c,
 * source.c), librdkafka configuration with semstream's defaults, the
 * in-process registry of embedded mock brokers, and the message decoder.
 */
#ifndef SS_CONN_INT_H
#define SS_CONN_INT_H

#include "ss_connect.h"
#include "ss_kafka.h"
#include "ss_log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>

/* ---- transport ---- */

typedef struct seen_topic {
    struct seen_topic *next;
    char name[];
} seen_topic_t;

struct ss_transport {
    ss_transport_kind_t kind;
    char *addr;             /* owned: the log's path or the broker list */
    char *desc;             /* owned: "log PATH" / "kafka BROKERS" */
    pthread_mutex_t mu;     /* guards everything below */
    pthread_cond_t cv;      /* log: broadcast after every append by this process */
    uint64_t gen;           /* log: appends by this process so far */
    uint64_t wakes;         /* log: ss_source_wake calls so far (a waiting poll looks at its source) */
    ss_log_t *admin;        /* log: connection for topic creation (owned) */
    seen_topic_t *seen;     /* topics create_topic was asked about (owned) */
};

/* Log: a producer of this process appended (wakes sources waiting in this process). */
void conn_log_appended(ss_transport_t *t);
/* Log: waits until an append of this process changes the generation from seen, a source
 * of this transport is woken (ss_source_wake), or ms pass (appends of other processes are
 * found by polling); returns the generation. */
uint64_t conn_log_wait(ss_transport_t *t, uint64_t seen, int ms);
uint64_t conn_log_gen(ss_transport_t *t);
/* Log: wakes every conn_log_wait of the transport (each looks whether its source was woken). */
void conn_log_wake(ss_transport_t *t);

/* ---- producer ---- */

typedef struct known_topic {
    struct known_topic *next;
    char name[];
} known_topic_t;

/* A message queued for the log: offsets into the producer's data buffer. */
typedef struct pend_rec {
    size_t topic_at, key_at, klen, val_at, vlen;
    int has_key, has_val;
} pend_rec_t;

struct ss_producer {
    ss_transport_t *t;      /* borrowed */
    /* kafka */
    rd_kafka_t *rk;
    int embedded;           /* the brokers are an ss_broker_t of this process */
    known_topic_t *known;   /* topics already made sure of on it */
    int64_t failed;         /* deliveries failed since the last flush */
    char first_err[384];    /* the first of those failures, for the message */
    /* log */
    ss_log_t *log;          /* own connection */
    pend_rec_t *pend;       /* queued, not yet appended */
    size_t npend, cap;
    ss_buf_t data;          /* topics, keys and values of pend */
    size_t last_topic_at;   /* where pend's last topic name starts in data */
};

int logprod_open(ss_producer_t *p, char *err, size_t errsz);
int logprod_send(ss_producer_t *p, const char *topic, const void *key, size_t klen, const void *val, size_t vlen,
                 char *err, size_t errsz);
int logprod_flush(ss_producer_t *p, char *err, size_t errsz);
void logprod_close(ss_producer_t *p);

/* ---- source ---- */

/* One raw message of a topic, whichever transport it came from. */
typedef struct conn_msg {
    int32_t partition;
    int64_t offset;
    const void *key;        /* NULL: no key */
    size_t klen;
    const void *val;        /* NULL: tombstone */
    size_t vlen;
} conn_msg_t;

/* A source's event-time watermark (watermark.c). Arrays are per partition index (as pos). */
typedef struct conn_wm {
    int col;                 /* event-time column; -1: no watermark */
    int64_t delay_us, idle_us;
    int64_t *max_us;         /* owned: largest event time read (SS_TIME_NONE: none) */
    int64_t *active_us;      /* owned: ss_clock_us() when the partition last delivered a message */
    char *idle;              /* owned: 1 = idle as of the last recomputation */
    int64_t now_us;          /* the clock at the start of the current poll */
    int64_t wm;              /* the combined watermark (never decreases; SS_TIME_NONE: undefined) */
    ss_wmark_t *state;       /* owned: scratch for ss_source_wm_state */
} conn_wm_t;

struct ss_source {
    ss_transport_t *t;       /* borrowed */
    char *stream, *topic, *dlq_topic;
    ss_format_t format;
    ss_schema_t *schema;     /* owned copy */
    size_t max_bytes;
    int append_only;         /* a delete or an update is dead-lettered */
    ss_offset_t *pos;        /* per partition: next offset to consume */
    int npart;
    ss_source_stats_t st;
    ss_producer_t *dlq;      /* created at the first bad message */
    int dlq_pending;         /* dead letters queued since the last flush */
    /* kafka */
    rd_kafka_t *rk;
    /* kafka, consumer group member (group.c; NULL/0 without opts.group) */
    char *group;             /* owned: the consumer group */
    char *owned;             /* owned: per partition, assigned to this member now */
    int64_t *mark;           /* owned: per partition, the position as of the engine's last commit */
    int64_t *replay_end;     /* owned: per partition, offsets below it are a replay (state only); -1 none */
    int64_t *intent;         /* owned: per partition, where the batch published from the group's offset ends
                              * (group.c: a batch from there ends at or before it); -1 none */
    int assigned_once;       /* an assignment arrived */
    int batch_mode;          /* what was read since the mark: -1 nothing, 0 new input, 1 replay */
    int tainted;             /* a partition revoked had messages in the open batch: rewind */
    /* log */
    ss_log_t *log;           /* own connection */
    ss_log_topic_t lt;
    int64_t *lo, *hi;        /* per partition: watermarks as last seen */
    int rr;                  /* partition to read first at the next poll */
    conn_wm_t wm;            /* event-time watermark (watermark.c) */
    int woken;               /* ss_source_wake: the poll in progress (or the next) returns now (atomic) */
};

/* 1 (and clears the flag) if s was woken since the last call. */
int conn_source_woken(ss_source_t *s);

/* ---- event time (watermark.c) ---- */
void conn_wm_close(ss_source_t *s);
/* Before a poll reads messages: the clock and which partitions are idle. */
void conn_wm_poll_start(ss_source_t *s);
/* After message m decoded into out[before..]: 0 when its events are on time (the watermark moves
 * on), or 1 with the reason in why when an event is late or has no event time (the caller
 * dead-letters m and drops its events). */
int conn_wm_event(ss_source_t *s, const conn_msg_t *m, const ss_zset_t *out, size_t before, char *why,
                  size_t whysz);

/* Moves the position past m, decodes it into events appended to out, or
 * dead-letters it (counted in the stats either way). */
void conn_source_handle(ss_source_t *s, const conn_msg_t *m, ss_zset_t *out);
/* The error for a saved position past the end of a partition. */
int conn_past_end(const ss_source_t *s, int partition, int64_t saved, int64_t end, char *err, size_t errsz);

int logsrc_open(ss_source_t *s, const ss_offset_t *start, int nstart, char *err, size_t errsz);
int logsrc_poll(ss_source_t *s, int max_msgs, int timeout_ms, ss_zset_t *out, int *got, char *err, size_t errsz);
int logsrc_lag(ss_source_t *s, int64_t *lag, char *err, size_t errsz);
int64_t logsrc_cached_lag(ss_source_t *s);
void logsrc_close(ss_source_t *s);

/* ---- Kafka ---- */

/* Consumer group membership (group.c). conf: group.id, cooperative-sticky, read_committed, the
 * rebalance callback. start: positions, subscription. admit (per message): 1 handle it, 0 stop
 * the poll (the message was sought back, or the batch is tainted), -1 drop it (not owned).
 * lag_counts: 1 when partition p counts towards the lag. */
int kgroup_conf(ss_source_t *s, rd_kafka_conf_t *c, char *err, size_t errsz);
int kgroup_start(ss_source_t *s, const ss_offset_t *start, int nstart, char *err, size_t errsz);
int kgroup_admit(ss_source_t *s, const rd_kafka_message_t *m);
int kgroup_lag_counts(const ss_source_t *s, int32_t p);
void kgroup_close(ss_source_t *s);

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

/* ---- decoding ---- */

/* Decodes one message of a stream into row events appended to out (nothing is
 * appended on failure). val == NULL means a tombstone. Returns SS_ERR_INVALID
 * with the reason in err for bad input. */
int conn_decode(ss_format_t fmt, const ss_schema_t *schema, const void *key, size_t klen,
                const void *val, size_t vlen, ss_zset_t *out, char *err, size_t errsz);

#endif
