/*
 * dt.h — the differential tester's shared types (tests/difftest, see README.md): a case is a
 * random schema (streams with typed columns, keyed or not), a history of deltas (inserts,
 * upserts, key changes, deletes of present and absent rows, duplicates, NULLs, unicode) and
 * random views in SQL text. gen.c builds cases from two tables — the expression generators
 * (dt_exprgens, gen_expr.c) and the query-shape generators (dt_shapes, gen_shape.c) — which
 * are the extension point: a new SQL feature is one more entry in one of them. main.c drives
 * the engine with the SQL text of a case and compares every view, as a multiset, with SQLite
 * or PostgreSQL (the view's dialect) running the same SQL over the data the history leaves.
 */
#ifndef SS_DT_H
#define SS_DT_H

#include "ss_zset.h"

#include <stdint.h>

/* ---- randomness ---- */
typedef struct dt_rng {
    uint64_t s;
} dt_rng_t;

uint64_t dt_next(dt_rng_t *r);
int dt_int(dt_rng_t *r, int n);   /* uniform in [0, n) */
int dt_pct(dt_rng_t *r, int p);   /* 1 with probability p % */

/* ---- types ---- */
/* DT_NTYPES counts the four basic types (any_type draws from them). NUMERIC and JSON appear in
 * views compared with PostgreSQL only (SQLite has neither); DT_ARR is an ARRAY_AGG result, which
 * no expression reads (it passes through SELECT * only). TIMESTAMP, DATE and INTERVAL (issue 13)
 * are read only by the time shapes (gen_time.c), in views compared with PostgreSQL. */
typedef enum dt_type {
    DT_INT, DT_REAL, DT_TEXT, DT_BOOL, DT_NTYPES, DT_NUM = DT_NTYPES, DT_JSON, DT_ARR, DT_TS, DT_DATE, DT_IVL
} dt_type_t;

const char *dt_type_sql(dt_type_t t); /* INT, REAL, TEXT, BOOLEAN, NUMERIC, JSON, TIMESTAMP, DATE, INTERVAL */

/* ---- a case ---- */
#define DT_MAXCOLS 6
#define DT_MAXSTREAMS 3
#define DT_MAXVIEWS 6

/* A relation a query can read: a stream, or an earlier view (with its query text). */
typedef struct dt_rel {
    char name[16];
    int ncols;
    char cols[DT_MAXCOLS][16];
    dt_type_t types[DT_MAXCOLS];
    int keyed;                 /* streams: 1 when column 0 is the KEY */
    char *sql;                 /* views: the query after AS (semstream's and SQLite's text); owned */
    char *pgsql;               /* views: the same for PostgreSQL (NULLS FIRST/LAST said); owned */
    const char *shape;         /* views: the query-shape generator that made it */
    int pg;                    /* views: written in PostgreSQL's dialect and compared with PostgreSQL
                                * (they may use what SQLite lacks or does differently: ILIKE, CAST,
                                * NUMERIC, JSON, string_agg ...); they read only streams and other
                                * such views. 0: SQLite's dialect, compared with SQLite */
} dt_rel_t;

typedef struct dt_op {         /* one delta of the history */
    int stream;
    int del;                   /* 0 insert (an upsert on a keyed stream), 1 delete */
    ss_row_t *row;             /* owned; a keyed delete needs only the key column */
} dt_op_t;

typedef struct dt_case {
    uint64_t seed;
    int nstreams;
    dt_rel_t s[DT_MAXSTREAMS];
    int nviews;
    dt_rel_t v[DT_MAXVIEWS];
    int nops;
    dt_op_t *ops;              /* owned */
    int ncheck;
    int check[4];              /* compare the views after these many ops (the last = nops) */
    int restart_at;            /* close and reopen the engine after this many ops; -1 = never */
} dt_case_t;

/* Generates case number `seed` (deterministic). */
int dt_case_gen(uint64_t seed, dt_case_t *c);
/* --only PREFIX: views only from the shapes whose name starts with it (NULL: all). "time" also
 * gives every stream a TIMESTAMP column and draws every view in PostgreSQL's dialect. */
