/*
 * statestore.c — the engine's SQLite state store (see ss_store.h): opening the
 * database in WAL mode, transactions, and the engine's bookkeeping tables
 * (input offsets, sink outbox, per-view sink sequence, node registry).
 */
#include "ss_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ss_store {
    sqlite3 *db;
    char *path;
    int in_txn;
};

static const char *SCHEMA_SQL =
    "CREATE TABLE IF NOT EXISTS ss_offsets(stream TEXT NOT NULL, partition INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY(stream, partition));"
    "CREATE TABLE IF NOT EXISTS ss_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, view TEXT NOT NULL,"
    " seq_start INTEGER NOT NULL, delta BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ss_watermarks(stream TEXT NOT NULL, partition INTEGER NOT NULL,"
    " max_us INTEGER NOT NULL, PRIMARY KEY(stream, partition));"
    "CREATE TABLE IF NOT EXISTS ss_view_seq(view TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ss_nodes(id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " label TEXT, view TEXT, boot INTEGER NOT NULL DEFAULT 0);";

static int sqlerr(ss_store_t *s, char *err, size_t errsz, const char *what)
{
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "state store %s: %s: %s", s->path, what,
                     sqlite3_errmsg(s->db));
}

/* The layout of the state (user_version): 2 = a SOURCE node per view (its own input
 * positions, keyed by node), format of this build. A database with state written in an
 * older layout is refused, never reinterpreted: its views would double-count. */
#define SS_STORE_FORMAT 2

static int check_format(ss_store_t *s, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int ver = 0, nodes = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        ver = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM ss_nodes", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        nodes = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (ver == SS_STORE_FORMAT || (ver == 0 && nodes == 0)) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", SS_STORE_FORMAT);
        return ver == SS_STORE_FORMAT ? SS_OK : ss_store_exec(s, sql, err, errsz);
    }
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "state store %s holds views in layout %d; this build writes "
                     "layout %d and cannot take it over without double-counting: keep the old file, start a new "
                     "--db and re-create the views (they read their streams from the beginning)",
                     s->path, ver, SS_STORE_FORMAT);
}

int ss_store_open(const char *path, ss_store_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->path = ss_strdup(path))) {
        free(s);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        int rc = sqlerr(s, err, errsz, "open");
        ss_store_close(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* an unknown "identifier" is an error, never a string literal */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)0);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)0);
    /* WAL + synchronous=NORMAL is durable across process crashes (what the
     * recovery guarantee needs); FULL would add power-loss durability. */
    /* Large batches write many pages: 16 KB pages (fewer writes per commit; takes
     * effect when the file is created) and a 64 MB page cache keep commits cheap.
     * The WAL is checkpointed past 8 MB (512 pages) and cut back to 8 MB after
     * each checkpoint: several pipelines commit into one file, a long catch-up
     * never goes idle, and an unbounded WAL can fill a disk with copies of the
     * same pages (then even the checkpoint that would free them has no room).
     * Pipelines also checkpoint when idle and after a full disk (ss_store_checkpoint). secure_delete=FAST:
     * SQLite builds that default to secure_delete=ON zero every freed page, and
     * each outbox clear then rewrote the whole delta it dropped into the WAL;
     * FAST still zeroes deleted cells on pages being written anyway (the state
     * holds nothing the view tables and sink topics do not). */
    int rc = ss_store_exec(s,
                           "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
                           "PRAGMA wal_autocheckpoint=512; PRAGMA journal_size_limit=8388608;"
                           " PRAGMA temp_store=MEMORY; PRAGMA secure_delete=FAST;",
                           err, errsz);
    if (!rc)
        rc = check_format(s, err, errsz);
    if (!rc)
        rc = ss_store_exec(s, SCHEMA_SQL, err, errsz);
    if (rc) {
        ss_store_close(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

void ss_store_close(ss_store_t *s)
{
    if (!s)
        return;
    if (s->db) {
        if (s->in_txn)
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    free(s->path);
    free(s);
}

sqlite3 *ss_store_db(ss_store_t *s) { return s->db; }
const char *ss_store_path(const ss_store_t *s) { return s->path; }
int ss_store_in_txn(const ss_store_t *s) { return s->in_txn; }

void ss_store_checkpoint(ss_store_t *s, int truncate)
{
    if (!s->in_txn) {
        int nlog = 0, nck = 0;
        sqlite3_wal_checkpoint_v2(s->db, NULL, truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
                                  &nlog, &nck);
        ss_log(SS_LOG_DEBUG, "store", "checkpoint: %d WAL frames, %d copied to the database", nlog, nck);
    }
}

int ss_store_exec(ss_store_t *s, const char *sql, char *err, size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "state store %s: %s", s->path,
                           msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return rc;
    }
    return SS_OK;
}

int ss_store_begin(ss_store_t *s, char *err, size_t errsz)
{
    if (s->in_txn)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "state store: transaction already open");
    int rc = ss_store_exec(s, "BEGIN IMMEDIATE", err, errsz);
    if (!rc)
        s->in_txn = 1;
    return rc;
}

int ss_store_commit(ss_store_t *s, char *err, size_t errsz)
{
    if (!s->in_txn)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "state store: commit without a transaction");
    int rc = ss_store_exec(s, "COMMIT", err, errsz);
    if (rc) {
        ss_store_rollback(s);
        return rc;
    }
    s->in_txn = 0;
    return SS_OK;
}

