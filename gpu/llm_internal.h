/*
 * llm_internal.h — the engine's internal structures, shared by the files of gpu/:
 * weights (model.c), tokenizer (tokenizer.c), kernels (kernels.c), the CPU backend
 * (forward_cpu.c), the block KV cache with prefix reuse (kvcache.c), the sequence
 * scheduler (engine.c), the request state machine and API (llm_run.c) and the
 * step-level continuous-batching scheduler (llm_sched.c).
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
} tokenizer_t;

enum { TOK_SPM = 1, TOK_BPE = 2 };

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
/* r[0..n) = softmax(r * scale) in place. */
extern void (*k_softmax)(float *r, int n, float scale);
void k_force_isa(const char *isa); /* tests: "scalar" / "avx2" / "avx512" / NULL = best */

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
} ubatch_t;

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
