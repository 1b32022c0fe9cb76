/*
 * cuda_kernels.cu — the CUDA kernels of the inference engine and the context
 * that owns device memory, the stream and the cuBLAS handle. Exports only the
 * extern "C" functions of ss_cuda.h. Every CUDA/cuBLAS call is checked and
 * turned into SS_ERR_CUDA with its text; nothing aborts.
 *
 * Kernels: RMSNorm (block per row), GEMV for F32/F16/BF16/Q8_0 with up to 8
 * activations per pass (warp per output row, 16-byte weight loads), tensor-core
 * GEMM via cuBLAS (bf16 in, fp32 accumulate) for larger batches, RoPE (llama and
 * neox pairing), SwiGLU, residual add, embedding gather, paged KV store, fused
 * causal attention with online softmax over K/V tiles in shared memory, log-prob
 * read-out and argmax.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "ss_base.h"
#include "ss_cuda.h"
}

struct ss_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t t0, t1;
    char name[256];
    void **allocs; /* every allocation, freed at close */
    int nalloc, calloc_;
    float *xbf_scratch; /* bf16 activations for the tensor-core path */
    size_t xbf_cap;
    cudaError_t pending; /* first launch error not yet reported */
    int prof;            /* SS_CUDA_PROFILE set */
    cudaEvent_t pev[256];
    int pstage[256], np;
    double pms[SS_CUDA_PROF_STAGES];
    long pcount[SS_CUDA_PROF_STAGES];
};

#define CU_TRY(expr)                                                                                          \
    do {                                                                                                      \
        cudaError_t e_ = (expr);                                                                              \
        if (e_ != cudaSuccess)                                                                                \
            return ss_seterr(err, errsz, SS_ERR_CUDA, "%s: %s (%s:%d)", #expr, cudaGetErrorString(e_),       \
                             __FILE__, __LINE__);                                                             \
    } while (0)

static int launched(ss_cuda_t *c)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess && c->pending == cudaSuccess)
        c->pending = e;
    return e == cudaSuccess ? SS_OK : SS_ERR_CUDA;
}