void ss_store_rollback(ss_store_t *s)
{
    if (!s->in_txn)
        return;
    if (sqlite3_get_autocommit(s->db) == 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = 0;
}

/* ---- offsets: (stream, partition) -> offset ---- */

static int get_positions(ss_store_t *s, const char *table, const char *col, const char *stream,
                         ss_offset_t **offs, int *n, char *err, size_t errsz)
{
    *offs = NULL;
    *n = 0;
    char *sql = ss_sprintf("SELECT partition, %s FROM %s WHERE stream = ?1 ORDER BY partition", col, table);
    sqlite3_stmt *st = NULL;
    int rc = sql ? sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) : SQLITE_NOMEM;
    free(sql);
    if (rc != SQLITE_OK)
        return sqlerr(s, err, errsz, table);
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_TRANSIENT);
    int cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            ss_offset_t *p = realloc(*offs, (size_t)cap * sizeof *p);
            if (!p) {
                sqlite3_finalize(st);
                free(*offs);
                *offs = NULL;
                *n = 0;
                return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            }
            *offs = p;
        }
        (*offs)[*n].partition = sqlite3_column_int(st, 0);
        (*offs)[*n].offset = sqlite3_column_int64(st, 1);
        (*n)++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*offs);
        *offs = NULL;
        *n = 0;
        return sqlerr(s, err, errsz, table);
    }
    return SS_OK;
}

static int put_positions(ss_store_t *s, const char *table, const char *col, const char *stream,
                         const ss_offset_t *offs, int n, char *err, size_t errsz)
{
    char *sql = ss_sprintf("INSERT OR REPLACE INTO %s(stream, partition, %s) VALUES(?1, ?2, ?3)", table, col);
    sqlite3_stmt *st = NULL;
    int rc = sql ? sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) : SQLITE_NOMEM;
    free(sql);
    if (rc != SQLITE_OK)
        return sqlerr(s, err, errsz, table);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_text(st, 1, stream, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, offs[i].partition);
        sqlite3_bind_int64(st, 3, offs[i].offset);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sqlerr(s, err, errsz, table);
            sqlite3_finalize(st);
            return rc;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return SS_OK;
}

static int exec_bind1(ss_store_t *s, const char *sql, const char *arg, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, sql);
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, sql);
    sqlite3_finalize(st);
    return rc;
}

int ss_store_get_offsets(ss_store_t *s, const char *stream, ss_offset_t **offs, int *n, char *err, size_t errsz)
{
    return get_positions(s, "ss_offsets", "next_offset", stream, offs, n, err, errsz);
}

int ss_store_put_offsets(ss_store_t *s, const char *stream, const ss_offset_t *offs, int n, char *err,
                         size_t errsz)
{
    return put_positions(s, "ss_offsets", "next_offset", stream, offs, n, err, errsz);
}

int ss_store_clear_offsets(ss_store_t *s, const char *stream, char *err, size_t errsz)
{
    int rc = exec_bind1(s, "DELETE FROM ss_offsets WHERE stream = ?1", stream, err, errsz);
    return rc ? rc : exec_bind1(s, "DELETE FROM ss_watermarks WHERE stream = ?1", stream, err, errsz);
}

int ss_store_get_watermarks(ss_store_t *s, const char *stream, ss_wmark_t **w, int *n, char *err, size_t errsz)
{
    ss_offset_t *o = NULL;
    *w = NULL;
    int rc = get_positions(s, "ss_watermarks", "max_us", stream, &o, n, err, errsz);
    if (!rc && *n && !(*w = malloc((size_t)*n * sizeof **w)))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < *n; i++)
        (*w)[i] = (ss_wmark_t){o[i].partition, o[i].offset};
    free(o);
    if (rc)
        *n = 0;
    return rc;
}

int ss_store_put_watermarks(ss_store_t *s, const char *stream, const ss_wmark_t *w, int n, char *err,
                            size_t errsz)
{
    ss_offset_t *o = n ? malloc((size_t)n * sizeof *o) : NULL;
    if (n && !o)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        o[i] = (ss_offset_t){w[i].partition, w[i].max_us};
    int rc = put_positions(s, "ss_watermarks", "max_us", stream, o, n, err, errsz);
    free(o);
    return rc;
}

/* ---- sink outbox ---- */

