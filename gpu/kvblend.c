/*
 * kvblend.c — KV reuse beyond the prefix (LLM_GENERATE KV_REUSE = 'chunks', issue 17 §2), as
 * CacheBlend does it. A prompt's chunks (retrieved documents, as token spans) take their KV
 * from the chunk cache (kvchunk.c), where each was computed on its own at positions 0..n-1 and
 * kept under a key of its tokens, the model's identity and its layer shape; K is re-rotated by
 * the position where the chunk lands (RoPE composes: rotating the K of position p by d gives
 * the K of position p + d). Such KV misses the attention across chunks, so the blended pass
 * (cpu_blend, forward_cpu.c) runs the first layer for every token, selects at the second the
 * fraction of chunk tokens whose K/V deviate most from what a full prefill computes there, and
 * recomputes only those and the tokens outside chunks (instruction, question) in the later
 * layers. A fraction of 1 recomputes everything: the same passes as a full prefill, bit for bit.
 *
 * CPU backend only: the blended pass and the KV slot access are forward_cpu.c's; the CUDA
 * backend fails such requests.
 */
#include "llm_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chunk cache's key seed: the model's identity and the shape of its KV. */
static uint64_t chunk_seed(ss_llm_t *m)
{
    if (!m->chunk_seed) {
        const ss_llm_config_t *g = &m->cfg;
        char shape[160];
        int k = snprintf(shape, sizeof shape, "%s|%d,%d,%d,%d,%d,%.9g", m->id ? m->id : "", g->n_layers,
                         g->n_kv_heads, g->head_dim, g->rope_dim, g->rope_neox, (double)g->rope_base);
        m->chunk_seed = ss_hash64(shape, (size_t)SS_MIN(k, (int)sizeof shape - 1), 0x6b7663686e6b73ull) | 1;
    }
    return m->chunk_seed;
}

void kvb_rerotate(const ss_llm_config_t *g, float *k, int delta)
{
    int hd = g->head_dim, rd = g->rope_dim;
    for (int i = 0; i < rd; i += 2) {
        float freq = 1.0f / powf(g->rope_base, (float)i / (float)rd); /* as the forward pass */
        double ang = (double)delta * freq, cs = cos(ang), sn = sin(ang);
        int a = g->rope_neox ? i / 2 : i, b = g->rope_neox ? i / 2 + rd / 2 : i + 1;
        for (int h = 0; h < g->n_kv_heads; h++) {
            float *p = k + (size_t)h * hd;
            double v0 = p[a], v1 = p[b];
            p[a] = (float)(v0 * cs - v1 * sn);
            p[b] = (float)(v0 * sn + v1 * cs);
        }
    }
}

static size_t chunk_floats(const ss_llm_config_t *g, int n)
{
    return (size_t)g->n_layers * 2 * (size_t)n * g->n_kv_heads * g->head_dim;
}

/* The KV of tok[0..n) computed on its own (positions 0..n-1), into kv ([layer][k|v][n][kvd]). */
static ss_err_t chunk_compute(ss_llm_t *m, const int *tok, int n, float *kv, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &m->cfg;
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim;
    seq_t s;
    memset(&s, 0, sizeof s);
    s.noreg = 1; /* a chunk alone is not the start of the prompts that use it */
    s.out_from = INT_MAX;
    ss_err_t rc = SS_OK;
    for (int i = 0; i < n && !rc; i++)
        if (seq_push(&s, tok[i]))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    seq_t *one = &s;
    if (!rc)
        rc = eng_compute(m, &one, 1, err, errsz);
    for (int l = 0; l < g->n_layers && !rc; l++)
        for (int w = 0; w < 2; w++)
            for (int j = 0; j < n; j++)
                cpu_kv_io(m->be_ctx, s.blocks[j / KV_BLOCK], j % KV_BLOCK, l, w,
                          kv + (((size_t)l * 2 + w) * n + j) * kvd, 0);
    if (!rc)
        m->st.chunk_tokens += n;
    seq_release(m, &s);
    return rc;
}

/* The cached KV of chunk tok[0..n), computed and kept on a miss; *own is set when it could not
 * be kept (larger than the cache): the caller frees it. */
