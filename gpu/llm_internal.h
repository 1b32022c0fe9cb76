/*
 * llm_internal.h — the engine's internal structures, shared by the files of gpu/:
 * weights (model.c), tokenizer (tokenizer.c), kernels (kernels.c), the CPU backend
 * (forward_cpu.c), the block KV cache with prefix reuse (kvcache.c), the sequence
 * scheduler (engine.c), the request state machine and API (llm_run.c) and the
 * step-level continuous-batching scheduler (llm_sched.c), and KV reuse beyond the prefix
 * (the chunk KV cache, kvchunk.c, and blended prefills, kvblend.c).
 *
 * Ownership: ss_llm_t owns everything below; weight data points into the GGUF
 * mapping (g), norms and biases are f32 copies owned by the weights struct.
 */
#ifndef SS_LLM_INTERNAL_H
#define SS_LLM_INTERNAL_H

#include "ss_gguf.h"
#include "ss_llm.h"

#include <stdint.h>

/* A weight matrix as stored: rows x cols, row-major, cols = ne[0]. */
typedef struct wmat {
    const void *data;
    int type;
    int rows, cols;
    size_t row_bytes;
    uint8_t *panel;       /* CPU kernels: quantized rows repacked in 16-row groups (qpack.c), or a
                             float matrix's copy on huge pages (k_copy_float; data points at it), or
                             NULL; owned by whoever called k_pack / k_copy_float (the CPU backend) */
    size_t group_bytes;   /* bytes of one 16-row group of panel */
} wmat_t;

typedef struct layer_w {
    float *attn_norm;        /* (dim) */
    wmat_t wq;               /* (n_heads*head_dim, dim) */
    wmat_t wk;               /* (n_kv_heads*head_dim, dim) */
    wmat_t wv;               /* (n_kv_heads*head_dim, dim) */
    float *bq, *bk, *bv;     /* qwen2 biases, or NULL */
    wmat_t wo;               /* (dim, n_heads*head_dim) */
    float *ffn_norm;         /* (dim) */
    wmat_t w_gate;           /* (hidden, dim) */
    wmat_t w_up;             /* (hidden, dim) */
    wmat_t w_down;           /* (dim, hidden) */
} layer_w_t;

typedef struct weights {
    wmat_t tok_embd;         /* (vocab, dim) */
    layer_w_t *layers;       /* [n_layers] */
    float *out_norm;         /* (dim) */
    wmat_t output;           /* (vocab, dim); = tok_embd when tied */
} weights_t;

/* ---- tokenizer ---- */
typedef struct strmap strmap_t; /* string -> int (tokenizer.c) */

typedef struct tokenizer {
    int kind;                /* TOK_SPM or TOK_BPE */
    int n;                   /* vocab size */
    char **text;             /* [n] NUL-terminated piece text (owned) */
    int *len;                /* [n] byte length */
    float *score;            /* [n] SPM scores */
    int *type;               /* [n] 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
    strmap_t *vocab;         /* piece -> id */
    strmap_t *merges;        /* "a b" -> rank (BPE) */
    int *special;            /* ids of control/user-defined tokens matched in text, longest first */
    int nspecial;
    int byte_tok[256];       /* SPM byte-fallback ids (<0xNN>), -1 if absent */
    int unk;
    int add_space_prefix;
    int bos, eos;
    int pre;                 /* PRE_*: the BPE pre-tokenizer (tokenizer.ggml.pre) */
} tokenizer_t;

enum { TOK_SPM = 1, TOK_BPE = 2 };
enum { PRE_GPT2, PRE_LLAMA3, PRE_QWEN2, PRE_SMOLLM };
/* Piece boundaries of the family's pre-tokenizer regex (tokenizer.c): writes the end offset of
 * each piece of text[0..len) to ends (cap entries) and returns how many pieces (-1: no memory). */
int tok_pretokenize(int pre, const char *text, size_t len, size_t *ends, size_t cap);

