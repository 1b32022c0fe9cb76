/*
 * join.c — SS_PN_JOIN: equi-join on lkeys = rkeys with an optional residual
 * predicate on the concatenated row; INNER and LEFT.
 *
 * Bilinear rule: state is both sides' integrated multisets, the row stores
 * st_<id>_l and st_<id>_r (ss_state.h: k = encoded join key, each distinct row
 * once with its count n), indexed by key. A delta on port 0
 * is joined with the right state, then added to the left state; port 1 likewise
 * with the sides swapped. Applying port 0 then port 1 in one batch therefore
 * emits ΔL⋈R + L'⋈ΔR = ΔL⋈R + L⋈ΔR + ΔL⋈ΔR.
 *
 * Keys compare like SQL '=': 2 and 2.0 match (integral REALs are encoded as
 * INT), NULL never matches (right rows with a NULL key are not stored; left
 * ones only for LEFT joins, where they stay padded).
 *
 * LEFT join adds, for each left row l with no match (m(l) = Σ multiplicities of
 * right rows with l's key satisfying the residual, <= 0), the row l ++ NULLs.
 * That part is non-linear: a left delta emits Δl ++ NULLs when unmatched; a
 * right delta on key k recomputes, for every left row of key k, m before and
 * after and emits n_l * ([m_new <= 0] - [m_old <= 0]) copies of l ++ NULLs.
 *
 * Windows (issue 13): when a key pairs a window bound of each side with the same
 * end (options window_lcol/window_rcol/window_ladd_us/window_radd_us, from
 * src/plan_timewin.c: q8's windowed join, GROUP JOIN SEM_AGG per window), both
 * sides' rows of a window are dropped once the watermark passes its end
 * (winstate.c); their joined rows stay in the view, final.
 */
#include "ss_op.h"
#include "ss_state.h"
#include "ss_winstate.h"

#include <stdlib.h>
#include <string.h>

enum { S_SCAN_L, S_SCAN_R, S_ADD_L, S_ADD_R = S_ADD_L + 4, S_KEYS = S_ADD_R + 4, S_DROP_L, S_DROP_R, S_N };

typedef struct join {
    ss_state_t *st;
    ss_winstate_t ws;  /* keyed by window: a closed window's rows are dropped (winstate.c) */
    int col[2];        /* the window bound's column in each side's rows */
    int64_t add[2];    /* window end = that column + add */
} join_t;

typedef struct krow {  /* an input entry with its encoded key */
    ss_buf_t key;
    const ss_row_t *row;
    int64_t w;
    int null_key;
} krow_t;

typedef struct srow {  /* a state row of one key */
    ss_row_t *row;
    int64_t n;
} srow_t;

static int join_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    join_t *j = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema || n->nkeys < 0 || (n->nkeys > 0 && (!n->lkeys || !n->rkeys)))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "join node %d: missing schema or keys", n->id);
    if (!j->st && !(j->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = ss_state_rows_create(j->st, "l", err, errsz);
    if (!rc)
        rc = ss_state_rows_create(j->st, "r", err, errsz);
    j->col[0] = (int)ss_plan_opt_int(n, "window_lcol", -1);
    j->col[1] = (int)ss_plan_opt_int(n, "window_rcol", -1);
    j->add[0] = ss_plan_opt_int(n, "window_ladd_us", 0);
    j->add[1] = ss_plan_opt_int(n, "window_radd_us", 0);
    if (!rc && j->col[0] >= 0 && j->col[1] >= 0)
        rc = ss_winstate_open(&j->ws, n->id, j->col[0], j->add[0], ctx->db, err, errsz);
    return rc;
}

/* l ++ r (r NULL = nr NULLs). */
static ss_row_t *concat(const ss_row_t *l, const ss_row_t *r, int nr)
{
    ss_row_t *c = ss_row_new(l->n + nr);
    if (!c)
        return NULL;
    for (int i = 0; i < l->n; i++)
        if (ss_row_set(c, i, &l->v[i]))
            goto fail;
    for (int i = 0; r && i < r->n && i < nr; i++)
        if (ss_row_set(c, l->n + i, &r->v[i]))
            goto fail;
    return c;
fail:
    ss_row_free(c);
    return NULL;
}

/* Builds l ++ r, tests the residual; *out gets the row when it passes (else NULL). */
static int pair(const ss_plan_node_t *n, const ss_row_t *l, const ss_row_t *r, ss_row_t **out, char *err,
                size_t errsz)
{
    *out = NULL;
    ss_row_t *c = concat(l, r, r->n);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (n->pred) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(n->pred, c, &v, &owned, err, errsz);
        int ok = !rc && ss_val_truthy(&v);
        free(owned);
        if (rc || !ok) {
            ss_row_free(c);
            return rc;
        }
    }
    *out = c;
    return SS_OK;
}

