/*
 * check_llm.c — tests of the inference engine (gpu/): GGUF validation, the golden
 * greedy output of stories260K, tokenizer round trips, batched == single logits,
 * prefix-cached == uncached, the request API, and tiny synthetic qwen2/gpt2 models
 * written by gpu/gguf_write.c in f32/f16/bf16/q8_0.
 */
#include "llm_internal.h"
#include "ss_gguf.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[1024];

static ss_llm_t *open_stories(const ss_llm_opts_t *o)
{
    tu_model_path("stories260K.gguf", g_path, sizeof g_path);
    char err[SS_ERRSZ] = "";
    ss_llm_t *m = NULL;
    ss_err_t rc = ss_llm_open(g_path, o, &m, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "open: %s", err);
    return m;
}

/* ---------------- golden ---------------- */

static int read_golden(int *out, int cap)
{
    char p[1024];
    char *txt = tu_read_file(tu_model_path("stories260K.greedy200.tokens", p, sizeof p), NULL);
    ck_assert_ptr_nonnull(txt);
    int n = 0;
    for (char *s = txt; *s && n < cap;) {
        if ((*s >= '0' && *s <= '9')) {
            out[n++] = (int)strtol(s, &s, 10);
        } else {
            s++;
        }
    }
    free(txt);
    return n;
}

START_TEST(test_golden_greedy)
{
    ss_llm_opts_t o = {.threads = 1};
    ss_llm_t *m = open_stories(&o);
    const ss_llm_config_t *c = ss_llm_config(m);
    ck_assert_str_eq(c->arch, "llama");
    ck_assert_int_eq(c->n_layers, 5);
    ck_assert_int_eq(c->dim, 64);
    ck_assert_int_eq(c->n_kv_heads, 4);
    ck_assert_int_eq(c->vocab_size, 512);
    int gold[256], out[256];
    int ng = read_golden(gold, 256);
    ck_assert_int_eq(ng, 200);
    char err[SS_ERRSZ] = "";
    int bos = c->bos;
    int n = ss_llm_greedy(m, &bos, 1, ng, out, err, sizeof err);
    ck_assert_msg(n == ng, "generated %d: %s", n, err);
    for (int i = 0; i < ng; i++)
        ck_assert_msg(out[i] == gold[i], "token %d: got %d, want %d", i, out[i], gold[i]);
    ss_llm_close(m);
}
END_TEST


/* every ISA's kernels (matmul, attention, softmax) reproduce the golden tokens */
START_TEST(test_golden_isas)
{
    static const char *isas[] = {"scalar", "avx2"};
    int gold[256], out[256];
    int ng = read_golden(gold, 256);
    for (size_t k = 0; k < SS_ARRAY_LEN(isas); k++) {
        k_force_isa(isas[k]);
        ss_llm_opts_t o = {.threads = 1};
        ss_llm_t *m = open_stories(&o);
        char err[SS_ERRSZ] = "";
        int bos = ss_llm_config(m)->bos;
        int n = ss_llm_greedy(m, &bos, 1, ng, out, err, sizeof err);
        ck_assert_msg(n == ng, "%s: generated %d: %s", k_isa(), n, err);
        for (int i = 0; i < ng; i++)
            ck_assert_msg(out[i] == gold[i], "%s: token %d: got %d, want %d", k_isa(), i, out[i], gold[i]);
        ss_llm_close(m);
    }
    k_force_isa(NULL);
}
END_TEST

/* ---------------- GGUF validation ---------------- */

static const uint8_t *g_img;
static size_t g_imgn;

static void load_image(void)
{
    char p[1024];
    g_img = (const uint8_t *)tu_read_file(tu_model_path("stories260K.gguf", p, sizeof p), &g_imgn);
    ck_assert_ptr_nonnull(g_img);
}

