/*
 * fixture_slow_server.c — a FIXTURE, not a model: a slow OpenAI-compatible HTTP
 * server for benchmarks and tests (bench/isolation, check_it_runtime). It answers
 * every request after --delay-ms (each connection in a thread of its own, so
 * concurrent requests wait side by side, as on a real server), with answers that
 * are a deterministic function of the prompt, so a view computed through it can be
 * compared with a from-scratch run:
 *   POST /v1/completions        legacy API; prompt a string or an array
 *   POST /v1/chat/completions   chat API; the last message's content is the prompt
 *   with logprobs asked for (a yes/no question, SEM_FILTER): top logprobs of " yes"
 *   and " no", "yes" with probability 0.8 for two prompts in three (by a hash of
 *   the prompt), else 0.2; without (SEM_MAP, generation): "answer-<hash>".
 *   GET /v1/models              one model, owned_by "fixture" (not a semstream worker)
 *   GET /stats                  {"requests":N,"prompts":P,"max_concurrent":M,"concurrent":C}
 *   anything else               404
 * --fail-every K answers HTTP 500 to every K-th request (for retry tests).
 * Prints its base URL ("http://127.0.0.1:PORT") as the first line of stdout and
 * serves until SIGTERM/SIGINT. --port P binds P (to come back on the same port
 * after being stopped); 0 (the default) picks a free one.
 */
#include "ss_base.h"
#include "ss_json.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static int g_delay_ms, g_fail_every;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_requests, g_prompts;
static int g_concurrent, g_max_concurrent;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The yes probability and the generated text of a prompt. */
static double p_yes(const char *prompt) { return fnv(prompt) % 3 ? 0.8 : 0.2; }

static void gen_text(const char *prompt, char *out, size_t n)
{
    snprintf(out, n, "answer-%08llx", (unsigned long long)(fnv(prompt) & 0xffffffffULL));
}

/* The prompts of a request body: "prompt" (a string or an array) or the last message's content. */
static int prompts_of(const ss_json_t *root, int chat, const char **out, int cap)
{
    const ss_json_t *v = ss_json_get(root, chat ? "messages" : "prompt");
    if (chat) {
        size_t n = v && v->t == SS_JSON_ARRAY ? v->u.arr.n : 0;
        const char *c = n ? ss_json_str(ss_json_get(&v->u.arr.items[n - 1], "content")) : NULL;
        if (!c)
            return 0;
        out[0] = c;
        return 1;
    }
    if (ss_json_str(v)) {
        out[0] = ss_json_str(v);
        return 1;
    }
    int k = 0;
    for (size_t i = 0; v && v->t == SS_JSON_ARRAY && i < v->u.arr.n && k < cap; i++)
        if (ss_json_str(&v->u.arr.items[i]))
            out[k++] = ss_json_str(&v->u.arr.items[i]);
    return k;
}

static void legacy_choice(ss_buf_t *b, const char *prompt, int k, int logprobs)
{
    ss_buf_printf(b, "%s{\"index\":%d,", k ? "," : "", k);
    if (logprobs) {
        double y = p_yes(prompt);
        ss_buf_printf(b, "\"text\":\"%s\",\"logprobs\":{\"tokens\":[\"%s\"],\"top_logprobs\":[{\" yes\":%.9g,"
                      "\" no\":%.9g}]},\"finish_reason\":\"length\"}", y > 0.5 ? " yes" : " no",
                      y > 0.5 ? " yes" : " no", log(y), log(1 - y));
    } else {
        char t[64];
        gen_text(prompt, t, sizeof t);
        ss_buf_printf(b, "\"text\":\"%s\",\"finish_reason\":\"stop\"}", t);
    }
}

static void chat_choice(ss_buf_t *b, const char *prompt, int logprobs)
{
    if (logprobs) {
        double y = p_yes(prompt);
        const char *tok = y > 0.5 ? " yes" : " no";
        ss_buf_printf(b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"logprobs\":{"
                      "\"content\":[{\"token\":\"%s\",\"logprob\":%.9g,\"top_logprobs\":[{\"token\":\" yes\","
                      "\"logprob\":%.9g},{\"token\":\" no\",\"logprob\":%.9g}]}]},\"finish_reason\":\"length\"}",
                      tok, tok, log(y > 0.5 ? y : 1 - y), log(y), log(1 - y));
    } else {
        char t[64];
        gen_text(prompt, t, sizeof t);
        ss_buf_printf(b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
                      "\"finish_reason\":\"stop\"}", t);
    }
}

