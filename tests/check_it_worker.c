/*
 * check_it_worker.c — the inference worker over HTTP and the worker pool, with
 * real workers serving the tiny stories260K model on loopback: endpoints,
 * errors (400/404/405/413), back-pressure (429 + Retry-After), metrics, graceful
 * shutdown; continuous batching (a short request sent while a long GENERATE
 * decodes comes back first); and the pool's prefix affinity, failover when a
 * worker dies and recovery when it comes back.
 */
#include "ss_backends.h"
#include "ss_engine.h"
#include "ss_llm.h"
#include "ss_pool.h"
#include "ss_worker.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *model_path(void)
{
    static char p[1024];
    return tu_model_path("stories260K.gguf", p, sizeof p);
}

static ss_worker_t *start_worker(int port, int max_queue, int batch_wait_ms)
{
    char err[SS_ERRSZ] = "";
    ss_infer_backend_t *be = ss_backend_local_new(model_path(), 1, err, sizeof err);
    ck_assert_msg(be != NULL, "%s", err);
    ss_worker_opts_t o = {.port = port, .model_name = "stories260K", .max_queue = max_queue,
                          .batch_wait_ms = batch_wait_ms, .max_body = 4096};
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(&o, be, &w, err, sizeof err) == SS_OK, "%s", err);
    return w;
}

typedef struct http {
    long code;
    ss_buf_t body;
    char retry_after[32];
} http_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    ss_buf_append(&((http_t *)ud)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    http_t *h = ud;
    if (sz * n > 13 && !strncasecmp(p, "Retry-After:", 12))
        snprintf(h->retry_after, sizeof h->retry_after, "%.*s", (int)strcspn(p + 12, "\r\n"), p + 12);
    return sz * n;
}

/* method NULL = GET, else POST with body. */
static void http(int port, const char *path, const char *body, http_t *out)
{
    memset(out, 0, sizeof *out);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->code);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
}

START_TEST(test_endpoints_and_errors)
{
    ss_worker_t *w = start_worker(0, 16, 0);
    int port = ss_worker_port(w);
    http_t r;
    http(port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"text_completion\""));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"completion_tokens\":8"));
    ss_buf_free(&r.body);
    /* the semstream extension: exact CHOOSE probabilities */
    http(port, "/v1/completions", "{\"prompt\":\"Lily was\",\"semstream_choices\":[\" happy\",\" sad\"]}", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"semstream_probs\":["));
    ss_buf_free(&r.body);
    http(port, "/v1/embeddings", "{\"input\":[\"a dog\",\"a cat\"]}", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"index\":1"));
    ss_buf_free(&r.body);
    http(port, "/v1/models", NULL, &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"owned_by\":\"semstream\""));
    ss_buf_free(&r.body);
    http(port, "/health", NULL, &r);
    ck_assert_int_eq(r.code, 200);
    ss_buf_free(&r.body);
    /* errors say what is wrong */
    http(port, "/v1/completions", "{\"prompt\":", &r);
    ck_assert_int_eq(r.code, 400);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "invalid JSON"));
    ss_buf_free(&r.body);
    http(port, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":100000}", &r);
    ck_assert_int_eq(r.code, 400);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "max_tokens"));
    ss_buf_free(&r.body);
    http(port, "/v1/completions", "{\"max_tokens\":3}", &r);
    ck_assert_int_eq(r.code, 400);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "missing 'prompt'"));
    ss_buf_free(&r.body);
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "{\"prompt\":\"", 11);
    http(port, "/v1/completions", big, &r); /* larger than max_body = 4096 */
    ck_assert_int_eq(r.code, 413);
    ss_buf_free(&r.body);
    http(port, "/nope", NULL, &r);
    ck_assert_int_eq(r.code, 404);
    ss_buf_free(&r.body);
    http(port, "/v1/completions", NULL, &r);
    ck_assert_int_eq(r.code, 405);
    ss_buf_free(&r.body);
    http(port, "/metrics", NULL, &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "semstream_worker_requests_total 3"));
    ss_buf_free(&r.body);
    ss_worker_stop(w);
}
END_TEST

typedef struct client {
    int port;
    http_t r;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    http(c->port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0}", &c->r);
    return NULL;
}