extern "C" int ss_cuda_device_count(char *why, size_t whysz)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why && whysz)
            snprintf(why, whysz, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" int ss_cuda_open(int device, ss_cuda_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_cuda_t *c = (ss_cuda_t *)calloc(1, sizeof *c);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->device = device;
    cudaDeviceProp prop;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaGetDeviceProperties(&prop, device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreate(&c->t0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&c->t1);
    if (e != cudaSuccess) {
        free(c);
        return ss_seterr(err, errsz, SS_ERR_CUDA, "cannot open CUDA device %d: %s", device, cudaGetErrorString(e));
    }
    snprintf(c->name, sizeof c->name, "%.200s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(c->stream);
        free(c);
        return ss_seterr(err, errsz, SS_ERR_CUDA, "cublasCreate failed on device %d", device);
    }
    cublasSetStream(c->blas, c->stream);
    const char *pe = getenv("SS_CUDA_PROFILE");
    c->prof = pe && *pe && *pe != '0';
    for (int i = 0; c->prof && i < 256; i++)
        cudaEventCreate(&c->pev[i]);
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    *out = c;
    return SS_OK;
}

extern "C" void ss_cuda_close(ss_cuda_t *c)
{
    if (!c)
        return;
    cudaStreamSynchronize(c->stream);
    for (int i = 0; i < c->nalloc; i++)
        cudaFree(c->allocs[i]);
    free(c->allocs);
    cublasDestroy(c->blas);
    for (int i = 0; c->prof && i < 256; i++)
        cudaEventDestroy(c->pev[i]);
    cudaEventDestroy(c->t0);
    cudaEventDestroy(c->t1);
    cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" const char *ss_cuda_device_name(const ss_cuda_t *c) { return c->name; }

extern "C" int ss_cuda_malloc(ss_cuda_t *c, void **dptr, size_t bytes, char *err, size_t errsz)
{
    *dptr = NULL;
    if (c->nalloc == c->calloc_) {
        int nc = c->calloc_ ? c->calloc_ * 2 : 64;
        void **a = (void **)realloc(c->allocs, (size_t)nc * sizeof *a);
        if (!a)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        c->allocs = a;
        c->calloc_ = nc;
    }
    cudaError_t e = cudaMalloc(dptr, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return ss_seterr(err, errsz, SS_ERR_CUDA, "cudaMalloc(%zu bytes): %s", bytes, cudaGetErrorString(e));
    c->allocs[c->nalloc++] = *dptr;
    return SS_OK;
}

extern "C" void ss_cuda_free(ss_cuda_t *c, void *dptr)
{
    if (!dptr)
        return;
    for (int i = 0; i < c->nalloc; i++)
        if (c->allocs[i] == dptr) {
            cudaStreamSynchronize(c->stream);
            cudaFree(dptr);
            c->allocs[i] = c->allocs[--c->nalloc];
            return;
        }
}

extern "C" int ss_cuda_h2d(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz)
{
    CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CU_TRY(cudaStreamSynchronize(c->stream)); /* src may be freed by the caller right after */
    return SS_OK;
}

extern "C" int ss_cuda_d2h(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz)
{
    CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU_TRY(cudaStreamSynchronize(c->stream));
    return SS_OK;
}

extern "C" int ss_cuda_d2d(ss_cuda_t *c, void *dst, const void *src, size_t bytes, char *err, size_t errsz)
{
    CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    return SS_OK;
}

extern "C" int ss_cuda_memset(ss_cuda_t *c, void *dst, int v, size_t bytes, char *err, size_t errsz)
{
    CU_TRY(cudaMemsetAsync(dst, v, bytes, c->stream));
    return SS_OK;
}

extern "C" int ss_cuda_sync(ss_cuda_t *c, char *err, size_t errsz)
{
    if (c->pending != cudaSuccess) {
        cudaError_t e = c->pending;
        c->pending = cudaSuccess;
        return ss_seterr(err, errsz, SS_ERR_CUDA, "kernel launch failed: %s", cudaGetErrorString(e));
    }
    CU_TRY(cudaStreamSynchronize(c->stream));
    return SS_OK;
}

/* ---------------------------------------------------------------- weights */

__global__ void k_q8_repack(const unsigned char *src, int8_t *qs, __half *d, size_t nblocks)
{
    size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (b >= nblocks)
        return;
    const unsigned char *blk = src + b * 34;
    unsigned short h = (unsigned short)(blk[0] | (blk[1] << 8));
    d[b] = __ushort_as_half(h);
    for (int i = 0; i < 32; i++)
        qs[b * 32 + i] = (int8_t)blk[2 + i];
}

extern "C" int ss_cuda_weight_upload(ss_cuda_t *c, ss_cuda_weight_t *w, int type, int rows, int cols,
                                     const void *host, char *err, size_t errsz)
{
    memset(w, 0, sizeof *w);
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    size_t bytes = ss_kref_weight_bytes(type, rows, cols);
    if (!bytes || (type == SS_WT_Q8_0 && cols % 32))
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "weight type %d (%dx%d) not supported on CUDA", type,
                         rows, cols);
    if (type != SS_WT_Q8_0) {
        int rc = ss_cuda_malloc(c, &w->data, bytes, err, errsz);
        return rc ? rc : ss_cuda_h2d(c, w->data, host, bytes, err, errsz);
    }
    void *tmp;
    size_t nblocks = (size_t)rows * cols / 32;
    int rc = ss_cuda_malloc(c, &tmp, bytes, err, errsz);
    if (!rc)
        rc = ss_cuda_h2d(c, tmp, host, bytes, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &w->data, (size_t)rows * cols, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &w->scales, nblocks * 2, err, errsz);
    if (rc)
        return rc;
    k_q8_repack<<<(unsigned)((nblocks + 255) / 256), 256, 0, c->stream>>>((const unsigned char *)tmp,
                                                                         (int8_t *)w->data, (__half *)w->scales,
                                                                         nblocks);
    launched(c);
    rc = ss_cuda_sync(c, err, errsz);
    ss_cuda_free(c, tmp);
    return rc;
}

/* ---------------------------------------------------------------- elementwise */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum for blocks of up to 1024 threads. */
__device__ float block_sum(float v, float *sh)
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

__device__ float block_max(float v, float *sh)
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

__global__ void k_rmsnorm(float *y, const float *x, const float *w, int dim, float eps)
{
    __shared__ float sh[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_sum(ss, sh);
    float inv = rsqrtf(ss / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = xr[i] * inv * w[i];
}

extern "C" int ss_cuda_rmsnorm(ss_cuda_t *c, float *y, const float *x, const float *w, int rows, int dim,
                               float eps)
{
    if (rows <= 0)
        return SS_OK;
    k_rmsnorm<<<rows, dim >= 1024 ? 1024 : ((dim + 31) / 32) * 32, 0, c->stream>>>(y, x, w, dim, eps);
    return launched(c);
}

__global__ void k_swiglu(float *out, const float *g, const float *u, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) {
        float x = g[i];
        out[i] = x / (1.0f + __expf(-x)) * u[i];
    }
}

extern "C" int ss_cuda_swiglu(ss_cuda_t *c, float *out, const float *gate, const float *up, size_t n)
{
    if (!n)
        return SS_OK;
    k_swiglu<<<(unsigned)((n + 255) / 256), 256, 0, c->stream>>>(out, gate, up, n);
    return launched(c);
}

__global__ void k_add(float *y, const float *x, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        y[i] += x[i];
}

extern "C" int ss_cuda_add(ss_cuda_t *c, float *y, const float *x, size_t n)
{
    if (!n)
        return SS_OK;
    k_add<<<(unsigned)((n + 255) / 256), 256, 0, c->stream>>>(y, x, n);
    return launched(c);
}

__global__ void k_rope(float *x, const int32_t *pos, int nheads, int hd, int rot, float theta, int neox)
{
    int i = blockIdx.x; /* token */
    int half = rot / 2;
    for (int t = threadIdx.x; t < nheads * half; t += blockDim.x) {
        int h = t / half, j = t % half;
        float freq = powf(theta, -2.0f * (float)j / (float)rot);
        float a = (float)pos[i] * freq, sn, cs;
        sincosf(a, &sn, &cs);
        float *v = x + (size_t)i * nheads * hd + (size_t)h * hd;
        int i0 = neox ? j : 2 * j, i1 = neox ? j + half : 2 * j + 1;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * cs - x1 * sn;
        v[i1] = x0 * sn + x1 * cs;
    }
}

extern "C" int ss_cuda_rope(ss_cuda_t *c, float *x, const int32_t *pos, int n, int nheads, int hd, int rot,
                            float theta, int neox)
{
    if (n <= 0)
        return SS_OK;
    k_rope<<<n, 128, 0, c->stream>>>(x, pos, nheads, hd, rot, theta, neox);
    return launched(c);
}

__device__ __forceinline__ float load_w(int type, const void *data, const void *scales, size_t row_off,
                                        size_t k, int cols)
{
    switch (type) {
    case SS_WT_F32: return ((const float *)data)[row_off + k];
    case SS_WT_F16: return __half2float(((const __half *)data)[row_off + k]);
    case SS_WT_BF16: return __bfloat162float(((const __nv_bfloat16 *)data)[row_off + k]);
    default: {
        float d = __half2float(((const __half *)scales)[(row_off + k) / 32]);
        (void)cols;
        return d * (float)((const int8_t *)data)[row_off + k];
    }
    }
}

__global__ void k_embed(float *out, int type, const void *data, const void *scales, const int32_t *tok, int cols)
{
    size_t off = (size_t)tok[blockIdx.x] * cols;
    for (int k = threadIdx.x; k < cols; k += blockDim.x)
        out[(size_t)blockIdx.x * cols + k] = load_w(type, data, scales, off, (size_t)k, cols);
}

extern "C" int ss_cuda_embed(ss_cuda_t *c, float *out, const ss_cuda_weight_t *t, const int32_t *tok, int n)
{
    if (n <= 0)
        return SS_OK;
    k_embed<<<n, 256, 0, c->stream>>>(out, t->type, t->data, t->scales, tok, t->cols);
    return launched(c);
}

/* ---------------------------------------------------------------- GEMV (B <= 8) */

/* One launch computes y_g = W_g x for up to 3 weights of one type and width (Q|K|V, or the
 * gate/up pair of a feed-forward): warp w of the grid owns row w of the weights' rows laid end to
 * end. The epilogue stores (+ bias), adds into y (the residual add fused), or, for a gate/up pair,
 * writes silu(gate . x) * (up . x) (SwiGLU fused). Each lane strides over the row in 16-byte
 * weight chunks (a lane whose chunk starts past the row's end skips it, so any row length that
 * keeps chunks 16-byte aligned works); x is read through the read-only cache. Fewer, fuller
 * launches matter at batch 1, where a decode step is a chain of small latency-bound kernels. */
enum { GV_STORE = 0, GV_ADD = 1, GV_SWIGLU = 2 };
enum { WK_ANY = 0, WK_F16 = 1, WK_BF16 = 2, WK_Q8 = 3 };

struct gemv_args {
    const void *w[3];
    const __half *sc[3];
    float *y[3];
    const float *bias[3];
    int end[3]; /* rows of weights 0..g together */
    int ng, cols, type, mode;
};

template <int NB>
__device__ __forceinline__ void dot8(float (&acc)[NB], const float (&wf)[8], const float *__restrict__ x, int cols,
                                     int k)
{
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const float4 *xv = (const float4 *)(x + (size_t)b * cols + k);
        float4 a = __ldg(xv), c2 = __ldg(xv + 1);
        acc[b] += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w + wf[4] * c2.x + wf[5] * c2.y +
                  wf[6] * c2.z + wf[7] * c2.w;
    }
}

/* acc[b] += row n of W . x[b] */
template <int NB, int WK>
__device__ __forceinline__ void row_dot(float (&acc)[NB], const float *__restrict__ x, const void *w,
                                        const __half *sc, int type, int n, int cols, int lane)
{
    if (WK == WK_F16 || WK == WK_BF16) {
        const uint16_t *wr = (const uint16_t *)w + (size_t)n * cols;
#pragma unroll 2
        for (int k = lane * 8; k < cols; k += 256) {
            uint4 raw = __ldg((const uint4 *)(wr + k));
            float wf[8];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = WK == WK_F16 ? __half22float2(((const __half2 *)&raw)[j])
                                        : __bfloat1622float2(((const __nv_bfloat162 *)&raw)[j]);
                wf[2 * j] = f.x;
                wf[2 * j + 1] = f.y;
            }
            dot8<NB>(acc, wf, x, cols, k);
        }
    } else if (WK == WK_Q8) {
        const int8_t *qr = (const int8_t *)w + (size_t)n * cols;
        const __half *dr = sc + (size_t)n * (cols / 32);
        for (int k = lane * 16; k < cols; k += 512) {
            int4 raw = __ldg((const int4 *)(qr + k));
            const int8_t *qq = (const int8_t *)&raw;
            float s = __half2float(dr[k / 32]);
            float part[NB];
#pragma unroll
            for (int b = 0; b < NB; b++)
                part[b] = 0;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float wf[8];
#pragma unroll
                for (int j = 0; j < 8; j++)
                    wf[j] = (float)qq[8 * h + j];
                dot8<NB>(part, wf, x, cols, k + 8 * h);
            }
#pragma unroll
            for (int b = 0; b < NB; b++)
                acc[b] += s * part[b];
        }
    } else { /* F32, or shapes the vector paths cannot take */
        size_t off = (size_t)n * cols;
        for (int k = lane; k < cols; k += 32) {
            float wv = load_w(type, w, sc, off, (size_t)k, cols);
#pragma unroll
            for (int b = 0; b < NB; b++)
                acc[b] += wv * __ldg(x + (size_t)b * cols + k);
        }
    }
}

