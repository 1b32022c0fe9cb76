/*
 * backend_cuda.c — the CUDA backend of the inference engine: the same
 * backend_ops_t as forward_cpu.c (upload / reserve / forward over a ubatch /
 * destroy), running every stage on the GPU through the kernels of ss_cuda.h.
 * Weights are uploaded once (Q8_0 repacked for 16-byte loads); the paged KV
 * cache lives on the device as one K and one V pool per layer, indexed by the
 * engine's block ids, so the prefix cache of engine.c works unchanged. Only what
 * output rows' consumers read comes back to the host (whole logits rows, argmax,
 * log-sum-exp, gathered answer-token logits, pooled hidden states). Passes can
 * overlap with the host (submit / finish): each in-flight pass has a slot of pinned
 * buffers and a completion event. Prefill passes hand bf16 between RMSNorm, the
 * packed Q|K|V GEMM, the tensor-core attention and Wo.
 * Also: ss_backend_cuda_new, the ss_infer_backend_t used by `semstream worker --gpu`.
 */
#ifdef SS_HAVE_CUDA
#include "llm_internal.h"
#include "ss_cuda.h"
#include "ss_llm_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATT_SPLIT_MAX 16 /* key ranges of a decode step's attention */

/* profiled stages of a layer (SS_CUDA_PROFILE): the fused kernels make each one stage */
enum { P_QKV, P_ATTN, P_WO, P_FFN, P_READOUT };
static const char *const prof_names[SS_CUDA_PROF_STAGES] = {"rmsnorm+qkv+rope+kv", "attention", "wo matmul",
                                                             "feed-forward", "read-out"};

typedef struct dlayer {
    ss_cuda_weight_t wq, wk, wv, wo, gate, up, down;
    ss_cuda_weight_t wqkv; /* bf16 Q|K|V rows in one weight, for prefill (made at the first one) */
    float *bqkv;           /* ... and its biases, when the model has any */
    int packed;            /* wqkv: 0 not tried yet, 1 made, -1 not possible */
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
    int tile_max;             /* queries per attention tile: 64 (query, head) items per block */
    int att_tc;               /* this pass uses the tensor-core attention (prefill; tiles of 64) */
    int nt_long;              /* ... and its first nt_long tiles take one head per block */
    int fuse_norm;            /* RMSNorm inside the GEMVs (SS_CUDA_NO_FUSED_NORM turns it off) */
    int split_att;            /* split-KV decode attention (SS_CUDA_NO_SPLIT_ATTENTION turns it off) */
    int graph_all;            /* SS_CUDA_GRAPH_ALL: graphs for prefill passes too (experiment) */
    int fuse_rope;            /* RoPE + KV store in the Q|K|V GEMV (SS_CUDA_NO_FUSED_ROPE turns it off) */
    int tc_ok;                /* tensor-core attention allowed (SS_CUDA_NO_TC_ATTENTION turns it off) */
    int bf16_handoff;         /* prefill: RMSNorm and attention write the GEMMs' bf16 input directly
                                 (SS_CUDA_NO_BF16_HANDOFF turns it off) */
    int graphs_ok;            /* CUDA graphs allowed (off with SS_CUDA_NO_GRAPHS or SS_CUDA_PROFILE) */
    /* activations for up to tcap tokens (ocap output rows) */
    int tcap, ocap;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2, *xo, *logits, *lse;
    void *ropart; /* read-out partials (ss_cuda_lse_argmax) */
    float *attpart; /* split-KV attention partials of decode-sized passes */
    int32_t *amax;
    float *gath;      /* gathered logits of rows that list their tokens (CHOOSE/SCORE answers) */
    size_t gath_cap;  /* floats */
    size_t gofs;      /* this pass: offset (int32s) of the gather rows, then tokens, in idx */
    int ng;           /* this pass: gathered entries */
    /* per-batch index arrays, one device buffer with a fixed layout (see idx_*), filled by one
     * host-to-device copy: tok | pos | seq | tile q0 | tile nq | out rows | pooled rows | block table */
    int32_t *idx, *h_idx;         /* device; host side of the pass being planned (its slot's) */
    size_t idx_cap;               /* int32s on the device */
    const int **h_seqptr;
    /* passes in flight (ss_llm_backend submit/finish): a slot each, used in turn */
    struct pass_slot {
        int32_t *h_idx;   /* pinned: the pass's index arrays, uploaded without waiting */
        size_t h_idx_cap; /* int32s */
        int tcap;         /* the index layout's tcap when planned */
        char *h_out;      /* pinned: logits rows | argmax | lse | hidden | pooled rows, coming back */
        size_t h_out_cap;
        size_t off_amax, off_lse, off_hidden, off_pool, off_gath;
        int nh;           /* pooled rows */
        int busy;         /* submitted, not finished */
    } slot[SS_CUDA_MARKS];
    int next, oldest;     /* the slot the next submit takes; the slot the next finish reads */
    /* CUDA graphs of small batches (decode steps), keyed by shape; dropped when buffers move */
    struct { int n, nout, nh, mb, nt, nl; ss_cuda_graph_t *g; } graphs[32];
    int ngraphs;
    struct { int n, nout, nh, mb, nt, nl; } seen[32]; /* prefill shapes run once without a graph */
    int nseen;
    int64_t fwd_ns, fwd_calls, fwd_tokens; /* wall time inside forward (profiling) */
    int64_t fwd_part[4];                   /* ... of it: plan + index copy, launches, waiting, copy-back */
    int prof_skip;                         /* SS_CUDA_PROFILE_SKIP: passes not profiled (warm-up) */
    int timing;                            /* SS_CUDA_TIMING: GPU time of each pass, graphs kept */
    double gpu_ms;
    /* KV block copies of forks (cuda_copy), sent in one launch before the next pass (flush_copies) */
    int32_t *cp_h;         /* dst, src pairs */
    int cp_n, cp_cap;      /* pairs */
    int32_t *cp_d;         /* device copy of the pairs */
    int cp_dcap;           /* pairs */
    unsigned char *cp_mark; /* per block: 1 a pending copy's source, 2 its destination */
    int cp_mcap;
    float **pools_d;       /* device: every layer's K pool, then every V pool */
    int pools_ok;          /* pools_d matches the pools */
    int64_t cp_blocks, cp_launches, cp_ns; /* (SS_CUDA_TIMING) */
} cuda_be_t;

