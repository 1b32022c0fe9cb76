/*
 * forward_cpu.c — the CPU backend (the oracle other backends are tested against):
 * one transformer forward pass over a batch of tokens from many sequences. Each
 * token carries its position and its sequence's KV block table; K/V of the batch
 * are written to the blocks first, then every token attends causally to its own
 * sequence. The first forward pass repacks quantized weights into the panels of qpack.c and
 * copies float matrices of 4 MiB and more onto huge pages (both owned here; the token embedding stays
 * in the mapping, it is only read a row at a time). KV blocks are f32 and owned here (block id -> memory),
 * grown on reserve().
 *
 * Also the CPU side of KV_REUSE = 'chunks' (kvblend.c): reading and writing single KV slots,
 * and the blended pass (cpu_blend) that recomputes only selected tokens after the first layer.
 */
#include "llm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu {
    ss_llm_t *m;
    layer_w_t *L;         /* [n_layers] the model's layer weights, quantized ones with panels */
    wmat_t output;        /* the output projection, likewise */
    int no_panels;        /* k_test_no_panels when the model was opened */
    float **blk;          /* [nblk] KV block memory: [layer][k|v][KV_BLOCK][kv_dim] */
    int nblk, cap;
    size_t blk_floats;
    /* activations for up to `tcap` tokens */
    int tcap;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2, *xo;
    float *scratch;       /* per thread: [grp][ctx] scores + [grp][head_dim][KV_BLOCK] sums */
    float *rope_cs;       /* [rope_n][rope_dim/2][cos, sin] */
    int rope_n;
    int scratch_threads, scratch_ctx;
    int attn_lo;          /* tokens attend to positions >= attn_lo * KV_BLOCK (cpu_forward_from) */
} cpu_t;

static void free_acts(cpu_t *c)
{
    free(c->x); free(c->xb); free(c->xb2); free(c->q); free(c->k); free(c->v);
    free(c->att); free(c->hb); free(c->hb2); free(c->xo);
    c->x = c->xb = c->xb2 = c->q = c->k = c->v = c->att = c->hb = c->hb2 = c->xo = NULL;
    c->tcap = 0;
}

static ss_err_t ensure_acts(cpu_t *c, int n, char *err, size_t errsz)
{
    if (n <= c->tcap)
        return SS_OK;
    free_acts(c);
    const ss_llm_config_t *g = &c->m->cfg;
    size_t d = (size_t)g->dim, qd = (size_t)g->n_heads * g->head_dim, kvd = (size_t)g->n_kv_heads * g->head_dim;
    size_t h = (size_t)g->hidden_dim, t = (size_t)n;
    c->x = malloc(t * d * 4); c->xb = malloc(t * d * 4); c->xb2 = malloc(t * d * 4);
    c->q = malloc(t * qd * 4); c->k = malloc(t * kvd * 4); c->v = malloc(t * kvd * 4);
    c->att = malloc(t * qd * 4); c->hb = malloc(t * h * 4); c->hb2 = malloc(t * h * 4);
    c->xo = malloc(t * d * 4);
    if (!c->x || !c->xb || !c->xb2 || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 || !c->xo) {
        free_acts(c);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for activations of %d tokens", n);
    }
    c->tcap = n;
    return SS_OK;
}

/* A copy of w with its panel (quantized types) or its rows on huge pages (float types of 4 MiB
 * and more). */
static ss_err_t pack(cpu_t *c, const wmat_t *w, wmat_t *out, char *err, size_t errsz)
{
    ss_llm_t *m = c->m;
    *out = *w;
    out->panel = NULL;
    if (c->no_panels)
        return SS_OK;
    if (!p_spec(w->type))
        return k_copy_float(out, m->threads)
                   ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory copying a %dx%d %s weight", w->rows,
                               w->cols, ss_ggml_type_name(w->type))
                   : SS_OK;
    if (k_pack(out, m->threads))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory repacking a %dx%d %s weight", w->rows, w->cols,
                         ss_ggml_type_name(w->type));
    return SS_OK;
}

