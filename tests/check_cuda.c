/*
 * check_cuda.c — the CUDA kernels against their CPU references.
 *
 * The references (gpu/cuda_ref.c) are tested everywhere against naive
 * formulas; the kernels are compared with the references on random inputs
 * where a CUDA device is present, and skipped with a printed reason elsewhere.
 */
#include "ss_base.h"
#include "ss_cuda.h"
#include "ss_gguf.h"
#include "ss_llm_cuda.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state = 88172645463325252ULL;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *frand_vec(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

/* Builds a host weight of `type` from floats (GGUF layout, the engine's quantiser); malloc'd. */
static void *make_weight(int type, const float *f, int rows, int cols)
{
    void *w = malloc(ss_kref_weight_bytes(type, rows, cols));
    ss_ggml_from_f32(type, f, w, (int64_t)rows * cols);
    return w;
}

static double max_rel_err(const float *a, const float *b, size_t n)
{
    double maxabs = 1e-6, err = 0;
    for (size_t i = 0; i < n; i++)
        maxabs = fmax(maxabs, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        err = fmax(err, fabs((double)a[i] - b[i]));
    return err / maxabs;
}

/* ------------------------------------------------------------ references */

START_TEST(test_ref_half_conversions)
{
    const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333333f, -1234.5f};
    for (size_t i = 0; i < SS_ARRAY_LEN(vals); i++) {
        float h = ss_fp16_to_f32(ss_f32_to_fp16(vals[i]));
        ck_assert_msg(fabsf(h - vals[i]) <= fabsf(vals[i]) * 1e-3f, "f16 round trip %g -> %g", vals[i], h);
        float b = ss_bf16_to_f32(ss_f32_to_bf16(vals[i]));
        ck_assert_msg(fabsf(b - vals[i]) <= fabsf(vals[i]) * 8e-3f, "bf16 round trip %g -> %g", vals[i], b);
    }
    ck_assert_uint_eq(ss_f32_to_fp16(1.0f), 0x3c00);
    ck_assert_uint_eq(ss_f32_to_bf16(1.0f), 0x3f80);
    ck_assert(isinf(ss_fp16_to_f32(ss_f32_to_fp16(1e6f))));
}
END_TEST

START_TEST(test_ref_matmul_types)
{
    /* every weight type against the F32 product of its own dequantised values */
    const int rows = 7, cols = 64, B = 3;
    float *wf = frand_vec((size_t)rows * cols, 1.0f), *x = frand_vec((size_t)B * cols, 1.0f);
    float bias[7];
    for (int i = 0; i < rows; i++)
        bias[i] = (float)i;
    const int types[] = {SS_WT_F32,  SS_WT_F16,  SS_WT_BF16, SS_WT_Q8_0, SS_WT_Q4_0,   SS_WT_Q4_1,  SS_WT_Q5_0,
                         SS_WT_Q5_1, SS_WT_Q2_K, SS_WT_Q3_K, SS_WT_Q4_K, SS_WT_Q5_K,   SS_WT_Q6_K,  SS_WT_Q8_K,
                         SS_WT_IQ4_NL, SS_WT_IQ4_XS};
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++) {
        if (cols % ss_ggml_block_elems(types[t]))
            continue; /* the K-quants: test_ref_block_types */
        void *w = make_weight(types[t], wf, rows, cols);
        float y[21], deq[64];
        ss_kref_matmul(y, x, types[t], w, rows, cols, bias, B);
        for (int b = 0; b < B; b++)
            for (int n = 0; n < rows; n++) {
                ss_kref_dequant_row(types[t], w, cols, n, deq);
                double acc = bias[n];
                for (int k = 0; k < cols; k++)
                    acc += (double)deq[k] * x[b * cols + k];
                ck_assert_double_eq_tol(y[b * rows + n], acc, 1e-4);
                /* and the quantisation error itself is small */
                double exact = bias[n];
                for (int k = 0; k < cols; k++)
                    exact += (double)wf[n * cols + k] * x[b * cols + k];
                if (types[t] <= SS_WT_F16 || types[t] == SS_WT_BF16 || types[t] == SS_WT_Q8_0) /* the rest: below */
                    ck_assert_msg(fabs(acc - exact) < 0.1, "type %d: %g vs %g", types[t], acc, exact);
            }
        free(w);
    }
    free(wf);
    free(x);
}
END_TEST

/* Every GGUF block type (rows of 512: two superblocks) against the F32 product of its own
 * dequantised values, and its quantisation error within the type's bound. */
START_TEST(test_ref_block_types)
{
    /* the weights' relative RMS quantisation error each type must stay under */
    static const struct { int type; double tol; } types[] = {
        {SS_WT_Q4_0, 0.10}, {SS_WT_Q4_1, 0.08}, {SS_WT_Q5_0, 0.05}, {SS_WT_Q5_1, 0.04}, {SS_WT_Q2_K, 0.30},
        {SS_WT_Q3_K, 0.15}, {SS_WT_Q4_K, 0.07}, {SS_WT_Q5_K, 0.035}, {SS_WT_Q6_K, 0.02}, {SS_WT_Q8_K, 0.006},
        {SS_WT_IQ4_NL, 0.09}, {SS_WT_IQ4_XS, 0.08}};
    const int rows = 5, cols = 512, B = 2;
    float *wf = frand_vec((size_t)rows * cols, 1.0f), *x = frand_vec((size_t)B * cols, 1.0f), deq[512], y[10];
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++) {
        void *w = make_weight(types[t].type, wf, rows, cols);
        ck_assert_uint_eq(ss_kref_weight_bytes(types[t].type, rows, cols),
                          (size_t)rows * cols / ss_ggml_block_elems(types[t].type) * ss_ggml_block_bytes(types[t].type));
        ss_kref_matmul(y, x, types[t].type, w, rows, cols, NULL, B);
        double e2 = 0, w2 = 0;
        for (int b = 0; b < B; b++)
            for (int n = 0; n < rows; n++) {
                ss_kref_dequant_row(types[t].type, w, cols, n, deq);
                double acc = 0;
                for (int k = 0; k < cols; k++) {
                    acc += (double)deq[k] * x[b * cols + k];
                    e2 += ((double)deq[k] - wf[n * cols + k]) * ((double)deq[k] - wf[n * cols + k]);
                    w2 += (double)wf[n * cols + k] * wf[n * cols + k];
                }
                ck_assert_double_eq_tol(y[b * rows + n], acc, 1e-4);
            }
        ck_assert_msg(sqrt(e2 / w2) < types[t].tol, "type %d: relative RMS error %g", types[t].type, sqrt(e2 / w2));
        free(w);
    }
    ck_assert_uint_eq(ss_kref_weight_bytes(SS_WT_Q4_K, 2, 96), 0); /* rows must hold whole blocks */
    free(wf);
    free(x);
}
END_TEST

START_TEST(test_ref_rope)
{
    /* position 0 is the identity; rotation preserves each pair's norm; the pairings differ */
    float x[16], y[16], z[16];
    for (int i = 0; i < 16; i++)
        x[i] = y[i] = z[i] = frand();
    int32_t p0 = 0, p5 = 5;
    ss_kref_rope(y, &p0, 1, 2, 8, 8, 10000.0f, 0);
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq_tol(y[i], x[i], 1e-6);
    ss_kref_rope(y, &p5, 1, 2, 8, 8, 10000.0f, 0);
    ss_kref_rope(z, &p5, 1, 2, 8, 8, 10000.0f, 1);
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++) {
            const float *a = x + h * 8, *b = y + h * 8, *c = z + h * 8;
            ck_assert_float_eq_tol(hypotf(b[2 * j], b[2 * j + 1]), hypotf(a[2 * j], a[2 * j + 1]), 1e-5);
            ck_assert_float_eq_tol(hypotf(c[j], c[j + 4]), hypotf(a[j], a[j + 4]), 1e-5);
        }
    /* first pair at pos 5, freq 1: rotation by 5 radians */
    ck_assert_float_eq_tol(y[0], x[0] * cosf(5) - x[1] * sinf(5), 1e-5);
}
END_TEST

START_TEST(test_ref_attention_paged)
{
    /* paged attention over scattered blocks equals dense causal attention */
    const int nheads = 4, nkv = 2, hd = 8, len = 37, max_blocks = 4;
    int32_t bt[4] = {3, 0, 5, 1}; /* the sequence's blocks, deliberately out of order */
    size_t pool = (size_t)6 * nkv * SS_KV_BLOCK * hd;
    float *kp = calloc(pool, 4), *vp = calloc(pool, 4);
    float *k = frand_vec((size_t)len * nkv * hd, 1), *v = frand_vec((size_t)len * nkv * hd, 1);
    float *q = frand_vec((size_t)len * nheads * hd, 1), *out = malloc((size_t)len * nheads * hd * 4);
    int32_t seq[37], pos[37];
    for (int i = 0; i < len; i++)
        seq[i] = 0, pos[i] = i;
    ss_kref_kv_store(kp, vp, k, v, bt, max_blocks, seq, pos, len, nkv, hd);
    ss_kref_attention(out, q, kp, vp, bt, max_blocks, seq, pos, len, nheads, nkv, hd);
    for (int i = 0; i < len; i += 9)
        for (int h = 0; h < nheads; h++) {
            int kh = h / (nheads / nkv);
            double w[37], mx = -1e30, s = 0;
            for (int p = 0; p <= i; p++) {
                double d = 0;
                for (int j = 0; j < hd; j++)
                    d += q[(i * nheads + h) * hd + j] * k[(p * nkv + kh) * hd + j];
                w[p] = d / sqrt(hd);
                mx = fmax(mx, w[p]);
            }
            for (int p = 0; p <= i; p++)
                s += (w[p] = exp(w[p] - mx));
            for (int j = 0; j < hd; j++) {
                double o = 0;
                for (int p = 0; p <= i; p++)
                    o += w[p] / s * v[(p * nkv + kh) * hd + j];
                ck_assert_double_eq_tol(out[(i * nheads + h) * hd + j], o, 1e-5);
            }
        }
    free(kp), free(vp), free(k), free(v), free(q), free(out);
}
END_TEST

