/*
 * qgemm.c — the panel micro-kernel: 16 weight rows of a quantized matrix (a row group of
 * qpack.c) times C int8 activations, for every supported type, on AVX-512 VNNI and on AVX2.
 * Decode (C = 1..4) and prefill (C = 8, the row group kept in cache while the batch streams
 * by) run this same kernel, so a token's logits do not depend on the batch it runs in.
 *
 * Per step (4 weights of each of the 16 rows = one 64-byte vector, unpacked in registers from
 * the tile's packed bits), each activation's 4 bytes are broadcast and one vpdpbusd per
 * activation accumulates u * x into its 16 row lanes; after the G/4 steps of a group the lanes
 * hold whole-group integer sums, which get the group's scale (qpack.c's arithmetic, the same
 * fused multiply-adds in the same order as qgemm_scalar, so every ISA gives the same bits).
 * Legacy types scale activations per 32 (the group), K-quants per superblock of 256.
 * AVX2 has no vpdpbusd: vpmaddubsw + vpmaddwd, with the sign trick for the 8-bit types whose u
 * would overflow vpmaddubsw's int16 pairs.
 */
#include "llm_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
#define T6 __attribute__((target("avx512vnni,avx512bw,avx512vl,avx512f,avx512dq,avx2,fma,f16c")))
#define T2 __attribute__((target("avx2,fma,f16c")))

/* ---------------- AVX-512 VNNI ---------------- */

/* Bytes ahead of the group being read that decode prefetches. A token streams every panel from
 * memory once; the prefetch must run far enough ahead that the lines arrive while the groups
 * before them are computed. Paired A/B runs of the GEMV streamed from memory (bench_infer
 * --kernels-only; docs/PERF.md) found 8 KiB ahead faster than 2 KiB for the K-quants (Q4_K
 * x1.20, Q2_K x1.15, Q6_K x1.27, per CPU second, loaded machine) and no better for the legacy
 * types (Q8_0 0.93, IQ4_NL 1.01), which keep 2 KiB. */
#ifndef PF_AHEAD_K
#define PF_AHEAD_K 8192
#endif
#ifndef PF_AHEAD_LEGACY
#define PF_AHEAD_LEGACY 2048
#endif

/* Step s of a group's bits as 16 rows x 4 unsigned bytes. */
AI T6 __m512i step512(const uint8_t *gb, int s, const int G, const int lowbits, const int planes, const int lut)
{
    __m512i w;
    if (lowbits == 4) {
        __m512i v = _mm512_loadu_si512((const void *)(gb + 64 * (s / 2)));
        if (s & 1)
            v = _mm512_srli_epi16(v, 4);
        w = _mm512_and_si512(v, _mm512_set1_epi8(15));
    } else if (lowbits == 2) {
        __m512i v = _mm512_loadu_si512((const void *)(gb + 64 * (s / 4)));
        if (s & 3)
            v = _mm512_srli_epi16(v, 2 * (s & 3));
        w = _mm512_and_si512(v, _mm512_set1_epi8(3));
    } else {
        w = _mm512_loadu_si512((const void *)(gb + 64 * s));
    }
    const uint8_t *pl = gb + 2 * lowbits * G;
    for (int p = 0; p < planes; p++) {
        uint64_t mb;
        memcpy(&mb, pl + p * 2 * G + 8 * s, 8);
        __mmask64 k = _cvtu64_mask64(mb);
        w = _mm512_mask_add_epi8(w, k, w, _mm512_set1_epi8((char)(1 << (lowbits + p))));
    }
    if (lut) {
        const __m128i t = _mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
                                        (char)181, (char)197, (char)217, (char)241);
        w = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(t), w);
    }
    return w;
}