int tok_load(tokenizer_t *t, const ss_gguf_t *g, char *err, size_t errsz);
void tok_free(tokenizer_t *t);
/* Encodes text (no BOS) appending to a growable array; cont = 1 for a continuation
 * (no SentencePiece leading space). Returns 0 or -1 on OOM. */
int tok_encode(const tokenizer_t *t, const char *text, size_t n, int cont, int **toks, int *ntok, int *cap);
/* Appends the bytes of token id to b (BOS/EOS give nothing). */
void tok_decode_piece(const tokenizer_t *t, int id, int prev, ss_buf_t *b);

/* ---- worker threads (threadpool.c) ---- */
/* fn(ctx, chunk, tid) for chunk < nchunks on up to `threads` participants (the caller is
 * tid 0; tids are < threads). Returns when all chunks are done. Not reentrant. */
typedef void (*pool_fn)(void *ctx, int chunk, int tid);
void pool_run(int threads, int nchunks, pool_fn fn, void *ctx);

/* ---- quantized types, unpacked (quant.c) ----
 * Every quantized block can be read as bytes u (one per weight, in element order) with a float
 * scale A and offset B per 16 weights: w[i] = A[i/16] * u[i] + B[i/16]. Zero-point types have
 * B = -zp * A exactly (zp >= 0), types with a free minimum have zp = -1. u <= 255. */
typedef struct qtype {
    int type;
    int block;  /* weights per block: 32 or 256 */
    int bytes;  /* bytes per block */
    int zp;     /* zero point (4, 8, 16, 32, 128) or -1 */
    void (*unpack)(const uint8_t *blk, uint8_t *u, float *A, float *B);
} qtype_t;
const qtype_t *q_type(int type); /* NULL for f32/f16/bf16 and unknown types */

/* ---- quantized weights in 16-row panels, int8 activations (qpack.c, qgemm.c) ---- */
enum { SK_LEGACY, SK_KMIN, SK_KSYM, SK_Q2K, SK_Q8K }; /* how a tile stores its group scales */
typedef struct pspec {
    int type;
    int G;        /* weights per group (one scale): 16 or 32 */
    int lowbits;  /* bits stored packed per weight: 2, 4 or 8 */
    int planes;   /* high-bit planes above them: 0, 1 or 2 */
    int lut;      /* IQ4: the 4 bits index ss_iq4_levels (+ 128) */
    int zp;       /* zero point (w = A * (u - zp)) or -1 (w = A * u + B) */
    int sk;
} pspec_t;
const pspec_t *p_spec(int type); /* NULL for types without panels (f32, f16, bf16) */
int p_hdr_bytes(const pspec_t *p);
int p_gscale_bytes(const pspec_t *p);
int p_gbits_bytes(const pspec_t *p);
size_t p_tile_bytes(const pspec_t *p, int n); /* 16 rows x n weights */
/* Scale and offset of row r of a group (tile header hdr, group scales gsc), and weight u of row
 * r, weight i of a group's bits gb: the reference readers of the layout. */
void p_group_ab(const pspec_t *p, const uint8_t *hdr, const uint8_t *gsc, int r, float *A, float *B);
int p_u(const pspec_t *p, const uint8_t *gb, int r, int i);
/* Repacks a quantized w into w->panel (threads share the work); -1 if its type has no panel
 * layout or memory runs out. k_unpack_free frees the panel. */
int k_pack(wmat_t *w, int threads);
/* Copies a float (F32/F16/BF16) w of 4 MiB or more onto transparent huge pages and points
 * w->data at the copy (kept in w->panel, freed by k_unpack_free): decode streams it without a
 * TLB miss and a prefetcher stop every 4 KiB, as it would from the file's page-cache pages.
 * 0 when copied or left as it is (small, or not a float type), -1 if memory runs out. */
int k_copy_float(wmat_t *w, int threads);
void k_unpack_free(wmat_t *w);

/* Activations quantized for the panel kernels: per row, int8 q[cols] with one scale per block of
 * blk = 256 (K-quants) or 32 (legacy types) (dx[nsb]), and per group of 16 / 32 the sum of q,
 * negated (int) and as float (blk 32: s32 holds dx * sum). */