START_TEST(test_ref_rope_kv)
{
    /* the fused reference equals rope on q, rope on a copy of k, then the store; k is unchanged */
    const int n = 3, nheads = 4, nkv = 2, hd = 8, rot = 6, max_blocks = 2;
    int32_t bt[2] = {1, 0}, seq[3] = {0, 0, 0}, pos[3] = {3, 9, 20};
    size_t pool = (size_t)2 * nkv * SS_KV_BLOCK * hd;
    float *q = frand_vec((size_t)n * nheads * hd, 1), *k = frand_vec((size_t)n * nkv * hd, 1);
    float *v = frand_vec((size_t)n * nkv * hd, 1), *q2 = malloc((size_t)n * nheads * hd * 4);
    float *k2 = malloc((size_t)n * nkv * hd * 4), *k0 = malloc((size_t)n * nkv * hd * 4);
    float *kp = calloc(pool, 4), *vp = calloc(pool, 4), *kp2 = calloc(pool, 4), *vp2 = calloc(pool, 4);
    memcpy(q2, q, (size_t)n * nheads * hd * 4);
    memcpy(k2, k, (size_t)n * nkv * hd * 4);
    memcpy(k0, k, (size_t)n * nkv * hd * 4);
    ss_kref_rope_kv(q, k, v, kp, vp, bt, max_blocks, seq, pos, n, nheads, nkv, hd, rot, 10000.0f, 1);
    ss_kref_rope(q2, pos, n, nheads, hd, rot, 10000.0f, 1);
    ss_kref_rope(k2, pos, n, nkv, hd, rot, 10000.0f, 1);
    ss_kref_kv_store(kp2, vp2, k2, v, bt, max_blocks, seq, pos, n, nkv, hd);
    ck_assert_mem_eq(q, q2, (size_t)n * nheads * hd * 4);
    ck_assert_mem_eq(k, k0, (size_t)n * nkv * hd * 4);
    ck_assert_mem_eq(kp, kp2, pool * 4);
    ck_assert_mem_eq(vp, vp2, pool * 4);
    ck_assert(kp[(size_t)(1 * nkv + 0) * SS_KV_BLOCK * hd + 3 * hd + 7] == k0[7]); /* dims >= rot copied */
    free(q), free(k), free(v), free(q2), free(k2), free(k0), free(kp), free(vp), free(kp2), free(vp2);
}
END_TEST

START_TEST(test_ref_logprob)
{
    const int vocab = 50;
    float *l = frand_vec(2 * vocab, 5.0f), out[2 * 50];
    int32_t row[100], tok[100];
    for (int i = 0; i < 2 * vocab; i++)
        row[i] = i / vocab, tok[i] = i % vocab;
    ss_kref_logprob_gather(out, l, vocab, row, tok, 2 * vocab);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int v = 0; v < vocab; v++)
            s += exp(out[r * vocab + v]);
        ck_assert_double_eq_tol(s, 1.0, 1e-5);
    }
    free(l);
}
END_TEST

/* ------------------------------------------------------------ GPU against references */

static ss_cuda_t *gpu;
static char skip_reason[SS_ERRSZ + 64];

static int have_gpu(void)
{
    if (gpu)
        return 1;
    if (ss_cuda_device_count(skip_reason, sizeof skip_reason) <= 0)
        return 0;
    char err[SS_ERRSZ];
    if (ss_cuda_open(0, &gpu, err, sizeof err)) {
        snprintf(skip_reason, sizeof skip_reason, "%s", err);
        return 0;
    }
    return 1;
}

#define NEED_GPU()                                                                                           \
    do {                                                                                                     \
        if (!have_gpu()) {                                                                                   \
            printf("SKIP %s: %s\n", __func__, skip_reason);                                                  \
            return;                                                                                          \
        }                                                                                                    \
    } while (0)

static void *dup_to_gpu(const void *h, size_t n)
{
    void *d;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_cuda_malloc(gpu, &d, n, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cuda_h2d(gpu, d, h, n, err, sizeof err), SS_OK);
    return d;
}

static void from_gpu(void *h, const void *d, size_t n)
{
    char err[SS_ERRSZ];
    ck_assert_msg(ss_cuda_sync(gpu, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_cuda_d2h(gpu, h, d, n, err, sizeof err) == SS_OK, "%s", err);
}

START_TEST(test_gpu_matmul)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    const int types[] = {SS_WT_F32, SS_WT_F16, SS_WT_BF16, SS_WT_Q8_0};
    const int shapes[][2] = {{96, 512}, {33, 1024}, {20, 576}, {130, 96}}; /* full and partial chunks */
    const int batches[] = {1, 3, 8, 9, 64};
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++)
        for (size_t s = 0; s < SS_ARRAY_LEN(shapes); s++)
            for (size_t bi = 0; bi < SS_ARRAY_LEN(batches); bi++) {
                int rows = shapes[s][0], cols = shapes[s][1], B = batches[bi];
                float *wf = frand_vec((size_t)rows * cols, 1), *x = frand_vec((size_t)B * cols, 1);
                float *bias = frand_vec((size_t)rows, 1);
                void *w = make_weight(types[t], wf, rows, cols);
                float *ref = malloc((size_t)B * rows * 4), *got = malloc((size_t)B * rows * 4);
                ss_kref_matmul(ref, x, types[t], w, rows, cols, bias, B);
                ss_cuda_weight_t dw;
                ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dw, types[t], rows, cols, w, err, sizeof err), SS_OK);
                float *dx = dup_to_gpu(x, (size_t)B * cols * 4), *db = dup_to_gpu(bias, (size_t)rows * 4), *dy;
                ck_assert_int_eq(ss_cuda_malloc(gpu, (void **)&dy, (size_t)B * rows * 4, err, sizeof err), SS_OK);
                ck_assert_msg(ss_cuda_matmul(gpu, dy, dx, &dw, db, B, err, sizeof err) == SS_OK, "%s", err);
                from_gpu(got, dy, (size_t)B * rows * 4);
                /* bf16 tensor-core path (B > 8, non-F32) rounds activations to bf16 */
                double tol = (B > 8 && types[t] != SS_WT_F32) ? 2e-2 : 1e-4;
                double e = max_rel_err(got, ref, (size_t)B * rows);
                ck_assert_msg(e < tol, "type %d %dx%d B=%d: rel err %g", types[t], rows, cols, B, e);
                free(wf), free(x), free(bias), free(w), free(ref), free(got);
            }
}
END_TEST

/* The GGUF block types on the device: the embedding gather returns the reference dequantizer's
 * values bit for bit (the device code spells out the same float operations), and the GEMV
 * (batches <= 8) and tensor-core (bf16) paths match the reference product. */
