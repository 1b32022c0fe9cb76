/*
 * ss_cuda.h — the CUDA kernel layer of the inference engine, behind a C API.
 *
 * A context (ss_cuda_t) owns one device's stream, cuBLAS handle and every
 * device allocation made through it (freed at close). Kernels are launched
 * asynchronously on the context's stream; launch errors are checked at once and
 * execution errors surface at the next ss_cuda_sync/ss_cuda_d2h. No function
 * aborts: CUDA and cuBLAS failures become SS_ERR_CUDA with their text.
 *
 * Every kernel has a CPU reference (ss_kref_*) with the same semantics, used as
 * the oracle in tests (CI runs the references; GPU tests run where a GPU is).
 * Builds without nvcc get cuda_stub.c: ss_cuda_device_count() returns 0.
 */
#ifndef SS_CUDA_H
#define SS_CUDA_H

#include <stddef.h>
#include <stdint.h>

/* Weight types, numbered as GGML/GGUF numbers them. Q8_0 is repacked on upload; the other
 * quantized ("block") types stay in their GGUF layout and are dequantized in registers. */
enum {
    SS_WT_F32 = 0, SS_WT_F16 = 1, SS_WT_Q4_0 = 2, SS_WT_Q4_1 = 3, SS_WT_Q5_0 = 6, SS_WT_Q5_1 = 7, SS_WT_Q8_0 = 8,
    SS_WT_Q2_K = 10, SS_WT_Q3_K = 11, SS_WT_Q4_K = 12, SS_WT_Q5_K = 13, SS_WT_Q6_K = 14, SS_WT_Q8_K = 15,
    SS_WT_IQ4_NL = 20, SS_WT_IQ4_XS = 23, SS_WT_BF16 = 30
};
#define SS_Q8_0_BLOCK 32 /* a Q8_0 block: fp16 scale d, then 32 int8; value = d * q */

typedef struct ss_cuda ss_cuda_t;

/* A weight matrix on the device: rows x cols (y = W x, W row-major [rows][cols]).
 * Q8_0 is repacked into int8 quants [rows][cols] plus fp16 scales [rows][cols/32]; block types
 * keep their GGUF rows. */
typedef struct ss_cuda_weight {
    int type, rows, cols;
    void *data;   /* device: F32/F16/BF16 row-major, or Q8_0 quants */
    void *scales; /* device: Q8_0 scales (half) */
    void *bf16;   /* device: bf16 copy for the tensor-core path (made on first large batch) */
} ss_cuda_weight_t;

/* A BF16 weight whose rows are ws[0..nw)'s, one after another, converted on the device (non-F32
 * weights of one width): Q|K|V in one tensor-core GEMM. Device memory owned by the context. */
int ss_cuda_weight_pack_bf16(ss_cuda_t *c, ss_cuda_weight_t *out, const ss_cuda_weight_t *const *ws, int nw,
                             char *err, size_t errsz);

/* Number of usable CUDA devices (0 when none, or when built without CUDA); `why`
 * (optional) says why there are none. */
int ss_cuda_device_count(char *why, size_t whysz);
int ss_cuda_open(int device, ss_cuda_t **out, char *err, size_t errsz);
void ss_cuda_close(ss_cuda_t *c); /* NULL-safe; frees every allocation of c */
const char *ss_cuda_device_name(const ss_cuda_t *c);
/* Batch-1 Q8_0 and Q4_K GEMVs over at least min_rows rows (all weights of the launch together) read
 * four rows per warp instead of one (default 8,192; tests set 0 to check that path on small
 * shapes). */
void ss_cuda_set_gemv_rows4(ss_cuda_t *c, int min_rows);

int ss_cuda_malloc(ss_cuda_t *c, void **dptr, size_t bytes, char *err, size_t errsz);
void ss_cuda_free(ss_cuda_t *c, void *dptr);
int ss_cuda_h2d(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz);
int ss_cuda_d2h(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz); /* syncs */
int ss_cuda_d2d(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz);
int ss_cuda_memset(ss_cuda_t *c, void *dst, int v, size_t bytes, char *err, size_t errsz);
int ss_cuda_sync(ss_cuda_t *c, char *err, size_t errsz);
/* Overlapping work with the host: pinned host memory (ss_cuda_host_free waits for queued work
 * first), copies that return at once (the host side pinned and left alone until a wait on a mark
 * recorded after them), and completion marks: ss_cuda_done_mark(i) records mark i after the work
 * queued so far, ss_cuda_done_wait(i) blocks until the stream reaches it and reports failures. */
