/*
 * sem_join_cascade.c — SEM_JOIN with option cascade = '...' (docs/QUALITY.md): the model is
 * the oracle of a cascade (operators/sem_cascade.c) whose units are pairs of projections
 * (the left row's values of the template's columns, the right row's), so a pair of distinct
 * projections is one unit however many rows carry them. A cheap proxy scores every pair —
 * proxy=embed: logistic regression over [a ⊙ b, |a − b|, cos(a, b)] of the two sides'
 * embeddings; proxy=words: naive Bayes over both sides' words; proxy=model:NAME: a small
 * model's P(yes) — and the oracle answers only for the sample and the band between the
 * thresholds, so the join meets the recall and precision targets with probability 1 − delta
 * without asking about every pair.
 *
 * Incremental like the exhaustive join (bilinear: dA ⋈ B, then (A + dA) ⋈ dB): a delta row
 * moves the live weight of its unit with each projection of the other side and goes out with
 * each unit's decision before the batch; the cascade's settle decides the new units and any
 * whose threshold moved, and each unit whose decision changed emits all its live row pairs
 * with weight (d_new − d_old). Deletes cost no call.
 *
 * State: the join's st_<id>_s0 / st_<id>_s1 (rows, weights, projections) and the cascade's
 * tables (st_<id>_cu units with scores, labels and decisions; st_<id>_cplan). Owns nothing
 * beyond one call.
 */
#include "ss_cascade.h"
#include "ss_embed.h"
#include "ss_sem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct jc_run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    const ss_sem_join_cascade_t *jc;
    ss_zset_t *out;
    sqlite3_stmt *pairs; /* emit_unit's query, prepared once per call of the operator */
} jc_run_t;

/* ------------------------------------------------------------------ pair keys */

int ss_sem_join_pair_key(const ss_buf_t *lk, const ss_buf_t *rk, ss_buf_t *key)
{
    uint32_t n = (uint32_t)lk->len;
    int rc = ss_buf_append(key, &n, sizeof n);
    if (!rc && lk->len)
        rc = ss_buf_append(key, lk->data, lk->len);
    if (!rc && rk->len)
        rc = ss_buf_append(key, rk->data, rk->len);
    return rc;
}

/* Splits a pair key into its two projections (pointers into k). */
static int split_key(const void *k, size_t kn, const uint8_t **l, size_t *ln, const uint8_t **r, size_t *rn)
{
    uint32_t n;
    if (kn < sizeof n)
        return SS_ERR_INVALID;
    memcpy(&n, k, sizeof n);
    if (n > kn - sizeof n)
        return SS_ERR_INVALID;
    *l = (const uint8_t *)k + sizeof n;
    *ln = n;
    *r = *l + n;
    *rn = kn - sizeof n - n;
    return SS_OK;
}

