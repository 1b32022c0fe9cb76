/*
 * dt.h — the differential tester's shared types (tests/difftest, see README.md): a case is a
 * random schema (streams with typed columns, keyed or not), a history of deltas (inserts,
 * upserts, key changes, deletes of present and absent rows, duplicates, NULLs, unicode) and
 * random views in SQL text. gen.c builds cases from two tables — the expression generators
 * (dt_exprgens) and the query-shape generators (dt_shapes) — which are the extension point:
 * a new SQL feature is one more entry in one of them. main.c drives the engine with the SQL
 * text of a case and compares every view, as a multiset, with SQLite running the same SQL over
 * the data the history leaves.
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
typedef enum dt_type { DT_INT, DT_REAL, DT_TEXT, DT_BOOL, DT_NTYPES } dt_type_t;

const char *dt_type_sql(dt_type_t t); /* INT, REAL, TEXT, BOOLEAN */

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
    char *sql;                 /* views: the query after AS; owned */
    const char *shape;         /* views: the query-shape generator that made it */
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
void dt_case_free(dt_case_t *c);

/* ---- the extension tables (gen.c) ---- */

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

/* SQL literal of a value of type t. */
void dt_literal(const ss_value_t *v, dt_type_t t, ss_buf_t *out);

#endif
