/*
 * bench/gpu.c — inference on the GPU against the GPU's own ceilings, measured in
 * the same run: HBM bandwidth (device copy) and bf16 tensor-core rate (cuBLAS
 * GEMM). For random-weight models in real shapes (written here with the
 * project's own ss_mkmodel_write), it reports prefill tokens/s and decode
 * tokens/s at batch 1, 8, 64, 256, and CHOOSE requests/s for rows sharing a
 * 300-token instruction, each with its fraction of the roofline:
 *   prefill: achieved FLOP/s / measured bf16 FLOP/s
 *   decode:  achieved tokens/s / (batch / max(weight bytes / bandwidth, flops / peak))
 * Writes bench/results/gpu.json.
 *
 * With --phases gemv it also times each weight matrix of the shape alone at batch 1
 * (CUDA events, 50 launches) as achieved weight-read bandwidth / measured copy bandwidth.
 *
 * usage: bench_gpu [--shapes a,b] [--types f16,q8_0] [--dir DIR] [--quick] [--out FILE]
 *                  [--phases prefill,decode,choose,gemv,gemm,ffn] [--batches 1,8,64,256] [--ctx WORDS]
 * (--ctx puts WORDS words of filler before each decode prompt, for decoding at a longer context)
 */
#include "ss_base.h"
#include "ss_cuda.h"
#include "ss_gguf.h"
#include "ss_llm.h"
#include "ss_llm_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static double now_s(void) { return ss_now_ns() / 1e9; }

typedef struct ceil_s {
    double bw, flops;
    double flops_rand; /* the same GEMM on random inputs (more power drawn, so possibly lower clocks) */
} ceil_t;

static uint64_t rs = 0x9e3779b97f4a7c15ULL;
static int rnd(int n)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (int)(rs % (uint64_t)n);
}

/* Parameters of the matrices one token passes through (all layers), and of the output projection. */
static void count_params(const ss_llm_config_t *c, double *layer_p, double *out_p)
{
    double d = c->dim, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    *layer_p = c->n_layers * (d * qd + 2 * d * kvd + qd * d + 3 * d * c->hidden_dim);
    *out_p = (double)c->vocab_size * d;
}

static double wbytes_per_param(int type)
{
    return (double)ss_ggml_block_bytes(type) / ss_ggml_block_elems(type);
}

static void bench_prefill(ss_llm_t *m, const ceil_t *cl, int B, int L, ss_buf_t *js, int first)
{
    const ss_llm_config_t *c = ss_llm_config(m);
    int **toks = malloc((size_t)B * sizeof *toks), *ntok = malloc((size_t)B * sizeof *ntok);
    for (int b = 0; b < B; b++) {
        toks[b] = malloc((size_t)L * sizeof(int));
        for (int i = 0; i < L; i++)
            toks[b][i] = 3 + rnd(c->vocab_size - 3);
        ntok[b] = L;
    }
    float *logits = malloc((size_t)B * c->vocab_size * 4);
    char err[SS_ERRSZ] = "";
    ss_llm_set_prefix_cache(m, 0);
    /* warm-up: the same shapes once, so one-time costs (bf16 weight copies, cuBLAS kernels loaded on
     * first use) are not timed */
    ss_llm_last_logits(m, B, (const int *const *)toks, ntok, logits, err, sizeof err);
    double t0 = now_s();
    int rc = ss_llm_last_logits(m, B, (const int *const *)toks, ntok, logits, err, sizeof err);
    double dt = now_s() - t0;
    double lp, op;
    count_params(c, &lp, &op);
    double T = (double)B * L;
    double attn = 2.0 * 2.0 * c->n_layers * c->n_heads * c->head_dim * T * (L / 2.0);
    double flops = 2 * lp * T + 2 * op * B + attn;
    double frac = flops / dt / cl->flops;
    if (rc)
        printf("    prefill B=%-3d failed: %s\n", B, err);
    else
        printf("    prefill B=%-3d x %d tok: %9.0f tok/s  %7.1f TFLOP/s  = %.3f of bf16 peak\n", B, L, T / dt,
               flops / dt / 1e12, frac);
    ss_buf_printf(js, "%s{\"phase\":\"prefill\",\"batch\":%d,\"prompt_tokens\":%d,\"tokens_per_s\":%.1f,"
                      "\"tflops\":%.3f,\"fraction_of_bf16_peak\":%.4f}",
                  first ? "" : ",", B, L, T / dt, flops / dt / 1e12, frac);
    for (int b = 0; b < B; b++)
        free(toks[b]);
    free(toks), free(ntok), free(logits);
}