static void free_packed(cpu_t *c)
{
    if (c->L)
        for (int l = 0; l < c->m->cfg.n_layers; l++) {
            layer_w_t *L = &c->L[l];
            wmat_t *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < SS_ARRAY_LEN(ws); i++)
                k_unpack_free(ws[i]);
        }
    free(c->L);
    k_unpack_free(&c->output);
}

static ss_err_t pack_weights(cpu_t *c, char *err, size_t errsz)
{
    ss_llm_t *m = c->m;
    c->L = calloc((size_t)m->cfg.n_layers, sizeof *c->L);
    if (!c->L)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_err_t rc = pack(c, &m->w.output, &c->output, err, errsz);
    for (int l = 0; l < m->cfg.n_layers && !rc; l++) {
        const layer_w_t *S = &m->w.layers[l];
        layer_w_t *L = &c->L[l];
        *L = *S;
        const wmat_t *src[] = {&S->wq, &S->wk, &S->wv, &S->wo, &S->w_gate, &S->w_up, &S->w_down};
        wmat_t *dst[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < SS_ARRAY_LEN(src); i++)
            dst[i]->panel = NULL;
        for (size_t i = 0; i < SS_ARRAY_LEN(src) && !rc; i++)
            rc = pack(c, src[i], dst[i], err, errsz);
    }
    return rc;
}

static ss_err_t cpu_upload(ss_llm_t *m, void **ctx, char *err, size_t errsz)
{
    cpu_t *c = calloc(1, sizeof *c);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->m = m;
    c->blk_floats = (size_t)m->cfg.n_layers * 2 * KV_BLOCK * m->cfg.n_kv_heads * m->cfg.head_dim;
    c->no_panels = k_test_no_panels;
    (void)err;
    (void)errsz;
    *ctx = c; /* the weights are packed by the first forward pass (a model moved to the GPU never is) */
    return SS_OK;
}

static ss_err_t cpu_reserve(void *ctx, int nblocks, char *err, size_t errsz)
{
    cpu_t *c = ctx;
    if (nblocks > c->cap) {
        int nc = SS_MAX(nblocks, 2 * c->cap + 16);
        float **p = realloc(c->blk, (size_t)nc * sizeof *p);
        if (!p)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for the KV block table");
        c->blk = p;
        c->cap = nc;
    }
    while (c->nblk < nblocks) {
        c->blk[c->nblk] = malloc(c->blk_floats * sizeof(float));
        if (!c->blk[c->nblk])
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for KV block %d", c->nblk);
        c->nblk++;
    }
    return SS_OK;
}

static void cpu_destroy(void *ctx)
{
    cpu_t *c = ctx;
    if (!c)
        return;
    for (int i = 0; i < c->nblk; i++)
        free(c->blk[i]);
    free(c->blk);
    free_acts(c);
    free(c->scratch);
    free(c->rope_cs);
    free_packed(c);
    free(c);
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    float ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    ss /= (float)n;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    for (int i = 0; i < n; i++)
        o[i] = w[i] * (ss * x[i]);
}

/* cos/sin of pos * base^(-i/rope_dim) for positions < rope_n, computed once. */
static ss_err_t ensure_rope(cpu_t *c, int npos, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &c->m->cfg;
    if (npos <= c->rope_n)
        return SS_OK;
    int nn = SS_MAX(npos, 2 * c->rope_n), half = g->rope_dim / 2;
    float *t = realloc(c->rope_cs, (size_t)nn * half * 2 * sizeof(float));
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for the RoPE table");
    for (int pos = c->rope_n; pos < nn; pos++)
        for (int i = 0; i < g->rope_dim; i += 2) {
            float freq = 1.0f / powf(g->rope_base, (float)i / (float)g->rope_dim);
            float val = (float)pos * freq;
            t[((size_t)pos * half + i / 2) * 2] = cosf(val);
            t[((size_t)pos * half + i / 2) * 2 + 1] = sinf(val);
        }
    c->rope_cs = t;
    c->rope_n = nn;
    return SS_OK;
}