static ss_err_t chunk_kv(ss_llm_t *m, const int *tok, int n, const float **kv, float **own, char *err,
                         size_t errsz)
{
    uint64_t key = ss_hash64(tok, (size_t)n * sizeof *tok, chunk_seed(m));
    kvc_entry_t *e = kvc_get(&m->chunks, key, tok, n);
    *own = NULL;
    if (e) {
        *kv = e->kv;
        return SS_OK;
    }
    size_t fl = chunk_floats(&m->cfg, n);
    e = kvc_put(&m->chunks, key, tok, n, fl);
    float *dst = e ? e->kv : (*own = malloc(fl * sizeof(float)));
    if (!dst)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory for the KV of a chunk of %d tokens", n);
    ss_err_t rc = chunk_compute(m, tok, n, dst, err, errsz);
    if (rc && e)
        kvc_drop(&m->chunks, e);
    if (rc) {
        free(*own);
        *own = NULL;
    }
    *kv = dst;
    return rc;
}

/* Writes the chunk's KV (computed at 0..len-1) into s's blocks at positions [from, end) of the
 * chunk that starts at a, K re-rotated by a. */
static void place(ss_llm_t *m, seq_t *s, const float *kv, int len, int a, int from, int end, float *buf)
{
    const ss_llm_config_t *g = &m->cfg;
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim;
    for (int p = from; p < end; p++) {
        int j = p - a, blk = s->blocks[p / KV_BLOCK], slot = p % KV_BLOCK;
        for (int l = 0; l < g->n_layers; l++) {
            memcpy(buf, kv + ((size_t)l * 2 * len + j) * kvd, kvd * sizeof(float));
            kvb_rerotate(g, buf, a);
            cpu_kv_io(m->be_ctx, blk, slot, l, 0, buf, 1);
            memcpy(buf, kv + (((size_t)l * 2 + 1) * len + j) * kvd, kvd * sizeof(float));
            cpu_kv_io(m->be_ctx, blk, slot, l, 1, buf, 1);
        }
    }
}

ss_err_t kvb_prefill(ss_llm_t *m, seq_t *s, char *err, size_t errsz)
{
    const blend_spec_t *b = s->blend;
    s->blend = NULL;
    if (m->be != &ss_llm_cpu_backend)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "KV_REUSE = 'chunks' needs the CPU backend; the %s "
                         "backend does not blend cached chunks", m->be->name);
    /* up to the last token, and never a position whose attention is tracked (it must compute its
     * own: MAINTAIN = 'dependency' with forced answer tokens after the prompt) */
    int from = s->ncomp, end = s->trk ? SS_MIN(s->ntok - 1, s->trk_from) : s->ntok - 1, n = end - from;
    if (n <= 0)
        return SS_OK; /* the prefix cache held it all: plain KV */
    s->noreg = 1;
    ss_err_t rc = eng_blocks(m, s, end, err, errsz);
    unsigned char *reused = calloc((size_t)n, 1);
    int *pos = malloc((size_t)n * sizeof *pos);
    float *buf = malloc((size_t)m->cfg.n_kv_heads * m->cfg.head_dim * sizeof(float));
    if (!rc && (!reused || !pos || !buf))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int nre = 0;
    for (int c = 0; c < b->nchunk && !rc; c++) {
        int a = b->span[2 * c], len = b->span[2 * c + 1] - a, e = SS_MIN(a + len, end);
        if (e <= from || len <= 0)
            continue;
        const float *kv = NULL;
        float *own = NULL;
        rc = chunk_kv(m, s->tok + a, len, &kv, &own, err, errsz);
        if (rc)
            break;
        place(m, s, kv, len, a, SS_MAX(a, from), e, buf);
        free(own);
        for (int p = SS_MAX(a, from); p < e; p++)
            reused[p - from] = 1, nre++;
    }
    int ncomp = 0;
    if (!rc) {
        for (int i = 0; i < n; i++)
            pos[i] = from + i;
        float f = SS_MAX(0.f, SS_MIN(1.f, b->frac));
        blend_pass_t bp = {n, s->tok + from, pos, s->blocks, reused, (int)lround((double)f * nre)};
        rc = cpu_blend(m->be_ctx, &bp, &ncomp, err, errsz);
    }
    if (!rc) {
        m->st.blend_tokens += n;
        m->st.blend_computed += ncomp;
        s->ncomp = end;
        int first = end; /* tokens before the first chunk were computed in full: plain KV */
        for (int i = 0; i < n; i++)
            if (reused[i]) {
                first = from + i;
                break;
            }
        eng_register_upto(m, s, first);
    }
    free(reused);
    free(pos);
    free(buf);
    return rc;
}

