/*
 * infer.c — bench_infer: CPU engine throughput on random-weight models in a real
 * model's shape (SmolLM2-135M by default, written with gpu/mkmodel.c into /tmp):
 * prompt (prefill) tokens/s and generated (decode) tokens/s at batch 1 and batch B
 * for Q8_0 and F16 weights, next to two ceilings measured in the same run: memory
 * bandwidth (streaming reads over a buffer larger than the LLC) and FMA throughput
 * (a tight register-resident FMA loop). Reports batch-B over batch-1 ratios and the
 * fraction of each ceiling reached. Writes bench/results/infer.json.
 *
 *   bench_infer [--shape NAME] [--types q8_0,f16] [--batch B] [--prompt N] [--gen N]
 *               [--layers N] [--threads T] [--dir /tmp] [--out FILE]
 */
#include "llm_internal.h"
#include "ss_gguf.h"
#include "ss_llm.h"

#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---------------- ceilings ---------------- */

/* Sum of n floats with 8 independent vector accumulators, so the loop is bound by loads. */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++)
        a[k] = _mm256_setzero_ps();
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++)
            a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p + i + 8 * k));
    for (int k = 1; k < 8; k++)
        a[0] = _mm256_add_ps(a[0], a[k]);
    float t[8];
    _mm256_storeu_ps(t, a[0]);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static float sum_stream(const float *p, size_t n)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        return sum_avx2(p, n);
#endif
    float a[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] += p[i + k];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static double bandwidth_gbs(int threads)
{
    size_t n = (size_t)512 << 20; /* 512 MiB, far above any LLC */
    float *buf = malloc(n);
    if (!buf)
        return 0;
    size_t nf = n / sizeof(float);
#pragma omp parallel for num_threads(threads)
    for (size_t i = 0; i < nf; i++)
        buf[i] = (float)(i & 255);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        int64_t t0 = ss_now_ns();
        float total = 0;
        size_t per = (nf / (size_t)threads) & ~(size_t)63;
#pragma omp parallel for num_threads(threads) reduction(+ : total)
        for (int t = 0; t < threads; t++)
            total += sum_stream(buf + (size_t)t * per, per);
        double s = (double)(ss_now_ns() - t0) / 1e9;
        if (total == 1.0f) /* keep the loop */
            printf(" ");
        best = SS_MAX(best, (double)per * threads * sizeof(float) / s / 1e9);
    }
    free(buf);
    return best;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma512(long iters)
{
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < iters; k++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++)
        s = _mm512_add_ps(s, a[i]);
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma256(long iters)
{
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < iters; k++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, a[i]);
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0];
}
#endif

/* GFLOP/s of FMAs over all threads (2 flops per lane per FMA). */
static double flops_gfs(int threads, const char **isa)
{
    long iters = 20000000;
    int lanes = 1;
    double sink = 0;
    *isa = "scalar";
    int64_t t0 = ss_now_ns();
#if defined(__x86_64__)
    __builtin_cpu_init();
    int w512 = __builtin_cpu_supports("avx512f"), w256 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    lanes = w512 ? 16 : w256 ? 8 : 1;
    *isa = w512 ? "avx512" : w256 ? "avx2" : "scalar";
    t0 = ss_now_ns();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        if (w512)
            sink += fma512(iters);
        else if (w256)
            sink += fma256(iters);
    }
#endif
    double s = (double)(ss_now_ns() - t0) / 1e9;
    if (sink == 1.0)
        printf(" ");
    if (lanes == 1)
        return 0;
    return (double)iters * 12 * lanes * 2 * threads / s / 1e9;
}

/* ---------------- model runs ---------------- */

typedef struct result {
    const char *type;
    int batch;
    double prompt_tps, gen_tps, prefill_s, decode_s;
    int prompt_tokens, gen_tokens;
} result_t;

static char *make_prompt(int i, int words)
{
    static const char *w[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and",
                              "runs", "into", "a", "forest", "where", "birds", "sing"};
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_printf(&b, "Request %d:", i);
    unsigned s = (unsigned)i * 2654435761u + 1;
    for (int k = 0; k < words; k++) {
        s = s * 1103515245u + 12345u;
        ss_buf_printf(&b, " %s", w[(s >> 16) % 16]);
    }
    return ss_buf_take(&b);
}

