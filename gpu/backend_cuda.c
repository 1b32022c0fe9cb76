/*
 * backend_cuda.c — the CUDA backend of the inference engine: the same
 * backend_ops_t as forward_cpu.c (upload / reserve / forward over a ubatch /
 * destroy), running every stage on the GPU through the kernels of ss_cuda.h.
 * Weights are uploaded once (Q8_0 repacked for 16-byte loads); the paged KV
 * cache lives on the device as one K and one V pool per layer, indexed by the
 * engine's block ids, so the prefix cache of engine.c works unchanged. Only the
 * logits of output rows (and pooled hidden states) come back to the host.
 * Also: ss_backend_cuda_new, the ss_infer_backend_t used by `semstream worker --gpu`.
 */
#ifdef SS_HAVE_CUDA
#include "llm_internal.h"
#include "ss_cuda.h"
#include "ss_llm_cuda.h"

#include <stdlib.h>
#include <string.h>

typedef struct dlayer {
    ss_cuda_weight_t wq, wk, wv, wo, gate, up, down;
    float *attn_norm, *ffn_norm, *bq, *bk, *bv;
    float *kpool, *vpool; /* [cap_blocks][nkv][KV_BLOCK][hd] */
} dlayer_t;

typedef struct cuda_be {
    ss_llm_t *m;
    ss_cuda_t *c;
    dlayer_t *L;
    ss_cuda_weight_t embd, output;
    float *out_norm;
    int cap_blocks;
    /* activations for up to tcap tokens, and per-batch index arrays */
    int tcap, ocap;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2, *xo, *logits;
    int32_t *tok, *pos, *seq, *tiles, *outidx, *bt;
    size_t bt_cap;
    /* host staging */
    int32_t *h_seq, *h_tiles, *h_outidx, *h_bt;
    const int **h_seqptr;
    int h_cap;
    float *h_hid;
} cuda_be_t;

static int upload_f32(ss_cuda_t *c, float **d, const float *h, size_t n, char *err, size_t errsz)
{
    *d = NULL;
    if (!h)
        return SS_OK;
    int rc = ss_cuda_malloc(c, (void **)d, n * 4, err, errsz);
    return rc ? rc : ss_cuda_h2d(c, *d, h, n * 4, err, errsz);
}

static int upload_w(ss_cuda_t *c, ss_cuda_weight_t *d, const wmat_t *w, char *err, size_t errsz)
{
    int rc = ss_cuda_weight_upload(c, d, w->type, w->rows, w->cols, w->data, err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "CUDA upload of a %dx%d weight", w->rows, w->cols);
    return rc;
}

static void cuda_destroy(void *ctx)
{
    cuda_be_t *b = ctx;
    if (!b)
        return;
    ss_cuda_close(b->c); /* frees every device allocation */
    free(b->L);
    free(b->h_seq), free(b->h_tiles), free(b->h_outidx), free(b->h_bt), free(b->h_seqptr), free(b->h_hid);
    free(b);
}

static ss_err_t cuda_upload_dev(ss_llm_t *m, void **ctx, int device, char *err, size_t errsz)
{
    cuda_be_t *b = calloc(1, sizeof *b);
    if (!b)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    b->m = m;
    int rc = ss_cuda_open(device, &b->c, err, errsz);
    const ss_llm_config_t *g = &m->cfg;
    b->L = rc ? NULL : calloc((size_t)g->n_layers, sizeof *b->L);
    if (!rc && !b->L)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim;
    for (int l = 0; !rc && l < g->n_layers; l++) {
        const layer_w_t *w = &m->w.layers[l];
        dlayer_t *d = &b->L[l];
        if ((rc = upload_w(b->c, &d->wq, &w->wq, err, errsz)) || (rc = upload_w(b->c, &d->wk, &w->wk, err, errsz)) ||
            (rc = upload_w(b->c, &d->wv, &w->wv, err, errsz)) || (rc = upload_w(b->c, &d->wo, &w->wo, err, errsz)) ||
            (rc = upload_w(b->c, &d->gate, &w->w_gate, err, errsz)) ||
            (rc = upload_w(b->c, &d->up, &w->w_up, err, errsz)) ||
            (rc = upload_w(b->c, &d->down, &w->w_down, err, errsz)) ||
            (rc = upload_f32(b->c, &d->attn_norm, w->attn_norm, (size_t)g->dim, err, errsz)) ||
            (rc = upload_f32(b->c, &d->ffn_norm, w->ffn_norm, (size_t)g->dim, err, errsz)) ||
            (rc = upload_f32(b->c, &d->bq, w->bq, (size_t)qd, err, errsz)) ||
            (rc = upload_f32(b->c, &d->bk, w->bk, (size_t)kvd, err, errsz)) ||
            (rc = upload_f32(b->c, &d->bv, w->bv, (size_t)kvd, err, errsz)))
            break;
    }
    if (!rc)
        rc = upload_w(b->c, &b->embd, &m->w.tok_embd, err, errsz);
    if (!rc) {
        if (m->w.output.data == m->w.tok_embd.data)
            b->output = b->embd; /* tied: one copy on the device */
        else
            rc = upload_w(b->c, &b->output, &m->w.output, err, errsz);
    }
    if (!rc)
        rc = upload_f32(b->c, &b->out_norm, m->w.out_norm, (size_t)g->dim, err, errsz);
    if (rc) {
        cuda_destroy(b);
        return rc;
    }
    *ctx = b;
    return SS_OK;
}

