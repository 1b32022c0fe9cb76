/*
 * infer.c — bench_infer: the CPU engine on random-weight models in a real model's shape
 * (written once with gpu/mkmodel.c into --dir), against ceilings measured in the same run:
 *   - read bandwidth: a STREAM-style read loop (vector loads into independent accumulators,
 *     1 GiB buffer on huge pages, one and two interleaved streams per thread, with and without
 *     software prefetch; the best pass of any);
 *   - the int8 dot-product peak (vpdpbusd: 64 multiply-adds per instruction), the fp32 FMA
 *     peak and the bf16 dot peak (vdpbf16ps), each from 24 independent register-resident
 *     chains per thread.
 * For every weight type or llama.cpp mixture and every thread count it measures
 *   - decode at batch 1: tokens/s of greedy generation (engine-timed decode steps) and the
 *     weight bytes it streams (the matrices a token reads, as stored in the GGUF) per second,
 *     as a fraction of the read bandwidth;
 *   - prefill of one prompt of --prompt tokens: the FLOPs of the weight-matrix products
 *     (2 x parameters x tokens, plus the output head for the last token) per second, as a
 *     fraction of the peak of the instruction the kernel uses (int8 VNNI for quantized types,
 *     fp32 FMA for F32/F16/BF16).
 * Each measurement is repeated --reps times; the median is reported with the spread (lowest-
 * highest). The ceilings are measured at the start and again at the end, and the fractions in
 * the final table and the JSON use the higher of the two (the machine may be shared).
 * Writes bench/results/infer.json (--out).
 *
 * With --kernels it first times the matrix kernels alone (one 2048 x 2048 weight per type, in
 * cache and streamed from memory); --kernels-only stops after them (no model files, no JSON).
 *
 *   bench_infer [--shape NAME] [--types q4_k_m,q8_0,f16,...] [--threads 1,2] [--prompt N] [--gen N]
 *               [--layers N] [--reps R] [--dir /tmp] [--out FILE] [--kernels | --kernels-only]
 */
#include "llm_internal.h"
#include "ss_gguf.h"
#include "ss_llm.h"

#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_s(void) { return (double)ss_now_ns() / 1e9; }

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---------------- read bandwidth ---------------- */

#if defined(__x86_64__)
#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,avx2,fma")))
#define T2 __attribute__((target("avx2,fma")))

/* Sum of n bytes (a multiple of 256) in s interleaved streams, 4 loads in flight per stream;
 * pf > 0: also a software prefetch pf bytes ahead of each line (as the decode kernel does). */
static T5 long read512(const char *p, size_t n, int s, int pf)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    if (pf) {
        for (size_t i = 0; i < n; i += 256) {
            for (int l = 0; l < 256; l += 64)
                _mm_prefetch(p + i + (size_t)pf + l, _MM_HINT_T0);
            a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
            a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
            a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
            a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
        }
    } else if (s == 1) {
        for (size_t i = 0; i < n; i += 256) {
            a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
            a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
            a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
            a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
        }
    } else {
        const char *q = p + n / 2;
        for (size_t i = 0; i < n / 2; i += 256) {
            a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
            b0 = _mm512_add_epi64(b0, _mm512_load_si512(q + i));
            a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
            b1 = _mm512_add_epi64(b1, _mm512_load_si512(q + i + 64));
            a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
            b2 = _mm512_add_epi64(b2, _mm512_load_si512(q + i + 128));
            a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
            b3 = _mm512_add_epi64(b3, _mm512_load_si512(q + i + 192));
        }
    }
    __m512i t = _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)),
                                 _mm512_add_epi64(_mm512_add_epi64(b0, b1), _mm512_add_epi64(b2, b3)));
    return _mm512_reduce_add_epi64(t);
}

static T2 long read256(const char *p, size_t n, int s)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    (void)s;
    for (size_t i = 0; i < n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    long t[4];
    _mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    return t[0] + t[1] + t[2] + t[3];
}
#endif

static long read_scalar(const char *p, size_t n)
{
    long s[4] = {0};
    for (size_t i = 0; i < n; i += 32)
        for (int k = 0; k < 4; k++) {
            long v;
            memcpy(&v, p + i + 8 * k, 8);
            s[k] += v;
        }
    return s[0] + s[1] + s[2] + s[3];
}

static long read_part(const char *p, size_t n, int streams, int pf)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        return read512(p, n - (size_t)pf, streams, pf);
    if (__builtin_cpu_supports("avx2"))
        return read256(p, n, streams);
#endif
    (void)streams;
    (void)pf;
    return read_scalar(p, n);
}

/* Best bytes/s over passes of threads reading their own contiguous part of a 1 GiB buffer. */
/* Best bytes/s (wall) over the passes; *per_cpu: the best bytes per second of the readers' own CPU
 * time (what a thread achieves while it runs; a shared machine's time slicing does not show). */
