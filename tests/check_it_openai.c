/*
 * check_it_openai.c — integration tests of the OpenAI-compatible backend against a
 * FIXTURE HTTP server (libmicrohttpd on 127.0.0.1, random port; not a model) that
 * speaks the protocol in three modes:
 *  - legacy: /v1/completions with logprobs (object and array forms), plain
 *    completions, /v1/embeddings, no chat endpoint;
 *  - hosted: as the hosted API serves a chat model (gpt-4o-mini): chat completions
 *    only (/v1/completions answers 404 "This is a chat model"), top_logprobs at most
 *    20 (or a lower limit it is told), logprobs as content[].top_logprobs, answers
 *    without logprobs when told, a server-side request rate with 429 + Retry-After,
 *    max_tokens refused for max_completion_tokens when told;
 *  - legacy model: chat answers 404 "This is not a chat model", legacy logprobs <= 5.
 * It can also answer 500, 429, garbage, JSON without the expected fields, or slowly.
 * Tests parsing, the API choice and what the backend learns from refusals, the
 * constrained fallback, retries with backoff and jitter, rate limits, timeouts,
 * error messages, the concurrency limit, and the dispatcher + persistent cache over
 * this backend; and the real `semstream worker` against the in-process engine.
 */
#include "ss_backends.h"
#include "ss_chat.h"
#include "ss_dispatch.h"
#include "ss_gguf.h"
#include "ss_embed.h"
#include "ss_json.h"
#include "ss_llm.h"
#include "ss_worker.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the fixture server ---- */

enum { FX_LEGACY, FX_HOSTED, FX_LEGACY_MODEL };

typedef struct fixture {
    struct MHD_Daemon *d;
    int mode;           /* FX_* */
    int chat_lp_max;    /* hosted: largest top_logprobs taken (default 20) */
    int no_logprobs;    /* hosted: answers carry "logprobs": null */
    int want_mct;       /* hosted: refuses max_tokens, wants max_completion_tokens */
    int per_second;     /* hosted: requests per second before 429 (0 = no limit) */
    int64_t sec_start;
    int sec_count;
    int rejected;       /* 4xx/429 answers given */
    char last_url[64];
    char last_org[64], last_project[64];
    int port;
    char url[64];
    pthread_mutex_t mu;
    /* behaviour */
    int fail_next;      /* answer 500 to the next N requests */
    int busy_next;      /* answer 429 with Retry-After: 1 to the next N requests */
    int garbage;        /* answer a non-JSON body */
    int missing;        /* answer JSON without choices/data */
    int slow_ms;        /* sleep before answering */
    /* observations */
    int requests;       /* POSTs */
    int gets;           /* other requests */
    int concurrent, max_concurrent;
    int64_t t_ns[32];   /* arrival time of each request */
    char last_body[2048];
    char last_auth[128];
} fixture_t;

static fixture_t F;

/* The prompts of a request body: "field" as a string or an array of strings. */
static int body_prompts(const ss_json_t *root, const char *field, const char **out, int cap)
{
    const ss_json_t *v = ss_json_get(root, field);
    if (ss_json_str(v)) {
        out[0] = ss_json_str(v);
        return 1;
    }
    int n = 0;
    for (size_t i = 0; v && v->t == SS_JSON_ARRAY && i < v->u.arr.n && n < cap; i++)
        if (ss_json_str(&v->u.arr.items[i])) out[n++] = ss_json_str(&v->u.arr.items[i]);
    return n;
}

/* One choice object for prompt number k; adds its token counts to *pt, *ct. */
static void choice_json(ss_buf_t *b, const ss_json_t *root, const char *prompt, int k, int *pt, int *ct)
{
    const ss_json_t *lp = ss_json_get(root, "logprobs"), *mt = ss_json_get(root, "max_tokens");
    int max = mt && mt->t == SS_JSON_INT ? (int)mt->u.i : 0;
    ss_buf_printf(b, "{\"index\":%d,", k);
    if (strstr(prompt, "GENLP")) { /* generation with top logprobs, as `semstream worker` answers */
        ss_buf_printf(b, "\"text\":\" no yes\",\"logprobs\":{\"tokens\":[\" no\",\" yes\"],"
                      "\"token_logprobs\":[%.9g,-0.5],\"top_logprobs\":[{\" yes\":%.9g,\" no\":%.9g}]}}",
                      log(0.3), log(0.6), log(0.3));
        *pt += 4, *ct += 2;
    } else if (!lp) {
        ss_buf_puts(b, "\"text\":");
        char *t = ss_sprintf("[%s]\xc3\xa9", prompt);
        ss_buf_put_json_str(b, t, strlen(t));
        free(t);
        ss_buf_puts(b, ",\"finish_reason\":\"length\"}");
        *pt += (int)strlen(prompt) / 4, *ct += max;
    } else if (strstr(prompt, "Score")) {
        ss_buf_printf(b, "\"text\":\"7\",\"logprobs\":{\"tokens\":[\"7\"],\"token_logprobs\":[%.9g],"
                      "\"top_logprobs\":[{\"7\":%.9g,\" 8\":%.9g,\"3\":%.9g,\"x\":%.9g}]}}",
                      log(0.5), log(0.5), log(0.3), log(0.2), log(0.01));
        *pt += 9, *ct += 1;
    } else if (strstr(prompt, "ARRAYFMT")) { /* the newer array form of top_logprobs */
        ss_buf_printf(b, "\"text\":\" no\",\"logprobs\":{\"top_logprobs\":[[{\"token\":\" no\",\"logprob\":%.9g},"
                      "{\"token\":\" yes\",\"logprob\":%.9g}]]}}", log(0.75), log(0.25));
    } else {
        ss_buf_printf(b, "\"text\":\" yes\",\"logprobs\":{\"tokens\":[\" yes\"],"
                      "\"top_logprobs\":[{\" yes\":%.9g,\" no\":%.9g,\" maybe\":%.9g}]}}",
                      log(0.6), log(0.3), log(0.05));
        *pt += 5, *ct += 1;
    }
}

/* Answers /v1/completions or /v1/embeddings for one prompt or an array of them; with
 * several, the answers come back in reverse order (their "index" says which is which). */
static char *answer_body(const char *url, const char *body)
{
    ss_json_doc_t *doc = NULL;
    char err[SS_ERRSZ];
    if (ss_json_parse(body, strlen(body), 0, &doc, NULL, err, sizeof err) != SS_OK)
        return ss_sprintf("{\"error\":\"bad request\"}");
    const ss_json_t *root = ss_json_root(doc);
    int emb = !strcmp(url, "/v1/embeddings"), pt = 0, ct = 0;
    const char *pr[64];
    int n = body_prompts(root, emb ? "input" : "prompt", pr, 64);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, emb ? "{\"object\":\"list\",\"data\":[" : "{\"id\":\"c1\",\"choices\":[");
    for (int k = n - 1; k >= 0; k--) {
        if (k != n - 1) ss_buf_putc(&b, ',');
        if (emb) {
            ss_buf_printf(&b, "{\"object\":\"embedding\",\"index\":%d,\"embedding\":[%d,0.5,-1e-1]}", k,
                          (int)strlen(pr[k]));
            pt += 3;
        } else {
            choice_json(&b, root, pr[k], k, &pt, &ct);
        }
    }
    ss_buf_printf(&b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}", pt, ct);
    ss_json_free(doc);
    return ss_buf_take(&b);
}

/* ---- the hosted modes ---- */

