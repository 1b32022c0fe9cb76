/*
 * check_llm.c — tests of the inference engine (gpu/): GGUF validation, the golden
 * greedy output of stories260K, tokenizer round trips, batched == single logits,
 * prefix-cached == uncached, the request API, and tiny synthetic qwen2/gpt2 models
 * written by gpu/gguf_write.c in f32/f16/bf16/q8_0.
 */
#include "llm_internal.h"
#include "ss_gguf.h"
#include "ss_llm.h"
#include "pretok_golden.h"
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

/* Dependency tracking and forced answer tokens (issue 17): a tracked answer equals the untracked
 * one; its record has one token per generated token and sentence masses in [0, 1], the chunk that
 * is the whole prompt getting all of the first token's attention; feeding any prefix of the answer
 * back as forced tokens (prefilled) gives the same tokens, text and masses as generating it. */
START_TEST(test_dependency)
{
    ss_llm_t *m = open_stories(NULL);
    const char *p = "Once upon a time, there was a little girl named Lily. She liked to play in the park. One day";
    size_t len = strlen(p), half = 52; /* "...named Lily." | " She liked..." */
    size_t spans[] = {0, len, 0, half, half, len};
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = p, .max_tokens = 40};
    ss_infer_req_t t = r;
    t.ntrack = 3;
    t.track_span = spans;
    ss_infer_res_t a = {0}, b = {0};
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &a, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_run(m, &t, 1, &b, err, sizeof err), SS_OK);
    ck_assert_int_eq(b.status, SS_OK);
    ck_assert_str_eq(a.text, b.text);
    ck_assert_ptr_null(a.dep);
    ss_infer_dep_t d;
    ck_assert_int_eq(ss_infer_dep_decode(b.dep, b.dep_len, &d), SS_OK);
    ck_assert_int_eq(d.ntok, b.gen_tokens);
    ck_assert_int_eq(d.nchunk, 3);
    ck_assert_int_ge(d.nsent, 2); /* the story has sentences */
    ck_assert_int_eq(d.sent_end[d.nsent - 1], d.ntok);
    char *txt = ss_llm_detokenize(m, d.tok, d.ntok);
    ck_assert_ptr_nonnull(strstr(txt, b.text));
    free(txt);
    ck_assert(d.mass[0] > 0.5f && d.mass[0] <= 1.0001f); /* the prompt, BOS aside, holds most attention */
    for (int s = 0; s < d.nsent; s++)
        for (int c = 0; c < 3; c++) {
            float v = d.mass[s * 3 + c];
            ck_assert(v >= 0 && v <= 1.0001f);
            if (c) /* a part never gets more than the whole */
                ck_assert(v <= d.mass[s * 3] + 1e-5f);
        }
    /* forced prefixes: at every sentence boundary and inside the first sentence */
    int cuts[16], nc = 0;
    cuts[nc++] = 1;
    for (int s = 0; s + 1 < d.nsent && nc < 16; s++)
        cuts[nc++] = d.sent_end[s];
    for (int k = 0; k < nc; k++) {
        ss_infer_req_t f = t;
        f.forced = d.tok;
        f.nforced = cuts[k];
        ss_infer_res_t c = {0};
        ck_assert_int_eq(ss_llm_run(m, &f, 1, &c, err, sizeof err), SS_OK);
        ck_assert_int_eq(c.status, SS_OK);
        ck_assert_str_eq(c.text, b.text);
        ck_assert_int_eq(c.gen_tokens, b.gen_tokens - cuts[k]);   /* decoded */
        ck_assert_int_eq(c.prompt_tokens, b.prompt_tokens + cuts[k]); /* prefilled */
        ss_infer_dep_t e;
        ck_assert_int_eq(ss_infer_dep_decode(c.dep, c.dep_len, &e), SS_OK);
        ck_assert_int_eq(e.ntok, d.ntok);
        ck_assert(!memcmp(e.tok, d.tok, (size_t)d.ntok * sizeof(int)));
        ck_assert_int_eq(e.nsent, d.nsent);
        for (int i = 0; i < d.nsent * 3; i++)
            ck_assert_msg(fabsf(e.mass[i] - d.mass[i]) < 1e-4f, "cut %d mass %d: %g vs %g", cuts[k], i,
                          (double)e.mass[i], (double)d.mass[i]);
        ss_infer_dep_free(&e);
        ss_infer_res_clear(&c);
    }
    /* untracked forcing works too; forcing all of max_tokens is refused */
    ss_infer_req_t f = r;
    f.forced = d.tok;
    f.nforced = d.sent_end[0];
    ss_infer_res_t c = {0};
    ck_assert_int_eq(ss_llm_run(m, &f, 1, &c, err, sizeof err), SS_OK);
    ck_assert_str_eq(c.text, a.text);
    ss_infer_res_clear(&c);
    f.max_tokens = f.nforced;
    ck_assert_int_eq(ss_llm_run(m, &f, 1, &c, err, sizeof err), SS_OK);
    ck_assert_int_eq(c.status, SS_ERR_INVALID);
    ss_infer_res_clear(&c);
    ss_infer_dep_free(&d);
    ss_infer_res_clear(&a);
    ss_infer_res_clear(&b);
    ss_llm_close(m);
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

