/*
 * backend_openai.c — the OpenAI-compatible HTTP inference backend (ss_backends.h).
 *
 * Every inference request becomes part of one HTTP POST (a job):
 *   CHOOSE    chat: max_tokens 1, temperature 0, logprobs true, top_logprobs k;
 *             legacy: the same with "logprobs": k. The probability of each choice is
 *             that of its first token among the top k of the first generated position
 *             (choose_probs). Without logprobs from the server: the constrained form,
 *             the choices listed in the prompt and the answer read back (constrained);
 *   SCORE     the same, over the integers score_min..score_max; the expected value;
 *   GENERATE  the chat or legacy completion with max_tokens, temperature, seed, stop, and
 *             response_format {type: json_schema} when the request carries a JSON Schema;
 *   EMBED     /v1/embeddings, inputs grouped as arrays.
 * What a server cannot do is learnt from its answers and kept for later batches:
 * the legacy API where it says the model is not a chat model, a smaller top_logprobs
 * where it refuses k, max_completion_tokens where it refuses max_tokens, the
 * constrained form where it gives no logprobs. A batch runs on one curl multi handle
 * with at most max_concurrency transfers at once, within the rpm/tpm token buckets;
 * connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff
 * and jitter (a Retry-After header wins when larger). Owns its curl handles; responses
 * are read with src/base/ss_json.h.
 */
#include "ss_backends.h"
#include "ss_json.h"

#include <curl/curl.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small lookups over ss_json ---- */

static const ss_json_t *jidx(const ss_json_t *v, size_t i)
{
    return v && v->t == SS_JSON_ARRAY && i < v->u.arr.n ? &v->u.arr.items[i] : NULL;
}

static size_t jlen(const ss_json_t *v) { return v && v->t == SS_JSON_ARRAY ? v->u.arr.n : 0; }

/* 1 and *out set if v is a number. */
static int jnum(const ss_json_t *v, double *out)
{
    if (!v || (v->t != SS_JSON_INT && v->t != SS_JSON_REAL)) return 0;
    *out = v->t == SS_JSON_INT ? (double)v->u.i : v->u.r;
    return 1;
}

/* ======================= the backend ======================= */

enum { EP_CHAT, EP_LEGACY, EP_EMBED };

typedef struct bucket {    /* a token bucket: rate per minute, refilled continuously, holding at most a
                              second's worth (at least 1): the rate is kept smoothly, without bursts */
    double level, cap, rate;
    int64_t at_ns;
} bucket_t;

typedef struct oai {
    ss_openai_opts_t o;     /* strings below are owned copies */
    char *url, *model, *api_key, *org, *project;
    char *chat_url, *completions_url, *embeddings_url, *models_url;
    CURLM **idle;           /* multi handles between batches (each keeps its connections) */
    int nidle, cidle;
    int active;             /* HTTP requests in flight, all batches together (<= max_concurrency) */
    pthread_mutex_t mu;     /* guards what batches share: everything below, active, idle */
    pthread_mutex_t probe_mu; /* one GET /v1/models at a time */
    int ext;                /* semstream extensions: 1 on, 0 off, -1 not known yet (auto) */
    int canceled;           /* set by oai_cancel (atomic): runs end within a poll (<= 100 ms) */
    int api;                /* EP_CHAT or EP_LEGACY; -1 = auto, not decided */
    int lp_chat, lp_legacy; /* top logprobs asked on each API (lowered when a server refuses) */
    int no_logprobs;        /* the server gives no logprobs: CHOOSE/SCORE constrained */
    int completion_tokens_key; /* send max_completion_tokens instead of max_tokens */
    bucket_t rpm, tpm;
    uint64_t rng;           /* jitter */
    int probed;             /* GET /v1/models got an answer */
} oai_t;

/* The state of one batch (several run at once, each on its own multi handle). */
typedef struct run {
    oai_t *b;
    CURLM *multi;
} run_t;

/* One HTTP request's life: it carries n inference requests (reqs[idx[k]] -> res[idx[k]]),
 * sent as a JSON array of prompts/inputs when n > 1 (legacy and embeddings only). */
typedef struct job {
    const ss_infer_req_t *reqs; /* the batch (borrowed) */
    ss_infer_res_t *res;
    int *idx;               /* members, in array order */
    int n;
    int ep;                 /* EP_* of this attempt */
    int constrained;        /* CHOOSE/SCORE asked in words (no logprobs) */
    int lp;                 /* top logprobs asked */
    char *body;             /* request JSON */
    ss_buf_t resp;
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    int attempts;
    int adapted;            /* re-sent in another form after a refusal (bounded) */
    int64_t not_before_ns;  /* backoff / rate limit: do not start before */
    int64_t tokens;         /* estimate for the tpm bucket */
    int done;
} job_t;

static int64_t ms_ns(int64_t ms) { return ms * 1000000LL; }

static const char *ep_path(int ep)
{
    return ep == EP_CHAT ? "/v1/chat/completions" : ep == EP_EMBED ? "/v1/embeddings" : "/v1/completions";
}

static const char *ep_url(const oai_t *b, int ep)
{
    return ep == EP_CHAT ? b->chat_url : ep == EP_EMBED ? b->embeddings_url : b->completions_url;
}

static char *endpoint(const char *url, const char *what)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    int has_v1 = n >= 3 && !strncmp(url + n - 3, "/v1", 3);
    return ss_sprintf("%.*s%s/%s", (int)n, url, has_v1 ? "" : "/v1", what);
}

