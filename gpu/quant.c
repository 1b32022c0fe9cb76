/*
 * quant.c — the ggml tensor types as GGUF files store them: the type table (block sizes),
 * fp16/bf16 conversion, the reference dequantizers (the scalar definition of every format,
 * float operations in the order the format defines them), our own quantizers (writing
 * valid blocks of every type from f32 values: tools/mkgguf, tests), and the "unpacked"
 * form the kernels work on (kernels.c, qgemm.c): every quantized block becomes unsigned
 * bytes u with a float scale A and offset B per 16 values, w = A * u + B.
 *
 * Layouts (one block; multi-byte fields little-endian, d/dmin fp16):
 *   Q4_0   32: d, qs[16]            w = d * (q - 8),  q = nibble; element i<16 low nibble of
 *                                   qs[i], element i+16 its high nibble (same for Q4_1, Q5_*,
 *                                   IQ4_NL)
 *   Q4_1   32: d, m, qs[16]         w = d * q + m
 *   Q5_0   32: d, qh[4], qs[16]     q = nibble | bit i of qh << 4,  w = d * (q - 16)
 *   Q5_1   32: d, m, qh[4], qs[16]  w = d * q + m
 *   Q8_0   32: d, qs[32] (int8)     w = d * q
 *   Q2_K  256: scales[16], qs[64], d, dmin     16 groups of 16: sc = low 4 bits, m = high 4
 *                                   bits, w = d*sc * q - dmin*m, q 2 bits
 *   Q3_K  256: hmask[32], qs[64], scales[12], d   16 groups of 16, 6-bit scales (- 32),
 *                                   w = d*sc * (q - 4), q = 2 low bits | high bit << 2
 *   Q4_K  256: d, dmin, scales[12], qs[128]       8 groups of 32, 6-bit sc and m
 *   Q5_K  256: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K  256: ql[128], qh[64], scales[16] (int8), d    16 groups of 16, w = d*sc * (q - 32)
 *   Q8_K  256: d (f32), qs[256] (int8), bsums[16] (int16)
 *   IQ4_NL 32: d, qs[16]            w = d * kvalues[nibble]
 *   IQ4_XS 256: d, scales_h (u16), scales_l[4], qs[128]   8 groups of 32, 6-bit scales - 32
 * The element order inside a block follows ggml's dequantize_row_* (see unpack_* below).
 *
 * The reference dequantizers must give the format's values bit for bit, so this file is built
 * with -ffp-contract=off (CMakeLists.txt): no multiply-add is fused.
 */
#include "llm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- type table ---------------- */

typedef struct tinfo {
    int type, elems, bytes;
    const char *name;
} tinfo_t;

static const tinfo_t g_types[] = {
    {SS_GGML_F32, 1, 4, "f32"},       {SS_GGML_F16, 1, 2, "f16"},       {SS_GGML_BF16, 1, 2, "bf16"},
    {SS_GGML_Q4_0, 32, 18, "q4_0"},   {SS_GGML_Q4_1, 32, 20, "q4_1"},   {SS_GGML_Q5_0, 32, 22, "q5_0"},
    {SS_GGML_Q5_1, 32, 24, "q5_1"},   {SS_GGML_Q8_0, 32, 34, "q8_0"},   {SS_GGML_Q2_K, 256, 84, "q2_k"},
    {SS_GGML_Q3_K, 256, 110, "q3_k"}, {SS_GGML_Q4_K, 256, 144, "q4_k"}, {SS_GGML_Q5_K, 256, 176, "q5_k"},
    {SS_GGML_Q6_K, 256, 210, "q6_k"}, {SS_GGML_Q8_K, 256, 292, "q8_k"}, {SS_GGML_IQ4_NL, 32, 18, "iq4_nl"},
    {SS_GGML_IQ4_XS, 256, 136, "iq4_xs"},
};

static const tinfo_t *tinfo(int type)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(g_types); i++)
        if (g_types[i].type == type)
            return &g_types[i];
    return NULL;
}

int ss_ggml_block_elems(int type)
{
    const tinfo_t *t = tinfo(type);
    return t ? t->elems : 0;
}

size_t ss_ggml_block_bytes(int type)
{
    const tinfo_t *t = tinfo(type);
    return t ? (size_t)t->bytes : 0;
}