static ss_err_t cuda_upload(ss_llm_t *m, void **ctx, char *err, size_t errsz)
{
    return cuda_upload_dev(m, ctx, 0, err, errsz);
}

static ss_err_t cuda_reserve(void *ctx, int nblocks, char *err, size_t errsz)
{
    cuda_be_t *b = ctx;
    if (nblocks <= b->cap_blocks)
        return SS_OK;
    const ss_llm_config_t *g = &b->m->cfg;
    int ncap = SS_MAX(nblocks, 2 * b->cap_blocks + 64);
    size_t per = (size_t)g->n_kv_heads * KV_BLOCK * g->head_dim * sizeof(float);
    for (int l = 0; l < g->n_layers; l++) {
        dlayer_t *d = &b->L[l];
        float *nk, *nv;
        int rc = ss_cuda_malloc(b->c, (void **)&nk, per * ncap, err, errsz);
        if (!rc)
            rc = ss_cuda_malloc(b->c, (void **)&nv, per * ncap, err, errsz);
        if (rc)
            return rc;
        if (b->cap_blocks) { /* keep the cached prefixes */
            if ((rc = ss_cuda_d2d(b->c, nk, d->kpool, per * b->cap_blocks, err, errsz)) ||
                (rc = ss_cuda_d2d(b->c, nv, d->vpool, per * b->cap_blocks, err, errsz)))
                return rc;
            ss_cuda_free(b->c, d->kpool);
            ss_cuda_free(b->c, d->vpool);
        }
        d->kpool = nk;
        d->vpool = nv;
    }
    b->cap_blocks = ncap;
    return SS_OK;
}

#define DEV_ALLOC(ptr, bytes)                                                                                  \
    do {                                                                                                       \
        ss_cuda_free(b->c, ptr);                                                                               \
        ptr = NULL;                                                                                            \
        if ((rc = ss_cuda_malloc(b->c, (void **)&(ptr), (bytes), err, errsz)))                               \
            return rc;                                                                                         \
    } while (0)

static int ensure_acts(cuda_be_t *b, int n, int nout, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    int rc;
    size_t t = (size_t)n, d = (size_t)g->dim, qd = (size_t)g->n_heads * g->head_dim;
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim, h = (size_t)g->hidden_dim;
    if (n > b->tcap) {
        DEV_ALLOC(b->x, t * d * 4); DEV_ALLOC(b->xb, t * d * 4); DEV_ALLOC(b->xb2, t * d * 4);
        DEV_ALLOC(b->q, t * qd * 4); DEV_ALLOC(b->k, t * kvd * 4); DEV_ALLOC(b->v, t * kvd * 4);
        DEV_ALLOC(b->att, t * qd * 4); DEV_ALLOC(b->hb, t * h * 4); DEV_ALLOC(b->hb2, t * h * 4);
        DEV_ALLOC(b->tok, t * 4); DEV_ALLOC(b->pos, t * 4); DEV_ALLOC(b->seq, t * 4);
        DEV_ALLOC(b->tiles, t * 8); DEV_ALLOC(b->outidx, t * 4);
        free(b->h_seq), free(b->h_tiles), free(b->h_outidx), free(b->h_seqptr);
        b->h_seq = malloc(t * 4);
        b->h_tiles = malloc(t * 8);
        b->h_outidx = malloc(t * 4);
        b->h_seqptr = malloc(t * sizeof *b->h_seqptr);
        if (!b->h_seq || !b->h_tiles || !b->h_outidx || !b->h_seqptr)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        b->tcap = n;
    }
    if (nout > b->ocap) {
        DEV_ALLOC(b->xo, (size_t)nout * d * 4);
        DEV_ALLOC(b->logits, (size_t)nout * g->vocab_size * 4);
        b->ocap = nout;
    }
    return SS_OK;
}

