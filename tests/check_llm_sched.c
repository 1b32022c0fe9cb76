/*
 * check_llm_sched.c — continuous batching (gpu/llm_sched.c) with the real stories260K
 * model: requests submitted at different steps, joining running GENERATE sequences
 * and prefilled in chunks under a small token budget, give exactly what each gives
 * alone with ss_llm_run; a short request submitted while a long GENERATE decodes
 * completes first; the budget bounds the tokens of a step; requests that cannot run
 * and requests in flight at close are completed through their callbacks, and a
 * callback may submit the next request.
 */
#include "llm_internal.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ss_llm_t *open_stories(int no_prefix, int ubatch)
{
    char path[1024], err[SS_ERRSZ] = "";
    tu_model_path("stories260K.gguf", path, sizeof path);
    ss_llm_opts_t o = {.threads = 1, .no_prefix_cache = no_prefix, .ubatch = ubatch};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "open: %s", err);
    return m;
}

/* what a callback saw */
typedef struct seen {
    int calls, rc, step; /* step: the scheduling step after which it completed */
    int *clock;
} seen_t;

static void on_done(void *ctx, ss_infer_res_t *res, int rc)
{
    seen_t *s = ctx;
    (void)res;
    s->calls++;
    s->rc = rc;
    s->step = s->clock ? *s->clock : 0;
}

/* Same answer, bit for bit (EMBED: within 1e-6, the float sums may group differently). */
static void assert_same(const ss_infer_req_t *r, const ss_infer_res_t *a, const ss_infer_res_t *b, int i)
{
    ck_assert_msg(a->status == SS_OK && b->status == SS_OK, "request %d: %s / %s", i, a->error, b->error);
    ck_assert_int_eq(a->prompt_tokens, b->prompt_tokens);
    switch (r->kind) {
    case SS_INFER_GENERATE:
        ck_assert_msg(!strcmp(a->text, b->text), "request %d: '%s' vs '%s'", i, a->text, b->text);
        ck_assert_int_eq(a->gen_tokens, b->gen_tokens);
        ck_assert_int_eq(a->ntop, b->ntop);
        if (a->ntop) {
            ck_assert(!memcmp(a->top_logprobs, b->top_logprobs, (size_t)a->ntop * sizeof(float)));
            ck_assert(!memcmp(a->token_logprobs, b->token_logprobs, (size_t)a->gen_tokens * sizeof(float)));
        }
        break;
    case SS_INFER_CHOOSE:
    case SS_INFER_SCORE:
        ck_assert_int_eq(a->nprobs, b->nprobs);
        ck_assert_msg(!memcmp(a->probs, b->probs, (size_t)a->nprobs * sizeof(float)), "request %d probs", i);
        ck_assert(a->score == b->score);
        break;
    case SS_INFER_EMBED:
        ck_assert_int_eq(a->dim, b->dim);
        for (int k = 0; k < a->dim; k++)
            ck_assert_msg(fabsf(a->emb[k] - b->emb[k]) <= 1e-6f, "request %d dim %d", i, k);
        break;
    }
}

static const char *const yesno[] = {" yes", " no"};
static const char *const ch3[] = {" happy little girl", " sad", " a big red ball"};
#define LONGP                                                                                                   \
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she " \
    "saw a big, red ball. She wanted to play with it, but it was too high. Lily asked her mom for help. Her mom " \
    "smiled and got the ball down. Lily was very happy and said thank you. "
#define NR 8

static void make_reqs(ss_infer_req_t *r)
{
    memset(r, 0, NR * sizeof *r);
    r[0] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 60};
    r[1] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = LONGP "Was Lily happy? Answer:", .nchoices = 3,
                            .choices = ch3};
    r[2] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = LONGP "Then", .max_tokens = 25,
                            .temperature = 0.8f, .seed = 7, .top_logprobs = 3};
    r[3] = (ss_infer_req_t){.kind = SS_INFER_SCORE, .prompt = LONGP "How happy, 1 to 5?", .score_min = 1,
                            .score_max = 5};
    r[4] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = LONGP};
    r[5] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = "The dog was", .nchoices = 2, .choices = yesno};
    r[6] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = LONGP "The next day", .max_tokens = 30,
                            .stop = "Lily"};
    r[7] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "A cat sat", .max_tokens = 1};
}