#define SS_CUDA_MARKS 2
int ss_cuda_host_alloc(ss_cuda_t *c, void **hptr, size_t bytes, char *err, size_t errsz);
void ss_cuda_host_free(ss_cuda_t *c, void *hptr);
int ss_cuda_h2d_async(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz);
int ss_cuda_d2h_async(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz);
int ss_cuda_done_mark(ss_cuda_t *c, int i, char *err, size_t errsz);
int ss_cuda_done_wait(ss_cuda_t *c, int i, char *err, size_t errsz);

/* Makes the context's bf16 activation scratch hold n values (the tensor-core GEMMs convert their
 * input into it), so no allocation happens later, e.g. inside a captured graph. */
int ss_cuda_reserve_bf16(ss_cuda_t *c, size_t n, char *err, size_t errsz);
/* Uploads a host weight in GGUF layout (type, rows x cols; Q8_0 as GGUF blocks of 34 bytes). */
int ss_cuda_weight_upload(ss_cuda_t *c, ss_cuda_weight_t *w, int type, int rows, int cols,
                          const void *host, char *err, size_t errsz);

/* ---- kernels (device pointers, float activations) ---- */
/* y[r] = x[r] / rms(x[r]) * w, rows of dim; y may equal x. */
int ss_cuda_rmsnorm(ss_cuda_t *c, float *y, const float *x, const float *w, int rows, int dim, float eps);
/* y[b][n] = sum_k W[n][k] x[b][k] (+ bias[n] if bias). B <= 8 uses the GEMV kernels; larger
 * batches use tensor cores (bf16 inputs, fp32 accumulation) — F32 weights use SGEMM. */
int ss_cuda_matmul(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, const float *bias,
                   int B, char *err, size_t errsz);
/* Fused forms for the forward pass (one launch instead of two or three at batch <= 8; larger
 * batches fall back to the separate kernels or fold the add into the GEMM):
 *   matmul_add:    y[b][n] += sum_k W[n][k] x[b][k]   (the residual add)
 *   matmul_multi:  ys[i] = Ws[i] x (+ biases[i]) for nw <= 3 weights (Q, K, V) sharing x
 *   matmul_swiglu: out = silu(G x) * (U x); scratch (B x rows floats) is used only when B > 8 */
int ss_cuda_matmul_add(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, int B, char *err,
                       size_t errsz);
/* y += W x for B > 8 rows of bf16 x (what ss_cuda_attention_tc_bf16 writes); W not F32. */
int ss_cuda_matmul_add_bf16(ss_cuda_t *c, float *y, const void *xb, const ss_cuda_weight_t *w, int B, char *err,
                            size_t errsz);
int ss_cuda_matmul_multi(ss_cuda_t *c, int nw, float *const *ys, const ss_cuda_weight_t *const *ws,
                         const float *const *biases, const float *x, int B, char *err, size_t errsz);
int ss_cuda_matmul_swiglu(ss_cuda_t *c, float *out, float *scratch, const float *x, const ss_cuda_weight_t *gate,
                          const ss_cuda_weight_t *up, int B, char *err, size_t errsz);
/* The feed-forward block with its residual: x += Down (silu(Gate xn) * (Up xn)). h1 and h2 are
 * B x hidden float buffers, used as scratch (as bf16 when B > 8: the activations stay bf16 between
 * the three tensor-core GEMMs, SwiGLU in between). */
int ss_cuda_ffn(ss_cuda_t *c, float *x, const float *xn, const ss_cuda_weight_t *gate, const ss_cuda_weight_t *up,
                const ss_cuda_weight_t *down, float *h1, float *h2, int B, char *err, size_t errsz);
/* RMSNorm fused in front of the GEMV (B <= 8: each block finds 1/rms of its activation rows and
 * folds the norm's weight into the dot products; larger batches on tensor cores write rmsnorm(x)
 * as bf16 straight into the GEMMs' input, xn untouched; otherwise rmsnorm(x) goes to xn, B x cols,
 * and the paths above run):
 *   rms_matmul_multi: ys[i] = Ws[i] rmsnorm(x) (+ biases[i])
 *   rms_ffn:          x += Down (silu(Gate n) * (Up n)), n = rmsnorm(x) */
