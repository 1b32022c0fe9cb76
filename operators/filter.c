/*
 * filter.c — SS_PN_FILTER: keeps the rows whose predicate is true (SQL truth:
 * non-NULL and non-zero). Linear, stateless: the filter of a delta is the delta
 * of the filter, so each input entry passes through with its weight or not at all.
 */
#include "ss_op.h"

#include <stdlib.h>

static int filter_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    (void)ctx;
    if (!op->node->pred)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "filter node %d has no predicate", op->node->id);
    return SS_OK;
}

static int filter_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                        char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    int stays = out->n == 0 && in->consolidated; /* a subset of a consolidated set is consolidated */
    for (size_t i = 0; i < in->n; i++) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(op->node->pred, in->e[i].row, &v, &owned, err, errsz);
        int keep = !rc && ss_val_truthy(&v);
        free(owned);
        if (rc == SS_ERR_INVALID)
            return ss_op_row_error(op, in->e[i].row, err, errsz);
        if (rc) {
            ss_errprefix(err, errsz, "filter (node %d)", op->node->id);
            return rc;
        }
        if (keep) {
            if ((rc = ss_zset_add_copy(out, in->e[i].row, in->e[i].w)))
                return ss_seterr(err, errsz, rc, "out of memory");
        }
    }
    if (stays)
        out->consolidated = 1;
    return SS_OK;
}

static const char *filter_strategy(const ss_op_t *op)
{
    (void)op;
    return "linear: predicate evaluated per changed row, no state";
}

static void filter_destroy(ss_op_t *op) { (void)op; }

static const ss_op_vtable_t filter_vt = {
    "filter", SS_OPK_LINEAR, filter_init, filter_apply, NULL, filter_strategy, filter_destroy, NULL,
};

int ss_op_filter_init(ss_op_t *op, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    op->vt = &filter_vt;
    op->impl = NULL;
    return SS_OK;
}
