/*
 * kernels.c — CPU matrix kernels: W (rows x cols, any supported type) times a batch
 * of nb f32 activations. Each weight row is loaded once per group of up to 4
 * activations (the batching win) and dequantized in registers. AVX-512 and
 * AVX2+FMA variants are chosen at run time (__builtin_cpu_supports) with a portable
 * scalar fallback, so the binary runs on any x86-64.
 *
 * Determinism: the dot product of one row with one activation is computed in the
 * same order whatever the group size or thread count, so batched logits equal
 * single-sequence logits bit for bit (on a given ISA).
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

typedef void (*dot_fn)(const uint8_t *w, int type, int cols, const float *x, size_t ldx, int nb, float *out);

/* ---------------- scalar ---------------- */

static float tail_dot(const uint8_t *w, int type, int from, int cols, const float *x)
{
    float s = 0;
    uint16_t h;
    for (int i = from; i < cols; i++) {
        float v;
        if (type == SS_GGML_F32) {
            memcpy(&v, w + 4 * (size_t)i, 4);
        } else {
            memcpy(&h, w + 2 * (size_t)i, 2);
            v = type == SS_GGML_F16 ? ss_fp16_to_f32(h) : ss_bf16_to_f32(h);
        }
        s += v * x[i];
    }
    return s;
}

/* 32 weights of group g as f32 */
static void group_f32(const uint8_t *w, int type, int g, float *d)
{
    switch (type) {
    case SS_GGML_Q8_0:
        ss_ggml_to_f32(type, w + 34 * (size_t)g, d, 32);
        break;
    case SS_GGML_F32:
        memcpy(d, w + 128 * (size_t)g, 128);
        break;
    default:
        ss_ggml_to_f32(type, w + 64 * (size_t)g, d, 32);
    }
}

static void dot_scalar(const uint8_t *w, int type, int cols, const float *x, size_t ldx, int nb, float *out)
{
    float acc[4][8];
    memset(acc, 0, sizeof acc);
    int ng = cols / 32;
    float d[32];
    for (int g = 0; g < ng; g++) {
        group_f32(w, type, g, d);
        for (int j = 0; j < nb; j++) {
            const float *xj = x + j * ldx + 32 * g;
            for (int i = 0; i < 32; i++)
                acc[j][i & 7] += d[i] * xj[i];
        }
    }
    for (int j = 0; j < nb; j++) {
        float s = 0;
        for (int i = 0; i < 8; i++)
            s += acc[j][i];
        out[j] = s + (type == SS_GGML_Q8_0 ? 0.f : tail_dot(w, type, 32 * ng, cols, x + j * ldx));
    }
}

#ifdef SS_X86
/* ---------------- AVX2 + FMA + F16C ---------------- */
#define T2 __attribute__((target("avx2,fma,f16c")))

static inline T2 void ld8_avx2(const uint8_t *w, int type, int g, __m256 *v)
{
    if (type == SS_GGML_F32) {
        const float *p = (const float *)(w) + 32 * (size_t)g;
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(p + 8 * k);
    } else if (type == SS_GGML_F16) {
        const uint8_t *p = w + 64 * (size_t)g;
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * k)));
    } else if (type == SS_GGML_BF16) {
        const uint8_t *p = w + 64 * (size_t)g;
        for (int k = 0; k < 4; k++) {
            __m256i i = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * k)));
            v[k] = _mm256_castsi256_ps(_mm256_slli_epi32(i, 16));
        }
    } else { /* Q8_0 */
        const uint8_t *p = w + 34 * (size_t)g;
        uint16_t h;
        memcpy(&h, p, 2);
        __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
        for (int k = 0; k < 4; k++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(p + 2 + 8 * k));
            v[k] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
        }
    }
}

static inline T2 float hsum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

