/*
 * kernels.c — the CPU kernels' entry points and dispatch: k_matmul / k_matmul_multi (W, rows x
 * cols of any supported type, times nb f32 activations, split into thread tasks: quantized
 * weights through the panel kernel of qgemm.c on activations quantized once per call, float
 * weights through fgemm.c), the attention kernels over transposed KV blocks (one query, or a
 * GQA group's queries at once), softmax, and the run-time ISA choice (AVX-512 with VNNI,
 * AVX2+FMA+F16C, scalar; __builtin_cpu_supports), so the binary runs on any x86-64.
 *
 * Determinism: the product of one row with one activation is computed in the same order
 * whatever the batch, the tile it lands in or the thread count, so batched logits equal
 * single-sequence logits bit for bit (on a given ISA; quantized types on every ISA).
 */
#include "llm_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_X86 1
#endif

#ifdef SS_X86
#define T2 __attribute__((target("avx2,fma,f16c")))
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

static inline T2 float hsum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}
#endif

/* ---------------- small vector helpers (attention) ---------------- */

static float vdot_scalar(const float *a, const float *b, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void vaxpy_scalar(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

#ifdef SS_X86
static T2 float vdot_avx2(const float *a, const float *b, int n)
{
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hsum8(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static T2 void vaxpy_avx2(float *y, float a, const float *x, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static T5 float vdot_avx512(const float *a, const float *b, int n)
{
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static T5 void vaxpy_avx512(float *y, float a, const float *x, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i),
                                                        _mm512_maskz_loadu_ps(k, y + i)));
    }
}
#endif

/* ---------------- attention over one KV block (transposed layout [hd][KV_BLOCK]) ---------------- */

static void ascore_scalar(const float *q, const float *kt, int hd, int np, float *out)
{
    for (int s = 0; s < np; s++)
        out[s] = 0;
    for (int i = 0; i < hd; i++)
        for (int s = 0; s < np; s++)
            out[s] += q[i] * kt[i * KV_BLOCK + s];
}


#ifdef SS_X86
static T2 void ascore_avx2(const float *q, const float *kt, int hd, int np, float *out)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int i = 0; i < hd; i++) {
        __m256 qi = _mm256_set1_ps(q[i]);
        a0 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(kt + i * KV_BLOCK), a0);
        a1 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(kt + i * KV_BLOCK + 8), a1);
    }
    float tmp[16];
    _mm256_storeu_ps(tmp, a0);
    _mm256_storeu_ps(tmp + 8, a1);
    memcpy(out, tmp, (size_t)np * sizeof(float));
}


static T5 void ascore_avx512(const float *q, const float *kt, int hd, int np, float *out)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 2 <= hd; i += 2) {
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(kt + i * KV_BLOCK), a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[i + 1]), _mm512_loadu_ps(kt + (i + 1) * KV_BLOCK), a1);
    }
    if (i < hd)
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(kt + i * KV_BLOCK), a0);
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << np) - 1), _mm512_add_ps(a0, a1));
}

#endif

/* out[i] = sum over positions of a[p] * v_p[i], the positions spread over nblk blocks
 * (vt[b]: [hd][KV_BLOCK]), the last holding last_np valid slots. */
static void avall_scalar(const float *a, const float *const *vt, int nblk, int last_np, int hd, float *out)
{
    for (int i = 0; i < hd; i++) {
        float s = 0;
        for (int b = 0; b < nblk; b++) {
            int np = b == nblk - 1 ? last_np : KV_BLOCK;
            for (int k = 0; k < np; k++)
                s += a[b * KV_BLOCK + k] * vt[b][i * KV_BLOCK + k];
        }
        out[i] = s;
    }
}