static int g_ctx; /* --ctx: words of filler before each decode prompt (a longer context) */

static void bench_decode(ss_llm_t *m, const ceil_t *cl, int wtype, int B, int T, ss_buf_t *js)
{
    const ss_llm_config_t *c = ss_llm_config(m);
    ss_infer_req_t *reqs = calloc((size_t)B, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)B, sizeof *res);
    char **prompts = calloc((size_t)B, sizeof *prompts);
    ss_buf_t fill = SS_BUF_INIT;
    for (int i = 0; i < g_ctx; i++)
        ss_buf_puts(&fill, i % 2 ? " stream" : " data");
    for (int b = 0; b < B; b++) {
        prompts[b] = ss_sprintf("%s request %d of the decode benchmark: ", ss_buf_cstr(&fill), b);
        reqs[b].kind = SS_INFER_GENERATE;
        reqs[b].prompt = prompts[b];
        reqs[b].max_tokens = 1;
    }
    char err[SS_ERRSZ] = "";
    ss_llm_set_prefix_cache(m, 0);
    /* warm-up: the same run once, so CUDA graph captures of every decode shape are not timed */
    for (int b = 0; b < B; b++)
        reqs[b].max_tokens = T;
    ss_llm_run(m, reqs, B, res, err, sizeof err);
    for (int b = 0; b < B; b++) {
        ss_infer_res_clear(&res[b]);
        reqs[b].max_tokens = 1;
    }
    /* prefill and the first token alone, to subtract them */
    double t0 = now_s();
    ss_llm_run(m, reqs, B, res, err, sizeof err);
    double tpre = now_s() - t0;
    for (int b = 0; b < B; b++) {
        ss_infer_res_clear(&res[b]);
        reqs[b].max_tokens = T;
    }
    t0 = now_s();
    int rc = ss_llm_run(m, reqs, B, res, err, sizeof err);
    double dt = now_s() - t0 - tpre;
    int64_t gen = 0;
    for (int b = 0; b < B; b++)
        gen += res[b].gen_tokens - 1;
    double lp, op;
    count_params(c, &lp, &op);
    double bytes = (lp + op) * wbytes_per_param(wtype);
    double steps = (double)gen / B;
    double t_roof = steps * SS_MAX(bytes / cl->bw, 2.0 * (lp + op) * B / cl->flops);
    double frac = t_roof / dt;
    if (rc || gen <= 0)
        printf("    decode  B=%-3d failed: %s\n", B, err);
    else
        printf("    decode  B=%-3d: %9.0f tok/s  (%.3f ms/step, roofline %.3f ms/step) = %.3f of roofline\n", B,
               gen / dt, dt / steps * 1e3, t_roof / steps * 1e3, frac);
    ss_buf_free(&fill);
    ss_buf_printf(js, ",{\"phase\":\"decode\",\"batch\":%d,\"context_words\":%d,\"tokens_per_s\":%.1f,\"ms_per_step\":%.4f,"
                      "\"roofline_ms_per_step\":%.4f,\"fraction_of_roofline\":%.4f}",
                  B, g_ctx, gen / dt, dt / steps * 1e3, t_roof / steps * 1e3, frac);
    for (int b = 0; b < B; b++) {
        ss_infer_res_clear(&res[b]);
        free(prompts[b]);
    }
    free(reqs), free(res), free(prompts);
}

