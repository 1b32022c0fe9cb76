/*
 * check_stream_prefill.c — streaming prefill (issue 17 §3) on the real stories260K model:
 * a context that arrives in pieces is prefilled piece by piece with prefill-only requests
 * (ss_infer_req_t.prefill_only), and the final GENERATE then computes only what the prefix
 * cache does not hold: the engine's counters show it reused exactly the full KV blocks of the
 * longest common token prefix with what was prefilled (so it computes the last piece, the
 * prompt's suffix and at most one partial block), an in-place edit of earlier text recomputes
 * from the block of the first changed token, and the greedy answers equal those of a cold run.
 */
#include "llm_internal.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PIECES[] = {
    "Once upon a time, there was a little girl named Lily. She liked to play in the park with her ball. ",
    "One day, she saw a big dog near the tree. The dog was sad because it lost its bone. ",
    "Lily wanted to help the dog. She looked under the bench and behind the slide. ",
    "Then she found the bone in the sand. She gave it to the dog and the dog was happy. ",
    "The dog wagged its tail and licked her hand. Lily and the dog played all day long. ",
    "When the sun went down, Lily went home. She told her mom about her new friend. ",
};
#define NPIECE ((int)(sizeof PIECES / sizeof *PIECES))

static ss_llm_t *open_stories(void)
{
    char path[1024], err[SS_ERRSZ] = "";
    tu_model_path("stories260K.gguf", path, sizeof path);
    ss_llm_opts_t o = {.threads = 1};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "open: %s", err);
    return m;
}

/* The prompt as it stands once the context has arrived up to piece n (malloc'd); edit != NULL
 * replaces the first occurrence of "big dog" by it. */
static char *prompt_of(int n, const char *edit)
{
    ss_buf_t b = {0};
    ss_buf_printf(&b, "Story: ");
    for (int i = 0; i < n; i++)
        ss_buf_printf(&b, "%s", PIECES[i]);
    ss_buf_printf(&b, "\nQuestion: Who did Lily help?\nAnswer:");
    char *p = ss_buf_take(&b);
    char *hit = edit ? strstr(p, "big dog") : NULL;
    if (hit) {
        size_t at = (size_t)(hit - p), len = strlen(p) + strlen(edit) + 1;
        char *q = malloc(len);
        ck_assert_ptr_nonnull(q);
        snprintf(q, len, "%.*s%s%s", (int)at, p, edit, hit + strlen("big dog"));
        free(p);
        p = q;
    }
    return p;
}

static int tokens_of(ss_llm_t *m, const char *text, int *out, int cap)
{
    int n = ss_llm_tokenize(m, text, ss_llm_config(m)->add_bos, out, cap);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, cap);
    return n;
}

/* One request through ss_llm_run; returns the stats delta in *d. */
static void run_one(ss_llm_t *m, const char *prompt, int prefill_only, int max_tokens, ss_infer_res_t *res,
                    ss_llm_stats_t *d)
{
    char err[SS_ERRSZ] = "";
    ss_llm_stats_t a, b;
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .raw = 1, .max_tokens = max_tokens,
                        .prefill_only = prefill_only};
    ss_llm_stats(m, &a);
    ck_assert_msg(ss_llm_run(m, &r, 1, res, err, sizeof err) == SS_OK, "run: %s", err);
    ck_assert_msg(res->status == SS_OK, "request: %s", res->error);
    ss_llm_stats(m, &b);
    d->tokens_computed = b.tokens_computed - a.tokens_computed;
    d->tokens_reused = b.tokens_reused - a.tokens_reused;
}

static int lcp(const int *a, int na, const int *b, int nb)
{
    int k = 0;
    while (k < na && k < nb && a[k] == b[k])
        k++;
    return k;
}

/* Prefills the context piece by piece (pieces 1..n-1), then the final request: its prefill
 * reuses floor(L / KV_BLOCK) blocks, L the longest common token prefix with a prefilled prompt
 * (capped below the last token, which must produce logits). Returns the final answer (greedy,
 * max_tokens) and checks the counters. */
static char *stream_then_answer(ss_llm_t *m, const char *edit, int max_tokens, int *computed, int *reused)
{
    enum { CAP = 2048 };
    int *fin = malloc(CAP * sizeof *fin), *tok = malloc(CAP * sizeof *tok);
    ck_assert(fin && tok);
    char *final = prompt_of(NPIECE, edit);
    int nf = tokens_of(m, final, fin, CAP), best = 0;
    for (int n = 1; n < NPIECE + (edit != NULL); n++) { /* with an edit, the whole text came before */
        char *p = prompt_of(n, NULL);
        ss_infer_res_t res = {0};
        ss_llm_stats_t d;
        run_one(m, p, 1, 0, &res, &d);
        int np = tokens_of(m, p, tok, CAP);
        ck_assert_int_eq(res.prompt_tokens, np);
        ck_assert_str_eq(res.text, "");
        ck_assert_int_eq(res.gen_tokens, 0);
        /* a prefill computes only full blocks, and only what the earlier pieces did not */
        ck_assert_int_eq(d.tokens_computed + d.tokens_reused, np / KV_BLOCK * KV_BLOCK);
        int l = lcp(tok, np / KV_BLOCK * KV_BLOCK, fin, nf);
        best = l > best ? l : best;
        ss_infer_res_clear(&res);
        free(p);
    }
    ss_infer_res_t res = {0};
    ss_llm_stats_t d;
    run_one(m, final, 0, max_tokens, &res, &d);
    int want = SS_MIN(best, nf - 1) / KV_BLOCK * KV_BLOCK;
    ck_assert_int_eq(res.prompt_tokens, nf);
    ck_assert_int_eq((int)d.tokens_reused, want);
    *reused = (int)d.tokens_reused;
    *computed = (int)d.tokens_computed;
    char *text = res.text;
    res.text = NULL;
    ss_infer_res_clear(&res);
    free(final);
    free(fin);
    free(tok);
    return text;
}