#ifdef SS_X86
static T5 void avall_avx512(const float *a, const float *const *vt, int nblk, int last_np, int hd, float *out)
{
    __mmask16 lm = (__mmask16)((1u << last_np) - 1);
    int i = 0;
    for (; i + 4 <= hd; i += 4) {
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        for (int b = 0; b < nblk; b++) {
            __mmask16 m = b == nblk - 1 ? lm : (__mmask16)0xffff;
            __m512 w = _mm512_maskz_loadu_ps(m, a + b * KV_BLOCK);
            const float *v = vt[b] + i * KV_BLOCK;
            c0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, v), c0);
            c1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, v + KV_BLOCK), c1);
            c2 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, v + 2 * KV_BLOCK), c2);
            c3 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, v + 3 * KV_BLOCK), c3);
        }
        out[i] = _mm512_reduce_add_ps(c0);
        out[i + 1] = _mm512_reduce_add_ps(c1);
        out[i + 2] = _mm512_reduce_add_ps(c2);
        out[i + 3] = _mm512_reduce_add_ps(c3);
    }
    for (; i < hd; i++) {
        __m512 c0 = _mm512_setzero_ps();
        for (int b = 0; b < nblk; b++) {
            __mmask16 m = b == nblk - 1 ? lm : (__mmask16)0xffff;
            c0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + b * KV_BLOCK),
                                 _mm512_maskz_loadu_ps(m, vt[b] + i * KV_BLOCK), c0);
        }
        out[i] = _mm512_reduce_add_ps(c0);
    }
}

static T2 void avall_avx2(const float *a, const float *const *vt, int nblk, int last_np, int hd, float *out)
{
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i l0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(last_np), lane);
    __m256i l1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(last_np - 8), lane);
    __m256i all = _mm256_set1_epi32(-1);
    for (int i = 0; i < hd; i++) {
        __m256 c0 = _mm256_setzero_ps(), c1 = c0;
        for (int b = 0; b < nblk; b++) {
            __m256i m0 = b == nblk - 1 ? l0 : all, m1 = b == nblk - 1 ? l1 : all;
            const float *v = vt[b] + i * KV_BLOCK, *w = a + b * KV_BLOCK;
            c0 = _mm256_fmadd_ps(_mm256_maskload_ps(w, m0), _mm256_maskload_ps(v, m0), c0);
            c1 = _mm256_fmadd_ps(_mm256_maskload_ps(w + 8, m1), _mm256_maskload_ps(v + 8, m1), c1);
        }
        out[i] = hsum8(_mm256_add_ps(c0, c1));
    }
}
#endif

static void (*k_attn_scores)(const float *q, const float *kt, int hd, int np, float *out);

/* out[b*KV_BLOCK + s] = q . k_s over nblk transposed blocks kt[b] (last: last_np valid);
 * block by block with the ISA's single-block kernel. */
static void asall_scalar(const float *q, const float *const *kt, int nblk, int last_np, int hd, float *out)
{
    for (int b = 0; b < nblk; b++)
        k_attn_scores(q, kt[b], hd, b == nblk - 1 ? last_np : KV_BLOCK, out + b * KV_BLOCK);
}

#ifdef SS_X86
static T5 void asall_avx512(const float *q, const float *const *kt, int nblk, int last_np, int hd, float *out)
{
    if (hd > 16) {
        for (int b = 0; b < nblk; b++)
            ascore_avx512(q, kt[b], hd, b == nblk - 1 ? last_np : KV_BLOCK, out + b * KV_BLOCK);
        return;
    }
    __m512 qb[16];
    for (int i = 0; i < hd; i++)
        qb[i] = _mm512_set1_ps(q[i]);
    for (int b = 0; b < nblk; b++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 2 <= hd; i += 2) {
            a0 = _mm512_fmadd_ps(qb[i], _mm512_loadu_ps(kt[b] + i * KV_BLOCK), a0);
            a1 = _mm512_fmadd_ps(qb[i + 1], _mm512_loadu_ps(kt[b] + (i + 1) * KV_BLOCK), a1);
        }
        if (i < hd)
            a0 = _mm512_fmadd_ps(qb[i], _mm512_loadu_ps(kt[b] + i * KV_BLOCK), a0);
        __mmask16 m = b == nblk - 1 ? (__mmask16)((1u << last_np) - 1) : (__mmask16)0xffff;
        _mm512_mask_storeu_ps(out + b * KV_BLOCK, m, _mm512_add_ps(a0, a1));
    }
}
#endif

/* ---------------- a GQA group's queries at once (AVX-512) ----------------
 * The grp query heads sharing a KV head read each K and V block once for all of them (instead
 * of once per head): scores out[j*ld + p] = q_j . k_p, values out[j*hd + i] = sum_p a_j[p] v_p[i]
 * with a_j = a + j*ld. grp <= 8. */