START_TEST(test_backpressure_429)
{
    /* queue of 1 and a long batching wait: of several concurrent clients, the ones that find the
     * queue full are told to retry later; the others are answered */
    ss_worker_t *w = start_worker(0, 1, 400);
    enum { N = 6 };
    client_t cl[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        cl[i].port = ss_worker_port(w);
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (cl[i].r.code == 200)
            ok++;
        else if (cl[i].r.code == 429) {
            busy++;
            ck_assert_str_eq(cl[i].r.retry_after, " 1");
            ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&cl[i].r.body), "queue is full"));
        }
        ss_buf_free(&cl[i].r.body);
    }
    ck_assert_int_ge(ok, 1);
    ck_assert_int_ge(busy, 1);
    ck_assert_int_eq(ok + busy, N);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_pool_affinity_failover_recovery)
{
    ss_worker_t *w0 = start_worker(0, 64, 0), *w1 = start_worker(0, 64, 0);
    int p0 = ss_worker_port(w0), p1 = ss_worker_port(w1);
    char urls[128], err[SS_ERRSZ] = "";
    snprintf(urls, sizeof urls, "http://127.0.0.1:%d,http://127.0.0.1:%d", p0, p1);
    ss_infer_backend_t *pool = ss_backend_workers_new(urls, "stories260K", NULL, 5000, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
    /* 40 requests over 8 prefixes: each prefix goes to one worker, and both workers get some */
    enum { N = 40 };
    char prompts[N][96];
    ss_infer_req_t reqs[N];
    ss_infer_res_t res[N];
    memset(reqs, 0, sizeof reqs);
    memset(res, 0, sizeof res);
    for (int i = 0; i < N; i++) {
        snprintf(prompts[i], sizeof prompts[i], "Prefix number %d: once upon a time, row %d", i % 8, i);
        reqs[i].kind = SS_INFER_GENERATE;
        reqs[i].prompt = prompts[i];
        reqs[i].prefix_len = 17;
        reqs[i].max_tokens = 3;
    }
    ck_assert_msg(pool->run(pool, reqs, N, res, err, sizeof err) == SS_OK, "%s", err);
    ss_pool_worker_stats_t s0, s1;
    ss_pool_stats(pool, 0, &s0);
    ss_pool_stats(pool, 1, &s1);
    ck_assert_int_eq(s0.requests + s1.requests, N);
    ck_assert_int_gt(s0.requests, 0);
    ck_assert_int_gt(s1.requests, 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].status, SS_OK);
        ss_infer_res_clear(&res[i]);
    }
    /* the same requests again land on the same workers (affinity): counts double exactly */
    ck_assert(pool->run(pool, reqs, N, res, err, sizeof err) == SS_OK);
    ss_pool_worker_stats_t t0, t1;
    ss_pool_stats(pool, 0, &t0);
    ss_pool_stats(pool, 1, &t1);
    ck_assert_int_eq(t0.requests, 2 * s0.requests);
    ck_assert_int_eq(t1.requests, 2 * s1.requests);
    for (int i = 0; i < N; i++)
        ss_infer_res_clear(&res[i]);
    /* worker 0 dies: every request is still answered, by worker 1 */
    ss_worker_stop(w0);
    ck_assert_msg(pool->run(pool, reqs, N, res, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].status, SS_OK);
        ss_infer_res_clear(&res[i]);
    }
    ss_pool_stats(pool, 0, &t0);
    ck_assert_int_eq(t0.healthy, 0);
    ck_assert_int_ge(t0.failures, 1);
    /* it comes back on the same port: after the cooldown it is used again */
    w0 = start_worker(p0, 64, 0);
    for (int tries = 0; tries < 50; tries++) {
        usleep(100 * 1000);
        ck_assert(pool->run(pool, reqs, 8, res, err, sizeof err) == SS_OK);
        for (int i = 0; i < 8; i++)
            ss_infer_res_clear(&res[i]);
        ss_pool_stats(pool, 0, &t0);
        if (t0.healthy)
            break;
    }
    ck_assert_int_eq(t0.healthy, 1);
    pool->destroy(pool);
    ss_worker_stop(w0);
    ss_worker_stop(w1);
}
END_TEST