static inline __attribute__((always_inline)) T2 void dot_avx2_n(const uint8_t *w, int type, int cols,
                                                                 const float *x, size_t ldx, const int nb,
                                                                 float *out)
{
    __m256 a0[4], a1[4], v[4];
    for (int j = 0; j < nb; j++)
        a0[j] = a1[j] = _mm256_setzero_ps();
    int ng = cols / 32;
    for (int g = 0; g < ng; g++) {
        ld8_avx2(w, type, g, v);
        for (int j = 0; j < nb; j++) {
            const float *xj = x + j * ldx + 32 * g;
            a0[j] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(xj), a0[j]);
            a1[j] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(xj + 8), a1[j]);
            a0[j] = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xj + 16), a0[j]);
            a1[j] = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xj + 24), a1[j]);
        }
    }
    for (int j = 0; j < nb; j++)
        out[j] = hsum8(_mm256_add_ps(a0[j], a1[j])) +
                 (type == SS_GGML_Q8_0 ? 0.f : tail_dot(w, type, 32 * ng, cols, x + j * ldx));
}

static T2 void dot_avx2(const uint8_t *w, int type, int cols, const float *x, size_t ldx, int nb, float *out)
{
    switch (nb) {
    case 1: dot_avx2_n(w, type, cols, x, ldx, 1, out); break;
    case 2: dot_avx2_n(w, type, cols, x, ldx, 2, out); break;
    case 3: dot_avx2_n(w, type, cols, x, ldx, 3, out); break;
    default: dot_avx2_n(w, type, cols, x, ldx, 4, out); break;
    }
}

/* ---------------- AVX-512 ---------------- */
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

static inline T5 void ld16_avx512(const uint8_t *w, int type, int g, __m512 *v)
{
    if (type == SS_GGML_F32) {
        const float *p = (const float *)(w) + 32 * (size_t)g;
        v[0] = _mm512_loadu_ps(p);
        v[1] = _mm512_loadu_ps(p + 16);
    } else if (type == SS_GGML_F16) {
        const uint8_t *p = w + 64 * (size_t)g;
        v[0] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
        v[1] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
    } else if (type == SS_GGML_BF16) {
        const uint8_t *p = w + 64 * (size_t)g;
        for (int k = 0; k < 2; k++) {
            __m512i i = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 32 * k)));
            v[k] = _mm512_castsi512_ps(_mm512_slli_epi32(i, 16));
        }
    } else { /* Q8_0 */
        const uint8_t *p = w + 34 * (size_t)g;
        uint16_t h;
        memcpy(&h, p, 2);
        __m512 d = _mm512_set1_ps(_cvtsh_ss(h));
        for (int k = 0; k < 2; k++) {
            __m128i q = _mm_loadu_si128((const __m128i *)(p + 2 + 16 * k));
            v[k] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
        }
    }
}