static void bench_choose(ss_llm_t *m, const ceil_t *cl, int nrows, ss_buf_t *js)
{
    const ss_llm_config_t *c = ss_llm_config(m);
    ss_buf_t instr = SS_BUF_INIT;
    ss_buf_puts(&instr, "Instruction: decide whether the row below is about database systems. ");
    while (ss_llm_count_tokens(m, ss_buf_cstr(&instr)) < 300)
        ss_buf_puts(&instr, "Consider query processing, storage engines, transactions and indexing. ");
    static const char *const yn[] = {" yes", " no"};
    ss_infer_req_t *reqs = calloc((size_t)nrows, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)nrows, sizeof *res);
    char **prompts = calloc((size_t)nrows, sizeof *prompts);
    for (int i = 0; i < nrows; i++) {
        prompts[i] = ss_sprintf("%sRow: paper %d about topic %d and method %d. Answer:", ss_buf_cstr(&instr), i,
                                rnd(1000), rnd(1000));
        reqs[i].kind = SS_INFER_CHOOSE;
        reqs[i].prompt = prompts[i];
        reqs[i].prefix_len = instr.len;
        reqs[i].nchoices = 2;
        reqs[i].choices = yn;
    }
    char err[SS_ERRSZ] = "";
    ss_llm_set_prefix_cache(m, 1);
    ss_llm_stats_t s0, s1;
    ss_llm_stats(m, &s0);
    double t0 = now_s();
    int rc = ss_llm_run(m, reqs, nrows, res, err, sizeof err);
    double dt = now_s() - t0;
    ss_llm_stats(m, &s1);
    double lp, op;
    count_params(c, &lp, &op);
    double computed = (double)(s1.tokens_computed - s0.tokens_computed);
    double flops = 2 * lp * computed + 2 * op * nrows;
    double frac = flops / dt / cl->flops;
    if (rc)
        printf("    choose %d rows failed: %s\n", nrows, err);
    else
        printf("    choose  %d rows, 300-token shared instruction: %8.0f req/s  (%.0f tokens computed, %.0f "
               "reused) = %.3f of bf16 peak\n",
               nrows, nrows / dt, computed, (double)(s1.tokens_reused - s0.tokens_reused), frac);
    ss_buf_printf(js, ",{\"phase\":\"choose\",\"rows\":%d,\"instruction_tokens\":300,\"requests_per_s\":%.1f,"
                      "\"tokens_computed\":%.0f,\"fraction_of_bf16_peak\":%.4f}",
                  nrows, nrows / dt, computed, frac);
    for (int i = 0; i < nrows; i++) {
        ss_infer_res_clear(&res[i]);
        free(prompts[i]);
    }
    free(reqs), free(res), free(prompts);
    ss_buf_free(&instr);
}

/* Each distinct weight shape of the model alone at batch 1: weight bytes / kernel time. */
/* The feed-forward block of a 2,048-token pass alone (ss_cuda_ffn over 16 layers of random weights of
 * this model's shape): its GPU time against the GEMM FLOPs, to compare with the same block inside a
 * forward pass (SS_CUDA_PROFILE=kernels breaks both down per kernel). */