static void free_srows(srow_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ss_row_free(s[i].row);
    free(s);
}

/* Loads the state rows of `side` with key k. */
static int load_side(join_t *j, int side, const ss_buf_t *k, srow_t **out, size_t *nout, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(j->st, side ? S_SCAN_R : S_SCAN_L, err, errsz,
                                    "SELECT row, n FROM %s_%s WHERE k = ?1", j->st->prefix, side ? "r" : "l");
    *out = NULL;
    *nout = 0;
    if (!q)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(q, 1, k);
    size_t cap = 0;
    int rc = SS_OK, sr;
    while (!rc && (sr = sqlite3_step(q)) == SQLITE_ROW) {
        if (*nout == cap) {
            cap = cap ? cap * 2 : 8;
            srow_t *ns = realloc(*out, cap * sizeof *ns);
            if (!ns) {
                rc = SS_ERR_NOMEM;
                break;
            }
            *out = ns;
        }
        rc = ss_state_column_row(q, 0, &(*out)[*nout].row);
        if (!rc)
            (*out)[(*nout)++].n = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    if (rc) {
        free_srows(*out, *nout);
        *out = NULL;
        *nout = 0;
        return ss_seterr(err, errsz, rc, "join state of node %d: load failed", j->st->id);
    }
    return SS_OK;
}

static int add_state(join_t *j, int side, const krow_t *x, char *err, size_t errsz)
{
    return ss_state_rows_add(j->st, side ? S_ADD_R : S_ADD_L, side ? "r" : "l", &x->key, x->row, x->w, NULL,
                             NULL, err, errsz);
}

static int emit_nulls(const ss_row_t *l, int nr, int64_t w, ss_zset_t *out)
{
    if (w == 0)
        return SS_OK;
    return ss_zset_add(out, concat(l, NULL, nr), w);
}

/* Σ multiplicities of rows in o (the other side) that pass the residual with x. */
static int match_count(const ss_plan_node_t *n, const ss_row_t *l, const srow_t *r, size_t nr, int64_t *m,
                       char *err, size_t errsz)
{
    *m = 0;
    for (size_t i = 0; i < nr; i++) {
        ss_row_t *c;
        int rc = pair(n, l, r[i].row, &c, err, errsz);
        if (rc)
            return rc;
        if (c)
            *m += r[i].n;
        ss_row_free(c);
    }
    return SS_OK;
}

/* One group of deltas sharing key g[0].key, on port `port`. */
static int apply_key(ss_op_t *op, int port, krow_t *g, size_t ng, ss_zset_t *out, char *err, size_t errsz)
{
    join_t *j = op->impl;
    const ss_plan_node_t *n = op->node;
    int left = n->join_type == SS_JOIN_LEFT;
    srow_t *o = NULL, *self = NULL;
    size_t no = 0, nself = 0;
    int rc = load_side(j, 1 - port, &g[0].key, &o, &no, err, errsz);
    if (!rc && left && port == 1)
        rc = load_side(j, 1, &g[0].key, &self, &nself, err, errsz);
    /* inner part: Δ ⋈ other state */
    for (size_t i = 0; i < ng && !rc; i++) {
        int64_t m = 0;
        for (size_t k = 0; k < no && !rc; k++) {
            const ss_row_t *l = port ? o[k].row : g[i].row, *r = port ? g[i].row : o[k].row;
            ss_row_t *c;
            rc = pair(n, l, r, &c, err, errsz);
            if (!rc && c) {
                m += o[k].n;
                rc = ss_zset_add(out, c, g[i].w * o[k].n);
            }
        }
        if (!rc && left && port == 0 && m <= 0)
            rc = emit_nulls(g[i].row, n->schema->n - g[i].row->n, g[i].w, out);
    }
    /* LEFT, right delta: left rows of this key whose matched state flips */
    for (size_t k = 0; left && port == 1 && k < no && !rc; k++) {
        int64_t mold, dm = 0;
        rc = match_count(n, o[k].row, self, nself, &mold, err, errsz);
        for (size_t i = 0; i < ng && !rc; i++) {
            ss_row_t *c;
            rc = pair(n, o[k].row, g[i].row, &c, err, errsz);
            if (c)
                dm += g[i].w;
            ss_row_free(c);
        }
        if (!rc)
            rc = emit_nulls(o[k].row, n->schema->n - o[k].row->n,
                            o[k].n * ((int64_t)(mold + dm <= 0) - (int64_t)(mold <= 0)), out);
    }
    for (size_t i = 0; i < ng && !rc; i++)
        rc = add_state(j, port, &g[i], err, errsz);
    if (!rc)
        rc = ss_winstate_note_at(&j->ws, g[0].row, j->col[port], j->add[port], &g[0].key, err, errsz);
    free_srows(o, no);
    free_srows(self, nself);
    return rc;
}

static int krow_cmp(const void *a, const void *b)
{
    const krow_t *x = a, *y = b;
    size_t n = SS_MIN(x->key.len, y->key.len);
    int c = n ? memcmp(x->key.data, y->key.data, n) : 0;
    if (c)
        return c;
    return x->key.len < y->key.len ? -1 : x->key.len > y->key.len;
}

static int join_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                      char *err, size_t errsz)
{
    (void)ctx;
    const ss_plan_node_t *n = op->node;
    if (port < 0 || port > 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "join (node %d) has no port %d", n->id, port);
    if (in->n == 0)
        return SS_OK;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    join_t *j = op->impl;
    if (!rc)
        ss_winstate_filter_at(&j->ws, n->view, &z, j->col[port], j->add[port]); /* windows already closed */
    krow_t *ks = calloc(z.n + 1, sizeof *ks);
    if (!ks)
        rc = SS_ERR_NOMEM;
    const int *cols = port ? n->rkeys : n->lkeys;
    for (size_t i = 0; i < z.n && !rc; i++) {
        ks[i].row = z.e[i].row;
        ks[i].w = z.e[i].w;
        rc = ss_state_encode_cols(z.e[i].row, cols, n->nkeys, 1, &ks[i].key, &ks[i].null_key);
    }
    if (rc)
        ss_seterr(err, errsz, rc, "join keys");
    else
        qsort(ks, z.n, sizeof *ks, krow_cmp);
    for (size_t i = 0; i < z.n && !rc;) {
        size_t e = i + 1;
        while (e < z.n && krow_cmp(&ks[i], &ks[e]) == 0)
            e++;
        if (ks[i].null_key) { /* never matches; a LEFT join keeps (and stores) left rows padded */
            for (size_t k = i; k < e && !rc && port == 0 && n->join_type == SS_JOIN_LEFT; k++) {
                rc = emit_nulls(ks[k].row, n->schema->n - ks[k].row->n, ks[k].w, out);
                if (!rc)
                    rc = add_state(op->impl, 0, &ks[k], err, errsz);
            }
        } else
            rc = apply_key(op, port, ks + i, e - i, out, err, errsz);
        i = e;
    }
    for (size_t i = 0; ks && i < z.n; i++)
        ss_buf_free(&ks[i].key);
    free(ks);
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "join (node %d)", n->id);
    return rc;
}