#ifdef SS_X86
static inline __attribute__((always_inline)) T5 void asgrp_n(const float *q, const int grp, const float *const *kt,
                                                              int nblk, int last_np, int hd, float *out, size_t ld)
{
    for (int b = 0; b < nblk; b++) {
        __m512 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < grp; j++)
            acc[j] = _mm512_setzero_ps();
        const float *k = kt[b];
        for (int i = 0; i < hd; i++) {
            __m512 kv = _mm512_loadu_ps(k + i * KV_BLOCK);
#pragma GCC unroll 8
            for (int j = 0; j < grp; j++)
                acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(q[(size_t)j * hd + i]), kv, acc[j]);
        }
        __mmask16 m = b == nblk - 1 ? (__mmask16)((1u << last_np) - 1) : (__mmask16)0xffff;
#pragma GCC unroll 8
        for (int j = 0; j < grp; j++)
            _mm512_mask_storeu_ps(out + (size_t)j * ld + (size_t)b * KV_BLOCK, m, acc[j]);
    }
}

static inline __attribute__((always_inline)) T5 void avgrp_n(const float *a, const int grp, size_t ld,
                                                              const float *const *vt, int nblk, int last_np, int hd,
                                                              float *out)
{
    __mmask16 lm = (__mmask16)((1u << last_np) - 1);
    const int D = grp <= 3 ? 4 : grp <= 5 ? 2 : 1; /* dims per pass: D * grp accumulators */
    int i = 0;
    for (; i + D <= hd; i += D) {
        __m512 acc[4][8];
#pragma GCC unroll 4
        for (int d = 0; d < D; d++)
#pragma GCC unroll 8
            for (int j = 0; j < grp; j++)
                acc[d][j] = _mm512_setzero_ps();
        for (int b = 0; b < nblk; b++) {
            __mmask16 m = b == nblk - 1 ? lm : (__mmask16)0xffff;
            __m512 w[8];
#pragma GCC unroll 8
            for (int j = 0; j < grp; j++)
                w[j] = _mm512_maskz_loadu_ps(m, a + (size_t)j * ld + (size_t)b * KV_BLOCK);
#pragma GCC unroll 4
            for (int d = 0; d < D; d++) {
                __m512 v = _mm512_maskz_loadu_ps(m, vt[b] + (i + d) * KV_BLOCK);
#pragma GCC unroll 8
                for (int j = 0; j < grp; j++)
                    acc[d][j] = _mm512_fmadd_ps(w[j], v, acc[d][j]);
            }
        }
#pragma GCC unroll 4
        for (int d = 0; d < D; d++)
#pragma GCC unroll 8
            for (int j = 0; j < grp; j++)
                out[(size_t)j * hd + i + d] = _mm512_reduce_add_ps(acc[d][j]);
    }
    for (; i < hd; i++) /* a head size that D does not divide: the rest one dimension at a time */
        for (int j = 0; j < grp; j++) {
            float t = 0;
            for (int b = 0; b < nblk; b++)
                for (int k = 0; k < (b == nblk - 1 ? last_np : KV_BLOCK); k++)
                    t += a[(size_t)j * ld + (size_t)b * KV_BLOCK + k] * vt[b][i * KV_BLOCK + k];
            out[(size_t)j * hd + i] = t;
        }
}

static T5 void asgrp_avx512(const float *q, int grp, const float *const *kt, int nblk, int last_np, int hd,
                           float *out, size_t ld)
{
    switch (grp) {
    case 1: asgrp_n(q, 1, kt, nblk, last_np, hd, out, ld); break;
    case 2: asgrp_n(q, 2, kt, nblk, last_np, hd, out, ld); break;
    case 3: asgrp_n(q, 3, kt, nblk, last_np, hd, out, ld); break;
    case 4: asgrp_n(q, 4, kt, nblk, last_np, hd, out, ld); break;
    case 5: asgrp_n(q, 5, kt, nblk, last_np, hd, out, ld); break;
    case 6: asgrp_n(q, 6, kt, nblk, last_np, hd, out, ld); break;
    case 7: asgrp_n(q, 7, kt, nblk, last_np, hd, out, ld); break;
    default: asgrp_n(q, 8, kt, nblk, last_np, hd, out, ld); break;
    }
}