static void bench_ffn(ss_llm_t *m, const ceil_t *cl, int wtype, ss_buf_t *js)
{
    const ss_llm_config_t *g = ss_llm_config(m);
    int T = 2048, d = g->dim, h = g->hidden_dim, nl = 16, reps = 4;
    char err[SS_ERRSZ] = "";
    ss_cuda_t *c;
    if (ss_cuda_open(0, &c, err, sizeof err)) {
        printf("    ffn: %s\n", err);
        return;
    }
    ss_cuda_weight_t w[16][3];
    int rc = SS_OK;
    for (int l = 0; !rc && l < nl; l++)
        for (int j = 0; !rc && j < 3; j++) {
            int rows = j < 2 ? h : d, cols = j < 2 ? d : h;
            size_t wb = ss_kref_weight_bytes(wtype, rows, cols);
            unsigned char *hw = malloc(wb);
            for (size_t k = 0; k < wb; k++)
                hw[k] = (unsigned char)(k % 2 ? rnd(8) + 36 : rnd(256)); /* f16 about 0.003..0.04 of either sign */
            for (size_t k = 1; wtype == SS_GGML_F16 && k < wb; k += 2)
                hw[k] |= (unsigned char)(rnd(2) << 7);
            rc = ss_cuda_weight_upload(c, &w[l][j], wtype, rows, cols, hw, err, sizeof err);
            free(hw);
        }
    float *x = NULL, *xn = NULL, *h1 = NULL, *h2 = NULL, *hx = malloc((size_t)T * d * 4), ms = 0;
    if (!rc) rc = ss_cuda_malloc(c, (void **)&x, (size_t)T * d * 4, err, sizeof err);
    if (!rc) rc = ss_cuda_malloc(c, (void **)&xn, (size_t)T * d * 4, err, sizeof err);
    if (!rc) rc = ss_cuda_malloc(c, (void **)&h1, (size_t)T * h * 4, err, sizeof err);
    if (!rc) rc = ss_cuda_malloc(c, (void **)&h2, (size_t)T * h * 4, err, sizeof err);
    for (size_t k = 0; hx && k < (size_t)T * d; k++)
        hx[k] = (float)(rnd(2001) - 1000) / 1000.0f;
    if (!rc) rc = ss_cuda_h2d(c, xn, hx, (size_t)T * d * 4, err, sizeof err);
    if (!rc) rc = ss_cuda_memset(c, x, 0, (size_t)T * d * 4, err, sizeof err);
    for (int l = 0; !rc && l < nl; l++) /* warm-up: bf16 weight copies, kernels loaded */
        rc = ss_cuda_ffn(c, x, xn, &w[l][0], &w[l][1], &w[l][2], h1, h2, T, err, sizeof err);
    if (!rc) rc = ss_cuda_sync(c, err, sizeof err);
    ss_cuda_prof_mark(c, -1);
    if (!rc) rc = ss_cuda_timer_begin(c);
    for (int r = 0; !rc && r < reps; r++)
        for (int l = 0; !rc && l < nl; l++)
            rc = ss_cuda_ffn(c, x, xn, &w[l][0], &w[l][1], &w[l][2], h1, h2, T, err, sizeof err);
    if (!rc) rc = ss_cuda_timer_end(c, &ms, err, sizeof err);
    ss_cuda_prof_collect(c);
    if (rc)
        printf("    ffn failed: %s\n", err);
    else {
        double us = 1e3 * ms / (reps * nl), fl = 2.0 * 3 * T * (double)d * h / (us / 1e6);
        printf("    ffn   %d tokens, alone: %8.1f us per layer  %7.1f TFLOP/s = %.3f of bf16 peak\n", T, us, fl / 1e12,
               fl / cl->flops);
        ss_buf_printf(js, ",{\"phase\":\"ffn\",\"tokens\":%d,\"us_per_layer\":%.2f,\"tflops\":%.3f,"
                          "\"fraction_of_bf16_peak\":%.4f}", T, us, fl / 1e12, fl / cl->flops);
    }
    ss_cuda_prof_report(c, NULL, "ffn phase");
    free(hx);
    ss_cuda_close(c);
}

/* The prefill GEMM shapes of this model at 2,048-token passes, timed alone with random inputs
 * (fp32 and bf16 outputs), against the ceiling of this run. */