static uint64_t rnd(oai_t *b)
{
    uint64_t z = (b->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- request bodies ---- */

static int is_pick(const ss_infer_req_t *r) { return r->kind == SS_INFER_CHOOSE || r->kind == SS_INFER_SCORE; }

/* The words of a constrained CHOOSE/SCORE: what the answer must be. */
static void put_instruction(const ss_infer_req_t *r, ss_buf_t *out)
{
    if (r->kind == SS_INFER_SCORE) {
        ss_buf_printf(out, "\n\nAnswer with one whole number from %d to %d and nothing else.", r->score_min,
                      r->score_max);
        return;
    }
    ss_buf_puts(out, "\n\nAnswer with exactly one of these and nothing else: ");
    for (int i = 0; i < r->nchoices; i++) {
        const char *c = r->choices[i] ? r->choices[i] : "";
        while (isspace((unsigned char)*c)) c++;
        ss_buf_printf(out, "%s\"%s\"", i ? ", " : "", c);
    }
    ss_buf_putc(out, '.');
}

static void put_prompt_text(const job_t *j, const ss_infer_req_t *r, size_t from, size_t to, ss_buf_t *out)
{
    ss_buf_t t = SS_BUF_INIT;
    ss_buf_append(&t, r->prompt ? r->prompt + from : "", to - from);
    if (j->constrained) put_instruction(r, &t);
    ss_json_put_str_utf8(out, t.data ? t.data : "", t.len);
    ss_buf_free(&t);
}

static void put_prompts(const job_t *j, ss_buf_t *out)
{
    if (j->n > 1) ss_buf_putc(out, '[');
    for (int k = 0; k < j->n; k++) {
        const ss_infer_req_t *r = &j->reqs[j->idx[k]];
        if (k) ss_buf_putc(out, ',');
        put_prompt_text(j, r, 0, r->prompt ? strlen(r->prompt) : 0, out);
    }
    if (j->n > 1) ss_buf_putc(out, ']');
}

/* messages: the request's system_len bytes as the system message, the rest as the user's. */
static void put_messages(const job_t *j, ss_buf_t *out)
{
    const ss_infer_req_t *r = &j->reqs[j->idx[0]];
    size_t len = r->prompt ? strlen(r->prompt) : 0, sl = SS_MIN(r->system_len, len);
    ss_buf_puts(out, ",\"messages\":[");
    if (sl) {
        ss_buf_puts(out, "{\"role\":\"system\",\"content\":");
        ss_json_put_str_utf8(out, r->prompt, sl);
        ss_buf_puts(out, "},");
    }
    ss_buf_puts(out, "{\"role\":\"user\",\"content\":");
    put_prompt_text(j, r, sl, len, out);
    ss_buf_puts(out, "}]");
}

static void put_stops(const ss_infer_req_t *r, ss_buf_t *out)
{
    int n = (r->stop && *r->stop) + r->nstop;
    if (!n) return;
    ss_buf_puts(out, ",\"stop\":[");
    int k = 0;
    if (r->stop && *r->stop) ss_json_put_str_utf8(out, r->stop, strlen(r->stop)), k++;
    for (int i = 0; i < r->nstop; i++) {
        const char *s = r->stops && r->stops[i] ? r->stops[i] : "";
        if (k++) ss_buf_putc(out, ',');
        ss_json_put_str_utf8(out, s, strlen(s));
    }
    ss_buf_putc(out, ']');
}

static void put_max_tokens(const oai_t *b, int ep, int n, ss_buf_t *out)
{
    ss_buf_printf(out, ",\"%s\":%d", ep == EP_CHAT && b->completion_tokens_key ? "max_completion_tokens" : "max_tokens",
                  n);
}

/* Top logprobs asked: the semstream worker and chat servers 20, legacy servers 5, unless told. */
static int want_lp(const oai_t *b, int ep, int asked)
{
    int cap = ep == EP_CHAT ? b->lp_chat : b->lp_legacy;
    return SS_MAX(1, SS_MIN(asked, cap));
}

static void put_logprobs(int ep, int k, ss_buf_t *out)
{
    if (ep == EP_CHAT) ss_buf_printf(out, ",\"logprobs\":true,\"top_logprobs\":%d", k);
    else ss_buf_printf(out, ",\"logprobs\":%d", k);
}

static void put_ext(const oai_t *b, const ss_infer_req_t *r, ss_buf_t *out)
{
    if (b->ext <= 0) return;
    if (r->kind == SS_INFER_CHOOSE) { /* a semstream worker answers exactly */
        ss_buf_puts(out, ",\"semstream_choices\":[");
        for (int i = 0; i < r->nchoices; i++) {
            const char *c = r->choices[i] ? r->choices[i] : "";
            if (i) ss_buf_putc(out, ',');
            ss_json_put_str_utf8(out, c, strlen(c));
        }
        ss_buf_putc(out, ']');
    } else if (r->kind == SS_INFER_SCORE) {
        ss_buf_printf(out, ",\"semstream_score\":[%d,%d]", r->score_min, r->score_max);
    }
}

/* Structured output (SEM_EXTRACT): the JSON Schema as response_format {type: json_schema} on the
 * chat API (and on a semstream worker's legacy endpoint, which honours it too); a legacy server
 * gets none, and the operator checks the answer against the schema either way. */
static void put_response_format(const oai_t *b, int ep, const ss_infer_req_t *r, ss_buf_t *out)
{
    if (!r->json_schema || (ep != EP_CHAT && b->ext <= 0)) return;
    ss_buf_printf(out, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"semstream_output\","
                       "\"strict\":true,\"schema\":%s}}", r->json_schema);
}

/* The request JSON; every member shares the parameters of the first (see compatible). */
static void build_body(oai_t *b, job_t *j, ss_buf_t *out)
{
    const ss_infer_req_t *r = &j->reqs[j->idx[0]];
    ss_buf_puts(out, "{\"model\":");
    ss_json_put_str_utf8(out, b->model, strlen(b->model));
    if (j->ep == EP_EMBED) {
        ss_buf_puts(out, ",\"input\":");
        put_prompts(j, out);
        ss_buf_puts(out, ",\"encoding_format\":\"float\"}");
        return;
    }
    if (j->ep == EP_CHAT) put_messages(j, out);
    else ss_buf_puts(out, ",\"prompt\":"), put_prompts(j, out);
    if (r->kind == SS_INFER_GENERATE) {
        put_max_tokens(b, j->ep, SS_MAX(r->max_tokens, 1), out);
        ss_buf_printf(out, ",\"temperature\":%.9g", (double)r->temperature);
        if (r->temperature > 0) ss_buf_printf(out, ",\"seed\":%llu", (unsigned long long)(r->seed & 0x7fffffffffffffffULL));
        if (r->top_logprobs > 0) put_logprobs(j->ep, j->lp = want_lp(b, j->ep, r->top_logprobs), out);
        put_stops(r, out);
        put_response_format(b, j->ep, r, out);
    } else if (j->constrained) {
        put_max_tokens(b, j->ep, 8, out);
        ss_buf_puts(out, ",\"temperature\":0,\"stop\":[\"\\n\"]");
    } else {
        put_max_tokens(b, j->ep, 1, out);
        ss_buf_puts(out, ",\"temperature\":0");
        j->lp = want_lp(b, j->ep, b->o.top_logprobs > 0 ? b->o.top_logprobs : 20);
        put_logprobs(j->ep, j->lp, out);
        if (j->ep == EP_LEGACY) ss_buf_puts(out, ",\"echo\":false");
        put_ext(b, r, out);
    }
    ss_buf_putc(out, '}');
}

/* The form of job j from what is known of the server now. */
static void job_prepare(oai_t *b, job_t *j)
{
    const ss_infer_req_t *r = &j->reqs[j->idx[0]];
    if (r->kind != SS_INFER_EMBED) j->ep = b->api == EP_LEGACY ? EP_LEGACY : EP_CHAT;
    j->constrained = is_pick(r) && b->no_logprobs && b->ext <= 0;
    free(j->body);
    ss_buf_t body = SS_BUF_INIT;
    build_body(b, j, &body);
    j->body = ss_buf_take(&body);
    j->tokens = 0;
    for (int k = 0; k < j->n; k++) { /* ~4 bytes a token, plus what may be generated */
        const ss_infer_req_t *q = &j->reqs[j->idx[k]];
        j->tokens += (int64_t)(q->prompt ? strlen(q->prompt) : 0) / 4 + 1 +
                     (q->kind == SS_INFER_GENERATE ? SS_MAX(q->max_tokens, 1) : q->kind == SS_INFER_EMBED ? 0 : 8);
    }
}

static int same_choices(const ss_infer_req_t *a, const ss_infer_req_t *b)
{
    if (a->nchoices != b->nchoices) return 0;
    for (int i = 0; i < a->nchoices; i++)
        if (strcmp(a->choices[i] ? a->choices[i] : "", b->choices[i] ? b->choices[i] : "")) return 0;
    return 1;
}

static int same_stops(const ss_infer_req_t *a, const ss_infer_req_t *b)
{
    if ((a->stop ? !b->stop || strcmp(a->stop, b->stop) : b->stop != NULL) || a->nstop != b->nstop) return 0;
    for (int i = 0; i < a->nstop; i++)
        if (strcmp(a->stops[i] ? a->stops[i] : "", b->stops[i] ? b->stops[i] : "")) return 0;
    return 1;
}

/* 1 if b can share one (legacy) HTTP request with a: same kind and body parameters. */
static int compatible(const oai_t *o, const ss_infer_req_t *a, const ss_infer_req_t *b)
{
    if (a->kind != b->kind) return 0;
    if (a->kind == SS_INFER_EMBED) return 1;
    /* with the extensions, choices and score range travel once per HTTP request */
    if (a->kind == SS_INFER_CHOOSE) return o->ext <= 0 || same_choices(a, b);
    if (a->kind == SS_INFER_SCORE)
        return o->ext <= 0 || (a->score_min == b->score_min && a->score_max == b->score_max);
    return a->max_tokens == b->max_tokens && a->temperature == b->temperature &&
           (a->temperature <= 0 || a->seed == b->seed) && a->top_logprobs == b->top_logprobs && same_stops(a, b) &&
           (a->json_schema ? b->json_schema && !strcmp(a->json_schema, b->json_schema) : !b->json_schema);
}

/* ---- transfers ---- */

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    return ss_buf_append(&j->resp, p, sz * n) == SS_OK ? sz * n : 0;
}

static int job_start(oai_t *b, CURLM *multi, job_t *j)
{
    ss_buf_reset(&j->resp);
    j->errbuf[0] = 0;
    j->h = curl_easy_init();
    if (!j->h) return SS_ERR_NOMEM;
    curl_easy_setopt(j->h, CURLOPT_URL, ep_url(b, j->ep));
    curl_easy_setopt(j->h, CURLOPT_POST, 1L);
    curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->h, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, (long)b->o.timeout_ms);
    curl_easy_setopt(j->h, CURLOPT_CONNECTTIMEOUT_MS, (long)SS_MIN(b->o.timeout_ms, 10000));
    curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
    j->attempts++;
    if (curl_multi_add_handle(multi, j->h) != CURLM_OK) {
        curl_easy_cleanup(j->h);
        j->h = NULL;
        return SS_ERR_HTTP;
    }
    return SS_OK;
}