static void block_type_checks(void)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    const int types[] = {SS_WT_Q4_0, SS_WT_Q4_1, SS_WT_Q5_0, SS_WT_Q5_1, SS_WT_IQ4_NL, SS_WT_Q8_0, SS_WT_Q2_K,
                         SS_WT_Q3_K, SS_WT_Q4_K, SS_WT_Q5_K, SS_WT_Q6_K, SS_WT_Q8_K, SS_WT_IQ4_XS};
    const int batches[] = {1, 2, 5, 8, 9, 64};
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++) {
        int big = ss_ggml_block_elems(types[t]) == 256, rows = big ? 40 : 33, cols = big ? 768 : 576;
        float *wf = frand_vec((size_t)rows * cols, 1);
        void *w = make_weight(types[t], wf, rows, cols);
        ss_cuda_weight_t dw;
        ck_assert_msg(ss_cuda_weight_upload(gpu, &dw, types[t], rows, cols, w, err, sizeof err) == SS_OK, "%s", err);
        /* every row through the embedding gather */
        int32_t tok[40];
        for (int r = 0; r < rows; r++)
            tok[r] = rows - 1 - r;
        float *ref = malloc((size_t)rows * cols * 4), *got = malloc((size_t)rows * cols * 4), *dout;
        for (int r = 0; r < rows; r++)
            ss_kref_dequant_row(types[t], w, cols, tok[r], ref + (size_t)r * cols);
        int32_t *dtok = dup_to_gpu(tok, sizeof tok);
        ck_assert_int_eq(ss_cuda_malloc(gpu, (void **)&dout, (size_t)rows * cols * 4, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_cuda_embed(gpu, dout, &dw, dtok, rows), SS_OK);
        from_gpu(got, dout, (size_t)rows * cols * 4);
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            ck_assert_msg(!memcmp(&got[i], &ref[i], 4), "type %d element %zu: device %.9g, reference %.9g", types[t],
                          i, got[i], ref[i]);
        for (size_t bi = 0; bi < SS_ARRAY_LEN(batches); bi++) {
            int B = batches[bi];
            float *x = frand_vec((size_t)B * cols, 1), *bias = frand_vec((size_t)rows, 1);
            float *yr = malloc((size_t)B * rows * 4), *yg = malloc((size_t)B * rows * 4), *dy;
            ss_kref_matmul(yr, x, types[t], w, rows, cols, bias, B);
            float *dx = dup_to_gpu(x, (size_t)B * cols * 4), *db = dup_to_gpu(bias, (size_t)rows * 4);
            ck_assert_int_eq(ss_cuda_malloc(gpu, (void **)&dy, (size_t)B * rows * 4, err, sizeof err), SS_OK);
            ck_assert_msg(ss_cuda_matmul(gpu, dy, dx, &dw, db, B, err, sizeof err) == SS_OK, "%s", err);
            from_gpu(yg, dy, (size_t)B * rows * 4);
            double e = max_rel_err(yg, yr, (size_t)B * rows), tol = B > 8 ? 2e-2 : 1e-4;
            ck_assert_msg(e < tol, "type %d %dx%d B=%d: rel err %g", types[t], rows, cols, B, e);
            free(x), free(bias), free(yr), free(yg);
        }
        free(wf), free(w), free(ref), free(got);
    }
}

START_TEST(test_gpu_block_types)
{
    block_type_checks();
}
END_TEST

/* the same with the four-rows-per-warp batch-1 GEMVs on every shape (Q8_0, Q4_K) */
START_TEST(test_gpu_block_types_rows4)
{
    NEED_GPU();
    ss_cuda_set_gemv_rows4(gpu, 0);
    block_type_checks();
    ss_cuda_set_gemv_rows4(gpu, 8192);
}
END_TEST

/* Files llama.cpp quantised (stories260K Q4_K_M / Q5_K_M: Q5_0, Q5_1, Q8_0, F16) and a Q4_K_M-style
 * file in the Llama-3.2-1B width: the GPU model's logits match the CPU model's (whose int8
 * activations differ a little from the GPU's f32/bf16 path). */