template <int NB, int WK>
__global__ void __launch_bounds__(256) k_gemv(gemv_args a, const float *__restrict__ x)
{
/* constant indices only: a dynamically indexed kernel parameter is copied to local memory by
 * every thread, which costs as much traffic as the weights themselves */
#define PICK(arr, g) ((g) == 0 ? (arr)[0] : (g) == 1 ? (arr)[1] : (arr)[2])
    int gw = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int g = gw < a.end[0] ? 0 : gw < a.end[1] || a.ng < 3 ? 1 : 2;
    if (g >= a.ng || gw >= PICK(a.end, g))
        return;
    int lane = threadIdx.x & 31, base = g ? PICK(a.end, g - 1) : 0, n = gw - base, rows = PICK(a.end, g) - base;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++)
        acc[b] = 0;
    row_dot<NB, WK>(acc, x, PICK(a.w, g), PICK(a.sc, g), a.type, n, a.cols, lane);
    if (a.mode == GV_SWIGLU) {
        float up[NB];
#pragma unroll
        for (int b = 0; b < NB; b++)
            up[b] = 0;
        row_dot<NB, WK>(up, x, a.w[1], a.sc[1], a.type, n, a.cols, lane);
#pragma unroll
        for (int b = 0; b < NB; b++) {
            float gv = warp_sum(acc[b]), uv = warp_sum(up[b]);
            if (lane == 0)
                a.y[0][(size_t)b * rows + n] = gv / (1.0f + __expf(-gv)) * uv;
        }
        return;
    }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        float v = warp_sum(acc[b]);
        if (lane == 0) {
            float *yp = PICK(a.y, g) + (size_t)b * rows + n;
            const float *bias = PICK(a.bias, g);
            v += bias ? bias[n] : 0.0f;
            *yp = a.mode == GV_ADD ? *yp + v : v;
        }
    }