/* Fails member k (k < 0: every member) with "openai backend URL: message". */
static void fail_members(oai_t *b, job_t *j, int k, int code, const char *fmt, va_list ap)
{
    ss_buf_t m = SS_BUF_INIT;
    ss_buf_printf(&m, "openai backend %s: ", b->url);
    ss_buf_vprintf(&m, fmt, ap);
    for (int i = k < 0 ? 0 : k; i < (k < 0 ? j->n : k + 1); i++) {
        ss_infer_res_t *r = &j->res[j->idx[i]];
        ss_infer_res_clear(r);
        r->status = code;
        r->error = ss_strdup(ss_buf_cstr(&m));
    }
    ss_buf_free(&m);
}

static void job_fail(oai_t *b, job_t *j, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void job_fail(oai_t *b, job_t *j, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_members(b, j, -1, code, fmt, ap);
    va_end(ap);
    j->done = 1;
}

static void member_fail(oai_t *b, job_t *j, int k, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void member_fail(oai_t *b, job_t *j, int k, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_members(b, j, k, code, fmt, ap);
    va_end(ap);
}

/* A printable snippet of the response body for error messages. */
static const char *snippet(const job_t *j, char *buf, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < j->resp.len && k + 4 < n && i < 200; i++) {
        unsigned char c = (unsigned char)j->resp.data[i];
        buf[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
    }
    if (j->resp.len > 200 && k + 4 < n) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = 0;
    return buf;
}

/* ---- response parsing ---- */

/* top logprobs of the first generated position: legacy {token: logprob} or [{token, logprob}];
 * chat .logprobs.content[0].top_logprobs [{token, logprob}]. */
typedef struct toplp {
    int n;
    const char *tok[64];
    double lp[64];
} toplp_t;

static int read_top(const ss_json_t *choice, toplp_t *t)
{
    const ss_json_t *lpo = ss_json_get(choice, "logprobs");
    const ss_json_t *top = jidx(ss_json_get(lpo, "top_logprobs"), 0);
    if (!top) top = ss_json_get(jidx(ss_json_get(lpo, "content"), 0), "top_logprobs");
    t->n = 0;
    if (top && top->t == SS_JSON_OBJECT) {
        for (size_t i = 0; i < top->u.obj.n && t->n < 64; i++)
            if (jnum(&top->u.obj.m[i].val, &t->lp[t->n])) t->tok[t->n++] = top->u.obj.m[i].key;
    } else if (top && top->t == SS_JSON_ARRAY) {
        for (size_t i = 0; i < top->u.arr.n && t->n < 64; i++) {
            const ss_json_t *e = &top->u.arr.items[i];
            const char *tk = ss_json_str(ss_json_get(e, "token"));
            if (tk && jnum(ss_json_get(e, "logprob"), &t->lp[t->n])) t->tok[t->n++] = tk;
        }
    } else {
        return -1;
    }
    return t->n > 0 ? 0 : -1;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return s;
}

/* Log of the probability that the answer starts as choice c: the summed probabilities of the returned
 * tokens that begin c, ignoring leading white space and ASCII case ("Yes", "yes" and " YES" all
 * count for " yes", as a chat model starts its answer without the space). NAN if none does. */
static double first_token_lp(const toplp_t *t, const char *c)
{
    const char *cc = skip_space(c);
    double sum = 0;
    int found = 0;
    for (int i = 0; i < t->n; i++) {
        const char *tk = skip_space(t->tok[i]);
        size_t l = strlen(tk);
        if (l && l <= strlen(cc) && !strncasecmp(tk, cc, l)) sum += exp(t->lp[i]), found = 1;
    }
    return found ? log(sum) : NAN;
}

/* p(choice) ∝ exp(logprob of its first token). A choice whose first token is not in the
 * top N gets the smallest returned logprob (an upper bound); none found = uniform. */
static int choose_probs(const toplp_t *t, const ss_infer_req_t *r, float *out)
{
    double lp[256], minlp = 0, maxlp = -INFINITY, sum = 0;
    int n = SS_MIN(r->nchoices, 256), found = 0;
    for (int i = 0; i < t->n; i++) minlp = SS_MIN(minlp, t->lp[i]);
    for (int i = 0; i < n; i++) {
        lp[i] = first_token_lp(t, r->choices[i] ? r->choices[i] : "");
        if (isnan(lp[i])) lp[i] = minlp;
        else found = 1;
        maxlp = SS_MAX(maxlp, lp[i]);
    }
    for (int i = 0; i < n; i++) sum += lp[i] = found ? exp(lp[i] - maxlp) : 1.0;
    for (int i = 0; i < n; i++) out[i] = (float)(lp[i] / sum);
    return found;
}

/* Expected value over the integer tokens in [score_min, score_max] among the top N. */
static int score_value(const toplp_t *t, const ss_infer_req_t *r, double *out)
{
    double num = 0, den = 0;
    for (int i = 0; i < t->n; i++) {
        const char *s = skip_space(t->tok[i]);
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || *skip_space(e) || v < r->score_min || v > r->score_max) continue;
        double p = exp(t->lp[i]);
        num += p * (double)v;
        den += p;
    }
    if (den <= 0) return -1;
    *out = num / den;
    return 0;
}

/* A constrained answer: the choice the text names (one-hot), or the integer it gives. */
static int constrained_answer(const char *text, const ss_infer_req_t *r, ss_infer_res_t *res)
{
    const char *t = skip_space(text ? text : "");
    while (*t == '"' || *t == '\'' || *t == '*') t++;
    if (r->kind == SS_INFER_SCORE) {
        char *e;
        long v = strtol(t, &e, 10);
        if (e == t || v < r->score_min || v > r->score_max) return -1;
        res->score = (double)v;
        return 0;
    }
    int best = -1;
    size_t bestlen = 0;
    for (int i = 0; i < r->nchoices; i++) {
        const char *c = skip_space(r->choices[i] ? r->choices[i] : "");
        size_t l = strlen(c);
        if (l && l > bestlen && !strncasecmp(t, c, l) && !isalnum((unsigned char)t[l])) best = i, bestlen = l;
    }
    if (best < 0 || !(res->probs = calloc((size_t)r->nchoices, sizeof(float)))) return -1;
    res->nprobs = r->nchoices;
    res->probs[best] = 1.0f;
    return 0;
}

/* Token counts: exact for a single prompt; for n prompts the totals are shared evenly,
 * except that generated tokens are counted from the choice's logprobs when present. */
static void usage(const ss_json_t *doc, const ss_json_t *choice, int n, ss_infer_res_t *res)
{
    const ss_json_t *u = ss_json_get(doc, "usage");
    double x;
    if (jnum(ss_json_get(u, "prompt_tokens"), &x)) res->prompt_tokens = (int)(x / n);
    size_t nt = jlen(ss_json_get(ss_json_get(choice, "logprobs"), "tokens"));
    if (n > 1 && nt > 0) res->gen_tokens = (int)nt;
    else if (jnum(ss_json_get(u, "completion_tokens"), &x)) res->gen_tokens = (int)(x / n);
}

static int cmp_lp_desc(const void *a, const void *b)
{
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x < y) - (x > y);
}