static const int g_all_types[] = {SS_GGML_F32,  SS_GGML_F16,  SS_GGML_BF16, SS_GGML_Q4_0,   SS_GGML_Q4_1,  SS_GGML_Q5_0,
                                  SS_GGML_Q5_1, SS_GGML_Q8_0, SS_GGML_Q2_K, SS_GGML_Q3_K,   SS_GGML_Q4_K,  SS_GGML_Q5_K,
                                  SS_GGML_Q6_K, SS_GGML_Q8_K, SS_GGML_IQ4_NL, SS_GGML_IQ4_XS};

static float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*s >> 40) / (float)(1 << 24) - 0.5f;
}

/* One type, one shape: k_matmul on every ISA against a double-precision reference over the
 * dequantized weights (and, for quantized types, the int8-quantized activations, so only float
 * rounding separates them); quantized kernels must also agree bit for bit across ISAs and between
 * a batch of nb and one activation at a time. */
static void check_matmul_type(int type, int rows, int cols, int nb)
{
    static const char *isas[] = {"scalar", "avx2", NULL};
    uint64_t s = 7 + (uint64_t)type * 131 + (uint64_t)cols;
    float *w = malloc((size_t)rows * cols * sizeof(float)), *x = malloc((size_t)nb * cols * sizeof(float));
    float *deq = malloc((size_t)rows * cols * sizeof(float)), *xr = malloc((size_t)nb * cols * sizeof(float));
    float *out = malloc((size_t)nb * rows * sizeof(float)), *first = malloc((size_t)nb * rows * sizeof(float));
    float *one = malloc((size_t)rows * sizeof(float));
    for (int i = 0; i < rows * cols; i++)
        w[i] = urand(&s) * (1.f + (float)(i % 7)); /* uneven magnitudes: every group its own scale */
    for (int i = 0; i < nb * cols; i++)
        x[i] = urand(&s) * ((i % 97) == 3 ? 8.f : 1.f); /* a few outliers */
    size_t rb = ss_ggml_row_bytes(type, cols);
    uint8_t *q = malloc(rb * rows);
    for (int r = 0; r < rows; r++) {
        ss_ggml_from_f32(type, w + (size_t)r * cols, q + r * rb, cols);
        ss_ggml_to_f32(type, q + r * rb, deq + (size_t)r * cols, cols);
    }
    int quant = p_spec(type) != NULL;
    if (quant) { /* the activations as the kernels see them */
        int8_t *xq = malloc((size_t)cols);
        float dx[64], s16[512], s32[256];
        int32_t n16[512], n32[256];
        int blk = p_spec(type)->sk == SK_LEGACY ? 32 : 256;
        for (int b = 0; b < nb; b++) {
            q_act_row(x + (size_t)b * cols, cols, blk, xq, dx, n16, n32, s16, s32);
            for (int k = 0; k < cols; k++)
                xr[(size_t)b * cols + k] = (float)xq[k] * dx[k / blk];
        }
        free(xq);
    } else {
        memcpy(xr, x, (size_t)nb * cols * sizeof(float));
    }
    wmat_t m = {q, type, rows, cols, rb, NULL, 0};
    ck_assert_int_eq(k_pack(&m, 1), quant ? 0 : -1);
    for (size_t ii = 0; ii < SS_ARRAY_LEN(isas); ii++) {
        k_force_isa(isas[ii]);
        k_matmul(&m, x, cols, nb, out, rows, 2);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < nb; b++) {
                double ref = 0, mag = 0;
                for (int k = 0; k < cols; k++) {
                    double t = (double)deq[(size_t)r * cols + k] * xr[(size_t)b * cols + k];
                    ref += t;
                    mag += fabs(t);
                }
                double got = out[(size_t)b * rows + r];
                ck_assert_msg(fabs(ref - got) <= 2e-5 * mag + 1e-6, "%s %s %dx%d row %d act %d: %.7f vs %.7f (mag %g)",
                              ss_ggml_type_name(type), k_isa(), rows, cols, r, b, ref, got, mag);
            }
        if (!quant)
            continue;
        if (ii == 0)
            memcpy(first, out, (size_t)nb * rows * sizeof(float));
        else
            ck_assert_msg(!memcmp(first, out, (size_t)nb * rows * sizeof(float)), "%s: %s differs from scalar",
                          ss_ggml_type_name(type), k_isa());
        for (int b = 0; b < nb; b += 5) {
            k_matmul(&m, x + (size_t)b * cols, cols, 1, one, rows, 1);
            ck_assert_msg(!memcmp(one, out + (size_t)b * rows, (size_t)rows * sizeof(float)),
                          "%s %s: activation %d alone differs from the batch", ss_ggml_type_name(type), k_isa(), b);
        }
    }
    k_force_isa(NULL);
    k_unpack_free(&m);
    free(q);
    free(w);
    free(x);
    free(deq);
    free(xr);
    free(out);
    free(first);
    free(one);
}