START_TEST(test_gpu_quantized_models)
{
    NEED_GPU();
    char p[1024], err[SS_ERRSZ] = "";
    char *dir = tu_tmpdir(), *mk = ss_sprintf("%s/q4km.gguf", dir);
    ss_mkmodel_spec_t spec;
    ck_assert(ss_mkmodel_shape("llama-3.2-1b", &spec));
    spec.mix = SS_MIX_Q4_K_M, spec.n_layers = 2, spec.vocab = 512;
    ck_assert_msg(ss_mkmodel_write(&spec, mk, err, sizeof err) == SS_OK, "%s", err);
    const char *paths[] = {tu_model_path("stories260K-Q4_K_M.gguf", p, sizeof p), NULL, mk};
    char p2[1024];
    paths[1] = tu_model_path("stories260K-Q5_K_M.gguf", p2, sizeof p2);
    const char *texts[] = {"Once upon a time", "The cat sat on the mat and looked at the big red ball.", "Lily"};
    for (size_t i = 0; i < SS_ARRAY_LEN(paths); i++) {
        ss_llm_opts_t o = {.threads = 2};
        ss_llm_t *cpu = NULL, *g = NULL;
        ck_assert_msg(ss_llm_open(paths[i], &o, &cpu, err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(ss_llm_open(paths[i], &o, &g, err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(ss_llm_use_cuda(g, 0, err, sizeof err) == SS_OK, "%s", err);
        int vocab = ss_llm_config(cpu)->vocab_size, *toks[3], ntok[3];
        for (int k = 0; k < 3; k++) {
            toks[k] = malloc(256 * sizeof(int));
            ntok[k] = ss_llm_tokenize(cpu, texts[k], 1, toks[k], 256);
        }
        float *a = malloc((size_t)3 * vocab * 4), *b = malloc((size_t)3 * vocab * 4);
        ck_assert_msg(ss_llm_last_logits(cpu, 3, (const int *const *)toks, ntok, a, err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(ss_llm_last_logits(g, 3, (const int *const *)toks, ntok, b, err, sizeof err) == SS_OK, "%s", err);
        for (int k = 0; k < 3; k++) {
            double e = max_rel_err(b + (size_t)k * vocab, a + (size_t)k * vocab, (size_t)vocab);
            ck_assert_msg(e < 3e-2, "%s, prompt %d: GPU logits differ from CPU by %g", paths[i], k, e);
            free(toks[k]);
        }
        free(a), free(b);
        ss_llm_close(cpu);
        ss_llm_close(g);
    }
    unlink(mk);
    rmdir(dir);
    free(mk), free(dir);
}
END_TEST

START_TEST(test_gpu_elementwise)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    const int rows = 5, dim = 576, nheads = 9, hd = 64;
    float *x = frand_vec((size_t)rows * dim, 2), *w = frand_vec(dim, 1), *ref = malloc((size_t)rows * dim * 4),
          *got = malloc((size_t)rows * dim * 4);
    float *dx = dup_to_gpu(x, (size_t)rows * dim * 4), *dw = dup_to_gpu(w, dim * 4), *dy;
    ss_cuda_malloc(gpu, (void **)&dy, (size_t)rows * dim * 4, err, sizeof err);
    ss_kref_rmsnorm(ref, x, w, rows, dim, 1e-5f);
    ss_cuda_rmsnorm(gpu, dy, dx, dw, rows, dim, 1e-5f);
    from_gpu(got, dy, (size_t)rows * dim * 4);
    ck_assert_msg(max_rel_err(got, ref, (size_t)rows * dim) < 1e-5, "rmsnorm");

    int32_t pos[5] = {0, 1, 7, 100, 2047};
    int32_t *dpos = dup_to_gpu(pos, sizeof pos);
    for (int neox = 0; neox < 2; neox++) {
        memcpy(ref, x, (size_t)rows * dim * 4);
        ss_kref_rope(ref, pos, rows, nheads, hd, hd, 10000.0f, neox);
        ss_cuda_h2d(gpu, dy, x, (size_t)rows * dim * 4, err, sizeof err);
        ss_cuda_rope(gpu, dy, dpos, rows, nheads, hd, hd, 10000.0f, neox);
        from_gpu(got, dy, (size_t)rows * dim * 4);
        ck_assert_msg(max_rel_err(got, ref, (size_t)rows * dim) < 1e-4, "rope neox=%d", neox);
    }
    ss_kref_swiglu(ref, x, w, dim);
    ss_cuda_swiglu(gpu, dy, dx, dw, dim);
    from_gpu(got, dy, dim * 4);
    ck_assert_msg(max_rel_err(got, ref, dim) < 1e-5, "swiglu");
    free(x), free(w), free(ref), free(got);
}
END_TEST

/* bf16 <-> float on the host (round to nearest even), for checking bf16 inputs and outputs. */
static uint16_t to_bf16_host(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float from_bf16_host(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The GPU's rotated q (qn floats) and K/V pools (pool floats each) against the reference. */
static void expect_rope_kv(const float *dq, const float *dkp, const float *dvp, const float *q, const float *kp,
                           const float *vp, size_t qn, size_t pool, const char *what, int neox)
{
    float *gq = malloc(qn * 4), *gk = malloc(pool * 4), *gv = malloc(pool * 4);
    from_gpu(gq, dq, qn * 4);
    from_gpu(gk, dkp, pool * 4);
    from_gpu(gv, dvp, pool * 4);
    ck_assert_msg(max_rel_err(gq, q, qn) < 1e-5, "%s q neox=%d", what, neox);
    ck_assert_msg(max_rel_err(gk, kp, pool) < 1e-5, "%s k pool neox=%d", what, neox);
    ck_assert_mem_eq(gv, vp, pool * 4);
    free(gq), free(gk), free(gv);
}

static void fused_checks(void)
{
    /* matmul_add, matmul_multi (Q|K|V with biases), matmul_swiglu and rope_kv against the
     * references composed from the unfused ones, at GEMV and tensor-core batch sizes */
    NEED_GPU();
    char err[SS_ERRSZ];
    const int types[] = {SS_WT_F32, SS_WT_F16, SS_WT_Q8_0};
    const int batches[] = {1, 5, 8, 12};
    const int cols = 512, rq = 96, rk = 32, rh = 160;
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++)
        for (size_t bi = 0; bi < SS_ARRAY_LEN(batches); bi++) {
            int B = batches[bi], ty = types[t];
            double tol = (B > 8 && ty != SS_WT_F32) ? 2e-2 : 1e-4;
            float *wqf = frand_vec((size_t)rq * cols, 1), *wkf = frand_vec((size_t)rk * cols, 1);
            float *wgf = frand_vec((size_t)rh * cols, 1), *wuf = frand_vec((size_t)rh * cols, 1);
            float *x = frand_vec((size_t)B * cols, 1), *bq = frand_vec(rq, 1), *bk = frand_vec(rk, 1);
            float *y0 = frand_vec((size_t)B * rq, 1);
            void *wq = make_weight(ty, wqf, rq, cols), *wk = make_weight(ty, wkf, rk, cols);
            void *wg = make_weight(ty, wgf, rh, cols), *wu = make_weight(ty, wuf, rh, cols);
            ss_cuda_weight_t dq, dk, dg, du;
            ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dq, ty, rq, cols, wq, err, sizeof err), SS_OK);
            ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dk, ty, rk, cols, wk, err, sizeof err), SS_OK);
            ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dg, ty, rh, cols, wg, err, sizeof err), SS_OK);
            ck_assert_int_eq(ss_cuda_weight_upload(gpu, &du, ty, rh, cols, wu, err, sizeof err), SS_OK);
            float *dx = dup_to_gpu(x, (size_t)B * cols * 4), *dbq = dup_to_gpu(bq, rq * 4);
            float *dbk = dup_to_gpu(bk, rk * 4), *dy = dup_to_gpu(y0, (size_t)B * rq * 4), *dyk, *dh, *ds;
            ss_cuda_malloc(gpu, (void **)&dyk, (size_t)B * rk * 4, err, sizeof err);
            ss_cuda_malloc(gpu, (void **)&dh, (size_t)B * rh * 4, err, sizeof err);
            ss_cuda_malloc(gpu, (void **)&ds, (size_t)B * rh * 4, err, sizeof err);
            float *ref = malloc((size_t)B * rh * 4), *ref2 = malloc((size_t)B * rh * 4);
            float *got = malloc((size_t)B * rh * 4);
            /* y0 += Wq x */
            ss_kref_matmul(ref, x, ty, wq, rq, cols, NULL, B);
            for (int i = 0; i < B * rq; i++)
                ref[i] += y0[i];
            ck_assert_msg(ss_cuda_matmul_add(gpu, dy, dx, &dq, B, err, sizeof err) == SS_OK, "%s", err);
            from_gpu(got, dy, (size_t)B * rq * 4);
            ck_assert_msg(max_rel_err(got, ref, (size_t)B * rq) < tol, "matmul_add type %d B=%d", ty, B);
            if (B > 8 && ty != SS_WT_F32) { /* the same from bf16 x (what the prefill attention hands over) */
                uint16_t *xb = malloc((size_t)B * cols * 2);
                for (int i = 0; i < B * cols; i++)
                    xb[i] = to_bf16_host(x[i]);
                void *dxb = dup_to_gpu(xb, (size_t)B * cols * 2);
                ss_cuda_h2d(gpu, dy, y0, (size_t)B * rq * 4, err, sizeof err);
                ck_assert_msg(ss_cuda_matmul_add_bf16(gpu, dy, dxb, &dq, B, err, sizeof err) == SS_OK, "%s", err);
                from_gpu(got, dy, (size_t)B * rq * 4);
                ck_assert_msg(max_rel_err(got, ref, (size_t)B * rq) < tol, "matmul_add_bf16 type %d B=%d", ty, B);
                ss_cuda_free(gpu, dxb);
                free(xb);
            }
            /* [Wq; Wk] x + [bq; bk] into two outputs */
            float *const ys[2] = {dy, dyk};
            const ss_cuda_weight_t *const ws[2] = {&dq, &dk};
            const float *const bs[2] = {dbq, dbk};
            ck_assert_msg(ss_cuda_matmul_multi(gpu, 2, ys, ws, bs, dx, B, err, sizeof err) == SS_OK, "%s", err);
            ss_kref_matmul(ref, x, ty, wq, rq, cols, bq, B);
            from_gpu(got, dy, (size_t)B * rq * 4);
            ck_assert_msg(max_rel_err(got, ref, (size_t)B * rq) < tol, "matmul_multi q type %d B=%d", ty, B);
            ss_kref_matmul(ref, x, ty, wk, rk, cols, bk, B);
            from_gpu(got, dyk, (size_t)B * rk * 4);
            ck_assert_msg(max_rel_err(got, ref, (size_t)B * rk) < tol, "matmul_multi k type %d B=%d", ty, B);
            if (B > 8 && ty != SS_WT_F32) { /* [Wq; Wk] packed into one bf16 weight: one GEMM, rows in turn */
                ss_cuda_weight_t pk;
                float *dpy, *py = malloc((size_t)B * (rq + rk) * 4), *pref = malloc((size_t)B * (rq + rk) * 4);
                ck_assert_msg(ss_cuda_weight_pack_bf16(gpu, &pk, ws, 2, err, sizeof err) == SS_OK, "%s", err);
                ck_assert_int_eq(pk.rows, rq + rk);
                ss_cuda_malloc(gpu, (void **)&dpy, (size_t)B * (rq + rk) * 4, err, sizeof err);
                ck_assert_msg(ss_cuda_matmul(gpu, dpy, dx, &pk, NULL, B, err, sizeof err) == SS_OK, "%s", err);
                from_gpu(py, dpy, (size_t)B * (rq + rk) * 4);
                ss_kref_matmul(ref, x, ty, wq, rq, cols, NULL, B);
                ss_kref_matmul(ref2, x, ty, wk, rk, cols, NULL, B);
                for (int b2 = 0; b2 < B; b2++) {
                    memcpy(pref + (size_t)b2 * (rq + rk), ref + (size_t)b2 * rq, (size_t)rq * 4);
                    memcpy(pref + (size_t)b2 * (rq + rk) + rq, ref2 + (size_t)b2 * rk, (size_t)rk * 4);
                }
                ck_assert_msg(max_rel_err(py, pref, (size_t)B * (rq + rk)) < tol, "packed Q|K type %d B=%d", ty, B);
                ss_cuda_free(gpu, dpy);
                ss_cuda_free(gpu, pk.data);
                free(py), free(pref);
            }
            /* silu(G x) * (U x) */
            ck_assert_msg(ss_cuda_matmul_swiglu(gpu, dh, ds, dx, &dg, &du, B, err, sizeof err) == SS_OK, "%s", err);
            ss_kref_matmul(ref, x, ty, wg, rh, cols, NULL, B);
            ss_kref_matmul(ref2, x, ty, wu, rh, cols, NULL, B);
            ss_kref_swiglu(ref, ref, ref2, (size_t)B * rh);
            from_gpu(got, dh, (size_t)B * rh * 4);
            ck_assert_msg(max_rel_err(got, ref, (size_t)B * rh) < tol, "matmul_swiglu type %d B=%d", ty, B);
            /* the whole feed-forward block with its residual: r += Down swiglu(G x, U x) */
            float *wdf = frand_vec((size_t)cols * rh, 1), *r0 = frand_vec((size_t)B * cols, 1);
            float *fref = malloc((size_t)B * cols * 4), *fgot = malloc((size_t)B * cols * 4);
            void *wd = make_weight(ty, wdf, cols, rh);
            ss_cuda_weight_t dd;
            ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dd, ty, cols, rh, wd, err, sizeof err), SS_OK);
            float *dr = dup_to_gpu(r0, (size_t)B * cols * 4);
            ck_assert_msg(ss_cuda_ffn(gpu, dr, dx, &dg, &du, &dd, dh, ds, B, err, sizeof err) == SS_OK, "%s", err);
            ss_kref_matmul(fref, ref, ty, wd, cols, rh, NULL, B); /* ref still holds the SwiGLU output */
            for (int i = 0; i < B * cols; i++)
                fref[i] += r0[i];
            from_gpu(fgot, dr, (size_t)B * cols * 4);
            ck_assert_msg(max_rel_err(fgot, fref, (size_t)B * cols) < tol, "ffn type %d B=%d: %g", ty, B,
                          max_rel_err(fgot, fref, (size_t)B * cols));
            /* RMSNorm fused in front: Q|K of rmsnorm(x), and the block on rmsnorm(r) with r += ... */
            float *nwv = frand_vec(cols, 1), *xn = malloc((size_t)B * cols * 4), *g2 = malloc((size_t)B * rh * 4);
            float *dnw = dup_to_gpu(nwv, (size_t)cols * 4), *dxn;
            ss_cuda_malloc(gpu, (void **)&dxn, (size_t)B * cols * 4, err, sizeof err);
            ss_kref_rmsnorm(xn, x, nwv, B, cols, 1e-5f);
            ck_assert_msg(ss_cuda_rms_matmul_multi(gpu, 2, ys, ws, bs, dx, dnw, 1e-5f, dxn, B, err, sizeof err) == SS_OK,
                          "%s", err);
            ss_kref_matmul(ref, xn, ty, wq, rq, cols, bq, B);
            from_gpu(got, dy, (size_t)B * rq * 4);
            ck_assert_msg(max_rel_err(got, ref, (size_t)B * rq) < tol, "rms_matmul_multi type %d B=%d", ty, B);
            ss_cuda_h2d(gpu, dr, r0, (size_t)B * cols * 4, err, sizeof err);
            ck_assert_msg(ss_cuda_rms_ffn(gpu, dr, dnw, 1e-5f, dxn, &dg, &du, &dd, dh, ds, B, err, sizeof err) == SS_OK,
                          "%s", err);
            ss_kref_rmsnorm(xn, r0, nwv, B, cols, 1e-5f);
            ss_kref_matmul(ref, xn, ty, wg, rh, cols, NULL, B);
            ss_kref_matmul(g2, xn, ty, wu, rh, cols, NULL, B);
            ss_kref_swiglu(ref, ref, g2, (size_t)B * rh);
            ss_kref_matmul(fref, ref, ty, wd, cols, rh, NULL, B);
            for (int i = 0; i < B * cols; i++)
                fref[i] += r0[i];
            from_gpu(fgot, dr, (size_t)B * cols * 4);
            ck_assert_msg(max_rel_err(fgot, fref, (size_t)B * cols) < tol, "rms_ffn type %d B=%d: %g", ty, B,
                          max_rel_err(fgot, fref, (size_t)B * cols));
            free(nwv), free(xn), free(g2);
            free(wdf), free(r0), free(fref), free(fgot), free(wd);
            free(wqf), free(wkf), free(wgf), free(wuf), free(x), free(bq), free(bk), free(y0);
            free(wq), free(wk), free(wg), free(wu), free(ref), free(ref2), free(got);
        }
    /* Q|K|V + RoPE + KV store in one GEMV (llama pairing; full and partial rotation; with and
     * without the fused RMSNorm), against the composed references; B = 12 takes the fallback */
    for (size_t t = 0; t < SS_ARRAY_LEN(types); t++)
        for (size_t bi = 0; bi < SS_ARRAY_LEN(batches); bi++)
            for (int variant = 0; variant < 2; variant++) {
                const int qh = 4, kh = 2, hd2 = 32, c2 = 128, mb2 = 4, rot2 = variant ? 16 : 32;
                int B = batches[bi], ty = types[t];
                double tol = (B > 8 && ty != SS_WT_F32) ? 2e-2 : 1e-4;
                int32_t bt2[8] = {5, 2, 7, 0, 1, 3, 4, 6}, seq2[12], pos2[12];
                for (int i = 0; i < B; i++)
                    seq2[i] = i % 2, pos2[i] = 3 + 5 * i; /* distinct slots, up to position 58 */
                size_t pool2 = (size_t)8 * kh * SS_KV_BLOCK * hd2, qn2 = (size_t)B * qh * hd2, kn2 = (size_t)B * kh * hd2;
                float *wqf = frand_vec((size_t)qh * hd2 * c2, 1), *wkf = frand_vec((size_t)kh * hd2 * c2, 1);
                float *wvf = frand_vec((size_t)kh * hd2 * c2, 1), *x = frand_vec((size_t)B * c2, 1);
                float *bq = frand_vec(qh * hd2, 1), *bk = frand_vec(kh * hd2, 1), *bv = frand_vec(kh * hd2, 1);
                float *nwv = frand_vec(c2, 1), *xn = malloc((size_t)B * c2 * 4);
                void *wq = make_weight(ty, wqf, qh * hd2, c2), *wk = make_weight(ty, wkf, kh * hd2, c2);
                void *wv = make_weight(ty, wvf, kh * hd2, c2);
                float *rq = malloc(qn2 * 4), *rk = malloc(kn2 * 4), *rv = malloc(kn2 * 4);
                float *kp = calloc(pool2, 4), *vp = calloc(pool2, 4), *gq = malloc(qn2 * 4), *gk = malloc(pool2 * 4),
                      *gv = malloc(pool2 * 4);
                if (variant)
                    ss_kref_rmsnorm(xn, x, nwv, B, c2, 1e-5f);
                else
                    memcpy(xn, x, (size_t)B * c2 * 4);
                ss_kref_matmul(rq, xn, ty, wq, qh * hd2, c2, bq, B);
                ss_kref_matmul(rk, xn, ty, wk, kh * hd2, c2, bk, B);
                ss_kref_matmul(rv, xn, ty, wv, kh * hd2, c2, bv, B);
                ss_kref_rope_kv(rq, rk, rv, kp, vp, bt2, mb2, seq2, pos2, B, qh, kh, hd2, rot2, 10000.0f, 0);
                ss_cuda_weight_t dq, dk, dv;
                ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dq, ty, qh * hd2, c2, wq, err, sizeof err), SS_OK);
                ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dk, ty, kh * hd2, c2, wk, err, sizeof err), SS_OK);
                ck_assert_int_eq(ss_cuda_weight_upload(gpu, &dv, ty, kh * hd2, c2, wv, err, sizeof err), SS_OK);
                float *dx = dup_to_gpu(x, (size_t)B * c2 * 4), *dnw = dup_to_gpu(nwv, (size_t)c2 * 4);
                float *dbq = dup_to_gpu(bq, qh * hd2 * 4), *dbk = dup_to_gpu(bk, kh * hd2 * 4), *dbv = dup_to_gpu(bv, kh * hd2 * 4);
                float *dkp, *dvp, *dqo, *dko, *dvo, *dxn;
                ss_cuda_malloc(gpu, (void **)&dkp, pool2 * 4, err, sizeof err);
                ss_cuda_malloc(gpu, (void **)&dvp, pool2 * 4, err, sizeof err);
                ss_cuda_memset(gpu, dkp, 0, pool2 * 4, err, sizeof err);
                ss_cuda_memset(gpu, dvp, 0, pool2 * 4, err, sizeof err);
                ss_cuda_malloc(gpu, (void **)&dqo, qn2 * 4, err, sizeof err);
                ss_cuda_malloc(gpu, (void **)&dko, kn2 * 4, err, sizeof err);
                ss_cuda_malloc(gpu, (void **)&dvo, kn2 * 4, err, sizeof err);
                ss_cuda_malloc(gpu, (void **)&dxn, (size_t)B * c2 * 4, err, sizeof err);
                int32_t *dbt2 = dup_to_gpu(bt2, sizeof bt2), *dseq2 = dup_to_gpu(seq2, sizeof seq2);
                int32_t *dpos2 = dup_to_gpu(pos2, sizeof pos2);
                ck_assert_msg(ss_cuda_qkv_rope_kv(gpu, dqo, dko, dvo, dkp, dvp, &dq, &dk, &dv, dbq, dbk, dbv, dx,
                                                  variant ? dnw : NULL, 1e-5f, dxn, dbt2, mb2, dseq2, dpos2, B, qh, kh,
                                                  hd2, rot2, 10000.0f, 0, err, sizeof err) == SS_OK, "%s", err);
                from_gpu(gq, dqo, qn2 * 4);
                from_gpu(gk, dkp, pool2 * 4);
                from_gpu(gv, dvp, pool2 * 4);
                ck_assert_msg(max_rel_err(gq, rq, qn2) < tol, "qkv_rope q type %d B=%d variant %d: %g", ty, B, variant,
                              max_rel_err(gq, rq, qn2));
                ck_assert_msg(max_rel_err(gk, kp, pool2) < tol, "qkv_rope k type %d B=%d variant %d", ty, B, variant);
                ck_assert_msg(max_rel_err(gv, vp, pool2) < tol, "qkv_rope v type %d B=%d variant %d", ty, B, variant);
                free(wqf), free(wkf), free(wvf), free(x), free(bq), free(bk), free(bv), free(nwv), free(xn);
                free(wq), free(wk), free(wv), free(rq), free(rk), free(rv), free(kp), free(vp), free(gq), free(gk),
                    free(gv);
            }
    /* rope_kv: both pairings, a partial rotation, tokens of two sequences */
    const int n = 5, nheads = 8, nkv = 2, hd = 64, mb = 2;
    int32_t bt[4] = {3, 1, 0, 2}, seq[5] = {0, 0, 0, 1, 1}, pos[5] = {0, 15, 16, 4, 31};
    size_t pool = (size_t)4 * nkv * SS_KV_BLOCK * hd, qn = (size_t)n * nheads * hd, kn = (size_t)n * nkv * hd;
    for (int neox = 0; neox < 2; neox++) {
        int rot = neox ? 32 : hd;
        float *q = frand_vec(qn, 1), *k = frand_vec(kn, 1), *v = frand_vec(kn, 1);
        float *kp = calloc(pool, 4), *vp = calloc(pool, 4);
        float *dq = dup_to_gpu(q, qn * 4), *dk = dup_to_gpu(k, kn * 4), *dv = dup_to_gpu(v, kn * 4);
        float *dkp = dup_to_gpu(kp, pool * 4), *dvp = dup_to_gpu(vp, pool * 4);
        int32_t *dbt = dup_to_gpu(bt, sizeof bt), *dseq = dup_to_gpu(seq, sizeof seq), *dpos = dup_to_gpu(pos, sizeof pos);
        size_t ld = (size_t)(nheads + 2 * nkv) * hd; /* packed rows Q | K | V, before the reference rotates q */
        float *packed = malloc((size_t)n * ld * 4);
        for (int t = 0; t < n; t++) {
            memcpy(packed + t * ld, q + (size_t)t * nheads * hd, (size_t)nheads * hd * 4);
            memcpy(packed + t * ld + nheads * hd, k + (size_t)t * nkv * hd, (size_t)nkv * hd * 4);
            memcpy(packed + t * ld + (nheads + nkv) * hd, v + (size_t)t * nkv * hd, (size_t)nkv * hd * 4);
        }
        ss_kref_rope_kv(q, k, v, kp, vp, bt, mb, seq, pos, n, nheads, nkv, hd, rot, 500000.0f, neox);
        ck_assert_int_eq(ss_cuda_rope_kv(gpu, dq, dk, dv, dkp, dvp, dbt, mb, dseq, dpos, n, nheads, nkv, hd, rot,
                                         500000.0f, neox), SS_OK);
        expect_rope_kv(dq, dkp, dvp, q, kp, vp, qn, pool, "rope_kv", neox);
        /* the same from packed Q|K|V rows (one GEMM's output), Q written to its own buffer */
        float *dpk = dup_to_gpu(packed, (size_t)n * ld * 4);
        ss_cuda_memset(gpu, dq, 0, qn * 4, err, sizeof err);
        ss_cuda_memset(gpu, dkp, 0, pool * 4, err, sizeof err);
        ss_cuda_memset(gpu, dvp, 0, pool * 4, err, sizeof err);
        ck_assert_int_eq(ss_cuda_rope_kv_packed(gpu, dq, dpk, dkp, dvp, dbt, mb, dseq, dpos, n, nheads, nkv, hd, rot,
                                                500000.0f, neox), SS_OK);
        expect_rope_kv(dq, dkp, dvp, q, kp, vp, qn, pool, "rope_kv_packed", neox);
        ss_cuda_free(gpu, dpk);
        free(packed);
        free(q), free(k), free(v), free(kp), free(vp);
    }
}