/* GENERATE with top_logprobs: the top tokens of the first generated position (best first)
 * and the logprob of every generated token (gen_tokens entries, zero-padded). */
static int gen_logprobs(const ss_json_t *doc, const ss_json_t *c0, int nmembers, ss_infer_res_t *res)
{
    toplp_t t;
    if (read_top(c0, &t) != 0) return -1;
    double ord[64][2];
    for (int i = 0; i < t.n; i++) ord[i][0] = t.lp[i], ord[i][1] = i;
    qsort(ord, (size_t)t.n, sizeof ord[0], cmp_lp_desc);
    res->top_tokens = calloc((size_t)t.n, sizeof(char *));
    res->top_logprobs = calloc((size_t)t.n, sizeof(float));
    if (!res->top_tokens || !res->top_logprobs) return 0; /* leaves ntop = 0 */
    res->ntop = t.n;
    for (int i = 0; i < t.n; i++) {
        res->top_tokens[i] = ss_strdup(t.tok[(int)ord[i][1]]);
        res->top_logprobs[i] = (float)ord[i][0];
    }
    usage(doc, c0, nmembers, res);
    const ss_json_t *lpo = ss_json_get(c0, "logprobs"), *tl = ss_json_get(lpo, "token_logprobs");
    const ss_json_t *content = ss_json_get(lpo, "content"); /* chat: [{token, logprob, ...}] */
    int n = (int)(tl ? jlen(tl) : jlen(content));
    if (res->gen_tokens <= 0) res->gen_tokens = n;
    double x;
    if (res->gen_tokens > 0 && (res->token_logprobs = calloc((size_t)res->gen_tokens, sizeof(float))))
        for (int i = 0; i < SS_MIN(n, res->gen_tokens); i++)
            if (jnum(tl ? jidx(tl, (size_t)i) : ss_json_get(jidx(content, (size_t)i), "logprob"), &x))
                res->token_logprobs[i] = (float)x;
    return 0;
}

/* Element k of arr: the one whose "index" is k, else the k-th. */
static const ss_json_t *nth(const ss_json_t *arr, int k)
{
    double x;
    for (size_t i = 0; i < jlen(arr); i++)
        if (jnum(ss_json_get(jidx(arr, i), "index"), &x) && (int)x == k) return jidx(arr, i);
    return jidx(arr, (size_t)k);
}

static int parse_embedding(const ss_json_t *el, ss_infer_res_t *res, const char **missing)
{
    const ss_json_t *e = ss_json_get(el, "embedding");
    size_t n = jlen(e);
    if (n == 0) return *missing = "embedding", -1;
    if (!(res->emb = malloc(n * sizeof(float)))) return -1;
    res->dim = (int)n;
    for (size_t i = 0; i < n; i++) {
        double x = 0;
        if (!jnum(jidx(e, i), &x)) return *missing = "numeric embedding", -1;
        res->emb[i] = (float)x;
    }
    return 0;
}

