/*
 * ss_connect.h — streams in and out, whichever transport carries them: the
 * durable embedded log (a SQLite file of our own beside the state DB, log.c)
 * or Kafka (librdkafka). The engine opens one ss_transport_t and hands it to
 * every producer, source and sink; nothing above connectors/ cares which one
 * it is.
 *
 *   transport  where topics live: ss_transport_log(path) or ss_transport_kafka(brokers)
 *   producer   appends keyed messages to topics (durable once flush returns SS_OK)
 *   source     reads a stream's topic at caller-given positions and decodes each
 *              message into row events; bad messages go to a dead-letter topic
 *   sink       publishes a view's changelog
 *
 * Positions are (partition, next offset) pairs the engine keeps in its own
 * SQLite state and commits with each micro-batch, for both transports: sources
 * never commit anything to the transport, so a batch's state and its input
 * positions change together.
 *
 * Partitioning: a message with a key goes to partition murmur2(key) mod N, the
 * partition Kafka's Java clients pick (librdkafka producers are configured with
 * the same partitioner), so one key's history keeps its order on any number of
 * partitions; a message without a key goes to any partition.
 */
#ifndef SS_CONNECT_H
#define SS_CONNECT_H

#include "ss_zset.h"

#include <signal.h>
#include <stdint.h>

/* ---- transport ---- */
typedef struct ss_transport ss_transport_t;
typedef enum ss_transport_kind { SS_TRANSPORT_LOG = 1, SS_TRANSPORT_KAFKA = 2 } ss_transport_kind_t;

/* The durable embedded log at path (a SQLite file, created when missing; its
 * -wal and -shm files sit beside it). Several processes may open the same log. */
int ss_transport_log(const char *path, ss_transport_t **out, char *err, size_t errsz);
/* Kafka at the bootstrap list "host:port,...". Nothing is contacted until a
 * producer, source or sink is opened. */
int ss_transport_kafka(const char *brokers, ss_transport_t **out, char *err, size_t errsz);
/* Producers, sources and sinks opened on t must be closed first. NULL-safe. */
void ss_transport_close(ss_transport_t *t);
ss_transport_kind_t ss_transport_kind(const ss_transport_t *t);
/* The log's path or the broker list (owned by t). */
const char *ss_transport_address(const ss_transport_t *t);
/* "log /path/to/state.db.log" or "kafka host:9092,..." (owned by t). */
const char *ss_transport_describe(const ss_transport_t *t);

/* How a topic is created. Retention is explicit: 0 = keep everything. */
typedef struct ss_topic_opts {
    int partitions;         /* 0 = 1 */
    int set_retention;      /* 1: (re)set the topic's retention to the two fields below */
    int64_t retention_ms;   /* delete messages older than this (0 = no time limit) */
    int64_t retention_rows; /* keep at most this many newest messages per partition (0 = no limit) */
} ss_topic_opts_t;

/* Makes sure topic exists. On the log it is created with opts' partitions when
 * missing (an existing topic keeps its partition count; *partitions, when not
 * NULL, receives the count in use), and its retention is set when
 * opts->set_retention. On Kafka the topic is created only on an embedded mock
 * broker of this process (ss_kafka.h); a real cluster's topics are the
 * operator's business or auto-created, and retention is the broker's setting
 * (a warning is logged if opts asks for one). *first (may be NULL) = 1 the first
 * time this transport handle sees the topic. */
int ss_transport_create_topic(ss_transport_t *t, const char *topic, const ss_topic_opts_t *opts, int *partitions,
                              int *first, char *err, size_t errsz);

/* ---- producer ---- */
typedef struct ss_producer ss_producer_t;
int ss_producer_new(ss_transport_t *t, ss_producer_t **out, char *err, size_t errsz);
/* Queues one message (copied). key may be NULL (no key); value NULL = tombstone.
 * On the log, queued messages are appended in batches; a send that fails
 * (SS_ERR_BUSY: disk full, or the log locked by another process too long)
 * queued nothing and may be retried. */
int ss_producer_send(ss_producer_t *p, const char *topic, const void *key, size_t klen,
                     const void *val, size_t vlen, char *err, size_t errsz);
/* Makes every queued message durable on the transport (log: appended, fsync'd;
 * Kafka: delivered, acks=all), waiting at most timeout_ms (Kafka). Errors:
 * SS_ERR_KAFKA if a delivery failed, SS_ERR_TIMEOUT if Kafka did not confirm in
 * time, SS_ERR_BUSY (log: disk full / locked; the messages stay queued, flush
 * again later). */
int ss_producer_flush(ss_producer_t *p, int timeout_ms, char *err, size_t errsz);
/* Drops what is queued and not yet durable (a statement that failed half-way must
 * not be written later). Exact on the log; on Kafka, messages already on their way
 * to the broker may still arrive. */
void ss_producer_discard(ss_producer_t *p);
void ss_producer_destroy(ss_producer_t *p); /* NULL-safe; flushes briefly, logs what is lost */