int ss_store_outbox_add(ss_store_t *s, const char *view, int64_t seq_start, const void *delta, size_t len,
                        char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO ss_outbox(view, seq_start, delta) VALUES(?1, ?2, ?3)", -1, &st,
                           NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_outbox");
    sqlite3_bind_text(st, 1, view, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, seq_start);
    sqlite3_bind_blob64(st, 3, len ? delta : "", len, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_outbox");
    sqlite3_finalize(st);
    return rc;
}

int ss_store_outbox_each(ss_store_t *s, const char *view, ss_store_outbox_fn fn, void *arg, char *err,
                         size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT view, seq_start, delta FROM ss_outbox WHERE ?1 IS NULL OR view = ?1"
                           " ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_outbox");
    if (view)
        sqlite3_bind_text(st, 1, view, -1, SQLITE_TRANSIENT);
    int rc = SS_OK, sr;
    while (!rc && (sr = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
                sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), err, errsz);
    if (!rc && sr != SQLITE_DONE)
        rc = sqlerr(s, err, errsz, "ss_outbox");
    sqlite3_finalize(st);
    return rc;
}

int ss_store_outbox_clear(ss_store_t *s, const char *view, char *err, size_t errsz)
{
    return view ? exec_bind1(s, "DELETE FROM ss_outbox WHERE view = ?1", view, err, errsz)
                : exec_bind1(s, "DELETE FROM ss_outbox", NULL, err, errsz);
}

int ss_store_outbox_count(ss_store_t *s, int64_t *n, char *err, size_t errsz)
{
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM ss_outbox", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_outbox");
    int rc = sqlite3_step(st) == SQLITE_ROW ? SS_OK : sqlerr(s, err, errsz, "ss_outbox");
    if (!rc)
        *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* ---- per-view sink sequence ---- */

int ss_store_get_seq(ss_store_t *s, const char *view, int64_t *seq, char *err, size_t errsz)
{
    *seq = 1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT next_seq FROM ss_view_seq WHERE view = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_view_seq");
    sqlite3_bind_text(st, 1, view, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_view_seq");
}

int ss_store_put_seq(ss_store_t *s, const char *view, int64_t seq, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO ss_view_seq(view, next_seq) VALUES(?1, ?2)", -1, &st,
                           NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_view_seq");
    sqlite3_bind_text(st, 1, view, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, seq);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_view_seq");
    sqlite3_finalize(st);
    return rc;
}

/* ---- node registry ---- */

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? ss_strdup((const char *)t) : NULL;
}

int ss_store_node_get(ss_store_t *s, int id, char **kind, char **label, char **view, char *err, size_t errsz)
{
    *kind = *label = *view = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT kind, label, view FROM ss_nodes WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_bind_int(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *kind = col_dup(st, 0);
        *label = col_dup(st, 1);
        *view = col_dup(st, 2);
        sqlite3_finalize(st);
        return SS_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return SS_ERR_NOTFOUND;
    return sqlerr(s, err, errsz, "ss_nodes");
}

int ss_store_node_put(ss_store_t *s, int id, const char *kind, const char *label, const char *view, char *err,
                      size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO ss_nodes(id, kind, label, view) VALUES(?1,?2,?3,?4)", -1,
                           &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_bind_int(st, 1, id);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, label, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, view, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_finalize(st);
    return rc;
}

int ss_store_node_ids(ss_store_t *s, int **ids, int *n, char *err, size_t errsz)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM ss_nodes ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_nodes");
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int *p = realloc(*ids, (size_t)cap * sizeof *p);
            if (!p) {
                sqlite3_finalize(st);
                free(*ids);
                *ids = NULL;
                *n = 0;
                return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            }
            *ids = p;
        }
        (*ids)[(*n)++] = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_nodes");
}

int ss_store_drop_tables(ss_store_t *s, const char *prefix, char *err, size_t errsz)
{
    /* Collect first: dropping while iterating sqlite_master is not allowed. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?2) = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "sqlite_master");
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, (int)strlen(prefix));
    ss_buf_t sql = SS_BUF_INIT;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char *q = sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\";", name);
        ss_buf_puts(&sql, q);
        sqlite3_free(q);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        ss_buf_free(&sql);
        return sqlerr(s, err, errsz, "sqlite_master");
    }
    rc = sql.len ? ss_store_exec(s, sql.data, err, errsz) : SS_OK;
    ss_buf_free(&sql);
    return rc;
}

int ss_store_node_set_boot(ss_store_t *s, int id, int boot, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE ss_nodes SET boot = ?2 WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_bind_int(st, 1, id);
    sqlite3_bind_int(st, 2, boot);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_finalize(st);
    return rc;
}

int ss_store_node_boot(ss_store_t *s, int id)
{
    sqlite3_stmt *st = NULL;
    int boot = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT boot FROM ss_nodes WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            boot = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return boot;
}

int ss_store_node_drop(ss_store_t *s, int id, const char *view, char *err, size_t errsz)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "st_%d_", id);
    int rc = ss_store_drop_tables(s, prefix, err, errsz);
    if (!rc && view) {
        char *q = sqlite3_mprintf("DROP TABLE IF EXISTS \"view_%w\"", view);
        rc = q ? ss_store_exec(s, q, err, errsz) : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        sqlite3_free(q);
    }
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM ss_nodes WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_bind_int(st, 1, id);
    rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : sqlerr(s, err, errsz, "ss_nodes");
    sqlite3_finalize(st);
    return rc;
}