static char *fx_error(int *status, int code, const char *msg, const char *param, const char *ecode)
{
    *status = code;
    F.rejected++;
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"error\":{\"message\":");
    ss_buf_put_json_str(&b, msg, strlen(msg));
    ss_buf_printf(&b, ",\"type\":\"invalid_request_error\",\"param\":%s%s%s,\"code\":\"%s\"}}", param ? "\"" : "",
                  param ? param : "null", param ? "\"" : "", ecode);
    return ss_buf_take(&b);
}

static void put_top(ss_buf_t *b, const char *const *tok, const double *p, int n, int k)
{
    ss_buf_puts(b, "[");
    for (int i = 0; i < n && i < k; i++) {
        if (i) ss_buf_putc(b, ',');
        ss_buf_puts(b, "{\"token\":");
        ss_buf_put_json_str(b, tok[i], strlen(tok[i]));
        ss_buf_printf(b, ",\"logprob\":%.9g,\"bytes\":[]}", log(p[i]));
    }
    ss_buf_puts(b, "]");
}

/* /v1/chat/completions as the hosted API answers for a chat model. */
static char *chat_answer(const char *body, int *status)
{
    ss_json_doc_t *doc = NULL;
    char err[SS_ERRSZ];
    if (ss_json_parse(body, strlen(body), 0, &doc, NULL, err, sizeof err) != SS_OK)
        return fx_error(status, 400, "We could not parse the JSON body of your request.", NULL, "invalid_json");
    const ss_json_t *root = ss_json_root(doc), *msgs = ss_json_get(root, "messages");
    const ss_json_t *lp = ss_json_get(root, "logprobs"), *tl = ss_json_get(root, "top_logprobs");
    const ss_json_t *mt = ss_json_get(root, "max_tokens"), *mct = ss_json_get(root, "max_completion_tokens");
    int k = tl && tl->t == SS_JSON_INT ? (int)tl->u.i : 0, max = mt ? (int)mt->u.i : mct ? (int)mct->u.i : 100;
    char *out = NULL;
    if (!msgs || msgs->t != SS_JSON_ARRAY || !msgs->u.arr.n)
        out = fx_error(status, 400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
    else if (F.want_mct && mt)
        out = fx_error(status, 400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                       "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter");
    else if (k > F.chat_lp_max) {
        char m[160];
        snprintf(m, sizeof m, "Invalid 'top_logprobs': integer above maximum value. Expected a value <= %d, but got "
                 "%d instead.", F.chat_lp_max, k);
        out = fx_error(status, 400, m, "top_logprobs", "integer_above_max_value");
    } else if (k && !(lp && lp->t == SS_JSON_BOOL && lp->u.b))
        out = fx_error(status, 400, "Invalid value: 'top_logprobs' requires 'logprobs' to be true.", "top_logprobs",
                       "invalid_value");
    if (out) {
        ss_json_free(doc);
        return out;
    }
    const char *user = "";
    for (size_t i = 0; i < msgs->u.arr.n; i++) {
        const char *role = ss_json_str(ss_json_get(&msgs->u.arr.items[i], "role"));
        if (role && !strcmp(role, "user")) user = ss_json_str(ss_json_get(&msgs->u.arr.items[i], "content"));
    }
    int want_lp = lp && lp->t == SS_JSON_BOOL && lp->u.b && !F.no_logprobs;
    ss_buf_t b = SS_BUF_INIT, text = SS_BUF_INIT;
    static const char *yn[] = {"Yes", "yes", "No", " no", "Maybe"};
    static const double ynp[] = {0.5, 0.1, 0.3, 0.05, 0.02};
    static const char *sc[] = {"7", "8", "3", "x"};
    static const double scp[] = {0.5, 0.3, 0.2, 0.01};
    const char *const *tok = yn;
    const double *pp = ynp;
    int nt = 5;
    if (strstr(user, "Answer with one whole number")) ss_buf_puts(&text, "7");
    else if (strstr(user, "Answer with exactly one of")) ss_buf_puts(&text, "\"Yes\".");
    else if (strstr(user, "Score")) ss_buf_puts(&text, "7"), tok = sc, pp = scp, nt = 4;
    else if (max <= 1) ss_buf_puts(&text, "Yes");
    else ss_buf_printf(&text, "[%s]\xc3\xa9", user);
    ss_buf_puts(&b, "{\"id\":\"chatcmpl-fx\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-fixture\","
                    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    ss_buf_put_json_str(&b, text.data, text.len);
    ss_buf_puts(&b, ",\"refusal\":null},\"logprobs\":");
    if (want_lp) {
        ss_buf_puts(&b, "{\"content\":[{\"token\":");
        ss_buf_put_json_str(&b, tok[0], strlen(tok[0]));
        ss_buf_printf(&b, ",\"logprob\":%.9g,\"bytes\":[],\"top_logprobs\":", log(pp[0]));
        put_top(&b, tok, pp, nt, k);
        ss_buf_puts(&b, "}],\"refusal\":null}");
    } else
        ss_buf_puts(&b, "null");
    ss_buf_printf(&b, ",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                      "\"total_tokens\":%d}}", (int)strlen(user) / 4, max <= 1 ? 1 : 3, (int)strlen(user) / 4 + 3);
    ss_buf_free(&text);
    ss_json_free(doc);
    return ss_buf_take(&b);
}

/* The server-side rate: more than per_second requests within a second get 429. */
static int over_rate(void)
{
    if (!F.per_second) return 0;
    int64_t now = ss_now_ns();
    if (now - F.sec_start >= 1000000000LL) F.sec_start = now, F.sec_count = 0;
    return ++F.sec_count > F.per_second;
}

static char *answer(const char *url, const char *body, int *status, int *retry_after);

/* Hosted and legacy-model modes, else NULL (the legacy fixture answers). */
static char *mode_answer(const char *url, const char *body, int *status, int *retry_after)
{
    int chat = !strcmp(url, "/v1/chat/completions"), legacy = !strcmp(url, "/v1/completions");
    if (F.mode == FX_HOSTED) {
        pthread_mutex_lock(&F.mu);
        int over = over_rate();
        pthread_mutex_unlock(&F.mu);
        if (over) {
            *retry_after = 1;
            return fx_error(status, 429, "Rate limit reached for requests per second.", NULL, "rate_limit_exceeded");
        }
        if (legacy)
            return fx_error(status, 404, "This is a chat model and not supported in the v1/completions endpoint. Did "
                            "you mean to use v1/chat/completions?", "model", "invalid_request_error");
        if (chat) return chat_answer(body, status);
    } else if (F.mode == FX_LEGACY_MODEL) {
        if (chat)
            return fx_error(status, 404, "This is not a chat model and thus not supported in the v1/chat/completions "
                            "endpoint. Did you mean to use v1/completions?", "model", "invalid_request_error");
        const char *l = strstr(body, "\"logprobs\":");
        if (legacy && l && atoi(l + 11) > 5)
            return fx_error(status, 400, "Invalid value for 'logprobs': must be less than or equal to 5.", "logprobs",
                            "invalid_value");
    }
    return NULL;
}

static char *answer(const char *url, const char *body, int *status, int *retry_after)
{
    pthread_mutex_lock(&F.mu);
    int fail = F.fail_next > 0 ? F.fail_next-- : 0;
    int busy = !fail && F.busy_next > 0 ? F.busy_next-- : 0;
    int garbage = F.garbage, missing = F.missing;
    pthread_mutex_unlock(&F.mu);
    *status = 200;
    *retry_after = 0;
    if (fail) { *status = 500; return ss_strdup("{\"error\":\"overloaded\"}"); }
    if (busy) { *status = 429; *retry_after = 1; return ss_strdup("{\"error\":\"rate limited\"}"); }
    if (garbage) return ss_strdup("<html>oops</html>");
    char *m = mode_answer(url, body, status, retry_after);
    if (m) return m;
    if (missing) return ss_strdup("{\"object\":\"text_completion\",\"created\":1}");
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/v1/completions")) return answer_body(url, body);
    *status = 404;
    return ss_strdup("{\"error\":\"no such path\"}");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *up, size_t *upsz, void **con_cls)
{
    (void)cls, (void)version;
    ss_buf_t *b = *con_cls;
    if (!b) {
        *con_cls = calloc(1, sizeof(ss_buf_t));
        return MHD_YES;
    }
    if (*upsz) {
        ss_buf_append(b, up, *upsz);
        *upsz = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST")) { /* e.g. the backend asking GET /v1/models: not a semstream worker */
        pthread_mutex_lock(&F.mu);
        F.gets++;
        pthread_mutex_unlock(&F.mu);
        struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(c, 404, r);
        MHD_destroy_response(r);
        return ret;
    }
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *org = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "OpenAI-Organization");
    const char *proj = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "OpenAI-Project");
    pthread_mutex_lock(&F.mu);
    if (F.requests < 32) F.t_ns[F.requests] = ss_now_ns();
    F.requests++;
    F.concurrent++;
    F.max_concurrent = SS_MAX(F.max_concurrent, F.concurrent);
    snprintf(F.last_body, sizeof F.last_body, "%s", ss_buf_cstr(b));
    snprintf(F.last_auth, sizeof F.last_auth, "%s", auth ? auth : "");
    snprintf(F.last_org, sizeof F.last_org, "%s", org ? org : "");
    snprintf(F.last_project, sizeof F.last_project, "%s", proj ? proj : "");
    snprintf(F.last_url, sizeof F.last_url, "%s", url);
    int slow = F.slow_ms;
    pthread_mutex_unlock(&F.mu);
    if (slow) usleep((useconds_t)slow * 1000);
    int status, retry_after;
    char *text = answer(url, ss_buf_cstr(b), &status, &retry_after);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    pthread_mutex_lock(&F.mu);
    F.concurrent--;
    pthread_mutex_unlock(&F.mu);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    ss_buf_t *b = *con_cls;
    if (b) ss_buf_free(b);
    free(b);
    *con_cls = NULL;
}

