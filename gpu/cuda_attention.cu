/*
 * cuda_attention.cu — the paged KV cache and attention kernels of ss_cuda.h:
 * the KV store (alone, or fused with RoPE on q and k), causal attention on CUDA
 * cores for decode-sized passes (one block per KV head and query tile, online
 * softmax over key tiles in shared memory; with split-KV ranges merged by the last
 * block of each range to finish, or by a second kernel), and the tensor-core (WMMA)
 * attention for prefill passes.
 */
#include "cuda_int.cuh"

/* ---------------------------------------------------------------- KV cache and attention */


__global__ void k_kv_store(float *kp, float *vp, const float *k, const float *v, const int32_t *bt, int max_blocks,
                           const int32_t *seq, const int32_t *pos, int nkv, int hd)
{
    int i = blockIdx.x;
    for (int t = threadIdx.x; t < nkv * hd; t += blockDim.x) {
        int h = t / hd, j = t % hd;
        size_t o = kv_index(bt, max_blocks, seq[i], pos[i], nkv, hd, h) + j;
        kp[o] = k[(size_t)i * nkv * hd + t];
        vp[o] = v[(size_t)i * nkv * hd + t];
    }
}

extern "C" int ss_cuda_kv_store(ss_cuda_t *c, float *kpool, float *vpool, const float *k, const float *v,
                                const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                                int n, int nkv, int hd)
{
    if (n <= 0)
        return SS_OK;
    k_kv_store<<<n, 128, 0, c->stream>>>(kpool, vpool, k, v, block_tables, max_blocks, seq, pos, nkv, hd);
    return launched(c);
}

__global__ void k_kv_copy_blocks(float *const *pools, const int32_t *pairs, size_t per)
{
    float *p = pools[blockIdx.y];
    const size_t dst = (size_t)pairs[2 * blockIdx.x] * per, src = (size_t)pairs[2 * blockIdx.x + 1] * per;
    if (per % 4 == 0)
        for (size_t i = threadIdx.x; i < per / 4; i += blockDim.x)
            ((float4 *)(p + dst))[i] = ((const float4 *)(p + src))[i];
    else
        for (size_t i = threadIdx.x; i < per; i += blockDim.x)
            p[dst + i] = p[src + i];
}

extern "C" int ss_cuda_kv_copy_blocks(ss_cuda_t *c, float *const *pools, int npools, const int32_t *pairs, int npairs,
                                      size_t per)
{
    if (npairs <= 0 || npools <= 0)
        return SS_OK;
    k_kv_copy_blocks<<<dim3((unsigned)npairs, (unsigned)npools), 256, 0, c->stream>>>(pools, pairs, per);
    return launched(c);
}

/* RoPE on q (in place) and k, and k/v into the paged pools, in one kernel: a block per token;
 * thread t takes pair j = t % (rot/2) and computes its angle once for every head it rotates (q's
 * heads, then k's, whose rotated values go straight to the pool). The separate rope, rope and
 * store kernels of a decode step cost more in launches than in work. */
__global__ void k_rope_kv(float *q, const float *qs, const float *k, const float *v, size_t ldq, size_t ldkv,
                          float *kp, float *vp, const int32_t *bt, int max_blocks, const int32_t *seq,
                          const int32_t *pos, int nheads, int nkv, int hd, int rot, float theta, int neox)
{
    int i = blockIdx.x, half = rot / 2, nh = nheads + nkv;
    float p = (float)pos[i];
    int j = threadIdx.x % half, hstep = blockDim.x / half;
    if ((int)threadIdx.x < hstep * half) {
        float freq = powf(theta, -2.0f * (float)j / (float)rot);
        float a = p * freq, sn, cs;
        sincosf(a, &sn, &cs);
        int i0 = neox ? j : 2 * j, i1 = neox ? j + half : 2 * j + 1;
        for (int h = threadIdx.x / half; h < nh; h += hstep) {
            const float *src;
            float *dst;
            if (h < nheads) {
                dst = q + (size_t)i * nheads * hd + (size_t)h * hd;
                src = qs + (size_t)i * ldq + (size_t)h * hd;
            } else {
                src = k + (size_t)i * ldkv + (size_t)(h - nheads) * hd;
                dst = kp + kv_index(bt, max_blocks, seq[i], pos[i], nkv, hd, h - nheads);
            }
            float x0 = src[i0], x1 = src[i1];
            dst[i0] = x0 * cs - x1 * sn;
            dst[i1] = x0 * sn + x1 * cs;
        }
    }
    if (qs != q) /* packed source: Q's unrotated dimensions move too */
        for (int t = threadIdx.x; t < nheads * hd; t += blockDim.x)
            if (t % hd >= rot)
                q[(size_t)i * nheads * hd + t] = qs[(size_t)i * ldq + t];
    for (int t = threadIdx.x; t < nkv * hd; t += blockDim.x) {
        int h = t / hd, d = t % hd;
        size_t o = kv_index(bt, max_blocks, seq[i], pos[i], nkv, hd, h) + d;
        if (d >= rot)
            kp[o] = k[(size_t)i * ldkv + t];
        vp[o] = v[(size_t)i * ldkv + t];
    }
}

