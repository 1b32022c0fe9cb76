/*
 * cuda_stub.c — the CUDA API of ss_cuda.h for builds without nvcc: no device
 * is ever found, and every entry point says so (SS_ERR_UNSUPPORTED) instead of
 * failing to link.
 */
#ifndef SS_HAVE_CUDA
#include "ss_base.h"
#include "ss_cuda.h"
#include "ss_llm_cuda.h"

#include <stdio.h>

#define NO_CUDA "this build of semstream has no CUDA backend (nvcc was not found at build time)"

int ss_cuda_device_count(char *why, size_t whysz)
{
    if (why && whysz)
        snprintf(why, whysz, "%s", NO_CUDA);
    return 0;
}

int ss_cuda_open(int device, ss_cuda_t **out, char *err, size_t errsz)
{
    (void)device;
    *out = NULL;
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, NO_CUDA);
}

void ss_cuda_close(ss_cuda_t *c) { (void)c; }

const char *ss_cuda_device_name(const ss_cuda_t *c) { (void)c; return "none"; }
void ss_cuda_set_gemv_rows4(ss_cuda_t *c, int min_rows) { (void)c, (void)min_rows; }
#define UNSUP_ERR(...) return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, NO_CUDA)
int ss_cuda_malloc(ss_cuda_t *c, void **dptr, size_t bytes, char *err, size_t errsz) { (void)c, (void)bytes; *dptr = NULL; UNSUP_ERR(); }
void ss_cuda_free(ss_cuda_t *c, void *dptr) { (void)c, (void)dptr; }
int ss_cuda_h2d(ss_cuda_t *c, void *d, const void *s, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)s, (void)n; UNSUP_ERR(); }
int ss_cuda_d2h(ss_cuda_t *c, void *d, const void *s, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)s, (void)n; UNSUP_ERR(); }
int ss_cuda_d2d(ss_cuda_t *c, void *d, const void *s, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)s, (void)n; UNSUP_ERR(); }
int ss_cuda_memset(ss_cuda_t *c, void *d, int v, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)v, (void)n; UNSUP_ERR(); }
int ss_cuda_sync(ss_cuda_t *c, char *err, size_t errsz) { (void)c; UNSUP_ERR(); }
int ss_cuda_host_alloc(ss_cuda_t *c, void **h, size_t n, char *err, size_t errsz) { (void)c, (void)n; *h = NULL; UNSUP_ERR(); }
void ss_cuda_host_free(ss_cuda_t *c, void *h) { (void)c, (void)h; }
int ss_cuda_h2d_async(ss_cuda_t *c, void *d, const void *s, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)s, (void)n; UNSUP_ERR(); }
int ss_cuda_d2h_async(ss_cuda_t *c, void *d, const void *s, size_t n, char *err, size_t errsz) { (void)c, (void)d, (void)s, (void)n; UNSUP_ERR(); }
int ss_cuda_done_mark(ss_cuda_t *c, int i, char *err, size_t errsz) { (void)c, (void)i; UNSUP_ERR(); }
int ss_cuda_done_wait(ss_cuda_t *c, int i, char *err, size_t errsz) { (void)c, (void)i; UNSUP_ERR(); }
int ss_cuda_reserve_bf16(ss_cuda_t *c, size_t n, char *err, size_t errsz) { (void)c, (void)n; UNSUP_ERR(); }
int ss_cuda_weight_upload(ss_cuda_t *c, ss_cuda_weight_t *w, int type, int rows, int cols, const void *host, char *err, size_t errsz)
{ (void)c, (void)w, (void)type, (void)rows, (void)cols, (void)host; UNSUP_ERR(); }
int ss_cuda_rmsnorm(ss_cuda_t *c, float *y, const float *x, const float *w, int rows, int dim, float eps)
{ (void)c, (void)y, (void)x, (void)w, (void)rows, (void)dim, (void)eps; return SS_ERR_UNSUPPORTED; }
int ss_cuda_matmul(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, const float *bias, int B, char *err, size_t errsz)
{ (void)c, (void)y, (void)x, (void)w, (void)bias, (void)B; UNSUP_ERR(); }
int ss_cuda_matmul_add_bf16(ss_cuda_t *c, float *y, const void *xb, const ss_cuda_weight_t *w, int B, char *err,
                            size_t errsz)
{ (void)c, (void)y, (void)xb, (void)w, (void)B; UNSUP_ERR(); }
int ss_cuda_matmul_add(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, int B, char *err, size_t errsz)
{ (void)c, (void)y, (void)x, (void)w, (void)B; UNSUP_ERR(); }
int ss_cuda_matmul_multi(ss_cuda_t *c, int nw, float *const *ys, const ss_cuda_weight_t *const *ws, const float *const *biases,
                         const float *x, int B, char *err, size_t errsz)
{ (void)c, (void)nw, (void)ys, (void)ws, (void)biases, (void)x, (void)B; UNSUP_ERR(); }
int ss_cuda_matmul_swiglu(ss_cuda_t *c, float *out, float *scratch, const float *x, const ss_cuda_weight_t *gate,
                          const ss_cuda_weight_t *up, int B, char *err, size_t errsz)
{ (void)c, (void)out, (void)scratch, (void)x, (void)gate, (void)up, (void)B; UNSUP_ERR(); }
int ss_cuda_ffn(ss_cuda_t *c, float *x, const float *xn, const ss_cuda_weight_t *gate, const ss_cuda_weight_t *up,
                const ss_cuda_weight_t *down, float *h1, float *h2, int B, char *err, size_t errsz)
{ (void)c, (void)x, (void)xn, (void)gate, (void)up, (void)down, (void)h1, (void)h2, (void)B; UNSUP_ERR(); }
int ss_cuda_rms_matmul_multi(ss_cuda_t *c, int nw, float *const *ys, const ss_cuda_weight_t *const *ws, const float *const *biases,
                             const float *x, const float *norm_w, float eps, float *xn, int B, char *err, size_t errsz)
{ (void)c, (void)nw, (void)ys, (void)ws, (void)biases, (void)x, (void)norm_w, (void)eps, (void)xn, (void)B; UNSUP_ERR(); }
int ss_cuda_rms_ffn(ss_cuda_t *c, float *x, const float *norm_w, float eps, float *xn, const ss_cuda_weight_t *gate,
                    const ss_cuda_weight_t *up, const ss_cuda_weight_t *down, float *h1, float *h2, int B, char *err, size_t errsz)
{ (void)c, (void)x, (void)norm_w, (void)eps, (void)xn, (void)gate, (void)up, (void)down, (void)h1, (void)h2, (void)B; UNSUP_ERR(); }
int ss_cuda_qkv_rope_kv(ss_cuda_t *c, float *q, float *k, float *v, float *kp, float *vp, const ss_cuda_weight_t *wq,
                        const ss_cuda_weight_t *wk, const ss_cuda_weight_t *wv, const float *bq, const float *bk, const float *bv,
                        const float *x, const float *norm_w, float eps, float *xn, const int32_t *bt, int mb,
                        const int32_t *seq, const int32_t *pos, int n, int nheads, int nkv, int hd, int rot, float theta,
                        int neox, char *err, size_t errsz)
{ (void)c, (void)q, (void)k, (void)v, (void)kp, (void)vp, (void)wq, (void)wk, (void)wv, (void)bq, (void)bk, (void)bv, (void)x,
  (void)norm_w, (void)eps, (void)xn, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)nheads, (void)nkv, (void)hd,
  (void)rot, (void)theta, (void)neox; UNSUP_ERR(); }
