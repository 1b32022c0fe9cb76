/*
 * ss_state.h — small helpers every operator uses to keep its state in SQLite
 * (the engine's state store): a per-operator handle holding the table prefix
 * "st_<node id>" and a cache of prepared statements, binding/reading values
 * and rows (rows are stored as BLOBs in ss_row_encode form), key encodings
 * (exact, numerically normalised, and order-preserving sort keys that SQLite
 * compares with memcmp), row stores (multisets of rows kept once each, never
 * inside a key) and counted row identities, moving Z-set entries, and the clock
 * operators read
 * (injectable for tests). Operators never BEGIN/COMMIT: the scheduler holds a
 * transaction open around each micro-batch.
 */
#ifndef SS_STATE_H
#define SS_STATE_H

#include "ss_base.h"
#include "ss_zset.h"

#include <sqlite3.h>

typedef struct ss_state {
    sqlite3 *db;           /* borrowed: the engine's state store */
    ss_buf_t scratch;      /* encodings of the row being looked up (row stores) */
    int id;                /* plan node id */
    char prefix[32];       /* "st_<id>": every table of this operator starts with it */
    int nslots;
    sqlite3_stmt **stmt;   /* owned; lazily prepared statements, one per slot */
} ss_state_t;

/* Creates the handle for node `node_id` with `nslots` statement slots. NULL on OOM. */
ss_state_t *ss_state_new(sqlite3 *db, int node_id, int nslots);
void ss_state_destroy(ss_state_t *st); /* finalizes statements; NULL-safe */