int ss_cuda_rms_matmul_multi(ss_cuda_t *c, int nw, float *const *ys, const ss_cuda_weight_t *const *ws,
                             const float *const *biases, const float *x, const float *norm_w, float eps, float *xn,
                             int B, char *err, size_t errsz);
int ss_cuda_rms_ffn(ss_cuda_t *c, float *x, const float *norm_w, float eps, float *xn, const ss_cuda_weight_t *gate,
                    const ss_cuda_weight_t *up, const ss_cuda_weight_t *down, float *h1, float *h2, int B, char *err,
                    size_t errsz);
/* Everything between the attention's RMSNorm and the attention: Q|K|V = W rmsnorm(x) (+ biases;
 * norm_w NULL: x is already normalised), RoPE on Q and K, K and V into the pools — for n <= 8 with
 * llama pairing in one GEMV launch whose epilogue rotates (rows pair with their neighbours) and
 * scatters into the pools; otherwise ss_cuda_(rms_)matmul_multi and ss_cuda_rope_kv. q, k, v are
 * [n][heads*hd] outputs (k and v are scratch: the fused path writes only the pools). */
int ss_cuda_qkv_rope_kv(ss_cuda_t *c, float *q, float *k, float *v, float *kpool, float *vpool,
                        const ss_cuda_weight_t *wq, const ss_cuda_weight_t *wk, const ss_cuda_weight_t *wv,
                        const float *bq, const float *bk, const float *bv, const float *x, const float *norm_w,
                        float eps, float *xn, const int32_t *block_tables, int max_blocks, const int32_t *seq,
                        const int32_t *pos, int n, int nheads, int nkv, int hd, int rot, float theta, int neox,
                        char *err, size_t errsz);
/* Rotary embedding in place on x[n][nheads*hd] at positions pos[n]. neox = 0: pairs (2i, 2i+1)
 * (llama); neox = 1: pairs (i, i + rot/2) (qwen2). Rotates the first rot dims of each head. */
int ss_cuda_rope(ss_cuda_t *c, float *x, const int32_t *pos, int n, int nheads, int hd, int rot,
                 float theta, int neox);
/* out[i] = silu(gate[i]) * up[i]. */
int ss_cuda_swiglu(ss_cuda_t *c, float *out, const float *gate, const float *up, size_t n);
/* out[i][:] = row tok[i] of an embedding table (any weight type) as floats. */
int ss_cuda_embed(ss_cuda_t *c, float *out, const ss_cuda_weight_t *table, const int32_t *tok, int n);

/* Paged KV cache: per layer, K and V pools of float [nblocks][nkv][SS_KV_BLOCK][hd]. A sequence's
 * block table lists its block indices; token t of the sequence lives in block table[t / BLOCK],
 * slot t % BLOCK. */
#define SS_KV_BLOCK 16
/* Writes k/v rows (n tokens, [n][nkv*hd]) into the pools at (seq[i], pos[i]). */
int ss_cuda_kv_store(ss_cuda_t *c, float *kpool, float *vpool, const float *k, const float *v,
                     const int32_t *block_tables, int max_blocks, const int32_t *seq,
                     const int32_t *pos, int n, int nkv, int hd);
/* Copies KV block pairs[2i + 1] into block pairs[2i] (device int32 pairs, npairs of them) in each
 * of the npools pools (device array of pool pointers), per floats a block: the forks of a step in
 * one launch instead of two copies per layer and fork. */
int ss_cuda_kv_copy_blocks(ss_cuda_t *c, float *const *pools, int npools, const int32_t *pairs, int npairs,
                           size_t per);
/* ss_cuda_rope on q (in place) and on k, then ss_cuda_kv_store of the rotated k and of v, in one
 * kernel; k itself is left unrotated. */
int ss_cuda_rope_kv(ss_cuda_t *c, float *q, const float *k, const float *v, float *kpool, float *vpool,
                    const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos, int n,
                    int nheads, int nkv, int hd, int rot, float theta, int neox);
/* The same from packed rows qkv[n][(nheads + 2 nkv) hd] (Q | K | V, what one GEMM over a packed
 * weight writes): Q rotated into q[n][nheads hd], K rotated and V into the pools. */
int ss_cuda_rope_kv_packed(ss_cuda_t *c, float *q, const float *qkv, float *kpool, float *vpool,
                           const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos, int n,
                           int nheads, int nkv, int hd, int rot, float theta, int neox);