/* Up to 31 trailing f32/f16/bf16 weights (group g, n valid) as two masked vectors. */
static inline T5 void tail16_avx512(const uint8_t *w, int type, int g, int n, __m512 *v)
{
    for (int k = 0; k < 2; k++) {
        int m = SS_MIN(16, SS_MAX(0, n - 16 * k));
        __mmask16 mk = (__mmask16)((1u << m) - 1);
        if (type == SS_GGML_F32) {
            v[k] = _mm512_maskz_loadu_ps(mk, (const float *)w + 32 * (size_t)g + 16 * k);
        } else {
            __m256i h = _mm256_maskz_loadu_epi16(mk, w + 64 * (size_t)g + 32 * k);
            v[k] = type == SS_GGML_F16 ? _mm512_cvtph_ps(h)
                                       : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
    }
}

static inline __attribute__((always_inline)) T5 void dot_avx512_n(const uint8_t *w, int type, int cols,
                                                                   const float *x, size_t ldx, const int nb,
                                                                   float *out)
{
    __m512 a0[4], a1[4], v[2];
    for (int j = 0; j < nb; j++)
        a0[j] = a1[j] = _mm512_setzero_ps();
    int ng = cols / 32;
    for (int g = 0; g < ng; g++) {
        ld16_avx512(w, type, g, v);
        for (int j = 0; j < nb; j++) {
            const float *xj = x + j * ldx + 32 * g;
            a0[j] = _mm512_fmadd_ps(v[0], _mm512_loadu_ps(xj), a0[j]);
            a1[j] = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(xj + 16), a1[j]);
        }
    }
    int rest = cols - 32 * ng;
    if (rest && type != SS_GGML_Q8_0) {
        tail16_avx512(w, type, ng, rest, v);
        __mmask16 m0 = (__mmask16)((1u << SS_MIN(16, rest)) - 1);
        __mmask16 m1 = (__mmask16)((1u << SS_MAX(0, rest - 16)) - 1);
        for (int j = 0; j < nb; j++) {
            const float *xj = x + j * ldx + 32 * ng;
            a0[j] = _mm512_fmadd_ps(v[0], _mm512_maskz_loadu_ps(m0, xj), a0[j]);
            a1[j] = _mm512_fmadd_ps(v[1], _mm512_maskz_loadu_ps(m1, xj + 16), a1[j]);
        }
    }
    for (int j = 0; j < nb; j++)
        out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));
}

static T5 void dot_avx512(const uint8_t *w, int type, int cols, const float *x, size_t ldx, int nb, float *out)
{
    switch (nb) {
    case 1: dot_avx512_n(w, type, cols, x, ldx, 1, out); break;
    case 2: dot_avx512_n(w, type, cols, x, ldx, 2, out); break;
    case 3: dot_avx512_n(w, type, cols, x, ldx, 3, out); break;
    default: dot_avx512_n(w, type, cols, x, ldx, 4, out); break;
    }
}
#endif

/* ---------------- Q8_0 weights x Q8_0-quantized activations (integer dots) ----------------
 * Activations are quantized per 32-element block (scale dx, int8 qx), as llama.cpp does;
 * each block's integer dot is scaled by dw*dx. qx rows have stride cols, dx rows cols/32. */
typedef void (*dotq_fn)(const uint8_t *w, int cols, const int8_t *qx, const float *dx, int nb, float *out);

static void quant_act(const float *x, int cols, int8_t *q, float *d)
{
    for (int g = 0; g < cols / 32; g++) {
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[32 * g + i]));
        float sc = amax / 127.f, inv = sc ? 1.f / sc : 0.f;
        d[g] = sc;
        for (int i = 0; i < 32; i++)
            q[32 * g + i] = (int8_t)lrintf(x[32 * g + i] * inv);
    }
}

static void dotq_scalar(const uint8_t *w, int cols, const int8_t *qx, const float *dx, int nb, float *out)
{
    int ng = cols / 32;
    for (int j = 0; j < nb; j++) {
        float acc = 0;
        for (int g = 0; g < ng; g++) {
            const uint8_t *b = w + 34 * (size_t)g;
            uint16_t h;
            memcpy(&h, b, 2);
            int s = 0;
            for (int i = 0; i < 32; i++)
                s += (int)(int8_t)b[2 + i] * qx[(size_t)j * cols + 32 * g + i];
            acc += ss_fp16_to_f32(h) * dx[(size_t)j * ng + g] * (float)s;
        }
        out[j] = acc;
    }
}

#ifdef SS_X86
static inline __attribute__((always_inline)) T2 void dotq_avx2_n(const uint8_t *w, int cols, const int8_t *qx,
                                                                  const float *dx, const int nb, float *out)
{
    __m256 acc[4];
    const __m256i ones = _mm256_set1_epi16(1);
    int ng = cols / 32;
    for (int j = 0; j < nb; j++)
        acc[j] = _mm256_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const uint8_t *b = w + 34 * (size_t)g;
        uint16_t h;
        memcpy(&h, b, 2);
        float dw = _cvtsh_ss(h);
        __m256i qw = _mm256_loadu_si256((const __m256i *)(b + 2));
        __m256i ax = _mm256_sign_epi8(qw, qw);
        for (int j = 0; j < nb; j++) {
            __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(qx + (size_t)j * cols + 32 * g)), qw);
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones);
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[(size_t)j * ng + g]), acc[j]);
        }
    }
    for (int j = 0; j < nb; j++)
        out[j] = hsum8(acc[j]);
}