const char *ss_ggml_type_name(int type)
{
    const tinfo_t *t = tinfo(type);
    return t ? t->name : "?";
}

int ss_ggml_type_parse(const char *name)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(g_types); i++)
        if (!strcasecmp(name, g_types[i].name))
            return g_types[i].type;
    return -1;
}

const char *ss_ggml_type_names(void)
{
    return "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, iq4_nl, iq4_xs";
}

size_t ss_ggml_row_bytes(int type, int64_t n)
{
    int be = ss_ggml_block_elems(type);
    return be ? (size_t)(n / be) * ss_ggml_block_bytes(type) : 0;
}

/* ---------------- fp16 / bf16 ---------------- */

float ss_fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ss_f32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is correct rounding */
    return (uint16_t)(sign | h);
}

float ss_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ss_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return ss_fp16_to_f32(h);
}

static void f2h(uint8_t *p, float f)
{
    uint16_t h = ss_f32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* IQ4_NL / IQ4_XS: the 16 non-linear levels */
const int8_t ss_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* ---------------- the packed 6-bit scales of Q4_K / Q5_K and Q3_K ---------------- */

/* Q4_K/Q5_K: scale and min of group j (0..7) from the 12 scale bytes. */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void k4_pack(const int *sc, const int *m, uint8_t *q)
{
    memset(q, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] |= (uint8_t)(sc[j] & 63);
            q[j + 4] |= (uint8_t)(m[j] & 63);
        } else {
            q[j + 4] |= (uint8_t)((sc[j] & 15) | ((m[j] & 15) << 4));
            q[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            q[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
    }
}

/* Q3_K: the 16 6-bit scales (stored + 32). Group j's low 4 bits are in byte j % 8 (high nibble
 * for j >= 8), its high 2 bits in byte 8 + j % 4 at bit 2 * (j / 4). */
static int k3_scale(int j, const uint8_t *q)
{
    int lo = (q[j % 8] >> (4 * (j / 8))) & 15, hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

static void k3_pack(const int *s, uint8_t *q)
{
    memset(q, 0, 12);
    for (int j = 0; j < 16; j++) {
        int l = s[j] + 32;
        q[j % 8] |= (uint8_t)((l & 15) << (4 * (j / 8)));
        q[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
}

/* ---------------- reference dequantization (the formats' definitions) ---------------- */

static void deq_block(int type, const uint8_t *s, float *y)
{
    switch (type) {
    case SS_GGML_Q4_0: {
        float d = h2f(s);
        for (int j = 0; j < 16; j++) {
            int x0 = (s[2 + j] & 0x0F) - 8, x1 = (s[2 + j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
        break;
    }
    case SS_GGML_Q4_1: {
        float d = h2f(s), m = h2f(s + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(s[4 + j] & 0x0F) * d + m;
            y[j + 16] = (float)(s[4 + j] >> 4) * d + m;
        }
        break;
    }
    case SS_GGML_Q5_0:
    case SS_GGML_Q5_1: {
        int one = type == SS_GGML_Q5_1;
        float d = h2f(s), m = one ? h2f(s + 2) : 0.f;
        uint32_t qh;
        memcpy(&qh, s + 2 + 2 * one, 4);
        const uint8_t *qs = s + 6 + 2 * one;
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
            int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            if (one) {
                y[j] = (float)x0 * d + m;
                y[j + 16] = (float)x1 * d + m;
            } else {
                y[j] = (float)(x0 - 16) * d;
                y[j + 16] = (float)(x1 - 16) * d;
            }
        }
        break;
    }
    case SS_GGML_Q8_0: {
        float d = h2f(s);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(int8_t)s[2 + j] * d;
        break;
    }
    case SS_GGML_Q2_K: {
        const uint8_t *sc = s, *q = s + 16;
        float d = h2f(s + 80), mn = h2f(s + 82);
        for (int n = 0, is = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int h = 0; h < 2; h++, is++) {
                    float dl = d * (float)(sc[is] & 0xF), ml = mn * (float)(sc[is] >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[l + 16 * h] >> shift) & 3) - ml;
                }
        break;
    }
    case SS_GGML_Q3_K: {
        const uint8_t *hm = s, *q = s + 32, *scb = s + 96;
        float d = h2f(s + 108);
        uint8_t m = 1;
        for (int n = 0, is = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int h = 0; h < 2; h++, is++) {
                    float dl = d * (float)k3_scale(is, scb);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)(((q[l + 16 * h] >> shift) & 3) - ((hm[l + 16 * h] & m) ? 0 : 4));
                }
        break;
    }
    case SS_GGML_Q4_K:
    case SS_GGML_Q5_K: {
        int five = type == SS_GGML_Q5_K;
        float d = h2f(s), mn = h2f(s + 2);
        const uint8_t *scb = s + 4, *qh = s + 16, *q = s + 16 + 32 * five;
        for (int j = 0; j < 4; j++, q += 32) {
            int sc, m;
            k4_scale_min(2 * j, scb, &sc, &m);
            float d1 = d * (float)sc, m1 = mn * (float)m;
            k4_scale_min(2 * j + 1, scb, &sc, &m);
            float d2 = d * (float)sc, m2 = mn * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((q[l] & 0xF) + (five && (qh[l] >> (2 * j)) & 1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((q[l] >> 4) + (five && (qh[l] >> (2 * j + 1)) & 1 ? 16 : 0)) - m2;
        }
        break;
    }
    case SS_GGML_Q6_K: {
        const uint8_t *ql = s, *qh = s + 128;
        const int8_t *sc = (const int8_t *)(s + 192);
        float d = h2f(s + 208);
        for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8, y += 128)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        break;
    }
    case SS_GGML_Q8_K: {
        float d;
        memcpy(&d, s, 4);
        for (int j = 0; j < 256; j++)
            y[j] = d * (float)(int8_t)s[4 + j];
        break;
    }
    case SS_GGML_IQ4_NL: {
        float d = h2f(s);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)ss_iq4_levels[s[2 + j] & 0xF];
            y[j + 16] = d * (float)ss_iq4_levels[s[2 + j] >> 4];
        }
        break;
    }
    case SS_GGML_IQ4_XS: {
        float d = h2f(s);
        uint16_t sh;
        memcpy(&sh, s + 2, 2);
        const uint8_t *sl = s + 4, *qs = s + 8;
        for (int ib = 0; ib < 8; ib++, qs += 16, y += 32) {
            int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
            float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)ss_iq4_levels[qs[j] & 0xF];
                y[j + 16] = dl * (float)ss_iq4_levels[qs[j] >> 4];
            }
        }
        break;
    }
    default:
        break;
    }
}

void ss_ggml_to_f32(int type, const void *src, float *dst, int64_t n)
{
    const uint8_t *s = src;
    uint16_t h;
    switch (type) {
    case SS_GGML_F32:
        memcpy(dst, src, (size_t)n * 4);
        return;
    case SS_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ss_fp16_to_f32(h);
        }
        return;
    case SS_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = ss_bf16_to_f32(h);
        }
        return;
    default:
        break;
    }
    const tinfo_t *t = tinfo(type);
    if (!t) {
        memset(dst, 0, (size_t)n * 4);
        return;
    }
    for (int64_t b = 0; b < n / t->elems; b++)
        deq_block(type, s + (size_t)b * t->bytes, dst + b * t->elems);
}

