/*
 * cuda_quant.cuh — device dequantization of the GGUF block types that stay in their file
 * layout on the GPU (every quantized type but Q8_0, which ss_cuda_weight_upload repacks):
 * Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL (blocks of 32) and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
 * IQ4_XS (blocks of 256). dq8 reads 8 consecutive weights of a row (one scale), with the
 * float operations of the reference dequantizers (gpu/quant.c) made explicit (__fmul_rn etc.:
 * nvcc would otherwise fuse them), so the device values equal ss_ggml_to_f32's bit for bit.
 * Used by the embedding gather, the GEMV and the bf16 conversion for the tensor-core GEMMs
 * (cuda_kernels.cu). Layouts: gpu/quant.c.
 */
#ifndef SS_CUDA_QUANT_CUH
#define SS_CUDA_QUANT_CUH

#include "cuda_int.cuh"

__constant__ static const signed char k_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                          1,    13,   25,  38,  53,  69,  89,  113};

/* Weights and bytes per block of a block type; 0 for the others. */
static __host__ __device__ __forceinline__ int blk_elems(int type)
{
    switch (type) {
    case SS_WT_Q4_0: case SS_WT_Q4_1: case SS_WT_Q5_0: case SS_WT_Q5_1: case SS_WT_IQ4_NL: return 32;
    case SS_WT_Q2_K: case SS_WT_Q3_K: case SS_WT_Q4_K: case SS_WT_Q5_K: case SS_WT_Q6_K: case SS_WT_Q8_K:
    case SS_WT_IQ4_XS: return 256;
    default: return 0;
    }
}

static __host__ __device__ __forceinline__ int blk_bytes(int type)
{
    switch (type) {
    case SS_WT_Q4_0: case SS_WT_IQ4_NL: return 18;
    case SS_WT_Q4_1: return 20;
    case SS_WT_Q5_0: return 22;
    case SS_WT_Q5_1: return 24;
    case SS_WT_Q2_K: return 84;
    case SS_WT_Q3_K: return 110;
    case SS_WT_Q4_K: return 144;
    case SS_WT_Q5_K: return 176;
    case SS_WT_Q6_K: return 210;
    case SS_WT_Q8_K: return 292;
    case SS_WT_IQ4_XS: return 136;
    default: return 0;
    }
}

