/*
 * cuda_measure.cu — measuring on the GPU: the hardware ceilings the benchmarks divide by
 * (copy bandwidth; cuBLAS bf16 GEMM rates on constant or random inputs), the pass timer
 * (SS_CUDA_TIMING) and the profiler (SS_CUDA_PROFILE: CUDA events between marked stages,
 * or around every launch in kernel mode, summed per stage or per launching function).
 * Exports only extern "C" functions of ss_cuda.h (and ss_cuda_prof_kernel for the
 * launch check of cuda_int.cuh).
 */
#include "cuda_int.cuh"

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
    float ms;
    if ((rc = ss_cuda_timer_end(c, &ms, err, errsz)))
        return rc;
    *bps = 2.0 * (double)bytes * iters / (ms / 1e3);
    ss_cuda_free(c, a);
    ss_cuda_free(c, b);
    return SS_OK;
}

/* Fills n bf16 values with a hash of their index, uniform in [-scale, scale). */
__global__ void k_fill_random_bf16(__nv_bfloat16 *x, size_t n, unsigned seed, float scale)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 16, h *= 0x85ebca6bu, h ^= h >> 13, h *= 0xc2b2ae35u, h ^= h >> 16;
    x[i] = __float2bfloat16(scale * ((h >> 8) * (2.0f / 16777216.0f) - 1.0f));
}

extern "C" int ss_cuda_measure_gemm(ss_cuda_t *c, int m, int n, int k, int flags, int iters, double *flops,
                                    char *err, size_t errsz)
{
    void *a, *b, *d;
    int obf = flags & SS_CUDA_GEMM_OUT_BF16, na_ = flags & SS_CUDA_GEMM_LAYERS ? 16 : 1;
    size_t na = (size_t)m * k, nb = (size_t)k * n;
    int rc = ss_cuda_malloc(c, &a, na * 2 * na_, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &b, nb * 2, err, errsz);
    if (!rc)
        rc = ss_cuda_malloc(c, &d, (size_t)m * n * (obf ? 2 : 4), err, errsz);
    if (rc)
        return rc;
    if (flags & SS_CUDA_GEMM_RANDOM) { /* weights ~ 1/sqrt(k), activations ~ 1: what a model's GEMM sees */
        k_fill_random_bf16<<<(unsigned)((na * na_ + 255) / 256), 256, 0, c->stream>>>((__nv_bfloat16 *)a, na * na_,
                                                                                      17u, 1.7f / sqrtf((float)k));
        k_fill_random_bf16<<<(unsigned)((nb + 255) / 256), 256, 0, c->stream>>>((__nv_bfloat16 *)b, nb, 91u, 1.7f);
        CU_TRY(cudaGetLastError());
    } else {
        CU_TRY(cudaMemsetAsync(a, 0x3c, na * 2 * na_, c->stream));
        CU_TRY(cudaMemsetAsync(b, 0x3c, nb * 2, c->stream));
    }
    const float one = 1.0f, zero = 0.0f;
    for (int i = -2; i < iters; i++) {
        if (i == 0)
            CU_TRY(cudaEventRecord(c->t0, c->stream));
        const __nv_bfloat16 *ai = (const __nv_bfloat16 *)a + (size_t)((i + 2) % na_) * na;
        cublasStatus_t st = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, ai, CUDA_R_16BF, k, b,
                                         CUDA_R_16BF, k, &zero, d, obf ? CUDA_R_16BF : CUDA_R_32F, m,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return ss_seterr(err, errsz, SS_ERR_CUDA, "cuBLAS GEMM failed: status %d", (int)st);
    }
    float ms;
    if ((rc = ss_cuda_timer_end(c, &ms, err, errsz)))
        return rc;
    *flops = 2.0 * m * n * (double)k * iters / (ms / 1e3);
    ss_cuda_free(c, a);
    ss_cuda_free(c, b);
    ss_cuda_free(c, d);
    return SS_OK;
}

