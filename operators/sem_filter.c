/*
 * sem_filter.c — SEM_FILTER('template'): keeps the rows the model answers " yes"
 * for (one CHOOSE forward pass over " yes"/" no" per distinct row, never free
 * decoding). Linear: its output delta is the filtered input delta.
 *
 * State: st_<id>_memo(k = canonical encoding of the template's columns, v = "1"/"0",
 * refs = live weight). A delete finds its decision there (no call) and retracts the
 * row if it had passed; an update whose referenced columns did not change finds the
 * same key (no call); a key is dropped when its weight returns to zero.
 *
 * With option cascade = '...' (docs/QUALITY.md) the model is the oracle of a
 * cascade (operators/sem_cascade.c): a proxy scores each distinct projection (a unit), the
 * oracle answers only for the samples and the band between the thresholds, and a unit whose
 * decision changes later (the thresholds moved) has its live rows emitted again. The live
 * rows are kept for that in st_<id>_crow(r = row, k = projection, w = weight).
 */
#include "ss_cascade.h"
#include "ss_embed.h"
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_filter {
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    int cascade;            /* option cascade is set */
    ss_plan_cascade_t co;   /* its settings */
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

/* ------------------------------------------------------------------ cascade */

typedef struct cas_run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_zset_t *out;
    float *instr; /* the instruction's embedding (computed once per batch, when needed) */
} cas_run_t;

static int cas_build(void *ud, const void *k, size_t kn, ss_buf_t *prompt, ss_infer_req_t *req)
{
    cas_run_t *r = ud;
    sem_filter_t *f = r->op->impl;
    ss_row_t *row = NULL;
    size_t pre = 0;
    int rc = ss_cascade_key_row(k, kn, f->cols, f->ncols, &row);
    if (!rc)
        rc = ss_sem_prompt(prompt, FILTER_TASK, r->op->node->tmpl, row, NULL, " (yes or no)", &pre);
    ss_sem_req_choose(req, NULL, pre, ss_sem_yesno);
    ss_row_free(row);
    return rc;
}

/* proxy=embed: a unit's embedding (the template's values), and its cosine with the instruction. */
static int cas_features(void *ud, const ss_buf_t *keys, int n, float *out, char *err, size_t errsz)
{
    cas_run_t *r = ud;
    sem_filter_t *f = r->op->impl;
    ss_embedder_t *e = r->ctx->emb;
    int d = e->dim, rc = SS_OK;
    if (!r->instr) {
        ss_buf_t b = SS_BUF_INIT;
        rc = ss_cascade_instruction(r->op->node->tmpl, &b);
        const char *t = ss_buf_cstr(&b);
        if (!rc && !(r->instr = malloc(sizeof(float) * (size_t)d)))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = ss_embedder_embed(e, &t, 1, r->instr, err, errsz);
        ss_buf_free(&b);
        if (rc)
            return rc;
    }
    char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        ss_row_t *row = NULL;
        ss_buf_t b = SS_BUF_INIT;
        rc = ss_cascade_key_row(keys[i].data, keys[i].len, f->cols, f->ncols, &row);
        if (!rc)
            rc = ss_cascade_row_text(r->op->node->tmpl, 0, row, &b);
        if (!rc && !ss_buf_cstr(&b))
            rc = SS_ERR_NOMEM;
        texts[i] = rc ? NULL : ss_buf_take(&b);
        ss_buf_free(&b);
        ss_row_free(row);
    }
    if (!rc)
        rc = ss_cascade_embed_features(e, r->instr, (const char *const *)texts, n, out, err, errsz);
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

/* proxy=words: a unit's text (the template's values). */
static int cas_text(void *ud, const void *k, size_t kn, ss_buf_t *out)
{
    cas_run_t *r = ud;
    sem_filter_t *f = r->op->impl;
    ss_row_t *row = NULL;
    int rc = ss_cascade_key_row(k, kn, f->cols, f->ncols, &row);
    if (!rc)
        rc = ss_cascade_row_text(r->op->node->tmpl, 0, row, out);
    ss_row_free(row);
    return rc;
}