#define IDX_TOK(b) ((b)->idx)
#define IDX_POS(b) ((b)->idx + (b)->tcap)
#define IDX_SEQ(b) ((b)->idx + 2 * (size_t)(b)->tcap)
#define IDX_Q0(b) ((b)->idx + 3 * (size_t)(b)->tcap)
#define IDX_NQ(b) ((b)->idx + 4 * (size_t)(b)->tcap)
#define IDX_OUT(b) ((b)->idx + 5 * (size_t)(b)->tcap)
#define IDX_HID(b) ((b)->idx + 6 * (size_t)(b)->tcap)
#define IDX_BT(b) ((b)->idx + 7 * (size_t)(b)->tcap)
#define IDX_FIXED 7 /* int32 arrays of tcap entries before the block table */

static void drop_graphs(cuda_be_t *b)
{
    for (int i = 0; i < b->ngraphs; i++)
        ss_cuda_graph_destroy(b->graphs[i].g);
    b->ngraphs = 0;
    b->nseen = 0;
}

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
    if ((getenv("SS_CUDA_PROFILE") || b->timing) && b->fwd_calls) {
        fprintf(stderr, "CUDA backend: %lld forward passes of %lld tokens, %.3f ms wall inside forward",
                (long long)b->fwd_calls, (long long)b->fwd_tokens, b->fwd_ns / 1e6);
        if (b->timing)
            fprintf(stderr, ", %.3f ms on the GPU (events); fork copies: %lld blocks in %lld launches, %.3f ms host",
                    b->gpu_ms, (long long)b->cp_blocks, (long long)b->cp_launches, b->cp_ns / 1e6);
        fprintf(stderr, "\n  host: %.3f ms planning and index copies, %.3f ms launching, %.3f ms waiting for the GPU, "
                        "%.3f ms copying results back\n",
                b->fwd_part[0] / 1e6, b->fwd_part[1] / 1e6, b->fwd_part[2] / 1e6, b->fwd_part[3] / 1e6);
    }
    ss_cuda_prof_report(b->c, prof_names, "forward passes");
    drop_graphs(b);
    for (int i = 0; i < SS_CUDA_MARKS; i++) {
        ss_cuda_host_free(b->c, b->slot[i].h_idx);
        ss_cuda_host_free(b->c, b->slot[i].h_out);
    }
    ss_cuda_close(b->c); /* frees every device allocation */
    free(b->cp_h);
    free(b->cp_mark);
    free(b->L);
    free(b->h_seqptr);
    free(b);
}

static ss_err_t cuda_upload_dev(ss_llm_t *m, void **ctx, int device, char *err, size_t errsz)
{
    cuda_be_t *b = calloc(1, sizeof *b);
    if (!b)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    b->m = m;
    b->timing = getenv("SS_CUDA_TIMING") != NULL;
    b->fuse_norm = getenv("SS_CUDA_NO_FUSED_NORM") == NULL;
    b->split_att = getenv("SS_CUDA_NO_SPLIT_ATTENTION") == NULL;
    b->graph_all = getenv("SS_CUDA_GRAPH_ALL") != NULL;
    b->fuse_rope = getenv("SS_CUDA_NO_FUSED_ROPE") == NULL;
    b->tc_ok = getenv("SS_CUDA_NO_TC_ATTENTION") == NULL;
    b->graphs_ok = !getenv("SS_CUDA_NO_GRAPHS") && !getenv("SS_CUDA_PROFILE"); /* events need the stream */
    b->bf16_handoff = !getenv("SS_CUDA_NO_BF16_HANDOFF");
    const char *skip = getenv("SS_CUDA_PROFILE_SKIP");
    b->prof_skip = skip ? atoi(skip) : 0;
    int rc = ss_cuda_open(device, &b->c, err, errsz);
    const ss_llm_config_t *g = &m->cfg;
    b->tile_max = SS_MAX(1, SS_MIN(16, 64 / SS_MAX(1, g->n_heads / g->n_kv_heads)));
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

/* Sends the pending fork copies (cuda_copy) as one kernel: the pairs go up with one copy from
 * pageable memory (staged before the call returns, so the list is free again at once). */
static int flush_copies(cuda_be_t *b, char *err, size_t errsz)
{
    if (!b->cp_n)
        return SS_OK;
    const ss_llm_config_t *g = &b->m->cfg;
    int64_t t0 = ss_now_ns();
    int rc = SS_OK, np = 2 * g->n_layers;
    if (!b->pools_d && (rc = ss_cuda_malloc(b->c, (void **)&b->pools_d, (size_t)np * sizeof(float *), err, errsz)))
        return rc;
    if (!b->pools_ok) {
        float **h = malloc((size_t)np * sizeof *h);
        if (!h)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int l = 0; l < g->n_layers; l++)
            h[l] = b->L[l].kpool, h[g->n_layers + l] = b->L[l].vpool;
        rc = ss_cuda_h2d(b->c, b->pools_d, h, (size_t)np * sizeof *h, err, errsz);
        free(h);
        if (rc)
            return rc;
        b->pools_ok = 1;
    }
    if (b->cp_n > b->cp_dcap) {
        int nc = SS_MAX(b->cp_n, 2 * b->cp_dcap);
        ss_cuda_free(b->c, b->cp_d);
        b->cp_d = NULL, b->cp_dcap = 0;
        if ((rc = ss_cuda_malloc(b->c, (void **)&b->cp_d, (size_t)nc * 2 * sizeof(int32_t), err, errsz)))
            return rc;
        b->cp_dcap = nc;
    }
    size_t per = (size_t)g->n_kv_heads * KV_BLOCK * g->head_dim;
    rc = ss_cuda_h2d_async(b->c, b->cp_d, b->cp_h, (size_t)b->cp_n * 2 * sizeof(int32_t), err, errsz);
    if (!rc && (rc = ss_cuda_kv_copy_blocks(b->c, b->pools_d, np, b->cp_d, b->cp_n, per)))
        ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA: copying %d KV blocks of forks failed", b->cp_n);
    for (int i = 0; i < 2 * b->cp_n; i++)
        b->cp_mark[b->cp_h[i]] = 0;
    b->cp_blocks += b->cp_n, b->cp_launches++;
    b->cp_n = 0;
    b->cp_ns += ss_now_ns() - t0;
    return rc;
}

