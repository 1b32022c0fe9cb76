/*
 * engine_int.h — internals shared by the engine's files:
 *   engine.c        open, close, statements, settings, the run loops and progress
 *   scheduler.c     the plan split into pipelines: node registry, bootstrap of new
 *                   views, starting and stopping the pipeline threads
 *   pipeline.c      one pipeline's thread: poll, attempt a batch, wait for answers,
 *                   commit, publish, notify subscribers; its status
 *   subscribe.c     subscriptions to a view's changes (SUBSCRIBE, serve)
 *   engine_query.c  SELECT, SHOW, EXPLAIN, SUBSCRIBE and table rendering
 *   engine_write.c  INSERT/DELETE/--load producers
 *   engine_models.c model backends, and the server's policy for them (key_envs, models_dir)
 *   engine_result.c structured results for clients (ss_engine_rs_t), the catalog they see,
 *                   and the guard around a SELECT (what it may read and call, time limit)
 *   engine_metrics.c Prometheus metrics and the operator DAG as JSON
 * Documents struct ss_engine and struct eng_pipe, and who owns each pointer.
 *
 * Threads: the caller's thread runs statements (one at a time: exec_mu); each
 * pipeline runs in a thread of its own with its own SQLite connection; the
 * dispatcher has worker threads per model. The plan is read-only while pipelines
 * run: a statement that changes the catalog stops every pipeline, rebuilds, and
 * starts them again.
 */
#ifndef SS_ENGINE_INT_H
#define SS_ENGINE_INT_H

#include "ss_ast.h"
#include "ss_backends.h" /* ss_backend_openai_config */
#include "ss_catalog.h"
#include "ss_dispatch.h"
#include "ss_embed.h"
#include "ss_engine.h"
#include "ss_infer.h"
#include "ss_connect.h"
#include "ss_llm.h" /* ss_backend_local_new */
#include "ss_op.h"
#include "ss_plan.h"
#include "ss_store.h"

#include <pthread.h>

typedef enum eng_pipe_state {
    EP_STARTING,    /* opening its sources and sinks */
    EP_RUNNING,     /* caught up, or applying batches */
    EP_CATCHING_UP, /* behind its inputs */
    EP_WAITING,     /* a batch waits for model answers */
    EP_FAILING,     /* the last attempt failed (broker, disk, a bug): retrying with backoff */
    EP_STOPPED,
} eng_pipe_state_t;

/* A pipeline: a connected part of the plan (one view, or views that read each
 * other), with its own thread, SQLite connection, sources, sinks and commits.
 * Arrays are indexed like plan->nodes; entries of nodes outside the pipeline stay
 * NULL/empty. Everything but the status block is touched by its thread only while
 * it runs. */
typedef struct eng_pipe {
    ss_engine_t *e;           /* borrowed */
    int *nodes, nn;           /* owned: plan indices of its nodes, in plan (topological) order */
    char *views;              /* owned: its views' names, comma-separated */
    ss_store_t *store;        /* owned: its connection */
    ss_op_t **ops;            /* owned */
    ss_op_stats_t *saved;     /* owned: operator counters at the start of the attempt */
    ss_op_stats_t *base;      /* owned: counters of operator instances closed earlier */
    ss_op_stats_t *shown;     /* owned: counters as of the last commit (guarded by mu) */
    ss_zset_t *outs;          /* per-batch output delta of each node */
    ss_zset_t *events;        /* SOURCE nodes: the open batch's decoded events */
    ss_source_t **srcs;       /* SOURCE nodes: owned */
    ss_sink_t **sinks;        /* VIEW nodes with a sink topic: owned */
    int64_t *seq;             /* VIEW nodes: next sink sequence */
    ss_dispatch_wg_t *wg;     /* owned: the answers its open batch waits for */
    /* time (pipe_time.c): per node, the watermark and due time as of the last commit, and as
     * computed by the attempt in progress; next_due = the earliest due time (µs wall clock) */
    int64_t *wm, *wm_cur, *due, *due_cur;
    int64_t next_due;
    char *boot;               /* owned: nodes still to be fed the views they read (scheduler.c) */
    int booting;              /* some are: the next batch is their bootstrap */
    int opened;               /* sources and sinks are open */
    int batch_open;           /* events polled, not committed yet */
    int64_t batch_rows;       /* events in the open batch */
    int64_t attempt_ns;       /* when the last attempt of the open batch started */
    int64_t wait_start_ns;    /* when the open batch first waited for answers (0: it has not) */
    int outbox_pending;       /* published deltas awaiting delivery confirmation */
    int wal_dirty;
    int64_t last_lag_ns, backoff_ms, fail_log_ns, checkpoint_ns;
    int disk_full;            /* the last failure was a full disk */
    int64_t lag_fail_ns;      /* since when the inputs' ends cannot be read (0: they can) */
    char lag_error[SS_ERRSZ]; /* why not */
    pthread_t th;
    int started, inited;
    volatile int stop;
    pthread_mutex_t commit_mu;/* held around COMMIT and handing the deltas to subscribers */

    pthread_mutex_t mu;       /* guards the status block and the stats of ops */
    pthread_cond_t cv;        /* status changed (commit, idle, stop) */
    eng_pipe_state_t state;
    char error[SS_ERRSZ];     /* EP_FAILING: the last failure */
    int fatal;                /* EP_FAILING: it needs the user (see pipeline.c needs_user) */
    int64_t failing_since_ms; /* wall clock of the first failure in a row */
    int64_t next_retry_ms;
    char model[64];           /* EP_WAITING: the model it waits for */
    int64_t lag;              /* input messages not consumed (last measured; -1 unknown) */
    int64_t batches, messages;/* committed batches, input messages consumed */
    int64_t failures;         /* failed attempts since the pipeline started (/metrics) */
    uint64_t idle_gen;        /* the last idle request it confirmed (see ss_engine_run_until_idle) */
    uint64_t want_idle;       /* the idle request it is asked to confirm */
    int wake;                 /* eng_pipe_wake: the poll in progress ends now (atomic) */
} eng_pipe_t;

