/*
 * eowc.c — SS_PN_EOWC: EMIT ON WINDOW CLOSE (issue 13). The changes of each
 * window (the rows of in[0] whose window_end, or window_start + size, is e) are
 * summed in st_<id>_p(e, r = row, w = net weight) and held back; when the
 * watermark reaches e the window is closed: its net rows — the window's final
 * result, once — are emitted and forgotten, and every later change to a window
 * that closed is dropped (counted, and logged once per batch): the watermark
 * promised it would not come. The watermark the window was closed at is kept in
 * st_<id>_c so that a restart neither re-emits nor re-opens windows.
 */
#include "ss_op.h"
#include "ss_state.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_ADD, S_DEL0, S_DUE, S_CLOSED_GET, S_CLOSED_PUT, S_SNAP, S_N };

typedef struct eowc {
    ss_state_t *st;
    int col;
    int is_start;
    int64_t size;
    int64_t closed;     /* windows ending at or before it are closed (SS_TIME_NONE: none yet) */
    int64_t dropped;    /* changes to closed windows dropped so far */
    ss_buf_t rb;
} eowc_t;

/* `closed` as committed. */
static int load_closed(eowc_t *e, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(e->st, S_CLOSED_GET, err, errsz, "SELECT closed FROM %s_c", e->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    e->closed = SS_TIME_NONE;
    if (sqlite3_step(q) == SQLITE_ROW)
        e->closed = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return SS_OK;
}

static int eowc_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    eowc_t *e = op->impl;
    const ss_plan_node_t *n = op->node;
    e->col = (int)ss_plan_opt_int(n, "window_col", -1);
    const char *b = ss_plan_opt(n, "window_bound");
    e->is_start = b && ss_strcaseeq(b, "start");
    e->size = ss_plan_opt_int(n, "window_size_us", 0);
    if (e->col < 0 || e->col >= n->schema->n || (e->is_start && e->size <= 0))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "emit-on-close node %d: bad window column", n->id);
    if (!e->st && !(e->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *p = e->st->prefix;
    int rc = ss_state_exec(e->st, err, errsz,
                           "CREATE TABLE IF NOT EXISTS %s_p(e INTEGER, r BLOB, w INTEGER NOT NULL, PRIMARY KEY(e, r))"
                           " WITHOUT ROWID;"
                           "CREATE TABLE IF NOT EXISTS %s_c(id INTEGER PRIMARY KEY, closed INTEGER NOT NULL);",
                           p, p);
    return rc ? rc : load_closed(e, err, errsz);
}

/* The window end of an output row; 0 when it has none (NULL). */
static int window_end(const eowc_t *e, const ss_row_t *r, int64_t *end)
{
    const ss_value_t *v = &r->v[e->col];
    if (v->t == SS_NULL)
        return 0;
    *end = ss_val_time_us(v) + (e->is_start ? e->size : 0);
    return 1;
}

static int eowc_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                      size_t errsz)
{
    (void)ctx;
    (void)port;
    (void)out;
    eowc_t *e = op->impl;
    const char *p = e->st->prefix;
    int64_t dropped = 0;
    for (size_t i = 0; i < in->n; i++) {
        int64_t end;
        if (!in->e[i].w)
            continue;
        if (!window_end(e, in->e[i].row, &end) || (e->closed != SS_TIME_NONE && end <= e->closed)) {
            dropped++; /* no window, or a window already closed and emitted */
            continue;
        }
        sqlite3_stmt *a = ss_state_stmt(e->st, S_ADD, err, errsz, "INSERT INTO %s_p(e, r, w) VALUES(?1, ?2, ?3) "
                                        "ON CONFLICT(e, r) DO UPDATE SET w = w + excluded.w", p);
        if (!a)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(a, 1, end);
        ss_state_bind_row(a, 2, in->e[i].row, &e->rb);
        sqlite3_bind_int64(a, 3, in->e[i].w);
        int rc = ss_state_run(e->st, a, err, errsz);
        if (rc)
            return rc;
    }
    sqlite3_stmt *z = ss_state_stmt(e->st, S_DEL0, err, errsz, "DELETE FROM %s_p WHERE w = 0", p);
    if (!z)
        return SS_ERR_SQLITE;
    int rc = ss_state_run(e->st, z, err, errsz);
    if (dropped) {
        e->dropped += dropped;
        ss_log(SS_LOG_WARN, "window", "view %s: %lld change(s) to windows already closed and emitted were dropped "
               "(%lld in all)", op->node->view ? op->node->view : "?", (long long)dropped, (long long)e->dropped);
    }
    return rc;
}

/* The watermark passed some windows' ends: their rows go out, once. */
static int eowc_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    eowc_t *e = op->impl;
    *due_us = SS_TIME_NONE;
    int64_t wm = op->watermark;
    if (wm == SS_TIME_NONE || (e->closed != SS_TIME_NONE && wm <= e->closed))
        return SS_OK;
    const char *p = e->st->prefix;
    sqlite3_stmt *q = ss_state_stmt(e->st, S_DUE, err, errsz, "DELETE FROM %s_p WHERE e <= ?1 RETURNING r, w", p);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, wm);
    int rc = ss_state_collect_rows(q, 0, 1, 0, out);
    if (rc)
        return ss_seterr(err, errsz, rc, "emit-on-close node %d: bad state row", op->node->id);
    sqlite3_stmt *c = ss_state_stmt(e->st, S_CLOSED_PUT, err, errsz, "INSERT OR REPLACE INTO %s_c(id, closed) "
                                    "VALUES(1, ?1)", p);
    if (!c)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(c, 1, wm);
    rc = ss_state_run(e->st, c, err, errsz);
    if (!rc)
        e->closed = wm;
    return rc;
}

static int eowc_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    (void)out;
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "emit-on-close node %d keeps only open windows; read its view",
                     op->node->id);
}

static const char *eowc_strategy(const ss_op_t *op)
{
    (void)op;
    return "each window's changes held in SQLite until the watermark passes its end, then emitted once";
}

static void eowc_rollback(ss_op_t *op) /* the table holds the committed value again */
{
    char err[SS_ERRSZ];
    if (load_closed(op->impl, err, sizeof err))
        ((eowc_t *)op->impl)->closed = SS_TIME_NONE;
}

static void eowc_destroy(ss_op_t *op)
{
    eowc_t *e = op->impl;
    if (!e)
        return;
    ss_state_destroy(e->st);
    ss_buf_free(&e->rb);
    free(e);
    op->impl = NULL;
}

static const ss_op_vtable_t eowc_vt = {
    "emit_on_close", SS_OPK_NONLINEAR, eowc_init, eowc_apply, eowc_snapshot, eowc_strategy, eowc_destroy,
    eowc_rollback,
};

int ss_op_eowc_init(ss_op_t *op, char *err, size_t errsz)
{
    eowc_t *e = calloc(1, sizeof *e);
    if (!e)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    e->closed = SS_TIME_NONE;
    op->vt = &eowc_vt;
    op->impl = e;
    op->advance = eowc_advance;
    return SS_OK;
}