static void fixture_start(void)
{
    memset(&F, 0, sizeof F);
    F.chat_lp_max = 20;
    pthread_mutex_init(&F.mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    F.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                           handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                           MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    ck_assert_ptr_nonnull(F.d);
    F.port = MHD_get_daemon_info(F.d, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", F.port);
}

static void fixture_stop(void)
{
    MHD_stop_daemon(F.d);
    pthread_mutex_destroy(&F.mu);
}

static ss_infer_backend_t *backend_b(int retries, int timeout_ms, int conc, int embed_batch, int prompt_batch)
{
    ss_openai_opts_t o = {.url = F.url, .model = "tiny", .api_key = "sk-test", .timeout_ms = timeout_ms,
                          .max_concurrency = conc, .max_retries = retries, .backoff_ms = 50,
                          .embed_batch = embed_batch, .prompt_batch = prompt_batch,
                          .api = SS_OPENAI_API_COMPLETIONS}; /* the legacy fixture */
    char err[SS_ERRSZ];
    ss_infer_backend_t *b = ss_backend_openai_open(&o, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    return b;
}

static ss_infer_backend_t *backend(int retries, int timeout_ms, int conc)
{
    return backend_b(retries, timeout_ms, conc, 0, 0);
}

static const char *YN[] = {" yes", " no", " Maybe", " unknown"};

/* Runs one request on b; returns run()'s status; *r holds the result. */
static int run1(ss_infer_backend_t *b, const ss_infer_req_t *q, ss_infer_res_t *r)
{
    char err[SS_ERRSZ];
    memset(r, 0, sizeof *r);
    int rc = b->run(b, q, 1, r, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "%s", err);
    return r->status;
}

START_TEST(test_protocol_parsing)
{
    ss_infer_backend_t *b = backend(0, 5000, 4);
    char want_id[128];
    snprintf(want_id, sizeof want_id, "openai:%s:tiny", F.url);
    ck_assert_str_eq(b->model_id, want_id);
    ss_infer_res_t r;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = "Is it \"good\"?", .nchoices = 4, .choices = YN};
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_int_eq(r.nprobs, 4);
    /* .6, .3, .05 (" Maybe" matches " maybe" ignoring case), .05 (unlisted: smallest logprob) */
    ck_assert_float_eq_tol(r.probs[0], 0.6f, 1e-4);
    ck_assert_float_eq_tol(r.probs[1], 0.3f, 1e-4);
    ck_assert_float_eq_tol(r.probs[2], 0.05f, 1e-4);
    ck_assert_float_eq_tol(r.probs[3], 0.05f, 1e-4);
    ck_assert_int_eq(r.prompt_tokens, 5);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"prompt\":\"Is it \\\"good\\\"?\""));
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"max_tokens\":1"));
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"logprobs\":5")); /* the legacy API's limit */
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"echo\":false"));
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"model\":\"tiny\""));
    ck_assert_str_eq(F.last_auth, "Bearer sk-test");
    ss_infer_res_clear(&r);

    ss_infer_req_t arr = {.kind = SS_INFER_CHOOSE, .prompt = "ARRAYFMT", .nchoices = 2, .choices = YN};
    ck_assert_int_eq(run1(b, &arr, &r), SS_OK);
    ck_assert_float_eq_tol(r.probs[0], 0.25f, 1e-4);
    ck_assert_float_eq_tol(r.probs[1], 0.75f, 1e-4);
    ss_infer_res_clear(&r);

    ss_infer_req_t sc = {.kind = SS_INFER_SCORE, .prompt = "Score 1-10:", .score_min = 1, .score_max = 10};
    ck_assert_int_eq(run1(b, &sc, &r), SS_OK);
    ck_assert_double_eq_tol(r.score, 7 * 0.5 + 8 * 0.3 + 3 * 0.2, 1e-6); /* "x" is ignored */
    ss_infer_res_clear(&r);
    sc.score_max = 5; /* only "3" is in range */
    ck_assert_int_eq(run1(b, &sc, &r), SS_OK);
    ck_assert_double_eq_tol(r.score, 3.0, 1e-6);
    ss_infer_res_clear(&r);

    ss_infer_req_t g = {.kind = SS_INFER_GENERATE, .prompt = "Once", .max_tokens = 7, .temperature = 0.5f,
                        .seed = 42, .stop = "\n"};
    ck_assert_int_eq(run1(b, &g, &r), SS_OK);
    ck_assert_str_eq(r.text, "[Once]\xc3\xa9");
    ck_assert_int_eq(r.gen_tokens, 7);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"seed\":42"));
    ck_assert_msg(strstr(F.last_body, "\"stop\":[\"\\n\"]") || strstr(F.last_body, "\"stop\":[\"\\u000a\"]"),
                  "%s", F.last_body); /* either escape of a newline */
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"temperature\":0.5"));
    ss_infer_res_clear(&r);

    ss_infer_req_t e = {.kind = SS_INFER_EMBED, .prompt = "hello"};
    ck_assert_int_eq(run1(b, &e, &r), SS_OK);
    ck_assert_int_eq(r.dim, 3);
    ck_assert_float_eq(r.emb[0], 5.0f);
    ck_assert_float_eq(r.emb[2], -0.1f);
    ck_assert_int_eq(r.prompt_tokens, 3);
    ss_infer_res_clear(&r);
    ck_assert_int_eq(F.gets, 1); /* asked once whether this is a semstream worker */
    b->destroy(b);
}
END_TEST

