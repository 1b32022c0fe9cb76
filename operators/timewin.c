/*
 * timewin.c — SS_PN_TIMEWIN: the window table functions (issue 13). Each row
 * goes out once per window it belongs to, with window_start and window_end
 * appended (of the time column's type); rows whose time is NULL belong to none.
 *
 *   TUMBLE  window [s, s + size), s = floor((t - offset) / size) * size + offset.
 *           Linear and stateless: a delta's windows are the windows of the delta.
 *   HOP     the windows [s, s + size) with s = k * slide + offset and
 *           s <= t < s + size: ceil(size / slide) of them. Linear, stateless.
 *   SESSION per partition key (PARTITION BY), rows closer than gap in time form a
 *           session [first t, last t + gap). Non-linear: a row can start, extend,
 *           merge or (deleted) split sessions, and every row of a session carries
 *           its bounds, so a change retracts the rows of the sessions around it
 *           with their old bounds and emits them with the new ones. State:
 *           st_<id>_s(k = encoded partition key, t, r = row, n = multiplicity);
 *           a key whose last session ended before the watermark is forgotten.
 */
#include "ss_op.h"
#include "ss_state.h"

#include "ss_time.h"

#include <stdlib.h>
#include <string.h>

enum { S_PREV, S_NEXT, S_RANGE, S_ADD, S_DEL, S_GC, S_SNAP, S_N };
enum { W_TUMBLE, W_HOP, W_SESSION };

typedef struct timewin {
    int kind;
    int col;                       /* the time column */
    int64_t size, slide, offset, gap; /* µs */
    ss_state_t *st;                /* SESSION only */
    ss_buf_t kb, rb;
    int64_t gc_wm;                 /* the watermark of the last forgetting pass */
} timewin_t;

static int64_t fdiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int timewin_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    timewin_t *w = op->impl;
    const ss_plan_node_t *n = op->node;
    const char *k = ss_plan_opt(n, "window");
    w->kind = !k ? -1 : ss_strcaseeq(k, "tumble") ? W_TUMBLE : ss_strcaseeq(k, "hop") ? W_HOP
                     : ss_strcaseeq(k, "session") ? W_SESSION : -1;
    w->size = ss_plan_opt_int(n, "size_us", 0);
    w->slide = ss_plan_opt_int(n, "slide_us", 0);
    w->offset = ss_plan_opt_int(n, "offset_us", 0);
    w->gap = ss_plan_opt_int(n, "gap_us", 0);
    w->col = n->nexprs ? n->exprs[0]->col : -1;
    if (w->kind < 0 || w->col < 0 || (w->kind == W_SESSION ? w->gap <= 0 : w->size <= 0 || w->slide <= 0))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "window node %d: bad parameters", n->id);
    if (w->kind != W_SESSION)
        return SS_OK;
    if (!w->st && !(w->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_state_exec(w->st, err, errsz,
                         "CREATE TABLE IF NOT EXISTS %s_s(k BLOB, t INTEGER, r BLOB, n INTEGER NOT NULL, "
                         "PRIMARY KEY(k, t, r)) WITHOUT ROWID", w->st->prefix);
}

/* row + [start, end) with weight w. */
static int emit(const ss_row_t *row, int64_t start, int64_t end, ss_vtype_t t, int64_t w, ss_zset_t *out)
{
    ss_row_t *r = ss_row_new(row->n + 2);
    if (!r)
        return SS_ERR_NOMEM;
    int rc = SS_OK;
    for (int i = 0; i < row->n && !rc; i++)
        rc = ss_row_set(r, i, &row->v[i]);
    if (rc) {
        ss_row_free(r);
        return rc;
    }
    r->v[row->n] = ss_val_ts(start, t == SS_TSTZ);
    r->v[row->n + 1] = ss_val_ts(end, t == SS_TSTZ);
    return ss_zset_add(out, r, w);
}

/* TUMBLE and HOP: the windows of each row. */
static int fixed_windows(timewin_t *w, const ss_zset_t *in, ss_zset_t *out)
{
    int rc = SS_OK;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const ss_row_t *row = in->e[i].row;
        const ss_value_t *v = &row->v[w->col];
        if (v->t == SS_NULL || !in->e[i].w)
            continue;
        int64_t t = ss_val_time_us(v);
        int64_t last = fdiv(t - w->offset, w->slide) * w->slide + w->offset; /* the latest start <= t */
        for (int64_t s = last; s > t - w->size && !rc; s -= w->slide)
            rc = emit(row, s, s + w->size, v->t, in->e[i].w, out);
    }
    return rc;
}

/* ---- SESSION ---- */

