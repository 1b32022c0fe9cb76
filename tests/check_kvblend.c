/*
 * check_kvblend.c — KV reuse beyond the prefix (KV_REUSE = 'chunks', issue 17 §2; gpu/kvblend.c)
 * on the real stories260K model, where it must be exact:
 * - a prompt assembled from cached chunks with every token recomputed gives the logits of a
 *   full prefill bit for bit (chunk cache cold and warm), and a GENERATE with recompute 1 the
 *   same text as a plain one;
 * - a chunk's KV computed on its own at position 0 and re-rotated to position P equals its KV
 *   computed on its own at P (every layer, to float rounding; V of the first layer bit for bit);
 * - with a fraction below 1, exactly the tokens outside chunks plus round(frac x chunk tokens)
 *   are computed after the first layer, the chunk cache is hit, and the logits stay finite;
 * - with dependency tracking and forced tokens the tracked positions are computed, not blended;
 * - bad spans and fractions are refused with a message.
 */
#include "llm_internal.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *DOC_A = "<doc>\nOnce upon a time, there was a little girl named Lily. She liked to play in the "
                           "park with her red ball. One day the ball rolled under a big tree.\n</doc>\n";
static const char *DOC_B = "<doc>\nTom had a small dog called Max. Max was sad because he lost his bone. Tom "
                           "looked under the bench and found the bone in the sand.\n</doc>\n";
static const char *INSTR = "Answer the question using the documents below. Read each document with care and "
                           "answer in one short sentence.\n### Documents\n";
static const char *QUESTION = "### Question\nWho found the bone?\n### Answer:";

static ss_llm_t *open_stories(void)
{
    char path[1024], err[SS_ERRSZ] = "";
    tu_model_path("stories260K.gguf", path, sizeof path);
    ss_llm_opts_t o = {.threads = 1};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "open: %s", err);
    return m;
}

/* BOS + INSTR + DOC_A + DOC_B + QUESTION, each piece tokenized on its own; span: the documents. */
static int build(ss_llm_t *m, int *toks, int cap, int span[4])
{
    const char *parts[] = {INSTR, DOC_A, DOC_B, QUESTION};
    int n = 0;
    toks[n++] = ss_llm_config(m)->bos;
    for (int i = 0; i < 4; i++) {
        if (i == 1 || i == 2)
            span[2 * (i - 1)] = n;
        int k = ss_llm_tokenize(m, parts[i], 0, toks + n, cap - n);
        ck_assert_int_gt(k, 0);
        ck_assert_int_le(n + k, cap);
        n += k;
        if (i == 1 || i == 2)
            span[2 * (i - 1) + 1] = n;
    }
    return n;
}

START_TEST(test_full_recompute_is_exact)
{
    ss_llm_t *m = open_stories();
    int toks[512], span[4], v = ss_llm_config(m)->vocab_size;
    int n = build(m, toks, 512, span);
    char err[SS_ERRSZ] = "";
    float *full = malloc((size_t)v * sizeof *full), *bl = malloc((size_t)v * sizeof *bl);
    const int *tp = toks;
    ss_llm_set_prefix_cache(m, 0);
    ck_assert_msg(ss_llm_last_logits(m, 1, &tp, &n, full, err, sizeof err) == SS_OK, "%s", err);
    ss_llm_set_prefix_cache(m, 1);
    int pre = span[0] / KV_BLOCK * KV_BLOCK; /* whole blocks before the first chunk: plain KV */
    ck_assert_int_gt(pre, 0);
    for (int round = 0; round < 2; round++) { /* chunk cache cold, then warm */
        ss_llm_stats_t a, b;
        ss_llm_stats(m, &a);
        ck_assert_msg(ss_llm_chunk_logits(m, toks, n, span, 2, 1.0f, bl, err, sizeof err) == SS_OK, "%s", err);
        ss_llm_stats(m, &b);
        ck_assert_msg(!memcmp(full, bl, (size_t)v * sizeof *bl), "round %d: logits differ from a full prefill",
                      round);
        /* the second round takes the blocks before the first chunk from the prefix cache */
        ck_assert_int_eq(b.tokens_reused - a.tokens_reused, round ? pre : 0);
        ck_assert_int_eq(b.blend_tokens - a.blend_tokens, n - 1 - (round ? pre : 0));
        ck_assert_int_eq(b.blend_computed - a.blend_computed, n - 1 - (round ? pre : 0));
        ck_assert_int_eq(b.chunk_misses - a.chunk_misses, round ? 0 : 2);
        ck_assert_int_eq(b.chunk_hits - a.chunk_hits, round ? 2 : 0);
        ck_assert_int_eq(b.chunk_tokens - a.chunk_tokens, round ? 0 : span[1] - span[0] + span[3] - span[2]);
    }
    /* the blended KV never enters the prefix cache (only the blocks before the first chunk): a
     * plain run after it computes the rest */
    ss_llm_stats_t a, b;
    ss_llm_stats(m, &a);
    ck_assert(ss_llm_last_logits(m, 1, &tp, &n, bl, err, sizeof err) == SS_OK);
    ss_llm_stats(m, &b);
    ck_assert_int_eq(b.tokens_reused - a.tokens_reused, pre);
    ck_assert(!memcmp(full, bl, (size_t)v * sizeof *bl));
    /* with the prompt's blocks in the prefix cache now, they are taken first (exact KV) */
    ck_assert(ss_llm_chunk_logits(m, toks, n, span, 2, 1.0f, bl, err, sizeof err) == SS_OK);
    ck_assert(!memcmp(full, bl, (size_t)v * sizeof *bl));
    free(full);
    free(bl);
    ss_llm_close(m);
}
END_TEST