extern const char *dt_only;
void dt_case_free(dt_case_t *c);

/* ---- the extension tables (gen_expr.c, gen_shape.c) ---- */

/* What an expression may use: the visible columns and, in a grouped query, the group keys and
 * aggregates. */
typedef struct dt_col {
    char sql[48];              /* how to write it: "c1", "a.c1" or a GROUP BY expression */
    dt_type_t type;
} dt_col_t;

typedef struct dt_gen {
    dt_rng_t *rng;
    int ncols;
    dt_col_t cols[24];         /* input columns (inside aggregates, or when not grouped) */
    int grouped;               /* outside aggregates only group keys and aggregates may appear */
    int ngroup;
    dt_col_t group[6];         /* the GROUP BY expressions */
    int in_agg;                /* generating an aggregate's argument */
    int pg;                    /* the view is compared with PostgreSQL (dt_rel_t.pg) */
} dt_gen_t;

/* An expression generator: writes an expression of type t (depth > 0 allows subexpressions)
 * to out and returns 1, or returns 0 when it cannot make one here (nothing is written then). */
typedef struct dt_exprgen {
    const char *name;
    unsigned types;            /* bit (1 << type) for every result type it can make */
    int composite;             /* 1: has subexpressions (needs depth > 0) */
    int weight;
    int (*gen)(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out);
} dt_exprgen_t;

extern const dt_exprgen_t dt_exprgens[];
extern const int dt_nexprgens;

/* Writes a random expression of type t. Always succeeds (falls back to a literal). */
void dt_expr(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out);

/* A query-shape generator: writes a view's query (the text after AS) to out, reading the
 * streams and the earlier views of c, and fills v's output columns (names and types); returns
 * 0 when it cannot here (e.g. a join needs two relations with columns of one type). */
typedef struct dt_shape {
    const char *name;
    int weight;
    int (*gen)(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
} dt_shape_t;

extern const dt_shape_t dt_shapes[];
extern const int dt_nshapes;

/* ---- shared by gen.c, gen_expr.c and gen_shape.c ---- */
ss_value_t dt_value(dt_rng_t *r, dt_type_t t, int nullable);       /* a random value of type t */
int dt_column(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out); /* a visible column of type t */
void dt_order_key(dt_gen_t *g, const char *expr, ss_buf_t *out);   /* "expr [DESC]<NULLs marker>" */
dt_type_t dt_any_type(dt_rng_t *r);                                /* a column type for an output */
extern int dt_pgmode; /* the dialect of the view being drawn (1: PostgreSQL), set by dt_case_gen */

/* SQL literal of a value of type t. */
void dt_literal(const ss_value_t *v, dt_type_t t, ss_buf_t *out);

/* ORDER BY keys end with a marker (DT_ASC_END / DT_DESC_END) where PostgreSQL needs to be told
 * where NULLs go: semstream (like SQLite) sorts NULLs first ascending and last descending,
 * PostgreSQL the other way round. dt_sql() writes a view's query for semstream and SQLite
 * (markers dropped) or for PostgreSQL (" NULLS FIRST" / " NULLS LAST"). */
#define DT_ASC_END '\x01'
#define DT_DESC_END '\x02'
/* Text between DT_SS_ONLY and DT_ALT_END is semstream's (and SQLite's) only, between DT_PG_ONLY
 * and DT_ALT_END PostgreSQL's only: a window table function and the GROUP BY over a bucket
 * expression that computes it in PostgreSQL (gen_time.c). */
#define DT_SS_ONLY '\x03'
#define DT_PG_ONLY '\x04'
#define DT_ALT_END '\x05'
void dt_sql(const char *q, int for_pg, ss_buf_t *out);

/* ---- time (gen_time.c) ---- */
ss_value_t dt_time_value(dt_rng_t *r, dt_type_t t); /* a TIMESTAMP or DATE near 2024-02-29 */
int dt_s_time_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
int dt_s_time_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
int dt_s_time_window(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);

#endif