/* The two rows a pair key stands for (template columns filled, the others NULL). */
static int key_rows(const jc_run_t *r, const void *k, size_t kn, ss_row_t **a, ss_row_t **b)
{
    const uint8_t *l, *rr;
    size_t ln, rn;
    *a = *b = NULL;
    int rc = split_key(k, kn, &l, &ln, &rr, &rn);
    if (!rc)
        rc = ss_cascade_key_row(l, ln, r->jc->cols[0], r->jc->ncols[0], a);
    if (!rc)
        rc = ss_cascade_key_row(rr, rn, r->jc->cols[1], r->jc->ncols[1], b);
    if (rc) {
        ss_row_free(*a);
        ss_row_free(*b);
        *a = *b = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------ cascade callbacks */

static int jc_build(void *ud, const void *k, size_t kn, ss_buf_t *prompt, ss_infer_req_t *req)
{
    jc_run_t *r = ud;
    ss_row_t *a = NULL, *b = NULL;
    size_t pre = 0;
    int rc = key_rows(r, k, kn, &a, &b);
    if (!rc)
        rc = ss_sem_prompt(prompt, SS_SEM_JOIN_TASK, r->op->node->tmpl, a, b, " (yes or no)", &pre);
    ss_sem_req_choose(req, NULL, pre, ss_sem_yesno);
    ss_row_free(a);
    ss_row_free(b);
    return rc;
}

/* The texts of both sides of each pair: texts[2i] left, texts[2i+1] right. */
static int pair_texts(jc_run_t *r, const ss_buf_t *keys, int n, char **texts)
{
    int rc = SS_OK;
    for (int i = 0; i < n && !rc; i++) {
        ss_row_t *a = NULL, *b = NULL;
        ss_buf_t ta = SS_BUF_INIT, tb = SS_BUF_INIT;
        rc = key_rows(r, keys[i].data, keys[i].len, &a, &b);
        if (!rc)
            rc = ss_cascade_row_text(r->op->node->tmpl, 0, a, &ta);
        if (!rc)
            rc = ss_cascade_row_text(r->op->node->tmpl, 1, b, &tb);
        if (!rc && (!ss_buf_cstr(&ta) || !ss_buf_cstr(&tb)))
            rc = SS_ERR_NOMEM;
        texts[2 * i] = rc ? NULL : ss_buf_take(&ta);
        texts[2 * i + 1] = rc ? NULL : ss_buf_take(&tb);
        ss_buf_free(&ta);
        ss_buf_free(&tb);
        ss_row_free(a);
        ss_row_free(b);
    }
    return rc;
}

int ss_sem_join_cascade_dim(const ss_embedder_t *e)
{
    return e ? 2 * e->dim + 1 : 0;
}

/* proxy=embed: [a ⊙ b, |a − b|, cos(a, b)] of the two sides' embeddings (unit length). */
static int jc_features(void *ud, const ss_buf_t *keys, int n, float *out, char *err, size_t errsz)
{
    jc_run_t *r = ud;
    ss_embedder_t *e = r->ctx->emb;
    int d = e->dim, dim = ss_sem_join_cascade_dim(e), rc = SS_OK;
    char **texts = calloc((size_t)(2 * n + 1), sizeof *texts);
    float *v = malloc(sizeof(float) * (size_t)(2 * n + 1) * (size_t)d);
    if (!texts || !v)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc && pair_texts(r, keys, n, texts))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "sem_join (node %d): cascade: a pair key does not decode",
                       r->op->node->id);
    if (!rc)
        rc = ss_embedder_embed(e, (const char *const *)texts, 2 * n, v, err, errsz);
    for (int i = 0; i < n && !rc; i++) {
        float *a = v + (size_t)(2 * i) * (size_t)d, *b = a + d, *o = out + (size_t)i * (size_t)dim;
        ss_vec_normalize(a, d);
        ss_vec_normalize(b, d);
        float dot = 0;
        for (int j = 0; j < d; j++) {
            o[j] = a[j] * b[j];
            o[d + j] = fabsf(a[j] - b[j]);
            dot += a[j] * b[j];
        }
        o[dim - 1] = dot;
    }
    for (int i = 0; texts && i < 2 * n; i++)
        free(texts[i]);
    free(texts);
    free(v);
    return rc;
}

/* proxy=words: both sides' texts, the right side's words marked so the two sides stay apart. */
static int jc_text(void *ud, const void *k, size_t kn, ss_buf_t *out)
{
    jc_run_t *r = ud;
    ss_row_t *a = NULL, *b = NULL;
    int rc = key_rows(r, k, kn, &a, &b);
    if (!rc)
        rc = ss_cascade_row_text(r->op->node->tmpl, 0, a, out);
    if (!rc)
        rc = ss_buf_putc(out, '\n');
    if (!rc)
        rc = ss_cascade_row_text(r->op->node->tmpl, 1, b, out);
    ss_row_free(a);
    ss_row_free(b);
    return rc;
}

/* Emits every live row pair of unit k (left rows with its left projection × right rows with its
 * right one) with weight wl * wr * m. */
