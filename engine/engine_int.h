/*
 * engine_int.h — internals shared by the engine's files: engine.c (open, close,
 * statement execution), engine_query.c (SELECT/SHOW/EXPLAIN and table
 * rendering), engine_write.c (INSERT/DELETE/--load producers), engine_models.c
 * (model backends, lazily loaded), scheduler.c (the running DAG and the
 * micro-batch). Documents struct ss_engine and who owns each pointer.
 *
 * The engine reaches the parser, catalog/planner, Kafka connectors, dispatcher
 * and model backends through weak references, so that a build lacking one of
 * those modules still links and reports "not in this build" at run time.
 */
#ifndef SS_ENGINE_INT_H
#define SS_ENGINE_INT_H

#include "ss_ast.h"
#include "ss_backends.h" /* ss_backend_openai_new */
#include "ss_pool.h"     /* ss_backend_workers_new */
#include "ss_catalog.h"
#include "ss_dispatch.h"
#include "ss_embed.h"
#include "ss_engine.h"
#include "ss_infer.h"
#include "ss_kafka.h"
#include "ss_llm.h" /* ss_backend_local_new */
#include "ss_op.h"
#include "ss_plan.h"
#include "ss_store.h"


#define SS_ENG_WEAK(f) extern __typeof__(f) f __attribute__((weak))
SS_ENG_WEAK(ss_parse);
SS_ENG_WEAK(ss_ast_script_free);
SS_ENG_WEAK(ss_ast_option_get);
SS_ENG_WEAK(ss_sem_kind_name);
SS_ENG_WEAK(ss_catalog_open);
SS_ENG_WEAK(ss_catalog_close);
SS_ENG_WEAK(ss_catalog_add_stream);
SS_ENG_WEAK(ss_catalog_add_view);
SS_ENG_WEAK(ss_catalog_add_model);
SS_ENG_WEAK(ss_catalog_drop);
SS_ENG_WEAK(ss_catalog_set);
SS_ENG_WEAK(ss_catalog_get);
SS_ENG_WEAK(ss_catalog_stream);
SS_ENG_WEAK(ss_catalog_view);
SS_ENG_WEAK(ss_catalog_model);
SS_ENG_WEAK(ss_catalog_nstreams);
SS_ENG_WEAK(ss_catalog_stream_at);
SS_ENG_WEAK(ss_catalog_nviews);
SS_ENG_WEAK(ss_catalog_view_at);
SS_ENG_WEAK(ss_catalog_nmodels);
SS_ENG_WEAK(ss_catalog_model_at);
SS_ENG_WEAK(ss_catalog_names);
SS_ENG_WEAK(ss_plan_build);
SS_ENG_WEAK(ss_plan_query);
SS_ENG_WEAK(ss_explain);
SS_ENG_WEAK(ss_broker_start);
SS_ENG_WEAK(ss_broker_bootstrap);
SS_ENG_WEAK(ss_broker_create_topic);
SS_ENG_WEAK(ss_broker_stop);
SS_ENG_WEAK(ss_producer_new);
SS_ENG_WEAK(ss_producer_send);
SS_ENG_WEAK(ss_producer_flush);
SS_ENG_WEAK(ss_producer_destroy);
SS_ENG_WEAK(ss_format_parse);
SS_ENG_WEAK(ss_source_open);
SS_ENG_WEAK(ss_source_poll);
SS_ENG_WEAK(ss_source_positions);
SS_ENG_WEAK(ss_source_lag);
SS_ENG_WEAK(ss_source_cached_lag);
SS_ENG_WEAK(ss_source_get_stats);
SS_ENG_WEAK(ss_source_close);
SS_ENG_WEAK(ss_sink_open);
SS_ENG_WEAK(ss_sink_publish);
SS_ENG_WEAK(ss_sink_flush);
SS_ENG_WEAK(ss_sink_close);
SS_ENG_WEAK(ss_dispatch_open);
SS_ENG_WEAK(ss_dispatch_close);
SS_ENG_WEAK(ss_dispatch_add_model);
SS_ENG_WEAK(ss_dispatch_totals);
SS_ENG_WEAK(ss_embedder_open);
SS_ENG_WEAK(ss_embedder_destroy);
SS_ENG_WEAK(ss_backend_local_new);
SS_ENG_WEAK(ss_backend_openai_new);
SS_ENG_WEAK(ss_backend_workers_new);

