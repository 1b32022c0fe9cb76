/*
 * union.c — SS_PN_UNION: UNION ALL of its two inputs (Z-set sum). Linear,
 * stateless: a delta on either port passes through unchanged.
 */
#include "ss_op.h"

static int union_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    (void)op;
    (void)ctx;
    (void)err;
    (void)errsz;
    return SS_OK;
}

static int union_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                       char *err, size_t errsz)
{
    (void)ctx;
    if (port < 0 || port > 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "union (node %d) has no port %d", op->node->id, port);
    int rc = ss_zset_extend(out, in, 1);
    if (rc)
        return ss_seterr(err, errsz, rc, "out of memory");
    return SS_OK;
}

static const char *union_strategy(const ss_op_t *op)
{
    (void)op;
    return "linear: deltas of both inputs pass through, no state";
}

static void union_destroy(ss_op_t *op) { (void)op; }

static const ss_op_vtable_t union_vt = {
    "union", SS_OPK_LINEAR, union_init, union_apply, NULL, union_strategy, union_destroy, NULL,
};

int ss_op_union_init(ss_op_t *op, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    op->vt = &union_vt;
    op->impl = NULL;
    return SS_OK;
}