int ss_cuda_rope_kv(ss_cuda_t *c, float *q, const float *k, const float *v, float *kp, float *vp, const int32_t *bt, int mb,
                    const int32_t *seq, const int32_t *pos, int n, int nheads, int nkv, int hd, int rot, float theta, int neox)
{ (void)c, (void)q, (void)k, (void)v, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)nheads, (void)nkv, (void)hd, (void)rot, (void)theta, (void)neox; return SS_ERR_UNSUPPORTED; }
int ss_cuda_rope(ss_cuda_t *c, float *x, const int32_t *pos, int n, int nheads, int hd, int rot, float theta, int neox)
{ (void)c, (void)x, (void)pos, (void)n, (void)nheads, (void)hd, (void)rot, (void)theta, (void)neox; return SS_ERR_UNSUPPORTED; }
int ss_cuda_swiglu(ss_cuda_t *c, float *out, const float *gate, const float *up, size_t n)
{ (void)c, (void)out, (void)gate, (void)up, (void)n; return SS_ERR_UNSUPPORTED; }
int ss_cuda_embed(ss_cuda_t *c, float *out, const ss_cuda_weight_t *t, const int32_t *tok, int n)
{ (void)c, (void)out, (void)t, (void)tok, (void)n; return SS_ERR_UNSUPPORTED; }
int ss_cuda_kv_copy_blocks(ss_cuda_t *c, float *const *pools, int npools, const int32_t *pairs, int npairs, size_t per)
{ (void)c, (void)pools, (void)npools, (void)pairs, (void)npairs, (void)per; return SS_ERR_UNSUPPORTED; }
int ss_cuda_kv_store(ss_cuda_t *c, float *kp, float *vp, const float *k, const float *v, const int32_t *bt, int mb,
                     const int32_t *seq, const int32_t *pos, int n, int nkv, int hd)
{ (void)c, (void)kp, (void)vp, (void)k, (void)v, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)nkv, (void)hd; return SS_ERR_UNSUPPORTED; }
int ss_cuda_attention(ss_cuda_t *c, float *out, const float *q, const float *kp, const float *vp, const int32_t *bt,
                      int mb, const int32_t *seq, const int32_t *pos, int n, const int32_t *q0, const int32_t *nq,
                      int nt, int nheads, int nkv, int hd)
{ (void)c, (void)out, (void)q, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)q0, (void)nq, (void)nt, (void)nheads, (void)nkv, (void)hd; return SS_ERR_UNSUPPORTED; }
int ss_cuda_attention_split(ss_cuda_t *c, float *out, float *part, int nsplit, const float *q, const float *kp, const float *vp,
                            const int32_t *bt, int mb, const int32_t *seq, const int32_t *pos, int n, const int32_t *q0,
                            const int32_t *nq, int nt, int nheads, int nkv, int hd)
{ (void)c, (void)out, (void)part, (void)nsplit, (void)q, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)q0, (void)nq, (void)nt, (void)nheads, (void)nkv, (void)hd; return SS_ERR_UNSUPPORTED; }
int ss_cuda_attention_tc_ok(int hd, int group) { (void)hd, (void)group; return 0; }
int ss_cuda_weight_pack_bf16(ss_cuda_t *c, ss_cuda_weight_t *out, const ss_cuda_weight_t *const *ws, int nw,
                             char *err, size_t errsz)
{ (void)c, (void)out, (void)ws, (void)nw; UNSUP_ERR(); }
int ss_cuda_rope_kv_packed(ss_cuda_t *c, float *q, const float *qkv, float *kp, float *vp, const int32_t *bt, int mb,
                           const int32_t *seq, const int32_t *pos, int n, int nh, int nkv, int hd, int rot, float th,
                           int neox)
{
    (void)c, (void)q, (void)qkv, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)nh;
    (void)nkv, (void)hd, (void)rot, (void)th, (void)neox;
    return SS_ERR_UNSUPPORTED;
}
int ss_cuda_attention_tc_bf16(ss_cuda_t *c, void *out, const float *q, const float *kp, const float *vp,
                              const int32_t *bt, int mb, const int32_t *seq, const int32_t *pos, int n,
                              const int32_t *t0, const int32_t *tn, int nt, int nh, int nkv, int hd, int hb)
{
    (void)c, (void)out, (void)q, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)t0;
    (void)tn, (void)nt, (void)nh, (void)nkv, (void)hd, (void)hb;
    return SS_ERR_UNSUPPORTED;
}
int ss_cuda_attention_tc(ss_cuda_t *c, float *out, const float *q, const float *kp, const float *vp, const int32_t *bt,
                         int mb, const int32_t *seq, const int32_t *pos, int n, const int32_t *q0, const int32_t *nq,
                         int nt, int nheads, int nkv, int hd, int hb)
{ (void)c, (void)out, (void)q, (void)kp, (void)vp, (void)bt, (void)mb, (void)seq, (void)pos, (void)n, (void)q0, (void)nq, (void)nt, (void)nheads, (void)nkv, (void)hd, (void)hb; return SS_ERR_UNSUPPORTED; }
int ss_cuda_logprob_gather(ss_cuda_t *c, float *out, const float *l, int vocab, const int32_t *row, const int32_t *tok, int n)
{ (void)c, (void)out, (void)l, (void)vocab, (void)row, (void)tok, (void)n; return SS_ERR_UNSUPPORTED; }
int ss_cuda_gather_rows(ss_cuda_t *c, float *out, const float *x, const int32_t *idx, int n, int dim)
{ (void)c, (void)out, (void)x, (void)idx, (void)n, (void)dim; return SS_ERR_UNSUPPORTED; }
int ss_cuda_argmax(ss_cuda_t *c, int32_t *out, const float *l, int rows, int vocab)
{ (void)c, (void)out, (void)l, (void)rows, (void)vocab; return SS_ERR_UNSUPPORTED; }
int ss_cuda_gather_logits(ss_cuda_t *c, float *out, const float *l, int vocab, const int32_t *row, const int32_t *tok,
                          int n)
{ (void)c, (void)out, (void)l, (void)vocab, (void)row, (void)tok, (void)n; return SS_ERR_UNSUPPORTED; }
int ss_cuda_lse_argmax(ss_cuda_t *c, float *lse, int32_t *amax, void *part, const float *l, int rows, int vocab)
{ (void)c, (void)lse, (void)amax, (void)part, (void)l, (void)rows, (void)vocab; return SS_ERR_UNSUPPORTED; }
int ss_cuda_measure_bandwidth(ss_cuda_t *c, size_t bytes, int iters, double *bps, char *err, size_t errsz)
{ (void)c, (void)bytes, (void)iters; *bps = 0; UNSUP_ERR(); }
int ss_cuda_measure_gemm(ss_cuda_t *c, int m, int n, int k, int flags, int iters, double *flops, char *err,
                         size_t errsz)
{ (void)c, (void)m, (void)n, (void)k, (void)flags, (void)iters; *flops = 0; UNSUP_ERR(); }
int ss_cuda_measure_bf16_flops(ss_cuda_t *c, int m, int n, int k, int iters, double *flops, char *err, size_t errsz)
{ (void)c, (void)m, (void)n, (void)k, (void)iters; *flops = 0; UNSUP_ERR(); }
int ss_cuda_timer_begin(ss_cuda_t *c) { (void)c; return SS_ERR_UNSUPPORTED; }
int ss_cuda_timer_end(ss_cuda_t *c, float *ms, char *err, size_t errsz) { (void)c; *ms = 0; UNSUP_ERR(); }