/* Groups the ubatch's tokens by sequence: a compact block table, per-token sequence index,
 * and attention tiles (runs of up to 16 consecutive tokens of one sequence). */
static int plan_batch(cuda_be_t *b, const ubatch_t *ub, int *nseq, int *max_blocks, int *ntiles, char *err,
                      size_t errsz)
{
    int ns = 0, mb = 1, nt = 0;
    for (int t = 0; t < ub->n; t++) {
        int s = -1;
        for (int j = ns - 1; j >= 0 && s < 0; j--) /* tokens of a sequence are usually adjacent */
            if (b->h_seqptr[j] == ub->blocks[t])
                s = j;
        if (s < 0) {
            s = ns++;
            b->h_seqptr[s] = ub->blocks[t];
        }
        b->h_seq[t] = s;
        mb = SS_MAX(mb, ub->pos[t] / KV_BLOCK + 1);
        if (nt > 0 && b->h_seq[b->h_tiles[2 * (nt - 1)]] == s && b->h_tiles[2 * (nt - 1) + 1] < 16 &&
            b->h_tiles[2 * (nt - 1)] + b->h_tiles[2 * (nt - 1) + 1] == t)
            b->h_tiles[2 * (nt - 1) + 1]++;
        else {
            b->h_tiles[2 * nt] = t;
            b->h_tiles[2 * nt + 1] = 1;
            nt++;
        }
    }
    /* block table: each sequence's blocks up to the largest position of the batch */
    size_t need = (size_t)ns * mb;
    if (need > b->bt_cap) {
        int rc;
        DEV_ALLOC(b->bt, need * 4);
        free(b->h_bt);
        if (!(b->h_bt = malloc(need * 4)))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        b->bt_cap = need;
    }
    for (int s = 0; s < ns; s++) {
        int maxp = 0;
        for (int t = 0; t < ub->n; t++)
            if (b->h_seq[t] == s)
                maxp = SS_MAX(maxp, ub->pos[t]);
        for (int k = 0; k < mb; k++)
            b->h_bt[(size_t)s * mb + k] = k <= maxp / KV_BLOCK ? b->h_seqptr[s][k] : 0;
    }
    *nseq = ns;
    *max_blocks = mb;
    *ntiles = nt;
    return SS_OK;
}