AI T6 void scales512(const uint8_t *hdr, const uint8_t *gsc, const int zp, const int sk, __m512 *A, __m512 *B)
{
    switch (sk) {
    case SK_LEGACY:
        *A = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gsc));
        if (zp < 0)
            *B = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gsc + 32)));
        break;
    case SK_Q8K:
        *A = _mm512_loadu_ps((const float *)hdr);
        break;
    case SK_KSYM:
        *A = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hdr)),
                           _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)gsc))));
        break;
    case SK_Q2K: {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)gsc));
        *A = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hdr)),
                           _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(15))));
        *B = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(hdr + 32))),
                           _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4)));
        break;
    }
    default: /* KMIN */
        *A = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hdr)),
                           _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)gsc))));
        *B = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(hdr + 32))),
                           _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(gsc + 16)))));
        break;
    }
}

static inline int ilog2(int v)
{
    int k = 0;
    while ((1 << k) < v)
        k++;
    return k;
}

AI T6 void qg512(const uint8_t *grp, int cols, const qact_t *a, int b0, const int C, float *out, size_t ldo,
                 int nrows, const int G, const int lowbits, const int planes, const int lut, const int zp,
                 const int sk)
{
    const int steps = G / 4, hdrb = sk == SK_LEGACY ? 0 : sk == SK_KSYM ? 32 : 64;
    const int gsb = sk == SK_LEGACY ? (zp < 0 ? 64 : 32) : sk == SK_KMIN ? 32 : sk == SK_Q8K ? 0 : 16;
    const int gbb = 2 * lowbits * G + planes * 2 * G, zsh = zp > 0 ? ilog2(zp) : 0;
    const int ngr = a->cols / G;
    const int8_t *xq = a->q + (size_t)b0 * a->cols;
    const float *dx = a->dx + (size_t)b0 * a->nsb, *sf = (G == 16 ? a->s16 : a->s32) + (size_t)b0 * ngr;
    const int32_t *ns = (G == 16 ? a->ns16 : a->ns32) + (size_t)b0 * ngr;
    const size_t xs = (size_t)a->cols, ds = (size_t)a->nsb;
    const int pfd = sk == SK_LEGACY ? PF_AHEAD_LEGACY : PF_AHEAD_K;
    __m512 acc[8], t[8];
    __m512i I[8];
    __mmask16 om = (__mmask16)(nrows >= 16 ? 0xffff : (1u << nrows) - 1);
    const int accmem = sk != SK_LEGACY && C > 4; /* K-quants at C = 8 keep acc in out (t takes its registers) */
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        acc[c] = _mm512_setzero_ps();
        if (accmem)
            _mm512_mask_storeu_ps(out + (size_t)c * ldo, om, acc[c]);
    }
    const uint8_t *tile = grp;
    for (int c0 = 0; c0 < cols; c0 += 256) {
        int n = cols - c0 < 256 ? cols - c0 : 256, ng = n / G;
        const uint8_t *hdr = tile, *gsc = tile + hdrb, *bits = gsc + (size_t)ng * gsb;
        if (sk != SK_LEGACY)
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                t[c] = _mm512_setzero_ps();
        for (int g = 0; g < ng; g++) {
            const uint8_t *gb = bits + (size_t)g * gbb;
            const int gi = c0 / G + g, xo = c0 + g * G;
            if (C <= 2) /* decode streams the panel from memory: keep more lines in flight */
                for (int l = 0; l < gbb; l += 64)
                    _mm_prefetch((const char *)gb + pfd + l, _MM_HINT_T0);
            __m512 A, B = _mm512_setzero_ps();
            scales512(hdr, gsc + (size_t)g * gsb, zp, sk, &A, &B);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                I[c] = zp > 0 ? _mm512_slli_epi32(_mm512_set1_epi32(ns[c * ngr + gi]), zsh) : _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int s = 0; s < steps; s++) {
                __m512i w = step512(gb, s, G, lowbits, planes, lut);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    int32_t xv;
                    memcpy(&xv, xq + c * xs + xo + 4 * s, 4);
                    I[c] = _mm512_dpbusd_epi32(I[c], w, _mm512_set1_epi32(xv));
                }
            }
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                if (sk == SK_LEGACY) { /* the activation scale is the group's: straight into acc */
                    __m512 ad = _mm512_mul_ps(A, _mm512_set1_ps(dx[c * ds + gi]));
                    acc[c] = _mm512_fmadd_ps(ad, _mm512_cvtepi32_ps(I[c]), acc[c]);
                    if (zp < 0)
                        acc[c] = _mm512_fmadd_ps(B, _mm512_set1_ps(sf[c * ngr + gi]), acc[c]);
                    continue;
                }
                t[c] = _mm512_fmadd_ps(A, _mm512_cvtepi32_ps(I[c]), t[c]);
                if (zp < 0)
                    t[c] = _mm512_fmadd_ps(B, _mm512_set1_ps(sf[c * ngr + gi]), t[c]);
            }
        }
        if (sk != SK_LEGACY) /* the superblock's activation scale, once */
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                if (!accmem) {
                    acc[c] = _mm512_fmadd_ps(_mm512_set1_ps(dx[c * ds + c0 / 256]), t[c], acc[c]);
                    continue;
                }
                __m512 a = _mm512_maskz_loadu_ps(om, out + (size_t)c * ldo);
                a = _mm512_fmadd_ps(_mm512_set1_ps(dx[c * ds + c0 / 256]), t[c], a);
                _mm512_mask_storeu_ps(out + (size_t)c * ldo, om, a);
            }
        tile += hdrb + (size_t)ng * (gsb + gbb);
    }
    if (!accmem)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            _mm512_mask_storeu_ps(out + (size_t)c * ldo, om, acc[c]);
}

