/*
 * check_dispatch.c — tests of the inference dispatcher and the result cache:
 * canonical cache keys, batching into max_batch chunks, grouping by shared prefix,
 * deduplication inside a batch and against requests in flight, the persistent cache
 * answering after a reopen, and crash safety (results stored before a crash are not
 * recomputed). The mechanics tests count backend calls, so they use a small counting
 * backend defined here (test names say "counting"); its answers are a deterministic
 * function of the request. The dispatcher over the real model is in the *_local tests.
 */
#include "ss_cache.h"
#include "ss_dispatch.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the counting test backend ---- */

typedef struct counting {
    int calls;          /* run() invocations */
    int requests;       /* requests received */
    int sizes[64];      /* size of each run() batch */
    int switches;       /* prefix changes along the stream of requests received */
    char last[16];      /* prefix of the last request received */
    int sleep_ms;       /* delay per run() */
    int hold;           /* run() waits while set (the test clears it; atomic access) */
    int crash_on_call;  /* _exit(3) when this call number (1-based) starts; 0 = never */
    const char *fail_prompt; /* requests with this prompt fail individually ... */
    int fail_code;      /* ... with this code (0: SS_ERR_MODEL) */
    int fail_batch;     /* run() returns an error */
    int fail_calls;     /* the first fail_calls run() calls return an error */
    int running, max_running; /* run() calls in progress now / at most at once */
    int busy_calls;     /* the first busy_calls calls answer every request "busy" (HTTP 429) ... */
    int retry_after_ms; /* ... with this Retry-After */
    int64_t call_ns[64];/* when each call started */
    int canceled;       /* cancel() was called */
    pthread_mutex_t mu;
} counting_t;

static uint64_t h(const char *s) { return ss_hash64(s, strlen(s), 7); }

static void answer(const ss_infer_req_t *q, ss_infer_res_t *r)
{
    r->status = SS_OK;
    r->prompt_tokens = (int)strlen(q->prompt);
    switch (q->kind) {
    case SS_INFER_CHOOSE: {
        r->nprobs = q->nchoices;
        r->probs = calloc((size_t)q->nchoices, sizeof(float));
        float sum = 0;
        for (int i = 0; i < q->nchoices; i++) sum += r->probs[i] = 1.0f + (float)((h(q->prompt) >> i) & 7);
        for (int i = 0; i < q->nchoices; i++) r->probs[i] /= sum;
        break;
    }
    case SS_INFER_GENERATE:
        r->text = ss_sprintf("gen(%s,%d)", q->prompt, q->max_tokens);
        r->gen_tokens = q->max_tokens;
        break;
    case SS_INFER_SCORE:
        r->score = q->score_min + (double)(h(q->prompt) % 1000) / 1000.0 * (q->score_max - q->score_min);
        break;
    case SS_INFER_EMBED:
        r->dim = 4;
        r->emb = calloc(4, sizeof(float));
        for (int i = 0; i < 4; i++) r->emb[i] = (float)((h(q->prompt) >> (8 * i)) & 255);
        break;
    }
}

static int counting_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
                        char *err, size_t errsz)
{
    counting_t *c = b->impl;
    pthread_mutex_lock(&c->mu);
    int call = ++c->calls;
    if (call <= 64) {
        c->sizes[call - 1] = n;
        c->call_ns[call - 1] = ss_now_ns();
    }
    c->requests += n;
    for (int i = 0; i < n; i++) {
        char pf[16];
        snprintf(pf, sizeof pf, "%.*s", (int)SS_MIN(reqs[i].prefix_len, 15), reqs[i].prompt);
        if (c->requests - n + i > 0 && strcmp(pf, c->last)) c->switches++;
        memcpy(c->last, pf, sizeof pf);
    }
    c->running++;
    c->max_running = SS_MAX(c->max_running, c->running);
    pthread_mutex_unlock(&c->mu);
    if (c->crash_on_call == call) _exit(3);
    if (c->sleep_ms) usleep((useconds_t)c->sleep_ms * 1000);
    while (__atomic_load_n(&c->hold, __ATOMIC_ACQUIRE)) usleep(1000);
    pthread_mutex_lock(&c->mu);
    c->running--;
    pthread_mutex_unlock(&c->mu);
    if (c->fail_batch || call <= c->fail_calls)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "counting backend: told to fail");
    for (int i = 0; i < n && call <= c->busy_calls; i++) {
        ss_infer_res_fail(&res[i], SS_ERR_BUSY, "counting backend: HTTP 429");
        res[i].retry_after_ms = c->retry_after_ms;
    }
    for (int i = 0; i < n && call > c->busy_calls; i++) {
        if (c->fail_prompt && !strcmp(reqs[i].prompt, c->fail_prompt)) {
            res[i].status = c->fail_code ? c->fail_code : SS_ERR_MODEL;
            res[i].error = ss_strdup("counting backend: bad prompt");
        } else {
            answer(&reqs[i], &res[i]);
        }
    }
    return SS_OK;
}

static void counting_destroy(ss_infer_backend_t *b)
{
    if (!b) return;
    free(b->model_id);
    free(b);
}