/* Prefill of B distinct prompts (~plen tokens), then B sequences decoding gen tokens. */
static int measure(ss_llm_t *m, int batch, int plen, int gen, result_t *r)
{
    char err[SS_ERRSZ];
    char **p = calloc((size_t)batch, sizeof *p);
    int **toks = calloc((size_t)batch, sizeof *toks), *nt = calloc((size_t)batch, sizeof *nt);
    ss_infer_req_t *rq = calloc((size_t)batch, sizeof *rq);
    ss_infer_res_t *rs = calloc((size_t)batch, sizeof *rs);
    float *lg = malloc((size_t)batch * ss_llm_config(m)->vocab_size * sizeof(float));
    r->prompt_tokens = r->gen_tokens = 0;
    for (int i = 0; i < batch; i++) {
        p[i] = make_prompt(i, plen);
        toks[i] = malloc((size_t)(plen * 4 + 16) * sizeof(int));
        nt[i] = SS_MIN(ss_llm_tokenize(m, p[i], 1, toks[i], plen * 4 + 16), plen);
        r->prompt_tokens += nt[i];
        rq[i] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = p[i], .max_tokens = gen};
    }
    ss_llm_set_prefix_cache(m, 0);
    int64_t t0 = ss_now_ns();
    int rc = ss_llm_last_logits(m, batch, (const int *const *)toks, nt, lg, err, sizeof err);
    r->prefill_s = (double)(ss_now_ns() - t0) / 1e9;
    /* decode: GENERATE (prompt again, then decode steps timed by the engine) */
    ss_llm_stats_t s0, s1;
    ss_llm_stats(m, &s0);
    if (!rc)
        rc = ss_llm_run(m, rq, batch, rs, err, sizeof err);
    ss_llm_stats(m, &s1);
    for (int i = 0; i < batch; i++) {
        r->gen_tokens += rs[i].gen_tokens;
        ss_infer_res_clear(&rs[i]);
        free(p[i]);
        free(toks[i]);
    }
    r->decode_s = SS_MAX(1e-9, (double)(s1.decode_ns - s0.decode_ns) / 1e9);
    r->gen_tokens = (int)(s1.decode_tokens - s0.decode_tokens); /* the first token comes with the prompt */
    r->prompt_tps = r->prompt_tokens / r->prefill_s;
    r->gen_tps = r->gen_tokens / r->decode_s;
    r->batch = batch;
    if (rc)
        fprintf(stderr, "bench_infer: %s\n", err);
    free(p);
    free(toks);
    free(nt);
    free(rq);
    free(rs);
    free(lg);
    return rc;
}

