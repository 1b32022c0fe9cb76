/*
 * check_it_worker_api.c — `semstream worker`'s OpenAI API over real HTTP, with real
 * models (a chat model written by mkmodel with a ChatML template, and stories260K):
 * chat completions equal the completion of the rendered conversation; streams add up
 * to the answers without streaming (stop strings held back); n, echo, logprobs,
 * base64 embeddings; every numeric field range-checked; errors shaped as OpenAI's and
 * counted in /metrics; the bearer token; idle and slow clients do not keep /health
 * from answering; a short call is answered beside a long one; and the answer cache:
 * an engine killed with requests in flight, restarted, gets them from the worker's
 * cache without the model running them again.
 */
#include "ss_chat.h"
#include "ss_gguf.h"
#include "ss_json.h"
#include "ss_llm.h"
#include "ss_worker.h"
#include "ss_worker_cache.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- set-up ---- */

static char chat_path[1024];

static const char *chat_model(void)
{
    if (!chat_path[0]) {
        char *dir = tu_tmpdir(), err[SS_ERRSZ] = "";
        snprintf(chat_path, sizeof chat_path, "%s/tinychat.gguf", dir);
        free(dir);
        ss_mkmodel_spec_t spec;
        ck_assert(ss_mkmodel_shape("tiny-qwen2", &spec));
        spec.chat_template = ss_chat_sample_template(SS_CHAT_CHATML);
        spec.special_tokens = ss_chat_markers(SS_CHAT_CHATML);
        ck_assert_msg(ss_mkmodel_write(&spec, chat_path, err, sizeof err) == SS_OK, "%s", err);
    }
    return chat_path;
}

static const char *stories(void)
{
    static char p[1024];
    return tu_model_path("stories260K.gguf", p, sizeof p);
}

static ss_worker_t *start(const char *model, ss_worker_opts_t *o)
{
    char err[SS_ERRSZ] = "";
    ss_infer_backend_t *be = ss_backend_local_new(model, 1, err, sizeof err);
    ck_assert_msg(be != NULL, "%s", err);
    if (!o->model_name)
        o->model_name = "m";
    ss_worker_t *w = NULL;
    ck_assert_msg(ss_worker_start(o, be, &w, err, sizeof err) == SS_OK, "%s", err);
    return w;
}

typedef struct http {
    long code;
    ss_buf_t body;
    double secs;
} http_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    ss_buf_append(&((http_t *)ud)->body, p, sz * n);
    return sz * n;
}

/* GET when body is NULL, else POST; auth: a Bearer token or NULL. */
static void req(int port, const char *path, const char *body, const char *auth, http_t *out)
{
    memset(out, 0, sizeof *out);
    char url[256], hdr[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", auth);
        hd = curl_slist_append(hd, hdr);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    int64_t t0 = ss_now_ns();
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->code);
    out->secs = (double)(ss_now_ns() - t0) / 1e9;
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
}

static ss_json_doc_t *post_json(int port, const char *path, const char *body, long want_code)
{
    http_t r;
    req(port, path, body, NULL, &r);
    ck_assert_msg(r.code == want_code, "%s -> %ld: %s", body, r.code, ss_buf_cstr(&r.body));
    ss_json_doc_t *d = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_json_parse(r.body.data, r.body.len, 0, &d, NULL, err, sizeof err) == SS_OK, "%s: %s", err,
                  ss_buf_cstr(&r.body));
    ss_buf_free(&r.body);
    return d;
}

static const ss_json_t *at(const ss_json_t *v, size_t i)
{
    return v && v->t == SS_JSON_ARRAY && i < v->u.arr.n ? &v->u.arr.items[i] : NULL;
}

static const ss_json_t *path2(const ss_json_t *v, const char *a, const char *b)
{
    return ss_json_get(ss_json_get(v, a), b);
}