/* What member k's choice says: 0 filled, 1 the server gave no logprobs, -1 failed (member failed). */
static int parse_member(oai_t *b, job_t *j, const ss_json_t *doc, int k)
{
    char sn[256];
    const ss_infer_req_t *r = &j->reqs[j->idx[k]];
    ss_infer_res_t *res = &j->res[j->idx[k]];
    const char *missing = NULL;
    const ss_json_t *el = nth(ss_json_get(doc, r->kind == SS_INFER_EMBED ? "data" : "choices"), k);
    const char *txt = j->ep == EP_CHAT ? ss_json_str(ss_json_get(ss_json_get(el, "message"), "content"))
                                       : ss_json_str(ss_json_get(el, "text"));
    const ss_json_t *sp = ss_json_get(el, "semstream_probs");
    double sv;
    toplp_t t;
    if (r->kind == SS_INFER_EMBED) {
        if (parse_embedding(el, res, &missing) && !missing) missing = "";
    } else if (!el) {
        missing = "";
    } else if (r->kind == SS_INFER_CHOOSE && (int)jlen(sp) == r->nchoices && r->nchoices > 0) {
        res->nprobs = r->nchoices; /* exact, from a semstream worker */
        res->probs = calloc((size_t)r->nchoices, sizeof(float));
        for (int i = 0; i < r->nchoices && res->probs; i++) {
            double x = 0;
            jnum(jidx(sp, (size_t)i), &x);
            res->probs[i] = (float)x;
        }
    } else if (r->kind == SS_INFER_SCORE && jnum(ss_json_get(el, "semstream_score_value"), &sv)) {
        res->score = sv;
    } else if (r->kind == SS_INFER_GENERATE) {
        if (!txt) missing = j->ep == EP_CHAT ? ".message.content" : ".text";
        else res->text = ss_strdup(txt);
        if (!missing && r->top_logprobs > 0 && gen_logprobs(doc, el, j->n, res) != 0)
            missing = ".logprobs";
    } else if (j->constrained) {
        if (constrained_answer(txt, r, res)) {
            member_fail(b, j, k, SS_ERR_MODEL, "the answer \"%s\" from %s is none of the %s (the server gives no "
                        "logprobs, so the answer was asked for in words)", txt ? txt : "", ep_path(j->ep),
                        r->kind == SS_INFER_SCORE ? "allowed integers" : "choices");
            return -1;
        }
    } else if (read_top(el, &t) != 0) {
        return 1;
    } else if (r->kind == SS_INFER_CHOOSE) {
        res->nprobs = r->nchoices;
        res->probs = calloc((size_t)SS_MAX(r->nchoices, 1), sizeof(float));
        if (res->probs) choose_probs(&t, r, res->probs);
    } else if (score_value(&t, r, &res->score) != 0) {
        member_fail(b, j, k, SS_ERR_MODEL, "no integer %d..%d among the top %d tokens from %s: %s",
                    r->score_min, r->score_max, t.n, ep_path(j->ep), snippet(j, sn, sizeof sn));
        return -1;
    }
    if (missing) {
        member_fail(b, j, k, SS_ERR_HTTP, "response from %s lacks %s[%d]%s: %s", ep_path(j->ep),
                    r->kind == SS_INFER_EMBED ? "data" : "choices", k,
                    r->kind == SS_INFER_EMBED ? (*missing ? ".embedding" : "") : missing, snippet(j, sn, sizeof sn));
        return -1;
    }
    if (!res->token_logprobs) usage(doc, el, j->n, res);
    res->status = SS_OK;
    return 0;
}

/* Fills the members' results from a 2xx body (each failing alone when its part is missing).
 * Returns 1 when the answer had no logprobs where they were asked (the job is to be re-sent). */
static int parse_ok(oai_t *b, job_t *j)
{
    char sn[256], perr[SS_ERRSZ];
    size_t at = 0;
    ss_json_doc_t *jd = NULL;
    if (ss_json_parse(j->resp.data ? j->resp.data : "", j->resp.len, 0, &jd, &at, perr, sizeof perr) != SS_OK) {
        job_fail(b, j, SS_ERR_HTTP, "bad JSON from %s at byte %zu: %s", ep_path(j->ep), at, snippet(j, sn, sizeof sn));
        return 0;
    }
    int nolp = 0;
    for (int k = 0; k < j->n; k++) nolp |= parse_member(b, j, ss_json_root(jd), k) == 1;
    ss_json_free(jd);
    if (nolp) {
        for (int k = 0; k < j->n; k++) ss_infer_res_clear(&j->res[j->idx[k]]);
        return 1;
    }
    j->done = 1;
    return 0;
}

/* ---- adapting to what a server refuses ---- */

static int resp_has(const job_t *j, const char *s)
{
    if (!j->resp.data) return 0;
    size_t l = strlen(s);
    for (size_t i = 0; i + l <= j->resp.len; i++)
        if (!strncasecmp(j->resp.data + i, s, l)) return 1;
    return 0;
}

/* The largest allowed value a refusal names ("<= 5", "at most 5", "maximum ... 5"), or 0. */
static int named_limit(const job_t *j)
{
    static const char *const pat[] = {"<= ", "<=", "at most ", "maximum of ", "less than or equal to "};
    for (size_t p = 0; p < SS_ARRAY_LEN(pat); p++) {
        size_t l = strlen(pat[p]);
        for (size_t i = 0; j->resp.data && i + l < j->resp.len; i++)
            if (!strncasecmp(j->resp.data + i, pat[p], l) && isdigit((unsigned char)j->resp.data[i + l]))
                return atoi(j->resp.data + i + l);
    }
    return 0;
}

