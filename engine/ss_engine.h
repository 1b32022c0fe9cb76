/*
 * ss_engine.h — the semstream engine: ties the catalog, planner, operators,
 * Kafka connectors and the inference dispatcher together.
 *
 * An engine owns one SQLite state database (catalog, operator state, view
 * tables, input offsets), one dispatcher (with its result cache in
 * "<db>.cache"), an embedded Kafka broker unless brokers are given, and the
 * running operator DAG of every view. ss_engine_exec runs SQL statements;
 * ss_engine_step runs one micro-batch: poll every source, run the DAG in
 * topological order, publish view changes to their sinks, then commit operator
 * state, input offsets and sink sequences in ONE SQLite transaction.
 *
 * Threading: an engine is used from one thread. ss_engine_run and SUBSCRIBE
 * watch opts.stop (set it from a signal handler) to finish cleanly.
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
    const char *brokers;    /* Kafka bootstrap servers; NULL = start an embedded broker */
    const char *model_path; /* default model registered as "local"; NULL = ss_default_model() */
    int batch_size;         /* messages per source per micro-batch; 0 = 1024 */
    int max_latency_ms;     /* longest wait for input in one step; 0 = 100 */
    int threads;            /* inference threads for the local model; 0 = backend default */
    volatile sig_atomic_t *stop; /* set non-zero to stop run/SUBSCRIBE; may be NULL */
    FILE *live;             /* where SUBSCRIBE prints changes as they happen; NULL = stdout */
    int progress;           /* 1: print a progress line to stderr every few seconds of work */
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

/* Runs one micro-batch. *nmsgs (may be NULL) = messages consumed by it. */
int ss_engine_step(ss_engine_t *e, int *nmsgs, char *err, size_t errsz);
/* Steps until every source is caught up with its topic's end and the last batch
 * consumed nothing (or timeout_ms passes: SS_ERR_TIMEOUT; < 0 = no limit; opts.stop
 * also ends it, with SS_OK). */
int ss_engine_run_until_idle(ss_engine_t *e, int timeout_ms, char *err, size_t errsz);
/* Steps until opts.stop is set, with periodic empty ticks when idle. */
int ss_engine_run(ss_engine_t *e, char *err, size_t errsz);

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

const char *ss_engine_brokers(const ss_engine_t *e);
/* Keywords and catalog names for completion; NULL-terminated, caller frees the array only. */
const char **ss_engine_names(ss_engine_t *e);

typedef struct ss_engine_stats {
    int64_t batches;    /* committed micro-batches */
    int64_t messages;   /* input messages consumed */
    int64_t lag;        /* input messages not yet consumed (last measured) */
    int64_t llm_calls;  /* inference requests that reached a model */
    int64_t cache_hits;
} ss_engine_stats_t;
void ss_engine_get_stats(ss_engine_t *e, ss_engine_stats_t *out);

/* Statement splitting for front ends (runtime/sqlsplit.c): length of the first
 * statement of s through its ';' (quotes and comments skipped), or 0 if s holds no
 * complete statement; and whether s holds only whitespace and comments. */
size_t ss_sql_stmt_end(const char *s, size_t n);
int ss_sql_blank(const char *s, size_t n);

#endif