/* Ends a held call at once, as a backend's cancel does. */
static void counting_cancel(ss_infer_backend_t *b)
{
    counting_t *c = b->impl;
    __atomic_store_n(&c->canceled, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&c->hold, 0, __ATOMIC_RELEASE);
}

static ss_infer_backend_t *counting_new(counting_t *c, const char *id)
{
    ss_infer_backend_t *b = calloc(1, sizeof *b);
    b->kind = "counting";
    b->model_id = ss_strdup(id);
    b->impl = c;
    b->run = counting_run;
    b->destroy = counting_destroy;
    b->cancel = counting_cancel;
    pthread_mutex_init(&c->mu, NULL);
    return b;
}

static ss_dispatch_t *open_disp(const char *cache, int max_batch, counting_t *c)
{
    ss_dispatch_opts_t o = {cache, max_batch, 0};
    ss_dispatch_t *d = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_dispatch_open(&o, &d, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(ss_dispatch_add_model(d, "m", counting_new(c, "counting:v1"), 0, err, sizeof err), SS_OK);
    return d;
}

static char *cache_file(void)
{
    char *dir = tu_tmpdir();
    char *p = ss_sprintf("%s/cache.db", dir);
    free(dir);
    return p;
}

/* n mixed requests; prompts[i] must outlive the requests. */
static const char *YESNO[] = {" yes", " no"};
static void mkreqs(ss_infer_req_t *q, char (*prompts)[64], int n, int distinct)
{
    for (int i = 0; i < n; i++) {
        snprintf(prompts[i], 64, "%s: item %d", (i % 2) ? "PFX-B" : "PFX-A", i % distinct);
        memset(&q[i], 0, sizeof q[i]);
        q[i].prompt = prompts[i];
        q[i].prefix_len = 5;
        q[i].kind = (ss_infer_kind_t)(i % 4);
        q[i].nchoices = 2;
        q[i].choices = YESNO;
        q[i].max_tokens = 5;
        q[i].score_min = 1;
        q[i].score_max = 10;
    }
}

static void check_answers(const ss_infer_req_t *q, const ss_infer_res_t *r, int n, int cached)
{
    for (int i = 0; i < n; i++) {
        ss_infer_res_t want = {0};
        answer(&q[i], &want);
        ck_assert_int_eq(r[i].status, SS_OK);
        if (cached >= 0) ck_assert_int_eq(r[i].cached, cached);
        ck_assert_int_eq(r[i].nprobs, want.nprobs);
        for (int j = 0; j < want.nprobs; j++) ck_assert_float_eq(r[i].probs[j], want.probs[j]);
        if (want.text) ck_assert_str_eq(r[i].text, want.text);
        ck_assert_double_eq(r[i].score, want.score);
        ck_assert_int_eq(r[i].dim, want.dim);
        for (int j = 0; j < want.dim; j++) ck_assert_float_eq(r[i].emb[j], want.emb[j]);
        ck_assert_int_eq(r[i].prompt_tokens, want.prompt_tokens);
        ss_infer_res_clear(&want);
    }
}

static void clear_all(ss_infer_res_t *r, int n)
{
    for (int i = 0; i < n; i++) ss_infer_res_clear(&r[i]);
}

START_TEST(test_key_canonical)
{
    ss_infer_req_t a = {.kind = SS_INFER_GENERATE, .prompt = "p", .max_tokens = 8};
    ss_infer_req_t b = a;
    char ka[33], kb[33];
    ss_infer_key("m1", &a, ka);
    b.seed = 99; /* greedy: the seed does not change the answer, so not the key */
    ss_infer_key("m1", &b, kb);
    ck_assert_str_eq(ka, kb);
    b.temperature = 0.5f;
    ss_infer_key("m1", &b, kb);
    ck_assert_str_ne(ka, kb);
    b = a;
    b.top_logprobs = 5; /* asking for logprobs changes what is returned */
    ss_infer_key("m1", &b, kb);
    ck_assert_str_ne(ka, kb);
    struct { const char *field; ss_infer_req_t r; const char *model; } diff[] = {
        {"model", a, "m2"},
        {"prompt", {.kind = SS_INFER_GENERATE, .prompt = "q", .max_tokens = 8}, "m1"},
        {"max_tokens", {.kind = SS_INFER_GENERATE, .prompt = "p", .max_tokens = 9}, "m1"},
        {"stop", {.kind = SS_INFER_GENERATE, .prompt = "p", .max_tokens = 8, .stop = ""}, "m1"},
        {"kind", {.kind = SS_INFER_EMBED, .prompt = "p"}, "m1"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(diff); i++) {
        ss_infer_key(diff[i].model, &diff[i].r, kb);
        ck_assert_msg(strcmp(ka, kb) != 0, "key ignores %s", diff[i].field);
    }
    /* choices are length-prefixed: {"ab","c"} and {"a","bc"} differ */
    const char *c1[] = {"ab", "c"}, *c2[] = {"a", "bc"};
    ss_infer_req_t x = {.kind = SS_INFER_CHOOSE, .prompt = "p", .nchoices = 2, .choices = c1};
    ss_infer_req_t y = x;
    y.choices = c2;
    ss_infer_key("m", &x, ka);
    ss_infer_key("m", &y, kb);
    ck_assert_str_ne(ka, kb);
    ss_infer_req_t s1 = {.kind = SS_INFER_SCORE, .prompt = "p", .score_min = 1, .score_max = 10};
    ss_infer_req_t s2 = s1;
    s2.score_max = 5;
    ss_infer_key("m", &s1, ka);
    ss_infer_key("m", &s2, kb);
    ck_assert_str_ne(ka, kb);
}
END_TEST

START_TEST(test_counting_batches_dedup_order)
{
    counting_t c = {0};
    ss_dispatch_t *d = open_disp(NULL, 4, &c);
    enum { N = 24, DISTINCT = 10 };
    ss_infer_req_t q[N];
    char p[N][64];
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    mkreqs(q, p, N, DISTINCT);
    ss_infer_stats_t acct = {0};
    char err[SS_ERRSZ];
    ck_assert_msg(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err) == SS_OK, "%s", err);
    check_answers(q, r, N, 0);
    /* i and i+20 share prompt and kind (i%4 == (i+20)%4, i%10 == (i+20)%10): 4 duplicates */
    ck_assert_int_eq(c.requests, N - 4);
    ck_assert_int_eq(acct.calls, N - 4);
    ck_assert_int_eq(acct.requests, N);
    ck_assert_int_eq(acct.cache_hits, 0);
    for (int i = 0; i < c.calls; i++) ck_assert_int_le(c.sizes[i], 4);
    ck_assert_int_eq(c.calls, 5); /* 20 distinct requests in full chunks of 4 */
    ck_assert_int_eq(c.switches, 1); /* the two prefix groups (interleaved in q) travel apart */
    ss_infer_stats_t tot;
    ss_dispatch_totals(d, &tot);
    ck_assert_int_eq(tot.requests, N);
    ck_assert_int_eq(tot.calls, N - 4);
    ck_assert_int_gt(tot.prompt_tokens, 0);
    ck_assert_int_gt(acct.ns, 0);
    clear_all(r, N);
    ss_dispatch_close(d);
}
END_TEST

START_TEST(test_counting_large_batch)
{
    char *path = cache_file();
    counting_t c = {0};
    ss_dispatch_t *d = open_disp(path, 64, &c);
    enum { N = 3000, DISTINCT = 1000 };
    ss_infer_req_t *q = calloc(N, sizeof *q);
    char (*p)[64] = calloc(N, sizeof *p);
    ss_infer_res_t *r = calloc(N, sizeof *r);
    mkreqs(q, p, N, DISTINCT);
    char err[SS_ERRSZ];
    ss_infer_stats_t acct = {0};
    int64_t t0 = ss_now_ns();
    ck_assert_msg(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err) == SS_OK, "%s", err);
    int64_t t1 = ss_now_ns();
    check_answers(q, r, N, 0);
    /* i % 1000 decides parity and kind too: 1000 distinct requests */
    ck_assert_int_eq(acct.calls, DISTINCT);
    ck_assert_int_eq(c.calls, (DISTINCT + 63) / 64);
    clear_all(r, N);
    memset(r, 0, N * sizeof *r);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err), SS_OK);
    int64_t t2 = ss_now_ns();
    ck_assert_int_eq(acct.cache_hits, DISTINCT);
    printf("dispatch: %d requests, %d computed + stored in %.1f ms; from cache in %.1f ms\n", N, DISTINCT,
           (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
    clear_all(r, N);
    free(q);
    free(p);
    free(r);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

START_TEST(test_counting_cache_reopen)
{
    char *path = cache_file();
    enum { N = 12 };
    ss_infer_req_t q[N];
    char p[N][64];
    ss_infer_res_t r[N];
    mkreqs(q, p, N, N);
    char err[SS_ERRSZ];
    counting_t c1 = {0};
    ss_dispatch_t *d = open_disp(path, 5, &c1);
    memset(r, 0, sizeof r);
    ck_assert_msg(ss_dispatch_run(d, "m", NULL, q, N, r, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(c1.requests, N);
    clear_all(r, N);
    ss_dispatch_close(d);

    counting_t c2 = {0}; /* a new process would see only the file */
    d = open_disp(path, 5, &c2);
    memset(r, 0, sizeof r);
    ss_infer_stats_t acct = {0};
    ck_assert_msg(ss_dispatch_run(d, "m", &acct, q, N, r, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(c2.calls, 0);
    ck_assert_int_eq(acct.cache_hits, N);
    ck_assert_int_eq(acct.calls, 0);
    check_answers(q, r, N, 1);
    clear_all(r, N);
    ss_dispatch_close(d);

    /* a different model identity does not reuse those answers */
    counting_t c3 = {0};
    ss_dispatch_opts_t o = {path, 5, 0};
    ck_assert_int_eq(ss_dispatch_open(&o, &d, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_dispatch_add_model(d, "m", counting_new(&c3, "counting:v2"), 1, err, sizeof err), SS_OK);
    memset(r, 0, sizeof r);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_OK);
    ck_assert_int_eq(c3.requests, N);
    clear_all(r, N);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

START_TEST(test_counting_crash_safety)
{
    char *path = cache_file();
    enum { N = 10 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    for (int i = 0; i < N; i++) q[i].prefix_len = 0; /* one group: chunks follow request order */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the "engine": dies while the third chunk is in the backend */
        counting_t c = {.crash_on_call = 3};
        ss_dispatch_t *d = open_disp(path, 3, &c);
        ss_infer_res_t r[N];
        memset(r, 0, sizeof r);
        char err[SS_ERRSZ];
        ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err);
        _exit(0); /* not reached */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    counting_t c = {0};
    ss_dispatch_t *d = open_disp(path, 3, &c);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    ss_infer_stats_t acct = {0};
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err), SS_OK);
    ck_assert_int_eq(acct.cache_hits, 6); /* the two chunks that returned before the crash */
    ck_assert_int_eq(c.requests, N - 6);
    for (int i = 0; i < N; i++) ck_assert_int_eq(r[i].cached, i < 6);
    check_answers(q, r, N, -1);
    clear_all(r, N);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

typedef struct thr {
    ss_dispatch_t *d;
    const ss_infer_req_t *q;
    int n;
    ss_infer_res_t *r;
    int rc;
} thr_t;

static void *thr_run(void *arg)
{
    thr_t *t = arg;
    char err[SS_ERRSZ];
    t->rc = ss_dispatch_run(t->d, NULL, NULL, t->q, t->n, t->r, err, sizeof err);
    return NULL;
}

START_TEST(test_counting_inflight_dedup)
{
    counting_t c = {.hold = 1};
    ss_dispatch_t *d = open_disp(NULL, 8, &c);
    enum { N = 6, T = 4 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[T][N];
    memset(r, 0, sizeof r);
    thr_t t[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        t[i] = (thr_t){d, q, N, r[i], -1};
        pthread_create(&th[i], NULL, thr_run, &t[i]);
    }
    usleep(500 * 1000); /* the backend holds the first caller's batch while the others arrive */
    __atomic_store_n(&c.hold, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(t[i].rc, SS_OK);
        check_answers(q, r[i], N, 0);
        clear_all(r[i], N);
    }
    ck_assert_int_eq(c.requests, N); /* every request computed once across the 4 callers */
    ss_infer_stats_t tot;
    ss_dispatch_totals(d, &tot);
    ck_assert_int_eq(tot.requests, N * T);
    ck_assert_int_eq(tot.calls, N);
    ss_dispatch_close(d);
}
END_TEST

START_TEST(test_counting_failures_not_cached)
{
    char *path = cache_file();
    counting_t c = {.fail_prompt = "PFX-B: item 1"};
    ss_dispatch_t *d = open_disp(path, 8, &c);
    enum { N = 4 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    char err[SS_ERRSZ];
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_MODEL);
    ck_assert_msg(strstr(err, "request 1") && strstr(err, "bad prompt"), "%s", err);
    ck_assert_int_eq(r[0].status, SS_OK);
    ck_assert_int_eq(r[1].status, SS_ERR_MODEL);
    clear_all(r, N);
    c.fail_prompt = NULL;
    int before = c.requests;
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_OK);
    ck_assert_int_eq(c.requests - before, 1); /* only the failed one is retried */
    clear_all(r, N);
    /* a whole-batch failure reaches every request */
    c.fail_batch = 1;
    ss_infer_req_t one = {.kind = SS_INFER_GENERATE, .prompt = "new", .max_tokens = 1};
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, &one, 1, r, err, sizeof err), SS_ERR_MODEL);
    ck_assert_msg(strstr(err, "told to fail") != NULL, "%s", err);
    ck_assert_str_eq(r[0].error, "counting backend: told to fail");
    ss_infer_res_clear(&r[0]);
    ck_assert_int_eq(ss_dispatch_run(d, "nope", NULL, &one, 1, r, err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_msg(strstr(err, "nope") != NULL, "%s", err);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

/* A failure retrying cannot mend (SS_ERR_INVALID: e.g. max_tokens too small for a schema) is the
 * request's result even for a non-blocking caller: not retried, and asked again it fails at once
 * without a call, until the model is replaced. A transient one (SS_ERR_HTTP) is retried. */
START_TEST(test_final_failures)
{
    char *path = cache_file();
    counting_t c = {.fail_prompt = "PFX-B: item 1", .fail_code = SS_ERR_INVALID};
    ss_dispatch_t *d = open_disp(path, 8, &c);
    char err[SS_ERRSZ];
    enum { N = 4 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    ss_dispatch_wg_t *wg = NULL;
    ck_assert_int_eq(ss_dispatch_wg_new(d, &wg, err, sizeof err), SS_OK);
    ss_dispatch_bind(wg);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, N);
    ss_dispatch_wg_wait(wg, N, 10000);
    ss_dispatch_wg_status_t ws;
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.outstanding, 0); /* the failed one is done too: no backoff, no retry */
    ss_dispatch_wg_rearm(wg);
    ck_assert_int_eq(c.requests, N);
    ss_dispatch_model_status_t ms;
    ck_assert_int_eq(ss_dispatch_model_status(d, "m", &ms), SS_OK);
    ck_assert_int_eq(ms.failing, 0); /* the model is fine: this request is not */
    ck_assert_int_eq(ms.queued, 0);
    /* asked again (the pipeline's next attempt): the failure at once, the others from the cache */
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "request 1") && strstr(err, "item 1") && strstr(err, "bad prompt"), "%s", err);
    ck_assert_int_eq(r[0].status, SS_OK);
    ck_assert_int_eq(r[1].status, SS_ERR_INVALID);
    clear_all(r, N);
    c.fail_prompt = NULL; /* the backend would answer now, but the request is not sent again */
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_INVALID);
    clear_all(r, N);
    ck_assert_int_eq(c.requests, N);
    /* the model created again: the request is tried again */
    counting_t c2 = {0};
    ck_assert_int_eq(ss_dispatch_replace_model(d, "m", counting_new(&c2, "counting:v1"), err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, N);
    ss_dispatch_wg_wait(wg, 1, 10000);
    ss_dispatch_wg_rearm(wg);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_OK);
    check_answers(q, r, N, -1);
    clear_all(r, N);
    ck_assert_int_eq(c2.requests, 1);
    /* a transient failure (HTTP 5xx, connection refused) keeps being retried with backoff */
    c2.fail_prompt = "PFX-A: item 9";
    c2.fail_code = SS_ERR_HTTP;
    ss_infer_req_t t = {.kind = SS_INFER_GENERATE, .prompt = "PFX-A: item 9", .max_tokens = 2};
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, &t, 1, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, 1);
    ss_dispatch_wg_wait(wg, 1, 1000);
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.outstanding, 1); /* still waiting: retried, not failed */
    ck_assert_int_ge(c2.requests, 3);    /* the first call and at least one retry */
    ck_assert_int_eq(ss_dispatch_model_status(d, "m", &ms), SS_OK);
    ck_assert_int_eq(ms.failing, 1);
    ss_dispatch_bind(NULL);
    ss_dispatch_close(d);
    ss_dispatch_wg_destroy(wg);
    free(path);
}
END_TEST

START_TEST(test_counting_models)
{
    counting_t a = {0}, b = {0}, x = {0};
    char err[SS_ERRSZ];
    ss_dispatch_t *d = open_disp(NULL, 8, &a);
    ck_assert_int_eq(ss_dispatch_add_model(d, "big", counting_new(&b, "counting:big"), 1, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_dispatch_add_model(d, "big", counting_new(&x, "x"), 0, err, sizeof err), SS_ERR_EXISTS);
    ck_assert(ss_dispatch_has_model(d, NULL) && ss_dispatch_has_model(d, "m") && !ss_dispatch_has_model(d, "z"));
    ss_infer_req_t q = {.kind = SS_INFER_EMBED, .prompt = "hello"};
    ss_infer_res_t r = {0};
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, &q, 1, &r, err, sizeof err), SS_OK);
    ss_infer_res_clear(&r);
    ck_assert_int_eq(ss_dispatch_run(d, "m", NULL, &q, 1, &r, err, sizeof err), SS_OK);
    ss_infer_res_clear(&r);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1); /* "big" became the default */
    ss_dispatch_close(d);
}
END_TEST


