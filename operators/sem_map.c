/*
 * sem_map.c — SEM_MAP('template'): appends one TEXT column (the schema's last)
 * holding the model's greedy answer for the row (one GENERATE per distinct row,
 * up to option max_tokens, default 48, stopping at a newline). Linear.
 *
 * State: st_<id>_memo(k = canonical encoding of the template's columns, v = the
 * generated text, refs = live weight): deletes and updates that leave the
 * referenced columns unchanged reuse the stored text and cost no call.
 */
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_map {
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    int max_tokens;
} sem_map_t;

typedef struct map_run {
    ss_op_t *op;
    ss_zset_t *out;
} map_run_t;

#define MAP_TASK "Follow the instruction for the input; answer in one line."

static int map_build(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req)
{
    map_run_t *r = ud;
    sem_map_t *m = r->op->impl;
    size_t pre = 0;
    int rc = ss_sem_prompt(prompt, MAP_TASK, r->op->node->tmpl, row, NULL, NULL, &pre);
    ss_sem_req_generate(req, NULL, pre, m->max_tokens);
    ss_sem_req_sampling(req, r->op->node, ss_buf_cstr(prompt), prompt->len);
    return rc;
}

static int map_encode(void *ud, const ss_infer_res_t *res, ss_buf_t *out)
{
    (void)ud;
    char *t = ss_sem_gen_text(res);
    if (!t)
        return SS_ERR_NOMEM;
    int rc = ss_buf_puts(out, t);
    free(t);
    return rc;
}

static int map_emit(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                    size_t errsz)
{
    map_run_t *r = ud;
    int n = r->op->node->schema ? r->op->node->schema->n : row->n + 1;
    if (n != row->n + 1)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "sem_map (node %d): schema has %d columns, row %d",
                         r->op->node->id, n, row->n);
    ss_row_t *o = ss_row_new(n);
    if (!o)
        return SS_ERR_NOMEM;
    int rc = SS_OK;
    for (int i = 0; i < row->n && !rc; i++)
        rc = ss_row_set(o, i, &row->v[i]);
    ss_value_t t = ss_val_text_ref(v, vn);
    if (!rc)
        rc = ss_row_set(o, row->n, &t);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    r->op->stats.rows_out++;
    return ss_zset_add(r->out, o, w);
}

static int map_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                     char *err, size_t errsz)
{
    sem_map_t *m = op->impl;
    (void)port;
    map_run_t run = {op, out};
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .cols = m->cols, .ncols = m->ncols, .gc = ss_sem_memo_prune(op->node),
        .build = map_build, .encode = map_encode, .emit = map_emit, .ud = &run,
    };
    return ss_sem_memo_apply(&pw, in, err, errsz);
}

static const char *map_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 GENERATE call per inserted row; outputs memoised by the template's columns: "
           "0 calls per delete or unchanged update";
}

static const ss_op_vtable_t sem_map_vt = {
    .name = "sem_map",
    .kind = SS_OPK_LINEAR,
    .init = ss_sem_memo_init,
    .apply = map_apply,
    .snapshot = NULL,
    .strategy = map_strategy,
    .destroy = ss_sem_free_impl,
};

int ss_op_sem_map_init(ss_op_t *op, char *err, size_t errsz)
{
    if (!op->node->tmpl || op->node->nin < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_map (node %d): needs a template and an input",
                         op->node->id);
    int rc = ss_sem_memo_check(op->node, err, errsz);
    if (rc)
        return rc;
    sem_map_t *m = calloc(1, sizeof *m);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    m->ncols = ss_sem_tmpl_cols(op->node, 0, m->cols);
    m->max_tokens = ss_sem_max_tokens(op->node, 48);
    op->impl = m;
    op->vt = &sem_map_vt;
    return SS_OK;
}