static void rope(const cpu_t *c, float *vec, int nheads, int pos)
{
    const ss_llm_config_t *g = &c->m->cfg;
    int hd = g->head_dim, rd = g->rope_dim;
    const float *cs = c->rope_cs + (size_t)pos * rd;
    for (int h = 0; h < nheads; h++) {
        float *p = vec + (size_t)h * hd;
        for (int i = 0; i < rd; i += 2) {
            float fcr = cs[i], fci = cs[i + 1];
            int a = g->rope_neox ? i / 2 : i, b = g->rope_neox ? i / 2 + rd / 2 : i + 1;
            float v0 = p[a], v1 = p[b];
            p[a] = v0 * fcr - v1 * fci;
            p[b] = v0 * fci + v1 * fcr;
        }
    }
}

/* K or V of one layer in the block holding pos, laid out [kv_head][head_dim][KV_BLOCK]
 * (transposed, so attention runs KV_BLOCK positions per vector instruction). */
static inline float *kv_part(cpu_t *c, const int *blocks, int pos, int layer, int which)
{
    const ss_llm_config_t *g = &c->m->cfg;
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim;
    float *b = c->blk[blocks[pos / KV_BLOCK]];
    return b + ((size_t)layer * 2 + which) * KV_BLOCK * kvd;
}

static void kv_store(cpu_t *c, const int *blocks, int pos, int layer, int which, const float *x)
{
    const ss_llm_config_t *g = &c->m->cfg;
    int kvd = g->n_kv_heads * g->head_dim, slot = pos % KV_BLOCK;
    float *p = kv_part(c, blocks, pos, layer, which);
    for (int i = 0; i < kvd; i++)
        p[(size_t)i * KV_BLOCK + slot] = x[i];
}

/* Dependency tracking: adds the grp heads' attention probabilities p[j][0..np) summed over each
 * chunk of the token's spec to its KV head's slice (ubatch_t.trk). */
static void track_mass(const ubatch_t *ub, int t, int kvh, int layer, const float *p, int grp, int ctx, int np)
{
    const attn_spec_t *sp = ub->trk[t];
    if (!sp || layer < sp->layer0)
        return;
    float *o = ub->trk_out[t] + (size_t)kvh * sp->nchunk;
    for (int c = 0; c < sp->nchunk; c++) {
        int a = sp->span[2 * c], b = SS_MIN(sp->span[2 * c + 1], np);
        double s = 0;
        for (int j = 0; j < grp; j++)
            for (int i = a; i < b; i++)
                s += p[(size_t)j * ctx + i];
        o[c] += (float)s * sp->scale;
    }
}

/* One token, one KV head: the grp query heads sharing it attend together, a KV block
 * (KV_BLOCK positions) at a time. sc: [grp][ctx] scores, vt: block pointers. */