#undef PICK
}

static int gemv_kind(const ss_cuda_weight_t *w, const float *x)
{
    int vec_ok = ((uintptr_t)x % 16 == 0);
    if (w->type == SS_WT_F16 && w->cols % 8 == 0 && vec_ok)
        return WK_F16;
    if (w->type == SS_WT_BF16 && w->cols % 8 == 0 && vec_ok)
        return WK_BF16;
    if (w->type == SS_WT_Q8_0 && w->cols % 16 == 0 && vec_ok)
        return WK_Q8;
    return WK_ANY;
}

template <int NB>
static void launch_gemv(ss_cuda_t *c, const gemv_args &a, const float *x, int wk)
{
    const int warps = 8;
    dim3 grid((unsigned)((a.end[a.ng - 1] + warps - 1) / warps));
    switch (wk) {
    case WK_F16: k_gemv<NB, WK_F16><<<grid, warps * 32, 0, c->stream>>>(a, x); break;
    case WK_BF16: k_gemv<NB, WK_BF16><<<grid, warps * 32, 0, c->stream>>>(a, x); break;
    case WK_Q8: k_gemv<NB, WK_Q8><<<grid, warps * 32, 0, c->stream>>>(a, x); break;
    default: k_gemv<NB, WK_ANY><<<grid, warps * 32, 0, c->stream>>>(a, x); break;
    }
}

static int gemv(ss_cuda_t *c, const gemv_args &a, const float *x, int B, int wk, char *err, size_t errsz)
{
    switch (B) {
    case 1: launch_gemv<1>(c, a, x, wk); break;
    case 2: launch_gemv<2>(c, a, x, wk); break;
    case 3: launch_gemv<3>(c, a, x, wk); break;
    case 4: launch_gemv<4>(c, a, x, wk); break;
    case 5: launch_gemv<5>(c, a, x, wk); break;
    case 6: launch_gemv<6>(c, a, x, wk); break;
    case 7: launch_gemv<7>(c, a, x, wk); break;
    default: launch_gemv<8>(c, a, x, wk); break;
    }
    if (launched(c))
        return ss_seterr(err, errsz, SS_ERR_CUDA, "GEMV launch failed: %s", cudaGetErrorString(c->pending));
    return SS_OK;
}

/* ---------------------------------------------------------------- tensor-core GEMM (B > 8) */

__global__ void k_to_bf16_weight(__nv_bfloat16 *out, int type, const void *data, const void *sc, size_t n, int cols)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16(load_w(type, data, sc, 0, i, cols));
}

__global__ void k_f32_to_bf16(__nv_bfloat16 *out, const float *x, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = __float2bfloat16(x[i]);
}

__global__ void k_add_bias(float *y, const float *bias, int rows, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        y[i] += bias[i % rows];
}

/* y = W x (+ bias), or y += W x with beta = 1 (the residual add fused into the GEMM). */
static int gemm_tc(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w_, const float *bias, int B,
                   float beta, char *err, size_t errsz)
{
    ss_cuda_weight_t *w = (ss_cuda_weight_t *)w_; /* the bf16 copy is a cache of the weight */
    size_t nw = (size_t)w->rows * w->cols, nx = (size_t)B * w->cols;
    const float one = 1.0f;
    cublasStatus_t st;
    if (w->type == SS_WT_F32) {
        /* y^T (rows x B, col-major) = W (rows x cols) . x^T — SGEMM keeps full precision */
        st = cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, B, w->cols, &one, (const float *)w->data,
                         w->cols, x, w->cols, &beta, y, w->rows);
    } else {
        if (!w->bf16) {
            if (w->type == SS_WT_BF16)
                w->bf16 = w->data;
            else {
                int rc = ss_cuda_malloc(c, &w->bf16, nw * 2, err, errsz);
                if (rc)
                    return rc;
                k_to_bf16_weight<<<(unsigned)((nw + 255) / 256), 256, 0, c->stream>>>(
                    (__nv_bfloat16 *)w->bf16, w->type, w->data, w->scales, nw, w->cols);
                if (launched(c))
                    return ss_seterr(err, errsz, SS_ERR_CUDA, "bf16 weight conversion failed to launch");
            }
        }
        if (c->xbf_cap < nx) {
            ss_cuda_free(c, c->xbf_scratch);
            c->xbf_scratch = NULL;
            int rc = ss_cuda_malloc(c, (void **)&c->xbf_scratch, nx * 2, err, errsz);
            if (rc)
                return rc;
            c->xbf_cap = nx;
        }
        k_f32_to_bf16<<<(unsigned)((nx + 255) / 256), 256, 0, c->stream>>>((__nv_bfloat16 *)c->xbf_scratch, x, nx);
        launched(c);
        st = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, B, w->cols, &one, w->bf16, CUDA_R_16BF,
                          w->cols, c->xbf_scratch, CUDA_R_16BF, w->cols, &beta, y, CUDA_R_32F, w->rows,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        return ss_seterr(err, errsz, SS_ERR_CUDA, "cuBLAS GEMM %dx%dx%d failed: status %d", w->rows, B, w->cols,
                         (int)st);
    if (bias) {
        size_t n = (size_t)B * w->rows;
        k_add_bias<<<(unsigned)((n + 255) / 256), 256, 0, c->stream>>>(y, bias, w->rows, n);
        launched(c);
    }
    return SS_OK;
}