extern "C" int ss_cuda_rope_kv(ss_cuda_t *c, float *q, const float *k, const float *v, float *kpool, float *vpool,
                               const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                               int n, int nheads, int nkv, int hd, int rot, float theta, int neox)
{
    if (n <= 0)
        return SS_OK;
    if (rot < 2 || rot > 512)
        return SS_ERR_UNSUPPORTED;
    k_rope_kv<<<n, 256, 0, c->stream>>>(q, q, k, v, (size_t)nheads * hd, (size_t)nkv * hd, kpool, vpool, block_tables,
                                        max_blocks, seq, pos, nheads, nkv, hd, rot, theta, neox);
    return launched(c);
}

extern "C" int ss_cuda_rope_kv_packed(ss_cuda_t *c, float *q, const float *qkv, float *kpool, float *vpool,
                                      const int32_t *block_tables, int max_blocks, const int32_t *seq,
                                      const int32_t *pos, int n, int nheads, int nkv, int hd, int rot, float theta,
                                      int neox)
{
    if (n <= 0)
        return SS_OK;
    if (rot < 2 || rot > 512)
        return SS_ERR_UNSUPPORTED;
    size_t qd = (size_t)nheads * hd, kvd = (size_t)nkv * hd;
    k_rope_kv<<<n, 256, 0, c->stream>>>(q, qkv, qkv + qd, qkv + qd + kvd, qd + 2 * kvd, qd + 2 * kvd, kpool, vpool,
                                        block_tables, max_blocks, seq, pos, nheads, nkv, hd, rot, theta, neox);
    return launched(c);
}

#define ATT_TILE_K 32  /* keys per shared-memory tile */
#define ATT_MAX_HD 128
#define ATT_WARPS 8
#define ATT_ITEMS 64   /* (query, head) pairs a block works on at once: 8 per warp */

/* out for (query, head) from its nsplit partials (max, sum, acc) at pp: sum_z acc_z e^(m_z - M) / L;
 * one lane per dimension, the partials read through L2 (other blocks wrote them). */
static __device__ __forceinline__ void att_merge_one(float *o, const float *pp, int hd, int nsplit, int t0, int nt)
{
    float M = -INFINITY, L = 0;
    for (int z = 0; z < nsplit; z++)
        M = fmaxf(M, __ldcg(pp + (size_t)z * (hd + 2)));
    for (int z = 0; z < nsplit; z++) {
        float mz = __ldcg(pp + (size_t)z * (hd + 2));
        L += mz == -INFINITY ? 0.0f : __ldcg(pp + (size_t)z * (hd + 2) + 1) * __expf(mz - M);
    }
    for (int d = t0; d < hd; d += nt) {
        float acc = 0;
        for (int z = 0; z < nsplit; z++) {
            float mz = __ldcg(pp + (size_t)z * (hd + 2));
            if (mz != -INFINITY)
                acc += __ldcg(pp + (size_t)z * (hd + 2) + 2 + d) * __expf(mz - M);
        }
        o[d] = L > 0 ? acc / L : 0.0f;
    }
}

/* Split-KV without a second launch: each block of a (KV head, tile) leaves its partials, and the
 * last of the nsplit blocks to finish (a counter per (KV head, tile), set back to 0 by that block
 * so a replayed graph finds it at 0) merges them for the group's heads. */
static __device__ void att_merge_last(float *out, const float *part, int *cnt, int q0, int items, int grp, int kh,
                                      int nheads, int hd, int nsplit)
{
    __shared__ int last;
    __threadfence(); /* this block's partials before its count */
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(cnt, 1) == nsplit - 1;
        if (last)
            *cnt = 0;
    }
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int it = warp; it < items; it += blockDim.x >> 5) {
        int qi = it / grp, h = kh * grp + it % grp;
        const float *pp = part + ((size_t)(q0 + qi) * nheads + h) * nsplit * (hd + 2);
        att_merge_one(out + (size_t)(q0 + qi) * nheads * hd + (size_t)h * hd, pp, hd, nsplit, lane, 32);
    }
}