/* The body of a 200 answer, or NULL (400). */
static char *answer(const char *url, const char *body)
{
    int chat = !strcmp(url, "/v1/chat/completions");
    ss_json_doc_t *doc = NULL;
    char err[SS_ERRSZ];
    if (ss_json_parse(body, strlen(body), 0, &doc, NULL, err, sizeof err) != SS_OK)
        return NULL;
    const ss_json_t *root = ss_json_root(doc);
    const ss_json_t *lp = ss_json_get(root, "logprobs");
    int logprobs = lp && !(lp->t == SS_JSON_BOOL && !lp->u.b) && lp->t != SS_JSON_NULL;
    const char *pr[256];
    int n = prompts_of(root, chat, pr, 256);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_printf(&b, "{\"id\":\"fx\",\"object\":\"%s\",\"model\":\"fixture\",\"choices\":[",
                  chat ? "chat.completion" : "text_completion");
    for (int k = 0; k < n; k++) {
        if (chat)
            chat_choice(&b, pr[k], logprobs);
        else
            legacy_choice(&b, pr[k], k, logprobs);
    }
    ss_buf_printf(&b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}", 8 * n, 2 * n);
    pthread_mutex_lock(&g_mu);
    g_prompts += n;
    pthread_mutex_unlock(&g_mu);
    ss_json_free(doc);
    return n ? ss_buf_take(&b) : (ss_buf_free(&b), NULL);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code, char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* Sleeps ms, or less once the server is asked to stop. */
static void sleep_ms(int ms)
{
    int64_t end = ss_now_ns() + (int64_t)ms * 1000000;
    while (!g_stop) {
        int64_t left = end - ss_now_ns();
        if (left <= 0)
            return;
        struct timespec ts = {0, (long)SS_MIN(left, 50000000LL)};
        nanosleep(&ts, NULL);
    }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *up, size_t *upsz, void **con_cls)
{
    (void)cls, (void)version;
    ss_buf_t *b = *con_cls;
    if (!b) {
        *con_cls = calloc(1, sizeof(ss_buf_t));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upsz) {
        ss_buf_append(b, up, *upsz);
        *upsz = 0;
        return MHD_YES;
    }
    if (!strcmp(method, "GET") && !strcmp(url, "/v1/models"))
        return send_text(c, 200, ss_strdup("{\"object\":\"list\",\"data\":[{\"id\":\"fixture\",\"object\":\"model\","
                                           "\"owned_by\":\"fixture\"}]}"));
    if (!strcmp(method, "GET") && !strcmp(url, "/stats")) {
        pthread_mutex_lock(&g_mu);
        char *t = ss_sprintf("{\"requests\":%ld,\"prompts\":%ld,\"max_concurrent\":%d,\"concurrent\":%d}\n", g_requests,
                             g_prompts, g_max_concurrent, g_concurrent);
        pthread_mutex_unlock(&g_mu);
        return send_text(c, 200, t);
    }
    if (strcmp(method, "POST") || (strcmp(url, "/v1/completions") && strcmp(url, "/v1/chat/completions")))
        return send_text(c, 404, ss_strdup("{\"error\":{\"message\":\"no such path\"}}"));
    pthread_mutex_lock(&g_mu);
    long nreq = ++g_requests;
    g_concurrent++;
    g_max_concurrent = SS_MAX(g_max_concurrent, g_concurrent);
    pthread_mutex_unlock(&g_mu);
    if (g_delay_ms > 0)
        sleep_ms(g_delay_ms);
    char *text = g_fail_every > 0 && nreq % g_fail_every == 0 ? NULL : answer(url, ss_buf_cstr(b));
    enum MHD_Result ret;
    if (g_fail_every > 0 && nreq % g_fail_every == 0)
        ret = send_text(c, 500, ss_strdup("{\"error\":{\"message\":\"fixture: failing on purpose\"}}"));
    else if (!text)
        ret = send_text(c, 400, ss_strdup("{\"error\":{\"message\":\"bad request\"}}"));
    else
        ret = send_text(c, 200, text);
    pthread_mutex_lock(&g_mu);
    g_concurrent--;
    pthread_mutex_unlock(&g_mu);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    ss_buf_t *b = *con_cls;
    if (b)
        ss_buf_free(b);
    free(b);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
            g_delay_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fail-every") && i + 1 < argc)
            g_fail_every = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port P] [--delay-ms D] [--fail-every K]\n"
                            "A FIXTURE: a slow OpenAI-compatible server with deterministic answers.\n", argv[0]);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fixture_slow_server: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    printf("http://127.0.0.1:%d\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fflush(stdout);
    while (!g_stop)
        sleep_ms(50);
    MHD_stop_daemon(d);
    return 0;
}