static void attn_group(cpu_t *c, const ubatch_t *ub, int t, int kvh, int layer, float *sc, const float **vt,
                       int ctx)
{
    const ss_llm_config_t *g = &c->m->cfg;
    int hd = g->head_dim, grp = g->n_heads / g->n_kv_heads, pos = ub->pos[t];
    size_t qd = (size_t)g->n_heads * hd, hsz = (size_t)hd * KV_BLOCK;
    float scale = 1.0f / sqrtf((float)hd);
    const float *q = c->q + (size_t)t * qd + (size_t)kvh * grp * hd;
    int lo = c->attn_lo, nblk = pos / KV_BLOCK + 1 - lo, last_np = pos + 1 - (pos / KV_BLOCK) * KV_BLOCK;
    const float **kt = vt + nblk;
    for (int b = 0; b < nblk; b++) {
        kt[b] = kv_part(c, ub->blocks[t], (lo + b) * KV_BLOCK, layer, 0) + kvh * hsz;
        vt[b] = kv_part(c, ub->blocks[t], (lo + b) * KV_BLOCK, layer, 1) + kvh * hsz;
    }
    pos -= lo * KV_BLOCK; /* from here: the number of attended positions, less one */
    float *o = c->att + (size_t)t * qd + (size_t)kvh * grp * hd;
    if (k_attn_scores_grp && grp <= 8) { /* the group's heads read each K and V block once */
        k_attn_scores_grp(q, grp, kt, nblk, last_np, hd, sc, (size_t)ctx);
        for (int j = 0; j < grp; j++)
            k_softmax(sc + (size_t)j * ctx, pos + 1, scale);
        if (ub->trk)
            track_mass(ub, t, kvh, layer, sc, grp, ctx, pos + 1);
        k_attn_values_grp(sc, grp, (size_t)ctx, vt, nblk, last_np, hd, o);
        return;
    }
    for (int j = 0; j < grp; j++) {
        k_attn_scores_all(q + (size_t)j * hd, kt, nblk, last_np, hd, sc + (size_t)j * ctx);
        k_softmax(sc + (size_t)j * ctx, pos + 1, scale);
    }
    if (ub->trk)
        track_mass(ub, t, kvh, layer, sc, grp, ctx, pos + 1);
    for (int j = 0; j < grp; j++)
        k_attn_values_all(sc + (size_t)j * ctx, vt, nblk, last_np, hd, o + (size_t)j * hd);
}

typedef struct attn_job {
    cpu_t *c;
    const ubatch_t *ub;
    int layer;
} attn_job_t;

static void attn_chunk(void *ctx, int th, int tid)
{
    attn_job_t *a = ctx;
    cpu_t *c = a->c;
    const ss_llm_config_t *g = &c->m->cfg;
    int nkv = g->n_kv_heads, grp = g->n_heads / g->n_kv_heads, sctx = c->scratch_ctx;
    float *sc = c->scratch + (size_t)tid * (grp + 2) * (size_t)sctx;
    attn_group(c, a->ub, th / nkv, th % nkv, a->layer, sc, (const float **)(sc + (size_t)grp * sctx), sctx);
}

static void attention(cpu_t *c, const ubatch_t *ub, int layer, int threads)
{
    const ss_llm_config_t *g = &c->m->cfg;
    long work = 0;
    for (int t = 0; t < ub->n; t++)
        work += (long)(ub->pos[t] + 1) * g->n_heads * g->head_dim;
    if (work < 65536)
        threads = 1; /* waking threads costs more than this */
    attn_job_t a = {c, ub, layer};
    pool_run(threads, ub->n * g->n_kv_heads, attn_chunk, &a);
}

static void add_bias(float *y, const float *b, int n, int rows)
{
    if (!b)
        return;
    for (int t = 0; t < rows; t++)
        for (int i = 0; i < n; i++)
            y[(size_t)t * n + i] += b[i];
}