/* One block per (KV head, query tile): every query head of the GQA group that shares this KV
 * head is handled here, so each K/V tile is read from the pool once for the whole group. Work
 * items are (query, head) pairs; each warp owns 8 of them and keeps, per item, the running max,
 * the running sum and the output accumulator (hd/32 values per lane): online softmax over tiles
 * of 32 keys staged in shared memory (K padded against bank conflicts, float4 global loads). */
__global__ void __launch_bounds__(ATT_WARPS * 32)
k_attention(float *out, const float *q, const float *kp, const float *vp, const int32_t *bt, int max_blocks,
            const int32_t *seq, const int32_t *pos, const int32_t *tile_q0, const int32_t *tile_nq, int nheads,
            int nkv, int hd, float scale, float *part, int *cnt)
{
    pdl_wait();
    pdl_trigger();
    extern __shared__ float sm[];
    float *ks = sm;                          /* [ATT_TILE_K][hd + 1] */
    float *vs = ks + ATT_TILE_K * (hd + 1);  /* [ATT_TILE_K][hd] */
    float *qs = vs + ATT_TILE_K * hd;        /* [ATT_ITEMS][hd] */
    int kh = blockIdx.x, t = blockIdx.y;
    int q0 = tile_q0[t], nq = tile_nq[t], grp = nheads / nkv;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int s = seq[q0], items = nq * grp;
    int maxpos = 0;
    for (int i = 0; i < nq; i++)
        maxpos = max(maxpos, pos[q0 + i]);
    int hd4 = hd >> 2;
    const int DPL = ATT_MAX_HD / 32; /* dims per lane (upper bound) */
    /* split-KV (decode): block z of gridDim.z takes its share of the key tiles and leaves an
     * unnormalised partial (max, sum, acc) in part for k_attention_combine */
    int nsplit = gridDim.z, ntile = maxpos / ATT_TILE_K + 1, per = (ntile + nsplit - 1) / nsplit;
    int klo = blockIdx.z * per * ATT_TILE_K, khi = min(maxpos, (blockIdx.z + 1) * per * ATT_TILE_K - 1);
    for (int base = 0; base < items; base += ATT_ITEMS) {
        int nit = min(ATT_ITEMS, items - base);
        __syncthreads();
        for (int i = threadIdx.x; i < nit * hd; i += blockDim.x) {
            int it = base + i / hd, j = i % hd;
            int qi = it / grp, h = kh * grp + it % grp;
            qs[(i / hd) * hd + j] = q[(size_t)(q0 + qi) * nheads * hd + (size_t)h * hd + j] * scale;
        }
        float m[8], l[8], acc[8][DPL];
#pragma unroll
        for (int a = 0; a < 8; a++) {
            m[a] = -INFINITY;
            l[a] = 0;
#pragma unroll
            for (int d = 0; d < DPL; d++)
                acc[a][d] = 0;
        }
        for (int k0 = klo; k0 <= khi; k0 += ATT_TILE_K) {
            __syncthreads();
            for (int i = threadIdx.x; i < ATT_TILE_K * hd4; i += blockDim.x) {
                int r = i / hd4, c4 = i % hd4, p = k0 + r;
                float4 kv = make_float4(0, 0, 0, 0), vv = kv;
                if (p <= khi) {
                    size_t o = kv_index(bt, max_blocks, s, p, nkv, hd, kh) + 4 * c4;
                    kv = __ldg((const float4 *)(kp + o));
                    vv = __ldg((const float4 *)(vp + o));
                }
                float *kr = ks + r * (hd + 1) + 4 * c4;
                kr[0] = kv.x, kr[1] = kv.y, kr[2] = kv.z, kr[3] = kv.w;
                *(float4 *)(vs + r * hd + 4 * c4) = vv;
            }
            __syncthreads();
#pragma unroll
            for (int a = 0; a < 8; a++) {
                int li = warp + ATT_WARPS * a; /* local item */
                if (li >= nit)
                    continue;
                int qi = (base + li) / grp;
                int qp = pos[q0 + qi];
                if (k0 > qp)
                    continue;
                int p = k0 + lane;
                float sc = -INFINITY;
                if (p <= qp && p <= khi) {
                    float d = 0;
                    const float *qv = qs + li * hd, *kr = ks + lane * (hd + 1);
                    for (int j = 0; j < hd; j++)
                        d += qv[j] * kr[j];
                    sc = d;
                }
                float tmax = warp_max(sc);
                float mnew = fmaxf(m[a], tmax);
                float pr = sc == -INFINITY ? 0.0f : __expf(sc - mnew);
                float corr = m[a] == -INFINITY ? 0.0f : __expf(m[a] - mnew);
                l[a] = l[a] * corr + warp_sum(pr);
                m[a] = mnew;
#pragma unroll
                for (int d = 0; d < DPL; d++)
                    acc[a][d] *= corr;
                int kmax = min(ATT_TILE_K, min(qp, khi) - k0 + 1);
                for (int j = 0; j < kmax; j++) {
                    float pj = __shfl_sync(0xffffffffu, pr, j);
#pragma unroll
                    for (int d = 0; d < DPL; d++) {
                        int dim = lane + 32 * d;
                        if (dim < hd)
                            acc[a][d] += pj * vs[j * hd + dim];
                    }
                }
            }
        }
#pragma unroll
        for (int a = 0; a < 8; a++) {
            int li = warp + ATT_WARPS * a;
            if (li >= nit)
                continue;
            int it = base + li, qi = it / grp, h = kh * grp + it % grp;
            if (part) {
                float *pp = part + (((size_t)(q0 + qi) * nheads + h) * nsplit + blockIdx.z) * (hd + 2);
                if (lane == 0)
                    pp[0] = m[a], pp[1] = l[a];
#pragma unroll
                for (int d = 0; d < DPL; d++) {
                    int dim = lane + 32 * d;
                    if (dim < hd)
                        pp[2 + dim] = acc[a][d];
                }
                continue;
            }
            float inv = l[a] > 0 ? 1.0f / l[a] : 0.0f;
#pragma unroll
            for (int d = 0; d < DPL; d++) {
                int dim = lane + 32 * d;
                if (dim < hd)
                    out[(size_t)(q0 + qi) * nheads * hd + (size_t)h * hd + dim] = acc[a][d] * inv;
            }
        }
    }
    if (part && cnt)
        att_merge_last(out, part, cnt + (size_t)t * nkv + kh, q0, items, grp, kh, nheads, hd, nsplit);
}