/* After an HTTP 4xx: 1 if the job can be re-sent in a form the server takes (state learnt). */
static int adapt(oai_t *b, job_t *j, long http)
{
    if (j->adapted >= 4) return 0;
    const ss_infer_req_t *r = &j->reqs[j->idx[0]];
    int no_model = resp_has(j, "model_not_found") || resp_has(j, "does not exist");
    if (j->ep == EP_CHAT && b->o.api == SS_OPENAI_API_AUTO &&
        ((http == 404 && !no_model) || http == 405 || resp_has(j, "not a chat model") ||
         resp_has(j, "chat template") || resp_has(j, "chat_template"))) {
        b->api = EP_LEGACY;
        ss_log(SS_LOG_INFO, "openai", "%s: no chat completions for %s (HTTP %ld); using /v1/completions", b->url,
               b->model, http);
    } else if (http == 400 && j->ep == EP_CHAT && !b->completion_tokens_key && resp_has(j, "max_completion_tokens")) {
        b->completion_tokens_key = 1;
    } else if (http == 400 && j->lp > 1 && resp_has(j, "logprobs") && !resp_has(j, "not supported") &&
               !resp_has(j, "not allowed")) {
        int lim = named_limit(j), *cap = j->ep == EP_CHAT ? &b->lp_chat : &b->lp_legacy;
        *cap = lim > 0 && lim < j->lp ? lim : j->lp / 2;
        ss_log(SS_LOG_INFO, "openai", "%s: the server refused %d top logprobs; asking %d", b->url, j->lp, *cap);
    } else if (http == 400 && is_pick(r) && !j->constrained && resp_has(j, "logprobs")) {
        b->no_logprobs = 1;
        ss_log(SS_LOG_INFO, "openai", "%s: no logprobs for %s; yes/no and ranking answers are asked in words",
               b->url, b->model);
    } else {
        return 0;
    }
    j->adapted++;
    return 1;
}

/* ---- retries and rate limits ---- */

static int retryable(CURLcode cc, long http)
{
    if (cc != CURLE_OK)
        return cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_GOT_NOTHING ||
               cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_PARTIAL_FILE ||
               cc == CURLE_COULDNT_RESOLVE_HOST;
    return http == 429 || http >= 500;
}

/* Exponential backoff, times a random 1..1.5 so that clients do not retry in step; a Retry-After
 * wins when longer. */
static int64_t backoff_ms(oai_t *b, int attempts, int64_t retry_after_s)
{
    int64_t d = (int64_t)b->o.backoff_ms << SS_MIN(attempts - 1, 20);
    d += (int64_t)((double)d * 0.5 * (double)(rnd(b) >> 11) / 9007199254740992.0);
    if (retry_after_s > 0) d = SS_MAX(d, retry_after_s * 1000);
    return SS_MIN(d, (int64_t)b->o.max_backoff_ms);
}

static void bucket_fill(bucket_t *k, int64_t now)
{
    if (k->rate <= 0) return;
    k->level = SS_MIN(k->cap, k->level + (double)(now - k->at_ns) / 60e9 * k->rate);
    k->at_ns = now;
}

static bucket_t bucket(int per_minute, int64_t now)
{
    double cap = per_minute > 0 ? SS_MAX(1.0, per_minute / 60.0) : 0;
    return (bucket_t){cap, cap, per_minute > 0 ? per_minute : 0, now};
}

/* 0 when a request of `tokens` may start now (and takes its share), else the ns to wait. */
static int64_t rate_wait(oai_t *b, int64_t tokens, int64_t now)
{
    bucket_fill(&b->rpm, now);
    bucket_fill(&b->tpm, now);
    double need = b->tpm.rate > 0 ? SS_MIN((double)tokens, b->tpm.cap) : 0; /* a big one waits for a full bucket */
    int64_t w = 0;
    if (b->rpm.rate > 0 && b->rpm.level < 1) w = (int64_t)((1 - b->rpm.level) / b->rpm.rate * 60e9) + 1;
    if (b->tpm.rate > 0 && b->tpm.level < need)
        w = SS_MAX(w, (int64_t)((need - b->tpm.level) / b->tpm.rate * 60e9) + 1);
    if (w) return w;
    if (b->rpm.rate > 0) b->rpm.level -= 1;
    if (b->tpm.rate > 0) b->tpm.level -= need;
    return 0;
}

static void transfer_done(oai_t *b, CURLM *multi, job_t *j, CURLcode cc)
{
    long http = 0;
    curl_off_t retry_after = -1;
    char sn[256];
    curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(j->h, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(multi, j->h);
    curl_easy_cleanup(j->h);
    j->h = NULL;
    if (cc == CURLE_OK && http >= 200 && http < 300) {
        if (parse_ok(b, j) == 0) return;
        if (j->adapted < 4 && !j->constrained && b->ext <= 0) { /* a 200 without the logprobs asked for */
            if (!b->no_logprobs)
                ss_log(SS_LOG_INFO, "openai", "%s: %s answers without logprobs; yes/no and ranking answers are "
                       "asked in words", b->url, b->model);
            b->no_logprobs = 1;
            j->adapted++;
            j->attempts = 0;
            job_prepare(b, j);
            return;
        }
        job_fail(b, j, SS_ERR_HTTP, "response from %s lacks .logprobs: %s", ep_path(j->ep), snippet(j, sn, sizeof sn));
        return;
    }
    if (cc == CURLE_OK && http >= 400 && http < 500 && http != 429 && adapt(b, j, http)) {
        job_prepare(b, j); /* re-sent at once in the new form */
        j->attempts = 0;
        return;
    }
    if (retryable(cc, http) && j->attempts <= b->o.max_retries) {
        int64_t delay = backoff_ms(b, j->attempts, (int64_t)retry_after);
        ss_log(SS_LOG_INFO, "openai", "%s: attempt %d failed (%s, HTTP %ld); retrying in %lld ms", ep_path(j->ep),
               j->attempts, curl_easy_strerror(cc), http, (long long)delay);
        j->not_before_ns = ss_now_ns() + ms_ns(delay);
        return;
    }
    const char *tries = j->attempts > 1 ? " after retries" : "";
    if (cc == CURLE_COULDNT_CONNECT)
        job_fail(b, j, SS_ERR_HTTP, "connection refused (%s)%s", j->errbuf, tries);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        job_fail(b, j, SS_ERR_TIMEOUT, "timed out after %d ms on %s%s", b->o.timeout_ms, ep_path(j->ep), tries);
    else if (cc != CURLE_OK)
        job_fail(b, j, SS_ERR_HTTP, "%s on %s (%s)%s", curl_easy_strerror(cc), ep_path(j->ep), j->errbuf, tries);
    else
        /* 400, 413 and 422: the server refuses this request as it is (a prompt past the context,
         * a schema it cannot take): final, never retried (ss_dispatch_err_final) */
        job_fail(b, j, http == 429 ? SS_ERR_BUSY : http == 400 || http == 413 || http == 422 ? SS_ERR_INVALID
                       : SS_ERR_HTTP, "HTTP %ld from %s%s: %s", http, ep_path(j->ep), tries, snippet(j, sn, sizeof sn));
    for (int k = 0; retry_after > 0 && k < j->n; k++) /* the server's word on when to come back */
        j->res[j->idx[k]].retry_after_ms = (int)SS_MIN((int64_t)retry_after * 1000, 3600000);
}

/* Runs all jobs to completion with at most max_concurrency transfers at once (over all the
 * batches running). The shared state is read and written under b->mu; the transfers run without. */
static void run_jobs(oai_t *b, CURLM *multi, job_t *jobs, int n)
{
    int left = 0, mine = 0;
    for (int i = 0; i < n; i++) left += !jobs[i].done;
    while (left > 0) {
        if (__atomic_load_n(&b->canceled, __ATOMIC_ACQUIRE)) { /* stopping: give up what is left */
            pthread_mutex_lock(&b->mu);
            for (int i = 0; i < n; i++) {
                job_t *j = &jobs[i];
                if (j->done) continue;
                if (j->h) {
                    curl_multi_remove_handle(multi, j->h);
                    curl_easy_cleanup(j->h);
                    j->h = NULL;
                    b->active--;
                }
                job_fail(b, j, SS_ERR_CANCELED, "canceled: the engine is stopping");
            }
            pthread_mutex_unlock(&b->mu);
            break;
        }
        int64_t now = ss_now_ns(), wait_ms = 100;
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < n && b->active < b->o.max_concurrency; i++) {
            job_t *j = &jobs[i];
            if (j->done || j->h) continue;
            int64_t rw = j->not_before_ns > now ? j->not_before_ns - now : rate_wait(b, j->tokens, now);
            if (rw > 0) {
                wait_ms = SS_MIN(wait_ms, rw / 1000000 + 1);
                continue;
            }
            if (job_start(b, multi, j) != SS_OK) {
                job_fail(b, j, SS_ERR_HTTP, "cannot start a transfer to %s", ep_url(b, j->ep));
                left--;
                continue;
            }
            b->active++;
            mine++;
        }
        if (!mine) wait_ms = SS_MIN(wait_ms, 20); /* others hold every slot: look again soon */
        pthread_mutex_unlock(&b->mu);
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int q;
        pthread_mutex_lock(&b->mu);
        while ((m = curl_multi_info_read(multi, &q))) {
            if (m->msg != CURLMSG_DONE) continue;
            job_t *j = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode cc = m->data.result;
            b->active--;
            mine--;
            transfer_done(b, multi, j, cc);
            if (j->done) left--;
        }
        pthread_mutex_unlock(&b->mu);
        if (left > 0) curl_multi_poll(multi, NULL, 0, (int)(mine ? SS_MIN(wait_ms, 50) : wait_ms), NULL);
    }
}