/* ---------------- quantizers (ours): f32 values to valid blocks ---------------- */

/* Round to nearest, ties to even, without a libm call: adding 1.5 * 2^23 leaves the rounded
 * integer in the mantissa (|x| < 2^22; anything larger is far outside every level range). */
static int nearest(float x)
{
    if (!(fabsf(x) < 4194304.f))
        return x > 0 ? 4194304 : -4194304;
    float t = x + 12582912.f; /* rounded to float (SSE arithmetic, no excess precision) */
    return (int)(t - 12582912.f);
}
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static float minf(float a, float b) { return a < b ? a : b; }
static float maxf(float a, float b) { return a > b ? a : b; }

/* Signed element of largest magnitude. */
static float amax_signed(const float *x, int n)
{
    float mx = 0, am = 0;
    for (int i = 0; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        if (a > am) {
            am = a;
            mx = x[i];
        }
    }
    return mx;
}

/* Symmetric levels in [-nneg, npos]: picks the scale among a few candidates around
 * max / -nneg that minimises the squared error; writes L[i] + nneg (unsigned) and returns d. */
static float sym_quant(const float *x, int n, int nneg, int npos, uint8_t *L)
{
    float mx = amax_signed(x, n);
    if (mx == 0) {
        memset(L, nneg, (size_t)n);
        return 0;
    }
    float best_d = mx / (float)-nneg, best_err = INFINITY;
    for (int k = -2; k <= 2; k++) {
        float d = mx / ((float)-nneg + 0.1f * (float)k);
        if (!(fabsf(d) > 0))
            continue;
        float inv = 1.f / d, err = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(x[i] * inv), -nneg, npos);
            float e = x[i] - d * (float)l;
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_d = d;
        }
    }
    float inv = 1.f / best_d;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)(clampi(nearest(x[i] * inv), -nneg, npos) + nneg);
    return best_d;
}