typedef struct qact {
    void *buf;
    size_t cap;
    int nb, cols, nsb, blk;
    int8_t *q;       /* [nb][cols] */
    float *dx;       /* [nb][nsb] */
    int32_t *ns16;   /* [nb][cols/16] */
    float *s16;
    int32_t *ns32;   /* [nb][cols/32] */
    float *s32;
} qact_t;
ss_err_t q_act(qact_t *a, const float *x, size_t ldx, int nb, int cols, int blk, int threads);
void q_act_row(const float *x, int cols, int blk, int8_t *q, float *dx, int32_t *ns16, int32_t *ns32, float *s16,
               float *s32);
/* The sums of q_act_row (from q and dx), and q_act_row on the ISA's vectors (same bits). */
void q_act_sums(const int8_t *q, int cols, int blk, const float *dx, int32_t *ns16, int32_t *ns32, float *s16,
                float *s32);
void q_act_row_isa(const float *x, int cols, int blk, int8_t *q, float *dx, int32_t *ns16, int32_t *ns32, float *s16,
                   float *s32);
extern int k_level; /* kernels.c: 0 scalar, 1 AVX2, 2 AVX-512 VNNI */
void q_act_free(qact_t *a);
/* out[(b - b0) * ldo + r] = row r (< nrows) of the row group at grp . activation b, b0 <= b < b0 + nb:
 * the scalar reference of the panel arithmetic (qpack.c's header). */
void qgemm_scalar(const pspec_t *p, const uint8_t *grp, int cols, const qact_t *a, int b0, int nb, float *out,
                  size_t ldo, int nrows);
/* The same with the best kernel for the ISA picked by kernels.c (qgemm.c); level 0/1/2. */
void qgemm_run(int level, const pspec_t *p, const uint8_t *grp, int cols, const qact_t *a, int b0, int nb,
               float *out, size_t ldo, int nrows);

/* ---- float weights (fgemm.c) ---- */
/* out[b*ldo + r] = row r (< nrows, rows ws bytes apart) of an f32/f16/bf16 matrix . x_b, b < nb. */
void fgemm_run(int level, const uint8_t *w, size_t ws, int type, int nrows, int cols, const float *x, size_t ldx,
               int nb, float *out, size_t ldo);

/* ---- kernels (kernels.c) ---- */
/* out[b*ldo + r] = dot(W row r, x + b*ldx) for b < nb, r < W->rows; multi-threaded. */
void k_matmul(const wmat_t *w, const float *x, size_t ldx, int nb, float *out, size_t ldo, int threads);
/* Several matrices with the same input (Q/K/V, gate/up) in one parallel job:
 * out[i][b*ldo[i] + r] = W_i row r . x_b. All w[i]->cols must be equal. */
#define K_MULTI_MAX 4
void k_matmul_multi(const wmat_t *const *w, float *const *out, const size_t *ldo, int nmat, const float *x,
                    size_t ldx, int nb, int threads);
/* Dequantizes row r of w into dst (w->cols floats). */
void k_row_f32(const wmat_t *w, int r, float *dst);
const char *k_isa(void); /* "avx512", "avx2", "scalar"; also picks the kernels */
/* Dot product and y += a*x of short f32 vectors (attention), picked by k_isa(). */
extern float (*k_vdot)(const float *a, const float *b, int n);
extern void (*k_vaxpy)(float *y, float a, const float *x, int n);
/* Attention over KV blocks stored transposed ([head_dim][KV_BLOCK]): */
/* out[i] = sum_p a[p] * v_p[i] over nblk transposed blocks vt[b], last_np valid in the last. */
extern void (*k_attn_values_all)(const float *a, const float *const *vt, int nblk, int last_np, int hd,
                                 float *out);
extern void (*k_attn_scores_all)(const float *q, const float *const *kt, int nblk, int last_np, int hd,
                                 float *out);