/* The integrated output, recomputed from both sides' state key by key. */
static int join_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    join_t *j = op->impl;
    const ss_plan_node_t *n = op->node;
    sqlite3_stmt *q = ss_state_stmt(j->st, S_KEYS, err, errsz, "SELECT DISTINCT k FROM %s_l ORDER BY k",
                                    j->st->prefix);
    if (!q)
        return SS_ERR_SQLITE;
    ss_buf_t key = SS_BUF_INIT;
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_buf_reset(&key);
        const void *p = sqlite3_column_blob(q, 0);
        rc = ss_buf_append(&key, p ? p : "", (size_t)sqlite3_column_bytes(q, 0));
        srow_t *l = NULL, *r = NULL;
        size_t nl = 0, nr = 0;
        if (!rc)
            rc = load_side(j, 0, &key, &l, &nl, err, errsz);
        if (!rc)
            rc = load_side(j, 1, &key, &r, &nr, err, errsz);
        for (size_t a = 0; a < nl && !rc; a++) {
            int64_t m = 0;
            for (size_t b = 0; b < nr && !rc; b++) {
                ss_row_t *c;
                rc = pair(n, l[a].row, r[b].row, &c, err, errsz);
                if (!rc && c) {
                    m += r[b].n;
                    rc = ss_zset_add(out, c, l[a].n * r[b].n);
                }
            }
            if (!rc && n->join_type == SS_JOIN_LEFT && m <= 0)
                rc = emit_nulls(l[a].row, n->schema->n - l[a].row->n, l[a].n, out);
        }
        free_srows(l, nl);
        free_srows(r, nr);
    }
    sqlite3_reset(q);
    ss_buf_free(&key);
    if (rc)
        ss_errprefix(err, errsz, "join (node %d) snapshot", n->id);
    return rc;
}