/* Shared memory of k_attention for head size hd (its limit is raised on first use). */
static size_t att_smem(int hd)
{
    static int smem_raised;
    if (!smem_raised) {
        cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024);
        smem_raised = 1;
    }
    return (size_t)(ATT_TILE_K * (hd + 1) + ATT_TILE_K * hd + ATT_ITEMS * hd) * sizeof(float);
}

extern "C" int ss_cuda_attention(ss_cuda_t *c, float *out, const float *q, const float *kpool, const float *vpool,
                                 const int32_t *block_tables, int max_blocks, const int32_t *seq,
                                 const int32_t *pos, int n, const int32_t *tile_q0, const int32_t *tile_nq,
                                 int ntiles, int nheads, int nkv, int hd)
{
    if (n <= 0 || ntiles <= 0)
        return SS_OK;
    if (hd > ATT_MAX_HD || hd % 4 || nheads % nkv)
        return SS_ERR_UNSUPPORTED;
    size_t smem = att_smem(hd);
    dim3 grid((unsigned)nkv, (unsigned)ntiles);
    pdl_launch(c, k_attention, grid, dim3(ATT_WARPS * 32), smem, out, q, kpool, vpool, block_tables, max_blocks, seq,
               pos, tile_q0, tile_nq, nheads, nkv, hd, 1.0f / sqrtf((float)hd), (float *)NULL, (int *)NULL);
    return launched(c);
}

/* Merges the split-KV partials of each (query, head): out = sum_z acc_z e^(m_z - M) / L. */
__global__ void k_attention_combine(float *out, const float *part, int nheads, int hd, int nsplit)
{
    pdl_wait();
    pdl_trigger();
    int i = blockIdx.x, h = blockIdx.y;
    const float *pp = part + ((size_t)i * nheads + h) * nsplit * (hd + 2);
    att_merge_one(out + (size_t)i * nheads * hd + (size_t)h * hd, pp, hd, nsplit, threadIdx.x, blockDim.x);
}

/* The merge in the last block of each (KV head, tile) is an experiment (SS_CUDA_ATT_MERGE=0): on
 * an H100 it made SmolLM2-135M's step slower (0.780 against 0.729 ms with the merge kernel, which
 * programmatic dependent launch makes cheap), its one block per group merging alone. */
