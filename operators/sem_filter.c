/*
 * sem_filter.c — SEM_FILTER('template'): keeps the rows the model answers " yes"
 * for (one CHOOSE forward pass over " yes"/" no" per distinct row, never free
 * decoding). Linear: its output delta is the filtered input delta.
 *
 * State: st_<id>_memo(k = canonical encoding of the template's columns, v = "1"/"0",
 * refs = live weight). A delete finds its decision there (no call) and retracts the
 * row if it had passed; an update whose referenced columns did not change finds the
 * same key (no call); a key is dropped when its weight returns to zero.
 */
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_filter {
    int cols[SS_SEM_MAXCOLS];
    int ncols;
} sem_filter_t;

typedef struct filter_run {
    ss_op_t *op;
    ss_zset_t *out;
} filter_run_t;

#define FILTER_TASK "Answer yes or no: does the input satisfy the instruction?"

static int filter_build(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req)
{
    filter_run_t *r = ud;
    size_t pre = 0;
    int rc = ss_sem_prompt(prompt, FILTER_TASK, r->op->node->tmpl, row, NULL, " (yes or no)", &pre);
    ss_sem_req_choose(req, NULL, pre, ss_sem_yesno);
    return rc;
}

static int filter_encode(void *ud, const ss_infer_res_t *res, ss_buf_t *out)
{
    filter_run_t *r = ud;
    return ss_buf_putc(out, ss_sem_yes(res, ss_sem_yes_prob(r->op->node)) ? '1' : '0');
}

static int filter_emit(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                       size_t errsz)
{
    filter_run_t *r = ud;
    (void)err;
    (void)errsz;
    if (vn != 1 || v[0] != '1')
        return SS_OK;
    r->op->stats.rows_out++;
    return ss_zset_add_copy(r->out, row, w);
}

static int filter_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                        char *err, size_t errsz)
{
    sem_filter_t *f = op->impl;
    (void)port;
    filter_run_t run = {op, out};
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .cols = f->cols, .ncols = f->ncols, .gc = ss_sem_memo_prune(op->node),
        .build = filter_build, .encode = filter_encode, .emit = filter_emit, .ud = &run,
    };
    return ss_sem_memo_apply(&pw, in, err, errsz);
}

static const char *filter_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 CHOOSE(yes/no) call per inserted row; decisions memoised by the template's columns: "
           "0 calls per delete or unchanged update";
}

static const ss_op_vtable_t sem_filter_vt = {
    .name = "sem_filter",
    .kind = SS_OPK_LINEAR,
    .init = ss_sem_memo_init,
    .apply = filter_apply,
    .snapshot = NULL,
    .strategy = filter_strategy,
    .destroy = ss_sem_free_impl,
};

int ss_op_sem_filter_init(ss_op_t *op, char *err, size_t errsz)
{
    if (!op->node->tmpl || op->node->nin < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_filter (node %d): needs a template and an input",
                         op->node->id);
    int rc = ss_sem_memo_check(op->node, err, errsz);
    if (rc)
        return rc;
    sem_filter_t *f = calloc(1, sizeof *f);
    if (!f)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    f->ncols = ss_sem_tmpl_cols(op->node, 0, f->cols);
    op->impl = f;
    op->vt = &sem_filter_vt;
    return SS_OK;
}