START_TEST(test_gpu_fused)
{
    fused_checks();
}
END_TEST

/* the same with the four-rows-per-warp batch-1 GEMVs on every shape (Q8_0, Q4_K) */
START_TEST(test_gpu_fused_rows4)
{
    NEED_GPU();
    ss_cuda_set_gemv_rows4(gpu, 0);
    fused_checks();
    ss_cuda_set_gemv_rows4(gpu, 8192);
}
END_TEST

START_TEST(test_gpu_attention)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    /* two sequences: one prefilled in tiles of 16 (length 45), one decoding 1 token at 70 */
    const int nheads = 8, nkv = 2, hd = 64, max_blocks = 8, nblocks = 16;
    int32_t bt[2 * 8] = {4, 9, 1, 0, 0, 0, 0, 0, 2, 3, 5, 6, 7, 8, 0, 0};
    const int n0 = 45, n1 = 71, n = n0 + n1;
    int32_t seq[116], pos[116];
    for (int i = 0; i < n0; i++)
        seq[i] = 0, pos[i] = i;
    for (int i = 0; i < n1; i++)
        seq[n0 + i] = 1, pos[n0 + i] = i;
    size_t pool = (size_t)nblocks * nkv * SS_KV_BLOCK * hd;
    float *kp = calloc(pool, 4), *vp = calloc(pool, 4);
    float *k = frand_vec((size_t)n * nkv * hd, 1), *v = frand_vec((size_t)n * nkv * hd, 1);
    float *q = frand_vec((size_t)n * nheads * hd, 1);
    float *ref = malloc((size_t)n * nheads * hd * 4), *got = malloc((size_t)n * nheads * hd * 4);
    ss_kref_kv_store(kp, vp, k, v, bt, max_blocks, seq, pos, n, nkv, hd);
    ss_kref_attention(ref, q, kp, vp, bt, max_blocks, seq, pos, n, nheads, nkv, hd);
    /* on the GPU: store, then attend only the last token of seq 1 and all of seq 0 */
    int32_t tq0[8], tnq[8], nt = 0;
    for (int i = 0; i < n0; i += 16)
        tq0[nt] = i, tnq[nt++] = SS_MIN(16, n0 - i);
    tq0[nt] = n - 1, tnq[nt++] = 1;
    float *dkp, *dvp, *dout;
    ss_cuda_malloc(gpu, (void **)&dkp, pool * 4, err, sizeof err);
    ss_cuda_malloc(gpu, (void **)&dvp, pool * 4, err, sizeof err);
    ss_cuda_malloc(gpu, (void **)&dout, (size_t)n * nheads * hd * 4, err, sizeof err);
    ss_cuda_memset(gpu, dout, 0, (size_t)n * nheads * hd * 4, err, sizeof err);
    float *dk = dup_to_gpu(k, (size_t)n * nkv * hd * 4), *dv = dup_to_gpu(v, (size_t)n * nkv * hd * 4);
    float *dq = dup_to_gpu(q, (size_t)n * nheads * hd * 4);
    int32_t *dbt = dup_to_gpu(bt, sizeof bt), *dseq = dup_to_gpu(seq, sizeof seq), *dpos = dup_to_gpu(pos, sizeof pos);
    int32_t *dt0 = dup_to_gpu(tq0, sizeof tq0), *dtn = dup_to_gpu(tnq, sizeof tnq);
    ck_assert_int_eq(ss_cuda_kv_store(gpu, dkp, dvp, dk, dv, dbt, max_blocks, dseq, dpos, n, nkv, hd), SS_OK);
    ck_assert_int_eq(ss_cuda_attention(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                       nheads, nkv, hd), SS_OK);
    from_gpu(got, dout, (size_t)n * nheads * hd * 4);
    ck_assert_msg(max_rel_err(got, ref, (size_t)n0 * nheads * hd) < 1e-4, "prefill attention");
    size_t last = (size_t)(n - 1) * nheads * hd;
    ck_assert_msg(max_rel_err(got + last, ref + last, (size_t)nheads * hd) < 1e-4, "decode attention");
    /* split-KV: the decode query and a prefill tile, keys in 1, 3 and 8 ranges, then merged */
    for (int ns = 1; ns <= 8; ns += ns == 1 ? 2 : 5) {
        float *dpart;
        ss_cuda_malloc(gpu, (void **)&dpart, (size_t)n * nheads * ns * (hd + 2) * 4, err, sizeof err);
        ss_cuda_memset(gpu, dout, 0, (size_t)n * nheads * hd * 4, err, sizeof err);
        ck_assert_int_eq(ss_cuda_attention_split(gpu, dout, dpart, ns, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n,
                                                 dt0, dtn, nt, nheads, nkv, hd), SS_OK);
        from_gpu(got, dout, (size_t)n * nheads * hd * 4);
        ck_assert_msg(max_rel_err(got + last, ref + last, (size_t)nheads * hd) < 1e-4, "split %d decode", ns);
        ck_assert_msg(max_rel_err(got, ref, (size_t)n0 * nheads * hd) < 1e-4, "split %d prefill", ns);
        ss_cuda_free(gpu, dpart);
    }
    /* the tensor-core kernel over every query, in tiles of up to 64 (bf16 inputs: looser bound) */
    const int tq = SS_CUDA_TC_ROWS / (nheads / nkv); /* queries per tile */
    ck_assert(ss_cuda_attention_tc_ok(hd, nheads / nkv));
    int32_t tcq0[16], tcnq[16];
    nt = 0;
    for (int i = 0; i < n0; i += tq)
        tcq0[nt] = i, tcnq[nt++] = SS_MIN(tq, n0 - i);
    for (int i = n0; i < n; i += tq)
        tcq0[nt] = i, tcnq[nt++] = SS_MIN(tq, n - i);
    ck_assert_int_le(nt, 16);
    dt0 = dup_to_gpu(tcq0, sizeof tcq0);
    dtn = dup_to_gpu(tcnq, sizeof tcnq);
    ss_cuda_memset(gpu, dout, 0, (size_t)n * nheads * hd * 4, err, sizeof err);
    ck_assert_int_eq(ss_cuda_attention_tc(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                          nheads, nkv, hd, nheads / nkv), SS_OK);
    from_gpu(got, dout, (size_t)n * nheads * hd * 4);
    double etc = max_rel_err(got, ref, (size_t)n * nheads * hd);
    ck_assert_msg(etc < 2e-2, "tensor-core attention, group per block: rel err %g", etc);
    /* one head per block, tiles of 64 queries (45; 64 + 7) */
    nt = 0;
    tcq0[nt] = 0, tcnq[nt++] = n0;
    for (int i = n0; i < n; i += SS_CUDA_TC_ROWS)
        tcq0[nt] = i, tcnq[nt++] = SS_MIN(SS_CUDA_TC_ROWS, n - i);
    ss_cuda_h2d(gpu, dt0, tcq0, sizeof tcq0, err, sizeof err);
    ss_cuda_h2d(gpu, dtn, tcnq, sizeof tcnq, err, sizeof err);
    ss_cuda_memset(gpu, dout, 0, (size_t)n * nheads * hd * 4, err, sizeof err);
    ck_assert_int_eq(ss_cuda_attention_tc(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                          nheads, nkv, hd, 1), SS_OK);
    from_gpu(got, dout, (size_t)n * nheads * hd * 4);
    etc = max_rel_err(got, ref, (size_t)n * nheads * hd);
    ck_assert_msg(etc < 2e-2, "tensor-core attention, head per block: rel err %g", etc);
    /* the same with bf16 output rows */
    ss_cuda_memset(gpu, dout, 0, (size_t)n * nheads * hd * 4, err, sizeof err);
    ck_assert_int_eq(ss_cuda_attention_tc_bf16(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                               nheads, nkv, hd, 1), SS_OK);
    uint16_t *gotb = malloc((size_t)n * nheads * hd * 2);
    from_gpu(gotb, dout, (size_t)n * nheads * hd * 2);
    for (int i = 0; i < n * nheads * hd; i++)
        got[i] = from_bf16_host(gotb[i]);
    free(gotb);
    etc = max_rel_err(got, ref, (size_t)n * nheads * hd);
    ck_assert_msg(etc < 2e-2, "tensor-core attention, bf16 output: rel err %g", etc);
    ck_assert_int_eq(ss_cuda_attention_tc(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                          nheads, nkv, hd, 3), SS_ERR_UNSUPPORTED);
    ck_assert(!ss_cuda_attention_tc_ok(8, 4) && !ss_cuda_attention_tc_ok(72, 4) && ss_cuda_attention_tc_ok(128, 8));
    ck_assert(ss_cuda_attention_tc_ok(64, 7) && !ss_cuda_attention_tc_ok(64, 65));
    free(kp), free(vp), free(k), free(v), free(q), free(ref), free(got);
}
END_TEST