static int parse_type(const char *s)
{
    static const int types[] = {SS_GGML_F32, SS_GGML_F16, SS_GGML_BF16, SS_GGML_Q8_0, SS_GGML_Q4_0};
    for (size_t i = 0; i < SS_ARRAY_LEN(types); i++)
        if (!strcmp(s, ss_ggml_type_name(types[i])))
            return types[i];
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shape", required_argument, 0, 's'}, {"types", required_argument, 0, 'T'},
        {"batch", required_argument, 0, 'b'}, {"prompt", required_argument, 0, 'p'},
        {"gen", required_argument, 0, 'g'},   {"layers", required_argument, 0, 'l'},
        {"threads", required_argument, 0, 't'}, {"dir", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *shape = "smollm2-135m", *types = "q8_0,f16", *dir = "/tmp", *out = "bench/results/infer.json";
    int batch = 32, plen = 64, gen = 16, layers = 0, threads = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 'T': types = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'p': plen = atoi(optarg); break;
        case 'g': gen = atoi(optarg); break;
        case 'l': layers = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'o': out = optarg; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_infer [--shape NAME] [--types q8_0,f16] [--batch B] [--prompt N] [--gen N]\n"
                    "                   [--layers N] [--threads T] [--dir DIR] [--out FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char *isa = "";
    double bw = bandwidth_gbs(threads), fl = flops_gfs(threads, &isa);
    printf("bench_infer: %s shape, %d threads, kernels %s; ceilings: %.1f GB/s read bandwidth, %.1f GFLOP/s FMA (%s)\n",
           shape, threads, k_isa(), bw, fl, isa);
    ss_buf_t js = SS_BUF_INIT;
    ss_buf_printf(&js, "{\"bench\":\"infer\",\"shape\":\"%s\",\"threads\":%d,\"kernels\":\"%s\",\"bandwidth_gbs\":%.2f,"
                       "\"fma_gflops\":%.2f,\"prompt_len\":%d,\"gen\":%d,\"runs\":[",
                  shape, threads, k_isa(), bw, fl, plen, gen);
    char tl[64];
    snprintf(tl, sizeof tl, "%s", types);
    int first = 1, fail = 0;
    for (char *tok = strtok(tl, ","); tok; tok = strtok(NULL, ",")) {
        ss_mkmodel_spec_t s;
        int ty = parse_type(tok);
        if (!ss_mkmodel_shape(shape, &s) || ty < 0) {
            fprintf(stderr, "bench_infer: unknown shape '%s' or type '%s'\n", shape, tok);
            return 2;
        }
        s.type = ty;
        if (layers > 0)
            s.n_layers = layers;
        char path[512], err[SS_ERRSZ];
        snprintf(path, sizeof path, "%s/semstream-bench-%s-%s-%dl.gguf", dir, shape, tok, s.n_layers);
        if (access(path, R_OK) != 0 && ss_mkmodel_write(&s, path, err, sizeof err)) {
            fprintf(stderr, "bench_infer: %s\n", err);
            return 1;
        }
        ss_llm_opts_t o = {.threads = threads};
        ss_llm_t *m = NULL;
        if (ss_llm_open(path, &o, &m, err, sizeof err)) {
            fprintf(stderr, "bench_infer: %s\n", err);
            return 1;
        }
        struct stat st;
        stat(path, &st);
        double wbytes = (double)st.st_size, params = 0;
        const ss_llm_config_t *cf = ss_llm_config(m);
        params = (double)cf->n_layers * ((double)cf->dim * cf->n_heads * cf->head_dim * 2 +
                                         (double)cf->dim * cf->n_kv_heads * cf->head_dim * 2 +
                                         3.0 * cf->dim * cf->hidden_dim);
        double head = (double)cf->dim * cf->vocab_size; /* logits: only for the last position when prefilling */
        result_t r1, rb;
        fail |= measure(m, 2, 8, 2, &r1); /* warm-up: fault the mapped weights in */
        fail |= measure(m, 1, plen, gen, &r1) | measure(m, batch, plen, gen, &rb);
        for (int k = 0; k < 2; k++) {
            result_t *r = k ? &rb : &r1;
            /* decode at batch b streams all weights once per step: bytes/s vs bandwidth */
            double steps = (double)r->gen_tokens / r->batch / r->decode_s;
            double bw_frac = wbytes * steps / 1e9 / bw;
            double pf_flops = 2.0 * (params * r->prompt_tokens + head * r->batch) / r->prefill_s / 1e9;
            double gen_flops = 2.0 * (params + head) * r->gen_tps / 1e9;
            printf("  %-5s batch %2d: prompt %8.1f tok/s (%.1f GFLOP/s, %.0f%% of FMA peak)   generate %7.1f tok/s "
                   "(%.1f GFLOP/s; weight stream %.0f%% of bandwidth)\n",
                   tok, r->batch, r->prompt_tps, pf_flops, 100 * pf_flops / fl, r->gen_tps, gen_flops, 100 * bw_frac);
            ss_buf_printf(&js,
                          "%s{\"type\":\"%s\",\"batch\":%d,\"prompt_tokens\":%d,\"prompt_tok_s\":%.2f,\"gen_tokens\":%d,"
                          "\"gen_tok_s\":%.2f,\"prefill_gflops\":%.2f,\"prefill_peak_frac\":%.4f,\"gen_gflops\":%.2f,"
                          "\"gen_bandwidth_frac\":%.4f,\"model_bytes\":%.0f}",
                          first ? "" : ",", tok, r->batch, r->prompt_tokens, r->prompt_tps, r->gen_tokens, r->gen_tps,
                          pf_flops, pf_flops / fl, gen_flops, bw_frac, wbytes);
            first = 0;
        }
        printf("  %-5s batch %d vs batch 1: prompt %.2fx, generate %.2fx\n", tok, batch, rb.prompt_tps / r1.prompt_tps,
               rb.gen_tps / r1.gen_tps);
        ss_llm_close(m);
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