/* The grp (<= 8) query heads of a GQA group at once, reading each K/V block once (NULL where
 * the ISA has no such kernel): scores out[j*ld + p] = q_j . k_p (q_j = q + j*hd); values
 * out[j*hd + i] = sum_p a_j[p] v_p[i] (a_j = a + j*ld). */
extern void (*k_attn_scores_grp)(const float *q, int grp, const float *const *kt, int nblk, int last_np, int hd,
                                 float *out, size_t ld);
extern void (*k_attn_values_grp)(const float *a, int grp, size_t ld, const float *const *vt, int nblk, int last_np,
                                 int hd, float *out);
/* r[0..n) = softmax(r * scale) in place. */
extern void (*k_softmax)(float *r, int n, float scale);
/* g[i] = silu(g[i]) * u[i] (the feed-forward's SwiGLU), element by element. */
extern void (*k_swiglu)(float *g, const float *u, size_t n);
void k_force_isa(const char *isa); /* tests: "scalar" / "avx2" / "avx512" / NULL = best */
/* Tests: models opened while this is set keep quantized weights unpacked, so every product runs
 * the slow path (rows dequantized by the reference dequantizers, f32 activations): a float
 * reference for the quantized kernels on the same weights. */
extern int k_test_no_panels;

/* ---- backend: forward passes over a batch of tokens ---- */
#define KV_BLOCK 16 /* tokens per KV block */

typedef struct ubatch {
    int n;                /* tokens */
    const int *tok;       /* [n] */
    const int *pos;       /* [n] position in its sequence */
    const int *const *blocks; /* [n] block table of the token's sequence */
    const int *out;       /* [n] output row or -1 */
    int nout;
    float *logits;        /* [nout][vocab] */
    float *hidden;        /* [nout][dim] final normed hidden of output rows, or NULL */
    const int *hid_row;   /* [n] row in hidden for every token (EMBED pooling) or -1; may be NULL */
    float *hid_all;       /* [rows][dim] accumulated (added) hidden for hid_row, or NULL */
    float *lse;           /* [nout] log-sum-exp of each output row's logits, filled by backends that
                             compute it where the logits are (CUDA); left NAN by the others */
    int *argmax;          /* [nout] argmax of each output row, filled by backends that compute it
                             where the logits are (CUDA); left -1 by the others */
    const unsigned char *want_logits; /* [nout] 0: the row's consumer needs only its argmax, so a
                             backend that fills argmax may leave the row's logits unset; 1: the
                             whole row; 2: only the entries listed in want_tok (see below) */
    const int *want_off;  /* [nout + 1] rows with want_logits 2 read the logits of tokens
                             want_tok[want_off[o] .. want_off[o + 1]); NULL when no row has 2 */
    const int *want_tok;
    /* Dependency tracking (backends with backend_ops_t.track): token t with trk[t] != NULL adds,
     * for every layer >= trk[t]->layer0, its attention probabilities on each chunk's positions,
     * times trk[t]->scale, to trk_out[t][kv_head * nchunk + chunk] (one slice per KV head, so the
     * heads of a token may run on different threads). NULL arrays: nothing tracked. */
    const struct attn_spec *const *trk;
    float *const *trk_out;
} ubatch_t;

/* What a tracked token records (see ubatch_t.trk): owned by its request (llm_run.c). */
typedef struct attn_spec {
    int nchunk;
    const int *span;      /* [2 * nchunk] token positions: chunk c is [span[2c], span[2c+1]) */
    int layer0;           /* layers >= layer0 are tracked */
    float scale;          /* 1 / (n_heads * tracked layers): the mean over heads and layers */
} attn_spec_t;

