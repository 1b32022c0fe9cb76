/*
 * plan_int.h — internal interface shared by the catalog (catalog.c), the planner
 * (planner.c, plan_expr.c) and EXPLAIN (explain.c). Not a contract with other
 * modules: everything here may change with the planner.
 *
 * Node ids: a SOURCE node's id is its stream's catalog sequence number (1..999);
 * the nodes of a view get 1000 * (the view's catalog sequence number) + i, where
 * i counts the view's nodes in construction order (its VIEW node last). Sequence
 * numbers come from SQLite AUTOINCREMENT and are never reused, so ids (and the
 * operator state tables st_<id>_* named after them) are stable across restarts,
 * across adding views, and a dropped-then-recreated view never inherits state.
 */
#ifndef SS_PLAN_INT_H
#define SS_PLAN_INT_H

#include "ss_catalog.h"

#define SS_PLAN_IDS_PER_VIEW 1000

/* Catalog sequence number of a stream or view (creation order, never reused); 0 if absent. */
int64_t ss__catalog_seq(const ss_catalog_t *c, ss_ast_object_t obj, const char *name);
/* The sequence number the next view would get (for planning a view not yet stored). */
int64_t ss__catalog_next_view_seq(const ss_catalog_t *c);

/* ---- AST helpers implemented in plan_expr.c ---- */
/* Textual form of an option value: the literal, or the stream name for name=STREAM(x). malloc'd. */
char *ss__opt_text(const ss_ast_option_t *o);
const ss_ast_option_t *ss__opt_find(const ss_ast_options_t *o, const char *name);
/* Appends a copy of every option of `o` to the option array (name lower-cased). */
int ss__opts_copy(const ss_ast_options_t *o, int *n, ss_plan_opt_t **opts);
int ss__opts_add(int *n, ss_plan_opt_t **opts, const char *name, const char *value);
void ss__opts_free(int n, ss_plan_opt_t *opts);
/* Names of the streams and views a query reads (deduplicated, borrowed from the AST). */
int ss__query_refs(const ss_ast_query_t *q, const char **out, int max);
/* Model names a query's semantic operators name with model='..' (borrowed). */
int ss__query_models(const ss_ast_query_t *q, const char **out, int max);


/* ---- name resolution and expression compilation (plan_expr.c) ---- */

/* One FROM item visible in the current row: columns [off, off+n) of the row. */
typedef struct ss__rel {
    const char *name;   /* alias, or the stream/view name (borrowed) */
    const char *table;  /* the stream/view name (borrowed) */
    const char *what;   /* "stream" or "view" */
    int off, n;
    int side;           /* 0 = left/only input, 1 = right input of a SEM_JOIN */
} ss__rel_t;

#define SS__MAX_RELS 16

typedef struct ss__scope {
    int nrels;
    ss__rel_t rels[SS__MAX_RELS];
    const ss_schema_t *schema;  /* the row these rels index (side 0; for two-sided scopes see side_off) */
    const ss_schema_t *side_schema[2]; /* SEM_JOIN: schema of each side (NULL when one-sided) */
} ss__scope_t;

/* Aggregate mapping used once rows are grouped: group columns and aggregate calls. */
typedef struct ss__agg_ref {
    const ss_ast_expr_t *ast; /* the call as written (first occurrence) */
    char *key;                /* canonical text, for deduplication; owned */
    ss_coltype_t type;        /* result type, once the grouping node exists */
    int out_col;              /* its column in the grouped row, once the grouping node exists */
} ss__agg_ref_t;

typedef struct ss__grouping {
    int ngroup;
    int *group_in;            /* input column of each group column; borrowed */
    char **group_key;         /* GROUP BY expression (canonical text) of each group column, NULL for
                                 plain columns; borrowed, may be NULL */
    ss_coltype_t *group_type; /* type of each group column; borrowed (with group_key) */
    int naggs;
    ss__agg_ref_t *aggs;      /* output column = ngroup + index */
} ss__grouping_t;

/* Compiler context: where to put errors and how to treat columns/aggregates/SEM_MAP. */
typedef struct ss__cctx {
    const ss__scope_t *scope;     /* names of the input row */
    const ss__grouping_t *grp;    /* non-NULL: compile against the grouped output */
    int nsem;                     /* SEM_MAP results available as columns */
    const ss_ast_expr_t **sem_ast;
    int *sem_col;
    int allow_now;                /* NOW() may appear (a temporal filter's bound, a snapshot SELECT) */
    char *err;
    size_t errsz;
} ss__cctx_t;

/* Resolves [table.]name in the scope: *side and *col (index within the side's row). */
int ss__resolve_col(const ss__cctx_t *cc, const char *table, const char *name, ss_span_t sp,
                    int *side, int *col);
int ss__compile(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **out);
int ss__is_agg_name(const char *fn);
/* Canonical text of an AST expression (deduplicating aggregates); malloc'd. */
char *ss__ast_key(const ss_ast_expr_t *a);
/* Resolves a template's {col}/{alias.col} references against the scope. span = the
 * template literal's span (errors point inside it). need_side: bit i = must reference side i. */
int ss__template(const ss__cctx_t *cc, const char *tmpl, ss_span_t span, int need_side,
                 ss_template_t **out);