/* A closed window's key: both sides' rows go. */
static int drop_key(void *arg, const void *key, size_t len, char *err, size_t errsz)
{
    join_t *j = arg;
    ss_buf_t k = {(char *)key, len, len};
    for (int side = 0; side < 2; side++) {
        sqlite3_stmt *q = ss_state_stmt(j->st, side ? S_DROP_R : S_DROP_L, err, errsz, "DELETE FROM %s_%s WHERE k = ?1",
                                        j->st->prefix, side ? "r" : "l");
        if (!q)
            return SS_ERR_SQLITE;
        ss_state_bind_buf(q, 1, &k);
        int rc = ss_state_run(j->st, q, err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int join_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    (void)out;
    *due_us = SS_TIME_NONE;
    join_t *j = op->impl;
    return ss_winstate_close(&j->ws, op->watermark, drop_key, j, err, errsz);
}

static void join_rollback(ss_op_t *op) { ss_winstate_rollback(&((join_t *)op->impl)->ws); }

static const char *join_strategy(const ss_op_t *op)
{
    return op->node->join_type == SS_JOIN_LEFT
               ? "bilinear: both sides indexed by key in SQLite; left rows without match padded with NULLs "
                 "and retracted when a match appears"
               : "bilinear: both sides indexed by key in SQLite, dL join R + L' join dR";
}

static void join_destroy(ss_op_t *op)
{
    join_t *j = op->impl;
    if (!j)
        return;
    ss_state_destroy(j->st);
    ss_winstate_free(&j->ws);
    free(j);
    op->impl = NULL;
}

static const ss_op_vtable_t join_vt = {
    "join", SS_OPK_BILINEAR, join_init, join_apply, join_snapshot, join_strategy, join_destroy, join_rollback,
};

int ss_op_join_init(ss_op_t *op, char *err, size_t errsz)
{
    join_t *j = calloc(1, sizeof *j);
    if (!j)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &join_vt;
    op->impl = j;
    if (ss_plan_opt(op->node, "window_lcol"))
        op->advance = join_advance;
    return SS_OK;
}