/* The message key of a row of a stream: the key columns as a JSON object
 * ({"id":1}), or, for a stream without key columns, the whole row as a JSON
 * object, so that a row's insert and its delete land on the same partition. */
int ss_stream_key(const ss_schema_t *schema, const ss_row_t *row, ss_buf_t *out);

/* ---- source ---- */
typedef enum ss_format { SS_FMT_JSON = 0, SS_FMT_DEBEZIUM, SS_FMT_UPSERT } ss_format_t;
int ss_format_parse(const char *name, ss_format_t *out); /* "json"|"debezium"|"upsert" */

/* The key (ss_stream_key) of a message value of a stream in format fmt: the row
 * of its last event (the new row of an update, the deleted row of a delete).
 * SS_ERR_INVALID (reason in err) when the value does not decode; the caller then
 * sends it without a key, and the source dead-letters it. */
int ss_format_key(ss_format_t fmt, const ss_schema_t *schema, const void *val, size_t vlen, ss_buf_t *out,
                  char *err, size_t errsz);

typedef struct ss_offset {
    int32_t partition;
    int64_t offset; /* next offset to consume */
} ss_offset_t;

/* Event time (issue 13): per partition, the largest event time read so far. The engine
 * stores these with the input positions and hands them back when it reopens a source. */
typedef struct ss_wmark {
    int32_t partition;
    int64_t max_us;  /* SS_TIME_NONE: no event read yet */
} ss_wmark_t;

typedef struct ss_source_opts {
    ss_transport_t *transport;
    const char *stream;          /* stream name (for messages) */
    const char *topic;
    ss_format_t format;
    const ss_schema_t *schema;   /* declared columns, KEY flags, types */
    const char *dlq_topic;       /* dead-letter topic; NULL = "<topic>.dlq" */
    size_t max_message_bytes;    /* larger messages are dead-lettered; 0 = 1 MiB */
    const char *group;           /* Kafka only: join this consumer group (cooperative-sticky) and read
                                    only the partitions it assigns; NULL = every partition (manual
                                    assignment). See "consumer groups" below. */
    int append_only;             /* WITH (append_only = true): a message that deletes or updates a row
                                    is dead-lettered (the stream's rows only ever arrive) */
} ss_source_opts_t;

/* A stream's event time: WATERMARK FOR column AS column - delay_us. */
typedef struct ss_source_wm_opts {
    const char *column;          /* a TIMESTAMP/TIMESTAMPTZ column of the schema */
    int64_t delay_us;
    int64_t idle_us;             /* a partition with nothing new this long while caught up does not hold
                                    the watermark back (0: never) */
    const ss_wmark_t *start;     /* per-partition state saved earlier (may be NULL) */
    int nstart;
} ss_source_wm_opts_t;

typedef struct ss_source_stats {
    int64_t messages;     /* consumed */
    int64_t events;       /* row events produced */
    int64_t bad;          /* dead-lettered */
} ss_source_stats_t;

typedef struct ss_source ss_source_t;
/* Opens a source on every partition of the topic, starting at the given
 * positions (partitions not listed start at the beginning). A missing topic is
 * created with one partition (log, embedded mock broker). A position past the
 * end of its partition is an error naming the topic, the partition and both
 * offsets (the topic was deleted or replaced under the saved state): reading
 * on would silently skip what is written next. */
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
/* Gives an open source (before its first poll) a watermark: the minimum over partitions of
 * (largest event time read - delay). An event behind it when read is late: dead-lettered with
 * the reason, like a bad message. */
int ss_source_set_watermark(ss_source_t *s, const ss_source_wm_opts_t *w, char *err, size_t errsz);
/* The stream's watermark now (µs; SS_TIME_NONE while undefined or without a WATERMARK): it
 * never decreases. *next_us (may be NULL) = when it may change with no new message (a partition
 * turning idle), or SS_TIME_NONE. */
int64_t ss_source_watermark(ss_source_t *s, int64_t *next_us);
/* The per-partition state to save with the positions; *w owned by s, valid until the next poll. */
int ss_source_wm_state(ss_source_t *s, const ss_wmark_t **w, int *n);
/* Current positions (next offset per partition); *offs owned by s, valid until next poll. */
int ss_source_positions(ss_source_t *s, const ss_offset_t **offs, int *n);
/* Messages behind the end of the topic, summed over partitions (asks the transport). */
int ss_source_lag(ss_source_t *s, int64_t *lag, char *err, size_t errsz);
/* Messages behind the last end of the topic the source has seen while polling,
 * summed over partitions (no round trip; a partition not fetched yet counts 0).
 * A lower bound of ss_source_lag: > 0 means there is more to read. */
int64_t ss_source_cached_lag(ss_source_t *s);
/* Makes a poll of s in progress return at once with what it has read (the next poll, when
 * none is in progress). Thread-safe: the only call on a source from another thread, which
 * must keep s from being closed meanwhile. */