/* Non-blocking callers (the engine's pipelines): a thread bound to a wait group gets
 * SS_ERR_PENDING at once, the answers arrive in the cache, and the next attempt reads
 * them; answers the group paid for are accounted as its calls, later reads as hits. */
START_TEST(test_counting_nonblocking)
{
    char *path = cache_file();
    counting_t c = {.sleep_ms = 400};
    ss_dispatch_t *d = open_disp(path, 4, &c);
    char err[SS_ERRSZ];
    enum { N = 10 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    ss_dispatch_wg_t *wg = NULL;
    ck_assert_int_eq(ss_dispatch_wg_new(d, &wg, err, sizeof err), SS_OK);
    ss_dispatch_bind(wg);
    ss_infer_stats_t acct = {0};
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err), SS_ERR_PENDING);
    /* the backend takes 400 ms a call: returning well before that means it did not wait */
    ck_assert_msg(ss_now_ns() - t0 < 200 * 1000000LL, "a non-blocking call waited for the model");
    for (int i = 0; i < N; i++) ck_assert_int_eq(r[i].status, SS_ERR_PENDING);
    clear_all(r, N);
    ss_dispatch_wg_status_t ws;
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.registered, N);
    ck_assert_str_eq(ws.model, "m");
    /* a second attempt before the answers: still pending, nothing queued twice */
    ck_assert_int_eq(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, N);
    ss_dispatch_wg_wait(wg, N, 10000);
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.outstanding, 0);
    memset(&acct, 0, sizeof acct);
    ck_assert_msg(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err) == SS_OK, "%s", err);
    check_answers(q, r, N, -1);
    clear_all(r, N);
    ck_assert_int_eq(c.requests, N);
    ck_assert_int_eq(acct.calls, N);      /* paid by this group */
    ck_assert_int_eq(acct.cache_hits, 0);
    ss_dispatch_wg_forget(wg);
    memset(&acct, 0, sizeof acct);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, &acct, q, N, r, err, sizeof err), SS_OK);
    clear_all(r, N);
    ck_assert_int_eq(acct.calls, 0);
    ck_assert_int_eq(acct.cache_hits, N);
    ss_dispatch_bind(NULL);
    ss_dispatch_wg_destroy(wg);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