static ss_err_t cuda_reserve(void *ctx, int nblocks, char *err, size_t errsz)
{
    cuda_be_t *b = ctx;
    if (nblocks <= b->cap_blocks)
        return SS_OK;
    int frc = flush_copies(b, err, errsz); /* their block ids refer to the pools copied below */
    if (frc)
        return frc;
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
    b->pools_ok = 0;
    drop_graphs(b); /* the graphs captured the old pool addresses */
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
        drop_graphs(b);
        DEV_ALLOC(b->x, t * d * 4); DEV_ALLOC(b->xb, t * d * 4); DEV_ALLOC(b->xb2, t * d * 4);
        DEV_ALLOC(b->q, t * qd * 4); DEV_ALLOC(b->k, t * kvd * 4); DEV_ALLOC(b->v, t * kvd * 4);
        DEV_ALLOC(b->att, t * qd * 4); DEV_ALLOC(b->hb, t * h * 4); DEV_ALLOC(b->hb2, t * h * 4);
        free(b->h_seqptr);
        if (!(b->h_seqptr = malloc(t * sizeof *b->h_seqptr)))
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        b->tcap = n;
        b->idx_cap = 0; /* the index layout depends on tcap */
        /* the largest GEMM input converted to bf16: B x max(dim, q heads x head size) */
        if ((rc = ss_cuda_reserve_bf16(b->c, t * SS_MAX(d, qd), err, errsz)))
            return rc;
    }
    if (!b->attpart) /* up to 8 tokens x heads x ATT_SPLIT_MAX splits x (hd + 2) */
        DEV_ALLOC(b->attpart, (size_t)8 * g->n_heads * ATT_SPLIT_MAX * (g->head_dim + 2) * 4);
    if (nout > b->ocap) {
        drop_graphs(b);
        DEV_ALLOC(b->xo, (size_t)nout * d * 4);
        DEV_ALLOC(b->logits, (size_t)nout * g->vocab_size * 4);
        DEV_ALLOC(b->lse, (size_t)nout * 4);
        DEV_ALLOC(b->amax, (size_t)nout * 4);
        DEV_ALLOC(b->ropart, (size_t)nout * SS_CUDA_READOUT_PARTS * 16);
        b->ocap = nout;
    }
    return SS_OK;
}

/* Index room for a pass with bt_entries block-table entries: the device buffer, and the pinned host
 * buffer of the pass's slot (not in flight), which becomes b->h_idx for planning. */
static int ensure_idx(cuda_be_t *b, struct pass_slot *ps, size_t bt_entries, char *err, size_t errsz)
{
    size_t need = IDX_FIXED * (size_t)b->tcap + bt_entries;
    size_t grow = SS_MAX(need, IDX_FIXED * (size_t)b->tcap + 4096); /* what a new buffer gets */
    int rc;
    if (need > b->idx_cap) {
        drop_graphs(b);
        DEV_ALLOC(b->idx, grow * 4);
        b->idx_cap = grow;
    }
    if (need > ps->h_idx_cap) {
        need = grow;
        ss_cuda_host_free(b->c, ps->h_idx);
        ps->h_idx = NULL, ps->h_idx_cap = 0;
        if ((rc = ss_cuda_host_alloc(b->c, (void **)&ps->h_idx, need * 4, err, errsz)))
            return rc;
        ps->h_idx_cap = need;
    }
    b->h_idx = ps->h_idx;
    ps->tcap = b->tcap;
    return SS_OK;
}

/* Orders the tensor-core attention's tiles: those longer than SS_CUDA_TC_ROWS / group queries
 * first (one head per block), then the short ones (the whole GQA group per block). Returns the
 * number of long tiles. */
static int split_tiles(cuda_be_t *b, int32_t *q0, int32_t *nq, int nt)
{
    int lim = SS_CUDA_TC_ROWS / (b->m->cfg.n_heads / b->m->cfg.n_kv_heads), nl = 0;
    for (int i = 0; i < nt; i++) /* stable partition by rotation; tile lists are short */
        if (nq[i] > lim) {
            int32_t a = q0[i], c = nq[i];
            memmove(q0 + nl + 1, q0 + nl, (size_t)(i - nl) * 4);
            memmove(nq + nl + 1, nq + nl, (size_t)(i - nl) * 4);
            q0[nl] = a, nq[nl++] = c;
        }
    return nl;
}

/* Fills the host index arrays: tokens and positions, each token's sequence (a compact block
 * table over the distinct sequences), attention tiles (runs of up to 16 consecutive tokens of
 * one sequence), output rows and pooled rows. */