START_TEST(test_gpu_attention_tc_odd_group)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    /* Qwen2.5-0.5B's GQA: 14 query heads on 2 KV heads (a group of 7, which does not divide a
     * block's 64 rows): 50 prompt tokens as one long tile (a head per block) and as tiles of
     * floor(64 / 7) = 9 queries (the group per block) */
    const int nheads = 14, nkv = 2, hd = 64, max_blocks = 4, n = 50, grp = nheads / nkv;
    int32_t bt[4] = {2, 0, 3, 1}, seq[50], pos[50];
    for (int i = 0; i < n; i++)
        seq[i] = 0, pos[i] = i;
    size_t pool = (size_t)4 * nkv * SS_KV_BLOCK * hd, qn = (size_t)n * nheads * hd;
    float *kp = calloc(pool, 4), *vp = calloc(pool, 4);
    float *k = frand_vec((size_t)n * nkv * hd, 1), *v = frand_vec((size_t)n * nkv * hd, 1), *q = frand_vec(qn, 1);
    float *ref = malloc(qn * 4), *got = malloc(qn * 4);
    ss_kref_kv_store(kp, vp, k, v, bt, max_blocks, seq, pos, n, nkv, hd);
    ss_kref_attention(ref, q, kp, vp, bt, max_blocks, seq, pos, n, nheads, nkv, hd);
    float *dkp = dup_to_gpu(kp, pool * 4), *dvp = dup_to_gpu(vp, pool * 4), *dq = dup_to_gpu(q, qn * 4), *dout;
    ss_cuda_malloc(gpu, (void **)&dout, qn * 4, err, sizeof err);
    int32_t *dbt = dup_to_gpu(bt, sizeof bt), *dseq = dup_to_gpu(seq, sizeof seq), *dpos = dup_to_gpu(pos, sizeof pos);
    ck_assert(ss_cuda_attention_tc_ok(hd, grp));
    for (int per_group = 0; per_group < 2; per_group++) {
        int32_t t0[8], tn[8], nt = 0, step = per_group ? SS_CUDA_TC_ROWS / grp : SS_CUDA_TC_ROWS;
        for (int i = 0; i < n; i += step)
            t0[nt] = i, tn[nt++] = SS_MIN(step, n - i);
        int32_t *dt0 = dup_to_gpu(t0, sizeof t0), *dtn = dup_to_gpu(tn, sizeof tn);
        ss_cuda_memset(gpu, dout, 0, qn * 4, err, sizeof err);
        ck_assert_int_eq(ss_cuda_attention_tc(gpu, dout, dq, dkp, dvp, dbt, max_blocks, dseq, dpos, n, dt0, dtn, nt,
                                              nheads, nkv, hd, per_group ? grp : 1), SS_OK);
        from_gpu(got, dout, qn * 4);
        double e = max_rel_err(got, ref, qn);
        ck_assert_msg(e < 2e-2, "tensor-core attention, group of 7, %s: rel err %g",
                      per_group ? "group per block" : "head per block", e);
        ss_cuda_free(gpu, dt0), ss_cuda_free(gpu, dtn);
    }
    ss_cuda_free(gpu, dkp), ss_cuda_free(gpu, dvp), ss_cuda_free(gpu, dq), ss_cuda_free(gpu, dout);
    ss_cuda_free(gpu, dbt), ss_cuda_free(gpu, dseq), ss_cuda_free(gpu, dpos);
    free(kp), free(vp), free(k), free(v), free(q), free(ref), free(got);
}
END_TEST