/* ---- the server's identity ---- */

static size_t on_probe(char *p, size_t sz, size_t n, void *ud)
{
    return ss_buf_append(ud, p, sz * n) == SS_OK ? sz * n : 0;
}

/* Asks GET /v1/models once whether the server is a `semstream worker` (owned_by "semstream"),
 * and if so whether its model has a chat template (semstream_chat_template). A transport failure
 * leaves it unknown (asked again next batch). */
static void probe(oai_t *b, struct curl_slist *hdrs)
{
    ss_buf_t body = SS_BUF_INIT;
    CURL *h = curl_easy_init();
    if (!h) return;
    curl_easy_setopt(h, CURLOPT_URL, b->models_url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_probe);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)SS_MIN(b->o.timeout_ms, 5000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    long http = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
        ss_json_doc_t *jd = NULL;
        char perr[SS_ERRSZ];
        int ext = 0, chat = 0;
        if (http == 200 && ss_json_parse(body.data ? body.data : "", body.len, 0, &jd, NULL, perr, sizeof perr) == SS_OK) {
            const ss_json_t *data = ss_json_get(ss_json_root(jd), "data");
            for (size_t i = 0; i < jlen(data); i++) {
                const ss_json_t *m = jidx(data, i);
                const char *own = ss_json_str(ss_json_get(m, "owned_by"));
                if (own && !strcmp(own, "semstream")) {
                    ext = 1;
                    chat |= ss_json_str(ss_json_get(m, "semstream_chat_template")) != NULL;
                }
            }
            ss_json_free(jd);
        }
        pthread_mutex_lock(&b->mu);
        b->probed = 1;
        if (b->ext < 0) b->ext = ext;
        if (ext) {
            b->lp_legacy = SS_MAX(b->lp_legacy, 20); /* the worker's limit */
            if (b->api < 0) b->api = chat ? EP_CHAT : EP_LEGACY;
        }
        pthread_mutex_unlock(&b->mu);
        ss_log(SS_LOG_INFO, "openai", "%s: semstream extensions %s%s", b->url, b->ext ? "on" : "off",
               ext ? (chat ? ", chat template: chat completions" : ", no chat template: completions") : "");
    }
    curl_easy_cleanup(h);
    ss_buf_free(&body);
}

/* Groups requests into jobs (up to embed_batch inputs / prompt_batch legacy prompts per HTTP
 * request; one per chat request); returns the number of jobs. idx must hold n ints. */
static int make_jobs(oai_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, job_t *jobs, int *idx,
                     struct curl_slist *hdrs)
{
    char *used = calloc((size_t)SS_MAX(n, 1), 1);
    int nj = 0, at = 0;
    for (int i = 0; i < n && used; i++) {
        if (used[i]) continue;
        int emb = reqs[i].kind == SS_INFER_EMBED;
        int cap = emb ? b->o.embed_batch : b->api == EP_LEGACY ? b->o.prompt_batch : 1;
        job_t *j = &jobs[nj++];
        *j = (job_t){.reqs = reqs, .res = res, .idx = idx + at, .hdrs = hdrs, .ep = emb ? EP_EMBED : EP_CHAT};
        for (int k = i; k < n && j->n < cap; k++)
            if (!used[k] && compatible(b, &reqs[i], &reqs[k]) &&
                !(reqs[k].kind == SS_INFER_CHOOSE && (reqs[k].nchoices <= 0 || !reqs[k].choices))) {
                used[k] = 1;
                j->idx[j->n++] = k;
            }
        if (j->n == 0) { /* a CHOOSE without choices travels alone and fails */
            used[i] = 1;
            j->idx[j->n++] = i;
            job_fail(b, j, SS_ERR_INVALID, "CHOOSE request %d without choices", i);
        }
        at += j->n;
        if (!j->done) job_prepare(b, j);
    }
    if (!used) return -1;
    free(used);
    return nj;
}

static struct curl_slist *headers(oai_t *b)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char *v[3] = {b->api_key ? ss_sprintf("Authorization: Bearer %s", b->api_key) : NULL,
                  b->org ? ss_sprintf("OpenAI-Organization: %s", b->org) : NULL,
                  b->project ? ss_sprintf("OpenAI-Project: %s", b->project) : NULL};
    for (int i = 0; i < 3; i++) {
        if (v[i] && h) h = curl_slist_append(h, v[i]);
        free(v[i]);
    }
    return h;
}

static CURLM *take_multi(oai_t *b)
{
    pthread_mutex_lock(&b->mu);
    CURLM *m = b->nidle ? b->idle[--b->nidle] : NULL;
    pthread_mutex_unlock(&b->mu);
    if (!m && (m = curl_multi_init()))
        curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)b->o.max_concurrency);
    return m;
}