/* Each request alone through ss_llm_run on its own fresh model: the reference. */
static void run_alone(const ss_infer_req_t *r, ss_infer_res_t *ref)
{
    for (int i = 0; i < NR; i++) {
        ss_llm_t *m = open_stories(1, 0);
        char err[SS_ERRSZ];
        memset(&ref[i], 0, sizeof ref[i]);
        ck_assert_int_eq(ss_llm_run(m, &r[i], 1, &ref[i], err, sizeof err), SS_OK);
        ss_llm_close(m);
    }
}

/* Submits request i at step 4*i into a model stepping with the given budget. */
static void staggered(int no_prefix, int budget, const ss_infer_req_t *r, const ss_infer_res_t *ref)
{
    ss_llm_t *m = open_stories(no_prefix, 0);
    ss_infer_res_t res[NR];
    seen_t seen[NR];
    memset(res, 0, sizeof res);
    memset(seen, 0, sizeof seen);
    int step = 0, sub = 0, joined = 0, left = NR;
    char err[SS_ERRSZ];
    while (left > 0) {
        while (sub < NR && step >= 4 * sub) {
            joined += ss_llm_decoding(m) > 0; /* joins a batch that is decoding */
            seen[sub].clock = &step;
            ck_assert_int_eq(ss_llm_submit(m, &r[sub], &res[sub], on_done, &seen[sub], err, sizeof err), SS_OK);
            sub++;
        }
        ck_assert_int_eq(ss_llm_step(m, budget, err, sizeof err), SS_OK);
        step++;
        left = 0;
        for (int i = 0; i < sub; i++)
            left += !seen[i].calls;
        left += NR - sub;
        ck_assert_int_lt(step, 2000);
    }
    ck_assert_int_ge(joined, 4);
    ck_assert_int_eq(ss_llm_inflight(m), 0);
    for (int i = 0; i < NR; i++) {
        ck_assert_int_eq(seen[i].calls, 1);
        ck_assert_int_eq(seen[i].rc, SS_OK);
        assert_same(&r[i], &res[i], &ref[i], i);
        ss_infer_res_clear(&res[i]);
    }
    /* the short CHOOSE submitted at step 20 did not wait for the 60-token GENERATE */
    ck_assert_int_lt(seen[5].step, seen[0].step);
    ss_llm_close(m);
}

START_TEST(test_staggered_equals_alone)
{
    ss_infer_req_t r[NR];
    ss_infer_res_t ref[NR];
    make_reqs(r);
    run_alone(r, ref);
    staggered(0, 24, r, ref); /* prefix cache on, prompts prefilled 24 tokens a step */
    staggered(1, 0, r, ref);  /* no prefix cache, default budget (ubatch) */
    /* the whole batch through ss_llm_run (the same machinery, no budget) too */
    ss_llm_t *m = open_stories(0, 37);
    ss_infer_res_t all[NR];
    memset(all, 0, sizeof all);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_run(m, r, NR, all, err, sizeof err), SS_OK);
    for (int i = 0; i < NR; i++) {
        assert_same(&r[i], &all[i], &ref[i], i);
        ss_infer_res_clear(&all[i]);
        ss_infer_res_clear(&ref[i]);
    }
    ss_llm_close(m);
}
END_TEST