/* Asymmetric: w = scale * L - mn with L in [0, nmax], mn >= 0 (ggml's K-quant convention).
 * Three scale candidates, each refined once by least squares over its levels. */
static void asym_quant(const float *x, int n, int nmax, float *scale, float *mn)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = minf(lo, x[i]);
        hi = maxf(hi, x[i]);
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        *scale = 0;
        *mn = -lo;
        return;
    }
    float best_s = (hi - lo) / (float)nmax, best_m = -lo, best_err = INFINITY;
    for (int k = -1; k <= 1; k++) {
        float s = (hi - lo) / ((float)nmax + 0.3f * (float)k), m = -lo, inv = 1.f / s;
        float sl = 0, sll = 0, sx = 0, slx = 0; /* least squares for (s, m) given the levels */
        for (int i = 0; i < n; i++) {
            float l = (float)clampi(nearest((x[i] + m) * inv), 0, nmax);
            sl += l;
            sll += l * l;
            sx += x[i];
            slx += l * x[i];
        }
        float det = (float)n * sll - sl * sl;
        if (det > 0) {
            float ns = ((float)n * slx - sl * sx) / det, nm = (sl * slx - sll * sx) / det; /* x ~ ns*l - nm */
            if (ns > 0 && nm >= 0) {
                s = ns;
                m = nm;
                inv = 1.f / s;
            }
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest((x[i] + m) * inv), 0, nmax);
            float e = x[i] - (s * (float)l - m);
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_m = m;
        }
    }
    *scale = best_s;
    *mn = best_m;
}

/* Index of the IQ4 level nearest to v. */
static int iq4_index(float v)
{
    int best = 0;
    float be = INFINITY;
    for (int k = 0; k < 16; k++) {
        float e = fabsf(v - (float)ss_iq4_levels[k]);
        if (e < be) {
            be = e;
            best = k;
        }
    }
    return best;
}

/* Best IQ4 scale of n values (searched around max / -127); writes level indices. */
static float iq4_quant(const float *x, int n, uint8_t *idx)
{
    float mx = amax_signed(x, n), best_d = 0, best_err = INFINITY;
    if (mx == 0) {
        memset(idx, 8, (size_t)n); /* level 1: the nearest to 0 */
        return 0;
    }
    for (int k = -6; k <= 6; k++) {
        float d = mx / (-127.f + 4.f * (float)k), err = 0;
        for (int i = 0; i < n; i++) {
            float e = x[i] - d * (float)ss_iq4_levels[iq4_index(x[i] / d)];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_d = d;
        }
    }
    for (int i = 0; i < n; i++)
        idx[i] = (uint8_t)iq4_index(x[i] / best_d);
    return best_d;
}

/* Packs 32 nibbles (element i < 16 low, i + 16 high) into 16 bytes. */
static void pack_nibbles32(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
}