static long metric(int port, const char *name)
{
    http_t r;
    req(port, "/metrics", NULL, NULL, &r);
    char k[160];
    snprintf(k, sizeof k, "\n%s ", name);
    const char *p = strstr(ss_buf_cstr(&r.body), k);
    long v = p ? atol(p + strlen(k)) : -1;
    ss_buf_free(&r.body);
    return v;
}

/* The text of a stream: every chunk's delta.content (chat) or text, in order; *done = saw [DONE];
 * *finish = the last finish_reason; *usage = the usage chunk's completion_tokens (or -1). */
static char *stream_text(const char *sse, int *done, char *finish, size_t fn, long *usage)
{
    ss_buf_t t = SS_BUF_INIT;
    *done = 0;
    *usage = -1;
    finish[0] = 0;
    for (const char *p = sse; (p = strstr(p, "data: ")); ) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        ck_assert_ptr_nonnull(e);
        if (!strncmp(p, "[DONE]", 6)) {
            *done = 1;
            break;
        }
        ss_json_doc_t *d = NULL;
        char err[SS_ERRSZ];
        ck_assert_msg(ss_json_parse(p, (size_t)(e - p), 0, &d, NULL, err, sizeof err) == SS_OK, "%s", err);
        const ss_json_t *root = ss_json_root(d), *ch = at(ss_json_get(root, "choices"), 0);
        const char *s = ss_json_str(path2(ch, "delta", "content"));
        if (!s)
            s = ss_json_str(ss_json_get(ch, "text"));
        if (s)
            ss_buf_puts(&t, s);
        const char *fr = ss_json_str(ss_json_get(ch, "finish_reason"));
        if (fr)
            snprintf(finish, fn, "%s", fr);
        const ss_json_t *u = path2(root, "usage", "completion_tokens");
        if (u && u->t == SS_JSON_INT)
            *usage = (long)u->u.i;
        ss_json_free(d);
        p = e;
    }
    return ss_buf_take(&t);
}

/* ---- chat and completions ---- */