/* A failing backend: non-blocking requests are retried with backoff until they succeed;
 * meanwhile the model's status says what fails; nothing fails for the caller. */
START_TEST(test_counting_retry_backoff)
{
    char *path = cache_file();
    counting_t c = {.fail_calls = 2};
    ss_dispatch_t *d = open_disp(path, 8, &c);
    char err[SS_ERRSZ];
    enum { N = 3 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    ss_dispatch_wg_t *wg = NULL;
    ck_assert_int_eq(ss_dispatch_wg_new(d, &wg, err, sizeof err), SS_OK);
    ss_dispatch_bind(wg);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, N);
    usleep(100 * 1000); /* the first attempt has failed; the retry waits out its backoff */
    ss_dispatch_model_status_t ms;
    ck_assert_int_eq(ss_dispatch_model_status(d, "m", &ms), SS_OK);
    ck_assert_int_eq(ms.failing, 1);
    ck_assert_msg(strstr(ms.last_error, "told to fail") != NULL, "%s", ms.last_error);
    ck_assert(ms.next_retry_ms > 0 && ms.failing_since_ms > 0);
    ck_assert_int_eq(ms.queued, N);
    int64_t t0 = ss_now_ns();
    ss_dispatch_wg_wait(wg, N, 20000);
    double waited = (ss_now_ns() - t0) / 1e9;
    ss_dispatch_wg_status_t ws;
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.outstanding, 0);
    ck_assert_msg(waited > 0.1, "retried without backing off (%.3f s)", waited);
    ck_assert_int_eq(c.calls, 3);
    ck_assert_int_eq(ss_dispatch_model_status(d, "m", &ms), SS_OK);
    ck_assert_int_eq(ms.failing, 0);
    ck_assert_int_eq(ms.failures, 2 * N);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_OK);
    check_answers(q, r, N, -1);
    clear_all(r, N);
    ss_dispatch_bind(NULL);
    ss_dispatch_wg_destroy(wg);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