static int att_merge_kernel(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SS_CUDA_ATT_MERGE");
        v = !(e && *e == '0');
    }
    return v;
}

extern "C" int ss_cuda_attention_split(ss_cuda_t *c, float *out, float *part, int nsplit, const float *q,
                                       const float *kpool, const float *vpool, const int32_t *block_tables,
                                       int max_blocks, const int32_t *seq, const int32_t *pos, int n,
                                       const int32_t *tile_q0, const int32_t *tile_nq, int ntiles, int nheads, int nkv,
                                       int hd)
{
    if (nsplit <= 1)
        return ss_cuda_attention(c, out, q, kpool, vpool, block_tables, max_blocks, seq, pos, n, tile_q0, tile_nq,
                                 ntiles, nheads, nkv, hd);
    if (n <= 0 || ntiles <= 0)
        return SS_OK;
    if (hd > ATT_MAX_HD || hd % 4 || nheads % nkv)
        return SS_ERR_UNSUPPORTED;
    size_t smem = att_smem(hd);
    dim3 grid((unsigned)nkv, (unsigned)ntiles, (unsigned)nsplit);
    /* the merge kernel, or (SS_CUDA_ATT_MERGE=0) the merge in the last block of each (KV head, tile) */
    int *cnt = att_merge_kernel() || (size_t)nkv * ntiles > SS_ATT_CNT ? NULL : c->att_cnt;
    pdl_launch(c, k_attention, grid, dim3(ATT_WARPS * 32), smem, out, q, kpool, vpool, block_tables, max_blocks, seq,
               pos, tile_q0, tile_nq, nheads, nkv, hd, 1.0f / sqrtf((float)hd), part, cnt);
    if (!cnt)
        pdl_launch(c, k_attention_combine, dim3((unsigned)n, (unsigned)nheads), dim3(64), 0, out, (const float *)part,
                   nheads, hd, nsplit);
    return launched(c);
}

/* ---------------------------------------------------------------- tensor-core attention */

/* Prefill attention on tensor cores (FlashAttention-2 in outline, with WMMA): one block of 4
 * warps per (query tile, hb query heads of one GQA group). The block's 64 rows are (query, head)
 * pairs, so a tile holds at most 64 / hb queries: long runs of a prompt take hb = 1 (64 queries
 * per K/V tile staged), short ones (a CHOOSE fork's one or two tokens) take hb = group, so the
 * K/V tiles are staged once for every head that shares them. Q is staged once as
 * bf16 (pre-scaled by 1/sqrt(hd)); for each tile of 64 keys, K and V are gathered from the paged
 * fp32 pools into shared memory as bf16; warp w computes the 16 x 64 scores of its 16 rows (bf16
 * mma, fp32 accumulation), applies the causal mask and the online softmax per row (running max
 * and sum in shared memory), and adds P V into its fp32 output rows, rescaled by
 * exp(old max - new max). WMMA accumulator layouts are opaque, so scores and partial products
 * pass through shared memory; at prompt lengths of a few hundred tokens this is far from the
 * bottleneck it replaces (the CUDA-core kernel above was over half of a CHOOSE workload's GPU time). */
#define TC_Q 64  /* (query, head) rows per block */
#define TC_K 64  /* keys per tile */
#define TC_WARPS 4
#define TC_LD 8  /* float4 loads in flight per thread while staging Q, K, V */

struct tc_smem {
    int hd, ldh, lds, ldp, ldo;
    size_t q, k, v, s, p, o, ml, total; /* byte offsets */
};

__host__ __device__ static tc_smem tc_layout(int hd)
{
    tc_smem L;
    L.hd = hd, L.ldh = hd + 8, L.lds = TC_K + 4, L.ldp = TC_K + 8, L.ldo = hd + 4;
    L.q = 0;
    L.k = L.q + (size_t)TC_Q * L.ldh * 2;
    L.v = L.k + (size_t)TC_K * L.ldh * 2;
    L.s = L.v + (size_t)TC_K * L.ldh * 2;
    L.p = L.s + (size_t)TC_WARPS * 16 * L.lds * 4;
    L.o = L.p + (size_t)TC_WARPS * 16 * L.ldp * 2;
    L.ml = L.o + (size_t)TC_WARPS * 16 * L.ldo * 4;
    L.total = L.ml + (size_t)3 * TC_Q * 4; /* running max, running sum, this tile's rescale */
    return L;
}