static void bench_gemm(ss_llm_t *m, const ceil_t *cl, ss_buf_t *js)
{
    const ss_llm_config_t *g = ss_llm_config(m);
    int qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim, T = 2048;
    const struct { const char *name; int rows, cols; } sh[] = {
        {"wq", qd, g->dim},         {"wk", kvd, g->dim}, {"wqkv", qd + 2 * kvd, g->dim}, {"wo", g->dim, qd},
        {"gate", g->hidden_dim, g->dim}, {"gate+up", 2 * g->hidden_dim, g->dim}, {"down", g->dim, g->hidden_dim}};
    char err[SS_ERRSZ] = "";
    ss_cuda_t *c;
    if (ss_cuda_open(0, &c, err, sizeof err)) {
        printf("    gemm: %s\n", err);
        return;
    }
    for (size_t i = 0; i < SS_ARRAY_LEN(sh); i++)
        for (int ob = 0; ob < 2; ob++) {
            double f = 0;
            int flags = SS_CUDA_GEMM_RANDOM | (ob ? SS_CUDA_GEMM_OUT_BF16 : 0);
            if (ss_cuda_measure_gemm(c, sh[i].rows, T, sh[i].cols, flags, 20, &f, err, sizeof err)) {
                printf("    gemm %s failed: %s\n", sh[i].name, err);
                break;
            }
            printf("    gemm  %-8s %6d x %d x %-6d -> %-4s: %7.1f TFLOP/s = %.3f of the ceiling\n", sh[i].name,
                   sh[i].rows, T, sh[i].cols, ob ? "bf16" : "fp32", f / 1e12, f / cl->flops);
            ss_buf_printf(js, ",{\"phase\":\"gemm\",\"matrix\":\"%s\",\"rows\":%d,\"tokens\":%d,\"cols\":%d,"
                              "\"out\":\"%s\",\"tflops\":%.3f,\"fraction_of_bf16_peak\":%.4f}",
                          sh[i].name, sh[i].rows, T, sh[i].cols, ob ? "bf16" : "fp32", f / 1e12, f / cl->flops);
        }
    /* sustained: the same GEMM for about half a second, as long as a prefill run lasts */
    double f = 0;
    for (int lay = 0; lay < 2; lay++)
        if (!ss_cuda_measure_gemm(c, g->hidden_dim, T, g->dim,
                                  SS_CUDA_GEMM_RANDOM | SS_CUDA_GEMM_OUT_BF16 | (lay ? SS_CUDA_GEMM_LAYERS : 0), 5000,
                                  &f, err, sizeof err))
            printf("    gemm  gate sustained (5,000 runs%s): %7.1f TFLOP/s = %.3f of the ceiling\n",
                   lay ? ", 16 weight matrices in turn" : "", f / 1e12, f / cl->flops);
    ss_cuda_close(c);
}