/* ---- the low-level entry points (tests and benchmarks) ---- */

typedef struct greedy {
    float *logits; /* the first position's, or NULL */
    int next;      /* the argmax of the last position's */
} greedy_t;

static void on_greedy(ss_llm_t *m, seq_t *s, int pos, const float *logits)
{
    greedy_t *g = s->user;
    if (pos != s->ntok - 1)
        return;
    int v = m->cfg.vocab_size, b = 0;
    for (int i = 1; i < v; i++)
        if (logits[i] > logits[b])
            b = i;
    g->next = b;
    if (g->logits) {
        memcpy(g->logits, logits, (size_t)v * sizeof(float));
        g->logits = NULL;
    }
}

static ss_err_t check_spans(const int *span, int nchunk, int n, char *err, size_t errsz)
{
    if (n <= 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "empty sequence");
    for (int c = 0; c < nchunk; c++)
        if (span[2 * c] < (c ? span[2 * c - 1] : 0) || span[2 * c + 1] < span[2 * c] || span[2 * c + 1] > n - 1)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "chunk %d spans tokens [%d, %d): chunks must be "
                             "increasing, disjoint and end before the last of the %d tokens", c, span[2 * c],
                             span[2 * c + 1], n);
    return SS_OK;
}

/* Prefills toks (blending the chunks when nchunk > 0), then decodes greedily up to max_new
 * tokens into out (*nout of them); logits: the first position's, or NULL; first_ns: the time
 * until they were computed, or NULL. */
static ss_err_t chunk_run(ss_llm_t *m, const int *toks, int n, const int *span, int nchunk, float frac, int max_new,
                          int *out, int *nout, float *logits, int64_t *first_ns, char *err, size_t errsz)
{
    int64_t t0 = ss_now_ns();
    ss_err_t rc = check_spans(span, nchunk, n, err, errsz);
    blend_spec_t spec = {nchunk, span, frac};
    greedy_t g = {logits, -1};
    seq_t s;
    memset(&s, 0, sizeof s);
    s.reuse = 1;
    s.on_out = on_greedy;
    s.user = &g;
    s.blend = nchunk > 0 ? &spec : NULL;
    *nout = 0;
    for (int i = 0; i < n && !rc; i++)
        if (seq_push(&s, toks[i]))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    seq_t *one = &s;
    while (!rc) {
        s.out_from = s.ntok - 1;
        rc = eng_compute(m, &one, 1, err, errsz);
        if (first_ns && *nout == 0)
            *first_ns = ss_now_ns() - t0;
        if (rc || *nout >= max_new)
            break;
        out[(*nout)++] = g.next;
        if (*nout >= max_new || g.next == m->cfg.eos || g.next == m->eot || s.ntok >= m->cfg.ctx_len ||
            seq_push(&s, g.next))
            break;
    }
    seq_release(m, &s);
    return rc;
}

int ss_llm_chunk_greedy(ss_llm_t *m, const int *toks, int n, const int *span, int nchunk, float frac, int max_new,
                        int *out, float *logits, int64_t *first_ns, char *err, size_t errsz)
{
    int k = 0;
    return chunk_run(m, toks, n, span, nchunk, frac, max_new, out, &k, logits, first_ns, err, errsz) ? -1 : k;
}

ss_err_t ss_llm_chunk_logits(ss_llm_t *m, const int *toks, int n, const int *span, int nchunk, float frac,
                             float *logits, char *err, size_t errsz)
{
    int k = 0;
    return chunk_run(m, toks, n, span, nchunk, frac, 0, NULL, &k, logits, NULL, err, errsz);
}

void ss_llm_chunk_cache_clear(ss_llm_t *m) { kvc_clear(&m->chunks); }