static gemv_args one_weight(float *y, const ss_cuda_weight_t *w, const float *bias, int mode)
{
    gemv_args a;
    memset(&a, 0, sizeof a);
    a.w[0] = w->data, a.sc[0] = (const __half *)w->scales, a.y[0] = y, a.bias[0] = bias;
    a.end[0] = w->rows, a.ng = 1, a.cols = w->cols, a.type = w->type, a.mode = mode;
    return a;
}

extern "C" int ss_cuda_matmul(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, const float *bias,
                              int B, char *err, size_t errsz)
{
    if (B <= 0)
        return SS_OK;
    if (B > 8)
        return gemm_tc(c, y, x, w, bias, B, 0.0f, err, errsz);
    return gemv(c, one_weight(y, w, bias, GV_STORE), x, B, gemv_kind(w, x), err, errsz);
}

extern "C" int ss_cuda_matmul_add(ss_cuda_t *c, float *y, const float *x, const ss_cuda_weight_t *w, int B,
                                  char *err, size_t errsz)
{
    if (B <= 0)
        return SS_OK;
    if (B > 8)
        return gemm_tc(c, y, x, w, NULL, B, 1.0f, err, errsz);
    return gemv(c, one_weight(y, w, NULL, GV_ADD), x, B, gemv_kind(w, x), err, errsz);
}

extern "C" int ss_cuda_matmul_multi(ss_cuda_t *c, int nw, float *const *ys, const ss_cuda_weight_t *const *ws,
                                    const float *const *biases, const float *x, int B, char *err, size_t errsz)
{
    int same = nw >= 1 && nw <= 3 && B <= 8;
    for (int i = 1; same && i < nw; i++)
        same = ws[i]->type == ws[0]->type && ws[i]->cols == ws[0]->cols && gemv_kind(ws[i], x) == gemv_kind(ws[0], x);
    if (!same || B <= 0) {
        for (int i = 0; i < nw; i++) {
            int rc = ss_cuda_matmul(c, ys[i], x, ws[i], biases ? biases[i] : NULL, B, err, errsz);
            if (rc)
                return rc;
        }
        return SS_OK;
    }
    gemv_args a = one_weight(ys[0], ws[0], biases ? biases[0] : NULL, GV_STORE);
    for (int i = 1; i < nw; i++) {
        a.w[i] = ws[i]->data, a.sc[i] = (const __half *)ws[i]->scales, a.y[i] = ys[i];
        a.bias[i] = biases ? biases[i] : NULL;
        a.end[i] = a.end[i - 1] + ws[i]->rows;
    }
    a.ng = nw;
    return gemv(c, a, x, B, gemv_kind(ws[0], x), err, errsz);
}

extern "C" int ss_cuda_matmul_swiglu(ss_cuda_t *c, float *out, float *scratch, const float *x,
                                     const ss_cuda_weight_t *gate, const ss_cuda_weight_t *up, int B, char *err,
                                     size_t errsz)
{
    if (B <= 0)
        return SS_OK;
    if (B > 8 || gate->type != up->type || gate->rows != up->rows || gate->cols != up->cols) {
        int rc = ss_cuda_matmul(c, out, x, gate, NULL, B, err, errsz);
        if (!rc)
            rc = ss_cuda_matmul(c, scratch, x, up, NULL, B, err, errsz);
        if (!rc)
            rc = ss_cuda_swiglu(c, out, out, scratch, (size_t)B * gate->rows);
        return rc;
    }
    gemv_args a = one_weight(out, gate, NULL, GV_SWIGLU);
    a.w[1] = up->data, a.sc[1] = (const __half *)up->scales;
    return gemv(c, a, x, B, gemv_kind(gate, x), err, errsz);
}

/* ---------------------------------------------------------------- KV cache and attention */

__device__ __forceinline__ size_t kv_index(const int32_t *bt, int max_blocks, int s, int p, int nkv, int hd, int h)
{
    int blk = bt[(size_t)s * max_blocks + p / SS_KV_BLOCK];
    return (((size_t)blk * nkv + h) * SS_KV_BLOCK + p % SS_KV_BLOCK) * hd;
}

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

/* RoPE on q (in place) and k, and k/v into the paged pools, in one kernel: block (token, head),
 * heads 0..nheads-1 of q then the nkv heads of k (whose block also stores v). The separate rope,
 * rope and store kernels of a decode step cost more in launches than in work. */
__global__ void k_rope_kv(float *q, const float *k, const float *v, float *kp, float *vp, const int32_t *bt,
                          int max_blocks, const int32_t *seq, const int32_t *pos, int nheads, int nkv, int hd,
                          int rot, float theta, int neox)
{
    int i = blockIdx.x, h = blockIdx.y, half = rot / 2;
    float p = (float)pos[i];
    const float *src;
    float *dst;
    if (h < nheads) {
        dst = q + (size_t)i * nheads * hd + (size_t)h * hd;
        src = dst;
    } else {
        h -= nheads;
        src = k + (size_t)i * nkv * hd + (size_t)h * hd;
        dst = kp + kv_index(bt, max_blocks, seq[i], pos[i], nkv, hd, h);
    }
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float freq = powf(theta, -2.0f * (float)j / (float)rot);
        float a = p * freq, sn, cs;
        sincosf(a, &sn, &cs);
        int i0 = neox ? j : 2 * j, i1 = neox ? j + half : 2 * j + 1;
        float x0 = src[i0], x1 = src[i1];
        dst[i0] = x0 * cs - x1 * sn;
        dst[i1] = x0 * sn + x1 * cs;
    }
    if (blockIdx.y < nheads)
        return;
    float *vd = vp + (dst - kp);
    const float *vs = v + (src - k);
    for (int j = threadIdx.x; j < hd; j += blockDim.x) {
        if (j >= rot)
            dst[j] = src[j];
        vd[j] = vs[j];
    }
}

