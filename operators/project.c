/*
 * project.c — SS_PN_PROJECT: evaluates one expression per output column
 * (node->exprs, output schema = node->schema). Linear, stateless: each input
 * entry maps to one output entry with the same weight. A column typed REAL
 * holds REALs only: an INT an expression yields there (COALESCE(int, real))
 * becomes REAL, so a column never mixes 2 and 2.0, and GROUP BY, DISTINCT,
 * joins and WHERE all see one representation per number (as PostgreSQL,
 * whose columns have one type). Other values are emitted as computed.
 */
#include "ss_op.h"

#include <stdlib.h>

static int project_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    (void)ctx;
    if (op->node->nexprs <= 0 || !op->node->exprs)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "project node %d has no expressions", op->node->id);
    return SS_OK;
}

static int project_row(const ss_op_t *op, const ss_row_t *in, ss_row_t **out, char *err, size_t errsz)
{
    const ss_plan_node_t *n = op->node;
    ss_row_t *r = ss_row_new(n->nexprs);
    if (!r)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n->nexprs; j++) {
        ss_value_t v;
        char *owned = NULL;
        int rc = ss_expr_eval(n->exprs[j], in, &v, &owned, err, errsz);
        if (!rc && v.t == SS_INT && n->schema && j < n->schema->n && n->schema->types[j] == SS_COL_REAL)
            v = ss_val_real((double)v.u.i);
        if (!rc && (rc = ss_row_set(r, j, &v)))
            ss_seterr(err, errsz, rc, "out of memory");
        free(owned);
        if (rc == SS_ERR_INVALID) {
            ss_row_free(r);
            return ss_op_row_error(op, in, err, errsz);
        }
        if (rc) {
            ss_row_free(r);
            ss_errprefix(err, errsz, "project (node %d) column %d", n->id, j + 1);
            return rc;
        }
    }
    *out = r;
    return SS_OK;
}

static int project_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                         char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    for (size_t i = 0; i < in->n; i++) {
        ss_row_t *r = NULL;
        int rc = project_row(op, in->e[i].row, &r, err, errsz);
        if (rc)
            return rc;
        if ((rc = ss_zset_add(out, r, in->e[i].w)))
            return ss_seterr(err, errsz, rc, "out of memory");
    }
    return SS_OK;
}

static const char *project_strategy(const ss_op_t *op)
{
    (void)op;
    return "linear: expressions evaluated per changed row, no state";
}

static void project_destroy(ss_op_t *op) { (void)op; }

static const ss_op_vtable_t project_vt = {
    "project", SS_OPK_LINEAR, project_init, project_apply, NULL, project_strategy, project_destroy, NULL,
};

int ss_op_project_init(ss_op_t *op, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    op->vt = &project_vt;
    op->impl = NULL;
    return SS_OK;
}