/* Causal attention for n queries (q [n][nheads*hd]): query i of sequence seq[i] at position pos[i]
 * attends to positions 0..pos[i] of its sequence. Queries are processed in tiles of up to 16
 * consecutive queries of one sequence (FlashAttention-style: K/V tiles staged in shared memory,
 * online softmax); tiles are described by tile_q0[t], tile_nq[t]. out [n][nheads*hd]. */
int ss_cuda_attention(ss_cuda_t *c, float *out, const float *q, const float *kpool, const float *vpool,
                      const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                      int n, const int32_t *tile_q0, const int32_t *tile_nq, int ntiles,
                      int nheads, int nkv, int hd);
/* The same attention with the keys split into nsplit ranges processed in parallel (decode steps,
 * where one query per sequence leaves most of the GPU idle), then merged; part is device scratch
 * of n * nheads * nsplit * (hd + 2) floats. nsplit <= 1 is ss_cuda_attention. */
int ss_cuda_attention_split(ss_cuda_t *c, float *out, float *part, int nsplit, const float *q, const float *kpool,
                            const float *vpool, const int32_t *block_tables, int max_blocks, const int32_t *seq,
                            const int32_t *pos, int n, const int32_t *tile_q0, const int32_t *tile_nq, int ntiles,
                            int nheads, int nkv, int hd);
/* The same attention on tensor cores for prefill (bf16 Q, K, P, V; fp32 accumulation and softmax):
 * a block per (tile, hb query heads of one GQA group) works on the tile's queries times its hb
 * heads, so tiles hold at most SS_CUDA_TC_ROWS / hb queries (rounded down: any group works); hb divides the group (1: long
 * prompt runs; group: short runs, K/V staged once per group). Needs ss_cuda_attention_tc_ok. */
#define SS_CUDA_TC_ROWS 64
#define SS_CUDA_TC_MAX_HD 128
int ss_cuda_attention_tc_ok(int hd, int group);
int ss_cuda_attention_tc(ss_cuda_t *c, float *out, const float *q, const float *kpool, const float *vpool,
                         const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                         int n, const int32_t *tile_q0, const int32_t *tile_nq, int ntiles,
                         int nheads, int nkv, int hd, int hb);
/* The same, writing bf16 output rows (the input of ss_cuda_matmul_add_bf16). */
int ss_cuda_attention_tc_bf16(ss_cuda_t *c, void *out, const float *q, const float *kpool, const float *vpool,
                              const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                              int n, const int32_t *tile_q0, const int32_t *tile_nq, int ntiles,
                              int nheads, int nkv, int hd, int hb);
/* out[i] = logits[row[i]][tok[i]] for i < n: the few logits a CHOOSE or SCORE answer reads. */
int ss_cuda_gather_logits(ss_cuda_t *c, float *out, const float *logits, int vocab, const int32_t *row,
                          const int32_t *tok, int n);
/* Log-softmax read-out: out[i] = logits[row[i]][tok[i]] - logsumexp(logits[row[i]]) over vocab. */
int ss_cuda_logprob_gather(ss_cuda_t *c, float *out, const float *logits, int vocab, const int32_t *row,
                           const int32_t *tok, int n);
/* out[i][:] = x[idx[i]][:] for i < n, rows of dim floats. */
int ss_cuda_gather_rows(ss_cuda_t *c, float *out, const float *x, const int32_t *idx, int n, int dim);
/* argmax per row (greedy decoding without copying logits). */
int ss_cuda_argmax(ss_cuda_t *c, int32_t *out, const float *logits, int rows, int vocab);

/* lse[r] = logsumexp(logits[r][0..vocab)) and amax[r] = its argmax (as ss_cuda_argmax), in one
 * two-stage pass that spreads each row over SS_CUDA_READOUT_PARTS blocks; part is device scratch
 * of rows * SS_CUDA_READOUT_PARTS * 16 bytes. lse or amax may be NULL. */
#define SS_CUDA_READOUT_PARTS 64
int ss_cuda_lse_argmax(ss_cuda_t *c, float *lse, int32_t *amax, void *part, const float *logits, int rows,
                       int vocab);

/* ---- ceilings, for benchmarks ---- */
/* Device-to-device streaming copy bandwidth (bytes read + written per second). */
int ss_cuda_measure_bandwidth(ss_cuda_t *c, size_t bytes, int iters, double *bytes_per_s, char *err, size_t errsz);
/* bf16 tensor-core GEMM rate (FLOP/s) on an m x n x k product through cuBLAS. */
/* One cuBLAS bf16 GEMM shape (m x k weights, k x n activations) timed over iters: flags pick a bf16
 * output (else fp32), hashed random inputs (else constant bytes, which draw less power) and
 * weights that change every run (else one weight matrix, which can stay in L2). */
