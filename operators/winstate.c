/*
 * winstate.c — per-window state of grouping operators (ss_winstate.h): which
 * groups belong to which window, so that a window's state can be dropped once
 * the watermark passes its end (issue 13: "window state is dropped after
 * close"), and so that changes to a window already dropped are recognised.
 *
 * Tables (the operator's prefix): <p>_wk(e = window end µs, g = the operator's
 * group key, PRIMARY KEY(e, g)) and <p>_wc(closed): windows ending at or before
 * `closed` were dropped.
 */
#include "ss_winstate.h"

#include <stdlib.h>
#include <string.h>

enum { W_NOTE, W_DUE, W_DEL, W_CLOSED_GET, W_CLOSED_PUT, W_N };

static int load_closed(ss_winstate_t *w, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(w->st, W_CLOSED_GET, err, errsz, "SELECT closed FROM %s_wc", w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    w->closed = SS_TIME_NONE;
    if (sqlite3_step(q) == SQLITE_ROW)
        w->closed = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return SS_OK;
}

int ss_winstate_open(ss_winstate_t *w, int node_id, int col, int64_t add, sqlite3 *db, char *err, size_t errsz)
{
    w->on = 1;
    w->col = col;
    w->add = add;
    if (!w->st && !(w->st = ss_state_new(db, node_id, W_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = ss_state_exec(w->st, err, errsz,
                           "CREATE TABLE IF NOT EXISTS %s_wk(e INTEGER, g BLOB, PRIMARY KEY(e, g)) WITHOUT ROWID;"
                           "CREATE TABLE IF NOT EXISTS %s_wc(id INTEGER PRIMARY KEY, closed INTEGER NOT NULL);",
                           w->st->prefix, w->st->prefix);
    return rc ? rc : load_closed(w, err, errsz);
}

int ss_winstate_init(ss_winstate_t *w, const ss_plan_node_t *n, sqlite3 *db, char *err, size_t errsz)
{
    int k = (int)ss_plan_opt_int(n, "window_col", -1);
    w->on = k >= 0 && k < n->ngroup;
    if (!w->on)
        return SS_OK;
    const char *b = ss_plan_opt(n, "window_bound");
    int64_t add = b && ss_strcaseeq(b, "start") ? ss_plan_opt_int(n, "window_size_us", 0) : 0;
    return ss_winstate_open(w, n->id, n->group_cols[k], add, db, err, errsz);
}

void ss_winstate_free(ss_winstate_t *w)
{
    ss_state_destroy(w->st);
    memset(w, 0, sizeof *w);
}

void ss_winstate_rollback(ss_winstate_t *w)
{
    char err[SS_ERRSZ];
    if (w->on && load_closed(w, err, sizeof err))
        w->closed = SS_TIME_NONE;
}

static int end_at(const ss_row_t *row, int col, int64_t add, int64_t *end)
{
    if (col >= row->n || row->v[col].t == SS_NULL || !ss_vtype_is_time(row->v[col].t))
        return 0;
    *end = ss_val_time_us(&row->v[col]) + add;
    return 1;
}

int ss_winstate_filter_at(ss_winstate_t *w, const char *view, ss_zset_t *z, int col, int64_t add)
{
    if (!w->on || w->closed == SS_TIME_NONE)
        return 0;
    size_t o = 0;
    int64_t dropped = 0, end;
    for (size_t i = 0; i < z->n; i++) {
        if (end_at(z->e[i].row, col, add, &end) && end <= w->closed) {
            ss_row_free(z->e[i].row);
            dropped++;
            continue;
        }
        z->e[o++] = z->e[i];
    }
    z->n = o;
    if (dropped) {
        w->dropped += dropped;
        ss_log(SS_LOG_WARN, "window", "view %s: %lld change(s) to windows already closed (state dropped) were "
               "ignored (%lld in all)", view ? view : "?", (long long)dropped, (long long)w->dropped);
    }
    return (int)dropped;
}

int ss_winstate_filter(ss_winstate_t *w, const char *view, ss_zset_t *z)
{
    return ss_winstate_filter_at(w, view, z, w->col, w->add);
}

int ss_winstate_note_at(ss_winstate_t *w, const ss_row_t *row, int col, int64_t add, const ss_buf_t *g, char *err,
                        size_t errsz)
{
    int64_t end;
    if (!w->on || !end_at(row, col, add, &end))
        return SS_OK;
    sqlite3_stmt *s = ss_state_stmt(w->st, W_NOTE, err, errsz, "INSERT OR IGNORE INTO %s_wk(e, g) VALUES(?1, ?2)",
                                    w->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, end);
    ss_state_bind_buf(s, 2, g);
    return ss_state_run(w->st, s, err, errsz);
}

int ss_winstate_note(ss_winstate_t *w, const ss_row_t *row, const ss_buf_t *g, char *err, size_t errsz)
{
    return ss_winstate_note_at(w, row, w->col, w->add, g, err, errsz);
}

int ss_winstate_close(ss_winstate_t *w, int64_t wm, ss_winstate_drop_fn drop, void *arg, char *err, size_t errsz)
{
    if (!w->on || wm == SS_TIME_NONE || (w->closed != SS_TIME_NONE && wm <= w->closed))
        return SS_OK;
    sqlite3_stmt *q = ss_state_stmt(w->st, W_DUE, err, errsz, "DELETE FROM %s_wk WHERE e <= ?1 RETURNING g",
                                    w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, wm);
    ss_buf_t keys = SS_BUF_INIT; /* length-prefixed: drop() runs statements of its own */
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        uint32_t len = (uint32_t)sqlite3_column_bytes(q, 0);
        rc = ss_buf_append(&keys, &len, 4);
        if (!rc && len)
            rc = ss_buf_append(&keys, sqlite3_column_blob(q, 0), len);
    }
    sqlite3_reset(q);
    if (rc)
        rc = ss_seterr(err, errsz, rc, "out of memory");
    for (size_t at = 0; !rc && at < keys.len;) {
        uint32_t len;
        memcpy(&len, keys.data + at, 4);
        rc = drop(arg, keys.data + at + 4, len, err, errsz);
        at += 4 + len;
    }
    ss_buf_free(&keys);
    sqlite3_stmt *c = rc ? NULL : ss_state_stmt(w->st, W_CLOSED_PUT, err, errsz, "INSERT OR REPLACE INTO %s_wc(id, "
                                                "closed) VALUES(1, ?1)", w->st->prefix);
    if (!rc && !c)
        rc = SS_ERR_SQLITE;
    if (!rc) {
        sqlite3_bind_int64(c, 1, wm);
        rc = ss_state_run(w->st, c, err, errsz);
    }
    if (!rc)
        w->closed = wm;
    return rc;
}