/* HTTP 429 with Retry-After (ss_infer_res_t.retry_after_ms): the retry waits at least that
 * long, not the 250 ms the backoff alone would wait. */
START_TEST(test_retry_after)
{
    char *path = cache_file();
    counting_t c = {.busy_calls = 1, .retry_after_ms = 1500};
    ss_dispatch_t *d = open_disp(path, 8, &c);
    char err[SS_ERRSZ];
    enum { N = 2 };
    ss_infer_req_t q[N];
    char p[N][64];
    mkreqs(q, p, N, N);
    ss_infer_res_t r[N];
    memset(r, 0, sizeof r);
    ss_dispatch_wg_t *wg = NULL;
    ck_assert_int_eq(ss_dispatch_wg_new(d, &wg, err, sizeof err), SS_OK);
    ss_dispatch_bind(wg);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, N);
    usleep(200 * 1000);
    ss_dispatch_model_status_t ms;
    ck_assert_int_eq(ss_dispatch_model_status(d, "m", &ms), SS_OK);
    ck_assert_int_eq(ms.failing, 1);
    ck_assert_int_eq(ms.last_code, SS_ERR_BUSY);
    ck_assert_msg(ms.next_retry_ms - ss_wall_ms() > 1000, "next retry in %lld ms",
                  (long long)(ms.next_retry_ms - ss_wall_ms()));
    ss_dispatch_wg_wait(wg, N, 20000);
    ss_dispatch_wg_status_t ws;
    ss_dispatch_wg_status(wg, &ws);
    ck_assert_int_eq(ws.outstanding, 0);
    ck_assert_int_eq(c.calls, 2);
    double gap = (c.call_ns[1] - c.call_ns[0]) / 1e6;
    ck_assert_msg(gap >= 1450, "retried %.0f ms after a 429 asking for 1500 ms", gap);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err), SS_OK);
    check_answers(q, r, N, -1);
    clear_all(r, N);
    ss_dispatch_bind(NULL);
    ss_dispatch_wg_destroy(wg);
    ss_dispatch_close(d);
    free(path);
}
END_TEST