/* A unit's decision changed: its live rows go out with weight w * (d_new - d_old). */
static int cas_changed(void *ud, const void *k, size_t kn, int d_old, int d_new, char *err, size_t errsz)
{
    cas_run_t *r = ud;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(r->ctx->db, &st, err, errsz, "SELECT r, w FROM st_%d_crow WHERE k = ?1 AND w <> 0",
                            r->op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, k, (int)kn, SQLITE_STATIC);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *row = NULL;
        rc = ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &row);
        if (!rc) {
            r->op->stats.rows_out++;
            rc = ss_zset_add(r->out, row, sqlite3_column_int64(st, 1) * (d_new - d_old));
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int cas_decide(void *ud, const ss_infer_res_t *res)
{
    cas_run_t *r = ud;
    return ss_sem_yes(res, ss_sem_yes_prob(r->op->node));
}

/* Integrates one delta entry into st_<id>_crow and its unit; emits it with the unit's decision. */
static int cas_entry(ss_op_t *op, ss_cascade_t *c, sqlite3_stmt *up, sqlite3_stmt *del, const ss_zentry_t *e,
                     ss_zset_t *out, ss_buf_t *r, ss_buf_t *k, char *err, size_t errsz)
{
    sem_filter_t *f = op->impl;
    ss_buf_reset(r);
    ss_buf_reset(k);
    int rc = ss_row_encode(e->row, r), d = 0;
    if (!rc)
        rc = ss_sem_proj(e->row, f->cols, f->ncols, k);
    if (rc)
        return rc;
    sqlite3_reset(up);
    sqlite3_bind_blob(up, 1, r->data, (int)r->len, SQLITE_STATIC);
    sqlite3_bind_blob(up, 2, k->data, (int)k->len, SQLITE_STATIC);
    sqlite3_bind_int64(up, 3, e->w);
    sqlite3_reset(del);
    sqlite3_bind_blob(del, 1, r->data, (int)r->len, SQLITE_STATIC);
    if (sqlite3_step(up) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE)
        return ss_sem_sqlerr(sqlite3_db_handle(up), err, errsz, "sem_filter rows");
    rc = ss_cascade_ref(c, k->data, k->len, e->w, &d, err, errsz);
    if (!rc && d) {
        op->stats.rows_out++;
        rc = ss_zset_add_copy(out, e->row, e->w);
    }
    return rc;
}

static int cascade_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, ss_zset_t *out, char *err,
                         size_t errsz)
{
    sem_filter_t *f = op->impl;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    if (f->co.proxy == SS_CASCADE_EMBED && !ctx->emb)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "sem_filter (node %d): cascade proxy=embed needs the engine's embedder", op->node->id);
    cas_run_t run = {op, ctx, out, NULL};
    ss_cascade_cb_t cb = {.build = cas_build, .features = cas_features, .dim = ss_cascade_embed_dim(ctx->emb),
                          .text = cas_text, .changed = cas_changed, .decide = cas_decide, .ud = &run};
    ss_cascade_t *c = NULL;
    sqlite3_stmt *up = NULL, *del = NULL;
    int rc = ss_cascade_open(op, ctx, &f->co, &cb, &c, err, errsz);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &up, err, errsz,
                            "INSERT INTO st_%d_crow(r, k, w) VALUES(?1, ?2, ?3) "
                            "ON CONFLICT(r) DO UPDATE SET w = w + excluded.w", op->node->id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz, "DELETE FROM st_%d_crow WHERE r = ?1 AND w = 0", op->node->id);
    ss_buf_t r = SS_BUF_INIT, k = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++)
        rc = cas_entry(op, c, up, del, &in->e[i], out, &r, &k, err, errsz);
    ss_buf_free(&r);
    ss_buf_free(&k);
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    if (!rc)
        rc = ss_cascade_settle(c, err, errsz);
    ss_cascade_close(c);
    free(run.instr);
    return rc;
}

static int filter_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    sem_filter_t *f = op->impl;
    int rc = ss_sem_memo_init(op, ctx, err, errsz), id = op->node->id;
    if (!rc && f->cascade)
        rc = ss_cascade_create(ctx->db, id, err, errsz);
    if (!rc && f->cascade)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_crow(r BLOB PRIMARY KEY, k BLOB, w INTEGER) WITHOUT ROWID;"
                         "CREATE INDEX IF NOT EXISTS st_%d_crow_k ON st_%d_crow(k)", id, id, id);
    return rc;
}

static int filter_apply_any(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                            char *err, size_t errsz)
{
    sem_filter_t *f = op->impl;
    return f->cascade ? cascade_apply(op, ctx, in, out, err, errsz) : filter_apply(op, ctx, port, in, out, err, errsz);
}

static const char *filter_strategy(const ss_op_t *op)
{
    const sem_filter_t *f = op->impl;
    if (f && f->cascade)
        return "cascade: a proxy scores each distinct row; the oracle (the model) answers for a sample and for the "
               "rows between two thresholds learnt from it so that recall and precision meet their targets with "
               "probability 1 - delta; scores, samples and answers memoised; a threshold change re-decides only "
               "the rows between the old and the new threshold";
    return "1 CHOOSE(yes/no) call per inserted row; decisions memoised by the template's columns: "
           "0 calls per delete or unchanged update";
}

static const ss_op_vtable_t sem_filter_vt = {
    .name = "sem_filter",
    .kind = SS_OPK_LINEAR,
    .init = filter_init,
    .apply = filter_apply_any,
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
    const char *cas = ss_plan_opt(op->node, "cascade");
    if (cas) {
        char why[SS_ERRSZ];
        if (ss_plan_cascade_parse(cas, &f->co, why, sizeof why)) {
            free(f);
            return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_filter (node %d): %s", op->node->id, why);
        }
        f->cascade = 1;
    }
    op->impl = f;
    op->vt = &sem_filter_vt;
    return SS_OK;
}