static double kl(const float *p_logits, const float *q_logits, int v)
{
    double mp = -INFINITY, mq = -INFINITY, sp = 0, sq = 0, k = 0;
    for (int i = 0; i < v; i++)
        mp = fmax(mp, p_logits[i]), mq = fmax(mq, q_logits[i]);
    for (int i = 0; i < v; i++)
        sp += exp(p_logits[i] - mp), sq += exp(q_logits[i] - mq);
    for (int i = 0; i < v; i++) {
        double lp = p_logits[i] - mp - log(sp), lq = q_logits[i] - mq - log(sq);
        k += exp(lp) * (lp - lq);
    }
    return k;
}

START_TEST(test_partial_recompute_counts)
{
    ss_llm_t *m = open_stories();
    int toks[512], span[4], v = ss_llm_config(m)->vocab_size;
    int n = build(m, toks, 512, span);
    int nchunk = span[1] - span[0] + span[3] - span[2];
    char err[SS_ERRSZ] = "";
    float *full = malloc((size_t)v * sizeof *full), *bl = malloc((size_t)v * sizeof *bl);
    const int *tp = toks;
    ss_llm_set_prefix_cache(m, 0);
    ck_assert(ss_llm_last_logits(m, 1, &tp, &n, full, err, sizeof err) == SS_OK);
    const float fr[] = {0.0f, 0.15f, 0.5f};
    double kls[3];
    for (int i = 0; i < 3; i++) {
        ss_llm_stats_t a, b;
        ss_llm_stats(m, &a);
        ck_assert_msg(ss_llm_chunk_logits(m, toks, n, span, 2, fr[i], bl, err, sizeof err) == SS_OK, "%s", err);
        ss_llm_stats(m, &b);
        ck_assert_int_eq(b.blend_tokens - a.blend_tokens, n - 1);
        ck_assert_int_eq(b.blend_computed - a.blend_computed, (n - 1 - nchunk) + (int)lround(fr[i] * nchunk));
        ck_assert_int_eq(b.tokens_computed - a.tokens_computed, i ? 1 : 1 + nchunk); /* the last token (+ chunks) */
        kls[i] = kl(full, bl, v);
        ck_assert_msg(isfinite(kls[i]) && kls[i] >= -1e-9, "KL %g at fraction %g", kls[i], (double)fr[i]);
    }
    /* recomputing half of the chunk tokens gets closer to the full prefill than recomputing none */
    ck_assert_msg(kls[2] < kls[0], "KL at 0.5 (%g) not below KL at 0 (%g)", kls[2], kls[0]);
    /* bad spans */
    int bad[4] = {span[2], span[3], span[0], span[1]};
    ck_assert_int_eq(ss_llm_chunk_logits(m, toks, n, bad, 2, 0.15f, bl, err, sizeof err), SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "increasing"));
    int past[2] = {span[0], n};
    ck_assert_int_eq(ss_llm_chunk_logits(m, toks, n, past, 1, 0.15f, bl, err, sizeof err), SS_ERR_INVALID);
    free(full);
    free(bl);
    ss_llm_close(m);
}
END_TEST