static int emit_unit(jc_run_t *r, const void *k, size_t kn, int64_t m, char *err, size_t errsz)
{
    const uint8_t *p[2];
    size_t pn[2];
    if (split_key(k, kn, &p[0], &pn[0], &p[1], &pn[1]))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_join (node %d): cascade: a pair key does not decode",
                         r->op->node->id);
    int rc = r->pairs ? SS_OK
                      : ss_sem_prepare(r->ctx->db, &r->pairs, err, errsz,
                                       "SELECT a.r, a.w, b.r, b.w FROM st_%d_s0 a, st_%d_s1 b "
                                       "WHERE a.k = ?1 AND a.w > 0 AND b.k = ?2 AND b.w > 0",
                                       r->op->node->id, r->op->node->id);
    if (rc)
        return rc;
    sqlite3_stmt *st = r->pairs;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, pn[0] ? (const void *)p[0] : "", (int)pn[0], SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, pn[1] ? (const void *)p[1] : "", (int)pn[1], SQLITE_STATIC);
    int s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        ss_buf_t l = SS_BUF_INIT, rr = SS_BUF_INIT;
        rc = ss_buf_append(&l, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = ss_buf_append(&rr, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
        if (!rc)
            rc = ss_sem_join_emit(&l, &rr, sqlite3_column_int64(st, 1) * sqlite3_column_int64(st, 3) * m, r->out);
        if (!rc)
            r->op->stats.rows_out++;
        ss_buf_free(&l);
        ss_buf_free(&rr);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(r->ctx->db, err, errsz, "sem_join cascade pairs");
    sqlite3_reset(st);
    return rc;
}

static int jc_changed(void *ud, const void *k, size_t kn, int d_old, int d_new, char *err, size_t errsz)
{
    return emit_unit(ud, k, kn, d_new - d_old, err, errsz);
}

static int jc_decide(void *ud, const ss_infer_res_t *res)
{
    jc_run_t *r = ud;
    return ss_sem_yes(res, r->jc->yes_prob);
}

/* ------------------------------------------------------------------ apply */

typedef struct orow {
    ss_buf_t r, k;
    int64_t w;
} orow_t;

static void orows_free(orow_t *o, int n)
{
    for (int i = 0; i < n; i++) {
        ss_buf_free(&o[i].r);
        ss_buf_free(&o[i].k);
    }
    free(o);
}

/* The live rows of side o, grouped by projection. */
static int other_rows(jc_run_t *r, int o, orow_t **out, int *n, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(r->ctx->db, &st, err, errsz, "SELECT r, k, w FROM st_%d_s%d WHERE w > 0 ORDER BY k, r",
                            r->op->node->id, o);
    int cap = 0, s = SQLITE_DONE;
    *out = NULL;
    *n = 0;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            orow_t *v = realloc(*out, sizeof *v * (size_t)cap);
            if (!v) {
                rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
                break;
            }
            *out = v;
        }
        orow_t *x = &(*out)[(*n)++];
        memset(x, 0, sizeof *x);
        if (ss_buf_append(&x->r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)) ||
            ss_buf_append(&x->k, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1)))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        x->w = sqlite3_column_int64(st, 2);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(r->ctx->db, err, errsz, "sem_join cascade rows");
    sqlite3_finalize(st);
    return rc;
}

/* Integrates one delta row into its side's rows table. */
static int integrate(jc_run_t *r, sqlite3_stmt *up, sqlite3_stmt *del, const ss_buf_t *row, const ss_buf_t *k,
                     int64_t dw, char *err, size_t errsz)
{
    sqlite3_reset(up);
    sqlite3_bind_blob(up, 1, row->data, (int)row->len, SQLITE_STATIC);
    sqlite3_bind_int64(up, 2, dw);
    sqlite3_bind_blob(up, 3, k->len ? (const void *)k->data : "", (int)k->len, SQLITE_STATIC);
    sqlite3_reset(del);
    sqlite3_bind_blob(del, 1, row->data, (int)row->len, SQLITE_STATIC);
    if (sqlite3_step(up) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE)
        return ss_sem_sqlerr(r->ctx->db, err, errsz, "sem_join cascade rows");
    return SS_OK;
}

/* One delta row x of side `side` against every projection group of the other side: each unit's
 * weight moves by dw × the group's weight; x goes out with the unit's decision before the batch. */
