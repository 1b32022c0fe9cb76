/*
 * ss_engine.h — the semstream engine: ties the catalog, planner, operators,
 * Kafka connectors and the inference dispatcher together.
 *
 * An engine owns one SQLite state database (catalog, operator state, view
 * tables, input offsets), one dispatcher (with its result cache in
 * "<db>.cache"), a transport for its streams and sinks (the durable log
 * "<db>.log" beside the state, or Kafka when brokers are given), and the
 * running views. Each view (with the views it reads or that read it) is a
 * pipeline with a thread of its own: it polls its sources, runs its part of the
 * plan, waits for model answers without holding a transaction, and commits its
 * operator state, view tables, sink outbox and input positions in ONE SQLite
 * transaction per batch. A slow or failing model stalls only the pipelines that
 * use it. ss_engine_exec runs SQL statements.
 *
 * Threading: ss_engine_exec may be called from any thread (statements run one at
 * a time); subscriptions are thread-safe. ss_engine_run, run_until_idle and
 * SUBSCRIBE watch opts.stop (set it from a signal handler) to finish.
 */
#ifndef SS_ENGINE_H
#define SS_ENGINE_H

#include "ss_base.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ss_engine ss_engine_t;

typedef struct ss_engine_opts {
    const char *db_path;    /* SQLite state file; NULL = "semstream.db" */
    const char *brokers;    /* Kafka bootstrap servers; NULL = the durable log "<db_path>.log" */
    const char *model_path; /* default model registered as "local"; NULL = ss_default_model() */
    int batch_size;         /* messages per source per micro-batch; 0 = 1024 */
    int max_latency_ms;     /* longest wait for input in one step; 0 = 100 */
    int threads;            /* inference threads for the local model; 0 = backend default */
    volatile sig_atomic_t *stop; /* set non-zero to stop run/SUBSCRIBE; may be NULL */
    FILE *live;             /* where SUBSCRIBE prints changes as they happen; NULL = stdout */
    int progress;           /* 1: print a progress line to stderr every few seconds of work */
    int views_off;          /* 1: never run the views here, only read them and write to streams (as
                               when another process runs them: see README "Several processes") */
    int catch_up;           /* 1: bring the views up to date (run until idle) before each
                               SELECT, SHOW, EXPLAIN or SUBSCRIBE, so scripts read caught-up views */
} ss_engine_opts_t;

int ss_engine_open(const ss_engine_opts_t *opts, ss_engine_t **out, char *err, size_t errsz);
/* Finishes nothing in flight (call between steps); NULL-safe. */
void ss_engine_close(ss_engine_t *e);

/* Parses and runs every statement of sql (name prefixes error positions, may be NULL).
 * Results (tables of SELECT/SHOW/EXPLAIN, "CREATE VIEW" tags...) are appended to out,
 * or, when out is NULL, printed to opts.live (stdout) as each statement finishes.
 * Stops at the first failing statement; err then says which and where (line:column). */
int ss_engine_exec(ss_engine_t *e, const char *sql, size_t len, const char *name, ss_buf_t *out,
                   char *err, size_t errsz);

/* Waits until every view has consumed its inputs up to their ends as of the call and
 * committed (SS_OK). timeout_ms < 0: no limit, else SS_ERR_TIMEOUT after it. opts.stop
 * set: SS_ERR_CANCELED. Either way err says how much input was left, e.g.
 * "interrupted with 1234 messages of input not yet applied". Prints progress to stderr
 * (opts.progress) at least once a second while it waits. */
int ss_engine_run_until_idle(ss_engine_t *e, int timeout_ms, char *err, size_t errsz);
/* Keeps the views current (they run in their own threads) until opts.stop is set,
 * printing progress (opts.progress). */
int ss_engine_run(ss_engine_t *e, char *err, size_t errsz);

/* ---- subscriptions: a view's changes as they commit, for any number of readers ----
 * open: with snapshot, the view's current rows come first (as insertions), then every
 * change committed after them, nothing twice and nothing missed. next: appends the text
 * of the changes that arrived (one line per row: "+1 | ..." / "-1 | ..."), waiting up
 * to timeout_ms for the first; SS_ERR_TIMEOUT if none came; SS_ERR_NOTFOUND once the
 * view was dropped; SS_ERR_BUSY if the reader fell more than 64 MiB behind (closed).
 * *changes (may be NULL) gets the number of rows appended. Thread-safe, and needs no
 * statement lock: serve streams SUBSCRIBE while other requests run. */
typedef struct ss_engine_sub ss_engine_sub_t;
int ss_engine_sub_open(ss_engine_t *e, const char *view, int snapshot, ss_engine_sub_t **out, char *err,
                       size_t errsz);
int ss_engine_sub_next(ss_engine_sub_t *s, int timeout_ms, ss_buf_t *out, int64_t *changes, char *err,
                       size_t errsz);
void ss_engine_sub_close(ss_engine_sub_t *s); /* NULL-safe */

/* Queues a JSON-lines file for the stream: it is produced (ss_engine_load_jsonl) as soon
 * as the stream exists: before the next statement runs, or at ss_engine_do_loads. */
int ss_engine_add_load(ss_engine_t *e, const char *stream, const char *path, char *err, size_t errsz);
/* Produces the queued files whose streams exist; SS_ERR_NOTFOUND (naming the stream) if
 * must_exist and a queued stream is still missing. */
int ss_engine_do_loads(ss_engine_t *e, int must_exist, char *err, size_t errsz);
/* Produces every line of a JSON-lines file to the stream's topic; *n = lines sent. */
int ss_engine_load_jsonl(ss_engine_t *e, const char *stream, const char *path, int64_t *n,
                         char *err, size_t errsz);

/* Settings (SET name = value also lands here): batch_size, max_latency_ms,
 * subscribe_limit, subscribe_timeout_ms, result_format ('table', the default, or 'json':
 * a SELECT then prints a JSON array of its column names, then one JSON array per row,
 * REALs always with a '.' or an exponent). SS_ERR_NOTFOUND for unknown names. */
int ss_engine_set(ss_engine_t *e, const char *name, const char *value, char *err, size_t errsz);

/* Appends every view's current rows ("view NAME:" then a table), in creation order. */
int ss_engine_print_views(ss_engine_t *e, ss_buf_t *out, char *err, size_t errsz);

/* Where streams and sinks live: "log /path/state.db.log" or "kafka host:port,...". */
const char *ss_engine_transport(const ss_engine_t *e);
/* Keywords and catalog names for completion; NULL-terminated, caller frees the array only. */
const char **ss_engine_names(ss_engine_t *e);

typedef struct ss_engine_stats {
    int64_t batches;    /* committed micro-batches */
    int64_t messages;   /* input messages consumed */
    int64_t lag;        /* input messages not yet consumed (last measured) */
    int64_t llm_calls;  /* inference requests that reached a model */
    int64_t cache_hits;
    int64_t in_flight;  /* inference requests queued or in a backend now */
    int pipelines, waiting, failing; /* pipelines; those waiting for models; those failing */
} ss_engine_stats_t;
void ss_engine_get_stats(ss_engine_t *e, ss_engine_stats_t *out);

/* Statement splitting for front ends (runtime/sqlsplit.c): length of the first
 * statement of s through its ';' (quotes and comments skipped), or 0 if s holds no
 * complete statement; and whether s holds only whitespace and comments. */
size_t ss_sql_stmt_end(const char *s, size_t n);
int ss_sql_blank(const char *s, size_t n);

#endif