static int layer_fwd(cuda_be_t *b, const ubatch_t *ub, int l, int mb, int nt, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    dlayer_t *L = &b->L[l];
    ss_cuda_t *c = b->c;
    int n = ub->n, d = g->dim, hd = g->head_dim, qd = g->n_heads * hd, kvd = g->n_kv_heads * hd;
    int rc = ss_cuda_rmsnorm(c, b->xb, b->x, L->attn_norm, n, d, g->norm_eps);
    if (!rc) rc = ss_cuda_matmul(c, b->q, b->xb, &L->wq, L->bq, n, err, errsz);
    if (!rc) rc = ss_cuda_matmul(c, b->k, b->xb, &L->wk, L->bk, n, err, errsz);
    if (!rc) rc = ss_cuda_matmul(c, b->v, b->xb, &L->wv, L->bv, n, err, errsz);
    if (!rc) rc = ss_cuda_rope(c, b->q, b->pos, n, g->n_heads, hd, g->rope_dim, g->rope_base, g->rope_neox);
    if (!rc) rc = ss_cuda_rope(c, b->k, b->pos, n, g->n_kv_heads, hd, g->rope_dim, g->rope_base, g->rope_neox);
    if (!rc) rc = ss_cuda_kv_store(c, L->kpool, L->vpool, b->k, b->v, b->bt, mb, b->seq, b->pos, n, g->n_kv_heads, hd);
    if (!rc) rc = ss_cuda_attention(c, b->att, b->q, L->kpool, L->vpool, b->bt, mb, b->seq, b->pos, n, b->tiles,
                                    b->tiles + b->tcap, nt, g->n_heads, g->n_kv_heads, hd);
    if (!rc) rc = ss_cuda_matmul(c, b->xb2, b->att, &L->wo, NULL, n, err, errsz);
    if (!rc) rc = ss_cuda_add(c, b->x, b->xb2, (size_t)n * d);
    if (!rc) rc = ss_cuda_rmsnorm(c, b->xb, b->x, L->ffn_norm, n, d, g->norm_eps);
    if (!rc) rc = ss_cuda_matmul(c, b->hb, b->xb, &L->gate, NULL, n, err, errsz);
    if (!rc) rc = ss_cuda_matmul(c, b->hb2, b->xb, &L->up, NULL, n, err, errsz);
    if (!rc) rc = ss_cuda_swiglu(c, b->hb, b->hb, b->hb2, (size_t)n * g->hidden_dim);
    if (!rc) rc = ss_cuda_matmul(c, b->xb2, b->hb, &L->down, NULL, n, err, errsz);
    if (!rc) rc = ss_cuda_add(c, b->x, b->xb2, (size_t)n * d);
    (void)kvd, (void)qd;
    if (rc && !err[0])
        ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA forward failed in layer %d (attention head_dim %d)", l, hd);
    return rc;
}

static int read_out(cuda_be_t *b, const ubatch_t *ub, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    int n = ub->n, d = g->dim, rc;
    if ((rc = ss_cuda_rmsnorm(b->c, b->xb, b->x, b->out_norm, n, d, g->norm_eps)))
        return rc;
    if (ub->nout > 0) {
        for (int t = 0; t < n; t++)
            if (ub->out[t] >= 0)
                b->h_outidx[ub->out[t]] = t;
        if ((rc = ss_cuda_h2d(b->c, b->outidx, b->h_outidx, (size_t)ub->nout * 4, err, errsz)) ||
            (rc = ss_cuda_gather_rows(b->c, b->xo, b->xb, b->outidx, ub->nout, d)) ||
            (rc = ss_cuda_matmul(b->c, b->logits, b->xo, &b->output, NULL, ub->nout, err, errsz)) ||
            (rc = ss_cuda_sync(b->c, err, errsz)) ||
            (rc = ss_cuda_d2h(b->c, ub->logits, b->logits, (size_t)ub->nout * g->vocab_size * 4, err, errsz)))
            return rc;
        if (ub->hidden && (rc = ss_cuda_d2h(b->c, ub->hidden, b->xo, (size_t)ub->nout * d * 4, err, errsz)))
            return rc;
    }
    if (ub->hid_row && ub->hid_all) { /* EMBED pooling: add the final hidden of each marked token */
        int nh = 0;
        for (int t = 0; t < n; t++)
            if (ub->hid_row[t] >= 0)
                b->h_outidx[nh++] = t;
        if (nh) {
            float *h = realloc(b->h_hid, (size_t)nh * d * 4);
            if (!h)
                return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            b->h_hid = h;
            if ((rc = ss_cuda_h2d(b->c, b->outidx, b->h_outidx, (size_t)nh * 4, err, errsz)) ||
                (rc = ss_cuda_gather_rows(b->c, b->xb2, b->xb, b->outidx, nh, d)) ||
                (rc = ss_cuda_d2h(b->c, h, b->xb2, (size_t)nh * d * 4, err, errsz)))
                return rc;
            for (int i = 0; i < nh; i++) {
                int t = b->h_outidx[i];
                for (int j = 0; j < d; j++)
                    ub->hid_all[(size_t)ub->hid_row[t] * d + j] += h[(size_t)i * d + j];
            }
        }
    }
    return ss_cuda_sync(b->c, err, errsz);
}