/* HDT > 0: the head size as a compile-time constant (64 and 128: index arithmetic becomes shifts);
 * 0: any supported head size at run time. */
template <int HDT>
__global__ void __launch_bounds__(TC_WARPS * 32)
k_attention_tc(float *out, __nv_bfloat16 *outb, const float *q, const float *kp, const float *vp, const int32_t *bt, int max_blocks,
               const int32_t *seq, const int32_t *pos, const int32_t *tile_q0, const int32_t *tile_nq, int nheads,
               int nkv, int hd_arg, int hb, float scale)
{
    using namespace nvcuda;
    const int hd = HDT > 0 ? HDT : hd_arg;
    extern __shared__ __align__(128) unsigned char smem[];
    const tc_smem L = tc_layout(hd);
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)(smem + L.q), *Ks = (__nv_bfloat16 *)(smem + L.k);
    __nv_bfloat16 *Vs = (__nv_bfloat16 *)(smem + L.v), *Ps = (__nv_bfloat16 *)(smem + L.p);
    float *Ss = (float *)(smem + L.s), *Os = (float *)(smem + L.o), *Mx = (float *)(smem + L.ml);
    float *Sm = Mx + TC_Q, *Al = Sm + TC_Q;
    int t = blockIdx.x, group = nheads / nkv, nsub = group / hb, tid = threadIdx.x;
    int kvh = blockIdx.y / nsub, hbase = kvh * group + (blockIdx.y % nsub) * hb;
    int warp = tid >> 5, lane = tid & 31, q0 = tile_q0[t], nq = tile_nq[t], s = seq[q0], nrows = nq * hb;
    int maxpos = 0;
    for (int i = 0; i < nq; i++)
        maxpos = max(maxpos, pos[q0 + i]);
    /* stage Q (zero rows past nq), clear the output rows and the softmax state; loads go out in
     * batches of TC_LD float4 per thread before any is stored (the loop is latency-bound otherwise) */
    size_t qstride = (size_t)nheads * hd;
    const int hd4 = hd / 4;
    for (int e0 = 0; e0 < TC_Q * hd4; e0 += TC_LD * TC_WARPS * 32) {
        float4 buf[TC_LD];
#pragma unroll
        for (int u = 0; u < TC_LD; u++) {
            int e = e0 + u * TC_WARPS * 32 + tid, i = e / hd4, c4 = e % hd4;
            int qi = hb == 1 ? i : i / hb, h = hb == 1 ? hbase : hbase + i % hb;
            buf[u] = e < TC_Q * hd4 && i < nrows
                         ? __ldg((const float4 *)(q + (size_t)(q0 + qi) * qstride + (size_t)h * hd) + c4)
                         : make_float4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < TC_LD; u++) {
            int e = e0 + u * TC_WARPS * 32 + tid, i = e / hd4, c4 = e % hd4;
            if (e < TC_Q * hd4) {
                __nv_bfloat162 *qd = (__nv_bfloat162 *)(Qs + i * L.ldh + 4 * c4);
                qd[0] = __floats2bfloat162_rn(buf[u].x * scale, buf[u].y * scale);
                qd[1] = __floats2bfloat162_rn(buf[u].z * scale, buf[u].w * scale);
            }
        }
    }
    for (int e = tid; e < TC_WARPS * 16 * L.ldo; e += blockDim.x)
        Os[e] = 0.0f;
    for (int i = tid; i < TC_Q; i += blockDim.x)
        Mx[i] = -INFINITY, Sm[i] = 0.0f;
    int row0 = warp * 16; /* this warp's first query row */
    float *Sw = Ss + (size_t)warp * 16 * L.lds, *Ow = Os + (size_t)warp * 16 * L.ldo;
    __nv_bfloat16 *Pw = Ps + (size_t)warp * 16 * L.ldp;
    for (int k0 = 0; k0 <= maxpos; k0 += TC_K) {
        __syncthreads(); /* the previous tile's K/V are no longer read */
        for (int e0 = 0; e0 < TC_K * hd4; e0 += TC_LD * TC_WARPS * 32) {
            float4 kb[TC_LD], vb[TC_LD];
#pragma unroll
            for (int u = 0; u < TC_LD; u++) {
                int e = e0 + u * TC_WARPS * 32 + tid, j = e / hd4, p = k0 + j;
                kb[u] = vb[u] = make_float4(0, 0, 0, 0);
                if (e < TC_K * hd4 && p <= maxpos) {
                    size_t o = kv_index(bt, max_blocks, s, p, nkv, hd, kvh) + 4 * (e % hd4);
                    kb[u] = __ldg((const float4 *)(kp + o));
                    vb[u] = __ldg((const float4 *)(vp + o));
                }
            }
#pragma unroll
            for (int u = 0; u < TC_LD; u++) {
                int e = e0 + u * TC_WARPS * 32 + tid, j = e / hd4, d = 4 * (e % hd4);
                if (e >= TC_K * hd4)
                    continue;
                __nv_bfloat162 *kd = (__nv_bfloat162 *)(Ks + j * L.ldh + d);
                __nv_bfloat162 *vd = (__nv_bfloat162 *)(Vs + j * L.ldh + d);
                kd[0] = __floats2bfloat162_rn(kb[u].x, kb[u].y), kd[1] = __floats2bfloat162_rn(kb[u].z, kb[u].w);
                vd[0] = __floats2bfloat162_rn(vb[u].x, vb[u].y), vd[1] = __floats2bfloat162_rn(vb[u].z, vb[u].w);
            }
        }
        __syncthreads();
        if (row0 >= nrows)
            continue; /* padding rows only: nothing to compute, but keep meeting the barriers */
        /* S = Q K^T for 16 rows x 64 keys */
        for (int c = 0; c < TC_K / 16; c++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.0f);
            for (int dc = 0; dc < hd / 16; dc++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> af;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf;
                wmma::load_matrix_sync(af, Qs + row0 * L.ldh + dc * 16, L.ldh);
                wmma::load_matrix_sync(bf, Ks + c * 16 * L.ldh + dc * 16, L.ldh);
                wmma::mma_sync(sf, af, bf, sf);
            }
            wmma::store_matrix_sync(Sw + c * 16, sf, L.lds, wmma::mem_row_major);
        }
        __syncwarp();
        /* causal mask and online softmax: two lanes per row, 32 keys each */
        {
            int r = lane >> 1, half = lane & 1, qi = row0 + r; /* qi: the block's row */
            int qpos = qi < nrows ? pos[q0 + qi / hb] : -1;
            float mt = -INFINITY;
            for (int j = half * 32; j < half * 32 + 32; j++)
                if (k0 + j <= qpos)
                    mt = fmaxf(mt, Sw[r * L.lds + j]);
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
            float mold = qpos >= 0 ? Mx[qi] : 0.0f, mnew = fmaxf(mold, mt);
            float sum = 0;
            for (int j = half * 32; j < half * 32 + 32; j++) {
                float pv = (k0 + j <= qpos) ? __expf(Sw[r * L.lds + j] - mnew) : 0.0f;
                sum += pv;
                Pw[r * L.ldp + j] = __float2bfloat16(pv);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            __syncwarp();
            if (half == 0 && qpos >= 0) {
                float alpha = __expf(mold - mnew); /* 0 on the first tile (mold = -inf) */
                Sm[qi] = Sm[qi] * alpha + sum;
                Mx[qi] = mnew;
                Al[qi] = alpha;
            } else if (half == 0)
                Al[qi] = 0.0f;
        }
        __syncwarp();
        for (int e = lane; e < 16 * hd; e += 32) {
            int r = e / hd, d = e % hd;
            Ow[r * L.ldo + d] *= Al[row0 + r];
        }
        __syncwarp();
        /* O += P V, 16 output columns at a time through the (now free) score buffer */
        for (int dc = 0; dc < hd / 16; dc++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::fill_fragment(of, 0.0f);
            for (int c = 0; c < TC_K / 16; c++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, Pw + c * 16, L.ldp);
                wmma::load_matrix_sync(vf, Vs + c * 16 * L.ldh + dc * 16, L.ldh);
                wmma::mma_sync(of, pf, vf, of);
            }
            wmma::store_matrix_sync(Sw, of, L.lds, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int r = e >> 4, cc = e & 15;
                Ow[r * L.ldo + dc * 16 + cc] += Sw[r * L.lds + cc];
            }
            __syncwarp();
        }
    }
    __syncthreads();
    for (int e = tid; e < TC_Q * hd4; e += blockDim.x) {
        int i = e / hd4, d = 4 * (e % hd4), qi = hb == 1 ? i : i / hb, h = hb == 1 ? hbase : hbase + i % hb;
        if (i < nrows) {
            const float *o = Os + (size_t)(i >> 4) * 16 * L.ldo + (i & 15) * L.ldo + d;
            float inv = 1.0f / Sm[i];
            size_t oi = (size_t)(q0 + qi) * qstride + (size_t)h * hd + d;
            if (outb) {
                __nv_bfloat162 *ob = (__nv_bfloat162 *)(outb + oi);
                ob[0] = __floats2bfloat162_rn(o[0] * inv, o[1] * inv);
                ob[1] = __floats2bfloat162_rn(o[2] * inv, o[3] * inv);
            } else
                *(float4 *)(out + oi) = make_float4(o[0] * inv, o[1] * inv, o[2] * inv, o[3] * inv);
        }
    }
}

