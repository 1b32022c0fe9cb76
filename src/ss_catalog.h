/*
 * ss_catalog.h — the catalog of streams, views and models, persisted in the
 * engine's SQLite database (tables ss_streams, ss_views, ss_models, ss_settings)
 * as their defining SQL, re-parsed on open. Also the planner entry points.
 * The catalog owns every entry and the parsed statements behind them.
 */
#ifndef SS_CATALOG_H
#define SS_CATALOG_H

#include "ss_ast.h"
#include "ss_plan.h"

#include <sqlite3.h>

typedef struct ss_cat_stream {
    char *name;
    ss_schema_t *schema;
    char *topic;          /* WITH (topic=...), default = name */
    char *format;         /* json | debezium | upsert */
    int nopts;
    ss_plan_opt_t *opts;  /* every WITH option, textual (ttl, ttl_column, dlq_topic, ...) */
    char *sql;            /* defining statement */
} ss_cat_stream_t;

typedef struct ss_cat_view {
    char *name;
    char *sql;
    ss_ast_stmt_t *stmt;  /* parsed CREATE CONTINUOUS VIEW */
    char *sink_topic;     /* WITH (sink_topic=...) or NULL */
    int nopts;
    ss_plan_opt_t *opts;
    int64_t created_ms;
} ss_cat_view_t;

typedef struct ss_cat_model {
    char *name;
    char *backend;        /* local | openai */
    int nopts;
    ss_plan_opt_t *opts;  /* path, url, api_key_env, model, timeout_ms, ... */
    char *sql;
} ss_cat_model_t;

typedef struct ss_catalog ss_catalog_t;

/* Creates the catalog tables if needed and loads (re-parses) every entry. db is borrowed. */
int ss_catalog_open(sqlite3 *db, ss_catalog_t **out, char *err, size_t errsz);
void ss_catalog_close(ss_catalog_t *c);

/* Validate and persist. Errors carry line:column of the offending part of stmt. */
int ss_catalog_add_stream(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz);
int ss_catalog_add_view(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz);
int ss_catalog_add_model(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz);
/* Refuses to drop a stream or view that a view reads (SS_ERR_INVALID, naming the dependants). */
int ss_catalog_drop(ss_catalog_t *c, ss_ast_object_t obj, const char *name, int if_exists,
                    char *err, size_t errsz);
int ss_catalog_set(ss_catalog_t *c, const char *name, const char *value, char *err, size_t errsz);
const char *ss_catalog_get(const ss_catalog_t *c, const char *name); /* setting or NULL */

const ss_cat_stream_t *ss_catalog_stream(const ss_catalog_t *c, const char *name);
const ss_cat_view_t *ss_catalog_view(const ss_catalog_t *c, const char *name);
const ss_cat_model_t *ss_catalog_model(const ss_catalog_t *c, const char *name);
int ss_catalog_nstreams(const ss_catalog_t *c);
const ss_cat_stream_t *ss_catalog_stream_at(const ss_catalog_t *c, int i);
int ss_catalog_nviews(const ss_catalog_t *c);   /* in creation order (dependencies first) */
const ss_cat_view_t *ss_catalog_view_at(const ss_catalog_t *c, int i);
int ss_catalog_nmodels(const ss_catalog_t *c);
const ss_cat_model_t *ss_catalog_model_at(const ss_catalog_t *c, int i);
/* Names of streams, views, models and columns (for shell tab completion); NULL-terminated, caller frees array only. */
const char **ss_catalog_names(const ss_catalog_t *c);

/* ---- planner (src/planner.c) ---- */
/* The DAG of every view in the catalog: shared SOURCE nodes, one VIEW node per view,
 * views reading views through that view's VIEW node. */
int ss_plan_build(const ss_catalog_t *c, ss_plan_t **out, char *err, size_t errsz);
/* The plan of one query as if it were view `name` (for EXPLAIN <query> and for validating
 * CREATE VIEW before it is stored). */
int ss_plan_query(const ss_catalog_t *c, const ss_ast_query_t *q, const char *name, ss_plan_t **out,
                  char *err, size_t errsz);
/* Readable DAG, one node per line: id, operator, inputs, template/params, incremental strategy.
 * only_view = NULL prints every node. */
int ss_explain(const ss_plan_t *p, const char *only_view, ss_buf_t *out);
/* One node's EXPLAIN line ("#3 FILTER  in=#2  pred=...  -- strategy"), without the newline;
 * and the strategy text alone. */
int ss_explain_node(const ss_plan_node_t *n, ss_buf_t *out);
const char *ss_explain_strategy(const ss_plan_node_t *n);

#endif