START_TEST(test_gpu_readout)
{
    NEED_GPU();
    char err[SS_ERRSZ];
    const int vocab = 49152, rows = 3;
    float *l = frand_vec((size_t)rows * vocab, 8);
    l[1 * vocab + 777] = 50.0f;
    int32_t row[4] = {0, 1, 2, 1}, tok[4] = {5, 777, 49151, 0};
    float ref[4], got[4];
    ss_kref_logprob_gather(ref, l, vocab, row, tok, 4);
    float *dl = dup_to_gpu(l, (size_t)rows * vocab * 4), *dout;
    int32_t *drow = dup_to_gpu(row, sizeof row), *dtok = dup_to_gpu(tok, sizeof tok), *dam, am[3];
    ss_cuda_malloc(gpu, (void **)&dout, sizeof got, err, sizeof err);
    ss_cuda_malloc(gpu, (void **)&dam, sizeof am, err, sizeof err);
    ss_cuda_logprob_gather(gpu, dout, dl, vocab, drow, dtok, 4);
    ss_cuda_argmax(gpu, dam, dl, rows, vocab);
    from_gpu(got, dout, sizeof got);
    from_gpu(am, dam, sizeof am);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(got[i], ref[i], 1e-3);
    ck_assert_int_eq(am[1], 777);
    /* the two-stage read-out: the same argmax as the host (first index on ties: row 2 has two
     * equal maxima) and the log-sum-exp the reference's log-probs imply */
    l[2 * vocab + 100] = l[2 * vocab + 40000] = 60.0f;
    ss_cuda_h2d(gpu, dl, l, (size_t)rows * vocab * 4, err, sizeof err);
    float *dlse, lse[3];
    void *part;
    ss_cuda_malloc(gpu, (void **)&dlse, sizeof lse, err, sizeof err);
    ss_cuda_malloc(gpu, &part, (size_t)rows * SS_CUDA_READOUT_PARTS * 16, err, sizeof err);
    ck_assert_int_eq(ss_cuda_lse_argmax(gpu, dlse, dam, part, dl, rows, vocab), SS_OK);
    from_gpu(lse, dlse, sizeof lse);
    from_gpu(am, dam, sizeof am);
    for (int r = 0; r < rows; r++) {
        int best = 0;
        for (int v = 1; v < vocab; v++)
            if (l[(size_t)r * vocab + v] > l[(size_t)r * vocab + best])
                best = v;
        ck_assert_int_eq(am[r], best);
        int32_t rr = r, tt = 0;
        float lp;
        ss_kref_logprob_gather(&lp, l, vocab, &rr, &tt, 1);
        ck_assert_float_eq_tol(lse[r], l[(size_t)r * vocab] - lp, 1e-3);
    }
    ck_assert_int_eq(am[2], 100);
    free(l);
}
END_TEST

/* ------------------------------------------------------------ the whole model on the GPU */

static ss_llm_t *open_model(int on_gpu)
{
    char p[1024], err[SS_ERRSZ] = "";
    ss_llm_opts_t o = {.threads = 2};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(tu_model_path("stories260K.gguf", p, sizeof p), &o, &m, err, sizeof err) == SS_OK,
                  "%s", err);
    if (on_gpu)
        ck_assert_msg(ss_llm_use_cuda(m, 0, err, sizeof err) == SS_OK, "%s", err);
    return m;
}

START_TEST(test_gpu_golden_stories)
{
    NEED_GPU();
    char p[1024];
    char *txt = tu_read_file(tu_model_path("stories260K.greedy200.tokens", p, sizeof p), NULL);
    ck_assert_ptr_nonnull(txt);
    int gold[256], out[256], ng = 0;
    for (char *s = txt; *s && ng < 256;)
        if (*s >= '0' && *s <= '9')
            gold[ng++] = (int)strtol(s, &s, 10);
        else
            s++;
    free(txt);
    ss_llm_t *m = open_model(1);
    char err[SS_ERRSZ] = "";
    int bos = ss_llm_config(m)->bos;
    int n = ss_llm_greedy(m, &bos, 1, ng, out, err, sizeof err);
    ck_assert_msg(n == ng, "generated %d of %d: %s", n, ng, err);
    for (int i = 0; i < ng; i++)
        ck_assert_msg(out[i] == gold[i], "token %d: got %d, want %d", i, out[i], gold[i]);
    ss_llm_close(m);
}
END_TEST