extern "C" int ss_cuda_rope_kv(ss_cuda_t *c, float *q, const float *k, const float *v, float *kpool, float *vpool,
                               const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                               int n, int nheads, int nkv, int hd, int rot, float theta, int neox)
{
    if (n <= 0)
        return SS_OK;
    dim3 grid((unsigned)n, (unsigned)(nheads + nkv));
    k_rope_kv<<<grid, 64, 0, c->stream>>>(q, k, v, kpool, vpool, block_tables, max_blocks, seq, pos, nheads, nkv, hd,
                                          rot, theta, neox);
    return launched(c);
}

#define ATT_TILE_K 32  /* keys per shared-memory tile */
#define ATT_MAX_HD 128
#define ATT_WARPS 8
#define ATT_ITEMS 64   /* (query, head) pairs a block works on at once: 8 per warp */

/* One block per (KV head, query tile): every query head of the GQA group that shares this KV
 * head is handled here, so each K/V tile is read from the pool once for the whole group. Work
 * items are (query, head) pairs; each warp owns 8 of them and keeps, per item, the running max,
 * the running sum and the output accumulator (hd/32 values per lane): online softmax over tiles
 * of 32 keys staged in shared memory (K padded against bank conflicts, float4 global loads). */
__global__ void __launch_bounds__(ATT_WARPS * 32)
k_attention(float *out, const float *q, const float *kp, const float *vp, const int32_t *bt, int max_blocks,
            const int32_t *seq, const int32_t *pos, const int32_t *tile_q0, const int32_t *tile_nq, int nheads,
            int nkv, int hd, float scale)
{
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
        for (int k0 = 0; k0 <= maxpos; k0 += ATT_TILE_K) {
            __syncthreads();
            for (int i = threadIdx.x; i < ATT_TILE_K * hd4; i += blockDim.x) {
                int r = i / hd4, c4 = i % hd4, p = k0 + r;
                float4 kv = make_float4(0, 0, 0, 0), vv = kv;
                if (p <= maxpos) {
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
                if (p <= qp) {
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
                int kmax = min(ATT_TILE_K, qp - k0 + 1);
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
            float inv = l[a] > 0 ? 1.0f / l[a] : 0.0f;
#pragma unroll
            for (int d = 0; d < DPL; d++) {
                int dim = lane + 32 * d;
                if (dim < hd)
                    out[(size_t)(q0 + qi) * nheads * hd + (size_t)h * hd + dim] = acc[a][d] * inv;
            }
        }
    }
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
    size_t smem = (size_t)(ATT_TILE_K * (hd + 1) + ATT_TILE_K * hd + ATT_ITEMS * hd) * sizeof(float);
    static int smem_raised;
    if (!smem_raised) {
        cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024);
        smem_raised = 1;
    }
    dim3 grid((unsigned)nkv, (unsigned)ntiles);
    k_attention<<<grid, ATT_WARPS * 32, smem, c->stream>>>(out, q, kpool, vpool, block_tables, max_blocks, seq, pos,
                                                           tile_q0, tile_nq, nheads, nkv, hd,
                                                           1.0f / sqrtf((float)hd));
    return launched(c);
}

/* ---------------------------------------------------------------- read-out */

__global__ void k_logprob_gather(float *out, const float *logits, int vocab, const int32_t *row, const int32_t *tok)
{
    __shared__ float sh[32];
    const float *l = logits + (size_t)row[blockIdx.x] * vocab;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
        mx = fmaxf(mx, l[v]);
    mx = block_max(mx, sh);
    float s = 0;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
        s += __expf(l[v] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        out[blockIdx.x] = l[tok[blockIdx.x]] - (mx + logf(s));
}

extern "C" int ss_cuda_logprob_gather(ss_cuda_t *c, float *out, const float *logits, int vocab, const int32_t *row,
                                      const int32_t *tok, int n)
{
    if (n <= 0)
        return SS_OK;
    k_logprob_gather<<<n, 256, 0, c->stream>>>(out, logits, vocab, row, tok);
    return launched(c);
}

__global__ void k_row_lse(float *out, const float *logits, int vocab)
{
    __shared__ float sh[32];
    const float *l = logits + (size_t)blockIdx.x * vocab;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
        mx = fmaxf(mx, l[v]);
    mx = block_max(mx, sh);
    float s = 0;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
        s += __expf(l[v] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        out[blockIdx.x] = mx + logf(s);
}

extern "C" int ss_cuda_row_lse(ss_cuda_t *c, float *out, const float *logits, int rows, int vocab)
{
    if (rows <= 0)
        return SS_OK;
    k_row_lse<<<rows, 1024, 0, c->stream>>>(out, logits, vocab); /* one block reads a whole row */
    return launched(c);
}

__global__ void k_gather_rows(float *out, const float *x, const int32_t *idx, int dim)
{
    const float *src = x + (size_t)idx[blockIdx.x] * dim;
    for (int k = threadIdx.x; k < dim; k += blockDim.x)
        out[(size_t)blockIdx.x * dim + k] = src[k];
}

extern "C" int ss_cuda_gather_rows(ss_cuda_t *c, float *out, const float *x, const int32_t *idx, int n, int dim)
{
    if (n <= 0)
        return SS_OK;
    k_gather_rows<<<n, 256, 0, c->stream>>>(out, x, idx, dim);
    return launched(c);
}

__global__ void k_argmax(int32_t *out, const float *logits, int vocab)
{
    __shared__ float sv[1024];
    __shared__ int si[1024];
    const float *l = logits + (size_t)blockIdx.x * vocab;
    float best = -INFINITY;
    int bi = 0;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x)
        if (l[v] > best) {
            best = l[v];
            bi = v;
        }
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) {
            float ov = sv[threadIdx.x + o];
            int oi = si[threadIdx.x + o];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
                sv[threadIdx.x] = ov;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = si[0];
}

extern "C" int ss_cuda_argmax(ss_cuda_t *c, int32_t *out, const float *logits, int rows, int vocab)
{
    if (rows <= 0)
        return SS_OK;
    k_argmax<<<rows, 1024, 0, c->stream>>>(out, logits, vocab);
    return launched(c);
}

/* Log-sum-exp and argmax of each logits row in two stages: SS_CUDA_READOUT_PARTS blocks per row
 * each reduce a slice to (max, first index of the max, sum of exp(x - max)); one warp per row then
 * combines the slices. A single block per row (the kernels above) leaves the GPU idle: at batch 1
 * it took 140 us of a 1.5 ms decode step for a 128k vocabulary. */
__global__ void k_readout_part(float4 *part, const float *logits, int vocab)
{
    __shared__ float sv[256];
    __shared__ int si[256];
    int r = blockIdx.y, chunk = (vocab + gridDim.x - 1) / gridDim.x;
    int lo = blockIdx.x * chunk, hi = min(vocab, lo + chunk);
    const float *l = logits + (size_t)r * vocab;
    float best = -INFINITY;
    int bi = hi;
    for (int v = lo + threadIdx.x; v < hi; v += blockDim.x)
        if (l[v] > best)
            best = l[v], bi = v;
    sv[threadIdx.x] = best;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) {
            float ov = sv[threadIdx.x + o];
            int oi = si[threadIdx.x + o];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x]))
                sv[threadIdx.x] = ov, si[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    float mx = sv[0], sum = 0;
    int idx = si[0];
    for (int v = lo + threadIdx.x; v < hi; v += blockDim.x)
        sum += __expf(l[v] - mx);
    __syncthreads();
    sum = block_sum(sum, sv);
    if (threadIdx.x == 0)
        part[(size_t)r * gridDim.x + blockIdx.x] = make_float4(mx, sum, __int_as_float(idx), 0.0f);
}