static int plan_batch(cuda_be_t *b, const ubatch_t *ub, int *mb_out, int *nt_out, int *nh_out, size_t *used,
                      char *err, size_t errsz)
{
    int ns = 0, mb = 1, nt = 0, nh = 0, n = ub->n;
    /* pass 1: distinct sequences and the widest block table, to size the index buffer */
    for (int t = 0; t < n; t++) {
        int s = -1;
        for (int j = ns - 1; j >= 0 && s < 0; j--) /* tokens of a sequence are usually adjacent */
            if (b->h_seqptr[j] == ub->blocks[t])
                s = j;
        if (s < 0)
            b->h_seqptr[ns++] = ub->blocks[t];
        mb = SS_MAX(mb, ub->pos[t] / KV_BLOCK + 1);
    }
    if (n <= 8) { /* decode steps replay graphs keyed by mb: grow it in powers of two, not per block */
        int p = 4;
        while (p < mb)
            p <<= 1;
        mb = p;
    }
    int ng = ub->want_off ? ub->want_off[ub->nout] : 0; /* listed logits to gather */
    int rc = ensure_idx(b, &b->slot[b->next], (size_t)ns * mb + 2 * (size_t)ng, err, errsz);
    if (rc)
        return rc;
    int32_t *seq = b->h_idx + 2 * (size_t)b->tcap, *q0 = b->h_idx + 3 * (size_t)b->tcap;
    int32_t *nq = b->h_idx + 4 * (size_t)b->tcap, *outidx = b->h_idx + 5 * (size_t)b->tcap;
    int32_t *hid = b->h_idx + 6 * (size_t)b->tcap, *bt = b->h_idx + 7 * (size_t)b->tcap;
    memcpy(b->h_idx, ub->tok, (size_t)n * 4);
    memcpy(b->h_idx + b->tcap, ub->pos, (size_t)n * 4);
    /* pass 2: sequence of each token, attention tiles, output and pooled rows */
    int last = 0;
    for (int t = 0; t < n; t++) {
        int s = last;
        if (b->h_seqptr[s] != ub->blocks[t])
            for (s = 0; b->h_seqptr[s] != ub->blocks[t]; s++)
                ;
        last = s;
        seq[t] = s;
        int cap = b->att_tc ? SS_CUDA_TC_ROWS : b->tile_max;
        if (nt > 0 && seq[q0[nt - 1]] == s && nq[nt - 1] < cap && q0[nt - 1] + nq[nt - 1] == t)
            nq[nt - 1]++;
        else {
            q0[nt] = t;
            nq[nt++] = 1;
        }
        if (ub->out[t] >= 0)
            outidx[ub->out[t]] = t;
        if (ub->hid_row && ub->hid_all && ub->hid_row[t] >= 0)
            hid[nh++] = t;
    }
    if (b->att_tc)
        b->nt_long = split_tiles(b, q0, nq, nt);
    for (int s = 0; s < ns; s++) {
        int maxp = 0;
        for (int t = 0; t < n; t++)
            if (seq[t] == s)
                maxp = SS_MAX(maxp, ub->pos[t]);
        for (int k = 0; k < mb; k++)
            bt[(size_t)s * mb + k] = k <= maxp / KV_BLOCK ? b->h_seqptr[s][k] : 0;
    }
    /* after the block table: the gather list, rows then tokens */
    b->gofs = IDX_FIXED * (size_t)b->tcap + (size_t)ns * mb;
    b->ng = ng;
    for (int o = 0, j = 0; o < ub->nout && ng > 0; o++)
        for (; j < ub->want_off[o + 1]; j++) {
            b->h_idx[b->gofs + j] = o;
            b->h_idx[b->gofs + ng + j] = ub->want_tok[j];
        }
    *mb_out = mb;
    *nt_out = nt;
    *nh_out = nh;
    *used = b->gofs + 2 * (size_t)ng;
    return SS_OK;
}

/* Prefill attention on tensor cores: the long runs one head per block, then the short runs a GQA
 * group per block; output rows fp32, or bf16 (in the same buffer, half used) for the Wo GEMM. */
static int attention_prefill(cuda_be_t *b, const dlayer_t *L, int n, int mb, int nt, int bf16)
{
    const ss_llm_config_t *g = &b->m->cfg;
    int nl = b->nt_long, rc = SS_OK;
    for (int part = 0; part < 2 && !rc; part++) {
        const int32_t *q0 = IDX_Q0(b) + (part ? nl : 0), *nq = IDX_NQ(b) + (part ? nl : 0);
        int cnt = part ? nt - nl : nl, hb = part ? g->n_heads / g->n_kv_heads : 1;
        rc = bf16 ? ss_cuda_attention_tc_bf16(b->c, b->att, b->q, L->kpool, L->vpool, IDX_BT(b), mb, IDX_SEQ(b),
                                              IDX_POS(b), n, q0, nq, cnt, g->n_heads, g->n_kv_heads, g->head_dim, hb)
                  : ss_cuda_attention_tc(b->c, b->att, b->q, L->kpool, L->vpool, IDX_BT(b), mb, IDX_SEQ(b),
                                         IDX_POS(b), n, q0, nq, cnt, g->n_heads, g->n_kv_heads, g->head_dim, hb);
    }
    return rc;
}

/* Makes the layer's packed Q|K|V weight (and biases) on first use: prefill then runs one GEMM into
 * hb (free until the feed-forward block) instead of three. 1 when it can be used. */
static int qkv_pack(cuda_be_t *b, dlayer_t *L)
{
    if (L->packed)
        return L->packed > 0;
    const ss_llm_config_t *g = &b->m->cfg;
    int qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim;
    const ss_cuda_weight_t *ws[3] = {&L->wq, &L->wk, &L->wv};
    char err[SS_ERRSZ];
    L->packed = -1; /* a failure below only means the three GEMMs stay */
    if (qd + 2 * kvd > g->hidden_dim || ss_cuda_weight_pack_bf16(b->c, &L->wqkv, ws, 3, err, sizeof err))
        return 0;
    if (L->bq || L->bk || L->bv) {
        const float *bs[3] = {L->bq, L->bk, L->bv};
        size_t n[3] = {(size_t)qd, (size_t)kvd, (size_t)kvd}, at = 0;
        if (ss_cuda_malloc(b->c, (void **)&L->bqkv, (size_t)(qd + 2 * kvd) * 4, err, sizeof err))
            return 0;
        for (int i = 0; i < 3; at += n[i++])
            if (bs[i] ? ss_cuda_d2d(b->c, L->bqkv + at, bs[i], n[i] * 4, err, sizeof err)
                      : ss_cuda_memset(b->c, L->bqkv + at, 0, n[i] * 4, err, sizeof err))
                return 0;
    }
    L->packed = 1;
    return 1;
}

/* Prefill's RMSNorm, Q|K|V, RoPE and KV store through the packed weight (1 GEMM into hb). */
static int qkv_prefill_packed(cuda_be_t *b, dlayer_t *L, int n, int mb, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    float *const ys[1] = {b->hb};
    const ss_cuda_weight_t *const ws[1] = {&L->wqkv};
    const float *const bs[1] = {L->bqkv};
    int rc = ss_cuda_rms_matmul_multi(b->c, 1, ys, ws, bs, b->x, L->attn_norm, g->norm_eps, b->xb, n, err, errsz);
    if (!rc)
        rc = ss_cuda_rope_kv_packed(b->c, b->q, b->hb, L->kpool, L->vpool, IDX_BT(b), mb, IDX_SEQ(b), IDX_POS(b), n,
                                    g->n_heads, g->n_kv_heads, g->head_dim, g->rope_dim, g->rope_base,
                                    g->rope_neox);
    return rc;
}