static T2 void dotq_avx2(const uint8_t *w, int cols, const int8_t *qx, const float *dx, int nb, float *out)
{
    switch (nb) {
    case 1: dotq_avx2_n(w, cols, qx, dx, 1, out); break;
    case 2: dotq_avx2_n(w, cols, qx, dx, 2, out); break;
    case 3: dotq_avx2_n(w, cols, qx, dx, 3, out); break;
    default: dotq_avx2_n(w, cols, qx, dx, 4, out); break;
    }
}

/* Two blocks per 512-bit register: lanes 0-7 hold block g's int32 partial sums, 8-15 block
 * g+1's; the pair's scales come from one 64-bit load of dx and a lane permute. */
#define T6 __attribute__((target("avx512vnni,avx512bw,avx512vl,avx512f,avx512dq,avx2,fma,f16c")))
static inline __attribute__((always_inline)) T6 void dotq_vnni512_n(const uint8_t *w, int cols, const int8_t *qx,
                                                                     const float *dx, const int nb, float *out)
{
    __m512 acc[4];
    int ng = cols / 32;
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int j = 0; j < nb; j++)
        acc[j] = _mm512_setzero_ps();
    int g = 0;
    for (; g + 2 <= ng; g += 2) {
        const uint8_t *b0 = w + 34 * (size_t)g, *b1 = b0 + 34;
        uint16_t h0, h1;
        memcpy(&h0, b0, 2);
        memcpy(&h1, b1, 2);
        __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(h0)), _mm256_set1_ps(_cvtsh_ss(h1)), 1);
        __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                        _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
        __m512i ax = _mm512_abs_epi8(qw);
        __mmask64 neg = _mm512_movepi8_mask(qw);
        for (int j = 0; j < nb; j++) {
            __m512i x = _mm512_loadu_si512((const void *)(qx + (size_t)j * cols + 32 * g));
            __m512i sy = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
            __m128 d2 = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(dx + (size_t)j * ng + g)));
            __m512 sc = _mm512_mul_ps(dw, _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d2)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[j]);
        }
    }
    for (int j = 0; j < nb; j++) {
        float s = _mm512_reduce_add_ps(acc[j]);
        if (g < ng) { /* odd block count: the last block alone */
            const uint8_t *b = w + 34 * (size_t)g;
            uint16_t h;
            memcpy(&h, b, 2);
            __m256i qw = _mm256_loadu_si256((const __m256i *)(b + 2));
            __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(qx + (size_t)j * cols + 32 * g)), qw);
            __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(qw, qw), sy);
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(_cvtsh_ss(h) * dx[(size_t)j * ng + g]));
            s += hsum8(v);
        }
        out[j] = s;
    }
}

static T6 void dotq_vnni(const uint8_t *w, int cols, const int8_t *qx, const float *dx, int nb, float *out)
{
    switch (nb) {
    case 1: dotq_vnni512_n(w, cols, qx, dx, 1, out); break;
    case 2: dotq_vnni512_n(w, cols, qx, dx, 2, out); break;
    case 3: dotq_vnni512_n(w, cols, qx, dx, 3, out); break;
    default: dotq_vnni512_n(w, cols, qx, dx, 4, out); break;
    }
}
#endif

/* ---------------- f16/bf16 rows to f32 ---------------- */

static void row16_scalar(const uint8_t *w, int type, int n, float *d) { ss_ggml_to_f32(type, w, d, n); }