/* The last-position logits of each text agree between the CPU and the GPU model (what: the case). */
static void expect_same_last_logits(ss_llm_t *cpu, ss_llm_t *gpu_m, const char *const *texts, int ns,
                                    const char *what)
{
    int vocab = ss_llm_config(cpu)->vocab_size;
    int *toks[8], ntok[8];
    ck_assert_int_le(ns, 8);
    for (int i = 0; i < ns; i++) {
        toks[i] = malloc(256 * sizeof(int));
        ntok[i] = ss_llm_tokenize(cpu, texts[i], 1, toks[i], 256);
    }
    float *a = malloc((size_t)ns * vocab * 4), *b = malloc((size_t)ns * vocab * 4);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_llm_last_logits(cpu, ns, (const int *const *)toks, ntok, a, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_llm_last_logits(gpu_m, ns, (const int *const *)toks, ntok, b, err, sizeof err) == SS_OK, "%s",
                  err);
    for (int i = 0; i < ns; i++) {
        double e = max_rel_err(b + (size_t)i * vocab, a + (size_t)i * vocab, (size_t)vocab);
        ck_assert_msg(e < 1e-3, "%s, prompt %d: GPU logits differ from CPU by %g", what, i, e);
    }
    for (int i = 0; i < ns; i++)
        free(toks[i]);
    free(a), free(b);
}

START_TEST(test_gpu_logits_match_cpu)
{
    NEED_GPU();
    /* a batch of prompts of different lengths (prefill tiles of several sizes) */
    const char *texts[] = {"Once upon a time", "The cat sat on the mat and looked at the big red ball.",
                           "Lily", "Tom and Lily went to the park. They saw a dog. The dog was happy and"};
    ss_llm_t *cpu = open_model(0), *gpu_m = open_model(1);
    expect_same_last_logits(cpu, gpu_m, texts, 4, "one pass");
    ss_llm_close(cpu);
    ss_llm_close(gpu_m);
}
END_TEST

START_TEST(test_gpu_overlapped_passes)
{
    NEED_GPU();
    /* passes of 16 tokens, so every call takes several and the engine overlaps them (submit the
     * next, then finish the last): logits, CHOOSE, GENERATE, EMBED pooling and SCORE as on the CPU
     * (CHOOSE and SCORE rows bring back only their answer tokens' logits, gathered on the device) */
    static const char *const yn[] = {" yes", " a big red ball"}; /* the second: several tokens (forks) */
    const char *texts[] = {"Once upon a time there was a little dog who liked to run in the park.",
                           "The cat sat on the mat and looked at the big red ball.", "Lily",
                           "Tom and Lily went to the park. They saw a dog. The dog was happy and"};
    enum { NS = 4 };
    ss_llm_t *cpu = open_model(0);
    setenv("SS_CUDA_UBATCH", "16", 1);
    ss_llm_t *gpu_m = open_model(1);
    unsetenv("SS_CUDA_UBATCH");
    int dim = ss_llm_config(cpu)->dim;
    expect_same_last_logits(cpu, gpu_m, texts, NS, "16-token passes");
    char err[SS_ERRSZ] = "";
    ss_infer_req_t reqs[4 * NS];
    ss_infer_res_t rc_[4 * NS], rg[4 * NS];
    memset(reqs, 0, sizeof reqs);
    memset(rc_, 0, sizeof rc_);
    memset(rg, 0, sizeof rg);
    for (int i = 0; i < NS; i++) {
        reqs[i] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = texts[i], .nchoices = 2, .choices = yn};
        reqs[NS + i] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = texts[i], .max_tokens = 20};
        reqs[2 * NS + i] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = texts[i]};
        reqs[3 * NS + i] = (ss_infer_req_t){.kind = SS_INFER_SCORE, .prompt = texts[i], .score_min = 1,
                                            .score_max = 12};
    }
    ck_assert_msg(ss_llm_run(cpu, reqs, 4 * NS, rc_, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_llm_run(gpu_m, reqs, 4 * NS, rg, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < NS; i++) {
        ck_assert_int_eq(rg[i].status, SS_OK);
        ck_assert_float_eq_tol(rg[i].probs[0], rc_[i].probs[0], 1e-3);
        ck_assert_msg(!strcmp(rg[NS + i].text, rc_[NS + i].text), "generation %d: GPU '%s' vs CPU '%s'", i,
                      rg[NS + i].text, rc_[NS + i].text);
        ck_assert_int_eq(rg[2 * NS + i].status, SS_OK);
        ck_assert_ptr_nonnull(rg[2 * NS + i].emb);
        double e = max_rel_err(rg[2 * NS + i].emb, rc_[2 * NS + i].emb, (size_t)dim);
        ck_assert_msg(e < 1e-3, "embedding %d: GPU differs from CPU by %g", i, e);
        ck_assert_int_eq(rg[3 * NS + i].status, SS_OK); /* SCORE: 12 answers, two of them two tokens */
        ck_assert_msg(fabs(rg[3 * NS + i].score - rc_[3 * NS + i].score) < 1e-3, "score %d: GPU %g vs CPU %g", i,
                      rg[3 * NS + i].score, rc_[3 * NS + i].score);
    }
    for (int i = 0; i < 4 * NS; i++)
        ss_infer_res_clear(&rc_[i]), ss_infer_res_clear(&rg[i]);
    ss_llm_close(cpu);
    ss_llm_close(gpu_m);
}
END_TEST

START_TEST(test_gpu_requests_match_cpu)
{
    NEED_GPU();
    /* the request API (prefix sharing, CHOOSE, GENERATE) gives the CPU's answers on the GPU */
    static const char *const yn[] = {" yes", " no"};
    const char *rows[] = {"a dog", "a red ball", "the sun", "a big tree", "a little girl"};
    enum { NR = 5 };
    char prompts[NR][160];
    ss_infer_req_t reqs[2 * NR];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < NR; i++) {
        snprintf(prompts[i], sizeof prompts[i], "Once upon a time there was a story about %s. Is it happy?", rows[i]);
        reqs[i].kind = SS_INFER_CHOOSE;
        reqs[i].prompt = prompts[i];
        reqs[i].prefix_len = 40;
        reqs[i].nchoices = 2;
        reqs[i].choices = yn;
        reqs[NR + i].kind = SS_INFER_GENERATE;
        reqs[NR + i].prompt = prompts[i];
        reqs[NR + i].max_tokens = 24;
    }
    ss_infer_res_t rc_[2 * NR], rg[2 * NR];
    memset(rc_, 0, sizeof rc_);
    memset(rg, 0, sizeof rg);
    ss_llm_t *cpu = open_model(0), *gpu_m = open_model(1);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_llm_run(cpu, reqs, 2 * NR, rc_, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(ss_llm_run(gpu_m, reqs, 2 * NR, rg, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < NR; i++) {
        ck_assert_int_eq(rg[i].status, SS_OK);
        ck_assert_float_eq_tol(rg[i].probs[0], rc_[i].probs[0], 1e-3);
        ck_assert_msg(!strcmp(rg[NR + i].text, rc_[NR + i].text), "generation %d: GPU '%s' vs CPU '%s'", i,
                      rg[NR + i].text, rc_[NR + i].text);
    }
    for (int i = 0; i < 2 * NR; i++)
        ss_infer_res_clear(&rc_[i]), ss_infer_res_clear(&rg[i]);
    ss_llm_close(cpu);
    ss_llm_close(gpu_m);
}
END_TEST

static void teardown(void)
{
    ss_cuda_close(gpu);
    gpu = NULL;
}

Suite *check_cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *ref = tcase_create("reference");
    tcase_add_test(ref, test_ref_half_conversions);
    tcase_add_test(ref, test_ref_matmul_types);
    tcase_add_test(ref, test_ref_block_types);
    tcase_add_test(ref, test_ref_rope);
    tcase_add_test(ref, test_ref_attention_paged);
    tcase_add_test(ref, test_ref_logprob);
    tcase_add_test(ref, test_ref_rope_kv);
    suite_add_tcase(s, ref);
    TCase *dev = tcase_create("device");
    tcase_add_unchecked_fixture(dev, NULL, teardown);
    tcase_set_timeout(dev, 120);
    tcase_add_test(dev, test_gpu_matmul);
    tcase_add_test(dev, test_gpu_block_types);
    tcase_add_test(dev, test_gpu_block_types_rows4);
    tcase_add_test(dev, test_gpu_quantized_models);
    tcase_add_test(dev, test_gpu_elementwise);
    tcase_add_test(dev, test_gpu_fused);
    tcase_add_test(dev, test_gpu_fused_rows4);
    tcase_add_test(dev, test_gpu_attention);
    tcase_add_test(dev, test_gpu_attention_tc_odd_group);
    tcase_add_test(dev, test_gpu_readout);
    tcase_add_test(dev, test_gpu_golden_stories);
    tcase_add_test(dev, test_gpu_logits_match_cpu);
    tcase_add_test(dev, test_gpu_requests_match_cpu);
    tcase_add_test(dev, test_gpu_overlapped_passes);
    suite_add_tcase(s, dev);
    return s;
}