typedef struct backend_ops {
    const char *name;
    /* Prepares weights (upload); *ctx is the backend's state. */
    ss_err_t (*upload)(ss_llm_t *m, void **ctx, char *err, size_t errsz);
    /* Makes sure KV blocks 0..nblocks) exist. */
    ss_err_t (*reserve)(void *ctx, int nblocks, char *err, size_t errsz);
    ss_err_t (*forward)(void *ctx, const ubatch_t *ub, char *err, size_t errsz);
    void (*destroy)(void *ctx);
    /* Copies the KV of block src into block dst (forking a partially filled block); may be
     * NULL, then a fork recomputes the positions of the partial block. */
    void (*copy)(void *ctx, int dst, int src);
    /* Optional: forward split in two so that the host prepares the next pass while this one runs.
     * submit queues a pass and returns; finish waits for the oldest pass in flight and fills its
     * ubatch's outputs. Up to two passes may be in flight; finish takes them in submission order,
     * and a submitted ubatch's buffers stay untouched until it is finished. NULL: forward only. */
    ss_err_t (*submit)(void *ctx, const ubatch_t *ub, char *err, size_t errsz);
    ss_err_t (*finish)(void *ctx, const ubatch_t *ub, char *err, size_t errsz);
    int track;            /* 1: forward records attention of tokens with ubatch_t.trk (CPU only so
                             far); 0: requests that ask for it fail */
} backend_ops_t;

extern const backend_ops_t ss_llm_cpu_backend;

/* ---- block KV cache with prefix reuse (kvcache.c) ---- */
typedef struct kvblock {
    uint64_t hash;        /* chain hash of the tokens up to the end of this block */
    int ref;              /* sequences using it */
    int cached;           /* registered in the prefix table */
    int prev, next;       /* LRU list of unreferenced cached blocks */
    int tokens[KV_BLOCK]; /* block content (verifies hash hits) */
    uint64_t parent;      /* chain hash of the previous block (0 for the first) */
} kvblock_t;

typedef struct kvcache {
    kvblock_t *b;
    int nb, cap;
    int *freelist;        /* unreferenced, uncached */
    int nfree;
    int lru_head, lru_tail; /* head = least recently used */
    int nlru;
    int max_cached;       /* unreferenced cached blocks kept */
    uint64_t *tab_key;    /* open addressing: hash -> block id */
    int *tab_val;
    int tab_cap, tab_n;
} kvcache_t;

void kv_init(kvcache_t *c, int max_cached);
void kv_free(kvcache_t *c);
int kv_alloc(kvcache_t *c);              /* new referenced block id, -1 on OOM */
void kv_release(kvcache_t *c, int id);   /* drop one reference */
void kv_ref(kvcache_t *c, int id);       /* add one reference */
uint64_t kv_chain(uint64_t parent, const int *toks); /* hash of a full block */
int kv_lookup(kvcache_t *c, uint64_t h, uint64_t parent, const int *toks); /* referenced id or -1 */
void kv_register(kvcache_t *c, int id, uint64_t h, uint64_t parent, const int *toks);
void kv_clear(kvcache_t *c);             /* unregister every unreferenced cached block */

/* ---- chunk KV cache for KV_REUSE = 'chunks' (kvchunk.c) ----
 * A host-memory LRU of the KV of token chunks computed on their own (positions 0..n-1),
 * bounded in bytes. Single-threaded, like the rest of an ss_llm_t. */
typedef struct kvc_entry {
    uint64_t key;
    int n;                          /* tokens */
    int *tok;                       /* [n] owned: verifies hits */
    float *kv;                      /* owned: [n_layers][2][n][kvd], K as rotated at 0..n-1, then V */
    size_t bytes;                   /* what it counts against the bound (kvc_entry_bytes) */
    struct kvc_entry *prev, *next;  /* LRU list: head = least recently used */
    struct kvc_entry *hnext;        /* hash chain */
} kvc_entry_t;

typedef struct kvchunk {
    size_t cap_bytes, bytes;        /* bound and use (entries, tokens and KV) */
    kvc_entry_t **tab;              /* chained hash table, tab_cap a power of two */
    int tab_cap, n;
    kvc_entry_t *head, *tail;
    int64_t hits, misses, inserts, evictions;
} kvchunk_t;