/* One function per (type layout, C): the spec's fields become constants. */
#define QG512(name, G, L, P, LUT, ZP, SK)                                                                            \
    static T6 void name(const uint8_t *grp, int cols, const qact_t *a, int b0, int nb, float *out, size_t ldo,    \
                        int nrows)                                                                                \
    {                                                                                                             \
        int b = b0;                                                                                               \
        for (; b + 8 <= b0 + nb; b += 8)                                                                          \
            qg512(grp, cols, a, b, 8, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
        if (b + 4 <= b0 + nb) {                                                                                   \
            qg512(grp, cols, a, b, 4, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
            b += 4;                                                                                               \
        }                                                                                                         \
        if (b + 2 <= b0 + nb) {                                                                                   \
            qg512(grp, cols, a, b, 2, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
            b += 2;                                                                                               \
        }                                                                                                         \
        if (b < b0 + nb)                                                                                          \
            qg512(grp, cols, a, b, 1, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
    }

QG512(qg512_q4_0, 32, 4, 0, 0, 8, SK_LEGACY)
QG512(qg512_q4_1, 32, 4, 0, 0, -1, SK_LEGACY)
QG512(qg512_q5_0, 32, 4, 1, 0, 16, SK_LEGACY)
QG512(qg512_q5_1, 32, 4, 1, 0, -1, SK_LEGACY)
QG512(qg512_q8_0, 32, 8, 0, 0, 128, SK_LEGACY)
QG512(qg512_iq4_nl, 32, 4, 0, 1, 128, SK_LEGACY)
QG512(qg512_q2_k, 16, 2, 0, 0, -1, SK_Q2K)
QG512(qg512_q3_k, 16, 2, 1, 0, 4, SK_KSYM)
QG512(qg512_q4_k, 32, 4, 0, 0, -1, SK_KMIN)
QG512(qg512_q5_k, 32, 4, 1, 0, -1, SK_KMIN)
QG512(qg512_q6_k, 16, 4, 2, 0, 32, SK_KSYM)
QG512(qg512_q8_k, 32, 8, 0, 0, 128, SK_Q8K)
QG512(qg512_iq4_xs, 32, 4, 0, 1, 128, SK_KSYM)

/* ---------------- AVX2 ---------------- */

/* 32 bytes of a 64-bit plane mask (bits 32h .. 32h+31) as 0x00 / 0xFF bytes. */
AI T2 __m256i bits_to_bytes(const uint8_t *m8, int h)
{
    uint32_t x;
    memcpy(&x, m8 + 4 * h, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* Half h (rows 8h .. 8h+7) of step s. */
AI T2 __m256i step256(const uint8_t *gb, int s, int h, const int G, const int lowbits, const int planes,
                      const int lut)
{
    __m256i w;
    if (lowbits == 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(gb + 64 * (s / 2) + 32 * h));
        if (s & 1)
            v = _mm256_srli_epi16(v, 4);
        w = _mm256_and_si256(v, _mm256_set1_epi8(15));
    } else if (lowbits == 2) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(gb + 64 * (s / 4) + 32 * h));
        if (s & 3)
            v = _mm256_srli_epi16(v, 2 * (s & 3));
        w = _mm256_and_si256(v, _mm256_set1_epi8(3));
    } else {
        w = _mm256_loadu_si256((const __m256i *)(gb + 64 * s + 32 * h));
    }
    const uint8_t *pl = gb + 2 * lowbits * G;
    for (int p = 0; p < planes; p++)
        w = _mm256_or_si256(w, _mm256_and_si256(bits_to_bytes(pl + p * 2 * G + 8 * s, h),
                                                _mm256_set1_epi8((char)(1 << (lowbits + p)))));
    if (lut) {
        const __m128i t = _mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166,
                                        (char)181, (char)197, (char)217, (char)241);
        w = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(t), w);
    }
    return w;
}

AI T2 void scales256(const uint8_t *hdr, const uint8_t *gsc, int h, const int zp, const int sk, __m256 *A,
                     __m256 *B)
{
    switch (sk) {
    case SK_LEGACY:
        *A = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gsc + 16 * h)));
        if (zp < 0)
            *B = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gsc + 32 + 16 * h)));
        break;
    case SK_Q8K:
        *A = _mm256_loadu_ps((const float *)hdr + 8 * h);
        break;
    case SK_KSYM:
        *A = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hdr + 16 * h))),
                           _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(gsc + 8 * h)))));
        break;
    case SK_Q2K: {
        __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(gsc + 8 * h)));
        *A = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hdr + 16 * h))),
                           _mm256_cvtepi32_ps(_mm256_and_si256(b, _mm256_set1_epi32(15))));
        *B = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hdr + 32 + 16 * h))),
                           _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4)));
        break;
    }
    default:
        *A = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hdr + 16 * h))),
                           _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(gsc + 8 * h)))));
        *B = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hdr + 32 + 16 * h))),
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(gsc + 16 + 8 * h)))));
        break;
    }
}