/* ---------------- formats: the reference dequantizers against the formats' definitions ---------------- */

static float f16v(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return ss_fp16_to_f32(h);
}

/* Element e of one block, decoded on its own from the block's bytes, written from ggml's format
 * definitions (ggml-quants.c dequantize_row_*): the same float operations in the same order. */
static float def_elem(int type, const uint8_t *b, int e)
{
    int nib = (b[0] & 0) | 0, n = e / 128, j = (e % 128) / 32, h = (e % 32) / 16, l16 = e % 16;
    switch (type) {
    case SS_GGML_Q4_0:
        nib = (b[2 + e % 16] >> (4 * (e / 16))) & 15;
        return (float)(nib - 8) * f16v(b);
    case SS_GGML_Q4_1:
        nib = (b[4 + e % 16] >> (4 * (e / 16))) & 15;
        return (float)nib * f16v(b) + f16v(b + 2);
    case SS_GGML_Q5_0:
    case SS_GGML_Q5_1: {
        int one = type == SS_GGML_Q5_1;
        uint32_t qh = (uint32_t)b[2 + 2 * one] | (uint32_t)b[3 + 2 * one] << 8 | (uint32_t)b[4 + 2 * one] << 16 |
                      (uint32_t)b[5 + 2 * one] << 24;
        int q = ((b[6 + 2 * one + e % 16] >> (4 * (e / 16))) & 15) | (int)((qh >> e) & 1) << 4;
        return one ? (float)q * f16v(b) + f16v(b + 2) : (float)(q - 16) * f16v(b);
    }
    case SS_GGML_Q8_0:
        return (float)(int8_t)b[2 + e] * f16v(b);
    case SS_GGML_IQ4_NL:
        return f16v(b) * (float)ss_iq4_levels[(b[2 + e % 16] >> (4 * (e / 16))) & 15];
    case SS_GGML_Q2_K: {
        int q = (b[16 + 32 * n + 16 * h + l16] >> (2 * j)) & 3, sc = b[e / 16];
        float dl = f16v(b + 80) * (float)(sc & 15), ml = f16v(b + 82) * (float)(sc >> 4);
        return dl * (float)q - ml;
    }
    case SS_GGML_Q3_K: {
        int g = e / 16, q = (b[32 + 32 * n + 16 * h + l16] >> (2 * j)) & 3;
        int hb = (b[16 * h + l16] >> (4 * n + j)) & 1;
        int sc = ((b[96 + g % 8] >> (4 * (g / 8))) & 15) | ((b[104 + g % 4] >> (2 * (g / 4))) & 3) << 4;
        float dl = f16v(b + 108) * (float)(sc - 32);
        return dl * (float)(q - (hb ? 0 : 4));
    }
    case SS_GGML_Q4_K:
    case SS_GGML_Q5_K: {
        int five = type == SS_GGML_Q5_K, c = e / 64, hi = (e / 32) % 2, l = e % 32, g = e / 32, sc, m;
        int q = (b[16 + 32 * five + 32 * c + l] >> (4 * hi)) & 15;
        if (five)
            q += ((b[16 + l] >> (2 * c + hi)) & 1) ? 16 : 0;
        const uint8_t *s = b + 4;
        if (g < 4) {
            sc = s[g] & 63;
            m = s[g + 4] & 63;
        } else {
            sc = (s[g + 4] & 15) | (s[g - 4] >> 6) << 4;
            m = (s[g + 4] >> 4) | (s[g] >> 6) << 4;
        }
        float d1 = f16v(b) * (float)sc, m1 = f16v(b + 2) * (float)m;
        return d1 * (float)q - m1;
    }
    case SS_GGML_Q6_K: {
        int q4 = (e % 128) / 32, l = e % 32;
        int lo = (b[64 * n + 32 * (q4 & 1) + l] >> (4 * (q4 >> 1))) & 15, hi2 = (b[128 + 32 * n + l] >> (2 * q4)) & 3;
        return f16v(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)((lo | hi2 << 4) - 32);
    }
    case SS_GGML_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        return d * (float)(int8_t)b[4 + e];
    }
    case SS_GGML_IQ4_XS: {
        int g = e / 32, jj = e % 32, idx = (b[8 + 16 * g + jj % 16] >> (4 * (jj / 16))) & 15;
        int ls = ((b[4 + g / 2] >> (4 * (g % 2))) & 15) | (((b[2] | b[3] << 8) >> (2 * g)) & 3) << 4;
        float dl = f16v(b) * (float)(ls - 32);
        return dl * (float)ss_iq4_levels[idx];
    }
    default:
        return NAN;
    }
}