extern "C" int ss_cuda_measure_bf16_flops(ss_cuda_t *c, int m, int n, int k, int iters, double *flops, char *err,
                                          size_t errsz)
{
    return ss_cuda_measure_gemm(c, m, n, k, 0, iters, flops, err, errsz);
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

static void prof_record(ss_cuda_t *c, int stage, const char *name)
{
    if (c->np >= SS_CUDA_PROF_EVENTS)
        return;
    cudaEventRecord(c->pev[c->np], c->stream);
    c->pstage[c->np] = stage;
    c->pname[c->np++] = name;
    c->phost1 = ss_now_ns();
    if (c->np == 1)
        c->phost0 = c->phost1;
}

extern "C" void ss_cuda_prof_mark(ss_cuda_t *c, int stage)
{
    if (!c->prof)
        return;
    if (stage < 0)
        c->np = 0;
    if (stage < SS_CUDA_PROF_STAGES && (c->prof == 1 || stage < 0)) /* kernel mode: only the pass start */
        prof_record(c, stage, NULL);
}

void ss_cuda_prof_kernel(ss_cuda_t *c, const char *name)
{
    if (c->np > 0) /* inside a marked pass */
        prof_record(c, -1, name);
}

/* The kernel-mode total of one name (a new row when there is room). */
static void prof_kernel_add(ss_cuda_t *c, const char *name, float ms)
{
    int i = 0;
    while (i < c->npk && strcmp(c->pk[i].name, name))
        i++;
    if (i == c->npk) {
        if (c->npk == SS_CUDA_PROF_KERNELS)
            return;
        snprintf(c->pk[c->npk++].name, sizeof c->pk[0].name, "%s", name);
        c->pk[i].lo = ms, c->pk[i].hi = ms;
    }
    c->pk[i].ms += ms;
    c->pk[i].lo = ms < c->pk[i].lo ? ms : c->pk[i].lo;
    c->pk[i].hi = ms > c->pk[i].hi ? ms : c->pk[i].hi;
    c->pk[i].n++;
}

extern "C" void ss_cuda_prof_discard(ss_cuda_t *c)
{
    if (c->prof && c->np > 0)
        cudaEventSynchronize(c->pev[c->np - 1]);
    c->np = 0;
}

extern "C" void ss_cuda_prof_collect(ss_cuda_t *c)
{
    if (!c->prof || c->np < 2)
        return;
    cudaEventSynchronize(c->pev[c->np - 1]);
    for (int i = 1; i < c->np; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, c->pev[i - 1], c->pev[i]) != cudaSuccess)
            continue;
        if (c->pname[i])
            prof_kernel_add(c, c->pname[i], ms);
        else if (c->pstage[i] >= 0) {
            c->pms[c->pstage[i]] += ms;
            c->pcount[c->pstage[i]]++;
        }
    }
    float span = 0;
    if (c->prof == 2 && cudaEventElapsedTime(&span, c->pev[0], c->pev[c->np - 1]) == cudaSuccess) {
        c->pk_gpu_ms += span;
        c->pk_host_ms += (c->phost1 - c->phost0) / 1e6;
        c->pk_passes++;
    }
    c->np = 0;
}

/* Kernel mode: the launches by name, largest first, and whether the host kept the GPU fed. */
static void prof_report_kernels(ss_cuda_t *c, const char *title)
{
    double total = 0;
    for (int i = 0; i < c->npk; i++)
        total += c->pk[i].ms;
    fprintf(stderr, "CUDA kernel profile (%s): %ld passes, %.3f ms GPU span, %.3f ms host enqueue span\n", title,
            c->pk_passes, c->pk_gpu_ms, c->pk_host_ms);
    fprintf(stderr, "  (each launch is charged the GPU time since the previous mark, idle gaps included)\n");
    for (int done = 0; done < c->npk; done++) {
        int best = -1;
        for (int i = 0; i < c->npk; i++)
            if (c->pk[i].n > 0 && (best < 0 || c->pk[i].ms > c->pk[best].ms))
                best = i;
        if (best < 0)
            break;
        fprintf(stderr, "  %-34s %9.3f ms %5.1f%%  (%ld, %.1f us each, %.1f..%.1f)\n", c->pk[best].name,
                c->pk[best].ms, 100.0 * c->pk[best].ms / (total > 0 ? total : 1), c->pk[best].n,
                1e3 * c->pk[best].ms / c->pk[best].n, 1e3 * c->pk[best].lo, 1e3 * c->pk[best].hi);
        c->pk[best].n = -c->pk[best].n; /* printed */
    }
    for (int i = 0; i < c->npk; i++)
        c->pk[i].n = -c->pk[i].n;
}

extern "C" void ss_cuda_prof_report(ss_cuda_t *c, const char *const *names, const char *title)
{
    if (!c || !c->prof)
        return;
    if (c->prof == 2) {
        prof_report_kernels(c, title);
        return;
    }
    double total = 0;
    for (int i = 0; i < SS_CUDA_PROF_STAGES; i++)
        total += c->pms[i];
    fprintf(stderr, "CUDA profile (%s): %.3f ms of GPU time in marked stages\n", title, total);
    for (int i = 0; i < SS_CUDA_PROF_STAGES; i++)
        if (c->pcount[i])
            fprintf(stderr, "  %-12s %10.3f ms  %5.1f%%  (%ld)\n", names && names[i] ? names[i] : "?", c->pms[i],
                    100.0 * c->pms[i] / (total > 0 ? total : 1), c->pcount[i]);
}

