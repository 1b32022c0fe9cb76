/*
 * cuda_int.cuh — what the CUDA translation units of gpu/ share and nothing else
 * sees: the context struct behind ss_cuda_t (cuda_kernels.cu owns its lifetime),
 * the CU_TRY error macro, the launch check, and warp/block reductions.
 */
#ifndef SS_CUDA_INT_CUH
#define SS_CUDA_INT_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "ss_base.h"
#include "ss_cuda.h"
}

#define SS_CUDA_PROF_EVENTS 1024
#define SS_CUDA_PROF_KERNELS 64

void ss_cuda_prof_kernel(ss_cuda_t *c, const char *name);

struct ss_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t t0, t1;
    cudaEvent_t done[SS_CUDA_MARKS]; /* completion marks (ss_cuda_done_mark / _wait) */
    char name[256];
    void **allocs; /* every allocation, freed at close */
    int nalloc, calloc_;
    float *xbf_scratch; /* bf16 activations for the tensor-core path */
    void *blas_ws;      /* cuBLAS workspace (freed at close) */
    size_t xbf_cap;
    cudaError_t pending; /* first launch error not yet reported */
    int prof;            /* SS_CUDA_PROFILE set: 1 = stages, 2 (=kernels) = every launch */
    cudaEvent_t pev[SS_CUDA_PROF_EVENTS];
    int pstage[SS_CUDA_PROF_EVENTS], np;
    const char *pname[SS_CUDA_PROF_EVENTS]; /* kernel mode: the launching function of each event */
    int64_t phost0, phost1;                  /* kernel mode: host clock at the first and last mark */
    double pms[SS_CUDA_PROF_STAGES];
    long pcount[SS_CUDA_PROF_STAGES];
    struct { char name[48]; double ms, lo, hi; long n; } pk[SS_CUDA_PROF_KERNELS]; /* kernel mode totals */
    int npk;
    double pk_gpu_ms, pk_host_ms; /* kernel mode: GPU span and host enqueue span of the passes */
    long pk_passes;
    char gname[16][48]; /* interned GEMM shape names */
    int ngname;
    int pdl;          /* programmatic dependent launch for the decode kernels (SS_CUDA_PDL=0: off) */
    int gemv_r4_rows; /* batch-1 Q8_0/Q4_K GEMVs of at least this many rows take 4 rows per warp */
    int *att_cnt;     /* split-KV attention: finished splits per (KV head, tile), back to 0 by the
                       * block that merges them (SS_ATT_CNT entries, zeroed at open) */
};

#define SS_ATT_CNT 4096



#define CUBLAS_WS_BYTES ((size_t)32 << 20)

#define CU_TRY(expr)                                                                                          \
    do {                                                                                                      \
        cudaError_t e_ = (expr);                                                                              \
        if (e_ != cudaSuccess)                                                                                \
            return ss_seterr(err, errsz, SS_ERR_CUDA, "%s: %s (%s:%d)", #expr, cudaGetErrorString(e_),       \
                             __FILE__, __LINE__);                                                             \
    } while (0)

/* After a kernel launch: keeps the first launch error for later, and (SS_CUDA_PROFILE=kernels)
 * marks the launch with the name of the host function that made it. */
static inline int launched_at(ss_cuda_t *c, const char *fn)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess && c->pending == cudaSuccess)
        c->pending = e;
    if (c->prof == 2)
        ss_cuda_prof_kernel(c, fn);
    return e == cudaSuccess ? SS_OK : SS_ERR_CUDA;
}
#define launched(c) launched_at((c), __func__)

/* Programmatic dependent launch (sm_90): a kernel launched through pdl_launch may start while the
 * kernel before it in the stream is finishing; it must call pdl_wait() at its very top, before any
 * memory access and before any early return (so no kernel can finish before its predecessor,
 * which keeps every later kernel's view of memory complete), and pdl_trigger() lets the kernel
 * after it be scheduled into the SMs this one leaves free. Both are no-ops in a plain launch. */
static __device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

/* kern<<<grid, block, smem, c->stream>>>(args...), with the programmatic-serialization attribute
 * when c->pdl is set (the launch error is kept by launched() as for <<<>>>). */
template <typename... KA, typename... A>
static inline void pdl_launch(ss_cuda_t *c, void (*kern)(KA...), dim3 grid, dim3 block, size_t smem, A &&...args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = c->stream;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at, cfg.numAttrs = c->pdl ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kern, static_cast<A &&>(args)...);
}

/* ---- reductions (device) ---- */

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum for blocks of up to 1024 threads. */
static __device__ __forceinline__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = threadIdx.x < nw ? sh[threadIdx.x] : 0.0f;
    if (wid == 0)
        v = warp_sum(v);
    if (threadIdx.x == 0)
        sh[0] = v;
    __syncthreads();
    return sh[0];
}

static __device__ __forceinline__ float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = threadIdx.x < nw ? sh[threadIdx.x] : -INFINITY;
    if (wid == 0)
        v = warp_max(v);
    if (threadIdx.x == 0)
        sh[0] = v;
    __syncthreads();
    return sh[0];
}

/* Offset of (sequence s, position p, KV head h) in a paged K or V pool (ss_cuda.h). */
static __device__ __forceinline__ size_t kv_index(const int32_t *bt, int max_blocks, int s, int p, int nkv, int hd,
                                                  int h)
{
    int blk = bt[(size_t)s * max_blocks + p / SS_KV_BLOCK];
    return (((size_t)blk * nkv + h) * SS_KV_BLOCK + p % SS_KV_BLOCK) * hd;
}

#endif