void ss_source_wake(ss_source_t *s);
void ss_source_get_stats(const ss_source_t *s, ss_source_stats_t *out);
void ss_source_close(ss_source_t *s); /* NULL-safe */

/* Consumer groups (opts.group; docs/ARCHITECTURE.md §6.1). The positions passed to open are the
 * engine's local ones (L). When a partition is assigned, reading starts at L; if the group's
 * committed offset G is further on, the messages in [L, G) are a *replay*: the caller applies them
 * to its state without publishing (their owner published them). A poll never mixes replayed and
 * new messages. When a partition is revoked while the caller's open batch holds messages of it,
 * ss_source_rebalanced turns 1: the caller drops its open batch and calls ss_source_rewind, which
 * sends every owned partition back to the mark. Rebalances happen only inside ss_source_poll.
 * Positions (ss_source_positions) cover every partition: for those not owned, the last local one.
 * Lag counts the owned partitions only (all of them before the first assignment). Without a group
 * these are no-ops (grouped, is_replay and rebalanced are 0). */
int ss_source_grouped(const ss_source_t *s);
int ss_source_is_replay(const ss_source_t *s);   /* what was polled since the mark is a replay */
int ss_source_rebalanced(const ss_source_t *s);  /* the open batch must be dropped and rewound */
void ss_source_mark(ss_source_t *s);              /* the caller committed the positions */
void ss_source_rewind(ss_source_t *s);            /* back to the mark */
/* Before a batch of new input is published: commits to the group, at the partitions' unchanged
 * offsets, where the batch ends (the offset commit's metadata), so whoever processes a partition
 * from that offset next (this member after a refused commit, or the partition's next owner after a
 * kill) reads exactly up to there before going on, and publishes for every key the same net change
 * (docs/ARCHITECTURE.md §6.5). SS_ERR_BUSY as below; nothing has been published then. */
int ss_source_intend(ss_source_t *s, char *err, size_t errsz);
/* Commits to the group (synchronously) the positions of the owned partitions read since the mark.
 * SS_ERR_BUSY: refused because the group is rebalancing; the caller drops its batch (rewinds)
 * instead of committing its state, so its local positions never pass the group's. */
int ss_source_commit_group(ss_source_t *s, char *err, size_t errsz);

/* ---- loading a JSON-lines file into a stream ---- */
typedef struct ss_load_opts {
    const char *stream;           /* for messages */
    const char *topic;
    const char *path;
    ss_format_t format;
    const ss_schema_t *schema;    /* every line is keyed by ss_format_key */
    volatile sig_atomic_t *stop;  /* may be NULL; when set, the load stops (what it appended stays: on
                                     the log a later load of the file continues after it) */
    /* may be NULL: called at least once a second while the load runs, with the file's lines
     * and bytes appended so far by this call and the file's size */
    void (*progress)(void *ctx, int64_t lines, int64_t bytes, int64_t size);
    void *progress_ctx;
} ss_load_opts_t;

typedef struct ss_load_result {
    int64_t lines;    /* lines appended by this call */
    int64_t before;   /* lines of the file appended by earlier loads (this one resumed after them) */
    int64_t unkeyed;  /* lines that did not decode: sent without a key (the source dead-letters them) */
} ss_load_result_t;

/* Appends every non-blank line of the file to the topic, keyed. On the log a load
 * is exactly once: each batch commits together with the file position it reached,
 * so a load of the same file into the same topic continues after whatever earlier
 * loads appended (an interrupted load resumes; a file grown since loads only its
 * new lines; a file loaded in full loads nothing; a different file at that path
 * loads from the start). A full disk pauses the load (logged) until space returns
 * or *o->stop is set. On Kafka the lines are produced and flushed each time.
 * *o->stop set: SS_ERR_CANCELED, err saying how many lines were appended. */
int ss_load_jsonl(ss_transport_t *t, const ss_load_opts_t *o, ss_load_result_t *r, char *err, size_t errsz);

/* ---- sink: a view's changelog ---- */
typedef struct ss_sink ss_sink_t;
/* key_cols: the view's key columns (NULL/0 = the whole row identifies it). */
int ss_sink_open(ss_transport_t *t, const char *view, const char *topic, const ss_schema_t *schema,
                 const int *key_cols, int nkey, ss_sink_t **out, char *err, size_t errsz);
/* Publishes a consolidated delta: for each key, a -old/+new pair becomes one "update",
 * else "insert"/"delete". Message value:
 *   {"view":"v","seq":N,"op":"insert|update|delete","row":{...},"old":{...}}
 * keyed by the row's key as JSON. seq is taken from *seq and incremented per message.
 * On the log the messages are durable when it returns; on Kafka once ss_sink_flush returns. */
int ss_sink_publish(ss_sink_t *s, const ss_zset_t *delta, int64_t *seq, char *err, size_t errsz);
int ss_sink_flush(ss_sink_t *s, int timeout_ms, char *err, size_t errsz);
void ss_sink_close(ss_sink_t *s); /* NULL-safe */

#endif