static void quant_legacy(int type, const float *x, uint8_t *d)
{
    uint8_t L[32];
    switch (type) {
    case SS_GGML_Q4_0:
    case SS_GGML_Q5_0: {
        int five = type == SS_GGML_Q5_0, half = five ? 16 : 8;
        float sc = sym_quant(x, 32, half, half - 1, L);
        f2h(d, sc);
        /* levels again against the stored (fp16) scale */
        float ds = h2f(d), inv = ds != 0 ? 1.f / ds : 0.f;
        for (int i = 0; i < 32; i++)
            L[i] = (uint8_t)(clampi(nearest(x[i] * inv), -half, half - 1) + half);
        uint8_t *qs = d + 2;
        if (five) {
            uint32_t qh = 0;
            for (int i = 0; i < 32; i++)
                qh |= (uint32_t)((L[i] >> 4) & 1) << i;
            memcpy(d + 2, &qh, 4);
            qs = d + 6;
        }
        pack_nibbles32(L, qs);
        break;
    }
    case SS_GGML_Q4_1:
    case SS_GGML_Q5_1: {
        int five = type == SS_GGML_Q5_1, nmax = five ? 31 : 15;
        float lo = x[0], hi = x[0];
        for (int i = 1; i < 32; i++) {
            lo = minf(lo, x[i]);
            hi = maxf(hi, x[i]);
        }
        f2h(d, (hi - lo) / (float)nmax);
        f2h(d + 2, lo);
        float ds = h2f(d), ms = h2f(d + 2), inv = ds != 0 ? 1.f / ds : 0.f;
        for (int i = 0; i < 32; i++)
            L[i] = (uint8_t)clampi(nearest((x[i] - ms) * inv), 0, nmax);
        uint8_t *qs = d + 4;
        if (five) {
            uint32_t qh = 0;
            for (int i = 0; i < 32; i++)
                qh |= (uint32_t)((L[i] >> 4) & 1) << i;
            memcpy(d + 4, &qh, 4);
            qs = d + 8;
        }
        pack_nibbles32(L, qs);
        break;
    }
    case SS_GGML_Q8_0: {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = maxf(amax, fabsf(x[j]));
        float sc = amax / 127.f, inv = sc ? 1.f / sc : 0.f;
        f2h(d, sc);
        for (int j = 0; j < 32; j++)
            d[2 + j] = (uint8_t)(int8_t)clampi(nearest(x[j] * inv), -127, 127);
        break;
    }
    case SS_GGML_IQ4_NL: {
        float sc = iq4_quant(x, 32, L);
        f2h(d, sc);
        float ds = h2f(d);
        if (ds != 0)
            for (int i = 0; i < 32; i++)
                L[i] = (uint8_t)iq4_index(x[i] / ds);
        pack_nibbles32(L, d + 2);
        break;
    }
    default:
        break;
    }
}

/* Q2_K / Q4_K / Q5_K: groups with a scale and a min, both quantized against the block's
 * d and dmin (4 bits for Q2_K, 6 bits for the others). */
static void quant_kmin(int type, const float *x, uint8_t *d)
{
    int gs = type == SS_GGML_Q2_K ? 16 : 32, ng = 256 / gs;
    int nmax = type == SS_GGML_Q2_K ? 3 : type == SS_GGML_Q4_K ? 15 : 31;
    int smax = type == SS_GGML_Q2_K ? 15 : 63;
    float scale[16], mn[16], ms = 0, mm = 0;
    for (int g = 0; g < ng; g++) {
        asym_quant(x + g * gs, gs, nmax, &scale[g], &mn[g]);
        ms = maxf(ms, scale[g]);
        mm = maxf(mm, mn[g]);
    }
    float dd = ms / (float)smax, dm = mm / (float)smax;
    int isc[16], im[16];
    uint8_t *pd = type == SS_GGML_Q2_K ? d + 80 : d;
    f2h(pd, dd);
    f2h(pd + 2, dm);
    float fd = h2f(pd), fm = h2f(pd + 2);
    for (int g = 0; g < ng; g++) {
        isc[g] = fd > 0 ? clampi(nearest(scale[g] / fd), 0, smax) : 0;
        im[g] = fm > 0 ? clampi(nearest(mn[g] / fm), 0, smax) : 0;
    }
    uint8_t L[256];
    for (int i = 0; i < 256; i++) {
        int g = i / gs;
        float dl = fd * (float)isc[g], ml = fm * (float)im[g];
        L[i] = (uint8_t)(dl > 0 ? clampi(nearest((x[i] + ml) * (1.f / dl)), 0, nmax) : 0);
    }
    if (type == SS_GGML_Q2_K) {
        for (int g = 0; g < 16; g++)
            d[g] = (uint8_t)(isc[g] | (im[g] << 4));
        uint8_t *q = d + 16;
        memset(q, 0, 64);
        for (int i = 0; i < 256; i++) { /* element i: n = i/128, shift pair j, half h, l */
            int n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16;
            q[32 * n + 16 * h + l] |= (uint8_t)(L[i] << (2 * j));
        }
        return;
    }
    k4_pack(isc, im, d + 4);
    int five = type == SS_GGML_Q5_K;
    uint8_t *qh = d + 16, *qs = d + 16 + 32 * five;
    if (five)
        memset(qh, 0, 32);
    for (int i = 0; i < 256; i++) { /* element i: 64-chunk j, low/high nibble, l */
        int j = i / 64, hi = (i % 64) / 32, l = i % 32;
        if (hi)
            qs[32 * j + l] = (uint8_t)((qs[32 * j + l] & 0x0F) | ((L[i] & 15) << 4));
        else
            qs[32 * j + l] = (uint8_t)(L[i] & 15);
        if (five)
            qh[l] |= (uint8_t)(((L[i] >> 4) & 1) << (2 * j + hi));
    }
}