static double read_bandwidth(int threads, int passes, double *per_cpu)
{
    size_t n = (size_t)1 << 30;
    char *buf = aligned_alloc((size_t)2 << 20, n);
    *per_cpu = 0;
    if (!buf)
        return 0;
    madvise(buf, n, MADV_HUGEPAGE);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i += 4096)
        memset(buf + i, (int)(i >> 12) & 255, 4096);
    double best = 0;
    long sink = 0;
    /* variants: one stream, two interleaved streams, one stream with software prefetch 2, 4, 8
     * and 16 KiB ahead (the decode kernels use 2 KiB for the legacy types, 8 KiB for the
     * K-quants: a ceiling must be at least as good as any of them); the best pass of any is the
     * ceiling */
    static const int var[][2] = {{1, 0}, {2, 0}, {1, 2048}, {1, 4096}, {1, 8192}, {1, 16384}};
    for (int rep = 0; rep < passes; rep++)
        for (size_t v = 0; v < SS_ARRAY_LEN(var); v++) {
            size_t part = (n / (size_t)threads) & ~(size_t)4095;
            double t0 = now_s(), cpu = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : sink, cpu)
            for (int t = 0; t < threads; t++) {
                double c0 = thread_cpu_s();
                sink += read_part(buf + (size_t)t * part, part, var[v][0], var[v][1]);
                cpu += thread_cpu_s() - c0;
            }
            double dt = now_s() - t0, bytes = (double)(part - (size_t)var[v][1]) * threads;
            best = SS_MAX(best, bytes / dt);
            *per_cpu = SS_MAX(*per_cpu, bytes / cpu * threads);
        }
    if (sink == 42)
        printf(" ");
    free(buf);
    return best;
}

/* ---------------- instruction peaks ---------------- */

#if defined(__x86_64__)
/* Instruction rates, measured with the loop written in assembly so that no compiler can spill,
 * hoist or fuse anything: 24 independent accumulators (zmm0-23, or ymm0-11 on AVX2) each
 * updated once per iteration from two constant operands (zmm30, zmm31). */
#define X24(op, a, b)                                                                                          \
    op " " a ", " b ", %%zmm0\n" op " " a ", " b ", %%zmm1\n" op " " a ", " b ", %%zmm2\n" op " " a ", " b    \
       ", %%zmm3\n" op " " a ", " b ", %%zmm4\n" op " " a ", " b ", %%zmm5\n" op " " a ", " b ", %%zmm6\n" op   \
       " " a ", " b ", %%zmm7\n" op " " a ", " b ", %%zmm8\n" op " " a ", " b ", %%zmm9\n" op " " a ", " b      \
       ", %%zmm10\n" op " " a ", " b ", %%zmm11\n" op " " a ", " b ", %%zmm12\n" op " " a ", " b ", %%zmm13\n"   \
       op " " a ", " b ", %%zmm14\n" op " " a ", " b ", %%zmm15\n" op " " a ", " b ", %%zmm16\n" op " " a ", "   \
       b ", %%zmm17\n" op " " a ", " b ", %%zmm18\n" op " " a ", " b ", %%zmm19\n" op " " a ", " b ", %%zmm20\n" \
       op " " a ", " b ", %%zmm21\n" op " " a ", " b ", %%zmm22\n" op " " a ", " b ", %%zmm23\n"
#define CLOBBER24                                                                                              \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",  \
        "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",        \
        "xmm30", "xmm31"

/* kind 0: vpdpbusd, 1: vfmadd231ps, 2: vdpbf16ps (zmm). Instructions per second. */
static T5 double peak512(int kind, long iters, double *cpu)
{
    double t0 = now_s(), c0 = thread_cpu_s();
    long n = iters;
    if (kind == 0)
        __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31\n"
                         "1:\n" X24("vpdpbusd", "%%zmm30", "%%zmm31") "dec %0\n jnz 1b\n"
                         : "+r"(n)
                         :
                         : CLOBBER24, "cc");
    else if (kind == 1)
        __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n vpxord %%zmm31, %%zmm31, %%zmm31\n"
                         "1:\n" X24("vfmadd231ps", "%%zmm30", "%%zmm31") "dec %0\n jnz 1b\n"
                         : "+r"(n)
                         :
                         : CLOBBER24, "cc");
    else
        __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n vpxord %%zmm31, %%zmm31, %%zmm31\n"
                         "1:\n" X24("vdpbf16ps", "%%zmm30", "%%zmm31") "dec %0\n jnz 1b\n"
                         : "+r"(n)
                         :
                         : CLOBBER24, "cc");
    *cpu = thread_cpu_s() - c0;
    return (double)iters * 24 / (now_s() - t0);
}

#define X12(op)                                                                                                \
    op " %%ymm14, %%ymm15, %%ymm0\n" op " %%ymm14, %%ymm15, %%ymm1\n" op " %%ymm14, %%ymm15, %%ymm2\n" op       \
       " %%ymm14, %%ymm15, %%ymm3\n" op " %%ymm14, %%ymm15, %%ymm4\n" op " %%ymm14, %%ymm15, %%ymm5\n" op        \
       " %%ymm14, %%ymm15, %%ymm6\n" op " %%ymm14, %%ymm15, %%ymm7\n" op " %%ymm14, %%ymm15, %%ymm8\n" op        \
       " %%ymm14, %%ymm15, %%ymm9\n" op " %%ymm14, %%ymm15, %%ymm10\n" op " %%ymm14, %%ymm15, %%ymm11\n"