START_TEST(test_engine_view_on_worker_pool)
{
    /* SQL end to end: a CREATE MODEL with two worker URLs is a pool; a SEM_MAP view's rows are
     * answered by the workers, and every request reaches exactly one of them */
    ss_worker_t *w0 = start_worker(0, 64, 0), *w1 = start_worker(0, 64, 0);
    char *dir = tu_tmpdir(), db[512], sql[1024], err[SS_ERRSZ] = "";
    snprintf(db, sizeof db, "%s/s.db", dir);
    ss_engine_opts_t o = {.db_path = db, .model_path = model_path(), .max_latency_ms = 20, .catch_up = 1};
    ss_engine_t *e = NULL;
    ck_assert_msg(ss_engine_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    snprintf(sql, sizeof sql,
             "CREATE MODEL pool WITH (backend = 'openai', url = 'http://127.0.0.1:%d,http://127.0.0.1:%d',"
             " model = 'stories260K', default = true);"
             "CREATE STREAM s (id INT KEY, t TEXT);"
             "CREATE CONTINUOUS VIEW v AS SELECT id, SEM_MAP('Continue the story: {t}', max_tokens = 4) AS m FROM s;"
             "INSERT INTO s VALUES (1, 'Lily'), (2, 'Tom'), (3, 'a dog'), (4, 'the sun'), (5, 'a car'), (6, 'Max');",
             ss_worker_port(w0), ss_worker_port(w1));
    ss_buf_t out = SS_BUF_INIT;
    ck_assert_msg(ss_engine_exec(e, sql, strlen(sql), "pool.sql", &out, err, sizeof err) == SS_OK, "%s", err);
    ss_buf_reset(&out);
    const char *q = "SELECT COUNT(*) AS n FROM v;";
    ck_assert_msg(ss_engine_exec(e, q, strlen(q), "q", &out, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(strstr(ss_buf_cstr(&out), " 6"), "view rows: %s", ss_buf_cstr(&out));
    ss_buf_free(&out);
    ss_engine_close(e);
    /* the six generations went to the workers (the local model was never needed) */
    http_t r0, r1;
    http(ss_worker_port(w0), "/metrics", NULL, &r0);
    http(ss_worker_port(w1), "/metrics", NULL, &r1);
    long n0 = 0, n1 = 0;
    const char *k = "\nsemstream_worker_requests_total ";
    const char *p0 = strstr(ss_buf_cstr(&r0.body), k), *p1 = strstr(ss_buf_cstr(&r1.body), k);
    ck_assert(p0 && p1);
    n0 = atol(p0 + strlen(k)), n1 = atol(p1 + strlen(k));
    ck_assert_int_eq(n0 + n1, 6); /* one generation per row, each on one worker */
    ss_buf_free(&r0.body);
    ss_buf_free(&r1.body);
    ss_worker_stop(w0);
    ss_worker_stop(w1);
    free(dir);
}
END_TEST

/* ---- continuous batching: a short request sent during a long GENERATE returns first ---- */

typedef struct timed {
    int port;
    const char *body;
    http_t r;
    int *order, *rank; /* completion order (shared counter) and this request's place in it */
    pthread_mutex_t *mu;
    long gen_after;    /* the worker's generated tokens when this answer came back */
} timed_t;

static long metric(int port, const char *name);

static void *timed_main(void *arg)
{
    timed_t *t = arg;
    http(t->port, "/v1/completions", t->body, &t->r);
    t->gen_after = metric(t->port, "semstream_worker_generated_tokens_total");
    pthread_mutex_lock(t->mu);
    *t->rank = (*t->order)++;
    pthread_mutex_unlock(t->mu);
    return NULL;
}

static long metric(int port, const char *name)
{
    http_t r;
    http(port, "/metrics", NULL, &r);
    char k[128];
    snprintf(k, sizeof k, "\n%s ", name);
    const char *p = strstr(ss_buf_cstr(&r.body), k);
    long v = p ? atol(p + strlen(k)) : -1;
    ss_buf_free(&r.body);
    return v;
}

/* Sends a long GENERATE (3 prompts x 2000 tokens), waits until the worker runs it, sends a short
 * CHOOSE; returns the rank of the short one's answer (0 = it came back first); *gen: the tokens
 * the worker had generated (for completed jobs) when the short answer came back. */
static int short_during_long(int whole_batch, long *steps, long *gen)
{
    char err[SS_ERRSZ] = "";
    ss_infer_backend_t *be = ss_backend_local_new(model_path(), 1, err, sizeof err);
    ck_assert_msg(be != NULL, "%s", err);
    ss_worker_opts_t o = {.model_name = "stories260K", .whole_batch = whole_batch};
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(&o, be, &w, err, sizeof err) == SS_OK, "%s", err);
    int order = 0, rank[2] = {-1, -1};
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    timed_t t[2] = {
        {ss_worker_port(w),
         "{\"prompt\":[\"Once upon a time\",\"Lily and Tom\",\"The sun\"],\"max_tokens\":2000,"
         "\"temperature\":0}",
         {0}, &order, &rank[0], &mu, 0},
        {ss_worker_port(w), "{\"prompt\":\"Lily was\",\"semstream_choices\":[\" happy\",\" sad\"]}", {0}, &order,
         &rank[1], &mu, 0},
    };
    pthread_t th[2];
    pthread_create(&th[0], NULL, timed_main, &t[0]);
    for (int i = 0; i < 5000 && metric(ss_worker_port(w), "semstream_worker_running_sequences") < 3; i++)
        usleep(1000);
    ck_assert_int_eq(metric(ss_worker_port(w), "semstream_worker_running_sequences"), 3);
    pthread_create(&th[1], NULL, timed_main, &t[1]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(t[0].r.code, 200);
    ck_assert_int_eq(t[1].r.code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&t[0].r.body), "\"completion_tokens\":6000"));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&t[1].r.body), "\"semstream_probs\":["));
    *steps = metric(ss_worker_port(w), "semstream_worker_steps_total");
    *gen = t[1].gen_after;
    ck_assert_int_eq(metric(ss_worker_port(w), "semstream_worker_continuous"), !whole_batch);
    ck_assert_int_eq(metric(ss_worker_port(w), "semstream_worker_running_sequences"), 0);
    ss_buf_free(&t[0].r.body);
    ss_buf_free(&t[1].r.body);
    ss_worker_stop(w);
    return rank[1];
}