START_TEST(test_short_joins_long_generate)
{
    ss_llm_t *m = open_stories(0, 0);
    ss_infer_req_t lng = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 150};
    ss_infer_req_t sht = {.kind = SS_INFER_CHOOSE, .prompt = "Lily was", .nchoices = 3, .choices = ch3};
    ss_infer_res_t rl, rs, al, as;
    memset(&rl, 0, sizeof rl);
    memset(&rs, 0, sizeof rs);
    memset(&al, 0, sizeof al);
    memset(&as, 0, sizeof as);
    seen_t sl = {0}, ss = {0};
    int step = 0;
    sl.clock = ss.clock = &step;
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_submit(m, &lng, &rl, on_done, &sl, err, sizeof err), SS_OK);
    for (; step < 10; step++)
        ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_decoding(m), 1);
    ck_assert_int_eq(ss_llm_submit(m, &sht, &rs, on_done, &ss, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_inflight(m), 2);
    while (!ss.calls) {
        ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK);
        step++;
    }
    ck_assert_int_eq(ss.step, 10); /* answered in the first step after it arrived */
    ck_assert_int_eq(sl.calls, 0); /* while the long one is still decoding */
    ck_assert_int_eq(ss_llm_decoding(m), 1);
    while (!sl.calls) {
        ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK);
        step++;
    }
    ck_assert_int_eq(rl.gen_tokens, 150);
    ck_assert_int_eq(sl.step, 149); /* one token a step, the first with the prompt */
    /* both exactly as alone */
    ss_llm_t *m2 = open_stories(1, 0);
    ck_assert_int_eq(ss_llm_run(m2, &lng, 1, &al, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_run(m2, &sht, 1, &as, err, sizeof err), SS_OK);
    assert_same(&lng, &rl, &al, 0);
    assert_same(&sht, &rs, &as, 1);
    ss_infer_res_clear(&rl);
    ss_infer_res_clear(&rs);
    ss_infer_res_clear(&al);
    ss_infer_res_clear(&as);
    ss_llm_close(m2);
    ss_llm_close(m);
}
END_TEST

START_TEST(test_budget_bounds_steps)
{
    ss_llm_t *m = open_stories(1, 0);
    ss_infer_req_t r[3];
    ss_infer_res_t res[3];
    seen_t seen[3];
    memset(res, 0, sizeof res);
    memset(seen, 0, sizeof seen);
    char err[SS_ERRSZ];
    for (int i = 0; i < 3; i++) {
        r[i] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = LONGP, .max_tokens = 5};
        ck_assert_int_eq(ss_llm_submit(m, &r[i], &res[i], on_done, &seen[i], err, sizeof err), SS_OK);
    }
    int np = res[0].prompt_tokens, steps = 0, maxdec = 0;
    ck_assert_int_gt(np, 64);
    while (ss_llm_inflight(m)) {
        ss_llm_stats_t a, b;
        int dec = ss_llm_decoding(m);
        maxdec = SS_MAX(maxdec, dec);
        ss_llm_stats(m, &a);
        ck_assert_int_eq(ss_llm_step(m, 32, err, sizeof err), SS_OK);
        ss_llm_stats(m, &b);
        ck_assert_int_le(b.tokens_computed - a.tokens_computed, 32 + dec); /* prefill within the budget */
        steps++;
    }
    ck_assert_int_ge(steps, 3 * np / 32); /* the prompts were chunked */
    ck_assert_int_ge(maxdec, 1);          /* the first decoded while the others prefilled */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(seen[i].calls, 1);
        ck_assert_str_eq(res[i].text, res[0].text);
    }
    for (int i = 0; i < 3; i++)
        ss_infer_res_clear(&res[i]);
    ss_llm_close(m);
}
END_TEST