/* The KV of toks[0..n) computed on its own at positions [p0, p0 + n) (p0 a multiple of
 * KV_BLOCK), read into kv ([layer][k|v][n][kvd]). */
static void chunk_at(ss_llm_t *m, const int *toks, int n, int p0, float *kv)
{
    const ss_llm_config_t *g = ss_llm_config(m);
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim;
    seq_t s;
    memset(&s, 0, sizeof s);
    char err[SS_ERRSZ] = "";
    ck_assert(eng_blocks(m, &s, p0 + n, err, sizeof err) == SS_OK);
    int *pos = malloc((size_t)n * sizeof *pos), *out = malloc((size_t)n * sizeof *out);
    const int **blk = malloc((size_t)n * sizeof *blk);
    for (int i = 0; i < n; i++)
        pos[i] = p0 + i, out[i] = -1, blk[i] = s.blocks;
    ubatch_t ub = {.n = n, .tok = toks, .pos = pos, .blocks = blk, .out = out};
    ck_assert_msg(cpu_forward_from(m->be_ctx, &ub, p0 / KV_BLOCK, err, sizeof err) == SS_OK, "%s", err);
    for (int l = 0; l < g->n_layers; l++)
        for (int w = 0; w < 2; w++)
            for (int j = 0; j < n; j++)
                cpu_kv_io(m->be_ctx, s.blocks[(p0 + j) / KV_BLOCK], (p0 + j) % KV_BLOCK, l, w,
                          kv + (((size_t)l * 2 + w) * n + j) * kvd, 0);
    free(pos);
    free(out);
    free(blk);
    seq_release(m, &s);
}

START_TEST(test_rerotation_matches_position)
{
    ss_llm_t *m = open_stories();
    const ss_llm_config_t *g = ss_llm_config(m);
    int toks[256];
    int n = ss_llm_tokenize(m, DOC_A, 0, toks, 256);
    size_t kvd = (size_t)g->n_kv_heads * g->head_dim, fl = (size_t)g->n_layers * 2 * n * kvd;
    float *at0 = malloc(fl * sizeof(float)), *atp = malloc(fl * sizeof(float));
    const int P = 3 * KV_BLOCK;
    chunk_at(m, toks, n, 0, at0);
    chunk_at(m, toks, n, P, atp);
    for (int l = 0; l < g->n_layers; l++) {
        double maxabs = 0, maxerr = 0;
        for (int j = 0; j < n; j++) {
            float *k = at0 + ((size_t)l * 2 * n + j) * kvd;
            kvb_rerotate(g, k, P);
            const float *kp = atp + ((size_t)l * 2 * n + j) * kvd;
            for (size_t i = 0; i < kvd; i++) {
                maxabs = fmax(maxabs, fabs(kp[i]));
                maxerr = fmax(maxerr, fabs(kp[i] - k[i]));
            }
            const float *v0 = at0 + (((size_t)l * 2 + 1) * n + j) * kvd, *vp = atp + (((size_t)l * 2 + 1) * n + j) * kvd;
            for (size_t i = 0; i < kvd; i++) {
                if (l == 0) /* the first layer's V does not depend on the position at all */
                    ck_assert_msg(v0[i] == vp[i], "layer 0 V differs at token %d", j);
                maxerr = fmax(maxerr, fabs(vp[i] - v0[i]));
            }
        }
        ck_assert_msg(maxerr <= 2e-4 * fmax(1.0, maxabs), "layer %d: re-rotated KV off by %g (max |K| %g)", l,
                      maxerr, maxabs);
    }
    /* and not by accident: without the re-rotation K differs */
    chunk_at(m, toks, n, 0, at0);
    double off = 0;
    for (size_t i = 0; i < kvd; i++)
        off = fmax(off, fabs(at0[(size_t)(n - 1) * kvd + i] - atp[(size_t)(n - 1) * kvd + i]));
    ck_assert_msg(off > 1e-3, "K at 0 and at %d agree without rotation (%g)", P, off);
    free(at0);
    free(atp);
    ss_llm_close(m);
}
END_TEST

static ss_infer_res_t generate(ss_llm_t *m, const char *prompt, const size_t *spans, int nchunks, float frac)
{
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .max_tokens = 24, .nchunks = nchunks,
                        .chunk_span = spans, .recompute = frac};
    ss_infer_res_t res;
    memset(&res, 0, sizeof res);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(ss_llm_run(m, &r, 1, &res, err, sizeof err) == SS_OK, "%s", err);
    return res;
}