/* Closing with a call in progress cancels it (ss_infer_backend_t.cancel): a call that
 * would never end on its own does not keep close waiting. */
START_TEST(test_close_cancels)
{
    char *path = cache_file();
    counting_t c = {.hold = 1};
    ss_dispatch_t *d = open_disp(path, 8, &c);
    char err[SS_ERRSZ];
    ss_infer_req_t q[1];
    char p[1][64];
    mkreqs(q, p, 1, 1);
    ss_infer_res_t r[1];
    memset(r, 0, sizeof r);
    ss_dispatch_wg_t *wg = NULL;
    ck_assert_int_eq(ss_dispatch_wg_new(d, &wg, err, sizeof err), SS_OK);
    ss_dispatch_bind(wg);
    ck_assert_int_eq(ss_dispatch_run(d, NULL, NULL, q, 1, r, err, sizeof err), SS_ERR_PENDING);
    clear_all(r, 1);
    while (!__atomic_load_n(&c.running, __ATOMIC_ACQUIRE))
        usleep(1000);
    ss_dispatch_bind(NULL);
    int64_t t0 = ss_now_ns();
    ss_dispatch_close(d);
    ck_assert_int_eq(c.canceled, 1);
    ck_assert_msg(ss_now_ns() - t0 < 2000000000LL, "close took %.1f s", (ss_now_ns() - t0) / 1e9);
    ss_dispatch_wg_destroy(wg);
    free(path);
}
END_TEST