static int layer_fwd(cuda_be_t *b, const ubatch_t *ub, int l, int mb, int nt, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    dlayer_t *L = &b->L[l];
    ss_cuda_t *c = b->c;
    int n = ub->n, hd = g->head_dim, qd = g->n_heads * hd, kvd = g->n_kv_heads * hd;
    float *const qkv_y[3] = {b->q, b->k, b->v};
    const ss_cuda_weight_t *const qkv_w[3] = {&L->wq, &L->wk, &L->wv};
    const float *const qkv_b[3] = {L->bq, L->bk, L->bv};
    /* RMSNorm fused into the Q|K|V GEMV at batch 1 (measured: a gain at batch 1, a loss from 2), and
     * into the tensor-core GEMMs' bf16 input for prefill passes */
    int rc = SS_OK, fuse = (b->fuse_norm && n == 1) || (b->bf16_handoff && n > 8);
    int att_bf16 = b->att_tc && b->bf16_handoff && L->wo.type != SS_WT_F32; /* attention -> Wo in bf16 */
    const float *xin = b->x, *nw = L->attn_norm;
    if (!fuse) {
        rc = ss_cuda_rmsnorm(c, b->xb, b->x, L->attn_norm, n, g->dim, g->norm_eps);
        xin = b->xb, nw = NULL;
    }
    if (!rc && n > 8 && b->bf16_handoff && qkv_pack(b, L))
        rc = qkv_prefill_packed(b, L, n, mb, err, errsz);
    else if (!rc && b->fuse_rope) /* decode-sized passes: RoPE and the KV store in the GEMV's epilogue */
        rc = ss_cuda_qkv_rope_kv(c, b->q, b->k, b->v, L->kpool, L->vpool, &L->wq, &L->wk, &L->wv, L->bq, L->bk, L->bv,
                                 xin, nw, g->norm_eps, b->xb, IDX_BT(b), mb, IDX_SEQ(b), IDX_POS(b), n, g->n_heads,
                                 g->n_kv_heads, hd, g->rope_dim, g->rope_base, g->rope_neox, err, errsz);
    else if (!rc) {
        rc = nw ? ss_cuda_rms_matmul_multi(c, 3, qkv_y, qkv_w, qkv_b, xin, nw, g->norm_eps, b->xb, n, err, errsz)
                : ss_cuda_matmul_multi(c, 3, qkv_y, qkv_w, qkv_b, xin, n, err, errsz);
        if (!rc)
            rc = ss_cuda_rope_kv(c, b->q, b->k, b->v, L->kpool, L->vpool, IDX_BT(b), mb, IDX_SEQ(b), IDX_POS(b), n,
                                 g->n_heads, g->n_kv_heads, hd, g->rope_dim, g->rope_base, g->rope_neox);
    }
    ss_cuda_prof_mark(c, P_QKV);
    if (!rc && b->att_tc)
        rc = attention_prefill(b, L, n, mb, nt, att_bf16);
    else if (!rc) /* decode-sized passes split the keys: one 32-key tile per block at full table width */
        rc = ss_cuda_attention_split(c, b->att, b->attpart,
                                     n <= 8 && b->split_att ? SS_MIN(ATT_SPLIT_MAX, mb / 2) : 1, b->q,
                                     L->kpool, L->vpool, IDX_BT(b), mb, IDX_SEQ(b), IDX_POS(b), n, IDX_Q0(b),
                                     IDX_NQ(b), nt, g->n_heads, g->n_kv_heads, hd);
    ss_cuda_prof_mark(c, P_ATTN);
    if (!rc) /* x += Wo att */
        rc = att_bf16 ? ss_cuda_matmul_add_bf16(c, b->x, b->att, &L->wo, n, err, errsz)
                      : ss_cuda_matmul_add(c, b->x, b->att, &L->wo, n, err, errsz);
    ss_cuda_prof_mark(c, P_WO);
    if (!rc && fuse)
        rc = ss_cuda_rms_ffn(c, b->x, L->ffn_norm, g->norm_eps, b->xb, &L->gate, &L->up, &L->down, b->hb, b->hb2, n,
                             err, errsz);
    else if (!rc && !(rc = ss_cuda_rmsnorm(c, b->xb, b->x, L->ffn_norm, n, g->dim, g->norm_eps)))
        rc = ss_cuda_ffn(c, b->x, b->xb, &L->gate, &L->up, &L->down, b->hb, b->hb2, n, err, errsz);
    ss_cuda_prof_mark(c, P_FFN); /* RMSNorm, gate/up, SwiGLU and down */
    (void)kvd, (void)qd;
    if (rc && !err[0])
        ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA forward failed in layer %d (attention head_dim %d)", l, hd);
    return rc;
}

/* Every kernel of one forward pass (no host synchronisation: capturable as a graph). */
static int launch_pass(cuda_be_t *b, int n, int nout, int nh, int mb, int nt, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    int d = g->dim;
    int rc = ss_cuda_embed(b->c, b->x, &b->embd, IDX_TOK(b), n);
    for (int l = 0; !rc && l < g->n_layers; l++) {
        const ubatch_t shape = {.n = n};
        rc = layer_fwd(b, &shape, l, mb, nt, err, errsz);
    }
    if (!rc)
        rc = ss_cuda_rmsnorm(b->c, b->xb, b->x, b->out_norm, n, d, g->norm_eps);
    if (!rc && nout > 0) {
        rc = ss_cuda_gather_rows(b->c, b->xo, b->xb, IDX_OUT(b), nout, d);
        if (!rc)
            rc = ss_cuda_matmul(b->c, b->logits, b->xo, &b->output, NULL, nout, err, errsz);
        /* the log-sum-exp of each row, so the host never exponentiates the vocabulary, and its
         * argmax, so greedy decoding needs no logits on the host */
        if (!rc)
            rc = ss_cuda_lse_argmax(b->c, b->lse, b->amax, b->ropart, b->logits, nout, g->vocab_size);
    }
    if (!rc && nh > 0)
        rc = ss_cuda_gather_rows(b->c, b->xb2, b->xb, IDX_HID(b), nh, d);
    return rc;
}