START_TEST(test_failures_and_close)
{
    ss_llm_t *m = open_stories(0, 0);
    ss_infer_req_t bad = {.kind = SS_INFER_CHOOSE, .prompt = "x", .nchoices = 0};
    ss_infer_req_t gen = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 100};
    ss_infer_res_t rb, rg;
    memset(&rb, 0, sizeof rb);
    memset(&rg, 0, sizeof rg);
    seen_t sb = {0}, sg = {0};
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK); /* nothing in flight */
    ck_assert_int_eq(ss_llm_submit(m, &bad, &rb, on_done, &sb, err, sizeof err), SS_OK);
    ck_assert_int_eq(sb.calls, 0); /* never called from submit */
    ck_assert_int_eq(ss_llm_submit(m, &gen, &rg, on_done, &sg, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK);
    ck_assert_int_eq(sb.calls, 1);
    ck_assert_int_eq(sb.rc, SS_OK); /* the request's own failure, not the step's */
    ck_assert_int_eq(rb.status, SS_ERR_INVALID);
    ck_assert_ptr_nonnull(rb.error);
    ck_assert_int_eq(sg.calls, 0);
    ss_llm_close(m); /* in flight: completed with an error */
    ck_assert_int_eq(sg.calls, 1);
    ck_assert_int_eq(sg.rc, SS_ERR_INTERNAL);
    ck_assert_int_eq(rg.status, SS_ERR_INTERNAL);
    ck_assert_ptr_nonnull(strstr(rg.error, "closed"));
    ss_infer_res_clear(&rb);
    ss_infer_res_clear(&rg);
}
END_TEST

/* a callback that submits the next request of a chain */
typedef struct chain {
    ss_llm_t *m;
    ss_infer_req_t req[3];
    ss_infer_res_t res[3];
    int done;
} chain_t;

static void on_chain(void *ctx, ss_infer_res_t *res, int rc)
{
    chain_t *c = ctx;
    ck_assert_int_eq(rc, SS_OK);
    ck_assert_ptr_eq(res, &c->res[c->done]);
    if (++c->done < 3) {
        char err[SS_ERRSZ];
        ck_assert_int_eq(ss_llm_submit(c->m, &c->req[c->done], &c->res[c->done], on_chain, c, err, sizeof err),
                         SS_OK);
    }
}

START_TEST(test_callback_submits)
{
    ss_llm_t *m = open_stories(0, 0);
    chain_t c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.req[0] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = "The dog was", .nchoices = 2, .choices = yesno};
    c.req[1] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "Lily", .max_tokens = 5};
    c.req[2] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = "x", .nchoices = 0}; /* fails on its own */
    char err[SS_ERRSZ];
    ss_infer_req_t other = {.kind = SS_INFER_GENERATE, .prompt = "Tom", .max_tokens = 12};
    ss_infer_res_t ro, alone;
    memset(&ro, 0, sizeof ro);
    memset(&alone, 0, sizeof alone);
    ck_assert_int_eq(ss_llm_submit(m, &other, &ro, NULL, NULL, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_submit(m, &c.req[0], &c.res[0], on_chain, &c, err, sizeof err), SS_OK);
    for (int i = 0; i < 100 && ss_llm_inflight(m); i++)
        ck_assert_int_eq(ss_llm_step(m, 0, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_llm_inflight(m), 0);
    ck_assert_int_eq(c.done, 3);
    ck_assert_int_eq(c.res[1].gen_tokens, 5);
    ck_assert_int_eq(c.res[2].status, SS_ERR_INVALID);
    ck_assert_int_eq(ss_llm_run(m, &other, 1, &alone, err, sizeof err), SS_OK);
    ck_assert_str_eq(ro.text, alone.text);
    for (int i = 0; i < 3; i++)
        ss_infer_res_clear(&c.res[i]);
    ss_infer_res_clear(&ro);
    ss_infer_res_clear(&alone);
    ss_llm_close(m);
}
END_TEST

Suite *check_llm_sched_suite(void)
{
    Suite *s = suite_create("llm_sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_staggered_equals_alone);
    tcase_add_test(tc, test_short_joins_long_generate);
    tcase_add_test(tc, test_budget_bounds_steps);
    tcase_add_test(tc, test_failures_and_close);
    tcase_add_test(tc, test_callback_submits);
    suite_add_tcase(s, tc);
    return s;
}