/* A subscription to one view's changes (subscribe.c). */
typedef struct eng_sub eng_sub_t;

struct ss_engine {
    char *db_path;          /* owned */
    char *cache_path;       /* owned: "<db>.cache" */
    ss_transport_t *transport; /* owned: the durable log beside db_path, or Kafka (--brokers) */
    char *model_path;       /* owned */
    int batch_size, max_latency_ms, threads, progress, catch_up;
    int sync_inference;     /* opts.sync_inference: pipelines call the dispatcher blocking */
    int64_t deadline_ns;    /* opts.timeout_ms after open (0: none): waits and loads give up then */
    volatile sig_atomic_t load_stop; /* a --load stops: *stop was set or the deadline passed */
    struct eng_load { char *stream, *path; int done; } *loads; /* owned: queued --load files */
    int nloads;
    volatile sig_atomic_t *stop; /* borrowed */
    FILE *live;             /* borrowed */
    int64_t sub_limit, sub_timeout_ms; /* SUBSCRIBE defaults (SET) */
    int result_json;        /* SET result_format = 'json': SELECT prints JSON lines, not a table */

    pthread_mutex_t exec_mu;/* one statement at a time (ss_engine_exec from any thread) */
    ss_store_t *store;      /* owned: the statements' connection */
    ss_catalog_t *cat;      /* owned */
    ss_dispatch_t *disp;    /* owned */
    ss_embedder_t *emb;     /* owned; opened when a plan first needs embeddings */
    ss_producer_t *prod;    /* owned; created on first INSERT/--load */
    ss_plan_t *plan;        /* owned: every view's plan; NULL when there is none or it failed */
    char plan_error[SS_ERRSZ]; /* why the views do not run ("" when they do) */
    eng_pipe_t **pipes;     /* owned */
    int npipes;
    struct eng_kept { int id; ss_op_stats_t s; } *kept; /* owned: counters of stopped pipelines' nodes, */
    int nkept;              /* by node id, carried into the next pipelines (rebuilds keep them) */

    int reader;             /* 1: another process runs the views (leader.c) */
    int may_lead;           /* 0: never run the views (opts.views_off) */
    int lock_fd;            /* "<db>.lock", held with flock by the process that runs the views */
    long leader_pid;        /* reader: the process that runs them (0 if unknown) */

    pthread_mutex_t mu;     /* guards subs, idle_req and the cv */
    pthread_cond_t cv;      /* a pipeline committed, went idle, or changed state */
    eng_sub_t *subs;        /* owned list */
    uint64_t idle_req;      /* the latest idle confirmation asked of the pipelines */
    uint64_t events;        /* commits, idle confirmations and state changes so far (with cv) */

    int64_t last_progress_ns, work_start_ns, progress_msgs0;
    ss_engine_stats_t stats;