/* Test signal for block k: smooth values of varying magnitude, an outlier, exact zeros. */
static void signal(float *x, int n, int k)
{
    for (int i = 0; i < n; i++)
        x[i] = sinf(0.37f * (float)(i + 11 * k)) * (1.f + (float)((i + k) % 13) / 4.f);
    x[(7 * k) % n] *= 6.f;
    x[(3 * k + 1) % n] = 0.f;
    if (k == 2)
        memset(x, 0, (size_t)n * sizeof(float)); /* an all-zero block */
    if (k == 3)
        for (int i = 0; i < n; i++)
            x[i] = -0.5f; /* a constant block */
}

START_TEST(test_quant_formats)
{
    /* relative RMS error our quantizers must stay under (a sanity bound, not llama.cpp's exact choice) */
    static const struct { int type; double rms; } tq[] = {
        {SS_GGML_Q4_0, 0.16}, {SS_GGML_Q4_1, 0.12}, {SS_GGML_Q5_0, 0.085}, {SS_GGML_Q5_1, 0.062},
        {SS_GGML_Q8_0, 0.012}, {SS_GGML_Q2_K, 0.30}, {SS_GGML_Q3_K, 0.175}, {SS_GGML_Q4_K, 0.085},
        {SS_GGML_Q5_K, 0.045}, {SS_GGML_Q6_K, 0.023}, {SS_GGML_Q8_K, 0.014}, {SS_GGML_IQ4_NL, 0.13},
        {SS_GGML_IQ4_XS, 0.095}};
    for (size_t ti = 0; ti < SS_ARRAY_LEN(tq); ti++) {
        int type = tq[ti].type, be = ss_ggml_block_elems(type), nblk = 6, n = be * nblk;
        size_t bb = ss_ggml_block_bytes(type);
        float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
        uint8_t *q = malloc(bb * nblk), u[256];
        for (int k = 0; k < nblk; k++)
            signal(x + k * be, be, k);
        ss_ggml_from_f32(type, x, q, n);
        ss_ggml_to_f32(type, q, y, n);
        double e2 = 0, x2 = 0;
        const qtype_t *qt = q_type(type);
        ck_assert_ptr_nonnull(qt);
        for (int k = 0; k < nblk; k++) {
            float A[16], B[16];
            qt->unpack(q + k * bb, u, A, B);
            for (int i = 0; i < be; i++) {
                float ref = def_elem(type, q + k * bb, i), got = y[k * be + i];
                ck_assert_msg(!memcmp(&ref, &got, 4), "%s block %d element %d: definition %.9g, reference %.9g",
                              ss_ggml_type_name(type), k, i, ref, got);
                /* the unpacked form gives the same numbers */
                float un = qt->zp >= 0 ? A[i / 16] * (float)(u[i] - qt->zp) : A[i / 16] * (float)u[i] + B[i / 16];
                ck_assert_msg(!memcmp(&un, &got, 4), "%s block %d element %d: unpacked %.9g, reference %.9g",
                              ss_ggml_type_name(type), k, i, un, got);
                if (qt->zp >= 0)
                    ck_assert_msg(B[i / 16] == -(float)qt->zp * A[i / 16], "%s: B != -zp*A", ss_ggml_type_name(type));
                if (k != 2 && k != 3) {
                    e2 += (double)(got - x[k * be + i]) * (got - x[k * be + i]);
                    x2 += (double)x[k * be + i] * x[k * be + i];
                }
            }
        }
        for (int i = 2 * be; i < 3 * be; i++)
            ck_assert_msg(y[i] == 0.f, "%s: the zero block decodes to %g", ss_ggml_type_name(type), y[i]);
        double rel = sqrt(e2 / x2);
        if (getenv("SS_TEST_VERBOSE"))
            printf("%s rel rms %.4f\n", ss_ggml_type_name(type), rel);
        ck_assert_msg(rel < tq[ti].rms, "%s: relative RMS error %.4f >= %.4f", ss_ggml_type_name(type), rel,
                      tq[ti].rms);
        free(x);
        free(y);
        free(q);
    }
    /* a hand-made Q4_K block: d = 0.5, dmin = 0.25, group 5 scale 37 (low 4 bits 5 in byte 9, high
     * bits 2 in byte 1 << 6) and min 9, every quant 11: group 5 reads 0.5*37*11 - 0.25*9 */
    uint8_t blk[144] = {0};
    blk[0] = 0x00, blk[1] = 0x38; /* 0.5 */
    blk[2] = 0x00, blk[3] = 0x34; /* 0.25 */
    blk[4 + 9] = 0x95;            /* scale 5 low (0x5), min 5 low (0x9) */
    blk[4 + 1] = 0x80;            /* scale 5 high bits: 37 = 0b100101 -> 2 */
    memset(blk + 16, 0xBB, 128);
    float y[256];
    ss_ggml_to_f32(SS_GGML_Q4_K, blk, y, 256);
    ck_assert_float_eq(y[5 * 32 + 3], 0.5f * 37.f * 11.f - 0.25f * 9.f);
    ck_assert_float_eq(y[0], 0.f - 0.f);
}
END_TEST