/* The same final prompt with an empty prefix cache. */
static char *cold_answer(ss_llm_t *m, const char *edit, int max_tokens)
{
    ss_llm_cache_clear(m);
    char *final = prompt_of(NPIECE, edit);
    ss_infer_res_t res = {0};
    ss_llm_stats_t d;
    run_one(m, final, 0, max_tokens, &res, &d);
    ck_assert_int_eq((int)d.tokens_reused, 0);
    char *text = res.text;
    res.text = NULL;
    ss_infer_res_clear(&res);
    free(final);
    return text;
}

START_TEST(test_pieces_prefill_only_the_last)
{
    ss_llm_t *m = open_stories();
    enum { CAP = 2048 };
    int *t = malloc(CAP * sizeof *t);
    ck_assert_ptr_nonnull(t);
    /* max_tokens 1: the final request computes its prompt and nothing else (time to first token) */
    int computed = 0, reused = 0;
    char *a = stream_then_answer(m, NULL, 1, &computed, &reused);
    char *final = prompt_of(NPIECE, NULL), *before = prompt_of(NPIECE - 1, NULL);
    int nf = tokens_of(m, final, t, CAP), nb = tokens_of(m, before, t, CAP);
    int nsuffix = tokens_of(m, "\nQuestion: Who did Lily help?\nAnswer:", t, CAP);
    int nlast = tokens_of(m, PIECES[NPIECE - 1], t, CAP);
    ck_assert_int_eq(computed, nf - reused);
    /* the last piece + the suffix, plus the partial block (< KV_BLOCK) the prefill could not keep
     * and a token or two where the tokenizer merges across the piece boundary */
    ck_assert_int_ge(computed, nlast + nsuffix - 2);
    ck_assert_int_lt(computed, nlast + nsuffix + KV_BLOCK + 2);
    ck_assert_int_gt(reused, nb - nsuffix - KV_BLOCK - 2);
    /* the first token, and a longer greedy answer, equal a cold run's */
    char *c = cold_answer(m, NULL, 1);
    ck_assert_str_eq(a, c);
    free(a);
    free(c);
    ss_llm_cache_clear(m);
    a = stream_then_answer(m, NULL, 32, &computed, &reused);
    c = cold_answer(m, NULL, 32);
    ck_assert_msg(!strcmp(a, c), "streamed '%s' vs cold '%s'", a, c);
    ck_assert_int_gt((int)strlen(a), 0);
    free(a);
    free(c);
    free(final);
    free(before);
    free(t);
    ss_llm_close(m);
}
END_TEST

START_TEST(test_edit_recomputes_from_common_prefix)
{
    ss_llm_t *m = open_stories();
    enum { CAP = 2048 };
    int *t = malloc(CAP * sizeof *t), *u = malloc(CAP * sizeof *u);
    ck_assert(t && u);
    int computed = 0, reused = 0;
    char *a = stream_then_answer(m, "small cat", 1, &computed, &reused);
    char *edited = prompt_of(NPIECE, "small cat"), *orig = prompt_of(NPIECE, NULL);
    int ne = tokens_of(m, edited, t, CAP), no = tokens_of(m, orig, u, CAP);
    int l = lcp(t, ne, u, no);
    ck_assert_int_gt(l, KV_BLOCK); /* the edit is in the second piece: some blocks stay */
    ck_assert_int_lt(l, ne / 2);
    ck_assert_int_eq(reused, l / KV_BLOCK * KV_BLOCK); /* kept up to the longest common prefix */
    ck_assert_int_eq(computed, ne - reused);            /* and the rest recomputed */
    char *c = cold_answer(m, "small cat", 1);
    ck_assert_str_eq(a, c);
    free(a);
    free(c);
    ss_llm_cache_clear(m);
    a = stream_then_answer(m, "small cat", 32, &computed, &reused);
    c = cold_answer(m, "small cat", 32);
    ck_assert_msg(!strcmp(a, c), "streamed '%s' vs cold '%s'", a, c);
    free(a);
    free(c);
    free(edited);
    free(orig);
    free(t);
    free(u);
    ss_llm_close(m);
}
END_TEST

START_TEST(test_prefill_only_rejects_answer_options)
{
    ss_llm_t *m = open_stories();
    char err[SS_ERRSZ] = "";
    int forced[1] = {5};
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .raw = 1, .max_tokens = 8,
                        .prefill_only = 1, .forced = forced, .nforced = 1};
    ss_infer_res_t res = {0};
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert_int_eq(res.status, SS_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(res.error, "prefill-only"));
    ss_infer_res_clear(&res);
    /* a prompt shorter than a block is computed whole and answers "" */
    r.forced = NULL;
    r.nforced = 0;
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert_int_eq(res.status, SS_OK);
    ck_assert_str_eq(res.text, "");
    ss_infer_res_clear(&res);
    ss_llm_close(m);
}
END_TEST

Suite *check_stream_prefill_suite(void)
{
    Suite *s = suite_create("stream_prefill");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pieces_prefill_only_the_last);
    tcase_add_test(tc, test_edit_recomputes_from_common_prefix);
    tcase_add_test(tc, test_prefill_only_rejects_answer_options);
    suite_add_tcase(s, tc);
    return s;
}