static T5 void avgrp_avx512(const float *a, int grp, size_t ld, const float *const *vt, int nblk, int last_np, int hd,
                           float *out)
{
    switch (grp) {
    case 1: avgrp_n(a, 1, ld, vt, nblk, last_np, hd, out); break;
    case 2: avgrp_n(a, 2, ld, vt, nblk, last_np, hd, out); break;
    case 3: avgrp_n(a, 3, ld, vt, nblk, last_np, hd, out); break;
    case 4: avgrp_n(a, 4, ld, vt, nblk, last_np, hd, out); break;
    case 5: avgrp_n(a, 5, ld, vt, nblk, last_np, hd, out); break;
    case 6: avgrp_n(a, 6, ld, vt, nblk, last_np, hd, out); break;
    case 7: avgrp_n(a, 7, ld, vt, nblk, last_np, hd, out); break;
    default: avgrp_n(a, 8, ld, vt, nblk, last_np, hd, out); break;
    }
}
#endif

/* ---------------- softmax of attention scores ---------------- */



static void softmax_scalar(float *r, int n, float scale)
{
    float mx = -INFINITY, sum = 0;
    for (int p = 0; p < n; p++) {
        r[p] *= scale;
        mx = r[p] > mx ? r[p] : mx;
    }
    for (int p = 0; p < n; p++) {
        r[p] = expf(r[p] - mx);
        sum += r[p];
    }
    float inv = 1.0f / sum;
    for (int p = 0; p < n; p++)
        r[p] *= inv;
}

#ifdef SS_X86
/* exp(x) for x in [-87, 87] (softmax: scores minus their max; SwiGLU: clamped): 2^(x log2 e) = 2^k * p(f), |f| <= 0.5,
 * degree-6 polynomial, relative error ~2e-7; underflows cleanly to 0 below -87. */
static inline T5 __m512 exp512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    __m512 k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, k); /* 2^f, f in [-0.5, 0.5] */
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static T5 void softmax_avx512(float *r, int n, float scale)
{
    __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(-INFINITY);
    int p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(r + p), vs);
        _mm512_storeu_ps(r + p, v);
        vm = _mm512_max_ps(vm, v);
    }
    __mmask16 k = (__mmask16)((1u << (n - p)) - 1);
    if (k) {
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + p), vs);
        _mm512_mask_storeu_ps(r + p, k, v);
        vm = _mm512_mask_max_ps(vm, k, vm, v);
    }
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vm)), sum = _mm512_setzero_ps();
    for (p = 0; p + 16 <= n; p += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(r + p), mx));
        _mm512_storeu_ps(r + p, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (k) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, r + p), mx));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(r + p, k, e);
        sum = _mm512_add_ps(sum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (p = 0; p + 16 <= n; p += 16)
        _mm512_storeu_ps(r + p, _mm512_mul_ps(_mm512_loadu_ps(r + p), inv));
    if (k)
        _mm512_mask_storeu_ps(r + p, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, r + p), inv));
}
#endif

/* ---------------- SwiGLU: g = silu(g) * u ---------------- */

static void swiglu_scalar(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

#ifdef SS_X86
static T5 void swiglu_avx512(float *g, const float *u, size_t n)
{
    size_t i = 0;
    const __m512 one = _mm512_set1_ps(1.0f), lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(87.0f);
    for (; i < n; i += 16) { /* the tail masked, so every element takes the same path wherever it sits */
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(m, g + i);
        __m512 e = exp512(_mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), lo), hi));
        _mm512_mask_storeu_ps(g + i, m,
                              _mm512_mul_ps(_mm512_div_ps(a, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i)));
    }
}
#endif

/* ---------------- dispatch ---------------- */

static const char *g_isa;
int k_level;
int k_test_no_panels;
float (*k_vdot)(const float *a, const float *b, int n);
void (*k_vaxpy)(float *y, float a, const float *x, int n);
void (*k_softmax)(float *r, int n, float scale);
void (*k_swiglu)(float *g, const float *u, size_t n);
void (*k_attn_values_all)(const float *a, const float *const *vt, int nblk, int last_np, int hd, float *out);
void (*k_attn_scores_all)(const float *q, const float *const *kt, int nblk, int last_np, int hd, float *out);
void (*k_attn_scores_grp)(const float *q, int grp, const float *const *kt, int nblk, int last_np, int hd, float *out,
                          size_t ld);
void (*k_attn_values_grp)(const float *a, int grp, size_t ld, const float *const *vt, int nblk, int last_np, int hd,
                          float *out);