static ss_err_t cuda_forward(void *ctx, const ubatch_t *ub, char *err, size_t errsz)
{
    cuda_be_t *b = ctx;
    const ss_llm_config_t *g = &b->m->cfg;
    if (ub->n <= 0)
        return SS_OK;
    for (int t = 0; t < ub->n; t++)
        if (ub->tok[t] < 0 || ub->tok[t] >= g->vocab_size)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "token id %d out of range (vocab %d)", ub->tok[t],
                             g->vocab_size);
    int ns = 0, mb = 1, nt = 0, rc = ensure_acts(b, ub->n, ub->nout, err, errsz);
    if (!rc)
        rc = plan_batch(b, ub, &ns, &mb, &nt, err, errsz);
    if (rc)
        return rc;
    /* tiles are uploaded as two arrays: q0[0..nt) at tiles, nq[0..nt) at tiles + tcap */
    int32_t *q0 = malloc((size_t)nt * 4), *nq = malloc((size_t)nt * 4);
    if (!q0 || !nq) {
        free(q0), free(nq);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < nt; i++)
        q0[i] = b->h_tiles[2 * i], nq[i] = b->h_tiles[2 * i + 1];
    rc = ss_cuda_h2d(b->c, b->tok, ub->tok, (size_t)ub->n * 4, err, errsz);
    if (!rc) rc = ss_cuda_h2d(b->c, b->pos, ub->pos, (size_t)ub->n * 4, err, errsz);
    if (!rc) rc = ss_cuda_h2d(b->c, b->seq, b->h_seq, (size_t)ub->n * 4, err, errsz);
    if (!rc) rc = ss_cuda_h2d(b->c, b->bt, b->h_bt, (size_t)ns * mb * 4, err, errsz);
    if (!rc) rc = ss_cuda_h2d(b->c, b->tiles, q0, (size_t)nt * 4, err, errsz);
    if (!rc) rc = ss_cuda_h2d(b->c, b->tiles + b->tcap, nq, (size_t)nt * 4, err, errsz);
    free(q0), free(nq);
    if (!rc) rc = ss_cuda_embed(b->c, b->x, &b->embd, b->tok, ub->n);
    for (int l = 0; !rc && l < g->n_layers; l++)
        rc = layer_fwd(b, ub, l, mb, nt, err, errsz);
    if (!rc)
        rc = read_out(b, ub, err, errsz);
    return rc;
}

const backend_ops_t ss_llm_cuda_backend = {"cuda", cuda_upload, cuda_reserve, cuda_forward, cuda_destroy};

/* Moves an opened model onto CUDA device `device`: the CPU backend's state is dropped and the
 * engine's KV blocks are re-reserved on the device at the next forward pass. */
ss_err_t ss_llm_use_cuda(ss_llm_t *m, int device, char *err, size_t errsz)
{
    void *ctx = NULL;
    ss_err_t rc = cuda_upload_dev(m, &ctx, device, err, errsz);
    if (rc)
        return rc;
    ss_llm_cache_clear(m); /* cached KV lives in the old backend's memory */
    if (m->be && m->be->destroy)
        m->be->destroy(m->be_ctx);
    m->be = &ss_llm_cuda_backend;
    m->be_ctx = ctx;
    m->be_blocks = 0;
    if (m->ubatch < 2048)
        m->ubatch = 2048; /* larger forward passes keep the GPU busy */
    return SS_OK;
}

static int cuda_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                    size_t errsz)
{
    return ss_llm_run(b->impl, reqs, n, res, err, errsz);
}

static int cuda_count(ss_infer_backend_t *b, const char *text) { return ss_llm_count_tokens(b->impl, text); }

static void cuda_be_destroy(ss_infer_backend_t *b)
{
    if (!b)
        return;
    ss_llm_close(b->impl);
    free(b->model_id);
    free(b);
}

ss_infer_backend_t *ss_backend_cuda_new(const char *path, int device, char *err, size_t errsz)
{
    ss_llm_t *m = NULL;
    if (ss_llm_open(path, NULL, &m, err, errsz))
        return NULL;
    if (ss_llm_use_cuda(m, device, err, errsz)) {
        ss_llm_close(m);
        return NULL;
    }
    ss_infer_backend_t *b = calloc(1, sizeof *b);
    if (b)
        b->model_id = ss_strdup(ss_llm_id(m));
    if (!b || !b->model_id) {
        free(b);
        ss_llm_close(m);
        ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->kind = "cuda";
    b->impl = m;
    b->run = cuda_run;
    b->count_tokens = cuda_count;
    b->destroy = cuda_be_destroy;
    return b;
}
#endif
