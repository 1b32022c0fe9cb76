/*
 * ss_store.h — the engine's state store: the SQLite database (WAL) that holds the
 * catalog, every operator's state tables (st_<node>_*), the view tables
 * (view_<name>), and the engine's own bookkeeping:
 *   ss_offsets(stream, partition, next_offset)   committed input positions, keyed by source
 *                                                (the caller's key: a SOURCE node's own name)
 *   ss_watermarks(stream, partition, max_us)     per source partition, the largest event time
 *                                                read (streams with a WATERMARK; committed with
 *                                                the positions)
 *   ss_view_seq(view, next_seq)                  per-view sink sequence
 *   ss_outbox(id, view, seq_start, delta)         view changes not yet delivered to sinks
 *   ss_nodes(id, kind, label, view, boot)        plan nodes whose state exists; boot = 1 until
 *                                                a new node was fed the views it reads
 * A micro-batch runs inside ss_store_begin/ss_store_commit, so operator state,
 * offsets and sequences change together or not at all. The store owns the
 * sqlite3 handle; everything else borrows it.
 */
#ifndef SS_STORE_H
#define SS_STORE_H

#include "ss_base.h"
#include "ss_connect.h" /* ss_offset_t */

#include <sqlite3.h>

typedef struct ss_store ss_store_t;

/* Opens (creating if needed) the database at path in WAL mode. Several connections
 * (one per pipeline thread, one for statements) may be open on one file. A file whose
 * state was written in an older layout is refused (SS_ERR_UNSUPPORTED, saying why). */
int ss_store_open(const char *path, ss_store_t **out, char *err, size_t errsz);
void ss_store_close(ss_store_t *s); /* NULL-safe */
sqlite3 *ss_store_db(ss_store_t *s);
const char *ss_store_path(const ss_store_t *s);

/* One transaction at a time (nesting is an error). */
int ss_store_begin(ss_store_t *s, char *err, size_t errsz);
int ss_store_commit(ss_store_t *s, char *err, size_t errsz);
void ss_store_rollback(ss_store_t *s); /* no-op when no transaction is open */
int ss_store_in_txn(const ss_store_t *s);

/* Copies the WAL back into the database file as far as readers allow (PASSIVE), or
 * all of it and then empties the WAL file (truncate: waits for other connections'
 * transactions; frees the disk space a full disk needs back). Pipelines call it when
 * idle, every few seconds while busy, and after a full disk. No-op inside a transaction. */
void ss_store_checkpoint(ss_store_t *s, int truncate);

/* Runs SQL with no result rows (several statements allowed). */
int ss_store_exec(ss_store_t *s, const char *sql, char *err, size_t errsz);

/* Committed positions of a stream: *offs malloc'd (caller frees), *n entries. */
int ss_store_get_offsets(ss_store_t *s, const char *stream, ss_offset_t **offs, int *n,
                         char *err, size_t errsz);
int ss_store_put_offsets(ss_store_t *s, const char *stream, const ss_offset_t *offs, int n,
                         char *err, size_t errsz);
/* also clears the stream's watermark state */
int ss_store_clear_offsets(ss_store_t *s, const char *stream, char *err, size_t errsz);
/* Committed event-time state of a source (same key as its offsets): *w malloc'd. */
int ss_store_get_watermarks(ss_store_t *s, const char *stream, ss_wmark_t **w, int *n, char *err, size_t errsz);
int ss_store_put_watermarks(ss_store_t *s, const char *stream, const ss_wmark_t *w, int n, char *err,
                            size_t errsz);

/* The sink outbox: each batch's view deltas (encoded by the caller), written in
 * the batch's transaction and published after its commit; an entry is removed
 * (and the view's next_seq advanced) by a later transaction once its messages
 * are delivered, so a crash re-publishes exactly the undelivered entries. */
int ss_store_outbox_add(ss_store_t *s, const char *view, int64_t seq_start, const void *delta, size_t len,
                        char *err, size_t errsz);
/* Calls fn for every entry of view (NULL: of every view) in the order they were added;
 * stops at fn's first error. */
typedef int (*ss_store_outbox_fn)(void *arg, const char *view, int64_t seq_start, const void *delta,
                                  size_t len, char *err, size_t errsz);
int ss_store_outbox_each(ss_store_t *s, const char *view, ss_store_outbox_fn fn, void *arg, char *err,
                         size_t errsz);
/* Removes the entries of view (NULL: every entry). */
int ss_store_outbox_clear(ss_store_t *s, const char *view, char *err, size_t errsz);
int ss_store_outbox_count(ss_store_t *s, int64_t *n, char *err, size_t errsz);

/* Next sink sequence of a view (1 when never published). */
int ss_store_get_seq(ss_store_t *s, const char *view, int64_t *seq, char *err, size_t errsz);
int ss_store_put_seq(ss_store_t *s, const char *view, int64_t seq, char *err, size_t errsz);

/* The node registry: which plan nodes own state. get returns SS_ERR_NOTFOUND if absent;
 * kind, label and view are malloc'd (caller frees). */
int ss_store_node_get(ss_store_t *s, int id, char **kind, char **label, char **view,
                      char *err, size_t errsz);
int ss_store_node_put(ss_store_t *s, int id, const char *kind, const char *label, const char *view,
                      char *err, size_t errsz);
/* The bootstrap mark of a registered node (0 when absent), and setting it. */
int ss_store_node_boot(ss_store_t *s, int id);
int ss_store_node_set_boot(ss_store_t *s, int id, int boot, char *err, size_t errsz);
/* Ids of every registered node; *ids malloc'd. */
int ss_store_node_ids(ss_store_t *s, int **ids, int *n, char *err, size_t errsz);
/* Forgets node id and drops its state tables st_<id>_* (and, when view is given,
 * the view table view_<view>). */
int ss_store_node_drop(ss_store_t *s, int id, const char *view, char *err, size_t errsz);
/* Drops every table whose name starts with prefix (e.g. "st_12_"). */
int ss_store_drop_tables(ss_store_t *s, const char *prefix, char *err, size_t errsz);

#endif