static T2 double fma256(long iters, double *cpu)
{
    double t0 = now_s(), c0 = thread_cpu_s();
    long n = iters;
    __asm__ volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n vpxor %%ymm15, %%ymm15, %%ymm15\n"
                     "1:\n" X12("vfmadd231ps") "dec %0\n jnz 1b\n"
                     : "+r"(n)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm14", "xmm15", "cc");
    *cpu = thread_cpu_s() - c0;
    return (double)iters * 12 / (now_s() - t0);
}
#endif

typedef struct peaks {
    double int8;  /* int8 dot-product ops/s (2 per multiply-add), all threads */
    double fp32;  /* fp32 FMA flops/s */
    double bf16;  /* bf16 dot flops/s */
    double int8_cpu, fp32_cpu, bf16_cpu; /* the same per second of the threads' mean CPU time (all threads) */
    const char *isa;
} peaks_t;

/* Best of 3 over all threads at once (each thread its own chains; 12 on AVX2, which has 16 registers). */
static peaks_t measure_peaks(int threads)
{
    peaks_t p = {0, 0, 0, 0, 0, 0, "none"};
#if defined(__x86_64__)
    int w512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") &&
               __builtin_cpu_supports("avx512bf16");
    long iters = 4000000;
    for (int rep = 0; rep < 3; rep++)
        for (int kind = 0; kind < 3; kind++) {
            if (!w512 && kind != 1)
                continue;
            double tot = 0, cpu = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tot, cpu)
            {
                double c = 0;
                tot += w512 ? peak512(kind, iters, &c) : fma256(iters, &c);
                cpu += c;
            }
            double per = kind == 0 ? 64 * 2 : kind == 1 ? (w512 ? 16 : 8) * 2 : 32 * 2; /* ops per instruction */
            double *dst = kind == 0 ? &p.int8 : kind == 1 ? &p.fp32 : &p.bf16;
            double *dc = kind == 0 ? &p.int8_cpu : kind == 1 ? &p.fp32_cpu : &p.bf16_cpu;
            *dst = SS_MAX(*dst, tot * per);
            /* all threads' instructions over one thread's mean CPU time (cpu / threads): the
             * threads' combined rate while they run, as the read ceiling and the runs count it */
            *dc = SS_MAX(*dc, (double)iters * (w512 ? 24 : 12) * threads * threads / cpu * per);
        }
    p.isa = w512 ? "avx512 (vpdpbusd zmm, vfmadd zmm, vdpbf16ps zmm)" : "avx2 (vfmadd ymm)";
#else
    (void)threads;
#endif
    return p;
}

/* ---------------- model runs ---------------- */

static char *make_text(int words)
{
    static const char *w[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and",
                              "runs", "into", "a", "forest", "where", "birds", "sing"};
    ss_buf_t b = SS_BUF_INIT;
    unsigned s = 12345;
    for (int k = 0; k < words; k++) {
        s = s * 1103515245u + 12345u;
        ss_buf_printf(&b, "%s%s", k ? " " : "", w[(s >> 16) % 16]);
    }
    return ss_buf_take(&b);
}

typedef struct stat3 {
    double med, lo, hi;
} stat3_t;

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static stat3_t stat_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return (stat3_t){v[n / 2], v[0], v[n - 1]};
}

/* Bytes of the matrices one decoded token reads (as stored in the file): every layer matrix and
 * the output projection (the tied embedding when there is none); one embedding row otherwise. */
static double token_bytes(const ss_gguf_t *g, int tied)
{
    double b = 0;
    for (uint64_t i = 0; i < g->ntensors; i++) {
        const ss_gguf_tensor_t *t = &g->tensors[i];
        int emb = t->name.n == 17 && !memcmp(t->name.p, "token_embd.weight", 17);
        if (t->ndim == 2 && (!emb || tied))
            b += (double)t->nbytes;
    }
    return b;
}