static void expect_bad(const uint8_t *img, size_t n, const char *needle)
{
    char err[SS_ERRSZ] = "";
    ss_gguf_t *g = NULL;
    ss_err_t rc = ss_gguf_open_mem(img, n, &g, err, sizeof err);
    ck_assert_msg(rc == SS_ERR_MODEL, "expected failure (%s) for %zu bytes", needle, n);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

START_TEST(test_gguf_valid)
{
    load_image();
    char err[SS_ERRSZ] = "";
    ss_gguf_t *g = NULL;
    ck_assert_int_eq(ss_gguf_open_mem(g_img, g_imgn, &g, err, sizeof err), SS_OK);
    ss_gguf_str_t a;
    ck_assert(ss_gguf_get_str(g, "general.architecture", &a));
    ck_assert(a.n == 5 && !memcmp(a.p, "llama", 5));
    int64_t v;
    ck_assert(ss_gguf_get_i64(g, "llama.block_count", &v));
    ck_assert_int_eq(v, 5);
    const ss_gguf_tensor_t *t = ss_gguf_tensor(g, "token_embd.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->type, SS_GGML_F32);
    ck_assert_int_eq(t->ne[0], 64);
    ck_assert_int_eq(t->ne[1], 512);
    ck_assert_ptr_null(ss_gguf_tensor(g, "nope"));
    ss_gguf_close(g);
    ss_gguf_close(NULL);
    ck_assert_int_eq(ss_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err), SS_ERR_IO);
    ck_assert_ptr_null(g);
    free((void *)g_img);
}
END_TEST

START_TEST(test_gguf_corrupt)
{
    load_image();
    uint8_t *b = malloc(g_imgn);
    memcpy(b, g_img, g_imgn);
    b[0] = 'X';
    expect_bad(b, g_imgn, "does not start with \"GGUF\"");
    memcpy(b, g_img, g_imgn);
    b[4] = 99;
    expect_bad(b, g_imgn, "unsupported GGUF version");
    /* every truncation of the header is rejected with a message, never a crash */
    char err[SS_ERRSZ] = "";
    ss_gguf_t *g = NULL;
    ck_assert_int_eq(ss_gguf_open_mem(g_img, g_imgn, &g, err, sizeof err), SS_OK);
    size_t hb = g->header_bytes;
    const ss_gguf_tensor_t *t0 = &g->tensors[0];
    size_t info = (size_t)((const uint8_t *)t0->name.p - g_img) + t0->name.n + 4 + 8 * (size_t)t0->ndim;
    size_t last = (size_t)((const uint8_t *)g->tensors[g->ntensors - 1].data - g_img);
    ss_gguf_close(g);
    for (size_t n = 0; n < hb; n += 7)
        expect_bad(g_img, n, "truncated");
    expect_bad(g_img, last + 4, "past the end");
    expect_bad(g_img, g_imgn - 1, "past the end");
    /* unknown tensor type */
    memcpy(b, g_img, g_imgn);
    uint32_t ty = 77;
    memcpy(b + info, &ty, 4);
    expect_bad(b, g_imgn, "unsupported tensor type");
    /* offset out of range, misaligned */
    memcpy(b, g_img, g_imgn);
    uint64_t off = (uint64_t)1 << 40;
    memcpy(b + info + 4, &off, 8);
    expect_bad(b, g_imgn, "past the end");
    memcpy(b, g_img, g_imgn);
    memcpy(&off, b + info + 4, 8);
    off += 4;
    memcpy(b + info + 4, &off, 8);
    expect_bad(b, g_imgn, "not aligned");
    /* absurd dimension */
    memcpy(b, g_img, g_imgn);
    uint64_t dim = (uint64_t)1 << 50;
    memcpy(b + info - 8 * 2, &dim, 8);
    expect_bad(b, g_imgn, "out of range");
    free(b);
    free((void *)g_img);
}
END_TEST

/* ---------------- tokenizer ---------------- */

START_TEST(test_tokenizer_spm)
{
    ss_llm_t *m = open_stories(NULL);
    int gold[256], t[512];
    int ng = read_golden(gold, 256);
    char p[1024];
    char *txt = tu_read_file(tu_model_path("stories260K.greedy200.txt", p, sizeof p), NULL);
    char *dec = ss_llm_detokenize(m, gold, ng);
    ck_assert(!strncmp(dec, txt, strlen(dec)));
    ck_assert_int_ge((int)strlen(dec), (int)strlen(txt) - 2);
    free(dec);
    /* encoding the reference text gives the reference tokens */
    const char *s = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
    int n = ss_llm_tokenize(m, s, 1, t, 512);
    ck_assert_int_eq(t[0], 1);
    for (int i = 1; i < n; i++)
        ck_assert_int_eq(t[i], gold[i - 1]);
    static const char *rt[] = {"Once upon a time", "héllo wörld 日本\nnew  line", "  two leading", "x"};
    for (size_t i = 0; i < SS_ARRAY_LEN(rt); i++) {
        n = ss_llm_tokenize(m, rt[i], 1, t, 512);
        ck_assert_int_gt(n, 1);
        char *d = ss_llm_detokenize(m, t, n);
        ck_assert_str_eq(d, rt[i]);
        free(d);
    }
    ck_assert_int_eq(ss_llm_tokenize(m, "a<s>b", 0, t, 512), 3); /* ▁a, <s> (BOS), b */
    ck_assert_int_eq(t[1], 1);
    ck_assert_int_eq(ss_llm_count_tokens(m, ""), 0);
    free(txt);
    ss_llm_close(m);
}
END_TEST

/* ---------------- batching and prefix reuse ---------------- */

static const char *prompts[] = {
    "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend.",
    "The sun was hot.",
    "Lily and Tom went to the store to buy some candy. They saw a big red ball and wanted it very much.",
    "One day",
    "A cat sat on the mat and looked at the bird in the tree. The bird sang a happy song for the cat.",
};

START_TEST(test_batched_equals_single)
{
    ss_llm_opts_t o = {.threads = 1, .ubatch = 37};
    ss_llm_t *m = open_stories(&o);
    int np = (int)SS_ARRAY_LEN(prompts), V = ss_llm_config(m)->vocab_size;
    int *toks[8], nt[8];
    for (int i = 0; i < np; i++) {
        toks[i] = malloc(256 * sizeof(int));
        nt[i] = ss_llm_tokenize(m, prompts[i], 1, toks[i], 256);
    }
    float *lb = malloc((size_t)np * V * sizeof(float)), *ls = malloc((size_t)V * sizeof(float));
    char err[SS_ERRSZ];
    ss_llm_set_prefix_cache(m, 0);
    ck_assert_int_eq(ss_llm_last_logits(m, np, (const int *const *)toks, nt, lb, err, sizeof err), SS_OK);
    ss_llm_set_threads(m, 2); /* results do not depend on the thread count either */
    for (int i = 0; i < np; i++) {
        const int *one = toks[i];
        ck_assert_int_eq(ss_llm_last_logits(m, 1, &one, &nt[i], ls, err, sizeof err), SS_OK);
        for (int k = 0; k < V; k++)
            ck_assert_msg(fabsf(ls[k] - lb[(size_t)i * V + k]) <= 1e-5f, "seq %d logit %d", i, k);
        ck_assert(!memcmp(ls, lb + (size_t)i * V, (size_t)V * sizeof(float))); /* bit for bit */
    }
    for (int i = 0; i < np; i++)
        free(toks[i]);
    free(lb);
    free(ls);
    ss_llm_close(m);
}
END_TEST

#define NROWS 6
static void make_reqs(ss_infer_req_t *r, char bufs[][512], const char *const *ch, const char *const *ch3)
{
    const char *instr = "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
                        "park. One day, she saw a big, red ball. ";
    for (int i = 0; i < NROWS; i++) {
        snprintf(bufs[i], 512, "%sRow %d: the %s was %s. Answer:", instr, i, i % 2 ? "dog" : "cat",
                 i % 3 ? "happy" : "sad");
        memset(&r[i], 0, sizeof r[i]);
        r[i].prompt = bufs[i];
        r[i].prefix_len = strlen(instr);
        if (i < 3) {
            r[i].kind = SS_INFER_CHOOSE;
            r[i].nchoices = i == 2 ? 3 : 2;
            r[i].choices = i == 2 ? ch3 : ch;
        } else if (i == 3) {
            r[i].kind = SS_INFER_SCORE;
            r[i].score_min = 1;
            r[i].score_max = 10;
        } else {
            r[i].kind = SS_INFER_GENERATE;
            r[i].max_tokens = 12 + i;
        }
    }
}

START_TEST(test_prefix_cache_exact)
{
    static const char *const ch[] = {" yes", " no"};
    static const char *const ch3[] = {" happy little girl", " sad", " a big red ball"};
    ss_infer_req_t r[NROWS];
    char bufs[NROWS][512];
    make_reqs(r, bufs, ch, ch3);
    ss_llm_opts_t off = {.threads = 1, .no_prefix_cache = 1}, on = {.threads = 2, .ubatch = 64};
    ss_llm_t *a = open_stories(&off), *b = open_stories(&on);
    ss_infer_res_t ra[NROWS], rb[NROWS], rc2[NROWS];
    memset(ra, 0, sizeof ra);
    memset(rb, 0, sizeof rb);
    memset(rc2, 0, sizeof rc2);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_run(a, r, NROWS, ra, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_run(b, r, NROWS, rb, err, sizeof err), SS_OK);
    ss_llm_stats_t st;
    ss_llm_stats(b, &st);
    ck_assert_int_gt(st.tokens_reused, 0); /* within one batch the instruction is computed once */
    ss_llm_stats_t sa;
    ss_llm_stats(a, &sa);
    ck_assert_int_eq(sa.tokens_reused, 0);
    ck_assert_int_lt(st.tokens_computed, sa.tokens_computed);
    ck_assert_int_eq(ss_llm_run(b, r, NROWS, rc2, err, sizeof err), SS_OK); /* all from the cache now */
    for (int i = 0; i < NROWS; i++) {
        ck_assert_int_eq(ra[i].status, SS_OK);
        ck_assert_int_eq(ra[i].prompt_tokens, rb[i].prompt_tokens);
        if (r[i].kind == SS_INFER_GENERATE) {
            ck_assert_str_eq(ra[i].text, rb[i].text);
            ck_assert_str_eq(ra[i].text, rc2[i].text);
            ck_assert_int_eq(ra[i].gen_tokens, r[i].max_tokens);
        } else {
            ck_assert_int_eq(ra[i].nprobs, rb[i].nprobs);
            ck_assert(!memcmp(ra[i].probs, rb[i].probs, (size_t)ra[i].nprobs * sizeof(float)));
            ck_assert(!memcmp(ra[i].probs, rc2[i].probs, (size_t)ra[i].nprobs * sizeof(float)));
            ck_assert(ra[i].score == rb[i].score);
        }
        ss_infer_res_clear(&ra[i]);
        ss_infer_res_clear(&rb[i]);
        ss_infer_res_clear(&rc2[i]);
    }
    ss_llm_stats_t st2;
    ss_llm_stats(b, &st2);
    ck_assert_int_gt(st2.tokens_reused - st.tokens_reused, st.tokens_reused);
    ss_llm_close(a);
    ss_llm_close(b);
}
END_TEST

/* ---------------- request API ---------------- */

START_TEST(test_api_kinds)
{
    ss_llm_t *m = open_stories(NULL);
    static const char *const ch[] = {" girl", " boy", " big red ball"};
    ss_infer_req_t r[7];
    memset(r, 0, sizeof r);
    const char *p = "Once upon a time, there was a little";
    r[0] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = p, .nchoices = 3, .choices = ch};
    r[1] = (ss_infer_req_t){.kind = SS_INFER_SCORE, .prompt = p, .score_min = 1, .score_max = 10};
    r[2] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = p};
    r[3] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "", .max_tokens = 30, .stop = "Lily"};
    r[4] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = p, .max_tokens = 8, .temperature = 0.9f,
                            .seed = 42, .top_logprobs = 3};
    r[5] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = p, .nchoices = 0};
    r[6] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = p};
    ss_infer_res_t res[7];
    memset(res, 0, sizeof res);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_run(m, r, 7, res, err, sizeof err), SS_OK);
    /* CHOOSE: normalised, " girl" is the likely continuation */
    ck_assert_int_eq(res[0].status, SS_OK);
    ck_assert_int_eq(res[0].nprobs, 3);
    double sum = 0;
    for (int i = 0; i < 3; i++)
        sum += res[0].probs[i];
    ck_assert(fabs(sum - 1) < 1e-5);
    ck_assert(res[0].probs[0] > res[0].probs[1]);
    ck_assert_int_eq(res[0].prompt_tokens, ss_llm_count_tokens(m, p) + 1);
    /* SCORE in range */
    ck_assert(res[1].score >= 1 && res[1].score <= 10);
    ck_assert_int_eq(res[1].nprobs, 10);
    /* EMBED: unit norm, deterministic */
    ck_assert_int_eq(res[2].dim, 64);
    double n2 = 0;
    for (int i = 0; i < 64; i++)
        n2 += res[2].emb[i] * res[2].emb[i];
    ck_assert(fabs(n2 - 1) < 1e-4);
    ck_assert(!memcmp(res[2].emb, res[6].emb, 64 * sizeof(float)));
    /* GENERATE greedy from BOS with a stop string */
    ck_assert_str_eq(res[3].text, "Once upon a time, there was a little girl named ");
    /* sampled, reproducible by seed, with logprobs */
    ck_assert_int_eq(res[4].gen_tokens, 8);
    ck_assert_int_eq(res[4].ntop, 3);
    ck_assert(res[4].top_logprobs[0] >= res[4].top_logprobs[1]);
    ck_assert(res[4].token_logprobs[0] <= 0);
    ss_infer_res_t again;
    memset(&again, 0, sizeof again);
    ck_assert_int_eq(ss_llm_run(m, &r[4], 1, &again, err, sizeof err), SS_OK);
    ck_assert_str_eq(again.text, res[4].text);
    ss_infer_res_clear(&again);
    /* per-request failure does not fail the batch */
    ck_assert_int_eq(res[5].status, SS_ERR_INVALID);
    ck_assert_ptr_nonnull(res[5].error);
    for (int i = 0; i < 7; i++)
        ss_infer_res_clear(&res[i]);
    const char *id = ss_llm_id(m);
    ck_assert(!strncmp(id, "stories260K.gguf:", 17));
    ck_assert_int_eq((int)strlen(id), 17 + 32);
    ss_llm_close(m);
    ss_llm_close(NULL);
}
END_TEST