/* Replays (capturing first if needed) the graph of this shape. */
static int launch_graph(cuda_be_t *b, int n, int nout, int nh, int mb, int nt, char *err, size_t errsz)
{
    int nl = b->att_tc ? b->nt_long : -1;
    for (int i = 0; i < b->ngraphs; i++)
        if (b->graphs[i].n == n && b->graphs[i].nout == nout && b->graphs[i].nh == nh && b->graphs[i].mb == mb &&
            b->graphs[i].nt == nt && b->graphs[i].nl == nl)
            return ss_cuda_graph_launch(b->c, b->graphs[i].g, err, errsz);
    if (n > 8) { /* a prefill shape is captured when it comes back: its first pass may allocate */
        int i = 0;
        while (i < b->nseen && !(b->seen[i].n == n && b->seen[i].nout == nout && b->seen[i].nh == nh &&
                                 b->seen[i].mb == mb && b->seen[i].nt == nt && b->seen[i].nl == nl))
            i++;
        if (i == b->nseen) {
            i = b->nseen < (int)SS_ARRAY_LEN(b->seen) ? b->nseen++ : (int)(n % SS_ARRAY_LEN(b->seen));
            b->seen[i].n = n, b->seen[i].nout = nout, b->seen[i].nh = nh, b->seen[i].mb = mb, b->seen[i].nt = nt;
            b->seen[i].nl = nl;
            return launch_pass(b, n, nout, nh, mb, nt, err, errsz);
        }
    }
    if (b->ngraphs == (int)SS_ARRAY_LEN(b->graphs))
        drop_graphs(b);
    ss_cuda_graph_t *gr;
    int rc = ss_cuda_graph_begin(b->c, err, errsz);
    if (rc)
        return rc;
    int lrc = launch_pass(b, n, nout, nh, mb, nt, err, errsz);
    rc = ss_cuda_graph_end(b->c, &gr, err, errsz);
    if (lrc || rc)
        return lrc ? lrc : rc;
    int i = b->ngraphs++;
    b->graphs[i].n = n, b->graphs[i].nout = nout, b->graphs[i].nh = nh, b->graphs[i].mb = mb, b->graphs[i].nt = nt;
    b->graphs[i].nl = nl;
    b->graphs[i].g = gr;
    return ss_cuda_graph_launch(b->c, gr, err, errsz);
}

/* Room in the slot's pinned result buffer for this pass, and where each part goes. */
static int ensure_out(cuda_be_t *b, struct pass_slot *ps, const ubatch_t *ub, int nh, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    size_t no = (size_t)SS_MAX(ub->nout, 0), d = (size_t)g->dim;
    ps->off_amax = no * g->vocab_size * 4;
    ps->off_lse = ps->off_amax + no * 4;
    ps->off_hidden = ps->off_lse + no * 4;
    ps->off_pool = ps->off_hidden + (ub->hidden ? no * d * 4 : 0);
    ps->off_gath = ps->off_pool + (size_t)nh * d * 4;
    size_t need = ps->off_gath + (size_t)b->ng * 4;
    if (need <= ps->h_out_cap)
        return SS_OK;
    ss_cuda_host_free(b->c, ps->h_out);
    ps->h_out = NULL, ps->h_out_cap = 0;
    need += need / 4; /* some room to grow */
    int rc = ss_cuda_host_alloc(b->c, (void **)&ps->h_out, need, err, errsz);
    if (!rc)
        ps->h_out_cap = need;
    return rc;
}

/* The next run [o, e) of whole logits rows someone reads, from o: all of them unless want_logits
 * says a row's consumer needs only its argmax (then, in pure greedy decoding, nothing but the
 * argmax crosses the bus) or only listed tokens (gathered on the device instead). Returns e, or
 * nout when none is left (then *o = nout). */
static int wanted_run(const ubatch_t *ub, int *o)
{
    while (*o < ub->nout && ub->want_logits && ub->want_logits[*o] != 1)
        (*o)++;
    int e = *o;
    while (e < ub->nout && (!ub->want_logits || ub->want_logits[e] == 1))
        e++;
    return e;
}

/* The results that come back as they are (argmax, log-sum-exp, final hidden of output rows): where
 * each lies on the device, in the slot's pinned buffer and in the ubatch. Returns how many. */
typedef struct result_part {
    const void *dev;
    size_t off, bytes;
    void *host;
} result_part_t;

static int plain_parts(const cuda_be_t *b, const struct pass_slot *ps, const ubatch_t *ub, result_part_t *p)
{
    size_t no = (size_t)SS_MAX(ub->nout, 0), d = (size_t)b->m->cfg.dim;
    int k = 0;
    if (no && ub->argmax)
        p[k++] = (result_part_t){b->amax, ps->off_amax, no * 4, ub->argmax};
    if (no && ub->lse)
        p[k++] = (result_part_t){b->lse, ps->off_lse, no * 4, ub->lse};
    if (no && ub->hidden)
        p[k++] = (result_part_t){b->xo, ps->off_hidden, no * d * 4, ub->hidden};
    return k;
}