START_TEST(test_chat_matches_completion)
{
    ss_worker_opts_t o = {0};
    ss_worker_t *w = start(chat_model(), &o);
    int port = ss_worker_port(w);
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]}],"
                       "\"max_tokens\":12,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}";
    ss_json_doc_t *d = post_json(port, "/v1/chat/completions", chat, 200);
    const ss_json_t *root = ss_json_root(d), *c0 = at(ss_json_get(root, "choices"), 0);
    ck_assert_str_eq(ss_json_str(ss_json_get(root, "object")), "chat.completion");
    ck_assert_str_eq(ss_json_str(path2(c0, "message", "role")), "assistant");
    const char *text = ss_json_str(path2(c0, "message", "content"));
    ck_assert_ptr_nonnull(text);
    const ss_json_t *content = path2(c0, "logprobs", "content");
    long ntok = (long)path2(root, "usage", "completion_tokens")->u.i;
    ck_assert_int_eq((long)content->u.arr.n, ntok); /* one entry per generated token */
    ss_buf_t cat = SS_BUF_INIT;
    for (size_t i = 0; i < content->u.arr.n; i++) {
        ss_buf_puts(&cat, ss_json_str(ss_json_get(at(content, i), "token")));
        ck_assert_int_eq((int)ss_json_get(at(content, i), "top_logprobs")->u.arr.n, 3);
    }
    ck_assert_str_eq(ss_buf_cstr(&cat), text); /* the tokens add up to the text */
    ss_buf_free(&cat);
    /* the same as /v1/completions of the conversation rendered in the model's template */
    char err[SS_ERRSZ];
    ss_llm_t *m = NULL;
    ck_assert(ss_llm_open(chat_model(), NULL, &m, err, sizeof err) == SS_OK);
    ss_chat_msg_t msgs[] = {{"system", "Be brief.", 9}, {"user", "Hello", 5}};
    ss_buf_t rendered = SS_BUF_INIT, body = SS_BUF_INIT;
    ck_assert(ss_llm_chat_render(m, msgs, 2, &rendered, err, sizeof err) == SS_OK);
    ss_llm_close(m);
    ss_buf_puts(&body, "{\"prompt\":");
    ss_json_put_str_utf8(&body, rendered.data, rendered.len);
    ss_buf_puts(&body, ",\"max_tokens\":12,\"temperature\":0,\"logprobs\":2}");
    ss_json_doc_t *d2 = post_json(port, "/v1/completions", ss_buf_cstr(&body), 200);
    const ss_json_t *c2 = at(ss_json_get(ss_json_root(d2), "choices"), 0);
    ck_assert_str_eq(ss_json_str(ss_json_get(c2, "text")), text);
    const ss_json_t *lp = ss_json_get(c2, "logprobs");
    ck_assert_int_eq((long)ss_json_get(lp, "tokens")->u.arr.n, ntok);
    ck_assert_int_eq((long)ss_json_get(lp, "top_logprobs")->u.arr.n, ntok);
    ck_assert_int_eq((long)ss_json_get(lp, "text_offset")->u.arr.n, ntok);
    ck_assert_int_eq((int)at(ss_json_get(lp, "top_logprobs"), 0)->u.obj.n, 2);
    ss_json_free(d);
    ss_json_free(d2);
    ss_buf_free(&rendered);
    ss_buf_free(&body);
    /* /v1/models names the template */
    http_t r;
    req(port, "/v1/models", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"semstream_chat_template\":\"chatml\""));
    ss_buf_free(&r.body);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_streams_add_up)
{
    ss_worker_opts_t o = {0};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    /* the answer without streaming, then stop strings taken from inside it */
    ss_json_doc_t *d = post_json(port, "/v1/completions",
                                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0}", 200);
    const char *full = ss_json_str(ss_json_get(at(ss_json_get(ss_json_root(d), "choices"), 0), "text"));
    ck_assert_int_gt((int)strlen(full), 30);
    char stop[8], body[512];
    snprintf(stop, sizeof stop, "%.4s", full + 20);
    for (int with_stop = 0; with_stop < 2; with_stop++) {
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0%s%s%s}",
                 with_stop ? ",\"stop\":[\"zzzz\",\"" : "", with_stop ? stop : "", with_stop ? "\"]" : "");
        ss_json_doc_t *plain = post_json(port, "/v1/completions", body, 200);
        const char *want = ss_json_str(ss_json_get(at(ss_json_get(ss_json_root(plain), "choices"), 0), "text"));
        char sbody[600];
        snprintf(sbody, sizeof sbody, "%.*s,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                 (int)strlen(body) - 1, body);
        http_t r;
        req(port, "/v1/completions", sbody, NULL, &r);
        ck_assert_int_eq(r.code, 200);
        int done;
        long usage;
        char finish[16];
        char *got = stream_text(ss_buf_cstr(&r.body), &done, finish, sizeof finish, &usage);
        ck_assert_msg(!strcmp(got, want), "stream %s / plain %s", got, want);
        ck_assert(done);
        ck_assert_str_eq(finish, with_stop ? "stop" : "length");
        ck_assert_int_ge(usage, 1);
        if (with_stop)
            ck_assert_int_eq((int)strlen(want), 20);
        free(got);
        ss_buf_free(&r.body);
        ss_json_free(plain);
    }
    ss_json_free(d);
    ss_worker_stop(w);
    /* chat streams too, the first chunk naming the role */
    w = start(chat_model(), &o);
    port = ss_worker_port(w);
    const char *c = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":9,\"temperature\":0";
    char cb[300];
    snprintf(cb, sizeof cb, "%s}", c);
    ss_json_doc_t *cd = post_json(port, "/v1/chat/completions", cb, 200);
    const char *want = ss_json_str(path2(at(ss_json_get(ss_json_root(cd), "choices"), 0), "message", "content"));
    snprintf(cb, sizeof cb, "%s,\"stream\":true}", c);
    http_t r;
    req(port, "/v1/chat/completions", cb, NULL, &r);
    int done;
    long usage;
    char finish[16];
    char *got = stream_text(ss_buf_cstr(&r.body), &done, finish, sizeof finish, &usage);
    ck_assert_str_eq(got, want);
    ck_assert(done);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "\"delta\":{\"role\":\"assistant\""));
    ck_assert_int_eq(usage, -1); /* no usage chunk unless asked */
    free(got);
    ss_buf_free(&r.body);
    ss_json_free(cd);
    ck_assert_int_eq(metric(port, "semstream_worker_streams_total"), 1);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_n_echo_base64)
{
    ss_worker_opts_t o = {0};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    const char *nb = "{\"prompt\":[\"Lily\",\"Tom\"],\"n\":3,\"max_tokens\":6,\"temperature\":1,\"seed\":7}";
    ss_json_doc_t *a = post_json(port, "/v1/completions", nb, 200), *b = post_json(port, "/v1/completions", nb, 200);
    const ss_json_t *ca = ss_json_get(ss_json_root(a), "choices"), *cb = ss_json_get(ss_json_root(b), "choices");
    ck_assert_int_eq((int)ca->u.arr.n, 6);
    int differ = 0;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq((int)ss_json_get(at(ca, (size_t)i), "index")->u.i, i);
        ck_assert_str_eq(ss_json_str(ss_json_get(at(ca, (size_t)i), "text")),
                         ss_json_str(ss_json_get(at(cb, (size_t)i), "text"))); /* seeded: reproducible */
        differ |= i % 3 && strcmp(ss_json_str(ss_json_get(at(ca, (size_t)i), "text")),
                                  ss_json_str(ss_json_get(at(ca, (size_t)(i - 1)), "text")));
    }
    ck_assert(differ); /* the n samples of a prompt are not copies */
    ss_json_free(a);
    ss_json_free(b);
    ss_json_doc_t *e = post_json(port, "/v1/completions",
                                 "{\"prompt\":\"Once upon\",\"max_tokens\":4,\"temperature\":0,\"echo\":true}", 200);
    ck_assert(!strncmp(ss_json_str(ss_json_get(at(ss_json_get(ss_json_root(e), "choices"), 0), "text")), "Once upon", 9));
    ss_json_free(e);
    ss_json_doc_t *f = post_json(port, "/v1/embeddings", "{\"input\":[\"a dog\",\"a cat\"]}", 200);
    ss_json_doc_t *g = post_json(port, "/v1/embeddings", "{\"input\":[\"a dog\",\"a cat\"],\"encoding_format\":\"base64\"}",
                                 200);
    for (int i = 0; i < 2; i++) {
        const ss_json_t *fv = ss_json_get(at(ss_json_get(ss_json_root(f), "data"), (size_t)i), "embedding");
        const char *gv = ss_json_str(ss_json_get(at(ss_json_get(ss_json_root(g), "data"), (size_t)i), "embedding"));
        ck_assert_ptr_nonnull(gv);
        /* decode: little-endian float32 */
        static const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t n = strlen(gv), k = 0;
        unsigned char *raw = malloc(n);
        uint32_t acc = 0;
        int bits = 0;
        for (size_t j = 0; j < n && gv[j] != '='; j++) {
            acc = acc << 6 | (uint32_t)(strchr(alpha, gv[j]) - alpha);
            if ((bits += 6) >= 8)
                raw[k++] = (unsigned char)(acc >> (bits -= 8));
        }
        ck_assert_int_eq((int)k, 4 * (int)fv->u.arr.n);
        for (size_t j = 0; j < fv->u.arr.n; j++) {
            float x;
            uint32_t u = (uint32_t)raw[4 * j] | (uint32_t)raw[4 * j + 1] << 8 | (uint32_t)raw[4 * j + 2] << 16 |
                         (uint32_t)raw[4 * j + 3] << 24;
            memcpy(&x, &u, 4);
            double want = at(fv, j)->t == SS_JSON_INT ? (double)at(fv, j)->u.i : at(fv, j)->u.r;
            ck_assert_double_eq_tol(x, want, 1e-6);
        }
        free(raw);
    }
    ss_json_free(f);
    ss_json_free(g);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_errors_and_ranges)
{
    ss_worker_opts_t o = {.model_name = "stories260K"};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    struct { const char *path, *body; long code; const char *want; } t[] = {
        {"/v1/completions", "{\"model\":\"gpt-4\",\"prompt\":\"x\"}", 404, "model_not_found"},
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":1e300}", 400, "'max_tokens' must be an integer"},
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2.5}", 400, "'max_tokens' must be an integer"},
        {"/v1/completions", "{\"prompt\":\"x\",\"seed\":1e300}", 400, "'seed' must be an integer"},
        {"/v1/completions", "{\"prompt\":\"x\",\"logprobs\":1e300}", 400, "'logprobs' must be an integer between 0 and 20"},
        {"/v1/completions", "{\"prompt\":\"x\",\"temperature\":-1}", 400, "'temperature' must be a number between 0 and 2"},
        {"/v1/completions", "{\"prompt\":\"x\",\"n\":0}", 400, "'n' must be an integer between 1 and 16"},
        {"/v1/completions", "{\"prompt\":\"x\",\"top_p\":0.5}", 400, "'top_p' is not supported"},
        {"/v1/completions", "{\"prompt\":\"x\",\"logit_bias\":{\"5\":1}}", 400, "'logit_bias' is not supported"},
        {"/v1/completions", "{\"prompt\":\"x\",\"echo\":true,\"logprobs\":1}", 400, "'echo' with 'logprobs'"},
        {"/v1/completions", "{\"prompt\":[1,2,3]}", 400, "token ids are not accepted"},
        {"/v1/completions", "{\"prompt\":\"x\",\"stream\":\"yes\"}", 400, "'stream' must be true or false"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400, "no chat template"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":3}", 400,
         "'top_logprobs' needs 'logprobs': true"},
        {"/v1/chat/completions", "{\"messages\":[]}", 400, "'messages' must be an array"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{}]}", 400,
         "'tools' is not supported"},
        {"/v1/embeddings", "{\"input\":\"x\",\"encoding_format\":\"int8\"}", 400, "'encoding_format' must be"},
        {"/v1/embeddings", "{\"input\":\"x\",\"dimensions\":7}", 400, "'dimensions' is not supported"},
        {"/v1/nothing", "{}", 404, "no such endpoint"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(t); i++) {
        http_t r;
        req(port, t[i].path, t[i].body, NULL, &r);
        ck_assert_msg(r.code == t[i].code && strstr(ss_buf_cstr(&r.body), t[i].want), "%s %s -> %ld %s", t[i].path,
                      t[i].body, r.code, ss_buf_cstr(&r.body));
        ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "{\"error\":{\"message\":"));
        ss_buf_free(&r.body);
    }
    /* the model's file name with and without .gguf is fine too when so named */
    ck_assert_int_eq(metric(port, "semstream_worker_errors_total"), (long)SS_ARRAY_LEN(t));
    http_t r;
    req(port, "/metrics", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "semstream_worker_error_responses_total{status=\"404\"} 2"));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "semstream_worker_error_responses_total{status=\"400\"} 17"));
    ss_buf_free(&r.body);
    ss_worker_stop(w);
}
END_TEST