/* The time of the row before (dir < 0) or after (dir > 0) time t in key k; 0 if none. */
static int neighbour(timewin_t *w, int dir, int64_t t, int64_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *q = dir < 0 ? ss_state_stmt(w->st, S_PREV, err, errsz, "SELECT t FROM %s_s WHERE k = ?1 AND "
                                              "t < ?2 ORDER BY t DESC LIMIT 1", w->st->prefix)
                              : ss_state_stmt(w->st, S_NEXT, err, errsz, "SELECT t FROM %s_s WHERE k = ?1 AND "
                                              "t > ?2 ORDER BY t LIMIT 1", w->st->prefix);
    if (!q)
        return -1;
    ss_state_bind_buf(q, 1, &w->kb);
    sqlite3_bind_int64(q, 2, t);
    int found = sqlite3_step(q) == SQLITE_ROW;
    if (found)
        *out = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return found;
}

/* The rows of key k in [lo, hi] (time order) with their sessions, added with sign * n. */
static int sessions(timewin_t *w, int64_t lo, int64_t hi, int sign, ss_zset_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(w->st, S_RANGE, err, errsz, "SELECT t, r, n FROM %s_s WHERE k = ?1 AND t >= ?2 "
                                    "AND t <= ?3 ORDER BY t", w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, &w->kb);
    sqlite3_bind_int64(q, 2, lo);
    sqlite3_bind_int64(q, 3, hi);
    ss_zset_t rows;
    ss_zset_init(&rows);
    int64_t *ts = NULL;
    size_t cap = 0;
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        if (rows.n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *nt = realloc(ts, cap * sizeof *nt);
            if (!nt) {
                rc = SS_ERR_NOMEM;
                break;
            }
            ts = nt;
        }
        ts[rows.n] = sqlite3_column_int64(q, 0);
        rc = ss_state_column_row(q, 1, &r);
        if (!rc)
            rc = ss_zset_add(&rows, r, sqlite3_column_int64(q, 2));
    }
    sqlite3_reset(q);
    for (size_t i = 0; !rc && i < rows.n;) { /* one session: consecutive rows closer than gap */
        size_t e = i + 1;
        while (e < rows.n && ts[e] - ts[e - 1] < w->gap)
            e++;
        for (size_t k = i; !rc && k < e; k++)
            rc = emit(rows.e[k].row, ts[i], ts[e - 1] + w->gap, rows.e[k].row->v[w->col].t, sign * rows.e[k].w, out);
        i = e;
    }
    free(ts);
    ss_zset_destroy(&rows);
    return rc ? ss_seterr(err, errsz, rc, "session window: bad state") : SS_OK;
}

static int session_change(ss_op_t *op, const ss_row_t *row, int64_t w8, ss_zset_t *out, char *err, size_t errsz)
{
    timewin_t *w = op->impl;
    const ss_value_t *v = &row->v[w->col];
    if (v->t == SS_NULL)
        return SS_OK;
    int64_t t = ss_val_time_us(v);
    ss_buf_reset(&w->kb);
    int rc = ss_state_encode_cols(row, op->node->group_cols, op->node->ngroup, 1, &w->kb, NULL);
    if (rc)
        return ss_seterr(err, errsz, rc, "session window: partition key");
    /* the run of rows connected to t (with t present): everything whose session can change */
    int64_t lo = t, hi = t, x;
    int f;
    while ((f = neighbour(w, -1, lo, &x, err, errsz)) == 1 && lo - x < w->gap)
        lo = x;
    while (f >= 0 && (f = neighbour(w, 1, hi, &x, err, errsz)) == 1 && x - hi < w->gap)
        hi = x;
    if (f < 0)
        return SS_ERR_SQLITE;
    if ((rc = sessions(w, lo, hi, -1, out, err, errsz)))
        return rc;
    sqlite3_stmt *a = ss_state_stmt(w->st, S_ADD, err, errsz, "INSERT INTO %s_s(k, t, r, n) VALUES(?1, ?2, ?3, ?4) "
                                    "ON CONFLICT(k, t, r) DO UPDATE SET n = n + excluded.n RETURNING n", w->st->prefix);
    if (!a)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(a, 1, &w->kb);
    sqlite3_bind_int64(a, 2, t);
    ss_state_bind_row(a, 3, row, &w->rb);
    sqlite3_bind_int64(a, 4, w8);
    int64_t n = sqlite3_step(a) == SQLITE_ROW ? sqlite3_column_int64(a, 0) : 1;
    if ((rc = ss_state_run(w->st, a, err, errsz)))
        return rc;
    if (n <= 0) { /* gone (a delete of a row never seen leaves nothing either) */
        sqlite3_stmt *d = ss_state_stmt(w->st, S_DEL, err, errsz, "DELETE FROM %s_s WHERE k = ?1 AND t = ?2 AND "
                                        "r = ?3", w->st->prefix);
        if (!d)
            return SS_ERR_SQLITE;
        ss_state_bind_buf(d, 1, &w->kb);
        sqlite3_bind_int64(d, 2, t);
        ss_state_bind_row(d, 3, row, &w->rb);
        if ((rc = ss_state_run(w->st, d, err, errsz)))
            return rc;
    }
    return sessions(w, lo, hi, 1, out, err, errsz);
}