/* Queues the copies of the pass's results into the slot's pinned buffer (no waiting). */
static int queue_results(cuda_be_t *b, struct pass_slot *ps, const ubatch_t *ub, int nh, char *err, size_t errsz)
{
    const ss_llm_config_t *g = &b->m->cfg;
    size_t row = (size_t)g->vocab_size * 4, d = (size_t)g->dim;
    result_part_t p[3];
    int rc = ensure_out(b, ps, ub, nh, err, errsz);
    for (int o = 0, e; !rc && (e = wanted_run(ub, &o)) > o; o = e)
        rc = ss_cuda_d2h_async(b->c, ps->h_out + (size_t)o * row, (char *)b->logits + (size_t)o * row,
                               (size_t)(e - o) * row, err, errsz);
    for (int i = 0, np = rc ? 0 : plain_parts(b, ps, ub, p); !rc && i < np; i++)
        rc = ss_cuda_d2h_async(b->c, ps->h_out + p[i].off, p[i].dev, p[i].bytes, err, errsz);
    if (!rc && nh > 0)
        rc = ss_cuda_d2h_async(b->c, ps->h_out + ps->off_pool, b->xb2, (size_t)nh * d * 4, err, errsz);
    if (!rc && b->ng > 0)
        rc = ss_cuda_d2h_async(b->c, ps->h_out + ps->off_gath, b->gath, (size_t)b->ng * 4, err, errsz);
    ps->nh = nh;
    return rc;
}

/* Hands a finished pass's results from its slot to the ubatch's buffers. */
static void take_results(cuda_be_t *b, const struct pass_slot *ps, const ubatch_t *ub)
{
    const ss_llm_config_t *g = &b->m->cfg;
    size_t row = (size_t)g->vocab_size * 4, d = (size_t)g->dim;
    result_part_t p[3];
    for (int o = 0, e; (e = wanted_run(ub, &o)) > o; o = e)
        memcpy((char *)ub->logits + (size_t)o * row, ps->h_out + (size_t)o * row, (size_t)(e - o) * row);
    for (int i = 0, np = plain_parts(b, ps, ub, p); i < np; i++)
        memcpy(p[i].host, ps->h_out + p[i].off, p[i].bytes);
    /* listed tokens: each gathered logit into its place in the row (the rest stays unset) */
    if (ub->want_off) {
        const float *gv = (const float *)(ps->h_out + ps->off_gath);
        for (int o = 0; o < ub->nout; o++)
            for (int j = ub->want_off[o]; j < ub->want_off[o + 1]; j++)
                ub->logits[(size_t)o * g->vocab_size + ub->want_tok[j]] = gv[j];
    }
    /* EMBED pooling: add the final hidden of each marked token */
    const float *h = (const float *)(ps->h_out + ps->off_pool);
    const int32_t *hid = ps->h_idx + 6 * (size_t)ps->tcap;
    for (int i = 0; i < ps->nh; i++)
        for (size_t j = 0; j < d; j++)
            ub->hid_all[(size_t)ub->hid_row[hid[i]] * d + j] += h[(size_t)i * d + j];
}

/* Gathers the logits the rows with token lists read (b->ng of them, indices uploaded with the
 * pass's other index arrays) into b->gath. */
static int gather_listed(cuda_be_t *b, const ubatch_t *ub, char *err, size_t errsz)
{
    int rc;
    (void)ub;
    if ((size_t)b->ng > b->gath_cap) {
        size_t cap = SS_MAX((size_t)b->ng, 2 * b->gath_cap);
        DEV_ALLOC(b->gath, cap * 4);
        b->gath_cap = cap;
    }
    return ss_cuda_gather_logits(b->c, b->gath, b->logits, b->m->cfg.vocab_size, b->idx + b->gofs,
                                 b->idx + b->gofs + b->ng, b->ng);
}

/* Queues a forward pass: plans and uploads its indices, launches its kernels and the copies of its
 * results, and returns without waiting (except under SS_CUDA_TIMING or SS_CUDA_PROFILE, which time
 * passes one at a time). At most SS_CUDA_MARKS passes are in flight; cuda_finish takes them in
 * order. */
static ss_err_t cuda_submit(void *ctx, const ubatch_t *ub, char *err, size_t errsz)
{
    cuda_be_t *b = ctx;
    const ss_llm_config_t *g = &b->m->cfg;
    int idle = 1;
    for (int i = 0; i < SS_CUDA_MARKS; i++)
        idle = idle && !b->slot[i].busy;
    if (idle) /* nothing in flight: start from slot 0, so one-pass calls keep reusing its buffers */
        b->next = b->oldest = 0;
    struct pass_slot *ps = &b->slot[b->next];
    if (ps->busy)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "CUDA backend: more than %d passes in flight", SS_CUDA_MARKS);
    for (int t = 0; t < ub->n; t++)
        if (ub->tok[t] < 0 || ub->tok[t] >= g->vocab_size)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "token id %d out of range (vocab %d)", ub->tok[t],
                             g->vocab_size);
    int mb = 1, nt = 0, nh = 0;
    size_t used = 0;
    int frc = flush_copies(b, err, errsz); /* the forks' blocks before the pass that reads them */
    if (frc)
        return frc;
    int64_t t_start = ss_now_ns();
    /* prefill-sized passes take the tensor-core attention (decode steps keep the CUDA-core kernel,
     * whose graphs are captured with its tiling) */
    b->att_tc = ub->n > 8 && ss_cuda_attention_tc_ok(g->head_dim, g->n_heads / g->n_kv_heads) &&
                b->tc_ok;
    int rc = ensure_acts(b, ub->n, ub->nout, err, errsz);
    if (!rc)
        rc = plan_batch(b, ub, &mb, &nt, &nh, &used, err, errsz);
    if (!rc)
        rc = ss_cuda_h2d_async(b->c, b->idx, b->h_idx, used * 4, err, errsz);
    if (rc)
        return rc;
    int64_t t_plan = ss_now_ns();
    ss_cuda_prof_mark(b->c, -1);
    if (b->timing)
        ss_cuda_timer_begin(b->c);
    /* small batches (decode steps) are launch-bound: replay a captured graph of the pass */
    if ((ub->n <= 8 || b->graph_all) && b->graphs_ok)
        rc = launch_graph(b, ub->n, ub->nout, nh, mb, nt, err, errsz);
    else
        rc = launch_pass(b, ub->n, ub->nout, nh, mb, nt, err, errsz);
    if (!rc && b->ng > 0) /* the listed logits, outside any captured graph (the list changes) */
        rc = gather_listed(b, ub, err, errsz);
    ss_cuda_prof_mark(b->c, P_READOUT);
    int64_t t_launch = ss_now_ns();
    if (!rc && b->timing) {
        float ms = 0;
        rc = ss_cuda_timer_end(b->c, &ms, err, errsz);
        b->gpu_ms += ms;
    }
    if (!rc) { /* SS_CUDA_PROFILE: the profile's events belong to this pass alone (waits for it) */
        if (b->prof_skip > 0)
            ss_cuda_prof_discard(b->c);
        else
            ss_cuda_prof_collect(b->c);
    }
    if (!rc)
        rc = queue_results(b, ps, ub, nh, err, errsz);
    if (!rc)
        rc = ss_cuda_done_mark(b->c, b->next, err, errsz);
    if (rc) {
        if (!err[0])
            ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA forward pass of %d tokens failed", ub->n);
        return rc;
    }
    ps->busy = 1;
    b->next = (b->next + 1) % SS_CUDA_MARKS;
    if (b->prof_skip > 0)
        b->prof_skip--;
    else {
        b->fwd_part[0] += t_plan - t_start, b->fwd_part[1] += t_launch - t_plan;
        b->fwd_ns += ss_now_ns() - t_start;
        b->fwd_calls++;
        b->fwd_tokens += ub->n;
    }
    return SS_OK;
}