START_TEST(test_bearer_token)
{
    ss_worker_opts_t o = {.auth_token = "s3cret"};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    http_t r;
    req(port, "/health", NULL, NULL, &r); /* liveness needs no token */
    ck_assert_int_eq(r.code, 200);
    ss_buf_free(&r.body);
    const char *paths[] = {"/v1/models", "/metrics"};
    for (int i = 0; i < 2; i++) {
        req(port, paths[i], NULL, NULL, &r);
        ck_assert_int_eq(r.code, 401);
        ss_buf_free(&r.body);
        req(port, paths[i], NULL, "wrong", &r);
        ck_assert_int_eq(r.code, 401);
        ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "invalid_api_key"));
        ss_buf_free(&r.body);
    }
    req(port, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2}", NULL, &r);
    ck_assert_int_eq(r.code, 401);
    ss_buf_free(&r.body);
    req(port, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2}", "s3cret", &r);
    ck_assert_int_eq(r.code, 200);
    ss_buf_free(&r.body);
    req(port, "/metrics", NULL, "s3cret", &r);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&r.body), "semstream_worker_auth_failures_total 5"));
    ss_buf_free(&r.body);
    ss_worker_stop(w);
}
END_TEST

/* ---- slow and idle clients, short beside long ---- */

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        return -1;
    }
    return s;
}