#ifdef SS_X86
static T2 void row16_avx2(const uint8_t *w, int type, int n, float *d)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * (size_t)i));
        __m256 v = type == SS_GGML_F16 ? _mm256_cvtph_ps(h)
                                       : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        _mm256_storeu_ps(d + i, v);
    }
    if (i < n)
        ss_ggml_to_f32(type, w + 2 * (size_t)i, d + i, n - i);
}
#endif

static void (*g_row16)(const uint8_t *w, int type, int n, float *d);

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
/* exp(x) for x <= 0 (scores minus their max): 2^(x log2 e) = 2^k * p(f), |f| <= 0.5,
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

/* ---------------- dispatch ---------------- */

static dot_fn g_dot;
static dotq_fn g_dotq;
static const char *g_isa;
float (*k_vdot)(const float *a, const float *b, int n);
void (*k_vaxpy)(float *y, float a, const float *x, int n);
void (*k_softmax)(float *r, int n, float scale);
void (*k_attn_values_all)(const float *a, const float *const *vt, int nblk, int last_np, int hd, float *out);
void (*k_attn_scores_all)(const float *q, const float *const *kt, int nblk, int last_np, int hd, float *out);

/* level 0 = scalar, 1 = AVX2+FMA+F16C, 2 = AVX-512 (+VNNI when present) */
static void set_isa(int level)
{
    g_dot = dot_scalar;
    g_dotq = dotq_scalar;
    g_row16 = row16_scalar;
    g_isa = "scalar";
    k_vdot = vdot_scalar;
    k_vaxpy = vaxpy_scalar;
    k_attn_scores = ascore_scalar;
    k_softmax = softmax_scalar;
    k_attn_values_all = avall_scalar;
    k_attn_scores_all = asall_scalar;
#ifdef SS_X86
    if (level >= 1) {
        g_dot = dot_avx2;
        g_dotq = dotq_avx2;
        g_row16 = row16_avx2;
        g_isa = "avx2";
        k_vdot = vdot_avx2;
        k_vaxpy = vaxpy_avx2;
        k_attn_scores = ascore_avx2;
        k_attn_values_all = avall_avx2;
    }
    if (level >= 2) {
        g_dot = dot_avx512;
        g_dotq = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512dq") ? dotq_vnni : dotq_avx2;
        g_isa = "avx512";
        k_vdot = vdot_avx512;
        k_vaxpy = vaxpy_avx512;
        k_attn_scores = ascore_avx512;
        k_softmax = softmax_avx512;
        k_attn_values_all = avall_avx512;
        k_attn_scores_all = asall_avx512;
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
        __builtin_cpu_supports("avx512vl") && SS_CPU_F16C() && __builtin_cpu_supports("fma"))
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

/* Types without a direct kernel (q4_0, q4_k) are dequantized a row at a time. */
static int direct(int type)
{
    return type == SS_GGML_F32 || type == SS_GGML_F16 || type == SS_GGML_BF16 || type == SS_GGML_Q8_0;
}

#define ROWS_PER_TASK 16

typedef struct mm {
    const wmat_t *w;
    const float *x;
    size_t ldx, ldo;
    int nb;
    float *out;
    dot_fn dot;
    dotq_fn dotq;
    const int8_t *qx; /* Q8_0 weights: quantized activations [nb][cols] */
    const float *dx;  /* and their block scales [nb][cols/32] */
} mm_t;

/* Activations are taken in blocks that fit in L2 (~256 KiB), so every row of the task
 * reuses a block from cache instead of streaming all nb activations per row. */
static int act_block(int cols, int nb)
{
    int ab = (int)((256 * 1024) / ((size_t)cols * 4));
    ab = SS_MAX(4, ab & ~3);
    return SS_MIN(ab, nb);
}

static void mm_chunk(void *ctx, int t, int tid)
{
    const mm_t *a = ctx;
    const wmat_t *w = a->w;
    static __thread float *rowbuf;
    static __thread int rowcap;
    (void)tid;
    /* f16/bf16 against many activations: convert each row to f32 once per activation block
     * (exact, so the result equals the fused kernel's) instead of once per group of 4 */
    int dir = direct(w->type) && !(a->nb > 32 && (w->type == SS_GGML_F16 || w->type == SS_GGML_BF16));
    if (!dir && !a->qx && rowcap < w->cols) {
        free(rowbuf);
        rowbuf = malloc((size_t)w->cols * sizeof(float));
        rowcap = rowbuf ? w->cols : 0;
        if (!rowbuf)
            return;
    }
    float o[4];
    int r0 = t * ROWS_PER_TASK, r1 = SS_MIN(w->rows, (t + 1) * ROWS_PER_TASK);
    int ab = act_block(w->cols, a->nb), ng = w->cols / 32;
    for (int b0 = 0; b0 < a->nb; b0 += ab) {
        int b1 = SS_MIN(a->nb, b0 + ab);
        for (int r = r0; r < r1; r++) {
            const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
            if (a->qx) {
                for (int b = b0; b < b1; b += 4) {
                    int k = SS_MIN(4, b1 - b);
                    a->dotq(wr, w->cols, a->qx + (size_t)b * w->cols, a->dx + (size_t)b * ng, k, o);
                    for (int j = 0; j < k; j++)
                        a->out[(size_t)(b + j) * a->ldo + r] = o[j];
                }
                continue;
            }
            int ty = w->type;
            if (!dir && (w->type == SS_GGML_F16 || w->type == SS_GGML_BF16)) {
                g_row16(wr, w->type, w->cols, rowbuf);
                wr = (const uint8_t *)rowbuf;
                ty = SS_GGML_F32;
            } else if (!dir) {
                k_row_f32(w, r, rowbuf);
                wr = (const uint8_t *)rowbuf;
                ty = SS_GGML_F32;
            }
            for (int b = b0; b < b1; b += 4) {
                int k = SS_MIN(4, b1 - b);
                a->dot(wr, ty, w->cols, a->x + (size_t)b * a->ldx, a->ldx, k, o);
                for (int j = 0; j < k; j++)
                    a->out[(size_t)(b + j) * a->ldo + r] = o[j];
            }
        }
    }
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
    int8_t *qx = NULL;
    float *dx = NULL;
    int cols = w[0]->cols, anyq = 0;
    long work = 0;
    m.n = nmat;
    m.first[0] = 0;
    for (int i = 0; i < nmat; i++) {
        m.a[i] = (mm_t){w[i], x, ldx, ldo[i], nb, out[i], g_dot, g_dotq, NULL, NULL};
        m.first[i + 1] = m.first[i] + (w[i]->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
        anyq |= w[i]->type == SS_GGML_Q8_0;
        work += (long)w[i]->rows * w[i]->cols * nb;
    }
    if (anyq) { /* the activations are quantized once for every Q8_0 matrix */
        qx = malloc((size_t)nb * cols);
        dx = malloc((size_t)nb * (cols / 32) * sizeof(float));
        if (qx && dx)
            for (int b = 0; b < nb; b++)
                quant_act(x + (size_t)b * ldx, cols, qx + (size_t)b * cols, dx + (size_t)b * (cols / 32));
        for (int i = 0; i < nmat && qx && dx; i++)
            if (w[i]->type == SS_GGML_Q8_0) {
                m.a[i].qx = qx;
                m.a[i].dx = dx;
            }
    }
    pool_run(threads > 1 && work > (1L << 17) ? threads : 1, m.first[nmat], multi_chunk, &m);
    free(qx);
    free(dx);
}

void k_matmul(const wmat_t *w, const float *x, size_t ldx, int nb, float *out, size_t ldo, int threads)
{
    k_matmul_multi(&w, &out, &ldo, 1, x, ldx, nb, threads);
}
