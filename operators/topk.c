/*
 * topk.c — SS_PN_TOPK: ORDER BY order[] LIMIT k over a multiset (duplicates
 * count towards k). Rows with equal ORDER BY values are ordered by a hash of
 * the row, then by the row's bytes, so the result is a function of the input
 * multiset (deterministic, independent of history and batching).
 *
 * Non-linear; state in SQLite:
 *   st_<id>_rows — a row store (ss_state.h): every input row once with its
 *       multiplicity, k = order-preserving encoding of the ORDER BY values
 *       (DESC ones inverted), so the (k, h) index is the sorted order;
 *   st_<id>_out(id, k, h, row, n) — the current top k (at most k rows).
 * A batch changes the result only if one of its rows sorts at or before the
 * current k-th row (or the result holds fewer than k rows); then the first k
 * instances are read off the index (O(k)), compared with st_<id>_out and the
 * differences emitted. Deleting a top row pulls the next one in. With OFFSET m
 * the result is the instances at positions m .. m+k-1 (the first m+k are read,
 * the first m dropped); a change before the window shifts it, so it counts as
 * touching it. Without a limit (k < 0) and offset ORDER BY does not change a
 * bag: deltas pass through; OFFSET without LIMIT re-reads every row after a
 * change (the window has no end).
 */
#include "ss_op.h"
#include "ss_state.h"

#include <stdlib.h>
#include <string.h>

enum { S_ADD, S_BOUND = S_ADD + 4, S_OUT, S_SCAN, S_OCLR, S_OINS, S_N };

typedef struct topk {
    ss_state_t *st;
    ss_buf_t rb;
} topk_t;

typedef struct tent {  /* a row with its position in the order and multiplicity */
    ss_buf_t k;        /* ORDER BY values' sort key */
    int64_t h;         /* row hash */
    ss_buf_t enc;      /* the row's encoding (last tie-break) */
    ss_row_t *row;     /* owned */
    int64_t n;
} tent_t;

/* 1 when ORDER BY changes nothing: no LIMIT and no OFFSET. */
static int passthrough(const ss_plan_node_t *n) { return n->limit < 0 && n->offset <= 0; }

/* The end of the window: OFFSET + LIMIT instances (no end without a LIMIT). */
static int64_t window_end(const ss_plan_node_t *n)
{
    if (n->limit < 0 || n->limit > INT64_MAX - n->offset)
        return INT64_MAX;
    return n->offset + n->limit;
}