/* Capacity: a backend that takes concurrent calls gets up to max_in_flight requests at
 * once, in several calls of at most max_batch; a backend that does not gets one call. */
START_TEST(test_counting_capacity)
{
    for (int conc = 1; conc <= 2; conc++) {
        char *path = cache_file();
        counting_t c = {.sleep_ms = 50};
        ss_dispatch_opts_t o = {path, 4, 0};
        ss_dispatch_t *d = NULL;
        char err[SS_ERRSZ];
        ck_assert_int_eq(ss_dispatch_open(&o, &d, err, sizeof err), SS_OK);
        ss_infer_backend_t *b = counting_new(&c, "counting:v1");
        b->max_concurrent = conc == 1 ? 0 : 4;
        ck_assert_int_eq(ss_dispatch_add_model(d, "m", b, 0, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_dispatch_set_capacity(d, "m", 12, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_dispatch_set_capacity(d, "zz", 12, err, sizeof err), SS_ERR_NOTFOUND);
        ck_assert_int_eq(ss_dispatch_set_capacity(d, "m", 0, err, sizeof err), SS_ERR_INVALID);
        enum { N = 24 };
        ss_infer_req_t q[N];
        char p[N][64];
        mkreqs(q, p, N, N);
        ss_infer_res_t r[N];
        memset(r, 0, sizeof r);
        ck_assert_msg(ss_dispatch_run(d, NULL, NULL, q, N, r, err, sizeof err) == SS_OK, "%s", err);
        check_answers(q, r, N, 0);
        clear_all(r, N);
        for (int i = 0; i < c.calls; i++) ck_assert_int_le(c.sizes[i], 4);
        ck_assert_int_eq(c.max_running, conc == 1 ? 1 : 3); /* 12 in flight = 3 calls of 4 */
        ss_dispatch_close(d);
        free(path);
    }
}
END_TEST

START_TEST(test_cache_roundtrip)
{
    char *path = cache_file();
    ss_cache_t *c = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_cache_open(path, &c, err, sizeof err) == SS_OK, "%s", err);
    float pr[2] = {0.25f, 0.75f}, em[3] = {1, 2, 3};
    ss_infer_res_t a = {.text = "hi", .nprobs = 2, .probs = pr, .score = 4.5, .dim = 3, .emb = em,
                        .prompt_tokens = 7, .gen_tokens = 2};
    char *tt[2] = {" a", ""};
    float tl[2] = {-0.1f, -2.5f}, gl[2] = {-0.3f, -0.4f};
    a.ntop = 2;
    a.top_tokens = tt;
    a.top_logprobs = tl;
    a.token_logprobs = gl;
    ss_infer_res_t bad = {.status = SS_ERR_MODEL, .error = "x"};
    ss_cache_entry_t e[2] = {{"k1", SS_INFER_GENERATE, &a}, {"k2", SS_INFER_CHOOSE, &bad}};
    ck_assert_int_eq(ss_cache_put(c, "mid", e, 2, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cache_count(c), 1);
    ss_infer_res_t g = {0};
    int found = 0;
    ck_assert_int_eq(ss_cache_get(c, "k2", &g, &found, err, sizeof err), SS_OK);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(ss_cache_get(c, "k1", &g, &found, err, sizeof err), SS_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(g.text, "hi");
    ck_assert_int_eq(g.nprobs, 2);
    ck_assert_float_eq(g.probs[1], 0.75f);
    ck_assert_int_eq(g.dim, 3);
    ck_assert_float_eq(g.emb[2], 3.0f);
    ck_assert_double_eq(g.score, 4.5);
    ck_assert_int_eq(g.prompt_tokens, 7);
    ck_assert_int_eq(g.cached, 1);
    ck_assert_int_eq(g.ntop, 2);
    ck_assert_str_eq(g.top_tokens[0], " a");
    ck_assert_str_eq(g.top_tokens[1], "");
    ck_assert_float_eq(g.top_logprobs[1], -2.5f);
    ck_assert_float_eq(g.token_logprobs[1], -0.4f);
    ss_infer_res_t cp;
    ck_assert_int_eq(ss_infer_res_copy(&cp, &g), SS_OK);
    ck_assert_str_eq(cp.top_tokens[0], " a");
    ss_infer_res_clear(&cp);
    ss_infer_res_clear(&g);
    ss_cache_close(c);
    ck_assert_int_eq(ss_cache_open("/nonexistent-dir/x/cache.db", &c, err, sizeof err), SS_ERR_SQLITE);
    ck_assert_msg(strstr(err, "/nonexistent-dir/x/cache.db") != NULL, "%s", err);
    free(path);
}
END_TEST

/* ---- the dispatcher over the real local engine (stories260K) ---- */

static const char *NAMES[] = {" Lily", " Tom", " Sue"};

static void local_reqs(ss_infer_req_t *q, int *n)
{
    static const char *story = "Once upon a time, there was a little girl named";
    int k = 0;
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "", .max_tokens = 12};
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = story, .prefix_len = 16, .nchoices = 3, .choices = NAMES};
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = story, .prefix_len = 16, .max_tokens = 6};
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_SCORE, .prompt = "Once upon a time, the score was", .prefix_len = 16,
                              .score_min = 1, .score_max = 10};
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = "The cat sat on the mat."};
    q[k++] = q[1]; /* duplicates */
    q[k++] = q[0];
    q[k++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "One day, Tom", .max_tokens = 8,
                              .temperature = 0.8f, .seed = 7};
    *n = k;
}