/* 8 rows (half h of the group) times C <= 2 activations; acc[c] accumulates in registers. */
AI T2 void qg256(const uint8_t *grp, int cols, const qact_t *a, int b0, const int C, float *out, size_t ldo,
                 int nrows, const int G, const int lowbits, const int planes, const int lut, const int zp,
                 const int sk)
{
    const int steps = G / 4, hdrb = sk == SK_LEGACY ? 0 : sk == SK_KSYM ? 32 : 64;
    const int gsb = sk == SK_LEGACY ? (zp < 0 ? 64 : 32) : sk == SK_KMIN ? 32 : sk == SK_Q8K ? 0 : 16;
    const int gbb = 2 * lowbits * G + planes * 2 * G, zsh = zp > 0 ? ilog2(zp) : 0;
    const int sgn = zp == 128; /* u up to 255: vpmaddubsw's pairs would overflow; use u - 128 signed */
    const int ngr = a->cols / G;
    const int8_t *xq = a->q + (size_t)b0 * a->cols;
    const float *dx = a->dx + (size_t)b0 * a->nsb, *sf = (G == 16 ? a->s16 : a->s32) + (size_t)b0 * ngr;
    const int32_t *ns = (G == 16 ? a->ns16 : a->ns32) + (size_t)b0 * ngr;
    const size_t xs = (size_t)a->cols, ds = (size_t)a->nsb;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; h++) {
        if (8 * h >= nrows)
            break;
        __m256 acc[2], t[2];
        __m256i I[2];
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_setzero_ps();
        const uint8_t *tile = grp;
        for (int c0 = 0; c0 < cols; c0 += 256) {
            int n = cols - c0 < 256 ? cols - c0 : 256, ng = n / G;
            const uint8_t *hdr = tile, *gsc = tile + hdrb, *bits = gsc + (size_t)ng * gsb;
            for (int c = 0; c < C; c++)
                t[c] = _mm256_setzero_ps();
            for (int g = 0; g < ng; g++) {
                const uint8_t *gb = bits + (size_t)g * gbb;
                const int gi = c0 / G + g, xo = c0 + g * G;
                __m256 A, B = _mm256_setzero_ps();
                scales256(hdr, gsc + (size_t)g * gsb, h, zp, sk, &A, &B);
                for (int c = 0; c < C; c++)
                    I[c] = zp > 0 && !sgn ? _mm256_slli_epi32(_mm256_set1_epi32(ns[c * ngr + gi]), zsh)
                                          : _mm256_setzero_si256();
                for (int s = 0; s < steps; s++) {
                    __m256i w = step256(gb, s, h, G, lowbits, planes, lut);
                    __m256i aw = w;
                    if (sgn) {
                        w = _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));
                        aw = _mm256_abs_epi8(w);
                    }
                    for (int c = 0; c < C; c++) {
                        int32_t xv;
                        memcpy(&xv, xq + c * xs + xo + 4 * s, 4);
                        __m256i x = _mm256_set1_epi32(xv);
                        if (sgn)
                            x = _mm256_sign_epi8(x, w);
                        I[c] = _mm256_add_epi32(I[c], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, x), ones));
                    }
                }
                for (int c = 0; c < C; c++) {
                    if (sk == SK_LEGACY) {
                        __m256 ad = _mm256_mul_ps(A, _mm256_set1_ps(dx[c * ds + gi]));
                        acc[c] = _mm256_fmadd_ps(ad, _mm256_cvtepi32_ps(I[c]), acc[c]);
                        if (zp < 0)
                            acc[c] = _mm256_fmadd_ps(B, _mm256_set1_ps(sf[c * ngr + gi]), acc[c]);
                        continue;
                    }
                    t[c] = _mm256_fmadd_ps(A, _mm256_cvtepi32_ps(I[c]), t[c]);
                    if (zp < 0)
                        t[c] = _mm256_fmadd_ps(B, _mm256_set1_ps(sf[c * ngr + gi]), t[c]);
                }
            }
            if (sk != SK_LEGACY)
                for (int c = 0; c < C; c++)
                    acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx[c * ds + c0 / 256]), t[c], acc[c]);
            tile += hdrb + (size_t)ng * (gsb + gbb);
        }
        int nr = nrows - 8 * h >= 8 ? 8 : nrows - 8 * h;
        for (int c = 0; c < C; c++) {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[c]);
            memcpy(out + (size_t)c * ldo + 8 * h, tmp, (size_t)nr * sizeof(float));
        }
    }
}