/* ---- types (plan_typing.c) ---- */
int ss__is_num_type(ss_coltype_t t);
int ss__is_unknown_lit(const ss_expr_t *e);
/* PostgreSQL's common type of two types (INT < NUMERIC < REAL; ANY adapts); -1 if none. */
int ss__common_type(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out);
/* Makes *e (compiled from a) of type t: converts literals at plan time, wraps implicit casts;
 * an error names `what` and a's position. */
int ss__coerce(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **e, ss_coltype_t t, const char *what);
int ss__resolve_common(const ss__cctx_t *cc, ss_expr_t **es, const ss_ast_expr_t *const *asts, int n,
                       const char *what, ss_coltype_t *out);
/* A comparison node over l and r (takes both, also on failure). */
int ss__compare(const ss__cctx_t *cc, ss_ast_op_t op, const ss_ast_expr_t *la, ss_expr_t *l,
                const ss_ast_expr_t *ra, ss_expr_t *r, ss_expr_t **out);
int ss__compile_case(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_cast(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_in(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_between(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_func(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);

/* ---- time types (plan_time.c) ---- */
int ss__is_time_type(ss_coltype_t t); /* TIMESTAMP, TIMESTAMPTZ, DATE or INTERVAL */
/* The common type of two of TIMESTAMP, TIMESTAMPTZ, DATE; -1 if not both are one. */
int ss__time_common(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out);
/* Types a +, -, *, / node e (compiled from a) with a time operand. */
int ss__time_arith_type(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
/* SS_OK if a value of type from can be cast to to (a time type on either side), else the error. */
int ss__time_cast_check(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_coltype_t from, ss_coltype_t to);
int ss__is_time_func(const char *name);
int ss__is_now_func(const char *name); /* NOW, CURRENT_TIMESTAMP, LOCALTIMESTAMP, CURRENT_DATE */
int ss__compile_time_func(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
/* CURRENT_TIMESTAMP & co. written as bare names: 1 when compiled (*rc the result), else 0. */
int ss__compile_time_ident(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e, int *rc);

/* CREATE STREAM's time parts (catalog_time.c): timestamp_format (column typmods), WATERMARK
 * (checked, recorded as options watermark, watermark_delay_us, watermark_idle_timeout), a typed
 * ttl_column. opts are the stream's options so far (added to). */
int ss__stream_time(const ss_ast_stmt_t *st, ss_schema_t *sc, int *nopts, ss_plan_opt_t **opts, char *err,
                    size_t errsz);

/* Renders a compiled expression with the names of schema (EXPLAIN). */
int ss__expr_sql(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *out);


/* ---- lowering (planner.c, plan_sem.c) ---- */

/* Planner context of one view (planner.c, plan_sem.c). */
typedef struct ss__pctx {
    const ss_catalog_t *cat;
    ss_plan_t *plan;
    const char *view;           /* the view being planned */
    int64_t id_base;            /* SS_PLAN_IDS_PER_VIEW * view sequence number */
    int nlocal;
    const char *default_model;  /* the view's WITH (model=...) */
    int depth;                  /* views planned on demand (view-on-view) */
    /* WHERE conjuncts pushed below a join, each to the FROM item (alias) it reads only */
    int npush;
    const ss_ast_expr_t *push[64];
    const char *push_to[64];
    int pushed[64];
    char *err;
    size_t errsz;
} ss__pctx_t;

/* Creates a node of the current view and appends it to the plan (which owns it); NULL on OOM. */
ss_plan_node_t *ss__new_node(ss__pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in0, ss_plan_node_t *in1,
                             const char *label);
/* The SOURCE node of a stream (shared) or the VIEW node of a view (planned on demand). */
int ss__input_node(ss__pctx_t *x, const char *name, ss_span_t sp, ss_plan_node_t **out, const char **what);
/* Checks a semantic operator's options and copies them onto n (model= to n->model). */
int ss__sem_options(ss__pctx_t *x, ss_plan_node_t *n, const ss_ast_options_t *o);
/* ss_plan_query with the view's WITH options (default model, sink topic) taken into account. */
int ss__plan_view(const ss_catalog_t *c, const ss_ast_query_t *q, const char *name,
                  const ss_ast_options_t *opts, ss_plan_t **out, char *err, size_t errsz);
/* LLM_GENERATE(...) as one node. */
int ss__plan_generate(ss__pctx_t *x, const ss_ast_generate_t *g, ss_plan_node_t **out);

/* EXPLAIN's strategy line of the time nodes (TEMPORAL, TIMEWIN, EOWC). */
const char *ss__time_strategy(const ss_plan_node_t *n);

/* ---- temporal filters (plan_temporal.c) ---- */
int ss__is_temporal(const ss_ast_expr_t *e); /* e calls NOW(), CURRENT_TIMESTAMP, ... */
/* The TEMPORAL node of the NOW() conjuncts among cj (none: nothing added). */
int ss__plan_temporal(ss__pctx_t *x, const ss_ast_expr_t *const *cj, int ncj, const ss__scope_t *sc,
                      ss_plan_node_t **cur);

/* ---- windows (plan_timewin.c) ---- */
/* *cur (the input of FROM item f, which has a window function) read through a TIMEWIN node. */
int ss__plan_tvf(ss__pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t **cur);
/* EMIT ON WINDOW CLOSE: an EOWC node on *top (at = the query, for errors). */
int ss__plan_eowc(ss__pctx_t *x, ss_span_t at, ss_plan_node_t **top);
/* Marks the GROUP and SEM_AGG nodes of the view whose key holds a window bound (options window_*). */
int ss__mark_window_state(ss__pctx_t *x);

#endif