    const ss_exec_opts_t *xo; /* the running script's client options (under exec_mu); NULL = none */
    int xo_emitted;         /* the running statement already gave its client a table (eng_table_emit) */
    int64_t idle_from_ns;   /* the last run_until_idle that succeeded had started then (under exec_mu): a
                               client's read that arrived before it need not catch up again */
    char **key_envs;        /* owned, NULL-terminated: allowed api_key_env entries (opts.key_envs) */
    int key_envs_set;       /* 1: key_envs applies */
    char *models_dir;       /* owned: realpath of opts.models_dir; NULL = any path */
};

/* scheduler.c */
/* Stops the pipelines, plans every view, registers new nodes (bootstrapping them from the
 * views they read), and starts one pipeline per connected part of the plan. On failure
 * nothing committed changes and the views stay stopped (plan_error says why). */
int eng_rebuild(ss_engine_t *e, char *err, size_t errsz);
void eng_pipes_stop(ss_engine_t *e);   /* stops and frees every pipeline */
int eng_node_index(const ss_engine_t *e, ss_plan_kind_t kind, const char *label); /* -1 if absent */
eng_pipe_t *eng_pipe_of(ss_engine_t *e, int node);                              /* NULL if none */
/* A view's counters summed over its nodes, its lag and its pipeline's state, as SHOW VIEWS
 * prints them: state is e.g. "running", "catching up", "waiting on model m (...)". */
void eng_view_status(ss_engine_t *e, const char *view, ss_op_stats_t *stats, int64_t *lag, char *state,
                     size_t statesz);
/* Counters a node (by id) had when its last pipeline stopped (zero if none). */
void eng_kept_stats(ss_engine_t *e, int id, ss_op_stats_t *out);
/* Counters of plan node i (zero if it has no operator). */
void eng_node_stats(ss_engine_t *e, int i, ss_op_stats_t *out);

/* pipeline.c */
int eng_pipe_start(eng_pipe_t *p, char *err, size_t errsz);
void eng_pipe_stop(eng_pipe_t *p); /* asks it to stop, joins its thread */
void eng_pipe_free(eng_pipe_t *p); /* after stop; NULL-safe */
/* A statement asks for an idle confirmation (e->idle_req): a pipeline waiting for input
 * stops waiting and answers now, instead of when its wait (max_latency_ms) ends. */
void eng_pipe_wake(eng_pipe_t *p);
/* The positions key of SOURCE node n in ss_offsets. */
void eng_source_key(const ss_plan_node_t *n, char *buf, size_t bufsz);

/* ---- time (pipe_time.c): watermarks and the timer of a pipeline ---- */
int eng_time_alloc(eng_pipe_t *p);
void eng_time_free(eng_pipe_t *p);
void eng_time_reset(eng_pipe_t *p);   /* the pipeline closed: nothing is known any more */
/* After source node i opened: its WATERMARK (if any), with the state committed under key. */
int eng_time_open_source(eng_pipe_t *p, int i, const char *key, char *err, size_t errsz);
/* In the batch's transaction: source node i's watermark state, under key. */
int eng_time_store(eng_pipe_t *p, int i, const char *key, char *err, size_t errsz);
/* Around a node's apply in an attempt: its clock and watermark; then its advance hook. */
void eng_time_before(eng_pipe_t *p, int i, int64_t now_us);
int eng_time_after(eng_pipe_t *p, int i, ss_op_ctx_t *ctx, char *err, size_t errsz);
void eng_time_committed(eng_pipe_t *p);
int eng_time_tick_due(eng_pipe_t *p);          /* an empty batch is due now */
int eng_time_poll_ms(eng_pipe_t *p, int max_ms); /* how long a poll may wait before it is */
/* Encoded outbox deltas (shared with the bootstrap in scheduler.c). */
int eng_encode_delta(const ss_zset_t *z, ss_buf_t *out);

/* subscribe.c */
/* Called by a pipeline after each commit with a VIEW node's delta (under no lock). */
void eng_subs_publish(ss_engine_t *e, const char *view, const ss_zset_t *delta, const ss_schema_t *schema);
void eng_subs_close_all(ss_engine_t *e, const char *view); /* NULL: every subscription */