void kvc_init(kvchunk_t *c, size_t cap_bytes);
void kvc_free(kvchunk_t *c);
void kvc_clear(kvchunk_t *c);             /* drops every entry (counters kept) */
size_t kvc_entry_bytes(int n, size_t floats);
/* The entry of key holding exactly tok[0..n) (made most recently used), or NULL (a miss). */
kvc_entry_t *kvc_get(kvchunk_t *c, uint64_t key, const int *tok, int n);
/* A new most recently used entry for tok[0..n) with room for floats KV values (unset: the
 * caller fills them), evicting least recently used entries until it fits; NULL when it is
 * larger than the bound or memory is short (nothing is evicted for an entry that cannot fit). */
kvc_entry_t *kvc_put(kvchunk_t *c, uint64_t key, const int *tok, int n, size_t floats);
void kvc_drop(kvchunk_t *c, kvc_entry_t *e); /* removes an entry the caller could not fill */

/* ---- KV_REUSE = 'chunks': blended prefill (kvblend.c, CacheBlend) ---- */
typedef struct seq seq_t; /* (engine.c, below) */
typedef struct blend_spec {
    int nchunk;
    const int *span;      /* [2 * nchunk] token positions [a, b) of each chunk: increasing, disjoint */
    float frac;           /* fraction of the chunks' tokens whose KV is recomputed, 0..1 */
} blend_spec_t;

/* The CPU backend's side (forward_cpu.c). One pass over n tokens of one sequence (positions
 * pos[], block table blocks) whose blocks already hold, for tokens with reused[t], KV placed
 * from the chunk cache: every token runs the first layer; at the second layer the nsel reused
 * tokens whose new K/V deviate most (squared L2) from the placed ones are selected, and from
 * there on only they and the tokens that are not reused are computed (the others keep the
 * placed KV). *ncomp: tokens computed in the layers after the first. */
typedef struct blend_pass {
    int n;
    const int *tok, *pos;
    const int *blocks;
    const unsigned char *reused;
    int nsel;
} blend_pass_t;
ss_err_t cpu_blend(void *ctx, const blend_pass_t *bp, int *ncomp, char *err, size_t errsz);
/* Reads (write 0) or writes (1) the kv_dim floats of K (which 0) or V (1) at slot of block. */
void cpu_kv_io(void *ctx, int block, int slot, int layer, int which, float *buf, int write);
/* A forward pass whose tokens attend only to positions >= lo_blk * KV_BLOCK (tests: a chunk
 * computed on its own at an offset). */
ss_err_t cpu_forward_from(void *ctx, const ubatch_t *ub, int lo_blk, char *err, size_t errsz);

/* Prefills s from s->ncomp to its last token (excluded; or to its first tracked position, which
 * must compute its own attention) by blending its chunks (s->blend), and
 * marks s noreg (the blocks before its first chunk, computed in full, are registered); its last
 * token is then computed as usual. SS_ERR_UNSUPPORTED off the CPU backend. */
ss_err_t kvb_prefill(ss_llm_t *m, seq_t *s, char *err, size_t errsz);
/* Rotates kv_dim floats of K by delta positions (RoPE of the model). */
void kvb_rerotate(const ss_llm_config_t *g, float *k, int delta);

/* ---- sequences and the scheduler (engine.c) ---- */
typedef struct seq seq_t;
/* Called for each position >= seq->out_from once its logits are computed. */
typedef void (*seq_out_fn)(ss_llm_t *m, seq_t *s, int pos, const float *logits);