static void layer_fwd(cpu_t *c, const ubatch_t *ub, int l, int threads)
{
    const ss_llm_config_t *g = &c->m->cfg;
    const layer_w_t *L = &c->L[l];
    int n = ub->n, d = g->dim, qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim;
    int hdim = g->hidden_dim;
    for (int t = 0; t < n; t++)
        rmsnorm(c->xb + (size_t)t * d, c->x + (size_t)t * d, L->attn_norm, d, g->norm_eps);
    const wmat_t *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const qkv_out[3] = {c->q, c->k, c->v};
    const size_t qkv_ld[3] = {(size_t)qd, (size_t)kvd, (size_t)kvd};
    k_matmul_multi(qkv, qkv_out, qkv_ld, 3, c->xb, d, n, threads);
    add_bias(c->q, L->bq, qd, n);
    add_bias(c->k, L->bk, kvd, n);
    add_bias(c->v, L->bv, kvd, n);
    for (int t = 0; t < n; t++) {
        rope(c, c->q + (size_t)t * qd, g->n_heads, ub->pos[t]);
        rope(c, c->k + (size_t)t * kvd, g->n_kv_heads, ub->pos[t]);
        kv_store(c, ub->blocks[t], ub->pos[t], l, 0, c->k + (size_t)t * kvd);
        kv_store(c, ub->blocks[t], ub->pos[t], l, 1, c->v + (size_t)t * kvd);
    }
    attention(c, ub, l, threads);
    k_matmul(&L->wo, c->att, qd, n, c->xb2, d, threads);
    for (size_t i = 0; i < (size_t)n * d; i++)
        c->x[i] += c->xb2[i];
    for (int t = 0; t < n; t++)
        rmsnorm(c->xb + (size_t)t * d, c->x + (size_t)t * d, L->ffn_norm, d, g->norm_eps);
    const wmat_t *gu[2] = {&L->w_gate, &L->w_up};
    float *const gu_out[2] = {c->hb, c->hb2};
    const size_t gu_ld[2] = {(size_t)hdim, (size_t)hdim};
    k_matmul_multi(gu, gu_out, gu_ld, 2, c->xb, d, n, threads);
    k_swiglu(c->hb, c->hb2, (size_t)n * hdim);
    k_matmul(&L->w_down, c->hb, hdim, n, c->xb2, d, threads);
    for (size_t i = 0; i < (size_t)n * d; i++)
        c->x[i] += c->xb2[i];
}

static ss_err_t ensure_scratch(cpu_t *c, const ubatch_t *ub, int threads, char *err, size_t errsz)
{
    int mx = 1;
    for (int t = 0; t < ub->n; t++)
        mx = SS_MAX(mx, ub->pos[t] + 1);
    ss_err_t rc = ensure_rope(c, mx, err, errsz);
    if (rc || (threads <= c->scratch_threads && mx <= c->scratch_ctx))
        return rc;
    int nt = SS_MAX(threads, c->scratch_threads), nc = (SS_MAX(mx, 2 * c->scratch_ctx) + 15) & ~15;
    int grp = c->m->cfg.n_heads / c->m->cfg.n_kv_heads;
    size_t per = (size_t)(grp + 2) * nc; /* scores, then K and V block pointers */
    float *s = realloc(c->scratch, (size_t)nt * per * sizeof(float));
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for attention scratch");
    c->scratch = s;
    c->scratch_threads = nt;
    c->scratch_ctx = nc;
    return SS_OK;
}

/* Everything a pass needs before its layers: packed weights, activations, scratch, and the
 * tokens' embeddings in c->x. */
static ss_err_t begin_pass(cpu_t *c, const ubatch_t *ub, char *err, size_t errsz)
{
    ss_llm_t *m = c->m;
    const ss_llm_config_t *g = &m->cfg;
    int threads = m->threads, d = g->dim;
    k_isa(); /* picks the kernels once */
    ss_err_t rc = c->L ? SS_OK : pack_weights(c, err, errsz);
    if (rc) {
        free_packed(c);
        c->L = NULL;
        return rc;
    }
    rc = ensure_acts(c, ub->n, err, errsz);
    if (rc || (rc = ensure_scratch(c, ub, threads, err, errsz)))
        return rc;
    for (int t = 0; t < ub->n; t++) {
        if (ub->tok[t] < 0 || ub->tok[t] >= g->vocab_size)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "token id %d out of range (vocab %d)", ub->tok[t],
                             g->vocab_size);
        k_row_f32(&m->w.tok_embd, ub->tok[t], c->x + (size_t)t * d);
    }
    return SS_OK;
}