/* Forgets the keys whose last session ended before the watermark (late rows cannot reopen it). */
static int timewin_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    (void)out;
    timewin_t *w = op->impl;
    *due_us = SS_TIME_NONE;
    int64_t wm = op->watermark;
    if (w->kind != W_SESSION || wm == SS_TIME_NONE || (w->gc_wm != SS_TIME_NONE && wm - w->gc_wm < w->gap))
        return SS_OK;
    sqlite3_stmt *q = ss_state_stmt(w->st, S_GC, err, errsz, "DELETE FROM %s_s WHERE k IN (SELECT k FROM %s_s GROUP "
                                    "BY k HAVING max(t) <= ?1)", w->st->prefix, w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, wm - w->gap);
    int rc = ss_state_run(w->st, q, err, errsz);
    if (!rc)
        w->gc_wm = wm;
    return rc;
}

static int timewin_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                         size_t errsz)
{
    (void)ctx;
    (void)port;
    timewin_t *w = op->impl;
    int rc = SS_OK;
    if (w->kind != W_SESSION)
        rc = fixed_windows(w, in, out);
    else
        for (size_t i = 0; i < in->n && !rc; i++)
            if (in->e[i].w)
                rc = session_change(op, in->e[i].row, in->e[i].w, out, err, errsz);
    if (rc == SS_ERR_NOMEM)
        ss_seterr(err, errsz, rc, "out of memory");
    if (rc)
        ss_errprefix(err, errsz, "window (node %d)", op->node->id);
    return rc;
}

static int timewin_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    timewin_t *w = op->impl;
    if (w->kind != W_SESSION)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "window node %d keeps no state", op->node->id);
    sqlite3_stmt *q = ss_state_stmt(w->st, S_SNAP, err, errsz, "SELECT DISTINCT k FROM %s_s", w->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_t keys = SS_BUF_INIT;
    int rc = SS_OK, nk = 0;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) { /* length-prefixed keys */
        uint32_t len = (uint32_t)sqlite3_column_bytes(q, 0);
        rc = ss_buf_append(&keys, &len, 4);
        if (!rc && len)
            rc = ss_buf_append(&keys, sqlite3_column_blob(q, 0), len);
        nk++;
    }
    sqlite3_reset(q);
    for (size_t at = 0; !rc && at < keys.len;) {
        uint32_t len;
        memcpy(&len, keys.data + at, 4);
        ss_buf_reset(&w->kb);
        rc = ss_buf_append(&w->kb, keys.data + at + 4, len);
        at += 4 + len;
        if (!rc)
            rc = sessions(w, INT64_MIN, INT64_MAX, 1, out, err, errsz);
    }
    ss_buf_free(&keys);
    return rc;
}

static const char *timewin_strategy(const ss_op_t *op)
{
    const timewin_t *w = op->impl;
    return w && w->kind == W_SESSION ? "sessions per key in SQLite: a change re-emits the sessions around it"
                                     : "linear: each changed row goes to its window(s), no state";
}

static void timewin_destroy(ss_op_t *op)
{
    timewin_t *w = op->impl;
    if (!w)
        return;
    ss_state_destroy(w->st);
    ss_buf_free(&w->kb);
    ss_buf_free(&w->rb);
    free(w);
    op->impl = NULL;
}

static void timewin_rollback(ss_op_t *op) { ((timewin_t *)op->impl)->gc_wm = SS_TIME_NONE; }

static const ss_op_vtable_t timewin_vt = {
    "time_window", SS_OPK_LINEAR, timewin_init, timewin_apply, timewin_snapshot, timewin_strategy, timewin_destroy,
    timewin_rollback,
};

int ss_op_timewin_init(ss_op_t *op, char *err, size_t errsz)
{
    timewin_t *w = calloc(1, sizeof *w);
    if (!w)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    w->gc_wm = SS_TIME_NONE;
    op->vt = &timewin_vt;
    op->impl = w;
    op->advance = timewin_advance;
    return SS_OK;
}