__global__ void k_readout_final(float *lse, int32_t *amax, const float4 *part, int nparts)
{
    const float4 *pr = part + (size_t)blockIdx.x * nparts;
    int lane = threadIdx.x;
    float mx = -INFINITY;
    int idx = 0x7fffffff;
    for (int p = lane; p < nparts; p += 32)
        if (pr[p].x > mx || (pr[p].x == mx && __float_as_int(pr[p].z) < idx))
            mx = pr[p].x, idx = __float_as_int(pr[p].z);
    for (int o = 16; o > 0; o >>= 1) {
        float om = __shfl_xor_sync(0xffffffffu, mx, o);
        int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (om > mx || (om == mx && oi < idx))
            mx = om, idx = oi;
    }
    float s = 0;
    for (int p = lane; p < nparts; p += 32)
        if (pr[p].y > 0)
            s += pr[p].y * __expf(pr[p].x - mx);
    s = warp_sum(s);
    if (lane == 0) {
        if (lse)
            lse[blockIdx.x] = mx + logf(s);
        if (amax)
            amax[blockIdx.x] = idx;
    }
}

extern "C" int ss_cuda_lse_argmax(ss_cuda_t *c, float *lse, int32_t *amax, void *part, const float *logits, int rows,
                                  int vocab)
{
    if (rows <= 0)
        return SS_OK;
    dim3 grid(SS_CUDA_READOUT_PARTS, (unsigned)rows);
    k_readout_part<<<grid, 256, 0, c->stream>>>((float4 *)part, logits, vocab);
    k_readout_final<<<rows, 32, 0, c->stream>>>(lse, amax, (const float4 *)part, SS_CUDA_READOUT_PARTS);
    return launched(c);
}

/* ---------------------------------------------------------------- ceilings and timing */

__global__ void k_copy(float4 *dst, const float4 *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

extern "C" int ss_cuda_measure_bandwidth(ss_cuda_t *c, size_t bytes, int iters, double *bps, char *err,
                                         size_t errsz)
{
    void *a, *b;
    int rc = ss_cuda_malloc(c, &a, bytes, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &b, bytes, err, errsz);
    if (rc)
        return rc;
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, c->device);
    size_t n = bytes / 16;
    unsigned grid = (unsigned)prop.multiProcessorCount * 8;
    CU_TRY(cudaMemsetAsync(a, 1, bytes, c->stream));
    k_copy<<<grid, 512, 0, c->stream>>>((float4 *)b, (const float4 *)a, n); /* warm-up */
    CU_TRY(cudaEventRecord(c->t0, c->stream));
    for (int i = 0; i < iters; i++)
        k_copy<<<grid, 512, 0, c->stream>>>((float4 *)b, (const float4 *)a, n);
    CU_TRY(cudaEventRecord(c->t1, c->stream));
    CU_TRY(cudaEventSynchronize(c->t1));
    float ms;
    CU_TRY(cudaEventElapsedTime(&ms, c->t0, c->t1));
    *bps = 2.0 * (double)bytes * iters / (ms / 1e3);
    ss_cuda_free(c, a);
    ss_cuda_free(c, b);
    return SS_OK;
}