#define SS_CUDA_GEMM_OUT_BF16 1
#define SS_CUDA_GEMM_RANDOM 2
#define SS_CUDA_GEMM_LAYERS 4 /* cycle through 16 weight matrices, as the layers of a pass do */
int ss_cuda_measure_gemm(ss_cuda_t *c, int m, int n, int k, int flags, int iters, double *flops, char *err,
                         size_t errsz);
int ss_cuda_measure_bf16_flops(ss_cuda_t *c, int m, int n, int k, int iters, double *flops, char *err,
                               size_t errsz);
/* Event timer: begin/end around kernels on the context's stream; returns milliseconds. */
int ss_cuda_timer_begin(ss_cuda_t *c);
int ss_cuda_timer_end(ss_cuda_t *c, float *ms, char *err, size_t errsz);

/* ---- CUDA graphs: capture the kernels launched on the context's stream between begin and end,
 * then replay them with one launch (kernel arguments are frozen at capture time). ---- */
typedef struct ss_cuda_graph ss_cuda_graph_t;
int ss_cuda_graph_begin(ss_cuda_t *c, char *err, size_t errsz);
int ss_cuda_graph_end(ss_cuda_t *c, ss_cuda_graph_t **out, char *err, size_t errsz);
int ss_cuda_graph_launch(ss_cuda_t *c, ss_cuda_graph_t *g, char *err, size_t errsz);
void ss_cuda_graph_destroy(ss_cuda_graph_t *g);

/* ---- profiling: with SS_CUDA_PROFILE=1 in the environment, stages marked with
 * ss_cuda_prof_mark are timed with CUDA events (between consecutive marks of one pass) and
 * summed per stage id; ss_cuda_prof_report prints the table. With SS_CUDA_PROFILE=kernels every
 * kernel launch and cuBLAS call inside a marked pass is timed instead, summed by the launching
 * function (GEMMs by shape), with the host's enqueue span beside the GPU span. Costs nothing when
 * off. */
#define SS_CUDA_PROF_STAGES 32
void ss_cuda_prof_mark(ss_cuda_t *c, int stage); /* stage < SS_CUDA_PROF_STAGES; -1 = start of a pass */
void ss_cuda_prof_collect(ss_cuda_t *c);         /* after a sync: accumulate the pass */
void ss_cuda_prof_discard(ss_cuda_t *c);         /* after a sync: drop the pass (a warm-up) */
void ss_cuda_prof_report(ss_cuda_t *c, const char *const *names, const char *title);

/* ---- CPU references (gpu/cuda_ref.c): same semantics, host pointers ---- */
/* Dequantises row r of a weight in GGUF layout into out[cols]. */
void ss_kref_dequant_row(int type, const void *w, int cols, int r, float *out);
void ss_kref_rmsnorm(float *y, const float *x, const float *w, int rows, int dim, float eps);
void ss_kref_matmul(float *y, const float *x, int type, const void *w, int rows, int cols, const float *bias,
                    int B);
void ss_kref_rope(float *x, const int32_t *pos, int n, int nheads, int hd, int rot, float theta, int neox);
void ss_kref_swiglu(float *out, const float *gate, const float *up, size_t n);
void ss_kref_kv_store(float *kpool, float *vpool, const float *k, const float *v, const int32_t *block_tables,
                      int max_blocks, const int32_t *seq, const int32_t *pos, int n, int nkv, int hd);
/* ss_cuda_rope_kv's reference: q rotated in place, rotated k and v stored; k unchanged. */
void ss_kref_rope_kv(float *q, const float *k, const float *v, float *kpool, float *vpool,
                     const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos, int n,
                     int nheads, int nkv, int hd, int rot, float theta, int neox);
void ss_kref_attention(float *out, const float *q, const float *kpool, const float *vpool,
                       const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                       int n, int nheads, int nkv, int hd);
void ss_kref_logprob_gather(float *out, const float *logits, int vocab, const int32_t *row, const int32_t *tok,
                            int n);
size_t ss_kref_weight_bytes(int type, int rows, int cols); /* bytes of a GGUF-layout weight */

#endif