START_TEST(test_backend_local)
{
    char err[SS_ERRSZ];
    tu_model_path("stories260K.gguf", g_path, sizeof g_path);
    ss_infer_backend_t *b = ss_backend_local_new(g_path, 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_str_eq(b->kind, "local");
    ck_assert(!strncmp(b->model_id, "stories260K.gguf:", 17));
    ck_assert_int_eq(b->count_tokens(b, "Once upon a time"), 4);
    static const char *const ch[] = {" yes", " no"};
    ss_infer_req_t r = {.kind = SS_INFER_CHOOSE, .prompt = "Is it a dog?", .nchoices = 2, .choices = ch};
    ss_infer_res_t res;
    memset(&res, 0, sizeof res);
    ck_assert_int_eq(b->run(b, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert_int_eq(res.nprobs, 2);
    ss_infer_res_clear(&res);
    b->destroy(b);
    ck_assert_ptr_null(ss_backend_local_new("/nonexistent.gguf", 1, err, sizeof err));
    ck_assert(strstr(err, "nonexistent") != NULL);
}
END_TEST

/* ---------------- synthetic models: qwen2 / gpt2 / weight types ---------------- */

static char *write_tiny(const char *shape, int type, const char *dir)
{
    ss_mkmodel_spec_t s;
    ck_assert(ss_mkmodel_shape(shape, &s));
    s.type = type;
    char *path = ss_sprintf("%s/%s-%s.gguf", dir, shape, ss_ggml_type_name(type));
    char err[SS_ERRSZ];
    ck_assert_msg(ss_mkmodel_write(&s, path, err, sizeof err) == SS_OK, "%s", err);
    return path;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

START_TEST(test_synthetic_types)
{
    char *dir = tu_tmpdir();
    static const char *shapes[] = {"tiny-qwen2", "tiny-llama"};
    static const int types[] = {SS_GGML_F32, SS_GGML_F16, SS_GGML_BF16, SS_GGML_Q8_0, SS_GGML_Q4_0};
    const char *text = "Hello world, it's 2024!\n  spaces  and <|im_start|>user\nhi<|im_end|>";
    for (size_t si = 0; si < 2; si++) {
        float *ref = NULL;
        int V = 0;
        for (size_t ti = 0; ti < SS_ARRAY_LEN(types); ti++) {
            char *path = write_tiny(shapes[si], types[ti], dir);
            char err[SS_ERRSZ];
            ss_llm_opts_t o = {.threads = 1};
            ss_llm_t *m = NULL;
            ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "%s", err);
            const ss_llm_config_t *c = ss_llm_config(m);
            ck_assert_int_eq(c->qkv_bias, si == 0);
            ck_assert_int_eq(c->tied, si == 0);
            ck_assert_int_eq(c->wtype, types[ti]);
            /* byte-level BPE round trip, specials as single tokens */
            int t[512];
            int n = ss_llm_tokenize(m, text, 1, t, 512);
            ck_assert_int_gt(n, 5);
            char *d = ss_llm_detokenize(m, t, n);
            ck_assert_str_eq(d, text);
            free(d);
            int nsp = 0;
            for (int i = 0; i < n; i++)
                nsp += !strcmp(ss_llm_token_text(m, t[i]), "<|im_start|>");
            ck_assert_int_eq(nsp, 1);
            /* logits agree with the f32 model; batched equals single */
            V = c->vocab_size;
            float *lg = malloc(2 * (size_t)V * sizeof(float)), *l1 = malloc((size_t)V * sizeof(float));
            const int *seqs[2] = {t, t + 3};
            int ns[2] = {n, n - 5};
            ck_assert_int_eq(ss_llm_last_logits(m, 2, seqs, ns, lg, err, sizeof err), SS_OK);
            ck_assert_int_eq(ss_llm_last_logits(m, 1, &seqs[1], &ns[1], l1, err, sizeof err), SS_OK);
            ck_assert(!memcmp(l1, lg + V, (size_t)V * sizeof(float)));
            if (!ref) {
                ref = lg;
            } else {
                double cs = cosine(ref, lg, V);
                ck_assert_msg(cs > (types[ti] == SS_GGML_Q4_0 ? 0.9 : 0.99), "%s %s: cosine %f", shapes[si],
                              ss_ggml_type_name(types[ti]), cs);
                free(lg);
            }
            free(l1);
            ss_llm_close(m);
            unlink(path);
            free(path);
        }
        free(ref);
    }
    rmdir(dir);
    free(dir);
}
END_TEST

/* ---------------- kernels: every ISA agrees with a double-precision reference ---------------- */

START_TEST(test_kernels_isa)
{
    static const int types[] = {SS_GGML_F32, SS_GGML_F16, SS_GGML_BF16, SS_GGML_Q8_0, SS_GGML_Q4_0};
    static const char *isas[] = {"scalar", "avx2", NULL};
    int rows = 37, cols = 96 + 32, nb = 6;
    float *w = malloc((size_t)rows * cols * sizeof(float)), *x = malloc((size_t)nb * cols * sizeof(float));
    float *deq = malloc((size_t)cols * sizeof(float)), *out = malloc((size_t)nb * rows * sizeof(float));
    uint64_t s = 7;
    for (int i = 0; i < rows * cols; i++)
        w[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / (float)(1 << 24) - 0.5f;
    for (int i = 0; i < nb * cols; i++)
        x[i] = (float)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / (float)(1 << 24) - 0.5f;
    for (size_t ti = 0; ti < SS_ARRAY_LEN(types); ti++) {
        size_t rb = ss_ggml_row_bytes(types[ti], cols);
        uint8_t *q = malloc(rb * rows);
        for (int r = 0; r < rows; r++)
            ss_ggml_from_f32(types[ti], w + (size_t)r * cols, q + r * rb, cols);
        wmat_t m = {q, types[ti], rows, cols, rb};
        for (size_t ii = 0; ii < SS_ARRAY_LEN(isas); ii++) {
            k_force_isa(isas[ii]);
            k_matmul(&m, x, cols, nb, out, rows, 2);
            for (int r = 0; r < rows; r++) {
                k_row_f32(&m, r, deq);
                for (int b = 0; b < nb; b++) {
                    double ref = 0;
                    for (int k = 0; k < cols; k++)
                        ref += (double)deq[k] * x[(size_t)b * cols + k];
                    /* q8_0 also quantizes the activations (int8 dot products) */
                    double tol = types[ti] == SS_GGML_Q8_0 ? 2e-2 : 1e-4;
                    ck_assert_msg(fabs(ref - out[(size_t)b * rows + r]) < tol, "%s %s row %d: %f vs %f",
                                  ss_ggml_type_name(types[ti]), k_isa(), r, ref, out[(size_t)b * rows + r]);
                }
            }
        }
        free(q);
    }
    k_force_isa(NULL);
    free(w);
    free(x);
    free(deq);
    free(out);
}
END_TEST

/* ---------------- chat templates ---------------- */

static ss_llm_t *open_tiny_chat(const char *tmpl, int raw, char *path, size_t pathsz)
{
    char *dir = tu_tmpdir(), err[SS_ERRSZ] = "";
    snprintf(path, pathsz, "%s/chat.gguf", dir);
    free(dir);
    ss_mkmodel_spec_t spec;
    ck_assert(ss_mkmodel_shape("tiny-qwen2", &spec));
    spec.chat_template = tmpl;
    ck_assert_msg(ss_mkmodel_write(&spec, path, err, sizeof err) == SS_OK, "%s", err);
    ss_llm_opts_t o = {.threads = 1, .raw_prompts = raw};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "%s", err);
    return m;
}

START_TEST(test_chat_template)
{
    static const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
                                "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    char path[1024];
    ss_llm_t *m = open_tiny_chat(chatml, 0, path, sizeof path);
    ck_assert_str_eq(ss_llm_chat_format(m), "chatml");
    char *w = ss_llm_chat_prompt(m, "Is it about databases?");
    ck_assert_str_eq(w, "<|im_start|>user\nIs it about databases?<|im_end|>\n<|im_start|>assistant\n");
    /* the turn markers are single tokens */
    int toks[256], n = ss_llm_tokenize(m, w, 0, toks, 256), marks = 0;
    for (int i = 0; i < n; i++)
        marks += !strcmp(ss_llm_token_text(m, toks[i]), "<|im_start|>") || !strcmp(ss_llm_token_text(m, toks[i]), "<|im_end|>");
    ck_assert_int_eq(marks, 3);
    /* requests see the wrapped prompt (EMBED does not) */
    ss_infer_req_t r[2] = {{.kind = SS_INFER_GENERATE, .prompt = "Is it about databases?", .max_tokens = 2},
                           {.kind = SS_INFER_EMBED, .prompt = "Is it about databases?"}};
    ss_infer_res_t res[2] = {{0}};
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_llm_run(m, r, 2, res, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(res[0].prompt_tokens, n);
    ck_assert_int_eq(res[1].prompt_tokens, ss_llm_count_tokens(m, "Is it about databases?"));
    ss_infer_res_clear(&res[0]);
    ss_infer_res_clear(&res[1]);
    free(w);
    ss_llm_close(m);
    unlink(path);
    /* raw_prompts turns it off */
    m = open_tiny_chat(chatml, 1, path, sizeof path);
    ck_assert_ptr_null(ss_llm_chat_format(m));
    ck_assert_ptr_null(ss_llm_chat_prompt(m, "x"));
    ss_llm_close(m);
    unlink(path);
    /* a Llama-3 template over a vocabulary without its header tokens: prompts stay as given */
    m = open_tiny_chat("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}", 0, path, sizeof path);
    ck_assert_ptr_null(ss_llm_chat_format(m));
    ss_llm_close(m);
    unlink(path);
    /* a base model has no chat format */
    m = open_stories(NULL);
    ck_assert_ptr_null(ss_llm_chat_format(m));
    ss_llm_close(m);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

Suite *check_llm_suite(void)
{
    Suite *s = suite_create("llm");
    add(s, "golden", test_golden_greedy);
    add(s, "golden_isas", test_golden_isas);
    add(s, "gguf_valid", test_gguf_valid);
    add(s, "gguf_corrupt", test_gguf_corrupt);
    add(s, "tokenizer", test_tokenizer_spm);
    add(s, "batched", test_batched_equals_single);
    add(s, "prefix", test_prefix_cache_exact);
    add(s, "api", test_api_kinds);
    add(s, "backend", test_backend_local);
    add(s, "synthetic", test_synthetic_types);
    add(s, "kernels", test_kernels_isa);
    add(s, "chat", test_chat_template);
    return s;
}