/* "the <module> is not in this build" unless fn is linked. */
#define SS_ENG_NEED(fn, module, err, errsz)                                                        \
    do {                                                                                           \
        if (!(fn))                                                                                 \
            return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "%s is not in this build", module);   \
    } while (0)

/* The running DAG (scheduler.c). Arrays are indexed like plan->nodes. */
typedef struct eng_pipe {
    ss_plan_t *plan;        /* owned */
    ss_op_t **ops;          /* owned, one per node */
    ss_zset_t *outs;        /* per-batch output delta of each node */
    ss_zset_t *events;      /* SOURCE nodes: this batch's decoded events */
    ss_source_t **srcs;     /* SOURCE nodes: owned */
    ss_sink_t **sinks;      /* VIEW nodes with a sink topic: owned */
    int64_t *seq;           /* VIEW nodes: next sink sequence */
    int has_sinks;
} eng_pipe_t;

struct ss_engine {
    char *db_path;          /* owned */
    char *cache_path;       /* owned: "<db>.cache" */
    char *brokers;          /* owned: given or the embedded broker's address */
    char *model_path;       /* owned */
    int batch_size, max_latency_ms, threads, progress, catch_up;
    struct eng_load { char *stream, *path; int done; } *loads; /* owned: queued --load files */
    int nloads;
    volatile sig_atomic_t *stop; /* borrowed */
    FILE *live;             /* borrowed */
    int64_t sub_limit, sub_timeout_ms; /* SUBSCRIBE defaults (SET) */
    int result_json;        /* SET result_format = 'json': SELECT prints JSON lines, not a table */

    ss_store_t *store;      /* owned */
    ss_catalog_t *cat;      /* owned */
    ss_dispatch_t *disp;    /* owned; NULL when the dispatcher is not in the build */
    ss_embedder_t *emb;     /* owned; opened when a plan first needs embeddings */
    ss_broker_t *broker;    /* owned; NULL with external brokers */
    ss_producer_t *prod;    /* owned; created on first INSERT/--load */
    eng_pipe_t pipe;
    int pipe_ok;            /* 0: rebuild before the next step (after DDL or a failed batch) */
    int wal_dirty;          /* batches committed since the last idle checkpoint */
    int outbox_pending;     /* published view deltas awaiting delivery confirmation (scheduler.c) */
    int empty_steps;        /* consecutive steps that polled nothing while sources were behind */

    int sub_node;           /* VIEW node whose changes SUBSCRIBE prints, or -1 */
    int64_t sub_changes;    /* changes printed so far */
    ss_buf_t *sub_out;      /* where they go when live is NULL */

    int64_t last_tick_ns, last_progress_ns, work_start_ns;
    ss_engine_stats_t stats;
};

/* scheduler.c */
int eng_pipe_build(ss_engine_t *e, char *err, size_t errsz);
void eng_pipe_free(ss_engine_t *e);
int eng_pipe_ensure(ss_engine_t *e, char *err, size_t errsz);
/* Waits for published sink messages and removes them from the outbox (own transaction). */
int eng_outbox_settle(ss_engine_t *e, char *err, size_t errsz);
int eng_node_index(const ss_engine_t *e, ss_plan_kind_t kind, const char *label); /* -1 if absent */
int64_t eng_view_lag(ss_engine_t *e, const char *view);
void eng_view_stats(ss_engine_t *e, const char *view, ss_op_stats_t *out);

/* engine_query.c */
int eng_select(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_show(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_explain(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_subscribe(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);

/* A result table rendered as aligned text. */
typedef struct eng_table {
    int ncols, nrows, cap;
    char **cells;           /* owned: header row then nrows rows, ncols each */
} eng_table_t;
int eng_table_init(eng_table_t *t, int ncols, const char *const *names);
int eng_table_add(eng_table_t *t, const char *const *cells); /* copies */
void eng_table_render(const eng_table_t *t, ss_buf_t *out);
void eng_table_free(eng_table_t *t);

/* engine_write.c */
int eng_insert(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_delete(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz);
int eng_producer(ss_engine_t *e, ss_producer_t **p, char *err, size_t errsz);
int eng_create_topic(ss_engine_t *e, const char *topic, char *err, size_t errsz);

/* engine_models.c */
int eng_models_register(ss_engine_t *e, char *err, size_t errsz);
int eng_model_add(ss_engine_t *e, const char *name, char *err, size_t errsz);

#endif