static int entry(jc_run_t *r, ss_cascade_t *c, int side, const ss_buf_t *x, const ss_buf_t *kx, int64_t dw,
                 const orow_t *o, int no, char *err, size_t errsz)
{
    int rc = SS_OK;
    ss_buf_t key = SS_BUF_INIT;
    for (int g = 0; g < no && !rc;) {
        int e = g;
        int64_t W = 0;
        while (e < no && o[e].k.len == o[g].k.len && !memcmp(o[e].k.data, o[g].k.data, o[g].k.len))
            W += o[e++].w;
        ss_buf_reset(&key);
        rc = side == 0 ? ss_sem_join_pair_key(kx, &o[g].k, &key) : ss_sem_join_pair_key(&o[g].k, kx, &key);
        int d = 0;
        if (!rc)
            rc = ss_cascade_ref(c, key.data, key.len, dw * W, &d, err, errsz);
        for (int i = g; d && i < e && !rc; i++) {
            rc = side == 0 ? ss_sem_join_emit(x, &o[i].r, dw * o[i].w, r->out)
                           : ss_sem_join_emit(&o[i].r, x, dw * o[i].w, r->out);
            r->op->stats.rows_out++;
        }
        g = e;
    }
    ss_buf_free(&key);
    return rc;
}

int ss_sem_join_cascade_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_join_cascade_t *jc, int side,
                              const ss_zset_t *in, ss_zset_t *out, char *err, size_t errsz)
{
    if (jc->co.proxy == SS_CASCADE_EMBED && !ctx->emb)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "sem_join (node %d): cascade proxy=embed needs the engine's embedder", op->node->id);
    jc_run_t run = {op, ctx, jc, out, NULL};
    ss_cascade_cb_t cb = {.build = jc_build, .features = jc_features, .dim = ss_sem_join_cascade_dim(ctx->emb),
                          .text = jc_text, .changed = jc_changed, .decide = jc_decide, .ud = &run};
    ss_cascade_t *c = NULL;
    sqlite3_stmt *up = NULL, *del = NULL;
    orow_t *o = NULL;
    int no = 0, id = op->node->id;
    int rc = ss_cascade_open(op, ctx, &jc->co, &cb, &c, err, errsz);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &up, err, errsz,
                            "INSERT INTO st_%d_s%d(r, w, k) VALUES(?1, ?2, ?3) "
                            "ON CONFLICT(r) DO UPDATE SET w = w + excluded.w", id, side);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz, "DELETE FROM st_%d_s%d WHERE r = ?1 AND w = 0", id, side);
    if (!rc)
        rc = other_rows(&run, 1 - side, &o, &no, err, errsz);
    ss_buf_t x = SS_BUF_INIT, kx = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++) {
        ss_buf_reset(&x);
        ss_buf_reset(&kx);
        rc = ss_row_encode(in->e[i].row, &x);
        if (!rc)
            rc = ss_sem_proj(in->e[i].row, jc->cols[side], jc->ncols[side], &kx);
        if (!rc)
            rc = integrate(&run, up, del, &x, &kx, in->e[i].w, err, errsz);
        if (!rc)
            rc = entry(&run, c, side, &x, &kx, in->e[i].w, o, no, err, errsz);
    }
    ss_buf_free(&x);
    ss_buf_free(&kx);
    orows_free(o, no);
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    if (!rc)
        rc = ss_cascade_settle(c, err, errsz);
    ss_cascade_close(c);
    sqlite3_finalize(run.pairs);
    return rc;
}

/* The whole output: every live row pair of every unit decided yes. */
int ss_sem_join_cascade_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_join_cascade_t *jc, ss_zset_t *out,
                                 char *err, size_t errsz)
{
    jc_run_t run = {op, ctx, jc, out, NULL};
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT k FROM st_%d_cu WHERE d = 1 AND w > 0", op->node->id);
    int s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW)
        rc = emit_unit(&run, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), 1, err, errsz);
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_join cascade units");
    sqlite3_finalize(st);
    sqlite3_finalize(run.pairs);
    return rc;
}
