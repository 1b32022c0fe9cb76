/*
 * ss_op.h — the uniform operator interface. Every operator (one file in operators/) is
 * created from one plan node and implements: init (create or reload its state
 * tables in SQLite), apply (consume a delta batch on an input port and emit the
 * output delta), snapshot (the integrated output, where the operator keeps it),
 * rollback (forget uncommitted in-memory state), destroy. Operators keep their state in SQLite tables named st_<node id>_*, in
 * the engine's database; the scheduler wraps each micro-batch in a transaction,
 * so an operator never commits by itself.
 *
 * Invariant every operator test checks: integrating the outputs equals
 * recomputing the operator over the integrated inputs.
 */
#ifndef SS_OP_H
#define SS_OP_H

#include "ss_infer.h"
#include "ss_plan.h"
#include "ss_zset.h"

#include <sqlite3.h>

struct ss_dispatch;
struct ss_embedder;

typedef enum ss_op_kind {
    SS_OPK_LINEAR,    /* filter, map, project, union: their own incremental version */
    SS_OPK_BILINEAR,  /* joins: dA⋈B + A⋈dB + dA⋈dB */
    SS_OPK_NONLINEAR, /* distinct, group, top-k, sem_agg: keep integrated state, emit differences */
} ss_op_kind_t;

/* What the engine lends an operator while it runs (none of it owned by the operator). */
typedef struct ss_op_ctx {
    sqlite3 *db;                  /* state store; a transaction is open during apply */
    struct ss_dispatch *disp;     /* inference dispatcher; NULL when no model is configured */
    struct ss_embedder *emb;      /* embedder for pruning/retrieval; may be NULL */
} ss_op_ctx_t;

typedef struct ss_op_stats {
    int64_t batches;     /* apply calls with a non-empty input */
    int64_t rows_in;     /* input entries (|weight| not counted) */
    int64_t rows_out;
    ss_infer_stats_t infer; /* inference spent by this operator */
} ss_op_stats_t;

typedef struct ss_op ss_op_t;

typedef struct ss_op_vtable {
    const char *name;   /* "filter", "sem_agg", ... */
    ss_op_kind_t kind;
    /* Creates its state tables if absent and loads what it keeps in memory. */
    int (*init)(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz);
    /* Consumes `in` (a delta on input `port`) and appends its output delta to `out`. */
    int (*apply)(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                 char *err, size_t errsz);
    /* Appends the operator's current integrated output to out; NULL if it keeps none. */
    int (*snapshot)(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz);
    /* Short description of the incremental strategy (EXPLAIN), e.g. "1 call per changed row". */
    const char *(*strategy)(const ss_op_t *op);
    void (*destroy)(ss_op_t *op); /* frees impl (not the ss_op_t) */
    /* The engine rolled back the batch in progress (its answers were not all in, or it
     * failed): forget whatever in-memory state changed since the last commit, so the next
     * attempt starts from the committed tables. NULL: the operator keeps all its state
     * in SQLite. */
    void (*rollback)(ss_op_t *op);
} ss_op_vtable_t;

struct ss_op {
    const ss_op_vtable_t *vt;
    const ss_plan_node_t *node; /* not owned: the plan outlives its operators */
    ss_op_stats_t stats;
    void *impl;                 /* operator-private; freed by vt->destroy */
};

/* Creates the operator for a plan node (looks up the constructor for node->kind).
 * SS_ERR_UNSUPPORTED if this build has no operator for the kind. */
int ss_op_new(const ss_plan_node_t *node, ss_op_t **out, char *err, size_t errsz);
void ss_op_destroy(ss_op_t *op); /* NULL-safe */

/* A row an expression could not be computed on (ss_expr_eval gave SS_ERR_INVALID: division by
 * zero, an invalid cast, ...): err becomes "view V: row {..}: line:col: reason" and the batch
 * fails with it, as PostgreSQL fails the statement (docs/SQL.md "Run-time errors"). */
int ss_op_row_error(const ss_op_t *op, const ss_row_t *row, char *err, size_t errsz);

/* Per-kind constructors, implemented in operators/<name>.c. Each fills op->vt and op->impl. */
typedef int (*ss_op_ctor_fn)(ss_op_t *op, char *err, size_t errsz);
int ss_op_source_init(ss_op_t *op, char *err, size_t errsz);      /* source.c */
int ss_op_filter_init(ss_op_t *op, char *err, size_t errsz);      /* filter.c */
int ss_op_project_init(ss_op_t *op, char *err, size_t errsz);     /* project.c */
int ss_op_union_init(ss_op_t *op, char *err, size_t errsz);       /* union.c */
int ss_op_distinct_init(ss_op_t *op, char *err, size_t errsz);    /* distinct.c */
int ss_op_join_init(ss_op_t *op, char *err, size_t errsz);        /* join.c */
int ss_op_group_init(ss_op_t *op, char *err, size_t errsz);       /* group.c */
int ss_op_topk_init(ss_op_t *op, char *err, size_t errsz);        /* topk.c */
int ss_op_sem_filter_init(ss_op_t *op, char *err, size_t errsz);  /* sem_filter.c */
int ss_op_sem_map_init(ss_op_t *op, char *err, size_t errsz);     /* sem_map.c */
int ss_op_sem_join_init(ss_op_t *op, char *err, size_t errsz);    /* sem_join.c */
int ss_op_sem_topk_init(ss_op_t *op, char *err, size_t errsz);    /* sem_topk.c */
int ss_op_sem_agg_init(ss_op_t *op, char *err, size_t errsz);     /* sem_agg.c */
int ss_op_llm_generate_init(ss_op_t *op, char *err, size_t errsz);/* llm_generate.c */
int ss_op_view_init(ss_op_t *op, char *err, size_t errsz);        /* view.c */
int ss_op_setop_init(ss_op_t *op, char *err, size_t errsz);       /* setop.c */
int ss_op_semijoin_init(ss_op_t *op, char *err, size_t errsz);    /* semijoin.c */
int ss_op_window_init(ss_op_t *op, char *err, size_t errsz);      /* window.c */
int ss_op_sem_extract_init(ss_op_t *op, char *err, size_t errsz); /* sem_extract.c */
int ss_op_sem_classify_init(ss_op_t *op, char *err, size_t errsz);/* sem_classify.c */
int ss_op_sem_simjoin_init(ss_op_t *op, char *err, size_t errsz); /* sem_simjoin.c */
int ss_op_sem_search_init(ss_op_t *op, char *err, size_t errsz);  /* sem_search.c */
int ss_op_sem_dedup_init(ss_op_t *op, char *err, size_t errsz);   /* sem_dedup.c */
int ss_op_sem_group_init(ss_op_t *op, char *err, size_t errsz);   /* sem_group.c */

/* The name of a view table's internal column `base` ("_id", "_mult", "_k", "_h", "_x") for a
 * view of schema s: base with '_' appended until no user column has that name (view.c; readers
 * of view_<name> tables use it too). Returns buf. */
const char *ss_view_internal(const ss_schema_t *s, const char *base, char *buf, size_t n);

#endif
