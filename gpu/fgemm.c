/*
 * fgemm.c — float weights (F32, F16, BF16) times f32 activations: one register-tile
 * micro-kernel for decode and prefill. A tile is R weight rows x C activations; each of its
 * R*C accumulators holds one lane per position k mod 16 (AVX-512) or k mod 8 (AVX2), fed by
 * fused multiply-adds in increasing k, and is reduced at the end by a fixed tree. The sum for
 * a (row, activation) pair therefore does not depend on R, C, the batch or the threads: a
 * token's logits are the same bit for bit whatever it runs with (on a given ISA).
 *
 * Loop order (fgemm_run): the activations of a column tile stay in L1 while the task's rows
 * (from L2 after the first tile) stream past them, so each weight row is read from memory once
 * per call; F16/BF16 are converted in registers (vcvtph2ps / a 16-bit shift).
 */
#include "llm_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AI static inline __attribute__((always_inline))
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define T2 __attribute__((target("avx2,fma,f16c")))
#endif

static float wval(const uint8_t *w, int type, int k)
{
    uint16_t h;
    float v;
    if (type == SS_GGML_F32) {
        memcpy(&v, w + 4 * (size_t)k, 4);
        return v;
    }
    memcpy(&h, w + 2 * (size_t)k, 2);
    return type == SS_GGML_F16 ? ss_fp16_to_f32(h) : ss_bf16_to_f32(h);
}