extern "C" int ss_cuda_measure_bf16_flops(ss_cuda_t *c, int m, int n, int k, int iters, double *flops, char *err,
                                          size_t errsz)
{
    void *a, *b, *d;
    int rc = ss_cuda_malloc(c, &a, (size_t)m * k * 2, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &b, (size_t)k * n * 2, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &d, (size_t)m * n * 4, err, errsz);
    if (rc)
        return rc;
    CU_TRY(cudaMemsetAsync(a, 0x3c, (size_t)m * k * 2, c->stream));
    CU_TRY(cudaMemsetAsync(b, 0x3c, (size_t)k * n * 2, c->stream));
    const float one = 1.0f, zero = 0.0f;
    for (int i = -2; i < iters; i++) {
        if (i == 0)
            CU_TRY(cudaEventRecord(c->t0, c->stream));
        cublasStatus_t st = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, a, CUDA_R_16BF, k, b,
                                         CUDA_R_16BF, k, &zero, d, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return ss_seterr(err, errsz, SS_ERR_CUDA, "cuBLAS GEMM failed: status %d", (int)st);
    }
    CU_TRY(cudaEventRecord(c->t1, c->stream));
    CU_TRY(cudaEventSynchronize(c->t1));
    float ms;
    CU_TRY(cudaEventElapsedTime(&ms, c->t0, c->t1));
    *flops = 2.0 * m * n * (double)k * iters / (ms / 1e3);
    ss_cuda_free(c, a);
    ss_cuda_free(c, b);
    ss_cuda_free(c, d);
    return SS_OK;
}

extern "C" int ss_cuda_timer_begin(ss_cuda_t *c)
{
    return cudaEventRecord(c->t0, c->stream) == cudaSuccess ? SS_OK : SS_ERR_CUDA;
}

extern "C" int ss_cuda_timer_end(ss_cuda_t *c, float *ms, char *err, size_t errsz)
{
    CU_TRY(cudaEventRecord(c->t1, c->stream));
    CU_TRY(cudaEventSynchronize(c->t1));
    CU_TRY(cudaEventElapsedTime(ms, c->t0, c->t1));
    return SS_OK;
}

/* ---------------------------------------------------------------- profiling */

extern "C" void ss_cuda_prof_mark(ss_cuda_t *c, int stage)
{
    if (!c->prof)
        return;
    if (stage < 0)
        c->np = 0;
    if (c->np >= 256 || stage >= SS_CUDA_PROF_STAGES)
        return;
    cudaEventRecord(c->pev[c->np], c->stream);
    c->pstage[c->np++] = stage;
}

extern "C" void ss_cuda_prof_collect(ss_cuda_t *c)
{
    if (!c->prof || c->np < 2)
        return;
    cudaEventSynchronize(c->pev[c->np - 1]);
    for (int i = 1; i < c->np; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, c->pev[i - 1], c->pev[i]) == cudaSuccess && c->pstage[i] >= 0) {
            c->pms[c->pstage[i]] += ms;
            c->pcount[c->pstage[i]]++;
        }
    }
    c->np = 0;
}

extern "C" void ss_cuda_prof_report(ss_cuda_t *c, const char *const *names, const char *title)
{
    if (!c || !c->prof)
        return;
    double total = 0;
    for (int i = 0; i < SS_CUDA_PROF_STAGES; i++)
        total += c->pms[i];
    fprintf(stderr, "CUDA profile (%s): %.3f ms of GPU time in marked stages\n", title, total);
    for (int i = 0; i < SS_CUDA_PROF_STAGES; i++)
        if (c->pcount[i])
            fprintf(stderr, "  %-12s %10.3f ms  %5.1f%%  (%ld)\n", names && names[i] ? names[i] : "?", c->pms[i],
                    100.0 * c->pms[i] / (total > 0 ? total : 1), c->pcount[i]);
}

/* ---------------------------------------------------------------- graphs */

struct ss_cuda_graph {
    cudaGraph_t g;
    cudaGraphExec_t exec;
};

extern "C" int ss_cuda_graph_begin(ss_cuda_t *c, char *err, size_t errsz)
{
    CU_TRY(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    return SS_OK;
}

extern "C" int ss_cuda_graph_end(ss_cuda_t *c, ss_cuda_graph_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_cuda_graph_t *g = (ss_cuda_graph_t *)calloc(1, sizeof *g);
    cudaError_t e = cudaStreamEndCapture(c->stream, g ? &g->g : NULL);
    if (!g)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (e == cudaSuccess && c->pending == cudaSuccess)
        e = cudaGraphInstantiate(&g->exec, g->g, 0);
    if (e != cudaSuccess || c->pending != cudaSuccess) {
        cudaError_t pe = c->pending;
        c->pending = cudaSuccess;
        cudaGetLastError();
        if (g->g)
            cudaGraphDestroy(g->g);
        free(g);
        return ss_seterr(err, errsz, SS_ERR_CUDA, "CUDA graph capture failed: %s",
                         cudaGetErrorString(e != cudaSuccess ? e : pe));
    }
    *out = g;
    return SS_OK;
}

extern "C" int ss_cuda_graph_launch(ss_cuda_t *c, ss_cuda_graph_t *g, char *err, size_t errsz)
{
    CU_TRY(cudaGraphLaunch(g->exec, c->stream));
    return SS_OK;
}

extern "C" void ss_cuda_graph_destroy(ss_cuda_graph_t *g)
{
    if (!g)
        return;
    cudaGraphExecDestroy(g->exec);
    cudaGraphDestroy(g->g);
    free(g);
}