typedef struct run {
    stat3_t prefill_tps, decode_tps;
    stat3_t prefill_cpu, decode_cpu; /* tokens per second of process CPU time (all threads) */
    double load_s;
} run_t;

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int measure(const char *path, int threads, int plen, int gen, int reps, run_t *r, char *err, size_t errsz)
{
    ss_llm_opts_t o = {.threads = threads, .no_prefix_cache = 1};
    ss_llm_t *m = NULL;
    double t0 = now_s();
    if (ss_llm_open(path, &o, &m, err, errsz))
        return -1;
    r->load_s = now_s() - t0;
    char *text = make_text(plen * 2);
    int *toks = malloc((size_t)(plen * 8 + 16) * sizeof(int));
    int n = SS_MIN(ss_llm_tokenize(m, text, 1, toks, plen * 8 + 16), plen);
    float *lg = malloc((size_t)ss_llm_config(m)->vocab_size * sizeof(float));
    double pf[16], dc[16], pfc[16], dcc[16];
    int rc = 0;
    /* warm-up: the weights' pages and every code path once */
    const int *tp = toks;
    int w = SS_MIN(n, 64);
    rc |= ss_llm_last_logits(m, 1, &tp, &w, lg, err, errsz);
    for (int k = 0; k < reps && !rc; k++) {
        double a = now_s(), ac = cpu_s();
        rc |= ss_llm_last_logits(m, 1, &tp, &n, lg, err, errsz);
        pf[k] = n / (now_s() - a);
        pfc[k] = n / (cpu_s() - ac);
        ac = cpu_s();
        ss_llm_stats_t s0, s1;
        ss_llm_stats(m, &s0);
        ss_infer_req_t q = {.kind = SS_INFER_GENERATE, .prompt = "the quick brown fox", .max_tokens = gen + 1};
        ss_infer_res_t res = {0};
        rc |= ss_llm_run(m, &q, 1, &res, err, errsz);
        ss_infer_res_clear(&res);
        ss_llm_stats(m, &s1);
        double dt = (double)(s1.decode_ns - s0.decode_ns) / 1e9;
        dc[k] = (double)(s1.decode_tokens - s0.decode_tokens) / (dt > 0 ? dt : 1e-9);
        dcc[k] = (double)(s1.decode_tokens - s0.decode_tokens) / (cpu_s() - ac); /* includes its 4-token prompt */
    }
    if (!rc) {
        r->prefill_tps = stat_of(pf, reps);
        r->decode_tps = stat_of(dc, reps);
        r->prefill_cpu = stat_of(pfc, reps);
        r->decode_cpu = stat_of(dcc, reps);
    }
    free(text);
    free(toks);
    free(lg);
    ss_llm_close(m);
    return rc ? -1 : 0;
}

/* The file of a type or mix (written if absent). */
static int model_file(const char *shape, const char *spec, int layers, const char *dir, char *path, size_t pathsz,
                      char *err, size_t errsz)
{
    ss_mkmodel_spec_t s;
    if (!ss_mkmodel_shape(shape, &s))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "unknown shape '%s' (%s)", shape, ss_mkmodel_shape_names());
    int mix = ss_mkmodel_mix_parse(spec), ty = ss_ggml_type_parse(spec);
    if (mix > 0)
        s.mix = mix;
    else if (ty >= 0)
        s.type = ty;
    else
        return ss_seterr(err, errsz, SS_ERR_INVALID, "unknown type or mix '%s'", spec);
    if (layers > 0)
        s.n_layers = layers;
    snprintf(path, pathsz, "%s/semstream-bench-%s-%s-%dl.gguf", dir, shape, spec, s.n_layers);
    if (access(path, R_OK) == 0)
        return 0;
    printf("  writing %s ...\n", path);
    fflush(stdout);
    return ss_mkmodel_write(&s, path, err, errsz) ? -1 : 0;
}

static void loadavg(char *buf, size_t n)
{
    FILE *la = fopen("/proc/loadavg", "r");
    if (!la || !fgets(buf, (int)n, la))
        snprintf(buf, n, "?");
    if (la)
        fclose(la);
    buf[strcspn(buf, "\n")] = 0;
}

typedef struct ceil {
    double bw, bw_cpu; /* bytes/s (wall, all threads); bytes per second of one reader's CPU time x threads */
    peaks_t pk;
} ceil_t;

static void measure_ceilings(int threads, ceil_t *c, const char *when)
{
    c->bw = read_bandwidth(threads, 5, &c->bw_cpu);
    c->pk = measure_peaks(threads);
    printf("  ceilings %s, %d thread%s: read %.1f GB/s; int8 dot %.0f GOP/s, fp32 FMA %.0f GFLOP/s, bf16 dot %.0f "
           "GFLOP/s (%s)\n"
           "    per second of the threads' CPU time: read %.1f GB/s, int8 %.0f GOP/s, fp32 %.0f GFLOP/s\n",
           when, threads, threads > 1 ? "s" : "", c->bw / 1e9, c->pk.int8 / 1e9, c->pk.fp32 / 1e9, c->pk.bf16 / 1e9,
           c->pk.isa, c->bw_cpu / 1e9, c->pk.int8_cpu / 1e9, c->pk.fp32_cpu / 1e9);
    fflush(stdout);
}

typedef struct res {
    char type[24];
    int ti, quant;
    double tbytes, pflops, params;
    run_t run;
} res_t;