static void give_multi(oai_t *b, CURLM *m)
{
    pthread_mutex_lock(&b->mu);
    if (b->nidle == b->cidle) {
        int nc = b->cidle ? 2 * b->cidle : 4;
        CURLM **p = realloc(b->idle, (size_t)nc * sizeof *p);
        if (p) b->idle = p, b->cidle = nc;
    }
    if (b->nidle < b->cidle) b->idle[b->nidle++] = m, m = NULL;
    pthread_mutex_unlock(&b->mu);
    if (m) curl_multi_cleanup(m);
}

/* Several batches may run at once (be->max_concurrent), each on a multi handle of its own. */
static int oai_run(ss_infer_backend_t *be, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
                   char *err, size_t errsz)
{
    oai_t *b = be->impl;
    job_t *jobs = calloc((size_t)SS_MAX(n, 1), sizeof *jobs);
    int *idx = calloc((size_t)SS_MAX(n, 1), sizeof *idx), nj = -1;
    struct curl_slist *hdrs = headers(b);
    pthread_mutex_lock(&b->probe_mu);
    pthread_mutex_lock(&b->mu);
    int ask = !b->probed && (b->ext < 0 || b->api < 0);
    pthread_mutex_unlock(&b->mu);
    if (ask && hdrs) probe(b, hdrs);
    pthread_mutex_unlock(&b->probe_mu);
    CURLM *multi = take_multi(b);
    pthread_mutex_lock(&b->mu);
    int ext = b->ext;
    if (b->ext < 0) b->ext = 0; /* unknown: plain protocol for this batch */
    if (jobs && idx && hdrs && multi) nj = make_jobs(b, reqs, n, res, jobs, idx, hdrs);
    if (ext < 0) b->ext = ext;
    pthread_mutex_unlock(&b->mu);
    if (nj >= 0) run_jobs(b, multi, jobs, nj);
    if (multi) give_multi(b, multi);
    for (int i = 0; i < SS_MAX(nj, 0); i++) {
        free(jobs[i].body);
        ss_buf_free(&jobs[i].resp);
    }
    free(jobs);
    free(idx);
    curl_slist_free_all(hdrs);
    if (nj < 0) return ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend %s: out of memory", b->url);
    return SS_OK;
}

static void oai_destroy(ss_infer_backend_t *be)
{
    if (!be) return;
    oai_t *b = be->impl;
    if (b) {
        for (int i = 0; i < b->nidle; i++) curl_multi_cleanup(b->idle[i]);
        free(b->idle);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->probe_mu);
        char *s[] = {b->url, b->model, b->api_key, b->org, b->project, b->chat_url, b->completions_url,
                     b->embeddings_url, b->models_url};
        for (size_t i = 0; i < SS_ARRAY_LEN(s); i++) free(s[i]);
        free(b);
    }
    free(be->model_id);
    free(be);
}

static void oai_cancel(ss_infer_backend_t *be)
{
    oai_t *b = be->impl;
    __atomic_store_n(&b->canceled, 1, __ATOMIC_RELEASE); /* each run sees it after its poll (<= 100 ms) */
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *dup_opt(const char *s) { return s && *s ? ss_strdup(s) : NULL; }

ss_infer_backend_t *ss_backend_openai_open(const ss_openai_opts_t *o, char *err, size_t errsz)
{
    if (!o || !o->url || !*o->url || !o->model || !*o->model) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "openai backend: a url and a model name are needed");
        return NULL;
    }
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "openai backend %s: the url must start with http:// or https://", o->url);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    ss_infer_backend_t *be = calloc(1, sizeof *be);
    oai_t *b = calloc(1, sizeof *b);
    if (!be || !b) {
        free(be);
        free(b);
        ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend: out of memory");
        return NULL;
    }
    b->o = *o;
    b->o.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
    b->o.max_concurrency = o->max_concurrency > 0 ? o->max_concurrency : 8;
    b->o.max_retries = o->max_retries < 0 ? 0 : o->max_retries == 0 ? 4 : o->max_retries;
    b->o.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
    b->o.max_backoff_ms = o->max_backoff_ms > 0 ? o->max_backoff_ms : 30000;
    b->o.embed_batch = o->embed_batch > 0 ? o->embed_batch : 32;
    b->o.prompt_batch = o->prompt_batch > 0 ? o->prompt_batch : 1;
    b->lp_chat = o->top_logprobs > 0 ? SS_MIN(o->top_logprobs, 20) : 20;
    b->lp_legacy = o->top_logprobs > 0 ? o->top_logprobs : 5;
    b->api = o->api == SS_OPENAI_API_CHAT ? EP_CHAT : o->api == SS_OPENAI_API_COMPLETIONS ? EP_LEGACY : -1;
    b->url = ss_strdup(o->url);
    b->model = ss_strdup(o->model);
    b->api_key = dup_opt(o->api_key);
    b->org = dup_opt(o->organization);
    b->project = dup_opt(o->project);
    b->chat_url = endpoint(o->url, "chat/completions");
    b->completions_url = endpoint(o->url, "completions");
    b->embeddings_url = endpoint(o->url, "embeddings");
    b->models_url = endpoint(o->url, "models");
    b->ext = o->semstream_ext > 0 ? 1 : o->semstream_ext < 0 ? 0 : -1;
    int64_t now = ss_now_ns();
    b->rpm = bucket(o->rpm, now);
    b->tpm = bucket(o->tpm, now);
    b->rng = (uint64_t)now ^ (uint64_t)(uintptr_t)b;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->probe_mu, NULL);
    be->kind = "openai";
    be->model_id = ss_sprintf("openai:%s:%s", o->url, o->model);
    be->impl = b;
    be->max_concurrent = b->o.max_concurrency; /* batches at once; their HTTP requests share the limit */
    be->run = oai_run;
    be->destroy = oai_destroy;
    be->cancel = oai_cancel;
    if (!be->model_id || !b->chat_url || !b->completions_url || !b->embeddings_url || !b->models_url) {
        oai_destroy(be);
        ss_seterr(err, errsz, SS_ERR_NOMEM, "openai backend: cannot initialise libcurl");
        return NULL;
    }
    return be;
}

ss_infer_backend_t *ss_backend_openai_new(const char *url, const char *model, const char *api_key,
                                          int timeout_ms, int max_concurrency, char *err, size_t errsz)
{
    ss_openai_opts_t o = {.url = url, .model = model, .api_key = api_key, .timeout_ms = timeout_ms,
                          .max_concurrency = max_concurrency};
    return ss_backend_openai_open(&o, err, errsz);
}