/* Waits for the oldest pass in flight (ub: what was submitted for it) and fills ub's outputs. */
static ss_err_t cuda_finish(void *ctx, const ubatch_t *ub, char *err, size_t errsz)
{
    cuda_be_t *b = ctx;
    struct pass_slot *ps = &b->slot[b->oldest];
    if (!ps->busy)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "CUDA backend: no pass in flight to finish");
    int64_t t0 = ss_now_ns();
    int rc = ss_cuda_done_wait(b->c, b->oldest, err, errsz);
    int64_t t1 = ss_now_ns();
    ps->busy = 0;
    b->oldest = (b->oldest + 1) % SS_CUDA_MARKS;
    if (rc) {
        if (!err[0])
            ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA forward pass of %d tokens failed", ub->n);
        return rc;
    }
    take_results(b, ps, ub);
    int64_t t2 = ss_now_ns();
    b->fwd_part[2] += t1 - t0, b->fwd_part[3] += t2 - t1;
    b->fwd_ns += t2 - t0;
    return SS_OK;
}

static ss_err_t cuda_forward(void *ctx, const ubatch_t *ub, char *err, size_t errsz)
{
    if (ub->n <= 0)
        return SS_OK;
    ss_err_t rc = cuda_submit(ctx, ub, err, errsz);
    return rc ? rc : cuda_finish(ctx, ub, err, errsz);
}

/* Copies KV block src into block dst in every layer (a forked sequence's partial block): queued, and
 * sent with the other forks of the step in one launch before the next pass or reserve
 * (flush_copies; two copies per layer and fork cost more host time than a CHOOSE row's prefill).
 * A copy that reads a pending copy's destination or writes a pending copy's source or destination
 * sends the queue first, so the copies keep their order's effect. */
static void cuda_copy(void *ctx, int dst, int src)
{
    cuda_be_t *b = ctx;
    char err[SS_ERRSZ];
    int hi = SS_MAX(dst, src) + 1;
    if (hi > b->cp_mcap) {
        int nc = SS_MAX(hi, SS_MAX(2 * b->cp_mcap, b->cap_blocks));
        unsigned char *p = realloc(b->cp_mark, (size_t)nc);
        if (p) {
            memset(p + b->cp_mcap, 0, (size_t)(nc - b->cp_mcap));
            b->cp_mark = p, b->cp_mcap = nc;
        }
    }
    if (b->cp_n == b->cp_cap && hi <= b->cp_mcap) {
        int nc = b->cp_cap ? 2 * b->cp_cap : 256;
        int32_t *p = realloc(b->cp_h, (size_t)nc * 2 * sizeof *p);
        if (p)
            b->cp_h = p, b->cp_cap = nc;
    }
    if (hi > b->cp_mcap || b->cp_n == b->cp_cap) { /* out of memory for the queue: copy now */
        flush_copies(b, err, sizeof err);
        const ss_llm_config_t *g = &b->m->cfg;
        size_t per = (size_t)g->n_kv_heads * KV_BLOCK * g->head_dim;
        for (int l = 0; l < g->n_layers; l++) {
            ss_cuda_d2d(b->c, b->L[l].kpool + (size_t)dst * per, b->L[l].kpool + (size_t)src * per, per * 4, err,
                        sizeof err);
            ss_cuda_d2d(b->c, b->L[l].vpool + (size_t)dst * per, b->L[l].vpool + (size_t)src * per, per * 4, err,
                        sizeof err);
        }
        return;
    }
    if (b->cp_mark[src] == 2 || b->cp_mark[dst])
        flush_copies(b, err, sizeof err);
    b->cp_h[2 * b->cp_n] = dst, b->cp_h[2 * b->cp_n + 1] = src;
    b->cp_n++;
    b->cp_mark[dst] = 2;
    if (!b->cp_mark[src])
        b->cp_mark[src] = 1;
}

const backend_ops_t ss_llm_cuda_backend = {"cuda", cuda_upload, cuda_reserve, cuda_forward, cuda_destroy,
                                           cuda_copy, cuda_submit, cuda_finish, 0 /* no attention tracking */};
/* The same without overlapping passes (SS_CUDA_NO_OVERLAP: for A/B measurements). */
static const backend_ops_t cuda_backend_serial = {"cuda", cuda_upload, cuda_reserve, cuda_forward, cuda_destroy,
                                                  cuda_copy, NULL, NULL, 0};

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
    m->be = getenv("SS_CUDA_NO_OVERLAP") ? &cuda_backend_serial : &ss_llm_cuda_backend;
    m->be_ctx = ctx;
    m->be_blocks = 0;
    const char *ub = getenv("SS_CUDA_UBATCH"); /* tokens per forward pass (experiments) */
    if (ub && atoi(ub) > 0)
        m->ubatch = atoi(ub);
    else if (m->ubatch < 2048)
        m->ubatch = 2048; /* larger forward passes keep the GPU busy */
    return SS_OK;
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
    return ss_backend_llm_wrap(m, "cuda", err, errsz);
}
#endif