static void print_run(const res_t *r, const ceil_t *c, int threads, int plen)
{
    double peak = r->quant ? c->pk.int8 : c->pk.fp32;
    const stat3_t *p = &r->run.prefill_tps, *d = &r->run.decode_tps;
    double f = r->pflops / plen;
    printf("  %-7s %d thr: prefill %7.1f tok/s = %6.1f GOP/s = %.3f of the %s peak (%.3f-%.3f); decode %6.1f tok/s x "
           "%.0f MB = %5.1f GB/s = %.3f of read bandwidth (%.3f-%.3f); load %.2f s\n",
           r->type, threads, p->med, f * p->med / 1e9, f * p->med / peak, r->quant ? "int8" : "fp32",
           f * p->lo / peak, f * p->hi / peak, d->med, r->tbytes / 1e6, r->tbytes * d->med / 1e9,
           r->tbytes * d->med / c->bw, r->tbytes * d->lo / c->bw, r->tbytes * d->hi / c->bw, r->run.load_s);
    double peak_cpu = r->quant ? c->pk.int8_cpu : c->pk.fp32_cpu;
    printf("           per second of CPU time (threads x seconds): prefill %.1f tok = %.3f of the peak; decode %.1f tok "
           "= %.3f of read bandwidth (the ceilings per CPU second too)\n",
           r->run.prefill_cpu.med * threads, f * r->run.prefill_cpu.med * threads / peak_cpu,
           r->run.decode_cpu.med * threads, r->tbytes * r->run.decode_cpu.med * threads / c->bw_cpu);
    fflush(stdout);
}

static void json_run(ss_buf_t *js, const res_t *r, const ceil_t *c, int threads, int plen, int first)
{
    double peak = r->quant ? c->pk.int8 : c->pk.fp32, f = r->pflops / plen;
    const stat3_t *p = &r->run.prefill_tps, *d = &r->run.decode_tps;
    ss_buf_printf(js,
                  "%s{\"type\":\"%s\",\"threads\":%d,\"token_bytes\":%.0f,\"matmul_params\":%.0f,"
                  "\"prefill_tok_s\":[%.2f,%.2f,%.2f],\"prefill_gops\":%.2f,\"prefill_peak\":\"%s\","
                  "\"prefill_peak_frac\":[%.4f,%.4f,%.4f],\"decode_tok_s\":[%.2f,%.2f,%.2f],\"decode_gbs\":%.2f,"
                  "\"decode_bw_frac\":[%.4f,%.4f,%.4f],\"prefill_tok_per_cpu_s\":[%.2f,%.2f,%.2f],"
                  "\"decode_tok_per_cpu_s\":[%.2f,%.2f,%.2f],\"prefill_peak_frac_cpu\":%.4f,"
                  "\"decode_bw_frac_cpu\":%.4f,\"load_s\":%.3f}",
                  first ? "" : ",", r->type, threads, r->tbytes, r->params, p->med, p->lo, p->hi, f * p->med / 1e9,
                  r->quant ? "int8" : "fp32", f * p->med / peak, f * p->lo / peak, f * p->hi / peak, d->med, d->lo,
                  d->hi, r->tbytes * d->med / 1e9, r->tbytes * d->med / c->bw, r->tbytes * d->lo / c->bw,
                  r->tbytes * d->hi / c->bw, r->run.prefill_cpu.med, r->run.prefill_cpu.lo, r->run.prefill_cpu.hi,
                  r->run.decode_cpu.med, r->run.decode_cpu.lo, r->run.decode_cpu.hi,
                  f * r->run.prefill_cpu.med * threads / (r->quant ? c->pk.int8_cpu : c->pk.fp32_cpu),
                  r->tbytes * r->run.decode_cpu.med * threads / c->bw_cpu, r->run.load_s);
}

/* The matrix kernels alone on one 2048 x 2048 weight (random values) of each type, one thread:
 *   - a batch of 512 activations (the prefill tile walk: each row group in cache while the batch
 *     streams by) and a single activation with the weight in L2 (no memory stall: the decode
 *     kernel's own speed). Ops per second of the thread's CPU time (2 per multiply-add), best of
 *     5, against the peak per CPU second;
 *   - decode from memory: the weight repeated (its panel copied) to KSTREAM_BYTES, far beyond the
 *     L3, times one activation: the per-matrix GEMV as decode runs it. The GGUF bytes of the
 *     matrix per second, against the read ceiling, wall clock and per CPU second; the types are
 *     interleaved within each of KSTREAM_ROUNDS rounds (best round each), so a neighbour's burst on
 *     a shared machine hits them alike: compare a type with q8_0 of the same run. Also the median
 *     over the rounds of the GEMV's rate against a plain read of the same buffer just before it
 *     (per CPU second; the sturdiest figure under load). */
#define KSTREAM_BYTES ((size_t)256 << 20)
#define KSTREAM_ROUNDS 9

typedef struct kern {
    char name[16];
    int type, quant, rows, cols;
    size_t rb;
    uint8_t *q;
    wmat_t w, big;     /* the 2048 x 2048 weight; the same repeated to KSTREAM_BYTES */
    uint8_t *big_buf;  /* big's panel (quantized) or rows (float) */
    size_t big_bytes;  /* of big_buf in use */
    double tile, dec, st_wall, st_cpu, rr[16]; /* rr: per round, GEMV / plain read of big_buf */
} kern_t;