static void bench_gemv(ss_llm_t *m, const ceil_t *cl, int wtype, ss_buf_t *js)
{
    const ss_llm_config_t *g = ss_llm_config(m);
    int qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim;
    const struct { const char *name; int rows, cols; } sh[] = {
        {"wq", qd, g->dim}, {"wk", kvd, g->dim}, {"wo", g->dim, qd}, {"gate", g->hidden_dim, g->dim},
        {"down", g->dim, g->hidden_dim}, {"output", g->vocab_size, g->dim}};
    char err[SS_ERRSZ] = "";
    ss_cuda_t *c;
    if (ss_cuda_open(0, &c, err, sizeof err)) {
        printf("    gemv: %s\n", err);
        return;
    }
    for (size_t i = 0; i < SS_ARRAY_LEN(sh); i++) {
        size_t wb = ss_kref_weight_bytes(wtype, sh[i].rows, sh[i].cols);
        unsigned char *h = malloc(wb);
        for (size_t j = 0; j < wb; j++)
            h[j] = (unsigned char)rnd(64); /* small exponents: finite f16/bf16, sane Q8_0 scales */
        ss_cuda_weight_t w;
        float *x, *y, ms = 0;
        int rc = ss_cuda_weight_upload(c, &w, wtype, sh[i].rows, sh[i].cols, h, err, sizeof err);
        free(h);
        if (!rc) rc = ss_cuda_malloc(c, (void **)&x, (size_t)sh[i].cols * 4, err, sizeof err);
        if (!rc) rc = ss_cuda_malloc(c, (void **)&y, (size_t)sh[i].rows * 4, err, sizeof err);
        if (!rc) rc = ss_cuda_memset(c, x, 0, (size_t)sh[i].cols * 4, err, sizeof err);
        for (int it = 0; !rc && it < 5; it++) /* warm-up */
            rc = ss_cuda_matmul(c, y, x, &w, NULL, 1, err, sizeof err);
        if (!rc) rc = ss_cuda_timer_begin(c);
        for (int it = 0; !rc && it < 50; it++)
            rc = ss_cuda_matmul(c, y, x, &w, NULL, 1, err, sizeof err);
        if (!rc) rc = ss_cuda_timer_end(c, &ms, err, sizeof err);
        if (rc) {
            printf("    gemv %s failed: %s\n", sh[i].name, err);
            break;
        }
        double dt = ms / 1e3 / 50, bw = (double)wb / dt;
        printf("    gemv  %-6s %6d x %-6d: %8.2f us  %7.0f GB/s = %.3f of copy bandwidth\n", sh[i].name, sh[i].rows,
               sh[i].cols, dt * 1e6, bw / 1e9, bw / cl->bw);
        ss_buf_printf(js, ",{\"phase\":\"gemv\",\"matrix\":\"%s\",\"rows\":%d,\"cols\":%d,\"us\":%.3f,"
                          "\"bytes_per_s\":%.4g,\"fraction_of_copy_bandwidth\":%.4f}",
                      sh[i].name, sh[i].rows, sh[i].cols, dt * 1e6, bw, bw / cl->bw);
        ss_cuda_free(c, w.data);
        ss_cuda_free(c, w.scales);
        ss_cuda_free(c, x);
        ss_cuda_free(c, y);
    }
    ss_cuda_close(c);
}

static int has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

static int type_of(const char *s) { return ss_ggml_type_parse(s); } /* every GGUF type the engine reads */