/* The panels (qpack.c) hold the same weights, scales and offsets as the unpacked blocks. */
START_TEST(test_panels)
{
    for (size_t ti = 0; ti < SS_ARRAY_LEN(g_all_types); ti++) {
        int type = g_all_types[ti];
        const pspec_t *ps = p_spec(type);
        if (!ps)
            continue;
        const qtype_t *qt = q_type(type);
        int rows = 21, cols = qt->block == 256 ? 512 : 320;
        size_t rb = ss_ggml_row_bytes(type, cols);
        float *x = malloc((size_t)rows * cols * sizeof(float));
        uint8_t *q = malloc(rb * rows);
        for (int r = 0; r < rows; r++) {
            signal(x + (size_t)r * cols, cols, r + 1);
            ss_ggml_from_f32(type, x + (size_t)r * cols, q + r * rb, cols);
        }
        wmat_t m = {q, type, rows, cols, rb, NULL, 0};
        ck_assert_int_eq(k_pack(&m, 2), 0);
        for (int r = 0; r < rows; r++) {
            const uint8_t *tile = m.panel + (size_t)(r / 16) * m.group_bytes;
            for (int c0 = 0; c0 < cols; c0 += 256) {
                int nn = SS_MIN(256, cols - c0), ng = nn / ps->G;
                const uint8_t *gsc = tile + p_hdr_bytes(ps), *bits = gsc + (size_t)ng * p_gscale_bytes(ps);
                for (int k = 0; k < nn; k += qt->block) {
                    uint8_t u[256];
                    float A[16], B[16];
                    qt->unpack(q + r * rb + (size_t)((c0 + k) / qt->block) * qt->bytes, u, A, B);
                    for (int i = 0; i < qt->block; i++) {
                        int e = k + i, g = e / ps->G;
                        ck_assert_int_eq(p_u(ps, bits + (size_t)g * p_gbits_bytes(ps), r % 16, e % ps->G), u[i]);
                        float pa, pb;
                        p_group_ab(ps, tile, gsc + (size_t)g * p_gscale_bytes(ps), r % 16, &pa, &pb);
                        ck_assert_msg(pa == A[i / 16] && (ps->zp >= 0 || pb == B[i / 16]), "%s row %d weight %d",
                                      ss_ggml_type_name(type), r, c0 + e);
                    }
                }
                tile += p_tile_bytes(ps, nn);
            }
        }
        k_unpack_free(&m);
        free(q);
        free(x);
    }
}
END_TEST