#define QG256(name, G, L, P, LUT, ZP, SK)                                                                            \
    static T2 void name(const uint8_t *grp, int cols, const qact_t *a, int b0, int nb, float *out, size_t ldo,    \
                        int nrows)                                                                                \
    {                                                                                                             \
        int b = b0;                                                                                               \
        for (; b + 2 <= b0 + nb; b += 2)                                                                          \
            qg256(grp, cols, a, b, 2, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
        if (b < b0 + nb)                                                                                          \
            qg256(grp, cols, a, b, 1, out + (size_t)(b - b0) * ldo, ldo, nrows, G, L, P, LUT, ZP, SK);            \
    }

QG256(qg256_q4_0, 32, 4, 0, 0, 8, SK_LEGACY)
QG256(qg256_q4_1, 32, 4, 0, 0, -1, SK_LEGACY)
QG256(qg256_q5_0, 32, 4, 1, 0, 16, SK_LEGACY)
QG256(qg256_q5_1, 32, 4, 1, 0, -1, SK_LEGACY)
QG256(qg256_q8_0, 32, 8, 0, 0, 128, SK_LEGACY)
QG256(qg256_iq4_nl, 32, 4, 0, 1, 128, SK_LEGACY)
QG256(qg256_q2_k, 16, 2, 0, 0, -1, SK_Q2K)
QG256(qg256_q3_k, 16, 2, 1, 0, 4, SK_KSYM)
QG256(qg256_q4_k, 32, 4, 0, 0, -1, SK_KMIN)
QG256(qg256_q5_k, 32, 4, 1, 0, -1, SK_KMIN)
QG256(qg256_q6_k, 16, 4, 2, 0, 32, SK_KSYM)
QG256(qg256_q8_k, 32, 8, 0, 0, 128, SK_Q8K)
QG256(qg256_iq4_xs, 32, 4, 0, 1, 128, SK_KSYM)

/* ---------------- activations: q_act_row on vectors (the same bits as the scalar one) ---------------- */

static T6 void qact512(const float *x, int cols, int blk, int8_t *q, float *dx)
{
    for (int c0 = 0, b = 0; c0 < cols; c0 += blk, b++) {
        int n = cols - c0 < blk ? cols - c0 : blk;
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16)
            m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + c0 + i)));
        float amax = _mm512_reduce_max_ps(m), d = amax / 127.f, inv = d != 0 ? 1.f / d : 0.f;
        dx[b] = d;
        __m512 vi = _mm512_set1_ps(inv);
        for (int i = 0; i < n; i += 16)
            _mm_storeu_si128((__m128i *)(q + c0 + i),
                             _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + c0 + i), vi))));
    }
}