static __device__ __forceinline__ float dh(const uint8_t *p)
{
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

/* Weights k0 .. k0+7 of a row (k0 a multiple of 8) into v. */
static __device__ __forceinline__ void dq8(int type, const uint8_t *row, int k0, float *v)
{
    const int be = blk_elems(type);
    const uint8_t *b = row + (size_t)(k0 / be) * blk_bytes(type);
    const int e0 = k0 % be;
    switch (type) {
    case SS_WT_Q4_0: case SS_WT_Q4_1: case SS_WT_Q5_0: case SS_WT_Q5_1: case SS_WT_IQ4_NL: {
        const int m1 = type == SS_WT_Q4_1 || type == SS_WT_Q5_1, five = type == SS_WT_Q5_0 || type == SS_WT_Q5_1;
        const float d = dh(b), m = m1 ? dh(b + 2) : 0.f;
        const uint8_t *qh = b + 2 + 2 * m1, *qs = qh + 4 * five;
        uint32_t h = five ? (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int e = e0 + i, q = (qs[e % 16] >> (4 * (e / 16))) & 15;
            if (five)
                q |= (int)((h >> e) & 1) << 4;
            if (type == SS_WT_IQ4_NL)
                v[i] = __fmul_rn(d, (float)k_iq4_levels[q]);
            else if (m1)
                v[i] = __fadd_rn(__fmul_rn((float)q, d), m);
            else
                v[i] = __fmul_rn((float)(q - (five ? 16 : 8)), d);
        }
        return;
    }
    case SS_WT_Q2_K: case SS_WT_Q3_K: { /* groups of 16: 2 low bits at qs[32n + 16h + l] >> 2j */
        const int three = type == SS_WT_Q3_K, g = e0 / 16, n = e0 / 128, j = (e0 % 128) / 32, hh = (e0 % 32) / 16;
        const uint8_t *q = b + (three ? 32 : 16) + 32 * n + 16 * hh;
        float dl, ml = 0.f;
        if (three) {
            const uint8_t *s = b + 96;
            int sc = ((s[g % 8] >> (4 * (g / 8))) & 15) | ((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4;
            dl = __fmul_rn(dh(b + 108), (float)(sc - 32));
        } else {
            dl = __fmul_rn(dh(b + 80), (float)(b[g] & 15));
            ml = __fmul_rn(dh(b + 82), (float)(b[g] >> 4));
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int l = (e0 + i) % 16, u = (q[l] >> (2 * j)) & 3;
            if (three)
                v[i] = __fmul_rn(dl, (float)(u - ((b[16 * hh + l] >> (4 * n + j)) & 1 ? 0 : 4)));
            else
                v[i] = __fsub_rn(__fmul_rn(dl, (float)u), ml);
        }
        return;
    }
    case SS_WT_Q4_K: case SS_WT_Q5_K: {
        const int five = type == SS_WT_Q5_K, g = e0 / 32, c = e0 / 64, hi = (e0 / 32) % 2;
        const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 16 + 32 * five + 32 * c;
        int sc, m;
        if (g < 4) {
            sc = s[g] & 63;
            m = s[g + 4] & 63;
        } else {
            sc = (s[g + 4] & 15) | (s[g - 4] >> 6) << 4;
            m = (s[g + 4] >> 4) | (s[g] >> 6) << 4;
        }
        const float d1 = __fmul_rn(dh(b), (float)sc), m1 = __fmul_rn(dh(b + 2), (float)m);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int l = (e0 + i) % 32, q = (qs[l] >> (4 * hi)) & 15;
            if (five)
                q += (qh[l] >> (2 * c + hi)) & 1 ? 16 : 0;
            v[i] = __fsub_rn(__fmul_rn(d1, (float)q), m1);
        }
        return;
    }
    case SS_WT_Q6_K: {
        const int n = e0 / 128, q4 = (e0 % 128) / 32;
        const uint8_t *ql = b + 64 * n + 32 * (q4 & 1), *qh = b + 128 + 32 * n;
        const float ds = __fmul_rn(dh(b + 208), (float)(signed char)b[192 + e0 / 16]);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int l = (e0 + i) % 32, q = ((ql[l] >> (4 * (q4 >> 1))) & 15) | ((qh[l] >> (2 * q4)) & 3) << 4;
            v[i] = __fmul_rn(ds, (float)(q - 32));
        }
        return;
    }
    case SS_WT_Q8_K: {
        float d;
        memcpy(&d, b, 4);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = __fmul_rn(d, (float)(signed char)b[4 + e0 + i]);
        return;
    }
    default: { /* IQ4_XS */
        const int g = e0 / 32, sh = b[2] | b[3] << 8;
        const int ls = ((b[4 + g / 2] >> (4 * (g % 2))) & 15) | ((sh >> (2 * g)) & 3) << 4;
        const float dl = __fmul_rn(dh(b), (float)(ls - 32));
        const uint8_t *qs = b + 8 + 16 * g;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int jj = (e0 + i) % 32;
            v[i] = __fmul_rn(dl, (float)k_iq4_levels[(qs[jj % 16] >> (4 * (jj / 16))) & 15]);
        }
        return;
    }
    }
}

/* Weight (row, k) of a block-type matrix of cols columns. */
static __device__ __forceinline__ float dq1(int type, const void *data, int cols, size_t row, int k)
{
    const uint8_t *r = (const uint8_t *)data + row * (size_t)(cols / blk_elems(type)) * blk_bytes(type);
    float v[8];
    dq8(type, r, k & ~7, v);
    return v[k & 7];
}

#endif