START_TEST(test_retry_5xx_backoff)
{
    ss_infer_backend_t *b = backend(3, 5000, 2);
    F.fail_next = 2;
    ss_infer_req_t e = {.kind = SS_INFER_EMBED, .prompt = "x"};
    ss_infer_res_t r;
    ck_assert_int_eq(run1(b, &e, &r), SS_OK);
    ck_assert_int_eq(F.requests, 3);
    /* backoff 50 ms then 100 ms */
    ck_assert_int_ge(F.t_ns[1] - F.t_ns[0], 45 * 1000000LL);
    ck_assert_int_ge(F.t_ns[2] - F.t_ns[1], 95 * 1000000LL);
    ss_infer_res_clear(&r);
    /* retries exhausted: the last HTTP error with a snippet of the body */
    F.fail_next = 100;
    F.requests = 0;
    ck_assert_int_eq(run1(b, &e, &r), SS_ERR_HTTP);
    ck_assert_int_eq(F.requests, 4);
    ck_assert_msg(strstr(r.error, "HTTP 500 from /v1/embeddings after retries") &&
                  strstr(r.error, "overloaded") && strstr(r.error, F.url), "%s", r.error);
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_retry_429_retry_after)
{
    ss_infer_backend_t *b = backend(2, 5000, 2);
    F.busy_next = 1;
    ss_infer_req_t e = {.kind = SS_INFER_EMBED, .prompt = "x"};
    ss_infer_res_t r;
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(run1(b, &e, &r), SS_OK);
    ck_assert_int_eq(F.requests, 2);
    ck_assert_int_ge(ss_now_ns() - t0, 950 * 1000000LL); /* Retry-After: 1 beats the 50 ms backoff */
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_timeout)
{
    ss_infer_backend_t *b = backend(-1, 200, 2);
    F.slow_ms = 2000;
    ss_infer_req_t e = {.kind = SS_INFER_GENERATE, .prompt = "x", .max_tokens = 1};
    ss_infer_res_t r;
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(run1(b, &e, &r), SS_ERR_TIMEOUT);
    ck_assert_int_lt(ss_now_ns() - t0, 1500 * 1000000LL); /* did not wait for the answer */
    ck_assert_msg(strstr(r.error, "timed out after 200 ms"), "%s", r.error);
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_garbage_and_missing_fields)
{
    ss_infer_backend_t *b = backend(2, 5000, 2);
    F.garbage = 1;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = "p", .nchoices = 2, .choices = YN};
    ss_infer_res_t r;
    ck_assert_int_eq(run1(b, &ch, &r), SS_ERR_HTTP);
    ck_assert_msg(strstr(r.error, "bad JSON from /v1/completions at byte 0: <html>oops</html>"), "%s", r.error);
    ck_assert_int_eq(F.requests, 1); /* a 200 with garbage is not retried */
    ss_infer_res_clear(&r);
    F.garbage = 0;
    F.missing = 1;
    ck_assert_int_eq(run1(b, &ch, &r), SS_ERR_HTTP);
    ck_assert_msg(strstr(r.error, "lacks choices[0]") && strstr(r.error, "text_completion"), "%s", r.error);
    ss_infer_res_clear(&r);
    ss_infer_req_t e = {.kind = SS_INFER_EMBED, .prompt = "x"};
    ck_assert_int_eq(run1(b, &e, &r), SS_ERR_HTTP);
    ck_assert_msg(strstr(r.error, "lacks data[0].embedding"), "%s", r.error);
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_connection_refused)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s); /* nothing listens there now */
    char url[64], err[SS_ERRSZ];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    ss_openai_opts_t o = {.url = url, .model = "m", .max_retries = 1, .backoff_ms = 10};
    ss_infer_backend_t *b = ss_backend_openai_open(&o, err, sizeof err);
    ck_assert_ptr_nonnull(b);
    ss_infer_req_t e = {.kind = SS_INFER_EMBED, .prompt = "x"};
    ss_infer_res_t r;
    ck_assert_int_eq(run1(b, &e, &r), SS_ERR_HTTP);
    char want[128];
    snprintf(want, sizeof want, "openai backend %s: connection refused", url);
    ck_assert_msg(strstr(r.error, want) == r.error, "%s", r.error);
    ss_infer_res_clear(&r);
    b->destroy(b);
    ck_assert_ptr_null(ss_backend_openai_new("ftp://x", "m", NULL, 0, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "http://"), "%s", err);
}
END_TEST

START_TEST(test_concurrency_limit)
{
    ss_infer_backend_t *b = backend_b(0, 5000, 3, 1, 1); /* one input per HTTP request */
    F.slow_ms = 300;
    enum { N = 9 };
    ss_infer_req_t q[N];
    ss_infer_res_t r[N];
    char p[N][16];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        snprintf(p[i], sizeof p[i], "e%d", i);
        q[i] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = p[i]};
    }
    char err[SS_ERRSZ];
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(b->run(b, q, N, r, err, sizeof err), SS_OK);
    int64_t ms = (ss_now_ns() - t0) / 1000000;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(r[i].status, SS_OK);
        ck_assert_float_eq(r[i].emb[0], (float)strlen(p[i])); /* each answer to its own request */
        ss_infer_res_clear(&r[i]);
    }
    ck_assert_int_eq(F.requests, N);
    ck_assert_int_eq(F.max_concurrent, 3);
    ck_assert_int_ge(ms, 3 * 300 - 10); /* three waves of three */
    b->destroy(b);
}
END_TEST

START_TEST(test_grouped_http_requests)
{
    ss_infer_backend_t *b = backend_b(0, 5000, 4, 16, 4);
    enum { NE = 40, NC = 6 };
    ss_infer_req_t q[NE + NC + 3];
    ss_infer_res_t r[NE + NC + 3];
    char p[NE][16];
    int n = 0;
    for (int i = 0; i < NE; i++) {
        snprintf(p[i], sizeof p[i], "%.*s", i % 12 + 1, "abcdefghijklmnop");
        q[n++] = (ss_infer_req_t){.kind = SS_INFER_EMBED, .prompt = p[i]};
        if (i % 8 == 0 && n - i - 1 < NC) /* CHOOSE and SCORE requests interleaved */
            q[n++] = (ss_infer_req_t){.kind = (n % 2) ? SS_INFER_CHOOSE : SS_INFER_SCORE,
                                      .prompt = (n % 2) ? "Is it?" : "Score it", .nchoices = 2, .choices = YN,
                                      .score_min = 1, .score_max = 10};
    }
    q[n++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "g1", .max_tokens = 3};
    q[n++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "g2", .max_tokens = 3};
    q[n++] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = "g3", .max_tokens = 4};
    memset(r, 0, sizeof r);
    char err[SS_ERRSZ];
    ck_assert_int_eq(b->run(b, q, n, r, err, sizeof err), SS_OK);
    int nchoose = 0, nscore = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(r[i].status == SS_OK, "request %d: %s", i, r[i].error);
        switch (q[i].kind) {
        case SS_INFER_EMBED: ck_assert_float_eq(r[i].emb[0], (float)strlen(q[i].prompt)); break;
        case SS_INFER_CHOOSE: ck_assert_float_eq_tol(r[i].probs[0], 0.6f / 0.9f, 1e-4); nchoose++; break;
        case SS_INFER_SCORE: ck_assert_double_eq_tol(r[i].score, 6.5, 1e-6); nscore++; break;
        case SS_INFER_GENERATE: {
            char want[32];
            snprintf(want, sizeof want, "[%s]\xc3\xa9", q[i].prompt);
            ck_assert_str_eq(r[i].text, want);
            ck_assert_int_eq(r[i].gen_tokens, q[i].max_tokens);
            break;
        }
        }
        ss_infer_res_clear(&r[i]);
    }
    /* 40 inputs in 3 embeddings requests (16+16+8); CHOOSE and SCORE by kind in groups of 4;
     * the two GENERATE with equal parameters together, the third alone */
    int want = 3 + (nchoose + 3) / 4 + (nscore + 3) / 4 + 2;
    ck_assert_int_eq(F.requests, want);
    b->destroy(b);
}
END_TEST