static T2 void qact256(const float *x, int cols, int blk, int8_t *q, float *dx)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int c0 = 0, b = 0; c0 < cols; c0 += blk, b++) {
        int n = cols - c0 < blk ? cols - c0 : blk;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < n; i += 8)
            m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + c0 + i), absm));
        float t[8], amax = 0;
        _mm256_storeu_ps(t, m);
        for (int k = 0; k < 8; k++)
            amax = t[k] > amax ? t[k] : amax;
        float d = amax / 127.f, inv = d != 0 ? 1.f / d : 0.f;
        dx[b] = d;
        __m256 vi = _mm256_set1_ps(inv);
        for (int i = 0; i < n; i += 8) {
            __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + c0 + i), vi));
            __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            _mm_storel_epi64((__m128i *)(q + c0 + i), _mm_packs_epi16(p16, p16));
        }
    }
}

typedef void (*qg_fn)(const uint8_t *grp, int cols, const qact_t *a, int b0, int nb, float *out, size_t ldo,
                      int nrows);

static qg_fn pick(int level, int type)
{
#define CASE(T, f)                                                                                                 \
    case SS_GGML_##T: return level >= 2 ? qg512_##f : qg256_##f;
    switch (type) {
    CASE(Q4_0, q4_0) CASE(Q4_1, q4_1) CASE(Q5_0, q5_0) CASE(Q5_1, q5_1) CASE(Q8_0, q8_0) CASE(IQ4_NL, iq4_nl)
    CASE(Q2_K, q2_k) CASE(Q3_K, q3_k) CASE(Q4_K, q4_k) CASE(Q5_K, q5_k) CASE(Q6_K, q6_k) CASE(Q8_K, q8_k)
    CASE(IQ4_XS, iq4_xs)
    default: return NULL;
    }
#undef CASE
}
#endif

void qgemm_run(int level, const pspec_t *p, const uint8_t *grp, int cols, const qact_t *a, int b0, int nb,
               float *out, size_t ldo, int nrows)
{
#if defined(__x86_64__)
    qg_fn f = level >= 1 ? pick(level, p->type) : NULL;
    if (f) {
        f(grp, cols, a, b0, nb, out, ldo, nrows);
        return;
    }
#else
    (void)level;
#endif
    qgemm_scalar(p, grp, cols, a, b0, nb, out, ldo, nrows);
}

void q_act_row_isa(const float *x, int cols, int blk, int8_t *q, float *dx, int32_t *ns16, int32_t *ns32, float *s16,
                   float *s32)
{
#if defined(__x86_64__)
    if (k_level >= 1) { /* rows are multiples of 32 */
        if (k_level >= 2)
            qact512(x, cols, blk, q, dx);
        else
            qact256(x, cols, blk, q, dx);
        q_act_sums(q, cols, blk, dx, ns16, ns32, s16, s32);
        return;
    }
#endif
    q_act_row(x, cols, blk, q, dx, ns16, ns32, s16, s32);
}