START_TEST(test_idle_and_slow_clients)
{
    ss_worker_opts_t o = {.idle_timeout_s = 2};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    enum { IDLE = 400, SLOW = 20 };
    int fds[IDLE + SLOW];
    for (int i = 0; i < IDLE + SLOW; i++) {
        fds[i] = connect_to(port);
        ck_assert_int_ge(fds[i], 0);
    }
    /* slow clients: headers and half a body, then nothing */
    const char *part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100\r\n\r\n{\"prompt\":";
    for (int i = IDLE; i < IDLE + SLOW; i++)
        ck_assert_int_gt((int)write(fds[i], part, strlen(part)), 0);
    usleep(200 * 1000);
    http_t r;
    req(port, "/health", NULL, NULL, &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_msg(r.secs < 1.0, "/health took %.3f s beside %d idle and %d slow clients", r.secs, IDLE, SLOW);
    ss_buf_free(&r.body);
    req(port, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":3}", NULL, &r);
    ck_assert_int_eq(r.code, 200);
    ss_buf_free(&r.body);
    ck_assert_int_ge(metric(port, "semstream_worker_connections"), IDLE + SLOW);
    /* after the idle timeout they are closed */
    long open = 0;
    for (int i = 0; i < 60; i++) {
        usleep(100 * 1000);
        if ((open = metric(port, "semstream_worker_connections")) <= 2)
            break;
    }
    ck_assert_int_le(open, 2);
    for (int i = 0; i < IDLE + SLOW; i++)
        close(fds[i]);
    ss_worker_stop(w);
}
END_TEST

typedef struct timed {
    int port;
    const char *path, *body;
    http_t r;
    int64_t end_ns;
} timed_t;

static void *timed_main(void *arg)
{
    timed_t *t = arg;
    req(t->port, t->path, t->body, NULL, &t->r);
    t->end_ns = ss_now_ns();
    return NULL;
}

START_TEST(test_short_beside_long)
{
    /* one call of 512 prompts, then a 2-token call: the short one is admitted beside the long one's
     * requests (the call with the fewest running goes first) and comes back long before it */
    ss_worker_opts_t o = {.max_tokens_limit = 64};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    ss_buf_t big = SS_BUF_INIT;
    ss_buf_puts(&big, "{\"prompt\":[");
    for (int i = 0; i < 512; i++)
        ss_buf_printf(&big, "%s\"Story number %d: once upon a time there was a little girl who\"", i ? "," : "", i);
    ss_buf_puts(&big, "],\"max_tokens\":24,\"temperature\":0}");
    timed_t t[2] = {{port, "/v1/completions", ss_buf_cstr(&big), {0}, 0},
                    {port, "/v1/completions", "{\"prompt\":\"Lily\",\"max_tokens\":2,\"temperature\":0}", {0}, 0}};
    pthread_t th[2];
    pthread_create(&th[0], NULL, timed_main, &t[0]);
    for (int i = 0; i < 5000 && metric(port, "semstream_worker_running_sequences") < 8; i++)
        usleep(1000);
    int64_t t1 = ss_now_ns();
    pthread_create(&th[1], NULL, timed_main, &t[1]);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    ck_assert_int_eq(t[0].r.code, 200);
    ck_assert_int_eq(t[1].r.code, 200);
    double short_s = (double)(t[1].end_ns - t1) / 1e9, long_s = (double)(t[0].end_ns - t1) / 1e9;
    fprintf(stderr, "short call %.3f s, long call finished %.3f s after it started\n", short_s, long_s);
    ck_assert_msg(t[1].end_ns < t[0].end_ns && short_s < long_s / 4, "short %.3f s, long %.3f s", short_s, long_s);
    ss_buf_free(&t[0].r.body);
    ss_buf_free(&t[1].r.body);
    ss_buf_free(&big);
    ss_worker_stop(w);
}
END_TEST

/* ---- processes: the listen address, and the answer cache across an engine crash ---- */

static pid_t spawn(const char *const *args, int out_fd)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (out_fd >= 0) {
            dup2(out_fd, 1);
            dup2(out_fd, 2);
        }
        execv(SS_BINARY_DIR "/semstream", (char *const *)args);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(test_listen_beyond_loopback_needs_token)
{
    if (access(SS_BINARY_DIR "/semstream", X_OK) != 0)
        return;
    char *dir = tu_tmpdir(), out[1024];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    FILE *f = fopen(out, "w");
    const char *args[] = {"semstream", "worker", "--model", stories(), "--listen", "0.0.0.0", "--port", "0",
                          "--no-cache", NULL};
    ck_assert_int_eq(wait_exit(spawn(args, fileno(f))), 1);
    fclose(f);
    char *txt = tu_read_file(out, NULL);
    ck_assert_msg(strstr(txt, "needs --auth-token-file"), "%s", txt);
    free(txt);
    free(dir);
}
END_TEST

static const char *VIEW_SQL =
    "CREATE MODEL IF NOT EXISTS w WITH (backend = 'openai', url = 'http://127.0.0.1:%d', model = 'stories260K',"
    " default = true);\n"
    "CREATE STREAM IF NOT EXISTS s (id INT KEY, t TEXT) WITH (topic = 's');\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS v AS SELECT id, SEM_MAP('Tell a story about {t}', max_tokens = 48) AS m FROM s;\n";

static pid_t start_broker(char *addr, size_t n)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(SS_BINARY_DIR "/semstream", "semstream", "kafka", "--topic", "s:1", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    addr[0] = 0;
    if (!fgets(addr, (int)n, f))
        addr[0] = 0;
    addr[strcspn(addr, "\r\n")] = 0;
    return pid;
}

START_TEST(test_engine_crash_answers_from_cache)
{
    if (access(SS_BINARY_DIR "/semstream", X_OK) != 0)
        return;
    enum { ROWS = 40 };
    char *dir = tu_tmpdir(), cache[1024], script[1024], loader[1024], rows[1024], db[1024], ldb[1024], brokers[256];
    snprintf(cache, sizeof cache, "%s/worker.cache", dir);
    snprintf(script, sizeof script, "%s/view.sql", dir);
    snprintf(loader, sizeof loader, "%s/load.sql", dir);
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(ldb, sizeof ldb, "%s/loader.db", dir);
    ss_worker_cache_t *wc = NULL;
    char err[SS_ERRSZ];
    ck_assert_msg(ss_worker_cache_open(cache, &wc, err, sizeof err) == SS_OK, "%s", err);
    /* one request at a time, so that many are waiting in the worker when the engine dies */
    ss_worker_opts_t o = {.model_name = "stories260K", .cache = wc, .max_batch = 1};
    ss_worker_t *w = start(stories(), &o);
    int port = ss_worker_port(w);
    FILE *f = fopen(script, "w");
    fprintf(f, VIEW_SQL, port);
    fclose(f);
    f = fopen(loader, "w");
    fputs("CREATE STREAM s (id INT KEY, t TEXT) WITH (topic = 's');\n", f);
    fclose(f);
    f = fopen(rows, "w");
    static const char *things[] = {"a cat", "a dog", "the sea", "a red car", "a tall tree"};
    for (int i = 0; i < ROWS; i++)
        fprintf(f, "{\"op\":\"insert\",\"row\":{\"id\":%d,\"t\":\"%s number %d\"}}\n", i, things[i % 5], i);
    fclose(f);
    pid_t broker = start_broker(brokers, sizeof brokers);
    ck_assert_msg(strchr(brokers, ':'), "broker address: %s", brokers);
    char load_arg[1100];
    snprintf(load_arg, sizeof load_arg, "s=%s", rows);
    const char *largs[] = {"semstream", "run", loader, "--db", ldb, "--brokers", brokers, "--load", load_arg,
                           "--until-idle", "--quiet", NULL};
    ck_assert_int_eq(wait_exit(spawn(largs, -1)), 0);
    /* the engine: killed once some answers came and others are still in the worker */
    const char *eargs[] = {"semstream", "run", script, "--db", db, "--brokers", brokers, "--quiet", NULL};
    pid_t eng = spawn(eargs, -1);
    long done = 0, waiting = 0;
    for (int i = 0; i < 60000; i++) {
        done = metric(port, "semstream_worker_inferences_total");
        waiting = metric(port, "semstream_worker_queue_depth") + metric(port, "semstream_worker_running_sequences");
        if (done >= 3 && waiting >= 2)
            break;
        usleep(500);
    }
    kill(eng, SIGKILL);
    ck_assert_int_eq(wait_exit(eng), 128 + SIGKILL);
    ck_assert_msg(done >= 3 && waiting >= 2, "never caught the worker with requests (%ld done, %ld waiting)", done,
                  waiting);
    /* the worker finishes what it was asked, although nobody waits for it, and stores it */
    for (int i = 0; i < 20000; i++) {
        if (metric(port, "semstream_worker_queue_depth") + metric(port, "semstream_worker_running_sequences") == 0)
            break;
        usleep(1000);
    }
    long computed = metric(port, "semstream_worker_inferences_total"), stored = 0;
    for (int i = 0; i < 5000 && (stored = metric(port, "semstream_worker_cache_stored_total")) < computed; i++)
        usleep(1000); /* the writer stores them before they are sent */
    ck_assert_int_eq(stored, computed);
    fprintf(stderr, "killed with %ld answers sent and %ld in the worker; %ld computed and stored\n", done, waiting,
            computed);
    /* the restarted engine asks again; the worker answers those from its cache (the model is in
     * the catalog now: the script of the restart leaves it out) */
    char again[1100];
    snprintf(again, sizeof again, "%s/again.sql", dir);
    f = fopen(again, "w");
    fputs(strchr(VIEW_SQL, '\n') + 1, f);
    fclose(f);
    const char *fargs[] = {"semstream", "run", again, "--db", db, "--brokers", brokers, "--until-idle",
                           "--timeout-ms", "120000", "--quiet", NULL};
    ck_assert_int_eq(wait_exit(spawn(fargs, -1)), 0);
    long hits = metric(port, "semstream_worker_cache_hits_total");
    long total = metric(port, "semstream_worker_inferences_total");
    fprintf(stderr, "after the restart: %ld cache hits, %ld computed in all for %d rows\n", hits, total, ROWS);
    ck_assert_int_ge(hits, 1);
    ck_assert_int_eq(total, ROWS); /* every row's answer computed exactly once */
    kill(broker, SIGTERM);
    wait_exit(broker);
    ss_worker_stop(w);
    free(dir);
}
END_TEST

Suite *check_it_worker_api_suite(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("worker_api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_chat_matches_completion);
    tcase_add_test(tc, test_streams_add_up);
    tcase_add_test(tc, test_n_echo_base64);
    tcase_add_test(tc, test_errors_and_ranges);
    tcase_add_test(tc, test_bearer_token);
    tcase_add_test(tc, test_idle_and_slow_clients);
    tcase_add_test(tc, test_short_beside_long);
    tcase_add_test(tc, test_listen_beyond_loopback_needs_token);
    tcase_add_test(tc, test_engine_crash_answers_from_cache);
    suite_add_tcase(s, tc);
    return s;
}