static ss_err_t cpu_forward(void *ctx, const ubatch_t *ub, char *err, size_t errsz)
{
    cpu_t *c = ctx;
    ss_llm_t *m = c->m;
    const ss_llm_config_t *g = &m->cfg;
    int threads = m->threads, d = g->dim;
    ss_err_t rc = begin_pass(c, ub, err, errsz);
    if (rc)
        return rc;
    for (int l = 0; l < g->n_layers; l++)
        layer_fwd(c, ub, l, threads);
    /* final norm for output rows (and pooled rows) */
    int no = 0;
    for (int t = 0; t < ub->n; t++) {
        int want_h = ub->hid_row && ub->hid_row[t] >= 0;
        if (ub->out[t] < 0 && !want_h)
            continue;
        float *h = c->xb + (size_t)t * d;
        rmsnorm(h, c->x + (size_t)t * d, m->w.out_norm, d, g->norm_eps);
        if (want_h)
            for (int i = 0; i < d; i++)
                ub->hid_all[(size_t)ub->hid_row[t] * d + i] += h[i];
        if (ub->out[t] >= 0) {
            memcpy(c->xo + (size_t)ub->out[t] * d, h, (size_t)d * 4);
            if (ub->hidden)
                memcpy(ub->hidden + (size_t)ub->out[t] * d, h, (size_t)d * 4);
            no++;
        }
    }
    if (ub->nout > 0)
        k_matmul(&c->output, c->xo, d, ub->nout, ub->logits, g->vocab_size, threads);
    (void)no;
    return SS_OK;
}

static void cpu_copy(void *ctx, int dst, int src)
{
    cpu_t *c = ctx;
    memcpy(c->blk[dst], c->blk[src], c->blk_floats * sizeof(float));
}

/* ---- KV_REUSE = 'chunks' (kvblend.c) ---- */

void cpu_kv_io(void *ctx, int block, int slot, int layer, int which, float *buf, int write)
{
    cpu_t *c = ctx;
    const ss_llm_config_t *g = &c->m->cfg;
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim;
    float *p = c->blk[block] + ((size_t)layer * 2 + which) * KV_BLOCK * kvd + slot;
    for (size_t i = 0; i < kvd; i++) {
        if (write)
            p[i * KV_BLOCK] = buf[i];
        else
            buf[i] = p[i * KV_BLOCK];
    }
}

ss_err_t cpu_forward_from(void *ctx, const ubatch_t *ub, int lo_blk, char *err, size_t errsz)
{
    cpu_t *c = ctx;
    for (int t = 0; t < ub->n; t++)
        if (ub->pos[t] < lo_blk * KV_BLOCK || ub->trk)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "a pass from block %d has a token at position %d",
                             lo_blk, ub->pos[t]);
    c->attn_lo = lo_blk;
    ss_err_t rc = cpu_forward(ctx, ub, err, errsz);
    c->attn_lo = 0;
    return rc;
}

typedef struct devt {
    float d;
    int t;
} devt_t;

static int devt_cmp(const void *a, const void *b) /* largest deviation first, then position */
{
    const devt_t *x = a, *y = b;
    if (x->d != y->d)
        return x->d > y->d ? -1 : 1;
    return x->t - y->t;
}

static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Squared L2 distance between token t's new K and V of layer l (rows of c->k, c->v) and the KV
 * its blocks hold. */
static float kv_dev(cpu_t *c, const ubatch_t *ub, int t, int l)
{
    const ss_llm_config_t *g = &c->m->cfg;
    int kvd = g->n_kv_heads * g->head_dim, slot = ub->pos[t] % KV_BLOCK;
    double d = 0;
    for (int w = 0; w < 2; w++) {
        const float *now = (w ? c->v : c->k) + (size_t)t * kvd;
        const float *old = kv_part(c, ub->blocks[t], ub->pos[t], l, w) + slot;
        for (int i = 0; i < kvd; i++) {
            double e = (double)now[i] - old[(size_t)i * KV_BLOCK];
            d += e * e;
        }
    }
    return (float)d;
}

/* CacheBlend's selection at layer l: the K/V of every token from its hidden state, compared
 * with what the blocks hold; keep[0..return) = the tokens that are not reused and the nsel reused
 * ones that deviate most, in position order. -1: out of memory. */
