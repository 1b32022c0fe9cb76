/*
 * ss_log.h — the durable embedded log: append-only topics of keyed messages
 * with partitions and offsets, in a SQLite file of its own (by default
 * "<state db>.log" beside the engine's state). ss_transport_log (ss_connect.h)
 * builds producers and sources on it; `semstream log` and the tests read it
 * directly through this API.
 *
 * Storage (one SQLite database, WAL, synchronous=FULL):
 *   log_topics(id, name, partitions, retention_ms, retention_rows, created_ms)
 *   log_parts(topic, partition, low, next)        offsets [low, next) are stored
 *   log_msgs(topic, partition, offset, ts_ms, key, value)   clustered by
 *            (topic, partition, offset): reading a partition is a range scan
 *   log_loads(topic, path, dev, ino, bytes, lines, tail_hash)  how much of a
 *            file a load has appended, committed with those appends, so an
 *            interrupted load resumes exactly where it stopped
 * An append is one BEGIN IMMEDIATE transaction: offsets are taken from
 * log_parts inside it, so appends from several processes are serialised by
 * SQLite's write lock and each partition's offsets stay dense and ordered; the
 * commit is fsync'd before ss_log_append returns. Readers never block writers.
 *
 * Retention is explicit (a topic's retention_ms / retention_rows; 0 keeps
 * everything) and applied by appenders: rows at every append to a partition,
 * time at most once a second per topic and connection, and by ss_log_retain.
 * Offsets are never reused: deleting moves a partition's `low`, not its `next`.
 *
 * A connection (ss_log_t) is used by one thread at a time; open one per thread.
 */
#ifndef SS_LOG_H
#define SS_LOG_H

#include "ss_connect.h"

typedef struct ss_log ss_log_t;

/* Opens (creating when missing) the log at path. SS_ERR_INVALID if the file is
 * another SQLite database or a log of another format version. */
int ss_log_open(const char *path, ss_log_t **out, char *err, size_t errsz);
void ss_log_close(ss_log_t *l); /* NULL-safe */
const char *ss_log_path(const ss_log_t *l);

typedef struct ss_log_topic {
    int64_t id;
    int partitions;
    int64_t retention_ms, retention_rows; /* 0 = no limit */
    int64_t created_ms;
} ss_log_topic_t;

/* SS_ERR_NOTFOUND (no message in err) when the topic does not exist. */
int ss_log_topic_get(ss_log_t *l, const char *name, ss_log_topic_t *out, char *err, size_t errsz);
/* Creates the topic when missing (opts NULL: 1 partition, no retention); sets its
 * retention when opts->set_retention. *created (may be NULL) = 1 if it was created;
 * *out (may be NULL) = the topic as stored. */
int ss_log_topic_create(ss_log_t *l, const char *name, const ss_topic_opts_t *opts, int *created,
                        ss_log_topic_t *out, char *err, size_t errsz);
/* Calls fn for every topic in name order; fn's non-zero return stops and is returned. */
typedef int (*ss_log_topic_fn)(void *arg, const char *name, const ss_log_topic_t *t);
int ss_log_topics(ss_log_t *l, ss_log_topic_fn fn, void *arg, char *err, size_t errsz);
/* low[p], next[p] for every partition p < t->partitions (arrays of that size). */
int ss_log_watermarks(ss_log_t *l, const ss_log_topic_t *t, int64_t *low, int64_t *next, char *err, size_t errsz);

/* The partition a key goes to among n: murmur2(key) & 0x7fffffff mod n (Kafka's
 * Java clients' default partitioner, and librdkafka's "murmur2_random"). */
int ss_log_partition_for(const void *key, size_t klen, int n);

typedef struct ss_log_rec {
    const char *topic;     /* missing topics are created with one partition */
    int32_t partition;     /* < 0: by key (ss_log_partition_for), keyless: round robin */
    const void *key;       /* NULL: no key */
    size_t klen;
    const void *val;       /* NULL: tombstone */
    size_t vlen;
} ss_log_rec_t;
/* Appends recs in order, all or nothing, in one transaction that is durable
 * (fsync'd) when SS_OK returns. where (may be NULL) receives each record's
 * partition and offset. SS_ERR_BUSY: the disk is full or the log stayed locked
 * by another process for busy_ms; nothing was appended, retry later. */
int ss_log_append(ss_log_t *l, const ss_log_rec_t *recs, size_t n, ss_offset_t *where, char *err, size_t errsz);

/* A load's progress through a file (ss_load_jsonl): bytes and lines of path
 * appended to topic so far; dev/ino identify the file and tail_hash is the hash
 * of the (up to) 4 KiB before `bytes`, so a replaced or rewritten file is told
 * apart from the same file grown. */
typedef struct ss_log_mark {
    const char *topic, *path;
    int64_t dev, ino, bytes, lines;
    uint64_t tail_hash;
    int64_t updated_ms;     /* set by ss_log_mark_get */
} ss_log_mark_t;
/* ss_log_append, and in the same transaction records mark (when not NULL). */
int ss_log_append_marked(ss_log_t *l, const ss_log_rec_t *recs, size_t n, ss_offset_t *where,
                         const ss_log_mark_t *mark, char *err, size_t errsz);
/* SS_ERR_NOTFOUND (no message) when no load of path into topic was recorded.
 * out->topic/path point to the arguments. */
int ss_log_mark_get(ss_log_t *l, const char *topic, const char *path, ss_log_mark_t *out, char *err, size_t errsz);

typedef struct ss_log_msg {
    int32_t partition;
    int64_t offset;
    int64_t ts_ms;          /* append time, ms since the epoch */
    const void *key;        /* NULL: no key */
    size_t klen;
    const void *val;        /* NULL: tombstone */
    size_t vlen;
} ss_log_msg_t;
/* Called for each message; key and val are valid during the call only. Non-zero stops the read. */
typedef int (*ss_log_msg_fn)(void *arg, const ss_log_msg_t *m);
/* Reads up to max messages of one partition with offset >= from, in offset order.
 * *n (may be NULL) = messages passed to fn. Returns fn's non-zero return if it stopped. */
int ss_log_read(ss_log_t *l, int64_t topic_id, int partition, int64_t from, int max, ss_log_msg_fn fn, void *arg,
                int *n, char *err, size_t errsz);

/* Applies every topic's time and row retention now. *deleted (may be NULL) = messages deleted. */
int ss_log_retain(ss_log_t *l, int64_t *deleted, char *err, size_t errsz);

/* How long an append waits for another process's write lock (default 30000 ms). */
void ss_log_set_busy_ms(ss_log_t *l, int ms);

#endif