/* Q3_K / Q6_K: symmetric groups of 16 with signed scales quantized against d. */
static void quant_ksym(int type, const float *x, uint8_t *d)
{
    int six = type == SS_GGML_Q6_K, half = six ? 32 : 4, smax = six ? 127 : 31;
    float scale[16], ms = 0;
    uint8_t L[256];
    for (int g = 0; g < 16; g++) {
        scale[g] = sym_quant(x + 16 * g, 16, half, half - 1, L + 16 * g);
        if (fabsf(scale[g]) > fabsf(ms))
            ms = scale[g];
    }
    float dd = ms / (float)-(smax + 1); /* the largest scale maps to -(smax + 1) */
    int isc[16];
    uint8_t *pd = six ? d + 208 : d + 108;
    f2h(pd, dd);
    float fd = h2f(pd);
    for (int g = 0; g < 16; g++)
        isc[g] = fd != 0 ? clampi(nearest(scale[g] / fd), -(smax + 1), smax) : 0;
    for (int i = 0; i < 256; i++) {
        float dl = fd * (float)isc[i / 16];
        L[i] = (uint8_t)((dl != 0 ? clampi(nearest(x[i] / dl), -half, half - 1) : 0) + half);
    }
    if (six) {
        uint8_t *ql = d, *qh = d + 128;
        memset(d, 0, 192);
        for (int i = 0; i < 256; i++) { /* element i: n = i/128, quarter q, l */
            int n = i / 128, q = (i % 128) / 32, l = i % 32;
            ql[64 * n + 32 * (q & 1) + l] |= (uint8_t)((L[i] & 15) << (4 * (q >> 1)));
            qh[32 * n + l] |= (uint8_t)((L[i] >> 4) << (2 * q));
        }
        for (int g = 0; g < 16; g++)
            d[192 + g] = (uint8_t)(int8_t)isc[g];
        return;
    }
    uint8_t *hm = d, *q = d + 32;
    memset(d, 0, 96);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16;
        q[32 * n + 16 * h + l] |= (uint8_t)((L[i] & 3) << (2 * j));
        if (L[i] & 4)
            hm[16 * h + l] |= (uint8_t)(1 << (4 * n + j));
    }
    k3_pack(isc, d + 96);
}

static void quant_iq4xs(const float *x, uint8_t *d)
{
    float scale[8], ms = 0;
    uint8_t L[256];
    for (int g = 0; g < 8; g++) {
        scale[g] = iq4_quant(x + 32 * g, 32, L + 32 * g);
        if (fabsf(scale[g]) > fabsf(ms))
            ms = scale[g];
    }
    f2h(d, ms / -32.f);
    float fd = h2f(d);
    uint16_t sh = 0;
    uint8_t *sl = d + 4, *qs = d + 8;
    memset(sl, 0, 4);
    for (int g = 0; g < 8; g++) {
        int ls = fd != 0 ? clampi(nearest(scale[g] / fd), -32, 31) + 32 : 32;
        sl[g / 2] |= (uint8_t)((ls & 15) << (4 * (g % 2)));
        sh |= (uint16_t)((ls >> 4) << (2 * g));
        float dl = fd * (float)(ls - 32);
        if (dl != 0)
            for (int i = 0; i < 32; i++)
                L[32 * g + i] = (uint8_t)iq4_index(x[32 * g + i] / dl);
        pack_nibbles32(L + 32 * g, qs + 16 * g);
    }
    memcpy(d + 2, &sh, 2);
}