int main(int argc, char **argv)
{
    const char *shapes = "smollm2-135m,qwen2.5-0.5b,llama-3.2-1b", *types = "f16,q8_0", *dir = "/tmp";
    const char *out = "bench/results/gpu.json";
    const char *phases = "prefill,decode,choose", *blist = "1,8,64,256";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--phases") && i + 1 < argc) phases = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) blist = argv[++i];
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) g_ctx = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_gpu [--shapes a,b] [--types f16,q8_0] [--dir DIR] [--quick] [--out FILE]\n"
                            "                 [--phases prefill,decode,choose,gemv,gemm,ffn] [--batches 1,8,64,256] [--ctx WORDS]\n");
            return 2;
        }
    }
    char why[SS_ERRSZ], err[SS_ERRSZ] = "";
    if (ss_cuda_device_count(why, sizeof why) <= 0) {
        printf("bench_gpu: skipped: %s\n", why);
        return 0;
    }
    ss_cuda_t *c;
    if (ss_cuda_open(0, &c, err, sizeof err)) {
        fprintf(stderr, "bench_gpu: %s\n", err);
        return 1;
    }
    ceil_t cl;
    if (ss_cuda_measure_bandwidth(c, (size_t)1 << 30, 20, &cl.bw, err, sizeof err) ||
        ss_cuda_measure_bf16_flops(c, 8192, 8192, 8192, 10, &cl.flops, err, sizeof err) ||
        ss_cuda_measure_gemm(c, 8192, 8192, 8192, SS_CUDA_GEMM_RANDOM, 10, &cl.flops_rand, err, sizeof err)) {
        fprintf(stderr, "bench_gpu: ceilings: %s\n", err);
        return 1;
    }
    printf("bf16 GEMM 8192^3 on random inputs: %.1f TFLOP/s (%.3f of the constant-input rate)\n",
           cl.flops_rand / 1e12, cl.flops_rand / cl.flops);
    printf("device: %s\nceilings measured now: HBM copy %.0f GB/s (read+write), bf16 GEMM %.1f TFLOP/s\n",
           ss_cuda_device_name(c), cl.bw / 1e9, cl.flops / 1e12);
    ss_buf_t js = SS_BUF_INIT;
    ss_buf_printf(&js, "{\"bench\":\"gpu\",\"device\":\"%s\",\"hbm_bytes_per_s\":%.4g,\"bf16_flops\":%.4g,\"models\":[",
                  ss_cuda_device_name(c), cl.bw, cl.flops);
    ss_cuda_close(c);
    int firstm = 1;
    char *sl = ss_strdup(shapes);
    for (char *s1 = NULL, *shape = strtok_r(sl, ",", &s1); shape; shape = strtok_r(NULL, ",", &s1)) {
        char *tl = ss_strdup(types);
        for (char *s2 = NULL, *ty = strtok_r(tl, ",", &s2); ty; ty = strtok_r(NULL, ",", &s2)) {
            ss_mkmodel_spec_t spec;
            if (!ss_mkmodel_shape(shape, &spec) || type_of(ty) < 0) {
                fprintf(stderr, "bench_gpu: unknown shape %s or type %s (shapes: %s)\n", shape, ty,
                        ss_mkmodel_shape_names());
                return 2;
            }
            spec.type = type_of(ty);
            char path[1024];
            snprintf(path, sizeof path, "%s/semstream-bench-%s-%s.gguf", dir, shape, ty);
            struct stat st;
            double t0 = now_s();
            if (stat(path, &st) != 0 && ss_mkmodel_write(&spec, path, err, sizeof err)) {
                fprintf(stderr, "bench_gpu: writing %s: %s\n", path, err);
                return 1;
            }
            ss_llm_t *m;
            ss_llm_opts_t o = {.threads = 0};
            if (ss_llm_open(path, &o, &m, err, sizeof err) || ss_llm_use_cuda(m, 0, err, sizeof err)) {
                fprintf(stderr, "bench_gpu: %s: %s\n", path, err);
                return 1;
            }
            printf("\n%s %s (%d layers, dim %d, vocab %d; file made/loaded in %.1f s)\n", shape, ty,
                   ss_llm_config(m)->n_layers, ss_llm_config(m)->dim, ss_llm_config(m)->vocab_size, now_s() - t0);
            fflush(stdout);
            ss_buf_printf(&js, "%s{\"shape\":\"%s\",\"type\":\"%s\",\"results\":[", firstm ? "" : ",", shape, ty);
            firstm = 0;
            int batches[16], nb = 0;
            for (const char *p = blist; *p && nb < 16; p += strcspn(p, ","), p += *p == ',')
                batches[nb++] = SS_MAX(1, atoi(p));
            int first = 1;
            for (int i = 0; has(phases, "prefill") && i < nb; i++, first = 0)
                bench_prefill(m, &cl, batches[i], quick ? 64 : 128, &js, first);
            if (first) /* the JSON list's first element */
                ss_buf_puts(&js, "{\"phase\":\"start\"}");
            for (int i = 0; has(phases, "decode") && i < nb; i++)
                bench_decode(m, &cl, spec.type, batches[i], quick ? 16 : 64, &js);
            if (has(phases, "choose"))
                bench_choose(m, &cl, quick ? 1000 : 10000, &js);
            if (has(phases, "gemv"))
                bench_gemv(m, &cl, spec.type, &js);
            if (has(phases, "gemm"))
                bench_gemm(m, &cl, &js);
            if (has(phases, "ffn"))
                bench_ffn(m, &cl, spec.type, &js);
            ss_buf_puts(&js, "]}");
            ss_llm_close(m);
            fflush(stdout);
        }
        free(tl);
    }
    free(sl);
    ss_buf_puts(&js, "]}\n");
    FILE *f = fopen(out, "w");
    if (f) {
        fputs(ss_buf_cstr(&js), f);
        fclose(f);
        printf("\nwrote %s\n", out);
    }
    ss_buf_free(&js);
    return 0;
}