static float krand(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*st >> 41) / (float)(1 << 23) - 0.5f;
}

static int kern_init(kern_t *k, const char *name, int ty)
{
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->type = ty;
    k->rows = k->cols = 2048;
    k->rb = ss_ggml_row_bytes(ty, k->cols);
    k->q = malloc(k->rb * k->rows);
    float *row = malloc((size_t)k->cols * sizeof(float));
    if (!k->q || !row) {
        free(row);
        return -1;
    }
    uint64_t st = 1;
    for (int r = 0; r < k->rows; r++) {
        for (int i = 0; i < k->cols; i++)
            row[i] = krand(&st);
        ss_ggml_from_f32(ty, row, k->q + (size_t)r * k->rb, k->cols);
    }
    free(row);
    k->w = (wmat_t){k->q, ty, k->rows, k->cols, k->rb, NULL, 0};
    k->quant = k_pack(&k->w, 1) == 0;
    size_t one = k->quant ? (size_t)((k->rows + 15) / 16) * k->w.group_bytes : k->rb * k->rows;
    int copies = (int)((KSTREAM_BYTES + one - 1) / one);
    size_t al = (size_t)2 << 20, tot = (one * copies + al - 1) & ~(al - 1);
    k->big_buf = aligned_alloc(al, tot);
    if (!k->big_buf)
        return -1;
    madvise(k->big_buf, tot, MADV_HUGEPAGE);
    for (int i = 0; i < copies; i++)
        memcpy(k->big_buf + (size_t)i * one, k->quant ? k->w.panel : k->q, one);
    k->big_bytes = one * copies;
    k->big = k->w;
    k->big.rows = k->rows * copies;
    if (k->quant)
        k->big.panel = k->big_buf;
    else
        k->big.data = k->big_buf;
    return 0;
}

static void kern_free(kern_t *k)
{
    k_unpack_free(&k->w);
    free(k->q);
    free(k->big_buf);
}

/* In-cache figures: the prefill tile walk (k = 0) and decode on 1/16 of the rows (k = 1). */
static void kern_cached(kern_t *k, const float *x, float *out)
{
    for (int m = 0; m < 2; m++) {
        int nb = m ? 1 : 512;
        wmat_t part = k->w;
        part.rows = m ? k->rows / 16 : k->rows;
        k_matmul(&part, x, k->cols, nb, out, k->rows, 1);
        double best = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = thread_cpu_s(); /* one thread: its CPU time (a shared machine's slicing aside) */
            int it = m ? 200 : 1;
            for (int i = 0; i < it; i++)
                k_matmul(&part, x, k->cols, nb, out, k->rows, 1);
            double dt = (thread_cpu_s() - t0) / it;
            best = SS_MAX(best, 2.0 * part.rows * k->cols * nb / dt);
        }
        *(m ? &k->dec : &k->tile) = best;
    }
}

/* One decode GEMV over the repeated weight (round r): GGUF bytes per second, wall and per CPU
 * second, and its rate against a plain read of the same buffer just before it (bytes per CPU
 * second each; the pair sees the same neighbours). */
static void kern_stream(kern_t *k, const float *x, float *out, int r, long *sink)
{
    double c0 = thread_cpu_s();
    *sink += read_part((const char *)k->big_buf, k->big_bytes & ~(size_t)4095, 1, 0);
    double rd = (double)(k->big_bytes & ~(size_t)4095) / (thread_cpu_s() - c0);
    double t0 = now_s();
    c0 = thread_cpu_s();
    k_matmul(&k->big, x, k->cols, 1, out, (size_t)k->big.rows, 1);
    double wall = now_s() - t0, cpu = thread_cpu_s() - c0, bytes = (double)k->rb * k->big.rows;
    k->st_wall = SS_MAX(k->st_wall, bytes / wall);
    k->st_cpu = SS_MAX(k->st_cpu, bytes / cpu);
    k->rr[r] = bytes / cpu / rd;
}