struct seq {
    int *tok;             /* tokens, owned */
    int ntok, cap;
    int ncomp;            /* tokens whose KV is in the cache */
    int *blocks;          /* block table, owned */
    int nblocks, bcap;
    int nreg;             /* leading blocks already registered / looked up */
    uint64_t chain;       /* chain hash through block nreg-1 */
    int out_from;         /* positions >= out_from produce logits */
    int reuse;            /* may take KV from the prefix cache */
    int limit;            /* compute only positions < limit (0 = all) */
    float *hid_sum;       /* EMBED: sum of final hidden over computed tokens, or NULL */
    seq_out_fn on_out;
    void *user;
    int user_i;
    int argmax_only;      /* on_out needs only the argmax of its logits (greedy decoding) */
    /* optional: the tokens whose logits on_out will read at pos (CHOOSE/SCORE: the answer tokens);
     * writes up to cap of them to toks and returns how many (> cap: call again with room) */
    int (*out_toks)(const seq_t *s, int pos, int *toks, int cap);
    /* optional dependency tracking: positions >= trk_from record their attention (ubatch_t.trk)
     * into trk_out + (pos - trk_from) * trk_stride, for positions < trk_from + trk_cap; such
     * positions never take KV from the prefix cache (their attention must be computed) */
    const attn_spec_t *trk;
    float *trk_out;
    int trk_from, trk_cap, trk_stride;
    /* KV_REUSE = 'chunks': eng_compute prefills the prompt by blending these chunks (kvblend.c)
     * and clears it; noreg: the KV is not a plain prefill's, so its blocks are never registered
     * in (nor taken from) the prefix cache from there on */
    const blend_spec_t *blend;
    int noreg;
};

int seq_push(seq_t *s, int tok);          /* 0 or -1 on OOM */
void seq_release(ss_llm_t *m, seq_t *s);  /* returns blocks, frees arrays */
/* Makes dst (empty) a copy of src's computed tokens sharing its full KV blocks (the
 * partial last block is copied), so dst continues from there. */
ss_err_t seq_fork(ss_llm_t *m, seq_t *dst, const seq_t *src, char *err, size_t errsz);
/* Computes every uncomputed token of seqs[0..n) (up to seq->limit when set), sharing prefixes. */
ss_err_t eng_compute(ss_llm_t *m, seq_t **seqs, int n, char *err, size_t errsz);
void eng_free(ss_llm_t *m); /* the ubatch buffers eng_compute keeps between calls */
/* Takes every block of s's prompt that is in the prefix table now (as eng_compute would), so
 * s->ntok - s->ncomp is what is left to compute. */
void eng_lookup(ss_llm_t *m, seq_t *s);
/* Registers s's full blocks that end at or before position upto (their KV is a plain
 * prefill's), even when s is noreg. */
void eng_register_upto(ss_llm_t *m, seq_t *s, int upto);
/* Makes sure s has KV blocks for positions < npos (the backend's memory too). */
ss_err_t eng_blocks(ss_llm_t *m, seq_t *s, int npos, char *err, size_t errsz);

/* ---- requests (llm_run.c): one ss_infer_req_t turned into sequences ---- */
typedef struct choice {
    int *tok;     /* answer tokens */
    int n;
    double lp;    /* log-probability of the whole answer */
    seq_t seq;    /* prompt + tok[0..n-1) when n > 1 */
} choice_t;

typedef struct rq {
    const ss_infer_req_t *r;  /* borrowed */
    ss_infer_res_t *res;      /* filled by rq_finish / set_fail */
    int *ptok, np;            /* prompt tokens */
    int nch;
    choice_t *ch;
    seq_t seq;          /* the prompt (CHOOSE/SCORE/EMBED) or the growing text (GENERATE) */
    int next;           /* GENERATE: token picked at the last step, -1 = none */
    int ngen, done;     /* done: failed in setup (res->status says why) */
    uint64_t rng;
    ss_buf_t text;
    float *tlp;         /* GENERATE with top_logprobs: log-prob of each generated token */
    int ntlp, tlpcap;
    float last_lp;      /* log-prob of q->next */
    struct gram_seq *gram; /* GENERATE with json_schema: the grammar's state (grammar.c), or NULL */
    /* GENERATE with ntrack > 0 (dependency tracking, llm_run.c) */
    attn_spec_t spec;   /* chunks as token positions of the prompt */
    int *span;          /* [2 * ntrack] owned, spec.span */
    float *mass;        /* [max answer tokens][n_kv_heads][ntrack] owned: row i for answer token i
                           (recorded at the position that predicted it) */
    int *atok, natok;   /* the answer's tokens (forced ones first), owned */
    /* GENERATE with nchunks > 0 (KV_REUSE = 'chunks', kvblend.c) */
    blend_spec_t bspec; /* chunks as token positions of the prompt; q->seq.blend points here */
    int *bspan;         /* [2 * nchunks] owned, bspec.span */
} rq_t;