static void quant_q8k(const float *x, uint8_t *d)
{
    float amax = 0;
    for (int j = 0; j < 256; j++)
        amax = maxf(amax, fabsf(x[j]));
    float sc = amax / 127.f, inv = sc ? 1.f / sc : 0.f;
    memcpy(d, &sc, 4);
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int q = clampi(nearest(x[16 * g + j] * inv), -127, 127);
            d[4 + 16 * g + j] = (uint8_t)(int8_t)q;
            sum += q;
        }
        int16_t s16 = (int16_t)sum;
        memcpy(d + 260 + 2 * g, &s16, 2);
    }
}

void ss_ggml_from_f32(int type, const float *src, void *dst, int64_t n)
{
    uint8_t *d = dst;
    switch (type) {
    case SS_GGML_F32:
        memcpy(dst, src, (size_t)n * 4);
        return;
    case SS_GGML_F16:
        for (int64_t i = 0; i < n; i++)
            f2h(d + 2 * i, src[i]);
        return;
    case SS_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = ss_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return;
    default:
        break;
    }
    const tinfo_t *t = tinfo(type);
    if (!t) {
        return;
    }
    for (int64_t b = 0; b < n / t->elems; b++, src += t->elems, d += t->bytes) {
        switch (type) {
        case SS_GGML_Q2_K: case SS_GGML_Q4_K: case SS_GGML_Q5_K: quant_kmin(type, src, d); break;
        case SS_GGML_Q3_K: case SS_GGML_Q6_K: quant_ksym(type, src, d); break;
        case SS_GGML_IQ4_XS: quant_iq4xs(src, d); break;
        case SS_GGML_Q8_K: quant_q8k(src, d); break;
        default: quant_legacy(type, src, d); break;
        }
    }
}

/* ---------------- the unpacked form (kernels) ----------------
 * One block to bytes u[elems] in element order, with A[elems/16] and B[elems/16]:
 * w[i] = A[i/16] * u[i] + B[i/16]. Zero-point types have B = -zp * A exactly. */

static void nib32(const uint8_t *qs, uint8_t *u)
{
    for (int j = 0; j < 16; j++) {
        u[j] = qs[j] & 15;
        u[j + 16] = qs[j] >> 4;
    }
}

static void up_q4_0(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d = h2f(s);
    nib32(s + 2, u);
    A[0] = A[1] = d;
    B[0] = B[1] = -8.f * d;
}

static void up_q4_1(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    nib32(s + 4, u);
    A[0] = A[1] = h2f(s);
    B[0] = B[1] = h2f(s + 2);
}

static void q5_high(const uint8_t *qh4, uint8_t *u)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int i = 0; i < 32; i++)
        u[i] |= (uint8_t)(((qh >> i) & 1) << 4);
}

static void up_q5_0(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d = h2f(s);
    nib32(s + 6, u);
    q5_high(s + 2, u);
    A[0] = A[1] = d;
    B[0] = B[1] = -16.f * d;
}

static void up_q5_1(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    nib32(s + 8, u);
    q5_high(s + 4, u);
    A[0] = A[1] = h2f(s);
    B[0] = B[1] = h2f(s + 2);
}

static void up_q8_0(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d = h2f(s);
    for (int i = 0; i < 32; i++)
        u[i] = (uint8_t)(s[2 + i] ^ 0x80);
    A[0] = A[1] = d;
    B[0] = B[1] = -128.f * d;
}

static void up_iq4_nl(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d = h2f(s);
    nib32(s + 2, u);
    for (int i = 0; i < 32; i++)
        u[i] = (uint8_t)(ss_iq4_levels[u[i]] + 128);
    A[0] = A[1] = d;
    B[0] = B[1] = -128.f * d;
}

static void up_q2_k(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    const uint8_t *sc = s, *q = s + 16;
    float d = h2f(s + 80), mn = h2f(s + 82);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16;
        u[i] = (q[32 * n + 16 * h + l] >> (2 * j)) & 3;
    }
    for (int g = 0; g < 16; g++) {
        A[g] = d * (float)(sc[g] & 0xF);
        B[g] = -(mn * (float)(sc[g] >> 4));
    }
}

static void up_q3_k(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    const uint8_t *hm = s, *q = s + 32;
    float d = h2f(s + 108);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16;
        u[i] = (uint8_t)(((q[32 * n + 16 * h + l] >> (2 * j)) & 3) | (((hm[16 * h + l] >> (4 * n + j)) & 1) << 2));
    }
    for (int g = 0; g < 16; g++) {
        A[g] = d * (float)k3_scale(g, s + 96);
        B[g] = -4.f * A[g];
    }
}