START_TEST(test_dispatcher_cache_over_openai)
{
    char *dir = tu_tmpdir(), *path = ss_sprintf("%s/cache.db", dir), err[SS_ERRSZ];
    enum { N = 6 };
    ss_infer_req_t q[N];
    ss_infer_res_t r[N];
    for (int i = 0; i < N; i++)
        q[i] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = i % 2 ? "Is A?" : "Is B?", .prefix_len = 3,
                                .nchoices = 2, .choices = YN};
    for (int round = 0; round < 2; round++) {
        ss_dispatch_opts_t o = {path, 4, 0};
        ss_dispatch_t *d = NULL;
        ck_assert_int_eq(ss_dispatch_open(&o, &d, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_dispatch_add_model(d, "remote", backend(0, 5000, 4), 0, err, sizeof err), SS_OK);
        memset(r, 0, sizeof r);
        ss_infer_stats_t acct = {0};
        ck_assert_msg(ss_dispatch_run(d, "remote", &acct, q, N, r, err, sizeof err) == SS_OK, "%s", err);
        for (int i = 0; i < N; i++) {
            ck_assert_float_eq_tol(r[i].probs[0], 0.6f / 0.9f, 1e-4);
            ck_assert_int_eq(r[i].cached, round);
            ss_infer_res_clear(&r[i]);
        }
        ck_assert_int_eq(acct.calls, round ? 0 : 2);     /* two distinct prompts */
        ck_assert_int_eq(F.requests, 2);                 /* the reopened cache answered round 2 */
        ss_dispatch_close(d);
    }
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_generate_top_logprobs_cached)
{
    char *dir = tu_tmpdir(), *path = ss_sprintf("%s/cache.db", dir), err[SS_ERRSZ];
    ss_infer_req_t q = {.kind = SS_INFER_GENERATE, .prompt = "GENLP", .max_tokens = 2, .top_logprobs = 5};
    for (int round = 0; round < 2; round++) {
        ss_dispatch_opts_t o = {path, 4, 0};
        ss_dispatch_t *d = NULL;
        ck_assert_int_eq(ss_dispatch_open(&o, &d, err, sizeof err), SS_OK);
        ck_assert_int_eq(ss_dispatch_add_model(d, "w", backend(0, 5000, 4), 0, err, sizeof err), SS_OK);
        ss_infer_res_t r = {0};
        ck_assert_msg(ss_dispatch_run(d, NULL, NULL, &q, 1, &r, err, sizeof err) == SS_OK, "%s", err);
        ck_assert_int_eq(r.cached, round);
        ck_assert_str_eq(r.text, " no yes");
        ck_assert_int_eq(r.ntop, 2); /* best first */
        ck_assert_str_eq(r.top_tokens[0], " yes");
        ck_assert_str_eq(r.top_tokens[1], " no");
        ck_assert_float_eq_tol(r.top_logprobs[0], logf(0.6f), 1e-5);
        ck_assert_int_eq(r.gen_tokens, 2);
        ck_assert_float_eq_tol(r.token_logprobs[0], logf(0.3f), 1e-5);
        ck_assert_float_eq_tol(r.token_logprobs[1], -0.5f, 1e-5);
        ss_infer_res_clear(&r);
        ss_dispatch_close(d);
    }
    ck_assert_int_eq(F.requests, 1);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"logprobs\":5"));
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_openai_embedder)
{
    char err[SS_ERRSZ];
    ss_dispatch_t *d = NULL;
    ck_assert_int_eq(ss_dispatch_open(NULL, &d, err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_dispatch_add_model(d, "emb", backend(0, 5000, 4), 0, err, sizeof err), SS_OK);
    ss_infer_stats_t acct = {0};
    ss_embed_opts_t o = {.kind = "openai", .dispatch = d, .model = "emb", .acct = &acct};
    ss_embedder_t *e = NULL;
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(e->dim, 3); /* from the probe */
    const char *t[] = {"ab", "abcd"};
    float v[6];
    ck_assert_msg(ss_embedder_embed(e, t, 2, v, err, sizeof err) == SS_OK, "%s", err);
    /* [len, 0.5, -0.1] normalised */
    float n0 = sqrtf(4 + 0.25f + 0.01f), n1 = sqrtf(16 + 0.25f + 0.01f);
    ck_assert_float_eq_tol(v[0], 2 / n0, 1e-5);
    ck_assert_float_eq_tol(v[4], 0.5f / n1, 1e-5);
    ck_assert_int_eq(acct.requests, 3);
    ss_embedder_destroy(e);
    o.model = "missing";
    ck_assert_int_eq(ss_embedder_open(&o, &e, err, sizeof err), SS_ERR_NOTFOUND);
    ss_dispatch_close(d);
}
END_TEST

/* ---- the hosted API: chat only, logprob limits, refusals, 429s, rate limits ---- */

static ss_infer_backend_t *hosted_backend(int top_logprobs, int rpm)
{
    ss_openai_opts_t o = {.url = F.url, .model = "gpt-fixture", .api_key = "sk-test", .organization = "org-1",
                          .project = "proj-2", .timeout_ms = 5000, .max_retries = 4, .backoff_ms = 20,
                          .top_logprobs = top_logprobs, .rpm = rpm};
    char err[SS_ERRSZ];
    ss_infer_backend_t *b = ss_backend_openai_open(&o, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    return b;
}

/* "### Task ... ### Input ...": 11 bytes of system message, the rest the user's turn. */
static const char *SYSPROMPT = "Be careful.Is it good?";
static const char *YESNO[] = {" yes", " no"};

START_TEST(test_hosted_chat)
{
    F.mode = FX_HOSTED;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    ss_infer_res_t r;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = SYSPROMPT, .system_len = 11, .nchoices = 2,
                         .choices = YESNO};
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    /* "Yes" .5 + "yes" .1 count for " yes", "No" .3 + " no" .05 for " no" */
    ck_assert_float_eq_tol(r.probs[0], 0.6f / 0.95f, 1e-4);
    ck_assert_float_eq_tol(r.probs[1], 0.35f / 0.95f, 1e-4);
    ck_assert_str_eq(F.last_url, "/v1/chat/completions");
    ck_assert_msg(strstr(F.last_body, "\"messages\":[{\"role\":\"system\",\"content\":\"Be careful.\"},"
                                      "{\"role\":\"user\",\"content\":\"Is it good?\"}]"), "%s", F.last_body);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"logprobs\":true,\"top_logprobs\":20"));
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"max_tokens\":1"));
    ck_assert_str_eq(F.last_auth, "Bearer sk-test");
    ck_assert_str_eq(F.last_org, "org-1");
    ck_assert_str_eq(F.last_project, "proj-2");
    ss_infer_res_clear(&r);
    ss_infer_req_t sc = {.kind = SS_INFER_SCORE, .prompt = "Score it", .score_min = 1, .score_max = 10};
    ck_assert_int_eq(run1(b, &sc, &r), SS_OK);
    ck_assert_double_eq_tol(r.score, (7 * 0.5 + 8 * 0.3 + 3 * 0.2) / 1.0, 1e-6);
    ss_infer_res_clear(&r);
    const char *stops[] = {"END", "\n\n"};
    ss_infer_req_t g = {.kind = SS_INFER_GENERATE, .prompt = "Once", .max_tokens = 7, .stop = "\n", .nstop = 2,
                        .stops = stops};
    ck_assert_int_eq(run1(b, &g, &r), SS_OK);
    ck_assert_str_eq(r.text, "[Once]\xc3\xa9");
    ck_assert_int_eq(r.gen_tokens, 3);
    ck_assert_msg(strstr(F.last_body, "\"stop\":[\"\\n\",\"END\",\"\\n\\n\"]") ||
                  strstr(F.last_body, "\"stop\":[\"\\u000a\",\"END\",\"\\u000a\\u000a\"]"), "%s", F.last_body);
    ck_assert_ptr_null(strstr(F.last_body, "\"system\"")); /* no system part: one user message */
    ss_infer_res_clear(&r);
    ck_assert_int_eq(F.rejected, 0); /* chat from the start: never sent to /v1/completions */
    b->destroy(b);
}
END_TEST