/* Tokenizes q->r into q->seq (q->r, q->res set; q->res->status = SS_OK). Returns 0, or -1 when
 * out of memory; a request that cannot run gets q->done = 1 and its own status/error. */
int rq_setup(ss_llm_t *m, rq_t *q);
/* After the prompt ran: each CHOOSE/SCORE answer of several tokens continues a fork of it,
 * appended to all[*ns]. */
ss_err_t rq_fork_choices(ss_llm_t *m, rq_t *q, seq_t **all, int *ns, char *err, size_t errsz);
/* GENERATE: appends the token picked at the last computation; 1 when the request is finished,
 * else its next position is pending in q->seq. */
int rq_gen_advance(ss_llm_t *m, rq_t *q);
void rq_finish(ss_llm_t *m, rq_t *q); /* fills q->res from the computed state (status OK only) */
void rq_free(ss_llm_t *m, rq_t *q);   /* releases KV (to the prefix cache) and memory */

/* ---- continuous batching (llm_sched.c) ---- */
typedef struct sched sched_t;
/* Completes every request still in flight with SS_ERR_INTERNAL ("model closed") and frees. */
void sched_free(ss_llm_t *m);

struct ss_llm {
    ss_gguf_t *g;
    struct ubuf *ubufs; /* engine.c: two ubatch buffers kept between eng_compute calls */
    ss_llm_config_t cfg;
    weights_t w;
    tokenizer_t tok;
    char *id;
    int threads;
    int ubatch;
    int prefix_on;
    const backend_ops_t *be;
    void *be_ctx;
    kvcache_t kv;
    int be_blocks;        /* KV blocks the backend has reserved */
    ss_llm_stats_t st;
    double cur_lse;       /* log-sum-exp of the logits on_out is called with, or NAN (engine.c) */
    int cur_argmax;       /* argmax of the logits on_out is called with, or -1 (engine.c) */
    int chat;             /* chat family (chat.c) or -1: prompts are used as given */
    int eot;              /* end-of-turn token that ends generation (besides EOS), or -1 */
    sched_t *sched;       /* requests submitted with ss_llm_submit (llm_sched.c), or NULL */
    struct gram_cache *gram; /* compiled JSON schemas and their token tables (grammar.c), or NULL */
    kvchunk_t chunks;     /* KV of chunks computed on their own (KV_REUSE = 'chunks') */
    uint64_t chunk_seed;  /* the model's identity and layer shape, hashed: seeds chunk keys */
};

/* ---- constrained decoding (grammar.c, see ss_grammar.h) ---- */
typedef struct gram_seq gram_seq_t;
/* Starts decoding under schema (a JSON Schema text): SS_ERR_INVALID for a schema outside the
 * subset, or when its shortest value needs more than max_tokens tokens. */
int gram_seq_new(ss_llm_t *m, const char *schema, int max_tokens, gram_seq_t **out, char *err, size_t errsz);
/* The token to emit from logits: the best (temp <= 0; argmax when the grammar allows it, -1 when
 * unknown) or a sample of the tokens the grammar allows, keeping the value closable within the
 * `left` tokens that may follow this one. -1 when no token fits (an internal error). */
int gram_seq_pick(ss_llm_t *m, gram_seq_t *q, const float *logits, int argmax, float temp, uint64_t *rng,
                  int left);
/* Reads tok; 1 when the value is complete (nothing may follow) or tok did not fit. */
int gram_seq_advance(ss_llm_t *m, gram_seq_t *q, int tok);
int gram_seq_done(const gram_seq_t *q); /* 1 when the text so far is a complete value */
void gram_seq_free(gram_seq_t *q);      /* NULL-safe */
void gram_cache_free(ss_llm_t *m);      /* at ss_llm_close */

/* ---- chat templates (chat.c) ---- */
/* Sets m->chat and m->eot from tokenizer.chat_template (after the tokenizer is loaded). */
void chat_detect(ss_llm_t *m);

#endif