/* level 0 = scalar, 1 = AVX2+FMA+F16C, 2 = AVX-512 with VNNI */
static void set_isa(int level)
{
    g_isa = "scalar";
    k_level = 0;
    k_vdot = vdot_scalar;
    k_vaxpy = vaxpy_scalar;
    k_attn_scores = ascore_scalar;
    k_softmax = softmax_scalar;
    k_swiglu = swiglu_scalar;
    k_attn_values_all = avall_scalar;
    k_attn_scores_all = asall_scalar;
    k_attn_scores_grp = NULL;
    k_attn_values_grp = NULL;
#ifdef SS_X86
    if (level >= 1) {
        g_isa = "avx2";
        k_level = 1;
        k_vdot = vdot_avx2;
        k_vaxpy = vaxpy_avx2;
        k_attn_scores = ascore_avx2;
        k_attn_values_all = avall_avx2;
    }
    if (level >= 2) {
        g_isa = "avx512";
        k_level = 2;
        k_vdot = vdot_avx512;
        k_vaxpy = vaxpy_avx512;
        k_attn_scores = ascore_avx512;
        k_softmax = softmax_avx512;
        k_swiglu = swiglu_avx512;
        k_attn_values_all = avall_avx512;
        k_attn_scores_all = asall_avx512;
        k_attn_scores_grp = asgrp_avx512;
        k_attn_values_grp = avgrp_avx512;
    }
#else
    (void)level;
#endif
}

/* F16C at run time. clang before 16 has no "f16c" name for __builtin_cpu_supports (the
 * fuzz build uses Debian's clang 14): ask cpuid leaf 1 (ECX bit 29) there. */
#if defined(SS_X86) && defined(__clang__) && __clang_major__ < 16
#include <cpuid.h>
static int ss_cpu_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#define SS_CPU_F16C() ss_cpu_f16c()
#else
#define SS_CPU_F16C() __builtin_cpu_supports("f16c")
#endif

static int max_level(void)
{
#ifdef SS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && SS_CPU_F16C() && __builtin_cpu_supports("fma"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && SS_CPU_F16C())
        return 1;
#endif
    return 0;
}

static void pick_once(void) { set_isa(max_level()); }

/* The first use picks the kernels; engines running in several threads may get there together,
 * so it runs once (k_force_isa, for tests and benchmarks, is called before any engine runs). */
static void pick(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pick_once);
}

const char *k_isa(void)
{
    pick();
    return g_isa;
}

void k_force_isa(const char *isa)
{
    int lv = !isa ? 2 : !strcmp(isa, "scalar") ? 0 : !strcmp(isa, "avx2") ? 1 : 2;
    pick(); /* so a later first use cannot undo the forced choice */
    set_isa(SS_MIN(lv, max_level()));
}

void k_row_f32(const wmat_t *w, int r, float *dst)
{
    ss_ggml_to_f32(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, dst, w->cols);
}

/* f32/f16/bf16 have direct kernels; quantized types run on panels (qgemm.c), or, when a matrix
 * was not packed, are dequantized a row at a time (a slow path for callers that skip k_pack). */
static int direct(int type)
{
    return type == SS_GGML_F32 || type == SS_GGML_F16 || type == SS_GGML_BF16;
}

#define ROWS_PER_TASK 16

typedef struct mm {
    const wmat_t *w;
    const float *x;
    size_t ldx, ldo;
    int nb;
    float *out;
    const qact_t *qa;   /* panel path: the quantized activations */
    const pspec_t *ps;
    int gpt;            /* row groups (panel) or blocks of ROWS_PER_TASK rows per task */
} mm_t;

/* Panel path: row groups [t*gpt, (t+1)*gpt) times every activation; each group's tiles stay in
 * cache while the kernel walks the batch 8 activations at a time. */
static void mm_panel(const mm_t *a, int t)
{
    const wmat_t *w = a->w;
    int ngroups = (w->rows + 15) / 16;
    for (int g = t * a->gpt; g < SS_MIN(ngroups, (t + 1) * a->gpt); g++) {
        int r0 = 16 * g;
        qgemm_run(k_level, a->ps, w->panel + (size_t)g * w->group_bytes, w->cols, a->qa, 0, a->nb, a->out + r0,
                  a->ldo, SS_MIN(16, w->rows - r0));
    }
}