START_TEST(test_hosted_logprob_limit)
{
    /* a provider taking at most 5 top logprobs on chat: asked 20, refused once, 5 from then on */
    F.mode = FX_HOSTED;
    F.chat_lp_max = 5;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    ss_infer_res_t r;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = "Is it?", .nchoices = 2, .choices = YESNO};
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_int_eq(F.rejected, 1);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"top_logprobs\":5"));
    ck_assert_float_eq_tol(r.probs[0], 0.6f / 0.95f, 1e-4);
    ss_infer_res_clear(&r);
    F.requests = 0;
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_int_eq(F.requests, 1); /* learnt */
    ck_assert_int_eq(F.rejected, 1);
    ss_infer_res_clear(&r);
    b->destroy(b);
    /* a newer model refusing max_tokens: max_completion_tokens */
    F.want_mct = 1;
    F.rejected = 0;
    b = hosted_backend(0, 0);
    ss_infer_req_t g = {.kind = SS_INFER_GENERATE, .prompt = "Once", .max_tokens = 7};
    ck_assert_int_eq(run1(b, &g, &r), SS_OK);
    ck_assert_int_eq(F.rejected, 1);
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"max_completion_tokens\":7"));
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_hosted_no_logprobs_constrained)
{
    /* a provider without logprobs: the answer is asked for in words and read back */
    F.mode = FX_HOSTED;
    F.no_logprobs = 1;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    ss_infer_res_t r;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = SYSPROMPT, .system_len = 11, .nchoices = 2,
                         .choices = YESNO};
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_float_eq(r.probs[0], 1.0f);
    ck_assert_float_eq(r.probs[1], 0.0f);
    ck_assert_msg(strstr(F.last_body, "Answer with exactly one of these and nothing else: \\\"yes\\\", \\\"no\\\"."),
                  "%s", F.last_body);
    ck_assert_ptr_null(strstr(F.last_body, "logprobs"));
    ss_infer_res_clear(&r);
    ss_infer_req_t sc = {.kind = SS_INFER_SCORE, .prompt = "Rate it", .score_min = 1, .score_max = 10};
    ck_assert_int_eq(run1(b, &sc, &r), SS_OK);
    ck_assert_double_eq(r.score, 7.0);
    ss_infer_res_clear(&r);
    sc.score_max = 5; /* "7" is out of range: an error that says why */
    ck_assert_int_eq(run1(b, &sc, &r), SS_ERR_MODEL);
    ck_assert_msg(strstr(r.error, "the answer \"7\"") && strstr(r.error, "no logprobs"), "%s", r.error);
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_legacy_model_fallback)
{
    /* a legacy-only model: chat says "not a chat model", the backend moves to /v1/completions,
     * asking at most 5 logprobs there */
    F.mode = FX_LEGACY_MODEL;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    ss_infer_res_t r;
    ss_infer_req_t ch = {.kind = SS_INFER_CHOOSE, .prompt = "Is it?", .nchoices = 2, .choices = YESNO};
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_int_eq(F.rejected, 1);
    ck_assert_str_eq(F.last_url, "/v1/completions");
    ck_assert_ptr_nonnull(strstr(F.last_body, "\"logprobs\":5"));
    ck_assert_float_eq_tol(r.probs[0], 0.6f / 0.9f, 1e-4);
    ss_infer_res_clear(&r);
    F.requests = 0;
    ck_assert_int_eq(run1(b, &ch, &r), SS_OK);
    ck_assert_int_eq(F.requests, 1);
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

START_TEST(test_hosted_429_and_rate_limits)
{
    /* the server allows 3 requests a second and answers 429 + Retry-After beyond: every request
     * still gets its answer, the backend waiting as told */
    F.mode = FX_HOSTED;
    F.per_second = 3;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    enum { N = 8 };
    ss_infer_req_t q[N];
    ss_infer_res_t r[N];
    char p[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(p[i], sizeof p[i], "Is %d?", i);
        q[i] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = p[i], .nchoices = 2, .choices = YESNO};
    }
    memset(r, 0, sizeof r);
    char err[SS_ERRSZ];
    int64_t t0 = ss_now_ns();
    ck_assert_int_eq(b->run(b, q, N, r, err, sizeof err), SS_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(r[i].status == SS_OK, "%d: %s", i, r[i].error);
        ss_infer_res_clear(&r[i]);
    }
    ck_assert_int_gt(F.rejected, 0);
    ck_assert_int_ge(ss_now_ns() - t0, 950 * 1000000LL); /* Retry-After: 1 */
    b->destroy(b);
    /* the same within a client-side limit of 120 requests a minute: paced at 2 a second (at most 4
     * in any second), never refused */
    F.rejected = 0;
    F.per_second = 4;
    F.sec_start = 0;
    b = hosted_backend(0, 120);
    t0 = ss_now_ns();
    ck_assert_int_eq(b->run(b, q, 6, r, err, sizeof err), SS_OK);
    int64_t ms = (ss_now_ns() - t0) / 1000000;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(r[i].status, SS_OK);
        ss_infer_res_clear(&r[i]);
    }
    ck_assert_int_eq(F.rejected, 0);
    ck_assert_int_ge(ms, 1900); /* 2 at once, then one every 500 ms */
    b->destroy(b);
}
END_TEST

static const char *opt_of(void *ctx, const char *name)
{
    for (const char *const *kv = ctx; *kv; kv += 2)
        if (!strcmp(kv[0], name)) return kv[1];
    return NULL;
}