static ss_infer_backend_t *local_backend(void)
{
    char p[4096], err[SS_ERRSZ];
    ss_infer_backend_t *b = ss_backend_local_new(tu_model_path("stories260K.gguf", p, sizeof p), 1, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    return b;
}

static void same_result(const ss_infer_res_t *a, const ss_infer_res_t *b, int i)
{
    ck_assert_msg(a->status == SS_OK && b->status == SS_OK, "request %d: %s / %s", i,
                  a->error ? a->error : "", b->error ? b->error : "");
    ck_assert_msg((!a->text && !b->text) || (a->text && b->text && !strcmp(a->text, b->text)),
                  "request %d: \"%s\" vs \"%s\"", i, a->text ? a->text : "(null)", b->text ? b->text : "(null)");
    ck_assert_int_eq(a->nprobs, b->nprobs);
    for (int j = 0; j < a->nprobs; j++) ck_assert_float_eq_tol(a->probs[j], b->probs[j], 1e-4);
    ck_assert_double_eq_tol(a->score, b->score, 1e-4);
    ck_assert_int_eq(a->dim, b->dim);
    for (int j = 0; j < a->dim; j++) ck_assert_float_eq_tol(a->emb[j], b->emb[j], 1e-4);
    ck_assert_int_eq(a->gen_tokens, b->gen_tokens);
}

START_TEST(test_local_model_dispatch_and_cache)
{
    char *path = cache_file(), err[SS_ERRSZ];
    ss_infer_req_t q[16];
    int n = 0;
    local_reqs(q, &n);
    /* reference: the backend answering the whole batch directly */
    ss_infer_backend_t *ref = local_backend();
    ck_assert_ptr_nonnull(strstr(ref->model_id, "stories260K.gguf:"));
    ss_infer_res_t want[16], got[16];
    memset(want, 0, sizeof want);
    ck_assert_msg(ref->run(ref, q, n, want, err, sizeof err) == SS_OK, "%s", err);
    ref->destroy(ref);
    ck_assert_msg(strstr(want[0].text, "Once upon a time, there was a little girl") != NULL, "greedy from BOS: \"%s\"", want[0].text);
    float sum = 0;
    for (int j = 0; j < 3; j++) sum += want[1].probs[j];
    ck_assert_float_eq_tol(sum, 1.0f, 1e-4);
    ck_assert(want[3].score >= 1 && want[3].score <= 10);
    ck_assert_int_gt(want[4].dim, 0);

    for (int round = 0; round < 2; round++) {
        ss_dispatch_opts_t o = {path, 2, 0}; /* small chunks: answers must not depend on batching */
        ss_dispatch_t *d = NULL;
        ck_assert_int_eq(ss_dispatch_open(&o, &d, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_dispatch_add_model(d, "tiny", local_backend(), 0, err, sizeof err), SS_OK);
        memset(got, 0, sizeof got);
        ss_infer_stats_t acct = {0};
        ck_assert_msg(ss_dispatch_run(d, NULL, &acct, q, n, got, err, sizeof err) == SS_OK, "%s", err);
        for (int i = 0; i < n; i++) {
            same_result(&got[i], &want[i], i);
            ck_assert_int_eq(got[i].cached, round);
        }
        ck_assert_int_eq(acct.requests, n);
        ck_assert_int_eq(acct.calls, round ? 0 : n - 2); /* two duplicates folded */
        ck_assert_int_eq(acct.cache_hits, round ? n - 2 : 0);
        if (!round) ck_assert_int_gt(acct.prompt_tokens, 0);
        for (int i = 0; i < n; i++) ss_infer_res_clear(&got[i]);
        ss_dispatch_close(d);
    }
    for (int i = 0; i < n; i++) ss_infer_res_clear(&want[i]);
    free(path);
}
END_TEST

Suite *check_dispatch_suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("dispatch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_key_canonical);
    tcase_add_test(tc, test_cache_roundtrip);
    tcase_add_test(tc, test_counting_batches_dedup_order);
    tcase_add_test(tc, test_counting_cache_reopen);
    tcase_add_test(tc, test_counting_large_batch);
    tcase_add_test(tc, test_counting_crash_safety);
    tcase_add_test(tc, test_counting_inflight_dedup);
    tcase_add_test(tc, test_counting_failures_not_cached);
    tcase_add_test(tc, test_final_failures);
    tcase_add_test(tc, test_counting_models);
    tcase_add_test(tc, test_counting_nonblocking);
    tcase_add_test(tc, test_counting_retry_backoff);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_close_cancels);
    tcase_add_test(tc, test_counting_capacity);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("local"); /* the real engine, stories260K */
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, test_local_model_dispatch_and_cache);
    suite_add_tcase(s, tl);
    return s;
}