int ss_cuda_graph_begin(ss_cuda_t *c, char *err, size_t errsz) { (void)c; UNSUP_ERR(); }
int ss_cuda_graph_end(ss_cuda_t *c, ss_cuda_graph_t **out, char *err, size_t errsz) { (void)c; *out = NULL; UNSUP_ERR(); }
int ss_cuda_graph_launch(ss_cuda_t *c, ss_cuda_graph_t *g, char *err, size_t errsz) { (void)c, (void)g; UNSUP_ERR(); }
void ss_cuda_graph_destroy(ss_cuda_graph_t *g) { (void)g; }
void ss_cuda_prof_mark(ss_cuda_t *c, int stage) { (void)c, (void)stage; }
void ss_cuda_prof_collect(ss_cuda_t *c) { (void)c; }
void ss_cuda_prof_discard(ss_cuda_t *c) { (void)c; }
void ss_cuda_prof_report(ss_cuda_t *c, const char *const *names, const char *title) { (void)c, (void)names, (void)title; }

ss_err_t ss_llm_use_cuda(ss_llm_t *m, int device, char *err, size_t errsz)
{
    (void)m, (void)device;
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, NO_CUDA);
}

ss_infer_backend_t *ss_backend_cuda_new(const char *path, int device, char *err, size_t errsz)
{
    (void)path, (void)device;
    ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, NO_CUDA);
    return NULL;
}
#endif