START_TEST(test_model_options)
{
    char err[SS_ERRSZ];
    const char *ok[] = {"url", F.url, "api", "chat", "rpm", "600", "tpm", "100000", "organization", "o", NULL};
    ss_infer_backend_t *b = ss_backend_openai_config("m", opt_of, ok, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_str_eq(b->kind, "openai");
    b->destroy(b);
    struct { const char *kv[7]; const char *want; } bad[] = {
        {{"url", F.url, "api", "legacy", NULL}, "api must be 'auto', 'chat' or 'completions', not 'legacy'"},
        {{"url", F.url, "rpm", "fast", NULL}, "rpm must be an integer between 1 and"},
        {{"url", F.url, "top_logprobs", "25", NULL}, "top_logprobs must be an integer between 1 and 20"},
        {{"url", F.url, "api_key_env", "SS_SURELY_UNSET_VARIABLE", NULL}, "SS_SURELY_UNSET_VARIABLE, which is not set"},
        {{"model", "x", NULL}, "needs WITH (url = '...')"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(bad); i++) {
        ck_assert_ptr_null(ss_backend_openai_config("m", opt_of, bad[i].kv, err, sizeof err));
        ck_assert_msg(strstr(err, bad[i].want) && strstr(err, "model m"), "%s", err);
    }
    /* a pool takes the same options */
    char urls[160];
    snprintf(urls, sizeof urls, "%s,%s", F.url, F.url);
    const char *pool[] = {"url", urls, "api", "completions", NULL};
    b = ss_backend_openai_config("m", opt_of, pool, err, sizeof err);
    ck_assert_msg(b != NULL, "%s", err);
    ck_assert_str_eq(b->kind, "pool");
    b->destroy(b);
}
END_TEST

/* ---- against the real `semstream worker` serving the real engine (stories260K) ---- */

static const char *NAMES[] = {" Lily", " Tom", " Ben"};

START_TEST(test_real_worker_matches_local)
{
    char p[4096], err[SS_ERRSZ], url[64];
    const char *path = tu_model_path("stories260K.gguf", p, sizeof p);
    ss_infer_backend_t *local = ss_backend_local_new(path, 1, err, sizeof err);
    ck_assert_msg(local != NULL, "%s", err);
    ss_worker_opts_t wo = {.model_name = "stories260K"};
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(&wo, ss_backend_local_new(path, 1, err, sizeof err), &w, err, sizeof err) == SS_OK,
                  "%s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ss_worker_port(w));
    ss_openai_opts_t oo = {.url = url, .model = "stories260K", .timeout_ms = 30000, .prompt_batch = 4};
    ss_infer_backend_t *remote = ss_backend_openai_open(&oo, err, sizeof err);
    oo.semstream_ext = -1; /* plain OpenAI protocol: choices from top logprobs */
    ss_infer_backend_t *plain = ss_backend_openai_open(&oo, err, sizeof err);
    ck_assert(remote && plain);
    ss_infer_req_t q[] = {
        {.kind = SS_INFER_CHOOSE, .prompt = "Once upon a time, there was a little girl named", .nchoices = 3, .choices = NAMES},
        {.kind = SS_INFER_CHOOSE, .prompt = "One day, a boy named", .nchoices = 3, .choices = NAMES},
        {.kind = SS_INFER_SCORE, .prompt = "She was 3", .score_min = 1, .score_max = 9},
        {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 12},
        {.kind = SS_INFER_GENERATE, .prompt = "The dog", .max_tokens = 12},
        {.kind = SS_INFER_EMBED, .prompt = "The cat sat on the mat."},
        {.kind = SS_INFER_EMBED, .prompt = "Lily and Tom played."},
    };
    enum { N = sizeof q / sizeof q[0] };
    ss_infer_res_t a[N], b[N], c[N];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(c, 0, sizeof c);
    ck_assert_msg(local->run(local, q, N, a, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(remote->run(remote, q, N, b, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(plain->run(plain, q, N, c, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < N; i++) {
        /* a story model puts no digit among its top tokens: plain SCORE has nothing to average */
        int plain_ok = q[i].kind == SS_INFER_SCORE ? c[i].status == SS_ERR_MODEL : c[i].status == SS_OK;
        ck_assert_msg(a[i].status == SS_OK && b[i].status == SS_OK && plain_ok, "request %d: %s / %s", i,
                      b[i].error ? b[i].error : "", c[i].error ? c[i].error : "");
        if (q[i].kind == SS_INFER_CHOOSE) { /* exact through semstream_choices */
            ck_assert_int_eq(a[i].nprobs, b[i].nprobs);
            for (int k = 0; k < a[i].nprobs; k++) ck_assert_float_eq_tol(a[i].probs[k], b[i].probs[k], 1e-4);
        }
        ck_assert_double_eq_tol(a[i].score, b[i].score, 1e-4);
        if (a[i].text) {
            ck_assert_str_eq(a[i].text, b[i].text);
            ck_assert_str_eq(a[i].text, c[i].text);
        }
        ck_assert_int_eq(a[i].dim, b[i].dim);
        for (int k = 0; k < a[i].dim; k++) ck_assert_float_eq_tol(a[i].emb[k], b[i].emb[k], 1e-4);
        if (q[i].kind == SS_INFER_CHOOSE) { /* the approximation is still a distribution */
            float sum = 0;
            for (int k = 0; k < c[i].nprobs; k++) sum += c[i].probs[k];
            ck_assert_float_eq_tol(sum, 1.0f, 1e-4);
        }
        ss_infer_res_clear(&a[i]);
        ss_infer_res_clear(&b[i]);
        ss_infer_res_clear(&c[i]);
    }
    remote->destroy(remote);
    plain->destroy(plain);
    local->destroy(local);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_real_chat_worker_matches_local)
{
    /* a chat model (ChatML): the backend finds the template in /v1/models and speaks chat; the worker
     * renders the system and user messages exactly as the engine renders a request's system part */
    char *dir = tu_tmpdir(), path[1024], err[SS_ERRSZ], url[64];
    snprintf(path, sizeof path, "%s/chat.gguf", dir);
    ss_mkmodel_spec_t spec;
    ck_assert(ss_mkmodel_shape("tiny-qwen2", &spec));
    spec.chat_template = ss_chat_sample_template(SS_CHAT_CHATML);
    spec.special_tokens = ss_chat_markers(SS_CHAT_CHATML);
    ck_assert_msg(ss_mkmodel_write(&spec, path, err, sizeof err) == SS_OK, "%s", err);
    ss_infer_backend_t *local = ss_backend_local_new(path, 1, err, sizeof err);
    ck_assert_msg(local != NULL, "%s", err);
    ss_worker_opts_t wo = {.model_name = "chat"};
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(&wo, ss_backend_local_new(path, 1, err, sizeof err), &w, err, sizeof err) == SS_OK,
                  "%s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ss_worker_port(w));
    ss_openai_opts_t oo = {.url = url, .model = "chat", .timeout_ms = 30000};
    ss_infer_backend_t *remote = ss_backend_openai_open(&oo, err, sizeof err);
    ck_assert(remote);
    static const char *yn[] = {" yes", " no"};
    const char *p = "### Task\nDecide.\n### Instruction\nIs it about cats?\n### Input\n<t>a cat</t>\n### Answer:";
    size_t sl = strlen("### Task\nDecide.\n### Instruction\nIs it about cats?\n");
    ss_infer_req_t q[] = {
        {.kind = SS_INFER_CHOOSE, .prompt = p, .system_len = sl, .nchoices = 2, .choices = yn},
        {.kind = SS_INFER_SCORE, .prompt = p, .system_len = sl, .score_min = 1, .score_max = 5},
        {.kind = SS_INFER_GENERATE, .prompt = p, .system_len = sl, .max_tokens = 10, .stop = "\n"},
        {.kind = SS_INFER_GENERATE, .prompt = "Hello", .max_tokens = 10}, /* one user turn */
    };
    enum { N = sizeof q / sizeof q[0] };
    ss_infer_res_t a[N], b[N];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    ck_assert_msg(local->run(local, q, N, a, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_msg(remote->run(remote, q, N, b, err, sizeof err) == SS_OK, "%s", err);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(a[i].status == SS_OK && b[i].status == SS_OK, "request %d: %s", i, b[i].error ? b[i].error : "");
        for (int k = 0; q[i].kind == SS_INFER_CHOOSE && k < a[i].nprobs; k++)
            ck_assert_float_eq_tol(a[i].probs[k], b[i].probs[k], 1e-5);
        ck_assert_double_eq_tol(a[i].score, b[i].score, 1e-5);
        if (a[i].text) ck_assert_str_eq(a[i].text, b[i].text);
        ck_assert_int_eq(a[i].prompt_tokens, b[i].prompt_tokens);
        ss_infer_res_clear(&a[i]);
        ss_infer_res_clear(&b[i]);
    }
    remote->destroy(remote);
    local->destroy(local);
    ss_worker_stop(w);
    unlink(path);
    free(dir);
}
END_TEST

/* Structured output: a GENERATE with a JSON Schema asks a chat server for
 * response_format {type: json_schema} carrying the schema as written. */
START_TEST(test_hosted_json_schema)
{
    F.mode = FX_HOSTED;
    ss_infer_backend_t *b = hosted_backend(0, 0);
    ss_infer_res_t r;
    const char *schema = "{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\"}},\"required\":[\"age\"],"
                         "\"additionalProperties\":false}";
    ss_infer_req_t g = {.kind = SS_INFER_GENERATE, .prompt = "Tim is 5.", .max_tokens = 20, .json_schema = schema};
    ck_assert_int_eq(run1(b, &g, &r), SS_OK);
    ck_assert_str_eq(F.last_url, "/v1/chat/completions");
    char want[512];
    snprintf(want, sizeof want, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
             "\"semstream_output\",\"strict\":true,\"schema\":%s}}", schema);
    ck_assert_msg(strstr(F.last_body, want), "%s", F.last_body);
    ss_infer_res_clear(&r);
    ss_infer_req_t plain = {.kind = SS_INFER_GENERATE, .prompt = "Tim is 5.", .max_tokens = 20};
    ck_assert_int_eq(run1(b, &plain, &r), SS_OK);
    ck_assert_ptr_null(strstr(F.last_body, "response_format"));
    ss_infer_res_clear(&r);
    b->destroy(b);
}
END_TEST

/* The real worker honours response_format json_schema (its engine constrains decoding): through the
 * openai backend the answer equals the in-process engine's, and it is an object of the schema; a
 * schema outside the supported subset is a 400 naming the keyword. */
START_TEST(test_real_worker_json_schema)
{
    char p[4096], err[SS_ERRSZ], url[64];
    const char *path = tu_model_path("stories260K.gguf", p, sizeof p);
    ss_infer_backend_t *local = ss_backend_local_new(path, 1, err, sizeof err);
    ck_assert_msg(local != NULL, "%s", err);
    ss_worker_opts_t wo = {.model_name = "stories260K"};
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(&wo, ss_backend_local_new(path, 1, err, sizeof err), &w, err, sizeof err) == SS_OK,
                  "%s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ss_worker_port(w));
    ss_openai_opts_t oo = {.url = url, .model = "stories260K", .timeout_ms = 30000};
    ss_infer_backend_t *remote = ss_backend_openai_open(&oo, err, sizeof err);
    ck_assert_msg(remote != NULL, "%s", err);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
                         "\"integer\"},\"happy\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\",\"happy\"],"
                         "\"additionalProperties\":false}";
    ss_infer_req_t q = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time, Tim", .max_tokens = 40,
                        .json_schema = schema};
    ss_infer_res_t a = {0}, b = {0};
    ck_assert_msg(local->run(local, &q, 1, &a, err, sizeof err) == SS_OK && a.status == SS_OK, "%s", err);
    ck_assert_msg(remote->run(remote, &q, 1, &b, err, sizeof err) == SS_OK && b.status == SS_OK, "%s / %s", err,
                  b.error ? b.error : "");
    ck_assert_str_eq(a.text, b.text);
    ss_json_doc_t *doc = NULL;
    ck_assert_msg(ss_json_parse(b.text, strlen(b.text), 0, &doc, NULL, err, sizeof err) == SS_OK, "%s: %s", b.text,
                  err);
    const ss_json_t *root = ss_json_root(doc);
    ck_assert_int_eq(ss_json_get(root, "name")->t, SS_JSON_STRING);
    ck_assert_int_eq(ss_json_get(root, "age")->t, SS_JSON_INT);
    ck_assert_int_eq(ss_json_get(root, "happy")->t, SS_JSON_BOOL);
    ss_json_free(doc);
    ss_infer_res_clear(&a);
    ss_infer_res_clear(&b);
    q.json_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"x\"}}}";
    ck_assert_int_eq(remote->run(remote, &q, 1, &b, err, sizeof err), SS_OK);
    ck_assert_int_ne(b.status, SS_OK);
    ck_assert_msg(b.error && strstr(b.error, "unsupported keyword pattern"), "%s", b.error ? b.error : "");
    ss_infer_res_clear(&b);
    remote->destroy(remote);
    local->destroy(local);
    ss_worker_stop(w);
}
END_TEST

Suite *check_it_openai_suite(void)
{
    Suite *s = suite_create("it_openai");
    TCase *tc = tcase_create("openai");
    tcase_add_checked_fixture(tc, fixture_start, fixture_stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_protocol_parsing);
    tcase_add_test(tc, test_retry_5xx_backoff);
    tcase_add_test(tc, test_retry_429_retry_after);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_garbage_and_missing_fields);
    tcase_add_test(tc, test_connection_refused);
    tcase_add_test(tc, test_concurrency_limit);
    tcase_add_test(tc, test_dispatcher_cache_over_openai);
    tcase_add_test(tc, test_grouped_http_requests);
    tcase_add_test(tc, test_openai_embedder);
    tcase_add_test(tc, test_generate_top_logprobs_cached);
    tcase_add_test(tc, test_hosted_chat);
    tcase_add_test(tc, test_hosted_json_schema);
    tcase_add_test(tc, test_hosted_logprob_limit);
    tcase_add_test(tc, test_hosted_no_logprobs_constrained);
    tcase_add_test(tc, test_legacy_model_fallback);
    tcase_add_test(tc, test_hosted_429_and_rate_limits);
    tcase_add_test(tc, test_model_options);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("worker"); /* the real worker and engine, no fixture */
    tcase_set_timeout(tw, 120);
    tcase_add_test(tw, test_real_worker_matches_local);
    tcase_add_test(tw, test_real_chat_worker_matches_local);
    tcase_add_test(tw, test_real_worker_json_schema);
    suite_add_tcase(s, tw);
    return s;
}