START_TEST(test_generate_requests)
{
    ss_llm_t *m = open_stories();
    char prompt[2048];
    snprintf(prompt, sizeof prompt, "%s%s%s%s", INSTR, DOC_A, DOC_B, QUESTION);
    size_t a = strlen(INSTR), b = a + strlen(DOC_A), c = b + strlen(DOC_B);
    size_t spans[4] = {a, b, b, c};
    ss_llm_set_prefix_cache(m, 0);
    ss_infer_res_t plain = generate(m, prompt, NULL, 0, 0);
    ck_assert_int_eq(plain.status, SS_OK);
    ss_llm_set_prefix_cache(m, 1);
    ss_llm_stats_t s0, s1;
    ss_llm_stats(m, &s0);
    ss_infer_res_t full = generate(m, prompt, spans, 2, 1.0f);
    ss_llm_stats(m, &s1);
    ck_assert_int_eq(full.status, SS_OK);
    ck_assert_str_eq(full.text, plain.text);
    ck_assert_int_eq(full.gen_tokens, plain.gen_tokens);
    ck_assert_int_gt(s1.blend_tokens - s0.blend_tokens, 0);
    ck_assert_int_eq(s1.chunk_misses - s0.chunk_misses, 2);
    ss_infer_res_t part = generate(m, prompt, spans, 2, 0.15f);
    ss_llm_stats(m, &s0);
    ck_assert_int_eq(part.status, SS_OK);
    ck_assert_int_eq(s0.chunk_hits - s1.chunk_hits, 2);
    ck_assert_int_lt(s0.blend_computed - s1.blend_computed, s0.blend_tokens - s1.blend_tokens);
    ss_infer_res_t bad = generate(m, prompt, spans, 2, 1.5f);
    ck_assert_int_eq(bad.status, SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(bad.error, "0..1"));
    ss_infer_res_clear(&plain);
    ss_infer_res_clear(&full);
    ss_infer_res_clear(&part);
    ss_infer_res_clear(&bad);
    ss_llm_close(m);
}
END_TEST

/* With dependency tracking and forced answer tokens (MAINTAIN = 'dependency'), the tracked
 * positions are computed, not blended: recompute 1 gives the same text and record. */
START_TEST(test_generate_tracked)
{
    ss_llm_t *m = open_stories();
    char prompt[2048];
    snprintf(prompt, sizeof prompt, "%s%s%s%s", INSTR, DOC_A, DOC_B, QUESTION);
    size_t a = strlen(INSTR), b = a + strlen(DOC_A), c = b + strlen(DOC_B);
    size_t spans[4] = {a, b, b, c};
    int forced[8], nf = ss_llm_tokenize(m, " The dog", 0, forced, 8);
    ck_assert(nf >= 1 && nf <= 8);
    ss_infer_res_t res[2];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 2; i++) {
        ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .max_tokens = 12, .ntrack = 2,
                            .track_span = spans, .forced = forced, .nforced = nf, .nchunks = i ? 2 : 0,
                            .chunk_span = i ? spans : NULL, .recompute = 1.0f};
        char err[SS_ERRSZ] = "";
        ss_llm_set_prefix_cache(m, 0);
        ck_assert_msg(ss_llm_run(m, &r, 1, &res[i], err, sizeof err) == SS_OK, "%s", err);
        ck_assert_msg(res[i].status == SS_OK, "%s", res[i].error ? res[i].error : "");
    }
    ck_assert_str_eq(res[1].text, res[0].text);
    ck_assert_int_eq(res[1].dep_len, res[0].dep_len);
    ck_assert(!memcmp(res[1].dep, res[0].dep, (size_t)res[0].dep_len));
    ss_llm_stats_t st;
    ss_llm_stats(m, &st);
    ck_assert_int_gt(st.blend_tokens, 0);
    ss_infer_res_clear(&res[0]);
    ss_infer_res_clear(&res[1]);
    ss_llm_close(m);
}
END_TEST

Suite *check_kvblend_suite(void)
{
    Suite *s = suite_create("kvblend");
    TCase *tc = tcase_create("stories260K");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_full_recompute_is_exact);
    tcase_add_test(tc, test_partial_recompute_counts);
    tcase_add_test(tc, test_rerotation_matches_position);
    tcase_add_test(tc, test_generate_requests);
    tcase_add_test(tc, test_generate_tracked);
    suite_add_tcase(s, tc);
    return s;
}