static void kernels_alone(const char *types, const ceil_t *c)
{
    char tl[512];
    snprintf(tl, sizeof tl, "%s", types);
    kern_t ks[24];
    int nk = 0;
    for (char *s = NULL, *tok = strtok_r(tl, ",", &s); tok && nk < 24; tok = strtok_r(NULL, ",", &s)) {
        int ty = ss_ggml_type_parse(tok);
        if (ty < 0)
            continue; /* mixes: their types are listed on their own */
        if (kern_init(&ks[nk], tok, ty)) {
            fprintf(stderr, "bench_infer: no memory for the %s kernel test\n", tok);
            kern_free(&ks[nk]);
            continue;
        }
        nk++;
    }
    size_t nout = (size_t)512 * 2048;
    for (int i = 0; i < nk; i++)
        nout = SS_MAX(nout, (size_t)ks[i].big.rows);
    float *x = malloc((size_t)512 * 2048 * sizeof(float)), *out = malloc(nout * sizeof(float));
    if (!x || !out) {
        fprintf(stderr, "bench_infer: no memory for the kernel tests\n");
        nk = 0;
    }
    uint64_t st = 2;
    for (size_t i = 0; nk && i < (size_t)512 * 2048; i++)
        x[i] = krand(&st);
    for (int i = 0; i < nk; i++)
        kern_cached(&ks[i], x, out);
    long sink = 0;
    for (int round = 0; round < KSTREAM_ROUNDS; round++)
        for (int i = 0; i < nk; i++)
            kern_stream(&ks[i], x, out, round, &sink);
    printf("  kernels alone, 1 thread, 2048 x 2048 weight (decode from memory: repeated to %zu MiB), per second of CPU "
           "time unless said:\n", KSTREAM_BYTES >> 20);
    for (int i = 0; i < nk; i++) {
        kern_t *k = &ks[i];
        double peak = k->quant ? c->pk.int8_cpu : c->pk.fp32_cpu;
        qsort(k->rr, KSTREAM_ROUNDS, sizeof k->rr[0], cmpd);
        printf("    %-7s prefill tile %6.1f GOP/s = %.3f of the %s peak; decode in L2 %6.1f GB/s of weights; decode "
               "from memory %5.1f GB/s = %.3f of read bw (wall %5.1f GB/s = %.3f), median %.3f of a plain read of "
               "the same bytes\n",
               k->name, k->tile / 1e9, k->tile / peak, k->quant ? "int8" : "fp32", k->dec / 2 * k->rb / k->cols / 1e9,
               k->st_cpu / 1e9, k->st_cpu / c->bw_cpu, k->st_wall / 1e9, k->st_wall / c->bw, k->rr[KSTREAM_ROUNDS / 2]);
        kern_free(k);
    }
    if (sink == 42)
        printf(" ");
    fflush(stdout);
    free(x);
    free(out);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shape", required_argument, 0, 's'}, {"types", required_argument, 0, 'T'},
        {"threads", required_argument, 0, 't'}, {"prompt", required_argument, 0, 'p'},
        {"gen", required_argument, 0, 'g'},   {"layers", required_argument, 0, 'l'},
        {"reps", required_argument, 0, 'r'},  {"dir", required_argument, 0, 'd'},
        {"kernels", no_argument, 0, 'k'}, {"kernels-only", no_argument, 0, 'K'},
        {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *shape = "llama-3.2-1b", *types = "q4_k_m,q8_0,f16", *dir = "/tmp", *out = "bench/results/infer.json";
    const char *thr = "1,2";
    int plen = 512, gen = 32, layers = 0, reps = 3, kern = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 'T': types = optarg; break;
        case 't': thr = optarg; break;
        case 'p': plen = atoi(optarg); break;
        case 'g': gen = atoi(optarg); break;
        case 'l': layers = atoi(optarg); break;
        case 'r': reps = SS_MAX(1, SS_MIN(16, atoi(optarg))); break;
        case 'k': kern = 1; break;
        case 'K': kern = 2; break;
        case 'd': dir = optarg; break;
        case 'o': out = optarg; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_infer [--shape NAME] [--types LIST] [--threads 1,2] [--prompt N] [--gen N]\n"
                    "                   [--layers N] [--reps R] [--dir DIR] [--out FILE] [--kernels]\n"
                    "                   [--kernels-only]\n"
                    "  LIST: weight types (%s) and mixes (q4_k_m, q5_k_m, q6_k)\n",
                    ss_ggml_type_names());
            return c == 'h' ? 0 : 2;
        }
    }
    int nthr = 0, tl[8];
    char tb[64];
    snprintf(tb, sizeof tb, "%s", thr);
    for (char *s = NULL, *t = strtok_r(tb, ",", &s); t && nthr < 8; t = strtok_r(NULL, ",", &s))
        tl[nthr++] = SS_MAX(1, atoi(t));
    char la0[128], la1[128];
    loadavg(la0, sizeof la0);
    printf("bench_infer: %s shape, prompt %d tokens, %d decoded tokens, %d reps, kernels %s, load average %s\n", shape,
           plen, gen, reps, k_isa(), la0);
    ceil_t cs[8], ce[8];
    for (int i = 0; i < nthr; i++)
        measure_ceilings(tl[i], &cs[i], "at the start");
    if (kern)
        kernels_alone(types, &cs[0]);
    if (kern == 2)
        return 0;
    res_t res[64];
    int nres = 0, fail = 0;
    char tlist[512];
    snprintf(tlist, sizeof tlist, "%s", types);
    for (char *s = NULL, *tok = strtok_r(tlist, ",", &s); tok && nres < 64; tok = strtok_r(NULL, ",", &s)) {
        char path[1024], err[SS_ERRSZ];
        if (model_file(shape, tok, layers, dir, path, sizeof path, err, sizeof err)) {
            fprintf(stderr, "bench_infer: %s\n", err);
            return 1;
        }
        ss_gguf_t *g = NULL;
        if (ss_gguf_open(path, &g, err, sizeof err)) {
            fprintf(stderr, "bench_infer: %s\n", err);
            return 1;
        }
        int tied = !ss_gguf_tensor(g, "output.weight");
        double tbytes = token_bytes(g, tied), params = 0, head = 0;
        for (uint64_t i = 0; i < g->ntensors; i++) {
            const ss_gguf_tensor_t *t = &g->tensors[i];
            int emb = t->name.n == 17 && !memcmp(t->name.p, "token_embd.weight", 17);
            int outw = t->name.n == 13 && !memcmp(t->name.p, "output.weight", 13);
            if (t->ndim == 2 && !emb && !outw)
                params += (double)t->nelem;
            else if (t->ndim == 2 && (outw || (emb && tied)))
                head = (double)t->nelem;
        }
        int quant = p_spec(ss_ggml_type_parse(tok)) != NULL || ss_mkmodel_mix_parse(tok) > 0;
        ss_gguf_close(g);
        for (int i = 0; i < nthr && nres < 64; i++) {
            res_t *r = &res[nres];
            snprintf(r->type, sizeof r->type, "%s", tok);
            r->ti = i;
            r->quant = quant;
            r->tbytes = tbytes;
            r->pflops = 2.0 * params * plen + 2.0 * head; /* logits for the last position only */
            r->params = params;
            if (measure(path, tl[i], plen, gen, reps, &r->run, err, sizeof err)) {
                fprintf(stderr, "bench_infer: %s: %s\n", path, err);
                fail = 1;
                continue;
            }
            print_run(r, &cs[i], tl[i], plen);
            nres++;
        }
    }
    for (int i = 0; i < nthr; i++) {
        measure_ceilings(tl[i], &ce[i], "at the end");
        cs[i].bw = SS_MAX(cs[i].bw, ce[i].bw); /* the ceiling is the best the machine did */
        cs[i].pk.int8 = SS_MAX(cs[i].pk.int8, ce[i].pk.int8);
        cs[i].pk.fp32 = SS_MAX(cs[i].pk.fp32, ce[i].pk.fp32);
        cs[i].pk.bf16 = SS_MAX(cs[i].pk.bf16, ce[i].pk.bf16);
        cs[i].bw_cpu = SS_MAX(cs[i].bw_cpu, ce[i].bw_cpu);
        cs[i].pk.int8_cpu = SS_MAX(cs[i].pk.int8_cpu, ce[i].pk.int8_cpu);
        cs[i].pk.fp32_cpu = SS_MAX(cs[i].pk.fp32_cpu, ce[i].pk.fp32_cpu);
    }
    loadavg(la1, sizeof la1);
    printf("\nAgainst the higher of the start and end ceilings (load average at the end: %s):\n", la1);
    ss_mkmodel_spec_t sp;
    int nl = layers > 0 ? layers : ss_mkmodel_shape(shape, &sp) ? sp.n_layers : 0; /* layers of the files run */
    ss_buf_t js = SS_BUF_INIT;
    ss_buf_printf(&js, "{\"bench\":\"infer\",\"shape\":\"%s\",\"layers\":%d,\"kernels\":\"%s\",\"prompt\":%d,\"gen\":%d,\"reps\":%d,"
                       "\"loadavg_start\":\"%s\",\"loadavg_end\":\"%s\",\"ceilings\":[",
                  shape, nl, k_isa(), plen, gen, reps, la0, la1);
    for (int i = 0; i < nthr; i++)
        ss_buf_printf(&js, "%s{\"threads\":%d,\"read_gbs\":%.2f,\"int8_gops\":%.1f,\"fp32_gflops\":%.1f,"
                           "\"bf16_gflops\":%.1f}",
                      i ? "," : "", tl[i], cs[i].bw / 1e9, cs[i].pk.int8 / 1e9, cs[i].pk.fp32 / 1e9, cs[i].pk.bf16 / 1e9);
    ss_buf_puts(&js, "],\"ceilings_per_cpu_s\":[");
    for (int i = 0; i < nthr; i++)
        ss_buf_printf(&js, "%s{\"threads\":%d,\"read_gbs\":%.2f,\"int8_gops\":%.1f,\"fp32_gflops\":%.1f}", i ? "," : "",
                      tl[i], cs[i].bw_cpu / 1e9, cs[i].pk.int8_cpu / 1e9, cs[i].pk.fp32_cpu / 1e9);
    ss_buf_puts(&js, "],\"runs\":[");
    for (int k = 0; k < nres; k++) {
        res_t *r = &res[k];
        print_run(r, &cs[r->ti], tl[r->ti], plen);
        json_run(&js, r, &cs[r->ti], tl[r->ti], plen, k == 0);
    }
    ss_buf_puts(&js, "]}\n");
    mkdir("bench", 0755);
    mkdir("bench/results", 0755);
    FILE *f = fopen(out, "w");
    if (f) {
        fputs(ss_buf_cstr(&js), f);
        fclose(f);
        printf("  wrote %s\n", out);
    }
    ss_buf_free(&js);
    return fail ? 1 : 0;
}