static int attention_tc(ss_cuda_t *c, float *out, __nv_bfloat16 *outb, const float *q, const float *kpool,
                        const float *vpool, const int32_t *block_tables, int max_blocks, const int32_t *seq,
                        const int32_t *pos, int n, const int32_t *tile_q0, const int32_t *tile_nq, int ntiles,
                        int nheads, int nkv, int hd, int hb)
{
    if (n <= 0 || ntiles <= 0)
        return SS_OK;
    if (nheads % nkv || !ss_cuda_attention_tc_ok(hd, nheads / nkv) || hb < 1 || (nheads / nkv) % hb)
        return SS_ERR_UNSUPPORTED;
    tc_smem L = tc_layout(hd);
    static int smem_raised;
    if (!smem_raised) {
        int most = (int)tc_layout(SS_CUDA_TC_MAX_HD).total;
        cudaFuncSetAttribute(k_attention_tc<0>, cudaFuncAttributeMaxDynamicSharedMemorySize, most);
        cudaFuncSetAttribute(k_attention_tc<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, most);
        cudaFuncSetAttribute(k_attention_tc<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, most);
        smem_raised = 1;
    }
    dim3 grid((unsigned)ntiles, (unsigned)(nheads / hb));
    float scale = 1.0f / sqrtf((float)hd);
    if (hd == 64)
        k_attention_tc<64><<<grid, TC_WARPS * 32, L.total, c->stream>>>(out, outb, q, kpool, vpool, block_tables,
                                                                        max_blocks, seq, pos, tile_q0, tile_nq,
                                                                        nheads, nkv, hd, hb, scale);
    else if (hd == 128)
        k_attention_tc<128><<<grid, TC_WARPS * 32, L.total, c->stream>>>(out, outb, q, kpool, vpool, block_tables,
                                                                         max_blocks, seq, pos, tile_q0, tile_nq,
                                                                         nheads, nkv, hd, hb, scale);
    else
        k_attention_tc<0><<<grid, TC_WARPS * 32, L.total, c->stream>>>(out, outb, q, kpool, vpool, block_tables,
                                                                       max_blocks, seq, pos, tile_q0, tile_nq, nheads,
                                                                       nkv, hd, hb, scale);
    return launched(c);
}