static int mm_tasks(const mm_t *a)
{
    return ((a->w->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK + a->gpt - 1) / a->gpt;
}

static void mm_chunk(void *ctx, int t, int tid)
{
    const mm_t *a = ctx;
    const wmat_t *w = a->w;
    (void)tid;
    if (a->ps) {
        mm_panel(a, t);
        return;
    }
    int r0 = t * a->gpt * ROWS_PER_TASK, r1 = SS_MIN(w->rows, r0 + a->gpt * ROWS_PER_TASK);
    if (direct(w->type)) {
        fgemm_run(k_level, (const uint8_t *)w->data + (size_t)r0 * w->row_bytes, w->row_bytes, w->type, r1 - r0,
                  w->cols, a->x, a->ldx, a->nb, a->out + r0, a->ldo);
        return;
    }
    /* a quantized matrix without panels: dequantize its rows, then the f32 kernel */
    float *rows = malloc((size_t)ROWS_PER_TASK * w->cols * sizeof(float));
    if (!rows)
        return;
    for (int r = r0; r < r1; r += ROWS_PER_TASK) {
        int n = SS_MIN(ROWS_PER_TASK, r1 - r);
        for (int i = 0; i < n; i++)
            k_row_f32(w, r + i, rows + (size_t)i * w->cols);
        fgemm_run(k_level, (const uint8_t *)rows, (size_t)w->cols * sizeof(float), SS_GGML_F32, n, w->cols, a->x,
                  a->ldx, a->nb, a->out + r, a->ldo);
    }
    free(rows);
}

typedef struct mm_multi {
    mm_t a[K_MULTI_MAX];
    int first[K_MULTI_MAX + 1]; /* first task of each matrix */
    int n;
} mm_multi_t;

static void multi_chunk(void *ctx, int t, int tid)
{
    mm_multi_t *m = ctx;
    int i = 0;
    while (t >= m->first[i + 1])
        i++;
    mm_chunk(&m->a[i], t - m->first[i], tid);
}

void k_matmul_multi(const wmat_t *const *w, float *const *out, const size_t *ldo, int nmat, const float *x,
                    size_t ldx, int nb, int threads)
{
    pick();
    mm_multi_t m;
    qact_t qa[2] = {{0}, {0}}; /* the activations quantized per 32 (legacy types) and per 256 (K-quants) */
    int cols = w[0]->cols, need[2] = {0, 0}, ok[2] = {0, 0};
    long work = 0;
    for (int i = 0; i < nmat; i++)
        if (w[i]->panel && p_spec(w[i]->type)) /* (a float matrix's panel is its huge-page copy) */
            need[p_spec(w[i]->type)->sk != SK_LEGACY] = 1;
    for (int k = 0; k < 2; k++) /* once for every packed matrix of the call */
        ok[k] = need[k] && q_act(&qa[k], x, ldx, nb, cols, k ? 256 : 32, threads) == SS_OK;
    m.n = nmat;
    m.first[0] = 0;
    for (int i = 0; i < nmat; i++) {
        const pspec_t *ps = w[i]->panel ? p_spec(w[i]->type) : NULL;
        int k = ps && ps->sk != SK_LEGACY;
        if (ps && !ok[k])
            ps = NULL; /* out of memory for the activations: the slow path still works */
        /* tasks of 64 rows (4 row groups) when decoding; prefill: one row group per task (its tiles
         * stay in cache for the whole batch), 64 float rows (activations reused over more rows) */
        int gpt = ps && nb > 8 ? 1 : 4;
        m.a[i] = (mm_t){w[i], x, ldx, ldo[i], nb, out[i], ps ? &qa[k] : NULL, ps, gpt};
        m.first[i + 1] = m.first[i] + mm_tasks(&m.a[i]);
        work += (long)w[i]->rows * w[i]->cols * nb;
    }
    pool_run(threads > 1 && work > (1L << 17) ? threads : 1, m.first[nmat], multi_chunk, &m);
    q_act_free(&qa[0]);
    q_act_free(&qa[1]);
}

void k_matmul(const wmat_t *w, const float *x, size_t ldx, int nb, float *out, size_t ldo, int threads)
{
    k_matmul_multi(&w, &out, &ldo, 1, x, ldx, nb, threads);
}

void ss_fgemm_f32(const float *w, int rows, int cols, const float *x, int nb, float *out)
{
    pick();
    fgemm_run(k_level, (const uint8_t *)w, (size_t)cols * sizeof(float), SS_GGML_F32, rows, cols, x, (size_t)cols, nb,
              out, (size_t)rows);
}