static int topk_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    topk_t *t = op->impl;
    if (!t->st && !(t->st = ss_state_new(ctx->db, op->node->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (passthrough(op->node))
        return SS_OK;
    int rc = ss_state_rows_create(t->st, "rows", err, errsz);
    if (!rc)
        rc = ss_state_exec(t->st, err, errsz,
                           "CREATE TABLE IF NOT EXISTS %s_out(id INTEGER PRIMARY KEY, k BLOB NOT NULL, "
                           "h INTEGER NOT NULL, row BLOB NOT NULL, n INTEGER NOT NULL)",
                           t->st->prefix);
    return rc;
}

static int sort_key(const ss_plan_node_t *n, const ss_row_t *r, ss_buf_t *out, char *err, size_t errsz)
{
    for (int i = 0; i < n->norder; i++) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(n->order[i].expr, r, &v, &owned, err, errsz);
        if (!rc && (rc = ss_state_sortkey(out, &v, n->order[i].desc)))
            ss_seterr(err, errsz, rc, "out of memory");
        free(owned);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int buf_cmp(const ss_buf_t *a, const ss_buf_t *b)
{
    size_t n = SS_MIN(a->len, b->len);
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* The order of the result: ORDER BY values, then row hash, then row bytes. */
static int tent_cmp(const tent_t *a, const tent_t *b)
{
    int c = buf_cmp(&a->k, &b->k);
    if (c)
        return c;
    if (a->h != b->h)
        return a->h < b->h ? -1 : 1;
    return buf_cmp(&a->enc, &b->enc);
}

static void free_tents(tent_t *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        ss_buf_free(&t[i].k);
        ss_buf_free(&t[i].enc);
        ss_row_free(t[i].row);
    }
    free(t);
}

static int blob_into(sqlite3_stmt *q, int col, ss_buf_t *b)
{
    const void *p = sqlite3_column_blob(q, col);
    return ss_buf_append(b, p ? p : "", (size_t)sqlite3_column_bytes(q, col));
}

/* Reads up to `limit` instances (n summed) from a query returning k, h, row, n. */
static int read_tents(ss_state_t *st, sqlite3_stmt *q, int64_t limit, tent_t **out, size_t *nout, char *err,
                      size_t errsz)
{
    size_t cap = 0;
    int64_t total = 0;
    int rc = SS_OK;
    *out = NULL;
    *nout = 0;
    while (!rc && total < limit && sqlite3_step(q) == SQLITE_ROW) {
        if (*nout == cap) {
            cap = cap ? cap * 2 : 16;
            tent_t *nt = realloc(*out, cap * sizeof *nt);
            if (!nt) {
                rc = SS_ERR_NOMEM;
                break;
            }
            *out = nt;
        }
        tent_t *e = &(*out)[*nout];
        memset(e, 0, sizeof *e);
        (*nout)++;
        rc = blob_into(q, 0, &e->k);
        e->h = sqlite3_column_int64(q, 1);
        if (!rc)
            rc = blob_into(q, 2, &e->enc);
        if (!rc)
            rc = ss_state_column_row(q, 2, &e->row);
        e->n = SS_MIN(sqlite3_column_int64(q, 3), limit - total);
        total += e->n;
    }
    sqlite3_reset(q);
    if (rc) {
        free_tents(*out, *nout);
        *out = NULL;
        *nout = 0;
        return ss_seterr(err, errsz, rc, "top-k state of node %d: read failed", st->id);
    }
    return SS_OK;
}

/* Drops the first m instances of t[0..*n). */
static void skip_instances(tent_t *t, size_t *n, int64_t m)
{
    size_t drop = 0;
    while (drop < *n && m > 0) {
        if (t[drop].n > m) {
            t[drop].n -= m;
            break;
        }
        m -= t[drop].n;
        ss_buf_free(&t[drop].k);
        ss_buf_free(&t[drop].enc);
        ss_row_free(t[drop].row);
        drop++;
    }
    memmove(t, t + drop, (*n - drop) * sizeof *t);
    *n -= drop;
}

/* Recomputes the top k and emits its difference with st_<id>_out, which it rewrites. */
static int refresh(ss_op_t *op, ss_zset_t *out, char *err, size_t errsz)
{
    topk_t *t = op->impl;
    const char *p = t->st->prefix;
    tent_t *nw = NULL, *old = NULL;
    size_t nn = 0, no = 0;
    sqlite3_stmt *q = ss_state_stmt(t->st, S_SCAN, err, errsz,
                                    "SELECT k, h, row, n FROM %s_rows WHERE n > 0 ORDER BY k, h, row", p);
    int rc = q ? read_tents(t->st, q, window_end(op->node), &nw, &nn, err, errsz) : SS_ERR_SQLITE;
    if (!rc && nw)
        skip_instances(nw, &nn, op->node->offset);
    if (!rc) {
        q = ss_state_stmt(t->st, S_OUT, err, errsz, "SELECT k, h, row, n FROM %s_out ORDER BY k, h, row", p);
        rc = q ? read_tents(t->st, q, INT64_MAX, &old, &no, err, errsz) : SS_ERR_SQLITE;
    }
    /* merge by position in the order */
    size_t i = 0, j = 0;
    while (!rc && (i < nn || j < no)) {
        int c = i == nn ? 1 : j == no ? -1 : tent_cmp(&nw[i], &old[j]);
        if (c < 0) {
            rc = ss_zset_add_copy(out, nw[i].row, nw[i].n);
            i++;
        } else if (c > 0) {
            rc = ss_zset_add_copy(out, old[j].row, -old[j].n);
            j++;
        } else {
            rc = ss_zset_add_copy(out, nw[i].row, nw[i].n - old[j].n);
            i++;
            j++;
        }
    }
    sqlite3_stmt *s = rc ? NULL : ss_state_stmt(t->st, S_OCLR, err, errsz, "DELETE FROM %s_out", p);
    if (!rc)
        rc = s ? ss_state_run(t->st, s, err, errsz) : SS_ERR_SQLITE;
    for (size_t x = 0; x < nn && !rc; x++) {
        s = ss_state_stmt(t->st, S_OINS, err, errsz, "INSERT INTO %s_out(k, h, row, n) VALUES(?1, ?2, ?3, ?4)", p);
        if (!s) {
            rc = SS_ERR_SQLITE;
            break;
        }
        ss_state_bind_buf(s, 1, &nw[x].k);
        sqlite3_bind_int64(s, 2, nw[x].h);
        ss_state_bind_buf(s, 3, &nw[x].enc);
        sqlite3_bind_int64(s, 4, nw[x].n);
        rc = ss_state_run(t->st, s, err, errsz);
    }
    free_tents(nw, nn);
    free_tents(old, no);
    return rc;
}

/* The current k-th entry (its order position in *b) when the result is full (*full = 1). */
static int boundary(topk_t *t, int64_t k, tent_t *b, int *full, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(t->st, S_BOUND, err, errsz,
                                    "SELECT k, h, row, (SELECT total(n) FROM %s_out) FROM %s_out "
                                    "ORDER BY k DESC, h DESC, row DESC LIMIT 1",
                                    t->st->prefix, t->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = SS_OK;
    *full = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        *full = sqlite3_column_double(q, 3) >= (double)k;
        rc = blob_into(q, 0, &b->k);
        b->h = sqlite3_column_int64(q, 1);
        if (!rc)
            rc = blob_into(q, 2, &b->enc);
    }
    sqlite3_reset(q);
    return rc ? ss_seterr(err, errsz, rc, "out of memory") : SS_OK;
}

static int topk_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                      char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    topk_t *t = op->impl;
    const ss_plan_node_t *n = op->node;
    if (passthrough(n)) {
        int rc = ss_zset_extend(out, in, 1);
        return rc ? ss_seterr(err, errsz, rc, "out of memory") : SS_OK;
    }
    if (in->n == 0 || n->limit == 0)
        return SS_OK;
    ss_zset_t z;
    ss_zset_init(&z);
    tent_t bound, cur;
    memset(&bound, 0, sizeof bound);
    memset(&cur, 0, sizeof cur);
    int full = 0, touched = 0;
    int rc = ss_state_zset_consolidated(in, &z);
    if (!rc)
        rc = boundary(t, n->limit < 0 ? INT64_MAX : n->limit, &bound, &full, err, errsz);
    for (size_t i = 0; i < z.n && !rc; i++) {
        ss_buf_reset(&cur.k);
        ss_buf_reset(&cur.enc);
        rc = sort_key(n, z.e[i].row, &cur.k, err, errsz);
        if (!rc && ss_row_encode(z.e[i].row, &cur.enc))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = ss_state_rows_add(t->st, S_ADD, "rows", &cur.k, z.e[i].row, z.e[i].w, NULL, NULL, err, errsz);
        cur.h = ss_state_row_hash(cur.enc.data, cur.enc.len);
        touched |= !full || tent_cmp(&cur, &bound) <= 0;
    }
    if (!rc && touched)
        rc = refresh(op, out, err, errsz);
    ss_buf_free(&bound.k);
    ss_buf_free(&bound.enc);
    ss_buf_free(&cur.k);
    ss_buf_free(&cur.enc);
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "top-k (node %d)", n->id);
    return rc;
}

static int topk_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    topk_t *t = op->impl;
    if (passthrough(op->node))
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "top-k (node %d) without a limit keeps no state",
                         op->node->id);
    sqlite3_stmt *q = ss_state_stmt(t->st, S_OUT, err, errsz, "SELECT k, h, row, n FROM %s_out ORDER BY k, h, row",
                                    t->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(q, 2, 3, 0, out);
    return rc ? ss_seterr(err, errsz, rc, "top-k (node %d): bad state row", op->node->id) : SS_OK;
}

static const char *topk_strategy(const ss_op_t *op)
{
    return passthrough(op->node) ? "linear: ORDER BY without LIMIT, deltas pass through"
                               : "non-linear: all rows in an SQLite index by sort key; re-reads the first k "
                                 "only when a change sorts at or before the k-th row";
}

static void topk_destroy(ss_op_t *op)
{
    topk_t *t = op->impl;
    if (!t)
        return;
    ss_state_destroy(t->st);
    ss_buf_free(&t->rb);
    free(t);
    op->impl = NULL;
}

static const ss_op_vtable_t topk_vt = {
    "topk", SS_OPK_NONLINEAR, topk_init, topk_apply, topk_snapshot, topk_strategy, topk_destroy, NULL,
};

int ss_op_topk_init(ss_op_t *op, char *err, size_t errsz)
{
    topk_t *t = calloc(1, sizeof *t);
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &topk_vt;
    op->impl = t;
    return SS_OK;
}