extern "C" int ss_cuda_attention_tc(ss_cuda_t *c, float *out, const float *q, const float *kpool,
                                    const float *vpool, const int32_t *block_tables, int max_blocks,
                                    const int32_t *seq, const int32_t *pos, int n, const int32_t *tile_q0,
                                    const int32_t *tile_nq, int ntiles, int nheads, int nkv, int hd, int hb)
{
    return attention_tc(c, out, NULL, q, kpool, vpool, block_tables, max_blocks, seq, pos, n, tile_q0, tile_nq,
                        ntiles, nheads, nkv, hd, hb);
}

extern "C" int ss_cuda_attention_tc_bf16(ss_cuda_t *c, void *out, const float *q, const float *kpool,
                                         const float *vpool, const int32_t *block_tables, int max_blocks,
                                         const int32_t *seq, const int32_t *pos, int n, const int32_t *tile_q0,
                                         const int32_t *tile_nq, int ntiles, int nheads, int nkv, int hd, int hb)
{
    return attention_tc(c, NULL, (__nv_bfloat16 *)out, q, kpool, vpool, block_tables, max_blocks, seq, pos, n,
                        tile_q0, tile_nq, ntiles, nheads, nkv, hd, hb);
}

extern "C" int ss_cuda_attention_tc_ok(int hd, int group)
{
    /* any GQA group up to a block's rows: a group-per-block tile holds floor(64 / group) queries */
    return hd % 16 == 0 && hd >= 16 && hd <= SS_CUDA_TC_MAX_HD && group >= 1 && group <= SS_CUDA_TC_ROWS;
}