static void up_q45_k(const uint8_t *s, uint8_t *u, float *A, float *B, int five)
{
    float d = h2f(s), mn = h2f(s + 2);
    const uint8_t *qh = s + 16, *qs = s + 16 + 32 * five;
    for (int i = 0; i < 256; i++) {
        int j = i / 64, hi = (i % 64) / 32, l = i % 32;
        u[i] = (uint8_t)((qs[32 * j + l] >> (4 * hi)) & 15);
        if (five)
            u[i] |= (uint8_t)(((qh[l] >> (2 * j + hi)) & 1) << 4);
    }
    for (int g = 0; g < 8; g++) {
        int sc, m;
        k4_scale_min(g, s + 4, &sc, &m);
        A[2 * g] = A[2 * g + 1] = d * (float)sc;
        B[2 * g] = B[2 * g + 1] = -(mn * (float)m);
    }
}

static void up_q4_k(const uint8_t *s, uint8_t *u, float *A, float *B) { up_q45_k(s, u, A, B, 0); }
static void up_q5_k(const uint8_t *s, uint8_t *u, float *A, float *B) { up_q45_k(s, u, A, B, 1); }

static void up_q6_k(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    const uint8_t *ql = s, *qh = s + 128;
    float d = h2f(s + 208);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, q = (i % 128) / 32, l = i % 32;
        u[i] = (uint8_t)(((ql[64 * n + 32 * (q & 1) + l] >> (4 * (q >> 1))) & 15) | (((qh[32 * n + l] >> (2 * q)) & 3) << 4));
    }
    for (int g = 0; g < 16; g++) {
        A[g] = d * (float)(int8_t)s[192 + g];
        B[g] = -32.f * A[g];
    }
}

static void up_q8_k(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d;
    memcpy(&d, s, 4);
    for (int i = 0; i < 256; i++)
        u[i] = (uint8_t)(s[4 + i] ^ 0x80);
    for (int g = 0; g < 16; g++) {
        A[g] = d;
        B[g] = -128.f * d;
    }
}

static void up_iq4_xs(const uint8_t *s, uint8_t *u, float *A, float *B)
{
    float d = h2f(s);
    uint16_t sh;
    memcpy(&sh, s + 2, 2);
    for (int g = 0; g < 8; g++) {
        nib32(s + 8 + 16 * g, u + 32 * g);
        int ls = ((s[4 + g / 2] >> (4 * (g % 2))) & 0xF) | (((sh >> (2 * g)) & 3) << 4);
        A[2 * g] = A[2 * g + 1] = d * (float)(ls - 32);
        B[2 * g] = B[2 * g + 1] = -128.f * A[2 * g];
    }
    for (int i = 0; i < 256; i++)
        u[i] = (uint8_t)(ss_iq4_levels[u[i]] + 128);
}

static const qtype_t g_qtypes[] = {
    {SS_GGML_Q4_0, 32, 18, 8, up_q4_0},     {SS_GGML_Q4_1, 32, 20, -1, up_q4_1},
    {SS_GGML_Q5_0, 32, 22, 16, up_q5_0},    {SS_GGML_Q5_1, 32, 24, -1, up_q5_1},
    {SS_GGML_Q8_0, 32, 34, 128, up_q8_0},   {SS_GGML_IQ4_NL, 32, 18, 128, up_iq4_nl},
    {SS_GGML_Q2_K, 256, 84, -1, up_q2_k},   {SS_GGML_Q3_K, 256, 110, 4, up_q3_k},
    {SS_GGML_Q4_K, 256, 144, -1, up_q4_k},  {SS_GGML_Q5_K, 256, 176, -1, up_q5_k},
    {SS_GGML_Q6_K, 256, 210, 32, up_q6_k},  {SS_GGML_Q8_K, 256, 292, 128, up_q8_k},
    {SS_GGML_IQ4_XS, 256, 136, 128, up_iq4_xs},
};

const qtype_t *q_type(int type)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(g_qtypes); i++)
        if (g_qtypes[i].type == type)
            return &g_qtypes[i];
    return NULL;
}