/* Scalar: 8 partial sums per pair (k mod 8), added in a fixed order. */
static void fdot_scalar(const uint8_t *w, int type, int cols, const float *x, float *out)
{
    float acc[8] = {0};
    for (int k = 0; k < cols; k++)
        acc[k & 7] += wval(w, type, k) * x[k];
    *out = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#if defined(__x86_64__)
/* ---------------- AVX-512: 16 lanes ---------------- */

AI T5 __m512 ld16(const uint8_t *w, int k, const int type, __mmask16 m)
{
    if (type == SS_GGML_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, w + 2 * (size_t)k);
    if (type == SS_GGML_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI T5 void tile512(const uint8_t *w, size_t wstride, const int type, int cols, const float *x, size_t ldx, float *out,
                   size_t ldo, const int R, const int C)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= cols; k += 16) {
        __m512 wv[4], xv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = ld16(w + (size_t)r * wstride, k, type, 0xffff);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            xv[c] = _mm512_loadu_ps(x + (size_t)c * ldx + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv[c], acc[r][c]);
    }
    if (k < cols) { /* the tail: masked lanes are zero on both sides */
        __mmask16 m = (__mmask16)((1u << (cols - k)) - 1);
        __m512 wv[4], xv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = ld16(w + (size_t)r * wstride, k, type, m);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            xv[c] = _mm512_maskz_loadu_ps(m, x + (size_t)c * ldx + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv[c], acc[r][c]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            out[(size_t)c * ldo + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* R rows (<= 4) x nb activations, in tiles of 4 activations (then 2, 1). */
#define TILES512(type, R)                                                                                         \
    do {                                                                                                          \
        int c = 0;                                                                                                \
        for (; c + 4 <= nb; c += 4)                                                                               \
            tile512(w, ws, type, cols, x + (size_t)c * ldx, ldx, out + (size_t)c * ldo, ldo, R, 4);               \
        if (c + 2 <= nb) {                                                                                        \
            tile512(w, ws, type, cols, x + (size_t)c * ldx, ldx, out + (size_t)c * ldo, ldo, R, 2);               \
            c += 2;                                                                                               \
        }                                                                                                         \
        if (c < nb)                                                                                               \
            tile512(w, ws, type, cols, x + (size_t)c * ldx, ldx, out + (size_t)c * ldo, ldo, R, 1);               \
    } while (0)

#define ROWS512(name, type)                                                                                       \
    static T5 void name(const uint8_t *w, size_t ws, int R, int cols, const float *x, size_t ldx, int nb,         \
                        float *out, size_t ldo)                                                                   \
    {                                                                                                             \
        switch (R) {                                                                                              \
        case 4: TILES512(type, 4); break;                                                                         \
        case 3: TILES512(type, 3); break;                                                                         \
        case 2: TILES512(type, 2); break;                                                                         \
        default: TILES512(type, 1); break;                                                                        \
        }                                                                                                         \
    }

ROWS512(rows512_f32, SS_GGML_F32)
ROWS512(rows512_f16, SS_GGML_F16)
ROWS512(rows512_bf16, SS_GGML_BF16)

/* ---------------- AVX2: 8 lanes, tiles of 4 rows x 2 activations ---------------- */

AI T2 __m256 ld8(const uint8_t *w, int k, const int type)
{
    if (type == SS_GGML_F32)
        return _mm256_loadu_ps((const float *)w + k);
    __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * (size_t)k));
    if (type == SS_GGML_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AI T2 float hsum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

AI T2 void tile256(const uint8_t *w, size_t wstride, const int type, int cols, const float *x, size_t ldx, float *out,
                   size_t ldo, const int R, const int C)
{
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 xv[2];
#pragma GCC unroll 2
        for (int c = 0; c < C; c++)
            xv[c] = _mm256_loadu_ps(x + (size_t)c * ldx + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 wv = ld8(w + (size_t)r * wstride, k, type);
#pragma GCC unroll 2
            for (int c = 0; c < C; c++)
                acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++) {
            float s = hsum8(acc[r][c]);
            for (int kk = k; kk < cols; kk++) /* the tail, in order */
                s += wval(w + (size_t)r * wstride, type, kk) * x[(size_t)c * ldx + kk];
            out[(size_t)c * ldo + r] = s;
        }
}

#define TILES256(type, R)                                                                                         \
    do {                                                                                                          \
        int c = 0;                                                                                                \
        for (; c + 2 <= nb; c += 2)                                                                               \
            tile256(w, ws, type, cols, x + (size_t)c * ldx, ldx, out + (size_t)c * ldo, ldo, R, 2);               \
        if (c < nb)                                                                                               \
            tile256(w, ws, type, cols, x + (size_t)c * ldx, ldx, out + (size_t)c * ldo, ldo, R, 1);               \
    } while (0)

#define ROWS256(name, type)                                                                                       \
    static T2 void name(const uint8_t *w, size_t ws, int R, int cols, const float *x, size_t ldx, int nb,         \
                        float *out, size_t ldo)                                                                   \
    {                                                                                                             \
        switch (R) {                                                                                              \
        case 4: TILES256(type, 4); break;                                                                         \
        case 3: TILES256(type, 3); break;                                                                         \
        case 2: TILES256(type, 2); break;                                                                         \
        default: TILES256(type, 1); break;                                                                        \
        }                                                                                                         \
    }

ROWS256(rows256_f32, SS_GGML_F32)
ROWS256(rows256_f16, SS_GGML_F16)
ROWS256(rows256_bf16, SS_GGML_BF16)
#endif

typedef void (*rows_fn)(const uint8_t *w, size_t ws, int R, int cols, const float *x, size_t ldx, int nb, float *out,
                        size_t ldo);

static rows_fn pick(int level, int type)
{
#if defined(__x86_64__)
    if (level >= 2)
        return type == SS_GGML_F32 ? rows512_f32 : type == SS_GGML_F16 ? rows512_f16 : rows512_bf16;
    if (level >= 1)
        return type == SS_GGML_F32 ? rows256_f32 : type == SS_GGML_F16 ? rows256_f16 : rows256_bf16;
#else
    (void)level;
    (void)type;
#endif
    return NULL;
}

void fgemm_run(int level, const uint8_t *w, size_t ws, int type, int nrows, int cols, const float *x, size_t ldx,
               int nb, float *out, size_t ldo)
{
    rows_fn f = pick(level, type);
    /* columns in tiles of up to 32 KiB of activations (they stay in L1), rows 4 at a time */
    int cb = (int)SS_MAX(4, (32 * 1024 / ((size_t)cols * 4)) & ~(size_t)3);
    for (int b0 = 0; b0 < nb; b0 += cb) {
        int bn = SS_MIN(cb, nb - b0);
        for (int r = 0; r < nrows; r += 4) {
            int R = SS_MIN(4, nrows - r);
            const uint8_t *wr = w + (size_t)r * ws;
            if (f) {
                f(wr, ws, R, cols, x + (size_t)b0 * ldx, ldx, bn, out + (size_t)b0 * ldo + r, ldo);
                continue;
            }
            for (int i = 0; i < R; i++)
                for (int b = b0; b < b0 + bn; b++)
                    fdot_scalar(wr + (size_t)i * ws, type, cols, x + (size_t)b * ldx, out + (size_t)b * ldo + r + i);
        }
    }
}