/* Formats and runs one or more SQL statements (DDL etc.). SS_ERR_SQLITE with the message. */
int ss_state_exec(ss_state_t *st, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The statement of `slot`, prepared from the formatted SQL on first use, then
 * returned reset with cleared bindings. NULL on failure (err filled). */
sqlite3_stmt *ss_state_stmt(ss_state_t *st, int slot, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Steps a statement that returns no rows, then resets it. */
int ss_state_run(ss_state_t *st, sqlite3_stmt *s, char *err, size_t errsz);
/* Fills err with "<what>: <sqlite message>" and returns SS_ERR_SQLITE. */
int ss_state_sqlerr(sqlite3 *db, char *err, size_t errsz, const char *what);

/* Binding and reading. Text is bound/read as TEXT with its length; bound copies (TRANSIENT). */
int ss_state_bind_value(sqlite3_stmt *s, int idx, const ss_value_t *v);
int ss_state_bind_buf(sqlite3_stmt *s, int idx, const ss_buf_t *b);  /* as BLOB (empty = x'') */
int ss_state_bind_row(sqlite3_stmt *s, int idx, const ss_row_t *r, ss_buf_t *scratch);
/* Column value; text is borrowed from the statement (valid until the next step/reset).
 * A BLOB column is returned as TEXT bytes. */
ss_value_t ss_state_column_value(sqlite3_stmt *s, int col);
/* A column bound with ss_state_bind_value read back as a value of column type t: time
 * types, stored as their text, are parsed back (*owned: text to free, usually NULL). */
int ss_state_column_as(sqlite3_stmt *s, int col, ss_coltype_t t, ss_value_t *out, char **owned);
/* Decodes a row BLOB column (ss_row_encode form) into a new row. */
int ss_state_column_row(sqlite3_stmt *s, int col, ss_row_t **out);
/* Steps q (already bound) to its end, adding the row decoded from column row_col of each result
 * row to out with weight w, or with the integer in column w_col when w_col >= 0; resets q.
 * Returns SS_OK or the code of the first row that fails to decode or add. */
int ss_state_collect_rows(sqlite3_stmt *q, int row_col, int w_col, int64_t w, ss_zset_t *out);

/* Exact key: ss_row_encode of the projection r[cols[0..n)) appended to out.
 * With normalise, integral REALs and NUMERICs are encoded as INT (so 2, 2.0 and 2.00 give
 * one key, as SQL '=' says), NUMERICs a double holds exactly as REAL, others without trailing
 * zeros. *has_null (if given) is set when a projected value is NULL. */
int ss_state_encode_cols(const ss_row_t *r, const int *cols, int n, int normalise, ss_buf_t *out,
                         int *has_null);
/* Appends an order-preserving encoding of v: memcmp order of encodings equals
 * ss_val_cmp order (NULL < numbers < text), reversed when desc. Prefix-free. */
int ss_state_sortkey(ss_buf_t *out, const ss_value_t *v, int desc);
/* Sort key of a whole row (every column ascending): memcmp order = ss_row_cmp order. */
int ss_state_sortkey_row(ss_buf_t *out, const ss_row_t *r);

/* Moves every entry of src to the end of out (src left empty). SS_ERR_NOMEM on failure. */
int ss_state_zset_move(ss_zset_t *out, ss_zset_t *src);

/* Clock read by time-based operators (TTL), in ms since the epoch. Tests inject a
 * fixed time with ss_state_set_now_ms(t); ss_state_set_now_ms(0) restores the real clock. */
int64_t ss_state_now_ms(void);
void ss_state_set_now_ms(int64_t ms);

/* Row multisets ("row stores"): table <prefix>_<name>(id INTEGER PRIMARY KEY, k BLOB NOT NULL,
 * h INTEGER NOT NULL, row BLOB NOT NULL, n INTEGER NOT NULL) with an index on (k, h). Each
 * distinct (k, row) is stored once, with its count n != 0: k is the caller's grouping key (a join
 * key, a sort key; empty when the caller needs none), h = ss_state_row_hash(row), and the row
 * itself is only in the table's record (never in a key), so a large row costs its own size plus
 * a few dozen bytes. Rows of one k are one index range; (k, h, row) is a total order. */
int ss_state_rows_create(ss_state_t *st, const char *name, char *err, size_t errsz);
/* Adds w to the count of (k, row) (k NULL = empty), removing it when the count reaches 0;
 * *oldn / *newn (may be NULL) get the counts before and after. Uses statement slots
 * slot .. slot + 3. */
int ss_state_rows_add(ss_state_t *st, int slot, const char *name, const ss_buf_t *k, const ss_row_t *row,
                      int64_t w, int64_t *oldn, int64_t *newn, char *err, size_t errsz);
/* Counted row identities: table <prefix>_<name>(k BLOB, h1 INTEGER, h2 INTEGER, n INTEGER,
 * PRIMARY KEY(k, h1, h2)) WITHOUT ROWID — a row's count under its 128-bit hash (two independent
 * 64-bit hashes of its encoding), without the row itself: one small record and one statement per
 * change, for callers that need counts but never the rows back (a keyless source deciding whether
 * a delete removes a copy). Two rows are confused only if they share k and all 128 bits. */
int ss_state_hcount_create(ss_state_t *st, const char *name, char *err, size_t errsz);
/* Adds w to row's count (k NULL = empty), removing it at 0; *oldn / *newn as ss_state_rows_add.
 * With w > 0 and both NULL (a count that is never negative only grows) the count is not read
 * back: one upsert without RETURNING. Uses statement slots slot .. slot + 2. */
int ss_state_hcount_add(ss_state_t *st, int slot, const char *name, const ss_buf_t *k, const ss_row_t *row,
                        int64_t w, int64_t *oldn, int64_t *newn, char *err, size_t errsz);
/* A clustering key for a row store whose caller needs none: the order-preserving sort key of the
 * row's first column, cut to 24 bytes, so that rows arriving in that column's order (ids, times)
 * land next to each other in the (k, h) index instead of all over it. Appended to out. */
int ss_state_cluster_key(const ss_row_t *r, ss_buf_t *out);
/* The stable 64-bit hash of a row's ss_row_encode bytes stored in row stores' h column. */
int64_t ss_state_row_hash(const void *enc, size_t n);

/* Consolidated copy of in (into an initialised, empty z). */
int ss_state_zset_consolidated(const ss_zset_t *in, ss_zset_t *z);

/* Ordered-list aggregates (agg_list.c): an element's multiset key — the order-preserving
 * encoding of its ORDER BY values (desc[i] inverts one), then of the value, then the value's
 * row encoding and its length — so that ORDER BY key is the aggregate's order and the value
 * reads back. ss_state_list_format steps q (rows: key BLOB, count), joins the elements (each
 * count times, once with distinct) and sets *out: SS_LIST_STRING the text forms separated by
 * sep, NULLs skipped; SS_LIST_ARRAY PostgreSQL's array text {a,"b c",NULL}; SS_LIST_JSON a JSON
 * array [1,"a",null] (an SS_JSON value); NULL when there is no element. Text goes to *owned (caller frees). */
enum { SS_LIST_STRING, SS_LIST_ARRAY, SS_LIST_JSON };
int ss_state_list_elem(const ss_value_t *v, const ss_value_t *ord, const int *desc, int nord, ss_buf_t *out);
int ss_state_list_format(sqlite3_stmt *q, int kind, const char *sep, int distinct, ss_value_t *out, char **owned);

/* Quotes an SQL identifier ("a""b") into out. */
int ss_state_quote_ident(ss_buf_t *out, const char *name);

#endif