START_TEST(test_short_request_joins_running_batch)
{
    long steps = 0, gen = 0;
    /* continuous batching: the CHOOSE joins between decode steps and comes back first, while
     * the long job is still decoding (none of its 6000 tokens counted yet) */
    ck_assert_int_eq(short_during_long(0, &steps, &gen), 0);
    ck_assert_int_eq(gen, 0);
    ck_assert_int_ge(steps, 2000); /* one step per decoded token */
    /* the whole-batch mode makes it wait until the long batch has finished (what continuous
     * batching fixes) */
    short_during_long(1, &steps, &gen);
    ck_assert_int_eq(gen, 6000);
    ck_assert_int_eq(steps, 0);
}
END_TEST

typedef struct later {
    int port, delay_ms;
    ss_worker_t *w;
} later_t;

static void *start_later(void *arg)
{
    later_t *l = arg;
    usleep((useconds_t)l->delay_ms * 1000);
    l->w = start_worker(l->port, 64, 0);
    return NULL;
}

START_TEST(test_pool_waits_for_a_worker)
{
    /* the only worker is down when the batch comes and up 600 ms later: the pool retries with
     * backoff within max_wait_ms (2 s) instead of failing the batch at once */
    ss_worker_t *probe = start_worker(0, 4, 0);
    int port = ss_worker_port(probe);
    ss_worker_stop(probe); /* a port nothing listens on now */
    char url[64], err[SS_ERRSZ] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d,", port); /* the comma makes it a pool */
    ss_infer_backend_t *pool = ss_backend_workers_new(url, "stories260K", NULL, 5000, err, sizeof err);
    ck_assert_msg(pool != NULL, "%s", err);
    later_t l = {port, 600, NULL};
    pthread_t th;
    pthread_create(&th, NULL, start_later, &l);
    ss_infer_req_t q = {.kind = SS_INFER_GENERATE, .prompt = "Once", .max_tokens = 3};
    ss_infer_res_t r = {0};
    int64_t t0 = ss_now_ns();
    int rc = pool->run(pool, &q, 1, &r, err, sizeof err);
    int64_t ms = (ss_now_ns() - t0) / 1000000;
    pthread_join(th, NULL);
    ck_assert_msg(rc == SS_OK && r.status == SS_OK, "%s / %s", err, r.error ? r.error : "");
    ck_assert_int_ge(ms, 550);
    ss_infer_res_clear(&r);
    ss_worker_stop(l.w);
    /* nobody comes back: the batch fails after max_wait_ms, saying so */
    t0 = ss_now_ns();
    ck_assert_int_eq(pool->run(pool, &q, 1, &r, err, sizeof err), SS_ERR_HTTP);
    ms = (ss_now_ns() - t0) / 1000000;
    ck_assert_msg(strstr(err, "no healthy worker") && strstr(err, "waited 2000 ms"), "%s", err);
    ck_assert_int_ge(ms, 1500);
    ck_assert_int_lt(ms, 8000);
    ss_infer_res_clear(&r);
    pool->destroy(pool);
}
END_TEST

Suite *check_it_worker_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_endpoints_and_errors);
    tcase_add_test(tc, test_backpressure_429);
    tcase_add_test(tc, test_pool_affinity_failover_recovery);
    tcase_add_test(tc, test_engine_view_on_worker_pool);
    tcase_add_test(tc, test_short_request_joins_running_batch);
    tcase_add_test(tc, test_pool_waits_for_a_worker);
    suite_add_tcase(s, tc);
    return s;
}