static int select_tokens(cpu_t *c, const ubatch_t *ub, int l, const unsigned char *reused, int nsel, int *keep)
{
    const ss_llm_config_t *g = &c->m->cfg;
    const layer_w_t *L = &c->L[l];
    int n = ub->n, d = g->dim, kvd = g->n_kv_heads * g->head_dim;
    devt_t *dv = malloc((size_t)n * sizeof *dv);
    if (!dv)
        return -1;
    for (int t = 0; t < n; t++)
        rmsnorm(c->xb + (size_t)t * d, c->x + (size_t)t * d, L->attn_norm, d, g->norm_eps);
    const wmat_t *kv[2] = {&L->wk, &L->wv};
    float *const kv_out[2] = {c->k, c->v};
    const size_t kv_ld[2] = {(size_t)kvd, (size_t)kvd};
    k_matmul_multi(kv, kv_out, kv_ld, 2, c->xb, d, n, c->m->threads);
    add_bias(c->k, L->bk, kvd, n);
    add_bias(c->v, L->bv, kvd, n);
    int nk = 0;
    for (int t = 0; t < n; t++) {
        rope(c, c->k + (size_t)t * kvd, g->n_kv_heads, ub->pos[t]);
        dv[t] = (devt_t){reused[t] ? kv_dev(c, ub, t, l) : INFINITY, t};
        nk += !reused[t];
    }
    qsort(dv, (size_t)n, sizeof *dv, devt_cmp);
    nk = SS_MIN(n, nk + nsel);
    for (int i = 0; i < nk; i++)
        keep[i] = dv[i].t;
    qsort(keep, (size_t)nk, sizeof *keep, int_cmp);
    free(dv);
    return nk;
}

ss_err_t cpu_blend(void *ctx, const blend_pass_t *bp, int *ncomp, char *err, size_t errsz)
{
    cpu_t *c = ctx;
    const ss_llm_config_t *g = &c->m->cfg;
    int n = bp->n, d = g->dim, nreused = 0;
    int *tok = malloc((size_t)n * sizeof *tok), *pos = malloc((size_t)n * sizeof *pos);
    int *out = malloc((size_t)n * sizeof *out), *keep = malloc((size_t)n * sizeof *keep);
    const int **blk = malloc((size_t)n * sizeof *blk);
    ss_err_t rc = tok && pos && out && keep && blk ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int t = 0; t < n && !rc; t++) {
        tok[t] = bp->tok[t], pos[t] = bp->pos[t], out[t] = -1, blk[t] = bp->blocks;
        nreused += bp->reused[t] != 0;
    }
    ubatch_t ub = {.n = n, .tok = tok, .pos = pos, .blocks = blk, .out = out};
    if (!rc)
        rc = begin_pass(c, &ub, err, errsz);
    if (!rc)
        layer_fwd(c, &ub, 0, c->m->threads); /* the first layer: every token */
    *ncomp = n;
    if (!rc && g->n_layers > 1 && bp->nsel < nreused) {
        int nk = select_tokens(c, &ub, 1, bp->reused, bp->nsel, keep);
        if (nk < 0)
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int i = 0; i < nk; i++) { /* compact the kept tokens (keep[i] >= i) */
            memmove(c->x + (size_t)i * d, c->x + (size_t)keep[i] * d, (size_t)d * sizeof(float));
            tok[i] = tok[keep[i]], pos[i] = pos[keep[i]];
        }
        ub.n = *ncomp = SS_MAX(nk, 0);
    }
    for (int l = 1; l < g->n_layers && !rc && ub.n > 0; l++)
        layer_fwd(c, &ub, l, c->m->threads);
    free(tok);
    free(pos);
    free(out);
    free(keep);
    free(blk);
    return rc;
}

const backend_ops_t ss_llm_cpu_backend = {"cpu", cpu_upload, cpu_reserve, cpu_forward, cpu_destroy, cpu_copy,
                                          NULL, NULL, 1};
