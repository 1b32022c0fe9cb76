/*
 * distinct.c — SS_PN_DISTINCT: weights clamped to 1 (a row is in the output
 * once when its integrated count is positive). Non-linear: state is the
 * integrated count of every row, the row store st_<id>_cnt (ss_state.h: each
 * distinct row once, with its count n). For each changed row the output delta
 * is [n_new > 0] - [n_old > 0].
 */
#include "ss_op.h"
#include "ss_state.h"

#include <stdlib.h>

enum { S_ADD, S_SNAP = S_ADD + 4, S_N };

typedef struct distinct {
    ss_state_t *st;
    ss_buf_t k; /* the changed row's cluster key */
} distinct_t;

static int distinct_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    distinct_t *d = op->impl;
    if (!d->st && !(d->st = ss_state_new(ctx->db, op->node->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_state_rows_create(d->st, "cnt", err, errsz);
}

static int distinct_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                          char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    distinct_t *d = op->impl;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    for (size_t i = 0; i < z.n && !rc; i++) {
        int64_t o, n;
        ss_buf_reset(&d->k);
        if (ss_state_cluster_key(z.e[i].row, &d->k))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = ss_state_rows_add(d->st, S_ADD, "cnt", &d->k, z.e[i].row, z.e[i].w, &o, &n, err, errsz);
        if (!rc)
            rc = ss_zset_add_copy(out, z.e[i].row, (int64_t)(n > 0) - (int64_t)(o > 0));
    }
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "distinct (node %d)", op->node->id);
    return rc;
}

static int distinct_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    distinct_t *d = op->impl;
    sqlite3_stmt *s = ss_state_stmt(d->st, S_SNAP, err, errsz, "SELECT row FROM %s_cnt WHERE n > 0", d->st->prefix);
    if (!s)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(s, 0, -1, 1, out);
    if (rc)
        return ss_seterr(err, errsz, rc, "distinct (node %d): bad state row", op->node->id);
    return SS_OK;
}

static const char *distinct_strategy(const ss_op_t *op)
{
    (void)op;
    return "non-linear: count per distinct row in SQLite, emits a row when its count crosses 0";
}

static void distinct_destroy(ss_op_t *op)
{
    distinct_t *d = op->impl;
    if (!d)
        return;
    ss_state_destroy(d->st);
    ss_buf_free(&d->k);
    free(d);
    op->impl = NULL;
}

static const ss_op_vtable_t distinct_vt = {
    "distinct", SS_OPK_NONLINEAR, distinct_init, distinct_apply, distinct_snapshot, distinct_strategy,
    distinct_destroy, NULL,
};

int ss_op_distinct_init(ss_op_t *op, char *err, size_t errsz)
{
    distinct_t *d = calloc(1, sizeof *d);
    if (!d)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &distinct_vt;
    op->impl = d;
    return SS_OK;
}