/* engine_query.c */
int eng_select(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_show(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_explain(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int64_t eng_view_rows(ss_engine_t *e, const char *view); /* rows with multiplicity; -1 if unknown */
int eng_subscribe(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);

/* A result table rendered as aligned text. */
typedef struct eng_table {
    int ncols, nrows, cap;
    char **cells;           /* owned: header row then nrows rows, ncols each */
    ss_coltype_t *types;    /* owned, optional: column types for structured results (NULL = TEXT) */
} eng_table_t;
int eng_table_init(eng_table_t *t, int ncols, const char *const *names);
int eng_table_add(eng_table_t *t, const char *const *cells); /* copies */
void eng_table_render(const eng_table_t *t, ss_buf_t *out);
void eng_table_free(eng_table_t *t);

/* engine_result.c */
/* The table as the running script wants it: to its client's callbacks (e->xo->rs, with the
 * tag "<verb> <rows>"), else rendered as text into out. */
int eng_table_emit(ss_engine_t *e, eng_table_t *t, const char *verb, ss_buf_t *out);
/* Sets column types of t (copied); with types NULL, infers INT/REAL/TEXT from the cells. */
int eng_table_set_types(eng_table_t *t, const ss_coltype_t *types);
/* After statement st ran for a client with callbacks: EXPLAIN's text becomes rows of
 * "QUERY PLAN", other statements' text becomes the command tag. text = what st appended. */
int eng_result_finish(ss_engine_t *e, const ss_ast_stmt_t *st, const char *text, size_t len, char *err,
                      size_t errsz);
/* SELECT's guard on the statements' connection: reads only view tables, calls only allowed
 * functions, stops at the script's time limit or cancel flag. end restores the connection. */
typedef struct eng_guard {
    ss_engine_t *e;
    int64_t deadline_ns;    /* 0 = none */
    volatile sig_atomic_t *cancel;
    int stopped;            /* SS_ERR_TIMEOUT or SS_ERR_CANCELED once it stopped the statement */
    char denied[160];       /* what the authorizer refused */
    int old_len;
} eng_guard_t;
void eng_guard_begin(ss_engine_t *e, eng_guard_t *g);
void eng_guard_end(ss_engine_t *e, eng_guard_t *g);
/* The error for a statement that failed under the guard (rc from SQLite's prepare or step). */
int eng_guard_error(const eng_guard_t *g, const char *sqlite_msg, char *err, size_t errsz);

/* engine_write.c */
int eng_insert(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_delete(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_producer(ss_engine_t *e, ss_producer_t **p, char *err, size_t errsz);
/* Opens e->transport: Kafka at brokers when given, else the log "<db>.log". */
int eng_transport_open(ss_engine_t *e, const char *brokers, char *err, size_t errsz);
/* Makes sure topic exists with the partitions and retention of the stream or view sink that names it. */
int eng_create_topic(ss_engine_t *e, const char *topic, char *err, size_t errsz);

/* engine.c: a --load's progress line, with the views' (ss_load_opts_t.progress) */
typedef struct eng_load_progress {
    ss_engine_t *e;
    const char *stream, *path;
    int64_t start_ns;
} eng_load_progress_t;
void eng_load_progress(void *ctx, int64_t lines, int64_t bytes, int64_t size);

/* leader.c */
int eng_leader_open(ss_engine_t *e, int run_views);  /* decides leader or reader */
void eng_leader_close(ss_engine_t *e);
int eng_leader_check(ss_engine_t *e, char *err, size_t errsz); /* a reader takes over a gone leader */
int eng_catalog_reload(ss_engine_t *e, char *err, size_t errsz);
int eng_reader_refuse(ss_engine_t *e, const char *what, char *err, size_t errsz); /* SS_OK for the leader */
int64_t eng_reader_lag(ss_engine_t *e, const char *view); /* NULL: every view; -1 unknown */

/* engine_models.c */
int eng_models_register(ss_engine_t *e, char *err, size_t errsz);
/* Registers catalog model name with the dispatcher; load_now: load a local model's file
 * now (CREATE MODEL), so a missing or bad file is the statement's error. */
int eng_model_add(ss_engine_t *e, const char *name, int load_now, char *err, size_t errsz);
/* Parses WITH (max_in_flight = v): 1..100000. */
int eng_model_capacity(const char *v, int *out, char *err, size_t errsz);
/* Copies opts' key_envs and models_dir into e (at open). */
int eng_models_policy_init(ss_engine_t *e, const ss_engine_opts_t *opts, char *err, size_t errsz);
void eng_models_policy_free(ss_engine_t *e);

/* Blocks the signals a terminal sends (SIGINT, SIGTERM, SIGQUIT, SIGHUP) and SIGPIPE in
 * the calling thread, so threads it creates never take them; restore with the old set. */
void eng_block_signals(sigset_t *old);
void eng_restore_signals(const sigset_t *old);

#endif