/* The pre-tokenizers split text exactly as the families' regexes do (golden splits computed with
 * Python's regex engine by scripts/gen_pretok_golden.py). */
START_TEST(test_pretokenizers)
{
    static const char *names[] = {"gpt-2", "llama-bpe", "qwen2", "smollm"};
    for (size_t i = 0; i < SS_ARRAY_LEN(g_pretok); i++) {
        const pretok_case_t *c = &g_pretok[i];
        size_t ends[128];
        int n = tok_pretokenize(c->pre, c->text, strlen(c->text), ends, 128);
        int same = n == c->n;
        for (int k = 0; same && k < n; k++)
            same = ends[k] == (size_t)c->ends[k];
        if (!same) {
            char got[512] = "", want[512] = "";
            for (int k = 0; k < n && k < 40; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%zu ", ends[k]);
            for (int k = 0; k < c->n; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%d ", c->ends[k]);
            ck_abort_msg("%s on \"%s\": pieces end at %s, the regex ends them at %s", names[c->pre], c->text, got, want);
        }
    }
}
END_TEST

START_TEST(test_kernels_isa)
{
    for (size_t ti = 0; ti < SS_ARRAY_LEN(g_all_types); ti++) {
        int t = g_all_types[ti], be = ss_ggml_block_elems(t);
        /* 37 rows: a partial row group; 11 activations: kernel widths 8 + 2 + 1 */
        check_matmul_type(t, 37, be == 256 ? 512 : 576, 11);
        if (be < 256)
            check_matmul_type(t, 20, 96, 3); /* one short superblock */
    }
}
END_TEST

/* ---------------- real quantized files: llama.cpp's output, llama.cpp's mixtures ---------------- */

/* stories260K quantized by llama.cpp (Q4_K_M: Q5_0 + Q8_0 + F16; Q5_K_M: Q5_1 + Q8_0 + F16):
 * greedy from "Once upon a time" matches llama.cpp's own output at least through the first
 * sentence (quantized arithmetic differs a little between engines). */
START_TEST(test_llamacpp_quantized)
{
    static const char *files[] = {"stories260K-Q4_K_M", "stories260K-Q5_K_M"};
    for (size_t f = 0; f < SS_ARRAY_LEN(files); f++) {
        char p[1024], q[1024], err[SS_ERRSZ] = "";
        snprintf(q, sizeof q, "%s.gguf", files[f]);
        tu_model_path(q, p, sizeof p);
        ss_llm_opts_t o = {.threads = 1};
        ss_llm_t *m = NULL;
        ck_assert_msg(ss_llm_open(p, &o, &m, err, sizeof err) == SS_OK, "%s", err);
        snprintf(q, sizeof q, "%s.greedy120.txt", files[f]);
        char *want = tu_read_file(tu_model_path(q, p, sizeof p), NULL);
        ck_assert_ptr_nonnull(want);
        int t[256], n = ss_llm_tokenize(m, "Once upon a time", 1, t, 256);
        int g = ss_llm_greedy(m, t, n, 120, t + n, err, sizeof err);
        ck_assert_msg(g == 120, "%s: %s", files[f], err);
        char *got = ss_llm_detokenize(m, t, n + g);
        size_t same = 0;
        while (got[same] && got[same] == want[same])
            same++;
        const char *dot = strchr(want, '.');
        ck_assert_msg(dot && same > (size_t)(dot - want), "%s: agrees with llama.cpp for %zu characters only:\n%s",
                      files[f], same, got);
        free(got);
        free(want);
        ss_llm_close(m);
    }
}
END_TEST

static const ss_gguf_tensor_t *tensor_of(const ss_gguf_t *g, const char *name)
{
    const ss_gguf_tensor_t *t = ss_gguf_tensor(g, name);
    ck_assert_msg(t != NULL, "tensor %s missing", name);
    return t;
}

/* Files in llama.cpp's Q4_K_M / Q5_K_M / Q6_K recipes in the real models' widths (few layers, a
 * small vocabulary): the recipe and its fallbacks as llama-quantize applies them, the family's
 * pre-tokenizer, and logits within int8-activation error of the same weights computed in f32
 * (the reference path, k_test_no_panels), batched equal to single, greedy decoding. */
static void check_mix(const char *shape, int mix, const char *dir)
{
    ss_mkmodel_spec_t s;
    ck_assert(ss_mkmodel_shape(shape, &s));
    s.mix = mix;
    s.n_layers = s.dim >= 2048 ? 1 : 2;
    s.vocab = 512;
    s.seed = 11;
    char *path = ss_sprintf("%s/%s-mix%d.gguf", dir, shape, mix), err[SS_ERRSZ] = "";
    ck_assert_msg(ss_mkmodel_write(&s, path, err, sizeof err) == SS_OK, "%s", err);
    /* the types in the file */
    ss_gguf_t *g = NULL;
    ck_assert_msg(ss_gguf_open(path, &g, err, sizeof err) == SS_OK, "%s", err);
    for (uint64_t i = 0; i < g->ntensors; i++) {
        const ss_gguf_tensor_t *t = &g->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
        if (t->ndim != 2)
            continue;
        int layer = -1, off = 0;
        if (sscanf(name, "blk.%d.%n", &layer, &off) < 1 || !off)
            layer = -1;
        ck_assert_msg(t->type == ss_mkmodel_tensor_type(&s, layer >= 0 ? name + off : name, layer, t->ne[0]),
                      "%s: %s is %s", path, name, ss_ggml_type_name(t->type));
    }
    int narrow = s.dim % 256 != 0, base = mix == SS_MIX_Q4_K_M ? SS_GGML_Q4_K : mix == SS_MIX_Q5_K_M ? SS_GGML_Q5_K
                                                                                                     : SS_GGML_Q6_K;
    int fb = base == SS_GGML_Q4_K ? SS_GGML_Q5_0 : base == SS_GGML_Q5_K ? SS_GGML_Q5_1 : SS_GGML_Q8_0;
    int last = s.n_layers - 1; /* llama.cpp gives the last layer more bits */
    char nm[64];
    ck_assert_int_eq(tensor_of(g, "token_embd.weight")->type, narrow ? SS_GGML_Q8_0 : SS_GGML_Q6_K);
    ck_assert_int_eq(tensor_of(g, "blk.0.attn_q.weight")->type, narrow ? fb : base);
    snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", last);
    ck_assert_int_eq(tensor_of(g, nm)->type, narrow ? SS_GGML_Q8_0 : SS_GGML_Q6_K);
    snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", last); /* rows of 1536 / 4864 / 8192 are K-quant rows */
    ck_assert_int_eq(tensor_of(g, nm)->type, SS_GGML_Q6_K);
    if (s.n_layers > 1)
        ck_assert_int_eq(tensor_of(g, "blk.0.ffn_down.weight")->type, base);
    ss_gguf_close(g);
    /* the model, and the f32 reference on the same weights */
    ss_llm_opts_t o = {.threads = 2};
    ss_llm_t *m = NULL, *ref = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "%s", err);
    k_test_no_panels = 1;
    ck_assert_msg(ss_llm_open(path, &o, &ref, err, sizeof err) == SS_OK, "%s", err);
    k_test_no_panels = 0;
    ck_assert_int_eq(m->tok.pre, !strcmp(s.pre, "smollm") ? PRE_SMOLLM : !strcmp(s.pre, "qwen2") ? PRE_QWEN2 : PRE_LLAMA3);
    int t[64], n = ss_llm_tokenize(m, "Once upon a time, 123 fish swam", 0, t, 64), V = ss_llm_config(m)->vocab_size;
    ck_assert_int_gt(n, 5);
    float *lq = malloc(2 * (size_t)V * sizeof(float)), *lr = malloc((size_t)V * sizeof(float));
    const int *seqs[2] = {t, t + 2};
    int ns[2] = {n, n - 2};
    ck_assert_int_eq(ss_llm_last_logits(m, 2, seqs, ns, lq, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_last_logits(ref, 1, seqs, ns, lr, err, sizeof err), SS_OK);
    double cs = cosine(lq, lr, V);
    if (getenv("SS_TEST_VERBOSE"))
        printf("%s: cosine %.6f against the f32 reference\n", path, cs);
    ck_assert_msg(cs > 0.998, "%s: cosine %f against the f32 reference", path, cs);
    ck_assert_int_eq(ss_llm_last_logits(m, 1, &seqs[1], &ns[1], lr, err, sizeof err), SS_OK);
    ck_assert_msg(!memcmp(lr, lq + V, (size_t)V * sizeof(float)), "%s: batched differs from single", path);
    int gen[16];
    ck_assert_int_eq(ss_llm_greedy(m, t, n, 12, gen, err, sizeof err), 12);
    free(lq);
    free(lr);
    ss_llm_close(m);
    ss_llm_close(ref);
    unlink(path);
    free(path);
}

/* mkgguf's SentencePiece vocabulary: loads as tokenizer.ggml.model "llama" (pre "default"), BOS
 * added, byte fallback for what no piece covers, text round trips; and an unknown pre-tokenizer
 * name is refused with the supported list. */
START_TEST(test_spm_synthetic)
{
    char *dir = tu_tmpdir(), *path = ss_sprintf("%s/spm.gguf", dir), err[SS_ERRSZ] = "";
    ss_mkmodel_spec_t s;
    ck_assert(ss_mkmodel_shape("tiny-llama", &s));
    s.spm = 1;
    s.type = SS_GGML_Q4_0;
    ck_assert_msg(ss_mkmodel_write(&s, path, err, sizeof err) == SS_OK, "%s", err);
    ss_llm_opts_t o = {.threads = 1};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(m->tok.kind, TOK_SPM);
    const char *text = "the quick brown fox said: caf\xc3\xa9 \xe2\x9c\x93 42!";
    int t[256], n = ss_llm_tokenize(m, text, 1, t, 256);
    ck_assert_int_gt(n, 5);
    ck_assert_int_eq(t[0], ss_llm_config(m)->bos);
    char *d = ss_llm_detokenize(m, t, n);
    ck_assert_str_eq(d, text);
    free(d);
    int g[8];
    ck_assert_int_eq(ss_llm_greedy(m, t, n, 4, g, err, sizeof err), 4);
    ss_llm_close(m);
    unlink(path);
    /* a pre-tokenizer we do not implement */
    s.spm = 0;
    s.pre = "deepseek-llm";
    ck_assert_msg(ss_mkmodel_write(&s, path, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(ss_llm_open(path, &o, &m, err, sizeof err), SS_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err, "deepseek-llm") && strstr(err, "llama-bpe"), "%s", err);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_mixtures)
{
    char *dir = tu_tmpdir();
    static const char *shapes[] = {"smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b"};
    static const int mixes[] = {SS_MIX_Q4_K_M, SS_MIX_Q5_K_M, SS_MIX_Q6_K};
    for (size_t i = 0; i < SS_ARRAY_LEN(shapes); i++)
        for (size_t j = 0; j < SS_ARRAY_LEN(mixes); j++)
            check_mix(shapes[i], mixes[j], dir);
    rmdir(dir);
    free(dir);
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
    add(s, "dependency", test_dependency);
    add(s, "backend", test_backend_local);
    add(s, "synthetic", test_synthetic_types);
    add(s, "quant_formats", test_quant_formats);
    add(s, "panels", test_panels);
    add(s, "pretokenizers", test_pretokenizers);
    add(s, "llamacpp_quantized", test_llamacpp_quantized);
    add(s, "mixtures", test_mixtures);
    add(s, "spm_synthetic", test_spm_synthetic);
    add(s, "kernels", test_kernels_isa);
    add(s, "chat", test_chat_template);
    return s;
}
