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
#include "ss_zset.h" /* ss_coltype_t */

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ss_engine ss_engine_t;

typedef struct ss_engine_opts {
    const char *db_path;    /* SQLite state file; NULL = "semstream.db" */
    const char *brokers;    /* Kafka bootstrap servers; NULL = the durable log "<db_path>.log" */
    const char *group;      /* with brokers: share the inputs' partitions with the other engines of this
                               consumer group (docs/ARCHITECTURE.md §6); NULL = read every partition */
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
    int timeout_ms;         /* > 0: every wait for the views (a script's catch-ups, run_until_idle) and
                               every --load gives up this long after open (SS_ERR_TIMEOUT), as
                               `run --until-idle --timeout-ms N` promises */
    int sync_inference;     /* 1: the old synchronous loop, for comparison (bench/backfill): each
                               batch's model calls block inside its transaction, no read-ahead */
    /* The server's own configuration for models (serve): NULL = no restriction (run, shell).
     * key_envs: the environment variables CREATE MODEL ... api_key_env may name, each "NAME" or
     * "NAME=URL_PREFIX" (the key then goes only to URLs starting with the prefix); NULL-terminated,
     * borrowed. models_dir: backend 'local' paths must resolve (symlinks followed) inside it;
     * relative paths are taken from it. Checked whenever a model is registered, so a model
     * defined earlier under a looser policy does not start either. */
    const char *const *key_envs;
    int key_envs_set;       /* 1: key_envs applies (an empty list allows no variable) */
    const char *models_dir;
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

/* ---- statements from network clients (serve's HTTP and PostgreSQL endpoints) ----
 * Structured results: for each statement that returns rows, columns() once, then row() per
 * row, then done() with PostgreSQL's command tag; other statements call done() only. Tags:
 * "SELECT n", "SHOW n", "EXPLAIN", "CREATE VIEW", "CREATE STREAM", "CREATE MODEL", "DROP VIEW",
 * "INSERT 0 n", "DELETE n", "SET". Cells are text in PostgreSQL's forms (BOOLEAN t/f, REAL
 * the shortest text that reads back exactly), NULL for SQL NULL. EXPLAIN is one TEXT column
 * "QUERY PLAN" with a row per line. A callback that returns non-zero stops the script with
 * that code (err set by the callback's owner). */
typedef struct ss_engine_rs {
    void *ctx;
    int (*columns)(void *ctx, int n, const char *const *names, const ss_coltype_t *types);
    int (*row)(void *ctx, int n, const char *const *cells);
    int (*done)(void *ctx, const char *tag);
} ss_engine_rs_t;

typedef struct ss_exec_opts {
    const ss_engine_rs_t *rs;      /* NULL: text into out, as ss_engine_exec */
    int read_only;                 /* 1: only SELECT, SHOW, EXPLAIN (and SUBSCRIBE); else SS_ERR_DENIED */
    int client;                    /* 1: a network client's script: SUBSCRIBE inside a script is refused
                                      (it would hold the statement lock; clients stream it alone) */
    int timeout_ms;                /* statement time limit: a SELECT (and the catch-up wait before it)
                                      past it fails with SS_ERR_TIMEOUT; 0 = none */
    volatile sig_atomic_t *cancel; /* set non-zero (any thread) to cancel: SS_ERR_CANCELED */
    int describe_only;             /* 1: a SELECT gives its columns (and done "SELECT 0") without reading
                                      rows; statements other than SELECT, SHOW and EXPLAIN do not run */
} ss_exec_opts_t;

/* ss_engine_exec with a client's options (xo may be NULL). */
int ss_engine_exec_ex(ss_engine_t *e, const char *sql, size_t len, const char *name, const ss_exec_opts_t *xo,
                      ss_buf_t *out, char *err, size_t errsz);

/* The streams and views with their columns, for catalogs shown to clients (pgwire's
 * pg_catalog). Views whose plan is not running have ncols = 0. Free with _free. */
typedef struct ss_engine_rel {
    char *name;
    int is_view;             /* 0: a stream */
    char *sql;               /* the CREATE statement as written */
    char *state;             /* views: as SHOW VIEWS says ("running", ...); streams: NULL */
    int ncols;
    char **cols;
    ss_coltype_t *types;
    int *typmods;            /* NUMERIC(p,s) typmods (ss_typmod_make), -1 otherwise */
    int *is_key;
} ss_engine_rel_t;
int ss_engine_relations(ss_engine_t *e, ss_engine_rel_t **out, int *n, char *err, size_t errsz);
void ss_engine_relations_free(ss_engine_rel_t *r, int n);

/* A view's columns (for SUBSCRIBE's row descriptions); SS_ERR_NOTFOUND if it is not running.
 * *names and *types are malloc'd arrays (names' strings too): free with ss_engine_columns_free. */
int ss_engine_view_columns(ss_engine_t *e, const char *view, int *n, char ***names, ss_coltype_t **types,
                           char *err, size_t errsz);
void ss_engine_columns_free(int n, char **names, ss_coltype_t *types);

/* Prometheus text exposition of the engine: per view rows, lag, deltas, LLM calls, cache hits,
 * tokens, errors and state; per model requests in flight, queued and a latency histogram;
 * totals. Appends to out. */
int ss_engine_metrics(ss_engine_t *e, ss_buf_t *out);
/* A view's operator DAG as JSON (what EXPLAIN VIEW prints, with per-operator counters):
 * {"view":..,"state":..,"nodes":[{"id","kind","label","view","inputs":[ids],"batches",
 * "rows_in","rows_out","llm_calls","cache_hits","tokens","detail"}]}. NULL view: every view. */
int ss_engine_dag_json(ss_engine_t *e, const char *view, ss_buf_t *out, char *err, size_t errsz);

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
/* SUBSCRIBE's options, range-checked (unknown names are errors, at line:col of the option):
 * limit (rows, 0 = none), timeout_ms (0 = none; "timeout" is the same, also as '1s'),
 * snapshot (true: the current rows first). Defaults: limit_dflt, timeout_dflt, snapshot. */
struct ss_ast_stmt;
int ss_engine_subscribe_opts(const struct ss_ast_stmt *st, int64_t limit_dflt, int64_t timeout_dflt,
                             int64_t *limit, int64_t *timeout_ms, int *snapshot, char *err, size_t errsz);
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
    int64_t busy_ns;    /* wall time since open with at least one request in a backend */
    int64_t request_ns; /* requests' time in backends since open, summed (/ wall: mean in flight) */
    int pipelines, waiting, failing; /* pipelines; those waiting for models; those failing */
} ss_engine_stats_t;
void ss_engine_get_stats(ss_engine_t *e, ss_engine_stats_t *out);

/* Statement splitting for front ends (runtime/sqlsplit.c): length of the first
 * statement of s through its ';' (quotes and comments skipped), or 0 if s holds no
 * complete statement; and whether s holds only whitespace and comments. */
size_t ss_sql_stmt_end(const char *s, size_t n);
int ss_sql_blank(const char *s, size_t n);

#endif
